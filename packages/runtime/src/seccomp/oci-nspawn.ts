/**
 * An OCI bundle's `linux.seccomp` under `--oci-bundle=`, as systemd-nspawn 252 loads it (nspawn-oci.c oci_seccomp(),
 * straight into libseccomp, no runc-isms): one filter replacing nspawn's own (setup_seccomp() is skipped, the
 * NETLINK_AUDIT rule too), from seccomp_init(defaultAction): SCMP_ACT_ERRNO is always EPERM (252 reads no errnoRet:
 * the settings reader refuses it as an unexpected element), SCMP_ACT_KILL kills the thread, TRACE is refused by
 * the reader; the native ABI (x86_64) always, SCMP_ARCH_X86/X32/NATIVE add theirs, a call of another ABI gets
 * libseccomp's bad-architecture action (SCMP_ACT_KILL); no -ENOSYS stub; seccomp_rule_add_array() per name (an
 * unknown name skipped; on x86 a socket or SysV IPC call's rule holds for its socketcall()/ipc() form too, without
 * its comparisons): every comparison of a rule must hold, and libseccomp refuses a rule with the filter's
 * default action (EACCES) and a rule naming one argument twice (EINVAL), which fails the start. libseccomp's
 * seccomp_load() also sets no_new_privs (SCMP_FLTATR_CTL_NNP, which 252 leaves on here).
 */
import type { OciSeccomp } from '@nspawn/settings';
import { encodeFilter, SECCOMP_RET } from './bpf.js';
import { buildSeccompProgram } from './filter.js';
import { type AbiPolicy, type ArgCheck, type ArgRule, type Decision, multiplexedCall, seccompErrno, syscallNumber } from './policy.js';
import type { X86Abi } from './syscalls-x86.js';

const EPERM = 1;

/** oci_seccomp_action_from_string() */
const ACTIONS: Record<string, number> = {
  SCMP_ACT_ALLOW: SECCOMP_RET.ALLOW,
  SCMP_ACT_ERRNO: seccompErrno(EPERM),
  SCMP_ACT_KILL: SECCOMP_RET.KILL_THREAD,
  SCMP_ACT_KILL_PROCESS: SECCOMP_RET.KILL_PROCESS,
  SCMP_ACT_KILL_THREAD: SECCOMP_RET.KILL_THREAD,
  SCMP_ACT_LOG: SECCOMP_RET.LOG,
  SCMP_ACT_TRAP: SECCOMP_RET.TRAP,
};
const OPS: Record<string, ArgCheck['op']> = {
  SCMP_CMP_NE: 'ne', SCMP_CMP_LT: 'lt', SCMP_CMP_LE: 'le', SCMP_CMP_EQ: 'eq', SCMP_CMP_GE: 'ge', SCMP_CMP_GT: 'gt', SCMP_CMP_MASKED_EQ: 'masked_eq',
};
const X86: Record<string, X86Abi> = { SCMP_ARCH_X86_64: 'x86_64', SCMP_ARCH_NATIVE: 'x86_64', SCMP_ARCH_X86: 'i386', SCMP_ARCH_X32: 'x32' };

/** What libseccomp refuses while 252 builds the filter: the start fails (systemd says nothing; we say this). */
export class OciSeccompError extends Error {
  override name = 'OciSeccompError';
}

/** The program systemd-nspawn 252 would load for SC, as struct sock_filter bytes. Throws OciSeccompError. */
export function nspawnOciSeccompBytes(sc: OciSeccomp): Uint8Array {
  const def = ACTIONS[sc.defaultAction];
  if (def === undefined) throw new OciSeccompError(`linux.seccomp: unknown default action ${sc.defaultAction}`);
  const abis = new Set<X86Abi>(['x86_64']);
  for (const a of sc.architectures) if (X86[a]) abis.add(X86[a]!);
  const per = new Map<X86Abi, Map<number, { full?: number; rules: ArgRule[] }>>([...abis].map((a) => [a, new Map()]));
  for (const rule of sc.syscalls) {
    const action = ACTIONS[rule.action];
    if (action === undefined) throw new OciSeccompError(`linux.seccomp: unknown system call action ${rule.action}`);
    const checks: ArgCheck[] = rule.args.map((a) => {
      const op = OPS[a.op];
      if (!op) throw new OciSeccompError(`linux.seccomp: unknown seccomp operator ${a.op}`);
      return op === 'masked_eq' ? { arg: a.index, op, mask: a.value, value: a.valueTwo } : { arg: a.index, op, value: a.value };
    });
    for (const name of rule.names) {
      const mux = multiplexedCall(name);
      const known = mux !== undefined || (['x86_64', 'i386', 'x32'] as const).some((abi) => syscallNumber(abi, name) !== undefined);
      if (!known) continue; // seccomp_syscall_resolve_name(): unknown, skipped
      if (action === def)
        throw new OciSeccompError(`linux.seccomp: the rule for ${name} has the default action ${rule.action}, which libseccomp refuses: Permission denied`);
      const seen = new Set<number>();
      for (const c of checks)
        if (c.arg > 5 || seen.size === seen.add(c.arg).size)
          throw new OciSeccompError(`linux.seccomp: the rule for ${name} compares argument ${c.arg} ${c.arg > 5 ? 'which no system call has' : 'twice'}, which libseccomp refuses: Invalid argument`);
      for (const abi of abis) {
        const nr = syscallNumber(abi, name);
        if (nr === undefined) continue;
        const m = per.get(abi)!;
        let e = m.get(nr);
        if (!e) m.set(nr, (e = { rules: [] }));
        if (checks.length === 0) e.full ??= action;
        else e.rules.push({ checks, action });
      }
      // x86: also socketcall(2)/ipc(2) with the call's number, without the comparisons (libseccomp's multiplexing)
      if (mux && abis.has('i386')) {
        const m = per.get('i386')!;
        let e = m.get(mux.nr);
        if (!e) m.set(mux.nr, (e = { rules: [] }));
        e.rules.push({ checks: [{ arg: 0, op: 'eq', value: BigInt(mux.call) }], action });
      }
    }
  }
  const policies: AbiPolicy[] = [...abis].map((abi) => {
    const m = per.get(abi)!;
    const decisions = new Map<number, Decision>();
    for (const nr of [...m.keys()].sort((a, b) => a - b)) {
      const e = m.get(nr)!;
      decisions.set(nr, e.full !== undefined ? { rules: [], otherwise: e.full } : { rules: e.rules, otherwise: def });
    }
    return { abi, args64: abi === 'x86_64', decisions, defaultAction: def };
  });
  return encodeFilter(buildSeccompProgram({ abis: policies, warnings: [], otherArch: SECCOMP_RET.KILL_THREAD }));
}
