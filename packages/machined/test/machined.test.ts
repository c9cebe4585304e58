/**
 * On a real systemd host (tools/systemd-host: Debian 12 booted under systemd-nspawn, with machined and dbus), as
 * root: test/fixtures/register.mjs runs there under the host's node and registers a leader in a new PID namespace
 * through this package, as systemd-nspawn 252 would; machinectl, systemctl and systemd-cgls check what machined and
 * systemd made of it, side by side with systemd-nspawn 252 itself run in the same host.
 */
import { type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { bootSystemdHost, INNER_TREE, type SystemdHost } from '@nspawn/systemd-host';

const SCRIPT = join(fileURLToPath(new URL('.', import.meta.url)), 'fixtures/register.mjs');
let host: SystemdHost;

beforeAll(async () => {
  host = await bootSystemdHost({ name: 'mh-machined', log: (l) => console.log(l) });
});
afterAll(async () => {
  await host?.shutdown();
});
// a failed test must not leave its machine to the next one: SIGKILL to everything in each machine's unit
afterEach(async () => {
  if (!host) return;
  const left = (await host.exec(['machinectl', 'list', '--no-legend', '--no-pager'])).stdout.trim();
  for (const name of left.split('\n').filter(Boolean).map((l) => l.split(/\s+/)[0]!)) {
    await host.exec(['machinectl', 'kill', '--kill-whom=all', '--signal=SIGKILL', name]);
  }
  for (let i = 0; i < 100 && (await host.exec(['machinectl', 'list', '--no-legend', '--no-pager'])).stdout.trim(); i++) await new Promise((r) => setTimeout(r, 50));
});

interface Ev {
  event: string;
  [k: string]: unknown;
}
/** the fixture script in the host (in a transient scope, as a process of that host), its JSON lines as events */
function register(spec: Record<string, unknown>, opts: { asUser?: string } = {}) {
  const argv = ['node', SCRIPT, JSON.stringify(spec)];
  const proc: ChildProcess = host.spawn(opts.asUser ? ['setpriv', `--reuid=${opts.asUser}`, `--regid=${opts.asUser}`, '--clear-groups', '--', ...argv] : argv, {
    scope: !opts.asUser,
  });
  const events: Ev[] = [];
  const waiters: ((e: Ev) => void)[] = [];
  let buf = '';
  let stderr = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    for (let i; (i = buf.indexOf('\n')) >= 0; ) {
      const e = JSON.parse(buf.slice(0, i)) as Ev;
      buf = buf.slice(i + 1);
      const w = waiters.shift();
      if (w) w(e);
      else events.push(e);
    }
  });
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((r) => proc.on('close', (code) => r(code)));
  const next = (timeoutMs = 30_000) =>
    new Promise<Ev>((resolve, reject) => {
      const e = events.shift();
      if (e) return resolve(e);
      const t = setTimeout(() => reject(new Error(`no event from register.mjs in ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
      waiters.push((ev) => {
        clearTimeout(t);
        resolve(ev);
      });
    });
  return { proc, next, exited, stderr: () => stderr };
}

const show = async (name: string) =>
  Object.fromEntries(
    (await host.run(['machinectl', 'show', name]))
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  ) as Record<string, string>;
const unitProps = async (unit: string, props: string[]) => (await host.run(['systemctl', 'show', '-p', props.join(','), unit])).trim().split('\n').sort();
const machines = async () => (await host.run(['machinectl', 'list', '--no-pager', '--no-legend'])).trim();
// (the minimal Debian has no kill(1): the shell's builtin)
const kill9 = (pid: unknown) => host.run(['sh', '-c', `kill -9 ${Number(pid)}`]);
const isAlive = async (pid: number) => (await host.exec(['sh', '-c', `kill -0 ${pid}`])).code === 0;
const until = async (what: string, f: () => Promise<boolean>, ms = 15_000) => {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};
/** the innermost PID of a process of the host: 1 for a PID namespace's init */
const innerPid = async (pid: number) => /^NSpid:\s+(.*)$/m.exec(await host.run(['cat', `/proc/${pid}/status`]))![1]!.trim().split(/\s+/).at(-1);

describe('CreateMachineWithNetwork (no --keep-unit)', () => {
  it('machined makes machine-NAME.scope, delegated, with the leader in it: machinectl list/show/status, systemd-cgls -M; terminate ends it', async () => {
    const r = register({ name: 'mh-reg', rootDirectory: INNER_TREE, uuid: '6d6830313233343536373839616263ff' });
    const ev = await r.next();
    expect(ev, r.stderr()).toMatchObject({ event: 'registered', unit: 'machine-mh\\x2dreg.scope', controlGroup: '/machine.slice/machine-mh\\x2dreg.scope' });
    const leader = ev.leader as number;
    expect(await innerPid(leader)).toBe('1');
    expect(await show('mh-reg')).toMatchObject({
      Name: 'mh-reg',
      Id: '6d6830313233343536373839616263ff',
      Class: 'container',
      Service: 'nspawn',
      RootDirectory: INNER_TREE,
      Unit: 'machine-mh\\x2dreg.scope',
      Leader: String(leader),
      State: 'running',
    });
    expect(await machines()).toMatch(/^mh-reg\s+container\s+nspawn\s/m);
    // the client side, as a user that is not root (machined lets anyone list, as machinectl does)
    const lister = register({ mode: 'list', name: 'mh-reg' }, { asUser: '65534' });
    const listed = await lister.next();
    expect(listed, lister.stderr()).toMatchObject({ event: 'listed' });
    // (machined's order is its hashmap's)
    expect((listed.machines as { name: string }[]).sort((a, b) => a.name.localeCompare(b.name))).toEqual([
      { name: '.host', class: 'host', service: '', objectPath: '/org/freedesktop/machine1/machine/_2ehost' },
      { name: 'mh-reg', class: 'container', service: 'nspawn', objectPath: '/org/freedesktop/machine1/machine/mh_2dreg' },
    ]);
    const sh = await show('mh-reg');
    expect(listed.properties).toMatchObject({ Name: sh.Name, Id: sh.Id, Service: sh.Service, Unit: sh.Unit, Leader: Number(sh.Leader), Class: sh.Class, RootDirectory: sh.RootDirectory, State: sh.State, NetworkInterfaces: [] });
    expect(await lister.exited).toBe(0);
    const status = await host.run(['machinectl', 'status', 'mh-reg', '--no-pager']);
    expect(status).toContain('Unit: machine-mh\\x2dreg.scope');
    expect(status).toMatch(new RegExp(`${leader} sleep 1000`));
    expect(await host.run(['systemd-cgls', '-M', 'mh-reg', '--no-pager'])).toMatch(/Control group \/machine\.slice\/machine-mh\\x2dreg\.scope:[\s\S]*sleep 1000/);
    // the leader is in the scope in systemd's hierarchies (cgroup2 and name=systemd on this hybrid host)
    const cg = await host.run(['cat', `/proc/${leader}/cgroup`]);
    expect(cg).toMatch(/^0::\/machine\.slice\/machine-mh\\x2dreg\.scope$/m);
    expect(cg).toMatch(/name=systemd:\/machine\.slice\/machine-mh\\x2dreg\.scope$/m);
    expect(await unitProps('machine-mh\\x2dreg.scope', ['Slice', 'Delegate', 'DevicePolicy', 'DeviceAllow', 'CollectMode', 'TasksMax', 'ControlGroup'])).toEqual(
      [
        'CollectMode=inactive-or-failed',
        'ControlGroup=/machine.slice/machine-mh\\x2dreg.scope',
        'Delegate=yes',
        'DeviceAllow=/dev/net/tun rwm',
        'DeviceAllow=char-pts rw',
        'DevicePolicy=closed',
        'Slice=machine.slice',
        'TasksMax=16384',
      ].sort(),
    );
    // machinectl terminate: systemd asks the Controller (us) to stop (RequestStop), we kill the leader
    await host.run(['machinectl', 'terminate', 'mh-reg']);
    expect(await r.next()).toMatchObject({ event: 'request-stop', ours: true });
    expect(await r.next()).toMatchObject({ event: 'ended' });
    expect(await r.exited).toBe(0);
    expect(await isAlive(leader)).toBe(false);
    await until('mh-reg to be gone', async () => (await machines()) === '');
    expect((await host.exec(['systemctl', 'status', 'machine-mh\\x2dreg.scope'])).code).not.toBe(0);
  });

  it('side by side with systemd-nspawn 252 in the same host: the same class, root, unit, leader and scope', async () => {
    const ref = host.spawn(['systemd-nspawn', '-q', '-D', INNER_TREE, '-M', 'mh-ref', '/bin/sleep', '300'], { scope: true });
    const r = register({ name: 'mh-ours', rootDirectory: INNER_TREE, killSignal: 0 });
    const ev = await r.next();
    expect(ev.event, r.stderr()).toBe('registered');
    await until('mh-ref to run', async () => (await host.exec(['machinectl', 'show', 'mh-ref', '-p', 'State'])).stdout.includes('running'));
    const [theirs, ours] = [await show('mh-ref'), await show('mh-ours')];
    expect(ours.Class).toBe(theirs.Class);
    expect(ours.RootDirectory).toBe(theirs.RootDirectory);
    expect(ours.State).toBe(theirs.State);
    expect(theirs.Unit).toBe('machine-mh\\x2dref.scope');
    expect(ours.Unit).toBe('machine-mh\\x2dours.scope');
    // the leader of each: PID 1 of its own PID namespace
    expect(await innerPid(Number(theirs.Leader))).toBe('1');
    expect(await innerPid(Number(ours.Leader))).toBe('1');
    // on purpose: Service says who runs the machine (README "Differences from systemd")
    expect([theirs.Service, ours.Service]).toEqual(['systemd-nspawn', 'nspawn']);
    // their scopes: the same settings (systemd-nspawn's own payload/ sub-cgroup aside)
    const p = ['Slice', 'Delegate', 'DevicePolicy', 'DeviceAllow', 'CollectMode', 'TasksMax', 'KillMode'];
    expect(await unitProps('machine-mh\\x2dours.scope', p)).toEqual(await unitProps('machine-mh\\x2dref.scope', p));
    await host.run(['machinectl', 'terminate', 'mh-ref']);
    await host.run(['machinectl', 'terminate', 'mh-ours']);
    expect(await r.exited).toBe(0);
    await new Promise((res) => (ref.exitCode !== null ? res(undefined) : ref.on('close', res)));
    await until('both to be gone', async () => (await machines()) === '');
  });

  it('--slice= and --property= reach the scope', async () => {
    const r = register({ name: 'mh-props', slice: 'mh-test', properties: ['MemoryMax=64M', 'CPUWeight=50', 'Description=mh props test'] });
    const ev = await r.next();
    expect(ev, r.stderr()).toMatchObject({ event: 'registered', controlGroup: '/mh.slice/mh-test.slice/machine-mh\\x2dprops.scope' });
    expect(await unitProps('machine-mh\\x2dprops.scope', ['Slice', 'MemoryMax', 'CPUWeight', 'Description'])).toEqual(
      ['CPUWeight=50', 'Description=mh props test', 'MemoryMax=67108864', 'Slice=mh-test.slice'].sort(),
    );
    await kill9(ev.leader);
    expect(await r.exited).toBe(0);
    await until('mh-props to be gone', async () => (await machines()) === '');
  });

  it('kill -9 of the registering process: the machine stays while its leader lives, and goes with it', async () => {
    const r = register({ name: 'mh-kill9' });
    const ev = await r.next();
    expect(ev.event, r.stderr()).toBe('registered');
    await kill9(ev.pid);
    await r.exited;
    expect(await machines()).toMatch(/^mh-kill9\s/m);
    expect(await isAlive(ev.leader as number)).toBe(true);
    await kill9(ev.leader);
    await until('mh-kill9 to be gone', async () => (await machines()) === '');
    await until('its scope to be gone', async () => (await host.exec(['systemctl', 'is-active', 'machine-mh\\x2dkill9.scope'])).stdout.trim() !== 'active');
  });
});

describe('RegisterMachineWithNetwork (--keep-unit)', () => {
  it("registers the caller's own unit (its transient scope here), unregisters at the leader's end", async () => {
    const r = register({ name: 'mh-keep', keepUnit: true, rootDirectory: INNER_TREE });
    const ev = await r.next();
    expect(ev, r.stderr()).toMatchObject({ event: 'registered' });
    expect(ev.unit).toMatch(/^run-.*\.scope$/);
    expect(ev.controlGroup).toBe(`/system.slice/${ev.unit as string}`);
    expect(await show('mh-keep')).toMatchObject({ Unit: ev.unit, Class: 'container', Service: 'nspawn', Leader: String(ev.leader) });
    await kill9(ev.leader);
    expect(await r.next()).toMatchObject({ event: 'ended' });
    expect(await r.exited).toBe(0);
    expect(await machines()).toBe('');
  });
});

describe('--register=no without --keep-unit (allocate_scope)', () => {
  it('NAME.scope in machine.slice with the leader; not a machine', async () => {
    const r = register({ name: 'mh-scope', mode: 'scope' });
    const ev = await r.next();
    expect(ev, r.stderr()).toMatchObject({ event: 'registered', unit: 'mh-scope.scope', controlGroup: '/machine.slice/mh-scope.scope' });
    expect(await unitProps('mh-scope.scope', ['Delegate', 'Description', 'Slice'])).toEqual(['Delegate=yes', 'Description=Container mh-scope', 'Slice=machine.slice']);
    expect(await host.run(['cat', `/proc/${ev.leader}/cgroup`])).toMatch(/^0::\/machine\.slice\/mh-scope\.scope$/m);
    expect(await machines()).toBe('');
    await kill9(ev.leader);
    expect(await r.next()).toMatchObject({ event: 'ended' });
    await until('mh-scope.scope to be gone', async () => (await host.exec(['systemctl', 'is-active', 'mh-scope.scope'])).stdout.trim() !== 'active');
  });
});

describe('bad cases: one line, nothing left registered', () => {
  it('a name already registered', async () => {
    const first = register({ name: 'mh-dup' });
    const ev = await first.next();
    expect(ev.event, first.stderr()).toBe('registered');
    const second = register({ name: 'mh-dup' });
    expect(await second.next()).toEqual({ event: 'error', kind: 'exists', message: "Failed to register machine: Machine 'mh-dup' already exists" });
    expect(await second.exited).toBe(2);
    expect(await show('mh-dup')).toMatchObject({ Leader: String(ev.leader) });
    await kill9(ev.leader);
    await until('mh-dup to be gone', async () => (await machines()) === '');
  });

  it('the bus refusing: a user that is not root (no polkit here)', async () => {
    const r = register({ name: 'mh-nobody', plainLeader: true }, { asUser: '65534' });
    const ev = await r.next();
    expect(ev.event).toBe('error');
    console.log(`non-root: ${ev.message as string}`);
    expect(ev.kind).toBe('access-denied');
    expect(ev.message).toMatch(/^Failed to register machine: .+$/);
    expect(await r.exited).toBe(2);
    expect(await machines()).toBe('');
  });

  it('machined not running and not startable', async () => {
    await host.run(['systemctl', 'mask', '--runtime', '--now', 'systemd-machined.service']);
    try {
      const r = register({ name: 'mh-nomachined' });
      const ev = await r.next();
      expect(ev).toMatchObject({ event: 'error', kind: 'no-service', message: 'Failed to register machine: Unit systemd-machined.service is masked.' });
      expect(await r.exited).toBe(2);
    } finally {
      await host.run(['systemctl', 'unmask', '--runtime', 'systemd-machined.service']);
    }
    expect(await machines()).toBe('');
  });

  it('no system bus', async () => {
    const r = register({ name: 'mh-nobus', address: 'unix:path=/run/mh-no-such-bus' });
    expect(await r.next()).toEqual({ event: 'error', kind: 'no-bus', message: 'Failed to open system bus: No such file or directory' });
    expect(await r.exited).toBe(2);
  });
});
