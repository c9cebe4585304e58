/**
 * The few libc calls Node does not offer (ioctl, xattrs, mount, lseek for holes), through @nspawn/syscall's koffi
 * loader: loaded lazily, importing this package costs nothing until a call needs libc.
 */
import { check, errCode, errnoName, lastError, libcTable, lseek, SEEK_DATA, SEEK_HOLE, SysError, sysError } from '@nspawn/syscall';

export { errCode, errnoName, lseek, SEEK_DATA, SEEK_HOLE, SysError, sysError };

const libc = libcTable({
  ioctlPtr: 'int ioctl(int fd, unsigned long req, _Inout_ uint8_t *arg)',
  ioctlInt: 'int ioctl(int fd, unsigned long req, intptr_t arg)',
  copyFileRange: 'intptr_t copy_file_range(int in, void *inoff, int out, void *outoff, size_t len, unsigned int flags)',
  llistxattr: 'intptr_t llistxattr(const char *path, _Out_ uint8_t *list, size_t size)',
  lgetxattr: 'intptr_t lgetxattr(const char *path, const char *name, _Out_ uint8_t *value, size_t size)',
  lsetxattr: 'int lsetxattr(const char *path, const char *name, const uint8_t *value, size_t size, int flags)',
  mknod: 'int mknod(const char *path, uint32_t mode, uint64_t dev)',
  mount: 'int mount(const char *src, const char *target, const char *fstype, unsigned long flags, const char *data)',
  umount2: 'int umount2(const char *target, int flags)',
  utimensat: 'int utimensat(int dirfd, const char *path, const uint8_t *times, int flags)',
});

/** ioctl(fd, req, buf): BUF is read and written in place. */
export function ioctl(fd: number, req: number, buf: Buffer, what = 'ioctl'): number {
  return check(libc.ioctlPtr(fd, req, buf), what);
}

/** ioctl(fd, req, value) for requests whose argument is an integer (FICLONE). */
export function ioctlInt(fd: number, req: number, value: number, what = 'ioctl'): number {
  return check(libc.ioctlInt(fd, req, value), what);
}

/** copy_file_range() at the current offsets of both fds. */
export function copyFileRange(inFd: number, outFd: number, len: number): number {
  return check(libc.copyFileRange(inFd, null, outFd, null, len, 0), 'copy_file_range');
}

/** The extended attributes of PATH (not following a symlink), names and values. */
export function listXattrs(path: string): Array<[string, Buffer]> {
  let size = Number(libc.llistxattr(path, null, 0));
  if (size < 0) {
    const e = lastError(`llistxattr ${path}`);
    if (e.code === 'ENOTSUP' || e.code === 'EOPNOTSUPP') return [];
    throw e;
  }
  if (size === 0) return [];
  const names = Buffer.alloc(size);
  size = check(libc.llistxattr(path, names, size), `llistxattr ${path}`);
  const out: Array<[string, Buffer]> = [];
  for (const name of names.subarray(0, size).toString('latin1').split('\0')) {
    if (name === '') continue;
    const n = Number(libc.lgetxattr(path, name, null, 0));
    if (n < 0) continue; // gone meanwhile
    const v = Buffer.alloc(n);
    const got = n === 0 ? 0 : check(libc.lgetxattr(path, name, v, n), `lgetxattr ${path} ${name}`);
    out.push([name, v.subarray(0, got)]);
  }
  return out;
}

export function setXattr(path: string, name: string, value: Buffer): void {
  check(libc.lsetxattr(path, name, value, value.length, 0), `lsetxattr ${path} ${name}`);
}

export function mknod(path: string, mode: number, dev: bigint | number): void {
  check(libc.mknod(path, mode, BigInt(dev)), `mknod ${path}`);
}

export const MS_RDONLY = 1;
export const MNT_DETACH = 2;
export function mount(src: string, target: string, fstype: string, flags: number, data: string | null): void {
  check(libc.mount(src, target, fstype, flags, data), `mount ${fstype} on ${target}`);
}

export function umount2(target: string, flags: number): void {
  check(libc.umount2(target, flags), `umount ${target}`);
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
  check(libc.utimensat(AT_FDCWD, path, b, AT_SYMLINK_NOFOLLOW), `utimensat ${path}`);
}

