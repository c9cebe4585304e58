/** Removing what an import made beside the store when it fails or is cancelled. */
import { deleteSubvolume } from '@nspawn/btrfs';
import { removeTreeAt } from '@nspawn/syscall';

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
