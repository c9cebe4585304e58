/* The container's console (console.h). */
#define _GNU_SOURCE
#include "console.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "control.h"
#include "plan.h"
#include "mount.h"
#include "util.h"

int console_allocate(char *slave_path, size_t sz) {
        int m = open_in_root("/dev/pts/ptmx", O_RDWR | O_NOCTTY);
        if (m < 0)
                child_die_errno("opening the container's /dev/pts/ptmx");
        int unlock = 0;
        if (ioctl(m, TIOCSPTLCK, &unlock) < 0)
                child_die_errno("unlocking the console pty");
        unsigned n;
        if (ioctl(m, TIOCGPTN, &n) < 0)
                child_die_errno("TIOCGPTN");
        snprintf(slave_path, sz, "/dev/pts/%u", n);
        char rel[32];
        snprintf(rel, sizeof rel, "pts/%u", n);
        const char *base;
        int dfd = parent_dir_fd("/dev/console", &base);
        if (dfd < 0)
                child_die_errno("preparing /dev/console");
        (void) unlinkat(dfd, base, 0);
        if (symlinkat(rel, dfd, base) < 0)
                child_die_errno("linking /dev/console to %s", rel);
        close(dfd);
        return m;
}

static struct termios saved_tio;
static int saved_tio_ok;

void console_raw(void) {
        if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_tio) != 0)
                return;
        struct termios raw = saved_tio;
        cfmakeraw(&raw);
        raw.c_oflag = saved_tio.c_oflag; /* keep output processing of the host side as it is */
        raw.c_oflag &= ~(tcflag_t) OPOST;
        if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0)
                saved_tio_ok = 1;
}

void console_restore(void) {
        if (saved_tio_ok)
                (void) tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
        saved_tio_ok = 0;
}

void console_copy_winsize(int master) {
        struct winsize ws;
        /* a fixed size (an OCI bundle's consoleSize) wins over the terminal's, also when that one is resized */
        if (plan.win_cols) {
                ws = (struct winsize) { .ws_row = (unsigned short) plan.win_rows, .ws_col = (unsigned short) plan.win_cols };
                (void) ioctl(master, TIOCSWINSZ, &ws);
                return;
        }
        if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 || ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0)
                (void) ioctl(master, TIOCSWINSZ, &ws);
}

size_t console_escapes(Escapes *e, const char *buf, size_t n) {
        size_t start = 0;
        for (size_t k = 0; k < n; k++) {
                unsigned char ch = (unsigned char) buf[k];
                if (e->prefix) {
                        e->prefix = 0;
                        if (ch == 'p' || ch == 'r') {
                                ctl_printf("escape %s\n", ch == 'p' ? "poweroff" : "reboot");
                                start = k + 1;
                                e->count = 0;
                                continue;
                        }
                }
                if (ch == 0x1d) {
                        uint64_t t = now_ms();
                        if (e->count == 0 || t - e->first > 1000) {
                                e->count = 0;
                                e->first = t;
                        }
                        e->count++;
                        if (e->count == 2)
                                e->prefix = 1;
                        if (e->count >= 3) {
                                e->prefix = 0;
                                ctl_printf("escape kill\n");
                                e->count = 0;
                                start = k + 1;
                        }
                } else if (!e->prefix)
                        e->count = 0;
        }
        return start;
}
