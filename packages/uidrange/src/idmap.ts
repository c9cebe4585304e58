/**
 * idmappedMount(): a view of a directory in which on-disk IDs 0..count-1 appear as base..base+count-1
 * (open_tree(OPEN_TREE_CLONE) + mount_setattr(MOUNT_ATTR_IDMAP) with a user namespace carrying `0 base count`,
 * plus host root mapped to on-disk 2147483646 as systemd's REMOUNT_IDMAPPING_HOST_ROOT does). O(1): nothing on
 * disk changes.
 */
import { runTool } from './tool.js';
import { UidRangeError } from './candidates.js';

/** mounts the idmapped view of `source` on `target` (default: over `source` itself) */
export function idmappedMount(source: string, base: number, count: number, target: string = source): void {
  const r = runTool(['idmap', source, target, String(base), String(count)]);
  if (r.status === 0) return;
  throw new UidRangeError(r.stderr || `uidrange-tool idmap ended with ${r.status}`, r.status === 95 ? 'EOPNOTSUPP' : 'EIO');
}

/** whether the kernel and the file system of `path` support idmapped mounts (tried on a detached copy) */
export function idmapSupported(path: string, base = 0x80000, count = 0x10000): boolean {
  const r = runTool(['idmap', path, path, String(base), String(count), 'probe']);
  if (r.status === 0) return true;
  if (r.status === 95) return false;
  throw new UidRangeError(r.stderr || `uidrange-tool idmap ended with ${r.status}`, 'EIO');
}

/**
 * file systems known to take idmapped mounts on Linux >= 6.3 (statfs f_type); any other is probed (overlayfs, for
 * one, takes idmapped layers but refuses an idmapped mount of itself here)
 */
const IDMAP_FS = new Map<number, string>([
  [0xef53, 'ext4'],
  [0x58465342, 'xfs'],
  [0x9123683e, 'btrfs'],
  [0x01021994, 'tmpfs'],
  [0xf2f52010, 'f2fs'],
  [0x4d44, 'vfat'],
]);

/** the name of an f_type known to support idmapped mounts, or undefined */
export function knownIdmapFs(fsType: number): string | undefined {
  return IDMAP_FS.get(fsType);
}
