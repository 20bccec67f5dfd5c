/* SPDX-License-Identifier: MulanPSL-2.0 */
/* An iSulad-style driver of libmicrun's runtime API on the sim pedestal:
 * create -> start -> console over the FIFOs -> state -> pause/resume -> update ->
 * stats -> pids -> resize -> exec -> kill -> wait -> delete, for two containers at once
 * from two threads; then bad inputs, each an error code with a readable message.
 *
 *   rt_driver SHIM CONFIG NS ID_PREFIX BUNDLE_A BUNDLE_B BAD_BUNDLE DIR
 *
 * DIR is a private directory for the FIFOs. MICRUN_RT_PEDESTAL=qemu (in the
 * environment) expects the QEMU board instead of the simulator: its banner, and
 * a memory update refused (QEMU -M virt has no memory hotplug). Prints "rt ok"
 * at the end. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <micrun.h>

static const char *shim, *config, *ns, *prefix, *dir;
static int qemu; /* MICRUN_RT_PEDESTAL=qemu */

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, \
                    #cond);                                                   \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, " (last error: %s)\n", micrun_last_error());      \
            exit(1);                                                          \
        }                                                                     \
    } while (0)

#define OK(call) CHECK((call) == MICRUN_OK, "%s", #call)

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reads from fd into buf (NUL-terminated, appended at *len) until needle appears
 * after offset `from`, for at most 30 s. Returns whether it did. */
static int read_until(int fd, char *buf, size_t cap, size_t *len, size_t from, const char *needle) {
    double deadline = now() + 30.0;
    while (now() < deadline) {
        if (strstr(buf + from, needle)) return 1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, 200);
        if (r < 0 && errno != EINTR) return 0;
        if (r <= 0) continue;
        if (*len + 1 >= cap) return 0;
        ssize_t n = read(fd, buf + *len, cap - 1 - *len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return 0;
        *len += (size_t)n;
        buf[*len] = 0;
    }
    return strstr(buf + from, needle) != NULL;
}

struct run {
    const char *bundle;
    char id[128];
    char con[65536]; /* the console output seen */
};

/* Exec in the running container, as iSulad's rt_exec: a command's output and
 * exit status, an unknown command (127), a timeout that kills the exec while
 * the container runs on, bad input. */
static void exec_in(const micrun_rt_ref *ref, const char *id) {
    char eo[512];
    snprintf(eo, sizeof eo, "%s/%s.exec.out", dir, id);
    CHECK(mkfifo(eo, 0600) == 0, "mkfifo %s", eo);
    /* Our read end first (non-blocking, so the open does not wait for the shim). */
    int efd = open(eo, O_RDONLY | O_NONBLOCK);
    CHECK(efd >= 0, "open %s", eo);
    micrun_rt_exec_opts x = {
        .exec_id = "stats1",
        .process_json = "{\"args\":[\"stats\"],\"cwd\":\"/\"}",
        .stdin_path = NULL,
        .stdout_path = eo,
        .stderr_path = NULL,
        .terminal = false,
    };
    uint32_t code = 99;
    OK(micrun_rt_exec(ref, &x, 10000, &code));
    CHECK(code == 0, "exec stats: exit %u", code);
    char out[4096];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(efd, out + len, sizeof out - 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
    }
    out[len] = 0;
    CHECK(strstr(out, "uptime") != NULL || strstr(out, "mem") != NULL, "exec stats output: %s", out);

    x.exec_id = "code4";
    x.stdout_path = NULL;
    x.process_json = "{\"args\":[\"exit\",\"4\"]}";
    OK(micrun_rt_exec(ref, &x, 10000, &code));
    CHECK(code == 4, "exec exit 4: exit %u", code);

    x.exec_id = "nosuch";
    x.process_json = "{\"args\":[\"no-such-command\"]}";
    OK(micrun_rt_exec(ref, &x, 10000, &code));
    CHECK(code == 127, "unknown command: exit %u", code);

    /* A timeout kills the exec; the same id is free again afterwards. */
    x.exec_id = "slow";
    x.process_json = "{\"args\":[\"sleep\",\"60000\"]}";
    double t0 = now();
    CHECK(micrun_rt_exec(ref, &x, 300, &code) == MICRUN_ERR_TIMEOUT, "timeout: %s", micrun_last_error());
    CHECK(now() - t0 < 20.0, "timeout took %.1f s", now() - t0);
    CHECK(strstr(micrun_last_error(), "slow") != NULL && strstr(micrun_last_error(), "300 ms") != NULL,
          "timeout message: %s", micrun_last_error());
    x.process_json = "{\"args\":[\"exit\",\"0\"]}";
    OK(micrun_rt_exec(ref, &x, 10000, &code));
    CHECK(code == 0, "exec after a timeout: exit %u", code);

    /* Bad input: named, nothing left (the same id works afterwards). */
    x.exec_id = "bad";
    x.process_json = "{\"args\":[]}";
    CHECK(micrun_rt_exec(ref, &x, 10000, &code) == MICRUN_ERR_INVALID_ARG, "empty args accepted");
    CHECK(strstr(micrun_last_error(), "no command") != NULL, "message: %s", micrun_last_error());
    x.process_json = "not json";
    CHECK(micrun_rt_exec(ref, &x, 10000, &code) == MICRUN_ERR_INVALID_ARG, "bad JSON accepted");
    CHECK(strstr(micrun_last_error(), "not OCI process JSON") != NULL, "message: %s", micrun_last_error());
    x.process_json = NULL;
    CHECK(micrun_rt_exec(ref, &x, 10000, &code) == MICRUN_ERR_NULL, "NULL process accepted");
    CHECK(micrun_rt_exec(ref, NULL, 10000, &code) == MICRUN_ERR_NULL, "NULL opts accepted");
    CHECK(micrun_rt_exec_kill(ref, "nosuch-exec", SIGKILL) == MICRUN_ERR_NOT_FOUND, "kill of an unknown exec: %s",
          micrun_last_error());
    CHECK(micrun_rt_exec_resize(ref, "nosuch-exec", 80, 24) == MICRUN_ERR_NOT_FOUND, "resize of an unknown exec: %s",
          micrun_last_error());
    x.process_json = "{\"args\":[\"exit\",\"5\"]}";
    OK(micrun_rt_exec(ref, &x, 10000, &code));
    CHECK(code == 5, "exec after bad input: exit %u", code);
    close(efd);
    unlink(eo);
}

/* The whole lifecycle of one container. */
static void *lifecycle(void *arg) {
    struct run *r = arg;
    char in[512], out[512];
    snprintf(in, sizeof in, "%s/%s.in", dir, r->id);
    snprintf(out, sizeof out, "%s/%s.out", dir, r->id);
    CHECK(mkfifo(in, 0600) == 0, "mkfifo %s", in);
    CHECK(mkfifo(out, 0600) == 0, "mkfifo %s", out);

    micrun_rt_opts opts = {
        .ns = ns,
        .id = r->id,
        .bundle = r->bundle,
        .stdin_path = in,
        .stdout_path = out,
        .stderr_path = NULL,
        .terminal = false,
        .shim_binary = shim,
        .config_path = config,
    };
    uint32_t pid = 0;
    OK(micrun_rt_create(&opts, &pid));
    CHECK(pid > 0, "create pid %u", pid);
    CHECK(strcmp(micrun_last_error(), "") == 0, "no error after success");
    micrun_rt_ref ref = {.ns = ns, .id = r->id, .bundle = r->bundle};
    micrun_rt_state_info st;
    OK(micrun_rt_state(&ref, &st));
    CHECK(st.status == MICRUN_RT_CREATED, "status %d", (int)st.status);

    uint32_t started = 0;
    OK(micrun_rt_start(&ref, &started));
    CHECK(started == pid, "start pid %u, create pid %u", started, pid);

    /* The console: stdout FIFO (the shim holds its write end), stdin FIFO. */
    int ofd = open(out, O_RDONLY);
    CHECK(ofd >= 0, "open %s", out);
    int ifd = open(in, O_WRONLY);
    CHECK(ifd >= 0, "open %s", in);
    char *buf = r->con;
    size_t len = 0;
    buf[0] = 0;
    const char *banner = qemu ? "micrun demo shell on qemu-virt" : "micrun demo shell on sim";
    CHECK(read_until(ofd, buf, 65536, &len, 0, banner), "banner, got: %s", buf);
    size_t mark = len;
    CHECK(write(ifd, "echo hi\r", 8) == 8, "write stdin");
    CHECK(read_until(ofd, buf, 65536, &len, mark, "hi\r\n"), "echo hi, got: %s", buf + mark);

    OK(micrun_rt_state(&ref, &st));
    CHECK(st.status == MICRUN_RT_RUNNING, "status %d", (int)st.status);
    CHECK(st.pid == pid, "state pid %u", st.pid);
    CHECK(strcmp(st.pedestal, qemu ? "qemu" : "sim") == 0, "state pedestal \"%s\"", st.pedestal);

    OK(micrun_rt_pause(&ref));
    OK(micrun_rt_state(&ref, &st));
    CHECK(st.status == MICRUN_RT_PAUSED, "paused status %d", (int)st.status);
    OK(micrun_rt_resume(&ref));
    OK(micrun_rt_state(&ref, &st));
    CHECK(st.status == MICRUN_RT_RUNNING, "resumed status %d", (int)st.status);

    /* Still answering after the pause. */
    mark = len;
    CHECK(write(ifd, "echo again\r", 11) == 11, "write stdin");
    CHECK(read_until(ofd, buf, 65536, &len, mark, "again\r\n"), "echo again, got: %s", buf + mark);

    micrun_rt_stats_info stats;
    OK(micrun_rt_stats(&ref, &stats));
    uint64_t limit = stats.memory_limit;
    if (qemu) {
        CHECK(micrun_rt_update(&ref, "{\"memory\":{\"limit\":134217728}}") == MICRUN_ERR_RUNTIME,
              "memory update on qemu");
        CHECK(strstr(micrun_last_error(), "hotplug") != NULL, "message: %s", micrun_last_error());
    } else {
        OK(micrun_rt_update(&ref, "{\"memory\":{\"limit\":134217728}}"));
        limit = 134217728u;
    }
    CHECK(micrun_rt_update(&ref, "{not json") == MICRUN_ERR_INVALID_ARG, "bad JSON accepted");
    CHECK(strstr(micrun_last_error(), "micrun_rt_update") != NULL, "message: %s", micrun_last_error());
    OK(micrun_rt_stats(&ref, &stats));
    CHECK(stats.memory_limit == limit, "limit %llu", (unsigned long long)stats.memory_limit);
    CHECK(stats.memory_usage > 0, "usage 0");

    size_t n = 0;
    CHECK(micrun_rt_pids(&ref, NULL, 0, &n) == MICRUN_ERR_BUFFER_TOO_SHORT, "size query");
    CHECK(n >= 1, "pid count %zu", n);
    uint32_t pids[16];
    OK(micrun_rt_pids(&ref, pids, 16, &n));
    CHECK(n >= 1 && pids[0] == pid, "pids[0] %u", pids[0]);

    mark = len;
    OK(micrun_rt_resize(&ref, 100, 30));
    if (!qemu) /* the simulator's shell prints the new size */
        CHECK(read_until(ofd, buf, 65536, &len, mark, "resize 30x100"), "resize, got: %s", buf + mark);

    exec_in(&ref, r->id);

    OK(micrun_rt_kill(&ref, SIGKILL));
    uint32_t code = 0;
    OK(micrun_rt_wait(&ref, &code));
    CHECK(code == 137, "wait: exit %u", code);
    OK(micrun_rt_state(&ref, &st));
    CHECK(st.status == MICRUN_RT_STOPPED && st.exit_status == 137, "stopped %d %u", (int)st.status, st.exit_status);
    code = 0;
    OK(micrun_rt_delete(&ref, &code));
    CHECK(code == 137, "delete: exit %u", code);
    close(ifd);
    close(ofd);

    /* Gone: every call now says so. */
    CHECK(micrun_rt_state(&ref, &st) == MICRUN_ERR_NOT_FOUND, "state after delete");
    CHECK(strstr(micrun_last_error(), r->id) != NULL, "message names the id: %s", micrun_last_error());
    char addr[512];
    snprintf(addr, sizeof addr, "%s/address", r->bundle);
    CHECK(access(addr, F_OK) != 0, "%s left behind", addr);
    unlink(in);
    unlink(out);
    printf("%s: lifecycle ok\n", r->id);
    fflush(stdout);
    return NULL;
}

static void bad_inputs(const char *good_bundle, const char *bad_bundle) {
    uint32_t pid = 7, code;
    micrun_rt_state_info st;
    micrun_rt_stats_info stats;
    size_t n;

    CHECK(micrun_rt_create(NULL, &pid) == MICRUN_ERR_NULL, "NULL opts");
    CHECK(strstr(micrun_last_error(), "micrun_rt_create: opts is NULL") != NULL, "%s", micrun_last_error());
    micrun_rt_opts opts = {.ns = ns, .id = NULL, .bundle = good_bundle, .shim_binary = shim, .config_path = config};
    CHECK(micrun_rt_create(&opts, &pid) == MICRUN_ERR_NULL, "NULL id");
    CHECK(strstr(micrun_last_error(), "opts->id is NULL") != NULL, "%s", micrun_last_error());
    opts.id = "x";
    CHECK(micrun_rt_create(&opts, NULL) == MICRUN_ERR_NULL, "NULL pid");
    const char bad_utf8[] = {'i', 'd', (char)0xff, 0};
    opts.id = bad_utf8;
    CHECK(micrun_rt_create(&opts, &pid) == MICRUN_ERR_INVALID_ARG, "non-UTF-8 id");
    CHECK(strstr(micrun_last_error(), "not UTF-8") != NULL, "%s", micrun_last_error());
    opts.id = "x";
    opts.bundle = "/nonexistent/bundle";
    CHECK(micrun_rt_create(&opts, &pid) == MICRUN_ERR_INVALID_ARG, "missing bundle dir");
    CHECK(strstr(micrun_last_error(), "/nonexistent/bundle") != NULL, "%s", micrun_last_error());
    opts.bundle = good_bundle;
    opts.shim_binary = "/nonexistent/shim";
    CHECK(micrun_rt_create(&opts, &pid) == MICRUN_ERR_RUNTIME, "missing shim");
    CHECK(strstr(micrun_last_error(), "/nonexistent/shim") != NULL, "%s", micrun_last_error());

    /* A bundle without firmware: the shim starts, Create fails, the shim goes. */
    char id[128];
    snprintf(id, sizeof id, "%s-nofw", prefix);
    micrun_rt_opts nofw = {.ns = ns, .id = id, .bundle = bad_bundle, .shim_binary = shim, .config_path = config};
    micrun_status s = micrun_rt_create(&nofw, &pid);
    CHECK(s == MICRUN_ERR_RUNTIME || s == MICRUN_ERR_INVALID_ARG || s == MICRUN_ERR_NOT_FOUND, "no firmware: %d", (int)s);
    const char *msg = micrun_last_error();
    CHECK(strstr(msg, "micrun_rt_create: create") != NULL && strstr(msg, "firmware") != NULL,
          "message names the problem: %s", msg);
    printf("no firmware: %s\n", msg);
    char addr[512];
    snprintf(addr, sizeof addr, "%s/address", bad_bundle);
    CHECK(access(addr, F_OK) != 0, "%s left behind", addr);

    /* Unknown ids, NULL refs and outputs. */
    micrun_rt_ref unknown = {.ns = ns, .id = "nosuch", .bundle = bad_bundle};
    CHECK(micrun_rt_state(&unknown, &st) == MICRUN_ERR_NOT_FOUND, "unknown id");
    CHECK(strstr(micrun_last_error(), "nosuch") != NULL, "%s", micrun_last_error());
    CHECK(micrun_rt_start(&unknown, &pid) == MICRUN_ERR_NOT_FOUND, "start unknown");
    CHECK(micrun_rt_kill(&unknown, 9) == MICRUN_ERR_NOT_FOUND, "kill unknown");
    CHECK(micrun_rt_wait(&unknown, &code) == MICRUN_ERR_NOT_FOUND, "wait unknown");
    CHECK(micrun_rt_delete(&unknown, &code) == MICRUN_ERR_NOT_FOUND, "delete unknown");
    CHECK(micrun_rt_pause(&unknown) == MICRUN_ERR_NOT_FOUND, "pause unknown");
    CHECK(micrun_rt_resume(&unknown) == MICRUN_ERR_NOT_FOUND, "resume unknown");
    CHECK(micrun_rt_update(&unknown, "{}") == MICRUN_ERR_NOT_FOUND, "update unknown");
    CHECK(micrun_rt_stats(&unknown, &stats) == MICRUN_ERR_NOT_FOUND, "stats unknown");
    CHECK(micrun_rt_pids(&unknown, NULL, 0, &n) == MICRUN_ERR_NOT_FOUND, "pids unknown");
    CHECK(micrun_rt_resize(&unknown, 1, 1) == MICRUN_ERR_NOT_FOUND, "resize unknown");
    CHECK(micrun_rt_state(NULL, &st) == MICRUN_ERR_NULL, "NULL ref");
    CHECK(strstr(micrun_last_error(), "micrun_rt_state: ref is NULL") != NULL, "%s", micrun_last_error());
    micrun_rt_ref noid = {.ns = ns, .id = NULL, .bundle = bad_bundle};
    CHECK(micrun_rt_kill(&noid, 9) == MICRUN_ERR_NULL, "NULL ref->id");
    CHECK(strstr(micrun_last_error(), "ref->id is NULL") != NULL, "%s", micrun_last_error());
    micrun_rt_ref nons = {.ns = NULL, .id = "x", .bundle = bad_bundle};
    CHECK(micrun_rt_pause(&nons) == MICRUN_ERR_NULL, "NULL ref->ns");
    printf("bad inputs ok\n");
}

int main(int argc, char **argv) {
    if (argc != 9) {
        fprintf(stderr, "usage: %s SHIM CONFIG NS ID_PREFIX BUNDLE_A BUNDLE_B BAD_BUNDLE DIR\n", argv[0]);
        return 2;
    }
    shim = argv[1];
    config = argv[2];
    ns = argv[3];
    prefix = argv[4];
    dir = argv[8];
    const char *ped = getenv("MICRUN_RT_PEDESTAL");
    qemu = ped != NULL && strcmp(ped, "qemu") == 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);

    static struct run a, b;
    a.bundle = argv[5];
    b.bundle = argv[6];
    snprintf(a.id, sizeof a.id, "%s-a", prefix);
    snprintf(b.id, sizeof b.id, "%s-b", prefix);
    pthread_t ta, tb;
    CHECK(pthread_create(&ta, NULL, lifecycle, &a) == 0, "thread a");
    CHECK(pthread_create(&tb, NULL, lifecycle, &b) == 0, "thread b");
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);

    bad_inputs(argv[5], argv[7]);
    printf("rt ok\n");
    return 0;
}
