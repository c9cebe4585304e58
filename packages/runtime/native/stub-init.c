/* PID 1 for --as-pid2 (stub-init.h). */
#define _GNU_SOURCE
#include "stub-init.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/reboot.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "control.h"
#include "util.h"

/* PID 1 for --as-pid2: reaps everything, passes the payload's exit code on, and turns the systemd power signals
 * into the matching reboot(2) so the outside sees the same result as under systemd-nspawn's stub. */
void stub_init(const Plan *p) {
        sigset_t full, old;
        sigfillset(&full);
        sigprocmask(SIG_BLOCK, &full, &old);
        pid_t pid = fork();
        if (pid < 0)
                child_die_errno("fork of the payload");
        if (pid == 0) {
                sigprocmask(SIG_SETMASK, &old, NULL);
                if (setsid() < 0 && errno != EPERM)
                        child_die_errno("setsid in the payload");
                if (p->console != CONSOLE_PIPE && ioctl(STDIN_FILENO, TIOCSCTTY, 0) < 0)
                        child_die_errno("Failed to acquire controlling TTY");
                exec_payload(p);
        }
        /* Our copy of the sync socket must not keep the outer waiting: the payload's copy closes on exec. */
        close(child_sync_fd);
        child_sync_fd = -1;
        for (int fd = 0; fd < 3; fd++) {
                int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (nul >= 0) {
                        dup2(nul, fd);
                        close(nul);
                }
        }
        (void) ioctl(STDIN_FILENO, TIOCNOTTY);
        clearenv();
        for (size_t i = 0; i < p->n_stub_env; i++)
                putenv((char *) p->stub_env[i]);
        rename_process("(sd-stubinit)");

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
