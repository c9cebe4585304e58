import { describe, expect, it } from 'vitest';
import { allocateSubnet, ip4ToInt, nthAddress } from './pool.js';

describe('allocateSubnet', () => {
  it('is stable for a name and aligned to its prefix', () => {
    const a = allocateSubnet('foo', 28, []);
    expect(allocateSubnet('foo', 28, [])).toEqual(a);
    expect(ip4ToInt(a.subnet.network) % 16).toBe(0);
    expect(a.hostAddress).toBe(nthAddress(a.subnet, 1));
    expect(a.subnet.network.startsWith('10.')).toBe(true);
  });
  it('avoids taken prefixes, including a covering /8', () => {
    const a = allocateSubnet('foo', 28, []);
    const b = allocateSubnet('foo', 28, [{ address: a.subnet.network, prefixLength: 28 }]);
    expect(b.subnet.network).not.toBe(a.subnet.network);
    const c = allocateSubnet('foo', 28, [{ address: '10.1.2.3', prefixLength: 8 }]);
    expect(c.subnet.network.startsWith('172.')).toBe(true);
    const d = allocateSubnet('z', 24, [{ address: '10.0.0.0', prefixLength: 8 }, { address: '172.16.0.0', prefixLength: 12 }, { address: '0.0.0.0', prefixLength: 0 }]);
    expect(d.subnet.network).toMatch(/^192\.168\.\d+\.0$/);
  });
  it('gives the nth address', () => {
    expect(nthAddress({ network: '10.0.0.16', prefixLength: 28 }, 2)).toBe('10.0.0.18');
    expect(() => nthAddress({ network: '10.0.0.16', prefixLength: 28 }, 15)).toThrow();
  });
});
