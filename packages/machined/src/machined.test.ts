import { describe, expect, it } from 'vitest';
import { BusError, recordingBus, Variant, type MethodCall } from './bus.js';
import { keepUnitRegisterError, cgroupOwnerUid, mainCgroupPath, isSystemdBooted } from './detect.js';
import { Machined, openMachined } from './machined.js';
import { machineScopeName, mangleUnitName, unitNameEscape, unitNameIsValid } from './unit-name.js';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';

/** A fake machined + systemd: what they answer to the calls a registration makes. */
function fakeServices(opts: { createError?: BusError; unit?: string } = {}) {
  const unit = opts.unit ?? 'machine-mh\\x2dbox.scope';
  return recordingBus((m: MethodCall) => {
    switch (m.member) {
      case 'CreateMachineWithNetwork':
      case 'RegisterMachineWithNetwork':
        if (opts.createError) throw opts.createError;
        return ['/org/freedesktop/machine1/machine/mh_2dbox'];
      case 'GetAll':
        return [{ Name: new Variant('s', 'mh-box'), Unit: new Variant('s', unit), Leader: new Variant('u', 4242), Id: new Variant('ay', Buffer.alloc(16, 1)), Timestamp: new Variant('t', 5n) }];
      case 'GetUnit':
        return ['/org/freedesktop/systemd1/unit/x'];
      case 'Get':
        return [new Variant('s', `/machine.slice/${unit}`)];
      case 'UnregisterMachine':
        return [];
      case 'ListMachines':
        return [[['.host', 'host', '', '/org/freedesktop/machine1/machine/_2ehost'], ['mh-box', 'container', 'nspawn', '/org/freedesktop/machine1/machine/mh_2dbox']]];
      default:
        throw new BusError('org.freedesktop.DBus.Error.UnknownMethod', `no ${m.member}`);
    }
  });
}
const spec = { name: 'mh-box', leader: 4242, rootDirectory: '/srv/mh-box', uuid: '0123456789abcdef0123456789abcdef' };

describe('Machined.register', () => {
  it('creates the machine, then reads back its unit and the unit’s cgroup from systemd', async () => {
    const bus = fakeServices();
    const reg = await new Machined(bus).register(spec, { isDevice: () => false });
    expect(reg).toEqual({
      name: 'mh-box',
      objectPath: '/org/freedesktop/machine1/machine/mh_2dbox',
      unit: 'machine-mh\\x2dbox.scope',
      controlGroup: '/machine.slice/machine-mh\\x2dbox.scope',
      unitObjectPath: '/org/freedesktop/systemd1/unit/x',
    });
    expect(bus.calls.map((c) => c.member)).toEqual(['CreateMachineWithNetwork', 'GetAll', 'GetUnit', 'Get']);
    expect(bus.calls[1]).toMatchObject({ path: '/org/freedesktop/machine1/machine/mh_2dbox', body: ['org.freedesktop.machine1.Machine'] });
    expect(bus.calls[3]).toMatchObject({ destination: 'org.freedesktop.systemd1', body: ['org.freedesktop.systemd1.Scope', 'ControlGroup'] });
  });

  it('--keep-unit registers; the unit is the caller’s (a service here)', async () => {
    const bus = fakeServices({ unit: 'nspawn@mh-box.service' });
    const reg = await new Machined(bus).register({ ...spec, keepUnit: true });
    expect(bus.calls[0]!.member).toBe('RegisterMachineWithNetwork');
    expect(bus.calls[3]!.body).toEqual(['org.freedesktop.systemd1.Service', 'ControlGroup']);
    expect(reg.unit).toBe('nspawn@mh-box.service');
  });

  it('one-line errors as 252 words them, with a kind to decide on', async () => {
    const cases: [BusError, string, string][] = [
      [new BusError('org.freedesktop.machine1.MachineExists', "Machine 'mh-box' already exists"), "Failed to register machine: Machine 'mh-box' already exists", 'exists'],
      [new BusError('org.freedesktop.DBus.Error.ServiceUnknown', 'The name org.freedesktop.machine1 was not provided by any .service files'), 'Failed to register machine: The name org.freedesktop.machine1 was not provided by any .service files', 'no-service'],
      [new BusError('org.freedesktop.DBus.Error.AccessDenied', 'Access denied\nmore'), 'Failed to register machine: Access denied', 'access-denied'],
    ];
    for (const [err, message, kind] of cases) {
      const bus = fakeServices({ createError: err });
      await expect(new Machined(bus).register(spec, { isDevice: () => false })).rejects.toMatchObject({ message, kind, dbusName: err.dbusName });
      expect(bus.calls).toHaveLength(1);
    }
    const bus = fakeServices();
    await expect(new Machined(bus).register({ ...spec, properties: ['Bogus=1'] })).rejects.toMatchObject({ message: 'Unknown assignment: Bogus=1', kind: 'invalid' });
    expect(bus.calls).toHaveLength(0);
  });

  it('a registration whose unit cannot be read back is undone', async () => {
    const base = fakeServices();
    const bus = recordingBus(async (m) => {
      if (m.member === 'GetUnit') throw new BusError('org.freedesktop.systemd1.NoSuchUnit', "Unit machine-mh\\x2dbox.scope not loaded.");
      return base.call(m);
    });
    await expect(new Machined(bus).register(spec, { isDevice: () => false })).rejects.toMatchObject({
      message: "Failed to register machine: Failed to get unit machine-mh\\x2dbox.scope: Unit machine-mh\\x2dbox.scope not loaded.",
    });
    expect(bus.calls.at(-1)).toMatchObject({ member: 'UnregisterMachine', body: ['mh-box'] });
  });

  it('no bus: "Failed to open system bus: No such file or directory"', async () => {
    await expect(openMachined({ address: 'unix:path=/nonexistent/mh-bus' })).rejects.toMatchObject({
      message: 'Failed to open system bus: No such file or directory',
      kind: 'no-bus',
    });
  });
});

describe('the rest of the client', () => {
  it('lists machines and reads their properties', async () => {
    const m = new Machined(fakeServices());
    expect(await m.list()).toEqual([
      { name: '.host', class: 'host', service: '', objectPath: '/org/freedesktop/machine1/machine/_2ehost' },
      { name: 'mh-box', class: 'container', service: 'nspawn', objectPath: '/org/freedesktop/machine1/machine/mh_2dbox' },
    ]);
  });
  it('unregister ignores failures, as 252 does', async () => {
    const bus = recordingBus(() => {
      throw new BusError('org.freedesktop.machine1.NoSuchMachine', 'No machine');
    });
    expect(await new Machined(bus).unregister('mh-box')).toBe(false);
  });
  it('allocateScope waits for the start job (JobRemoved, even one that came before the reply)', async () => {
    const bus = recordingBus((m) => {
      if (m.member === 'StartTransientUnit') {
        bus.emit({ interface: 'org.freedesktop.systemd1.Manager', member: 'JobRemoved', body: [7, '/job/7', 'mh-box.scope', 'done'] });
        return ['/job/7'];
      }
      if (m.member === 'GetUnit') return ['/unit/mh_2dbox_2escope'];
      if (m.member === 'Get') return [new Variant('s', '/machine.slice/mh-box.scope')];
      return [];
    });
    expect(await new Machined(bus).allocateScope(spec, { isDevice: () => false })).toEqual({ unit: 'mh-box.scope', controlGroup: '/machine.slice/mh-box.scope', unitObjectPath: '/unit/mh_2dbox_2escope' });
    expect(bus.matches[0]).toContain("member='JobRemoved'");
    const failing = recordingBus((m) => {
      if (m.member === 'StartTransientUnit') {
        setTimeout(() => failing.emit({ interface: 'org.freedesktop.systemd1.Manager', member: 'JobRemoved', body: [8, '/job/8', 'mh-box.scope', 'failed'] }), 5);
        return ['/job/8'];
      }
      return [];
    });
    await expect(new Machined(failing).allocateScope(spec, { isDevice: () => false })).rejects.toThrow("Failed to allocate scope: Job for mh-box.scope failed with result 'failed'.");
  });
  it('RequestStop reaches the handler with the unit’s path', async () => {
    const bus = recordingBus();
    const seen: string[] = [];
    new Machined(bus).onRequestStop((p) => seen.push(p));
    bus.emit({ interface: 'org.freedesktop.systemd1.Scope', member: 'RequestStop', path: '/org/freedesktop/systemd1/unit/x', body: [] });
    bus.emit({ interface: 'org.freedesktop.systemd1.Manager', member: 'JobRemoved', path: '/x', body: [] });
    expect(seen).toEqual(['/org/freedesktop/systemd1/unit/x']);
  });
});

describe('unit names', () => {
  it('unit_name_escape() as machined uses it', () => {
    expect(machineScopeName('mh-box')).toBe('machine-mh\\x2dbox.scope');
    expect(machineScopeName('a.b_c')).toBe('machine-a.b_c.scope');
    expect(unitNameEscape('.hidden/x y')).toBe('\\x2ehidden-x\\x20y');
  });
  it('unit_name_mangle_with_suffix()', () => {
    expect(mangleUnitName('mh-box', '.scope')).toBe('mh-box.scope');
    expect(mangleUnitName('foo', '.slice')).toBe('foo.slice');
    expect(mangleUnitName('foo.slice', '.slice')).toBe('foo.slice');
    expect(mangleUnitName('a b', '.slice')).toBe('a\\x20b.slice');
    expect(unitNameIsValid('nspawn@x.service')).toBe(true);
    expect(unitNameIsValid('x')).toBe(false);
    expect(() => mangleUnitName('', '.slice')).toThrow();
  });
});

describe('detection', () => {
  it('sd_booted(): /run/systemd/system/ exists', () => {
    const root = mkdtempSync(join(tmpdir(), 'nspawn-test-mh-'));
    try {
      expect(isSystemdBooted(root)).toBe(false);
      mkdirSync(join(root, 'run/systemd/system'), { recursive: true });
      expect(isSystemdBooted(root)).toBe(true);
    } finally {
      rmSync(root, { recursive: true });
    }
  });
  it('--keep-unit --register=yes from a user session is refused', () => {
    const hybrid = '12:name=systemd:/user.slice/user-1000.slice/session-3.scope\n0::/user.slice/user-1000.slice/session-3.scope\n';
    expect(mainCgroupPath(hybrid)).toBe('/user.slice/user-1000.slice/session-3.scope');
    expect(cgroupOwnerUid('/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope')).toBe(1000);
    expect(cgroupOwnerUid('/system.slice/nspawn@x.service')).toBe(undefined);
    expect(keepUnitRegisterError(hybrid)).toBe('--keep-unit --register=yes may not be used when invoked from a user session.');
    expect(keepUnitRegisterError('0::/system.slice/nspawn@mh.service\n')).toBe(undefined);
  });
});
