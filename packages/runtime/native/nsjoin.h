/* Joining existing namespaces by path before the container's PID 1 is cloned (OCI linux.namespaces[].path). */
#pragma once
#include <stddef.h>

#define NSJOIN_MAX 8

typedef struct {
        size_t n;
        unsigned long type[NSJOIN_MAX]; /* CLONE_NEW* */
        const char *path[NSJOIN_MAX];
} NsJoinPlan;

int nsjoin_add(NsJoinPlan *p, unsigned long type, const char *path, char *err, size_t errsz);
/* Opens every path first, then setns()s each (user first, mount last); after a mount namespace was joined
 * the working directory is ROOT again. */
int nsjoin_enter(const NsJoinPlan *p, const char *root, char *err, size_t errsz);
/* whether P joins a namespace of TYPE (a joined PID namespace leaves PID 1's parent outside it) */
int nsjoin_has(const NsJoinPlan *p, unsigned long type);
