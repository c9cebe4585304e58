/* Joining existing namespaces by path (see nsjoin.h). */
#define _GNU_SOURCE
#include "nsjoin.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int nsjoin_add(NsJoinPlan *p, unsigned long type, const char *path, char *err, size_t errsz) {
        if (p->n >= NSJOIN_MAX) {
                snprintf(err, errsz, "nsjoin: more than %d namespaces to join", NSJOIN_MAX);
                return -1;
        }
        p->type[p->n] = type, p->path[p->n] = path, p->n++;
        return 0;
}

static int rank(unsigned long t) {
        return t == CLONE_NEWUSER ? 0 : t == CLONE_NEWNS ? 2 : 1;
}

int nsjoin_enter(const NsJoinPlan *p, const char *root, char *err, size_t errsz) {
        int fds[NSJOIN_MAX];
        size_t i;
        for (i = 0; i < p->n; i++) {
                fds[i] = open(p->path[i], O_RDONLY | O_NOCTTY | O_CLOEXEC);
                if (fds[i] < 0) {
                        snprintf(err, errsz, "open %s: %s", p->path[i], strerror(errno));
                        while (i-- > 0)
                                close(fds[i]);
                        return -1;
                }
        }
        int r = 0, joined_mnt = 0;
        for (int pass = 0; pass < 3 && r == 0; pass++)
                for (i = 0; i < p->n && r == 0; i++) {
                        if (rank(p->type[i]) != pass)
                                continue;
                        if (setns(fds[i], (int) p->type[i]) < 0) {
                                snprintf(err, errsz, "joining the namespace %s: %s", p->path[i], strerror(errno));
                                r = -1;
                        } else if (p->type[i] == CLONE_NEWNS)
                                joined_mnt = 1;
                }
        for (i = 0; i < p->n; i++)
                close(fds[i]);
        if (r == 0 && joined_mnt && chdir(root) < 0) {
                snprintf(err, errsz, "chdir(%s) in the joined mount namespace: %s", root, strerror(errno));
                r = -1;
        }
        return r;
}

int nsjoin_has(const NsJoinPlan *p, unsigned long type) {
        for (size_t i = 0; i < p->n; i++)
                if (p->type[i] == type)
                        return 1;
        return 0;
}
