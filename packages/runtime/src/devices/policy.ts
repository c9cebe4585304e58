/**
 * The container's device access policy: what systemd-nspawn 252 asks for when it registers its scope
 * (append_machine_properties() in nspawn-register.c): DevicePolicy=closed, DeviceAllow=/dev/net/tun rwm and
 * char-pts rw, and each bind-mounted device node with r (--bind-ro) or rw (--bind). "closed" is systemd's static
 * list (bpf_devices_allow_list_static() in src/core/bpf-devices.c): the API pseudo devices and the inaccessible
 * nodes with rwm, and the pty slaves with rw. Nothing else, and "m" (mknod) only where the list says so.
 *
 * The same rules are expressed twice: as devices.allow lines for a cgroup v1 devices controller (after a "deny a"),
 * and as a BPF_PROG_TYPE_CGROUP_DEVICE program for the unified hierarchy.
 */
import { lstatSync } from 'node:fs';
import { procDevicesText } from '../host.js';
import { join } from 'node:path';
import type { CustomMount } from '@nspawn/settings';
import { alu32K, DEV_CTX, DEVCG_ACC, DEVCG_DEV, EBPF, encodeProgram, exit, jmpK, ldxW, mov64K, type BpfInsn } from './ebpf.js';

export interface DeviceRule {
  type: 'c' | 'b';
  /** undefined: every major of the type */
  major?: number;
  /** undefined: every minor of the major */
  minor?: number;
  /** a non-empty subset of "rwm", in that order */
  access: string;
}

/**
 * DevicePolicy=closed's nodes, with the numbers Linux gives them (Documentation/admin-guide/devices.txt; systemd
 * stat()s the paths, which on any Linux host gives these), and systemd's inaccessible nodes (0:0), which
 * device_path_parse_major_minor() knows without a stat.
 */
export const CLOSED_POLICY_NODES: ReadonlyArray<{ path: string; rule: DeviceRule }> = [
  { path: '/dev/null', rule: { type: 'c', major: 1, minor: 3, access: 'rwm' } },
  { path: '/dev/zero', rule: { type: 'c', major: 1, minor: 5, access: 'rwm' } },
  { path: '/dev/full', rule: { type: 'c', major: 1, minor: 7, access: 'rwm' } },
  { path: '/dev/random', rule: { type: 'c', major: 1, minor: 8, access: 'rwm' } },
  { path: '/dev/urandom', rule: { type: 'c', major: 1, minor: 9, access: 'rwm' } },
  { path: '/dev/tty', rule: { type: 'c', major: 5, minor: 0, access: 'rwm' } },
  { path: '/dev/ptmx', rule: { type: 'c', major: 5, minor: 2, access: 'rwm' } },
  { path: '/run/systemd/inaccessible/chr', rule: { type: 'c', major: 0, minor: 0, access: 'rwm' } },
  { path: '/run/systemd/inaccessible/blk', rule: { type: 'b', major: 0, minor: 0, access: 'rwm' } },
];
/** /dev/net/tun (misc device 200): DeviceAllow=/dev/net/tun rwm */
export const TUN_RULE: DeviceRule = { type: 'c', major: 10, minor: 200, access: 'rwm' };
/** UNIX98_PTY_SLAVE_MAJOR, when /proc/devices cannot be read */
export const DEFAULT_PTS_MAJOR = 136;

/** What the policy needs from the host. */
export interface DeviceFacts {
  /** lstat() of a bind source: its node type and number when it is a device node, 'other' when not, undefined when missing */
  node(path: string): { type: 'c' | 'b'; major: number; minor: number } | 'other' | undefined;
  /** the character majors /proc/devices names "pts" (systemd's char-pts) */
  ptsMajors(): number[];
}

/** Majors of TYPE ('c': "Character devices:", 'b': "Block devices:") whose name is NAME in a /proc/devices text. */
export function procDevicesMajors(text: string, type: 'c' | 'b', name: string): number[] {
  const out: number[] = [];
  let good = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') {
      good = false;
      continue;
    }
    if (line === 'Character devices:' || line === 'Block devices:') {
      good = line.startsWith(type === 'c' ? 'Character' : 'Block');
      continue;
    }
    if (!good) continue;
    const m = /^(\d+)\s+(.+)$/.exec(line);
    if (m && m[2] === name && Number(m[1]) > 0) out.push(Number(m[1]));
  }
  return out;
}

/** major() and minor() of a Linux dev_t (glibc's encoding). */
export function devMajorMinor(rdev: bigint): { major: number; minor: number } {
  return {
    major: Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & 0xfffff000n)),
    minor: Number((rdev & 0xffn) | ((rdev >> 12n) & 0xffffff00n)),
  };
}

export const nodeDeviceFacts: DeviceFacts = {
  node(path) {
    let st;
    try {
      st = lstatSync(path, { bigint: true });
    } catch {
      return undefined;
    }
    const type = st.isCharacterDevice() ? 'c' : st.isBlockDevice() ? 'b' : undefined;
    return type ? { type, ...devMajorMinor(st.rdev) } : 'other';
  },
  ptsMajors() {
    try {
      return procDevicesMajors(procDevicesText(), 'c', 'pts');
    } catch {
      return [];
    }
  },
};

const sameRule = (a: DeviceRule, b: DeviceRule) => a.type === b.type && a.major === b.major && a.minor === b.minor && a.access === b.access;

/**
 * The rules for a container: the closed policy, /dev/net/tun and the pty slaves, then every bind mount whose
 * source is a device node itself (lstat: a symlink to one is not), r for --bind-ro and rw for --bind. Sources
 * inside the tree ("+" paths) are looked up in DIRECTORY. Duplicates are dropped.
 */
export function machineDeviceRules(mounts: readonly CustomMount[], directory: string, facts: DeviceFacts): DeviceRule[] {
  const out: DeviceRule[] = [];
  const add = (r: DeviceRule) => {
    if (!out.some((x) => sameRule(x, r))) out.push(r);
  };
  for (const n of CLOSED_POLICY_NODES) add(n.rule);
  const pts = facts.ptsMajors();
  for (const major of pts.length > 0 ? pts : [DEFAULT_PTS_MAJOR]) add({ type: 'c', major, access: 'rw' });
  add(TUN_RULE);
  for (const m of mounts) {
    if (m.type !== 'bind') continue;
    const node = facts.node(m.sourceInRoot ? join(directory, m.source) : m.source);
    if (node === undefined || node === 'other') continue;
    add({ type: node.type, major: node.major, minor: node.minor, access: m.readOnly ? 'r' : 'rw' });
  }
  return out;
}

/** A rule as a devices.allow line: "c 1:3 rwm", "c 136:* rw". */
export function formatDeviceRule(r: DeviceRule): string {
  return `${r.type} ${r.major ?? '*'}:${r.major === undefined ? '*' : (r.minor ?? '*')} ${r.access}`;
}

function accessBits(access: string): number {
  let bits = 0;
  for (const c of access) {
    if (c === 'r') bits |= DEVCG_ACC.READ;
    else if (c === 'w') bits |= DEVCG_ACC.WRITE;
    else if (c === 'm') bits |= DEVCG_ACC.MKNOD;
    else throw new Error(`bad device access "${access}" (a subset of rwm)`);
  }
  if (bits === 0) throw new Error('a device rule needs some access');
  return bits;
}

const ALL_ACCESS = DEVCG_ACC.MKNOD | DEVCG_ACC.READ | DEVCG_ACC.WRITE;

/**
 * The rules as a BPF_PROG_TYPE_CGROUP_DEVICE program: allow (1) what a rule matches, deny (0) everything else.
 *
 *   r2 = type (access_type & 0xffff), r3 = access (access_type >> 16), r4 = major, r5 = minor
 *   per rule:  if r2 != TYPE goto next; [if r4 != MAJOR goto next;] [if r5 != MINOR goto next;]
 *              [if r3 & ~ACCESS goto next;] return 1
 *   return 0
 */
export function deviceCgroupProgram(rules: readonly DeviceRule[]): Uint8Array {
  const p: BpfInsn[] = [
    ldxW(2, 1, DEV_CTX.ACCESS_TYPE),
    alu32K(EBPF.AND, 2, 0xffff),
    ldxW(3, 1, DEV_CTX.ACCESS_TYPE),
    alu32K(EBPF.RSH, 3, 16),
    ldxW(4, 1, DEV_CTX.MAJOR),
    ldxW(5, 1, DEV_CTX.MINOR),
  ];
  for (const r of rules) {
    const bits = accessBits(r.access);
    // the tests, each jumping to the next rule when it fails; then the two instructions of "return 1"
    const tests: Array<[op: number, reg: number, imm: number]> = [[EBPF.JNE, 2, r.type === 'c' ? DEVCG_DEV.CHAR : DEVCG_DEV.BLOCK]];
    if (r.major !== undefined) {
      tests.push([EBPF.JNE, 4, r.major]);
      if (r.minor !== undefined) tests.push([EBPF.JNE, 5, r.minor]);
    }
    if (bits !== ALL_ACCESS) tests.push([EBPF.JSET, 3, ALL_ACCESS & ~bits]);
    tests.forEach(([op, reg, imm], i) => p.push(jmpK(op, reg, imm, tests.length - 1 - i + 2)));
    p.push(mov64K(0, 1), exit());
  }
  p.push(mov64K(0, 0), exit());
  return encodeProgram(p);
}
