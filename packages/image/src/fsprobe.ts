/**
 * File system types from their superblocks, as libblkid's superblock probes name them (the subset systemd images
 * use): ext2/ext3/ext4, btrfs, xfs, vfat, squashfs, erofs, plus crypto_LUKS and swap so that they are recognised and
 * refused rather than mounted. Pure: reads through a BlockReader at a partition's offset.
 *
 * Why not `blkid -p`: it is one more process per partition at every start, and not every host has it; these magics
 * are stable on-disk formats. More than one match is "ambiguous", as for libblkid's safe probe, and refused.
 */
import type { BlockReader } from './reader.js';

export interface FsProbe {
  /** the type libblkid reports (the mount(2) type for the mountable ones) */
  readonly fstype: string;
  /** the file system UUID, where the superblock has one */
  readonly uuid?: string;
  /** the file system label, where the superblock has one */
  readonly label?: string;
}

export type ProbeResult = FsProbe | { ambiguous: string[] } | undefined;

const uuidAt = (b: Buffer, at: number) => {
  const h = b.subarray(at, at + 16).toString('hex');
  return h === '0'.repeat(32) ? undefined : `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
};
const labelAt = (b: Buffer, at: number, len: number) => {
  const s = b.subarray(at, at + len).toString('utf8');
  const nul = s.indexOf('\0');
  const l = (nul < 0 ? s : s.slice(0, nul)).trimEnd();
  return l === '' ? undefined : l;
};
const withMeta = (fstype: string, uuid?: string, label?: string): FsProbe => ({ fstype, ...(uuid ? { uuid } : {}), ...(label ? { label } : {}) });

// ext2/3/4 (libblkid superblocks/ext.c): the feature bits that tell them apart
const EXT3_FEATURE_COMPAT_HAS_JOURNAL = 0x0004;
const EXT3_FEATURE_INCOMPAT_JOURNAL_DEV = 0x0008;
const EXT3_FEATURE_RO_COMPAT_SUPP = 0x0001 | 0x0002 | 0x0004;
const EXT3_FEATURE_INCOMPAT_SUPP = 0x0002 | 0x0004 | 0x0010;

function ext(sb: Buffer): FsProbe | undefined {
  if (sb.length < 0x100 || sb.readUInt16LE(0x38) !== 0xef53) return undefined;
  const compat = sb.readUInt32LE(0x5c);
  const incompat = sb.readUInt32LE(0x60);
  const roCompat = sb.readUInt32LE(0x64);
  if (incompat & EXT3_FEATURE_INCOMPAT_JOURNAL_DEV) return withMeta('jbd', uuidAt(sb, 0x68), labelAt(sb, 0x78, 16));
  let fstype: string;
  if (incompat & ~EXT3_FEATURE_INCOMPAT_SUPP || roCompat & ~EXT3_FEATURE_RO_COMPAT_SUPP) fstype = 'ext4';
  else if (compat & EXT3_FEATURE_COMPAT_HAS_JOURNAL) fstype = 'ext3';
  else fstype = 'ext2';
  return withMeta(fstype, uuidAt(sb, 0x68), labelAt(sb, 0x78, 16));
}

function vfat(bs: Buffer): FsProbe | undefined {
  if (bs.length < 512 || bs[510] !== 0x55 || bs[511] !== 0xaa) return undefined;
  if (!(bs[0] === 0xeb || bs[0] === 0xe9)) return undefined;
  const bytesPerSector = bs.readUInt16LE(11);
  const perCluster = bs[13]!;
  const reserved = bs.readUInt16LE(14);
  const fats = bs[16]!;
  if (![512, 1024, 2048, 4096].includes(bytesPerSector)) return undefined;
  if (perCluster === 0 || (perCluster & (perCluster - 1)) !== 0) return undefined;
  if (reserved === 0 || fats === 0 || fats > 4) return undefined;
  const fat32 = bs.subarray(0x52, 0x5a).toString('latin1');
  const fat16 = bs.subarray(0x36, 0x3e).toString('latin1');
  if (fat32.startsWith('FAT32')) {
    const id = bs.readUInt32LE(0x43).toString(16).toUpperCase().padStart(8, '0');
    return withMeta('vfat', `${id.slice(0, 4)}-${id.slice(4)}`, labelAt(bs, 0x47, 11)?.replace(/^NO NAME$/, '') || undefined);
  }
  if (fat16.startsWith('FAT1') || fat16.startsWith('FAT ') || fat16.startsWith('MSDOS')) {
    const id = bs.readUInt32LE(0x27).toString(16).toUpperCase().padStart(8, '0');
    return withMeta('vfat', `${id.slice(0, 4)}-${id.slice(4)}`, labelAt(bs, 0x2b, 11)?.replace(/^NO NAME$/, '') || undefined);
  }
  return undefined;
}

/**
 * The file systems found in SIZE bytes at OFFSET: one (its type, UUID, label), several (ambiguous: refused, as
 * libblkid's safe probe refuses them), or none.
 */
export function probeFilesystem(reader: BlockReader, offset: number, size: number): ProbeResult {
  // one read covers every superblock looked at (the last one, btrfs', ends at 68 KiB)
  const block = reader.read(offset, Math.min(size, 0x11000));
  const read = (at: number, len: number) => (at + len <= block.length ? block.subarray(at, at + len) : Buffer.alloc(0));
  const found: FsProbe[] = [];
  const head = read(0, 4096);
  const at1k = read(1024, 1024);

  const e = ext(at1k);
  if (e) found.push(e);

  if (head.length >= 4 && head.subarray(0, 4).toString('latin1') === 'XFSB')
    found.push(withMeta('xfs', uuidAt(head, 32), labelAt(head, 108, 12)));

  const btrfs = read(0x10000, 0x1000);
  if (btrfs.length >= 0x140 && btrfs.subarray(0x40, 0x48).toString('latin1') === '_BHRfS_M')
    found.push(withMeta('btrfs', uuidAt(btrfs, 0x20), labelAt(btrfs, 0x12b, 256)));

  if (head.length >= 96 && head.readUInt32LE(0) === 0x73717368) found.push({ fstype: 'squashfs' }); // "hsqs"

  if (at1k.length >= 0x80 && at1k.readUInt32LE(0) === 0xe0f5e1e2) found.push(withMeta('erofs', uuidAt(at1k, 0x30), labelAt(at1k, 0x40, 16)));

  const fat = vfat(head);
  if (fat) found.push(fat);

  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe]))) {
    const u = head.subarray(168, 168 + 40).toString('latin1');
    const nul = u.indexOf('\0');
    found.push(withMeta('crypto_LUKS', (nul < 0 ? u : u.slice(0, nul)) || undefined));
  }

  for (const page of [4096, 8192, 16384, 65536]) {
    const sig = read(page - 10, 10).toString('latin1');
    if (sig === 'SWAPSPACE2' || sig === 'SWAP-SPACE') {
      found.push({ fstype: 'swap' });
      break;
    }
  }

  if (found.length === 0) return undefined;
  if (found.length === 1) return found[0];
  return { ambiguous: found.map((f) => f.fstype) };
}

/** Necessarily read-only file systems (systemd's fstype_is_ro()). */
export function fstypeIsReadOnly(fstype: string | undefined): boolean {
  return fstype !== undefined && ['DM_verity_hash', 'cramfs', 'erofs', 'iso9660', 'squashfs'].includes(fstype);
}

/** File systems with a `discard` mount option (systemd's fstype_can_discard()). */
export function fstypeCanDiscard(fstype: string): boolean {
  return ['btrfs', 'f2fs', 'ext4', 'vfat', 'xfs'].includes(fstype);
}

/** File systems whose uid=/gid= options fix every owner (systemd's fstype_can_uid_gid()). */
export function fstypeCanUidGid(fstype: string): boolean {
  return ['adfs', 'exfat', 'fat', 'hfs', 'hpfs', 'iso9660', 'msdos', 'ntfs', 'vfat'].includes(fstype);
}

/** File systems that still write to a read-only mount unless told `norecovery` (systemd's mount_partition()). */
export function fstypeNeedsNorecovery(fstype: string): boolean {
  return ['ext3', 'ext4', 'xfs', 'btrfs'].includes(fstype);
}

/**
 * Would `fsck.ext4 -a` (e2fsck in preen mode) do anything to this ext2/3/4 file system? Its superblock (the 1024
 * bytes at offset 1024) says: not cleanly unmounted, errors recorded, a journal to replay, orphans to release, the
 * mount count or check interval reached, a last check in the future. When none holds, e2fsck finds it clean and
 * exits 0 without looking further: starting it can be skipped, with the same outcome.
 */
export function extNeedsFsck(sb: Buffer, nowSeconds = Math.floor(Date.now() / 1000)): boolean {
  if (sb.length < 0x100 || sb.readUInt16LE(0x38) !== 0xef53) return true;
  const mntCount = sb.readUInt16LE(0x34);
  const maxMnt = sb.readInt16LE(0x36);
  const state = sb.readUInt16LE(0x3a);
  const lastcheck = sb.readUInt32LE(0x40);
  const interval = sb.readUInt32LE(0x44);
  const incompat = sb.readUInt32LE(0x60);
  const roCompat = sb.readUInt32LE(0x64);
  const lastOrphan = sb.readUInt32LE(0xe8);
  if (!(state & 1) || state & 2) return true; // not clean, or errors
  if (incompat & 0x0004) return true; // the journal needs recovery
  if (lastOrphan !== 0 || roCompat & 0x10000) return true; // orphans to release
  if (maxMnt > 0 && mntCount >= maxMnt) return true;
  if (interval > 0 && nowSeconds >= lastcheck + interval) return true;
  if (lastcheck > nowSeconds + 86400) return true; // checked "in the future": e2fsck fixes the time
  return false;
}
