/**
 * The range lock of systemd-nspawn: /run/systemd/nspawn-uid/<base>, an exclusive open-file-description lock
 * (make_lock_file(): F_OFD_SETLK, LOCK_EX|LOCK_NB). Node has no fcntl(), so the tool takes the lock on a file
 * description Node opened and keeps: the lock belongs to that description and lasts until Node closes it or dies
 * (kill -9 included). Released by unlinking, then closing, as release_lock_file() does.
 */
import { closeSync, constants, fstatSync, mkdirSync, openSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { runTool } from './tool.js';
import { UidRangeError } from './candidates.js';

export interface RangeLock {
  readonly path: string;
  /** the PID of the holder process (with holdFor) */
  readonly holder?: number;
  release(): void;
}

export interface LockOptions {
  /**
   * Also hold the lock in a small holder process until process `holdFor` ends (then the holder removes the file),
   * so that the lock outlives an execve() of that process (nspawn handing over to its helper). release() ends the
   * holder.
   */
  holdFor?: number;
}

/** tries to take the lock at `path`: a handle, or undefined when another process holds it */
export function tryLockFile(path: string, opts: LockOptions = {}): RangeLock | undefined {
  for (;;) {
    const fd = openSync(path, constants.O_CREAT | constants.O_RDWR | constants.O_NOFOLLOW | constants.O_NOCTTY, 0o600);
    let r;
    try {
      const args = opts.holdFor !== undefined ? ['lock', '--hold-for', String(opts.holdFor), path] : ['lock'];
      r = runTool(args, ['ignore', opts.holdFor !== undefined ? 'pipe' : 'ignore', 'pipe', fd]);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    if (r.status === 75) {
      closeSync(fd);
      return undefined;
    }
    if (r.status !== 0) {
      closeSync(fd);
      throw new UidRangeError(`Failed to lock ${path}: ${r.stderr || `exit ${r.status}`}`, 'EIO');
    }
    // the previous owner may have unlinked the file between our open and our lock: then the lock is worthless
    const holder = opts.holdFor !== undefined ? Number(r.stdout.trim()) : undefined;
    const endHolder = () => {
      if (holder !== undefined && holder > 0)
        try {
          process.kill(holder, 'SIGTERM');
        } catch {
          /* gone with its owner */
        }
    };
    if (fstatSync(fd).nlink > 0) {
      let held = true;
      return {
        path,
        ...(holder !== undefined ? { holder } : {}),
        release() {
          if (!held) return;
          held = false;
          try {
            unlinkSync(path);
          } catch {
            /* already gone */
          }
          endHolder();
          closeSync(fd);
        },
      };
    }
    endHolder();
    closeSync(fd);
  }
}

export function lockPathFor(dir: string, base: number): string {
  return join(dir, String(base));
}

export function ensureLockDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
}
