// Root: containerd 1.6 (Debian's), started here with its own root/state/address/config, runs nspawn-oci through
// containerd-shim-runc-v2: `ctr run --runc-binary` with an image imported from a local busybox tree. The runtime is
// a logging wrapper around apps/cli/bin/nspawn-oci, so the test also checks what the shim called.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTree } from './helpers/busybox-tree.js';
import { argvLoggingRuntime, type Containerd, dockerArchive, mountsUnder, requireContainerd, startContainerd } from './helpers/containerd.js';

const IMAGE = 'localhost/cr-busybox:1';
let dir = '';
let cd: Containerd | undefined;
let runtime = '';
let argvLog = '';

beforeAll(async () => {
  requireContainerd();
  dir = mkdtempSync(join(tmpdir(), 'cr-ctr-'));
  argvLog = join(dir, 'argv.log');
  runtime = argvLoggingRuntime(dir, argvLog);
  makeBusyboxTree(join(dir, 'tree'), { probe: false });
  await dockerArchive(join(dir, 'tree'), join(dir, 'busybox.tar'), IMAGE, { Cmd: ['/bin/sh'] });
  cd = await startContainerd(join(dir, 'containerd'));
  const imp = await cd.ctr(['images', 'import', join(dir, 'busybox.tar')]);
  if (imp.exitCode !== 0) throw new Error(`ctr images import: ${imp.all}`);
}, 120000);

afterAll(async () => {
  try {
    await cd?.stop();
  } finally {
    if (dir && mountsUnder(dir).length === 0) rmSync(dir, { recursive: true, force: true });
  }
}, 120000);

const runArgs = (id: string, cmd: string[], extra: string[] = []) => [
  'run', '--rm', '--runc-binary', runtime, '--runc-root', join(dir, 'containerd', 'runc-root'), '--fifo-dir', join(dir, 'fifo'), ...extra, IMAGE, id, ...cmd,
];

describe('ctr run through containerd-shim-runc-v2 (root)', () => {
  it('runs a container with nspawn-oci: its output and exit status reach ctr; the shim calls create, start, delete', async () => {
    const r = await cd!.ctr(runArgs('cr-one', ['/bin/sh', '-c', 'echo hello from ctr; cat /proc/1/comm; exit 7']));
    expect(r.all).toContain('hello from ctr');
    // the payload is PID 1 of its own PID namespace
    expect(r.all).toMatch(/^sh$/m);
    expect(r.exitCode).toBe(7);
    const calls = readFileSync(argvLog, 'utf8').split('\n').filter((l) => / cr-one$/.test(l));
    const verbs = calls.map((l) => l.replace(/^.*--log-format json (\w+).*$/, '$1'));
    expect(verbs.slice(0, 2)).toEqual(['create', 'start']);
    expect(verbs).toContain('delete');
    expect(calls[0]).toMatch(/create --bundle \S+ --pid-file \S+init\.pid cr-one$/);
    // nothing of it is left: no state, no rootfs mount, no task
    expect(existsSync(join(dir, 'containerd/runc-root/default/cr-one'))).toBe(false);
    expect(mountsUnder(join(dir, 'containerd/state')).length).toBe(0);
    expect((await cd!.ctr(['tasks', 'ls', '-q'])).stdout).toBe('');
  });

  it('a detached task: ctr task ls shows it running with its PID; ctr task exec runs in it; kill delivers the signal and the shim reaps the status', async () => {
    const r = await cd!.ctr(['run', '-d', '--runc-binary', runtime, '--runc-root', join(dir, 'containerd', 'runc-root'), '--fifo-dir', join(dir, 'fifo'), IMAGE, 'cr-two', '/bin/sh', '-c', 'trap "exit 42" TERM; while :; do sleep 0.1; done']);
    expect(r.exitCode, r.all).toBe(0);
    let pid = 0;
    for (let i = 0; i < 100 && pid === 0; i++) {
      const ls = await cd!.ctr(['tasks', 'ls']);
      const m = /^cr-two\s+(\d+)\s+RUNNING/m.exec(ls.stdout);
      if (m) pid = Number(m[1]);
      else await new Promise((res) => setTimeout(res, 100));
    }
    expect(pid).toBeGreaterThan(0);
    // the PID containerd knows is the container's PID 1: in its own PID namespace, a child of the shim
    expect(readFileSync(`/proc/${pid}/comm`, 'utf8').trim()).toBe('sh');
    const ppid = Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
    expect(readFileSync(`/proc/${ppid}/comm`, 'utf8').trim()).toMatch(/^containerd-shim/);
    // ctr tasks exec: exec --detach --pid-file through the shim; its output and exit status come back through the shim
    const ex = await cd!.ctr(['tasks', 'exec', '--exec-id', 'cr-x', '--fifo-dir', join(dir, 'fifo'), 'cr-two', '/bin/sh', '-c', 'echo exec in pid ns of $(cat /proc/1/comm); exit 9']);
    expect(ex.all).toContain('exec in pid ns of sh');
    expect(ex.exitCode).toBe(9);
    expect(readFileSync(argvLog, 'utf8')).toMatch(/ exec --process \S+ --detach --pid-file \S+ cr-two$/m);
    const kill = await cd!.ctr(['tasks', 'kill', '-s', 'SIGTERM', 'cr-two']);
    expect(kill.exitCode, kill.all).toBe(0);
    let status = '';
    for (let i = 0; i < 100; i++) {
      const ls = await cd!.ctr(['tasks', 'ls']);
      status = /^cr-two\s+\d+\s+(\w+)/m.exec(ls.stdout)?.[1] ?? '';
      if (status === 'STOPPED') break;
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(status).toBe('STOPPED');
    const del = await cd!.ctr(['tasks', 'delete', 'cr-two']);
    expect(del.exitCode, del.all).toBe(0);
    // ctr prints the exit status of the task it deletes
    expect(del.all).toMatch(/42/);
    expect((await cd!.ctr(['containers', 'rm', 'cr-two'])).exitCode).toBe(0);
    expect(existsSync(join(dir, 'containerd/runc-root/default/cr-two'))).toBe(false);
  });

  it('a bad runtime answer reaches ctr: a command that does not exist fails the start and leaves no task', async () => {
    const r = await cd!.ctr(runArgs('cr-bad', ['/no/such/command']));
    expect(r.exitCode).not.toBe(0);
    expect(r.all).toMatch(/no\/such\/command/);
    expect((await cd!.ctr(['tasks', 'ls', '-q'])).stdout).toBe('');
    await cd!.ctr(['containers', 'rm', 'cr-bad']);
    expect(existsSync(join(dir, 'containerd/runc-root/default/cr-bad'))).toBe(false);
  });
});
