/**
 * linux.cgroupsPath and linux.resources on the cgroupfs hierarchies of this host (v1, hybrid, or v2): the
 * container's directories, made before the create and removed by the delete, with the resources written in them.
 * An absolute cgroupsPath is relative to each hierarchy's mount point, a relative one to the runtime's own cgroup
 * there (runc's cgroupfs driver); none: `nspawn-oci/ID` under the runtime's own cgroup.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { basename, isAbsolute, join, normalize } from 'node:path';
import type { HelperPlan } from '@nspawn/runtime';
import { deviceFilterProgram } from './devicefilter.js';
import { SpecError } from './spec.js';

interface Hierarchy {
  mount: string;
  /** v1 controllers (and name=...), or [] for the unified hierarchy */
  controllers: string[];
  /** the runtime's own cgroup in it */
  own: string;
}

/** the cgroup hierarchies, with the cgroup of OF in each (default: ours) */
function hierarchies(of: number | 'self' = 'self'): Hierarchy[] {
  const own = new Map<string, string>();
  for (const line of readFileSync(`/proc/${of}/cgroup`, 'utf8').split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (m) own.set(m[1]!, m[2]!);
  }
  const out: Hierarchy[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    const dash = f.indexOf('-');
    if (dash < 0) continue;
    const fstype = f[dash + 1];
    const mount = f[4]!.replace(/\\040/g, ' ');
    if (fstype === 'cgroup2') out.push({ mount, controllers: [], own: own.get('') ?? '/' });
    else if (fstype === 'cgroup') {
      const opts = (f[dash + 3] ?? '').split(',');
      const controllers = opts.filter((o) => !['rw', 'ro', 'relatime', 'noatime', 'nosuid', 'nodev', 'noexec', 'xattr', 'clone_children'].includes(o) && !o.startsWith('release_agent'));
      const key = [...own.keys()].find((k) => k !== '' && k.split(',').sort().join(',') === [...controllers].sort().join(','));
      out.push({ mount, controllers, own: key !== undefined ? own.get(key)! : '/' });
    }
  }
  return out;
}

type Resources = {
  pids?: { limit?: number };
  cpu?: { shares?: number; quota?: number; period?: number; realtimeRuntime?: number; realtimePeriod?: number; cpus?: string; mems?: string };
  memory?: { limit?: number; reservation?: number; swap?: number; kernel?: number; kernelTCP?: number; swappiness?: number; disableOOMKiller?: boolean };
  blockIO?: { weight?: number; leafWeight?: number };
  devices?: Array<{ allow: boolean; type?: string; major?: number; minor?: number; access?: string }>;
};

/** A node the container gets (linux.devices): allowed to it, as runc allows what it creates. */
export interface DeviceNode {
  type: string;
  major?: number;
  minor?: number;
}

/**
 * What runc allows every container after the config's rules (libcontainer/specconv AllowedDevices): mknod of any
 * node, and the nodes it makes itself (null, random, full, tty, zero, urandom, ptys, ptmx, tun).
 */
const ALLOWED_DEVICES = ['c *:* m', 'b *:* m', 'c 1:3 rwm', 'c 1:8 rwm', 'c 1:7 rwm', 'c 5:0 rwm', 'c 1:5 rwm', 'c 1:9 rwm', 'c 136:* rwm', 'c 5:2 rwm', 'c 10:200 rwm'];

/**
 * The v1 devices controller's writes ([file, rule]): the config's rules in order (allow/deny, type, major, minor,
 * access; missing fields are wildcards), then the container's own nodes and runc's allowed devices. A deny of
 * everything (runc's default config starts so) is written as "a".
 */
export function deviceRules(rules: NonNullable<Resources['devices']>, nodes: readonly DeviceNode[]): Array<['devices.allow' | 'devices.deny', string]> {
  const out: Array<['devices.allow' | 'devices.deny', string]> = [];
  const num = (n: number | undefined) => (n === undefined || n < 0 ? '*' : `${n}`);
  for (const r of rules) {
    const type = r.type ?? 'a';
    if (!['a', 'b', 'c'].includes(type)) throw new SpecError(`linux.resources.devices: unknown type "${type}"`);
    const access = r.access ?? 'rwm';
    if (!/^[rwm]+$/.test(access)) throw new SpecError(`linux.resources.devices: bad access "${access}"`);
    const all = type === 'a' && r.major === undefined && r.minor === undefined && /r/.test(access) && /w/.test(access) && /m/.test(access);
    out.push([r.allow ? 'devices.allow' : 'devices.deny', all ? 'a' : `${type} ${num(r.major)}:${num(r.minor)} ${access}`]);
  }
  for (const d of nodes) if (d.type === 'c' || d.type === 'b' || d.type === 'u') out.push(['devices.allow', `${d.type === 'b' ? 'b' : 'c'} ${num(d.major)}:${num(d.minor)} rwm`]);
  for (const r of ALLOWED_DEVICES) out.push(['devices.allow', r]);
  return out;
}

/** [controller, file, value] writes of RESOURCES on v1 */
function v1Writes(r: Resources): Array<[string, string, string]> {
  const w: Array<[string, string, string]> = [];
  if (r.pids?.limit !== undefined) w.push(['pids', 'pids.max', r.pids.limit > 0 ? `${r.pids.limit}` : 'max']);
  const c = r.cpu;
  if (c) {
    if (c.shares !== undefined) w.push(['cpu', 'cpu.shares', `${c.shares}`]);
    if (c.period !== undefined) w.push(['cpu', 'cpu.cfs_period_us', `${c.period}`]);
    if (c.quota !== undefined) w.push(['cpu', 'cpu.cfs_quota_us', `${c.quota}`]);
    if (c.realtimePeriod !== undefined) w.push(['cpu', 'cpu.rt_period_us', `${c.realtimePeriod}`]);
    if (c.realtimeRuntime !== undefined) w.push(['cpu', 'cpu.rt_runtime_us', `${c.realtimeRuntime}`]);
    if (c.cpus) w.push(['cpuset', 'cpuset.cpus', c.cpus]);
    if (c.mems) w.push(['cpuset', 'cpuset.mems', c.mems]);
  }
  const m = r.memory;
  if (m) {
    if (m.limit !== undefined) w.push(['memory', 'memory.limit_in_bytes', `${m.limit}`]);
    if (m.reservation !== undefined) w.push(['memory', 'memory.soft_limit_in_bytes', `${m.reservation}`]);
    if (m.swap !== undefined) w.push(['memory', 'memory.memsw.limit_in_bytes', `${m.swap}`]);
    if (m.swappiness !== undefined) w.push(['memory', 'memory.swappiness', `${m.swappiness}`]);
    if (m.disableOOMKiller) w.push(['memory', 'memory.oom_control', '1']);
  }
  if (r.blockIO?.weight !== undefined) w.push(['blkio', 'blkio.weight', `${r.blockIO.weight}`]);
  if (r.blockIO?.leafWeight !== undefined) w.push(['blkio', 'blkio.leaf_weight', `${r.blockIO.leafWeight}`]);
  return w;
}

export interface ContainerCgroups {
  /** the directories made (deepest last), to remove at delete */
  made: string[];
  plan: NonNullable<HelperPlan['cgroup']>;
  /** the container's directory in each v1 hierarchy, named as the hierarchy's mount point (useCgroupViews()) */
  views: Array<{ name: string; dir: string }>;
  /** with no v1 devices controller: the device policy as a BPF program for the container's cgroup2 directory */
  deviceProgram?: NonNullable<HelperPlan['deviceProgram']>;
}

/**
 * Makes the container's cgroups and writes RESOURCES; throws a SpecError naming what failed (after undoing). A
 * relative cgroupsPath is taken from the cgroup of RUNTIMEPID (the process of the runtime's call: the warm monitor's
 * caller), default ours.
 */
export function makeCgroups(id: string, cgroupsPath: string | undefined, resources: Resources | undefined, nodes: readonly DeviceNode[] = [], runtimePid?: number): ContainerCgroups {
  const rel = cgroupsPath ?? `nspawn-oci/${id}`;
  if (rel.includes(':')) throw new SpecError(`linux.cgroupsPath ${rel}: the systemd form (slice:prefix:name) needs --systemd-cgroup`);
  const made: string[] = [];
  const plan: ContainerCgroups['plan'] = { v1: [] };
  const dirs = new Map<string, string>();
  const views: ContainerCgroups['views'] = [];
  let deviceProgram: ContainerCgroups['deviceProgram'];
  try {
    for (const h of hierarchies(runtimePid ?? 'self')) {
      const dir = normalize(isAbsolute(rel) ? join(h.mount, rel) : join(h.mount, h.own, rel));
      if (!dir.startsWith(`${h.mount}/`)) throw new SpecError(`linux.cgroupsPath ${rel}: leads out of ${h.mount}`);
      // every level made here is ours to remove
      const levels: string[] = [];
      for (let d = dir; d !== h.mount && !existsSync(d); d = join(d, '..')) levels.unshift(d);
      mkdirSync(dir, { recursive: true });
      // the default parent is shared by the containers: the last one out removes it (rmdir fails while busy)
      if (cgroupsPath === undefined && !levels.includes(join(dir, '..'))) made.push(join(dir, '..'));
      made.push(...levels);
      const home = join(h.mount, h.own);
      if (h.controllers.length === 0) plan.unified = { scope: dir, home: join(home, 'cgroup.procs') };
      else {
        if (h.controllers.includes('cpuset')) {
          // a new cpuset is empty: inherit its parent's cpus and mems, as runc does
          for (const l of levels) for (const f of ['cpuset.cpus', 'cpuset.mems']) {
            const v = readFileSync(join(l, '..', f), 'utf8').trim();
            if (readFileSync(join(l, f), 'utf8').trim() === '') writeFileSync(join(l, f), v);
          }
        }
        plan.v1.push({ scope: join(dir, 'tasks'), home: join(home, 'tasks') });
        views.push({ name: basename(h.mount), dir });
        for (const c of h.controllers) dirs.set(c, dir);
      }
    }
    // the device policy: the v1 devices controller where there is one (a hybrid host: runc's fs driver uses it
    // too); else, on the unified hierarchy, a BPF program of the same rules (runc's fs2 driver)
    const devDir = dirs.get('devices');
    const rules = deviceRules(resources?.devices ?? [], nodes);
    if (!devDir && plan.unified) deviceProgram = { cgroup: plan.unified.scope, program: deviceFilterProgram(rules) };
    if (devDir) {
      for (const [file, rule] of rules) {
        try {
          writeFileSync(join(devDir, file), rule);
        } catch (e) {
          throw new SpecError(`linux.resources.devices: writing "${rule}" to ${join(devDir, file)}: ${(e as Error).message}`);
        }
      }
    }
    for (const [controller, file, value] of v1Writes(resources ?? {})) {
      const dir = dirs.get(controller);
      if (!dir) throw new SpecError(`linux.resources: no ${controller} controller on this host (for ${file})`);
      try {
        writeFileSync(join(dir, file), value);
      } catch (e) {
        throw new SpecError(`linux.resources: writing ${value} to ${join(dir, file)}: ${(e as Error).message}`);
      }
    }
  } catch (e) {
    removeCgroups(made);
    throw e;
  }
  return { made, plan, views, ...(deviceProgram ? { deviceProgram } : {}) };
}

/** Removes the directories MADE (deepest first); a busy one stays. */
export function removeCgroups(made: readonly string[]): void {
  for (const d of [...made].reverse()) {
    try {
      rmdirSync(d);
    } catch {
      // busy or gone
    }
  }
}
