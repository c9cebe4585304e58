/**
 * Ephemeral roots (`-x`/`--ephemeral`): a throw-away copy of a tree under systemd's name for it, beside the tree
 * (`PARENT/.#machine.NAME<16 hex>`, or `DIR/.#machine.<16 hex>` when DIR is a mount point: tempfn_random() and
 * tempfn_random_child() with "machine." in systemd 252), locked as an image while in use.
 *
 * Modes:
 * - snapshot: a btrfs snapshot (nested subvolumes included) when the tree is a subvolume; O(1).
 * - overlay: off btrfs (or for a tree that is not a subvolume): SNAPSHOT is a directory holding `upper` and
 *   `work` and an overlayfs mounted on `root` whose lower layer is the tree; O(1) whatever the tree's size. When
 *   the tree contains SNAPSHOT (a mount point, `/` included), SNAPSHOT is first a tmpfs of its own, since overlayfs
 *   refuses an upper layer inside its lower one.
 * - copy: systemd's behaviour off btrfs, a full copy (copyTree()).
 * The mode is chosen by `mode` or $NSPAWN_EPHEMERAL (auto, snapshot, overlay, copy); auto: snapshot where possible,
 * else overlay.
 */
import { random64Hex } from './random.js';
import { chmodSync, closeSync, lchownSync, lstatSync, mkdirSync, openSync, readdirSync, readSync, realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { copyTree } from './copy.js';
import { type ImageLock, ImageBusyError, lockImage, lockingDisabled } from './lock.js';
import { isMountPoint, mountTable } from './mounts.js';
import { removeTree } from './remove.js';
import { isSubvolume, setSubvolumeReadOnly, snapshotSubvolume } from './subvolume.js';
import { MNT_DETACH, mount, SysError, sysError, umount2 } from './sys.js';

export type EphemeralMode = 'auto' | 'snapshot' | 'overlay' | 'copy';

/** the source name of the mounts made here: only these are ever unmounted by cleanup */
export const EPHEMERAL_MOUNT_SOURCE = 'nspawn-ephemeral';
export const EPHEMERAL_PREFIX = '.#machine.';

export interface EphemeralOptions {
  /** default: $NSPAWN_EPHEMERAL, else auto */
  mode?: EphemeralMode;
  /** a read-only snapshot (systemd: --read-only with -x) */
  readOnly?: boolean;
  env?: NodeJS.ProcessEnv;
  /**
   * called with the snapshot's path before anything of it (its lock file included) is made: a caller that records
   * what it makes, so that a run killed halfway is cleaned up later (nspawn's run record), notes it here
   */
  reserve?: (snapshot: string) => void;
}

export interface EphemeralRoot {
  /** the directory to run the container on */
  readonly root: string;
  /** the snapshot (for overlay: the directory holding upper, work and root) */
  readonly snapshot: string;
  readonly mode: 'snapshot' | 'overlay' | 'copy';
  /** the tree it was made from */
  readonly source: string;
  /** removes the snapshot and releases its lock (idempotent) */
  remove(): void;
  /**
   * For a process about to exec another program that will remove the snapshot (nspawn's hand-over to its helper):
   * keeps the snapshot's lock files across the exec and says which descriptors and files they are. remove() is then
   * that program's job.
   */
  keepLocksAcrossExec(): Array<{ fd: number; path: string; exclusive: boolean }>;
  /**
   * What removing it takes, for a program that does it in this process's place (nspawn's helper after a hand-over):
   * MOUNTS to unmount first, innermost first (the overlay on `root`, then the tmpfs on the snapshot when it has
   * one; all with the source EPHEMERAL_MOUNT_SOURCE), then TREE to delete, a btrfs subvolume to destroy when
   * SUBVOLUME (a snapshot, or a copy made on btrfs).
   */
  removal(): EphemeralRemoval;
}

/** EphemeralRoot.removal(): the steps of remove(), as data. */
export interface EphemeralRemoval {
  mounts: string[];
  tree: string;
  subvolume: boolean;
}

/** $NSPAWN_EPHEMERAL: auto (default), snapshot, overlay or copy. */
export function ephemeralModeFromEnv(env: NodeJS.ProcessEnv = process.env): EphemeralMode {
  const v = env.NSPAWN_EPHEMERAL?.trim();
  if (v === undefined || v === '') return 'auto';
  if (v === 'auto' || v === 'snapshot' || v === 'overlay' || v === 'copy') return v;
  throw new SysError(`Invalid $NSPAWN_EPHEMERAL=${v}: expected auto, snapshot, overlay or copy`, 22, 'EINVAL');
}

/** Where the snapshot of DIRECTORY (canonical) goes: systemd's tempfn_random()/tempfn_random_child(). */
export function ephemeralSnapshotPath(directory: string, hex: string = random64Hex()): string {
  if (isMountPoint(directory)) return join(directory, `${EPHEMERAL_PREFIX}${hex}`);
  return join(dirname(directory), `${EPHEMERAL_PREFIX}${basename(directory)}${hex}`);
}

const escOverlay = (p: string) => p.replace(/[\\,:]/g, (c) => `\\${c}`);

/**
 * Makes an ephemeral root of DIRECTORY: finds and removes orphans of earlier runs beside it first, locks the new
 * snapshot's name, makes it. Everything is undone when this throws.
 */
export function createEphemeral(directory: string, opts: EphemeralOptions = {}): EphemeralRoot {
  const source = realpathSync(directory);
  const mode = opts.mode ?? ephemeralModeFromEnv(opts.env);
  const snapshot = ephemeralSnapshotPath(source);
  cleanEphemeralOrphans(dirname(snapshot), opts.env);
  opts.reserve?.(snapshot);
  const lock = lockImage(snapshot, opts.env ? { env: opts.env } : {});
  let made: 'snapshot' | 'overlay' | 'copy' | undefined;
  try {
    const sub = isSubvolume(source);
    if (mode === 'snapshot' && !sub) throw new SysError(`Cannot snapshot ${source}: not a btrfs subvolume ($NSPAWN_EPHEMERAL=snapshot)`, 25, 'ENOTTY');
    if (mode === 'snapshot' || (mode === 'auto' && sub)) {
      made = 'snapshot';
      snapshotSubvolume(source, snapshot, { readOnly: opts.readOnly === true });
      return handle(source, snapshot, snapshot, 'snapshot', lock, { mounts: [], tree: snapshot, subvolume: true });
    }
    if (mode === 'copy') {
      made = 'copy';
      const st = copyTree(source, snapshot, { subvolume: true });
      if (opts.readOnly && st.subvolume) setSubvolumeReadOnly(snapshot, true);
      return handle(source, snapshot, snapshot, 'copy', lock, { mounts: [], tree: snapshot, subvolume: st.subvolume });
    }
    made = 'overlay';
    const { root, tmpfs } = makeOverlay(source, snapshot);
    return handle(source, snapshot, root, 'overlay', lock, { mounts: tmpfs ? [root, snapshot] : [root], tree: snapshot, subvolume: false });
  } catch (e) {
    if (made !== undefined) {
      try {
        removeEphemeral(snapshot);
      } catch {
        // the first error is the one to report
      }
    }
    lock.release();
    throw e;
  }
}

function handle(source: string, snapshot: string, root: string, mode: EphemeralRoot['mode'], lock: ImageLock, removal: EphemeralRemoval): EphemeralRoot {
  let done = false;
  return {
    root,
    snapshot,
    mode,
    source,
    remove() {
      if (done) return;
      done = true;
      try {
        removeEphemeral(snapshot);
      } finally {
        lock.release();
      }
    },
    keepLocksAcrossExec() {
      return [lock.local, lock.global].flatMap((l) => (l ? [{ fd: l.keepAcrossExec(), path: l.path, exclusive: l.exclusive }] : []));
    },
    removal() {
      return { mounts: [...removal.mounts], tree: removal.tree, subvolume: removal.subvolume };
    },
  };
}

/** the overlay of SOURCE on SNAPSHOT/root; TMPFS: SNAPSHOT is a tmpfs of its own */
function makeOverlay(source: string, snapshot: string): { root: string; tmpfs: boolean } {
  mkdirSync(snapshot, { mode: 0o700 });
  // overlayfs refuses an upper directory inside its lower layer: give the scratch a file system of its own then
  const tmpfs = snapshot.startsWith(source === '/' ? '/' : `${source}/`);
  if (tmpfs) {
    try {
      mount(EPHEMERAL_MOUNT_SOURCE, snapshot, 'tmpfs', 0, 'mode=0700');
    } catch (e) {
      throw sysError(`Failed to mount a tmpfs on ${snapshot}`, e);
    }
  }
  const upper = join(snapshot, 'upper');
  const work = join(snapshot, 'work');
  const root = join(snapshot, 'root');
  const st = lstatSync(source);
  mkdirSync(upper);
  // the merged root directory takes its owner and mode from the upper one
  lchownSync(upper, st.uid, st.gid);
  chmodSync(upper, st.mode & 0o7777);
  mkdirSync(work, { mode: 0o700 });
  mkdirSync(root, { mode: 0o755 });
  const layers = `lowerdir=${escOverlay(source)},upperdir=${escOverlay(upper)},workdir=${escOverlay(work)}`;
  try {
    // volatile: the upper layer is thrown away, so no sync of its whole file system at unmount (Linux 5.10+)
    mount(EPHEMERAL_MOUNT_SOURCE, root, 'overlay', 0, `${layers},volatile`);
  } catch (e) {
    try {
      if ((e as { code?: string }).code !== 'EINVAL') throw e;
      mount(EPHEMERAL_MOUNT_SOURCE, root, 'overlay', 0, layers);
    } catch (e2) {
      throw sysError(`Failed to mount an overlay of ${source} on ${root}`, e2);
    }
  }
  return { root, tmpfs };
}

/**
 * Removes the ephemeral snapshot at SNAPSHOT: unmounts the overlay and tmpfs this package mounted there (and no
 * other mount: another one below it makes this refuse), then deletes it (subvolumes by ioctl).
 */
export function removeEphemeral(snapshot: string): void {
  if (!basename(snapshot).startsWith(EPHEMERAL_PREFIX)) throw new SysError(`Refusing to remove ${snapshot}: not an ephemeral snapshot`, 1, 'EPERM');
  const mounts = mountTable()
    .filter((m) => m.target === snapshot || m.target.startsWith(`${snapshot}/`))
    .sort((a, b) => b.target.length - a.target.length);
  for (const m of mounts) {
    const ours =
      m.source === EPHEMERAL_MOUNT_SOURCE &&
      ((m.target === join(snapshot, 'root') && m.fsType === 'overlay') || (m.target === snapshot && m.fsType === 'tmpfs'));
    if (!ours) throw new SysError(`Refusing to remove ${snapshot}: ${m.target} (${m.fsType}) is mounted there`, 16, 'EBUSY');
  }
  for (const m of mounts) {
    try {
      umount2(m.target, MNT_DETACH);
    } catch (e) {
      throw sysError(`Failed to unmount ${m.target}`, e);
    }
  }
  removeTree(snapshot, { within: dirname(snapshot) });
}

/**
 * Removes the ephemeral snapshots in DIR whose lock is free: left behind by a run that was killed (kill -9), by
 * nspawn or systemd-nspawn. Returns their paths. One that is locked belongs to a running container and stays.
 */
export function cleanEphemeralOrphans(dir: string, env?: NodeJS.ProcessEnv): string[] {
  // without locks a running snapshot cannot be told from an orphan
  if (lockingDisabled(env ?? process.env)) return [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const n of names) {
    if (!n.startsWith(EPHEMERAL_PREFIX) || n.endsWith('.lck')) continue;
    const p = join(dir, n);
    let lock: ImageLock;
    try {
      lock = lockImage(p, env ? { env } : {});
    } catch (e) {
      if (e instanceof ImageBusyError) continue;
      throw e;
    }
    try {
      removeEphemeral(p);
      out.push(p);
    } finally {
      lock.release();
    }
  }
  return out;
}

/**
 * Removes the ephemeral snapshot at SNAPSHOT if its lock is free (its run is gone, e.g. killed): its overlay or tmpfs
 * (only this package's), its tree, its lock files. 'busy' when a running container holds it, 'removed' otherwise
 * (also when nothing of it was left). For a caller that recorded the snapshot (EphemeralOptions.reserve) and finds
 * its owner gone.
 */
export function removeEphemeralOrphan(snapshot: string, env?: NodeJS.ProcessEnv): 'removed' | 'busy' {
  if (!basename(snapshot).startsWith(EPHEMERAL_PREFIX)) throw new SysError(`Refusing to remove ${snapshot}: not an ephemeral snapshot`, 1, 'EPERM');
  let lock: ImageLock;
  try {
    lock = lockImage(snapshot, env ? { env } : {});
  } catch (e) {
    if (e instanceof ImageBusyError) return 'busy';
    // its directory is gone: so is the snapshot
    if ((e as { code?: string }).code === 'ENOENT') return 'removed';
    throw e;
  }
  try {
    removeEphemeral(snapshot);
  } finally {
    lock.release();
  }
  return 'removed';
}
