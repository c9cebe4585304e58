import { describe, expect, it } from 'vitest';
import { extNeedsFsck, fstypeIsReadOnly, probeFilesystem } from './fsprobe.js';
import { bufferReader } from './reader.js';
import { fs } from './test/build.js';

const at = (write: (b: Buffer, off: number) => void, off = 4096, size = 1 << 20) => {
  const b = Buffer.alloc(off + size + 0x20000); // room past the partition, where the probe must not look
  write(b, off);
  return probeFilesystem(bufferReader(b), off, size);
};

describe('probeFilesystem', () => {
  it('tells ext4, ext3 and ext2 apart by their feature bits, with UUID and label', () => {
    expect(at(fs.ext4)).toEqual({ fstype: 'ext4', uuid: 'f00dfeed-0000-4000-8000-000000000001', label: 'root' });
    expect(at(fs.ext3)).toEqual({ fstype: 'ext3' });
    expect(at(fs.ext2)).toEqual({ fstype: 'ext2' });
  });
  it('btrfs, xfs, squashfs, erofs, vfat, LUKS, swap', () => {
    expect(at(fs.btrfs)!).toMatchObject({ fstype: 'btrfs' });
    expect(at(fs.xfs)!).toMatchObject({ fstype: 'xfs' });
    expect(at(fs.squashfs)).toEqual({ fstype: 'squashfs' });
    expect(at(fs.erofs)!).toMatchObject({ fstype: 'erofs' });
    expect(at(fs.vfat)).toEqual({ fstype: 'vfat', uuid: 'DEAD-BEEF' });
    expect(at(fs.luks)!).toMatchObject({ fstype: 'crypto_LUKS' });
    expect(at(fs.swap)).toEqual({ fstype: 'swap' });
  });
  it('looks only inside the partition: a btrfs superblock past its end is not seen', () => {
    expect(at(fs.btrfs, 4096, 0x10000)).toBeUndefined();
  });
  it('nothing, or several signatures (ambiguous)', () => {
    expect(at(() => {})).toBeUndefined();
    expect(
      at((b, o) => {
        fs.ext4(b, o);
        fs.btrfs(b, o);
      }),
    ).toEqual({ ambiguous: ['ext4', 'btrfs'] });
  });
  it('a boot sector that ends in 0x55AA but is no FAT', () => {
    expect(
      at((b, o) => {
        fs.vfat(b, o);
        b.writeUInt16LE(300, o + 11); // bytes per sector
      }),
    ).toBeUndefined();
  });
  it('read-only file systems', () => {
    expect(['squashfs', 'erofs', 'ext4', undefined].map(fstypeIsReadOnly)).toEqual([true, true, false, false]);
  });
});

describe('extNeedsFsck (what e2fsck -a would look at before doing anything)', () => {
  const now = 1_800_000_000;
  const sb = (set: (b: Buffer) => void = () => {}) => {
    const b = Buffer.alloc(1024);
    b.writeUInt16LE(0xef53, 0x38);
    b.writeUInt16LE(1, 0x3a); // clean
    b.writeInt16LE(-1, 0x36); // no maximal mount count
    b.writeUInt32LE(now - 1000, 0x40);
    set(b);
    return b;
  };
  it('a clean file system: nothing to do', () => {
    expect(extNeedsFsck(sb(), now)).toBe(false);
  });
  it.each([
    ['not cleanly unmounted', (b: Buffer) => b.writeUInt16LE(0, 0x3a)],
    ['errors recorded', (b: Buffer) => b.writeUInt16LE(3, 0x3a)],
    ['a journal to replay', (b: Buffer) => b.writeUInt32LE(0x0004 | 0x0040, 0x60)],
    ['orphans', (b: Buffer) => b.writeUInt32LE(12, 0xe8)],
    ['the orphan file has entries', (b: Buffer) => b.writeUInt32LE(0x10000, 0x64)],
    ['the mount count reached', (b: Buffer) => (b.writeInt16LE(20, 0x36), b.writeUInt16LE(20, 0x34))],
    ['the check interval passed', (b: Buffer) => b.writeUInt32LE(500, 0x44)],
    ['last checked in the future', (b: Buffer) => b.writeUInt32LE(now + 2 * 86400, 0x40)],
    ['no ext superblock at all', (b: Buffer) => b.writeUInt16LE(0, 0x38)],
  ])('%s: e2fsck is run', (_what, set) => {
    expect(extNeedsFsck(sb(set), now)).toBe(true);
  });
});
