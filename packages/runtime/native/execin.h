/*
 * "nspawn-helper exec-in": nsenter(1) for a container, for @nspawn/runtime's execIn() and bindIn() (nspawnctl shell,
 * login, run, copy-to, copy-from, bind). The request comes on fd 3 (encodeExecIn() of src/protocol.ts): the
 * container's PID 1 (LEADER, a host PID), the command, its environment, user, groups and directory, the cgroup.procs
 * files to join, and whether it gets a pty; or, instead of a command, a host path to bind mount into the container.
 *
 * The helper joins the cgroups, enters the namespaces of LEADER (cgroup, ipc, uts, net, pid, mnt and, when it has its
 * own, user), chroots to its root, keeps only the capabilities in its bounding set, takes its seccomp filters and
 * no_new_privs (as a descendant of the container's PID 1 has them: machinectl shell's session is one), drops to the
 * user, forks (the pid namespace applies to children) and execs the command (searched in its environment's PATH) in
 * the child. It exits with the command's exit code, or 128+N when it died of signal N; stdio passes straight through;
 * 255 and a message when entering failed. With a pty the command gets a new pty of the container's devpts as its
 * controlling terminal (a getty for `login`), copied to our stdio (our terminal raw) until the command ends or ^] is
 * pressed three times within a second. A bind: open_tree() on the host before entering, move_mount() inside, as
 * `machinectl bind` does.
 */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "wire.h"

typedef struct {
        uint64_t leader;
        const char **command; /* NULL-terminated */
        size_t n_command;
        const char **env;     /* NULL-terminated; none: an empty environment */
        size_t n_env;
        uint64_t uid, gid;
        gid_t *groups;
        size_t n_groups;
        const char *cwd;      /* NULL: / */
        const char **cgroups;
        size_t n_cgroups;
        int pty;
        int console_socket; /* with pty: 1 + a connected AF_UNIX socket the master goes to (OCI exec --console-socket); 0: none */
        int *pass_fds;      /* our fds that become the command's 3, 4, ... (OCI exec --preserve-fds) */
        size_t n_pass_fds;
        int bind;
        const char *bind_src, *bind_dst;
        int bind_ro, bind_mkdir;
} ExecInRequest;

/* M (an exec-in request) into R; -1 with ERR when it is not a valid one. */
int execin_request_decode(const WireMessage *m, ExecInRequest *r, char *err, size_t errsz);

/* the mode: the request on fd 3 (or, transitional, the old command line ARGV); returns the exit status */
int execin_main(int argc, char **argv);
