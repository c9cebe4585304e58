/* The container side of the network, and the network modes of the helper (netcfg.h). */
#define _GNU_SOURCE
#include "netcfg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ofd-lock.h"
#include "util.h"
#include "wire.h"

int netcfg_add(NetcfgPlan *p, int kind, const char *ifname, unsigned family, const char *addr, unsigned prefix, char *err, size_t errsz) {
        NetcfgStep s = { .kind = kind, .ifname = ifname };
        if (!*ifname || strlen(ifname) >= IF_NAMESIZE) {
                snprintf(err, errsz, "bad interface name '%s'", ifname);
                return -1;
        }
        if (kind != 'u') {
                if (family != 4 && family != 6) {
                        snprintf(err, errsz, "address family %u", family);
                        return -1;
                }
                s.family = family == 6 ? AF_INET6 : AF_INET;
                if (inet_pton(s.family, addr, s.addr) != 1) {
                        snprintf(err, errsz, "bad IPv%u address '%s'", family, addr);
                        return -1;
                }
                if (prefix > (family == 6 ? 128u : 32u)) {
                        snprintf(err, errsz, "prefix length %u", prefix);
                        return -1;
                }
                s.prefix = (int) prefix;
        }
        *PUSH(p->steps, p->n, p->cap) = s;
        return 0;
}

static void nl_put(struct nlmsghdr *h, int type, const void *data, size_t len) {
        struct rtattr *a = (struct rtattr *) ((char *) h + NLMSG_ALIGN(h->nlmsg_len));
        a->rta_type = (unsigned short) type;
        a->rta_len = (unsigned short) RTA_LENGTH(len);
        memcpy(RTA_DATA(a), data, len);
        h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
}

/* sends H and waits for its ACK; returns 0 or -errno */
static int nl_call(int fd, struct nlmsghdr *h) {
        static unsigned seq = 1;
        h->nlmsg_seq = seq++;
        h->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
        if (send(fd, h, h->nlmsg_len, 0) < 0)
                return -errno;
        char buf[8192];
        for (;;) {
                ssize_t n = recv(fd, buf, sizeof buf, 0);
                if (n < 0)
                        return -errno;
                for (struct nlmsghdr *r = (struct nlmsghdr *) buf; NLMSG_OK(r, (size_t) n); r = NLMSG_NEXT(r, n))
                        if (r->nlmsg_seq == h->nlmsg_seq && r->nlmsg_type == NLMSG_ERROR)
                                return ((struct nlmsgerr *) NLMSG_DATA(r))->error;
        }
}

/* applies the steps; on failure writes what failed to ERR and returns -1 */
int netcfg_apply(const NetcfgPlan *p, char *err, size_t errlen) {
        if (p->n == 0)
                return 0;
        int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        if (fd < 0) {
                snprintf(err, errlen, "netlink socket: %s", strerror(errno));
                return -1;
        }
        for (size_t i = 0; i < p->n; i++) {
                const NetcfgStep *s = &p->steps[i];
                union {
                        struct nlmsghdr h;
                        char b[512];
                } m;
                memset(&m, 0, sizeof m);
                unsigned idx = if_nametoindex(s->ifname);
                if (idx == 0) {
                        snprintf(err, errlen, "network interface %s: %s", s->ifname, strerror(errno));
                        close(fd);
                        return -1;
                }
                const char *what;
                size_t alen = s->family == AF_INET6 ? 16 : 4;
                if (s->kind == 'u') {
                        what = "bringing up";
                        m.h.nlmsg_type = RTM_NEWLINK;
                        m.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
                        struct ifinfomsg *ifi = NLMSG_DATA(&m.h);
                        ifi->ifi_index = (int) idx;
                        ifi->ifi_flags = IFF_UP;
                        ifi->ifi_change = IFF_UP;
                } else if (s->kind == 'a') {
                        what = "adding an address to";
                        m.h.nlmsg_type = RTM_NEWADDR;
                        m.h.nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
                        m.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
                        struct ifaddrmsg *ifa = NLMSG_DATA(&m.h);
                        ifa->ifa_family = (unsigned char) s->family;
                        ifa->ifa_prefixlen = (unsigned char) s->prefix;
                        ifa->ifa_index = idx;
                        nl_put(&m.h, IFA_LOCAL, s->addr, alen);
                        nl_put(&m.h, IFA_ADDRESS, s->addr, alen);
                        if (s->family == AF_INET && s->prefix < 31) {
                                uint32_t a, mask = s->prefix ? htonl(~0U << (32 - s->prefix)) : 0;
                                memcpy(&a, s->addr, 4);
                                a |= ~mask;
                                nl_put(&m.h, IFA_BROADCAST, &a, 4);
                        }
                } else {
                        what = "adding the default route via";
                        m.h.nlmsg_type = RTM_NEWROUTE;
                        m.h.nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
                        m.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg));
                        struct rtmsg *rt = NLMSG_DATA(&m.h);
                        rt->rtm_family = (unsigned char) s->family;
                        rt->rtm_table = RT_TABLE_MAIN;
                        rt->rtm_protocol = RTPROT_STATIC;
                        rt->rtm_scope = RT_SCOPE_UNIVERSE;
                        rt->rtm_type = RTN_UNICAST;
                        nl_put(&m.h, RTA_GATEWAY, s->addr, alen);
                        uint32_t oif = idx;
                        nl_put(&m.h, RTA_OIF, &oif, 4);
                }
                int r = nl_call(fd, &m.h);
                if (r < 0) {
                        snprintf(err, errlen, "%s %s: %s", what, s->ifname, strerror(-r));
                        close(fd);
                        return -1;
                }
        }
        close(fd);
        return 0;
}

/* --network-namespace-path=: the outer helper joins it before the clone, so the container is born in it */
int netcfg_join_netns(const NetcfgPlan *p, char *err, size_t errlen) {
        if (!p->netns_path)
                return 0;
        int fd = open(p->netns_path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
        if (fd < 0) {
                snprintf(err, errlen, "Cannot open file %s: %s", p->netns_path, strerror(errno));
                return -1;
        }
        if (setns(fd, CLONE_NEWNET) < 0) {
                snprintf(err, errlen, errno == EINVAL ? "Path %s doesn't refer to a network namespace, refusing." : "Failed to join network namespace %s: %s",
                         p->netns_path, strerror(errno));
                close(fd);
                return -1;
        }
        close(fd);
        return 0;
}

int netcfg_ofd_lock_main(void) {
        if (ofd_lock(3, 1, 1) < 0) {
                fprintf(stderr, "F_OFD_SETLKW: %s\n", strerror(errno));
                return 1;
        }
        return 0;
}

static int move_back_record(void *ctx, unsigned id, const WireValue *v, char *err, size_t errsz) {
        MoveBackRequest *m = ctx;
        if (id == M_IFNAMES) {
                m->ifnames = v[0].strs;
                m->n = v[0].n;
        }
        return 0;
}

int move_back_decode(const WireMessage *m, MoveBackRequest *r, char *err, size_t errsz) {
        memset(r, 0, sizeof *r);
        return wire_decode(&wire_move_back_schema, m, move_back_record, r, err, errsz);
}

int netcfg_move_back_main(void) {
        char err[512];
        WireMessage msg;
        MoveBackRequest req;
        int r = wire_read(STDIN_FILENO, 1, &msg, err, sizeof err);
        if (r == 0)
                snprintf(err, sizeof err, "no request on stdin");
        if (r <= 0 || move_back_decode(&msg, &req, err, sizeof err) < 0) {
                fprintf(stderr, "nspawn-helper --move-back: %s\n", err);
                return 100;
        }
        int host = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        if (host < 0 || setns(3, CLONE_NEWNET) < 0) {
                fprintf(stderr, "entering the container's network namespace: %s\n", strerror(errno));
                return 100;
        }
        int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        if (fd < 0) {
                fprintf(stderr, "netlink socket: %s\n", strerror(errno));
                return 100;
        }
        int failed = 0;
        for (size_t i = 0; i < req.n; i++) {
                union {
                        struct nlmsghdr h;
                        char b[256];
                } m;
                memset(&m, 0, sizeof m);
                unsigned idx = strlen(req.ifnames[i]) < IF_NAMESIZE ? if_nametoindex(req.ifnames[i]) : 0;
                int e = -ENODEV;
                if (idx > 0) {
                        m.h.nlmsg_type = RTM_SETLINK;
                        m.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
                        ((struct ifinfomsg *) NLMSG_DATA(&m.h))->ifi_index = (int) idx;
                        uint32_t nsfd = (uint32_t) host;
                        nl_put(&m.h, IFLA_NET_NS_FD, &nsfd, 4);
                        e = nl_call(fd, &m.h);
                }
                if (e < 0) {
                        fprintf(stderr, "moving %s back to the host: %s\n", req.ifnames[i], strerror(-e));
                        failed++;
                }
        }
        return failed;
}
