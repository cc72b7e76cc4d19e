/*
 * platform.h on Windows (run under Wine here): SRW locks, Winsock, kernel32
 * files and pipes, ole32's CoTaskMem allocator, and Wine's path helpers.
 */
#define COBJMACROS
#define WIN32_LEAN_AND_MEAN
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <objbase.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "platform.h"
#include "wstr.h"

static LPCWSTR W(const wchar16 *s) { return (LPCWSTR)s; }

void plat_lock(plat_mutex *m) { AcquireSRWLockExclusive((PSRWLOCK)m); }
void plat_unlock(plat_mutex *m) { ReleaseSRWLockExclusive((PSRWLOCK)m); }
void plat_cond_broadcast(plat_cond *c) {
    WakeAllConditionVariable((PCONDITION_VARIABLE)c);
}

bool plat_cond_wait(plat_cond *c, plat_mutex *m, int64_t timeout_ms) {
    DWORD ms = timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms;
    return SleepConditionVariableSRW((PCONDITION_VARIABLE)c, (PSRWLOCK)m, ms,
                                     0) != 0;
}

struct plat_thread {
    HANDLE handle;
    void (*fn)(void *);
    void *arg;
};

static DWORD WINAPI thread_main(LPVOID p) {
    plat_thread *t = p;
    t->fn(t->arg);
    return 0;
}

plat_thread *plat_thread_start(void (*fn)(void *), void *arg) {
    plat_thread *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->fn = fn;
    t->arg = arg;
    t->handle = CreateThread(NULL, 0, thread_main, t, 0, NULL);
    if (!t->handle) {
        free(t);
        return NULL;
    }
    return t;
}

void plat_thread_join(plat_thread *t) {
    if (!t) return;
    WaitForSingleObject(t->handle, INFINITE);
    CloseHandle(t->handle);
    free(t);
}

static HMODULE this_module(DWORD extra_flags);

void plat_pin_library(void) { this_module(GET_MODULE_HANDLE_EX_FLAG_PIN); }

uint64_t plat_thread_id(void) { return GetCurrentThreadId(); }
uint32_t plat_process_id(void) { return GetCurrentProcessId(); }
int64_t plat_now_ms(void) { return (int64_t)GetTickCount64(); }

int64_t plat_wall_ms(void) {
    FILETIME ft;
    GetSystemTimeAsFileTime(&ft);
    uint64_t t = ((uint64_t)ft.dwHighDateTime << 32) | ft.dwLowDateTime;
    return (int64_t)(t / 10000 - 11644473600000ULL); /* 1601 -> 1970 */
}

void plat_sleep_ms(int64_t ms) { Sleep((DWORD)ms); }

int plat_cpu_count(void) {
    SYSTEM_INFO si;
    GetSystemInfo(&si);
    return si.dwNumberOfProcessors > 0 ? (int)si.dwNumberOfProcessors : 1;
}

char *plat_getenv(const char *name) {
    wchar16 *wname = wstr_from_utf8(name, NULL);
    if (!wname) return NULL;
    char *value = NULL;
    DWORD n = GetEnvironmentVariableW(W(wname), NULL, 0);
    if (n > 0) {
        wchar16 *buf = malloc(n * sizeof *buf);
        if (buf && GetEnvironmentVariableW(W(wname), (LPWSTR)buf, n) < n)
            value = wstr_to_utf8(buf);
        free(buf);
    }
    free(wname);
    return value;
}

/* --- loopback TCP over Winsock --- */

static INIT_ONCE winsock_once = INIT_ONCE_STATIC_INIT;

static BOOL CALLBACK start_winsock(PINIT_ONCE once, PVOID param, PVOID *ctx) {
    (void)once, (void)param, (void)ctx;
    WSADATA data;
    return WSAStartup(MAKEWORD(2, 2), &data) == 0;
}

static struct sockaddr_in loopback(uint16_t port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static void set_nodelay(SOCKET s) {
    BOOL one = TRUE;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, (const char *)&one, sizeof one);
}

plat_sock plat_tcp_listen(uint16_t *port) {
    InitOnceExecuteOnce(&winsock_once, start_winsock, NULL, NULL);
    SOCKET s = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0,
                          WSA_FLAG_NO_HANDLE_INHERIT);
    if (s == INVALID_SOCKET) return PLAT_SOCK_INVALID;
    struct sockaddr_in a = loopback(*port);
    int len = sizeof a;
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 16) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) != 0) {
        closesocket(s);
        return PLAT_SOCK_INVALID;
    }
    *port = ntohs(a.sin_port);
    return (plat_sock)s;
}

plat_sock plat_tcp_accept(plat_sock listener, int64_t timeout_ms) {
    fd_set set;
    FD_ZERO(&set);
    FD_SET((SOCKET)listener, &set);
    struct timeval tv = {(long)(timeout_ms / 1000),
                         (long)(timeout_ms % 1000) * 1000};
    if (select(0, &set, NULL, NULL, &tv) != 1) return PLAT_SOCK_INVALID;
    SOCKET s = accept((SOCKET)listener, NULL, NULL);
    if (s == INVALID_SOCKET) return PLAT_SOCK_INVALID;
    set_nodelay(s);
    return (plat_sock)s;
}

plat_sock plat_tcp_connect(uint16_t port) {
    InitOnceExecuteOnce(&winsock_once, start_winsock, NULL, NULL);
    SOCKET s = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0,
                          WSA_FLAG_NO_HANDLE_INHERIT);
    if (s == INVALID_SOCKET) return PLAT_SOCK_INVALID;
    struct sockaddr_in a = loopback(port);
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        closesocket(s);
        return PLAT_SOCK_INVALID;
    }
    set_nodelay(s);
    return (plat_sock)s;
}

bool plat_sock_send_all(plat_sock s, const void *data, size_t len) {
    const char *p = data;
    while (len > 0) {
        int n = send((SOCKET)s, p, len > 65536 ? 65536 : (int)len, 0);
        if (n <= 0) return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

int plat_sock_recv(plat_sock s, void *buf, size_t len) {
    return recv((SOCKET)s, buf, len > 65536 ? 65536 : (int)len, 0);
}

void plat_sock_shutdown(plat_sock s) { shutdown((SOCKET)s, SD_BOTH); }
void plat_sock_close(plat_sock s) { closesocket((SOCKET)s); }

/* --- files --- */

bool plat_is_file(const char *path) {
    wchar16 *w = wstr_from_utf8(path, NULL);
    DWORD attrs = w ? GetFileAttributesW(W(w)) : INVALID_FILE_ATTRIBUTES;
    free(w);
    return attrs != INVALID_FILE_ATTRIBUTES &&
           !(attrs & FILE_ATTRIBUTE_DIRECTORY);
}

char *plat_read_file(const char *path, size_t *len) {
    wchar16 *w = wstr_from_utf8(path, NULL);
    if (!w) return NULL;
    HANDLE f = CreateFileW(W(w), GENERIC_READ,
                           FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                           NULL, OPEN_EXISTING, 0, NULL);
    free(w);
    if (f == INVALID_HANDLE_VALUE) return NULL;
    LARGE_INTEGER size;
    char *buf = NULL;
    DWORD got = 0;
    if (GetFileSizeEx(f, &size) && size.QuadPart < (1 << 24) &&
        (buf = malloc((size_t)size.QuadPart + 1)) != NULL &&
        ReadFile(f, buf, (DWORD)size.QuadPart, &got, NULL)) {
        buf[got] = 0;
        if (len) *len = got;
    } else {
        free(buf);
        buf = NULL;
    }
    CloseHandle(f);
    return buf;
}

bool plat_remove_file(const char *path) {
    wchar16 *w = wstr_from_utf8(path, NULL);
    bool ok = w && DeleteFileW(W(w));
    free(w);
    return ok;
}

char **plat_list_dir(const char *dir, const char *suffix) {
    size_t n = 0, cap = 8;
    char **list = calloc(cap, sizeof *list);
    size_t len = strlen(dir) + strlen(suffix) + 4;
    char *pattern = malloc(len);
    if (!list || !pattern) {
        free(pattern);
        return list;
    }
    snprintf(pattern, len, "%s\\*%s", dir, suffix);
    wchar16 *w = wstr_from_utf8(pattern, NULL);
    free(pattern);
    WIN32_FIND_DATAW fd;
    HANDLE h = w ? FindFirstFileW(W(w), &fd) : INVALID_HANDLE_VALUE;
    free(w);
    if (h == INVALID_HANDLE_VALUE) return list;
    do {
        if (n + 1 >= cap) {
            char **bigger = realloc(list, cap * 2 * sizeof *list);
            if (!bigger) break;
            list = bigger;
            cap *= 2;
        }
        list[n++] = wstr_to_utf8((const wchar16 *)fd.cFileName);
        list[n] = NULL;
    } while (FindNextFileW(h, &fd));
    FindClose(h);
    return list;
}

void plat_free_list(char **list) {
    if (!list) return;
    for (char **p = list; *p; p++) free(*p);
    free(list);
}

void plat_append_line(const char *path, const char *line) {
    wchar16 *w = wstr_from_utf8(path, NULL);
    if (!w) return;
    HANDLE f = CreateFileW(W(w), FILE_APPEND_DATA,
                           FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                           NULL, OPEN_ALWAYS, 0, NULL);
    free(w);
    if (f == INVALID_HANDLE_VALUE) return;
    size_t len = strlen(line);
    char *buf = malloc(len + 1);
    if (buf) {
        memcpy(buf, line, len);
        buf[len] = '\n';
        DWORD written;
        WriteFile(f, buf, (DWORD)len + 1, &written, NULL);
        free(buf);
    }
    CloseHandle(f);
}

/* --- paths: Wine's exports, looked up at run time so that the DLL also
 * loads on real Windows (where there is no QEMU to start anyway). --- */

typedef char *(CDECL *unix_name_fn)(LPCWSTR);
typedef WCHAR *(CDECL *dos_name_fn)(LPCSTR);

static FARPROC kernel32_proc(const char *name) {
    HMODULE k32 = GetModuleHandleW(L"kernel32.dll");
    return k32 ? GetProcAddress(k32, name) : NULL;
}

char *plat_unix_path(const char *native_path) {
    unix_name_fn to_unix =
        (unix_name_fn)(void (*)(void))kernel32_proc("wine_get_unix_file_name");
    wchar16 *w = wstr_from_utf8(native_path, NULL);
    char *unix_path = (to_unix && w) ? to_unix(W(w)) : NULL;
    free(w);
    if (!unix_path) return NULL;
    char *copy = _strdup(unix_path);
    HeapFree(GetProcessHeap(), 0, unix_path);
    return copy;
}

char *plat_native_path(const char *unix_path) {
    dos_name_fn to_dos =
        (dos_name_fn)(void (*)(void))kernel32_proc("wine_get_dos_file_name");
    WCHAR *dos = to_dos ? to_dos(unix_path) : NULL;
    if (!dos) return _strdup(unix_path);
    char *copy = wstr_to_utf8((const wchar16 *)dos);
    HeapFree(GetProcessHeap(), 0, dos);
    return copy;
}

static HMODULE this_module(DWORD extra_flags) {
    HMODULE m = NULL;
    GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | extra_flags,
                       (LPCWSTR)(void *)this_module, &m);
    return m;
}

char *plat_supervisor_path(void) {
    char *override = plat_getenv("HCS_SIM_VMM");
    if (override) return override;
    WCHAR path[MAX_PATH];
    DWORD n = GetModuleFileNameW(
        this_module(GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT), path,
        MAX_PATH);
    if (n == 0 || n >= MAX_PATH) return NULL;
    WCHAR *slash = wcsrchr(path, L'\\');
    if (!slash || (size_t)(slash - path) + 13 >= MAX_PATH) return NULL;
    wcscpy(slash + 1, L"hcs-sim-vmm");
    return wstr_to_utf8((const wchar16 *)path);
}

/* Appends one argument to a command line so that the usual Windows
 * parsing rules (which Wine applies when it starts a Unix program) give it
 * back unchanged: backslashes are literal unless they precede a quote. */
static void append_quoted(char *out, size_t *o, const char *arg) {
    out[(*o)++] = '"';
    for (const char *p = arg;; p++) {
        size_t backslashes = 0;
        while (*p == '\\') {
            backslashes++;
            p++;
        }
        if (*p == 0) {
            for (size_t i = 0; i < backslashes * 2; i++) out[(*o)++] = '\\';
            break;
        }
        if (*p == '"') {
            for (size_t i = 0; i < backslashes * 2 + 1; i++) out[(*o)++] = '\\';
        } else {
            for (size_t i = 0; i < backslashes; i++) out[(*o)++] = '\\';
        }
        out[(*o)++] = *p;
    }
    out[(*o)++] = '"';
}

bool plat_spawn(char *const argv[]) {
    size_t cap = 1;
    for (char *const *a = argv; *a; a++) cap += strlen(*a) * 2 + 3;
    char *cmdline = malloc(cap);
    if (!cmdline) return false;
    size_t o = 0;
    for (char *const *a = argv; *a; a++) {
        if (o) cmdline[o++] = ' ';
        append_quoted(cmdline, &o, *a);
    }
    cmdline[o] = 0;
    wchar16 *wapp = wstr_from_utf8(argv[0], NULL);
    wchar16 *wcmd = wstr_from_utf8(cmdline, NULL);
    free(cmdline);
    STARTUPINFOW si;
    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    PROCESS_INFORMATION pi;
    memset(&pi, 0, sizeof pi);
    BOOL ok = wapp && wcmd &&
              CreateProcessW(W(wapp), (LPWSTR)wcmd, NULL, NULL, FALSE,
                             DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP, NULL,
                             NULL, &si, &pi);
    free(wapp);
    free(wcmd);
    /* Wine gives no usable handle for a Unix program; the supervisor
     * reports back over TCP instead. */
    if (pi.hProcess) CloseHandle(pi.hProcess);
    if (pi.hThread) CloseHandle(pi.hThread);
    return ok != 0;
}

/* --- result strings and the malloc spy that sees them freed --- */

void *plat_cotask_alloc(size_t size) { return CoTaskMemAlloc(size); }
void plat_cotask_free(void *p) { CoTaskMemFree(p); }

/* The caller frees result strings with ole32's CoTaskMemFree, which this
 * DLL cannot replace. COM's IMallocSpy is told about every CoTaskMemFree
 * in the process; ours passes everything through and reports the frees of
 * our own strings to diag.c. */
static HRESULT STDMETHODCALLTYPE spy_query_interface(IMallocSpy *self,
                                                     REFIID riid, void **out) {
    if (IsEqualIID(riid, &IID_IUnknown) || IsEqualIID(riid, &IID_IMallocSpy)) {
        *out = self;
        return S_OK;
    }
    *out = NULL;
    return E_NOINTERFACE;
}
static ULONG STDMETHODCALLTYPE spy_add_ref(IMallocSpy *self) {
    (void)self;
    return 2; /* a static object */
}
static ULONG STDMETHODCALLTYPE spy_release(IMallocSpy *self) {
    (void)self;
    return 1;
}
static SIZE_T STDMETHODCALLTYPE spy_pre_alloc(IMallocSpy *self, SIZE_T cb) {
    (void)self;
    return cb;
}
static void *STDMETHODCALLTYPE spy_post_alloc(IMallocSpy *self, void *p) {
    (void)self;
    return p;
}
static void *STDMETHODCALLTYPE spy_pre_free(IMallocSpy *self, void *p,
                                            BOOL spyed) {
    (void)self, (void)spyed;
    if (p) diag_forget(p); /* counts it if it is one of our strings */
    return p;
}
static void STDMETHODCALLTYPE spy_post_free(IMallocSpy *self, BOOL spyed) {
    (void)self, (void)spyed;
}
static SIZE_T STDMETHODCALLTYPE spy_pre_realloc(IMallocSpy *self, void *p,
                                                SIZE_T cb, void **new_p,
                                                BOOL spyed) {
    (void)self, (void)spyed;
    *new_p = p;
    return cb;
}
static void *STDMETHODCALLTYPE spy_post_realloc(IMallocSpy *self, void *p,
                                                BOOL spyed) {
    (void)self, (void)spyed;
    return p;
}
static void *STDMETHODCALLTYPE spy_pre_get_size(IMallocSpy *self, void *p,
                                                BOOL spyed) {
    (void)self, (void)spyed;
    return p;
}
static SIZE_T STDMETHODCALLTYPE spy_post_get_size(IMallocSpy *self, SIZE_T cb,
                                                  BOOL spyed) {
    (void)self, (void)spyed;
    return cb;
}
static void *STDMETHODCALLTYPE spy_pre_did_alloc(IMallocSpy *self, void *p,
                                                 BOOL spyed) {
    (void)self, (void)spyed;
    return p;
}
static int STDMETHODCALLTYPE spy_post_did_alloc(IMallocSpy *self, void *p,
                                                BOOL spyed, int actual) {
    (void)self, (void)p, (void)spyed;
    return actual;
}
static void STDMETHODCALLTYPE spy_pre_heap_minimize(IMallocSpy *self) {
    (void)self;
}
static void STDMETHODCALLTYPE spy_post_heap_minimize(IMallocSpy *self) {
    (void)self;
}

static IMallocSpyVtbl spy_vtbl = {
    spy_query_interface, spy_add_ref,          spy_release,
    spy_pre_alloc,       spy_post_alloc,       spy_pre_free,
    spy_post_free,       spy_pre_realloc,      spy_post_realloc,
    spy_pre_get_size,    spy_post_get_size,    spy_pre_did_alloc,
    spy_post_did_alloc,  spy_pre_heap_minimize, spy_post_heap_minimize,
};
static IMallocSpy spy = {&spy_vtbl};

static INIT_ONCE spy_once = INIT_ONCE_STATIC_INIT;
static bool spy_installed;

static BOOL CALLBACK install_spy(PINIT_ONCE once, PVOID param, PVOID *ctx) {
    (void)once, (void)param, (void)ctx;
    spy_installed = SUCCEEDED(CoRegisterMallocSpy(&spy));
    /* COM keeps calling the spy for as long as any block it saw is alive,
     * so this DLL must never be unloaded once the spy is in. */
    if (spy_installed) this_module(GET_MODULE_HANDLE_EX_FLAG_PIN);
    return TRUE;
}

bool plat_watch_frees(void) {
    InitOnceExecuteOnce(&spy_once, install_spy, NULL, NULL);
    return spy_installed;
}

/* --- stdio pipes for the scripted process --- */

static LONG pipe_serial;

bool plat_stdio_pipe(bool caller_writes, plat_handle *caller_end,
                     plat_handle *sim_end) {
    WCHAR name[96];
    swprintf(name, 96, L"\\\\.\\pipe\\hcs-sim-stdio-%lu-%ld",
             GetCurrentProcessId(), InterlockedIncrement(&pipe_serial));
    /* The caller's end is the overlapped server end, as hcsshim expects
     * (HCS.md 2.2); ours is a plain client end. */
    DWORD access = caller_writes ? PIPE_ACCESS_OUTBOUND : PIPE_ACCESS_INBOUND;
    HANDLE server = CreateNamedPipeW(
        name, access | FILE_FLAG_OVERLAPPED | FILE_FLAG_FIRST_PIPE_INSTANCE,
        PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT, 1, 65536, 65536, 0,
        NULL);
    if (server == INVALID_HANDLE_VALUE) return false;
    HANDLE client = CreateFileW(name, caller_writes ? GENERIC_READ : GENERIC_WRITE,
                                0, NULL, OPEN_EXISTING, 0, NULL);
    if (client == INVALID_HANDLE_VALUE) {
        CloseHandle(server);
        return false;
    }
    *caller_end = server;
    *sim_end = client;
    return true;
}

int plat_handle_read(plat_handle h, void *buf, size_t len, int64_t timeout_ms) {
    int64_t deadline = plat_now_ms() + timeout_ms;
    for (;;) {
        DWORD avail = 0;
        if (!PeekNamedPipe(h, NULL, 0, NULL, &avail, NULL))
            return GetLastError() == ERROR_BROKEN_PIPE ? 0 : -1;
        if (avail > 0) {
            DWORD got = 0;
            if (!ReadFile(h, buf, avail < len ? avail : (DWORD)len, &got, NULL))
                return GetLastError() == ERROR_BROKEN_PIPE ? 0 : -1;
            return (int)got;
        }
        if (plat_now_ms() >= deadline) return -2;
        Sleep(10);
    }
}

bool plat_handle_write(plat_handle h, const void *data, size_t len) {
    DWORD written;
    return WriteFile(h, data, (DWORD)len, &written, NULL) && written == len;
}

plat_handle plat_handle_dup(plat_handle h) {
    HANDLE out = NULL;
    DuplicateHandle(GetCurrentProcess(), h, GetCurrentProcess(), &out, 0, FALSE,
                    DUPLICATE_SAME_ACCESS);
    return out;
}

void plat_handle_close(plat_handle h) { CloseHandle(h); }
