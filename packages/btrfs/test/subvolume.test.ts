/**
 * Subvolumes by ioctl on a real btrfs (a loop device over a sparse file, made and destroyed here): create,
 * snapshot read-write and read-only with nested subvolumes, list, the read-only flag, recursive delete, qgroup
 * limits without switching quota on behind the caller's back. Root only.
 */
import { lstatSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createSubvolume,
  deleteSubvolume,
  enableQuota,
  isBtrfs,
  isSubvolume,
  isSubvolumeReadOnly,
  listSubvolumes,
  quotaEnabled,
  setSubvolumeLimit,
  setSubvolumeReadOnly,
  snapshotSubvolume,
  subvolumeInfo,
  subvolumeQuota,
} from '../src/index.js';
import { type Fs, makeFs } from './fixture.js';

let fs: Fs;
beforeAll(() => {
  fs = makeFs('btrfs');
});
afterAll(() => fs?.dispose());

const code = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return 'no error';
};

describe('subvolumes', () => {
  it('create, is-subvolume, nested listing', () => {
    const a = join(fs.dir, 'a');
    createSubvolume(a);
    expect(isBtrfs(a)).toBe(true);
    expect(isSubvolume(a)).toBe(true);
    mkdirSync(join(a, 'plain'));
    expect(isSubvolume(join(a, 'plain'))).toBe(false);
    createSubvolume(join(a, 'plain/n1'));
    createSubvolume(join(a, 'plain/n1/n2'));
    writeFileSync(join(a, 'plain/n1/n2/deep'), 'deep');
    expect(listSubvolumes(a).map((s) => s.path)).toEqual(['plain/n1', 'plain/n1/n2']);
    expect(code(() => createSubvolume(a))).toBe('EEXIST');
    expect(isSubvolume('/proc')).toBe(false);
  });

  it('snapshots read-write and read-only, nested subvolumes included', () => {
    const a = join(fs.dir, 'a');
    writeFileSync(join(a, 'top'), 'top');
    const rw = join(fs.dir, 'rw');
    snapshotSubvolume(a, rw);
    expect(readFileSync(join(rw, 'plain/n1/n2/deep'), 'utf8')).toBe('deep');
    expect(listSubvolumes(rw).map((s) => s.path)).toEqual(['plain/n1', 'plain/n1/n2']);
    expect(subvolumeInfo(rw).parentId).toBe(5n);
    writeFileSync(join(rw, 'top'), 'changed');
    expect(readFileSync(join(a, 'top'), 'utf8')).toBe('top');

    const ro = join(fs.dir, 'ro');
    snapshotSubvolume(a, ro, { readOnly: true });
    expect(isSubvolumeReadOnly(ro)).toBe(true);
    expect(subvolumeInfo(ro).readOnly).toBe(true);
    expect(isSubvolumeReadOnly(join(ro, 'plain/n1/n2'))).toBe(true);
    expect(code(() => writeFileSync(join(ro, 'x'), 'x'))).toBe('EROFS');
    expect(code(() => writeFileSync(join(ro, 'plain/n1/n2/x'), 'x'))).toBe('EROFS');

    const flat = join(fs.dir, 'flat');
    snapshotSubvolume(a, flat, { recursive: false });
    expect(listSubvolumes(flat)).toEqual([]);
    expect(readdirSync(join(flat, 'plain/n1'))).toEqual([]); // a nested subvolume shows as an empty directory
  });

  it('the read-only flag toggles', () => {
    const rw = join(fs.dir, 'rw');
    setSubvolumeReadOnly(rw, true);
    expect(code(() => writeFileSync(join(rw, 'y'), 'y'))).toBe('EROFS');
    setSubvolumeReadOnly(rw, false);
    writeFileSync(join(rw, 'y'), 'y');
    expect(code(() => setSubvolumeReadOnly(join(rw, 'plain'), true))).toBe('ENOTTY');
  });

  it('deletes recursively, read-only nested subvolumes included; refuses what is not a subvolume root', () => {
    for (const n of ['rw', 'ro', 'flat']) {
      deleteSubvolume(join(fs.dir, n));
      expect(() => lstatSync(join(fs.dir, n))).toThrow();
    }
    expect(code(() => deleteSubvolume('/'))).toBe('EPERM');
    expect(code(() => deleteSubvolume(join(fs.dir, 'a/plain')))).toBe('ENOTTY');
    expect(readdirSync(fs.dir).sort()).toEqual(['a']);
  });

  it('qgroup limits: refused while quota is off (and quota stays off), set and removed once it is on', () => {
    const a = join(fs.dir, 'a');
    expect(quotaEnabled(a)).toBe(false);
    expect(subvolumeQuota(a)).toBeUndefined();
    expect(() => setSubvolumeLimit(a, 1 << 30)).toThrow(/Quota is not enabled.*whole file system/);
    expect(quotaEnabled(a)).toBe(false);
    enableQuota(a);
    expect(quotaEnabled(a)).toBe(true);
    setSubvolumeLimit(a, 100_000_000);
    expect(subvolumeQuota(a)).toMatchObject({ limit: 100_000_000 });
    setSubvolumeLimit(a, undefined);
    expect(subvolumeQuota(a)?.limit).toBeUndefined();
    deleteSubvolume(a);
  });
});
