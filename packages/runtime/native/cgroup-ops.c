/* Making the container's cgroup (cgroup-ops.h). */
#define _GNU_SOURCE
#include "cgroup-ops.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

CgOp *cgops_add(CgOpsPlan *c, char kind, const char *path) {
        CgOp *o = PUSH(c->op, c->n, c->cap);
        o->kind = kind;
        o->path = path;
        return o;
}

int cgops_made(const CgOpsPlan *c, const char *path) {
        for (size_t i = 0; i < c->n_made; i++)
                if (!strcmp(c->made[i], path))
                        return 1;
        return 0;
}

/* What the helper made, deepest (last) first. */
static void cgops_undo(CgOpsPlan *c) {
        for (size_t i = c->n_made; i-- > 0;)
                (void) rmdir(c->made[i]);
        c->n_made = 0;
}

/* Another nspawn's teardown removes an empty machine.slice it made (rmdir fails while any scope is in it), so the
 * slice can vanish between our mkdir (EEXIST) and the mkdir of our scope below it, or a write into it. ENOENT there
 * starts the ops again from the first one (each is idempotent: mkdir EEXIST of a non-exclusive directory, writes of
 * controllers; a directory this run made counts as made), a bounded number of times. */
#define CGOPS_VANISHED_RETRIES 16

int cgops_run(CgOpsPlan *c, char *err, size_t errsz) {
        unsigned retries = 0;
        for (size_t i = 0; i < c->n; i++) {
                CgOp *o = &c->op[i];
                if (o->kind == 'm') {
                        if (mkdir(o->path, 0755) == 0) {
                                if (!cgops_made(c, o->path))
                                        *PUSH(c->made, c->n_made, c->cap_made) = o->path;
                        } else if (errno == EEXIST && cgops_made(c, o->path)) {
                                /* ours, from before a retry */
                        } else if (errno == ENOENT && i > 0 && retries < CGOPS_VANISHED_RETRIES) {
                                retries++;
                                i = (size_t) -1; /* the parent vanished: again from the first op */
                        } else if (errno != EEXIST || o->exclusive) {
                                if (errno == EEXIST)
                                        snprintf(err, errsz, "%s", o->busy);
                                else
                                        snprintf(err, errsz, "Failed to create cgroup %s: %s", o->path, strerror(errno));
                                cgops_undo(c);
                                return -1;
                        }
                } else if (o->kind == 'w') {
                        int fd = open(o->path, O_WRONLY | O_CLOEXEC);
                        int bad = fd < 0;
                        for (size_t k = 0; !bad && k < o->n_data; k++)
                                if (write(fd, o->data[k], strlen(o->data[k])) < 0)
                                        bad = 1;
                        int e = errno;
                        if (fd >= 0)
                                close(fd);
                        if (bad && e == ENOENT && fd < 0 && retries < CGOPS_VANISHED_RETRIES) {
                                retries++;
                                i = (size_t) -1;
                        } else if (bad) {
                                snprintf(err, errsz, "Failed to write %s: %s", o->path, strerror(e));
                                cgops_undo(c);
                                return -1;
                        }
                } else if (o->kind == 'c') {
                        /* a file this hierarchy does not have is not an error (as chown_cgroup()) */
                        if (chown(o->path, (uid_t) o->uid, (gid_t) o->gid) < 0 && errno != ENOENT) {
                                snprintf(err, errsz, "Failed to chown %s: %s", o->path, strerror(errno));
                                cgops_undo(c);
                                return -1;
                        }
                }
        }
        return 0;
}
