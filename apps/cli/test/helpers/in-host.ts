/**
 * Processes the systemd host tests start inside the host fixture (@nspawn/systemd-host), shared by systemd-host.test.ts
 * and journal-host.test.ts: a start with its output and end, the machines machined lists, and the end of both after a
 * test, so that a failed test leaves nothing to the next one.
 */
import type { ChildProcess } from 'node:child_process';
import type { SystemdHost } from '@nspawn/systemd-host';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** P's value, or 'timeout' after MS */
export const within = async <T>(ms: number, p: Promise<T>) => Promise.race([p, sleep(ms).then(() => 'timeout' as const)]);

export interface Started {
  proc: ChildProcess;
  /** its exit status (null: a signal ended it) */
  exited: Promise<number | null>;
  /** stdout and stderr so far */
  output(): string;
}

export interface InHost {
  /** ARGV inside the host, by default as a process of its systemd (a transient scope) */
  start(argv: string[], opts?: { scope?: boolean; env?: Record<string, string> }): Started;
  /** `machinectl list`'s lines, trimmed ('' when none) */
  machines(): Promise<string>;
  /** SIGKILL to every machine machined lists, waits (at most POLLS × 50 ms) until none is, then ends what start() started */
  endAll(polls: number): Promise<void>;
  /** SIGKILL to what start() started and is still running */
  killStarted(): void;
}

/** HOST() is the booted host (it is made in a beforeAll, after this is called). */
export function inHost(host: () => SystemdHost): InHost {
  const started: ChildProcess[] = [];
  const machines = async () => (await host().run(['machinectl', 'list', '--no-pager', '--no-legend'])).trim();
  const killStarted = () => {
    for (const p of started.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  };
  return {
    start(argv, opts = {}) {
      const proc = host().spawn(argv, { scope: opts.scope ?? true, ...(opts.env ? { env: opts.env } : {}) });
      started.push(proc);
      let out = '';
      proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
      proc.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
      const exited = new Promise<number | null>((r) => (proc.exitCode !== null || proc.signalCode !== null ? r(proc.exitCode) : proc.on('close', (c) => r(c))));
      return { proc, exited, output: () => out };
    },
    machines,
    async endAll(polls) {
      for (const name of (await machines()).split('\n').filter(Boolean).map((l) => l.split(/\s+/)[0]!))
        await host().exec(['machinectl', 'kill', '--kill-whom=all', '--signal=SIGKILL', name]);
      for (let i = 0; i < polls && (await machines()); i++) await sleep(50);
      killStarted();
    },
    killStarted,
  };
}
