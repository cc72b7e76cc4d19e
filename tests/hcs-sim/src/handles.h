/*
 * Handles (HCS_SYSTEM, HCS_PROCESS, HCS_CALLBACK) are pointers to objects
 * in one table, so that a stale or foreign handle is refused with
 * ERROR_INVALID_HANDLE instead of being dereferenced. Objects are
 * reference counted: the table holds one reference and every call in
 * progress holds another, so closing a handle while another thread uses
 * it is safe.
 *
 * sim_lock guards the table and everything that notify.c and the API
 * files share; sim_changed is broadcast whenever any of it changes.
 */
#ifndef HCS_SIM_HANDLES_H
#define HCS_SIM_HANDLES_H

#include <stdbool.h>
#include <stddef.h>
#include "platform.h"

typedef enum { OBJ_SYSTEM = 1, OBJ_PROCESS, OBJ_CALLBACK } obj_kind;

typedef struct queued queued;
typedef struct callback_reg callback_reg;

typedef struct object object;
struct object {
    obj_kind kind;
    int refs;
    bool closed;
    callback_reg *reg; /* systems and processes: the registered callback */
    queued *held;      /* notifications waiting for a callback (notify.c) */
    void (*destroy)(object *o);
};

extern plat_mutex sim_lock;
extern plat_cond sim_changed;

/* Puts a new object (refs = 1, the table's) in the table. */
void obj_add(object *o);
/* The live object behind a handle, with a reference for the caller. */
object *obj_get(const void *handle, obj_kind kind);
void obj_ref(object *o);
/* Drops a reference; the last one destroys the object. */
void obj_put(object *o);
/* Takes the object out of the table (it stops being a valid handle) and
 * drops the table's reference. The caller still holds its own. */
void obj_remove(object *o);
/* Referenced snapshot of every live object of a kind; obj_put each and
 * free the array. */
object **obj_list(obj_kind kind, size_t *count);

#endif
