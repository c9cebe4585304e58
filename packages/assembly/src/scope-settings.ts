/**
 * `--slice=` and `--property=` on a host without systemd: nspawn makes the machine's cgroup itself (the runtime's
 * cgroup.ts), so what systemd would do with the scope unit is done here. The slice name is mangled as 252's parse_argv()
 * does (unit_name_mangle_with_suffix(), with its notice) and laid out as systemd lays out slices (cg_slice_to_path():
 * `foo-bar.slice` is `foo.slice/foo-bar.slice`, the root slice `-.slice` is the top); each property is parsed with
 * systemd's grammar by @nspawn/machined's parseUnitProperty() (for a scope, as 252's allocate_scope() parses them) and
 * becomes the cgroup files systemd's cgroup_context_apply() writes, for cgroup2 and for the v1 controllers.
 * Properties with no cgroup file (Description=, KillMode=, ...) have nothing to act on here: a notice says so.
 */
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { mangleUnitName, parseUnitProperty, PropertyError, unitNameIsValid } from '@nspawn/machined';
import { type CgroupAttribute, type CgroupSlice, type CgroupWrite, ContainerError, type Prepared } from '@nspawn/runtime';
import type { Settings } from '@nspawn/settings';

const INF = (1n << 64n) - 1n;
const UINT32_MAX = 0xffffffffn;
const UNIT_TYPE = /\.(service|socket|target|device|mount|automount|swap|timer|path|slice|scope)$/;

/** cg_escape(): a cgroup directory name that could be taken for a kernel file gets a "_" in front. */
function cgEscape(name: string): string {
  if (name.startsWith('_') || name.startsWith('.') || ['notify_on_release', 'release_agent', 'tasks'].includes(name)) return `_${name}`;
  const dot = name.indexOf('.');
  const controllers = ['cpu', 'cpuacct', 'cpuset', 'io', 'blkio', 'memory', 'devices', 'pids', 'freezer', 'net_cls', 'perf_event', 'net_prio', 'hugetlb', 'rdma', 'misc', 'cgroup'];
  if (dot > 0 && controllers.includes(name.slice(0, dot))) return `_${name}`;
  return name;
}

/**
 * The slice of --slice=NAME: mangled (a notice when NAME is not a unit name, as 252 prints it), then laid out as
 * cg_slice_to_path() does. Throws a ContainerError for a name that is no valid slice, in allocate_scope()'s words.
 */
export function sliceFromOption(given: string, notice: (m: string) => void): CgroupSlice {
  if (given === '') throw new ContainerError('Failed to allocate scope: the slice name is empty.');
  const unit = mangleUnitName(given, '.slice');
  if (!unitNameIsValid(given)) {
    // unit_name_mangle_with_suffix(): the notice names the escaped name before the suffix is added, when escaping changed it
    const escaped = unit.endsWith('.slice') && !UNIT_TYPE.test(unit.slice(0, -'.slice'.length)) ? unit.slice(0, -'.slice'.length) : unit;
    if (escaped !== given) notice(`Invalid unit name "${given}" escaped as "${escaped}" (maybe you should use systemd-escape?).`);
  }
  if (!unit.endsWith('.slice') || unit.includes('@')) throw new ContainerError(`Failed to allocate scope: Unit name '${unit}' is not a slice`);
  if (unit === '-.slice') return { unit, path: '' };
  const prefix = unit.slice(0, -'.slice'.length);
  if (prefix.startsWith('-') || prefix.endsWith('-') || prefix.includes('--'))
    throw new ContainerError(`Failed to allocate scope: Slice name ${unit} is not valid.`);
  const parts = prefix.split('-');
  const levels = parts.map((_, i) => cgEscape(`${parts.slice(0, i + 1).join('-')}.slice`));
  return { unit, path: levels.join('/') };
}

/** What the properties set, the last assignment of each winning (as in a unit's cgroup context). */
interface Context {
  cpuWeight?: bigint;
  cpuShares?: bigint;
  quota?: bigint;
  period?: bigint;
  memory: Map<string, bigint>;
  tasksMax?: bigint;
  ioWeight?: bigint;
  blkioWeight?: bigint;
  cpus?: Buffer;
  mems?: Buffer;
}

const clamp = (v: bigint, lo: bigint, hi: bigint) => (v < lo ? lo : v > hi ? hi : v);
const big = (x: unknown) => BigInt(x as number | bigint);
const line = (v: bigint | string) => `${v}\n`;
const w = (controller: string, file: string, value: string): CgroupWrite => ({ controller, file, value });

/** physical_memory_scale() and system_tasks_max_scale(): a scale of UINT32_MAX as bytes or tasks of this host. */
function memoryScale(v: bigint): bigint {
  const page = 4096n;
  return ((BigInt(totalmem()) / page) * v / UINT32_MAX) * page;
}
function tasksScale(v: bigint): bigint {
  let max = 4194303n; // TASKS_MAX
  for (const [f, d] of [['/proc/sys/kernel/threads-max', 0n], ['/proc/sys/kernel/pid_max', 1n]] as const) {
    try {
      const n = BigInt(readFileSync(f, 'utf8').trim()) - d;
      if (n > 0n && n < max) max = n;
    } catch {
      // not readable: the kernel's maximum
    }
  }
  return (max * v) / UINT32_MAX;
}

/** A CPU set ('ay', a bit mask) as the list cpuset.cpus takes ("0-3,6"). */
function cpuList(mask: Buffer): string {
  const ids: number[] = [];
  mask.forEach((b, i) => {
    for (let bit = 0; bit < 8; bit++) if (b & (1 << bit)) ids.push(i * 8 + bit);
  });
  const out: string[] = [];
  for (let i = 0; i < ids.length; ) {
    let j = i;
    while (j + 1 < ids.length && ids[j + 1] === ids[j]! + 1) j++;
    out.push(i === j ? `${ids[i]}` : `${ids[i]}-${ids[j]}`);
    i = j + 1;
  }
  return out.join(',');
}

const MEMORY_FILES: Record<string, string> = { MemoryHigh: 'memory.high', MemoryLow: 'memory.low', MemoryMin: 'memory.min', MemorySwapMax: 'memory.swap.max' };

/**
 * --property= assignments as the scope's cgroup files (cgroup_context_apply()). Throws a ContainerError with systemd's
 * message for a bad assignment; IGNORED gets the properties that have no cgroup file to act on here.
 */
export function cgroupAttributesFromProperties(assignments: readonly string[], ignored: (name: string) => void = () => {}): CgroupAttribute[] {
  const c: Context = { memory: new Map() };
  for (const a of assignments) {
    let name: string;
    let value: unknown;
    try {
      [name, { value }] = parseUnitProperty(a, 'scope');
    } catch (e) {
      if (e instanceof PropertyError) throw new ContainerError(e.message);
      throw e;
    }
    if (name === 'CPUWeight') c.cpuWeight = big(value);
    else if (name === 'CPUShares') c.cpuShares = big(value);
    else if (name === 'CPUQuotaPerSecUSec') c.quota = big(value);
    else if (name === 'CPUQuotaPeriodUSec') c.period = big(value);
    else if (['MemoryMax', 'MemoryLimit', 'MemoryHigh', 'MemoryLow', 'MemoryMin', 'MemorySwapMax'].includes(name)) c.memory.set(name, big(value));
    else if (name.startsWith('Memory') && name.endsWith('Scale') && name !== 'MemorySwapMaxScale') c.memory.set(name.slice(0, -5), memoryScale(big(value)));
    else if (name === 'TasksMax') c.tasksMax = big(value);
    else if (name === 'TasksMaxScale') c.tasksMax = tasksScale(big(value));
    else if (name === 'IOWeight') c.ioWeight = big(value);
    else if (name === 'BlockIOWeight') c.blkioWeight = big(value);
    else if (name === 'AllowedCPUs') c.cpus = Buffer.from(value as Uint8Array);
    else if (name === 'AllowedMemoryNodes') c.mems = Buffer.from(value as Uint8Array);
    else ignored(a.slice(0, a.indexOf('=')));
  }
  const out: CgroupAttribute[] = [];
  // CPU: the weight (or shares) and the quota; cgroup2 weight 1..10000 (0: idle), v1 shares 2..262144
  if (c.cpuWeight !== undefined || c.cpuShares !== undefined) {
    const weight = c.cpuWeight !== undefined ? (c.cpuWeight === INF ? 100n : c.cpuWeight) : c.cpuShares === INF ? 100n : clamp((c.cpuShares! * 100n) / 1024n, 1n, 10000n);
    const shares = c.cpuWeight === undefined && c.cpuShares !== undefined ? (c.cpuShares === INF ? 1024n : c.cpuShares) : clamp((weight * 1024n) / 100n, 2n, 262144n);
    out.push({
      name: c.cpuWeight !== undefined ? 'CPUWeight' : 'CPUShares',
      unified: weight === 0n ? [w('cpu', 'cpu.idle', '1')] : [w('cpu', 'cpu.weight', line(weight))],
      legacy: [w('cpu', 'cpu.shares', line(shares))],
    });
  }
  if (c.quota !== undefined || c.period !== undefined) {
    const quota = c.quota ?? INF;
    let period = quota === INF ? 100000n : c.period === undefined || c.period === INF ? 100000n : c.period;
    if (quota !== INF && quota > 0n) {
      // cgroup_cpu_adjust_period(): [1ms, 1s], and long enough for a quota of at least 1ms
      const floor = (1000n * 1000000n) / quota;
      period = [period, 1000n, floor].reduce((a, b) => (a > b ? a : b));
      if (period > 1000000n) period = 1000000n;
    }
    const q = quota === INF ? undefined : [(quota * period) / 1000000n, 1000n].reduce((a, b) => (a > b ? a : b));
    out.push({
      name: 'CPUQuota',
      unified: [w('cpu', 'cpu.max', `${q ?? 'max'} ${period}\n`)],
      legacy: [w('cpu', 'cpu.cfs_period_us', line(period)), w('cpu', 'cpu.cfs_quota_us', q === undefined ? '-1\n' : line(q))],
    });
  }
  // memory: MemoryMax= (else MemoryLimit=) on both, the others on cgroup2 only
  const max = c.memory.get('MemoryMax') ?? c.memory.get('MemoryLimit');
  if (max !== undefined)
    out.push({
      name: c.memory.has('MemoryMax') ? 'MemoryMax' : 'MemoryLimit',
      unified: [w('memory', 'memory.max', max === INF ? 'max\n' : line(max))],
      legacy: [w('memory', 'memory.limit_in_bytes', max === INF ? '-1\n' : line(max))],
    });
  for (const [name, file] of Object.entries(MEMORY_FILES)) {
    const v = c.memory.get(name);
    if (v !== undefined) out.push({ name, unified: [w('memory', file, v === INF ? 'max\n' : line(v))], legacy: [] });
  }
  if (c.tasksMax !== undefined) {
    const v = c.tasksMax === INF ? 'max\n' : line(c.tasksMax);
    out.push({ name: 'TasksMax', unified: [w('pids', 'pids.max', v)], legacy: [w('pids', 'pids.max', v)] });
  }
  // IO: cgroup2 io.weight 1..10000, v1 blkio.weight 10..1000 (cgroup_weight_io_to_blkio() and back)
  if (c.ioWeight !== undefined || c.blkioWeight !== undefined) {
    const io = c.ioWeight !== undefined ? (c.ioWeight === INF ? 100n : c.ioWeight) : c.blkioWeight === INF ? 100n : clamp((c.blkioWeight! * 100n) / 500n, 1n, 10000n);
    const blkio = c.ioWeight === undefined && c.blkioWeight !== undefined ? (c.blkioWeight === INF ? 500n : c.blkioWeight) : clamp((io * 500n) / 100n, 10n, 1000n);
    out.push({ name: c.ioWeight !== undefined ? 'IOWeight' : 'BlockIOWeight', unified: [w('io', 'io.weight', `default ${io}\n`)], legacy: [w('blkio', 'blkio.weight', line(blkio))] });
  }
  // cpuset: cgroup2 only (systemd does not use the v1 cpuset controller)
  if (c.cpus) out.push({ name: 'AllowedCPUs', unified: [w('cpuset', 'cpuset.cpus', line(cpuList(c.cpus)))], legacy: [] });
  if (c.mems) out.push({ name: 'AllowedMemoryNodes', unified: [w('cpuset', 'cpuset.mems', line(cpuList(c.mems)))], legacy: [] });
  return out;
}

/**
 * --slice= and --property= of SETTINGS into PREPARED's config (the scope nspawn makes itself), NOTICE getting what 252
 * would print. Throws a ContainerError for a bad slice name or property, before anything is made.
 */
export function applyScopeSettings(prepared: Prepared, settings: Pick<Settings, 'slice' | 'properties'>, notice: (m: string) => void): void {
  if (settings.slice !== undefined) prepared.config.slice = sliceFromOption(settings.slice, notice);
  if (settings.properties?.length) {
    const attrs = cgroupAttributesFromProperties(settings.properties, (name) =>
      notice(`${name}= has no effect on a host without systemd (no unit to set it on), ignored.`),
    );
    if (attrs.length > 0) prepared.config.cgroupAttributes = attrs;
  }
}
