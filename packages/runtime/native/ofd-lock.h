/*
 * make_lock_file()'s lock: an open-file-description lock, as systemd takes it. Shared by the helper (locks.c,
 * netcfg.c) and the sys addon (sys-addon.c), each linking ofd-lock.c.
 */
#pragma once

/* An OFD lock on FD, EXCLUSIVE or shared, F_OFD_SETLK (F_OFD_SETLKW with WAIT), flock() where the kernel has no OFD
 * locks, as systemd falls back. Returns 0, or -1 with errno (EAGAIN, EACCES or EWOULDBLOCK: another holds it). */
int ofd_lock(int fd, int exclusive, int wait);
