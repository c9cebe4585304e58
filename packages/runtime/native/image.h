#ifndef NSPAWN_IMAGE_H
#define NSPAWN_IMAGE_H

#include <stddef.h>

/*
 * -i/--image: the mounts of a disk image (@nspawn/image's plan, src/protocol.ts ImageMountStep), made in the
 * container's mount namespace on the (empty) root directory, after it is bound onto itself and before the volatile
 * mode and the plan's ops. The loop devices are the caller's: it keeps them open (AUTOCLEAR) for the run, so that the
 * device named by a step is the image's until the mount holds it; the mounts go with the namespace.
 */
/* IMG_BARRIER: the root (and /usr) are in place; --pivot-root= and --volatile= apply here, before the other partitions
 * (systemd 252 mounts the image's root, then pivots and applies the volatile mode, then mounts the rest) */
typedef enum { IMG_MOUNT, IMG_TMPFS, IMG_MKDIR, IMG_OVERLAY, IMG_MOVE, IMG_BARRIER, IMG_KIND_COUNT } ImageStepKind;

extern const char *const image_step_names[IMG_KIND_COUNT];

typedef struct {
        ImageStepKind kind;
        const char *source, *target, *fstype, *data; /* "" when not given; target relative to the root */
        unsigned long flags;                          /* MS_* */
        unsigned mode;
        int mkdir;
        int idmap; /* mount: made an idmapped mount (the container's range: -U with ownership map) by image_prepare() */
        int fd;    /* mount: its file system, mounted detached by image_prepare() (-1 before) */
} ImageStep;

typedef struct {
        ImageStep *step;
        size_t n, cap;
} ImagePlan;

/* adds a step; -1 with ERR for a bad one (an unknown kind, an absolute or escaping target) */
int image_plan_add(ImagePlan *p, const char *kind, const char *source, const char *target, const char *fstype, const char *data,
                   unsigned long long flags, unsigned long long mode, int mkdir, int idmap, char *err, size_t errsz);

/* In the outer helper, before the device policy and the cgroup apply to it (they would refuse it the loop devices):
 * each partition's file system mounted detached, for image_setup() to attach in the container's namespace; the
 * steps marked idmap made idmapped mounts (on-disk 0..RANGE-1 seen as SHIFT.., as systemd's remount_idmap() with
 * REMOUNT_IDMAPPING_HOST_ROOT), which needs the host's privileges: it is done here, not in the container's user
 * namespace. -1 with ERR (naming the device and the error) on failure. */
int image_prepare(ImagePlan *p, unsigned shift, unsigned range, char *err, size_t errsz);

/* Carries out P's steps from FROM on the root *ROOT_FD (an O_PATH descriptor of the root's mount; replaced by the
 * top mount when a step mounts on the root itself), up to the next barrier; returns the index after it (P->n at the
 * end). Dies (child_error, exit 1) on failure. */
size_t image_setup(const ImagePlan *p, int *root_fd, size_t from);

#endif
