/* What -x made, removed after a handed-over container (ephemeral.h). */
#define _GNU_SOURCE
#include "ephemeral.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/btrfs.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* What the helper could not remove after a hand-over (FORMAT, printf-like), and who will: the orphan's lock is free
 * once we are gone, so the next -x start beside it or `nspawnctl clean` removes it. */
static void say_left(const char *format, ...) __attribute__((format(printf, 1, 2)));
int ephemeral_left;

static void say_left(const char *format, ...) {
        ephemeral_left = 1;
        char msg[2 * PATH_MAX + 512];
        va_list ap;
        va_start(ap, format);
        int n = vsnprintf(msg, sizeof msg, format, ap);
        va_end(ap);
        if (n >= 0 && (size_t) n < sizeof msg)
                snprintf(msg + n, sizeof msg - (size_t) n, "; the next start or 'nspawnctl clean' removes it.");
        say(msg);
}

/* -x's snapshot: BTRFS_IOC_SNAP_DESTROY by its name in its parent (what @nspawn/btrfs's removal does for a snapshot
 * without subvolumes of its own; one with them stays, and the next start or `nspawnctl clean` removes it, its lock
 * being free). */
static void remove_subvolumes(EphemeralPlan *e) {
        for (size_t i = 0; i < e->subvols.n; i++) {
                char parent[PATH_MAX];
                snprintf(parent, sizeof parent, "%s", e->subvols.v[i]);
                char *slash = strrchr(parent, '/');
                if (!slash || !slash[1])
                        continue;
                *slash = 0;
                const char *name = e->subvols.v[i] + (slash - parent) + 1;
                int fd = open(parent[0] ? parent : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                struct btrfs_ioctl_vol_args a;
                memset(&a, 0, sizeof a);
                snprintf(a.name, sizeof a.name, "%s", name);
                if (fd < 0 || ioctl(fd, BTRFS_IOC_SNAP_DESTROY, &a) < 0)
                        say_left("Failed to remove snapshot %s: %s", e->subvols.v[i], strerror(errno));
                if (fd >= 0)
                        close(fd);
        }
        e->subvols.n = 0;
}

/* ---------- -x's overlay (src/storage.ts, @nspawn/btrfs's makeOverlay()): its mounts and its directory ---------- */

#define EPH_EPHEMERAL_SOURCE "nspawn-ephemeral" /* the source of every mount @nspawn/btrfs makes for -x */
#define EPH_EPHEMERAL_PREFIX ".#machine."
#define EPH_RM_MAX_DEPTH 256 /* one open directory per level: a deeper one is moved up to the top (see eph_rm_tree()) */
/* FS_IOC_GETFLAGS/SETFLAGS and the two flags that stop an unlink (from linux/fs.h, whose other definitions clash
 * with sys/mount.h) */
#define EPH_FS_IOC_GETFLAGS _IOR('f', 1, long)
#define EPH_FS_IOC_SETFLAGS _IOW('f', 2, long)
#define EPH_FS_NOUNLINK_FL 0x30 /* FS_IMMUTABLE_FL | FS_APPEND_FL */

/* mountinfo's octal escapes ("\040" for a space) undone in place */
static void eph_unescape(char *s) {
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
struct eph_mounts {
        int at;
        char type[64];
        char source[256];
        int below;
        char below_path[PATH_MAX];
};

static int eph_mounts_of(const char *path, struct eph_mounts *m) {
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
                eph_unescape(target);
                eph_unescape(source);
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
static void remove_mounts(EphemeralPlan *e) {
        (void) !chdir("/"); /* the helper's working directory was the container's root */
        for (size_t i = 0; i < e->mounts.n; i++) {
                const char *p = e->mounts.v[i];
                struct eph_mounts m;
                if (eph_mounts_of(p, &m) < 0) {
                        say_left("Failed to unmount %s: /proc/self/mountinfo: %s", p, strerror(errno));
                        continue;
                }
                if (!m.at)
                        continue;
                if (strcmp(m.source, EPH_EPHEMERAL_SOURCE) || (strcmp(m.type, "overlay") && strcmp(m.type, "tmpfs"))) {
                        say_left("Failed to unmount %s: refusing, %s (%s) is not nspawn's", p, m.source, m.type);
                        continue;
                }
                if (umount2(p, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
                        say_left("Failed to unmount %s: %s", p, strerror(errno));
        }
        e->mounts.n = 0;
}

struct eph_rm {
        dev_t dev;
        uint64_t mnt; /* statx's mount ID of the tree (have_mnt): a bind mount of the same file system has another */
        int have_mnt;
        int depth;
        int top; /* the tree's directory, where too deep a directory is moved to (moved: how many) */
        int moved;
        unsigned long seq;
        char why[PATH_MAX + 128]; /* the first thing that stayed, and why */
};

static void eph_rm_note(struct eph_rm *r, const char *name, const char *what) {
        if (!r->why[0])
                snprintf(r->why, sizeof r->why, "%s: %s", name, what);
}

static int eph_mnt_id(int fd, uint64_t *id) {
        struct statx sx;
        if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &sx) < 0 || !(sx.stx_mask & STATX_MNT_ID))
                return -1;
        *id = sx.stx_mnt_id;
        return 0;
}

/* chattr -ia of NAME in DFD (a regular file or directory: nothing else is opened) and of DFD itself. */
static void eph_clear_nounlink(int dfd, const char *name, mode_t mode) {
        int fl;
        if (ioctl(dfd, EPH_FS_IOC_GETFLAGS, &fl) == 0 && (fl & EPH_FS_NOUNLINK_FL)) {
                fl &= ~EPH_FS_NOUNLINK_FL;
                (void) ioctl(dfd, EPH_FS_IOC_SETFLAGS, &fl);
        }
        if (!S_ISREG(mode) && !S_ISDIR(mode))
                return;
        int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (S_ISDIR(mode) ? O_DIRECTORY : 0));
        if (fd < 0)
                return;
        struct stat st;
        if (fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == (mode & S_IFMT) && ioctl(fd, EPH_FS_IOC_GETFLAGS, &fl) == 0 && (fl & EPH_FS_NOUNLINK_FL)) {
                fl &= ~EPH_FS_NOUNLINK_FL;
                (void) ioctl(fd, EPH_FS_IOC_SETFLAGS, &fl);
        }
        close(fd);
}

/* unlinkat(), once more after chattr -ia on EPERM; 0 when NAME is gone */
static int eph_unlink(int dfd, const char *name, mode_t mode, struct eph_rm *r) {
        int flags = S_ISDIR(mode) ? AT_REMOVEDIR : 0;
        if (unlinkat(dfd, name, flags) == 0 || errno == ENOENT)
                return 0;
        if (errno == EPERM) {
                eph_clear_nounlink(dfd, name, mode);
                if (unlinkat(dfd, name, flags) == 0 || errno == ENOENT)
                        return 0;
        }
        eph_rm_note(r, name, strerror(errno));
        return -1;
}

/* Empties the directory open as FD, which is on the tree's file system and mount, and closes FD: never follows a
 * symbolic link (it is unlinked), never enters a directory on another file system or mount (it stays). 0 when all
 * is gone. */
static int eph_rm_children(int fd, struct eph_rm *r) {
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                eph_rm_note(r, "(directory)", strerror(errno));
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
                                eph_rm_note(r, n, strerror(errno));
                                left++;
                        }
                        continue;
                }
                if (!S_ISDIR(st.st_mode)) {
                        if (eph_unlink(dfd, n, st.st_mode, r) < 0)
                                left++;
                        continue;
                }
                if (st.st_dev != r->dev) {
                        eph_rm_note(r, n, "another file system is mounted there, left alone");
                        left++;
                        continue;
                }
                if (r->depth >= EPH_RM_MAX_DEPTH) {
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
                                eph_rm_note(r, n, "too deep");
                                left++;
                        }
                        continue;
                }
                int sub = openat(dfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub < 0) {
                        if (errno != ENOENT) {
                                eph_rm_note(r, n, strerror(errno));
                                left++;
                        }
                        continue;
                }
                struct stat st2;
                uint64_t mnt = 0;
                int other_mount = r->have_mnt && eph_mnt_id(sub, &mnt) == 0 && mnt != r->mnt;
                if (fstat(sub, &st2) < 0 || st2.st_dev != r->dev || st2.st_ino != st.st_ino || other_mount) {
                        close(sub);
                        eph_rm_note(r, n, "a mount point or replaced meanwhile, left alone");
                        left++;
                        continue;
                }
                if (eph_rm_children(sub, r) < 0 || eph_unlink(dfd, n, st.st_mode, r) < 0)
                        left++;
        }
        r->depth--;
        closedir(d);
        return left ? -1 : 0;
}

/* Deletes the directory PATH, named `.#machine.*`, with all in it: nothing mounted at or below it, no symbolic link
 * followed, no other mount entered. Returns 0, or -1 with WHY. */
static int eph_rm_tree(const char *path, char *why, size_t whysz) {
        const char *slash = strrchr(path, '/');
        if (path[0] != '/' || !slash || strncmp(slash + 1, EPH_EPHEMERAL_PREFIX, strlen(EPH_EPHEMERAL_PREFIX)) != 0) {
                snprintf(why, whysz, "refusing, not an ephemeral snapshot");
                return -1;
        }
        const char *name = slash + 1;
        char parent[PATH_MAX];
        snprintf(parent, sizeof parent, "%.*s", slash == path ? 1 : (int) (slash - path), path);
        struct eph_mounts m;
        if (eph_mounts_of(path, &m) < 0) {
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
        struct eph_rm r;
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
        r.have_mnt = eph_mnt_id(fd, &r.mnt) == 0;
        /* (the tree on its parent's mount: a mount of its own would have shown in mountinfo, unless made meanwhile) */
        if (r.have_mnt && eph_mnt_id(pfd, &pmnt) == 0 && pmnt != r.mnt) {
                snprintf(why, whysz, "refusing, %s is a mount point", path);
                close(fd);
                close(pfd);
                return -1;
        }
        /* passes over the tree until nothing deeper than EPH_RM_MAX_DEPTH was moved up to its top: any depth with a
         * bounded number of open directories */
        r.top = fd;
        int rc;
        for (;;) {
                r.moved = 0;
                r.why[0] = 0;
                int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd < 0) {
                        eph_rm_note(&r, ".", strerror(errno));
                        rc = -1;
                        break;
                }
                rc = eph_rm_children(dfd, &r);
                if (r.moved == 0)
                        break;
        }
        close(fd);
        if (rc == 0 && eph_unlink(pfd, name, st.st_mode, &r) < 0)
                rc = -1;
        close(pfd);
        if (rc < 0)
                snprintf(why, whysz, "%s", r.why[0] ? r.why : "not empty");
        return rc;
}

static void remove_trees(EphemeralPlan *e) {
        for (size_t i = 0; i < e->trees.n; i++) {
                char why[PATH_MAX + 256];
                if (eph_rm_tree(e->trees.v[i], why, sizeof why) != 0)
                        say_left("Failed to remove %s: %s", e->trees.v[i], why);
        }
        e->trees.n = 0;
}

/* What -x made, after the container: snapshots, then the overlay's mounts and directory (while the locks are ours). */
void ephemeral_remove(EphemeralPlan *e) {
        remove_subvolumes(e);
        remove_mounts(e);
        remove_trees(e);
}
