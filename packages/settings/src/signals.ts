/** Signals by name and number (signal-util.c): one table for --kill-signal=, KillSignal=, nspawnctl -s and messages. */
import { type Result, fail, ok, safeAtoi } from './c-util.js';

/** The standard signals of Linux (x86, arm), by name without "SIG". */
const SIGNALS: Readonly<Record<string, number>> = {
  HUP: 1, INT: 2, QUIT: 3, ILL: 4, TRAP: 5, ABRT: 6, BUS: 7, FPE: 8, KILL: 9, USR1: 10, SEGV: 11, USR2: 12,
  PIPE: 13, ALRM: 14, TERM: 15, STKFLT: 16, CHLD: 17, CONT: 18, STOP: 19, TSTP: 20, TTIN: 21, TTOU: 22, URG: 23,
  XCPU: 24, XFSZ: 25, VTALRM: 26, PROF: 27, WINCH: 28, IO: 29, PWR: 30, SYS: 31,
};
export const SIGRTMIN = 34;
export const SIGRTMAX = 64;

/** signal_from_string(): "15", "TERM", "SIGTERM", "RTMIN+3", "SIGRTMAX-1". */
export function signalFromString(s0: string): Result<number> {
  const n = safeAtoi(s0);
  if (n.ok) return n.value > 0 && n.value < 65 ? n : fail('ERANGE');
  const s = s0.startsWith('SIG') ? s0.slice(3) : s0;
  const named = Object.hasOwn(SIGNALS, s) ? SIGNALS[s] : undefined;
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

/** number to name, the first name a number has in SIGNALS (built on first use) */
let SIGNAL_NAMES: Map<number, string> | undefined;

/** signal_to_string(): "TERM", "RTMIN+4", or the number. */
export function signalName(n: number): string {
  SIGNAL_NAMES ??= new Map(Object.entries(SIGNALS).reverse().map(([k, v]) => [v, k]));
  const name = SIGNAL_NAMES.get(n);
  if (name !== undefined) return name;
  if (n === SIGRTMIN) return 'RTMIN';
  if (n > SIGRTMIN && n <= SIGRTMAX) return `RTMIN+${n - SIGRTMIN}`;
  return String(n);
}
