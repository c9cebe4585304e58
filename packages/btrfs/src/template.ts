/**
 * `--template`: populate a missing container directory from a template, as systemd-nspawn 252 does with
 * btrfs_subvol_snapshot(FALLBACK_COPY|FALLBACK_DIRECTORY|FALLBACK_IMMUTABLE|RECURSIVE): a snapshot when the
 * template is a subvolume on the same btrfs, else a copy (reflinks, hard links, xattrs/ACLs, holes kept) into a
 * new subvolume on btrfs or a plain directory elsewhere. An existing directory is left untouched.
 */
import { lstatSync, mkdirSync, realpathSync } from 'node:fs';
import { dirname } from 'node:path';
import { copyTree } from './copy.js';
import { removeTree } from './remove.js';
import { isSubvolume, setSubvolumeReadOnly, snapshotSubvolume } from './subvolume.js';
import { setImmutable } from './attrs.js';
import { errCode, SysError } from './sys.js';

export type TemplateResult = 'exists' | 'snapshot' | 'copy';

export interface TemplateOptions {
  /** make the new tree read-only: the subvolume flag, or the immutable attribute on a directory */
  readOnly?: boolean;
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
  mkdirSync(dirname(directory), { recursive: true, mode: 0o700 });
  if (isSubvolume(src)) {
    try {
      snapshotSubvolume(src, directory, { readOnly: opts.readOnly === true });
      return 'snapshot';
    } catch (e) {
      // another file system (EXDEV) or not btrfs at the destination: copy instead
      if (!['EXDEV', 'ENOTTY', 'EINVAL', 'EOPNOTSUPP'].includes(errCode(e) ?? '')) throw e;
    }
  }
  try {
    const st = copyTree(src, directory, { subvolume: true });
    if (opts.readOnly) {
      if (st.subvolume) setSubvolumeReadOnly(directory, true);
      else setImmutable(directory, true);
    }
  } catch (e) {
    try {
      removeTree(directory, { within: dirname(directory) });
    } catch {
      // keep the first error
    }
    throw e;
  }
  return 'copy';
}
