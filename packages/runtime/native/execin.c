/*
 * Modes of nspawn-helper besides running a plan, for nspawnd and nspawnctl (included by nspawn-helper.c):
 *
 *   nspawn-helper peercred
 *       fd 0 is a connected AF_UNIX socket: prints "PID UID GID" of its peer (SO_PEERCRED), which Node cannot read.
 *
 *   nspawn-helper peercred-server PID
 *       The same for many connections of process PID (nspawnd, our parent): reads a file descriptor number of PID
 *       per line on stdin, takes a copy of that descriptor (pidfd_getfd(2)) and answers "PID UID GID" (or "-")
 *       per line on stdout. One process for all connections instead of one per connection.
 *
 *   nspawn-helper exec-in LEADER [-u UID] [-g GID] [-G GID,GID...] [-d DIR] [-c CGROUP.PROCS]... [-t] -- CMD [ARG...]
 *       nsenter(1) for a container: joins the cgroups named by -c, enters the namespaces of the container's PID 1
 *       (LEADER, a host PID): cgroup, ipc, uts, net, pid, mnt and, when it has its own, user; chroots to its root;
 *       keeps only the capabilities in its bounding set; takes its seccomp filters and no_new_privs (as a descendant of
 *       the container's PID 1 has them: machinectl shell's session is one); drops to UID/GID; forks (the pid namespace applies to
 *       children) and execs CMD (searched in the container's $PATH) in the child. Exits with CMD's exit code, or
 *       128+N when it died of signal N; stdio passes straight through. 255 and a message when entering failed.
 *       -b SRC:DST[:ro][:mkdir] instead of a command: bind mounts host path SRC at DST in the running container
 *       (open_tree() on the host before entering, move_mount() inside), as `machinectl bind` does.
 *       -t: CMD gets a new pty of the container's devpts as its controlling terminal (a getty for `login`); we
 *       copy between it and our stdio (our terminal in raw mode) until CMD ends or ^] is pressed three times
 *       within a second.
 */

static int execin_fail(const char *what) {
        fprintf(stderr, "nspawn-helper exec-in: %s: %s\n", what, strerror(errno));
        return 255;
}

#include <sys/ptrace.h>

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

static int peercred_main(void) {
        struct ucred uc;
        socklen_t l = sizeof uc;
        if (getsockopt(STDIN_FILENO, SOL_SOCKET, SO_PEERCRED, &uc, &l) < 0) {
                fprintf(stderr, "nspawn-helper peercred: %s\n", strerror(errno));
                return 1;
        }
        printf("%d %u %u\n", (int) uc.pid, (unsigned) uc.uid, (unsigned) uc.gid);
        return 0;
}

static int peercred_server_main(int argc, char **argv) {
        if (argc < 3)
                return 2;
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int pidfd = (int) syscall(SYS_pidfd_open, atoi(argv[2]), 0);
        if (pidfd < 0) {
                fprintf(stderr, "nspawn-helper peercred-server: pidfd_open: %s\n", strerror(errno));
                return 1;
        }
        setvbuf(stdout, NULL, _IOLBF, 0);
        char line[64];
        while (fgets(line, sizeof line, stdin)) {
                int fd = (int) syscall(SYS_pidfd_getfd, pidfd, atoi(line), 0);
                struct ucred uc;
                socklen_t l = sizeof uc;
                if (fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &l) == 0)
                        printf("%d %u %u\n", (int) uc.pid, (unsigned) uc.uid, (unsigned) uc.gid);
                else
                        printf("-\n");
                if (fd >= 0)
                        close(fd);
        }
        return 0;
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

static int execin_main(int argc, char **argv) {
        if (argc < 4)
                return errno = EINVAL, execin_fail("usage: exec-in LEADER [options] -- CMD...");
        int leader = atoi(argv[2]);
        long uid = 0, gid = 0;
        const char *dir = NULL, *groups = NULL;
        const char *cgroups[16];
        int n_cg = 0, i = 3, want_pty = 0;
        const char *bind = NULL;
        for (; i < argc && strcmp(argv[i], "--"); i++) {
                if (!strcmp(argv[i], "-t")) {
                        want_pty = 1;
                        continue;
                }
                if (i + 1 >= argc)
                        return errno = EINVAL, execin_fail(argv[i]);
                if (!strcmp(argv[i], "-u"))
                        uid = atol(argv[++i]);
                else if (!strcmp(argv[i], "-g"))
                        gid = atol(argv[++i]);
                else if (!strcmp(argv[i], "-G"))
                        groups = argv[++i];
                else if (!strcmp(argv[i], "-d"))
                        dir = argv[++i];
                else if (!strcmp(argv[i], "-b"))
                        bind = argv[++i];
                else if (!strcmp(argv[i], "-c") && n_cg < 16)
                        cgroups[n_cg++] = argv[++i];
                else
                        return errno = EINVAL, execin_fail(argv[i]);
        }
        if (i + 1 >= argc && !bind)
                return errno = EINVAL, execin_fail("no command");
        char **cmd = argv + i + 1;
        int tree = -1;
        char bsrc[PATH_MAX], bdst[PATH_MAX];
        int b_ro = 0, b_mkdir = 0;
        if (bind) {
                /* SRC:DST[:ro][:mkdir] */
                char tmp[PATH_MAX * 2 + 16];
                snprintf(tmp, sizeof tmp, "%s", bind);
                char *save = NULL, *t = strtok_r(tmp, ":", &save);
                snprintf(bsrc, sizeof bsrc, "%s", t ? t : "");
                t = strtok_r(NULL, ":", &save);
                snprintf(bdst, sizeof bdst, "%s", t ? t : bsrc);
                while ((t = strtok_r(NULL, ":", &save))) {
                        if (!strcmp(t, "ro"))
                                b_ro = 1;
                        else if (!strcmp(t, "mkdir"))
                                b_mkdir = 1;
                }
                tree = (int) syscall(SYS_open_tree, AT_FDCWD, bsrc, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
                if (tree < 0)
                        return execin_fail(bsrc);
                if (b_ro) {
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
        for (int k = 0; k < n_cg; k++)
                (void) write_small_file(cgroups[k], "0");
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
                if (stat(bdst, &st) < 0) {
                        if (!b_mkdir)
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
        if (groups && *groups) {
                gid_t gl[NGROUPS_MAX];
                int n = 0;
                for (const char *p = groups; *p && n < NGROUPS_MAX;) {
                        gl[n++] = (gid_t) strtoul(p, (char **) &p, 10);
                        if (*p == ',')
                                p++;
                        else if (*p)
                                break;
                }
                if (setgroups((size_t) n, gl) < 0)
                        return execin_fail("setgroups");
        } else if (setgroups(0, NULL) < 0 && errno != EPERM)
                return execin_fail("setgroups");
        if (syscall(SYS_setresgid, gid, gid, gid) < 0)
                return execin_fail("setgid");
        if (syscall(SYS_setresuid, uid, uid, uid) < 0)
                return execin_fail("setuid");
        if (chdir(dir ? dir : "/") < 0 && chdir("/") < 0)
                return execin_fail("chdir");

        int master = -1;
        char slave[64] = "";
        if (want_pty) {
                /* the container's devpts: we are in its mount namespace now */
                master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
                int unlock = 0;
                unsigned n;
                if (master < 0 || ioctl(master, TIOCSPTLCK, &unlock) < 0 || ioctl(master, TIOCGPTN, &n) < 0)
                        return execin_fail("allocating a pty in the container");
                snprintf(slave, sizeof slave, "/dev/pts/%u", n);
                copy_winsize(master);
        }
        pid_t pid = fork();
        if (pid < 0)
                return execin_fail("fork");
        if (pid == 0) {
                if (want_pty) {
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
                signal(SIGINT, SIG_DFL);
                signal(SIGQUIT, SIG_DFL);
                execvp(cmd[0], cmd);
                fprintf(stderr, "nspawn-helper exec-in: %s: %s\n", cmd[0], strerror(errno));
                _exit(errno == ENOENT ? 127 : 126);
        }
        execin_child = pid;
        /* the terminal's ^C and ^\ reach the child through its process group; the rest we pass on */
        signal(SIGINT, SIG_IGN);
        signal(SIGQUIT, SIG_IGN);
        struct sigaction sa = { .sa_handler = execin_forward };
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        int st;
        if (want_pty)
                return execin_relay(master, pid);
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                        return execin_fail("waitpid");
        if (WIFEXITED(st))
                return WEXITSTATUS(st);
        return 128 + WTERMSIG(st);
}
