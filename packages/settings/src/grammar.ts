/**
 * The value grammar of systemd-nspawn's settings: one definition per kind of value, shared by the command line
 * (cli-options.ts, through the throwing adapters of values.ts) and by .nspawn files (nspawn-keys.ts), as
 * systemd's parse_argv() (nspawn.c) and config_parse_*() (nspawn-settings.c) share string tables and parse
 * functions. Nothing here throws or words a message: results are errno names (or which part failed), and each
 * caller words the message as systemd does in its place. UNSET is the value of an assignment that resets a
 * setting (an empty `Hostname=`, `-M ''`), as systemd's "invalid"/NULL values are.
 */
import { type Errno, type Result, WHITESPACE, fail, ok, parseBooleanC, parseUid, safeAtoi, safeAtou32 } from './c-util.js';
import { EXTRACT_DONT_COALESCE_SEPARATORS, EXTRACT_UNQUOTE, extractFirstWord, splitWords } from './extract-word.js';
import type {
  ConsoleMode,
  LinkJournal,
  ResolvConfMode,
  Settings,
  TimezoneMode,
  UserNamespaceOwnership,
  UserNamespaceSetting,
  VolatileMode,
} from './model.js';
import { pathIsAbsolute, pathIsNormalized } from './paths.js';

// ---------------------------------------------------------------------------------------------------------------
// unset

/** The value of an assignment that resets a setting to "not set" (the field is deleted). */
export const UNSET: unique symbol = Symbol('unset');
export type Unset = typeof UNSET;

/** A grammar whose empty value is UNSET (systemd's `if (isempty(rvalue)) { reset; return 0; }`). */
export const orUnset =
  <T>(parse: (s: string) => Result<T>) =>
  (s: string): Result<T | Unset> =>
    s === '' ? ok(UNSET) : parse(s);

/** Stores a parsed value in the settings: UNSET deletes the field. */
export function assign<K extends keyof Settings>(s: Settings, field: K, value: Settings[K] | Unset): void {
  if (value === UNSET) delete s[field];
  else s[field] = value;
}

// ---------------------------------------------------------------------------------------------------------------
// string tables (DEFINE_STRING_TABLE_LOOKUP, DEFINE_STRING_TABLE_LOOKUP_WITH_BOOLEAN)

export interface StringTable<T extends string> {
  /** the names, in systemd's table order */
  readonly values: readonly T[];
  /** xxx_from_string(): the name, or, for tables with boolean aliases, a boolean ("no" is the first value) */
  fromString(s: string): Result<T>;
}

export function stringTable<T extends string>(values: readonly T[], yes?: T): StringTable<T> {
  return {
    values,
    fromString(s) {
      if (yes !== undefined) {
        const b = parseBooleanC(s);
        if (b.ok) return ok(b.value ? yes : values[0]!);
      }
      return (values as readonly string[]).includes(s) ? ok(s as T) : fail('EINVAL');
    },
  };
}

export const CONSOLE_MODES: readonly ConsoleMode[] = ['interactive', 'read-only', 'passive', 'pipe', 'autopipe'];
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
export const TIMEZONE_MODES: readonly TimezoneMode[] = ['off', 'copy', 'bind', 'symlink', 'delete', 'auto'];
export const VOLATILE_MODES: readonly VolatileMode[] = ['no', 'yes', 'state', 'overlay'];
/** 'foreign' exists since systemd v258. */
export const USERNS_OWNERSHIPS: readonly UserNamespaceOwnership[] = ['off', 'chown', 'map', 'foreign', 'auto'];

/** console_mode_from_string() */
export const CONSOLE_MODE = stringTable(CONSOLE_MODES);
/** resolv_conf_mode_from_string(): the modes, plus booleans (yes = auto, no = off) */
export const RESOLV_CONF_MODE = stringTable(RESOLV_CONF_MODES, 'auto');
/** timezone_mode_from_string(): the modes, plus booleans (yes = auto, no = off) */
export const TIMEZONE_MODE = stringTable(TIMEZONE_MODES, 'auto');
/** volatile_mode_from_string(): booleans are yes and no */
export const VOLATILE_MODE = stringTable(VOLATILE_MODES, 'yes');
/** user_namespace_ownership_from_string(): the modes, plus booleans (yes = auto, no = off) */
export const USERNS_OWNERSHIP = stringTable(USERNS_OWNERSHIPS, 'auto');

// ---------------------------------------------------------------------------------------------------------------
// scalars

/** parse_link_journal(): auto|guest|host|try-guest|try-host or a boolean (yes = auto). */
export function linkJournalFromString(s: string): Result<{ mode: LinkJournal; try: boolean }> {
  switch (s) {
    case 'auto':
    case 'guest':
    case 'host':
      return ok({ mode: s, try: false });
    case 'try-guest':
      return ok({ mode: 'guest', try: true });
    case 'try-host':
      return ok({ mode: 'host', try: true });
  }
  const b = parseBooleanC(s);
  return b.ok ? ok({ mode: b.value ? 'auto' : 'no', try: false }) : b;
}

/** sd_id128_from_string(): 32 hex digits or the 8-4-4-4-12 UUID form; returns 32 lower-case hex digits. */
export function id128FromString(s: string): Result<string> {
  if (/^[0-9a-fA-F]{32}$/.test(s)) return ok(s.toLowerCase());
  if (/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(s))
    return ok(s.replace(/-/g, '').toLowerCase());
  return fail('EINVAL');
}

/** sd_id128_is_null() of 32 hex digits */
export const id128IsNull = (hex: string): boolean => /^0+$/.test(hex);

/** personality_from_string() on an x86-64 host: only the native and the secondary architecture. */
export function personalityFromString(s: string): Result<'x86' | 'x86-64'> {
  return s === 'x86' || s === 'x86-64' ? ok(s) : fail('EINVAL');
}

/** parse_oom_score_adjust(): -1000..1000. */
export function parseOomScoreAdjust(s: string): Result<number> {
  const r = safeAtoi(s);
  if (!r.ok) return r;
  return r.value < -1000 || r.value > 1000 ? fail('ERANGE') : r;
}

/** valid_user_group_name(u, 0): strict POSIX-ish names, at most 31 characters. */
export function validUserGroupName(u: string): boolean {
  if (u === '') return false;
  if (parseUid(u).ok) return false;
  return /^[A-Za-z_][A-Za-z0-9_-]*$/.test(u) && u.length <= 31;
}

/** parse_user_shell(): an absolute normalized path, or a boolean. */
export function parseUserShell(s: string): Result<string | boolean> {
  if (pathIsAbsolute(s) && pathIsNormalized(s)) return ok(s);
  return parseBooleanC(s);
}

// ---------------------------------------------------------------------------------------------------------------
// private users

export type PrivateUsersResult =
  | { ok: true; value: UserNamespaceSetting }
  /** which part is wrong: RANGE (after the colon) or SHIFT (before it), or the two together */
  | { ok: false; part: 'range' | 'shift' | 'combination'; errno: Errno; range: string | undefined };

/**
 * --private-users= and PrivateUsers=: a boolean (no: off; yes: on, the base UID read from the directory's owner,
 * so `shift` is left out), pick, identity (0:65536), or SHIFT[:RANGE] with SHIFT a decimal UID and RANGE any C
 * number (65536 when left out). The command line never reads digits as a boolean (`--private-users=1` is the base
 * UID 1); a file does (`PrivateUsers=1` is yes): `digitsAreBoolean`.
 */
export function privateUsersFromString(v: string, digitsAreBoolean: boolean): PrivateUsersResult {
  if (digitsAreBoolean || !/^[0-9]*$/.test(v)) {
    const b = parseBooleanC(v);
    if (b.ok) return { ok: true, value: b.value ? { mode: 'fixed', range: 0x10000 } : { mode: 'no' } };
  }
  if (v === 'pick') return { ok: true, value: { mode: 'pick', range: 0x10000 } };
  if (v === 'identity') return { ok: true, value: { mode: 'fixed', shift: 0, range: 0x10000 } };
  const colon = v.indexOf(':');
  const shiftText = colon < 0 ? v : v.slice(0, colon);
  const rangeText = colon < 0 ? undefined : v.slice(colon + 1);
  let range = 0x10000;
  if (rangeText !== undefined) {
    const r = safeAtou32(rangeText);
    if (!r.ok) return { ok: false, part: 'range', errno: r.errno, range: rangeText };
    range = r.value;
  }
  const shift = parseUid(shiftText);
  if (!shift.ok) return { ok: false, part: 'shift', errno: shift.errno, range: rangeText };
  // userns_shift_range_valid()
  if (range <= 0 || shift.value > 0xffffffff - range) return { ok: false, part: 'combination', errno: 'EINVAL', range: rangeText };
  return { ok: true, value: { mode: 'fixed', shift: shift.value, range } };
}

// ---------------------------------------------------------------------------------------------------------------
// lists

/**
 * --system-call-filter= and SystemCallFilter=: "~" in front makes it a deny list; the names are words split at
 * blanks (extract_first_word(..., 0)). `ok` is false when a word could not be extracted; `names` then has the
 * words before it (a file keeps them, the command line refuses the option).
 */
export function syscallFilterWords(v: string): { deny: boolean; names: string[]; ok: boolean } {
  const deny = v.startsWith('~');
  const names: string[] = [];
  let rest: string | null = deny ? v.slice(1) : v;
  for (;;) {
    const w = extractFirstWord(rest, WHITESPACE, 0);
    if (!w.ok) return { deny, names, ok: false };
    if (w.word === null) return { deny, names, ok: true };
    names.push(w.word);
    rest = w.rest;
  }
}

const CPU_SET_MAX_NCPU = 8192;

/** parse_range(): "N" or "N-M" with safe_atou(). */
function parseRange(t: string): Result<[number, number]> {
  const a = extractFirstWord(t, '-', EXTRACT_DONT_COALESCE_SEPARATORS);
  if (!a.ok) return a;
  if (a.word === null) return fail('EINVAL');
  const l = safeAtou32(a.word);
  if (!l.ok) return l;
  if (a.rest === null) return ok([l.value, l.value]);
  if (a.rest === '') return fail('EINVAL');
  const u = safeAtou32(a.rest);
  return u.ok ? ok([l.value, u.value]) : u;
}

/** config_parse_cpu_set() for one non-empty value (cpu-set-util.c): the CPUs, plus one message per word systemd skips. */
export function parseCpuSet(v: string): { cpus: number[] | undefined; warnings: string[] } {
  const words = splitWords(v, WHITESPACE + ',', EXTRACT_UNQUOTE);
  if (!words.ok) return { cpus: undefined, warnings: ['Failed to parse CPU set, ignoring assignment.'] };
  const cpus = new Set<number>();
  const warnings: string[] = [];
  for (const w of words.words) {
    const r = parseRange(w);
    if (!r.ok) {
      warnings.push(`Failed to parse CPU range, ignoring assignment: ${w}`);
      continue;
    }
    const [lower, upper] = r.value;
    if (lower > upper) {
      warnings.push(`Invalid CPU range (${lower} > ${upper}), ignoring assignment: ${w}`);
      continue;
    }
    if (upper >= CPU_SET_MAX_NCPU) {
      warnings.push(`Failed to set CPU(s), ignoring assignment: ${w}`);
      continue;
    }
    for (let i = lower; i <= upper; i++) cpus.add(i);
  }
  return { cpus: cpus.size > 0 ? [...cpus].sort((a, b) => a - b) : undefined, warnings };
}

/**
 * CPUAffinity= in a .nspawn file as systemd-nspawn 252 reads it (parse_cpu_set_extend() with warnings): a word that is
 * not a number or range, or a CPU beyond the set's size, fails the whole file (FATAL: the message 252 logs before
 * "Failed to parse file"); a range whose start is past its end is a warning. No CPU at all resets the list.
 */
export function parseCpuAffinity252(v: string): { cpus: number[] | undefined; warnings: string[]; fatal?: string } {
  const words = splitWords(v, WHITESPACE + ',', EXTRACT_UNQUOTE);
  if (!words.ok) return { cpus: undefined, warnings: [], fatal: `Invalid value for CPUAffinity: ${v}` };
  const cpus = new Set<number>();
  const warnings: string[] = [];
  for (const w of words.words) {
    const r = parseRange(w);
    if (!r.ok) return { cpus: undefined, warnings, fatal: `Failed to parse CPU affinity '${w}'` };
    const [lower, upper] = r.value;
    if (lower > upper) {
      warnings.push(`Range '${w}' is invalid, ${lower} > ${upper}, ignoring.`);
      continue;
    }
    // (cpu_set_add() from the top down: the first CPU it cannot add is the upper one)
    if (upper >= CPU_SET_MAX_NCPU) return { cpus: undefined, warnings, fatal: `Cannot add CPU ${upper} to set: Numerical result out of range` };
    for (let i = lower; i <= upper; i++) cpus.add(i);
  }
  return { cpus: cpus.size > 0 ? [...cpus].sort((a, b) => a - b) : undefined, warnings };
}

/** Writes a CPU list compactly ("0-3 8"). */
export function formatCpuSet(cpus: readonly number[]): string {
  const sorted = [...new Set(cpus)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(' ');
}
