/**
 * Carries out a mount plan (plan.ts) in this process's mount namespace, below WHERE. Every target is resolved inside
 * the mount root with openat2(RESOLVE_IN_ROOT), so a symlink in the image (`usr -> /etc`) can never put a mount
 * outside it, and mounted through /proc/self/fd/N, as systemd's mount_nofollow() does; a missing mount point is made
 * (mode 0755) component by component the same way. On failure everything mounted so far is detached again.
 */
import { closeSync, readdirSync, statSync } from 'node:fs';
import { ImageError } from './errors.js';
import type { MountStep } from './plan.js';
import {
  errCode,
  type ImageSys,
  MNT_DETACH,
  MS_MOVE,
  MS_PRIVATE,
  O_CLOEXEC,
  O_DIRECTORY,
  O_PATH,
  RESOLVE_IN_ROOT,
  RESOLVE_NO_MAGICLINKS,
  realSys,
} from './sys.js';

const AT_FDCWD = -100;
const fdPath = (fd: number) => `/proc/self/fd/${fd}`;

/** The mounts made below a directory; unmount() detaches them all (idempotent). */
export interface MountedTree {
  /** the directory the image is mounted on */
  readonly where: string;
  /** the targets mounted, relative to WHERE, in order ('' is WHERE) */
  readonly targets: readonly string[];
  unmount(): void;
}

function openDir(sys: ImageSys, rootFd: number, rel: string): number {
  return sys.openat2(rootFd, rel === '' ? '.' : rel, O_PATH | O_DIRECTORY | O_CLOEXEC, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
}

/** The directory REL inside the root ROOTFD, made (0755) where missing when MKDIR; an O_PATH descriptor. */
function resolveIn(sys: ImageSys, rootFd: number, rel: string, mkdir: boolean, mode = 0o755): number {
  try {
    return openDir(sys, rootFd, rel);
  } catch (e) {
    if (!mkdir || errCode(e) !== 'ENOENT') throw e;
  }
  const parts = rel.split('/').filter(Boolean);
  let dir = openDir(sys, rootFd, '');
  try {
    for (let i = 0; i < parts.length; i++) {
      const prefix = parts.slice(0, i + 1).join('/');
      let next: number;
      try {
        next = openDir(sys, rootFd, prefix);
      } catch (e) {
        if (errCode(e) !== 'ENOENT') throw e;
        try {
          sys.mkdirat(dir, parts[i]!, mode);
        } catch (m) {
          if (errCode(m) !== 'EEXIST') throw m; // made meanwhile, or a symlink dangling inside the root
        }
        next = openDir(sys, rootFd, prefix);
      }
      closeSync(dir);
      dir = next;
    }
    return dir;
  } catch (e) {
    closeSync(dir);
    throw e;
  }
}

function describe(step: MountStep): string {
  switch (step.op) {
    case 'mount':
      return `the ${step.partition} partition (${step.fstype}, ${step.device.path})`;
    case 'overlay':
      return `the overlay of the ${step.partition} partition`;
    case 'tmpfs':
      return `a tmpfs (${step.source})`;
    case 'mkdir':
      return `the directory ${step.target}`;
    case 'move':
      return `the assembled root`;
  }
}

/** systemd's messages for mount(2) errors (dissected_image_mount_and_warn()). */
function mountFailure(code: string | undefined): string {
  switch (code) {
    case 'EBUSY':
      return 'File system already mounted elsewhere.';
    case 'ENODEV':
    case 'EAFNOSUPPORT':
      return 'File system type not supported or not known.';
    case 'EUCLEAN':
      return 'File system check on image failed.';
    default:
      return `Failed to mount image: ${code ?? 'unknown error'}.`;
  }
}

/**
 * Mounts STEPS below WHERE (an existing directory) in this mount namespace. IMAGE names the image in errors. Returns
 * the mounted tree; throws an ImageError (after undoing what was mounted) when a step fails.
 */
export function executePlan(steps: readonly MountStep[], where: string, image: string, sys: ImageSys = realSys): MountedTree {
  // idmapped mounts need a user namespace carrying the range: the runtime's helper makes them, not this executor
  if (steps.some((s) => s.op === 'mount' && s.idmap))
    throw new ImageError(`${image}: idmapped mounts (a plan with idmap) are made by the container runtime, not by executePlan().`, 'EOPNOTSUPP', image);
  const baseDev = statSync(where).dev;
  let stacked = 0; // mounts stacked on WHERE itself
  const targets: string[] = [];
  let done = false;
  const unmount = () => {
    if (done) return;
    done = true;
    // detaching the top mount at WHERE takes everything below it; the staging tmpfs of -x lies under the root
    for (let i = 0; i < stacked + 1; i++) {
      if (statSync(where).dev === baseDev) break;
      try {
        sys.umount2(where, MNT_DETACH);
      } catch {
        break;
      }
    }
  };
  const tree: MountedTree = { where, targets, unmount };

  const withRoot = <T>(fn: (rootFd: number) => T): T => {
    const rootFd = sys.openat2(AT_FDCWD, where, O_PATH | O_DIRECTORY | O_CLOEXEC, 0, 0);
    try {
      return fn(rootFd);
    } finally {
      closeSync(rootFd);
    }
  };
  const mountAt = (rootFd: number, rel: string, mkdir: boolean, fn: (target: string) => void) => {
    const fd = resolveIn(sys, rootFd, rel, mkdir);
    try {
      fn(fdPath(fd));
    } finally {
      closeSync(fd);
    }
    if (rel === '') stacked++;
    targets.push(rel);
  };
  const makePrivate = (rootFd: number, rel: string) => {
    const fd = openDir(sys, rootFd, rel);
    try {
      sys.mount(null, fdPath(fd), null, MS_PRIVATE, null);
    } finally {
      closeSync(fd);
    }
  };

  for (const step of steps) {
    try {
      withRoot((rootFd) => {
        switch (step.op) {
          case 'mkdir': {
            closeSync(resolveIn(sys, rootFd, step.target, true, step.mode));
            return;
          }
          case 'tmpfs':
            mountAt(rootFd, step.target, true, (t) => sys.mount(step.source, t, 'tmpfs', step.flags, step.data || null));
            if (step.private) withRoot((r) => makePrivate(r, step.target));
            return;
          case 'mount': {
            let rel = step.target;
            if (step.fallback !== undefined) rel = espTarget(sys, rootFd, step.target, step.fallback, targets);
            mountAt(rootFd, rel, step.mkdir, (t) => sys.mount(step.device.path, t, step.fstype, step.flags, step.data || null));
            if (step.private) withRoot((r) => makePrivate(r, rel));
            return;
          }
          case 'overlay': {
            const dirs = [step.lower, step.upper, step.work].map((d) => openDir(sys, rootFd, d));
            try {
              const [l, u, w] = dirs.map(fdPath);
              mountAt(rootFd, step.target, step.mkdir, (t) =>
                sys.mount('overlay', t, 'overlay', step.flags, `lowerdir=${l},upperdir=${u},workdir=${w}`),
              );
            } finally {
              for (const d of dirs) closeSync(d);
            }
            return;
          }
          case 'move': {
            const from = openDir(sys, rootFd, step.from);
            try {
              mountAt(rootFd, step.target, false, (t) => sys.mount(fdPath(from), t, null, MS_MOVE, null));
            } finally {
              closeSync(from);
            }
            return;
          }
        }
      });
    } catch (e) {
      unmount();
      const code = errCode(e);
      const why =
        step.op === 'mkdir' || code === 'ENOENT' || code === 'ENOTDIR' || code === 'EROFS'
          ? `cannot make or open ${step.target === '' ? 'the root' : `/${step.target}`} (${code ?? String(e)})`
          : mountFailure(code);
      throw new ImageError(`${image}: mounting ${describe(step)}: ${why}`, code ?? 'EIO', image);
    }
  }
  return tree;
}

/**
 * systemd's place for the ESP: /efi when it exists; else /boot when it is an empty directory and the XBOOTLDR was
 * not mounted there; else /efi, made.
 */
function espTarget(sys: ImageSys, rootFd: number, target: string, fallback: string, mounted: readonly string[]): string {
  try {
    closeSync(openDir(sys, rootFd, target));
    return target;
  } catch (e) {
    if (errCode(e) !== 'ENOENT') throw e;
  }
  if (!mounted.includes(fallback)) {
    let fd: number | undefined;
    try {
      fd = openDir(sys, rootFd, fallback);
      if (readdirSync(fdPath(fd)).length === 0) return fallback;
    } catch {
      // no /boot: /efi then
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }
  return target;
}
