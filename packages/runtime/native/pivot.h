#ifndef NSPAWN_PIVOT_H
#define NSPAWN_PIVOT_H

/*
 * --pivot-root=NEW[:OLD]: setup_pivot_root() of systemd-nspawn 252 (src/nspawn/nspawn-mount.c), in the container's
 * mount namespace, after the tree is bound onto itself and before --volatile= and the plan's ops. NEW (a directory
 * inside the tree, looked up without leaving it) becomes the container's root; with OLD the tree is moved to OLD
 * inside NEW (through a temporary directory /tmp/nspawn-pivot-XXXXXX, as 252 does), else it is covered and gone.
 * ROOT is the tree's host path (messages), *ROOT_FD an O_PATH descriptor of the tree's mount, MOUNTPOINT_FD one of
 * the directory the tree is mounted on (where NEW goes when the tree moves away). *ROOT_FD becomes NEW's mount.
 * Dies (child_error, exit 1) with 252's message on failure.
 */
void pivot_setup(const char *new_root, const char *old_root, const char *root, int *root_fd, int mountpoint_fd);

#endif
