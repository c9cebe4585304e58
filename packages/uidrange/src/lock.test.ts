import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { koffiLoaded } from '@nspawn/syscall';
import { tryLockFile, type LockSys } from './index.js';

const dir = mkdtempSync('/tmp/nspawn-test-ut-lock-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('tryLockFile(path, sys)', () => {
  it('takes the lock through the caller\'s calls (the runtime\'s addon): no koffi', () => {
    const calls: string[] = [];
    const sys: LockSys = {
      ofdLockExclusive: (fd) => (calls.push(`lock ${fd}`), true),
      keepOnExec: (fd) => void calls.push(`keep ${fd}`),
    };
    const l = tryLockFile(join(dir, '1879048192'), sys)!;
    expect(l.keepAcrossExec!()).toBe(l.fd);
    expect(calls).toEqual([`lock ${l.fd}`, `keep ${l.fd}`]);
    l.release();
    expect(existsSync(join(dir, '1879048192'))).toBe(false);
    expect(() => l.keepAcrossExec!()).toThrow(/the lock was released/);
    expect(tryLockFile(join(dir, 'busy'), { ...sys, ofdLockExclusive: () => false })).toBeUndefined();
    expect(koffiLoaded()).toBe(false);
  });

  it('a failing lock call is a UidRangeError naming the file', () => {
    const sys: LockSys = { ofdLockExclusive: () => { throw Object.assign(new Error('x'), { code: 'ENOLCK' }); }, keepOnExec: () => {} };
    expect(() => tryLockFile(join(dir, 'bad'), sys)).toThrow(`Failed to lock ${join(dir, 'bad')}: ENOLCK`);
  });

  it('by default through koffi: a second take is refused while the first holds it', () => {
    const a = tryLockFile(join(dir, 'k'))!;
    expect(tryLockFile(join(dir, 'k'))).toBeUndefined();
    a.release();
    expect(koffiLoaded()).toBe(true);
  });
});
