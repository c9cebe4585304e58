/*
 * The native front ends' one way to reach a stream socket: nspawn-oci's front end (a container's monitor, oci_tell())
 * and nspawnctl's (nspawnd's varlink socket, apps/cli native/ctl-front.c).
 */
#pragma once

/* a connected AF_UNIX stream socket (close-on-exec) to PATH; -1 with errno (ENAMETOOLONG: PATH does not fit) */
int unix_connect(const char *path);
