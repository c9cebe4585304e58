/**
 * The argument comparisons OCI profiles use (ne, lt, le, eq, ge, gt, masked_eq) as the compiler emits them, run in
 * the BPF interpreter against their definition (libseccomp's: unsigned, all 64 bits on x86_64, the low 32 bits on
 * x86 and x32), on edge values of both words.
 */
import { describe, expect, it } from 'vitest';
import { AUDIT_ARCH, runFilter, SECCOMP_RET } from './bpf.js';
import { buildSeccompProgram } from './filter.js';
import type { ArgCheck, SeccompPolicy } from './policy.js';
import { X32_SYSCALL_BIT } from './syscalls-x86.js';

const HOLD = (SECCOMP_RET.ERRNO | 7) >>> 0;
const OTHER = (SECCOMP_RET.ERRNO | 9) >>> 0;
const M64 = (1n << 64n) - 1n;

function truth(c: ArgCheck, arg: bigint, bits: 32 | 64): boolean {
  const w = (v: bigint) => (bits === 64 ? v & M64 : v & 0xffffffffn);
  const a = w(arg);
  const v = w(c.value);
  switch (c.op) {
    case 'eq': return a === v;
    case 'ne': return a !== v;
    case 'lt': return a < v;
    case 'le': return a <= v;
    case 'ge': return a >= v;
    case 'gt': return a > v;
    case 'masked_eq': return (a & w(c.mask ?? 0n)) === v;
    default: throw new Error(c.op);
  }
}

const words = [0n, 1n, 2n, 0x7fffffffn, 0x80000000n, 0xfffffffen, 0xffffffffn];
const values: bigint[] = [];
for (const hi of words) for (const lo of words) values.push((hi << 32n) | lo);

function program(checks: ArgCheck[], abi: 'x86_64' | 'i386' | 'x32') {
  const nr = abi === 'x32' ? X32_SYSCALL_BIT + 5 : 5;
  const policy: SeccompPolicy = {
    abis: [{ abi, args64: abi === 'x86_64', decisions: new Map([[nr, { rules: [{ checks, action: HOLD }], otherwise: OTHER }]]), defaultAction: SECCOMP_RET.ALLOW }],
    warnings: [],
    otherArch: SECCOMP_RET.KILL_THREAD,
  };
  return { prog: buildSeccompProgram(policy), nr, arch: abi === 'i386' ? AUDIT_ARCH.I386 : AUDIT_ARCH.X86_64 };
}

describe('argument comparisons of OCI profiles', () => {
  const ops = ['eq', 'ne', 'lt', 'le', 'ge', 'gt', 'masked_eq'] as const;
  for (const abi of ['x86_64', 'i386', 'x32'] as const)
    for (const op of ops)
      it(`${op} on ${abi}`, () => {
        const bits = abi === 'x86_64' ? 64 : 32;
        // a sample of reference values (every 7th) against every argument value
        for (let i = 0; i < values.length; i += 7) {
          const c: ArgCheck = op === 'masked_eq' ? { arg: 2, op, mask: values[(i * 3) % values.length]!, value: values[i]! & values[(i * 3) % values.length]! } : { arg: 2, op, value: values[i]! };
          const { prog, nr, arch } = program([c], abi);
          for (const a of values) {
            const got = runFilter(prog, { nr, arch, args: [0n, 0n, a] });
            expect(got, `${op} ${c.value.toString(16)} arg ${a.toString(16)}`).toBe(truth(c, a, bits) ? HOLD : OTHER);
          }
        }
      });

  it('several checks of one rule must all hold', () => {
    const checks: ArgCheck[] = [
      { arg: 0, op: 'gt', value: 10n },
      { arg: 1, op: 'masked_eq', mask: 0xffn, value: 0x12n },
      { arg: 3, op: 'ne', value: 1n << 40n },
    ];
    const { prog, nr, arch } = program(checks, 'x86_64');
    const run = (a: bigint[]) => runFilter(prog, { nr, arch, args: a });
    expect(run([11n, 0x1112n, 0n, 0n])).toBe(HOLD);
    expect(run([10n, 0x1112n, 0n, 0n])).toBe(OTHER);
    expect(run([11n, 0x1113n, 0n, 0n])).toBe(OTHER);
    expect(run([11n, 0x1112n, 0n, 1n << 40n])).toBe(OTHER);
    expect(run([1n << 33n, 0x12n, 0n, (1n << 40n) + 1n])).toBe(HOLD);
  });

  it('other architectures and missing ABIs get otherArch', () => {
    const { prog, nr } = program([{ arg: 0, op: 'eq', value: 0n }], 'x86_64');
    expect(runFilter(prog, { nr, arch: AUDIT_ARCH.I386 })).toBe(SECCOMP_RET.KILL_THREAD);
    expect(runFilter(prog, { nr: X32_SYSCALL_BIT + 1, arch: AUDIT_ARCH.X86_64 })).toBe(SECCOMP_RET.KILL_THREAD);
    expect(runFilter(prog, { nr, arch: AUDIT_ARCH.AARCH64 })).toBe(SECCOMP_RET.KILL_THREAD);
  });

  it('numbers above a limit get its action (runc\'s -ENOSYS stub)', () => {
    const policy: SeccompPolicy = {
      abis: [{ abi: 'x86_64', args64: true, decisions: new Map([[5, { rules: [], otherwise: SECCOMP_RET.ALLOW }]]), defaultAction: OTHER, above: { nr: 100, action: HOLD } }],
      warnings: [],
    };
    const prog = buildSeccompProgram(policy);
    const at = (nr: number) => runFilter(prog, { nr, arch: AUDIT_ARCH.X86_64 });
    expect([at(4), at(5), at(6), at(100), at(101), at(X32_SYSCALL_BIT - 1)]).toEqual([OTHER, SECCOMP_RET.ALLOW, OTHER, OTHER, HOLD, HOLD]);
  });
});
