/* Checking the schema-2 document field by field, naming the field in every
 * message, as "VirtualMachine.ComputeTopology.Memory.SizeInMB". */
#include "schema.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "platform.h"

typedef struct {
    char *msg;
    size_t msg_size;
    hresult hr; /* S_OK until the first problem */
} checker;

static void problem(checker *c, hresult hr, const char *fmt, ...) {
    if (c->hr != S_OK_) return;
    c->hr = hr;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, c->msg_size, fmt, ap);
    va_end(ap);
}

/* "Parent.Key", or "Key" at the top. */
static void join_path(char *out, size_t size, const char *parent,
                      const char *key) {
    snprintf(out, size, "%s%s%s", parent, *parent ? "." : "", key);
}

/* The member key of obj (whose path is parent) if it has type want;
 * reports a problem if it is missing (and required) or of another type. */
static const json_value *member(checker *c, const json_value *obj,
                                const char *parent, const char *key,
                                json_type want, bool required) {
    char path[256];
    join_path(path, sizeof path, parent, key);
    const json_value *v = json_get(obj, key);
    if (!v) {
        if (required)
            problem(c, VMCOMPUTE_INVALID_JSON,
                    "The JSON document is invalid: %s: required field missing",
                    path);
        return NULL;
    }
    if (v->type != want) {
        problem(c, VMCOMPUTE_INVALID_JSON,
                "The JSON document is invalid: %s: expected %s, found %s", path,
                json_type_name(want), json_type_name(v->type));
        return NULL;
    }
    return v;
}

static char *string_member(checker *c, const json_value *obj,
                           const char *parent, const char *key, bool required) {
    const json_value *v = member(c, obj, parent, key, JSON_STRING, required);
    if (v && required && !*v->string) {
        char path[256];
        join_path(path, sizeof path, parent, key);
        problem(c, VMCOMPUTE_INVALID_JSON,
                "The JSON document is invalid: %s: must not be empty", path);
        return NULL;
    }
    return v ? strdup(v->string) : NULL;
}

static bool bool_member(checker *c, const json_value *obj, const char *parent,
                        const char *key) {
    const json_value *v = member(c, obj, parent, key, JSON_BOOL, false);
    return v && v->boolean;
}

/* An integer in [min, max]; fallback if absent and not required. */
static int64_t int_member(checker *c, const json_value *obj,
                          const char *parent, const char *key, bool required,
                          int64_t min, int64_t max, int64_t fallback) {
    const json_value *v = member(c, obj, parent, key, JSON_NUMBER, required);
    if (!v) return fallback;
    char path[256];
    join_path(path, sizeof path, parent, key);
    if (!v->integral || v->number < (double)min || v->number > (double)max) {
        problem(c, VMCOMPUTE_INVALID_JSON,
                "The JSON document is invalid: %s: expected an integer from "
                "%lld to %lld, found %g",
                path, (long long)min, (long long)max, v->number);
        return fallback;
    }
    return (int64_t)v->number;
}

const char *pipe_base_name(const char *pipe) {
    static const char prefix[] = "\\\\.\\pipe\\";
    size_t n = sizeof prefix - 1;
    if (strlen(pipe) <= n) return NULL;
    for (size_t i = 0; i < n; i++) {
        char a = pipe[i], b = prefix[i];
        if (a >= 'A' && a <= 'Z') a = (char)(a - 'A' + 'a');
        if (a != b) return NULL;
    }
    return pipe + n;
}

static void parse_scsi(checker *c, const json_value *scsi, vm_spec *spec) {
    char path[256], parent[256];
    for (size_t i = 0; i < scsi->count && c->hr == S_OK_; i++) {
        join_path(parent, sizeof parent, "VirtualMachine.Devices.Scsi",
                  scsi->keys[i]);
        const json_value *ctrl = scsi->items[i];
        if (ctrl->type != JSON_OBJECT) {
            problem(c, VMCOMPUTE_INVALID_JSON,
                    "The JSON document is invalid: %s: expected an object, "
                    "found %s", parent, json_type_name(ctrl->type));
            return;
        }
        int index = spec->scsi_controllers++;
        const json_value *att =
            member(c, ctrl, parent, "Attachments", JSON_OBJECT, false);
        for (size_t j = 0; att && j < att->count && c->hr == S_OK_; j++) {
            char *end;
            long lun = strtol(att->keys[j], &end, 10);
            snprintf(path, sizeof path, "%.160s.Attachments.%.40s", parent, att->keys[j]);
            if (!*att->keys[j] || *end || lun < 0 || lun > 63) {
                problem(c, VMCOMPUTE_INVALID_JSON,
                        "The JSON document is invalid: %s: the key must be a "
                        "LUN from 0 to 63", path);
                return;
            }
            const json_value *a = att->items[j];
            if (a->type != JSON_OBJECT) {
                problem(c, VMCOMPUTE_INVALID_JSON,
                        "The JSON document is invalid: %s: expected an "
                        "object, found %s", path, json_type_name(a->type));
                return;
            }
            char *type = string_member(c, a, path, "Type", true);
            if (type && strcmp(type, "VirtualDisk") != 0)
                problem(c, HR_NOT_SUPPORTED,
                        "%s.Type: \"%s\" attachments are not simulated "
                        "(only VirtualDisk)", path, type);
            free(type);
            char *file = string_member(c, a, path, "Path", true);
            bool ro = bool_member(c, a, path, "ReadOnly");
            if (c->hr != S_OK_) {
                free(file);
                return;
            }
            disk_spec *disks = realloc(spec->disks,
                                       (spec->disk_count + 1) * sizeof *disks);
            if (!disks) {
                free(file);
                problem(c, E_OUTOFMEMORY_, "out of memory");
                return;
            }
            spec->disks = disks;
            spec->disks[spec->disk_count++] = (disk_spec){index, (int)lun, file, ro};
        }
    }
}

static void parse_com_ports(checker *c, const json_value *ports, vm_spec *spec) {
    char path[256];
    for (size_t i = 0; i < ports->count && c->hr == S_OK_; i++) {
        join_path(path, sizeof path, "VirtualMachine.Devices.ComPorts",
                  ports->keys[i]);
        const char *key = ports->keys[i];
        if (strcmp(key, "0") != 0 && strcmp(key, "1") != 0) {
            problem(c, VMCOMPUTE_INVALID_JSON,
                    "The JSON document is invalid: %s: the key must be \"0\" "
                    "(COM1) or \"1\" (COM2)", path);
            return;
        }
        const json_value *port = ports->items[i];
        if (port->type != JSON_OBJECT) {
            problem(c, VMCOMPUTE_INVALID_JSON,
                    "The JSON document is invalid: %s: expected an object, "
                    "found %s", path, json_type_name(port->type));
            return;
        }
        char *pipe = string_member(c, port, path, "NamedPipe", true);
        const char *name = pipe ? pipe_base_name(pipe) : NULL;
        if (pipe && (!name || strchr(name, '/') || strchr(name, '\\') ||
                     !strcmp(name, ".") || !strcmp(name, ".."))) {
            problem(c, VMCOMPUTE_INVALID_JSON,
                    "The JSON document is invalid: %s.NamedPipe: \"%s\" is not "
                    "a local pipe name of the form \\\\.\\pipe\\NAME", path, pipe);
        } else if (name && strlen(name) > 90) {
            /* A Unix socket path holds 107 bytes; /tmp/hcs-pipe/ takes 14. */
            problem(c, HR_NOT_SUPPORTED,
                    "%s.NamedPipe: the simulator takes pipe names of up to 90 "
                    "bytes", path);
        }
        if (c->hr != S_OK_) {
            free(pipe);
            return;
        }
        spec->com_pipe[key[0] - '0'] = pipe;
    }
}

hresult schema_parse(const char *doc, vm_spec *spec, char *msg,
                     size_t msg_size) {
    memset(spec, 0, sizeof *spec);
    checker c = {msg, msg_size, S_OK_};
    char err[160];
    json_value *root = json_parse(doc, err, sizeof err);
    if (!root) {
        problem(&c, VMCOMPUTE_INVALID_JSON,
                "The JSON document is invalid: not JSON: %s", err);
        return c.hr;
    }
    if (root->type != JSON_OBJECT) {
        problem(&c, VMCOMPUTE_INVALID_JSON,
                "The JSON document is invalid: expected an object, found %s",
                json_type_name(root->type));
        json_free(root);
        return c.hr;
    }

    const json_value *version =
        member(&c, root, "", "SchemaVersion", JSON_OBJECT, true);
    int64_t major = version ? int_member(&c, version, "SchemaVersion", "Major",
                                         true, 0, 100, 0)
                            : 0;
    if (version) int_member(&c, version, "SchemaVersion", "Minor", true, 0, 100, 0);
    if (version && c.hr == S_OK_ && major != 2)
        problem(&c, HR_NOT_SUPPORTED,
                "SchemaVersion.Major: %lld: the simulator reads schema 2 only",
                (long long)major);

    char *owner = string_member(&c, root, "", "Owner", false);
    spec->owner = owner ? owner : strdup("");
    spec->terminate_on_close =
        bool_member(&c, root, "", "ShouldTerminateOnLastHandleClosed");

    const char *vm_path = "VirtualMachine";
    const json_value *vm = member(&c, root, "", vm_path, JSON_OBJECT, true);
    spec->stop_on_reset = vm && bool_member(&c, vm, vm_path, "StopOnReset");

    const json_value *chipset =
        vm ? member(&c, vm, vm_path, "Chipset", JSON_OBJECT, true) : NULL;
    const char *ch_path = "VirtualMachine.Chipset";
    if (chipset && !json_get(chipset, "LinuxKernelDirect") &&
        json_get(chipset, "Uefi"))
        problem(&c, HR_NOT_SUPPORTED,
                "%s.Uefi: UEFI boot is not simulated; use LinuxKernelDirect",
                ch_path);
    const json_value *lkd =
        chipset ? member(&c, chipset, ch_path, "LinuxKernelDirect", JSON_OBJECT,
                         true)
                : NULL;
    const char *lkd_path = "VirtualMachine.Chipset.LinuxKernelDirect";
    if (lkd) {
        spec->kernel = string_member(&c, lkd, lkd_path, "KernelFilePath", true);
        spec->initrd = string_member(&c, lkd, lkd_path, "InitRdPath", false);
        spec->cmdline = string_member(&c, lkd, lkd_path, "KernelCmdLine", false);
    }

    const char *topo_path = "VirtualMachine.ComputeTopology";
    const json_value *topo =
        vm ? member(&c, vm, vm_path, "ComputeTopology", JSON_OBJECT, true)
           : NULL;
    const json_value *memory =
        topo ? member(&c, topo, topo_path, "Memory", JSON_OBJECT, true) : NULL;
    if (memory)
        spec->memory_mb = int_member(&c, memory, "VirtualMachine.ComputeTopology.Memory",
                                     "SizeInMB", true, 2, 1 << 20, 0);
    /* Hyper-V sizes memory in 2 MB units; hcsshim rounds up for that. */
    if (c.hr == S_OK_ && spec->memory_mb % 2)
        problem(&c, E_INVALIDARG_,
                "%s.Memory.SizeInMB: %lld MB is not a multiple of 2 MB",
                topo_path, (long long)spec->memory_mb);
    const json_value *proc =
        topo ? member(&c, topo, topo_path, "Processor", JSON_OBJECT, false)
             : NULL;
    spec->cpus = proc ? (int)int_member(&c, proc,
                                        "VirtualMachine.ComputeTopology.Processor",
                                        "Count", false, 1, 1024, 1)
                      : 1;
    if (c.hr == S_OK_ && spec->cpus > plat_cpu_count())
        problem(&c, E_INVALIDARG_,
                "%s.Processor.Count: %d processors requested, the host has %d",
                topo_path, spec->cpus, plat_cpu_count());

    const json_value *devices =
        vm ? member(&c, vm, vm_path, "Devices", JSON_OBJECT, false) : NULL;
    const json_value *scsi =
        devices ? member(&c, devices, "VirtualMachine.Devices", "Scsi",
                         JSON_OBJECT, false)
                : NULL;
    if (scsi && c.hr == S_OK_) parse_scsi(&c, scsi, spec);
    const json_value *ports =
        devices ? member(&c, devices, "VirtualMachine.Devices", "ComPorts",
                         JSON_OBJECT, false)
                : NULL;
    if (ports && c.hr == S_OK_) parse_com_ports(&c, ports, spec);

    json_free(root);
    if (c.hr != S_OK_) schema_free(spec);
    return c.hr;
}

void schema_free(vm_spec *spec) {
    free(spec->owner);
    free(spec->kernel);
    free(spec->initrd);
    free(spec->cmdline);
    for (size_t i = 0; i < spec->disk_count; i++) free(spec->disks[i].path);
    free(spec->disks);
    free(spec->com_pipe[0]);
    free(spec->com_pipe[1]);
    memset(spec, 0, sizeof *spec);
}
