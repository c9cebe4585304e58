import { randomBytes } from 'node:crypto';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { CRC32_TABLE, crc32 } from './crc32.js';

describe('crc32', () => {
  it('its table is the polynomial\'s', () => {
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      expect(CRC32_TABLE[n]).toBe(c >>> 0);
    }
    expect(CRC32_TABLE.length).toBe(256);
  });

  it("is zlib's CRC-32: the check value, empty input, random buffers and a continued sum", () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
    // mostly zeros, as a GPT entry array (the runs skipped in one step), with data at block edges
    for (const at of [[], [0], [63, 64], [5000, 16383], [127, 128, 8191]]) {
      const b = Buffer.alloc(16384);
      for (const a of at) b[a] = (a % 251) + 1;
      expect(crc32(b)).toBe(zlibCrc32(b));
      expect(crc32(b.subarray(3, 16000))).toBe(zlibCrc32(b.subarray(3, 16000))); // unaligned: byte by byte
      expect(crc32(b.subarray(4, 16001))).toBe(zlibCrc32(b.subarray(4, 16001)));
    }
    for (const n of [1, 92, 511, 16384]) {
      const b = randomBytes(n);
      expect(crc32(b)).toBe(zlibCrc32(b));
      expect(crc32(b.subarray(7), crc32(b.subarray(0, 7)))).toBe(zlibCrc32(b));
    }
  });
});
