/**
 * --oci-bundle=PATH: systemd-nspawn 252's own reading of an OCI bundle's config.json (src/nspawn/nspawn-oci.c,
 * oci_load() and its dispatch tables) into the Settings model, with the same subset, the same refusals and the same
 * wording. Pure: the caller reads the file. Not the runc-style runtime (@nspawn/oci).
 *
 * The reference is systemd-stable v252.31 (Debian 12's 252.39 behaves the same), whose quirks are kept, since a
 * bundle must behave as under that systemd-nspawn (see the README):
 * - process.noNewPrivileges and root.readonly are read and checked but have no effect (252 stores a bool into an
 *   int tristate that stays "unset");
 * - linux.sysctl is checked and never applied (merge_settings() does not take it);
 * - hooks.prestart/poststart/poststop must be objects (252's table; an array, as the spec has it, is refused), and
 *   hooks are never run;
 * - apparmorProfile, selinuxLabel, intelRdt, mountLabel, memory.kernel/kernelTCP/swapiness/disableOOMKiller and
 *   blockIO.leafWeight are ignored; hugepageLimits, network, rdma, cpu.realtimeRuntime/realtimePeriod/mems refused.
 */
import { capabilityFromName, capabilityName } from './capabilities.js';
import { type JsonNode, JsonSyntaxError, jsonHasType, jsonInteger, type JsonType, parseJsonLocated } from './json-located.js';
import {
  type CustomMount,
  type OciCapabilities,
  type OciDeviceNode,
  type OciHook,
  type OciSeccomp,
  type OciSettings,
  RLIMIT_NAMES,
  type RlimitName,
  type SettingKey,
  type Settings,
  SettingsError,
} from './model.js';
import { hostnameIsValid } from './names.js';
import { type SettingsFs, nodeSettingsFs } from './load.js';
import { type MergeCommandLine, type MergeResult, mergeSettings } from './merge.js';
import { parseCpuSet } from './grammar.js';

/** A refusal of config.json: "PATH:LINE:COLUMN: FIELD: MESSAGE" (MESSAGE worded as systemd 252's). */
export class OciBundleError extends SettingsError {
  override name = 'OciBundleError';
  constructor(
    message: string,
    /** the config.json */
    readonly file: string,
    /** the field, dotted ("process.rlimits[0].type"); '' for the file as a whole */
    readonly field: string,
    /** systemd's message alone */
    readonly reason: string,
  ) {
    super(message, '--oci-bundle', file);
  }
}

export interface OciBundle {
  /** the config.json read */
  path: string;
  /** what config.json sets: .nspawn-like fields, the directory (root.path), and `oci` for the rest */
  settings: Settings & { oci: OciSettings };
  /** what systemd logs only at debug level and ignores (permissive fields, ignored mounts and devices) */
  ignored: string[];
}

const UINT64_MAX = (1n << 64n) - 1n;
const UINT32_MAX = 0xffffffffn;
const S_IFMT = 0o170000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;

type Cb = (node: JsonNode, field: string, name: string) => void;
interface Field {
  name: string;
  type: JsonType | 'number';
  cb?: Cb;
  mandatory?: boolean;
  permissive?: boolean;
}

/** path_is_absolute() */
const isAbsolute = (p: string) => p.startsWith('/');

/** path_join() of systemd: one slash between the parts */
const pathJoin = (a: string, b: string) => (a.endsWith('/') ? a : `${a}/`) + b.replace(/^\/+/, '');

/** path_simplify() for comparisons: no doubled or trailing slashes */
const simplify = (p: string) => {
  const abs = p.startsWith('/');
  const parts = p.split('/').filter((x) => x !== '' && x !== '.');
  return (abs ? '/' : '') + parts.join('/');
};

/** env_assignment_is_valid() */
function envAssignmentIsValid(e: string): boolean {
  const eq = e.indexOf('=');
  if (eq <= 0) return false;
  const name = e.slice(0, eq);
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) return false;
  // env_value_is_valid(): UTF-8 (a JS string is), no control characters but \t \n, no NUL; length limits
  const value = e.slice(eq + 1);
  // eslint-disable-next-line no-control-regex
  return !/[\x00-\x08\x0b-\x1f\x7f]/.test(value) && e.length <= 131072 && value.length <= 131072 - 2;
}

/** The implicit device nodes systemd-nspawn makes anyway (devname_from_devnum() of their numbers) */
const IMPLICIT_DEVICES = new Set(['c1:3', 'c1:5', 'c1:7', 'c1:8', 'c1:9', 'c5:0', 'c10:200', 'c5:2', 'c5:1']);

const EXCLUDED_MOUNTS = new Set([
  '/dev', '/dev/mqueue', '/dev/pts', '/dev/shm', '/proc', '/proc/acpi', '/proc/apm', '/proc/asound', '/proc/bus',
  '/proc/fs', '/proc/irq', '/proc/kallsyms', '/proc/kcore', '/proc/keys', '/proc/scsi', '/proc/sys', '/proc/sys/net',
  '/proc/sysrq-trigger', '/proc/timer_list', '/run', '/sys', '/sys/fs/selinux', '/tmp',
]);

/** oci_exclude_mount(): the mounts systemd-nspawn insists on making itself */
export function ociExcludedMount(path: string): boolean {
  const p = simplify(path);
  return EXCLUDED_MOUNTS.has(p) || p === '/sys/fs/cgroup' || p.startsWith('/sys/fs/cgroup/');
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
function cgPathGetSlice(p: string): string {
  let last = '-.slice';
  for (const c of p.split('/').filter((x) => x !== '')) {
    if (c.length < 'x.slice'.length || !plainSliceName(c)) break;
    last = c;
  }
  return last;
}

/** cg_slice_to_path(); undefined: not a valid slice name */
function cgSliceToPath(slice: string): string | undefined {
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
function pathEqual(a: string, b: string): boolean {
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

/**
 * oci_load(): parses TEXT, the content of BUNDLE/config.json, as systemd-nspawn 252 does. Throws OciBundleError
 * (one line naming the file, the position and the field) for what systemd refuses.
 */
export function parseOciBundle(text: string, bundle: string): OciBundle {
  const path = pathJoin(bundle, 'config.json');
  const ignored: string[] = [];
  const fail = (node: JsonNode | undefined, field: string, reason: string): never => {
    const where = node ? `${path}:${node.line}:${node.column}` : path;
    throw new OciBundleError(`${where}: ${field ? `${field}: ` : ''}${reason}`, path, field, reason);
  };
  const note = (node: JsonNode, field: string, reason: string) => void ignored.push(`${path}:${node.line}:${node.column}: ${field}: ${reason}`);

  let root: JsonNode;
  try {
    root = parseJsonLocated(text);
  } catch (e) {
    if (e instanceof JsonSyntaxError) {
      const reason = `Failed to parse '${path}' at ${e.line}:${e.column}: Invalid argument`;
      throw new OciBundleError(reason, path, '', reason);
    }
    throw e;
  }

  /** json_dispatch() with oci_unexpected() for unknown fields */
  const dispatch = (node: JsonNode, table: Field[], field: string): void => {
    if (node.type !== 'object') fail(node, field, 'JSON variant is not an object.');
    const found = new Set<string>();
    for (const [k, v] of (node as Extract<JsonNode, { type: 'object' }>).entries) {
      const f = table.find((t) => t.name === k);
      const sub = field ? `${field}.${k}` : k;
      if (!f) fail(v, sub, `Unexpected OCI element '${k}' of type '${v.type}'.`);
      if (!jsonHasType(v, f!.type)) {
        if (f!.permissive) continue;
        fail(v, sub, `Object field '${k}' has wrong type ${v.type}, expected ${f!.type}.`);
      }
      if (found.has(k)) {
        if (f!.permissive) continue;
        fail(v, sub, `Duplicate object field '${k}'.`);
      }
      found.add(k);
      if (!f!.cb) continue;
      try {
        f!.cb(v, sub, k);
      } catch (e) {
        if (!f!.permissive || !(e instanceof OciBundleError)) throw e;
        ignored.push(e.message);
      }
    }
    for (const f of table)
      if (f.mandatory && !found.has(f.name)) fail(node, field, `Missing object field '${f.name}'.`);
  };
  const unsupported: Cb = (v, field, name) => fail(v, field, `Unsupported OCI element '${name}' of type '${v.type}'.`);
  const items = (v: JsonNode): JsonNode[] => (v.type === 'array' ? v.items : v.type === 'object' ? v.entries.flatMap(([k, x]) => [{ ...v, type: 'string', value: k } as JsonNode, x]) : []);
  const str = (v: JsonNode): string => (v.type === 'string' ? v.value : '');
  const absolutePath = (v: JsonNode, field: string, name: string): string => {
    const n = str(v);
    if (!isAbsolute(n)) fail(v, field, `Path in JSON field '${name}' is not absolute: ${n}`);
    return n;
  };
  const uidGid = (v: JsonNode, field: string): number => {
    const k = jsonInteger(v);
    if (k > UINT32_MAX) fail(v, field, `UID/GID out of range: ${k}`);
    if (k === UINT32_MAX || k === 0xffffn) fail(v, field, `UID/GID is not valid: ${k}`);
    return Number(k);
  };
  const deviceMajor = (v: JsonNode, field: string): number => {
    const k = jsonInteger(v);
    if (k >= 1n << 12n) fail(v, field, `Device major ${k} out of range.`);
    return Number(k);
  };
  const deviceMinor = (v: JsonNode, field: string): number => {
    const k = jsonInteger(v);
    if (k >= 1n << 20n) fail(v, field, `Device minor ${k} out of range.`);
    return Number(k);
  };
  const strv = (v: JsonNode, field: string): string[] =>
    items(v).map((e, i) => (e.type === 'string' ? e.value : fail(e, `${field}[${i}]`, 'JSON array element is not a string.')));
  const envList = (v: JsonNode, field: string): string[] =>
    items(v).map((e, i) => {
      if (e.type !== 'string') return fail(e, `${field}[${i}]`, 'Environment array contains non-string.');
      if (!envAssignmentIsValid(e.value)) fail(e, `${field}[${i}]`, `Environment assignment not valid: ${e.value}`);
      return e.value;
    });
  const args = (v: JsonNode, field: string): string[] => {
    const l = items(v).map((e) => (e.type === 'string' ? e.value : fail(v, field, 'Cannot parse arguments as list of strings: Invalid argument')));
    if (l.length === 0) fail(v, field, 'Argument list empty, refusing.');
    if (l[0] === '') fail(v, field, 'Executable name is empty, refusing.');
    return l;
  };

  const s: Settings & { oci: OciSettings } = {
    startMode: 'pid1',
    resolvConf: 'off',
    linkJournal: 'no',
    timezone: 'off',
    oci: { bundle },
  };
  const oci = s.oci;
  const mounts: CustomMount[] = [];
  const properties: string[] = [];
  const addMount = (m: CustomMount) => mounts.push(m);

  // ---- process
  const rlimitValue = (v: JsonNode, field: string): bigint | 'infinity' => {
    if ((v.type === 'integer' && v.value < 0n) || (v.type === 'real' && v.value < 0)) return 'infinity';
    if (!jsonHasType(v, 'unsigned')) fail(v, field, 'rlimits limit not unsigned, refusing.');
    const z = jsonInteger(v);
    return z === UINT64_MAX ? 'infinity' : z;
  };
  const process: Field[] = [
    { name: 'terminal', type: 'boolean', cb: (v) => void (v.type === 'boolean' && !v.value ? (s.consoleMode = 'pipe') : delete s.consoleMode) },
    {
      name: 'consoleSize',
      type: 'object',
      cb: (v, field) => {
        const size = { width: 0, height: 0 };
        const dim = (which: 'width' | 'height'): Cb => (d, f, name) => {
          const k = jsonInteger(d);
          if (k === 0n) fail(d, f, `Console size field '${name}' is too small.`);
          if (k > 65535n) fail(d, f, `Console size field '${name}' is too large.`);
          size[which] = Number(k);
        };
        dispatch(v, [
          { name: 'height', type: 'unsigned', cb: dim('height'), mandatory: true },
          { name: 'width', type: 'unsigned', cb: dim('width'), mandatory: true },
        ], field);
        oci.consoleSize = size;
      },
    },
    { name: 'cwd', type: 'string', cb: (v, f, n) => void (s.workingDirectory = absolutePath(v, f, n)) },
    { name: 'env', type: 'array', cb: (v, f) => void (s.environment = [...(s.environment ?? []), ...envList(v, f)]) },
    { name: 'args', type: 'array', cb: (v, f) => void (s.parameters = args(v, f)) },
    {
      name: 'rlimits',
      type: 'array',
      cb: (v, field) => {
        items(v).forEach((e, i) => {
          const f = `${field}[${i}]`;
          const d: { type?: RlimitName; soft: bigint | 'infinity'; hard: bigint | 'infinity' } = { soft: 'infinity', hard: 'infinity' };
          dispatch(e, [
            { name: 'soft', type: 'number', cb: (x, ff) => void (d.soft = rlimitValue(x, ff)), mandatory: true },
            { name: 'hard', type: 'number', cb: (x, ff) => void (d.hard = rlimitValue(x, ff)), mandatory: true },
            {
              name: 'type',
              type: 'string',
              mandatory: true,
              cb: (x, ff) => {
                const n = str(x);
                if (!n.startsWith('RLIMIT_')) fail(x, ff, `rlimit entry's name does not begin with 'RLIMIT_', refusing: ${n}`);
                const name = n.slice('RLIMIT_'.length);
                if (!(RLIMIT_NAMES as readonly string[]).includes(name)) fail(x, ff, `rlimit name unknown: ${n}`);
                d.type = name as RlimitName;
              },
            },
          ], f);
          if (s.rlimits?.[d.type!]) fail(v, field, 'rlimits array contains duplicate entry, refusing.');
          (s.rlimits ??= {})[d.type!] = { soft: d.soft, hard: d.hard };
        });
      },
    },
    { name: 'apparmorProfile', type: 'string', cb: unsupported, permissive: true },
    {
      name: 'capabilities',
      type: 'object',
      cb: (v, field) => {
        const caps: OciCapabilities = {};
        const set = (which: keyof OciCapabilities): Field => ({
          name: which,
          type: 'array',
          cb: (x, f) => {
            const names = new Set(caps[which] ?? []);
            for (const e of items(x)) {
              if (e.type !== 'string') fail(x, f, 'Entry in capabilities array is not a string.');
              const cap = capabilityFromName(str(e));
              if (cap < 0) fail(x, f, `Unknown capability: ${str(e)}`);
              names.add(capabilityName(cap));
            }
            caps[which] = [...names].sort((a, b) => capabilityFromName(a) - capabilityFromName(b));
          },
        });
        dispatch(v, [set('effective'), set('bounding'), set('inheritable'), set('permitted'), set('ambient')], field);
        oci.capabilities = caps;
        if (caps.bounding) {
          s.capability = [...caps.bounding];
          s.dropCapability = complement(caps.bounding);
        }
      },
    },
    // 252 stores this bool into an int tristate that stays "unset": it is checked and has no effect
    { name: 'noNewPrivileges', type: 'boolean' },
    {
      name: 'oomScoreAdj',
      type: 'integer',
      cb: (v, f) => {
        const k = jsonInteger(v);
        if (k < -1000n || k > 1000n) fail(v, f, `oomScoreAdj value out of range: ${k}`);
        s.oomScoreAdjust = Number(k);
      },
    },
    { name: 'selinuxLabel', type: 'string', cb: unsupported, permissive: true },
    {
      name: 'user',
      type: 'object',
      cb: (v, field) =>
        dispatch(v, [
          { name: 'uid', type: 'unsigned', cb: (x, f) => void (oci.uid = uidGid(x, f)), mandatory: true },
          { name: 'gid', type: 'unsigned', cb: (x, f) => void (oci.gid = uidGid(x, f)), mandatory: true },
          {
            name: 'additionalGids',
            type: 'array',
            cb: (x, f) => {
              const gids = oci.supplementaryGids ?? [];
              for (const e of items(x)) {
                if (!jsonHasType(e, 'unsigned')) fail(x, f, 'Supplementary GID entry is not a UID.');
                gids.push(uidGid(e, f));
              }
              oci.supplementaryGids = gids;
            },
          },
        ], field),
    },
  ];

  // ---- root, hostname, mounts
  const rootTable: Field[] = [
    { name: 'path', type: 'string', cb: (v) => void (s.directory = str(v)) },
    { name: 'readonly', type: 'boolean' }, // as noNewPrivileges: no effect in 252
  ];
  const mountsCb: Cb = (v, field) => {
    items(v).forEach((e, i) => {
      const f = `${field}[${i}]`;
      const d: { destination?: string; source?: string; options?: string[]; type?: string } = {};
      dispatch(e, [
        { name: 'destination', type: 'string', cb: (x, ff, n) => void (d.destination = absolutePath(x, ff, n)), mandatory: true },
        { name: 'source', type: 'string', cb: (x) => void (d.source = str(x)) },
        { name: 'options', type: 'array', cb: (x, ff) => void (d.options = strv(x, ff)) },
        { name: 'type', type: 'string', cb: (x) => void (d.type = str(x)) },
      ], f);
      if (ociExcludedMount(d.destination!)) {
        note(e, f, `Ignoring mount on ${d.destination}: systemd-nspawn makes it itself.`);
        return;
      }
      const options = d.options?.join(',');
      if (d.type === undefined || d.type === 'bind') {
        const source = d.source === undefined ? '' : isAbsolute(d.source) ? d.source : pathJoin(bundle, d.source);
        const m: CustomMount = { type: 'bind', source, destination: d.destination!, readOnly: false, recursive: true };
        if (options !== undefined) {
          m.options = options;
          // parse_mount_bind_options(): the last rbind/norbind wins (anything else is refused when mounting)
          for (const o of d.options!) if (o === 'rbind' || o === 'norbind') m.recursive = o === 'rbind';
        }
        addMount(m);
      } else {
        addMount({
          type: 'arbitrary',
          ...(d.source !== undefined ? { source: d.source } : {}),
          destination: d.destination!,
          fstype: d.type,
          ...(options !== undefined ? { options } : {}),
        });
      }
    });
  };

  // ---- linux
  const namespaces: Cb = (v, field) => {
    const seen = new Set<string>();
    let netnsPath: string | undefined;
    items(v).forEach((e, i) => {
      const f = `${field}[${i}]`;
      const d: { type?: string; path?: string } = {};
      dispatch(e, [
        {
          name: 'type',
          type: 'string',
          mandatory: true,
          cb: (x, ff) => {
            const n = str(x);
            if (!['pid', 'network', 'mount', 'ipc', 'uts', 'user', 'cgroup'].includes(n)) fail(x, ff, `Unknown namespace type, refusing: ${n}`);
            d.type = n;
          },
        },
        { name: 'path', type: 'string', cb: (x, ff, n) => void (d.path = absolutePath(x, ff, n)) },
      ], f);
      if (d.path !== undefined) {
        if (d.type !== 'network') fail(e, f, 'Specifying namespace path for non-network namespace is not supported.');
        if (netnsPath !== undefined) fail(e, f, 'Network namespace path specified more than once, refusing.');
        netnsPath = d.path;
        s.networkNamespacePath = d.path;
      }
      if (seen.has(d.type!)) fail(e, f, 'Duplicate namespace specification, refusing.');
      seen.add(d.type!);
    });
    if (!seen.has('mount')) fail(v, field, "Containers without a mount namespace aren't supported.");
    s.privateNetwork = seen.has('network');
    s.privateUsers = seen.has('user') ? { mode: 'fixed', ...userRange } : { mode: 'no' };
    s.useCgns = seen.has('cgroup');
    oci.namespaces = (['ipc', 'pid', 'uts'] as const).filter((n) => seen.has(n));
  };
  let userRange: { shift?: number; range?: number } = {};
  const mappings: Cb = (v, field) => {
    const list = items(v);
    if (list.length === 0) return;
    if (list.length > 1) fail(v, field, 'UID/GID mappings with more than one entry are not supported.');
    const d = { hostID: 0, containerID: 0, size: 0 };
    const range: Cb = (x, f) => {
      const k = jsonInteger(x);
      if (k > UINT32_MAX) fail(x, f, `UID/GID out of range: ${k}`);
      if (k === 0n) fail(x, f, "UID/GID range can't be zero.");
      d.size = Number(k);
    };
    dispatch(list[0]!, [
      { name: 'containerID', type: 'unsigned', cb: (x, f) => void (d.containerID = uidGid(x, f)), mandatory: true },
      { name: 'hostID', type: 'unsigned', cb: (x, f) => void (d.hostID = uidGid(x, f)), mandatory: true },
      { name: 'size', type: 'unsigned', cb: range, mandatory: true },
    ], `${field}[0]`);
    if (d.hostID + d.size > 0xffffffff || d.containerID + d.size > 0xffffffff)
      fail(v, field, 'UID/GID range goes beyond UID/GID validity range, refusing.');
    if (d.containerID !== 0) fail(v, field, 'UID/GID mappings with a non-zero container base are not supported.');
    if (d.size < 0x10000) note(v, field, 'UID/GID mapping with less than 65536 UID/GIDS set up, you are looking for trouble.');
    if (userRange.range !== undefined && (userRange.shift !== d.hostID || userRange.range !== d.size))
      fail(v, field, 'Non-matching UID and GID mappings are not supported.');
    userRange = { shift: d.hostID, range: d.size };
    if (s.privateUsers?.mode === 'fixed') s.privateUsers = { mode: 'fixed', ...userRange };
  };
  const devices: Cb = (v, field) => {
    items(v).forEach((e, i) => {
      const f = `${field}[${i}]`;
      const node: OciDeviceNode = { path: '', mode: 0o644 };
      dispatch(e, [
        {
          name: 'type',
          type: 'string',
          mandatory: true,
          cb: (x, ff) => {
            const t = str(x);
            const type = t === 'c' || t === 'u' ? S_IFCHR : t === 'b' ? S_IFBLK : t === 'p' ? S_IFIFO : fail(x, ff, `Unknown device type: ${t}`);
            node.mode = (node.mode & ~S_IFMT) | type;
          },
        },
        { name: 'path', type: 'string', cb: (x, ff, n) => void (node.path = absolutePath(x, ff, n)), mandatory: true },
        { name: 'major', type: 'unsigned', cb: (x, ff) => void (node.major = deviceMajor(x, ff)) },
        { name: 'minor', type: 'unsigned', cb: (x, ff) => void (node.minor = deviceMinor(x, ff)) },
        {
          name: 'fileMode',
          type: 'unsigned',
          cb: (x, ff) => {
            const k = jsonInteger(x);
            if (k > 0o7777n) fail(x, ff, 'fileMode out of range, refusing.');
            node.mode = (node.mode & S_IFMT) | Number(k); // the permission bits (Debian's 252.39 keeps the type, in either key order)
          },
        },
        { name: 'uid', type: 'unsigned', cb: (x, ff) => void (node.uid = uidGid(x, ff)) },
        { name: 'gid', type: 'unsigned', cb: (x, ff) => void (node.gid = uidGid(x, ff)) },
      ], f);
      const type = node.mode & S_IFMT;
      if (type === S_IFCHR || type === S_IFBLK) {
        if (node.major === undefined || node.minor === undefined) fail(e, f, 'Major/minor required when device node is device node');
        if (type === S_IFCHR && IMPLICIT_DEVICES.has(`c${node.major}:${node.minor}`)) {
          note(e, f, `Ignoring devices item for device ${node.major}:${node.minor}, as it is implicitly created anyway.`);
          return;
        }
      }
      (oci.devices ??= []).push(node);
    });
  };
  const cgroupsPath: Cb = (v, field) => {
    const p = str(v);
    const slice = cgPathGetSlice(p);
    const back = cgSliceToPath(slice);
    if (back === undefined) fail(v, field, `Couldn't convert slice unit name '${slice}' back to path: Invalid argument`);
    if (!pathEqual(back!, p)) fail(v, field, `Control group path '${p}' does not refer to slice unit, refusing.`);
    s.slice = slice;
  };
  const resources = resourcesTable(properties, s, fail, note, dispatch, unsupported, items, str, deviceMajor, deviceMinor);
  const sysctl: Cb = (v, field) => {
    if (v.type !== 'object') return;
    for (const [k, w] of v.entries) {
      if (w.type !== 'string') fail(v, field, 'sysctl parameter is not a string, refusing.');
      if (!ociSysctlKeyValid(k)) fail(v, field, `sysctl key invalid, refusing: ${k}`);
      (oci.sysctl ??= []).push([k, str(w)]);
    }
  };
  const seccomp: Cb = (v, field) => {
    if (v.type !== 'object') return;
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
    oci.seccomp = sc;
  };
  const pathList = (kind: 'masked' | 'readonly'): Cb => (v, field) => {
    for (const e of items(v)) {
      if (e.type !== 'string') fail(v, field, 'Path is not a string, refusing.');
      const p = str(e);
      if (!isAbsolute(p)) fail(v, field, `Path is not absolute, refusing: ${p}`);
      if (ociExcludedMount(p)) continue;
      if (kind === 'masked') addMount({ type: 'inaccessible', destination: p, graceful: true });
      else addMount({ type: 'bind', source: p, sourceInRoot: true, destination: p, readOnly: true, recursive: true });
    }
  };
  const linux: Field[] = [
    { name: 'namespaces', type: 'array', cb: namespaces },
    { name: 'uidMappings', type: 'array', cb: mappings },
    { name: 'gidMappings', type: 'array', cb: mappings },
    { name: 'devices', type: 'array', cb: devices },
    { name: 'cgroupsPath', type: 'string', cb: cgroupsPath },
    { name: 'resources', type: 'object', cb: (v, f) => dispatch(v, resources, f) },
    { name: 'intelRdt', type: 'object', cb: unsupported, permissive: true },
    { name: 'sysctl', type: 'object', cb: sysctl },
    { name: 'seccomp', type: 'object', cb: seccomp },
    {
      name: 'rootfsPropagation',
      type: 'string',
      cb: (v, f) => void (str(v) !== 'shared' && note(v, f, `Ignoring rootfsPropagation setting '${str(v)}'.`)),
    },
    { name: 'maskedPaths', type: 'array', cb: pathList('masked') },
    { name: 'readonlyPaths', type: 'array', cb: pathList('readonly') },
    { name: 'mountLabel', type: 'string', cb: unsupported, permissive: true },
  ];

  // ---- hooks, annotations
  const hookTimeout: Cb = (v, f) => {
    const k = jsonInteger(v);
    if (k === 0n || k > (UINT64_MAX - 1n) / 1000000n) fail(v, f, 'Hook timeout value out of range.');
  };
  const hooksArray = (which: 'prestart' | 'poststart' | 'poststop'): Cb => (v, field) => {
    // 252's table wants an object here: its elements (keys and values) are each dispatched as a hook
    items(v).forEach((e, i) => {
      const hook: OciHook = { path: '' };
      dispatch(e, [
        { name: 'path', type: 'string', cb: (x, f, n) => void (hook.path = absolutePath(x, f, n)), mandatory: true },
        { name: 'args', type: 'array', cb: (x, f) => void (hook.args = args(x, f)) },
        { name: 'env', type: 'array', cb: (x, f) => void (hook.env = envList(x, f)) },
        { name: 'timeout', type: 'unsigned', cb: (x, f) => ((hookTimeout(x, f, 'timeout'), (hook.timeout = Number(jsonInteger(x))))) },
      ], `${field}[${i}]`);
      (oci.hooks ??= { prestart: [], poststart: [], poststop: [] })[which].push(hook);
    });
  };
  const annotations: Cb = (v, field) => {
    if (v.type !== 'object') return;
    for (const [k, w] of v.entries) {
      if (k === '') fail(v, field, 'Annotation with empty key, refusing.');
      if (w.type !== 'string') fail(w, `${field}.${k}`, 'Annotation has non-string value, refusing.');
    }
  };

  // ---- the top level
  if (root.type !== 'object') fail(root, '', 'JSON variant is not an object.');
  const version = (root as Extract<JsonNode, { type: 'object' }>).entries.find(([k]) => k === 'ociVersion')?.[1];
  if (!version) {
    const reason = `JSON file '${path}' is not an OCI bundle configuration file. Refusing.`;
    throw new OciBundleError(reason, path, 'ociVersion', reason);
  }
  if (version.type !== 'string' || version.value !== '1.0.0') {
    const reason = `OCI bundle version not supported: ${version.type === 'string' ? version.value : 'n/a'}`;
    throw new OciBundleError(`${path}:${version.line}:${version.column}: ociVersion: ${reason}`, path, 'ociVersion', reason);
  }
  dispatch(root, [
    { name: 'ociVersion', type: 'string', mandatory: true },
    { name: 'process', type: 'object', cb: (v, f) => dispatch(v, process, f) },
    {
      name: 'root',
      type: 'object',
      cb: (v, f) => {
        dispatch(v, rootTable, f);
        if (s.directory !== undefined && !isAbsolute(s.directory)) s.directory = pathJoin(bundle, s.directory);
      },
    },
    {
      name: 'hostname',
      type: 'string',
      cb: (v, f) => {
        if (!hostnameIsValid(str(v))) fail(v, f, `Hostname string is not a valid hostname: ${str(v)}`);
        s.hostname = str(v);
      },
    },
    { name: 'mounts', type: 'array', cb: mountsCb },
    { name: 'linux', type: 'object', cb: (v, f) => dispatch(v, linux, f) },
    {
      name: 'hooks',
      type: 'object',
      cb: (v, f) =>
        dispatch(v, [
          { name: 'prestart', type: 'object', cb: hooksArray('prestart') },
          { name: 'poststart', type: 'object', cb: hooksArray('poststart') },
          { name: 'poststop', type: 'object', cb: hooksArray('poststop') },
        ], f),
    },
    { name: 'annotations', type: 'object', cb: annotations },
  ], '');
  if (s.directory !== undefined) s.directory = simplify(s.directory);
  if (mounts.length) s.customMounts = mounts;
  if (properties.length) oci.properties = properties;
  return { path, settings: s, ignored };
}

/** every capability name but LIST's (systemd: drop_capability = ~bounding) */
function complement(list: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i <= 62; i++) {
    const n = capabilityName(i);
    if (!list.includes(n)) out.push(n);
  }
  return out;
}

type Fail = (node: JsonNode | undefined, field: string, reason: string) => never;
type Note = (node: JsonNode, field: string, reason: string) => void;
type Dispatch = (node: JsonNode, table: Field[], field: string) => void;

/** linux.resources: the unit properties systemd puts into its bus message, as PROPERTY=VALUE */
function resourcesTable(
  properties: string[],
  s: Settings,
  fail: Fail,
  note: Note,
  dispatch: Dispatch,
  unsupported: Cb,
  items: (v: JsonNode) => JsonNode[],
  str: (v: JsonNode) => string,
  deviceMajor: (v: JsonNode, f: string) => number,
  deviceMinor: (v: JsonNode, f: string) => number,
): Field[] {
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

/**
 * load_oci_bundle(): reads BUNDLE/config.json through FS and parses it (parseOciBundle()). A file that cannot be
 * read is refused as systemd does: "Failed to parse 'BUNDLE/config.json': No such file or directory".
 */
export function loadOciBundle(bundle: string, fs: Pick<SettingsFs, 'readFile'> = nodeSettingsFs()): OciBundle {
  const path = pathJoin(bundle, 'config.json');
  let text: string;
  try {
    const raw = fs.readFile(path);
    text = typeof raw === 'string' ? raw : new TextDecoder().decode(raw);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'No such file or directory' : code === 'EACCES' ? 'Permission denied' : code === 'EISDIR' ? 'Is a directory' : (e as Error).message;
    const reason = `Failed to parse '${path}': ${why}`;
    throw new OciBundleError(reason, path, '', reason);
  }
  return parseOciBundle(text, bundle);
}

/**
 * merge_settings() of an OCI bundle (trusted, as systemd trusts bundles): the .nspawn-like fields as mergeSettings()
 * takes them, then the directory (root.path), the user's IDs, the capability quintet, the seccomp filter, the
 * slice, the cgroup namespace, the namespaces and the console mode, each unless the command line set its group
 * (--settings=override: the bundle wins; --settings=no: nothing is taken but what systemd always takes, the
 * resources' unit properties, the console size and the device nodes). systemd takes neither sysctl nor hooks.
 */
export function mergeOciBundle(cli: MergeCommandLine, bundle: OciBundle): MergeResult {
  const mode = cli.settings.settingsMode ?? 'yes';
  const { oci: fileOci, directory, slice, useCgns, consoleMode, ...file } = bundle.settings;
  const merged = mergeSettings(cli, {
    settings: file,
    trusted: true,
    mode: mode === 'no' ? 'no' : mode === 'override' ? 'override' : 'trusted',
    path: bundle.path,
  });
  const out = merged.settings;
  const masked = (k: SettingKey): boolean => mode === 'no' || (mode !== 'override' && cli.set.has(k));
  const oci: OciSettings = { bundle: fileOci.bundle };
  if (!masked('directory') && directory !== undefined) out.directory = directory;
  if (!masked('user')) {
    if (fileOci.uid !== undefined) oci.uid = fileOci.uid;
    if (fileOci.gid !== undefined) oci.gid = fileOci.gid;
    if (fileOci.supplementaryGids?.length) oci.supplementaryGids = [...fileOci.supplementaryGids];
  }
  if (!masked('capability') && fileOci.capabilities && Object.keys(fileOci.capabilities).length) oci.capabilities = structuredClone(fileOci.capabilities);
  if (!masked('syscall-filter') && fileOci.seccomp) oci.seccomp = structuredClone(fileOci.seccomp);
  if (!masked('slice') && slice !== undefined) out.slice = slice;
  if (!masked('use-cgns') && useCgns !== undefined) out.useCgns = useCgns;
  if (!masked('clone-ns-flags') && fileOci.namespaces) oci.namespaces = [...fileOci.namespaces];
  if (!masked('console-mode') && consoleMode !== undefined) out.consoleMode = consoleMode;
  // the scope's properties: after --property='s, as systemd appends its OCI message to the command line's
  if (fileOci.properties) {
    oci.properties = [...fileOci.properties];
    out.properties = [...(out.properties ?? []), ...fileOci.properties];
  }
  if (fileOci.consoleSize) oci.consoleSize = { ...fileOci.consoleSize };
  if (fileOci.devices) oci.devices = structuredClone(fileOci.devices);
  out.oci = oci;
  return merged;
}
