/**
 * The store side every import shares: parsing the URL of a pull, putting a finished image into place (never over
 * another), and removing what an import made beside the store when it fails or is cancelled.
 */
import { deleteSubvolume } from '@nspawn/btrfs';
import { RENAME_NOREPLACE, renameAt2, removeTreeAt } from '@nspawn/syscall';
import { ImportError } from './errors.js';

/** URL as a URL object; only http:// and https:// are accepted. */
export function parseHttpUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ImportError(`Invalid URL '${url}'.`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ImportError(`Only http:// and https:// URLs are supported: ${url}`);
  return u;
}

/**
 * Renames the finished TMP (in the store directory open as STORE, the store ROOT) to ENTRY with
 * renameat2(RENAME_NOREPLACE): an image of that name made meanwhile is never replaced.
 */
export function publishImage(store: number, tmp: string, entry: string, root: string, name = entry): void {
  try {
    renameAt2(store, tmp, store, entry, RENAME_NOREPLACE);
  } catch (e) {
    if ((e as { code?: string }).code === 'EEXIST') throw new ImportError(`Image '${name}' already exists in ${root}: not replacing it.`);
    throw e;
  }
}

/** Removes a partial image through descriptors; a subvolume that rmdir will not take goes by ioctl. */
export function removePartial(store: number, tmp: string, tmpPath: string): void {
  try {
    removeTreeAt(store, tmp);
  } catch (e) {
    const c = (e as { code?: string }).code;
    if (c !== 'EPERM' && c !== 'ENOTEMPTY' && c !== 'EINVAL') throw e;
    deleteSubvolume(tmpPath);
  }
}
