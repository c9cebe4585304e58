/**
 * Recovery after kill -9: each run keeps a record of what it makes on the host, and any later start collects what a
 * run that is provably gone left behind.
 *
 * The record is `/run/nspawn/runs/NAME.lock` (NAME the machine's name): a lock file in make_lock_file()'s protocol (an
 * exclusive open-file-description lock, the file unlinked by its holder before it lets go) that carries, as JSON, what
 * the run makes before it makes it: the -x snapshot, -U's range lock, a network record, the tree whose image locks it
 * took; the machine's scope follows from NAME. nspawn takes it before anything else (recoveryExtension(), first in
 * defaultExtensions()) and holds it for the container's life: in Node, or, after a hand-over, in the helper that
 * replaced it (plan.inheritedLocks), which removes the file at the very end. A kill -9 of either frees the lock and
 * leaves the file: that, and only that, makes a run an orphan. Nothing is decided from the clock.
 *
 * - The lock is per machine name, so it also says who may make machine.slice/machine-NAME.scope: a start that holds it
 *   knows an existing empty scope of that name is an orphan (createMachineCgroup()'s nameLocked), and a second start of
 *   a running machine is refused at once.
 * - Every start lists the directory (one readdir; nothing more when it is empty) and looks at the other records: one
 *   whose owner still runs (its PID with the same start time in /proc) is skipped at once; any other is collected under
 *   its lock. So the collection costs next to nothing unless something was left.
 * - A collector takes `NAME.collect` before it takes NAME's lock, and lets it go last: a start of NAME that finds the
 *   lock held but NAME.collect free knows the holder is a live run (and refuses); with NAME.collect held, it waits for
 *   the collector and tries again. A collector that finds NAME.collect held waits for the other one too, and looks
 *   again: when a start, `nspawnctl clean` or nspawnd's start is done collecting, every run it found gone is collected
 *   or kept with the reason (never still half-way in another process's hands).
 * - nspawnd's containers outlive it (the helper's `survive`): their record names the helper as the survivor, and a
 *   record whose survivor still runs is never collected.
 * - Collecting a run: wait until its scope has no process left (its container dies with its supervisor), remove the
 *   scope; remove the snapshot (only under the snapshot's own lock, unmounting only @nspawn/btrfs's mounts, never
 *   following a symlink or crossing a mount); the image lock files of its tree and the range locks under
 *   /run/systemd/nspawn-uid that nobody holds (systemd's protocol: a free lock file is garbage); then the network
 *   records of dead owners, with the nft table and net.ipv4.ip_forward recomputed from the live ones
 *   (@nspawn/net). A run whose scope keeps processes is left for later, record included.
 *
 * `collectLeftovers()` does the same for every record, and also removes empty scopes no live run has, free range locks
 * and network leftovers: `nspawnctl clean` and nspawnd's start.
 */
import { closeSync, existsSync, fstatSync, ftruncateSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, unlinkSync, writeSync, constants as fsc } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { globalLockPath, localLockPath, removeEphemeralOrphan, removeTree } from '@nspawn/btrfs';
import { LOCK_DIR as UID_LOCK_DIR, tryLockFile, type LockSys, type RangeLock } from '@nspawn/uidrange';
import type { ContainerExtension } from '@nspawn/runtime';
import { type CgroupFs, collectMachineScope, machineHierarchies, machineScope, MACHINE_SLICE, nodeCgroupFs, unitNameUnescape } from '@nspawn/runtime';
import { type CgroupLayout, cgroupLayoutFromMountinfo } from '@nspawn/runtime';
import { procStartTime } from '@nspawn/runtime';
import { collectNetworkLeftovers } from './network.js';
import { ContainerError } from '@nspawn/runtime';
import { sysAddon } from '@nspawn/runtime';
import { type HeldRun, type RunRecord, setRunRecord, slicePathLevels } from '@nspawn/runtime';

export const RUNS_DIR = '/run/nspawn/runs';

/** What a collection found of one run. */
export interface CollectedRun {
  machine: string;
  /** what was removed: "scope", "snapshot PATH", "image locks", "range locks", "network" */
  removed: string[];
  /** what is still there, and why (the record is then kept) */
  left: string[];
}

export interface RecoveryOptions {
  /** the records' directory (default RUNS_DIR) */
  dir?: string;
  layout?: CgroupLayout;
  cgroupFs?: CgroupFs;
  /** /run/systemd/nspawn-uid */
  uidLockDir?: string;
  /** the OFD lock calls (default: the runtime's addon, else @nspawn/uidrange's koffi calls) */
  lockSys?: LockSys;
  /** waiting for a lock (default: the addon's, else the helper's --ofd-lock) */
  waitLock?: (fd: number) => void;
  /** how long to wait for a gone run's container to leave its scope (default 5000 ms) */
  drainTimeoutMs?: number;
  /** the environment ($SYSTEMD_NSPAWN_LOCK for the snapshot's lock) */
  env?: NodeJS.ProcessEnv;
  /** collects the network leftovers (default: collectNetworkLeftovers() of src/network.ts) */
  collectNetwork?: () => Promise<string[]>;
}

const dirOf = (o: RecoveryOptions) => o.dir ?? RUNS_DIR;
const errCode = (e: unknown) => (e as NodeJS.ErrnoException).code;

/** the record's file name: the machine name as is when it is a plain host name (it always is for nspawn), else escaped */
export function runRecordPath(machine: string, o: RecoveryOptions = {}): string {
  const name = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(machine) ? machine : machineScope(machine).unit;
  return join(dirOf(o), `${name}.lock`);
}
const collectPath = (lockPath: string) => `${lockPath.slice(0, -'.lock'.length)}.collect`;

const lockSysOf = (o: RecoveryOptions): LockSys | undefined => o.lockSys ?? sysAddon();
const tryLock = (path: string, o: RecoveryOptions): RangeLock | undefined => tryLockFile(path, lockSysOf(o));

function waitLockDefault(fd: number): void {
  const addon = sysAddon();
  if (addon) return addon.ofdLockWait(fd);
  // no addon: the helper takes it (a process of its own), as the network's zone lock does without it
  const { spawnSync } = process.getBuiltinModule('node:child_process');
  const helper = process.env.NSPAWN_HELPER;
  if (!helper) throw new Error('cannot wait for a lock without the runtime addon or $NSPAWN_HELPER');
  const r = spawnSync(helper, ['--ofd-lock'], { stdio: ['ignore', 'ignore', 'pipe', fd] });
  if (r.status !== 0) throw new Error(`Failed to take a lock: ${r.stderr?.toString().trim() || r.error?.message || `exit ${r.status}`}`);
}

/**
 * Waits until whoever holds the lock file PATH (a collector) lets go of it, and returns the lock, ours then, when the
 * file is still there (its holder died holding it); undefined when the file is gone (its holder removed it: done).
 */
function waitTake(path: string, o: RecoveryOptions): RangeLock | undefined {
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDWR | fsc.O_NOFOLLOW | fsc.O_NOCTTY);
  } catch {
    return undefined; // gone: done
  }
  try {
    (o.waitLock ?? waitLockDefault)(fd);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  if (fstatSync(fd).nlink === 0) {
    closeSync(fd);
    return undefined;
  }
  let held = true;
  return {
    path,
    fd,
    // release_lock_file()
    release() {
      if (!held) return;
      held = false;
      try {
        unlinkSync(path);
      } catch {
        // gone
      }
      closeSync(fd);
    },
  };
}
/** waits until whoever holds PATH (a collector) lets go of it */
const waitFor = (path: string, o: RecoveryOptions): void => waitTake(path, o)?.release();

function parseRecord(text: string): Partial<RunRecord> | undefined {
  if (text.trim() === '') return undefined;
  try {
    const r = JSON.parse(text) as Partial<RunRecord>;
    return typeof r === 'object' && r !== null ? r : {};
  } catch {
    return {}; // half-written: what it names is unknown, what follows from its name is collected
  }
}

/** this process's start time (/proc/self/stat's 22nd field): one open, read and close on the start path */
function ownStartTime(): number {
  const b = Buffer.allocUnsafe(1024);
  let n = 0;
  try {
    const fd = openSync('/proc/self/stat', 'r');
    try {
      n = readSync(fd, b, 0, b.length, 0);
    } finally {
      closeSync(fd);
    }
  } catch {
    return procStartTime(process.pid) ?? 0;
  }
  const s = b.toString('latin1', 0, n);
  return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[19]) || 0;
}

const aliveProc = (p: { pid?: unknown; startTime?: unknown } | undefined) =>
  !!p && typeof p.pid === 'number' && p.pid > 0 && procStartTime(p.pid) === p.startTime;

/** whether the run of record R certainly still runs (its owner, or nspawnd's survivor helper) */
export function runAlive(r: Partial<RunRecord>): boolean {
  return aliveProc(r) || aliveProc(r.survivor);
}

/** writes R over the file's content; LAST is how long it was (it only grows on a start: no truncation then) */
function writeRecord(fd: number, r: RunRecord, last: number): number {
  const b = Buffer.from(`${JSON.stringify(r)}\n`);
  writeSync(fd, b, 0, b.length, 0);
  if (b.length < last) ftruncateSync(fd, b.length);
  return b.length;
}

const busyError = (machine: string, o: RecoveryOptions) => {
  const layout = o.layout ?? hostLayout();
  const h = machineHierarchies(layout)[0];
  return new ContainerError(
    h
      ? `Failed to allocate the cgroup of machine ${machine}: ${join(h.mount, machineScope(machine).path)} is in use (is machine ${machine} already running?)`
      : `Machine ${machine} is already running.`,
  );
};

let cachedLayout: CgroupLayout | undefined;
function hostLayout(): CgroupLayout {
  return (cachedLayout ??= cgroupLayoutFromMountinfo(readFileSync('/proc/self/mountinfo', 'utf8')));
}

/**
 * Takes machine MACHINE's run record for this process and writes what is known (the tree). A record of the name left
 * by a run that is gone is collected first (which may wait for its container to leave its scope: then a promise).
 * Throws a ContainerError ("... is in use (is machine NAME already running?)") when a live run has the name.
 */
export function beginRun(machine: string, init: { directory?: string; slice?: string }, o: RecoveryOptions = {}): HeldRun | Promise<HeldRun> {
  const path = runRecordPath(machine, o);
  let lock: RangeLock | undefined;
  for (let attempt = 0; !lock; attempt++) {
    try {
      lock = tryLock(path, o);
    } catch (e) {
      if (errCode(e) !== 'ENOENT' && !/ENOENT/.test((e as Error).message)) throw e;
      mkdirSync(dirOf(o), { recursive: true, mode: 0o755 });
      continue;
    }
    if (lock) break;
    // held: by a live run of this name, or by a collector of a gone one (which holds NAME.collect meanwhile)
    const c = tryLock(collectPath(path), o);
    if (c) {
      c.release();
      throw busyError(machine, o);
    }
    if (attempt >= 3) throw busyError(machine, o);
    waitFor(collectPath(path), o);
  }
  const held = lock;
  const fd = held.fd!;
  const size = fstatSync(fd).size;
  const previous = size > 0 ? parseRecord(readFileSync(path, 'utf8')) : undefined;
  const start = (): HeldRun => {
    const record: RunRecord = {
      machine,
      pid: process.pid,
      startTime: ownStartTime(),
      ...(init.directory !== undefined ? { directory: init.directory } : {}),
      ...(init.slice !== undefined ? { slice: init.slice } : {}),
    };
    let length = writeRecord(fd, record, size);
    let left = false;
    let released = false;
    return {
      path,
      record,
      note(patch) {
        Object.assign(record, patch);
        length = writeRecord(fd, record, length);
      },
      markLeft() {
        left = true;
      },
      keepAcrossExec: () => held.keepAcrossExec!(),
      release() {
        if (released) return;
        released = true;
        if (left) closeSync(fd);
        else held.release();
      },
    };
  };
  if (previous === undefined) return start();
  // what a run of this name that is gone left (its lock is ours now: its owner let go of it): collected now, unless
  // it is nspawnd's container that outlived nspawnd (its helper still runs)
  if (aliveProc(previous.survivor)) {
    closeSync(fd);
    throw busyError(machine, o);
  }
  return collectRecord(machine, previous, o).then(
    (c) => {
      if (c.left.length > 0) {
        closeSync(fd);
        throw busyError(machine, o);
      }
      return start();
    },
    (e: unknown) => {
      closeSync(fd);
      throw e;
    },
  );
}

/** The other records whose owner does not run (cheap: a readdir, and a read of each record and its owner's /proc). */
export function orphanRuns(except: string | undefined, o: RecoveryOptions = {}): string[] {
  let names: string[];
  try {
    names = readdirSync(dirOf(o));
  } catch {
    return [];
  }
  const own = except === undefined ? undefined : runRecordPath(except, o);
  const out: string[] = [];
  for (const n of names) {
    if (!n.endsWith('.lock')) continue;
    const p = join(dirOf(o), n);
    if (p === own) continue;
    let text: string;
    try {
      text = readFileSync(p, 'utf8');
    } catch {
      continue; // gone: its run ended
    }
    const r = parseRecord(text);
    if (r && runAlive(r)) continue;
    out.push(p);
  }
  return out;
}

/**
 * Collects the runs of the records at PATHS (from orphanRuns()) whose lock is free: each under its NAME.collect and its
 * lock, skipping one a live run holds or another collector works on.
 */
export async function collectRuns(paths: readonly string[], o: RecoveryOptions = {}): Promise<CollectedRun[]> {
  const out: CollectedRun[] = [];
  for (const p of paths) {
    const c = await collectRunAt(p, o);
    if (c) out.push(c);
  }
  return out;
}

async function collectRunAt(path: string, o: RecoveryOptions, ifEmpty?: (machine: string) => Promise<CollectedRun | undefined>): Promise<CollectedRun | undefined> {
  const base = path.slice(path.lastIndexOf('/') + 1, -'.lock'.length);
  let collector: RangeLock | undefined;
  for (let attempt = 0; !collector; attempt++) {
    try {
      collector = tryLock(collectPath(path), o);
    } catch {
      return undefined;
    }
    if (collector) break;
    // another collector at work on it (another start, nspawnctl clean, nspawnd), or a start of that machine checking who
    // holds its lock: wait for it to finish and look again. Skipping it would let this collection end while the gone
    // run's leftovers are still there; once the other is done, the record is gone (all of it collected) or kept (then
    // we try too, and say what stays). One that died at work leaves NAME.collect: then the lock we waited for is ours.
    // (We hold no NAME.collect while we wait, and a holder never waits for one: no cycle.)
    if (attempt >= 3) return undefined;
    collector = waitTake(collectPath(path), o);
    if (!collector && !ifEmpty && !existsSync(path)) return undefined; // collected by the other
  }
  try {
    const lock = tryLock(path, o);
    if (!lock) return undefined; // a live run
    let text = '';
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      // unlinked meanwhile: nothing to collect
    }
    const r = parseRecord(text);
    const machine = typeof r?.machine === 'string' ? r.machine : (base.startsWith('machine-') ? unitNameUnescape(base.slice(8, -'.scope'.length)) : undefined) ?? base;
    if (r === undefined) {
      // empty: its owner was killed before it wrote anything (nothing made yet), or this is a record we made just now
      const c = ifEmpty ? await ifEmpty(machine) : undefined;
      if (c && c.left.length > 0) closeSync(lock.fd!);
      else lock.release();
      return c;
    }
    if (r.survivor && aliveProc(r.survivor)) {
      closeSync(lock.fd!); // nspawnd's container runs on: its record stays
      return undefined;
    }
    const c = await collectRecord(machine, r, o);
    if (c.left.length > 0) closeSync(lock.fd!);
    else lock.release();
    return c;
  } finally {
    collector.release();
  }
}

/** A record's --slice= path, checked (slicePathLevels() throws for anything else). */
function isSlicePath(p: string): boolean {
  try {
    slicePathLevels(p);
    return true;
  } catch {
    return false;
  }
}

/** Removes what the gone run of record R (of MACHINE) made. Call with its lock held. */
async function collectRecord(machine: string, r: Partial<RunRecord>, o: RecoveryOptions): Promise<CollectedRun> {
  const out: CollectedRun = { machine, removed: [], left: [] };
  const layout = o.layout ?? hostLayout();
  // 1. the scope: its container dies with its supervisor; a scope that keeps processes means the run is not over
  const scope = await collectMachineScope(machine, {
    layout,
    ...(o.cgroupFs ? { fs: o.cgroupFs } : {}),
    ...(o.drainTimeoutMs !== undefined ? { timeoutMs: o.drainTimeoutMs } : {}),
    // (--slice=: the scope is in that slice, not machine.slice)
    ...(typeof r.slice === 'string' && isSlicePath(r.slice) ? { slice: r.slice } : {}),
  });
  if (scope.left.length > 0) {
    out.left.push(`cgroup ${scope.left[0]}: it still has processes`);
    return out; // its root (a snapshot) may still be in use: everything waits
  }
  if (scope.found) out.removed.push('scope');
  // 2. -x's snapshot, under its own lock (a running container's is held: then it is not this run's to remove)
  if (typeof r.snapshot === 'string') {
    try {
      if (removeEphemeralOrphan(r.snapshot, o.env) === 'busy') out.left.push(`${r.snapshot}: in use`);
      else out.removed.push(`snapshot ${r.snapshot}`);
    } catch (e) {
      out.left.push(`${r.snapshot}: ${(e as Error).message}`);
    }
  } else if (typeof r.directory === 'string') {
    // 3. a plain run's image locks, beside its tree and in /run/systemd/nspawn/locks, where nobody holds them
    if (freeLockFiles([localLockPath(r.directory), globalLockPath(r.directory)], o) > 0) out.removed.push('image locks');
  }
  // 3b. --overlay='s scratch directories, only the names nspawn gives them (removeTree(): no symlink followed, no mount
  // crossed, nothing outside their parent)
  for (const d of Array.isArray(r.scratch) ? r.scratch : []) {
    if (typeof d !== 'string' || !(/^nspawn-temp-/.test(basename(d)) || basename(d).startsWith('.#'))) continue;
    if (lstatSync(d, { throwIfNoEntry: false }) === undefined) continue;
    try {
      removeTree(d, { within: dirname(d) });
      out.removed.push(`scratch ${d}`);
    } catch (e) {
      out.left.push(`${d}: ${(e as Error).message}`);
    }
  }
  // 4. -U: the range locks nobody holds
  if (r.userns === true || Object.keys(r).length === 0) {
    if (sweepRangeLocks(o) > 0) out.removed.push('range locks');
  }
  // 5. networking: the records of dead owners, and the nft table and ip_forward from the live ones
  if (r.net === true || Object.keys(r).length === 0) {
    try {
      const gone = await (o.collectNetwork ?? defaultCollectNetwork)();
      if (gone.length > 0) out.removed.push('network');
    } catch (e) {
      out.left.push(`network: ${(e as Error).message}`);
    }
  }
  return out;
}

// (a static import: a dynamic import() of a module of the bundle would make esbuild wrap every module of nspawn's
// bundle in a lazy initializer, which costs every start; @nspawn/net itself is loaded only when it is called)
const defaultCollectNetwork = (): Promise<string[]> => collectNetworkLeftovers();

/** unlinks the lock files among PATHS that exist and that nobody holds; returns how many */
function freeLockFiles(paths: ReadonlyArray<string | undefined>, o: RecoveryOptions): number {
  let n = 0;
  for (const p of paths) {
    if (p === undefined || !existsSync(p)) continue;
    try {
      const l = tryLock(p, o);
      if (!l) continue;
      l.release();
      n++;
    } catch {
      // not ours to judge
    }
  }
  return n;
}

/** the range locks under /run/systemd/nspawn-uid that nobody holds (systemd's protocol: a free one is garbage) */
function sweepRangeLocks(o: RecoveryOptions): number {
  const dir = o.uidLockDir ?? UID_LOCK_DIR;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  return freeLockFiles(names.filter((n) => /^\d+$/.test(n)).map((n) => join(dir, n)), o);
}

/**
 * Everything runs that are gone left behind, for `nspawnctl clean` and nspawnd's start: every record whose lock is
 * free (as a start does), then the scopes in machine.slice that no live run has and that are empty, the range locks
 * nobody holds, and the network leftovers of dead owners.
 */
export async function collectLeftovers(o: RecoveryOptions = {}): Promise<CollectedRun[]> {
  const out = await collectRuns(orphanRuns(undefined, o), o);
  const layout = o.layout ?? hostLayout();
  const fs = o.cgroupFs ?? nodeCgroupFs;
  // scopes without a record (an nspawn older than the records, a start cut short before its record was written):
  // under the name's lock, which no live run of that name holds then
  const units = new Set<string>();
  for (const h of machineHierarchies(layout)) {
    try {
      for (const d of fs.subdirs(join(h.mount, MACHINE_SLICE))) if (/^machine-.+\.scope$/.test(d)) units.add(d);
    } catch {
      // no machine.slice there
    }
  }
  for (const unit of units) {
    const machine = unitNameUnescape(unit.slice('machine-'.length, -'.scope'.length));
    if (machine === undefined) continue;
    const path = runRecordPath(machine, o);
    if (existsSync(path)) continue; // a live run's, or one collected (or left) above
    mkdirSync(dirOf(o), { recursive: true, mode: 0o755 });
    const c = await collectRunAt(path, o, async (m) => {
      const scope = await collectMachineScope(m, { layout, fs, timeoutMs: 0 });
      // one that has processes and no record is not ours to judge (a machine systemd or an older nspawn runs)
      return scope.left.length > 0 ? undefined : { machine: m, removed: scope.found ? ['scope'] : [], left: [] };
    });
    if (c && c.removed.length > 0) out.push(c);
  }
  const locks = sweepRangeLocks(o);
  if (locks > 0) out.push({ machine: '', removed: ['range locks'], left: [] });
  try {
    const gone = await (o.collectNetwork ?? defaultCollectNetwork)();
    if (gone.length > 0) out.push({ machine: gone.join(', '), removed: ['network'], left: [] });
  } catch (e) {
    out.push({ machine: '', removed: [], left: [`network: ${(e as Error).message}`] });
  }
  return out;
}

/**
 * The run record (see above) as an extension, first of defaultExtensions(): setup() takes the record (collecting a
 * gone run of the same name first), then collects the other runs that are gone; a hand-over passes the lock to the
 * helper (which removes the file at the end); otherwise teardown() removes it, last of all.
 */
export function recoveryExtension(o: RecoveryOptions = {}): ContainerExtension {
  let held: HeldRun | undefined;
  return {
    name: 'recovery',
    // nothing after the start: after a hand-over the helper holds the record
    needed: () => false,
    setupBeforeHandoff: true,
    setup(run) {
      const cfg = run.cfg;
      const took = (h: HeldRun): void | Promise<void> => {
        held = h;
        setRunRecord(cfg, h);
        const orphans = orphanRuns(cfg.machineName, o);
        if (orphans.length === 0) return;
        return collectRuns(orphans, o).then((cs) => {
          if (cfg.quiet) return;
          for (const c of cs) {
            if (c.removed.length > 0) run.log(`Removed what machine ${c.machine} left behind: ${c.removed.join(', ')}.`);
            for (const l of c.left) run.log(`Could not remove what machine ${c.machine} left behind: ${l}; 'nspawnctl clean' tries again.`);
          }
        });
      };
      const h = beginRun(cfg.machineName, { directory: cfg.directory, ...(cfg.slice ? { slice: cfg.slice.path } : {}) }, o);
      return h instanceof Promise ? h.then(took) : took(h);
    },
    plan(run, plan) {
      // handed over: the helper holds the record from the exec on, and removes it after everything else
      if (held && run.handoff) plan.inheritedLocks = [{ fd: held.keepAcrossExec(), path: held.path, exclusive: true }, ...(plan.inheritedLocks ?? [])];
    },
    teardown(run) {
      held?.release();
      held = undefined;
      setRunRecord(run.cfg, undefined);
    },
  };
}
