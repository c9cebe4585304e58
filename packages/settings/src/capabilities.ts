/** Capabilities by name and number (cap-list.c, capability-util.c), as systemd v259 reads them. */
import { UINT64_MAX, safeAtoi } from './c-util.js';

/** Capability names as systemd's capability_from_name() accepts them (after "cap_"), in capability number order. */
export const CAPABILITIES = [
  'chown',
  'dac_override',
  'dac_read_search',
  'fowner',
  'fsetid',
  'kill',
  'setgid',
  'setuid',
  'setpcap',
  'linux_immutable',
  'net_bind_service',
  'net_broadcast',
  'net_admin',
  'net_raw',
  'ipc_lock',
  'ipc_owner',
  'sys_module',
  'sys_rawio',
  'sys_chroot',
  'sys_ptrace',
  'sys_pacct',
  'sys_admin',
  'sys_boot',
  'sys_nice',
  'sys_resource',
  'sys_time',
  'sys_tty_config',
  'mknod',
  'lease',
  'audit_write',
  'audit_control',
  'setfcap',
  'mac_override',
  'mac_admin',
  'syslog',
  'wake_alarm',
  'block_suspend',
  'audit_read',
  'perfmon',
  'bpf',
  'checkpoint_restore',
] as const;

/** CAP_LIMIT of systemd v259: capability numbers above it are refused. */
export const CAP_LIMIT = 62;

/** capability_from_name(): "CAP_SYS_ADMIN" in any case, or a number 0..62. Returns the number or -1. */
export function capabilityFromName(name: string): number {
  const n = safeAtoi(name);
  if (n.ok) return n.value >= 0 && n.value <= CAP_LIMIT ? n.value : -1;
  if (!/^cap_[a-z_]+$/i.test(name)) return -1; // gperf --ignore-case: ASCII only
  const lower = name.toLowerCase();
  return (CAPABILITIES as readonly string[]).indexOf(lower.slice(4));
}

/** The canonical name of capability number n: "CAP_CHOWN", or the number for capabilities without a name. */
export function capabilityName(n: number): string {
  const name = CAPABILITIES[n];
  return name !== undefined ? `CAP_${name.toUpperCase()}` : String(n);
}

export const ALL_CAPS = UINT64_MAX;

/** A capability list (as in Settings) as a bit mask; 'all' is every bit. Unknown names are skipped. */
export function capabilityMask(list: readonly string[] | undefined): bigint {
  let m = 0n;
  for (const c of list ?? []) {
    if (c === 'all') return ALL_CAPS;
    const n = capabilityFromName(c);
    if (n >= 0) m |= 1n << BigInt(n);
    else if (/^(?:[0-9]|[1-5][0-9]|6[0-3])$/.test(c)) m |= 1n << BigInt(c);
  }
  return m;
}

/** The canonical list for a mask: ['all'], or names in capability number order; undefined for an empty mask. */
export function capabilityList(mask: bigint): string[] | undefined {
  if (mask === 0n) return undefined;
  if (mask === ALL_CAPS) return ['all'];
  const out: string[] = [];
  for (let i = 0; i < 64; i++) if (mask & (1n << BigInt(i))) out.push(capabilityName(i));
  return out;
}
