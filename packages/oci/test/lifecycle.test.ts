// Root: the lifecycle through the library and a busybox tree (scripts/make-busybox-tree.sh), the way nspawn-oci
// drives it; the monitor is this test's own script (test/monitor.mjs).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { containerState, createContainer, defaultSpec, deleteContainer, execContainer, killContainer, containerPids, pauseContainer, resumeContainer, listContainers, startContainer } from '../src/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'oci-life-'));
const root = join(dir, 'state');
const bundle = join(dir, 'bundle');
const log = () => {};
const monitor = (o: object) => ({ file: process.execPath, args: [join(here, 'monitor.mjs'), JSON.stringify(o)] });

beforeAll(() => {
  execFileSync('bash', [join(here, '../../../scripts/make-busybox-tree.sh'), join(bundle, 'rootfs')]);
});
afterAll(async () => {
  for (const c of listContainers(root)) await deleteContainer(root, c.id, true, log).catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

function writeConfig(args: string[], extra: (s: ReturnType<typeof defaultSpec>) => void = () => {}) {
  const s = defaultSpec();
  s.process!.terminal = false;
  s.process!.args = args;
  extra(s);
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(s));
}

async function waitStatus(id: string, status: string) {
  for (let i = 0; i < 200; i++) {
    if (containerState(root, id).status === status) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${id} never became ${status}`);
}

describe('lifecycle (root)', () => {
  it('creates, starts, reports, and deletes; start twice and delete while running fail as in runc', async () => {
    writeConfig(['sh', '-c', 'echo started > /tmp/x; sleep 30']);
    const pid = await createContainer({ root, id: 'a', bundle, log, pidFile: join(dir, 'pid') }, monitor);
    expect(readFileSync(join(dir, 'pid'), 'utf8')).toBe(String(pid));
    expect(containerState(root, 'a')).toMatchObject({ id: 'a', status: 'created', pid, bundle });
    await startContainer(root, 'a');
    expect(containerState(root, 'a').status).toBe('running');
    await expect(startContainer(root, 'a')).rejects.toThrow(/already been started/);
    await expect(deleteContainer(root, 'a', false, log)).rejects.toThrow('cannot delete container a that is not stopped: running');
    killContainer(root, 'a', 9);
    await waitStatus('a', 'stopped');
    await deleteContainer(root, 'a', false, log);
    expect(existsSync(join(root, 'a'))).toBe(false);
    expect(() => containerState(root, 'a')).toThrow('container does not exist: a');
  });
  it('deletes a created container without starting it, leaving no process', async () => {
    writeConfig(['sh', '-c', 'exit 0']);
    const pid = await createContainer({ root, id: 'b', bundle, log }, monitor);
    await deleteContainer(root, 'b', false, log);
    expect(existsSync(`/proc/${pid}/stat`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z')).toBe(false);
    expect(existsSync(join(root, 'b'))).toBe(false);
  });
  it('a hook that hangs fails the create after its timeout, and nothing is left', async () => {
    writeConfig(['true'], (s) => {
      s.hooks = { createRuntime: [{ path: '/bin/sleep', args: ['sleep', '30'], timeout: 1 }] };
    });
    const t0 = Date.now();
    await expect(createContainer({ root, id: 'c', bundle, log }, monitor)).rejects.toThrow(/createRuntime hook \/bin\/sleep: timeout after 1 seconds/);
    expect(Date.now() - t0).toBeLessThan(15000);
    expect(existsSync(join(root, 'c'))).toBe(false);
  });
  it('puts the container in its cgroupsPath with its pids limit, execs in it, and the delete removes the cgroups', async () => {
    const cg = `/nspawn-oci-test-${process.pid}`;
    writeConfig(['sleep', '30'], (s) => {
      s.linux!.cgroupsPath = cg;
      s.linux!.resources = { pids: { limit: 77 } };
    });
    const pidsDir = `/sys/fs/cgroup/pids${cg}`;
    try {
      const pid = await createContainer({ root, id: 'e', bundle, log }, monitor);
      await startContainer(root, 'e');
      if (existsSync('/sys/fs/cgroup/pids/cgroup.procs')) {
        expect(readFileSync(join(pidsDir, 'pids.max'), 'utf8').trim()).toBe('77');
        expect(readFileSync(join(pidsDir, 'cgroup.procs'), 'utf8').split('\n')).toContain(String(pid));
      } else {
        expect(readFileSync(`/proc/${pid}/cgroup`, 'utf8')).toContain(cg);
      }
      const code = await execContainer(root, 'e', { args: ['sh', '-c', `echo $(id -u):$(pwd) > /tmp/o; cat /tmp/o; exit 5`], uid: 0, gid: 0, cwd: '/tmp' });
      expect(code).toBe(5);
      writeFileSync(join(dir, 'proc.json'), JSON.stringify({ args: ['sh', '-c', 'test "$(id -u)" = 1 && test "$A" = b'], env: ['A=b', 'PATH=/bin'], user: { uid: 1, gid: 1 }, cwd: '/' }));
      expect(containerPids(root, 'e')).toContain(pid);
      pauseContainer(root, 'e');
      expect(containerState(root, 'e').status).toBe('paused');
      expect(() => pauseContainer(root, 'e')).toThrow('container e is not running');
      resumeContainer(root, 'e');
      expect(containerState(root, 'e').status).toBe('running');
      const { loadProcessFile } = await import('../src/index.js');
      expect(await execContainer(root, 'e', { process: loadProcessFile(join(dir, 'proc.json')) })).toBe(0);
      await deleteContainer(root, 'e', true, log);
      expect(existsSync(pidsDir)).toBe(false);
      expect(existsSync(`/sys/fs/cgroup/unified${cg}`)).toBe(false);
    } finally {
      await deleteContainer(root, 'e', true, log).catch(() => {});
      for (const h of ['pids', 'cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'blkio', 'systemd', 'unified', '']) {
        try {
          rmdirSync(`/sys/fs/cgroup/${h}${cg}`);
        } catch {
          // not there
        }
      }
    }
  });
  it('after start the container runs without its helper or monitor (a subreaper would reap it); kill --all reaches every process of its cgroups, and on a stopped container is no error', async () => {
    writeConfig(['sh', '-c', 'sleep 30 & sleep 30; wait']);
    const pid = await createContainer({ root, id: 'f', bundle, log }, monitor);
    try {
      await startContainer(root, 'f');
      // the helper (its parent until the start) has left: PID 1 was reparented
      let ppidComm = '';
      for (let i = 0; i < 100; i++) {
        const ppid = Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
        ppidComm = readFileSync(`/proc/${ppid}/comm`, 'utf8').trim();
        if (ppidComm !== 'nspawn-helper') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(ppidComm).not.toBe('nspawn-helper');
      let pids: number[] = [];
      for (let i = 0; i < 100 && pids.length < 3; i++) {
        pids = containerPids(root, 'f');
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(pids.length).toBe(3);
      killContainer(root, 'f', 9, true);
      await waitStatus('f', 'stopped');
      for (const p of pids) expect(existsSync(`/proc/${p}/stat`) && !readFileSync(`/proc/${p}/stat`, 'utf8').includes(') Z')).toBe(false);
      expect(() => killContainer(root, 'f', 9, true)).not.toThrow();
      expect(() => killContainer(root, 'f', 9)).toThrow('container not running');
    } finally {
      await deleteContainer(root, 'f', true, log);
    }
  });
  it('refuses a malformed config.json naming it', async () => {
    writeFileSync(join(bundle, 'config.json'), '{');
    await expect(createContainer({ root, id: 'd', bundle, log }, monitor)).rejects.toThrow(/config\.json: not JSON/);
    expect(existsSync(join(root, 'd'))).toBe(false);
  });
});
