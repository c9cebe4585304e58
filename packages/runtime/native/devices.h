/*
 * The container's device policy on cgroup2. No policy here: the program comes built in the plan (src/devices/, after
 * systemd's DevicePolicy=closed and the DeviceAllow= list systemd-nspawn 252 registers) as the bytes of a struct
 * bpf_insn array, with the container's directory in the unified hierarchy. The outer helper loads it as a
 * BPF_PROG_TYPE_CGROUP_DEVICE program and attaches it there (BPF_F_ALLOW_MULTI) before it clones, so the container's
 * PID 1 never runs without it; it keeps the program's descriptor (never inherited by the container) and detaches it
 * when the container has ended. If the helper is killed, the attachment goes with the cgroup when Node removes it.
 */
#pragma once
#include <linux/bpf.h>
#include <stddef.h>

typedef struct {
        struct bpf_insn *insns; /* NULL: no program planned */
        unsigned n;
        const char *cgroup;
        int optional;
        int prog_fd;   /* -1 until loaded */
        int cgroup_fd; /* -1 until attached */
} DevicesPlan;

#define DEVICES_PLAN_INIT { .prog_fd = -1, .cgroup_fd = -1 }

/* The plan's program (8 bytes per instruction, little-endian) for CGROUP; -1 with ERR when it cannot be one. */
int devices_plan_set(DevicesPlan *d, int optional, const char *cgroup, const unsigned char *bytes, size_t n, char *err, size_t errsz);

/* Loads the program and attaches it; -1 with a message in ERR (with the verifier's log when the kernel refused it). */
int devices_attach(DevicesPlan *d, char *err, size_t errsz);

/* The container's side of the clone: the descriptors are the host's business. */
void devices_close(DevicesPlan *d);

/* After the container: detach the program and let it go. */
void devices_detach(DevicesPlan *d);
