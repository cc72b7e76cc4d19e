/* The dispatcher thread and callback registrations (see notify.h). */
#include "notify.h"

#include <stdio.h>
#include <stdlib.h>

#include "diag.h"
#include "wstr.h"

struct queued {
    queued *next;
    int64_t due;
    callback_reg *reg; /* set once the item is in the dispatcher's queue */
    uint32_t type;
    hresult status;
    char *data;
    void (*action)(void *); /* a timed action instead of a notification */
    void *arg;
};

static queued *queue; /* sorted by due, earliest first; under sim_lock */
static plat_thread *dispatcher;

static void free_item(queued *q) {
    free(q->data);
    free(q);
}

/* Keeps equal due times in posting order. Called under sim_lock. */
static void enqueue(queued *q) {
    queued **p = &queue;
    while (*p && (*p)->due <= q->due) p = &(*p)->next;
    q->next = *p;
    *p = q;
    plat_cond_broadcast(&sim_changed);
}

static void trace_delivery(const queued *q, const callback_reg *reg) {
    sb line;
    if (!diag_trace_begin(&line, "event", "notify")) return;
    sb_addf(&line,
            ",\"type\":%lu,\"status\":\"0x%08lX\",\"callback\":\"0x%llx\","
            "\"context\":\"0x%llx\",\"data\":",
            (unsigned long)q->type, (unsigned long)(uint32_t)q->status,
            (unsigned long long)(uintptr_t)reg,
            (unsigned long long)(uintptr_t)reg->context);
    sb_add_json(&line, q->data);
    diag_trace_end(&line);
}

static void dispatcher_main(void *unused) {
    (void)unused;
    plat_lock(&sim_lock);
    for (;;) {
        if (!queue) {
            plat_cond_wait(&sim_changed, &sim_lock, -1);
            continue;
        }
        int64_t wait = queue->due - plat_now_ms();
        if (wait > 0) {
            plat_cond_wait(&sim_changed, &sim_lock, wait);
            continue;
        }
        queued *q = queue;
        queue = q->next;
        if (q->action) {
            plat_unlock(&sim_lock);
            q->action(q->arg);
            free_item(q);
            plat_lock(&sim_lock);
            continue;
        }
        callback_reg *reg = q->reg;
        reg->running = true;
        plat_unlock(&sim_lock);

        wchar16 *data = q->data ? wstr_from_utf8(q->data, NULL) : NULL;
        trace_delivery(q, reg);
        diag_count(COUNT_NOTIFICATIONS_DELIVERED);
        reg->fn(q->type, reg->context, q->status, data);
        free(data);
        free_item(q);

        plat_lock(&sim_lock);
        reg->running = false;
        reg->queued--;
        plat_cond_broadcast(&sim_changed);
        plat_unlock(&sim_lock);
        obj_put(&reg->base);
        plat_lock(&sim_lock);
    }
}

/* Called under sim_lock. The thread lives as long as the process, so the
 * library must never be unloaded under it. */
static void start_dispatcher(void) {
    if (dispatcher) return;
    plat_pin_library();
    dispatcher = plat_thread_start(dispatcher_main, NULL);
    if (!dispatcher) fprintf(stderr, "hcs-sim: cannot start a thread\n");
}

/* Hands a held or new item to the dispatcher for reg. Under sim_lock. */
static void queue_for(callback_reg *reg, queued *q) {
    q->reg = reg;
    reg->queued++;
    reg->base.refs++; /* dropped by the dispatcher after delivery */
    enqueue(q);
}

void notify_post(object *target, uint32_t type, hresult status, char *data,
                 int64_t delay_ms) {
    queued *q = calloc(1, sizeof *q);
    if (!q) {
        free(data);
        return;
    }
    q->due = plat_now_ms() + delay_ms;
    q->type = type;
    q->status = status;
    q->data = data;
    plat_lock(&sim_lock);
    if (target->closed) {
        free_item(q);
    } else if (target->reg) {
        start_dispatcher();
        queue_for(target->reg, q);
    } else {
        queued **p = &target->held;
        while (*p) p = &(*p)->next;
        *p = q;
    }
    plat_unlock(&sim_lock);
}

void notify_after(int64_t delay_ms, void (*action)(void *), void *arg) {
    queued *q = calloc(1, sizeof *q);
    if (!q) return;
    q->due = plat_now_ms() + delay_ms;
    q->action = action;
    q->arg = arg;
    plat_lock(&sim_lock);
    start_dispatcher();
    enqueue(q);
    plat_unlock(&sim_lock);
}

static void destroy_reg(object *o) {
    callback_reg *reg = (callback_reg *)o;
    obj_put(reg->owner);
    free(reg);
}

hresult notify_register(object *target, hcs_notification_callback fn,
                        void *context, callback_reg **out) {
    callback_reg *reg = calloc(1, sizeof *reg);
    if (!reg) return E_OUTOFMEMORY_;
    reg->base.kind = OBJ_CALLBACK;
    reg->base.destroy = destroy_reg;
    reg->fn = fn;
    reg->context = context;
    obj_add(&reg->base);
    plat_lock(&sim_lock);
    if (target->reg) {
        plat_unlock(&sim_lock);
        obj_remove(&reg->base); /* destroys it */
        return HCS_E_CALLBACK_ALREADY_SET;
    }
    reg->owner = target;
    target->refs++;
    target->reg = reg;
    start_dispatcher();
    /* What happened before the caller could register arrives now. */
    while (target->held) {
        queued *q = target->held;
        target->held = q->next;
        queue_for(reg, q);
    }
    plat_unlock(&sim_lock);
    *out = reg;
    return S_OK_;
}

void notify_unregister(callback_reg *reg) {
    plat_lock(&sim_lock);
    /* New notifications are held for a later callback from now on. */
    if (reg->owner->reg == reg) reg->owner->reg = NULL;
    /* Like HCS: return only once no callback for this registration is
     * running or waiting to run. A caller that blocks the thread the
     * callback needs (a synchronous FFI call from the JavaScript thread)
     * deadlocks here, as it would on Windows. */
    while (reg->queued > 0 || reg->running)
        plat_cond_wait(&sim_changed, &sim_lock, -1);
    plat_unlock(&sim_lock);
    obj_remove(&reg->base);
}

void notify_drop_held(object *target) {
    while (target->held) {
        queued *q = target->held;
        target->held = q->next;
        free_item(q);
    }
}
