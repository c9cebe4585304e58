import { closeSync, openSync, readSync } from 'node:fs';

/** Bytes read from /dev/urandom and not handed out yet: a start needs a few IDs, one read serves them all. */
let pool = Buffer.alloc(0);

/**
 * Random bytes as lower-case hex, read from /dev/urandom (each byte handed out once). (node:crypto would do too,
 * but loading it costs several milliseconds of start-up, which nspawn's start time cannot afford.)
 */
export function randomHex(bytes: number): string {
  if (pool.length < bytes) {
    const buf = Buffer.alloc(Math.max(64, bytes));
    const fd = openSync('/dev/urandom', 'r');
    try {
      let got = 0;
      while (got < buf.length) got += readSync(fd, buf, got, buf.length - got, null);
    } finally {
      closeSync(fd);
    }
    pool = buf;
  }
  const out = pool.subarray(0, bytes).toString('hex');
  pool = pool.subarray(bytes);
  return out;
}
