/*
 * nspawnctl's front end (the program nspawnctl-front-linux-ARCH, run by bin/nspawnctl): the verbs most run, served
 * without a Node start (Node alone starts in ~40 ms, the call itself takes a few): `list` (the default verb), and
 * for root `start`, `poweroff`, `reboot`, `terminate` and `kill` (its default signal), over nspawnd's varlink socket
 * as the Node command (src/ctl-machines.ts, src/ctl-common.ts) makes them, with its output, its errors and its exit
 * status byte for byte. Everything else is the Node command's: it execs `node ENTRY ARGS...` in its own place (same
 * PID, same descriptors) before it has done anything, so the two never disagree on a call. That is:
 *
 *   - any option but --no-legend, -o/--output (json, json-pretty, short, table), --no-pager, --no-ask-password,
 *     -q/--quiet and -a/--all (which change nothing for these verbs), written exactly so (no abbreviation, no
 *     grouped short options, no "--"), and $POSIXLY_CORRECT set;
 *   - any other verb; a verb but list from a user other than root (the Node command says why not);
 *   - no answer at the socket (nspawnd not running: the Node command says so, or on a systemd host reads machined's
 *     machines instead), an unusual $NSPAWND_RUNTIME_DIR (the Node command's path.join() would change it);
 *   - for list (it changes nothing, so it may be asked again): a reply it does not fully understand (a field of
 *     another type, a string that is not UTF-8, a lone surrogate), a failed connection, no answer in time.
 *
 *   nspawnctl-front ENTRY ARGS...     ENTRY: the Node command (bin/nspawnctl-node), passed by bin/nspawnctl
 *
 * The JSON is @nspawn/runtime's (native/oci-json.c, nspawn-oci's front end's): one parser, one writer whose output is
 * JSON.stringify()'s.
 */
#define _GNU_SOURCE
#include "oci-json.h"
#include "oci-socket.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* VARLINK_MESSAGE_MAX of @nspawn/runtime's varlink.ts */
#define MESSAGE_MAX (16 * 1024 * 1024)
/* listMachines()' timeout (ms) */
#define LIST_TIMEOUT_MS 10000

static const char *entry;
static char **args;

/* execs the Node command with our arguments; returns only when that fails */
static int run_node(void) {
        size_t n = 0;
        while (args[n])
                n++;
        char **av = calloc(n + 3, sizeof *av);
        if (!av)
                return 1;
        av[0] = "node";
        av[1] = (char *) entry;
        memcpy(av + 2, args, n * sizeof *av);
        execvp("node", av);
        fprintf(stderr, "nspawnctl: cannot run node (%s): %s\n", entry, strerror(errno));
        return 1;
}

/* the Node command's CtlError: MSG and a newline on stderr, exit status 1 */
static int fail(const char *msg) {
        Buf b = { 0 };
        buf_puts(&b, msg);
        buf_puts(&b, "\n");
        (void) fd_write_all(2, b.p, b.n);
        return 1;
}

/* valid UTF-8 (no overlong form, no surrogate, nothing past U+10FFFF): what a JavaScript string holds unchanged */
static int utf8_valid(const char *s) {
        const unsigned char *p = (const unsigned char *) s;
        while (*p) {
                unsigned c = *p;
                int n;
                unsigned min;
                if (c < 0x80) {
                        p++;
                        continue;
                } else if ((c & 0xe0) == 0xc0)
                        n = 1, min = 0x80, c &= 0x1f;
                else if ((c & 0xf0) == 0xe0)
                        n = 2, min = 0x800, c &= 0x0f;
                else if ((c & 0xf8) == 0xf0)
                        n = 3, min = 0x10000, c &= 0x07;
                else
                        return 0;
                for (int i = 1; i <= n; i++) {
                        if ((p[i] & 0xc0) != 0x80)
                                return 0;
                        c = (c << 6) | (p[i] & 0x3f);
                }
                if (c < min || c > 0x10ffff || (c >= 0xd800 && c < 0xe000))
                        return 0;
                p += n + 1;
        }
        return 1;
}

/* the length of valid UTF-8 S as JavaScript counts it (UTF-16 code units) */
static size_t js_length(const char *s) {
        size_t n = 0;
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                if ((*p & 0xc0) != 0x80)
                        n++;
                if ((*p & 0xf8) == 0xf0)
                        n++; /* a surrogate pair */
        }
        return n;
}

/* hostname_is_valid(s, 0), as @nspawn/settings' machineNameIsValid() */
static int machine_name_valid(const char *s) {
        size_t len = strlen(s);
        if (len == 0 || len > 64)
                return 0;
        int dot = 1, hyphen = 1;
        for (const char *p = s; *p; p++) {
                char c = *p;
                if (c == '.') {
                        if (dot || hyphen)
                                return 0;
                        dot = 1, hyphen = 0;
                } else if (c == '-') {
                        if (dot)
                                return 0;
                        dot = 0, hyphen = 1;
                } else if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
                        dot = 0, hyphen = 0;
                else
                        return 0;
        }
        /* (a trailing dot is never accepted without VALID_HOSTNAME_TRAILING_DOT) */
        return !dot && !hyphen;
}

/* ---- varlink ---- */

typedef enum {
        RES_OK,       /* REPLIES holds every reply */
        RES_ERROR,    /* an error reply: ERROR, ERRPARAMS */
        RES_FAILED,   /* the connection failed after the call was sent: MSG, the Node command's words */
} Result;

typedef struct {
        Result r;
        const JVal **replies;
        size_t n;
        const char *error;
        const JVal *errparams;
        char msg[600];
        int nul; /* a string holds a NUL (which C strings cannot): list lets Node show it */
} Reply;

/* JavaScript's truthiness of V (a reply's `continues`) */
static int truthy(const JVal *v) {
        if (!v)
                return 0;
        switch (v->t) {
        case J_NULL: return 0;
        case J_BOOL: return !strcmp(v->s, "true");
        case J_NUM: return strtod(v->s, NULL) != 0;
        case J_STR: return v->s[0] != 0;
        default: return 1;
        }
}

/*
 * varlinkCall(socket, METHOD, PARAMS (JSON text), {more}) on the connection FD: every reply until the last, or the
 * first error. TIMEOUT_MS: 0 for none; when it passes, RES_FAILED with the Node command's message.
 */
static void call(int fd, const char *socket_path, const char *method, const char *params, int more, int timeout_ms, Reply *out) {
        memset(out, 0, sizeof *out);
        Buf req = { 0 };
        buf_puts(&req, "{\"method\":");
        json_write_string(&req, method);
        buf_printf(&req, ",\"parameters\":%s%s}", params, more ? ",\"more\":true" : "");
        buf_add(&req, "", 1); /* the NUL that ends a message (buf_add keeps a NUL after the text: count it) */
        const char *p = req.p;
        size_t left = req.n;
        while (left > 0) {
                ssize_t w = send(fd, p, left, MSG_NOSIGNAL);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        out->r = RES_FAILED;
                        snprintf(out->msg, sizeof out->msg, "write %s", strerrorname_np(errno) ?: "EIO");
                        return;
                }
                p += w;
                left -= (size_t) w;
        }
        Buf in = { 0 };
        size_t start = 0, cap = 0;
        for (;;) {
                /* each whole message in what came */
                char *nul;
                while ((nul = memchr(in.p + start, 0, in.n - start))) {
                        const char *text = in.p + start;
                        start = (size_t) (nul - in.p) + 1;
                        if (strstr(text, "\\u0000"))
                                out->nul = 1;
                        JVal *m = json_parse(text);
                        if (!m || m->t != J_OBJ) {
                                out->r = RES_FAILED;
                                snprintf(out->msg, sizeof out->msg, "%s", m ? "varlink: a message is not a JSON object" : "varlink: a message is not JSON");
                                return;
                        }
                        const JVal *error = json_get(m, "error");
                        const JVal *pa = json_get(m, "parameters");
                        if (pa && pa->t == J_NULL)
                                pa = NULL;
                        if ((error && error->t != J_STR) || (pa && pa->t != J_OBJ)) {
                                out->r = RES_FAILED;
                                snprintf(out->msg, sizeof out->msg, "varlink: %s sent a malformed reply to %s", socket_path, method);
                                return;
                        }
                        static const JVal EMPTY = { .t = J_OBJ };
                        if (!pa)
                                pa = &EMPTY;
                        if (error && error->t == J_STR && error->s[0]) {
                                out->r = RES_ERROR;
                                out->error = error->s;
                                out->errparams = pa;
                                return;
                        }
                        if (out->n == cap) {
                                cap = cap ? cap * 2 : 16;
                                out->replies = realloc(out->replies, cap * sizeof *out->replies);
                                if (!out->replies) {
                                        fputs("nspawnctl: out of memory\n", stderr);
                                        exit(1);
                                }
                        }
                        out->replies[out->n++] = pa;
                        if (!truthy(json_get(m, "continues"))) {
                                out->r = RES_OK;
                                return;
                        }
                }
                if (in.n - start > MESSAGE_MAX) {
                        out->r = RES_FAILED;
                        snprintf(out->msg, sizeof out->msg, "varlink: a message exceeds 16 MiB (from %s, answering %s)", socket_path, method);
                        return;
                }
                if (timeout_ms > 0) {
                        struct pollfd pf = { .fd = fd, .events = POLLIN };
                        int r = poll(&pf, 1, timeout_ms);
                        if (r < 0 && errno == EINTR)
                                continue;
                        if (r == 0) {
                                out->r = RES_FAILED;
                                snprintf(out->msg, sizeof out->msg, "varlink: no answer from %s to %s", socket_path, method);
                                return;
                        }
                }
                char chunk[65536];
                ssize_t got = read(fd, chunk, sizeof chunk);
                if (got < 0 && errno == EINTR)
                        continue;
                if (got <= 0) {
                        out->r = RES_FAILED;
                        if (got < 0)
                                snprintf(out->msg, sizeof out->msg, "read %s", strerrorname_np(errno) ?: "EIO");
                        else
                                snprintf(out->msg, sizeof out->msg, "varlink: %s closed the connection during %s", socket_path, method);
                        return;
                }
                buf_add(&in, chunk, (size_t) got);
        }
}

/* noDaemon() of ctl-common.ts for an error reply: the line the Node command prints */
static const char *error_message(const Reply *r) {
        if (!strcmp(r->error, "org.varlink.service.PermissionDenied"))
                return "Access denied: nspawnd lets only root do that.";
        const char *m = json_str(r->errparams, "message");
        return m ? m : r->error;
}

/* ---- list ---- */

typedef struct {
        int legend;
        int json; /* 0 table, 1 json, 2 json-pretty */
} Opts;

/* a JVal string (the JSON writer's input) */
static JVal *jstr(const char *s) {
        JVal *v = calloc(1, sizeof *v);
        if (!v) {
                fputs("nspawnctl: out of memory\n", stderr);
                exit(1);
        }
        v->t = J_STR;
        v->s = (char *) s;
        return v;
}

/* a string member KEY of O as the Node command reads it: absent or null (DEF), a string (valid UTF-8), else -1 */
static int member_str(const JVal *o, const char *key, const char *def, const char **out) {
        const JVal *v = json_get(o, key);
        if (!v || v->t == J_NULL) {
                *out = def;
                return def ? 0 : -1;
        }
        if (v->t != J_STR || !utf8_valid(v->s))
                return -1;
        *out = v->s;
        return 0;
}

/* an integer 0..MAX as JSON.stringify() writes one (the digits, no sign, no leading zero); -1 else */
static long byte_of(const JVal *v, long max) {
        if (!v || v->t != J_NUM)
                return -1;
        const char *s = v->s;
        if (!*s || (s[0] == '0' && s[1]))
                return -1;
        for (const char *p = s; *p; p++)
                if (*p < '0' || *p > '9')
                        return -1;
        if (strlen(s) > 9)
                return -1;
        long n = strtol(s, NULL, 10);
        return n <= max ? n : -1;
}

/* formatAddress() of @nspawn/runtime (inspect.ts) into B; -1 when A is not an address it formats the same way */
static int format_address(Buf *b, const JVal *a) {
        if (!a || a->t != J_OBJ)
                return -1;
        const JVal *fam = json_get(a, "family"), *addr = json_get(a, "address");
        if (!fam || fam->t != J_NUM || !addr || addr->t != J_ARR)
                return -1;
        if (!strcmp(fam->s, "2")) {
                for (size_t i = 0; i < addr->n; i++) {
                        long n = byte_of(addr->v[i], 999999999);
                        if (n < 0)
                                return -1;
                        buf_printf(b, "%s%ld", i ? "." : "", n);
                }
                return 0;
        }
        /* (a family other than 2 written as a number: JavaScript's `=== 2` holds for "2.0" too) */
        if (strtod(fam->s, NULL) == 2 || addr->n != 16)
                return -1;
        unsigned g[8];
        for (int i = 0; i < 8; i++) {
                long hi = byte_of(addr->v[2 * i], 255), lo = byte_of(addr->v[2 * i + 1], 255);
                if (hi < 0 || lo < 0)
                        return -1;
                g[i] = (unsigned) (hi << 8 | lo);
        }
        /* groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::'): the first run of two zero groups or more becomes "::" */
        int from = -1, to = -1;
        for (int i = 0; i < 7; i++)
                if (g[i] == 0 && g[i + 1] == 0) {
                        from = i;
                        for (to = i + 1; to < 7 && g[to + 1] == 0; to++)
                                ;
                        break;
                }
        for (int i = 0; i < 8; i++) {
                if (from >= 0 && i >= from && i <= to) {
                        if (i == from)
                                buf_puts(b, "::");
                        continue;
                }
                buf_printf(b, "%s%x", i && !(from >= 0 && i == to + 1) ? ":" : "", g[i]);
        }
        return 0;
}

/* osField(): the value of the first line KEY=... of OSRELEASE (an array of valid strings), NULL when none */
static const char *os_field(const JVal *osr, const char *key) {
        if (!osr)
                return NULL;
        size_t n = strlen(key);
        for (size_t i = 0; i < osr->n; i++)
                if (!strncmp(osr->v[i]->s, key, n) && osr->v[i]->s[n] == '=')
                        return osr->v[i]->s + n + 1;
        return NULL;
}

typedef struct {
        const char *cell[6];
        JVal *addresses; /* J_ARR of J_STR */
} Row;

static const char *const COLUMNS[6] = { "MACHINE", "CLASS", "SERVICE", "OS", "VERSION", "ADDRESSES" };
static const char *const KEYS[6] = { "machine", "class", "service", "os", "version", "addresses" };

/* one machine of the List replies as list() makes its row; -1 when it is not what nspawnd sends */
static int make_row(const JVal *m, Row *r) {
        const char *name, *cls, *service;
        if (member_str(m, "name", NULL, &name) < 0 || member_str(m, "class", NULL, &cls) < 0 || member_str(m, "service", "", &service) < 0)
                return -1;
        const JVal *osr = json_get(m, "OSRelease");
        if (osr && osr->t == J_NULL)
                osr = NULL;
        if (osr) {
                if (osr->t != J_ARR)
                        return -1;
                for (size_t i = 0; i < osr->n; i++)
                        if (osr->v[i]->t != J_STR || !utf8_valid(osr->v[i]->s))
                                return -1;
        }
        const char *os = os_field(osr, "ID"), *version = os_field(osr, "VERSION_ID");
        const JVal *addrs = json_get(m, "addresses");
        if (addrs && addrs->t == J_NULL)
                addrs = NULL;
        if (addrs && addrs->t != J_ARR)
                return -1;
        JVal *list = calloc(1, sizeof *list);
        size_t n = addrs ? addrs->n : 0;
        list->t = J_ARR;
        list->v = calloc(n ? n : 1, sizeof *list->v);
        if (!list->v)
                return -1;
        for (size_t i = 0; i < n; i++) {
                Buf b = { 0 };
                buf_add(&b, "", 0);
                if (format_address(&b, addrs->v[i]) < 0)
                        return -1;
                list->v[list->n++] = jstr(b.p);
        }
        r->cell[0] = name;
        r->cell[1] = cls;
        r->cell[2] = service;
        r->cell[3] = os ? os : "";
        r->cell[4] = version ? version : "";
        r->addresses = list;
        return 0;
}

static int verb_list(const char *socket_path, const Opts *o) {
        int fd = unix_connect(socket_path);
        if (fd < 0)
                return run_node();
        Reply rep;
        call(fd, socket_path, "io.systemd.Machine.List", "{\"acquireMetadata\":\"graceful\"}", 1, LIST_TIMEOUT_MS, &rep);
        close(fd);
        size_t nrows = 0;
        if (rep.r == RES_FAILED || rep.nul)
                return run_node(); /* (nothing changed: the Node command asks again and says what it got) */
        if (rep.r == RES_ERROR) {
                if (strcmp(rep.error, "io.systemd.Machine.NoSuchMachine"))
                        return fail(error_message(&rep));
        } else
                nrows = rep.n;
        Row *rows = calloc(nrows ? nrows : 1, sizeof *rows);
        if (!rows)
                return run_node();
        for (size_t i = 0; i < nrows; i++)
                if (make_row(rep.replies[i], &rows[i]) < 0)
                        return run_node();
        Buf b = { 0 };
        buf_add(&b, "", 0);
        if (o->json) {
                /* JSON.stringify(rows[, null, 2]) */
                JVal arr = { .t = J_ARR, .n = nrows, .v = calloc(nrows ? nrows : 1, sizeof(JVal *)) };
                for (size_t i = 0; i < nrows; i++) {
                        JVal *obj = calloc(1, sizeof *obj);
                        obj->t = J_OBJ;
                        obj->n = 6;
                        obj->keys = (char **) KEYS;
                        obj->v = calloc(6, sizeof *obj->v);
                        for (int k = 0; k < 5; k++)
                                obj->v[k] = jstr(rows[i].cell[k]);
                        obj->v[5] = rows[i].addresses;
                        arr.v[i] = obj;
                }
                json_write(&b, &arr, o->json == 2 ? 2 : 0, 0);
                buf_puts(&b, "\n");
        } else {
                /* table(): the cells shown ("-" for an empty OS or version, the first address and "…" when more) */
                for (size_t i = 0; i < nrows; i++) {
                        Row *r = &rows[i];
                        if (!*r->cell[3])
                                r->cell[3] = "-";
                        if (!*r->cell[4])
                                r->cell[4] = "-";
                        if (r->addresses->n == 0)
                                r->cell[5] = "-";
                        else if (r->addresses->n == 1)
                                r->cell[5] = r->addresses->v[0]->s;
                        else {
                                Buf a = { 0 };
                                buf_puts(&a, r->addresses->v[0]->s);
                                buf_puts(&a, "…");
                                r->cell[5] = a.p;
                        }
                }
                size_t width[6];
                for (int c = 0; c < 6; c++) {
                        width[c] = o->legend ? strlen(COLUMNS[c]) : 0;
                        for (size_t i = 0; i < nrows; i++) {
                                size_t l = js_length(rows[i].cell[c]);
                                if (l > width[c])
                                        width[c] = l;
                        }
                }
                for (size_t i = (o->legend && nrows > 0) ? (size_t) -1 : 0; i != nrows; i++) {
                        const char *const *cells = i == (size_t) -1 ? COLUMNS : rows[i].cell;
                        /* padEnd() of each cell but the last, joined by a space (trimEnd() finds nothing to trim: the
                         * last cell never ends in white space) */
                        for (int c = 0; c < 6; c++) {
                                buf_puts(&b, cells[c]);
                                if (c < 5) {
                                        for (size_t l = js_length(cells[c]); l < width[c]; l++)
                                                buf_add(&b, " ", 1);
                                        buf_add(&b, " ", 1);
                                }
                        }
                        buf_puts(&b, "\n");
                }
                if (o->legend)
                        buf_printf(&b, "%s%zu machines listed.\n", nrows > 0 ? "\n" : "", nrows);
        }
        (void) fd_write_all(1, b.p, b.n);
        return 0;
}

/* ---- start, poweroff, reboot, terminate, kill ---- */

/*
 * call() of ctl-common.ts for machine NAME: METHOD with PARAMS (JSON text); 0, or 1 with the Node command's error.
 * FIRST: nothing was done yet (no answer at the socket: the Node command's turn).
 */
static int act(const char *socket_path, const char *method, const char *name, const char *params, int first, int *handed) {
        int fd = unix_connect(socket_path);
        if (fd < 0) {
                if (first) {
                        *handed = 1;
                        return run_node();
                }
                /* (the daemon went away between two machines: isNoDaemon(), or Node's connect error) */
                char m[600];
                if (errno == ENOENT || errno == ECONNREFUSED)
                        snprintf(m, sizeof m, "nspawnd is not running (no socket at %s).", socket_path);
                else
                        snprintf(m, sizeof m, "connect %s %s", strerrorname_np(errno) ?: "EIO", socket_path);
                return fail(m);
        }
        Reply rep;
        call(fd, socket_path, method, params, 0, 0, &rep);
        close(fd);
        if (rep.r == RES_OK)
                return 0;
        if (rep.r == RES_FAILED)
                return fail(rep.msg);
        Buf b = { 0 };
        if (!strcmp(rep.error, "io.systemd.Machine.NoSuchMachine"))
                buf_printf(&b, "No machine '%s' known.", name);
        else if (!strcmp(rep.error, "io.systemd.MachineImage.NoSuchImage"))
                buf_printf(&b, "No image '%s' known.", name);
        else
                buf_puts(&b, error_message(&rep));
        return fail(b.p);
}

static int verb_act(const char *socket_path, const char *verb, char **names, size_t n) {
        const char *method;
        const char *kill_args = NULL; /* Kill's signal and whom */
        if (!strcmp(verb, "start")) {
                if (n == 0)
                        return fail("start needs a machine name.");
                method = "io.nspawn.Machine.Start";
        } else if (!strcmp(verb, "terminate")) {
                if (n == 0)
                        return fail("terminate needs a machine name.");
                method = "io.systemd.Machine.Terminate";
        } else {
                if (n == 0)
                        return fail("A machine name is needed.");
                method = "io.systemd.Machine.Kill";
                /* SIGRTMIN+4, systemd's poweroff; SIGINT, its ctrl-alt-del (a reboot); kill: SIGTERM to all */
                kill_args = !strcmp(verb, "poweroff") ? ",\"signal\":38,\"whom\":\"leader\""
                            : !strcmp(verb, "reboot") ? ",\"signal\":2,\"whom\":\"leader\""
                                                      : ",\"signal\":15,\"whom\":\"all\"";
        }
        for (size_t i = 0; i < n; i++) {
                if (!strcmp(verb, "start") && !machine_name_valid(names[i])) {
                        Buf b = { 0 };
                        buf_printf(&b, "Invalid machine name %s.", names[i]);
                        return fail(b.p);
                }
                Buf p = { 0 };
                buf_puts(&p, "{\"name\":");
                json_write_string(&p, names[i]);
                if (kill_args)
                        buf_puts(&p, kill_args);
                buf_puts(&p, "}");
                int handed = 0;
                int r = act(socket_path, method, names[i], p.p, i == 0, &handed);
                if (r || handed)
                        return r;
        }
        return 0;
}

/* ---- the command line ---- */

int main(int argc, char **argv) {
        if (argc < 2) {
                fputs("nspawnctl-front: usage: nspawnctl-front NODE-ENTRY [NSPAWNCTL-ARGUMENTS...] (run by nspawnctl)\n", stderr);
                return 2;
        }
        entry = argv[1];
        args = argv + 2;
        /* getopt without permutation: options after the verb are operands there */
        if (getenv("POSIXLY_CORRECT"))
                return run_node();
        Opts o = { .legend = 1 };
        char **pos = calloc((size_t) argc, sizeof *pos);
        size_t npos = 0;
        if (!pos)
                return run_node();
        for (int i = 2; i < argc; i++) {
                const char *a = argv[i];
                /* every argument a JavaScript string holds unchanged (a machine name goes into JSON) */
                if (!utf8_valid(a))
                        return run_node();
                if (a[0] != '-' || !a[1]) {
                        pos[npos++] = argv[i];
                        continue;
                }
                const char *output = NULL;
                if (!strcmp(a, "--no-legend"))
                        o.legend = 0;
                else if (!strcmp(a, "--no-pager") || !strcmp(a, "--no-ask-password") || !strcmp(a, "-q") || !strcmp(a, "--quiet") || !strcmp(a, "-a") ||
                         !strcmp(a, "--all"))
                        ;
                else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
                        if (i + 1 >= argc)
                                return run_node();
                        output = argv[++i];
                } else if (!strncmp(a, "--output=", 9))
                        output = a + 9;
                else if (!strncmp(a, "-o", 2))
                        output = a + 2;
                else
                        return run_node();
                if (output) {
                        if (!strcmp(output, "json"))
                                o.json = 1;
                        else if (!strcmp(output, "json-pretty"))
                                o.json = 2;
                        else if (!strcmp(output, "short") || !strcmp(output, "table"))
                                o.json = 0;
                        else
                                return run_node();
                }
        }
        const char *verb = npos ? pos[0] : "list";
        int is_list = !strcmp(verb, "list");
        int is_act = !strcmp(verb, "start") || !strcmp(verb, "poweroff") || !strcmp(verb, "reboot") || !strcmp(verb, "terminate") || !strcmp(verb, "kill");
        if (!is_list && !(is_act && geteuid() == 0 && getuid() == 0))
                return run_node();
        /* machineSocketPath(): path.join($NSPAWND_RUNTIME_DIR || /run/nspawn, "io.systemd.Machine"); a directory that
         * path.join() would rewrite ("//", ".", "..", a trailing "/") is the Node command's */
        const char *dir = getenv("NSPAWND_RUNTIME_DIR");
        if (!dir || !*dir)
                dir = "/run/nspawn";
        size_t dl = strlen(dir);
        if (strstr(dir, "//") || dir[dl - 1] == '/' || !strcmp(dir, ".") || !strcmp(dir, "..") || !strncmp(dir, "./", 2) || !strncmp(dir, "../", 3) ||
            strstr(dir, "/./") || strstr(dir, "/../") || (dl >= 2 && !strcmp(dir + dl - 2, "/.")) || (dl >= 3 && !strcmp(dir + dl - 3, "/..")))
                return run_node();
        Buf sock = { 0 };
        buf_printf(&sock, "%s/io.systemd.Machine", dir);
        if (is_list)
                return verb_list(sock.p, &o);
        return verb_act(sock.p, verb, pos + 1, npos - 1);
}
