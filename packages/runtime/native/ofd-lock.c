/*
 * make_lock_file()'s lock: an open-file-description lock on FD, EXCLUSIVE or shared, F_OFD_SETLK (F_OFD_SETLKW with
 * WAIT), flock() where the kernel has no OFD locks, as systemd falls back. Returns 0, or -1 with errno (EAGAIN,
 * EACCES or EWOULDBLOCK: another holds it). Included by the helper (for locks.c and netcfg.c) and by the addon
 * (sys-addon.c): static only.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>

static int ofd_lock(int fd, int exclusive, int wait) {
        struct flock fl = { .l_type = exclusive ? F_WRLCK : F_RDLCK, .l_whence = SEEK_SET };
        int r;
        while ((r = fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl)) < 0 && errno == EINTR) {
        }
        if (r < 0 && errno == EINVAL)
                while ((r = flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB))) < 0 && errno == EINTR) {
                }
        return r;
}
