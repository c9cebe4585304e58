import { describe, expect, it } from 'vitest';
import { Variant } from './bus.js';
import { allocateScopeCall, createMachineCall, registerMachineCall, uuidBytes } from './messages.js';

const noDevices = () => false;
const base = { name: 'mh-box', uuid: '01234567-89ab-cdef-0123-456789abcdef', leader: 4242, rootDirectory: '/var/lib/machines/mh-box' };
const props = (body: unknown[] | undefined) => (body!.at(-1) as [string, Variant][]).map(([k, v]) => [k, v.signature, v.value]);

describe('CreateMachineWithNetwork (systemd-nspawn 252 without --keep-unit)', () => {
  it('sends what register_machine() sends, in its order', () => {
    const call = createMachineCall({ ...base, netifs: [7], killSignal: 37 }, ':1.5', noDevices);
    expect(call).toMatchObject({
      destination: 'org.freedesktop.machine1',
      path: '/org/freedesktop/machine1',
      interface: 'org.freedesktop.machine1.Manager',
      member: 'CreateMachineWithNetwork',
      signature: 'sayssusaia(sv)',
    });
    expect(call.body!.slice(0, 7)).toEqual([
      'mh-box',
      Buffer.from('0123456789abcdef0123456789abcdef', 'hex'),
      'nspawn',
      'container',
      4242,
      '/var/lib/machines/mh-box',
      [7],
    ]);
    expect(props(call.body)).toEqual([
      ['Controller', 's', ':1.5'],
      ['DevicePolicy', 's', 'closed'],
      ['DeviceAllow', 'a(ss)', [['/dev/net/tun', 'rwm'], ['char-pts', 'rw']]],
      ['KillSignal', 'i', 37],
      ['KillMode', 's', 'mixed'],
    ]);
  });

  it('--slice= (mangled) comes first, --property= last; a bound device node gets DeviceAllow=', () => {
    const isDevice = (p: string) => (p === '/dev/fuse' ? true : p === '/dev/gone' ? ('missing' as const) : false);
    const call = createMachineCall(
      {
        ...base,
        slice: 'mh-containers',
        properties: ['MemoryMax=1G', 'CPUQuota=50%'],
        binds: [
          { source: '/dev/fuse' },
          { source: '/dev/gone' },
          { source: '/srv/data', readOnly: true },
        ],
        service: 'systemd-nspawn',
      },
      ':1.5',
      isDevice,
    );
    expect(call.body![2]).toBe('systemd-nspawn');
    expect(call.body![6]).toEqual([]);
    expect(props(call.body)).toEqual([
      ['Slice', 's', 'mh-containers.slice'],
      ['Controller', 's', ':1.5'],
      ['DevicePolicy', 's', 'closed'],
      ['DeviceAllow', 'a(ss)', [['/dev/net/tun', 'rwm'], ['char-pts', 'rw']]],
      ['DeviceAllow', 'a(ss)', [['/dev/fuse', 'rw']]],
      ['MemoryMax', 't', 1n << 30n],
      ['CPUQuotaPerSecUSec', 't', 500000n],
    ]);
  });

  it('refuses a bad --property= before anything is sent, with systemd’s message', () => {
    expect(() => createMachineCall({ ...base, properties: ['Frobnicate=yes'] }, ':1.5', noDevices)).toThrow('Unknown assignment: Frobnicate=yes');
    expect(() => createMachineCall({ ...base, properties: ['MemoryMax'] }, ':1.5', noDevices)).toThrow('Not an assignment: MemoryMax');
    expect(() => createMachineCall({ ...base, leader: 1 }, ':1.5', noDevices)).toThrow('Invalid leader PID: 1');
  });
});

describe('RegisterMachineWithNetwork (--keep-unit)', () => {
  it('registers the caller’s unit: no scope properties at all', () => {
    const call = registerMachineCall({ ...base, keepUnit: true, slice: 'ignored', properties: ['MemoryMax=1G'] });
    expect(call.member).toBe('RegisterMachineWithNetwork');
    expect(call.signature).toBe('sayssusai');
    expect(call.body).toHaveLength(7);
    expect(call.body![4]).toBe(4242);
  });
});

describe('StartTransientUnit (--register=no without --keep-unit: allocate_scope())', () => {
  it('NAME.scope with the leader, delegated, in machine.slice', () => {
    const call = allocateScopeCall({ ...base, killSignal: 15, properties: ['TimeoutStopSec=5s'] }, ':1.9', noDevices);
    expect(call).toMatchObject({ destination: 'org.freedesktop.systemd1', member: 'StartTransientUnit', signature: 'ssa(sv)a(sa(sv))' });
    expect(call.body![0]).toBe('mh-box.scope');
    expect(call.body![1]).toBe('fail');
    expect(call.body![3]).toEqual([]);
    expect(props(call.body!.slice(0, 3))).toEqual([
      ['PIDs', 'au', [4242]],
      ['Description', 's', 'Container mh-box'],
      ['Delegate', 'b', true],
      ['CollectMode', 's', 'inactive-or-failed'],
      ['AddRef', 'b', true],
      ['Slice', 's', 'machine.slice'],
      ['Controller', 's', ':1.9'],
      ['DevicePolicy', 's', 'closed'],
      ['DeviceAllow', 'a(ss)', [['/dev/net/tun', 'rwm'], ['char-pts', 'rw']]],
      ['KillSignal', 'i', 15],
      ['KillMode', 's', 'mixed'],
      ['TimeoutStopUSec', 't', 5_000_000n],
    ]);
  });
  it('--slice= replaces machine.slice; scope-only properties are refused for CreateMachine', () => {
    expect(props(allocateScopeCall({ ...base, slice: 'a-b.slice' }, '', noDevices).body!.slice(0, 3))).toContainEqual(['Slice', 's', 'a-b.slice']);
    expect(() => createMachineCall({ ...base, properties: ['RuntimeMaxSec=5'] }, ':1.5', noDevices)).toThrow('Unknown assignment: RuntimeMaxSec=5');
  });
});

describe('uuidBytes', () => {
  it('16 bytes from 32 hex digits (dashes allowed), none for none, refusal otherwise', () => {
    expect(uuidBytes('0123456789ABCDEF0123456789abcdef')).toHaveLength(16);
    expect(uuidBytes(undefined)).toHaveLength(0);
    expect(() => uuidBytes('xyz')).toThrow('Invalid machine UUID: xyz');
  });
});
