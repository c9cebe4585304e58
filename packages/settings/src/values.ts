/**
 * The command line's face of the value grammar (grammar.ts): each parser throws SettingsError with systemd-nspawn's
 * message for a bad value (callers add the option); the .nspawn keys use the same grammar and word their own
 * warnings. Also the hostname rules (hostname-util.c), used by -M, --hostname=, Hostname= and the default machine
 * name.
 */
import { type Errno, errnoText, parseBooleanC } from './c-util.js';
import {
  CONSOLE_MODE,
  RESOLV_CONF_MODE,
  TIMEZONE_MODE,
  USERNS_OWNERSHIP,
  VOLATILE_MODE,
  id128FromString,
  linkJournalFromString,
  personalityFromString,
  privateUsersFromString,
} from './grammar.js';
import {
  type ConsoleMode,
  type LinkJournal,
  type ResolvConfMode,
  SettingsError,
  type TimezoneMode,
  type UserNamespaceOwnership,
  type UserNamespaceSetting,
  type VolatileMode,
} from './model.js';

const bad = (message: string, v: string): never => {
  throw new SettingsError(message, undefined, v);
};

/** parse_boolean(): 1/yes/y/true/t/on and 0/no/n/false/f/off, ASCII case-insensitive. */
export function parseBoolean(v: string): boolean {
  const r = parseBooleanC(v);
  return r.ok ? r.value : bad(`Failed to parse boolean value: ${v}`, v);
}

const HOST_NAME_MAX = 64;
const isLdh = (c: string) => /^[A-Za-z0-9-]$/.test(c);

// the name rules live in names.ts (one rule for every package); kept exported from here for the existing importers
import { hostnameIsValid } from './names.js';
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

/** hostname_is_valid(s, 0) && dns_name_is_valid(s): also no label longer than 63 characters. */
export function hostnameAndDnsValid(s: string): 'ok' | 'hostname' | 'dns' {
  if (!hostnameIsValid(s)) return 'hostname';
  return s.split('.').every((l) => l.length <= 63) ? 'ok' : 'dns';
}

/** sd_id128_from_string(): 32 hex digits, or a UUID with dashes. Returns 32 lower-case hex digits. */
export function parseId128(v: string): string {
  const r = id128FromString(v);
  return r.ok ? r.value : bad(`Invalid UUID/machine ID: ${v}`, v);
}

/** Formats 32 hex digits as a UUID. */
export function id128ToUuid(hex: string): string {
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** personality_from_string(): only the architectures this machine can run. */
export function parsePersonality(v: string): 'x86' | 'x86-64' {
  const r = personalityFromString(v);
  return r.ok ? r.value : bad(`Unknown or unsupported personality '${v}'.`, v);
}

export function parseConsoleMode(v: string): ConsoleMode {
  const r = CONSOLE_MODE.fromString(v);
  return r.ok ? r.value : bad(`Unknown console mode: ${v}`, v);
}

/** resolv_conf_mode_from_string(): the modes, plus booleans (yes = auto, no = off). */
export function parseResolvConfMode(v: string): ResolvConfMode {
  const r = RESOLV_CONF_MODE.fromString(v);
  return r.ok ? r.value : bad(`Failed to parse /etc/resolv.conf mode: ${v}`, v);
}

/** timezone_mode_from_string(): the modes, plus booleans (yes = auto, no = off). */
export function parseTimezoneMode(v: string): TimezoneMode {
  const r = TIMEZONE_MODE.fromString(v);
  return r.ok ? r.value : bad(`Failed to parse /etc/localtime mode: ${v}`, v);
}

/** parse_link_journal(): no|host|guest|auto|try-host|try-guest, plus booleans (yes = auto). */
export function parseLinkJournal(v: string): { mode: LinkJournal; try: boolean } {
  const r = linkJournalFromString(v);
  return r.ok ? r.value : bad(`Failed to parse link journal mode ${v}`, v);
}

/** volatile_mode_from_string(): booleans map to yes/no. */
export function parseVolatileMode(v: string): VolatileMode {
  const r = VOLATILE_MODE.fromString(v);
  return r.ok ? r.value : bad(`Failed to parse --volatile= argument: ${v}`, v);
}

/**
 * --private-users=: no (off), yes (on, UID base read from the directory's owner: shift left undefined), pick,
 * identity (0:65536), or BASE[:COUNT]. Digits only are never booleans here ("1" is the base UID 1), unlike the
 * PrivateUsers= file setting.
 */
export function parsePrivateUsers(v: string): UserNamespaceSetting {
  const r = privateUsersFromString(v, false);
  if (r.ok) return r.value;
  const why = (e: Errno) => errnoText(e);
  if (r.part === 'range') return bad(`Failed to parse UID range "${r.range}": ${why(r.errno)}`, v);
  if (r.part === 'shift') return bad(`Failed to parse UID "${v}": ${why(r.errno)}`, v);
  return bad(`UID range cannot be empty or go beyond ${0xffffffff}.`, v);
}

/** user_namespace_ownership_from_string(): off|chown|map|foreign|auto, plus booleans (yes = auto, no = off). */
export function parseUserNsOwnership(v: string): UserNamespaceOwnership {
  const r = USERNS_OWNERSHIP.fromString(v);
  return r.ok ? r.value : bad(`Cannot parse --user-namespace-ownership= value: ${v}`, v);
}

/** An environment assignment: NAME=VALUE with a valid name (env_assignment_is_valid). */
export function parseEnvAssignment(v: string): string {
  const i = v.indexOf('=');
  const name = i < 0 ? v : v.slice(0, i);
  if (i < 0 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) bad(`Environment variable assignment '${v}' is not valid.`, v);
  return v;
}
