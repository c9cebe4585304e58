import { describe, expect, it } from 'vitest';
import { parseUnitProperty } from './properties.js';

const p = (a: string, unit: 'service' | 'scope' = 'service') => {
  const [name, v] = parseUnitProperty(a, unit);
  return [name, v.signature, v.value];
};
const MAX = (1n << 64n) - 1n;

describe('--property= as bus_append_unit_property_assignment() (systemd 252)', () => {
  it('memory and task limits: sizes (base 1024), infinity, empty, percentages as …Scale', () => {
    expect(p('MemoryMax=1G')).toEqual(['MemoryMax', 't', 1073741824n]);
    expect(p('MemoryHigh=1.5M')).toEqual(['MemoryHigh', 't', 1572864n]);
    expect(p('MemoryMax=4096')).toEqual(['MemoryMax', 't', 4096n]);
    expect(p('MemoryMax=infinity')).toEqual(['MemoryMax', 't', MAX]);
    expect(p('MemoryMax=')).toEqual(['MemoryMax', 't', MAX]);
    expect(p('MemoryLow=')).toEqual(['MemoryLow', 't', 0n]);
    expect(p('MemoryMax=50%')).toEqual(['MemoryMaxScale', 'u', 2147483648]);
    expect(p('TasksMax=100')).toEqual(['TasksMax', 't', 100n]);
    expect(p('TasksMax=10%')).toEqual(['TasksMaxScale', 'u', 429496730]);
    expect(() => p('MemoryMax=lots')).toThrow('Failed to parse MemoryMax=lots: Invalid argument');
    expect(() => p('TasksMax=1K')).toThrow('Failed to parse TasksMax=1K: Invalid argument');
  });
  it('CPU: weights (idle), shares, quota as CPUQuotaPerSecUSec, period', () => {
    expect(p('CPUWeight=200')).toEqual(['CPUWeight', 't', 200n]);
    expect(p('CPUWeight=idle')).toEqual(['CPUWeight', 't', 0n]);
    expect(p('CPUWeight=')).toEqual(['CPUWeight', 't', MAX]);
    expect(() => p('CPUWeight=0')).toThrow('Failed to parse CPUWeight=0: Numerical result out of range');
    expect(() => p('IOWeight=idle')).toThrow('Failed to parse IOWeight=idle: Invalid argument');
    expect(p('CPUShares=512')).toEqual(['CPUShares', 't', 512n]);
    expect(p('CPUQuota=150%')).toEqual(['CPUQuotaPerSecUSec', 't', 1500000n]);
    expect(p('CPUQuota=')).toEqual(['CPUQuotaPerSecUSec', 't', MAX]);
    expect(() => p('CPUQuota=0%')).toThrow('CPU quota too small.');
    expect(() => p('CPUQuota=half')).toThrow("CPU quota 'half' invalid.");
    expect(p('CPUQuotaPeriodSec=10ms')).toEqual(['CPUQuotaPeriodUSec', 't', 10000n]);
    expect(p('AllowedCPUs=0-2 9')).toEqual(['AllowedCPUs', 'ay', Buffer.from([0x07, 0x02])]);
  });
  it('devices, IO limits, accounting, delegation', () => {
    expect(p('DeviceAllow=/dev/fuse rw')).toEqual(['DeviceAllow', 'a(ss)', [['/dev/fuse', 'rw']]]);
    expect(p('DeviceAllow=char-usb')).toEqual(['DeviceAllow', 'a(ss)', [['char-usb', '']]]);
    expect(p('DeviceAllow=')).toEqual(['DeviceAllow', 'a(ss)', []]);
    expect(p('DevicePolicy=strict')).toEqual(['DevicePolicy', 's', 'strict']);
    expect(p('IOReadBandwidthMax=/dev/sda 1M')).toEqual(['IOReadBandwidthMax', 'a(st)', [['/dev/sda', 1000000n]]]);
    expect(() => p('IOReadBandwidthMax=/dev/sda')).toThrow('Failed to parse IOReadBandwidthMax value /dev/sda.');
    expect(p('MemoryAccounting=yes')).toEqual(['MemoryAccounting', 'b', true]);
    expect(() => p('MemoryAccounting=maybe')).toThrow('Failed to parse MemoryAccounting: maybe');
    expect(p('Delegate=no')).toEqual(['Delegate', 'b', false]);
    expect(p('Delegate=cpu memory')).toEqual(['DelegateControllers', 'as', ['cpu', 'memory']]);
  });
  it('kill, unit and (for a scope) scope properties', () => {
    expect(p('KillSignal=SIGRTMIN+3')).toEqual(['KillSignal', 'i', 37]);
    expect(p('KillSignal=TERM')).toEqual(['KillSignal', 'i', 15]);
    expect(() => p('KillSignal=SIGNOPE')).toThrow('Failed to parse KillSignal: SIGNOPE');
    expect(p('KillMode=mixed')).toEqual(['KillMode', 's', 'mixed']);
    expect(p('Description=my box')).toEqual(['Description', 's', 'my box']);
    expect(p('After=a.service "b c.service"')).toEqual(['After', 'as', ['a.service', 'b c.service']]);
    expect(p('JobTimeoutSec=1min 30s')).toEqual(['JobTimeoutUSec', 't', 90_000_000n]);
    expect(p('RuntimeMaxSec=infinity', 'scope')).toEqual(['RuntimeMaxUSec', 't', MAX]);
    expect(p('TimeoutStopSec=2.5', 'scope')).toEqual(['TimeoutStopUSec', 't', 2_500_000n]);
    expect(() => p('TimeoutStopSec=5')).toThrow('Unknown assignment: TimeoutStopSec=5');
    expect(() => p('Environment=A=1')).toThrow('Unknown assignment: Environment=A=1');
    expect(() => p('NoEquals')).toThrow('Not an assignment: NoEquals');
  });
});
