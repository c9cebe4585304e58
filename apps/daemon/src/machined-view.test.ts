/** machined's properties as nspawnd's List entry (no bus, no root); the real bus: test/systemd-host.test.ts. */
import { describe, expect, it } from 'vitest';
import { machineInfoFromProperties, openMachinedView } from './machined-view.js';

const props = {
  Name: 'mh-sd',
  Id: '0123456789abcdef0123456789abcdef',
  Timestamp: 1_700_000_000_000_000n,
  TimestampMonotonic: 12_345_678n,
  Service: 'systemd-nspawn',
  Unit: 'machine-mh\\x2dsd.scope',
  Leader: 4242,
  Class: 'container',
  RootDirectory: '/var/lib/machines/inner',
  NetworkInterfaces: [7],
  State: 'running',
};

describe('machineInfoFromProperties', () => {
  it('maps machined\'s properties to io.systemd.Machine\'s fields', () => {
    expect(machineInfoFromProperties(props, false)).toEqual({
      name: 'mh-sd',
      id: '0123456789abcdef0123456789abcdef',
      class: 'container',
      service: 'systemd-nspawn',
      leader: { pid: 4242 },
      rootDirectory: '/var/lib/machines/inner',
      unit: 'machine-mh\\x2dsd.scope',
      timestamp: { realtime: 1_700_000_000_000_000, monotonic: 12_345_678 },
      ifIndices: [7],
      state: 'running',
    });
  });

  it('leaves out what machined does not know (no id, leader, root, interfaces, an unknown state)', () => {
    const info = machineInfoFromProperties({ ...props, Id: '0'.repeat(32), Leader: 0, RootDirectory: '', NetworkInterfaces: [], Service: '', Timestamp: 0n, State: 'abandoned' }, true);
    expect(info).toEqual({ name: 'mh-sd', class: 'container', unit: 'machine-mh\\x2dsd.scope' });
  });

  it('with metadata, reads OS and addresses from the leader\'s /proc (here: this process)', () => {
    const info = machineInfoFromProperties({ ...props, Leader: process.pid }, true);
    expect(Array.isArray(info.addresses)).toBe(true);
    expect(info.OSRelease?.some((l) => l.startsWith('ID='))).toBe(true);
  });
});

describe('openMachinedView', () => {
  it('is nothing with NSPAWND_MACHINED=no, and says nothing then (even on a systemd host)', async () => {
    const lines: string[] = [];
    expect(await openMachinedView((l) => lines.push(l), { NSPAWND_MACHINED: 'no' })).toBeUndefined();
    expect(lines).toEqual([]);
  });
});
