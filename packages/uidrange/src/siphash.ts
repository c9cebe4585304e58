/**
 * SipHash-2-4 (Aumasson & Bernstein), as systemd's siphash24(): a 16-byte key, a 64-bit result read as a
 * little-endian integer. Bit-exact with systemd, so a machine name hashes to the same UID base under both tools.
 */
const M64 = (1n << 64n) - 1n;
const rotl = (x: bigint, b: bigint) => ((x << b) | (x >> (64n - b))) & M64;

function readLe64(b: Uint8Array, o: number): bigint {
  let v = 0n;
  for (let i = 7; i >= 0; i--) v = (v << 8n) | BigInt(b[o + i]!);
  return v;
}

export function siphash24(data: Uint8Array | string, key: Uint8Array): bigint {
  if (key.length !== 16) throw new RangeError('siphash24: the key must be 16 bytes');
  const m = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  const k0 = readLe64(key, 0);
  const k1 = readLe64(key, 8);
  let v0 = 0x736f6d6570736575n ^ k0;
  let v1 = 0x646f72616e646f6dn ^ k1;
  let v2 = 0x6c7967656e657261n ^ k0;
  let v3 = 0x7465646279746573n ^ k1;
  const round = () => {
    v0 = (v0 + v1) & M64; v1 = rotl(v1, 13n); v1 ^= v0; v0 = rotl(v0, 32n);
    v2 = (v2 + v3) & M64; v3 = rotl(v3, 16n); v3 ^= v2;
    v0 = (v0 + v3) & M64; v3 = rotl(v3, 21n); v3 ^= v0;
    v2 = (v2 + v1) & M64; v1 = rotl(v1, 17n); v1 ^= v2; v2 = rotl(v2, 32n);
  };
  const whole = m.length - (m.length % 8);
  for (let o = 0; o < whole; o += 8) {
    const w = readLe64(m, o);
    v3 ^= w; round(); round(); v0 ^= w;
  }
  let last = BigInt(m.length & 0xff) << 56n;
  for (let i = m.length - 1; i >= whole; i--) last |= BigInt(m[i]!) << BigInt(8 * (i - whole));
  v3 ^= last; round(); round(); v0 ^= last;
  v2 ^= 0xffn;
  round(); round(); round(); round();
  return (v0 ^ v1 ^ v2 ^ v3) & M64;
}
