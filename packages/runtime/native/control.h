/*
 * The helper's messages, the other direction from the plan:
 *   - outer helper -> Node, lines on fd 3: "pid N", "ready", "error TEXT", "warning TEXT", "escape kill|poweroff|reboot",
 *     "notify READY=1", "notify STATUS=TEXT", last "exit N" or "signal N" (src/protocol.ts parseHelperLine()); in a
 *     hand-over acted on in place (handoff.c). One message is one line: a newline inside a value becomes a space.
 *     With --console=passive's master held, "held" follows the end: Node answers "drain" (the console's rest to our
 *     stdout, after Node's message about the end) or "drop" (a reboot it follows).
 *   - container child -> outer helper, datagrams on the sync socket: "E" TEXT (an error, the child then exits),
 *     "W" TEXT (a warning), "G" (set up, waiting for start: OCI create's late sync), "R" (in the container's root,
 *     waiting for "go": a systemd host's registration, plan_rooted_gate()), and descriptors tagged "P" (the
 *     console's pty master) and "N" (the notify socket). The outer helper reports "pid N" after "G" or "R" there.
 */
#pragma once
#include <stddef.h>

#define CTL_FD 3

/* one line to Node (or, handed over, to ho_event()); FMT ends with "\n" */
void ctl_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* the child's end of the child<->outer socket (-1 in the outer helper) */
extern int child_sync_fd;
/* the child's errors go to its stderr too (OCI create left to a subreaper: nobody else reads them once we exec) */
extern int child_errors_to_stderr;

/* an error of the child, for the outer helper to pass on (on stderr when there is no socket) */
void child_error(const char *msg);

/* a warning of the child, for the outer helper to pass on */
void child_warning(const char *msg);

/* "FMT: strerror(errno)" as a warning */
void child_warn_errno(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "FMT: strerror(errno) (ENAME)" as the child's error, then _exit(1) */
void child_die_errno(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* passes FD over SOCK, tagged: 'P' the console's pty master, 'N' the notify socket; 0 or -1 */
int send_fd(int sock, int fd, char tag);
/* FD over SOCK (SCM_RIGHTS) with DATA (LEN bytes, at least one) as the message; -1 with errno on failure */
int send_fd_with(int sock, int fd, const void *data, size_t len);

/* one datagram of SOCK into BUF (NUL-terminated), a descriptor that came with it into *FD_OUT; as recvmsg() */
int recv_msg(int sock, char *buf, size_t sz, int *fd_out);
