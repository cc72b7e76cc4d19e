/* UTF-16LE (the API's strings) to and from UTF-8 (everything inside). */
#ifndef HCS_SIM_WSTR_H
#define HCS_SIM_WSTR_H

#include <stddef.h>
#include "hcs.h"

/* A malloc'd UTF-8 copy; NULL in gives NULL out. Unpaired surrogates
 * become U+FFFD. */
char *wstr_to_utf8(const wchar16 *s);
/* A malloc'd NUL-terminated UTF-16 copy of UTF-8 text, and its length in
 * code units (without the NUL) in *units if units is not NULL. */
wchar16 *wstr_from_utf8(const char *s, size_t *units);
size_t wstr_len(const wchar16 *s);

#endif
