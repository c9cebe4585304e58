import { describe, expect, it } from 'vitest';
import { BusError, Machined, type MethodCall, recordingBus, Variant } from '@nspawn/machined';
import type { ContainerConfig, ContainerRun } from '@nspawn/runtime';
import { ContainerError } from '@nspawn/runtime';
import { systemdExtension } from './systemd.js';
import { registeredWithMachined } from './systemd-host.js';
import { lazySystemdExtension } from './systemd-lazy.js';
import { chooseExtensions } from './start.js';
import { baseConfig, basePlan } from './test/fixtures.js';

/** machined and systemd as a recording bus: the machine NAME is known when KNOWN */
function services(opts: { known?: boolean; createError?: BusError } = {}) {
  return recordingBus((m: MethodCall) => {
    switch (m.member) {
      case 'GetMachine':
        if (opts.known) return ['/org/freedesktop/machine1/machine/tree'];
        throw new BusError('org.freedesktop.machine1.NoSuchMachine', "No machine 'tree' known");
      case 'CreateMachineWithNetwork':
      case 'RegisterMachineWithNetwork':
        if (opts.createError) throw opts.createError;
        return ['/org/freedesktop/machine1/machine/tree'];
      case 'GetAll':
        return [{ Name: new Variant('s', 'tree'), Unit: new Variant('s', 'machine-tree.scope'), Leader: new Variant('u', 4242) }];
      case 'GetUnit':
        return ['/org/freedesktop/systemd1/unit/machine_2dtree_2escope'];
      case 'Get':
        return [new Variant('s', '/machine.slice/machine-tree.scope')];
      case 'StartTransientUnit':
        return ['/org/freedesktop/systemd1/job/7'];
      default:
        return [];
    }
  });
}

function runOf(over: Partial<ContainerConfig> = {}): ContainerRun & { lines: string[] } {
  const lines: string[] = [];
  return { cfg: baseConfig(over), log: (l) => lines.push(l), lines };
}

describe('systemdExtension', () => {
  it('does nothing on a host without systemd: the engine makes its own cgroup, nspawnd stays the registry', async () => {
    let opened = 0;
    const x = systemdExtension({ booted: () => false, open: async () => (opened++, new Machined(services())) });
    const run = runOf();
    expect(x.needed!(run.cfg)).toBe(false);
    expect(x.providesCgroup!(run.cfg)).toBe(false);
    await x.setup!(run);
    const plan = basePlan();
    x.plan!(run, plan);
    expect(plan.sync).toBe(false);
    expect(await x.attach!(run, 4242)).toBeUndefined();
    expect(opened).toBe(0);
  });

  it('registers PID 1 at the sync point (CreateMachineWithNetwork), answers its scope, unregisters after the boot', async () => {
    const bus = services();
    const x = systemdExtension({ booted: () => true, open: async () => new Machined(bus) });
    const run = runOf({ unit: { keepUnit: false, killSignal: 37, properties: ['MemoryMax=1G'] } });
    expect(x.providesCgroup!(run.cfg)).toBe(true);
    await x.setup!(run);
    const plan = basePlan();
    x.plan!(run, plan);
    expect(plan.sync).toBe(true);
    expect(await x.attach!(run, 4242)).toEqual({ cgroup: '/machine.slice/machine-tree.scope' });
    expect(registeredWithMachined(run)).toBe(true);
    const create = bus.calls.find((c) => c.member === 'CreateMachineWithNetwork')!;
    expect(create.body!.slice(0, 6)).toEqual(['tree', Buffer.from('0123456789abcdef0123456789abcdef', 'hex'), 'nspawn', 'container', 4242, '/srv/tree']);
    const props = (create.body![7] as [string, Variant][]).map(([k]) => k);
    expect(props).toEqual(expect.arrayContaining(['Controller', 'KillSignal', 'KillMode', 'MemoryMax']));
    // machinectl terminate: systemd's RequestStop to us; the container gets its kill signal
    const killed: number[] = [];
    const kill = process.kill;
    process.kill = ((pid: number, sig: number) => (killed.push(pid, sig), true)) as typeof process.kill;
    try {
      bus.emit({ path: '/org/freedesktop/systemd1/unit/machine_2dtree_2escope', interface: 'org.freedesktop.systemd1.Scope', member: 'RequestStop', body: [] });
      bus.emit({ path: '/org/freedesktop/systemd1/unit/other', interface: 'org.freedesktop.systemd1.Scope', member: 'RequestStop', body: [] });
    } finally {
      process.kill = kill;
    }
    expect(killed).toEqual([4242, 37]);
    expect(run.lines).toContain('Container termination requested. Attempting to halt container.');
    await x.detach!(run);
    expect(bus.calls.at(-1)).toMatchObject({ member: 'UnregisterMachine', body: ['tree'] });
    expect(registeredWithMachined(run)).toBe(false);
    await x.teardown!(run);
    expect(bus.closed).toBe(true);
  });

  it('--keep-unit registers the caller\'s unit (RegisterMachineWithNetwork): payload/ and supervisor/', async () => {
    const bus = services();
    const x = systemdExtension({ booted: () => true, open: async () => new Machined(bus) });
    const run = runOf({ unit: { keepUnit: true, killSignal: 0 } });
    await x.setup!(run);
    expect(await x.attach!(run, 4242)).toEqual({ cgroup: '/machine.slice/machine-tree.scope', supervisor: true });
    expect(bus.calls.map((c) => c.member)).toContain('RegisterMachineWithNetwork');
    expect(bus.matches.some((m) => m.includes('RequestStop'))).toBe(false);
  });

  it('--register=no allocates a scope of systemd\'s, ended after the boot; with --keep-unit it takes our own cgroup', async () => {
    const bus = services();
    const x = systemdExtension({ booted: () => true, open: async () => new Machined(bus) });
    const run = runOf({ register: false, unit: { keepUnit: false, killSignal: 0 } });
    await x.setup!(run);
    const attached = x.attach!(run, 4242);
    // the start job's end
    await new Promise((r) => setTimeout(r, 10));
    bus.emit({ path: '/org/freedesktop/systemd1', interface: 'org.freedesktop.systemd1.Manager', member: 'JobRemoved', body: [7, '/org/freedesktop/systemd1/job/7', 'tree.scope', 'done'] });
    expect(await attached).toEqual({ cgroup: '/machine.slice/machine-tree.scope' });
    expect(registeredWithMachined(run)).toBe(false);
    await x.detach!(run);
    expect(bus.calls.map((c) => c.member)).toEqual(expect.arrayContaining(['StartTransientUnit', 'AbandonScope', 'KillUnit', 'UnrefUnit']));
    expect(bus.calls.map((c) => c.member)).not.toContain('CreateMachineWithNetwork');

    let opened = 0;
    const keep = systemdExtension({ booted: () => true, open: async () => (opened++, new Machined(services())) });
    const kr = runOf({ register: false, unit: { keepUnit: true, killSignal: 0, slice: 'x' } });
    await keep.setup!(kr);
    expect(kr.lines).toEqual(['--slice= and --property= have no effect with --register=no --keep-unit.']);
    const r = await keep.attach!(kr, 4242);
    expect(r).toMatchObject({ supervisor: true });
    expect((r as { cgroup: string }).cgroup).toMatch(/^\//);
    expect(opened).toBe(0);
  });

  it('refuses before anything is made: a name machined knows, no bus, an invalid --property=', async () => {
    const known = systemdExtension({ booted: () => true, open: async () => new Machined(services({ known: true })) });
    await expect(known.setup!(runOf())).rejects.toThrow(new ContainerError("Failed to register machine: Machine 'tree' already exists"));
    const noBus = systemdExtension({ booted: () => true, open: () => import('@nspawn/machined').then((m) => m.openMachined({ address: 'unix:path=/nonexistent/mh-bus' })) });
    await expect(noBus.setup!(runOf())).rejects.toThrow(/^Failed to open system bus: /);
    let opened = 0;
    const bad = systemdExtension({ booted: () => true, open: async () => (opened++, new Machined(services())) });
    await expect(bad.setup!(runOf({ unit: { keepUnit: false, killSignal: 0, properties: ['Bogus=1'] } }))).rejects.toThrow(ContainerError);
    expect(opened).toBe(0);
  });

  it('loaded lazily (defaultExtensions()): nothing without systemd; on a systemd host the extension itself, delegated to', async () => {
    let opened = 0;
    const off = lazySystemdExtension({ booted: () => false, open: async () => (opened++, new Machined(services())) });
    const r0 = runOf();
    expect(off.needed!(r0.cfg)).toBe(false);
    expect(off.providesCgroup!(r0.cfg)).toBe(false);
    await off.setup!(r0);
    const p0 = basePlan();
    off.plan!(r0, p0);
    expect(p0.sync).toBe(false);
    expect(await off.attach!(r0, 4242)).toBeUndefined();
    await off.detach!(r0);
    await off.teardown!(r0);
    expect(opened).toBe(0);

    const bus = services();
    const on = lazySystemdExtension({ booted: () => true, open: async () => new Machined(bus) });
    const run = runOf();
    expect(on.needed!(run.cfg)).toBe(true);
    expect(on.providesCgroup!(run.cfg)).toBe(true);
    await on.setup!(run);
    const plan = basePlan();
    on.plan!(run, plan);
    expect(plan.sync).toBe(true);
    expect(await on.attach!(run, 4242)).toEqual({ cgroup: '/machine.slice/machine-tree.scope' });
    expect(registeredWithMachined(run)).toBe(true);
    await on.detach!(run);
    expect(bus.calls.at(-1)).toMatchObject({ member: 'UnregisterMachine', body: ['tree'] });
    expect(registeredWithMachined(run)).toBe(false);
    await on.teardown!(run);
    expect(bus.closed).toBe(true);
  });

  it('is part of every start, before nspawnd\'s registration', () => {
    expect(chooseExtensions().map((x) => x.name)).toEqual(['recovery', 'storage', 'private-users', 'network', 'systemd', 'register']);
    expect(chooseExtensions({ register: false }).map((x) => x.name)).toContain('systemd');
  });
});
