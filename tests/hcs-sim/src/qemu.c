/* QEMU as the VM (see qemu.h). */
#include "qemu.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "json.h"

#define START_TIMEOUT_MS 15000
#define QMP_TIMEOUT_MS 5000
#define PIPE_DIR "/tmp/hcs-pipe"

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* QEMU option values end at a comma; a literal comma is written twice. */
static void add_escaped(sb *b, const char *value) {
    for (const char *p = value; *p; p++) {
        char one[2] = {*p, 0};
        sb_add(b, *p == ',' ? ",," : one);
    }
}

/* An argument vector, every string on the heap. */
typedef struct {
    char **v;
    size_t n;
} strv;

static void push(strv *a, const char *s) {
    char **bigger = realloc(a->v, (a->n + 2) * sizeof *bigger);
    if (!bigger) return;
    a->v = bigger;
    a->v[a->n++] = strdup(s);
    a->v[a->n] = NULL;
}

static void push2(strv *a, const char *option, const char *value) {
    push(a, option);
    push(a, value);
}

/* push2 with a value built by sb (which it frees). */
static void push_sb(strv *a, const char *option, sb *value) {
    char *s = sb_take(value);
    if (s) push2(a, option, s);
    free(s);
}

static void strv_free(strv *a) {
    for (size_t i = 0; i < a->n; i++) free(a->v[i]);
    free(a->v);
}

/* True if some process listens on the Unix socket at path. Read from
 * /proc/net/unix rather than by connecting, which the listener would take
 * for the VM itself. */
static bool unix_socket_listening(const char *path) {
    FILE *f = fopen("/proc/net/unix", "r");
    if (!f) return false;
    char line[512];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        unsigned long flags;
        char sock_path[256] = "";
        /* Num RefCount Protocol Flags Type St Inode Path */
        if (sscanf(line, "%*s %*s %*s %lx %*s %*s %*s %255s", &flags, sock_path) == 2)
            found = (flags & 0x10000) /* __SO_ACCEPTCON */ && !strcmp(sock_path, path);
    }
    fclose(f);
    return found;
}

/* Decides, at start, who serves a COM port's Unix socket (HCS.md 7): the
 * caller if it already listens there, else QEMU. */
static bool prepare_unix_com(vm_com *com, char *msg, size_t msg_size) {
    /* Shared by every user, like the pipe namespace it stands for. */
    if (mkdir(PIPE_DIR, 01777) == 0) chmod(PIPE_DIR, 01777);
    com->client = unix_socket_listening(com->target);
    if (com->client) return true;
    struct stat st;
    if (lstat(com->target, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(msg, msg_size, "The pipe %s is taken by a file that is not "
                     "a socket", com->target);
            return false;
        }
        unlink(com->target); /* left behind by a VM that was killed */
    }
    return true;
}

static strv build_argv(const vm_config *cfg, const char *qmp_path) {
    strv a = {0};
    sb b = {0};
    const char *qemu = getenv("HCS_SIM_QEMU");
    push(&a, qemu && *qemu ? qemu : "qemu-system-x86_64");
    /* The id in QEMU's command line lets people (and tests) find it. */
    sb_add(&b, "hcs-sim:");
    add_escaped(&b, cfg->id);
    push_sb(&a, "-name", &b);
    /* KVM is not usable on the hosts this runs on (IMAGE.md pitfall 1). */
    push2(&a, "-accel", "tcg");
    push(&a, "-nodefaults");
    push(&a, "-no-user-config");
    push2(&a, "-display", "none");
    sb_addf(&b, "%ld", cfg->memory_mb);
    push_sb(&a, "-m", &b);
    sb_addf(&b, "%d", cfg->cpus);
    push_sb(&a, "-smp", &b);
    push2(&a, "-kernel", cfg->kernel);
    if (cfg->initrd) push2(&a, "-initrd", cfg->initrd);
    if (cfg->cmdline) push2(&a, "-append", cfg->cmdline);
    if (cfg->stop_on_reset) push(&a, "-no-reboot");
    sb_addf(&b, "unix:%s,server=on,wait=off", qmp_path);
    push_sb(&a, "-qmp", &b);
    for (int c = 0; c < cfg->scsi_controllers; c++) {
        sb_addf(&b, "virtio-scsi-pci,id=scsi%d", c);
        push_sb(&a, "-device", &b);
    }
    for (size_t i = 0; i < cfg->disk_count; i++) {
        const vm_disk *d = &cfg->disks[i];
        const char *ext = strrchr(d->path, '.');
        const char *format = ext && !strcasecmp(ext, ".vhdx") ? "vhdx"
                             : ext && !strcasecmp(ext, ".vhd") ? "vpc"
                                                              : "raw";
        sb_add(&b, "file=");
        add_escaped(&b, d->path);
        /* QEMU locks writable images, so a second writer fails to start,
         * as a second VM on the same VHDX does on Hyper-V. */
        sb_addf(&b, ",format=%s,if=none,id=disk%d_%d%s", format, d->controller,
                d->lun, d->read_only ? ",readonly=on" : "");
        push_sb(&a, "-drive", &b);
        sb_addf(&b, "scsi-hd,bus=scsi%d.0,channel=0,scsi-id=0,lun=%d,drive=disk%d_%d",
                d->controller, d->lun, d->controller, d->lun);
        push_sb(&a, "-device", &b);
    }
    for (int i = 0; i < 2; i++) {
        const vm_com *com = &cfg->com[i];
        if (!com->used) continue;
        sb_addf(&b, "socket,id=com%d,", i);
        if (com->tcp) {
            sb_add(&b, "host=127.0.0.1,port=0,server=on,wait=off,nodelay=on");
        } else {
            sb_add(&b, "path=");
            add_escaped(&b, com->target);
            /* wait=off: output before a client connects is lost, as with
             * Hyper-V's pipe (IMAGE.md pitfall 7). */
            if (!com->client) sb_add(&b, ",server=on,wait=off");
        }
        push_sb(&a, "-chardev", &b);
        sb_addf(&b, "isa-serial,index=%d,chardev=com%d", i, i);
        push_sb(&a, "-device", &b);
    }
    return a;
}

static int connect_unix(const char *path) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0) return fd;
    if (fd >= 0) close(fd);
    return -1;
}

/* The next line QMP sends, waiting at most QMP_TIMEOUT_MS. */
static char *qmp_line(qemu *q) {
    int64_t deadline = now_ms() + QMP_TIMEOUT_MS;
    char *line;
    while (!(line = line_buf_next(&q->qmp_in))) {
        struct pollfd p = {q->qmp, POLLIN, 0};
        int64_t left = deadline - now_ms();
        if (left <= 0 || poll(&p, 1, (int)left) <= 0) return NULL;
        char buf[4096];
        ssize_t n = read(q->qmp, buf, sizeof buf);
        if (n <= 0) return NULL;
        line_buf_feed(&q->qmp_in, buf, (size_t)n);
    }
    return line;
}

/* Sends a command and returns its answer, skipping events; NULL on error. */
static json_value *qmp_execute(qemu *q, const char *command) {
    qemu_drain_events(q);
    char request[128];
    int n = snprintf(request, sizeof request, "{\"execute\":\"%s\"}\n", command);
    if (write(q->qmp, request, (size_t)n) != n) return NULL;
    char *line;
    while ((line = qmp_line(q)) != NULL) {
        char err[64];
        json_value *v = json_parse(line, err, sizeof err);
        free(line);
        if (v && json_get(v, "return")) return v;
        bool failed = v && json_get(v, "error");
        json_free(v);
        if (failed) return NULL;
    }
    return NULL;
}

bool qemu_command(qemu *q, const char *command) {
    json_value *v = qmp_execute(q, command);
    json_free(v);
    return v != NULL;
}

void qemu_drain_events(qemu *q) {
    struct pollfd p = {q->qmp, POLLIN, 0};
    char buf[4096];
    while (poll(&p, 1, 0) > 0) {
        ssize_t n = read(q->qmp, buf, sizeof buf);
        if (n <= 0) break;
        line_buf_feed(&q->qmp_in, buf, (size_t)n);
    }
    char *line;
    while ((line = line_buf_next(&q->qmp_in)) != NULL) free(line);
}

/* The port QEMU picked for a TCP chardev ("...tcp:127.0.0.1:PORT,..."). */
static bool find_tcp_ports(qemu *q, vm_config *cfg) {
    json_value *v = qmp_execute(q, "query-chardev");
    const json_value *list = json_get(v, "return");
    for (size_t i = 0; list && i < list->count; i++) {
        const json_value *label = json_get(list->items[i], "label");
        const json_value *file = json_get(list->items[i], "filename");
        for (int c = 0; c < 2 && label && file; c++) {
            char want[8];
            snprintf(want, sizeof want, "com%d", c);
            const char *colon = strrchr(file->string, ':');
            if (cfg->com[c].tcp && !strcmp(label->string, want) && colon)
                cfg->com[c].port = (uint16_t)atoi(colon + 1);
        }
    }
    json_free(v);
    for (int c = 0; c < 2; c++)
        if (cfg->com[c].used && cfg->com[c].tcp && !cfg->com[c].port) return false;
    return true;
}

/* Everything QEMU wrote, once it has exited, on one line. */
static void read_errors(int fd, char *msg, size_t msg_size) {
    char buf[2048];
    size_t n = 0;
    ssize_t got;
    while (n < sizeof buf - 1 && (got = read(fd, buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)got;
    buf[n] = 0;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) buf[--n] = 0;
    for (char *p = buf; *p; p++)
        if (*p == '\n') *p = ' ';
    snprintf(msg, msg_size, "QEMU could not start the VM: %s", n ? buf : "no message");
}

/* True (and q->pid cleared) once QEMU has exited and been reaped. */
static bool qemu_exited(qemu *q) {
    if (q->pid <= 0) return true;
    if (waitpid(q->pid, NULL, WNOHANG) != q->pid) return false;
    q->pid = 0;
    return true;
}

static hresult fail_start(qemu *q, vm_config *cfg, hresult hr) {
    if (q->pid > 0) {
        kill(q->pid, SIGKILL);
        waitpid(q->pid, NULL, 0);
        q->pid = 0;
    }
    qemu_cleanup(q, cfg);
    return hr;
}

hresult qemu_start(vm_config *cfg, qemu *q, char *msg, size_t msg_size) {
    memset(q, 0, sizeof *q);
    q->qmp = q->err_fd = -1;
    for (int i = 0; i < 2; i++)
        if (cfg->com[i].used && !cfg->com[i].tcp &&
            !prepare_unix_com(&cfg->com[i], msg, msg_size))
            return E_INVALIDARG_;
    char tmpl[] = "/tmp/hcs-sim-qmp-XXXXXX";
    if (!mkdtemp(tmpl)) {
        snprintf(msg, msg_size, "cannot create a directory in /tmp");
        return E_FAIL_;
    }
    q->dir = strdup(tmpl);
    char qmp_path[64];
    snprintf(qmp_path, sizeof qmp_path, "%s/qmp", q->dir);
    int errs[2];
    if (pipe2(errs, O_CLOEXEC) != 0) return fail_start(q, cfg, E_FAIL_);
    strv argv = build_argv(cfg, qmp_path);
    pid_t parent = getpid();
    q->pid = fork();
    if (q->pid == 0) {
        /* QEMU must not outlive its supervisor, however that ends. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(errs[1], 1);
        dup2(errs[1], 2);
        signal(SIGPIPE, SIG_DFL);
        execvp(argv.v[0], argv.v);
        fprintf(stderr, "cannot run %s: %s\n", argv.v[0], strerror(errno));
        _exit(127);
    }
    strv_free(&argv);
    close(errs[1]);
    q->err_fd = errs[0];
    if (q->pid < 0) {
        q->pid = 0;
        snprintf(msg, msg_size, "cannot fork: %s", strerror(errno));
        return fail_start(q, cfg, E_FAIL_);
    }
    /* QMP's socket appears early, before QEMU opens the disks; QMP greets
     * once QEMU is ready. An exit on the way means QEMU refused something
     * (a locked disk, a bad kernel), which it explains on stderr. */
    int64_t deadline = now_ms() + START_TIMEOUT_MS;
    bool ready = false;
    while (!ready && now_ms() < deadline && !qemu_exited(q)) {
        if (q->qmp < 0) q->qmp = connect_unix(qmp_path);
        if (q->qmp < 0) {
            usleep(5000);
            continue;
        }
        char *greeting = qmp_line(q);
        ready = greeting && qemu_command(q, "qmp_capabilities");
        free(greeting);
        if (!ready) break;
    }
    if (!ready) {
        /* Give a QEMU that is on its way out the time to finish. */
        for (int i = 0; i < 200 && !qemu_exited(q); i++) usleep(10000);
        if (!qemu_exited(q)) {
            snprintf(msg, msg_size, "QEMU did not answer on QMP within %d s",
                     START_TIMEOUT_MS / 1000);
            return fail_start(q, cfg, VMCOMPUTE_TIMEOUT);
        }
        read_errors(q->err_fd, msg, msg_size);
        return fail_start(q, cfg, strstr(msg, "lock") ? HR_SHARING_VIOLATION
                                                      : VMCOMPUTE_TERMINATED_DURING_START);
    }
    if (!find_tcp_ports(q, cfg)) {
        snprintf(msg, msg_size, "QEMU did not say which ports its COM ports use");
        return fail_start(q, cfg, E_FAIL_);
    }
    return S_OK_;
}

void qemu_cleanup(qemu *q, vm_config *cfg) {
    if (q->qmp >= 0) close(q->qmp);
    if (q->err_fd >= 0) close(q->err_fd);
    q->qmp = q->err_fd = -1;
    line_buf_free(&q->qmp_in);
    if (q->dir) {
        char path[64];
        snprintf(path, sizeof path, "%s/qmp", q->dir);
        unlink(path);
        rmdir(q->dir);
        free(q->dir);
        q->dir = NULL;
        /* A killed QEMU leaves its listening socket behind. */
        for (int i = 0; i < 2; i++)
            if (cfg->com[i].used && !cfg->com[i].tcp && !cfg->com[i].client)
                unlink(cfg->com[i].target);
    }
}
