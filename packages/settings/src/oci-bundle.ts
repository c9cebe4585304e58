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
import { type JsonNode, JsonSyntaxError, jsonHasType, jsonInteger, parseJsonLocated } from './json-located.js';
import {
  type CustomMount,
  type OciCapabilities,
  type OciDeviceNode,
  type OciHook,
  type OciSettings,
  RLIMIT_NAMES,
  type RlimitName,
  type SettingKey,
  type Settings,
  SettingsError,
} from './model.js';
import { hostnameIsValid } from './names.js';
import { type SettingsFs, nodeSettingsFs } from './load.js';
import {
  type Cb,
  cgPathGetSlice,
  cgSliceToPath,
  type Field,
  isAbsolute,
  type OciContext,
  ociSysctlKeyValid,
  pathEqual,
  pathJoin,
  readSeccomp,
  resourcesTable,
  simplify,
} from './oci-linux.js';

export { ociSysctlKeyValid } from './oci-linux.js';
import { type MergeCommandLine, type MergeResult, mergeSettings } from './merge.js';

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
  const ctx: OciContext = { fail, note, dispatch, unsupported, items, str, strv, deviceMajor, deviceMinor };

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
  const resources = resourcesTable(ctx, properties, s);
  const sysctl: Cb = (v, field) => {
    if (v.type !== 'object') return;
    for (const [k, w] of v.entries) {
      if (w.type !== 'string') fail(v, field, 'sysctl parameter is not a string, refusing.');
      if (!ociSysctlKeyValid(k)) fail(v, field, `sysctl key invalid, refusing: ${k}`);
      (oci.sysctl ??= []).push([k, str(w)]);
    }
  };
  const seccomp: Cb = (v, field) => {
    const sc = readSeccomp(ctx, v, field);
    if (sc) oci.seccomp = sc;
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
  if (!masked('clone-ns-flags') && fileOci.namespaces) {
    // the bundle's namespaces replace --share-system's (252 sets arg_clone_ns_flags from them)
    oci.namespaces = [...fileOci.namespaces];
    delete out.sharedNamespaces;
  }
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
