import { describe, expect, it } from 'vitest';
import { generateMac, ifnameValid, shortenIfname, vethNames, zoneBridgeName } from './naming.js';
import { hexKey, siphash24 } from './siphash.js';

describe('siphash24', () => {
  it('matches the reference vectors (key 00..0f, message 00..n-1)', () => {
    const key = hexKey('000102030405060708090a0b0c0d0e0f');
    // from the SipHash paper's vectors.h
    expect(siphash24(new Uint8Array(0), key).toString(16)).toBe('726fdb47dd0e0e31');
    expect(siphash24(Uint8Array.from([0]), key).toString(16)).toBe('74f839c593dc67fd');
    const m15 = Uint8Array.from({ length: 15 }, (_, i) => i);
    expect(siphash24(m15, key).toString(16)).toBe('a129ca6149be45e5');
  });
});

describe('shortenIfname', () => {
  it('keeps names under 16 characters', () => {
    expect(shortenIfname('ve-foo')).toBe('ve-foo');
    expect(shortenIfname('ve-123456789012')).toBe('ve-123456789012');
  });
  it('shortens like systemd-nspawn 252 (measured)', () => {
    expect(shortenIfname('ve-averyveryverylongmachinename01')).toBe('ve-averyverJKA6');
  });
  it('vethNames carries the altname', () => {
    expect(vethNames('averyveryverylongmachinename01')).toEqual({ host: 've-averyverJKA6', altname: 've-averyveryverylongmachinename01', container: 'host0' });
    expect(vethNames('foo', true)).toEqual({ host: 'vb-foo', container: 'host0' });
  });
});

describe('zoneBridgeName', () => {
  it('is vz-ZONE, and refuses what is no interface name with systemd 252\'s words (no raw ERANGE/EINVAL later)', () => {
    expect(zoneBridgeName('lab')).toBe('vz-lab');
    expect(zoneBridgeName('twelve-chars')).toBe('vz-twelve-chars');
    expect(() => zoneBridgeName('thirteen-char')).toThrow(new RangeError('Network zone name not valid: vz-thirteen-char'));
    expect(() => zoneBridgeName('a:b')).toThrow('Network zone name not valid: vz-a:b');
  });
});

describe('generateMac', () => {
  it('sets the local bit, clears the multicast bit, is stable and key dependent', () => {
    const id = '0123456789abcdef0123456789abcdef';
    const a = generateMac('foo', 'host', { machineId: id });
    expect(a).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    expect(parseInt(a.slice(0, 2), 16) & 3).toBe(2);
    expect(generateMac('foo', 'host', { machineId: id })).toBe(a);
    expect(generateMac('foo', 'container', { machineId: id })).not.toBe(a);
    expect(generateMac('foo', 'macvlan', { machineId: id, idx: 1 })).not.toBe(generateMac('foo', 'macvlan', { machineId: id }));
  });
});

describe('ifnameValid', () => {
  it('accepts and refuses like systemd', () => {
    expect(ifnameValid('eth0')).toBe(true);
    expect(ifnameValid('a'.repeat(16))).toBe(false);
    expect(ifnameValid('a:b')).toBe(false);
    expect(ifnameValid('..')).toBe(false);
  });
});
