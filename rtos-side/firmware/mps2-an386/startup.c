/* SPDX-License-Identifier: MulanPSL-2.0 */
/* Start-up for the Cortex-M4 application: the vector table (the CPU reads the
 * initial stack pointer and the reset handler from address 0), copying .data,
 * zeroing .bss, then main(). */
#include <stdint.h>
#include <string.h>

extern uint8_t _sidata, _sdata, _edata, _sbss, _ebss, _stack_top;
int main(void);
void systick_handler(void);
void uart0_rx_handler(void);

void reset_handler(void) {
    memcpy(&_sdata, &_sidata, (size_t)(&_edata - &_sdata));
    memset(&_sbss, 0, (size_t)(&_ebss - &_sbss));
    main();
    for (;;) __asm__ volatile("wfi");
}

/* A fault (or a semihosting call without semihosting) parks the CPU; the host
 * sees the agent go silent and ends the container. */
static void park(void) {
    for (;;) __asm__ volatile("wfi");
}

__attribute__((section(".vectors"), used)) static void (*const vectors[])(void) = {
    (void (*)(void))(uintptr_t)&_stack_top,
    reset_handler,
    park, /* NMI */
    park, /* HardFault */
    park, /* MemManage */
    park, /* BusFault */
    park, /* UsageFault */
    0, 0, 0, 0,
    park, /* SVCall */
    park, /* DebugMon */
    0,
    park, /* PendSV */
    systick_handler,
    uart0_rx_handler, /* IRQ 0: UART0 RX */
};
