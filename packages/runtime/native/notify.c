/* sd_notify both ways (notify.h). */
#define _GNU_SOURCE
#include "notify.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"
#include "handoff.h"

/* sd_pid_notify(getppid(), ...): the message goes to $NOTIFY_SOCKET in nspawn's name (Node's PID), so that a service
 * manager with NotifyAccess=main takes it from nspawn; as root we may name another PID in SCM_CREDENTIALS. */
void notify_ours(const Plan *p, const char *msg) {
        const char *path = getenv("NOTIFY_SOCKET");
        if (!p->sd_notify || !path || (path[0] != '/' && path[0] != '@'))
                return;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t len = strlen(path);
        if (len >= sizeof sa.sun_path)
                return;
        memcpy(sa.sun_path, path, len);
        if (sa.sun_path[0] == '@')
                sa.sun_path[0] = 0; /* abstract */
        socklen_t salen = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/' ? 1 : 0));
        int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (s < 0)
                return;
        struct iovec iov = { .iov_base = (void *) msg, .iov_len = strlen(msg) };
        union {
                struct cmsghdr h;
                char b[CMSG_SPACE(sizeof(struct ucred))];
        } u;
        memset(&u, 0, sizeof u);
        struct msghdr m = { .msg_name = &sa, .msg_namelen = salen, .msg_iov = &iov, .msg_iovlen = 1 };
        pid_t parent = handoff_on ? 0 : getppid(); /* handed over: we are nspawn, no one to speak for */
        if (parent > 1) {
                m.msg_control = u.b;
                m.msg_controllen = sizeof u.b;
                struct cmsghdr *c = CMSG_FIRSTHDR(&m);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_CREDENTIALS;
                c->cmsg_len = CMSG_LEN(sizeof(struct ucred));
                struct ucred uc = { .pid = parent, .uid = getuid(), .gid = getgid() };
                memcpy(CMSG_DATA(c), &uc, sizeof uc);
        }
        if (sendmsg(s, &m, MSG_NOSIGNAL) < 0 && m.msg_control) {
                /* not allowed to speak for Node: in our own name then */
                m.msg_control = NULL;
                m.msg_controllen = 0;
                (void) sendmsg(s, &m, MSG_NOSIGNAL);
        }
        close(s);
}

/* nspawn_dispatch_notify_fd(): one datagram from /run/host/notify; only the container's PID 1 counts. READY=1 and
 * STATUS= go to Node and, as systemd-nspawn passes them on, to our own $NOTIFY_SOCKET. */
void notify_dispatch(const Plan *p, int fd, pid_t leader) {
        for (;;) {
                char buf[4097];
                struct iovec iov = { .iov_base = buf, .iov_len = sizeof buf - 1 };
                union {
                        struct cmsghdr h;
                        char b[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * 768)];
                } u;
                struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof u.b };
                ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
                if (n < 0)
                        return;
                struct ucred *uc = NULL;
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
                        if (c->cmsg_level != SOL_SOCKET)
                                continue;
                        if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len >= CMSG_LEN(sizeof(struct ucred)))
                                uc = (struct ucred *) CMSG_DATA(c);
                        else if (c->cmsg_type == SCM_RIGHTS) {
                                /* fds (FDSTORE=1 ...) are not kept: close them */
                                int k = (int) ((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                                for (int i = 0; i < k; i++) {
                                        int x;
                                        memcpy(&x, CMSG_DATA(c) + i * sizeof(int), sizeof x);
                                        close(x);
                                }
                        }
                }
                if (!uc || uc->pid != leader || (size_t) n >= sizeof buf - 1 || (m.msg_flags & MSG_TRUNC))
                        continue;
                buf[n] = 0;
                for (char *save = NULL, *t = strtok_r(buf, "\n\r", &save); t; t = strtok_r(NULL, "\n\r", &save)) {
                        if (!strcmp(t, "READY=1")) {
                                ctl_printf("notify READY=1\n");
                                notify_ours(p, "READY=1\n");
                        } else if (!strncmp(t, "STATUS=", 7)) {
                                ctl_printf("notify %s\n", t);
                                char msg[4200];
                                snprintf(msg, sizeof msg, "STATUS=Container running: %s", t + 7);
                                notify_ours(p, msg);
                        }
                }
        }
}
