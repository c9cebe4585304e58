/**
 * Running commands in a machine's namespaces (the runtime helper's exec-in mode) and on the host, for shell, login,
 * bind and the copy verbs. Child processes go through execa, loaded when a verb first runs one: `nspawnctl list`
 * and the other verbs that only talk to nspawnd do not pay for it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Result, ResultPromise } from 'execa';
import { signalFromString } from '@nspawn/settings';
import { helperPath, machineHierarchies, type MachineInfo, nodeTree, parseProcCgroup, probeHost, resolveUser, UserError } from '@nspawn/runtime';
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

/** The cgroup.procs files of the container's PID 1, so what we run inside is accounted to the machine. */
function leaderCgroupProcs(leader: number): string[] {
  try {
    const cg = parseProcCgroup(readFileSync(`/proc/${leader}/cgroup`, 'utf8'));
    const out: string[] = [];
    for (const h of machineHierarchies(probeHost().cgroups)) {
      const p = cg.get(h.key);
      if (p !== undefined) out.push(join(h.mount, p, 'cgroup.procs'));
    }
    return out.slice(0, 16);
  } catch {
    return [];
  }
}

export interface InOptions {
  pty?: boolean;
  /** SRC:DST[:ro][:mkdir]: bind mount instead of a command */
  bind?: string;
  stdio?: Stdio;
}

/** Starts CMD in machine M's namespaces as USER, through the helper's exec-in mode (after loadExeca()). */
export function spawnIn(m: MachineInfo, user: string, cmd: string[] | undefined, extraEnv: string[], opts: InOptions = {}): Child {
  const leader = m.leader?.pid;
  if (!leader) throw new CtlError(`Machine ${m.name} has no leader process.`);
  const tree = nodeTree(`/proc/${leader}/root`);
  let u;
  try {
    u = resolveUser(tree, user);
  } catch (e) {
    if (e instanceof UserError) throw new CtlError(e.message.replace(`/proc/${leader}/root`, ''));
    throw e;
  }
  const uid = u?.uid ?? 0;
  const gid = u?.gid ?? 0;
  const home = u?.home ?? '/root';
  const shell = u?.shell || '/bin/sh';
  const env: Record<string, string> = {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: home,
    USER: u?.name ?? 'root',
    LOGNAME: u?.name ?? 'root',
    SHELL: shell,
    container: 'nspawn',
  };
  if (process.env.TERM) env.TERM = process.env.TERM;
  if (process.env.LANG) env.LANG = process.env.LANG;
  for (const e of extraEnv) {
    const i = e.indexOf('=');
    if (i <= 0) throw new CtlError(`Invalid environment assignment ${e}.`);
    env[e.slice(0, i)] = e.slice(i + 1);
  }
  const argv = ['exec-in', String(leader), '-u', String(uid), '-g', String(gid), '-d', home];
  if (u?.groups.length) argv.push('-G', u.groups.join(','));
  for (const c of leaderCgroupProcs(leader)) argv.push('-c', c);
  if (opts.pty) argv.push('-t');
  if (opts.bind) argv.push('-b', opts.bind);
  argv.push('--', ...(opts.bind ? [] : cmd && cmd.length ? cmd : [shell, '-l']));
  return run(helperPath(), argv, { stdio: opts.stdio ?? 'inherit', env, argv0: 'nspawn-helper' });
}

/** Runs CMD in machine M's namespaces as USER: stdio and the exit status pass straight through. */
export async function execIn(m: MachineInfo, user: string, cmd: string[] | undefined, extraEnv: string[], opts: InOptions = {}): Promise<number> {
  await loadExeca();
  const child = spawnIn(m, user, cmd, extraEnv, opts);
  // the terminal's signals reach the command through its process group; we only wait
  const ignore = () => {};
  process.on('SIGINT', ignore);
  process.on('SIGQUIT', ignore);
  const forward = (s: NodeJS.Signals) => () => child.kill(s);
  const onTerm = forward('SIGTERM');
  const onHup = forward('SIGHUP');
  process.on('SIGTERM', onTerm);
  process.on('SIGHUP', onHup);
  try {
    return statusOf(await child, helperPath());
  } finally {
    process.off('SIGINT', ignore);
    process.off('SIGQUIT', ignore);
    process.off('SIGTERM', onTerm);
    process.off('SIGHUP', onHup);
  }
}
