/* Image locks held by the helper (locks.h). */
#define _GNU_SOURCE
#include "locks.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ofd-lock.h"
#include "util.h"

void locks_add(LocksPlan *l, const char *path, int exclusive, const char *busy) {
        Lock *x = PUSH(l->v, l->n, l->cap);
        x->path = path;
        x->exclusive = exclusive;
        x->busy = busy;
        x->fd = -1;
}

int locks_inherit(LocksPlan *l, int fd, const char *path, int exclusive, char *err, size_t errsz) {
        if (fd < 3 || fcntl(fd, F_GETFD) < 0) {
                snprintf(err, errsz, "lock fd %d (%s) is not open", fd, path);
                return -1;
        }
        (void) fcntl(fd, F_SETFD, FD_CLOEXEC); /* ours: not for the container */
        Lock *x = PUSH(l->v, l->n, l->cap);
        x->path = path;
        x->exclusive = exclusive;
        x->fd = fd;
        return 0;
}

void locks_keep_records(LocksPlan *l) {
        if (l->owner != getpid())
                return;
        for (size_t k = 0; k < l->n; k++) {
                Lock *x = &l->v[k];
                struct stat st;
                if (x->fd < 0 || fstat(x->fd, &st) < 0 || st.st_size == 0)
                        continue;
                close(x->fd);
                x->fd = -1;
        }
}

/* release_lock_file(): the exclusive holder (or a shared one that can become it) removes the file. */
void locks_release(LocksPlan *l) {
        if (l->owner != getpid())
                return;
        for (size_t k = l->n; k-- > 0;) {
                Lock *x = &l->v[k];
                if (x->fd < 0)
                        continue;
                if (x->exclusive || ofd_lock(x->fd, 1, 0) == 0)
                        (void) unlink(x->path);
                close(x->fd);
                x->fd = -1;
        }
}

/* make_lock_file() for each listed file; on a busy one, ERR gets its message and the ones taken go again. */
int locks_take(LocksPlan *l, char *err, size_t errsz) {
        l->owner = getpid();
        for (size_t i = 0; i < l->n; i++) {
                Lock *x = &l->v[i];
                if (x->fd >= 0)
                        continue; /* inherited */
                for (;;) {
                        int fd = open(x->path, O_CREAT | O_RDWR | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
                        if (fd < 0) {
                                snprintf(err, errsz, "Failed to open lock file %s: %s", x->path, strerror(errno));
                                locks_release(l);
                                return -1;
                        }
                        if (ofd_lock(fd, x->exclusive, 0) < 0) {
                                int e = errno;
                                close(fd);
                                if (e == EAGAIN || e == EACCES || e == EWOULDBLOCK)
                                        snprintf(err, errsz, "%s", x->busy);
                                else
                                        snprintf(err, errsz, "Failed to lock %s: %s", x->path, strerror(e));
                                locks_release(l);
                                return -1;
                        }
                        struct stat st;
                        if (fstat(fd, &st) == 0 && st.st_nlink == 0) {
                                /* the last holder removed it between our open and our lock: again */
                                close(fd);
                                continue;
                        }
                        x->fd = fd;
                        break;
                }
        }
        return 0;
}
