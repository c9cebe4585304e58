/**
 * Deleting trees safely: never follows a symlink (it removes the link), never crosses a mount point (nothing under
 * one is touched, and the tree is then reported as not fully removed), deletes nested btrfs subvolumes by ioctl,
 * and refuses `/` and anything not strictly inside the directory the caller names as its own (`within`).
 */
import { lstatSync, readdirSync, realpathSync, rmdirSync, unlinkSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { type MountEntry, mountTable } from './mounts.js';
import { deleteSubvolume, isSubvolume, setSubvolumeReadOnly, isSubvolumeReadOnly } from './subvolume.js';
import { errCode, SysError, sysError } from './sys.js';
import { clearImmutable } from './attrs.js';

export interface RemoveOptions {
  /**
   * the directory the caller owns: PATH must lie strictly inside it (e.g. the image store, or the parent of an
   * ephemeral snapshot this process made)
   */
  within: string;
}

/** Is CHILD strictly below PARENT (both absolute, normalized)? */
export function isStrictlyInside(child: string, parent: string): boolean {
  const p = parent === '/' ? '/' : `${parent}/`;
  return child !== parent && child.startsWith(p);
}

/**
 * Removes PATH (a file, a directory tree or a btrfs subvolume with nested ones). Returns nothing when all is gone;
 * throws when something could not be removed (a mount point inside stays, and so does its parent chain).
 */
export function removeTree(path: string, opts: RemoveOptions): void {
  const abs = resolve(path);
  if (abs === '/') throw new SysError('Refusing to remove /', 1, 'EPERM');
  let within: string;
  try {
    within = realpathSync(opts.within);
  } catch (e) {
    throw sysError(`Refusing to remove ${abs}: ${opts.within} does not exist`, e);
  }
  // the parent chain must be real (no symlink on the way): the last component itself is never followed
  let parentReal: string;
  try {
    parentReal = realpathSync(dirname(abs));
  } catch (e) {
    if (errCode(e) === 'ENOENT') return;
    throw e;
  }
  const target = join(parentReal, basename(abs));
  if (!isStrictlyInside(target, within)) throw new SysError(`Refusing to remove ${abs}: not inside ${within}`, 1, 'EPERM');
  let st;
  try {
    st = lstatSync(target);
  } catch (e) {
    if (errCode(e) === 'ENOENT') return;
    throw e;
  }
  const mounts = mountTable();
  const mountPoints = new Set(mounts.map((m: MountEntry) => m.target));
  if (mountPoints.has(target)) throw new SysError(`Refusing to remove ${target}: it is a mount point`, 16, 'EBUSY');
  const kept: string[] = [];
  removeEntry(target, st, mountPoints, kept);
  if (kept.length > 0) throw new SysError(`Could not remove ${target} completely: ${kept[0]} is a mount point and was left alone`, 16, 'EBUSY');
}

function removeEntry(p: string, st: ReturnType<typeof lstatSync>, mountPoints: Set<string>, kept: string[]): boolean {
  if (mountPoints.has(p)) {
    kept.push(p);
    return false;
  }
  if (!st!.isDirectory()) {
    try {
      unlinkSync(p);
    } catch (e) {
      if (errCode(e) === 'EPERM') {
        clearImmutable(p);
        unlinkSync(p);
      } else if (errCode(e) !== 'ENOENT') throw sysError(`Failed to remove ${p}`, e);
    }
    return true;
  }
  if (st!.ino === 256 && isSubvolume(p)) {
    // a subvolume with no mount below it goes at once, nested subvolumes included
    const prefix = `${p}/`;
    if (![...mountPoints].some((m) => m.startsWith(prefix))) {
      deleteSubvolume(p);
      return true;
    }
    if (isSubvolumeReadOnly(p)) setSubvolumeReadOnly(p, false);
  }
  let all = true;
  let names: string[];
  try {
    names = readdirSync(p);
  } catch (e) {
    throw sysError(`Failed to read ${p}`, e);
  }
  for (const n of names) {
    const c = join(p, n);
    let cst;
    try {
      cst = lstatSync(c);
    } catch (e) {
      if (errCode(e) === 'ENOENT') continue;
      throw e;
    }
    if (!removeEntry(c, cst, mountPoints, kept)) all = false;
  }
  if (!all) return false;
  try {
    if (st!.ino === 256 && isSubvolume(p)) deleteSubvolume(p);
    else rmdirSync(p);
  } catch (e) {
    if (errCode(e) === 'EPERM') {
      clearImmutable(p);
      rmdirSync(p);
    } else if (errCode(e) !== 'ENOENT') throw sysError(`Failed to remove ${p}`, e);
  }
  return true;
}

