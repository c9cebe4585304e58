/**
 * Copying a tree the way systemd's copy_tree() does for --template and -x off btrfs: reflinks (FICLONE) where the
 * file system has them, else copy_file_range() over the data segments only (holes stay holes), hard links kept,
 * all extended attributes kept (ACLs are xattrs), owners, modes and nanosecond times kept, device nodes, fifos
 * and sockets recreated; it stays on the source's mount (like COPY_SAME_MOUNT): a mount point inside is copied
 * as an empty directory.
 */
import {
  closeSync,
  constants as fsc,
  chmodSync,
  ftruncateSync,
  lchownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
  writeSync,
  realpathSync,
  symlinkSync,
  type BigIntStats,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { mountTable } from './mounts.js';
import { createSubvolume, isBtrfs } from './subvolume.js';
import { copyFileRange, errCode, ioctlInt, listXattrs, lseek, mknod, SEEK_DATA, SEEK_HOLE, setTimes, setXattr, SysError, sysError } from './sys.js';

const FICLONE = 0x40049409;

export interface CopyOptions {
  /** make DEST a new btrfs subvolume when its parent is on btrfs (default true) */
  subvolume?: boolean;
}

export interface CopyStats {
  files: number;
  /** files cloned by reflink */
  reflinked: number;
  hardlinks: number;
  /** DEST became a subvolume */
  subvolume: boolean;
}

/** Copies the directory tree SOURCE to DEST, which must not exist. */
export function copyTree(source: string, dest: string, opts: CopyOptions = {}): CopyStats {
  const src = realpathSync(source);
  const root = lstatSync(src, { bigint: true });
  if (!root.isDirectory()) throw new SysError(`Failed to copy ${source}: not a directory`, 20, 'ENOTDIR');
  try {
    lstatSync(dest);
    throw new SysError(`Failed to copy ${source} to ${dest}: destination exists`, 17, 'EEXIST');
  } catch (e) {
    if (errCode(e) !== 'ENOENT') throw e;
  }
  const stats: CopyStats = { files: 0, reflinked: 0, hardlinks: 0, subvolume: false };
  if (opts.subvolume !== false && isBtrfs(dirname(dest))) {
    createSubvolume(dest);
    stats.subvolume = true;
  } else mkdirSync(dest, { mode: 0o700 });
  const mountPoints = new Set(mountTable().map((m) => m.target));
  const links = new Map<string, string>();
  const dirs: Array<[string, BigIntStats]> = [];
  const walk = (s: string, d: string) => {
    for (const name of readdirSync(s)) {
      const sp = join(s, name);
      const dp = join(d, name);
      const st = lstatSync(sp, { bigint: true });
      if (st.isDirectory()) {
        mkdirSync(dp, { mode: 0o700 });
        dirs.push([dp, st]);
        copyXattrs(sp, dp);
        if (!mountPoints.has(sp)) walk(sp, dp);
        continue;
      }
      if (st.nlink > 1n) {
        const key = `${st.dev}:${st.ino}`;
        const first = links.get(key);
        if (first !== undefined) {
          linkSync(first, dp);
          stats.hardlinks++;
          continue;
        }
        links.set(key, dp);
      }
      if (st.isFile()) {
        if (copyFileData(sp, dp, st)) stats.reflinked++;
        stats.files++;
      } else if (st.isSymbolicLink()) symlinkSync(readlinkSync(sp), dp);
      else mknod(dp, Number(st.mode), st.rdev);
      copyXattrs(sp, dp);
      finish(dp, st);
    }
  };
  try {
    copyXattrs(src, dest);
    walk(src, dest);
    // directories last, deepest first: their times change while they fill
    for (const [d, st] of dirs.reverse()) finish(d, st);
    finish(dest, root);
  } catch (e) {
    throw sysError(`Failed to copy ${source} to ${dest}`, e);
  }
  return stats;
}

function finish(p: string, st: BigIntStats): void {
  lchownSync(p, Number(st.uid), Number(st.gid));
  if (!st.isSymbolicLink()) chmodSync(p, Number(st.mode) & 0o7777);
  setTimes(p, st.atimeNs, st.mtimeNs);
}

function copyXattrs(from: string, to: string): void {
  for (const [name, value] of listXattrs(from)) {
    try {
      setXattr(to, name, value);
    } catch (e) {
      // a destination that cannot hold this namespace (e.g. security.* without an LSM) loses it, as with systemd
      if (!['ENOTSUP', 'EOPNOTSUPP', 'EPERM'].includes(errCode(e) ?? '')) throw e;
    }
  }
}

/** Copies a regular file's data; true when it was reflinked. */
function copyFileData(from: string, to: string, st: BigIntStats): boolean {
  const i = openSync(from, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    const o = openSync(to, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
    try {
      const size = Number(st.size);
      if (size === 0) return false;
      try {
        ioctlInt(o, FICLONE, i);
        return true;
      } catch {
        // no reflinks here: copy the data segments
      }
      let off = 0;
      let rangeCopy = true;
      let buf: Buffer | undefined;
      while (off < size) {
        const data = lseek(i, off, SEEK_DATA);
        if (data < 0) break;
        const hole = lseek(i, data, SEEK_HOLE);
        const end = hole < 0 ? size : hole;
        lseek(i, data, 0);
        lseek(o, data, 0);
        let left = end - data;
        let pos = data;
        while (left > 0) {
          let n: number;
          try {
            if (!rangeCopy) throw new Error('off');
            n = copyFileRange(i, o, Math.min(left, 1 << 30));
          } catch (e) {
            // across file systems (EXDEV on older kernels) or where unsupported: plain reads and writes
            if (rangeCopy && !['EXDEV', 'EINVAL', 'ENOSYS', 'EOPNOTSUPP', 'ENOTSUP'].includes(errCode(e) ?? '')) throw e;
            rangeCopy = false;
            buf ??= Buffer.allocUnsafe(1 << 20);
            const got = readSync(i, buf, 0, Math.min(left, buf.length), pos);
            n = got === 0 ? 0 : writeSync(o, buf, 0, got, pos);
          }
          if (n === 0) break;
          left -= n;
          pos += n;
        }
        off = end;
      }
      ftruncateSync(o, size);
      return false;
    } finally {
      closeSync(o);
    }
  } finally {
    closeSync(i);
  }
}
