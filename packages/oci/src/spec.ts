/**
 * The part of the OCI runtime-spec config.json this runtime reads, its validation (one clear line naming the field),
 * and the default config `nspawn-oci spec` writes.
 */
import { readFileSync } from 'node:fs';

export interface SpecMount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
}

export interface SpecHook {
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}

export interface SpecProcess {
  terminal?: boolean;
  user: { uid: number; gid: number; umask?: number; additionalGids?: number[] };
  args: string[];
  env?: string[];
  cwd: string;
  capabilities?: { bounding?: string[]; effective?: string[]; inheritable?: string[]; permitted?: string[]; ambient?: string[] };
  rlimits?: Array<{ type: string; soft: number; hard: number }>;
  noNewPrivileges?: boolean;
  oomScoreAdj?: number;
  apparmorProfile?: string;
  selinuxLabel?: string;
}

export interface SpecNamespace {
  type: string;
  path?: string;
}

export interface SpecIdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

export interface Spec {
  ociVersion: string;
  root: { path: string; readonly?: boolean };
  process?: SpecProcess;
  hostname?: string;
  domainname?: string;
  mounts?: SpecMount[];
  hooks?: Partial<Record<HookName, SpecHook[]>>;
  annotations?: Record<string, string>;
  linux?: {
    namespaces?: SpecNamespace[];
    uidMappings?: SpecIdMapping[];
    gidMappings?: SpecIdMapping[];
    devices?: Array<{ type: string; path: string; major?: number; minor?: number; fileMode?: number; uid?: number; gid?: number }>;
    cgroupsPath?: string;
    resources?: unknown;
    sysctl?: Record<string, string>;
    maskedPaths?: string[];
    readonlyPaths?: string[];
    rootfsPropagation?: string;
    seccomp?: unknown;
    mountLabel?: string;
    intelRdt?: unknown;
  };
}

export const HOOK_NAMES = ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'] as const;
export type HookName = (typeof HOOK_NAMES)[number];

/** A config.json that is not what the spec says: the message names the file and the field. */
export class SpecError extends Error {
  override name = 'SpecError';
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStrArr = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

/**
 * JSON.parse()'s reviver: a seccomp argument's `value`/`valueTwo` past 2^53 (a 64-bit mask, -1 as an unsigned
 * long) becomes a bigint with its exact digits, as Go's decoder reads them into a uint64 for runc.
 */
function exactSeccompValues(key: string, v: unknown, ctx?: { source?: string }): unknown {
  if ((key === 'value' || key === 'valueTwo') && typeof v === 'number' && !Number.isSafeInteger(v) && ctx?.source && /^\d+$/.test(ctx.source)) return BigInt(ctx.source);
  return v;
}

/** Reads and checks FILE (a bundle's config.json). */
export function loadSpec(file: string): Spec {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new SpecError(`${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text, exactSeccompValues);
  } catch (e) {
    throw new SpecError(`${file}: not JSON: ${(e as Error).message}`);
  }
  return validateSpec(raw, file);
}

/** Checks the fields this runtime reads; throws a SpecError naming the first bad one. */
export function validateSpec(raw: unknown, file = 'config.json'): Spec {
  const bad = (field: string, what: string): never => {
    throw new SpecError(`${file}: ${field}: ${what}`);
  };
  if (!isObj(raw)) bad('(top)', 'not an object');
  const s = raw as Record<string, unknown>;
  if (typeof s.ociVersion !== 'string') bad('ociVersion', 'missing or not a string');
  if (!isObj(s.root) || typeof s.root.path !== 'string' || s.root.path === '') bad('root.path', 'missing');
  if (s.process !== undefined) {
    const p = s.process;
    if (!isObj(p)) bad('process', 'not an object');
    const pp = p as Record<string, unknown>;
    if (!isStrArr(pp.args) || pp.args.length === 0) bad('process.args', 'missing or empty');
    if (typeof pp.cwd !== 'string' || !pp.cwd.startsWith('/')) bad('process.cwd', 'must be an absolute path');
    if (!isObj(pp.user) || typeof pp.user.uid !== 'number' || typeof pp.user.gid !== 'number') bad('process.user', 'uid and gid required');
    if (pp.env !== undefined && !isStrArr(pp.env)) bad('process.env', 'not a list of strings');
    if (pp.rlimits !== undefined) {
      if (!Array.isArray(pp.rlimits)) bad('process.rlimits', 'not a list');
      for (const r of pp.rlimits as unknown[]) {
        if (!isObj(r) || typeof r.type !== 'string' || typeof r.soft !== 'number' || typeof r.hard !== 'number') bad('process.rlimits', 'type, soft and hard required');
      }
    }
  }
  if (s.mounts !== undefined) {
    if (!Array.isArray(s.mounts)) bad('mounts', 'not a list');
    (s.mounts as unknown[]).forEach((m, i) => {
      if (!isObj(m) || typeof m.destination !== 'string') bad(`mounts[${i}].destination`, 'missing');
      const mm = m as Record<string, unknown>;
      if (mm.options !== undefined && !isStrArr(mm.options)) bad(`mounts[${i}].options`, 'not a list of strings');
    });
  }
  if (s.hooks !== undefined) {
    if (!isObj(s.hooks)) bad('hooks', 'not an object');
    for (const [k, list] of Object.entries(s.hooks as Record<string, unknown>)) {
      if (!Array.isArray(list)) bad(`hooks.${k}`, 'not a list');
      (list as unknown[]).forEach((h, i) => {
        if (!isObj(h) || typeof h.path !== 'string') bad(`hooks.${k}[${i}].path`, 'missing');
        const hh = h as Record<string, unknown>;
        if (hh.timeout !== undefined && (typeof hh.timeout !== 'number' || hh.timeout <= 0)) bad(`hooks.${k}[${i}].timeout`, 'must be a positive number');
      });
    }
  }
  if (s.linux !== undefined && !isObj(s.linux)) bad('linux', 'not an object');
  const linux = (s.linux ?? {}) as Record<string, unknown>;
  if (linux.namespaces !== undefined) {
    if (!Array.isArray(linux.namespaces)) bad('linux.namespaces', 'not a list');
    const seen = new Set<string>();
    for (const n of linux.namespaces as unknown[]) {
      if (!isObj(n) || typeof n.type !== 'string') bad('linux.namespaces', 'an entry without a type');
      const t = (n as { type: string }).type;
      if (!NAMESPACE_TYPES.includes(t)) bad('linux.namespaces', `unknown namespace type "${t}"`);
      if (seen.has(t)) bad('linux.namespaces', `duplicate namespace type "${t}"`);
      seen.add(t);
    }
  }
  return raw as unknown as Spec;
}

export const NAMESPACE_TYPES = ['pid', 'network', 'mount', 'ipc', 'uts', 'user', 'cgroup', 'time'];

/** The config `runc spec` writes (a shell in ./rootfs), as ours. */
export function defaultSpec(rootless = false): Spec {
  const caps = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
  const spec: Spec = {
    ociVersion: '1.0.2-dev',
    process: {
      terminal: true,
      user: { uid: 0, gid: 0 },
      args: ['sh'],
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'TERM=xterm'],
      cwd: '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps, ambient: caps },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: true },
    hostname: 'nspawn-oci',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
    ],
    linux: {
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'cgroup' }],
      maskedPaths: ['/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/sys/firmware', '/proc/scsi'],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
  if (rootless) {
    spec.linux!.namespaces!.push({ type: 'user' });
    spec.linux!.uidMappings = [{ containerID: 0, hostID: process.getuid?.() ?? 0, size: 1 }];
    spec.linux!.gidMappings = [{ containerID: 0, hostID: process.getgid?.() ?? 0, size: 1 }];
  }
  return spec;
}
