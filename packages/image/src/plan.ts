/**
 * The mounts of a dissected image as data, in systemd 252's order (dissected_image_mount()): the root (or a tmpfs
 * when the image only has /usr), /usr, then /home, /srv, /var, /var/tmp (the "tmp" partition), and, when asked, the
 * XBOOTLDR at /boot and the ESP at /efi. Each mount names its loop device (path and descriptor), offset, size,
 * file system type, target (relative to the mount root), flags and options, so that a process in another mount
 * namespace (the runtime's helper, in the container's) can carry it out as well as this package's executor can.
 * For an ephemeral run over the image (`-x`) each partition is mounted read-only below a staging tmpfs and an
 * overlayfs with its upper layer in that tmpfs is mounted in its place. Pure.
 */
import type { DissectedImage, Designator, DissectedPartition } from './dissect.js';
import { fstypeCanDiscard, fstypeCanUidGid, fstypeNeedsNorecovery } from './fsprobe.js';
import { MS_NODEV, MS_RDONLY } from './sys.js';

/** A loop device as a plan refers to it. */
export interface PlanDevice {
  /** /dev/loopN */
  readonly path: string;
  /** an open descriptor of it in the process that made the plan (pass it on to mount it from elsewhere) */
  readonly fd?: number;
  /** the partition's byte range in the image */
  readonly offset: number;
  readonly size: number;
}

/** Mount a partition's file system (`mount -t FSTYPE -o DATA DEVICE ROOT/TARGET`). */
export interface MountPartitionStep {
  readonly op: 'mount';
  readonly partition: Designator;
  readonly device: PlanDevice;
  readonly fstype: string;
  /** relative to the mount root; '' is the root itself */
  readonly target: string;
  /** MS_NODEV, plus MS_RDONLY for a read-only mount */
  readonly flags: number;
  /** file system options: discard, norecovery (read-only ext3/4, xfs, btrfs), uid=/gid= */
  readonly data: string;
  /** create a missing target inside the root first (mode 0755; EROFS: the mount fails) */
  readonly mkdir: boolean;
  /**
   * make it an idmapped mount into the container's UID range (PlanOptions.idmap): on-disk 0..range-1 seen as the
   * range (systemd's DISSECT_IMAGE_MOUNT_IDMAPPED); for the runtime's helper, which makes it with the host's privileges
   */
  readonly idmap?: boolean;
  /** the ESP's rule: TARGET (/efi) unless it is missing and FALLBACK (/boot) is an empty directory nothing is mounted on */
  readonly fallback?: string;
  /** make it a private mount right away (the root mount: nothing below it propagates anywhere) */
  readonly private?: boolean;
}

/** A tmpfs: the root of an image that only has /usr, or the staging area of an ephemeral run. */
export interface TmpfsStep {
  readonly op: 'tmpfs';
  /** the mount source shown in /proc/self/mountinfo */
  readonly source: string;
  readonly target: string;
  readonly flags: number;
  readonly data: string;
  readonly private?: boolean;
}

export interface MkdirStep {
  readonly op: 'mkdir';
  readonly target: string;
  readonly mode: number;
}

/** An overlayfs whose directories are relative to the mount root, like the target. */
export interface OverlayStep {
  readonly op: 'overlay';
  readonly partition: Designator;
  readonly target: string;
  readonly lower: string;
  readonly upper: string;
  readonly work: string;
  readonly flags: number;
  readonly mkdir: boolean;
}

/** MS_MOVE of the mount at FROM onto TARGET (both relative to the mount root). */
export interface MoveStep {
  readonly op: 'move';
  readonly from: string;
  readonly target: string;
}

export type MountStep = MountPartitionStep | TmpfsStep | MkdirStep | OverlayStep | MoveStep;

export interface PlanOptions {
  /** every mount read-only (`--read-only`) */
  readOnly?: boolean;
  /** the partitions read-only below an overlayfs with its writable layer in a tmpfs (`-x`) */
  overlay?: boolean;
  /** also mount the XBOOTLDR at /boot and the ESP at /efi, as systemd 252 does (default: left out) */
  bootPartitions?: boolean;
  /** uid=/gid= for file systems that take them (vfat...), as systemd passes the container's UID shift */
  uidShift?: number;
  /**
   * with uidShift: the other file systems (ext4, btrfs, xfs...) are marked `idmap` (systemd 252's mount_partition()
   * with DISSECT_IMAGE_MOUNT_IDMAPPED: uid=/gid= where the file system takes them, an idmapped mount otherwise)
   */
  idmap?: boolean;
  /**
   * the steps are carried out by root of the container's user namespace (the runtime's helper with -U): its tmpfs
   * mounts get no uid=/gid= (they belong to that root already, and a host UID is not valid there)
   */
  inUserNamespace?: boolean;
}

/** The partitions in mount order and where they go (relative to the root). */
export const MOUNT_ORDER: ReadonlyArray<readonly [Designator, string]> = [
  ['usr', 'usr'],
  ['home', 'home'],
  ['srv', 'srv'],
  ['var', 'var'],
  ['tmp', 'var/tmp'],
  ['xbootldr', 'boot'],
  ['esp', 'efi'],
];

/** The partitions a plan mounts (those with a file system to mount), in order. */
export function mountedPartitions(img: DissectedImage, opts: PlanOptions = {}): DissectedPartition[] {
  const out: DissectedPartition[] = [];
  if (img.partitions.root) out.push(img.partitions.root);
  for (const [d] of MOUNT_ORDER) {
    if (!opts.bootPartitions && (d === 'esp' || d === 'xbootldr')) continue;
    const p = img.partitions[d];
    if (p) out.push(p);
  }
  return out;
}

function mountOf(p: DissectedPartition, device: PlanDevice, target: string, rw: boolean, opts: PlanOptions, extra: Partial<MountPartitionStep> = {}): MountPartitionStep {
  const fstype = p.fstype!;
  const data: string[] = [];
  if (fstypeCanDiscard(fstype)) data.push('discard'); // DISSECT_IMAGE_DISCARD_ON_LOOP: ours are always loop devices
  const uidGid = fstypeCanUidGid(fstype);
  if (opts.uidShift && uidGid) data.push(`uid=${opts.uidShift}`, `gid=${opts.uidShift}`);
  if (!rw && fstypeNeedsNorecovery(fstype)) data.push('norecovery'); // else ext4 & co. replay their journal anyway
  return {
    ...(opts.uidShift && opts.idmap && !uidGid ? { idmap: true } : {}),
    op: 'mount',
    partition: p.designator,
    device,
    fstype,
    target,
    flags: MS_NODEV | (rw ? 0 : MS_RDONLY),
    data: data.join(','),
    mkdir: target !== '',
    ...extra,
  };
}

/** mount_root_tmpfs(): the root tmpfs of an image with only /usr, owned by the container's root */
const tmpfsOwner = (opts: PlanOptions) => (opts.uidShift && !opts.inUserNamespace ? `uid=${opts.uidShift},gid=${opts.uidShift}` : '');

/**
 * The mount steps of IMG with DEVICES (a loop device per mounted partition). Throws when a partition to mount has no
 * device or no known file system type (the caller checks that first, with a message naming the image).
 */
export function planMounts(img: DissectedImage, devices: Partial<Record<Designator, PlanDevice>>, opts: PlanOptions = {}): MountStep[] {
  const parts = mountedPartitions(img, opts);
  const dev = (p: DissectedPartition) => {
    const d = devices[p.designator];
    if (!d) throw new Error(`no loop device for the ${p.designator} partition`);
    if (!p.fstype) throw new Error(`no file system type for the ${p.designator} partition`);
    return d;
  };
  const targetOf = (d: Designator) => (d === 'root' ? '' : MOUNT_ORDER.find(([x]) => x === d)![1]);
  const steps: MountStep[] = [];

  if (!opts.overlay) {
    for (const p of parts) {
      const rw = p.rw && !opts.readOnly;
      const target = targetOf(p.designator);
      if (p.designator === 'usr' && !img.partitions.root)
        steps.push({ op: 'tmpfs', source: 'rootfs', target: '', flags: MS_NODEV, data: tmpfsOwner(opts), private: true });
      steps.push(
        mountOf(p, dev(p), target, rw, opts, {
          ...(p.designator === 'root' ? { private: true } : {}),
          ...(p.designator === 'esp' ? { fallback: 'boot' } : {}),
        }),
      );
    }
    return steps;
  }

  // -x: TARGET gets a staging tmpfs with lower/<d> (the partitions, read-only), upper/<d> and work/<d>; the overlays
  // are assembled at root/ and root/ is then moved over the staging tmpfs, which stays below it, unreachable
  steps.push({ op: 'tmpfs', source: 'nspawn-image-ephemeral', target: '', flags: MS_NODEV, data: 'mode=0755', private: true });
  for (const d of ['lower', 'upper', 'work', 'root']) steps.push({ op: 'mkdir', target: d, mode: 0o755 });
  for (const p of parts) {
    steps.push(mountOf(p, dev(p), `lower/${p.designator}`, false, opts, { mkdir: true }));
    steps.push({ op: 'mkdir', target: `upper/${p.designator}`, mode: 0o755 });
    steps.push({ op: 'mkdir', target: `work/${p.designator}`, mode: 0o755 });
  }
  // an image with only /usr: its root is a tmpfs of its own, writable anyway
  if (!img.partitions.root) steps.push({ op: 'tmpfs', source: 'rootfs', target: 'root', flags: MS_NODEV, data: tmpfsOwner(opts) });
  for (const p of parts) {
    const target = targetOf(p.designator);
    steps.push({
      op: 'overlay',
      partition: p.designator,
      target: target === '' ? 'root' : `root/${target}`,
      lower: `lower/${p.designator}`,
      upper: `upper/${p.designator}`,
      work: `work/${p.designator}`,
      flags: MS_NODEV,
      mkdir: target !== '',
    });
  }
  steps.push({ op: 'move', from: 'root', target: '' });
  return steps;
}
