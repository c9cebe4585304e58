/**
 * The libc calls Node does not offer (fcntl OFD locks and FD_CLOEXEC, statx, fd-relative chown, getdents64, xattrs,
 * the new mount API), through koffi, an FFI library that installs prebuilt (no compiler). Loaded lazily: importing
 * this package, or a plain nspawn start, never loads koffi; the first call that needs libc does (about 1.5 ms).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';

/** A failed system call: `code` is the errno name (EBUSY, ENOTSUP...), `errno` its number. */
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

let errnoNames: Map<number, string> | undefined;
export function errnoName(n: number): string {
  if (!errnoNames) {
    errnoNames = new Map();
    for (const [k, v] of Object.entries(process.getBuiltinModule('node:os').constants.errno)) if (!errnoNames.has(v)) errnoNames.set(v, k);
  }
  return errnoNames.get(n) ?? `E${n}`;
}

type Fn = (...args: unknown[]) => number | bigint;
interface Koffi {
  load(name: string): { func(decl: string): Fn };
  errno(): number;
  alloc(type: string, len: number): unknown;
  address(ptr: unknown): bigint;
  view(ptr: unknown, len: number): ArrayBuffer;
  version?: string;
}

/** koffi's prebuilt binary, loaded directly (about 1.5 ms); koffi's own loader (slower) is the fallback */
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

// Paths and names are passed as NUL-terminated Buffers (file names are bytes, not necessarily UTF-8).
const DECLS = {
  fcntlPtr: 'int fcntl(int fd, int cmd, _Inout_ uint8_t *arg)',
  fcntlInt: 'int fcntl(int fd, int cmd, intptr_t arg)',
  flock: 'int flock(int fd, int op)',
  openat: 'int openat(int dirfd, const uint8_t *path, int flags)',
  close: 'int close(int fd)',
  getdents64: 'intptr_t getdents64(int fd, _Out_ uint8_t *buf, size_t size)',
  statx: 'int statx(int dirfd, const uint8_t *path, int flags, uint32_t mask, _Out_ uint8_t *buf)',
  fchownat: 'int fchownat(int dirfd, const uint8_t *path, uint32_t uid, uint32_t gid, int flags)',
  fchmodat: 'int fchmodat(int dirfd, const uint8_t *path, uint32_t mode, int flags)',
  fchown: 'int fchown(int fd, uint32_t uid, uint32_t gid)',
  fchmod: 'int fchmod(int fd, uint32_t mode)',
  lgetxattr: 'intptr_t lgetxattr(const uint8_t *path, const char *name, _Out_ uint8_t *value, size_t size)',
  lsetxattr: 'int lsetxattr(const uint8_t *path, const char *name, const uint8_t *value, size_t size, int flags)',
  fgetxattr: 'intptr_t fgetxattr(int fd, const char *name, _Out_ uint8_t *value, size_t size)',
  fsetxattr: 'int fsetxattr(int fd, const char *name, const uint8_t *value, size_t size, int flags)',
  // the new mount API has no glibc wrappers: syscall(2) with one prototype per call
  sysOpenTree: 'long syscall(long nr, int dfd, const char *path, uint32_t flags)',
  sysMountSetattr: 'long syscall(long nr, int dfd, const char *path, uint32_t flags, const uint8_t *attr, size_t size)',
  sysMoveMount: 'long syscall(long nr, int fromDfd, const char *from, int toDfd, const char *to, uint32_t flags)',
  // getxattrat()/setxattrat() (Linux 6.13): one call per inode, relative to the directory's descriptor
  sysXattrAt: 'long syscall(long nr, int dfd, const uint8_t *path, int flags, const char *name, const uint8_t *args, size_t size)',
} as const;

export type Libc = { [K in keyof typeof DECLS]: Fn } & { errno(): number; koffi: Koffi };
let libc: Libc | undefined;

/** libc through koffi; each function is declared on its first use */
export function lib(): Libc {
  if (libc) return libc;
  const koffi = loadKoffi();
  let handle: { func(decl: string): Fn } | undefined;
  const out = { errno: () => koffi.errno(), koffi } as Libc;
  for (const [k, decl] of Object.entries(DECLS))
    Object.defineProperty(out, k, {
      configurable: true,
      get() {
        handle ??= koffi.load('libc.so.6');
        const f = handle.func(decl);
        Object.defineProperty(out, k, { value: f });
        return f;
      },
    });
  libc = out;
  return libc;
}

/** native memory that stays put (its address goes into a syscall's argument struct), and a Buffer over it */
export function nativeBuffer(len: number): { address: bigint; buf: Buffer } {
  const k = lib().koffi;
  const ptr = k.alloc('uint8_t', len);
  return { address: k.address(ptr), buf: Buffer.from(k.view(ptr, len)) };
}

/** the errno of the last call, as a SysError */
export function lastError(what: string): SysError {
  const e = lib().errno();
  const code = errnoName(e);
  return new SysError(`${what}: ${code}`, e, code);
}

export function check(r: number | bigint, what: string): number {
  const n = Number(r);
  if (n < 0) throw lastError(what);
  return n;
}

/** a NUL-terminated copy of a path or name */
export function cstr(s: string | Buffer): Buffer {
  if (typeof s === 'string') return Buffer.from(`${s}\0`);
  return s[s.length - 1] === 0 ? s : Buffer.concat([s, Buffer.alloc(1)]);
}

// fcntl(2)
export const F_GETFD = 1;
export const F_SETFD = 2;
export const FD_CLOEXEC = 1;
export const F_OFD_SETLK = 37;
const F_WRLCK = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;

/**
 * make_lock_file()'s lock: an exclusive open-file-description lock over the whole file, flock() on a kernel without
 * OFD locks (EINVAL), as systemd falls back. True when taken, false when another description holds it.
 */
export function ofdLockExclusive(fd: number): boolean {
  const l = lib();
  // struct flock: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid
  const fl = Buffer.alloc(32);
  fl.writeInt16LE(F_WRLCK, 0);
  let r = Number(l.fcntlPtr(fd, F_OFD_SETLK, fl));
  let e = r < 0 ? l.errno() : 0;
  if (r < 0 && errnoName(e) === 'EINVAL') {
    r = Number(l.flock(fd, LOCK_EX | LOCK_NB));
    e = r < 0 ? l.errno() : 0;
  }
  if (r === 0) return true;
  const code = errnoName(e);
  if (code === 'EAGAIN' || code === 'EACCES' || code === 'EWOULDBLOCK') return false;
  throw new SysError(`lock: ${code}`, e, code);
}

/** clears FD_CLOEXEC: the descriptor (and the lock on its description) survives an execve() */
export function keepOnExec(fd: number): void {
  check(lib().fcntlInt(fd, F_SETFD, 0), `fcntl(F_SETFD) of fd ${fd}`);
}

export function isCloseOnExec(fd: number): boolean {
  return (check(lib().fcntlInt(fd, F_GETFD, 0), `fcntl(F_GETFD) of fd ${fd}`) & FD_CLOEXEC) !== 0;
}

// the new mount API (the same numbers on x86-64 and arm64)
const SYS_open_tree = 428;
const SYS_move_mount = 429;
const SYS_mount_setattr = 442;
const AT_FDCWD = -100;
const AT_EMPTY_PATH = 0x1000;
const OPEN_TREE_CLONE = 1;
const OPEN_TREE_CLOEXEC = 0o2000000;
const MOVE_MOUNT_F_EMPTY_PATH = 4;
const MOUNT_ATTR_IDMAP = 0x00100000;

/** open_tree(OPEN_TREE_CLONE): a detached copy of the mount at PATH (not its submounts); an fd */
export function openTreeClone(path: string): number {
  return check(lib().sysOpenTree(SYS_open_tree, AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC), `open_tree() of ${path}`);
}

/** mount_setattr(MOUNT_ATTR_IDMAP) with the user namespace USERNS on the detached mount TREE */
export function setIdmap(tree: number, userns: number, what: string): void {
  // struct mount_attr: u64 attr_set, attr_clr, propagation, userns_fd
  const a = Buffer.alloc(32);
  a.writeBigUInt64LE(BigInt(MOUNT_ATTR_IDMAP), 0);
  a.writeBigUInt64LE(BigInt(userns), 24);
  check(lib().sysMountSetattr(SYS_mount_setattr, tree, '', AT_EMPTY_PATH, a, a.length), `mount_setattr() of ${what}`);
}

/** move_mount() of the detached mount TREE onto TARGET */
export function moveMount(tree: number, target: string): void {
  check(lib().sysMoveMount(SYS_move_mount, tree, '', AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH), `move_mount() onto ${target}`);
}

export function closeFd(fd: number): void {
  lib().close(fd);
}
