/**
 * The image store nspawnd serves: @nspawn/btrfs's store (subvolumes where the pool is btrfs, plain directories
 * elsewhere), adapted to ImageBackend.
 */
import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ImageBackend, ImageInfo } from './images.js';

export function defaultImageBackend(dir: string): ImageBackend {
  const info = (name: string): ImageInfo | undefined => {
    try {
      const st = lstatSync(join(dir, name));
      if (!st.isDirectory()) return undefined;
      return { name, path: join(dir, name), type: 'directory', class: 'machine', readOnly: false, modificationTimestamp: Math.round(st.mtimeMs * 1000) };
    } catch {
      return undefined;
    }
  };
  const notYet = (): never => {
    throw new Error('not supported yet: needs the @nspawn/btrfs image store');
  };
  return {
    list: async () => {
      try {
        return readdirSync(dir)
          .map(info)
          .filter((x): x is ImageInfo => x !== undefined);
      } catch {
        return [];
      }
    },
    get: async (n) => info(n),
    clone: async () => notYet(),
    rename: async () => notYet(),
    setReadOnly: async () => notYet(),
    remove: async () => notYet(),
    setLimit: async () => notYet(),
    clean: async () => notYet(),
  };
}
