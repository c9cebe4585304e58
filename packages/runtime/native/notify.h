/*
 * sd_notify both ways: the container's init speaks to /run/host/notify (a socket the child binds, read here), and
 * the helper speaks to our own $NOTIFY_SOCKET in nspawn's name, as systemd-nspawn speaks to its service manager.
 */
#pragma once
#include <sys/types.h>

#include "plan.h"

/* sd_pid_notify(getppid(), MSG) to $NOTIFY_SOCKET when the plan asks for it (plan->sd_notify) */
void notify_ours(const Plan *p, const char *msg);

/* nspawn_dispatch_notify_fd(): the datagrams waiting on FD; only the container's PID 1 (LEADER) counts. READY=1 and
 * STATUS= go to Node ("notify ..." lines) and on to our own $NOTIFY_SOCKET. */
void notify_dispatch(const Plan *p, int fd, pid_t leader);
