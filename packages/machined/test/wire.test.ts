/**
 * The real connection (connectSystemBus over @jellybrick/dbus-next) on a private dbus-daemon, which checks every
 * message it routes: the calls a registration makes arrive at a stand-in machined exactly as built (variants,
 * uint64, byte arrays), its error replies come back as 252's one-line messages, and a missing service is
 * "not provided by any .service files". Needs dbus-daemon (Debian: dbus-daemon); no root.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as dbus from '@jellybrick/dbus-next';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectSystemBus, Machined, openMachined, Variant } from '../src/index.js';

let dir: string;
let daemon: ChildProcess;
let address: string;
let service: dbus.MessageBus;
const received: dbus.Message[] = [];

beforeAll(async () => {
  if (!existsSync('/usr/bin/dbus-daemon')) throw new Error('/usr/bin/dbus-daemon is missing (apt-get install dbus-daemon)');
  dir = mkdtempSync(join(tmpdir(), 'nspawn-test-mh-bus-'));
  address = `unix:path=${dir}/bus`;
  writeFileSync(
    join(dir, 'bus.conf'),
    `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>custom</type><listen>${address}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy></busconfig>`,
  );
  // (a parent-death signal: a killed test run leaves no bus daemon behind)
  daemon = spawn('/usr/bin/setpriv', ['--pdeathsig', 'KILL', '--', '/usr/bin/dbus-daemon', '--config-file', join(dir, 'bus.conf'), '--nofork', '--nosyslog'], { stdio: 'ignore' });
  for (let i = 0; i < 200 && !existsSync(`${dir}/bus`); i++) await new Promise((r) => setTimeout(r, 10));
  // a stand-in machined and systemd: records the calls, answers the way the real ones do
  service = dbus.sessionBus({ busAddress: address });
  await new Promise((r) => service.once('connect', () => r(undefined)));
  await service.requestName('org.freedesktop.machine1', 0);
  await service.requestName('org.freedesktop.systemd1', 0);
  service.addMethodHandler((msg: dbus.Message) => {
    if (msg.type !== dbus.MessageType.METHOD_CALL) return false;
    received.push(msg);
    const reply = (sig: string, body: unknown[]) => service.send(dbus.Message.newMethodReturn(msg, sig, body));
    const [name] = msg.body as [string];
    switch (msg.member) {
      case 'CreateMachineWithNetwork':
      case 'RegisterMachineWithNetwork':
        if (name === 'mh-taken') service.send(dbus.Message.newError(msg, 'org.freedesktop.machine1.MachineExists', `Machine '${name}' already exists`));
        else if (name === 'mh-denied') service.send(dbus.Message.newError(msg, 'org.freedesktop.DBus.Error.AccessDenied', 'Access denied'));
        else reply('o', ['/org/freedesktop/machine1/machine/mh_2dwire']);
        return true;
      case 'GetAll':
        reply('a{sv}', [{ Name: new dbus.Variant('s', 'mh-wire'), Unit: new dbus.Variant('s', 'machine-mh\\x2dwire.scope'), Timestamp: new dbus.Variant('t', 1733000000000000n), Id: new dbus.Variant('ay', Buffer.alloc(16, 0xab)), Leader: new dbus.Variant('u', 4242), NetworkInterfaces: new dbus.Variant('ai', [3]) }]);
        return true;
      case 'GetUnit':
        reply('o', ['/org/freedesktop/systemd1/unit/machine_2dmh_5cx2dwire_2escope']);
        return true;
      case 'Get':
        reply('v', [new dbus.Variant('s', '/machine.slice/machine-mh\\x2dwire.scope')]);
        return true;
      default:
        return false;
    }
  });
});

afterAll(async () => {
  service?.disconnect();
  // the daemon removes its socket as it ends: its directory goes only after its end, or the two race (a run once
  // left the directory with bus.conf in it)
  if (daemon?.pid && daemon.exitCode === null && daemon.signalCode === null) {
    const ended = new Promise((r) => daemon.once('exit', r));
    process.kill(daemon.pid, 'SIGTERM');
    await Promise.race([ended, new Promise((r) => setTimeout(r, 5000))]);
    if (daemon.exitCode === null && daemon.signalCode === null) {
      process.kill(daemon.pid, 'SIGKILL');
      await ended;
    }
  }
  if (dir) rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
});

describe('over a real bus daemon', () => {
  it('CreateMachineWithNetwork arrives exactly as built, and the registration reads back unit and cgroup', async () => {
    const m = await openMachined({ address });
    try {
      received.length = 0;
      const reg = await m.register(
        { name: 'mh-wire', uuid: 'abababababababababababababababab', leader: 4242, rootDirectory: '/var/lib/machines/mh-wire', netifs: [3], slice: 'mh', properties: ['MemoryMax=infinity', 'AllowedCPUs=0-1', 'After=a.service b.service'], killSignal: 37 },
        { isDevice: () => false },
      );
      expect(reg).toEqual({ name: 'mh-wire', objectPath: '/org/freedesktop/machine1/machine/mh_2dwire', unit: 'machine-mh\\x2dwire.scope', controlGroup: '/machine.slice/machine-mh\\x2dwire.scope', unitObjectPath: '/org/freedesktop/systemd1/unit/machine_2dmh_5cx2dwire_2escope' });
      const create = received[0]!;
      expect(create.signature).toBe('sayssusaia(sv)');
      expect(create.body.slice(0, 7)).toEqual(['mh-wire', Buffer.alloc(16, 0xab), 'nspawn', 'container', 4242, '/var/lib/machines/mh-wire', [3]]);
      const props = (create.body[7] as [string, dbus.Variant][]).map(([k, v]) => [k, v.signature, v.value]);
      expect(props).toEqual([
        ['Slice', 's', 'mh.slice'],
        ['Controller', 's', m.bus.uniqueName],
        ['DevicePolicy', 's', 'closed'],
        ['DeviceAllow', 'a(ss)', [['/dev/net/tun', 'rwm'], ['char-pts', 'rw']]],
        ['KillSignal', 'i', 37],
        ['KillMode', 's', 'mixed'],
        ['MemoryMax', 't', 18446744073709551615n],
        ['AllowedCPUs', 'ay', Buffer.from([3])],
        ['After', 'as', ['a.service', 'b.service']],
      ]);
      expect(m.bus.uniqueName).toMatch(/^:1\.\d+$/);
      const p = await m.getMachineProperties('mh-wire', '/org/freedesktop/machine1/machine/mh_2dwire');
      expect(p).toMatchObject({ Name: 'mh-wire', Id: 'ab'.repeat(16), Timestamp: 1733000000000000n, Leader: 4242, NetworkInterfaces: [3] });
    } finally {
      m.close();
    }
  });

  it("error replies are 252's lines: a name already registered, the bus refusing", async () => {
    const m = await openMachined({ address });
    try {
      await expect(m.register({ name: 'mh-taken', leader: 4242 }, { isDevice: () => false })).rejects.toMatchObject({
        message: "Failed to register machine: Machine 'mh-taken' already exists",
        kind: 'exists',
      });
      await expect(m.register({ name: 'mh-denied', leader: 4242, keepUnit: true })).rejects.toMatchObject({
        message: 'Failed to register machine: Access denied',
        kind: 'access-denied',
      });
    } finally {
      m.close();
    }
  });

  it('machined not on the bus: "The name ... was not provided by any .service files"', async () => {
    const bus = await connectSystemBus({ address });
    try {
      const m = new Machined({ ...bus, call: (msg) => bus.call({ ...msg, destination: msg.destination.replace('machine1', 'mh-absent') }) });
      await expect(m.register({ name: 'mh-x', leader: 4242, keepUnit: true })).rejects.toMatchObject({
        message: 'Failed to register machine: The name org.freedesktop.mh-absent was not provided by any .service files',
        kind: 'no-service',
      });
    } finally {
      bus.close();
    }
  });

  it('values round-trip through the daemon as they were sent (our Variant in, our Variant out)', async () => {
    const bus = await connectSystemBus({ address });
    try {
      // org.freedesktop.DBus echoes nothing, so ask the daemon something with typed answers
      const [id] = await bus.call({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'GetId' });
      expect(id).toMatch(/^[0-9a-f]{32}$/);
      const [v] = await bus.call({ destination: 'org.freedesktop.systemd1', path: '/x', interface: 'org.freedesktop.DBus.Properties', member: 'Get', signature: 'ss', body: ['a', 'b'] });
      expect(v).toEqual(new Variant('s', '/machine.slice/machine-mh\\x2dwire.scope'));
    } finally {
      bus.close();
    }
  });
});
