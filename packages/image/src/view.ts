/**
 * A read-only view of an opened image's root and /usr partitions for the process that opened it, without a mount
 * namespace of its own and without a holder: each file system mounted *detached* (fsopen/fsconfig/fsmount: in no
 * mount namespace at all), reached through `/proc/PID/fd/N`, and gone when its descriptor is closed, however this
 * process ends (kill -9 included). A runtime reads the image's tree through it while the container's own mounts of
 * the same file systems are made elsewhere (in its mount namespace, from plan()). The view is read-only as
 * `--read-only` mounts it (ro, norecovery: nothing is written, not even a journal replay), so a writable mount of
 * the same file system must wait until the view is closed (the kernel refuses a read-write superblock while a
 * read-only one of the same device lives): close it before the container mounts, open it again to read again.
 *
 * A *shared* view (`{ shared: true }`) is made of the file systems as plan() mounts them (read-write for a writable
 * image, with its options), mounted read-only for this process: the container's mount of the same device then gets
 * the same superblock from the kernel instead of mounting the file system a second time (and unmounting the view's
 * first: for an ext4 image each is a superblock read and write, a journal and flushes of the image file). Such a view
 * stays open while the container runs (a hand-over passes its descriptors to the helper: keepAcrossExec()).
 */
import { closeSync } from 'node:fs';
import { ImageError } from './errors.js';
import type { OpenedImage } from './image.js';
import { type MountPartitionStep, type PlanDevice, planMounts } from './plan.js';
import type { Designator } from './dissect.js';
import { errCode, type ImageSys, MS_RDONLY, realSys } from './sys.js';

const MOUNT_ATTR_RDONLY = 0x1;
const MOUNT_ATTR_NOSUID = 0x2;
const MOUNT_ATTR_NODEV = 0x4;
const MOUNT_ATTR_NOEXEC = 0x8;

/** The view: host paths of the partitions' trees, valid until close(). */
export interface ImageView {
  /** the root partition's tree; undefined when the image only has /usr */
  readonly root?: string;
  /** the /usr partition's tree, when it has one of its own */
  readonly usr?: string;
  /** with `writable`: every mounted partition's tree, in mount order, and whether it is read-only (the image's flag) */
  readonly partitions?: ReadonlyArray<{ designator: Designator; path: string; readOnly: boolean }>;
  /** whether the file systems are mounted as the container mounts them (openImageView()'s `shared`) */
  readonly shared: boolean;
  /** the detached mounts' descriptors, FD_CLOEXEC cleared: for a program exec'd in this process's place to hold */
  keepAcrossExec(): number[];
  /** closes the detached mounts (idempotent) */
  close(): void;
}

/** What openImageView() mounts. */
export interface ImageViewOptions {
  /**
   * mount the file systems as plan() does (read-write for a writable image), read-only for this process only, so that
   * the container's mounts share their superblocks (default false: read-only and without journal replay)
   */
  shared?: boolean;
  /**
   * every partition, read-write where the image and the partition allow it (`partitions` then names each), for a
   * change to the image's files such as nspawn's `--private-users-ownership=chown`; close it before anything else
   * mounts the image (default: the root and /usr, read-only)
   */
  writable?: boolean;
  /** the system calls (default realSys: koffi's) */
  sys?: ImageSys;
}

function detachedMount(step: MountPartitionStep, image: string, sys: ImageSys, writable = false): number {
  const options: Array<[string, string | null]> = [['source', step.device.path]];
  if (step.flags & MS_RDONLY) options.push(['ro', null]);
  for (const o of step.data.split(',').filter(Boolean)) {
    const eq = o.indexOf('=');
    options.push(eq < 0 ? [o, null] : [o.slice(0, eq), o.slice(eq + 1)]);
  }
  try {
    return (sys.fsmount ?? realSys.fsmount!)(step.fstype, options, (writable ? 0 : MOUNT_ATTR_RDONLY) | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
  } catch (e) {
    const code = errCode(e) ?? 'EIO';
    throw new ImageError(`${image}: Failed to mount the ${step.partition} partition (${step.fstype}, ${step.device.path}) to read it: ${(e as Error).message}`, code, image);
  }
}

/**
 * The root and /usr partitions of IMG mounted detached and read-only for reading (or, with `writable`, every
 * partition read-write); needs root (CAP_SYS_ADMIN). Throws an ImageError naming the image when a file system cannot
 * be mounted.
 */
export function openImageView(img: OpenedImage, opts: ImageViewOptions = {}): ImageView {
  const shared = opts.shared === true;
  const writable = opts.writable === true;
  const sys = opts.sys ?? realSys;
  const fds: number[] = [];
  const paths: { root?: string; usr?: string } = {};
  const partitions: Array<{ designator: Designator; path: string; readOnly: boolean }> = [];
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    for (const fd of fds.splice(0))
      try {
        closeSync(fd);
      } catch {
        // gone already
      }
  };
  try {
    const devices = Object.fromEntries(
      Object.entries(img.devices).map(([d, l]) => [d, { path: l.path, fd: l.fd, offset: l.offset, size: l.size } satisfies PlanDevice]),
    ) as Partial<Record<Designator, PlanDevice>>;
    const steps = shared && !writable ? img.plan() : planMounts(img.dissected, devices, { readOnly: !writable || img.readOnly });
    for (const step of steps) {
      if (step.op !== 'mount' || (!writable && step.partition !== 'root' && step.partition !== 'usr')) continue;
      const fd = detachedMount(step, img.path, sys, writable && !(step.flags & MS_RDONLY));
      fds.push(fd);
      const path = `/proc/${process.pid}/fd/${fd}`;
      if (step.partition === 'root' || step.partition === 'usr') paths[step.partition] = path;
      if (writable) partitions.push({ designator: step.partition, path, readOnly: (step.flags & MS_RDONLY) !== 0 });
    }
  } catch (e) {
    close();
    throw e;
  }
  const keepAcrossExec = () =>
    fds.map((fd) => {
      (sys.keepOnExec ?? realSys.keepOnExec!)(fd);
      return fd;
    });
  return { ...paths, ...(writable ? { partitions } : {}), shared: shared && !writable, keepAcrossExec, close };
}
