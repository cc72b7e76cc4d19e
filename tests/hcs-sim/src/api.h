/*
 * What every export does around its own work: read the switches, trace the
 * call and its arguments, apply an injected failure, build the result
 * document, and trace the HRESULT. Each export reads:
 *
 *     call c;
 *     call_begin(&c, OP_START, result);
 *     call_arg_ptr(&c, "computeSystem", system);
 *     hresult hr = call_checks(&c);
 *     if (hr == S_OK_) hr = start(&c, system);
 *     return call_end(&c, hr);
 */
#ifndef HCS_SIM_API_H
#define HCS_SIM_API_H

#include <stdbool.h>
#include "config.h"
#include "handles.h"
#include "hcs.h"
#include "json.h"

typedef struct {
    sim_op op;
    sim_config cfg;
    wchar16 **result;
    bool tracing;
    sb trace;    /* the line so far: common members and "args" */
    sb outs;     /* members of "out", written at the end */
    char *message; /* the failure message, if any */
} call;

/* Also sets *result to NULL, as HCS does before anything can fail. */
void call_begin(call *c, sim_op op, wchar16 **result);
void call_arg_ptr(call *c, const char *name, const void *p);
void call_arg_str(call *c, const char *name, const wchar16 *s);
void call_arg_int(call *c, const char *name, long long v);
/* Ends the arguments; returns the HRESULT of an invalid switch spec or an
 * injected <op>.fail, with its result document, else S_OK. */
hresult call_checks(call *c);
/* Records an out-value in the trace. */
void call_out_ptr(call *c, const char *name, const void *p);
/* Fails the call: writes the result document (if the caller gave a result
 * pointer) and returns hr. */
hresult call_fail(call *c, hresult hr, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 3, 4)))
#endif
    ;
hresult call_end(call *c, hresult hr);
/* An out string for the caller (counted, freed with CoTaskMemFree). */
wchar16 *call_string(const char *utf8);

/* A result document as HCS writes it (HCS.md 4.3), UTF-8, malloc'd. Also
 * the data of a failed completion notification. */
char *result_document(hresult hr, const char *message, sim_op op);

/* The message of an injected failure: <op>.message, or a default. */
const char *injected_message(const call *c);

/* The delay the switches put on op's completion, and whether to drop it. */
int64_t call_delay(const call *c);
bool call_no_completion(const call *c);

/* An exported function: HRESULT WINAPI name(...). */
#define EXPORT(name) HCS_EXPORT hresult HCS_CALL name

/* Both HcsUnregister*Callback exports (api_system.c). */
/* Registers a notification callback on `target` (a system or process the
 * caller looked up) for HcsRegister*Callback; `what` names it in errors. */
hresult register_callback(call *c, object *target,
                          hcs_notification_callback callback, void *context,
                          void **callbackHandle, const char *what);
hresult unregister_callback(call *c, void *handle, obj_kind owner_kind);

#endif
