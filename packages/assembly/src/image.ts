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

type ImageModule = typeof import('@nspawn/image');
let imageModule: Promise<ImageModule> | undefined;
// loaded by the first -i start only (nspawn's bundle keeps it in a file of its own: apps/cli/scripts/bundle.mjs)
const loadImage = () => (imageModule ??= import('@nspawn/image'));

/** A step of @nspawn/image's plan as the helper takes it (ImageMountStep). */
export function imageStepToWire(s: MountStep): ImageMountStep {
  const none = { source: '', fstype: '', data: '', flags: 0, mode: 0, mkdir: false };
  switch (s.op) {
    case 'mount':
      return { ...none, op: 'mount', source: s.device.path, target: s.target, fstype: s.fstype, data: s.data, flags: s.flags, mkdir: s.mkdir };
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
  const { ImageError, nativeArchitecture, openImage, openImageView, realSys } = await loadImage();
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
    spec.steps = opened.plan().map(imageStepToWire);
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
  return {
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
    async close() {
      v?.close();
      v = undefined;
      await opened.close();
    },
  };
}

const viewPaths = (view: ImageView) => ({ ...(view.root !== undefined ? { root: view.root } : {}), ...(view.usr !== undefined ? { usr: view.usr } : {}) });
