/**
 * Which image a run has open (set by the storage extension's src/image.ts, read by the other extensions: -U's chown).
 * A module of its own with no imports but types (and RunImage, the interface of such an image), so that reading it does not load src/image.ts, which nspawn's bundle
 * keeps in a file loaded only by an -i start.
 */
import type { ContainerConfig } from '@nspawn/runtime';
import type { ImageMountStep } from '@nspawn/runtime';
import type { OpenedImage } from '@nspawn/image';

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

const runImages = new WeakMap<ContainerConfig, RunImage>();

/** The image opened for the run of CFG (by the storage extension), for the other extensions (-U's chown). */
export function runImageOf(cfg: ContainerConfig): RunImage | undefined {
  return runImages.get(cfg);
}

/** Notes (IMAGE) or forgets (undefined) the image of the run of CFG. */
export function setRunImage(cfg: ContainerConfig, image: RunImage | undefined): void {
  if (image) runImages.set(cfg, image);
  else runImages.delete(cfg);
}
