/**
 * Helpers shared by the root tests of several packages (runtime, assembly, uidrange, the CLI): a busybox tree in a
 * temp dir built by the script the README uses, the mount points below a path, files to give a container as its
 * stdio, and a listing of a tree to prove it unchanged. Test code only: no package publishes or bundles this.
 */
import { execaSync } from 'execa';
import { closeSync, lstatSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's top directory. */
export const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
/** The `nspawn` command of the checkout (apps/cli). */
export const NSPAWN_BIN = join(REPO, 'apps/cli/bin/nspawn');
/** The script that builds a busybox OS tree (the README's demo tree). */
export const MAKE_BUSYBOX_TREE = join(REPO, 'scripts/make-busybox-tree.sh');

/** Fails the calling suite loudly when not root: root tests need the real kernel, they never skip. */
export function requireRoot(why = 'they create namespaces and mounts'): void {
  if (process.getuid?.() !== 0) throw new Error(`root integration tests must run as root (${why})`);
}

/** A busybox OS tree at ROOT (which must not exist), built by scripts/make-busybox-tree.sh. */
export function busyboxTree(root: string): string {
  execaSync(MAKE_BUSYBOX_TREE, [root], { stdio: ['ignore', 'ignore', 'inherit'] });
  return root;
}

/**
 * Mount points of this process's mount namespace at or below PATH, in mountinfo's order (a mount before those made on
 * top of it). MOUNTINFO defaults to /proc/self/mountinfo; octal escapes are undone.
 */
export function mountsUnder(path: string, mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string[] {
  return mountinfo
    .split('\n')
    .map((l) => (l.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((mp) => mp === path || mp.startsWith(`${path}/`));
}

/** Removes a directory a test made, refusing (throwing) while anything is mounted at or below it. */
export function removeTestDir(dir: string): void {
  const left = mountsUnder(dir);
  if (left.length > 0) throw new Error(`mounts left under ${dir}: ${left.join(', ')}`);
  rmSync(dir, { recursive: true, force: true });
}

/**
 * A fresh busybox tree in a temp dir of /var/tmp. The tree's directory is named like the temp dir, so each tree has
 * a machine name of its own (test files run in parallel, and two containers of one name cannot run at once).
 */
export function makeTree(prefix = 'nspawn-test-'): { dir: string; root: string; cleanup: () => void } {
  const dir = mkdtempSync(join('/var/tmp', prefix));
  const root = busyboxTree(join(dir, basename(dir)));
  return { dir, root, cleanup: () => removeTestDir(dir) };
}

/** Files in DIR to hand to a container as stdin (/dev/null), stdout and stderr, read back afterwards. */
export function captureFiles(dir: string): { stdio: [number, number, number]; read: () => { out: string; err: string }; close: () => void } {
  const inFd = openSync('/dev/null', 'r');
  const outPath = join(dir, 'out.txt');
  const errPath = join(dir, 'err.txt');
  const outFd = openSync(outPath, 'w');
  const errFd = openSync(errPath, 'w');
  return {
    stdio: [inFd, outFd, errFd],
    read: () => ({ out: readFileSync(outPath, 'utf8'), err: readFileSync(errPath, 'utf8') }),
    close: () => {
      for (const fd of [inFd, outFd, errFd]) closeSync(fd);
    },
  };
}

/**
 * Every entry of a tree, sorted: path, mode, owner, and a symlink's target, "dir", or the first 16 hex digits of a
 * file's SHA-256. Two listings are equal when the tree was left alike.
 */
export function treeListing(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    const p = join(dir, rel);
    const st = lstatSync(p);
    const head = `${rel || '.'} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
    if (st.isSymbolicLink()) out.push(`${head} -> ${readlinkSync(p)}`);
    else if (st.isDirectory()) {
      out.push(`${head} dir`);
      for (const n of readdirSync(p).sort()) walk(rel ? `${rel}/${n}` : n);
    } else out.push(`${head} ${createHash('sha256').update(readFileSync(p)).digest('hex').slice(0, 16)}`);
  };
  walk('');
  return out;
}

export { enterReferenceCgroup, keepUnitHierarchies, referenceCgroupPath, referenceCommand, removeCgroupTree, removeReferenceCgroup, SYSTEMD_NSPAWN } from './reference-cgroup.js';
