/*
 * nspawn-oci's front end (the program nspawn-oci-front, apart from the helper): runc's command line, served
 * natively where a Node start would cost more than the work (runc's Go binary starts in a few milliseconds, Node in
 * tens): `state`, `start`, `kill`, `delete` from the state under --root (oci-state.h), and `create`'s waiting for its
 * monitor (oci-create.c). Everything else, and every call of these it does not fully understand (an option it does
 * not know, a record of an older build, hooks to run), is the Node command's: it execs `node ENTRY ARGS...` in its
 * own place (same PID, same descriptors), so the two never disagree on a call.
 *
 *   nspawn-oci-front ENTRY ARGS...     ENTRY: nspawn-oci's Node entry (apps/cli/bin/nspawn-oci-node), passed by the
 *                                      nspawn-oci wrapper script
 */
#pragma once
#include "oci-json.h"

/* one option as the Node command's parse() keeps it */
typedef struct {
        const char *name, *value;
} Opt;

typedef struct {
        const char *entry;  /* the Node command, for everything not served here */
        char **argv;        /* our arguments after ENTRY (for the Node command) */
        const char *root, *log, *command;
        int json_log, log_fd;
        Opt *opts;          /* the command's options */
        size_t nopts;
        const char **args;  /* the command's arguments */
        size_t nargs;
} Call;

/* the last value of the command's option NAME, NULL when not given */
const char *opt(const Call *c, const char *name);
/* whether the command's option NAME is given and not "false" */
int flag(const Call *c, const char *name);

/* execs the Node command with our arguments; returns only when that fails (1, said) */
int run_node(const Call *c);

/* a failure as the Node command reports it: the log (--log, --log-format) and stderr; returns 1 */
int fail(const Call *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "ENOENT" */
const char *err_name(int e);
/* Node's message of a failed call: "ENOENT: no such file or directory, SYSCALL 'PATH'" (no PATH: without it) */
const char *node_error(int e, const char *syscall, const char *path);

/*
 * In a child about to exec, what Node's spawn() gives it (oci-create.c): FD3 at 3 (none when < 0), our 3..3+NFDS-1
 * at 4..4+NFDS-1, EXTRA (when >= 0) right after them, nothing else of ours; stdio /dev/null when QUIET (else ours);
 * a session of its own; no signal blocked or handled. _exit(127) when it cannot.
 */
void child_descriptors(int fd3, int nfds, int extra, int quiet);

/* the verbs served here; each returns the exit status (or run_node()'s) */
int verb_state(Call *c);
int verb_start(Call *c);
int verb_kill(Call *c);
int verb_delete(Call *c);
int verb_create(Call *c);
