/* Parsing of the HCS_SIM switches (syntax in README.md). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform.h"

static const struct {
    const char *name, *export_name;
} ops[OP_COUNT] = {
    {"enumerate", "HcsEnumerateComputeSystems"},
    {"create", "HcsCreateComputeSystem"},
    {"open", "HcsOpenComputeSystem"},
    {"close", "HcsCloseComputeSystem"},
    {"start", "HcsStartComputeSystem"},
    {"shutdown", "HcsShutdownComputeSystem"},
    {"terminate", "HcsTerminateComputeSystem"},
    {"pause", "HcsPauseComputeSystem"},
    {"resume", "HcsResumeComputeSystem"},
    {"save", "HcsSaveComputeSystem"},
    {"properties", "HcsGetComputeSystemProperties"},
    {"modify", "HcsModifyComputeSystem"},
    {"modify_service", "HcsModifyServiceSettings"},
    {"register", "HcsRegisterComputeSystemCallback"},
    {"unregister", "HcsUnregisterComputeSystemCallback"},
    {"create_process", "HcsCreateProcess"},
    {"open_process", "HcsOpenProcess"},
    {"close_process", "HcsCloseProcess"},
    {"terminate_process", "HcsTerminateProcess"},
    {"signal_process", "HcsSignalProcess"},
    {"process_info", "HcsGetProcessInfo"},
    {"process_properties", "HcsGetProcessProperties"},
    {"modify_process", "HcsModifyProcess"},
    {"service_properties", "HcsGetServiceProperties"},
    {"register_process", "HcsRegisterProcessCallback"},
    {"unregister_process", "HcsUnregisterProcessCallback"},
};

const char *op_name(sim_op op) { return ops[op].name; }
const char *op_export(sim_op op) { return ops[op].export_name; }

/* The operations that may answer 0xC0370103 and complete later. */
static bool is_async(sim_op op) {
    return op == OP_CREATE || op == OP_START || op == OP_SHUTDOWN ||
           op == OP_TERMINATE || op == OP_PAUSE || op == OP_RESUME;
}

static plat_mutex override_lock = PLAT_MUTEX_INIT;
static char *override_spec;
static bool override_set;

static bool parse_int(const char *s, int64_t *out) {
    char *end;
    long long v = strtoll(s, &end, 0);
    if (*s == 0 || *end != 0) return false;
    *out = v;
    return true;
}

static bool parse_bool(const char *s, bool *out) {
    if (!strcmp(s, "1") || !strcmp(s, "true")) *out = true;
    else if (!strcmp(s, "0") || !strcmp(s, "false")) *out = false;
    else return false;
    return true;
}

/* An HRESULT as 0x hex (the usual way to write one) or signed decimal. */
static bool parse_hr(const char *s, hresult *out) {
    char *end;
    long long v = strtoll(s, &end, 0);
    if (*s == 0 || *end != 0 || v < INT32_MIN || v > (long long)UINT32_MAX)
        return false;
    *out = (hresult)(uint32_t)v;
    return true;
}

static int find_op(const char *name, size_t len) {
    for (int i = 0; i < OP_COUNT; i++) {
        if ((strlen(ops[i].name) == len && !strncmp(ops[i].name, name, len)) ||
            (strlen(ops[i].export_name) == len &&
             !strncmp(ops[i].export_name, name, len)))
            return i;
    }
    return -1;
}

static bool set_op_switch(sim_config *cfg, int op, const char *what,
                          const char *value) {
    op_switches *s = &cfg->ops[op];
    bool ok = true;
    if (!strcmp(what, "fail")) {
        s->fail = true;
        ok = parse_hr(value, &s->fail_hr);
    } else if (!strcmp(what, "message")) {
        snprintf(s->message, sizeof s->message, "%s", value);
    } else if (!is_async(op)) {
        snprintf(cfg->error, sizeof cfg->error,
                 "'%s.%s': %s completes synchronously, only fail and message "
                 "apply", op_name(op), what, op_name(op));
        return false;
    } else if (!strcmp(what, "fail_async") &&
               (op == OP_SHUTDOWN || op == OP_TERMINATE)) {
        snprintf(cfg->error, sizeof cfg->error,
                 "'%s.fail_async': %s has no completion notification to carry "
                 "a failure, use %s.fail", op_name(op), op_name(op),
                 op_name(op));
        return false;
    } else if (!strcmp(what, "fail_async")) {
        s->fail_async = true;
        ok = parse_hr(value, &s->fail_async_hr);
    } else if (!strcmp(what, "no_completion")) {
        ok = parse_bool(value, &s->no_completion);
    } else if (!strcmp(what, "delay")) {
        ok = parse_int(value, &s->delay_ms) && s->delay_ms >= 0;
    } else if (!strcmp(what, "ignore") && op == OP_SHUTDOWN) {
        ok = parse_bool(value, &cfg->shutdown_ignore);
    } else {
        snprintf(cfg->error, sizeof cfg->error, "unknown switch '%s.%s'",
                 op_name(op), what);
        return false;
    }
    if (!ok)
        snprintf(cfg->error, sizeof cfg->error, "invalid value '%s' for '%s.%s'",
                 value, op_name(op), what);
    return ok;
}

static bool set_switch(sim_config *cfg, const char *key, const char *value) {
    bool ok = true;
    const char *dot = strchr(key, '.');
    if (!strcmp(key, "sync")) {
        ok = parse_bool(value, &cfg->sync);
    } else if (!strcmp(key, "die_after")) {
        ok = parse_int(value, &cfg->die_after_ms) && cfg->die_after_ms >= 0;
    } else if (!strcmp(key, "disconnect_after")) {
        ok = parse_int(value, &cfg->disconnect_after_ms) &&
             cfg->disconnect_after_ms >= 0;
    } else if (!strcmp(key, "exists")) {
        ok = parse_bool(value, &cfg->exists);
    } else if (!strcmp(key, "no_com")) {
        ok = parse_bool(value, &cfg->no_com);
    } else if (!strcmp(key, "process")) {
        if (!strcmp(value, "agent")) cfg->process = PROCESS_AGENT;
        else if (!strcmp(value, "none")) cfg->process = PROCESS_NO_AGENT;
        else ok = false;
    } else if (!strcmp(key, "process.exit_code")) {
        int64_t code = 0;
        ok = parse_int(value, &code) && code >= 0 && code <= UINT32_MAX;
        cfg->process_exit_code = (uint32_t)code;
    } else if (dot && find_op(key, (size_t)(dot - key)) >= 0) {
        return set_op_switch(cfg, find_op(key, (size_t)(dot - key)), dot + 1,
                             value);
    } else {
        snprintf(cfg->error, sizeof cfg->error, "unknown switch '%s'", key);
        return false;
    }
    if (!ok)
        snprintf(cfg->error, sizeof cfg->error, "invalid value '%s' for '%s'",
                 value, key);
    return ok;
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    char *end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t')) *--end = 0;
    return s;
}

bool config_parse(const char *spec, sim_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->die_after_ms = -1;
    cfg->disconnect_after_ms = -1;
    if (!spec) return true;
    char *copy = strdup(spec);
    if (!copy) return false;
    bool ok = true;
    for (char *item = copy, *next; ok && item; item = next) {
        next = strchr(item, ';');
        if (next) *next++ = 0;
        char *eq = strchr(item, '=');
        if (eq) *eq = 0;
        char *key = trim(item);
        if (!*key) continue;
        /* "key" alone means key=1. */
        ok = set_switch(cfg, key, eq ? trim(eq + 1) : "1");
    }
    free(copy);
    return ok;
}

void config_load(sim_config *cfg) {
    plat_lock(&override_lock);
    char *spec = override_set ? (override_spec ? strdup(override_spec) : NULL)
                              : plat_getenv("HCS_SIM");
    bool from_env = !override_set;
    plat_unlock(&override_lock);
    if (!config_parse(spec, cfg)) {
        char why[sizeof cfg->error];
        memcpy(why, cfg->error, sizeof why);
        snprintf(cfg->error, sizeof cfg->error, "%s: %.220s",
                 from_env ? "HCS_SIM" : "HcsSimConfigure", why);
    }
    free(spec);
}

bool config_override(const char *spec, char *err, size_t err_size) {
    sim_config check;
    if (spec && !config_parse(spec, &check)) {
        snprintf(err, err_size, "%s", check.error);
        return false;
    }
    plat_lock(&override_lock);
    free(override_spec);
    override_spec = spec ? strdup(spec) : NULL;
    override_set = spec != NULL;
    plat_unlock(&override_lock);
    return true;
}
