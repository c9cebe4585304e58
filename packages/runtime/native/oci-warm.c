/* nspawn-oci's front end: create through the warm monitor (oci-warm.h; its protocol: @nspawn/oci monitor-server.ts) */
#define _GNU_SOURCE
#include "oci-warm.h"
#include "oci-socket.h"
#include "oci-state.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#if defined(__x86_64__)
#define HELPER_ARCH "x64"
#elif defined(__aarch64__)
#define HELPER_ARCH "arm64"
#else
#define HELPER_ARCH NULL
#endif

/* $NSPAWN_OCI_MONITOR_IDLE=0 turns the warm monitor off */
static int warm_off(void) {
        const char *v = getenv("NSPAWN_OCI_MONITOR_IDLE");
        return v && !strcmp(v, "0");
}

/* the helper the engine runs: $NSPAWN_HELPER, else the one built beside us (the monitor refuses another) */
static int helper_path(char *out, size_t size) {
        const char *env = getenv("NSPAWN_HELPER");
        if (env && *env) {
                snprintf(out, size, "%s", env);
                return access(out, X_OK) == 0;
        }
        if (!HELPER_ARCH)
                return 0;
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0)
                return 0;
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (!slash)
                return 0;
        *slash = 0;
        if (snprintf(out, size, "%s/nspawn-helper-linux-%s", self, HELPER_ARCH) >= (int) size)
                return 0;
        return access(out, X_OK) == 0;
}

/* the helper, in the child, as the engine spawns it: fd 3 its control socket, our 3.. (NFDS) its 4.., then the
 * console's connection; stdio ours, or /dev/null with a terminal (the container's is the pty); never returns */
static void exec_helper(const char *helper, int ctl, int nfds, int cons) {
        child_descriptors(ctl, nfds, cons, cons >= 0);
        char *av[] = { "nspawn-helper", NULL };
        execv(helper, av);
        _exit(127);
}

/* kills and reaps the helper we started (it had no plan, or its monitor went away) */
static void drop_helper(pid_t pid) {
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
}

/* monitor-server.ts monitorSocket(): /run/nspawn-oci-monitors/FNV-1a(realpath(ROOT)).sock; 0 when there is none */
static int monitor_socket(const Call *c, char *out, size_t size) {
        char real[PATH_MAX];
        if (geteuid() != 0 || !realpath(c->root, real))
                return 0;
        uint32_t h = 0x811c9dc5u;
        for (const unsigned char *p = (const unsigned char *) real; *p; p++)
                h = (h ^ *p) * 0x01000193u;
        snprintf(out, size, "/run/nspawn-oci-monitors/%08x.sock", h);
        return 1;
}

int warm_create(Call *c, const char *args_json, int nfds, const char *console, Buf *report) {
        char helper[PATH_MAX], sock[PATH_MAX];
        if (warm_off() || !helper_path(helper, sizeof helper) || !monitor_socket(c, sock, sizeof sock))
                return -2;
        int b = unix_connect(sock);
        if (b < 0)
                return -1;
        int a = unix_connect(sock);
        int cons = a >= 0 && console ? unix_connect(console) : -1;
        if (a < 0 || (console && cons < 0)) {
                /* the cold way says what is wrong with the console socket */
                if (a >= 0)
                        close(a);
                close(b);
                return -2;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        char token[64], line[96];
        snprintf(token, sizeof token, "%d-%lld", (int) getpid(), (long long) ts.tv_sec * 1000000000LL + ts.tv_nsec);
        snprintf(line, sizeof line, "ctl %s\n", token);
        if (fd_write_all(a, line, strlen(line)) < 0) {
                close(a);
                close(b);
                if (cons >= 0)
                        close(cons);
                return -2;
        }
        pid_t pid = fork();
        if (pid == 0) {
                close(b);
                exec_helper(helper, a, nfds, cons);
        }
        close(a);
        if (cons >= 0)
                close(cons);
        if (pid < 0) {
                close(b);
                return -2;
        }
        Buf req = { 0 };
        buf_puts(&req, "req {\"token\":");
        json_write_string(&req, token);
        buf_puts(&req, ",\"helper\":");
        json_write_string(&req, helper);
        buf_printf(&req, ",\"helperPid\":%d,\"args\":%s", (int) pid, args_json);
        if (c->log) {
                buf_puts(&req, ",\"log\":");
                json_write_string(&req, c->log);
                buf_puts(&req, c->json_log ? ",\"logFormat\":\"json\"" : ",\"logFormat\":\"text\"");
        }
        buf_puts(&req, ",\"env\":{");
        int first = 1;
        for (char **e = environ; *e; e++) {
                const char *eq = strchr(*e, '=');
                if (!eq || (strncmp(*e, "NSPAWN", 6) && strncmp(*e, "SYSTEMD", 7)))
                        continue;
                char *key = strndup(*e, (size_t) (eq - *e));
                buf_puts(&req, first ? "" : ",");
                json_write_string(&req, key);
                buf_puts(&req, ":");
                json_write_string(&req, eq + 1);
                free(key);
                first = 0;
        }
        buf_puts(&req, "}}\n");
        /* the answer: "ok" (or "retry"), then the monitor's word; it ends the connection after that word */
        Buf got = { 0 };
        if (fd_write_all(b, req.p, req.n) == 0)
                buf_read_all(&got, b);
        else
                buf_add(&got, "", 0);
        close(b);
        free(req.p);
        if (strncmp(got.p, "ok\n", 3)) {
                /* refused, or a monitor that was ending: it never drove the helper */
                drop_helper(pid);
                int retry = !strncmp(got.p, "retry", 5);
                free(got.p);
                return retry ? -2 : -1;
        }
        buf_add(report, "", 0);
        buf_puts(report, got.p + 3);
        free(got.p);
        /* after "created" the helper holds the container, ours to leave to our caller; else it is ending */
        if (strncmp(report->p, "created ", 8)) {
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
        }
        return 0;
}

void warm_start(Call *c) {
        char helper[PATH_MAX], sock[PATH_MAX];
        if (warm_off() || !helper_path(helper, sizeof helper) || !monitor_socket(c, sock, sizeof sock))
                return;
        int probe = unix_connect(sock);
        if (probe >= 0) {
                close(probe);
                return;
        }
        pid_t pid = fork();
        if (pid != 0)
                return;
        /* nothing of the caller's: not its stdio (conmon waits for its pipes to close), not its descriptors */
        child_descriptors(-1, 0, -1, 1);
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDNAMES");
        unsetenv("NOTIFY_SOCKET");
        char *av[] = { "node", (char *) c->entry, "--root", (char *) c->root, "__monitor-server", NULL };
        execvp("node", av);
        _exit(127);
}
