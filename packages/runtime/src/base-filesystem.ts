/**
 * base_filesystem_create() of systemd 252 (src/shared/base-filesystem.c), which systemd-nspawn's outer child runs on
 * the tree before it mounts anything: the top-level directories and merged-/usr symlinks an OS tree needs, made where
 * they are missing. `/root` among them (mode 0750): a tree without it still runs the shell, in /root, as under 252.
 *
 * Done on the host side, in Node, before the helper runs: one readdir of the tree's top directory, and work only for a
 * missing entry. Each entry is a single name in the tree's top directory: mkdir(2) and symlink(2) never follow a
 * symlink in their last component, and a symlink is made only when its target exists in the tree (lstat, not
 * followed). Failures systemd ignores (EEXIST, EROFS, and any for root, proc, sys, dev) are ignored.
 */
import { closeSync, constants, fchmodSync, fchownSync, lchownSync, lstatSync, mkdirSync, openSync, readdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { ContainerError } from './errors.js';

interface BaseEntry {
  name: string;
  mode: number;
  /** a symlink to the first of these that exists */
  targets?: string[];
  /** ...and holds this file */
  exists?: string;
  ignoreFailure?: boolean;
}

// 252.31 and later (Debian 12's 252.39 among them) link /lib64 only to usr/lib64: the multiarch target
// usr/lib/<tuple> of 252.0 was dropped ("base-filesystem: do not attempt to create a /lib64 -> /usr/lib/<tuple>
// symlink"), since a multiarch tree has its own /lib64 or none.
const LIB64: Record<string, BaseEntry> = {
  x64: { name: 'lib64', mode: 0, targets: ['usr/lib64'], exists: 'ld-linux-x86-64.so.2' },
  arm64: { name: 'lib64', mode: 0, targets: ['usr/lib64'], exists: 'ld-linux-aarch64.so.1' },
  riscv64: { name: 'lib64', mode: 0, targets: ['usr/lib64'], exists: 'ld-linux-riscv64-lp64d.so.1' },
  s390x: { name: 'lib64', mode: 0, targets: ['usr/lib64'], exists: 'ld-lsb-s390x.so.3' },
  ppc64: { name: 'lib64', mode: 0, targets: ['usr/lib64'], exists: 'ld64.so.2' },
};

/** systemd 252's table, in its order, for this machine's architecture. */
export function baseFilesystemTable(arch: string = process.arch): BaseEntry[] {
  const table: BaseEntry[] = [
    { name: 'bin', mode: 0, targets: ['usr/bin'] },
    { name: 'lib', mode: 0, targets: ['usr/lib'] },
    { name: 'root', mode: 0o750, ignoreFailure: true },
    { name: 'sbin', mode: 0, targets: ['usr/sbin'] },
    { name: 'usr', mode: 0o755 },
    { name: 'var', mode: 0o755 },
    { name: 'etc', mode: 0o755 },
    { name: 'proc', mode: 0o755, ignoreFailure: true },
    { name: 'sys', mode: 0o755, ignoreFailure: true },
    { name: 'dev', mode: 0o755, ignoreFailure: true },
  ];
  const lib64 = LIB64[arch];
  if (lib64) table.push(lib64);
  return table;
}

const code = (e: unknown) => (e as NodeJS.ErrnoException).code;
const present = (p: string) => lstatSync(p, { throwIfNoEntry: false }) !== undefined;

/**
 * Makes what `baseFilesystemTable()` lists and ROOT lacks, owned by OWNER (the container's root on disk: 0, or the
 * range's base when the tree is chowned into it). Returns the names made. Throws a ContainerError for a failure
 * systemd does not ignore.
 */
export function baseFilesystemCreate(root: string, owner = 0, arch: string = process.arch): string[] {
  let names: Set<string>;
  try {
    names = new Set(readdirSync(root));
  } catch (e) {
    throw new ContainerError(`Failed to open root file system: ${(e as Error).message}`);
  }
  const made: string[] = [];
  for (const entry of baseFilesystemTable(arch)) {
    if (names.has(entry.name)) continue;
    const path = join(root, entry.name);
    const what = entry.targets ? 'symlink' : 'directory';
    try {
      if (entry.targets) {
        const target = entry.targets.find((t) => present(join(root, t)) && (entry.exists === undefined || present(join(root, t, entry.exists))));
        if (target === undefined) continue;
        symlinkSync(target, path);
      } else mkdirSync(path, entry.mode);
    } catch (e) {
      if (code(e) === 'EEXIST' || code(e) === 'EROFS' || entry.ignoreFailure) continue;
      throw new ContainerError(`Failed to create ${what} at ${path}: ${(e as Error).message}`);
    }
    try {
      if (entry.targets) {
        if (owner !== 0) lchownSync(path, owner, owner);
      } else {
        // exactly this mode whatever our umask (RUN_WITH_UMASK(0000)), on the directory made (never through a symlink)
        const fd = openSync(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
        try {
          fchmodSync(fd, entry.mode);
          if (owner !== 0) fchownSync(fd, owner, owner);
        } finally {
          closeSync(fd);
        }
      }
    } catch (e) {
      throw new ContainerError(`Failed to chown ${what} at ${path}: ${(e as Error).message}`);
    }
    made.push(entry.name);
  }
  return made;
}
