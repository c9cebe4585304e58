#ifndef NSPAWN_VOLATILE_H
#define NSPAWN_VOLATILE_H

/*
 * --volatile=yes|state|overlay: setup_volatile_mode() of systemd-nspawn 252 (src/nspawn/nspawn-mount.c), in the
 * container's mount namespace, after the tree is bound onto itself and before the plan's ops:
 *   yes      a tmpfs becomes the root, the tree's /usr bound into it read-only (refused for a tree whose /bin is a
 *            directory: /usr not merged);
 *   state    the tree read-only, a tmpfs on /var;
 *   overlay  an overlay on the root, the tree its lower layer, upper and work directories in a tmpfs.
 * ROOT is the tree's host path (the overlay's lower layer when it can be named; messages), *ROOT_FD an O_PATH
 * descriptor of the tree's mount. For yes and overlay a new mount goes on top of it and *ROOT_FD becomes that
 * mount (the old descriptor is closed). Dies (child_error, exit 1) with systemd's message on failure.
 */
void volatile_setup(const char *mode, const char *root, int *root_fd);

#endif
