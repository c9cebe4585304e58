/**
 * `exec`: another process in a running container, through the engine's exec-in (@nspawn/runtime execIn(),
 * spawnIn()): the container's namespaces and cgroups, the process from --process (a runtime-spec process JSON) or
 * from the command line.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { execIn, spawnInDetached } from '@nspawn/runtime';
import type { SpecProcess } from './spec.js';
import { SpecError } from './spec.js';
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
  const opts = {
    leader: r.pid,
    command,
    env,
    ...(uid !== undefined ? { uid } : {}),
    ...(gid !== undefined ? { gid } : {}),
    ...(groups ? { groups } : {}),
    ...(cwd ? { cwd } : {}),
    ...(cgroups.length ? { cgroups } : {}),
    ...((p?.terminal ?? o.tty) ? { pty: true } : {}),
  };
  if (o.detach) {
    // runc exec --detach: the process keeps our stdio (an engine's shim passes its pipes), the helper leaves, and it
    // is reparented to our subreaper (the shim), which reaps it; the PID file names the process itself
    const pid = await spawnInDetached({ ...opts, stdio: ['inherit', 'inherit', 'inherit'] });
    if (o.pidFile) writeFileSync(resolve(o.pidFile), `${pid}`);
    return 0;
  }
  return execIn(opts);
}
