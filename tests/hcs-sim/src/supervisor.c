/*
 * hcs-sim-vmm: one per compute system. It stands for the part of the HCS
 * service that owns one VM: it runs QEMU, answers every process holding a
 * handle to the VM (one loopback TCP connection per handle), registers the
 * VM in the state directory so that other processes can find it, and ends
 * the VM when the document asks for that and the last handle goes.
 *
 * Single-threaded: one poll loop over the listening socket, the handle
 * connections, QMP, QEMU's output, a self-pipe for signals, and the
 * die_after timer. Protocol and files: README.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "platform.h"
#include "qemu.h"
#include "registry.h"

typedef enum { STATE_CREATED, STATE_RUNNING, STATE_PAUSED, STATE_STOPPED } vm_state;
static const char *const state_names[] = {"Created", "Running", "Paused", "Stopped"};

typedef struct {
    int fd;
    line_buf in;
    bool greeted;   /* said hello (a probe or a handle) */
    bool is_handle; /* counts as an HCS_SYSTEM handle */
} client;

static struct {
    char *id, *owner, *runtime_id, *state_dir, *registry_file;
    uint16_t port, creator_port;
    bool terminate_on_close;
    vm_config vm;
    vm_state state;
    qemu q;
    bool terminating; /* a terminate was asked for */
    bool dying;       /* die_after fired */
    int64_t die_at;   /* < 0: no timer */
    struct timespec started_at; /* wall clock when QEMU started */
    int64_t started_ms, stopped_ms; /* monotonic; 0: not yet */
    hresult exit_status;
    const char *exit_type;
    client *clients;
    size_t client_count;
    int listen_fd;
    int signal_pipe[2];
} vmm;

static volatile sig_atomic_t stop_requested;

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* RFC 3339 in UTC with milliseconds, as HCS's times read in JSON. */
static void format_time(const struct timespec *t, char *out, size_t size) {
    struct tm tm;
    gmtime_r(&t->tv_sec, &tm);
    size_t n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, size - n, ".%03ldZ", t->tv_nsec / 1000000);
}

static void log_line(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "hcs-sim-vmm[%d] %s: ", (int)getpid(), vmm.id ? vmm.id : "?");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* --- arguments --- */

static void usage(const char *why) {
    fprintf(stderr, "hcs-sim-vmm: %s\n"
            "usage: hcs-sim-vmm --id ID --state-dir DIR --connect PORT --kernel PATH\n"
            "  [--owner S] [--memory MB] [--cpus N] [--initrd PATH] [--cmdline S]\n"
            "  [--stop-on-reset] [--terminate-on-close] [--scsi-controllers N]\n"
            "  [--disk CTRL:LUN:ro|rw:PATH]... [--com N:unix|tcp:TARGET]...\n"
            "Started by libvmcompute.so / vmcompute.dll; see README.md.\n", why);
    exit(2);
}

static void parse_args(int argc, char **argv) {
    vmm.owner = "";
    vmm.vm.memory_mb = 512;
    vmm.vm.cpus = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--stop-on-reset")) {
            vmm.vm.stop_on_reset = true;
            continue;
        }
        if (!strcmp(a, "--terminate-on-close")) {
            vmm.terminate_on_close = true;
            continue;
        }
        if (i + 1 >= argc) usage("missing value");
        char *v = argv[++i];
        if (!strcmp(a, "--id")) vmm.id = v;
        else if (!strcmp(a, "--owner")) vmm.owner = v;
        else if (!strcmp(a, "--state-dir")) vmm.state_dir = v;
        else if (!strcmp(a, "--connect")) vmm.creator_port = (uint16_t)atoi(v);
        else if (!strcmp(a, "--memory")) vmm.vm.memory_mb = atol(v);
        else if (!strcmp(a, "--cpus")) vmm.vm.cpus = atoi(v);
        else if (!strcmp(a, "--kernel")) vmm.vm.kernel = v;
        else if (!strcmp(a, "--initrd")) vmm.vm.initrd = v;
        else if (!strcmp(a, "--cmdline")) vmm.vm.cmdline = v;
        else if (!strcmp(a, "--scsi-controllers")) vmm.vm.scsi_controllers = atoi(v);
        else if (!strcmp(a, "--disk")) {
            vm_disk d = {0};
            char mode[3] = "";
            int used = 0;
            if (sscanf(v, "%d:%d:%2[rwo]:%n", &d.controller, &d.lun, mode, &used) != 3 ||
                !used)
                usage("bad --disk");
            d.read_only = !strcmp(mode, "ro");
            d.path = v + used;
            vm_disk *disks = realloc(vmm.vm.disks, (vmm.vm.disk_count + 1) * sizeof *disks);
            if (!disks) exit(1);
            vmm.vm.disks = disks;
            vmm.vm.disks[vmm.vm.disk_count++] = d;
        } else if (!strcmp(a, "--com")) {
            int n = v[0] - '0';
            if ((n != 0 && n != 1) || v[1] != ':') usage("bad --com");
            vm_com *com = &vmm.vm.com[n];
            com->used = true;
            com->tcp = !strncmp(v + 2, "tcp:", 4);
            if (!com->tcp && strncmp(v + 2, "unix:", 5)) usage("bad --com");
            com->target = v + 2 + (com->tcp ? 4 : 5);
        } else {
            usage("unknown option");
        }
    }
    if (!vmm.id || !vmm.state_dir || !vmm.creator_port || !vmm.vm.kernel)
        usage("--id, --state-dir, --connect and --kernel are required");
    vmm.vm.id = vmm.id;
}

/* --- process setup --- */

static void on_signal(int sig) {
    if (sig != SIGCHLD) stop_requested = 1;
    int saved = errno;
    ssize_t ignored = write(vmm.signal_pipe[1], "s", 1);
    (void)ignored;
    errno = saved;
}

/* Leaves the caller's process tree and session, so that the VM lives on
 * its own like one owned by a service; then keeps nothing the caller had
 * open (Deno's sockets, say) and writes its log where asked. */
static void detach(void) {
    pid_t pid = fork();
    if (pid < 0) exit(1);
    if (pid > 0) _exit(0);
    setsid();
    for (int fd = 3; fd < 1024; fd++) close(fd);
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    const char *log = getenv("HCS_SIM_VMM_LOG");
    int err = log && *log ? open(log, O_WRONLY | O_APPEND | O_CREAT, 0644) : -1;
    dup2(err >= 0 ? err : null, 2);
    if (err > 2) close(err);
    if (null > 2) close(null);
    setvbuf(stderr, NULL, _IOLBF, 0);

    if (pipe2(vmm.signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) exit(1);
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGCHLD, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static void make_runtime_id(void) {
    unsigned char b[16] = {0};
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, b, sizeof b) != (ssize_t)sizeof b) {
        for (size_t i = 0; i < sizeof b; i++) b[i] = (unsigned char)(rand() ^ getpid());
    }
    if (fd >= 0) close(fd);
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40); /* a version 4 GUID */
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80);
    char s[37];
    snprintf(s, sizeof s,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
             b[11], b[12], b[13], b[14], b[15]);
    vmm.runtime_id = strdup(s);
}

static int tcp_socket(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static struct sockaddr_in loopback(uint16_t port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static bool listen_loopback(void) {
    vmm.listen_fd = tcp_socket();
    struct sockaddr_in a = loopback(0);
    socklen_t len = sizeof a;
    if (vmm.listen_fd < 0 || bind(vmm.listen_fd, (struct sockaddr *)&a, sizeof a) ||
        listen(vmm.listen_fd, 16) ||
        getsockname(vmm.listen_fd, (struct sockaddr *)&a, &len))
        return false;
    vmm.port = ntohs(a.sin_port);
    return true;
}

static void mkdirs(const char *path) {
    char *copy = strdup(path);
    for (char *p = copy + 1; copy && *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        mkdir(copy, 0777);
        *p = '/';
    }
    if (copy) mkdir(copy, 0777);
    free(copy);
}

/* Claims <state-dir>/<id>.json. Fails if a live supervisor has the id;
 * takes over an entry whose supervisor is gone. */
static bool claim_registry(char *why, size_t why_size) {
    mkdirs(vmm.state_dir);
    vmm.registry_file = registry_path(vmm.state_dir, vmm.id);
    registry_entry me = {vmm.id, vmm.owner, vmm.runtime_id, vmm.port, (uint32_t)getpid()};
    char *text = registry_format(&me);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", vmm.registry_file, (int)getpid());
    FILE *f = fopen(tmp, "w");
    bool ok = f && text && fputs(text, f) >= 0;
    if (f) fclose(f);
    free(text);
    for (int attempt = 0; ok && attempt < 2; attempt++) {
        /* link() does not replace: of two creators only one wins. */
        if (link(tmp, vmm.registry_file) == 0) {
            unlink(tmp);
            return true;
        }
        if (errno != EEXIST) break;
        char *existing = plat_read_file(vmm.registry_file, NULL);
        registry_entry e = {0};
        char *greeting = NULL;
        bool alive = existing && registry_parse(existing, &e) && registry_probe(&e, &greeting);
        if (existing && e.id) registry_entry_free(&e);
        free(existing);
        free(greeting);
        if (alive) {
            snprintf(why, why_size, "A compute system with id \"%s\" already exists",
                     vmm.id);
            unlink(tmp);
            return false;
        }
        unlink(vmm.registry_file); /* stale: its supervisor is gone */
    }
    snprintf(why, why_size, "cannot write %s: %s", vmm.registry_file, strerror(errno));
    unlink(tmp);
    return false;
}

/* --- talking to handles --- */

static void send_line(int fd, sb *line) {
    sb_add(line, "\n");
    char *text = sb_take(line);
    if (text) {
        size_t len = strlen(text);
        ssize_t ignored = send(fd, text, len, MSG_NOSIGNAL);
        (void)ignored; /* a dead client shows up as EOF in the loop */
    }
    free(text);
}

static void add_identity(sb *line) {
    proto_add(line, "id", vmm.id);
    proto_add(line, "state", state_names[vmm.state]);
    proto_add(line, "runtime_id", vmm.runtime_id);
    proto_add(line, "owner", vmm.owner);
    proto_add_int(line, "port", vmm.port);
    proto_add_int(line, "pid", getpid());
    if (vmm.state == STATE_STOPPED) proto_add(line, "exit_type", vmm.exit_type);
    /* For the Statistics property: how long the VM has been running. */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char when[40];
    format_time(&now, when, sizeof when);
    proto_add(line, "time", when);
    if (vmm.started_ms > 0) {
        format_time(&vmm.started_at, when, sizeof when);
        proto_add(line, "start_time", when);
        int64_t end = vmm.stopped_ms > 0 ? vmm.stopped_ms : now_ms();
        proto_add_int(line, "uptime_ms", end - vmm.started_ms);
    }
}

static void reply_ok(int fd) {
    sb line = {0};
    sb_add(&line, "ok");
    send_line(fd, &line);
}

static void reply_err(int fd, hresult hr, const char *msg) {
    sb line = {0};
    sb_add(&line, "err");
    proto_add_hr(&line, "hr", hr);
    proto_add(&line, "msg", msg);
    send_line(fd, &line);
}

static void add_client(int fd, bool is_handle) {
    client *bigger = realloc(vmm.clients, (vmm.client_count + 1) * sizeof *bigger);
    if (!bigger) {
        close(fd);
        return;
    }
    vmm.clients = bigger;
    vmm.clients[vmm.client_count++] = (client){fd, {0}, is_handle, is_handle};
}

static int handle_count(void) {
    int n = 0;
    for (size_t i = 0; i < vmm.client_count; i++) n += vmm.clients[i].is_handle;
    return n;
}

/* The creator waits on 127.0.0.1:creator_port; its connection is the
 * handle HcsCreateComputeSystem returns. */
static bool connect_creator(const char *error) {
    int fd = tcp_socket();
    struct sockaddr_in a = loopback(vmm.creator_port);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) return false;
    sb line = {0};
    if (error) {
        reply_err(fd, VMCOMPUTE_SYSTEM_ALREADY_EXISTS, error);
        close(fd);
        return false;
    }
    sb_add(&line, "hello");
    add_identity(&line);
    send_line(fd, &line);
    add_client(fd, true);
    return true;
}

/* --- the VM --- */

static void vm_exited(int status) {
    if (vmm.terminating) {
        vmm.exit_status = S_OK_;
        vmm.exit_type = "ForcedExit";
    } else if (!vmm.dying && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        /* The guest powered off, or reset with StopOnReset. */
        vmm.exit_status = S_OK_;
        vmm.exit_type = "GracefulExit";
    } else {
        vmm.exit_status = VMCOMPUTE_UNEXPECTED_EXIT;
        vmm.exit_type = "UnexpectedExit";
    }
    log_line("QEMU exited (%s)", vmm.exit_type);
    vmm.q.pid = 0;
    vmm.die_at = -1;
    vmm.state = STATE_STOPPED;
    if (vmm.started_ms > 0) vmm.stopped_ms = now_ms();
    qemu_cleanup(&vmm.q, &vmm.vm);
    for (size_t i = 0; i < vmm.client_count; i++) {
        if (!vmm.clients[i].is_handle) continue;
        sb line = {0};
        sb_add(&line, "event exited");
        proto_add_hr(&line, "status", vmm.exit_status);
        proto_add(&line, "type", vmm.exit_type);
        send_line(vmm.clients[i].fd, &line);
    }
}

static void reap_qemu(bool wait) {
    int status;
    if (vmm.q.pid > 0 && waitpid(vmm.q.pid, &status, wait ? 0 : WNOHANG) == vmm.q.pid)
        vm_exited(status);
}

static void kill_qemu(void) {
    if (vmm.q.pid > 0) kill(vmm.q.pid, SIGKILL);
}

static void cmd_start(int fd, const char *line) {
    if (vmm.state != STATE_CREATED) {
        reply_err(fd, VMCOMPUTE_INVALID_STATE, "The compute system has already been started");
        return;
    }
    char msg[1024] = "";
    hresult hr = qemu_start(&vmm.vm, &vmm.q, msg, sizeof msg);
    if (hr != S_OK_) {
        log_line("start failed: %s", msg);
        reply_err(fd, hr, msg);
        return;
    }
    vmm.state = STATE_RUNNING;
    clock_gettime(CLOCK_REALTIME, &vmm.started_at);
    vmm.started_ms = now_ms();
    long long die_after = proto_get_int(line, "die_after", -1);
    vmm.die_at = die_after >= 0 ? now_ms() + die_after : -1;
    sb reply = {0};
    sb_add(&reply, "ok");
    for (int i = 0; i < 2; i++) {
        if (!vmm.vm.com[i].used || !vmm.vm.com[i].tcp) continue;
        char key[16];
        snprintf(key, sizeof key, "com%d_port", i);
        proto_add_int(&reply, key, vmm.vm.com[i].port);
        snprintf(key, sizeof key, "com%d_pipe", i);
        proto_add(&reply, key, vmm.vm.com[i].target);
    }
    send_line(fd, &reply);
}

static void cmd_qmp(int fd, vm_state from, vm_state to, const char *command) {
    if (vmm.state != from) {
        reply_err(fd, vmm.state == STATE_STOPPED ? VMCOMPUTE_SYSTEM_ALREADY_STOPPED
                                                 : VMCOMPUTE_INVALID_STATE,
                  "The operation is not valid in the compute system's state");
        return;
    }
    if (!qemu_command(&vmm.q, command)) {
        reply_err(fd, E_FAIL_, "QEMU did not carry out the request");
        return;
    }
    vmm.state = to;
    reply_ok(fd);
}

static void cmd_powerdown(int fd) {
    if (vmm.state == STATE_STOPPED) {
        reply_err(fd, VMCOMPUTE_SYSTEM_ALREADY_STOPPED, "The compute system is already stopped");
    } else if (vmm.state == STATE_CREATED) {
        reply_err(fd, VMCOMPUTE_INVALID_STATE, "The compute system has not been started");
    } else if (!qemu_command(&vmm.q, "system_powerdown")) {
        reply_err(fd, E_FAIL_, "QEMU did not take the power button press");
    } else {
        /* The guest decides; SystemExited follows if it powers off. */
        reply_ok(fd);
    }
}

static void cmd_terminate(int fd) {
    if (vmm.state == STATE_STOPPED) {
        reply_err(fd, VMCOMPUTE_SYSTEM_ALREADY_STOPPED, "The compute system is already stopped");
        return;
    }
    vmm.terminating = true;
    reply_ok(fd);
    if (vmm.q.pid > 0) {
        kill_qemu(); /* SystemExited follows when QEMU is reaped */
    } else {
        vm_exited(0); /* never started: it just goes */
    }
}

static void cmd_state(int fd) {
    sb line = {0};
    sb_add(&line, "ok");
    add_identity(&line);
    send_line(fd, &line);
}

static void on_command(client *c, const char *line) {
    if (!c->greeted) {
        /* The first line says what the connection is. */
        c->greeted = true;
        c->is_handle = proto_is(line, "hello") && strstr(line, "handle");
        sb reply = {0};
        sb_add(&reply, "hello");
        add_identity(&reply);
        send_line(c->fd, &reply);
        return;
    }
    if (proto_is(line, "start")) cmd_start(c->fd, line);
    else if (proto_is(line, "pause")) cmd_qmp(c->fd, STATE_RUNNING, STATE_PAUSED, "stop");
    else if (proto_is(line, "resume")) cmd_qmp(c->fd, STATE_PAUSED, STATE_RUNNING, "cont");
    else if (proto_is(line, "powerdown")) cmd_powerdown(c->fd);
    else if (proto_is(line, "terminate")) cmd_terminate(c->fd);
    else if (proto_is(line, "state")) cmd_state(c->fd);
    else reply_err(c->fd, HR(0xC037010B), "unknown request");
}

/* --- lifetime --- */

static void shut_down(int code) {
    if (vmm.q.pid > 0) {
        vmm.terminating = true;
        kill_qemu();
        reap_qemu(true);
    }
    if (vmm.registry_file) unlink(vmm.registry_file);
    log_line("exiting");
    exit(code);
}

/* After a handle went or the VM stopped: is there anything left to do? */
static void check_lifetime(void) {
    if (handle_count() > 0) return;
    if (vmm.state == STATE_STOPPED) shut_down(0);
    /* ShouldTerminateOnLastHandleClosed: no handle left in any process,
     * however it went (closed, or its process was killed). */
    if (vmm.terminate_on_close) {
        log_line("last handle closed: terminating");
        shut_down(0);
    }
    /* Otherwise the VM outlives its handles, as in HCS. */
}

static void drop_client(size_t i) {
    close(vmm.clients[i].fd);
    line_buf_free(&vmm.clients[i].in);
    vmm.clients[i] = vmm.clients[--vmm.client_count];
}

static void run(void) {
    for (;;) {
        size_t n = vmm.client_count;
        struct pollfd *fds = calloc(n + 4, sizeof *fds);
        if (!fds) shut_down(1);
        for (size_t i = 0; i < n; i++) fds[i] = (struct pollfd){vmm.clients[i].fd, POLLIN, 0};
        fds[n] = (struct pollfd){vmm.listen_fd, POLLIN, 0};
        fds[n + 1] = (struct pollfd){vmm.signal_pipe[0], POLLIN, 0};
        fds[n + 2] = (struct pollfd){vmm.q.pid > 0 ? vmm.q.qmp : -1, POLLIN, 0};
        fds[n + 3] = (struct pollfd){vmm.q.pid > 0 ? vmm.q.err_fd : -1, POLLIN, 0};
        int timeout = vmm.die_at >= 0 ? (int)(vmm.die_at - now_ms()) : -1;
        if (vmm.die_at >= 0 && timeout < 0) timeout = 0;
        poll(fds, n + 4, timeout);

        if (vmm.die_at >= 0 && now_ms() >= vmm.die_at) {
            log_line("die_after: killing QEMU");
            vmm.die_at = -1;
            vmm.dying = true;
            kill_qemu();
        }
        if (fds[n + 1].revents) {
            char buf[64];
            while (read(vmm.signal_pipe[0], buf, sizeof buf) > 0) {
            }
            if (stop_requested) shut_down(0);
            reap_qemu(false);
        }
        if (fds[n + 2].revents && vmm.q.pid > 0) qemu_drain_events(&vmm.q);
        if (fds[n + 3].revents && vmm.q.pid > 0) {
            char buf[1024];
            ssize_t got = read(vmm.q.err_fd, buf, sizeof buf);
            if (got > 0) fprintf(stderr, "%.*s", (int)got, buf);
        }
        if (fds[n].revents) {
            int fd = accept4(vmm.listen_fd, NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0) add_client(fd, false);
        }
        /* Clients last, from the end, so that dropping one (which moves
         * the last into its place) skips nobody. */
        for (size_t i = n; i-- > 0;) {
            if (!fds[i].revents) continue;
            char buf[4096];
            ssize_t got = recv(vmm.clients[i].fd, buf, sizeof buf, 0);
            if (got <= 0) {
                drop_client(i);
                continue;
            }
            line_buf_feed(&vmm.clients[i].in, buf, (size_t)got);
            char *line;
            while ((line = line_buf_next(&vmm.clients[i].in)) != NULL) {
                on_command(&vmm.clients[i], line);
                free(line);
            }
        }
        free(fds);
        check_lifetime();
    }
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    detach();
    vmm.q.qmp = vmm.q.err_fd = -1;
    vmm.die_at = -1;
    vmm.exit_type = "None";
    make_runtime_id();
    char why[512];
    if (!listen_loopback()) {
        log_line("cannot listen on 127.0.0.1");
        return 1;
    }
    if (!claim_registry(why, sizeof why)) {
        log_line("%s", why);
        connect_creator(why);
        return 1;
    }
    if (!connect_creator(NULL)) {
        log_line("the creator is gone");
        shut_down(1);
    }
    log_line("ready on port %u", vmm.port);
    run();
}
