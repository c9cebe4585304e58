/**
 * Entering a running container, as `machinectl shell`/`login`/`bind`, `nsenter` or `systemd-run -M` do: a command in
 * the namespaces, root, cgroups, capability bounding set and seccomp filters of the container's PID 1, as a user of the
 * container; or a host path bind mounted into it. The native helper does it (exec-in mode: Node cannot setns() into a
 * mount or user namespace); its request goes to it framed and typed (encodeExecIn() of protocol.ts), so that nothing
 * in a command, an environment or a path can be taken for anything but what it is.
 */
import type { ChildProcess, IOType } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Stream, Writable } from 'node:stream';
import { machineHierarchies, parseProcCgroup } from './cgroup.js';
import { probeHost } from './host.js';
import { encodeExecIn, type ExecInRequest } from './protocol.js';
import { helperPath } from './helper-path.js';

/** One of the command's standard descriptors, as child_process takes it. */
export type ExecInStdio = IOType | number | Stream;

/** What to run in a container, and as whom (spawnIn(), execIn()). */
export interface ExecInOptions {
  /** the container's PID 1, a host PID (MachineInfo.leader.pid) */
  leader: number;
  /** the command and its arguments; the command is searched in env's PATH inside the container */
  command: string[];
  /** the command's whole environment (nothing of ours is added) */
  env?: Record<string, string> | string[];
  /** the user and groups it runs as (default: root, no supplementary groups) */
  uid?: number;
  gid?: number;
  groups?: number[];
  /** its working directory inside the container (falls back to /) */
  cwd?: string;
  /** a new pty of the container as its controlling terminal, copied to our stdio (^] three times ends it) */
  pty?: boolean;
  /** with pty: a connected AF_UNIX socket its master is sent to (SCM_RIGHTS, as runc's exec --console-socket), not copied to our stdio */
  consoleSocket?: import('node:net').Socket;
  /** our descriptors that become the command's 3, 4, ... in this order (OCI exec --preserve-fds); nothing else of ours reaches it */
  passFds?: number[];
  /** the cgroup.procs files to join first (default: leaderCgroupProcs(leader), accounted to the machine) */
  cgroups?: string[];
  /** its stdin, stdout, stderr (default: ours) */
  stdio?: [ExecInStdio, ExecInStdio, ExecInStdio];
  /** another helper binary (default: helperPath()) */
  helper?: string;
}

/** A host path to bind mount into a running container (bindIn()), as `machinectl bind` does. */
export interface BindInOptions {
  leader: number;
  /** the host path */
  source: string;
  /** where inside the container (default: the same path) */
  destination?: string;
  readOnly?: boolean;
  /** make the destination (and its parents) when it is missing */
  mkdir?: boolean;
  helper?: string;
}

/**
 * The cgroup.procs files of the container's PID 1 in each hierarchy systemd manages units in, so that what runs
 * inside is accounted to the machine; none when they cannot be read.
 */
export function leaderCgroupProcs(leader: number): string[] {
  try {
    const cg = parseProcCgroup(readFileSync(`/proc/${leader}/cgroup`, 'utf8'));
    const out: string[] = [];
    for (const h of machineHierarchies(probeHost().cgroups)) {
      const p = cg.get(h.key);
      if (p !== undefined) out.push(join(h.mount, p, 'cgroup.procs'));
    }
    return out;
  } catch {
    return [];
  }
}

const envList = (env: ExecInOptions['env']): string[] =>
  env === undefined ? [] : Array.isArray(env) ? [...env] : Object.entries(env).map(([k, v]) => `${k}=${v}`);

function startHelper(req: ExecInRequest, stdio: ExecInStdio[], helper: string | undefined, extra: ExecInStdio[] = []): ChildProcess {
  const bytes = encodeExecIn(req); // (throws before anything runs on a value the helper could not take)
  const { spawn } = process.getBuiltinModule('node:child_process');
  // the helper's own environment is empty: the command's is in the request
  const child = spawn(helper ?? helperPath(), ['exec-in'], { stdio: [...stdio, 'pipe', ...extra], env: {}, argv0: 'nspawn-helper' });
  const requestPipe = child.stdio[3] as Writable | null;
  requestPipe?.on('error', () => {
    // the helper went away before it read its request: its exit says why
  });
  requestPipe?.end(bytes);
  return child;
}

/**
 * Starts OPTS.command in the container: the helper's process, whose exit code is the command's (128+N when it died of
 * signal N; 255 when entering the container failed, with the reason on its stderr). Throws when the request cannot be
 * sent (a NUL byte in a value).
 */
export function spawnIn(opts: ExecInOptions): ChildProcess {
  if (opts.command.length === 0) throw new Error('spawnIn(): an empty command');
  // the helper's fd 3 is the request, 4 the console socket (when there is one), the passed descriptors after them
  const socket = opts.pty && opts.consoleSocket ? [opts.consoleSocket] : [];
  const pass = opts.passFds ?? [];
  return startHelper(
    {
      leader: opts.leader,
      command: opts.command,
      env: envList(opts.env),
      uid: opts.uid ?? 0,
      gid: opts.gid ?? 0,
      groups: opts.groups ?? [],
      ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
      cgroups: opts.cgroups ?? leaderCgroupProcs(opts.leader),
      ...(opts.pty ? { pty: true } : {}),
      ...(opts.pty && opts.consoleSocket ? { consoleSocketFd: 4 } : {}),
      ...(pass.length ? { passFds: pass.map((_, i) => 4 + socket.length + i) } : {}),
    },
    opts.stdio ?? ['inherit', 'inherit', 'inherit'],
    opts.helper,
    [...socket, ...pass],
  );
}

const exitStatus = (code: number | null, signal: NodeJS.Signals | null): number => {
  if (code !== null) return code;
  const n = signal ? process.getBuiltinModule('node:os').constants.signals[signal] : undefined;
  return 128 + (n ?? 1);
};

/**
 * Runs OPTS.command in the container to its end, stdio passing straight through, and resolves its exit status
 * (128+N for signal N, 255 when entering failed). While it runs, our SIGINT and SIGQUIT are left to it (the terminal
 * sends them to its process group) and SIGTERM and SIGHUP are passed on. Rejects when the helper cannot be started.
 */
export function execIn(opts: ExecInOptions): Promise<number> {
  const child = spawnIn(opts);
  const ignore = () => {};
  const onTerm = () => child.kill('SIGTERM');
  const onHup = () => child.kill('SIGHUP');
  process.on('SIGINT', ignore);
  process.on('SIGQUIT', ignore);
  process.on('SIGTERM', onTerm);
  process.on('SIGHUP', onHup);
  const done = () => {
    process.off('SIGINT', ignore);
    process.off('SIGQUIT', ignore);
    process.off('SIGTERM', onTerm);
    process.off('SIGHUP', onHup);
  };
  return new Promise((resolve, reject) => {
    child.on('error', (e) => {
      done();
      reject(new Error(`Failed to run ${opts.helper ?? helperPath()}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      done();
      resolve(exitStatus(code, signal));
    });
  });
}

/**
 * Bind mounts the host path OPTS.source into the running container at OPTS.destination (the helper takes a detached
 * copy on the host, enters the container's namespaces and attaches it). Rejects with the helper's reason.
 */
export function bindIn(opts: BindInOptions): Promise<void> {
  const child = startHelper(
    {
      leader: opts.leader,
      bind: { source: opts.source, destination: opts.destination ?? opts.source, readOnly: opts.readOnly === true, mkdir: opts.mkdir === true },
    },
    ['ignore', 'ignore', 'pipe'],
    opts.helper,
  );
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  return new Promise((resolve, reject) => {
    child.on('error', (e) => reject(new Error(`Failed to run ${opts.helper ?? helperPath()}: ${e.message}`)));
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(err.trim().replace(/^nspawn-helper exec-in: /, '') || `bind mount failed (${signal ?? `exit ${code}`})`));
    });
  });
}
