import { realSys } from '@nspawn/image';
import type { ImageCalls } from '@nspawn/runtime';
import { describe, expect, it } from 'vitest';
import { imageSysOf } from './image-sys.js';

const errnoError = (message: string, code: string) => Object.assign(new Error(message), { code });

describe('imageSysOf (the image calls through the runtime addon)', () => {
  it('passes the calls on and throws their failures as ImageSys does: "WHAT: CODE", the code and the errno', () => {
    const seen: unknown[] = [];
    const calls: ImageCalls = {
      ioctl: (fd, req, arg) => {
        seen.push(['ioctl', fd, req, arg]);
        if (fd === 9) throw errnoError('No such device or address', 'ENXIO');
        return 3;
      },
      flock: (fd, op) => void seen.push(['flock', fd, op]),
      ofdLock: (fd, shared) => (seen.push(['lock', fd, shared]), !shared),
      fsmount: (fstype, options, attrs) => {
        seen.push(['fsmount', fstype, options, attrs]);
        if (fstype === 'nope') throw errnoError('option bogus: EINVAL', 'EINVAL');
        return 42;
      },
    };
    const kept: number[] = [];
    const { sys, lockSys } = imageSysOf(calls, (fd) => void kept.push(fd), realSys);
    expect(sys.ioctl(4, 0x4c82, 0, 'get free')).toBe(3);
    const e = (() => {
      try {
        sys.ioctl(9, 0x4c05, Buffer.alloc(8), 'LOOP_GET_STATUS64 /dev/loop9');
      } catch (err) {
        return err as Error & { code: string; errno: number };
      }
      throw new Error('no error');
    })();
    expect([e.message, e.code, e.errno]).toEqual(['LOOP_GET_STATUS64 /dev/loop9: ENXIO', 'ENXIO', 6]);
    sys.flock(5, 2, 'lock /dev/loop-control');
    expect(sys.fsmount!('ext4', [['source', '/dev/loop3'], ['ro', null]], 1)).toBe(42);
    expect(() => sys.fsmount!('nope', [['bogus', null]], 0)).toThrow(/^option bogus: EINVAL$/);
    expect([lockSys.ofdLockExclusive(7), lockSys.ofdLock!(7, true)]).toEqual([true, false]);
    sys.keepOnExec!(11);
    lockSys.keepOnExec(12);
    expect(kept).toEqual([11, 12]);
    // what the addon does not do stays @nspawn/image's own
    expect(sys.mount).toBe(realSys.mount);
    expect(seen[0]).toEqual(['ioctl', 4, 0x4c82, 0]);
  });
});
