/*
 * Making the container's cgroup: the plan's cgmkdir/cgwrite/cgchown records, in order. What to make, with which
 * settings, is src/cgroup.ts's (createMachineCgroup() over recordingCgroupFs()); the helper does it when nspawn has
 * handed over to it, so that the work costs system calls only. A scope that exists by then is another nspawn's:
 * refused with the plan's message, and what the helper made goes again.
 */
#pragma once
#include <stddef.h>

typedef struct {
        char kind; /* 'm' mkdir, 'w' write, 'c' chown */
        const char *path;
        int exclusive;       /* m: an existing directory is an error (BUSY) */
        const char *busy;
        const char **data;   /* w: written one write(2) each */
        size_t n_data;
        unsigned long uid, gid; /* c */
} CgOp;

typedef struct {
        CgOp *op;
        size_t n, cap;
        const char **made; /* directories made here, in order */
        size_t n_made, cap_made;
} CgOpsPlan;

/* one more operation, to be filled in */
CgOp *cgops_add(CgOpsPlan *c, char kind, const char *path);

/* Does them in order; on failure ERR says why and what was made goes again. */
int cgops_run(CgOpsPlan *c, char *err, size_t errsz);

/* Was PATH made by this helper? (then it is ours to remove) */
int cgops_made(const CgOpsPlan *c, const char *path);
