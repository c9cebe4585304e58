/*
 * The seccomp filter of the container's payload (seccomp.h). It is installed after the resource limits, before
 * PR_SET_KEEPCAPS, the UID change and the capability drop: the container's root still has CAP_SYS_ADMIN (in its user
 * namespace) at that point, so no PR_SET_NO_NEW_PRIVS is needed, as in systemd. An OCI container with
 * noNewPrivileges gets it last instead, after no_new_privs and just before exec, as runc loads it (`late`).
 */
#define _GNU_SOURCE
#include "seccomp.h"

#include <errno.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "control.h"

int seccomp_plan_set(SeccompPlan *s, const unsigned char *b, size_t n, char *err, size_t errsz) {
        if (n == 0 || n % 8 != 0 || n / 8 > BPF_MAXINSNS) {
                snprintf(err, errsz, "a seccomp program of %zu bytes (8 per instruction, at most %d instructions)", n, BPF_MAXINSNS);
                return -1;
        }
        size_t count = n / 8;
        struct sock_filter *prog = xcalloc(count, sizeof *prog);
        for (size_t i = 0; i < count; i++, b += 8) {
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

/* is_seccomp_available(): PR_GET_SECCOMP works, and PR_SET_SECCOMP knows filter mode (EFAULT for a NULL program). */
static int seccomp_available(void) {
        if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0)
                return 0;
        return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, NULL, 0, 0) < 0 && errno == EFAULT;
}

int seccomp_install(const SeccompPlan *s) {
        if (!s->prog || !seccomp_available())
                return 0;
        for (size_t i = 0; i < s->warnings.n; i++)
                child_warning(s->warnings.v[i]);
        struct sock_fprog fp = { .len = s->len, .filter = s->prog };
        if (s->flags)
                return (int) syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, s->flags, &fp);
        return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fp, 0, 0);
}
