/**
 * config.json → the engine's HelperPlan (@nspawn/runtime): namespaces, mounts, devices, masked and readonly
 * paths, sysctl, the process (user, cwd, env, capabilities, rlimits, noNewPrivileges, oomScoreAdj), the seccomp
 * profile (seccomp.ts).
 */
import { lstatSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { capabilityMaskOf, CLONE, type HelperPlan, type HelperRlimit, MS, MOUNT_ATTR, type Op, OpFlag } from '@nspawn/runtime';
import { compileOciSeccomp } from './seccomp.js';
import { type Spec, SpecError } from './spec.js';

const NS_FLAG: Record<string, number> = {
  pid: CLONE.NEWPID,
  network: CLONE.NEWNET,
  mount: CLONE.NEWNS,
  ipc: CLONE.NEWIPC,
  uts: CLONE.NEWUTS,
  user: CLONE.NEWUSER,
  cgroup: CLONE.NEWCGROUP,
};

const RLIMITS: Record<string, number> = {
  RLIMIT_CPU: 0, RLIMIT_FSIZE: 1, RLIMIT_DATA: 2, RLIMIT_STACK: 3, RLIMIT_CORE: 4, RLIMIT_RSS: 5, RLIMIT_NPROC: 6,
  RLIMIT_NOFILE: 7, RLIMIT_MEMLOCK: 8, RLIMIT_AS: 9, RLIMIT_LOCKS: 10, RLIMIT_SIGPENDING: 11, RLIMIT_MSGQUEUE: 12,
  RLIMIT_NICE: 13, RLIMIT_RTPRIO: 14, RLIMIT_RTTIME: 15,
};

/** mount(8) option words that are flags: [set, clear] */
const FLAG_OPTIONS: Record<string, [number, number]> = {
  ro: [MS.RDONLY, 0], rw: [0, MS.RDONLY],
  nosuid: [MS.NOSUID, 0], suid: [0, MS.NOSUID],
  nodev: [MS.NODEV, 0], dev: [0, MS.NODEV],
  noexec: [MS.NOEXEC, 0], exec: [0, MS.NOEXEC],
  strictatime: [MS.STRICTATIME, 0],
  bind: [MS.BIND, 0], rbind: [MS.BIND | MS.REC, 0],
  sync: [16, 0], dirsync: [128, 0], remount: [MS.REMOUNT, 0], mand: [64, 0], nomand: [0, 64],
  noatime: [1024, 0], atime: [0, 1024], nodiratime: [2048, 0], diratime: [0, 2048], relatime: [1 << 21, 0], norelatime: [0, 1 << 21],
};
const PROPAGATION: Record<string, number> = {
  private: MS.PRIVATE, rprivate: MS.PRIVATE | MS.REC, shared: MS.SHARED, rshared: MS.SHARED | MS.REC,
  slave: MS.SLAVE, rslave: MS.SLAVE | MS.REC, unbindable: 1 << 17, runbindable: (1 << 17) | MS.REC,
};

export interface ParsedMountOptions {
  flags: number;
  propagation: number[];
  data: string[];
}

/** Splits a mount's options into MS_* flags, propagation changes and file system data, as runc's parseMountOptions(). */
export function parseMountOptions(options: readonly string[] = []): ParsedMountOptions {
  let flags = 0;
  const propagation: number[] = [];
  const data: string[] = [];
  for (const o of options) {
    const f = FLAG_OPTIONS[o];
    if (f) {
      flags = (flags | f[0]) & ~f[1];
      continue;
    }
    const p = PROPAGATION[o];
    if (p !== undefined) {
      propagation.push(p);
      continue;
    }
    if (o === 'defaults' || o === 'tmpcopyup' || o === 'idmap' || o === 'ridmap') continue;
    data.push(o);
  }
  return { flags, propagation, data };
}

/** Resolves the bundle's root: absolute, or relative to BUNDLE; a symlink that leads out of the bundle is refused. */
export function resolveRootfs(bundle: string, rootPath: string): string {
  const p = isAbsolute(rootPath) ? rootPath : resolve(bundle, rootPath);
  let real: string;
  try {
    real = realpathSync(p);
  } catch {
    throw new SpecError(`root.path ${p}: no such directory`);
  }
  if (!statSync(real).isDirectory()) throw new SpecError(`root.path ${p}: not a directory`);
  if (!isAbsolute(rootPath) && lstatSync(p).isSymbolicLink()) {
    const rel = relative(realpathSync(bundle), real);
    if (rel.startsWith('..') || isAbsolute(rel)) throw new SpecError(`root.path ${p}: a symlink out of the bundle (${real})`);
  }
  return real;
}

const DEFAULT_DEVICES: Array<[string, number, number]> = [
  ['null', 1, 3], ['zero', 1, 5], ['full', 1, 7], ['random', 1, 8], ['urandom', 1, 9], ['tty', 5, 0],
];
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;
const makedev = (major: number, minor: number) => (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12);

export interface TranslateOptions {
  /** the resolved root (resolveRootfs()) */
  rootfs: string;
  /** wait at the sync point until the runtime says go (create/start) */
  sync: boolean;
  /** the payload has a terminal */
  console: HelperPlan['console'];
}

const ANY_PROPAGATION = MS.PRIVATE | MS.SHARED | MS.SLAVE | (1 << 17);

/** the config's cgroup mounts in each plan (its ops), for useCgroupViews() */
const CGROUP_MOUNTS = new WeakMap<HelperPlan, Op[]>();

/**
 * The container's view of its cgroups on a host with v1 hierarchies, as runc's (libcontainer mountCgroupV1): a
 * tmpfs at each of the config's cgroup mounts (mode 755, nosuid, nodev, noexec) with a bind of the container's own
 * directory of each hierarchy (named as the host's mount point: cpu, memory, systemd...) with the mount's flags
 * (read-only when it is; the tmpfs stays writable, as runc 1.1's), and a link for each controller of a co-mounted one (cpu,cpuacct). Replaces the plan's cgroup2 mounts, which
 * would show the host's whole unified hierarchy (and cost an RCU grace period in the kernel at each mount). VIEWS
 * empty (a unified host): nothing changes.
 */
export function useCgroupViews(plan: HelperPlan, views: ReadonlyArray<{ name: string; dir: string }>): void {
  const mounts = CGROUP_MOUNTS.get(plan);
  if (!mounts || views.length === 0) return;
  for (const m of mounts) {
    const at = plan.ops.indexOf(m);
    if (at < 0) continue;
    // the mount's propagation changes (right after it) go to the tmpfs before the binds, as runc's: a bind of a
    // shared host hierarchy stays its slave
    let n = 1;
    while (plan.ops[at + n]?.kind === 'remount' && plan.ops[at + n]!.target === m.target && (plan.ops[at + n]!.mountFlags ?? 0) & ANY_PROPAGATION) n++;
    const propagation = plan.ops.slice(at + 1, at + n);
    const base = MS.NOSUID | MS.NODEV | MS.NOEXEC;
    const ops: Op[] = [{ kind: 'mount', source: 'tmpfs', target: m.target, fstype: 'tmpfs', mountFlags: base, data: 'mode=755', flags: OpFlag.MKDIR }, ...propagation];
    for (const v of views) {
      const target = join(m.target, v.name);
      ops.push({ kind: 'mount', source: v.dir, target, mountFlags: MS.BIND | MS.REC, flags: OpFlag.MKDIR });
      ops.push({ kind: 'remount', target, mountFlags: MS.BIND | MS.REC | ((m.mountFlags ?? 0) & ~MS.REC) });
      for (const c of v.name.includes(',') ? v.name.split(',') : []) ops.push({ kind: 'symlink', source: v.name, target: join(m.target, c) });
    }
    plan.ops.splice(at, n, ...ops);
  }
}

/** Builds the helper plan of SPEC. Throws a SpecError for what the engine cannot do. */
export function translateSpec(spec: Spec, opts: TranslateOptions): HelperPlan {
  const proc = spec.process;
  if (!proc) throw new SpecError('process: missing (nothing to run)');
  const linux = spec.linux ?? {};
  let cloneFlags = 0;
  const nsJoin: Array<{ type: number; path: string }> = [];
  for (const n of linux.namespaces ?? []) {
    if (n.type === 'time') throw new SpecError('linux.namespaces: time namespaces are not supported');
    const flag = NS_FLAG[n.type];
    if (flag === undefined) throw new SpecError(`linux.namespaces: unknown namespace type "${n.type}"`);
    if (n.path) {
      if (n.type === 'user') throw new SpecError(`linux.namespaces: joining a user namespace by path (${n.path}) is not supported yet`);
      nsJoin.push({ type: flag, path: n.path });
      continue;
    }
    cloneFlags |= flag;
  }
  const joinedMnt = nsJoin.some((j) => j.type === CLONE.NEWNS);
  if (!(cloneFlags & CLONE.NEWNS) && !joinedMnt) throw new SpecError('linux.namespaces: a mount namespace is required');
  const userns = (cloneFlags & CLONE.NEWUSER) !== 0;

  const ops: Op[] = [];
  const cgroupMounts: Op[] = [];
  const mounts = spec.mounts ?? [];
  const targets = new Set(mounts.map((m) => m.destination));
  for (const m of mounts) {
    if (!isAbsolute(m.destination)) throw new SpecError(`mounts: destination ${m.destination} is not absolute`);
    const o = parseMountOptions(m.options);
    const type = m.type ?? (o.flags & MS.BIND ? 'bind' : 'none');
    const bind = (o.flags & MS.BIND) !== 0 || type === 'bind';
    if (bind) {
      const src = m.source ?? '';
      if (src === '') throw new SpecError(`mounts: bind mount at ${m.destination} without a source`);
      ops.push({ kind: 'mount', source: src, target: m.destination, mountFlags: MS.BIND | (o.flags & MS.REC), flags: OpFlag.MKPOINT | OpFlag.MKDIR });
      const rest = o.flags & ~(MS.BIND | MS.REC);
      if (rest) ops.push({ kind: 'remount', target: m.destination, mountFlags: MS.BIND | rest });
    } else if (type === 'cgroup') {
      // the container's view of the cgroup hierarchy: cgroup2 on a unified host; on a host with v1 hierarchies the
      // container's own directories instead, once they exist (cgroups.ts useCgroupViews())
      const op: Op = { kind: 'mount', source: 'cgroup2', target: m.destination, fstype: 'cgroup2', mountFlags: o.flags & ~MS.REC, flags: OpFlag.MKDIR | OpFlag.OPTIONAL };
      ops.push(op);
      cgroupMounts.push(op);
    } else {
      ops.push({ kind: 'mount', source: m.source ?? type, target: m.destination, fstype: type, mountFlags: o.flags, data: o.data.join(','), flags: OpFlag.MKDIR });
    }
    for (const p of o.propagation) ops.push({ kind: 'remount', target: m.destination, mountFlags: p });
  }

  // the default devices and links (runc: createDevices(), setupDevSymlinks()), then the config's devices
  const devDone = new Set<string>();
  const devices = linux.devices ?? [];
  for (const d of devices) {
    const mode = (d.type === 'b' ? S_IFBLK : d.type === 'p' ? S_IFIFO : S_IFCHR) | (d.fileMode ?? 0o666);
    ops.push({ kind: 'mknod', source: d.path, target: d.path, mode, dev: makedev(d.major ?? 0, d.minor ?? 0), flags: OpFlag.MKDIR });
    if (d.uid !== undefined || d.gid !== undefined) ops.push({ kind: 'chown', target: d.path, mode: d.uid ?? 0, dev: d.gid ?? 0 });
    devDone.add(d.path);
  }
  for (const [name, major, minor] of DEFAULT_DEVICES) {
    if (devDone.has(`/dev/${name}`)) continue;
    ops.push({ kind: 'mknod', source: `/dev/${name}`, target: `/dev/${name}`, mode: S_IFCHR | 0o666, dev: makedev(major, minor) });
  }
  ops.push(
    { kind: 'symlink', source: '/proc/self/fd', target: '/dev/fd' },
    { kind: 'symlink', source: '/proc/self/fd/0', target: '/dev/stdin' },
    { kind: 'symlink', source: '/proc/self/fd/1', target: '/dev/stdout' },
    { kind: 'symlink', source: '/proc/self/fd/2', target: '/dev/stderr' },
  );
  if (targets.has('/dev/pts')) ops.push({ kind: 'symlink', source: 'pts/ptmx', target: '/dev/ptmx' });
  if (opts.console !== 'pipe') ops.push({ kind: 'console', target: '/dev/console' });

  for (const [key, value] of Object.entries(linux.sysctl ?? {})) {
    if (!/^[a-z0-9_.\-/]+$/i.test(key)) throw new SpecError(`linux.sysctl: bad key ${key}`);
    ops.push({ kind: 'write', target: `/proc/sys/${key.replace(/\./g, '/')}`, data: value, mode: 0o644 });
  }

  for (const p of linux.maskedPaths ?? []) {
    let dir = false;
    try {
      dir = statSync(p.startsWith('/proc/') || p.startsWith('/sys/') ? p : join(opts.rootfs, p)).isDirectory();
    } catch {
      continue; // runc: a path that does not exist is skipped
    }
    if (dir) ops.push({ kind: 'mount', source: 'tmpfs', target: p, fstype: 'tmpfs', mountFlags: MS.RDONLY, data: 'size=0', flags: OpFlag.IF_EXISTS | OpFlag.OPTIONAL });
    else ops.push({ kind: 'mount', source: '/dev/null', target: p, mountFlags: MS.BIND, flags: OpFlag.SRC_IN_ROOT | OpFlag.IF_EXISTS | OpFlag.OPTIONAL });
  }
  for (const p of linux.readonlyPaths ?? []) {
    ops.push(
      { kind: 'mount', source: p, target: p, mountFlags: MS.BIND | MS.REC, flags: OpFlag.SRC_IN_ROOT | OpFlag.IF_EXISTS | OpFlag.OPTIONAL },
      { kind: 'remount', target: p, mountFlags: MS.BIND | MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC, flags: OpFlag.OPTIONAL },
    );
  }
  if (spec.root.readonly) ops.push({ kind: 'setattr', target: '/', mountFlags: MOUNT_ATTR.RDONLY });
  const prop = linux.rootfsPropagation;
  if (prop) {
    const p = PROPAGATION[prop];
    if (p === undefined) throw new SpecError(`linux.rootfsPropagation: unknown value "${prop}"`);
    ops.push({ kind: 'remount', target: '/', mountFlags: p | MS.REC });
  }

  const rlimits: HelperRlimit[] = [];
  for (const r of proc.rlimits ?? []) {
    const resource = RLIMITS[r.type];
    if (resource === undefined) throw new SpecError(`process.rlimits: unknown type ${r.type}`);
    rlimits.push({ resource, soft: BigInt(r.soft), hard: BigInt(r.hard) });
  }

  const env = proc.env ?? [];
  const plan: HelperPlan = {
    root: opts.rootfs,
    cloneFlags,
    sync: opts.sync,
    ops,
    console: opts.console,
    rlimits,
    uid: proc.user.uid,
    gid: proc.user.gid,
    groups: proc.user.additionalGids ?? [],
    chdir: proc.cwd,
    asPid2: false,
    loopback: (cloneFlags & CLONE.NEWNET) !== 0,
    env,
    argv: [...proc.args],
    searchPath: !proc.args[0]!.includes('/'),
    fallback: [],
    stubEnv: [],
    // the host binds (the config's, the cgroup view's) keep their copies' mount IDs: listed first in mountinfo,
    // where runc's come in the config's order, but without an RCU grace period each on the start path
    bindCopiesFirst: true,
  };
  if (spec.hostname !== undefined && spec.hostname !== '') {
    if (!(cloneFlags & CLONE.NEWUTS) && !nsJoin.some((j) => j.type === CLONE.NEWUTS)) throw new SpecError('hostname: needs a uts namespace of its own');
    plan.hostname = spec.hostname;
  }
  if (nsJoin.length) plan.nsJoin = nsJoin;
  if (userns) {
    const u = linux.uidMappings ?? [];
    const g = linux.gidMappings ?? [];
    const one = u.length === 1 && g.length === 1 && u[0]!.containerID === 0 && g[0]!.containerID === 0 && u[0]!.hostID === g[0]!.hostID && u[0]!.size === g[0]!.size;
    if (!one) throw new SpecError('linux.uidMappings/gidMappings: only one mapping from container ID 0, the same for users and groups, is supported');
    plan.usermap = { shift: u[0]!.hostID, range: u[0]!.size };
  }
  if (proc.noNewPrivileges) plan.noNewPrivileges = true;
  // runc: without noNewPrivileges the filter goes in while the process is still privileged (loading one needs
  // CAP_SYS_ADMIN then), with it as late as it can, after no_new_privs and just before exec
  const seccomp = linux.seccomp === undefined || linux.seccomp === null ? undefined : compileOciSeccomp(linux.seccomp);
  if (seccomp) {
    plan.seccomp = seccomp.bytes;
    plan.seccompOci = { flags: seccomp.flags, late: proc.noNewPrivileges === true };
  }
  if (cgroupMounts.length) CGROUP_MOUNTS.set(plan, cgroupMounts);
  if (proc.oomScoreAdj !== undefined) plan.oomScoreAdjust = proc.oomScoreAdj;
  const c = proc.capabilities;
  if (c) {
    plan.capabilities = {
      bounding: capabilityMaskOf(c.bounding ?? []),
      effective: capabilityMaskOf(c.effective ?? []),
      permitted: capabilityMaskOf(c.permitted ?? []),
      inheritable: capabilityMaskOf(c.inheritable ?? []),
      ambient: capabilityMaskOf(c.ambient ?? []),
    };
  }
  return plan;
}
