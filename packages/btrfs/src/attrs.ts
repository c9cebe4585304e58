/** The immutable attribute (chattr +i), systemd's read-only marker for plain directory and raw images. */
import { closeSync, constants as fsc, openSync } from 'node:fs';
import { ioctl, sysError } from './sys.js';

const FS_IOC_GETFLAGS = 0x80086601;
const FS_IOC_SETFLAGS = 0x40086602;
export const FS_IMMUTABLE_FL = 0x10;

function withFd<T>(path: string, f: (fd: number) => T): T {
  const fd = openSync(path, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  try {
    return f(fd);
  } finally {
    closeSync(fd);
  }
}

/** The inode flags of PATH (a file or a directory, not a symlink), or undefined where the file system has none. */
export function getInodeFlags(path: string): number | undefined {
  try {
    return withFd(path, (fd) => {
      const b = Buffer.alloc(8);
      ioctl(fd, FS_IOC_GETFLAGS, b);
      return b.readInt32LE(0);
    });
  } catch {
    return undefined;
  }
}

export function isImmutable(path: string): boolean {
  return ((getInodeFlags(path) ?? 0) & FS_IMMUTABLE_FL) !== 0;
}

export function setImmutable(path: string, on: boolean): void {
  try {
    withFd(path, (fd) => {
      const b = Buffer.alloc(8);
      ioctl(fd, FS_IOC_GETFLAGS, b);
      const f = b.readInt32LE(0);
      const next = on ? f | FS_IMMUTABLE_FL : f & ~FS_IMMUTABLE_FL;
      if (next === f) return;
      b.writeInt32LE(next, 0);
      ioctl(fd, FS_IOC_SETFLAGS, b);
    });
  } catch (e) {
    throw sysError(`Failed to ${on ? 'set' : 'clear'} the immutable flag of ${path}`, e);
  }
}

/** Clears the immutable flag if it is set (errors ignored: the caller's next step reports). */
export function clearImmutable(path: string): void {
  try {
    if (isImmutable(path)) setImmutable(path, false);
  } catch {
    // reported by the caller's retry
  }
}
