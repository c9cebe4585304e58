/**
 * The image store on a real btrfs and on ext4: listing (directories, subvolumes, raw images, hidden ones), status,
 * clone (snapshot or copy), rename with NAME.nspawn, remove refused while the image's lock is held, read-only,
 * limits (quota never switched on implicitly), clean (hidden images, orphaned ephemeral snapshots). Root only.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  cleanImages,
  cloneImage,
  createEphemeral,
  createSubvolume,
  ImageError,
  imageStatus,
  isSubvolume,
  listImages,
  lockImage,
  quotaEnabled,
  removeImage,
  renameImage,
  setImageLimit,
  setImageReadOnly,
} from '../src/index.js';
import { fileSystemsForTests, orphanEphemeral } from './fixture.js';

const fss = fileSystemsForTests();

const code = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return 'no error';
};

describe.each(['ext4', 'btrfs'] as const)('image store on %s', (kind) => {
  const root = () => join(fss[kind]!.dir, 'machines');
  it('lists directories, subvolumes and raw images with their status; hidden ones on request', () => {
    const r = root();
    mkdirSync(r);
    mkdirSync(join(r, 'dir1/usr'), { recursive: true });
    writeFileSync(join(r, 'dir1/usr/file'), 'x');
    if (kind === 'btrfs') {
      createSubvolume(join(r, 'sub1'));
      writeFileSync(join(r, 'sub1/f'), 'f');
    }
    writeFileSync(join(r, 'disk.raw'), Buffer.alloc(65536, 1));
    mkdirSync(join(r, '.hidden'));
    writeFileSync(join(r, 'dir1.nspawn'), '[Exec]\nBoot=yes\n');
    writeFileSync(join(r, '.#dir1.lck'), '');
    const names = listImages({ root: r }).map((i) => `${i.name}:${i.type}`);
    expect(names).toEqual(['dir1:directory', 'disk:raw', ...(kind === 'btrfs' ? ['sub1:subvolume'] : [])]);
    expect(listImages({ root: r, hidden: true }).map((i) => i.name)).toContain('.hidden');
    const d = imageStatus('disk', { root: r });
    expect(d).toMatchObject({ type: 'raw', readOnly: false, usage: 65536, path: join(r, 'disk.raw') });
    expect(imageStatus('dir1', { root: r }).modified).toBeInstanceOf(Date);
    if (kind === 'btrfs') expect(imageStatus('sub1', { root: r }).created).toBeInstanceOf(Date);
    expect(code(() => imageStatus('nope', { root: r }))).toBe('ENOENT');
    expect(listImages({ root: join(r, 'missing') })).toEqual([]);
  });

  it('clones: a subvolume by snapshot, a directory by copy (into a subvolume on btrfs), read-only on request', () => {
    const r = root();
    const c = cloneImage('dir1', 'dir1-clone', { root: r });
    expect(c.type).toBe(kind === 'btrfs' ? 'subvolume' : 'directory');
    expect(readFileSync(join(r, 'dir1-clone/usr/file'), 'utf8')).toBe('x');
    const ro = cloneImage('dir1', 'dir1-ro', { root: r, readOnly: true });
    expect(ro.readOnly).toBe(true);
    if (kind === 'btrfs') {
      const s = cloneImage('sub1', 'sub1-clone', { root: r });
      expect(s.type).toBe('subvolume');
      expect(isSubvolume(s.path)).toBe(true);
    }
    expect(cloneImage('disk', 'disk2', { root: r }).type).toBe('raw');
    expect(code(() => cloneImage('dir1', 'dir1-clone', { root: r }))).toBe('EEXIST');
    expect(code(() => cloneImage('dir1', '.#tmp', { root: r }))).toBe('EINVAL');
    expect(code(() => cloneImage('dir1', 'a/b', { root: r }))).toBe('EINVAL');
  });

  it('renames, taking NAME.nspawn along; refused while running', () => {
    const r = root();
    const n = renameImage('dir1', 'dir2', { root: r });
    expect(n.path).toBe(join(r, 'dir2'));
    expect(existsSync(join(r, 'dir2.nspawn'))).toBe(true);
    expect(existsSync(join(r, 'dir1.nspawn'))).toBe(false);
    const lock = lockImage(join(r, 'dir2'));
    try {
      expect(code(() => renameImage('dir2', 'dir3', { root: r }))).toBe('EBUSY');
      expect(code(() => removeImage('dir2', { root: r }))).toBe('EBUSY');
      expect(code(() => setImageReadOnly('dir2', true, { root: r }))).toBe('EBUSY');
      expect(imageStatus('dir2', { root: r }).locked).toBe(true);
    } finally {
      lock.release();
    }
    expect(existsSync(join(r, 'dir2'))).toBe(true);
  });

  it('read-only toggles (subvolume flag, immutable directory, raw write bits); removal of read-only images works', () => {
    const r = root();
    expect(setImageReadOnly('dir2', true, { root: r }).readOnly).toBe(true);
    expect(code(() => writeFileSync(join(r, 'dir2/new'), 'x'))).toMatch(/EPERM|EROFS/);
    expect(setImageReadOnly('dir2', false, { root: r }).readOnly).toBe(false);
    expect(setImageReadOnly('disk2', true, { root: r }).readOnly).toBe(true);
    removeImage('dir2', { root: r });
    expect(existsSync(join(r, 'dir2.nspawn'))).toBe(false);
    removeImage('dir1-ro', { root: r });
    removeImage('disk2', { root: r });
    expect(existsSync(join(r, 'dir1-ro'))).toBe(false);
  });

  it('limits: only for subvolumes, never switching quota on unasked', () => {
    const r = root();
    if (kind === 'ext4') {
      expect(code(() => setImageLimit('dir1-clone', 1e9, { root: r }))).toBe('EOPNOTSUPP');
      return;
    }
    expect(() => setImageLimit('sub1', 1e9, { root: r })).toThrow(ImageError);
    expect(code(() => setImageLimit('sub1', 1e9, { root: r }))).toBe('ENOTCONN');
    expect(quotaEnabled(r)).toBe(false);
    const s = setImageLimit('sub1', 1e9, { root: r, enableQuota: true });
    expect(s.limit).toBe(1e9);
    expect(typeof s.usage).toBe('number');
  });

  it('clean removes hidden images and orphaned ephemeral snapshots, never a running one', async () => {
    const r = root();
    mkdirSync(join(r, 'tree/usr'), { recursive: true });
    writeFileSync(join(r, 'tree/usr/f'), 'f');
    const running = createEphemeral(join(r, 'tree'));
    const orphan = await orphanEphemeral(join(r, 'tree'));
    expect(existsSync(join(orphan, 'root/usr/f'))).toBe(true); // an overlay left mounted
    const removed = cleanImages({ root: r });
    expect(removed).toContain('.hidden');
    expect(removed).toContain(orphan.slice(r.length + 1));
    expect(existsSync(join(r, '.hidden'))).toBe(false);
    expect(existsSync(orphan)).toBe(false);
    expect(existsSync(running.snapshot)).toBe(true);
    expect(existsSync(join(r, 'dir1-clone'))).toBe(true);
    running.remove();
    expect(existsSync(running.snapshot)).toBe(false);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(r);
  });
});
