/**
 * A tar reader (ustar, GNU long names, pax headers) and a safe extractor: every member lands inside the target
 * directory, or the whole extraction fails.
 *
 * - absolute member names and `..` components are refused;
 * - nothing is written through a symlink: each parent of a member must be a real directory made by this
 *   extraction (lstat, never stat), an existing last component is replaced, never followed, and files are opened
 *   with O_NOFOLLOW | O_EXCL;
 * - hard links must point at a regular file already extracted inside the target;
 * - ownership (numeric UID/GID), modes (setuid included, applied after chown) and mtimes are kept; directory modes
 *   are applied last so that a read-only directory does not stop its own members.
 * Device nodes and FIFOs are made with mknod(1)/mkfifo(1) (Node has no mknod). Extended attributes are not kept.
 */
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  constants,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeSync,
  chmodSync,
  fchmodSync,
  fchownSync,
  futimesSync,
} from 'node:fs';
import { join } from 'node:path';

export class ImportError extends Error {
  override name = 'ImportError';
}

export interface TarEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
}

const BLOCK = 512;

function str(b: Buffer, off: number, len: number): string {
  const s = b.subarray(off, off + len);
  const z = s.indexOf(0);
  return (z >= 0 ? s.subarray(0, z) : s).toString('utf8');
}

function num(b: Buffer, off: number, len: number): number {
  // base-256 (GNU) for large values
  if (b[off]! & 0x80) {
    let v = 0;
    for (let i = 1; i < len; i++) v = v * 256 + b[off + i]!;
    return v;
  }
  const s = str(b, off, len).trim();
  return s === '' ? 0 : parseInt(s, 8);
}

function checksumOk(h: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
  return sum === num(h, 148, 8);
}

function parsePax(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < data.length) {
    const sp = data.indexOf(0x20, i);
    if (sp < 0) break;
    const len = Number(data.subarray(i, sp).toString('ascii'));
    if (!Number.isInteger(len) || len <= 0 || i + len > data.length) throw new ImportError('Invalid pax header in the archive');
    const kv = data.subarray(sp + 1, i + len - 1).toString('utf8'); // without the trailing newline
    const eq = kv.indexOf('=');
    if (eq > 0) out[kv.slice(0, eq)] = kv.slice(eq + 1);
    i += len;
  }
  return out;
}

/** Reads the archive at FD member by member; `onEntry` gets each header and a reader for its data. */
export function readTar(fd: number, onEntry: (e: TarEntry, read: (sink: (chunk: Buffer) => void) => void) => void): void {
  let pos = 0;
  const h = Buffer.alloc(BLOCK);
  const readExact = (buf: Buffer, len: number): number => {
    let got = 0;
    while (got < len) {
      const n = readSync(fd, buf, got, len - got, pos + got);
      if (n <= 0) break;
      got += n;
    }
    return got;
  };
  let longName: string | undefined;
  let longLink: string | undefined;
  let pax: Record<string, string> = {};
  let zeros = 0;
  for (;;) {
    const n = readExact(h, BLOCK);
    if (n === 0 && zeros > 0) return;
    if (n < BLOCK) throw new ImportError('The archive ends in the middle of a header (truncated?)');
    pos += BLOCK;
    if (h.every((x) => x === 0)) {
      if (++zeros >= 2) return;
      continue;
    }
    zeros = 0;
    if (!checksumOk(h)) throw new ImportError(`Invalid tar header checksum at offset ${pos - BLOCK}: not a tar archive, or a damaged one`);
    const flag = String.fromCharCode(h[156]!) || '0';
    const size = num(h, 124, 12);
    const padded = Math.ceil(size / BLOCK) * BLOCK;
    const readData = (): Buffer => {
      if (size > 16 * 1024 * 1024) throw new ImportError('An extended header is too large');
      const b = Buffer.alloc(size);
      if (readExact(b, size) < size) throw new ImportError('The archive is truncated');
      pos += padded;
      return b;
    };
    if (flag === 'L') {
      longName = str(readData(), 0, size);
      continue;
    }
    if (flag === 'K') {
      longLink = str(readData(), 0, size);
      continue;
    }
    if (flag === 'x') {
      pax = { ...pax, ...parsePax(readData()) };
      continue;
    }
    if (flag === 'g') {
      readData();
      continue;
    }
    const magic = str(h, 257, 6);
    let path = str(h, 0, 100);
    if (magic.startsWith('ustar')) {
      const prefix = str(h, 345, 155);
      if (prefix && magic === 'ustar') path = `${prefix}/${path}`;
    }
    path = pax.path ?? longName ?? path;
    const linkname = pax.linkpath ?? longLink ?? str(h, 157, 100);
    const types: Record<string, TarEntry['type']> = { '0': 'file', '\0': 'file', '7': 'file', '1': 'hardlink', '2': 'symlink', '3': 'char', '4': 'block', '5': 'dir', '6': 'fifo' };
    const type = types[flag];
    const entry: TarEntry = {
      path,
      type: type ?? 'file',
      mode: num(h, 100, 8) & 0o7777,
      uid: pax.uid !== undefined ? Number(pax.uid) : num(h, 108, 8),
      gid: pax.gid !== undefined ? Number(pax.gid) : num(h, 116, 8),
      size: pax.size !== undefined ? Number(pax.size) : size,
      mtime: pax.mtime !== undefined ? Number(pax.mtime) : num(h, 136, 12),
      linkname,
      devmajor: num(h, 329, 8),
      devminor: num(h, 337, 8),
    };
    longName = longLink = undefined;
    pax = {};
    const dataSize = entry.type === 'file' ? entry.size : 0;
    const dataPadded = Math.ceil(dataSize / BLOCK) * BLOCK;
    let consumed = false;
    const start = pos;
    const read = (sink: (chunk: Buffer) => void) => {
      consumed = true;
      const buf = Buffer.alloc(Math.min(1 << 20, Math.max(dataSize, 1)));
      let left = dataSize;
      let p = start;
      while (left > 0) {
        const want = Math.min(buf.length, left);
        const got = readSync(fd, buf, 0, want, p);
        if (got <= 0) throw new ImportError(`The archive is truncated in ${entry.path}`);
        sink(buf.subarray(0, got));
        left -= got;
        p += got;
      }
    };
    if (type === undefined) {
      // unknown member types (sparse, volume labels, ...) are skipped
    } else onEntry(entry, read);
    void consumed;
    pos = start + (type === undefined ? padded : dataPadded);
  }
}

/** The member's path as components below the target; refuses absolute names and `..`. */
export function safeComponents(name: string): string[] {
  if (name.startsWith('/')) throw new ImportError(`Refusing the archive: member '${name}' has an absolute path`);
  const parts = name.split('/').filter((c) => c !== '' && c !== '.');
  if (parts.includes('..')) throw new ImportError(`Refusing the archive: member '${name}' climbs out with '..'`);
  return parts;
}

function lstatOrUndefined(p: string) {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}

export interface ExtractStats {
  entries: number;
  bytes: number;
}

/**
 * Extracts the tar archive at ARCHIVE into DEST, an existing empty directory this process made. Throws
 * ImportError at the first unsafe member (DEST then holds a partial tree: the caller removes it).
 */
export function extractTar(archive: string, dest: string): ExtractStats {
  const fd = openSync(archive, 'r');
  const dirs: Array<{ path: string; mode: number; mtime: number }> = [];
  const stats: ExtractStats = { entries: 0, bytes: 0 };
  try {
    readTar(fd, (e, read) => {
      const parts = safeComponents(e.path);
      if (parts.length === 0) {
        // the root itself ("./"): its mode and owner apply to DEST
        if (e.type === 'dir') {
          lchownSync(dest, e.uid, e.gid);
          dirs.push({ path: dest, mode: e.mode, mtime: e.mtime });
        }
        return;
      }
      // every parent must be a real directory inside DEST: make missing ones, refuse symlinks and files
      let parent = dest;
      for (const c of parts.slice(0, -1)) {
        parent = join(parent, c);
        const st = lstatOrUndefined(parent);
        if (!st) mkdirSync(parent, { mode: 0o755 });
        else if (st.isSymbolicLink()) throw new ImportError(`Refusing the archive: member '${e.path}' would be written through the symlink '${parts.slice(0, parts.indexOf(c) + 1).join('/')}'`);
        else if (!st.isDirectory()) throw new ImportError(`Refusing the archive: member '${e.path}' has a non-directory parent`);
      }
      const target = join(parent, parts[parts.length - 1]!);
      const existing = lstatOrUndefined(target);
      if (existing && !(e.type === 'dir' && existing.isDirectory())) {
        if (existing.isDirectory()) rmSync(target, { recursive: true });
        else unlinkSync(target); // a symlink is replaced, never followed
      }
      stats.entries++;
      switch (e.type) {
        case 'dir':
          if (!existing || !existing.isDirectory()) mkdirSync(target, { mode: 0o700 });
          lchownSync(target, e.uid, e.gid);
          dirs.push({ path: target, mode: e.mode, mtime: e.mtime });
          return;
        case 'file': {
          const out = openSync(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
          try {
            read((chunk) => {
              let off = 0;
              while (off < chunk.length) off += writeSync(out, chunk, off);
              stats.bytes += chunk.length;
            });
            fchownSync(out, e.uid, e.gid);
            fchmodSync(out, e.mode);
            futimesSync(out, e.mtime, e.mtime);
          } finally {
            closeSync(out);
          }
          return;
        }
        case 'symlink':
          symlinkSync(e.linkname, target);
          lchownSync(target, e.uid, e.gid);
          lutimesSync(target, e.mtime, e.mtime);
          return;
        case 'hardlink': {
          const lp = safeComponents(e.linkname);
          let p = dest;
          for (const [i, c] of lp.entries()) {
            p = join(p, c);
            const st = lstatOrUndefined(p);
            if (!st || st.isSymbolicLink() || (i < lp.length - 1 && !st.isDirectory()))
              throw new ImportError(`Refusing the archive: hard link '${e.path}' points at '${e.linkname}', which is not a file extracted before`);
            if (i === lp.length - 1 && !st.isFile()) throw new ImportError(`Refusing the archive: hard link '${e.path}' points at a non-file`);
          }
          linkSync(p, target);
          return;
        }
        case 'char':
        case 'block':
          execFileSync('mknod', ['-m', (e.mode & 0o777).toString(8), target, e.type === 'char' ? 'c' : 'b', String(e.devmajor), String(e.devminor)]);
          lchownSync(target, e.uid, e.gid);
          return;
        case 'fifo':
          execFileSync('mkfifo', ['-m', (e.mode & 0o777).toString(8), target]);
          lchownSync(target, e.uid, e.gid);
          return;
      }
    });
  } finally {
    closeSync(fd);
  }
  // deepest first, so a read-only directory is set after what is inside it
  for (const d of dirs.reverse()) {
    chmodSync(d.path, d.mode);
    lutimesSync(d.path, d.mtime, d.mtime);
  }
  return stats;
}
