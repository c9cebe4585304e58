/*
 * The container's side (inner_child() and the container part of outer_child() of systemd-nspawn): after the clone,
 * in the new namespaces, it waits for the go, binds the tree onto itself, runs the plan's operations, pivots into the
 * tree, takes the console, sets the hostname, resource limits, seccomp filter, user and capabilities, and executes
 * the payload. Failures go to the outer helper as one error message each ("E", control.h), and end the child.
 */
#pragma once
#include "plan.h"

/* the child of the clone: never returns */
void child_main(Plan *p) __attribute__((noreturn));

/* execve() of the payload (argv, searched in the container's PATH when asked), else each fallback in turn (-b's
 * inits, the shells); never returns */
void exec_payload(const Plan *p) __attribute__((noreturn));
