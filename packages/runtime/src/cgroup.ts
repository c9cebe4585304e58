/**
 * Each container's own cgroup: `machine.slice/machine-NAME.scope`, systemd's names for the scope machined makes
 * for a machine (NAME escaped as unit_name_escape() does), in the hierarchies systemd manages: the unified one
 * (cgroup2 at /sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host), the name=systemd one and those of the v1
 * controllers systemd uses (machineHierarchies()). Node makes it, with its settings, before the helper gets its plan; the plan says where the
 * container goes (placement()), and the helper clones the container's PID 1 into it, so the container starts
 * inside and the root of its cgroup namespace is the scope. The helper itself stays where it came from (only the
 * container is in the scope, as with systemd-nspawn's scope units): see native/cgroup.c for how, without the RCU
 * grace period a move by PID costs. After the container, the scope goes, and so does machine.slice when an nspawn
 * made it.
 *
 * Every file system effect goes through CgroupFs, so that the logic is unit-tested on a fake tree.
 */
import {
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { type CgroupLayout, cgroupLayoutFromMountinfo } from './host.js';
import { ContainerError } from './errors.js';
import { applyCgroupAttributes, type CgroupAttribute, type CgroupSlice, slicePathLevels } from './cgroup-settings.js';
import { unitNameEscape } from './unit-name.js';

/**
 * DIR/NAME and the parent of P, for cgroup paths made here (absolute, normalized; NAME a plain relative path): what
 * path.join() and path.dirname() give, without their normalisation, which costs a start tens of microseconds each.
 */
const sub = (dir: string, name: string) => (dir.endsWith('/') ? `${dir}${name}` : `${dir}/${name}`);
const parentOf = (p: string) => p.slice(0, Math.max(1, p.lastIndexOf('/')));

/** The cgroup file system operations this module uses (the real ones: nodeCgroupFs). */
export interface CgroupFs {
  /** mkdir(2); throws with code EEXIST, ENOENT, ... */
  mkdir(path: string): void;
  /** rmdir(2); throws with code EBUSY, ENOTEMPTY, ENOENT, ... */
  rmdir(path: string): void;
  read(path: string): string;
  /** write(2)s to an existing file, one per value, through one open file */
  write(path: string, ...data: string[]): void;
  exists(path: string): boolean;
  /** names of the subdirectories (child cgroups) */
  subdirs(path: string): string[];
  chown(path: string, uid: number, gid: number): void;
  /** what tells one directory from another made later at the same path (its inode number) */
  id(path: string): bigint;
  /** SIGKILL */
  kill(pid: number): void;
}

export const nodeCgroupFs: CgroupFs = {
  mkdir: (p) => mkdirSync(p, 0o755),
  rmdir: (p) => rmdirSync(p),
  read: (p) => readFileSync(p, 'utf8'),
  write(p, ...data) {
    const fd = openSync(p, 'r+');
    try {
      for (const d of data) writeSync(fd, d);
    } finally {
      closeSync(fd);
    }
  },

  exists: (p) => existsSync(p),
  subdirs: (p) =>
    readdirSync(p, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name),
  chown: (p, u, g) => chownSync(p, u, g),
  id: (p) => statSync(p, { bigint: true }).ino,
  kill: (pid) => process.kill(pid, 'SIGKILL'),
};

/**
 * Whether machine.slice was made by an nspawn (this one or another): then the last container to leave it empty
 * removes it. One made by someone else (systemd, an administrator with limits for all machines) is never removed.
 */
export interface SliceMarker {
  has(): boolean;
  set(): void;
  clear(): void;
  /** the marker's file, for a helper that removes the slice after nspawn handed over to it */
  readonly path?: string;
}

export const NSPAWN_SLICE_MARKER = '/run/nspawn/machine.slice';

export const nodeSliceMarker: SliceMarker = {
  path: NSPAWN_SLICE_MARKER,
  has: () => existsSync(NSPAWN_SLICE_MARKER),
  set() {
    try {
      mkdirSync(dirname(NSPAWN_SLICE_MARKER), { recursive: true, mode: 0o755 });
      writeFileSync(NSPAWN_SLICE_MARKER, 'machine.slice was made by nspawn: removed when empty\n', { mode: 0o644 });
    } catch {
      // without the mark the slice stays when another nspawn empties it: harmless
    }
  },
  clear: () => rmSync(NSPAWN_SLICE_MARKER, { force: true }),
};

export { unitNameEscape, unitNameUnescape } from './unit-name.js';

export const MACHINE_SLICE = 'machine.slice';

/**
 * machined's unit for a machine: machine-NAME.scope, and its cgroup path below a hierarchy's root, in machine.slice or
 * in SLICE's path (--slice=: "" for the root slice).
 */
export function machineScope(name: string, slice?: string): { unit: string; path: string } {
  const unit = `machine-${unitNameEscape(name)}.scope`;
  const dir = slice ?? MACHINE_SLICE;
  return { unit, path: dir === '' ? unit : `${dir}/${unit}` };
}

export interface CgroupHierarchyDir {
  /** '' for the unified hierarchy; for a v1 one its controllers as /proc/PID/cgroup lists them, sorted ("cpu,cpuacct", "name=systemd") */
  key: string;
  /** where it is mounted */
  mount: string;
  unified: boolean;
}

const keyOf = (list: string) => list.split(',').filter((x) => x !== '').sort().join(',');

/**
 * The v1 controllers systemd manages units' cgroups in (its CGroupController list: cpuset is "v2 only", freezer,
 * net_cls, perf_event, hugetlb and the like it leaves alone): a machine's scope is made in these, as machined's is.
 */
const SYSTEMD_V1_CONTROLLERS = new Set(['cpu', 'cpuacct', 'blkio', 'memory', 'devices', 'pids']);

/**
 * The hierarchies a container gets a cgroup in: the unified one first, then name=systemd, then the v1 controllers
 * systemd uses (SYSTEMD_V1_CONTROLLERS; a co-mount of one of them counts). Other named v1 hierarchies
 * (name=elogind, ...) belong to someone else and are left alone; in cpuset, freezer and the rest the container stays
 * where nspawn was, as under systemd.
 */
export function machineHierarchies(layout: CgroupLayout): CgroupHierarchyDir[] {
  if (layout.kind === 'none') return [];
  if (layout.kind === 'unified') return [{ key: '', mount: '/sys/fs/cgroup', unified: true }];
  const out: CgroupHierarchyDir[] = [];
  if (layout.kind === 'hybrid') out.push({ key: '', mount: '/sys/fs/cgroup/unified', unified: true });
  const v1 = layout.hierarchies.filter(
    (h) => h.options === 'name=systemd' || (!h.options.includes('name=') && h.options.split(',').some((c) => SYSTEMD_V1_CONTROLLERS.has(c))),
  );
  v1.sort((a, b) => Number(b.options === 'name=systemd') - Number(a.options === 'name=systemd'));
  for (const h of v1) out.push({ key: keyOf(h.options), mount: `/sys/fs/cgroup/${h.name}`, unified: false });
  return out;
}

/** /proc/PID/cgroup: hierarchy key (see CgroupHierarchyDir) to the cgroup path. */
export function parseProcCgroup(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const a = line.indexOf(':');
    const b = line.indexOf(':', a + 1);
    if (a < 0 || b < 0) continue;
    out.set(line.slice(0, a) === '0' && b === a + 1 ? '' : keyOf(line.slice(a + 1, b)), line.slice(b + 1));
  }
  return out;
}

const errCode = (e: unknown) => (e as NodeJS.ErrnoException).code;
const controllersOf = (h: CgroupHierarchyDir) => (h.unified ? [] : h.key.split(','));

/** The PIDs in DIR and below. */
function procsBelow(fs: CgroupFs, dir: string): number[] {
  const out: number[] = [];
  const walk = (d: string) => {
    try {
      for (const l of fs.read(join(d, 'cgroup.procs')).split('\n')) if (l.trim() !== '') out.push(Number(l));
      for (const s of fs.subdirs(d)) walk(join(d, s));
    } catch {
      // gone meanwhile
    }
  };
  walk(dir);
  return out;
}

/** Whether a process is in DIR or below (cgroup.events on cgroup2, the cgroup.procs files on v1). */
function populated(fs: CgroupFs, h: CgroupHierarchyDir, dir: string): boolean {
  if (h.unified) {
    try {
      const m = /^populated (\d)/m.exec(fs.read(join(dir, 'cgroup.events')));
      if (m) return m[1] === '1';
    } catch {
      // fall back to the process lists
    }
  }
  return procsBelow(fs, dir).length > 0;
}

/** rmdir of DIR and what is below it, deepest first. Returns the directories that are still there. */
function removeTree(fs: CgroupFs, dir: string): string[] {
  const tryRmdir = (): 'gone' | 'busy' => {
    try {
      fs.rmdir(dir);
      return 'gone';
    } catch (e) {
      return errCode(e) === 'ENOENT' ? 'gone' : 'busy';
    }
  };
  // (the usual case first: a leaf with nothing in it)
  if (tryRmdir() === 'gone') return [];
  let subs: string[] = [];
  try {
    subs = fs.subdirs(dir);
  } catch (e) {
    if (errCode(e) === 'ENOENT') return [];
  }
  const left = subs.flatMap((s) => removeTree(fs, join(dir, s)));
  return subs.length > 0 && tryRmdir() === 'gone' ? left : [...left, dir];
}

/** Controllers the accounting needs on cgroup2 (cpu.stat's usage needs none). */
const UNIFIED_ACCOUNTING = ['memory', 'pids'];

/**
 * Turns on the accounting controllers (and those --property='s settings write, EXTRA) for DIR's children, where DIR
 * has them and does not enable them yet.
 */
function enableAccounting(fs: CgroupFs, dir: string, extra: ReadonlySet<string> = new Set()): void {
  try {
    const available = fs.read(sub(dir, 'cgroup.controllers')).split(/\s+/);
    const enabled = fs.read(sub(dir, 'cgroup.subtree_control')).split(/\s+/);
    const want = [...new Set([...UNIFIED_ACCOUNTING, ...extra])].filter((c) => available.includes(c) && !enabled.includes(c));
    if (want.length > 0) fs.write(sub(dir, 'cgroup.subtree_control'), want.map((c) => `+${c}`).join(' '));
  } catch {
    // accounting is best effort: the container runs without it
  }
}

/** The files chown_cgroup_path() hands to a user namespace's root. */
const CHOWN_FILES = ['.', 'cgroup.clone_children', 'cgroup.controllers', 'cgroup.events', 'cgroup.procs', 'cgroup.stat', 'cgroup.subtree_control', 'cgroup.threads', 'notify_on_release', 'tasks'];

export interface MachineCgroupOptions {
  /** the machine name */
  name: string;
  layout: CgroupLayout;
  fs?: CgroupFs;
  /**
   * devices.allow lines for the v1 devices controller, written after "a" to devices.deny; undefined leaves the
   * devices controller as it is
   */
  v1DeviceRules?: readonly string[];
  /** the root of the container's user namespace: it gets the name=systemd and unified directories (chown_cgroup()) */
  owner?: number;
  /** how to wait between attempts to remove a scope whose processes are still going (tests: no waiting) */
  sleep?: (ms: number) => Promise<void>;
  /** how long remove() waits for the scope's processes to go, in ms (default 5000) */
  removeTimeoutMs?: number;
  /**
   * The caller holds the machine name's run lock (src/recovery.ts; recoveryExtension() takes it for every start), so
   * no other nspawn is setting up a scope of this name: one that exists and is empty was left by a run that is
   * gone, and is replaced. Without it an existing scope is refused, empty or not.
   */
  nameLocked?: boolean;
  /** where it is noted that an nspawn made machine.slice (default: the file NSPAWN_SLICE_MARKER) */
  sliceMarker?: SliceMarker;
  /**
   * remove() leaves machine.slice, even when it is empty and an nspawn made it: a daemon that starts machine after
   * machine keeps it (as machined's machine.slice stays), and gives it up with releaseMachineSlice()
   */
  keepSlice?: boolean;
  /** --slice=: the slice instead of machine.slice; its levels made here are removed when empty (no marker) */
  slice?: CgroupSlice;
  /** --property=: the cgroup files to write in the scope (src/cgroup-settings.ts) */
  attributes?: readonly CgroupAttribute[];
  /** where the warnings of applying ATTRIBUTES go (systemd logs them and goes on) */
  warn?: (message: string) => void;
}

/** Where the helper puts the container's PID 1: see native/cgroup.c. */
export interface CgroupPlacement {
  v1: Array<{ scope: string; home: string }>;
  unified?: { scope: string; home: string };
}

/** A machine's cgroups, made by createMachineCgroup(). */
export interface MachineCgroup {
  /** machine.slice/machine-NAME.scope */
  readonly path: string;
  /** the scope directory per hierarchy */
  readonly dirs: ReadonlyArray<{ hierarchy: CgroupHierarchyDir; dir: string }>;
  /** the scope's directory in the unified hierarchy, if the host has one */
  readonly unifiedDir: string | undefined;
  /** whether the devices controller got the v1 rules */
  readonly v1Devices: boolean;
  /**
   * Where the helper puts the container (the plan's cgroup entries): the scope's `tasks` file per v1 hierarchy,
   * with the helper's own (from HOME, parseProcCgroup() of the helper) to go back to, and the unified scope's
   * directory, with the helper's cgroup.procs.
   */
  placement(home: ReadonlyMap<string, string>): CgroupPlacement;
  /** Throws ContainerError when the scope is no longer the one made here (a container of the same name started at the same moment). */
  check(): void;
  /**
   * After the container: kills what is still in the scope (only there), removes the scope in each hierarchy and
   * machine.slice where it was made here and is empty. Resolves to warnings about what could not be removed.
   */
  remove(): Promise<string[]>;
  /** When the container never ran: removes what was made here and is empty, kills nothing. */
  abandon(): void;
  /**
   * remove() as data, for the helper that does it in nspawn's place (HandoffPlan): the scope directories, the
   * unified scope's cgroup.kill, the slices an nspawn made, and the marker that goes with the last of them.
   */
  removal(): { removeCgroups: string[]; killFile?: string; removeSlices: string[]; sliceMarker?: string };
}

const busyMessage = (name: string, dir: string) =>
  `Failed to allocate the cgroup of machine ${name}: ${dir} is in use (is machine ${name} already running?)`;
function busy(name: string, dir: string): ContainerError {
  return new ContainerError(busyMessage(name, dir));
}

/**
 * Makes machine.slice/machine-NAME.scope in each hierarchy of LAYOUT machineHierarchies() names, with the v1 device rules. A scope of the
 * same name that has processes is refused (ContainerError naming its path); one without any is, when the caller holds
 * the name's run lock (nameLocked: no other nspawn can be setting it up), one a killed nspawn left: removed and made
 * anew, so no stale device program or rule stays attached. Without the lock an existing scope is refused.
 */
export function createMachineCgroup(opts: MachineCgroupOptions): MachineCgroup {
  const fs = opts.fs ?? nodeCgroupFs;
  const { path } = machineScope(opts.name, opts.slice?.path);
  const hierarchies = machineHierarchies(opts.layout);
  // the slice's levels (machine.slice, or --slice='s: "foo.slice", "foo.slice/foo-bar.slice"); only machine.slice has a marker
  const levels = opts.slice ? slicePathLevels(opts.slice.path) : [MACHINE_SLICE];
  const custom = opts.slice !== undefined;
  const wanted = new Set((opts.attributes ?? []).flatMap((a) => a.unified.map((w) => w.controller)));
  /** SLICE: the innermost level (undefined for the root slice); SLICESMADE: the levels made here, outermost first */
  const made: Array<{ hierarchy: CgroupHierarchyDir; dir: string; slice: string | undefined; sliceMade: boolean; slicesMade: string[] }> = [];
  let primaryId: bigint | undefined;
  let v1Devices = false;
  const marker = opts.sliceMarker ?? nodeSliceMarker;
  let marked = false;

  /** machine.slice where an nspawn made it and no machine is left in it (rmdir fails on one that has any) */
  const removeSlices = () => {
    if (custom) {
      for (const m of made)
        for (const d of [...m.slicesMade].reverse()) {
          try {
            fs.rmdir(d);
          } catch {
            // another machine is in it, or it is gone
          }
        }
      return;
    }
    const ours = marker.has();
    for (const m of made) {
      if (!m.sliceMade && !ours) continue;
      try {
        fs.rmdir(m.slice!);
      } catch {
        // another machine is in it, or it is gone
      }
    }
    if (ours && hierarchies.every((h) => !fs.exists(join(h.mount, MACHINE_SLICE)))) marker.clear();
  };
  const abandon = () => {
    for (const m of made) removeTree(fs, m.dir);
    removeSlices();
  };

  try {
    for (const h of hierarchies) {
      const slices = levels.map((l) => sub(h.mount, l));
      const slice = slices.at(-1);
      const dir = sub(h.mount, path);
      let sliceMade = false;
      const slicesMade: string[] = [];
      for (let attempt = 0; ; attempt++) {
        // (machine.slice is there already as a rule: asked first, as a failed mkdir costs an exception)
        for (const sl of slices)
          if (!fs.exists(sl))
            try {
              fs.mkdir(sl);
              slicesMade.push(sl);
              if (!custom) sliceMade = marked = true;
            } catch (e) {
              if (errCode(e) !== 'EEXIST') throw e;
            }
        if (h.unified) for (const d of [h.mount, ...slices]) enableAccounting(fs, d, wanted);
        try {
          fs.mkdir(dir);
          break;
        } catch (e) {
          const code = errCode(e);
          // machine.slice went away under us (the last container in it ended): make it again
          if (code === 'ENOENT' && attempt < 3) continue;
          if (code !== 'EEXIST') throw e;
          if (attempt > 0 || !opts.nameLocked || populated(fs, h, dir)) throw busy(opts.name, dir);
          // left behind by an nspawn that is gone (we hold the name's lock, so no other is making it): a fresh one
          if (removeTree(fs, dir).length > 0) throw busy(opts.name, dir);
        }
      }
      made.push({ hierarchy: h, dir, slice, sliceMade, slicesMade });
      if (primaryId === undefined) primaryId = fs.id(dir);
      if (opts.v1DeviceRules && controllersOf(h).includes('devices')) {
        fs.write(sub(dir, 'devices.deny'), 'a');
        if (opts.v1DeviceRules.length > 0) fs.write(sub(dir, 'devices.allow'), ...opts.v1DeviceRules);
        v1Devices = true;
      }
      if (opts.owner !== undefined && (h.unified || h.key === 'name=systemd'))
        for (const f of CHOWN_FILES) {
          try {
            fs.chown(join(dir, f), opts.owner, opts.owner);
          } catch {
            // a file this hierarchy does not have
          }
        }
    }
    if (marked) marker.set();
    if (opts.attributes?.length) {
      const v1 = new Map(made.flatMap((m) => controllersOf(m.hierarchy).map((c) => [c, m.dir] as const)));
      applyCgroupAttributes(fs, made.find((m) => m.hierarchy.unified)?.dir, v1, opts.attributes, opts.warn ?? (() => {}));
    }
  } catch (e) {
    abandon();
    if (e instanceof ContainerError) throw e;
    throw new ContainerError(`Failed to allocate the cgroup of machine ${opts.name}: ${(e as Error).message}`);
  }

  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const unified = made.find((m) => m.hierarchy.unified);
  return {
    path,
    dirs: made.map(({ hierarchy, dir }) => ({ hierarchy, dir })),
    unifiedDir: unified?.dir,
    v1Devices,
    placement(home) {
      const from = (m: (typeof made)[number], file: string) => join(m.hierarchy.mount, home.get(m.hierarchy.key) ?? '/', file);
      const out: CgroupPlacement = { v1: [] };
      for (const m of made) {
        if (m.hierarchy.unified) out.unified = { scope: m.dir, home: from(m, 'cgroup.procs') };
        else out.v1.push({ scope: sub(m.dir, 'tasks'), home: from(m, 'tasks') });
      }
      return out;
    },
    check() {
      const head = made[0];
      if (!head) return;
      let same = false;
      try {
        same = fs.id(head.dir) === primaryId;
      } catch {
        // removed under us
      }
      if (!same) throw busy(opts.name, head.dir);
    },
    async remove() {
      const deadline = Date.now() + (opts.removeTimeoutMs ?? 5000);
      let left: string[] = [];
      for (let attempt = 0; ; attempt++) {
        left = made.flatMap((m) => removeTree(fs, m.dir));
        if (left.length === 0 || Date.now() >= deadline) break;
        // what is still in the scope after the container's end is killed: in the scope and below only
        // (cgroup.kill where the kernel has it: no PID can be reused between reading and killing)
        if (unified && fs.exists(join(unified.dir, 'cgroup.kill'))) {
          try {
            fs.write(join(unified.dir, 'cgroup.kill'), '1');
          } catch {
            // removed meanwhile
          }
        } else
          for (const m of made)
            for (const pid of procsBelow(fs, m.dir)) {
              try {
                fs.kill(pid);
              } catch {
                // exited meanwhile
              }
            }
        await sleep(attempt < 10 ? 2 : 20);
      }
      if (!opts.keepSlice) removeSlices();
      return left.map((d) => `Failed to remove cgroup ${d}: it still has processes.`);
    },
    abandon,
    removal() {
      const ours = !custom && marker.has();
      const out: ReturnType<MachineCgroup['removal']> = {
        removeCgroups: made.map((m) => m.dir),
        // (the levels of a --slice= made here innermost first: an outer one goes once the inner one has)
        removeSlices: custom ? made.flatMap((m) => [...m.slicesMade].reverse()) : made.filter((m) => m.sliceMade || ours).map((m) => m.slice!),
      };
      if (unified && fs.exists(sub(unified.dir, 'cgroup.kill'))) out.killFile = sub(unified.dir, 'cgroup.kill');
      if (ours && marker.path !== undefined) out.sliceMarker = marker.path;
      return out;
    },
  };
}

/** Per-machine accounting, as the host sees it. Undefined where the host has no such controller. */
export interface MachineStats {
  /** CPU time used, in nanoseconds */
  cpuUsageNs: number | undefined;
  /** memory charged to the machine, in bytes */
  memoryBytes: number | undefined;
  /** tasks (threads) in the machine */
  tasks: number | undefined;
}

/**
 * The CPU time, memory and tasks of machine NAME: from the v1 controllers where the host has them
 * (cpuacct.usage, memory.usage_in_bytes, pids.current), else from the unified hierarchy (cpu.stat's usage_usec,
 * memory.current, pids.current). Undefined when the machine has no scope.
 */
export function readMachineStats(name: string, opts: { layout?: CgroupLayout; fs?: CgroupFs } = {}): MachineStats | undefined {
  const fs = opts.fs ?? nodeCgroupFs;
  const layout = opts.layout ?? cgroupLayoutFromMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'));
  const { path } = machineScope(name);
  const hs = machineHierarchies(layout);
  const dirs = hs.map((h) => ({ h, dir: join(h.mount, path) })).filter(({ dir }) => fs.exists(dir));
  if (dirs.length === 0) return undefined;
  const unified = dirs.find((d) => d.h.unified)?.dir;
  const v1 = (controller: string) => dirs.find((d) => controllersOf(d.h).includes(controller))?.dir;
  const num = (file: string | undefined, pick: (text: string) => string | undefined = (t) => t.trim()): number | undefined => {
    if (file === undefined) return undefined;
    try {
      const v = pick(fs.read(file));
      return v === undefined || !/^\d+$/.test(v) ? undefined : Number(v);
    } catch {
      return undefined;
    }
  };
  const orUnified = (controller: string, v1File: string, unifiedFile: string, pick?: (t: string) => string | undefined) => {
    const d = v1(controller);
    if (d !== undefined) return num(join(d, v1File));
    return unified === undefined ? undefined : num(join(unified, unifiedFile), pick);
  };
  let cpuUsageNs = orUnified('cpuacct', 'cpuacct.usage', 'cpu.stat', (t) => /^usage_usec (\d+)$/m.exec(t)?.[1]);
  if (cpuUsageNs !== undefined && v1('cpuacct') === undefined) cpuUsageNs *= 1000;
  return {
    cpuUsageNs,
    memoryBytes: orUnified('memory', 'memory.usage_in_bytes', 'memory.current'),
    tasks: orUnified('pids', 'pids.current', 'pids.current'),
  };
}

/** A change to the cgroup file system that the helper makes (HelperPlan.cgroupOps). */
export type CgroupOp =
  /** mkdir; EXCLUSIVE: one that exists already is an error (BUSY says which), else it is fine */
  | { kind: 'mkdir'; path: string; exclusive: boolean; busy: string }
  /** write(2)s of each value through one open file */
  | { kind: 'write'; path: string; data: string[] }
  | { kind: 'chown'; path: string; uid: number; gid: number };

/**
 * A CgroupFs that does not change anything: mkdir, write and chown become CgroupOps for the helper (nspawn hands
 * them over when it execs it: src/handoff.ts), while reads go to REAL, with what the ops will have made simulated
 * (a new directory exists, its files read as the ops wrote them or empty, its cgroup.controllers are its parent's
 * subtree_control). rmdir, kill and the reads of existing cgroups are real: a stale scope is removed as before.
 * NAME is the machine's, for the error when its scope exists by the time the helper makes it.
 */
export function recordingCgroupFs(real: CgroupFs, name: string): CgroupFs & { readonly ops: CgroupOp[] } {
  const ops: CgroupOp[] = [];
  const pending = new Set<string>();
  const written = new Map<string, string>();
  const inPending = (p: string) => pending.has(parentOf(p));
  // what is there is asked once (nothing is made until the helper runs the ops, which checks again as it makes)
  const seen = new Map<string, boolean>();
  const realExists = (p: string) => {
    let v = seen.get(p);
    if (v === undefined) seen.set(p, (v = real.exists(p)));
    return v;
  };
  /**
   * The slices DIR is in (DIR too) that are there now get a non-exclusive mkdir op (EEXIST is fine) before the first op
   * in them: another nspawn's teardown may remove an empty machine.slice before the helper runs the ops, and the
   * helper's retry on ENOENT (native/cgroup-ops.c) starts again from the first op, which then makes it again.
   */
  const ensured = new Set<string>();
  const ensureSlices = (dir: string) => {
    const there: string[] = [];
    for (let d = dir; d.endsWith('.slice') && !pending.has(d) && !ensured.has(d); d = parentOf(d)) there.unshift(d);
    for (const d of there) {
      ensured.add(d);
      ops.push({ kind: 'mkdir', path: d, exclusive: false, busy: busyMessage(name, d) });
    }
  };
  const fs: CgroupFs & { ops: CgroupOp[] } = {
    ops,
    mkdir(p) {
      if (pending.has(p) || realExists(p)) throw Object.assign(new Error(`mkdir ${p}: EEXIST`), { code: 'EEXIST' });
      if (!pending.has(parentOf(p)) && !realExists(parentOf(p))) throw Object.assign(new Error(`mkdir ${p}: ENOENT`), { code: 'ENOENT' });
      // a slice (machine.slice, --slice='s levels) may be there already: only the scope must be new
      const slice = p.endsWith('.slice');
      if (!slice) ensureSlices(parentOf(p));
      ops.push({ kind: 'mkdir', path: p, exclusive: !slice, busy: busyMessage(name, p) });
      pending.add(p);
    },
    // a directory only the ops would make is simply not made (abandon() before the hand-over)
    rmdir: (p) => {
      seen.delete(p);
      return pending.delete(p) ? undefined : real.rmdir(p);
    },
    read(p) {
      if (written.has(p)) return written.get(p)!;
      if (!inPending(p)) return real.read(p);
      // a new cgroup's controllers are what its parent enables for its children
      if (p.endsWith('/cgroup.controllers')) return fs.read(sub(parentOf(parentOf(p)), 'cgroup.subtree_control'));
      return '';
    },
    write(p, ...data) {
      ensureSlices(parentOf(p));
      ops.push({ kind: 'write', path: p, data });
      if (data.length > 0) written.set(p, data.at(-1)!);
    },
    exists: (p) => pending.has(p) || (inPending(p) ? realExists(sub(parentOf(parentOf(p)), p.slice(parentOf(p).length + 1))) : realExists(p)),
    subdirs: (p) => (pending.has(p) ? [] : real.subdirs(p)),
    chown(p, uid, gid) {
      ops.push({ kind: 'chown', path: p, uid, gid });
    },
    id: (p) => (pending.has(p) ? 0n : real.id(p)),
    kill: (pid) => real.kill(pid),
  };
  return fs;
}

/**
 * machine.slice in each hierarchy of LAYOUT (machineHierarchies()), where an nspawn made it (its marker) and no machine is left in it:
 * removed, with the marker once none is left. For a daemon that kept it (MachineCgroupOptions.keepSlice) when it stops.
 */
export function releaseMachineSlice(layout: CgroupLayout, fs: CgroupFs = nodeCgroupFs, marker: SliceMarker = nodeSliceMarker): void {
  if (!marker.has()) return;
  const hierarchies = machineHierarchies(layout);
  for (const h of hierarchies) {
    try {
      fs.rmdir(join(h.mount, MACHINE_SLICE));
    } catch {
      // a machine is in it, or it is gone
    }
  }
  if (hierarchies.every((h) => !fs.exists(join(h.mount, MACHINE_SLICE)))) marker.clear();
}

/** What collectMachineScope() found and did. */
export interface ScopeCollection {
  /** the scope existed in some hierarchy */
  found: boolean;
  /** its directories that are still there (processes that did not go within the wait) */
  left: string[];
}

/**
 * The scope of machine NAME after the nspawn that made it is gone (a kill -9): its container dies with its
 * supervisor (the helper has PDEATHSIG towards nspawn, and the container's PID 1 towards the helper), so its processes
 * go on their own. This waits until none is left in the scope in any hierarchy (at most TIMEOUTMS; nothing is
 * killed), then removes the scope, and machine.slice where an nspawn made it and no machine is left in it (SLICE: the
 * --slice= path the scope was in instead; that slice stays). Only call
 * it for a scope whose owner is provably gone (src/recovery.ts: its run lock is free).
 */
export async function collectMachineScope(
  name: string,
  opts: { layout: CgroupLayout; fs?: CgroupFs; sleep?: (ms: number) => Promise<void>; timeoutMs?: number; sliceMarker?: SliceMarker; slice?: string },
): Promise<ScopeCollection> {
  const fs = opts.fs ?? nodeCgroupFs;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const { path } = machineScope(name, opts.slice);
  const dirs = machineHierarchies(opts.layout)
    .map((h) => ({ h, dir: sub(h.mount, path) }))
    .filter(({ dir }) => fs.exists(dir));
  if (dirs.length === 0) return { found: false, left: [] };
  const deadline = Date.now() + (opts.timeoutMs ?? 5000);
  for (let attempt = 0; dirs.some(({ h, dir }) => populated(fs, h, dir)); attempt++) {
    if (Date.now() >= deadline) return { found: true, left: dirs.filter(({ h, dir }) => populated(fs, h, dir)).map(({ dir }) => dir) };
    await sleep(attempt < 10 ? 2 : 20);
  }
  const left = dirs.flatMap(({ dir }) => removeTree(fs, dir));
  // (a --slice= one stays: whether that run made it is not known here, and a slice nspawn did not make is not its to remove)
  if (opts.slice === undefined) releaseMachineSlice(opts.layout, fs, opts.sliceMarker);
  return { found: true, left };
}
