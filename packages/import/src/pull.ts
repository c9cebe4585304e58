/**
 * pull-tar, import-tar, export-tar (systemd-importd's tar side): download over HTTP(S) with a progress callback,
 * SHA256SUMS verification, decompression (gzip, xz, bzip2, zstd), safe extraction (./tar.ts) into a hidden
 * temporary image beside the target, then one rename: nothing partial is left on failure, and an existing image is
 * never replaced.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, existsSync, lstatSync, mkdirSync, openSync, readSync, renameSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import * as zlib from 'node:zlib';
import { createSubvolume, imageNameIsValid, removeTree, storeIsBtrfs } from '@nspawn/btrfs';
import { type ExtractStats, extractTar, ImportError } from './tar.js';

export type ProgressFn = (done: number, total: number | undefined) => void;

export interface ImportOptions {
  /** the image name (default: from the URL or file name, without .tar and compression suffixes) */
  name?: string;
  /** the image store (default /var/lib/machines) */
  root?: string;
}

export interface PullOptions extends ImportOptions {
  /** check the download against SHA256SUMS beside it (default true) */
  verify?: boolean;
  progress?: ProgressFn;
  log?: (line: string) => void;
}

export interface ImportResult {
  name: string;
  path: string;
  stats: ExtractStats;
}

/** "https://h/x/debian-12.tar.xz" -> "debian-12" */
export function imageNameFromUrl(u: string): string {
  let b = basename(u.replace(/[?#].*$/, ''));
  b = b.replace(/\.(gz|xz|bz2|zst|zstd)$/, '').replace(/\.(tar|tgz|txz)$/, '');
  return b;
}

function pathExists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

function checkTarget(root: string, name: string): void {
  if (!imageNameIsValid(name)) throw new ImportError(`Invalid image name '${name}'.`);
  for (const e of [name, `${name}.raw`]) if (pathExists(join(root, e))) throw new ImportError(`Image '${name}' already exists in ${root}: not replacing it.`);
}

/** The file's compression by its first bytes. */
function sniff(file: string): 'gzip' | 'xz' | 'bzip2' | 'zstd' | 'none' {
  const fd = openSync(file, 'r');
  const b = Buffer.alloc(6);
  try {
    readSync(fd, b, 0, 6, 0);
  } finally {
    closeSync(fd);
  }
  if (b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
  if (b.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (b.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  if (b.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return 'none';
}

async function decompress(file: string, out: string): Promise<void> {
  const kind = sniff(file);
  if (kind === 'gzip') return pipeline(createReadStream(file), createGunzip(), createWriteStream(out, { mode: 0o600 }));
  const zstd = (zlib as unknown as { createZstdDecompress?: () => NodeJS.ReadWriteStream }).createZstdDecompress;
  if (kind === 'zstd' && zstd) return pipeline(createReadStream(file), zstd(), createWriteStream(out, { mode: 0o600 }));
  const tool = kind === 'xz' ? 'xz' : kind === 'bzip2' ? 'bzip2' : 'zstd';
  await new Promise<void>((resolve, reject) => {
    const o = openSync(out, 'w', 0o600);
    const i = openSync(file, 'r');
    const c = spawn(tool, ['-dc'], { stdio: [i, o, 'pipe'] });
    let err = '';
    c.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    c.on('error', (e) => reject(new ImportError(`Failed to run ${tool} to decompress the archive: ${e.message}`)));
    c.on('close', (code) => {
      closeSync(o);
      closeSync(i);
      if (code === 0) resolve();
      else reject(new ImportError(`${tool} failed to decompress the archive: ${err.trim()}`));
    });
  });
}

const tmpName = (root: string, name: string, what: string) => join(root, `.tar-${name}-${randomBytes(6).toString('hex')}${what}`);

/**
 * Installs the (possibly compressed) tarball FILE as image NAME in ROOT: extraction into a hidden new subvolume
 * or directory, then a rename into place. On any failure nothing is left.
 */
export async function installTarball(file: string, name: string, root: string): Promise<ImportResult> {
  checkTarget(root, name);
  const tmp = tmpName(root, name, '');
  let plain = file;
  let made = false;
  try {
    if (sniff(file) !== 'none') {
      plain = tmpName(root, name, '.tar');
      await decompress(file, plain);
    }
    if (storeIsBtrfs({ root })) createSubvolume(tmp);
    else mkdirSync(tmp, { mode: 0o755 });
    made = true;
    const stats = extractTar(plain, tmp);
    // the name may have been taken while we extracted: never replace
    checkTarget(root, name);
    renameSync(tmp, join(root, name));
    made = false;
    return { name, path: join(root, name), stats };
  } finally {
    if (plain !== file) rmSync(plain, { force: true });
    if (made) removeTree(tmp, { within: root });
  }
}

/** import-tar FILE [NAME] */
export async function importTar(file: string, opts: ImportOptions = {}): Promise<ImportResult> {
  const root = opts.root ?? '/var/lib/machines';
  const name = opts.name ?? imageNameFromUrl(file);
  if (!existsSync(file)) throw new ImportError(`${file}: No such file`);
  mkdirSync(root, { recursive: true, mode: 0o700 });
  return installTarball(file, name, root);
}

/** SHA256SUMS: "HEX  NAME" or "HEX *NAME" per line. */
export function parseSha256Sums(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const r = /^([0-9a-fA-F]{64}) [ *](.+)$/.exec(line.trim());
    if (r) m.set(r[2]!, r[1]!.toLowerCase());
  }
  return m;
}

async function download(url: string, to: string, progress?: ProgressFn): Promise<string> {
  let res: Response;
  try {
    res = await fetch(url, { redirect: 'follow' });
  } catch (e) {
    throw new ImportError(`Failed to download ${url}: ${(e as Error & { cause?: Error }).cause?.message ?? (e as Error).message}`);
  }
  if (!res.ok || !res.body) throw new ImportError(`Failed to download ${url}: HTTP ${res.status} ${res.statusText}`);
  const total = Number(res.headers.get('content-length')) || undefined;
  const hash = createHash('sha256');
  let done = 0;
  const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
  body.on('data', (c: Buffer) => {
    hash.update(c);
    done += c.length;
    progress?.(done, total);
  });
  await pipeline(body, createWriteStream(to, { mode: 0o600 }));
  if (total !== undefined && done !== total) throw new ImportError(`Download of ${url} is incomplete (${done} of ${total} bytes)`);
  if (progress && done !== total) progress(done, done);
  return hash.digest('hex');
}

/** pull-tar URL [NAME] */
export async function pullTar(url: string, opts: PullOptions = {}): Promise<ImportResult> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ImportError(`Invalid URL '${url}'.`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ImportError(`Only http:// and https:// URLs are supported: ${url}`);
  const root = opts.root ?? '/var/lib/machines';
  const name = opts.name ?? imageNameFromUrl(u.pathname);
  mkdirSync(root, { recursive: true, mode: 0o700 });
  checkTarget(root, name);
  const file = tmpName(root, name, '.download');
  try {
    opts.log?.(`Downloading ${url}`);
    const sum = await download(url, file, opts.progress);
    if (opts.verify !== false) {
      const sumsUrl = new URL('SHA256SUMS', u).href;
      let text: string;
      try {
        const r = await fetch(sumsUrl);
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        text = await r.text();
      } catch (e) {
        throw new ImportError(`Failed to get ${sumsUrl} to verify the download (--verify=no skips this): ${(e as Error).message}`);
      }
      const want = parseSha256Sums(text).get(basename(u.pathname));
      if (!want) throw new ImportError(`${sumsUrl} lists no checksum for ${basename(u.pathname)}.`);
      if (want !== sum) throw new ImportError(`SHA256 checksum of ${basename(u.pathname)} does not match: expected ${want}, got ${sum}.`);
      opts.log?.(`SHA256 checksum of ${basename(u.pathname)} is correct.`);
    }
    return await installTarball(file, name, root);
  } finally {
    rmSync(file, { force: true });
  }
}

/** export-tar: image directory PATH as a tar archive (compressed by FILE's suffix) to FILE, or stdout for '-'. */
export async function exportTar(path: string, file: string): Promise<void> {
  const z = /\.(t?gz)$/.test(file) ? ['-z'] : /\.xz$/.test(file) ? ['-J'] : /\.bz2$/.test(file) ? ['-j'] : /\.zst$/.test(file) ? ['--zstd'] : [];
  const tmp = file === '-' ? '-' : `${file}.part-${randomBytes(4).toString('hex')}`;
  await new Promise<void>((resolve, reject) => {
    const c = spawn('tar', ['--numeric-owner', '--xattrs', '-C', path, ...z, '-cf', tmp, '.'], { stdio: ['ignore', 'inherit', 'pipe'] });
    let err = '';
    c.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    c.on('error', (e) => reject(new ImportError(`Failed to run tar: ${e.message}`)));
    c.on('close', (code) => (code === 0 ? resolve() : reject(new ImportError(`tar failed: ${err.trim()}`))));
  }).catch((e: unknown) => {
    if (tmp !== '-') rmSync(tmp, { force: true });
    throw e;
  });
  if (tmp !== '-') renameSync(tmp, file);
}
