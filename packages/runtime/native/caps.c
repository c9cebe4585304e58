/*
 * Capabilities and the session keyring of the container's payload (caps.h). No policy here either: the five
 * capability sets come computed in the plan (src/caps.ts, after systemd-nspawn 252's drop_capabilities() and
 * capability_quintet_mangle()); this file only applies them, in the order of systemd's capability_quintet_enforce():
 *
 *   1. the ambient set: raise what it needs in inheritable and permitted, then PR_CAP_AMBIENT_RAISE each planned
 *      capability and PR_CAP_AMBIENT_LOWER every other one;
 *   2. capset() of effective, permitted and inheritable as planned, plus CAP_SETPCAP for the moment;
 *   3. PR_CAPBSET_DROP of every capability the bounding set does not keep;
 *   4. capset() once more without the borrowed CAP_SETPCAP.
 *
 * The caller sets PR_SET_KEEPCAPS before it changes the UID (caps_keep_across_uid_change()), so a non-root
 * payload still has the permitted capabilities steps 1-3 need.
 */
#define _GNU_SOURCE
#include "caps.h"

#include <errno.h>
#include <linux/capability.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef KEYCTL_JOIN_SESSION_KEYRING
#define KEYCTL_JOIN_SESSION_KEYRING 1
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_IS_SET 1
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_LOWER 3
#endif

/* The highest capability this kernel knows (PR_CAPBSET_READ says EINVAL above it). */
static int caps_last_cap(void) {
        int last = -1;
        for (int i = 0; i < 64; i++) {
                if (prctl(PR_CAPBSET_READ, (unsigned long) i, 0, 0, 0) < 0)
                        break;
                last = i;
        }
        return last;
}

static int caps_get(uint64_t *eff, uint64_t *prm, uint64_t *inh) {
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
        struct __user_cap_data_struct d[2];
        memset(d, 0, sizeof d);
        if (syscall(SYS_capget, &h, d) < 0)
                return -1;
        *eff = (uint64_t) d[0].effective | ((uint64_t) d[1].effective << 32);
        *prm = (uint64_t) d[0].permitted | ((uint64_t) d[1].permitted << 32);
        *inh = (uint64_t) d[0].inheritable | ((uint64_t) d[1].inheritable << 32);
        return 0;
}

static int caps_set(uint64_t eff, uint64_t prm, uint64_t inh) {
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
        struct __user_cap_data_struct d[2] = {
                { .effective = (uint32_t) eff, .permitted = (uint32_t) prm, .inheritable = (uint32_t) inh },
                { .effective = (uint32_t) (eff >> 32), .permitted = (uint32_t) (prm >> 32), .inheritable = (uint32_t) (inh >> 32) },
        };
        return (int) syscall(SYS_capset, &h, d);
}

/* PR_SET_KEEPCAPS before the UID change, as inner_child() does: the permitted set survives setresuid(). */
int caps_keep_across_uid_change(void) {
        return prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
}

/* Applies the planned sets. On failure returns -1 with errno set and *what naming the step. */
int caps_apply(const CapsPlan *q, const char **what) {
        int last = caps_last_cap();
        uint64_t known = last >= 63 ? ~UINT64_C(0) : (UINT64_C(1) << (last + 1)) - 1;
        uint64_t bnd = q->bounding & known, eff = q->effective & known, prm = q->permitted & known,
                 inh = q->inheritable & known, amb = q->ambient & known;
        uint64_t setpcap = UINT64_C(1) << CAP_SETPCAP;
        uint64_t ce, cp, ci;

        *what = "capget()";
        if (caps_get(&ce, &cp, &ci) < 0)
                return -1;

        /* 1. ambient: a capability can only be ambient while it is inheritable and permitted */
        if ((amb & ~(cp & ci)) != 0) {
                *what = "raising inheritable capabilities for the ambient set";
                if (caps_set(ce, cp | amb, ci | amb) < 0)
                        return -1;
        }
        for (int i = 0; i <= last; i++) {
                uint64_t m = UINT64_C(1) << i;
                if (amb & m) {
                        if (prctl(PR_CAPBSET_READ, (unsigned long) i, 0, 0, 0) != 1)
                                continue; /* not in the bounding set: suppressed, like capability_ambient_set_apply() */
                        *what = "PR_CAP_AMBIENT_RAISE";
                        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, (unsigned long) i, 0, 0) < 0)
                                return -1;
                } else {
                        int r = prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, (unsigned long) i, 0, 0);
                        *what = "PR_CAP_AMBIENT_LOWER";
                        if (r > 0 && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_LOWER, (unsigned long) i, 0, 0) < 0)
                                return -1;
                }
        }

        /* 2. the planned sets, with CAP_SETPCAP borrowed for PR_CAPBSET_DROP when it is still permitted */
        *what = "capset()";
        if (caps_set(eff | setpcap, prm | setpcap, inh) < 0 && caps_set(eff, prm, inh) < 0)
                return -1;

        /* 3. the bounding set */
        for (int i = 0; i <= last; i++) {
                if (bnd & (UINT64_C(1) << i))
                        continue;
                if (prctl(PR_CAPBSET_DROP, (unsigned long) i, 0, 0, 0) < 0 && prctl(PR_CAPBSET_READ, (unsigned long) i, 0, 0, 0) != 0) {
                        *what = "PR_CAPBSET_DROP";
                        return -1;
                }
        }

        /* 4. give CAP_SETPCAP back unless it is planned */
        *what = "capset()";
        if (caps_set(eff, prm, inh & bnd) < 0)
                return -1;
        return 0;
}

/* setup_keyring(): a new anonymous session keyring, so that the keys of the session nspawn was started from are
 * not the container's. No keyring support in the kernel, or not allowed: nothing to protect, go on. */
int keyring_join_session(void) {
        if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, 0, 0, 0, 0) >= 0)
                return 0;
        if (errno == ENOSYS || errno == EPERM || errno == EACCES)
                return 0;
        return -1;
}
