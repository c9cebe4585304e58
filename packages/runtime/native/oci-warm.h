/*
 * nspawn-oci's front end and the warm monitor (@nspawn/oci's monitor-server.ts): a create hands its container to
 * the Node process already running for --root instead of starting one (a Node start costs about what runc's whole
 * create does). The front end starts the helper itself, so the container stays the caller's descendant, and the
 * monitor drives it over its control socket. No monitor, or one that cannot serve this call ("retry"): the cold way
 * (oci-create.c); `start` then starts one for the next create (not create: its caller, conmon, waits for every
 * process it is the subreaper of before its exit command runs).
 */
#pragma once
#include "oci-front.h"

/*
 * Create's monitoring by the warm monitor of C's root. ARGS_JSON: the monitor's arguments (MonitorArgs), NFDS
 * descriptors from 3 on for the container, CONSOLE the console socket or NULL. Returns -1 when no monitor answers
 * there, -2 when it may not serve this call (it said "retry", or this call has no helper of ours): nothing done then,
 * the caller goes the cold way. Else fills REPORT with the monitor's word ("created PID", "error MESSAGE" or nothing)
 * and returns 0; the helper is left running only after "created" (else it has been reaped).
 */
int warm_create(Call *c, const char *args_json, int nfds, const char *console, Buf *report);

/* Starts the warm monitor of C's root in the background when none answers there ($NSPAWN_OCI_MONITOR_IDLE=0: never) */
void warm_start(Call *c);
