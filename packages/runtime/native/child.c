/* The container's side (child.h). */
#define _GNU_SOURCE
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/mount.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "console.h"
#include "control.h"
#include "mount.h"
#include "stub-init.h"
#include "util.h"
#include "image.h"
#include "pivot.h"
#include "volatile.h"

static void loopback_up(void) {
        int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (s < 0)
                child_die_errno("socket for loopback setup");
        struct ifreq ifr;
        memset(&ifr, 0, sizeof ifr);
        strcpy(ifr.ifr_name, "lo");
        if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
                child_die_errno("SIOCGIFFLAGS(lo)");
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
                child_die_errno("bringing up lo");
        close(s);
}

/* the plan's addresses and routes for host0 (netcfg.c) */
static void net_configure(const Plan *p) {
        char nerr[512];
        char nmsg[600];
        if (netcfg_apply(&p->net, nerr, sizeof nerr) < 0) {
                snprintf(nmsg, sizeof nmsg, "Failed to configure the container's network: %s", nerr);
                child_error(nmsg);
                _exit(1);
        }
}

/* plan_rooted_gate(): in the container's root now, "rooted" to the outer helper, which reports our PID to Node only
 * now; Node registers us (nspawnd or machined; on a systemd host systemd's scope, payload/ below it; network links)
 * and says "go". Then, with cgns_late, as systemd-nspawn 252's inner child at "Wait until we are cgroup-ified": the
 * cgroup namespace, rooted where we are now, and the cgroup file systems at their final paths. */
static void rooted_gate(const Plan *p) {
        char c;
        if (write(child_sync_fd, "R", 1) != 1 || read(child_sync_fd, &c, 1) != 1)
                _exit(1); /* the outer side went away */
        if (p->cgns_late && (p->clone_flags & CLONE_NEWCGROUP) && unshare(CLONE_NEWCGROUP) < 0)
                child_die_errno("Failed to unshare cgroup namespace");
        net_configure(p);
        int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (root < 0)
                child_die_errno("opening /");
        mount_set_root(root);
        for (size_t i = p->cg_from; i < p->cg_to; i++)
                run_op(&p->ops[i]);
        mount_set_root(-1);
        close(root);
}

void exec_payload(const Plan *p) {
        char **envp = (char **) p->env;
        if (p->n_argv > 0) {
                if (p->search_path && !strchr(p->argv[0], '/')) {
                        /* execvpe uses PATH from the current environment: the container's. */
                        for (size_t i = 0; i < p->n_env; i++)
                                if (!strncmp(p->env[i], "PATH=", 5))
                                        setenv("PATH", p->env[i] + 5, 1);
                        execvpe(p->argv[0], (char **) p->argv, envp);
                } else
                        execve(p->argv[0], (char **) p->argv, envp);
                child_die_errno("execv(%s) failed", p->argv[0]);
        }
        /* inner_child(): each candidate in turn, whatever made the previous one fail; the last error is reported */
        char tried[1024] = "";
        char **a = xcalloc(p->n_fallback_args + 2, sizeof *a);
        for (size_t j = 0; j < p->n_fallback_args; j++)
                a[1 + j] = (char *) p->fallback_args[j];
        for (size_t i = 0; i < p->n_fallback; i++) {
                a[0] = (char *) p->fallback[i].argv0;
                execve(p->fallback[i].path, a, envp);
                int e = errno;
                strncat(tried, i ? ", " : "", sizeof tried - strlen(tried) - 1);
                strncat(tried, p->fallback[i].path, sizeof tried - strlen(tried) - 1);
                errno = e;
        }
        child_die_errno("execv(%s) failed", tried);
}

/* OCI --preserve-fds and LISTEN_FDS: the plan's descriptors become 3, 4, ... of the payload (open across its exec);
 * every other one above 2 is close-on-exec already (outer_main()) */
static void pass_fds(const Plan *p) {
        int n = (int) p->n_pass_fds;
        /* the sync socket out of the way of the targets first */
        if (child_sync_fd < 3 + n) {
                int s = fcntl(child_sync_fd, F_DUPFD_CLOEXEC, 3 + n);
                if (s < 0)
                        child_die_errno("moving the sync socket");
                close(child_sync_fd);
                child_sync_fd = s;
        }
        int *tmp = xcalloc((size_t) n + 1, sizeof *tmp);
        for (int i = 0; i < n; i++) {
                tmp[i] = fcntl(p->pass_fds[i], F_DUPFD_CLOEXEC, 3 + n);
                if (tmp[i] < 0)
                        child_die_errno("preserved file descriptor %d", i);
        }
        for (int i = 0; i < n; i++) {
                if (dup2(tmp[i], 3 + i) < 0)
                        child_die_errno("dup2 of preserved file descriptor %d", i);
                close(tmp[i]);
        }
        free(tmp);
}

void child_main(Plan *p) {
        char c;
        /* cloned into the unified scope: the cgroup namespace is made here, rooted at it (native/cgroup.c).
         * It is made before the sync point, so that a container waiting there (OCI create)
         * already shows its own one. In a new user namespace the child has CAP_SYS_ADMIN there from the clone
         * on, mapped or not, and the namespace belongs to that user namespace either way. */
        if (p->cgroup.unshare_cgns && unshare(CLONE_NEWCGROUP) < 0)
                child_die_errno("Failed to unshare cgroup namespace");
        /* (a rooted gate waits after the pivot instead: rooted_gate()) */
        int rooted = plan_rooted_gate(p);
        if ((p->sync && !p->late_sync && !rooted) || p->usermap) {
                if (read(child_sync_fd, &c, 1) != 1)
                        _exit(1); /* the outer side went away */
        }
        if (p->cgns_late && !rooted && (p->clone_flags & CLONE_NEWCGROUP) && unshare(CLONE_NEWCGROUP) < 0)
                child_die_errno("Failed to unshare cgroup namespace");
        if (p->clone_flags & CLONE_NEWUSER) {
                if (syscall(SYS_setresgid, 0, 0, 0) < 0 || syscall(SYS_setresuid, 0, 0, 0) < 0)
                        child_die_errno("becoming root in the user namespace");
                if (setgroups(0, NULL) < 0 && errno != EPERM)
                        child_die_errno("setgroups");
                /* The credential change cleared the parent-death signal: arm it again, so that the container
                 * still dies with the outer helper (kill -9 of nspawn), and quit if the outer already went. */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                struct pollfd hup = { .fd = child_sync_fd, .events = POLLRDHUP };
                if (child_sync_fd >= 0 && poll(&hup, 1, 0) > 0 && (hup.revents & (POLLHUP | POLLRDHUP)))
                        _exit(1);
        }
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                child_die_errno("making / rprivate");
        /* The outer helper chdir()ed into the tree before the clone; the clone moved our cwd into the new mount
         * namespace. Bind the tree onto itself from there (a mount point for pivot_root), without looking up
         * its host path again: in a user namespace the path's parents may not be searchable. */
        int tree = p->idmap_tree >= 0 ? p->idmap_tree : (int) syscall(SYS_open_tree, AT_FDCWD, ".", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
        if (tree < 0)
                child_die_errno("bind mount of %s on itself (open_tree)", p->root);
        /* --pivot-root=NEW:OLD moves the tree away and NEW to where it was: the directory it is mounted on */
        int mountpoint = p->pivot_old ? open(".", O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
        if (p->pivot_old && mountpoint < 0)
                child_die_errno("opening %s", p->root);
        if (syscall(SYS_move_mount, tree, "", AT_FDCWD, ".", MOVE_MOUNT_F_EMPTY_PATH) < 0)
                child_die_errno("bind mount of %s on itself (move_mount)", p->root);
        if (fchdir(tree) < 0)
                child_die_errno("entering %s", p->root);
        int root_fd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (root_fd < 0)
                child_die_errno("opening %s", p->root);
        /* -i: the image's root (and /usr) on the (empty) root, before anything else goes on or in it */
        size_t image_rest = image_setup(&p->image, &root_fd, 0);
        /* setup_pivot_root(): NEW inside the tree becomes the root (native/pivot.c) */
        pivot_setup(p->pivot_new, p->pivot_old, p->root, &root_fd, mountpoint);
        if (mountpoint >= 0)
                close(mountpoint);
        /* setup_volatile_mode(): a tmpfs or an overlay may go on top of the root, which the ops then fill */
        volatile_setup(p->volatile_mode, p->root, &root_fd);
        /* -i: the image's other partitions, as systemd 252 mounts them: after the pivot and the volatile mode */
        image_setup(&p->image, &root_fd, image_rest);
        mount_set_root(root_fd);
        close(tree);
        if (p->loopback)
                loopback_up();
        /* host0 is here once Node has attached: after the sync point above, or at a rooted gate (rooted_gate()) */
        if (!rooted)
                net_configure(p);

        int master = -1;
        char console[64] = "";
        /* the propagation of "/" (OCI's rootfsPropagation) is set once the tree is the root, as runc does: a shared
         * tree could not be pivoted into */
        unsigned long root_propagation = 0;
        for (size_t i = 0; i < p->n_ops; i++) {
                /* at a rooted gate the cgroup file systems wait for the namespace, made after it */
                if (rooted && i >= p->cg_from && i < p->cg_to)
                        continue;
                if (p->ops[i].kind == OP_CONSOLE) {
                        master = console_allocate(console, sizeof console);
                        continue;
                }
                if (p->ops[i].kind == OP_REMOUNT && (p->ops[i].mflags & PROPAGATION_FLAGS) && !strcmp(p->ops[i].target, "/")) {
                        root_propagation = p->ops[i].mflags & (PROPAGATION_FLAGS | MS_REC);
                        continue;
                }
                run_op(&p->ops[i]);
        }

        if (p->session_keyring && keyring_join_session() < 0)
                child_die_errno("Setting up kernel keyring failed");

        if (fchdir(root_fd) < 0)
                child_die_errno("chdir(%s)", p->root);
        if (syscall(SYS_pivot_root, ".", ".") < 0)
                child_die_errno("pivot_root(%s)", p->root);
        if (umount2(".", MNT_DETACH) < 0)
                child_die_errno("detaching the old root");
        if (chdir("/") < 0)
                child_die_errno("chdir(/)");
        close(root_fd);
        if (root_propagation && mount(NULL, "/", NULL, root_propagation, NULL) < 0)
                child_die_errno("changing the propagation of /");
        if (rooted)
                rooted_gate(p);

        if (p->hostname && sethostname(p->hostname, strlen(p->hostname)) < 0)
                child_die_errno("sethostname(%s)", p->hostname);

        if (setsid() < 0)
                child_die_errno("setsid");
        if (master >= 0) {
                int s = open(console, O_RDWR | O_NOCTTY | O_CLOEXEC);
                if (s < 0)
                        child_die_errno("opening console %s", console);
                /* With -a the payload takes the console as its controlling tty, not the stub (inner_child()). */
                if (!p->pid2 && ioctl(s, TIOCSCTTY, 0) < 0)
                        child_die_errno("TIOCSCTTY on %s", console);
                if (send_fd(child_sync_fd, master, 'P') < 0)
                        child_die_errno("passing the console to the outer helper");
                close(master);
                for (int fd = 0; fd < 3; fd++)
                        if (dup2(s, fd) < 0)
                                child_die_errno("dup2 console");
                if (s > 2)
                        close(s);
        }

        if (p->oom_set) {
                char num[16];
                snprintf(num, sizeof num, "%d", p->oom_score_adj);
                if (write_small_file("/proc/self/oom_score_adj", num) < 0)
                        child_die_errno("Failed to adjust OOM score");
        }
        if (p->cpus && sched_setaffinity(0, p->cpus_size, p->cpus) < 0)
                child_die_errno("Failed to set CPU affinity");
        if (p->personality >= 0 && personality((unsigned long) p->personality) < 0)
                child_die_errno("personality()");
        for (size_t i = 0; i < p->n_rlimits; i++) {
                /* Like systemd's setrlimit_closest(): without CAP_SYS_RESOURCE a hard limit cannot go up, so
                 * settle for the closest values allowed. */
                __rlimit_resource_t res = (__rlimit_resource_t) p->rlimits[i].res;
                struct rlimit want = p->rlimits[i].lim, cur;
                if (setrlimit(res, &want) == 0)
                        continue;
                if (errno != EPERM || getrlimit(res, &cur) < 0)
                        child_die_errno("setrlimit(%d)", p->rlimits[i].res);
                if (want.rlim_max > cur.rlim_max)
                        want.rlim_max = cur.rlim_max;
                if (want.rlim_cur > want.rlim_max)
                        want.rlim_cur = want.rlim_max;
                if (setrlimit(res, &want) < 0)
                        child_die_errno("setrlimit(%d)", p->rlimits[i].res);
        }

        if (p->oci_fds)
                pass_fds(p);
        /* OCI create: the container is set up and waits here for start (runc's exec fifo), before the filter and
         * the credentials */
        if (p->sync && p->late_sync) {
                if (write(child_sync_fd, "G", 1) != 1 || read(child_sync_fd, &c, 1) != 1)
                        _exit(1); /* the outer side went away */
                /* the outer helper leaves once we have executed the payload: we must outlive it */
                if (p->leave) {
                        prctl(PR_SET_PDEATHSIG, 0);
                        /* and whatever fails from here on is for the caller's eyes too (runc prints it) */
                        child_errors_to_stderr = 1;
                }
        }

        /* setup_seccomp() and seccomp_suppress_sync(): the system call filter, before PR_SET_KEEPCAPS and the UID
         * change (inner_child(): seccomp -> keepcaps -> change uid -> drop capabilities -> no_new_privs -> exec) */
        if (!p->seccomp.late && seccomp_install(&p->seccomp) < 0)
                child_die_errno("Failed to install seccomp filter");

        if (p->caps.set && caps_keep_across_uid_change() < 0)
                child_die_errno("Failed to set PR_SET_KEEPCAPS");
        /* change_uid_gid_raw(): the console belongs to the user it runs as */
        if (master >= 0 && (p->uid > 0 || p->gid > 0))
                for (int fd = 0; fd < 3; fd++)
                        (void) fchown(fd, (uid_t) p->uid, (gid_t) p->gid);
        if (p->set_groups && setgroups((size_t) p->n_groups, p->groups) < 0)
                child_die_errno("setgroups");
        if (p->gid >= 0 && setresgid((gid_t) p->gid, (gid_t) p->gid, (gid_t) p->gid) < 0)
                child_die_errno("setresgid(%ld)", p->gid);
        if (p->uid >= 0 && setresuid((uid_t) p->uid, (uid_t) p->uid, (uid_t) p->uid) < 0)
                child_die_errno("setresuid(%ld)", p->uid);
        /* drop_capabilities() */
        if (p->caps_warning)
                child_warning(p->caps_warning);
        if (p->caps.set) {
                const char *what = "";
                if (caps_apply(&p->caps, &what) < 0)
                        child_die_errno("Dropping capabilities failed (%s)", what);
        }
        if (p->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                child_die_errno("Failed to disable new privileges");
        if (p->chdir && chdir(p->chdir) < 0)
                child_die_errno("Failed to change to specified working directory %s", p->chdir);
        /* runc with noNewPrivileges: the filter as close to execve() as it can be (no privilege needed for it now) */
        if (p->seccomp.late && seccomp_install(&p->seccomp) < 0)
                child_die_errno("error loading seccomp filter into kernel");

        if (p->pid2)
                stub_init(p);
        exec_payload(p);
}
