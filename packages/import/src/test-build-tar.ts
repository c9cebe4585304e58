/** Builds tar archives member by member, hostile ones included (what tar(1) refuses to make). */
export interface Member {
  name: string;
  type?: '0' | '1' | '2' | '5';
  data?: string | Buffer;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
}

function header(m: Member): Buffer {
  const h = Buffer.alloc(512);
  const data = m.data === undefined ? Buffer.alloc(0) : Buffer.from(m.data);
  const put = (off: number, len: number, s: string) => h.write(s, off, len, 'utf8');
  const oct = (off: number, len: number, v: number) => put(off, len, v.toString(8).padStart(len - 1, '0') + '\0');
  if (Buffer.byteLength(m.name) > 100) throw new Error('name too long for this builder');
  put(0, 100, m.name);
  oct(100, 8, m.mode ?? (m.type === '5' ? 0o755 : 0o644));
  oct(108, 8, m.uid ?? 0);
  oct(116, 8, m.gid ?? 0);
  oct(124, 12, m.type === undefined || m.type === '0' ? data.length : 0);
  oct(136, 12, 1700000000);
  h.write('        ', 148, 8, 'latin1');
  put(156, 1, m.type ?? '0');
  put(157, 100, m.linkname ?? '');
  put(257, 6, 'ustar\0');
  put(263, 2, '00');
  let sum = 0;
  for (const b of h) sum += b;
  put(148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  return h;
}

export function buildTar(members: Member[]): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) {
    parts.push(header(m));
    if ((m.type === undefined || m.type === '0') && m.data !== undefined) {
      const d = Buffer.from(m.data);
      parts.push(d, Buffer.alloc((512 - (d.length % 512)) % 512));
    }
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}
