/* Hand-over: the helper in nspawn's place (handoff.h). */
#define _GNU_SOURCE
#include "handoff.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "plan.h"
#include "ptyfwd.h"

int handoff_on;

static struct {
        pid_t pid;
        int halting;
        char error[4200];
        int have_error;
        int left; /* a cgroup could not be removed: the run's record stays (locks_keep_records()) */
        int hung_up; /* SIGHUP came: systemd-nspawn 252 dies of it, before its end copies the passive console */
} ho;

/* TEMPLATE with its "{}" replaced by VALUE. */
static void ho_say_with(const char *template, const char *value) {
        if (!template)
                return;
        const char *at = strstr(template, "{}");
        char buf[4400];
        if (!at)
                snprintf(buf, sizeof buf, "%s", template);
        else
                snprintf(buf, sizeof buf, "%.*s%s%s", (int) (at - template), template, value, at + 2);
        say(buf);
}

/* The name run.ts would print for signal N: the Nth word of the plan's table, else the number. */
static void ho_signal_name(int n, char *out, size_t sz) {
        snprintf(out, sz, "%d", n);
        if (n >= 1 && (size_t) n <= plan.handoff.n_signames)
                snprintf(out, sz, "%s", plan.handoff.signames[n - 1]);
}

/* One line the helper would have sent Node: acted on here. */
void ho_event(char *line) {
        size_t n = strlen(line);
        while (n > 0 && line[n - 1] == '\n')
                line[--n] = 0;
        if (!strncmp(line, "pid ", 4))
                ho.pid = (pid_t) strtol(line + 4, NULL, 10);
        else if (!strncmp(line, "error ", 6)) {
                if (!ho.have_error) {
                        snprintf(ho.error, sizeof ho.error, "%s", line + 6);
                        ho.have_error = 1;
                }
        } else if (!strncmp(line, "warning ", 8))
                say(line + 8);
        else if (!strncmp(line, "escape ", 7) && ho.pid > 0) {
                const char *a = line + 7;
                (void) kill(ho.pid, !strcmp(a, "kill") ? SIGKILL : !strcmp(a, "poweroff") ? SIGRTMIN + 4 : SIGRTMIN + 5);
        }
        /* ready, notify, exit, signal: nothing to do here (the end is taken from the wait status) */
}

/* on_orderly_shutdown(): the first SIGINT/SIGTERM sends the kill signal, the next SIGKILL; SIGHUP kills at once. */
void ho_signal(int signo, pid_t pid) {
        if (pid <= 0)
                return;
        if (signo == SIGHUP) {
                ho.halting = ho.hung_up = 1;
                (void) kill(pid, SIGKILL);
                return;
        }
        if (signo != SIGINT && signo != SIGTERM)
                return;
        int first = !ho.halting && plan.handoff.kill_signal > 0;
        ho.halting = 1;
        (void) kill(pid, first ? plan.handoff.kill_signal : SIGKILL);
        if (first)
                say(plan.handoff.msg_halt);
}

/* FN on each subdirectory (child cgroup) of DIR; -1 when DIR cannot be read (ENOENT: gone), else how many FN failed. */
static int ho_each_subdir(const char *dir, int (*fn)(const char *sub)) {
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -1;
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return -1;
        }
        int failed = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                char sub[PATH_MAX];
                snprintf(sub, sizeof sub, "%s/%s", dir, de->d_name);
                if (fn(sub) < 0)
                        failed++;
        }
        closedir(d);
        return failed;
}

/* rmdir of DIR and its subdirectories, deepest first; 0 when all are gone. */
static int ho_rmdir_tree(const char *dir) {
        if (rmdir(dir) == 0 || errno == ENOENT)
                return 0;
        int left = ho_each_subdir(dir, ho_rmdir_tree);
        if (left < 0)
                return errno == ENOENT ? 0 : -1;
        if (rmdir(dir) == 0 || errno == ENOENT)
                return left ? -1 : 0;
        return -1;
}

/* SIGKILL to every process in DIR and below (their cgroup.procs). */
static int ho_kill_below(const char *dir) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/cgroup.procs", dir);
        FILE *f = fopen(p, "re");
        if (f) {
                long pid;
                while (fscanf(f, "%ld", &pid) == 1)
                        if (pid > 0)
                                (void) kill((pid_t) pid, SIGKILL);
                fclose(f);
        }
        (void) ho_each_subdir(dir, ho_kill_below);
        return 0;
}

/* A scope directory to remove: Node's, or, when the helper made the cgroup (native/cgroup-ops.c), one it made. */
static int ho_ours(const char *dir) {
        return plan.cgops.n == 0 || cgops_made(&plan.cgops, dir);
}

/* The slices this helper's cgroup ops made (native/cgroup-ops.c: one that was there when nspawn planned, gone by the
 * time the ops ran, made again; the plan's removeSlices does not know it), innermost first: rmdir, so only an empty
 * one goes, as MachineCgroup.remove() does with the slices it made. */
static void ho_remove_made_slices(void) {
        const CgOpsPlan *c = &plan.cgops;
        for (size_t i = c->n_made; i-- > 0;) {
                size_t n = strlen(c->made[i]);
                if (n >= 6 && !strcmp(c->made[i] + n - 6, ".slice"))
                        (void) rmdir(c->made[i]);
        }
}

/* MachineCgroup.remove(): what is left in the scope is killed (only there), the scope goes in every hierarchy, then
 * machine.slice where an nspawn made it and it is empty. */
static void ho_remove_cgroups(void) {
        const HandoffPlan *h = &plan.handoff;
        uint64_t deadline = now_ms() + 5000;
        int left = 0;
        for (int attempt = 0;; attempt++) {
                left = 0;
                for (size_t i = 0; i < h->rm.n; i++)
                        if (ho_ours(h->rm.v[i]) && ho_rmdir_tree(h->rm.v[i]) < 0)
                                left++;
                if (left == 0 || now_ms() >= deadline)
                        break;
                if (h->kill_file && access(h->kill_file, F_OK) == 0)
                        (void) write_small_file(h->kill_file, "1");
                else
                        for (size_t i = 0; i < h->rm.n; i++)
                                if (ho_ours(h->rm.v[i]))
                                        ho_kill_below(h->rm.v[i]);
                struct timespec ts = { 0, (attempt < 10 ? 2 : 20) * 1000000L };
                nanosleep(&ts, NULL);
        }
        for (size_t i = 0; i < h->rm.n; i++)
                if (ho_ours(h->rm.v[i]) && access(h->rm.v[i], F_OK) == 0) {
                        ho.left = 1;
                        char msg[PATH_MAX + 64];
                        snprintf(msg, sizeof msg, "Failed to remove cgroup %s: it still has processes.", h->rm.v[i]);
                        say(msg);
                }
        int slices_left = 0;
        for (size_t i = 0; i < h->slices.n; i++)
                if (rmdir(h->slices.v[i]) < 0 && errno != ENOENT)
                        slices_left = 1;
        ho_remove_made_slices();
        if (h->marker && h->slices.n > 0 && !slices_left)
                (void) unlink(h->marker);
}

/* The end of the run: --console=passive's rest of the console (REST, -1 if none) after the last message, as
 * systemd-nspawn 252 copies it in main() after run_container() said how the container ended (not after a SIGHUP). */
static void __attribute__((noreturn)) ho_exit(int code, int rest) {
        if (rest >= 0 && !ho.hung_up)
                (void) ptyfwd_copy(rest, STDOUT_FILENO, NULL);
        _exit(code);
}

/* The end of a handed-over run: never returns. */
void ho_finish(int status, int rest) {
        const HandoffPlan *h = &plan.handoff;
        ho_remove_cgroups();
        ephemeral_remove(&plan.ephemeral);
        if (ho.left || ephemeral_left)
                locks_keep_records(&plan.locks);
        locks_release(&plan.locks);
        if (ho.have_error) {
                say(ho.error);
                ho_exit(1, rest);
        }
        char v[64];
        if (WIFEXITED(status)) {
                int code = WEXITSTATUS(status);
                if (!h->quiet) {
                        snprintf(v, sizeof v, "%d", code);
                        ho_say_with(code == 0 ? h->msg_ok : h->msg_fail, v);
                }
                ho_exit(code == 133 ? 1 : code, rest);
        }
        int sig = WIFSIGNALED(status) ? WTERMSIG(status) : SIGKILL;
        if (sig == SIGINT) {
                if (!h->quiet)
                        say(h->msg_shutdown);
                ho_exit(0, rest);
        }
        if (sig == SIGHUP) {
                if (!h->quiet)
                        say(h->msg_reboot);
                if (h->keep_unit)
                        ho_exit(133, rest);
                if (h->n_reexec > 0) {
                        sigset_t none;
                        sigemptyset(&none);
                        sigprocmask(SIG_SETMASK, &none, NULL);
                        execv(h->reexec[0], (char *const *) h->reexec);
                        char msg[PATH_MAX + 64];
                        snprintf(msg, sizeof msg, "Failed to start %s again for the reboot: %s", h->reexec[0], strerror(errno));
                        say(msg);
                }
                _exit(1);
        }
        ho_signal_name(sig, v, sizeof v);
        ho_say_with(h->msg_signal, v);
        ho_exit(1, rest);
}

/* A start that failed before the container ran: the scope Node made goes, and -x's, and the error is said. */
void ho_early_exit(void) {
        ho_remove_cgroups();
        ephemeral_remove(&plan.ephemeral);
        if (ho.have_error)
                say(ho.error);
}
