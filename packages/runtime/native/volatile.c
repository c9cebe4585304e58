/* --volatile= (systemd-nspawn 252's setup_volatile_yes/state/overlay, src/nspawn/nspawn-mount.c). See volatile.h. */
#define _GNU_SOURCE
#include "volatile.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "control.h"

static void die(const char *msg) {
        child_error(msg);
        _exit(1);
}

/* a detached tmpfs with 252's options ("mode=755" TMPFS_LIMITS_ROOTFS, the same as TMPFS_LIMITS_VOLATILE_STATE:
 * size=25%,nr_inodes=1m), MS_STRICTATIME */
static int tmpfs_detached(void) {
        int fs = (int) syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC);
        if (fs < 0)
                child_die_errno("Failed to mount tmpfs");
        if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "source", "tmpfs", 0) < 0 ||
            syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "mode", "755", 0) < 0 ||
            syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "size", "25%", 0) < 0 ||
            syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "nr_inodes", "1m", 0) < 0 ||
            syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                child_die_errno("Failed to mount tmpfs (mode=755,size=25%%,nr_inodes=1m)");
        int m = (int) syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_STRICTATIME);
        if (m < 0)
                child_die_errno("Failed to mount tmpfs");
        close(fs);
        return m;
}

/* bind_remount_recursive(..., MS_RDONLY): the mount and everything below it read-only */
static void remount_ro_recursive(int fd, const char *what) {
        struct mount_attr a = { .attr_set = MOUNT_ATTR_RDONLY };
        if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a) < 0)
                child_die_errno("Failed to remount %s read-only", what);
}

static void volatile_yes(int *root_fd) {
        /* the /usr merge check, before anything is mounted */
        struct stat st;
        if (fstatat(*root_fd, "bin", &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno != ENOENT)
                        child_die_errno("Failed to stat /bin directory below image");
                /* no /bin: a naked /usr, base_filesystem_create() makes the rest */
        } else if (S_ISDIR(st.st_mode))
                die("Sorry, --volatile=yes mode is not supported with OS images that have not merged /bin/, /sbin/, /lib/, /lib64/ into /usr/. "
                    "Please work with your distribution and help them adopt the merged /usr scheme.");
        else if (!S_ISLNK(st.st_mode))
                die("Error starting image: if --volatile=yes is used /bin must be a symlink (for merged /usr support) or non-existent (in which case a symlink is created automatically).");

        /* the tmpfs first, then a copy of the tree's /usr (with what is mounted below it), read-only, taken before
         * the tmpfs covers the tree: 252's order of mounts (the kernel lists them in the order they were made) */
        int m = tmpfs_detached();
        int usr = (int) syscall(SYS_open_tree, *root_fd, "usr", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
        if (usr < 0)
                child_die_errno("Failed to bind mount /usr");
        remount_ro_recursive(usr, "/usr");
        /* the tmpfs onto the root (252 mounts it elsewhere and moves it there), then /usr into it */
        if (syscall(SYS_move_mount, m, "", *root_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                child_die_errno("Failed to move the tmpfs onto the container's root");
        if (mkdirat(m, "usr", 0755) < 0 && errno != EEXIST)
                child_die_errno("Failed to create /usr");
        if (syscall(SYS_move_mount, usr, "", m, "usr", MOVE_MOUNT_F_EMPTY_PATH) < 0)
                child_die_errno("Failed to bind mount /usr");
        close(usr);
        close(*root_fd);
        *root_fd = m;
}

static void volatile_state(const char *root, int root_fd) {
        remount_ro_recursive(root_fd, root);
        /* mkdir() of a missing /var in a read-only tree fails (EROFS), as in 252 */
        if (mkdirat(root_fd, "var", 0755) < 0 && errno != EEXIST)
                child_die_errno("Failed to create %s", root);
        int var = openat(root_fd, "var", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (var < 0)
                child_die_errno("Failed to mount tmpfs on %s/var", root);
        int m = tmpfs_detached();
        if (syscall(SYS_move_mount, m, "", var, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                child_die_errno("Failed to mount tmpfs on %s/var", root);
        close(m);
        close(var);
}

/* ROOT as an overlay lower layer, when it needs no escaping; else the descriptor's magic link */
static void lower_dir(const char *root, int root_fd, char *buf, size_t size) {
        if (strpbrk(root, ",:\\") || strlen(root) >= size || access(root, F_OK) < 0)
                snprintf(buf, size, "/proc/self/fd/%d", root_fd);
        else
                snprintf(buf, size, "%s", root);
}

static void volatile_overlay(const char *root, int *root_fd) {
        char template[] = "/tmp/nspawn-volatile-XXXXXX";
        if (!mkdtemp(template))
                child_die_errno("Failed to create temporary directory");
        int m = tmpfs_detached();
        if (syscall(SYS_move_mount, m, "", AT_FDCWD, template, MOVE_MOUNT_F_EMPTY_PATH) < 0) {
                int e = errno;
                rmdir(template);
                errno = e;
                child_die_errno("Failed to mount tmpfs on %s", template);
        }
        char upper[64], work[64], lower[4096];
        snprintf(upper, sizeof upper, "%s/upper", template);
        snprintf(work, sizeof work, "%s/work", template);
        lower_dir(root, *root_fd, lower, sizeof lower);
        const char *failed = NULL;
        int fs = -1, ov = -1, e = 0;
        if (mkdir(upper, 0755) < 0)
                failed = upper;
        else if (mkdir(work, 0755) < 0)
                failed = work;
        if (failed) {
                e = errno;
        } else {
                /* the overlay over the root: lowerdir is the tree itself, the kernel allows that without moving it */
                fs = (int) syscall(SYS_fsopen, "overlay", FSOPEN_CLOEXEC);
                if (fs < 0 || syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "source", "overlay", 0) < 0 ||
                    syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "lowerdir", lower, 0) < 0 ||
                    syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "upperdir", upper, 0) < 0 ||
                    syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "workdir", work, 0) < 0 ||
                    syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0 ||
                    (ov = (int) syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, 0)) < 0 ||
                    syscall(SYS_move_mount, ov, "", *root_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                        e = errno ? errno : EINVAL;
        }
        /* the overlay keeps its layers: the tmpfs leaves its temporary mount point, as in 252 */
        umount2(template, UMOUNT_NOFOLLOW | MNT_DETACH);
        rmdir(template);
        close(m);
        if (fs >= 0)
                close(fs);
        if (failed) {
                errno = e;
                child_die_errno("Failed to create %s", failed);
        }
        if (e) {
                errno = e;
                child_die_errno("Failed to mount overlay (type overlay) on %s (\"lowerdir=%s,upperdir=%s,workdir=%s\")", root, lower, upper, work);
        }
        close(*root_fd);
        *root_fd = ov;
}

void volatile_setup(const char *mode, const char *root, int *root_fd) {
        if (!mode)
                return;
        if (!strcmp(mode, "yes"))
                volatile_yes(root_fd);
        else if (!strcmp(mode, "state"))
                volatile_state(root, *root_fd);
        else if (!strcmp(mode, "overlay"))
                volatile_overlay(root, root_fd);
        else
                die("Unknown volatile mode");
}
