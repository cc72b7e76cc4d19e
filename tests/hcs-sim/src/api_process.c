/*
 * The process exports (HCS.md section 1, rows 16-23, 25-26). Without a
 * guest agent (the default, what the seed saw) HcsCreateProcess succeeds
 * with no stdio handles and the process does nothing until terminated.
 * With process=agent it is a scripted stand-in that runs in this library
 * (not in the guest): it prints one line, echoes its stdin to stdout, and
 * exits with process.exit_code when stdin ends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "diag.h"
#include "notify.h"
#include "platform.h"
#include "vmm_client.h"
#include "wstr.h"

#define KILLED_EXIT_CODE 137 /* what a Linux guest reports for SIGKILL */

/* The guest process, shared by every handle opened on it. */
typedef struct guest_process guest_process;
struct guest_process {
    guest_process *next;
    int refs;
    uint32_t pid;
    char *system_id;
    bool scripted, exited, stop, stdin_closed;
    uint32_t exit_code, agent_exit_code;
    plat_handle in, out, err; /* our ends; NULL if not requested */
    plat_thread *thread;
    char *command;
};

typedef struct {
    object base;
    guest_process *gp;
    sim_system *system;
} process_handle;

/* Under sim_lock. */
static guest_process *processes;
static uint32_t next_pid = 1000;

/* Handles hold the references; the script holds none, so the last handle
 * to go stops it and waits for it before freeing what it uses. */
static void gp_put(guest_process *gp) {
    plat_lock(&sim_lock);
    bool last = --gp->refs == 0;
    if (last) {
        guest_process **p = &processes;
        while (*p && *p != gp) p = &(*p)->next;
        if (*p) *p = gp->next;
        gp->stop = true;
    }
    plat_unlock(&sim_lock);
    if (!last) return;
    plat_thread_join(gp->thread);
    free(gp->system_id);
    free(gp->command);
    free(gp);
}

static void destroy_handle(object *o) {
    process_handle *h = (process_handle *)o;
    notify_drop_held(o);
    gp_put(h->gp);
    obj_put(&h->system->base);
    free(h);
}

static process_handle *new_handle(guest_process *gp, sim_system *s) {
    process_handle *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->base.kind = OBJ_PROCESS;
    h->base.destroy = destroy_handle;
    plat_lock(&sim_lock);
    gp->refs++;
    plat_unlock(&sim_lock);
    h->gp = gp;
    obj_ref(&s->base);
    h->system = s;
    obj_add(&h->base);
    diag_count(COUNT_PROCESS_HANDLES_OPENED);
    diag_trace_event("open_process", "handle", h);
    return h;
}

/* Marks gp exited and tells every handle on it. */
static void process_exited(guest_process *gp, uint32_t code) {
    plat_lock(&sim_lock);
    bool already = gp->exited;
    gp->exited = true;
    gp->exit_code = code;
    plat_unlock(&sim_lock);
    if (already) return;
    size_t n;
    object **list = obj_list(OBJ_PROCESS, &n);
    for (size_t i = 0; i < n; i++) {
        if (((process_handle *)list[i])->gp == gp) {
            char data[64];
            snprintf(data, sizeof data, "{\"ExitCode\":%lu}", (unsigned long)code);
            notify_post(list[i], NOTIFY_PROCESS_EXITED, S_OK_, strdup(data), 0);
        }
        obj_put(list[i]);
    }
    free(list);
}

void processes_on_disconnect(const sim_system *s) {
    size_t n;
    object **list = obj_list(OBJ_PROCESS, &n);
    for (size_t i = 0; i < n; i++) {
        if (((process_handle *)list[i])->system == s)
            notify_post(list[i], NOTIFY_SERVICE_DISCONNECT,
                        HR_RPC_SERVER_UNAVAILABLE, NULL, 0);
        obj_put(list[i]);
    }
    free(list);
}

static bool should_stop(guest_process *gp) {
    plat_lock(&sim_lock);
    bool stop = gp->stop || gp->stdin_closed;
    plat_unlock(&sim_lock);
    return stop;
}

/* The scripted process: a fixed line, then stdin echoed to stdout. */
static void script_main(void *arg) {
    guest_process *gp = arg;
    char buf[4096];
    int n = snprintf(buf, sizeof buf, "hcs-sim: process %lu: %s\n",
                     (unsigned long)gp->pid, gp->command);
    if (gp->out) plat_handle_write(gp->out, buf, (size_t)n);
    if (gp->err) plat_handle_write(gp->err, "hcs-sim: stderr\n", 16);
    while (gp->in && !should_stop(gp)) {
        n = plat_handle_read(gp->in, buf, sizeof buf, 50);
        if (n == -2) continue;
        if (n <= 0) break;
        if (gp->out) plat_handle_write(gp->out, buf, (size_t)n);
    }
    plat_lock(&sim_lock);
    uint32_t code = gp->stop ? KILLED_EXIT_CODE : gp->agent_exit_code;
    plat_unlock(&sim_lock);
    /* The caller sees its pipes end before it hears of the exit. */
    if (gp->in) plat_handle_close(gp->in);
    if (gp->out) plat_handle_close(gp->out);
    if (gp->err) plat_handle_close(gp->err);
    gp->in = gp->out = gp->err = NULL;
    process_exited(gp, code);
}

static hresult make_pipes(guest_process *gp, const json_value *params,
                          hcs_process_information *info) {
    const json_value *in = json_get(params, "CreateStdInPipe");
    const json_value *out = json_get(params, "CreateStdOutPipe");
    const json_value *err = json_get(params, "CreateStdErrPipe");
    const json_value *console = json_get(params, "EmulateConsole");
    bool want_err = err && err->boolean && !(console && console->boolean);
    if ((in && in->boolean &&
         !plat_stdio_pipe(true, &info->std_input, &gp->in)) ||
        (out && out->boolean &&
         !plat_stdio_pipe(false, &info->std_output, &gp->out)) ||
        (want_err && !plat_stdio_pipe(false, &info->std_error, &gp->err)))
        return E_FAIL_;
    return S_OK_;
}

/* CommandLine, or CommandArgs joined with spaces, for the scripted line. */
static char *command_of(const json_value *params) {
    const json_value *line = json_get(params, "CommandLine");
    if (line && line->type == JSON_STRING) return strdup(line->string);
    const json_value *args = json_get(params, "CommandArgs");
    sb b = {0};
    for (size_t i = 0; args && args->type == JSON_ARRAY && i < args->count; i++)
        if (args->items[i]->type == JSON_STRING)
            sb_addf(&b, "%s%s", i ? " " : "", args->items[i]->string);
    char *s = sb_take(&b);
    return s ? s : strdup("");
}

static hresult create_process(call *c, sim_system *s, const wchar16 *wparams,
                              hcs_process_information *info, void **out) {
    hresult hr = vmm_usable(c, s);
    if (hr != S_OK_) return hr;
    if (s->exited)
        return call_fail(c, VMCOMPUTE_INVALID_STATE,
                         "The compute system \"%s\" is not running", s->id);
    char *text = wstr_to_utf8(wparams);
    char err[160];
    json_value *params = text ? json_parse(text, err, sizeof err) : NULL;
    free(text);
    if (!params || params->type != JSON_OBJECT) {
        json_free(params);
        return call_fail(c, VMCOMPUTE_INVALID_JSON,
                         "The JSON document is invalid: processParameters: %s",
                         wparams ? err : "missing");
    }
    guest_process *gp = calloc(1, sizeof *gp);
    if (!gp) {
        json_free(params);
        return call_fail(c, E_OUTOFMEMORY_, "out of memory");
    }
    gp->system_id = strdup(s->id);
    gp->command = command_of(params);
    gp->agent_exit_code = c->cfg.process_exit_code;
    gp->scripted = c->cfg.process == PROCESS_AGENT;
    memset(info, 0, sizeof *info);
    if (c->cfg.process == PROCESS_AGENT &&
        make_pipes(gp, params, info) != S_OK_) {
        json_free(params);
        free(gp->system_id);
        free(gp->command);
        free(gp);
        return call_fail(c, E_FAIL_, "hcs-sim: cannot create stdio pipes");
    }
    json_free(params);
    plat_lock(&sim_lock);
    gp->pid = next_pid++;
    gp->next = processes;
    processes = gp;
    plat_unlock(&sim_lock);
    info->process_id = gp->pid;
    process_handle *h = new_handle(gp, s);
    if (gp->scripted) {
        plat_pin_library();
        gp->thread = plat_thread_start(script_main, gp);
    }
    *out = h;
    call_out_ptr(c, "process", h);
    call_out_ptr(c, "stdInput", info->std_input);
    call_out_ptr(c, "stdOutput", info->std_output);
    call_out_ptr(c, "stdError", info->std_error);
    return S_OK_;
}

EXPORT(HcsCreateProcess)(void *computeSystem, const wchar16 *processParameters,
                         hcs_process_information *processInformation,
                         void **process, wchar16 **result) {
    call c;
    call_begin(&c, OP_CREATE_PROCESS, result);
    call_arg_ptr(&c, "computeSystem", computeSystem);
    call_arg_str(&c, "processParameters", processParameters);
    if (process) *process = NULL;
    hresult hr = call_checks(&c);
    if (hr == S_OK_ && (!processInformation || !process))
        hr = call_fail(&c, E_POINTER_, "processInformation and process are required");
    sim_system *s = NULL;
    if (hr == S_OK_) {
        s = (sim_system *)obj_get(computeSystem, OBJ_SYSTEM);
        if (!s) hr = call_fail(&c, HR_INVALID_HANDLE, "not a compute system handle");
    }
    if (s) {
        hr = create_process(&c, s, processParameters, processInformation, process);
        obj_put(&s->base);
    }
    return call_end(&c, hr);
}

/* The process behind a handle, referenced; fails the call otherwise. */
static process_handle *get_process(call *c, void *handle, hresult *hr) {
    process_handle *h = (process_handle *)obj_get(handle, OBJ_PROCESS);
    if (!h)
        *hr = call_fail(c, HR_INVALID_HANDLE, "%p is not an open process handle",
                        handle);
    return h;
}

EXPORT(HcsOpenProcess)(void *computeSystem, uint32_t processId, void **process,
                       wchar16 **result) {
    call c;
    call_begin(&c, OP_OPEN_PROCESS, result);
    call_arg_ptr(&c, "computeSystem", computeSystem);
    call_arg_int(&c, "processId", processId);
    if (process) *process = NULL;
    hresult hr = call_checks(&c);
    if (hr == S_OK_ && !process) hr = call_fail(&c, E_POINTER_, "process is NULL");
    sim_system *s = NULL;
    if (hr == S_OK_) {
        s = (sim_system *)obj_get(computeSystem, OBJ_SYSTEM);
        if (!s) hr = call_fail(&c, HR_INVALID_HANDLE, "not a compute system handle");
    }
    if (s) {
        plat_lock(&sim_lock);
        guest_process *gp = processes;
        while (gp && !(gp->pid == processId && !strcmp(gp->system_id, s->id)))
            gp = gp->next;
        if (gp) gp->refs++;
        plat_unlock(&sim_lock);
        if (gp) {
            *process = new_handle(gp, s);
            call_out_ptr(&c, "process", *process);
            gp_put(gp);
        } else {
            hr = call_fail(&c, HR_NOT_FOUND, "No process %lu in \"%s\"",
                           (unsigned long)processId, s->id);
        }
        obj_put(&s->base);
    }
    return call_end(&c, hr);
}

EXPORT(HcsCloseProcess)(void *process) {
    call c;
    call_begin(&c, OP_CLOSE_PROCESS, NULL);
    call_arg_ptr(&c, "process", process);
    hresult hr = call_checks(&c);
    process_handle *h = hr == S_OK_ ? get_process(&c, process, &hr) : NULL;
    if (h) {
        plat_lock(&sim_lock);
        callback_reg *reg = h->base.reg;
        if (reg) obj_ref(&reg->base);
        plat_unlock(&sim_lock);
        if (reg) {
            notify_unregister(reg);
            obj_put(&reg->base);
            diag_count(COUNT_CALLBACKS_DROPPED_BY_CLOSE);
        }
        obj_remove(&h->base);
        diag_count(COUNT_PROCESS_HANDLES_CLOSED);
        diag_trace_event("close_process", "handle", h);
        obj_put(&h->base);
    }
    return call_end(&c, hr);
}

/* Ends the process as a kill would. */
static hresult kill_process(call *c, process_handle *h) {
    guest_process *gp = h->gp;
    plat_lock(&sim_lock);
    bool exited = gp->exited, scripted = gp->scripted;
    if (!exited) gp->stop = true;
    plat_unlock(&sim_lock);
    if (exited)
        return call_fail(c, HCS_E_PROCESS_ALREADY_STOPPED,
                         "Process %lu has already exited", (unsigned long)gp->pid);
    /* The script notices stop within its read timeout and exits itself. */
    if (!scripted) process_exited(gp, KILLED_EXIT_CODE);
    return S_OK_;
}

EXPORT(HcsTerminateProcess)(void *process, wchar16 **result) {
    call c;
    call_begin(&c, OP_TERMINATE_PROCESS, result);
    call_arg_ptr(&c, "process", process);
    hresult hr = call_checks(&c);
    process_handle *h = hr == S_OK_ ? get_process(&c, process, &hr) : NULL;
    if (h) {
        hr = kill_process(&c, h);
        obj_put(&h->base);
    }
    return call_end(&c, hr);
}

/* Parses an options/settings document that must be a JSON object. */
static json_value *parse_object(call *c, const wchar16 *w, const char *what,
                                hresult *hr) {
    char *text = wstr_to_utf8(w);
    char err[160] = "missing";
    json_value *v = text ? json_parse(text, err, sizeof err) : NULL;
    free(text);
    if (!v || v->type != JSON_OBJECT) {
        json_free(v);
        *hr = call_fail(c, VMCOMPUTE_INVALID_JSON,
                        "The JSON document is invalid: %s: %s", what,
                        v ? "expected an object" : err);
        return NULL;
    }
    return v;
}

EXPORT(HcsSignalProcess)(void *process, const wchar16 *options, wchar16 **result) {
    call c;
    call_begin(&c, OP_SIGNAL_PROCESS, result);
    call_arg_ptr(&c, "process", process);
    call_arg_str(&c, "options", options);
    hresult hr = call_checks(&c);
    json_value *o = hr == S_OK_ ? parse_object(&c, options, "options", &hr) : NULL;
    process_handle *h = o ? get_process(&c, process, &hr) : NULL;
    if (h) {
        const json_value *sig = json_get(o, "Signal");
        /* SIGKILL and SIGTERM end the scripted process; others are
         * delivered to nobody. */
        bool ends = !sig || (sig->type == JSON_NUMBER &&
                             (sig->number == 9 || sig->number == 15));
        if (ends) {
            hr = kill_process(&c, h);
        } else if (h->gp->exited) {
            hr = call_fail(&c, HCS_E_PROCESS_ALREADY_STOPPED,
                           "Process %lu has already exited",
                           (unsigned long)h->gp->pid);
        }
        obj_put(&h->base);
    }
    json_free(o);
    return call_end(&c, hr);
}

EXPORT(HcsGetProcessInfo)(void *process,
                          hcs_process_information *processInformation,
                          wchar16 **result) {
    call c;
    call_begin(&c, OP_PROCESS_INFO, result);
    call_arg_ptr(&c, "process", process);
    hresult hr = call_checks(&c);
    if (hr == S_OK_ && !processInformation)
        hr = call_fail(&c, E_POINTER_, "processInformation is NULL");
    process_handle *h = hr == S_OK_ ? get_process(&c, process, &hr) : NULL;
    if (h) {
        /* The stdio handles went to the caller with HcsCreateProcess and
         * are not handed out twice. */
        memset(processInformation, 0, sizeof *processInformation);
        processInformation->process_id = h->gp->pid;
        obj_put(&h->base);
    }
    return call_end(&c, hr);
}

EXPORT(HcsGetProcessProperties)(void *process, wchar16 **processProperties,
                                wchar16 **result) {
    call c;
    call_begin(&c, OP_PROCESS_PROPERTIES, result);
    call_arg_ptr(&c, "process", process);
    if (processProperties) *processProperties = NULL;
    hresult hr = call_checks(&c);
    if (hr == S_OK_ && !processProperties)
        hr = call_fail(&c, E_POINTER_, "processProperties is NULL");
    process_handle *h = hr == S_OK_ ? get_process(&c, process, &hr) : NULL;
    if (h) {
        plat_lock(&sim_lock);
        char text[128];
        snprintf(text, sizeof text,
                 "{\"ProcessId\":%lu,\"Exited\":%s,\"ExitCode\":%lu,"
                 "\"LastWaitResult\":0}",
                 (unsigned long)h->gp->pid, h->gp->exited ? "true" : "false",
                 (unsigned long)h->gp->exit_code);
        plat_unlock(&sim_lock);
        *processProperties = call_string(text);
        call_out_ptr(&c, "processProperties", *processProperties);
        obj_put(&h->base);
    }
    return call_end(&c, hr);
}

EXPORT(HcsModifyProcess)(void *process, const wchar16 *settings,
                         wchar16 **result) {
    call c;
    call_begin(&c, OP_MODIFY_PROCESS, result);
    call_arg_ptr(&c, "process", process);
    call_arg_str(&c, "settings", settings);
    hresult hr = call_checks(&c);
    json_value *o = hr == S_OK_ ? parse_object(&c, settings, "settings", &hr) : NULL;
    process_handle *h = o ? get_process(&c, process, &hr) : NULL;
    if (h) {
        const json_value *op = json_get(o, "Operation");
        const json_value *close = json_get(json_get(o, "CloseHandle"), "Handle");
        const char *which = close && close->type == JSON_STRING ? close->string : "";
        if (!op || op->type != JSON_STRING) {
            hr = call_fail(&c, VMCOMPUTE_INVALID_JSON,
                           "The JSON document is invalid: settings.Operation: "
                           "required field missing");
        } else if (!strcmp(op->string, "ConsoleSize")) {
            /* Accepted; the scripted process has no console to resize. */
        } else if (!strcmp(op->string, "CloseHandle") && h->gp->exited) {
            hr = call_fail(&c, HCS_E_PROCESS_ALREADY_STOPPED,
                           "Process %lu has already exited",
                           (unsigned long)h->gp->pid);
        } else if (!strcmp(op->string, "CloseHandle")) {
            if (!strcmp(which, "StdIn") || !strcmp(which, "All")) {
                plat_lock(&sim_lock);
                h->gp->stdin_closed = true;
                plat_unlock(&sim_lock);
            }
        } else {
            hr = call_fail(&c, HR_NOT_SUPPORTED, "settings.Operation: \"%s\" is "
                           "not simulated", op->string);
        }
        obj_put(&h->base);
    }
    json_free(o);
    return call_end(&c, hr);
}

EXPORT(HcsRegisterProcessCallback)(void *process,
                                   hcs_notification_callback callback,
                                   void *context, void **callbackHandle) {
    call c;
    call_begin(&c, OP_REGISTER_PROCESS, NULL);
    call_arg_ptr(&c, "process", process);
    call_arg_ptr(&c, "callback", (const void *)(uintptr_t)callback);
    call_arg_ptr(&c, "context", context);
    if (callbackHandle) *callbackHandle = NULL;
    hresult hr = call_checks(&c);
    if (hr == S_OK_ && (!callback || !callbackHandle))
        hr = call_fail(&c, E_INVALIDARG_, "callback and callbackHandle are required");
    process_handle *h = hr == S_OK_ ? get_process(&c, process, &hr) : NULL;
    if (h) {
        hr = register_callback(&c, &h->base, callback, context,
                               callbackHandle, "process");
        obj_put(&h->base);
    }
    return call_end(&c, hr);
}

EXPORT(HcsUnregisterProcessCallback)(void *callbackHandle) {
    call c;
    call_begin(&c, OP_UNREGISTER_PROCESS, NULL);
    call_arg_ptr(&c, "callbackHandle", callbackHandle);
    hresult hr = call_checks(&c);
    if (hr == S_OK_) hr = unregister_callback(&c, callbackHandle, OBJ_PROCESS);
    return call_end(&c, hr);
}
