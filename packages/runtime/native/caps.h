/*
 * Capabilities and the session keyring of the container's payload. No policy here: the five capability sets come
 * computed in the plan (src/caps.ts, after systemd-nspawn 252's drop_capabilities() and capability_quintet_mangle());
 * caps.c only applies them, in the order of systemd's capability_quintet_enforce() (see there).
 */
#pragma once
#include <stdint.h>

typedef struct {
        int set;
        uint64_t bounding, effective, permitted, inheritable, ambient;
} CapsPlan;

/* PR_SET_KEEPCAPS before the UID change, as inner_child() does: the permitted set survives setresuid() */
int caps_keep_across_uid_change(void);

/* Applies the planned sets. On failure returns -1 with errno set and *WHAT naming the step. */
int caps_apply(const CapsPlan *q, const char **what);

/* setup_keyring(): a new anonymous session keyring; 0 also where the kernel has none or does not allow it */
int keyring_join_session(void);
