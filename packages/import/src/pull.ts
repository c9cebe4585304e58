/**
 * pull-tar, import-tar, export-tar (systemd-importd's tar side): download over HTTP(S) with a progress callback,
 * SHA256SUMS verification, decompression (gzip, xz, bzip2, zstd), safe extraction (./extract.ts) into a hidden
 * temporary image beside the target, then one rename: nothing partial is left on failure, and an existing image is
 * never replaced.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, existsSync, lstatSync, mkdirSync, openSync, readSync, rmSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import * as zlib from 'node:zlib';
import { createSubvolume, imageNameIsValid, lockImage, storeIsBtrfs } from '@nspawn/btrfs';
import { O_DIRECTORY, O_NOFOLLOW, O_RDONLY, openAt } from '@nspawn/syscall';
import { ImportError } from './errors.js';
import { type ExtractStats, extractTar } from './extract.js';
import { parseSha256Sums, type ProgressFn, verifyDownload, type VerifyMode } from './fetch.js';
import { parseHttpUrl, publishImage, removePartial } from './partial.js';

export { type ProgressFn, parseSha256Sums } from './fetch.js';

export interface ImportOptions {
  /** the image name (default: from the URL or file name, without .tar and compression suffixes) */
  name?: string;
  /** the image store (default /var/lib/machines) */
  root?: string;
}

export interface PullOptions extends ImportOptions {
  /** check the download against SHA256SUMS beside it (default true) */
  verify?: boolean | VerifyMode;
  /** the GPG keyring for verify 'signature' (default: systemd's import-pubring.gpg) */
  keyring?: string;
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
  const o = openSync(out, 'w', 0o600);
  try {
    const { execa } = await import('execa'); // loaded when used: nspawnctl imports this package for every verb
    const r = await execa(tool, ['-dc'], { inputFile: file, stdout: { file: out }, stderr: 'pipe', reject: false });
    if (r.failed) {
      const why = r.code === 'ENOENT' ? `${tool} is not installed` : r.stderr.trim() || r.shortMessage;
      throw new ImportError(`Failed to decompress ${file} with ${tool}: ${why}`);
    }
  } finally {
    closeSync(o);
  }
}

/** `.#import-NAME-RANDOM[SUFFIX]`: hidden (not listed), recognisable as an import in progress or a leftover */
const tmpName = (name: string, suffix: string) => `.#import-${name}-${randomBytes(8).toString('hex')}${suffix}`;

/**
 * Installs the (possibly compressed) tarball FILE as image NAME in ROOT: extraction into a hidden new subvolume
 * or directory beside the images (`.#import-NAME-RANDOM`, locked as an image while it is made, so that
 * `cleanImages()` leaves it alone), then one renameat2(RENAME_NOREPLACE) into place. On any failure the partial
 * tree is removed (through descriptors: no symlink followed, no mount crossed); an existing image is never replaced.
 */
export async function installTarball(file: string, name: string, root: string, label = file): Promise<ImportResult> {
  checkTarget(root, name);
  const tmp = tmpName(name, '');
  const tmpPath = resolve(root, tmp);
  let plain = file;
  let made = false;
  const lock = lockImage(tmpPath);
  const store = openAt(-100, root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  try {
    if (sniff(file) !== 'none') {
      plain = join(root, tmpName(name, '.tar'));
      await decompress(file, plain);
    }
    if (storeIsBtrfs({ root })) createSubvolume(tmpPath);
    else mkdirSync(tmpPath, { mode: 0o755 });
    made = true;
    const stats = await extractTar(plain, tmpPath, { label });
    // the name may have been taken while we extracted: never replace
    checkTarget(root, name);
    publishImage(store, tmp, name, root);
    made = false;
    return { name, path: join(root, name), stats };
  } finally {
    if (plain !== file) rmSync(plain, { force: true });
    try {
      if (made) removePartial(store, tmp, tmpPath);
    } finally {
      closeSync(store);
      lock.release();
    }
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
  const u = parseHttpUrl(url);
  const root = opts.root ?? '/var/lib/machines';
  const name = opts.name ?? imageNameFromUrl(u.pathname);
  mkdirSync(root, { recursive: true, mode: 0o700 });
  checkTarget(root, name);
  const file = join(root, tmpName(name, '.download'));
  try {
    opts.log?.(`Downloading ${url}`);
    const sum = await download(url, file, opts.progress);
    if (opts.verify === 'signature')
      await verifyDownload(u, sum, { mode: 'signature', ...(opts.keyring ? { keyring: opts.keyring } : {}), ...(opts.log ? { log: opts.log } : {}) });
    else if (opts.verify !== false && opts.verify !== 'no') {
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
    return await installTarball(file, name, root, url);
  } finally {
    rmSync(file, { force: true });
  }
}

/**
 * export-tar: image directory PATH as a tar archive (compressed by FILE's suffix) to FILE, or stdout for '-'. GNU tar
 * in POSIX format with every extended attribute (file capabilities and ACLs included, as SCHILY.xattr.*), numeric
 * owners, and holes kept (`--sparse`): what extractTar() restores.
 */
export async function exportTar(path: string, file: string): Promise<void> {
  const z = /\.(t?gz)$/.test(file) ? ['-z'] : /\.xz$/.test(file) ? ['-J'] : /\.bz2$/.test(file) ? ['-j'] : /\.zst$/.test(file) ? ['--zstd'] : [];
  const tmp = file === '-' ? '-' : `${file}.part-${randomBytes(4).toString('hex')}`;
  const { execa } = await import('execa');
  const r = await execa('tar', ['--numeric-owner', '--xattrs', '--xattrs-include=*', '--sparse', '--format=posix', '-C', path, ...z, '-cf', tmp, '.'], {
    stdin: 'ignore',
    stdout: 'inherit',
    stderr: 'pipe',
    reject: false,
  });
  if (r.failed) {
    if (tmp !== '-') rmSync(tmp, { force: true });
    throw new ImportError(r.code === 'ENOENT' ? 'Failed to run tar: it is not installed' : `tar failed: ${r.stderr.trim() || r.shortMessage}`);
  }
  if (tmp !== '-') {
    const { renameSync } = await import('node:fs');
    renameSync(tmp, file);
  }
}
