import { closeSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tryLockFile } from '@nspawn/uidrange';
import { beginRun, collectLeftovers, collectRuns, orphanRuns, type RecoveryOptions, runAlive, runRecordPath } from './recovery.js';
import { type CgroupFs, type CgroupLayout } from '@nspawn/runtime';
import { ContainerError } from '@nspawn/runtime';
import { sysAddon } from '@nspawn/runtime';

/** a PID no process has (above any pid_max) */
const DEAD = 0x7ffffff0;
const NONE: CgroupLayout = { kind: 'none' };
const UNIFIED: CgroupLayout = { kind: 'unified' };

/** cgroup2 at /sys/fs/cgroup, in memory: directories and the processes in each */
function memCgroups() {
  const dirs = new Set<string>(['/sys/fs/cgroup', '/sys/fs/cgroup/machine.slice']);
  const procs = new Map<string, number[]>();
  const fs: CgroupFs = {
    mkdir(p) {
      if (dirs.has(p)) throw Object.assign(new Error('EEXIST'), { code: 'EEXIST' });
      dirs.add(p);
    },
    rmdir(p) {
      if (!dirs.has(p)) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
      if ((procs.get(p) ?? []).length > 0 || [...dirs].some((d) => d.startsWith(`${p}/`))) throw Object.assign(new Error('EBUSY'), { code: 'EBUSY' });
      dirs.delete(p);
    },
    read(p) {
      const dir = p.slice(0, p.lastIndexOf('/'));
      if (!dirs.has(dir)) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
      if (p.endsWith('/cgroup.events')) return `populated ${[...procs].some(([d, ps]) => (d === dir || d.startsWith(`${dir}/`)) && ps.length > 0) ? 1 : 0}\n`;
      if (p.endsWith('/cgroup.procs')) return (procs.get(dir) ?? []).map((x) => `${x}\n`).join('');
      throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    },
    write() {},
    exists: (p) => dirs.has(p),
    subdirs: (p) => [...dirs].filter((d) => d.startsWith(`${p}/`) && !d.slice(p.length + 1).includes('/')).map((d) => d.slice(p.length + 1)),
    chown() {},
    id: () => 1n,
    kill() {
      throw new Error('nothing is killed here');
    },
  };
  return { fs, dirs, procs };
}

let dir: string;
let o: RecoveryOptions;
let netCollected: number;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'nspawn-test-recovery-'));
  mkdirSync(join(dir, 'uid'));
  netCollected = 0;
  o = {
    dir: join(dir, 'runs'),
    layout: NONE,
    uidLockDir: join(dir, 'uid'),
    env: { SYSTEMD_NSPAWN_LOCK: '0' },
    drainTimeoutMs: 0,
    collectNetwork: async () => {
      netCollected++;
      return ['x'];
    },
  };
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** a record left by a run that was killed (its lock free, its owner gone) */
function leftBehind(machine: string, extra: Record<string, unknown> = {}) {
  mkdirSync(o.dir!, { recursive: true });
  writeFileSync(runRecordPath(machine, o), JSON.stringify({ machine, pid: DEAD, startTime: 1, ...extra }));
}
const records = () => (existsSync(o.dir!) ? readdirSync(o.dir!).sort() : []);
const sync = <T>(x: T | Promise<T>): T => {
  if (x instanceof Promise) throw new Error('expected no waiting');
  return x;
};

/** another collector (another start, nspawnctl clean, nspawnd) at work on NAME: it holds NAME.collect, then NAME's lock */
function anotherCollectorAtWork(name: string) {
  const sys = sysAddon();
  return { sys, collector: tryLockFile(join(o.dir!, `${name}.collect`), sys)!, lock: tryLockFile(runRecordPath(name, o), sys)! };
}

describe('the run record', () => {
  it('is taken before anything else, says what the run makes, and goes at the end', () => {
    const held = sync(beginRun('box', { directory: '/srv/box' }, o));
    expect(held.path).toBe(join(o.dir!, 'box.lock'));
    expect(JSON.parse(readFileSync(held.path, 'utf8'))).toMatchObject({ machine: 'box', pid: process.pid, directory: '/srv/box' });
    held.note({ snapshot: '/srv/.#machine.box0123456789abcdef' });
    held.note({ userns: true });
    expect(JSON.parse(readFileSync(held.path, 'utf8'))).toMatchObject({ snapshot: '/srv/.#machine.box0123456789abcdef', userns: true });
    expect(runAlive(held.record)).toBe(true);
    held.release();
    held.release();
    expect(records()).toEqual([]);
  });

  it('a second start of a running machine is refused at once, naming its scope (and the first keeps its record)', () => {
    const held = sync(beginRun('box', {}, o));
    expect(() => beginRun('box', {}, o)).toThrow(new ContainerError('Machine box is already running.'));
    expect(() => beginRun('box', {}, { ...o, layout: UNIFIED })).toThrow(
      new ContainerError('Failed to allocate the cgroup of machine box: /sys/fs/cgroup/machine.slice/machine-box.scope is in use (is machine box already running?)'),
    );
    expect(records()).toEqual(['box.lock']);
    held.release();
    sync(beginRun('box', {}, o)).release();
  });

  it('markLeft(): something stayed, so the record stays too (unlocked) for a later start', () => {
    const held = sync(beginRun('box', {}, o));
    held.note({ pid: DEAD });
    held.markLeft();
    held.release();
    expect(records()).toEqual(['box.lock']);
    expect(orphanRuns(undefined, o)).toEqual([join(o.dir!, 'box.lock')]);
  });

  it('a start of a machine whose run was killed collects that run first (no clock involved: its lock is free)', async () => {
    const cg = memCgroups();
    const scope = '/sys/fs/cgroup/machine.slice/machine-box.scope';
    cg.dirs.add(scope);
    cg.procs.set(scope, [4242]); // its container, dying
    leftBehind('box', { userns: true, net: true });
    writeFileSync(join(o.uidLockDir!, '1254752256'), '');
    let waited = 0;
    const held = beginRun('box', {}, { ...o, layout: UNIFIED, cgroupFs: cg.fs, drainTimeoutMs: 5000 });
    expect(held).toBeInstanceOf(Promise);
    // the kernel ends the container a moment later
    setTimeout(() => {
      waited++;
      cg.procs.set(scope, []);
    }, 30);
    const h = await held;
    expect(waited).toBe(1);
    expect(cg.dirs.has(scope)).toBe(false);
    expect(readdirSync(o.uidLockDir!)).toEqual([]);
    expect(netCollected).toBe(1);
    expect(h.record.pid).toBe(process.pid);
    h.release();
  });

  it('refuses the name while the killed run\'s container keeps processes in its scope, and keeps its record', async () => {
    const cg = memCgroups();
    const scope = '/sys/fs/cgroup/machine.slice/machine-box.scope';
    cg.dirs.add(scope);
    cg.procs.set(scope, [4242]);
    leftBehind('box');
    await expect(beginRun('box', {}, { ...o, layout: UNIFIED, cgroupFs: cg.fs })).rejects.toThrow(/machine-box\.scope is in use/);
    expect(cg.dirs.has(scope)).toBe(true);
    expect(JSON.parse(readFileSync(runRecordPath('box', o), 'utf8')).pid).toBe(DEAD);
  });

  it('never takes over nspawnd\'s container that outlived nspawnd (its helper, the survivor, still runs)', () => {
    leftBehind('box', { survivor: { pid: process.pid, startTime: sync(beginRun('probe', {}, o)).record.startTime } });
    expect(() => beginRun('box', {}, o)).toThrow('Machine box is already running.');
    expect(orphanRuns(undefined, o)).toEqual([]);
    expect(records()).toContain('box.lock');
  });

  it('waits for a collector of the name (it holds NAME.collect) instead of taking it for a live run', () => {
    leftBehind('box');
    const { collector, lock } = anotherCollectorAtWork('box');
    let waitedFor = '';
    const held = sync(
      beginRun('box', {}, {
        ...o,
        waitLock: (fd) => {
          waitedFor = readdirSync(o.dir!).join(' ');
          // the collector is done: the record went, then NAME.collect
          lock.release();
          collector.release();
          expect(fd).toBeGreaterThan(2); // (the wait's descriptor: closed by beginRun)
        },
      }),
    );
    expect(waitedFor).toBe('box.collect box.lock');
    expect(held.record.pid).toBe(process.pid);
    held.release();
  });
});

describe('collecting other runs', () => {
  it('costs a readdir when there is nothing: no records, no directory', () => {
    expect(orphanRuns(undefined, o)).toEqual([]);
    sync(beginRun('box', {}, o));
    expect(orphanRuns('box', o)).toEqual([]);
    expect(orphanRuns(undefined, o)).toEqual([]); // box runs (its owner is this process)
  });

  it('collects what a killed run recorded, and only that: its snapshot, its scope, free range locks, the network', async () => {
    const cg = memCgroups();
    cg.dirs.add('/sys/fs/cgroup/machine.slice/machine-gone.scope');
    cg.dirs.add('/sys/fs/cgroup/machine.slice/machine-other.scope');
    cg.procs.set('/sys/fs/cgroup/machine.slice/machine-other.scope', [7]);
    const parent = join(dir, 'trees');
    const snapshot = join(parent, '.#machine.box0123456789abcdef');
    mkdirSync(join(snapshot, 'upper/etc'), { recursive: true });
    writeFileSync(join(snapshot, 'upper/etc/x'), '');
    leftBehind('gone', { snapshot, userns: true, net: true });
    const live = sync(beginRun('live', {}, o));
    writeFileSync(join(o.uidLockDir!, '1254752256'), '');
    const held = tryLockFile(join(o.uidLockDir!, '406061056'), sysAddon())!; // a running container's range
    const paths = orphanRuns('me', o);
    expect(paths).toEqual([runRecordPath('gone', o)]);
    const got = await collectRuns(paths, { ...o, layout: UNIFIED, cgroupFs: cg.fs });
    expect(got).toEqual([{ machine: 'gone', removed: ['scope', `snapshot ${snapshot}`, 'range locks', 'network'], left: [] }]);
    expect(existsSync(snapshot)).toBe(false);
    expect(cg.dirs.has('/sys/fs/cgroup/machine.slice/machine-other.scope')).toBe(true);
    expect(readdirSync(o.uidLockDir!)).toEqual(['406061056']);
    expect(records()).toEqual(['live.lock']);
    held.release();
    live.release();
  });

  it("removes --overlay='s scratch directories a killed run named, only by the names nspawn gives them", async () => {
    const scratch = join(dir, 'nspawn-temp-AbC123');
    mkdirSync(join(scratch, 'src/etc'), { recursive: true });
    const precious = join(dir, 'precious');
    mkdirSync(precious);
    writeFileSync(join(precious, 'keep'), '');
    leftBehind('gone', { scratch: [scratch, precious] });
    const got = await collectRuns(orphanRuns(undefined, o), o);
    expect(got).toEqual([{ machine: 'gone', removed: [`scratch ${scratch}`], left: [] }]);
    expect(existsSync(scratch)).toBe(false);
    expect(existsSync(join(precious, 'keep'))).toBe(true);
  });

  it('skips a record whose lock a live run holds even when its owner looks gone (the lock decides)', async () => {
    const live = sync(beginRun('live', {}, o));
    live.note({ pid: DEAD });
    expect(orphanRuns(undefined, o)).toEqual([live.path]);
    expect(await collectRuns([live.path], o)).toEqual([]);
    expect(records()).toEqual(['live.lock']);
    live.release();
  });

  it('waits for another collector at work on a gone run (it holds NAME.collect) instead of skipping it: when it returns, the run is collected', async () => {
    leftBehind('gone', { userns: true, net: true });
    const { collector, lock } = anotherCollectorAtWork('gone');
    const paths = orphanRuns(undefined, o);
    expect(paths).toEqual([runRecordPath('gone', o)]);
    let waitedFor = '';
    const got = await collectRuns(paths, {
      ...o,
      waitLock: () => {
        waitedFor = records().join(' ');
        // the other one is done: it collected all of it (the record goes, then NAME.collect)
        lock.release();
        collector.release();
      },
    });
    expect(waitedFor).toBe('gone.collect gone.lock');
    // it was the other's to report; nothing is left, and nothing was done twice
    expect(got).toEqual([]);
    expect(records()).toEqual([]);
    expect(netCollected).toBe(0);
  });

  it('after another collector that had to leave the gone run (its record kept), collects it itself and says so', async () => {
    const cg = memCgroups();
    cg.dirs.add('/sys/fs/cgroup/machine.slice/machine-gone.scope');
    leftBehind('gone', { net: true });
    const { collector, lock } = anotherCollectorAtWork('gone');
    let waits = 0;
    const got = await collectRuns(orphanRuns(undefined, o), {
      ...o,
      layout: UNIFIED,
      cgroupFs: cg.fs,
      waitLock: () => {
        waits++;
        // the other one gave up (its scope still had processes then): the record stays, unlocked
        closeSync(lock.fd!);
        collector.release();
      },
    });
    expect(waits).toBe(1);
    expect(got).toEqual([{ machine: 'gone', removed: ['scope', 'network'], left: [] }]);
    expect(records()).toEqual([]);
  });

  it('after another collector that died at work on the gone run (its NAME.collect left), takes over from it at once', async () => {
    leftBehind('gone', { net: true });
    const { sys, collector, lock } = anotherCollectorAtWork('gone');
    let waits = 0;
    const got = await collectRuns(orphanRuns(undefined, o), {
      ...o,
      waitLock: (fd) => {
        waits++;
        // kill -9: its descriptors close, its files stay; the lock we waited for on NAME.collect's file is ours
        closeSync(lock.fd!);
        closeSync(collector.fd!);
        expect(sys!.ofdLockExclusive(fd)).toBe(true);
      },
    });
    expect(waits).toBe(1);
    expect(got).toEqual([{ machine: 'gone', removed: ['network'], left: [] }]);
    expect(records()).toEqual([]);
  });

  it('collectLeftovers() (nspawnctl clean): also empty scopes no run has, and free range locks; never a populated scope without a record', async () => {
    const cg = memCgroups();
    for (const n of ['stale', 'busy', 'live']) cg.dirs.add(`/sys/fs/cgroup/machine.slice/machine-${n}.scope`);
    cg.procs.set('/sys/fs/cgroup/machine.slice/machine-busy.scope', [9]);
    const live = sync(beginRun('live', {}, o));
    writeFileSync(join(o.uidLockDir!, '1254752256'), '');
    const got = await collectLeftovers({ ...o, layout: UNIFIED, cgroupFs: cg.fs });
    expect(got).toEqual([
      { machine: 'stale', removed: ['scope'], left: [] },
      { machine: '', removed: ['range locks'], left: [] },
      { machine: 'x', removed: ['network'], left: [] },
    ]);
    expect([...cg.dirs].filter((d) => d.includes('machine-')).sort()).toEqual([
      '/sys/fs/cgroup/machine.slice/machine-busy.scope',
      '/sys/fs/cgroup/machine.slice/machine-live.scope',
    ]);
    expect(records()).toEqual(['live.lock']);
    live.release();
  });
});
