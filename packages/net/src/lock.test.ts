import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { koffiLoaded, lockHeldElsewhere } from '@nspawn/syscall';
import { generateMac, lockFile, shortenIfname } from '../src/index.js';

const dir = mkdtempSync('/tmp/nspawn-test-nt-lock-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('locks without a helper process', () => {
  it('naming and a lock with the caller\'s locker load no koffi (the start path passes the runtime\'s)', () => {
    expect(shortenIfname('ve-averyveryverylongmachinename01')).toBe('ve-averyverJKA6');
    generateMac('foo', 'host', { machineId: '0123456789abcdef0123456789abcdef' });
    const seen: number[] = [];
    const release = lockFile(join(dir, 'a'), (fd) => void seen.push(fd));
    release();
    expect(seen).toHaveLength(1);
    expect(koffiLoaded()).toBe(false);
  });

  it('the default locker takes an OFD lock in this process (no flock(1)), held until released', () => {
    const p = join(dir, 'zone');
    const release = lockFile(p);
    const other = openSync(p, 'r');
    try {
      expect(lockHeldElsewhere(other)).toBe(true);
      release();
      expect(lockHeldElsewhere(other)).toBe(false);
    } finally {
      closeSync(other);
    }
    expect(koffiLoaded()).toBe(true);
  });
});
