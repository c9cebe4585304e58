/**
 * One classic BPF program with the decisions of policy.ts, in place of the five to eight filters libseccomp
 * builds for systemd-nspawn:
 *
 *   ld arch
 *   arch == x86_64 → ld nr; nr >= __X32_SYSCALL_BIT → the x32 tree, else the x86_64 tree
 *   arch == i386   → ld nr; the i386 tree
 *   any other arch → allow (systemd's filters are per architecture and let the others through)
 *
 * Each tree is a balanced binary search over the ranges of numbers with the same decision (`jge` on the range
 * starts), whose leaves return, or look at the arguments first where a rule needs them. A conditional jump
 * reaches 255 instructions; a farther one goes through an inserted `ja`.
 */
import { AUDIT_ARCH, BPF, BPF_MAXINSNS, SECCOMP_DATA, type SockFilter, bpfJump, bpfStmt, encodeFilter } from './bpf.js';
import type { AbiPolicy, ArgCheck, ArgRule, Decision, NspawnSeccompOptions, SeccompPolicy } from './policy.js';
import { nspawnSeccompPolicy, SECCOMP_ALLOW } from './policy.js';
import { X32_SYSCALL_BIT } from './syscalls-x86.js';
import { containerCapabilities } from '../caps.js';

const LD_ABS = BPF.LD | BPF.W | BPF.ABS;
const RET_K = BPF.RET | BPF.K;
const JEQ = BPF.JMP | BPF.JEQ | BPF.K;
const JGT = BPF.JMP | BPF.JGT | BPF.K;
const JGE = BPF.JMP | BPF.JGE | BPF.K;
const JSET = BPF.JMP | BPF.JSET | BPF.K;
const JA = BPF.JMP | BPF.JA;
const MAX_JUMP = 255;

/**
 * A conditional jump's target in argument checks: a count of instructions to skip, or FAIL (the first instruction
 * after the rule's block), resolved by `block()`.
 */
const FAIL = -1;
type Pending = SockFilter & { toFail?: 'jt' | 'jf' | 'both' };

/** Resolves FAIL targets to the end of CODE (argument checks are a few instructions long). */
function block(code: Pending[]): SockFilter[] {
  if (code.length > MAX_JUMP) throw new Error('argument checks too long');
  return code.map((ins, i) => {
    const toEnd = code.length - (i + 1);
    const { toFail, ...plain } = ins;
    if (toFail === 'jt' || toFail === 'both') plain.jt = toEnd;
    if (toFail === 'jf' || toFail === 'both') plain.jf = toEnd;
    return plain;
  });
}

const cond = (code: number, k: number, jt: number | typeof FAIL, jf: number | typeof FAIL): Pending => {
  const ins: Pending = bpfJump(code, k, jt === FAIL ? 0 : jt, jf === FAIL ? 0 : jf);
  if (jt === FAIL && jf === FAIL) ins.toFail = 'both';
  else if (jt === FAIL) ins.toFail = 'jt';
  else if (jf === FAIL) ins.toFail = 'jf';
  return ins;
};

const lo32 = (v: bigint) => Number(v & 0xffffffffn);
const hi32 = (v: bigint) => Number((v >> 32n) & 0xffffffffn);
const AND_K = BPF.ALU | BPF.AND | BPF.K;

/**
 * The comparisons OCI profiles add (libseccomp's SCMP_CMP_NE, _LT, _GE, _GT, _MASKED_EQ), unsigned. A check that
 * holds ends at the instruction after it (a jump to "the end" is a count of the instructions left in the check), one
 * that does not goes to FAIL. On a 64-bit ABI the high words decide unless they are equal.
 */
function ociCheck(c: ArgCheck, args64: boolean): Pending[] {
  const ldLo = bpfStmt(LD_ABS, SECCOMP_DATA.argLo(c.arg));
  const ldHi = bpfStmt(LD_ABS, SECCOMP_DATA.argHi(c.arg));
  const vLo = lo32(c.value);
  const vHi = hi32(c.value);
  switch (c.op) {
    case 'ne':
      // not (both words equal)
      if (!args64) return [ldLo, cond(JEQ, vLo, FAIL, 0)];
      return [ldLo, cond(JEQ, vLo, 0, 2), ldHi, cond(JEQ, vHi, FAIL, 0)];
    case 'masked_eq': {
      const m = c.mask ?? 0n;
      const lowPart = [ldLo, bpfStmt(AND_K, lo32(m)), cond(JEQ, vLo, 0, FAIL)];
      if (!args64) return lowPart;
      return [...lowPart, ldHi, bpfStmt(AND_K, hi32(m)), cond(JEQ, vHi, 0, FAIL)];
    }
    case 'gt':
    case 'ge': {
      const last = c.op === 'gt' ? JGT : JGE;
      if (!args64) return [ldLo, cond(last, vLo, 0, FAIL)];
      // high word greater: holds (skip the rest); smaller: fails; equal: the low word decides
      return [ldHi, cond(JGT, vHi, 3, 0), cond(JEQ, vHi, 0, FAIL), ldLo, cond(last, vLo, 0, FAIL)];
    }
    case 'lt':
      // not (ARG >= VALUE)
      if (!args64) return [ldLo, cond(JGE, vLo, FAIL, 0)];
      return [ldHi, cond(JGT, vHi, FAIL, 0), cond(JEQ, vHi, 0, 2), ldLo, cond(JGE, vLo, FAIL, 0)];
    default:
      throw new Error(`unknown argument comparison ${c.op}`);
  }
}

/** The checks of one rule, then its return; any check that does not hold jumps past the return. */
function ruleCode(rule: ArgRule, args64: boolean): SockFilter[] {
  const lo = (v: bigint) => Number(v & 0xffffffffn);
  const hi = (v: bigint) => Number((v >> 32n) & 0xffffffffn);
  const code: Pending[] = [];
  for (const c of rule.checks) {
    // a check that holds goes on to the next check (the instruction after it), one that does not to FAIL
    const check: Pending[] = [];
    if (c.op === 'eq') {
      check.push(bpfStmt(LD_ABS, SECCOMP_DATA.argLo(c.arg)));
      check.push(cond(JEQ, lo(c.value), 0, FAIL));
      if (args64) {
        check.push(bpfStmt(LD_ABS, SECCOMP_DATA.argHi(c.arg)));
        check.push(cond(JEQ, hi(c.value), 0, FAIL));
      }
    } else if (c.op === 'le') {
      // unsigned ARG <= VALUE: on a 64-bit ABI the high word first (greater fails, smaller holds, equal: the low word)
      if (args64) {
        check.push(bpfStmt(LD_ABS, SECCOMP_DATA.argHi(c.arg)));
        check.push(cond(JGT, hi(c.value), FAIL, 0));
        if (hi(c.value) !== 0) check.push(cond(JEQ, hi(c.value), 0, 2)); // smaller: holds, skip the low word
      }
      check.push(bpfStmt(LD_ABS, SECCOMP_DATA.argLo(c.arg)));
      check.push(cond(JGT, lo(c.value), FAIL, 0));
    } else if (c.op === 'set') {
      // any bit of VALUE set (libseccomp's masked compare of a one-bit flag with itself); the high word only on
      // a 64-bit ABI and when VALUE has high bits
      const high = args64 && hi(c.value) !== 0;
      if (lo(c.value) !== 0) {
        check.push(bpfStmt(LD_ABS, SECCOMP_DATA.argLo(c.arg)));
        check.push(high ? cond(JSET, lo(c.value), 2, 0) : cond(JSET, lo(c.value), 0, FAIL));
      }
      if (high) {
        check.push(bpfStmt(LD_ABS, SECCOMP_DATA.argHi(c.arg)));
        check.push(cond(JSET, hi(c.value), 0, FAIL));
      }
      if (lo(c.value) === 0 && !high) check.push(cond(JEQ, 0, FAIL, FAIL)); // no bit to look for: never holds
    } else check.push(...ociCheck(c, args64));
    code.push(...check);
  }
  code.push(bpfStmt(RET_K, rule.action));
  // FAIL of this rule: the instruction after its return (the next rule, or the leaf's own return)
  return block(code);
}

/** A range of numbers [lo, hi] with one decision. */
interface Range {
  lo: number;
  hi: number;
  d: Decision;
}

/** The ranges covering [LO, HI], merging neighbours with the same plain decision. */
function ranges(p: AbiPolicy, lo: number, hi: number): Range[] {
  const out: Range[] = [];
  const push = (from: number, to: number, d: Decision) => {
    const last = out[out.length - 1];
    if (last && last.hi + 1 === from && last.d.rules.length === 0 && d.rules.length === 0 && last.d.otherwise === d.otherwise) last.hi = to;
    else out.push({ lo: from, hi: to, d });
  };
  const def: Decision = { rules: [], otherwise: p.defaultAction };
  // numbers without a decision: the default, or above a limit another action (runc's -ENOSYS stub)
  const gap = (from: number, to: number) => {
    const a = p.above;
    if (!a || to <= a.nr) return push(from, to, def);
    if (from <= a.nr) push(from, a.nr, def);
    push(Math.max(from, a.nr + 1), to, { rules: [], otherwise: a.action });
  };
  let next = lo;
  for (const [nr, d] of p.decisions) {
    // decisions are in ascending order
    if (nr < lo || nr > hi) continue;
    if (nr > next) gap(next, nr - 1);
    push(nr, nr, d);
    next = nr + 1;
  }
  if (next <= hi) gap(next, hi);
  return out;
}

/** Appends a balanced search over RS[FROM..TO) (sorted, contiguous) to OUT; A holds the number. */
function emitTree(out: SockFilter[], rs: Range[], from: number, to: number, args64: boolean): void {
  if (to - from === 1) {
    const d = rs[from]!.d;
    for (const rule of d.rules) out.push(...ruleCode(rule, args64));
    out.push(bpfStmt(RET_K, d.otherwise));
    return;
  }
  const mid = (from + to) >> 1;
  const at = out.length;
  out.push(bpfJump(JGE, rs[mid]!.lo, 0, 0));
  emitTree(out, rs, from, mid, args64);
  // jumps inside the lower half are relative, so a trampoline can still go in front of it
  const lower = out.length - at - 1;
  if (lower <= MAX_JUMP) out[at]!.jt = lower;
  else {
    out[at]!.jf = 1;
    out.splice(at + 1, 0, bpfStmt(JA, lower));
  }
  emitTree(out, rs, mid, to, args64);
}

function treeCode(rs: Range[], args64: boolean): SockFilter[] {
  const out: SockFilter[] = [];
  emitTree(out, rs, 0, rs.length, args64);
  return out;
}

/** The program for a policy. Throws if it would not fit the kernel's limit. */
export function buildSeccompProgram(policy: SeccompPolicy): SockFilter[] {
  const byAbi = new Map(policy.abis.map((p) => [p.abi, p]));
  const x86_64 = byAbi.get('x86_64');
  const x32 = byAbi.get('x32');
  const i386 = byAbi.get('i386');
  // other architectures and ABIs without a policy: allowed for systemd's filters, libseccomp's bad-architecture
  // action for an OCI profile's
  const allow = [bpfStmt(RET_K, policy.otherArch ?? SECCOMP_ALLOW)];

  // the x86_64 token: [ld nr][nr >= X32 bit ? x32 : x86_64][x86_64 tree][x32 tree]
  let token64: SockFilter[] = [];
  if (x86_64 || x32) {
    const t64 = x86_64 ? treeCode(ranges(x86_64, 0, X32_SYSCALL_BIT - 1), true) : allow;
    const t32 = x32 ? treeCode(ranges(x32, X32_SYSCALL_BIT, 0xffffffff), false) : allow;
    token64 = [
      bpfStmt(LD_ABS, SECCOMP_DATA.nr),
      ...(t64.length <= MAX_JUMP ? [bpfJump(JGE, X32_SYSCALL_BIT, t64.length, 0)] : [bpfJump(JGE, X32_SYSCALL_BIT, 0, 1), bpfStmt(JA, t64.length)]),
      ...t64,
      ...t32,
    ];
  }
  const tokenI386 = i386 ? [bpfStmt(LD_ABS, SECCOMP_DATA.nr), ...treeCode(ranges(i386, 0, 0xffffffff), false)] : [];

  // [ld arch][jeq x86_64 → token64][jeq i386 → tokenI386][ret allow][token64][tokenI386]
  const prog: SockFilter[] = [bpfStmt(LD_ABS, SECCOMP_DATA.arch)];
  // jumps from the dispatch: to token64 over (the i386 test, ja?, ret allow); to tokenI386 over token64 too
  const toI386 = 1 + token64.length; // from after its own jeq (+ ja) and the ret allow
  if (token64.length > 0) prog.push(bpfJump(JEQ, AUDIT_ARCH.X86_64, tokenI386.length > 0 ? (toI386 <= MAX_JUMP ? 2 : 3) : 1, 0));
  if (tokenI386.length > 0) {
    if (toI386 <= MAX_JUMP) prog.push(bpfJump(JEQ, AUDIT_ARCH.I386, toI386, 0));
    else prog.push(bpfJump(JEQ, AUDIT_ARCH.I386, 0, 1), bpfStmt(JA, toI386));
  }
  prog.push(...allow, ...token64, ...tokenI386);
  if (prog.length > BPF_MAXINSNS) throw new Error(`seccomp program too long: ${prog.length} instructions`);
  return prog;
}

export interface NspawnSeccompFilter {
  program: SockFilter[];
  /** the program as the kernel takes it (struct sock_filter[]) */
  bytes: Uint8Array;
  /** what systemd-nspawn says while building its filters */
  warnings: string[];
}

/** systemd-nspawn 252's seccomp filters for a container, as one BPF program. */
export function nspawnSeccompFilter(opts: NspawnSeccompOptions): NspawnSeccompFilter {
  const policy = nspawnSeccompPolicy(opts);
  const program = buildSeccompProgram(policy);
  return { program, bytes: encodeFilter(program), warnings: policy.warnings };
}

/**
 * Filters computed ahead of time: a bundle's build step (apps/cli/scripts/bundle.mjs) runs nspawnSeccompFilter() for
 * the usual option sets and defines this table, keyed by seccompFilterKey(), so that a start does not compute the
 * same program again (a few milliseconds of nspawn's start-up). Unbundled, it does not exist.
 */
export type PrecomputedSeccomp = Record<string, { hex: string; warnings: string[] }>;
declare const __NSPAWN_PRECOMPUTED_SECCOMP__: PrecomputedSeccomp | undefined;

/** The key of a filter's options in a PrecomputedSeccomp table. */
export function seccompFilterKey(o: NspawnSeccompOptions): string {
  return JSON.stringify([o.retainedCapabilities.toString(16), o.allow ?? [], o.deny ?? [], o.suppressSync === true]);
}

/** nspawnSeccompFilter()'s program and warnings: from the bundle's table when it has them, else computed. */
export function nspawnSeccompBytes(o: NspawnSeccompOptions, table?: PrecomputedSeccomp): { bytes: Uint8Array; warnings: string[] } {
  const t = table ?? (typeof __NSPAWN_PRECOMPUTED_SECCOMP__ === 'undefined' ? undefined : __NSPAWN_PRECOMPUTED_SECCOMP__);
  const hit = t?.[seccompFilterKey(o)];
  if (hit) return { bytes: Buffer.from(hit.hex, 'hex'), warnings: [...hit.warnings] };
  const f = nspawnSeccompFilter(o);
  return { bytes: f.bytes, warnings: f.warnings };
}

/**
 * The table a bundle's build step defines as __NSPAWN_PRECOMPUTED_SECCOMP__: the filters of the usual starts, the
 * default capabilities with and without a private network and a user namespace, with and without --suppress-sync.
 * Other option sets are computed at start-up.
 */
export function precomputeSeccompPrograms(): PrecomputedSeccomp {
  const out: PrecomputedSeccomp = {};
  for (const privateNetwork of [false, true])
    for (const privateUsers of [undefined, { mode: 'fixed' as const, shift: 0x10000, range: 0x10000 }, { mode: 'pick' as const }])
      for (const suppressSync of [false, true]) {
        const s = { ...(privateNetwork ? { privateNetwork } : {}), ...(privateUsers ? { privateUsers } : {}) };
        const opts = { retainedCapabilities: containerCapabilities(s, s).retain, allow: [], deny: [], suppressSync };
        const f = nspawnSeccompFilter(opts);
        out[seccompFilterKey(opts)] = { hex: Buffer.from(f.bytes).toString('hex'), warnings: f.warnings };
      }
  return out;
}
