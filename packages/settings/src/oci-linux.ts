/**
 * Parts of the --oci-bundle= reader (src/oci-bundle.ts): the dispatch types and context, path helpers, and the
 * linux.seccomp, linux.cgroupsPath, linux.sysctl and linux.resources checks of systemd 252's nspawn-oci.c.
 */
import { type JsonNode, jsonHasType, jsonInteger, type JsonType } from './json-located.js';
import type { OciSeccomp, Settings } from './model.js';
import { parseCpuSet } from './grammar.js';

const UINT64_MAX = (1n << 64n) - 1n;
const UINT32_MAX = 0xffffffffn;

export type Cb = (node: JsonNode, field: string, name: string) => void;
export interface Field {
  name: string;
  type: JsonType | 'number';
  cb?: Cb;
  mandatory?: boolean;
  permissive?: boolean;
}

/** path_is_absolute() */
export const isAbsolute = (p: string) => p.startsWith('/');

/** path_join() of systemd: one slash between the parts */
export const pathJoin = (a: string, b: string) => (a.endsWith('/') ? a : `${a}/`) + b.replace(/^\/+/, '');

/** path_simplify() for comparisons: no doubled or trailing slashes */
export const simplify = (p: string) => {
  const abs = p.startsWith('/');
  const parts = p.split('/').filter((x) => x !== '' && x !== '.');
  return (abs ? '/' : '') + parts.join('/');
};

export type Fail = (node: JsonNode | undefined, field: string, reason: string) => never;
export type Note = (node: JsonNode, field: string, reason: string) => void;
export type Dispatch = (node: JsonNode, table: Field[], field: string) => void;

/** What the readers share: refusing, noting, dispatching an object, and the common value readers. */
export interface OciContext {
  fail: Fail;
  note: Note;
  dispatch: Dispatch;
  unsupported: Cb;
  items(v: JsonNode): JsonNode[];
  str(v: JsonNode): string;
  strv(v: JsonNode, field: string): string[];
  deviceMajor(v: JsonNode, field: string): number;
  deviceMinor(v: JsonNode, field: string): number;
}

const SECCOMP_ACTIONS = ['SCMP_ACT_ALLOW', 'SCMP_ACT_ERRNO', 'SCMP_ACT_KILL', 'SCMP_ACT_KILL_PROCESS', 'SCMP_ACT_KILL_THREAD', 'SCMP_ACT_LOG', 'SCMP_ACT_TRAP'];
const SECCOMP_ARCHES = [
  'SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM', 'SCMP_ARCH_MIPS', 'SCMP_ARCH_MIPS64', 'SCMP_ARCH_MIPS64N32', 'SCMP_ARCH_MIPSEL',
  'SCMP_ARCH_MIPSEL64', 'SCMP_ARCH_MIPSEL64N32', 'SCMP_ARCH_NATIVE', 'SCMP_ARCH_PARISC', 'SCMP_ARCH_PARISC64', 'SCMP_ARCH_PPC',
  'SCMP_ARCH_PPC64', 'SCMP_ARCH_PPC64LE', 'SCMP_ARCH_RISCV64', 'SCMP_ARCH_S390', 'SCMP_ARCH_S390X', 'SCMP_ARCH_X32',
  'SCMP_ARCH_X86', 'SCMP_ARCH_X86_64',
];
const SECCOMP_OPS = ['SCMP_CMP_NE', 'SCMP_CMP_LT', 'SCMP_CMP_LE', 'SCMP_CMP_EQ', 'SCMP_CMP_GE', 'SCMP_CMP_GT', 'SCMP_CMP_MASKED_EQ'];

/** unit_name_is_valid(UNIT_NAME_PLAIN) for a slice */
const plainSliceName = (n: string) => n.length <= 256 && /^[A-Za-z0-9:_.\\-]+\.slice$/.test(n) && n !== '.slice';

/** cg_path_get_slice(): the last of the leading slice components, "-.slice" without one */
export function cgPathGetSlice(p: string): string {
  let last = '-.slice';
  for (const c of p.split('/').filter((x) => x !== '')) {
    if (c.length < 'x.slice'.length || !plainSliceName(c)) break;
    last = c;
  }
  return last;
}

/** cg_slice_to_path(); undefined: not a valid slice name */
export function cgSliceToPath(slice: string): string | undefined {
  if (slice === '-.slice') return '';
  if (!plainSliceName(slice)) return undefined;
  const prefix = slice.slice(0, -'.slice'.length);
  if (prefix.startsWith('-') || prefix.endsWith('-') || prefix.includes('--')) return undefined;
  const parts: string[] = [];
  let i = prefix.indexOf('-');
  while (i >= 0) {
    parts.push(`${prefix.slice(0, i)}.slice`);
    i = prefix.indexOf('-', i + 1);
  }
  parts.push(slice);
  return parts.join('/');
}

/** path_equal() */
export function pathEqual(a: string, b: string): boolean {
  if (isAbsolute(a) !== isAbsolute(b)) return false;
  return simplify(a) === simplify(b);
}

/** sysctl_key_valid() of nspawn-oci.c */
export function ociSysctlKeyValid(s: string): boolean {
  if (s === '') return false;
  let dot = true;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (c <= 32 || c >= 127 || ch === '/') return false;
    if (ch === '.') {
      if (dot) return false;
      dot = true;
    } else dot = false;
  }
  return !dot;
}

/** oci_seccomp(): linux.seccomp checked against 252's tables (undefined: not an object, refused by the caller) */
export function readSeccomp(ctx: OciContext, v: JsonNode, field: string): OciSeccomp | undefined {
  const { fail, dispatch, items, str, strv } = ctx;
  if (v.type !== 'object') return undefined;
  const def = v.entries.find(([k]) => k === 'defaultAction')?.[1];
  if (!def) fail(v, field, 'defaultAction element missing.');
  if (def!.type !== 'string') fail(def, `${field}.defaultAction`, 'defaultAction is not a string.');
  if (!SECCOMP_ACTIONS.includes(str(def!))) fail(def, `${field}.defaultAction`, `Unknown default action: ${str(def!)}`);
  const sc: OciSeccomp = { defaultAction: str(def!), architectures: [], syscalls: [] };
  dispatch(v, [
    { name: 'defaultAction', type: 'string', mandatory: true },
    {
      name: 'architectures',
      type: 'array',
      cb: (x, f) =>
        items(x).forEach((e, i) => {
          if (e.type !== 'string') fail(e, `${f}[${i}]`, 'Architecture entry is not a string');
          if (!SECCOMP_ARCHES.includes(str(e))) fail(e, `${f}[${i}]`, `Unknown architecture: ${str(e)}`);
          if (!sc.architectures.includes(str(e))) sc.architectures.push(str(e));
        }),
    },
    {
      name: 'syscalls',
      type: 'array',
      cb: (x, f) =>
        items(x).forEach((e, i) => {
          const rule: OciSeccomp['syscalls'][number] = { names: [], action: '', args: [] };
          dispatch(e, [
            { name: 'names', type: 'array', cb: (y, ff) => void (rule.names = strv(y, ff)), mandatory: true },
            {
              name: 'action',
              type: 'string',
              mandatory: true,
              cb: (y, ff) => {
                if (!SECCOMP_ACTIONS.includes(str(y))) fail(y, ff, `Unknown system call action '${str(y)}': Invalid argument`);
                rule.action = str(y);
              },
            },
            {
              name: 'args',
              type: 'array',
              cb: (y, ff) =>
                items(y).forEach((a, j) => {
                  const arg = { index: 0, value: 0n, valueTwo: 0n, op: '' };
                  const u64 = (which: 'value' | 'valueTwo'): Cb => (z) => void (arg[which] = jsonInteger(z));
                  dispatch(a, [
                    {
                      name: 'index',
                      type: 'unsigned',
                      mandatory: true,
                      cb: (z, fz) => {
                        if (jsonInteger(z) > UINT32_MAX) fail(z, fz, "JSON field 'index' out of bounds.");
                        arg.index = Number(jsonInteger(z));
                      },
                    },
                    { name: 'value', type: 'unsigned', cb: u64('value'), mandatory: true },
                    { name: 'valueTwo', type: 'unsigned', cb: u64('valueTwo') },
                    {
                      name: 'op',
                      type: 'string',
                      mandatory: true,
                      cb: (z, fz) => {
                        if (!SECCOMP_OPS.includes(str(z))) fail(z, fz, `Unknown seccomp operator '${str(z)}': Invalid argument`);
                        arg.op = str(z);
                      },
                    },
                  ], `${ff}[${j}]`);
                  rule.args.push(arg);
                }),
            },
          ], `${f}[${i}]`);
          if (rule.names.length === 0) fail(e, `${f}[${i}]`, 'System call name list is empty.');
          sc.syscalls.push(rule);
        }),
    },
  ], field);
  return sc;
}

/** linux.resources: the unit properties systemd puts into its bus message, as PROPERTY=VALUE */
export function resourcesTable(ctx: OciContext, properties: string[], s: Settings): Field[] {
  const { fail, note, dispatch, unsupported, items, str, deviceMajor, deviceMinor } = ctx;
  const devices: Cb = (v, field) => {
    const list: Array<{ type?: 'c' | 'b'; major?: number; minor?: number; r: boolean; w: boolean; m: boolean }> = [];
    let noop = false;
    items(v).forEach((e, i) => {
      const f = `${field}[${i}]`;
      const d: { allow: boolean; type?: 'c' | 'b'; major?: number; minor?: number; r: boolean; w: boolean; m: boolean } = { allow: false, r: false, w: false, m: false };
      dispatch(e, [
        { name: 'allow', type: 'boolean', cb: (x) => void (d.allow = x.type === 'boolean' && x.value), mandatory: true },
        {
          name: 'type',
          type: 'string',
          cb: (x, ff) => {
            const n = str(x);
            if (n !== 'c' && n !== 'b') fail(x, ff, `Control group device type unknown: ${n}`);
            d.type = n as 'c' | 'b';
          },
        },
        { name: 'major', type: 'unsigned', cb: (x, ff) => void (d.major = deviceMajor(x, ff)) },
        { name: 'minor', type: 'unsigned', cb: (x, ff) => void (d.minor = deviceMinor(x, ff)) },
        {
          name: 'access',
          type: 'string',
          cb: (x, ff) => {
            let r = false;
            let w = false;
            let m = false;
            for (const c of str(x)) {
              if (c === 'r') r = true;
              else if (c === 'w') w = true;
              else if (c === 'm') m = true;
              else fail(x, ff, `Unknown device access character '${c}'.`);
            }
            Object.assign(d, { r, w, m });
          },
        },
      ], f);
      if (!d.allow) {
        if (!d.r || !d.w || !d.m || d.type !== undefined || d.major !== undefined || d.minor !== undefined)
          note(v, field, "Devices cgroup allow list with arbitrary 'allow' entries not supported, ignoring.");
        return;
      }
      if (!d.r && !d.w && !d.m) {
        note(v, field, 'Device cgroup allow list entry with no effect found, ignoring.');
        return;
      }
      if (d.minor !== undefined && d.major === undefined) fail(v, field, 'Device cgroup allow list entries with minors but no majors not supported.');
      if (d.major !== undefined && d.type === undefined) fail(v, field, 'Device cgroup allow list entries with majors but no device node type not supported.');
      if (d.type === undefined) {
        if (d.r && d.w && d.m) noop = true;
        else fail(v, field, 'Device cgroup allow list entries with no type not supported.');
      }
      list.push(d);
    });
    if (noop) return;
    const entries = list.map((d) => {
      const t = d.type === 'b' ? 'block' : 'char';
      const pattern = d.minor === undefined ? (d.major === undefined ? `${t}-*` : `${t}-${d.major}`) : `/dev/${t}/${d.major}:${d.minor}`;
      return `${pattern} ${d.r ? 'r' : ''}${d.w ? 'w' : ''}${d.m ? 'm' : ''}`;
    });
    // no entry (all of them "deny"): the scope gets an empty allow list
    if (entries.length === 0) properties.push('DeviceAllow=');
    for (const e of entries) properties.push(`DeviceAllow=${e}`);
  };
  const memoryLimit = (v: JsonNode, f: string): bigint | undefined => {
    if ((v.type === 'integer' && v.value < 0n) || (v.type === 'real' && v.value < 0)) return undefined;
    if (!jsonHasType(v, 'unsigned')) fail(v, f, 'Memory limit is not an unsigned integer');
    const k = jsonInteger(v);
    if (k >= UINT64_MAX) fail(v, f, `Memory limit too large: ${k}`);
    return k;
  };
  const memory: Cb = (v, field) => {
    const d: { limit?: bigint; reservation?: bigint; swap?: bigint } = {};
    const lim = (k: 'limit' | 'reservation' | 'swap'): Cb => (x, f) => {
      const r = memoryLimit(x, f);
      if (r === undefined) delete d[k];
      else d[k] = r;
    };
    dispatch(v, [
      { name: 'limit', type: 'number', cb: lim('limit') },
      { name: 'reservation', type: 'number', cb: lim('reservation') },
      { name: 'swap', type: 'number', cb: lim('swap') },
      { name: 'kernel', type: 'number', cb: unsupported, permissive: true },
      { name: 'kernelTCP', type: 'number', cb: unsupported, permissive: true },
      { name: 'swapiness', type: 'number', cb: unsupported, permissive: true },
      { name: 'disableOOMKiller', type: 'number', cb: unsupported, permissive: true },
    ], field);
    if (d.swap !== undefined) {
      if (d.limit === undefined) note(v, field, 'swap limit without memory limit is not supported, ignoring.');
      else if (d.swap < d.limit) note(v, field, 'swap limit is below memory limit, ignoring.');
      else properties.push(`MemorySwapMax=${d.swap - d.limit}`);
    }
    if (d.limit !== undefined) properties.push(`MemoryMax=${d.limit}`);
    if (d.reservation !== undefined) properties.push(`MemoryLow=${d.reservation}`);
  };
  const cpu: Cb = (v, field) => {
    const d: { shares?: bigint; quota?: bigint; period?: bigint; cpus?: number[] } = {};
    const quota = (k: 'quota' | 'period'): Cb => (x, f) => {
      const n = jsonInteger(x);
      if (n <= 0n || n >= UINT64_MAX) fail(x, f, 'period/quota value out of range.');
      d[k] = n;
    };
    dispatch(v, [
      {
        name: 'shares',
        type: 'unsigned',
        cb: (x, f) => {
          const n = jsonInteger(x);
          if (n < 2n || n > 262144n) fail(x, f, 'shares value out of range.');
          d.shares = n;
        },
      },
      { name: 'quota', type: 'unsigned', cb: quota('quota') },
      { name: 'period', type: 'unsigned', cb: quota('period') },
      { name: 'realtimeRuntime', type: 'unsigned', cb: unsupported },
      { name: 'realtimePeriod', type: 'unsigned', cb: unsupported },
      {
        name: 'cpus',
        type: 'string',
        cb: (x, f) => {
          const r = parseCpuSet(str(x));
          if (r.cpus === undefined && r.warnings.length > 0) fail(x, f, `Failed to parse CPU set specification: ${str(x)}`);
          d.cpus = r.cpus ?? [];
        },
      },
      { name: 'mems', type: 'string', cb: unsupported },
    ], field);
    // the cpu object replaces the CPU set (an empty one when cpus is not given: no affinity)
    if (d.cpus?.length) s.cpuAffinity = d.cpus;
    else delete s.cpuAffinity;
    if (d.shares !== undefined) properties.push(`CPUShares=${d.shares}`);
    if (d.quota !== undefined && d.period !== undefined) {
      // CPUQuotaPerSecUSec = quota * 1s / period, written as the CPUQuota= percentage --property= takes (1/10000 steps)
      const p = (d.quota * 10000n) / d.period;
      properties.push(`CPUQuota=${p / 100n}.${String(p % 100n).padStart(2, '0')}%`);
    }
    else if ((d.quota !== undefined) !== (d.period !== undefined)) fail(v, field, 'CPU quota and period not used together.');
  };
  const blockIO: Cb = (v, field) => {
    const weightDevice: Cb = (x, f) =>
      items(x).forEach((e, i) => {
        const d: { major: number; minor: number; weight?: bigint } = { major: 0, minor: 0 };
        dispatch(e, [
          { name: 'major', type: 'unsigned', cb: (y, ff) => void (d.major = deviceMajor(y, ff)), mandatory: true },
          { name: 'minor', type: 'unsigned', cb: (y, ff) => void (d.minor = deviceMinor(y, ff)), mandatory: true },
          { name: 'weight', type: 'unsigned', cb: (y) => void (d.weight = jsonInteger(y)) },
          { name: 'leafWeight', type: 'integer', cb: unsupported, permissive: true },
        ], `${f}[${i}]`);
        if (d.weight === undefined || d.weight === UINT64_MAX) return;
        if (d.weight < 10n || d.weight > 1000n) fail(x, f, 'Block I/O device weight out of range.');
        properties.push(`BlockIODeviceWeight=/dev/block/${d.major}:${d.minor} ${d.weight}`);
      });
    const throttle: Cb = (x, f, name) => {
      const prop =
        name === 'throttleReadBpsDevice' ? 'IOReadBandwidthMax' : name === 'throttleWriteBpsDevice' ? 'IOWriteBandwidthMax' : name === 'throttleReadIOPSDevice' ? 'IOReadIOPSMax' : 'IOWriteIOPSMax';
      items(x).forEach((e, i) => {
        const d = { major: 0, minor: 0, rate: 0n };
        dispatch(e, [
          { name: 'major', type: 'unsigned', cb: (y, ff) => void (d.major = deviceMajor(y, ff)), mandatory: true },
          { name: 'minor', type: 'unsigned', cb: (y, ff) => void (d.minor = deviceMinor(y, ff)), mandatory: true },
          { name: 'rate', type: 'unsigned', cb: (y) => void (d.rate = jsonInteger(y)), mandatory: true },
        ], `${f}[${i}]`);
        if (d.rate >= UINT64_MAX) fail(x, f, 'Block I/O device rate out of range.');
        properties.push(`${prop}=/dev/block/${d.major}:${d.minor} ${d.rate}`);
      });
    };
    dispatch(v, [
      {
        name: 'weight',
        type: 'unsigned',
        cb: (x, f) => {
          const k = jsonInteger(x);
          if (k < 10n || k > 1000n) fail(x, f, 'Block I/O weight out of range.');
          properties.push(`BlockIOWeight=${k}`);
        },
      },
      { name: 'leafWeight', type: 'unsigned', cb: unsupported, permissive: true },
      { name: 'weightDevice', type: 'array', cb: weightDevice },
      { name: 'throttleReadBpsDevice', type: 'array', cb: throttle },
      { name: 'throttleWriteBpsDevice', type: 'array', cb: throttle },
      { name: 'throttleReadIOPSDevice', type: 'array', cb: throttle },
      { name: 'throttleWriteIOPSDevice', type: 'array', cb: throttle },
    ], field);
  };
  const pids: Cb = (v, field) => {
    let k: JsonNode | undefined;
    dispatch(v, [{ name: 'limit', type: 'number', cb: (x) => void (k = x), mandatory: true }], field);
    let m: bigint | 'infinity';
    if ((k!.type === 'integer' && k!.value < 0n) || (k!.type === 'real' && k!.value < 0)) m = 'infinity';
    else {
      if (!jsonHasType(k!, 'unsigned')) fail(k, `${field}.limit`, 'pids limit not unsigned integer, refusing.');
      m = jsonInteger(k!);
      if (m === UINT64_MAX) m = 'infinity';
    }
    properties.push(`TasksMax=${m}`);
  };
  return [
    { name: 'devices', type: 'array', cb: devices },
    { name: 'memory', type: 'object', cb: memory },
    { name: 'cpu', type: 'object', cb: cpu },
    { name: 'blockIO', type: 'object', cb: blockIO },
    { name: 'hugepageLimits', type: 'array', cb: unsupported },
    { name: 'network', type: 'object', cb: unsupported },
    { name: 'pids', type: 'object', cb: pids },
    { name: 'rdma', type: 'object', cb: unsupported },
  ];
}
