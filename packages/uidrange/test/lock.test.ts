import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCK_DIR, machineCandidate, pickRange, tryLockFile } from '../src/index.js';
import { makeTree, parseMap, removeTemp, requireRoot, systemdNspawn, tempDir } from './helpers.js';

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

  it('a holder process keeps the lock for its owner: released by release(), or removed when the owner ends', async () => {
    const path = join(dir, 'lock-h');
    const a = tryLockFile(path, { holdFor: process.pid });
    expect(a?.holder).toBeGreaterThan(0);
    expect(tryLockFile(path)).toBeUndefined();
    a!.release();
    expect(existsSync(path)).toBe(false);
    // an owner that execs and then ends: the lock lasts across its execve() and goes with its end
    const dist = join(import.meta.dirname, '../dist/index.js');
    const owner = spawn(process.execPath, ['-e', `import(${JSON.stringify(dist)}).then((m) => { m.tryLockFile(${JSON.stringify(path)}, { holdFor: process.pid }); process.execve('/bin/sleep', ['sleep', '0.5']); })`], { stdio: 'ignore' });
    for (let i = 0; i < 200 && !existsSync(path); i++) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 150));
    expect(tryLockFile(path)).toBeUndefined(); // held while sleep (the same PID) runs
    await new Promise((r) => owner.once('exit', r));
    for (let i = 0; i < 100 && existsSync(path); i++) await new Promise((r) => setTimeout(r, 10));
    expect(existsSync(path)).toBe(false);
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
    const child = spawn('systemd-nspawn', ['-q', '--register=no', '--keep-unit', '-U', '-D', tree, '-M', name, 'sleep', '30'], { stdio: 'ignore' });
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
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      // systemd-nspawn killed leaves its (now unlocked) file behind: take it over and remove it
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
