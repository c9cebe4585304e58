/* The container's file system setup (mount.h). */
#define _GNU_SOURCE
#include "mount.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "control.h"
#include "util.h"

/* ---------- path resolution inside the container root ---------- */

static int root_fd = -1;

void mount_set_root(int fd) {
        root_fd = fd;
}

int open_in_root(const char *path, int oflags) {
        struct open_how how = {
                .flags = (uint64_t) (oflags | O_CLOEXEC),
                .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        };
        return (int) syscall(SYS_openat2, root_fd, path, &how, sizeof how);
}

/* PATH's parent into PARENT and its last component into *BASE; -1 (ENAMETOOLONG) when the parent does not fit */
static int split_path(const char *path, char *parent, size_t psz, const char **base) {
        const char *slash = strrchr(path, '/');
        size_t n = slash ? (size_t) (slash - path) : 0;
        if (n == 0) {
                snprintf(parent, psz, "/");
        } else {
                if (n >= psz) {
                        errno = ENAMETOOLONG;
                        return -1;
                }
                memcpy(parent, path, n);
                parent[n] = 0;
        }
        *base = slash ? slash + 1 : path;
        return 0;
}

/* mkdir -p inside the root; returns an O_PATH fd of the directory. */
static int mkdir_p_in_root(const char *path, mode_t mode) {
        int fd = open_in_root(path, O_PATH | O_DIRECTORY);
        if (fd >= 0 || errno != ENOENT)
                return fd;
        char parent[PATH_MAX];
        const char *base;
        if (split_path(path, parent, sizeof parent, &base) < 0)
                return -1;
        int pfd = mkdir_p_in_root(parent, 0755);
        if (pfd < 0)
                return -1;
        if (mkdirat(pfd, base, mode) < 0) {
                if (errno != EEXIST) {
                        int e = errno;
                        close(pfd);
                        errno = e;
                        return -1;
                }
        } else
                (void) fchmodat(pfd, base, mode & 07777, 0); /* a new directory gets MODE whatever the umask, as in systemd */
        close(pfd);
        return open_in_root(path, O_PATH | O_DIRECTORY);
}

static int touch_in_root(const char *path, mode_t mode) {
        int fd = open_in_root(path, O_PATH);
        if (fd >= 0 || errno != ENOENT)
                return fd;
        char parent[PATH_MAX];
        const char *base;
        if (split_path(path, parent, sizeof parent, &base) < 0)
                return -1;
        int pfd = mkdir_p_in_root(parent, 0755);
        if (pfd < 0)
                return -1;
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", pfd);
        int dfd = open(proc, O_DIRECTORY | O_CLOEXEC);
        close(pfd);
        if (dfd < 0)
                return -1;
        int f = openat(dfd, base, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, mode);
        close(dfd);
        if (f < 0 && errno != EEXIST)
                return -1;
        if (f >= 0)
                close(f);
        return open_in_root(path, O_PATH);
}

/* An fd of the parent directory (openable, not O_PATH) of PATH inside the root, created when missing. */
int parent_dir_fd(const char *path, const char **base) {
        char parent[PATH_MAX];
        if (split_path(path, parent, sizeof parent, base) < 0)
                return -1;
        int pfd = mkdir_p_in_root(parent, 0755);
        if (pfd < 0)
                return -1;
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", pfd);
        int dfd = open(proc, O_DIRECTORY | O_CLOEXEC);
        int e = errno;
        close(pfd);
        errno = e;
        return dfd;
}

/* The copy of a host source was made before the clone, so its mount IDs are older than the container's other
 * mounts and /proc/self/mountinfo (ordered by mount ID on current kernels) would list it first. Once attached,
 * it is replaced by a fresh copy of itself, so that the mount table keeps the order of the ops. Best effort:
 * on failure the first copy stays. */
static void renew_attached_tree(const char *target, int recursive) {
        int at = open_in_root(target, O_PATH);
        if (at < 0)
                return;
        int fresh = (int) syscall(SYS_open_tree, at, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0));
        close(at);
        if (fresh < 0)
                return;
        char p[64];
        at = open_in_root(target, O_PATH);
        if (at >= 0) {
                snprintf(p, sizeof p, "/proc/self/fd/%d", at);
                if (umount2(p, MNT_DETACH) == 0) {
                        close(at);
                        at = open_in_root(target, O_PATH);
                        if (at >= 0)
                                (void) syscall(SYS_move_mount, fresh, "", at, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
                }
                if (at >= 0)
                        close(at);
        }
        close(fresh);
}


/* ---------- mount operations ---------- */

void run_op(const Op *o) {
        int optional = (o->flags & OPF_OPTIONAL) != 0;
        char fdpath[64], srcpath[64];
        int tfd = -1, sfd = -1;
        const char *src = *o->src ? o->src : NULL;

#define FAIL(...)                                           \
        do {                                                \
                if (optional) {                             \
                        if (o->flags & OPF_WARN)            \
                                child_warn_errno(__VA_ARGS__); \
                        goto out;                           \
                }                                           \
                child_die_errno(__VA_ARGS__);               \
        } while (0)

        if (o->kind == OP_MOUNT || o->kind == OP_REMOUNT || o->kind == OP_SETATTR) {
                if (o->skip)
                        goto out;
                unsigned mk = o->flags & (OPF_MKDIR | OPF_TOUCH);
                if ((o->flags & OPF_MKPOINT) && src) {
                        struct stat st;
                        if (o->tree_fd >= 0 ? fstat(o->tree_fd, &st) < 0 : stat(src, &st) < 0)
                                FAIL("Failed to stat %s", o->src);
                        mk = S_ISDIR(st.st_mode) ? OPF_MKDIR : OPF_TOUCH;
                }
                if (mk & OPF_MKDIR)
                        tfd = mkdir_p_in_root(o->target, o->mode ? o->mode : 0755);
                else if (mk & OPF_TOUCH)
                        tfd = touch_in_root(o->target, o->mode ? o->mode : 0644);
                else
                        tfd = open_in_root(o->target, O_PATH);
                if (tfd < 0 && (o->flags & OPF_WARN)) {
                        /* like systemd: a mount point that cannot be made (read-only tree) is not an error by
                         * itself; the mount then fails on the missing target, and that is what gets reported */
                        tfd = open_in_root(o->target, O_PATH);
                        if (tfd < 0)
                                FAIL("Failed to mount %s (type %s) on %s%s (%s \"%s\")", o->src, *o->fstype ? o->fstype : "n/a",
                                     plan.root, o->target, (o->mflags & MS_BIND) ? "MS_BIND" : "", o->data);
                }
                if (tfd < 0)
                        FAIL("preparing mount point %s", o->target);
                if (src && (o->flags & OPF_SRC_IN_ROOT)) {
                        sfd = open_in_root(src, O_PATH);
                        if (sfd < 0) {
                                if ((o->flags & OPF_IF_EXISTS) && errno == ENOENT)
                                        goto out;
                                FAIL("resolving %s in the container", src);
                        }
                        snprintf(srcpath, sizeof srcpath, "/proc/self/fd/%d", sfd);
                        src = srcpath;
                }
                snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", tfd);

                if (o->kind == OP_SETATTR) {
                        struct mount_attr attr = { .attr_set = o->mflags };
                        if (syscall(SYS_mount_setattr, tfd, "", AT_EMPTY_PATH | ((o->flags & OPF_RECURSIVE) ? AT_RECURSIVE : 0),
                                    &attr, sizeof attr) < 0)
                                FAIL("mount_setattr(%s)", o->target);
                } else if (o->kind == OP_REMOUNT && (o->mflags & PROPAGATION_FLAGS)) {
                        /* a propagation change (OCI's "rprivate", rootfsPropagation): mount(2) without MS_REMOUNT,
                         * which would instead reconfigure the superblock below the mount point (the host's file
                         * system for a bind) and leave the propagation as it was */
                        if (mount(NULL, fdpath, NULL, o->mflags & (PROPAGATION_FLAGS | MS_REC), NULL) < 0)
                                FAIL("changing the propagation of %s", o->target);
                } else if (o->kind == OP_REMOUNT) {
                        if (mount(NULL, fdpath, NULL, MS_REMOUNT | o->mflags, *o->data ? o->data : NULL) < 0)
                                FAIL("remount(%s)", o->target);
                } else if (o->tree_fd >= 0) {
                        if (syscall(SYS_move_mount, o->tree_fd, "", tfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                                FAIL("mount(%s on %s)", o->src, o->target);
                        if (!plan.bind_copies_first)
                                renew_attached_tree(o->target, (o->mflags & MS_REC) != 0);
                } else {
                        if (mount(src, fdpath, *o->fstype ? o->fstype : NULL, o->mflags, *o->data ? o->data : NULL) < 0)
                                FAIL("mount(%s%s%s on %s)", *o->fstype ? o->fstype : "", src && *o->fstype ? " " : "",
                                     src ? o->src : "", o->target);
                }
        } else if (o->kind == OP_MKDIR) {
                tfd = mkdir_p_in_root(o->target, o->mode);
                if (tfd < 0)
                        FAIL("mkdir(%s)", o->target);
        } else if (o->kind == OP_CHOWN) {
                /* mode = uid, dev = gid */
                tfd = open_in_root(o->target, O_PATH);
                if (tfd < 0 || fchownat(tfd, "", (uid_t) o->mode, (gid_t) o->dev, AT_EMPTY_PATH) < 0)
                        FAIL("chown(%s)", o->target);
        } else if (o->kind == OP_MKNOD) {
                const char *base;
                int dfd = parent_dir_fd(o->target, &base);
                if (dfd < 0)
                        FAIL("preparing %s", o->target);
                if (mknodat(dfd, base, o->mode, (dev_t) o->dev) < 0) {
                        int e = errno;
                        if (e != EPERM) {
                                close(dfd);
                                errno = e;
                                FAIL("mknod(%s)", o->target);
                        }
                        /* Under a user namespace mknod is refused: bind the host node instead, like systemd.
                         * Without a host node there is nothing to bind: leave no empty file behind either. */
                        int f = o->tree_fd < 0 ? -1 : openat(dfd, base, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0644);
                        if (f >= 0)
                                close(f);
                        tfd = open_in_root(o->target, O_PATH);
                        if (tfd < 0 || o->tree_fd < 0) {
                                close(dfd);
                                errno = e;
                                FAIL("mknod(%s)", o->target);
                        }
                        if (syscall(SYS_move_mount, o->tree_fd, "", tfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0) {
                                close(dfd);
                                FAIL("bind mount of %s on %s", src, o->target);
                        }
                } else
                        (void) fchmodat(dfd, base, o->mode & 07777, 0);
                close(dfd);
        } else if (o->kind == OP_SYMLINK) {
                const char *base;
                int dfd = parent_dir_fd(o->target, &base);
                if (dfd < 0)
                        FAIL("preparing %s", o->target);
                if (symlinkat(o->src, dfd, base) < 0 && errno != EEXIST) {
                        close(dfd);
                        FAIL("symlink(%s -> %s)", o->target, o->src);
                }
                close(dfd);
        } else if (o->kind == OP_UMOUNT) {
                tfd = open_in_root(o->target, O_PATH);
                if (tfd < 0)
                        FAIL("resolving %s", o->target);
                snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", tfd);
                if (umount2(fdpath, MNT_DETACH) < 0)
                        FAIL("umount(%s)", o->target);
        } else if (o->kind == OP_RMDIR) {
                const char *base;
                int dfd = parent_dir_fd(o->target, &base);
                if (dfd < 0 || unlinkat(dfd, base, AT_REMOVEDIR) < 0) {
                        if (dfd >= 0)
                                close(dfd);
                        FAIL("rmdir(%s)", o->target);
                }
                close(dfd);
        } else if (o->kind == OP_RMFILE) {
                /* Remove a file (not a directory) in the root, e.g. a stale /etc/resolv.conf link. */
                const char *base;
                int dfd = parent_dir_fd(o->target, &base);
                if (dfd >= 0) {
                        (void) unlinkat(dfd, base, 0);
                        close(dfd);
                }
        } else if (o->kind == OP_WRITE) {
                const char *base;
                int dfd = parent_dir_fd(o->target, &base);
                if (dfd < 0)
                        FAIL("preparing %s", o->target);
                int f = openat(dfd, base, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, o->mode);
                close(dfd);
                if (f < 0)
                        FAIL("creating %s", o->target);
                (void) fchmod(f, o->mode & 07777);
                if (write_all(f, o->data, strlen(o->data)) < 0) {
                        close(f);
                        FAIL("writing %s", o->target);
                }
                close(f);
        } else if (o->kind == OP_BLOB) {
                /* setup_credentials(): blob number DEV written to a new file (never an existing one, nor through a
                 * symlink), then given MODE */
                if (o->dev >= plan.n_blobs) {
                        errno = EINVAL;
                        FAIL("Failed to create %s: no such blob in the plan", o->target);
                }
                const Blob *bl = &plan.blobs[o->dev];
                const char *base;
                int dfd = parent_dir_fd(o->target, &base);
                if (dfd < 0)
                        FAIL("Failed to create %s", o->target);
                int f = openat(dfd, base, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
                close(dfd);
                if (f < 0)
                        FAIL("Failed to create %s", o->target);
                if (write_all(f, bl->data, bl->size) < 0) {
                        close(f);
                        FAIL("Failed to write %s", o->target);
                }
                if (fchmod(f, o->mode & 07777) < 0) {
                        close(f);
                        FAIL("Failed to adjust access mode of %s", o->target);
                }
                close(f);
        } else if (o->kind == OP_CHMOD) {
                tfd = open_in_root(o->target, O_PATH | O_NOFOLLOW);
                if (tfd < 0)
                        FAIL("Failed to adjust access mode of %s", o->target);
                snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", tfd);
                if (chmod(fdpath, o->mode & 07777) < 0)
                        FAIL("Failed to adjust access mode of %s", o->target);
        } else if (o->kind == OP_NOTIFY) {
                /* setup_notify_child(): a datagram socket with SO_PASSCRED at the target, for the container's init
                 * to sd_notify() us; the outer helper reads it (the fd goes over the sync socket) */
                const char *base;
                int dfd = parent_dir_fd(o->target, &base);
                if (dfd < 0)
                        FAIL("preparing %s", o->target);
                (void) unlinkat(dfd, base, 0);
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                int n = snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d/%s", dfd, base);
                int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                int one = 1;
                if (s < 0 || n <= 0 || (size_t) n >= sizeof sa.sun_path) {
                        if (s >= 0)
                                close(s);
                        close(dfd);
                        FAIL("Failed to allocate notification socket");
                }
                if (bind(s, (struct sockaddr *) &sa, sizeof sa) < 0) {
                        close(s);
                        close(dfd);
                        FAIL("bind(%s) failed", o->target);
                }
                close(dfd);
                if (setsockopt(s, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0) {
                        close(s);
                        FAIL("SO_PASSCRED failed");
                }
                if (send_fd(child_sync_fd, s, 'N') < 0) {
                        close(s);
                        FAIL("passing the notify socket to the outer helper");
                }
                close(s);
        } else {
                errno = EINVAL;
                child_die_errno("unknown op %s", op_kind_names[o->kind]);
        }
out:
        if (tfd >= 0)
                close(tfd);
        if (sfd >= 0)
                close(sfd);
#undef FAIL
}

/* Each host bind source is a descriptor until the container attaches it: the soft open file limit goes up to what
 * they need (at most the hard one; the container gets its own limits later). */
static int raise_nofile(const Plan *p, char *err, size_t errsz) {
        size_t need = 64;
        for (size_t i = 0; i < p->n_ops; i++)
                if ((p->ops[i].kind == OP_MOUNT && (p->ops[i].mflags & MS_BIND)) || p->ops[i].kind == OP_MKNOD)
                        need++;
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
                return 0;
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
                snprintf(err, errsz, "The container's %zu bind mounts need %zu open files, more than this process's hard limit of %llu (ulimit -Hn).",
                         need - 64, need, (unsigned long long) rl.rlim_max);
                return -1;
        }
        rl.rlim_cur = need;
        (void) setrlimit(RLIMIT_NOFILE, &rl);
        return 0;
}

/* Host bind sources are resolved and copied as detached mounts by the outer helper, before the clone, with
 * the host's view and privileges; the container side only attaches them (move_mount). This way a user
 * namespace never has to traverse host paths, and no host path is looked up after the container exists. */
int detach_host_sources(Plan *p, char *err, size_t errsz) {
        if (raise_nofile(p, err, errsz) < 0)
                return -1;
        for (size_t i = 0; i < p->n_ops; i++) {
                Op *o = &p->ops[i];
                int is_bind = o->kind == OP_MOUNT && (o->mflags & MS_BIND) && *o->src && !(o->flags & OPF_SRC_IN_ROOT);
                int is_node = o->kind == OP_MKNOD && *o->src;
                if (!is_bind && !is_node)
                        continue;
                unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC;
                if (is_bind && (o->mflags & MS_REC))
                        flags |= AT_RECURSIVE;
                o->tree_fd = (int) syscall(SYS_open_tree, AT_FDCWD, o->src, flags);
                if (o->tree_fd >= 0 && is_bind) {
                        /* The copy of a shared host mount stays in the host's peer group: what the container then
                         * mounts below it (a cgroup tmpfs on the host's /sys under -U) would propagate back to the
                         * host. A slave, as systemd-nspawn's binds are (outer_child() makes "/" MS_SLAVE first):
                         * the host's mounts still reach the container, none of the container's reach the host. */
                        struct mount_attr a = { .propagation = MS_SLAVE };
                        if (syscall(SYS_mount_setattr, o->tree_fd, "", AT_EMPTY_PATH | ((flags & AT_RECURSIVE) ? AT_RECURSIVE : 0), &a, sizeof a) < 0) {
                                snprintf(err, errsz, "Failed to make the copy of %s a slave mount: %s (%s)", o->src, strerror(errno), errno_name(errno));
                                return -1;
                        }
                }
                if (o->tree_fd >= 0)
                        continue;
                if (is_node || (o->flags & OPF_OPTIONAL) || ((o->flags & OPF_IF_EXISTS) && errno == ENOENT)) {
                        o->skip = is_bind;
                        continue;
                }
                snprintf(err, errsz, "%s %s: %s (%s)", errno == ENOENT ? "Failed to stat" : "open_tree() of", o->src,
                         strerror(errno), errno_name(errno));
                return -1;
        }
        return 0;
}

/* ---------- idmapped root (private users, ownership "map") ---------- */

/* The tree (our cwd) cloned as a detached mount with MOUNT_ATTR_IDMAP, made with the host's privileges before the
 * clone, as systemd's remount_idmap(): a throwaway user namespace carries "0 SHIFT RANGE" plus host root mapped to
 * 2147483646 (REMOUNT_IDMAPPING_HOST_ROOT). The child attaches it instead of a plain bind of the tree. */
int idmap_userns(unsigned shift, unsigned range) {
        char map[128];
        snprintf(map, sizeof map, "0 %u %u\n%u 0 1\n", shift, range, 2147483646u);
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return -1;
        pid_t pid = (pid_t) syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL);
        if (pid < 0) {
                int e = errno;
                close(p[0]);
                close(p[1]);
                errno = e;
                return -1;
        }
        if (pid == 0) {
                char c;
                close(p[1]);
                (void) !read(p[0], &c, 1);
                _exit(0);
        }
        close(p[0]);
        char path[64];
        int ufd = -1;
        snprintf(path, sizeof path, "/proc/%d/uid_map", pid);
        if (write_small_file(path, map) == 0) {
                snprintf(path, sizeof path, "/proc/%d/gid_map", pid);
                if (write_small_file(path, map) == 0) {
                        snprintf(path, sizeof path, "/proc/%d/ns/user", pid);
                        ufd = open(path, O_RDONLY | O_CLOEXEC);
                }
        }
        int e = errno;
        close(p[1]);
        (void) waitpid(pid, NULL, 0);
        errno = e;
        return ufd;
}

int make_idmapped_root(Plan *pl, char *err, size_t errsz) {
        int e;
        int ufd = idmap_userns(pl->idmap_shift, pl->idmap_range);
        if (ufd < 0)
                goto fail;
        int t = (int) syscall(SYS_open_tree, AT_FDCWD, ".", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (t < 0) {
                close(ufd);
                goto fail;
        }
        /* private as well: the clone of a shared mount (the root of any systemd host) stays in the host's peer group,
         * and pivot_root() refuses a shared new root (EINVAL); the container's own "/" is made private before the
         * attach, too late for this one */
        struct { uint64_t set, clr, prop, userns; } a = { .set = 0x00100000 /* MOUNT_ATTR_IDMAP */, .prop = MS_PRIVATE, .userns = (uint64_t) ufd };
        if (syscall(SYS_mount_setattr, t, "", AT_EMPTY_PATH, &a, sizeof a) < 0) {
                e = errno;
                close(t);
                close(ufd);
                errno = e;
                goto fail;
        }
        close(ufd);
        pl->idmap_tree = t;
        return 0;
fail:
        snprintf(err, errsz, "Failed to set up ID mapped mounts for %s: %s (%s)", pl->root, strerror(errno), errno_name(errno));
        return -1;
}

