/*
 * The fault and behaviour switches: HCS_SIM="key=value;key=value", read
 * again at every API call, or a spec given to HcsSimConfigure, which
 * replaces the environment's until HcsSimConfigure(NULL). README.md lists
 * the keys.
 */
#ifndef HCS_SIM_CONFIG_H
#define HCS_SIM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hcs.h"

/* One entry per export, in the order of HCS.md section 1. */
typedef enum {
    OP_ENUMERATE,
    OP_CREATE,
    OP_OPEN,
    OP_CLOSE,
    OP_START,
    OP_SHUTDOWN,
    OP_TERMINATE,
    OP_PAUSE,
    OP_RESUME,
    OP_SAVE,
    OP_PROPERTIES,
    OP_MODIFY,
    OP_MODIFY_SERVICE,
    OP_REGISTER,
    OP_UNREGISTER,
    OP_CREATE_PROCESS,
    OP_OPEN_PROCESS,
    OP_CLOSE_PROCESS,
    OP_TERMINATE_PROCESS,
    OP_SIGNAL_PROCESS,
    OP_PROCESS_INFO,
    OP_PROCESS_PROPERTIES,
    OP_MODIFY_PROCESS,
    OP_SERVICE_PROPERTIES,
    OP_REGISTER_PROCESS,
    OP_UNREGISTER_PROCESS,
    OP_COUNT
} sim_op;

const char *op_name(sim_op op);   /* the switch name, e.g. "start" */
const char *op_export(sim_op op); /* e.g. "HcsStartComputeSystem" */

typedef struct {
    bool fail;          /* <op>.fail: the call returns fail_hr */
    hresult fail_hr;
    bool fail_async;    /* <op>.fail_async: pending, then a failed completion */
    hresult fail_async_hr;
    char message[256];  /* <op>.message: the ErrorEvents message */
    bool no_completion; /* <op>.no_completion */
    int64_t delay_ms;   /* <op>.delay */
} op_switches;

typedef enum { PROCESS_NO_AGENT, PROCESS_AGENT } process_mode;

typedef struct {
    bool sync;                   /* complete operations synchronously */
    int64_t die_after_ms;        /* < 0: the VM does not die by itself */
    int64_t disconnect_after_ms; /* < 0: no ServiceDisconnect */
    bool exists;                 /* create: the id already exists */
    bool shutdown_ignore;        /* shutdown never reaches the guest */
    bool no_com;                 /* create: ComPorts ignored, no pipe */
    process_mode process;
    uint32_t process_exit_code;
    op_switches ops[OP_COUNT];
    char error[256]; /* non-empty: the spec is invalid, say why */
} sim_config;

/* The configuration for this call: HcsSimConfigure's spec if one is set,
 * else $HCS_SIM. An invalid spec leaves a message in cfg->error. */
void config_load(sim_config *cfg);
/* Parses spec (NULL or "" = defaults); false with cfg->error set. */
bool config_parse(const char *spec, sim_config *cfg);
/* Replaces the in-process spec (NULL: use $HCS_SIM again). */
bool config_override(const char *spec, char *err, size_t err_size);

#endif
