/** Random access to an image's bytes: a file descriptor (pread) or, in the tests, a Buffer. */
import { readSync } from 'node:fs';

export interface BlockReader {
  /** the image's size in bytes */
  readonly size: number;
  /** up to LENGTH bytes at OFFSET (fewer at the end of the image, none past it) */
  read(offset: number, length: number): Buffer;
}

/** A reader over a Buffer (crafted images in the tests). */
export function bufferReader(buf: Buffer): BlockReader {
  return {
    size: buf.length,
    read(offset, length) {
      if (offset >= buf.length || length <= 0) return Buffer.alloc(0);
      return Buffer.from(buf.subarray(offset, Math.min(buf.length, offset + length)));
    },
  };
}

/** A reader over an open file or block device of SIZE bytes. */
export function fdReader(fd: number, size: number): BlockReader {
  return {
    size,
    read(offset, length) {
      const n = Math.max(0, Math.min(length, size - offset));
      const b = Buffer.alloc(n);
      let got = 0;
      while (got < n) {
        const r = readSync(fd, b, got, n - got, offset + got);
        if (r === 0) break;
        got += r;
      }
      return got === n ? b : b.subarray(0, got);
    },
  };
}
