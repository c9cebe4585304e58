/**
 * The machine registry's model and its client: what nspawnd keeps about each running machine (machined's Machine
 * object), where its socket is, and the io.systemd.Machine calls nspawn and nspawnctl make.
 *
 * Socket: $NSPAWND_RUNTIME_DIR/io.systemd.Machine (default /run/nspawn/io.systemd.Machine; systemd's machined uses
 * /run/systemd/machine/io.systemd.Machine), the image interface beside it as io.systemd.MachineImage.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { machineNameIsValid } from '@nspawn/settings';
import { varlinkCall, VarlinkError } from './varlink.js';

export const DEFAULT_RUNTIME_DIR = '/run/nspawn';

/** nspawnd's runtime directory: its sockets and state ($NSPAWND_RUNTIME_DIR, else /run/nspawn). */
export function nspawndRuntimeDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.NSPAWND_RUNTIME_DIR || DEFAULT_RUNTIME_DIR;
}

export function machineSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(nspawndRuntimeDir(env), 'io.systemd.Machine');
}

export function machineImageSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(nspawndRuntimeDir(env), 'io.systemd.MachineImage');
}

/** systemd's ProcessId structure */
export interface ProcessId {
  pid: number;
  pidfdId?: number;
  bootId?: string;
}

/** One entry of io.systemd.Machine.List, with the metadata fields (acquireMetadata) nspawnd always fills. */
/** One image as io.systemd.MachineImage.List describes it (nspawnd sends it, nspawnctl reads it). */
export interface MachineImageInfo {
  name: string;
  path?: string;
  type: string;
  class: string;
  readOnly: boolean;
  creationTimestamp?: number;
  modificationTimestamp?: number;
  usage?: number;
  usageExclusive?: number;
  limit?: number;
  limitExclusive?: number;
  hostname?: string;
  machineId?: string;
  machineInfo?: string[];
  OSRelease?: string[];
}

export interface MachineInfo {
  name: string;
  /** 128-bit id, 32 hex digits */
  id?: string;
  service?: string;
  class: string;
  leader?: ProcessId;
  supervisor?: ProcessId;
  rootDirectory?: string;
  unit?: string;
  timestamp?: { realtime?: number; monotonic?: number };
  addresses?: Array<{ ifindex?: number; family: number; address: number[] }>;
  OSRelease?: string[];
  UIDShift?: number;
  subgroup?: string;
  UID?: number;
  /** nspawnd's own fields (systemd clients ignore unknown fields) */
  state?: 'opening' | 'running' | 'closing';
  ifIndices?: number[];
  /** the machine was started by nspawnd (it supervises it, keeps its console log) */
  managed?: boolean;
}

/** The stable identity of a process: its start time in clock ticks since boot (/proc/PID/stat field 22). */
export function procStartTime(pid: number): number | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return Number(f[19]);
  } catch {
    return undefined;
  }
}

export interface RegisterParams {
  name: string;
  id?: string;
  service?: string;
  class: string;
  /** the machine's PID 1 as the host sees it; left out, the calling process registers itself (as with machined) */
  leader?: number;
  supervisor?: number;
  rootDirectory?: string;
  ifIndices?: number[];
  /** nspawnd extension: the user namespace's base UID, when the machine has one */
  UIDShift?: number;
}

export interface ClientOptions {
  socket?: string;
  timeoutMs?: number;
}

export async function registerMachine(p: RegisterParams, o: ClientOptions = {}): Promise<void> {
  await varlinkCall(o.socket ?? machineSocketPath(), 'io.systemd.Machine.Register', { ...p }, { timeoutMs: o.timeoutMs ?? 5000 });
}

export async function unregisterMachine(name: string, o: ClientOptions = {}): Promise<void> {
  await varlinkCall(o.socket ?? machineSocketPath(), 'io.systemd.Machine.Unregister', { name }, { timeoutMs: o.timeoutMs ?? 5000 });
}

/** Every registered machine (or the one named); none is an empty list, not an error. */
export async function listMachines(o: ClientOptions & { name?: string } = {}): Promise<MachineInfo[]> {
  try {
    const params: Record<string, unknown> = { acquireMetadata: 'graceful' };
    if (o.name !== undefined) params.name = o.name;
    return (await varlinkCall(o.socket ?? machineSocketPath(), 'io.systemd.Machine.List', params, {
      more: o.name === undefined,
      timeoutMs: o.timeoutMs ?? 10000,
    })) as unknown as MachineInfo[];
  } catch (e) {
    if (e instanceof VarlinkError && e.error === 'io.systemd.Machine.NoSuchMachine') return [];
    throw e;
  }
}

/** A daemon that is not running: nothing listens at the socket. */
export function isNoDaemon(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException)?.code;
  return code === 'ENOENT' || code === 'ECONNREFUSED';
}

/**
 * A machine name as machined accepts it: `hostname_is_valid(name, 0)`, @nspawn/settings' machineNameIsValid (the one
 * rule every package uses; no "_", no "..", at most 64 bytes).
 */
export function isValidMachineName(name: string): boolean {
  return machineNameIsValid(name);
}

/** Where nspawnd keeps things; each can be moved by an environment variable (tests use their own). */
export interface NspawndPaths {
  /** sockets and the registry's state ($NSPAWND_RUNTIME_DIR, /run/nspawn): lost at reboot, kept across daemon restarts */
  runtime: string;
  /** one JSON file per registered machine */
  state: string;
  /** $NSPAWND_CONFIG_DIR, /etc/nspawn: enabled/NAME marks a machine started when nspawnd starts */
  config: string;
  enabled: string;
  /** $NSPAWND_LOG_DIR, /var/log/nspawn: NAME.log, the console of machines nspawnd runs, rotated to NAME.log.1.. */
  logs: string;
  /** $NSPAWND_MACHINES_DIR, /var/lib/machines: where `start NAME` finds the image NAME */
  images: string;
}

export function nspawndPaths(env: NodeJS.ProcessEnv = process.env): NspawndPaths {
  const runtime = nspawndRuntimeDir(env);
  const config = env.NSPAWND_CONFIG_DIR || '/etc/nspawn';
  return {
    runtime,
    state: join(runtime, 'machines'),
    config,
    enabled: join(config, 'enabled'),
    logs: env.NSPAWND_LOG_DIR || '/var/log/nspawn',
    images: env.NSPAWND_MACHINES_DIR || '/var/lib/machines',
  };
}

export function machineLogPath(name: string, env: NodeJS.ProcessEnv = process.env): string {
  return join(nspawndPaths(env).logs, `${name}.log`);
}
