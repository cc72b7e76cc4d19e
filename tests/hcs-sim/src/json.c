/* JSON (RFC 8259) for the schema documents and the simulator's own files:
 * a recursive-descent reader and a string builder for output. */
#include "json.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

typedef struct {
    const char *text;
    size_t pos;
    char *err;
    size_t err_size;
    bool failed;
} reader;

static void fail(reader *r, const char *what) {
    if (r->failed) return;
    r->failed = true;
    size_t line = 1, col = 1;
    for (size_t i = 0; i < r->pos && r->text[i]; i++) {
        if (r->text[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    snprintf(r->err, r->err_size, "line %zu, column %zu: %s", line, col, what);
}

static void skip_space(reader *r) {
    for (;;) {
        char c = r->text[r->pos];
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return;
        r->pos++;
    }
}

static json_value *new_value(json_type t) {
    json_value *v = calloc(1, sizeof *v);
    if (v) v->type = t;
    return v;
}

static int hex4(const char *s) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static void put_utf8(sb *b, uint32_t cp) {
    char s[5] = {0};
    if (cp < 0x80) {
        s[0] = (char)cp;
    } else if (cp < 0x800) {
        s[0] = (char)(0xC0 | (cp >> 6));
        s[1] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        s[0] = (char)(0xE0 | (cp >> 12));
        s[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        s[2] = (char)(0x80 | (cp & 0x3F));
    } else {
        s[0] = (char)(0xF0 | (cp >> 18));
        s[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        s[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        s[3] = (char)(0x80 | (cp & 0x3F));
    }
    sb_add(b, s);
}

/* Reads a string starting at the opening quote. */
static char *read_string(reader *r) {
    sb out = {0};
    r->pos++;
    for (;;) {
        unsigned char c = (unsigned char)r->text[r->pos];
        if (c == '"') {
            r->pos++;
            return sb_take(&out);
        }
        if (c == 0 || c < 0x20) {
            fail(r, c ? "control character in string" : "unterminated string");
            break;
        }
        if (c != '\\') {
            char one[2] = {(char)c, 0};
            sb_add(&out, one);
            r->pos++;
            continue;
        }
        char e = r->text[r->pos + 1];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            char one[2] = {map[simple - "\"\\/bfnrt"], 0};
            sb_add(&out, one);
            r->pos += 2;
            continue;
        }
        if (e != 'u') {
            fail(r, "invalid escape in string");
            break;
        }
        int cp = hex4(r->text + r->pos + 2);
        if (cp < 0) {
            fail(r, "invalid \\u escape");
            break;
        }
        r->pos += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF && r->text[r->pos] == '\\' &&
            r->text[r->pos + 1] == 'u') {
            int lo = hex4(r->text + r->pos + 2);
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                r->pos += 6;
            }
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
        put_utf8(&out, (uint32_t)cp);
    }
    sb_free(&out);
    return NULL;
}

static json_value *read_value(reader *r, int depth);

static bool append(json_value *v, char *key, json_value *item) {
    json_value **items = realloc(v->items, (v->count + 1) * sizeof *items);
    if (!items) return false;
    v->items = items;
    if (v->type == JSON_OBJECT) {
        char **keys = realloc(v->keys, (v->count + 1) * sizeof *keys);
        if (!keys) return false;
        v->keys = keys;
        v->keys[v->count] = key;
    }
    v->items[v->count++] = item;
    return true;
}

/* An array or an object: the two share everything but the keys. */
static json_value *read_container(reader *r, int depth, bool object) {
    char close = object ? '}' : ']';
    json_value *v = new_value(object ? JSON_OBJECT : JSON_ARRAY);
    if (!v) return NULL;
    r->pos++;
    skip_space(r);
    if (r->text[r->pos] == close) {
        r->pos++;
        return v;
    }
    for (;;) {
        char *key = NULL;
        skip_space(r);
        if (object) {
            if (r->text[r->pos] != '"') {
                fail(r, "expected a member name in double quotes");
                break;
            }
            if (!(key = read_string(r))) break;
            skip_space(r);
            if (r->text[r->pos] != ':') {
                free(key);
                fail(r, "expected ':' after a member name");
                break;
            }
            r->pos++;
        }
        json_value *item = read_value(r, depth + 1);
        if (!item || !append(v, key, item)) {
            free(key);
            json_free(item);
            break;
        }
        skip_space(r);
        if (r->text[r->pos] == ',') {
            r->pos++;
            continue;
        }
        if (r->text[r->pos] == close) {
            r->pos++;
            return v;
        }
        fail(r, object ? "expected ',' or '}'" : "expected ',' or ']'");
        break;
    }
    json_free(v);
    return NULL;
}

static json_value *read_number(reader *r) {
    const char *start = r->text + r->pos;
    const char *p = start;
    bool integral = true;
    if (*p == '-') p++;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (*p >= '0' && *p <= '9') p++;
    } else {
        fail(r, "unexpected character");
        return NULL;
    }
    if (*p == '.') {
        integral = false;
        p++;
        if (!(*p >= '0' && *p <= '9')) {
            fail(r, "expected a digit after '.'");
            return NULL;
        }
        while (*p >= '0' && *p <= '9') p++;
    }
    if (*p == 'e' || *p == 'E') {
        integral = false;
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!(*p >= '0' && *p <= '9')) {
            fail(r, "expected a digit in the exponent");
            return NULL;
        }
        while (*p >= '0' && *p <= '9') p++;
    }
    json_value *v = new_value(JSON_NUMBER);
    if (!v) return NULL;
    v->number = strtod(start, NULL);
    v->integral = integral;
    r->pos += (size_t)(p - start);
    return v;
}

static json_value *read_word(reader *r, const char *word, json_type t, bool b) {
    size_t n = strlen(word);
    if (strncmp(r->text + r->pos, word, n) != 0) {
        fail(r, "unexpected character");
        return NULL;
    }
    r->pos += n;
    json_value *v = new_value(t);
    if (v) v->boolean = b;
    return v;
}

static json_value *read_value(reader *r, int depth) {
    if (depth > MAX_DEPTH) {
        fail(r, "nested too deeply");
        return NULL;
    }
    skip_space(r);
    char c = r->text[r->pos];
    switch (c) {
    case '{': return read_container(r, depth, true);
    case '[': return read_container(r, depth, false);
    case 't': return read_word(r, "true", JSON_BOOL, true);
    case 'f': return read_word(r, "false", JSON_BOOL, false);
    case 'n': return read_word(r, "null", JSON_NULL, false);
    case 0: fail(r, "unexpected end of the document"); return NULL;
    case '"': {
        char *s = read_string(r);
        json_value *v = s ? new_value(JSON_STRING) : NULL;
        if (v) v->string = s;
        else free(s);
        return v;
    }
    default: return read_number(r);
    }
}

json_value *json_parse(const char *text, char *err, size_t err_size) {
    reader r = {text, 0, err, err_size, false};
    json_value *v = read_value(&r, 0);
    if (v) {
        skip_space(&r);
        if (text[r.pos]) fail(&r, "unexpected text after the document");
    }
    if (r.failed || !v) {
        if (!r.failed) fail(&r, "out of memory");
        json_free(v);
        return NULL;
    }
    return v;
}

void json_free(json_value *v) {
    if (!v) return;
    for (size_t i = 0; i < v->count; i++) {
        json_free(v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->string);
    free(v);
}

const json_value *json_get(const json_value *object, const char *key) {
    if (!object || object->type != JSON_OBJECT) return NULL;
    for (size_t i = 0; i < object->count; i++)
        if (strcmp(object->keys[i], key) == 0) return object->items[i];
    return NULL;
}

const char *json_type_name(json_type t) {
    static const char *names[] = {"null",   "a boolean", "a number",
                                  "a string", "an array", "an object"};
    return names[t];
}

/* --- writing --- */

static bool reserve(sb *b, size_t more) {
    if (b->failed) return false;
    if (b->len + more + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + more + 1) cap *= 2;
    char *buf = realloc(b->buf, cap);
    if (!buf) {
        sb_free(b);
        b->failed = true;
        return false;
    }
    b->buf = buf;
    b->cap = cap;
    return true;
}

void sb_add(sb *b, const char *s) {
    size_t n = strlen(s);
    if (!reserve(b, n)) return;
    memcpy(b->buf + b->len, s, n + 1);
    b->len += n;
}

void sb_addf(sb *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->buf + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void sb_add_json(sb *b, const char *s) {
    if (!s) {
        sb_add(b, "null");
        return;
    }
    sb_add(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': sb_add(b, "\\\""); break;
        case '\\': sb_add(b, "\\\\"); break;
        case '\n': sb_add(b, "\\n"); break;
        case '\r': sb_add(b, "\\r"); break;
        case '\t': sb_add(b, "\\t"); break;
        default:
            if (*p < 0x20) {
                sb_addf(b, "\\u%04x", *p);
            } else {
                char one[2] = {(char)*p, 0};
                sb_add(b, one);
            }
        }
    }
    sb_add(b, "\"");
}

char *sb_take(sb *b) {
    if (!reserve(b, 0)) return NULL; /* also gives an empty string a buffer */
    b->buf[b->len] = 0;
    char *s = b->buf;
    b->buf = NULL;
    b->len = b->cap = 0;
    return s;
}

void sb_free(sb *b) {
    free(b->buf);
    b->buf = NULL;
    b->len = b->cap = 0;
}
