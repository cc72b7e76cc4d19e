/*
 * The schema-2 compute system document, checked and reduced to what the
 * simulator honours (README.md, "The document").
 */
#ifndef HCS_SIM_SCHEMA_H
#define HCS_SIM_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hcs.h"

typedef struct {
    int controller; /* position of its controller in Devices.Scsi */
    int lun;
    char *path;     /* as written in the document (native) */
    bool read_only;
} disk_spec;

typedef struct {
    char *owner;
    bool terminate_on_close;
    bool stop_on_reset;
    char *kernel, *initrd, *cmdline; /* initrd and cmdline may be NULL */
    int64_t memory_mb;
    int cpus;
    int scsi_controllers;
    disk_spec *disks;
    size_t disk_count;
    char *com_pipe[2]; /* ComPorts "0" (COM1) and "1" (COM2): \\.\pipe\NAME */
} vm_spec;

/* Parses and checks a document. On failure returns the HRESULT HCS would
 * give (ERROR_VMCOMPUTE_INVALID_JSON for malformed, missing or ill-typed
 * fields) and a message naming the field. */
hresult schema_parse(const char *doc, vm_spec *spec, char *msg, size_t msg_size);
void schema_free(vm_spec *spec);

/* NAME of "\\.\pipe\NAME", or NULL if the name is not a local pipe. */
const char *pipe_base_name(const char *pipe);

#endif
