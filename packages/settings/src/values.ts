/**
 * Value grammars shared by the command line and .nspawn files, each following the systemd function named
 * beside it. Every parser throws SettingsError with a message that names the value; callers add the
 * option or FILE:LINE.
 */
import {
  type ConsoleMode,
  type LinkJournal,
  type ResolvConfMode,
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

// the name rules live in names.ts (one rule for every package); kept exported from here for the existing importers
export { hostnameIsValid, machineNameIsValid } from './names.js';

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










const RLIMIT_LOOKUP = new Map<string, RlimitName>(RLIMIT_NAMES.map((n) => [n, n]));

/** rlimit_from_string_harder(): "NOFILE", "RLIMIT_NOFILE", "nofile". */
export function parseRlimitName(s: string): RlimitName {
  const n = s.toUpperCase().replace(/^RLIMIT_/, '');
  const r = RLIMIT_LOOKUP.get(n);
  if (!r) throw new SettingsError(`Unknown resource limit: ${s}`, undefined, s);
  return r;
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


/** signal_to_string() */
/** number to name, the first name a number has in SIGNALS (built on first use) */
let SIGNAL_NAMES: Map<number, string> | undefined;

export function signalName(n: number): string {
  SIGNAL_NAMES ??= new Map(Object.entries(SIGNALS).reverse().map(([k, v]) => [v, k]));
  const name = SIGNAL_NAMES.get(n);
  if (name !== undefined) return name;
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

