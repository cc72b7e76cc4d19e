/*
 * The supervisor protocol (README.md, "Supervisor protocol"): text lines
 * over loopback TCP, "verb key=value key=value", values percent-encoded so
 * that a line never holds a space, '=' or newline of its own.
 */
#ifndef HCS_SIM_PROTOCOL_H
#define HCS_SIM_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hcs.h"
#include "json.h"

/* Bytes in, whole lines out. */
typedef struct {
    char *data;
    size_t len, cap;
} line_buf;

void line_buf_feed(line_buf *b, const char *data, size_t len);
/* The next complete line (malloc'd, without "\n"), or NULL. */
char *line_buf_next(line_buf *b);
void line_buf_free(line_buf *b);

/* Appends " key=<encoded value>". */
void proto_add(sb *line, const char *key, const char *value);
void proto_add_int(sb *line, const char *key, long long value);
void proto_add_hr(sb *line, const char *key, hresult value);
/* The decoded value of key in line (malloc'd), or NULL. */
char *proto_get(const char *line, const char *key);
long long proto_get_int(const char *line, const char *key, long long fallback);
/* True if line's first word is verb. */
bool proto_is(const char *line, const char *verb);

#endif
