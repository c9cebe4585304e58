/**
 * The value grammars of .nspawn keys, each a port of the systemd (v259) function named beside it, with systemd's
 * edge cases. They return Result values (errno names) instead of throwing; nspawn-keys.ts turns them into
 * diagnostics.
 */
import {
  type Errno,
  type Result,
  UINT64_MAX,
  WHITESPACE,
  fail,
  isEmpty,
  ok,
  parseBooleanC,
  parseUid,
  safeAtoi,
  safeAtou16,
  safeAtou32,
  safeAtou64,
  SAFE_ATO_REFUSE_LEADING_WHITESPACE,
  strtoll,
  strtoull,
  utf8Length,
  STRERROR,
} from './c-util.js';
import { EXTRACT_DONT_COALESCE_SEPARATORS, EXTRACT_UNQUOTE, extractFirstWord, splitWords } from './extract-word.js';
import type {
  BindIdmapping,
  CustomMount,
  ExposePort,
  LinkJournal,
  Rlimit,
  RlimitName,
  UserNamespaceSetting,
} from './model.js';
import { CAPABILITIES, hostnameIsValid } from './values.js';

// ---------------------------------------------------------------------------------------------------------------
// paths (path-util.c)

const NAME_MAX = 255;
const PATH_MAX = 4096;

export const pathIsAbsolute = (p: string): boolean => p.startsWith('/');

/** path_simplify(): drops empty and "." components and leading ".." of absolute paths; "" stays "". */
export function pathSimplify(path: string): string {
  if (path === '') return path;
  const absolute = pathIsAbsolute(path);
  const out: string[] = [];
  for (const c of path.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..' && absolute && out.length === 0) continue;
    out.push(c);
  }
  const s = (absolute ? '/' : '') + out.join('/');
  return s === '' ? '.' : s;
}

/** path_is_valid_full(p, accept_dot_dot) */
export function pathIsValid(p: string, acceptDotDot = true): boolean {
  if (p === '') return false;
  if (utf8Length(p) >= PATH_MAX) return false;
  for (const c of p.split('/')) {
    if (utf8Length(c) > NAME_MAX) return false;
    if (!acceptDotDot && c === '..') return false;
  }
  return true;
}

/** path_is_normalized() */
export function pathIsNormalized(p: string): boolean {
  if (!pathIsValid(p, false)) return false;
  if (p === '.' || p.startsWith('./') || p.endsWith('/.') || p.includes('/./')) return false;
  return !p.includes('//');
}

/** path_simplify_and_warn(PATH_CHECK_ABSOLUTE): the simplified path, or why not. */
export function checkAbsolutePath(p: string): { ok: true; value: string } | { ok: false; why: string } {
  if (!pathIsAbsolute(p)) return { ok: false, why: 'Path is not absolute, ignoring.' };
  const s = pathSimplify(p);
  if (!pathIsValid(s)) return { ok: false, why: `Path has invalid length (${utf8Length(s)} bytes), ignoring.` };
  if (!pathIsNormalized(s)) return { ok: false, why: `Path is not normalized, ignoring: ${s}` };
  return { ok: true, value: s };
}

/** path_make_absolute_cwd() */
export function makeAbsolute(p: string, cwd: string): string {
  if (pathIsAbsolute(p)) return p;
  return cwd.endsWith('/') ? cwd + p : `${cwd}/${p}`;
}

// ---------------------------------------------------------------------------------------------------------------
// numbers with units (parse-util.c, time-util.c)

export const USEC_INFINITY = UINT64_MAX;
export const USEC_PER_SEC = 1_000_000n;
const USEC_PER_MINUTE = 60n * USEC_PER_SEC;
const USEC_PER_HOUR = 60n * USEC_PER_MINUTE;
const USEC_PER_DAY = 24n * USEC_PER_HOUR;
const TIME_UNITS: ReadonlyArray<readonly [string, bigint]> = [
  ['seconds', USEC_PER_SEC],
  ['second', USEC_PER_SEC],
  ['sec', USEC_PER_SEC],
  ['s', USEC_PER_SEC],
  ['minutes', USEC_PER_MINUTE],
  ['minute', USEC_PER_MINUTE],
  ['min', USEC_PER_MINUTE],
  ['months', 2629800n * USEC_PER_SEC],
  ['month', 2629800n * USEC_PER_SEC],
  ['M', 2629800n * USEC_PER_SEC],
  ['msec', 1000n],
  ['ms', 1000n],
  ['m', USEC_PER_MINUTE],
  ['hours', USEC_PER_HOUR],
  ['hour', USEC_PER_HOUR],
  ['hr', USEC_PER_HOUR],
  ['h', USEC_PER_HOUR],
  ['days', USEC_PER_DAY],
  ['day', USEC_PER_DAY],
  ['d', USEC_PER_DAY],
  ['weeks', 7n * USEC_PER_DAY],
  ['week', 7n * USEC_PER_DAY],
  ['w', 7n * USEC_PER_DAY],
  ['years', 31557600n * USEC_PER_SEC],
  ['year', 31557600n * USEC_PER_SEC],
  ['y', 31557600n * USEC_PER_SEC],
  ['usec', 1n],
  ['us', 1n],
  ['\u03bcs', 1n],
  ['\u00b5s', 1n],
];

const spanOf = (s: string, i: number, set: string): number => {
  let j = i;
  while (j < s.length && set.includes(s[j]!)) j++;
  return j;
};

/** parse_time(t, &usec, default_unit): "1h 30min", "5", "2.5s", "infinity". */
export function parseTime(t: string, defaultUnit: bigint): Result<bigint> {
  let p = spanOf(t, 0, WHITESPACE);
  if (t.startsWith('infinity', p)) {
    return spanOf(t, p + 8, WHITESPACE) === t.length ? ok(USEC_INFINITY) : fail('EINVAL');
  }
  let usec = 0n;
  for (let something = false; ; ) {
    p = spanOf(t, p, WHITESPACE);
    if (p >= t.length) return something ? ok(usec) : fail('EINVAL');
    if (t[p] === '-') return fail('ERANGE');
    const r = strtoll(t.slice(p), 10);
    if (r.erange) return fail('ERANGE');
    if (r.value < 0n) return fail('ERANGE');
    const e = r.end === 0 ? p : p + r.end;
    let q: number;
    if (t[e] === '.') q = spanOf(t, e + 1, '0123456789');
    else if (e === p) return fail('EINVAL');
    else q = e;
    let multiplier = defaultUnit;
    const afterWs = spanOf(t, q, WHITESPACE);
    let s = afterWs;
    for (const [suffix, factor] of TIME_UNITS)
      if (t.startsWith(suffix, afterWs)) {
        multiplier = factor;
        s = afterWs + suffix.length;
        break;
      }
    if (s === q && s < t.length) return fail('EINVAL');
    p = s;
    if (r.value >= USEC_INFINITY / multiplier) return fail('ERANGE');
    const k = r.value * multiplier;
    if (k >= USEC_INFINITY - usec) return fail('ERANGE');
    usec += k;
    something = true;
    if (t[e] === '.') {
      let m = multiplier / 10n;
      let b = e + 1;
      for (; b < t.length && t[b]! >= '0' && t[b]! <= '9'; b++, m /= 10n) {
        const k2 = BigInt(t.charCodeAt(b) - 48) * m;
        if (k2 >= USEC_INFINITY - usec) return fail('ERANGE');
        usec += k2;
      }
      if (b === e + 1) return fail('EINVAL');
    }
  }
}

const IEC_SUFFIXES: ReadonlyArray<readonly [string, bigint]> = [
  ['E', 1n << 60n],
  ['P', 1n << 50n],
  ['T', 1n << 40n],
  ['G', 1n << 30n],
  ['M', 1n << 20n],
  ['K', 1n << 10n],
  ['B', 1n],
  ['', 1n],
];

/** parse_size(t, 1024, &size): "10M", "1G 512M", "1.5K". */
export function parseSize(t: string): Result<bigint> {
  let p = 0;
  let r = 0n;
  let startPos = 0;
  do {
    p = spanOf(t, p, WHITESPACE);
    const n = strtoull(t.slice(p), 10);
    if (n.erange) return fail('ERANGE');
    if (n.end === 0) return fail('EINVAL');
    if (t[p] === '-') return fail('ERANGE');
    let e = p + n.end;
    let frac = 0;
    if (t[e] === '.') {
      e++;
      if (t[e] !== undefined && t[e]! >= '0' && t[e]! <= '9') {
        const f = strtoull(t.slice(e), 10);
        if (f.erange) return fail('ERANGE');
        frac = Number(f.value);
        for (let k = 0; k < f.end; k++) frac /= 10;
        e += f.end;
      }
    }
    e = spanOf(t, e, WHITESPACE);
    let i = startPos;
    for (; i < IEC_SUFFIXES.length; i++) if (t.startsWith(IEC_SUFFIXES[i]![0], e)) break;
    if (i >= IEC_SUFFIXES.length) return fail('EINVAL');
    const [suffix, factor] = IEC_SUFFIXES[i]!;
    if (n.value + (frac > 0 ? 1n : 0n) > UINT64_MAX / factor) return fail('ERANGE');
    const tmp = n.value * factor + BigInt(Math.trunc(frac * Number(factor)));
    if (tmp > UINT64_MAX - r) return fail('ERANGE');
    r += tmp;
    p = e + suffix.length;
    startPos = i + 1;
  } while (p < t.length);
  return ok(r);
}

// ---------------------------------------------------------------------------------------------------------------
// resource limits (rlimit-util.c)

export const RLIM_INFINITY = UINT64_MAX;
type RlimitKind = 'sec' | 'size' | 'u64' | 'nice' | 'usec';
export const RLIMIT_KINDS: Readonly<Record<RlimitName, RlimitKind>> = {
  CPU: 'sec',
  FSIZE: 'size',
  DATA: 'size',
  STACK: 'size',
  CORE: 'size',
  RSS: 'size',
  NOFILE: 'u64',
  AS: 'size',
  NPROC: 'u64',
  MEMLOCK: 'size',
  LOCKS: 'u64',
  SIGPENDING: 'u64',
  MSGQUEUE: 'size',
  NICE: 'nice',
  RTPRIO: 'u64',
  RTTIME: 'usec',
};

function rlimitParseOne(kind: RlimitKind, v: string): Result<bigint> {
  switch (kind) {
    case 'u64':
    case 'size': {
      if (v === 'infinity') return ok(RLIM_INFINITY);
      const r = kind === 'u64' ? safeAtou64(v) : parseSize(v);
      if (!r.ok) return r;
      return r.value >= RLIM_INFINITY ? fail('ERANGE') : r;
    }
    case 'sec': {
      const r = parseTime(v, USEC_PER_SEC);
      if (!r.ok) return r;
      if (r.value === USEC_INFINITY) return ok(RLIM_INFINITY);
      return ok((r.value + USEC_PER_SEC - 1n) / USEC_PER_SEC);
    }
    case 'usec': {
      const r = parseTime(v, 1n);
      return r;
    }
    case 'nice': {
      if (v.startsWith('+') || v.startsWith('-')) {
        const r = safeAtou64(v.slice(1));
        if (!r.ok) return r;
        if (v[0] === '+') return r.value >= 20n ? fail('ERANGE') : ok(20n - r.value);
        return r.value > 20n ? fail('ERANGE') : ok(20n + r.value);
      }
      const r = safeAtou64(v);
      if (!r.ok) return r;
      return r.value > 40n ? fail('ERANGE') : r;
    }
  }
}

const toRlimValue = (n: bigint): bigint | 'infinity' => (n === RLIM_INFINITY ? 'infinity' : n);
const fromRlimValue = (v: bigint | 'infinity'): bigint => (v === 'infinity' ? RLIM_INFINITY : v);

/** rlimit_parse(): "VALUE" or "SOFT:HARD"; EILSEQ when soft > hard. */
export function rlimitParse(name: RlimitName, value: string): Result<Rlimit> {
  const kind = RLIMIT_KINDS[name];
  const a = extractFirstWord(value, ':', EXTRACT_DONT_COALESCE_SEPARATORS);
  if (!a.ok) return a;
  if (a.word === null) return fail('EINVAL');
  const soft = rlimitParseOne(kind, a.word);
  if (!soft.ok) return soft;
  const b = extractFirstWord(a.rest, ':', EXTRACT_DONT_COALESCE_SEPARATORS);
  if (!b.ok) return b;
  if (!isEmpty(b.rest)) return fail('EINVAL');
  if (b.word === null) return ok({ soft: toRlimValue(soft.value), hard: toRlimValue(soft.value) });
  const hard = rlimitParseOne(kind, b.word);
  if (!hard.ok) return hard;
  if (soft.value > hard.value) return fail('EILSEQ');
  return ok({ soft: toRlimValue(soft.value), hard: toRlimValue(hard.value) });
}

const LLONG_MAX = (1n << 63n) - 1n;
/** Microseconds as parse_time() reads them back: one number is at most LLONG_MAX, larger values are a sum. */
const usecText = (u: bigint): string => (u <= LLONG_MAX ? `${u}us` : `${LLONG_MAX}us ${u - LLONG_MAX}us`);

/** Writes one limit value so that rlimitParseOne() reads the same number back. */
export function formatRlimitValue(name: RlimitName, v: bigint | 'infinity'): string {
  if (v === 'infinity') return 'infinity';
  if (RLIMIT_KINDS[name] === 'sec') {
    // seconds are parsed as microseconds and rounded up; very large values would overflow as "Ns"
    return v < USEC_INFINITY / USEC_PER_SEC ? `${v}s` : usecText((v - 1n) * USEC_PER_SEC + 1n);
  }
  if (RLIMIT_KINDS[name] === 'usec') return usecText(v);
  return String(v);
}

export const rlimitValue = fromRlimValue;

// ---------------------------------------------------------------------------------------------------------------
// simple scalar grammars

/** parse_oom_score_adjust(): -1000..1000. */
export function parseOomScoreAdjust(s: string): Result<number> {
  const r = safeAtoi(s);
  if (!r.ok) return r;
  return r.value < -1000 || r.value > 1000 ? fail('ERANGE') : r;
}

const SIGNAL_NAMES: Readonly<Record<string, number>> = {
  HUP: 1, INT: 2, QUIT: 3, ILL: 4, TRAP: 5, ABRT: 6, BUS: 7, FPE: 8, KILL: 9, USR1: 10, SEGV: 11, USR2: 12,
  PIPE: 13, ALRM: 14, TERM: 15, STKFLT: 16, CHLD: 17, CONT: 18, STOP: 19, TSTP: 20, TTIN: 21, TTOU: 22, URG: 23,
  XCPU: 24, XFSZ: 25, VTALRM: 26, PROF: 27, WINCH: 28, IO: 29, PWR: 30, SYS: 31,
};
const SIGRTMIN = 34;
const SIGRTMAX = 64;

/** signal_from_string(): "15", "TERM", "SIGTERM", "RTMIN+3", "SIGRTMAX-1". */
export function signalFromString(s0: string): Result<number> {
  const n = safeAtoi(s0);
  if (n.ok) return n.value > 0 && n.value < 65 ? n : fail('ERANGE');
  const s = s0.startsWith('SIG') ? s0.slice(3) : s0;
  const named = Object.hasOwn(SIGNAL_NAMES, s) ? SIGNAL_NAMES[s] : undefined;
  if (named !== undefined) return ok(named);
  for (const [prefix, sign] of [['RTMIN', '+'], ['RTMAX', '-']] as const) {
    if (!s.startsWith(prefix)) continue;
    const p = s.slice(prefix.length);
    if (p === '') return ok(prefix === 'RTMIN' ? SIGRTMIN : SIGRTMAX);
    if (p[0] !== sign) return fail('EINVAL');
    const r = safeAtoi(p);
    if (!r.ok) return r;
    if (prefix === 'RTMIN') return r.value < 0 || r.value > SIGRTMAX - SIGRTMIN ? fail('ERANGE') : ok(r.value + SIGRTMIN);
    return r.value > 0 || r.value < SIGRTMIN - SIGRTMAX ? fail('ERANGE') : ok(r.value + SIGRTMAX);
  }
  return fail('EINVAL');
}

/** sd_id128_from_string(): 32 hex digits or the 8-4-4-4-12 UUID form; returns 32 lower-case hex digits. */
export function id128FromString(s: string): Result<string> {
  if (/^[0-9a-fA-F]{32}$/.test(s)) return ok(s.toLowerCase());
  if (/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(s))
    return ok(s.replace(/-/g, '').toLowerCase());
  return fail('EINVAL');
}

/** hostname_is_valid(s, 0) && dns_name_is_valid(s): also no label longer than 63 characters. */
export function hostnameAndDnsValid(s: string): 'ok' | 'hostname' | 'dns' {
  if (!hostnameIsValid(s)) return 'hostname';
  return s.split('.').every((l) => l.length <= 63) ? 'ok' : 'dns';
}

const IFNAMSIZ = 16;
/** ifname_valid(): 1..15 printable ASCII characters, no ':', '/', '%', not all digits, not ".", "..", "all", "default". */
export function ifnameValid(p: string): boolean {
  if (p === '') return false;
  const idx = safeAtoi(p);
  if (idx.ok && idx.value > 0) return false; // looks like an interface index
  if (p.length >= IFNAMSIZ) return false;
  if (p === '.' || p === '..' || p === 'all' || p === 'default') return false;
  let numeric = true;
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i);
    if (c >= 127 || c <= 32 || c === 0x3a || c === 0x2f || c === 0x25) return false;
    numeric &&= c >= 48 && c <= 57;
  }
  return !numeric;
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

/** CAP_LIMIT of systemd v259: capability numbers above it are refused. */
export const CAP_LIMIT = 62;

/** capability_from_name(): "CAP_SYS_ADMIN" in any case, or a number 0..62. Returns the number or -1. */
export function capabilityFromName(name: string): number {
  const n = safeAtoi(name);
  if (n.ok) return n.value >= 0 && n.value <= CAP_LIMIT ? n.value : -1;
  if (!/^cap_[a-z_]+$/i.test(name)) return -1; // gperf --ignore-case: ASCII only
  const lower = name.toLowerCase();
  return (CAPABILITIES as readonly string[]).indexOf(lower.slice(4));
}

/** The canonical name of capability number n: "CAP_CHOWN", or the number for capabilities without a name. */
export function capabilityName(n: number): string {
  const name = CAPABILITIES[n];
  return name !== undefined ? `CAP_${name.toUpperCase()}` : String(n);
}

export const ALL_CAPS = UINT64_MAX;

/** A capability list (as in Settings) as a bit mask; 'all' is every bit. Unknown names are skipped. */
export function capabilityMask(list: readonly string[] | undefined): bigint {
  let m = 0n;
  for (const c of list ?? []) {
    if (c === 'all') return ALL_CAPS;
    const n = capabilityFromName(c);
    if (n >= 0) m |= 1n << BigInt(n);
    else if (/^(?:[0-9]|[1-5][0-9]|6[0-3])$/.test(c)) m |= 1n << BigInt(c);
  }
  return m;
}

/** The canonical list for a mask: ['all'], or names in capability number order; undefined for an empty mask. */
export function capabilityList(mask: bigint): string[] | undefined {
  if (mask === 0n) return undefined;
  if (mask === ALL_CAPS) return ['all'];
  const out: string[] = [];
  for (let i = 0; i < 64; i++) if (mask & (1n << BigInt(i))) out.push(capabilityName(i));
  return out;
}

/** personality_from_string() on an x86-64 host: only the native and the secondary architecture. */
export function personalityFromString(s: string): 'x86' | 'x86-64' | undefined {
  return s === 'x86' || s === 'x86-64' ? s : undefined;
}

/** Enum lookups with boolean aliases (DEFINE_STRING_TABLE_LOOKUP_WITH_BOOLEAN): "no" is the first entry. */
export function enumWithBoolean<T extends string>(table: readonly T[], yes: T, s: string): Result<T> {
  const b = parseBooleanC(s);
  if (b.ok) return ok(b.value ? yes : table[0]!);
  return (table as readonly string[]).includes(s) ? ok(s as T) : fail('EINVAL');
}

/** parse_link_journal(): auto|guest|host|try-guest|try-host or a boolean (yes = auto). */
export function parseLinkJournalC(s: string): Result<{ mode: LinkJournal; try: boolean }> {
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

/** config_parse_private_users(): the setting, or the message systemd logs. */
export function parsePrivateUsersFile(v: string): { ok: true; value: UserNamespaceSetting } | { ok: false; why: string } {
  const b = parseBooleanC(v);
  if (b.ok) return { ok: true, value: b.value ? { mode: 'fixed', range: 0x10000 } : { mode: 'no' } };
  if (v === 'pick') return { ok: true, value: { mode: 'pick', range: 0x10000 } };
  if (v === 'identity') return { ok: true, value: { mode: 'fixed', shift: 0, range: 0x10000 } };
  const colon = v.indexOf(':');
  const shiftText = colon < 0 ? v : v.slice(0, colon);
  const rangeText = colon < 0 ? undefined : v.slice(colon + 1);
  let range = 0x10000;
  if (rangeText !== undefined) {
    const r = safeAtou32(rangeText);
    if (!r.ok) return { ok: false, why: `UID/GID range invalid, ignoring: ${rangeText}` };
    range = r.value;
  }
  const shift = parseUid(shiftText);
  // systemd prints the range part here (a NULL pointer when there is none)
  if (!shift.ok) return { ok: false, why: `UID/GID shift invalid, ignoring: ${rangeText ?? '(null)'}` };
  if (range <= 0 || shift.value > 0xffffffff - range)
    return { ok: false, why: `UID/GID shift and range combination invalid, ignoring: ${rangeText ?? '(null)'}` };
  return { ok: true, value: { mode: 'fixed', shift: shift.value, range } };
}

// ---------------------------------------------------------------------------------------------------------------
// CPU sets (cpu-set-util.c)

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

/** config_parse_cpu_set() for one non-empty value: the CPUs, plus one message per word systemd skips. */
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

// ---------------------------------------------------------------------------------------------------------------
// ports and network interfaces (nspawn-expose-ports.c, nspawn-network.c)

/** parse_ip_port(): 1..65535, C number syntax (so "0x50" is 80 and "080" is invalid octal). */
function parseIpPort(s: string): Result<number> {
  const r = safeAtou16(s, SAFE_ATO_REFUSE_LEADING_WHITESPACE);
  if (!r.ok) return r;
  return r.value === 0 ? fail('EINVAL') : r;
}

/** expose_port_parse() without the duplicate check: "[tcp:|udp:]HOST[:CONTAINER]". */
export function exposePortParse(s: string): Result<ExposePort> {
  let protocol: 'tcp' | 'udp' = 'tcp';
  let e = s;
  if (s.startsWith('tcp:')) e = s.slice(4);
  else if (s.startsWith('udp:')) {
    protocol = 'udp';
    e = s.slice(4);
  }
  const split = e.indexOf(':');
  if (split >= 0) {
    const host = parseIpPort(e.slice(0, split));
    if (!host.ok) return fail('EINVAL');
    const container = parseIpPort(e.slice(split + 1));
    return container.ok ? ok({ protocol, hostPort: host.value, containerPort: container.value }) : container;
  }
  const port = parseIpPort(e);
  return port.ok ? ok({ protocol, hostPort: port.value, containerPort: port.value }) : port;
}

/** veth_extra_parse(): "HOST[:CONTAINER]"; an invalid container name silently becomes HOST. Returns "HOST" or "HOST:CONTAINER". */
export function vethExtraParse(p: string): Result<string> {
  const a = extractFirstWord(p, ':', EXTRACT_DONT_COALESCE_SEPARATORS);
  if (!a.ok) return a;
  if (a.word === null || !ifnameValid(a.word)) return fail('EINVAL');
  const b = extractFirstWord(a.rest, ':', EXTRACT_DONT_COALESCE_SEPARATORS);
  if (!b.ok) return b;
  if (b.rest !== null) return fail('EINVAL');
  const container = b.word !== null && ifnameValid(b.word) ? b.word : a.word;
  return ok(container === a.word ? a.word : `${a.word}:${container}`);
}

export type InterfaceKind = 'Interface' | 'MACVLAN' | 'IPVLAN';
const IFACE_KIND_TEXT: Readonly<Record<InterfaceKind, string>> = {
  Interface: 'Network interface',
  MACVLAN: 'MACVLAN network interface',
  IPVLAN: 'IPVLAN network interface',
};
const IFACE_PREFIX: Readonly<Record<InterfaceKind, string>> = { Interface: '', MACVLAN: 'mv-', IPVLAN: 'iv-' };

/**
 * network_iface_pair_parse() (systemd v257+): whitespace-separated "HOST[:CONTAINER]" words. Entries are
 * returned as written: "HOST" or "HOST:CONTAINER". Errors here make systemd refuse the whole file.
 */
export function interfacePairsParse(kind: InterfaceKind, p: string): { ok: true; value: string[] } | { ok: false; why: string } {
  const out: string[] = [];
  let rest: string | null = p;
  const what = IFACE_KIND_TEXT[kind];
  for (;;) {
    const w = extractFirstWord(rest, WHITESPACE, 0);
    if (!w.ok) return { ok: false, why: 'Failed to parse interface name: Invalid argument' };
    if (w.word === null) return { ok: true, value: out };
    rest = w.rest;
    const a = extractFirstWord(w.word, ':', EXTRACT_DONT_COALESCE_SEPARATORS);
    if (!a.ok) return { ok: false, why: `Failed to extract first word in ${what} parameter: Invalid argument` };
    if (a.word === null) return { ok: false, why: `Short read while reading ${what} parameter.` };
    if (!ifnameValid(a.word)) return { ok: false, why: `${what}, interface name not valid: ${a.word}` };
    if (!isEmpty(a.rest)) {
      if (!ifnameValid(a.rest!)) return { ok: false, why: `${what}, interface name not valid: ${a.rest}` };
      out.push(`${a.word}:${a.rest}`);
    } else out.push(a.word);
  }
}

/** The host and container interface names of an entry of networkInterfaces/networkMacvlan/networkIpvlan. */
export function interfacePair(kind: InterfaceKind, entry: string): [host: string, container: string] {
  const i = entry.indexOf(':');
  if (i >= 0) return [entry.slice(0, i), entry.slice(i + 1)];
  return [entry, IFACE_PREFIX[kind] + entry];
}

// ---------------------------------------------------------------------------------------------------------------
// mounts (nspawn-mount.c)

/** source_path_parse(): "+/in/root" kept, relative paths made absolute against cwd. */
function sourcePathParse(p: string, cwd: string): Result<string> {
  if (p === '') return fail('EINVAL');
  if (p.startsWith('+')) return pathIsAbsolute(p.slice(1)) ? ok(p) : fail('EINVAL');
  return ok(makeAbsolute(p, cwd));
}

/** parse_mount_bind_options(): done by systemd at mount time; here at parse time. */
export function bindOptionsParse(options: string): { ok: true; recursive: boolean; idmapping?: BindIdmapping } | { ok: false; why: string } {
  const words = splitWords(options, ',', 0);
  if (!words.ok) return { ok: false, why: 'Failed to extract mount option: Invalid argument' };
  let recursive = true;
  let idmapping: BindIdmapping | undefined;
  for (const w of words.words) {
    if (w === 'rbind') recursive = true;
    else if (w === 'norbind') recursive = false;
    else if (w === 'idmap' || w === 'noidmap' || w === 'rootidmap' || w === 'owneridmap') idmapping = w;
    else return { ok: false, why: `Invalid bind mount option: ${w}` };
  }
  return idmapping === undefined ? { ok: true, recursive } : { ok: true, recursive, idmapping };
}

type BindMount = Extract<CustomMount, { type: 'bind' }>;

/** bind_mount_parse(): "SRC[:DST[:OPTIONS]]", "\:" escapes a colon in SRC and DST. */
export function bindMountParse(s: string, readOnly: boolean, cwd: string): { ok: true; value: BindMount } | { ok: false; why: string } {
  const bad = (errno: Errno) => ({ ok: false as const, why: `Invalid bind mount specification: ${errnoText(errno)}` });
  const a = extractFirstWord(s, ':', EXTRACT_DONT_COALESCE_SEPARATORS);
  if (!a.ok) return bad(a.errno);
  if (a.word === null) return bad('EINVAL');
  const b = extractFirstWord(a.rest, ':', EXTRACT_DONT_COALESCE_SEPARATORS);
  if (!b.ok) return bad(b.errno);
  const source = a.word;
  const destination = b.word ?? (source.startsWith('+') ? source.slice(1) : source);
  const options = b.word !== null && !isEmpty(b.rest) ? b.rest! : undefined;
  let src = '';
  if (source !== '') {
    const r = sourcePathParse(source, cwd);
    if (!r.ok) return bad(r.errno);
    src = r.value;
  }
  if (!pathIsAbsolute(destination)) return bad('EINVAL');
  const m: BindMount = { type: 'bind', source: src, destination, readOnly, recursive: true };
  if (src.startsWith('+')) {
    m.source = src.slice(1);
    m.sourceInRoot = true;
  }
  if (options !== undefined) {
    const o = bindOptionsParse(options);
    if (!o.ok) return o;
    m.options = options;
    m.recursive = o.recursive;
    if (o.idmapping !== undefined) {
      m.idmapping = o.idmapping;
      m.idmap = o.idmapping !== 'noidmap';
    }
  }
  return { ok: true, value: m };
}

/** tmpfs_mount_parse(): "PATH[:OPTIONS]", options default to "mode=0755". */
export function tmpfsMountParse(s: string): Result<Extract<CustomMount, { type: 'tmpfs' }>> {
  const a = extractFirstWord(s, ':', EXTRACT_DONT_COALESCE_SEPARATORS);
  if (!a.ok) return a;
  if (a.word === null || !pathIsAbsolute(a.word)) return fail('EINVAL');
  return ok({ type: 'tmpfs', destination: a.word, options: isEmpty(a.rest) ? 'mode=0755' : a.rest! });
}

/** inaccessible_mount_parse(): an absolute path, taken verbatim. */
export function inaccessibleMountParse(s: string): Result<Extract<CustomMount, { type: 'inaccessible' }>> {
  return pathIsAbsolute(s) ? ok({ type: 'inaccessible', destination: s }) : fail('EINVAL');
}

/** overlay_mount_parse(): "LOWER:UPPER" (destination = UPPER) or "LOWER...:UPPER:DEST" (UPPER may be empty). */
export function overlayMountParse(s: string, readOnly: boolean, cwd: string): Result<Extract<CustomMount, { type: 'overlay' }>> {
  const w = splitWords(s, ':', EXTRACT_DONT_COALESCE_SEPARATORS);
  if (!w.ok) return w;
  const parts = w.words;
  if (parts.length < 2) return fail('EADDRNOTAVAIL');
  if (parts.length === 2) {
    const lower = sourcePathParse(parts[0]!, cwd);
    if (!lower.ok) return lower;
    const upper = sourcePathParse(parts[1]!, cwd);
    if (!upper.ok) return upper;
    const destination = upper.value.startsWith('+') ? upper.value.slice(1) : upper.value;
    return ok({ type: 'overlay', lowers: [lower.value], upper: upper.value, destination, readOnly });
  }
  const destination = parts[parts.length - 1]!;
  const lowers: string[] = [];
  for (const l of parts.slice(0, -2)) {
    const r = sourcePathParse(l, cwd);
    if (!r.ok) return r;
    lowers.push(r.value);
  }
  const upperText = parts[parts.length - 2]!;
  let upper = '';
  if (upperText !== '') {
    const r = sourcePathParse(upperText, cwd);
    if (!r.ok) return r;
    upper = r.value;
  }
  if (!pathIsAbsolute(destination)) return fail('EINVAL');
  return ok({ type: 'overlay', lowers, upper, destination, readOnly });
}

/** pivot_root_parse(): "NEW[:OLD]", both absolute. */
export function pivotRootParse(s: string): Result<{ newRoot: string; oldRoot?: string }> {
  const a = extractFirstWord(s, ':', EXTRACT_DONT_COALESCE_SEPARATORS);
  if (!a.ok) return a;
  if (a.word === null) return fail('EINVAL');
  const oldRoot = isEmpty(a.rest) ? undefined : a.rest!;
  if (!pathIsAbsolute(a.word)) return fail('EINVAL');
  if (oldRoot !== undefined && !pathIsAbsolute(oldRoot)) return fail('EINVAL');
  return ok(oldRoot === undefined ? { newRoot: a.word } : { newRoot: a.word, oldRoot });
}

// ---------------------------------------------------------------------------------------------------------------

export const errnoText = (e: Errno): string => STRERROR[e];
