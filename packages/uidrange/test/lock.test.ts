import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCK_DIR, machineCandidate, pickRange, tryLockFile } from '../src/index.js';
import { makeTree, parseMap, referenceCommand, removeTemp, requireRoot, systemdNspawn, tempDir } from './helpers.js';

requireRoot();
let dir: string;
let tree: string;
beforeAll(() => {
  dir = tempDir('ut-lock-');
  tree = makeTree(dir, 'tree');
});
afterAll(() => removeTemp(dir));

describe('range locks (open-file-description locks, as systemd-nspawn)', () => {
  it('a held lock is busy for another description, and release unlinks it', () => {
    const path = join(dir, 'lock-a');
    const a = tryLockFile(path);
    expect(a).toBeDefined();
    expect(tryLockFile(path)).toBeUndefined();
    a!.release();
    expect(existsSync(path)).toBe(false);
    const b = tryLockFile(path);
    expect(b).toBeDefined();
    b!.release();
  });

  it('the lock lives in the descriptor: kept across an execve() once keepAcrossExec() cleared FD_CLOEXEC, gone with the process', async () => {
    const dist = join(import.meta.dirname, '../dist/index.js');
    // an owner that locks, keeps the descriptor across its exec, and execs sleep: held while sleep (the same PID) runs
    const path = join(dir, 'lock-x');
    const owner = spawn(
      process.execPath,
      ['-e', `import(${JSON.stringify(dist)}).then((m) => { const l = m.tryLockFile(${JSON.stringify(path)}); l.keepAcrossExec(); process.execve('/bin/sleep', ['sleep', '0.6']); })`],
      { stdio: 'ignore' },
    );
    for (let i = 0; i < 200 && !existsSync(path); i++) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 250));
    expect(readFileSync(`/proc/${owner.pid}/comm`, 'utf8').trim()).toBe('sleep');
    expect(held(path)).toBe(true);
    expect(tryLockFile(path)).toBeUndefined();
    await new Promise((r) => owner.once('exit', r));
    // the lock died with the process; the file stays (as systemd's after a kill), the next owner takes it over
    expect(held(path)).toBe(false);
    const next = tryLockFile(path);
    expect(next).toBeDefined();
    next!.release();
    expect(existsSync(path)).toBe(false);
    // without keepAcrossExec() the exec drops it (close-on-exec, as Node opens every file)
    const path2 = join(dir, 'lock-y');
    const owner2 = spawn(
      process.execPath,
      ['-e', `import(${JSON.stringify(dist)}).then((m) => { m.tryLockFile(${JSON.stringify(path2)}); process.execve('/bin/sleep', ['sleep', '0.6']); })`],
      { stdio: 'ignore' },
    );
    for (let i = 0; i < 200 && !existsSync(path2); i++) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 250));
    expect(held(path2)).toBe(false);
    await new Promise((r) => owner2.once('exit', r));
    tryLockFile(path2)?.release();
  });

  it('kill -9 of the owner releases the lock (no process of ours is left holding it)', async () => {
    const dist = join(import.meta.dirname, '../dist/index.js');
    const path = join(dir, 'lock-k');
    const owner = spawn(process.execPath, ['-e', `import(${JSON.stringify(dist)}).then((m) => { m.tryLockFile(${JSON.stringify(path)}); setInterval(() => {}, 1000); })`], {
      stdio: 'ignore',
    });
    for (let i = 0; i < 200 && !held(path); i++) await new Promise((r) => setTimeout(r, 10));
    expect(held(path)).toBe(true);
    owner.kill('SIGKILL');
    await new Promise((r) => owner.once('exit', r));
    expect(held(path)).toBe(false);
    tryLockFile(path)!.release();
  });

  it("systemd-nspawn does not get a range we hold: the siphash candidate of its machine name is skipped", () => {
    const name = 'ut-lk-ours';
    const held = pickRange({ machine: name });
    try {
      expect(held.base).toBe(machineCandidate(name));
      const r = systemdNspawn(['-U', '-D', tree, '-M', name, 'cat', '/proc/self/uid_map']);
      expect(r.status, r.err).toBe(0);
      const [, base, count] = parseMap(r.out);
      expect(count).toBe(65536);
      expect(base).not.toBe(held.base);
    } finally {
      held.release();
    }
    // and once released, systemd-nspawn gets the hashed range again
    const r = systemdNspawn(['-U', '-D', tree, '-M', name, 'cat', '/proc/self/uid_map']);
    expect(parseMap(r.out)[1]).toBe(machineCandidate(name));
  });

  it("we do not get a range systemd-nspawn holds", async () => {
    const name = 'ut-lk-theirs';
    const want = machineCandidate(name);
    const child = spawn(...referenceCommand(['-q', '--register=no', '--keep-unit', '-U', '-D', tree, '-M', name, 'sleep', '30']), { stdio: 'ignore' });
    try {
      // wait until it holds the lock (its uid_map is written after the lock is taken)
      const lockPath = join(LOCK_DIR, String(want));
      for (let i = 0; i < 200 && !held(lockPath); i++) await new Promise((r) => setTimeout(r, 25));
      expect(held(lockPath)).toBe(true);
      const ours = pickRange({ machine: name });
      try {
        expect(ours.base).not.toBe(want);
      } finally {
        ours.release();
      }
    } finally {
      // SIGTERM: systemd-nspawn ends its container and releases (removes) its range and image lock files, which a
      // SIGKILL would leave behind
      if (child.exitCode === null) child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
      tryLockFile(join(LOCK_DIR, String(want)))?.release();
    }
  });
});

/** whether an OFD/POSIX lock is held on PATH (from /proc/locks, by inode) */
function held(path: string): boolean {
  if (!existsSync(path)) return false;
  const out = readFileSync('/proc/locks', 'utf8');
  const ino = String(statSync(path).ino);
  return out.split('\n').some((l) => l.includes('OFDLCK') && l.split(/\s+/).some((f) => f.endsWith(`:${ino}`)));
}
