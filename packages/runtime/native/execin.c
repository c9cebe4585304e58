/* "nspawn-helper exec-in" (execin.h). */
#define _GNU_SOURCE
#include "control.h"
#include "execin.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/close_range.h>
#include <linux/filter.h>
#include <linux/mount.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "console.h"
#include "ptyfwd.h"
#include "util.h"

static int request_record(void *ctx, unsigned id, const WireValue *v, char *err, size_t errsz) {
        ExecInRequest *r = ctx;
        switch (id) {
        case X_LEADER:
                if (v[0].u < 2 || v[0].u > 0x7fffffff)
                        return snprintf(err, errsz, "leader PID %llu", (unsigned long long) v[0].u), -1;
                r->leader = v[0].u;
                break;
        case X_COMMAND:
                if (v[0].n == 0)
                        return snprintf(err, errsz, "an empty command"), -1;
                r->command = v[0].strs, r->n_command = v[0].n;
                break;
        case X_ENV:
                r->env = v[0].strs, r->n_env = v[0].n;
                break;
        case X_UID:
        case X_GID:
                if (v[0].u > 0xfffffffe)
                        return snprintf(err, errsz, "ID %llu", (unsigned long long) v[0].u), -1;
                *(id == X_UID ? &r->uid : &r->gid) = v[0].u;
                break;
        case X_GROUPS:
                r->groups = xcalloc(v[0].n, sizeof *r->groups);
                for (size_t i = 0; i < v[0].n; i++) {
                        if (v[0].nums[i] > 0xfffffffe)
                                return snprintf(err, errsz, "GID %llu", (unsigned long long) v[0].nums[i]), -1;
                        r->groups[i] = (gid_t) v[0].nums[i];
                }
                r->n_groups = v[0].n;
                break;
        case X_CWD:
                r->cwd = v[0].s;
                break;
        case X_CGROUPS:
                r->cgroups = v[0].strs, r->n_cgroups = v[0].n;
                break;
        case X_PTY:
                r->pty = 1;
                break;
        case X_CONSOLESOCK:
                if (v[0].u > 0xffff)
                        return snprintf(err, errsz, "console socket fd %llu", (unsigned long long) v[0].u), -1;
                r->console_socket = 1 + (int) v[0].u;
                break;
        case X_PASSFDS:
                r->pass_fds = xcalloc(v[0].n + 1, sizeof *r->pass_fds);
                for (size_t i = 0; i < v[0].n; i++) {
                        if (v[0].nums[i] > 0xffff)
                                return snprintf(err, errsz, "fd %llu", (unsigned long long) v[0].nums[i]), -1;
                        r->pass_fds[i] = (int) v[0].nums[i];
                }
                r->n_pass_fds = v[0].n;
                break;
        case X_BIND:
                if (!*v[0].s || !*v[1].s)
                        return snprintf(err, errsz, "an empty path"), -1;
                r->bind = 1;
                r->bind_src = v[0].s, r->bind_dst = v[1].s, r->bind_ro = v[2].b, r->bind_mkdir = v[3].b;
                break;
        }
        return 0;
}

int execin_request_decode(const WireMessage *m, ExecInRequest *r, char *err, size_t errsz) {
        static const char *const none[] = { NULL };
        memset(r, 0, sizeof *r);
        if (wire_decode(&wire_exec_in_schema, m, request_record, r, err, errsz) < 0)
                return -1;
        if (!r->command == !r->bind) {
                snprintf(err, errsz, "invalid exec-in request: %s", r->bind ? "a command and a bind" : "neither a command nor a bind");
                return -1;
        }
        if (!r->env)
                r->env = (const char **) none;
        return 0;
}

/*
 * In the command's process before its exec: the passed fds become its 3, 4, ... (runc's ExtraFiles), each through a
 * copy above the targets first (a source may be another's target), the sources themselves closed at the exec.
 * Returns -1 with errno.
 */
static int execin_pass_fds(const ExecInRequest *r) {
        int n = (int) r->n_pass_fds;
        int *tmp = xcalloc((size_t) n + 1, sizeof *tmp);
        for (int i = 0; i < n; i++) {
                tmp[i] = fcntl(r->pass_fds[i], F_DUPFD_CLOEXEC, 3 + n);
                if (tmp[i] < 0 || fcntl(r->pass_fds[i], F_SETFD, FD_CLOEXEC) < 0)
                        return -1;
        }
        for (int i = 0; i < n; i++) {
                if (dup2(tmp[i], 3 + i) < 0)
                        return -1;
                close(tmp[i]);
        }
        free(tmp);
        return 0;
}

static int execin_fail(const char *what) {
        fprintf(stderr, "nspawn-helper exec-in: %s: %s\n", what, strerror(errno));
        return 255;
}

#define EXECIN_MAX_FILTERS 32

/* A number field ("Seccomp_filters:", "NoNewPrivs:") of /proc/PID/status; -1 when there is none. */
static long execin_status_field(int pid, const char *field) {
        char path[64], line[256];
        snprintf(path, sizeof path, "/proc/%d/status", pid);
        FILE *f = fopen(path, "re");
        long v = -1;
        size_t n = strlen(field);
        if (!f)
                return -1;
        while (fgets(line, sizeof line, f))
                if (!strncmp(line, field, n))
                        v = strtol(line + n, NULL, 10);
        fclose(f);
        return v;
}

/*
 * The seccomp filters of LEADER (the container's PID 1) into F, newest first as the kernel numbers them
 * (PTRACE_SECCOMP_GET_FILTER, with LEADER stopped for the moment it takes): a command started in the container gets
 * them too, as under machinectl shell, whose session is a descendant of the container's PID 1. Returns how many,
 * 0 when it has none, -1 with errno when it has some that cannot be read (a kernel without CONFIG_CHECKPOINT_RESTORE:
 * EINVAL); the caller then refuses to run anything unfiltered.
 */
static int execin_filters(int leader, struct sock_fprog *f, int max) {
        long count = execin_status_field(leader, "Seccomp_filters:");
        if (count == 0 || (count < 0 && execin_status_field(leader, "Seccomp:") == 0))
                return 0;
        if (ptrace(PTRACE_SEIZE, leader, NULL, NULL) < 0)
                return -1;
        int n = -1, e = 0, st;
        if (ptrace(PTRACE_INTERRUPT, leader, NULL, NULL) < 0)
                e = errno;
        else {
                while (waitpid(leader, &st, __WALL) < 0 && errno == EINTR) {
                }
                for (n = 0; n < max; n++) {
                        long len = ptrace(PTRACE_SECCOMP_GET_FILTER, leader, (void *) (long) n, NULL);
                        if (len < 0) {
                                if (errno != ENOENT)
                                        e = errno, n = -1;
                                break;
                        }
                        struct sock_filter *prog = calloc((size_t) len, sizeof *prog);
                        if (!prog || ptrace(PTRACE_SECCOMP_GET_FILTER, leader, (void *) (long) n, prog) != len) {
                                e = prog ? errno : ENOMEM, n = -1;
                                free(prog);
                                break;
                        }
                        f[n].len = (unsigned short) len;
                        f[n].filter = prog;
                }
        }
        (void) ptrace(PTRACE_DETACH, leader, NULL, NULL);
        if (n < 0 || (count > 0 && n != count)) {
                errno = e ? e : E2BIG;
                return -1;
        }
        return n;
}

static uint64_t execin_capbnd(int pid) {
        char path[64], line[256];
        snprintf(path, sizeof path, "/proc/%d/status", pid);
        FILE *f = fopen(path, "re");
        uint64_t v = ~(uint64_t) 0;
        if (!f)
                return v;
        while (fgets(line, sizeof line, f))
                if (!strncmp(line, "CapBnd:", 7))
                        v = strtoull(line + 7, NULL, 16);
        fclose(f);
        return v;
}

static volatile sig_atomic_t execin_child = 0;
static void execin_forward(int sig) {
        if (execin_child > 0)
                kill(execin_child, sig);
}

/* Copies between our stdio and the pty master until the child ends (or ^]^]^]); returns its status. */
static int execin_relay(int master, pid_t pid) {
        struct termios saved, raw;
        int tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
        if (tty) {
                raw = saved;
                cfmakeraw(&raw);
                tcsetattr(STDIN_FILENO, TCSANOW, &raw);
        }
        int in_open = 1, esc = 0, st = 0, done = 0;
        uint64_t esc_first = 0;
        fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
        int watch = ptyfwd_watch(master);
        /* (the timeout: SIGCHLD is not a descriptor here) */
        while (!done && watch >= 0) {
                struct pollfd p[2] = { { .fd = watch, .events = POLLIN }, { .fd = STDIN_FILENO, .events = POLLIN } };
                int r = poll(p, in_open ? 2 : 1, 200);
                if (r < 0 && errno != EINTR)
                        break;
                if (p[0].revents & POLLIN)
                        (void) ptyfwd_drain(watch, master, STDOUT_FILENO, NULL);
                if (in_open && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
                        char buf[4096];
                        ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
                        if (n <= 0)
                                in_open = 0;
                        else {
                                for (ssize_t k = 0; k < n; k++) {
                                        if (buf[k] == 0x1d) {
                                                uint64_t t = now_ms();
                                                if (esc == 0 || t - esc_first > 1000) {
                                                        esc = 0;
                                                        esc_first = t;
                                                }
                                                if (++esc >= 3) {
                                                        kill(pid, SIGHUP);
                                                        done = 1;
                                                }
                                        } else
                                                esc = 0;
                                }
                                (void) write_all(master, buf, (size_t) n);
                        }
                }
                if (waitpid(pid, &st, WNOHANG) == pid) {
                        /* what it wrote last */
                        (void) ptyfwd_drain(watch, master, STDOUT_FILENO, NULL);
                        pid = 0;
                        break;
                }
        }
        if (watch >= 0)
                close(watch);
        if (tty)
                tcsetattr(STDIN_FILENO, TCSANOW, &saved);
        if (pid > 0) {
                waitpid(pid, &st, 0);
        }
        if (WIFEXITED(st))
                return WEXITSTATUS(st);
        return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 0;
}

/* a decimal number from 0 to MAX, nothing else; -1 otherwise */
static long long legacy_number(const char *s, long long max) {
        char *end;
        if (!s || *s < '0' || *s > '9')
                return -1;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        return errno || *end || v > max ? -1 : v;
}

/*
 * TRANSITIONAL, until nspawnctl uses execIn()/bindIn() of @nspawn/runtime: the old command line
 *   exec-in LEADER [-u UID] [-g GID] [-G GID,GID...] [-d DIR] [-c CGROUP.PROCS]... [-t] [-b SRC:DST[:ro][:mkdir]] -- CMD...
 * into R, the command's environment being ours. Options come before "--" only; every word after it is the command.
 */
static int legacy_request(int argc, char **argv, ExecInRequest *r, char *err, size_t errsz) {
        static StrList cgroups;
        extern char **environ;
        memset(r, 0, sizeof *r);
        long long v = legacy_number(argv[2], 0x7fffffff);
        if (v < 2)
                return snprintf(err, errsz, "'%s' is not a PID", argv[2]), -1;
        r->leader = (uint64_t) v;
        int i = 3;
        for (; i < argc && strcmp(argv[i], "--"); i++) {
                const char *o = argv[i], *a = i + 1 < argc ? argv[i + 1] : NULL;
                if (!strcmp(o, "-t")) {
                        r->pty = 1;
                        continue;
                }
                if (!a)
                        return snprintf(err, errsz, "%s needs a value", o), -1;
                i++;
                if (!strcmp(o, "-u") || !strcmp(o, "-g")) {
                        if ((v = legacy_number(a, 0xfffffffe)) < 0)
                                return snprintf(err, errsz, "%s %s", o, a), -1;
                        *(o[1] == 'u' ? &r->uid : &r->gid) = (uint64_t) v;
                } else if (!strcmp(o, "-G")) {
                        for (const char *p = a; *p;) {
                                char num[16];
                                size_t n = strcspn(p, ",");
                                snprintf(num, sizeof num, "%.*s", (int) (n < 15 ? n : 15), p);
                                if (n > 15 || (v = legacy_number(num, 0xfffffffe)) < 0)
                                        return snprintf(err, errsz, "-G %s", a), -1;
                                r->groups = realloc(r->groups, (r->n_groups + 1) * sizeof *r->groups);
                                if (!r->groups)
                                        return snprintf(err, errsz, "out of memory"), -1;
                                r->groups[r->n_groups++] = (gid_t) v;
                                p += n + (p[n] == ',');
                        }
                } else if (!strcmp(o, "-d"))
                        r->cwd = a;
                else if (!strcmp(o, "-c"))
                        strlist_push(&cgroups, a);
                else if (!strcmp(o, "-b")) {
                        /* SRC:DST[:ro][:mkdir] */
                        char *spec = strdup(a), *save = NULL;
                        char *src = spec ? strtok_r(spec, ":", &save) : NULL, *dst = src ? strtok_r(NULL, ":", &save) : NULL;
                        if (!src)
                                return snprintf(err, errsz, "-b %s", a), -1;
                        r->bind = 1, r->bind_src = src, r->bind_dst = dst ? dst : src;
                        for (char *t; (t = strtok_r(NULL, ":", &save));)
                                r->bind_ro |= !strcmp(t, "ro"), r->bind_mkdir |= !strcmp(t, "mkdir");
                } else
                        return snprintf(err, errsz, "unknown option %s", o), -1;
        }
        if (i < argc - 1 && !r->bind)
                r->command = (const char **) argv + i + 1, r->n_command = (size_t) (argc - i - 1);
        if (!r->command == !r->bind)
                return snprintf(err, errsz, "%s", r->bind ? "a command and a bind" : "no command"), -1;
        strlist_push(&cgroups, NULL);
        r->cgroups = cgroups.v, r->n_cgroups = cgroups.n - 1;
        r->env = (const char **) environ;
        return 0;
}

int execin_main(int argc, char **argv) {
        char err[1024];
        WireMessage msg;
        ExecInRequest r;
        if (argc > 2) {
                if (legacy_request(argc, argv, &r, err, sizeof err) < 0) {
                        fprintf(stderr, "nspawn-helper exec-in: %s\n", err);
                        return 255;
                }
        } else {
                int rc = wire_read(3, 1, &msg, err, sizeof err);
                if (rc == 0)
                        snprintf(err, sizeof err, "no request on fd 3");
                if (rc <= 0 || execin_request_decode(&msg, &r, err, sizeof err) < 0) {
                        fprintf(stderr, "nspawn-helper exec-in: %s\n", err);
                        return 255;
                }
                close(3);
        }
        int leader = (int) r.leader;
        const char *bind = r.bind ? r.bind_src : NULL;
        char **cmd = (char **) r.command;
        int tree = -1;
        if (bind) {
                tree = (int) syscall(SYS_open_tree, AT_FDCWD, r.bind_src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
                if (tree < 0)
                        return execin_fail(r.bind_src);
                if (r.bind_ro) {
                        struct mount_attr attr = { .attr_set = MOUNT_ATTR_RDONLY };
                        if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0)
                                return execin_fail("mount_setattr");
                }
        }

        static const char *const kinds[] = { "cgroup", "ipc", "uts", "net", "pid", "mnt", "user" };
        int fds[7];
        char path[PATH_MAX];
        for (int k = 0; k < 7; k++) {
                snprintf(path, sizeof path, "/proc/%d/ns/%s", leader, kinds[k]);
                fds[k] = open(path, O_RDONLY | O_CLOEXEC);
                if (fds[k] < 0)
                        return execin_fail(path);
        }
        snprintf(path, sizeof path, "/proc/%d/root", leader);
        int rootfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0)
                return execin_fail(path);
        uint64_t bnd = execin_capbnd(leader);
        /* the container's system call filters and no_new_privs, for the command (not for a bind mount) */
        struct sock_fprog filters[EXECIN_MAX_FILTERS];
        int n_filters = bind ? 0 : execin_filters(leader, filters, EXECIN_MAX_FILTERS);
        if (n_filters < 0)
                return execin_fail("copying the container's system call filter (PTRACE_SECCOMP_GET_FILTER)");
        int nnp = !bind && execin_status_field(leader, "NoNewPrivs:") == 1;
        /* a user namespace of its own? (setns() into the one we are in is EINVAL) */
        struct stat a, b;
        int own_user = fstat(fds[6], &a) == 0 && stat("/proc/self/ns/user", &b) == 0 && (a.st_ino != b.st_ino || a.st_dev != b.st_dev);

        /* not fatal: the container may have gone read-only on its cgroup */
        for (size_t k = 0; k < r.n_cgroups; k++)
                (void) write_small_file(r.cgroups[k], "0");
        for (int k = 0; k < 6; k++) {
                struct stat s1, s2;
                snprintf(path, sizeof path, "/proc/self/ns/%s", kinds[k]);
                if (fstat(fds[k], &s1) == 0 && stat(path, &s2) == 0 && s1.st_ino == s2.st_ino && s1.st_dev == s2.st_dev)
                        continue;
                if (setns(fds[k], 0) < 0)
                        return execin_fail(kinds[k]);
        }
        if (bind) {
                /* the mount belongs to the host's user namespace: attach it before entering the container's */
                struct stat st;
                if (fchdir(rootfd) < 0 || chroot(".") < 0)
                        return execin_fail("chroot");
                const char *bdst = r.bind_dst;
                if (stat(bdst, &st) < 0) {
                        if (!r.bind_mkdir)
                                return execin_fail(bdst);
                        struct stat sst;
                        int isdir = fstat(tree, &sst) == 0 && S_ISDIR(sst.st_mode);
                        char path[PATH_MAX];
                        snprintf(path, sizeof path, "%s", bdst);
                        for (char *p = path + 1; *p; p++)
                                if (*p == '/') {
                                        *p = 0;
                                        (void) mkdir(path, 0755);
                                        *p = '/';
                                }
                        if (isdir ? mkdir(bdst, 0755) < 0 : mknod(bdst, S_IFREG | 0644, 0) < 0)
                                return execin_fail(bdst);
                }
                if (syscall(SYS_move_mount, tree, "", AT_FDCWD, bdst, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                        return execin_fail("move_mount");
                return 0;
        }
        if (own_user && setns(fds[6], CLONE_NEWUSER) < 0)
                return execin_fail("user");
        if (fchdir(rootfd) < 0 || chroot(".") < 0)
                return execin_fail("chroot");
        for (int c = 0; c <= 63; c++)
                if (!(bnd & ((uint64_t) 1 << c)) && prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1)
                        (void) prctl(PR_CAPBSET_DROP, c, 0, 0, 0);
        /* (still privileged here, so no no_new_privs of our own is needed to install them; the oldest first) */
        if (nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return execin_fail("no_new_privs");
        for (int k = n_filters - 1; k >= 0; k--)
                if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &filters[k], 0, 0) < 0)
                        return execin_fail("installing the container's system call filter");
        if (r.n_groups > 0) {
                if (setgroups(r.n_groups, r.groups) < 0)
                        return execin_fail("setgroups");
        } else if (setgroups(0, NULL) < 0 && errno != EPERM)
                return execin_fail("setgroups");
        if (syscall(SYS_setresgid, r.gid, r.gid, r.gid) < 0)
                return execin_fail("setgid");
        if (syscall(SYS_setresuid, r.uid, r.uid, r.uid) < 0)
                return execin_fail("setuid");
        if (chdir(r.cwd ? r.cwd : "/") < 0 && chdir("/") < 0)
                return execin_fail("chdir");

        int master = -1;
        char slave[64] = "";
        if (r.pty) {
                /* the container's devpts: we are in its mount namespace now */
                master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
                int unlock = 0;
                unsigned n;
                if (master < 0 || ioctl(master, TIOCSPTLCK, &unlock) < 0 || ioctl(master, TIOCGPTN, &n) < 0)
                        return execin_fail("allocating a pty in the container");
                snprintf(slave, sizeof slave, "/dev/pts/%u", n);
                console_copy_winsize(master);
        }
        /* the console socket is not the command's */
        if (r.console_socket && fcntl(r.console_socket - 1, F_SETFD, FD_CLOEXEC) < 0)
                return execin_fail("the console socket");
        pid_t pid = fork();
        if (pid < 0)
                return execin_fail("fork");
        if (pid == 0) {
                if (r.pty) {
                        setsid();
                        int s = open(slave, O_RDWR);
                        if (s < 0 || ioctl(s, TIOCSCTTY, 0) < 0) {
                                fprintf(stderr, "nspawn-helper exec-in: %s: %s\n", slave, strerror(errno));
                                _exit(255);
                        }
                        dup2(s, 0);
                        dup2(s, 1);
                        dup2(s, 2);
                        if (s > 2)
                                close(s);
                }
                if (r.n_pass_fds && execin_pass_fds(&r) < 0) {
                        fprintf(stderr, "nspawn-helper exec-in: passing the preserved descriptors: %s\n", strerror(errno));
                        _exit(255);
                }
                /* nothing else we inherited reaches the command (runc: CloseExecFrom(3 + passed)) */
                if (syscall(SYS_close_range, 3 + (unsigned) r.n_pass_fds, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
                        fprintf(stderr, "nspawn-helper exec-in: close_range: %s\n", strerror(errno));
                        _exit(255);
                }
                signal(SIGINT, SIG_DFL);
                signal(SIGQUIT, SIG_DFL);
                environ = (char **) r.env; /* the command's environment (execvp() searches its PATH) */
                execvp(cmd[0], cmd);
                fprintf(stderr, "nspawn-helper exec-in: %s: %s\n", cmd[0], strerror(errno));
                _exit(errno == ENOENT ? 127 : 126);
        }
        execin_child = pid;
        /* the command's descriptors are its own: a pipe it writes to ends with it, not with us */
        for (size_t i = 0; i < r.n_pass_fds; i++)
                close(r.pass_fds[i]);
        /* the terminal's ^C and ^\ reach the child through its process group; the rest we pass on */
        signal(SIGINT, SIG_IGN);
        signal(SIGQUIT, SIG_IGN);
        struct sigaction sa = { .sa_handler = execin_forward };
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        int st;
        if (r.pty && r.console_socket) {
                /* OCI exec --console-socket: the master goes to the caller's socket (runc's message: its name), no copy kept */
                static const char name[] = "/dev/ptmx";
                if (send_fd_with(r.console_socket - 1, master, name, sizeof name - 1) < 0) {
                        fprintf(stderr, "nspawn-helper exec-in: sending the terminal to the console socket: %s\n", strerror(errno));
                        kill(pid, SIGKILL);
                }
                close(master);
                close(r.console_socket - 1);
        } else if (r.pty)
                return execin_relay(master, pid);
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                        return execin_fail("waitpid");
        if (WIFEXITED(st))
                return WEXITSTATUS(st);
        return 128 + WTERMSIG(st);
}
