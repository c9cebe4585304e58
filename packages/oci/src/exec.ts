/**
 * `exec`: another process in a running container, through the engine's exec-in (@nspawn/runtime execIn(),
 * spawnIn()): the container's namespaces and cgroups, the process from --process (a runtime-spec process JSON) or
 * from the command line.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { execIn, spawnIn } from '@nspawn/runtime';
import type { SpecProcess } from './spec.js';
import { SpecError } from './spec.js';
import { checkPreserved } from './lifecycle.js';
import { loadRecord, StateError, statusOf } from './state.js';

export interface ExecOptions {
  /** a runtime-spec process object (--process FILE), else ARGS with the other fields */
  process?: SpecProcess;
  args?: string[];
  env?: string[];
  cwd?: string;
  uid?: number;
  gid?: number;
  groups?: number[];
  tty?: boolean;
  detach?: boolean;
  pidFile?: string;
  /** --console-socket: with a terminal, its master goes to this AF_UNIX socket (runc's exec) */
  consoleSocket?: string;
  /** --preserve-fds N: our descriptors 3..3+N-1 are the process's 3..3+N-1 (runc's exec: no LISTEN_FDS here) */
  preserveFds?: number;
}

/** Reads a --process FILE: one line naming the file when it is not a process object. */
export function loadProcessFile(file: string): SpecProcess {
  let p: SpecProcess;
  try {
    p = JSON.parse(readFileSync(file, 'utf8')) as SpecProcess;
  } catch (e) {
    throw new SpecError(`--process ${file}: ${(e as Error).message}`);
  }
  if (!p || typeof p !== 'object' || !Array.isArray(p.args) || p.args.length === 0) throw new SpecError(`--process ${file}: process.args: missing or empty`);
  return p;
}

/** Runs the process in container ID; resolves its exit status (0 at once with detach). */
export async function execContainer(root: string, id: string, o: ExecOptions): Promise<number> {
  const r = loadRecord(root, id);
  const status = statusOf(root, r);
  if (status !== 'running' && status !== 'created') throw new StateError(`cannot exec in a ${status} container`);
  const p = o.process;
  const command = p?.args ?? o.args ?? [];
  if (command.length === 0) throw new SpecError('exec: a command is required (arguments or --process)');
  const env = [...(p?.env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']), ...(o.env ?? [])];
  const cgroups = (r.cgroups ?? []).filter((d) => !(r.cgroups ?? []).some((x) => x.startsWith(`${d}/`))).map((d) => join(d, 'cgroup.procs'));
  const uid = p?.user.uid ?? o.uid;
  const gid = p?.user.gid ?? o.gid;
  const groups = p?.user.additionalGids ?? o.groups;
  const cwd = p?.cwd ?? o.cwd;
  const terminal = (p?.terminal ?? o.tty) === true;
  // runc's words (utils_linux.go validateProcessSpec, runner.run)
  if (terminal && o.detach && !o.consoleSocket) throw new SpecError('cannot allocate tty if runc will detach without setting console socket');
  if (!terminal && o.consoleSocket) throw new SpecError('cannot use console socket if runc will not detach or allocate tty');
  // runc's runner.run(): each one must be open (exec passes no LISTEN_FDS, so they start at 3)
  const preserve = o.preserveFds ?? 0;
  checkPreserved(3, preserve);
  let consoleSocket: Socket | undefined;
  if (o.consoleSocket) {
    const path = resolve(o.consoleSocket);
    consoleSocket = await new Promise<Socket>((res, rej) => {
      const c = createConnection(path);
      c.once('connect', () => res(c));
      c.once('error', (e) => rej(new StateError(`--console-socket ${path}: ${e.message}`)));
    });
  }
  const opts = {
    leader: r.pid,
    command,
    env,
    ...(uid !== undefined ? { uid } : {}),
    ...(gid !== undefined ? { gid } : {}),
    ...(groups ? { groups } : {}),
    ...(cwd ? { cwd } : {}),
    ...(cgroups.length ? { cgroups } : {}),
    ...(terminal ? { pty: true } : {}),
    ...(consoleSocket ? { consoleSocket } : {}),
    ...(preserve ? { passFds: Array.from({ length: preserve }, (_, i) => 3 + i) } : {}),
  };
  if (o.detach) {
    // runc's exec --detach: the process keeps the stdio it was given (conmon's pipes); its exit goes to the caller's
    // subreaper (the helper's exit status is the process's). With a terminal its stdio is the pty: the helper keeps
    // none of ours (containerd's shim reads exec's output to its end before it takes the console's master)
    const std = terminal ? 'ignore' : 'inherit';
    const child = spawnIn({ ...opts, stdio: [std, std, std] });
    consoleSocket?.destroy();
    if (o.pidFile && child.pid) writeFileSync(resolve(o.pidFile), `${child.pid}`);
    child.unref();
    return 0;
  }
  const done = execIn(opts);
  consoleSocket?.destroy();
  return done;
}
