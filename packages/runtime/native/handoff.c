/*
 * Hand-over: the helper in nspawn's place. Included by nspawn-helper.c (static functions and this file's state).
 *
 * When nothing needs Node after the start (src/handoff.ts decides), nspawn replaces its own process with the helper
 * (execve, the plan as argv after "--handoff") instead of starting it as a child and waiting: no fork of Node, no
 * Node tear-down at the end. The helper then does what Node would have done around the container, all of it given
 * as data by the plan: the events Node would have read are acted on here (warnings printed, the ^] escapes sent,
 * the first error kept), SIGINT/SIGTERM/SIGHUP are handled as run.ts handles them, and after the end the scope is
 * removed, the end message printed (texts from the plan) and the exit status taken as run.ts maps it. A reboot
 * (PID 1 killed by SIGHUP) starts nspawn again with the command line the plan carries.
 */

static struct {
        int on;
        int quiet;
        int kill_signal;
        int keep_unit;
        const char *rm[64];
        int n_rm;
        const char *kill_file;
        const char *slices[64];
        int n_slices;
        const char *marker;
        const char *reexec[512];
        int n_reexec;
        const char *subvol[8]; /* btrfs snapshots to destroy at the end (-x) */
        int n_subvol;
        const char *umount[8]; /* -x's overlay: its mount points to unmount at the end, innermost first */
        int n_umount;
        const char *tree[8]; /* -x's overlay: its directories to delete after that */
        int n_tree;
        const char *msg_ok, *msg_fail, *msg_shutdown, *msg_reboot, *msg_signal, *msg_halt;
        const char *signames;
        pid_t pid;
        int halting;
        char error[4200];
        int have_error;
        int left; /* something could not be removed: the run's record stays (ho_keep_records()) */
} ho;

static void ho_say(const char *text) {
        if (!text)
                return;
        (void) write_all(STDERR_FILENO, text, strlen(text));
        (void) write_all(STDERR_FILENO, "\n", 1);
}

/* What the helper could not remove after a hand-over (FORMAT, printf-like), and who will: the orphan's lock is free
 * once we are gone, so the next -x start beside it or `nspawnctl clean` removes it. */
static void ho_say_left(const char *format, ...) __attribute__((format(printf, 1, 2)));
static void ho_say_left(const char *format, ...) {
        ho.left = 1;
        char msg[2 * PATH_MAX + 512];
        va_list ap;
        va_start(ap, format);
        int n = vsnprintf(msg, sizeof msg, format, ap);
        va_end(ap);
        if (n >= 0 && (size_t) n < sizeof msg)
                snprintf(msg + n, sizeof msg - (size_t) n, "; the next start or 'nspawnctl clean' removes it.");
        ho_say(msg);
}

/* TEMPLATE with its "{}" replaced by VALUE. */
static void ho_say_with(const char *template, const char *value) {
        if (!template)
                return;
        const char *at = strstr(template, "{}");
        char buf[4400];
        if (!at)
                snprintf(buf, sizeof buf, "%s", template);
        else
                snprintf(buf, sizeof buf, "%.*s%s%s", (int) (at - template), template, value, at + 2);
        ho_say(buf);
}

/* The name run.ts would print for signal N: the Nth word of the plan's table, else the number. */
static void ho_signal_name(int n, char *out, size_t sz) {
        snprintf(out, sz, "%d", n);
        const char *p = ho.signames;
        for (int i = 1; p && *p; i++) {
                const char *e = strchr(p, ' ');
                size_t len = e ? (size_t) (e - p) : strlen(p);
                if (i == n) {
                        snprintf(out, sz, "%.*s", (int) len, p);
                        return;
                }
                p = e ? e + 1 : NULL;
        }
}

/* One line the helper would have sent Node: acted on here. */
static void ho_event(char *line) {
        size_t n = strlen(line);
        while (n > 0 && line[n - 1] == '\n')
                line[--n] = 0;
        if (!strncmp(line, "pid ", 4))
                ho.pid = (pid_t) strtol(line + 4, NULL, 10);
        else if (!strncmp(line, "error ", 6)) {
                if (!ho.have_error) {
                        snprintf(ho.error, sizeof ho.error, "%s", line + 6);
                        ho.have_error = 1;
                }
        } else if (!strncmp(line, "warning ", 8))
                ho_say(line + 8);
        else if (!strncmp(line, "escape ", 7) && ho.pid > 0) {
                const char *a = line + 7;
                (void) kill(ho.pid, !strcmp(a, "kill") ? SIGKILL : !strcmp(a, "poweroff") ? SIGRTMIN + 4 : SIGRTMIN + 5);
        }
        /* ready, notify, exit, signal: nothing to do here (the end is taken from the wait status) */
}

/* on_orderly_shutdown(): the first SIGINT/SIGTERM sends the kill signal, the next SIGKILL; SIGHUP kills at once. */
static void ho_signal(int signo, pid_t pid) {
        if (pid <= 0)
                return;
        if (signo == SIGHUP) {
                ho.halting = 1;
                (void) kill(pid, SIGKILL);
                return;
        }
        if (signo != SIGINT && signo != SIGTERM)
                return;
        int first = !ho.halting && ho.kill_signal > 0;
        ho.halting = 1;
        (void) kill(pid, first ? ho.kill_signal : SIGKILL);
        if (first)
                ho_say(ho.msg_halt);
}

/* FN on each subdirectory (child cgroup) of DIR; -1 when DIR cannot be read (ENOENT: gone), else how many FN failed. */
static int ho_each_subdir(const char *dir, int (*fn)(const char *sub)) {
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -1;
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return -1;
        }
        int failed = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                char sub[PATH_MAX];
                snprintf(sub, sizeof sub, "%s/%s", dir, de->d_name);
                if (fn(sub) < 0)
                        failed++;
        }
        closedir(d);
        return failed;
}

/* rmdir of DIR and its subdirectories, deepest first; 0 when all are gone. */
static int ho_rmdir_tree(const char *dir) {
        if (rmdir(dir) == 0 || errno == ENOENT)
                return 0;
        int left = ho_each_subdir(dir, ho_rmdir_tree);
        if (left < 0)
                return errno == ENOENT ? 0 : -1;
        if (rmdir(dir) == 0 || errno == ENOENT)
                return left ? -1 : 0;
        return -1;
}

/* SIGKILL to every process in DIR and below (their cgroup.procs). */
static int ho_kill_below(const char *dir) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/cgroup.procs", dir);
        FILE *f = fopen(p, "re");
        if (f) {
                long pid;
                while (fscanf(f, "%ld", &pid) == 1)
                        if (pid > 0)
                                (void) kill((pid_t) pid, SIGKILL);
                fclose(f);
        }
        (void) ho_each_subdir(dir, ho_kill_below);
        return 0;
}

/* A scope directory to remove: Node's, or, when the helper made the cgroup (native/cgroup-ops.c), one it made. */
static int ho_ours(const char *dir) {
        return cgops.n == 0 || cgops_made(dir);
}

/* MachineCgroup.remove(): what is left in the scope is killed (only there), the scope goes in every hierarchy, then
 * machine.slice where an nspawn made it and it is empty. */
static void ho_remove_cgroups(void) {
        uint64_t deadline = now_ms() + 5000;
        int left = 0;
        for (int attempt = 0;; attempt++) {
                left = 0;
                for (int i = 0; i < ho.n_rm; i++)
                        if (ho_ours(ho.rm[i]) && ho_rmdir_tree(ho.rm[i]) < 0)
                                left++;
                if (left == 0 || now_ms() >= deadline)
                        break;
                if (ho.kill_file && access(ho.kill_file, F_OK) == 0)
                        (void) write_small_file(ho.kill_file, "1");
                else
                        for (int i = 0; i < ho.n_rm; i++)
                                if (ho_ours(ho.rm[i]))
                                        ho_kill_below(ho.rm[i]);
                struct timespec ts = { 0, (attempt < 10 ? 2 : 20) * 1000000L };
                nanosleep(&ts, NULL);
        }
        for (int i = 0; i < ho.n_rm; i++)
                if (ho_ours(ho.rm[i]) && access(ho.rm[i], F_OK) == 0) {
                        ho.left = 1;
                        char msg[PATH_MAX + 64];
                        snprintf(msg, sizeof msg, "Failed to remove cgroup %s: it still has processes.", ho.rm[i]);
                        ho_say(msg);
                }
        int slices_left = 0;
        for (int i = 0; i < ho.n_slices; i++)
                if (rmdir(ho.slices[i]) < 0 && errno != ENOENT)
                        slices_left = 1;
        if (ho.marker && ho.n_slices > 0 && !slices_left)
                (void) unlink(ho.marker);
}

/* -x's snapshot: BTRFS_IOC_SNAP_DESTROY by its name in its parent (what @nspawn/btrfs's removal does for a snapshot
 * without subvolumes of its own; one with them stays, and the next start or `nspawnctl clean` removes it, its lock
 * being free). */
static void ho_remove_subvolumes(void) {
        for (int i = 0; i < ho.n_subvol; i++) {
                char parent[PATH_MAX];
                snprintf(parent, sizeof parent, "%s", ho.subvol[i]);
                char *slash = strrchr(parent, '/');
                if (!slash || !slash[1])
                        continue;
                *slash = 0;
                const char *name = ho.subvol[i] + (slash - parent) + 1;
                int fd = open(parent[0] ? parent : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                struct btrfs_ioctl_vol_args a;
                memset(&a, 0, sizeof a);
                snprintf(a.name, sizeof a.name, "%s", name);
                if (fd < 0 || ioctl(fd, BTRFS_IOC_SNAP_DESTROY, &a) < 0)
                        ho_say_left("Failed to remove snapshot %s: %s", ho.subvol[i], strerror(errno));
                if (fd >= 0)
                        close(fd);
        }
        ho.n_subvol = 0;
}

/* ---------- -x's overlay (src/storage.ts, @nspawn/btrfs's makeOverlay()): its mounts and its directory ---------- */

#define HO_EPHEMERAL_SOURCE "nspawn-ephemeral" /* the source of every mount @nspawn/btrfs makes for -x */
#define HO_EPHEMERAL_PREFIX ".#machine."
#define HO_RM_MAX_DEPTH 256 /* one open directory per level: a deeper one is moved up to the top (see ho_rm_tree()) */
/* FS_IOC_GETFLAGS/SETFLAGS and the two flags that stop an unlink (from linux/fs.h, whose other definitions clash
 * with sys/mount.h) */
#define HO_FS_IOC_GETFLAGS _IOR('f', 1, long)
#define HO_FS_IOC_SETFLAGS _IOW('f', 2, long)
#define HO_FS_NOUNLINK_FL 0x30 /* FS_IMMUTABLE_FL | FS_APPEND_FL */

/* mountinfo's octal escapes ("\040" for a space) undone in place */
static void ho_unescape(char *s) {
        char *o = s;
        for (char *p = s; *p;) {
                if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
                        *o++ = (char) ((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
                        p += 4;
                } else
                        *o++ = *p++;
        }
        *o = 0;
}

/* What /proc/self/mountinfo has at PATH: the topmost mount at exactly PATH (type, source), and the first one below. */
struct ho_mounts {
        int at;
        char type[64];
        char source[256];
        int below;
        char below_path[PATH_MAX];
};

static int ho_mounts_of(const char *path, struct ho_mounts *m) {
        memset(m, 0, sizeof *m);
        FILE *f = fopen("/proc/self/mountinfo", "re");
        if (!f)
                return -1;
        size_t len = strlen(path);
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, f) > 0) {
                /* ID PARENT MAJ:MIN ROOT TARGET OPTIONS [OPTIONAL...] - TYPE SOURCE SUPEROPTIONS */
                char *tok[64], *save = NULL;
                int n = 0;
                for (char *t = strtok_r(line, " \n", &save); t && n < 64; t = strtok_r(NULL, " \n", &save))
                        tok[n++] = t;
                int dash = -1;
                for (int i = 6; i < n && dash < 0; i++)
                        if (!strcmp(tok[i], "-"))
                                dash = i;
                if (n < 5 || dash < 0 || dash + 2 >= n)
                        continue;
                char *target = tok[4], *source = tok[dash + 2];
                ho_unescape(target);
                ho_unescape(source);
                if (!strcmp(target, path)) { /* later lines are mounted later: the last one is on top */
                        m->at = 1;
                        snprintf(m->type, sizeof m->type, "%s", tok[dash + 1]);
                        snprintf(m->source, sizeof m->source, "%s", source);
                } else if (!m->below && !strncmp(target, path, len) && target[len] == '/') {
                        m->below = 1;
                        snprintf(m->below_path, sizeof m->below_path, "%s", target);
                }
        }
        free(line);
        fclose(f);
        return 0;
}

/* The overlay on SNAPSHOT/root, then the tmpfs on SNAPSHOT: each only when the mount at exactly that path is one of
 * @nspawn/btrfs's (source "nspawn-ephemeral", type overlay or tmpfs); one already gone is fine. */
static void ho_remove_mounts(void) {
        (void) !chdir("/"); /* the helper's working directory was the container's root */
        for (int i = 0; i < ho.n_umount; i++) {
                const char *p = ho.umount[i];
                struct ho_mounts m;
                if (ho_mounts_of(p, &m) < 0) {
                        ho_say_left("Failed to unmount %s: /proc/self/mountinfo: %s", p, strerror(errno));
                        continue;
                }
                if (!m.at)
                        continue;
                if (strcmp(m.source, HO_EPHEMERAL_SOURCE) || (strcmp(m.type, "overlay") && strcmp(m.type, "tmpfs"))) {
                        ho_say_left("Failed to unmount %s: refusing, %s (%s) is not nspawn's", p, m.source, m.type);
                        continue;
                }
                if (umount2(p, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
                        ho_say_left("Failed to unmount %s: %s", p, strerror(errno));
        }
        ho.n_umount = 0;
}

struct ho_rm {
        dev_t dev;
        uint64_t mnt; /* statx's mount ID of the tree (have_mnt): a bind mount of the same file system has another */
        int have_mnt;
        int depth;
        int top; /* the tree's directory, where too deep a directory is moved to (moved: how many) */
        int moved;
        unsigned long seq;
        char why[PATH_MAX + 128]; /* the first thing that stayed, and why */
};

static void ho_rm_note(struct ho_rm *r, const char *name, const char *what) {
        if (!r->why[0])
                snprintf(r->why, sizeof r->why, "%s: %s", name, what);
}

static int ho_mnt_id(int fd, uint64_t *id) {
        struct statx sx;
        if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &sx) < 0 || !(sx.stx_mask & STATX_MNT_ID))
                return -1;
        *id = sx.stx_mnt_id;
        return 0;
}

/* chattr -ia of NAME in DFD (a regular file or directory: nothing else is opened) and of DFD itself. */
static void ho_clear_nounlink(int dfd, const char *name, mode_t mode) {
        int fl;
        if (ioctl(dfd, HO_FS_IOC_GETFLAGS, &fl) == 0 && (fl & HO_FS_NOUNLINK_FL)) {
                fl &= ~HO_FS_NOUNLINK_FL;
                (void) ioctl(dfd, HO_FS_IOC_SETFLAGS, &fl);
        }
        if (!S_ISREG(mode) && !S_ISDIR(mode))
                return;
        int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (S_ISDIR(mode) ? O_DIRECTORY : 0));
        if (fd < 0)
                return;
        struct stat st;
        if (fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == (mode & S_IFMT) && ioctl(fd, HO_FS_IOC_GETFLAGS, &fl) == 0 && (fl & HO_FS_NOUNLINK_FL)) {
                fl &= ~HO_FS_NOUNLINK_FL;
                (void) ioctl(fd, HO_FS_IOC_SETFLAGS, &fl);
        }
        close(fd);
}

/* unlinkat(), once more after chattr -ia on EPERM; 0 when NAME is gone */
static int ho_unlink(int dfd, const char *name, mode_t mode, struct ho_rm *r) {
        int flags = S_ISDIR(mode) ? AT_REMOVEDIR : 0;
        if (unlinkat(dfd, name, flags) == 0 || errno == ENOENT)
                return 0;
        if (errno == EPERM) {
                ho_clear_nounlink(dfd, name, mode);
                if (unlinkat(dfd, name, flags) == 0 || errno == ENOENT)
                        return 0;
        }
        ho_rm_note(r, name, strerror(errno));
        return -1;
}

/* Empties the directory open as FD, which is on the tree's file system and mount, and closes FD: never follows a
 * symbolic link (it is unlinked), never enters a directory on another file system or mount (it stays). 0 when all
 * is gone. */
static int ho_rm_children(int fd, struct ho_rm *r) {
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                ho_rm_note(r, "(directory)", strerror(errno));
                return -1;
        }
        int left = 0, dfd = dirfd(d);
        struct dirent *de;
        r->depth++;
        while ((de = readdir(d))) {
                const char *n = de->d_name;
                if (!strcmp(n, ".") || !strcmp(n, ".."))
                        continue;
                struct stat st;
                if (fstatat(dfd, n, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno != ENOENT) {
                                ho_rm_note(r, n, strerror(errno));
                                left++;
                        }
                        continue;
                }
                if (!S_ISDIR(st.st_mode)) {
                        if (ho_unlink(dfd, n, st.st_mode, r) < 0)
                                left++;
                        continue;
                }
                if (st.st_dev != r->dev) {
                        ho_rm_note(r, n, "another file system is mounted there, left alone");
                        left++;
                        continue;
                }
                if (r->depth >= HO_RM_MAX_DEPTH) {
                        /* up to the top of the tree (same file system and mount: a rename), for the next pass */
                        int done = 0;
                        for (int k = 0; k < 16 && !done; k++) {
                                char to[64];
                                snprintf(to, sizeof to, ".#deep-%lu", r->seq++);
                                if (syscall(SYS_renameat2, dfd, n, r->top, to, RENAME_NOREPLACE) == 0)
                                        done = 1;
                                else if (errno != EEXIST)
                                        break;
                        }
                        if (done)
                                r->moved++;
                        else {
                                ho_rm_note(r, n, "too deep");
                                left++;
                        }
                        continue;
                }
                int sub = openat(dfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub < 0) {
                        if (errno != ENOENT) {
                                ho_rm_note(r, n, strerror(errno));
                                left++;
                        }
                        continue;
                }
                struct stat st2;
                uint64_t mnt = 0;
                int other_mount = r->have_mnt && ho_mnt_id(sub, &mnt) == 0 && mnt != r->mnt;
                if (fstat(sub, &st2) < 0 || st2.st_dev != r->dev || st2.st_ino != st.st_ino || other_mount) {
                        close(sub);
                        ho_rm_note(r, n, "a mount point or replaced meanwhile, left alone");
                        left++;
                        continue;
                }
                if (ho_rm_children(sub, r) < 0 || ho_unlink(dfd, n, st.st_mode, r) < 0)
                        left++;
        }
        r->depth--;
        closedir(d);
        return left ? -1 : 0;
}

/* Deletes the directory PATH, named `.#machine.*`, with all in it: nothing mounted at or below it, no symbolic link
 * followed, no other mount entered. Returns 0, or -1 with WHY. */
static int ho_rm_tree(const char *path, char *why, size_t whysz) {
        const char *slash = strrchr(path, '/');
        if (path[0] != '/' || !slash || strncmp(slash + 1, HO_EPHEMERAL_PREFIX, strlen(HO_EPHEMERAL_PREFIX)) != 0) {
                snprintf(why, whysz, "refusing, not an ephemeral snapshot");
                return -1;
        }
        const char *name = slash + 1;
        char parent[PATH_MAX];
        snprintf(parent, sizeof parent, "%.*s", slash == path ? 1 : (int) (slash - path), path);
        struct ho_mounts m;
        if (ho_mounts_of(path, &m) < 0) {
                snprintf(why, whysz, "/proc/self/mountinfo: %s", strerror(errno));
                return -1;
        }
        if (m.at || m.below) {
                snprintf(why, whysz, "refusing, %s is a mount point", m.at ? path : m.below_path);
                return -1;
        }
        int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (pfd < 0) {
                if (errno == ENOENT)
                        return 0;
                snprintf(why, whysz, "%s: %s", parent, strerror(errno));
                return -1;
        }
        int fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                int e = errno;
                close(pfd);
                if (e == ENOENT)
                        return 0;
                snprintf(why, whysz, "%s", e == ELOOP || e == ENOTDIR ? "refusing, not a directory" : strerror(e));
                return -1;
        }
        struct ho_rm r;
        memset(&r, 0, sizeof r);
        struct stat st;
        uint64_t pmnt;
        if (fstat(fd, &st) < 0) {
                snprintf(why, whysz, "%s", strerror(errno));
                close(fd);
                close(pfd);
                return -1;
        }
        r.dev = st.st_dev;
        r.have_mnt = ho_mnt_id(fd, &r.mnt) == 0;
        /* (the tree on its parent's mount: a mount of its own would have shown in mountinfo, unless made meanwhile) */
        if (r.have_mnt && ho_mnt_id(pfd, &pmnt) == 0 && pmnt != r.mnt) {
                snprintf(why, whysz, "refusing, %s is a mount point", path);
                close(fd);
                close(pfd);
                return -1;
        }
        /* passes over the tree until nothing deeper than HO_RM_MAX_DEPTH was moved up to its top: any depth with a
         * bounded number of open directories */
        r.top = fd;
        int rc;
        for (;;) {
                r.moved = 0;
                r.why[0] = 0;
                int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd < 0) {
                        ho_rm_note(&r, ".", strerror(errno));
                        rc = -1;
                        break;
                }
                rc = ho_rm_children(dfd, &r);
                if (r.moved == 0)
                        break;
        }
        close(fd);
        if (rc == 0 && ho_unlink(pfd, name, st.st_mode, &r) < 0)
                rc = -1;
        close(pfd);
        if (rc < 0)
                snprintf(why, whysz, "%s", r.why[0] ? r.why : "not empty");
        return rc;
}

static void ho_remove_trees(void) {
        for (int i = 0; i < ho.n_tree; i++) {
                char why[PATH_MAX + 256];
                if (ho_rm_tree(ho.tree[i], why, sizeof why) != 0)
                        ho_say_left("Failed to remove %s: %s", ho.tree[i], why);
        }
        ho.n_tree = 0;
}

/* What -x made, after the container: snapshots, then the overlay's mounts and directory (while the locks are ours). */
static void ho_remove_ephemeral(void) {
        ho_remove_subvolumes();
        ho_remove_mounts();
        ho_remove_trees();
}

/* When something stayed (ho.left), the run's record is kept for the next start or `nspawnctl clean`, unlocked: the
 * lock files that carry content (src/recovery.ts's run record, /run/nspawn/runs/NAME.lock; image and range lock
 * files are empty) are closed without being removed, so that the collection finds what this run left. */
static void ho_keep_records(void) {
        if (!ho.left)
                return;
        for (int i = 0; i < locks.n; i++) {
                struct stat st;
                if (locks.fd[i] < 0 || fstat(locks.fd[i], &st) < 0 || st.st_size == 0)
                        continue;
                close(locks.fd[i]);
                locks.fd[i] = -1;
        }
}

/* The end of a handed-over run: never returns. */
static void ho_finish(int status) __attribute__((noreturn));
static void ho_finish(int status) {
        ho_remove_cgroups();
        ho_remove_ephemeral();
        ho_keep_records();
        locks_release();
        if (ho.have_error) {
                ho_say(ho.error);
                _exit(1);
        }
        char v[64];
        if (WIFEXITED(status)) {
                int code = WEXITSTATUS(status);
                if (!ho.quiet) {
                        snprintf(v, sizeof v, "%d", code);
                        ho_say_with(code == 0 ? ho.msg_ok : ho.msg_fail, v);
                }
                _exit(code == 133 ? 1 : code);
        }
        int sig = WIFSIGNALED(status) ? WTERMSIG(status) : SIGKILL;
        if (sig == SIGINT) {
                if (!ho.quiet)
                        ho_say(ho.msg_shutdown);
                _exit(0);
        }
        if (sig == SIGHUP) {
                if (!ho.quiet)
                        ho_say(ho.msg_reboot);
                if (ho.keep_unit)
                        _exit(133);
                if (ho.n_reexec > 0) {
                        sigset_t none;
                        sigemptyset(&none);
                        sigprocmask(SIG_SETMASK, &none, NULL);
                        execv(ho.reexec[0], (char *const *) ho.reexec);
                        char msg[PATH_MAX + 64];
                        snprintf(msg, sizeof msg, "Failed to start %s again for the reboot: %s", ho.reexec[0], strerror(errno));
                        ho_say(msg);
                }
                _exit(1);
        }
        ho_signal_name(sig, v, sizeof v);
        ho_say_with(ho.msg_signal, v);
        _exit(1);
}

/* A plan key of the hand-over; returns 0 when KEY is not one. */
static int ho_plan_key(const char *key, const char *(*next)(void)) {
        if (!strcmp(key, "handoff")) {
                ho.quiet = !strcmp(next(), "1");
                ho.kill_signal = (int) strtol(next(), NULL, 10);
                ho.keep_unit = !strcmp(next(), "1");
        } else if (!strcmp(key, "horm")) {
                if (ho.n_rm < 64)
                        ho.rm[ho.n_rm++] = next();
        } else if (!strcmp(key, "hokill"))
                ho.kill_file = next();
        else if (!strcmp(key, "hoslice")) {
                if (ho.n_slices < 64)
                        ho.slices[ho.n_slices++] = next();
        } else if (!strcmp(key, "homarker"))
                ho.marker = next();
        else if (!strcmp(key, "horeexec")) {
                if (ho.n_reexec < 510)
                        ho.reexec[ho.n_reexec++] = next();
        } else if (!strcmp(key, "homsg")) {
                const char *kind = next(), *text = next();
                if (!strcmp(kind, "ok"))
                        ho.msg_ok = text;
                else if (!strcmp(kind, "fail"))
                        ho.msg_fail = text;
                else if (!strcmp(kind, "shutdown"))
                        ho.msg_shutdown = text;
                else if (!strcmp(kind, "reboot"))
                        ho.msg_reboot = text;
                else if (!strcmp(kind, "signal"))
                        ho.msg_signal = text;
                else if (!strcmp(kind, "halt"))
                        ho.msg_halt = text;
        } else if (!strcmp(key, "hosubvol")) {
                if (ho.n_subvol < 8)
                        ho.subvol[ho.n_subvol++] = next();
        } else if (!strcmp(key, "houmount")) {
                if (ho.n_umount < 8)
                        ho.umount[ho.n_umount++] = next();
        } else if (!strcmp(key, "hotree")) {
                if (ho.n_tree < 8)
                        ho.tree[ho.n_tree++] = next();
        } else if (!strcmp(key, "hosignames"))
                ho.signames = next();
        else
                return 0;
        return 1;
}
