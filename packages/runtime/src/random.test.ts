import { describe, expect, it } from 'vitest';
import { randomHex } from './random.js';

describe('randomHex', () => {
  it('gives the number of bytes asked for, as lower-case hex, never the same bytes twice', () => {
    const seen = new Set<string>();
    // more than one read of /dev/urandom's worth, in odd sizes
    for (let i = 0; i < 200; i++) {
      const n = 1 + (i % 33);
      const h = randomHex(n);
      expect(h).toMatch(new RegExp(`^[0-9a-f]{${2 * n}}$`));
      if (n >= 8) {
        expect(seen.has(h)).toBe(false);
        seen.add(h);
      }
    }
    expect(randomHex(100)).toHaveLength(200);
  });
});
