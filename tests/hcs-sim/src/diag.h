/*
 * What tests read to prove the caller cleaned up: counters (the
 * HcsSimGetCounters export) and a trace file ($HCS_SIM_TRACE, one JSON
 * object per line, appended by every process that loads the library).
 * Also the result strings, because counting them is the point.
 */
#ifndef HCS_SIM_DIAG_H
#define HCS_SIM_DIAG_H

#include <stdbool.h>
#include <stdint.h>
#include "hcs.h"
#include "json.h"

typedef enum {
    COUNT_RESULTS_ALLOCATED,
    COUNT_RESULTS_FREED,
    COUNT_SYSTEM_HANDLES_OPENED,
    COUNT_SYSTEM_HANDLES_CLOSED,
    COUNT_PROCESS_HANDLES_OPENED,
    COUNT_PROCESS_HANDLES_CLOSED,
    COUNT_CALLBACKS_REGISTERED,
    COUNT_CALLBACKS_UNREGISTERED,
    COUNT_CALLBACKS_DROPPED_BY_CLOSE,
    COUNT_NOTIFICATIONS_DELIVERED,
    COUNT_BAD_FREES,
    COUNT_MAX
} counter;

void diag_count(counter c);
/* Appends "Name":value members for every counter. */
void diag_counters_json(sb *out);

/* A result string for the caller, allocated to be freed with CoTaskMemFree.
 * counted=false for HcsSimGetCounters' own answer, which must not count. */
wchar16 *diag_result_string(const char *utf8, bool counted);
/* Called for every CoTaskMemFree we see; true if p was one of ours. */
bool diag_forget(void *p);

/* Trace lines: diag_trace_begin gives false when tracing is off; else the
 * caller appends members after the common ones and calls diag_trace_end. */
bool diag_trace_begin(sb *line, const char *kind, const char *name);
void diag_trace_end(sb *line);
/* A one-member event such as {"event":"open","handle":"0x..."}. */
void diag_trace_event(const char *name, const char *key, const void *ptr);

#endif
