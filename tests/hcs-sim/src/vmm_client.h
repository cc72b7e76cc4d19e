/*
 * A compute system handle (HCS_SYSTEM) is one TCP connection to the VM's
 * supervisor (hcs-sim-vmm), with a reader thread that matches replies to
 * requests and turns the supervisor's events into notifications. The same
 * code serves the .so and the DLL; only the sockets differ (platform.h).
 */
#ifndef HCS_SIM_VMM_CLIENT_H
#define HCS_SIM_VMM_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include "api.h"
#include "handles.h"
#include "protocol.h"
#include "schema.h"

typedef struct pending pending;

typedef struct sim_system {
    object base;
    char *id;
    plat_sock sock; /* PLAT_SOCK_INVALID: no compute system behind it */
    line_buf in;
    plat_thread *reader;
    pending *pending; /* requests awaiting a reply, oldest first */
    bool closing;      /* we are closing: the end of the stream is ours */
    bool eof;          /* the connection has ended */
    bool exited;       /* the VM has stopped */
    bool disconnected; /* a simulated ServiceDisconnect happened */
    /* How to report the next SystemExited (set by shutdown/terminate). */
    int64_t exit_delay_ms;
    bool exit_silent;
} sim_system;

/* What turns a successful reply into a completion status (Start sets up
 * the named pipe relays on Windows here). May set *data. */
typedef hresult (*finish_fn)(sim_system *s, const char *reply, char **data);

/* Starts a supervisor for a new compute system and connects to it. */
hresult vmm_create(call *c, const char *id, const vm_spec *spec,
                   sim_system **out);
/* Connects to the supervisor of an existing compute system. */
hresult vmm_open(call *c, const char *id, sim_system **out);
/* A handle with nothing behind it (a create that is made to fail later). */
sim_system *vmm_detached(const char *id);

/* Sends a request and waits for its reply ("ok ..." in *reply, malloc'd).
 * An "err" reply fails the call with the supervisor's HRESULT. */
hresult vmm_request(call *c, sim_system *s, const char *line, char **reply);
/* Sends a request whose reply becomes notification type; returns pending.
 * finish may be NULL. */
hresult vmm_request_async(call *c, sim_system *s, const char *line,
                          uint32_t type, finish_fn finish);
/* The checks every system call starts with; S_OK if s can take requests. */
hresult vmm_usable(call *c, sim_system *s);

/* Closes the connection (the supervisor drops this handle) and waits for
 * the reader thread. */
void vmm_close(sim_system *s);
/* Simulates the service going away for this handle. */
void vmm_disconnect(sim_system *s);

/* Compute systems this process created whose supervisors still run and
 * whose VM has not stopped. */
int vmm_running_count(void);

/* Tells the process handles opened through s that the service is gone
 * (api_process.c). */
void processes_on_disconnect(const sim_system *s);

#endif
