/**
 * The libc calls Node does not offer (statx, fd-relative chown, getdents64, xattrs, the new mount API), through
 * @nspawn/syscall's koffi loader (prebuilt, no compiler), which also has the OFD lock and FD_CLOEXEC calls. Loaded
 * lazily: importing this package, or a plain nspawn start, never loads koffi; the first call that needs libc does.
 */
import { check, cstr, errno, errnoName, isCloseOnExec, keepOnExec, lastError, libcTable, nativeBuffer, ofdLockExclusive, SysError } from '@nspawn/syscall';

export { check, cstr, errnoName, isCloseOnExec, keepOnExec, lastError, nativeBuffer, ofdLockExclusive, SysError };

// Paths and names are passed as NUL-terminated Buffers (file names are bytes, not necessarily UTF-8).
const DECLS = {
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

type Fn = (...args: unknown[]) => number | bigint;
export type Libc = { [K in keyof typeof DECLS]: Fn } & { errno(): number };
let libc: Libc | undefined;

/** libc through @nspawn/syscall's koffi loader; each function is declared on its first use */
export function lib(): Libc {
  libc ??= Object.assign(libcTable(DECLS), { errno }) as Libc;
  return libc;
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
