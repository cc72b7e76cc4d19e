/* The handle table (see handles.h). */
#include "handles.h"

#include <stdlib.h>

plat_mutex sim_lock = PLAT_MUTEX_INIT;
plat_cond sim_changed = PLAT_COND_INIT;

static object **table;
static size_t table_count, table_cap;

void obj_add(object *o) {
    plat_lock(&sim_lock);
    o->refs = 1;
    if (table_count == table_cap) {
        size_t cap = table_cap ? table_cap * 2 : 32;
        object **bigger = realloc(table, cap * sizeof *bigger);
        if (bigger) {
            table = bigger;
            table_cap = cap;
        }
    }
    /* Without room the object still works; it just is not a valid handle,
     * which the caller's next call reports. */
    if (table_count < table_cap) table[table_count++] = o;
    plat_unlock(&sim_lock);
}

object *obj_get(const void *handle, obj_kind kind) {
    object *found = NULL;
    plat_lock(&sim_lock);
    for (size_t i = 0; i < table_count; i++) {
        if (table[i] == handle && table[i]->kind == kind && !table[i]->closed) {
            found = table[i];
            found->refs++;
            break;
        }
    }
    plat_unlock(&sim_lock);
    return found;
}

void obj_ref(object *o) {
    plat_lock(&sim_lock);
    o->refs++;
    plat_unlock(&sim_lock);
}

void obj_put(object *o) {
    if (!o) return;
    plat_lock(&sim_lock);
    bool last = --o->refs == 0;
    plat_unlock(&sim_lock);
    if (last) o->destroy(o);
}

void obj_remove(object *o) {
    plat_lock(&sim_lock);
    bool was_in_table = false;
    for (size_t i = 0; i < table_count; i++) {
        if (table[i] == o) {
            table[i] = table[--table_count];
            was_in_table = true;
            break;
        }
    }
    o->closed = true;
    plat_cond_broadcast(&sim_changed);
    plat_unlock(&sim_lock);
    if (was_in_table) obj_put(o);
}

object **obj_list(obj_kind kind, size_t *count) {
    plat_lock(&sim_lock);
    object **list = calloc(table_count + 1, sizeof *list);
    size_t n = 0;
    for (size_t i = 0; list && i < table_count; i++) {
        if (table[i]->kind == kind && !table[i]->closed) {
            table[i]->refs++;
            list[n++] = table[i];
        }
    }
    plat_unlock(&sim_lock);
    *count = n;
    return list;
}
