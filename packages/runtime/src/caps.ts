/**
 * Capabilities as systemd-nspawn 252 gives them to the payload: which ones a container retains
 * (arg_caps_retain and its updates in parse_argv() and merge_settings()), the AmbientCapability= checks of
 * verify_arguments(), and the five sets drop_capabilities() computes for the payload's UID, masked against the
 * bounding set the container starts with (capability_quintet_mangle()).
 *
 * Everything here is pure: bit masks in, bit masks out. The native helper only applies the numbers
 * (PR_CAPBSET_DROP, capset(), PR_CAP_AMBIENT_RAISE; see native/caps.c).
 */
import { readFileSync } from 'node:fs';
import { CAPABILITIES, type Settings, type StartMode } from '@nspawn/settings';

/** Every bit: what systemd's `all` (UINT64_MAX) means. */
export const ALL_CAPABILITIES = (1n << 64n) - 1n;

/** The number of a capability by its name without the CAP_ prefix ("sys_admin"); throws on a typo here. */
function capNumber(name: (typeof CAPABILITIES)[number]): number {
  return CAPABILITIES.indexOf(name);
}
const bit = (name: (typeof CAPABILITIES)[number]): bigint => 1n << BigInt(capNumber(name));

export const CAP_NET_ADMIN = bit('net_admin');
export const CAP_NET_BIND_SERVICE = bit('net_bind_service');
export const CAP_SETPCAP = bit('setpcap');

/** arg_caps_retain in nspawn.c: what a container keeps by default. */
export const DEFAULT_RETAINED_CAPABILITIES: bigint = (
  [
    'audit_control',
    'audit_write',
    'chown',
    'dac_override',
    'dac_read_search',
    'fowner',
    'fsetid',
    'ipc_owner',
    'kill',
    'lease',
    'linux_immutable',
    'mknod',
    'net_bind_service',
    'net_broadcast',
    'net_raw',
    'setfcap',
    'setgid',
    'setpcap',
    'setuid',
    'sys_admin',
    'sys_boot',
    'sys_chroot',
    'sys_nice',
    'sys_ptrace',
    'sys_resource',
    'sys_tty_config',
  ] as const
).reduce((m, n) => m | bit(n), 0n);

/**
 * A capability list of the settings model ("CAP_SYS_ADMIN", "cap_chown", a number, "CAP_40", or 'all') as a
 * mask, like parse_capability_spec(): 'all' is every bit. Names the settings parser let through but that mean
 * nothing here are skipped.
 */
export function capabilityMaskOf(list: readonly string[] | undefined): bigint {
  let m = 0n;
  for (const c of list ?? []) {
    if (c.toLowerCase() === 'all') return ALL_CAPABILITIES;
    const num = /^(?:cap_)?([0-9]+)$/i.exec(c);
    if (num) {
      const n = Number(num[1]);
      if (n <= 63) m |= 1n << BigInt(n);
      continue;
    }
    const i = (CAPABILITIES as readonly string[]).indexOf(c.toLowerCase().replace(/^cap_/, ''));
    if (i >= 0) m |= 1n << BigInt(i);
  }
  return m;
}

/** A mask as names in number order ("CAP_CHOWN", ...; a number for a capability without a name). */
export function capabilityNames(mask: bigint): string[] {
  const out: string[] = [];
  for (let i = 0; i < 64; i++)
    if (mask & (1n << BigInt(i))) out.push(CAPABILITIES[i] !== undefined ? `CAP_${CAPABILITIES[i]!.toUpperCase()}` : String(i));
  return out;
}

/** The capability bits 0..lastCap. */
export function capabilitiesUpTo(lastCap: number): bigint {
  return (1n << BigInt(lastCap + 1)) - 1n;
}

/** What a container's capabilities are made of, before they meet the UID and the bounding set. */
export interface ContainerCapabilities {
  /** arg_caps_retain: the bounding set (and, for root, the other sets) */
  retain: bigint;
  /** arg_caps_ambient */
  ambient: bigint;
}

/** The user namespace of a settings object as parse_argv() sees it: none, or the UID shift (undefined: not chosen yet). */
function usernsShift(s: Settings): { shift: number | undefined } | undefined {
  const u = s.privateUsers;
  if (!u || u.mode === 'no') return undefined;
  return { shift: u.mode === 'fixed' ? u.shift : undefined };
}

/**
 * arg_caps_retain and arg_caps_ambient after parse_argv() and merge_settings().
 *
 * parse_argv(): the default set, plus --capability=, plus CAP_NET_ADMIN when the command line asks for a private
 * network; then CAP_NET_BIND_SERVICE goes when the command line asks for a user namespace with a shift other than
 * 0 (or one still to be picked) but not for a private network (binding a privileged port of the host's network
 * namespace is not possible from a user namespace; 252 as Debian ships it has this from v253); then
 * --drop-capability=. merge_settings() (already done by @nspawn/settings into MERGED's lists when the command
 * line left the capability settings to the .nspawn file): the file's Capability= (with CAP_NET_ADMIN for a private
 * network it configures) is added after that, its DropCapability= removed.
 *
 * MERGED is the merged settings; COMMANDLINE what the command line alone said (the network and user namespace
 * options are read from it, as parse_argv() does); without a settings file both are the same.
 */
export function containerCapabilities(merged: Settings, commandLine: Settings = merged): ContainerCapabilities {
  let retain = DEFAULT_RETAINED_CAPABILITIES;
  const cmdPlus = capabilityMaskOf(commandLine.capability);
  const plus = capabilityMaskOf(merged.capability);
  const minus = capabilityMaskOf(merged.dropCapability);
  // the command line's additions come before the CAP_NET_BIND_SERVICE rule, a file's after it
  retain |= cmdPlus & plus;
  if (commandLine.privateNetwork === true) retain |= CAP_NET_ADMIN;
  const userns = usernsShift(commandLine);
  if (commandLine.privateNetwork !== true && userns && (userns.shift === undefined || userns.shift > 0)) retain &= ~CAP_NET_BIND_SERVICE;
  // merge_settings(): a file that configures a network without a private one takes CAP_NET_ADMIN away (it can
  // only override the command line's --private-network with --settings=override)
  if (commandLine.privateNetwork === true && merged.privateNetwork !== true) retain &= ~CAP_NET_ADMIN;
  retain |= plus & ~cmdPlus;
  retain &= ~minus;
  return { retain, ambient: capabilityMaskOf(merged.ambientCapability) };
}

/** The capabilities a container gets without any capability setting (what prepare would compute). */
export function defaultContainerCapabilities(opts: { privateNetwork: boolean; usernsShift?: number }): ContainerCapabilities {
  const s: Settings = { privateNetwork: opts.privateNetwork };
  if (opts.usernsShift !== undefined) s.privateUsers = { mode: 'fixed', shift: opts.usernsShift };
  return containerCapabilities(s);
}

/** verify_arguments() on AmbientCapability=: systemd's error text, or undefined when it is fine. */
export function verifyAmbientCapabilities(c: ContainerCapabilities, startMode: StartMode): string | undefined {
  if (c.ambient === 0n) return undefined;
  if (c.ambient === ALL_CAPABILITIES) return 'AmbientCapability= does not support the value all.';
  if ((c.ambient & c.retain) !== c.ambient) return 'AmbientCapability= setting is not fully covered by Capability= setting.';
  if (startMode === 'boot') return 'AmbientCapability= setting is not useful for boot mode.';
  return undefined;
}

/** The five capability sets of a process (CapabilityQuintet in systemd). */
export interface CapabilityQuintet {
  bounding: bigint;
  effective: bigint;
  inheritable: bigint;
  permitted: bigint;
  ambient: bigint;
}

/** systemd-nspawn's warning when the bounding set lacks some of what the container should keep. */
export const CAPABILITIES_NOT_IN_BOUNDING_SET =
  'Some capabilities will not be set because they are not in the current bounding set.';

/**
 * drop_capabilities() for the payload's UID (after the switch to --user=): root keeps the retained set in all
 * of bounding, effective, permitted and inheritable; anyone else keeps only the bounding set, and the ambient
 * capabilities in inheritable, permitted (and, through exec, effective). Then capability_quintet_mangle(): what
 * the container's own bounding set (BOUNDING, bits up to LASTCAP) lacks is removed from every set and reported
 * in `dropped` (systemd warns about it unless --quiet). Bits above LASTCAP are not capabilities of this kernel
 * and are left out.
 */
export function capabilityQuintet(
  c: ContainerCapabilities,
  uid: number,
  bounding: bigint,
  lastCap: number,
): { quintet: CapabilityQuintet; dropped: bigint } {
  const known = capabilitiesUpTo(lastCap);
  const root = uid === 0;
  const q: CapabilityQuintet = {
    bounding: c.retain,
    effective: root ? c.retain : 0n,
    inheritable: root ? c.retain : c.ambient,
    permitted: root ? c.retain : c.ambient,
    ambient: c.ambient,
  };
  const combined = q.bounding | q.effective | q.inheritable | q.permitted | q.ambient;
  const dropped = combined & known & ~bounding;
  for (const k of Object.keys(q) as (keyof CapabilityQuintet)[]) q[k] &= known & ~dropped;
  return { quintet: q, dropped };
}

/** The capability facts of the host this process runs on: its bounding set and the kernel's last capability. */
export interface HostCapabilities {
  /** CapBnd of this process: a container without a user namespace starts with it */
  bounding: bigint;
  /** /proc/sys/kernel/cap_last_cap */
  lastCap: number;
}

/** Reads HostCapabilities off /proc; undefined when /proc does not say. */
export function readHostCapabilities(status?: string, lastCapText?: string): HostCapabilities | undefined {
  try {
    const text = status ?? readFileSync('/proc/self/status', 'utf8');
    const m = /^CapBnd:\s*([0-9a-fA-F]+)$/m.exec(text);
    if (!m) return undefined;
    const bounding = BigInt(`0x${m[1]}`);
    let lastCap: number;
    try {
      lastCap = Number((lastCapText ?? readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8')).trim());
    } catch {
      lastCap = NaN;
    }
    // without cap_last_cap (very old kernels): the highest bit of the bounding set of a full root process
    if (!Number.isInteger(lastCap) || lastCap < 0 || lastCap > 63) lastCap = bounding === 0n ? 0 : bounding.toString(2).length - 1;
    return { bounding, lastCap };
  } catch {
    return undefined;
  }
}

/** A quintet as the helper plan carries it: five 16-digit hex masks. */
export function formatCapabilityMask(mask: bigint): string {
  return mask.toString(16).padStart(16, '0');
}
