/**
 * The image store nspawnd serves: @nspawn/btrfs's store of /var/lib/machines (subvolumes where it is btrfs, plain
 * directories elsewhere, raw files), adapted to ImageBackend. Image locks (shared with systemd-nspawn) keep a
 * running machine's image from being renamed or removed.
 */
import {
  cleanImages,
  cloneImage,
  ImageError,
  type ImageInfo as StoreImage,
  imageStatus,
  isSubvolume,
  listImages,
  quotaEnabled,
  removeImage,
  renameImage,
  setImageLimit,
  setImageReadOnly,
  setSubvolumeLimit,
} from '@nspawn/btrfs';
import { statSync } from 'node:fs';
import { nodeTree, VarlinkError } from '@nspawn/runtime';
import type { ImageBackend, ImageInfo } from './images.js';

const usec = (d: Date | undefined) => (d ? Math.round(d.getTime() * 1000) : undefined);

function describe(i: StoreImage): ImageInfo {
  const out: ImageInfo = { name: i.name, path: i.path, type: i.type, class: 'machine', readOnly: i.readOnly };
  const c = usec(i.created);
  if (c !== undefined) out.creationTimestamp = c;
  const m = usec(i.modified);
  if (m !== undefined) out.modificationTimestamp = m;
  if (i.usage !== undefined) out.usage = i.usage;
  if (i.usageExclusive !== undefined) out.usageExclusive = i.usageExclusive;
  if (i.limit !== undefined) out.limit = i.limit;
  if (i.type === 'raw') {
    // machined's image_make() for a raw file: the limit is its size, all of its usage is exclusive
    try {
      out.limit = out.limitExclusive = statSync(i.path).size;
      if (i.usage !== undefined) out.usageExclusive = i.usage;
    } catch {
      // gone meanwhile
    }
  }
  if (i.type !== 'raw') {
    const t = nodeTree(i.path);
    const host = t.readFile('/etc/hostname')?.trim();
    if (host) out.hostname = host;
    const id = t.readFile('/etc/machine-id')?.trim();
    if (id && /^[0-9a-f]{32}$/.test(id)) out.machineId = id;
    const os = t.readFile('/etc/os-release') ?? t.readFile('/usr/lib/os-release');
    if (os !== undefined)
      out.OSRelease = os
        .split('\n')
        .map((l) => /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(l))
        .filter((x): x is RegExpExecArray => x !== null)
        .map((x) => `${x[1]}=${x[2]!.trim().replace(/^(["'])(.*)\1$/, '$2')}`);
  }
  return out;
}

/** A store error as the varlink error a client understands. */
function mapError(e: unknown): never {
  if (e instanceof ImageError) {
    const msg = e.message;
    switch (e.code) {
      case 'ENOENT':
        throw new VarlinkError('io.systemd.MachineImage.NoSuchImage', { message: msg });
      case 'EOPNOTSUPP':
      case 'ENOTCONN':
        throw new VarlinkError('io.systemd.MachineImage.NotSupported', { message: msg });
      case 'EEXIST':
        throw new VarlinkError('io.nspawn.MachineImage.Exists', { message: msg });
      case 'EBUSY':
        throw new VarlinkError('io.nspawn.MachineImage.Busy', { message: msg });
      default:
        throw new VarlinkError('io.nspawn.MachineImage.Failed', { message: msg });
    }
  }
  throw e;
}

export function defaultImageBackend(root: string): ImageBackend {
  const o = { root };
  const run = async <T>(f: () => T): Promise<T> => {
    try {
      return f();
    } catch (e) {
      return mapError(e);
    }
  };
  return {
    list: () => run(() => listImages({ ...o, hidden: true }).map(describe)),
    get: async (name) => {
      try {
        return describe(imageStatus(name, o));
      } catch (e) {
        if (e instanceof ImageError && (e.code === 'ENOENT' || e.code === 'EINVAL')) return undefined;
        return mapError(e);
      }
    },
    clone: (name, newName, readOnly) => run(() => void cloneImage(name, newName, { ...o, readOnly })),
    rename: (name, newName) => run(() => void renameImage(name, newName, o)),
    setReadOnly: (name, ro) => run(() => void setImageReadOnly(name, ro, o)),
    remove: (name) => run(() => removeImage(name, o)),
    setLimit: (name, bytes) =>
      run(() => {
        const limit = bytes < 0 || bytes >= Number.MAX_SAFE_INTEGER ? undefined : bytes;
        if (name !== undefined) return void setImageLimit(name, limit, o);
        // the pool: the store directory itself, when it is a subvolume with quota on
        if (!isSubvolume(root) || !quotaEnabled(root))
          throw new ImageError(`The pool ${root} is not a btrfs subvolume with quota enabled: it cannot have a size limit`, 'EOPNOTSUPP');
        setSubvolumeLimit(root, limit);
      }),
    clean: (mode) => run(() => cleanImages({ ...o, all: mode === 'all' }).map((name) => ({ name }))),
  };
}
