/*
 * What differs between the Linux .so and the Windows DLL, behind one small
 * interface: threads and locks, loopback TCP (BSD sockets vs Winsock), the
 * environment, files, paths, the CoTaskMem allocator and starting the
 * supervisor. platform_posix.c and platform_win.c implement it.
 *
 * Paths handed to these functions are "native": what the C library or
 * kernel32 of this build opens. Under Wine that is a Windows path.
 */
#ifndef HCS_SIM_PLATFORM_H
#define HCS_SIM_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Locks. One static initialiser works on both: SRWLOCK and
 * CONDITION_VARIABLE are a single pointer, zeroed. */
#ifdef _WIN32
typedef struct { void *opaque; } plat_mutex;
typedef struct { void *opaque; } plat_cond;
#define PLAT_MUTEX_INIT {0}
#define PLAT_COND_INIT {0}
#else
#include <pthread.h>
typedef pthread_mutex_t plat_mutex;
typedef pthread_cond_t plat_cond;
#define PLAT_MUTEX_INIT PTHREAD_MUTEX_INITIALIZER
#define PLAT_COND_INIT PTHREAD_COND_INITIALIZER
#endif

void plat_lock(plat_mutex *m);
void plat_unlock(plat_mutex *m);
/* Waits at most timeout_ms (negative: forever); false on timeout. */
bool plat_cond_wait(plat_cond *c, plat_mutex *m, int64_t timeout_ms);
void plat_cond_broadcast(plat_cond *c);

typedef struct plat_thread plat_thread;
plat_thread *plat_thread_start(void (*fn)(void *), void *arg);
/* Keeps this library loaded for the life of the process: our threads run
 * its code, so unloading it under them would crash the caller. */
void plat_pin_library(void);
void plat_thread_join(plat_thread *t);
uint64_t plat_thread_id(void);
uint32_t plat_process_id(void);

int64_t plat_now_ms(void);  /* monotonic */
int64_t plat_wall_ms(void); /* since the Unix epoch, for traces */
void plat_sleep_ms(int64_t ms);
int plat_cpu_count(void);

/* A malloc'd UTF-8 copy of an environment variable, or NULL. Read fresh on
 * every call (getenv / GetEnvironmentVariableW) so run-time changes count. */
char *plat_getenv(const char *name);

/* Loopback TCP. Every socket is on 127.0.0.1 and nothing else. */
typedef intptr_t plat_sock;
#define PLAT_SOCK_INVALID ((plat_sock)-1)
plat_sock plat_tcp_listen(uint16_t *port);
plat_sock plat_tcp_accept(plat_sock listener, int64_t timeout_ms);
plat_sock plat_tcp_connect(uint16_t port);
bool plat_sock_send_all(plat_sock s, const void *data, size_t len);
/* >0 bytes, 0 on end of stream, <0 on error. */
int plat_sock_recv(plat_sock s, void *buf, size_t len);
void plat_sock_shutdown(plat_sock s);
void plat_sock_close(plat_sock s);

/* Files, by native path. */
bool plat_is_file(const char *path);
char *plat_read_file(const char *path, size_t *len);
bool plat_remove_file(const char *path);
/* Names (not paths) of the entries of dir ending in suffix; NULL-terminated,
 * free with plat_free_list. An unreadable directory gives an empty list. */
char **plat_list_dir(const char *dir, const char *suffix);
void plat_free_list(char **list);
/* Appends one line to a file, opening and closing it each time so that
 * several processes can share a trace file. */
void plat_append_line(const char *path, const char *line);

/* Paths. The document's paths are native; QEMU and the supervisor need
 * Unix paths (Wine: wine_get_unix_file_name), and the supervisor's state
 * directory is a Unix path the DLL must reach (wine_get_dos_file_name). */
char *plat_unix_path(const char *native_path);
char *plat_native_path(const char *unix_path);
/* The supervisor executable beside this library (or $HCS_SIM_VMM). */
char *plat_supervisor_path(void);

/* Starts the supervisor with argv (argv[0] is the native path). It
 * detaches itself; we get no usable process handle back, on either build. */
bool plat_spawn(char *const argv[]);

/* Result strings: CoTaskMemAlloc on Windows, malloc on Linux (where the
 * library's own CoTaskMemFree is the matching free). On Windows frees are
 * observed with an IMallocSpy; plat_watch_frees installs it once. */
void *plat_cotask_alloc(size_t size);
void plat_cotask_free(void *p);
bool plat_watch_frees(void);

/* Stdio pipes for the scripted process: the caller's end is an
 * overlapped-capable pipe handle on Windows, a file descriptor on Linux. */
typedef void *plat_handle;
bool plat_stdio_pipe(bool caller_writes, plat_handle *caller_end,
                     plat_handle *sim_end);
/* >0 bytes, 0 on end of stream, -1 on error, -2 if nothing came within
 * timeout_ms. */
int plat_handle_read(plat_handle h, void *buf, size_t len, int64_t timeout_ms);
bool plat_handle_write(plat_handle h, const void *data, size_t len);
plat_handle plat_handle_dup(plat_handle h);
void plat_handle_close(plat_handle h);

#endif
