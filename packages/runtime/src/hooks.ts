/** What the caller of a start hears of it, and may provide (runContainer(), handoffContainer()). */
import type { ChildProcess } from 'node:child_process';
import { writeSync } from 'node:fs';
import type { HelperEvent } from './protocol.js';

export interface RunHooks {
  /** a line for the user (stderr) */
  log(line: string): void;
  onEvent?(e: HelperEvent): void;
  /** called with the container's PID 1 (host PID) once it exists */
  onStart?(pid: number): void;
  /**
   * The container is ready, once per boot: when its payload has started, or with --notify-ready=yes when its init
   * has sent READY=1 to /run/host/notify (what systemd-nspawn reports to its own service manager as READY=1).
   */
  onReady?(): void;
  /** a message of the container's init on /run/host/notify that nspawn handles: "READY=1", "STATUS=..." */
  onNotify?(message: string): void;
  /** false: our SIGINT/SIGTERM/SIGHUP are not passed on to the container (nspawnd: its containers outlive it) */
  forwardSignals?: boolean;
  /**
   * a helper started earlier (spawnHelper()) that waits for its plan, instead of one started now: nspawnd keeps
   * one ready, so the start of a process is off the critical path (its stdio is then set by plan.stdoutPath)
   */
  spawnHelper?(): ChildProcess;
}

// fs.writeSync rather than process.stderr: no stream to build at start-up; a terminal that hung up (EIO) is not an error
export const defaultHooks: RunHooks = {
  log: (l) => {
    try {
      writeSync(2, `${l}\n`);
    } catch {
      // nowhere to say it
    }
  },
};
