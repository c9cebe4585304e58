/*
 * Small utilities of the helper: whole writes, one-write files, a monotonic clock, memory that grows or dies, the
 * errno name. No policy, no state.
 */
#pragma once
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* write(2) of all N bytes of P to FD (EINTR and EAGAIN waited out); 0, or -1 with errno */
int write_all(int fd, const void *p, size_t n);

/* read(2) of exactly N bytes into P from FD; N, fewer at EOF (0: nothing at all), or -1 with errno */
ssize_t read_full(int fd, void *p, size_t n);

/* S written to the existing file P (a cgroup, proc or sysfs file) in one write(2); 0, or -1 with errno */
int write_small_file(const char *p, const char *s);

/* CLOCK_MONOTONIC in milliseconds */
uint64_t now_ms(void);

/* the errno's name ("ENOENT"), "?" when the C library does not know it */
const char *errno_name(int e);

/* calloc() that never returns NULL: out of memory ends the helper with a message */
void *xcalloc(size_t n, size_t size);

/*
 * Room for one more element in the array *P of *N elements of SIZE bytes (capacity *CAP), grown by doubling; returns
 * a pointer to the new element (zeroed) and counts it. Out of memory ends the helper.
 */
void *grow_one(void *p, size_t *n, size_t *cap, size_t size);
#define PUSH(arr, n, cap) ((arr) = grow_one((arr), &(n), &(cap), sizeof *(arr)), &(arr)[(n) - 1])

/* a growing list of strings (not owned) */
typedef struct {
        const char **v;
        size_t n, cap;
} StrList;

/* appends S */
void strlist_push(StrList *l, const char *s);

/* TEXT and a newline on stderr (nspawn's own messages, when the helper speaks in its place) */
void say(const char *text);

/* remembers our argument area (main's ARGC, ARGV) for rename_process() */
void rename_process_init(int argc, char **argv);

/* like systemd's rename_process(): NAME as the thread's name and the whole argument area, so that ps(1) and
 * /proc/PID/cmdline show it only */
void rename_process(const char *name);
