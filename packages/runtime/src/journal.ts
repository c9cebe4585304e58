/**
 * --link-journal= (setup_journal() of systemd-nspawn 252): whether the container's journal directory,
 * /var/log/journal/MACHINE-ID, is linked to the host's. Everything on disk is done here, in Node, before the container
 * exists, with the host's privileges as systemd-nspawn's outer child does it (userns_mkdir(): directories in the tree
 * belong to the container's root): checks, directories in the tree, a directory or a symlink in the host's
 * /var/log/journal. The bind mount of the host's directory comes back as a plan operation, which the helper runs in
 * the container's mount namespace.
 *
 * Every host effect goes through JournalFs, so that the rules are unit-tested on a fake.
 */
import { lchownSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmdirSync, symlinkSync, unlinkSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { LinkJournal } from '@nspawn/settings';
import { ContainerError } from './errors.js';
import { type Op, MS, OpFlag } from './protocol.js';
import type { Tree } from './host.js';

/** What setup_journal() touches on the host. Paths are host paths. */
export interface JournalFs {
  /** the host's machine ID (32 lower-case hex digits), or undefined when it has none */
  machineId(): string | undefined;
  isMountPoint(path: string): boolean;
  /** readlink(2); throws with code ENOENT, EINVAL (not a symlink), ... */
  readlink(path: string): string;
  exists(path: string): boolean;
  /** mkdir(2) of one directory; throws with its code (EEXIST, ENOENT, ...) */
  mkdir(path: string, mode: number): void;
  /** lchown(2) */
  chown(path: string, uid: number, gid: number): void;
  symlink(target: string, path: string): void;
  unlink(path: string): void;
  /** rmdir(2); throws with its code */
  rmdir(path: string): void;
  /** whether a directory has entries (hidden ones too) */
  hasEntries(path: string): boolean;
}

const code = (e: unknown) => (e as NodeJS.ErrnoException).code ?? 'EIO';
const ERRNO_TEXT: Record<string, string> = {
  ENOENT: 'No such file or directory',
  EEXIST: 'File exists',
  EACCES: 'Permission denied',
  EPERM: 'Operation not permitted',
  EROFS: 'Read-only file system',
  ENOTDIR: 'Not a directory',
  ENOTEMPTY: 'Directory not empty',
  EBUSY: 'Device or resource busy',
  EIO: 'Input/output error',
};
const strerror = (e: unknown) => ERRNO_TEXT[code(e)] ?? code(e);

/** The mount points in /proc/self/mountinfo (octal escapes undone). */
function mountPoints(): Set<string> {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  try {
    return new Set(
      readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .map((l) => unescape(l.split(' ')[4] ?? ''))
        .filter((m) => m !== ''),
    );
  } catch {
    return new Set();
  }
}

export const nodeJournalFs: JournalFs = {
  machineId() {
    try {
      const id = readFileSync('/etc/machine-id', 'utf8').trim().toLowerCase();
      return /^[0-9a-f]{32}$/.test(id) && !/^0+$/.test(id) ? id : undefined;
    } catch {
      return undefined;
    }
  },
  isMountPoint: (p) => mountPoints().has(p),
  readlink: (p) => readlinkSync(p),
  exists(p) {
    try {
      return lstatSync(p, { throwIfNoEntry: false }) !== undefined;
    } catch {
      return false;
    }
  },
  mkdir: (p, mode) => mkdirSync(p, { mode }),
  chown: (p, u, g) => lchownSync(p, u, g),
  symlink: (t, p) => symlinkSync(t, p),
  unlink: (p) => unlinkSync(p),
  rmdir: (p) => rmdirSync(p),
  hasEntries(p) {
    try {
      return readdirSync(p).length > 0;
    } catch {
      return false;
    }
  },
};

export interface JournalOptions {
  /** the tree's host path */
  directory: string;
  /** the container's UUID (dashed or not) */
  uuid: string;
  mode: LinkJournal;
  /** the try- variants */
  try: boolean;
  /** the tree is mounted read-only in the container (--read-only): directories it lacks cannot be made */
  readOnly: boolean;
  tree: Pick<Tree, 'isDirectory' | 'resolve'>;
  /**
   * with a user namespace: the host UID (and GID) of the container's root, the owner of what is made in the tree.
   * Leave it out where the root will be an idmapped mount (the disk's owner is then 0, which is what mkdir gives) or
   * where the caller chowns JournalSetup.made itself once it knows (planBoot() does: the idmap is decided later)
   */
  uidShift?: number;
  /**
   * the container's root is not the tree (--volatile=): its directories are made in the container's mount namespace
   * (mkdir operations in the plan, owned by the container's root there), TREE is the volatile root's view
   */
  inContainer?: boolean;
}

export interface JournalSetup {
  /** plan operations inside the container's mount namespace (the bind mount of the host's directory) */
  ops: Op[];
  /** lines for stderr (systemd's warnings) */
  warnings: string[];
  /** what was done on disk, for the record (tests): "mkdir /var/log" in the tree, "host: mkdir ..." on the host */
  host: string[];
  /** the directories made in the tree, as host paths (userns_mkdir(): to be owned by the container's root) */
  made: string[];
}

/**
 * setup_journal(). Throws ContainerError where systemd-nspawn fails to start. One difference: a host without a
 * machine ID (systemd-nspawn: "Failed to retrieve machine ID", fatal even for --link-journal=auto) only fails the
 * modes that need one (host, guest); auto and the try- variants then link nothing.
 */
export function setupJournal(opts: JournalOptions, fs: JournalFs = nodeJournalFs): JournalSetup {
  const out: JournalSetup = { ops: [], warnings: [], host: [], made: [] };
  if (opts.mode === 'no') return out;
  /** userns_mkdir(): PATH in the tree (its parent resolved inside the tree), owned by the container's root */
  const treeMkdir = (path: string) => {
    if (opts.inContainer) {
      out.ops.push({ kind: 'mkdir', target: path, mode: 0o755, ...(tryMode ? { flags: OpFlag.OPTIONAL } : {}) });
      out.host.push(`container: mkdir ${path}`);
      return;
    }
    const parent = opts.tree.resolve(dirname(path));
    if (parent === undefined) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    const host = join(parent, basename(path));
    try {
      fs.mkdir(host, 0o755);
    } catch (e) {
      if (code(e) === 'EEXIST') return;
      throw e;
    }
    out.host.push(`mkdir ${path}`);
    out.made.push(host);
    if (opts.uidShift !== undefined) fs.chown(host, opts.uidShift, opts.uidShift);
  };
  const tryMode = opts.try || opts.mode === 'auto';
  const id = opts.uuid.replace(/-/g, '').toLowerCase();
  const p = `/var/log/journal/${id}`; // the host's
  const q = join(opts.directory, p); // the tree's, as the host sees it

  const hostId = fs.machineId();
  if (hostId === undefined && !tryMode) throw new ContainerError('Failed to retrieve machine ID: No such file or directory');
  if (hostId !== undefined && hostId === id) {
    const msg = `Host and machine ids are equal (${id}): refusing to link journals`;
    if (tryMode) {
      out.warnings.push(msg);
      return out;
    }
    throw new ContainerError(msg);
  }

  // /var, /var/log, /var/log/journal in the tree; a read-only tree that lacks one ends it (quietly with try)
  for (const d of ['/var', '/var/log', '/var/log/journal']) {
    if (opts.tree.isDirectory(d)) continue;
    if (opts.readOnly) {
      if (tryMode) return out;
      throw new ContainerError(`Failed to create ${d}: Read-only file system`);
    }
    try {
      treeMkdir(d);
    } catch (e) {
      throw new ContainerError(`Failed to create ${d}: ${strerror(e)}`);
    }
  }
  /** the machine's directory in the tree: a failure is a warning (guest) or an error (a bind mount needs it) */
  const machineDir = (fatal: boolean) => {
    try {
      treeMkdir(p);
    } catch (e) {
      if (fatal) throw new ContainerError(`Failed to create ${q}: ${strerror(e)}`);
      out.warnings.push(`Failed to create directory ${q}: ${strerror(e)}`);
    }
  };
  if (hostId === undefined) return out; // nothing on the host to link with

  // (what does not exist is no mount point: the mount table is read only for what does)
  for (const path of [p, q])
    if (fs.exists(path) && fs.isMountPoint(path)) {
      if (tryMode) return out;
      throw new ContainerError(`${path}: already a mount point, refusing to use for journal`);
    }

  let link: string | undefined;
  try {
    link = fs.readlink(p);
  } catch (e) {
    const c = code(e);
    if (c === 'EINVAL') {
      // there, and not a symlink: --link-journal=guest wants it gone (it must be an empty directory)
      if (opts.mode === 'guest') {
        try {
          fs.rmdir(p);
          out.host.push(`host: rmdir ${p}`);
        } catch (e2) {
          if (code(e2) === 'ENOTDIR') throw new ContainerError(`${p} already exists and is neither a symlink nor a directory`);
          throw new ContainerError(`Failed to remove ${p}: ${strerror(e2)}`);
        }
      }
    } else if (c !== 'ENOENT') throw new ContainerError(`readlink(${p}) failed: ${strerror(e)}`);
  }
  if (link !== undefined) {
    const abs = resolve('/var/log/journal', link);
    if ((opts.mode === 'guest' || opts.mode === 'auto') && abs === q) {
      machineDir(false);
      return out;
    }
    try {
      fs.unlink(p);
      out.host.push(`host: unlink ${p}`);
    } catch (e) {
      throw new ContainerError(`Failed to remove symlink ${p}: ${strerror(e)}`);
    }
  }

  if (opts.mode === 'guest') {
    // the host's journal directory for this machine becomes a symlink into the tree
    try {
      fs.symlink(q, p);
      out.host.push(`host: symlink ${p} -> ${q}`);
    } catch (e) {
      if (tryMode) return out;
      throw new ContainerError(`Failed to symlink ${q} to ${p}: ${strerror(e)}`);
    }
    machineDir(false);
    return out;
  }
  if (opts.mode === 'host') {
    // only this directory: a host without a persistent journal (/var/log/journal) is not given one
    try {
      fs.mkdir(p, 0o755);
      out.host.push(`host: mkdir ${p}`);
    } catch (e) {
      if (code(e) !== 'EEXIST') {
        if (tryMode) return out;
        throw new ContainerError(`Failed to create ${p}: ${strerror(e)}`);
      }
    }
  } else if (!fs.exists(p)) return out; // auto: nothing on the host to link

  if (fs.hasEntries(q)) out.warnings.push(`${q} is not empty, proceeding anyway.`);
  machineDir(true);
  out.ops.push({ kind: 'mount', source: p, target: p, mountFlags: MS.BIND });
  return out;
}
