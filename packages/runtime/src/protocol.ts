/**
 * The plan the native helper executes, and its wire format. The helper has no policy: everything it does is
 * listed here. Keep the constants in sync with native/plan.h (op flags) and the wire format with native/wire.h: this
 * file (encodePlan(), encodeExecIn(), encodeMoveBack()) and native/wire.c are the only places that know it.
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
  | 'notify'
  /** a new file (O_EXCL, no symlink followed) at target holding the plan's blobs[dev], then given `mode` */
  | 'blob'
  /** chmod(target, mode), no symlink followed */
  | 'chmod';

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
  /**
   * with sync, on a systemd host: PID 1 is cloned where the helper is, without its cgroup namespace; it runs its ops
   * but `cgroupMounts`, pivots into the container's root and only then is reported ("pid N"), so that attach() (the
   * registration: machined, systemd's scope, payload/) never sees it in the host's root; after "go" it makes that
   * namespace (rooted at payload/, where it is then) and runs `cgroupMounts`, as systemd-nspawn 252's inner child does
   */
  cgnsLate?: boolean;
  /**
   * where in `ops` the cgroup file systems are (`from` up to, not including, `to`): with cgnsLate they are mounted
   * after "go", in the container's cgroup namespace (planContainer() sets it; none when absent)
   */
  cgroupMounts?: { from: number; to: number };
  /**
   * reset_audit_loginuid(): the helper sets its audit login UID to unset (4294967295) before the clone, so that the
   * container's processes inherit none (systemd-nspawn does it for a container with a PID namespace of its own)
   */
  resetLoginuid?: boolean;
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
  /** --volatile=yes|state|overlay: setup_volatile_mode() on the root before the ops (native/volatile.c) */
  volatileMode?: 'yes' | 'state' | 'overlay';
  /**
   * --bind-user: with `usermap`, these container UIDs/GIDs map to the host users' own instead of the range's
   * (make_uid_map_string()); in increasing order
   */
  bindMaps?: Array<{ uid: number; hostUid: number; gid: number; hostGid: number }>;
  /** contents of the files the 'blob' ops write, by index (credentials: any bytes) */
  blobs?: Uint8Array[];
  /**
   * -i/--image: the image's mounts, made in the container's mount namespace on the (empty) root directory before the
   * volatile mode and the ops (native/image.c), each target resolved inside the root mounted so far
   */
  imageSteps?: ImageMountStep[];
  /** --pivot-root=NEW[:OLD]: setup_pivot_root() before the volatile mode and the ops (native/pivot.c) */
  pivotRoot?: { newRoot: string; oldRoot?: string };
  env: string[];
  /**
   * The console's size (an OCI bundle's process.consoleSize): the pty gets it instead of the caller's terminal's, and
   * keeps it when that terminal is resized (pty_forward_set_width_height())
   */
  consoleSize?: { width: number; height: number };
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
   * An OCI profile's filter: FLAGS for seccomp(2) (SECCOMP_FILTER_FLAG_TSYNC, _LOG, _SPEC_ALLOW; 0: prctl() as
   * systemd), and LATE: installed last, after no_new_privs and just before exec, as runc loads a profile when the
   * process has noNewPrivileges (without it, where systemd's goes: before the UID change, while still privileged).
   */
  seccompOci?: { flags: number; late: boolean };
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
   * Descriptors this process keeps open across its execve() for the helper to hold until it exits, never passed to the
   * container (a hand-over of -i: the image's loop devices, AUTOCLEAR, which must stay the image's until the
   * container's mounts hold them; they detach once the helper and those mounts are gone).
   */
  heldFds?: number[];
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
  /** existing namespaces the helper joins by path before it clones (type: a CLONE.NEW* flag; native/nsjoin.c) */
  nsJoin?: Array<{ type: number; path: string }>;
  /**
   * With sync: the container waits at its sync point after its setup (mounts, pivot_root, console, rlimits), just
   * before seccomp, the credentials and exec, as runc's exec fifo (OCI create); the `pid` event (and so attach())
   * comes once it is there. Without it the container waits right after the clone.
   */
  lateSync?: boolean;
  /**
   * With lateSync: once the payload has been executed the helper leaves, its `left` event instead of an exit: the
   * container's PID 1 goes to the nearest subreaper (conmon, containerd's shim wait for it as runc leaves it to them),
   * without a parent-death signal. Its end is no longer reported.
   */
  leaveAfterStart?: boolean;
  /**
   * Host bind mounts keep the mount IDs of their copies, made before the clone (native/mount.c
   * detach_host_sources()), so they come first in the container's /proc/self/mountinfo. Without it each is replaced
   * by a copy of itself once attached, so that the mount table keeps the order of the ops (as systemd-nspawn's and
   * runc's), which costs an RCU grace period per bind (its detach) on the container's start path.
   */
  bindCopiesFirst?: boolean;
  /**
   * Descriptors the helper was started with (spawnHelper()'s extraFds: 4, 5, ...): CONSOLESOCKET, a connected
   * AF_UNIX socket the console's master is sent to (SCM_RIGHTS, as runc's --console-socket; the helper keeps no copy),
   * and PASS, which become 3, 4, ... of the payload (OCI --preserve-fds, LISTEN_FDS). With this record every other
   * descriptor from 3 + PASS's length on is closed at the payload's exec.
   */
  ociFds?: { consoleSocket?: number; pass: number[] };
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


/**
 * One mount of a disk image (@nspawn/image's plan, as the helper takes it). Targets and the overlay's directories
 * are relative to the root ('' is the root itself). mount: the file system on SOURCE (a loop device the caller keeps
 * open for the run); tmpfs: SOURCE names it; mkdir: TARGET with MODE; overlay: DATA is its lowerdir/upperdir/workdir
 * (relative to the root); move: the mount at SOURCE (relative) moved onto TARGET.
 */
export interface ImageMountStep {
  /** barrier: the root (and /usr) are in place; --pivot-root= and --volatile= apply here, before the steps after it */
  op: 'mount' | 'tmpfs' | 'mkdir' | 'overlay' | 'move' | 'barrier';
  source: string;
  target: string;
  fstype: string;
  data: string;
  /** MS_* flags */
  flags: number;
  mode: number;
  /** make a missing target (mode 0755) first */
  mkdir: boolean;
  /**
   * mount: an idmapped mount, on-disk 0..range-1 seen as the container's range (plan.usermap), made by the outer
   * helper with the host's privileges (-U with ownership map: systemd's DISSECT_IMAGE_MOUNT_IDMAPPED)
   */
  idmap?: boolean;
}

export type NetStep =
  | { kind: 'up'; ifname: string }
  | { kind: 'address'; ifname: string; family: 4 | 6; address: string; prefixLength: number }
  | { kind: 'route'; ifname: string; family: 4 | 6; gateway: string };

// ---------- the wire format (native/wire.h reads it; only that file, native/wire.c and this part know it) ----------
//
//   message = "NSPW" u16:version u16:kind u32:body-length body
//   body    = record* END;  record = u16:id u32:payload-length payload (the record's fields, in order)
//   fields  u u64 | i i64 | b bool (1 byte) | s u32:n, n bytes (no NUL), NUL | x u32:n, n bytes
//           | S u32:count, strings | U u32:count, u64s                  (all little-endian)
//
// One record per plan key, typed: a value is always a field of its record, never a key, whatever it says.

const WIRE_VERSION = 1;
const KIND = { plan: 1, execIn: 2, moveBack: 3 } as const;

/** Record ids of a plan (native/wire.h P_*): their order is the wire's, never renumber. */
const P = {
  END: 0, ROOT: 1, CLONE: 2, SYNC: 3, USERMAP: 4, IDMAP: 5, HOSTNAME: 6, OP: 7, CONSOLE: 8, PERSONALITY: 9,
  RLIMIT: 10, UID: 11, GID: 12, GROUPS: 13, CHDIR: 14, NNP: 15, OOM: 16, CPUS: 17, CAPS: 18, CAPWARN: 19,
  KEYRING: 20, SECCOMP: 21, SECCOMPWARN: 22, CGV1: 23, CGV2: 24, DEVBPF: 25, PID2: 26, LOOPBACK: 27, NETUP: 28, NETADDR: 29,
  NETROUTE: 30, NETNS: 31, SEARCH: 32, ENV: 33, STUBENV: 34, ARGV: 35, FALLBACK: 36, FALLBACKARGS: 37, FINALNL: 38, SURVIVE: 39,
  STDOUT: 40, SDNOTIFY: 41, LOCK: 42, LOCKFD: 43, RMSUBVOL: 44, RMMOUNT: 45, RMTREE: 46, CGMKDIR: 47, CGWRITE: 48, CGCHOWN: 49,
  HANDOFF: 50, HOMSGS: 51, HOSIGNAMES: 52, HORM: 53, HOKILL: 54, HOSLICE: 55, HOMARKER: 56, HOREEXEC: 57, NSJOIN: 58,
  VOLATILE: 59, BLOB: 60, BINDMAP: 61, IMAGE: 62, HOLDFD: 63, PIVOTROOT: 64, OCIFDS: 65, LATESYNC: 66, CGNSLATE: 67, WINSIZE: 68, SECCOMPOCI: 69, LOGINUID: 70, BINDCOPIES: 71,
} as const;

/** Record ids of an exec-in request (native/wire.h X_*). */
const X = { END: 0, LEADER: 1, COMMAND: 2, ENV: 3, UID: 4, GID: 5, GROUPS: 6, CWD: 7, CGROUPS: 8, PTY: 9, BIND: 10, CONSOLESOCK: 11, PASSFDS: 12 } as const;

/** Record ids of a move-back request (native/wire.h M_*). */
const M = { END: 0, IFNAMES: 1 } as const;

const U64_MAX = (1n << 64n) - 1n;
/** String.prototype.isWellFormed() (ES2024; Node 20 and later) */
type WellFormed = { isWellFormed(): boolean };
/** Buffer#utf8Write(): the native write under Buffer#write(), without its argument checks */
type Utf8Write = { utf8Write(s: string, offset: number): number };
const TWO32 = 2 ** 32;

/**
 * A message being written: records of typed fields into one growing buffer. (Bytes are stored by hand rather than with
 * Buffer's write*() methods: a start runs this once, cold, where each of those validating calls costs microseconds.)
 */
class WireWriter {
  private b: Buffer;
  private p = 12;
  private rec = 0;
  constructor(private readonly kind: number, size = 16384) {
    this.b = Buffer.allocUnsafe(size);
  }
  private room(n: number): void {
    if (this.p + n <= this.b.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.b.length * 2, this.p + n));
    grown.set(this.b.subarray(0, this.p));
    this.b = grown;
  }
  private w32(v: number, at: number): void {
    const b = this.b;
    b[at] = v;
    b[at + 1] = v >>> 8;
    b[at + 2] = v >>> 16;
    b[at + 3] = v >>> 24;
  }
  /** starts record ID (the previous one is complete) */
  r(id: number): this {
    this.room(6);
    this.b[this.p] = id;
    this.b[this.p + 1] = id >>> 8;
    this.rec = this.p + 2;
    this.p += 6;
    return this;
  }
  /** ends the current record: its length */
  e(): this {
    this.w32(this.p - this.rec - 4, this.rec);
    return this;
  }
  u(v: number | bigint, what: string): this {
    this.room(8);
    let lo: number;
    let hi: number;
    if (typeof v === 'bigint') {
      if (v < 0n || v > U64_MAX) throw new Error(`plan value out of range: ${what} ${v}`);
      lo = Number(v & 0xffffffffn);
      hi = Number(v >> 32n);
    } else {
      if (!Number.isSafeInteger(v) || v < 0) throw new Error(`plan value out of range: ${what} ${v}`);
      lo = v % TWO32;
      hi = (v - lo) / TWO32;
    }
    this.w32(lo, this.p);
    this.w32(hi, this.p + 4);
    this.p += 8;
    return this;
  }
  i(v: number, what: string): this {
    if (!Number.isSafeInteger(v)) throw new Error(`plan value out of range: ${what} ${v}`);
    return this.u(v < 0 ? BigInt(v) + U64_MAX + 1n : v, what);
  }
  b1(v: boolean | undefined): this {
    this.room(1);
    this.b[this.p++] = v ? 1 : 0;
    return this;
  }
  s(v: string): this {
    // C strings on the other side: a NUL would cut the value short; a lone surrogate would not arrive as sent
    if (v.includes('\0')) throw new Error(`plan value contains a NUL byte: ${JSON.stringify(v.slice(0, 40))}`);
    if (!(v as unknown as WellFormed).isWellFormed()) throw new Error(`plan value is not valid Unicode (a lone surrogate): ${JSON.stringify(v.slice(0, 40))}`);
    this.room(5 + v.length * 3);
    const n = v.length === 0 ? 0 : (this.b as unknown as Utf8Write).utf8Write(v, this.p + 4);
    this.w32(n, this.p);
    this.p += 4 + n;
    this.b[this.p++] = 0;
    return this;
  }
  x(v: Uint8Array): this {
    this.room(4 + v.byteLength);
    this.w32(v.byteLength, this.p);
    this.b.set(v, this.p + 4);
    this.p += 4 + v.byteLength;
    return this;
  }
  S(v: readonly string[]): this {
    this.room(4);
    this.w32(v.length, this.p);
    this.p += 4;
    for (const x of v) this.s(x);
    return this;
  }
  U(v: readonly number[], what: string): this {
    this.room(4);
    this.w32(v.length, this.p);
    this.p += 4;
    for (const x of v) this.u(x, what);
    return this;
  }
  /** records of one string field each: ID for every value of VALUES */
  each(id: number, values: readonly string[] | undefined): this {
    for (const v of values ?? []) this.r(id).s(v).e();
    return this;
  }
  /** the whole message: header, the records, END */
  done(): Buffer {
    this.r(0).e();
    const b = this.b;
    b[0] = 0x4e; // N
    b[1] = 0x53; // S
    b[2] = 0x50; // P
    b[3] = 0x57; // W
    b[4] = WIRE_VERSION;
    b[5] = 0;
    b[6] = this.kind;
    b[7] = 0;
    this.w32(this.p - 12, 8);
    return b.subarray(0, this.p);
  }
}

const limit = (v: bigint | 'infinity') => (v === 'infinity' ? U64_MAX : v);

/**
 * A plan as the helper reads it (on fd 3, or from the memfd of a hand-over): framed and typed (see above), so that
 * nothing in a value, whatever it says, can be read as an instruction. Throws on a value the helper could not take
 * as it is (a NUL byte, a lone surrogate, a number out of range).
 */
export function encodePlan(p: HelperPlan): Buffer {
  const w = new WireWriter(KIND.plan, 16384 + p.ops.length * 96);
  w.r(P.ROOT).s(p.root).e();
  w.r(P.CLONE).u(p.cloneFlags, 'clone flags').e();
  if (p.sync) w.r(P.SYNC).e();
  if (p.cgnsLate) {
    const cg = p.cgroupMounts ?? { from: p.ops.length, to: p.ops.length };
    w.r(P.CGNSLATE).u(cg.from, 'cgroupMounts').u(cg.to, 'cgroupMounts').e();
  }
  if (p.resetLoginuid) w.r(P.LOGINUID).e();
  if (p.consoleSize) w.r(P.WINSIZE).u(p.consoleSize.width, 'console width').u(p.consoleSize.height, 'console height').e();
  if (p.usermap) w.r(P.USERMAP).u(p.usermap.shift, 'usermap').u(p.usermap.range, 'usermap').e();
  if (p.idmap) w.r(P.IDMAP).u(p.idmap.shift, 'idmap').u(p.idmap.range, 'idmap').e();
  if (p.hostname !== undefined) w.r(P.HOSTNAME).s(p.hostname).e();
  for (const o of p.ops)
    w.r(P.OP)
      .s(o.kind)
      .u(o.flags ?? 0, 'op flags')
      .s(o.source ?? '')
      .s(o.target)
      .s(o.fstype ?? '')
      .u(o.mountFlags ?? 0, 'mount flags')
      .s(o.data ?? '')
      .u(o.mode ?? 0, 'mode')
      .u(o.dev ?? 0, 'device')
      .e();
  w.r(P.CONSOLE).s(p.console).e();
  if (p.personality !== undefined) w.r(P.PERSONALITY).u(p.personality, 'personality').e();
  for (const r of p.rlimits) w.r(P.RLIMIT).u(r.resource, 'rlimit').u(limit(r.soft), 'rlimit').u(limit(r.hard), 'rlimit').e();
  if (p.uid !== undefined) w.r(P.UID).u(p.uid, 'uid').e();
  if (p.gid !== undefined) w.r(P.GID).u(p.gid, 'gid').e();
  if (p.groups !== undefined) w.r(P.GROUPS).U(p.groups, 'group').e();
  if (p.chdir !== undefined) w.r(P.CHDIR).s(p.chdir).e();
  if (p.noNewPrivileges) w.r(P.NNP).e();
  if (p.oomScoreAdjust !== undefined) w.r(P.OOM).i(p.oomScoreAdjust, 'OOM score').e();
  if (p.cpuAffinity?.length) w.r(P.CPUS).U(p.cpuAffinity, 'CPU').e();
  if (p.capabilities) {
    const c = p.capabilities;
    w.r(P.CAPS).u(c.bounding, 'caps').u(c.effective, 'caps').u(c.permitted, 'caps').u(c.inheritable, 'caps').u(c.ambient, 'caps').e();
  }
  if (p.capabilityWarning !== undefined) w.r(P.CAPWARN).s(p.capabilityWarning).e();
  if (p.sessionKeyring) w.r(P.KEYRING).e();
  if (p.seccomp) w.r(P.SECCOMP).x(p.seccomp).e();
  w.each(P.SECCOMPWARN, p.seccompWarnings);
  if (p.seccompOci && (p.seccompOci.flags || p.seccompOci.late)) w.r(P.SECCOMPOCI).u(p.seccompOci.flags, 'seccomp flags').b1(p.seccompOci.late).e();
  for (const c of p.cgroup?.v1 ?? []) w.r(P.CGV1).s(c.scope).s(c.home).e();
  if (p.cgroup?.unified) w.r(P.CGV2).s(p.cgroup.unified.scope).s(p.cgroup.unified.home).e();
  if (p.deviceProgram) w.r(P.DEVBPF).b1(p.deviceProgram.optional).s(p.deviceProgram.cgroup).x(p.deviceProgram.program).e();
  if (p.asPid2) w.r(P.PID2).e();
  if (p.loopback) w.r(P.LOOPBACK).e();
  if (p.volatileMode) w.r(P.VOLATILE).s(p.volatileMode).e();
  for (const b of p.blobs ?? []) w.r(P.BLOB).x(b).e();
  for (const m of p.bindMaps ?? []) w.r(P.BINDMAP).u(m.uid, 'uid').u(m.hostUid, 'uid').u(m.gid, 'gid').u(m.hostGid, 'gid').e();
  if (p.lateSync) w.r(P.LATESYNC).b1(p.leaveAfterStart).e();
  if (p.bindCopiesFirst) w.r(P.BINDCOPIES).e();
  if (p.ociFds) w.r(P.OCIFDS).i(p.ociFds.consoleSocket ?? -1, 'console socket fd').U(p.ociFds.pass, 'fd').e();
  for (const m of p.imageSteps ?? [])
    w.r(P.IMAGE).s(m.op).s(m.source).s(m.target).s(m.fstype).s(m.data).u(m.flags, 'image mount flags').u(m.mode, 'mode').b1(m.mkdir).b1(m.idmap === true).e();
  if (p.pivotRoot) w.r(P.PIVOTROOT).s(p.pivotRoot.newRoot).s(p.pivotRoot.oldRoot ?? '').e();
  for (const st of p.net?.steps ?? []) {
    if (st.kind === 'up') w.r(P.NETUP).s(st.ifname).e();
    else if (st.kind === 'address') w.r(P.NETADDR).s(st.ifname).u(st.family, 'family').s(st.address).u(st.prefixLength, 'prefix length').e();
    else w.r(P.NETROUTE).s(st.ifname).u(st.family, 'family').s(st.gateway).e();
  }
  if (p.net?.netns !== undefined) w.r(P.NETNS).s(p.net.netns).e();
  for (const j of p.nsJoin ?? []) w.r(P.NSJOIN).u(j.type, 'namespace type').s(j.path).e();
  if (p.searchPath) w.r(P.SEARCH).e();
  w.r(P.ENV).S(p.env).e();
  if (p.stubEnv.length) w.r(P.STUBENV).S(p.stubEnv).e();
  if (p.argv.length) w.r(P.ARGV).S(p.argv).e();
  for (const [path, argv0] of p.fallback) w.r(P.FALLBACK).s(path).s(argv0).e();
  if (p.fallbackArgs?.length) w.r(P.FALLBACKARGS).S(p.fallbackArgs).e();
  if (p.finalNewline) w.r(P.FINALNL).e();
  if (p.survive) w.r(P.SURVIVE).e();
  if (p.stdoutPath !== undefined) w.r(P.STDOUT).s(p.stdoutPath).e();
  if (p.notify) w.r(P.SDNOTIFY).b1(p.notify.notifyReady).b1(p.notify.restartExits).e();
  for (const l of p.locks ?? []) w.r(P.LOCK).s(l.path).b1(l.exclusive).s(l.busy).e();
  for (const fd of p.heldFds ?? []) w.r(P.HOLDFD).u(fd, 'held fd').e();
  for (const l of p.inheritedLocks ?? []) w.r(P.LOCKFD).u(l.fd, 'lock fd').s(l.path).b1(l.exclusive).e();
  w.each(P.RMSUBVOL, p.removeSubvolumes).each(P.RMMOUNT, p.removeMounts).each(P.RMTREE, p.removeTrees);
  for (const o of p.cgroupOps ?? []) {
    if (o.kind === 'mkdir') w.r(P.CGMKDIR).s(o.path).b1(o.exclusive).s(o.busy).e();
    else if (o.kind === 'write') w.r(P.CGWRITE).s(o.path).S(o.data).e();
    else w.r(P.CGCHOWN).s(o.path).u(o.uid, 'uid').u(o.gid, 'gid').e();
  }
  if (p.handoff) {
    const h = p.handoff;
    const m = h.messages;
    w.r(P.HANDOFF).b1(h.quiet).u(h.killSignal, 'kill signal').b1(h.keepUnit).e();
    w.r(P.HOMSGS).s(m.ok).s(m.fail).s(m.shutdown).s(m.reboot).s(m.signal).s(m.halt).e();
    w.r(P.HOSIGNAMES).S(h.signalNames).e();
    w.each(P.HORM, h.removeCgroups);
    if (h.killFile !== undefined) w.r(P.HOKILL).s(h.killFile).e();
    w.each(P.HOSLICE, h.removeSlices);
    if (h.sliceMarker !== undefined) w.r(P.HOMARKER).s(h.sliceMarker).e();
    w.r(P.HOREEXEC).S(h.reexec).e();
  }
  return w.done();
}

/**
 * What nspawn-helper's exec-in mode runs (see execIn() for the public side): in the namespaces of the container whose
 * PID 1 is LEADER, COMMAND with exactly ENV, as UID/GID/GROUPS in CWD, after joining CGROUPS (cgroup.procs files);
 * or, instead of a command, BIND: a host path bind mounted into the running container.
 */
export interface ExecInRequest {
  leader: number;
  command?: string[];
  env?: string[];
  uid?: number;
  gid?: number;
  groups?: number[];
  cwd?: string;
  cgroups?: string[];
  pty?: boolean;
  /** with pty: the helper's fd of a connected AF_UNIX socket the pty's master is sent to (OCI exec --console-socket) instead of being relayed */
  consoleSocketFd?: number;
  /** the helper's fds that become the command's 3, 4, ... in this order (OCI exec --preserve-fds); every other fd of the helper stays out */
  passFds?: number[];
  bind?: { source: string; destination: string; readOnly?: boolean; mkdir?: boolean };
}

/** An exec-in request as the helper reads it on fd 3 (framed and typed like a plan). */
export function encodeExecIn(r: ExecInRequest): Buffer {
  const w = new WireWriter(KIND.execIn, 4096);
  w.r(X.LEADER).u(r.leader, 'leader').e();
  if (r.command !== undefined) w.r(X.COMMAND).S(r.command).e();
  if (r.env !== undefined) w.r(X.ENV).S(r.env).e();
  if (r.uid !== undefined) w.r(X.UID).u(r.uid, 'uid').e();
  if (r.gid !== undefined) w.r(X.GID).u(r.gid, 'gid').e();
  if (r.groups !== undefined) w.r(X.GROUPS).U(r.groups, 'group').e();
  if (r.cwd !== undefined) w.r(X.CWD).s(r.cwd).e();
  if (r.cgroups !== undefined) w.r(X.CGROUPS).S(r.cgroups).e();
  if (r.pty) w.r(X.PTY).e();
  if (r.consoleSocketFd !== undefined) w.r(X.CONSOLESOCK).u(r.consoleSocketFd, 'console socket fd').e();
  if (r.passFds !== undefined && r.passFds.length > 0) w.r(X.PASSFDS).U(r.passFds, 'fd').e();
  if (r.bind) w.r(X.BIND).s(r.bind.source).s(r.bind.destination).b1(r.bind.readOnly).b1(r.bind.mkdir).e();
  return w.done();
}

/** The interfaces nspawn-helper --move-back moves back to the host, as it reads them on stdin. */
export function encodeMoveBack(ifnames: readonly string[]): Buffer {
  return new WireWriter(KIND.moveBack, 256).r(M.IFNAMES).S(ifnames).e().done();
}

export { type HelperEvent, parseHelperLine } from './helper-events.js';
