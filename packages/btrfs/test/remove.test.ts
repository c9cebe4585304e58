/**
 * Hostile trees: deleting code never follows a symlink, never crosses a mount point (a bind mount inside the tree
 * being removed), and refuses `/` and anything outside the directory it was given. On ext4 and btrfs (loop
 * devices made here). Root only.
 */
import { execaSync } from 'execa';
import { existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createSubvolume, deleteSubvolume, isSubvolume, removeTree } from '../src/index.js';
import { fileSystemsForTests } from './fixture.js';

const fss = fileSystemsForTests();

/** a tree with symlinks pointing outside it and an outside directory bind-mounted inside it */
function hostile(root: string, outside: string, sub: boolean): string {
  mkdirSync(outside, { recursive: true });
  writeFileSync(join(outside, 'precious'), 'keep me');
  const t = join(root, 'victim');
  if (sub) createSubvolume(t);
  else mkdirSync(t);
  mkdirSync(join(t, 'd/e'), { recursive: true });
  writeFileSync(join(t, 'd/e/f'), 'x');
  symlinkSync(outside, join(t, 'link-dir'));
  symlinkSync(join(outside, 'precious'), join(t, 'd/link-file'));
  symlinkSync('../../../../../../../..', join(t, 'd/e/link-up'));
  if (sub) createSubvolume(join(t, 'd/nested'));
  mkdirSync(join(t, 'd/bound'));
  return t;
}

describe.each(['ext4', 'btrfs'] as const)('removeTree on %s', (kind) => {
  it('removes symlinks, never what they point to', () => {
    const fs = fss[kind]!;
    const outside = join(fs.dir, 'outside');
    const t = hostile(fs.dir, outside, kind === 'btrfs');
    removeTree(t, { within: fs.dir });
    expect(existsSync(t)).toBe(false);
    expect(readFileSync(join(outside, 'precious'), 'utf8')).toBe('keep me');
    expect(readdirSync('/usr').length).toBeGreaterThan(3);
  });

  it('leaves a bind mount inside alone and says so; removes the rest once it is gone', () => {
    const fs = fss[kind]!;
    const outside = join(fs.dir, 'outside2');
    const t = hostile(fs.dir, outside, kind === 'btrfs');
    execaSync('mount', ['--bind', outside, join(t, 'd/bound')]);
    try {
      expect(() => removeTree(t, { within: fs.dir })).toThrow(/d\/bound is a mount point/);
      expect(readFileSync(join(outside, 'precious'), 'utf8')).toBe('keep me');
      expect(existsSync(join(t, 'd/bound/precious'))).toBe(true);
      if (kind === 'btrfs') expect(() => deleteSubvolume(t)).toThrow(/is mounted below it/);
    } finally {
      execaSync('umount', [join(t, 'd/bound')]);
    }
    removeTree(t, { within: fs.dir });
    expect(existsSync(t)).toBe(false);
    expect(readFileSync(join(outside, 'precious'), 'utf8')).toBe('keep me');
  });

  it('refuses /, a mount point, the directory itself and anything outside it (also through a symlinked parent)', () => {
    const fs = fss[kind]!;
    const own = join(fs.dir, 'own');
    mkdirSync(own);
    expect(() => removeTree('/', { within: '/' })).toThrow(/Refusing to remove \//);
    expect(() => removeTree(own, { within: own })).toThrow(/not inside/);
    expect(() => removeTree('/usr/bin', { within: own })).toThrow(/not inside/);
    expect(() => removeTree(fs.dir, { within: join(fs.dir, '..') })).toThrow(/mount point/);
    symlinkSync('/usr', join(own, 'sneaky'));
    expect(() => removeTree(join(own, 'sneaky/bin'), { within: own })).toThrow(/not inside/);
    expect(existsSync('/usr/bin')).toBe(true);
    removeTree(join(own, 'sneaky'), { within: own });
    expect(existsSync('/usr/bin')).toBe(true);
    if (kind === 'btrfs') expect(isSubvolume(fs.dir)).toBe(true);
  });
});
