/*
 * Forwarding a pty master's output.
 *
 * The master is watched edge-triggered through an epoll instance of its own, which goes into the caller's poll()
 * set: a hung-up master (no slave open: the container's PID 1 exited, or is between programs) reports POLLHUP to
 * a plain poll() without end, and reading it gives EIO. Edge-triggered, the hang-up is reported once and the master
 * wakes the caller again only when a slave writes to it, as systemd's ptyfwd does with sd-event. No sleeping and no
 * spinning while the container is without a console, and the end of the container is seen at once.
 */
#pragma once

/* An epoll instance watching MASTER for input, edge-triggered; -1 on error. */
int ptyfwd_watch(int master);

/*
 * Copies everything the (non-blocking) MASTER has now to OUT, up to EAGAIN or, once no slave is open, EIO (what the
 * container wrote before its end stays readable until then). *LAST (when not NULL) gets the last byte copied.
 * Returns 1 when the master is hung up, else 0. --console=passive's rest at the end, as systemd-nspawn 252's
 * copy_bytes(master, STDOUT_FILENO) in main().
 */
int ptyfwd_copy(int master, int out, int *last);

/*
 * After the watch EP polled readable: takes its event and copies everything the (non-blocking) MASTER has to OUT.
 * *LAST (when not NULL) gets the last byte copied. Returns 1 when the master is hung up (EIO: no slave open), else 0.
 */
int ptyfwd_drain(int ep, int master, int out, int *last);
