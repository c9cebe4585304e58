/* -i/--image: a disk image's mounts in the container's mount namespace (image.h). */
#define _GNU_SOURCE
#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "control.h"
#include "mount.h"
#include "util.h"

const char *const image_step_names[IMG_KIND_COUNT] = { "mount", "tmpfs", "mkdir", "overlay", "move", "barrier" };

/* a relative path that stays inside the root lexically: no leading '/', no ".." component ("" is the root) */
static int relative_ok(const char *p) {
        if (*p == '/')
                return 0;
        for (const char *c = p; *c;) {
                const char *e = strchrnul(c, '/');
                if (e - c == 2 && c[0] == '.' && c[1] == '.')
                        return 0;
                c = *e ? e + 1 : e;
        }
        return 1;
}

int image_plan_add(ImagePlan *p, const char *kind, const char *source, const char *target, const char *fstype, const char *data,
                   unsigned long long flags, unsigned long long mode, int mkdir, int idmap, char *err, size_t errsz) {
        size_t k = 0;
        while (k < IMG_KIND_COUNT && strcmp(kind, image_step_names[k]))
                k++;
        if (k == IMG_KIND_COUNT) {
                snprintf(err, errsz, "record 'image': unknown step '%s'", kind);
                return -1;
        }
        if (!relative_ok(target) || (k == IMG_MOVE && !relative_ok(source))) {
                snprintf(err, errsz, "record 'image': path outside the root in step '%s'", kind);
                return -1;
        }
        if (flags > 0xffffffffull || mode > 07777) {
                snprintf(err, errsz, "record 'image': flags or mode out of range");
                return -1;
        }
        if (k == IMG_MOUNT && !*fstype) {
                snprintf(err, errsz, "record 'image': a mount without a file system type");
                return -1;
        }
        if (idmap && k != IMG_MOUNT) {
                snprintf(err, errsz, "record 'image': only a mount can be idmapped");
                return -1;
        }
        ImageStep *s = PUSH(p->step, p->n, p->cap);
        *s = (ImageStep) { (ImageStepKind) k, source, target, fstype, data, (unsigned long) flags, (unsigned) mode, mkdir, idmap, -1 };
        return 0;
}

static int open_in(int root_fd, const char *rel) {
        struct open_how how = {
                .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        };
        for (int i = 0;; i++) {
                int fd = (int) syscall(SYS_openat2, root_fd, *rel ? rel : ".", &how, sizeof how);
                if (fd >= 0 || errno != EAGAIN || i >= 64)
                        return fd;
        }
}

/* the directory REL inside the root, made (MODE) component by component where missing when MKDIR */
static int resolve_dir(int root_fd, const char *rel, int mkdir, unsigned mode) {
        int fd = open_in(root_fd, rel);
        if (fd >= 0 || errno != ENOENT || !mkdir)
                return fd;
        char prefix[PATH_MAX];
        size_t n = strlen(rel);
        if (n >= sizeof prefix) {
                errno = ENAMETOOLONG;
                return -1;
        }
        for (size_t i = 0; i <= n; i++) {
                if (rel[i] != '/' && rel[i] != 0)
                        continue;
                memcpy(prefix, rel, i);
                prefix[i] = 0;
                int d = open_in(root_fd, prefix);
                if (d >= 0) {
                        close(d);
                        continue;
                }
                if (errno != ENOENT)
                        return -1;
                const char *slash = memrchr(prefix, '/', i);
                char parent[PATH_MAX];
                size_t pl = slash ? (size_t) (slash - prefix) : 0;
                memcpy(parent, prefix, pl);
                parent[pl] = 0;
                int pfd = open_in(root_fd, parent);
                if (pfd < 0)
                        return -1;
                int r = mkdirat(pfd, slash ? slash + 1 : prefix, mode ? mode : 0755);
                int e = errno;
                close(pfd);
                if (r < 0 && e != EEXIST) {
                        errno = e;
                        return -1;
                }
        }
        return open_in(root_fd, rel);
}

/* the file system options of DATA ("a,b=c"), each as fsconfig() takes it */
static int configure(int fs, const char *data) {
        char *copy = strdup(data), *save = NULL;
        if (!copy)
                return -1;
        for (char *o = strtok_r(copy, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
                char *eq = strchr(o, '=');
                int r;
                if (eq) {
                        *eq = 0;
                        r = (int) syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, o, eq + 1, 0);
                } else
                        r = (int) syscall(SYS_fsconfig, fs, FSCONFIG_SET_FLAG, o, NULL, 0);
                if (r < 0) {
                        int e = errno;
                        free(copy);
                        errno = e;
                        return -1;
                }
        }
        free(copy);
        return 0;
}

static unsigned attrs_of(unsigned long flags) {
        unsigned a = 0;
        if (flags & MS_RDONLY)
                a |= MOUNT_ATTR_RDONLY;
        if (flags & MS_NODEV)
                a |= MOUNT_ATTR_NODEV;
        if (flags & MS_NOSUID)
                a |= MOUNT_ATTR_NOSUID;
        if (flags & MS_NOEXEC)
                a |= MOUNT_ATTR_NOEXEC;
        return a;
}

/* a detached mount of FSTYPE from SOURCE with DATA; -1 with errno */
static int make_fs(const char *fstype, const char *source, const char *data, unsigned long flags) {
        int fs = (int) syscall(SYS_fsopen, fstype, FSOPEN_CLOEXEC);
        if (fs < 0)
                return -1;
        int m = -1;
        if (*source && syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "source", source, 0) < 0)
                goto out;
        if ((flags & MS_RDONLY) && syscall(SYS_fsconfig, fs, FSCONFIG_SET_FLAG, "ro", NULL, 0) < 0)
                goto out;
        if (configure(fs, data) < 0 || syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                goto out;
        m = (int) syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, attrs_of(flags));
out:;
        int e = errno;
        close(fs);
        errno = e;
        return m;
}

static const char *what_of(const ImageStep *s, char *buf, size_t size) {
        switch (s->kind) {
        case IMG_MOUNT:
                snprintf(buf, size, "%s (%s) on /%s", s->source, s->fstype, s->target);
                break;
        case IMG_OVERLAY:
                snprintf(buf, size, "overlay on /%s", s->target);
                break;
        case IMG_TMPFS:
                snprintf(buf, size, "tmpfs on /%s", s->target);
                break;
        default:
                snprintf(buf, size, "/%s", s->target);
        }
        return buf;
}

static const char *mount_failure(int e) {
        switch (e) {
        case ENODEV:
        case EAFNOSUPPORT:
                return "File system type not supported or not known";
        case EUCLEAN:
                return "File system check on image failed";
        case EBUSY:
                return "File system already mounted elsewhere";
        default:
                return strerror(e);
        }
}

int image_prepare(ImagePlan *p, unsigned shift, unsigned range, char *err, size_t errsz) {
        char what[PATH_MAX + 128];
        int userns = -1;
        for (size_t i = 0; i < p->n; i++) {
                ImageStep *s = &p->step[i];
                if (s->kind != IMG_MOUNT)
                        continue;
                s->fd = make_fs(s->fstype, s->source, s->data, s->flags);
                if (s->fd < 0) {
                        int e = errno;
                        snprintf(err, errsz, "Failed to mount image %s: %s (%s)", what_of(s, what, sizeof what), mount_failure(e), errno_name(e));
                        goto fail;
                }
                if (!s->idmap)
                        continue;
                if (range == 0) {
                        snprintf(err, errsz, "record 'image': an idmapped mount without a user namespace range");
                        goto fail;
                }
                if (userns < 0 && (userns = idmap_userns(shift, range)) < 0) {
                        int e = errno;
                        snprintf(err, errsz, "Failed to set up ID mapped mounts: %s (%s)", strerror(e), errno_name(e));
                        goto fail;
                }
                struct { uint64_t set, clr, prop, userns; } a = { .set = 0x00100000 /* MOUNT_ATTR_IDMAP */, .userns = (uint64_t) userns };
                if (syscall(SYS_mount_setattr, s->fd, "", AT_EMPTY_PATH, &a, sizeof a) < 0) {
                        int e = errno;
                        snprintf(err, errsz, "Failed to set up ID mapped mounts for image %s: %s (%s)", what_of(s, what, sizeof what), strerror(e), errno_name(e));
                        goto fail;
                }
        }
        if (userns >= 0)
                close(userns);
        return 0;
fail:
        if (userns >= 0)
                close(userns);
        return -1;
}

size_t image_setup(const ImagePlan *p, int *root_fd, size_t from) {
        char what[PATH_MAX + 128];
        for (size_t i = from; i < p->n; i++) {
                const ImageStep *s = &p->step[i];
                if (s->kind == IMG_BARRIER)
                        return i + 1;
                what_of(s, what, sizeof what);
                if (s->kind == IMG_MKDIR) {
                        int d = resolve_dir(*root_fd, s->target, 1, s->mode);
                        if (d < 0)
                                child_die_errno("Failed to create the image's directory %s", what);
                        close(d);
                        continue;
                }
                if (s->kind == IMG_MOVE) {
                        int src = open_in(*root_fd, s->source);
                        if (src < 0)
                                child_die_errno("Failed to open the image's mount /%s", s->source);
                        int dst = resolve_dir(*root_fd, s->target, 0, 0);
                        if (dst < 0 || syscall(SYS_move_mount, src, "", dst, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                                child_die_errno("Failed to move the image's mount /%s onto %s", s->source, what);
                        close(dst);
                        if (!*s->target) {
                                close(*root_fd);
                                *root_fd = src;
                        } else
                                close(src);
                        continue;
                }
                int m;
                if (s->kind == IMG_OVERLAY) {
                        /* its lowerdir/upperdir/workdir are relative to the root: resolved from there */
                        if (fchdir(*root_fd) < 0)
                                child_die_errno("Failed to enter the image's root");
                        m = make_fs("overlay", "overlay", s->data, s->flags);
                } else if (s->kind == IMG_TMPFS)
                        m = make_fs("tmpfs", s->source, s->data, s->flags);
                else if (s->fd >= 0)
                        m = s->fd; /* image_prepare()'s */
                else
                        m = make_fs(s->fstype, s->source, s->data, s->flags);
                if (m < 0) {
                        if (errno == ENODEV)
                                child_die_errno("Failed to mount image %s: File system type not supported or not known", what);
                        if (errno == EUCLEAN)
                                child_die_errno("Failed to mount image %s: File system check on image failed", what);
                        child_die_errno("Failed to mount image %s", what);
                }
                int dst = resolve_dir(*root_fd, s->target, s->mkdir, 0755);
                if (dst < 0)
                        child_die_errno("Failed to find the mount point of %s", what);
                if (syscall(SYS_move_mount, m, "", dst, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                        child_die_errno("Failed to attach the mount of image %s", what);
                close(dst);
                if (!*s->target) {
                        close(*root_fd);
                        *root_fd = m;
                } else
                        close(m);
        }
        return p->n;
}
