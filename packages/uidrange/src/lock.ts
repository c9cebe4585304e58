/**
 * The range lock of systemd-nspawn: /run/systemd/nspawn-uid/<base>, an exclusive open-file-description lock
 * (make_lock_file(): F_OFD_SETLK, flock() where the kernel has none), taken through koffi on a descriptor this
 * process opens and keeps. The lock belongs to that open file description: it lasts until the descriptor is closed
 * or the process ends (kill -9 included), and it survives an execve() once keepAcrossExec() cleared FD_CLOEXEC
 * (nspawn handing its run over to the runtime helper, which then holds it and removes the file at the end).
 * Released by unlinking, then closing, as release_lock_file() does.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { makeLockFile, type LockSys } from '@nspawn/syscall';
import { UidRangeError } from './candidates.js';
import { keepOnExec, ofdLockExclusive, SysError } from './sys.js';

export type { LockSys };

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

/** The two calls a lock needs that Node lacks, by default @nspawn/syscall's (koffi). */
const koffiLockSys: LockSys = { ofdLockExclusive, keepOnExec };

/**
 * tries to take the lock at `path` (@nspawn/syscall's make_lock_file()): a handle, or undefined when another
 * process holds it. SYS: how to take it (a caller with its own OFD lock call, e.g. @nspawn/runtime's addon, spares
 * koffi's loading).
 */
export function tryLockFile(path: string, sys: LockSys = koffiLockSys): RangeLock | undefined {
  let l;
  try {
    l = makeLockFile(path, { sys });
  } catch (e) {
    throw new UidRangeError(`Failed to lock ${path}: ${e instanceof SysError ? e.code : ((e as { code?: string }).code ?? (e as Error).message)}`, 'EIO');
  }
  if (!l) return undefined;
  return {
    path,
    fd: l.fd,
    keepAcrossExec() {
      try {
        return l.keepAcrossExec();
      } catch (e) {
        if ((e as SysError).code === 'EINVAL') throw new UidRangeError(`${path}: the lock was released`, 'EINVAL');
        throw e;
      }
    },
    release: () => l.release(),
  };
}

export function lockPathFor(dir: string, base: number): string {
  return join(dir, String(base));
}

export function ensureLockDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
}
