/* SPDX-License-Identifier: MulanPSL-2.0 */
/* The calls iSulad makes that rt_driver.c does not, through libmicrun on the sim
 * pedestal:
 *
 *   rt_isulad SHIM CONFIG NS ID_PREFIX BUNDLE_A BUNDLE_B BAD_BUNDLE
 *
 * A (libmicrun starts the shim): <bundle>/log is a file with a line in it; kill 0
 * while created and running is success; start returns the pid facts of
 * pid_ppid_info_t; a second create with the live id fails and leaves
 * <bundle>/address and the container alone; a SIGHUP to this process group does
 * not reach the shim (own session, stdin /dev/null); stats; SIGKILL; kill 0 after
 * the end is NOT_FOUND; the log got the shim's lines, appended.
 * B (the caller starts the shim, as iSulad does: fork, chdir, setsid, stdin
 * /dev/null, <bundle>/log a FIFO it reads, <bundle>/address written by the
 * caller): a create that fails leaves the shim serving; then create_at, start,
 * kill, wait, delete. Prints "isulad ok" at the end. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <micrun.h>

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

static volatile sig_atomic_t hups;
static void on_hup(int sig) {
    (void)sig;
    hups++;
}

static char *slurp(const char *path) {
    static char buf[1 << 16];
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0, "open %s", path);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    CHECK(n >= 0, "read %s", path);
    buf[n] = 0;
    close(fd);
    return buf;
}

/* Fields 4 (ppid) and 22 (starttime) of /proc/<pid>/stat. */
static void stat_of(unsigned pid, unsigned *ppid, unsigned long long *start) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%u/stat", pid);
    char *s = slurp(path);
    char *p = strrchr(s, ')');
    CHECK(p != NULL, "%s: %s", path, s);
    char state;
    int n = sscanf(p + 2,
                   "%c %u %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
                   &state, ppid, start);
    CHECK(n == 3, "%s: parsed %d fields", path, n);
}

static void container_a(const char *shim, const char *config, const char *ns, const char *prefix,
                        const char *bundle) {
    char id[128], log[512], addr_file[512];
    snprintf(id, sizeof id, "%s-a", prefix);
    snprintf(log, sizeof log, "%s/log", bundle);
    snprintf(addr_file, sizeof addr_file, "%s/address", bundle);
    FILE *f = fopen(log, "w");
    CHECK(f != NULL, "create %s", log);
    fputs("iSulad was here\n", f);
    fclose(f);

    micrun_rt_opts opts = {.ns = ns, .id = id, .bundle = bundle, .shim_binary = shim, .config_path = config};
    micrun_rt_ref ref = {.ns = ns, .id = id, .bundle = bundle};
    uint32_t pid = 0;
    OK(micrun_rt_create(&opts, &pid));
    OK(micrun_rt_kill(&ref, 0)); /* created: alive */

    micrun_rt_pid_info info;
    memset(&info, 0xff, sizeof info);
    OK(micrun_rt_start_info(&ref, &info));
    CHECK(info.pid == pid, "start pid %u, create pid %u", info.pid, pid);
    unsigned ppid;
    unsigned long long start, pstart;
    stat_of(info.pid, &ppid, &start);
    CHECK(info.start_time == start && info.ppid == ppid, "pid info %u %llu %u, /proc says %llu %u",
          info.pid, (unsigned long long)info.start_time, info.ppid, start, ppid);
    unsigned pppid;
    stat_of(info.ppid, &pppid, &pstart);
    CHECK(info.pstart_time == pstart, "parent start %llu, /proc says %llu",
          (unsigned long long)info.pstart_time, pstart);
    /* The partition's parent is the shim: in its own session, stdin /dev/null. */
    unsigned shim_pid = info.ppid;
    CHECK(getsid((pid_t)shim_pid) != getsid(0), "the shim is in the caller's session %d", (int)getsid(0));
    CHECK(getpgid((pid_t)shim_pid) != getpgrp(), "the shim is in the caller's process group");
    char fd0[64], target[256];
    snprintf(fd0, sizeof fd0, "/proc/%u/fd/0", shim_pid);
    ssize_t tn = readlink(fd0, target, sizeof target - 1);
    CHECK(tn > 0, "readlink %s", fd0);
    target[tn] = 0;
    CHECK(strcmp(target, "/dev/null") == 0, "shim stdin is %s", target);
    OK(micrun_rt_kill(&ref, 0)); /* running: alive */

    /* The same id again: refused, and nothing of the live one touched. */
    char before[512];
    snprintf(before, sizeof before, "%s", slurp(addr_file));
    uint32_t pid2 = 0;
    micrun_status st = micrun_rt_create(&opts, &pid2);
    CHECK(st != MICRUN_OK, "second create of %s succeeded", id);
    CHECK(strstr(micrun_last_error(), "already exists") != NULL, "message: %s", micrun_last_error());
    printf("second create: %s\n", micrun_last_error());
    CHECK(access(addr_file, F_OK) == 0, "%s removed by the failed create", addr_file);
    CHECK(strcmp(slurp(addr_file), before) == 0, "%s changed", addr_file);
    micrun_rt_state_info state;
    OK(micrun_rt_state(&ref, &state));
    CHECK(state.status == MICRUN_RT_RUNNING && state.pid == pid, "after the second create: %d %u",
          (int)state.status, state.pid);

    /* A hangup for the caller's process group: the caller gets it, the shim not. */
    CHECK(kill(0, SIGHUP) == 0, "kill(0, SIGHUP)");
    while (hups == 0) pause();
    OK(micrun_rt_kill(&ref, 0));
    OK(micrun_rt_state(&ref, &state));
    CHECK(state.status == MICRUN_RT_RUNNING, "after SIGHUP: %d", (int)state.status);
    CHECK(kill((pid_t)shim_pid, 0) == 0, "the shim %u is gone after SIGHUP", shim_pid);

    micrun_rt_stats_info stats;
    memset(&stats, 0xff, sizeof stats);
    OK(micrun_rt_stats(&ref, &stats));
    printf("stats: cpu %llu mem %llu/%llu pids %llu sys %llu blkio %llu/%llu rss %llu faults %llu/%llu\n",
           (unsigned long long)stats.cpu_ns, (unsigned long long)stats.memory_usage,
           (unsigned long long)stats.memory_limit, (unsigned long long)stats.pids_current,
           (unsigned long long)stats.cpu_system_use, (unsigned long long)stats.blkio_read,
           (unsigned long long)stats.blkio_write, (unsigned long long)stats.rss_bytes,
           (unsigned long long)stats.page_faults, (unsigned long long)stats.major_page_faults);
    CHECK(stats.pids_current == 1, "pids %llu", (unsigned long long)stats.pids_current);
    CHECK(stats.cpu_system_use > stats.cpu_ns, "system cpu %llu", (unsigned long long)stats.cpu_system_use);
    CHECK(stats.memory_limit > 0 && stats.memory_usage > 0 && stats.rss_bytes > 0, "memory");
    CHECK(stats.page_faults > 0 && stats.page_faults >= stats.major_page_faults, "page faults");
    CHECK(stats.kmem_used == 0 && stats.kmem_limit == 0 && stats.cache == 0 && stats.cache_total == 0 &&
              stats.inactive_file_total == 0 && stats.swap_used == 0 && stats.swap_limit == 0,
          "fields a partition never has are 0");

    OK(micrun_rt_kill(&ref, SIGKILL));
    uint32_t code = 0;
    OK(micrun_rt_wait(&ref, &code));
    CHECK(code == 137, "exit %u", code);
    /* Ended: signal 0 says so, the way a runc shim does. */
    CHECK(micrun_rt_kill(&ref, 0) == MICRUN_ERR_NOT_FOUND, "kill 0 after the end");
    CHECK(strstr(micrun_last_error(), "process already finished") != NULL, "%s", micrun_last_error());
    OK(micrun_rt_delete(&ref, &code));
    CHECK(micrun_rt_kill(&ref, 0) == MICRUN_ERR_NOT_FOUND, "kill 0 after delete");

    char *text = slurp(log);
    CHECK(strncmp(text, "iSulad was here\n", 16) == 0, "the log was not appended to: %.200s", text);
    char want[256];
    snprintf(want, sizeof want, "create %s", id);
    CHECK(strstr(text, want) != NULL, "%s not in the log: %.2000s", want, text);
    snprintf(want, sizeof want, "kill %s signal 9", id);
    CHECK(strstr(text, want) != NULL, "%s not in the log: %.2000s", want, text);
    printf("%s: ok\n", id);
}

/* Starts the shim as iSulad does; returns its address (static storage). */
static const char *start_shim(const char *shim, const char *config, const char *ns, const char *id,
                              const char *bundle) {
    int out[2];
    CHECK(pipe(out) == 0, "pipe");
    pid_t child = fork();
    CHECK(child >= 0, "fork");
    if (child == 0) {
        int null = open("/dev/null", O_RDONLY);
        if (null < 0 || dup2(null, 0) < 0 || dup2(out[1], 1) < 0 || chdir(bundle) != 0 || setsid() < 0)
            _exit(126);
        /* Only fds 0-2 go to the shim (a kept write end would hold the pipe open). */
        close(out[0]);
        close(out[1]);
        if (null > 2) close(null);
        setenv("MICRUN_CONFIG", config, 1);
        unsetenv("TTRPC_ADDRESS");
        execl(shim, shim, "--id", id, "--namespace", ns, "start", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    static char addr[512];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(out[0], addr + len, sizeof addr - 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
    }
    close(out[0]);
    addr[len] = 0;
    int status;
    CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "shim start exited %d", status);
    while (len > 0 && (addr[len - 1] == '\n' || addr[len - 1] == ' ')) addr[--len] = 0;
    CHECK(len > 0, "no address from the shim");
    return addr;
}

static void container_b(const char *shim, const char *config, const char *ns, const char *prefix,
                        const char *bundle, const char *bad_bundle) {
    char id[128], bad_id[128], log[512], addr_file[512];
    snprintf(id, sizeof id, "%s-b", prefix);
    snprintf(bad_id, sizeof bad_id, "%s-nofw", prefix);
    snprintf(log, sizeof log, "%s/log", bundle);
    snprintf(addr_file, sizeof addr_file, "%s/address", bundle);
    CHECK(mkfifo(log, 0600) == 0, "mkfifo %s", log);
    int logfd = open(log, O_RDONLY | O_NONBLOCK);
    CHECK(logfd >= 0, "open %s", log);

    const char *addr = start_shim(shim, config, ns, id, bundle);
    FILE *f = fopen(addr_file, "w");
    CHECK(f != NULL, "write %s", addr_file);
    fputs(addr, f);
    fclose(f);

    /* A create that fails on the caller's shim touches nothing. */
    char bad_addr_file[512];
    snprintf(bad_addr_file, sizeof bad_addr_file, "%s/address", bad_bundle);
    micrun_rt_opts bad = {.ns = ns, .id = bad_id, .bundle = bad_bundle, .config_path = config};
    uint32_t pid = 0;
    CHECK(micrun_rt_create_at(&bad, addr, &pid) != MICRUN_OK, "create without firmware");
    CHECK(strstr(micrun_last_error(), "firmware") != NULL, "%s", micrun_last_error());
    CHECK(strstr(micrun_last_error(), "pedestal sim, chosen by the annotation") != NULL, "%s",
          micrun_last_error());
    CHECK(access(bad_addr_file, F_OK) != 0, "%s made", bad_addr_file);
    CHECK(access(addr_file, F_OK) == 0, "%s removed", addr_file);
    CHECK(micrun_rt_create_at(&bad, "unix:///nonexistent/micrun.sock", &pid) == MICRUN_ERR_NOT_FOUND,
          "no shim there");
    CHECK(micrun_rt_create_at(&bad, NULL, &pid) == MICRUN_ERR_NULL, "NULL task_addr");

    micrun_rt_opts opts = {.ns = ns, .id = id, .bundle = bundle, .config_path = config};
    OK(micrun_rt_create_at(&opts, addr, &pid));
    micrun_rt_ref ref = {.ns = ns, .id = id, .bundle = bundle};
    micrun_rt_pid_info info;
    OK(micrun_rt_start_info(&ref, &info));
    CHECK(info.pid == pid && info.ppid != 0 && info.start_time != 0 && info.pstart_time != 0,
          "pid info %u %u", info.pid, info.ppid);
    OK(micrun_rt_kill(&ref, 0));
    OK(micrun_rt_kill(&ref, SIGKILL));
    uint32_t code = 0;
    OK(micrun_rt_wait(&ref, &code));
    CHECK(code == 137, "exit %u", code);
    OK(micrun_rt_delete(&ref, &code));

    /* The shim's lines went to the FIFO the caller reads. */
    static char text[1 << 16];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(logfd, text + len, sizeof text - 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
    }
    text[len] = 0;
    close(logfd);
    char want[256];
    snprintf(want, sizeof want, "create %s", id);
    CHECK(strstr(text, want) != NULL, "%s not in the log FIFO: %.2000s", want, text);
    printf("%s: ok\n", id);
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: %s SHIM CONFIG NS ID_PREFIX BUNDLE_A BUNDLE_B BAD_BUNDLE\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    /* A handler, not SIG_IGN: an ignored signal would stay ignored in the shim. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    container_a(argv[1], argv[2], argv[3], argv[4], argv[5]);
    container_b(argv[1], argv[2], argv[3], argv[4], argv[6], argv[7]);
    printf("isulad ok\n");
    return 0;
}
