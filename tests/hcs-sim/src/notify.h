/*
 * Notifications, delivered the way HCS delivers them: from a thread of our
 * own (the dispatcher), one at a time, never before the handle has a
 * callback (until then they are held), and with unregistering waiting for
 * every callback still running or queued for that registration.
 *
 * The dispatcher also runs timed actions (delayed faults such as
 * disconnect_after), so that every delay is in one place.
 */
#ifndef HCS_SIM_NOTIFY_H
#define HCS_SIM_NOTIFY_H

#include <stdint.h>
#include "handles.h"
#include "hcs.h"

struct callback_reg {
    object base;   /* a handle itself: HCS_CALLBACK */
    object *owner; /* the system or process it was registered on */
    hcs_notification_callback fn;
    void *context;
    int queued;    /* notifications waiting in the dispatcher for it */
    bool running;  /* fn is being called right now */
};

/* Sends a notification to target's callback after delay_ms, holding it
 * until a callback is registered. Takes ownership of data (UTF-8 or NULL),
 * which the callback receives as UTF-16. */
void notify_post(object *target, uint32_t type, hresult status, char *data,
                 int64_t delay_ms);
/* Runs action(arg) on the dispatcher thread after delay_ms. */
void notify_after(int64_t delay_ms, void (*action)(void *), void *arg);

/* HcsRegister*Callback: HCS_E_CALLBACK_ALREADY_SET if target has one. */
hresult notify_register(object *target, hcs_notification_callback fn,
                        void *context, callback_reg **out);
/* HcsUnregister*Callback and the implicit one of closing a handle: waits
 * until nothing is running or queued for reg, then invalidates it. */
void notify_unregister(callback_reg *reg);
/* Called from a handle's destroy: frees what is still held. */
void notify_drop_held(object *target);

#endif
