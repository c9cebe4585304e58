/*
 * Putting the container into its cgroup.
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
#pragma once
#include <stddef.h>
#include <sys/types.h>

typedef struct {
        const char *scope, *home; /* `tasks` files */
} CgroupV1;

typedef struct {
        CgroupV1 *v1;
        size_t n_v1, cap_v1;
        const char *v2_scope, *v2_home; /* the scope's directory and the helper's cgroup.procs; NULL: none */
        int v2_fd;
        int v2_moved;     /* the fallback: the helper itself went into the unified scope */
        int unshare_cgns; /* PID 1 makes its cgroup namespace itself */
} CgroupPlan;

#define CGROUP_PLAN_INIT { .v2_fd = -1 }

/* A v1 hierarchy: the scope's `tasks` file and the helper's. */
void cgroup_plan_add_v1(CgroupPlan *c, const char *scope, const char *home);

/* Before the clone: the helper into the v1 scopes, the unified scope opened for clone3. -1 with ERR. */
int cgroup_enter(CgroupPlan *c, char *err, size_t errsz);

/* clone() with FLAGS (SIGCHLD added), into the unified scope when there is one. Returns as clone() does. */
pid_t cgroup_clone(CgroupPlan *c, unsigned long flags, char *err, size_t errsz);

/* The container's side of the clone: the descriptor is the host's business. */
void cgroup_close(CgroupPlan *c);

/* After the clone: the helper back where it came from; only the container stays in the scope. */
void cgroup_leave(CgroupPlan *c);
