import { randomBytes } from 'node:crypto';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { crc32 } from './crc32.js';

describe('crc32', () => {
  it("is zlib's CRC-32: the check value, empty input, random buffers and a continued sum", () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
    for (const n of [1, 92, 511, 16384]) {
      const b = randomBytes(n);
      expect(crc32(b)).toBe(zlibCrc32(b));
      expect(crc32(b.subarray(7), crc32(b.subarray(0, 7)))).toBe(zlibCrc32(b));
    }
  });
});
