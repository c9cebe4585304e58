/**
 * pidfds (pidfd_open(2), pidfd_send_signal(2)): a process pinned by a descriptor, so that a signal never reaches
 * another process that got its PID after it ended (the call fails with ESRCH instead). Node has no API for them.
 */
import { closeSync } from 'node:fs';
import { errnoName, SysError } from './errors.js';
import { errno, libcFn } from './koffi.js';

// the generic syscall numbers (asm-generic/unistd.h), the same on x86-64, arm64 and every other architecture since 5.1
const SYS_PIDFD_SEND_SIGNAL = 424;
const SYS_PIDFD_OPEN = 434;
const ENOSYS = 38;

/** The two calls, raw: -1 on failure (errno: pidfdErrno()). */
export interface PidfdCalls {
  /** pidfd_open(pid, 0): the descriptor, or -1 */
  open(pid: number): number;
  /** pidfd_send_signal(fd, signal, NULL, 0): 0, or -1 (ESRCH: the process is gone) */
  send(fd: number, signal: number): number;
  /** errno of the last failed call */
  errno(): number;
}

let calls: PidfdCalls | null | undefined;

/**
 * The pidfd calls through koffi (loaded on this first call), or null when there are none: no koffi, or a kernel
 * before 5.3 (ENOSYS). Checked once, on our own PID.
 */
export function pidfdCalls(): PidfdCalls | null {
  if (calls !== undefined) return calls;
  try {
    const open = libcFn('long syscall(long nr, int pid, unsigned int flags)');
    const send = libcFn('long syscall(long nr, int fd, int sig, void *info, unsigned int flags)');
    const c: PidfdCalls = {
      open: (pid) => Number(open(SYS_PIDFD_OPEN, pid, 0)),
      send: (fd, signal) => Number(send(SYS_PIDFD_SEND_SIGNAL, fd, signal, null, 0)),
      errno: () => errno(),
    };
    const self = c.open(process.pid);
    if (self < 0) calls = c.errno() === ENOSYS ? null : c;
    else {
      closeSync(self);
      calls = c;
    }
  } catch {
    calls = null;
  }
  return calls;
}

const SYS_PIDFD_GETFD = 438;
const fail = (n: number, what: string) => new SysError(`${what}: ${errnoName(n)}`, n, errnoName(n));
let getfd: ((nr: number, pidfd: number, target: number, flags: number) => number | bigint) | undefined;

/**
 * A duplicate of descriptor TARGET of process PID (pidfd_getfd(2), Linux 5.6; needs ptrace rights over it: root):
 * the very open file description, whatever it is (a pipe, a socket, a terminal, a file). Throws SysError.
 */
export function pidfdGetfd(pid: number, target: number): number {
  const c = pidfdCalls();
  if (!c) throw fail(ENOSYS, 'pidfd_open');
  const pidfd = c.open(pid);
  if (pidfd < 0) throw fail(c.errno(), `pidfd_open(${pid})`);
  try {
    getfd ??= libcFn('long syscall(long nr, int pidfd, int targetfd, unsigned int flags)') as unknown as typeof getfd;
    const fd = Number(getfd!(SYS_PIDFD_GETFD, pidfd, target, 0));
    if (fd < 0) throw fail(errno(), `pidfd_getfd(${pid}, ${target})`);
    return fd;
  } finally {
    closeSync(pidfd);
  }
}
