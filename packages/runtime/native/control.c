/* The helper's messages to Node and from the container's child (control.h). */
#define _GNU_SOURCE
#include "control.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "handoff.h"
#include "util.h"

int child_sync_fd = -1;
int child_errors_to_stderr = 0;

void ctl_printf(const char *fmt, ...) {
        char buf[4200];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        if ((size_t) n >= sizeof buf) {
                n = sizeof buf - 1;
                buf[n - 1] = '\n';
        }
        /* one message, one line: a path or a text with a newline in it cannot start a line of its own ("pid 1") */
        for (int i = 0; i < n - 1; i++)
                if (buf[i] == '\n' || buf[i] == '\r')
                        buf[i] = ' ';
        if (handoff_on) {
                ho_event(buf);
                return;
        }
        (void) write_all(CTL_FD, buf, (size_t) n);
}

static void child_send(char tag, const char *msg) {
        char buf[4096];
        int n = snprintf(buf, sizeof buf, "%c%s", tag, msg);
        if (n < 0)
                return;
        if ((size_t) n >= sizeof buf)
                n = sizeof buf - 1;
        if (child_sync_fd >= 0)
                (void) !send(child_sync_fd, buf, (size_t) n, MSG_NOSIGNAL);
        if (tag == 'E' && (child_sync_fd < 0 || child_errors_to_stderr))
                fprintf(stderr, "nspawn-helper: %s\n", msg);
}

void child_error(const char *msg) {
        child_send('E', msg);
}

void child_warning(const char *msg) {
        child_send('W', msg);
}

void child_warn_errno(const char *fmt, ...) {
        char msg[3000], full[4000];
        int e = errno;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        snprintf(full, sizeof full, "%s: %s", msg, strerror(e));
        child_warning(full);
        errno = e;
}

void child_die_errno(const char *fmt, ...) {
        char msg[3000], full[4000];
        int e = errno;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        snprintf(full, sizeof full, "%s: %s (%s)", msg, strerror(e), errno_name(e));
        child_error(full);
        _exit(1);
}

int send_fd_with(int sock, int fd, const void *data, size_t len) {
        struct iovec iov = { .iov_base = (void *) data, .iov_len = len };
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } u;
        memset(&u, 0, sizeof u);
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
        struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
        return sendmsg(sock, &m, MSG_NOSIGNAL) < 0 ? -1 : 0;
}

int send_fd(int sock, int fd, char c) {
        return send_fd_with(sock, fd, &c, 1);
}

int recv_msg(int sock, char *buf, size_t sz, int *fd_out) {
        struct iovec iov = { .iov_base = buf, .iov_len = sz - 1 };
        union {
                struct cmsghdr h;
                char b[CMSG_SPACE(sizeof(int))];
        } u;
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof u.b };
        ssize_t n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
        if (n <= 0)
                return (int) n;
        buf[n] = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                        memcpy(fd_out, CMSG_DATA(c), sizeof(int));
        return (int) n;
}
