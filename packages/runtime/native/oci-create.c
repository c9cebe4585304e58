/*
 * nspawn-oci's front end: `create`. The container is made by its monitor, a Node process (the OCI config's
 * translation, the engine, the hooks: apps/cli's `__monitor`), which reports on a pipe (fd 3) "created PID" once the
 * container waits for `start`, or "error MESSAGE". The Node command's create is the same, but is a Node start of its
 * own before the monitor's; here the waiting costs no second one. As lifecycle.ts createContainer(): the
 * directory ROOT/ID is made first ("container with id exists"), the monitor gets our descriptors 3.. (socket
 * activation's LISTEN_FDS, then --preserve-fds) as 4.., in a session of its own; a failure leaves nothing behind.
 */
#define _GNU_SOURCE
#include "oci-front.h"
#include "oci-socket.h"
#include "oci-state.h"
#include "oci-warm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* node:path resolve(P): absolute, '.', '..' and repeated slashes gone, no trailing slash */
static char *resolve(const char *p) {
        char cwd[PATH_MAX];
        Buf in = { 0 };
        if (p[0] != '/') {
                if (!getcwd(cwd, sizeof cwd))
                        strcpy(cwd, "/");
                buf_puts(&in, cwd);
                buf_puts(&in, "/");
        }
        buf_puts(&in, p);
        char **parts = calloc(in.n + 1, sizeof *parts);
        size_t n = 0;
        for (char *save = NULL, *t = strtok_r(in.p, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
                if (!strcmp(t, "."))
                        continue;
                if (!strcmp(t, "..")) {
                        if (n)
                                n--;
                        continue;
                }
                parts[n++] = t;
        }
        Buf out = { 0 };
        if (!n)
                buf_puts(&out, "/");
        for (size_t i = 0; i < n; i++) {
                buf_puts(&out, "/");
                buf_puts(&out, parts[i]);
        }
        return out.p;
}

/* lifecycle.ts listenFdsOf(): socket activation's descriptors, when LISTEN_PID is ours */
static int listen_fds(void) {
        const char *n = getenv("LISTEN_FDS"), *pid = getenv("LISTEN_PID");
        if (!n || !*n || !pid || strtol(pid, NULL, 10) != (long) getpid())
                return 0;
        char *end;
        long v = strtol(n, &end, 10);
        return *end == 0 && v > 0 && v < 4096 ? (int) v : 0;
}

static int mkdir_p(const char *dir, mode_t mode) {
        char b[PATH_MAX];
        snprintf(b, sizeof b, "%s", dir);
        for (char *s = b + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = 0;
                if (mkdir(b, mode) < 0 && errno != EEXIST)
                        return -1;
                *s = '/';
        }
        return mkdir(b, mode) < 0 && errno != EEXIST ? -1 : 0;
}

void child_descriptors(int fd3, int nfds, int extra, int quiet) {
        /* FD3 and EXTRA above every target first; then our 3.. up by one, highest first (each target is free or
         * already moved) */
        int top = 5 + nfds;
        int hi3 = fd3 >= 0 ? fcntl(fd3, F_DUPFD_CLOEXEC, top) : -1;
        int hix = extra >= 0 ? fcntl(extra, F_DUPFD_CLOEXEC, top) : -1;
        if ((fd3 >= 0 && hi3 < 0) || (extra >= 0 && hix < 0))
                _exit(127);
        for (int i = nfds - 1; i >= 0; i--)
                if (dup2(3 + i, 4 + i) < 0)
                        _exit(127);
        if ((hi3 >= 0 && dup2(hi3, 3) < 0) || (hix >= 0 && dup2(hix, 4 + nfds) < 0))
                _exit(127);
        syscall(SYS_close_range, hi3 < 0 ? 3 : 4 + nfds + (hix >= 0 ? 1 : 0), ~0U, 0);
        if (quiet) {
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);
                for (int fd = 0; fd < 3; fd++)
                        if (null < 0 || dup2(null, fd) < 0)
                                _exit(127);
        }
        setsid();
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        for (int s = 1; s < 65; s++)
                if (s != SIGKILL && s != SIGSTOP)
                        signal(s, SIG_DFL);
}

/*
 * the monitor, in the child: the report pipe at 3, the passed descriptors from 4; never returns. With a terminal
 * (CONSOLE) its stdio is /dev/null, not create's: the container's is the pty, and containerd's shim reads create's
 * output to its end before it takes the console's master (a monitor holding it kept the shim waiting)
 */
static void exec_monitor(Call *c, int report, int nfds, char **av, int console) {
        child_descriptors(report, nfds, -1, console);
        execvp("node", av);
        char msg[512];
        int n = snprintf(msg, sizeof msg, "error cannot run node (%s): %s\n", c->entry, strerror(errno));
        if (write(3, msg, (size_t) n) < 0) {
                /* create sees no word */
        }
        _exit(127);
}

int verb_create(Call *c) {
        const char *preserve = opt(c, "preserve-fds");
        if (preserve) {
                for (const char *p = preserve; *p; p++)
                        if (*p < '0' || *p > '9')
                                return run_node(c);
                if (!*preserve || strlen(preserve) > 6)
                        return run_node(c);
        }
        int npreserve = preserve ? atoi(preserve) : 0;
        const char *id = c->nargs > 0 && *c->args[0] ? c->args[0] : NULL;
        if (!id)
                return fail(c, "create: a container id is required");
        const char *bundle_opt = opt(c, "bundle");
        char *bundle = resolve(bundle_opt ? bundle_opt : ".");
        const char *console_opt = opt(c, "console-socket");
        char *console = console_opt && *console_opt ? resolve(console_opt) : NULL;
        int nlisten = listen_fds();
        for (int i = 0; i < npreserve; i++) {
                struct stat st;
                if (fstat(3 + nlisten + i, &st) < 0)
                        return fail(c, "unable to stat preserved-fd %d (of %d): %s", i, npreserve, node_error(errno, "fstat", NULL));
        }
        if (oci_check_id(id) < 0)
                return fail(c, "%s", oci_error);
        if (mkdir_p(c->root, 0711) < 0)
                return fail(c, "%s", node_error(errno, "mkdir", c->root));
        const char *dir = oci_dir(c->root, id);
        if (mkdir(dir, 0711) < 0) {
                if (errno == EEXIST)
                        return fail(c, "container with id exists: %s", id);
                return fail(c, "%s", node_error(errno, "mkdir", dir));
        }
        int nfds = nlisten + npreserve;
        /* the monitor's arguments, JSON.stringify(MonitorArgs) as the Node command writes them */
        Buf j = { 0 };
        buf_puts(&j, "{\"root\":");
        json_write_string(&j, c->root);
        buf_puts(&j, ",\"id\":");
        json_write_string(&j, id);
        buf_puts(&j, ",\"bundle\":");
        json_write_string(&j, bundle);
        if (console) {
                buf_puts(&j, ",\"consoleSocket\":");
                json_write_string(&j, console);
        }
        if (nfds)
                buf_printf(&j, ",\"fds\":%d,\"listenFds\":%d", nfds, nlisten);
        if (flag(c, "no-new-keyring"))
                buf_puts(&j, ",\"noNewKeyring\":true");
        buf_puts(&j, "}");
        char *av[10];
        int k = 0;
        av[k++] = "node";
        av[k++] = (char *) c->entry;
        if (c->log) {
                av[k++] = "--log";
                av[k++] = (char *) c->log;
                av[k++] = "--log-format";
                av[k++] = c->json_log ? "json" : "text";
        }
        av[k++] = "__monitor";
        av[k++] = j.p;
        av[k] = NULL;
        /* the warm monitor (oci-warm.c), else a monitor of its own */
        Buf rep = { 0 };
        int warm = warm_create(c, j.p, nfds, console, &rep);
        pid_t child = -1;
        if (warm < 0) {
                int p[2];
                if (pipe2(p, O_CLOEXEC) < 0) {
                        oci_remove_dir(c->root, id);
                        return fail(c, "%s", node_error(errno, "pipe", NULL));
                }
                child = fork();
                if (child < 0) {
                        int e = errno;
                        oci_remove_dir(c->root, id);
                        return fail(c, "%s", node_error(e, "spawn", NULL));
                }
                if (child == 0) {
                        close(p[0]);
                        exec_monitor(c, p[1], nfds, av, console != NULL);
                }
                close(p[1]);
                /* the report: read to its end (the monitor closes the pipe once it has said its word) */
                buf_read_all(&rep, p[0]);
                close(p[0]);
        }
        char *nl = strchr(rep.p, '\n');
        if (nl)
                *nl = 0;
        if (strncmp(rep.p, "created ", 8)) {
                /* the monitor has ended or is ending: nothing of the container is left but the directory */
                while (child > 0 && waitpid(child, NULL, 0) < 0 && errno == EINTR)
                        ;
                oci_remove_dir(c->root, id);
                if (!strncmp(rep.p, "error ", 6))
                        return fail(c, "%s", rep.p + 6);
                return fail(c, "the monitor of %s ended without a word", id);
        }
        const char *pid_file = opt(c, "pid-file");
        if (pid_file) {
                char *file = resolve(pid_file);
                if (oci_write_atomic(file, rep.p + 8) < 0) {
                        char tmpf[PATH_MAX];
                        snprintf(tmpf, sizeof tmpf, "%s.%d.tmp", file, (int) getpid());
                        return fail(c, "%s", node_error(errno, "open", tmpf));
                }
        }
        return 0;
}
