/**
 * Root integration tests of the container's cgroup and device policy on the real kernel: the scope in every
 * hierarchy (and nothing left after it), what the container sees of it, the accounting read from the host, one
 * machine per name, and the device policy through the v1 devices controller, the BPF program on the unified
 * hierarchy and both: host devices cannot be made or opened, the API devices, ptys and bound device nodes can.
 */
import { spawn } from 'node:child_process';
import { execaSync } from 'execa';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Settings } from '@nspawn/settings';
import {
  type ContainerExtension,
  ContainerError,
  deviceMechanisms,
  type HeldRun,
  machineHierarchies,
  machineScope,
  nodePrepareEnv,
  nodeTree,
  prepareContainer,
  probeHost,
  readMachineStats,
  type RunHooks,
  runContainer,
  setRunRecord,
} from '../src/index.js';
import { captureFiles, makeTree, requireRoot } from './helpers.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));

/**
 * rmdir of a machine.slice this test made. Containers of other tests (or other nspawns on the machine) may be in
 * it for a moment: wait for them; one still in it after that gets the slice as nspawn-made (the marker the last
 * nspawn out reads, /run/nspawn/machine.slice), so it removes the slice when it leaves.
 */
async function removeSliceWeMade(dir: string): Promise<void> {
  for (let i = 0; existsSync(dir); i++) {
    try {
      rmdirSync(dir);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EBUSY') throw e;
      if (i >= 25) {
        mkdirSync('/run/nspawn', { recursive: true });
        writeFileSync('/run/nspawn/machine.slice', 'machine.slice was made by nspawn: removed when empty\n');
        return;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
const host = probeHost();
const hierarchies = machineHierarchies(host.cgroups);
const mechanisms = deviceMechanisms({}, host);
let bpfProgs = '';
let work = '';

beforeAll(() => {
  requireRoot();
  // these tests are about a host with cgroups; this project's VMs are hybrid (v1 devices + cgroup2)
  expect(hierarchies.length, 'cgroup hierarchies on this host').toBeGreaterThan(0);
  work = makeTree('nspawn-cgroup-fixtures-').dir;
  bpfProgs = join(work, 'bpf-progs');
  const r = execaSync('gcc', ['-O1', '-Wall', '-o', bpfProgs, join(FIXTURES, 'bpf-progs.c')], { reject: false });
  if (r.exitCode !== 0) throw new Error(`gcc bpf-progs.c failed:\n${r.stderr}${r.failed ? r.shortMessage : ''}`);
});

/** names of the device programs loaded right now */
const devicePrograms = () =>
  String(execaSync(bpfProgs, [], { reject: false }).stdout)
    .split('\n')
    .filter((l) => / nspawn_devices$/.test(l));
/** machine scopes in any hierarchy */
const scopesLeft = () =>
  hierarchies.flatMap((h) => {
    const slice = join(h.mount, 'machine.slice');
    return existsSync(slice) ? readdirSync(slice).filter((n) => n.startsWith('machine-')).map((n) => join(slice, n)) : [];
  });

afterAll(() => {
  const scopes = scopesLeft();
  const programs = devicePrograms();
  // (removed before the checks: a failed check must not leave the fixtures behind)
  if (work) execaSync('rm', ['-rf', work], { reject: false });
  expect(scopes, 'machine scopes left behind').toEqual([]);
  expect(programs, 'device programs left loaded').toEqual([]);
});

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

function tree() {
  const t = makeTree('nspawn-cgroup-');
  cleanups.push(t.cleanup);
  return t;
}

/**
 * The name's run lock, as @nspawn/assembly's recovery extension holds it for a real start (/run/nspawn/runs/NAME.lock):
 * the engine alone holds none, so it takes an existing scope for a running machine's. A stand-in that only says
 * "held" (this test starts each name once at a time).
 */
const nameLock: ContainerExtension = {
  name: 'name-lock (test stand-in)',
  setup(r) {
    const record = { machine: r.cfg.machineName ?? '', pid: process.pid, startTime: 0 };
    const held: HeldRun = { path: '/dev/null', record, note: () => {}, markLeft: () => {}, keepAcrossExec: () => -1, release: () => {} };
    setRunRecord(r.cfg, held);
  },
  teardown(r) {
    setRunRecord(r.cfg, undefined);
  },
};

async function run(
  t: ReturnType<typeof tree>,
  settings: Settings,
  opts: { environ?: NodeJS.ProcessEnv; hooks?: Partial<RunHooks>; extensions?: ContainerExtension[] } = {},
) {
  const cap = captureFiles(t.dir);
  cleanups.push(cap.close);
  const log: string[] = [];
  const prepared = prepareContainer(
    { consoleMode: 'pipe', ...settings, directory: t.root },
    { ...nodePrepareEnv(nodeTree), environ: { ...process.env, ...opts.environ } },
  );
  const code = await runContainer(prepared, { log: (l) => log.push(l), ...opts.hooks }, undefined, cap.stdio, opts.extensions);
  return { code, ...cap.read(), log, name: prepared.config.machineName };
}
const sh = (script: string): Settings => ({ parameters: ['/bin/sh', '-c', script] });

describe('the container\'s cgroup', () => {
  it('is machine.slice/machine-NAME.scope in the hierarchies systemd uses (elsewhere: where nspawn was), seen as / from inside; the helper stays in its caller\'s; nothing is left', async () => {
    const t = tree();
    let hostView = '';
    let helperView = '';
    let pid = 0;
    const r = await run(t, sh('cat /proc/self/cgroup; sleep 0.3'), {
      hooks: {
        onStart(p) {
          pid = p;
          setTimeout(() => {
            hostView = readFileSync(`/proc/${p}/cgroup`, 'utf8');
            const ppid = readFileSync(`/proc/${p}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')[1];
            helperView = readFileSync(`/proc/${ppid}/cgroup`, 'utf8');
          }, 100);
        },
      },
    });
    expect(r.code, r.err).toBe(0);
    expect(pid).toBeGreaterThan(0);
    const scope = `/${machineScope(r.name).path}`;
    const lines = hostView.trim().split('\n');
    const keyed = (text: string) => new Map(text.trim().split('\n').map((l) => [l.split(':')[1]!.split(',').sort().join(','), l.replace(/^\d+:[^:]*:/, '')]));
    const container = keyed(hostView);
    const caller = keyed(readFileSync('/proc/self/cgroup', 'utf8'));
    const ours = new Set(hierarchies.map((h) => h.key));
    expect(ours.size).toBeGreaterThan(0);
    for (const [key, path] of container) expect(path, `host view, ${key || '(unified)'}`).toBe(ours.has(key) ? scope : caller.get(key));
    expect([...container.keys()].filter((k) => ours.has(k)).length).toBe(hierarchies.length);
    expect(r.out.trim().split('\n').map((l) => l.replace(/^\d+:[^:]*:/, ''))).toEqual(lines.map(() => '/'));
    expect(helperView, 'the helper is where the test runs').toBe(readFileSync('/proc/self/cgroup', 'utf8'));
    expect(scopesLeft()).toEqual([]);
  });

  it('has its CPU time, memory and tasks readable from the host while it runs', async () => {
    const t = tree();
    let stats: ReturnType<typeof readMachineStats>;
    const r = await run(t, { ...sh('i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; sleep 0.5'), machineName: 'stats-x' }, {
      hooks: {
        onStart() {
          setTimeout(() => (stats = readMachineStats('stats-x')), 400);
        },
      },
    });
    expect(r.code, r.err).toBe(0);
    expect(stats, 'stats during the run').toBeDefined();
    expect(stats!.cpuUsageNs).toBeGreaterThan(1_000_000);
    expect(stats!.memoryBytes).toBeGreaterThan(0);
    expect(stats!.tasks).toBeGreaterThanOrEqual(1);
    expect(readMachineStats(r.name)).toBeUndefined();
  });

  it('goes with what the container made in it, and kills what is left in it (only there)', async () => {
    const t = tree();
    const bystander = spawn('sleep', ['30'], { stdio: 'ignore' });
    let intruder: ReturnType<typeof spawn> | undefined;
    try {
      // the container makes a cgroup of its own below its root (name=systemd is writable inside) and goes there;
      // meanwhile a host process is put into the scope from outside, and survives the container's end
      const r = await run(t, { ...sh('mkdir /sys/fs/cgroup/systemd/payload && echo $$ > /sys/fs/cgroup/systemd/payload/cgroup.procs && cat /proc/self/cgroup | grep name=systemd; sleep 0.3'), machineName: 'leftover-x' }, {
        hooks: {
          onStart() {
            intruder = spawn('sleep', ['30'], { stdio: 'ignore' });
            for (const h of hierarchies) writeFileSync(join(h.mount, machineScope('leftover-x').path, 'cgroup.procs'), String(intruder.pid));
          },
        },
      });
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(/:name=systemd:\/payload$/m);
      const gone = await new Promise<NodeJS.Signals | null>((res) => (intruder!.exitCode !== null || intruder!.signalCode !== null ? res(intruder!.signalCode) : intruder!.on('exit', (_c, sig) => res(sig))));
      expect(gone, 'the process left in the scope was killed').toBe('SIGKILL');
      expect(bystander.exitCode, 'a host process outside the scope lives on').toBeNull();
      expect(scopesLeft()).toEqual([]);
    } finally {
      bystander.kill('SIGKILL');
      intruder?.kill('SIGKILL');
    }
  });

  it('refuses a second container of the same name while the first runs, naming the cgroup', async () => {
    const a = tree();
    const b = tree();
    let second: Promise<unknown> | undefined;
    const first = await run(a, { ...sh('sleep 0.6; echo first done'), machineName: 'dup-x' }, {
      hooks: {
        onStart() {
          second = run(b, { ...sh('echo second ran'), machineName: 'dup-x' }).then(
            (x) => x,
            (e: unknown) => e,
          );
        },
      },
    });
    expect(first.code, first.err).toBe(0);
    expect(first.out).toBe('first done\n');
    const hs = hierarchies[0]!;
    const refused = await second;
    expect(refused).toBeInstanceOf(ContainerError);
    expect((refused as Error).message).toBe(
      `Failed to allocate the cgroup of machine dup-x: ${hs.mount}/machine.slice/machine-dup\\x2dx.scope is in use (is machine dup-x already running?)`,
    );
    // and once the first has ended, the name is free again
    expect((await run(b, { ...sh('echo second ran'), machineName: 'dup-x' })).out).toBe('second ran\n');
  });

  it('replaces an empty scope a killed nspawn left behind at once, however new (its run lock is free: no clock involved)', async () => {
    const t = tree();
    const name = 'stale-x';
    const made: string[] = [];
    for (const h of hierarchies.filter((x) => x.unified || x.key === 'name=systemd')) {
      const slice = join(h.mount, 'machine.slice');
      if (!existsSync(slice)) {
        mkdirSync(slice);
        made.unshift(slice);
      }
      mkdirSync(join(h.mount, machineScope(name).path));
      mkdirSync(join(h.mount, machineScope(name).path, 'leftover'));
    }
    try {
      // made a moment ago: the start holds the name's run lock, so nobody else is setting it up
      const r = await run(t, { ...sh('cat /proc/self/cgroup | grep -c ":/$"'), machineName: name }, { extensions: [nameLock] });
      expect(r.code, r.err).toBe(0);
      // every hierarchy is its root inside (the cgroup namespace's), ours and the ones it stays in where nspawn was
      expect(Number(r.out.trim())).toBe(readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n').length);
      expect(scopesLeft()).toEqual([]);
    } finally {
      for (const d of made) await removeSliceWeMade(d);
    }
  });
});

/** Each line "NAME: ok" or "NAME: <the error's text>" (busybox prints strerror()). */
const TRY = `try() { n=$1; shift; if m=$("$@" 2>&1); then echo "$n: ok"; else echo "$n: \${m##*: }"; fi; }`;
const openR = (p: string) => `sh -c 'exec 3<${p}'`;
const openW = (p: string) => `sh -c 'exec 3>${p}'`;
const openRW = (p: string) => `sh -c 'exec 3<>${p}'`;
const results = (out: string) => Object.fromEntries(out.trim().split('\n').map((l) => l.split(': ') as [string, string]));

/** host nodes in the tree: an image that brings its own device nodes */
function imageNodes(root: string) {
  for (const [n, spec] of [['node-kmsg', ['c', '1', '11']], ['node-loop', ['b', '7', '7']]] as const) {
    const r = execaSync('mknod', [join(root, n), ...spec], { reject: false });
    expect(r.exitCode, `mknod ${n}`).toBe(0);
  }
}

const POLICY_PROBE = [
  TRY,
  'try mknod-mem mknod /dev/m c 1 1',
  'try mknod-kmsg mknod /dev/k c 1 11',
  'try mknod-loop mknod /dev/b b 7 7',
  'try mknod-pts mknod /dev/p c 136 9',
  'try mknod-null mknod /dev/null2 c 1 3',
  `try image-kmsg-w ${openW('/node-kmsg')}`,
  `try image-loop-r ${openR('/node-loop')}`,
  `try null-rw ${openRW('/dev/null')}`,
  `try zero-r ${openR('/dev/zero')}`,
  `try full-w ${openW('/dev/full')}`,
  `try random-r ${openR('/dev/random')}`,
  `try urandom-r ${openR('/dev/urandom')}`,
  `try tun-rw ${openRW('/dev/net/tun')}`,
  `try ptmx-rw ${openRW('/dev/ptmx')}`,
  `try console-rw ${openRW('/dev/console')}`,
  'try tty tty',
].join('\n');

const CLOSED_RESULTS = {
  'mknod-mem': 'Operation not permitted',
  'mknod-kmsg': 'Operation not permitted',
  'mknod-loop': 'Operation not permitted',
  'mknod-pts': 'Operation not permitted',
  'mknod-null': 'ok',
  'image-kmsg-w': 'Operation not permitted',
  'image-loop-r': 'Operation not permitted',
  'null-rw': 'ok',
  'zero-r': 'ok',
  'full-w': 'ok',
  'random-r': 'ok',
  'urandom-r': 'ok',
  'tun-rw': 'ok',
  'ptmx-rw': 'ok',
  'console-rw': 'ok',
  tty: 'ok',
};

describe('the device policy (DevicePolicy=closed and nspawn\'s DeviceAllow=)', () => {
  it('this host has both mechanisms (a hybrid host)', () => {
    expect(mechanisms).toEqual({ v1: true, bpf: true });
  });

  for (const mode of ['v1', 'bpf', 'v1,bpf', '']) {
    it(`${mode || 'default (every mechanism the host has)'}: host devices cannot be made or opened; the API devices and the pty console work`, async () => {
      const t = tree();
      imageNodes(t.root);
      let attached: string[] = [];
      let devicesList = '';
      const r = await run(t, { parameters: ['/bin/sh', '-c', `${POLICY_PROBE}\nsleep 0.2`], consoleMode: 'read-only' }, {
        environ: { NSPAWN_DEVICE_POLICY: mode },
        hooks: {
          onStart(pid) {
            const scope = readFileSync(`/proc/${pid}/cgroup`, 'utf8').match(/^0::(.*)$/m)![1]!;
            const unified = hierarchies.find((h) => h.unified)!.mount;
            attached = String(execaSync(bpfProgs, ['attached', unified + scope], { reject: false }).stdout).trim().split('\n').filter((l) => l);
            const devs = hierarchies.find((h) => h.key === 'devices')!.mount;
            devicesList = readFileSync(`${devs}${readFileSync(`/proc/${pid}/cgroup`, 'utf8').match(/^\d+:devices:(.*)$/m)![1]}/devices.list`, 'utf8');
          },
        },
      });
      expect(r.code, r.err).toBe(0);
      expect(results(r.out.replace(/\r/g, ''))).toEqual(CLOSED_RESULTS);
      const bpf = mode === '' || mode.includes('bpf');
      const v1 = mode === '' || mode.includes('v1');
      expect(attached.map((l) => l.replace(/^\d+ /, '')), 'BPF programs on the scope').toEqual(bpf ? ['nspawn_devices'] : []);
      expect(devicesList.trim().split('\n')[0], 'devices.list of the scope').toBe(v1 ? 'c 1:3 rwm' : 'a *:* rwm');
    });
  }

  it('none: without a policy (as under systemd-nspawn --keep-unit --register=no) the same nodes can be made and opened', async () => {
    const t = tree();
    imageNodes(t.root);
    const r = await run(t, { parameters: ['/bin/sh', '-c', POLICY_PROBE], consoleMode: 'read-only' }, { environ: { NSPAWN_DEVICE_POLICY: 'none' } });
    expect(r.code, r.err).toBe(0);
    const res = results(r.out.replace(/\r/g, ''));
    expect(res).toMatchObject({ 'mknod-kmsg': 'ok', 'mknod-loop': 'ok', 'mknod-pts': 'ok', 'image-kmsg-w': 'ok', 'image-loop-r': 'ok', 'null-rw': 'ok' });
  });

  it('a bound device node is allowed as bound: rw with --bind, r with --bind-ro', async () => {
    const t = tree();
    const kmsg = join(t.dir, 'host-kmsg');
    const loop = join(t.dir, 'host-loop');
    expect(execaSync('mknod', [kmsg, 'c', '1', '11'], { reject: false }).exitCode).toBe(0);
    expect(execaSync('mknod', [loop, 'b', '7', '7'], { reject: false }).exitCode).toBe(0);
    const script = [
      TRY,
      `try kmsg-w ${openW('/dev/kmsg')}`,
      `try loop-r ${openR('/dev/loopx')}`,
      `try loop-w ${openW('/dev/loopx')}`,
      'try loop-mknod mknod /dev/l2 b 7 7',
    ].join('\n');
    const bind = (source: string, destination: string, readOnly: boolean) => ({ type: 'bind' as const, source, destination, readOnly, recursive: true, sourceInRoot: false });
    const rw = await run(t, { parameters: ['/bin/sh', '-c', script], customMounts: [bind(kmsg, '/dev/kmsg', false), bind(loop, '/dev/loopx', false)] });
    expect(rw.code, rw.err).toBe(0);
    expect(results(rw.out)).toEqual({ 'kmsg-w': 'ok', 'loop-r': 'ok', 'loop-w': 'ok', 'loop-mknod': 'Operation not permitted' });
    const ro = await run(t, { parameters: ['/bin/sh', '-c', script], customMounts: [bind(kmsg, '/dev/kmsg', true), bind(loop, '/dev/loopx', true)] });
    expect(ro.code, ro.err).toBe(0);
    // (a read-only mount does not stop writes to a device node: the policy does)
    expect(results(ro.out)).toEqual({ 'kmsg-w': 'Operation not permitted', 'loop-r': 'ok', 'loop-w': 'Operation not permitted', 'loop-mknod': 'Operation not permitted' });
  });

  it('why both on a hybrid host: root in the container can lift its v1 rules, not the BPF program', async () => {
    const lift = [
      TRY,
      'try remount mount -o remount,bind,rw /sys/fs/cgroup/devices',
      "try allow-all sh -c 'echo a > /sys/fs/cgroup/devices/devices.allow'",
      'try mknod-kmsg mknod /dev/k c 1 11',
    ].join('\n');
    const t = tree();
    const v1 = await run(t, sh(lift), { environ: { NSPAWN_DEVICE_POLICY: 'v1' } });
    expect(results(v1.out)).toEqual({ remount: 'ok', 'allow-all': 'ok', 'mknod-kmsg': 'ok' });
    const both = await run(t, sh(lift), { environ: { NSPAWN_DEVICE_POLICY: 'v1,bpf' } });
    expect(results(both.out)).toEqual({ remount: 'ok', 'allow-all': 'ok', 'mknod-kmsg': 'Operation not permitted' });
  });

  it('$NSPAWN_DEVICE_POLICY cannot ask for what the host lacks', () => {
    expect(() => deviceMechanisms({ deviceCgroup: ['bpf'] }, { ...host, cgroups: { kind: 'legacy', hierarchies: [{ name: 'devices', options: 'devices' }] } })).toThrow(
      /no unified cgroup hierarchy/,
    );
    expect(() => deviceMechanisms({ deviceCgroup: ['v1'] }, { ...host, cgroups: { kind: 'unified' } })).toThrow(/v1 devices controller/);
  });
});
