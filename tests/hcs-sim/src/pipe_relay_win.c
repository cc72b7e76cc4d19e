/*
 * COM ports as real Windows named pipes (see relay.h).
 *
 * Three threads per port:
 *   from_vm    reads QEMU's serial port (TCP) all the time, so that QEMU
 *              never finds its socket full (IMAGE.md pitfall 8: it drops
 *              bytes then), into a ring buffer; without a pipe client the
 *              bytes are dropped, as Hyper-V drops output nobody reads.
 *   to_pipe    writes the ring buffer to the pipe client.
 *   from_pipe  owns the pipe: waits for clients (server role) and sends
 *              what they write to QEMU.
 * from_vm owns the relay: when QEMU closes the port (the VM is gone) it
 * stops the others, closes the pipe and frees everything.
 */
#define WIN32_LEAN_AND_MEAN
#include <winsock2.h>
#include <windows.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform.h"
#include "relay.h"
#include "wstr.h"

#define RING_SIZE (4 << 20)
#define PIPE_BUFFER 65536

typedef struct {
    wchar16 *name;
    plat_sock sock;
    HANDLE pipe;
    bool server;        /* we created the pipe; else we are its client */
    HANDLE stop;        /* manual-reset: the VM is gone */
    SRWLOCK lock;
    CONDITION_VARIABLE changed;
    bool connected;     /* a pipe client is there to read */
    bool vm_gone;
    char *ring;
    size_t head, len;   /* bytes waiting for the pipe client */
    HANDLE to_pipe, from_pipe;
} relay;

/* One overlapped read or write that gives up when the VM goes. */
static bool pipe_io(relay *r, bool write, void *buf, DWORD len, DWORD *done) {
    OVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    ov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL);
    if (!ov.hEvent) return false;
    BOOL ok = write ? WriteFile(r->pipe, buf, len, NULL, &ov)
                    : ReadFile(r->pipe, buf, len, NULL, &ov);
    if (!ok && GetLastError() != ERROR_IO_PENDING) {
        CloseHandle(ov.hEvent);
        return false;
    }
    HANDLE waits[2] = {ov.hEvent, r->stop};
    if (WaitForMultipleObjects(2, waits, FALSE, INFINITE) != WAIT_OBJECT_0) {
        CancelIoEx(r->pipe, &ov);
        GetOverlappedResult(r->pipe, &ov, done, TRUE);
        CloseHandle(ov.hEvent);
        return false;
    }
    ok = GetOverlappedResult(r->pipe, &ov, done, FALSE);
    CloseHandle(ov.hEvent);
    return ok && *done > 0;
}

/* Server role: waits for the next client. */
static bool accept_client(relay *r) {
    OVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    ov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL);
    if (!ov.hEvent) return false;
    bool ok = ConnectNamedPipe(r->pipe, &ov) != 0;
    DWORD err = GetLastError();
    if (!ok && (err == ERROR_PIPE_CONNECTED || err == ERROR_NO_DATA)) {
        /* A client came before we asked (and may have gone again, leaving
         * bytes to read): either way, serve it. */
        ok = true;
    } else if (!ok && err == ERROR_IO_PENDING) {
        HANDLE waits[2] = {ov.hEvent, r->stop};
        DWORD ignored;
        if (WaitForMultipleObjects(2, waits, FALSE, INFINITE) == WAIT_OBJECT_0) {
            ok = GetOverlappedResult(r->pipe, &ov, &ignored, FALSE) != 0;
        } else {
            CancelIoEx(r->pipe, &ov);
            GetOverlappedResult(r->pipe, &ov, &ignored, TRUE);
        }
    }
    CloseHandle(ov.hEvent);
    return ok;
}

static void set_connected(relay *r, bool connected) {
    AcquireSRWLockExclusive(&r->lock);
    r->connected = connected;
    r->len = 0; /* a new client starts with what comes next */
    WakeAllConditionVariable(&r->changed);
    ReleaseSRWLockExclusive(&r->lock);
}

static DWORD WINAPI from_pipe_main(LPVOID arg) {
    relay *r = arg;
    char *buf = malloc(PIPE_BUFFER);
    do {
        if (r->server && !accept_client(r)) break;
        set_connected(r, true);
        DWORD got;
        while (buf && pipe_io(r, false, buf, PIPE_BUFFER, &got))
            if (!plat_sock_send_all(r->sock, buf, got)) break;
        set_connected(r, false);
        if (r->server) DisconnectNamedPipe(r->pipe);
        /* Client role is one-shot: Hyper-V does not reconnect either. */
    } while (r->server && WaitForSingleObject(r->stop, 0) == WAIT_TIMEOUT);
    free(buf);
    return 0;
}

static DWORD WINAPI to_pipe_main(LPVOID arg) {
    relay *r = arg;
    char *chunk = malloc(PIPE_BUFFER);
    for (;;) {
        AcquireSRWLockExclusive(&r->lock);
        while (!r->vm_gone && r->len == 0)
            SleepConditionVariableSRW(&r->changed, &r->lock, INFINITE, 0);
        if (r->vm_gone || !chunk) {
            ReleaseSRWLockExclusive(&r->lock);
            break;
        }
        size_t n = r->len < PIPE_BUFFER ? r->len : PIPE_BUFFER;
        for (size_t i = 0; i < n; i++) chunk[i] = r->ring[(r->head + i) % RING_SIZE];
        r->head = (r->head + n) % RING_SIZE;
        r->len -= n;
        ReleaseSRWLockExclusive(&r->lock);
        DWORD done;
        /* A failed write means the client left; from_pipe notices too. */
        for (size_t off = 0; off < n; off += done)
            if (!pipe_io(r, true, chunk + off, (DWORD)(n - off), &done)) break;
    }
    free(chunk);
    return 0;
}

static DWORD WINAPI from_vm_main(LPVOID arg) {
    relay *r = arg;
    char buf[4096];
    int n;
    while ((n = plat_sock_recv(r->sock, buf, sizeof buf)) > 0) {
        AcquireSRWLockExclusive(&r->lock);
        for (int i = 0; r->connected && i < n && r->len < RING_SIZE; i++)
            r->ring[(r->head + r->len++) % RING_SIZE] = buf[i];
        WakeAllConditionVariable(&r->changed);
        ReleaseSRWLockExclusive(&r->lock);
    }
    /* QEMU closed the port: the VM is gone, and so is its pipe. */
    AcquireSRWLockExclusive(&r->lock);
    r->vm_gone = true;
    WakeAllConditionVariable(&r->changed);
    ReleaseSRWLockExclusive(&r->lock);
    SetEvent(r->stop);
    WaitForSingleObject(r->to_pipe, INFINITE);
    WaitForSingleObject(r->from_pipe, INFINITE);
    CloseHandle(r->to_pipe);
    CloseHandle(r->from_pipe);
    CloseHandle(r->pipe);
    CloseHandle(r->stop);
    plat_sock_close(r->sock);
    free(r->ring);
    free(r->name);
    free(r);
    return 0;
}

/* The pipe's other end: the caller's server if there is one (the VM is
 * then its client), else a server of our own. */
static HANDLE open_pipe(const wchar16 *name, bool *server, char *err,
                        size_t err_size) {
    LPCWSTR w = (LPCWSTR)name;
    for (int attempt = 0; attempt < 2; attempt++) {
        HANDLE h = CreateFileW(w, GENERIC_READ | GENERIC_WRITE, 0, NULL,
                               OPEN_EXISTING, FILE_FLAG_OVERLAPPED, NULL);
        if (h != INVALID_HANDLE_VALUE) {
            *server = false;
            return h;
        }
        if (GetLastError() != ERROR_PIPE_BUSY) break;
        WaitNamedPipeW(w, 2000);
    }
    if (GetLastError() == ERROR_PIPE_BUSY) {
        snprintf(err, err_size, "the pipe's server is busy with another client");
        return INVALID_HANDLE_VALUE;
    }
    HANDLE h = CreateNamedPipeW(
        w, PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | FILE_FLAG_FIRST_PIPE_INSTANCE,
        PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
        1, PIPE_BUFFER, PIPE_BUFFER, 0, NULL);
    if (h == INVALID_HANDLE_VALUE)
        snprintf(err, err_size, "CreateNamedPipe failed (error %lu)", GetLastError());
    *server = true;
    return h;
}

bool relay_start(const char *pipe, uint16_t port, char *err, size_t err_size) {
    relay *r = calloc(1, sizeof *r);
    if (!r || !(r->ring = malloc(RING_SIZE)) || !(r->name = wstr_from_utf8(pipe, NULL))) {
        snprintf(err, err_size, "out of memory");
        if (r) free(r->ring);
        free(r);
        return false;
    }
    InitializeSRWLock(&r->lock);
    InitializeConditionVariable(&r->changed);
    r->pipe = open_pipe(r->name, &r->server, err, err_size);
    r->sock = r->pipe != INVALID_HANDLE_VALUE ? plat_tcp_connect(port) : PLAT_SOCK_INVALID;
    r->stop = CreateEventW(NULL, TRUE, FALSE, NULL);
    if (r->pipe != INVALID_HANDLE_VALUE && r->sock == PLAT_SOCK_INVALID)
        snprintf(err, err_size, "cannot reach QEMU's serial port on 127.0.0.1:%u", port);
    if (r->pipe == INVALID_HANDLE_VALUE || r->sock == PLAT_SOCK_INVALID || !r->stop) {
        if (r->pipe != INVALID_HANDLE_VALUE) CloseHandle(r->pipe);
        if (r->sock != PLAT_SOCK_INVALID) plat_sock_close(r->sock);
        if (r->stop) CloseHandle(r->stop);
        free(r->ring);
        free(r->name);
        free(r);
        return false;
    }
    plat_pin_library();
    r->to_pipe = CreateThread(NULL, 0, to_pipe_main, r, 0, NULL);
    r->from_pipe = CreateThread(NULL, 0, from_pipe_main, r, 0, NULL);
    HANDLE owner = CreateThread(NULL, 0, from_vm_main, r, 0, NULL);
    if (owner) CloseHandle(owner);
    return true;
}
