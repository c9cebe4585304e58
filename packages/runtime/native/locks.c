/*
 * Image locks held by the helper. Included by nspawn-helper.c (static functions and this file's state).
 *
 * The plan may list lock files ("lock PATH EXCLUSIVE BUSY-MESSAGE") that the helper takes before anything else and
 * holds for as long as it lives, that is for the container's whole life, also when it runs in nspawn's place
 * (native/handoff.c): make_lock_file() and release_lock_file() of systemd 252, so that systemd-nspawn and nspawn
 * exclude each other. Which files, which mode and what to say when one is busy is src/'s (TypeScript) choice.
 */
#define MAX_LOCKS 8

static struct {
        const char *path[MAX_LOCKS];
        int exclusive[MAX_LOCKS];
        const char *busy[MAX_LOCKS];
        int fd[MAX_LOCKS];
        int n;
        pid_t owner; /* the process that took them (not a forked child) */
} locks;

static int lock_plan_add(const char *path, const char *exclusive, const char *busy) {
        if (locks.n >= MAX_LOCKS)
                return -1;
        locks.path[locks.n] = path;
        locks.exclusive[locks.n] = !strcmp(exclusive, "1");
        locks.busy[locks.n] = busy;
        locks.fd[locks.n++] = -1;
        return 0;
}

/* "lockfd FD PATH EXCLUSIVE": a lock nspawn took (e.g. a picked uid range's) and passed through the exec of a
 * hand-over, not marked close-on-exec: held from now on like the ones taken here, and released the same way. */
static int lock_plan_inherit(const char *fd, const char *path, const char *exclusive) {
        if (locks.n >= MAX_LOCKS)
                return -1;
        int n = (int) strtol(fd, NULL, 10);
        if (n < 3 || fcntl(n, F_GETFD) < 0)
                return -1;
        (void) fcntl(n, F_SETFD, FD_CLOEXEC); /* ours: not for the container */
        locks.path[locks.n] = path;
        locks.exclusive[locks.n] = !strcmp(exclusive, "1");
        locks.busy[locks.n] = NULL;
        locks.fd[locks.n++] = n;
        return 0;
}

/* release_lock_file(): the exclusive holder (or a shared one that can become it) removes the file. */
static void locks_release(void) {
        if (locks.owner != getpid())
                return;
        for (int i = locks.n - 1; i >= 0; i--) {
                if (locks.fd[i] < 0)
                        continue;
                if (locks.exclusive[i] || ofd_lock(locks.fd[i], 1, 0) == 0)
                        (void) unlink(locks.path[i]);
                close(locks.fd[i]);
                locks.fd[i] = -1;
        }
}

/* make_lock_file() for each listed file; on a busy one, ERR gets its message and the ones taken go again. */
static int locks_take(char *err, size_t errsz) {
        locks.owner = getpid();
        for (int i = 0; i < locks.n; i++) {
                if (locks.fd[i] >= 0)
                        continue; /* inherited */
                for (;;) {
                        int fd = open(locks.path[i], O_CREAT | O_RDWR | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
                        if (fd < 0) {
                                snprintf(err, errsz, "Failed to open lock file %s: %s", locks.path[i], strerror(errno));
                                locks_release();
                                return -1;
                        }
                        if (ofd_lock(fd, locks.exclusive[i], 0) < 0) {
                                int e = errno;
                                close(fd);
                                if (e == EAGAIN || e == EACCES || e == EWOULDBLOCK)
                                        snprintf(err, errsz, "%s", locks.busy[i]);
                                else
                                        snprintf(err, errsz, "Failed to lock %s: %s", locks.path[i], strerror(e));
                                locks_release();
                                return -1;
                        }
                        struct stat st;
                        if (fstat(fd, &st) == 0 && st.st_nlink == 0) {
                                /* the last holder removed it between our open and our lock: again */
                                close(fd);
                                continue;
                        }
                        locks.fd[i] = fd;
                        break;
                }
        }
        return 0;
}
