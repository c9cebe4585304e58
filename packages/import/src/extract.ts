/**
 * Safe extraction: every member lands beneath the target directory, whatever the archive says, or the extraction
 * fails with one line naming the archive and the member.
 *
 * Everything is done relative to an open descriptor of the target (@nspawn/syscall): parents are opened beneath it
 * with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV) (an O_NOFOLLOW walk on older kernels), the
 * member is made with one name in that parent (mkdirat, openat(O_CREAT | O_EXCL | O_NOFOLLOW), symlinkat,
 * linkat, mknodat), and its owner, mode, times and xattrs are set through its own descriptor (or, for a symlink,
 * its parent's with AT_SYMLINK_NOFOLLOW). Directory modes and times are applied at the end through descriptors
 * re-opened beneath the target with O_DIRECTORY | O_NOFOLLOW, and only to the very directory (same inode) the
 * member made: a directory replaced meanwhile by a symlink, a file or another directory is left alone.
 */
import { closeSync, writeSync, ftruncateSync } from 'node:fs';
import {
  AT_EMPTY_PATH,
  AT_SYMLINK_NOFOLLOW,
  fchmod,
  fchmodPath,
  fchown,
  fchownAt,
  fsetxattr,
  futimens,
  linkAt,
  lsetxattrAt,
  lstatAt,
  makedev,
  mkdirAt,
  mknodAt,
  O_CREAT,
  O_DIRECTORY,
  O_EXCL,
  O_NOFOLLOW,
  O_PATH,
  O_RDONLY,
  O_WRONLY,
  openAt,
  openBeneath,
  removeTreeAt,
  S_IFBLK,
  S_IFCHR,
  S_IFIFO,
  statFd,
  symlinkAt,
  SysError,
  unlinkAt,
  utimensAt,
} from '@nspawn/syscall';
import { type Member, readArchive, showName } from './archive.js';
import { ImportError } from './errors.js';

export { ImportError };

export interface ExtractStats {
  /** members extracted (the root's own entry not counted) */
  entries: number;
  /** bytes of file data written */
  bytes: number;
  /** extended attributes restored */
  xattrs: number;
  /** extended attributes not restored: namespaces not kept (see keptXattr), or not supported by the file system */
  xattrsSkipped: number;
}

const PATH_MAX = 4096;
const NAME_MAX = 255;

/**
 * The member's name as components below the target; refuses absolute names, `..`, NUL, names longer than
 * PATH_MAX (4096 bytes with its NUL) and components longer than NAME_MAX (255).
 */
export function safeComponents(name: string | Buffer, what = `member '${showName(Buffer.from(name))}'`, archive = 'the archive'): Buffer[] {
  const b = typeof name === 'string' ? Buffer.from(name) : name;
  const refuse = (why: string) => new ImportError(`Refusing ${archive}: ${what} ${why}`);
  if (b.includes(0)) throw refuse('has a NUL byte in its name');
  if (b[0] === 0x2f) throw refuse('has an absolute path');
  if (b.length >= PATH_MAX) throw refuse(`has a name of ${b.length} bytes, longer than PATH_MAX (${PATH_MAX})`);
  const out: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= b.length; i++) {
    if (i < b.length && b[i] !== 0x2f) continue;
    const c = b.subarray(start, i);
    start = i + 1;
    if (c.length === 0 || (c.length === 1 && c[0] === 0x2e)) continue;
    if (c.length === 2 && c[0] === 0x2e && c[1] === 0x2e) throw refuse("climbs out with '..'");
    if (c.length > NAME_MAX) throw refuse(`has a component of ${c.length} bytes, longer than NAME_MAX (${NAME_MAX})`);
    out.push(Buffer.from(c));
  }
  return out;
}

/**
 * The xattrs restored: user.*, trusted.* (but not trusted.overlay.*, which would steer overlayfs when the image is
 * an overlay's layer), security.capability (file capabilities) and the POSIX ACLs system.posix_acl_access and
 * system.posix_acl_default. Others (security.selinux, security.ima, ...) are counted as skipped.
 */
export function keptXattr(name: string): boolean {
  if (name.startsWith('user.')) return true;
  if (name.startsWith('trusted.')) return !name.startsWith('trusted.overlay.');
  return name === 'security.capability' || name === 'system.posix_acl_access' || name === 'system.posix_acl_default';
}

interface DirRecord {
  parts: Buffer[];
  ino: bigint;
  mode: number;
  mtimeNs: bigint;
  atimeNs: bigint;
}

const code = (e: unknown) => (e as SysError).code;

export interface ExtractOptions {
  /** how messages name the archive (default: ARCHIVE; e.g. the compressed file or the URL it came from) */
  label?: string;
  /** called once per member after it was made (progress) */
  onEntry?: (name: string) => void;
}

/**
 * Extracts the plain tar archive ARCHIVE into DEST, an existing directory this process made (an empty one:
 * members replace what is there). Throws an ImportError at the first unsafe member, damage or truncation; DEST
 * then holds a partial tree, which the caller removes (installTarball() does: extraction beside the store and a
 * rename into place only when complete).
 */
export async function extractTar(path: string, dest: string, opts: ExtractOptions = {}): Promise<ExtractStats> {
  const archive = opts.label ?? path;
  let root: number;
  try {
    root = openAt(-100, dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  } catch (e) {
    throw new ImportError(`Cannot extract into ${dest}: ${code(e) ?? (e as Error).message}`);
  }
  const stats: ExtractStats = { entries: 0, bytes: 0, xattrs: 0, xattrsSkipped: 0 };
  // new files get our owner (directories are 0700 without set-GID bits while members are made)
  const euid = process.geteuid?.() ?? -1;
  const egid = process.getegid?.() ?? -1;
  const dirs = new Map<string, DirRecord>();
  // the parent of the previous member, kept open while members stay in one directory; dropped at any removal
  let cache: { key: string; fd: number } | undefined;
  const dropCache = () => {
    if (cache) closeSync(cache.fd);
    cache = undefined;
  };
  try {
    await readArchive(path, async (m, data) => {
      const what = `${archive}: member '${showName(m.name)}'`;
      const member = `member '${showName(m.name)}'`;
      const parts = safeComponents(m.name, `member '${showName(m.name)}'`, archive);
      const fail = (e: unknown, doing: string): never => {
        if (e instanceof ImportError) throw e;
        const c = code(e);
        if (c === 'ELOOP' || c === 'EXDEV') throw new ImportError(`Refusing ${archive}: ${member} would be written through a symlink (or onto another mount)`);
        if (c === 'ENOTDIR') throw new ImportError(`Refusing ${archive}: ${member} ${explainParent(root, parts.slice(0, -1))}`);
        throw new ImportError(`${what}: failed to ${doing}: ${c ?? (e as Error).message}`);
      };
      if (parts.length === 0) {
        // the root itself ("./"): its owner, mode, times and xattrs apply to DEST
        if (m.type !== 'dir') throw new ImportError(`Refusing ${archive}: ${member} is the root and not a directory`);
        try {
          fchown(root, m.uid, m.gid);
          setXattrs(root, m, stats, what);
          dirs.delete('');
          dirs.set('', { parts: [], ino: statFd(root).ino, mode: m.mode, mtimeNs: m.mtimeNs, atimeNs: m.atimeNs ?? m.mtimeNs });
        } catch (e) {
          fail(e, 'set the root directory up');
        }
        return;
      }
      const parentParts = parts.slice(0, -1);
      const name = parts[parts.length - 1]!;
      const key = Buffer.concat(parentParts.flatMap((p) => [p, Buffer.from('/')])).toString('latin1');
      let parent: number;
      if (cache?.key === key) parent = cache.fd;
      else {
        dropCache();
        try {
          parent = openParent(root, parentParts);
        } catch (e) {
          return fail(e, 'open its directory');
        }
        cache = { key, fd: parent };
      }
      const existing = lstatAt(parent, name);
      // (the cache holds this member's parent, which a removal of one of its entries leaves valid)
      const clear = () => {
        if (!existing) return;
        try {
          if (existing.isDirectory()) removeTreeAt(parent, name);
          else unlinkAt(parent, name);
        } catch (e) {
          fail(e, 'replace what was there');
        }
      };
      try {
        switch (m.type) {
          case 'dir': {
            if (!existing?.isDirectory()) {
              clear();
              mkdirAt(parent, name, 0o700);
            }
            const fd = openAt(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
            try {
              fchown(fd, m.uid, m.gid);
              setXattrs(fd, m, stats, what);
              const k = Buffer.concat(parts.flatMap((p) => [p, Buffer.from('/')])).toString('latin1');
              dirs.delete(k);
              dirs.set(k, { parts, ino: statFd(fd).ino, mode: m.mode, mtimeNs: m.mtimeNs, atimeNs: m.atimeNs ?? m.mtimeNs });
            } finally {
              closeSync(fd);
            }
            break;
          }
          case 'file': {
            clear();
            const fd = openAt(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
            try {
              stats.bytes += await writeData(fd, m, data, what);
              // chown before the mode (it clears set-ID bits) and before the xattrs (it clears file capabilities);
              // the mode after the ACL (whose mask is the group bits). A new file is ours already: most are root's
              if (m.uid !== euid || m.gid !== egid) fchown(fd, m.uid, m.gid);
              setXattrs(fd, m, stats, what);
              fchmod(fd, m.mode);
              futimens(fd, m.atimeNs ?? m.mtimeNs, m.mtimeNs);
            } finally {
              closeSync(fd);
            }
            break;
          }
          case 'symlink': {
            if (m.linkname.length === 0 || m.linkname.length >= PATH_MAX) throw new ImportError(`Refusing ${archive}: ${member} is a symlink with a target of ${m.linkname.length} bytes`);
            clear();
            symlinkAt(m.linkname, parent, name);
            fchownAt(parent, name, m.uid, m.gid, AT_SYMLINK_NOFOLLOW);
            for (const [k, v] of m.xattrs) {
              // user.* is not allowed on symlinks: trusted.* and security.* are
              if (!keptXattr(k) || k.startsWith('user.') || k.startsWith('system.')) stats.xattrsSkipped++;
              else xattrOr(() => lsetxattrAt(parent, name, k, v), stats, what, k);
            }
            utimensAt(parent, name, m.atimeNs ?? m.mtimeNs, m.mtimeNs);
            break;
          }
          case 'hardlink': {
            const target = safeComponents(m.linkname, `hard link '${showName(m.name)}' (to '${showName(m.linkname)}')`, archive);
            if (target.length === 0) throw new ImportError(`Refusing ${archive}: ${member} is a hard link to the root`);
            let tParent: number;
            try {
              tParent = openParent(root, target.slice(0, -1), false);
            } catch (e) {
              throw new ImportError(`Refusing ${archive}: ${member} is a hard link to '${showName(m.linkname)}', which is not a file extracted before (${code(e) ?? (e as Error).message})`);
            }
            try {
              const tName = target[target.length - 1]!;
              const t = lstatAt(tParent, tName);
              if (!t || t.isDirectory()) throw new ImportError(`Refusing ${archive}: ${member} is a hard link to '${showName(m.linkname)}', which is not a file extracted before`);
              if (existing && existing.ino === t.ino && existing.devMajor === t.devMajor && existing.devMinor === t.devMinor) break; // already that file
              clear();
              linkAt(tParent, tName, parent, name, 0);
            } finally {
              closeSync(tParent);
            }
            break;
          }
          case 'char':
          case 'block':
          case 'fifo': {
            clear();
            const type = m.type === 'char' ? S_IFCHR : m.type === 'block' ? S_IFBLK : S_IFIFO;
            mknodAt(parent, name, type | 0o600, m.type === 'fifo' ? 0n : makedev(m.devmajor, m.devminor));
            const fd = openAt(parent, name, O_PATH | O_NOFOLLOW);
            try {
              fchownAt(fd, '', m.uid, m.gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
              for (const [k, v] of m.xattrs) {
                if (!keptXattr(k)) stats.xattrsSkipped++;
                else xattrOr(() => lsetxattrAt(parent, name, k, v), stats, what, k);
              }
              fchmodPath(fd, m.mode);
            } finally {
              closeSync(fd);
            }
            utimensAt(parent, name, m.atimeNs ?? m.mtimeNs, m.mtimeNs);
            break;
          }
        }
      } catch (e) {
        fail(e, `make it (${m.type})`);
      }
      stats.entries++;
      opts.onEntry?.(showName(m.name));
    }, archive);
    dropCache();
    // directories last, deepest first (the last of duplicates wins): mode (set-ID included) and times, through a
    // descriptor re-opened beneath DEST without following anything, and only if it is still the directory made
    for (const d of [...dirs.values()].reverse()) {
      let fd: number;
      try {
        fd = d.parts.length === 0 ? openAt(root, '.', O_RDONLY | O_DIRECTORY) : openBeneath(root, d.parts, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      } catch (e) {
        if (['ENOENT', 'ELOOP', 'ENOTDIR', 'EXDEV'].includes(code(e) ?? '')) continue; // replaced by a later member
        throw new ImportError(`${archive}: directory '${d.parts.map((p) => showName(p)).join('/')}': ${code(e) ?? (e as Error).message}`);
      }
      try {
        if (statFd(fd).ino !== d.ino) continue;
        fchmod(fd, d.mode);
        futimens(fd, d.atimeNs, d.mtimeNs);
      } finally {
        closeSync(fd);
      }
    }
  } finally {
    dropCache();
    closeSync(root);
  }
  return stats;
}

/** Why PARTS cannot be opened as a directory beneath ROOT: the first component that is a symlink or not a directory. */
function explainParent(root: number, parts: Buffer[]): string {
  let dir = openAt(root, '.', O_PATH | O_DIRECTORY);
  try {
    for (let i = 0; i < parts.length; i++) {
      const st = lstatAt(dir, parts[i]!);
      const at = parts.slice(0, i + 1).map((p) => showName(p)).join('/');
      if (st?.isSymbolicLink()) return `would be written through the symlink '${at}'`;
      if (st && !st.isDirectory()) return `has a parent '${at}' that is not a directory`;
      if (!st) break;
      const next = openAt(dir, parts[i]!, O_PATH | O_DIRECTORY | O_NOFOLLOW);
      closeSync(dir);
      dir = next;
    }
  } catch {
    // the generic words below
  } finally {
    closeSync(dir);
  }
  return 'has a parent that is not a directory';
}

/** Opens the directory PARTS beneath ROOT (O_PATH), making missing ones (0755, root's) when CREATE. */
function openParent(root: number, parts: Buffer[], create = true): number {
  if (parts.length === 0) return openAt(root, '.', O_PATH | O_DIRECTORY);
  try {
    return openBeneath(root, parts, O_PATH | O_DIRECTORY | O_NOFOLLOW);
  } catch (e) {
    if (code(e) !== 'ENOENT' || !create) throw e;
  }
  let dir = openAt(root, '.', O_PATH | O_DIRECTORY);
  try {
    for (const p of parts) {
      if (!lstatAt(dir, p)) mkdirAt(dir, p, 0o755);
      const next = openAt(dir, p, O_PATH | O_DIRECTORY | O_NOFOLLOW);
      closeSync(dir);
      dir = next;
    }
    const r = dir;
    dir = -1;
    return r;
  } finally {
    if (dir >= 0) closeSync(dir);
  }
}

function xattrOr(set: () => void, stats: ExtractStats, what: string, name: string): void {
  try {
    set();
    stats.xattrs++;
  } catch (e) {
    const c = code(e);
    if (c === 'ENOTSUP' || c === 'EOPNOTSUPP' || c === 'EPERM') stats.xattrsSkipped++;
    else throw new ImportError(`${what}: failed to set the extended attribute ${name}: ${c ?? (e as Error).message}`);
  }
}

function setXattrs(fd: number, m: Member, stats: ExtractStats, what: string): void {
  for (const [k, v] of m.xattrs) {
    if (!keptXattr(k)) stats.xattrsSkipped++;
    else xattrOr(() => fsetxattr(fd, k, v), stats, what, k);
  }
}

/** Writes the member's data into FD: at the segments' offsets for a sparse file (holes stay holes). */
async function writeData(fd: number, m: Member, data: AsyncIterable<Buffer>, what: string): Promise<number> {
  let written = 0;
  // a PAX 1.0 map is read from the data itself: known once the first chunk is there
  let segs: Array<[number, number]> | undefined;
  let started = false;
  let seg = 0;
  let segLeft = 0;
  let pos = 0;
  for await (let chunk of data) {
    if (!started) {
      started = true;
      segs = m.sparse;
      segLeft = segs?.[0]?.[1] ?? 0;
      pos = segs?.[0]?.[0] ?? 0;
    }
    while (chunk.length > 0) {
      let n = chunk.length;
      if (segs) {
        while (segLeft === 0 && seg < segs.length - 1) {
          seg++;
          pos = segs[seg]![0];
          segLeft = segs[seg]![1];
        }
        if (segLeft === 0) throw new ImportError(`${what}: more data than its sparse map holds`);
        n = Math.min(n, segLeft);
      }
      let off = 0;
      while (off < n) off += writeSync(fd, chunk, off, n - off, pos + off);
      pos += n;
      written += n;
      if (segs) segLeft -= n;
      chunk = chunk.subarray(n);
    }
  }
  if (m.sparse || written !== m.size) ftruncateSync(fd, m.size);
  return written;
}
