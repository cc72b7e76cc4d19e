/* The compute system exports (HCS.md section 1, rows 1-15). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "diag.h"
#include "notify.h"
#include "platform.h"
#include "registry.h"
#include "relay.h"
#include "vmm_client.h"
#include "wstr.h"


/* Looks up a system handle for a call, failing the call if it is not one. */
static sim_system *get_system(call *c, void *handle, hresult *hr) {
    sim_system *s = (sim_system *)obj_get(handle, OBJ_SYSTEM);
    if (!s)
        *hr = call_fail(c, HR_INVALID_HANDLE,
                        "%p is not an open compute system handle", handle);
    return s;
}

static void disconnect_action(void *arg) {
    sim_system *s = arg;
    vmm_disconnect(s);
    obj_put(&s->base);
}

/* disconnect_after: the service "dies" for this handle N ms after it is
 * created or opened. */
static void arm_disconnect(call *c, sim_system *s) {
    if (c->cfg.disconnect_after_ms < 0) return;
    obj_ref(&s->base);
    notify_after(c->cfg.disconnect_after_ms, disconnect_action, s);
}

/* Every path a document names must exist, as HCS checks before it builds
 * the VM. */
static hresult check_files(call *c, const vm_spec *spec) {
    struct {
        const char *field, *path;
    } files[2] = {
        {"VirtualMachine.Chipset.LinuxKernelDirect.KernelFilePath", spec->kernel},
        {"VirtualMachine.Chipset.LinuxKernelDirect.InitRdPath", spec->initrd},
    };
    for (int i = 0; i < 2; i++)
        if (files[i].path && !plat_is_file(files[i].path))
            return call_fail(c, HR_FILE_NOT_FOUND,
                             "%s: the file \"%s\" cannot be found", files[i].field,
                             files[i].path);
    for (size_t i = 0; i < spec->disk_count; i++)
        if (!plat_is_file(spec->disks[i].path))
            return call_fail(c, HR_FILE_NOT_FOUND,
                             "VirtualMachine.Devices.Scsi: the virtual disk "
                             "\"%s\" cannot be found",
                             spec->disks[i].path);
    return S_OK_;
}

/* create.fail_async: a handle that is valid while pending, for a system
 * that never comes; CreateCompleted brings the failure. */
static hresult create_doomed(call *c, const char *id, sim_system **out) {
    sim_system *s = vmm_detached(id);
    if (!s) return call_fail(c, E_OUTOFMEMORY_, "out of memory");
    obj_add(&s->base);
    diag_count(COUNT_SYSTEM_HANDLES_OPENED);
    diag_trace_event("open_system", "handle", s);
    const op_switches *sw = &c->cfg.ops[OP_CREATE];
    char *data = result_document(sw->fail_async_hr, injected_message(c), OP_CREATE);
    if (sw->no_completion) free(data);
    else notify_post(&s->base, NOTIFY_CREATE_COMPLETED, sw->fail_async_hr, data,
                     sw->delay_ms);
    *out = s;
    return VMCOMPUTE_OPERATION_PENDING;
}

static hresult create(call *c, const wchar16 *wid, const wchar16 *wconfig,
                      void *identity, void **out) {
    if (!out) return call_fail(c, E_POINTER_, "computeSystem is NULL");
    *out = NULL;
    /* The seed found HCS refusing a non-NULL identity; hcsshim passes 0. */
    if (identity)
        return call_fail(c, E_INVALIDARG_,
                         "identity: must be NULL (a security token is not "
                         "accepted here)");
    if (!wid || !wid[0]) return call_fail(c, E_INVALIDARG_, "id: must not be empty");
    if (!wconfig) return call_fail(c, E_INVALIDARG_, "configuration: must not be NULL");
    char *id = wstr_to_utf8(wid), *doc = wstr_to_utf8(wconfig);
    vm_spec spec;
    char msg[512];
    hresult hr = schema_parse(doc, &spec, msg, sizeof msg);
    free(doc);
    if (hr != S_OK_) {
        call_fail(c, hr, "%s", msg);
    } else {
        hr = check_files(c, &spec);
    }
    if (hr == S_OK_ && c->cfg.exists)
        hr = call_fail(c, VMCOMPUTE_SYSTEM_ALREADY_EXISTS,
                       "A compute system with id \"%s\" already exists", id);

    if (hr == S_OK_ && c->cfg.no_com) {
        /* The VM gets no serial ports: nobody ever serves their pipes. */
        for (int i = 0; i < 2; i++) {
            free(spec.com_pipe[i]);
            spec.com_pipe[i] = NULL;
        }
    }

    sim_system *s = NULL;
    const op_switches *sw = &c->cfg.ops[OP_CREATE];
    if (hr == S_OK_ && sw->fail_async && !c->cfg.sync) {
        hr = create_doomed(c, id, &s);
    } else if (hr == S_OK_) {
        hr = vmm_create(c, id, &spec, &s);
        if (hr == S_OK_) arm_disconnect(c, s);
        if (hr == S_OK_ && c->cfg.sync) {
            if (sw->delay_ms > 0) plat_sleep_ms(sw->delay_ms);
        } else if (hr == S_OK_) {
            if (!sw->no_completion)
                notify_post(&s->base, NOTIFY_CREATE_COMPLETED, S_OK_, NULL,
                            sw->delay_ms);
            hr = VMCOMPUTE_OPERATION_PENDING;
        }
    }
    if (s) {
        *out = s;
        call_out_ptr(c, "computeSystem", s);
    }
    schema_free(&spec);
    free(id);
    return hr;
}

EXPORT(HcsCreateComputeSystem)(const wchar16 *id, const wchar16 *configuration,
                               void *identity, void **computeSystem,
                               wchar16 **result) {
    call c;
    call_begin(&c, OP_CREATE, result);
    call_arg_str(&c, "id", id);
    call_arg_str(&c, "configuration", configuration);
    call_arg_ptr(&c, "identity", identity);
    if (computeSystem) *computeSystem = NULL;
    hresult hr = call_checks(&c);
    if (hr == S_OK_) hr = create(&c, id, configuration, identity, computeSystem);
    return call_end(&c, hr);
}

EXPORT(HcsOpenComputeSystem)(const wchar16 *id, void **computeSystem,
                             wchar16 **result) {
    call c;
    call_begin(&c, OP_OPEN, result);
    call_arg_str(&c, "id", id);
    if (computeSystem) *computeSystem = NULL;
    hresult hr = call_checks(&c);
    if (hr == S_OK_ && (!computeSystem || !id || !id[0]))
        hr = call_fail(&c, E_INVALIDARG_, "id and computeSystem are required");
    if (hr == S_OK_) {
        char *uid = wstr_to_utf8(id);
        sim_system *s = NULL;
        hr = vmm_open(&c, uid, &s);
        free(uid);
        if (hr == S_OK_) {
            arm_disconnect(&c, s);
            *computeSystem = s;
            call_out_ptr(&c, "computeSystem", s);
        }
    }
    return call_end(&c, hr);
}

EXPORT(HcsCloseComputeSystem)(void *computeSystem) {
    call c;
    call_begin(&c, OP_CLOSE, NULL);
    call_arg_ptr(&c, "computeSystem", computeSystem);
    hresult hr = call_checks(&c);
    sim_system *s = hr == S_OK_ ? get_system(&c, computeSystem, &hr) : NULL;
    if (s) {
        /* Closing also drops a callback still registered, and waits for it
         * like HcsUnregisterComputeSystemCallback would. */
        plat_lock(&sim_lock);
        callback_reg *reg = s->base.reg;
        if (reg) obj_ref(&reg->base);
        plat_unlock(&sim_lock);
        if (reg) {
            notify_unregister(reg);
            obj_put(&reg->base);
            diag_count(COUNT_CALLBACKS_DROPPED_BY_CLOSE);
        }
        obj_remove(&s->base);
        vmm_close(s);
        diag_count(COUNT_SYSTEM_HANDLES_CLOSED);
        diag_trace_event("close_system", "handle", s);
        obj_put(&s->base);
    }
    return call_end(&c, hr);
}

/* --- start, shutdown, terminate, pause, resume --- */

/* Start's reply names the QEMU serial ports to relay (Windows only). */
static hresult finish_start(sim_system *s, const char *reply, char **data) {
    (void)s;
#ifdef _WIN32
    for (int i = 0; i < 2; i++) {
        char key[16];
        snprintf(key, sizeof key, "com%d_pipe", i);
        char *pipe = proto_get(reply, key);
        snprintf(key, sizeof key, "com%d_port", i);
        long long port = proto_get_int(reply, key, 0);
        char err[256];
        bool ok = !pipe || relay_start(pipe, (uint16_t)port, err, sizeof err);
        free(pipe);
        if (!ok) {
            *data = result_document(E_FAIL_, err, OP_START);
            return E_FAIL_;
        }
    }
#else
    (void)reply, (void)data;
#endif
    return S_OK_;
}

/* Start, pause and resume: a request whose reply completes the operation,
 * through a notification or, with sync=1, before the call returns. */
static hresult lifecycle(call *c, void *handle, const char *line,
                         uint32_t type, finish_fn finish) {
    hresult hr = S_OK_;
    sim_system *s = get_system(c, handle, &hr);
    if (!s) return hr;
    hr = vmm_usable(c, s);
    const op_switches *sw = &c->cfg.ops[c->op];
    if (hr == S_OK_ && sw->fail_async && !c->cfg.sync) {
        /* Refused, but only in the completion. */
        char *data = result_document(sw->fail_async_hr, injected_message(c), c->op);
        if (sw->no_completion) free(data);
        else notify_post(&s->base, type, sw->fail_async_hr, data, sw->delay_ms);
        hr = VMCOMPUTE_OPERATION_PENDING;
    } else if (hr == S_OK_ && c->cfg.sync) {
        char *reply;
        hr = vmm_request(c, s, line, &reply);
        if (hr == S_OK_ && finish) {
            char *data = NULL;
            hr = finish(s, reply, &data);
            if (hr != S_OK_) call_fail(c, hr, "cannot connect the COM ports");
            free(data);
        }
        free(reply);
        if (hr == S_OK_ && sw->delay_ms > 0) plat_sleep_ms(sw->delay_ms);
    } else if (hr == S_OK_) {
        hr = vmm_request_async(c, s, line, type, finish);
    }
    obj_put(&s->base);
    return hr;
}

EXPORT(HcsStartComputeSystem)(void *computeSystem, const wchar16 *options,
                              wchar16 **result) {
    call c;
    call_begin(&c, OP_START, result);
    call_arg_ptr(&c, "computeSystem", computeSystem);
    call_arg_str(&c, "options", options);
    hresult hr = call_checks(&c);
    if (hr == S_OK_) {
        char line[64] = "start";
        if (c.cfg.die_after_ms >= 0)
            snprintf(line, sizeof line, "start die_after=%lld",
                     (long long)c.cfg.die_after_ms);
        hr = lifecycle(&c, computeSystem, line, NOTIFY_START_COMPLETED,
                       finish_start);
    }
    return call_end(&c, hr);
}

EXPORT(HcsPauseComputeSystem)(void *computeSystem, const wchar16 *options,
                              wchar16 **result) {
    call c;
    call_begin(&c, OP_PAUSE, result);
    call_arg_ptr(&c, "computeSystem", computeSystem);
    call_arg_str(&c, "options", options);
    hresult hr = call_checks(&c);
    if (hr == S_OK_)
        hr = lifecycle(&c, computeSystem, "pause", NOTIFY_PAUSE_COMPLETED, NULL);
    return call_end(&c, hr);
}

EXPORT(HcsResumeComputeSystem)(void *computeSystem, const wchar16 *options,
                               wchar16 **result) {
    call c;
    call_begin(&c, OP_RESUME, result);
    call_arg_ptr(&c, "computeSystem", computeSystem);
    call_arg_str(&c, "options", options);
    hresult hr = call_checks(&c);
    if (hr == S_OK_)
        hr = lifecycle(&c, computeSystem, "resume", NOTIFY_RESUME_COMPLETED, NULL);
    return call_end(&c, hr);
}

/* Shutdown and terminate have no completion of their own: the call says
 * whether the request was accepted, and SystemExited reports the end. So
 * the supervisor's answer is awaited even when the call returns pending. */
static hresult stop(call *c, void *handle, const char *line) {
    hresult hr = S_OK_;
    sim_system *s = get_system(c, handle, &hr);
    if (!s) return hr;
    hr = vmm_usable(c, s);
    const op_switches *sw = &c->cfg.ops[c->op];
    plat_lock(&sim_lock);
    s->exit_delay_ms = sw->delay_ms;
    s->exit_silent = sw->no_completion;
    plat_unlock(&sim_lock);
    char *reply = NULL;
    bool ignored = c->op == OP_SHUTDOWN && c->cfg.shutdown_ignore;
    if (hr == S_OK_ && !ignored) hr = vmm_request(c, s, line, &reply);
    free(reply);
    if (hr == S_OK_ && c->cfg.sync && c->op == OP_TERMINATE) {
        /* Synchronous terminate returns once the VM is gone. */
        plat_lock(&sim_lock);
        int64_t deadline = plat_now_ms() + 10000;
        while (!s->exited && !s->eof && plat_now_ms() < deadline)
            plat_cond_wait(&sim_changed, &sim_lock, deadline - plat_now_ms());
        plat_unlock(&sim_lock);
    }
    if (hr == S_OK_ && !c->cfg.sync) hr = VMCOMPUTE_OPERATION_PENDING;
    obj_put(&s->base);
    return hr;
}

EXPORT(HcsShutdownComputeSystem)(void *computeSystem, const wchar16 *options,
                                 wchar16 **result) {
    call c;
    call_begin(&c, OP_SHUTDOWN, result);
    call_arg_ptr(&c, "computeSystem", computeSystem);
    call_arg_str(&c, "options", options);
    hresult hr = call_checks(&c);
    if (hr == S_OK_) hr = stop(&c, computeSystem, "powerdown");
    return call_end(&c, hr);
}

EXPORT(HcsTerminateComputeSystem)(void *computeSystem, const wchar16 *options,
                                  wchar16 **result) {
    call c;
    call_begin(&c, OP_TERMINATE, result);
    call_arg_ptr(&c, "computeSystem", computeSystem);
    call_arg_str(&c, "options", options);
    hresult hr = call_checks(&c);
    if (hr == S_OK_) hr = stop(&c, computeSystem, "terminate");
    return call_end(&c, hr);
}

EXPORT(HcsSaveComputeSystem)(void *computeSystem, const wchar16 *options,
                             wchar16 **result) {
    call c;
    call_begin(&c, OP_SAVE, result);
    call_arg_ptr(&c, "computeSystem", computeSystem);
    call_arg_str(&c, "options", options);
    hresult hr = call_checks(&c);
    sim_system *s = hr == S_OK_ ? get_system(&c, computeSystem, &hr) : NULL;
    if (s) {
        hr = call_fail(&c, HR_NOT_SUPPORTED,
                       "Saving a compute system is not simulated");
        obj_put(&s->base);
    }
    return call_end(&c, hr);
}

EXPORT(HcsModifyComputeSystem)(void *computeSystem, const wchar16 *configuration,
                               wchar16 **result) {
    call c;
    call_begin(&c, OP_MODIFY, result);
    call_arg_ptr(&c, "computeSystem", computeSystem);
    call_arg_str(&c, "configuration", configuration);
    hresult hr = call_checks(&c);
    sim_system *s = hr == S_OK_ ? get_system(&c, computeSystem, &hr) : NULL;
    if (s) {
        hr = call_fail(&c, HR_NOT_SUPPORTED,
                       "Modifying a running compute system is not simulated");
        obj_put(&s->base);
    }
    return call_end(&c, hr);
}

/* --- properties and enumeration --- */

/* Schema-1 Statistics, the part of it the simulator knows: when the VM
 * started (absent before Start) and how long it ran, in 100 ns units. */
static void add_statistics_json(sb *b, const char *line) {
    char *time = proto_get(line, "time"), *start = proto_get(line, "start_time");
    sb_add(b, ",\"Statistics\":{\"Timestamp\":");
    sb_add_json(b, time);
    if (start) {
        sb_add(b, ",\"ContainerStartTime\":");
        sb_add_json(b, start);
    }
    sb_addf(b, ",\"Uptime100ns\":%lld}",
            proto_get_int(line, "uptime_ms", 0) * 10000);
    free(time);
    free(start);
}

/* The members a supervisor's greeting or "state" reply gives, as JSON;
 * with statistics, the Statistics property too. */
static void add_system_json(sb *b, const char *line, bool statistics) {
    char *id = proto_get(line, "id"), *state = proto_get(line, "state");
    char *owner = proto_get(line, "owner"), *rid = proto_get(line, "runtime_id");
    char *exit_type = proto_get(line, "exit_type");
    sb_add(b, "{\"Id\":");
    sb_add_json(b, id);
    sb_add(b, ",\"Name\":");
    sb_add_json(b, id);
    sb_add(b, ",\"SystemType\":\"VirtualMachine\",\"State\":");
    sb_add_json(b, state);
    sb_add(b, ",\"Owner\":");
    sb_add_json(b, owner ? owner : "");
    sb_add(b, ",\"RuntimeId\":");
    sb_add_json(b, rid);
    sb_addf(b, ",\"Stopped\":%s", state && !strcmp(state, "Stopped") ? "true" : "false");
    if (exit_type) {
        sb_add(b, ",\"ExitType\":");
        sb_add_json(b, exit_type);
    }
    if (statistics) add_statistics_json(b, line);
    sb_add(b, "}");
    free(id);
    free(state);
    free(owner);
    free(rid);
    free(exit_type);
}

/* A query must at least be JSON; NULL and "" ask for the basics. */
static hresult check_query(call *c, const wchar16 *query, json_value **parsed) {
    *parsed = NULL;
    if (!query || !query[0]) return S_OK_;
    char *text = wstr_to_utf8(query);
    char err[160];
    *parsed = json_parse(text, err, sizeof err);
    free(text);
    if (!*parsed)
        return call_fail(c, VMCOMPUTE_INVALID_JSON,
                         "The JSON document is invalid: query: %s", err);
    if ((*parsed)->type != JSON_OBJECT) {
        json_free(*parsed);
        *parsed = NULL;
        return call_fail(c, VMCOMPUTE_INVALID_JSON,
                         "The JSON document is invalid: query: expected an "
                         "object");
    }
    return S_OK_;
}

/* Whether a schema-1 PropertyQuery's PropertyTypes names type. */
static bool wants_property(const json_value *query, const char *type) {
    const json_value *types = json_get(query, "PropertyTypes");
    if (!types || types->type != JSON_ARRAY) return false;
    for (size_t i = 0; i < types->count; i++)
        if (types->items[i]->type == JSON_STRING &&
            !strcmp(types->items[i]->string, type))
            return true;
    return false;
}

EXPORT(HcsGetComputeSystemProperties)(void *computeSystem,
                                      const wchar16 *propertyQuery,
                                      wchar16 **properties, wchar16 **result) {
    call c;
    call_begin(&c, OP_PROPERTIES, result);
    call_arg_ptr(&c, "computeSystem", computeSystem);
    call_arg_str(&c, "propertyQuery", propertyQuery);
    if (properties) *properties = NULL;
    hresult hr = call_checks(&c);
    json_value *query = NULL;
    if (hr == S_OK_ && !properties)
        hr = call_fail(&c, E_POINTER_, "properties is NULL");
    if (hr == S_OK_) hr = check_query(&c, propertyQuery, &query);
    bool statistics = query && wants_property(query, "Statistics");
    json_free(query);
    sim_system *s = hr == S_OK_ ? get_system(&c, computeSystem, &hr) : NULL;
    if (s) {
        char *reply = NULL;
        hr = vmm_usable(&c, s);
        if (hr == S_OK_) hr = vmm_request(&c, s, "state", &reply);
        if (hr == S_OK_) {
            sb b = {0};
            add_system_json(&b, reply, statistics);
            char *text = sb_take(&b);
            *properties = call_string(text);
            call_out_ptr(&c, "properties", *properties);
            free(text);
        }
        free(reply);
        obj_put(&s->base);
    }
    return call_end(&c, hr);
}

/* True if filter (a JSON array of strings) is absent or holds value. */
static bool matches(const json_value *query, const char *key, const char *value) {
    const json_value *list = json_get(query, key);
    if (!list || list->type == JSON_NULL) return true;
    if (list->type != JSON_ARRAY) return false;
    for (size_t i = 0; i < list->count; i++)
        if (list->items[i]->type == JSON_STRING && value &&
            !strcmp(list->items[i]->string, value))
            return true;
    return false;
}

EXPORT(HcsEnumerateComputeSystems)(const wchar16 *query,
                                   wchar16 **computeSystems, wchar16 **result) {
    call c;
    call_begin(&c, OP_ENUMERATE, result);
    call_arg_str(&c, "query", query);
    if (computeSystems) *computeSystems = NULL;
    hresult hr = call_checks(&c);
    json_value *q = NULL;
    if (hr == S_OK_ && !computeSystems)
        hr = call_fail(&c, E_POINTER_, "computeSystems is NULL");
    if (hr == S_OK_) hr = check_query(&c, query, &q);
    if (hr == S_OK_) {
        /* Every system in the state directory, whoever created it. */
        registry_list l = registry_scan();
        sb b = {0};
        sb_add(&b, "[");
        bool first = true;
        for (size_t i = 0; i < l.count; i++) {
            const registry_entry *e = &l.entries[i];
            if (q && (!matches(q, "Ids", e->id) || !matches(q, "Owners", e->owner) ||
                      !matches(q, "Names", e->id) ||
                      !matches(q, "Types", "VirtualMachine")))
                continue;
            if (!first) sb_add(&b, ",");
            first = false;
            add_system_json(&b, l.greetings[i], false);
        }
        sb_add(&b, "]");
        registry_list_free(&l);
        char *text = sb_take(&b);
        *computeSystems = call_string(text);
        call_out_ptr(&c, "computeSystems", *computeSystems);
        free(text);
    }
    json_free(q);
    return call_end(&c, hr);
}

/* --- callbacks --- */

EXPORT(HcsRegisterComputeSystemCallback)(void *computeSystem,
                                         hcs_notification_callback callback,
                                         void *context, void **callbackHandle) {
    call c;
    call_begin(&c, OP_REGISTER, NULL);
    call_arg_ptr(&c, "computeSystem", computeSystem);
    call_arg_ptr(&c, "callback", (const void *)(uintptr_t)callback);
    call_arg_ptr(&c, "context", context);
    if (callbackHandle) *callbackHandle = NULL;
    hresult hr = call_checks(&c);
    if (hr == S_OK_ && (!callback || !callbackHandle))
        hr = call_fail(&c, E_INVALIDARG_, "callback and callbackHandle are required");
    sim_system *s = hr == S_OK_ ? get_system(&c, computeSystem, &hr) : NULL;
    if (s) {
        hr = register_callback(&c, &s->base, callback, context,
                               callbackHandle, "compute system");
        obj_put(&s->base);
    }
    return call_end(&c, hr);
}

hresult register_callback(call *c, object *target,
                          hcs_notification_callback callback, void *context,
                          void **callbackHandle, const char *what) {
    callback_reg *reg;
    hresult hr = notify_register(target, callback, context, &reg);
    if (hr != S_OK_)
        return call_fail(c, hr, "The %s handle already has a callback", what);
    *callbackHandle = reg;
    diag_count(COUNT_CALLBACKS_REGISTERED);
    diag_trace_event("register", "callback", reg);
    call_out_ptr(c, "callbackHandle", reg);
    return S_OK_;
}

hresult unregister_callback(call *c, void *handle, obj_kind owner_kind) {
    callback_reg *reg = (callback_reg *)obj_get(handle, OBJ_CALLBACK);
    if (!reg || !reg->owner || reg->owner->kind != owner_kind) {
        if (reg) obj_put(&reg->base);
        return call_fail(c, HR_INVALID_HANDLE,
                         "%p is not a registered callback handle of this kind",
                         handle);
    }
    notify_unregister(reg);
    diag_count(COUNT_CALLBACKS_UNREGISTERED);
    diag_trace_event("unregister", "callback", reg);
    obj_put(&reg->base);
    return S_OK_;
}

EXPORT(HcsUnregisterComputeSystemCallback)(void *callbackHandle) {
    call c;
    call_begin(&c, OP_UNREGISTER, NULL);
    call_arg_ptr(&c, "callbackHandle", callbackHandle);
    hresult hr = call_checks(&c);
    if (hr == S_OK_) hr = unregister_callback(&c, callbackHandle, OBJ_SYSTEM);
    return call_end(&c, hr);
}
