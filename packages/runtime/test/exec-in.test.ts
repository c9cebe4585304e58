/**
 * The public functions over the helper's other modes, for real: execIn()/spawnIn() into a running container (what
 * nspawnctl shell/run/copy-* use), bindIn() (nspawnctl bind), and the peer-credential readers (nspawnd). Values that
 * look like anything (plan keys, options, newlines, empty strings) arrive as they were given.
 */
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, createConnection, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bindIn, execIn, leaderCgroupProcs, nodePrepareEnv, nodeTree, peerCredentials, peerCredentialsReader, prepareContainer, runContainer, spawnIn } from '../src/index.js';
import { makeTree, requireRoot } from './helpers.js';

let tree: ReturnType<typeof makeTree>;
let leader = 0;
let running: Promise<number>;

beforeAll(async () => {
  requireRoot();
  tree = makeTree();
  const p = prepareContainer({ directory: tree.root, consoleMode: 'pipe', parameters: ['/bin/sh', '-c', 'echo started; exec sleep 60'] }, nodePrepareEnv(nodeTree));
  const out = openSync(join(tree.dir, 'console'), 'w');
  let started: () => void;
  const ready = new Promise<void>((r) => (started = r));
  running = runContainer(p, { log: () => {}, onStart: (pid) => (leader = pid), onReady: () => started() }, undefined, ['ignore', out, out], []);
  await ready;
  closeSync(out);
}, 60_000);

afterAll(async () => {
  if (leader > 0) process.kill(leader, 'SIGKILL');
  await running;
  tree.cleanup();
}, 60_000);

/** runs OPTS in the container with stdout and stderr to a file; its status and what it wrote */
async function run(opts: Omit<Parameters<typeof execIn>[0], 'leader' | 'stdio'>) {
  const file = join(tree.dir, 'out');
  const fd = openSync(file, 'w');
  try {
    const status = await execIn({ ...opts, leader, stdio: ['ignore', fd, fd] });
    return { status, out: readFileSync(file, 'utf8') };
  } finally {
    closeSync(fd);
  }
}

describe('execIn', () => {
  it('runs the command in the container, its arguments and environment exactly as given', async () => {
    const args = ['usermap', '65536', 'nnp', '', 'a b', 'line\nbreak', '--', '-u', 'exec-in'];
    const r = await run({
      command: ['/bin/sh', '-c', 'printf "[%s]\\n" "$@"; echo "$FOO|$container"; pwd; cat /proc/1/comm', 'sh', ...args],
      env: { FOO: 'x\ny', PATH: '/bin:/usr/bin' },
      cwd: '/tmp',
    });
    expect(r.status).toBe(0);
    expect(r.out).toBe(`${args.map((a) => `[${a}]\n`).join('')}x\ny|\n/tmp\nsleep\n`);
  });
  it('as another user, with its groups; the exit status of the command, 127 for one that is not there', async () => {
    const r = await run({ command: ['sh', '-c', 'id -u; id -g; id -G; exit 7'], env: ['PATH=/bin'], uid: 1234, gid: 5678, groups: [5678, 42] });
    expect(r).toEqual({ status: 7, out: '1234\n5678\n5678 42\n' });
    expect((await run({ command: ['no-such-command'], env: ['PATH=/bin'] })).status).toBe(127);
  });
  it('in the container\'s cgroups, as its PID 1 is', async () => {
    expect(leaderCgroupProcs(leader).length).toBeGreaterThan(0);
    const r = await run({ command: ['sh', '-c', 'cat /proc/self/cgroup; echo ---; cat /proc/1/cgroup'], env: ['PATH=/bin'] });
    const [self, pid1] = r.out.split('---\n');
    expect(self).toBe(pid1);
    expect(self).toMatch(/^0::\/$/m); // the unified scope, the root of the container's cgroup namespace
  });
  it('spawnIn: its stdio as given (a pipe to the command\'s stdin)', async () => {
    const c = spawnIn({ leader, command: ['tr', 'a-z', 'A-Z'], env: ['PATH=/bin:/usr/bin'], stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    c.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    c.stdin!.end('usermap nnp\n');
    const status = await new Promise((r) => c.on('close', r));
    expect({ status, out }).toEqual({ status: 0, out: 'USERMAP NNP\n' });
  });
  it('refuses a value it cannot send before it starts anything', () => {
    expect(() => spawnIn({ leader, command: ['sh', 'a\0b'] })).toThrow(/NUL/);
  });
});

describe('bindIn', () => {
  it('bind mounts a host directory into the running container, made there when asked; read-only when asked', async () => {
    const src = join(tree.dir, 'shared');
    mkdirSync(src);
    writeFileSync(join(src, 'file'), 'from the host\n');
    await bindIn({ leader, source: src, destination: '/mnt/shared dir', mkdir: true, readOnly: true });
    const r = await run({ command: ['sh', '-c', 'cat "/mnt/shared dir/file"; touch "/mnt/shared dir/x" 2>/dev/null || echo read-only'], env: ['PATH=/bin'] });
    expect(r).toEqual({ status: 0, out: 'from the host\nread-only\n' });
  });
  it('says why it cannot', async () => {
    await expect(bindIn({ leader, source: join(tree.dir, 'missing'), destination: '/mnt/m' })).rejects.toThrow(/missing: No such file or directory/);
  });
});

describe('peer credentials', () => {
  let server: Server;
  let path: string;
  const accepted: Socket[] = [];
  beforeAll(async () => {
    path = join(tree.dir, 'sock');
    server = createServer((s) => accepted.push(s));
    await new Promise<void>((r) => server.listen(path, r));
  });
  afterAll(() => {
    for (const s of accepted) s.destroy();
    server.close();
  });
  const connect = async () => {
    const n = accepted.length;
    const c = createConnection(path);
    await new Promise((r) => c.on('connect', r));
    while (accepted.length === n) await new Promise((r) => setTimeout(r, 5));
    const fd = (accepted[n] as unknown as { _handle: { fd: number } })._handle.fd;
    return { c, fd };
  };
  it('of one connection, and of many by one reader', async () => {
    const me = { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() };
    const a = await connect();
    expect(await peerCredentials(a.fd)).toEqual(me);
    const reader = peerCredentialsReader();
    try {
      const b = await connect();
      expect(await Promise.all([reader.read(a.fd), reader.read(b.fd)])).toEqual([me, me]);
      expect(await reader.read(999_999)).toBeUndefined();
      b.c.destroy();
    } finally {
      reader.close();
    }
    a.c.destroy();
  });
});
