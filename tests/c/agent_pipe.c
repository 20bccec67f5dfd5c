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
 *   - stats report fixed, recognisable numbers.
 *
 * Run by tests/tests/c_agent.rs against micrun-proto's host endpoint.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <poll.h>
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

static void on_stop(void *ctx, uint32_t grace_ms) {
    struct app *app = ctx;
    (void)grace_ms;
    app->stop = 1;
}

static void on_stats(void *ctx, struct micrun_stats *out) {
    (void)ctx;
    out->cpu_load_permille = 123;
    out->mem_used_kib = 456;
    out->mem_total_kib = 789;
}

int main(void) {
    static struct app app = {.exit_code = -1};
    struct micrun_agent_config cfg = {
        .ctx = &app,
        .os = "c-test",
        .board = "pipe",
        .tx = tx,
        .on_stop = on_stop,
        .on_input = on_input,
        .on_stats = on_stats,
    };
    if (micrun_agent_init(NULL) != MICRUN_AGENT_EINVAL) return 92;
    if (micrun_agent_init(&cfg) != MICRUN_AGENT_OK) return 93;

    int greeted = 0, reported = 0, code = 0;
    for (;;) {
        uint64_t next = micrun_agent_poll(now_ms());
        if (!greeted && micrun_agent_connected()) {
            say("hello from a C agent\r\n");
            greeted = 1;
        }
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
