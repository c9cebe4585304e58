/**
 * `linux.seccomp` → one BPF program, with the runtime's seccomp compiler (@nspawn/runtime's buildSeccompProgram()),
 * deciding what runc 1.1 with libseccomp 2.5 decides on an x86_64 host:
 *
 * - specconv.SetupSeccomp(): no defaultAction and no syscalls is no filter; the names of actions, operators and
 *   architectures are checked, with runc's messages ("string X is not a valid action for seccomp").
 * - seccomp.InitSeccomp()/matchCall(): a rule with the default action is skipped; a name the system call tables do
 *   not know is skipped; the args of one rule must all hold, except when one argument index appears twice: then
 *   each comparison is a rule of its own (runc's "old behavior"); an action's errnoRet (default EPERM) for ERRNO and
 *   TRACE; SCMP_CMP_MASKED_EQ takes `value` as the mask and `valueTwo` as the value; other operators ignore valueTwo.
 * - libseccomp: the native ABI (x86_64) is always in the filter, SCMP_ARCH_X86 and SCMP_ARCH_X32 add theirs; a call
 *   of an ABI not in the filter gets the bad-architecture action (SCMP_ACT_KILL_THREAD). Other architectures'
 *   names are accepted and change nothing here (their calls never reach an x86_64 kernel). Per system call, an
 *   unconditional rule wins over conditional ones whatever their order, the first unconditional one over later
 *   ones (libseccomp's db); conditional rules are tried in the profile's order. Comparisons are unsigned, 64-bit on
 *   x86_64, of the low 32 bits on x86 and x32.
 * - patchbpf (runc's -ENOSYS stub): unless the default action is ALLOW, LOG or TRACE, a call of a listed
 *   architecture whose number is above the highest the profile names for it gets ENOSYS (new system calls look
 *   unimplemented instead of denied).
 * - flags: SECCOMP_FILTER_FLAG_TSYNC, _LOG, _SPEC_ALLOW for seccomp(2) (runc 1.2; 1.1 refuses any flag).
 */
import {
  type AbiPolicy,
  type ArgCheck,
  type ArgRule,
  buildSeccompProgram,
  type Decision,
  encodeFilter,
  SECCOMP_RET,
  SYSCALL_TABLES,
  multiplexedCall,
  syscallNumber,
  type X86Abi,
} from '@nspawn/runtime';
import { SpecError } from './spec.js';

export interface SpecSeccompArg {
  index?: number;
  /** a bigint past 2^53 (loadSpec() keeps the digits) */
  value: number | bigint;
  valueTwo?: number | bigint;
  op?: string;
}

export interface SpecSeccompSyscall {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: SpecSeccompArg[];
}

export interface SpecSeccomp {
  defaultAction?: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  flags?: string[];
  listenerPath?: string;
  listenerMetadata?: string;
  syscalls?: SpecSeccompSyscall[];
}

const EPERM = 1;
const ENOSYS = 38;

/** runc's action names (libcontainer/seccomp/config.go). */
export const SECCOMP_ACTIONS = [
  'SCMP_ACT_ALLOW', 'SCMP_ACT_ERRNO', 'SCMP_ACT_KILL', 'SCMP_ACT_KILL_PROCESS', 'SCMP_ACT_KILL_THREAD', 'SCMP_ACT_LOG',
  'SCMP_ACT_NOTIFY', 'SCMP_ACT_TRACE', 'SCMP_ACT_TRAP',
] as const;
const OPERATORS: Record<string, ArgCheck['op']> = {
  SCMP_CMP_NE: 'ne', SCMP_CMP_LT: 'lt', SCMP_CMP_LE: 'le', SCMP_CMP_EQ: 'eq', SCMP_CMP_GE: 'ge', SCMP_CMP_GT: 'gt',
  SCMP_CMP_MASKED_EQ: 'masked_eq',
};
export const SECCOMP_OPERATORS = Object.keys(OPERATORS).sort();
/** runc's architecture names; on this x86_64 host only three of them are ABIs its kernel runs. */
export const SECCOMP_ARCHS = [
  'SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM', 'SCMP_ARCH_MIPS', 'SCMP_ARCH_MIPS64', 'SCMP_ARCH_MIPS64N32', 'SCMP_ARCH_MIPSEL',
  'SCMP_ARCH_MIPSEL64', 'SCMP_ARCH_MIPSEL64N32', 'SCMP_ARCH_PPC', 'SCMP_ARCH_PPC64', 'SCMP_ARCH_PPC64LE', 'SCMP_ARCH_S390',
  'SCMP_ARCH_S390X', 'SCMP_ARCH_X32', 'SCMP_ARCH_X86', 'SCMP_ARCH_X86_64',
] as const;
const X86_ARCH: Record<string, X86Abi> = { SCMP_ARCH_X86_64: 'x86_64', SCMP_ARCH_X86: 'i386', SCMP_ARCH_X32: 'x32' };
/** seccomp(2)'s filter flags this runtime passes on */
export const SECCOMP_FLAGS: Record<string, number> = {
  SECCOMP_FILTER_FLAG_TSYNC: 1,
  SECCOMP_FILTER_FLAG_LOG: 2,
  SECCOMP_FILTER_FLAG_SPEC_ALLOW: 4,
};

export interface OciSeccompFilter {
  /** struct sock_filter[] */
  bytes: Uint8Array;
  /** seccomp(2) flags */
  flags: number;
}

/** runc's getAction(): the 32-bit SECCOMP_RET_* value of an action name, with its errnoRet. */
function actionValue(name: string, errnoRet: number | undefined): number {
  const data = (e: number | undefined, dflt: number) => (e ?? dflt) & SECCOMP_RET.DATA;
  switch (name) {
    case 'SCMP_ACT_KILL':
    case 'SCMP_ACT_KILL_THREAD':
      return SECCOMP_RET.KILL_THREAD;
    case 'SCMP_ACT_KILL_PROCESS':
      return SECCOMP_RET.KILL_PROCESS;
    case 'SCMP_ACT_TRAP':
      return SECCOMP_RET.TRAP;
    case 'SCMP_ACT_ERRNO':
      return (SECCOMP_RET.ERRNO | data(errnoRet, EPERM)) >>> 0;
    case 'SCMP_ACT_TRACE':
      return (SECCOMP_RET.TRACE | data(errnoRet, EPERM)) >>> 0;
    case 'SCMP_ACT_ALLOW':
      return SECCOMP_RET.ALLOW;
    case 'SCMP_ACT_LOG':
      return SECCOMP_RET.LOG;
    default:
      throw new SpecError(`linux.seccomp: string ${name} is not a valid action for seccomp`);
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isU = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;
/** an argument's value: a number, or a bigint for one past 2^53 (loadSpec() keeps its digits), at most 2^64-1 */
const isU64 = (v: unknown): boolean => (typeof v === 'bigint' && v >= 0n && v < 1n << 64n) || (isU(v) && v <= Number.MAX_SAFE_INTEGER);

/** The JSON's shape (what runc's Go decoder would refuse to unmarshal), one line naming the field. */
function checkShape(raw: unknown): SpecSeccomp {
  const bad = (field: string, what: string): never => {
    throw new SpecError(`linux.seccomp.${field}: ${what}`);
  };
  if (!isObj(raw)) bad('(top)', 'not an object');
  const s = raw as Record<string, unknown>;
  if (s.defaultAction !== undefined && typeof s.defaultAction !== 'string') bad('defaultAction', 'not a string');
  if (s.defaultErrnoRet !== undefined && !isU(s.defaultErrnoRet)) bad('defaultErrnoRet', 'not an unsigned integer');
  for (const k of ['architectures', 'flags'] as const)
    if (s[k] !== undefined && (!Array.isArray(s[k]) || !(s[k] as unknown[]).every((x) => typeof x === 'string'))) bad(k, 'not a list of strings');
  if (s.syscalls !== undefined && !Array.isArray(s.syscalls)) bad('syscalls', 'not a list');
  ((s.syscalls ?? []) as unknown[]).forEach((c, i) => {
    if (!isObj(c)) bad(`syscalls[${i}]`, 'not an object');
    const cc = c as Record<string, unknown>;
    if (!Array.isArray(cc.names) || !cc.names.every((x) => typeof x === 'string')) bad(`syscalls[${i}].names`, 'not a list of strings');
    if (typeof cc.action !== 'string') bad(`syscalls[${i}].action`, 'missing or not a string');
    if (cc.errnoRet !== undefined && !isU(cc.errnoRet)) bad(`syscalls[${i}].errnoRet`, 'not an unsigned integer');
    if (cc.args !== undefined && !Array.isArray(cc.args)) bad(`syscalls[${i}].args`, 'not a list');
    ((cc.args ?? []) as unknown[]).forEach((a, j) => {
      const f = `syscalls[${i}].args[${j}]`;
      if (!isObj(a)) bad(f, 'not an object');
      const aa = a as Record<string, unknown>;
      // Go's decoder: a missing index or value is 0, a missing op "" (refused below as not a valid operator)
      if (aa.index !== undefined && !isU(aa.index)) bad(`${f}.index`, 'not an unsigned integer');
      for (const k of ['value', 'valueTwo'])
        if (aa[k] !== undefined && !isU64(aa[k])) bad(`${f}.${k}`, 'not a 64-bit unsigned integer (one past 2^53 loses its digits in JSON.parse(): read the file with loadSpec())');
      if (aa.op !== undefined && typeof aa.op !== 'string') bad(`${f}.op`, 'not a string');
    });
  });
  return s as SpecSeccomp;
}

/** One rule as libseccomp gets it from runc's matchCall(): several, one check each, when an index repeats. */
function rulesOf(call: SpecSeccompSyscall, action: number): ArgRule[] {
  const checks: ArgCheck[] = (call.args ?? []).map((a) => {
    const op = OPERATORS[a.op ?? '']!;
    const v = BigInt(a.value ?? 0);
    const arg = a.index ?? 0;
    return op === 'masked_eq' ? { arg, op, mask: v, value: BigInt(a.valueTwo ?? 0) } : { arg, op, value: v };
  });
  const seen = new Set<number>();
  const repeats = checks.some((c) => seen.size === seen.add(c.arg).size);
  return repeats ? checks.map((c) => ({ checks: [c], action })) : [{ checks, action }];
}

/**
 * Compiles a config.json's `linux.seccomp` (RAW, as parsed) into the program runc would load on an x86_64 host, or
 * undefined when runc loads none. Throws a SpecError with runc's wording for what runc refuses.
 */
export function compileOciSeccomp(raw: unknown): OciSeccompFilter | undefined {
  // the same spec object is translated twice by a create (checked, then planned): compiled once
  const hit = typeof raw === 'object' && raw !== null ? COMPILED.get(raw) : undefined;
  if (hit) return hit.filter;
  const filter = compile(raw);
  if (typeof raw === 'object' && raw !== null) COMPILED.set(raw, { filter });
  return filter;
}
const COMPILED = new WeakMap<object, { filter: OciSeccompFilter | undefined }>();

function compile(raw: unknown): OciSeccompFilter | undefined {
  const cfg = checkShape(raw);
  const syscalls = cfg.syscalls ?? [];
  if ((cfg.defaultAction ?? '') === '' && syscalls.length === 0) return undefined;

  // specconv.SetupSeccomp()'s order: flags, architectures, the default action, each call's action and operators
  let flags = 0;
  for (const f of cfg.flags ?? []) {
    const bit = SECCOMP_FLAGS[f];
    if (bit === undefined) throw new SpecError(`linux.seccomp: seccomp flag ${JSON.stringify(f)} is not supported`);
    flags |= bit;
  }
  const abis = new Set<X86Abi>(['x86_64']);
  const listed = new Set<X86Abi>();
  for (const a of cfg.architectures ?? []) {
    if (!(SECCOMP_ARCHS as readonly string[]).includes(a)) throw new SpecError(`linux.seccomp: string ${a} is not a valid arch for seccomp`);
    const abi = X86_ARCH[a];
    if (abi) abis.add(abi), listed.add(abi);
  }
  const checkAction = (a: string) => {
    if (!(SECCOMP_ACTIONS as readonly string[]).includes(a)) throw new SpecError(`linux.seccomp: string ${a} is not a valid action for seccomp`);
  };
  checkAction(cfg.defaultAction ?? '');
  for (const c of syscalls) {
    checkAction(c.action);
    for (const a of c.args ?? []) if (!OPERATORS[a.op ?? '']) throw new SpecError(`linux.seccomp: string ${a.op ?? ''} is not a valid operator for seccomp`);
  }
  // InitSeccomp(): a seccomp agent is what SCMP_ACT_NOTIFY needs, and this runtime has none to hand the fd to
  if (cfg.defaultAction === 'SCMP_ACT_NOTIFY') throw new SpecError('linux.seccomp: SCMP_ACT_NOTIFY cannot be used as default action');
  if (syscalls.some((c) => c.action === 'SCMP_ACT_NOTIFY'))
    throw new SpecError('linux.seccomp: SCMP_ACT_NOTIFY is not supported by nspawn-oci (it has no seccomp agent to pass the listener to)');
  const defaultAction = actionValue(cfg.defaultAction!, cfg.defaultErrnoRet);

  // per ABI and number, the rules in the profile's order (matchCall())
  const perAbi = new Map<X86Abi, Map<number, { full?: number; rules: ArgRule[] }>>();
  for (const abi of abis) perAbi.set(abi, new Map());
  for (const c of syscalls) {
    const action = actionValue(c.action, c.errnoRet);
    for (const name of c.names) {
      if (name === '') throw new SpecError('linux.seccomp: empty string is not a valid syscall');
      for (const a of c.args ?? [])
        if ((a.index ?? 0) > 5) throw new SpecError(`linux.seccomp: error creating seccomp syscall condition for syscall ${name}: syscalls only have up to 6 arguments (${a.index} given)`);
      if (action === defaultAction) continue; // runc: redundant, skipped
      for (const abi of abis) {
        const nr = syscallNumber(abi, name);
        if (nr === undefined) continue; // unknown here: ignored
        const m = perAbi.get(abi)!;
        let e = m.get(nr);
        if (!e) m.set(nr, (e = { rules: [] }));
        if ((c.args ?? []).length === 0) e.full ??= action;
        else e.rules.push(...rulesOf(c, action));
      }
      // libseccomp on x86: a rule for a socket or SysV IPC call also holds for its multiplexed form, socketcall(2)/
      // ipc(2) with that call's number as the first argument, without the rule's comparisons (its arguments are in
      // memory there, out of a filter's reach)
      const mux = abis.has('i386') ? multiplexedCall(name) : undefined;
      if (mux) {
        const m = perAbi.get('i386')!;
        let e = m.get(mux.nr);
        if (!e) m.set(mux.nr, (e = { rules: [] }));
        e.rules.push({ checks: [{ arg: 0, op: 'eq', value: BigInt(mux.call) }], action });
      }
    }
  }

  // runc's -ENOSYS stub: above the highest number the profile names, for the architectures it lists
  const permissive = ['SCMP_ACT_ALLOW', 'SCMP_ACT_LOG', 'SCMP_ACT_TRACE'].includes(cfg.defaultAction!);
  const enosys = (SECCOMP_RET.ERRNO | ENOSYS) >>> 0;
  const policies: AbiPolicy[] = [];
  for (const abi of abis) {
    const decisions = new Map<number, Decision>();
    const m = perAbi.get(abi)!;
    for (const nr of [...m.keys()].sort((a, b) => a - b)) {
      const e = m.get(nr)!;
      decisions.set(nr, e.full !== undefined ? { rules: [], otherwise: e.full } : { rules: e.rules, otherwise: defaultAction });
    }
    const p: AbiPolicy = { abi, args64: abi === 'x86_64', decisions, defaultAction };
    if (!permissive && listed.has(abi)) {
      let max = -1;
      for (const c of syscalls) for (const n of c.names) max = Math.max(max, syscallNumber(abi, n) ?? -1);
      if (max >= 0 && max > lowest(abi)) p.above = { nr: max, action: enosys };
    }
    policies.push(p);
  }
  const program = buildSeccompProgram({ abis: policies, warnings: [], otherArch: SECCOMP_RET.KILL_THREAD });
  return { bytes: encodeFilter(program), flags };
}

/** runc's stub needs a largest number other than 0 (an x32 number always has the x32 bit). */
function lowest(abi: X86Abi): number {
  return abi === 'x32' ? (SYSCALL_TABLES.x32[1] as number) - 1 : 0;
}
