/**
 * Loop devices as systemd 252's loop_device_make() sets them up (src/shared/loop-util.c), one per partition, by
 * offset and size limit (no partition scanning, no /dev/loopNpM: this works without udev): LOOP_CTL_GET_FREE on
 * /dev/loop-control (locked, to serialize allocations with systemd), LOOP_CONFIGURE with LO_FLAGS_AUTOCLEAR (and
 * READ_ONLY, DIRECT_IO, a 4096-byte block size for 4K-sector images), verified, and LOOP_SET_FD + LOOP_SET_STATUS64
 * on kernels without LOOP_CONFIGURE (before 5.8) or where it ignored the size limit. AUTOCLEAR ties the device to
 * its last user: the descriptor kept here and the mounts of its file system; when both are gone, whatever way its
 * owner went (kill -9 included), the kernel detaches it.
 */
import { constants as fsc, existsSync, readdirSync, readFileSync } from 'node:fs';
import { errCode, type ImageSys, LOCK_EX, LOCK_SH, LOCK_UN, realSys, SysError } from './sys.js';

export const LOOP_SET_FD = 0x4c00;
export const LOOP_CLR_FD = 0x4c01;
export const LOOP_SET_STATUS64 = 0x4c04;
export const LOOP_GET_STATUS64 = 0x4c05;
export const LOOP_SET_DIRECT_IO = 0x4c08;
export const LOOP_CONFIGURE = 0x4c0a;
export const LOOP_CTL_GET_FREE = 0x4c82;
export const BLKGETSIZE64 = 0x80081272;
export const BLKFLSBUF = 0x1261;
export const LO_FLAGS_READ_ONLY = 1;
export const LO_FLAGS_AUTOCLEAR = 4;
export const LO_FLAGS_PARTSCAN = 8;
export const LO_FLAGS_DIRECT_IO = 16;
const LOOP_SET_STATUS_SETTABLE_FLAGS = LO_FLAGS_AUTOCLEAR | LO_FLAGS_PARTSCAN;
const LO_NAME_SIZE = 64;
const INFO_SIZE = 232;
const CONFIG_SIZE = 304;

export interface LoopDevice {
  /** /dev/loopN */
  readonly path: string;
  readonly number: number;
  /** the open device; closing it, with no mount of it left, detaches the device (AUTOCLEAR) */
  readonly fd: number;
  /** the image file (or block device) behind it */
  readonly backingFile: string;
  readonly offset: number;
  readonly size: number;
  readonly readOnly: boolean;
  /** the kernel took LO_FLAGS_DIRECT_IO */
  readonly directIo: boolean;
  /** LOOP_CONFIGURE was used (else the LOOP_SET_FD + LOOP_SET_STATUS64 fallback) */
  readonly configured: boolean;
  /** Clears the device if nothing else uses it (else the kernel does when the last mount goes) and closes it. */
  close(): void;
}

export interface LoopOptions {
  /** byte offset of the partition in the backing file */
  offset: number;
  /** its size in bytes (0: to the end) */
  size: number;
  readOnly: boolean;
  /** logical block size of the device (4096 for 4K-sector images; 0: the default, 512) */
  blockSize?: number;
  /** ask for LO_FLAGS_DIRECT_IO (the backing descriptor should be open with O_DIRECT) */
  directIo?: boolean;
}

// LOOP_CONFIGURE was refused (kernel < 5.8) or ignored the size limit (5.8): remember it, as systemd does (per
// system-call implementation, so that a test double starts afresh)
const loopConfigureBroken = new WeakSet<ImageSys>();

function info64(backing: string, o: LoopOptions, flags: number): Buffer {
  const b = Buffer.alloc(INFO_SIZE);
  b.writeBigUInt64LE(BigInt(o.offset), 24);
  b.writeBigUInt64LE(BigInt(o.size), 32);
  b.writeUInt32LE(flags, 52);
  Buffer.from(backing).copy(b, 56, 0, LO_NAME_SIZE - 1);
  return b;
}

/** Is the loop device on FD bound to a file? (LOOP_GET_STATUS64 fails with ENXIO when it is not.) */
function isBound(sys: ImageSys, fd: number): boolean {
  try {
    sys.ioctl(fd, LOOP_GET_STATUS64, Buffer.alloc(INFO_SIZE), 'LOOP_GET_STATUS64');
    return true;
  } catch (e) {
    if (errCode(e) === 'ENXIO') return false;
    throw e;
  }
}

function deviceSize(sys: ImageSys, fd: number): number {
  const b = Buffer.alloc(8);
  sys.ioctl(fd, BLKGETSIZE64, b, 'BLKGETSIZE64');
  return Number(b.readBigUInt64LE(0));
}

/** The size of an open block device (BLKGETSIZE64). */
export function blockDeviceSize(fd: number, sys: ImageSys = realSys): number {
  return deviceSize(sys, fd);
}

type Attempt = { fd: number; configured: boolean } | 'busy';

function configure(sys: ImageSys, nr: number, backingFd: number, backing: string, o: LoopOptions): Attempt {
  const path = `/dev/loop${nr}`;
  let fd: number;
  try {
    fd = sys.open(path, (o.readOnly ? fsc.O_RDONLY : fsc.O_RDWR) | fsc.O_NONBLOCK | fsc.O_NOCTTY);
  } catch (e) {
    if (errCode(e) === 'ENOENT' || errCode(e) === 'ENXIO' || errCode(e) === 'ENODEV') return 'busy'; // removed meanwhile
    throw e;
  }
  let ok = false;
  try {
    // the BSD lock keeps udev (where there is one) from probing the device while we set it up
    sys.flock(fd, LOCK_EX, `lock ${path}`);
    if (isBound(sys, fd)) return 'busy'; // someone attached a file without the lock
    const flags = LO_FLAGS_AUTOCLEAR | (o.readOnly ? LO_FLAGS_READ_ONLY : 0) | (o.directIo ? LO_FLAGS_DIRECT_IO : 0);
    if (!loopConfigureBroken.has(sys)) {
      const cfg = Buffer.alloc(CONFIG_SIZE);
      cfg.writeUInt32LE(backingFd, 0);
      cfg.writeUInt32LE(o.blockSize ?? 0, 4);
      info64(backing, o, flags).copy(cfg, 8);
      try {
        sys.ioctl(fd, LOOP_CONFIGURE, cfg, `LOOP_CONFIGURE ${path}`);
        if (o.size !== 0 && deviceSize(sys, fd) !== o.size) {
          // kernel 5.8 ignored lo_sizelimit: use the old ioctls from now on, on another device (LOOP_CLR_FD is async)
          loopConfigureBroken.add(sys);
          sys.ioctl(fd, LOOP_CLR_FD, 0, `LOOP_CLR_FD ${path}`);
          return 'busy';
        }
        sys.flock(fd, LOCK_SH, `lock ${path}`);
        ok = true;
        return { fd, configured: true };
      } catch (e) {
        const c = errCode(e);
        if (c === 'EBUSY') return 'busy';
        if (c !== 'EINVAL' && c !== 'ENOTTY' && c !== 'EOPNOTSUPP') throw e;
        loopConfigureBroken.add(sys); // the kernel has no LOOP_CONFIGURE: it answers EINVAL for unknown loop ioctls
      }
    }
    try {
      sys.ioctl(fd, LOOP_SET_FD, backingFd, `LOOP_SET_FD ${path}`);
    } catch (e) {
      if (errCode(e) === 'EBUSY') return 'busy';
      throw e;
    }
    try {
      const info = info64(backing, o, flags & LOOP_SET_STATUS_SETTABLE_FLAGS);
      for (let n = 0; ; n++) {
        try {
          sys.ioctl(fd, LOOP_SET_STATUS64, info, `LOOP_SET_STATUS64 ${path}`);
          break;
        } catch (e) {
          if (errCode(e) !== 'EAGAIN' || n >= 64) throw e;
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10 + Math.floor(Math.random() * 20));
        }
      }
      try {
        sys.ioctl(fd, BLKFLSBUF, 0, 'BLKFLSBUF');
      } catch {
        // the buffer cache flush is a work-around for old kernels only
      }
      if (o.directIo)
        try {
          sys.ioctl(fd, LOOP_SET_DIRECT_IO, 1, 'LOOP_SET_DIRECT_IO');
        } catch {
          // buffered I/O then
        }
    } catch (e) {
      try {
        sys.ioctl(fd, LOOP_CLR_FD, 0, 'LOOP_CLR_FD');
      } catch {
        // nothing to undo
      }
      throw e;
    }
    sys.flock(fd, LOCK_SH, `lock ${path}`);
    ok = true;
    return { fd, configured: false };
  } finally {
    if (!ok) sys.close(fd);
  }
}

/**
 * Attaches BACKING (an open file or block device, BACKINGPATH its name for /sys and messages) to a free loop device
 * for the byte range of OPTS. Retries with another device when one is taken under us, as systemd does (up to 64
 * times). Needs root and /dev/loop-control; the device node appears in devtmpfs without udev.
 */
export function attachLoop(backingFd: number, backingPath: string, opts: LoopOptions, sys: ImageSys = realSys): LoopDevice {
  const control = sys.open('/dev/loop-control', fsc.O_RDWR | fsc.O_NOCTTY);
  try {
    for (let attempt = 0; ; attempt++) {
      sys.flock(control, LOCK_EX, 'lock /dev/loop-control');
      let r: Attempt;
      let nr: number;
      try {
        nr = sys.ioctl(control, LOOP_CTL_GET_FREE, 0, 'LOOP_CTL_GET_FREE');
        r = configure(sys, nr, backingFd, backingPath, opts);
      } finally {
        sys.flock(control, LOCK_UN, 'unlock /dev/loop-control');
      }
      if (r === 'busy') {
        if (attempt >= 63) throw new SysError('no free loop device after 64 attempts', 16, 'EBUSY');
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Math.floor(Math.random() * (10 + (240 * attempt) / 64)));
        continue;
      }
      const { fd, configured } = r;
      let directIo = false;
      try {
        const st = Buffer.alloc(INFO_SIZE);
        sys.ioctl(fd, LOOP_GET_STATUS64, st, 'LOOP_GET_STATUS64');
        directIo = (st.readUInt32LE(52) & LO_FLAGS_DIRECT_IO) !== 0;
      } catch {
        // unknown: report buffered
      }
      let open = true;
      return {
        path: `/dev/loop${nr}`,
        number: nr,
        fd,
        backingFile: backingPath,
        offset: opts.offset,
        size: opts.size,
        readOnly: opts.readOnly,
        directIo,
        configured,
        close() {
          if (!open) return;
          open = false;
          try {
            // clears it now when nothing else has it open; with a mount left the kernel only sets AUTOCLEAR again
            sys.ioctl(fd, LOOP_CLR_FD, 0, 'LOOP_CLR_FD');
          } catch {
            // already cleared, or still in use: AUTOCLEAR detaches it with its last user
          }
          sys.close(fd);
        },
      };
    }
  } finally {
    sys.close(control);
  }
}

export interface LoopInfo {
  readonly path: string;
  readonly backingFile: string;
  readonly offset: number;
  readonly size: number;
  readonly autoclear: boolean;
}

/**
 * The loop devices bound now, from /sys/block/loop* (no ioctl, no open): to find the ones of an image (by backing
 * file) without touching anyone else's.
 */
export function boundLoopDevices(): LoopInfo[] {
  const out: LoopInfo[] = [];
  let names: string[];
  try {
    names = readdirSync('/sys/block').filter((n) => /^loop\d+$/.test(n));
  } catch {
    return out;
  }
  for (const n of names) {
    const dir = `/sys/block/${n}/loop`;
    if (!existsSync(dir)) continue;
    const read = (f: string) => {
      try {
        return readFileSync(`${dir}/${f}`, 'utf8').trim();
      } catch {
        return '';
      }
    };
    const backingFile = read('backing_file');
    if (!backingFile) continue;
    out.push({
      path: `/dev/${n}`,
      backingFile,
      offset: Number(read('offset') || 0),
      size: Number(read('sizelimit') || 0),
      autoclear: read('autoclear') === '1',
    });
  }
  return out;
}
