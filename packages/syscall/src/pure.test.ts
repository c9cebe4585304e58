import { describe, expect, it } from 'vitest';
import { checkName, hexKey, makedev, pathComponents, siphash24 } from './index.js';

describe('siphash24', () => {
  const key = hexKey('000102030405060708090a0b0c0d0e0f');
  it('matches the reference vectors (and systemd)', () => {
    expect(siphash24(new Uint8Array(0), key)).toBe(0x726fdb47dd0e0e31n);
    expect(siphash24(Uint8Array.from([0]), key)).toBe(0x74f839c593dc67fdn);
    expect(siphash24(Uint8Array.from({ length: 8 }, (_, i) => i), key)).toBe(0x93f5f5799a932462n);
    expect(siphash24(Uint8Array.from({ length: 15 }, (_, i) => i), key)).toBe(0xa129ca6149be45e5n);
  });
  it('hashes a string as its UTF-8 bytes, and a sub-array as its own bytes', () => {
    expect(siphash24('box', key)).toBe(siphash24(Buffer.from('box'), key));
    const big = Buffer.from('xxboxyy');
    expect(siphash24(big.subarray(2, 5), key)).toBe(siphash24('box', key));
  });
  it('refuses a key that is not 16 bytes, and bad hex', () => {
    expect(() => siphash24('x', new Uint8Array(8))).toThrow(RangeError);
    expect(() => hexKey('00')).toThrow(RangeError);
  });
});

describe('names and paths', () => {
  it('pathComponents refuses absolute paths, .. and NUL, and drops . and empty components', () => {
    expect(pathComponents('./a//b/./c/')).toEqual(['a', 'b', 'c']);
    expect(pathComponents('')).toEqual([]);
    for (const bad of ['/etc', 'a/../b', '..', 'a/b\0c']) expect(() => pathComponents(bad), bad).toThrow(/leaves its root/);
    expect(() => pathComponents(['a', 'b/c'])).toThrow(/leaves its root/);
  });
  it('checkName takes one component of at most 255 bytes', () => {
    expect(() => checkName('ok')).not.toThrow();
    for (const bad of ['', '.', '..', 'a/b', 'a\0']) expect(() => checkName(bad), JSON.stringify(bad)).toThrow(/invalid file name/);
    expect(() => checkName('x'.repeat(256))).toThrow(/longer than 255/);
    expect(() => checkName('é'.repeat(128))).toThrow(/longer than 255/); // 256 bytes
  });
  it('makedev is glibc\'s', () => {
    expect(makedev(1, 3)).toBe(0x103n);
    expect(makedev(8, 17)).toBe(0x811n);
    expect(makedev(0x1234, 0x56789)).toBe((0x1000n << 32n) | (0x234n << 8n) | (0x56700n << 12n) | 0x89n);
  });
});
