/**
 * Which partition of an image is what, as systemd 252's dissect_image() decides it with the flags systemd-nspawn
 * passes (DISSECT_IMAGE_GENERIC_ROOT | REQUIRE_ROOT | RELAX_VAR_CHECK | USR_NO_ROOT, and verity settings without a
 * root hash): root, /usr (and their Verity partitions) by architecture, home, srv, var, tmp, the ESP and XBOOTLDR,
 * swap; the no-auto and read-only flags; the newest root by label (strverscmp_improved); the native, then secondary,
 * then any other architecture; a single generic Linux partition or a bootable MBR 0x83 partition as the root; a
 * file system without a partition table as the root. Pure: a BlockReader in, a DissectedImage (or an ImageError
 * with 252's message) out.
 */
import { ImageError } from './errors.js';
import { fstypeIsReadOnly, probeFilesystem } from './fsprobe.js';
import {
  type Architecture,
  GPT_FLAG_GROWFS,
  GPT_FLAG_NO_AUTO,
  GPT_FLAG_NO_BLOCK_IO_PROTOCOL,
  GPT_FLAG_READ_ONLY,
  nativeArchitecture,
  partitionType,
  partitionTypeUuid,
} from './partition-types.js';
import type { BlockReader } from './reader.js';
import { strverscmpImproved } from './strverscmp.js';
import { type PartitionTable, readGptTable, readMbr, type TableEntry } from './table.js';

/** systemd's partition designators (partition_designator_table of v252). */
export type Designator =
  | 'root'
  | 'root-secondary'
  | 'root-other'
  | 'usr'
  | 'usr-secondary'
  | 'usr-other'
  | 'home'
  | 'srv'
  | 'esp'
  | 'xbootldr'
  | 'swap'
  | 'root-verity'
  | 'root-secondary-verity'
  | 'root-other-verity'
  | 'usr-verity'
  | 'usr-secondary-verity'
  | 'usr-other-verity'
  | 'root-verity-sig'
  | 'root-secondary-verity-sig'
  | 'root-other-verity-sig'
  | 'usr-verity-sig'
  | 'usr-secondary-verity-sig'
  | 'usr-other-verity-sig'
  | 'tmp'
  | 'var';

export interface DissectedPartition {
  readonly designator: Designator;
  /** the partition number, undefined for a file system without a partition table */
  readonly number?: number;
  /** the GPT type UUID (the MBR type as 0xNN for MBR partitions) */
  readonly type?: string;
  /** the partition's UUID (GPT), DISKID-NN (MBR) */
  readonly uuid?: string;
  readonly label?: string;
  /** the architecture of a root or /usr partition (or its Verity partition) */
  readonly architecture?: Architecture;
  /** byte offset and size in the image */
  readonly offset: number;
  readonly size: number;
  /** mounted read-write unless asked otherwise: not flagged read-only (bit 60), not a read-only file system */
  readonly rw: boolean;
  /** the grow-file-system flag (bit 59); ignored by this package */
  readonly growfs: boolean;
  /** the probed file system type: ext4, btrfs, xfs, vfat, squashfs, erofs, crypto_LUKS, ... (undefined: none found) */
  readonly fstype?: string;
  readonly fsUuid?: string;
  readonly fsLabel?: string;
  /** the GPT attribute bits (MBR: the boot indicator) */
  readonly flags: bigint;
}

/** What became of one entry of the table: the designator it got, or why it is not used. */
export interface EntryUse {
  readonly entry: TableEntry;
  /** the designator (its final one: root-secondary promoted to root is "root") */
  readonly designator?: Designator;
  /** why it is not used: "no-auto flag", "unknown type", "an older version of root", ... */
  readonly ignored?: string;
}

export interface DissectedImage {
  /** the image path (for messages) */
  readonly image: string;
  /** bytes */
  readonly size: number;
  /** gpt, mbr, or none (a file system without a partition table) */
  readonly table: 'gpt' | 'mbr' | 'none';
  readonly sectorSize: number;
  readonly diskUuid?: string;
  /** GPT: which header was used */
  readonly header?: 'primary' | 'backup';
  readonly singleFileSystem: boolean;
  /** the partitions found, by designator (after the architecture fallbacks: root is root, whatever its arch) */
  readonly partitions: Partial<Record<Designator, DissectedPartition>>;
  /** every table entry and what became of it */
  readonly entries: readonly EntryUse[];
  /** a root or /usr Verity partition is present (root hash or signature needed to use it) */
  readonly hasVerity: boolean;
  /** a Verity signature partition is present */
  readonly hasVeritySig: boolean;
  /** non-fatal findings (the backup GPT header used, ...) */
  readonly warnings: readonly string[];
}

export interface DissectOptions {
  /** the native and secondary architecture (default: this machine's, as systemd names them) */
  architecture?: { native?: Architecture; secondary?: Architecture };
  /**
   * Check that a /var partition's UUID is the one derived from this machine ID (HMAC-SHA256 of the /var type UUID
   * keyed by the machine ID, as systemd's sd_id128_get_machine_app_specific()), ignoring /var partitions that do not
   * match. Off by default, as systemd-nspawn turns it off (DISSECT_IMAGE_RELAX_VAR_CHECK).
   */
  varMachineId?: string;
}

const VERSIONED = new Set<Designator>([
  'root',
  'root-secondary',
  'root-other',
  'usr',
  'usr-secondary',
  'usr-other',
  'root-verity',
  'root-secondary-verity',
  'root-other-verity',
  'usr-verity',
  'usr-secondary-verity',
  'usr-other-verity',
  'root-verity-sig',
  'root-secondary-verity-sig',
  'root-other-verity-sig',
  'usr-verity-sig',
  'usr-secondary-verity-sig',
  'usr-other-verity-sig',
]);

/** The UUID systemd expects of a /var partition on the machine with MACHINE_ID (sd_id128_get_machine_app_specific()). */
export function varPartitionUuid(machineId: string): string {
  const key = Buffer.from(machineId.replace(/-/g, ''), 'hex');
  if (key.length !== 16) throw new Error(`not a machine ID: ${machineId}`);
  const app = Buffer.from(partitionTypeUuid('var').replace(/-/g, ''), 'hex');
  // (node:crypto loaded here: a dissection without a /var machine ID does not need it)
  const h = process.getBuiltinModule('node:crypto').createHmac('sha256', key).update(app).digest().subarray(0, 16);
  h[6] = (h[6]! & 0x0f) | 0x40;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

type Found = Partial<Record<Designator, DissectedPartition>>;

function archDesignator(base: 'root' | 'usr', arch: Architecture, archs: { native?: Architecture; secondary?: Architecture }, suffix = ''): Designator {
  const which = arch === archs.native ? '' : arch === archs.secondary ? '-secondary' : '-other';
  return `${base}${which}${suffix}` as Designator;
}

/**
 * Dissects the image READER (named IMAGE in messages). Throws an ImageError with systemd 252's message (and
 * details) when there is no usable table or file system (ENOPKG), no root (ENXIO), several generic root candidates
 * (ENOTUNIQ), Verity data without its partition or root and /usr of different architectures (EADDRNOTAVAIL), or a
 * table that lies (EBADMSG).
 */
export function dissectImage(reader: BlockReader, image: string, opts: DissectOptions = {}): DissectedImage {
  if (reader.size === 0)
    throw new ImageError(`${image}: Couldn't identify a suitable partition table or file system: the image is empty (0 bytes).`, 'ENOPKG', image);
  const archs = opts.architecture ?? nativeArchitecture();

  const gpt = readGptTable(reader, image);
  if ('table' in gpt) return fromTable(reader, image, gpt.table, archs, opts);

  // no GPT: a file system spanning the whole image (DISSECT_IMAGE_GENERIC_ROOT), then an MBR
  const fs = probeFilesystem(reader, 0, reader.size);
  if (fs && 'ambiguous' in fs)
    throw new ImageError(
      `${image}: Couldn't identify a suitable partition table or file system: more than one file system signature (${fs.ambiguous.join(', ')}).`,
      'ENOPKG',
      image,
    );
  if (fs && fs.fstype !== 'swap' && fs.fstype !== 'jbd') {
    const root: DissectedPartition = {
      designator: 'root',
      offset: 0,
      size: reader.size,
      rw: !fstypeIsReadOnly(fs.fstype),
      growfs: false,
      fstype: fs.fstype,
      ...(fs.uuid ? { fsUuid: fs.uuid } : {}),
      ...(fs.label ? { fsLabel: fs.label } : {}),
      flags: 0n,
    };
    return {
      image,
      size: reader.size,
      table: 'none',
      sectorSize: 512,
      singleFileSystem: true,
      partitions: { root },
      entries: [],
      hasVerity: false,
      hasVeritySig: false,
      warnings: [],
    };
  }
  const mbr = readMbr(reader, image, reader.read(0, 512));
  if ('table' in mbr) return fromTable(reader, image, mbr.table, archs, opts);
  const reasons = [...gpt.reasons, ...mbr.reasons];
  throw new ImageError(
    `${image}: Couldn't identify a suitable partition table or file system${reasons.length ? `: ${reasons.join('; ')}` : ' (no GPT, MBR or file system signature)'}.`,
    'ENOPKG',
    image,
  );
}

function fromTable(
  reader: BlockReader,
  image: string,
  table: PartitionTable,
  archs: { native?: Architecture; secondary?: Architecture },
  opts: DissectOptions,
): DissectedImage {
  const found: Found = {};
  const uses = new Map<number, { designator?: Designator; ignored?: string }>();
  let hasVerity = false;
  let hasVeritySig = false;
  const generic: TableEntry[] = [];
  const expectedVar = opts.varMachineId ? varPartitionUuid(opts.varMachineId) : undefined;

  const take = (e: TableEntry, designator: Designator, extra: { rw: boolean; growfs: boolean; architecture?: Architecture; fstype?: string }) => {
    const old = found[designator];
    if (old) {
      // first one wins, except for root and /usr (and their Verity data): the newest label wins (A/B updates)
      if (!VERSIONED.has(designator) || strverscmpImproved(old.label, e.label) >= 0) {
        uses.set(e.number, { ignored: VERSIONED.has(designator) ? `not newer than partition ${old.number} (${designator})` : `a second ${designator} partition (the first one wins)` });
        return;
      }
      uses.set(old.number!, { ignored: `older than partition ${e.number} (${designator})` });
    }
    found[designator] = {
      designator,
      number: e.number,
      type: e.typeUuid ?? `0x${(e.mbrType ?? 0).toString(16).padStart(2, '0')}`,
      ...(e.uuid ? { uuid: e.uuid } : {}),
      ...(e.label !== undefined ? { label: e.label } : {}),
      ...(extra.architecture ? { architecture: extra.architecture } : {}),
      offset: e.offset,
      size: e.size,
      rw: extra.rw,
      growfs: extra.growfs,
      ...(extra.fstype ? { fstype: extra.fstype } : {}),
      flags: e.attributes,
    };
    uses.set(e.number, { designator });
  };

  for (const e of table.entries) {
    const flags = e.attributes;
    const rw = (flags & GPT_FLAG_READ_ONLY) === 0n;
    const growfs = (flags & GPT_FLAG_GROWFS) !== 0n;
    const noAuto = (flags & GPT_FLAG_NO_AUTO) !== 0n;
    if (table.kind === 'mbr') {
      if (e.mbrType === 0x83) {
        if (e.attributes !== 0x80n) uses.set(e.number, { ignored: 'a Linux partition not marked bootable' });
        else generic.push(e);
      } else if (e.mbrType === 0xea) {
        if (found.xbootldr) uses.set(e.number, { ignored: 'a second xbootldr partition (the first one wins)' });
        else take(e, 'xbootldr', { rw: true, growfs: false });
      } else uses.set(e.number, { ignored: `MBR type 0x${e.mbrType!.toString(16).padStart(2, '0')} is not used` });
      continue;
    }
    const t = partitionType(e.typeUuid!);
    if (!t) {
      uses.set(e.number, { ignored: 'a partition type systemd does not use' });
      continue;
    }
    if (t.role === 'esp') {
      // the ESP has no no-auto flag; the UEFI "no block I/O protocol" bit hides it instead
      if (flags & GPT_FLAG_NO_BLOCK_IO_PROTOCOL) uses.set(e.number, { ignored: 'the no-block-io-protocol flag' });
      else take(e, 'esp', { rw: true, growfs: false, fstype: 'vfat' });
      continue;
    }
    if (noAuto && t.role !== 'user-home') {
      uses.set(e.number, { ignored: 'the no-auto flag (bit 63)' });
      continue;
    }
    switch (t.role) {
      case 'home':
      case 'srv':
      case 'tmp':
      case 'xbootldr':
        take(e, t.role, { rw, growfs });
        break;
      case 'var':
        if (expectedVar && e.uuid !== expectedVar) uses.set(e.number, { ignored: `its UUID is not ${expectedVar}, the one of this machine` });
        else take(e, 'var', { rw, growfs });
        break;
      case 'swap':
        take(e, 'swap', { rw: true, growfs: false });
        break;
      case 'linux-generic':
        generic.push(e);
        break;
      case 'root':
      case 'usr':
        take(e, archDesignator(t.role, t.architecture!, archs), { rw, growfs, architecture: t.architecture! });
        break;
      case 'root-verity':
      case 'usr-verity':
        hasVerity = true;
        take(e, archDesignator(t.role === 'root-verity' ? 'root' : 'usr', t.architecture!, archs, '-verity'), {
          rw: false,
          growfs: false,
          architecture: t.architecture!,
          fstype: 'DM_verity_hash',
        });
        break;
      case 'root-verity-sig':
      case 'usr-verity-sig':
        hasVeritySig = true;
        take(e, archDesignator(t.role === 'root-verity-sig' ? 'root' : 'usr', t.architecture!, archs, '-verity-sig'), {
          rw: false,
          growfs: false,
          architecture: t.architecture!,
          fstype: 'verity_hash_signature',
        });
        break;
      default:
        uses.set(e.number, { ignored: `a ${t.name} partition is not used` });
    }
  }

  const drop = (...ds: Designator[]) => {
    for (const d of ds) {
      const p = found[d];
      if (!p) continue;
      uses.set(p.number!, { ignored: `${d}: ${d.includes('secondary') ? 'the secondary' : 'another'} architecture, unused beside the native one` });
      delete found[d];
    }
  };
  const promote = (from: '-secondary' | '-other', base: 'root' | 'usr') => {
    for (const suffix of ['', '-verity', '-verity-sig'] as const) {
      const src = `${base}${from}${suffix}` as Designator;
      const dst = `${base}${suffix}` as Designator;
      // as systemd: the destination is replaced even when there is nothing to promote
      const p = found[src];
      delete found[src];
      const old = found[dst];
      if (old && old !== p) uses.set(old.number!, { ignored: `${dst}: replaced by the ${from.slice(1)} architecture's root` });
      if (!p) {
        delete found[dst];
        continue;
      }
      found[dst] = { ...p, designator: dst };
      uses.set(p.number!, { designator: dst });
    }
  };
  const noVerityRoot = (what: string) =>
    new ImageError(`${image}: No root partition for specified root hash found (${what}).`, 'EADDRNOTAVAIL', image);

  // the root: native, else secondary, else another architecture; Verity data without its partition is refused
  if (found.root) {
    drop(
      'root-secondary', 'root-secondary-verity', 'root-secondary-verity-sig', 'usr-secondary', 'usr-secondary-verity', 'usr-secondary-verity-sig',
      'root-other', 'root-other-verity', 'root-other-verity-sig', 'usr-other', 'usr-other-verity', 'usr-other-verity-sig',
    );
  } else if (found['root-verity'] || found['root-verity-sig']) throw noVerityRoot('a root Verity partition without its root partition');
  else if (found['root-secondary']) {
    promote('-secondary', 'root');
    promote('-secondary', 'usr');
    drop('root-other', 'root-other-verity', 'root-other-verity-sig', 'usr-other', 'usr-other-verity', 'usr-other-verity-sig');
  } else if (found['root-secondary-verity'] || found['root-secondary-verity-sig'])
    throw noVerityRoot('a root Verity partition of the secondary architecture without its root partition');
  else if (found['root-other']) {
    promote('-other', 'root');
    promote('-other', 'usr');
  }
  if (found['root-verity-sig'] && !found['root-verity']) throw noVerityRoot('a root Verity signature partition without Verity data');

  // /usr likewise
  if (found.usr) {
    drop('usr-secondary', 'usr-secondary-verity', 'usr-secondary-verity-sig', 'usr-other', 'usr-other-verity', 'usr-other-verity-sig');
  } else if (found['usr-verity'] || found['usr-verity-sig']) throw noVerityRoot('a /usr Verity partition without its /usr partition');
  else if (found['usr-secondary']) {
    promote('-secondary', 'usr');
    drop('usr-other', 'usr-other-verity', 'usr-other-verity-sig');
  } else if (found['usr-secondary-verity'] || found['usr-secondary-verity-sig'])
    throw noVerityRoot('a /usr Verity partition of the secondary architecture without its /usr partition');
  else if (found['usr-other']) promote('-other', 'usr');
  if (found['usr-verity-sig'] && !found['usr-verity']) throw noVerityRoot('a /usr Verity signature partition without Verity data');

  if (found.root?.architecture && found.usr?.architecture && found.root.architecture !== found.usr.architecture)
    throw noVerityRoot(`the root partition is for ${found.root.architecture}, the /usr partition for ${found.usr.architecture}`);

  // nothing marked: a single generic Linux partition (GPT), or a single bootable 0x83 one (MBR), is the root
  if (!found.root && !found.usr) {
    if (generic.length > 1)
      throw new ImageError(
        `${image}: Multiple suitable root partitions found in image (partitions ${generic.map((g) => g.number).join(', ')}).`,
        'ENOTUNIQ',
        image,
      );
    const g = generic[0];
    if (g)
      take(g, 'root', {
        rw: table.kind === 'mbr' ? true : (g.attributes & GPT_FLAG_READ_ONLY) === 0n,
        growfs: table.kind === 'mbr' ? false : (g.attributes & GPT_FLAG_GROWFS) !== 0n,
      });
  } else for (const g of generic) uses.set(g.number, { ignored: 'a generic Linux partition, unused beside a marked root or /usr' });

  // DISSECT_IMAGE_REQUIRE_ROOT with DISSECT_IMAGE_USR_NO_ROOT: a root, or at least a /usr
  if (!found.root && !found.usr) {
    const arch = archs.native ? ` for ${archs.native}` : '';
    throw new ImageError(
      `${image}: No suitable root partition found in image (no root or /usr partition${arch}, no single generic Linux partition${table.kind === 'mbr' ? ', no bootable 0x83 partition' : ''}).`,
      'ENXIO',
      image,
    );
  }
  if (found['root-verity']) {
    if (found['usr-verity'])
      throw new ImageError(`${image}: Multiple suitable root partitions found in image (Verity data for both root and /usr).`, 'ENOTUNIQ', image);
    if (found.usr) throw noVerityRoot('a Verity-protected root with a separate /usr partition');
  }

  // the file systems: probed at each partition; necessarily read-only ones are mounted read-only
  for (const d of Object.keys(found) as Designator[]) {
    const p = found[d]!;
    if (p.fstype === 'DM_verity_hash' || p.fstype === 'verity_hash_signature') continue;
    const fs = probeFilesystem(reader, p.offset, p.size);
    if (fs && 'ambiguous' in fs)
      throw new ImageError(
        `${image}: partition ${p.number} (${d}) has more than one file system signature (${fs.ambiguous.join(', ')}).`,
        'EUCLEAN',
        image,
      );
    const fstype = p.designator === 'esp' ? 'vfat' : fs?.fstype; // systemd takes the ESP for vfat without probing
    const rw = p.rw && !fstypeIsReadOnly(fstype);
    found[d] = {
      ...p,
      ...(fstype ? { fstype } : {}),
      ...(fs?.uuid ? { fsUuid: fs.uuid } : {}),
      ...(fs?.label ? { fsLabel: fs.label } : {}),
      rw,
      growfs: rw && p.growfs,
    };
  }

  return {
    image,
    size: reader.size,
    table: table.kind,
    sectorSize: table.sectorSize,
    ...(table.diskUuid ? { diskUuid: table.diskUuid } : {}),
    ...(table.header ? { header: table.header } : {}),
    singleFileSystem: false,
    partitions: found,
    entries: table.entries.map((entry) => ({ entry, ...(uses.get(entry.number) ?? { ignored: 'unused' }) })),
    hasVerity,
    hasVeritySig,
    warnings: [...table.warnings],
  };
}
