/**
 * What the host can see of a running machine from its leader PID (read from /proc, no namespace entered):
 * its OS release, addresses, UID shift and processes. Used by nspawnd's List and by nspawnctl status.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { machineHierarchies, parseProcCgroup } from './cgroup.js';
import { chaseInRoot, probeHost } from './host.js';

/** os-release of the machine's root as KEY=VALUE strings (io.systemd.Machine's OSRelease); undefined if none. */
export function machineOsRelease(leader: number): string[] | undefined {
  const root = `/proc/${leader}/root`;
  for (const p of ['/etc/os-release', '/usr/lib/os-release']) {
    const real = chaseInRoot(root, p);
    if (real === undefined) continue;
    try {
      const text = readFileSync(real, 'utf8');
      const out: string[] = [];
      for (const line of text.split('\n')) {
        const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
        if (!m) continue;
        let v = m[2]!.trim();
        if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) v = v.slice(1, -1);
        out.push(`${m[1]}=${v.replace(/\\(.)/g, '$1')}`);
      }
      return out;
    } catch {
      // next
    }
  }
  return undefined;
}

function nsId(pid: number | 'self', kind: string): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/${kind}`);
  } catch {
    return undefined;
  }
}

/** Whether the machine has a network namespace of its own. */
export function hasPrivateNetwork(leader: number): boolean {
  const a = nsId(leader, 'net');
  return a !== undefined && a !== nsId('self', 'net');
}

export interface MachineAddress {
  ifindex?: number;
  family: number;
  address: number[];
}

/** The machine's addresses (not loopback), from its /proc/net; empty without a private network. */
export function machineAddresses(leader: number): MachineAddress[] {
  if (!hasPrivateNetwork(leader)) return [];
  const out: MachineAddress[] = [];
  try {
    // fib_trie: "|-- 10.0.0.2" followed by "/32 host LOCAL" marks a local address
    const lines = readFileSync(`/proc/${leader}/net/fib_trie`, 'utf8').split('\n');
    const seen = new Set<string>();
    for (let i = 1; i < lines.length; i++) {
      if (!/\/32 host LOCAL/.test(lines[i]!)) continue;
      const m = /([0-9.]+)\s*$/.exec(lines[i - 1]!);
      if (!m || m[1]!.startsWith('127.') || seen.has(m[1]!)) continue;
      seen.add(m[1]!);
      out.push({ family: 2, address: m[1]!.split('.').map(Number) });
    }
  } catch {
    // no IPv4
  }
  try {
    for (const line of readFileSync(`/proc/${leader}/net/if_inet6`, 'utf8').split('\n')) {
      const f = line.trim().split(/\s+/);
      if (f.length < 6 || f[5] === 'lo') continue;
      const hex = f[0]!;
      const bytes = [];
      for (let i = 0; i < 32; i += 2) bytes.push(parseInt(hex.slice(i, i + 2), 16));
      out.push({ ifindex: parseInt(f[1]!, 16), family: 10, address: bytes });
    }
  } catch {
    // no IPv6
  }
  return out;
}

export function formatAddress(a: MachineAddress): string {
  if (a.family === 2) return a.address.join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((a.address[i]! << 8) | a.address[i + 1]!).toString(16));
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}

/** The base UID of the machine's user namespace (0 without one); undefined for a mapping that is not one range. */
export function machineUidShift(leader: number): number | undefined {
  try {
    const lines = readFileSync(`/proc/${leader}/uid_map`, 'utf8').trim().split('\n');
    if (lines.length !== 1) return undefined;
    const [inside, outside] = lines[0]!.trim().split(/\s+/).map(Number);
    return inside === 0 ? outside : undefined;
  } catch {
    return undefined;
  }
}

export interface MachineProcess {
  pid: number;
  ppid: number;
  comm: string;
  cmdline: string;
}

/** Every process in the machine's PID namespace (the leader's and those below it), as the host sees them. */
export function machineProcesses(leader: number): MachineProcess[] {
  const ns = nsId(leader, 'pid');
  // another user's machine (its namespaces are not ours to read): the processes of its leader's cgroup and below,
  // as machinectl status shows the unit's cgroup (cgroup.procs is readable by anyone)
  const inCgroup = ns === undefined ? cgroupPids(leader) : undefined;
  if (ns === undefined && inCgroup === undefined) return [];
  const out: MachineProcess[] = [];
  for (const d of inCgroup ? [...inCgroup].map(String) : readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const pid = Number(d);
    try {
      if (ns !== undefined && pid !== leader && readlinkSync(`/proc/${pid}/ns/pid`) !== ns) {
        // a process of a nested namespace still lists the machine's PID namespace among its NSpid levels: skip it
        continue;
      }
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((x) => x !== '').join(' ');
      out.push({ pid, ppid, comm, cmdline: cmdline || `[${comm}]` });
    } catch {
      // gone
    }
  }
  return out;
}

/** The PIDs in LEADER's cgroup and below it (in the first hierarchy systemd manages units in), or undefined. */
function cgroupPids(leader: number): Set<number> | undefined {
  try {
    const cg = parseProcCgroup(readFileSync(`/proc/${leader}/cgroup`, 'utf8'));
    const h = machineHierarchies(probeHost().cgroups).find((x) => cg.get(x.key) !== undefined);
    const path = h && cg.get(h.key);
    if (!h || path === undefined || path === '/') return undefined;
    const pids = new Set<number>([leader]);
    const walk = (dir: string, depth: number) => {
      for (const l of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (l) pids.add(Number(l));
      if (depth > 16) return;
      for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) walk(join(dir, e.name), depth + 1);
    };
    walk(join(h.mount, path), 0);
    return pids;
  } catch {
    return undefined;
  }
}

/** A process tree as `systemd-cgls` draws it, from the leader down. */
export function formatProcessTree(procs: MachineProcess[], leader: number): string[] {
  const children = new Map<number, MachineProcess[]>();
  for (const p of procs) {
    const l = children.get(p.ppid) ?? [];
    l.push(p);
    children.set(p.ppid, l);
  }
  const out: string[] = [];
  const walk = (p: MachineProcess, prefix: string, last: boolean, top: boolean) => {
    out.push(`${top ? '' : prefix + (last ? '└─' : '├─')}${p.pid} ${p.cmdline}`);
    const kids = children.get(p.pid) ?? [];
    kids.forEach((k, i) => walk(k, top ? '' : prefix + (last ? '  ' : '│ '), i === kids.length - 1, false));
  };
  const root = procs.find((p) => p.pid === leader);
  if (root) walk(root, '', true, true);
  return out;
}
