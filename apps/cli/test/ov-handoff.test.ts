/**
 * `-x` off btrfs handed over: on ext4 (/var/tmp) `nspawn -D TREE -x CMD` makes its overlay, then execs the helper
 * in its own place (src/handoff.ts), which unmounts the overlay, deletes the snapshot directory and releases its
 * locks at the end (native/handoff.c), on every end: exit 0, a failure, SIGTERM. A hostile container's symlinks
 * are removed, not followed; a mount the helper did not make is neither unmounted nor crossed. $NSPAWN_EPHEMERAL=copy
 * likewise. With $NSPAWN_HANDOFF=0 Node stays and removes it, as before. Root only.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { execaSync } from 'execa';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { globalLockPath } from '@nspawn/btrfs';
import { COMMON_FLAGS, makeTempDir, mountsUnder, NSPAWN_BIN, requireRootAndSystemdNspawn, runTool, TOOL_ENV } from './helpers/containers.js';
import { makeBusyboxTree } from './helpers/busybox-tree.js';

let tmp: { dir: string; remove: () => string[] };
let parent: string;
let tree: string;
const cleanups: Array<() => void> = [];

beforeAll(() => {
  requireRootAndSystemdNspawn();
  tmp = makeTempDir('ov-');
  parent = join(tmp.dir, 'x');
  tree = makeBusyboxTree(join(parent, 'ov-tree'));
});
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});
afterAll(() => {
  const left = tmp?.remove() ?? [];
  expect(left, 'mounts left behind').toEqual([]);
});

const ls = (d: string) => readdirSync(d).sort();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const exe = (pid: number) => {
  try {
    return basename(readlinkSync(`/proc/${pid}/exe`));
  } catch {
    return '';
  }
};

interface Started {
  child: ChildProcess;
  stderr: () => string;
  /** the snapshot directory (PARENT/.#machine.ov-tree<hex>) */
  snapshot: string;
  /** /proc/PID/exe's name once the snapshot exists and the container runs */
  exe: string;
  ended: Promise<number | null>;
}

/** starts nspawn -x in the background and waits until its container runs on a snapshot (and, handed over, the helper is in its place) */
async function startX(name: string, cmd: string[], env: NodeJS.ProcessEnv = TOOL_ENV): Promise<Started> {
  const before = ls(parent);
  const child = spawn(process.execPath, [NSPAWN_BIN, ...COMMON_FLAGS, '-q', '-M', name, '-D', tree, '-x', ...cmd], { stdio: ['ignore', 'ignore', 'pipe'], env });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const ended = new Promise<number | null>((r) => child.on('exit', (code, sig) => r(code ?? (sig ? -1 : null))));
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let snapshot = '';
  for (let i = 0; i < 400; i++) {
    const made = ls(parent).find((n) => !before.includes(n) && n.startsWith('.#machine.ov-tree') && !n.endsWith('.lck'));
    if (made) snapshot = join(parent, made);
    // the container runs once its overlay is mounted; handed over, the helper is our child's program by then
    const copy = env.NSPAWN_EPHEMERAL === 'copy';
    const running = copy ? existsSync(join(snapshot, 'ov-running')) : mountsUnder(join(snapshot, 'root')).length > 0;
    if (snapshot && running && (env.NSPAWN_HANDOFF === '0' || exe(child.pid!).startsWith('nspawn-helper'))) break;
    if (child.exitCode !== null) break;
    await sleep(10);
  }
  if (!snapshot) throw new Error(`nspawn made no snapshot: ${err}`);
  return { child, stderr: () => err, snapshot, exe: exe(child.pid!), ended };
}

/**
 * the lock file of SNAPSHOT, beside it (locked before it exists, as systemd does: so no global one by its inode;
 * that one's path is checked to be absent too)
 */
const lockFiles = (snapshot: string) => [join(parent, `.#${basename(snapshot)}.lck`)];

function expectGone(s: Started, before: string[], lockPaths: string[]) {
  expect(ls(parent), s.stderr()).toEqual(before);
  expect(existsSync(s.snapshot)).toBe(false);
  expect(mountsUnder(tmp.dir)).toEqual([]);
  for (const l of lockPaths) expect(existsSync(l), l).toBe(false);
  const global = globalLockPath(tree);
  if (global) expect(existsSync(global)).toBe(false);
}

describe('-x on ext4 handed over to the helper', () => {
  it('exit 0: the helper runs in nspawn\'s place, holds the locks; afterwards the overlay, its directory and locks are gone, the tree untouched', async () => {
    const before = ls(parent);
    const s = await startX('ov-exit0', ['/bin/sh', '-c', 'echo data > /ov-written && sleep 1']);
    expect(s.exe).toMatch(/^nspawn-helper/);
    const locks = lockFiles(s.snapshot);
    for (const l of locks) expect(existsSync(l), l).toBe(true);
    expect(mountsUnder(s.snapshot)).toEqual([join(s.snapshot, 'root')]);
    expect(await s.ended).toBe(0);
    expectGone(s, before, locks);
    expect(existsSync(join(tree, 'ov-written'))).toBe(false);
  });

  it('a failing payload: its exit status, and nothing left', async () => {
    const before = ls(parent);
    const s = await startX('ov-fail', ['/bin/sh', '-c', 'echo x > /ov-written; sleep 0.5; exit 7']);
    expect(s.exe).toMatch(/^nspawn-helper/);
    const locks = lockFiles(s.snapshot);
    expect(await s.ended).toBe(7);
    expectGone(s, before, locks);
    // the same run through runTool (execa): what a user sees
    const r = await runTool('nspawn', ['-q', '-M', 'ov-fail', '-D', tree, '-x', '/bin/sh', '-c', 'exit 3']);
    expect(r.status, r.stderr).toBe(3);
    expect(ls(parent)).toEqual(before);
  });

  it('a bad $NSPAWN_EPHEMERAL is one line naming it, exit 1, and nothing made', async () => {
    const before = ls(parent);
    const r = await runTool('nspawn', ['-q', '-M', 'ov-badmode', '-D', tree, '-x', '/bin/true'], { env: { ...TOOL_ENV, NSPAWN_EPHEMERAL: 'bogus' } });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('Invalid $NSPAWN_EPHEMERAL=bogus: expected auto, snapshot, overlay or copy\n');
    expect(ls(parent)).toEqual(before);
  });

  it('SIGTERM to nspawn (the helper by then): the container ends, nothing left', async () => {
    const before = ls(parent);
    const s = await startX('ov-term', ['/bin/sleep', '30']);
    expect(s.exe).toMatch(/^nspawn-helper/);
    const locks = lockFiles(s.snapshot);
    s.child.kill('SIGTERM');
    await s.ended;
    expectGone(s, before, locks);
  });

  it('symlinks the container plants (to a host directory, a host file, /) are removed, never followed', async () => {
    const before = ls(parent);
    const canary = join(tmp.dir, 'ov-canary');
    mkdirSync(canary, { recursive: true });
    writeFileSync(join(canary, 'file'), 'keep');
    mkdirSync(join(canary, 'sub'), { recursive: true });
    writeFileSync(join(canary, 'sub', 'deep'), 'keep');
    const script = [
      `ln -s ${canary} /ov-link-dir`,
      `ln -s ${canary}/file /ov-link-file`,
      'ln -s / /ov-link-root',
      'mkdir -p /ov-d/e',
      `ln -s ${canary} /ov-d/e/up`,
      `ln -s ${canary}/sub /ov-d/sub`,
      'echo x > /ov-d/e/f',
      // replaces a lower directory by a symlink in the upper layer (a whiteout and the link)
      `rm -rf /var && ln -s ${canary} /var`,
      'sleep 0.3',
    ].join(' && ');
    const s = await startX('ov-link', ['/bin/sh', '-c', script]);
    expect(s.exe).toMatch(/^nspawn-helper/);
    expect(await s.ended, s.stderr()).toBe(0);
    expectGone(s, before, lockFiles(s.snapshot));
    expect(readFileSync(join(canary, 'file'), 'utf8')).toBe('keep');
    expect(readFileSync(join(canary, 'sub', 'deep'), 'utf8')).toBe('keep');
    expect(ls(canary)).toEqual(['file', 'sub']);
    expect(existsSync(join(tree, 'var'))).toBe(true);
  });

  it('a deep tree (700 levels: more than the helper keeps open), device nodes, fifos, hard links: all gone', async () => {
    const before = ls(parent);
    const script = 'cd /var && i=0 && while [ $i -lt 700 ]; do mkdir d && cd d && echo x > f; i=$((i+1)); done && mknod /var/nod c 1 3 && mkfifo /var/fifo && ln /var/d/f /var/hl && ls /var/d/d/d/f';
    const s = await startX('ov-deep', ['/bin/sh', '-c', script]);
    expect(s.exe).toMatch(/^nspawn-helper/);
    expect(await s.ended, s.stderr()).toBe(0);
    expect(s.stderr()).toBe('');
    expectGone(s, before, lockFiles(s.snapshot));
  });

  it('a bind mount made inside the snapshot\'s upper layer is not crossed: the helper refuses, says so; the next start removes the orphan', async () => {
    const before = ls(parent);
    const victim = join(tmp.dir, 'ov-victim');
    mkdirSync(victim, { recursive: true });
    writeFileSync(join(victim, 'file'), 'keep');
    const s = await startX('ov-bind', ['/bin/sh', '-c', 'mkdir /ov-bind && sleep 1']);
    expect(s.exe).toMatch(/^nspawn-helper/);
    const target = join(s.snapshot, 'upper', 'ov-bind');
    for (let i = 0; i < 100 && !existsSync(target); i++) await sleep(10);
    expect(execaSync('mount', ['--bind', victim, target], { reject: false }).exitCode).toBe(0);
    cleanups.push(() => void execaSync('umount', ['--lazy', target], { stdio: 'ignore', reject: false }));
    expect(await s.ended).toBe(0);
    expect(s.stderr()).toContain(`Failed to remove ${s.snapshot}: refusing, ${target} is a mount point; the next start or 'nspawnctl clean' removes it.`);
    expect(readFileSync(join(victim, 'file'), 'utf8')).toBe('keep');
    // the overlay (ours) went; the bind mount and the directory stay, the lock is free
    expect(mountsUnder(s.snapshot)).toEqual([target]);
    for (const l of lockFiles(s.snapshot)) expect(existsSync(l), l).toBe(false);
    expect(execaSync('umount', [target], { reject: false }).exitCode).toBe(0);
    const r = await runTool('nspawn', ['-q', '-M', 'ov-bind', '-D', tree, '-x', '/bin/true']);
    expect(r.status, r.stderr).toBe(0);
    expect(ls(parent)).toEqual(before);
    expect(readFileSync(join(victim, 'file'), 'utf8')).toBe('keep');
  });

  it('a mount stacked on the overlay\'s root is not unmounted (not nspawn-ephemeral), nor is the directory deleted', async () => {
    const before = ls(parent);
    const victim = join(tmp.dir, 'ov-victim2');
    mkdirSync(victim, { recursive: true });
    writeFileSync(join(victim, 'file'), 'keep');
    const s = await startX('ov-stack', ['/bin/sleep', '1']);
    expect(s.exe).toMatch(/^nspawn-helper/);
    const root = join(s.snapshot, 'root');
    expect(execaSync('mount', ['--bind', victim, root], { reject: false }).exitCode).toBe(0);
    cleanups.push(() => void execaSync('umount', ['--lazy', root], { stdio: 'ignore', reject: false }));
    expect(await s.ended).toBe(0);
    expect(s.stderr()).toMatch(new RegExp(`Failed to unmount ${root.replace(/[.#]/g, '\\$&')}: refusing, \\S+ \\(ext4\\) is not nspawn's`));
    expect(s.stderr()).toContain(`Failed to remove ${s.snapshot}: refusing,`);
    expect(readFileSync(join(victim, 'file'), 'utf8')).toBe('keep');
    expect(execaSync('umount', [root], { reject: false }).exitCode).toBe(0);
    // the overlay below it is still there: the next start unmounts and removes it
    const r = await runTool('nspawn', ['-q', '-M', 'ov-stack', '-D', tree, '-x', '/bin/true']);
    expect(r.status, r.stderr).toBe(0);
    expect(ls(parent)).toEqual(before);
    expect(mountsUnder(tmp.dir)).toEqual([]);
    expect(ls(victim)).toEqual(['file']);
  });

  it('a tree that is a mount point: the snapshot inside it is a tmpfs of its own; the helper unmounts both, innermost first', async () => {
    // the tree bind-mounted on itself: its snapshot goes inside it (DIR/.#machine.<hex>), as for -D /
    expect(execaSync('mount', ['--bind', tree, tree], { reject: false }).exitCode).toBe(0);
    cleanups.push(() => void execaSync('umount', ['--lazy', tree], { stdio: 'ignore', reject: false }));
    const before = ls(tree);
    const child = spawn(process.execPath, [NSPAWN_BIN, ...COMMON_FLAGS, '-q', '-M', 'ov-mp', '-D', tree, '-x', '/bin/sh', '-c', 'echo x > /ov-written; sleep 1'], { stdio: ['ignore', 'ignore', 'pipe'], env: TOOL_ENV });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const ended = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    cleanups.push(() => void (child.exitCode === null && child.kill('SIGKILL')));
    let snapshot = '';
    for (let i = 0; i < 300 && (!snapshot || mountsUnder(snapshot).length < 2); i++) {
      const n = ls(tree).find((f) => f.startsWith('.#machine.') && !f.endsWith('.lck'));
      if (n) snapshot = join(tree, n);
      await sleep(10);
    }
    expect(snapshot, err).toMatch(/\/\.#machine\.[0-9a-f]{16}$/);
    const info = readFileSync('/proc/self/mountinfo', 'utf8');
    expect(mountsUnder(snapshot)).toEqual([snapshot, join(snapshot, 'root')]);
    expect(info).toMatch(new RegExp(` ${snapshot.replace(/[.#]/g, '\\$&')} .* - tmpfs nspawn-ephemeral `));
    for (let i = 0; i < 100 && !exe(child.pid!).startsWith('nspawn-helper'); i++) await sleep(10);
    expect(exe(child.pid!)).toMatch(/^nspawn-helper/);
    expect(await ended, err).toBe(0);
    expect(ls(tree)).toEqual(before);
    expect(mountsUnder(tree)).toEqual([tree]);
    expect(execaSync('umount', [tree], { reject: false }).exitCode).toBe(0);
    expect(existsSync(join(tree, 'ov-written'))).toBe(false);
  });

  it('with $NSPAWN_HANDOFF=0 Node stays to the end and removes it as before', async () => {
    const before = ls(parent);
    const s = await startX('ov-node', ['/bin/sh', '-c', 'echo x > /ov-written; sleep 0.5; exit 4'], { ...TOOL_ENV, NSPAWN_HANDOFF: '0' });
    expect(s.exe).not.toMatch(/^nspawn-helper/);
    const locks = lockFiles(s.snapshot);
    expect(await s.ended).toBe(4);
    expectGone(s, before, locks);
  });

  it('$NSPAWN_EPHEMERAL=copy is handed over too: the helper deletes the copy (its symlinks unfollowed) and its lock', async () => {
    const before = ls(parent);
    const canary = join(tmp.dir, 'ov-canary3');
    mkdirSync(canary, { recursive: true });
    writeFileSync(join(canary, 'file'), 'keep');
    const env = { ...TOOL_ENV, NSPAWN_EPHEMERAL: 'copy' };
    const script = `stat -f -c %t / > /ov-fs && ln -s ${canary} /ov-link-dir && ln -s ${canary}/file /ov-link-file && rm -rf /var && ln -s ${canary} /var && touch /ov-running && sleep 0.5`;
    const s = await startX('ov-copy', ['/bin/sh', '-c', script], env);
    expect(s.exe).toMatch(/^nspawn-helper/);
    expect(readFileSync(join(s.snapshot, 'ov-fs'), 'utf8').trim()).toBe('ef53'); // a copy on ext4, no overlay
    expect(mountsUnder(s.snapshot)).toEqual([]);
    const locks = lockFiles(s.snapshot);
    for (const l of locks) expect(existsSync(l), l).toBe(true);
    expect(await s.ended, s.stderr()).toBe(0);
    expectGone(s, before, locks);
    expect(ls(canary)).toEqual(['file']);
    expect(readFileSync(join(canary, 'file'), 'utf8')).toBe('keep');
    expect(existsSync(join(tree, 'ov-running'))).toBe(false);
    // a failing payload and SIGTERM
    const r = await runTool('nspawn', ['-q', '-M', 'ov-copy', '-D', tree, '-x', '/bin/sh', '-c', 'exit 5'], { env });
    expect(r.status, r.stderr).toBe(5);
    expect(ls(parent)).toEqual(before);
    const t = await startX('ov-copy', ['/bin/sh', '-c', 'touch /ov-running; sleep 30'], env);
    expect(t.exe).toMatch(/^nspawn-helper/);
    t.child.kill('SIGTERM');
    await t.ended;
    expectGone(t, before, lockFiles(t.snapshot));
  });
});
