/**
 * systemd's strverscmp_improved() (src/fundamental/string-util-fundamental.c of v252): the version comparison
 * dissect_image() uses on GPT partition labels when an image has several root (or /usr) partitions, the newest
 * winning. '-' and '.' separate segments, '~' marks pre-releases (older), '^' patched releases (newer than '-'),
 * numeric segments compare by value, longer strings with more segments are newer. Compared on the UTF-8 bytes, as
 * systemd compares its C strings. Returns <0, 0 or >0.
 */
const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
const isAlpha = (c: number) => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
const isVersionChar = (c: number) => isDigit(c) || isAlpha(c) || c === 0x7e || c === 0x2d || c === 0x5e || c === 0x2e;
const cmp = (x: number | boolean, y: number | boolean) => (Number(x) < Number(y) ? -1 : Number(x) > Number(y) ? 1 : 0);

export function strverscmpImproved(a: string | undefined, b: string | undefined): number {
  const A = Buffer.from(a ?? '', 'utf8');
  const B = Buffer.from(b ?? '', 'utf8');
  const at = (buf: Buffer, i: number) => (i < buf.length ? buf[i]! : 0);
  let i = 0;
  let j = 0;
  for (;;) {
    while (at(A, i) !== 0 && !isVersionChar(at(A, i))) i++;
    while (at(B, j) !== 0 && !isVersionChar(at(B, j))) j++;

    // '~': pre-releases are older
    if (at(A, i) === 0x7e || at(B, j) === 0x7e) {
      const r = cmp(at(A, i) !== 0x7e, at(B, j) !== 0x7e);
      if (r !== 0) return r;
      i++;
      j++;
    }
    // one string ended: the longer one is newer
    if (at(A, i) === 0 || at(B, j) === 0) return cmp(at(A, i), at(B, j));
    // '-' separates version and release: the one with '-' here is older
    for (const sep of [0x2d, 0x5e, 0x2e]) {
      if (at(A, i) === sep || at(B, j) === sep) {
        const r = cmp(at(A, i) !== sep, at(B, j) !== sep);
        if (r !== 0) return r;
        i++;
        j++;
      }
    }
    if (isDigit(at(A, i)) || isDigit(at(B, j))) {
      let ii = i;
      let jj = j;
      while (isDigit(at(A, ii))) ii++;
      while (isDigit(at(B, jj))) jj++;
      // a numeric segment is newer than none
      let r = cmp(i !== ii, j !== jj);
      if (r !== 0) return r;
      while (at(A, i) === 0x30) i++;
      while (at(B, j) === 0x30) j++;
      r = cmp(ii - i, jj - j);
      if (r !== 0) return r;
      r = Math.sign(Buffer.compare(A.subarray(i, ii), B.subarray(j, jj)));
      if (r !== 0) return r;
      i = ii;
      j = jj;
    } else {
      let ii = i;
      let jj = j;
      while (isAlpha(at(A, ii))) ii++;
      while (isAlpha(at(B, jj))) jj++;
      const n = Math.min(ii - i, jj - j);
      let r = Math.sign(Buffer.compare(A.subarray(i, i + n), B.subarray(j, j + n)));
      if (r !== 0) return r;
      r = cmp(ii - i, jj - j);
      if (r !== 0) return r;
      i = ii;
      j = jj;
    }
  }
}
