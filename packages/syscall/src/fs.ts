/**
 * File access confined beneath a directory descriptor, and metadata through descriptors: what an extractor of
 * hostile archives (or a copy of a hostile tree) needs so that nothing outside its root is ever touched.
 *
 * - `openBeneath(root, path)`: openat2() with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
 *   RESOLVE_NO_XDEV where the kernel has it (Linux 5.6), else a walk of openat(O_NOFOLLOW) one component at a
 *   time that refuses `..`, symlinks and mount crossings the same way.
 * - the `*At()` calls take a directory descriptor and ONE name (never a path with `/`), and never follow a symlink
 *   in that last component.
 * - metadata (owner, mode, times, xattrs) goes through descriptors: of the file itself (fchown, fchmod, futimens,
 *   fsetxattr), of an O_PATH descriptor where the file cannot be opened for reading (a device, a fifo), or of its
 *   directory with AT_SYMLINK_NOFOLLOW (a symlink).
 */
import { chmodSync, closeSync, constants as fsc, readdirSync } from 'node:fs';
import { errnoName, SysError } from './errors.js';
import { check, cstr, errno, libcFn, lastError } from './koffi.js';

export const AT_FDCWD = -100;
export const AT_SYMLINK_NOFOLLOW = 0x100;
export const AT_REMOVEDIR = 0x200;
export const AT_SYMLINK_FOLLOW = 0x400;
export const AT_NO_AUTOMOUNT = 0x800;
export const AT_EMPTY_PATH = 0x1000;
export const RESOLVE_NO_XDEV = 0x01;
export const RESOLVE_NO_MAGICLINKS = 0x02;
export const RESOLVE_NO_SYMLINKS = 0x04;
export const RESOLVE_BENEATH = 0x08;
export const RENAME_NOREPLACE = 1;
export const RENAME_EXCHANGE = 2;
/** O_* of this architecture (O_DIRECTORY and O_NOFOLLOW differ between x86-64 and arm64) */
export const O_RDONLY = fsc.O_RDONLY;
export const O_WRONLY = fsc.O_WRONLY;
export const O_RDWR = fsc.O_RDWR;
export const O_CREAT = fsc.O_CREAT;
export const O_EXCL = fsc.O_EXCL;
export const O_NOCTTY = fsc.O_NOCTTY;
export const O_TRUNC = fsc.O_TRUNC;
export const O_DIRECTORY = fsc.O_DIRECTORY;
export const O_NOFOLLOW = fsc.O_NOFOLLOW;
export const O_NONBLOCK = fsc.O_NONBLOCK;
export const O_CLOEXEC = 0o2000000;
export const O_PATH = 0o10000000;
export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;
export const SEEK_SET = 0;
export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;
export const FALLOC_FL_KEEP_SIZE = 1;
export const FALLOC_FL_PUNCH_HOLE = 2;
export const XATTR_CREATE = 1;
export const XATTR_REPLACE = 2;

const SYS_openat2 = 437; // the same on x86-64 and arm64 (numbers from 424 on are shared)
const SYS_fchmodat2 = 452;
const STATX_BASIC_STATS = 0x7ff;
const STATX_MNT_ID = 0x1000;
const STATX_ATTR_MOUNT_ROOT = 0x2000;

const c = {
  openat: () => libcFn('int openat(int dirfd, const uint8_t *path, int flags, uint32_t mode)'),
  openat2: () => libcFn('long syscall(long nr, int dirfd, const uint8_t *path, const uint8_t *how, size_t size)'),
  statx: () => libcFn('int statx(int dirfd, const uint8_t *path, int flags, uint32_t mask, _Out_ uint8_t *buf)'),
  mkdirat: () => libcFn('int mkdirat(int dirfd, const uint8_t *path, uint32_t mode)'),
  mknodat: () => libcFn('int mknodat(int dirfd, const uint8_t *path, uint32_t mode, uint64_t dev)'),
  symlinkat: () => libcFn('int symlinkat(const uint8_t *target, int dirfd, const uint8_t *path)'),
  linkat: () => libcFn('int linkat(int olddirfd, const uint8_t *oldpath, int newdirfd, const uint8_t *newpath, int flags)'),
  unlinkat: () => libcFn('int unlinkat(int dirfd, const uint8_t *path, int flags)'),
  renameat2: () => libcFn('int renameat2(int olddirfd, const uint8_t *oldpath, int newdirfd, const uint8_t *newpath, unsigned int flags)'),
  fchownat: () => libcFn('int fchownat(int dirfd, const uint8_t *path, uint32_t uid, uint32_t gid, int flags)'),
  fchown: () => libcFn('int fchown(int fd, uint32_t uid, uint32_t gid)'),
  fchmod: () => libcFn('int fchmod(int fd, uint32_t mode)'),
  fchmodat2: () => libcFn('long syscall(long nr, int dirfd, const uint8_t *path, uint32_t mode, int flags)'),
  utimensat: () => libcFn('int utimensat(int dirfd, const uint8_t *path, const uint8_t *times, int flags)'),
  futimens: () => libcFn('int futimens(int fd, const uint8_t *times)'),
  fsetxattr: () => libcFn('int fsetxattr(int fd, const char *name, const uint8_t *value, size_t size, int flags)'),
  fgetxattr: () => libcFn('intptr_t fgetxattr(int fd, const char *name, _Out_ uint8_t *value, size_t size)'),
  flistxattr: () => libcFn('intptr_t flistxattr(int fd, _Out_ uint8_t *list, size_t size)'),
  lsetxattr: () => libcFn('int lsetxattr(const uint8_t *path, const char *name, const uint8_t *value, size_t size, int flags)'),
  lgetxattr: () => libcFn('intptr_t lgetxattr(const uint8_t *path, const char *name, _Out_ uint8_t *value, size_t size)'),
  llistxattr: () => libcFn('intptr_t llistxattr(const uint8_t *path, _Out_ uint8_t *list, size_t size)'),
  fallocate: () => libcFn('int fallocate(int fd, int mode, int64_t off, int64_t len)'),
  lseek: () => libcFn('int64_t lseek(int fd, int64_t off, int whence)'),
};

type Name = string | Buffer;
const show = (n: Name) => (typeof n === 'string' ? n : n.toString('utf8'));

/** One name inside a directory: not empty, no `/`, no NUL, not `.` or `..`. */
export function checkName(name: Name): void {
  const b = typeof name === 'string' ? Buffer.from(name) : name;
  if (b.length === 0 || b.includes(0x2f) || b.includes(0) || (b.length <= 2 && /^\.\.?$/.test(b.toString('latin1'))))
    throw new SysError(`invalid file name '${show(name)}'`, 22, 'EINVAL');
  if (b.length > 255) throw new SysError(`file name '${show(name).slice(0, 40)}...' is longer than 255 bytes`, 36, 'ENAMETOOLONG');
}

/** openat(DIR, NAME, FLAGS | O_CLOEXEC, MODE): NAME is looked up as given (add O_NOFOLLOW to not follow it). */
export function openAt(dirFd: number, name: Name, flags: number, mode = 0): number {
  return check(c.openat()(dirFd, cstr(name), flags | O_CLOEXEC, mode), `openat ${show(name)}`);
}

let openat2Usable: boolean | undefined;
/**
 * Turns openat2() off (false) or back to detection (true): the component walk is then used, as on a kernel without
 * openat2 (tests of the fallback). Returns the previous setting.
 */
export function setOpenat2(enabled: boolean): boolean {
  const prev = openat2Usable !== false;
  openat2Usable = enabled ? undefined : false;
  return prev;
}

export interface BeneathOptions {
  /** file mode for O_CREAT */
  mode?: number;
  /** allow crossing mount points below the root (default false: EXDEV) */
  crossMounts?: boolean;
}

/** A relative path as its components; refuses absolute paths, `..`, NUL and empty results. */
export function pathComponents(path: string | readonly (string | Buffer)[]): string[] {
  return componentBytes(path).map((b) => b.toString('utf8'));
}

function componentBytes(path: string | readonly (string | Buffer)[]): Buffer[] {
  const bad = () => new SysError(`path '${typeof path === 'string' ? path : path.map((p) => p.toString()).join('/')}' leaves its root`, 18, 'EXDEV');
  if (typeof path === 'string' && path.startsWith('/')) throw bad();
  const parts = typeof path === 'string' ? path.split('/') : path;
  const out: Buffer[] = [];
  for (const p of parts) {
    const b = typeof p === 'string' ? Buffer.from(p) : p;
    if (b.length === 0 || (b.length === 1 && b[0] === 0x2e)) continue;
    if ((b.length === 2 && b[0] === 0x2e && b[1] === 0x2e) || b.includes(0x2f) || b.includes(0)) throw bad();
    out.push(b);
  }
  return out;
}

/**
 * Opens PATH (relative) beneath the directory ROOT without following any symlink, without `..`, without
 * crossing a mount (unless asked): openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
 * [| RESOLVE_NO_XDEV]), or a walk of openat(O_NOFOLLOW) where the kernel has no openat2. A symlink anywhere on
 * the way fails with ELOOP (or ENOTDIR); the last component too, unless FLAGS has O_PATH | O_NOFOLLOW (then the
 * descriptor is the symlink's). An empty PATH opens ROOT itself again.
 */
export function openBeneath(rootFd: number, path: string | readonly (string | Buffer)[], flags: number, opts: BeneathOptions = {}): number {
  const parts = componentBytes(path);
  const rel = parts.length === 0 ? Buffer.from('.') : Buffer.concat(parts.flatMap((p, i) => (i === 0 ? [p] : [Buffer.from('/'), p])));
  if (openat2Usable !== false) {
    const how = Buffer.alloc(24);
    how.writeBigUInt64LE(BigInt(flags | O_CLOEXEC), 0);
    how.writeBigUInt64LE(BigInt(flags & O_CREAT ? (opts.mode ?? 0o600) : 0), 8);
    how.writeBigUInt64LE(BigInt(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | (opts.crossMounts ? 0 : RESOLVE_NO_XDEV)), 16);
    for (;;) {
      const r = Number(c.openat2()(SYS_openat2, rootFd, cstr(rel), how, 24));
      if (r >= 0) {
        openat2Usable = true;
        return r;
      }
      const code = errnoName(errno());
      if (code === 'EAGAIN' || code === 'EINTR') continue; // a rename raced the lookup: retry
      if ((code === 'ENOSYS' || code === 'EPERM') && openat2Usable === undefined) {
        // no openat2 (or a seccomp filter refusing it): walk
        openat2Usable = false;
        break;
      }
      throw lastError(`open ${rel.toString()} beneath fd ${rootFd}`);
    }
  }
  return walkBeneath(rootFd, parts, flags, opts);
}

function walkBeneath(rootFd: number, parts: Buffer[], flags: number, opts: BeneathOptions): number {
  const rootMnt = opts.crossMounts ? undefined : statFd(rootFd).mntId;
  let dir = openAt(rootFd, '.', O_PATH | O_DIRECTORY);
  try {
    for (let i = 0; i < parts.length; i++) {
      const last = i === parts.length - 1;
      let next: number;
      try {
        next = last ? openAt(dir, parts[i]!, flags | O_NOFOLLOW, opts.mode ?? 0o600) : openAt(dir, parts[i]!, O_PATH | O_DIRECTORY | O_NOFOLLOW);
      } catch (e) {
        throw new SysError(`open ${parts.map(String).join('/')} beneath fd ${rootFd}: ${(e as SysError).code}`, (e as SysError).errno, (e as SysError).code);
      }
      if (rootMnt !== undefined) {
        const st = statFd(next);
        if (st.mntId !== rootMnt || st.mountRoot) {
          closeSync(next);
          throw new SysError(`open ${parts.map(String).join('/')} beneath fd ${rootFd}: EXDEV`, 18, 'EXDEV');
        }
      }
      closeSync(dir);
      dir = next;
    }
    if (parts.length === 0) {
      const r = openAt(dir, '.', flags);
      closeSync(dir);
      return r;
    }
    const r = dir;
    dir = -1;
    return r;
  } finally {
    if (dir >= 0) closeSync(dir);
  }
}

/** What statx() says of a file (a subset, numbers as Node has them). */
export interface Stat {
  /** type and permission bits */
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  size: number;
  ino: bigint;
  /** device of the file system: major, minor */
  devMajor: number;
  devMinor: number;
  /** a device node's device */
  rdevMajor: number;
  rdevMinor: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  /** the mount's id (STATX_MNT_ID); 0 when the kernel does not say */
  mntId: bigint;
  /** the root of a mount (STATX_ATTR_MOUNT_ROOT), bind mounts included */
  mountRoot: boolean;
  isDirectory(): boolean;
  isFile(): boolean;
  isSymbolicLink(): boolean;
}

function parseStatx(b: Buffer): Stat {
  const ts = (o: number) => b.readBigInt64LE(o) * 1_000_000_000n + BigInt(b.readUInt32LE(o + 8));
  const mode = b.readUInt16LE(28);
  return {
    mode,
    uid: b.readUInt32LE(20),
    gid: b.readUInt32LE(24),
    nlink: b.readUInt32LE(16),
    size: Number(b.readBigUInt64LE(40)),
    ino: b.readBigUInt64LE(32),
    atimeNs: ts(64),
    mtimeNs: ts(112),
    rdevMajor: b.readUInt32LE(128),
    rdevMinor: b.readUInt32LE(132),
    devMajor: b.readUInt32LE(136),
    devMinor: b.readUInt32LE(140),
    mntId: b.readUInt32LE(0) & STATX_MNT_ID ? b.readBigUInt64LE(144) : 0n,
    mountRoot: (b.readBigUInt64LE(56) & BigInt(STATX_ATTR_MOUNT_ROOT)) !== 0n && (b.readBigUInt64LE(8) & BigInt(STATX_ATTR_MOUNT_ROOT)) !== 0n,
    isDirectory: () => (mode & S_IFMT) === S_IFDIR,
    isFile: () => (mode & S_IFMT) === S_IFREG,
    isSymbolicLink: () => (mode & S_IFMT) === S_IFLNK,
  };
}

/** statx(DIR, NAME, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT): the entry itself, never a symlink's target. */
export function statAt(dirFd: number, name: Name): Stat {
  const b = Buffer.alloc(256);
  check(c.statx()(dirFd, cstr(name), AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_BASIC_STATS | STATX_MNT_ID, b), `statx ${show(name)}`);
  return parseStatx(b);
}

/** statAt(), or undefined when NAME does not exist (without making an error: extractors ask this for every member) */
export function lstatAt(dirFd: number, name: Name): Stat | undefined {
  const b = Buffer.alloc(256);
  const r = Number(c.statx()(dirFd, cstr(name), AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_BASIC_STATS | STATX_MNT_ID, b));
  if (r === 0) return parseStatx(b);
  if (errno() === 2 /* ENOENT */) return undefined;
  throw lastError(`statx ${show(name)}`);
}

/** statx() of the file FD refers to (an O_PATH descriptor too) */
export function statFd(fd: number): Stat {
  const b = Buffer.alloc(256);
  check(c.statx()(fd, cstr(''), AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_MNT_ID, b), `statx of fd ${fd}`);
  return parseStatx(b);
}

export function mkdirAt(dirFd: number, name: Name, mode: number): void {
  check(c.mkdirat()(dirFd, cstr(name), mode), `mkdirat ${show(name)}`);
}

/** glibc's makedev() */
export function makedev(major: number, minor: number): bigint {
  const M = BigInt(major >>> 0);
  const m = BigInt(minor >>> 0);
  return ((M & 0xfffff000n) << 32n) | ((M & 0xfffn) << 8n) | ((m & 0xffffff00n) << 12n) | (m & 0xffn);
}

/** mknodat(): a device node, fifo or socket; MODE includes the type (S_IFCHR...) */
export function mknodAt(dirFd: number, name: Name, mode: number, dev: bigint = 0n): void {
  check(c.mknodat()(dirFd, cstr(name), mode, dev), `mknodat ${show(name)}`);
}

export function symlinkAt(target: Name, dirFd: number, name: Name): void {
  check(c.symlinkat()(cstr(target), dirFd, cstr(name)), `symlinkat ${show(name)}`);
}

/** linkat(): a hard link; FLAGS 0 never follows OLD when it is a symlink (the link is to the symlink itself) */
export function linkAt(oldDirFd: number, oldName: Name, newDirFd: number, newName: Name, flags = 0): void {
  check(c.linkat()(oldDirFd, cstr(oldName), newDirFd, cstr(newName), flags), `linkat ${show(newName)}`);
}

/** unlinkat(); AT_REMOVEDIR for an (empty) directory */
export function unlinkAt(dirFd: number, name: Name, flags = 0): void {
  check(c.unlinkat()(dirFd, cstr(name), flags), `unlinkat ${show(name)}`);
}

/** renameat2(): RENAME_NOREPLACE fails with EEXIST rather than replace; RENAME_EXCHANGE swaps */
export function renameAt2(oldDirFd: number, oldName: Name, newDirFd: number, newName: Name, flags = 0): void {
  check(c.renameat2()(oldDirFd, cstr(oldName), newDirFd, cstr(newName), flags), `renameat2 ${show(oldName)} -> ${show(newName)}`);
}

/** fchownat(); with AT_EMPTY_PATH and NAME '' it changes the file FD refers to (O_PATH descriptors too) */
export function fchownAt(dirFd: number, name: Name, uid: number, gid: number, flags = AT_SYMLINK_NOFOLLOW): void {
  check(c.fchownat()(dirFd, cstr(name), uid >>> 0, gid >>> 0, flags), `fchownat ${show(name) || `fd ${dirFd}`}`);
}

export function fchown(fd: number, uid: number, gid: number): void {
  check(c.fchown()(fd, uid >>> 0, gid >>> 0), `fchown of fd ${fd}`);
}

export function fchmod(fd: number, mode: number): void {
  check(c.fchmod()(fd, mode), `fchmod of fd ${fd}`);
}

let fchmodat2Usable = true;
/**
 * chmod of the file an O_PATH descriptor refers to (a device node, a fifo: files that are not opened for I/O):
 * fchmodat2(AT_EMPTY_PATH) (Linux 6.6), else chmod of /proc/self/fd/FD, which reaches exactly that inode. Refuses
 * a symlink (whose mode means nothing and whose target must not be reached).
 */
export function fchmodPath(fd: number, mode: number): void {
  if (statFd(fd).isSymbolicLink()) throw new SysError(`chmod of fd ${fd}: a symlink`, 40, 'ELOOP');
  if (fchmodat2Usable) {
    const r = Number(c.fchmodat2()(SYS_fchmodat2, fd, cstr(''), mode, AT_EMPTY_PATH));
    if (r === 0) return;
    const code = errnoName(errno());
    if (code !== 'ENOSYS' && code !== 'EINVAL' && code !== 'EOPNOTSUPP') throw lastError(`fchmodat2 of fd ${fd}`);
    fchmodat2Usable = false;
  }
  chmodSync(`/proc/self/fd/${fd}`, mode);
}

function timespecs(atimeNs: bigint, mtimeNs: bigint): Buffer {
  const b = Buffer.alloc(32);
  const put = (o: number, ns: bigint) => {
    let s = ns / 1_000_000_000n;
    let n = ns % 1_000_000_000n;
    if (n < 0n) {
      n += 1_000_000_000n;
      s -= 1n;
    }
    b.writeBigInt64LE(s, o);
    b.writeBigInt64LE(n, o + 8);
  };
  put(0, atimeNs);
  put(16, mtimeNs);
  return b;
}

/** futimens(): atime and mtime (nanoseconds) of the file FD refers to */
export function futimens(fd: number, atimeNs: bigint, mtimeNs: bigint): void {
  check(c.futimens()(fd, timespecs(atimeNs, mtimeNs)), `futimens of fd ${fd}`);
}

/** utimensat(DIR, NAME, AT_SYMLINK_NOFOLLOW): times of the entry itself (a symlink's own) */
export function utimensAt(dirFd: number, name: Name, atimeNs: bigint, mtimeNs: bigint): void {
  check(c.utimensat()(dirFd, cstr(name), timespecs(atimeNs, mtimeNs), AT_SYMLINK_NOFOLLOW), `utimensat ${show(name)}`);
}

export function fsetxattr(fd: number, name: string, value: Buffer, flags = 0): void {
  check(c.fsetxattr()(fd, name, value, value.length, flags), `fsetxattr ${name} of fd ${fd}`);
}

function splitNames(b: Buffer): string[] {
  return b
    .toString('latin1')
    .split('\0')
    .filter((n) => n !== '')
    .map((n) => Buffer.from(n, 'latin1').toString('utf8'));
}

const unsupported = (code: string) => code === 'ENOTSUP' || code === 'EOPNOTSUPP';

/** flistxattr(): the names of FD's extended attributes ([] where the file system has none) */
export function flistxattr(fd: number): string[] {
  for (;;) {
    const n = Number(c.flistxattr()(fd, null, 0));
    if (n < 0) {
      if (unsupported(errnoName(errno()))) return [];
      throw lastError(`flistxattr of fd ${fd}`);
    }
    if (n === 0) return [];
    const b = Buffer.alloc(n);
    const got = Number(c.flistxattr()(fd, b, n));
    if (got < 0 && errnoName(errno()) === 'ERANGE') continue; // grew meanwhile
    return splitNames(b.subarray(0, check(got, `flistxattr of fd ${fd}`)));
  }
}

/** fgetxattr(): the value, or undefined when FD has no such attribute */
export function fgetxattr(fd: number, name: string): Buffer | undefined {
  for (;;) {
    const n = Number(c.fgetxattr()(fd, name, null, 0));
    if (n < 0) {
      const code = errnoName(errno());
      if (code === 'ENODATA' || unsupported(code)) return undefined;
      throw lastError(`fgetxattr ${name} of fd ${fd}`);
    }
    const b = Buffer.alloc(n);
    if (n === 0) return b;
    const got = Number(c.fgetxattr()(fd, name, b, n));
    if (got < 0 && errnoName(errno()) === 'ERANGE') continue;
    return b.subarray(0, check(got, `fgetxattr ${name} of fd ${fd}`));
  }
}

// A directory descriptor's /proc/self/fd link resolves to exactly that directory; the one name after it is looked
// up there and, with the l*xattr() calls, not followed: the xattrs of a symlink (or a node) in DIR.
const procAt = (dirFd: number, name: Name) => {
  checkName(name);
  return Buffer.concat([Buffer.from(`/proc/self/fd/${dirFd}/`), typeof name === 'string' ? Buffer.from(name) : name]);
};

/** lsetxattr() of the entry NAME in DIR itself (a symlink's own attributes) */
export function lsetxattrAt(dirFd: number, name: Name, xname: string, value: Buffer, flags = 0): void {
  check(c.lsetxattr()(cstr(procAt(dirFd, name)), xname, value, value.length, flags), `lsetxattr ${xname} of ${show(name)}`);
}

/** llistxattr() of the entry NAME in DIR itself */
export function llistxattrAt(dirFd: number, name: Name): string[] {
  const p = cstr(procAt(dirFd, name));
  const n = Number(c.llistxattr()(p, null, 0));
  if (n < 0) {
    if (unsupported(errnoName(errno()))) return [];
    throw lastError(`llistxattr of ${show(name)}`);
  }
  if (n === 0) return [];
  const b = Buffer.alloc(n);
  return splitNames(b.subarray(0, check(c.llistxattr()(p, b, n), `llistxattr of ${show(name)}`)));
}

/** lgetxattr() of the entry NAME in DIR itself; undefined when it has no such attribute */
export function lgetxattrAt(dirFd: number, name: Name, xname: string): Buffer | undefined {
  const p = cstr(procAt(dirFd, name));
  const n = Number(c.lgetxattr()(p, xname, null, 0));
  if (n < 0) {
    const code = errnoName(errno());
    if (code === 'ENODATA' || unsupported(code)) return undefined;
    throw lastError(`lgetxattr ${xname} of ${show(name)}`);
  }
  const b = Buffer.alloc(n);
  return n === 0 ? b : b.subarray(0, check(c.lgetxattr()(p, xname, b, n), `lgetxattr ${xname} of ${show(name)}`));
}

/** fallocate(); FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE makes a hole */
export function fallocate(fd: number, mode: number, offset: number, length: number): void {
  check(c.fallocate()(fd, mode, offset, length), `fallocate of fd ${fd}`);
}

/** lseek(); SEEK_DATA/SEEK_HOLE past the last data give -1 (ENXIO) rather than an error */
export function lseek(fd: number, offset: number, whence: number): number {
  const r = Number(c.lseek()(fd, offset, whence));
  if (r < 0) {
    if (errnoName(errno()) === 'ENXIO') return -1;
    throw lastError(`lseek of fd ${fd}`);
  }
  return r;
}

/** The names in the directory FD refers to (bytes: names need not be UTF-8), without `.` and `..`. */
export function readdirFd(fd: number): Buffer[] {
  return readdirSync(`/proc/self/fd/${fd}`, { encoding: 'buffer' });
}
