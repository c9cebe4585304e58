/**
 * The plan the native helper executes, and its wire format. The helper has no policy: everything it does is
 * listed here. Keep the constants in sync with native/nspawn-helper.c.
 */

export const CLONE = {
  NEWNS: 0x00020000,
  NEWCGROUP: 0x02000000,
  NEWUTS: 0x04000000,
  NEWIPC: 0x08000000,
  NEWUSER: 0x10000000,
  NEWPID: 0x20000000,
  NEWNET: 0x40000000,
} as const;

export const MS = {
  RDONLY: 1,
  NOSUID: 2,
  NODEV: 4,
  NOEXEC: 8,
  REMOUNT: 32,
  BIND: 4096,
  REC: 16384,
  PRIVATE: 1 << 18,
  SLAVE: 1 << 19,
  SHARED: 1 << 20,
  STRICTATIME: 1 << 24,
} as const;

/** mount_setattr(2) attribute bits */
export const MOUNT_ATTR = { RDONLY: 1, NOSUID: 2, NODEV: 4, NOEXEC: 8 } as const;

/** Op flags; see OPF_* in the helper. */
export const OpFlag = {
  MKDIR: 1,
  TOUCH: 2,
  SRC_IN_ROOT: 4,
  OPTIONAL: 8,
  RECURSIVE: 16,
  IF_EXISTS: 32,
  /** with OPTIONAL: report a failure as a warning line */
  WARN: 128,
  /** make the mount point a directory or a file, like the (host) source */
  MKPOINT: 64,
} as const;

export type OpKind =
  | 'mount'
  | 'remount'
  | 'setattr'
  | 'mkdir'
  | 'mknod'
  | 'symlink'
  | 'write'
  | 'rmfile'
  | 'chown'
  | 'umount'
  | 'rmdir'
  | 'console'
  /** an AF_UNIX datagram socket bound at target (SO_PASSCRED), passed to the outer helper for sd_notify messages */
  | 'notify';

/** One step of the container's file system setup. Paths in `target` are inside the container root. */
export interface Op {
  kind: OpKind;
  flags?: number;
  /** host path (or fs source name); a container path with SRC_IN_ROOT; the link text for symlink; host node for mknod fallback */
  source?: string;
  target: string;
  fstype?: string;
  mountFlags?: number;
  /** mount data, or file content for 'write' */
  data?: string;
  mode?: number;
  dev?: number;
}

export type HelperConsole = 'pipe' | 'interactive' | 'read-only' | 'passive';

export interface HelperRlimit {
  resource: number;
  soft: bigint | 'infinity';
  hard: bigint | 'infinity';
}

export interface HelperPlan {
  root: string;
  cloneFlags: number;
  /** wait for "go" from Node after the clone (uid maps, network links) */
  sync: boolean;
  /** the helper writes `0 shift range` to the container's uid_map and gid_map before it lets it go */
  usermap?: { shift: number; range: number };
  /** the root as an idmapped mount (on-disk 0..range-1 seen as shift..): private users with ownership "map" */
  idmap?: { shift: number; range: number };
  hostname?: string;
  ops: Op[];
  console: HelperConsole;
  personality?: number;
  rlimits: HelperRlimit[];
  uid?: number;
  gid?: number;
  /** supplementary groups; undefined leaves them as they are */
  groups?: number[];
  chdir?: string;
  asPid2: boolean;
  loopback: boolean;
  env: string[];
  /** empty means: try `fallback` shells */
  argv: string[];
  /** execvpe() with the container's PATH when argv[0] has no slash */
  searchPath: boolean;
  fallback: Array<[path: string, argv0: string]>;
  /**
   * After forwarding the console (interactive, read-only): a newline on stdout when the container's output did not
   * end with one, so that nspawn's last messages start on a line of their own (systemd-nspawn unless --quiet)
   */
  finalNewline?: boolean;
  /** arguments after argv0 for every `fallback` candidate (-b: init's arguments) */
  fallbackArgs?: string[];
  /**
   * sd_notify towards our own $NOTIFY_SOCKET, as systemd-nspawn does it (the helper sends: Node cannot send unix
   * datagrams). With notifyReady READY=1 waits for the container's init; on its end STOPPING=1 with "Restarting..."
   * when a reboot is going to end nspawn (restartExits: --keep-unit), nothing when nspawn boots it again.
   */
  notify?: { notifyReady: boolean; restartExits: boolean };
  /** the helper (and so the container) outlives the process that started it (nspawnd's containers survive its restart) */
  survive?: boolean;
  /** the helper's stdout and stderr (the container's console) become this file, opened for appending (a helper started before its plan: nspawnd's warm ones) */
  stdoutPath?: string;
  /** environment of the --as-pid2 stub init */
  stubEnv: string[];
  /** PR_SET_NO_NEW_PRIVS before exec */
  noNewPrivileges?: boolean;
  /** written to /proc/self/oom_score_adj */
  oomScoreAdjust?: number;
  /** sched_setaffinity() */
  cpuAffinity?: number[];
  /**
   * The payload's five capability sets (see src/caps.ts), applied after the UID change: PR_SET_KEEPCAPS before
   * it, then the ambient set, capset() and PR_CAPBSET_DROP. Undefined leaves the capabilities as they are.
   */
  capabilities?: { bounding: bigint; effective: bigint; permitted: bigint; inheritable: bigint; ambient: bigint };
  /** reported as a warning line when the capabilities are applied (systemd's "not in the current bounding set") */
  capabilityWarning?: string;
  /** KEYCTL_JOIN_SESSION_KEYRING: the container gets a session keyring of its own (setup_keyring()) */
  sessionKeyring?: boolean;
  /**
   * The seccomp filter (src/seccomp/): a struct sock_filter array, installed after the rlimits and before the UID
   * change, as inner_child() installs its filters. Undefined: none.
   */
  seccomp?: Uint8Array;
  /** what systemd-nspawn logs while it builds its filters, reported when the filter is installed */
  seccompWarnings?: string[];
  /**
   * The device policy on cgroup2 (src/devices/): a BPF_PROG_TYPE_CGROUP_DEVICE program (struct bpf_insn array)
   * that the outer helper loads and attaches to CGROUP (the container's directory in the unified hierarchy) before
   * it clones, and detaches when the container has ended. OPTIONAL: a failure is a warning (the v1 devices
   * controller has the same rules), not an error.
   */
  deviceProgram?: { cgroup: string; program: Uint8Array; optional?: boolean };
  /**
   * The container's cgroup (src/cgroup.ts made it): per v1 hierarchy the scope's `tasks` file and the helper's own,
   * and the unified scope's directory with the helper's cgroup.procs. The helper moves itself into the v1 scopes,
   * clones PID 1 into the unified one and goes back (native/cgroup.c). Undefined: the container stays where the
   * helper is.
   */
  cgroup?: { v1: Array<{ scope: string; home: string }>; unified?: { scope: string; home: string } };
  /**
   * Cgroup changes the helper makes before anything else but the locks (src/cgroup.ts recordingCgroupFs(): the
   * container's scope as createMachineCgroup() would make it), when nspawn hands over to it.
   */
  cgroupOps?: Array<
    | { kind: 'mkdir'; path: string; exclusive: boolean; busy: string }
    | { kind: 'write'; path: string; data: string[] }
    | { kind: 'chown'; path: string; uid: number; gid: number }
  >;
  /**
   * Lock files the helper takes before anything else and holds for the container's life (make_lock_file() of
   * systemd: an OFD lock, the file removed by its last holder), e.g. the image locks; BUSY is the error when one is
   * held elsewhere. Taken by the helper, a lock outlives a hand-over.
   */
  locks?: Array<{ path: string; exclusive: boolean; busy: string }>;
  /**
   * Locks nspawn holds already (an OFD lock on FD, not close-on-exec) and hands over with the exec: the helper
   * holds them from then on and releases them as it does its own (only meaningful in a hand-over).
   */
  inheritedLocks?: Array<{ fd: number; path: string; exclusive: boolean }>;
  /**
   * btrfs subvolumes (-x's snapshot) the helper destroys after the container ends, before it releases the locks:
   * only in a hand-over (otherwise nspawn removes them).
   */
  removeSubvolumes?: string[];
  /**
   * Mount points the helper unmounts after the container ends (MNT_DETACH), in this order (innermost first), before
   * removeTrees and before it releases the locks: -x's overlay on SNAPSHOT/root, then the tmpfs on SNAPSHOT when it
   * has one. Only a mount at exactly that path with the source `nspawn-ephemeral` and the type overlay or tmpfs is
   * unmounted. Only in a hand-over (otherwise nspawn removes them).
   */
  removeMounts?: string[];
  /**
   * Directory trees the helper deletes after removeMounts (-x's overlay directory): only one named `.#machine.*`,
   * never following a symlink, never crossing into another mount (one mounted below makes it refuse). Only in a
   * hand-over.
   */
  removeTrees?: string[];
  /**
   * Hand-over (src/handoff.ts): the helper replaced nspawn's own process (execve) and supervises the container to
   * its end on its own: the end-of-run steps Node would take, as data.
   */
  handoff?: HandoffPlan;
  /**
   * The container side of the network (src/network.ts), applied by the container's child after the sync point and
   * before the payload: links up, addresses, default routes, in this order (native/netcfg.c). netns: the
   * --network-namespace-path= the helper joins before it clones.
   */
  net?: { steps: NetStep[]; netns?: string };
}

/** What the helper does after the container's end when it runs in nspawn's place (see src/handoff.ts). */
export interface HandoffPlan {
  /** run.ts's end messages, "{}" standing for the exit code or the signal's name */
  messages: { ok: string; fail: string; shutdown: string; reboot: string; signal: string; halt: string };
  /** signalName() of signals 1..64, for the "terminated by signal" message */
  signalNames: string[];
  /** -q: no end messages but errors */
  quiet: boolean;
  /** the first SIGINT/SIGTERM sends this to the container (0: SIGKILL at once) */
  killSignal: number;
  /** --keep-unit: a reboot ends with exit status 133 instead of booting again */
  keepUnit: boolean;
  /** the scope's directories to remove (deepest first is the helper's job), killing what is left in them */
  removeCgroups: string[];
  /** cgroup.kill of the unified scope, when the kernel has it */
  killFile?: string;
  /** machine.slice directories to try to remove once the scope is gone (made by an nspawn) */
  removeSlices: string[];
  /** the marker file that says an nspawn made machine.slice: removed with the last slice */
  sliceMarker?: string;
  /** the command line that starts nspawn again for a reboot (the first SIGHUP-death) */
  reexec: string[];
}


export type NetStep =
  | { kind: 'up'; ifname: string }
  | { kind: 'address'; ifname: string; family: 4 | 6; address: string; prefixLength: number }
  | { kind: 'route'; ifname: string; family: 4 | 6; gateway: string };

const n = (x: number | bigint | undefined) => String(x ?? 0);

/** Serializes a plan: NUL-terminated tokens, framed by its length and a newline. */
export function encodePlan(p: HelperPlan): Buffer {
  const body = Buffer.from(planTokens(p).map((x) => x + '\0').join(''), 'utf8');
  return Buffer.concat([Buffer.from(`${body.length}\n`), body]);
}

/** A plan as its tokens (the helper's argv after --handoff, or NUL-terminated on fd 3). */
export function planTokens(p: HelperPlan): string[] {
  const t: string[] = ['NSPAWN-PLAN-1', 'root', p.root, 'clone', n(p.cloneFlags)];
  if (p.sync) t.push('sync');
  if (p.usermap) t.push('usermap', n(p.usermap.shift), n(p.usermap.range));
  if (p.idmap) t.push('idmap', n(p.idmap.shift), n(p.idmap.range));
  if (p.hostname !== undefined) t.push('hostname', p.hostname);
  for (const o of p.ops)
    t.push(
      'op',
      o.kind,
      n(o.flags),
      o.source ?? '',
      o.target,
      o.fstype ?? '',
      n(o.mountFlags),
      o.data ?? '',
      n(o.mode),
      n(o.dev),
    );
  t.push('console', p.console);
  if (p.personality !== undefined) t.push('personality', n(p.personality));
  for (const r of p.rlimits) t.push('rlimit', n(r.resource), String(r.soft), String(r.hard));
  if (p.uid !== undefined) t.push('uid', n(p.uid));
  if (p.gid !== undefined) t.push('gid', n(p.gid));
  if (p.groups !== undefined) {
    if (p.groups.length === 0) t.push('nogroups');
    for (const g of p.groups) t.push('group', n(g));
  }
  if (p.chdir !== undefined) t.push('chdir', p.chdir);
  if (p.noNewPrivileges) t.push('nnp');
  if (p.oomScoreAdjust !== undefined) t.push('oom', String(p.oomScoreAdjust));
  for (const c of p.cpuAffinity ?? []) t.push('cpu', String(c));
  if (p.capabilities) {
    const c = p.capabilities;
    t.push('caps', ...[c.bounding, c.effective, c.permitted, c.inheritable, c.ambient].map((m) => m.toString(16).padStart(16, '0')));
  }
  if (p.capabilityWarning !== undefined) t.push('capwarn', p.capabilityWarning);
  if (p.sessionKeyring) t.push('keyring');
  if (p.seccomp) t.push('seccomp', Buffer.from(p.seccomp.buffer, p.seccomp.byteOffset, p.seccomp.byteLength).toString('hex'));
  for (const w of p.seccompWarnings ?? []) t.push('seccompwarn', w);
  for (const c of p.cgroup?.v1 ?? []) t.push('cgv1', c.scope, c.home);
  if (p.cgroup?.unified) t.push('cgv2', p.cgroup.unified.scope, p.cgroup.unified.home);
  if (p.deviceProgram) {
    const d = p.deviceProgram;
    t.push('devbpf', d.optional ? '1' : '0', d.cgroup, Buffer.from(d.program.buffer, d.program.byteOffset, d.program.byteLength).toString('hex'));
  }
  if (p.asPid2) t.push('pid2');
  if (p.loopback) t.push('loopback');
  for (const st of p.net?.steps ?? []) {
    if (st.kind === 'up') t.push('netup', st.ifname);
    else if (st.kind === 'address') t.push('netaddr', st.ifname, String(st.family), st.address, String(st.prefixLength));
    else t.push('netroute', st.ifname, String(st.family), st.gateway);
  }
  if (p.net?.netns !== undefined) t.push('netns', p.net.netns);
  if (p.searchPath) t.push('search');
  for (const e of p.env) t.push('env', e);
  for (const e of p.stubEnv) t.push('stubenv', e);
  for (const a of p.argv) t.push('arg', a);
  for (const [path, argv0] of p.fallback) t.push('fallback', path, argv0);
  for (const a of p.fallbackArgs ?? []) t.push('fallbackarg', a);
  if (p.finalNewline) t.push('finalnl');
  if (p.survive) t.push('survive');
  if (p.stdoutPath !== undefined) t.push('stdout', p.stdoutPath);
  if (p.notify) t.push('sdnotify', p.notify.notifyReady ? '1' : '0', p.notify.restartExits ? '1' : '0');
  for (const l of p.locks ?? []) t.push('lock', l.path, l.exclusive ? '1' : '0', l.busy);
  for (const l of p.inheritedLocks ?? []) t.push('lockfd', String(l.fd), l.path, l.exclusive ? '1' : '0');
  for (const s of p.removeSubvolumes ?? []) t.push('hosubvol', s);
  for (const m of p.removeMounts ?? []) t.push('houmount', m);
  for (const d of p.removeTrees ?? []) t.push('hotree', d);
  for (const o of p.cgroupOps ?? []) {
    if (o.kind === 'mkdir') t.push('cgmkdir', o.path, o.exclusive ? '1' : '0', o.busy);
    else if (o.kind === 'write') t.push('cgwrite', o.path, String(o.data.length), ...o.data);
    else t.push('cgchown', o.path, String(o.uid), String(o.gid));
  }
  if (p.handoff) {
    const h = p.handoff;
    t.push('handoff', h.quiet ? '1' : '0', n(h.killSignal), h.keepUnit ? '1' : '0');
    for (const [kind, text] of Object.entries(h.messages)) t.push('homsg', kind, text);
    t.push('hosignames', h.signalNames.join(' '));
    for (const d of h.removeCgroups) t.push('horm', d);
    if (h.killFile !== undefined) t.push('hokill', h.killFile);
    for (const d of h.removeSlices) t.push('hoslice', d);
    if (h.sliceMarker !== undefined) t.push('homarker', h.sliceMarker);
    for (const a of h.reexec) t.push('horeexec', a);
  }
  // (one search of the whole: a loop over hundreds of values costs a start more)
  if (t.join('').includes('\0')) {
    const x = t.find((v) => v.includes('\0'))!;
    throw new Error(`plan value contains a NUL byte: ${JSON.stringify(x.slice(0, 40))}`);
  }
  return t;
}

/** A message from the helper on its control socket. */
export type HelperEvent =
  | { type: 'pid'; pid: number }
  | { type: 'ready' }
  | { type: 'error'; message: string }
  | { type: 'warning'; message: string }
  | { type: 'escape'; action: 'kill' | 'poweroff' | 'reboot' }
  /** a message of the container's init on /run/host/notify: one line per tag nspawn handles (READY=1, STATUS=...) */
  | { type: 'notify'; message: string }
  | { type: 'exit'; code: number }
  | { type: 'signal'; signal: number };

export function parseHelperLine(line: string): HelperEvent | undefined {
  const sp = line.indexOf(' ');
  const word = sp < 0 ? line : line.slice(0, sp);
  const rest = sp < 0 ? '' : line.slice(sp + 1);
  switch (word) {
    case 'pid':
      return { type: 'pid', pid: Number(rest) };
    case 'ready':
      return { type: 'ready' };
    case 'error':
      return { type: 'error', message: rest };
    case 'warning':
      return { type: 'warning', message: rest };
    case 'escape':
      return rest === 'kill' || rest === 'poweroff' || rest === 'reboot' ? { type: 'escape', action: rest } : undefined;
    case 'notify':
      return { type: 'notify', message: rest };
    case 'exit':
      return { type: 'exit', code: Number(rest) };
    case 'signal':
      return { type: 'signal', signal: Number(rest) };
    default:
      return undefined;
  }
}
