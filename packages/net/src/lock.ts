/**
 * The zone lock (/run/systemd/nspawn-network-zone) and the state directory's lock, taken as systemd's
 * make_lock_file() takes them: an open-file-description lock (F_OFD_SETLKW, waiting), flock() on a kernel without
 * OFD locks, on a file description that Node opened and keeps (@nspawn/syscall, in this process: no helper
 * process). The lock belongs to the description and lasts until it is closed (or the process dies). The runtime
 * passes its own locker (its native addon), so that a start loads no koffi; alone, this package takes it itself.
 */
import { closeSync, constants, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { ofdLockWait } from '@nspawn/syscall';

export const ZONE_LOCK_PATH = '/run/systemd/nspawn-network-zone';

/** Takes an exclusive lock on the open file description of FD, waiting for it; throws on failure. */
export type FdLocker = (fd: number) => void;

/** The default locker: an OFD lock in this process (flock() where the kernel has no OFD locks), waiting. */
export const ofdLocker: FdLocker = (fd) => ofdLockWait(fd);

/** The default locker under its exported name (historical: it ran util-linux flock(1) before; now `ofdLocker`). */
export const flockLocker: FdLocker = ofdLocker;

/** locks PATH exclusively (waiting), returns the release function */
export function lockFile(path: string, locker: FdLocker = ofdLocker): () => void {
  mkdirSync(dirname(path), { recursive: true });
  const fd = openSync(path, constants.O_CREAT | constants.O_RDWR | constants.O_NOFOLLOW | constants.O_NOCTTY, 0o600);
  try {
    locker(fd);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  let held = true;
  return () => {
    if (!held) return;
    held = false;
    closeSync(fd);
  };
}
