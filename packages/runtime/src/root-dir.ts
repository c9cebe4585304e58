/**
 * --pivot-root=NEW[:OLD] (setup_pivot_root() of systemd-nspawn 252): the container's root is NEW inside the tree. What
 * the host side reads or makes in the root (the tree view, the base file system, the journal's directories, "+"
 * sources of --bind=/--overlay=) is then under DIRECTORY/NEW, looked up without leaving the tree; the helper pivots
 * (native/pivot.c).
 */
import { chaseInRoot } from './host.js';

/** The container root's host path: the directory, or NEW inside it with --pivot-root. */
export function rootDirectory(cfg: { directory: string; pivotRoot?: { newRoot: string } }): string {
  if (!cfg.pivotRoot) return cfg.directory;
  const base = cfg.directory === '/' ? '' : cfg.directory;
  return chaseInRoot(cfg.directory, cfg.pivotRoot.newRoot) ?? `${base}${cfg.pivotRoot.newRoot}`;
}
