/**
 * Removing a tree through descriptors: never follows a symlink (it removes the link), never crosses a mount point
 * (nothing on another mount is touched; the tree is then reported as not fully removed), works at any depth (no
 * path is ever longer than one name).
 */
import { closeSync } from 'node:fs';
import { SysError } from './errors.js';
import { AT_REMOVEDIR, O_DIRECTORY, O_NOFOLLOW, O_RDONLY, openAt, readdirFd, statAt, unlinkAt } from './fs.js';

export interface RemoveAtResult {
  /** entries removed */
  removed: number;
  /** entries left because they are mount points (relative to the tree's parent) */
  kept: string[];
}

/**
 * Removes the entry NAME of the directory DIR and, when it is a directory, everything below it on the same
 * mount. Throws a SysError (EBUSY) naming the first mount point found inside, after removing all it could.
 * A missing NAME is fine (nothing to do).
 */
export function removeTreeAt(dirFd: number, name: string | Buffer): RemoveAtResult {
  const res: RemoveAtResult = { removed: 0, kept: [] };
  let top;
  try {
    top = statAt(dirFd, name);
  } catch (e) {
    if ((e as SysError).code === 'ENOENT') return res;
    throw e;
  }
  const show = (p: Array<string | Buffer>) => p.map((x) => x.toString()).join('/');
  const walk = (parent: number, n: string | Buffer, where: Array<string | Buffer>, mnt: bigint): boolean => {
    const st = statAt(parent, n);
    if (!st.isDirectory()) {
      unlinkAt(parent, n);
      res.removed++;
      return true;
    }
    if (st.mountRoot || (mnt !== 0n && st.mntId !== mnt)) {
      res.kept.push(show(where));
      return false;
    }
    const fd = openAt(parent, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    let all = true;
    try {
      for (const child of readdirFd(fd)) if (!walk(fd, child, [...where, child], mnt)) all = false;
    } finally {
      closeSync(fd);
    }
    if (!all) return false;
    unlinkAt(parent, n, AT_REMOVEDIR);
    res.removed++;
    return true;
  };
  if (top.isDirectory() && top.mountRoot) throw new SysError(`Refusing to remove ${name.toString()}: it is a mount point`, 16, 'EBUSY');
  walk(dirFd, name, [name], top.mntId);
  if (res.kept.length > 0) throw Object.assign(new SysError(`Could not remove ${name.toString()} completely: ${res.kept[0]} is a mount point and was left alone`, 16, 'EBUSY'), { result: res });
  return res;
}
