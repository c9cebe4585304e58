/* Putting the container into its cgroup (cgroup.h). */
#define _GNU_SOURCE
#include "cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

void cgroup_plan_add_v1(CgroupPlan *c, const char *scope, const char *home) {
        CgroupV1 *v = PUSH(c->v1, c->n_v1, c->cap_v1);
        v->scope = scope;
        v->home = home;
}

/* Before the clone: the helper into the v1 scopes, the unified scope opened for clone3. */
int cgroup_enter(CgroupPlan *c, char *err, size_t errsz) {
        for (size_t i = 0; i < c->n_v1; i++)
                if (write_small_file(c->v1[i].scope, "0") < 0) {
                        snprintf(err, errsz, "Failed to move into %s: %s (%s)", c->v1[i].scope, strerror(errno), errno_name(errno));
                        return -1;
                }
        if (c->v2_scope) {
                c->v2_fd = open(c->v2_scope, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (c->v2_fd < 0) {
                        snprintf(err, errsz, "Failed to open cgroup %s: %s (%s)", c->v2_scope, strerror(errno), errno_name(errno));
                        return -1;
                }
        }
        return 0;
}

/* clone() with FLAGS (SIGCHLD added), into the unified scope when there is one. Returns as clone() does. */
pid_t cgroup_clone(CgroupPlan *c, unsigned long flags, char *err, size_t errsz) {
        if (c->v2_fd >= 0) {
                struct clone_args a;
                memset(&a, 0, sizeof a);
                a.flags = (flags & ~(unsigned long) CLONE_NEWCGROUP) | CLONE_INTO_CGROUP;
                a.exit_signal = SIGCHLD;
                a.cgroup = (uint64_t) c->v2_fd;
                c->unshare_cgns = (flags & CLONE_NEWCGROUP) != 0;
                pid_t pid = (pid_t) syscall(SYS_clone3, &a, sizeof a);
                if (pid >= 0 || (errno != ENOSYS && errno != E2BIG && errno != EINVAL))
                        return pid;
                /* an older kernel: in by PID, and the cgroup namespace from the clone */
                c->unshare_cgns = 0;
                char self[32];
                snprintf(self, sizeof self, "%d", (int) getpid());
                char procs[PATH_MAX];
                snprintf(procs, sizeof procs, "%s/cgroup.procs", c->v2_scope);
                if (write_small_file(procs, self) < 0) {
                        snprintf(err, errsz, "Failed to move into %s: %s (%s)", procs, strerror(errno), errno_name(errno));
                        errno = EPERM;
                        return -1;
                }
                c->v2_moved = 1;
        }
        return (pid_t) syscall(SYS_clone, SIGCHLD | flags, NULL, NULL, NULL, NULL);
}

/* The container's side of the clone: the descriptor is the host's business. */
void cgroup_close(CgroupPlan *c) {
        if (c->v2_fd >= 0)
                close(c->v2_fd);
        c->v2_fd = -1;
}

/* After the clone: the helper back where it came from; only the container stays in the scope. */
void cgroup_leave(CgroupPlan *c) {
        for (size_t i = 0; i < c->n_v1; i++)
                (void) write_small_file(c->v1[i].home, "0");
        if (c->v2_moved && c->v2_home) {
                char self[32];
                snprintf(self, sizeof self, "%d", (int) getpid());
                (void) write_small_file(c->v2_home, self);
        }
        cgroup_close(c);
}
