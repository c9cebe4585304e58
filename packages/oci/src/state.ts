/**
 * The state directory: ROOT/ID/state.json (written atomically: a temporary file renamed into place), the
 * start.sock of a created container, and the status, computed as runc does: stopped when the process is gone,
 * created while the socket waits for `start`, paused when a cgroup is frozen, else running.
 *
 * One format for two readers: nspawn-oci's native front end (@nspawn/runtime native/oci-state.c) reads the same
 * files the same way for state, start, kill and delete; README "The state directory" documents it, and
 * apps/cli/test/oci-front.test.ts holds the two to the same answers.
 */
import { existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync, lstatSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export const DEFAULT_ROOT = '/run/nspawn-oci';

export type Status = 'creating' | 'created' | 'running' | 'stopped' | 'paused';

export interface Record_ {
  ociVersion: string;
  id: string;
  pid: number;
  /** the process's start time (/proc/PID/stat field 22): a reused PID is not ours */
  startTime: string;
  bundle: string;
  rootfs: string;
  created: string;
  annotations?: Record<string, string>;
  /** the monitor process that holds the helper */
  monitor: number;
  /** the container's cgroup directories, removed by delete */
  cgroups?: string[];
  /**
   * the kinds of hooks the config had at create (runc keeps the config of the create: a later edit of config.json
   * changes nothing); nspawn-oci's native front end leaves a start with poststart hooks and a delete with poststop
   * hooks to the Node command, and so does it with a record that lacks this field (an older build's)
   */
  hooks?: string[];
}

export interface OciState {
  ociVersion: string;
  id: string;
  status: Status;
  pid: number;
  bundle: string;
  annotations?: Record<string, string>;
}

/** A container ID as runc accepts it. */
export function checkId(id: string | undefined): string {
  if (!id) throw new StateError('container id cannot be empty');
  if (!/^[\w+\-.]+$/.test(id) || id === '.' || id === '..') throw new StateError(`invalid container id format: ${id}`);
  return id;
}

export class StateError extends Error {
  override name = 'StateError';
}

export const containerDir = (root: string, id: string) => join(root, checkId(id));
/** the socket a created container's monitor waits on for `start` (runc: exec.fifo) */
export const startSocket = (root: string, id: string) => join(containerDir(root, id), 'start.sock');

/**
 * The address to bind or connect to for the socket at PATH: PATH, or, past AF_UNIX's 108 bytes (a long --root and
 * a 64-digit ID, as podman gives), the same file through /proc/self/fd of its directory (opened close-on-exec, kept
 * for the process's life).
 */
export function socketAddress(path: string): string {
  if (Buffer.byteLength(path) < 100) return path;
  const fd = openSync(dirname(path), 'r');
  return `/proc/self/fd/${fd}/${basename(path)}`;
}

/** Writes FILE atomically (rename of a temporary file in the same directory). */
export function writeAtomic(file: string, data: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, data, { mode: 0o600 });
  renameSync(tmp, file);
}

export function saveRecord(root: string, r: Record_): void {
  writeAtomic(join(containerDir(root, r.id), 'state.json'), JSON.stringify(r));
}

export function loadRecord(root: string, id: string): Record_ {
  const dir = containerDir(root, id);
  let text: string;
  try {
    text = readFileSync(join(dir, 'state.json'), 'utf8');
  } catch {
    throw new StateError(`container does not exist: ${id}`);
  }
  return JSON.parse(text) as Record_;
}

/** Makes ROOT/ID; an existing one is an error. */
export function makeContainerDir(root: string, id: string): string {
  mkdirSync(root, { recursive: true, mode: 0o711 });
  const dir = containerDir(root, id);
  try {
    mkdirSync(dir, { mode: 0o711 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new StateError(`container with id exists: ${id}`);
    throw e;
  }
  return dir;
}

export function removeContainerDir(root: string, id: string): void {
  const dir = containerDir(root, id);
  if (!existsSync(dir) || !lstatSync(dir).isDirectory()) return;
  rmSync(dir, { recursive: true, force: true });
}

export function listIds(root: string): string[] {
  try {
    return readdirSync(root).filter((n) => existsSync(join(root, n, 'state.json'))).sort();
  } catch {
    return [];
  }
}

/** /proc/PID/stat's state letter and start time, or undefined when there is no such process. */
export function procStat(pid: number): { state: string; startTime: string } | undefined {
  if (!(pid > 0)) return undefined;
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0]!, startTime: rest[19]! };
  } catch {
    return undefined;
  }
}

/** Whether the recorded process is still the container's (not gone, not a zombie, not a reused PID). */
export function alive(r: Pick<Record_, 'pid' | 'startTime'>): boolean {
  const s = procStat(r.pid);
  return s !== undefined && s.state !== 'Z' && s.state !== 'X' && s.startTime === r.startTime;
}

/** Whether the container's cgroups are frozen. */
export function isFrozen(cgroups: readonly string[] | undefined): boolean {
  for (const d of cgroups ?? []) {
    try {
      if (existsSync(join(d, 'cgroup.freeze')) && readFileSync(join(d, 'cgroup.freeze'), 'utf8').trim() === '1') return true;
      if (existsSync(join(d, 'freezer.state')) && readFileSync(join(d, 'freezer.state'), 'utf8').trim() !== 'THAWED') return true;
    } catch {
      // gone
    }
  }
  return false;
}

export function statusOf(root: string, r: Record_): Status {
  if (!alive(r)) return 'stopped';
  const st = procStat(r.pid);
  if (existsSync(startSocket(root, r.id))) return 'created';
  if (isFrozen(r.cgroups)) return 'paused';
  return st ? 'running' : 'stopped';
}

export function ociState(root: string, r: Record_): OciState {
  const status = statusOf(root, r);
  const s: OciState = { ociVersion: r.ociVersion, id: r.id, status, pid: status === 'stopped' ? 0 : r.pid, bundle: r.bundle };
  if (r.annotations) s.annotations = r.annotations;
  return s;
}
