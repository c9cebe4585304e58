/**
 * SipHash-2-4 (Aumasson & Bernstein), as systemd's siphash24(): a 16-byte key, the 64-bit result read as a
 * little-endian integer. Bit-exact with systemd: @nspawn/net names links and makes MACs with it, @nspawn/uidrange
 * hashes machine names to UID ranges with it. Pure; here because both of them need the same one.
 */
const M = (1n << 64n) - 1n;
const rotl = (x: bigint, b: bigint): bigint => ((x << b) | (x >> (64n - b))) & M;

/** siphash24(DATA, KEY): DATA as bytes (a string is taken as UTF-8), KEY 16 bytes; a 64-bit unsigned bigint. */
export function siphash24(data: Uint8Array | string, key: Uint8Array): bigint {
  if (key.length !== 16) throw new RangeError('siphash24: the key must be 16 bytes');
  const kb = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
  const db = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const k0 = kb.readBigUInt64LE(0);
  const k1 = kb.readBigUInt64LE(8);
  let v0 = k0 ^ 0x736f6d6570736575n;
  let v1 = k1 ^ 0x646f72616e646f6dn;
  let v2 = k0 ^ 0x6c7967656e657261n;
  let v3 = k1 ^ 0x7465646279746573n;
  const round = () => {
    v0 = (v0 + v1) & M; v1 = rotl(v1, 13n); v1 ^= v0; v0 = rotl(v0, 32n);
    v2 = (v2 + v3) & M; v3 = rotl(v3, 16n); v3 ^= v2;
    v0 = (v0 + v3) & M; v3 = rotl(v3, 21n); v3 ^= v0;
    v2 = (v2 + v1) & M; v1 = rotl(v1, 17n); v1 ^= v2; v2 = rotl(v2, 32n);
  };
  const len = db.length;
  const full = len - (len % 8);
  for (let i = 0; i < full; i += 8) {
    const m = db.readBigUInt64LE(i);
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  }
  let b = BigInt(len & 0xff) << 56n;
  for (let i = 0; i < len % 8; i++) b |= BigInt(db[full + i]!) << BigInt(8 * i);
  v3 ^= b;
  round();
  round();
  v0 ^= b;
  v2 ^= 0xffn;
  round();
  round();
  round();
  round();
  return (v0 ^ v1 ^ v2 ^ v3) & M;
}

/** a 16-byte key from 32 hex digits (systemd's SD_ID128_MAKE) */
export function hexKey(hex: string): Uint8Array {
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new RangeError(`not a 128-bit hex key: ${hex}`);
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}
