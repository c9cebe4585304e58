/**
 * Partition tables, read as libblkid reads them for systemd 252's dissect_image() (libblkid/src/partitions/gpt.c and
 * dos.c), with stricter refusals where an image lies: the protective MBR, the primary GPT header (signature, revision,
 * header size, CRC32 of the header and of the entry array, MyLBA, first/last usable LBA, entry size and count), the
 * backup header at the last LBA when the primary is bad, 512- and 4096-byte sectors, and the MBR (dos) table. Pure:
 * it reads through a BlockReader and throws an ImageError naming the image for whatever it refuses.
 */
import { crc32 } from './crc32.js';
import { ImageError } from './errors.js';
import type { BlockReader } from './reader.js';

export interface TableEntry {
  /** the partition number: the GPT entry's slot + 1 (empty slots count), the MBR entry's 1..4 */
  readonly number: number;
  /** GPT: the type UUID (lower case) */
  readonly typeUuid?: string;
  /** MBR: the type byte */
  readonly mbrType?: number;
  /** GPT: the partition's UUID; MBR: DISKID-NN as blkid names it */
  readonly uuid?: string;
  /** GPT: the partition name (UTF-16LE on disk, up to its first NUL), undefined when empty (as libblkid returns it) */
  readonly label?: string;
  /** GPT: the 64 attribute bits; MBR: the boot indicator (0x80 bootable) */
  readonly attributes: bigint;
  readonly firstLba: bigint;
  readonly lastLba: bigint;
  /** byte offset in the image */
  readonly offset: number;
  /** size in bytes */
  readonly size: number;
}

export interface PartitionTable {
  readonly kind: 'gpt' | 'mbr';
  /** the logical sector size the table is laid out in: 512 or 4096 */
  readonly sectorSize: number;
  /** GPT: the disk GUID; MBR: the 32-bit disk identifier as 8 hex digits */
  readonly diskUuid?: string;
  /** GPT: which header was used */
  readonly header?: 'primary' | 'backup';
  /** GPT: the header's revision, "1.0" */
  readonly revision?: string;
  readonly firstUsableLba?: bigint;
  readonly lastUsableLba?: bigint;
  /** GPT: the number of entry slots */
  readonly entrySlots?: number;
  /** the partitions in table order (empty slots left out) */
  readonly entries: readonly TableEntry[];
  /** what was odd but usable (the backup header used, ...) */
  readonly warnings: readonly string[];
}

/** readPartitionTable(): a table, or why there is none (for the error when no file system is found either). */
export type TableProbe = { table: PartitionTable } | { reasons: string[] };

export const GPT_SIGNATURE = Buffer.from('EFI PART', 'latin1');
/** the header fields libblkid reads: 92 bytes */
export const GPT_HEADER_MIN = 92;
export const GPT_ENTRY_SIZE = 128;
/**
 * The largest entry array we read: 16384 entries of 128 bytes (2 MiB). libblkid reads up to 4 GiB; real tables have
 * 128 entries (16 KiB), the minimum UEFI allows. A larger count is a lie meant to make us read gigabytes.
 */
export const GPT_MAX_ENTRIES = 16384;
const SECTOR_SIZES = [512, 4096] as const;
const MBR_GPT_TYPE = 0xee;

/** A GPT GUID (mixed-endian on disk) as the usual lower-case string. */
export function guidToString(b: Buffer, at = 0): string {
  const h = (s: number, e: number) => b.subarray(at + s, at + e).toString('hex');
  const le = (s: number, e: number) => Buffer.from(b.subarray(at + s, at + e)).reverse().toString('hex');
  return `${le(0, 4)}-${le(4, 6)}-${le(6, 8)}-${h(8, 10)}-${h(10, 16)}`;
}

/** The on-disk GPT form of a UUID string (the tests write tables with it). */
export function guidToBuffer(uuid: string): Buffer {
  const hex = uuid.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new Error(`not a UUID: ${uuid}`);
  const b = Buffer.from(hex, 'hex');
  b.subarray(0, 4).reverse();
  b.subarray(4, 6).reverse();
  b.subarray(6, 8).reverse();
  return b;
}

const isZero = (b: Buffer) => b.every((x) => x === 0);
const hex32 = (n: number) => `0x${n.toString(16).padStart(8, '0')}`;

/** The protective MBR: the 0x55AA signature and a partition of type 0xEE among the four (libblkid's is_pmbr_valid()). */
export function hasProtectiveMbr(sector0: Buffer): boolean {
  if (sector0.length < 512 || sector0[510] !== 0x55 || sector0[511] !== 0xaa) return false;
  for (let i = 0; i < 4; i++) if (sector0[446 + 16 * i + 4] === MBR_GPT_TYPE) return true;
  return false;
}

interface GptHeader {
  revision: number;
  firstUsable: bigint;
  lastUsable: bigint;
  diskUuid: string;
  entriesLba: bigint;
  entryCount: number;
  entries: Buffer;
}

/**
 * Reads and checks the GPT header at LBA (libblkid's get_gpt_header(), plus a bound on the entry count, the revision,
 * and an entry array that must lie inside the image and outside the usable area). A string says why it is refused.
 */
function readGptHeader(reader: BlockReader, ss: number, lba: bigint, lastLba: bigint): GptHeader | string {
  const at = Number(lba) * ss;
  const h = reader.read(at, ss);
  if (h.length < ss) return 'beyond the end of the image';
  if (!h.subarray(0, 8).equals(GPT_SIGNATURE)) return "no 'EFI PART' signature";
  const revision = h.readUInt32LE(8);
  const hsz = h.readUInt32LE(12);
  if (hsz < GPT_HEADER_MIN || hsz > ss) return `header size ${hsz} is not between ${GPT_HEADER_MIN} and the sector size ${ss}`;
  const stored = h.readUInt32LE(16);
  const copy = Buffer.from(h.subarray(0, hsz));
  copy.writeUInt32LE(0, 16);
  const computed = crc32(copy);
  if (computed !== stored) return `header CRC32 mismatch (stored ${hex32(stored)}, computed ${hex32(computed)})`;
  if (revision >>> 16 !== 1) return `revision ${revision >>> 16}.${revision & 0xffff} is not 1.x`;
  const myLba = h.readBigUInt64LE(24);
  if (myLba !== lba) return `MyLBA ${myLba} is not where the header is (LBA ${lba})`;
  const fu = h.readBigUInt64LE(40);
  const lu = h.readBigUInt64LE(48);
  if (lu < fu) return `last usable LBA ${lu} is before the first usable LBA ${fu}`;
  if (fu > lastLba || lu > lastLba) return `usable LBAs ${fu}-${lu} reach beyond the end of the image (last LBA ${lastLba})`;
  if (fu < lba && lba < lu) return `the header lies inside the usable LBAs ${fu}-${lu}`;
  const count = h.readUInt32LE(80);
  const esize = h.readUInt32LE(84);
  if (esize !== GPT_ENTRY_SIZE) return `entry size ${esize} is not ${GPT_ENTRY_SIZE}`;
  if (count === 0) return 'no entry slots';
  if (count > GPT_MAX_ENTRIES) return `${count} entry slots (more than ${GPT_MAX_ENTRIES})`;
  const elba = h.readBigUInt64LE(72);
  const bytes = count * esize;
  const lastEntryLba = elba + BigInt(Math.ceil(bytes / ss)) - 1n;
  if (lastEntryLba > lastLba) return `the entry array (LBA ${elba}-${lastEntryLba}) reaches beyond the end of the image`;
  if (elba <= lu && lastEntryLba >= fu) return `the entry array (LBA ${elba}-${lastEntryLba}) overlaps the usable LBAs ${fu}-${lu}`;
  if (elba <= lba && lba <= lastEntryLba) return `the entry array (LBA ${elba}-${lastEntryLba}) overlaps the header`;
  const entries = reader.read(Number(elba) * ss, bytes);
  if (entries.length < bytes) return 'the entry array is cut short';
  const ecrc = crc32(entries);
  const estored = h.readUInt32LE(88);
  if (ecrc !== estored) return `entry array CRC32 mismatch (stored ${hex32(estored)}, computed ${hex32(ecrc)})`;
  return { revision, firstUsable: fu, lastUsable: lu, diskUuid: guidToString(h, 56), entriesLba: elba, entryCount: count, entries };
}

function gptEntries(image: string, ss: number, hdr: GptHeader): TableEntry[] {
  const out: TableEntry[] = [];
  for (let i = 0; i < hdr.entryCount; i++) {
    const e = hdr.entries.subarray(i * GPT_ENTRY_SIZE, (i + 1) * GPT_ENTRY_SIZE);
    if (isZero(e.subarray(0, 16))) continue; // an unused slot; the numbering goes on
    const first = e.readBigUInt64LE(32);
    const last = e.readBigUInt64LE(40);
    const number = i + 1;
    if (last < first)
      throw new ImageError(`${image}: GPT partition ${number} ends (LBA ${last}) before it starts (LBA ${first}).`, 'EBADMSG', image);
    if (first < hdr.firstUsable || last > hdr.lastUsable)
      throw new ImageError(
        `${image}: GPT partition ${number} (LBA ${first}-${last}) lies outside the usable LBAs ${hdr.firstUsable}-${hdr.lastUsable}.`,
        'EBADMSG',
        image,
      );
    const name = e.subarray(56, 128).toString('utf16le');
    const nul = name.indexOf('\0');
    const label = nul < 0 ? name : name.slice(0, nul);
    out.push({
      number,
      typeUuid: guidToString(e, 0),
      uuid: guidToString(e, 16),
      ...(label ? { label } : {}),
      attributes: e.readBigUInt64LE(48),
      firstLba: first,
      lastLba: last,
      offset: Number(first) * ss,
      size: Number(last - first + 1n) * ss,
    });
  }
  return out;
}

/** Refuses partitions that share sectors: writing one would overwrite the other. */
function refuseOverlaps(image: string, kind: string, entries: readonly TableEntry[]): void {
  const sorted = [...entries].sort((a, b) => (a.firstLba < b.firstLba ? -1 : a.firstLba > b.firstLba ? 1 : a.number - b.number));
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1]!;
    const b = sorted[i]!;
    if (b.firstLba <= a.lastLba) {
      const [x, y] = a.number < b.number ? [a, b] : [b, a];
      throw new ImageError(
        `${image}: ${kind} partitions ${x.number} (LBA ${x.firstLba}-${x.lastLba}) and ${y.number} (LBA ${y.firstLba}-${y.lastLba}) overlap.`,
        'EBADMSG',
        image,
      );
    }
  }
}

function readGpt(reader: BlockReader, image: string, sector0: Buffer): TableProbe {
  const pmbr = hasProtectiveMbr(sector0);
  const problems: string[] = [];
  let signatures = false;
  for (const ss of SECTOR_SIZES) {
    if (reader.size < 2 * ss) continue;
    const lastLba = BigInt(Math.floor(reader.size / ss)) - 1n;
    const primarySig = reader.read(ss, 8).equals(GPT_SIGNATURE);
    const backupSig = reader.read(Number(lastLba) * ss, 8).equals(GPT_SIGNATURE);
    if (!primarySig && !backupSig) continue;
    signatures = true;
    if (!pmbr) {
      problems.push(`a GPT header (${ss}-byte sectors) without a protective MBR in sector 0 (ignored, as libblkid does)`);
      continue;
    }
    const primary = readGptHeader(reader, ss, 1n, lastLba);
    let hdr: GptHeader;
    const warnings: string[] = [];
    let which: 'primary' | 'backup' = 'primary';
    if (typeof primary === 'string') {
      const backup = readGptHeader(reader, ss, lastLba, lastLba);
      if (typeof backup === 'string') {
        problems.push(`primary GPT header (LBA 1, ${ss}-byte sectors): ${primary}; backup GPT header (LBA ${lastLba}): ${backup}`);
        continue;
      }
      hdr = backup;
      which = 'backup';
      warnings.push(`${image}: primary GPT header is bad (${primary}); using the backup header at LBA ${lastLba}.`);
    } else hdr = primary;
    const entries = gptEntries(image, ss, hdr);
    refuseOverlaps(image, 'GPT', entries);
    return {
      table: {
        kind: 'gpt',
        sectorSize: ss,
        diskUuid: hdr.diskUuid,
        header: which,
        revision: `${hdr.revision >>> 16}.${hdr.revision & 0xffff}`,
        firstUsableLba: hdr.firstUsable,
        lastUsableLba: hdr.lastUsable,
        entrySlots: hdr.entryCount,
        entries,
        warnings,
      },
    };
  }
  if (pmbr && !signatures) problems.push("a protective MBR but no GPT header ('EFI PART') at LBA 1 or at the last LBA");
  // a protective MBR says "this is GPT": a bad GPT then is an error, not a reason to look for something else
  if (pmbr)
    throw new ImageError(`${image}: Couldn't identify a suitable partition table or file system: ${problems.join('; ')}.`, 'ENOPKG', image);
  return { reasons: problems };
}

/**
 * The MBR (dos) table of the four primary entries, as libblkid's dos.c accepts it: the 0x55AA signature and boot
 * indicators of 0 or 0x80 only. Logical partitions inside an extended one are not followed (systemd only uses a
 * bootable 0x83 and an 0xEA partition, which are primary in practice).
 */
export function readMbr(reader: BlockReader, image: string, sector0: Buffer): TableProbe {
  if (sector0.length < 512 || sector0[510] !== 0x55 || sector0[511] !== 0xaa) return { reasons: [] };
  const raw = [0, 1, 2, 3].map((i) => sector0.subarray(446 + 16 * i, 446 + 16 * (i + 1)));
  if (raw.some((p) => p[0] !== 0 && p[0] !== 0x80)) return { reasons: ['sector 0 ends in 0x55AA but is no MBR (invalid boot indicators)'] };
  const diskId = sector0.readUInt32LE(440).toString(16).padStart(8, '0');
  const entries: TableEntry[] = [];
  raw.forEach((p, i) => {
    const type = p[4]!;
    const start = p.readUInt32LE(8);
    const count = p.readUInt32LE(12);
    if (type === 0 || count === 0) return;
    const number = i + 1;
    const end = BigInt(start) + BigInt(count) - 1n;
    if ((end + 1n) * 512n > BigInt(reader.size))
      throw new ImageError(
        `${image}: MBR partition ${number} (sectors ${start}-${end}) reaches beyond the end of the image (${reader.size} bytes).`,
        'EBADMSG',
        image,
      );
    entries.push({
      number,
      mbrType: type,
      uuid: `${diskId}-${number.toString(16).padStart(2, '0')}`,
      attributes: BigInt(p[0]!),
      firstLba: BigInt(start),
      lastLba: end,
      offset: start * 512,
      size: count * 512,
    });
  });
  refuseOverlaps(image, 'MBR', entries);
  return { table: { kind: 'mbr', sectorSize: 512, diskUuid: diskId, entries, warnings: [] } };
}

/**
 * The GPT of the image (512- or 4096-byte sectors, the backup header when the primary is bad), or why there is none.
 * A table that lies (overlapping partitions, partitions outside the usable area) or a corrupt GPT behind a protective
 * MBR is refused with an ImageError. The MBR (dos) table is not looked at here: a file system comes first (see
 * dissectImage()).
 */
export function readGptTable(reader: BlockReader, image: string): TableProbe {
  return readGpt(reader, image, reader.read(0, 512));
}
