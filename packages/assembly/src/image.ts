/**
 * -i/--image: a disk image as a run's root, through @nspawn/image. At setup the image is opened (its lock, the
 * dissection, the image policy, one AUTOCLEAR loop device per partition, fsck), its root and /usr file systems are
 * mounted detached for Node to read (the plan's decisions, --user, -b's os-release, the machine ID) as the container
 * mounts them, so that the container's mounts share their superblocks (one mount of each file system per run, not
 * two: @nspawn/image's shared view), and its mounts
 * go into the plan as data: the helper makes them in the container's mount namespace (native/image.c). Node keeps
 * the loop devices and the lock open for the run (or hands them to the helper with a hand-over), so whatever way the run
 * ends — exit, failure, SIGTERM, kill -9 of nspawn — the descriptors close, the container's namespace and its mounts
 * go with the container, and the kernel detaches the loop devices.
 */
import { mkdirSync } from 'node:fs';
import type { ImageSys, ImageView, MountStep, OpenedImage } from '@nspawn/image';
import {
  ContainerError,
  type ContainerConfig,
  type ContainerRun,
  IMAGE_ROOT_DIRECTORY,
  type ImageMountStep,
  imageTree,
  verifyImageTree,
} from '@nspawn/runtime';
import { addonImageSys } from './image-sys.js';
import { setRunImage } from './image-registry.js';

type ImageModule = typeof import('@nspawn/image');
let imageModule: Promise<ImageModule> | undefined;
// loaded by the first -i start only (nspawn's bundle keeps it in a file of its own: apps/cli/scripts/bundle.mjs)
const loadImage = () => (imageModule ??= import('@nspawn/image'));

const NONE = { source: '', fstype: '', data: '', flags: 0, mode: 0, mkdir: false };

/** A step of @nspawn/image's plan as the helper takes it (ImageMountStep). */
export function imageStepToWire(s: MountStep): ImageMountStep {
  const none = NONE;
  switch (s.op) {
    case 'mount':
      return {
        ...none,
        op: 'mount',
        source: s.device.path,
        target: s.target,
        fstype: s.fstype,
        data: s.data,
        flags: s.flags,
        mkdir: s.mkdir,
        ...(s.idmap ? { idmap: true } : {}),
      };
    case 'tmpfs':
      return { ...none, op: 'tmpfs', source: s.source, target: s.target, fstype: 'tmpfs', data: s.data, flags: s.flags };
    case 'mkdir':
      return { ...none, op: 'mkdir', target: s.target, mode: s.mode, mkdir: true };
    case 'overlay':
      return { ...none, op: 'overlay', target: s.target, fstype: 'overlay', data: `lowerdir=${s.lower},upperdir=${s.upper},workdir=${s.work}`, flags: s.flags, mkdir: s.mkdir };
    case 'move':
      return { ...none, op: 'move', source: s.from, target: s.target };
  }
}

/**
 * The plan's steps as the helper takes them, with the barrier where systemd 252 applies --pivot-root= and --volatile=:
 * outer_child() mounts the image's root and /usr (DISSECT_IMAGE_MOUNT_ROOT_ONLY), pivots, applies the volatile
 * mode, then mounts the other partitions (DISSECT_IMAGE_MOUNT_NON_ROOT_ONLY) in the root it then has. The overlays
 * of -x are assembled in one go (their staging tmpfs is gone from reach once the root is moved over it): the barrier
 * follows them.
 */
export function imageStepsToWire(steps: readonly MountStep[]): ImageMountStep[] {
  const wire = steps.map(imageStepToWire);
  const overlaid = steps.some((s) => s.op === 'overlay');
  let at = wire.length;
  if (!overlaid) {
    const rest = steps.findIndex((s) => s.op === 'mount' && s.partition !== 'root' && s.partition !== 'usr');
    if (rest >= 0) at = rest;
  }
  wire.splice(at, 0, { ...NONE, op: 'barrier', target: '' });
  return wire;
}

/** The image of one run, open from setup to teardown. */
export interface RunImage {
  readonly opened: OpenedImage;
  /**
   * before the container mounts the image: closes a view that is not shared (a read-write mount would wait for its
   * read-only superblock to go); a shared one stays open, its file systems are the container's
   */
  closeView(): void;
  /** the view's descriptors for the helper to hold after a hand-over (FD_CLOEXEC cleared), none when it is closed */
  keepViewAcrossExec(): number[];
  /** opens the view again (for the next boot's plan) and points cfg.image.view at it */
  reopenView(): void;
  /**
   * the steps for the helper (cfg.image.steps), for a run with USERNS (-U: the container's range; IDMAP: its file
   * systems as idmapped mounts, where they take no uid=/gid=)
   */
  steps(userns?: { shift: number; idmap: boolean }): ImageMountStep[];
  /**
   * --private-users-ownership=chown on an image (systemd's recursive_chown() on the mounted image): each writable
   * partition mounted detached and read-write (the read-only view closed meanwhile) is given to CHOWN, then
   * unmounted. Refused for -x's overlay (the writes would go nowhere).
   */
  chown(chown: (dir: string) => void): void;
  /** closes the view, the loop devices and the lock */
  close(): Promise<void>;
}

export interface OpenRunImageOptions {
  env: NodeJS.ProcessEnv;
  /** -x's way: 'overlay' (default: the writes in a tmpfs) or 'copy' (systemd's copy beside the image) */
  ephemeral?: 'overlay' | 'copy';
}

/**
 * Opens CFG.image for RUN and fills in its mounts and view; checks its tree as prepareContainer() checks a directory's.
 * Throws a ContainerError (one line naming the image) and leaves nothing open when it cannot.
 */
export async function openRunImage(run: ContainerRun, opts: OpenRunImageOptions): Promise<RunImage> {
  const cfg: ContainerConfig = run.cfg;
  const spec = cfg.image;
  if (!spec) throw new Error('openRunImage: the run has no image');
  const { ImageError, mountedPartitions, nativeArchitecture, openImage, openImageView, realSys } = await loadImage();
  // the system calls through the runtime's addon, without koffi (src/image-sys.ts)
  const calls = addonImageSys(realSys);
  const imageSys: ImageSys = calls?.sys ?? realSys;
  let opened: OpenedImage;
  try {
    opened = await openImage(spec.path, {
      ...(calls ? { sys: calls.sys, lockSys: calls.lockSys } : {}),
      readOnly: cfg.readOnly,
      ephemeral: cfg.ephemeral === true ? (opts.ephemeral ?? 'overlay') : false,
      ...(cfg.imagePolicy !== undefined ? { imagePolicy: cfg.imagePolicy } : {}),
      env: opts.env,
    });
  } catch (e) {
    if (e instanceof ImageError) throw new ContainerError(e.message);
    throw e;
  }
  let view: ImageView | undefined;
  try {
    for (const w of opened.warnings) run.log(w);
    // systemd 252 uses a root (or /usr) of another architecture when the image has none of this machine's: so do we,
    // and say so, since its programs then fail to execute unless the host can run them (binfmt_misc)
    const sys = opened.dissected.partitions.root ?? opened.dissected.partitions.usr;
    const archs = nativeArchitecture();
    if (sys?.architecture !== undefined && sys.architecture !== archs.native && sys.architecture !== archs.secondary)
      run.log(
        `${opened.path}: the ${sys.designator} partition is for architecture ${sys.architecture}, not this machine's ${archs.native ?? process.arch}; its programs may fail to execute (Exec format error).`,
      );
    view = openImageView(opened, { shared: true, sys: imageSys });
    spec.steps = imageStepsToWire(opened.plan());
    spec.view = viewPaths(view);
    verifyImageTree(cfg, imageTree(spec.view));
    mkdirSync(IMAGE_ROOT_DIRECTORY, { recursive: true, mode: 0o755 });
  } catch (e) {
    view?.close();
    await opened.close();
    if (e instanceof ImageError) throw new ContainerError(e.message);
    throw e;
  }
  let v: ImageView | undefined = view;
  const reopen = openImageView;
  const runImage: RunImage = {
    opened,
    closeView() {
      if (v?.shared) return;
      v?.close();
      v = undefined;
    },
    keepViewAcrossExec: () => v?.keepAcrossExec() ?? [],
    reopenView() {
      if (v) return;
      v = reopen(opened, { shared: true, sys: imageSys });
      spec.view = viewPaths(v);
    },
    steps(userns) {
      if (!userns) return imageStepsToWire(opened.plan());
      return imageStepsToWire(opened.plan({ uidShift: userns.shift, idmap: userns.idmap, inUserNamespace: true }));
    },
    chown(chown) {
      // (-x's overlay: nothing to do when every partition is read-only, which recurse_fd() skips)
      if (opened.ephemeral === 'overlay' && !opened.readOnly && mountedPartitions(opened.dissected).some((p) => p.rw))
        throw new ContainerError(`${opened.path}: changing the owner of its files (--private-users-ownership=chown) is not possible on -x's overlay; NSPAWN_EPHEMERAL=copy runs -x on a copy of the image as systemd does.`);
      // the read-only view goes first: the kernel keeps one superblock per device, read-only or not
      const hadView = v !== undefined;
      v?.close();
      v = undefined;
      const w = reopen(opened, { writable: true, sys: imageSys });
      try {
        // each partition in turn (recursive_chown() crosses into them: ours stops at mount points); read-only ones
        // are skipped, as recurse_fd() skips a read-only file system
        // (PATH/.: the tree behind the magic link, which O_NOFOLLOW would refuse)
        for (const p of w.partitions ?? []) if (!p.readOnly) chown(`${p.path}/.`);
      } finally {
        w.close();
        if (hadView) {
          v = reopen(opened, { shared: true, sys: imageSys });
          spec.view = viewPaths(v);
        }
      }
    },
    async close() {
      setRunImage(cfg, undefined);
      v?.close();
      v = undefined;
      await opened.close();
    },
  };
  setRunImage(cfg, runImage);
  return runImage;
}

const viewPaths = (view: ImageView) => ({ ...(view.root !== undefined ? { root: view.root } : {}), ...(view.usr !== undefined ? { usr: view.usr } : {}) });
