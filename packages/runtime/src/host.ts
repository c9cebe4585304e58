/**
 * What planning needs to know about the host and the container tree, behind small interfaces so that the
 * planner is a pure function in tests. `probeHost()` and `nodeTree()` are the real implementations.
 */
import { fstatSync, lstatSync, readFileSync, readlinkSync, statSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { type HostCapabilities, readHostCapabilities } from './caps.js';

export interface DevNode {
  mode: number;
  rdev: number;
}

export interface CgroupHierarchy {
  /** directory name under /sys/fs/cgroup, e.g. "cpu", "systemd" */
  name: string;
  /** mount options naming the hierarchy, e.g. "cpu" or "name=systemd" */
  options: string;
}

export type CgroupLayout =
  | { kind: 'unified' }
  | { kind: 'hybrid'; hierarchies: CgroupHierarchy[] }
  | { kind: 'legacy'; hierarchies: CgroupHierarchy[] }
  | { kind: 'none' };

export interface HostFacts {
  /** path of the host's os-release, and its pairs */
  osRelease?: { path: string; pairs: Record<string, string> };
  term?: string;
  devNodes: Record<string, DevNode | undefined>;
  /** readlink(/etc/localtime); 'file' when it is a regular file; undefined when missing */
  localtime?: { link: string } | 'file';
  hasResolvConf: boolean;
  resolvConf?: string;
  cgroups: CgroupLayout;
  nrOpen: number;
  /** RLIMIT_NPROC and RLIMIT_SIGPENDING of PID 1, as systemd-nspawn passes them on */
  pid1Limits: { NPROC?: [string, string]; SIGPENDING?: [string, string] };
  /** the host file to bind over masked /proc entries (an empty file of mode 0000) */
  inaccessibleFile: string;
  /** the bounding set a container without a user namespace starts with, and cap_last_cap (none known: no masking) */
  capabilities?: HostCapabilities;
}

export const DEV_NODES = ['null', 'zero', 'full', 'random', 'urandom', 'tty', 'net/tun'] as const;

function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq < 1) continue;
    let v = line.slice(eq + 1);
    if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) v = v.slice(1, -1);
    out[line.slice(0, eq)] = v.replace(/\\(.)/g, '$1');
  }
  return out;
}
export { parseOsRelease };

/** Reads the cgroup layout off a mountinfo text. */
export function cgroupLayoutFromMountinfo(mountinfo: string): CgroupLayout {
  const hierarchies: CgroupHierarchy[] = [];
  let unifiedRoot = false;
  let unifiedSub = false;
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (sep < 0) continue;
    const mp = f[4] ?? '';
    const type = f[sep + 1];
    const superOpts = (f[sep + 3] ?? '').split(',');
    if (type === 'cgroup2') {
      if (mp === '/sys/fs/cgroup') unifiedRoot = true;
      else if (mp === '/sys/fs/cgroup/unified') unifiedSub = true;
    } else if (type === 'cgroup' && mp.startsWith('/sys/fs/cgroup/')) {
      const keep = superOpts.filter((o) => !['rw', 'ro', 'relatime', 'noatime', 'nosuid', 'nodev', 'noexec'].includes(o) && !o.startsWith('release_agent') && o !== 'clone_children' && o !== 'xattr');
      hierarchies.push({ name: mp.slice('/sys/fs/cgroup/'.length), options: keep.join(',') });
    }
  }
  if (unifiedRoot) return { kind: 'unified' };
  if (hierarchies.length === 0) return { kind: 'none' };
  return unifiedSub ? { kind: 'hybrid', hierarchies } : { kind: 'legacy', hierarchies };
}

function limitsOfPid1(): HostFacts['pid1Limits'] {
  const out: HostFacts['pid1Limits'] = {};
  try {
    const text = readFileSync('/proc/1/limits', 'utf8');
    const pick = (label: string): [string, string] | undefined => {
      const line = text.split('\n').find((l) => l.startsWith(label));
      if (!line) return undefined;
      const cols = line.slice(26).trim().split(/\s+/);
      const fix = (x: string | undefined) => (x === 'unlimited' ? 'infinity' : (x ?? 'infinity'));
      return [fix(cols[0]), fix(cols[1])];
    };
    const np = pick('Max processes');
    const sp = pick('Max pending signals');
    if (np) out.NPROC = np;
    if (sp) out.SIGPENDING = sp;
  } catch {
    // no /proc/1/limits: leave them as inherited
  }
  return out;
}

/** Gathers HostFacts from the running system. */
export function probeHost(env: NodeJS.ProcessEnv = process.env): HostFacts {
  let osRelease: HostFacts['osRelease'];
  for (const p of ['/etc/os-release', '/usr/lib/os-release']) {
    try {
      osRelease = { path: p, pairs: parseOsRelease(readFileSync(p, 'utf8')) };
      break;
    } catch {
      // try the next one
    }
  }
  const devNodes: HostFacts['devNodes'] = {};
  for (const d of DEV_NODES) {
    try {
      const st = statSync(`/dev/${d}`, { throwIfNoEntry: false });
      devNodes[d] = st && { mode: st.mode, rdev: st.rdev };
    } catch {
      devNodes[d] = undefined;
    }
  }
  let localtime: HostFacts['localtime'];
  try {
    localtime = { link: readlinkSync('/etc/localtime') };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EINVAL') localtime = 'file';
  }
  let nrOpen = 1048576;
  try {
    nrOpen = Number(readFileSync('/proc/sys/fs/nr_open', 'utf8').trim()) || nrOpen;
  } catch {
    // keep the kernel default
  }
  let cgroups: CgroupLayout = { kind: 'none' };
  try {
    cgroups = cgroupLayoutFromMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'));
  } catch {
    // no cgroups
  }
  const facts: HostFacts = {
    devNodes,
    hasResolvConf: existsSync('/etc/resolv.conf'),
    cgroups,
    nrOpen,
    pid1Limits: limitsOfPid1(),
    inaccessibleFile: '/run/nspawn/inaccessible/reg',
  };
  if (osRelease) facts.osRelease = osRelease;
  if (env.TERM !== undefined) facts.term = env.TERM;
  if (localtime !== undefined) facts.localtime = localtime;
  const caps = readHostCapabilities();
  if (caps) facts.capabilities = caps;
  try {
    facts.resolvConf = readFileSync('/etc/resolv.conf', 'utf8');
  } catch {
    // none
  }
  return facts;
}

/** Read access to the container tree, with symlinks resolved inside the root (as chase_symlinks does). */
export interface Tree {
  readonly root: string;
  /** the host path a container path resolves to, or undefined when it does not exist */
  resolve(path: string): string | undefined;
  readFile(path: string): string | undefined;
  isDirectory(path: string): boolean;
  readdir(path: string): string[];
  /** lstat-level existence of the last component (a dangling symlink exists) */
  lexists(path: string): boolean;
  readlink(path: string): string | undefined;
}

/** Resolves PATH inside ROOT, following symlinks but never leaving ROOT. */
export function chaseInRoot(root: string, path: string, maxLinks = 40): string | undefined {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  const done: string[] = [];
  let links = 0;
  // plain concatenation rather than path.join(): the components are clean already, and join() is the most of the
  // cost of these lookups at start-up
  const base = root.endsWith('/') ? root.slice(0, -1) : root;
  const under = (cs: string[]) => (cs.length === 0 ? base || '/' : `${base}/${cs.join('/')}`);
  while (parts.length > 0) {
    const c = parts.shift()!;
    if (c === '..') {
      done.pop();
      continue;
    }
    done.push(c);
    const host = under(done);
    done.pop();
    let st;
    try {
      // (no exception for a missing entry: the usual answer here, and an exception costs more than the lstat)
      st = lstatSync(host, { throwIfNoEntry: false });
    } catch {
      return undefined;
    }
    if (st === undefined) return undefined;
    if (st.isSymbolicLink()) {
      if (++links > maxLinks) return undefined;
      const target = readlinkSync(host);
      if (target.startsWith('/')) done.length = 0;
      parts.unshift(...target.split('/').filter((p) => p !== '' && p !== '.'));
      continue;
    }
    done.push(c);
  }
  return under(done);
}

export function nodeTree(root: string): Tree {
  return {
    root,
    resolve: (p) => chaseInRoot(root, p),
    readFile(p) {
      const h = chaseInRoot(root, p);
      if (h === undefined) return undefined;
      try {
        return readFileSync(h, 'utf8');
      } catch {
        return undefined;
      }
    },
    isDirectory(p) {
      const h = chaseInRoot(root, p);
      try {
        return h !== undefined && statSync(h, { throwIfNoEntry: false })?.isDirectory() === true;
      } catch {
        return false;
      }
    },
    readdir(p) {
      const h = chaseInRoot(root, p);
      try {
        return h === undefined ? [] : readdirSync(h);
      } catch {
        return [];
      }
    },
    lexists(p) {
      const i = p.lastIndexOf('/');
      const dir = i <= 0 ? '/' : p.slice(0, i);
      const d = chaseInRoot(root, dir);
      if (d === undefined) return false;
      try {
        return lstatSync(join(d, p.slice(i + 1)), { throwIfNoEntry: false }) !== undefined;
      } catch {
        return false;
      }
    },
    readlink(p) {
      const i = p.lastIndexOf('/');
      const d = chaseInRoot(root, i <= 0 ? '/' : p.slice(0, i));
      if (d === undefined) return undefined;
      try {
        return readlinkSync(join(d, p.slice(i + 1)));
      } catch {
        return undefined;
      }
    },
  };
}

/** Names in /proc/devices of character device drivers whose devices are terminals. */
const TERMINAL_DRIVER = /^(?:tty\S*|pts|ptm|pty\S*|hvc\S*|\/dev\/(?:tty|console|ptmx|vc\/\d+))$/;

/** The majors of terminal drivers, from the text of /proc/devices (its "Character devices:" part). */
export function terminalMajors(procDevices: string): Set<number> {
  const out = new Set<number>();
  let chars = false;
  for (const line of procDevices.split('\n')) {
    if (/^Character devices:/.test(line)) chars = true;
    else if (/^Block devices:/.test(line)) chars = false;
    else if (chars) {
      const m = /^\s*(\d+)\s+(\S+)\s*$/.exec(line);
      if (m && TERMINAL_DRIVER.test(m[2]!)) out.add(Number(m[1]));
    }
  }
  return out;
}

let majors: Set<number> | undefined;

/**
 * isatty(3) without node:tty, which loads net and the streams: milliseconds of nspawn's start-up. A descriptor is
 * a terminal when it is a character device of a terminal driver (the majors /proc/devices names tty, pts, console,
 * ...). tty.isatty() asks the kernel (tcgetattr) instead; the tests check that the two agree.
 */
let procDevicesRead: { text: string; at: number } | undefined;
/** /proc/devices, read once for the moments of one start (a second read within a second is the same text). */
export function procDevicesText(): string {
  const now = performance.now();
  if (procDevicesRead === undefined || now - procDevicesRead.at > 1000) procDevicesRead = { text: readFileSync('/proc/devices', 'utf8'), at: now };
  return procDevicesRead.text;
}

export function isTerminal(fd: number): boolean {
  let st;
  try {
    st = fstatSync(fd);
  } catch {
    return false;
  }
  if (!st.isCharacterDevice()) return false;
  // st.rdev is the kernel's new_encode_dev(): the major in bits 8-19
  const major = Number((BigInt(st.rdev) >> 8n) & 0xfffn);
  // the majors Linux assigns statically (Documentation/admin-guide/devices.txt) need no /proc/devices: 1, memory
  // devices (/dev/null: stdio of a run in the background); 4 and 5, the ttys, console and ptmx; 136-143, the ptys
  if (major === 1) return false;
  if (major === 4 || major === 5 || (major >= 136 && major <= 143)) return true;
  try {
    majors ??= terminalMajors(procDevicesText());
  } catch {
    return false;
  }
  return majors.has(major);
}
