/*
 * The seccomp filter of the container's payload. Included by nspawn-helper.c (static functions only, no state).
 * No policy here: the program comes built in the plan (src/seccomp/, after systemd-nspawn 252's setup_seccomp()
 * and seccomp_suppress_sync()) as the bytes of a struct sock_filter array, in hex. This file decodes it and
 * installs it where inner_child() installs its filters: after the resource limits, before PR_SET_KEEPCAPS, the
 * UID change and the capability drop. The container's root still has CAP_SYS_ADMIN (in its user namespace) at
 * that point, so no PR_SET_NO_NEW_PRIVS is needed, as in systemd.
 */
#include <linux/filter.h>
#include <linux/seccomp.h>

#define SECCOMP_MAX_WARNINGS 16

typedef struct {
        struct sock_filter *prog; /* NULL: no filter planned */
        unsigned short len;
        const char *warnings[SECCOMP_MAX_WARNINGS];
        int n_warnings;
} SeccompPlan;

/* A "seccomp" plan entry: 8 bytes per instruction (u16 code, u8 jt, u8 jf, u32 k; little-endian), in hex.
 * Returns -1 when it is not a program the kernel could take. */
static int seccomp_plan_parse(SeccompPlan *s, const char *hex) {
        size_t n = strlen(hex);
        if (n == 0 || n % 16 != 0 || n / 16 > BPF_MAXINSNS)
                return -1;
        size_t count = n / 16;
        struct sock_filter *prog = calloc(count, sizeof *prog);
        if (!prog)
                return -1;
        for (size_t i = 0; i < count; i++) {
                unsigned char b[8];
                if (decode_hex(hex + i * 16, b, 8) < 0) {
                        free(prog);
                        return -1;
                }
                prog[i].code = (uint16_t) (b[0] | b[1] << 8);
                prog[i].jt = b[2];
                prog[i].jf = b[3];
                prog[i].k = (uint32_t) b[4] | (uint32_t) b[5] << 8 | (uint32_t) b[6] << 16 | (uint32_t) b[7] << 24;
        }
        free(s->prog);
        s->prog = prog;
        s->len = (unsigned short) count;
        return 0;
}

/* A "seccompwarn" plan entry: what systemd-nspawn logs while it builds its filters, reported at install time. */
static void seccomp_plan_warning(SeccompPlan *s, const char *text) {
        if (s->n_warnings < SECCOMP_MAX_WARNINGS)
                s->warnings[s->n_warnings++] = text;
}

/* is_seccomp_available(): PR_GET_SECCOMP works, and PR_SET_SECCOMP knows filter mode (EFAULT for a NULL program). */
static int seccomp_available(void) {
        if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0)
                return 0;
        return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, NULL, 0, 0) < 0 && errno == EFAULT;
}

/* Sends the planned warnings on FD ("W" lines of the child's socket) and installs the program. A kernel without
 * seccomp filters is skipped, as systemd does; any other failure returns -1 with errno set. */
static int seccomp_install(const SeccompPlan *s, int fd) {
        if (!s->prog || !seccomp_available())
                return 0;
        for (int i = 0; i < s->n_warnings; i++) {
                char buf[512];
                int n = snprintf(buf, sizeof buf, "W%s", s->warnings[i]);
                if (fd >= 0 && n > 0)
                        (void) !send(fd, buf, (size_t) (n < (int) sizeof buf ? n : (int) sizeof buf - 1), MSG_NOSIGNAL);
        }
        struct sock_fprog fp = { .len = s->len, .filter = s->prog };
        return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fp, 0, 0);
}
