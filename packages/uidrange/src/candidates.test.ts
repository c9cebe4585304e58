import { describe, expect, it } from 'vitest';
import { siphash24 } from './siphash.js';
import { candidates, isPickable, machineCandidate, MAX_TRIES, ownerBase, reduceCandidate, UID_BASE_MAX, UID_BASE_MIN, UidRangeError } from './candidates.js';

describe('siphash24', () => {
  const key = Uint8Array.from({ length: 16 }, (_, i) => i);
  it('matches the SipHash-2-4 paper vectors', () => {
    // Aumasson & Bernstein, appendix A: key 00..0f, message 00..0e
    expect(siphash24(Uint8Array.from({ length: 15 }, (_, i) => i), key)).toBe(0xa129ca6149be45e5n);
    // the reference implementation's vectors.h: empty message, and 8 bytes (a full block, then the length word)
    expect(siphash24(new Uint8Array(0), key)).toBe(0x726fdb47dd0e0e31n);
    expect(siphash24(Uint8Array.from({ length: 8 }, (_, i) => i), key)).toBe(0x93f5f5799a932462n);
  });
  it('refuses keys that are not 16 bytes', () => {
    expect(() => siphash24('x', new Uint8Array(8))).toThrow(RangeError);
  });
});

describe('candidates', () => {
  it('hashes machine names as systemd-nspawn 252 does (measured: box, bb)', () => {
    expect(machineCandidate('box')).toBe(1254752256);
    expect(machineCandidate('bb')).toBe(406061056);
  });
  it('reduces into the span and aligns', () => {
    expect(reduceCandidate(0)).toBe(UID_BASE_MIN);
    expect(reduceCandidate(0xffffffff)).toBe(((0xffffffff % (UID_BASE_MAX - UID_BASE_MIN)) + UID_BASE_MIN) & 0xffff0000);
    for (const raw of [1, 12345, 0x7fffffff, 0x80000000, 0xdeadbeef]) {
      const c = reduceCandidate(raw);
      expect(isPickable(c)).toBe(true);
    }
  });
  it('isPickable: span and alignment', () => {
    expect(isPickable(UID_BASE_MIN)).toBe(true);
    expect(isPickable(UID_BASE_MAX)).toBe(true);
    expect(isPickable(UID_BASE_MIN - 0x10000)).toBe(false);
    expect(isPickable(UID_BASE_MAX + 0x10000)).toBe(false);
    expect(isPickable(UID_BASE_MIN + 1)).toBe(false);
    expect(isPickable(0)).toBe(false);
  });
  it('orders: owner base, machine hash, then random; skips an owner base outside the span', () => {
    let n = 0;
    const rnd = () => [0x11111111, 0x22222222][n++ % 2]!;
    const g = [...candidates(0x100000, 'box', rnd)].slice(0, 4);
    expect(g).toEqual([0x100000, 1254752256, reduceCandidate(0x11111111), reduceCandidate(0x22222222)]);
    n = 0;
    expect([...candidates(0, 'box', rnd)].slice(0, 2)).toEqual([1254752256, reduceCandidate(0x11111111)]);
    // no machine name: straight to random
    n = 0;
    expect([...candidates(0, undefined, rnd)][0]).toBe(reduceCandidate(0x11111111));
  });
  it('gives up after 99 tries, as uid_shift_pick() does', () => {
    expect([...candidates(0x100000, 'x', () => 0)].length).toBe(MAX_TRIES);
    expect([...candidates(0, 'x', () => 0)].length).toBe(MAX_TRIES - 1);
  });
  it('ownerBase: uid and gid bases must match', () => {
    expect(ownerBase(0x100005, 0x100007)).toBe(0x100000);
    expect(ownerBase(0, 0)).toBe(0);
    expect(() => ownerBase(0x100000, 0x200000, '/x')).toThrow(new UidRangeError("UID and GID base of /x don't match.", 'EINVAL'));
  });
});
