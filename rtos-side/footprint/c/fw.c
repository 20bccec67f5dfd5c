/* SPDX-License-Identifier: MulanPSL-2.0 */
/*
 * Footprint probe, C path: a minimal Cortex-M4 C firmware on the agent's C ABI
 * (include/micrun_agent.h, the `capi` static library), the way a C RTOS links it.
 *
 * Built twice by measure.sh with arm-none-eabi-gcc and newlib:
 *   - without MICRUN_FP_AGENT: the baseline. Vector table, reset (copy .data,
 *     zero .bss, enable the FPU), a UART echo, a millisecond clock and the C
 *     library's memcpy/memmove/memset with run-time lengths;
 *   - with MICRUN_FP_AGENT: the same runtime, UART, clock and C library use,
 *     driving the agent: handshake, console output (stdout, stderr) and input,
 *     stats, stop, exit, log, and with MICRUN_FP_EXEC (the library built with
 *     the `exec` feature) exec (a command with output and an exit code, a
 *     signal ending it): everything the Rust probe (src/agent.rs) uses.
 * agent - baseline is what the agent costs a C firmware.
 *
 * The devices are the Rust probe's (src/hw.rs): UART data at 0x4000_C000,
 * status at 0x4000_C004 (bit 0: a byte is waiting), a free-running millisecond
 * counter at 0x4000_1000. Nothing runs it; every access is volatile so nothing
 * is optimized away.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef MICRUN_FP_AGENT
#include "micrun_agent.h"
#endif

#define UART_DATA (*(volatile uint32_t *)0x4000C000u)
#define UART_STATUS (*(volatile uint32_t *)0x4000C004u)
#define UART_RX_READY 1u
#define MS_COUNTER (*(volatile uint32_t *)0x40001000u)
/* Scratch and length registers: keep results alive, give run-time lengths. */
#define SCRATCH (*(volatile uint32_t *)0x40001004u)
#define LEN (*(volatile uint32_t *)0x40001008u)

extern uint32_t __sbss, __ebss, __sdata, __edata, __sidata, _stack_start;

void Reset(void);
void DefaultHandler(void);
int main(void);

__attribute__((section(".vector_table"), used)) static void *const vectors[16] = {
    &_stack_start,  Reset,          DefaultHandler, DefaultHandler,
    DefaultHandler, DefaultHandler, DefaultHandler, 0,
    0,              0,              0,              DefaultHandler,
    DefaultHandler, 0,              DefaultHandler, DefaultHandler,
};

void DefaultHandler(void) {
    for (;;) {
    }
}

__attribute__((noreturn)) void Reset(void) {
    for (uint32_t *p = &__sbss; p < &__ebss; p++) *p = 0;
    const uint32_t *src = &__sidata;
    for (uint32_t *p = &__sdata; p < &__edata; p++) *p = *src++;
    /* CPACR: full access to CP10 and CP11 (the FPU). */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm volatile("dsb\n\tisb" ::: "memory");
    main();
    for (;;) {
    }
}

static int uart_getc(void) {
    return (UART_STATUS & UART_RX_READY) ? (int)(UART_DATA & 0xFF) : -1;
}

static void uart_write(const uint8_t *data, size_t len) {
    while (len--) UART_DATA = *data++;
}

/* Milliseconds since boot, extended from the 32-bit counter. */
static uint64_t now_ms(void) {
    static uint32_t last, high;
    uint32_t now = MS_COUNTER;
    if (now < last) high++;
    last = now;
    return ((uint64_t)high << 32) | now;
}

/* The Arm run-time ABI's memory routines (newlib has them; compilers call them). */
void __aeabi_memclr(void *dest, size_t n);
void __aeabi_memset(void *dest, size_t n, int c);

/* The C library's string and memory routines with run-time lengths, as every C
 * firmware has them (the Rust baseline links the same set): the platform's
 * cost, in both images. */
static void libc_use(uint32_t now) {
    static uint64_t a[16], b[16];
    size_t n = LEN % 64;
    memcpy((uint8_t *)b + 3, (uint8_t *)a + 1, n);
    memmove((uint8_t *)a + 2, (uint8_t *)a + 1, n);
    memset((uint8_t *)b + 5, (int)now, n);
    __aeabi_memclr((uint8_t *)a + 1, n);
    __aeabi_memset((uint8_t *)b + 1, n, (int)now);
    ((uint8_t *)a)[127] = 0;
    SCRATCH = ((uint8_t *)a)[n] + ((uint8_t *)b)[n] + strlen((const char *)a + 3);
}

#ifndef MICRUN_FP_AGENT

int main(void) {
    for (;;) {
        uint32_t now = (uint32_t)now_ms();
        int c = uart_getc();
        if (c >= 0) {
            uint8_t b = (uint8_t)c;
            uart_write(&b, 1);
        }
        SCRATCH = now;
        libc_use(now);
    }
}

#else

/* The probe application: a variable of main, reached through the callbacks' ctx. */
struct app {
    int exec_argc; /* > 0: an exec runs with this many arguments */
    uint8_t exec_signo;
};

static void tx(void *ctx, const uint8_t *data, size_t len) {
    (void)ctx;
    uart_write(data, len);
}

/* The stop hook: the application ends at once with 143 (128 + SIGTERM). */
static void on_stop(void *ctx, uint32_t grace_ms) {
    (void)ctx;
    (void)grace_ms;
    micrun_agent_exit(143, MICRUN_EXIT_NORMAL);
}

/* Whether data[0..len] holds `byte` (a loop, not memchr: the same C library
 * use as the baseline). */
static bool has(const uint8_t *data, size_t len, uint8_t byte) {
    for (size_t i = 0; i < len; i++)
        if (data[i] == byte) return true;
    return false;
}

/* Console input: echo it; `q` ends the application, `!` complains on stderr. */
static void on_input(void *ctx, const uint8_t *data, size_t len) {
    (void)ctx;
    micrun_agent_write(MICRUN_STDOUT, data, len);
    if (has(data, len, '!')) micrun_agent_write(MICRUN_STDERR, (const uint8_t *)"probe: bang\n", 12);
    if (has(data, len, 'q')) {
        micrun_agent_write(MICRUN_STDOUT, (const uint8_t *)"bye\n", 4);
        micrun_agent_exit(0, MICRUN_EXIT_NORMAL);
    }
}

static void on_stats(void *ctx, struct micrun_stats *out) {
    (void)ctx;
    out->cpu_load_permille = 10;
    out->mem_used_kib = 4;
    out->mem_total_kib = 64;
}

#ifdef MICRUN_FP_EXEC
/* One command: anything starting with `e` ("echo"); the rest are unknown. */
static bool on_exec(void *ctx, int argc, const char *const *argv) {
    struct app *app = ctx;
    if (argc < 1 || argv[0][0] != 'e') return false;
    app->exec_argc = argc;
    app->exec_signo = 0;
    return true;
}

static void on_exec_signal(void *ctx, uint8_t signo) {
    ((struct app *)ctx)->exec_signo = signo;
}
#endif

int main(void) {
    static const uint8_t up[] = "footprint probe up\n";
    struct app app = {0};
    /* The agent keeps a pointer to its config: main never returns. */
    const struct micrun_agent_config config = {
        .ctx = &app,
        .os = "bare-metal",
        .board = "footprint-m4",
        .tx = tx,
        .on_stop = on_stop,
        .on_input = on_input,
        .on_stats = on_stats,
#ifdef MICRUN_FP_EXEC
        .on_exec = on_exec,
        .on_exec_signal = on_exec_signal,
#endif
    };
    bool greeted = false;
    micrun_agent_init(&config);
    micrun_agent_write(MICRUN_STDOUT, up, sizeof up - 1);
    for (;;) {
        uint64_t now = now_ms();
        uint8_t rx[64];
        size_t n = 0;
        int c;
        while (n < sizeof rx && (c = uart_getc()) >= 0) rx[n++] = (uint8_t)c;
        if (n > 0) micrun_agent_feed(rx, n);
        micrun_agent_poll(now);

        if (micrun_agent_connected() && !greeted)
            greeted = micrun_agent_log(2, "probe connected") == MICRUN_AGENT_OK;
#ifdef MICRUN_FP_EXEC
        /* The exec: its output, then its end (its argument count, or 128 + signo). */
        if (app.exec_argc > 0) {
            if (app.exec_signo != 0) {
                micrun_agent_exec_exit(128 + app.exec_signo);
                app.exec_argc = 0;
            } else if (micrun_agent_write_exec((const uint8_t *)"probe: exec\n", 12) > 0) {
                micrun_agent_exec_exit(app.exec_argc);
                app.exec_argc = 0;
            }
        }
#endif
        if (micrun_agent_exit_delivered()) {
            /* A real firmware powers off here; the probe idles. */
            for (;;) {
            }
        }
        libc_use((uint32_t)now);
    }
}

#endif
