/*
 * uidrange-tool: the few things @nspawn/uidrange needs that Node cannot do (no fcntl, no xattrs, no new mount API).
 *
 *   uidrange-tool lock [--hold-for PID PATH]
 *                                         fd 3 is an open lock file: take an exclusive open-file-description lock
 *                                         (F_OFD_SETLK, as systemd's make_lock_file()); exit 0 taken, 75 busy.
 *                                         The lock lives on in the open file description the caller keeps open;
 *                                         with --hold-for, also in a holder process that prints its PID and stays
 *                                         until PID ends (then removes PATH) or gets SIGTERM.
 *   uidrange-tool shift PATH SHIFT RANGE  chown the tree to SHIFT (systemd's path_patch_uid() semantics, plus: it
 *                                         never crosses a mount point); prints "changed" or "unchanged".
 *   uidrange-tool idmap SRC DST SHIFT RANGE [probe]
 *                                         mount an idmapped view of SRC (on-disk 0..RANGE-1 seen as SHIFT..) on DST;
 *                                         with "probe" only check that SRC supports it (exit 0 yes, 95 no).
 * Errors: a line on stderr, exit 1 (or 95 for EOPNOTSUPP, 74 for EBADE).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/file.h>
#include <poll.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <linux/mount.h>

#define UID_BUSY_BASE 0xFFFE0000u
#define UID_BUSY_MASK 0xFFFF0000u
#define UID_MAPPED_ROOT 2147483646u /* INT32_MAX-1: host root on an idmapped mount (systemd's make_userns) */

static int die(int code, const char *fmt, const char *arg) {
        fprintf(stderr, fmt, arg, strerror(errno));
        fputc('\n', stderr);
        return code;
}

/* ---------- lock ---------- */

/* The holder: keeps the locked description open until process OWNER ends (or SIGTERM: release() by the owner),
 * then, on the owner's end, removes the lock file if the path still names it (release_lock_file()). An execve() of
 * the owner (nspawn handing over to its helper) does not end it: the PID lives on. */
static int hold(const char *owner_s, const char *path) {
        pid_t owner = (pid_t) strtol(owner_s, NULL, 10);
        int pfd = (int) syscall(SYS_pidfd_open, owner, 0);
        if (pfd < 0)
                return die(1, "pidfd_open(%s): %s", owner_s);
        struct stat ours;
        if (fstat(3, &ours) < 0)
                return die(1, "fstat(%s): %s", path);
        pid_t pid = fork();
        if (pid < 0)
                return die(1, "fork for %s: %s", path);
        if (pid > 0) {
                printf("%d\n", pid);
                return 0;
        }
        /* the holder: off the caller's pipes and session, only fd 3 and the pidfd kept */
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
                dup2(null, 0);
                dup2(null, 1);
                dup2(null, 2);
        }
        setsid();
        (void) !chdir("/"); /* keep no directory of the caller's busy */
        struct pollfd p = { .fd = pfd, .events = POLLIN };
        while (poll(&p, 1, -1) < 0 && errno == EINTR)
                ;
        struct stat now;
        if (stat(path, &now) == 0 && now.st_dev == ours.st_dev && now.st_ino == ours.st_ino)
                (void) unlink(path);
        _exit(0);
}

static int do_lock(int argc, char **argv) {
        struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
        int r = fcntl(3, F_OFD_SETLK, &fl);
        if (r < 0 && errno == EINVAL) /* pre-3.15 kernel: BSD lock, as systemd falls back */
                r = flock(3, LOCK_EX | LOCK_NB);
        if (r < 0) {
                if (errno == EAGAIN || errno == EACCES || errno == EWOULDBLOCK)
                        return 75;
                return die(1, "locking %s: %s", "fd 3");
        }
        if (argc == 5 && !strcmp(argv[2], "--hold-for"))
                return hold(argv[3], argv[4]);
        return 0;
}

/* ---------- shift ---------- */
static uint32_t g_shift;
static int g_changed;

/* getxattrat()/setxattrat() (Linux 6.13): one call per inode instead of openat(O_PATH) + a /proc/self/fd path */
#ifndef SYS_getxattrat
#define SYS_setxattrat 463
#define SYS_getxattrat 464
#endif
struct xargs { uint64_t value; uint32_t size; uint32_t flags; };
static int have_xattrat = 1;

static ssize_t get_acl(int dfd, const char *name, const char *attr, char *buf, size_t sz, char *path, size_t psz) {
        if (!name)
                return fgetxattr(dfd, attr, buf, sz);
        if (have_xattrat) {
                struct xargs a = { .value = (uint64_t) (uintptr_t) buf, .size = (uint32_t) sz };
                ssize_t n = syscall(SYS_getxattrat, dfd, name, AT_SYMLINK_NOFOLLOW, attr, &a, sizeof a);
                if (n >= 0 || errno != ENOSYS)
                        return n;
                have_xattrat = 0;
        }
        int fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -1;
        snprintf(path, psz, "/proc/self/fd/%d", fd);
        ssize_t n = getxattr(path, attr, buf, sz);
        int e = errno;
        close(fd);
        errno = e;
        return n;
}

static int set_acl(int dfd, const char *name, const char *attr, const char *buf, size_t n) {
        if (!name)
                return fsetxattr(dfd, attr, buf, n, 0);
        if (have_xattrat) {
                struct xargs a = { .value = (uint64_t) (uintptr_t) buf, .size = (uint32_t) n };
                if (syscall(SYS_setxattrat, dfd, name, AT_SYMLINK_NOFOLLOW, attr, &a, sizeof a) == 0)
                        return 0;
                if (errno != ENOSYS)
                        return -1;
                have_xattrat = 0;
        }
        int fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -1;
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        int r = setxattr(path, attr, buf, n, 0);
        int e = errno;
        close(fd);
        errno = e;
        return r;
}

/* POSIX ACL xattr: u32 version (2), then {u16 tag, u16 perm, u32 id}; ids of ACL_USER (2) and ACL_GROUP (8) */
static int patch_acl(int dfd, const char *name, const char *attr) {
        char buf[4096 + 8];
        char path[64];
        ssize_t n = get_acl(dfd, name, attr, buf, sizeof buf, path, sizeof path);
        if (n < 0)
                return (errno == ENODATA || errno == EOPNOTSUPP || errno == ENOTSUP) ? 0 : -errno;
        int changed = 0;
        for (ssize_t off = 4; off + 8 <= n; off += 8) {
                uint16_t tag;
                uint32_t id;
                memcpy(&tag, buf + off, 2);
                memcpy(&id, buf + off + 4, 4);
                if (tag != 0x02 && tag != 0x08)
                        continue;
                uint32_t nid = g_shift | (id & 0xFFFFu);
                if (nid != id) {
                        memcpy(buf + off + 4, &nid, 4);
                        changed = 1;
                }
        }
        if (changed && set_acl(dfd, name, attr, buf, (size_t) n) < 0)
                return -errno;
        return changed;
}

/* chown one inode (NAME in DFD, or DFD itself when NAME is NULL), restoring the mode chown() may clear */
static int patch(int dfd, const char *name, const struct stat *st) {
        uint32_t nu = g_shift | ((uint32_t) st->st_uid & 0xFFFFu);
        uint32_t ng = g_shift | ((uint32_t) st->st_gid & 0xFFFFu);
        if (st->st_uid != nu || st->st_gid != ng) {
                int r = name ? fchownat(dfd, name, nu, ng, AT_SYMLINK_NOFOLLOW) : fchown(dfd, nu, ng);
                if (r < 0)
                        return -errno;
                /* chown() clears the set-ID bits (only those): put them back where there were any */
                if (!S_ISLNK(st->st_mode) && (st->st_mode & (S_ISUID | S_ISGID))) {
                        r = name ? fchmodat(dfd, name, st->st_mode & 07777, 0) : fchmod(dfd, st->st_mode & 07777);
                        if (r < 0)
                                return -errno;
                }
                g_changed = 1;
        }
        if (S_ISLNK(st->st_mode))
                return 0;
        int r = patch_acl(dfd, name, "system.posix_acl_access");
        if (r < 0)
                return r;
        if (r > 0)
                g_changed = 1;
        if (S_ISDIR(st->st_mode)) {
                r = patch_acl(dfd, name, "system.posix_acl_default");
                if (r < 0)
                        return r;
                if (r > 0)
                        g_changed = 1;
        }
        return 0;
}

static char g_path[8192];

static int recurse(int fd, const struct stat *st, size_t plen) {
        (void) st;
        DIR *d = fdopendir(fd);
        if (!d) {
                int e = errno;
                close(fd);
                return -e;
        }
        struct dirent *de;
        int r = 0;
        errno = 0;
        while ((de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                struct statx sx;
                if (statx(dirfd(d), de->d_name, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_TYPE | STATX_MODE | STATX_UID | STATX_GID, &sx) < 0) {
                        r = -errno;
                        break;
                }
                /* a mount point (also a bind mount of a file, or of the same file system): never cross it */
                if (sx.stx_attributes & sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)
                        continue;
                struct stat cst = { .st_mode = sx.stx_mode, .st_uid = sx.stx_uid, .st_gid = sx.stx_gid };
                size_t nl = strlen(de->d_name);
                if (plen + nl + 2 < sizeof g_path) {
                        g_path[plen] = '/';
                        memcpy(g_path + plen + 1, de->d_name, nl + 1);
                }
                if (S_ISDIR(cst.st_mode)) {
                        int sfd = openat(dirfd(d), de->d_name, O_RDONLY | O_NONBLOCK | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW | O_NOATIME);
                        if (sfd < 0) {
                                r = -errno;
                                break;
                        }
                        r = recurse(sfd, &cst, plen + nl + 1);
                        if (r < 0)
                                break;
                } else {
                        r = patch(dirfd(d), de->d_name, &cst);
                        if (r < 0)
                                break;
                }
                errno = 0;
        }
        g_path[plen] = 0;
        if (r == 0)
                r = patch(dirfd(d), NULL, st); /* the directory itself last: the top one is the marker */
        closedir(d);
        return r;
}

static int do_shift(const char *path, uint32_t shift, uint32_t range) {
        if ((shift & 0xFFFFu) != 0 || range != 0x10000u) {
                errno = EOPNOTSUPP;
                fprintf(stderr, "Automatic UID/GID adjusting is only supported for UID/GID ranges starting at multiples of 2^16 with a range of 2^16.\n");
                return 95;
        }
        if (shift == UID_BUSY_BASE) {
                fprintf(stderr, "%u is the busy marker range, not a usable UID base.\n", shift);
                return 1;
        }
        int fd = open(path, O_RDONLY | O_NONBLOCK | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW | O_NOATIME);
        if (fd < 0)
                return die(1, "Failed to open %s: %s", path);
        struct stat st;
        if (fstat(fd, &st) < 0)
                return die(1, "Failed to stat %s: %s", path);
        if (((uint32_t) st.st_uid >> 16) != ((uint32_t) st.st_gid >> 16)) {
                fprintf(stderr, "Upper 16 bits of root directory UID and GID do not match.\n");
                return 74;
        }
        if ((((uint32_t) st.st_uid ^ shift) >> 16) == 0) {
                puts("unchanged");
                return 0;
        }
        /* busy marker: an interrupted run leaves the top directory in the busy range, so the next one redoes all */
        if (((uint32_t) st.st_uid & UID_BUSY_MASK) != UID_BUSY_BASE) {
                if (fchown(fd, UID_BUSY_BASE | ((uint32_t) st.st_uid & ~UID_BUSY_MASK), UID_BUSY_BASE | ((uint32_t) st.st_gid & ~UID_BUSY_MASK)) < 0)
                        return die(1, "Failed to mark %s busy: %s", path);
        }
        if (getenv("UIDRANGE_TEST_STOP_AFTER_MARK"))
                _exit(9); /* tests: an interruption right after the marker */
        g_shift = shift;
        snprintf(g_path, sizeof g_path, "%s", path);
        int r = recurse(fd, &st, strlen(g_path));
        if (r < 0) {
                errno = -r;
                return die(1, "Failed to adjust UID/GID shift of %s: %s", g_path);
        }
        puts("changed");
        return 0;
}

/* ---------- idmap ---------- */
#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
#endif
struct attr { uint64_t set, clr, prop, userns; };

static int write_file(const char *p, const char *s) {
        int fd = open(p, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -1;
        ssize_t n = write(fd, s, strlen(s));
        close(fd);
        return n == (ssize_t) strlen(s) ? 0 : -1;
}

/* a user namespace with MAP as uid and gid map, held by a short-lived child (systemd's userns_acquire()) */
static int userns_with_map(const char *map) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return -1;
        pid_t pid = (pid_t) syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL);
        if (pid < 0)
                return -1;
        if (pid == 0) {
                char c;
                close(p[1]);
                (void) !read(p[0], &c, 1);
                _exit(0);
        }
        close(p[0]);
        char path[64];
        int fd = -1;
        snprintf(path, sizeof path, "/proc/%d/uid_map", pid);
        if (write_file(path, map) == 0) {
                snprintf(path, sizeof path, "/proc/%d/gid_map", pid);
                if (write_file(path, map) == 0) {
                        snprintf(path, sizeof path, "/proc/%d/ns/user", pid);
                        fd = open(path, O_RDONLY | O_CLOEXEC);
                }
        }
        int e = errno;
        close(p[1]);
        (void) waitpid(pid, NULL, 0);
        errno = e;
        return fd;
}

static int do_idmap(const char *src, const char *dst, uint32_t shift, uint32_t range, int probe) {
        char map[128];
        snprintf(map, sizeof map, "0 %u %u\n%u 0 1\n", shift, range, UID_MAPPED_ROOT);
        int ufd = userns_with_map(map);
        if (ufd < 0)
                return die(1, "Failed to make a user namespace for %s: %s", src);
        int t = (int) syscall(SYS_open_tree, AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (t < 0)
                return die(1, "open_tree() of %s: %s", src);
        struct attr a = { .set = MOUNT_ATTR_IDMAP, .userns = (uint64_t) ufd };
        if (syscall(SYS_mount_setattr, t, "", AT_EMPTY_PATH, &a, sizeof a) < 0) {
                int e = errno;
                if (e == EINVAL || e == EOPNOTSUPP || e == ENOSYS || e == EPERM) {
                        if (probe)
                                return 95;
                        errno = e;
                        return die(95, "ID mapped mounts are not available for %s: %s", src);
                }
                return die(1, "mount_setattr() of %s: %s", src);
        }
        if (probe)
                return 0;
        if (syscall(SYS_move_mount, t, "", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                return die(1, "move_mount() onto %s: %s", dst);
        return 0;
}

static uint32_t num(const char *s) {
        char *e;
        errno = 0;
        unsigned long v = strtoul(s, &e, 10);
        if (errno || *e || !*s || v > 0xFFFFFFFFul) {
                fprintf(stderr, "uidrange-tool: bad number %s\n", s);
                exit(2);
        }
        return (uint32_t) v;
}

int main(int argc, char **argv) {
        if (argc >= 2 && !strcmp(argv[1], "lock"))
                return do_lock(argc, argv);
        if (argc == 5 && !strcmp(argv[1], "shift"))
                return do_shift(argv[2], num(argv[3]), num(argv[4]));
        if ((argc == 6 || argc == 7) && !strcmp(argv[1], "idmap"))
                return do_idmap(argv[2], argv[3], num(argv[4]), num(argv[5]), argc == 7);
        fprintf(stderr, "usage: uidrange-tool lock | shift PATH SHIFT RANGE | idmap SRC DST SHIFT RANGE [probe]\n");
        return 2;
}
