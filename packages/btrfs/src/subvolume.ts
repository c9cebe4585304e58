/**
 * btrfs subvolumes by ioctl (no btrfs-progs): create, snapshot (read-write or read-only, nested subvolumes
 * included), delete (nested subvolumes included, never across a mount point), is-subvolume, the read-only flag,
 * listing, and qgroup limits.
 */
import { closeSync, constants as fsc, fstatSync, lstatSync, openSync, rmdirSync, statfsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { errCode, ioctl, SysError, sysError } from './sys.js';
import { isMountPoint, mountsUnder, mountTable } from './mounts.js';

export const BTRFS_SUPER_MAGIC = 0x9123683e;
/** the inode number of every subvolume's root directory */
const BTRFS_FIRST_FREE_OBJECTID = 256;
const BTRFS_SUBVOL_RDONLY = 1n << 1n;

const IOC = (dir: number, nr: number, size: number) => ((dir << 30) | (size << 16) | (0x94 << 8) | nr) >>> 0;
const W = 1;
const R = 2;
const RW = 3;
const BTRFS_IOC_SUBVOL_CREATE = IOC(W, 14, 4096);
const BTRFS_IOC_SNAP_DESTROY = IOC(W, 15, 4096);
const BTRFS_IOC_TREE_SEARCH = IOC(RW, 17, 4096);
const BTRFS_IOC_SNAP_CREATE_V2 = IOC(W, 23, 4096);
const BTRFS_IOC_SUBVOL_GETFLAGS = IOC(R, 25, 8);
const BTRFS_IOC_SUBVOL_SETFLAGS = IOC(W, 26, 8);
const BTRFS_IOC_QUOTA_CTL = IOC(RW, 40, 16);
const BTRFS_IOC_QGROUP_LIMIT = IOC(R, 43, 48);
const BTRFS_IOC_GET_SUBVOL_INFO = IOC(R, 60, 504);
const BTRFS_IOC_GET_SUBVOL_ROOTREF = IOC(RW, 61, 4096);
const BTRFS_IOC_INO_LOOKUP_USER = IOC(RW, 62, 4096);

const O_DIR = fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW;

function withDir<T>(path: string, f: (fd: number) => T): T {
  let fd: number;
  try {
    fd = openSync(path, O_DIR);
  } catch (e) {
    throw sysError(`Failed to open ${path}`, e);
  }
  try {
    return f(fd);
  } finally {
    closeSync(fd);
  }
}

function checkName(name: string, what: string): void {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || Buffer.byteLength(name) > 255)
    throw new SysError(`${what}: invalid subvolume name "${name}"`, 22, 'EINVAL');
}

/** Is PATH on a btrfs file system? */
export function isBtrfs(path: string): boolean {
  try {
    return statfsSync(path).type === BTRFS_SUPER_MAGIC;
  } catch {
    return false;
  }
}

/** Is PATH (not followed if a symlink) the root directory of a btrfs subvolume? */
export function isSubvolume(path: string): boolean {
  try {
    const st = lstatSync(path);
    return st.isDirectory() && st.ino === BTRFS_FIRST_FREE_OBJECTID && isBtrfs(path);
  } catch {
    return false;
  }
}

function fdIsSubvolume(fd: number): boolean {
  const st = fstatSync(fd);
  return st.isDirectory() && st.ino === BTRFS_FIRST_FREE_OBJECTID;
}

/** Creates an empty subvolume at PATH (its parent must exist and be on btrfs). */
export function createSubvolume(path: string): void {
  const name = basename(path);
  checkName(name, `Failed to create subvolume ${path}`);
  volArgsIoctl(path, BTRFS_IOC_SUBVOL_CREATE, `Failed to create subvolume ${path}`);
}

/**
 * An ioctl on PATH's parent that takes struct btrfs_ioctl_vol_args (8 bytes of fd, then the name: PATH's last
 * component): creating and destroying a subvolume by its name. FAILURE begins the error's message.
 */
function volArgsIoctl(path: string, req: number, failure: string): void {
  withDir(dirname(path), (fd) => {
    const args = Buffer.alloc(4096);
    args.write(basename(path), 8, 'utf8');
    try {
      ioctl(fd, req, args);
    } catch (e) {
      throw sysError(failure, e);
    }
  });
}

export interface SubvolumeInfo {
  /** the subvolume's id (its tree id) */
  id: bigint;
  parentId: bigint;
  readOnly: boolean;
  /** when it was created */
  created: Date;
  /** when its contents last changed */
  changed: Date;
  uuid: string;
}

const ts = (b: Buffer, off: number) => new Date(Number(b.readBigUInt64LE(off)) * 1000 + Math.floor(b.readUInt32LE(off + 8) / 1e6));

/** BTRFS_IOC_GET_SUBVOL_INFO on the subvolume PATH is in. */
export function subvolumeInfo(path: string): SubvolumeInfo {
  return withDir(path, (fd) => fdSubvolumeInfo(fd, path));
}

function fdSubvolumeInfo(fd: number, path: string): SubvolumeInfo {
  const b = Buffer.alloc(504);
  try {
    ioctl(fd, BTRFS_IOC_GET_SUBVOL_INFO, b);
  } catch (e) {
    throw sysError(`Failed to get subvolume info of ${path}`, e);
  }
  return {
    id: b.readBigUInt64LE(0),
    parentId: b.readBigUInt64LE(264),
    readOnly: (b.readBigUInt64LE(288) & 1n) !== 0n, // BTRFS_ROOT_SUBVOL_RDONLY in the root item
    uuid: b.subarray(296, 312).toString('hex'),
    changed: ts(b, 376),
    created: ts(b, 392),
  };
}

/** Is the subvolume at PATH read-only? */
export function isSubvolumeReadOnly(path: string): boolean {
  return withDir(path, (fd) => {
    const b = Buffer.alloc(8);
    try {
      ioctl(fd, BTRFS_IOC_SUBVOL_GETFLAGS, b);
    } catch (e) {
      throw sysError(`Failed to get the flags of subvolume ${path}`, e);
    }
    return (b.readBigUInt64LE(0) & BTRFS_SUBVOL_RDONLY) !== 0n;
  });
}

/** Sets or clears the read-only flag of the subvolume at PATH. */
export function setSubvolumeReadOnly(path: string, readOnly: boolean): void {
  withDir(path, (fd) => fdSetReadOnly(fd, path, readOnly));
}

function fdSetReadOnly(fd: number, path: string, readOnly: boolean): void {
  if (!fdIsSubvolume(fd)) throw new SysError(`${path} is not a btrfs subvolume`, 25, 'ENOTTY');
  const b = Buffer.alloc(8);
  try {
    ioctl(fd, BTRFS_IOC_SUBVOL_GETFLAGS, b);
    const flags = b.readBigUInt64LE(0);
    const next = readOnly ? flags | BTRFS_SUBVOL_RDONLY : flags & ~BTRFS_SUBVOL_RDONLY;
    if (next === flags) return;
    b.writeBigUInt64LE(next, 0);
    ioctl(fd, BTRFS_IOC_SUBVOL_SETFLAGS, b);
  } catch (e) {
    throw sysError(`Failed to set the read-only flag of subvolume ${path}`, e);
  }
}

export interface ChildSubvolume {
  id: bigint;
  /** path relative to the subvolume it was listed from */
  path: string;
}

/**
 * The subvolumes below the subvolume at PATH (PATH must be a subvolume's root), nested ones included, parents
 * before their children. Found by BTRFS_IOC_GET_SUBVOL_ROOTREF and BTRFS_IOC_INO_LOOKUP_USER.
 */
export function listSubvolumes(path: string): ChildSubvolume[] {
  const out: ChildSubvolume[] = [];
  const walk = (dir: string, rel: string) => {
    for (const c of directChildren(dir)) {
      const p = rel === '' ? c.path : `${rel}/${c.path}`;
      out.push({ id: c.id, path: p });
      walk(join(dir, c.path), p);
    }
  };
  walk(path, '');
  return out;
}

/** The subvolumes whose parent is the subvolume at DIR, with paths relative to DIR. */
function directChildren(dir: string): ChildSubvolume[] {
  return withDir(dir, (fd) => {
    if (!fdIsSubvolume(fd)) throw new SysError(`${dir} is not the root of a btrfs subvolume`, 25, 'ENOTTY');
    const refs: Array<{ treeid: bigint; dirid: bigint }> = [];
    const b = Buffer.alloc(4096);
    let min = 0n;
    for (;;) {
      b.fill(0);
      b.writeBigUInt64LE(min, 0);
      let more = false;
      try {
        ioctl(fd, BTRFS_IOC_GET_SUBVOL_ROOTREF, b);
      } catch (e) {
        if (errCode(e) !== 'EOVERFLOW') throw sysError(`Failed to list the subvolumes of ${dir}`, e);
        more = true;
      }
      const n = b.readUInt8(8 + 255 * 16);
      for (let i = 0; i < n; i++) refs.push({ treeid: b.readBigUInt64LE(8 + i * 16), dirid: b.readBigUInt64LE(16 + i * 16) });
      if (!more) break;
      min = b.readBigUInt64LE(0);
    }
    return refs.map((r) => {
      const l = Buffer.alloc(4096);
      l.writeBigUInt64LE(r.dirid, 0);
      l.writeBigUInt64LE(r.treeid, 8);
      try {
        ioctl(fd, BTRFS_IOC_INO_LOOKUP_USER, l);
      } catch (e) {
        throw sysError(`Failed to look up subvolume ${r.treeid} below ${dir}`, e);
      }
      const cstr = (o: number, len: number) => {
        const s = l.subarray(o, o + len);
        const z = s.indexOf(0);
        return s.subarray(0, z < 0 ? len : z).toString('utf8');
      };
      const name = cstr(16, 256);
      const prefix = cstr(272, 3824); // "a/b/" or ""
      return { id: r.treeid, path: `${prefix}${name}` };
    });
  });
}

export interface SnapshotOptions {
  /** make the new snapshot read-only (nested ones too) */
  readOnly?: boolean;
  /** snapshot the subvolumes nested in SOURCE into place too (default true, like systemd's BTRFS_SNAPSHOT_RECURSIVE) */
  recursive?: boolean;
}

/** A snapshot of subvolume SOURCE at DEST (which must not exist, on the same btrfs). */
export function snapshotSubvolume(source: string, dest: string, opts: SnapshotOptions = {}): void {
  const recursive = opts.recursive !== false;
  const nested = recursive ? listSubvolumes(source) : [];
  // read-only at the end when there is something to fill in
  snapOne(source, dest, opts.readOnly === true && nested.length === 0);
  try {
    for (const n of nested) {
      const placeholder = join(dest, n.path);
      // a snapshot shows a nested subvolume as an empty directory
      try {
        rmdirSync(placeholder);
      } catch (e) {
        if (errCode(e) !== 'ENOENT') throw sysError(`Failed to replace ${placeholder} by a snapshot`, e);
      }
      snapOne(join(source, n.path), placeholder, false);
    }
    if (opts.readOnly && nested.length > 0) {
      for (const n of [...nested].reverse()) setSubvolumeReadOnly(join(dest, n.path), true);
      setSubvolumeReadOnly(dest, true);
    }
  } catch (e) {
    try {
      deleteSubvolume(dest);
    } catch {
      // best effort: the error that matters is the first
    }
    throw e;
  }
}

function snapOne(source: string, dest: string, readOnly: boolean): void {
  const name = basename(dest);
  checkName(name, `Failed to snapshot ${source}`);
  withDir(source, (src) => {
    if (!fdIsSubvolume(src)) throw new SysError(`Failed to snapshot ${source}: not the root of a btrfs subvolume`, 25, 'ENOTTY');
    withDir(dirname(dest), (parent) => {
      const args = Buffer.alloc(4096);
      args.writeBigInt64LE(BigInt(src), 0);
      args.writeBigUInt64LE(readOnly ? BTRFS_SUBVOL_RDONLY : 0n, 16);
      args.write(name, 56, 'utf8');
      try {
        ioctl(parent, BTRFS_IOC_SNAP_CREATE_V2, args);
      } catch (e) {
        throw sysError(`Failed to snapshot ${source} to ${dest}`, e);
      }
    });
  });
}

/**
 * Deletes the subvolume at PATH and every subvolume nested in it. Refuses `/`, a path that is not a subvolume
 * root, a mount point, and a subvolume with a mount point anywhere below it (nothing is deleted then).
 */
export function deleteSubvolume(path: string): void {
  if (path === '/' || !path.startsWith('/')) throw new SysError(`Refusing to delete subvolume ${path}`, 1, 'EPERM');
  const table = mountTable();
  if (isMountPoint(path, table)) throw new SysError(`Refusing to delete ${path}: it is a mount point`, 16, 'EBUSY');
  const below = mountsUnder(path, table);
  if (below.length > 0) throw new SysError(`Refusing to delete ${path}: ${below[0]!.target} is mounted below it`, 16, 'EBUSY');
  deleteRecursive(path);
}

function deleteRecursive(path: string): void {
  const children = directChildren(path);
  // a nested subvolume's entry lives in its parent: that must be writable to remove it
  if (children.length > 0 && isSubvolumeReadOnly(path)) setSubvolumeReadOnly(path, false);
  for (const c of children) deleteRecursive(join(path, c.path));
  volArgsIoctl(path, BTRFS_IOC_SNAP_DESTROY, `Failed to delete subvolume ${path}`);
}

export interface QuotaInfo {
  /** bytes referenced by the subvolume */
  referenced: number;
  /** bytes only the subvolume references */
  exclusive: number;
  /** the referenced-bytes limit, if any */
  limit?: number;
}

/** Is quota (qgroups) switched on for the btrfs PATH is on? */
export function quotaEnabled(path: string): boolean {
  return withDir(path, (fd) => {
    try {
      searchQgroup(fd, 0n, 242, 244);
      return true;
    } catch (e) {
      if (errCode(e) === 'ENOENT') return false;
      throw e;
    }
  });
}

/**
 * Switches qgroups on for the WHOLE file system PATH is on (btrfs quota enable). This slows down writes and
 * snapshot deletion on big file systems: nothing here calls it unless asked.
 */
export function enableQuota(path: string): void {
  withDir(path, (fd) => {
    const b = Buffer.alloc(16);
    b.writeBigUInt64LE(1n, 0); // BTRFS_QUOTA_CTL_ENABLE
    try {
      ioctl(fd, BTRFS_IOC_QUOTA_CTL, b);
    } catch (e) {
      throw sysError(`Failed to enable quota on the file system of ${path}`, e);
    }
  });
}

/** The qgroup usage and limit of the subvolume at PATH; undefined when quota is off. */
export function subvolumeQuota(path: string): QuotaInfo | undefined {
  return withDir(path, (fd) => {
    const id = fdSubvolumeInfo(fd, path).id;
    let items: Array<{ type: number; offset: bigint; data: Buffer }>;
    try {
      items = searchQgroup(fd, id, 242, 244);
    } catch (e) {
      if (errCode(e) === 'ENOENT') return undefined;
      throw sysError(`Failed to read the qgroup of ${path}`, e);
    }
    const info = items.find((i) => i.type === 242 && i.offset === id);
    const lim = items.find((i) => i.type === 244 && i.offset === id);
    if (!info) return undefined;
    const out: QuotaInfo = { referenced: Number(info.data.readBigUInt64LE(8)), exclusive: Number(info.data.readBigUInt64LE(24)) };
    if (lim && (lim.data.readBigUInt64LE(0) & 1n) !== 0n) out.limit = Number(lim.data.readBigUInt64LE(8));
    return out;
  });
}

/** BTRFS_IOC_TREE_SEARCH in the quota tree for the items of qgroup 0/ID (ID 0: any, to probe). */
function searchQgroup(fd: number, id: bigint, minType: number, maxType: number): Array<{ type: number; offset: bigint; data: Buffer }> {
  const b = Buffer.alloc(4096);
  b.writeBigUInt64LE(8n, 0); // BTRFS_QUOTA_TREE_OBJECTID
  b.writeBigUInt64LE(0n, 8); // min objectid
  b.writeBigUInt64LE(id === 0n ? 0xffffffffffffffffn : 0n, 16); // max objectid
  b.writeBigUInt64LE(id, 24); // min offset
  b.writeBigUInt64LE(id === 0n ? 0xffffffffffffffffn : id, 32); // max offset
  b.writeBigUInt64LE(0n, 40);
  b.writeBigUInt64LE(0xffffffffffffffffn, 48);
  b.writeUInt32LE(id === 0n ? 0 : minType, 56);
  b.writeUInt32LE(id === 0n ? 255 : maxType, 60);
  b.writeUInt32LE(id === 0n ? 1 : 16, 64); // nr_items
  ioctl(fd, BTRFS_IOC_TREE_SEARCH, b);
  const n = b.readUInt32LE(64);
  const out: Array<{ type: number; offset: bigint; data: Buffer }> = [];
  let off = 104;
  for (let i = 0; i < n; i++) {
    const type = b.readUInt32LE(off + 24);
    const len = b.readUInt32LE(off + 28);
    out.push({ type, offset: b.readBigUInt64LE(off + 16), data: Buffer.from(b.subarray(off + 32, off + 32 + len)) });
    off += 32 + len;
  }
  return out;
}

/**
 * Sets (or with undefined removes) the referenced-bytes limit of the subvolume at PATH. Quota must be on for its
 * file system: this never switches it on (see enableQuota()).
 */
export function setSubvolumeLimit(path: string, bytes: number | undefined): void {
  if (!quotaEnabled(path))
    throw new SysError(
      `Quota is not enabled on the btrfs file system of ${path}; enabling it affects the whole file system, so it is not done implicitly (enableQuota(), or "btrfs quota enable")`,
      107,
      'ENOTCONN',
    );
  withDir(path, (fd) => {
    if (!fdIsSubvolume(fd)) throw new SysError(`${path} is not a btrfs subvolume`, 25, 'ENOTTY');
    const b = Buffer.alloc(48);
    b.writeBigUInt64LE(0n, 0); // 0: the qgroup of the subvolume fd is in
    b.writeBigUInt64LE(1n, 8); // BTRFS_QGROUP_LIMIT_MAX_RFER
    b.writeBigUInt64LE(bytes === undefined ? 0xffffffffffffffffn : BigInt(bytes), 16);
    try {
      ioctl(fd, BTRFS_IOC_QGROUP_LIMIT, b);
    } catch (e) {
      throw sysError(`Failed to set the limit of ${path}`, e);
    }
  });
}
