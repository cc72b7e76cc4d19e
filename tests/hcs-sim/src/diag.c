/* Counters, the trace file, and the result strings they account for. */
#include "diag.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform.h"
#include "wstr.h"

static plat_mutex diag_lock = PLAT_MUTEX_INIT;
static int64_t counters[COUNT_MAX];

static const char *const counter_names[COUNT_MAX] = {
    "ResultsAllocated",        "ResultsFreed",
    "SystemHandlesOpened",     "SystemHandlesClosed",
    "ProcessHandlesOpened",    "ProcessHandlesClosed",
    "CallbacksRegistered",     "CallbacksUnregistered",
    "CallbacksDroppedByClose", "NotificationsDelivered",
    "BadFrees",
};

/* Every string we handed out and not yet seen freed. Tests keep few alive
 * at a time, so a plain array is enough. */
typedef struct {
    void *ptr;
    bool counted;
} allocation;
static allocation *live;
static size_t live_count, live_cap;

void diag_count(counter c) {
    plat_lock(&diag_lock);
    counters[c]++;
    plat_unlock(&diag_lock);
}

void diag_counters_json(sb *out) {
    plat_lock(&diag_lock);
    for (int i = 0; i < COUNT_MAX; i++)
        sb_addf(out, "%s\"%s\":%lld", i ? "," : "", counter_names[i],
                (long long)counters[i]);
    plat_unlock(&diag_lock);
}

static void trace_pointer(const char *event, void *p) {
    diag_trace_event(event, "ptr", p);
}

wchar16 *diag_result_string(const char *utf8, bool counted) {
    size_t units;
    wchar16 *tmp = wstr_from_utf8(utf8, &units);
    if (!tmp) return NULL;
    /* Start watching frees before the first string can be freed. */
    plat_watch_frees();
    wchar16 *s = plat_cotask_alloc((units + 1) * sizeof *s);
    if (s) memcpy(s, tmp, (units + 1) * sizeof *s);
    free(tmp);
    if (!s) return NULL;
    plat_lock(&diag_lock);
    if (live_count == live_cap) {
        size_t cap = live_cap ? live_cap * 2 : 16;
        allocation *bigger = realloc(live, cap * sizeof *bigger);
        if (bigger) {
            live = bigger;
            live_cap = cap;
        }
    }
    if (live_count < live_cap) live[live_count++] = (allocation){s, counted};
    if (counted) counters[COUNT_RESULTS_ALLOCATED]++;
    plat_unlock(&diag_lock);
    if (counted) trace_pointer("alloc", s);
    return s;
}

bool diag_forget(void *p) {
    bool ours = false, counted = false;
    plat_lock(&diag_lock);
    for (size_t i = 0; i < live_count; i++) {
        if (live[i].ptr == p) {
            ours = true;
            counted = live[i].counted;
            live[i] = live[--live_count];
            if (counted) counters[COUNT_RESULTS_FREED]++;
            break;
        }
    }
    plat_unlock(&diag_lock);
    if (counted) trace_pointer("free", p);
    return ours;
}

#ifndef _WIN32
/* On Linux the caller frees with ours. Freeing something we did not hand
 * out (or twice) is the caller's bug: count it rather than crash. */
HCS_EXPORT void CoTaskMemFree(void *p);
HCS_EXPORT void CoTaskMemFree(void *p) {
    if (!p) return;
    if (diag_forget(p)) {
        plat_cotask_free(p);
        return;
    }
    diag_count(COUNT_BAD_FREES);
    trace_pointer("bad_free", p);
    fprintf(stderr, "hcs-sim: CoTaskMemFree(0x%llx): not a live result string\n",
            (unsigned long long)(uintptr_t)p);
}
#endif

/* --- trace --- */

bool diag_trace_begin(sb *line, const char *kind, const char *name) {
    char *path = plat_getenv("HCS_SIM_TRACE");
    if (!path || !*path) {
        free(path);
        return false;
    }
    free(path);
    memset(line, 0, sizeof *line);
    sb_addf(line, "{\"t\":%lld,\"pid\":%lu,\"tid\":%llu,\"%s\":",
            (long long)plat_wall_ms(), (unsigned long)plat_process_id(),
            (unsigned long long)plat_thread_id(), kind);
    sb_add_json(line, name);
    return true;
}

void diag_trace_end(sb *line) {
    sb_add(line, "}");
    char *text = sb_take(line);
    char *path = plat_getenv("HCS_SIM_TRACE");
    if (text && path) plat_append_line(path, text);
    free(path);
    free(text);
}

void diag_trace_event(const char *name, const char *key, const void *ptr) {
    sb line;
    if (!diag_trace_begin(&line, "event", name)) return;
    sb_addf(&line, ",\"%s\":\"0x%llx\"", key,
            (unsigned long long)(uintptr_t)ptr);
    diag_trace_end(&line);
}
