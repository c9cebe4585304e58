/*
 * nspawn-helper: the single-threaded part of @nspawn/runtime.
 *
 * Node cannot enter namespaces (it is multithreaded), so this small program does the steps that must run in a
 * fresh process: clone into namespaces, mount what the plan lists, pivot_root, set the hostname, switch the
 * console, drop to the user, and exec. It has no policy: every path, flag and value comes from the plan that
 * the TypeScript side (src/plan.ts) builds and sends over fd 3.
 *
 * Protocol on fd 3 (a socket from Node):
 *   Node -> helper: "<length>\n" then <length> bytes of plan (NUL-separated tokens, see src/protocol.ts),
 *                   later "go\n" when the plan asked for "sync" (after Node wrote uid maps, moved links, ...).
 *   helper -> Node: "pid <host pid of container PID 1>\n", "ready\n" (payload exec'd), "error <text>\n",
 *                   "escape <kill|poweroff|reboot>\n", "notify READY=1\n" / "notify STATUS=<text>\n" (what the
 *                   container's PID 1 sent to /run/host/notify), and last "exit <code>\n" or "signal <signo>\n".
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/btrfs.h>
#include <linux/close_range.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define CTL_FD 3
/* Decodes 2*LEN hex digits into OUT (for the BPF programs the plan carries). Returns 0, or -1 at a non-hex digit. */
static int decode_hex(const char *hex, unsigned char *out, size_t len) {
        for (size_t i = 0; i < len; i++) {
                int v = 0;
                for (int k = 0; k < 2; k++) {
                        char c = hex[i * 2 + (size_t) k];
                        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
                        if (d < 0)
                                return -1;
                        v = v << 4 | d;
                }
                out[i] = (unsigned char) v;
        }
        return 0;
}

/* Writes S to the existing file P (a cgroup, proc or sysfs file) in one write(2); 0, or -1 with errno. */
static int write_small_file(const char *p, const char *s) {
        int fd = open(p, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -1;
        ssize_t n = write(fd, s, strlen(s));
        int e = errno;
        close(fd);
        errno = e;
        return n == (ssize_t) strlen(s) ? 0 : -1;
}

#include "caps.c" /* capabilities and the session keyring (static functions) */
#include "seccomp.c" /* the system call filter (static functions) */
#include "devices.c" /* the device policy's BPF program on cgroup2 (static functions) */
#include "cgroup.c" /* into the container's cgroup (static functions) */
#include "ofd-lock.c" /* make_lock_file()'s lock, for locks.c and netcfg.c (static functions) */
#include "locks.c" /* image locks held for the container's life (static functions) */
#include "cgroup-ops.c" /* making the container's cgroup (static functions) */
#include "netcfg.c" /* host0 and friends: up, addresses, routes; --network-namespace-path= (static functions) */
#define MAX_OPS 512
#define MAX_LIST 1024

/* Op flags; keep in sync with OpFlag in src/protocol.ts. */
#define OPF_MKDIR 1u        /* create the target (and parents) as a directory */
#define OPF_TOUCH 2u        /* create the target as an empty file (parents as directories) */
#define OPF_SRC_IN_ROOT 4u  /* the source is a path inside the container root */
#define OPF_OPTIONAL 8u     /* failure is not fatal */
#define OPF_RECURSIVE 16u   /* setattr: apply to the whole subtree */
#define OPF_IF_EXISTS 32u   /* skip when the source does not exist */
#define OPF_WARN 128u       /* with OPF_OPTIONAL: a failure is reported as a warning */
#define OPF_MKPOINT 64u     /* create the target like the source: a directory for a directory, else a file */

typedef struct {
        const char *kind, *src, *target, *fstype, *data;
        unsigned flags;
        unsigned long mflags;
        unsigned mode;
        unsigned long long dev;
        int tree_fd;  /* a detached copy of a host bind source, made before the clone (-1: none) */
        int skip;     /* the source was optional and missing */
} Op;

typedef struct {
        int res;
        struct rlimit lim;
} Rlim;

static struct {
        const char *root;
        unsigned long clone_flags;
        int sync;
        const char *hostname;
        Op ops[MAX_OPS];
        int n_ops;
        const char *console; /* pipe, interactive, read-only, passive */
        int personality;
        Rlim rlimits[32];
        int n_rlimits;
        long uid, gid;
        gid_t groups[NGROUPS_MAX];
        int n_groups;
        int set_groups;
        const char *chdir;
        int pid2;
        int loopback;
        int search_path;
        const char *env[MAX_LIST];
        int n_env;
        const char *argv[MAX_LIST];
        int n_argv;
        const char *fallback[64]; /* pairs: path, argv0 */
        int n_fallback;
        const char *fallback_args[MAX_LIST]; /* after argv0 for each fallback (init's arguments) */
        int n_fallback_args;
        int sd_notify;        /* talk sd_notify to our own $NOTIFY_SOCKET */
        int notify_ready;     /* READY=1 only when the container's init sends it */
        int restart_exits;    /* a reboot ends nspawn (exit 133): STOPPING=1 with "Restarting..." */
        int final_newline;    /* end the forwarded console output with a newline if it did not */
        int survive;          /* outlive whoever started us (nspawnd: its containers survive its restart) */
        const char *stdout_path; /* our stdout and stderr become this file (appending) */
        const char *stub_env[4];
        int n_stub_env;
        int no_new_privs;
        int oom_set;
        int oom_score_adj;
        cpu_set_t cpus;
        int cpus_set;
        CapsPlan caps;
        const char *caps_warning;
        int session_keyring;
        SeccompPlan seccomp;
        DevicesPlan devices;
        CgroupPlan cgroup;
        NetcfgPlan net;
        int usermap;          /* the outer writes "0 SHIFT RANGE" to the child's uid_map and gid_map, then lets it go */
        unsigned usermap_shift, usermap_range;
        int idmap;            /* the root as an idmapped mount: on-disk 0..range-1 seen as shift.. (-U, map) */
        unsigned idmap_shift, idmap_range;
        int idmap_tree;
} plan = { .idmap_tree = -1, .personality = -1, .uid = -1, .gid = -1, .devices = DEVICES_PLAN_INIT, .cgroup = CGROUP_PLAN_INIT };

static int sync_fd = -1; /* child's end of the child<->outer socket */
static int send_fd(int sock, int fd, char tag);
static char *argv0_buf;   /* our argv[0], rewritten to name the stub init like systemd's rename_process() */
static size_t argv0_len;

/* ---------- small utilities ---------- */

static void die_errno_child(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

static void send_error(const char *msg) {
        char buf[4096];
        int n = snprintf(buf, sizeof buf, "E%s", msg);
        if (sync_fd >= 0)
                (void) !send(sync_fd, buf, (size_t) n, MSG_NOSIGNAL);
        else
                fprintf(stderr, "nspawn-helper: %s\n", msg);
}

static void warn_errno_child(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warn_errno_child(const char *fmt, ...) {
        char msg[3000], full[4000];
        int e = errno;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        int n = snprintf(full, sizeof full, "W%s: %s", msg, strerror(e));
        if (sync_fd >= 0)
                (void) !send(sync_fd, full, (size_t) n, MSG_NOSIGNAL);
        errno = e;
}

static void die_errno_child(const char *fmt, ...) {
        char msg[3000];
        int e = errno;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        char full[4000];
        snprintf(full, sizeof full, "%s: %s (%s)", msg, strerror(e), strerrorname_np(e) ?: "?");
        send_error(full);
        _exit(1);
}

static int write_all(int fd, const void *p, size_t n) {
        const char *c = p;
        while (n > 0) {
                ssize_t k = write(fd, c, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN) {
                                struct pollfd pf = { .fd = fd, .events = POLLOUT };
                                (void) poll(&pf, 1, -1);
                                continue;
                        }
                        return -1;
                }
                c += k;
                n -= (size_t) k;
        }
        return 0;
}

static int handoff_on; /* --handoff: the helper runs in nspawn's place (native/handoff.c) */
static void ho_event(char *line);
static uint64_t now_ms(void);

static void ctl_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void ctl_printf(const char *fmt, ...) {
        char buf[4200];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        if ((size_t) n >= sizeof buf)
                n = sizeof buf - 1;
        if (handoff_on) {
                ho_event(buf);
                return;
        }
        (void) write_all(CTL_FD, buf, (size_t) n);
}

static unsigned long long parse_u(const char *s) {
        return strtoull(s, NULL, 0);
}

#include "ptyfwd.c" /* the console's output, edge-triggered (static functions) */
#include "handoff.c" /* the helper in nspawn's place (static functions and state) */

/* ---------- plan parsing ---------- */

static char *plan_buf;
static size_t plan_len, plan_pos;

static const char *tok(void) {
        if (plan_pos >= plan_len) {
                fprintf(stderr, "nspawn-helper: truncated plan\n");
                exit(2);
        }
        const char *t = plan_buf + plan_pos;
        plan_pos += strlen(t) + 1;
        return t;
}

static void parse_plan(void);

/* --handoff: the plan's tokens are our arguments after it. */
static void plan_from_argv(int argc, char **argv) {
        size_t len = 0;
        for (int i = 2; i < argc; i++)
                len += strlen(argv[i]) + 1;
        plan_buf = malloc(len + 1);
        if (!plan_buf)
                exit(2);
        for (int i = 2; i < argc; i++) {
                size_t k = strlen(argv[i]) + 1;
                memcpy(plan_buf + plan_len, argv[i], k);
                plan_len += k;
        }
        plan_buf[plan_len] = 0;
        parse_plan();
}

static void read_plan(void) {
        char hdr[32];
        size_t h = 0;
        for (;;) {
                char c;
                ssize_t k = read(CTL_FD, &c, 1);
                if (k <= 0) {
                        if (h == 0 && k == 0)
                                exit(3); /* started ahead of its plan, then not needed: leave quietly */
                        fprintf(stderr, "nspawn-helper: no plan on fd %d (run me through @nspawn/runtime)\n", CTL_FD);
                        exit(2);
                }
                if (c == '\n')
                        break;
                if (h + 1 >= sizeof hdr)
                        exit(2);
                hdr[h++] = c;
        }
        hdr[h] = 0;
        plan_len = (size_t) strtoull(hdr, NULL, 10);
        plan_buf = malloc(plan_len + 1);
        if (!plan_buf)
                exit(2);
        size_t got = 0;
        while (got < plan_len) {
                ssize_t k = read(CTL_FD, plan_buf + got, plan_len - got);
                if (k <= 0) {
                        fprintf(stderr, "nspawn-helper: short plan\n");
                        exit(2);
                }
                got += (size_t) k;
        }
        plan_buf[plan_len] = 0;
        parse_plan();
}

static void parse_plan(void) {
        if (strcmp(tok(), "NSPAWN-PLAN-1") != 0) {
                fprintf(stderr, "nspawn-helper: plan version mismatch\n");
                exit(2);
        }
        while (plan_pos < plan_len) {
                const char *k = tok();
                if (!strcmp(k, "root"))
                        plan.root = tok();
                else if (!strcmp(k, "clone"))
                        plan.clone_flags = parse_u(tok());
                else if (!strcmp(k, "sync"))
                        plan.sync = 1;
                else if (!strcmp(k, "usermap")) {
                        plan.usermap = 1;
                        plan.usermap_shift = (unsigned) parse_u(tok());
                        plan.usermap_range = (unsigned) parse_u(tok());
                }
                else if (!strcmp(k, "idmap")) {
                        plan.idmap = 1;
                        plan.idmap_shift = (unsigned) parse_u(tok());
                        plan.idmap_range = (unsigned) parse_u(tok());
                }
                else if (!strcmp(k, "hostname"))
                        plan.hostname = tok();
                else if (!strcmp(k, "op")) {
                        if (plan.n_ops >= MAX_OPS)
                                exit(2);
                        Op *o = &plan.ops[plan.n_ops++];
                        o->kind = tok();
                        o->flags = (unsigned) parse_u(tok());
                        o->src = tok();
                        o->target = tok();
                        o->fstype = tok();
                        o->mflags = (unsigned long) parse_u(tok());
                        o->data = tok();
                        o->mode = (unsigned) parse_u(tok());
                        o->dev = parse_u(tok());
                        o->tree_fd = -1;
                } else if (!strcmp(k, "console"))
                        plan.console = tok();
                else if (!strcmp(k, "personality"))
                        plan.personality = (int) parse_u(tok());
                else if (!strcmp(k, "rlimit")) {
                        if (plan.n_rlimits >= 32)
                                exit(2);
                        Rlim *r = &plan.rlimits[plan.n_rlimits++];
                        r->res = (int) parse_u(tok());
                        const char *s = tok(), *h2 = tok();
                        r->lim.rlim_cur = !strcmp(s, "infinity") ? RLIM_INFINITY : parse_u(s);
                        r->lim.rlim_max = !strcmp(h2, "infinity") ? RLIM_INFINITY : parse_u(h2);
                } else if (!strcmp(k, "uid"))
                        plan.uid = (long) parse_u(tok());
                else if (!strcmp(k, "gid"))
                        plan.gid = (long) parse_u(tok());
                else if (!strcmp(k, "group")) {
                        plan.set_groups = 1;
                        if (plan.n_groups < NGROUPS_MAX)
                                plan.groups[plan.n_groups++] = (gid_t) parse_u(tok());
                } else if (!strcmp(k, "nogroups"))
                        plan.set_groups = 1;
                else if (!strcmp(k, "chdir"))
                        plan.chdir = tok();
                else if (!strcmp(k, "pid2"))
                        plan.pid2 = 1;
                else if (!strcmp(k, "loopback"))
                        plan.loopback = 1;
                else if (!strcmp(k, "search"))
                        plan.search_path = 1;
                else if (!strcmp(k, "env")) {
                        if (plan.n_env < MAX_LIST - 1)
                                plan.env[plan.n_env++] = tok();
                } else if (!strcmp(k, "stubenv")) {
                        if (plan.n_stub_env < 3)
                                plan.stub_env[plan.n_stub_env++] = tok();
                } else if (!strcmp(k, "nnp"))
                        plan.no_new_privs = 1;
                else if (!strcmp(k, "oom")) {
                        plan.oom_set = 1;
                        plan.oom_score_adj = (int) strtol(tok(), NULL, 10);
                } else if (!strcmp(k, "cpu")) {
                        unsigned long c = strtoul(tok(), NULL, 10);
                        if (!plan.cpus_set)
                                CPU_ZERO(&plan.cpus);
                        plan.cpus_set = 1;
                        if (c < CPU_SETSIZE)
                                CPU_SET(c, &plan.cpus);
                } else if (!strcmp(k, "caps")) {
                        const char *b = tok(), *e = tok(), *p = tok(), *i = tok(), *a = tok();
                        caps_plan_parse(&plan.caps, b, e, p, i, a);
                } else if (!strcmp(k, "capwarn"))
                        plan.caps_warning = tok();
                else if (!strcmp(k, "netup") || !strcmp(k, "netaddr") || !strcmp(k, "netroute")) {
                        const char *ifn = tok(), *fam = k[3] == 'u' ? NULL : tok(), *a = k[3] == 'u' ? NULL : tok();
                        const char *pfx = k[3] == 'a' ? tok() : NULL;
                        if (netcfg_parse(&plan.net, k[3] == 'u' ? 'u' : k[3] == 'a' ? 'a' : 'r', ifn, fam, a, pfx) < 0)
                                exit(2);
                } else if (!strcmp(k, "netns"))
                        plan.net.netns_path = tok();
                else if (!strcmp(k, "keyring"))
                        plan.session_keyring = 1;
                else if (!strcmp(k, "seccomp")) {
                        if (seccomp_plan_parse(&plan.seccomp, tok()) < 0) {
                                fprintf(stderr, "nspawn-helper: bad seccomp program in the plan\n");
                                exit(2);
                        }
                } else if (!strcmp(k, "seccompwarn"))
                        seccomp_plan_warning(&plan.seccomp, tok());
                else if (!strcmp(k, "cgv1") || !strcmp(k, "cgv2")) {
                        int v2 = !strcmp(k, "cgv2");
                        const char *scope = tok(), *home = tok();
                        if (cgroup_plan_add(&plan.cgroup, v2, scope, home) < 0) {
                                fprintf(stderr, "nspawn-helper: too many cgroup hierarchies in the plan\n");
                                exit(2);
                        }
                } else if (!strcmp(k, "devbpf")) {
                        const char *opt = tok(), *cg = tok(), *hex = tok();
                        if (devices_plan_parse(&plan.devices, opt, cg, hex) < 0) {
                                fprintf(stderr, "nspawn-helper: bad device program in the plan\n");
                                exit(2);
                        }
                }
                else if (!strcmp(k, "arg")) {
                        if (plan.n_argv < MAX_LIST - 1)
                                plan.argv[plan.n_argv++] = tok();
                } else if (!strcmp(k, "fallback")) {
                        if (plan.n_fallback < 62) {
                                plan.fallback[plan.n_fallback++] = tok();
                                plan.fallback[plan.n_fallback++] = tok();
                        }
                } else if (!strcmp(k, "fallbackarg")) {
                        if (plan.n_fallback_args < MAX_LIST - 2)
                                plan.fallback_args[plan.n_fallback_args++] = tok();
                } else if (!strcmp(k, "finalnl"))
                        plan.final_newline = 1;
                else if (!strcmp(k, "survive"))
                        plan.survive = 1;
                else if (!strcmp(k, "stdout"))
                        plan.stdout_path = tok();
                else if (!strcmp(k, "sdnotify")) {
                        plan.sd_notify = 1;
                        plan.notify_ready = !strcmp(tok(), "1");
                        plan.restart_exits = !strcmp(tok(), "1");
                } else if (!strcmp(k, "cgmkdir")) {
                        cgops_full();
                        CgOp *o = &cgops.op[cgops.n++];
                        o->kind = 'm';
                        o->path = tok();
                        o->exclusive = !strcmp(tok(), "1");
                        o->busy = tok();
                } else if (!strcmp(k, "cgwrite")) {
                        cgops_full();
                        CgOp *o = &cgops.op[cgops.n++];
                        o->kind = 'w';
                        o->path = tok();
                        o->n_data = (int) parse_u(tok());
                        o->data = calloc((size_t) o->n_data + 1, sizeof(char *));
                        if (!o->data)
                                exit(2);
                        for (int i = 0; i < o->n_data; i++)
                                o->data[i] = tok();
                } else if (!strcmp(k, "cgchown")) {
                        cgops_full();
                        CgOp *o = &cgops.op[cgops.n++];
                        o->kind = 'c';
                        o->path = tok();
                        o->uid = (long) parse_u(tok());
                        o->gid = (long) parse_u(tok());
                } else if (!strcmp(k, "lockfd")) {
                        const char *fd = tok(), *path = tok(), *ex = tok();
                        if (lock_plan_inherit(fd, path, ex) < 0) {
                                fprintf(stderr, "nspawn-helper: lock fd %s (%s) in the plan is not open\n", fd, path);
                                exit(2);
                        }
                } else if (!strcmp(k, "lock")) {
                        const char *path = tok(), *ex = tok(), *busy = tok();
                        if (lock_plan_add(path, ex, busy) < 0) {
                                fprintf(stderr, "nspawn-helper: too many locks in the plan\n");
                                exit(2);
                        }
                } else if (ho_plan_key(k, tok)) {
                        /* the hand-over's end-of-run data */
                } else {
                        fprintf(stderr, "nspawn-helper: unknown plan key '%s'\n", k);
                        exit(2);
                }
        }
        if (handoff_on && plan.sync) {
                fprintf(stderr, "nspawn-helper: a handed-over plan cannot wait for Node (sync)\n");
                exit(2);
        }
        if (!plan.root || (plan.n_argv == 0 && plan.n_fallback == 0)) {
                fprintf(stderr, "nspawn-helper: plan lacks root or command\n");
                exit(2);
        }
}

/* ---------- path resolution inside the container root ---------- */

static int root_fd = -1;

/* Opens PATH (absolute, inside the root) with symlinks resolved as if the root were "/". */
static int open_in_root(const char *path, int oflags) {
        struct open_how how = {
                .flags = (uint64_t) (oflags | O_CLOEXEC),
                .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        };
        return (int) syscall(SYS_openat2, root_fd, path, &how, sizeof how);
}

static void split_path(const char *path, char *parent, size_t psz, const char **base) {
        const char *slash = strrchr(path, '/');
        size_t n = slash ? (size_t) (slash - path) : 0;
        if (n == 0) {
                snprintf(parent, psz, "/");
        } else {
                if (n >= psz)
                        n = psz - 1;
                memcpy(parent, path, n);
                parent[n] = 0;
        }
        *base = slash ? slash + 1 : path;
}

/* mkdir -p inside the root; returns an O_PATH fd of the directory. */
static int mkdir_p_in_root(const char *path, mode_t mode) {
        int fd = open_in_root(path, O_PATH | O_DIRECTORY);
        if (fd >= 0 || errno != ENOENT)
                return fd;
        char parent[PATH_MAX];
        const char *base;
        split_path(path, parent, sizeof parent, &base);
        int pfd = mkdir_p_in_root(parent, 0755);
        if (pfd < 0)
                return -1;
        if (mkdirat(pfd, base, mode) < 0) {
                if (errno != EEXIST) {
                        int e = errno;
                        close(pfd);
                        errno = e;
                        return -1;
                }
        } else
                (void) fchmodat(pfd, base, mode & 07777, 0); /* a new directory gets MODE whatever the umask, as in systemd */
        close(pfd);
        return open_in_root(path, O_PATH | O_DIRECTORY);
}

static int touch_in_root(const char *path, mode_t mode) {
        int fd = open_in_root(path, O_PATH);
        if (fd >= 0 || errno != ENOENT)
                return fd;
        char parent[PATH_MAX];
        const char *base;
        split_path(path, parent, sizeof parent, &base);
        int pfd = mkdir_p_in_root(parent, 0755);
        if (pfd < 0)
                return -1;
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", pfd);
        int dfd = open(proc, O_DIRECTORY | O_CLOEXEC);
        close(pfd);
        if (dfd < 0)
                return -1;
        int f = openat(dfd, base, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, mode);
        close(dfd);
        if (f < 0 && errno != EEXIST)
                return -1;
        if (f >= 0)
                close(f);
        return open_in_root(path, O_PATH);
}

/* An fd of the parent directory (openable, not O_PATH) of PATH inside the root, created when missing. */
static int parent_dir_fd(const char *path, const char **base) {
        char parent[PATH_MAX];
        split_path(path, parent, sizeof parent, base);
        int pfd = mkdir_p_in_root(parent, 0755);
        if (pfd < 0)
                return -1;
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", pfd);
        int dfd = open(proc, O_DIRECTORY | O_CLOEXEC);
        int e = errno;
        close(pfd);
        errno = e;
        return dfd;
}

/* ---------- mount operations ---------- */

static void run_op(const Op *o) {
        int optional = (o->flags & OPF_OPTIONAL) != 0;
        char fdpath[64], srcpath[64];
        int tfd = -1, sfd = -1;
        const char *src = *o->src ? o->src : NULL;

#define FAIL(...)                                           \
        do {                                                \
                if (optional) {                             \
                        if (o->flags & OPF_WARN)            \
                                warn_errno_child(__VA_ARGS__); \
                        goto out;                           \
                }                                           \
                die_errno_child(__VA_ARGS__);               \
        } while (0)

        if (!strcmp(o->kind, "mount") || !strcmp(o->kind, "remount") || !strcmp(o->kind, "setattr")) {
                if (o->skip)
                        goto out;
                unsigned mk = o->flags & (OPF_MKDIR | OPF_TOUCH);
                if ((o->flags & OPF_MKPOINT) && src) {
                        struct stat st;
                        if (o->tree_fd >= 0 ? fstat(o->tree_fd, &st) < 0 : stat(src, &st) < 0)
                                FAIL("Failed to stat %s", o->src);
                        mk = S_ISDIR(st.st_mode) ? OPF_MKDIR : OPF_TOUCH;
                }
                if (mk & OPF_MKDIR)
                        tfd = mkdir_p_in_root(o->target, o->mode ? o->mode : 0755);
                else if (mk & OPF_TOUCH)
                        tfd = touch_in_root(o->target, o->mode ? o->mode : 0644);
                else
                        tfd = open_in_root(o->target, O_PATH);
                if (tfd < 0 && (o->flags & OPF_WARN)) {
                        /* like systemd: a mount point that cannot be made (read-only tree) is not an error by
                         * itself; the mount then fails on the missing target, and that is what gets reported */
                        tfd = open_in_root(o->target, O_PATH);
                        if (tfd < 0)
                                FAIL("Failed to mount %s (type %s) on %s%s (%s \"%s\")", o->src, *o->fstype ? o->fstype : "n/a",
                                     plan.root, o->target, (o->mflags & MS_BIND) ? "MS_BIND" : "", o->data);
                }
                if (tfd < 0)
                        FAIL("preparing mount point %s", o->target);
                if (src && (o->flags & OPF_SRC_IN_ROOT)) {
                        sfd = open_in_root(src, O_PATH);
                        if (sfd < 0) {
                                if ((o->flags & OPF_IF_EXISTS) && errno == ENOENT)
                                        goto out;
                                FAIL("resolving %s in the container", src);
                        }
                        snprintf(srcpath, sizeof srcpath, "/proc/self/fd/%d", sfd);
                        src = srcpath;
                }
                snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", tfd);

                if (!strcmp(o->kind, "setattr")) {
                        struct mount_attr attr = { .attr_set = o->mflags };
                        if (syscall(SYS_mount_setattr, tfd, "", AT_EMPTY_PATH | ((o->flags & OPF_RECURSIVE) ? AT_RECURSIVE : 0),
                                    &attr, sizeof attr) < 0)
                                FAIL("mount_setattr(%s)", o->target);
                } else if (!strcmp(o->kind, "remount")) {
                        if (mount(NULL, fdpath, NULL, MS_REMOUNT | o->mflags, *o->data ? o->data : NULL) < 0)
                                FAIL("remount(%s)", o->target);
                } else if (o->tree_fd >= 0) {
                        if (syscall(SYS_move_mount, o->tree_fd, "", tfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                                FAIL("mount(%s on %s)", o->src, o->target);
                } else {
                        if (mount(src, fdpath, *o->fstype ? o->fstype : NULL, o->mflags, *o->data ? o->data : NULL) < 0)
                                FAIL("mount(%s%s%s on %s)", *o->fstype ? o->fstype : "", src && *o->fstype ? " " : "",
                                     src ? o->src : "", o->target);
                }
        } else if (!strcmp(o->kind, "mkdir")) {
                tfd = mkdir_p_in_root(o->target, o->mode);
                if (tfd < 0)
                        FAIL("mkdir(%s)", o->target);
        } else if (!strcmp(o->kind, "chown")) {
                /* mode = uid, dev = gid */
                tfd = open_in_root(o->target, O_PATH);
                if (tfd < 0 || fchownat(tfd, "", (uid_t) o->mode, (gid_t) o->dev, AT_EMPTY_PATH) < 0)
                        FAIL("chown(%s)", o->target);
        } else if (!strcmp(o->kind, "mknod")) {
                const char *base;
                int dfd = parent_dir_fd(o->target, &base);
                if (dfd < 0)
                        FAIL("preparing %s", o->target);
                if (mknodat(dfd, base, o->mode, (dev_t) o->dev) < 0) {
                        int e = errno;
                        if (e != EPERM) {
                                close(dfd);
                                errno = e;
                                FAIL("mknod(%s)", o->target);
                        }
                        /* Under a user namespace mknod is refused: bind the host node instead, like systemd.
                         * Without a host node there is nothing to bind: leave no empty file behind either. */
                        int f = o->tree_fd < 0 ? -1 : openat(dfd, base, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0644);
                        if (f >= 0)
                                close(f);
                        tfd = open_in_root(o->target, O_PATH);
                        if (tfd < 0 || o->tree_fd < 0) {
                                close(dfd);
                                errno = e;
                                FAIL("mknod(%s)", o->target);
                        }
                        if (syscall(SYS_move_mount, o->tree_fd, "", tfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0) {
                                close(dfd);
                                FAIL("bind mount of %s on %s", src, o->target);
                        }
                } else
                        (void) fchmodat(dfd, base, o->mode & 07777, 0);
                close(dfd);
        } else if (!strcmp(o->kind, "symlink")) {
                const char *base;
                int dfd = parent_dir_fd(o->target, &base);
                if (dfd < 0)
                        FAIL("preparing %s", o->target);
                if (symlinkat(o->src, dfd, base) < 0 && errno != EEXIST) {
                        close(dfd);
                        FAIL("symlink(%s -> %s)", o->target, o->src);
                }
                close(dfd);
        } else if (!strcmp(o->kind, "umount")) {
                tfd = open_in_root(o->target, O_PATH);
                if (tfd < 0)
                        FAIL("resolving %s", o->target);
                snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", tfd);
                if (umount2(fdpath, MNT_DETACH) < 0)
                        FAIL("umount(%s)", o->target);
        } else if (!strcmp(o->kind, "rmdir")) {
                const char *base;
                int dfd = parent_dir_fd(o->target, &base);
                if (dfd < 0 || unlinkat(dfd, base, AT_REMOVEDIR) < 0) {
                        if (dfd >= 0)
                                close(dfd);
                        FAIL("rmdir(%s)", o->target);
                }
                close(dfd);
        } else if (!strcmp(o->kind, "rmfile")) {
                /* Remove a file (not a directory) in the root, e.g. a stale /etc/resolv.conf link. */
                const char *base;
                int dfd = parent_dir_fd(o->target, &base);
                if (dfd >= 0) {
                        (void) unlinkat(dfd, base, 0);
                        close(dfd);
                }
        } else if (!strcmp(o->kind, "write")) {
                const char *base;
                int dfd = parent_dir_fd(o->target, &base);
                if (dfd < 0)
                        FAIL("preparing %s", o->target);
                int f = openat(dfd, base, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, o->mode);
                close(dfd);
                if (f < 0)
                        FAIL("creating %s", o->target);
                (void) fchmod(f, o->mode & 07777);
                if (write_all(f, o->data, strlen(o->data)) < 0) {
                        close(f);
                        FAIL("writing %s", o->target);
                }
                close(f);
        } else if (!strcmp(o->kind, "notify")) {
                /* setup_notify_child(): a datagram socket with SO_PASSCRED at the target, for the container's init
                 * to sd_notify() us; the outer helper reads it (the fd goes over the sync socket) */
                const char *base;
                int dfd = parent_dir_fd(o->target, &base);
                if (dfd < 0)
                        FAIL("preparing %s", o->target);
                (void) unlinkat(dfd, base, 0);
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                int n = snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d/%s", dfd, base);
                int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                int one = 1;
                if (s < 0 || n <= 0 || (size_t) n >= sizeof sa.sun_path) {
                        if (s >= 0)
                                close(s);
                        close(dfd);
                        FAIL("Failed to allocate notification socket");
                }
                if (bind(s, (struct sockaddr *) &sa, sizeof sa) < 0) {
                        close(s);
                        close(dfd);
                        FAIL("bind(%s) failed", o->target);
                }
                close(dfd);
                if (setsockopt(s, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0) {
                        close(s);
                        FAIL("SO_PASSCRED failed");
                }
                if (send_fd(sync_fd, s, 'N') < 0) {
                        close(s);
                        FAIL("passing the notify socket to the outer helper");
                }
                close(s);
        } else {
                errno = EINVAL;
                die_errno_child("unknown op %s", o->kind);
        }
out:
        if (tfd >= 0)
                close(tfd);
        if (sfd >= 0)
                close(sfd);
#undef FAIL
}

/* Host bind sources are resolved and copied as detached mounts by the outer helper, before the clone, with
 * the host's view and privileges; the container side only attaches them (move_mount). This way a user
 * namespace never has to traverse host paths, and no host path is looked up after the container exists. */
static int detach_host_sources(char *err, size_t errsz) {
        for (int i = 0; i < plan.n_ops; i++) {
                Op *o = &plan.ops[i];
                int is_bind = !strcmp(o->kind, "mount") && (o->mflags & MS_BIND) && *o->src && !(o->flags & OPF_SRC_IN_ROOT);
                int is_node = !strcmp(o->kind, "mknod") && *o->src;
                if (!is_bind && !is_node)
                        continue;
                unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC;
                if (is_bind && (o->mflags & MS_REC))
                        flags |= AT_RECURSIVE;
                o->tree_fd = (int) syscall(SYS_open_tree, AT_FDCWD, o->src, flags);
                if (o->tree_fd >= 0)
                        continue;
                if (is_node || (o->flags & OPF_OPTIONAL) || ((o->flags & OPF_IF_EXISTS) && errno == ENOENT)) {
                        o->skip = is_bind;
                        continue;
                }
                snprintf(err, errsz, "%s %s: %s (%s)", errno == ENOENT ? "Failed to stat" : "open_tree() of", o->src,
                         strerror(errno), strerrorname_np(errno) ?: "?");
                return -1;
        }
        return 0;
}

/* ---------- idmapped root (private users, ownership "map") ---------- */

/* The tree (our cwd) cloned as a detached mount with MOUNT_ATTR_IDMAP, made with the host's privileges before the
 * clone, as systemd's remount_idmap(): a throwaway user namespace carries "0 SHIFT RANGE" plus host root mapped to
 * 2147483646 (REMOUNT_IDMAPPING_HOST_ROOT). The child attaches it instead of a plain bind of the tree. */
static int make_idmapped_root(char *err, size_t errsz) {
        char map[128];
        snprintf(map, sizeof map, "0 %u %u\n%u 0 1\n", plan.idmap_shift, plan.idmap_range, 2147483646u);
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                goto fail;
        pid_t pid = (pid_t) syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL);
        if (pid < 0)
                goto fail;
        if (pid == 0) {
                char c;
                close(p[1]);
                (void) !read(p[0], &c, 1);
                _exit(0);
        }
        close(p[0]);
        char path[64];
        int ufd = -1;
        snprintf(path, sizeof path, "/proc/%d/uid_map", pid);
        if (write_small_file(path, map) == 0) {
                snprintf(path, sizeof path, "/proc/%d/gid_map", pid);
                if (write_small_file(path, map) == 0) {
                        snprintf(path, sizeof path, "/proc/%d/ns/user", pid);
                        ufd = open(path, O_RDONLY | O_CLOEXEC);
                }
        }
        int e = errno;
        close(p[1]);
        (void) waitpid(pid, NULL, 0);
        errno = e;
        if (ufd < 0)
                goto fail;
        int t = (int) syscall(SYS_open_tree, AT_FDCWD, ".", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (t < 0) {
                close(ufd);
                goto fail;
        }
        struct { uint64_t set, clr, prop, userns; } a = { .set = 0x00100000 /* MOUNT_ATTR_IDMAP */, .userns = (uint64_t) ufd };
        if (syscall(SYS_mount_setattr, t, "", AT_EMPTY_PATH, &a, sizeof a) < 0) {
                e = errno;
                close(t);
                close(ufd);
                errno = e;
                goto fail;
        }
        close(ufd);
        plan.idmap_tree = t;
        return 0;
fail:
        snprintf(err, errsz, "Failed to set up ID mapped mounts for %s: %s (%s)", plan.root, strerror(errno), strerrorname_np(errno) ?: "?");
        return -1;
}

/* ---------- console ---------- */

/* Passes FD to the outer helper, tagged: 'P' the console's pty master, 'N' the notify socket. */
static int send_fd(int sock, int fd, char c) {
        struct iovec iov = { .iov_base = &c, .iov_len = 1 };
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } u;
        memset(&u, 0, sizeof u);
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
        struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
        return sendmsg(sock, &m, MSG_NOSIGNAL) < 0 ? -1 : 0;
}

/* Allocates the console pty in the container's own devpts (already mounted by the plan) and links
 * /dev/console to it, as systemd-nspawn 252 does. Returns the master; *slave_path gets the in-container path. */
static int allocate_console(char *slave_path, size_t sz) {
        int m = open_in_root("/dev/pts/ptmx", O_RDWR | O_NOCTTY);
        if (m < 0)
                die_errno_child("opening the container's /dev/pts/ptmx");
        int unlock = 0;
        if (ioctl(m, TIOCSPTLCK, &unlock) < 0)
                die_errno_child("unlocking the console pty");
        unsigned n;
        if (ioctl(m, TIOCGPTN, &n) < 0)
                die_errno_child("TIOCGPTN");
        snprintf(slave_path, sz, "/dev/pts/%u", n);
        char rel[32];
        snprintf(rel, sizeof rel, "pts/%u", n);
        const char *base;
        int dfd = parent_dir_fd("/dev/console", &base);
        if (dfd < 0)
                die_errno_child("preparing /dev/console");
        (void) unlinkat(dfd, base, 0);
        if (symlinkat(rel, dfd, base) < 0)
                die_errno_child("linking /dev/console to %s", rel);
        close(dfd);
        return m;
}

/* ---------- the container child ---------- */

static void loopback_up(void) {
        int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (s < 0)
                die_errno_child("socket for loopback setup");
        struct ifreq ifr;
        memset(&ifr, 0, sizeof ifr);
        strcpy(ifr.ifr_name, "lo");
        if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
                die_errno_child("SIOCGIFFLAGS(lo)");
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
                die_errno_child("bringing up lo");
        close(s);
}

static void do_exec(void) {
        char **envp = (char **) plan.env;
        plan.env[plan.n_env] = NULL;
        plan.argv[plan.n_argv] = NULL;
        if (plan.n_argv > 0) {
                if (plan.search_path && !strchr(plan.argv[0], '/')) {
                        /* execvpe uses PATH from the current environment: the container's. */
                        for (int i = 0; i < plan.n_env; i++)
                                if (!strncmp(plan.env[i], "PATH=", 5))
                                        setenv("PATH", plan.env[i] + 5, 1);
                        execvpe(plan.argv[0], (char **) plan.argv, envp);
                } else
                        execve(plan.argv[0], (char **) plan.argv, envp);
                die_errno_child("execv(%s) failed", plan.argv[0]);
        }
        /* inner_child(): each candidate in turn, whatever made the previous one fail; the last error is reported */
        char tried[1024] = "";
        static char *a[MAX_LIST];
        for (int j = 0; j < plan.n_fallback_args; j++)
                a[1 + j] = (char *) plan.fallback_args[j];
        a[1 + plan.n_fallback_args] = NULL;
        for (int i = 0; i + 1 < plan.n_fallback; i += 2) {
                a[0] = (char *) plan.fallback[i + 1];
                execve(plan.fallback[i], a, envp);
                int e = errno;
                strncat(tried, i ? ", " : "", sizeof tried - strlen(tried) - 1);
                strncat(tried, plan.fallback[i], sizeof tried - strlen(tried) - 1);
                errno = e;
        }
        die_errno_child("execv(%s) failed", tried);
}

/* PID 1 for --as-pid2: reaps everything, passes the payload's exit code on, and turns the systemd power signals
 * into the matching reboot(2) so the outside sees the same result as under systemd-nspawn's stub. */
static void stub_init(void) {
        sigset_t full, old;
        sigfillset(&full);
        sigprocmask(SIG_BLOCK, &full, &old);
        pid_t pid = fork();
        if (pid < 0)
                die_errno_child("fork of the payload");
        if (pid == 0) {
                sigprocmask(SIG_SETMASK, &old, NULL);
                if (setsid() < 0 && errno != EPERM)
                        die_errno_child("setsid in the payload");
                if (plan.console && strcmp(plan.console, "pipe") != 0 && ioctl(STDIN_FILENO, TIOCSCTTY, 0) < 0)
                        die_errno_child("Failed to acquire controlling TTY");
                do_exec();
        }
        /* Our copy of the sync socket must not keep the outer waiting: the payload's copy closes on exec. */
        close(sync_fd);
        sync_fd = -1;
        for (int fd = 0; fd < 3; fd++) {
                int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (nul >= 0) {
                        dup2(nul, fd);
                        close(nul);
                }
        }
        (void) ioctl(STDIN_FILENO, TIOCNOTTY);
        clearenv();
        for (int i = 0; i < plan.n_stub_env; i++)
                putenv((char *) plan.stub_env[i]);
        prctl(PR_SET_NAME, "(sd-stubinit)");
        if (argv0_buf) {
                memset(argv0_buf, 0, argv0_len);
                strncpy(argv0_buf, "(sd-stubinit)", argv0_len);
        }

        sigset_t wait;
        sigemptyset(&wait);
        int sigs[] = { SIGCHLD, SIGINT, SIGRTMIN + 3, SIGRTMIN + 4, SIGRTMIN + 5, SIGRTMIN + 6,
                       SIGRTMIN + 13, SIGRTMIN + 14, SIGRTMIN + 15, SIGRTMIN + 16 };
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
                sigaddset(&wait, sigs[i]);
        enum { RUNNING, REBOOT, POWEROFF } state = RUNNING;
        struct timespec quit = { 0, 0 };
        int have_quit = 0;
        for (;;) {
                siginfo_t si;
                memset(&si, 0, sizeof si);
                if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG) < 0 && errno != ECHILD)
                        _exit(1);
                struct timespec now;
                clock_gettime(CLOCK_MONOTONIC, &now);
                int timed_out = have_quit && (now.tv_sec > quit.tv_sec || (now.tv_sec == quit.tv_sec && now.tv_nsec >= quit.tv_nsec));
                if (si.si_pid == pid || timed_out) {
                        if (state == REBOOT)
                                reboot(RB_AUTOBOOT);
                        else if (state == POWEROFF)
                                reboot(RB_POWER_OFF);
                        _exit(si.si_pid == pid && si.si_code == CLD_EXITED ? si.si_status : 255);
                }
                if (si.si_pid != 0)
                        continue;
                int r;
                if (!have_quit)
                        r = sigwaitinfo(&wait, &si);
                else {
                        struct timespec d = { quit.tv_sec - now.tv_sec, quit.tv_nsec - now.tv_nsec };
                        if (d.tv_nsec < 0) {
                                d.tv_sec--;
                                d.tv_nsec += 1000000000L;
                        }
                        r = sigtimedwait(&wait, &si, &d);
                }
                if (r < 0)
                        continue;
                if (si.si_signo == SIGCHLD || state != RUNNING)
                        continue;
                int s = si.si_signo;
                if (s == SIGRTMIN + 3 || s == SIGRTMIN + 4 || s == SIGRTMIN + 13 || s == SIGRTMIN + 14)
                        state = POWEROFF;
                else
                        state = REBOOT;
                if (kill(pid, SIGTERM) == 0) {
                        kill(pid, SIGCONT);
                        kill(pid, SIGHUP);
                }
                clock_gettime(CLOCK_MONOTONIC, &quit);
                quit.tv_sec += 90;
                have_quit = 1;
        }
}

static void child_main(void) {
        char c;
        if (plan.sync || plan.usermap) {
                if (read(sync_fd, &c, 1) != 1)
                        _exit(1); /* the outer side went away */
        }
        if (plan.clone_flags & CLONE_NEWUSER) {
                if (syscall(SYS_setresgid, 0, 0, 0) < 0 || syscall(SYS_setresuid, 0, 0, 0) < 0)
                        die_errno_child("becoming root in the user namespace");
                if (setgroups(0, NULL) < 0 && errno != EPERM)
                        die_errno_child("setgroups");
                /* The credential change cleared the parent-death signal: arm it again, so that the container
                 * still dies with the outer helper (kill -9 of nspawn), and quit if the outer already went. */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                struct pollfd hup = { .fd = sync_fd, .events = POLLRDHUP };
                if (sync_fd >= 0 && poll(&hup, 1, 0) > 0 && (hup.revents & (POLLHUP | POLLRDHUP)))
                        _exit(1);
        }
        /* cloned into the unified scope: the cgroup namespace is made here, rooted at it (native/cgroup.c) */
        if (plan.cgroup.unshare_cgns && unshare(CLONE_NEWCGROUP) < 0)
                die_errno_child("Failed to unshare cgroup namespace");
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                die_errno_child("making / rprivate");
        /* The outer helper chdir()ed into the tree before the clone; the clone moved our cwd into the new mount
         * namespace. Bind the tree onto itself from there (a mount point for pivot_root), without looking up
         * its host path again: in a user namespace the path's parents may not be searchable. */
        int tree = plan.idmap_tree >= 0 ? plan.idmap_tree : (int) syscall(SYS_open_tree, AT_FDCWD, ".", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
        if (tree < 0)
                die_errno_child("bind mount of %s on itself (open_tree)", plan.root);
        if (syscall(SYS_move_mount, tree, "", AT_FDCWD, ".", MOVE_MOUNT_F_EMPTY_PATH) < 0)
                die_errno_child("bind mount of %s on itself (move_mount)", plan.root);
        if (fchdir(tree) < 0)
                die_errno_child("entering %s", plan.root);
        root_fd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (root_fd < 0)
                die_errno_child("opening %s", plan.root);
        close(tree);
        if (plan.loopback)
                loopback_up();
        {
                char nerr[512];
                char nmsg[600];
                if (netcfg_apply(&plan.net, nerr, sizeof nerr) < 0) {
                        snprintf(nmsg, sizeof nmsg, "Failed to configure the container's network: %s", nerr);
                        send_error(nmsg);
                        _exit(1);
                }
        }

        int master = -1;
        char console[64] = "";
        for (int i = 0; i < plan.n_ops; i++) {
                if (!strcmp(plan.ops[i].kind, "console")) {
                        master = allocate_console(console, sizeof console);
                        continue;
                }
                run_op(&plan.ops[i]);
        }

        if (plan.session_keyring && keyring_join_session() < 0)
                die_errno_child("Setting up kernel keyring failed");

        if (fchdir(root_fd) < 0)
                die_errno_child("chdir(%s)", plan.root);
        if (syscall(SYS_pivot_root, ".", ".") < 0)
                die_errno_child("pivot_root(%s)", plan.root);
        if (umount2(".", MNT_DETACH) < 0)
                die_errno_child("detaching the old root");
        if (chdir("/") < 0)
                die_errno_child("chdir(/)");
        close(root_fd);

        if (plan.hostname && sethostname(plan.hostname, strlen(plan.hostname)) < 0)
                die_errno_child("sethostname(%s)", plan.hostname);

        if (setsid() < 0)
                die_errno_child("setsid");
        if (master >= 0) {
                int s = open(console, O_RDWR | O_NOCTTY | O_CLOEXEC);
                if (s < 0)
                        die_errno_child("opening console %s", console);
                /* With -a the payload takes the console as its controlling tty, not the stub (inner_child()). */
                if (!plan.pid2 && ioctl(s, TIOCSCTTY, 0) < 0)
                        die_errno_child("TIOCSCTTY on %s", console);
                if (send_fd(sync_fd, master, 'P') < 0)
                        die_errno_child("passing the console to the outer helper");
                close(master);
                for (int fd = 0; fd < 3; fd++)
                        if (dup2(s, fd) < 0)
                                die_errno_child("dup2 console");
                if (s > 2)
                        close(s);
        }

        if (plan.oom_set) {
                char num[16];
                snprintf(num, sizeof num, "%d", plan.oom_score_adj);
                if (write_small_file("/proc/self/oom_score_adj", num) < 0)
                        die_errno_child("Failed to adjust OOM score");
        }
        if (plan.cpus_set && sched_setaffinity(0, sizeof plan.cpus, &plan.cpus) < 0)
                die_errno_child("Failed to set CPU affinity");
        if (plan.personality >= 0 && personality((unsigned long) plan.personality) < 0)
                die_errno_child("personality()");
        for (int i = 0; i < plan.n_rlimits; i++) {
                /* Like systemd's setrlimit_closest(): without CAP_SYS_RESOURCE a hard limit cannot go up, so
                 * settle for the closest values allowed. */
                __rlimit_resource_t res = (__rlimit_resource_t) plan.rlimits[i].res;
                struct rlimit want = plan.rlimits[i].lim, cur;
                if (setrlimit(res, &want) == 0)
                        continue;
                if (errno != EPERM || getrlimit(res, &cur) < 0)
                        die_errno_child("setrlimit(%d)", plan.rlimits[i].res);
                if (want.rlim_max > cur.rlim_max)
                        want.rlim_max = cur.rlim_max;
                if (want.rlim_cur > want.rlim_max)
                        want.rlim_cur = want.rlim_max;
                if (setrlimit(res, &want) < 0)
                        die_errno_child("setrlimit(%d)", plan.rlimits[i].res);
        }

        /* setup_seccomp() and seccomp_suppress_sync(): the system call filter, before PR_SET_KEEPCAPS and the UID
         * change (inner_child(): seccomp -> keepcaps -> change uid -> drop capabilities -> no_new_privs -> exec) */
        if (seccomp_install(&plan.seccomp, sync_fd) < 0)
                die_errno_child("Failed to install seccomp filter");

        if (plan.caps.set && caps_keep_across_uid_change() < 0)
                die_errno_child("Failed to set PR_SET_KEEPCAPS");
        /* change_uid_gid_raw(): the console belongs to the user it runs as */
        if (master >= 0 && (plan.uid > 0 || plan.gid > 0))
                for (int fd = 0; fd < 3; fd++)
                        (void) fchown(fd, (uid_t) plan.uid, (gid_t) plan.gid);
        if (plan.set_groups && setgroups((size_t) plan.n_groups, plan.groups) < 0)
                die_errno_child("setgroups");
        if (plan.gid >= 0 && setresgid((gid_t) plan.gid, (gid_t) plan.gid, (gid_t) plan.gid) < 0)
                die_errno_child("setresgid(%ld)", plan.gid);
        if (plan.uid >= 0 && setresuid((uid_t) plan.uid, (uid_t) plan.uid, (uid_t) plan.uid) < 0)
                die_errno_child("setresuid(%ld)", plan.uid);
        /* drop_capabilities() */
        if (plan.caps_warning)
                caps_send_warning(sync_fd, plan.caps_warning);
        if (plan.caps.set) {
                const char *what = "";
                if (caps_apply(&plan.caps, &what) < 0)
                        die_errno_child("Dropping capabilities failed (%s)", what);
        }
        if (plan.no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                die_errno_child("Failed to disable new privileges");
        if (plan.chdir && chdir(plan.chdir) < 0)
                die_errno_child("Failed to change to specified working directory %s", plan.chdir);

        if (plan.pid2)
                stub_init();
        do_exec();
}

/* ---------- the outer side: sync, console forwarding, exit status ---------- */

static struct termios saved_tio;
static int saved_tio_ok;

static void restore_tty(void) {
        if (saved_tio_ok)
                (void) tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
        saved_tio_ok = 0;
}

static void copy_winsize(int master) {
        struct winsize ws;
        if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 || ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0)
                (void) ioctl(master, TIOCSWINSZ, &ws);
}

static int recv_msg(int sock, char *buf, size_t sz, int *fd_out) {
        struct iovec iov = { .iov_base = buf, .iov_len = sz - 1 };
        union {
                struct cmsghdr h;
                char b[CMSG_SPACE(sizeof(int))];
        } u;
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof u.b };
        ssize_t n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
        if (n <= 0)
                return (int) n;
        buf[n] = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                        memcpy(fd_out, CMSG_DATA(c), sizeof(int));
        return (int) n;
}

/* ---------- sd_notify: our own $NOTIFY_SOCKET, and the container's /run/host/notify ---------- */

/* sd_pid_notify(getppid(), ...): the message goes to $NOTIFY_SOCKET in nspawn's name (Node's PID), so that a service
 * manager with NotifyAccess=main takes it from nspawn; as root we may name another PID in SCM_CREDENTIALS. */
static void notify_ours(const char *msg) {
        const char *path = getenv("NOTIFY_SOCKET");
        if (!plan.sd_notify || !path || (path[0] != '/' && path[0] != '@'))
                return;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t len = strlen(path);
        if (len >= sizeof sa.sun_path)
                return;
        memcpy(sa.sun_path, path, len);
        if (sa.sun_path[0] == '@')
                sa.sun_path[0] = 0; /* abstract */
        socklen_t salen = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/' ? 1 : 0));
        int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (s < 0)
                return;
        struct iovec iov = { .iov_base = (void *) msg, .iov_len = strlen(msg) };
        union {
                struct cmsghdr h;
                char b[CMSG_SPACE(sizeof(struct ucred))];
        } u;
        memset(&u, 0, sizeof u);
        struct msghdr m = { .msg_name = &sa, .msg_namelen = salen, .msg_iov = &iov, .msg_iovlen = 1 };
        pid_t parent = handoff_on ? 0 : getppid(); /* handed over: we are nspawn, no one to speak for */
        if (parent > 1) {
                m.msg_control = u.b;
                m.msg_controllen = sizeof u.b;
                struct cmsghdr *c = CMSG_FIRSTHDR(&m);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_CREDENTIALS;
                c->cmsg_len = CMSG_LEN(sizeof(struct ucred));
                struct ucred uc = { .pid = parent, .uid = getuid(), .gid = getgid() };
                memcpy(CMSG_DATA(c), &uc, sizeof uc);
        }
        if (sendmsg(s, &m, MSG_NOSIGNAL) < 0 && m.msg_control) {
                /* not allowed to speak for Node: in our own name then */
                m.msg_control = NULL;
                m.msg_controllen = 0;
                (void) sendmsg(s, &m, MSG_NOSIGNAL);
        }
        close(s);
}

/* nspawn_dispatch_notify_fd(): one datagram from /run/host/notify; only the container's PID 1 counts. READY=1 and
 * STATUS= go to Node and, as systemd-nspawn passes them on, to our own $NOTIFY_SOCKET. */
static void notify_dispatch(int fd, pid_t leader) {
        for (;;) {
                char buf[4097];
                struct iovec iov = { .iov_base = buf, .iov_len = sizeof buf - 1 };
                union {
                        struct cmsghdr h;
                        char b[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * 768)];
                } u;
                struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof u.b };
                ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
                if (n < 0)
                        return;
                struct ucred *uc = NULL;
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
                        if (c->cmsg_level != SOL_SOCKET)
                                continue;
                        if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len >= CMSG_LEN(sizeof(struct ucred)))
                                uc = (struct ucred *) CMSG_DATA(c);
                        else if (c->cmsg_type == SCM_RIGHTS) {
                                /* fds (FDSTORE=1 ...) are not kept: close them */
                                int k = (int) ((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                                for (int i = 0; i < k; i++) {
                                        int x;
                                        memcpy(&x, CMSG_DATA(c) + i * sizeof(int), sizeof x);
                                        close(x);
                                }
                        }
                }
                if (!uc || uc->pid != leader || (size_t) n >= sizeof buf - 1 || (m.msg_flags & MSG_TRUNC))
                        continue;
                buf[n] = 0;
                for (char *save = NULL, *t = strtok_r(buf, "\n\r", &save); t; t = strtok_r(NULL, "\n\r", &save)) {
                        if (!strcmp(t, "READY=1")) {
                                ctl_printf("notify READY=1\n");
                                notify_ours("READY=1\n");
                        } else if (!strncmp(t, "STATUS=", 7)) {
                                ctl_printf("notify %s\n", t);
                                char msg[4200];
                                snprintf(msg, sizeof msg, "STATUS=Container running: %s", t + 7);
                                notify_ours(msg);
                        }
                }
        }
}

static uint64_t now_ms(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (uint64_t) t.tv_sec * 1000 + (uint64_t) t.tv_nsec / 1000000;
}

#include "execin.c" /* the peercred and exec-in modes (nspawnd, nspawnctl) */

/* A start that failed before the container ran: handed over, the scope Node made goes and the error is said. */
static int early_exit(void) {
        if (!handoff_on)
                return 1;
        ho_remove_cgroups();
        ho_remove_ephemeral();
        if (ho.have_error)
                ho_say(ho.error);
        return 1;
}

int main(int argc, char **argv) {
        if (argc > 0 && argv[0]) {
                argv0_buf = argv[0];
                argv0_len = strlen(argv[0]);
                /* like systemd's rename_process(): the whole argument area (a handed-over plan is in it) goes, so
                 * that the container's /proc/1/cmdline shows the stub init's name only */
                for (int i = 1; i < argc && argv[i] == argv0_buf + argv0_len + 1; i++)
                        argv0_len += 1 + strlen(argv[i]);
        }
        /* two small services for src/network.ts: the zone lock and moving interfaces back (native/netcfg.c) */
        if (argc == 2 && !strcmp(argv[1], "--ofd-lock"))
                return netcfg_ofd_lock();
        if (argc >= 2 && !strcmp(argv[1], "--move-back"))
                return netcfg_move_back(argc, argv);
        /* nspawnd's and nspawnctl's modes (native/execin.c) */
        if (argc > 1 && !strcmp(argv[1], "peercred"))
                return peercred_main();
        if (argc > 1 && !strcmp(argv[1], "peercred-server"))
                return peercred_server_main(argc, argv);
        if (argc > 1 && !strcmp(argv[1], "exec-in"))
                return execin_main(argc, argv);
        if (argc > 1 && !strcmp(argv[1], "--handoff")) {
                /* In nspawn's place: what Node set up for itself goes (it ignores SIGPIPE, for one); no parent to
                 * die with, and no control socket (fd 3 is not ours). */
                handoff_on = 1;
                for (int sig = 1; sig < NSIG; sig++)
                        (void) signal(sig, SIG_DFL);
                /* SIGINT/SIGTERM/SIGHUP held from the exec on (they are blocked below anyway and read from the
                 * signalfd once the container runs): one that comes before does not kill us halfway, leaving what
                 * the plan says to remove (-x's snapshot or overlay) behind */
                sigset_t early;
                sigemptyset(&early);
                sigaddset(&early, SIGINT);
                sigaddset(&early, SIGTERM);
                sigaddset(&early, SIGHUP);
                sigprocmask(SIG_SETMASK, &early, NULL);
                plan_from_argv(argc, argv);
                /* the plan (the container's environment among it) is ours now: not for everyone's ps(1) */
                for (int i = 2; i < argc; i++)
                        memset(argv[i], 0, strlen(argv[i]));
        } else {
                /* Die with Node: the container's PID 1 dies with us through PDEATHSIG below. */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                read_plan();
                /* nspawnd's containers outlive it (it finds them again when it restarts) */
                if (plan.survive)
                        prctl(PR_SET_PDEATHSIG, 0);
                if (plan.stdout_path) {
                        int o = open(plan.stdout_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
                        if (o < 0 || dup2(o, STDOUT_FILENO) < 0 || dup2(o, STDERR_FILENO) < 0) {
                                ctl_printf("error Failed to open %s: %s\n", plan.stdout_path, strerror(errno));
                                ctl_printf("exit 1\n");
                                return 1;
                        }
                        close(o);
                }
        }
        /* No host file descriptor reaches the container: everything but stdio and the control socket closes
         * on exec (fds inherited from whoever started Node included). */
        int keep = handoff_on ? STDERR_FILENO : CTL_FD;
        if (syscall(SYS_close_range, keep + 1, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
                for (int fd = keep + 1; fd < 65536; fd++)
                        (void) fcntl(fd, F_SETFD, FD_CLOEXEC);

        /* The image locks first: a busy image is refused before anything else happens. */
        {
                char lerr[4096];
                if (locks_take(lerr, sizeof lerr) < 0) {
                        ctl_printf("error %s\n", lerr);
                        ctl_printf("exit 1\n");
                        return early_exit();
                }
                atexit(locks_release);
        }
        /* The container's cgroup, when nspawn left making it to us. */
        {
                char cerr[4096];
                if (cgops_run(cerr, sizeof cerr) < 0) {
                        ctl_printf("error %s\n", cerr);
                        ctl_printf("exit 1\n");
                        return early_exit();
                }
        }
        int sp[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
                ctl_printf("error socketpair: %s\n", strerror(errno));
                return early_exit();
        }
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGWINCH);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGPIPE);
        sigprocmask(SIG_BLOCK, &mask, NULL);

        if (chdir(plan.root) < 0) {
                ctl_printf("error chdir(%s): %s (%s)\n", plan.root, strerror(errno), strerrorname_np(errno));
                ctl_printf("exit 1\n");
                return early_exit();
        }
        char err[4096];
        if (detach_host_sources(err, sizeof err) < 0) {
                ctl_printf("error %s\n", err);
                ctl_printf("exit 1\n");
                return early_exit();
        }
        if (plan.idmap && make_idmapped_root(err, sizeof err) < 0) {
                ctl_printf("error %s\n", err);
                ctl_printf("exit 1\n");
                return 1;
        }
        /* The device policy is in force before the container's PID 1 exists. */
        if (devices_attach(&plan.devices, err, sizeof err) < 0) {
                if (!plan.devices.optional) {
                        ctl_printf("error %s\n", err);
                        ctl_printf("exit 1\n");
                        return early_exit();
                }
                ctl_printf("warning %s\n", err);
                devices_close(&plan.devices);
        }
        if (netcfg_join_netns(&plan.net, err, sizeof err) < 0) {
                ctl_printf("error %s\n", err);
                ctl_printf("exit 1\n");
                return early_exit();
        }
        /* The container's PID 1 starts in its cgroup (native/cgroup.c). */
        if (cgroup_enter(&plan.cgroup, err, sizeof err) < 0) {
                ctl_printf("error %s\n", err);
                ctl_printf("exit 1\n");
                return early_exit();
        }
        err[0] = 0;
        pid_t pid = cgroup_clone(&plan.cgroup, plan.clone_flags, err, sizeof err);
        if (pid < 0) {
                if (*err)
                        ctl_printf("error %s\n", err);
                else
                        ctl_printf("error clone(): %s (%s)\n", strerror(errno), strerrorname_np(errno));
                return early_exit();
        }
        if (pid == 0) {
                sigset_t none;
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                close(sp[0]);
                if (!handoff_on)
                        close(CTL_FD);
                devices_close(&plan.devices);
                cgroup_close(&plan.cgroup);
                sync_fd = sp[1];
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() == 0 && !(plan.clone_flags & CLONE_NEWPID))
                        _exit(1);
                child_main();
                _exit(1);
        }
        close(sp[1]);
        cgroup_leave(&plan.cgroup);
        /* The detached copies of host bind sources belong to the child now; ours would keep them busy (a
         * container could not unmount them) for as long as the container lives. */
        for (int i = 0; i < plan.n_ops; i++)
                if (plan.ops[i].tree_fd >= 0) {
                        close(plan.ops[i].tree_fd);
                        plan.ops[i].tree_fd = -1;
                }
        int sync_sock = sp[0];
        ctl_printf("pid %d\n", pid);

        if (plan.usermap) {
                /* private users: the map, from the host side (no Node needed, so such a run can be handed over) */
                char map[64], path[64];
                snprintf(map, sizeof map, "0 %u %u\n", plan.usermap_shift, plan.usermap_range);
                snprintf(path, sizeof path, "/proc/%d/uid_map", pid);
                int ok = write_small_file(path, map) == 0;
                if (ok) {
                        snprintf(path, sizeof path, "/proc/%d/gid_map", pid);
                        ok = write_small_file(path, map) == 0;
                }
                if (!ok) {
                        ctl_printf("error Failed to write the user namespace map of PID %d: %s (%s)\n", pid, strerror(errno), strerrorname_np(errno) ?: "?");
                        kill(pid, SIGKILL);
                        waitpid(pid, NULL, 0);
                        return 1;
                }
                if (!plan.sync && write(sync_sock, "g", 1) != 1) {
                        /* the child died already; its status is reported below */
                }
        }

        if (plan.sync) {
                char line[64];
                size_t n = 0;
                for (;;) {
                        char c;
                        ssize_t k = read(CTL_FD, &c, 1);
                        if (k <= 0) {
                                kill(pid, SIGKILL);
                                waitpid(pid, NULL, 0);
                                return 1;
                        }
                        if (c == '\n')
                                break;
                        if (n + 1 < sizeof line)
                                line[n++] = c;
                }
                line[n] = 0;
                if (strcmp(line, "go") != 0) {
                        kill(pid, SIGKILL);
                        waitpid(pid, NULL, 0);
                        return 1;
                }
                if (write(sync_sock, "g", 1) != 1) {
                        /* the child died already; its status is reported below */
                }
        }

        int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        const char *console = plan.console ? plan.console : "pipe";
        int interactive = !strcmp(console, "interactive");
        int forward_out = interactive || !strcmp(console, "read-only");
        int master = -1, master_watch = -1;
        int sync_open = 1;
        int notify_fd = -1;
        int exited = 0, status = 0;
        int last_char = -1; /* the last byte of the container's output we passed on (-1: none yet) */
        int stdin_open = interactive;
        int escape_count = 0;
        uint64_t escape_first = 0;
        int escape_prefix = 0;

        if (interactive && isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_tio) == 0) {
                struct termios raw = saved_tio;
                cfmakeraw(&raw);
                raw.c_oflag = saved_tio.c_oflag; /* keep output processing of the host side as it is */
                raw.c_oflag &= ~(tcflag_t) OPOST;
                if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0)
                        saved_tio_ok = 1;
        }

        for (;;) {
                struct pollfd p[5];
                int np = 0;
                int i_sig = np;
                p[np++] = (struct pollfd) { .fd = sfd, .events = POLLIN };
                int i_sync = -1, i_master = -1, i_in = -1, i_notify = -1;
                if (notify_fd >= 0 && !exited) {
                        i_notify = np;
                        p[np++] = (struct pollfd) { .fd = notify_fd, .events = POLLIN };
                }
                if (sync_open) {
                        i_sync = np;
                        p[np++] = (struct pollfd) { .fd = sync_sock, .events = POLLIN };
                }
                if (master_watch >= 0 && !exited) {
                        i_master = np;
                        p[np++] = (struct pollfd) { .fd = master_watch, .events = POLLIN };
                }
                if (master >= 0 && stdin_open && !exited) {
                        i_in = np;
                        p[np++] = (struct pollfd) { .fd = STDIN_FILENO, .events = POLLIN };
                }
                if (exited && !sync_open)
                        break;
                int r = poll(p, (nfds_t) np, exited ? 0 : -1);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (exited && r == 0)
                        break;
                if (p[i_sig].revents & POLLIN) {
                        struct signalfd_siginfo si;
                        while (read(sfd, &si, sizeof si) == sizeof si) {
                                if (si.ssi_signo == SIGWINCH && master >= 0)
                                        copy_winsize(master);
                                /* SIGINT/SIGTERM/SIGHUP: Node decides what to send to the container (handed over: we do) */
                                else if (handoff_on)
                                        ho_signal((int) si.ssi_signo, pid);
                        }
                        int st;
                        if (!exited && waitpid(pid, &st, WNOHANG) == pid) {
                                exited = 1;
                                status = st;
                        }
                }
                if (i_sync >= 0 && (p[i_sync].revents & (POLLIN | POLLHUP | POLLERR))) {
                        char buf[4096];
                        int fd = -1;
                        int n = recv_msg(sync_sock, buf, sizeof buf, &fd);
                        if (n <= 0) {
                                sync_open = 0;
                                if (!exited) {
                                        ctl_printf("ready\n");
                                        /* the container runs: what systemd-nspawn tells its service manager now */
                                        char msg[128];
                                        snprintf(msg, sizeof msg, "STATUS=Container running.\nX_NSPAWN_LEADER_PID=%d", (int) pid);
                                        notify_ours(msg);
                                        if (!plan.notify_ready)
                                                notify_ours("READY=1\n");
                                }
                        } else if (buf[0] == 'N' && fd >= 0) {
                                if (notify_fd >= 0)
                                        close(notify_fd);
                                notify_fd = fd;
                        } else if (buf[0] == 'E') {
                                for (char *q = buf; *q; q++)
                                        if (*q == '\n')
                                                *q = ' ';
                                ctl_printf("error %s\n", buf + 1);
                        } else if (buf[0] == 'W') {
                                for (char *q = buf; *q; q++)
                                        if (*q == '\n')
                                                *q = ' ';
                                ctl_printf("warning %s\n", buf + 1);
                        } else if (buf[0] == 'P' && fd >= 0) {
                                master = fd;
                                int fl = fcntl(master, F_GETFL);
                                fcntl(master, F_SETFL, fl | O_NONBLOCK);
                                copy_winsize(master);
                                if (forward_out && (master_watch = ptyfwd_watch(master)) < 0)
                                        forward_out = 0;
                        }
                }
                if (i_notify >= 0 && (p[i_notify].revents & POLLIN))
                        notify_dispatch(notify_fd, pid);
                if (i_master >= 0 && (p[i_master].revents & POLLIN))
                        (void) ptyfwd_drain(master_watch, master, STDOUT_FILENO, &last_char);
                if (i_in >= 0 && (p[i_in].revents & (POLLIN | POLLHUP | POLLERR))) {
                        char buf[4096];
                        ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
                        if (n <= 0) {
                                stdin_open = 0;
                        } else {
                                size_t start = 0;
                                for (ssize_t k = 0; k < n; k++) {
                                        unsigned char ch = (unsigned char) buf[k];
                                        if (escape_prefix) {
                                                escape_prefix = 0;
                                                if (ch == 'p' || ch == 'r') {
                                                        ctl_printf("escape %s\n", ch == 'p' ? "poweroff" : "reboot");
                                                        start = (size_t) k + 1;
                                                        escape_count = 0;
                                                        continue;
                                                }
                                        }
                                        if (ch == 0x1d) {
                                                uint64_t t = now_ms();
                                                if (escape_count == 0 || t - escape_first > 1000) {
                                                        escape_count = 0;
                                                        escape_first = t;
                                                }
                                                escape_count++;
                                                if (escape_count == 2)
                                                        escape_prefix = 1;
                                                if (escape_count >= 3) {
                                                        escape_prefix = 0;
                                                        ctl_printf("escape kill\n");
                                                        escape_count = 0;
                                                        start = (size_t) k + 1;
                                                }
                                        } else if (!escape_prefix)
                                                escape_count = 0;
                                }
                                if ((size_t) n > start)
                                        (void) write_all(master, buf + start, (size_t) n - start);
                        }
                }
        }

        /* Drain what the container wrote last. */
        if (master_watch >= 0) {
                (void) ptyfwd_drain(master_watch, master, STDOUT_FILENO, &last_char);
                close(master_watch);
        }
        restore_tty();
        /* ptyfwd's last character (after the terminal is itself again, so "\n" starts a line): nspawn's own messages
         * that follow start on a new line */
        if (plan.final_newline && master >= 0 && forward_out && last_char != '\n')
                (void) write_all(STDOUT_FILENO, "\n", 1);
        if (!exited) {
                waitpid(pid, &status, 0);
        }
        devices_detach(&plan.devices);
        /* systemd-nspawn's last word to its service manager; a reboot that nspawn follows is not an end */
        if (WIFSIGNALED(status) && WTERMSIG(status) == SIGHUP) {
                if (plan.restart_exits)
                        notify_ours("STOPPING=1\nSTATUS=Restarting...");
        } else
                notify_ours("STOPPING=1\nSTATUS=Terminating...");
        if (handoff_on)
                ho_finish(status);
        if (WIFEXITED(status))
                ctl_printf("exit %d\n", WEXITSTATUS(status));
        else if (WIFSIGNALED(status))
                ctl_printf("signal %d\n", WTERMSIG(status));
        return 0;
}
