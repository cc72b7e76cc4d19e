/* Compute system handles as connections to supervisors (see vmm_client.h). */
#include "vmm_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "notify.h"
#include "registry.h"

/* How long a supervisor may take to answer; QEMU starts in well under a
 * second, so this only ends real hangs. */
#define REPLY_TIMEOUT_MS 30000
#define SPAWN_TIMEOUT_MS 15000

struct pending {
    pending *next;
    bool waiting;   /* a caller blocks for the reply ... */
    bool done;      /* ... which has arrived (reply may be NULL: EOF) */
    bool abandoned; /* ... but gave up waiting */
    char *reply;
    /* Otherwise the reply completes an operation with a notification. */
    sim_op op;
    uint32_t type;
    int64_t delay_ms;
    bool no_completion;
    finish_fn finish;
};

/* The systems this process created, for the VmsRunning counter. */
typedef struct {
    char *id;
    uint16_t port;
} created_system;
static created_system *created;
static size_t created_count;

static void destroy_system(object *o) {
    sim_system *s = (sim_system *)o;
    notify_drop_held(o);
    line_buf_free(&s->in);
    free(s->id);
    free(s);
}

static sim_system *new_system(const char *id, plat_sock sock) {
    sim_system *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->base.kind = OBJ_SYSTEM;
    s->base.destroy = destroy_system;
    s->id = strdup(id);
    s->sock = sock;
    return s;
}

sim_system *vmm_detached(const char *id) {
    return new_system(id, PLAT_SOCK_INVALID);
}

/* --- the reader thread --- */

static void complete(sim_system *s, pending *p, const char *reply) {
    hresult status = S_OK_;
    char *data = NULL;
    if (reply && proto_is(reply, "ok")) {
        if (p->finish) status = p->finish(s, reply, &data);
    } else {
        status = reply ? (hresult)proto_get_int(reply, "hr", E_FAIL_)
                       : VMCOMPUTE_CONNECTION_CLOSED;
        char *msg = reply ? proto_get(reply, "msg") : NULL;
        data = result_document(status,
                               msg ? msg
                                   : "The connection to the compute system's "
                                     "supervisor was closed",
                               p->op);
        free(msg);
    }
    if (p->no_completion) free(data);
    else notify_post(&s->base, p->type, status, data, p->delay_ms);
}

static void on_exited(sim_system *s, const char *line) {
    hresult status = (hresult)proto_get_int(line, "status", 0);
    char *type = proto_get(line, "type");
    sb data = {0};
    sb_addf(&data, "{\"Status\":%ld,\"ExitType\":", (long)status);
    sb_add_json(&data, type ? type : "Unknown");
    sb_add(&data, "}");
    free(type);
    plat_lock(&sim_lock);
    s->exited = true;
    int64_t delay = s->exit_delay_ms;
    bool silent = s->exit_silent;
    plat_cond_broadcast(&sim_changed);
    plat_unlock(&sim_lock);
    char *text = sb_take(&data);
    if (silent) free(text);
    else notify_post(&s->base, NOTIFY_SYSTEM_EXITED, status, text, delay);
}

static void on_line(sim_system *s, const char *line) {
    if (proto_is(line, "event")) {
        if (proto_is(line, "event exited")) on_exited(s, line);
        return;
    }
    plat_lock(&sim_lock);
    pending *p = s->pending;
    if (!p) {
        plat_unlock(&sim_lock);
        return;
    }
    s->pending = p->next;
    if (p->waiting && !p->abandoned) {
        p->reply = strdup(line);
        p->done = true;
        plat_cond_broadcast(&sim_changed);
        plat_unlock(&sim_lock);
        return; /* the waiter frees p */
    }
    plat_unlock(&sim_lock);
    if (!p->waiting) complete(s, p, line);
    free(p);
}

static void on_eof(sim_system *s) {
    plat_lock(&sim_lock);
    s->eof = true;
    pending *list = s->pending;
    s->pending = NULL;
    for (pending *p = list; p; p = p->next)
        if (p->waiting) p->done = true;
    bool vanished = !s->closing && !s->disconnected;
    plat_cond_broadcast(&sim_changed);
    plat_unlock(&sim_lock);
    while (list) {
        pending *p = list;
        list = p->next;
        if (!p->waiting) complete(s, p, NULL);
        if (!p->waiting || p->abandoned) free(p);
    }
    /* The supervisor is the service as far as this handle knows. */
    if (vanished) {
        notify_post(&s->base, NOTIFY_SERVICE_DISCONNECT,
                    HR_RPC_SERVER_UNAVAILABLE, NULL, 0);
        processes_on_disconnect(s);
    }
}

static void reader_main(void *arg) {
    sim_system *s = arg;
    char buf[4096];
    for (;;) {
        char *line;
        while ((line = line_buf_next(&s->in)) != NULL) {
            on_line(s, line);
            free(line);
        }
        int n = plat_sock_recv(s->sock, buf, sizeof buf);
        if (n <= 0) break;
        line_buf_feed(&s->in, buf, (size_t)n);
    }
    on_eof(s);
}

/* --- connecting --- */

static char *read_line(plat_sock sock, line_buf *in) {
    char buf[1024], *line;
    while (!(line = line_buf_next(in))) {
        int n = plat_sock_recv(sock, buf, sizeof buf);
        if (n <= 0) return NULL;
        line_buf_feed(in, buf, (size_t)n);
    }
    return line;
}

/* Makes a handle of a connection whose greeting is in line. */
static hresult adopt(call *c, const char *id, plat_sock sock, line_buf *in,
                     const char *line, sim_system **out) {
    if (!line || !proto_is(line, "hello")) {
        hresult hr = line ? (hresult)proto_get_int(line, "hr", E_FAIL_)
                          : VMCOMPUTE_CONNECTION_CLOSED;
        char *msg = line ? proto_get(line, "msg") : NULL;
        call_fail(c, hr, "%s",
                  msg ? msg : "The compute system's supervisor closed the "
                              "connection");
        free(msg);
        plat_sock_close(sock);
        line_buf_free(in);
        return hr;
    }
    sim_system *s = new_system(id, sock);
    if (!s) {
        plat_sock_close(sock);
        line_buf_free(in);
        return call_fail(c, E_OUTOFMEMORY_, "out of memory");
    }
    s->in = *in;
    obj_add(&s->base);
    plat_pin_library();
    s->reader = plat_thread_start(reader_main, s);
    diag_count(COUNT_SYSTEM_HANDLES_OPENED);
    diag_trace_event("open_system", "handle", s);
    *out = s;
    return S_OK_;
}

/* argv for the supervisor, grown one string at a time. */
typedef struct {
    char **v;
    size_t n;
} args;

static void arg(args *a, const char *s) {
    char **bigger = realloc(a->v, (a->n + 2) * sizeof *bigger);
    if (!bigger) return;
    a->v = bigger;
    a->v[a->n++] = strdup(s ? s : "");
    a->v[a->n] = NULL;
}

static void option(args *a, const char *name, const char *value) {
    arg(a, name);
    arg(a, value);
}

static void option_int(args *a, const char *name, long long value) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", value);
    option(a, name, buf);
}

/* option() with a value built in b, which it empties. */
static void option_sb(args *a, const char *name, sb *b) {
    char *value = sb_take(b);
    option(a, name, value);
    free(value);
}

static void args_free(args *a) {
    for (size_t i = 0; i < a->n; i++) free(a->v[i]);
    free(a->v);
}

/* The supervisor runs QEMU, which needs Unix paths: under Wine the
 * document's Windows paths are translated. */
static char *unix_path_or_fail(call *c, const char *path, hresult *hr) {
    char *p = plat_unix_path(path);
    if (!p) *hr = call_fail(c, E_INVALIDARG_, "Cannot map \"%s\" to a host path", path);
    return p;
}

static bool build_args(call *c, args *a, const char *exe, const char *id,
                       const vm_spec *spec, uint16_t port, hresult *hr) {
    char *dir = registry_dir();
    arg(a, exe);
    option(a, "--id", id);
    option(a, "--owner", spec->owner);
    option(a, "--state-dir", dir);
    option_int(a, "--connect", port);
    option_int(a, "--memory", spec->memory_mb);
    option_int(a, "--cpus", spec->cpus);
    free(dir);
    char *p = unix_path_or_fail(c, spec->kernel, hr);
    option(a, "--kernel", p);
    free(p);
    if (spec->initrd) {
        p = unix_path_or_fail(c, spec->initrd, hr);
        option(a, "--initrd", p);
        free(p);
    }
    if (spec->cmdline) option(a, "--cmdline", spec->cmdline);
    if (spec->stop_on_reset) arg(a, "--stop-on-reset");
    if (spec->terminate_on_close) arg(a, "--terminate-on-close");
    option_int(a, "--scsi-controllers", spec->scsi_controllers);
    sb b = {0};
    for (size_t i = 0; i < spec->disk_count; i++) {
        const disk_spec *d = &spec->disks[i];
        p = unix_path_or_fail(c, d->path, hr);
        sb_addf(&b, "%d:%d:%s:%s", d->controller, d->lun,
                d->read_only ? "ro" : "rw", p ? p : "");
        free(p);
        option_sb(a, "--disk", &b);
    }
    for (int i = 0; i < 2; i++) {
        if (!spec->com_pipe[i]) continue;
#ifdef _WIN32
        /* QEMU serves the port on loopback TCP; the starter of the VM
         * relays it to a real named pipe (pipe_relay_win.c). */
        sb_addf(&b, "%d:tcp:%s", i, spec->com_pipe[i]);
#else
        /* The one naming rule: \\.\pipe\NAME is /tmp/hcs-pipe/NAME. */
        sb_addf(&b, "%d:unix:/tmp/hcs-pipe/%s", i, pipe_base_name(spec->com_pipe[i]));
#endif
        option_sb(a, "--com", &b);
    }
    return *hr == S_OK_;
}

hresult vmm_create(call *c, const char *id, const vm_spec *spec,
                   sim_system **out) {
    char *exe = plat_supervisor_path();
    if (!exe || !plat_is_file(exe)) {
        hresult hr = call_fail(c, E_FAIL_,
                               "hcs-sim: the supervisor executable is missing "
                               "(%s); run make -C tests/hcs-sim",
                               exe ? exe : "?");
        free(exe);
        return hr;
    }
    uint16_t port = 0;
    plat_sock listener = plat_tcp_listen(&port);
    if (listener == PLAT_SOCK_INVALID) {
        free(exe);
        return call_fail(c, E_FAIL_, "hcs-sim: cannot listen on 127.0.0.1");
    }
    args a = {0};
    hresult hr = S_OK_;
    if (build_args(c, &a, exe, id, spec, port, &hr) && !plat_spawn(a.v))
        hr = call_fail(c, E_FAIL_, "hcs-sim: cannot start %s", exe);
    args_free(&a);
    free(exe);
    plat_sock sock = PLAT_SOCK_INVALID;
    if (hr == S_OK_) {
        /* The supervisor connects back: that connection is our handle. */
        sock = plat_tcp_accept(listener, SPAWN_TIMEOUT_MS);
        if (sock == PLAT_SOCK_INVALID)
            hr = call_fail(c, VMCOMPUTE_TIMEOUT,
                           "hcs-sim: the supervisor did not report back within "
                           "%d s (set HCS_SIM_VMM_LOG=/path to see why)",
                           SPAWN_TIMEOUT_MS / 1000);
    }
    plat_sock_close(listener);
    if (hr != S_OK_) return hr;
    line_buf in = {0};
    char *line = read_line(sock, &in);
    hr = adopt(c, id, sock, &in, line, out);
    if (hr == S_OK_) {
        plat_lock(&sim_lock);
        created_system *bigger =
            realloc(created, (created_count + 1) * sizeof *bigger);
        if (bigger) {
            created = bigger;
            created[created_count].id = strdup(id);
            created[created_count++].port = (uint16_t)proto_get_int(line, "port", 0);
        }
        plat_unlock(&sim_lock);
    }
    free(line);
    return hr;
}

hresult vmm_open(call *c, const char *id, sim_system **out) {
    registry_entry e;
    if (!registry_find(id, &e))
        return call_fail(c, VMCOMPUTE_SYSTEM_NOT_FOUND,
                         "A compute system with id \"%s\" does not exist", id);
    plat_sock sock = plat_tcp_connect(e.port);
    registry_entry_free(&e);
    if (sock == PLAT_SOCK_INVALID || !plat_sock_send_all(sock, "hello handle\n", 13)) {
        if (sock != PLAT_SOCK_INVALID) plat_sock_close(sock);
        return call_fail(c, VMCOMPUTE_SYSTEM_NOT_FOUND,
                         "A compute system with id \"%s\" does not exist", id);
    }
    line_buf in = {0};
    char *line = read_line(sock, &in);
    hresult hr = adopt(c, id, sock, &in, line, out);
    free(line);
    return hr;
}

/* --- requests --- */

hresult vmm_usable(call *c, sim_system *s) {
    if (s->disconnected)
        return call_fail(c, HR_RPC_SERVER_UNAVAILABLE,
                         "The compute service is gone (simulated "
                         "ServiceDisconnect)");
    if (s->sock == PLAT_SOCK_INVALID)
        return call_fail(c, VMCOMPUTE_SYSTEM_NOT_FOUND,
                         "The compute system \"%s\" was never created", s->id);
    if (s->eof)
        return call_fail(c, HR_RPC_SERVER_UNAVAILABLE,
                         "The supervisor of \"%s\" is gone", s->id);
    return S_OK_;
}

/* Queues p and sends line. Under sim_lock, so that the order of requests
 * on the wire is the order of the queue. */
static bool send_request(sim_system *s, pending *p, const char *line) {
    if (s->eof) return false;
    pending **tail = &s->pending;
    while (*tail) tail = &(*tail)->next;
    *tail = p;
    size_t n = strlen(line);
    char *framed = malloc(n + 2);
    if (framed) {
        memcpy(framed, line, n);
        memcpy(framed + n, "\n", 2);
        plat_sock_send_all(s->sock, framed, n + 1); /* failure shows as EOF */
    }
    free(framed);
    return true;
}

hresult vmm_request(call *c, sim_system *s, const char *line, char **reply) {
    *reply = NULL;
    pending *p = calloc(1, sizeof *p);
    if (!p) return call_fail(c, E_OUTOFMEMORY_, "out of memory");
    p->waiting = true;
    plat_lock(&sim_lock);
    bool sent = send_request(s, p, line);
    int64_t deadline = plat_now_ms() + REPLY_TIMEOUT_MS;
    while (sent && !p->done && plat_now_ms() < deadline)
        plat_cond_wait(&sim_changed, &sim_lock, deadline - plat_now_ms());
    bool done = p->done;
    if (sent && !done) p->abandoned = true; /* the reader frees it */
    plat_unlock(&sim_lock);
    if (!sent) free(p);
    if (sent && !done)
        return call_fail(c, VMCOMPUTE_TIMEOUT,
                         "The supervisor of \"%s\" did not answer \"%s\"", s->id,
                         line);
    char *r = sent ? p->reply : NULL;
    if (sent) free(p);
    if (!r)
        return call_fail(c, HR_RPC_SERVER_UNAVAILABLE,
                         "The supervisor of \"%s\" is gone", s->id);
    if (proto_is(r, "err")) {
        hresult hr = (hresult)proto_get_int(r, "hr", E_FAIL_);
        char *msg = proto_get(r, "msg");
        call_fail(c, hr, "%s", msg ? msg : "");
        free(msg);
        free(r);
        return hr;
    }
    *reply = r;
    return S_OK_;
}

hresult vmm_request_async(call *c, sim_system *s, const char *line,
                          uint32_t type, finish_fn finish) {
    pending *p = calloc(1, sizeof *p);
    if (!p) return call_fail(c, E_OUTOFMEMORY_, "out of memory");
    p->op = c->op;
    p->type = type;
    p->delay_ms = call_delay(c);
    p->no_completion = call_no_completion(c);
    p->finish = finish;
    plat_lock(&sim_lock);
    bool sent = send_request(s, p, line);
    plat_unlock(&sim_lock);
    if (!sent) {
        free(p);
        return call_fail(c, HR_RPC_SERVER_UNAVAILABLE,
                         "The supervisor of \"%s\" is gone", s->id);
    }
    return VMCOMPUTE_OPERATION_PENDING;
}

/* --- closing --- */

void vmm_close(sim_system *s) {
    plat_lock(&sim_lock);
    s->closing = true;
    plat_unlock(&sim_lock);
    if (s->sock == PLAT_SOCK_INVALID) return;
    plat_sock_shutdown(s->sock);
    plat_thread_join(s->reader);
    s->reader = NULL;
    plat_sock_close(s->sock);
    s->sock = PLAT_SOCK_INVALID;
}

void vmm_disconnect(sim_system *s) {
    plat_lock(&sim_lock);
    bool skip = s->closing || s->base.closed || s->disconnected ||
                s->sock == PLAT_SOCK_INVALID;
    s->disconnected = true;
    plat_unlock(&sim_lock);
    if (skip) return;
    /* The supervisor sees this handle go, as if the service had died. */
    plat_sock_shutdown(s->sock);
    notify_post(&s->base, NOTIFY_SERVICE_DISCONNECT, HR_RPC_SERVER_UNAVAILABLE,
                NULL, 0);
    processes_on_disconnect(s);
}

int vmm_running_count(void) {
    plat_lock(&sim_lock);
    size_t n = created_count;
    created_system *copy = calloc(n + 1, sizeof *copy);
    for (size_t i = 0; copy && i < n; i++)
        copy[i] = (created_system){strdup(created[i].id), created[i].port};
    plat_unlock(&sim_lock);
    int running = 0;
    for (size_t i = 0; copy && i < n; i++) {
        registry_entry e = {copy[i].id, NULL, NULL, copy[i].port, 0};
        char *greeting;
        if (registry_probe(&e, &greeting)) {
            char *state = proto_get(greeting, "state");
            if (state && strcmp(state, "Stopped") != 0) running++;
            free(state);
            free(greeting);
        }
        free(copy[i].id);
    }
    free(copy);
    return running;
}
