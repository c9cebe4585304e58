/** Resource limits (rlimit-util.c): names, values and the SOFT:HARD syntax of --rlimit= and Limit*=. */
import { type Result, UINT64_MAX, fail, isEmpty, ok, safeAtou64 } from './c-util.js';
import { EXTRACT_DONT_COALESCE_SEPARATORS, extractFirstWord } from './extract-word.js';
import { type Rlimit, type RlimitName, RLIMIT_NAMES, SettingsError } from './model.js';
import { USEC_INFINITY, USEC_PER_SEC, parseSize, parseTime } from './units.js';

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

const RLIMIT_LOOKUP = new Map<string, RlimitName>(RLIMIT_NAMES.map((n) => [n, n]));

/** rlimit_from_string_harder(): "NOFILE", "RLIMIT_NOFILE", "nofile". */
export function parseRlimitName(s: string): RlimitName {
  const n = s.toUpperCase().replace(/^RLIMIT_/, '');
  const r = RLIMIT_LOOKUP.get(n);
  if (!r) throw new SettingsError(`Unknown resource limit: ${s}`, undefined, s);
  return r;
}
