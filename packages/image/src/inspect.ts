/**
 * What `nspawnctl image-status`/`show-image` show of a raw image: its table and partitions (what each is used for,
 * or why not), and, when asked, what systemd's dissected_image_acquire_metadata() reads from inside: os-release,
 * hostname, machine ID and machine-info, from the image mounted read-only in a private mount namespace.
 */
import { accessSync, closeSync, constants as fsc, fstatSync, openSync, readSync, realpathSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { isImageLocked } from '@nspawn/btrfs';
import { type DissectedImage, type DissectOptions, dissectImage } from './dissect.js';
import { ImageError, imageError } from './errors.js';
import { openImage } from './image.js';
import { blockDeviceSize } from './loop.js';
import { fdReader } from './reader.js';
import { O_CLOEXEC, O_DIRECTORY, O_PATH, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, realSys } from './sys.js';

export interface ImageMetadata {
  /** os-release fields (/etc/os-release, else /usr/lib/os-release) */
  readonly osRelease?: Record<string, string>;
  readonly hostname?: string;
  readonly machineId?: string;
  readonly machineInfo?: Record<string, string>;
}

export interface ImageInspection {
  readonly path: string;
  readonly kind: 'file' | 'block';
  readonly size: number;
  /** the image file cannot be written (mode, read-only file system) */
  readonly readOnly: boolean;
  /** another process holds its lock (a running container) */
  readonly locked: boolean;
  readonly dissected: DissectedImage;
  /** with { metadata: true }: what the image says about itself (undefined when it is locked or cannot be mounted) */
  readonly metadata?: ImageMetadata;
  /** why metadata is missing */
  readonly metadataError?: string;
}

export interface InspectOptions {
  /** mount the image read-only (private namespace) and read its os-release, hostname, machine-id, machine-info */
  metadata?: boolean;
  dissect?: DissectOptions;
  env?: NodeJS.ProcessEnv;
}

/** KEY=VALUE files (os-release, machine-info) as systemd's parse_env_file() reads them. */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = line.slice(0, eq).trim();
    let v = line.slice(eq + 1).trim();
    if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1).replace(/\\(["\\`$])/g, '$1');
    else if (v.length >= 2 && v.startsWith("'") && v.endsWith("'")) v = v.slice(1, -1);
    out[key] = v;
  }
  return out;
}

const MAX_FILE = 64 * 1024;

/** A regular file REL inside the tree ROOT, resolved inside it (its symlinks cannot leave it); undefined if absent. */
export function readFileInRoot(root: string, rel: string): string | undefined {
  const rootFd = realSys.openat2(-100, root, O_PATH | O_DIRECTORY | O_CLOEXEC, 0, 0);
  let fd: number | undefined;
  try {
    fd = realSys.openat2(rootFd, rel, fsc.O_RDONLY | fsc.O_NONBLOCK | O_CLOEXEC, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
    if (!fstatSync(fd).isFile()) return undefined;
    const buf = Buffer.alloc(MAX_FILE);
    const n = readSync(fd, buf, 0, MAX_FILE, 0);
    return buf.subarray(0, n).toString('utf8');
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
    closeSync(rootFd);
  }
}

/** The metadata of a mounted tree at ROOT. */
export function readMetadata(root: string): ImageMetadata {
  const osr = readFileInRoot(root, 'etc/os-release') ?? readFileInRoot(root, 'usr/lib/os-release');
  const hostname = readFileInRoot(root, 'etc/hostname')
    ?.split('\n')
    .map((l) => l.trim())
    .find((l) => l && !l.startsWith('#'));
  const mid = readFileInRoot(root, 'etc/machine-id')?.trim();
  const mi = readFileInRoot(root, 'etc/machine-info');
  return {
    ...(osr !== undefined ? { osRelease: parseEnvFile(osr) } : {}),
    ...(hostname ? { hostname } : {}),
    ...(mid && /^[0-9a-f]{32}$/.test(mid) ? { machineId: mid } : {}),
    ...(mi !== undefined ? { machineInfo: parseEnvFile(mi) } : {}),
  };
}

/** Inspects the image at PATH without changing it (no lock taken unless metadata is asked for: then a shared one). */
export async function inspectImage(path: string, opts: InspectOptions = {}): Promise<ImageInspection> {
  const env = opts.env ?? process.env;
  let image: string;
  try {
    image = realpathSync(resolve(path));
  } catch (e) {
    throw imageError(path, 'cannot open the disk image', e);
  }
  const st = statSync(image);
  if (!st.isFile() && !st.isBlockDevice()) throw new ImageError(`${image}: not a regular file or block device.`, 'EINVAL', image);
  let readOnly = false;
  try {
    accessSync(image, fsc.W_OK); // not an open for writing: udev would re-probe a block device closed after one
  } catch {
    readOnly = true;
  }
  const fd = openSync(image, fsc.O_RDONLY | fsc.O_NOCTTY);
  let dissected: DissectedImage;
  try {
    const size = st.isBlockDevice() ? blockDeviceSize(fd) : fstatSync(fd).size;
    dissected = dissectImage(fdReader(fd, size), image, opts.dissect);
  } finally {
    closeSync(fd);
  }
  const locked = isImageLocked(image, env);
  const base = { path: image, kind: st.isBlockDevice() ? ('block' as const) : ('file' as const), size: dissected.size, readOnly, locked, dissected };
  if (!opts.metadata) return base;
  try {
    const img = await openImage(image, { readOnly: true, fsck: false, env, ...(opts.dissect ? { dissect: opts.dissect } : {}) });
    try {
      const m = await img.mount();
      try {
        return { ...base, metadata: readMetadata(m.root) };
      } finally {
        await m.unmount();
      }
    } finally {
      await img.close();
    }
  } catch (e) {
    return { ...base, metadataError: e instanceof Error ? e.message : String(e) };
  }
}
