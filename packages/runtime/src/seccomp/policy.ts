/**
 * What systemd-nspawn 252's seccomp filters decide, per x86 ABI, as data: setup_seccomp() and
 * add_syscall_filters() in src/nspawn/nspawn-seccomp.c (the allow list, --system-call-filter=, EPERM for the
 * rest of @known, ENOSYS for anything else, EAFNOSUPPORT for audit sockets) and seccomp_suppress_sync() in
 * src/shared/seccomp-util.c (SuppressSync=).
 *
 * systemd installs one libseccomp filter per architecture and concern (x86, x32 and x86-64 each get the allow
 * list, then the audit rule, then the sync suppression), each letting other architectures through. The kernel
 * runs all of them and keeps the strongest action; they are all errno or allow here, so the most recently
 * installed filter that returns an errno decides. This module computes that combined decision for each
 * (ABI, system call number); filter.ts turns it into one BPF program.
 */
import { CAPABILITIES } from '@nspawn/settings';
import { SECCOMP_RET } from './bpf.js';
import { syscallGroup } from './groups.js';
import { SYSCALL_TABLES, type X86Abi } from './syscalls-x86.js';

const EPERM = 1;
const EINVAL = 22;
const ENOSYS = 38;
const EAFNOSUPPORT = 97;
const AF_NETLINK = 16;
const NETLINK_AUDIT = 9;
/** O_DSYNC; O_SYNC is __O_SYNC|O_DSYNC, so "the O_DSYNC bit is set" is what blocking both comes to */
const O_DSYNC = 0o10000;

export const seccompErrno = (errno: number): number => (SECCOMP_RET.ERRNO | (errno & SECCOMP_RET.DATA)) >>> 0;
export const SECCOMP_ALLOW: number = SECCOMP_RET.ALLOW;

/** The x86 ABIs in the order systemd handles them (SECCOMP_FOREACH_LOCAL_ARCH on x86-64), with its names. */
export const X86_ABIS: ReadonlyArray<{ abi: X86Abi; name: string }> = [
  { abi: 'i386', name: 'x86' },
  { abi: 'x32', name: 'x32' },
  { abi: 'x86_64', name: 'x86-64' },
];

function capBit(name: (typeof CAPABILITIES)[number]): bigint {
  const n = CAPABILITIES.indexOf(name);
  if (n < 0) throw new Error(`unknown capability ${name}`);
  return 1n << BigInt(n);
}

/**
 * add_syscall_filters()'s allow list: groups and single system calls, some only when the container keeps a
 * capability (a mask; 0n: always). As in Debian 12's 252.39, whose stable updates add arm_fadvise64_64 and
 * sched_rr_get_interval_time64 to v252's list. Left out on purpose by systemd: @cpu-emulation, @keyring (the keyring is
 * not namespaced), @obsolete, @pkey, @swap, bpf, fanotify_init, fanotify_mark, kexec_file_load, kexec_load,
 * lookup_dcookie, nfsservctl, open_by_handle_at, perf_event_open, quotactl.
 */
export const NSPAWN_ALLOW_LIST: ReadonlyArray<readonly [capability: bigint, name: string]> = [
  ...[
    '@aio',
    '@basic-io',
    '@chown',
    '@default',
    '@file-system',
    '@io-event',
    '@ipc',
    '@mount',
    '@network-io',
    '@process',
    '@resources',
    '@setuid',
    '@signal',
    '@sync',
    '@timer',
  ].map((n) => [0n, n] as const),
  [capBit('sys_time'), '@clock'],
  [capBit('sys_module'), '@module'],
  [capBit('sys_rawio'), '@raw-io'],
  [capBit('ipc_lock'), '@memlock'],
  ...[
    'arm_fadvise64_64',
    'brk',
    'capget',
    'capset',
    'copy_file_range',
    'fadvise64',
    'fadvise64_64',
    'flock',
    'get_mempolicy',
    'getcpu',
    'getpriority',
    'getrandom',
    'ioctl',
    'ioprio_get',
    'kcmp',
    'madvise',
    'mincore',
    'mprotect',
    'mremap',
    'name_to_handle_at',
    'oldolduname',
    'olduname',
    'personality',
    'readahead',
    'readdir',
    'remap_file_pages',
    'sched_get_priority_max',
    'sched_get_priority_min',
    'sched_getaffinity',
    'sched_getattr',
    'sched_getparam',
    'sched_getscheduler',
    'sched_rr_get_interval',
    'sched_rr_get_interval_time64',
    'sched_yield',
    'seccomp',
    'sendfile',
    'sendfile64',
    'setdomainname',
    'setfsgid',
    'setfsgid32',
    'setfsuid',
    'setfsuid32',
    'sethostname',
    'setpgid',
    'setsid',
    'splice',
    'sysinfo',
    'tee',
    'umask',
    'uname',
    'userfaultfd',
    'vmsplice',
  ].map((n) => [0n, n] as const),
  [capBit('sys_pacct'), 'acct'],
  [capBit('sys_ptrace'), 'process_vm_readv'],
  [capBit('sys_ptrace'), 'process_vm_writev'],
  [capBit('sys_ptrace'), 'ptrace'],
  [capBit('sys_boot'), 'reboot'],
  [capBit('syslog'), 'syslog'],
  [capBit('sys_tty_config'), 'vhangup'],
];

/**
 * One comparison of a system call argument, unsigned as libseccomp's (SCMP_CMP_*): equal to VALUE, any bit of VALUE
 * set (systemd's flag tests), at most VALUE; and for OCI profiles not equal, less than, at least, greater than, and
 * `masked_eq` (ARG & MASK equals VALUE). On a 64-bit ABI the whole 64-bit argument is compared, elsewhere its low
 * 32 bits with the low 32 bits of VALUE (and MASK).
 */
export interface ArgCheck {
  arg: number;
  op: 'eq' | 'set' | 'le' | 'ne' | 'lt' | 'ge' | 'gt' | 'masked_eq';
  value: bigint;
  /** masked_eq only */
  mask?: bigint;
}

/** An errno (or other action) taken when every check holds. */
export interface ArgRule {
  checks: ArgCheck[];
  action: number;
}

/** The combined decision for one system call number: the first rule that holds, else OTHERWISE. */
export interface Decision {
  rules: readonly ArgRule[];
  otherwise: number;
}

export interface AbiPolicy {
  abi: X86Abi;
  /** arguments are compared as 64-bit values (x86_64) or as their low 32 bits (x32, i386), as libseccomp does */
  args64: boolean;
  /** decisions for the numbers the filters know, in ascending order; any other number gets DEFAULT */
  decisions: Map<number, Decision>;
  defaultAction: number;
  /** numbers above NR without a decision get ACTION instead of the default (runc's -ENOSYS stub for new calls) */
  above?: { nr: number; action: number };
}

export interface SeccompPolicy {
  abis: AbiPolicy[];
  /**
   * The action for a call of an architecture (or x86 ABI) without a policy here: systemd's filters let them through
   * (the default, SECCOMP_RET_ALLOW); libseccomp's filters for an OCI profile take their bad-architecture action.
   */
  otherArch?: number;
  /** what systemd-nspawn logs while building its filters ("Failed to add rule for system call @foo on x86, ...") */
  warnings: string[];
}

export interface NspawnSeccompOptions {
  /** arg_caps_retain: the capabilities the container keeps (bit N is capability N) */
  retainedCapabilities: bigint;
  /** --system-call-filter=LIST and SystemCallFilter=LIST: names and @groups allowed on top of the defaults */
  allow?: readonly string[];
  /** --system-call-filter=~LIST: names and @groups excluded wherever they appear in what is allowed */
  deny?: readonly string[];
  /** --suppress-sync=yes, SuppressSync=yes */
  suppressSync?: boolean;
}

/**
 * seccomp_add_syscall_filter_item() without the filter: the system call names an item stands for. A name in
 * EXCLUDE is skipped wherever it appears (a group's name skips the whole group, a call's name that call, also
 * inside other groups). Returns undefined for an unknown group (systemd's EINVAL).
 */
export function expandSyscallItem(name: string, exclude: ReadonlySet<string>, out: string[] = []): string[] | undefined {
  if (exclude.has(name)) return out;
  if (name.startsWith('@')) {
    const members = syscallGroup(name);
    if (!members) return undefined;
    for (const m of members) if (!expandSyscallItem(m, exclude, out)) return undefined;
    return out;
  }
  out.push(name);
  return out;
}

/** The number of NAME on ABI, or undefined where the ABI does not have it (libseccomp's EDOM: skipped). */
export function syscallNumber(abi: X86Abi, name: string): number | undefined {
  let m = NUMBERS.get(abi);
  if (!m) {
    const t = SYSCALL_TABLES[abi];
    m = new Map();
    for (let i = 0; i < t.length; i += 2) m.set(t[i] as string, t[i + 1] as number);
    NUMBERS.set(abi, m);
  }
  return m.get(name);
}
/** name → number per ABI, made on first use (an OCI profile looks up hundreds of names) */
const NUMBERS = new Map<X86Abi, Map<string, number>>();

/** socketcall(2)'s SYS_* and ipc(2)'s call numbers (linux/net.h, linux/ipc.h) */
const SOCKETCALLS = ['socket', 'bind', 'connect', 'listen', 'accept', 'getsockname', 'getpeername', 'socketpair', 'send', 'recv',
  'sendto', 'recvfrom', 'shutdown', 'setsockopt', 'getsockopt', 'sendmsg', 'recvmsg', 'accept4', 'recvmmsg', 'sendmmsg'];
const IPCCALLS: Record<string, number> = { semop: 1, semget: 2, semctl: 3, semtimedop: 4, msgsnd: 11, msgrcv: 12, msgget: 13, msgctl: 14, shmat: 21, shmdt: 22, shmget: 23, shmctl: 24 };

/**
 * The multiplexed form of NAME on x86 (i386): the socketcall()/ipc() number and the call's number in it, where
 * libseccomp adds a rule for a socket or SysV IPC call on x86 (with only that first argument compared).
 */
export function multiplexedCall(name: string): { nr: number; call: number } | undefined {
  const s = SOCKETCALLS.indexOf(name);
  if (s >= 0) return { nr: syscallNumber('i386', 'socketcall')!, call: s + 1 };
  const i = IPCCALLS[name];
  return i === undefined ? undefined : { nr: syscallNumber('i386', 'ipc')!, call: i };
}

/** The name of NR on ABI, or undefined for a number the ABI does not have. */
export function syscallName(abi: X86Abi, nr: number): string | undefined {
  const t = SYSCALL_TABLES[abi];
  const i = t.indexOf(nr);
  return i >= 1 && i % 2 === 1 ? (t[i - 1] as string) : undefined;
}

const PLAIN = new Map<number, Decision>();
/** A decision without rules (shared: there are only a few different ones). */
function plainDecision(action: number): Decision {
  let d = PLAIN.get(action);
  if (!d) PLAIN.set(action, (d = Object.freeze({ rules: Object.freeze([]), otherwise: action })));
  return d;
}

/** The combined decisions of systemd-nspawn's filters, per x86 ABI. */
export function nspawnSeccompPolicy(opts: NspawnSeccompOptions): SeccompPolicy {
  const deny = new Set(opts.deny ?? []);
  const warnings: string[] = [];

  // the allow list, then the user's list, each with the deny list excluded; `added` is every name they reached
  const added: string[] = [];
  for (const [cap, item] of NSPAWN_ALLOW_LIST) {
    if (cap !== 0n && (opts.retainedCapabilities & cap) === 0n) continue;
    if (!expandSyscallItem(item, deny, added)) throw new Error(`unknown group ${item} in the allow list`);
  }
  const failedUserItems: string[] = [];
  for (const item of opts.allow ?? []) if (!expandSyscallItem(item, deny, added)) failedUserItems.push(item);
  // @known with what was allowed excluded: EPERM. By name: each ABI then looks its numbers up.
  const actionOf = new Map<string, number>();
  for (const n of added) actionOf.set(n, SECCOMP_ALLOW);
  const EPERM_ACTION = seccompErrno(EPERM);
  for (const n of expandSyscallItem('@known', new Set(added))!) if (!actionOf.has(n)) actionOf.set(n, EPERM_ACTION);

  const abis: AbiPolicy[] = [];
  const defaultAction = seccompErrno(ENOSYS);
  for (const { abi, name: archName } of X86_ABIS) {
    for (const item of failedUserItems) warnings.push(`Failed to add rule for system call ${item} on ${archName}, ignoring: Invalid argument`);
    // the filters installed after the allow list's, the most recent first: rules, and an action when no rule
    // holds (allow: the older filters decide)
    const layers: Array<Map<number, Decision>> = [];
    if (opts.suppressSync) layers.push(syncLayer(abi));
    if (abi !== 'i386') layers.push(auditLayer(abi));

    // the table is in number order, and a number has one name
    const table = SYSCALL_TABLES[abi];
    const decisions = new Map<number, Decision>();
    for (let i = 0; i < table.length; i += 2) {
      const name = table[i] as string;
      const nr = table[i + 1] as number;
      let rules: readonly ArgRule[] = [];
      let otherwise: number | undefined;
      for (const l of layers) {
        const d = l.get(nr);
        if (!d) continue;
        rules = rules.length === 0 ? d.rules : [...rules, ...d.rules];
        if (d.otherwise !== SECCOMP_ALLOW) {
          otherwise = d.otherwise;
          break;
        }
      }
      otherwise ??= actionOf.get(name);
      if (otherwise === undefined && rules.length === 0) continue; // not known to systemd: the default
      decisions.set(nr, rules.length === 0 ? plainDecision(otherwise!) : { rules, otherwise: otherwise ?? defaultAction });
    }
    abis.push({ abi, args64: abi === 'x86_64', decisions, defaultAction });
  }
  return { abis, warnings };
}

/** The NETLINK_AUDIT filter: socket(AF_NETLINK, *, NETLINK_AUDIT) fails with EAFNOSUPPORT (libseccomp cannot
 * express it for i386, whose socket calls may be multiplexed, so systemd has none there). */
function auditLayer(abi: X86Abi): Map<number, Decision> {
  const m = new Map<number, Decision>();
  const nr = syscallNumber(abi, 'socket');
  if (nr !== undefined)
    m.set(nr, {
      rules: [
        {
          checks: [
            { arg: 0, op: 'eq', value: BigInt(AF_NETLINK) },
            { arg: 2, op: 'eq', value: BigInt(NETLINK_AUDIT) },
          ],
          action: seccompErrno(EAFNOSUPPORT),
        },
      ],
      otherwise: SECCOMP_ALLOW,
    });
  return m;
}

/** The @sync calls whose first argument is a file descriptor: suppressed only for one that is not negative. */
const SYNC_FD_CALLS = new Set(['fdatasync', 'fsync', 'sync_file_range', 'sync_file_range2', 'syncfs']);
const INT_MAX = 0x7fffffffn;

/**
 * seccomp_suppress_sync() (with the stable branch's fix that 252.39 has): @sync calls succeed without doing
 * anything (those taking a file descriptor only when it is not negative, as a 64-bit value on x86_64, so a bad
 * descriptor still gets EBADF), open()/openat() with O_SYNC or O_DSYNC fail with EINVAL (callers retry
 * without), openat2() with ENOSYS (its flags cannot be looked at).
 */
function syncLayer(abi: X86Abi): Map<number, Decision> {
  const m = new Map<number, Decision>();
  for (const n of expandSyscallItem('@sync', new Set())!) {
    const nr = syscallNumber(abi, n);
    if (nr === undefined) continue;
    if (SYNC_FD_CALLS.has(n))
      m.set(nr, { rules: [{ checks: [{ arg: 0, op: 'le', value: INT_MAX }], action: seccompErrno(0) }], otherwise: SECCOMP_ALLOW });
    else m.set(nr, { rules: [], otherwise: seccompErrno(0) });
  }
  for (const [n, arg] of [
    ['open', 1],
    ['openat', 2],
  ] as const) {
    const nr = syscallNumber(abi, n);
    if (nr !== undefined)
      m.set(nr, { rules: [{ checks: [{ arg, op: 'set', value: BigInt(O_DSYNC) }], action: seccompErrno(EINVAL) }], otherwise: SECCOMP_ALLOW });
  }
  const openat2 = syscallNumber(abi, 'openat2');
  if (openat2 !== undefined) m.set(openat2, { rules: [], otherwise: seccompErrno(ENOSYS) });
  return m;
}
