/*
 * The plan's records (wire.h) into `plan` (plan.h), with what each value may be checked on the way: a record the
 * wire format allows but that makes no sense (an unknown console mode or operation, a resource limit the kernel does
 * not have, a BPF program of half an instruction) is refused here with its name, before anything is done.
 */
#define _GNU_SOURCE
#include "plan.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "wire.h"

Plan plan = {
        .personality = -1,
        .uid = -1,
        .gid = -1,
        .idmap_tree = -1,
        .console_socket = -1,
        .devices = DEVICES_PLAN_INIT,
        .cgroup = CGROUP_PLAN_INIT,
};

const char *const op_kind_names[OP_KIND_COUNT] = {
        [OP_MOUNT] = "mount", [OP_REMOUNT] = "remount", [OP_SETATTR] = "setattr", [OP_MKDIR] = "mkdir",
        [OP_MKNOD] = "mknod", [OP_SYMLINK] = "symlink", [OP_WRITE] = "write", [OP_RMFILE] = "rmfile",
        [OP_CHOWN] = "chown", [OP_UMOUNT] = "umount", [OP_RMDIR] = "rmdir", [OP_CONSOLE] = "console",
        [OP_NOTIFY] = "notify", [OP_BLOB] = "blob", [OP_CHMOD] = "chmod",
};

static const char *const console_names[] = { "pipe", "interactive", "read-only", "passive" };

#define BAD(...) return snprintf(err, errsz, __VA_ARGS__), -1

/* V as an unsigned value of at most MAX (the C type it goes into) */
#define FITS(v, max, what) \
        do { \
                if ((v) > (max)) \
                        BAD("%s %llu is out of range", what, (unsigned long long) (v)); \
        } while (0)

static int op_record(Plan *p, const WireValue *v, char *err, size_t errsz) {
        int kind = -1;
        for (int k = 0; k < OP_KIND_COUNT; k++)
                if (!strcmp(v[0].s, op_kind_names[k]))
                        kind = k;
        if (kind < 0)
                BAD("unknown operation '%s'", v[0].s);
        FITS(v[1].u, 0xffffffffu, "operation flags");
        FITS(v[7].u, 0xffffffffu, "mode");
        Op *o = PUSH(p->ops, p->n_ops, p->cap_ops);
        o->kind = (OpKind) kind;
        o->flags = (unsigned) v[1].u;
        o->src = v[2].s;
        o->target = v[3].s;
        o->fstype = v[4].s;
        o->mflags = (unsigned long) v[5].u;
        o->data = v[6].s;
        o->mode = (unsigned) v[7].u;
        o->dev = v[8].u;
        o->tree_fd = -1;
        if (o->kind != OP_CONSOLE && o->target[0] != '/')
                BAD("%s target '%s' is not absolute", v[0].s, o->target);
        return 0;
}

static int cpus_record(Plan *p, const WireValue *v, char *err, size_t errsz) {
        uint64_t max = 0;
        if (v->n == 0)
                return 0; /* none: the affinity stays as it is */
        for (size_t i = 0; i < v->n; i++) {
                FITS(v->nums[i], 1u << 20, "CPU");
                if (v->nums[i] > max)
                        max = v->nums[i];
        }
        p->cpus = CPU_ALLOC(max + 1);
        if (!p->cpus)
                BAD("no memory for the CPU set");
        p->cpus_size = CPU_ALLOC_SIZE(max + 1);
        CPU_ZERO_S(p->cpus_size, p->cpus);
        for (size_t i = 0; i < v->n; i++)
                CPU_SET_S(v->nums[i], p->cpus_size, p->cpus);
        return 0;
}

static int plan_record(void *ctx, unsigned id, const WireValue *v, char *err, size_t errsz) {
        Plan *p = ctx;
        switch (id) {
        case P_ROOT:
                if (v[0].s[0] != '/')
                        BAD("'%s' is not an absolute path", v[0].s);
                p->root = v[0].s;
                break;
        case P_CLONE:
                p->clone_flags = (unsigned long) v[0].u;
                break;
        case P_SYNC:
                p->sync = 1;
                break;
        case P_LATESYNC:
                p->late_sync = 1;
                p->leave = v[0].b;
                break;
        case P_BINDCOPIES:
                p->bind_copies_first = 1;
                break;
        case P_OCIFDS:
                if (v[0].i < -1 || v[0].i > 0xffff)
                        BAD("console socket fd %lld", (long long) v[0].i);
                p->oci_fds = 1;
                p->console_socket = (int) v[0].i;
                p->pass_fds = xcalloc(v[1].n + 1, sizeof *p->pass_fds);
                for (size_t i = 0; i < v[1].n; i++) {
                        FITS(v[1].nums[i], 0xffff, "fd");
                        p->pass_fds[i] = (int) v[1].nums[i];
                }
                p->n_pass_fds = v[1].n;
                break;
        case P_CGNSLATE:
                p->cgns_late = 1;
                p->cg_from = (size_t) v[0].u;
                p->cg_to = (size_t) v[1].u;
                break;
        case P_LOGINUID:
                p->reset_loginuid = 1;
                break;
        case P_WINSIZE:
                FITS(v[0].u, 0xffff, "console width");
                FITS(v[1].u, 0xffff, "console height");
                p->win_cols = (unsigned) v[0].u, p->win_rows = (unsigned) v[1].u;
                break;
        case P_USERMAP:
        case P_IDMAP:
                FITS(v[0].u, 0xffffffffu, "shift");
                FITS(v[1].u, 0xffffffffu, "range");
                if (id == P_USERMAP)
                        p->usermap = 1, p->usermap_shift = (unsigned) v[0].u, p->usermap_range = (unsigned) v[1].u;
                else
                        p->idmap = 1, p->idmap_shift = (unsigned) v[0].u, p->idmap_range = (unsigned) v[1].u;
                break;
        case P_HOSTNAME:
                p->hostname = v[0].s;
                break;
        case P_OP:
                return op_record(p, v, err, errsz);
        case P_CONSOLE: {
                size_t k = 0;
                while (k < 4 && strcmp(v[0].s, console_names[k]))
                        k++;
                if (k == 4)
                        BAD("unknown console mode '%s'", v[0].s);
                p->console = (ConsoleMode) k;
                break;
        }
        case P_PERSONALITY:
                FITS(v[0].u, 0x7fffffffu, "personality");
                p->personality = (int) v[0].u;
                break;
        case P_RLIMIT: {
                FITS(v[0].u, RLIM_NLIMITS - 1, "resource");
                Rlim *r = PUSH(p->rlimits, p->n_rlimits, p->cap_rlimits);
                r->res = (int) v[0].u;
                r->lim.rlim_cur = (rlim_t) v[1].u; /* RLIM_INFINITY is all ones, as the plan writes infinity */
                r->lim.rlim_max = (rlim_t) v[2].u;
                break;
        }
        case P_UID:
        case P_GID:
                FITS(v[0].u, 0xfffffffeu, id == P_UID ? "UID" : "GID");
                *(id == P_UID ? &p->uid : &p->gid) = (long) v[0].u;
                break;
        case P_GROUPS:
                p->set_groups = 1;
                p->groups = xcalloc(v[0].n, sizeof *p->groups);
                for (size_t i = 0; i < v[0].n; i++) {
                        FITS(v[0].nums[i], 0xfffffffeu, "GID");
                        p->groups[i] = (gid_t) v[0].nums[i];
                }
                p->n_groups = v[0].n;
                break;
        case P_CHDIR:
                p->chdir = v[0].s;
                break;
        case P_NNP:
                p->no_new_privs = 1;
                break;
        case P_OOM:
                if (v[0].i < -1000 || v[0].i > 1000)
                        BAD("OOM score adjustment %lld", (long long) v[0].i);
                p->oom_set = 1;
                p->oom_score_adj = (int) v[0].i;
                break;
        case P_CPUS:
                return cpus_record(p, v, err, errsz);
        case P_CAPS:
                p->caps = (CapsPlan) { 1, v[0].u, v[1].u, v[2].u, v[3].u, v[4].u };
                break;
        case P_CAPWARN:
                p->caps_warning = v[0].s;
                break;
        case P_KEYRING:
                p->session_keyring = 1;
                break;
        case P_SECCOMP:
                return seccomp_plan_set(&p->seccomp, v[0].x, v[0].n, err, errsz);
        case P_SECCOMPOCI:
                FITS(v[0].u, 0xffffffffu, "seccomp filter flags");
                p->seccomp.flags = (unsigned) v[0].u;
                p->seccomp.late = v[1].b;
                break;
        case P_SECCOMPWARN:
                strlist_push(&p->seccomp.warnings, v[0].s);
                break;
        case P_CGV1:
                cgroup_plan_add_v1(&p->cgroup, v[0].s, v[1].s);
                break;
        case P_CGV2:
                p->cgroup.v2_scope = v[0].s;
                p->cgroup.v2_home = v[1].s;
                break;
        case P_DEVBPF:
                return devices_plan_set(&p->devices, v[0].b, v[1].s, v[2].x, v[2].n, err, errsz);
        case P_PID2:
                p->pid2 = 1;
                break;
        case P_LOOPBACK:
                p->loopback = 1;
                break;
        case P_VOLATILE:
                if (strcmp(v[0].s, "yes") && strcmp(v[0].s, "state") && strcmp(v[0].s, "overlay"))
                        BAD("unknown volatile mode '%s'", v[0].s);
                p->volatile_mode = v[0].s;
                break;
        case P_BINDMAP: {
                for (int k = 0; k < 4; k++)
                        FITS(v[k].u, 0xfffffffeu, "bind-user map ID");
                BindMap *m = PUSH(p->bindmaps, p->n_bindmaps, p->cap_bindmaps);
                m->uid = (unsigned) v[0].u, m->host_uid = (unsigned) v[1].u, m->gid = (unsigned) v[2].u, m->host_gid = (unsigned) v[3].u;
                if (p->n_bindmaps > 1 && (m->uid <= m[-1].uid || m->gid <= m[-1].gid))
                        BAD("bind-user maps are not in increasing order");
                break;
        }
        case P_BLOB: {
                Blob *b = PUSH(p->blobs, p->n_blobs, p->cap_blobs);
                b->data = v[0].x;
                b->size = v[0].n;
                break;
        }
        case P_HOLDFD: {
                FITS(v[0].u, 0x7fffffffu, "descriptor");
                int fd = (int) v[0].u;
                if (!plan_decode_only) {
                        if (fd < 3 || fcntl(fd, F_GETFD) < 0)
                                BAD("held fd %d is not open", fd);
                        (void) fcntl(fd, F_SETFD, FD_CLOEXEC); /* ours: never the container's */
                }
                *PUSH(p->held_fds, p->n_held, p->cap_held) = fd;
                break;
        }
        case P_IMAGE:
                return image_plan_add(&p->image, v[0].s, v[1].s, v[2].s, v[3].s, v[4].s, v[5].u, v[6].u, v[7].b, v[8].b, err, errsz);
        case P_PIVOTROOT:
                if (v[0].s[0] != '/' || (v[1].s[0] && v[1].s[0] != '/'))
                        BAD("pivot root paths must be absolute ('%s', '%s')", v[0].s, v[1].s);
                p->pivot_new = v[0].s;
                p->pivot_old = v[1].s[0] ? v[1].s : NULL;
                break;
        case P_NETUP:
                return netcfg_add(&p->net, 'u', v[0].s, 0, NULL, 0, err, errsz);
        case P_NETADDR:
                FITS(v[3].u, 128, "prefix length");
                return netcfg_add(&p->net, 'a', v[0].s, (unsigned) (v[1].u > 6 ? 0 : v[1].u), v[2].s, (unsigned) v[3].u, err, errsz);
        case P_NETROUTE:
                return netcfg_add(&p->net, 'r', v[0].s, (unsigned) (v[1].u > 6 ? 0 : v[1].u), v[2].s, 0, err, errsz);
        case P_NSJOIN:
                return nsjoin_add(&p->nsjoin, (unsigned long) v[0].u, v[1].s, err, errsz);
        case P_NETNS:
                p->net.netns_path = v[0].s;
                break;
        case P_SEARCH:
                p->search_path = 1;
                break;
        case P_ENV:
                p->env = v[0].strs, p->n_env = v[0].n;
                break;
        case P_STUBENV:
                p->stub_env = v[0].strs, p->n_stub_env = v[0].n;
                break;
        case P_ARGV:
                p->argv = v[0].strs, p->n_argv = v[0].n;
                break;
        case P_FALLBACK:
                *PUSH(p->fallback, p->n_fallback, p->cap_fallback) = (Fallback) { v[0].s, v[1].s };
                break;
        case P_FALLBACKARGS:
                p->fallback_args = v[0].strs, p->n_fallback_args = v[0].n;
                break;
        case P_FINALNL:
                p->final_newline = 1;
                break;
        case P_SURVIVE:
                p->survive = 1;
                break;
        case P_STDOUT:
                p->stdout_path = v[0].s;
                break;
        case P_SDNOTIFY:
                p->sd_notify = 1, p->notify_ready = v[0].b, p->restart_exits = v[1].b;
                break;
        case P_LOCK:
                locks_add(&p->locks, v[0].s, v[1].b, v[2].s);
                break;
        case P_LOCKFD:
                FITS(v[0].u, 0x7fffffffu, "descriptor");
                if (plan_decode_only) {
                        locks_add(&p->locks, v[1].s, v[2].b, NULL);
                        p->locks.v[p->locks.n - 1].fd = (int) v[0].u;
                        break;
                }
                return locks_inherit(&p->locks, (int) v[0].u, v[1].s, v[2].b, err, errsz);
        case P_RMSUBVOL:
                strlist_push(&p->ephemeral.subvols, v[0].s);
                break;
        case P_RMMOUNT:
                strlist_push(&p->ephemeral.mounts, v[0].s);
                break;
        case P_RMTREE:
                strlist_push(&p->ephemeral.trees, v[0].s);
                break;
        case P_CGMKDIR: {
                CgOp *o = cgops_add(&p->cgops, 'm', v[0].s);
                o->exclusive = v[1].b;
                o->busy = v[2].s;
                break;
        }
        case P_CGWRITE: {
                CgOp *o = cgops_add(&p->cgops, 'w', v[0].s);
                o->data = v[1].strs;
                o->n_data = v[1].n;
                break;
        }
        case P_CGCHOWN: {
                FITS(v[1].u, 0xfffffffeu, "UID");
                FITS(v[2].u, 0xfffffffeu, "GID");
                CgOp *o = cgops_add(&p->cgops, 'c', v[0].s);
                o->uid = (unsigned long) v[1].u;
                o->gid = (unsigned long) v[2].u;
                break;
        }
        case P_HANDOFF:
                FITS(v[1].u, 64, "kill signal");
                p->handoff.on = 1;
                p->handoff.quiet = v[0].b;
                p->handoff.kill_signal = (int) v[1].u;
                p->handoff.keep_unit = v[2].b;
                break;
        case P_HOMSGS: {
                HandoffPlan *h = &p->handoff;
                h->msg_ok = v[0].s, h->msg_fail = v[1].s, h->msg_shutdown = v[2].s;
                h->msg_reboot = v[3].s, h->msg_signal = v[4].s, h->msg_halt = v[5].s;
                break;
        }
        case P_HOSIGNAMES:
                p->handoff.signames = v[0].strs, p->handoff.n_signames = v[0].n;
                break;
        case P_HORM:
                strlist_push(&p->handoff.rm, v[0].s);
                break;
        case P_HOKILL:
                p->handoff.kill_file = v[0].s;
                break;
        case P_HOSLICE:
                strlist_push(&p->handoff.slices, v[0].s);
                break;
        case P_HOMARKER:
                p->handoff.marker = v[0].s;
                break;
        case P_HOREEXEC:
                p->handoff.reexec = v[0].strs, p->handoff.n_reexec = v[0].n;
                break;
        }
        return 0;
}

/* bprm_stack_limits() of the kernel: what execve() takes in argument and environment strings and their pointers,
 * given the stack's soft limit STACK (src/limits.ts computes it the same way, before anything is made) */
static size_t exec_args_limit(rlim_t stack) {
        size_t page = (size_t) sysconf(_SC_PAGESIZE);
        size_t limit = 6u << 20; /* _STK_LIM / 4 * 3 */
        if (stack != RLIM_INFINITY && stack / 4 < limit)
                limit = (size_t) (stack / 4);
        if (limit < 32 * page) /* ARG_MAX: 32 pages, whatever the stack */
                limit = 32 * page;
        return limit;
}

/* The payload's execve() (each candidate's) fits in what the kernel takes with the planned stack limit. */
static int check_exec_size(const Plan *p, char *err, size_t errsz) {
        rlim_t stack = RLIM_INFINITY;
        struct rlimit cur;
        if (getrlimit(RLIMIT_STACK, &cur) == 0)
                stack = cur.rlim_cur;
        for (size_t i = 0; i < p->n_rlimits; i++)
                if (p->rlimits[i].res == RLIMIT_STACK)
                        stack = p->rlimits[i].lim.rlim_cur;
        size_t max_string = 32 * (size_t) sysconf(_SC_PAGESIZE), bytes = 0;
        int fallback = p->n_argv == 0;
        const char *const *list = fallback ? p->fallback_args : p->argv;
        size_t n_list = fallback ? p->n_fallback_args : p->n_argv;
        for (size_t i = 0; i < n_list; i++) {
                size_t len = strlen(list[i]) + 1;
                if (len > max_string)
                        BAD("Argument %zu of the container's command line is %zu bytes long, more than execve() takes in one (%zu): Argument list too long.", i + 1, len - 1, max_string - 1);
                bytes += len;
        }
        for (size_t i = 0; i < p->n_env; i++) {
                size_t len = strlen(p->env[i]) + 1;
                if (len > max_string)
                        BAD("A variable of the container's environment is %zu bytes long, more than execve() takes in one (%zu): Argument list too long.", len - 1, max_string - 1);
                bytes += len;
        }
        /* the strings, the program's path (and a fallback's argv[0]), and a pointer for each string and one more */
        size_t n_args = fallback ? n_list + 1 : n_list;
        size_t used = bytes + 4096 + (fallback ? 4096 : 0) + (n_args + p->n_env + 1) * sizeof(void *);
        size_t limit = exec_args_limit(stack);
        if (used > limit) {
                char st[32];
                if (stack == RLIM_INFINITY)
                        snprintf(st, sizeof st, "infinity");
                else
                        snprintf(st, sizeof st, "%llu", (unsigned long long) stack);
                BAD("The container's command line and environment (%zu arguments, %zu variables: %zu bytes with their pointers) are more than the %zu bytes execve() takes with a stack limit of %s: Argument list too long.",
                    n_args, p->n_env, used, limit, st);
        }
        return 0;
}

int plan_decode_only;

int plan_decode(const WireMessage *m, char *err, size_t errsz) {
        if (wire_decode(&wire_plan_schema, m, plan_record, &plan, err, errsz) < 0)
                return -1;
        /* the ops run after the pivot (cgnslate) are some of those given */
        if (plan.cgns_late && (plan.cg_from > plan.cg_to || plan.cg_to > plan.n_ops)) {
                snprintf(err, errsz, "invalid plan: cgnslate: ops %zu..%zu of %zu", plan.cg_from, plan.cg_to, plan.n_ops);
                return -1;
        }
        return 0;
}

int plan_read(int fd, int until_eof, char *err, size_t errsz) {
        WireMessage m;
        char why[2048];
        int r = wire_read(fd, until_eof, &m, why, sizeof why);
        if (r == 0)
                return 0;
        if (r < 0) {
                snprintf(err, errsz, "invalid plan: %s", why);
                return -2;
        }
        if (plan_decode(&m, err, errsz) < 0)
                return -2;
        /* (the body stays: the plan's strings are in it) */
        if (plan.handoff.on && plan.sync) {
                snprintf(err, errsz, "invalid plan: a handed-over plan cannot wait for Node (sync)");
                return -1;
        }
        if (plan.n_argv == 0 && plan.n_fallback == 0) {
                snprintf(err, errsz, "invalid plan: no command (argv or fallback)");
                return -1;
        }
        if (check_exec_size(&plan, err, errsz) < 0)
                return -1;
        return 1;
}
