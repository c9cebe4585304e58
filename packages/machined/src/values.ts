/**
 * systemd's value grammars that unit property assignments use (src/basic/parse-util.c, time-util.c,
 * percent-util.c, signal-util.c), as far as `--property=` needs them. Each returns the value or throws a
 * `ValueError` carrying the errno name systemd would report.
 */

export class ValueError extends Error {
  constructor(readonly errno: 'EINVAL' | 'ERANGE') {
    super(errno === 'EINVAL' ? 'Invalid argument' : 'Numerical result out of range');
    this.name = 'ValueError';
  }
}

const U64_MAX = (1n << 64n) - 1n;
/** USEC_INFINITY, CGROUP_LIMIT_MAX */
export const INFINITY64 = U64_MAX;

/** `parse_boolean()` */
export function parseBoolean(s: string): boolean {
  const v = s.toLowerCase();
  if (['1', 'yes', 'y', 'true', 't', 'on'].includes(v)) return true;
  if (['0', 'no', 'n', 'false', 'f', 'off'].includes(v)) return false;
  throw new ValueError('EINVAL');
}

/** `safe_atou64()`: decimal (and 0x hex), no sign, no spaces around */
export function safeAtou64(s: string): bigint {
  const t = s.replace(/^\s+/, '');
  if (!/^(0x[0-9a-fA-F]+|0|[1-9][0-9]*)$/.test(t)) throw new ValueError(t.startsWith('-') ? 'ERANGE' : 'EINVAL');
  const v = BigInt(t);
  if (v > U64_MAX) throw new ValueError('ERANGE');
  return v;
}

export function safeAtou32(s: string): number {
  const v = safeAtou64(s);
  if (v > 0xffffffffn) throw new ValueError('ERANGE');
  return Number(v);
}

/** a decimal number with an optional fraction, as a numerator over 10^digits (exact) */
function decimal(s: string): { int: bigint; frac: bigint; scale: bigint } | undefined {
  const m = /^([0-9]+)(?:\.([0-9]*))?$|^\.([0-9]+)$/.exec(s);
  if (!m) return undefined;
  const ip = m[1] ?? '0';
  const fp = m[2] ?? m[3] ?? '';
  return { int: BigInt(ip), frac: fp ? BigInt(fp) : 0n, scale: 10n ** BigInt(fp.length) };
}

const TIME_UNITS: [string[], bigint][] = [
  [['seconds', 'second', 'sec', 's'], 1_000_000n],
  [['minutes', 'minute', 'min', 'm'], 60_000_000n],
  [['hours', 'hour', 'hr', 'h'], 3_600_000_000n],
  [['days', 'day', 'd'], 86_400_000_000n],
  [['weeks', 'week', 'w'], 604_800_000_000n],
  [['months', 'month', 'M'], 2_629_800_000_000n],
  [['years', 'year', 'y'], 31_557_600_000_000n],
  [['msec', 'ms'], 1000n],
  [['usec', 'us', 'µs', 'μs'], 1n],
];

/** `parse_sec()`: "90", "1min 30s", "1.5h", "500ms", "infinity" → microseconds */
export function parseSec(s: string): bigint {
  const t = s.trim();
  if (t === 'infinity') return INFINITY64;
  if (!t) throw new ValueError('EINVAL');
  let rest = t;
  let total = 0n;
  let any = false;
  while (rest) {
    const m = /^([0-9]*\.?[0-9]*)\s*([a-zA-Zµμ]*)\s*/.exec(rest);
    if (!m || !m[1] || m[1] === '.') throw new ValueError('EINVAL');
    const d = decimal(m[1]);
    if (!d) throw new ValueError('EINVAL');
    const unit = m[2] ?? '';
    let mul = 1_000_000n; // no unit: seconds
    if (unit) {
      const u = TIME_UNITS.find(([names]) => names.includes(unit));
      if (!u) throw new ValueError('EINVAL');
      mul = u[1];
    }
    total += d.int * mul + (d.frac * mul) / d.scale;
    if (total >= U64_MAX) throw new ValueError('ERANGE');
    rest = rest.slice(m[0].length);
    any = true;
  }
  if (!any) throw new ValueError('EINVAL');
  return total;
}

/** `parse_size(s, 1024)`: "512", "512K", "1.5G" (B, K, M, G, T, P, E) → bytes */
export function parseSize(s: string, base: 1024 | 1000 = 1024): bigint {
  const t = s.trim();
  const m = /^([0-9]*\.?[0-9]+|[0-9]+\.)\s*([BKMGTPE]?)$/.exec(t);
  if (!m) throw new ValueError(t.startsWith('-') ? 'ERANGE' : 'EINVAL');
  const d = decimal(m[1]!);
  if (!d) throw new ValueError('EINVAL');
  const exp = 'BKMGTPE'.indexOf(m[2] || 'B');
  const mul = BigInt(base) ** BigInt(exp);
  const v = d.int * mul + (d.frac * mul) / d.scale;
  if (v > U64_MAX) throw new ValueError('ERANGE');
  return v;
}

/** `parse_permyriad_unbounded()`: "50%", "12.34%", "5‰", "7‱" → parts per 10000 (undefined: not a percentage) */
export function parsePermyriadUnbounded(s: string): number | undefined {
  const t = s.trim();
  let m = /^([0-9]+)(?:\.([0-9]{1,2}))?%$/.exec(t);
  if (m) return Number(m[1]) * 100 + (m[2] ? Number(m[2].padEnd(2, '0')) : 0);
  m = /^([0-9]+)(?:\.([0-9]))?‰$/.exec(t);
  if (m) return Number(m[1]) * 10 + (m[2] ? Number(m[2]) : 0);
  m = /^([0-9]+)‱$/.exec(t);
  if (m) return Number(m[1]);
  return undefined;
}

/** `parse_permyriad()`: as above, at most 100% */
export function parsePermyriad(s: string): number | undefined {
  const v = parsePermyriadUnbounded(s);
  if (v === undefined) return undefined;
  if (v > 10000) throw new ValueError('ERANGE');
  return v;
}

/** `UINT32_SCALE_FROM_PERMYRIAD()` */
export function uint32ScaleFromPermyriad(p: number): number {
  const c = BigInt(Math.min(Math.max(p, 0), 10000));
  return Number((c * 0xffffffffn + 5000n) / 10000n);
}

const SIGNALS: Record<string, number> = {
  HUP: 1, INT: 2, QUIT: 3, ILL: 4, TRAP: 5, ABRT: 6, IOT: 6, BUS: 7, FPE: 8, KILL: 9, USR1: 10, SEGV: 11, USR2: 12,
  PIPE: 13, ALRM: 14, TERM: 15, STKFLT: 16, CHLD: 17, CONT: 18, STOP: 19, TSTP: 20, TTIN: 21, TTOU: 22, URG: 23,
  XCPU: 24, XFSZ: 25, VTALRM: 26, PROF: 27, WINCH: 28, IO: 29, POLL: 29, PWR: 30, SYS: 31,
};
const SIGRTMIN = 34;
const SIGRTMAX = 64;

/** `signal_from_string()`: "SIGTERM", "TERM", "RTMIN+3", "SIGRTMAX-1", "15" → the signal number */
export function signalFromString(s: string): number {
  let t = s.startsWith('SIG') ? s.slice(3) : s;
  if (t in SIGNALS) return SIGNALS[t]!;
  let m = /^RTMIN(?:\+([0-9]+))?$/.exec(t);
  if (m) {
    const n = SIGRTMIN + Number(m[1] ?? 0);
    if (n > SIGRTMAX) throw new ValueError('EINVAL');
    return n;
  }
  m = /^RTMAX(?:-([0-9]+))?$/.exec(t);
  if (m) {
    const n = SIGRTMAX - Number(m[1] ?? 0);
    if (n < SIGRTMIN) throw new ValueError('EINVAL');
    return n;
  }
  t = s;
  if (/^[0-9]+$/.test(t)) {
    const n = Number(t);
    if (n > 0 && n < 65) return n;
  }
  throw new ValueError('EINVAL');
}

/** `parse_cpu_set()` → `cpu_set_to_dbus()`: "0-3 5,7" → the CPU mask as bytes (bit N of byte N/8) */
export function parseCpuSet(s: string): Buffer {
  const cpus: number[] = [];
  for (const word of s.split(/[\s,]+/).filter(Boolean)) {
    const m = /^([0-9]+)(?:-([0-9]+))?$/.exec(word);
    if (!m) throw new ValueError('EINVAL');
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a || b > 8191) throw new ValueError('ERANGE');
    for (let c = a; c <= b; c++) cpus.push(c);
  }
  if (!cpus.length) return Buffer.alloc(0);
  const bytes = Buffer.alloc(Math.floor(Math.max(...cpus) / 8) + 1);
  for (const c of cpus) bytes[c >> 3]! |= 1 << (c & 7);
  return bytes;
}

/** `extract_first_word(..., EXTRACT_UNQUOTE)` for lists: words split at whitespace, '…' and "…" unquoted */
export function splitWords(s: string): string[] {
  const out: string[] = [];
  const re = /\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|((?:[^\s"'\\]|\\.)+))/gy;
  let m: RegExpExecArray | null;
  let pos = 0;
  while ((m = re.exec(s)) && m[0].trim()) {
    out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2] !== undefined ? m[2] : m[3]!.replace(/\\(.)/g, '$1'));
    pos = re.lastIndex;
  }
  if (s.slice(pos).trim()) throw new ValueError('EINVAL');
  return out;
}
