/**
 * nspawn-sys.node (native/sys-addon.c): the system calls Node lacks that a start needs, without loading koffi (3 ms
 * for its first call) or process.execve()'s worker machinery (2 ms): execve() and a sealed memfd for the hand-over
 * (the plan goes to the helper in it), and the OFD lock and FD_CLOEXEC clearing of -U's range lock (and the zone lock
 * of networking, without a helper process). Optional: where it does not load (no compiler at install, another C
 * library) nothing is handed over (the helper runs as nspawn's child) and @nspawn/uidrange uses its own koffi calls.
 */
import { existsSync } from 'node:fs';
import { nativeCandidates } from './native-files.js';

export interface SysAddon {
  /**
   * execve(2), with the signals BLOCKED blocked from before it on (the program gets them once it reads them, not in
   * the moment before it could); throws (code: the errno name) when it fails: Node 24's process.execve() aborts then
   */
  execve(file: string, args: string[], env: NodeJS.ProcessEnv, blocked?: readonly number[]): never;
  /**
   * an exclusive OFD lock (flock() where the kernel has none): true, or false when another holds it (the name and
   * keepOnExec() are @nspawn/uidrange's LockSys: the addon is one)
   */
  ofdLockExclusive(fd: number): boolean;
  /** the same lock, waiting for it */
  ofdLockWait(fd: number): void;
  /** clears FD_CLOEXEC */
  keepOnExec(fd: number): void;
  /** a memfd named NAME holding DATA, sealed, read from its start and not close-on-exec: its descriptor */
  memfd(name: string, data: Uint8Array): number;
  /**
   * The calls of an image start (@nspawn/image's ImageSys and LockSys, through @nspawn/assembly): absent from an
   * addon built before them. A failure throws an Error whose `code` is the errno name.
   */
  image?: ImageCalls;
}

/** What `nspawn -i` asks the kernel for, without koffi (native/sys-addon.c). */
export interface ImageCalls {
  /** ioctl(fd, req, arg): a Buffer by pointer (read and written in place), a number by value; the result */
  ioctl(fd: number, req: number, arg: Buffer | number): number;
  /** flock(fd, op) */
  flock(fd: number, op: number): void;
  /** an OFD lock (shared or exclusive), without waiting: true, or false when another holds it */
  ofdLock(fd: number, shared: boolean): boolean;
  /**
   * a detached mount (fsopen, fsconfig of OPTIONS, create, fsmount with the MOUNT_ATTR_* ATTRS), close-on-exec: its
   * descriptor; OPTIONS [key, value] pairs, a null value a flag. The error's message names the step that failed.
   */
  fsmount(fstype: string, options: ReadonlyArray<readonly [string, string | null]>, attrs: number): number;
}

/** Where the addon may be: nativeCandidates('nspawn-sys', '.node') (beside a bundle, else this package's native/). */
export const sysAddonCandidates = (dir?: string): string[] => nativeCandidates('nspawn-sys', '.node', dir);

interface Raw {
  execve?: (file: string, argv: string[], envp: string[], blocked?: readonly number[]) => never;
  ofdLock?: (fd: number, wait?: number, shared?: number) => boolean;
  keepOnExec?: (fd: number) => void;
  memfd?: (name: string, data: Uint8Array) => number;
  ioctl?: (fd: number, req: number, arg: Buffer | number) => number;
  flock?: (fd: number, op: number) => void;
  fsmount?: (fstype: string, options: Array<string | null>, attrs: number) => number;
}

/** The first of CANDIDATES that loads and has all its calls; undefined when none does. */
export function loadSysAddon(candidates: readonly string[] = sysAddonCandidates()): SysAddon | undefined {
  for (const file of candidates) {
    if (!existsSync(file)) continue;
    try {
      const m: { exports: Raw } = { exports: {} };
      process.dlopen(m, file);
      const { execve, ofdLock, keepOnExec, memfd, ioctl, flock, fsmount } = m.exports;
      if (typeof execve !== 'function' || typeof ofdLock !== 'function' || typeof keepOnExec !== 'function' || typeof memfd !== 'function') continue;
      return {
        execve: (f, args, env, blocked = []) => execve(f, args, Object.entries(env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`])), blocked),
        ofdLockExclusive: (fd) => ofdLock(fd),
        ofdLockWait: (fd) => void ofdLock(fd, 1),
        keepOnExec,
        memfd,
        ...(ioctl && flock && fsmount
          ? {
              image: {
                ioctl,
                flock,
                ofdLock: (fd: number, shared: boolean) => ofdLock(fd, 0, shared ? 1 : 0),
                fsmount: (fstype: string, options: ReadonlyArray<readonly [string, string | null]>, attrs: number) => fsmount(fstype, options.flat(), attrs),
              },
            }
          : {}),
      };
    } catch {
      // the next one
    }
  }
  return undefined;
}

let loaded: SysAddon | null | undefined;
/** loadSysAddon() of this package's places, once per process (looked for on first use: most runs need it late) */
export function sysAddon(): SysAddon | undefined {
  if (loaded === undefined) loaded = loadSysAddon() ?? null;
  return loaded ?? undefined;
}
