/**
 * `exec --preserve-fds N` side by side with runc (runc's exec.go and utils_linux.go runner.run(): the caller's
 * 3..3+N-1 are the process's 3..3+N-1, no LISTEN_FDS for exec), plain, with --process JSON, with --detach, and with
 * --tty and a console socket. Root: one busybox bundle, a container of it under each runtime (its own --root each),
 * the same exec calls against both, and what the process sees compared: `ls -l /proc/self/fd` (fd numbers and what
 * each is) and what it reads from a pipe passed in.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxBundle, NSPAWN_OCI, OCI_ENV as ENV, type BusyboxBundle } from './helpers/oci-runtime.js';

const RUNC = '/usr/sbin/runc';
const RECEIVER_SOURCE = fileURLToPath(new URL('./fixtures/console-receiver.c', import.meta.url));
let base: BusyboxBundle['base'] | undefined;
let bundle = '';
let receiver = '';

interface Runtime {
  name: string;
  argv: string[];
  root: string;
  id: string;
}
const runtimes: Runtime[] = [];

beforeAll(async () => {
  if (!existsSync(RUNC)) throw new Error(`${RUNC} is missing: install Debian's runc (scripts/setup.sh --test)`);
  ({ base, bundle } = await busyboxBundle('cr-ociexec-', ['sleep', '1000']));
  receiver = join(base.dir, 'console-receiver');
  execFileSync('gcc', ['-O1', '-o', receiver, RECEIVER_SOURCE]);
  writeFileSync(join(base.dir, 'four'), 'file-on-four\n');
  for (const [name, argv] of [['runc', [RUNC]], ['nspawn-oci', [NSPAWN_OCI]]] as const) {
    const rt: Runtime = { name, argv: [...argv], root: join(base.dir, `root-${name}`), id: `cr-ociexec-${name}` };
    mkdirSync(rt.root);
    runtimes.push(rt);
    // the container's stdio is create's: a file, so that nothing waits for it to close
    const log = join(base.dir, `${name}.log`);
    const fd = openSync(log, 'a');
    try {
      for (const verb of [['create', '-b', bundle, rt.id], ['start', rt.id]]) {
        const r = spawnSync(rt.argv[0]!, [...rt.argv.slice(1), '--root', rt.root, ...verb], { env: ENV, stdio: ['ignore', fd, fd], timeout: 60_000 });
        if (r.status !== 0) throw new Error(`${name} ${verb[0]}: ${readFileSync(log, 'utf8')}`);
      }
    } finally {
      closeSync(fd);
    }
  }
}, 120_000);

afterAll(async () => {
  if (!base) return;
  for (const rt of runtimes) await execa(rt.argv[0]!, [...rt.argv.slice(1), '--root', rt.root, 'delete', '-f', rt.id], { env: ENV, reject: false });
  for (const rt of runtimes) expect(readdirSync(rt.root)).toEqual([]);
  expect(base.remove()).toEqual([]);
}, 60_000);

/**
 * Runs RT's `exec ARGS` with FDS as its 3, 4, ... and stdio pipes (stdin: INPUT); resolves its exit code and what
 * came on stdout and stderr once every holder of them has closed them (with --detach: the process's end).
 */
function exec(rt: Runtime, args: string[], fds: number[], input = ''): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((res) => {
    const p = spawn(rt.argv[0]!, [...rt.argv.slice(1), '--root', rt.root, 'exec', ...args], { env: ENV, stdio: ['pipe', 'pipe', 'pipe', ...fds] });
    let out = '';
    let err = '';
    p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    p.stdin!.end(input);
    p.on('close', (code) => res({ code, out, err }));
  });
}

/** `ls -l /proc/self/fd` as [fd, what]: pipe, socket, anon_inode:..., /dev/pts/N as a pty, or the path. */
function fdTable(text: string): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  for (const m of text.matchAll(/ (\d+) -> (\S+)$/gm)) {
    const what = m[2]!.replace(/^(pipe|socket):\[\d+\]$/, '$1').replace(/\/fifo-\w+$/, '/FIFO').replace(/^\/dev\/pts\/\d+$/, 'pty').replace(/^\/proc\/\d+\/fd$/, '/proc/PID/fd');
    out.push([Number(m[1]), what]);
  }
  return out;
}

/** From 3 on: 0-2 differ in kind (runc's foreground exec copies through pipes of its own, nspawn-oci passes the call's through) */
const from3 = (t: Array<[number, string]>) => t.filter(([n]) => n >= 3).map(([n, w]) => `${n}:${w}`);
const std = (t: Array<[number, string]>) => t.filter(([n]) => n < 3).map(([n]) => n);

/** The read end of a pipe holding DATA and no writer left (a FIFO in the test directory: Node has no pipe()). */
function pipeWith(data: string): number {
  // opened read-write first so that no open blocks, DATA written, then a read-only end and the others closed
  const fifo = join(base!.dir, `fifo-${Math.random().toString(36).slice(2)}`);
  execFileSync('mkfifo', [fifo]);
  const rd = openSync(fifo, 'r+');
  const wr = openSync(fifo, 'w');
  writeFileSync(wr, data);
  closeSync(wr);
  // the reader sees EOF only when no writer is left: reopen read-only on the same FIFO, then drop the read-write one
  const ro = openSync(`/proc/self/fd/${rd}`, 'r');
  closeSync(rd);
  return ro;
}

const SHOW = 'ls -l /proc/self/fd; echo "env=$LISTEN_FDS/$LISTEN_PID"; cat <&3; cat <&4';

describe('exec --preserve-fds, runc and nspawn-oci side by side (root)', () => {
  it('plain exec --preserve-fds 2: 3 is a pipe passed in, 4 a file; the same descriptors and data under both, nothing else', async () => {
    const seen: Record<string, { table: Array<[number, string]>; out: string }> = {};
    for (const rt of runtimes) {
      const p = pipeWith(`through-the-pipe-${rt.name}\n`);
      const f = openSync(join(base!.dir, 'four'), 'r');
      try {
        const r = await exec(rt, ['--preserve-fds', '2', rt.id, 'sh', '-c', SHOW], [p, f]);
        expect(r.code, `${rt.name}: ${r.err}`).toBe(0);
        expect(r.out).toContain(`through-the-pipe-${rt.name}`);
        expect(r.out).toContain('file-on-four');
        expect(r.out).toContain('env=/');
        seen[rt.name] = { table: fdTable(r.out), out: r.out };
      } finally {
        closeSync(p);
        closeSync(f);
      }
    }
    // 3 the pipe (a FIFO's), 4 the file (/proc shows the host's path: it is the host's file); busybox ls keeps no fd of its own
    for (const t of [seen.runc!.table, seen['nspawn-oci']!.table]) expect(std(t)).toEqual([0, 1, 2]);
    expect(from3(seen['nspawn-oci']!.table)).toEqual(from3(seen.runc!.table));
    expect(from3(seen.runc!.table)).toEqual([`3:${base!.dir}/FIFO`, `4:${base!.dir}/four`]);
  });

  it('without --preserve-fds none of the caller\'s descriptors reach the process, under both', async () => {
    const tables: Array<Array<[number, string]>> = [];
    for (const rt of runtimes) {
      const f = openSync(join(base!.dir, 'four'), 'r');
      try {
        const r = await exec(rt, [rt.id, 'ls', '-l', '/proc/self/fd'], [f]);
        expect(r.code, `${rt.name}: ${r.err}`).toBe(0);
        tables.push(fdTable(r.out));
      } finally {
        closeSync(f);
      }
    }
    for (const t of tables) expect(std(t)).toEqual([0, 1, 2]);
    expect(from3(tables[1]!)).toEqual(from3(tables[0]!));
    expect(from3(tables[0]!)).toEqual([]);
  });

  it('--process JSON with --preserve-fds 1: the process of the file gets 3 (and its env, cwd)', async () => {
    const outs: string[] = [];
    for (const rt of runtimes) {
      const file = join(base!.dir, `process-${rt.name}.json`);
      writeFileSync(file, JSON.stringify({ terminal: false, user: { uid: 0, gid: 0 }, cwd: '/tmp', env: ['PATH=/bin:/sbin', 'WHO=proc'], args: ['sh', '-c', 'pwd; echo "who=$WHO"; cat <&3; ls -l /proc/self/fd'] }));
      const p = pipeWith('from-the-process-file\n');
      try {
        const r = await exec(rt, ['--process', file, '--preserve-fds', '1', rt.id], [p]);
        expect(r.code, `${rt.name}: ${r.err}`).toBe(0);
        expect(r.out).toMatch(/^\/tmp$/m);
        expect(r.out).toContain('who=proc');
        expect(r.out).toContain('from-the-process-file');
        outs.push(r.out);
      } finally {
        closeSync(p);
      }
    }
    expect(from3(fdTable(outs[1]!))).toEqual(from3(fdTable(outs[0]!)));
    expect(from3(fdTable(outs[0]!))).toEqual([`3:${base!.dir}/FIFO`]);
  });

  it('--detach --preserve-fds 1: the process keeps the call\'s stdio and gets 3; the runtime returns at once', async () => {
    const outs: string[] = [];
    for (const rt of runtimes) {
      const pidFile = join(base!.dir, `exec-${rt.name}.pid`);
      const p = pipeWith('detached-read\n');
      try {
        // the process's output comes on the pipes the runtime was given; they close when it ends
        const r = await exec(rt, ['--detach', '--pid-file', pidFile, '--preserve-fds', '1', rt.id, 'sh', '-c', 'sleep 0.3; cat <&3; ls -l /proc/self/fd'], [p]);
        expect(r.code, `${rt.name}: ${r.err}`).toBe(0);
        expect(r.out).toContain('detached-read');
        expect(Number(readFileSync(pidFile, 'utf8'))).toBeGreaterThan(1);
        outs.push(r.out);
      } finally {
        closeSync(p);
      }
    }
    // detached, both give the process the call's own stdio: here the whole table is the same
    expect(fdTable(outs[1]!)).toEqual(fdTable(outs[0]!));
    expect(fdTable(outs[0]!).map(([n, w]) => `${n}:${w}`)).toEqual(['0:socket', '1:socket', '2:socket', `3:${base!.dir}/FIFO`]);
  });

  it('--tty --detach --console-socket with --preserve-fds 1: 0-2 are the pty whose master went to the socket, 3 the pipe', async () => {
    const outs: string[] = [];
    for (const rt of runtimes) {
      const sock = join(base!.dir, `console-${rt.name}.sock`);
      const recv = spawn(receiver, [sock, '30', '100', 'go\n'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let got = '';
      let rerr = '';
      recv.stdout!.on('data', (d: Buffer) => (got += d.toString()));
      recv.stderr!.on('data', (d: Buffer) => (rerr += d.toString()));
      const recvDone = new Promise<number | null>((res) => recv.on('close', res));
      for (let i = 0; i < 100 && !rerr.includes('listening'); i++) await new Promise((r) => setTimeout(r, 20));
      const p = pipeWith('tty-and-pipe\n');
      try {
        const r = await exec(rt, ['--tty', '--detach', '--console-socket', sock, '--preserve-fds', '1', rt.id, 'sh', '-c', 'read x; echo "got=$x"; tty; stty size; cat <&3; ls -l /proc/self/fd'], [p]);
        expect(r.code, `${rt.name}: ${r.err}`).toBe(0);
      } finally {
        closeSync(p);
      }
      expect(await recvDone, rerr).toBe(0);
      expect(rerr).toContain('name=/dev/ptmx');
      expect(got).toContain('got=go');
      expect(got).toMatch(/^\/dev\/pts\/\d+\r?$/m);
      expect(got).toMatch(/^30 100\r?$/m);
      expect(got).toContain('tty-and-pipe');
      outs.push(got.replace(/\r/g, ''));
    }
    expect(fdTable(outs[1]!)).toEqual(fdTable(outs[0]!));
    expect(fdTable(outs[0]!).map(([n, w]) => `${n}:${w}`)).toEqual(['0:pty', '1:pty', '2:pty', `3:${base!.dir}/FIFO`]);
  });

  it('a preserved descriptor that is not open: runc\'s words under both, and nothing runs', async () => {
    for (const rt of runtimes) {
      const r = await exec(rt, ['--preserve-fds', '40', rt.id, 'sh', '-c', 'echo ran'], []);
      expect(r.code, rt.name).toBe(255);
      expect(r.out).not.toContain('ran');
      expect(r.err).toMatch(/exec failed: unable to stat preserved-fd \d+ \(of 40\)/);
    }
  });
});
