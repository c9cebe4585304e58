/* nspawn-oci's front end: main, the command line as the Node command parses it, the log, the hand-over to Node. */
#define _GNU_SOURCE
#include "oci-front.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* the Node command's BOOL and ALIASES (apps/cli/src/nspawn-oci.ts) */
static const char *const BOOLS[] = { "detach", "d", "force", "f", "all", "a", "no-pivot", "no-new-keyring", "systemd-cgroup", "debug", "rootless",
                                     "help", "h", "version", "v", "keep", "tty", "t", "q", "quiet", "no-subreaper", NULL };
static const char *const ALIASES[][2] = { { "b", "bundle" }, { "d", "detach" }, { "f", "force" }, { "a", "all" }, { "h", "help" }, { "v", "version" },
                                          { "t", "tty" }, { "p", "process" }, { "e", "env" }, { "u", "user" }, { "q", "quiet" }, { NULL, NULL } };

/* what each verb served here accepts (anything else goes to Node, which knows it or says why not) */
static const struct {
        const char *verb;
        const char *opts[8];
        int (*run)(Call *);
} VERBS[] = {
        { "state", { NULL }, verb_state },
        { "start", { NULL }, verb_start },
        { "kill", { "all", NULL }, verb_kill },
        { "delete", { "force", NULL }, verb_delete },
        { "create", { "bundle", "pid-file", "console-socket", "preserve-fds", "no-new-keyring", "no-pivot", NULL }, verb_create },
};
static const char *const GLOBALS[] = { "root", "log", "log-format", "debug", NULL };

static int in(const char *const *list, const char *s) {
        for (; *list; list++)
                if (!strcmp(*list, s))
                        return 1;
        return 0;
}

const char *opt(const Call *c, const char *name) {
        for (size_t i = c->nopts; i-- > 0;)
                if (!strcmp(c->opts[i].name, name))
                        return c->opts[i].value;
        return NULL;
}

int flag(const Call *c, const char *name) {
        const char *v = opt(c, name);
        return v && strcmp(v, "false");
}

int run_node(const Call *c) {
        size_t n = 0;
        while (c->argv[n])
                n++;
        char **av = calloc(n + 3, sizeof *av);
        if (!av)
                return 1;
        av[0] = "node";
        av[1] = (char *) c->entry;
        memcpy(av + 2, c->argv, n * sizeof *av);
        execvp("node", av);
        fprintf(stderr, "nspawn-oci: cannot run node (%s): %s\n", c->entry, strerror(errno));
        return 1;
}

const char *err_name(int e) {
        const char *n = strerrorname_np(e);
        return n ? n : "EIO";
}

const char *node_error(int e, const char *syscall, const char *path) {
        static char b[4200];
        char msg[256];
        snprintf(msg, sizeof msg, "%s", strerror(e));
        msg[0] = (char) tolower((unsigned char) msg[0]);
        if (path)
                snprintf(b, sizeof b, "%s: %s, %s '%s'", err_name(e), msg, syscall, path);
        else
                snprintf(b, sizeof b, "%s: %s, %s", err_name(e), msg, syscall);
        return b;
}

/* new Date().toISOString() */
static void iso_now(char *b, size_t size) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        struct tm tm;
        gmtime_r(&tv.tv_sec, &tm);
        snprintf(b, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (long) tv.tv_usec / 1000);
}

int fail(const Call *c, const char *fmt, ...) {
        char msg[4096];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        /* openLog()'s line: text "TIME error: MSG", or runc's JSON {"level","msg","time"} */
        if (c->log_fd >= 0) {
                char t[96];
                iso_now(t, sizeof t);
                Buf b = { 0 };
                if (c->json_log) {
                        buf_puts(&b, "{\"level\":\"error\",\"msg\":");
                        json_write_string(&b, msg);
                        buf_printf(&b, ",\"time\":\"%s\"}\n", t);
                } else
                        buf_printf(&b, "%s error: %s\n", t, msg);
                if (write(c->log_fd, b.p, b.n) < 0) {
                        /* nowhere to say it */
                }
        }
        fprintf(stderr, "%s\n", msg);
        return 1;
}

/*
 * The Node command's parse(): global options before the command, the command's after it; --NAME=V, --NAME V, -N V,
 * boolean options without a value, "--" ends the options. 0, or -1 when Node must see the call (a malformed
 * option: Node says what is wrong with it).
 */
static int parse(Call *c, char **argv) {
        static Opt opts[256];
        static const char *args[256];
        for (size_t i = 0; argv[i]; i++) {
                char *a = argv[i];
                if (!strcmp(a, "--")) {
                        for (i++; argv[i]; i++) {
                                if (c->nargs == 256)
                                        return -1;
                                args[c->nargs++] = argv[i];
                        }
                        break;
                }
                if (a[0] == '-' && a[1]) {
                        /* exec's and ps's own arguments after the ID are not ours: those verbs are Node's anyway */
                        const char *name = a + (a[1] == '-' ? 2 : 1);
                        if (!*name || *name == '=')
                                return -1;
                        const char *eq = strchr(name, '=');
                        char *nm = eq ? strndup(name, (size_t) (eq - name)) : strdup(name);
                        for (int k = 0; ALIASES[k][0]; k++)
                                if (!strcmp(nm, ALIASES[k][0]))
                                        nm = (char *) ALIASES[k][1];
                        const char *value = eq ? eq + 1 : NULL;
                        if (!value) {
                                if (in(BOOLS, nm))
                                        value = "true";
                                else if (!(value = argv[++i]))
                                        return -1;
                        }
                        if (!c->command) {
                                if (!in(GLOBALS, nm))
                                        return -1;
                                if (!strcmp(nm, "root"))
                                        c->root = value;
                                else if (!strcmp(nm, "log"))
                                        c->log = value;
                                else if (!strcmp(nm, "log-format"))
                                        c->json_log = !strcmp(value, "json");
                                continue;
                        }
                        if (c->nopts == 256)
                                return -1;
                        opts[c->nopts++] = (Opt) { nm, value };
                        continue;
                }
                if (!c->command)
                        c->command = a;
                else {
                        if (c->nargs == 256)
                                return -1;
                        args[c->nargs++] = a;
                }
        }
        c->opts = opts;
        c->args = args;
        return 0;
}

int main(int argc, char **argv) {
        if (argc < 2) {
                fputs("nspawn-oci-front: usage: nspawn-oci-front NODE-ENTRY [RUNC-ARGUMENTS...] (run by nspawn-oci)\n", stderr);
                return 2;
        }
        Call c = { .entry = argv[1], .argv = argv + 2, .root = "/run/nspawn-oci", .log_fd = -1 };
        if (parse(&c, argv + 2) < 0 || !c.command)
                return run_node(&c);
        for (size_t v = 0; v < sizeof VERBS / sizeof *VERBS; v++) {
                if (strcmp(VERBS[v].verb, c.command))
                        continue;
                for (size_t i = 0; i < c.nopts; i++)
                        if (!in(VERBS[v].opts, c.opts[i].name))
                                return run_node(&c);
                if (c.log) {
                        c.log_fd = open(c.log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
                        if (c.log_fd < 0)
                                return run_node(&c);
                }
                return VERBS[v].run(&c);
        }
        return run_node(&c);
}
