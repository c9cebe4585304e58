import { describe, expect, it } from 'vitest';
import { strverscmpImproved } from './strverscmp.js';

// the orderings systemd's own test (src/test/test-string-util.c of v252) checks
const ORDERED = ['~1', '', 'ab', 'abb', 'abc', '0001', '002', '12', '122', '122.9', '123~rc1', '123', '123-a', '123-a.1', '123-a1', '123-a1.1', '123-3', '123-3.1', '123^patch1', '123^1', '123.a-1', '123.1-1', '123a-1', '124'];
const NEWER: Array<[string, string]> = [
  ['123.45-67.88', '123.45-67.89'],
  ['123.45-67.89', '123.45-67.89a'],
  ['123.45-67.ab', '123.45-67.89'],
  ['123.45-67.9', '123.45-67.89'],
  ['123.45-67', '123.45-67.89'],
  ['123.45-66.89', '123.45-67.89'],
  ['123.45-9.99', '123.45-67.89'],
  ['123.42-99.99', '123.45-67.89'],
  ['123-99.99', '123.45-67.89'],
  ['123~rc1-99.99', '123.45-67.89'],
  ['123~rc1-99.99', '123-45.67.89'],
  ['123~rc1-99.99', '123~rc2-67.89'],
  ['123~rc1-99.99', '123^aa2-67.89'],
  ['123~rc1-99.99', '123aa2-67.89'],
  ['123-99.99', '123^aa2-67.89'],
  ['123-99.99', '123aa2-67.89'],
  ['123^45-67.89', '123.45-67.89'],
  ['123^aa1-99.99', '123^aa2-67.89'],
  ['123^aa2-67.89', '123aa2-67.89'],
  ['123.aa2-67.89', '123aa2-67.89'],
  ['123.aa2-67.89', '123.ab2-67.89'],
  ['fooOS_1.9', 'fooOS_1.10'],
];

describe('strverscmpImproved (systemd 252)', () => {
  it('orders systemd’s list pairwise', () => {
    for (let i = 0; i < ORDERED.length; i++)
      for (let j = i + 1; j < ORDERED.length; j++) {
        const [a, b] = [ORDERED[i]!, ORDERED[j]!];
        expect(strverscmpImproved(a, b), `${a} < ${b}`).toBeLessThan(0);
        expect(strverscmpImproved(b, a), `${b} > ${a}`).toBeGreaterThan(0);
        expect(strverscmpImproved(a, a)).toBe(0);
      }
  });
  it.each(NEWER)('%s < %s', (older, newer) => {
    expect(strverscmpImproved(older, newer)).toBeLessThan(0);
    expect(strverscmpImproved(newer, older)).toBeGreaterThan(0);
  });
  it('corner cases', () => {
    expect(strverscmpImproved('123_aa2-67.89', '123aa+2-67.89')).toBe(0);
    expect(strverscmpImproved('123.', '123')).toBeGreaterThan(0);
    expect(strverscmpImproved('12_3', '123')).toBeLessThan(0);
    expect(strverscmpImproved('12_3', '12')).toBeGreaterThan(0);
    expect(strverscmpImproved('12_3', '12.3')).toBeGreaterThan(0);
    expect(strverscmpImproved('123.0', '123')).toBeGreaterThan(0);
    expect(strverscmpImproved('123_0', '123')).toBeGreaterThan(0);
    expect(strverscmpImproved('123..0', '123.0')).toBeLessThan(0);
    expect(strverscmpImproved('', undefined)).toBe(0);
    expect(strverscmpImproved(undefined, '')).toBe(0);
    expect(strverscmpImproved('0_', '0')).toBe(0);
    expect(strverscmpImproved('_', '')).toBe(0);
  });
});
