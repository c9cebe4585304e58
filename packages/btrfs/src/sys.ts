/**
 * The few libc calls Node does not offer (ioctl, OFD locks, xattrs, mount, lseek for holes), through koffi, an FFI
 * library that installs prebuilt. Loaded lazily: importing this package costs nothing until a call needs libc.
 */
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { readFileSync } from 'node:fs';

/** A failed system call: `code` is the errno name (EBUSY, ENOTTY...), `errno` its number. */
export class SysError extends Error {
  override name = 'SysError';
  constructor(
    message: string,
    readonly errno: number,
    readonly code: string,
  ) {
    super(message);
  }
}

// built on first use: nspawn loads this module at every start and seldom needs a name
let errnoNames: Map<number, string> | undefined;
function errnoTable(): Map<number, string> {
  if (!errnoNames) {
    errnoNames = new Map();
    for (const [k, v] of Object.entries(process.getBuiltinModule('node:os').constants.errno)) if (!errnoNames.has(v)) errnoNames.set(v, k);
  }
  return errnoNames;
}

export function errnoName(n: number): string {
  return errnoTable().get(n) ?? `E${n}`;
}

type Fn = (...args: unknown[]) => number | bigint;
interface Libc {
  ioctlPtr: Fn;
  ioctlInt: Fn;
  fcntlPtr: Fn;
  lseek: Fn;
  copyFileRange: Fn;
  llistxattr: Fn;
  lgetxattr: Fn;
  lsetxattr: Fn;
  mknod: Fn;
  mount: Fn;
  umount2: Fn;
  utimensat: Fn;
  errno: () => number;
}

let libc: Libc | undefined;

interface Koffi {
  load(name: string): { func(decl: string): Fn };
  errno(): number;
  version?: string;
}

/**
 * koffi's prebuilt binary, loaded directly (about 1.5 ms) rather than through koffi's loader (7-10 ms, most of it
 * platform detection in JavaScript), which stays the fallback.
 */
function loadKoffi(): Koffi {
  const require = createRequire(import.meta.url);
  try {
    const main = require.resolve('koffi');
    const kreq = createRequire(main);
    const version = (JSON.parse(readFileSync(`${dirname(main)}/package.json`, 'utf8')) as { version: string }).version;
    const pkgDir = dirname(kreq.resolve(`@koromix/koffi-${process.platform}-${process.arch}/package.json`));
    const native = kreq(`${pkgDir}/${process.platform}_${process.arch}/koffi.node`) as Koffi;
    if (native.version === version && typeof native.load === 'function') return native;
  } catch {
    // another layout (musl, a bundle): koffi's own loader
  }
  return require('koffi') as Koffi;
}

const DECLS: Record<Exclude<keyof Libc, 'errno'>, string> = {
  ioctlPtr: 'int ioctl(int fd, unsigned long req, _Inout_ uint8_t *arg)',
  ioctlInt: 'int ioctl(int fd, unsigned long req, intptr_t arg)',
  fcntlPtr: 'int fcntl(int fd, int cmd, _Inout_ uint8_t *arg)',
  lseek: 'int64_t lseek(int fd, int64_t off, int whence)',
  copyFileRange: 'intptr_t copy_file_range(int in, void *inoff, int out, void *outoff, size_t len, unsigned int flags)',
  llistxattr: 'intptr_t llistxattr(const char *path, _Out_ uint8_t *list, size_t size)',
  lgetxattr: 'intptr_t lgetxattr(const char *path, const char *name, _Out_ uint8_t *value, size_t size)',
  lsetxattr: 'int lsetxattr(const char *path, const char *name, const uint8_t *value, size_t size, int flags)',
  mknod: 'int mknod(const char *path, uint32_t mode, uint64_t dev)',
  mount: 'int mount(const char *src, const char *target, const char *fstype, unsigned long flags, const char *data)',
  umount2: 'int umount2(const char *target, int flags)',
  utimensat: 'int utimensat(int dirfd, const char *path, const uint8_t *times, int flags)',
};

/** libc through koffi; each function is declared on its first use (a start that only locks declares one). */
function lib(): Libc {
  if (libc) return libc;
  const koffi = loadKoffi();
  let handle: { func(decl: string): Fn } | undefined;
  const fns = new Map<string, Fn>();
  const out = { errno: () => koffi.errno() } as Libc;
  for (const [k, decl] of Object.entries(DECLS))
    Object.defineProperty(out, k, {
      get() {
        let f = fns.get(k);
        if (!f) {
          handle ??= koffi.load('libc.so.6');
          f = handle.func(decl);
          fns.set(k, f);
        }
        return f;
      },
    });
  libc = out;
  return libc;
}

function check(r: number | bigint, what: string): number {
  const n = Number(r);
  if (n < 0) {
    const e = lib().errno();
    throw new SysError(`${what}: ${errnoName(e)}`, e, errnoName(e));
  }
  return n;
}

/** ioctl(fd, req, buf): BUF is read and written in place. */
export function ioctl(fd: number, req: number, buf: Buffer, what = 'ioctl'): number {
  return check(lib().ioctlPtr(fd, req, buf), what);
}

/** ioctl(fd, req, value) for requests whose argument is an integer (FICLONE). */
export function ioctlInt(fd: number, req: number, value: number, what = 'ioctl'): number {
  return check(lib().ioctlInt(fd, req, value), what);
}

/** clears FD_CLOEXEC (fcntl F_SETFD 0): the descriptor, and the lock on its description, survives an execve() */
export function keepOnExec(fd: number): void {
  check(lib().fcntlPtr(fd, 2 /* F_SETFD */, null), `fcntl(F_SETFD) of fd ${fd}`);
}

export function fcntl(fd: number, cmd: number, buf: Buffer, what = 'fcntl'): number {
  return check(lib().fcntlPtr(fd, cmd, buf), what);
}

export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;
/** lseek(); -1 with ENXIO (no more data) is returned as -1, other errors throw. */
export function lseek(fd: number, off: number, whence: number): number {
  const r = Number(lib().lseek(fd, off, whence));
  if (r < 0) {
    const e = lib().errno();
    if (errnoName(e) === 'ENXIO') return -1;
    throw new SysError(`lseek: ${errnoName(e)}`, e, errnoName(e));
  }
  return r;
}

/** copy_file_range() at the current offsets of both fds. */
export function copyFileRange(inFd: number, outFd: number, len: number): number {
  return check(lib().copyFileRange(inFd, null, outFd, null, len, 0), 'copy_file_range');
}

/** The extended attributes of PATH (not following a symlink), names and values. */
export function listXattrs(path: string): Array<[string, Buffer]> {
  const l = lib();
  let size = Number(l.llistxattr(path, null, 0));
  if (size < 0) {
    const e = errnoName(l.errno());
    if (e === 'ENOTSUP' || e === 'EOPNOTSUPP') return [];
    throw new SysError(`llistxattr ${path}: ${e}`, l.errno(), e);
  }
  if (size === 0) return [];
  const names = Buffer.alloc(size);
  size = check(l.llistxattr(path, names, size), `llistxattr ${path}`);
  const out: Array<[string, Buffer]> = [];
  for (const name of names.subarray(0, size).toString('latin1').split('\0')) {
    if (name === '') continue;
    const n = Number(l.lgetxattr(path, name, null, 0));
    if (n < 0) continue; // gone meanwhile
    const v = Buffer.alloc(n);
    const got = n === 0 ? 0 : check(l.lgetxattr(path, name, v, n), `lgetxattr ${path} ${name}`);
    out.push([name, v.subarray(0, got)]);
  }
  return out;
}

export function setXattr(path: string, name: string, value: Buffer): void {
  check(lib().lsetxattr(path, name, value, value.length, 0), `lsetxattr ${path} ${name}`);
}

export function mknod(path: string, mode: number, dev: bigint | number): void {
  check(lib().mknod(path, mode, BigInt(dev)), `mknod ${path}`);
}

export const MS_RDONLY = 1;
export const MNT_DETACH = 2;
export function mount(src: string, target: string, fstype: string, flags: number, data: string | null): void {
  check(lib().mount(src, target, fstype, flags, data), `mount ${fstype} on ${target}`);
}

export function umount2(target: string, flags: number): void {
  check(lib().umount2(target, flags), `umount ${target}`);
}

const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;
/** Sets atime and mtime (nanoseconds) of PATH without following a symlink. */
export function setTimes(path: string, atimeNs: bigint, mtimeNs: bigint): void {
  const b = Buffer.alloc(32);
  b.writeBigInt64LE(atimeNs / 1_000_000_000n, 0);
  b.writeBigInt64LE(atimeNs % 1_000_000_000n, 8);
  b.writeBigInt64LE(mtimeNs / 1_000_000_000n, 16);
  b.writeBigInt64LE(mtimeNs % 1_000_000_000n, 24);
  check(lib().utimensat(AT_FDCWD, path, b, AT_SYMLINK_NOFOLLOW), `utimensat ${path}`);
}

/** Wraps a SysError with a message naming what failed, keeping its code. */
export function sysError(what: string, e: unknown): Error {
  if (e instanceof SysError) return new SysError(`${what}: ${e.code}`, e.errno, e.code);
  const n = e as NodeJS.ErrnoException;
  if (n && typeof n.code === 'string') return new SysError(`${what}: ${n.code}`, n.errno ?? 0, n.code);
  return e as Error;
}

export function errCode(e: unknown): string | undefined {
  return (e as { code?: string } | undefined)?.code;
}
