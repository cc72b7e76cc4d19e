/* UTF-16LE <-> UTF-8, written out because Linux's wchar_t is 32 bits and
 * the API's strings are not. */
#include "wstr.h"

#include <stdlib.h>

size_t wstr_len(const wchar16 *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

static size_t put_utf8(char *out, uint32_t cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

char *wstr_to_utf8(const wchar16 *s) {
    if (!s) return NULL;
    size_t n = wstr_len(s);
    char *out = malloc(n * 3 + 1); /* a unit never needs more than 3 bytes */
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = s[i];
        if (cp >= 0xD800 && cp <= 0xDBFF && i + 1 < n && s[i + 1] >= 0xDC00 &&
            s[i + 1] <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (s[i + 1] - 0xDC00);
            i++;
        } else if (cp >= 0xD800 && cp <= 0xDFFF) {
            cp = 0xFFFD;
        }
        o += put_utf8(out + o, cp);
    }
    out[o] = 0;
    return out;
}

/* Decodes one UTF-8 sequence at s, storing its length; invalid bytes give
 * U+FFFD and advance by one. */
static uint32_t next_cp(const unsigned char *s, size_t *len) {
    unsigned char c = s[0];
    int extra = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2
                                : (c >> 3) == 30 ? 3 : -1;
    *len = 1;
    if (extra < 0) return 0xFFFD;
    uint32_t cp = extra == 0 ? c : c & (0x3F >> extra);
    for (int k = 1; k <= extra; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0xFFFD;
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    *len = (size_t)extra + 1;
    return cp;
}

wchar16 *wstr_from_utf8(const char *s, size_t *units) {
    const unsigned char *p = (const unsigned char *)s;
    size_t bytes = 0;
    while (p[bytes]) bytes++;
    wchar16 *out = malloc((bytes + 1) * sizeof *out);
    if (!out) return NULL;
    size_t o = 0, len;
    for (size_t i = 0; i < bytes; i += len) {
        uint32_t cp = next_cp(p + i, &len);
        if (cp >= 0x10000) {
            cp -= 0x10000;
            out[o++] = (wchar16)(0xD800 + (cp >> 10));
            out[o++] = (wchar16)(0xDC00 + (cp & 0x3FF));
        } else {
            out[o++] = (wchar16)cp;
        }
    }
    out[o] = 0;
    if (units) *units = o;
    return out;
}
