/**
 * Image locks exactly as systemd takes them (image_path_lock() and make_lock_file() in systemd 252), so that a
 * running systemd-nspawn and nspawn exclude each other:
 * - a local lock file beside the image, `DIR/.#NAME.lck`;
 * - a global one, `/run/systemd/nspawn/locks/inode-DEV:INO` (the image's device and inode), only when the image
 *   exists already.
 * Both are open-file-description (OFD) locks over the whole file (F_OFD_SETLK), falling back to flock() where the
 * kernel has no OFD locks, as systemd does. The exclusive holder unlinks the files when it releases them. A lock
 * lives as long as its file descriptor: keep the process that took it alive for as long as the image is in use.
 * $SYSTEMD_NSPAWN_LOCK=0 turns locking off, as for systemd.
 */
import { closeSync, constants as fsc, mkdirSync, openSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { lockHeldElsewhere, type LockSys, makeLockFile as takeLockFile, type LockFile as SharedLockFile } from '@nspawn/syscall';
import { errCode, SysError } from './sys.js';

export const GLOBAL_LOCK_DIR = '/run/systemd/nspawn/locks';

/** The image is locked by another process (systemd-nspawn, nspawn, machined, nspawnd). */
export class ImageBusyError extends SysError {
  override name = 'ImageBusyError';
  constructor(
    message: string,
    readonly path: string,
  ) {
    super(message, 16, 'EBUSY');
  }
}

export interface LockFile {
  readonly path: string;
  readonly exclusive: boolean;
  release(): void;
  /**
   * Keeps the lock across an execve() of this process (clears FD_CLOEXEC) and returns its descriptor: the program
   * exec'd holds it from then on, and must release it (remove the file) as release() would.
   */
  keepAcrossExec(): number;
}

/**
 * make_lock_file() (@nspawn/syscall's): opens (creating) PATH and takes a non-blocking OFD lock on it, flock() where
 * the kernel has no OFD locks; retries when the previous holder unlinked the file between our open and our lock.
 * Throws ImageBusyError when it is held.
 */
export function makeLockFile(path: string, exclusive: boolean, sys?: LockSys): LockFile {
  let l: SharedLockFile | undefined;
  try {
    l = takeLockFile(path, { shared: !exclusive, ...(sys ? { sys } : {}) });
  } catch (e) {
    if (errCode(e) === 'EAGAIN' || errCode(e) === 'EACCES') throw new ImageBusyError(`${path} is locked by another process`, path);
    throw e;
  }
  if (!l) throw new ImageBusyError(`${path} is locked by another process`, path);
  return l;
}

/** `DIR/.#NAME.lck` for the image at DIR/NAME (make_lock_file_for()). */
export function localLockPath(imagePath: string): string {
  return join(dirname(imagePath), `.#${basename(imagePath)}.lck`);
}

/** `/run/systemd/nspawn/locks/inode-DEV:INO` for an existing directory or file, undefined when it does not exist. */
export function globalLockPath(imagePath: string): string | undefined {
  let st;
  try {
    st = statSync(imagePath, { bigint: true });
  } catch {
    return undefined;
  }
  if (st.isBlockDevice()) {
    const rdev = st.rdev;
    const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
    const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
    return `${GLOBAL_LOCK_DIR}/block-${major}:${minor}`;
  }
  if (st.isDirectory() || st.isFile()) return `${GLOBAL_LOCK_DIR}/inode-${st.dev}:${st.ino}`;
  return undefined;
}

export interface ImageLock {
  /** the image path it locks */
  readonly image: string;
  readonly local?: LockFile;
  readonly global?: LockFile;
  /** releases both locks (idempotent); the exclusive holder removes the lock files */
  release(): void;
}

export interface LockImageOptions {
  /** a shared lock (read-only use), else exclusive */
  shared?: boolean;
  /** $SYSTEMD_NSPAWN_LOCK: "0"/"no"... turns locking off (default: process.env) */
  env?: NodeJS.ProcessEnv;
  /** the lock calls (e.g. a native addon's: @nspawn/syscall's LockSys), in place of koffi's */
  sys?: LockSys;
}

/** $SYSTEMD_NSPAWN_LOCK set to a false boolean: no image locks at all (as for systemd). */
export function lockingDisabled(env: NodeJS.ProcessEnv): boolean {
  const v = env.SYSTEMD_NSPAWN_LOCK;
  return v !== undefined && ['0', 'no', 'n', 'false', 'f', 'off'].includes(v.toLowerCase());
}

/**
 * image_path_lock(): takes the local and the global lock of the image at PATH (absolute; it need not exist yet,
 * then only the local lock is taken, as systemd does). Throws ImageBusyError when another process holds either.
 * An exclusive lock on `/` is refused (EBUSY), a shared one is a no-op.
 */
export function lockImage(path: string, opts: LockImageOptions = {}): ImageLock {
  if (!isAbsolute(path)) throw new SysError(`Image path ${path} is not absolute`, 22, 'EINVAL');
  const exclusive = opts.shared !== true;
  const none: ImageLock = { image: path, release() {} };
  if (lockingDisabled(opts.env ?? process.env)) return none;
  if (path === '/') {
    if (exclusive) throw new ImageBusyError('Refusing to lock the host root directory exclusively', path);
    return none;
  }
  const globalPath = globalLockPath(path);
  let local: LockFile | undefined;
  if (!path.startsWith('/dev/')) {
    try {
      local = makeLockFile(localLockPath(path), exclusive, opts.sys);
    } catch (e) {
      if (!(errCode(e) === 'EROFS' && !exclusive)) throw busyMessage(e, path);
    }
  }
  let global: LockFile | undefined;
  if (globalPath !== undefined) {
    try {
      mkdirSync(GLOBAL_LOCK_DIR, { recursive: true, mode: 0o700 });
      global = makeLockFile(globalPath, exclusive, opts.sys);
    } catch (e) {
      local?.release();
      throw busyMessage(e, path);
    }
  }
  let released = false;
  return {
    image: path,
    ...(local ? { local } : {}),
    ...(global ? { global } : {}),
    release() {
      if (released) return;
      released = true;
      global?.release();
      local?.release();
    },
  };
}

function busyMessage(e: unknown, image: string): Error {
  if (e instanceof ImageBusyError) return new ImageBusyError(`Directory tree ${image} is currently busy.`, image);
  return e as Error;
}

/**
 * Is the image at PATH locked by someone (a running container)? Asks the kernel (F_OFD_GETLK) about the existing lock
 * files without creating, taking or removing anything.
 */
export function isImageLocked(path: string, env: NodeJS.ProcessEnv = process.env): boolean {
  if (lockingDisabled(env)) return false;
  const files = [localLockPath(path), globalLockPath(path)].filter((p): p is string => p !== undefined);
  for (const f of files) {
    let fd: number;
    try {
      fd = openSync(f, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NOCTTY);
    } catch {
      continue; // no lock file: nobody holds it
    }
    try {
      if (lockHeldElsewhere(fd)) return true;
    } finally {
      closeSync(fd);
    }
  }
  return false;
}
