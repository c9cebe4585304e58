/*
 * nspawn-helper: the single-threaded part of @nspawn/runtime.
 *
 * Node cannot enter namespaces (it is multithreaded), so this small program does the steps that must run in a fresh
 * process: clone into namespaces, mount what the plan lists, pivot_root, set the hostname, switch the console, drop
 * to the user, and exec. It has no policy: every path, flag and value comes from the plan that the TypeScript side
 * (src/plan.ts) builds, in the framed format of wire.h (src/protocol.ts writes it).
 *
 * main() only dispatches the modes; each lives in a file of its own:
 *   (no arguments)       run a plan read from fd 3, a socket from Node, reporting on it (outer.c, child.c, ...)
 *   --handoff FD         run a plan read from FD (a memfd) in nspawn's place, after its execve() (handoff.c)
 *   exec-in              enter a running container (execin.c); the request on fd 3 (transitional: or the old
 *                        command line, until nspawnctl uses execIn())
 *   peercred             SO_PEERCRED of the socket on stdin (peercred.c)
 *   peercred-server PID  the same for the descriptors of PID named on stdin (peercred.c)
 *   --ofd-lock           an OFD lock on fd 3 (netcfg.c)
 *   --move-back          interfaces from the network namespace on fd 3 back to ours; the request on stdin (netcfg.c)
 *   --decode             a message on stdin as canonical JSON, for the tests (plan-dump.c)
 * None is a public interface: @nspawn/runtime's functions (runPlan(), handoffContainer(), execIn(), bindIn(),
 * peer-credential readers, helperMover) are.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "execin.h"
#include "netcfg.h"
#include "outer.h"
#include "peercred.h"
#include "plan.h"
#include "util.h"

/* a descriptor number given on our command line, -1 when it is not one */
static int fd_arg(const char *s) {
        char *end;
        long v = s && *s >= '0' && *s <= '9' ? strtol(s, &end, 10) : -1;
        return v >= 0 && v <= 0x7fffffff && *end == 0 ? (int) v : -1;
}

int main(int argc, char **argv) {
        /* the stub init of --as-pid2 renames itself in our argument area */
        rename_process_init(argc, argv);
        const char *mode = argc > 1 ? argv[1] : NULL;
        if (!mode)
                return outer_main(-1);
        if (!strcmp(mode, "--handoff") && argc == 3 && fd_arg(argv[2]) >= 0)
                return outer_main(fd_arg(argv[2]));
        if (!strcmp(mode, "exec-in"))
                return execin_main(argc, argv);
        if (!strcmp(mode, "peercred") && argc == 2)
                return peercred_main();
        if (!strcmp(mode, "peercred-server") && argc == 3)
                return peercred_server_main(argv[2]);
        if (!strcmp(mode, "--ofd-lock") && argc == 2)
                return netcfg_ofd_lock_main();
        if (!strcmp(mode, "--move-back") && argc == 2)
                return netcfg_move_back_main();
        if (!strcmp(mode, "--decode") && argc == 2)
                return decode_main();
        fprintf(stderr, "nspawn-helper: unknown mode '%s' (this program is run by @nspawn/runtime, not by hand)\n", mode);
        return 2;
}
