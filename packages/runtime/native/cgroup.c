/*
 * Putting the container into its cgroup. Included by nspawn-helper.c (static functions only, no state).
 * No policy here: Node made the scope in every hierarchy, with its settings (src/cgroup.ts), and lists in the plan
 * where the container goes and where the helper comes from.
 *
 * Moving a process into a cgroup by its PID (cgroup.procs) write-locks the kernel's cgroup_threadgroup_rwsem, which
 * first waits for an RCU grace period: 10 to 18 ms on the project's VMs, on every start. Two moves that do without
 * that lock put the container in the same place:
 *   - v1 hierarchies: the helper, single-threaded, moves itself by writing "0" to the scope's `tasks` file (a thread
 *     moving itself takes no global lock); the container's PID 1 is cloned inside; then the helper goes back the
 *     same way;
 *   - the unified hierarchy: PID 1 is cloned straight into the scope, clone3(CLONE_INTO_CGROUP) (the lock is only
 *     read-locked for a fork). Its cgroup namespace is then made by PID 1 itself, unshare(CLONE_NEWCGROUP), so that
 *     it is rooted at the scope: one made by the clone would be rooted at the helper's cgroup.
 * Without CLONE_INTO_CGROUP (Linux before 5.7) the helper moves itself into the unified scope by PID, and back.
 */
#include <linux/sched.h>

#define CGROUP_MAX_V1 32

typedef struct {
        const char *v1_scope[CGROUP_MAX_V1], *v1_home[CGROUP_MAX_V1]; /* `tasks` files */
        int n_v1;
        const char *v2_scope, *v2_home; /* the scope's directory and the helper's cgroup.procs; NULL: none */
        int v2_fd;
        int v2_moved;     /* the fallback: the helper itself went into the unified scope */
        int unshare_cgns; /* PID 1 makes its cgroup namespace itself */
} CgroupPlan;

#define CGROUP_PLAN_INIT { .v2_fd = -1 }

/* A "cgv1 SCOPE-TASKS HOME-TASKS" or "cgv2 SCOPE-DIR HOME-PROCS" plan entry. */
static int cgroup_plan_add(CgroupPlan *c, int v2, const char *scope, const char *home) {
        if (v2) {
                c->v2_scope = scope;
                c->v2_home = home;
                return 0;
        }
        if (c->n_v1 >= CGROUP_MAX_V1)
                return -1;
        c->v1_scope[c->n_v1] = scope;
        c->v1_home[c->n_v1++] = home;
        return 0;
}

/* Before the clone: the helper into the v1 scopes, the unified scope opened for clone3. */
static int cgroup_enter(CgroupPlan *c, char *err, size_t errsz) {
        for (int i = 0; i < c->n_v1; i++)
                if (write_small_file(c->v1_scope[i], "0") < 0) {
                        snprintf(err, errsz, "Failed to move into %s: %s (%s)", c->v1_scope[i], strerror(errno), strerrorname_np(errno) ?: "?");
                        return -1;
                }
        if (c->v2_scope) {
                c->v2_fd = open(c->v2_scope, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (c->v2_fd < 0) {
                        snprintf(err, errsz, "Failed to open cgroup %s: %s (%s)", c->v2_scope, strerror(errno), strerrorname_np(errno) ?: "?");
                        return -1;
                }
        }
        return 0;
}

/* clone() with FLAGS (SIGCHLD added), into the unified scope when there is one. Returns as clone() does. */
static pid_t cgroup_clone(CgroupPlan *c, unsigned long flags, char *err, size_t errsz) {
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
                        snprintf(err, errsz, "Failed to move into %s: %s (%s)", procs, strerror(errno), strerrorname_np(errno) ?: "?");
                        errno = EPERM;
                        return -1;
                }
                c->v2_moved = 1;
        }
        return (pid_t) syscall(SYS_clone, SIGCHLD | flags, NULL, NULL, NULL, NULL);
}

/* The container's side of the clone: the descriptor is the host's business. */
static void cgroup_close(CgroupPlan *c) {
        if (c->v2_fd >= 0)
                close(c->v2_fd);
        c->v2_fd = -1;
}

/* After the clone: the helper back where it came from; only the container stays in the scope. */
static void cgroup_leave(CgroupPlan *c) {
        for (int i = 0; i < c->n_v1; i++)
                (void) write_small_file(c->v1_home[i], "0");
        if (c->v2_moved && c->v2_home) {
                char self[32];
                snprintf(self, sizeof self, "%d", (int) getpid());
                (void) write_small_file(c->v2_home, self);
        }
        cgroup_close(c);
}
