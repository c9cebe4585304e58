/* The outer helper (outer.h). */
#define _GNU_SOURCE
#include "outer.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "console.h"
#include "control.h"
#include "mount.h"
#include "notify.h"
#include "plan.h"
#include "ptyfwd.h"

/* make_uid_map_string(): "0 SHIFT RANGE", or with --bind-user the range split around each bound user's container
 * ID, which maps to the host user's own (GIDS: the group map). The maps fit: at most 64 users, 3 lines each. */
static void usermap_string(char *out, size_t size, int gids) {
        unsigned prev = 0;
        size_t n = 0;
        out[0] = 0;
        for (size_t i = 0; i < plan.n_bindmaps && n < size; i++) {
                unsigned c = gids ? plan.bindmaps[i].gid : plan.bindmaps[i].uid;
                unsigned h = gids ? plan.bindmaps[i].host_gid : plan.bindmaps[i].host_uid;
                if (c > prev)
                        n += (size_t) snprintf(out + n, size - n, "%u %u %u\n", prev, plan.usermap_shift + prev, c - prev);
                if (n < size)
                        n += (size_t) snprintf(out + n, size - n, "%u %u 1\n", c, h);
                prev = c + 1;
        }
        if (plan.usermap_range > prev && n < size)
                snprintf(out + n, size - n, "%u %u %u\n", prev, plan.usermap_shift + prev, plan.usermap_range - prev);
}

static void release_locks(void) {
        locks_release(&plan.locks);
}

/* A start that failed before the container ran: handed over, the scope Node made goes and the error is said. */
/*
 * reset_audit_loginuid() of systemd-nspawn 252, for a container with a PID namespace of its own: the audit login UID
 * set to unset before the clone, so that the container's processes inherit none of the caller's session. (The
 * helper's own changes with it, as that of systemd-nspawn's outer child does; it cannot be done in the child, which
 * may be in a user namespace already.) No file: nothing to do. A refused write is a warning (252 also waits 5s).
 */
static int reset_loginuid(char *err, size_t size) {
        static const char unset[] = "4294967295";
        char buf[32];
        int fd = open("/proc/self/loginuid", O_RDONLY | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT)
                return 0;
        ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
        int saved = errno;
        if (fd >= 0)
                close(fd);
        if (n < 0) {
                snprintf(err, size, "Failed to read /proc/self/loginuid: %s", strerror(saved));
                return -1;
        }
        buf[n] = 0;
        buf[strcspn(buf, "\n")] = 0;
        if (!strcmp(buf, unset))
                return 0;
        fd = open("/proc/self/loginuid", O_WRONLY | O_CLOEXEC);
        n = fd < 0 ? -1 : write(fd, unset, sizeof unset - 1);
        saved = errno;
        if (fd >= 0)
                close(fd);
        if (n != (ssize_t) sizeof unset - 1)
                ctl_printf("warning Failed to reset audit login UID. This probably means that your kernel is too old and you have "
                           "audit enabled. Note that the auditing subsystem is known to be incompatible with containers on old "
                           "kernels. Please make sure to upgrade your kernel or to off auditing with 'audit=0' on the kernel "
                           "command line before using systemd-nspawn. (%s)\n",
                           strerror(n < 0 ? saved : EIO));
        return 0;
}

static int early_exit(void) {
        if (handoff_on)
                ho_early_exit();
        return 1;
}

/* The plan, from fd 3 or, handed over, from HANDOFF_FD; 0 to go on, else the exit status. */
static int read_plan(int handoff_fd) {
        char err[4096];
        int r = plan_read(handoff_fd >= 0 ? handoff_fd : CTL_FD, handoff_fd >= 0, err, sizeof err);
        if (handoff_fd >= 0)
                close(handoff_fd);
        if (r == 1)
                return 0;
        if (r == 0 && handoff_fd < 0)
                return 3; /* started ahead of its plan, then not needed: leave quietly */
        if (r == 0)
                snprintf(err, sizeof err, "invalid plan: nothing in descriptor %d", handoff_fd);
        if (r == -1) {
                /* the plan is known but cannot run: an error as any other before the container, what it lists goes */
                ctl_printf("error %s\n", err);
                ctl_printf("exit 1\n");
                return early_exit();
        }
        /* the message itself is bad: nothing in it can be trusted or acted on */
        if (handoff_fd >= 0) {
                fprintf(stderr, "nspawn-helper: %s\n", err);
                return 1;
        }
        ctl_printf("error nspawn-helper: %s\n", err);
        ctl_printf("exit 1\n");
        return 2;
}

/* One line from Node on the control socket into LINE (NUL-terminated, cut at SZ - 1); -1 at its end. */
static int ctl_read_line(char *line, size_t sz) {
        size_t n = 0;
        for (;;) {
                char c;
                ssize_t k = read(CTL_FD, &c, 1);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return -1;
                if (c == '\n')
                        break;
                if (n + 1 < sz)
                        line[n++] = c;
        }
        line[n] = 0;
        return 0;
}

/* The console's master when the plan has a console socket (OCI --console-socket): sent there with SCM_RIGHTS
 * and runc's message (the name), no copy kept. Returns the master to forward, -1 when sent, -2 on failure. */
static int take_master(int fd) {
        if (plan.console_socket < 0)
                return fd;
        static const char name[] = "/dev/ptmx";
        int r = send_fd_with(plan.console_socket, fd, name, sizeof name - 1) < 0 ? -2 : -1;
        if (r == -2)
                ctl_printf("error Failed to send the console to the console socket: %s (%s)\n", strerror(errno), errno_name(errno));
        close(fd);
        close(plan.console_socket);
        plan.console_socket = -1;
        return r;
}

int outer_main(int handoff_fd) {
        if (handoff_fd >= 0) {
                /* In nspawn's place: what Node set up for itself goes (it ignores SIGPIPE, for one); no parent to die
                 * with, and no control socket (fd 3 is not ours). SIGINT/SIGTERM/SIGHUP are held from the exec on
                 * (blocked below anyway and read from the signalfd once the container runs): one that comes before
                 * does not kill us halfway, leaving what the plan says to remove (-x's snapshot or overlay) behind. */
                handoff_on = 1;
                for (int sig = 1; sig < NSIG; sig++)
                        (void) signal(sig, SIG_DFL);
                sigset_t early;
                sigemptyset(&early);
                sigaddset(&early, SIGINT);
                sigaddset(&early, SIGTERM);
                sigaddset(&early, SIGHUP);
                sigprocmask(SIG_SETMASK, &early, NULL);
                int rc = read_plan(handoff_fd);
                if (rc != 0)
                        return rc;
        } else {
                if (fcntl(CTL_FD, F_GETFD) < 0) {
                        fprintf(stderr, "nspawn-helper: no plan on fd %d (run me through @nspawn/runtime)\n", CTL_FD);
                        return 2;
                }
                /* Die with Node: the container's PID 1 dies with us through PDEATHSIG below. */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                int rc = read_plan(-1);
                if (rc != 0)
                        return rc;
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
                if (locks_take(&plan.locks, lerr, sizeof lerr) < 0) {
                        ctl_printf("error %s\n", lerr);
                        ctl_printf("exit 1\n");
                        return early_exit();
                }
                atexit(release_locks);
        }
        /* The container's cgroup, when nspawn left making it to us. */
        {
                char cerr[4096];
                if (cgops_run(&plan.cgops, cerr, sizeof cerr) < 0) {
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
                ctl_printf("error chdir(%s): %s (%s)\n", plan.root, strerror(errno), errno_name(errno));
                ctl_printf("exit 1\n");
                return early_exit();
        }
        char err[4096];
        if (detach_host_sources(&plan, err, sizeof err) < 0) {
                ctl_printf("error %s\n", err);
                ctl_printf("exit 1\n");
                return early_exit();
        }
        /* -i: the image's file systems, while the loop devices are still ours to open (native/image.c) */
        if (image_prepare(&plan.image, plan.usermap ? plan.usermap_shift : 0, plan.usermap ? plan.usermap_range : 0, err, sizeof err) < 0) {
                ctl_printf("error %s\n", err);
                ctl_printf("exit 1\n");
                return early_exit();
        }
        if (plan.idmap && make_idmapped_root(&plan, err, sizeof err) < 0) {
                ctl_printf("error %s\n", err);
                ctl_printf("exit 1\n");
                return early_exit();
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
        if (nsjoin_enter(&plan.nsjoin, plan.root, err, sizeof err) < 0) {
                ctl_printf("error %s\n", err);
                ctl_printf("exit 1\n");
                return early_exit();
        }
        if (netcfg_join_netns(&plan.net, err, sizeof err) < 0) {
                ctl_printf("error %s\n", err);
                ctl_printf("exit 1\n");
                return early_exit();
        }
        if (plan.reset_loginuid && reset_loginuid(err, sizeof err) < 0) {
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
        /* cgns_late: the namespace is made by PID 1 after "go", rooted where the host put it meanwhile */
        pid_t pid = cgroup_clone(&plan.cgroup, plan.cgns_late ? plan.clone_flags & ~(unsigned long) CLONE_NEWCGROUP : plan.clone_flags, err, sizeof err);
        if (pid < 0) {
                if (*err)
                        ctl_printf("error %s\n", err);
                else
                        ctl_printf("error clone(): %s (%s)\n", strerror(errno), errno_name(errno));
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
                child_sync_fd = sp[1];
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() == 0 && !(plan.clone_flags & CLONE_NEWPID) && !nsjoin_has(&plan.nsjoin, CLONE_NEWPID))
                        _exit(1);
                child_main(&plan);
        }
        close(sp[1]);
        cgroup_leave(&plan.cgroup);
        /* The detached copies of host bind sources belong to the child now; ours would keep them busy (a
         * container could not unmount them) for as long as the container lives. */
        for (size_t i = 0; i < plan.n_ops; i++)
                if (plan.ops[i].tree_fd >= 0) {
                        close(plan.ops[i].tree_fd);
                        plan.ops[i].tree_fd = -1;
                }
        int sync_sock = sp[0];
        /* the preserved descriptors are the child's now */
        for (size_t i = 0; i < plan.n_pass_fds; i++)
                close(plan.pass_fds[i]);
        int late = plan.sync && plan.late_sync;
        /* the child's own message Node hears its PID with: 'G' set up (OCI create), 'R' in its root (a systemd host) */
        char gate = late ? 'G' : plan_rooted_gate(&plan) ? 'R' : 0;
        if (!gate)
                ctl_printf("pid %d\n", pid);

        if (plan.usermap) {
                /* private users: the map, from the host side (no Node needed, so such a run can be handed over) */
                char map[4096], path[64];
                usermap_string(map, sizeof map, 0);
                snprintf(path, sizeof path, "/proc/%d/uid_map", pid);
                int ok = write_small_file(path, map) == 0;
                if (ok) {
                        usermap_string(map, sizeof map, 1);
                        snprintf(path, sizeof path, "/proc/%d/gid_map", pid);
                        ok = write_small_file(path, map) == 0;
                }
                if (!ok) {
                        ctl_printf("error Failed to write the user namespace map of PID %d: %s (%s)\n", pid, strerror(errno), errno_name(errno));
                        kill(pid, SIGKILL);
                        waitpid(pid, NULL, 0);
                        return 1;
                }
                if ((!plan.sync || gate) && write(sync_sock, "g", 1) != 1) {
                        /* the child died already; its status is reported below */
                }
        }

        int early_master = -1, early_notify = -1;
        if (gate) {
                /* the child sets itself up to its gate (child_main()); its console and messages meanwhile */
                for (;;) {
                        char buf[4096];
                        int fd = -1;
                        int n = recv_msg(sync_sock, buf, sizeof buf, &fd);
                        if (n > 0 && buf[0] == gate)
                                break;
                        if (n <= 0) {
                                kill(pid, SIGKILL);
                                waitpid(pid, NULL, 0);
                                return 1;
                        }
                        if (buf[0] == 'P' && fd >= 0) {
                                early_master = take_master(fd);
                                if (early_master == -2) {
                                        kill(pid, SIGKILL);
                                        waitpid(pid, NULL, 0);
                                        return 1;
                                }
                        } else if (buf[0] == 'N' && fd >= 0) {
                                early_notify = fd;
                        } else if (buf[0] == 'E' || buf[0] == 'W') {
                                for (char *q = buf; *q; q++)
                                        if (*q == '\n')
                                                *q = ' ';
                                ctl_printf("%s %s\n", buf[0] == 'E' ? "error" : "warning", buf + 1);
                        } else if (fd >= 0)
                                close(fd);
                }
                ctl_printf("pid %d\n", pid);
        }

        if (plan.sync) {
                char line[64];
                if (ctl_read_line(line, sizeof line) < 0) {
                        kill(pid, SIGKILL);
                        waitpid(pid, NULL, 0);
                        return 1;
                }
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
        int interactive = plan.console == CONSOLE_INTERACTIVE;
        int forward_out = interactive || plan.console == CONSOLE_READ_ONLY;
        int master = -1, master_watch = -1;
        int sync_open = 1;
        int notify_fd = -1;
        int exited = 0, status = 0;
        int last_char = -1; /* the last byte of the container's output we passed on (-1: none yet) */
        int stdin_open = interactive;
        int child_failed = 0; /* an error came from the child: it is ending */
        Escapes escapes = { 0 };

        if (interactive)
                console_raw();
        notify_fd = early_notify;
        if (early_master >= 0) {
                master = early_master;
                int fl = fcntl(master, F_GETFL);
                fcntl(master, F_SETFL, fl | O_NONBLOCK);
                console_copy_winsize(master);
                if (forward_out && (master_watch = ptyfwd_watch(master)) < 0)
                        forward_out = 0;
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
                                        console_copy_winsize(master);
                                /* SIGINT/SIGTERM/SIGHUP: Node decides what to send to the container (handed over: we do) */
                                else if (handoff_on)
                                        ho_signal((int) si.ssi_signo, pid);
                        }
                        int st;
                        /* (left to a subreaper: its status is the subreaper's to reap, not ours) */
                        if (!exited && !plan.leave && waitpid(pid, &st, WNOHANG) == pid) {
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
                                /* OCI create: the payload has been executed (the socket closed with its exec, no
                                 * error came): it is the nearest subreaper's from here on, as runc leaves it */
                                /* a child that failed before its exec is left too (its error came above): dying
                                 * or a zombie, it goes to the subreaper, which reaps it and reads its status */
                                if (plan.leave && !exited) {
                                        if (!child_failed)
                                                ctl_printf("ready\n");
                                        ctl_printf("left\n");
                                        return 0;
                                }
                                if (!exited) {
                                        ctl_printf("ready\n");
                                        /* the container runs: what systemd-nspawn tells its service manager now */
                                        char msg[128];
                                        snprintf(msg, sizeof msg, "STATUS=Container running.\nX_NSPAWN_LEADER_PID=%d", (int) pid);
                                        notify_ours(&plan, msg);
                                        if (!plan.notify_ready)
                                                notify_ours(&plan, "READY=1\n");
                                }
                        } else if (buf[0] == 'N' && fd >= 0) {
                                if (notify_fd >= 0)
                                        close(notify_fd);
                                notify_fd = fd;
                        } else if (buf[0] == 'E') {
                                child_failed = 1;
                                for (char *q = buf; *q; q++)
                                        if (*q == '\n')
                                                *q = ' ';
                                ctl_printf("error %s\n", buf + 1);
                        } else if (buf[0] == 'W') {
                                for (char *q = buf; *q; q++)
                                        if (*q == '\n')
                                                *q = ' ';
                                ctl_printf("warning %s\n", buf + 1);
                        } else if (buf[0] == 'P' && fd >= 0 && (fd = take_master(fd)) >= 0) {
                                master = fd;
                                int fl = fcntl(master, F_GETFL);
                                fcntl(master, F_SETFL, fl | O_NONBLOCK);
                                console_copy_winsize(master);
                                if (forward_out && (master_watch = ptyfwd_watch(master)) < 0)
                                        forward_out = 0;
                        }
                }
                if (i_notify >= 0 && (p[i_notify].revents & POLLIN))
                        notify_dispatch(&plan, notify_fd, pid);
                if (i_master >= 0 && (p[i_master].revents & POLLIN))
                        (void) ptyfwd_drain(master_watch, master, STDOUT_FILENO, &last_char);
                if (i_in >= 0 && (p[i_in].revents & (POLLIN | POLLHUP | POLLERR))) {
                        char buf[4096];
                        ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
                        if (n <= 0) {
                                stdin_open = 0;
                        } else {
                                size_t start = console_escapes(&escapes, buf, (size_t) n);
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
        console_restore();
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
                        notify_ours(&plan, "STOPPING=1\nSTATUS=Restarting...");
        } else
                notify_ours(&plan, "STOPPING=1\nSTATUS=Terminating...");
        /* --console=passive: nothing was read from the console; what it holds goes to our stdout at the very end,
         * after nspawn's message about the end (systemd-nspawn 252: copy_bytes(master, STDOUT_FILENO) in main()) */
        int rest = plan.console == CONSOLE_PASSIVE ? master : -1;
        if (handoff_on)
                ho_finish(status, rest);
        if (WIFEXITED(status))
                ctl_printf("exit %d\n", WEXITSTATUS(status));
        else if (WIFSIGNALED(status))
                ctl_printf("signal %d\n", WTERMSIG(status));
        if (rest >= 0) {
                /* Node says the end first, then "drain" (or "drop": a reboot it follows, whose console 252 leaves) */
                char line[64];
                ctl_printf("held\n");
                if (ctl_read_line(line, sizeof line) == 0 && strcmp(line, "drain") == 0)
                        (void) ptyfwd_copy(rest, STDOUT_FILENO, NULL);
        }
        return 0;
}
