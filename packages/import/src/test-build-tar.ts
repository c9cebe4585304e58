/**
 * Builds tar archives block by block, hostile ones included (what tar(1) refuses to make): any type flag, PAX
 * records with binary values, GNU long names and link names, GNU sparse headers with extension blocks, wrong
 * checksums, declared sizes without the data.
 */
export interface Member {
  name: string | Buffer;
  /** type flag: '0' file, '1' hard link, '2' symlink, '3' char, '4' block, '5' dir, '6' fifo, 'S' GNU sparse... */
  type?: string;
  data?: string | Buffer;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  devmajor?: number;
  devminor?: number;
  /** PAX records for this member ('x' header before it), values as given (binary allowed) */
  pax?: Array<[string, string | Buffer]>;
  /** write the name as a GNU long name ('L' member) */
  gnuLongName?: boolean;
  gnuLongLink?: boolean;
  /** the size field, when it must lie */
  size?: number;
  /** GNU sparse: the map and the real size (the data holds the segments back to back) */
  sparse?: { map: Array<[number, number]>; realSize: number };
  /** corrupt the checksum */
  badChecksum?: boolean;
}

const enc = (s: string | Buffer) => (typeof s === 'string' ? Buffer.from(s) : s);

function header(m: Member, name: Buffer, size: number, type: string, ext?: Buffer[]): Buffer {
  const h = Buffer.alloc(512);
  const oct = (off: number, len: number, v: number) => h.write(v.toString(8).padStart(len - 1, '0') + '\0', off, len, 'latin1');
  name.copy(h, 0, 0, Math.min(100, name.length));
  oct(100, 8, m.mode ?? (type === '5' ? 0o755 : 0o644));
  oct(108, 8, m.uid ?? 0);
  oct(116, 8, m.gid ?? 0);
  if (size > 0o77777777777) {
    h[124] = 0x80;
    let v = BigInt(size);
    for (let i = 135; i > 124; i--) {
      h[i] = Number(v & 0xffn);
      v >>= 8n;
    }
  } else oct(124, 12, size);
  oct(136, 12, m.mtime ?? 1700000000);
  h.write('        ', 148, 8, 'latin1');
  h.write(type, 156, 1, 'latin1');
  enc(m.linkname ?? '').copy(h, 157, 0, 100);
  if (m.sparse || type === 'L' || type === 'K' || m.gnuLongName) h.write('ustar  \0', 257, 8, 'latin1');
  else {
    h.write('ustar\0', 257, 6, 'latin1');
    h.write('00', 263, 2, 'latin1');
  }
  oct(329, 8, m.devmajor ?? 0);
  oct(337, 8, m.devminor ?? 0);
  if (m.sparse) {
    const first = m.sparse.map.slice(0, 4);
    first.forEach(([o, l], i) => {
      h.write(o.toString(8).padStart(11, '0') + '\0', 386 + i * 24, 12, 'latin1');
      h.write(l.toString(8).padStart(11, '0') + '\0', 386 + i * 24 + 12, 12, 'latin1');
    });
    h[482] = m.sparse.map.length > 4 ? 1 : 0;
    h.write(m.sparse.realSize.toString(8).padStart(11, '0') + '\0', 483, 12, 'latin1');
    const rest = m.sparse.map.slice(4);
    for (let i = 0; i < rest.length; i += 21) {
      const e = Buffer.alloc(512);
      rest.slice(i, i + 21).forEach(([o, l], j) => {
        e.write(o.toString(8).padStart(11, '0') + '\0', j * 24, 12, 'latin1');
        e.write(l.toString(8).padStart(11, '0') + '\0', j * 24 + 12, 12, 'latin1');
      });
      e[504] = i + 21 < rest.length ? 1 : 0;
      ext?.push(e);
    }
  }
  let sum = 0;
  for (const b of h) sum += b;
  if (m.badChecksum) sum += 1;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return h;
}

const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512);

/** one PAX record "LEN KEY=VALUE\n" */
export function paxRecord(key: string, value: string | Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), enc(value), Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len++;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

export function buildTar(members: Member[], opts: { end?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) {
    const name = enc(m.name);
    if (m.pax) {
      const body = Buffer.concat(m.pax.map(([k, v]) => paxRecord(k, v)));
      parts.push(header({ name: 'PaxHeader' }, Buffer.from('./PaxHeaders/x'), body.length, 'x'), body, pad(body.length));
    }
    if (m.gnuLongName) {
      const body = Buffer.concat([name, Buffer.alloc(1)]);
      parts.push(header({ name: '' }, Buffer.from('././@LongLink'), body.length, 'L'), body, pad(body.length));
    }
    if (m.gnuLongLink) {
      const body = Buffer.concat([enc(m.linkname ?? ''), Buffer.alloc(1)]);
      parts.push(header({ name: '' }, Buffer.from('././@LongLink'), body.length, 'K'), body, pad(body.length));
    }
    const type = m.type ?? '0';
    const data = m.data === undefined ? Buffer.alloc(0) : enc(m.data);
    const size = m.size ?? (['0', '7', 'S'].includes(type) ? data.length : 0);
    const ext: Buffer[] = [];
    parts.push(header(m, m.gnuLongName ? name.subarray(0, 99) : name, size, type, ext), ...ext);
    if (data.length > 0) parts.push(data, pad(data.length));
  }
  if (opts.end !== false) parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}
