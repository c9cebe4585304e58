/*
 * SO_PEERCRED for @nspawn/runtime's peer-credential readers (nspawnd checks who connects to its socket), which Node
 * cannot read itself. Neither mode carries anything but numbers: no request is framed.
 *
 *   nspawn-helper peercred
 *       fd 0 is a connected AF_UNIX socket: prints "PID UID GID" of its peer.
 *
 *   nspawn-helper peercred-server PID
 *       The same for many connections of process PID (the caller, our parent): reads a descriptor number of PID per
 *       line on stdin, takes a copy of that descriptor (pidfd_getfd(2)) and answers "PID UID GID" (or "-") per line
 *       on stdout. One process for all connections instead of one per connection.
 */
#pragma once

int peercred_main(void);
int peercred_server_main(const char *pid);
