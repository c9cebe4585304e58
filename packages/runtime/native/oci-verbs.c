/*
 * nspawn-oci's front end: state, start, kill, delete, as @nspawn/oci's lifecycle.ts does them, with its words (runc's)
 * for the errors: an unknown id, a start of a container that is not created, a delete of a running one without
 * --force, kill of a stopped one.
 */
#define _GNU_SOURCE
#include "oci-front.h"
#include "oci-socket.h"
#include "oci-state.h"
#include "oci-warm.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* the command's ID argument, or NULL after saying "VERB: a container id is required" */
static const char *need_id(Call *c) {
        if (c->nargs == 0 || !*c->args[0]) {
                fail(c, "%s: a container id is required", c->command);
                return NULL;
        }
        return c->args[0];
}

/* The record of container ID in R, and its status; NULL after saying why not (oci_load()'s error) */
static const char *load_status(Call *c, const char *id, Record *r) {
        if (oci_load(c->root, id, r) < 0) {
                fail(c, "%s", oci_error);
                return NULL;
        }
        return oci_status(c->root, r);
}

/* The command's container (its ID argument, need_id()): its record in R, and its status; NULL after saying why not */
static const char *load_call(Call *c, Record *r) {
        const char *id = need_id(c);
        return id ? load_status(c, id, r) : NULL;
}

int verb_state(Call *c) {
        Record r;
        const char *status = load_call(c, &r);
        if (!status)
                return 1;
        /* JSON.stringify(ociState(), null, 2) */
        Buf b = { 0 };
        buf_puts(&b, "{\n  \"ociVersion\": ");
        json_write_string(&b, r.oci_version);
        buf_puts(&b, ",\n  \"id\": ");
        json_write_string(&b, r.id);
        buf_puts(&b, ",\n  \"status\": ");
        json_write_string(&b, status);
        buf_printf(&b, ",\n  \"pid\": %ld,\n  \"bundle\": ", strcmp(status, "stopped") ? r.pid : 0);
        json_write_string(&b, r.bundle);
        if (r.annotations && r.annotations->t != J_NULL) {
                buf_puts(&b, ",\n  \"annotations\": ");
                json_write(&b, r.annotations, 2, 1);
        }
        buf_puts(&b, "\n}\n");
        return fd_write_all(1, b.p, b.n) < 0 ? 1 : 0;
}

int verb_start(Call *c) {
        Record r;
        const char *status = load_call(c, &r);
        if (!status)
                return 1;
        const char *id = c->args[0];
        if (strcmp(status, "created")) {
                if (!strcmp(status, "stopped"))
                        return fail(c, "cannot start a container that has stopped");
                return fail(c, "cannot start a container that has already been started (%s)", status);
        }
        /* poststart hooks (or a record that does not say): Node runs them */
        if (oci_has_hooks(&r, "poststart") != 0)
                return run_node(c);
        char answer[64];
        const char *sock = oci_start_socket(c->root, id);
        if (oci_tell(sock, "start", answer, sizeof answer) < 0)
                return fail(c, "cannot start container %s: connect %s %s", id, err_name(errno), oci_socket_address(sock));
        if (strncmp(answer, "ok", 2))
                return fail(c, "cannot start container %s: its monitor did not answer", id);
        /* the next create's monitor, when there is none yet (started here, not by create: create's caller, conmon,
         * waits for every process it is the subreaper of before it runs its exit command) */
        warm_start(c);
        return 0;
}

static const struct {
        const char *name;
        int sig;
} SIGNALS[] = {
        { "HUP", 1 },     { "INT", 2 },      { "QUIT", 3 },    { "ILL", 4 },   { "TRAP", 5 },   { "ABRT", 6 },   { "IOT", 6 },   { "BUS", 7 },
        { "FPE", 8 },     { "KILL", 9 },     { "USR1", 10 },   { "SEGV", 11 }, { "USR2", 12 },  { "PIPE", 13 },  { "ALRM", 14 }, { "TERM", 15 },
        { "STKFLT", 16 }, { "CHLD", 17 },    { "CONT", 18 },   { "STOP", 19 }, { "TSTP", 20 },  { "TTIN", 21 },  { "TTOU", 22 }, { "URG", 23 },
        { "XCPU", 24 },   { "XFSZ", 25 },    { "VTALRM", 26 }, { "PROF", 27 }, { "WINCH", 28 }, { "IO", 29 },    { "POLL", 29 }, { "PWR", 30 },
        { "SYS", 31 },
};

static int all_digits(const char *s) {
        if (!*s)
                return 0;
        for (; *s; s++)
                if (*s < '0' || *s > '9')
                        return 0;
        return 1;
}

/* lifecycle.ts parseSignal(): 9, KILL, SIGKILL, RTMIN+3; 0 when unknown */
static int parse_signal(const char *s) {
        if (all_digits(s)) {
                while (s[0] == '0' && s[1])
                        s++;
                long n = strlen(s) > 3 ? 0 : strtol(s, NULL, 10);
                if (n > 0 && n <= 64)
                        return (int) n;
        }
        char up[64];
        size_t i;
        for (i = 0; s[i] && i < sizeof up - 1; i++)
                up[i] = (char) (s[i] >= 'a' && s[i] <= 'z' ? s[i] - 32 : s[i]);
        up[i] = 0;
        const char *name = strncmp(up, "SIG", 3) ? up : up + 3;
        for (size_t k = 0; k < sizeof SIGNALS / sizeof *SIGNALS; k++)
                if (!strcmp(name, SIGNALS[k].name))
                        return SIGNALS[k].sig;
        int n = 0;
        if (!strcmp(name, "RTMIN"))
                n = 34;
        else if (!strcmp(name, "RTMAX"))
                n = 64;
        else if (!strncmp(name, "RTMIN+", 6) && all_digits(name + 6) && strlen(name + 6) < 4)
                n = 34 + atoi(name + 6);
        else if (!strncmp(name, "RTMAX-", 6) && all_digits(name + 6) && strlen(name + 6) < 4)
                n = 64 - atoi(name + 6);
        return n >= 34 && n <= 64 ? n : 0;
}

/* control.ts containerPids(): the processes of the deepest of the container's cgroups, else its PID 1 */
static void kill_all(const char *root, const Record *r, int sig) {
        int any = 0;
        for (size_t i = 0; r->cgroups && i < r->cgroups->n; i++) {
                const char *d = r->cgroups->v[i]->t == J_STR ? r->cgroups->v[i]->s : NULL;
                if (!d)
                        continue;
                size_t dl = strlen(d);
                int leaf = 1;
                for (size_t k = 0; k < r->cgroups->n && leaf; k++) {
                        const char *x = r->cgroups->v[k]->t == J_STR ? r->cgroups->v[k]->s : "";
                        if (!strncmp(x, d, dl) && x[dl] == '/')
                                leaf = 0;
                }
                if (!leaf)
                        continue;
                char path[4200];
                snprintf(path, sizeof path, "%s/cgroup.procs", d);
                FILE *f = fopen(path, "re");
                if (!f)
                        continue;
                long pid;
                while (fscanf(f, "%ld", &pid) == 1) {
                        any = 1;
                        (void) kill((pid_t) pid, sig);
                }
                fclose(f);
        }
        if (!any && strcmp(oci_status(root, r), "stopped"))
                (void) kill((pid_t) r->pid, sig);
}

int verb_kill(Call *c) {
        const char *s = c->nargs > 1 ? c->args[1] : "SIGTERM";
        int sig = parse_signal(s);
        if (!sig)
                return fail(c, "unknown signal \"%s\"", s);
        Record r;
        const char *status = load_call(c, &r);
        if (!status)
                return 1;
        if (flag(c, "all")) {
                kill_all(c->root, &r, sig);
                return 0;
        }
        if (!strcmp(status, "stopped"))
                return fail(c, "container not running");
        if (kill((pid_t) r.pid, sig) < 0)
                return fail(c, "kill %s", err_name(errno));
        return 0;
}

static long long now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* waits up to MS for PID (with START_TIME) to end; 1 when it has. Its pidfd when it can have one, else polls */
static int wait_gone(long pid, const char *start_time, int ms) {
        long long until = now_ms() + ms;
        int pfd = (int) syscall(SYS_pidfd_open, (pid_t) pid, 0);
        /* (the PID may have been reused between the record and the pidfd: the start time says) */
        if (pfd >= 0 && !oci_alive(pid, start_time)) {
                close(pfd);
                return 1;
        }
        for (;;) {
                if (!oci_alive(pid, start_time)) {
                        if (pfd >= 0)
                                close(pfd);
                        return 1;
                }
                long long left = until - now_ms();
                if (left <= 0)
                        break;
                if (pfd >= 0) {
                        struct pollfd p = { .fd = pfd, .events = POLLIN };
                        (void) poll(&p, 1, (int) left);
                } else {
                        struct timespec ts = { 0, 2 * 1000 * 1000 };
                        nanosleep(&ts, NULL);
                }
        }
        if (pfd >= 0)
                close(pfd);
        return 0;
}

int verb_delete(Call *c) {
        const char *id = need_id(c);
        Record r;
        if (!id)
                return 1;
        if (oci_check_id(id) < 0)
                return fail(c, "%s", oci_error);
        int force = flag(c, "force");
        if (force && access(oci_record_file(c->root, id), F_OK) < 0) {
                /* runc: delete --force of a container that does not exist succeeds, removing what an aborted create left */
                oci_remove_dir(c->root, id);
                return 0;
        }
        const char *status = load_status(c, id, &r);
        if (!status)
                return 1;
        if ((!strcmp(status, "running") || !strcmp(status, "paused")) && !force)
                return fail(c, "cannot delete container %s that is not stopped: %s", id, status);
        /* poststop hooks (or a record that does not say): Node runs them */
        if (oci_has_hooks(&r, "poststop") != 0)
                return run_node(c);
        if (!strcmp(status, "created")) {
                char answer[64];
                (void) oci_tell(oci_start_socket(c->root, id), "abort", answer, sizeof answer);
        }
        if (strcmp(status, "stopped")) {
                (void) kill((pid_t) r.pid, SIGKILL);
                if (!wait_gone(r.pid, r.start_time, 10000))
                        return fail(c, "container %s: process %ld did not end after SIGKILL", id, r.pid);
        }
        /* the monitor leaves once the helper has: nothing of the container outlives the delete */
        char st, monitor_start[32] = "";
        if (oci_proc_stat(r.monitor, &st, monitor_start, sizeof monitor_start) == 0)
                (void) wait_gone(r.monitor, monitor_start, 5000);
        for (size_t i = r.cgroups ? r.cgroups->n : 0; i-- > 0;)
                if (r.cgroups->v[i]->t == J_STR)
                        (void) rmdir(r.cgroups->v[i]->s);
        oci_remove_dir(c->root, id);
        return 0;
}
