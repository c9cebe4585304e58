/**
 * The image store: `/var/lib/machines` (or any ROOT), shared by nspawn, nspawnd and nspawnctl, the way machinectl
 * and machined see it (src/shared/discover-image.c in systemd 252). Images are directories, btrfs subvolumes and
 * raw disk images (`NAME.raw`); names starting with "." are hidden, `.#...` ones are temporaries.
 * Every change takes the image's lock (the same lock systemd-nspawn holds while it runs the image), so a running
 * image is never removed, renamed or changed.
 */
import { copyFileSync, constants as fsConstants, existsSync, lstatSync, readdirSync, realpathSync, renameSync, statSync, unlinkSync, chmodSync, type Stats } from 'node:fs';
import { join, resolve } from 'node:path';
import { imageNameIsValid } from '@nspawn/settings';
import { copyTree } from './copy.js';
import { cleanEphemeralOrphans, EPHEMERAL_PREFIX, removeEphemeral } from './ephemeral.js';
import { ImageBusyError, isImageLocked, lockImage, lockingDisabled } from './lock.js';
import { removeTree } from './remove.js';
import {
  isBtrfs,
  isSubvolume,
  isSubvolumeReadOnly,
  quotaEnabled,
  enableQuota,
  setSubvolumeLimit,
  setSubvolumeReadOnly,
  snapshotSubvolume,
  subvolumeInfo,
  subvolumeQuota,
} from './subvolume.js';
import { isImmutable, setImmutable } from './attrs.js';
import { SysError } from './sys.js';

export const DEFAULT_IMAGE_ROOT = '/var/lib/machines';

export type ImageType = 'directory' | 'subvolume' | 'raw';

export interface ImageInfo {
  /** the image name (for a raw image, without ".raw") */
  name: string;
  /** absolute path of the directory, subvolume or .raw file */
  path: string;
  type: ImageType;
  readOnly: boolean;
  /** name starts with "." */
  hidden: boolean;
  /** its lock is held: a container (nspawn, systemd-nspawn) runs it */
  locked: boolean;
  created?: Date;
  modified?: Date;
  /** bytes used: the qgroup's referenced bytes for a subvolume (quota on), the allocated size of a raw image */
  usage?: number;
  /** bytes only this image uses (subvolume with quota on) */
  usageExclusive?: number;
  /** the referenced-bytes limit (subvolume with quota on) */
  limit?: number;
}

export interface StoreOptions {
  /** the store directory (default /var/lib/machines) */
  root?: string;
  /** the environment for $SYSTEMD_NSPAWN_LOCK (default process.env) */
  env?: NodeJS.ProcessEnv;
}

export type ImageErrorCode = 'ENOENT' | 'EEXIST' | 'EBUSY' | 'EINVAL' | 'EPERM' | 'EROFS' | 'ENOTCONN' | 'EOPNOTSUPP';

/** A refused or failed store operation; `code` says why. */
export class ImageError extends SysError {
  override name = 'ImageError';
  constructor(message: string, code: ImageErrorCode) {
    super(message, { ENOENT: 2, EEXIST: 17, EBUSY: 16, EINVAL: 22, EPERM: 1, EROFS: 30, ENOTCONN: 107, EOPNOTSUPP: 95 }[code], code);
  }
}

/**
 * image_name_is_valid() of systemd 252: a file name (never ".", ".." or anything with "/", at most 255 bytes), no
 * control characters, valid UTF-8, not a ".#" temporary. The rule is @nspawn/settings' (one rule for every package).
 */
export { imageNameIsValid };

const rootOf = (o: StoreOptions) => o.root ?? DEFAULT_IMAGE_ROOT;

/** Where an image of the store is: its entry in the store and the real path that entry leads to. */
export interface ImageLocation {
  /** the image name (for a raw image, without ".raw") */
  name: string;
  /** the store's entry: ROOT/NAME or ROOT/NAME.raw */
  path: string;
  /** where it leads, symlinks resolved: always strictly inside the store's own real path */
  realPath: string;
  /** the entry is a symlink (removing the image removes the link only) */
  symlink: boolean;
  type: ImageType;
  /** stat() of the real path */
  stat: Stats;
}

function storeRealPath(root: string): string {
  try {
    return realpathSync(root);
  } catch {
    return resolve(root);
  }
}

const strictlyBelow = (path: string, dir: string) => (dir === '/' ? path !== '/' : path.startsWith(`${dir}/`));

/**
 * The store's entry ENTRY as an image, or undefined when it is none (missing, dangling, not a directory or .raw
 * file). A symlink is followed as systemd's discovery follows it, but only as far as the store: one that leads to
 * the store itself, above it or anywhere outside it is refused (ImageError EPERM, naming where it leads).
 */
function locateEntry(root: string, entry: string): ImageLocation | undefined {
  const path = join(root, entry);
  let lst: Stats;
  try {
    lst = lstatSync(path);
  } catch {
    return undefined;
  }
  let realPath = path;
  let st = lst;
  const symlink = lst.isSymbolicLink();
  if (symlink) {
    try {
      realPath = realpathSync(path);
      st = statSync(realPath);
    } catch {
      return undefined; // dangling
    }
    const store = storeRealPath(root);
    if (!strictlyBelow(realPath, store))
      throw new ImageError(`Image "${entry.endsWith('.raw') && st.isFile() ? entry.slice(0, -4) : entry}" is a symlink to ${realPath}, outside the image store ${root}: refusing to use it`, 'EPERM');
  }
  let name: string;
  let type: ImageType;
  if (st.isDirectory()) {
    name = entry;
    type = isSubvolume(realPath) ? 'subvolume' : 'directory';
  } else if (st.isFile() && entry.endsWith('.raw') && entry.length > 4) {
    name = entry.slice(0, -4);
    type = 'raw';
  } else return undefined;
  if (!imageNameIsValid(name)) return undefined;
  return { name, path, realPath, symlink, type, stat: st };
}

/**
 * The one way from an image name to a path: NAME must be a valid image name (ImageError EINVAL otherwise: ".",
 * "..", "a/b", "" never reach the file system), the entry NAME or NAME.raw must exist (ENOENT), and where it leads
 * must stay inside the store (EPERM). No stat of quota or locks: cheap enough for a start.
 */
export function findImage(name: string, opts: StoreOptions = {}): ImageLocation {
  const root = rootOf(opts);
  if (!imageNameIsValid(name)) throw new ImageError(`Invalid image name "${name}"`, 'EINVAL');
  for (const entry of [name, `${name}.raw`]) {
    const loc = locateEntry(root, entry);
    if (loc && loc.name === name) return loc;
  }
  throw new ImageError(`No image "${name}" in ${root}`, 'ENOENT');
}

function inspect(loc: ImageLocation, env: NodeJS.ProcessEnv): ImageInfo {
  const { name, path, type, stat: st } = loc;
  const info: ImageInfo = {
    name,
    path,
    type,
    readOnly: false,
    hidden: name.startsWith('.'),
    locked: false,
    modified: st.mtime,
  };
  if (st.birthtimeMs > 0) info.created = st.birthtime;
  try {
    info.locked = isImageLocked(path, env);
  } catch {
    // cannot tell (read-only store): not locked
  }
  if (type === 'subvolume') {
    try {
      const si = subvolumeInfo(path);
      info.readOnly = si.readOnly;
      info.created = si.created;
      const q = subvolumeQuota(path);
      if (q) {
        info.usage = q.referenced;
        info.usageExclusive = q.exclusive;
        if (q.limit !== undefined) info.limit = q.limit;
      }
    } catch {
      info.readOnly = isSubvolumeReadOnly(path);
    }
  } else if (type === 'raw') {
    info.readOnly = (st.mode & 0o222) === 0 || isImmutable(path);
    info.usage = st.blocks * 512;
  } else info.readOnly = isImmutable(path);
  return info;
}

/** The images in the store, sorted by name; hidden ones (".name") only with `hidden: true`. */
export function listImages(opts: StoreOptions & { hidden?: boolean } = {}): ImageInfo[] {
  const root = rootOf(opts);
  let entries: string[];
  try {
    entries = readdirSync(root);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: ImageInfo[] = [];
  for (const e of entries) {
    if (e.endsWith('.lck') || e.endsWith('.nspawn')) continue;
    if (!opts.hidden && e.startsWith('.')) continue;
    let loc: ImageLocation | undefined;
    try {
      loc = locateEntry(root, e);
    } catch {
      continue; // a symlink out of the store is no image
    }
    if (loc) out.push(inspect(loc, opts.env ?? process.env));
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * One image's status; ImageError ENOENT when there is none of that name, EINVAL for an invalid name, EPERM for a
 * symlink that leads out of the store (see findImage()).
 */
export function imageStatus(name: string, opts: StoreOptions = {}): ImageInfo {
  return inspect(findImage(name, opts), opts.env ?? process.env);
}

function checkNewName(name: string, root: string): void {
  if (!imageNameIsValid(name)) throw new ImageError(`Invalid image name "${name}"`, 'EINVAL');
  for (const e of [name, `${name}.raw`])
    if (existsSync(join(root, e)) || isSymlink(join(root, e))) throw new ImageError(`Image "${name}" already exists in ${root}`, 'EEXIST');
}

function isSymlink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

function lockOrBusy(path: string, env: NodeJS.ProcessEnv, name: string) {
  try {
    return lockImage(path, { env });
  } catch (e) {
    if (e instanceof ImageBusyError) throw new ImageError(`Image "${name}" is in use (its lock is held by a running container)`, 'EBUSY');
    throw e;
  }
}

/**
 * Clones image SOURCE to a new image DEST: a snapshot of a subvolume (nested ones included), else a copy into a
 * new subvolume (on btrfs) or directory; a raw image is copied (reflinked where possible).
 */
export function cloneImage(source: string, dest: string, opts: StoreOptions & { readOnly?: boolean } = {}): ImageInfo {
  const root = rootOf(opts);
  const env = opts.env ?? process.env;
  const src = findImage(source, opts);
  checkNewName(dest, root);
  const destPath = join(root, src.type === 'raw' ? `${dest}.raw` : dest);
  // never reachable through a valid name and the resolver, and never to be: a copy into its own source
  const destReal = join(storeRealPath(root), src.type === 'raw' ? `${dest}.raw` : dest);
  if (destReal === src.realPath || strictlyBelow(destReal, src.realPath) || strictlyBelow(src.realPath, destReal))
    throw new ImageError(`Cannot clone image "${source}" into itself (${destPath} is inside ${src.realPath})`, 'EINVAL');
  const lock = lockOrBusy(destPath, env, dest);
  try {
    if (src.type === 'subvolume') snapshotSubvolume(src.realPath, destPath, { readOnly: opts.readOnly === true });
    else if (src.type === 'directory') {
      const st = copyTree(src.realPath, destPath, { subvolume: true });
      if (opts.readOnly) {
        if (st.subvolume) setSubvolumeReadOnly(destPath, true);
        else setImmutable(destPath, true);
      }
    } else {
      copyRaw(src.realPath, destPath);
      if (opts.readOnly) chmodSync(destPath, statSync(destPath).mode & ~0o222);
    }
  } catch (e) {
    try {
      removeTree(destPath, { within: root });
    } catch {
      // keep the first error
    }
    throw e;
  } finally {
    lock.release();
  }
  return imageStatus(dest, opts);
}

function copyRaw(from: string, to: string): void {
  copyFileSync(from, to, fsConstants.COPYFILE_EXCL | fsConstants.COPYFILE_FICLONE);
}

/** The settings files that go with image NAME and move or go with it (image_settings_path()). */
function settingsPaths(root: string, name: string): string[] {
  return [join('/etc/systemd/nspawn', `${name}.nspawn`), join('/run/systemd/nspawn', `${name}.nspawn`), join(root, `${name}.nspawn`)];
}

/** Renames image NAME to NEWNAME, taking its NAME.nspawn along; refused while it runs. */
export function renameImage(name: string, newName: string, opts: StoreOptions = {}): ImageInfo {
  const root = rootOf(opts);
  const env = opts.env ?? process.env;
  const img = imageStatus(name, opts);
  checkNewName(newName, root);
  const lock = lockOrBusy(img.path, env, name);
  try {
    const to = join(root, img.type === 'raw' ? `${newName}.raw` : newName);
    renameSync(img.path, to);
    for (const s of settingsPaths(root, name)) {
      if (!existsSync(s)) continue;
      const t = join(s.slice(0, s.lastIndexOf('/')), `${newName}.nspawn`);
      if (!existsSync(t)) renameSync(s, t);
    }
  } finally {
    lock.release();
  }
  return imageStatus(newName, opts);
}

/** Removes image NAME (and its NAME.nspawn beside it); refused while it runs. A read-only image is removed too. */
export function removeImage(name: string, opts: StoreOptions = {}): void {
  const root = rootOf(opts);
  const env = opts.env ?? process.env;
  const img = imageStatus(name, opts);
  const lock = lockOrBusy(img.path, env, name);
  try {
    removeImagePath(img, root);
    const s = join(root, `${name}.nspawn`);
    if (existsSync(s)) unlinkSync(s);
  } finally {
    lock.release();
  }
}

function removeImagePath(img: ImageInfo, root: string): void {
  if (isSymlink(img.path)) {
    unlinkSync(img.path); // the link only, never what it points to
    return;
  }
  if (img.name.startsWith(EPHEMERAL_PREFIX)) {
    removeEphemeral(img.path);
    return;
  }
  if (img.type === 'directory' || img.type === 'raw') {
    if (isImmutable(img.path)) setImmutable(img.path, false);
  }
  removeTree(img.path, { within: root });
}

/** Makes image NAME read-only or writable: the subvolume flag, the immutable attribute for a directory, the write bits of a raw file. */
export function setImageReadOnly(name: string, readOnly: boolean, opts: StoreOptions = {}): ImageInfo {
  const root = rootOf(opts);
  const img = imageStatus(name, opts);
  const lock = lockOrBusy(img.path, opts.env ?? process.env, name);
  try {
    if (img.type === 'subvolume') setSubvolumeReadOnly(img.path, readOnly);
    else if (img.type === 'directory') setImmutable(img.path, readOnly);
    else {
      const m = statSync(img.path).mode;
      chmodSync(img.path, readOnly ? m & ~0o222 : m | 0o200);
    }
  } finally {
    lock.release();
  }
  return imageStatus(name, { ...opts, root });
}

/**
 * Sets (bytes) or removes (undefined) the size limit of subvolume image NAME (its qgroup's referenced bytes).
 * Quota must already be on for the file system; `enableQuota: true` switches it on for the WHOLE file system
 * (never done otherwise: it slows every write there).
 */
export function setImageLimit(name: string, bytes: number | undefined, opts: StoreOptions & { enableQuota?: boolean } = {}): ImageInfo {
  const img = imageStatus(name, opts);
  if (img.type !== 'subvolume') throw new ImageError(`Image "${name}" is a ${img.type}: only subvolume images have a size limit`, 'EOPNOTSUPP');
  if (!quotaEnabled(img.path)) {
    if (!opts.enableQuota)
      throw new ImageError(
        `Quota is not enabled on the btrfs file system of ${img.path}; enabling it affects the whole file system, so pass enableQuota to switch it on`,
        'ENOTCONN',
      );
    enableQuota(img.path);
  }
  setSubvolumeLimit(img.path, bytes);
  return imageStatus(name, opts);
}

/**
 * `machinectl clean`: removes the hidden images (names starting with "."; `all`: every image) that are not in use,
 * and the orphaned ephemeral snapshots (a free lock). Returns the names removed.
 */
export function cleanImages(opts: StoreOptions & { all?: boolean } = {}): string[] {
  const root = rootOf(opts);
  const env = opts.env ?? process.env;
  // without locks, an image in use cannot be told from an unused one
  if (lockingDisabled(env)) throw new ImageError('Refusing to clean the image store with $SYSTEMD_NSPAWN_LOCK=0', 'EINVAL');
  const removed = cleanEphemeralOrphans(root, env).map((p) => p.slice(root.length + 1));
  for (const img of listImages({ ...opts, hidden: true })) {
    if (!opts.all && !img.hidden) continue;
    let lock;
    try {
      lock = lockImage(img.path, { env });
    } catch (e) {
      if (e instanceof ImageBusyError) continue;
      throw e;
    }
    try {
      removeImagePath(img, root);
      removed.push(img.name);
    } finally {
      lock.release();
    }
  }
  return removed;
}

/** Is PATH on btrfs (a new image there becomes a subvolume)? */
export function storeIsBtrfs(opts: StoreOptions = {}): boolean {
  return isBtrfs(rootOf(opts));
}
