/*
 * What -x made (src/storage.ts, @nspawn/btrfs), removed by the helper after a handed-over container: btrfs snapshots,
 * the overlay's mounts and its directory. Only in a hand-over (otherwise nspawn removes them), and only what is
 * provably nspawn's: a mount with the source "nspawn-ephemeral", a directory named ".#machine.*" with nothing mounted
 * in it, never following a symbolic link, never crossing into another mount.
 */
#pragma once
#include "util.h"

typedef struct {
        StrList subvols; /* btrfs snapshots to destroy */
        StrList mounts;  /* mount points to unmount (MNT_DETACH), innermost first */
        StrList trees;   /* directory trees to delete after that */
} EphemeralPlan;

/* Snapshots, then mounts, then trees; what stays is said on stderr, with who will remove it. Empties the lists. */
void ephemeral_remove(EphemeralPlan *e);

/* Set when ephemeral_remove() could not remove something (it said so): the run's record stays for the next start. */
extern int ephemeral_left;
