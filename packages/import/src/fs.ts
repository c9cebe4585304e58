/**
 * import-fs DIR [NAME] (systemd-import-fs 252): a copy of a directory tree as a new image, made in a hidden
 * `.#import-NAME-RANDOM` beside the images (a btrfs subvolume where the store is btrfs, a directory elsewhere),
 * locked as an image meanwhile, then renamed into place with renameat2(RENAME_NOREPLACE). The copy is cp(1)'s
 * `-a --one-file-system --reflink=auto` (owners, modes, times, hard links, xattrs and ACLs kept, symlinks copied as
 * symlinks and never followed, reflinks where the file system has them, the source's mount only, as copy_tree()'s
 * COPY_REFLINK | COPY_SAME_MOUNT | COPY_HARDLINKS); it runs as a child process, so it can be cancelled, and a
 * cancelled or failed copy is removed through descriptors (no symlink followed, no mount crossed).
 */
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, realpathSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createSubvolume, imageNameIsValid, lockImage, setSubvolumeReadOnly, storeIsBtrfs } from '@nspawn/btrfs';
import { O_DIRECTORY, O_NOFOLLOW, O_PATH, O_RDONLY, openAt } from '@nspawn/syscall';
import { ImportError } from './errors.js';
import { cancelled } from './fetch.js';
import { publishImage, removePartial } from './partial.js';

export interface FsImportOptions {
  /** the image name (default: the directory's last component) */
  name?: string;
  /** the image store (default /var/lib/machines) */
  root?: string;
  /** a read-only subvolume (btrfs stores only; a plain directory stays writable, as in systemd) */
  readOnly?: boolean;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

function taken(store: number, entry: string): boolean {
  try {
    closeSync(openAt(store, entry, O_PATH | O_NOFOLLOW));
    return true;
  } catch {
    return false;
  }
}

/** import-fs DIR [NAME] */
export async function importFs(dir: string, opts: FsImportOptions = {}): Promise<{ name: string; path: string; subvolume: boolean }> {
  const root = opts.root ?? '/var/lib/machines';
  let src: string;
  try {
    src = realpathSync(dir);
    if (!statSync(src).isDirectory()) throw Object.assign(new Error('ENOTDIR'), { code: 'ENOTDIR' });
  } catch (e) {
    throw new ImportError(`Cannot import ${dir}: ${(e as { code?: string }).code === 'ENOTDIR' ? 'not a directory' : ((e as { code?: string }).code ?? (e as Error).message)}`);
  }
  const name = opts.name ?? (src === '/' ? '' : src.slice(src.lastIndexOf('/') + 1));
  if (!imageNameIsValid(name)) throw new ImportError(`Cannot use '${name}' (from ${dir}) as an image name; give NAME.`);
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const realRoot = realpathSync(root);
  if (realRoot === src || realRoot.startsWith(`${src === '/' ? '' : src}/`)) throw new ImportError(`Refusing to import ${dir}: it contains the image store ${root}.`);
  const store = openAt(-100, root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  const tmp = `.#import-${name}-${randomBytes(8).toString('hex')}`;
  const tmpPath = resolve(root, tmp);
  let made = false;
  const lock = lockImage(tmpPath);
  try {
    for (const e of [name, `${name}.raw`]) if (taken(store, e)) throw new ImportError(`Image '${name}' already exists in ${root}: not replacing it.`);
    const subvolume = storeIsBtrfs({ root });
    if (subvolume) createSubvolume(tmpPath);
    else mkdirSync(tmpPath, { mode: 0o700 });
    made = true;
    opts.log?.(`Importing ${src}, saving as '${name}'.`);
    const { execa } = await import('execa');
    const r = await execa('cp', ['-a', '--one-file-system', '--reflink=auto', '-T', '--', src, tmpPath], {
      reject: false,
      stdin: 'ignore',
      ...(opts.signal ? { cancelSignal: opts.signal } : {}),
    });
    if (opts.signal?.aborted) throw cancelled(dir);
    if (r.failed) throw new ImportError(`Failed to copy ${dir}: ${r.code === 'ENOENT' ? 'cp is not installed' : r.stderr.trim().split('\n')[0] || r.shortMessage}`);
    if (subvolume && opts.readOnly) setSubvolumeReadOnly(tmpPath, true);
    publishImage(store, tmp, name, root);
    made = false;
    return { name, path: join(root, name), subvolume };
  } finally {
    try {
      if (made) {
        if (opts.readOnly) {
          try {
            setSubvolumeReadOnly(tmpPath, false);
          } catch {
            // not a subvolume
          }
        }
        removePartial(store, tmp, tmpPath);
      }
    } finally {
      closeSync(store);
      lock.release();
    }
  }
}
