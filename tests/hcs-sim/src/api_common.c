/* The frame of every export (see api.h). */
#include "api.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "platform.h"
#include "wstr.h"

/* Short texts for the codes the simulator returns (our wording; the
 * meanings are those of HCS.md 4.2). */
static const char *hr_text(hresult hr) {
    switch ((uint32_t)hr) {
    case 0x80004005: return "Unspecified error.";
    case 0x80004003: return "Invalid pointer.";
    case 0x80070057: return "The parameter is incorrect.";
    case 0x8007000E: return "Not enough memory.";
    case 0x80070002: return "The file cannot be found.";
    case 0x80070006: return "The handle is invalid.";
    case 0x80070020: return "The file is in use by another process.";
    case 0x80070032: return "The request is not supported.";
    case 0x80070490: return "Element not found.";
    case 0x800706BA: return "The RPC server is unavailable.";
    case 0xC0370100: return "The compute system exited while it was starting.";
    case 0xC0370103: return "The operation is pending.";
    case 0xC0370105: return "The operation is not valid in the compute system's current state.";
    case 0xC0370106: return "The compute system exited unexpectedly.";
    case 0xC0370109: return "The compute system did not respond in time.";
    case 0xC037010A: return "The connection to the compute system was closed.";
    case 0xC037010B: return "The message is unknown.";
    case 0xC037010D: return "The JSON document is invalid.";
    case 0xC037010E: return "The compute system does not exist.";
    case 0xC037010F: return "A compute system with this id already exists.";
    case 0xC0370110: return "The compute system is already stopped.";
    case 0x80370119: return "A callback is already registered.";
    case 0x8037011F: return "The process has already stopped.";
    default: return "Failure injected by hcs-sim.";
    }
}

char *result_document(hresult hr, const char *message, sim_op op) {
    sb b = {0};
    sb_addf(&b, "{\"Error\":%ld,\"ErrorMessage\":", (long)hr);
    sb_add_json(&b, hr_text(hr));
    sb_add(&b, ",\"ErrorEvents\":[{\"Message\":");
    sb_add_json(&b, message);
    sb_addf(&b, ",\"Provider\":\"hcs-sim\",\"EventId\":%d,\"Source\":",
            1000 + (int)op);
    sb_add_json(&b, op_export(op));
    sb_add(&b, "}]}");
    return sb_take(&b);
}

void call_begin(call *c, sim_op op, wchar16 **result) {
    memset(c, 0, sizeof *c);
    c->op = op;
    c->result = result;
    if (result) *result = NULL;
    config_load(&c->cfg);
    c->tracing = diag_trace_begin(&c->trace, "call", op_export(op));
    if (c->tracing) sb_add(&c->trace, ",\"args\":{");
}

/* Appends "name": after a comma unless it opens an object. */
static void trace_key(sb *b, const char *name) {
    if (b->len && b->buf[b->len - 1] != '{') sb_add(b, ",");
    sb_add_json(b, name);
    sb_add(b, ":");
}

static void trace_ptr(sb *b, const void *p) {
    if (p) sb_addf(b, "\"0x%llx\"", (unsigned long long)(uintptr_t)p);
    else sb_add(b, "null");
}

void call_arg_ptr(call *c, const char *name, const void *p) {
    if (!c->tracing) return;
    trace_key(&c->trace, name);
    trace_ptr(&c->trace, p);
}

void call_arg_str(call *c, const char *name, const wchar16 *s) {
    if (!c->tracing) return;
    trace_key(&c->trace, name);
    char *u = wstr_to_utf8(s);
    sb_add_json(&c->trace, u);
    free(u);
}

void call_arg_int(call *c, const char *name, long long v) {
    if (!c->tracing) return;
    trace_key(&c->trace, name);
    sb_addf(&c->trace, "%lld", v);
}

hresult call_checks(call *c) {
    if (c->tracing) sb_add(&c->trace, "}");
    if (c->cfg.error[0]) return call_fail(c, E_INVALIDARG_, "%s", c->cfg.error);
    const op_switches *s = &c->cfg.ops[c->op];
    if (s->fail) return call_fail(c, s->fail_hr, "%s", injected_message(c));
    return S_OK_;
}

const char *injected_message(const call *c) {
    const char *m = c->cfg.ops[c->op].message;
    return m[0] ? m : "Failure injected by hcs-sim (HCS_SIM)";
}

void call_out_ptr(call *c, const char *name, const void *p) {
    if (!c->tracing) return;
    if (!c->outs.len) sb_add(&c->outs, "{");
    trace_key(&c->outs, name);
    trace_ptr(&c->outs, p);
}

wchar16 *call_string(const char *utf8) { return diag_result_string(utf8, true); }

hresult call_fail(call *c, hresult hr, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *msg = malloc(n > 0 ? (size_t)n + 1 : 1);
    if (!msg) return hr;
    va_start(ap, fmt);
    vsnprintf(msg, (size_t)n + 1, fmt, ap);
    va_end(ap);
    if (c->result && !*c->result) {
        char *doc = result_document(hr, msg, c->op);
        if (doc) *c->result = call_string(doc);
        free(doc);
    }
    free(c->message);
    c->message = msg;
    return hr;
}

hresult call_end(call *c, hresult hr) {
    if (c->tracing) {
        if (c->outs.len) {
            sb_add(&c->outs, "}");
            sb_add(&c->trace, ",\"out\":");
            sb_add(&c->trace, c->outs.buf);
        }
        if (c->result) {
            sb_add(&c->trace, ",\"result\":");
            trace_ptr(&c->trace, *c->result);
        }
        if (c->message) {
            sb_add(&c->trace, ",\"message\":");
            sb_add_json(&c->trace, c->message);
        }
        sb_addf(&c->trace, ",\"hr\":\"0x%08lX\"", (unsigned long)(uint32_t)hr);
        diag_trace_end(&c->trace);
    }
    sb_free(&c->outs);
    free(c->message);
    return hr;
}

int64_t call_delay(const call *c) { return c->cfg.ops[c->op].delay_ms; }
bool call_no_completion(const call *c) {
    return c->cfg.ops[c->op].no_completion;
}
