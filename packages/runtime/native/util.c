/* Small utilities of the helper (see util.h). */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

int write_all(int fd, const void *p, size_t n) {
        const char *c = p;
        while (n > 0) {
                ssize_t k = write(fd, c, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN) {
                                struct pollfd pf = { .fd = fd, .events = POLLOUT };
                                (void) poll(&pf, 1, -1);
                                continue;
                        }
                        return -1;
                }
                c += k;
                n -= (size_t) k;
        }
        return 0;
}

ssize_t read_full(int fd, void *p, size_t n) {
        size_t got = 0;
        while (got < n) {
                ssize_t k = read(fd, (char *) p + got, n - got);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -1;
                }
                if (k == 0)
                        break;
                got += (size_t) k;
        }
        return (ssize_t) got;
}

int write_small_file(const char *p, const char *s) {
        int fd = open(p, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -1;
        ssize_t n = write(fd, s, strlen(s));
        int e = errno;
        close(fd);
        errno = e;
        return n == (ssize_t) strlen(s) ? 0 : -1;
}

uint64_t now_ms(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (uint64_t) t.tv_sec * 1000 + (uint64_t) t.tv_nsec / 1000000;
}

const char *errno_name(int e) {
        const char *n = strerrorname_np(e);
        return n ? n : "?";
}

static void out_of_memory(void) {
        static const char msg[] = "nspawn-helper: out of memory\n";
        (void) !write(STDERR_FILENO, msg, sizeof msg - 1);
        _exit(1);
}

void *xcalloc(size_t n, size_t size) {
        void *p = calloc(n ? n : 1, size ? size : 1);
        if (!p)
                out_of_memory();
        return p;
}

void *grow_one(void *p, size_t *n, size_t *cap, size_t size) {
        if (*n >= *cap) {
                size_t c = *cap ? *cap * 2 : 8;
                if (c < *cap || c > SIZE_MAX / size)
                        out_of_memory();
                p = realloc(p, c * size);
                if (!p)
                        out_of_memory();
                *cap = c;
        }
        memset((char *) p + *n * size, 0, size);
        (*n)++;
        return p;
}

void strlist_push(StrList *l, const char *s) {
        *PUSH(l->v, l->n, l->cap) = s;
}

void say(const char *text) {
        if (!text)
                return;
        (void) write_all(STDERR_FILENO, text, strlen(text));
        (void) write_all(STDERR_FILENO, "\n", 1);
}

static char *argv_area;
static size_t argv_area_len;

void rename_process_init(int argc, char **argv) {
        if (argc <= 0 || !argv[0])
                return;
        argv_area = argv[0];
        argv_area_len = strlen(argv[0]);
        for (int i = 1; i < argc && argv[i] == argv_area + argv_area_len + 1; i++)
                argv_area_len += 1 + strlen(argv[i]);
}

void rename_process(const char *name) {
        (void) prctl(PR_SET_NAME, name);
        if (argv_area) {
                memset(argv_area, 0, argv_area_len);
                strncpy(argv_area, name, argv_area_len);
        }
}
