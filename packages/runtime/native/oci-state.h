/*
 * nspawn-oci's front end: the state under --root, read as @nspawn/oci's state.ts reads it (one definition of the
 * format, documented in packages/oci/README.md "The state directory"):
 *
 *   ROOT/ID/              one directory per container (mode 0711), made by create, removed by delete
 *   ROOT/ID/state.json    the record, JSON, written once by the monitor, atomically (FILE.PID.tmp renamed over)
 *   ROOT/ID/start.sock    the monitor's socket while the container waits for `start` ("start\n" / "abort\n",
 *                         answered "ok\n"); its presence is the status `created`
 *
 * No lock: the record has one writer (the monitor, once, by rename), readers see the old file or the new one, and
 * the directory goes with `delete`, as runc's state.json. The status is computed, never stored: stopped when the
 * recorded process is gone (or a zombie, or its PID reused: /proc/PID/stat's start time differs), created while
 * start.sock exists, paused when a cgroup of the container is frozen, else running.
 */
#pragma once
#include "oci-json.h"

typedef struct {
        JVal *json;
        const char *oci_version, *id, *start_time, *bundle;
        long pid, monitor;
        const JVal *annotations; /* object or NULL */
        const JVal *cgroups;     /* array of strings or NULL */
        const JVal *hooks;       /* array of hook kinds the config had at create, or NULL (a record of an older build) */
} Record;

/* the error of the last failing call below (a runc-worded line) */
extern char oci_error[8192];

/* runc's check of a container ID; 0, or -1 with oci_error */
int oci_check_id(const char *id);

/* ROOT/ID, ROOT/ID/state.json, ROOT/ID/start.sock (static buffers of their own) */
const char *oci_dir(const char *root, const char *id);
const char *oci_record_file(const char *root, const char *id);
const char *oci_start_socket(const char *root, const char *id);

/* the record of ID; 0, or -1 with oci_error ("container does not exist: ID") */
int oci_load(const char *root, const char *id, Record *r);

/* /proc/PID/stat's state letter and start time (field 22); 0, or -1 when there is no such process */
int oci_proc_stat(long pid, char *state, char *start_time, size_t size);

/* whether PID is still the process with START_TIME (not gone, not a zombie, not a reused PID) */
int oci_alive(long pid, const char *start_time);

/* "created", "running", "paused" or "stopped" */
const char *oci_status(const char *root, const Record *r);

/* whether the record says that the config had hooks of KIND at create (1), had none (0), or does not say (-1) */
int oci_has_hooks(const Record *r, const char *kind);

/* PATH, or past AF_UNIX's limit the same file through /proc/self/fd of its directory (state.ts socketAddress()) */
const char *oci_socket_address(const char *path);

/* connects to the unix socket PATH, sends WORD and a newline, reads the answer to EOF into ANSWER; 0, or -1 with errno */
int oci_tell(const char *path, const char *word, char *answer, size_t size);

/* ROOT/ID and what is in it removed (no symlink followed, no other file system entered) */
void oci_remove_dir(const char *root, const char *id);

/* FILE written atomically (FILE.PID.tmp, mode 0600, renamed over); 0, or -1 with errno */
int oci_write_atomic(const char *file, const char *data);
