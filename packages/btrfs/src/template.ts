/**
 * `--template`: populate a missing container directory from a template, as systemd-nspawn 252 does with
 * btrfs_subvol_snapshot(FALLBACK_COPY|FALLBACK_DIRECTORY|FALLBACK_IMMUTABLE|RECURSIVE): a snapshot when the
 * template is a subvolume on the same btrfs, else a copy (reflinks, hard links, xattrs/ACLs, holes kept) into a
 * new subvolume on btrfs or a plain directory elsewhere. An existing directory is left untouched.
 *
 * The new tree is made under a hidden temporary name beside the directory, `.#template-NAME-<16 hex>`, locked as an
 * image while it is made (so that `cleanImages()` leaves it alone), and renamed into place (renameat2
 * RENAME_NOREPLACE) only when complete: a killed copy never leaves a half tree under NAME for a later start to trust.
 * Its leftover keeps the hidden name; the next populateFromTemplate() for NAME removes it (when its lock is free),
 * as does `cleanImages()`.
 */
import { closeSync, lstatSync, mkdirSync, readdirSync, realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { O_DIRECTORY, O_NOFOLLOW, O_RDONLY, openAt, RENAME_NOREPLACE, renameAt2 } from '@nspawn/syscall';
import { copyTree } from './copy.js';
import { ImageBusyError, lockImage } from './lock.js';
import { random64Hex } from './random.js';
import { removeTree } from './remove.js';
import { isSubvolume, setSubvolumeReadOnly, snapshotSubvolume } from './subvolume.js';
import { setImmutable } from './attrs.js';
import { errCode, SysError } from './sys.js';

export type TemplateResult = 'exists' | 'snapshot' | 'copy';

export interface TemplateOptions {
  /** make the new tree read-only: the subvolume flag, or the immutable attribute on a directory */
  readOnly?: boolean;
}

/** `.#template-NAME-`: the prefix of DIRECTORY's temporary copies */
export const templateTempPrefix = (directory: string): string => `.#template-${basename(directory)}-`;

/**
 * Removes what killed populateFromTemplate() calls for DIRECTORY left beside it (hidden `.#template-NAME-*` trees
 * whose lock is free); returns their paths. One in progress (its lock held) is left alone.
 */
export function cleanTemplateLeftovers(directory: string): string[] {
  const parent = dirname(directory);
  const prefix = templateTempPrefix(directory);
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const n of names) {
    if (!n.startsWith(prefix) || !/^[0-9a-f]{16}$/.test(n.slice(prefix.length))) continue;
    const p = join(parent, n);
    let lock;
    try {
      lock = lockImage(p, { env: {} });
    } catch (e) {
      if (e instanceof ImageBusyError) continue; // being made right now
      throw e;
    }
    try {
      removeTree(p, { within: parent });
      removed.push(p);
    } finally {
      lock.release();
    }
  }
  return removed;
}

/** Creates DIRECTORY from TEMPLATE unless DIRECTORY exists; says which it did. */
export function populateFromTemplate(template: string, directory: string, opts: TemplateOptions = {}): TemplateResult {
  try {
    lstatSync(directory);
    return 'exists';
  } catch (e) {
    if (errCode(e) !== 'ENOENT') throw e;
  }
  const src = realpathSync(template);
  if (!lstatSync(src).isDirectory()) throw new SysError(`Template ${template} is not a directory`, 20, 'ENOTDIR');
  const parent = dirname(directory);
  mkdirSync(parent, { recursive: true, mode: 0o700 });
  cleanTemplateLeftovers(directory);
  const tmpName = `${templateTempPrefix(directory)}${random64Hex()}`;
  const tmp = join(parent, tmpName);
  // locked whatever $SYSTEMD_NSPAWN_LOCK says: the lock is what tells a copy in progress from a leftover
  const lock = lockImage(tmp, { env: {} });
  let made: TemplateResult | undefined;
  try {
    if (isSubvolume(src)) {
      try {
        snapshotSubvolume(src, tmp, { readOnly: opts.readOnly === true });
        made = 'snapshot';
      } catch (e) {
        // another file system (EXDEV) or not btrfs at the destination: copy instead
        if (!['EXDEV', 'ENOTTY', 'EINVAL', 'EOPNOTSUPP'].includes(errCode(e) ?? '')) throw e;
        removeTree(tmp, { within: parent });
      }
    }
    let immutable = false;
    if (!made) {
      const st = copyTree(src, tmp, { subvolume: true });
      if (opts.readOnly) {
        if (st.subvolume) setSubvolumeReadOnly(tmp, true);
        else immutable = true; // after the rename: an immutable directory cannot be renamed
      }
      made = 'copy';
    }
    const dirFd = openAt(-100, parent, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    try {
      renameAt2(dirFd, tmpName, dirFd, basename(directory), RENAME_NOREPLACE);
    } catch (e) {
      if (errCode(e) !== 'EEXIST') throw e;
      return 'exists'; // another start made it meanwhile: ours goes (below)
    } finally {
      closeSync(dirFd);
    }
    if (immutable) setImmutable(directory, true);
    return made;
  } finally {
    try {
      // whatever did not reach its name (a failure, or the race lost); gone already after the rename
      removeTree(tmp, { within: parent });
    } catch {
      // keep the first error; the leftover keeps its hidden name and goes at the next start
    } finally {
      lock.release();
    }
  }
}
