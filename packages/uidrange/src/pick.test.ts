import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { machineCandidate, reduceCandidate } from './candidates.js';
import { pickRange, rangeHasHostUsers } from './pick.js';
import type { RangeLock } from './lock.js';
import { parseIdFile, type UserDb } from './users.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function lockDir() {
  const d = mkdtempSync(join(tmpdir(), 'ut-locks-'));
  dirs.push(d);
  return d;
}
function db(uids: number[], gids: number[] = []): UserDb {
  return { hasUid: (u) => uids.includes(u), hasGid: (g) => gids.includes(g), ids: () => [...uids, ...gids] };
}
/** fake locks: a set of held paths, and a log of what was tried/released */
function fakeLocks(held: Set<string>, log: string[]) {
  return (path: string): RangeLock | undefined => {
    log.push(`try ${path}`);
    if (held.has(path)) return undefined;
    held.add(path);
    return { path, release: () => (log.push(`release ${path}`), held.delete(path)) };
  };
}

describe('pickRange', () => {
  it('takes the owner base when free, then the machine hash, then random', () => {
    const d = lockDir();
    const held = new Set<string>();
    const log: string[] = [];
    const opts = { first: 0x100000, machine: 'box', lockDir: d, users: db([]), random: () => 0x12345678, lock: fakeLocks(held, log) };
    const a = pickRange(opts);
    expect(a.base).toBe(0x100000);
    expect(a.count).toBe(65536);
    const b = pickRange(opts);
    expect(b.base).toBe(machineCandidate('box'));
    const c = pickRange(opts);
    expect(c.base).toBe(reduceCandidate(0x12345678));
    c.release();
    expect(held.has(join(d, String(reduceCandidate(0x12345678))))).toBe(false);
  });
  it('skips a range with a host user or group at base or base+65534, dropping its lock', () => {
    const d = lockDir();
    const held = new Set<string>();
    const log: string[] = [];
    const base = machineCandidate('box');
    for (const users of [db([base]), db([base + 0xfffe]), db([], [base]), db([], [base + 0xfffe])]) {
      log.length = 0;
      const r = pickRange({ machine: 'box', lockDir: d, users, random: () => 7, lock: fakeLocks(held, log) });
      expect(r.base).toBe(reduceCandidate(7));
      expect(log).toContain(`release ${join(d, String(base))}`);
      r.release();
    }
    // an ID in the middle does not count (systemd checks the two ends only)
    const r = pickRange({ machine: 'box', lockDir: d, users: db([base + 5]), lock: fakeLocks(held, log) });
    expect(r.base).toBe(base);
  });
  it('fails with EBUSY when every candidate is taken', () => {
    const d = lockDir();
    expect(() => pickRange({ machine: 'x', lockDir: d, users: db([]), lock: () => undefined })).toThrow(/Device or resource busy/);
  });
  it.runIf(process.getuid?.() === 0)('reads the first candidate from the directory owner (st_uid & 0xffff0000)', () => {
    const d = lockDir();
    chownSync(d, 0x100007, 0x100003);
    const r = pickRange({ dir: d, machine: 'box', lockDir: d, users: db([]), lock: fakeLocks(new Set(), []) });
    expect(r.base).toBe(0x100000);
    chownSync(d, 0x100007, 0x200003);
    expect(() => pickRange({ dir: d, machine: 'box', lockDir: d, users: db([]), lock: fakeLocks(new Set(), []) })).toThrow("don't match");
  });
});

describe('users', () => {
  it('parses passwd and group files', () => {
    expect([...parseIdFile('root:x:0:0::/root:/bin/sh\n# c\nnobody:x:65534:65534::/:/bin/false\n+nis\nbad\n')]).toEqual([0, 65534]);
  });
  it('rangeHasHostUsers looks at both ends', () => {
    expect(rangeHasHostUsers(0x100000, 0x10000, db([0x100000]))).toBe(true);
    expect(rangeHasHostUsers(0x100000, 0x10000, db([], [0x10fffe]))).toBe(true);
    expect(rangeHasHostUsers(0x100000, 0x10000, db([0x100001]))).toBe(false);
  });
});
