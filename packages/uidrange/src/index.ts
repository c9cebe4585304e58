export { siphash24 } from './siphash.js';
export {
  UID_BASE_MIN,
  UID_BASE_MAX,
  UID_RANGE,
  UID_BUSY_BASE,
  LOCK_DIR,
  MAX_TRIES,
  MACHINE_HASH_KEY,
  reduceCandidate,
  machineCandidate,
  isPickable,
  ownerBase,
  candidates,
  UidRangeError,
} from './candidates.js';
export { pickRange, rangeHasHostUsers, type PickOptions, type PickedRange } from './pick.js';
export { tryLockFile, lockPathFor, type LockSys, type RangeLock } from './lock.js';
export { filesUserDb, parseIdFile, type UserDb } from './users.js';
export { shiftTree, checkShiftable, type ShiftResult } from './shift.js';
export { idmappedMount, idmapSupported, knownIdmapFs } from './idmap.js';
export { resolveOwnership, type Ownership, type OwnershipRequest, type OwnershipDecision } from './ownership.js';
export { SysError } from './sys.js';
export { usernsWithMap } from './idmap.js';
