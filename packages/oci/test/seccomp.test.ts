/**
 * compileOciSeccomp(): a profile's decisions run in the runtime's BPF interpreter (what runc+libseccomp decide on
 * x86_64: the root integration test apps/cli/test/oci-seccomp.test.ts runs them beside runc), and the plan
 * translateSpec() makes of it.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AUDIT_ARCH, decodeFilter, runFilter, SECCOMP_RET, syscallNumber, X32_SYSCALL_BIT } from '@nspawn/runtime';
import { describe, expect, it } from 'vitest';
import { compileOciSeccomp, defaultSpec, features, loadSpec, SpecError, translateSpec } from '../src/index.js';

const errno = (e: number) => (SECCOMP_RET.ERRNO | e) >>> 0;
function decide(profile: unknown, name: string, args: bigint[] = [], abi: 'x86_64' | 'i386' | 'x32' = 'x86_64'): number {
  const f = compileOciSeccomp(profile)!;
  const nr = syscallNumber(abi, name)!;
  return runFilter(decodeFilter(f.bytes), { nr, arch: abi === 'i386' ? AUDIT_ARCH.I386 : AUDIT_ARCH.X86_64, args });
}

describe('compileOciSeccomp', () => {
  it('no defaultAction and no syscalls: no filter', () => {
    expect(compileOciSeccomp({})).toBeUndefined();
    expect(compileOciSeccomp({ syscalls: [] })).toBeUndefined();
  });

  it('actions and their errnoRet; the default with defaultErrnoRet', () => {
    const p = {
      defaultAction: 'SCMP_ACT_ERRNO',
      defaultErrnoRet: 95,
      syscalls: [
        { names: ['getppid'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 },
        { names: ['getuid'], action: 'SCMP_ACT_ERRNO' },
        { names: ['getgid', 'no_such_call'], action: 'SCMP_ACT_KILL' },
        { names: ['getegid'], action: 'SCMP_ACT_KILL_PROCESS' },
        { names: ['geteuid'], action: 'SCMP_ACT_TRAP' },
        { names: ['getpgrp'], action: 'SCMP_ACT_LOG' },
        { names: ['sched_yield'], action: 'SCMP_ACT_TRACE' },
        { names: ['getpid'], action: 'SCMP_ACT_ALLOW' },
      ],
    };
    expect(['getppid', 'getuid', 'getgid', 'getegid', 'geteuid', 'getpgrp', 'sched_yield', 'getpid', 'gettid'].map((n) => decide(p, n))).toEqual([
      errno(13), errno(1), SECCOMP_RET.KILL_THREAD, SECCOMP_RET.KILL_PROCESS, SECCOMP_RET.TRAP, SECCOMP_RET.LOG, (SECCOMP_RET.TRACE | 1) >>> 0, SECCOMP_RET.ALLOW, errno(95),
    ]);
  });

  it('an unconditional rule wins over conditional ones; a repeated index makes separate rules', () => {
    const p = {
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [
        { names: ['getppid'], action: 'SCMP_ACT_ERRNO', errnoRet: 2, args: [{ index: 0, value: 1, op: 'SCMP_CMP_EQ' }] },
        { names: ['getppid'], action: 'SCMP_ACT_ERRNO', errnoRet: 3 },
        { names: ['getsid'], action: 'SCMP_ACT_ERRNO', errnoRet: 4, args: [{ index: 0, value: 1, op: 'SCMP_CMP_EQ' }, { index: 0, value: 2, op: 'SCMP_CMP_EQ' }] },
      ],
    };
    expect(decide(p, 'getppid', [1n])).toBe(errno(3));
    expect([0n, 1n, 2n].map((a) => decide(p, 'getsid', [a]))).toEqual([SECCOMP_RET.ALLOW, errno(4), errno(4)]);
  });

  it('architectures: x86_64 always, x86 and x32 when listed, other ABIs killed; -ENOSYS above the highest listed number', () => {
    const p = { defaultAction: 'SCMP_ACT_ERRNO', architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_ARM'], syscalls: [{ names: ['getpid', 'read'], action: 'SCMP_ACT_ALLOW' }] };
    expect(decide(p, 'getpid', [], 'i386')).toBe(SECCOMP_RET.ALLOW);
    expect(decide(p, 'getpid', [], 'x32')).toBe(SECCOMP_RET.KILL_THREAD);
    const f = decodeFilter(compileOciSeccomp(p)!.bytes);
    expect(runFilter(f, { nr: 38, arch: AUDIT_ARCH.X86_64 })).toBe(errno(1)); // below getpid (39): the default
    expect(runFilter(f, { nr: 40, arch: AUDIT_ARCH.X86_64 })).toBe(errno(38)); // above it: ENOSYS
    expect(runFilter(f, { nr: X32_SYSCALL_BIT + 39, arch: AUDIT_ARCH.X86_64 })).toBe(SECCOMP_RET.KILL_THREAD);
    expect(runFilter(f, { nr: 1, arch: AUDIT_ARCH.AARCH64 })).toBe(SECCOMP_RET.KILL_THREAD);
    // permissive defaults get no stub
    const q = { ...p, defaultAction: 'SCMP_ACT_LOG' };
    expect(runFilter(decodeFilter(compileOciSeccomp(q)!.bytes), { nr: 400, arch: AUDIT_ARCH.X86_64 })).toBe(SECCOMP_RET.LOG);
  });

  it('podman\'s default profile compiles to a program the kernel takes', () => {
    const raw = JSON.parse(readFileSync('/usr/share/containers/seccomp.json', 'utf8'));
    const profile = { defaultAction: raw.defaultAction, defaultErrnoRet: raw.defaultErrnoRet, architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'], syscalls: raw.syscalls.map((s: any) => ({ names: s.names, action: s.action, errnoRet: s.errnoRet, args: s.args ?? [] })) };
    const f = compileOciSeccomp(profile)!;
    expect(f.bytes.length / 8).toBeLessThan(4096);
    expect(decide(profile, 'personality', [0xffffffffn])).toBe(SECCOMP_RET.ALLOW);
    expect(decide(profile, 'personality', [0x40000n])).toBe(errno(38));
  });

  it('64-bit values past 2^53 keep their digits through loadSpec(); a missing index or value is 0, as Go decodes it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'oci-seccomp-unit-'));
    try {
      const spec = defaultSpec();
      spec.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['getppid'], action: 'SCMP_ACT_ERRNO', args: [{ index: 1, value: 0, op: 'SCMP_CMP_EQ' }] }, { names: ['getsid'], action: 'SCMP_ACT_ERRNO', args: [{ op: 'SCMP_CMP_EQ' }] }] };
      const text = JSON.stringify(spec).replace('"value":0', '"value":18446744073709551615');
      writeFileSync(join(dir, 'config.json'), text);
      const loaded = loadSpec(join(dir, 'config.json'));
      const prog = decodeFilter(compileOciSeccomp(loaded.linux!.seccomp)!.bytes);
      const at = (name: string, args: bigint[]) => runFilter(prog, { nr: syscallNumber('x86_64', name)!, arch: AUDIT_ARCH.X86_64, args });
      expect(at('getppid', [0n, (1n << 64n) - 1n])).toBe(errno(1));
      expect(at('getppid', [0n, (1n << 64n) - 2n])).toBe(SECCOMP_RET.ALLOW);
      expect(at('getppid', [0n, 0n])).toBe(SECCOMP_RET.ALLOW);
      expect(at('getsid', [0n])).toBe(errno(1));
      expect(at('getsid', [1n])).toBe(SECCOMP_RET.ALLOW);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('refuses what runc refuses, with its words', () => {
    const bad: Array<[unknown, RegExp]> = [
      [{ defaultAction: 'X' }, /string X is not a valid action for seccomp/],
      [{ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_VAX'] }, /string SCMP_ARCH_VAX is not a valid arch for seccomp/],
      [{ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 0, op: 'EQ' }] }] }, /string EQ is not a valid operator/],
      [{ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ERRNO', args: [{ index: 6, value: 0, op: 'SCMP_CMP_EQ' }] }] }, /up to 6 arguments/],
      [{ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_NOTIFY' }] }, /SCMP_ACT_NOTIFY is not supported/],
      [{ defaultAction: 'SCMP_ACT_ALLOW', flags: ['X'] }, /seccomp flag "X" is not supported/],
      [{ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: 'read', action: 'SCMP_ACT_ERRNO' }] }, /linux\.seccomp\.syscalls\[0\]\.names: not a list of strings/],
      [[], /linux\.seccomp\.\(top\): not an object/],
    ];
    for (const [p, re] of bad) {
      expect(() => compileOciSeccomp(p)).toThrow(SpecError);
      expect(() => compileOciSeccomp(p)).toThrow(re);
    }
  });

  it('translateSpec: the program, its flags, installed late with noNewPrivileges', () => {
    const spec = defaultSpec();
    spec.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_LOG'], syscalls: [{ names: ['getpid'], action: 'SCMP_ACT_ERRNO' }] };
    const plan = translateSpec(spec, { rootfs: '/', sync: false, console: 'pipe' });
    expect(plan.seccomp?.length).toBeGreaterThan(0);
    expect(plan.seccompOci).toEqual({ flags: 2, late: true });
    spec.process!.noNewPrivileges = false;
    expect(translateSpec(spec, { rootfs: '/', sync: false, console: 'pipe' }).seccompOci).toEqual({ flags: 2, late: false });
    delete spec.linux!.seccomp;
    expect(translateSpec(spec, { rootfs: '/', sync: false, console: 'pipe' }).seccomp).toBeUndefined();
    expect((features() as any).linux.seccomp.enabled).toBe(true);
  });
});
