/**
 * systemd-nspawn 252's seccomp decisions, checked by running the generated BPF program in the interpreter of
 * bpf.ts for many (ABI, system call, arguments) inputs. The expectations come from systemd's source and from
 * the filters systemd-nspawn 252 installs on this project's reference machine (test/seccomp.test.ts compares
 * them with ours for every number, as root).
 */
import { execaSync } from 'execa';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CAPABILITIES } from '@nspawn/settings';
import { describe, expect, it } from 'vitest';
import { DEFAULT_RETAINED_CAPABILITIES } from '../caps.js';
import { encodePlan } from '../protocol.js';
import { AUDIT_ARCH, BPF_MAXINSNS, decodeFilter, runFilter, SECCOMP_RET, type SockFilter } from './bpf.js';
import { buildSeccompProgram, nspawnSeccompFilter } from './filter.js';
import { SYSCALL_GROUPS } from './groups.js';
import { type AbiPolicy, type ArgRule, type Decision, NSPAWN_ALLOW_LIST, type NspawnSeccompOptions, nspawnSeccompPolicy, syscallName, syscallNumber } from './policy.js';
import { SYSCALL_TABLES, X32_SYSCALL_BIT, type X86Abi } from './syscalls-x86.js';
import { basePlan } from '../test/fixtures.js';
import { decoded } from '../test/decode.js';

const ERRNO_NAMES: Record<number, string> = { 0: 'errno 0', 1: 'EPERM', 22: 'EINVAL', 38: 'ENOSYS', 97: 'EAFNOSUPPORT' };
const cap = (name: (typeof CAPABILITIES)[number]) => 1n << BigInt(CAPABILITIES.indexOf(name));

/** The action as a word: allow, EPERM, ENOSYS, ... */
function word(ret: number): string {
  if (ret === SECCOMP_RET.ALLOW) return 'allow';
  if ((ret & SECCOMP_RET.ACTION_FULL) >>> 0 === SECCOMP_RET.ERRNO) return ERRNO_NAMES[ret & SECCOMP_RET.DATA] ?? `errno ${ret & 0xffff}`;
  return `0x${ret.toString(16)}`;
}

const ARCH: Record<X86Abi, number> = { x86_64: AUDIT_ARCH.X86_64, x32: AUDIT_ARCH.X86_64, i386: AUDIT_ARCH.I386 };

function program(opts: Partial<NspawnSeccompOptions> = {}): SockFilter[] {
  return nspawnSeccompFilter({ retainedCapabilities: DEFAULT_RETAINED_CAPABILITIES, ...opts }).program;
}

/** What a system call (by name on ABI, or a raw number) gets from PROG. */
function decide(prog: SockFilter[], abi: X86Abi, call: string | number, args: Array<number | bigint> = []): string {
  const nr = typeof call === 'number' ? call : syscallNumber(abi, call);
  if (nr === undefined) throw new Error(`${call} is not an ${abi} system call`);
  return word(runFilter(prog, { nr, arch: ARCH[abi], args }));
}

const ALL_ABIS: X86Abi[] = ['x86_64', 'x32', 'i386'];

describe('system call tables (generated from the kernel headers)', () => {
  it('are what scripts/gen-syscalls.mjs makes from this machine\'s headers', () => {
    // (linux-libc-dev comes with libc6-dev, which scripts/setup.sh installs with the compiler)
    expect(existsSync('/usr/include/x86_64-linux-gnu/asm/unistd_64.h'), 'needs the kernel headers to compare with (Debian: linux-libc-dev)').toBe(true);
    const script = fileURLToPath(new URL('../../scripts/gen-syscalls.mjs', import.meta.url));
    expect(() => execaSync(process.execPath, [script, '--check'])).not.toThrow();
  });

  it('have one number per name and one name per number, in number order', () => {
    for (const abi of ALL_ABIS) {
      const t = SYSCALL_TABLES[abi];
      const names = t.filter((_, i) => i % 2 === 0) as string[];
      const nrs = t.filter((_, i) => i % 2 === 1) as number[];
      expect(new Set(names).size, abi).toBe(names.length);
      expect(nrs, abi).toEqual([...nrs].sort((a, b) => a - b));
      expect(new Set(nrs).size, abi).toBe(nrs.length);
      for (const nr of nrs) expect(nr >= X32_SYSCALL_BIT, `${abi} ${nr}`).toBe(abi === 'x32');
    }
  });

  it('know the numbers the filter depends on', () => {
    expect(syscallNumber('x86_64', 'socket')).toBe(41);
    expect(syscallNumber('x32', 'socket')).toBe(X32_SYSCALL_BIT + 41);
    expect(syscallNumber('i386', 'socket')).toBe(359);
    expect(syscallNumber('i386', 'socketcall')).toBe(102);
    expect(syscallNumber('x86_64', 'socketcall')).toBeUndefined();
    expect(syscallNumber('x32', 'rt_sigaction')).toBe(X32_SYSCALL_BIT + 512);
    expect(syscallNumber('x86_64', 'fchmodat2')).toBe(452); // newer than the 6.1 headers, known to the reference's libseccomp
    expect(syscallNumber('x32', 'map_shadow_stack')).toBeUndefined();
    expect(syscallName('i386', 5)).toBe('open');
    expect(syscallName('x86_64', 1000)).toBeUndefined();
    expect(syscallNumber('x86_64', 'toString')).toBeUndefined();
  });
});

describe('groups and the allow list', () => {
  it('every group refers only to groups that exist', () => {
    for (const [name, members] of Object.entries(SYSCALL_GROUPS))
      for (const m of members) if (m.startsWith('@')) expect(SYSCALL_GROUPS, `${name} -> ${m}`).toHaveProperty([m]);
  });
  it('nspawn allows the groups of setup_seccomp(), four of them only with a capability, and never @keyring', () => {
    const names = NSPAWN_ALLOW_LIST.map(([, n]) => n);
    for (const g of names.filter((n) => n.startsWith('@'))) expect(SYSCALL_GROUPS).toHaveProperty([g]);
    const gated = Object.fromEntries(NSPAWN_ALLOW_LIST.filter(([c]) => c !== 0n).map(([c, n]) => [n, CAPABILITIES[c.toString(2).length - 1]]));
    expect(gated).toEqual({
      '@clock': 'sys_time',
      '@module': 'sys_module',
      '@raw-io': 'sys_rawio',
      '@memlock': 'ipc_lock',
      acct: 'sys_pacct',
      process_vm_readv: 'sys_ptrace',
      process_vm_writev: 'sys_ptrace',
      ptrace: 'sys_ptrace',
      reboot: 'sys_boot',
      syslog: 'syslog',
      vhangup: 'sys_tty_config',
    });
    for (const excluded of ['@keyring', '@swap', '@obsolete', '@cpu-emulation', '@pkey', 'bpf', 'kexec_load', 'perf_event_open', 'quotactl'])
      expect(names).not.toContain(excluded);
  });
});

describe('the default filter (systemd-nspawn without filter options)', () => {
  const prog = program();

  it('fits the kernel easily: one program of a few hundred instructions', () => {
    expect(prog.length).toBeGreaterThan(300);
    expect(prog.length).toBeLessThan(BPF_MAXINSNS / 4);
  });

  it('allows the allow list on every ABI', () => {
    for (const abi of ALL_ABIS)
      for (const call of ['read', 'write', 'execve', 'exit_group', 'mount', 'clone3', 'setresuid', 'fsync', 'timer_create', 'ioctl', 'seccomp', 'personality'])
        expect(decide(prog, abi, call), `${abi} ${call}`).toBe('allow');
    expect(decide(prog, 'i386', 'socketcall')).toBe('allow');
    expect(decide(prog, 'i386', 'ipc')).toBe('allow');
    expect(decide(prog, 'i386', 'sched_rr_get_interval_time64')).toBe('allow');
    expect(decide(prog, 'x86_64', 'fchmodat2')).toBe('allow');
  });

  it('known system calls left out get EPERM', () => {
    for (const abi of ALL_ABIS)
      for (const call of ['kexec_load', 'swapon', 'add_key', 'keyctl', 'request_key', 'bpf', 'perf_event_open', 'open_by_handle_at', 'init_module', 'clock_settime', 'settimeofday', 'mlock', 'iopl', 'acct', 'syslog', 'pkey_alloc', 'futex_wake'])
        if (syscallNumber(abi, call) !== undefined) expect(decide(prog, abi, call), `${abi} ${call}`).toBe('EPERM');
    expect(decide(prog, 'i386', 'vm86')).toBe('EPERM'); // @cpu-emulation
    expect(decide(prog, 'i386', 'stime')).toBe('EPERM'); // @obsolete
  });

  it('anything systemd does not know gets ENOSYS, numbers outside every table too', () => {
    expect(decide(prog, 'x86_64', 1000)).toBe('ENOSYS');
    expect(decide(prog, 'x86_64', 451)).toBe('ENOSYS'); // cachestat: libseccomp knows it, systemd 252 does not
    expect(decide(prog, 'x86_64', 457)).toBe('ENOSYS'); // newer than the reference's libseccomp
    expect(decide(prog, 'x86_64', 'nfsservctl')).toBe('ENOSYS'); // dropped from @known in 252.39
    expect(decide(prog, 'x86_64', 0xffffffff)).toBe('ENOSYS');
    expect(decide(prog, 'x32', X32_SYSCALL_BIT + 1000)).toBe('ENOSYS');
    expect(decide(prog, 'x32', X32_SYSCALL_BIT + 13)).toBe('ENOSYS'); // x86_64's rt_sigaction number is not an x32 call
    expect(decide(prog, 'i386', 1000)).toBe('ENOSYS');
    expect(decide(prog, 'i386', X32_SYSCALL_BIT + 1)).toBe('ENOSYS'); // no x32 bit on i386
  });

  it('x86_64 numbers with the x32 bit are x32 calls', () => {
    expect(decide(prog, 'x86_64', X32_SYSCALL_BIT + 246)).toBe('ENOSYS'); // 246 is x86_64's kexec_load, x32 has 528
    expect(decide(prog, 'x32', 'kexec_load')).toBe('EPERM');
    expect(decide(prog, 'x32', X32_SYSCALL_BIT)).toBe('allow'); // read
  });

  it('other architectures pass: systemd\'s filters are per architecture and let the others through', () => {
    for (const arch of [AUDIT_ARCH.AARCH64, 0x40000028 /* arm */, 0])
      for (const nr of [0, 1, 59, 1000]) expect(word(runFilter(prog, { nr, arch }))).toBe('allow');
  });

  it('socket(AF_NETLINK, *, NETLINK_AUDIT) fails with EAFNOSUPPORT, on x86_64 and x32 only', () => {
    expect(decide(prog, 'x86_64', 'socket', [16, 3, 9])).toBe('EAFNOSUPPORT');
    expect(decide(prog, 'x86_64', 'socket', [16, 2, 9])).toBe('EAFNOSUPPORT');
    expect(decide(prog, 'x86_64', 'socket', [16, 3, 0])).toBe('allow'); // NETLINK_ROUTE
    expect(decide(prog, 'x86_64', 'socket', [2, 1, 9])).toBe('allow'); // AF_INET
    expect(decide(prog, 'x86_64', 'socket', [16n | (1n << 32n), 3, 9])).toBe('allow'); // 64-bit compare
    expect(decide(prog, 'x32', 'socket', [16, 3, 9])).toBe('EAFNOSUPPORT');
    expect(decide(prog, 'x32', 'socket', [16n | (1n << 32n), 3, 9n | (1n << 32n)])).toBe('EAFNOSUPPORT'); // low words only
    // libseccomp cannot express it for i386 (socket calls may come multiplexed), so systemd has no rule there
    expect(decide(prog, 'i386', 'socket', [16, 3, 9])).toBe('allow');
    expect(decide(prog, 'i386', 'socketcall', [1])).toBe('allow');
  });
});

describe('capabilities decide the gated groups and calls (arg_caps_retain)', () => {
  const cases: Array<[(typeof CAPABILITIES)[number], string[]]> = [
    ['sys_time', ['clock_settime', 'adjtimex', 'settimeofday', 'clock_adjtime']],
    ['sys_module', ['init_module', 'finit_module', 'delete_module']],
    ['sys_rawio', ['iopl', 'ioperm']],
    ['ipc_lock', ['mlock', 'mlock2', 'munlockall']],
    ['sys_pacct', ['acct']],
    ['syslog', ['syslog']],
  ];
  for (const [c, calls] of cases)
    it(`CAP_${c.toUpperCase()}: ${calls.join(', ')}`, () => {
      const without = program();
      const withCap = program({ retainedCapabilities: DEFAULT_RETAINED_CAPABILITIES | cap(c) });
      for (const abi of ALL_ABIS)
        for (const call of calls) {
          if (syscallNumber(abi, call) === undefined) continue;
          expect(decide(without, abi, call), `${abi} ${call} without`).toBe('EPERM');
          expect(decide(withCap, abi, call), `${abi} ${call} with`).toBe('allow');
        }
    });

  it('the default set keeps ptrace, process_vm_*, reboot and vhangup; dropping the capability denies them (but @ipc)', () => {
    const def = program();
    for (const call of ['ptrace', 'process_vm_readv', 'reboot', 'vhangup']) expect(decide(def, 'x86_64', call)).toBe('allow');
    const dropped = program({ retainedCapabilities: DEFAULT_RETAINED_CAPABILITIES & ~(cap('sys_ptrace') | cap('sys_boot') | cap('sys_tty_config')) });
    for (const call of ['ptrace', 'reboot', 'vhangup']) expect(decide(dropped, 'i386', call)).toBe('EPERM');
    expect(decide(dropped, 'i386', 'process_vm_writev')).toBe('allow'); // also in @ipc, which is always allowed
  });

  it('capabilities without a group change nothing (CAP_NET_ADMIN with a private network)', () => {
    const a = program();
    const b = program({ retainedCapabilities: DEFAULT_RETAINED_CAPABILITIES | cap('net_admin') });
    expect(b).toEqual(a);
  });
});

describe('--system-call-filter= and SystemCallFilter=', () => {
  it('a list adds system calls and groups to what is allowed', () => {
    const prog = program({ allow: ['kexec_load', '@keyring', '@clock'] });
    for (const abi of ALL_ABIS) for (const call of ['kexec_load', 'add_key', 'keyctl', 'clock_settime']) expect(decide(prog, abi, call)).toBe('allow');
    expect(decide(prog, 'x86_64', 'swapon')).toBe('EPERM');
  });

  it('unknown names are ignored quietly; an unknown group is reported once per architecture', () => {
    const f = nspawnSeccompFilter({ retainedCapabilities: DEFAULT_RETAINED_CAPABILITIES, allow: ['nosuchcall', '@nosuchgroup', 'bpf'] });
    expect(f.warnings).toEqual([
      'Failed to add rule for system call @nosuchgroup on x86, ignoring: Invalid argument',
      'Failed to add rule for system call @nosuchgroup on x32, ignoring: Invalid argument',
      'Failed to add rule for system call @nosuchgroup on x86-64, ignoring: Invalid argument',
    ]);
    expect(decide(f.program, 'x86_64', 'bpf')).toBe('allow');
    expect(nspawnSeccompFilter({ retainedCapabilities: 0n, deny: ['@nosuchgroup'] }).warnings).toEqual([]);
  });

  it('~LIST takes names and groups out wherever they would be allowed: they get EPERM', () => {
    const prog = program({ deny: ['@clock', 'getpid', '@io-event'], retainedCapabilities: DEFAULT_RETAINED_CAPABILITIES | cap('sys_time') });
    for (const abi of ALL_ABIS) {
      expect(decide(prog, abi, 'clock_settime')).toBe('EPERM');
      expect(decide(prog, abi, 'getpid')).toBe('EPERM'); // a member of @default
      expect(decide(prog, abi, 'epoll_wait')).toBe('EPERM');
      expect(decide(prog, abi, 'getppid')).toBe('allow');
    }
  });

  it('deny wins over allow; ~@clock without CAP_SYS_TIME changes nothing', () => {
    const prog = program({ allow: ['kexec_load', 'swapon'], deny: ['kexec_load'] });
    expect(decide(prog, 'x86_64', 'kexec_load')).toBe('EPERM');
    expect(decide(prog, 'x86_64', 'swapon')).toBe('allow');
    expect(program({ deny: ['@clock'] })).toEqual(program());
  });

  it('a denied group name only takes out that group: its members stay allowed through other groups', () => {
    // close is in @basic-io and in @file-system
    const prog = program({ deny: ['@basic-io'] });
    expect(decide(prog, 'x86_64', 'close')).toBe('allow');
    expect(decide(prog, 'x86_64', 'dup3')).toBe('EPERM');
  });

  it('~socket denies socket() but audit sockets still get EAFNOSUPPORT (the audit filter is newer); i386 socketcall stays allowed', () => {
    const prog = program({ deny: ['socket'] });
    expect(decide(prog, 'x86_64', 'socket', [2, 1, 0])).toBe('EPERM');
    expect(decide(prog, 'x86_64', 'socket', [16, 3, 9])).toBe('EAFNOSUPPORT');
    expect(decide(prog, 'i386', 'socket', [16, 3, 9])).toBe('EPERM');
    expect(decide(prog, 'i386', 'socketcall', [1])).toBe('allow');
    expect(decide(program({ deny: ['socketcall'] }), 'i386', 'socketcall', [1])).toBe('EPERM');
  });

  it('~@default takes away execve and exit', () => {
    const prog = program({ deny: ['@default'] });
    for (const call of ['execve', 'exit_group', 'brk']) expect(decide(prog, 'x86_64', call)).toBe(call === 'brk' ? 'allow' : 'EPERM'); // brk is also listed alone
  });
});

describe('--suppress-sync=yes (seccomp_suppress_sync())', () => {
  const prog = program({ suppressSync: true });
  const O_SYNC = 0o4010000;
  const O_DSYNC = 0o10000;

  it('sync calls succeed without doing anything', () => {
    for (const abi of ALL_ABIS) {
      for (const call of ['sync', 'msync']) expect(decide(prog, abi, call), `${abi} ${call}`).toBe('errno 0');
      for (const call of ['fsync', 'fdatasync', 'syncfs', 'sync_file_range']) expect(decide(prog, abi, call, [3]), `${abi} ${call}`).toBe('errno 0');
    }
  });

  it('but not for a negative file descriptor (EBADF stays): 64-bit on x86_64, the low word elsewhere', () => {
    expect(decide(prog, 'x86_64', 'fsync', [-1n])).toBe('allow');
    expect(decide(prog, 'x86_64', 'fsync', [0xffffffffn])).toBe('allow'); // above INT_MAX
    expect(decide(prog, 'x86_64', 'fsync', [1n << 32n])).toBe('allow');
    expect(decide(prog, 'x86_64', 'fsync', [0x7fffffff])).toBe('errno 0');
    expect(decide(prog, 'x86_64', 'fsync', [0x80000000])).toBe('allow');
    expect(decide(prog, 'i386', 'fsync', [0xffffffff])).toBe('allow');
    expect(decide(prog, 'x32', 'fdatasync', [-1n])).toBe('allow');
    expect(decide(prog, 'x32', 'fdatasync', [1n << 32n])).toBe('errno 0'); // low word 0
  });

  it('open() and openat() with O_SYNC or O_DSYNC fail with EINVAL, openat2() with ENOSYS', () => {
    for (const abi of ALL_ABIS) {
      expect(decide(prog, abi, 'open', [0, O_SYNC])).toBe('EINVAL');
      expect(decide(prog, abi, 'open', [0, O_DSYNC | 0o2])).toBe('EINVAL');
      expect(decide(prog, abi, 'open', [0, 0o2 | 0o100])).toBe('allow');
      expect(decide(prog, abi, 'openat', [-100, 0, O_DSYNC])).toBe('EINVAL');
      expect(decide(prog, abi, 'openat', [-100, O_DSYNC, 0])).toBe('allow'); // the flags are the third argument
      expect(decide(prog, abi, 'openat2', [-100, 0, 0, 24])).toBe('ENOSYS');
    }
    expect(decide(prog, 'x86_64', 'open', [0, BigInt(O_DSYNC) | (1n << 40n)])).toBe('EINVAL'); // high word not looked at
  });

  it('the rest is as without it; with ~@sync the suppression still wins for valid descriptors', () => {
    expect(decide(prog, 'x86_64', 'kexec_load')).toBe('EPERM');
    expect(decide(prog, 'x86_64', 'read')).toBe('allow');
    const both = program({ suppressSync: true, deny: ['@sync'] });
    expect(decide(both, 'x86_64', 'fsync', [3])).toBe('errno 0');
    expect(decide(both, 'x86_64', 'fsync', [-1n])).toBe('EPERM');
  });
});

/** The decision the policy gives, evaluated directly (no BPF). */
function expected(p: AbiPolicy, nr: number, args: Array<number | bigint>): number {
  const d: Decision | undefined = p.decisions.get(nr);
  if (!d) return p.defaultAction;
  const arg = (i: number) => BigInt.asUintN(p.args64 ? 64 : 32, BigInt(args[i] ?? 0));
  for (const r of d.rules)
    if (
      r.checks.every((c) => {
        const v = arg(c.arg);
        const k = BigInt.asUintN(p.args64 ? 64 : 32, c.value);
        return c.op === 'eq' ? v === k : c.op === 'le' ? v <= k : (v & k) !== 0n;
      })
    )
      return r.action;
  return d.otherwise;
}

describe('the program matches the policy for every number', () => {
  const argSets: Array<Array<number | bigint>> = [[], [16, 3, 9], [-1n, 0o10000, 0o10000], [1n << 32n, 0, 0o4010000], [0x7fffffff, 0o4010000]];
  const options: Array<[string, Partial<NspawnSeccompOptions>]> = [
    ['default', {}],
    ['all capabilities, sync suppressed', { retainedCapabilities: (1n << 64n) - 1n, suppressSync: true }],
    ['no capabilities, a deny list', { retainedCapabilities: 0n, deny: ['@file-system', 'socket'] }],
  ];
  for (const [name, opts] of options)
    it(name, () => {
      const full = { retainedCapabilities: DEFAULT_RETAINED_CAPABILITIES, ...opts };
      const policy = nspawnSeccompPolicy(full);
      const prog = buildSeccompProgram(policy);
      for (const p of policy.abis) {
        const base = p.abi === 'x32' ? X32_SYSCALL_BIT : 0;
        for (let nr = base; nr < base + 1100; nr++)
          for (const args of argSets) expect(runFilter(prog, { nr, arch: ARCH[p.abi], args }), `${p.abi} ${nr} ${args.join(',')}`).toBe(expected(p, nr, args));
      }
    });
});

describe('argument checks', () => {
  it('eq, le and set on 64-bit and 32-bit ABIs, with and without high bits, give what the policy says', () => {
    const rule = (checks: ArgRule['checks'], e: number): ArgRule => ({ checks, action: (SECCOMP_RET.ERRNO | e) >>> 0 });
    const decisions = new Map<number, Decision>([
      [1, { rules: [rule([{ arg: 1, op: 'eq', value: 0x1_0000_0005n }], 11)], otherwise: SECCOMP_RET.ALLOW }],
      [2, { rules: [rule([{ arg: 0, op: 'le', value: 0x2_0000_0010n }], 12)], otherwise: SECCOMP_RET.ALLOW }],
      [3, { rules: [rule([{ arg: 0, op: 'set', value: 0x4_0000_0000n }], 13), rule([{ arg: 0, op: 'set', value: 0x8_0000_0100n }], 14)], otherwise: SECCOMP_RET.ALLOW }],
      [4, { rules: [rule([{ arg: 0, op: 'set', value: 0n }], 15)], otherwise: SECCOMP_RET.ALLOW }],
      [5, { rules: [rule([{ arg: 2, op: 'eq', value: 7n }, { arg: 0, op: 'le', value: 3n }, { arg: 1, op: 'set', value: 0x30n }], 16)], otherwise: (SECCOMP_RET.ERRNO | 1) >>> 0 }],
    ]);
    const values = [0n, 3n, 4n, 5n, 7n, 0x10n, 0x11n, 0x20n, 0x100n, 0x1_0000_0005n, 0x2_0000_0010n, 0x2_0000_0011n, 0x1_ffff_ffffn, 0x3_0000_0000n, 0x4_0000_0000n, 0x8_0000_0000n, -1n];
    for (const args64 of [true, false]) {
      const p: AbiPolicy = { abi: args64 ? 'x86_64' : 'i386', args64, decisions, defaultAction: (SECCOMP_RET.ERRNO | 38) >>> 0 };
      const prog = buildSeccompProgram({ abis: [p], warnings: [] });
      const arch = args64 ? AUDIT_ARCH.X86_64 : AUDIT_ARCH.I386;
      for (const nr of [0, 1, 2, 3, 4, 5, 6])
        for (const a of values)
          for (const b of [0n, 0x10n, 0x1_0000_0005n])
            for (const c of [7n, 0x1_0000_0007n]) {
              const args = [a, b, c];
              expect(runFilter(prog, { nr, arch, args }), `${p.abi} ${nr} ${args.join(',')}`).toBe(expected(p, nr, args));
            }
    }
  });
});

describe('far jumps', () => {
  it('a policy with thousands of ranges still gives every number its decision (jumps go through ja)', () => {
    const decisions = new Map<number, Decision>();
    // alternating decisions on 0..1799: 1800 ranges, subtrees far larger than a conditional jump reaches
    for (let nr = 0; nr < 1800; nr++) decisions.set(nr, { rules: [], otherwise: nr % 2 ? SECCOMP_RET.ALLOW : (SECCOMP_RET.ERRNO | (nr % 100)) >>> 0 });
    const p: AbiPolicy = { abi: 'i386', args64: false, decisions, defaultAction: (SECCOMP_RET.ERRNO | 38) >>> 0 };
    const prog = buildSeccompProgram({ abis: [p], warnings: [] });
    expect(prog.length).toBeGreaterThan(3000);
    expect(prog.length).toBeLessThanOrEqual(BPF_MAXINSNS);
    for (let nr = 0; nr < 1900; nr++)
      expect(runFilter(prog, { nr, arch: AUDIT_ARCH.I386 })).toBe(nr >= 1800 ? p.defaultAction : decisions.get(nr)!.otherwise);
    expect(runFilter(prog, { nr: 0, arch: AUDIT_ARCH.X86_64 })).toBe(SECCOMP_RET.ALLOW); // ABIs the policy leaves out pass
  });

  it('a policy that cannot fit is refused', () => {
    const decisions = new Map<number, Decision>();
    for (let nr = 0; nr < 5000; nr++) decisions.set(nr, { rules: [], otherwise: nr % 2 ? SECCOMP_RET.ALLOW : SECCOMP_RET.ERRNO });
    expect(() => buildSeccompProgram({ abis: [{ abi: 'i386', args64: false, decisions, defaultAction: SECCOMP_RET.ERRNO }], warnings: [] })).toThrow(/too long/);
  });
});

describe('in the helper plan', () => {
  it('reaches the helper as struct sock_filter[], with the warnings', () => {
    const f = nspawnSeccompFilter({ retainedCapabilities: DEFAULT_RETAINED_CAPABILITIES, allow: ['@nope'] });
    const plan = basePlan({ seccomp: f.bytes, seccompWarnings: f.warnings });
    const got = decoded(encodePlan(plan)) as { seccomp: string; seccompWarnings: string[] };
    expect(decodeFilter(Buffer.from(got.seccomp, 'hex'))).toEqual(f.program);
    expect(got.seccompWarnings).toEqual(f.warnings);
  });
});
