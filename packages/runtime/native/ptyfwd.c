/* Forwarding a pty master's output (ptyfwd.h). */
#define _GNU_SOURCE
#include "ptyfwd.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "util.h"

/* An epoll instance watching MASTER for input, edge-triggered; -1 on error. */
int ptyfwd_watch(int master) {
        int ep = epoll_create1(EPOLL_CLOEXEC);
        if (ep < 0)
                return -1;
        struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.fd = master };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, master, &ev) < 0) {
                close(ep);
                return -1;
        }
        return ep;
}

int ptyfwd_copy(int master, int out, int *last) {
        char buf[16384];
        for (;;) {
                ssize_t n = read(master, buf, sizeof buf);
                if (n > 0) {
                        (void) write_all(out, buf, (size_t) n);
                        if (last)
                                *last = (unsigned char) buf[n - 1];
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                return n < 0 && errno == EIO;
        }
}

/*
 * After the watch EP polled readable: takes its event and copies everything the (non-blocking) MASTER has to OUT.
 * *LAST gets the last byte copied. Returns 1 when the master is hung up (EIO: no slave open), else 0.
 */
int ptyfwd_drain(int ep, int master, int out, int *last) {
        struct epoll_event ev;
        while (epoll_wait(ep, &ev, 1, 0) > 0) {
        }
        return ptyfwd_copy(master, out, last);
}
