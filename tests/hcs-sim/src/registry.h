/*
 * The state directory that makes compute systems visible across
 * processes, as the real service does: one file <id>.json per system,
 * written by its supervisor (README.md, "State directory").
 */
#ifndef HCS_SIM_REGISTRY_H
#define HCS_SIM_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *id, *owner, *runtime_id;
    uint16_t port; /* the supervisor's loopback TCP port */
    uint32_t pid;  /* the supervisor's pid, for people reading the file */
} registry_entry;

/* $HCS_SIM_STATE_DIR or /tmp/hcs-sim/systems, as a Unix path (the DLL
 * also takes a Windows path and converts it). */
char *registry_dir(void);
/* <dir>/<encoded id>.json: ids may hold any character, file names not. */
char *registry_path(const char *dir, const char *id);
char *registry_format(const registry_entry *e);
bool registry_parse(const char *json, registry_entry *e);
void registry_entry_free(registry_entry *e);

/* What a supervisor says about itself to a probe: false if nobody answers
 * on the entry's port with the entry's id (the entry is stale). *state is
 * then the greeting line (malloc'd), to read with proto_get. */
bool registry_probe(const registry_entry *e, char **greeting);

/* Every entry in the directory whose supervisor answers, each with its
 * greeting. Stale entries are deleted. The arrays end with a zeroed entry
 * / NULL; free with registry_list_free. */
typedef struct {
    registry_entry *entries;
    char **greetings;
    size_t count;
} registry_list;
registry_list registry_scan(void);
void registry_list_free(registry_list *l);
/* Looks one id up: true and *e filled if it exists and answers. */
bool registry_find(const char *id, registry_entry *e);

#endif
