/*
 * The helper's input format: what src/protocol.ts writes (encodePlan(), encodeExecIn(), encodeMoveBack()) and nothing
 * else reads. Only this file, wire.c and src/protocol.ts know it; keep the three in sync.
 *
 *   message = header body
 *   header  = "NSPW" u16:version (1) u16:kind u32:body-length            (12 bytes, little-endian)
 *   body    = record* END-record                                          (exactly body-length bytes)
 *   record  = u16:id u32:payload-length payload                           (the payload: the record's fields in order)
 *   fields  = u   u64                                                      (8 bytes)
 *             i   i64                                                      (8 bytes, two's complement)
 *             b   bool                                                     (1 byte, 0 or 1)
 *             s   string: u32:n, n bytes without NUL, then one NUL
 *             x   bytes:  u32:n, n bytes
 *             S   list of strings: u32:count, count strings as above
 *             U   list of u64: u32:count, count u64
 *
 * Each kind has a table of records (id, name, fields, singular or repeated, required); the decoder refuses an
 * unknown id, a singular record given twice, a missing required one, a record whose payload does not hold exactly its
 * fields, a string with a NUL or without its terminator, a body shorter or longer than its header says, anything
 * after the END record, and bytes after the message where the message is the whole input. Nothing is truncated and
 * nothing has a fixed count: lists grow as they come.
 */
#pragma once
#include <stddef.h>
#include <stdint.h>

#define WIRE_VERSION 1
#define WIRE_HEADER_SIZE 12
#define WIRE_MAX_BODY (1u << 30) /* a sanity bound on the length field, far above any plan */

enum { WIRE_KIND_PLAN = 1, WIRE_KIND_EXEC_IN = 2, WIRE_KIND_MOVE_BACK = 3 };

/* the container's plan (src/protocol.ts HelperPlan); the order of ids is the wire's, never renumber */
enum {
        P_END, P_ROOT, P_CLONE, P_SYNC, P_USERMAP, P_IDMAP, P_HOSTNAME, P_OP, P_CONSOLE, P_PERSONALITY,
        P_RLIMIT, P_UID, P_GID, P_GROUPS, P_CHDIR, P_NNP, P_OOM, P_CPUS, P_CAPS, P_CAPWARN,
        P_KEYRING, P_SECCOMP, P_SECCOMPWARN, P_CGV1, P_CGV2, P_DEVBPF, P_PID2, P_LOOPBACK, P_NETUP, P_NETADDR,
        P_NETROUTE, P_NETNS, P_SEARCH, P_ENV, P_STUBENV, P_ARGV, P_FALLBACK, P_FALLBACKARGS, P_FINALNL, P_SURVIVE,
        P_STDOUT, P_SDNOTIFY, P_LOCK, P_LOCKFD, P_RMSUBVOL, P_RMMOUNT, P_RMTREE, P_CGMKDIR, P_CGWRITE, P_CGCHOWN,
        P_HANDOFF, P_HOMSGS, P_HOSIGNAMES, P_HORM, P_HOKILL, P_HOSLICE, P_HOMARKER, P_HOREEXEC, P_NSJOIN, P_VOLATILE,
        P_BLOB, P_BINDMAP, P_IMAGE, P_HOLDFD, P_PIVOTROOT,
        P_OCIFDS, P_LATESYNC, P_CGNSLATE, P_WINSIZE, P_SECCOMPOCI, P_LOGINUID, P_BINDCOPIES,
        P_COUNT
};

/* exec-in (src/protocol.ts ExecInRequest) */
enum { X_END, X_LEADER, X_COMMAND, X_ENV, X_UID, X_GID, X_GROUPS, X_CWD, X_CGROUPS, X_PTY, X_BIND, X_CONSOLESOCK, X_PASSFDS, X_COUNT };

/* --move-back (src/protocol.ts encodeMoveBack()) */
enum { M_END, M_IFNAMES, M_COUNT };

/* One field's value. Strings point into the message (NUL-terminated there); lists are allocated. */
typedef struct {
        uint64_t u;
        int64_t i;
        int b;
        const char *s;
        const unsigned char *x; /* 'x': the bytes (unaligned) */
        size_t n;               /* 'x': bytes; 'S', 'U': elements */
        const char **strs;      /* 'S': n strings, then NULL (usable as argv/envp) */
        uint64_t *nums;         /* 'U' */
} WireValue;

#define WIRE_MAX_FIELDS 9
#define WIRE_REPEATED 1u
#define WIRE_REQUIRED 2u

typedef struct {
        const char *name;   /* for messages and dumps */
        const char *fields; /* one letter per field (see above); "" for a flag */
        unsigned flags;
} WireRecord;

typedef struct {
        uint16_t kind;
        const char *what;           /* "plan", "exec-in request", ... */
        const WireRecord *records;  /* indexed by id */
        size_t n_records;
} WireSchema;

extern const WireSchema wire_plan_schema, wire_exec_in_schema, wire_move_back_schema;

/* the schema of KIND, NULL when there is none */
const WireSchema *wire_schema(uint16_t kind);

/* one whole message, as read */
typedef struct {
        uint16_t kind;
        unsigned char *body; /* allocated */
        size_t len;
} WireMessage;

/*
 * Reads one message from FD. UNTIL_EOF: the message is all FD has (a pipe or memfd): anything after it is an error.
 * Returns 1, 0 when FD ended before its first byte (nothing was sent), or -1 with a message in ERR.
 */
int wire_read(int fd, int until_eof, WireMessage *m, char *err, size_t errsz);

/* each record, in order: V has one value per field of ID's record; returns 0, or -1 with a message in ERR */
typedef int (*WireSink)(void *ctx, unsigned id, const WireValue *v, char *err, size_t errsz);

/*
 * Checks M against its kind's schema S and passes each record to SINK. Returns 0, or -1 with a message in ERR
 * ("invalid plan: ..."). The values' strings stay valid as long as M's body.
 */
int wire_decode(const WireSchema *s, const WireMessage *m, WireSink sink, void *ctx, char *err, size_t errsz);
