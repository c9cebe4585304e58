/**
 * The zone lock (/run/systemd/nspawn-network-zone). systemd takes it with an open-file-description lock
 * (F_OFD_SETLKW). Node has no fcntl(), so the lock is taken by a short-lived child on a file description that
 * Node opened and keeps: the lock belongs to the description and lasts until Node closes it (or dies).
 * The runtime passes its native helper's locker (OFD, interlocks with systemd-nspawn); alone, this package
 * falls back to util-linux flock(1) (BSD lock: interlocks between nspawn instances only).
 */
import { spawnSync } from 'node:child_process';
import { closeSync, constants, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';

export const ZONE_LOCK_PATH = '/run/systemd/nspawn-network-zone';

/** Takes an exclusive lock on the file at fd 3 of a child it spawns; throws on failure. */
export type FdLocker = (fd: number) => void;

export const flockLocker: FdLocker = (fd) => {
  const r = spawnSync('flock', ['-x', '3'], { stdio: ['ignore', 'ignore', 'pipe', fd] });
  if (r.status !== 0) throw new Error(`flock failed: ${r.stderr?.toString().trim() || r.error?.message || `exit ${r.status}`}`);
};

/** locks PATH exclusively (waiting), returns the release function */
export function lockFile(path: string, locker: FdLocker = flockLocker): () => void {
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
