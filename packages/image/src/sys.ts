/**
 * The few system calls this package needs that Node does not offer, through koffi (an FFI library that installs
 * prebuilt: no compiler): ioctl() for loop devices, flock(), mount()/umount2(), openat2() and mkdirat() for
 * resolving mount points inside an image without following its symlinks out of it. Everything goes through the
 * `ImageSys` interface, so that the rest of the package is testable with a double. koffi is @nspawn/syscall's, loaded
 * on the first call.
 */
import { closeSync, openSync } from 'node:fs';
import { errno, errnoName, type Fn, keepOnExec, libcTable, SysError } from '@nspawn/syscall';

export { SysError, errnoName };

/** The system calls of this package, one method each, errors thrown as SysError. */
export interface ImageSys {
  /** ioctl(fd, req, arg): a Buffer is passed by pointer (read and written in place), a number by value */
  ioctl(fd: number, req: number, arg: Buffer | number, what: string): number;
  /** flock(fd, op) */
  flock(fd: number, op: number, what: string): void;
  /** mount(2) */
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): void;
  /** umount2(2) */
  umount2(target: string, flags: number): void;
  /** openat2(2) with struct open_how { flags, mode, resolve }; returns the new descriptor */
  openat2(dirfd: number, path: string, flags: number, mode: number, resolve: number): number;
  /** mkdirat(2) */
  mkdirat(dirfd: number, path: string, mode: number): void;
  /** open(2) of a device node (/dev/loop-control, /dev/loopN) */
  open(path: string, flags: number): number;
  /** close(2) */
  close(fd: number): void;
  /**
   * a detached mount (fsopen, fsconfig of OPTIONS, create, fsmount with the MOUNT_ATTR_* ATTRS), close-on-exec: its
   * descriptor; OPTIONS [key, value] pairs, a null value a flag; throws a SysError naming the step (optional in a
   * double: realSys's then)
   */
  fsmount?(fstype: string, options: ReadonlyArray<readonly [string, string | null]>, attrs: number): number;
  /** clears FD_CLOEXEC (optional in a double: realSys's then) */
  keepOnExec?(fd: number): void;
}

// fcntl.h, mount.h, openat2.h (the same values on x86-64 and arm64)
export const O_RDONLY = 0;
export const O_RDWR = 2;
export const O_DIRECTORY = 0o200000;
export const O_NOFOLLOW = 0o400000;
export const O_CLOEXEC = 0o2000000;
export const O_PATH = 0o10000000;
export const RESOLVE_NO_MAGICLINKS = 0x02;
export const RESOLVE_IN_ROOT = 0x10;
export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;
export const MS_RDONLY = 1;
export const MS_NOSUID = 2;
export const MS_NODEV = 4;
export const MS_MOVE = 8192;
export const MS_REC = 16384;
export const MS_PRIVATE = 1 << 18;
export const MNT_DETACH = 2;
export const UMOUNT_NOFOLLOW = 8;
const SYS_OPENAT2 = 437;
const EAGAIN = 11; // the same number on every architecture (the unified syscall table)

// the same numbers on x86-64 and arm64 (the unified table)
const SYS_FSOPEN = 430;
const SYS_FSCONFIG = 431;
const SYS_FSMOUNT = 432;
const FSOPEN_CLOEXEC = 1;
const FSMOUNT_CLOEXEC = 1;
const FSCONFIG_SET_FLAG = 0;
const FSCONFIG_SET_STRING = 1;
const FSCONFIG_CMD_CREATE = 6;

const DECLS = {
  fsopen: 'long syscall(long nr, const char *fsname, unsigned int flags)',
  fsconfig: 'long syscall(long nr, int fd, unsigned int cmd, const char *key, const char *value, int aux)',
  fsmount: 'long syscall(long nr, int fd, unsigned int flags, unsigned int attrs)',
  ioctlPtr: 'int ioctl(int fd, unsigned long req, _Inout_ uint8_t *arg)',
  ioctlInt: 'int ioctl(int fd, unsigned long req, uintptr_t arg)',
  flock: 'int flock(int fd, int op)',
  mount: 'int mount(const char *src, const char *target, const char *fstype, unsigned long flags, const char *data)',
  umount2: 'int umount2(const char *target, int flags)',
  mkdirat: 'int mkdirat(int dirfd, const char *path, uint32_t mode)',
  // no glibc wrapper for openat2: syscall(2) with its prototype
  sysOpenat2: 'long syscall(long nr, int dirfd, const char *path, const uint8_t *how, size_t size)',
} as const;

type Libc = Record<keyof typeof DECLS, Fn> & { errno(): number };
let libc: Libc | undefined;

/** the calls, declared on first use through @nspawn/syscall (which loads koffi on the first) */
function lib(): Libc {
  return (libc ??= Object.assign(libcTable(DECLS), { errno }) as Libc);
}

function check(r: number | bigint, what: string): number {
  const n = Number(r);
  if (n < 0) {
    const e = lib().errno();
    const code = errnoName(e);
    throw new SysError(`${what}: ${code}`, e, code);
  }
  return n;
}

/** The real system calls. */
export const realSys: ImageSys = {
  ioctl(fd, req, arg, what) {
    return typeof arg === 'number' ? check(lib().ioctlInt(fd, req, arg), what) : check(lib().ioctlPtr(fd, req, arg), what);
  },
  flock(fd, op, what) {
    check(lib().flock(fd, op), what);
  },
  mount(source, target, fstype, flags, data) {
    check(lib().mount(source, target, fstype, flags, data), `mount ${fstype ?? (flags & MS_MOVE ? 'move' : 'flags')} on ${target}`);
  },
  umount2(target, flags) {
    check(lib().umount2(target, flags), `umount ${target}`);
  },
  openat2(dirfd, path, flags, mode, resolve) {
    const how = Buffer.alloc(24);
    how.writeBigUInt64LE(BigInt(flags), 0);
    how.writeBigUInt64LE(BigInt(mode), 8);
    how.writeBigUInt64LE(BigInt(resolve), 16);
    // with RESOLVE_IN_ROOT a '..' is refused with EAGAIN when any rename or mount happened meanwhile, anywhere on
    // the machine; the kernel asks the caller to retry
    for (let attempt = 0; ; attempt++) {
      const r = Number(lib().sysOpenat2(SYS_OPENAT2, dirfd, path, how, 24));
      if (r >= 0) return r;
      if (lib().errno() !== EAGAIN || attempt >= 64) return check(r, `openat2 ${path}`);
    }
  },
  mkdirat(dirfd, path, mode) {
    check(lib().mkdirat(dirfd, path, mode), `mkdir ${path}`);
  },
  open(path, flags) {
    return openSync(path, flags);
  },
  close(fd) {
    closeSync(fd);
  },
  fsmount(fstype, options, attrs) {
    const fs = check(lib().fsopen(SYS_FSOPEN, fstype, FSOPEN_CLOEXEC), 'fsopen');
    try {
      for (const [key, value] of options)
        check(lib().fsconfig(SYS_FSCONFIG, fs, value === null ? FSCONFIG_SET_FLAG : FSCONFIG_SET_STRING, key, value, 0), `option ${key}`);
      check(lib().fsconfig(SYS_FSCONFIG, fs, FSCONFIG_CMD_CREATE, null, null, 0), 'create');
      return check(lib().fsmount(SYS_FSMOUNT, fs, FSMOUNT_CLOEXEC, attrs), 'fsmount');
    } finally {
      closeSync(fs);
    }
  },
  keepOnExec,
};

/** The errno name of an error (SysError or Node's), if any. */
export function errCode(e: unknown): string | undefined {
  const c = (e as { code?: unknown } | undefined)?.code;
  return typeof c === 'string' ? c : undefined;
}
