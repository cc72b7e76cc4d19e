/*
 * Windows only: COM ports as real named pipes. QEMU serves each serial
 * port on loopback TCP; the process that starts the VM relays it to
 * \\.\pipe\NAME, as the pipe server if nobody serves that name yet, or as a
 * one-shot client of the caller's server (HCS.md section 7).
 */
#ifndef HCS_SIM_RELAY_H
#define HCS_SIM_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef _WIN32
/* Connects pipe (UTF-8 "\\.\pipe\NAME") to 127.0.0.1:port and relays both
 * ways on threads of its own until QEMU closes the port. */
bool relay_start(const char *pipe, uint16_t port, char *err, size_t err_size);
#endif

#endif
