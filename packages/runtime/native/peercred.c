/* SO_PEERCRED for Node (peercred.h). */
#define _GNU_SOURCE
#include "peercred.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* a decimal number from 0 to MAX with nothing around it; -1 otherwise */
static long strict_number(const char *s, long max) {
        if (!s || *s < '0' || *s > '9')
                return -1;
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (errno || (*end && *end != '\n') || v > max)
                return -1;
        return v;
}

int peercred_main(void) {
        struct ucred uc;
        socklen_t l = sizeof uc;
        if (getsockopt(STDIN_FILENO, SOL_SOCKET, SO_PEERCRED, &uc, &l) < 0) {
                fprintf(stderr, "nspawn-helper peercred: %s\n", strerror(errno));
                return 1;
        }
        printf("%d %u %u\n", (int) uc.pid, (unsigned) uc.uid, (unsigned) uc.gid);
        return 0;
}

int peercred_server_main(const char *pid) {
        long p = strict_number(pid, 0x7fffffff);
        if (p < 1) {
                fprintf(stderr, "nspawn-helper peercred-server: '%s' is not a PID\n", pid ? pid : "");
                return 2;
        }
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int pidfd = (int) syscall(SYS_pidfd_open, (pid_t) p, 0);
        if (pidfd < 0) {
                fprintf(stderr, "nspawn-helper peercred-server: pidfd_open: %s\n", strerror(errno));
                return 1;
        }
        setvbuf(stdout, NULL, _IOLBF, 0);
        char line[64];
        while (fgets(line, sizeof line, stdin)) {
                long n = strict_number(line, 0x7fffffff);
                int fd = n < 0 ? -1 : (int) syscall(SYS_pidfd_getfd, pidfd, (int) n, 0);
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
