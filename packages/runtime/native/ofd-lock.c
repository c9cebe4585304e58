/* make_lock_file()'s lock (ofd-lock.h). */
#define _GNU_SOURCE
#include "ofd-lock.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>

int ofd_lock(int fd, int exclusive, int wait) {
        struct flock fl = { .l_type = exclusive ? F_WRLCK : F_RDLCK, .l_whence = SEEK_SET };
        int r;
        while ((r = fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl)) < 0 && errno == EINTR) {
        }
        if (r < 0 && errno == EINVAL)
                while ((r = flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB))) < 0 && errno == EINTR) {
                }
        return r;
}
