/* The service exports (HCS.md section 1, rows 13 and 24) and the
 * simulator's own: HcsSimConfigure and HcsSimGetCounters. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "diag.h"
#include "platform.h"
#include "vmm_client.h"
#include "wstr.h"


/* One property document of HcsGetServiceProperties. */
static bool add_service_property(sb *b, const char *type) {
    if (!strcmp(type, "ProcessorTopology")) {
        int n = plat_cpu_count();
        sb_addf(b, "{\"TotalLogicalProcessorCount\":%d,\"LogicalProcessors\":[", n);
        for (int i = 0; i < n; i++)
            sb_addf(b, "%s{\"LpIndex\":%d,\"NodeNumber\":0,\"PackageId\":0,"
                       "\"CoreId\":%d,\"RootVpIndex\":-1}",
                    i ? "," : "", i, i);
        sb_add(b, "]}");
        return true;
    }
    if (!strcmp(type, "Basic")) {
        sb_add(b, "{\"SupportedSchemaVersions\":[{\"Major\":2,\"Minor\":1}]}");
        return true;
    }
    return false;
}

EXPORT(HcsGetServiceProperties)(const wchar16 *propertyQuery,
                                wchar16 **properties, wchar16 **result) {
    call c;
    call_begin(&c, OP_SERVICE_PROPERTIES, result);
    call_arg_str(&c, "propertyQuery", propertyQuery);
    if (properties) *properties = NULL;
    hresult hr = call_checks(&c);
    if (hr == S_OK_ && !properties)
        hr = call_fail(&c, E_POINTER_, "properties is NULL");
    char *text = hr == S_OK_ ? wstr_to_utf8(propertyQuery) : NULL;
    char err[160] = "missing";
    json_value *q = text ? json_parse(text, err, sizeof err) : NULL;
    const json_value *types = json_get(q, "PropertyTypes");
    if (hr == S_OK_ && (!types || types->type != JSON_ARRAY))
        hr = call_fail(&c, VMCOMPUTE_INVALID_JSON,
                       "The JSON document is invalid: propertyQuery.PropertyTypes"
                       ": %s", q ? "expected an array of strings" : err);
    sb b = {0};
    sb_add(&b, "{\"Properties\":[");
    for (size_t i = 0; hr == S_OK_ && i < types->count; i++) {
        const json_value *t = types->items[i];
        if (i) sb_add(&b, ",");
        if (t->type != JSON_STRING || !add_service_property(&b, t->string))
            hr = call_fail(&c, HR_NOT_SUPPORTED,
                           "propertyQuery.PropertyTypes[%lu]: not simulated "
                           "(ProcessorTopology and Basic are)", (unsigned long)i);
    }
    sb_add(&b, "]}");
    if (hr == S_OK_) {
        char *doc = sb_take(&b);
        *properties = call_string(doc);
        call_out_ptr(&c, "properties", *properties);
        free(doc);
    }
    sb_free(&b);
    json_free(q);
    free(text);
    return call_end(&c, hr);
}

EXPORT(HcsModifyServiceSettings)(const wchar16 *settings, wchar16 **result) {
    call c;
    call_begin(&c, OP_MODIFY_SERVICE, result);
    call_arg_str(&c, "settings", settings);
    hresult hr = call_checks(&c);
    if (hr == S_OK_)
        hr = call_fail(&c, HR_NOT_SUPPORTED,
                       "Modifying the service settings is not simulated");
    return call_end(&c, hr);
}

/* HcsSimConfigure(spec): the HCS_SIM switches for this process, replacing
 * the environment's; NULL goes back to the environment. */
EXPORT(HcsSimConfigure)(const wchar16 *spec) {
    char *text = wstr_to_utf8(spec);
    char err[256];
    bool ok = config_override(text, err, sizeof err);
    if (!ok) fprintf(stderr, "hcs-sim: HcsSimConfigure: %s\n", err);
    sb line;
    if (diag_trace_begin(&line, "call", "HcsSimConfigure")) {
        sb_add(&line, ",\"args\":{\"spec\":");
        sb_add_json(&line, text);
        sb_addf(&line, "},\"hr\":\"0x%08lX\"",
                (unsigned long)(uint32_t)(ok ? S_OK_ : E_INVALIDARG_));
        diag_trace_end(&line);
    }
    free(text);
    return ok ? S_OK_ : E_INVALIDARG_;
}

/* HcsSimGetCounters(&json): this process's counters. The answer is freed
 * with CoTaskMemFree like any result, but is not itself counted. */
EXPORT(HcsSimGetCounters)(wchar16 **json) {
    if (!json) return E_POINTER_;
    sb b = {0};
    sb_add(&b, "{");
    diag_counters_json(&b);
    sb_addf(&b, ",\"VmsRunning\":%d,\"FreesObserved\":%s}", vmm_running_count(),
            plat_watch_frees() ? "true" : "false");
    char *text = sb_take(&b);
    *json = text ? diag_result_string(text, false) : NULL;
    free(text);
    return *json ? S_OK_ : E_OUTOFMEMORY_;
}
