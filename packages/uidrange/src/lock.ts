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
  release(): void;
}

/** tries to take the lock at `path`: a handle, or undefined when another process holds it */
export function tryLockFile(path: string): RangeLock | undefined {
  for (;;) {
    const fd = openSync(path, constants.O_CREAT | constants.O_RDWR | constants.O_NOFOLLOW | constants.O_NOCTTY, 0o600);
    let r;
    try {
      r = runTool(['lock'], ['ignore', 'ignore', 'pipe', fd]);
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
    if (fstatSync(fd).nlink > 0) {
      let held = true;
      return {
        path,
        release() {
          if (!held) return;
          held = false;
          try {
            unlinkSync(path);
          } catch {
            /* already gone */
          }
          closeSync(fd);
        },
      };
    }
    closeSync(fd);
  }
}

export function lockPathFor(dir: string, base: number): string {
  return join(dir, String(base));
}

export function ensureLockDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
}
