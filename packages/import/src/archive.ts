/**
 * Reading a tar archive member by member with tar-stream (ustar, GNU and PAX framing, checksums, long names, PAX
 * sizes), adding what it leaves to its users: PAX values as bytes (binary xattr values, non-UTF-8 names, repeated
 * keys), owners and nanosecond times from PAX records, extended attributes (SCHILY.xattr.*, LIBARCHIVE.xattr.*),
 * sparse members (GNU 'S' with its extension blocks, PAX 0.0, 0.1 and 1.0), and refusals with one clear line for a
 * corrupt or truncated archive (a member that declares more data than the archive holds is refused before any of
 * it is written).
 */
import { closeSync, createReadStream, fstatSync, openSync, readSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type { Header } from 'tar-stream';
import { ImportError } from './errors.js';

export type MemberType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

/** One member of an archive, as the extractor needs it (names and link targets as bytes). */
export interface Member {
  /** the name as in the archive (bytes) */
  name: Buffer;
  type: MemberType;
  /** permission bits, set-ID and sticky included (07777) */
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: bigint;
  atimeNs?: bigint;
  /** symlink target or hard link name (bytes) */
  linkname: Buffer;
  devmajor: number;
  devminor: number;
  /** the file's size (for a sparse file: its real size, holes included) */
  size: number;
  /** extended attributes from PAX records, in archive order */
  xattrs: Array<[string, Buffer]>;
  /** a sparse file: the data segments [offset, length], in order; the data stream holds them back to back */
  sparse?: Array<[number, number]>;
}

/** a member's name for messages */
export function showName(b: Buffer): string {
  const s = JSON.stringify(b.toString('utf8')).slice(1, -1);
  return s.length > 200 ? `${s.slice(0, 120)}…${s.slice(-60)}` : s;
}

const BLOCK = 512;

/** PAX records "LEN KEY=VALUE\n" as [key, raw value] pairs, repeated keys kept. */
export function parsePaxRecords(buf: Buffer, what: string): Array<[string, Buffer]> {
  const out: Array<[string, Buffer]> = [];
  let i = 0;
  while (i < buf.length && buf[i] !== 0) {
    const sp = buf.indexOf(0x20, i);
    const len = sp > i && sp - i <= 20 ? Number(buf.subarray(i, sp).toString('latin1')) : NaN;
    if (!Number.isSafeInteger(len) || !/^\d+$/.test(buf.subarray(i, sp).toString('latin1')) || i + len > buf.length || len <= sp - i + 1 || buf[i + len - 1] !== 0x0a)
      throw new ImportError(`${what}: an invalid PAX record`);
    const rec = buf.subarray(sp + 1, i + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) throw new ImportError(`${what}: an invalid PAX record`);
    out.push([rec.subarray(0, eq).toString('utf8'), Buffer.from(rec.subarray(eq + 1))]);
    i += len;
  }
  return out;
}

/** "1700000000.123456789" -> nanoseconds */
function paxTime(v: string, what: string): bigint {
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(v);
  if (!m) throw new ImportError(`${what}: an invalid PAX time '${v}'`);
  const ns = BigInt(m[2]!) * 1_000_000_000n + BigInt(((m[3] ?? '') + '000000000').slice(0, 9));
  return m[1] ? -ns : ns;
}

function paxNumber(v: string, what: string, key: string): number {
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) throw new ImportError(`${what}: an invalid PAX ${key} '${v}'`);
  return Number(v);
}

/** GNU tar's keyword encoding of xattr names in SCHILY.xattr.* (%25, %3D) and libarchive's URL encoding */
const unpercent = (s: string) => Buffer.from(s.replace(/%([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('utf8');

function octal(b: Buffer, off: number, len: number): number {
  if (b[off]! & 0x80) {
    let v = 0;
    for (let i = 1; i < len; i++) v = v * 256 + b[off + i]!;
    return v;
  }
  const s = b.subarray(off, off + len).toString('latin1').replace(/\0.*$/s, '').trim();
  if (!/^[0-7]*$/.test(s)) return NaN;
  return s === '' ? 0 : parseInt(s, 8);
}

function pread(fd: number, len: number, pos: number): Buffer {
  const b = Buffer.alloc(len);
  let got = 0;
  while (got < len) {
    const n = readSync(fd, b, got, len - got, pos + got);
    if (n <= 0) break;
    got += n;
  }
  return b.subarray(0, got);
}

const MAX_SPARSE_SEGMENTS = 1 << 20;

function checkMap(map: Array<[number, number]>, realSize: number, stored: number, what: string): void {
  let end = 0;
  let sum = 0;
  for (const [o, l] of map) {
    if (!Number.isSafeInteger(o) || !Number.isSafeInteger(l) || o < end || o + l > realSize) throw new ImportError(`${what}: an invalid sparse map`);
    end = o + l;
    sum += l;
  }
  if (sum !== stored) throw new ImportError(`${what}: the sparse map covers ${sum} bytes, the archive holds ${stored}`);
}

interface RawExtract {
  _decodeLongHeader?: (buf: Buffer) => void;
  _header?: { type: string | null };
  _missing?: number;
}

/**
 * Reads the tar archive at PATH (a plain tar: decompress first; LABEL names it in messages) and calls ON_MEMBER for each member with its data
 * (files only: the bytes of the file, or of its segments when sparse). Members are handled one at a time, in order.
 * Throws an ImportError naming the archive (and the member) on any damage.
 */
export async function readArchive(path: string, onMember: (m: Member, data: AsyncIterable<Buffer>) => Promise<void>, label = path): Promise<void> {
  const file = label;
  // loaded when used: nspawnctl imports this package for every verb
  const { extract: tarExtract } = await import('tar-stream');
  const fd = openSync(path, 'r');
  const fileSize = fstatSync(fd).size;
  // names as bytes (latin1 is byte-transparent); v7 archives have no ustar magic
  const ex = tarExtract({ filenameEncoding: 'latin1', allowUnknownFormat: true } as Parameters<typeof tarExtract>[0]);
  const raw = ex as unknown as RawExtract;
  // tar-stream decodes PAX values as UTF-8 strings and keeps one value per key; binary xattrs, non-UTF-8 names and
  // PAX 0.0 sparse maps need the records' bytes: kept here as tar-stream (pinned) decodes them
  const decodeLong = raw._decodeLongHeader;
  if (typeof decodeLong !== 'function') throw new ImportError('tar-stream changed: its PAX records cannot be read as bytes (this @nspawn/import needs tar-stream 3.3.0)');
  let pax: Buffer | undefined;
  let globalPax: Array<[string, Buffer]> = [];
  raw._decodeLongHeader = function (this: RawExtract, buf: Buffer) {
    if (this._header?.type === 'pax-header') pax = Buffer.from(buf);
    else if (this._header?.type === 'pax-global-header') globalPax = parsePaxRecords(buf, `${file}: a global PAX header`);
    return decodeLong.call(this, buf);
  };
  let last = '(the first member)';
  const where = () => `${file}: after member '${last}'`;
  ex.on('entry', (h: Header, stream, next) => {
    const header = h as Omit<Header, 'type'> & { type: Header['type'] | null; byteOffset: number };
    const records = [...globalPax, ...(pax ? parsePaxRecords(pax, `${file}: the PAX header of the member after '${last}'`) : [])];
    pax = undefined;
    const rec = new Map<string, Buffer>();
    for (const [k, v] of records) rec.set(k, v);
    let name = rec.get('path') ?? Buffer.from(header.name, 'latin1');
    const what = () => `${file}: member '${showName(name)}'`;
    if (globalPax.some(([k]) => k === 'path' || k === 'size' || k === 'linkpath')) {
      ex.destroy(new ImportError(`${file}: a global PAX header sets a member's path, link or size`));
      return;
    }
    const handle = async (): Promise<void> => {
      let type: MemberType | 'skip';
      let sparse: Array<[number, number]> | undefined;
      let skipBytes = 0;
      let realSize = header.size;
      // the raw header block only for the types tar-stream does not know (GNU sparse 'S' and the like)
      const headerBlock = header.type === null ? pread(fd, BLOCK, header.byteOffset - BLOCK) : Buffer.alloc(0);
      const flag = String.fromCharCode(headerBlock[156] ?? 0x30);
      switch (header.type) {
        case 'file':
        case 'contiguous-file':
          type = 'file';
          break;
        case 'directory':
          type = 'dir';
          break;
        case 'symlink':
          type = 'symlink';
          break;
        case 'link':
          type = 'hardlink';
          break;
        case 'character-device':
          type = 'char';
          break;
        case 'block-device':
          type = 'block';
          break;
        case 'fifo':
          type = 'fifo';
          break;
        default:
          if (flag === 'S') {
            // GNU sparse: 4 segments in the header (offset, numbytes: 12 octal digits each), then extension blocks
            // of 21 while byte 482 (504 in an extension block) is set; the real size at 483
            type = 'file';
            sparse = [];
            const take = (b: Buffer, off: number, n: number) => {
              for (let i = 0; i < n; i++) {
                const o = octal(b, off + i * 24, 12);
                const l = octal(b, off + i * 24 + 12, 12);
                if (Number.isNaN(o) || Number.isNaN(l)) throw new ImportError(`${what()}: an invalid sparse map`);
                if (b[off + i * 24] === 0) break;
                sparse!.push([o, l]);
              }
            };
            take(headerBlock, 386, 4);
            realSize = octal(headerBlock, 483, 12);
            let more = headerBlock[482] !== 0;
            let pos = header.byteOffset;
            while (more) {
              if (pos + BLOCK > fileSize) throw new ImportError(`${what()}: the archive is truncated in its sparse map`);
              const ext = pread(fd, BLOCK, pos);
              take(ext, 0, 21);
              more = ext[504] !== 0;
              pos += BLOCK;
              skipBytes += BLOCK;
              if (sparse.length > MAX_SPARSE_SEGMENTS) throw new ImportError(`${what()}: a sparse map of more than ${MAX_SPARSE_SEGMENTS} segments`);
            }
            if (skipBytes > 0) {
              // tar-stream counts the member's size as data: the extension blocks come before it
              if (raw._missing === undefined) throw new ImportError('tar-stream changed: GNU sparse members cannot be read (this @nspawn/import needs tar-stream 3.3.0)');
              raw._missing += skipBytes;
            }
            if (!sparse.every(([o]) => Number.isSafeInteger(o))) throw new ImportError(`${what()}: an invalid sparse map`);
            // a zero-length last segment marks the real end: drop it
            sparse = sparse.filter(([, l]) => l > 0);
          } else if (flag === 'D') type = 'dir'; // GNU dumpdir: a directory with a listing as data
          else if (flag === 'V') type = 'skip'; // a volume label
          else throw new ImportError(`${what()}: unsupported member type '${flag.replace(/[^\x20-\x7e]/g, '?')}'`);
      }
      const stored = header.type === 'directory' ? 0 : header.size;
      // the data must be in the archive before anything of it is written
      if (header.byteOffset + skipBytes + stored > fileSize)
        throw new ImportError(
          `${what()}: the archive is truncated (the member declares ${stored} bytes of data, ${Math.max(0, fileSize - header.byteOffset - skipBytes)} follow its header)`,
        );
      // PAX sparse formats: 0.0 (repeated GNU.sparse.offset/numbytes), 0.1 (GNU.sparse.map), 1.0 (the map at the
      // start of the data); the real name in GNU.sparse.name
      const major = rec.get('GNU.sparse.major')?.toString();
      let mapInData = false;
      if (type === 'file' && (rec.has('GNU.sparse.map') || rec.has('GNU.sparse.offset') || major !== undefined)) {
        const sname = rec.get('GNU.sparse.name');
        if (sname) name = sname;
        const rs = rec.get('GNU.sparse.realsize') ?? rec.get('GNU.sparse.size');
        if (!rs) throw new ImportError(`${what()}: a sparse member without its real size`);
        realSize = paxNumber(rs.toString(), what(), 'sparse size');
        if (major !== undefined) {
          if (major !== '1' || rec.get('GNU.sparse.minor')?.toString() !== '0') throw new ImportError(`${what()}: unsupported sparse format ${major}.${rec.get('GNU.sparse.minor')?.toString()}`);
          mapInData = true;
        } else if (rec.has('GNU.sparse.map')) {
          const nums = rec.get('GNU.sparse.map')!.toString().split(',');
          if (nums.length % 2 !== 0) throw new ImportError(`${what()}: an invalid sparse map`);
          sparse = [];
          for (let i = 0; i < nums.length; i += 2) sparse.push([paxNumber(nums[i]!, what(), 'sparse offset'), paxNumber(nums[i + 1]!, what(), 'sparse length')]);
        } else {
          sparse = [];
          let off: number | undefined;
          for (const [k, v] of records) {
            if (k === 'GNU.sparse.offset') off = paxNumber(v.toString(), what(), 'sparse offset');
            else if (k === 'GNU.sparse.numbytes') {
              if (off === undefined) throw new ImportError(`${what()}: an invalid sparse map`);
              sparse.push([off, paxNumber(v.toString(), what(), 'sparse length')]);
              off = undefined;
            }
          }
        }
        sparse = sparse?.filter(([, l]) => l > 0);
      }
      if (name.includes(0)) throw new ImportError(`${what()}: a NUL byte in the name`);
      const linkname = rec.get('linkpath') ?? Buffer.from(header.linkname ?? '', 'latin1');
      if (linkname.includes(0)) throw new ImportError(`${what()}: a NUL byte in the link target`);
      const num = (k: string, dflt: number) => {
        const v = rec.get(k);
        return v === undefined ? dflt : paxNumber(v.toString(), what(), k);
      };
      const mtime = rec.get('mtime');
      const atime = rec.get('atime');
      const xattrs: Array<[string, Buffer]> = [];
      for (const [k, v] of records) {
        if (k.startsWith('SCHILY.xattr.')) xattrs.push([unpercent(k.slice(13)), v]);
        else if (k.startsWith('LIBARCHIVE.xattr.')) xattrs.push([unpercent(k.slice(17)), Buffer.from(v.toString('latin1'), 'base64')]);
      }
      const member: Member = {
        name,
        type: type === 'skip' ? 'file' : type,
        mode: header.mode ?? 0,
        uid: num('uid', header.uid ?? 0),
        gid: num('gid', header.gid ?? 0),
        mtimeNs: mtime ? paxTime(mtime.toString(), what()) : BigInt(Math.round((header.mtime?.getTime() ?? 0) / 1000)) * 1_000_000_000n,
        ...(atime ? { atimeNs: paxTime(atime.toString(), what()) } : {}),
        linkname,
        devmajor: header.devmajor ?? 0,
        devminor: header.devminor ?? 0,
        size: type === 'file' ? realSize : 0,
        xattrs,
      };
      if (!Number.isSafeInteger(member.size) || member.size < 0) throw new ImportError(`${what()}: an invalid size`);
      // the member's data as the file's bytes: the extension blocks and a 1.0 map skipped, exactly STORED bytes
      let dataLeft = stored;
      async function* data(): AsyncGenerator<Buffer> {
        let skip = skipBytes;
        let head = Buffer.alloc(0);
        let mapDone = !mapInData;
        for await (const c0 of stream as AsyncIterable<Buffer>) {
          let c = c0;
          if (skip > 0) {
            const n = Math.min(skip, c.length);
            skip -= n;
            c = c.subarray(n);
            if (c.length === 0) continue;
          }
          if (!mapDone) {
            head = Buffer.concat([head, c]);
            const parsed = parseSparse10(head, what());
            if (!parsed) {
              if (head.length > 64 * 1024 * 1024) throw new ImportError(`${what()}: an invalid sparse map`);
              continue;
            }
            sparse = parsed.map;
            member.sparse = sparse;
            dataLeft -= parsed.length;
            checkMap(sparse, member.size, dataLeft, what());
            mapDone = true;
            c = head.subarray(parsed.length);
            if (c.length === 0) continue;
          }
          yield c;
        }
        if (!mapDone) throw new ImportError(`${what()}: an invalid sparse map`);
      }
      if (sparse) {
        checkMap(sparse, member.size, stored, what());
        member.sparse = sparse;
      } else if (mapInData) member.sparse = [];
      last = showName(name);
      if (type === 'skip') {
        stream.resume();
        return;
      }
      if (member.type !== 'file') {
        // a directory's dumpdir listing and the like: read and dropped
        for await (const _ of stream as AsyncIterable<Buffer>) void _;
        await onMember(member, (async function* () {})());
        return;
      }
      await onMember(member, data());
      // whatever the caller did not read
      for await (const _ of stream as AsyncIterable<Buffer>) void _;
    };
    handle().then(
      () => next(),
      (e: unknown) => {
        stream.resume();
        ex.destroy(e as Error);
      },
    );
  });
  try {
    await pipeline(createReadStream(path, { highWaterMark: 1 << 20 }), ex);
  } catch (e) {
    if (e instanceof ImportError) throw e;
    const m = (e as Error).message ?? String(e);
    if (/null byte/.test(m)) throw new ImportError(`${where()}: a member with a NUL byte in its name or link target`);
    if (/Unexpected end of data/.test(m)) throw new ImportError(`${where()}: the archive is truncated`);
    if (/Invalid tar header|Invalid header|unknown format/.test(m)) throw new ImportError(`${where()}: a damaged tar header (bad checksum or field): not a tar archive, or a corrupt one`);
    if (/exceeds max size/.test(m)) throw new ImportError(`${where()}: an extended header larger than 4 MiB`);
    throw new ImportError(`${file}: ${m}`);
  } finally {
    closeSync(fd);
  }
}

/** The PAX 1.0 sparse map at the start of the data: "COUNT\nOFF\nLEN\n..." padded to a block; undefined: need more. */
function parseSparse10(b: Buffer, what: string): { map: Array<[number, number]>; length: number } | undefined {
  const nums: number[] = [];
  let pos = 0;
  let count = -1;
  while (count < 0 || nums.length < count * 2) {
    const nl = b.indexOf(0x0a, pos);
    if (nl < 0) {
      if (b.length - pos > 20) throw new ImportError(`${what}: an invalid sparse map`);
      return undefined;
    }
    const v = b.subarray(pos, nl).toString('latin1');
    if (!/^\d{1,19}$/.test(v) || !Number.isSafeInteger(Number(v))) throw new ImportError(`${what}: an invalid sparse map`);
    pos = nl + 1;
    if (count < 0) {
      count = Number(v);
      if (count > MAX_SPARSE_SEGMENTS) throw new ImportError(`${what}: a sparse map of more than ${MAX_SPARSE_SEGMENTS} segments`);
    } else nums.push(Number(v));
  }
  const length = Math.ceil(pos / BLOCK) * BLOCK;
  if (b.length < length) return undefined;
  const map: Array<[number, number]> = [];
  for (let i = 0; i < nums.length; i += 2) map.push([nums[i]!, nums[i + 1]!]);
  return { map: map.filter(([, l]) => l > 0), length };
}
