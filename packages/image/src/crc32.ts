/**
 * CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320: the GPT's, zlib's crc32()). Here rather than node:zlib's,
 * whose loading brings Node's streams (about 3 ms of an `nspawn -i` start) for a header and an entry array of 16 KiB.
 * An entry array is mostly empty slots: runs of zero bytes are not fed through the table byte by byte (in a start
 * this runs once, in V8's interpreter: 16 Ki iterations were milliseconds) but skipped in one step, the register
 * multiplied by x^(8n) modulo the polynomial, as zlib's crc32_combine() does.
 */
const POLY = 0xedb88320;
let table: Uint32Array | undefined;
/** x^(2^k) modulo the polynomial, k = 0..31 */
let x2n: Uint32Array | undefined;

function makeTable(): Uint32Array {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? POLY ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
}

/** a(x) * b(x) modulo the polynomial (reflected; a is not 0) */
function multmodp(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}

/** x^(n * 2^k) modulo the polynomial */
function x2nmodp(n: number, k: number): number {
  if (!x2n) {
    x2n = new Uint32Array(32);
    let p = 0x40000000; // x^1
    x2n[0] = p;
    for (let i = 1; i < 32; i++) x2n[i] = p = multmodp(p, p);
  }
  let p = 0x80000000; // x^0
  while (n) {
    if (n & 1) p = multmodp(x2n[k & 31]!, p);
    n >>>= 1;
    k++;
  }
  return p;
}

/** The CRC-32 of DATA (continuing from PREVIOUS, as zlib's crc32(data, value)). */
export function crc32(data: Uint8Array, previous = 0): number {
  const t = (table ??= makeTable());
  let c = ~previous >>> 0;
  let zeros = 0;
  let i = 0;
  // 4 bytes at a time while zero (a view of the same memory when it is aligned), the others through the table
  if (data.byteOffset % 4 === 0) {
    const words = new Uint32Array(data.buffer, data.byteOffset, data.length >>> 2);
    for (let w = 0; w < words.length; w++) {
      if (words[w] === 0) {
        zeros += 4;
        continue;
      }
      if (zeros > 0) {
        c = multmodp(x2nmodp(zeros, 3), c);
        zeros = 0;
      }
      for (let end = (w + 1) * 4, k = w * 4; k < end; k++) c = t[(c ^ data[k]!) & 0xff]! ^ (c >>> 8);
    }
    i = words.length * 4;
  }
  if (zeros > 0) c = multmodp(x2nmodp(zeros, 3), c);
  for (; i < data.length; i++) c = t[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
