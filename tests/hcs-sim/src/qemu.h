/*
 * Running the VM: the QEMU command line made from the document's settings,
 * and QMP (QEMU's JSON control protocol) on a private Unix socket. Part of
 * the supervisor, so Linux only.
 */
#ifndef HCS_SIM_QEMU_H
#define HCS_SIM_QEMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "hcs.h"
#include "protocol.h"

typedef struct {
    int controller, lun;
    bool read_only;
    char *path;
} vm_disk;

typedef struct {
    bool used;
    bool tcp;     /* QEMU serves loopback TCP for the DLL's pipe relay */
    char *target; /* Unix socket path, or (tcp) the pipe name to report */
    bool client;  /* QEMU connects to the caller's listening socket */
    uint16_t port;
} vm_com;

typedef struct {
    char *id;
    char *kernel, *initrd, *cmdline;
    long memory_mb;
    int cpus;
    bool stop_on_reset;
    int scsi_controllers;
    vm_disk *disks;
    size_t disk_count;
    vm_com com[2];
} vm_config;

typedef struct {
    pid_t pid;    /* 0 when not running */
    int qmp;      /* QMP socket */
    int err_fd;   /* QEMU's stdout and stderr */
    char *dir;    /* private directory holding the QMP socket */
    line_buf qmp_in;
} qemu;

/* Launches QEMU and waits until QMP answers. On failure returns the
 * HRESULT to report, with QEMU's own words in msg. */
hresult qemu_start(vm_config *cfg, qemu *q, char *msg, size_t msg_size);
/* Runs one QMP command ("stop", "cont", "system_powerdown"). */
bool qemu_command(qemu *q, const char *command);
/* Reads and discards what QMP says unasked (events). */
void qemu_drain_events(qemu *q);
/* After QEMU has exited: closes its sockets and removes its files. */
void qemu_cleanup(qemu *q, vm_config *cfg);

#endif
