#define _GNU_SOURCE
#include "oci-socket.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int unix_connect(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof sa.sun_path) {
                errno = ENAMETOOLONG;
                return -1;
        }
        strcpy(sa.sun_path, path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -1;
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                int e = errno;
                close(fd);
                errno = e;
                return -1;
        }
        return fd;
}

int fd_write_all(int fd, const void *p, size_t n) {
        const char *s = p;
        while (n > 0) {
                ssize_t w = write(fd, s, n);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        return -1;
                s += w;
                n -= (size_t) w;
        }
        return 0;
}

void buf_read_all(Buf *b, int fd) {
        buf_add(b, "", 0);
        char tmp[8192];
        for (;;) {
                ssize_t n = read(fd, tmp, sizeof tmp);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return;
                buf_add(b, tmp, (size_t) n);
        }
}
