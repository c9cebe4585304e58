/* --pivot-root= (systemd-nspawn 252's setup_pivot_root(), src/nspawn/nspawn-mount.c). See pivot.h. */
#define _GNU_SOURCE
#include "pivot.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "control.h"

/* 252's mount_nofollow_verbose() words for a move */
static void die_move(const char *what, const char *where) {
        child_die_errno("Failed to mount %s (type n/a) on %s (MS_MOVE \"\")", what, where);
}

void pivot_setup(const char *new_root, const char *old_root, const char *root, int *root_fd, int mountpoint_fd) {
        if (!new_root)
                return;
        char where[PATH_MAX];
        snprintf(where, sizeof where, "%s%s", strcmp(root, "/") ? root : "", new_root);
        /* "Remount directory_pivot_root_new to make it movable": a (non-recursive) bind of NEW, looked up in the tree */
        struct open_how how = { .flags = O_PATH | O_DIRECTORY | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
        int dir = (int) syscall(SYS_openat2, *root_fd, new_root, &how, sizeof how);
        if (dir < 0)
                child_die_errno("Failed to mount %s (type n/a) on %s (MS_BIND \"\")", where, where);
        int nfd = (int) syscall(SYS_open_tree, dir, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
        if (nfd < 0)
                child_die_errno("Failed to mount %s (type n/a) on %s (MS_BIND \"\")", where, where);
        close(dir);
        if (!old_root) {
                /* NEW onto the tree's mount point: the tree is covered, and goes with the host's root later */
                if (syscall(SYS_move_mount, nfd, "", *root_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                        die_move(where, root);
        } else {
                char tmp[] = "/tmp/nspawn-pivot-XXXXXX";
                if (!mkdtemp(tmp))
                        child_die_errno("Failed to create temporary directory");
                char tmp_old[PATH_MAX];
                snprintf(tmp_old, sizeof tmp_old, "%s%s", tmp, old_root);
                int e = 0;
                const char *what = where, *to = tmp;
                /* NEW to the temporary directory, the tree to OLD inside it, then NEW (with the tree) where the tree was */
                if (syscall(SYS_move_mount, nfd, "", AT_FDCWD, tmp, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                        e = errno;
                else if ((what = root, to = tmp_old, syscall(SYS_move_mount, *root_fd, "", AT_FDCWD, tmp_old, MOVE_MOUNT_F_EMPTY_PATH) < 0))
                        e = errno;
                else if ((what = tmp, to = root, syscall(SYS_move_mount, nfd, "", mountpoint_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0))
                        e = errno;
                if (e && to != tmp)
                        umount2(tmp, UMOUNT_NOFOLLOW | MNT_DETACH);
                rmdir(tmp);
                if (e) {
                        errno = e;
                        die_move(what, to);
                }
        }
        close(*root_fd);
        *root_fd = nfd;
}
