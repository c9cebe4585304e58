/*
 * Hand-over: the helper in nspawn's place. Included by nspawn-helper.c (static functions and this file's state).
 *
 * When nothing needs Node after the start (src/handoff.ts decides), nspawn replaces its own process with the helper
 * (execve, the plan as argv after "--handoff") instead of starting it as a child and waiting: no fork of Node, no
 * Node tear-down at the end. The helper then does what Node would have done around the container, all of it given
 * as data by the plan: the events Node would have read are acted on here (warnings printed, the ^] escapes sent,
 * the first error kept), SIGINT/SIGTERM/SIGHUP are handled as run.ts handles them, and after the end the scope is
 * removed, the end message printed (texts from the plan) and the exit status taken as run.ts maps it. A reboot
 * (PID 1 killed by SIGHUP) starts nspawn again with the command line the plan carries.
 */

static struct {
        int on;
        int quiet;
        int kill_signal;
        int keep_unit;
        const char *rm[64];
        int n_rm;
        const char *kill_file;
        const char *slices[64];
        int n_slices;
        const char *marker;
        const char *reexec[512];
        int n_reexec;
        const char *subvol[8]; /* btrfs snapshots to destroy at the end (-x) */
        int n_subvol;
        const char *msg_ok, *msg_fail, *msg_shutdown, *msg_reboot, *msg_signal, *msg_halt;
        const char *signames;
        pid_t pid;
        int halting;
        char error[4200];
        int have_error;
} ho;

static void ho_say(const char *text) {
        if (!text)
                return;
        (void) write_all(STDERR_FILENO, text, strlen(text));
        (void) write_all(STDERR_FILENO, "\n", 1);
}

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
        ho_say(buf);
}

/* The name run.ts would print for signal N: the Nth word of the plan's table, else the number. */
static void ho_signal_name(int n, char *out, size_t sz) {
        snprintf(out, sz, "%d", n);
        const char *p = ho.signames;
        for (int i = 1; p && *p; i++) {
                const char *e = strchr(p, ' ');
                size_t len = e ? (size_t) (e - p) : strlen(p);
                if (i == n) {
                        snprintf(out, sz, "%.*s", (int) len, p);
                        return;
                }
                p = e ? e + 1 : NULL;
        }
}

/* One line the helper would have sent Node: acted on here. */
static void ho_event(char *line) {
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
                ho_say(line + 8);
        else if (!strncmp(line, "escape ", 7) && ho.pid > 0) {
                const char *a = line + 7;
                (void) kill(ho.pid, !strcmp(a, "kill") ? SIGKILL : !strcmp(a, "poweroff") ? SIGRTMIN + 4 : SIGRTMIN + 5);
        }
        /* ready, notify, exit, signal: nothing to do here (the end is taken from the wait status) */
}

/* on_orderly_shutdown(): the first SIGINT/SIGTERM sends the kill signal, the next SIGKILL; SIGHUP kills at once. */
static void ho_signal(int signo, pid_t pid) {
        if (pid <= 0)
                return;
        if (signo == SIGHUP) {
                ho.halting = 1;
                (void) kill(pid, SIGKILL);
                return;
        }
        if (signo != SIGINT && signo != SIGTERM)
                return;
        int first = !ho.halting && ho.kill_signal > 0;
        ho.halting = 1;
        (void) kill(pid, first ? ho.kill_signal : SIGKILL);
        if (first)
                ho_say(ho.msg_halt);
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
        return cgops.n == 0 || cgops_made(dir);
}

/* MachineCgroup.remove(): what is left in the scope is killed (only there), the scope goes in every hierarchy, then
 * machine.slice where an nspawn made it and it is empty. */
static void ho_remove_cgroups(void) {
        uint64_t deadline = now_ms() + 5000;
        int left = 0;
        for (int attempt = 0;; attempt++) {
                left = 0;
                for (int i = 0; i < ho.n_rm; i++)
                        if (ho_ours(ho.rm[i]) && ho_rmdir_tree(ho.rm[i]) < 0)
                                left++;
                if (left == 0 || now_ms() >= deadline)
                        break;
                if (ho.kill_file && access(ho.kill_file, F_OK) == 0)
                        (void) write_small_file(ho.kill_file, "1");
                else
                        for (int i = 0; i < ho.n_rm; i++)
                                if (ho_ours(ho.rm[i]))
                                        ho_kill_below(ho.rm[i]);
                struct timespec ts = { 0, (attempt < 10 ? 2 : 20) * 1000000L };
                nanosleep(&ts, NULL);
        }
        for (int i = 0; i < ho.n_rm; i++)
                if (ho_ours(ho.rm[i]) && access(ho.rm[i], F_OK) == 0) {
                        char msg[PATH_MAX + 64];
                        snprintf(msg, sizeof msg, "Failed to remove cgroup %s: it still has processes.", ho.rm[i]);
                        ho_say(msg);
                }
        int slices_left = 0;
        for (int i = 0; i < ho.n_slices; i++)
                if (rmdir(ho.slices[i]) < 0 && errno != ENOENT)
                        slices_left = 1;
        if (ho.marker && ho.n_slices > 0 && !slices_left)
                (void) unlink(ho.marker);
}

/* -x's snapshot: BTRFS_IOC_SNAP_DESTROY by its name in its parent (what @nspawn/btrfs's removal does for a snapshot
 * without subvolumes of its own; one with them stays, and the next start or `nspawnctl clean` removes it, its lock
 * being free). */
static void ho_remove_subvolumes(void) {
        for (int i = 0; i < ho.n_subvol; i++) {
                char parent[PATH_MAX];
                snprintf(parent, sizeof parent, "%s", ho.subvol[i]);
                char *slash = strrchr(parent, '/');
                if (!slash || !slash[1])
                        continue;
                *slash = 0;
                const char *name = ho.subvol[i] + (slash - parent) + 1;
                int fd = open(parent[0] ? parent : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                struct btrfs_ioctl_vol_args a;
                memset(&a, 0, sizeof a);
                snprintf(a.name, sizeof a.name, "%s", name);
                if (fd < 0 || ioctl(fd, BTRFS_IOC_SNAP_DESTROY, &a) < 0) {
                        char msg[PATH_MAX + 200];
                        snprintf(msg, sizeof msg, "Failed to remove snapshot %s: %s; the next start or 'nspawnctl clean' removes it.", ho.subvol[i], strerror(errno));
                        ho_say(msg);
                }
                if (fd >= 0)
                        close(fd);
        }
        ho.n_subvol = 0;
}

/* The end of a handed-over run: never returns. */
static void ho_finish(int status) __attribute__((noreturn));
static void ho_finish(int status) {
        ho_remove_cgroups();
        ho_remove_subvolumes();
        locks_release();
        if (ho.have_error) {
                ho_say(ho.error);
                _exit(1);
        }
        char v[64];
        if (WIFEXITED(status)) {
                int code = WEXITSTATUS(status);
                if (!ho.quiet) {
                        snprintf(v, sizeof v, "%d", code);
                        ho_say_with(code == 0 ? ho.msg_ok : ho.msg_fail, v);
                }
                _exit(code == 133 ? 1 : code);
        }
        int sig = WIFSIGNALED(status) ? WTERMSIG(status) : SIGKILL;
        if (sig == SIGINT) {
                if (!ho.quiet)
                        ho_say(ho.msg_shutdown);
                _exit(0);
        }
        if (sig == SIGHUP) {
                if (!ho.quiet)
                        ho_say(ho.msg_reboot);
                if (ho.keep_unit)
                        _exit(133);
                if (ho.n_reexec > 0) {
                        sigset_t none;
                        sigemptyset(&none);
                        sigprocmask(SIG_SETMASK, &none, NULL);
                        execv(ho.reexec[0], (char *const *) ho.reexec);
                        char msg[PATH_MAX + 64];
                        snprintf(msg, sizeof msg, "Failed to start %s again for the reboot: %s", ho.reexec[0], strerror(errno));
                        ho_say(msg);
                }
                _exit(1);
        }
        ho_signal_name(sig, v, sizeof v);
        ho_say_with(ho.msg_signal, v);
        _exit(1);
}

/* A plan key of the hand-over; returns 0 when KEY is not one. */
static int ho_plan_key(const char *key, const char *(*next)(void)) {
        if (!strcmp(key, "handoff")) {
                ho.quiet = !strcmp(next(), "1");
                ho.kill_signal = (int) strtol(next(), NULL, 10);
                ho.keep_unit = !strcmp(next(), "1");
        } else if (!strcmp(key, "horm")) {
                if (ho.n_rm < 64)
                        ho.rm[ho.n_rm++] = next();
        } else if (!strcmp(key, "hokill"))
                ho.kill_file = next();
        else if (!strcmp(key, "hoslice")) {
                if (ho.n_slices < 64)
                        ho.slices[ho.n_slices++] = next();
        } else if (!strcmp(key, "homarker"))
                ho.marker = next();
        else if (!strcmp(key, "horeexec")) {
                if (ho.n_reexec < 510)
                        ho.reexec[ho.n_reexec++] = next();
        } else if (!strcmp(key, "homsg")) {
                const char *kind = next(), *text = next();
                if (!strcmp(kind, "ok"))
                        ho.msg_ok = text;
                else if (!strcmp(kind, "fail"))
                        ho.msg_fail = text;
                else if (!strcmp(kind, "shutdown"))
                        ho.msg_shutdown = text;
                else if (!strcmp(kind, "reboot"))
                        ho.msg_reboot = text;
                else if (!strcmp(kind, "signal"))
                        ho.msg_signal = text;
                else if (!strcmp(kind, "halt"))
                        ho.msg_halt = text;
        } else if (!strcmp(key, "hosubvol")) {
                if (ho.n_subvol < 8)
                        ho.subvol[ho.n_subvol++] = next();
        } else if (!strcmp(key, "hosignames"))
                ho.signames = next();
        else
                return 0;
        return 1;
}
