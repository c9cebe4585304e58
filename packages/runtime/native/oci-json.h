/*
 * nspawn-oci's front end: the little JSON it needs. A parser into a tree (the state record, ROOT/ID/state.json, as
 * @nspawn/oci's state.ts writes it) and a writer whose output is JSON.stringify()'s, byte for byte, for what the
 * front end prints (`state`: JSON.stringify(state, null, 2)) and passes on (the monitor's arguments).
 */
#pragma once
#include <stddef.h>

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } JType;

typedef struct JVal {
        JType t;
        /* J_STR: the string (UTF-8, unescaped); J_NUM: the number's text as written; J_BOOL: "true"/"false" */
        char *s;
        /* J_ARR, J_OBJ: N members; KEYS (J_OBJ only) and V */
        size_t n;
        char **keys;
        struct JVal **v;
} JVal;

/* TEXT parsed (one value, whitespace around it); NULL when it is not JSON. Never freed: the front end is short-lived */
JVal *json_parse(const char *text);

/* the member KEY of object O (NULL when O is not an object or has none) */
const JVal *json_get(const JVal *o, const char *key);

/* the string member KEY of O, NULL when missing or not a string */
const char *json_str(const JVal *o, const char *key);

/* the integer member KEY of O, DEF when missing or not a number */
long json_long(const JVal *o, const char *key, long def);

/* a growing string */
typedef struct {
        char *p;
        size_t n, cap;
} Buf;

void buf_add(Buf *b, const char *s, size_t n);
void buf_puts(Buf *b, const char *s);
void buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* S as a JSON string, escaped as JSON.stringify() escapes it */
void json_write_string(Buf *b, const char *s);

/* V as JSON.stringify(V, null, INDENT) writes it at nesting LEVEL (INDENT 0: compact) */
void json_write(Buf *b, const JVal *v, int indent, int level);
