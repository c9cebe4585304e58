/*
 * The container side of the network, configured by the container's child after the sync point (the links have been
 * moved in by then) and before the payload starts: interfaces up, addresses, default routes. Plain rtnetlink; every
 * value comes from the plan (src/network.ts decides them). Also the network namespace --network-namespace-path= joins,
 * and two modes for src/network.ts: the zone's open-file-description lock and moving interfaces back to the host.
 */
#pragma once
#include <stddef.h>

#include "wire.h"

typedef struct {
        int kind; /* 'u' up, 'a' address, 'r' default route */
        const char *ifname;
        int family; /* AF_INET, AF_INET6 */
        unsigned char addr[16];
        int prefix;
} NetcfgStep;

typedef struct {
        NetcfgStep *steps;
        size_t n, cap;
        const char *netns_path; /* --network-namespace-path= */
} NetcfgPlan;

/* One step of the plan: KIND 'u' (IFNAME only), 'a' (FAMILY 4 or 6, ADDR, PREFIX) or 'r' (FAMILY, ADDR the gateway).
 * -1 with ERR when malformed. */
int netcfg_add(NetcfgPlan *p, int kind, const char *ifname, unsigned family, const char *addr, unsigned prefix, char *err, size_t errsz);

/* Applies the steps; on failure writes what failed to ERR and returns -1. */
int netcfg_apply(const NetcfgPlan *p, char *err, size_t errsz);

/* --network-namespace-path=: the outer helper joins it before the clone, so the container is born in it. */
int netcfg_join_netns(const NetcfgPlan *p, char *err, size_t errsz);

/* "nspawn-helper --ofd-lock": an exclusive OFD lock on fd 3 (waits); the lock stays with the file description the
 * caller keeps open after we exit. */
int netcfg_ofd_lock_main(void);

/* the request of --move-back: interface names */
typedef struct {
        const char **ifnames;
        size_t n;
} MoveBackRequest;

/* M (a move-back request) into R; -1 with ERR when it is not a valid one */
int move_back_decode(const WireMessage *m, MoveBackRequest *r, char *err, size_t errsz);

/* "nspawn-helper --move-back": the interfaces named by the request on stdin (encodeMoveBack() of src/protocol.ts)
 * go from the network namespace open at fd 3 back into ours. Returns the number that failed, each on stderr; 100
 * when nothing could be tried. */
int netcfg_move_back_main(void);
