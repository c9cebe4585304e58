/**
 * Lock files as systemd's make_lock_file() takes them: an open-file-description (OFD) lock over the whole file
 * (F_OFD_SETLK, or F_OFD_SETLKW to wait), falling back to flock() on a kernel without OFD locks (EINVAL), as
 * systemd's lock_generic() does. Both lock the open file description, not the process: the lock lasts until the
 * descriptor is closed (or the process dies, kill -9 included) and survives an execve() once FD_CLOEXEC is cleared.
 * OFD locks and flock() locks do not see each other: with the fallback, only holders that also fell back exclude
 * each other (as with systemd on such a kernel).
 */
import { closeSync, constants as fsc, fstatSync, openSync, unlinkSync } from 'node:fs';
import { errnoName, SysError } from './errors.js';
import { check, errno, libcFn } from './koffi.js';

const F_GETFD = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;
const F_OFD_GETLK = 36;
const F_OFD_SETLK = 37;
const F_OFD_SETLKW = 38;
const F_RDLCK = 0;
const F_WRLCK = 1;
const F_UNLCK = 2;
const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;

const fcntlPtr = () => libcFn('int fcntl(int fd, int cmd, _Inout_ uint8_t *arg)');
const fcntlInt = () => libcFn('int fcntl(int fd, int cmd, intptr_t arg)');
const flockFn = () => libcFn('int flock(int fd, int op)');

/** How a lock is taken: `auto` (OFD, flock() where the kernel has no OFD locks), or one of them only. */
export type LockMethod = 'auto' | 'ofd' | 'flock';

export interface LockOptions {
  /** a shared (read) lock; default exclusive */
  shared?: boolean;
  /** wait for it (F_OFD_SETLKW / flock without LOCK_NB); default: fail at once */
  wait?: boolean;
  /** default `auto` */
  method?: LockMethod;
}

function flockStruct(type: number): Buffer {
  // struct flock: short l_type, short l_whence, off_t l_start, off_t l_len (0: the whole file), pid_t l_pid
  const b = Buffer.alloc(32);
  b.writeInt16LE(type, 0);
  return b;
}

const busy = (code: string) => code === 'EAGAIN' || code === 'EACCES' || code === 'EWOULDBLOCK';

/**
 * Locks the open file description of FD: true when taken, false when another description holds a conflicting
 * lock (never false with `wait`); throws a SysError on any other failure.
 */
export function lockFd(fd: number, opts: LockOptions = {}): boolean {
  const method = opts.method ?? 'auto';
  if (method !== 'flock') {
    const r = Number(fcntlPtr()(fd, opts.wait ? F_OFD_SETLKW : F_OFD_SETLK, flockStruct(opts.shared ? F_RDLCK : F_WRLCK)));
    if (r === 0) return true;
    const e = errno();
    const code = errnoName(e);
    if (busy(code)) return false;
    if (!(code === 'EINVAL' && method === 'auto')) throw new SysError(`lock of fd ${fd}: ${code}`, e, code);
  }
  for (;;) {
    const r = Number(flockFn()(fd, (opts.shared ? LOCK_SH : LOCK_EX) | (opts.wait ? 0 : LOCK_NB)));
    if (r === 0) return true;
    const e = errno();
    const code = errnoName(e);
    if (code === 'EINTR' && opts.wait) continue;
    if (busy(code)) return false;
    throw new SysError(`flock of fd ${fd}: ${code}`, e, code);
  }
}

/**
 * Would a lock on FD conflict with another description's? (F_OFD_GETLK: nothing is taken.) Where the kernel has
 * no OFD locks, a flock() lock is tried and dropped at once.
 */
export function lockHeldElsewhere(fd: number, opts: { shared?: boolean; method?: LockMethod } = {}): boolean {
  const method = opts.method ?? 'auto';
  if (method !== 'flock') {
    const b = flockStruct(opts.shared ? F_RDLCK : F_WRLCK);
    const r = Number(fcntlPtr()(fd, F_OFD_GETLK, b));
    if (r === 0) return b.readInt16LE(0) !== F_UNLCK;
    const code = errnoName(errno());
    if (!(code === 'EINVAL' && method === 'auto')) throw new SysError(`lock test of fd ${fd}: ${code}`, errno(), code);
  }
  if (!lockFd(fd, { shared: opts.shared === true, method: 'flock' })) return true;
  check(flockFn()(fd, LOCK_UN), `flock(LOCK_UN) of fd ${fd}`);
  return false;
}

/** make_lock_file()'s lock: an exclusive OFD lock (flock() where there are none); false when another holds it */
export function ofdLockExclusive(fd: number): boolean {
  return lockFd(fd);
}

/** the same lock, waiting for it */
export function ofdLockWait(fd: number): void {
  lockFd(fd, { wait: true });
}

/** clears FD_CLOEXEC: the descriptor (and the lock on its description) survives an execve() */
export function keepOnExec(fd: number): void {
  check(fcntlInt()(fd, F_SETFD, 0), `fcntl(F_SETFD) of fd ${fd}`);
}

/** whether FD_CLOEXEC is set on FD */
export function isCloseOnExec(fd: number): boolean {
  return (check(fcntlInt()(fd, F_GETFD, 0), `fcntl(F_GETFD) of fd ${fd}`) & FD_CLOEXEC) !== 0;
}

/** The two calls a lock file needs that Node lacks: a caller with its own (e.g. a native addon) spares koffi. */
export interface LockSys {
  /** an exclusive OFD lock on FD: true, or false when another holds it; throws on any other error */
  ofdLockExclusive(fd: number): boolean;
  /** an OFD lock on FD, shared or exclusive, without waiting (optional: without it a shared lock goes through koffi) */
  ofdLock?(fd: number, shared: boolean): boolean;
  /** clears FD_CLOEXEC on FD */
  keepOnExec(fd: number): void;
}

export interface LockFileOptions extends LockOptions {
  /**
   * remove the file on release (systemd's release_lock_file(): by the exclusive holder, or a shared one that can
   * become exclusive); default true. Lock files that must stay (a zone lock) say false.
   */
  unlinkOnRelease?: boolean;
  /** file mode when it is created; default 0600 */
  mode?: number;
  /** takes an exclusive lock (and a shared one, with its ofdLock()) without waiting, in place of lockFd() (the method then is the caller's) */
  sys?: LockSys;
}

export interface LockFile {
  readonly path: string;
  /** the locked descriptor (close-on-exec until keepAcrossExec()) */
  readonly fd: number;
  readonly exclusive: boolean;
  /**
   * clears FD_CLOEXEC so that the lock outlives an execve() of this process (the program executed holds it and
   * must release it as release() would); returns the descriptor
   */
  keepAcrossExec(): number;
  /** unlinks the file (see `unlinkOnRelease`) and closes the descriptor; idempotent */
  release(): void;
}

/**
 * make_lock_file(): opens (creating, never through a symlink) PATH and locks it; retries when the previous holder
 * unlinked the file between our open and our lock. Undefined when another process holds it (never with `wait`).
 */
export function makeLockFile(path: string, opts: LockFileOptions = {}): LockFile | undefined {
  const exclusive = opts.shared !== true;
  const take = (fd: number, ex: boolean, wait: boolean): boolean => {
    if (opts.sys?.ofdLock && !wait) return opts.sys.ofdLock(fd, !ex);
    if (opts.sys && ex && !wait) return opts.sys.ofdLockExclusive(fd);
    return lockFd(fd, { shared: !ex, wait, method: opts.method ?? 'auto' });
  };
  for (;;) {
    const fd = openSync(path, fsc.O_CREAT | fsc.O_RDWR | fsc.O_NOFOLLOW | fsc.O_NOCTTY, opts.mode ?? 0o600);
    let taken: boolean;
    try {
      taken = take(fd, exclusive, opts.wait === true);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    if (!taken) {
      closeSync(fd);
      return undefined;
    }
    // the previous holder may have unlinked the file between our open and our lock: then the lock is worthless
    if (fstatSync(fd).nlink === 0) {
      closeSync(fd);
      continue;
    }
    let held = true;
    let isExclusive = exclusive;
    return {
      path,
      fd,
      get exclusive() {
        return isExclusive;
      },
      keepAcrossExec() {
        if (!held) throw new SysError(`${path}: the lock was released`, 22, 'EINVAL');
        (opts.sys ?? { keepOnExec }).keepOnExec(fd);
        return fd;
      },
      release() {
        if (!held) return;
        held = false;
        if (opts.unlinkOnRelease !== false) {
          if (!isExclusive) {
            // release_lock_file(): a shared holder that can become the exclusive one removes the file too
            try {
              isExclusive = take(fd, true, false);
            } catch {
              // keep it
            }
          }
          if (isExclusive)
            try {
              unlinkSync(path);
            } catch {
              // gone already
            }
        }
        closeSync(fd);
      },
    };
  }
}
