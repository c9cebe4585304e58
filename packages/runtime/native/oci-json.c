/* nspawn-oci's front end: JSON (see oci-json.h). */
#define _GNU_SOURCE
#include "oci-json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xmalloc(size_t n) {
        void *p = calloc(1, n ? n : 1);
        if (!p) {
                fputs("nspawn-oci: out of memory\n", stderr);
                exit(1);
        }
        return p;
}

void buf_add(Buf *b, const char *s, size_t n) {
        if (b->n + n + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 256;
                while (cap < b->n + n + 1)
                        cap *= 2;
                char *p = realloc(b->p, cap);
                if (!p) {
                        fputs("nspawn-oci: out of memory\n", stderr);
                        exit(1);
                }
                b->p = p;
                b->cap = cap;
        }
        memcpy(b->p + b->n, s, n);
        b->n += n;
        b->p[b->n] = 0;
}

void buf_puts(Buf *b, const char *s) {
        buf_add(b, s, strlen(s));
}

void buf_printf(Buf *b, const char *fmt, ...) {
        char tmp[512];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        if ((size_t) n < sizeof tmp) {
                buf_add(b, tmp, (size_t) n);
                return;
        }
        char *big = xmalloc((size_t) n + 1);
        va_start(ap, fmt);
        vsnprintf(big, (size_t) n + 1, fmt, ap);
        va_end(ap);
        buf_add(b, big, (size_t) n);
        free(big);
}

typedef struct {
        const char *p;
        int depth;
} Parser;

static void skip_ws(Parser *ps) {
        while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')
                ps->p++;
}

static int hex4(const char *p, unsigned *out) {
        unsigned v = 0;
        for (int i = 0; i < 4; i++) {
                char c = p[i];
                v <<= 4;
                if (c >= '0' && c <= '9')
                        v |= (unsigned) (c - '0');
                else if (c >= 'a' && c <= 'f')
                        v |= (unsigned) (c - 'a' + 10);
                else if (c >= 'A' && c <= 'F')
                        v |= (unsigned) (c - 'A' + 10);
                else
                        return -1;
        }
        *out = v;
        return 0;
}

static void put_utf8(Buf *b, unsigned c) {
        char o[4];
        size_t n;
        if (c < 0x80) {
                o[0] = (char) c;
                n = 1;
        } else if (c < 0x800) {
                o[0] = (char) (0xc0 | (c >> 6));
                o[1] = (char) (0x80 | (c & 0x3f));
                n = 2;
        } else if (c < 0x10000) {
                o[0] = (char) (0xe0 | (c >> 12));
                o[1] = (char) (0x80 | ((c >> 6) & 0x3f));
                o[2] = (char) (0x80 | (c & 0x3f));
                n = 3;
        } else {
                o[0] = (char) (0xf0 | (c >> 18));
                o[1] = (char) (0x80 | ((c >> 12) & 0x3f));
                o[2] = (char) (0x80 | ((c >> 6) & 0x3f));
                o[3] = (char) (0x80 | (c & 0x3f));
                n = 4;
        }
        buf_add(b, o, n);
}

/* a string at ps->p (on its opening quote); NULL when malformed */
static char *parse_string(Parser *ps) {
        Buf b = { 0 };
        buf_add(&b, "", 0);
        ps->p++;
        for (;;) {
                unsigned char c = (unsigned char) *ps->p;
                if (c == 0 || c < 0x20)
                        return NULL;
                if (c == '"') {
                        ps->p++;
                        return b.p;
                }
                if (c != '\\') {
                        const char *start = ps->p;
                        while (*ps->p && *ps->p != '"' && *ps->p != '\\' && (unsigned char) *ps->p >= 0x20)
                                ps->p++;
                        buf_add(&b, start, (size_t) (ps->p - start));
                        continue;
                }
                char e = ps->p[1];
                ps->p += 2;
                switch (e) {
                case '"': buf_add(&b, "\"", 1); break;
                case '\\': buf_add(&b, "\\", 1); break;
                case '/': buf_add(&b, "/", 1); break;
                case 'b': buf_add(&b, "\b", 1); break;
                case 'f': buf_add(&b, "\f", 1); break;
                case 'n': buf_add(&b, "\n", 1); break;
                case 'r': buf_add(&b, "\r", 1); break;
                case 't': buf_add(&b, "\t", 1); break;
                case 'u': {
                        unsigned u, lo;
                        if (hex4(ps->p, &u) < 0)
                                return NULL;
                        ps->p += 4;
                        if (u >= 0xd800 && u < 0xdc00 && ps->p[0] == '\\' && ps->p[1] == 'u' && hex4(ps->p + 2, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
                                ps->p += 6;
                                u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
                        }
                        put_utf8(&b, u);
                        break;
                }
                default:
                        return NULL;
                }
        }
}

static JVal *parse_value(Parser *ps);

static JVal *parse_members(Parser *ps, JType t) {
        JVal *v = xmalloc(sizeof *v);
        v->t = t;
        size_t cap = 0;
        char close = t == J_OBJ ? '}' : ']';
        ps->p++;
        skip_ws(ps);
        if (*ps->p == close) {
                ps->p++;
                return v;
        }
        if (++ps->depth > 64)
                return NULL;
        for (;;) {
                char *key = NULL;
                skip_ws(ps);
                if (t == J_OBJ) {
                        if (*ps->p != '"' || !(key = parse_string(ps)))
                                return NULL;
                        skip_ws(ps);
                        if (*ps->p++ != ':')
                                return NULL;
                }
                JVal *m = parse_value(ps);
                if (!m)
                        return NULL;
                if (v->n == cap) {
                        cap = cap ? cap * 2 : 8;
                        v->v = realloc(v->v, cap * sizeof *v->v);
                        v->keys = realloc(v->keys, cap * sizeof *v->keys);
                        if (!v->v || !v->keys) {
                                fputs("nspawn-oci: out of memory\n", stderr);
                                exit(1);
                        }
                }
                v->keys[v->n] = key;
                v->v[v->n++] = m;
                skip_ws(ps);
                if (*ps->p == ',') {
                        ps->p++;
                        continue;
                }
                if (*ps->p++ != close)
                        return NULL;
                ps->depth--;
                return v;
        }
}

static JVal *parse_value(Parser *ps) {
        skip_ws(ps);
        const char *p = ps->p;
        if (*p == '{')
                return parse_members(ps, J_OBJ);
        if (*p == '[')
                return parse_members(ps, J_ARR);
        JVal *v = xmalloc(sizeof *v);
        if (*p == '"') {
                v->t = J_STR;
                return (v->s = parse_string(ps)) ? v : NULL;
        }
        if (!strncmp(p, "true", 4) || !strncmp(p, "false", 5)) {
                v->t = J_BOOL;
                v->s = *p == 't' ? "true" : "false";
                ps->p += *p == 't' ? 4 : 5;
                return v;
        }
        if (!strncmp(p, "null", 4)) {
                v->t = J_NULL;
                ps->p += 4;
                return v;
        }
        if (*p == '-' || (*p >= '0' && *p <= '9')) {
                const char *e = p + 1;
                while ((*e >= '0' && *e <= '9') || *e == '.' || *e == 'e' || *e == 'E' || *e == '+' || *e == '-')
                        e++;
                v->t = J_NUM;
                v->s = strndup(p, (size_t) (e - p));
                ps->p = e;
                return v;
        }
        return NULL;
}

JVal *json_parse(const char *text) {
        Parser ps = { .p = text };
        JVal *v = parse_value(&ps);
        if (!v)
                return NULL;
        skip_ws(&ps);
        return *ps.p ? NULL : v;
}

const JVal *json_get(const JVal *o, const char *key) {
        if (!o || o->t != J_OBJ)
                return NULL;
        /* the last of duplicate keys, as JSON.parse() */
        for (size_t i = o->n; i-- > 0;)
                if (!strcmp(o->keys[i], key))
                        return o->v[i];
        return NULL;
}

const char *json_str(const JVal *o, const char *key) {
        const JVal *v = json_get(o, key);
        return v && v->t == J_STR ? v->s : NULL;
}

long json_long(const JVal *o, const char *key, long def) {
        const JVal *v = json_get(o, key);
        return v && v->t == J_NUM ? strtol(v->s, NULL, 10) : def;
}

void json_write_string(Buf *b, const char *s) {
        buf_add(b, "\"", 1);
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                switch (*p) {
                case '"': buf_add(b, "\\\"", 2); break;
                case '\\': buf_add(b, "\\\\", 2); break;
                case '\b': buf_add(b, "\\b", 2); break;
                case '\f': buf_add(b, "\\f", 2); break;
                case '\n': buf_add(b, "\\n", 2); break;
                case '\r': buf_add(b, "\\r", 2); break;
                case '\t': buf_add(b, "\\t", 2); break;
                default:
                        if (*p < 0x20)
                                buf_printf(b, "\\u%04x", *p);
                        else
                                buf_add(b, (const char *) p, 1);
                }
        }
        buf_add(b, "\"", 1);
}

static void newline(Buf *b, int indent, int level) {
        if (!indent)
                return;
        buf_add(b, "\n", 1);
        for (int i = 0; i < indent * level; i++)
                buf_add(b, " ", 1);
}

void json_write(Buf *b, const JVal *v, int indent, int level) {
        switch (v->t) {
        case J_NULL: buf_puts(b, "null"); return;
        case J_BOOL:
        case J_NUM: buf_puts(b, v->s); return;
        case J_STR: json_write_string(b, v->s); return;
        case J_ARR:
        case J_OBJ: break;
        }
        buf_puts(b, v->t == J_OBJ ? "{" : "[");
        for (size_t i = 0; i < v->n; i++) {
                if (i)
                        buf_puts(b, ",");
                newline(b, indent, level + 1);
                if (v->t == J_OBJ) {
                        json_write_string(b, v->keys[i]);
                        buf_puts(b, indent ? ": " : ":");
                }
                json_write(b, v->v[i], indent, level + 1);
        }
        if (v->n)
                newline(b, indent, level);
        buf_puts(b, v->t == J_OBJ ? "}" : "]");
}
