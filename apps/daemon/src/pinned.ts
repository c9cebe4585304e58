/**
 * Processes nspawnd may signal, pinned: a pidfd (pidfd_open(2)) is taken when a process is checked, and every signal
 * goes through it (pidfd_send_signal(2)), so a process that ended and whose PID the kernel gave to another is never
 * signalled: the call fails with ESRCH instead. Node has no pidfd API; the two system calls are @nspawn/syscall's
 * pidfdCalls() (koffi, loaded on first use, off the start path). Without pidfds (a kernel before 5.3, no koffi) it falls back to checking
 * the process's start time right before kill(2), which leaves a window of microseconds.
 *
 * Also what /proc says of a process: its start time, PID namespace, cgroup and parent.
 */
import { closeSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { pidfdCalls } from '@nspawn/syscall';

/** Loads koffi and checks the kernel now (nspawnd calls it once it listens, so that no call pays for it). */
export function preparePidfds(): boolean {
  return pidfdCalls() !== null;
}

/** The start time of PID in clock ticks since boot (/proc/PID/stat field 22); undefined when it does not run. */
export function startTimeOf(pid: number): number | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[19]);
  } catch {
    return undefined;
  }
}

/** The parent of PID (/proc/PID/stat field 4). */
export function parentOf(pid: number): number | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

/** The PID namespace of PID ("pid:[4026531836]"), or of nspawnd itself. */
export function pidNamespaceOf(pid: number | 'self'): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return undefined;
  }
}

/** A cgroup: its hierarchy ("0" for the unified one, else "name=systemd") and its path there. */
export interface CgroupPath {
  hierarchy: string;
  path: string;
}

/** The cgroup of PID in the unified hierarchy, or in name=systemd on a host without one. */
export function cgroupOf(pid: number | 'self'): CgroupPath | undefined {
  try {
    const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n');
    const unified = lines.find((l) => l.startsWith('0::'));
    if (unified) return { hierarchy: '0', path: unified.slice(3) };
    const named = lines.find((l) => /^\d+:name=systemd:/.test(l));
    return named ? { hierarchy: 'name=systemd', path: named.slice(named.indexOf(':name=systemd:') + 14) } : undefined;
  } catch {
    return undefined;
  }
}

/** Is cgroup A the cgroup B or below it (in the same hierarchy)? */
export function cgroupWithin(a: CgroupPath, b: CgroupPath): boolean {
  if (a.hierarchy !== b.hierarchy) return false;
  return a.path === b.path || b.path === '/' || a.path.startsWith(`${b.path}/`);
}

/** Every PID /proc lists. */
export function allPids(): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number);
}

/** A process pinned by a pidfd (or, without pidfds, by PID and start time). */
export class PinnedProcess {
  private constructor(
    readonly pid: number,
    readonly startTime: number,
    private fd: number | undefined,
  ) {}

  /**
   * Pins PID if it runs (and, given START, is still the process that started then); undefined otherwise. The pidfd
   * is opened first and the process checked after, then found alive through the pidfd: so what was read of
   * /proc/PID is the pinned process's.
   */
  static pin(pid: number, start?: number): PinnedProcess | undefined {
    if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
    const sys = pidfdCalls();
    let fd: number | undefined;
    if (sys) {
      const r = sys.open(pid);
      if (r < 0) return undefined;
      fd = r;
    }
    const actual = startTimeOf(pid);
    const p = actual === undefined ? undefined : new PinnedProcess(pid, actual, fd);
    if (!p || (start !== undefined && actual !== start) || !p.alive()) {
      if (fd !== undefined) closeSync(fd);
      return undefined;
    }
    return p;
  }

  /** Whether the pinned process still exists (not yet reaped). */
  alive(): boolean {
    if (this.fd === undefined) return startTimeOf(this.pid) === this.startTime;
    return pidfdCalls()!.send(this.fd, 0) === 0;
  }

  /** Sends SIGNAL to the pinned process; false when it is gone (its PID is never signalled then). */
  signal(signal: number): boolean {
    if (this.fd === undefined) {
      if (startTimeOf(this.pid) !== this.startTime) return false;
      try {
        process.kill(this.pid, signal);
        return true;
      } catch {
        return false;
      }
    }
    return pidfdCalls()!.send(this.fd, signal) === 0;
  }

  /** Gives the pidfd back. */
  release(): void {
    if (this.fd !== undefined) {
      try {
        closeSync(this.fd);
      } catch {
        // closed
      }
      this.fd = undefined;
    }
  }
}
