/*
 * PID 1 for --as-pid2 (systemd-nspawn's stub init): reaps everything, passes the payload's exit code on, and turns
 * the systemd power signals into the matching reboot(2) so the outside sees the same result as under
 * systemd-nspawn's stub.
 */
#pragma once
#include "plan.h"

/* Forks the payload (exec_payload()) and stays as its init: never returns. */
void stub_init(const Plan *p) __attribute__((noreturn));
