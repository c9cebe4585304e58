// Root: containerd 1.6 (Debian's), started here with its own root/state/address/config, runs nspawn-oci through
// containerd-shim-runc-v2: `ctr run --runc-binary` with an image imported from a local busybox tree. The runtime is
// a logging wrapper around apps/cli/bin/nspawn-oci, so the test also checks what the shim called.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rmdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTree } from './helpers/busybox-tree.js';
import { argvLoggingRuntime, cgroupDirs, type Containerd, CTR, dockerArchive, mountsUnder, requireContainerd, startContainerd } from './helpers/containerd.js';

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

const RUNC = '/usr/sbin/runc';
const shq = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;

/**
 * ctr ARGS with a terminal of its own: `script -qec` gives it a pty (30 rows, 100 columns, set with stty before ctr
 * starts, so that ctr passes that size on), INPUT written to it once READY appeared in what came out. Resolves ctr's
 * exit status and everything it printed (the container's terminal through the shim's console).
 */
function ctrTty(args: string[], ready: string, input: string): Promise<{ code: number | null; out: string }> {
  const cmd = `stty rows 30 cols 100; exec ${[CTR, '--address', cd!.address, '--namespace', 'default', ...args].map(shq).join(' ')}`;
  return new Promise((res) => {
    const p = spawn('script', ['-qec', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', TERM: 'xterm' } });
    let out = '';
    let sent = false;
    const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
    const take = (d: Buffer) => {
      out += d.toString();
      if (!sent && out.includes(ready)) {
        sent = true;
        p.stdin!.write(input);
      }
    };
    p.stdout!.on('data', take);
    p.stderr!.on('data', take);
    p.on('close', (code) => {
      clearTimeout(timer);
      res({ code, out: out.replace(/\r/g, '') });
    });
  });
}

/**
 * The process's answers: its terminal, the terminal's size, the line it read, whether 0 and 1 are terminals. ctr
 * sends the size only after the start (HandleConsoleResize), so the process waits for it, up to 5 s.
 */
const TTY_SCRIPT =
  'echo ready-$((6*7)); read x; tty; i=0; while [ $i -lt 10 ] && [ -z "$(stty size 2>/dev/null)" ]; do sleep 1; i=$((i+1)); done; ' +
  'stty size; echo "got=$x"; [ -t 0 ] && [ -t 1 ] && echo stdio-is-tty; exit 5';

describe('ctr with a terminal (the shim\'s console socket), runc and nspawn-oci side by side (root)', () => {
  // runc makes the parent of ctr's cgroupsPath (/default/ID) and leaves it at the delete (nspawn-oci removes what it
  // made): the one this test made goes after it
  let before: string[] = [];
  beforeAll(() => {
    before = cgroupDirs('default');
  });
  afterAll(() => {
    for (const d of cgroupDirs('default')) if (!before.includes(d)) rmdirSync(d);
  });
  const runtimes = () => [
    { name: 'runc', binary: RUNC, root: join(dir, 'containerd', 'runc-root-runc') },
    { name: 'nspawn-oci', binary: runtime, root: join(dir, 'containerd', 'runc-root') },
  ];

  it('ctr run -t: the process has the pty (tty, stty size 30 100), stdin and stdout go through it, its exit status comes back, nothing is left', async () => {
    const seen: Record<string, string> = {};
    for (const rt of runtimes()) {
      const id = `cr-tty-${rt.name}`;
      const r = await ctrTty(['run', '--rm', '-t', '--runc-binary', rt.binary, '--runc-root', rt.root, '--fifo-dir', join(dir, 'fifo'), IMAGE, id, '/bin/sh', '-c', TTY_SCRIPT], 'ready-42', 'typed-in\n');
      expect(r.code, `${rt.name}: ${r.out}`).toBe(5);
      const lines = r.out.split('\n').filter((l) => /^(\/dev\/|\d+ \d+$|got=|stdio-is-tty)/.test(l));
      seen[rt.name] = lines.join('\n');
      expect(r.out).toMatch(/^got=typed-in$/m);
      expect(r.out).toMatch(/^stdio-is-tty$/m);
      expect(r.out, rt.name).toMatch(/^30 100$/m);
      // what was typed came back through the terminal's echo, as a terminal does
      expect(r.out).toMatch(/^typed-in$/m);
      expect(existsSync(join(rt.root, 'default', id))).toBe(false);
      expect((await cd!.ctr(['tasks', 'ls', '-q'])).stdout).toBe('');
      expect((await cd!.ctr(['containers', 'ls', '-q'])).stdout).toBe('');
    }
    expect(seen['nspawn-oci']).toBe(seen.runc);
    expect(seen.runc).toMatch(/^\/dev\/pts\/0$/m);
    expect(mountsUnder(join(dir, 'containerd/state')).length).toBe(0);
  });

  it('ctr task exec -t into a running task: the exec has a pty of its own, its input, output and exit status go through the shim', async () => {
    const seen: Record<string, string> = {};
    for (const rt of runtimes()) {
      const id = `cr-ttyx-${rt.name}`;
      const run = await cd!.ctr(['run', '-d', '--runc-binary', rt.binary, '--runc-root', rt.root, '--fifo-dir', join(dir, 'fifo'), IMAGE, id, '/bin/sh', '-c', 'trap "exit 0" TERM; while :; do sleep 0.1; done']);
      expect(run.exitCode, run.all).toBe(0);
      try {
        const r = await ctrTty(['tasks', 'exec', '-t', '--exec-id', `${id}-x`, '--fifo-dir', join(dir, 'fifo'), id, '/bin/sh', '-c', TTY_SCRIPT], 'ready-42', 'exec-typed\n');
        expect(r.code, `${rt.name}: ${r.out}`).toBe(5);
        expect(r.out).toMatch(/^got=exec-typed$/m);
        expect(r.out).toMatch(/^stdio-is-tty$/m);
        expect(r.out, rt.name).toMatch(/^30 100$/m);
        seen[rt.name] = r.out.split('\n').filter((l) => /^(\d+ \d+$|got=|stdio-is-tty)/.test(l)).join('\n');
        // the exec's pty is another one of the container's devpts
        expect(r.out).toMatch(/^\/dev\/pts\/\d+$/m);
      } finally {
        await cd!.ctr(['tasks', 'kill', '-s', 'SIGTERM', id]);
        for (let i = 0; i < 100 && !/STOPPED/.test((await cd!.ctr(['tasks', 'ls'])).stdout); i++) await new Promise((res) => setTimeout(res, 100));
        await cd!.ctr(['tasks', 'delete', id]);
        await cd!.ctr(['containers', 'rm', id]);
      }
      expect(existsSync(join(rt.root, 'default', id))).toBe(false);
    }
    expect(seen['nspawn-oci']).toBe(seen.runc);
    expect((await cd!.ctr(['tasks', 'ls', '-q'])).stdout).toBe('');
    for (const rt of runtimes()) expect(existsSync(join(rt.root, 'default')) ? readdirSync(join(rt.root, 'default')) : []).toEqual([]);
  });
});
