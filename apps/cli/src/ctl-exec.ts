/**
 * Running commands in a machine's namespaces (@nspawn/assembly's execIn()/spawnIn()) and on the host, for shell, login,
 * bind and the copy verbs. Child processes go through execa, loaded when a verb first runs one: `nspawnctl list`
 * and the other verbs that only talk to nspawnd do not pay for it.
 */
import type { ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import type { Result, ResultPromise } from 'execa';
import { signalFromString } from '@nspawn/settings';
import { type ExecInOptions, execIn as execInMachine, helperPath, leaderCgroupProcs, spawnIn as spawnInMachine } from '@nspawn/assembly';
import { type MachineInfo, nodeTree, resolveUser, UserError } from '@nspawn/runtime';
import { CtlError, err } from './ctl-common.js';

type Stream = 'pipe' | 'inherit' | 'ignore';
type Stdio = 'inherit' | readonly [Stream, Stream, Stream];
interface RunOptions {
  stdio: Stdio;
  env?: Record<string, string>;
  argv0?: string;
}
const RUN = { buffer: false, reject: false, cleanup: false, forceKillAfterDelay: false, stripFinalNewline: false } as const;

/** A child process we wait for (its promise does not reject). */
export type Child = ResultPromise;

let execa: typeof import('execa').execa | undefined;

/** Loads execa, once: a verb that runs processes awaits this first. */
export async function loadExeca(): Promise<void> {
  execa ??= (await import('execa')).execa;
}

/**
 * Starts FILE ARGS with execa as node's spawn() would: no buffering, the environment as given (`env` replaces
 * ours), no signal handlers or clean-up of its own, no SIGKILL after a SIGTERM.
 */
export function run(file: string, args: string[], options: RunOptions): Child {
  if (!execa) throw new Error('run() before loadExeca()');
  return execa(file, args, { ...RUN, ...options, ...(options.env ? { extendEnv: false } : {}) }) as unknown as Child;
}

/**
 * The exit status of a child as a shell gives it: its code, 128 + the signal that killed it, 255 when it did not
 * run (then saying so, naming `what`, when given).
 */
export function statusOf(r: Result, what?: string): number {
  if (r.exitCode !== undefined) return r.exitCode;
  if (r.signal !== undefined) {
    const s = signalFromString(r.signal);
    return 128 + (s.ok ? s.value : 1);
  }
  if (what !== undefined) err(`Failed to run ${what}: ${r.cause instanceof Error ? r.cause.message : r.message}\n`);
  return 255;
}

export interface InOptions {
  pty?: boolean;
  stdio?: readonly [Stream, Stream, Stream];
}

/** A command running in a machine: its process, and its exit status as a shell gives it. */
export interface InChild {
  process: ChildProcess;
  done: Promise<number>;
}

/** what execIn()/spawnIn() of @nspawn/assembly take for CMD in machine M as USER (its entry in /etc/passwd inside) */
function inOptions(m: MachineInfo, user: string, cmd: string[] | undefined, extraEnv: string[], opts: InOptions): ExecInOptions {
  const leader = m.leader?.pid;
  if (!leader) throw new CtlError(`Machine ${m.name} has no leader process.`);
  const host = m.class === 'host';
  const tree = nodeTree(`/proc/${leader}/root`);
  let u;
  try {
    u = resolveUser(tree, user);
  } catch (e) {
    if (e instanceof UserError) throw new CtlError(e.message.replace(`/proc/${leader}/root`, ''));
    throw e;
  }
  const home = u?.home ?? '/root';
  const shell = u?.shell || '/bin/sh';
  const env: Record<string, string> = {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: home,
    USER: u?.name ?? 'root',
    LOGNAME: u?.name ?? 'root',
    SHELL: shell,
  };
  // a container's processes are told so (as systemd-nspawn's); the host (.host) is no container
  if (!host) env.container = 'nspawn';
  if (process.env.TERM) env.TERM = process.env.TERM;
  if (process.env.LANG) env.LANG = process.env.LANG;
  for (const e of extraEnv) {
    const i = e.indexOf('=');
    if (i <= 0) throw new CtlError(`Invalid environment assignment ${e}.`);
    env[e.slice(0, i)] = e.slice(i + 1);
  }
  return {
    leader,
    command: cmd && cmd.length ? cmd : [shell, '-l'],
    env,
    uid: u?.uid ?? 0,
    gid: u?.gid ?? 0,
    groups: u?.groups ?? [],
    cwd: home,
    // in the machine's cgroup (accounted to it); on the host, ours stays (PID 1's is the root)
    cgroups: host ? [] : leaderCgroupProcs(leader).slice(0, 16),
    ...(opts.pty ? { pty: true } : {}),
    ...(opts.stdio ? { stdio: [...opts.stdio] as [Stream, Stream, Stream] } : {}),
  };
}

/** Starts CMD in machine M's namespaces as USER (@nspawn/assembly's spawnIn()). */
export function spawnIn(m: MachineInfo, user: string, cmd: string[] | undefined, extraEnv: string[], opts: InOptions = {}): InChild {
  const child = spawnInMachine(inOptions(m, user, cmd, extraEnv, opts));
  const done = new Promise<number>((resolve) => {
    child.on('error', (e) => {
      err(`Failed to run ${helperPath()}: ${e.message}\n`);
      resolve(255);
    });
    child.on('close', (code, signal) => resolve(code ?? 128 + ((signal && constants.signals[signal]) || 1)));
  });
  return { process: child, done };
}

/** Runs CMD in machine M's namespaces as USER: stdio and the exit status pass straight through. */
export async function execIn(m: MachineInfo, user: string, cmd: string[] | undefined, extraEnv: string[], opts: InOptions = {}): Promise<number> {
  try {
    return await execInMachine(inOptions(m, user, cmd, extraEnv, opts));
  } catch (e) {
    if (e instanceof CtlError) throw e;
    err(`${(e as Error).message}\n`);
    return 255;
  }
}
