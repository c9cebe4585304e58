/*
 * The plan the helper executes: what src/plan.ts decided, decoded from its message (plan-decode.c) into plain data.
 * The helper has no policy: every path, flag and value comes from here.
 */
#pragma once
#define _GNU_SOURCE
#include <sched.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "caps.h"
#include "cgroup-ops.h"
#include "cgroup.h"
#include "devices.h"
#include "ephemeral.h"
#include "handoff.h"
#include "image.h"
#include "locks.h"
#include "netcfg.h"
#include "nsjoin.h"
#include "seccomp.h"
#include "util.h"
#include "wire.h"

/* Op flags; keep in sync with OpFlag in src/protocol.ts. */
#define OPF_MKDIR 1u        /* create the target (and parents) as a directory */
#define OPF_TOUCH 2u        /* create the target as an empty file (parents as directories) */
#define OPF_SRC_IN_ROOT 4u  /* the source is a path inside the container root */
#define OPF_OPTIONAL 8u     /* failure is not fatal */
#define OPF_RECURSIVE 16u   /* setattr: apply to the whole subtree */
#define OPF_IF_EXISTS 32u   /* skip when the source does not exist */
#define OPF_MKPOINT 64u     /* create the target like the source: a directory for a directory, else a file */
#define OPF_WARN 128u       /* with OPF_OPTIONAL: a failure is reported as a warning */

typedef enum {
        OP_MOUNT, OP_REMOUNT, OP_SETATTR, OP_MKDIR, OP_MKNOD, OP_SYMLINK, OP_WRITE, OP_RMFILE, OP_CHOWN, OP_UMOUNT,
        OP_RMDIR, OP_CONSOLE, OP_NOTIFY, OP_BLOB, OP_CHMOD, OP_KIND_COUNT
} OpKind;

/* the kinds' names, as src/protocol.ts's OpKind spells them */
extern const char *const op_kind_names[OP_KIND_COUNT];

/* One step of the container's file system setup. Paths in target are inside the container root. */
typedef struct {
        OpKind kind;
        const char *src, *target, *fstype, *data; /* "" when not given */
        unsigned flags;
        unsigned long mflags;
        unsigned mode;
        unsigned long long dev;
        int tree_fd; /* a detached copy of a host bind source, made before the clone (-1: none) */
        int skip;    /* the source was optional and missing */
} Op;

typedef struct {
        int res;
        struct rlimit lim;
} Rlim;

typedef struct {
        unsigned uid, host_uid, gid, host_gid;
} BindMap;

typedef struct {
        const unsigned char *data; /* points into the message */
        size_t size;
} Blob;

typedef struct {
        const char *path, *argv0;
} Fallback;

typedef enum { CONSOLE_PIPE, CONSOLE_INTERACTIVE, CONSOLE_READ_ONLY, CONSOLE_PASSIVE } ConsoleMode;

typedef struct {
        const char *root;
        unsigned long clone_flags;
        int sync;               /* wait for "go" from Node after the clone */
        int late_sync;          /* with sync: the child waits after its setup, just before seccomp and exec (OCI create) */
        int leave;              /* with late_sync: once the payload runs, we leave it to our reaper (OCI create) */
        int bind_copies_first;  /* host binds keep their copies' (earlier) mount IDs: no renewal, no grace period each */
        int console_socket;     /* -1, or a connected AF_UNIX socket: the console's master goes there (SCM_RIGHTS) */
        int *pass_fds;          /* our fds that become 3, 4, ... of the payload (OCI --preserve-fds, LISTEN_FDS) */
        size_t n_pass_fds;
        int oci_fds;            /* the ocifds record was given: fds from 3 + n_pass_fds on are closed at exec */
        int reset_loginuid;     /* unset the helper's audit login UID before the clone (reset_audit_loginuid()) */
        int cgns_late;          /* PID 1 unshares its cgroup namespace after "go" (systemd put it in payload/ meanwhile) */
        size_t cg_from, cg_to;  /* with cgns_late: ops[cg_from..cg_to) (the cgroup file systems) run after "go" */
        const char *hostname;   /* NULL: leave it */
        Op *ops;
        size_t n_ops, cap_ops;
        ConsoleMode console;
        int personality;        /* -1: leave it */
        Rlim *rlimits;
        size_t n_rlimits, cap_rlimits;
        long uid, gid;          /* -1: leave them */
        gid_t *groups;
        size_t n_groups;
        int set_groups;         /* setgroups() with the list (an empty one too) */
        const char *chdir;
        int pid2, loopback, search_path;
        const char **env;       /* NULL-terminated */
        size_t n_env;
        const char **argv;      /* NULL-terminated; empty: try the fallbacks */
        size_t n_argv;
        Fallback *fallback;
        size_t n_fallback, cap_fallback;
        const char **fallback_args; /* after argv0 for each fallback (init's arguments) */
        size_t n_fallback_args;
        const char **stub_env;  /* the --as-pid2 stub init's environment */
        size_t n_stub_env;
        int sd_notify;          /* talk sd_notify to our own $NOTIFY_SOCKET */
        int notify_ready;       /* READY=1 only when the container's init sends it */
        int restart_exits;      /* a reboot ends nspawn (exit 133): STOPPING=1 with "Restarting..." */
        int final_newline;      /* end the forwarded console output with a newline if it did not */
        unsigned win_cols, win_rows; /* the console's fixed size (0: the caller's terminal's), console.c */
        int survive;            /* outlive whoever started us (nspawnd: its containers survive its restart) */
        const char *stdout_path; /* our stdout and stderr become this file (appending) */
        int no_new_privs;
        int oom_set, oom_score_adj;
        cpu_set_t *cpus;        /* NULL: leave the affinity */
        size_t cpus_size;
        CapsPlan caps;
        const char *caps_warning;
        int session_keyring;
        SeccompPlan seccomp;
        DevicesPlan devices;
        CgroupPlan cgroup;
        NetcfgPlan net;
        NsJoinPlan nsjoin;
        LocksPlan locks;
        CgOpsPlan cgops;
        EphemeralPlan ephemeral; /* -x's snapshot or overlay, removed at the end of a hand-over */
        HandoffPlan handoff;
        int usermap;            /* the outer writes "0 SHIFT RANGE" to the child's uid_map and gid_map, then lets it go */
        unsigned usermap_shift, usermap_range;
        int idmap;              /* the root as an idmapped mount: on-disk 0..range-1 seen as shift.. (-U, map) */
        unsigned idmap_shift, idmap_range;
        int idmap_tree;         /* its detached mount, made before the clone (-1: none) */
        const char *volatile_mode; /* --volatile=yes|state|overlay (NULL: none), native/volatile.c */
        BindMap *bindmaps;      /* --bind-user: container UID/GID mapped to a host user's own (make_uid_map_string()) */
        size_t n_bindmaps, cap_bindmaps;
        Blob *blobs;            /* contents of files the "blob" ops write (credentials: any bytes, NUL too) */
        size_t n_blobs, cap_blobs;
        ImagePlan image;        /* -i: the image's mounts on the root (native/image.c) */
        int *held_fds;          /* inherited through a hand-over's exec, held (close-on-exec) until the helper exits */
        size_t n_held, cap_held;
        const char *pivot_new;     /* --pivot-root=NEW[:OLD] (NULL: none), native/pivot.c */
        const char *pivot_old;     /* OLD, NULL when the old root goes away */
} Plan;

/* sync (Node attaches before the payload runs), but for OCI create's late sync: PID 1 sets its tree up, pivots into
 * it, says "rooted" ('R') and waits there; the outer helper only then reports its PID, Node attaches (registration
 * with nspawnd or machined, network links; on a systemd host the scope and payload/) and says "go". With cgns_late (a
 * systemd host) PID 1 then makes its cgroup namespace and mounts the cgroup file systems, kept back until then. As
 * systemd-nspawn 252, whose inner child is cloned in the container's root and registered after: whoever learns the
 * PID sees the container's root (its os-release), never the host's. */
static inline int plan_rooted_gate(const Plan *p) {
        return p->sync && !p->late_sync;
}

/* the one plan of this process */
extern Plan plan;

/*
 * Reads the plan from FD (UNTIL_EOF: FD holds nothing else, a hand-over's memfd) and decodes it into `plan`, then
 * checks what the kernel will refuse later (the payload's execve() size). Returns 1; 0 when FD ended before any byte
 * (a helper started ahead of its plan that was not needed); -2 with ERR when the message itself is bad (nothing of it
 * can be trusted); -1 with ERR when the plan decoded but cannot run (what it lists to remove is known).
 */
int plan_read(int fd, int until_eof, char *err, size_t errsz);

/* M (a plan message) into `plan`, each record checked; no check of the whole (see plan_read()). -1 with ERR. */
int plan_decode(const WireMessage *m, char *err, size_t errsz);

/* Set by --decode: the plan is only read and printed, never run, so a lock descriptor it names (inherited through an
 * exec in a real hand-over) is recorded as it is, not checked to be open in this process. */
extern int plan_decode_only;

/* "nspawn-helper --decode": a message of any kind on stdin, decoded, printed as canonical JSON (the tests' view of
 * the decoder, src/protocol.test.ts). Exit status 0, or 2 with the error on stderr. */
int decode_main(void);
