/** Numbers with units: time spans and sizes (parse-util.c, time-util.c). */
import { type Result, UINT64_MAX, WHITESPACE, fail, ok, strtoll, strtoull } from './c-util.js';

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
