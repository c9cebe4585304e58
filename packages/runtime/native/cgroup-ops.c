/*
 * Making the container's cgroup: the plan's "cgmkdir"/"cgwrite"/"cgchown" entries, in order. Included by
 * nspawn-helper.c (static functions and this file's state). What to make, with which settings, is src/cgroup.ts's
 * (createMachineCgroup() over recordingCgroupFs()); the helper does it when nspawn has handed over to it, so that
 * the work costs system calls only. A scope that exists by then is another nspawn's: refused with the plan's
 * message, and what the helper made goes again.
 */
#define MAX_CGOPS 256

typedef struct {
        char kind; /* 'm' mkdir, 'w' write, 'c' chown */
        const char *path;
        int exclusive;
        const char *busy;
        const char **data;
        int n_data;
        long uid, gid;
} CgOp;

static struct {
        CgOp op[MAX_CGOPS];
        int n;
        const char *made[MAX_CGOPS]; /* directories made here, in order */
        int n_made;
} cgops;

static int cgops_full(void) {
        if (cgops.n < MAX_CGOPS)
                return 0;
        fprintf(stderr, "nspawn-helper: too many cgroup operations in the plan\n");
        exit(2);
}

/* Was PATH made by this helper? (then it is ours to remove) */
static int cgops_made(const char *path) {
        for (int i = 0; i < cgops.n_made; i++)
                if (!strcmp(cgops.made[i], path))
                        return 1;
        return 0;
}

/* What the helper made, deepest (last) first. */
static void cgops_undo(void) {
        for (int i = cgops.n_made - 1; i >= 0; i--)
                (void) rmdir(cgops.made[i]);
        cgops.n_made = 0;
}

static int cgops_run(char *err, size_t errsz) {
        for (int i = 0; i < cgops.n; i++) {
                CgOp *o = &cgops.op[i];
                if (o->kind == 'm') {
                        if (mkdir(o->path, 0755) == 0)
                                cgops.made[cgops.n_made++] = o->path;
                        else if (errno != EEXIST || o->exclusive) {
                                if (errno == EEXIST)
                                        snprintf(err, errsz, "%s", o->busy);
                                else
                                        snprintf(err, errsz, "Failed to create cgroup %s: %s", o->path, strerror(errno));
                                cgops_undo();
                                return -1;
                        }
                } else if (o->kind == 'w') {
                        int fd = open(o->path, O_WRONLY | O_CLOEXEC);
                        int bad = fd < 0;
                        for (int k = 0; !bad && k < o->n_data; k++)
                                if (write(fd, o->data[k], strlen(o->data[k])) < 0)
                                        bad = 1;
                        int e = errno;
                        if (fd >= 0)
                                close(fd);
                        if (bad) {
                                snprintf(err, errsz, "Failed to write %s: %s", o->path, strerror(e));
                                cgops_undo();
                                return -1;
                        }
                } else if (o->kind == 'c') {
                        /* a file this hierarchy does not have is not an error (as chown_cgroup()) */
                        if (chown(o->path, (uid_t) o->uid, (gid_t) o->gid) < 0 && errno != ENOENT) {
                                snprintf(err, errsz, "Failed to chown %s: %s", o->path, strerror(errno));
                                cgops_undo();
                                return -1;
                        }
                }
        }
        return 0;
}
