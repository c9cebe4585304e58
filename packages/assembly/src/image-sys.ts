/**
 * @nspawn/image's system calls through the runtime's native addon (nspawn-sys.node, loaded by every start for its
 * hand-over) instead of koffi: the loop devices' ioctls and /dev/loop-control's flock(), the image lock's OFD locks,
 * the view's detached mounts and FD_CLOEXEC. koffi's load and first call cost several milliseconds of an `nspawn -i`
 * start. The rest of ImageSys (mount, umount2, openat2, mkdirat: @nspawn/image's own mounts, which a start does not
 * make) stays koffi's. Undefined without the addon (or with one built before these calls): @nspawn/image's own then.
 */
import type { ImageSys, OpenImageOptions } from '@nspawn/image';
import { type ImageCalls, sysAddon } from '@nspawn/runtime';

/** the image lock's calls (@nspawn/syscall's LockSys) */
type LockSys = NonNullable<OpenImageOptions['lockSys']>;

/** an Error of the addon (its code the errno name) as ImageSys throws it: a SysError-like error, "WHAT: CODE" */
function sysError(e: unknown, what: string): Error {
  const code = (e as { code?: unknown }).code;
  if (typeof code !== 'string') return e as Error;
  const err = Object.assign(new Error(`${what}: ${code}`), { name: 'SysError', code });
  // (the number when asked for: node:os is not loaded for the errors a loop device probe expects)
  return Object.defineProperty(err, 'errno', { get: () => (process.getBuiltinModule('node:os').constants.errno as Record<string, number>)[code] ?? 0 });
}

/** ImageSys and LockSys over CALLS, the rest of ImageSys BASE's. */
export function imageSysOf(calls: ImageCalls, keepOnExec: (fd: number) => void, base: ImageSys): { sys: ImageSys; lockSys: LockSys } {
  const sys: ImageSys = {
    ...base,
    ioctl(fd, req, arg, what) {
      try {
        return calls.ioctl(fd, req, arg);
      } catch (e) {
        throw sysError(e, what);
      }
    },
    flock(fd, op, what) {
      try {
        calls.flock(fd, op);
      } catch (e) {
        throw sysError(e, what);
      }
    },
    fsmount(fstype, options, attrs) {
      try {
        return calls.fsmount(fstype, options, attrs);
      } catch (e) {
        // (the addon's message is "STEP: CODE" already)
        throw sysError(e, (e as Error).message.replace(/: [A-Z0-9]+$/, ''));
      }
    },
    keepOnExec,
  };
  const lockSys: LockSys = {
    ofdLockExclusive: (fd) => calls.ofdLock(fd, false),
    ofdLock: (fd, shared) => calls.ofdLock(fd, shared),
    keepOnExec,
  };
  return { sys, lockSys };
}

/** imageSysOf() of this process's addon, or undefined without one that has the image calls. */
export function addonImageSys(base: ImageSys): { sys: ImageSys; lockSys: LockSys } | undefined {
  const addon = sysAddon();
  return addon?.image ? imageSysOf(addon.image, addon.keepOnExec, base) : undefined;
}
