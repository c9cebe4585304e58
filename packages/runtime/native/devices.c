/* The container's device policy on cgroup2 (devices.h). */
#define _GNU_SOURCE
#include "devices.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

int devices_plan_set(DevicesPlan *d, int optional, const char *cgroup, const unsigned char *b, size_t n, char *err, size_t errsz) {
        if (n == 0 || n % 8 != 0 || !*cgroup) {
                snprintf(err, errsz, "a device program of %zu bytes for cgroup '%s' (8 bytes per instruction)", n, cgroup);
                return -1;
        }
        unsigned count = (unsigned) (n / 8);
        struct bpf_insn *insns = xcalloc(count, sizeof *insns);
        for (unsigned i = 0; i < count; i++, b += 8) {
                insns[i].code = b[0];
                insns[i].dst_reg = b[1] & 0xf;
                insns[i].src_reg = b[1] >> 4;
                insns[i].off = (int16_t) (b[2] | b[3] << 8);
                insns[i].imm = (int32_t) ((uint32_t) b[4] | (uint32_t) b[5] << 8 | (uint32_t) b[6] << 16 | (uint32_t) b[7] << 24);
        }
        free(d->insns);
        d->insns = insns;
        d->n = count;
        d->cgroup = cgroup;
        d->optional = optional;
        return 0;
}

static int devices_bpf(int cmd, union bpf_attr *attr) {
        return (int) syscall(SYS_bpf, cmd, attr, sizeof *attr);
}

/* Loads the program and attaches it to the planned cgroup. On failure returns -1 with a message in ERR (with the
 * verifier's log when the kernel refused the program). */
int devices_attach(DevicesPlan *d, char *err, size_t errsz) {
        static char log[16384];
        union bpf_attr a;
        if (!d->insns)
                return 0;
        memset(&a, 0, sizeof a);
        a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
        a.insn_cnt = d->n;
        a.insns = (uint64_t) (uintptr_t) d->insns;
        a.license = (uint64_t) (uintptr_t) "Dual MIT/GPL";
        strncpy(a.prog_name, "nspawn_devices", sizeof a.prog_name - 1);
        d->prog_fd = devices_bpf(BPF_PROG_LOAD, &a);
        if (d->prog_fd < 0) {
                int e = errno;
                /* again with the verifier's log, for the message */
                log[0] = 0;
                a.log_level = 1;
                a.log_buf = (uint64_t) (uintptr_t) log;
                a.log_size = sizeof log;
                int fd = devices_bpf(BPF_PROG_LOAD, &a);
                if (fd >= 0)
                        close(fd);
                for (char *q = log; *q; q++)
                        if (*q == '\n')
                                *q = ' ';
                snprintf(err, errsz, "Failed to load the device policy's BPF program: %s (%s)%s%s", strerror(e),
                         errno_name(e), *log ? ": " : "", log);
                return -1;
        }
        (void) fcntl(d->prog_fd, F_SETFD, FD_CLOEXEC);
        d->cgroup_fd = open(d->cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (d->cgroup_fd < 0) {
                snprintf(err, errsz, "Failed to open cgroup %s: %s (%s)", d->cgroup, strerror(errno), errno_name(errno));
                return -1;
        }
        memset(&a, 0, sizeof a);
        a.target_fd = (uint32_t) d->cgroup_fd;
        a.attach_bpf_fd = (uint32_t) d->prog_fd;
        a.attach_type = BPF_CGROUP_DEVICE;
        a.attach_flags = BPF_F_ALLOW_MULTI;
        if (devices_bpf(BPF_PROG_ATTACH, &a) < 0) {
                snprintf(err, errsz, "Failed to attach the device policy's BPF program to cgroup %s: %s (%s)", d->cgroup,
                         strerror(errno), errno_name(errno));
                close(d->cgroup_fd);
                d->cgroup_fd = -1;
                return -1;
        }
        return 0;
}

/* The container's side of the clone: the descriptors are the host's business. */
void devices_close(DevicesPlan *d) {
        if (d->prog_fd >= 0)
                close(d->prog_fd);
        if (d->cgroup_fd >= 0)
                close(d->cgroup_fd);
        d->prog_fd = d->cgroup_fd = -1;
}

/* After the container: detach the program (with BPF_F_ALLOW_MULTI, by its descriptor) and let it go. */
void devices_detach(DevicesPlan *d) {
        if (d->prog_fd >= 0 && d->cgroup_fd >= 0) {
                union bpf_attr a;
                memset(&a, 0, sizeof a);
                a.target_fd = (uint32_t) d->cgroup_fd;
                a.attach_bpf_fd = (uint32_t) d->prog_fd;
                a.attach_type = BPF_CGROUP_DEVICE;
                (void) devices_bpf(BPF_PROG_DETACH, &a);
        }
        devices_close(d);
}
