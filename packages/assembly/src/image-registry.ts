/**
 * Which image a run has open (set by the storage extension's src/image.ts, read by the other extensions: -U's chown).
 * A module of its own with no imports but types, so that reading it does not load src/image.ts, which nspawn's bundle
 * keeps in a file loaded only by an -i start.
 */
import type { ContainerConfig } from '@nspawn/runtime';
import type { RunImage } from './image.js';

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
