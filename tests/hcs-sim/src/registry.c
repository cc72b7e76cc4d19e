/* The state directory (see registry.h). Used by the library (through
 * platform.h, so also by the DLL under Wine) and by the supervisor. */
#include "registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "platform.h"
#include "protocol.h"

char *registry_dir(void) {
    char *dir = plat_getenv("HCS_SIM_STATE_DIR");
    if (!dir || !*dir) {
        free(dir);
        return strdup("/tmp/hcs-sim/systems");
    }
#ifdef _WIN32
    /* A Windows program sets it to a Windows path; the supervisors, Linux
     * programs, need the Unix one. */
    if (strchr(dir, '\\') || strchr(dir, ':')) {
        char *unix_dir = plat_unix_path(dir);
        free(dir);
        return unix_dir;
    }
#endif
    return dir;
}

char *registry_path(const char *dir, const char *id) {
    sb b = {0};
    sb_add(&b, dir);
#ifdef _WIN32
    sb_add(&b, "\\");
#else
    sb_add(&b, "/");
#endif
    for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
                     (*p == '.' && p != (const unsigned char *)id);
        if (plain) {
            char one[2] = {(char)*p, 0};
            sb_add(&b, one);
        } else {
            sb_addf(&b, "%%%02X", *p);
        }
    }
    sb_add(&b, ".json");
    return sb_take(&b);
}

char *registry_format(const registry_entry *e) {
    sb b = {0};
    sb_add(&b, "{\"Id\":");
    sb_add_json(&b, e->id);
    sb_add(&b, ",\"Owner\":");
    sb_add_json(&b, e->owner);
    sb_add(&b, ",\"RuntimeId\":");
    sb_add_json(&b, e->runtime_id);
    sb_addf(&b, ",\"SystemType\":\"VirtualMachine\",\"Port\":%u,\"Pid\":%lu}\n",
            e->port, (unsigned long)e->pid);
    return sb_take(&b);
}

static char *string_member(const json_value *v, const char *key) {
    const json_value *m = json_get(v, key);
    return m && m->type == JSON_STRING ? strdup(m->string) : NULL;
}

bool registry_parse(const char *json, registry_entry *e) {
    memset(e, 0, sizeof *e);
    char err[128];
    json_value *v = json_parse(json, err, sizeof err);
    if (!v) return false;
    const json_value *port = json_get(v, "Port"), *pid = json_get(v, "Pid");
    e->id = string_member(v, "Id");
    e->owner = string_member(v, "Owner");
    e->runtime_id = string_member(v, "RuntimeId");
    bool ok = e->id && e->owner && e->runtime_id && port &&
              port->type == JSON_NUMBER && port->number > 0 &&
              port->number < 65536;
    if (ok) e->port = (uint16_t)port->number;
    if (pid && pid->type == JSON_NUMBER) e->pid = (uint32_t)pid->number;
    json_free(v);
    if (!ok) registry_entry_free(e);
    return ok;
}

void registry_entry_free(registry_entry *e) {
    free(e->id);
    free(e->owner);
    free(e->runtime_id);
    memset(e, 0, sizeof *e);
}

bool registry_probe(const registry_entry *e, char **greeting) {
    *greeting = NULL;
    plat_sock s = plat_tcp_connect(e->port);
    if (s == PLAT_SOCK_INVALID) return false;
    /* A probe is not a handle: it does not keep the VM alive. */
    bool ok = plat_sock_send_all(s, "hello probe\n", 12);
    line_buf lb = {0};
    char buf[512], *line = NULL;
    int64_t deadline = plat_now_ms() + 5000;
    while (ok && !(line = line_buf_next(&lb)) && plat_now_ms() < deadline) {
        int n = plat_sock_recv(s, buf, sizeof buf);
        if (n <= 0) break;
        line_buf_feed(&lb, buf, (size_t)n);
    }
    line_buf_free(&lb);
    plat_sock_close(s);
    char *id = line && proto_is(line, "hello") ? proto_get(line, "id") : NULL;
    /* A port can be reused by another supervisor: the id must match. */
    bool same = id && strcmp(id, e->id) == 0;
    free(id);
    if (same) *greeting = line;
    else free(line);
    return same;
}

static char *native_dir(void) {
    char *dir = registry_dir();
    char *native = plat_native_path(dir);
    free(dir);
    return native;
}

registry_list registry_scan(void) {
    registry_list l = {0};
    char *dir = native_dir();
    char **names = dir ? plat_list_dir(dir, ".json") : NULL;
    size_t n = 0;
    while (names && names[n]) n++;
    l.entries = calloc(n + 1, sizeof *l.entries);
    l.greetings = calloc(n + 1, sizeof *l.greetings);
    for (size_t i = 0; i < n && l.entries && l.greetings; i++) {
        size_t len = strlen(dir) + strlen(names[i]) + 2;
        char *path = malloc(len);
        if (!path) continue;
#ifdef _WIN32
        snprintf(path, len, "%s\\%s", dir, names[i]);
#else
        snprintf(path, len, "%s/%s", dir, names[i]);
#endif
        char *text = plat_read_file(path, NULL);
        registry_entry e;
        char *greeting;
        if (text && registry_parse(text, &e)) {
            if (registry_probe(&e, &greeting)) {
                l.entries[l.count] = e;
                l.greetings[l.count++] = greeting;
            } else {
                /* Its supervisor is gone (killed, or the machine
                 * rebooted): forget it, as the service would. */
                plat_remove_file(path);
                registry_entry_free(&e);
            }
        }
        free(text);
        free(path);
    }
    plat_free_list(names);
    free(dir);
    return l;
}

void registry_list_free(registry_list *l) {
    for (size_t i = 0; i < l->count; i++) {
        registry_entry_free(&l->entries[i]);
        free(l->greetings[i]);
    }
    free(l->entries);
    free(l->greetings);
    memset(l, 0, sizeof *l);
}

bool registry_find(const char *id, registry_entry *e) {
    char *dir = native_dir();
    char *path = dir ? registry_path(dir, id) : NULL;
    char *text = path ? plat_read_file(path, NULL) : NULL;
    char *greeting = NULL;
    bool found = text && registry_parse(text, e);
    if (found && !registry_probe(e, &greeting)) {
        plat_remove_file(path);
        registry_entry_free(e);
        found = false;
    }
    free(greeting);
    free(text);
    free(path);
    free(dir);
    return found;
}
