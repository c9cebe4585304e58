/*
 * The seccomp filter of the container's payload. No policy here: the program comes built in the plan (src/seccomp/,
 * after systemd-nspawn 252's setup_seccomp() and seccomp_suppress_sync()) as the bytes of a struct sock_filter array;
 * seccomp.c installs it where inner_child() installs its filters.
 */
#pragma once
#include <linux/filter.h>
#include <stddef.h>

#include "util.h"

typedef struct {
        struct sock_filter *prog; /* NULL: no filter planned */
        unsigned short len;
        StrList warnings;         /* what systemd-nspawn logs while it builds its filters, reported at install time */
        unsigned flags;           /* seccomp(2)'s SECCOMP_FILTER_FLAG_* (an OCI profile's flags); 0: prctl() as systemd */
        int late;                 /* installed last, after no_new_privs, just before exec (runc with noNewPrivileges) */
} SeccompPlan;

/* The plan's program: N bytes, 8 per instruction (u16 code, u8 jt, u8 jf, u32 k; little-endian). Returns -1 with ERR
 * when it is not a program the kernel could take. */
int seccomp_plan_set(SeccompPlan *s, const unsigned char *bytes, size_t n, char *err, size_t errsz);

/* Reports the planned warnings (to the outer helper) and installs the program. A kernel without seccomp filters is
 * skipped, as systemd does; any other failure returns -1 with errno set. */
int seccomp_install(const SeccompPlan *s);
