/**
 * Raw disk images, as systemd-importd 252's pull-raw, import-raw and export-raw make them: a raw image (possibly
 * compressed: gzip and zstd in Node, xz and bzip2 through their tools) written sparsely into a hidden
 * `.#import-NAME-RANDOM.raw` beside the images, then renamed to `NAME.raw` with renameat2(RENAME_NOREPLACE). qcow2
 * (by its magic, after decompression) is refused. Every way out (an error, a refusal, a cancelled AbortSignal)
 * removes the hidden file: a cancelled or failed transfer leaves nothing.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, createReadStream, fstatSync, fsyncSync, ftruncateSync, mkdirSync, write } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { Socket } from 'node:net';
import { type Duplex, Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { imageNameIsValid, lockImage } from '@nspawn/btrfs';
import { fchmod, O_CREAT, O_DIRECTORY, O_EXCL, O_NOFOLLOW, O_RDONLY, O_WRONLY, openAt, renameAt2, unlinkAt } from '@nspawn/syscall';
import { ImportError } from './errors.js';
import { parseHttpUrl, publishImage } from './partial.js';
import { cancelled, freeBytes, isAbort, openDownload, type ProgressFn, verifyDownload, type VerifyMode } from './fetch.js';

export type Compression = 'gzip' | 'xz' | 'bzip2' | 'zstd' | 'none';

export interface RawImportOptions {
  /** the image name (default: from the URL or file name, without .raw and compression suffixes) */
  name?: string;
  /** the image store (default /var/lib/machines) */
  root?: string;
  /** make the image read-only (no write bits), as --read-only */
  readOnly?: boolean;
  /** cancels the transfer: it then ends with an ImportError whose `cancelled` is true, and leaves nothing */
  signal?: AbortSignal;
  progress?: ProgressFn;
  log?: (line: string) => void;
}

export interface RawPullOptions extends RawImportOptions {
  /** --verify= (default 'checksum') */
  verify?: VerifyMode | boolean;
  /** the GPG keyring for verify 'signature' (default: systemd's import-pubring.gpg) */
  keyring?: string;
}

export interface RawResult {
  name: string;
  path: string;
  /** bytes of the (uncompressed) image */
  size: number;
}

/** "https://h/x/fedora-40.raw.xz" -> "fedora-40" (the suffixes systemd's raw_strip_suffixes() strips, repeatedly) */
export function rawNameFromUrl(u: string): string {
  let b = basename(u.replace(/[?#].*$/, ''));
  for (;;) {
    const n = b.replace(/\.(xz|gz|bz2|zst|zstd|raw|qcow2|img|bin)$/, '');
    if (n === b) return b;
    b = n;
  }
}

/** The compression of data starting with HEAD. */
export function sniffCompression(head: Buffer): Compression {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (head.length >= 3 && head.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return 'none';
}

const QCOW2_MAGIC = Buffer.from([0x51, 0x46, 0x49, 0xfb]);

/** A decompressor for KIND: zlib's for gzip (and zstd where Node has it), else the tool's stdin/stdout. */
async function decompressor(kind: Exclude<Compression, 'none'>, signal?: AbortSignal): Promise<Duplex> {
  if (kind === 'gzip') return zlib.createGunzip();
  const zstd = (zlib as unknown as { createZstdDecompress?: () => Duplex }).createZstdDecompress;
  if (kind === 'zstd' && zstd) return zstd();
  const tool = kind === 'xz' ? 'xz' : kind === 'bzip2' ? 'bzip2' : 'zstd';
  const { execa } = await import('execa');
  const p = execa(tool, ['-dc'], { stderr: 'pipe', ...(signal ? { cancelSignal: signal } : {}) });
  return p.duplex();
}

/** SRC piped into D, whose output is returned; an error of either ends both. */
function through(src: AsyncIterable<Buffer>, d: Duplex): Duplex {
  const r = Readable.from(src);
  r.on('error', (e) => d.destroy(e));
  d.on('close', () => r.destroy());
  r.pipe(d);
  return d;
}

/** SRC decompressed (by its first bytes: gzip, xz, bzip2, zstd, or as it is). */
async function* decompress(src: AsyncIterable<Buffer>, label: string, signal?: AbortSignal): AsyncGenerator<Buffer> {
  const it = src[Symbol.asyncIterator]();
  let head = Buffer.alloc(0);
  let ended = false;
  while (head.length < 6) {
    const n = await it.next();
    if (n.done) {
      ended = true;
      break;
    }
    head = Buffer.concat([head, n.value]);
  }
  const kind = sniffCompression(head);
  async function* rest(): AsyncGenerator<Buffer> {
    if (head.length > 0) yield head;
    while (!ended) {
      const n = await it.next();
      if (n.done) return;
      yield n.value;
    }
  }
  if (kind === 'none') {
    yield* rest();
    return;
  }
  const d = await decompressor(kind, signal);
  const out = through(rest(), d);
  try {
    for await (const c of out as AsyncIterable<Buffer>) yield c;
  } catch (e) {
    if (e instanceof ImportError || isAbort(e, signal)) throw e;
    const x = e as Error & { code?: string; stderr?: string };
    const why = x.code === 'ENOENT' ? `${kind} is not installed` : (x.stderr?.trim() || x.message).split('\n')[0];
    throw new ImportError(`Failed to decompress ${label} (${kind}): ${why}`);
  } finally {
    out.destroy();
  }
}

/** write(2) all of BUF at POS of FD. */
function writeAll(fd: number, buf: Buffer, pos: number | null): Promise<void> {
  return new Promise((res, rej) => {
    const step = (off: number) =>
      write(fd, buf, off, buf.length - off, pos === null ? null : pos + off, (e, n) => {
        if (e) rej(e);
        else if (off + n >= buf.length) res();
        else step(off + n);
      });
    step(0);
  });
}

const BLOCK = 4096;
const ZERO = Buffer.alloc(64 * 1024);
const allZero = (b: Buffer) => {
  for (let i = 0; i < b.length; i += ZERO.length) {
    const part = b.subarray(i, i + ZERO.length);
    if (!part.equals(ZERO.subarray(0, part.length))) return false;
  }
  return true;
};

/**
 * Writes CHUNKS into FD from offset 0, leaving holes for all-zero blocks (as systemd's sparse_write()), and sets
 * the size. Refuses qcow2 by its magic, and more than LIMIT bytes of data written (holes do not count: a sparse
 * image larger than the free space is fine, a decompression bomb of data is not). Returns the size.
 */
export async function writeSparse(fd: number, chunks: AsyncIterable<Buffer>, label: string, limit = Number.MAX_SAFE_INTEGER): Promise<number> {
  let pos = 0;
  let written = 0;
  let first = true;
  for await (const c of chunks) {
    if (first && c.length > 0) {
      first = false;
      if (c.length >= 4 && c.subarray(0, 4).equals(QCOW2_MAGIC))
        throw new ImportError(`Refusing ${label}: it is a qcow2 image, which this nspawn does not convert; convert it first (qemu-img convert -O raw).`);
    }
    // non-zero runs of whole blocks (by absolute offset) are written; zero blocks stay holes
    let i = 0;
    while (i < c.length) {
      const end = Math.min(c.length, i + (BLOCK - ((pos + i) % BLOCK)));
      const blk = c.subarray(i, end);
      if (allZero(blk)) {
        i = end;
        continue;
      }
      let j = end;
      while (j < c.length) {
        const e2 = Math.min(c.length, j + BLOCK);
        if (allZero(c.subarray(j, e2))) break;
        j = e2;
      }
      written += j - i;
      if (written > limit) throw new ImportError(`Refusing ${label}: the image's data grows past the ${limit} bytes free in the image store.`);
      await writeAll(fd, c.subarray(i, j), pos + i);
      i = j;
    }
    pos += c.length;
  }
  ftruncateSync(fd, pos);
  return pos;
}

const tmpRaw = (name: string) => `.#import-${name}-${randomBytes(8).toString('hex')}.raw`;

function exists(store: number, entry: string): boolean {
  try {
    closeSync(openAt(store, entry, O_RDONLY | O_NOFOLLOW | 0o10000000 /* O_PATH */));
    return true;
  } catch {
    return false;
  }
}

function checkTarget(store: number, root: string, name: string): void {
  if (!imageNameIsValid(name)) throw new ImportError(`Invalid image name '${name}'.`);
  for (const e of [name, `${name}.raw`]) if (exists(store, e)) throw new ImportError(`Image '${name}' already exists in ${root}: not replacing it.`);
}

/**
 * Writes the raw image CHUNKS (compressed or not) as image NAME of ROOT: into a hidden file beside the images (locked
 * as an image meanwhile, so that clean leaves it alone), then one rename. FINISH runs before the rename (checksums).
 */
async function installRaw(
  chunks: AsyncIterable<Buffer>,
  name: string,
  root: string,
  label: string,
  opts: RawImportOptions,
  finish?: () => Promise<void>,
): Promise<RawResult> {
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const store = openAt(-100, root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  let tmp: string | undefined;
  let lock: { release(): void } | undefined;
  try {
    checkTarget(store, root, name);
    tmp = tmpRaw(name);
    lock = lockImage(resolve(root, tmp));
    const fd = openAt(store, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    let size: number;
    try {
      size = await writeSparse(fd, decompress(chunks, label, opts.signal), label, freeBytes(root));
      if (opts.signal?.aborted) throw cancelled(label);
      await finish?.();
      fsyncSync(fd);
      fchmod(fd, opts.readOnly ? 0o444 : 0o644);
    } finally {
      closeSync(fd);
    }
    checkTarget(store, root, name);
    publishImage(store, tmp, `${name}.raw`, root, name);
    tmp = undefined;
    return { name, path: join(root, `${name}.raw`), size };
  } catch (e) {
    if (isAbort(e, opts.signal) && !(e instanceof ImportError)) throw cancelled(label);
    throw e;
  } finally {
    try {
      if (tmp !== undefined) unlinkAt(store, tmp);
    } catch {
      // never made
    } finally {
      closeSync(store);
      lock?.release();
    }
  }
}

/**
 * import-raw FILE [NAME]: a raw image (gzip, xz, bzip2 or zstd compressed, or not) from FILE, a path, or a
 * descriptor (stdin: a pipe, a socket or a file; then NAME is needed, and the descriptor is closed) into the store.
 */
export async function importRaw(file: string | { fd: number; label: string }, opts: RawImportOptions & { label?: string } = {}): Promise<RawResult> {
  const root = opts.root ?? '/var/lib/machines';
  const label = typeof file === 'string' ? (opts.label ?? file) : file.label;
  if (typeof file !== 'string' && opts.name === undefined) throw new ImportError(`Need an image name when importing from ${label}.`);
  const name = opts.name ?? rawNameFromUrl(file as string);
  if (!imageNameIsValid(name)) throw new ImportError(`Cannot use '${name}' (from ${label}) as an image name; give NAME.`);
  let st;
  let fd: number;
  try {
    fd = typeof file === 'string' ? openAt(-100, file, O_RDONLY) : file.fd;
    st = fstatSync(fd);
  } catch (e) {
    throw new ImportError(`Failed to open ${label}: ${(e as { code?: string }).code ?? (e as Error).message}`);
  }
  if (st.isDirectory()) {
    closeSync(fd);
    throw new ImportError(`${label} is a directory: import-fs imports directories.`);
  }
  const total = st.isFile() || st.isBlockDevice() ? st.size : undefined;
  // a pipe or socket (stdin) is read as a stream of its own: it may be non-blocking
  const stream = st.isFIFO() || st.isSocket() ? new Socket({ fd, readable: true, writable: false }) : createReadStream('', { fd, highWaterMark: 1024 * 1024 });
  const onAbort = () => stream.destroy(Object.assign(new Error('aborted'), { name: 'AbortError' }));
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  let done = 0;
  async function* counted(): AsyncGenerator<Buffer> {
    try {
      for await (const c of stream as AsyncIterable<Buffer>) {
        done += c.length;
        yield c;
        opts.progress?.(done, total);
      }
    } catch (e) {
      if (isAbort(e, opts.signal)) throw cancelled(label);
      throw new ImportError(`Failed to read ${label}: ${(e as { code?: string }).code ?? (e as Error).message}`);
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
      stream.destroy();
    }
  }
  opts.log?.(`Importing ${label}, saving as '${name}'.`);
  return installRaw(counted(), name, root, label, opts);
}

/** pull-raw URL [NAME]: download (checked as it comes), verify (SHA256SUMS, its signature), install. */
export async function pullRaw(url: string, opts: RawPullOptions = {}): Promise<RawResult> {
  const u = parseHttpUrl(url);
  const root = opts.root ?? '/var/lib/machines';
  const name = opts.name ?? rawNameFromUrl(decodeURIComponent(u.pathname));
  if (!imageNameIsValid(name)) throw new ImportError(`Cannot use '${name}' (from ${url}) as an image name; give NAME.`);
  const verify: VerifyMode = opts.verify === false ? 'no' : opts.verify === true || opts.verify === undefined ? 'checksum' : opts.verify;
  mkdirSync(root, { recursive: true, mode: 0o700 });
  {
    const store = openAt(-100, root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    try {
      checkTarget(store, root, name);
    } finally {
      closeSync(store);
    }
  }
  opts.log?.(`Downloading ${url}`);
  const d = await openDownload(url, { ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.progress ? { progress: opts.progress } : {}), limit: freeBytes(root) });
  try {
    return await installRaw(d.chunks, name, root, url, opts, () =>
      verifyDownload(u, d.digest().sha256, { mode: verify, ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.keyring ? { keyring: opts.keyring } : {}), ...(opts.log ? { log: opts.log } : {}) }),
    );
  } finally {
    await d.chunks.return(undefined).catch(() => {});
  }
}

export type ExportFormat = 'uncompressed' | 'xz' | 'gzip' | 'bzip2' | 'zstd';

/** --format= from FILE's suffix, as machinectl's import_compress_type_from_suffix... (uncompressed otherwise) */
export function exportFormatFromName(file: string): ExportFormat {
  return /\.gz$/.test(file) ? 'gzip' : /\.xz$/.test(file) ? 'xz' : /\.bz2$/.test(file) ? 'bzip2' : /\.zst$/.test(file) ? 'zstd' : 'uncompressed';
}

export interface RawExportOptions {
  format?: ExportFormat;
  signal?: AbortSignal;
  progress?: ProgressFn;
}

/** A compressor for FORMAT: zlib's for gzip and zstd (where Node has it), else the tool. */
async function compressor(format: Exclude<ExportFormat, 'uncompressed'>, signal?: AbortSignal): Promise<Duplex> {
  if (format === 'gzip') return zlib.createGzip();
  const zstd = (zlib as unknown as { createZstdCompress?: () => Duplex }).createZstdCompress;
  if (format === 'zstd' && zstd) return zstd();
  const { execa } = await import('execa');
  return execa(format === 'bzip2' ? 'bzip2' : format, ['-c'], { stderr: 'pipe', ...(signal ? { cancelSignal: signal } : {}) }).duplex();
}

/**
 * export-raw: the raw image file IMAGE (opened without following a symlink: the store resolves names) to FILE,
 * compressed by FORMAT (default: FILE's suffix). FILE is written as a hidden `.#export-…` beside it and renamed
 * over FILE when complete; a descriptor given instead (stdout) is written to directly, and closed.
 */
export async function exportRaw(image: string, file: string | { fd: number; label: string }, opts: RawExportOptions = {}): Promise<{ size: number }> {
  const label = typeof file === 'string' ? file : file.label;
  const format = opts.format ?? (typeof file === 'string' ? exportFormatFromName(file) : 'uncompressed');
  let src: number;
  try {
    src = openAt(-100, image, O_RDONLY | O_NOFOLLOW);
  } catch (e) {
    const c = (e as { code?: string }).code;
    throw new ImportError(c === 'ELOOP' ? `Refusing to export ${image}: it is a symlink.` : `Failed to open ${image}: ${c ?? (e as Error).message}`);
  }
  const st = fstatSync(src);
  if (!st.isFile()) {
    closeSync(src);
    throw new ImportError(`Refusing to export ${image}: not a regular file (only raw images export as raw).`);
  }
  let dir = -1;
  let tmp: string | undefined;
  let out: number;
  if (typeof file === 'string') {
    const d = dirname(resolve(file));
    try {
      dir = openAt(-100, d, O_RDONLY | O_DIRECTORY);
    } catch (e) {
      closeSync(src);
      throw new ImportError(`Cannot write ${file}: ${d}: ${(e as { code?: string }).code ?? (e as Error).message}`);
    }
    tmp = `.#export-${basename(file)}-${randomBytes(6).toString('hex')}`;
    out = openAt(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644);
  } else out = file.fd;
  const outSt = fstatSync(out);
  const sock = tmp === undefined && (outSt.isFIFO() || outSt.isSocket()) ? new Socket({ fd: out, readable: false, writable: true }) : undefined;
  const put = async (chunk: Buffer) => {
    if (!sock) return writeAll(out, chunk, null);
    if (!sock.write(chunk)) await new Promise<void>((res, rej) => {
      const done = (e?: Error) => {
        sock.off('drain', done);
        sock.off('error', done);
        if (e) rej(e);
        else res();
      };
      sock.on('drain', done);
      sock.on('error', done);
    });
  };
  const stream = createReadStream('', { fd: src, highWaterMark: 1024 * 1024, ...(opts.signal ? { signal: opts.signal } : {}) });
  let done = 0;
  async function* counted(): AsyncGenerator<Buffer> {
    for await (const c of stream as AsyncIterable<Buffer>) {
      done += c.length;
      yield c;
      opts.progress?.(done, st.size);
    }
  }
  try {
    let size = 0;
    if (format === 'uncompressed' && tmp !== undefined) size = await writeSparse(out, counted(), label);
    else {
      const c = format === 'uncompressed' ? undefined : await compressor(format, opts.signal);
      const data = c ? through(counted(), c) : Readable.from(counted());
      try {
        for await (const chunk of data as AsyncIterable<Buffer>) {
          await put(chunk);
          size += chunk.length;
        }
      } finally {
        data.destroy();
      }
    }
    if (opts.signal?.aborted) throw cancelled(label);
    if (sock) await new Promise<void>((res) => sock.end(res));
    if (tmp !== undefined) {
      fsyncSync(out);
      closeSync(out);
      out = -1;
      renameAt2(dir, tmp, dir, basename(file as string), 0);
      tmp = undefined;
    }
    return { size };
  } catch (e) {
    if (isAbort(e, opts.signal)) throw cancelled(label);
    if (e instanceof ImportError) throw e;
    const x = e as Error & { code?: string; stderr?: string };
    throw new ImportError(`Failed to export ${image} to ${label}: ${x.code === 'ENOENT' ? `${format} is not installed` : (x.stderr?.trim() || x.code || x.message).split('\n')[0]}`);
  } finally {
    stream.destroy();
    // a descriptor given is ours to close (the socket wrapping it closes it)
    if (sock) sock.destroy();
    else if (typeof file !== 'string') closeSync(out);
    if (tmp !== undefined) {
      if (out >= 0) closeSync(out);
      try {
        unlinkAt(dir, tmp);
      } catch {
        // gone
      }
    }
    if (dir >= 0) closeSync(dir);
  }
}
