/*
 * The container's file system setup: the plan's operations (mount, remount, setattr, mkdir, mknod, symlink, write,
 * rmfile, chown, umount, rmdir, notify), run by the container's child in its mount namespace. Paths inside the tree
 * are resolved with openat2(RESOLVE_IN_ROOT) against it, so a symlink in an image can never point a mount outside it.
 * Host bind sources are copied as detached mounts (open_tree) by the outer helper before the clone and attached
 * inside with move_mount, so the container side never looks up a host path.
 */
#pragma once
#include <stddef.h>

#include "plan.h"

/* the tree's root (an O_PATH descriptor) the paths below are resolved in */
void mount_set_root(int fd);

/* PATH (absolute, inside the root) opened with symlinks resolved as if the root were "/" */
int open_in_root(const char *path, int oflags);

/* an fd of the parent directory (openable, not O_PATH) of PATH inside the root, created when missing; *BASE gets the
 * last component */
int parent_dir_fd(const char *path, const char **base);

/* one operation (OP_CONSOLE is the caller's); a failure that is not optional ends the child with its error */
/* the flags of a propagation change (a remount op with one of them is mount(2) without MS_REMOUNT) */
#define PROPAGATION_FLAGS (MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE)

void run_op(const Op *o);

/* Outer helper, before the clone: each host bind source (and host node for mknod) as a detached mount. On failure
 * ERR says why (the open file limit is raised to what they need first). */
int detach_host_sources(Plan *p, char *err, size_t errsz);

/* Outer helper, before the clone: the tree (our cwd) as an idmapped detached mount (private users, ownership
 * "map"), as systemd's remount_idmap(); -1 with ERR. */
int make_idmapped_root(Plan *p, char *err, size_t errsz);

/* A user namespace for idmapped mounts: "0 SHIFT RANGE" plus host root as 2147483646 (systemd's make_userns() with
 * REMOUNT_IDMAPPING_HOST_ROOT), from a short-lived child; its descriptor, or -1 with errno. */
int idmap_userns(unsigned shift, unsigned range);
