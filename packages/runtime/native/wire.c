/* The helper's input format: reading and checking one message (see wire.h; the writer is src/protocol.ts). */
#define _GNU_SOURCE
#include "wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define R WIRE_REPEATED
#define Q WIRE_REQUIRED

static const WireRecord plan_records[P_COUNT] = {
        [P_END] = { "end", "", 0 },
        [P_ROOT] = { "root", "s", Q },
        [P_CLONE] = { "clone", "u", Q },
        [P_SYNC] = { "sync", "", 0 },
        [P_USERMAP] = { "usermap", "uu", 0 },
        [P_IDMAP] = { "idmap", "uu", 0 },
        [P_HOSTNAME] = { "hostname", "s", 0 },
        [P_OP] = { "op", "susssusuu", R },
        [P_CONSOLE] = { "console", "s", Q },
        [P_PERSONALITY] = { "personality", "u", 0 },
        [P_RLIMIT] = { "rlimit", "uuu", R },
        [P_UID] = { "uid", "u", 0 },
        [P_GID] = { "gid", "u", 0 },
        [P_GROUPS] = { "groups", "U", 0 },
        [P_CHDIR] = { "chdir", "s", 0 },
        [P_NNP] = { "nnp", "", 0 },
        [P_OOM] = { "oom", "i", 0 },
        [P_CPUS] = { "cpus", "U", 0 },
        [P_CAPS] = { "caps", "uuuuu", 0 },
        [P_CAPWARN] = { "capwarn", "s", 0 },
        [P_KEYRING] = { "keyring", "", 0 },
        [P_SECCOMP] = { "seccomp", "x", 0 },
        [P_SECCOMPWARN] = { "seccompwarn", "s", R },
        [P_CGV1] = { "cgv1", "ss", R },
        [P_CGV2] = { "cgv2", "ss", 0 },
        [P_DEVBPF] = { "devbpf", "bsx", 0 },
        [P_PID2] = { "pid2", "", 0 },
        [P_LOOPBACK] = { "loopback", "", 0 },
        [P_NETUP] = { "netup", "s", R },
        [P_NETADDR] = { "netaddr", "susu", R },
        [P_NETROUTE] = { "netroute", "sus", R },
        [P_NETNS] = { "netns", "s", 0 },
        [P_SEARCH] = { "search", "", 0 },
        [P_ENV] = { "env", "S", Q },
        [P_STUBENV] = { "stubenv", "S", 0 },
        [P_ARGV] = { "argv", "S", 0 },
        [P_FALLBACK] = { "fallback", "ss", R },
        [P_FALLBACKARGS] = { "fallbackargs", "S", 0 },
        [P_FINALNL] = { "finalnl", "", 0 },
        [P_SURVIVE] = { "survive", "", 0 },
        [P_STDOUT] = { "stdout", "s", 0 },
        [P_SDNOTIFY] = { "sdnotify", "bb", 0 },
        [P_LOCK] = { "lock", "sbs", R },
        [P_LOCKFD] = { "lockfd", "usb", R },
        [P_RMSUBVOL] = { "rmsubvol", "s", R },
        [P_RMMOUNT] = { "rmmount", "s", R },
        [P_RMTREE] = { "rmtree", "s", R },
        [P_CGMKDIR] = { "cgmkdir", "sbs", R },
        [P_CGWRITE] = { "cgwrite", "sS", R },
        [P_CGCHOWN] = { "cgchown", "suu", R },
        [P_HANDOFF] = { "handoff", "bub", 0 },
        [P_HOMSGS] = { "homsgs", "ssssss", 0 },
        [P_HOSIGNAMES] = { "hosignames", "S", 0 },
        [P_HORM] = { "horm", "s", R },
        [P_HOKILL] = { "hokill", "s", 0 },
        [P_HOSLICE] = { "hoslice", "s", R },
        [P_HOMARKER] = { "homarker", "s", 0 },
        [P_HOREEXEC] = { "horeexec", "S", 0 },
        [P_NSJOIN] = { "nsjoin", "us", R },
        [P_VOLATILE] = { "volatile", "s", 0 },
        [P_OCIFDS] = { "ocifds", "iU", 0 },
        [P_LATESYNC] = { "latesync", "b", 0 },
        [P_SECCOMPOCI] = { "seccompoci", "ub", 0 },
        [P_LOGINUID] = { "loginuid", "", 0 },
        [P_BINDCOPIES] = { "bindcopies", "", 0 },
        [P_BLOB] = { "blob", "x", R },
        [P_BINDMAP] = { "bindmap", "uuuu", R },
        [P_IMAGE] = { "image", "sssssuubb", R },
        [P_HOLDFD] = { "holdfd", "u", R },
        [P_CGNSLATE] = { "cgnslate", "uu", 0 },
        [P_WINSIZE] = { "winsize", "uu", 0 },
        [P_PIVOTROOT] = { "pivotroot", "ss", 0 },
};

static const WireRecord exec_in_records[X_COUNT] = {
        [X_END] = { "end", "", 0 },
        [X_LEADER] = { "leader", "u", Q },
        [X_COMMAND] = { "command", "S", 0 },
        [X_ENV] = { "env", "S", 0 },
        [X_UID] = { "uid", "u", 0 },
        [X_GID] = { "gid", "u", 0 },
        [X_GROUPS] = { "groups", "U", 0 },
        [X_CWD] = { "cwd", "s", 0 },
        [X_CGROUPS] = { "cgroups", "S", 0 },
        [X_PTY] = { "pty", "", 0 },
        [X_BIND] = { "bind", "ssbb", 0 },
        [X_CONSOLESOCK] = { "consolesock", "u", 0 },
        [X_PASSFDS] = { "passfds", "U", 0 },
};

static const WireRecord move_back_records[M_COUNT] = {
        [M_END] = { "end", "", 0 },
        [M_IFNAMES] = { "ifnames", "S", Q },
};

const WireSchema wire_plan_schema = { WIRE_KIND_PLAN, "plan", plan_records, P_COUNT };
const WireSchema wire_exec_in_schema = { WIRE_KIND_EXEC_IN, "exec-in request", exec_in_records, X_COUNT };
const WireSchema wire_move_back_schema = { WIRE_KIND_MOVE_BACK, "move-back request", move_back_records, M_COUNT };

const WireSchema *wire_schema(uint16_t kind) {
        switch (kind) {
        case WIRE_KIND_PLAN:
                return &wire_plan_schema;
        case WIRE_KIND_EXEC_IN:
                return &wire_exec_in_schema;
        case WIRE_KIND_MOVE_BACK:
                return &wire_move_back_schema;
        default:
                return NULL;
        }
}

static uint16_t le16(const unsigned char *p) {
        return (uint16_t) (p[0] | p[1] << 8);
}
static uint32_t le32(const unsigned char *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}
static uint64_t le64(const unsigned char *p) {
        return (uint64_t) le32(p) | (uint64_t) le32(p + 4) << 32;
}

int wire_read(int fd, int until_eof, WireMessage *m, char *err, size_t errsz) {
        unsigned char h[WIRE_HEADER_SIZE];
        memset(m, 0, sizeof *m);
        ssize_t k = read_full(fd, h, sizeof h);
        if (k == 0)
                return 0;
        if (k < 0) {
                snprintf(err, errsz, "reading fd %d: %s", fd, strerror(errno));
                return -1;
        }
        if ((size_t) k < sizeof h) {
                snprintf(err, errsz, "truncated header (%zd of %d bytes)", k, WIRE_HEADER_SIZE);
                return -1;
        }
        if (memcmp(h, "NSPW", 4) != 0) {
                snprintf(err, errsz, "not a plan (no NSPW header)");
                return -1;
        }
        if (le16(h + 4) != WIRE_VERSION) {
                snprintf(err, errsz, "format version %u, this helper reads %u (a helper from another nspawn?)", le16(h + 4), WIRE_VERSION);
                return -1;
        }
        uint32_t len = le32(h + 8);
        if (len > WIRE_MAX_BODY) {
                snprintf(err, errsz, "body of %u bytes is larger than %u", len, WIRE_MAX_BODY);
                return -1;
        }
        unsigned char *body = malloc(len ? len : 1);
        if (!body) {
                snprintf(err, errsz, "no memory for %u bytes", len);
                return -1;
        }
        k = read_full(fd, body, len);
        if (k < 0 || (size_t) k < len) {
                if (k < 0)
                        snprintf(err, errsz, "reading fd %d: %s", fd, strerror(errno));
                else
                        snprintf(err, errsz, "truncated: %zd of %u bytes", k, len);
                free(body);
                return -1;
        }
        if (until_eof) {
                unsigned char extra;
                k = read_full(fd, &extra, 1);
                if (k != 0) {
                        snprintf(err, errsz, "%s after the message", k < 0 ? strerror(errno) : "trailing bytes");
                        free(body);
                        return -1;
                }
        }
        m->kind = le16(h + 6);
        m->body = body;
        m->len = len;
        return 1;
}

/* One field of type T at *P (END: the record's end); fills V. Returns 0, or -1 with a message. */
static int field(char t, const unsigned char **p, const unsigned char *end, WireValue *v, char *err, size_t errsz) {
        size_t left = (size_t) (end - *p);
        switch (t) {
        case 'u':
        case 'i':
                if (left < 8)
                        goto short_;
                v->u = le64(*p);
                v->i = (int64_t) v->u;
                *p += 8;
                return 0;
        case 'b':
                if (left < 1)
                        goto short_;
                if (**p > 1) {
                        snprintf(err, errsz, "a boolean of %u", **p);
                        return -1;
                }
                v->b = **p;
                *p += 1;
                return 0;
        case 's': {
                if (left < 4)
                        goto short_;
                uint32_t n = le32(*p);
                if (left - 4 < (size_t) n + 1)
                        goto short_;
                const char *s = (const char *) *p + 4;
                if (memchr(s, 0, n) || s[n] != 0) {
                        snprintf(err, errsz, "a string with a NUL byte or without its terminator");
                        return -1;
                }
                v->s = s;
                *p += 4 + (size_t) n + 1;
                return 0;
        }
        case 'x': {
                if (left < 4)
                        goto short_;
                uint32_t n = le32(*p);
                if (left - 4 < n)
                        goto short_;
                v->x = *p + 4;
                v->n = n;
                *p += 4 + (size_t) n;
                return 0;
        }
        case 'S': {
                if (left < 4)
                        goto short_;
                uint32_t n = le32(*p);
                *p += 4;
                if (n > (left - 4) / 5) /* each string takes at least 5 bytes: no allocation for what cannot be there */
                        goto short_;
                v->strs = xcalloc((size_t) n + 1, sizeof *v->strs);
                v->n = n;
                for (uint32_t k = 0; k < n; k++) {
                        WireValue one = { 0 };
                        if (field('s', p, end, &one, err, errsz) < 0)
                                return -1;
                        v->strs[k] = one.s;
                }
                return 0;
        }
        case 'U': {
                if (left < 4)
                        goto short_;
                uint32_t n = le32(*p);
                if (n > (left - 4) / 8)
                        goto short_;
                v->nums = xcalloc((size_t) n + 1, sizeof *v->nums);
                v->n = n;
                for (uint32_t k = 0; k < n; k++)
                        v->nums[k] = le64(*p + 4 + (size_t) k * 8);
                *p += 4 + (size_t) n * 8;
                return 0;
        }
        }
        snprintf(err, errsz, "unknown field type '%c'", t);
        return -1;
short_:
        snprintf(err, errsz, "truncated");
        return -1;
}

int wire_decode(const WireSchema *s, const WireMessage *m, WireSink sink, void *ctx, char *err, size_t errsz) {
        char why[256];
        if (m->kind != s->kind) {
                snprintf(err, errsz, "invalid %s: a message of kind %u", s->what, m->kind);
                return -1;
        }
        unsigned *seen = xcalloc(s->n_records, sizeof *seen);
        const unsigned char *p = m->body, *end = m->body + m->len;
        int ended = 0, rc = -1;
        while (p < end) {
                if (ended) {
                        snprintf(err, errsz, "invalid %s: %zu bytes of trailing garbage after its end", s->what, (size_t) (end - p));
                        goto out;
                }
                if ((size_t) (end - p) < 6) {
                        snprintf(err, errsz, "invalid %s: truncated record header at byte %zu", s->what, (size_t) (p - m->body));
                        goto out;
                }
                unsigned id = le16(p);
                uint32_t len = le32(p + 2);
                p += 6;
                if (id >= s->n_records || !s->records[id].name) {
                        snprintf(err, errsz, "invalid %s: unknown record %u", s->what, id);
                        goto out;
                }
                const WireRecord *r = &s->records[id];
                if ((size_t) (end - p) < len) {
                        snprintf(err, errsz, "invalid %s: record '%s' truncated (%u bytes, %zu left)", s->what, r->name, len, (size_t) (end - p));
                        goto out;
                }
                if (seen[id]++ && !(r->flags & WIRE_REPEATED)) {
                        snprintf(err, errsz, "invalid %s: record '%s' given twice", s->what, r->name);
                        goto out;
                }
                WireValue v[WIRE_MAX_FIELDS];
                memset(v, 0, sizeof v);
                const unsigned char *q = p, *rend = p + len;
                size_t nf = strlen(r->fields);
                for (size_t f = 0; f < nf; f++)
                        if (field(r->fields[f], &q, rend, &v[f], why, sizeof why) < 0) {
                                snprintf(err, errsz, "invalid %s: record '%s', field %zu: %s", s->what, r->name, f + 1, why);
                                goto out;
                        }
                if (q != rend) {
                        snprintf(err, errsz, "invalid %s: record '%s' has %zu bytes more than its fields", s->what, r->name, (size_t) (rend - q));
                        goto out;
                }
                p = rend;
                if (id == 0) {
                        ended = 1;
                        continue;
                }
                if (sink(ctx, id, v, why, sizeof why) < 0) {
                        snprintf(err, errsz, "invalid %s: record '%s': %s", s->what, r->name, why);
                        goto out;
                }
        }
        if (!ended) {
                snprintf(err, errsz, "invalid %s: no end record (truncated?)", s->what);
                goto out;
        }
        for (size_t id = 0; id < s->n_records; id++)
                if ((s->records[id].flags & WIRE_REQUIRED) && !seen[id]) {
                        snprintf(err, errsz, "invalid %s: no '%s' record", s->what, s->records[id].name);
                        goto out;
                }
        rc = 0;
out:
        free(seen);
        return rc;
}
