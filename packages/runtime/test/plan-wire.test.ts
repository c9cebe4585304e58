/**
 * The helper's plan can never be confused with what the user asked for (issue 15, 2), for real: arguments that look
 * like plan keys reach the payload as arguments (handed over and with a spawned helper), 100,000 arguments arrive
 * exactly, an argument list the payload's execve() cannot take is refused with one line before anything is made,
 * and 5,000 --bind mounts all appear in the container and leave nothing behind (also with -x).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { machineScope, nodePrepareEnv, nodeTree, planContainer, prepareContainer, probeHost, runPlan } from '../src/index.js';
import { makeTree, mountsUnder, NSPAWN_BIN, requireRoot } from './helpers.js';

beforeAll(requireRoot);
const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

const MODES = [
  { name: 'handed over', env: {} },
  { name: 'with a spawned helper', env: { NSPAWN_HANDOFF: '0' } },
] as const;

/** nspawn with ARGS (not spawnSync: a long run would block the test worker's own messages) */
function nspawn(args: string[], env: Record<string, string> = {}): Promise<{ status: number | null; out: string; err: string }> {
  const c = spawn(NSPAWN_BIN, ['--register=no', '--keep-unit', '--console=pipe', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let out = '';
  let err = '';
  c.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  c.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  return new Promise((resolve, reject) => {
    c.on('error', reject);
    c.on('close', (status) => resolve({ status, out, err }));
  });
}

const md5 = (s: string) => createHash('md5').update(s).digest('hex');
/** the payload's view of its arguments: $0 and "$@" one per line, hashed, then how many */
const SHOW_ARGS = 'printf "%s\\n" "$0" "$@" | md5sum; echo "$#"';
const expectedArgs = (args: string[]) => `${md5(args.map((a) => `${a}\n`).join(''))}  -\n${args.length - 1}\n`;

/** Nothing of a start is left: no scope, no mount under DIR, nothing in DIR but the tree, no global image lock. */
function expectNothingLeft(dir: string, root: string, machine: string) {
  expect(mountsUnder(dir)).toEqual([]);
  expect(readdirSync(dir).filter((f) => f !== basename(root))).toEqual([]);
  expect(existsSync(join('/sys/fs/cgroup/unified', machineScope(machine).path))).toBe(false);
  const st = statSync(root);
  expect(existsSync(`/run/systemd/nspawn/locks/inode-${st.dev}:${st.ino}`)).toBe(false);
}

describe('arguments that look like plan keys stay arguments', () => {
  for (const mode of MODES) {
    it(`-U with the issue's tail of "nnp", "usermap 65536": the container gets the -U range (${mode.name})`, async () => {
      const t = makeTree();
      cleanups.push(t.cleanup);
      const args = ['x', ...Array.from({ length: 480 }, (_, i) => String(i + 1)), ...Array(40).fill('nnp'), 'usermap', '65536', 'nnp', 'op', 'arg', 'root', '/', ''];
      const r = await nspawn(['-q', '-D', t.root, '-U', '/bin/sh', '-c', `cat /proc/self/uid_map; grep NoNewPrivs /proc/self/status; ${SHOW_ARGS}`, ...args], mode.env);
      expect(r.err).toBe('');
      expect(r.status).toBe(0);
      const [map, nnp, ...rest] = r.out.split('\n');
      const [inside, outside, range] = map!.trim().split(/\s+/).map(Number);
      expect(inside).toBe(0);
      expect(outside).toBeGreaterThanOrEqual(0x80000); // a picked range, never host root
      expect(range).toBe(65536);
      expect(nnp).toMatch(/^NoNewPrivs:\s+0$/);
      expect(`${rest.join('\n')}`).toBe(expectedArgs(args));
    });
  }
});

describe('100,000 arguments', () => {
  const args = ['sh', ...Array.from({ length: 100_000 }, (_, i) => String(i + 1))];
  for (const mode of MODES) {
    it(`reach the payload exactly (${mode.name})`, async () => {
      const t = makeTree();
      cleanups.push(t.cleanup);
      const r = await nspawn(['-q', '-D', t.root, '/bin/sh', '-c', SHOW_ARGS, ...args], mode.env);
      expect(r.err).toBe('');
      expect(r.status).toBe(0);
      expect(r.out).toBe(expectedArgs(args));
    }, 60_000);
    it(`more than the payload's execve() can take (a smaller stack limit): one line, before anything is made, also with -x (${mode.name})`, async () => {
      const t = makeTree();
      cleanups.push(t.cleanup);
      for (const x of [[], ['-x']]) {
        const r = await nspawn(['-D', t.root, ...x, '--rlimit=STACK=1048576', '/bin/sh', '-c', SHOW_ARGS, ...args], mode.env);
        expect(r.status).toBe(1);
        expect(r.out).toBe('');
        // no "Spawning container": refused before the start
        expect(r.err).toMatch(/^[^\n]*execve\(\)[^\n]*Argument list too long[^\n]*\n$/);
        expectNothingLeft(t.dir, t.root, basename(t.root));
      }
    }, 60_000);
  }
});

describe('5,000 --bind', () => {
  for (const mode of MODES) {
    it(`all in the container, nothing left behind, also with -x (${mode.name})`, async () => {
      const t = makeTree();
      cleanups.push(t.cleanup);
      const src = join(t.dir, 'src');
      mkdirSync(src);
      writeFileSync(join(src, 'file'), 'bound\n');
      const binds = Array.from({ length: 5000 }, (_, i) => `--bind=${src}:/b/${i}`);
      for (const x of [[], ['-x']]) {
        const r = await nspawn(['-q', '-D', t.root, ...x, ...binds, '/bin/sh', '-c', 'grep -c " /b/[0-9]* " /proc/self/mountinfo; cat /b/0/file /b/4999/file'], mode.env);
        expect(r.err).toBe('');
        expect(r.status).toBe(0);
        expect(r.out).toBe('5000\nbound\nbound\n');
        expect(mountsUnder(t.dir)).toEqual([]);
        expect(readdirSync(t.dir).filter((f) => f !== basename(t.root) && f !== 'src')).toEqual([]);
        expect(existsSync(join('/sys/fs/cgroup/unified', machineScope(basename(t.root)).path))).toBe(false);
      }
    }, 120_000);
  }
});

describe('a plan from elsewhere (runPlan())', () => {
  it('too big for its payload\'s execve(): the helper refuses it before it clones anything, in one line', async () => {
    const t = makeTree();
    cleanups.push(t.cleanup);
    const p = prepareContainer({ directory: t.root, consoleMode: 'pipe', parameters: ['/bin/true'] }, nodePrepareEnv(nodeTree));
    const plan = planContainer(p.config, probeHost(), nodeTree(t.root), { hex128: () => '0123456789abcdef0123456789abcdef' });
    plan.argv = ['/bin/true', ...Array.from({ length: 100_000 }, (_, i) => String(i))];
    plan.rlimits = plan.rlimits.map((r) => (r.resource === 3 /* STACK */ ? { ...r, soft: 1048576n } : r));
    let started = false;
    const end = await runPlan(plan, { killSignal: 0, hooks: { log: () => {}, onStart: () => (started = true) } });
    expect(started).toBe(false);
    expect(end.kind).toBe('failed');
    expect(end.kind === 'failed' && end.message).toMatch(/^The container's command line and environment \(100001 arguments, \d+ variables: \d+ bytes with their pointers\) are more than the 262144 bytes execve\(\) takes with a stack limit of 1048576: Argument list too long\.$/);
  });
});
