import { closeSync, openSync, readSync } from 'node:fs';

/**
 * Random bytes as lower-case hex, read from /dev/urandom. (node:crypto would do too, but loading it costs
 * several milliseconds of start-up, which nspawn's start time cannot afford.)
 */
export function randomHex(bytes: number): string {
  const buf = Buffer.alloc(bytes);
  const fd = openSync('/dev/urandom', 'r');
  try {
    let got = 0;
    while (got < bytes) got += readSync(fd, buf, got, bytes - got, null);
  } finally {
    closeSync(fd);
  }
  return buf.toString('hex');
}
