/**
 * Value grammars shared by the command line and .nspawn files, each following the systemd function named
 * beside it. Every parser throws SettingsError with a message that names the value; callers add the
 * option or FILE:LINE.
 */
import {
  type ConsoleMode,
  type CustomMount,
  type ExposePort,
  type LinkJournal,
  type ResolvConfMode,
  type Rlimit,
  type RlimitName,
  RLIMIT_NAMES,
  SettingsError,
  type TimezoneMode,
  type UserNamespaceOwnership,
  type UserNamespaceSetting,
  type VolatileMode,
} from './model.js';
import { parseBooleanC } from './c-util.js';

/** parse_boolean(): 1/yes/y/true/t/on and 0/no/n/false/f/off, ASCII case-insensitive. */
export function parseBoolean(v: string): boolean {
  const r = parseBooleanC(v);
  if (r.ok) return r.value;
  throw new SettingsError(`Failed to parse boolean value: ${v}`, undefined, v);
}

const HOST_NAME_MAX = 64;
const isLdh = (c: string) => /^[A-Za-z0-9-]$/.test(c);

/** hostname_is_valid(s, 0) */
export function hostnameIsValid(s: string): boolean {
  if (s.length === 0 || s.length > HOST_NAME_MAX) return false;
  let dot = true;
  let hyphen = true;
  for (const c of s) {
    if (c === '.') {
      if (dot || hyphen) return false;
      dot = true;
      hyphen = false;
    } else if (c === '-') {
      if (dot) return false;
      dot = false;
      hyphen = true;
    } else {
      if (!isLdh(c)) return false;
      dot = false;
      hyphen = false;
    }
  }
  return !dot && !hyphen;
}

/** hostname_cleanup(): drops what a hostname may not contain (used for the default machine name). */
export function hostnameCleanup(s: string): string {
  let out = '';
  let dot = true;
  let hyphen = true;
  for (const c of s) {
    if (out.length >= HOST_NAME_MAX) break;
    if (c === '.') {
      if (dot || hyphen) continue;
      out += '.';
      dot = true;
      hyphen = false;
    } else if (c === '-') {
      if (dot) continue;
      out += '-';
      dot = false;
      hyphen = true;
    } else if (isLdh(c)) {
      out += c;
      dot = false;
      hyphen = false;
    }
  }
  while (out.endsWith('-') || out.endsWith('.')) out = out.slice(0, -1);
  return out;
}

/** Machine names are hostnames (machine_name_is_valid()). */
export const machineNameIsValid = hostnameIsValid;

/** sd_id128_from_string(): 32 hex digits, or a UUID with dashes. Returns 32 lower-case hex digits. */
export function parseId128(v: string): string {
  const s = v.toLowerCase();
  if (/^[0-9a-f]{32}$/.test(s)) return s;
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(s)) return s.replace(/-/g, '');
  throw new SettingsError(`Invalid UUID/machine ID: ${v}`, undefined, v);
}

/** Formats 32 hex digits as a UUID. */
export function id128ToUuid(hex: string): string {
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** path_is_absolute + path_is_normalized-ish check used for container-side paths. */
export function isAbsolutePath(p: string): boolean {
  return p.startsWith('/');
}

/** path_simplify(): collapses '//' and '/./', drops a trailing '/'. Keeps '..' (callers reject it). */
export function simplifyPath(p: string): string {
  const abs = p.startsWith('/');
  const parts = p.split('/').filter((x) => x !== '' && x !== '.');
  const s = (abs ? '/' : '') + parts.join('/');
  return s === '' ? (abs ? '/' : '.') : s;
}

function hasDotDot(p: string): boolean {
  return p.split('/').includes('..');
}

/** Splits on ':' honouring backslash escapes ("\:" is a literal colon), like extract_first_word(..., ":", EXTRACT_DONT_COALESCE_SEPARATORS|EXTRACT_UNESCAPE_SEPARATORS). */
export function splitColons(v: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < v.length; i++) {
    const c = v[i]!;
    if (c === '\\' && i + 1 < v.length) {
      cur += v[++i]!;
    } else if (c === ':') {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

/**
 * bind_mount_parse(): "SRC[:DST[:OPTIONS]]". SRC may start with '+' (relative to the container root).
 * OPTIONS: comma-separated rbind|norbind|idmap|noidmap.
 */
export function parseBindSpec(v: string, readOnly: boolean): Extract<CustomMount, { type: 'bind' }> {
  const parts = splitColons(v);
  if (parts.length > 3) throw new SettingsError(`Invalid bind mount specification: ${v}`, undefined, v);
  let [source = '', destination, options] = parts;
  if (source === '') throw new SettingsError(`Invalid bind mount specification (empty source): ${v}`, undefined, v);
  let sourceInRoot = false;
  if (source.startsWith('+')) {
    sourceInRoot = true;
    source = source.slice(1);
    if (!source.startsWith('/')) source = '/' + source;
  }
  if (!isAbsolutePath(source))
    throw new SettingsError(`Invalid bind mount specification (source path not absolute): ${v}`, undefined, v);
  if (destination === undefined || destination === '') destination = source;
  if (!isAbsolutePath(destination))
    throw new SettingsError(`Invalid bind mount specification (destination path not absolute): ${v}`, undefined, v);
  if (hasDotDot(source) || hasDotDot(destination))
    throw new SettingsError(`Invalid bind mount specification (path contains '..'): ${v}`, undefined, v);
  let recursive = true;
  let idmap: boolean | undefined;
  for (const o of (options ?? '').split(',').filter((x) => x !== '')) {
    if (o === 'rbind') recursive = true;
    else if (o === 'norbind') recursive = false;
    else if (o === 'idmap') idmap = true;
    else if (o === 'noidmap') idmap = false;
    else throw new SettingsError(`Invalid bind mount option: ${o}`, undefined, v);
  }
  return {
    type: 'bind',
    source: simplifyPath(source),
    destination: simplifyPath(destination),
    readOnly,
    recursive,
    ...(idmap !== undefined ? { idmap } : {}),
    ...(sourceInRoot ? { sourceInRoot } : {}),
  };
}

/** tmpfs_mount_parse(): "PATH[:OPTIONS]", default options "mode=0755". */
export function parseTmpfsSpec(v: string): Extract<CustomMount, { type: 'tmpfs' }> {
  const i = indexOfUnescapedColon(v);
  const path = unescapeColons(i < 0 ? v : v.slice(0, i));
  const options = i < 0 ? 'mode=0755' : v.slice(i + 1);
  if (!isAbsolutePath(path) || hasDotDot(path))
    throw new SettingsError(`Invalid temporary file system specification: ${v}`, undefined, v);
  return { type: 'tmpfs', destination: simplifyPath(path), options };
}

function indexOfUnescapedColon(v: string): number {
  for (let i = 0; i < v.length; i++) {
    if (v[i] === '\\') i++;
    else if (v[i] === ':') return i;
  }
  return -1;
}
function unescapeColons(v: string): string {
  return v.replace(/\\(.)/g, '$1');
}

/**
 * overlay_mount_parse(): "LOWER[:LOWER...]:UPPER[:DEST]" with at least two paths. With two paths, the last
 * is the upper and also the destination (its path inside the container). An empty upper means a throw-away
 * upper directory. '+' prefixes mean relative to the container root.
 */
export function parseOverlaySpec(v: string, readOnly: boolean): Extract<CustomMount, { type: 'overlay' }> {
  const parts = splitColons(v);
  if (parts.length < 2) throw new SettingsError(`--overlay= needs at least two colon-separated directories specified: ${v}`, undefined, v);
  for (const p of parts) {
    const q = p.startsWith('+') ? p.slice(1) : p;
    if (p !== '' && !isAbsolutePath(q)) throw new SettingsError(`Path is not absolute: ${p}`, undefined, v);
  }
  let lowers: string[];
  let upper: string;
  let destination: string;
  if (parts.length === 2) {
    lowers = [parts[0]!];
    upper = parts[1]!;
    destination = parts[0]!;
  } else {
    destination = parts[parts.length - 1]!;
    upper = parts[parts.length - 2]!;
    lowers = parts.slice(0, -2);
  }
  if (destination === '' || lowers.some((l) => l === ''))
    throw new SettingsError(`Invalid overlay specification: ${v}`, undefined, v);
  if (destination.startsWith('+')) destination = destination.slice(1);
  return { type: 'overlay', lowers, upper, destination: simplifyPath(destination), readOnly };
}

/** inaccessible_mount_parse() */
export function parseInaccessible(v: string): Extract<CustomMount, { type: 'inaccessible' }> {
  if (!isAbsolutePath(v) || hasDotDot(v)) throw new SettingsError(`Invalid path: ${v}`, undefined, v);
  return { type: 'inaccessible', destination: simplifyPath(v) };
}

const RLIMIT_LOOKUP = new Map<string, RlimitName>(RLIMIT_NAMES.map((n) => [n, n]));

/** rlimit_from_string_harder(): "NOFILE", "RLIMIT_NOFILE", "nofile". */
export function parseRlimitName(s: string): RlimitName {
  const n = s.toUpperCase().replace(/^RLIMIT_/, '');
  const r = RLIMIT_LOOKUP.get(n);
  if (!r) throw new SettingsError(`Unknown resource limit: ${s}`, undefined, s);
  return r;
}

/** rlimit_parse(): "VALUE" or "SOFT:HARD", "infinity" allowed. */
export function parseRlimitValue(v: string): Rlimit {
  const one = (s: string): bigint | 'infinity' => {
    if (s === 'infinity') return 'infinity';
    if (!/^[0-9]+$/.test(s)) throw new SettingsError(`Failed to parse resource limit: ${v}`, undefined, v);
    return BigInt(s);
  };
  const i = v.indexOf(':');
  if (i < 0) {
    const x = one(v);
    return { soft: x, hard: x };
  }
  const soft = one(v.slice(0, i));
  const hard = one(v.slice(i + 1));
  if (soft !== 'infinity' && (hard === 'infinity' ? false : soft > hard))
    throw new SettingsError(`Soft resource limit above hard limit: ${v}`, undefined, v);
  if (soft === 'infinity' && hard !== 'infinity')
    throw new SettingsError(`Soft resource limit above hard limit: ${v}`, undefined, v);
  return { soft, hard };
}

/** --rlimit=NAME=VALUE */
export function parseRlimitAssignment(v: string): [RlimitName, Rlimit] {
  const i = v.indexOf('=');
  if (i < 0) throw new SettingsError(`Resource limit lacks '=': ${v}`, undefined, v);
  return [parseRlimitName(v.slice(0, i)), parseRlimitValue(v.slice(i + 1))];
}

/** personality_from_string(): only the architectures this machine can run. */
export function parsePersonality(v: string): 'x86' | 'x86-64' {
  if (v === 'x86' || v === 'x86-64') return v;
  throw new SettingsError(`Unknown or unsupported personality '${v}'.`, undefined, v);
}

const SIGNALS: Record<string, number> = {
  HUP: 1,
  INT: 2,
  QUIT: 3,
  ILL: 4,
  TRAP: 5,
  ABRT: 6,
  BUS: 7,
  FPE: 8,
  KILL: 9,
  USR1: 10,
  SEGV: 11,
  USR2: 12,
  PIPE: 13,
  ALRM: 14,
  TERM: 15,
  STKFLT: 16,
  CHLD: 17,
  CONT: 18,
  STOP: 19,
  TSTP: 20,
  TTIN: 21,
  TTOU: 22,
  URG: 23,
  XCPU: 24,
  XFSZ: 25,
  VTALRM: 26,
  PROF: 27,
  WINCH: 28,
  IO: 29,
  PWR: 30,
  SYS: 31,
};
export const SIGRTMIN = 34;
export const SIGRTMAX = 64;

/** signal_from_string(): "TERM", "SIGTERM", "15", "RTMIN+3", "SIGRTMIN+3". */
export function parseSignal(v: string): number {
  let s = v.startsWith('SIG') ? v.slice(3) : v;
  if (/^[0-9]+$/.test(v)) {
    const n = Number(v);
    if (n >= 1 && n <= SIGRTMAX) return n;
    throw new SettingsError(`Cannot parse signal: ${v}`, undefined, v);
  }
  const named = SIGNALS[s];
  if (named !== undefined) return named;
  let m = /^RTMIN(?:\+([0-9]+))?$/.exec(s);
  if (m) {
    const n = SIGRTMIN + Number(m[1] ?? 0);
    if (n <= SIGRTMAX) return n;
  }
  m = /^RTMAX(?:-([0-9]+))?$/.exec(s);
  if (m) {
    const n = SIGRTMAX - Number(m[1] ?? 0);
    if (n >= SIGRTMIN) return n;
  }
  s = v;
  throw new SettingsError(`Cannot parse signal: ${s}`, undefined, v);
}

/** signal_to_string() */
export function signalName(n: number): string {
  for (const [k, v] of Object.entries(SIGNALS)) if (v === n) return k;
  if (n === SIGRTMIN) return 'RTMIN';
  if (n > SIGRTMIN && n <= SIGRTMAX) return `RTMIN+${n - SIGRTMIN}`;
  return String(n);
}

export const CONSOLE_MODES: readonly ConsoleMode[] = ['interactive', 'read-only', 'passive', 'pipe', 'autopipe'];
export function parseConsoleMode(v: string): ConsoleMode {
  if ((CONSOLE_MODES as readonly string[]).includes(v)) return v as ConsoleMode;
  throw new SettingsError(`Unknown console mode: ${v}`, undefined, v);
}

export const RESOLV_CONF_MODES: readonly ResolvConfMode[] = [
  'off',
  'copy-host',
  'copy-static',
  'copy-uplink',
  'copy-stub',
  'replace-host',
  'replace-static',
  'replace-uplink',
  'replace-stub',
  'bind-host',
  'bind-static',
  'bind-uplink',
  'bind-stub',
  'delete',
  'auto',
];
/** resolv_conf_mode_from_string(): the modes, plus booleans (yes = auto, no = off). */
export function parseResolvConfMode(v: string): ResolvConfMode {
  const b = parseBooleanC(v);
  if (b.ok) return b.value ? 'auto' : 'off';
  if ((RESOLV_CONF_MODES as readonly string[]).includes(v)) return v as ResolvConfMode;
  throw new SettingsError(`Failed to parse /etc/resolv.conf mode: ${v}`, undefined, v);
}

export const TIMEZONE_MODES: readonly TimezoneMode[] = ['off', 'copy', 'bind', 'symlink', 'delete', 'auto'];
/** timezone_mode_from_string(): the modes, plus booleans (yes = auto, no = off). */
export function parseTimezoneMode(v: string): TimezoneMode {
  const b = parseBooleanC(v);
  if (b.ok) return b.value ? 'auto' : 'off';
  if ((TIMEZONE_MODES as readonly string[]).includes(v)) return v as TimezoneMode;
  throw new SettingsError(`Failed to parse /etc/localtime mode: ${v}`, undefined, v);
}

/** parse_link_journal(): no|host|guest|auto|try-host|try-guest, plus booleans (yes = auto). */
export function parseLinkJournal(v: string): { mode: LinkJournal; try: boolean } {
  if (v === 'host' || v === 'guest' || v === 'auto') return { mode: v, try: false };
  if (v === 'try-host') return { mode: 'host', try: true };
  if (v === 'try-guest') return { mode: 'guest', try: true };
  const b = parseBooleanC(v);
  if (b.ok) return { mode: b.value ? 'auto' : 'no', try: false };
  throw new SettingsError(`Failed to parse link journal mode ${v}`, undefined, v);
}

/** volatile_mode_from_string(): booleans map to yes/no. */
export function parseVolatileMode(v: string): VolatileMode {
  if (v === 'state' || v === 'overlay') return v;
  try {
    return parseBoolean(v) ? 'yes' : 'no';
  } catch {
    throw new SettingsError(`Failed to parse --volatile= argument: ${v}`, undefined, v);
  }
}

/**
 * --private-users=: no (off), yes (on, UID base read from the directory's owner: shift left undefined), pick,
 * identity (0:65536), or BASE[:COUNT]. Digits only are never booleans here ("1" is the base UID 1), unlike the
 * PrivateUsers= file setting.
 */
export function parsePrivateUsers(v: string): UserNamespaceSetting {
  if (!/^[0-9]+$/.test(v)) {
    const b = parseBooleanC(v);
    if (b.ok) return b.value ? { mode: 'fixed', range: 65536 } : { mode: 'no' };
  }
  if (v === 'pick') return { mode: 'pick', range: 65536 };
  if (v === 'identity') return { mode: 'fixed', shift: 0, range: 65536 };
  const m = /^([0-9]+)(?::([0-9]+))?$/.exec(v);
  if (!m) throw new SettingsError(`Failed to parse UID "${v}": Invalid argument`, undefined, v);
  const shift = Number(m[1]);
  const range = m[2] !== undefined ? Number(m[2]) : 65536;
  if (!Number.isSafeInteger(shift) || shift > 0xfffffffe)
    throw new SettingsError(`Failed to parse UID "${m[1]}": Numerical result out of range`, undefined, v);
  if (range <= 0) throw new SettingsError(`UID range cannot be empty or go beyond ${0xffffffff}.`, undefined, v);
  if (shift + range > 0xffffffff) throw new SettingsError(`UID range cannot be empty or go beyond ${0xffffffff}.`, undefined, v);
  return { mode: 'fixed', shift, range };
}

/** user_namespace_ownership_from_string(): off|chown|map|foreign|auto, plus booleans (yes = auto, no = off). */
export function parseUserNsOwnership(v: string): UserNamespaceOwnership {
  const b = parseBooleanC(v);
  if (b.ok) return b.value ? 'auto' : 'off';
  if (v === 'off' || v === 'chown' || v === 'map' || v === 'foreign' || v === 'auto') return v;
  throw new SettingsError(`Cannot parse --user-namespace-ownership= value: ${v}`, undefined, v);
}

/** expose_port_parse(): "[PROTO:]HOSTPORT[:CONTAINERPORT]" */
export function parseExposePort(v: string): ExposePort {
  let protocol: 'tcp' | 'udp' = 'tcp';
  let rest = v;
  if (v.startsWith('tcp:')) rest = v.slice(4);
  else if (v.startsWith('udp:')) {
    protocol = 'udp';
    rest = v.slice(4);
  }
  const port = (s: string) => {
    if (!/^[0-9]+$/.test(s)) throw new SettingsError(`Failed to parse host port ${v}`, undefined, v);
    const n = Number(s);
    if (n < 1 || n > 65535) throw new SettingsError(`Failed to parse host port ${v}`, undefined, v);
    return n;
  };
  const parts = rest.split(':');
  if (parts.length > 2) throw new SettingsError(`Failed to parse host port ${v}`, undefined, v);
  const hostPort = port(parts[0]!);
  const containerPort = parts.length === 2 ? port(parts[1]!) : hostPort;
  return { protocol, hostPort, containerPort };
}

/** An environment assignment: NAME=VALUE with a valid name (env_assignment_is_valid). */
export function parseEnvAssignment(v: string): string {
  const i = v.indexOf('=');
  const name = i < 0 ? v : v.slice(0, i);
  if (i < 0 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name))
    throw new SettingsError(`Environment variable assignment '${v}' is not valid.`, undefined, v);
  return v;
}

/** Capability names as systemd's capability_from_name() accepts them: "CAP_SYS_ADMIN", "sys_admin", "all". */
export const CAPABILITIES = [
  'chown',
  'dac_override',
  'dac_read_search',
  'fowner',
  'fsetid',
  'kill',
  'setgid',
  'setuid',
  'setpcap',
  'linux_immutable',
  'net_bind_service',
  'net_broadcast',
  'net_admin',
  'net_raw',
  'ipc_lock',
  'ipc_owner',
  'sys_module',
  'sys_rawio',
  'sys_chroot',
  'sys_ptrace',
  'sys_pacct',
  'sys_admin',
  'sys_boot',
  'sys_nice',
  'sys_resource',
  'sys_time',
  'sys_tty_config',
  'mknod',
  'lease',
  'audit_write',
  'audit_control',
  'setfcap',
  'mac_override',
  'mac_admin',
  'syslog',
  'wake_alarm',
  'block_suspend',
  'audit_read',
  'perfmon',
  'bpf',
  'checkpoint_restore',
] as const;

/** A list of capability names separated by commas or spaces; returns upper-case "CAP_X" names or "all". */
export function parseCapabilityList(v: string): string[] {
  const out: string[] = [];
  for (const raw of v.split(/[,\s]+/).filter((x) => x !== '')) {
    if (raw.toLowerCase() === 'all') {
      out.push('all');
      continue;
    }
    const n = raw.toLowerCase().replace(/^cap_/, '');
    if (!(CAPABILITIES as readonly string[]).includes(n) && !/^[0-9]+$/.test(n))
      throw new SettingsError(`Failed to parse capability: ${raw}`, undefined, raw);
    out.push(/^[0-9]+$/.test(n) ? `CAP_${(CAPABILITIES[Number(n)] ?? n).toString().toUpperCase()}` : `CAP_${n.toUpperCase()}`);
  }
  return out;
}
