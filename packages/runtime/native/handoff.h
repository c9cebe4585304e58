/*
 * Hand-over: the helper in nspawn's place. When nothing needs Node after the start (src/handoff.ts decides), nspawn
 * replaces its own process with the helper (execve, the plan in a memfd) instead of starting it as a child and
 * waiting: no fork of Node, no Node tear-down at the end. The helper then does what Node would have done around the
 * container, all of it given as data by the plan: the events Node would have read are acted on here (warnings
 * printed, the ^] escapes sent, the first error kept), SIGINT/SIGTERM/SIGHUP are handled as run.ts handles them, and
 * after the end the scope is removed, the end message printed (texts from the plan) and the exit status taken as
 * run.ts maps it. A reboot (PID 1 killed by SIGHUP) starts nspawn again with the command line the plan carries.
 */
#pragma once
#include <stddef.h>
#include <sys/types.h>

#include "util.h"

typedef struct {
        int on;               /* the plan has its hand-over record */
        int quiet;            /* -q: no end messages but errors */
        int kill_signal;      /* the first SIGINT/SIGTERM sends it (0: SIGKILL at once) */
        int keep_unit;        /* --keep-unit: a reboot ends with 133 */
        StrList rm;           /* the scope's directories to remove */
        const char *kill_file;/* cgroup.kill of the unified scope */
        StrList slices;       /* machine.slice directories to try to remove once the scope is gone */
        const char *marker;   /* the file that says an nspawn made machine.slice */
        const char **reexec;  /* the command line that starts nspawn again for a reboot (NULL-terminated) */
        size_t n_reexec;
        const char *msg_ok, *msg_fail, *msg_shutdown, *msg_reboot, *msg_signal, *msg_halt;
        const char **signames; /* signalName() of signals 1..n */
        size_t n_signames;
} HandoffPlan;

/* set by main for --handoff: events go to ho_event() instead of Node */
extern int handoff_on;

/* One line the helper would have sent Node: acted on here. */
void ho_event(char *line);

/* SIGINT/SIGTERM/SIGHUP to the handed-over helper, the container's PID 1 being PID */
void ho_signal(int signo, pid_t pid);

/* A start that failed before the container ran: the scope goes, -x's leftovers go, the error is said. */
void ho_early_exit(void);

/*
 * The end of a handed-over run, the container's wait STATUS: never returns. REST (-1: none) is --console=passive's
 * pty master: what it still holds goes to our stdout after the last message (not when the run starts again).
 */
void ho_finish(int status, int rest) __attribute__((noreturn));
