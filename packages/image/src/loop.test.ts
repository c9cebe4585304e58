// attachLoop() against a recording double of the system calls: the ioctl sequence systemd's loop_device_make()
// uses, the LOOP_SET_FD + LOOP_SET_STATUS64 fallback of kernels without LOOP_CONFIGURE (or where it ignores the size
// limit), and the retries when a device is taken under us. The real thing is in test/image.test.ts.
import { describe, expect, it } from 'vitest';
import {
  attachLoop,
  BLKFLSBUF,
  BLKGETSIZE64,
  LO_FLAGS_AUTOCLEAR,
  LO_FLAGS_DIRECT_IO,
  LO_FLAGS_READ_ONLY,
  LOOP_CLR_FD,
  LOOP_CONFIGURE,
  LOOP_CTL_GET_FREE,
  LOOP_GET_STATUS64,
  LOOP_SET_DIRECT_IO,
  LOOP_SET_FD,
  LOOP_SET_STATUS64,
} from './loop.js';
import { type ImageSys, LOCK_EX, LOCK_SH, LOCK_UN, SysError } from './sys.js';

const NAMES: Record<number, string> = {
  [LOOP_CTL_GET_FREE]: 'GET_FREE',
  [LOOP_GET_STATUS64]: 'GET_STATUS64',
  [LOOP_CONFIGURE]: 'CONFIGURE',
  [LOOP_SET_FD]: 'SET_FD',
  [LOOP_SET_STATUS64]: 'SET_STATUS64',
  [LOOP_CLR_FD]: 'CLR_FD',
  [LOOP_SET_DIRECT_IO]: 'SET_DIRECT_IO',
  [BLKGETSIZE64]: 'BLKGETSIZE64',
  [BLKFLSBUF]: 'BLKFLSBUF',
};
const err = (code: string, errno: number) => new SysError(code, errno, code);

interface Kernel {
  /** what LOOP_CONFIGURE does: ok, or an errno name */
  configure?: (dev: number) => 'ok' | string;
  /** the size BLKGETSIZE64 reports after LOOP_CONFIGURE (the 5.8 bug: the whole file) */
  sizeAfterConfigure?: number;
  /** LOOP_GET_STATUS64 on a device before we configure it: bound (another user) or not */
  boundBefore?: (dev: number) => boolean;
  /** numbers LOOP_CTL_GET_FREE hands out, in order */
  free?: number[];
}

function double(k: Kernel = {}) {
  const log: string[] = [];
  const fds = new Map<number, string>();
  let nextFd = 100;
  const free = [...(k.free ?? [7])];
  const configured = new Set<number>();
  const lastInfo: Record<number, Buffer> = {};
  const devOf = (fd: number) => Number(/loop(\d+)$/.exec(fds.get(fd) ?? '')?.[1]);
  const sys: ImageSys = {
    open(path) {
      const fd = nextFd++;
      fds.set(fd, path);
      log.push(`open ${path}`);
      return fd;
    },
    close(fd) {
      log.push(`close ${fds.get(fd)}`);
      fds.delete(fd);
    },
    flock(fd, op) {
      log.push(`flock ${fds.get(fd)} ${op === LOCK_EX ? 'EX' : op === LOCK_SH ? 'SH' : op === LOCK_UN ? 'UN' : op}`);
    },
    ioctl(fd, req, arg) {
      const dev = devOf(fd);
      const name = NAMES[req] ?? req.toString(16);
      log.push(`${name}${Number.isNaN(dev) ? '' : ` loop${dev}`}`);
      switch (req) {
        case LOOP_CTL_GET_FREE:
          return free.shift() ?? 99;
        case LOOP_GET_STATUS64:
          if (configured.has(dev)) {
            (lastInfo[dev] ?? Buffer.alloc(232)).copy(arg as Buffer);
            return 0;
          }
          if (k.boundBefore?.(dev)) return 0;
          throw err('ENXIO', 6);
        case LOOP_CONFIGURE: {
          const r = k.configure?.(dev) ?? 'ok';
          if (r !== 'ok') throw err(r, r === 'EBUSY' ? 16 : 22);
          configured.add(dev);
          lastInfo[dev] = Buffer.from((arg as Buffer).subarray(8, 240));
          return 0;
        }
        case LOOP_SET_FD:
          configured.add(dev);
          return 0;
        case LOOP_SET_STATUS64:
          lastInfo[dev] = Buffer.from(arg as Buffer);
          return 0;
        case BLKGETSIZE64:
          (arg as Buffer).writeBigUInt64LE(BigInt(k.sizeAfterConfigure ?? Number((lastInfo[dev] ?? Buffer.alloc(232)).readBigUInt64LE(32))));
          return 0;
        case LOOP_CLR_FD:
          configured.delete(dev);
          return 0;
        default:
          return 0;
      }
    },
    mount() {},
    umount2() {},
    openat2() {
      return -1;
    },
    mkdirat() {},
  };
  return { sys, log, info: (dev: number) => lastInfo[dev]! };
}

const OPTS = { offset: 1 << 20, size: 32 << 20, readOnly: false, directIo: true };

describe('attachLoop', () => {
  it('LOOP_CONFIGURE with AUTOCLEAR (and DIRECT_IO), offset and size limit, under both locks, then a shared lock', () => {
    const { sys, log, info } = double();
    const l = attachLoop(3, '/images/im.raw', OPTS, sys);
    expect(l).toMatchObject({ path: '/dev/loop7', number: 7, configured: true, offset: 1 << 20, size: 32 << 20 });
    expect(log).toEqual([
      'open /dev/loop-control',
      'flock /dev/loop-control EX',
      'GET_FREE',
      'open /dev/loop7',
      'flock /dev/loop7 EX',
      'GET_STATUS64 loop7',
      'CONFIGURE loop7',
      'BLKGETSIZE64 loop7',
      'flock /dev/loop7 SH',
      'flock /dev/loop-control UN',
      'GET_STATUS64 loop7',
      'close /dev/loop-control',
    ]);
    const i = info(7);
    expect(i.readBigUInt64LE(24)).toBe(BigInt(1 << 20));
    expect(i.readBigUInt64LE(32)).toBe(BigInt(32 << 20));
    expect(i.readUInt32LE(52)).toBe(LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO);
    expect(i.subarray(56, 56 + 14).toString()).toBe('/images/im.raw');
    log.length = 0;
    l.close();
    expect(log).toEqual(['CLR_FD loop7', 'close /dev/loop7']);
  });

  it('read-only: LO_FLAGS_READ_ONLY and the device opened read-only', () => {
    const { sys, info } = double();
    attachLoop(3, '/i', { ...OPTS, readOnly: true, directIo: false }, sys);
    expect(info(7).readUInt32LE(52)).toBe(LO_FLAGS_AUTOCLEAR | LO_FLAGS_READ_ONLY);
  });

  it('a device someone took meanwhile (bound, or LOOP_CONFIGURE busy): the next free one', () => {
    const { sys, log } = double({ free: [4, 5, 6], boundBefore: (d) => d === 4, configure: (d) => (d === 5 ? 'EBUSY' : 'ok') });
    const l = attachLoop(3, '/i', OPTS, sys);
    expect(l.path).toBe('/dev/loop6');
    expect(log.filter((x) => /^close \/dev\/loop\d/.test(x))).toEqual(['close /dev/loop4', 'close /dev/loop5']);
  });

  it('no LOOP_CONFIGURE (kernel < 5.8, EINVAL): LOOP_SET_FD + LOOP_SET_STATUS64 with AUTOCLEAR, then direct I/O; remembered', () => {
    const { sys, log, info } = double({ configure: () => 'EINVAL', free: [2, 3] });
    const l = attachLoop(3, '/i', OPTS, sys);
    expect(l.configured).toBe(false);
    expect(log.filter((x) => /loop2/.test(x) && !x.startsWith('flock') && !x.startsWith('open'))).toEqual([
      'GET_STATUS64 loop2',
      'CONFIGURE loop2',
      'SET_FD loop2',
      'SET_STATUS64 loop2',
      'BLKFLSBUF loop2',
      'SET_DIRECT_IO loop2',
      'GET_STATUS64 loop2',
    ]);
    expect(info(2).readUInt32LE(52)).toBe(LO_FLAGS_AUTOCLEAR); // READ_ONLY and DIRECT_IO cannot be set this way
    log.length = 0;
    attachLoop(3, '/i', OPTS, sys);
    expect(log).not.toContain('CONFIGURE loop3'); // not tried again
  });

  it('LOOP_CONFIGURE ignoring the size limit (5.8): cleared, and the old ioctls on the next device', () => {
    const { sys, log } = double({ sizeAfterConfigure: 999, free: [1, 2] });
    const l = attachLoop(3, '/i', OPTS, sys);
    expect(l).toMatchObject({ path: '/dev/loop2', configured: false });
    expect(log).toContain('CLR_FD loop1');
    expect(log).not.toContain('CONFIGURE loop2');
  });

  it('gives up after 64 busy devices', () => {
    const { sys } = double({ configure: () => 'EBUSY', free: Array.from({ length: 70 }, (_, i) => i) });
    expect(() => attachLoop(3, '/i', OPTS, sys)).toThrow('no free loop device after 64 attempts');
  });
});
