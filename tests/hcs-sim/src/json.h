/* A small JSON reader (a tree of values) and writer (a string builder). */
#ifndef HCS_SIM_JSON_H
#define HCS_SIM_JSON_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    JSON_NULL,
    JSON_BOOL,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT
} json_type;

typedef struct json_value json_value;
struct json_value {
    json_type type;
    bool boolean;
    double number;
    bool integral;       /* a number written without fraction or exponent */
    char *string;        /* UTF-8 */
    size_t count;        /* array or object members */
    json_value **items;  /* array elements, or object values */
    char **keys;         /* object keys, parallel to items */
};

/* Parses UTF-8 text. On failure returns NULL and writes a message naming
 * the line and column to err. */
json_value *json_parse(const char *text, char *err, size_t err_size);
void json_free(json_value *v);
/* The member called key (exact case), or NULL. */
const json_value *json_get(const json_value *object, const char *key);
const char *json_type_name(json_type t);

/* A growing string. After an allocation failure it stays empty and
 * sb_take returns NULL. */
typedef struct {
    char *buf;
    size_t len, cap;
    bool failed;
} sb;

void sb_add(sb *b, const char *s);
void sb_addf(sb *b, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Appends s as a quoted JSON string; NULL appends null. */
void sb_add_json(sb *b, const char *s);
char *sb_take(sb *b);
void sb_free(sb *b);

#endif
