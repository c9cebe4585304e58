/**
 * CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320: the GPT's, zlib's crc32()). Here rather than node:zlib's,
 * whose loading brings Node's streams (about 3 ms of an `nspawn -i` start) for a header and an entry array of 16 KiB.
 */
let table: Uint32Array | undefined;

function makeTable(): Uint32Array {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
}

/** The CRC-32 of DATA (continuing from PREVIOUS, as zlib's crc32(data, value)). */
export function crc32(data: Uint8Array, previous = 0): number {
  const t = (table ??= makeTable());
  let c = ~previous >>> 0;
  for (let i = 0; i < data.length; i++) c = t[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
