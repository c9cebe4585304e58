// Crafted disk images for the tests: a GPT (protective MBR, primary and backup headers and entry arrays, CRCs) or an
// MBR written into a Buffer, with hooks to make the headers lie (patched before their CRC, so the CRC still matches)
// or to corrupt them (after it), and file system signatures to put inside partitions.
import { crc32 } from 'node:zlib';
import { type Architecture, type PartitionRole, partitionTypeUuid } from '../partition-types.js';
import { guidToBuffer } from '../table.js';

export interface BuildPartition {
  /** a type UUID, or a role (with arch for root/usr) */
  type: string | { role: PartitionRole; arch?: Architecture };
  uuid?: string;
  first: number;
  last: number;
  attrs?: bigint;
  name?: string;
  /** slot in the entry array (default: the next one) */
  slot?: number;
}

export interface BuildOptions {
  sectorSize?: 512 | 4096;
  /** the image size in sectors */
  sectors: number;
  partitions: BuildPartition[];
  entries?: number;
  pmbr?: boolean;
  primary?: boolean;
  backup?: boolean;
  firstUsable?: number;
  lastUsable?: number;
  /** change header fields before the CRC is computed (the CRC matches the lie) */
  patchHeader?: (h: Buffer, which: 'primary' | 'backup') => void;
  /** damage the header after its CRC was computed */
  corruptHeader?: (h: Buffer, which: 'primary' | 'backup') => void;
  /** damage the entry array after its CRC was computed */
  corruptEntries?: (e: Buffer, which: 'primary' | 'backup') => void;
  diskUuid?: string;
}

let counter = 0;
/** a fresh partition UUID (deterministic, for reproducible tests) */
export const testUuid = () => `00000000-0000-4000-8000-${(++counter).toString(16).padStart(12, '0')}`;

export function typeOf(t: BuildPartition['type']): string {
  return typeof t === 'string' ? t : partitionTypeUuid(t.role, t.arch);
}

export function buildGpt(o: BuildOptions): Buffer {
  const ss = o.sectorSize ?? 512;
  const nEntries = o.entries ?? 128;
  const img = Buffer.alloc(o.sectors * ss);
  const lastLba = o.sectors - 1;
  const entrySectors = Math.ceil((nEntries * 128) / ss);
  const firstUsable = o.firstUsable ?? 2 + entrySectors;
  const lastUsable = o.lastUsable ?? lastLba - entrySectors - 1;

  if (o.pmbr !== false) {
    img[446 + 4] = 0xee;
    img.writeUInt32LE(1, 446 + 8);
    img.writeUInt32LE(Math.min(o.sectors - 1, 0xffffffff), 446 + 12);
    img[510] = 0x55;
    img[511] = 0xaa;
  }
  const entries = Buffer.alloc(nEntries * 128);
  let next = 0;
  for (const p of o.partitions) {
    const slot = p.slot ?? next;
    next = slot + 1;
    const e = entries.subarray(slot * 128, slot * 128 + 128);
    guidToBuffer(typeOf(p.type)).copy(e, 0);
    guidToBuffer(p.uuid ?? testUuid()).copy(e, 16);
    e.writeBigUInt64LE(BigInt(p.first), 32);
    e.writeBigUInt64LE(BigInt(p.last), 40);
    e.writeBigUInt64LE(p.attrs ?? 0n, 48);
    if (p.name) Buffer.from(p.name, 'utf16le').copy(e, 56, 0, 72);
  }
  const write = (which: 'primary' | 'backup') => {
    const myLba = which === 'primary' ? 1 : lastLba;
    const altLba = which === 'primary' ? lastLba : 1;
    const entriesLba = which === 'primary' ? 2 : lastLba - entrySectors;
    const e = Buffer.from(entries);
    const h = Buffer.alloc(ss);
    h.write('EFI PART', 0, 'latin1');
    h.writeUInt32LE(0x00010000, 8);
    h.writeUInt32LE(92, 12);
    h.writeBigUInt64LE(BigInt(myLba), 24);
    h.writeBigUInt64LE(BigInt(altLba), 32);
    h.writeBigUInt64LE(BigInt(firstUsable), 40);
    h.writeBigUInt64LE(BigInt(lastUsable), 48);
    guidToBuffer(o.diskUuid ?? '11111111-2222-4333-8444-555555555555').copy(h, 56);
    h.writeBigUInt64LE(BigInt(entriesLba), 72);
    h.writeUInt32LE(nEntries, 80);
    h.writeUInt32LE(128, 84);
    h.writeUInt32LE(crc32(e), 88);
    o.patchHeader?.(h, which);
    h.writeUInt32LE(0, 16);
    h.writeUInt32LE(crc32(h.subarray(0, h.readUInt32LE(12) <= ss ? h.readUInt32LE(12) : 92)), 16);
    o.corruptHeader?.(h, which);
    o.corruptEntries?.(e, which);
    h.copy(img, myLba * ss);
    e.copy(img, entriesLba * ss);
  };
  if (o.primary !== false) write('primary');
  if (o.backup !== false) write('backup');
  return img;
}

/** recomputes a header's CRC (after a patch that should keep it valid) */
export function fixHeaderCrc(h: Buffer): void {
  h.writeUInt32LE(0, 16);
  h.writeUInt32LE(crc32(h.subarray(0, h.readUInt32LE(12))), 16);
}

export interface MbrPartition {
  type: number;
  start: number;
  count: number;
  bootable?: boolean;
}

export function buildMbr(sectors: number, parts: MbrPartition[], diskId = 0x12345678): Buffer {
  const img = Buffer.alloc(sectors * 512);
  img.writeUInt32LE(diskId, 440);
  parts.forEach((p, i) => {
    const e = img.subarray(446 + 16 * i, 446 + 16 * (i + 1));
    e[0] = p.bootable ? 0x80 : 0;
    e[4] = p.type;
    e.writeUInt32LE(p.start, 8);
    e.writeUInt32LE(p.count, 12);
  });
  img[510] = 0x55;
  img[511] = 0xaa;
  return img;
}

/** file system signatures as mkfs writes them, at OFFSET of IMG */
export const fs = {
  ext4(img: Buffer, offset: number, uuid = 'f00dfeed-0000-4000-8000-000000000001', label = 'root'): void {
    const sb = img.subarray(offset + 1024, offset + 2048);
    sb.writeUInt16LE(0xef53, 0x38);
    sb.writeUInt32LE(0x0004, 0x5c); // has_journal
    sb.writeUInt32LE(0x0002 | 0x0040, 0x60); // filetype, extents
    sb.writeUInt32LE(0x0001, 0x64);
    Buffer.from(uuid.replace(/-/g, ''), 'hex').copy(sb, 0x68);
    sb.write(label, 0x78, 'utf8');
  },
  ext3(img: Buffer, offset: number): void {
    const sb = img.subarray(offset + 1024, offset + 2048);
    sb.writeUInt16LE(0xef53, 0x38);
    sb.writeUInt32LE(0x0004, 0x5c);
    sb.writeUInt32LE(0x0002, 0x60);
  },
  ext2(img: Buffer, offset: number): void {
    img.writeUInt16LE(0xef53, offset + 1024 + 0x38);
  },
  squashfs(img: Buffer, offset: number): void {
    img.writeUInt32LE(0x73717368, offset);
  },
  erofs(img: Buffer, offset: number): void {
    img.writeUInt32LE(0xe0f5e1e2, offset + 1024);
  },
  xfs(img: Buffer, offset: number): void {
    img.write('XFSB', offset, 'latin1');
  },
  btrfs(img: Buffer, offset: number): void {
    img.write('_BHRfS_M', offset + 0x10040, 'latin1');
  },
  luks(img: Buffer, offset: number): void {
    Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe]).copy(img, offset);
  },
  swap(img: Buffer, offset: number): void {
    img.write('SWAPSPACE2', offset + 4096 - 10, 'latin1');
  },
  vfat(img: Buffer, offset: number): void {
    const b = img.subarray(offset, offset + 512);
    b[0] = 0xeb;
    b[1] = 0x3c;
    b[2] = 0x90;
    b.writeUInt16LE(512, 11);
    b[13] = 4;
    b.writeUInt16LE(4, 14);
    b[16] = 2;
    b.writeUInt32LE(0xdeadbeef, 0x27);
    b.write('NO NAME    FAT16   ', 0x2b, 'latin1');
    b[510] = 0x55;
    b[511] = 0xaa;
  },
};
