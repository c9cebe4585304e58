/**
 * nspawn-oci's native front end (bin/nspawn-oci → dist/nspawn-oci-front-linux-ARCH, @nspawn/runtime native/oci-*.c)
 * against the Node command (bin/nspawn-oci-node) on the same state: both read the record the Node monitor writes,
 * and answer state, start, kill and delete with the same output, the same errors (runc's words: an unknown id, a
 * second start, a delete of a running container without --force, kill of a stopped one) and the same exit codes.
 * With a PATH that has no node, the front end's own verbs still run (they start no Node) and what it leaves to Node
 * says so: a record of an older build (no `hooks`), hooks to run, an option it does not know. Root: busybox bundles
 * and the state under a temp directory; nothing is left.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, cpSync, existsSync, openSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, REPO } from './helpers/containers.js';

const FRONT = join(REPO, 'apps/cli/bin/nspawn-oci');
const NODE_CMD = join(REPO, 'apps/cli/bin/nspawn-oci-node');
const ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };
let base: ReturnType<typeof makeTempDir> | undefined;
let bundle = '';
let state = '';
/** a PATH with uname (the wrapper asks it the architecture) and no node */
let noNode: NodeJS.ProcessEnv = {};

interface Res {
  code: number | null;
  out: string;
  err: string;
}

let runs = 0;
/** CMD's exit code, stdout and stderr (files, not pipes: a create's monitor keeps its stdio for the container's life) */
function run(cmd: string[], env: NodeJS.ProcessEnv = ENV): Res {
  // (files of their own each time: the monitor of a create writes to its stdio later)
  const [o, e] = ['out', 'err'].map((n) => join(base!.dir, `run${++runs}.${n}`));
  const fds = [o, e].map((f) => openSync(f!, 'w'));
  try {
    const r = spawnSync(cmd[0]!, cmd.slice(1), { env, stdio: ['ignore', fds[0]!, fds[1]!], timeout: 60000 });
    return { code: r.status, out: readFileSync(o!, 'utf8'), err: readFileSync(e!, 'utf8') };
  } finally {
    for (const fd of fds) closeSync(fd);
  }
}
const front = (args: string[], env: NodeJS.ProcessEnv = ENV) => run([FRONT, '--root', state, ...args], env);
const node = (args: string[]) => run(['node', NODE_CMD, '--root', state, ...args]);

/** the same call through both: the same answer */
function same(args: string[]): Res {
  const a = front(args);
  const b = node(args);
  expect(a, `front end: ${args.join(' ')}`).toEqual(b);
  return a;
}

function config(edit: (spec: Record<string, any>) => void) {
  const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
  edit(spec);
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec, null, 2));
}

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error('oci-front: needs root');
  const arch = process.arch === 'arm64' ? 'arm64' : 'x64';
  const bin = join(REPO, `apps/cli/dist/nspawn-oci-front-linux-${arch}`);
  if (!existsSync(bin)) throw new Error(`${bin} is missing: pnpm build (the runtime builds it, the CLI's bundle copies it)`);
  base = makeTempDir('nspawn-oci-front-');
  bundle = join(base.dir, 'bundle');
  state = join(base.dir, 'state');
  mkdirSync(state);
  mkdirSync(join(base.dir, 'nonode'));
  symlinkSync('/usr/bin/uname', join(base.dir, 'nonode/uname'));
  noNode = { PATH: join(base.dir, 'nonode') };
  await execa(join(REPO, 'scripts/make-busybox-tree.sh'), [join(bundle, 'rootfs')], { stdout: 'ignore' });
  await execa(FRONT, ['spec', '-b', bundle], { env: ENV });
  config((s) => {
    s.process.terminal = false;
    s.process.args = ['sleep', '60'];
    s.annotations = { plain: 'x', quoted: 'a "b" \\ c', control: 'tab\there\nnl\u0001', unicode: 'ü → 𝄞' };
  });
});

afterAll(async () => {
  if (!base) return;
  for (const id of existsSync(state) ? readdirSync(state) : []) await execa('node', [NODE_CMD, '--root', state, 'delete', '-f', id], { env: ENV, reject: false });
  const left = base.remove();
  expect(left).toEqual([]);
});

describe('nspawn-oci: the native front end and the Node command on the same state', () => {
  it('errors before any state: no id, a bad id, an unknown id, an unknown signal; delete --force of nothing succeeds', () => {
    expect(same(['state'])).toMatchObject({ code: 1, err: 'state: a container id is required\n' });
    expect(same(['state', 'a/b'])).toMatchObject({ code: 1, err: 'invalid container id format: a/b\n' });
    expect(same(['state', 'nosuch'])).toMatchObject({ code: 1, err: 'container does not exist: nosuch\n' });
    expect(same(['start', 'nosuch'])).toMatchObject({ code: 1, err: 'container does not exist: nosuch\n' });
    expect(same(['kill', 'nosuch', 'KILL'])).toMatchObject({ code: 1, err: 'container does not exist: nosuch\n' });
    expect(same(['kill', 'nosuch', 'NOSIG'])).toMatchObject({ code: 1, err: 'unknown signal "NOSIG"\n' });
    expect(same(['delete', 'nosuch'])).toMatchObject({ code: 1, err: 'container does not exist: nosuch\n' });
    expect(same(['delete', '--force', 'nosuch'])).toMatchObject({ code: 0, out: '', err: '' });
    // (the front end answered these itself: without node they are the same)
    expect(front(['state', 'nosuch'], noNode)).toMatchObject({ code: 1, err: 'container does not exist: nosuch\n' });
  });

  it('the error in --log, text and runc\'s JSON lines, as the Node command writes it', () => {
    for (const format of ['text', 'json']) {
      const logs = ['front', 'node'].map((w) => join(base!.dir, `${w}-${format}.log`));
      const a = run([FRONT, '--root', state, '--log', logs[0]!, '--log-format', format, 'state', 'nosuch'], noNode);
      const b = run(['node', NODE_CMD, '--root', state, '--log', logs[1]!, '--log-format', format, 'state', 'nosuch']);
      expect(a).toEqual(b);
      const [la, lb] = logs.map((f) => readFileSync(f, 'utf8'));
      const norm = (s: string) => s.replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/g, 'TIME');
      expect(norm(la!)).toBe(norm(lb!));
      expect(norm(la!)).toBe(format === 'json' ? '{"level":"error","msg":"container does not exist: nosuch","time":"TIME"}\n' : 'TIME error: container does not exist: nosuch\n');
    }
  });

  it('a container\'s life: create (front end), state in each status, start twice, delete while running, kill, delete', () => {
    const pidFile = join(base!.dir, 'f1.pid');
    // the monitor is Node's: without node the create fails, and says why
    expect(front(['create', '-b', bundle, '--pid-file', pidFile, 'f1'], noNode)).toMatchObject({ code: 1, err: expect.stringMatching(/^cannot run node/) });
    expect(existsSync(join(state, 'f1')), 'a failed create leaves nothing').toBe(false);
    expect(front(['create', '-b', bundle, '--pid-file', pidFile, 'f1'])).toEqual({ code: 0, out: '', err: '' });
    const pid = Number(readFileSync(pidFile, 'utf8'));
    expect(pid).toBeGreaterThan(1);
    expect(same(['create', '-b', bundle, 'f1'])).toMatchObject({ code: 1, err: 'container with id exists: f1\n' });
    const created = JSON.parse(same(['state', 'f1']).out);
    expect(created).toMatchObject({ id: 'f1', status: 'created', pid, bundle });
    expect(created.annotations).toEqual({ plain: 'x', quoted: 'a "b" \\ c', control: 'tab\there\nnl\u0001', unicode: 'ü → 𝄞' });
    expect(front(['start', 'f1'], noNode)).toEqual({ code: 0, out: '', err: '' });
    expect(JSON.parse(same(['state', 'f1']).out)).toMatchObject({ status: 'running', pid });
    expect(same(['start', 'f1'])).toMatchObject({ code: 1, err: 'cannot start a container that has already been started (running)\n' });
    expect(same(['delete', 'f1'])).toMatchObject({ code: 1, err: 'cannot delete container f1 that is not stopped: running\n' });
    expect(front(['kill', 'f1', 'KILL'], noNode)).toEqual({ code: 0, out: '', err: '' });
    for (let i = 0; i < 200 && JSON.parse(front(['state', 'f1']).out).status !== 'stopped'; i++) spawnSync('sleep', ['0.02']);
    expect(JSON.parse(same(['state', 'f1']).out)).toMatchObject({ status: 'stopped', pid: 0 });
    expect(same(['kill', 'f1'])).toMatchObject({ code: 1, err: 'container not running\n' });
    expect(same(['kill', '--all', 'f1', 'TERM'])).toMatchObject({ code: 0 });
    expect(same(['start', 'f1'])).toMatchObject({ code: 1, err: 'cannot start a container that has stopped\n' });
    expect(front(['delete', 'f1'], noNode)).toEqual({ code: 0, out: '', err: '' });
    expect(existsSync(join(state, 'f1'))).toBe(false);
  });

  it('delete --force of a created container (its monitor told to abort) and of a running one, by the front end alone', () => {
    for (const [id, startIt] of [['f2', false], ['f3', true]] as const) {
      expect(front(['create', '-b', bundle, id]).code).toBe(0);
      const r = JSON.parse(readFileSync(join(state, id, 'state.json'), 'utf8'));
      if (startIt) expect(front(['start', id], noNode).code).toBe(0);
      expect(front(['delete', '--force', id], noNode)).toEqual({ code: 0, out: '', err: '' });
      expect(existsSync(join(state, id))).toBe(false);
      // the container, its monitor and its cgroups are gone with it
      // (gone, or a zombie its reaper has not reaped yet: the monitor's parent, create, has left)
      const ended = (pid: number) => {
        try {
          return /^\d+ \(.*\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
        } catch {
          return true;
        }
      };
      expect(ended(r.pid)).toBe(true);
      expect(ended(r.monitor)).toBe(true);
      // (its own: the shared parent nspawn-oci/ stays while other containers are in it)
      expect(r.cgroups.filter((d: string) => d.endsWith(`/${id}`) && existsSync(d))).toEqual([]);
    }
  });

  it('leaves to Node what it does not serve: a record without hooks (an older build\'s), poststart hooks, options it does not know', () => {
    expect(front(['create', '-b', bundle, 'f4']).code).toBe(0);
    const file = join(state, 'f4', 'state.json');
    const record = JSON.parse(readFileSync(file, 'utf8'));
    expect(record.hooks).toEqual([]);
    // an older build's record: the front end reads it for state, but a start might have hooks to run
    const { hooks: _, ...old } = record;
    writeFileSync(file, JSON.stringify(old));
    expect(JSON.parse(same(['state', 'f4']).out).status).toBe('created');
    expect(front(['start', 'f4'], noNode)).toMatchObject({ code: 1, err: expect.stringMatching(/^nspawn-oci: cannot run node/) });
    writeFileSync(file, JSON.stringify({ ...record, hooks: ['poststart'] }));
    expect(front(['start', 'f4'], noNode)).toMatchObject({ code: 1, err: expect.stringMatching(/^nspawn-oci: cannot run node/) });
    expect(front(['state', '--bogus', 'f4'], noNode)).toMatchObject({ code: 1, err: expect.stringMatching(/^nspawn-oci: cannot run node/) });
    expect(front(['list'], noNode)).toMatchObject({ code: 1, err: expect.stringMatching(/^nspawn-oci: cannot run node/) });
    // a create with a terminal (--console-socket) is the front end's too: no Node command before the monitor, whose
    // start is what fails here (its word through the report pipe), and nothing is left
    expect(front(['create', '-b', bundle, '--console-socket', join(base!.dir, 'no.sock'), 'f6'], noNode)).toMatchObject({ code: 1, err: expect.stringMatching(/^cannot run node \(.*nspawn-oci-node\): No such file or directory\n$/) });
    expect(existsSync(join(state, 'f6'))).toBe(false);
    // with node there, the Node command does it
    writeFileSync(file, JSON.stringify(old));
    expect(front(['start', 'f4'])).toEqual({ code: 0, out: '', err: '' });
    expect(front(['delete', '-f', 'f4'])).toEqual({ code: 0, out: '', err: '' });
    expect(existsSync(join(state, 'f4'))).toBe(false);
  });

  it('a record copied under another root reads the same through both (the format is the files, nothing else)', () => {
    expect(front(['create', '-b', bundle, 'f5']).code).toBe(0);
    const other = join(base!.dir, 'other');
    mkdirSync(other);
    cpSync(join(state, 'f5', 'state.json'), join(other, 'f5', 'state.json'), { recursive: true });
    const a = run([FRONT, '--root', other, 'state', 'f5']);
    const b = run(['node', NODE_CMD, '--root', other, 'state', 'f5']);
    expect(a).toEqual(b);
    // no start.sock there: the same process, running
    expect(JSON.parse(a.out).status).toBe('running');
    expect(front(['delete', '-f', 'f5']).code).toBe(0);
  });
});
