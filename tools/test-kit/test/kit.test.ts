import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mountsUnder, REPO, treeListing } from '../src/index.js';
import { existsSync } from 'node:fs';

describe('mountsUnder', () => {
  const info = [
    '22 1 0:21 / / rw - ext4 /dev/root rw',
    '30 22 0:40 / /var/tmp/x rw - tmpfs tmpfs rw',
    '31 30 0:41 / /var/tmp/x/a\\040b/deep rw - tmpfs tmpfs rw',
    '32 22 0:42 / /var/tmp/xy rw - tmpfs tmpfs rw',
    '',
  ].join('\n');
  it('lists PATH and what is below it, in mountinfo order, unescaped, not a sibling sharing the prefix', () => {
    expect(mountsUnder('/var/tmp/x', info)).toEqual(['/var/tmp/x', '/var/tmp/x/a b/deep']);
    expect(mountsUnder('/srv', info)).toEqual([]);
  });
});

describe('treeListing', () => {
  it('changes when a mode, a target or a byte changes', () => {
    const dir = mkdtempSync('/tmp/nspawn-kit-');
    try {
      mkdirSync(join(dir, 'd'));
      writeFileSync(join(dir, 'd/f'), 'one');
      symlinkSync('d/f', join(dir, 'l'));
      const first = treeListing(dir);
      expect(first).toHaveLength(4);
      expect(first[2]).toMatch(/^d\/f 644 \d+:\d+ [0-9a-f]{16}$/);
      writeFileSync(join(dir, 'd/f'), 'two');
      const second = treeListing(dir);
      expect(second).not.toEqual(first);
      chmodSync(join(dir, 'd'), 0o700);
      expect(treeListing(dir)[1]).toMatch(/^d 700 /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('REPO', () => {
  it('is the checkout', () => {
    expect(existsSync(join(REPO, 'pnpm-workspace.yaml'))).toBe(true);
  });
});
