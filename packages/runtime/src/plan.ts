/**
 * Turns a container configuration into the helper's plan: namespaces, the ordered list of mounts, nodes and
 * links, the environment and the command. A pure function of its inputs (config, host facts, tree view,
 * randomness), so every rule here is unit-tested without root. The order and flags follow systemd-nspawn
 * 252's outer_child()/inner_child() and mount_all() (src/nspawn/nspawn.c, nspawn-mount.c, nspawn-cgroup.c).
 */
import type { NetworkConfig } from './network-config.js';
import type { CustomMount, LinkJournal, ResolvConfMode, Rlimit, RlimitName, SharedNamespace, TimezoneMode } from '@nspawn/settings';
import { dirname } from 'node:path';
import type { CgroupHierarchy, HostFacts, Tree } from './host.js';
import { CLONE, type HelperConsole, type HelperPlan, MOUNT_ATTR, MS, type Op, OpFlag } from './protocol.js';
import type { ContainerImage } from './image-tree.js';
import type { ResolvedUser } from './users.js';
import { nspawnSeccompBytes } from './seccomp/filter.js';
import { type BindUser, bindUserMaps, bindUserOps } from './bind-user.js';
import { CREDENTIALS_DIRECTORY, type Credential, credentialOps } from './credentials.js';
import { volatileBaseFilesystemOps } from './volatile.js';
import { containerHostEnv, hostOsReleaseEnvPairs, mergeEnv } from './environment.js';
import { applyOciSeccomp, applyOciUser, ociCapabilityQuintet, ociDeviceOps, type OciRun } from './oci-bundle.js';

export { containerHostEnv, mergeEnv } from './environment.js';
export { buildRlimits } from './rlimits.js';
import { rootDirectory } from './root-dir.js';
import { buildRlimits } from './rlimits.js';
import type { CgroupAttribute, CgroupSlice } from './cgroup-settings.js';
import {
  CAPABILITIES_NOT_IN_BOUNDING_SET,
  capabilitiesUpTo,
  capabilityQuintet,
  type ContainerCapabilities,
  defaultContainerCapabilities,
} from './caps.js';

export type StartMode = 'pid1' | 'pid2' | 'boot';
/** a namespace systemd-nspawn 252 can leave the container sharing with the host (@nspawn/settings' type) */
export type { SharedNamespace };

export interface ContainerConfig {
  /** absolute path of the container's root directory */
  directory: string;
  /** -x/--ephemeral: run on a throw-away snapshot of directory (src/storage.ts makes it and changes directory) */
  ephemeral?: boolean;
  /** --template: populate a missing directory from this tree first (src/storage.ts) */
  template?: string;
  machineName: string;
  /** --register: announce the machine to nspawnd (default yes; no daemon running is not an error) */
  register?: boolean;
  /**
   * What the unit of the machine gets on a systemd host (@nspawn/assembly's systemd extension): --keep-unit,
   * --slice=, --property=, and the kill signal (KillSignal= of the scope)
   */
  unit?: { keepUnit: boolean; killSignal: number; slice?: string; properties?: string[] };
  /** the hostname set in the container's UTS namespace (none is set when it shares the host's) */
  hostname: string;
  /**
   * The host's IPC, PID or UTS namespace the container shares instead of getting one of its own (systemd's
   * arg_clone_ns_flags without them; an OCI bundle's linux.namespaces lacking them). Unset: none.
   */
  sharedNamespaces?: SharedNamespace[];
  /** dashed UUID */
  uuid: string;
  startMode: StartMode;
  /** the command (pid1/pid2) or init's arguments (boot); empty means a shell */
  parameters: string[];
  /** the --user= value as given, and what it resolved to (undefined for root) */
  userName?: string;
  user?: ResolvedUser;
  workingDirectory?: string;
  /** --setenv assignments, in order */
  environment: string[];
  /** --read-only (also set by every volatile mode, as systemd-nspawn's parse_argv() does) */
  readOnly: boolean;
  /**
   * --volatile=yes|state|overlay: the helper puts a tmpfs (yes), a read-only tree with a tmpfs on /var (state) or an
   * overlay (overlay) in place of the root before the ops (native/volatile.c); nothing the container writes reaches
   * the tree
   */
  volatile?: 'yes' | 'state' | 'overlay';
  /**
   * -i/--image: the image's mounts, which the helper makes on the (empty) directory in the container's mount
   * namespace before anything else (native/image.c), and where Node reads the image's tree meanwhile (src/image-tree.ts).
   * @nspawn/assembly opens the image (lock, loop devices) and keeps it open for the run.
   */
  image?: ContainerImage;
  /** --image-policy= as given (checked when the image is opened) */
  imagePolicy?: string;
  /** --pivot-root=NEW[:OLD]: NEW inside the tree is the root, the tree moved to OLD or gone (src/root-dir.ts) */
  pivotRoot?: { newRoot: string; oldRoot?: string };
  customMounts: CustomMount[];
  personality?: 'x86' | 'x86-64';
  console: HelperConsole;
  privateNetwork: boolean;
  /**
   * user namespace range; undefined: none. `pick` (-U) and `fromOwner` (PrivateUsers=yes) leave the shift to the
   * private-users extension (src/private-users.ts), which also applies `ownership` (unset: systemd's default)
   */
  /** machine.slice stays when the container's scope goes (a daemon's containers: see MachineCgroupOptions.keepSlice) */
  keepMachineSlice?: boolean;
  /** --slice= on a host without systemd: the slice the scope goes in instead of machine.slice (src/cgroup-settings.ts) */
  slice?: CgroupSlice;
  /** --property= on a host without systemd: the cgroup files the scope gets (src/cgroup-settings.ts) */
  cgroupAttributes?: CgroupAttribute[];
  userns?: { shift: number; range: number; pick?: boolean; fromOwner?: boolean; ownership?: 'off' | 'chown' | 'map' | 'auto' };
  rlimits: Partial<Record<RlimitName, Rlimit>>;
  resolvConf: ResolvConfMode;
  timezone: TimezoneMode;
  useCgns: boolean;
  /** directories the caller made for throw-away overlay uppers, keyed by the mount's index */
  overlayScratch?: Record<number, { upper: string; work: string }>;
  /** SYSTEMD_NSPAWN_API_VFS_WRITABLE: "yes" leaves /proc/sys and /sys writable, "network" only /proc/sys/net */
  apiVfsWritable?: 'no' | 'yes' | 'network';
  noNewPrivileges?: boolean;
  oomScoreAdjust?: number;
  cpuAffinity?: number[];
  /** --link-journal=: 'auto' (the default) makes /var/log/journal in the tree, like setup_journal() */
  linkJournal?: LinkJournal;
  /** the "try-" variants of --link-journal=: a journal that cannot be linked is skipped, not an error */
  linkJournalTry?: boolean;
  /**
   * What setup_journal() does in the container's mount namespace, decided and prepared on the host by setupJournal()
   * (src/journal.ts): the bind mount of the host's journal directory, if any. Undefined: --link-journal=auto's
   * directories are made by the plan instead.
   */
  journalOps?: Op[];
  /** arg_caps_retain and arg_caps_ambient (containerCapabilities()); undefined: the defaults for this network and user namespace */
  capabilities?: ContainerCapabilities;
  /** --quiet: no warning about capabilities missing from the bounding set */
  quiet?: boolean;
  /** --system-call-filter= and SystemCallFilter=: names and @groups allowed on top of systemd's list, or denied (~) */
  systemCallFilter?: { allow: string[]; deny: string[] };
  /** --suppress-sync=yes: sync calls do nothing, O_SYNC opens fail with EINVAL */
  suppressSync?: boolean;
  /** false: no seccomp filter at all ($SYSTEMD_SECCOMP=0) */
  seccomp?: boolean;
  /**
   * $NSPAWN_DEVICE_POLICY: which cgroup mechanisms carry the device policy ('v1': the devices controller, 'bpf': a
   * program on the unified hierarchy; empty: none). Undefined: every one the host has. Used by runContainer().
   */
  deviceCgroup?: Array<'v1' | 'bpf'>;
  /** the network options beyond --private-network (src/network.ts) */
  network?: NetworkConfig;
  /** --set-credential=/--load-credential=, read: a ramfs at /run/host/credentials (src/credentials.ts) */
  credentials?: Credential[];
  /** --bind-user= (BindUser=): the host users' names, without duplicates (needs `userns`) */
  bindUser?: string[];
  /**
   * The bound users, resolved against the host and the tree once the range is known (planBoot(): src/bind-user.ts):
   * their records in /run/host/userdb, their homes (in customMounts) and their IDs in the user namespace's maps
   */
  bindUsers?: BindUser[];
  /** --oci-bundle=: the bundle's numeric user, capability quintet and device nodes (src/oci-bundle.ts) */
  oci?: OciRun;
}

export interface PlanRandom {
  /** 32 random lower-case hex digits */
  hex128(): string;
}

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Where the container's init (or any payload) sends sd_notify() messages: NSPAWN_NOTIFY_SOCKET_PATH */
export const NOTIFY_SOCKET_PATH = '/run/host/notify';
/** Where -b looks for init, in this order (inner_child()) */
export const INIT_CANDIDATES = ['/usr/lib/systemd/systemd', '/lib/systemd/systemd', '/sbin/init'] as const;
const TMPFS_NESTED = 'size=10%,nr_inodes=400k';
const PERSONALITY = { x86: 0x0008 /* PER_LINUX32 */, 'x86-64': 0x0000 /* PER_LINUX */ } as const;
const S_IFIFO = 0o010000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFREG = 0o100000;
const S_IFSOCK = 0o140000;

export function buildEnvironment(cfg: ContainerConfig, host: HostFacts): string[] {
  const base = [`PATH=${DEFAULT_PATH}`, 'container=systemd-nspawn'];
  if (host.term !== undefined) base.push(`TERM=${host.term}`);
  // an OCI bundle's numeric UID other than 0 gets neither HOME nor USER (inner_child())
  const isRoot = cfg.user === undefined && (cfg.oci?.uid ?? 0) === 0;
  if (cfg.user || isRoot) base.push(`HOME=${cfg.user?.home ?? '/root'}`);
  if (cfg.userName !== undefined || isRoot) {
    base.push(`USER=${cfg.userName ?? 'root'}`, `LOGNAME=${cfg.userName ?? 'root'}`);
  }
  base.push(`container_uuid=${cfg.uuid}`);
  // inner_child(): always, whatever the payload (the socket is there for any of them)
  base.push(`NOTIFY_SOCKET=${NOTIFY_SOCKET_PATH}`);
  if (cfg.credentials?.length) base.push(`CREDENTIALS_DIRECTORY=${CREDENTIALS_DIRECTORY}`);
  // init sets its own locale (from /etc/locale.conf): only a plain command gets ours
  if (cfg.startMode !== 'boot') base.push('LANG=C.UTF-8');
  return mergeEnv(base, containerHostEnv(hostOsReleaseEnvPairs(host)), cfg.environment);
}

const roFlags = MS.BIND | MS.REMOUNT | MS.RDONLY | MS.NOSUID | MS.NOEXEC | MS.NODEV;

function cgroupOps(host: HostFacts, tree: Tree, pid2: boolean): Op[] {
  const ops: Op[] = [];
  const layout = host.cgroups;
  if (layout.kind === 'none') return ops;
  const apiFlags = MS.NOSUID | MS.NOEXEC | MS.NODEV;
  if (layout.kind === 'unified') {
    // a unified host: cgroup2 for a tree whose systemd knows it (>= 230) or with -a; otherwise the legacy
    // layout, which on a unified host is only the named systemd hierarchy (mount_legacy_cgns_supported())
    if (pid2 || imageSystemdVersion(tree) >= 230) {
      ops.push({ kind: 'mount', source: 'cgroup2', target: '/sys/fs/cgroup', fstype: 'cgroup2', mountFlags: apiFlags, flags: OpFlag.MKDIR });
      return ops;
    }
    ops.push(
      { kind: 'mount', source: 'tmpfs', target: '/sys/fs/cgroup', fstype: 'tmpfs', mountFlags: apiFlags | MS.STRICTATIME, data: 'mode=755,size=4m,nr_inodes=1k', flags: OpFlag.MKDIR },
      { kind: 'mount', source: 'cgroup', target: '/sys/fs/cgroup/systemd', fstype: 'cgroup', mountFlags: apiFlags, data: 'none,name=systemd', flags: OpFlag.MKDIR },
      { kind: 'remount', target: '/sys/fs/cgroup', mountFlags: apiFlags | MS.STRICTATIME | MS.RDONLY, data: 'mode=755' },
    );
    return ops;
  }
  // legacy or hybrid host: the container gets the legacy layout, plus the unified hierarchy when its systemd
  // understands hybrid mode (detect_unified_cgroup_hierarchy_from_image: systemd >= 233 in the tree).
  // with -a the stub init is in charge, so the host's layout is used whatever the tree has (verify_arguments())
  const hybrid = layout.kind === 'hybrid' && (pid2 || imageSystemdVersion(tree) >= 233);
  ops.push({
    kind: 'mount',
    source: 'tmpfs',
    target: '/sys/fs/cgroup',
    fstype: 'tmpfs',
    mountFlags: apiFlags | MS.STRICTATIME,
    data: 'mode=755,size=4m,nr_inodes=1k',
    flags: OpFlag.MKDIR,
  });
  const controllers = layout.hierarchies.filter((h) => !h.options.startsWith('name='));
  const named = layout.hierarchies.filter((h: CgroupHierarchy) => h.options === 'name=systemd');
  for (const h of controllers) {
    ops.push({ kind: 'mount', source: 'cgroup', target: `/sys/fs/cgroup/${h.name}`, fstype: 'cgroup', mountFlags: apiFlags, data: h.options, flags: OpFlag.MKDIR });
    ops.push({ kind: 'remount', target: `/sys/fs/cgroup/${h.name}`, mountFlags: MS.BIND | MS.RDONLY | apiFlags });
    // co-mounted hierarchies ("cpu,cpuacct") get a symlink per member
    for (const member of h.options.split(',')) {
      if (member !== h.name && !member.includes('='))
        ops.push({ kind: 'symlink', source: h.name, target: `/sys/fs/cgroup/${member}`, flags: OpFlag.OPTIONAL });
    }
  }
  if (hybrid)
    ops.push({ kind: 'mount', source: 'cgroup', target: '/sys/fs/cgroup/unified', fstype: 'cgroup2', mountFlags: apiFlags, flags: OpFlag.MKDIR });
  if (named.length > 0)
    ops.push({ kind: 'mount', source: 'cgroup', target: '/sys/fs/cgroup/systemd', fstype: 'cgroup', mountFlags: apiFlags, data: 'none,name=systemd', flags: OpFlag.MKDIR });
  ops.push({ kind: 'remount', target: '/sys/fs/cgroup', mountFlags: apiFlags | MS.STRICTATIME | MS.RDONLY, data: 'mode=755' });
  return ops;
}

/**
 * The systemd version in the tree, from libsystemd-shared-NNN.so (0 when there is none): the highest found where
 * systemd_installation_has_version() looks, Debian's multiarch directories (/usr/lib/x86_64-linux-gnu/systemd)
 * included.
 */
export function imageSystemdVersion(tree: Tree): number {
  const multiarch = tree
    .readdir('/usr/lib')
    .filter((d) => d.includes('-linux-'))
    .sort()
    .map((d) => `/usr/lib/${d}/systemd`);
  let best = 0;
  for (const d of ['/lib/systemd', '/lib64/systemd', ...multiarch, '/usr/lib/systemd', '/usr/lib64/systemd']) {
    for (const f of tree.readdir(d)) {
      const m = /^libsystemd-shared-([0-9]+)(?:[.~-].*)?\.so$/.exec(f);
      if (m) best = Math.max(best, Number(m[1]));
    }
  }
  return best;
}

function customMountOps(cfg: ContainerConfig, host: HostFacts, tree: Tree): Op[] {
  const ops: Op[] = [];
  cfg.customMounts.forEach((m, index) => {
    switch (m.type) {
      case 'bind': {
        const flags = m.sourceInRoot ? OpFlag.SRC_IN_ROOT | OpFlag.MKDIR : OpFlag.MKPOINT;
        ops.push({ kind: 'mount', source: m.source, target: m.destination, mountFlags: MS.BIND | (m.recursive ? MS.REC : 0), flags });
        if (m.readOnly) {
          ops.push(
            m.recursive
              ? { kind: 'setattr', target: m.destination, mountFlags: MOUNT_ATTR.RDONLY, flags: OpFlag.RECURSIVE }
              : { kind: 'remount', target: m.destination, mountFlags: MS.BIND | MS.RDONLY },
          );
        }
        break;
      }
      case 'tmpfs':
        ops.push({ kind: 'mount', source: 'tmpfs', target: m.destination, fstype: 'tmpfs', mountFlags: MS.NODEV | MS.STRICTATIME, data: m.options, flags: OpFlag.MKDIR });
        break;
      case 'overlay': {
        const scratch = cfg.overlayScratch?.[index];
        const lowers = [...m.lowers].reverse().map((l) => (l.startsWith('+') ? rootDirectory(cfg) + l.slice(1) : l));
        let data: string;
        if (m.readOnly) {
          data = `lowerdir=${[m.upper.startsWith('+') ? rootDirectory(cfg) + m.upper.slice(1) : m.upper, ...lowers].filter((x) => x !== '').map(escapeOverlay).join(':')}`;
        } else {
          const upper = m.upper === '' ? scratch?.upper : m.upper.startsWith('+') ? rootDirectory(cfg) + m.upper.slice(1) : m.upper;
          const work = scratch?.work;
          if (upper === undefined || work === undefined) throw new Error(`overlay on ${m.destination}: no upper/work directory prepared`);
          data = `lowerdir=${lowers.map(escapeOverlay).join(':')},upperdir=${escapeOverlay(upper)},workdir=${escapeOverlay(work)}`;
        }
        ops.push({ kind: 'mount', source: 'overlay', target: m.destination, fstype: 'overlay', mountFlags: m.readOnly ? MS.RDONLY : 0, data, flags: OpFlag.MKDIR });
        break;
      }
      case 'inaccessible': {
        // graceful (an OCI bundle's maskedPaths): a missing path, or a failing mount, is skipped
        if (m.graceful && tree.resolve(m.destination) === undefined) break;
        const graceful = m.graceful ? { flags: OpFlag.OPTIONAL } : {};
        ops.push({
          kind: 'mount',
          source: tree.isDirectory(m.destination) ? `${dirname(host.inaccessibleFile)}/dir` : host.inaccessibleFile,
          target: m.destination,
          mountFlags: MS.BIND,
          ...graceful,
        });
        ops.push({ kind: 'remount', target: m.destination, mountFlags: roFlags, ...graceful });
        break;
      }
      case 'arbitrary':
        // mount_arbitrary(): the file system with the options as its data and no flags, on a made mount point
        ops.push({ kind: 'mount', source: m.source ?? 'none', target: m.destination, fstype: m.fstype, mountFlags: 0, ...(m.options !== undefined ? { data: m.options } : {}), flags: OpFlag.MKDIR });
        break;
    }
  });
  return ops;
}

function escapeOverlay(p: string): string {
  return p.replace(/\\/g, '\\\\').replace(/:/g, '\\:').replace(/,/g, '\\,');
}

/** etc_writable(): a read-only tree's /etc is writable under --volatile=yes (a tmpfs) and overlay */
const isEtcWritable = (cfg: ContainerConfig) => !cfg.readOnly || cfg.volatile === 'yes' || cfg.volatile === 'overlay';

function timezoneOps(cfg: ContainerConfig, host: HostFacts, tree: Tree): Op[] {
  const etcWritable = isEtcWritable(cfg);
  let m = cfg.timezone;
  let zone: string | undefined;
  if (m === 'auto' || m === 'symlink') {
    if (host.localtime === undefined) {
      if (m === 'auto') m = etcWritable ? 'delete' : 'off';
      else return [];
    } else if (host.localtime === 'file') {
      if (m === 'auto') m = etcWritable ? 'copy' : 'bind';
      else return [];
    } else {
      if (m === 'auto') m = etcWritable ? 'symlink' : 'bind';
      const z = /\/usr\/share\/zoneinfo\/(.+)$/.exec(host.localtime.link);
      zone = z?.[1];
    }
  }
  switch (m) {
    case 'off':
      return [];
    case 'delete':
      return [{ kind: 'rmfile', target: '/etc/localtime' }];
    case 'symlink': {
      if (zone === undefined) return [];
      const cur = tree.readlink('/etc/localtime');
      if (cur !== undefined && cur.endsWith(`/zoneinfo/${zone}`)) return [];
      if (tree.resolve(`/usr/share/zoneinfo/${zone}`) !== undefined)
        return [
          { kind: 'rmfile', target: '/etc/localtime' },
          { kind: 'symlink', source: `../usr/share/zoneinfo/${zone}`, target: '/etc/localtime', flags: OpFlag.OPTIONAL },
        ];
      return bindFile('/etc/localtime', '/etc/localtime', MS.BIND | MS.REMOUNT | MS.RDONLY | MS.NOSUID | MS.NODEV);
    }
    case 'bind':
      return bindFile('/etc/localtime', '/etc/localtime', MS.BIND | MS.REMOUNT | MS.RDONLY | MS.NOSUID | MS.NODEV);
    case 'copy':
      return [{ kind: 'write', source: '/etc/localtime', target: '/etc/localtime', data: '', mode: 0o644, flags: OpFlag.OPTIONAL }];
    default:
      return [];
  }
}

function bindFile(hostPath: string, target: string, remountFlags: number): Op[] {
  return [
    { kind: 'mount', source: hostPath, target, mountFlags: MS.BIND, flags: OpFlag.TOUCH | OpFlag.OPTIONAL | OpFlag.WARN },
    { kind: 'remount', target, mountFlags: remountFlags, flags: OpFlag.OPTIONAL },
  ];
}

function resolvConfOps(cfg: ContainerConfig, host: HostFacts): Op[] {
  const etcWritable = isEtcWritable(cfg);
  let m = cfg.resolvConf;
  if (m === 'auto') {
    if (cfg.privateNetwork) m = 'off';
    else if (host.hasResolvConf) m = etcWritable ? 'copy-host' : 'bind-host';
    else m = etcWritable ? 'delete' : 'off';
  }
  if (m === 'off') return [];
  if (m === 'delete') return [{ kind: 'rmfile', target: '/etc/resolv.conf' }];
  const kind = m.split('-')[0];
  const src = m.endsWith('-host') ? '/etc/resolv.conf' : m.endsWith('-static') ? '/usr/lib/systemd/resolv.conf' : m.endsWith('-uplink') ? '/run/systemd/resolve/resolv.conf' : '/run/systemd/resolve/stub-resolv.conf';
  if (kind === 'bind') return bindFile(src, '/etc/resolv.conf', MS.BIND | MS.REMOUNT | MS.RDONLY | MS.NOSUID | MS.NODEV);
  // copy: write through the existing file (not following a symlink at the last component); replace: new file
  const content = src === '/etc/resolv.conf' ? host.resolvConf : undefined;
  if (content === undefined) return [];
  const ops: Op[] = [];
  if (kind === 'replace') ops.push({ kind: 'rmfile', target: '/etc/resolv.conf' });
  ops.push({ kind: 'write', target: '/etc/resolv.conf', data: content, mode: 0o644, flags: OpFlag.OPTIONAL });
  return ops;
}

function devOps(host: HostFacts, userns: boolean): Op[] {
  const ops: Op[] = [{ kind: 'mkdir', target: '/dev/net', mode: 0o755 }];
  for (const [name, node] of Object.entries(host.devNodes)) {
    if (!node) continue;
    ops.push({ kind: 'mknod', source: `/dev/${name}`, target: `/dev/${name}`, mode: node.mode, dev: node.rdev });
    const major = Math.floor(node.rdev / 256) & 0xfff;
    const minor = (node.rdev & 0xff) | ((node.rdev >> 12) & 0xfff00);
    const isChr = (node.mode & 0o170000) === 0o020000;
    const depth = name.includes('/') ? '../../' : '../';
    ops.push({ kind: 'symlink', source: `${depth}${name}`.replace('../../', '../'), target: `/dev/${isChr ? 'char' : 'block'}/${major}:${minor}` });
  }
  ops.push(
    { kind: 'mount', source: 'devpts', target: '/dev/pts', fstype: 'devpts', mountFlags: MS.NOSUID | MS.NOEXEC, data: `newinstance,ptmxmode=0666,mode=620,gid=${userns ? 5 : 5}`, flags: OpFlag.MKDIR },
    { kind: 'symlink', source: 'pts/ptmx', target: '/dev/ptmx' },
    { kind: 'symlink', source: '/proc/self/fd', target: '/dev/fd' },
    { kind: 'symlink', source: '/proc/self/fd/0', target: '/dev/stdin' },
    { kind: 'symlink', source: '/proc/self/fd/1', target: '/dev/stdout' },
    { kind: 'symlink', source: '/proc/self/fd/2', target: '/dev/stderr' },
  );
  return ops;
}

/** Builds the plan. Throws on configurations it cannot express. */
export function planContainer(cfg: ContainerConfig, host: HostFacts, tree: Tree, rnd: PlanRandom): HelperPlan {
  const userns = cfg.userns !== undefined;
  const netns = cfg.privateNetwork;
  const apiRo = (cfg.apiVfsWritable ?? 'no') !== 'yes';
  const apiNetRw = netns || cfg.apiVfsWritable === 'network';
  // arg_clone_ns_flags: IPC, PID and UTS namespaces of its own unless the config shares the host's
  const shared = new Set(cfg.sharedNamespaces ?? []);
  let cloneFlags = CLONE.NEWNS;
  if (!shared.has('pid')) cloneFlags |= CLONE.NEWPID;
  if (!shared.has('uts')) cloneFlags |= CLONE.NEWUTS;
  if (!shared.has('ipc')) cloneFlags |= CLONE.NEWIPC;
  if (netns) cloneFlags |= CLONE.NEWNET;
  if (userns) cloneFlags |= CLONE.NEWUSER;
  if (cfg.useCgns) cloneFlags |= CLONE.NEWCGROUP;

  const api = MS.NOSUID | MS.NOEXEC | MS.NODEV;
  const ops: Op[] = [];

  // base_filesystem_create() on a volatile root (the helper made it: native/volatile.c); the tree itself is
  // completed on the host before the start (src/base-filesystem.ts, boot.ts)
  // (and on an image's root, which only exists in the container's namespace)
  if (cfg.volatile || cfg.image) ops.push(...volatileBaseFilesystemOps(tree, cfg.volatile ?? 'overlay'));
  // --read-only: the whole tree, before the API file systems go on top (bind_remount_recursive); a volatile mode
  // has made what must be read-only so already
  if (cfg.readOnly && !cfg.volatile) ops.push({ kind: 'setattr', target: '/', mountFlags: MOUNT_ATTR.RDONLY, flags: OpFlag.RECURSIVE });

  const customTargets = new Set(cfg.customMounts.map((m) => m.destination));

  // mount_all(), outer part
  if (!customTargets.has('/tmp'))
    ops.push({ kind: 'mount', source: 'tmpfs', target: '/tmp', fstype: 'tmpfs', mountFlags: MS.NOSUID | MS.NODEV | MS.STRICTATIME, data: `mode=1777,${TMPFS_NESTED}`, flags: OpFlag.MKDIR });
  if (netns && !userns) {
    ops.push({ kind: 'mount', source: 'tmpfs', target: '/sys', fstype: 'tmpfs', mountFlags: api, data: 'mode=555,size=4m,nr_inodes=1k', flags: OpFlag.MKDIR });
  } else if (userns && !netns) {
    // sysfs can only be mounted by the owner of the network namespace: under a user namespace sharing the
    // host's network, take the host's sysfs instead (the same instance systemd mounts from outside)
    ops.push(
      { kind: 'mount', source: '/sys', target: '/sys', mountFlags: MS.BIND, flags: OpFlag.MKDIR },
      { kind: 'remount', target: '/sys', mountFlags: MS.BIND | api | (apiRo ? MS.RDONLY : 0) },
    );
  } else {
    ops.push({ kind: 'mount', source: 'sysfs', target: '/sys', fstype: 'sysfs', mountFlags: api | (apiRo ? MS.RDONLY : 0), flags: OpFlag.MKDIR });
  }
  ops.push(
    { kind: 'mount', source: 'tmpfs', target: '/dev', fstype: 'tmpfs', mountFlags: MS.NOSUID | MS.STRICTATIME, data: 'mode=755,size=4m,nr_inodes=64k', flags: OpFlag.MKDIR },
    { kind: 'mount', source: 'tmpfs', target: '/dev/shm', fstype: 'tmpfs', mountFlags: MS.NOSUID | MS.NODEV | MS.STRICTATIME, data: `mode=1777,${TMPFS_NESTED}`, flags: OpFlag.MKDIR },
    { kind: 'mount', source: 'tmpfs', target: '/run', fstype: 'tmpfs', mountFlags: MS.NOSUID | MS.NODEV | MS.STRICTATIME, data: 'mode=755,size=20%,nr_inodes=800k', flags: OpFlag.MKDIR },
    { kind: 'mount', source: '/run/host', target: '/run/host', mountFlags: MS.BIND, flags: OpFlag.MKDIR | OpFlag.SRC_IN_ROOT },
  );
  if (host.osRelease) {
    ops.push(
      { kind: 'mount', source: host.osRelease.path, target: '/run/host/os-release', mountFlags: MS.BIND, flags: OpFlag.TOUCH },
      { kind: 'remount', target: '/run/host/os-release', mountFlags: roFlags },
    );
  }

  ops.push(...devOps(host, userns));
  if (cfg.oci?.devices) ops.push(...ociDeviceOps(cfg.oci.devices));
  // make_inaccessible_nodes(/run/host): a node of every type, mode 0000, for masking from inside the container
  ops.push({ kind: 'mkdir', target: '/run/host/inaccessible', mode: 0o755, flags: OpFlag.OPTIONAL });
  for (const [name, type] of [['reg', S_IFREG], ['dir', 0], ['fifo', S_IFIFO], ['sock', S_IFSOCK], ['chr', S_IFCHR], ['blk', S_IFBLK]] as const)
    ops.push(
      type === 0
        ? { kind: 'mkdir', target: `/run/host/inaccessible/${name}`, mode: 0, flags: OpFlag.OPTIONAL }
        : { kind: 'mknod', target: `/run/host/inaccessible/${name}`, mode: type, dev: 0, flags: OpFlag.OPTIONAL },
    );
  ops.push(...timezoneOps(cfg, host, tree));
  ops.push(...resolvConfOps(cfg, host));

  // mount_all(), inner part
  ops.push({ kind: 'mount', source: 'proc', target: '/proc', fstype: 'proc', mountFlags: api, flags: OpFlag.MKDIR });
  if (apiRo) {
    ops.push({ kind: 'mount', source: '/proc/sys', target: '/proc/sys', mountFlags: MS.BIND, flags: OpFlag.SRC_IN_ROOT });
    if (apiNetRw) ops.push({ kind: 'mount', source: '/proc/sys/net', target: '/proc/sys/net', mountFlags: MS.BIND, flags: OpFlag.SRC_IN_ROOT });
    ops.push({ kind: 'remount', target: '/proc/sys', mountFlags: roFlags });
    for (const f of ['kallsyms', 'kcore', 'keys', 'sysrq-trigger', 'timer_list']) {
      ops.push(
        { kind: 'mount', source: host.inaccessibleFile, target: `/proc/${f}`, mountFlags: MS.BIND, flags: OpFlag.OPTIONAL },
        { kind: 'remount', target: `/proc/${f}`, mountFlags: roFlags, flags: OpFlag.OPTIONAL },
      );
    }
    for (const d of ['acpi', 'apm', 'asound', 'bus', 'fs', 'irq', 'scsi']) {
      ops.push(
        { kind: 'mount', source: `/proc/${d}`, target: `/proc/${d}`, mountFlags: MS.BIND, flags: OpFlag.SRC_IN_ROOT | OpFlag.IF_EXISTS | OpFlag.OPTIONAL },
        { kind: 'remount', target: `/proc/${d}`, mountFlags: roFlags, flags: OpFlag.OPTIONAL },
      );
    }
  }
  // mount_all(): not MOUNT_FATAL (a user namespace sharing the host's IPC namespace may not mount its mqueue: EPERM)
  ops.push({ kind: 'mount', source: 'mqueue', target: '/dev/mqueue', fstype: 'mqueue', mountFlags: api, flags: OpFlag.MKDIR | OpFlag.OPTIONAL });
  // outer_child(): the same as $container and $container_uuid, readable for the whole payload
  ops.push(
    { kind: 'write', target: '/run/host/container-manager', data: 'systemd-nspawn\n', mode: 0o644, flags: OpFlag.OPTIONAL },
    { kind: 'write', target: '/run/host/container-uuid', data: `${cfg.uuid}\n`, mode: 0o644, flags: OpFlag.OPTIONAL },
  );
  // setup_notify_child(): the sd_notify socket, bound before /run/host goes read-only; the outer helper reads it
  ops.push({ kind: 'notify', target: NOTIFY_SOCKET_PATH });
  // setup_credentials()
  const creds = credentialOps(cfg.credentials ?? []);
  ops.push(...creds.ops);
  // bind_user_setup()
  ops.push(...bindUserOps(cfg.bindUsers ?? []));
  ops.push({ kind: 'remount', target: '/run/host', mountFlags: roFlags });

  // mount_sysfs(): with a private network, sysfs goes under the tmpfs at /sys, then bound into place
  if (netns && !userns) {
    const ro = apiRo ? MS.RDONLY : 0;
    ops.push({ kind: 'mount', source: 'sysfs', target: '/sys/full', fstype: 'sysfs', mountFlags: api | ro, flags: OpFlag.MKDIR });
    for (const x of ['block', 'bus', 'class', 'dev', 'devices', 'kernel']) {
      ops.push(
        { kind: 'mount', source: `/sys/full/${x}`, target: `/sys/${x}`, mountFlags: MS.BIND, flags: OpFlag.MKDIR | OpFlag.SRC_IN_ROOT },
        { kind: 'remount', target: `/sys/${x}`, mountFlags: MS.BIND | api | ro },
      );
    }
    ops.push({ kind: 'umount', target: '/sys/full' }, { kind: 'rmdir', target: '/sys/full' });
    ops.push({ kind: 'mkdir', target: '/sys/fs/cgroup', mode: 0o755 });
    ops.push({ kind: 'remount', target: '/sys', mountFlags: MS.BIND | api | ro });
  }

  // (on a systemd host mounted last, after the pivot and the registration: HelperPlan.cgnsLate)
  const cgFrom = ops.length;
  ops.push(...cgroupOps(host, tree, cfg.startMode === 'pid2'));
  const cgroupOpsRange = { from: cgFrom, to: ops.length };

  // setup_boot_id(): a fresh boot id, bound over the kernel's
  const bootId = rnd.hex128();
  const bootIdFile = `/run/.#proc-sys-kernel-random-boot-id${bootId.slice(0, 16)}`;
  ops.push(
    { kind: 'write', target: bootIdFile, data: `${formatUuid(bootId)}\n`, mode: 0o444 },
    { kind: 'mount', source: bootIdFile, target: '/proc/sys/kernel/random/boot_id', mountFlags: MS.BIND, flags: OpFlag.SRC_IN_ROOT },
    { kind: 'remount', target: '/proc/sys/kernel/random/boot_id', mountFlags: roFlags },
    { kind: 'rmfile', target: bootIdFile },
  );
  // setup_kmsg(): /proc/kmsg becomes a FIFO nobody writes to
  const kmsg = `/run/.#proc-kmsg${rnd.hex128().slice(0, 16)}`;
  ops.push(
    { kind: 'mknod', target: kmsg, mode: S_IFIFO | 0o600, dev: 0 },
    { kind: 'mount', source: kmsg, target: '/proc/kmsg', mountFlags: MS.BIND, flags: OpFlag.SRC_IN_ROOT },
    { kind: 'rmfile', target: kmsg },
  );

  ops.push(...customMountOps(cfg, host, tree));

  // setup_journal(): as decided with the host's facts (src/journal.ts); without them, --link-journal=auto makes
  // /var/log/journal (a read-only tree is fine)
  if (cfg.journalOps) ops.push(...cfg.journalOps);
  else if ((cfg.linkJournal ?? 'auto') === 'auto')
    for (const d of ['/var', '/var/log', '/var/log/journal']) ops.push({ kind: 'mkdir', target: d, mode: 0o755, flags: OpFlag.OPTIONAL });

  if (cfg.user) {
    // change_uid_gid(): mkdir_safe() gives a missing home to the user, and leaves an existing one as it is
    const home = cfg.user.home;
    const underMount = cfg.customMounts.some((m) => home === m.destination || home.startsWith(`${m.destination}/`));
    if (underMount || !tree.lexists(home)) {
      // mkdir_parents(home, 0775): missing parents get 0775 (existing ones are left alone)
      const parts = home.split('/').filter((p) => p !== '');
      for (let i = 1; i < parts.length; i++)
        ops.push({ kind: 'mkdir', target: `/${parts.slice(0, i).join('/')}`, mode: 0o775, flags: OpFlag.OPTIONAL });
      ops.push(
        { kind: 'mkdir', target: home, mode: 0o755, flags: OpFlag.OPTIONAL },
        { kind: 'chown', target: home, mode: cfg.user.uid, dev: cfg.user.gid, flags: OpFlag.OPTIONAL },
      );
    }
  }

  if (cfg.console !== 'pipe') ops.push({ kind: 'console', target: '/dev/console' });

  const env = buildEnvironment(cfg, host);
  const plan: HelperPlan = {
    root: cfg.directory,
    cloneFlags,
    sync: false,
    // reset_audit_loginuid(): only with a PID namespace of its own
    ...(shared.has('pid') ? {} : { resetLoginuid: true }),
    // setup_hostname(): only in a UTS namespace of its own
    ...(shared.has('uts') ? {} : { hostname: cfg.hostname }),
    ops,
    console: cfg.console,
    rlimits: buildRlimits(cfg, host),
    cgroupMounts: cgroupOpsRange,
    asPid2: cfg.startMode === 'pid2',
    loopback: netns,
    ...(cfg.volatile ? { volatileMode: cfg.volatile } : {}),
    ...(creds.blobs.length ? { blobs: creds.blobs } : {}),
    ...(cfg.image ? { imageSteps: cfg.image.steps } : {}),
    ...(cfg.pivotRoot ? { pivotRoot: { ...cfg.pivotRoot } } : {}),
    env,
    argv: [],
    searchPath: false,
    fallback: [],
    stubEnv: ['container=systemd-nspawn', `container_uuid=${cfg.uuid.replace(/-/g, '')}`],
  };
  // the helper writes the map itself (no sync with Node needed for it)
  if (cfg.userns) plan.usermap = { shift: cfg.userns.shift, range: cfg.userns.range };
  if (cfg.userns && cfg.bindUsers?.length) plan.bindMaps = bindUserMaps(cfg.bindUsers);
  if (cfg.personality !== undefined) plan.personality = PERSONALITY[cfg.personality];
  if (cfg.noNewPrivileges) plan.noNewPrivileges = true;
  if (cfg.oci?.consoleSize) plan.consoleSize = { ...cfg.oci.consoleSize };
  if (!cfg.quiet && (cfg.console === 'interactive' || cfg.console === 'read-only')) plan.finalNewline = true;
  if (cfg.oomScoreAdjust !== undefined) plan.oomScoreAdjust = cfg.oomScoreAdjust;
  if (cfg.cpuAffinity?.length) plan.cpuAffinity = [...cfg.cpuAffinity];
  if (cfg.user) {
    plan.uid = cfg.user.uid;
    plan.gid = cfg.user.gid;
    plan.groups = cfg.user.groups;
  } else if (cfg.oci) applyOciUser(plan, cfg.oci);
  else {
    plan.uid = 0;
    plan.gid = 0;
    plan.groups = [];
  }
  // drop_capabilities() for the payload's UID, masked against the bounding set the container starts with: the
  // host's, or a full one in a user namespace of its own (capability_quintet_mangle())
  const caps = cfg.capabilities ?? defaultContainerCapabilities({ privateNetwork: netns, ...(cfg.userns ? { usernsShift: cfg.userns.shift } : {}) });
  const hostCaps = host.capabilities ?? { bounding: capabilitiesUpTo(63), lastCap: 63 };
  const startBounding = userns ? capabilitiesUpTo(hostCaps.lastCap) : hostCaps.bounding;
  if (cfg.oci?.capabilities) plan.capabilities = ociCapabilityQuintet(cfg.oci.capabilities, caps, plan.uid ?? 0, startBounding, hostCaps.lastCap);
  else {
    const { quintet, dropped } = capabilityQuintet(caps, plan.uid ?? 0, startBounding, hostCaps.lastCap);
    plan.capabilities = quintet;
    if (dropped !== 0n && !cfg.quiet) plan.capabilityWarning = CAPABILITIES_NOT_IN_BOUNDING_SET;
  }
  plan.sessionKeyring = true; // setup_keyring(): a session keyring of its own, so the caller's session keys do not leak in
  // the bundle's filter in place of nspawn's (oci-bundle.ts), or setup_seccomp() with arg_caps_retain, then seccomp_suppress_sync()
  if (cfg.seccomp !== false && cfg.oci?.seccomp) applyOciSeccomp(plan, cfg.oci.seccomp, cfg.suppressSync === true);
  else if (cfg.seccomp !== false) {
    const filter = nspawnSeccompBytes({
      retainedCapabilities: caps.retain,
      allow: cfg.systemCallFilter?.allow ?? [],
      deny: cfg.systemCallFilter?.deny ?? [],
      suppressSync: cfg.suppressSync ?? false,
    });
    plan.seccomp = filter.bytes;
    if (filter.warnings.length > 0) plan.seccompWarnings = filter.warnings;
  }
  const home = cfg.user?.home ?? '/root';
  if (cfg.workingDirectory !== undefined) plan.chdir = cfg.workingDirectory;

  if (cfg.startMode === 'boot') {
    // inner_child(): the first init that execs, with the arguments after the options (argv[0] is its path)
    plan.argv = [];
    for (const init of INIT_CANDIDATES) plan.fallback.push([init, init]);
    if (cfg.parameters.length > 0) plan.fallbackArgs = [...cfg.parameters];
  } else if (cfg.parameters.length > 0) {
    plan.argv = [...cfg.parameters];
    plan.searchPath = true;
  } else {
    if (cfg.workingDirectory === undefined) plan.chdir = home;
    plan.fallback.push(['/bin/bash', '-bash'], ['/bin/sh', '-sh']);
  }
  return plan;
}

function formatUuid(hex: string): string {
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}
