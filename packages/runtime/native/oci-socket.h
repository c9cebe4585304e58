/*
 * The native front ends' one way to reach a stream socket and to write and read a descriptor whole: nspawn-oci's
 * front end (a container's monitor, oci_tell(), the warm monitor, the state files) and nspawnctl's (nspawnd's
 * varlink socket, apps/cli native/ctl-front.c).
 */
#pragma once
#include "oci-json.h"

#include <stddef.h>

/* a connected AF_UNIX stream socket (close-on-exec) to PATH; -1 with errno (ENAMETOOLONG: PATH does not fit) */
int unix_connect(const char *path);

/* writes the N bytes at P to FD whole (EINTR retried): 0, or -1 with errno */
int fd_write_all(int fd, const void *p, size_t n);

/* appends what FD gives until its end or an error to B, a string afterwards ("" when nothing came) */
void buf_read_all(Buf *b, int fd);
