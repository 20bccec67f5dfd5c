/* SPDX-License-Identifier: MulanPSL-2.0 */
/*
 * A bare-metal Cortex-M4 application under micrun, for QEMU's mps2-an386 (ARM
 * MPS2 board with the AN386 FPGA image): the path a C RTOS port (UniProton,
 * Zephyr, a vendor SDK) follows, with nothing but the agent's C ABI
 * (micrun_agent.h, the rtos-side static library built with `capi`).
 *
 * What the port provides to the agent, and where it is here:
 *   - a byte link: UART0 (CMSDK APB UART at 0x40004000), which QEMU connects to
 *     the shim; `tx` writes bytes, the RX interrupt queues what arrives and the
 *     main loop hands it to micrun_agent_feed();
 *   - a millisecond clock: SysTick at 1 kHz (the board's 25 MHz CPU clock);
 *   - a poll call: micrun_agent_poll(now) from the main loop, which sleeps (WFI)
 *     until the next interrupt when there is nothing to do before the time
 *     micrun_agent_poll_timeout() gives.
 *
 * The application: a line shell on the console (help, echo, uptime, stats,
 * exit N), the same commands as execs, stats from the clock and the linker's
 * memory map, and a stop hook: SIGTERM from the host (`ctr task kill`, a pod
 * stop) prints a line and ends with exit code 0, the application's own. Once
 * the host has its exit code, it leaves QEMU through semihosting (SYS_EXIT).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "micrun_agent.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

/* CMSDK APB UART0. */
#define UART0 0x40004000u
#define UART_DATA REG(UART0 + 0x00)
#define UART_STATE REG(UART0 + 0x04) /* bit 0: TX full, bit 1: RX full */
#define UART_CTRL REG(UART0 + 0x08)  /* bit 0: TX on, bit 1: RX on, bit 3: RX irq */
#define UART_INT REG(UART0 + 0x0C)   /* write 1 to clear; bit 1: RX */
#define UART_BAUDDIV REG(UART0 + 0x10)
#define UART0_RX_IRQ 0

/* Cortex-M system registers. */
#define SYST_CSR REG(0xE000E010)
#define SYST_RVR REG(0xE000E014)
#define SYST_CVR REG(0xE000E018)
#define NVIC_ISER0 REG(0xE000E100)
#define CPACR REG(0xE000ED88)

#define CPU_HZ 25000000u

/* ---- the clock ---------------------------------------------------------- */

static volatile uint32_t ticks_lo, ticks_hi; /* milliseconds since boot */
static volatile uint32_t idle_ticks;         /* ticks that found the CPU asleep */
static volatile bool asleep;

void systick_handler(void) {
    if (++ticks_lo == 0) ticks_hi++;
    if (asleep) idle_ticks++;
}

static uint64_t now_ms(void) {
    uint32_t hi, lo;
    do {
        hi = ticks_hi;
        lo = ticks_lo;
    } while (hi != ticks_hi);
    return ((uint64_t)hi << 32) | lo;
}

/* ---- the link ----------------------------------------------------------- */

static uint8_t rx_ring[256];
static volatile uint32_t rx_head, rx_tail; /* written by the IRQ / the main loop */

/* Moves what the UART holds into rx_ring. The interrupt is cleared first: a byte
 * that arrives while this runs raises it again, so none waits without one. With
 * the ring full the byte stays in the UART (QEMU holds the rest back) and the
 * main loop, which calls this too, takes it once there is room. */
static void uart0_rx_drain(void) {
    UART_INT = 2u;
    while (UART_STATE & 2u) {
        uint32_t next = (rx_head + 1) % sizeof rx_ring;
        if (next == rx_tail) break;
        rx_ring[rx_head] = (uint8_t)UART_DATA;
        rx_head = next;
    }
}

void uart0_rx_handler(void) {
    uart0_rx_drain();
}

static void tx(void *ctx, const uint8_t *data, size_t len) {
    (void)ctx;
    for (size_t i = 0; i < len; i++) {
        while (UART_STATE & 1u) {
        }
        UART_DATA = data[i];
    }
}

/* ---- the application ---------------------------------------------------- */

struct app {
    char line[128];
    size_t len;
    int exit_code; /* -1 while running */
    uint32_t rows, cols;
};
static struct app app = {.exit_code = -1};

/* Console output. The lines are short and the agent's stdout ring (1 KiB by
 * default) takes them whole; called from the agent's callbacks, this must not
 * poll the agent, so what does not fit is dropped. */
static void say(const char *s) {
    (void)micrun_agent_write(MICRUN_STDOUT, (const uint8_t *)s, strlen(s));
}

/* Decimal text of v into buf (at least 21 bytes); returns buf. */
static char *dec(uint64_t v, char *buf) {
    char tmp[21];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    for (int i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
    return buf;
}

/* The number in s ("-" allowed); false when s is not one. */
static bool parse_int(const char *s, int *out) {
    int sign = 1, v = 0;
    if (*s == '-') {
        sign = -1;
        s++;
    }
    if (*s == '\0') return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > 100000000) return false;
        v = v * 10 + (*s - '0');
    }
    *out = sign * v;
    return true;
}

extern uint8_t _sdata, _end; /* the linker's map: static RAM in use */
#define RAM_KIB 4096u

static void fill_stats(struct micrun_stats *s) {
    uint64_t up = now_ms();
    s->uptime_ms = up;
    s->cpu_load_permille = up == 0 ? 0 : (uint16_t)(1000u - (uint64_t)idle_ticks * 1000u / up);
    s->mem_used_kib = (uint32_t)((&_end - &_sdata) + 1023) / 1024u;
    s->mem_total_kib = RAM_KIB;
}

static void on_stats(void *ctx, struct micrun_stats *out) {
    (void)ctx;
    fill_stats(out);
}

/* One command for the shell or an exec: true if known, *code its exit code
 * (-1: keep running). The output goes through `out`. */
static bool command(int argc, const char *const *argv, void (*out)(const char *), int *code) {
    char n1[21], n2[21], n3[21], n4[21];
    *code = 0;
    if (argc == 0) return true;
    if (strcmp(argv[0], "help") == 0) {
        out("commands: help, echo <text>, uptime, stats, exit <code>\r\n");
    } else if (strcmp(argv[0], "echo") == 0) {
        for (int i = 1; i < argc; i++) {
            if (i > 1) out(" ");
            out(argv[i]);
        }
        out("\r\n");
    } else if (strcmp(argv[0], "uptime") == 0) {
        out("uptime ");
        out(dec(now_ms(), n1));
        out(" ms\r\n");
    } else if (strcmp(argv[0], "stats") == 0) {
        struct micrun_stats s;
        fill_stats(&s);
        out("uptime_ms=");
        out(dec(s.uptime_ms, n1));
        out(" cpu_load_permille=");
        out(dec(s.cpu_load_permille, n2));
        out(" mem_used_kib=");
        out(dec(s.mem_used_kib, n3));
        out(" mem_total_kib=");
        out(dec(s.mem_total_kib, n4));
        out("\r\n");
    } else if (strcmp(argv[0], "exit") == 0) {
        if (argc != 2 || !parse_int(argv[1], code)) {
            out("usage: exit <code>\r\n");
            *code = 2;
        }
    } else {
        return false;
    }
    return true;
}

/* Splits line (in place) into at most 8 words. */
static int split(char *line, const char **argv) {
    int argc = 0;
    char *p = line;
    while (*p && argc < 8) {
        while (*p == ' ') *p++ = '\0';
        if (!*p) break;
        argv[argc++] = p;
        while (*p && *p != ' ') p++;
    }
    argv[argc] = NULL;
    return argc;
}

static void run_line(void) {
    const char *argv[9];
    app.line[app.len] = '\0';
    int argc = split(app.line, argv);
    app.len = 0;
    int code;
    if (argc > 0 && strcmp(argv[0], "exit") == 0) {
        if (command(argc, argv, say, &code) && argc == 2) app.exit_code = code;
    } else if (!command(argc, argv, say, &code)) {
        say("unknown command: ");
        say(argv[0]);
        say("\r\n");
    }
    if (app.exit_code < 0) say("m4> ");
}

static void on_input(void *ctx, const uint8_t *data, size_t len) {
    (void)ctx;
    for (size_t i = 0; i < len; i++) {
        char c = (char)data[i];
        if (c == '\r' || c == '\n') {
            say("\r\n");
            run_line();
        } else if ((c == 0x7f || c == '\b') && app.len > 0) {
            app.len--;
            say("\b \b");
        } else if (c >= ' ' && c < 0x7f && app.len + 1 < sizeof app.line) {
            char echo[2] = {c, '\0'};
            app.line[app.len++] = c;
            say(echo);
        }
    }
}

static void on_stop(void *ctx, uint32_t grace_ms) {
    (void)ctx;
    char n[21];
    say("\r\nstop requested (grace ");
    say(dec(grace_ms, n));
    say(" ms): saving state, bye\r\n");
    app.exit_code = 0;
}

static void on_resize(void *ctx, uint16_t rows, uint16_t cols) {
    (void)ctx;
    app.rows = rows;
    app.cols = cols;
}

/* Exec output, from inside the exec hook: as say(). */
static void exec_out(const char *s) {
    (void)micrun_agent_write_exec((const uint8_t *)s, strlen(s));
}

static bool on_exec(void *ctx, int argc, const char *const *argv) {
    (void)ctx;
    int code;
    if (!command(argc, argv, exec_out, &code)) return false;
    micrun_agent_exec_exit(code);
    return true;
}

/* Leaves QEMU: semihosting SYS_EXIT (QEMU runs with semihosting on for this
 * board); without a debugger or semihosting it faults into the idle loop. */
static void power_off(void) {
    register uint32_t op __asm__("r0") = 0x18;         /* SYS_EXIT */
    register uint32_t reason __asm__("r1") = 0x20026u; /* ADP_Stopped_ApplicationExit */
    __asm__ volatile("bkpt 0xab" : "+r"(op) : "r"(reason) : "memory");
}

int main(void) {
    CPACR |= 0xFu << 20; /* the FPU, for code built for eabihf */
    __asm__ volatile("dsb\n isb" ::: "memory");

    SYST_RVR = CPU_HZ / 1000u - 1u;
    SYST_CVR = 0;
    SYST_CSR = 7u; /* processor clock, interrupt, on */

    UART_BAUDDIV = CPU_HZ / 115200u;
    UART_CTRL = 1u | 2u | 8u;
    NVIC_ISER0 = 1u << UART0_RX_IRQ;

    static const struct micrun_agent_config cfg = {
        .ctx = &app,
        .os = "bare-metal-c",
        .board = "mps2-an386",
        .tx = tx,
        .on_stop = on_stop,
        .on_signal = NULL,
        .on_input = on_input,
        .on_resize = on_resize,
        .on_stats = on_stats,
        .on_exec = on_exec,
        .on_exec_signal = NULL,
    };
    if (micrun_agent_init(&cfg) != MICRUN_AGENT_OK) power_off();

    bool greeted = false, reported = false;
    for (;;) {
        __asm__ volatile("cpsid i" ::: "memory");
        uart0_rx_drain();
        __asm__ volatile("cpsie i" ::: "memory");
        while (rx_tail != rx_head) {
            uint8_t b = rx_ring[rx_tail];
            rx_tail = (rx_tail + 1) % sizeof rx_ring;
            micrun_agent_feed(&b, 1);
        }
        micrun_agent_poll(now_ms());
        uint64_t next = micrun_agent_poll_timeout();
        if (!greeted && micrun_agent_connected()) {
            say("micrun C application on mps2-an386 (Cortex-M4)\r\nm4> ");
            greeted = true;
        }
        if (!reported && app.exit_code >= 0 &&
            micrun_agent_exit(app.exit_code, MICRUN_EXIT_NORMAL) == MICRUN_AGENT_OK)
            reported = true;
        if (reported && micrun_agent_exit_delivered()) power_off();
        /* Sleep until an interrupt (a byte, the next tick) unless there is work. */
        __asm__ volatile("cpsid i" ::: "memory");
        if (rx_tail == rx_head && !(UART_STATE & 2u) && next > now_ms()) {
            asleep = true;
            __asm__ volatile("wfi" ::: "memory");
        }
        __asm__ volatile("cpsie i" ::: "memory"); /* the waking interrupt runs here */
        asleep = false;
    }
}
