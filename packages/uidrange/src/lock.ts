/**
 * The range lock of systemd-nspawn: /run/systemd/nspawn-uid/<base>, an exclusive open-file-description lock
 * (make_lock_file(): F_OFD_SETLK, flock() where the kernel has none), taken through koffi on a descriptor this
 * process opens and keeps. The lock belongs to that open file description: it lasts until the descriptor is closed
 * or the process ends (kill -9 included), and it survives an execve() once keepAcrossExec() cleared FD_CLOEXEC
 * (nspawn handing its run over to the runtime helper, which then holds it and removes the file at the end).
 * Released by unlinking, then closing, as release_lock_file() does.
 */
import { closeSync, constants, fstatSync, mkdirSync, openSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { UidRangeError } from './candidates.js';
import { keepOnExec, ofdLockExclusive, SysError } from './sys.js';

export interface RangeLock {
  readonly path: string;
  /** the locked descriptor (close-on-exec until keepAcrossExec()) */
  readonly fd?: number;
  /**
   * clears FD_CLOEXEC on the descriptor so that the lock outlives an execve() of this process (and goes to the
   * program executed, e.g. the runtime helper's `lockfd`); returns the descriptor
   */
  keepAcrossExec?(): number;
  /** unlinks the lock file and closes the descriptor; idempotent */
  release(): void;
}

/** The two calls a lock needs that Node lacks; default: through koffi (sys.ts). */
export interface LockSys {
  /** an exclusive OFD lock on FD: true, or false when another holds it; throws on any other error */
  ofdLockExclusive(fd: number): boolean;
  /** clears FD_CLOEXEC on FD */
  keepOnExec(fd: number): void;
}
const koffiLockSys: LockSys = { ofdLockExclusive, keepOnExec };

/**
 * tries to take the lock at `path`: a handle, or undefined when another process holds it. SYS: how to take it (a
 * caller with its own OFD lock call, e.g. @nspawn/runtime's addon, spares koffi's loading).
 */
export function tryLockFile(path: string, sys: LockSys = koffiLockSys): RangeLock | undefined {
  for (;;) {
    const fd = openSync(path, constants.O_CREAT | constants.O_RDWR | constants.O_NOFOLLOW | constants.O_NOCTTY, 0o600);
    let taken: boolean;
    try {
      taken = sys.ofdLockExclusive(fd);
    } catch (e) {
      closeSync(fd);
      throw new UidRangeError(`Failed to lock ${path}: ${e instanceof SysError ? e.code : ((e as { code?: string }).code ?? (e as Error).message)}`, 'EIO');
    }
    if (!taken) {
      closeSync(fd);
      return undefined;
    }
    // the previous owner may have unlinked the file between our open and our lock: then the lock is worthless
    if (fstatSync(fd).nlink === 0) {
      closeSync(fd);
      continue;
    }
    let held = true;
    return {
      path,
      fd,
      keepAcrossExec() {
        if (!held) throw new UidRangeError(`${path}: the lock was released`, 'EINVAL');
        sys.keepOnExec(fd);
        return fd;
      },
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
}

export function lockPathFor(dir: string, base: number): string {
  return join(dir, String(base));
}

export function ensureLockDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
}
