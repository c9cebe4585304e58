/**
 * nspawnctl's native front end (bin/nspawnctl → dist/nspawnctl-front-linux-ARCH, native/ctl-front.c) against the Node
 * command (bin/nspawnctl-node) on the same nspawnd: list (no machine, machines running with odd OS fields, a user who
 * is not root, every output and legend option), start, poweroff, terminate and kill (done, and refused: an unknown
 * machine, an invalid name, a name with quotes and non-ASCII, none at all) give the same stdout, stderr and exit
 * status. Then that the front end really served them (with no node on PATH its verbs still work, the others say node
 * is missing), that what it does not serve (another verb, an option it does not know, no daemon) is the Node
 * command's answer, and that bin/nspawnctl without a front end for the machine runs Node. Root: a private nspawnd
 * with busybox machines dm-cf-* under /var/tmp/nspawn-test-dm-cf-*; nothing is left.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ChildProcess, spawn } from 'node:child_process';
import type { Server } from 'node:net';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVarlinkServer, varlinkCall, VarlinkError } from '@nspawn/runtime';
import { makeBusyboxTree } from './helpers/busybox-tree.js';
import { makeTempDir, REPO } from './helpers/containers.js';

const CTL = join(REPO, 'apps/cli/bin/nspawnctl');
const NODE_CTL = join(REPO, 'apps/cli/bin/nspawnctl-node');
const NSPAWND = join(REPO, 'apps/cli/bin/nspawnd');
const FRONT = join(REPO, 'apps/cli/dist', `nspawnctl-front-linux-${process.arch}`);
const PATH = `${join(process.execPath, '..')}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;

let base: ReturnType<typeof makeTempDir> | undefined;
let daemon: ChildProcess | undefined;
let env: NodeJS.ProcessEnv = {};
let sock = '';

interface Res {
  status: number | null;
  out: string;
  err: string;
}

function run(cmd: string[], e: NodeJS.ProcessEnv = env): Res {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { env: e, encoding: 'utf8', timeout: 60000, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error) throw r.error;
  return { status: r.status, out: r.stdout, err: r.stderr };
}
const front = (args: string[], e?: NodeJS.ProcessEnv) => run([CTL, ...args], e);
const node = (args: string[], e?: NodeJS.ProcessEnv) => run([process.execPath, NODE_CTL, ...args], e);
/** a PATH with what bin/nspawnctl may need (readlink, uname, chmod) and no node */
function noNodePath(): NodeJS.ProcessEnv {
  const dir = join(base!.dir, 'no-node');
  if (!existsSync(dir)) {
    mkdirSync(dir);
    for (const t of ['readlink', 'uname', 'chmod']) symlinkSync(`/usr/bin/${t}`, join(dir, t));
  }
  return { ...env, PATH: dir };
}
const asNobody = (cmd: string[]) => ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', ...cmd];

/** status's "Since: DATE; 4s ago": the two calls run one after the other, maybe a second apart */
const sinceAgo = (r: Res): Res => ({ ...r, out: r.out.replace(/^( +Since: [^;\n]+); [^\n]+ ago$/gm, '$1; N ago') });

/** the same call through both: the same answer */
function same(args: string[], e?: NodeJS.ProcessEnv): Res {
  const a = front(args, e);
  const b = node(args, e);
  expect(sinceAgo(a), `nspawnctl ${args.join(' ')}`).toEqual(sinceAgo(b));
  return a;
}

/** the list in each form the front end serves, the same through both */
function sameLists(): Res[] {
  const forms = [[], ['list'], ['list', '--no-legend'], ['--no-legend'], ['-o', 'json', 'list'], ['list', '-ojson-pretty'], ['list', '--output=json'], ['--output', 'short', 'list'],
    ['list', '-o', 'table', '--no-pager', '-q', '--no-ask-password'], ['-a', 'list', '--all', 'extra', 'operands']];
  return forms.map((f) => same(f));
}

const start = (name: string) => varlinkCall(sock, 'io.nspawn.Machine.Start', { name, command: ['/bin/sh', '-c', 'exec sleep 3600'] });
async function machines(): Promise<string[]> {
  const r = node(['list', '--no-legend']);
  return r.out.split('\n').filter(Boolean).map((l) => l.split(' ')[0]!);
}
async function waitListed(name: string) {
  for (let i = 0; i < 200 && !(await machines()).includes(name); i++) await new Promise((r) => setTimeout(r, 50));
  expect(await machines()).toContain(name);
}
async function waitGone(name: string) {
  for (let i = 0; i < 200 && (await machines()).includes(name); i++) await new Promise((r) => setTimeout(r, 50));
  expect(await machines()).not.toContain(name);
}

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error('these tests must run as root: they start containers');
  if (!existsSync(FRONT)) throw new Error(`${FRONT} is missing: run 'pnpm build' in apps/cli`);
  base = makeTempDir('nspawn-test-dm-cf-');
  for (const d of ['run', 'etc', 'log', 'machines']) mkdirSync(join(base.dir, d));
  chmodSync(base.dir, 0o755);
  env = {
    PATH,
    NSPAWN_CODE_CACHE: '0',
    NSPAWND_RUNTIME_DIR: join(base.dir, 'run'),
    NSPAWND_CONFIG_DIR: join(base.dir, 'etc'),
    NSPAWND_LOG_DIR: join(base.dir, 'log'),
    NSPAWND_MACHINES_DIR: join(base.dir, 'machines'),
  };
  sock = join(base.dir, 'run/io.systemd.Machine');
  for (const name of ['dm-cf-a', 'dm-cf.b-2', 'dm-cf-x', 'dm-cf-y']) {
    const tree = makeBusyboxTree(join(base.dir, 'machines', name), { probe: false });
    // OS fields of odd characters: quotes, non-ASCII, a character outside the BMP (two UTF-16 units: the widths)
    if (name === 'dm-cf-a') writeFileSync(join(tree, 'usr/lib/os-release'), 'ID="bü\\"sy\tbox"\nVERSION_ID=1😀2\nPRETTY_NAME=x\n');
    if (name === 'dm-cf.b-2') writeFileSync(join(tree, 'usr/lib/os-release'), 'NAME=none\n');
    // (`start` boots the image: an init that stays)
    rmSync(join(tree, 'sbin/init'), { force: true });
    writeFileSync(join(tree, 'sbin/init'), '#!/bin/sh\nexec sleep 3600\n', { mode: 0o755 });
  }
  daemon = spawn(process.execPath, [NSPAWND], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  await new Promise<void>((res, rej) => {
    let out = '';
    daemon!.stderr!.on('data', (x: Buffer) => {
      out += x;
      if (out.includes('listening on')) res();
    });
    daemon!.on('exit', () => rej(new Error(`nspawnd exited: ${out}`)));
  });
}, 120000);

afterAll(async () => {
  if (daemon && daemon.exitCode === null) {
    for (const m of await machines()) await varlinkCall(sock, 'io.systemd.Machine.Terminate', { name: m }).catch(() => {});
    for (const m of ['dm-cf-a', 'dm-cf.b-2', 'dm-cf-x', 'dm-cf-y']) await waitGone(m).catch(() => {});
    const done = new Promise((r) => daemon!.on('exit', r));
    daemon.kill('SIGTERM');
    await done;
  }
  const left = base?.remove() ?? [];
  expect(left, 'mounts left under the test directory').toEqual([]);
}, 120000);

describe('nspawnctl front end: the same answers as the Node command', () => {
  it('list with no machine', () => {
    const [plain, , noLegend, , json] = sameLists();
    expect(plain).toEqual({ status: 0, out: '0 machines listed.\n', err: '' });
    expect(noLegend!.out).toBe('');
    expect(json!.out).toBe('[]\n');
  });

  it('list with machines running (odd OS fields, several addresses or none), for root and for another user', async () => {
    await start('dm-cf-a');
    await start('dm-cf.b-2');
    // (until each runs in its own root: just after the start, nspawnd reads the host's os-release through the leader)
    for (let i = 0; i < 200 && !/\ndm-cf\.b-2 +container +nspawnd +- /.test(node(['list']).out); i++) await new Promise((r) => setTimeout(r, 50));
    const [plain, , , , json] = sameLists();
    expect(plain!.out).toMatch(/^MACHINE +CLASS +SERVICE +OS +VERSION +ADDRESSES\ndm-cf-a +container +nspawnd +bü"sy\tbox +1😀2 /);
    expect(plain!.out).toMatch(/\ndm-cf\.b-2 +container +nspawnd +- +- /);
    expect(plain!.out).toMatch(/\n\n2 machines listed\.\n$/);
    expect(JSON.parse(json!.out).map((r: { machine: string }) => r.machine)).toEqual(['dm-cf-a', 'dm-cf.b-2']);
    const a = run(asNobody([CTL, 'list']));
    expect(a).toEqual(run(asNobody([process.execPath, NODE_CTL, 'list'])));
    expect(a.out).toBe(plain!.out);
    expect(run(asNobody([CTL, '-o', 'json-pretty']))).toEqual(run(asNobody([process.execPath, NODE_CTL, '-o', 'json-pretty'])));
  });

  it('start, poweroff, terminate and kill done: nothing said, status 0, the same effect', async () => {
    expect(front(['start', 'dm-cf-x'])).toEqual({ status: 0, out: '', err: '' });
    expect(node(['start', 'dm-cf-y'])).toEqual({ status: 0, out: '', err: '' });
    await waitListed('dm-cf-x');
    await waitListed('dm-cf-y');
    // a second start of a running machine: nspawnd's error, the same words
    same(['start', 'dm-cf-x']);
    expect(front(['terminate', 'dm-cf-x'])).toEqual({ status: 0, out: '', err: '' });
    expect(node(['terminate', 'dm-cf-y'])).toEqual({ status: 0, out: '', err: '' });
    await waitGone('dm-cf-x');
    await waitGone('dm-cf-y');
    // (a signal the machine's PID 1 does not handle changes nothing: each is then terminated)
    for (const [verb, via] of [['poweroff', front], ['reboot', node], ['kill', front], ['poweroff', node], ['reboot', front], ['kill', node]] as const) {
      await start('dm-cf-x');
      expect(via([verb, 'dm-cf-x']), verb).toEqual({ status: 0, out: '', err: '' });
      await varlinkCall(sock, 'io.systemd.Machine.Terminate', { name: 'dm-cf-x' });
      await waitGone('dm-cf-x');
    }
  }, 120000);

  it('refusals: an unknown machine, an invalid name, odd characters, no name, several names', () => {
    const odd = `dm-cf ünï"x\\y\t😀`;
    for (const args of [
      ['terminate', 'dm-cf-nope'],
      ['poweroff', odd],
      ['reboot', 'dm-cf-nope'],
      ['kill', odd],
      ['kill', `dm-cf-"ü😀`],
      ['start', 'bad_name'],
      ['start', odd],
      ['start', 'dm-cf-noimage'],
      ['start'],
      ['poweroff'],
      ['reboot'],
      ['kill'],
      ['terminate'],
      ['terminate', 'dm-cf-nope', 'dm-cf-a'],
      ['start', 'dm-cf-a', 'bad_name'],
      ['-o', 'json', 'terminate', '--no-legend', 'dm-cf-nope'],
    ]) {
      const r = same(args);
      expect(r.status, args.join(' ')).toBe(1);
      expect(r.err, args.join(' ')).toMatch(/^[^\n]+\n$/);
    }
    expect(front(['terminate', 'dm-cf-nope', 'dm-cf-a']).err).toBe("No machine 'dm-cf-nope' known.\n");
    expect(front(['start', 'bad_name']).err).toBe('Invalid machine name bad_name.\n');
  });

  it('what it does not serve is the Node command’s: other verbs, options, users, no daemon', () => {
    for (const args of [['status', 'dm-cf-a'], ['show', 'dm-cf-a'], ['list', '--no-leg'], ['list', '-qa'], ['list', '--', 'x'], ['list', '-o', 'yaml'], ['list', '-o'],
      ['--help'], ['--version'], ['frobnicate'], ['kill', '-s', 'HUP', 'dm-cf-nope'], ['list', '--bogus']])
      same(args);
    expect(run(asNobody([CTL, 'terminate', 'dm-cf-a']))).toEqual(run(asNobody([process.execPath, NODE_CTL, 'terminate', 'dm-cf-a'])));
    expect(run(asNobody([CTL, 'terminate', 'dm-cf-a'])).err).toMatch(/^Need to be root/);
    // $POSIXLY_CORRECT: the options after the verb are operands
    same(['list', '--no-legend'], { ...env, POSIXLY_CORRECT: '1' });
    // no daemon: the Node command says so (or reads machined's machines on a systemd host)
    const none = { ...env, NSPAWND_RUNTIME_DIR: join(base!.dir, 'etc') };
    for (const args of [['list'], ['terminate', 'dm-cf-a'], ['start', 'dm-cf-a']]) same(args, none);
    // a runtime directory path.join() would rewrite: the same socket, asked by Node
    same(['list'], { ...env, NSPAWND_RUNTIME_DIR: `${join(base!.dir, 'run')}/` });
  });
});

describe('nspawnctl front end: who answers', () => {
  it('serves its verbs without starting Node; the others need it', () => {
    const noNode = noNodePath();
    expect(front(['list'], noNode)).toEqual(front(['list']));
    expect(front(['terminate', 'dm-cf-nope'], noNode)).toEqual({ status: 1, out: '', err: "No machine 'dm-cf-nope' known.\n" });
    const other = front(['status', 'dm-cf-a'], noNode);
    expect(other.status).toBe(1);
    expect(other.err).toMatch(/^nspawnctl: cannot run node \(.*nspawnctl-node\): No such file or directory\n$/);
  });

  it('the prebuilt front end of the other architecture answers the same (emulated: qemu-user-static, from scripts/setup.sh --test)', () => {
    const otherArch = process.arch === 'arm64' ? 'x64' : 'arm64';
    const qemu = otherArch === 'arm64' ? 'qemu-aarch64-static' : 'qemu-x86_64-static';
    const other = join(REPO, 'apps/cli/dist', `nspawnctl-front-linux-${otherArch}`);
    expect(existsSync(other), `${other} is missing: the build prebuilds it (arm64 on Debian: clang libc6-dev-arm64-cross)`).toBe(true);
    const probe = spawnSync(qemu, ['--version'], { encoding: 'utf8' });
    expect(probe.error, `${qemu} is missing: apt-get install qemu-user-static`).toBeUndefined();
    for (const args of [['list'], ['-o', 'json'], ['--no-legend', 'list', '-o', 'json-pretty'], ['terminate', 'dm-cf-nope'], ['start', 'bad_name'], ['kill']])
      expect(run([qemu, other, NODE_CTL, ...args]), args.join(' ')).toEqual(node(args));
  });

  it('bin/nspawnctl without a front end for this machine runs the Node command (a symlink to it too)', () => {
    // a copy of the package without dist/nspawnctl-front-linux-*
    const pkg = join(base!.dir, 'pkg');
    mkdirSync(join(pkg, 'bin'), { recursive: true });
    mkdirSync(join(pkg, 'dist'));
    for (const f of readdirSync(join(REPO, 'apps/cli/bin'))) copyFileSync(join(REPO, 'apps/cli/bin', f), join(pkg, 'bin', f));
    chmodSync(join(pkg, 'bin/nspawnctl'), 0o755);
    for (const f of readdirSync(join(REPO, 'apps/cli/dist')).filter((f) => f.endsWith('.cjs'))) symlinkSync(join(REPO, 'apps/cli/dist', f), join(pkg, 'dist', f));
    symlinkSync(join(pkg, 'bin/nspawnctl'), join(pkg, 'link'));
    const noNode = noNodePath();
    for (const cmd of [join(pkg, 'bin/nspawnctl'), join(pkg, 'link')]) {
      expect(run([cmd, 'list'])).toEqual(node(['list']));
      // (Node's: without node, even list fails)
      expect(run([cmd, 'list'], noNode).status).not.toBe(0);
    }
    // with the front end in place, through a symlink: served
    copyFileSync(FRONT, join(pkg, 'dist', `nspawnctl-front-linux-${process.arch}`));
    chmodSync(join(pkg, 'dist', `nspawnctl-front-linux-${process.arch}`), 0o644);
    expect(run([join(pkg, 'link'), 'list'], noNode)).toEqual(node(['list']));
  });
});

describe('nspawnctl front end: replies of a stand-in nspawnd', () => {
  // what List answers (each call), or the error it throws; the stand-in is in this process: the commands run async
  let answer: () => Record<string, unknown>[] = () => [];
  let server: Server | undefined;
  let standIn: NodeJS.ProcessEnv = {};
  beforeAll(async () => {
    const dir = join(base!.dir, 'stand-in');
    mkdirSync(dir);
    standIn = { ...env, NSPAWND_RUNTIME_DIR: dir };
    server = createVarlinkServer({
      methods: {
        'io.systemd.Machine.List': (_p, ctx) => {
          const all = answer();
          if (all.length === 0) throw new VarlinkError('io.systemd.Machine.NoSuchMachine', {});
          for (const m of all.slice(0, -1)) ctx.reply(m);
          return all[all.length - 1]!;
        },
      },
    });
    await new Promise<void>((r) => server!.listen(join(dir, 'io.systemd.Machine'), () => r()));
  });
  afterAll(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

  const runAsync = async (cmd: string[]): Promise<Res> => {
    const r = await execa(cmd[0]!, cmd.slice(1), { env: standIn, extendEnv: false, reject: false, stripFinalNewline: false, timeout: 60000 });
    return { status: r.exitCode ?? null, out: r.stdout, err: r.stderr };
  };
  async function sameAsync(args: string[]): Promise<Res> {
    const a = await runAsync([CTL, ...args]);
    const b = await runAsync([process.execPath, NODE_CTL, ...args]);
    expect(a, `nspawnctl ${args.join(' ')}`).toEqual(b);
    return a;
  }
  const v6 = (...groups: number[]) => ({ family: 10, address: groups.flatMap((g) => [g >> 8, g & 255]) });
  const m = (name: string, more: Record<string, unknown> = {}) => ({ name, class: 'container', service: 'nspawn', ...more });

  it('addresses as formatAddress() writes them: IPv4, IPv6 and its first run of zero groups, several ("…")', async () => {
    const sets = [
      [{ family: 2, address: [10, 0, 0, 1] }],
      [{ family: 2, address: [192, 168, 7, 254] }, v6(0xfe80, 0, 0, 0, 0, 0, 0, 1)],
      [v6(0, 0, 0, 0, 0, 0, 0, 0)],
      [v6(0, 0, 0, 0, 0, 0, 0, 1)],
      [v6(0xfe80, 0, 0, 0, 0, 0, 0, 0)],
      [v6(0x2001, 0xdb8, 0, 0, 1, 0, 0, 1)],
      [v6(0x2001, 0, 0xdb8, 0, 1, 0, 0, 0xabcd)],
      [v6(1, 0, 2, 0, 3, 0, 4, 0)],
      [v6(0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff), { family: 2, address: [1, 2, 3, 4] }, { family: 2, address: [5, 6, 7, 8] }],
    ];
    answer = () => sets.map((addresses, i) => m(`dm-cf-n${i}`, { addresses, ifIndices: [i] }));
    const r = await sameAsync(['list']);
    expect(r.out).toContain(' 2001:db8::1:0:0:1\n');
    expect(r.out).toContain(' 192.168.7.254…\n');
    expect(r.out).toContain(' ::\n');
    const j = await sameAsync(['-o', 'json', 'list']);
    expect(JSON.parse(j.out)[1].addresses).toEqual(['192.168.7.254', 'fe80::1']);
    await sameAsync(['-o', 'json-pretty']);
    await sameAsync(['list', '--no-legend']);
  });

  it('fields missing or null, OS fields of any width, many machines (replies over several reads)', async () => {
    answer = () => [
      m('dm-cf-1', { service: null, OSRelease: null, addresses: null }),
      { name: 'dm-cf-2', class: 'container' },
      m('dm-cf-3', { OSRelease: ['NAME=x', 'ID=', 'VERSION_ID=', 'ID=second'] }),
      m('dm-cf-4', { OSRelease: ['ID=日本語😀😀', 'VERSION_ID=\u00e9\u0301', 'IDX=no'], service: 'a\u0000b' }),
      m('dm-cf-5', { class: 'vm', service: '' }),
    ];
    for (const args of [['list'], ['-o', 'json'], ['-o', 'json-pretty'], ['--no-legend']]) await sameAsync(args);
    answer = () => Array.from({ length: 3000 }, (_, i) => m(`dm-cf-many-${i}`, { OSRelease: [`ID=os${i % 7}`, `VERSION_ID=${'v'.repeat(i % 50)}`], addresses: [{ family: 2, address: [10, 1, i >> 8, i & 255] }] }));
    const r = await sameAsync(['list']);
    expect(r.out).toMatch(/\n3000 machines listed\.\n$/);
    await sameAsync(['-o', 'json']);
  });

  it('a reply it does not fully understand is asked again by Node, with the same answer', async () => {
    for (const bad of [
      [m('dm-cf-x', { class: undefined })],
      [{ name: 42, class: 'container' }],
      [m('dm-cf-\ud800x')],
      [m('dm-cf-x', { OSRelease: ['ID=a', 7] })],
      [m('dm-cf-x', { OSRelease: 'ID=a' })],
      [m('dm-cf-x', { addresses: [{ family: 2, address: [10, 0, 0, 1.5] }] })],
      [m('dm-cf-x', { addresses: [{ family: 10, address: [1, 2, 3] }] })],
      [m('dm-cf-x', { addresses: [{ family: 10, address: Array(16).fill(256) }] })],
      [m('dm-cf-x', { addresses: [{ family: '2', address: [1, 2, 3, 4] }] })],
      [m('dm-cf-x', { addresses: {} })],
    ]) {
      answer = () => bad;
      await sameAsync(['list']);
      await sameAsync(['-o', 'json']);
    }
  });

  it('errors of nspawnd as the Node command words them', async () => {
    for (const e of [
      new VarlinkError('org.varlink.service.PermissionDenied', { message: 'no' }),
      new VarlinkError('io.nspawn.Failed', { message: 'it broke: "x"' }),
      new VarlinkError('io.nspawn.Failed', {}),
    ]) {
      answer = () => {
        throw e;
      };
      const r = await sameAsync(['list']);
      expect(r.status).toBe(1);
    }
  });
});
