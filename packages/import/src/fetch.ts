/**
 * Downloads for pull-raw (and what it verifies them with): HTTP(S) bodies as a stream of chunks checked as they
 * come (never more than the declared Content-Length, which must fit the given cap, nor more than the cap without
 * one; a body cut short fails), cancellable through an AbortSignal, with the SHA-256 of what arrived; SHA256SUMS beside the URL, and its detached GPG signature SHA256SUMS.gpg checked against
 * systemd's import keyring as systemd-pull 252 does (gpg(1) in a temporary home, the keyring given, trust model
 * "always").
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, statfsSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { ImportError } from './errors.js';

export type ProgressFn = (done: number, total: number | undefined) => void;

/** What --verify= asks: nothing, the SHA256SUMS entry, or that and SHA256SUMS.gpg against the keyring. */
export type VerifyMode = 'no' | 'checksum' | 'signature';

/** The keyrings systemd-pull 252 uses: /etc first, then the vendor's. */
export const IMPORT_KEYRINGS = ['/etc/systemd/import-pubring.gpg', '/usr/lib/systemd/import-pubring.gpg'];

/** Bytes free for root on the file system of PATH. */
export function freeBytes(path: string): number {
  const s = statfsSync(path);
  return s.bfree * s.bsize;
}

const cause = (e: unknown) => {
  const c = (e as Error & { cause?: Error }).cause;
  return c?.message ?? (e as Error).message;
};

export const isAbort = (e: unknown, signal?: AbortSignal) => signal?.aborted === true || (e as Error)?.name === 'AbortError';

/** The error a cancelled transfer ends with. */
export function cancelled(what: string): ImportError {
  const e = new ImportError(`Transfer of ${what} was cancelled.`);
  (e as ImportError & { cancelled?: boolean }).cancelled = true;
  return e;
}

export interface DownloadOptions {
  signal?: AbortSignal;
  progress?: ProgressFn;
  /** the most bytes taken when the server declares none (default: unlimited) */
  limit?: number;
}

/** Opens URL: a Response with a body, or an ImportError naming the URL. */
async function open(url: string, signal?: AbortSignal): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, { redirect: 'follow', ...(signal ? { signal } : {}) });
  } catch (e) {
    if (isAbort(e, signal)) throw cancelled(url);
    throw new ImportError(`Failed to download ${url}: ${cause(e)}`);
  }
  if (!res.ok || !res.body) {
    await res.body?.cancel().catch(() => {});
    throw new ImportError(`Failed to download ${url}: HTTP ${res.status} ${res.statusText}`);
  }
  return res;
}

/** An open download: its declared size, its body as chunks (checked as they come), and at the end its digest. */
export interface Download {
  total: number | undefined;
  chunks: AsyncGenerator<Buffer>;
  /** the SHA-256 (hex) and size of the body, once CHUNKS is done */
  digest(): { sha256: string; size: number };
}

/**
 * Opens URL. Refuses a declared size over LIMIT before taking a byte; its chunks refuse more bytes than declared (or
 * than LIMIT without a declaration) and a body that ends early; a cancelled SIGNAL ends them with cancelled().
 */
export async function openDownload(url: string, opts: DownloadOptions = {}): Promise<Download> {
  const res = await open(url, opts.signal);
  const declared = res.headers.get('content-length');
  const total = declared !== null && /^\d+$/.test(declared) ? Number(declared) : undefined;
  const limit = opts.limit ?? Number.MAX_SAFE_INTEGER;
  const body = res.body!;
  if (total !== undefined && total > limit) {
    await body.cancel().catch(() => {});
    throw new ImportError(`Refusing ${url}: the server declares ${total} bytes, more than the ${limit} bytes free in the image store.`);
  }
  const hash = createHash('sha256');
  let done = 0;
  let finished = false;
  async function* chunks(): AsyncGenerator<Buffer> {
    try {
      for await (const c of body as AsyncIterable<Uint8Array>) {
        const chunk = Buffer.from(c.buffer, c.byteOffset, c.byteLength);
        done += chunk.length;
        if (total !== undefined && done > total) throw new ImportError(`Refusing ${url}: the server sent more than the ${total} bytes it declared.`);
        if (done > limit) throw new ImportError(`Refusing ${url}: the download exceeds the ${limit} bytes free in the image store.`);
        hash.update(chunk);
        yield chunk;
        opts.progress?.(done, total);
      }
      if (total !== undefined && done !== total) throw new ImportError(`Download of ${url} is incomplete (${done} of ${total} bytes).`);
      finished = true;
    } catch (e) {
      await body.cancel().catch(() => {});
      if (isAbort(e, opts.signal)) throw cancelled(url);
      if (e instanceof ImportError) throw e;
      throw new ImportError(`Failed to download ${url}: ${cause(e)}${total !== undefined ? ` (after ${done} of ${total} bytes)` : ''}`);
    } finally {
      if (!finished) await body.cancel().catch(() => {});
    }
  }
  return {
    total,
    chunks: chunks(),
    digest: () => {
      if (!finished) throw new Error('download not finished');
      return { sha256: hash.digest('hex'), size: done };
    },
  };
}

/** A small file (SHA256SUMS, its signature): at most MAX bytes. */
export async function fetchSmall(url: string, signal?: AbortSignal, max = 1024 * 1024): Promise<Buffer> {
  const parts: Buffer[] = [];
  const d = await openDownload(url, { ...(signal ? { signal } : {}), limit: max });
  for await (const c of d.chunks) parts.push(c);
  return Buffer.concat(parts);
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

export interface VerifyOptions {
  mode: VerifyMode;
  signal?: AbortSignal;
  /** the keyring for 'signature' (default: the first of IMPORT_KEYRINGS that exists) */
  keyring?: string;
  log?: (line: string) => void;
}

/**
 * Checks that SHA256 (hex) of the file at URL is what SHA256SUMS beside it says ('checksum'), and with 'signature'
 * first that SHA256SUMS.gpg is a good signature of SHA256SUMS by a key of the keyring. Throws an ImportError.
 */
export async function verifyDownload(url: URL, sha256: string, opts: VerifyOptions): Promise<void> {
  if (opts.mode === 'no') return;
  const file = basename(decodeURIComponent(url.pathname));
  const sumsUrl = new URL('SHA256SUMS', url).href;
  let keyring: string | undefined;
  if (opts.mode === 'signature') {
    keyring = opts.keyring ?? IMPORT_KEYRINGS.find((k) => existsSync(k));
    if (!keyring || !existsSync(keyring))
      throw new ImportError(`Cannot verify the signature of ${sumsUrl}: no keyring (${opts.keyring ?? IMPORT_KEYRINGS.join(' or ')}); use --verify=checksum or --verify=no.`);
  }
  let sums: Buffer;
  try {
    sums = await fetchSmall(sumsUrl, opts.signal);
  } catch (e) {
    if ((e as { cancelled?: boolean }).cancelled) throw e;
    throw new ImportError(`Failed to get ${sumsUrl} to verify the download (--verify=no skips this): ${(e as Error).message}`);
  }
  if (keyring) {
    const sigUrl = `${sumsUrl}.gpg`;
    let sig: Buffer;
    try {
      sig = await fetchSmall(sigUrl, opts.signal);
    } catch (e) {
      if ((e as { cancelled?: boolean }).cancelled) throw e;
      throw new ImportError(`Failed to get ${sigUrl} to verify the signature (--verify=checksum skips this): ${(e as Error).message}`);
    }
    await verifyGpg(sums, sig, keyring, sumsUrl, opts.signal);
    opts.log?.(`Signature of ${sumsUrl} is good (keyring ${keyring}).`);
  }
  const want = parseSha256Sums(sums.toString('utf8')).get(file);
  if (!want) throw new ImportError(`${sumsUrl} lists no checksum for ${file}.`);
  if (want !== sha256) throw new ImportError(`SHA256 checksum of ${file} does not match: expected ${want}, got ${sha256}.`);
  opts.log?.(`SHA256 checksum of ${file} is correct.`);
}

/** gpg --verify SIG DATA against KEYRING alone, in a throw-away home (as systemd-pull's verify_gpg()). */
async function verifyGpg(data: Buffer, sig: Buffer, keyring: string, what: string, signal?: AbortSignal): Promise<void> {
  const home = mkdtempSync(join(tmpdir(), 'nspawn-pull-gpg-'));
  try {
    writeFileSync(join(home, 'data'), data, { mode: 0o600 });
    writeFileSync(join(home, 'data.sig'), sig, { mode: 0o600 });
    const { execa } = await import('execa');
    const r = await execa(
      'gpg',
      ['--no-options', '--no-default-keyring', '--no-auto-key-locate', '--no-auto-check-trustdb', '--batch', '--trust-model=always', `--homedir=${home}`, `--keyring=${keyring}`, '--verify', join(home, 'data.sig'), join(home, 'data')],
      { reject: false, stdin: 'ignore', ...(signal ? { cancelSignal: signal } : {}) },
    );
    if (signal?.aborted) throw cancelled(what);
    if (r.failed) {
      if (r.code === 'ENOENT') throw new ImportError(`Cannot verify the signature of ${what}: gpg is not installed; use --verify=checksum or --verify=no.`);
      throw new ImportError(`Signature verification of ${what} failed (keyring ${keyring}): ${r.stderr.split('\n').filter((l) => /BAD|no public key|not|error/i.test(l)).join(' ').trim() || `gpg exited with ${r.exitCode}`}`);
    }
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}
