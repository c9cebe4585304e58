/**
 * idmappedMount(): a view of a directory in which on-disk IDs 0..count-1 appear as base..base+count-1
 * (open_tree(OPEN_TREE_CLONE) + mount_setattr(MOUNT_ATTR_IDMAP), through koffi, with a user namespace carrying
 * `0 base count`, plus host root mapped to on-disk 2147483646 as systemd's REMOUNT_IDMAPPING_HOST_ROOT does). O(1):
 * nothing on disk changes.
 *
 * The user namespace comes from a short-lived process (util-linux `unshare --user cat`): Node is multithreaded and
 * cannot make one itself. Its maps are written from here, as systemd's userns_acquire() writes them, and the process
 * ends once its namespace is open. Inside nspawn the runtime helper makes the idmapped root itself (plan.idmap).
 */
import { closeSync, openSync, readlinkSync, writeFileSync } from 'node:fs';
import { UidRangeError } from './candidates.js';
import { closeFd, moveMount, openTreeClone, setIdmap, SysError } from './sys.js';

/** INT32_MAX-1: host root on an idmapped mount (systemd's make_userns()) */
const UID_MAPPED_ROOT = 2147483646;

const sleepMs = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** an fd of a new user namespace whose uid and gid maps are MAP */
export function usernsWithMap(map: string): number {
  const { spawn } = process.getBuiltinModule('node:child_process');
  // cat waits on a pipe: it ends when killed, or with this process
  const child = spawn('unshare', ['--user', '--', 'cat'], { stdio: ['pipe', 'ignore', 'ignore'] });
  child.on('error', () => {});
  child.unref();
  try {
    if (child.pid === undefined) throw new UidRangeError('Failed to make a user namespace: util-linux unshare could not be started', 'EIO');
    const ours = readlinkSync('/proc/self/ns/user');
    const ns = `/proc/${child.pid}/ns/user`;
    for (let i = 0; ; i++) {
      let now: string | undefined;
      try {
        now = readlinkSync(ns);
      } catch {
        /* not there yet, or gone */
      }
      if (now !== undefined && now !== ours) break;
      if (child.exitCode !== null || i > 5000) throw new UidRangeError('Failed to make a user namespace: unshare --user did not get one', 'EIO');
      sleepMs(1);
    }
    writeFileSync(`/proc/${child.pid}/uid_map`, map);
    writeFileSync(`/proc/${child.pid}/gid_map`, map);
    return openSync(ns, 'r');
  } catch (e) {
    if (e instanceof UidRangeError) throw e;
    throw new UidRangeError(`Failed to make a user namespace: ${(e as Error).message}`, 'EIO');
  } finally {
    child.kill('SIGKILL');
    child.stdin?.destroy();
  }
}

function idmapFor(base: number, count: number): string {
  return `0 ${base} ${count}\n${UID_MAPPED_ROOT} 0 1\n`;
}

const UNSUPPORTED = new Set(['EINVAL', 'EOPNOTSUPP', 'ENOTSUP', 'ENOSYS', 'EPERM']);

/** a detached idmapped copy of SOURCE's mount: its fd */
function idmappedTree(source: string, base: number, count: number): number {
  const userns = usernsWithMap(idmapFor(base, count));
  try {
    const tree = openTreeClone(source);
    try {
      setIdmap(tree, userns, source);
      return tree;
    } catch (e) {
      closeFd(tree);
      throw e;
    }
  } finally {
    closeSync(userns);
  }
}

/** mounts the idmapped view of `source` on `target` (default: over `source` itself) */
export function idmappedMount(source: string, base: number, count: number, target: string = source): void {
  let tree: number;
  try {
    tree = idmappedTree(source, base, count);
  } catch (e) {
    if (e instanceof SysError && UNSUPPORTED.has(e.code)) throw new UidRangeError(`ID mapped mounts are not available for ${source}: ${e.code}`, 'EOPNOTSUPP');
    if (e instanceof SysError) throw new UidRangeError(e.message, 'EIO');
    throw e;
  }
  try {
    moveMount(tree, target);
  } catch (e) {
    throw new UidRangeError((e as Error).message, 'EIO');
  } finally {
    closeFd(tree);
  }
}

/** whether the kernel and the file system of `path` support idmapped mounts (tried on a detached copy) */
export function idmapSupported(path: string, base = 0x80000, count = 0x10000): boolean {
  try {
    closeFd(idmappedTree(path, base, count));
    return true;
  } catch (e) {
    if (e instanceof SysError && UNSUPPORTED.has(e.code)) return false;
    if (e instanceof SysError) throw new UidRangeError(e.message, 'EIO');
    throw e;
  }
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
