/* SPDX-License-Identifier: MulanPSL-2.0 */
/*
 * A C "RTOS application" on the micrun agent's C ABI (micrun_agent.h, the
 * rtos-side static library built with the `capi` feature), with stdin/stdout as
 * its link. It is what a C RTOS port does, minus the RTOS:
 *
 *   - prints a greeting once a host is connected;
 *   - answers each console input line "<text>" with "echo: <text>";
 *   - "exit <n>" reports exit code n and returns n once the host has it;
 *   - a stop request from the host reports exit code 0;
 *   - stats report fixed, recognisable numbers;
 *   - exec commands through the exec hook (unless run with --no-exec):
 *     "echo <args...>" prints its arguments, "argv <args...>" prints argc and
 *     each argument in brackets, "exit <n>" ends with n, "count <n>" prints n
 *     lines over later polls, "wait" runs until a signal and ends with
 *     128 + signo; anything else is unknown (127).
 *
 * Exit codes 90-104 are the program's own failures (see the returns below),
 * among them the agent's ENOTINIT before init and EBUSY inside on_stats
 * (where micrun_agent_poll_timeout answers UINT64_MAX).
 *
 * Run by tests/tests/c_agent.rs against micrun-proto's host endpoint.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "micrun_agent.h"

struct app {
    char line[256];
    size_t len;
    int exit_code; /* -1 while running */
    int stop;
    int count_left, count_done; /* the running "count" command */
    int waiting;                /* the running "wait" command */
    int exec_signo;             /* a signal for it */
    char pend[32];              /* the "count" line being written */
    size_t pend_len, pend_off;
    int reentered; /* a call from on_stats was not refused with EBUSY */
};

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void tx(void *ctx, const uint8_t *data, size_t len) {
    (void)ctx;
    while (len > 0) {
        ssize_t n = write(STDOUT_FILENO, data, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            exit(90); /* the host is gone */
        }
        data += n;
        len -= (size_t)n;
    }
}

static void say(const char *text) {
    size_t len = strlen(text);
    const uint8_t *p = (const uint8_t *)text;
    while (len > 0) {
        ptrdiff_t n = micrun_agent_write(MICRUN_STDOUT, p, len);
        if (n < 0) exit(91);
        p += n;
        len -= (size_t)n;
        if (len > 0) micrun_agent_poll(now_ms());
    }
}

static void on_input(void *ctx, const uint8_t *data, size_t len) {
    struct app *app = ctx;
    for (size_t i = 0; i < len; i++) {
        char c = (char)data[i];
        if (c != '\r' && c != '\n') {
            if (app->len + 1 < sizeof app->line) app->line[app->len++] = c;
            continue;
        }
        if (app->len == 0) continue;
        app->line[app->len] = '\0';
        if (strncmp(app->line, "exit ", 5) == 0) {
            app->exit_code = atoi(app->line + 5);
        } else {
            char out[300];
            snprintf(out, sizeof out, "echo: %s\r\n", app->line);
            say(out);
        }
        app->len = 0;
    }
}

/* Writes all of `text` to the running exec's output. */
static void exec_say(const char *text) {
    size_t len = strlen(text);
    const uint8_t *p = (const uint8_t *)text;
    while (len > 0) {
        ptrdiff_t n = micrun_agent_write_exec(p, len);
        if (n < 0) exit(80);
        p += n;
        len -= (size_t)n;
        if (len > 0) micrun_agent_poll(now_ms());
    }
}

static bool on_exec(void *ctx, int argc, const char *const *argv) {
    struct app *app = ctx;
    if (argc < 1 || argv[argc] != NULL) exit(81);
    char out[256];
    if (strcmp(argv[0], "echo") == 0) {
        out[0] = '\0';
        for (int i = 1; i < argc; i++) {
            if (i > 1) strncat(out, " ", sizeof out - strlen(out) - 1);
            strncat(out, argv[i], sizeof out - strlen(out) - 1);
        }
        strncat(out, "\n", sizeof out - strlen(out) - 1);
        exec_say(out);
        if (micrun_agent_exec_exit(0) != MICRUN_AGENT_OK) exit(82);
        return true;
    }
    if (strcmp(argv[0], "argv") == 0) {
        snprintf(out, sizeof out, "%d", argc);
        for (int i = 0; i < argc; i++) {
            size_t at = strlen(out);
            snprintf(out + at, sizeof out - at, " [%s]", argv[i]);
        }
        strncat(out, "\n", sizeof out - strlen(out) - 1);
        exec_say(out);
        micrun_agent_exec_exit(0);
        return true;
    }
    if (strcmp(argv[0], "exit") == 0 && argc == 2) {
        micrun_agent_exec_exit(atoi(argv[1]));
        return true;
    }
    if (strcmp(argv[0], "count") == 0 && argc == 2) {
        app->count_left = atoi(argv[1]);
        app->count_done = 0;
        app->pend_len = app->pend_off = 0;
        if (app->count_left <= 0) micrun_agent_exec_exit(0);
        return true; /* runs from the main loop */
    }
    if (strcmp(argv[0], "wait") == 0) {
        app->waiting = 1;
        app->exec_signo = 0;
        return true;
    }
    return false;
}

static void on_exec_signal(void *ctx, uint8_t signo) {
    struct app *app = ctx;
    app->exec_signo = signo;
}

/* Work of a running exec, a little per main-loop turn: "count" writes its
   lines as far as the ring takes them (the rest of a line on a later turn). */
static void run_exec(struct app *app) {
    if (!micrun_agent_exec_running()) return;
    if (app->count_left > 0) {
        if (app->pend_off == app->pend_len) {
            snprintf(app->pend, sizeof app->pend, "line %d\n", app->count_done);
            app->pend_len = strlen(app->pend);
            app->pend_off = 0;
        }
        ptrdiff_t n = micrun_agent_write_exec((const uint8_t *)app->pend + app->pend_off,
                                              app->pend_len - app->pend_off);
        if (n < 0) exit(83);
        app->pend_off += (size_t)n;
        if (app->pend_off < app->pend_len) return; /* the ring is full */
        app->count_done++;
        if (--app->count_left == 0) micrun_agent_exec_exit(0);
    } else if (app->waiting && app->exec_signo != 0) {
        app->waiting = 0;
        micrun_agent_exec_exit(128 + app->exec_signo);
    }
}

static void on_stop(void *ctx, uint32_t grace_ms) {
    struct app *app = ctx;
    (void)grace_ms;
    app->stop = 1;
}

static void on_stats(void *ctx, struct micrun_stats *out) {
    struct app *app = ctx;
    /* on_stats runs inside the agent: calling back in is refused. */
    if (micrun_agent_write(MICRUN_STDOUT, (const uint8_t *)"x", 1) != MICRUN_AGENT_EBUSY ||
        micrun_agent_log(2, "x") != MICRUN_AGENT_EBUSY ||
        micrun_agent_poll_timeout() != UINT64_MAX)
        app->reentered = 1;
    out->cpu_load_permille = 123;
    out->mem_used_kib = 456;
    out->mem_total_kib = 789;
}

int main(int argc, char **argv) {
    static struct app app = {.exit_code = -1};
    int no_exec = argc > 1 && strcmp(argv[1], "--no-exec") == 0;
    struct micrun_agent_config cfg = {
        .ctx = &app,
        .os = "c-test",
        .board = "pipe",
        .tx = tx,
        .on_stop = on_stop,
        .on_input = on_input,
        .on_stats = on_stats,
        .on_exec = no_exec ? NULL : on_exec,
        .on_exec_signal = no_exec ? NULL : on_exec_signal,
    };
    /* Before init every call says so (or does nothing). */
    if (micrun_agent_write(MICRUN_STDOUT, (const uint8_t *)"x", 1) != MICRUN_AGENT_ENOTINIT) return 101;
    if (micrun_agent_feed((const uint8_t *)"x", 1) != MICRUN_AGENT_ENOTINIT) return 102;
    micrun_agent_poll(0);
    if (micrun_agent_poll_timeout() != UINT64_MAX || micrun_agent_connected()) return 103;
    if (micrun_agent_init(NULL) != MICRUN_AGENT_EINVAL) return 92;
    if (micrun_agent_init(&cfg) != MICRUN_AGENT_OK) return 93;
    /* No exec runs yet. */
    if (micrun_agent_write_exec((const uint8_t *)"x", 1) != MICRUN_AGENT_ESRCH) return 98;
    if (micrun_agent_exec_exit(0) != MICRUN_AGENT_ESRCH) return 99;
    if (micrun_agent_exec_running()) return 100;

    int greeted = 0, reported = 0, code = 0;
    for (;;) {
        micrun_agent_poll(now_ms());
        uint64_t next = micrun_agent_poll_timeout();
        if (app.reentered) return 104;
        if (!greeted && micrun_agent_connected()) {
            say("hello from a C agent\r\n");
            greeted = 1;
        }
        run_exec(&app);
        if (!reported && (app.exit_code >= 0 || app.stop)) {
            code = app.stop ? 0 : app.exit_code;
            if (micrun_agent_exit(code, MICRUN_EXIT_NORMAL) == MICRUN_AGENT_OK) reported = 1;
        }
        if (reported && micrun_agent_exit_delivered()) return code;

        uint64_t now = now_ms();
        int wait = next == UINT64_MAX ? 100 : next <= now ? 0 : (int)(next - now);
        if (wait > 100) wait = 100;
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        int r = poll(&pfd, 1, wait);
        if (r < 0 && errno != EINTR) return 94;
        if (r > 0) {
            uint8_t buf[512];
            ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
            if (n == 0) return 95; /* the host closed the link */
            if (n < 0 && errno != EINTR && errno != EAGAIN) return 96;
            if (n > 0 && micrun_agent_feed(buf, (size_t)n) != MICRUN_AGENT_OK) return 97;
        }
    }
}
