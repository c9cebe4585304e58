/**
 * The UID range candidates of systemd-nspawn 252 (nspawn.c: determine_uid_shift(), uid_shift_pick()): pure.
 */
import { siphash24 } from './siphash.js';

/** CONTAINER_UID_BASE_MIN / _MAX: the span -U picks from */
export const UID_BASE_MIN = 0x00080000; // 524288
export const UID_BASE_MAX = 0x6fff0000; // 1878982656
/** every picked range has this size */
export const UID_RANGE = 0x10000;
/** the top directory of a tree being chowned carries this range (systemd's UID_BUSY_BASE) */
export const UID_BUSY_BASE = 0xfffe0000;
/** the lock directory systemd-nspawn uses too */
export const LOCK_DIR = '/run/systemd/nspawn-uid';
/** uid_shift_pick(): "n_tries = 100", decremented before each try */
export const MAX_TRIES = 99;

/** systemd's key for hashing a machine name into a UID base */
export const MACHINE_HASH_KEY = Uint8Array.from([0xe1, 0x56, 0xe0, 0xf0, 0x4a, 0xf0, 0x41, 0xaf, 0x96, 0x41, 0xcf, 0x41, 0x33, 0x94, 0xff, 0x72]);

/** a raw 32-bit value reduced into the span and aligned to 65536 */
export function reduceCandidate(raw: number): number {
  const c = ((raw >>> 0) % (UID_BASE_MAX - UID_BASE_MIN)) + UID_BASE_MIN;
  return (c & 0xffff0000) >>> 0;
}

/** the candidate systemd hashes from a machine name: siphash24 truncated to uid_t, reduced */
export function machineCandidate(machine: string): number {
  return reduceCandidate(Number(siphash24(machine, MACHINE_HASH_KEY) & 0xffffffffn));
}

/** a base -U may use: in the span and aligned */
export function isPickable(base: number): boolean {
  return Number.isInteger(base) && base >= UID_BASE_MIN && base <= UID_BASE_MAX && (base & 0xffff) === 0;
}

/** the root directory owner's range: st_uid & 0xffff0000 (systemd refuses when uid and gid bases differ) */
export function ownerBase(uid: number, gid: number, what = 'the directory'): number {
  const u = (uid & 0xffff0000) >>> 0;
  const g = (gid & 0xffff0000) >>> 0;
  if (u !== g) throw new UidRangeError(`UID and GID base of ${what} don't match.`, 'EINVAL');
  return u;
}

/**
 * The candidates in systemd's order: the directory owner's base first (skipped when outside the span), then the
 * machine name's hash (when there is a name), then random ones; at most MAX_TRIES in all.
 */
export function* candidates(first: number, machine: string | undefined, random: () => number): Generator<number> {
  let c = first;
  let hashed = false;
  for (let i = 0; i < MAX_TRIES; i++) {
    if (isPickable(c)) yield c;
    if (machine && !hashed) {
      c = machineCandidate(machine);
      hashed = true;
    } else c = reduceCandidate(random());
  }
}

/** an error with systemd's message and errno name */
export class UidRangeError extends Error {
  readonly code: string;
  constructor(message: string, code: string) {
    super(message);
    this.code = code;
    this.name = 'UidRangeError';
  }
}
