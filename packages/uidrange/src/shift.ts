/**
 * shiftTree(): chown a tree into a range (systemd's path_patch_uid(), "--private-users-ownership=chown"), in
 * TypeScript with the calls Node lacks through koffi (statx, fd-relative chown, getdents64, ACL xattrs): every inode
 * gets `base | (id & 0xffff)` for its owner, its group and the IDs in its POSIX ACLs (access, and default on
 * directories); symlinks are changed with lchown (fchownat AT_SYMLINK_NOFOLLOW); modes are put back where chown()
 * clears set-ID bits; mount points (statx STATX_ATTR_MOUNT_ROOT, bind mounts too) are never crossed; directories are
 * opened relative to their parent with O_NOFOLLOW, so a symlink swapped in never leads out of the tree. The top
 * directory is chowned last, so it says whether the tree carries the shift (then nothing is done); while the work
 * runs it carries the busy range 0xfffe0000, so an interrupted run is redone completely next time.
 */
import { closeSync, constants, fchownSync, fstatSync, openSync } from 'node:fs';
import { UID_BUSY_BASE, UID_RANGE, UidRangeError } from './candidates.js';
import { errnoName, lastError, lib, type Libc, nativeBuffer, SysError } from './sys.js';

export type ShiftResult = 'changed' | 'unchanged';

/** systemd's refusals for chown mode, before touching anything */
export function checkShiftable(base: number, count: number): void {
  if ((base & 0xffff) !== 0 || count !== UID_RANGE)
    throw new UidRangeError(
      `Automatic UID/GID adjusting is only supported for UID/GID ranges starting at multiples of 2^16 with a range of 2^16 (got base ${base}, count ${count}).`,
      'EOPNOTSUPP',
    );
}

const UID_BUSY_MASK = 0xffff0000;
const O_CLOEXEC = 0o2000000;
const DIR_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_DIRECTORY | constants.O_NOFOLLOW | constants.O_NOATIME;
const AT_SYMLINK_NOFOLLOW = 0x100;
const AT_NO_AUTOMOUNT = 0x800;
const STATX_BASIC = 0x1 | 0x2 | 0x8 | 0x10; // type, mode, uid, gid
const STATX_ATTR_MOUNT_ROOT = 0x2000;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const SETID = 0o6000;
const ACL_ACCESS = 'system.posix_acl_access';
const ACL_DEFAULT = 'system.posix_acl_default';
const ACL_USER = 0x02;
const ACL_GROUP = 0x08;
const SYS_setxattrat = 463;
const SYS_getxattrat = 464;
const ACL_MAX = 64 * 1024; // XATTR_SIZE_MAX
/** getxattrat() exists (Linux 6.13); false after an ENOSYS */
let haveXattrAt = true;

/** tests: turn getxattrat() off (the fallback of kernels before 6.13) or on again; not part of the package's API */
export function useXattrAt(on: boolean): void {
  haveXattrAt = on;
}

/** One walk: the target range, libc, and buffers reused across inodes. */
class Walk {
  changed = false;
  private readonly l: Libc = lib();
  private readonly sx = Buffer.alloc(256);
  private readonly dents = Buffer.alloc(64 * 1024);
  private acl = Buffer.alloc(4096 + 8);
  /** getxattrat()'s value buffer (fixed native memory) and its struct xattr_args { u64 value; u32 size; u32 flags } */
  private xat: { address: bigint; buf: Buffer } | undefined;
  private readonly xargs = Buffer.alloc(16);
  /** the file system said ACLs are not supported: the rest of the walk is on it (mount points are never crossed) */
  private noAcl = false;

  constructor(private readonly shift: number) {}

  private fail(what: string, path: string): never {
    const e = lastError(what);
    throw new UidRangeError(`Failed to adjust UID/GID shift of ${path}: ${e.code} (${what})`, 'EIO');
  }

  /** the names in directory FD, NUL-terminated, without . and .. */
  private names(fd: number, path: string): Buffer[] {
    const out: Buffer[] = [];
    const b = this.dents;
    for (;;) {
      const n = Number(this.l.getdents64(fd, b, b.length));
      if (n < 0) this.fail('getdents64', path);
      if (n === 0) return out;
      for (let off = 0; off < n; ) {
        const reclen = b.readUInt16LE(off + 16);
        const start = off + 19;
        const end = b.indexOf(0, start);
        const len = end - start;
        if (!((len === 1 && b[start] === 0x2e) || (len === 2 && b[start] === 0x2e && b[start + 1] === 0x2e)))
          out.push(Buffer.from(b.subarray(start, end + 1)));
        off += reclen;
      }
    }
  }

  /** walks directory FD (closed here), its contents first, the directory itself last */
  dir(fd: number, path: string, mode: number, uid: number, gid: number): void {
    try {
      const sx = this.sx;
      for (const name of this.names(fd, path)) {
        if (Number(this.l.statx(fd, name, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_BASIC, sx)) < 0) this.fail('statx', child(path, name));
        // a mount point (also a bind mount of a file, or of the same file system): never cross it
        if ((sx.readUInt32LE(8) & sx.readUInt32LE(56) & STATX_ATTR_MOUNT_ROOT) !== 0) continue;
        const cmode = sx.readUInt16LE(28);
        const cuid = sx.readUInt32LE(20);
        const cgid = sx.readUInt32LE(24);
        if ((cmode & S_IFMT) === S_IFDIR) {
          const sub = Number(this.l.openat(fd, name, DIR_FLAGS | O_CLOEXEC));
          if (sub < 0) this.fail('open', child(path, name));
          this.dir(sub, child(path, name), cmode, cuid, cgid);
        } else this.entry(fd, name, path, cmode, cuid, cgid);
      }
      this.self(fd, path, mode, uid, gid);
    } finally {
      this.l.close(fd);
    }
  }

  private ids(uid: number, gid: number): [number, number] {
    return [(this.shift | (uid & 0xffff)) >>> 0, (this.shift | (gid & 0xffff)) >>> 0];
  }

  /** NAME in directory DFD (not a directory) */
  private entry(dfd: number, name: Buffer, path: string, mode: number, uid: number, gid: number): void {
    const [nu, ng] = this.ids(uid, gid);
    const l = this.l;
    if (uid !== nu || gid !== ng) {
      if (Number(l.fchownat(dfd, name, nu, ng, AT_SYMLINK_NOFOLLOW)) < 0) this.fail('chown', child(path, name));
      // chown() clears the set-ID bits (only those): put them back where there were any
      if ((mode & S_IFMT) !== S_IFLNK && (mode & SETID) !== 0 && Number(l.fchmodat(dfd, name, mode & 0o7777, 0)) < 0) this.fail('chmod', child(path, name));
      this.changed = true;
    }
    if ((mode & S_IFMT) === S_IFLNK || this.noAcl) return;
    // the entry's ACL through its directory's descriptor: race-free, one call
    if (haveXattrAt) {
      if (this.aclAt(dfd, name, child(path, name)) !== 'ENOSYS') return;
      haveXattrAt = false;
    }
    const proc = Buffer.concat([Buffer.from(`/proc/self/fd/${dfd}/`), name]);
    this.patchAcl(
      (buf, size) => Number(l.lgetxattr(proc, ACL_ACCESS, buf, size)),
      (buf, size) => Number(l.lsetxattr(proc, ACL_ACCESS, buf, size, 0)),
      child(path, name),
    );
  }

  /** the access ACL of NAME in DFD with getxattrat()/setxattrat(); 'ENOSYS' on a kernel without them */
  private aclAt(dfd: number, name: Buffer, path: string): 'ENOSYS' | undefined {
    const l = this.l;
    const x = (this.xat ??= nativeBuffer(ACL_MAX));
    const a = this.xargs;
    a.writeBigUInt64LE(x.address, 0);
    a.writeUInt32LE(ACL_MAX, 8);
    const n = Number(l.sysXattrAt(SYS_getxattrat, dfd, name, AT_SYMLINK_NOFOLLOW, ACL_ACCESS, a, 16));
    if (n < 0) {
      const code = errnoName(l.errno());
      if (code === 'ENOSYS') return 'ENOSYS';
      if (code === 'ENODATA') return undefined;
      if (code === 'EOPNOTSUPP' || code === 'ENOTSUP') {
        this.noAcl = true;
        return undefined;
      }
      this.fail('getxattrat', path);
    }
    if (this.patchIds(x.buf, n)) {
      a.writeUInt32LE(n, 8);
      if (Number(l.sysXattrAt(SYS_setxattrat, dfd, name, AT_SYMLINK_NOFOLLOW, ACL_ACCESS, a, 16)) < 0) this.fail('setxattrat', path);
      this.changed = true;
    }
    return undefined;
  }

  /** rewrites the IDs of the ACL_USER and ACL_GROUP entries of the ACL xattr in B[0..N) into the range */
  private patchIds(b: Buffer, n: number): boolean {
    let changed = false;
    for (let off = 4; off + 8 <= n; off += 8) {
      const tag = b.readUInt16LE(off);
      if (tag !== ACL_USER && tag !== ACL_GROUP) continue;
      const id = b.readUInt32LE(off + 4);
      const nid = (this.shift | (id & 0xffff)) >>> 0;
      if (nid !== id) {
        b.writeUInt32LE(nid, off + 4);
        changed = true;
      }
    }
    return changed;
  }

  /** the directory FD itself */
  private self(fd: number, path: string, mode: number, uid: number, gid: number): void {
    const [nu, ng] = this.ids(uid, gid);
    const l = this.l;
    if (uid !== nu || gid !== ng) {
      if (Number(l.fchown(fd, nu, ng)) < 0) this.fail('chown', path);
      if ((mode & SETID) !== 0 && Number(l.fchmod(fd, mode & 0o7777)) < 0) this.fail('chmod', path);
      this.changed = true;
    }
    for (const attr of [ACL_ACCESS, ACL_DEFAULT]) {
      if (this.noAcl) return;
      this.patchAcl(
        (buf, size) => Number(l.fgetxattr(fd, attr, buf, size)),
        (buf, size) => Number(l.fsetxattr(fd, attr, buf, size, 0)),
        path,
      );
    }
  }

  /** POSIX ACL xattr: u32 version (2), then {u16 tag, u16 perm, u32 id}; the IDs of ACL_USER and ACL_GROUP entries */
  private patchAcl(get: (buf: Buffer | null, size: number) => number, set: (buf: Buffer, size: number) => number, path: string): void {
    let n = get(this.acl, this.acl.length);
    if (n < 0) {
      const code = errnoName(this.l.errno());
      if (code === 'ENODATA') return;
      if (code === 'EOPNOTSUPP' || code === 'ENOTSUP') {
        this.noAcl = true;
        return;
      }
      if (code !== 'ERANGE') this.fail('getxattr', path);
      const size = get(null, 0);
      if (size < 0) this.fail('getxattr', path);
      this.acl = Buffer.alloc(size + 64);
      n = get(this.acl, this.acl.length);
      if (n < 0) this.fail('getxattr', path);
    }
    const b = this.acl;
    if (this.patchIds(b, n)) {
      if (set(b, n) < 0) this.fail('setxattr', path);
      this.changed = true;
    }
  }
}

function child(path: string, name: Buffer): string {
  return `${path}/${name.toString('utf8', 0, name.length - 1)}`;
}

/**
 * Chowns the tree at PATH into the range BASE (a multiple of 65536, 65536 IDs). 'unchanged' when the top directory
 * says it carries that range already.
 */
export function shiftTree(path: string, base: number, count: number = UID_RANGE): ShiftResult {
  checkShiftable(base, count);
  if (base >>> 0 === UID_BUSY_BASE) throw new UidRangeError(`${UID_BUSY_BASE} is the busy marker range, not a usable UID base.`, 'EINVAL');
  let fd: number;
  try {
    fd = openSync(path, DIR_FLAGS);
  } catch (e) {
    throw new UidRangeError(`Failed to open ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'EIO');
  }
  let handed = false;
  try {
    const st = fstatSync(fd);
    const uid = st.uid >>> 0;
    const gid = st.gid >>> 0;
    if (uid >>> 16 !== gid >>> 16) throw new UidRangeError(`Upper 16 bits of root directory UID and GID do not match. (${path})`, 'EBADE');
    if ((uid ^ base) >>> 16 === 0) return 'unchanged';
    // busy marker: an interrupted run leaves the top directory in the busy range, so the next one redoes all
    if ((uid & UID_BUSY_MASK) >>> 0 !== UID_BUSY_BASE)
      try {
        fchownSync(fd, (UID_BUSY_BASE | (uid & 0xffff)) >>> 0, (UID_BUSY_BASE | (gid & 0xffff)) >>> 0);
      } catch (e) {
        throw new UidRangeError(`Failed to mark ${path} busy: ${(e as NodeJS.ErrnoException).code}`, 'EIO');
      }
    const walk = new Walk(base);
    handed = true;
    walk.dir(fd, path, st.mode, uid, gid);
    return 'changed';
  } catch (e) {
    if (e instanceof SysError) throw new UidRangeError(e.message, 'EIO');
    throw e;
  } finally {
    if (!handed) closeSync(fd);
  }
}
