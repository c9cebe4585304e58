/**
 * Recovery after kill -9 (issue 16 §3), as root on the real kernel: `nspawn -n -U -x` (and plain, -n, -U, -x runs, and
 * handed-over runs, where kill -9 hits the helper that replaced nspawn) killed at different moments; then a plain start
 * (no -n), `nspawnctl clean` or nspawnd's start collects everything the run left, each item checked: no snapshot, no
 * lock file, no mount, no nft rule, ip_forward as before, no network record, no range lock, no scope, no run record;
 * and one that comes while another collector is at work on the run waits for that one. The machine may be shared
 * (other checkouts' tests start containers, and so collect gone runs, meanwhile): what a check needs unchanged is held
 * from the kill on (the run's NAME.collect and record, its range locks, the network's state lock), ip_forward is
 * read under the state lock, and the killed runs' names carry this run's tag.
 * An immediate restart of the same machine works; a live container's resources (ours, and systemd-nspawn's) are never
 * collected. Then `-x` without `-M` (systemd 252's random names, 20 runs of one tree at once) and the differences from
 * 252 fixed with it, side by side: a tree without /root, `--cpu-affinity=`, zone names, long veth names' altnames.
 * Names start with rc-; trees live in /var/tmp/nspawn-test-rc-*.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { execa, execaSync } from 'execa';
import { closeSync, constants, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { globalLockPath } from '@nspawn/btrfs';
import { machineHierarchies, machineScope, probeHost, sysAddon } from '@nspawn/runtime';
import { COMMON_FLAGS, makeTempDir, mountsUnder, NSPAWN_BIN, REPO, requireRootAndSystemdNspawn, runTool, TOOL_ENV, toolCommand } from './helpers/containers.js';
import { makeBusyboxTree } from './helpers/busybox-tree.js';
// systemd's net_shorten_ifname(), to check both tools' names against (@nspawn/net is not a dependency of the CLI's tests)
import { shortenIfname } from '../../../packages/net/src/naming.js';

const NSPAWNCTL = join(REPO, 'apps/cli/bin/nspawnctl');
const NSPAWND = join(REPO, 'apps/cli/bin/nspawnd');
const RUNS = '/run/nspawn/runs';
const NET = '/run/nspawn/net';
const UID_LOCKS = '/run/systemd/nspawn-uid';
const FORWARD = '/proc/sys/net/ipv4/ip_forward';

let work: ReturnType<typeof makeTempDir>;
const hierarchies = () => machineHierarchies(probeHost().cgroups);
beforeAll(() => {
  requireRootAndSystemdNspawn();
  work = makeTempDir('nspawn-test-rc-');
  for (const d of ['run', 'machines', 'etc', 'log']) mkdirSync(join(work.dir, d));
});
afterAll(() => {
  // whatever a failed test left of its killed runs (their records name it all) goes before the directory does
  if (work) execaSync(NSPAWNCTL, ['clean'], { stdio: 'ignore', env: ctlEnv(), extendEnv: false, reject: false });
  const left = work?.remove() ?? [];
  expect(left, 'mounts left under the test directory').toEqual([]);
});

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length)
    try {
      await cleanups.pop()!();
    } catch (e) {
      console.error(e);
    }
});

/**
 * the killed runs' machine names end with this run's own tag: two runs of this file at once (two checkouts on one
 * machine) must not take each other's machines for their own
 */
const TAG = process.pid.toString(36);
const named = (n: string) => `${n}-${TAG}`;

let trees = 0;
/** a busybox tree of its own, in a directory of its own (its snapshots and lock files go beside it) */
function tree(name?: string): { parent: string; root: string } {
  const n = ++trees;
  name ??= `rc-t${n}`;
  const parent = join(work.dir, `p${n}-${name}`);
  mkdirSync(parent);
  return { parent, root: makeBusyboxTree(join(parent, name)) };
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor<T>(f: () => T | undefined | false, what: string, ms = 20000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
const ls = (d: string) => (existsSync(d) ? readdirSync(d).sort() : []);
const scopeDirs = (machine: string) => hierarchies().map((h) => join(h.mount, machineScope(machine).path)).filter((d) => existsSync(d));
const nftTable = () => String(execaSync('nft', ['list', 'table', 'ip', 'nspawn'], { reject: false, stripFinalNewline: false }).stdout ?? '');

/** the lock files in DIR that nobody holds (we can take their lock; we let go at once, keeping the file) */
function freeLocks(dir: string, names: readonly string[]): string[] {
  const sys = sysAddon();
  if (!sys) throw new Error('the runtime addon (nspawn-sys.node) is missing: pnpm build');
  return names.filter((n) => {
    let fd: number;
    try {
      fd = openSync(join(dir, n), constants.O_RDWR | constants.O_NOFOLLOW);
    } catch {
      return false;
    }
    try {
      return sys.ofdLockExclusive(fd);
    } finally {
      closeSync(fd);
    }
  });
}

const addon = () => {
  const sys = sysAddon();
  if (!sys) throw new Error('the runtime addon (nspawn-sys.node) is missing: pnpm build');
  return sys;
};
interface Held {
  /** lets go; UNLINK: as its holder would (release_lock_file()), else the file stays (a record kept for a collector) */
  release(unlink?: boolean): void;
}
/**
 * Takes PATH's exclusive OFD lock as nspawn's collectors and the network's state lock take it (the file made if need
 * be), waiting for it (WAIT) or not (then undefined when someone holds it). Let go of by the test's cleanup at the latest.
 */
function takeLock(path: string, wait: boolean): Held | undefined {
  const fd = openSync(path, constants.O_CREAT | constants.O_RDWR | constants.O_NOFOLLOW, 0o600);
  try {
    if (wait) addon().ofdLockWait(fd);
    else if (!addon().ofdLockExclusive(fd)) {
      closeSync(fd);
      return undefined;
    }
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  let held = true;
  const h: Held = {
    release(unlink = false) {
      if (!held) return;
      held = false;
      if (unlink)
        try {
          unlinkSync(path);
        } catch {
          // gone
        }
      closeSync(fd);
    },
  };
  cleanups.push(() => h.release());
  return h;
}
const NET_LOCK = join(NET, '.lock');
/** ip_forward as the host has it of its own: what nspawn saved before it turned it on, else what it is (read under the state lock) */
const hostForward = () => (existsSync(join(NET, 'ip_forward.orig')) ? readFileSync(join(NET, 'ip_forward.orig'), 'utf8') : readFileSync(FORWARD, 'utf8')).trim();
function underNetLock<T>(f: () => T): T {
  mkdirSync(NET, { recursive: true });
  const l = takeLock(NET_LOCK, true)!;
  try {
    return f();
  } finally {
    l.release();
  }
}

const FCNTL: Partial<Record<NodeJS.Architecture, number>> = { x64: 72, arm64: 25 };
/**
 * The processes that wait for PATH's lock: a task of theirs sleeps in fcntl(F_OFD_SETLKW) on a descriptor of PATH
 * (/proc/PID/task/TID/syscall: the number and arguments of the call a blocked task is in).
 */
function lockWaiters(path: string): number[] {
  const nr = FCNTL[process.arch];
  if (nr === undefined) throw new Error(`fcntl's number on ${process.arch}: add it to FCNTL`);
  const out: number[] = [];
  for (const p of ls('/proc').filter((d) => /^\d+$/.test(d)))
    for (const t of ls(`/proc/${p}/task`))
      try {
        const [call, fd, cmd] = readFileSync(`/proc/${p}/task/${t}/syscall`, 'utf8').split(' ');
        // F_OFD_SETLKW is 38
        if (Number(call) === nr && Number(cmd) === 38 && readlinkSync(`/proc/${p}/fd/${Number(fd)}`) === path) out.push(Number(p));
      } catch {
        // gone, running, or not a descriptor of PATH
      }
  return out;
}
/** whether PID is ROOT or one of its descendants */
function inTree(pid: number, root: number): boolean {
  for (let p = pid; p > 1; ) {
    if (p === root) return true;
    try {
      p = Number(/^PPid:\s*(\d+)$/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0);
    } catch {
      return false;
    }
  }
  return false;
}

interface Started {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  done: Promise<number | null>;
}
function start(cmd: string, args: string[], env: NodeJS.ProcessEnv = TOOL_ENV): Started {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const done = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await done;
    }
  });
  return { child, out: () => out, err: () => err, done };
}
const nspawn = (args: string[], env?: NodeJS.ProcessEnv) => start(process.execPath, [NSPAWN_BIN, ...COMMON_FLAGS, '-q', '--console=pipe', ...args], env);

type Moment = 'record' | 'snapshot' | 'network' | 'running';
/** what a killed run had, to check afterwards that it is gone */
interface Killed {
  name: string;
  t: { parent: string; root: string };
  flags: string[];
  handedOver: boolean;
  subnet?: string;
  /** the range locks that appeared while it ran */
  uidLocks: string[];
  /** --overlay='s scratch directories, as its run record named them */
  scratch: string[];
  forwardBefore: string;
  /** with HOLD: what the test holds after the kill so that no other collector on the machine touches the run */
  held?: { record: Held; rangeLocks: Held[]; net: Held };
}

/**
 * Starts `nspawn FLAGS -D TREE -M NAME` with a payload that says READY and sleeps, and kills it with SIGKILL at MOMENT:
 * once its run record exists, its snapshot, its network record, or once the payload runs.
 */
async function killAt(flags: string[], moment: Moment, name: string, hold = false): Promise<Killed> {
  const t = tree();
  const forwardBefore = underNetLock(hostForward);
  const uidBefore = ls(UID_LOCKS);
  const r = nspawn([...flags, '-D', t.root, '-M', name, 'sh', '-c', 'echo READY; exec sleep 600']);
  const pid = r.child.pid!;
  const netRecord = () => ls(NET).find((f) => f.startsWith(`${name}.`) && f.endsWith('.json'));
  switch (moment) {
    case 'record':
      await waitFor(() => existsSync(join(RUNS, `${name}.lock`)) || r.child.exitCode !== null, 'the run record');
      break;
    case 'snapshot':
      await waitFor(() => ls(t.parent).some((n) => n.startsWith('.#machine.')) || r.child.exitCode !== null, 'the snapshot');
      break;
    case 'network':
      await waitFor(() => netRecord() || r.child.exitCode !== null, 'the network record');
      break;
    case 'running':
      await waitFor(() => r.out().includes('READY') || r.child.exitCode !== null, 'the payload');
  }
  expect(r.child.exitCode, `nspawn ${flags.join(' ')} ended early: ${r.err()}`).toBeNull();
  let handedOver = false;
  try {
    handedOver = basename(readlinkSync(`/proc/${pid}/exe`)).startsWith('nspawn-helper');
  } catch {
    // gone
  }
  let subnet: string | undefined;
  const nr = netRecord();
  if (nr)
    try {
      subnet = (JSON.parse(readFileSync(join(NET, nr), 'utf8')) as { masqueradeSubnet?: string }).masqueradeSubnet;
    } catch {
      // half-written
    }
  let scratch: string[] = [];
  try {
    scratch = (JSON.parse(readFileSync(join(RUNS, `${name}.lock`), 'utf8')) as { scratch?: string[] }).scratch ?? [];
  } catch {
    // not written yet
  }
  // HOLD: the machine is shared (another start, nspawnctl clean or nspawnd collects whatever run is gone): before the
  // kill, the run's NAME.collect and the network's state lock; after it, the run's record (its lock free: its owner is
  // gone), and its range locks (free too): every collector leaves it alone then, until held.record is let go of
  const collectLock = hold ? takeLock(join(RUNS, `${name}.collect`), true) : undefined;
  const net = hold ? (mkdirSync(NET, { recursive: true }), takeLock(NET_LOCK, true)) : undefined;
  r.child.kill('SIGKILL');
  await r.done;
  const uidLocks = ls(UID_LOCKS).filter((n) => !uidBefore.includes(n));
  let held: Killed['held'];
  if (hold) {
    const record = takeLock(join(RUNS, `${name}.lock`), false);
    expect(record, 'the killed run\'s record, free').toBeDefined();
    held = { record: record!, rangeLocks: uidLocks.flatMap((n) => takeLock(join(UID_LOCKS, n), false) ?? []), net: net! };
    collectLock!.release(true); // (another collector that waited for it finds the record held now: it skips it)
  }
  return { name, t, flags, handedOver, ...(subnet ? { subnet } : {}), uidLocks, scratch, forwardBefore, ...(held ? { held } : {}) };
}
/** lets go of what killAt(..., hold) held, the record kept for the next collector */
function letGo(k: Killed): void {
  k.held?.record.release();
  for (const l of k.held?.rangeLocks ?? []) l.release();
  k.held?.net.release();
}

/** everything the killed run made is gone, each item by itself */
function expectAllCollected(k: Killed): void {
  const what = `${k.name} (${k.flags.join(' ') || 'plain'})`;
  expect(existsSync(join(RUNS, `${k.name}.lock`)), `${what}: run record`).toBe(false);
  expect(scopeDirs(k.name), `${what}: scope`).toEqual([]);
  expect(ls(k.t.parent), `${what}: snapshot and lock files beside the tree`).toEqual([basename(k.t.root)]);
  expect(mountsUnder(k.t.parent), `${what}: mounts`).toEqual([]);
  const global = globalLockPath(k.t.root);
  expect(global !== undefined && existsSync(global), `${what}: the tree's global image lock`).toBe(false);
  expect(ls(NET).filter((f) => f.startsWith(`${k.name}.`)), `${what}: network record`).toEqual([]);
  if (k.subnet) expect(nftTable(), `${what}: nft rules for ${k.subnet}`).not.toContain(k.subnet);
  // ip_forward, under the state lock (other containers on the machine start and stop meanwhile): the host's own value
  // as before, and turned on by nspawn (the value it found saved beside) only while some container's record is there
  const seen = underNetLock(() => ({ records: ls(NET).filter((f) => f.endsWith('.json')), saved: existsSync(join(NET, 'ip_forward.orig')), host: hostForward(), now: readFileSync(FORWARD, 'utf8').trim() }));
  expect(seen.host, `${what}: the host's own ip_forward`).toBe(k.forwardBefore);
  if (seen.records.length === 0) {
    expect(seen.saved, `${what}: the saved ip_forward`).toBe(false);
    expect(seen.now, `${what}: ip_forward`).toBe(k.forwardBefore);
  } else if (!seen.saved) expect(seen.now, `${what}: ip_forward while ${seen.records.join(', ')} run (not turned on by nspawn)`).toBe(k.forwardBefore);
  expect(k.scratch.filter((d) => existsSync(d)), `${what}: --overlay scratch directories`).toEqual([]);
  // a range lock that appeared during the run and is still there belongs to a live container (it holds it)
  expect(freeLocks(UID_LOCKS, k.uidLocks.filter((n) => existsSync(join(UID_LOCKS, n)))), `${what}: range locks nobody holds`).toEqual([]);
}

const ctlEnv = () => ({ ...TOOL_ENV, NSPAWND_RUNTIME_DIR: join(work.dir, 'run'), NSPAWND_MACHINES_DIR: join(work.dir, 'machines') });
const plainStart = async () => {
  const other = tree('rc-other');
  const r = await runTool('nspawn', ['-q', '--console=pipe', '-D', other.root, '-M', named(`rc-other${trees}`), '/bin/true']);
  expect(r.status, r.stderr).toBe(0);
  rmSync(other.parent, { recursive: true });
};
const clean = () => {
  const r = execaSync(NSPAWNCTL, ['clean'], { env: ctlEnv(), extendEnv: false, reject: false, stripFinalNewline: false });
  expect(r.exitCode, r.stderr).toBe(0);
  return r.stdout;
};
async function nspawndStart(): Promise<string> {
  const d = start(process.execPath, [NSPAWND], { ...ctlEnv(), NSPAWND_CONFIG_DIR: join(work.dir, 'etc'), NSPAWND_LOG_DIR: join(work.dir, 'log') });
  await waitFor(() => d.err().includes('listening on') || d.child.exitCode !== null, 'nspawnd');
  d.child.kill('SIGTERM');
  await d.done;
  return d.err();
}
/**
 * the collectors, started: each runs until it has collected (then SAID gives what it said, once it is done): a plain
 * start of another machine, `nspawnctl clean`, nspawnd (until it listens)
 */
const collectors: Record<string, () => { c: Started; said: () => Promise<string> }> = {
  'a plain start': () => {
    const c = nspawn(['-D', tree('rc-other').root, '-M', named(`rc-other${trees}`), '/bin/true']);
    return {
      c,
      said: async () => {
        expect(await c.done, c.err()).toBe(0);
        return c.err();
      },
    };
  },
  'nspawnctl clean': () => {
    const c = start(NSPAWNCTL, ['clean'], ctlEnv());
    return {
      c,
      said: async () => {
        expect(await c.done, c.err()).toBe(0);
        return c.out();
      },
    };
  },
  "nspawnd's start": () => {
    const c = start(process.execPath, [NSPAWND], { ...ctlEnv(), NSPAWND_CONFIG_DIR: join(work.dir, 'etc'), NSPAWND_LOG_DIR: join(work.dir, 'log') });
    return {
      c,
      said: async () => {
        await waitFor(() => c.err().includes('listening on') || c.child.exitCode !== null, 'nspawnd');
        c.child.kill('SIGTERM');
        await c.done;
        return c.err();
      },
    };
  },
};

describe('kill -9, then what collects the leftovers', () => {
  // kill -9 while it runs, and the window that follows on a machine where others start containers: another collector
  // (another start, nspawnctl clean, nspawnd) at work on the gone run, its NAME.collect and record held (as while it
  // waits for the container to leave its scope), killed there in turn (both files stay): the collector that came
  // meanwhile waits for that one, takes over from it, and collects all of it
  Object.entries(collectors).forEach(([how, collector], i) =>
    it(`nspawn -n -U -x killed while it runs, another collector killed at work on it: ${how} waits for that one, then collects all of it`, async () => {
      const k = await killAt(['-n', '-U', '-x'], 'running', named(`rc-nux${i}`), true);
      expect(k.subnet, 'the killed run had masquerading').toBeDefined();
      expect(k.uidLocks.length, 'the killed run had a range').toBeGreaterThan(0);
      // what it left before the collection, item by item (held: no other collector on the machine takes it meanwhile)
      expect(existsSync(join(RUNS, `${k.name}.lock`))).toBe(true);
      expect(ls(k.t.parent).some((n) => n.startsWith('.#machine.'))).toBe(true);
      expect(mountsUnder(k.t.parent).length).toBeGreaterThan(0);
      expect(nftTable()).toContain(k.subnet);
      expect(readFileSync(FORWARD, 'utf8').trim()).toBe('1');
      expect(k.held!.rangeLocks.length, 'its range locks, free').toBeGreaterThan(0);
      // the other collector: NAME.collect (and the record, held already)
      const collectPath = join(RUNS, `${k.name}.collect`);
      const other = takeLock(collectPath, true)!;
      for (const l of k.held!.rangeLocks) l.release();
      k.held!.net.release();
      const { c, said } = collector();
      await waitFor(() => lockWaiters(collectPath).some((p) => inTree(p, c.child.pid!)) || c.child.exitCode !== null, `${how} to wait for ${collectPath}`);
      expect(c.child.exitCode, `${how} returned while another collector was at work on ${k.name}: ${c.err()}`).toBeNull();
      expect(existsSync(join(RUNS, `${k.name}.lock`))).toBe(true);
      // whether it waits alone (another start on the machine may wait too: then that one may collect it, and say so;
      // alone, it takes NAME.collect over as it is let go of)
      const alone = lockWaiters(collectPath).every((p) => inTree(p, c.child.pid!));
      // kill -9 of the other: its locks go, its files stay (the record first: a collector takes NAME.collect first)
      k.held!.record.release();
      other.release();
      const out = await said();
      if (alone && how === 'nspawnctl clean') expect(out).toContain(`left behind by machine '${k.name}'`);
      if (alone && how === "nspawnd's start") expect(out).toMatch(new RegExp(`removed what machine ${k.name} left behind: scope, snapshot`));
      expectAllCollected(k);
    }),
  );

  const matrix: Array<[string[], Moment]> = [
    [['-n', '-U', '-x'], 'record'],
    [['-n', '-U', '-x'], 'snapshot'],
    [['-n', '-U', '-x'], 'network'],
    [[], 'running'],
    [['-n'], 'running'],
    [['-U'], 'running'],
    [['-x'], 'running'],
    [['-U', '-x'], 'snapshot'],
    [['--overlay=+/usr::/usr'], 'running'],
  ];
  matrix.forEach(([flags, moment], i) =>
    it(`nspawn ${flags.join(' ') || '(plain)'} killed at its ${moment}: a plain start collects all of it`, async () => {
      const k = await killAt(flags, moment, named(`rc-m${i}`));
      // runs without networking (or --overlay scratch) are handed over: the kill hit the helper in nspawn's place
      if (moment === 'running') expect(k.handedOver, 'handed over to the helper').toBe(!flags.includes('-n') && !flags.some((f) => f.startsWith('--overlay')));
      if (flags.some((f) => f.startsWith('--overlay'))) expect(k.scratch.length, 'its scratch directory, recorded').toBe(1);
      await plainStart();
      expectAllCollected(k);
    }),
  );

  it('an immediate restart of the same machine after kill -9 works (no "already running?"), and leaves nothing', async () => {
    for (const flags of [['-n', '-U', '-x'], ['-x']]) {
      const k = await killAt(flags, 'running', named('rc-again'));
      const r = await runTool('nspawn', ['-q', '--console=pipe', ...flags, '-D', k.t.root, '-M', k.name, 'sh', '-c', 'echo again']);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toBe('again\n');
      expectAllCollected(k);
    }
  });
});

describe('a run that could not remove everything keeps its record', () => {
  for (const handoff of ['1', '0'])
    it(`${handoff === '1' ? 'handed over (the helper)' : 'not handed over (Node)'}: a foreign mount in the snapshot stops its removal; once it is gone, the next start collects it`, async () => {
      const t = tree();
      const name = named(`rc-stuck${handoff}`);
      const r = nspawn(['-x', '-D', t.root, '-M', name, 'sh', '-c', 'echo READY; while [ ! -e /rc-stop ]; do sleep 0.05; done'], { ...TOOL_ENV, NSPAWN_HANDOFF: handoff });
      await waitFor(() => r.out().includes('READY') || r.child.exitCode !== null, 'the payload');
      const snapshot = join(t.parent, ls(t.parent).find((n) => n.startsWith('.#machine.') && !n.endsWith('.lck'))!);
      const foreign = join(snapshot, 'rc-foreign');
      mkdirSync(foreign);
      expect(execaSync('mount', ['-t', 'tmpfs', 'rc-foreign', foreign], { reject: false }).exitCode).toBe(0);
      cleanups.push(() => void execaSync('umount', [foreign], { stdio: 'ignore', reject: false }));
      execaSync('touch', [join(snapshot, 'root/rc-stop')]);
      expect(await r.done).toBe(0);
      expect(r.err()).toMatch(/Failed to remove|Cannot remove/);
      expect(existsSync(snapshot)).toBe(true);
      expect(existsSync(join(RUNS, `${name}.lock`)), 'the run record stays').toBe(true);
      expect(freeLocks(RUNS, [`${name}.lock`])).toEqual([`${name}.lock`]);
      // nothing of it is collected while the foreign mount is there; once it is gone, all of it is
      expect(execaSync('umount', [foreign], { reject: false }).exitCode).toBe(0);
      await plainStart();
      expect(existsSync(join(RUNS, `${name}.lock`))).toBe(false);
      expect(ls(t.parent)).toEqual([basename(t.root)]);
      expect(mountsUnder(t.parent)).toEqual([]);
    });
});

describe('what a live container holds is never collected', () => {
  it('a concurrent start, nspawnctl clean and nspawnd leave a running nspawn -n -U -x and a running systemd-nspawn -U -x alone', async () => {
    const ours = tree('rc-live');
    const theirs = tree('rc-sdlive');
    const payload = 'cat /proc/self/uid_map; echo READY; while [ ! -e /rc-stop ]; do sleep 0.05; done';
    const live = nspawn(['-n', '-U', '-x', '-D', ours.root, '-M', 'rc-live', 'sh', '-c', payload]);
    const [sdFile, sdPre] = toolCommand('systemd-nspawn');
    const sd = start(sdFile, [...sdPre, ...COMMON_FLAGS, '-q', '--console=pipe', '-U', '-x', '-D', theirs.root, '-M', 'rc-sdlive', 'sh', '-c', payload]);
    await waitFor(() => live.out().includes('READY'), 'our container');
    await waitFor(() => sd.out().includes('READY'), "systemd-nspawn's container");
    const base = (out: string) => /^\s*0\s+(\d+)\s+65536$/m.exec(out)![1]!;
    const rangeLocks = [base(live.out()), base(sd.out())];
    const snapshot = ls(ours.parent).find((n) => n.startsWith('.#machine.'))!;
    const sdSnapshot = ls(theirs.parent).find((n) => n.startsWith('.#machine.'))!;
    expect(snapshot).toBeDefined();
    expect(sdSnapshot).toBeDefined();
    const netRecord = ls(NET).find((f) => f.startsWith('rc-live.'))!;
    const subnet = (JSON.parse(readFileSync(join(NET, netRecord), 'utf8')) as { masqueradeSubnet: string }).masqueradeSubnet;
    const held = () => ({
      record: existsSync(join(RUNS, 'rc-live.lock')),
      scope: scopeDirs('rc-live').length,
      snapshot: existsSync(join(ours.parent, snapshot)) && mountsUnder(ours.parent).length > 0,
      net: existsSync(join(NET, netRecord)),
      nft: nftTable().includes(subnet),
      forward: readFileSync(FORWARD, 'utf8').trim(),
      sdSnapshot: existsSync(join(theirs.parent, sdSnapshot)),
      // both range locks there, and held
      rangeLocks: rangeLocks.filter((b) => existsSync(join(UID_LOCKS, b))).length,
      freeRangeLocks: freeLocks(UID_LOCKS, rangeLocks),
    });
    const before = held();
    expect(before).toMatchObject({ record: true, snapshot: true, net: true, nft: true, forward: '1', sdSnapshot: true, rangeLocks: 2, freeRangeLocks: [] });
    expect(before.scope).toBe(hierarchies().length);
    // a gone run to collect meanwhile, so that the collectors do work next to the live ones
    const k = await killAt(['-U', '-x'], 'running', named('rc-victim'));
    await plainStart();
    clean();
    await nspawndStart();
    expectAllCollected(k);
    expect(held()).toEqual(before);
    expect(live.child.exitCode).toBeNull();
    expect(sd.child.exitCode).toBeNull();
    // and at its own end it removes all of it
    execaSync('touch', [join(ours.parent, snapshot, 'root/rc-stop')]);
    execaSync('touch', [join(theirs.parent, sdSnapshot, 'rc-stop')]);
    expect(await live.done).toBe(0);
    expect(await sd.done).toBe(0);
    expect(ls(theirs.parent)).toEqual(['rc-sdlive']);
    expect(existsSync(join(RUNS, 'rc-live.lock'))).toBe(false);
    expect(scopeDirs('rc-live')).toEqual([]);
    expect(ls(ours.parent)).toEqual(['rc-live']);
    expect(ls(NET).filter((f) => f.startsWith('rc-live.'))).toEqual([]);
  });
});

describe('-x without -M (systemd-nspawn 252\'s determine_names())', () => {
  it('names the machine TREE-<16 hex digits>, as systemd-nspawn does (the host name inside)', async () => {
    const t = tree('rc-box1');
    const names: Record<string, string[]> = {};
    for (const tool of ['systemd-nspawn', 'nspawn'] as const) {
      names[tool] = [];
      for (let i = 0; i < 2; i++) {
        const r = await runTool(tool, ['-q', '--console=pipe', '-x', '-D', t.root, 'hostname']);
        expect(r.status, `${tool}: ${r.stderr}`).toBe(0);
        names[tool].push(r.stdout.trim());
      }
      for (const n of names[tool]!) expect(n, tool).toMatch(/^rc-box1-[0-9a-f]{16}$/);
      expect(names[tool]![0]).not.toBe(names[tool]![1]);
    }
    expect(ls(t.parent)).toEqual(['rc-box1']);
  });

  it('20 -x runs of one tree at once all succeed, each under a name of its own, and leave nothing', async () => {
    const t = tree('rc-many');
    const runs = Array.from({ length: 20 }, () => nspawn(['-x', '-D', t.root, 'sh', '-c', 'hostname; sleep 0.5']));
    const codes = await Promise.all(runs.map((r) => r.done));
    expect(
      codes.map((c, i) => (c === 0 ? 0 : `${c}: ${runs[i]!.err()}`)),
      'exit statuses',
    ).toEqual(Array(20).fill(0));
    const names = runs.map((r) => r.out().trim());
    for (const n of names) expect(n).toMatch(/^rc-many-[0-9a-f]{16}$/);
    expect(new Set(names).size).toBe(20);
    expect(ls(t.parent)).toEqual(['rc-many']);
    expect(mountsUnder(t.parent)).toEqual([]);
    for (const n of names) {
      expect(existsSync(join(RUNS, `${n}.lock`))).toBe(false);
      expect(scopeDirs(n)).toEqual([]);
    }
  });
});

describe('differences from systemd-nspawn 252, fixed (side by side)', () => {
  it('a tree without /root and no command: /root 0750 is made and the shell runs there', async () => {
    const out: Record<string, string> = {};
    for (const tool of ['systemd-nspawn', 'nspawn'] as const) {
      const t = tree(`rc-noroot-${tool === 'nspawn' ? 'n' : 's'}`);
      rmSync(join(t.root, 'root'), { recursive: true });
      const [file, pre] = toolCommand(tool);
      const r = await execa(file, [...pre, ...COMMON_FLAGS, '-q', '--console=pipe', '-D', t.root], {
        input: 'echo "home=$HOME pwd=$(pwd)"; exit 3\n',
        env: TOOL_ENV,
        extendEnv: false,
        reject: false,
        stripFinalNewline: false,
      });
      expect(r.exitCode, `${tool}: ${r.stderr}`).toBe(3);
      const st = statSync(join(t.root, 'root'));
      out[tool] = `${r.stdout}mode=${(st.mode & 0o7777).toString(8)} uid=${st.uid}`;
    }
    expect(out.nspawn).toBe('home=/root pwd=/root\nmode=750 uid=0');
    expect(out.nspawn).toBe(out['systemd-nspawn']);
  });

  it('--cpu-affinity= (empty) resets an earlier --cpu-affinity=', async () => {
    const t = tree('rc-cpu');
    const host = /^Cpus_allowed_list:\s*(\S+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1];
    const seen: Record<string, string[]> = {};
    for (const tool of ['systemd-nspawn', 'nspawn'] as const) {
      seen[tool] = [];
      for (const opt of [['--cpu-affinity=0'], ['--cpu-affinity=0', '--cpu-affinity=']]) {
        const r = await runTool(tool, ['-q', '--console=pipe', ...opt, '-D', t.root, 'sh', '-c', 'grep Cpus_allowed_list /proc/self/status']);
        expect(r.status, `${tool} ${opt.join(' ')}: ${r.stderr}`).toBe(0);
        seen[tool].push(r.stdout.replace(/\s+/g, ' ').trim());
      }
    }
    expect(seen.nspawn).toEqual(['Cpus_allowed_list: 0', `Cpus_allowed_list: ${host}`]);
    expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
  });

  it('a zone name that makes no interface name is refused up front with 252\'s message, and nothing is left', async () => {
    const t = tree('rc-zone');
    for (const zone of ['averyveryverylongzone', 'a:b']) {
      const said: Record<string, string> = {};
      for (const tool of ['systemd-nspawn', 'nspawn'] as const) {
        const r = await runTool(tool, ['-q', '--console=pipe', `--network-zone=${zone}`, '-D', t.root, '-M', 'rc-zone', 'true']);
        expect(r.status, tool).toBe(1);
        said[tool] = r.stderr.split('\n').find((l) => l.startsWith('Network zone name')) ?? r.stderr;
      }
      expect(said.nspawn).toBe(`Network zone name not valid: vz-${zone}`);
      expect(said.nspawn).toBe(said['systemd-nspawn']);
    }
    expect(existsSync(join(RUNS, 'rc-zone.lock'))).toBe(false);
    expect(scopeDirs('rc-zone')).toEqual([]);
  });

  it('long veth names are shortened and keep the full name as altname: ve- of a -x run\'s random name, vb- in a zone', async () => {
    /** the host side's name and altnames while TOOL's container runs */
    const observe = async (tool: 'systemd-nspawn' | 'nspawn', args: string[], prefix: string) => {
      const t = tree('rc-alt'); // (the same name under both: a -x name starts with it)
      const [file, pre] = toolCommand(tool);
      const r = start(file, [...pre, ...COMMON_FLAGS, '-q', '--console=pipe', ...args, '-D', t.root, 'sh', '-c', 'hostname; while [ ! -e /rc-stop ]; do sleep 0.05; done']);
      const name = (await waitFor(() => /^(\S+)\n/.exec(r.out()) ?? undefined, `${tool}'s container`))[1]!;
      const full = `${prefix}${name}`;
      const line = await waitFor(() => execaSync('ip', ['-o', 'link', 'show']).stdout.split('\n').find((l) => l.includes(`altname ${full}`)), `${tool}'s altname ${full}`);
      // the container's root: the tree, or -x's snapshot (our overlay's root below it, systemd-nspawn's copy itself)
      const snap = ls(t.parent).find((n) => n.startsWith('.#machine.') && !n.endsWith('.lck'));
      execaSync('touch', [snap ? join(t.parent, snap, tool === 'nspawn' ? 'root' : '', 'rc-stop') : join(t.root, 'rc-stop')]);
      await r.done;
      const host = /^\d+: ([^@:]+)/.exec(line)![1]!;
      return { name, full, host, altnames: [...line.matchAll(/altname (\S+)/g)].map((m) => m[1]) };
    };
    for (const [args, prefix] of [
      [['-n', '-x'], 've-'],
      [['--network-zone=rc-zn', '-M', 'rc-averyveryverylongname'], 'vb-'],
    ] as const) {
      const theirs = await observe('systemd-nspawn', [...args], prefix);
      const ours = await observe('nspawn', [...args], prefix);
      for (const o of [theirs, ours]) {
        expect(o.full.length).toBeGreaterThan(15);
        expect(o.host).toBe(shortenIfname(o.full));
        expect(o.altnames).toEqual([o.full]);
      }
      // the same name gives the same shortened name under both (a -x name is random: checked against the algorithm)
      if (prefix === 'vb-') expect(ours).toEqual(theirs);
    }
  });
});
