/*
 * Image locks held by the helper. The plan may list lock files that the helper takes before anything else and holds
 * for as long as it lives, that is for the container's whole life, also when it runs in nspawn's place (handoff.c):
 * make_lock_file() and release_lock_file() of systemd 252, so that systemd-nspawn and nspawn exclude each other. Which
 * files, which mode and what to say when one is busy is src/'s (TypeScript) choice.
 */
#pragma once
#include <stddef.h>
#include <sys/types.h>

typedef struct {
        const char *path;
        int exclusive;
        const char *busy; /* the message when another holds it (NULL: inherited, already ours) */
        int fd;
} Lock;

typedef struct {
        Lock *v;
        size_t n, cap;
        pid_t owner; /* the process that took them (not a forked child) */
} LocksPlan;

/* A lock to take: PATH, EXCLUSIVE or shared, BUSY the error when another holds it. */
void locks_add(LocksPlan *l, const char *path, int exclusive, const char *busy);

/* A lock nspawn took (e.g. a picked uid range's) and passed through the exec of a hand-over on FD, not marked
 * close-on-exec: held from now on like the ones taken here, and released the same way. -1 with ERR when FD is not
 * open. */
int locks_inherit(LocksPlan *l, int fd, const char *path, int exclusive, char *err, size_t errsz);

/* make_lock_file() for each listed file; on a busy one, ERR gets its message and the ones taken go again. */
int locks_take(LocksPlan *l, char *err, size_t errsz);

/* release_lock_file(): the exclusive holder (or a shared one that can become it) removes the file. Only the process
 * that took them releases them. */
void locks_release(LocksPlan *l);

/* What a run could not remove stays recorded: the lock files that carry content (src/recovery.ts's run record,
 * /run/nspawn/runs/NAME.lock; image and range lock files are empty) are closed, unlocked, without being removed, so
 * that the next start or `nspawnctl clean` finds what this run left. locks_release() then releases the others. */
void locks_keep_records(LocksPlan *l);
