/* Line framing and key=value encoding for the supervisor protocol. */
#include "protocol.h"

#include <stdlib.h>
#include <string.h>

void line_buf_feed(line_buf *b, const char *data, size_t len) {
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + len) cap *= 2;
        char *bigger = realloc(b->data, cap);
        if (!bigger) return;
        b->data = bigger;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

char *line_buf_next(line_buf *b) {
    char *nl = b->len ? memchr(b->data, '\n', b->len) : NULL;
    if (!nl) return NULL;
    size_t n = (size_t)(nl - b->data);
    char *line = malloc(n + 1);
    if (!line) return NULL;
    memcpy(line, b->data, n);
    line[n] = 0;
    if (n > 0 && line[n - 1] == '\r') line[n - 1] = 0;
    memmove(b->data, nl + 1, b->len - n - 1);
    b->len -= n + 1;
    return line;
}

void line_buf_free(line_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void proto_add(sb *line, const char *key, const char *value) {
    sb_addf(line, " %s=", key);
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if (*p <= ' ' || *p == '%' || *p == '=' || *p >= 0x7F) {
            sb_addf(line, "%%%02X", *p);
        } else {
            char one[2] = {(char)*p, 0};
            sb_add(line, one);
        }
    }
}

void proto_add_int(sb *line, const char *key, long long value) {
    sb_addf(line, " %s=%lld", key, value);
}

void proto_add_hr(sb *line, const char *key, hresult value) {
    sb_addf(line, " %s=0x%08lX", key, (unsigned long)(uint32_t)value);
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

char *proto_get(const char *line, const char *key) {
    size_t klen = strlen(key);
    for (const char *p = strchr(line, ' '); p; p = strchr(p + 1, ' ')) {
        if (strncmp(p + 1, key, klen) != 0 || p[1 + klen] != '=') continue;
        const char *v = p + 2 + klen;
        size_t n = strcspn(v, " ");
        char *out = malloc(n + 1);
        if (!out) return NULL;
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
            int hi, lo;
            if (v[i] == '%' && i + 2 < n && (hi = hex_digit(v[i + 1])) >= 0 &&
                (lo = hex_digit(v[i + 2])) >= 0) {
                out[o++] = (char)(hi * 16 + lo);
                i += 2;
            } else {
                out[o++] = v[i];
            }
        }
        out[o] = 0;
        return out;
    }
    return NULL;
}

long long proto_get_int(const char *line, const char *key, long long fallback) {
    char *v = proto_get(line, key);
    if (!v) return fallback;
    char *end;
    long long n = strtoll(v, &end, 0);
    bool ok = *v && !*end;
    free(v);
    return ok ? n : fallback;
}

bool proto_is(const char *line, const char *verb) {
    size_t n = strlen(verb);
    return strncmp(line, verb, n) == 0 && (line[n] == 0 || line[n] == ' ');
}
