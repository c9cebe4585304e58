import { closeSync, openSync, readSync } from 'node:fs';

/** 64 random bits as 16 hex digits (random_u64()), from /dev/urandom: node:crypto costs milliseconds to load. */
export function random64Hex(): string {
  const b = Buffer.alloc(8);
  const fd = openSync('/dev/urandom', 'r');
  try {
    let got = 0;
    while (got < 8) got += readSync(fd, b, got, 8 - got, null);
  } finally {
    closeSync(fd);
  }
  return b.toString('hex');
}
