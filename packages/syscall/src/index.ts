export { SysError, errnoName, errnoNumber, errCode, sysError, sysErrorOf } from './errors.js';
export { koffi, koffiLoaded, libcFn, libcTable, errno, lastError, check, cstr, nativeBuffer, type Fn, type Koffi } from './koffi.js';
export {
  lockFd,
  lockHeldElsewhere,
  ofdLockExclusive,
  ofdLockWait,
  keepOnExec,
  isCloseOnExec,
  makeLockFile,
  type LockMethod,
  type LockOptions,
  type LockSys,
  type LockFile,
  type LockFileOptions,
} from './lock.js';
export * from './fs.js';
export { removeTreeAt, type RemoveAtResult } from './remove.js';
export { siphash24, hexKey } from './siphash.js';
export { pidfdCalls, pidfdGetfd, type PidfdCalls } from './pidfd.js';
