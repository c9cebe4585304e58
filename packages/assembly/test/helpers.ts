/** Shared helpers for the root integration tests: busybox trees in temp dirs, output capture, leak checks. */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
export const NSPAWN_BIN = join(REPO, 'apps/cli/bin/nspawn');

/** Fails the calling suite loudly when not root: these tests need the real kernel. */
export function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new Error('root integration tests must run as root (they create namespaces and mounts)');
}

/**
 * A fresh busybox OS tree in a temp dir, built by the same script the README uses. The tree's directory is named
 * like the temp dir, so each tree has a machine name of its own (test files run in parallel, and two containers of
 * one name cannot run at the same time).
 */
export function makeTree(prefix = 'nspawn-test-'): { dir: string; root: string; cleanup: () => void } {
  const dir = mkdtempSync(join('/var/tmp', prefix));
  const root = join(dir, basename(dir));
  execFileSync(join(REPO, 'scripts/make-busybox-tree.sh'), [root], { stdio: ['ignore', 'ignore', 'inherit'] });
  return {
    dir,
    root,
    cleanup: () => {
      const left = mountsUnder(dir);
      if (left.length > 0) throw new Error(`mounts left under ${dir}: ${left.join(', ')}`);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Mount points of the host (this process's mount namespace) at or below a path. */
export function mountsUnder(path: string, mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string[] {
  return mountinfo
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((mp) => mp === path || mp.startsWith(`${path}/`));
}

/** Files to hand to the container as stdout/stderr, read back afterwards. */
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
