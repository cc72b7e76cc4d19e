/* platform.h on Linux: pthreads, BSD sockets, posix_spawn. */
#include "platform.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

void plat_lock(plat_mutex *m) { pthread_mutex_lock(m); }
void plat_unlock(plat_mutex *m) { pthread_mutex_unlock(m); }
void plat_cond_broadcast(plat_cond *c) { pthread_cond_broadcast(c); }

bool plat_cond_wait(plat_cond *c, plat_mutex *m, int64_t timeout_ms) {
    if (timeout_ms < 0) {
        pthread_cond_wait(c, m);
        return true;
    }
    /* Static condition variables use CLOCK_REALTIME; good enough for the
     * short waits here. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return pthread_cond_timedwait(c, m, &ts) == 0;
}

struct plat_thread {
    pthread_t thread;
    void (*fn)(void *);
    void *arg;
};

static void *thread_main(void *p) {
    plat_thread *t = p;
    t->fn(t->arg);
    return NULL;
}

plat_thread *plat_thread_start(void (*fn)(void *), void *arg) {
    plat_thread *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->fn = fn;
    t->arg = arg;
    if (pthread_create(&t->thread, NULL, thread_main, t) != 0) {
        free(t);
        return NULL;
    }
    return t;
}

void plat_thread_join(plat_thread *t) {
    if (!t) return;
    pthread_join(t->thread, NULL);
    free(t);
}

void plat_pin_library(void) {
    Dl_info info;
    if (dladdr((void *)plat_pin_library, &info) && info.dli_fname)
        dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

uint64_t plat_thread_id(void) { return (uint64_t)syscall(SYS_gettid); }
uint32_t plat_process_id(void) { return (uint32_t)getpid(); }

static int64_t clock_ms(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
int64_t plat_now_ms(void) { return clock_ms(CLOCK_MONOTONIC); }
int64_t plat_wall_ms(void) { return clock_ms(CLOCK_REALTIME); }

void plat_sleep_ms(int64_t ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int plat_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

char *plat_getenv(const char *name) {
    const char *v = getenv(name);
    return v ? strdup(v) : NULL;
}

/* --- loopback TCP --- */

static struct sockaddr_in loopback(uint16_t port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

plat_sock plat_tcp_listen(uint16_t *port) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) return PLAT_SOCK_INVALID;
    struct sockaddr_in a = loopback(*port);
    socklen_t len = sizeof a;
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 16) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) != 0) {
        close(s);
        return PLAT_SOCK_INVALID;
    }
    *port = ntohs(a.sin_port);
    return s;
}

static void set_nodelay(int s) {
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

plat_sock plat_tcp_accept(plat_sock listener, int64_t timeout_ms) {
    struct pollfd p = {(int)listener, POLLIN, 0};
    int n;
    do {
        n = poll(&p, 1, (int)timeout_ms);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return PLAT_SOCK_INVALID;
    int s = accept4((int)listener, NULL, NULL, SOCK_CLOEXEC);
    if (s < 0) return PLAT_SOCK_INVALID;
    set_nodelay(s);
    return s;
}

plat_sock plat_tcp_connect(uint16_t port) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) return PLAT_SOCK_INVALID;
    struct sockaddr_in a = loopback(port);
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        close(s);
        return PLAT_SOCK_INVALID;
    }
    set_nodelay(s);
    return s;
}

bool plat_sock_send_all(plat_sock s, const void *data, size_t len) {
    const char *p = data;
    while (len > 0) {
        ssize_t n = send((int)s, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

int plat_sock_recv(plat_sock s, void *buf, size_t len) {
    ssize_t n;
    do {
        n = recv((int)s, buf, len, 0);
    } while (n < 0 && errno == EINTR);
    return (int)n;
}

void plat_sock_shutdown(plat_sock s) { shutdown((int)s, SHUT_RDWR); }
void plat_sock_close(plat_sock s) { close((int)s); }

/* --- files --- */

bool plat_is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
           access(path, R_OK) == 0;
}

char *plat_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

bool plat_remove_file(const char *path) { return unlink(path) == 0; }

char **plat_list_dir(const char *dir, const char *suffix) {
    size_t n = 0, cap = 8;
    char **list = calloc(cap, sizeof *list);
    DIR *d = opendir(dir);
    if (!d || !list) {
        if (d) closedir(d);
        return list;
    }
    size_t slen = strlen(suffix);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len <= slen || strcmp(e->d_name + len - slen, suffix) != 0) continue;
        if (n + 1 >= cap) {
            char **bigger = realloc(list, cap * 2 * sizeof *list);
            if (!bigger) break;
            list = bigger;
            cap *= 2;
        }
        list[n++] = strdup(e->d_name);
        list[n] = NULL;
    }
    closedir(d);
    return list;
}

void plat_free_list(char **list) {
    if (!list) return;
    for (char **p = list; *p; p++) free(*p);
    free(list);
}

void plat_append_line(const char *path, const char *line) {
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    /* One write per line: O_APPEND keeps lines from several processes
     * whole. */
    size_t len = strlen(line);
    char *buf = malloc(len + 1);
    if (buf) {
        memcpy(buf, line, len);
        buf[len] = '\n';
        ssize_t ignored = write(fd, buf, len + 1);
        (void)ignored;
        free(buf);
    }
    close(fd);
}

/* --- paths and the supervisor --- */

char *plat_unix_path(const char *native_path) { return strdup(native_path); }
char *plat_native_path(const char *unix_path) { return strdup(unix_path); }

char *plat_supervisor_path(void) {
    char *override = plat_getenv("HCS_SIM_VMM");
    if (override) return override;
    /* The supervisor is built beside this library. */
    Dl_info info;
    if (!dladdr((void *)plat_supervisor_path, &info) || !info.dli_fname)
        return NULL;
    const char *slash = strrchr(info.dli_fname, '/');
    size_t dir_len = slash ? (size_t)(slash - info.dli_fname) : 1;
    const char *dir = slash ? info.dli_fname : ".";
    char *path = malloc(dir_len + sizeof "/hcs-sim-vmm");
    if (!path) return NULL;
    memcpy(path, dir, dir_len);
    strcpy(path + dir_len, "/hcs-sim-vmm");
    return path;
}

bool plat_spawn(char *const argv[]) {
    /* The supervisor forks once more and its first process exits at once,
     * so reaping that one here leaves no zombie behind and the VM belongs
     * to nobody's process tree, like a VM owned by a system service. */
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return false;
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* --- result strings --- */

void *plat_cotask_alloc(size_t size) { return malloc(size); }
void plat_cotask_free(void *p) { free(p); }
/* Linux frees arrive through our own CoTaskMemFree export. */
bool plat_watch_frees(void) { return true; }

/* --- stdio pipes: file descriptors as handle values --- */

static int fd_of(plat_handle h) { return (int)(intptr_t)h; }
static plat_handle handle_of(int fd) { return (plat_handle)(intptr_t)fd; }

bool plat_stdio_pipe(bool caller_writes, plat_handle *caller_end,
                     plat_handle *sim_end) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return false;
    *caller_end = handle_of(caller_writes ? fds[1] : fds[0]);
    *sim_end = handle_of(caller_writes ? fds[0] : fds[1]);
    return true;
}

int plat_handle_read(plat_handle h, void *buf, size_t len, int64_t timeout_ms) {
    struct pollfd p = {fd_of(h), POLLIN, 0};
    int n = poll(&p, 1, (int)timeout_ms);
    if (n == 0) return -2;
    if (n < 0) return errno == EINTR ? -2 : -1;
    ssize_t got = read(fd_of(h), buf, len);
    return got < 0 ? -1 : (int)got;
}

bool plat_handle_write(plat_handle h, const void *data, size_t len) {
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd_of(h), p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

plat_handle plat_handle_dup(plat_handle h) {
    return handle_of(fcntl(fd_of(h), F_DUPFD_CLOEXEC, 3));
}

void plat_handle_close(plat_handle h) { close(fd_of(h)); }
