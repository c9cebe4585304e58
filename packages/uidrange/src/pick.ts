/** pickRange(): systemd-nspawn -U's range picking (uid_shift_pick()), with the same locks. */
import { statSync } from 'node:fs';
import { candidates, LOCK_DIR, ownerBase, UID_RANGE, UidRangeError } from './candidates.js';
import { ensureLockDir, lockPathFor, tryLockFile, type RangeLock } from './lock.js';
import { filesUserDb, type UserDb } from './users.js';

export interface PickOptions {
  /** the container's root directory: its owner's range is the first candidate */
  dir?: string;
  /** the first candidate when there is no dir (or to override it) */
  first?: number;
  /** the machine name: its siphash is the second candidate, so a machine gets the same range each time */
  machine?: string;
  /** default /run/systemd/nspawn-uid, shared with systemd-nspawn */
  lockDir?: string;
  /** default: /etc/passwd and /etc/group */
  users?: UserDb;
  /** 32-bit random values; default crypto */
  random?: () => number;
  /** how to take a lock (tests); default the OFD lock */
  lock?: (path: string) => RangeLock | undefined;
}

export interface PickedRange {
  base: number;
  count: number;
  lockPath: string;
  /** the descriptor holding the lock (absent with a `lock` of one's own that has none) */
  lockFd?: number;
  /**
   * keeps the lock across an execve() of this process (clears FD_CLOEXEC); returns the descriptor, which the
   * program executed must hold and close (the runtime helper's plan.inheritedLocks)
   */
  keepAcrossExec(): number;
  /** unlinks the lock file and drops the lock; idempotent */
  release(): void;
}

/** random_bytes(): 32 random bits (node:crypto loaded on first use, not at start-up) */
const cryptoRandom = () => process.getBuiltinModule('node:crypto').randomBytes(4).readUInt32LE(0);

/**
 * Picks a free range of 65536 IDs. Candidates, in systemd's order: the owner of `dir` (st_uid & 0xffff0000),
 * siphash24(machine), then random; each must lie in 524288..1878982656 and be aligned. A candidate is taken when
 * its lock is held or a host user or group exists at base or base+65534. Throws EBUSY after 99 candidates.
 */
export function pickRange(opts: PickOptions = {}): PickedRange {
  let first = opts.first;
  if (first === undefined && opts.dir !== undefined) {
    const st = statSync(opts.dir);
    first = ownerBase(st.uid, st.gid, opts.dir);
  }
  const lockDir = opts.lockDir ?? LOCK_DIR;
  const users = opts.users ?? filesUserDb();
  const lock = opts.lock ?? tryLockFile;
  ensureLockDir(lockDir);
  for (const c of candidates(first ?? 0, opts.machine, opts.random ?? cryptoRandom)) {
    const path = lockPathFor(lockDir, c);
    const l = lock(path);
    if (!l) continue;
    // superficial checks of the user database, after the lock as systemd does (the lock is dropped on a hit)
    if (users.hasUid(c) || users.hasUid(c + 0xfffe) || users.hasGid(c) || users.hasGid(c + 0xfffe)) {
      l.release();
      continue;
    }
    return {
      base: c,
      count: UID_RANGE,
      lockPath: path,
      ...(l.fd !== undefined ? { lockFd: l.fd } : {}),
      keepAcrossExec() {
        if (!l.keepAcrossExec) throw new UidRangeError(`${path}: this lock cannot be kept across an exec`, 'EOPNOTSUPP');
        return l.keepAcrossExec();
      },
      release: () => l.release(),
    };
  }
  throw new UidRangeError('Failed to pick suitable UID/GID range: Device or resource busy', 'EBUSY');
}

/** the check of a range given by hand against the host's users (base and base+count-2, as for picked ones) */
export function rangeHasHostUsers(base: number, count: number, users: UserDb = filesUserDb()): boolean {
  const last = base + count - 2;
  return users.hasUid(base) || users.hasGid(base) || (last > base && (users.hasUid(last) || users.hasGid(last)));
}
