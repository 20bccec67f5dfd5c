//! The smallest Cortex-M runtime that runs Rust: a vector table, a reset handler
//! that copies `.data`, zeroes `.bss`, enables the FPU and calls `fw_main`, and a
//! panic handler that does not format (so no `core::fmt` machinery is linked).
//! On RISC-V (riscv32imac, reported beside the Cortex-M figures) the same reset
//! in RISC-V assembly, behind a one-instruction jump at the image start.
//!
//! Both probe firmwares include this module unchanged, so it cancels out of the
//! agent's share.

use core::panic::PanicInfo;

// Vector table (ARMv7-M): initial SP, Reset, then the 14 system exceptions
// (NMI, HardFault, MemManage, BusFault, UsageFault, 4 reserved, SVCall,
// DebugMonitor, reserved, PendSV, SysTick). No device interrupts: the probe polls.
//
// Reset is in assembly because .data and .bss are not valid before it has run.
#[cfg(target_arch = "arm")]
core::arch::global_asm!(
    r#"
    .section .vector_table, "a", %progbits
    .p2align 2
    .global __vector_table
__vector_table:
    .word _stack_start
    .word Reset
    .word DefaultHandler
    .word DefaultHandler
    .word DefaultHandler
    .word DefaultHandler
    .word DefaultHandler
    .word 0
    .word 0
    .word 0
    .word 0
    .word DefaultHandler
    .word DefaultHandler
    .word 0
    .word DefaultHandler
    .word DefaultHandler
    .size __vector_table, . - __vector_table

    .section .text.Reset, "ax", %progbits
    .p2align 1
    .global Reset
    .type Reset, %function
    .thumb_func
Reset:
    ldr r0, =__sbss
    ldr r1, =__ebss
    movs r2, #0
1:  cmp r0, r1
    bhs 2f
    str r2, [r0], #4
    b 1b
2:  ldr r0, =__sdata
    ldr r1, =__edata
    ldr r2, =__sidata
3:  cmp r0, r1
    bhs 4f
    ldr r3, [r2], #4
    str r3, [r0], #4
    b 3b
4:  ldr r0, =0xE000ED88
    ldr r1, [r0]
    orr r1, r1, #(0xF << 20)
    str r1, [r0]
    dsb
    isb
    bl fw_main
    udf #0
    .ltorg
    .size Reset, . - Reset

    .section .text.DefaultHandler, "ax", %progbits
    .p2align 1
    .global DefaultHandler
    .type DefaultHandler, %function
    .thumb_func
DefaultHandler:
    b DefaultHandler
    .size DefaultHandler, . - DefaultHandler
"#
);

#[cfg(target_arch = "riscv32")]
core::arch::global_asm!(
    r#"
    .section .vector_table, "ax", %progbits
    .global __vector_table
__vector_table:
    j Reset

    .section .text.Reset, "ax", %progbits
    .global Reset
    .type Reset, %function
Reset:
    la sp, _stack_start
    la t0, __sbss
    la t1, __ebss
1:  bgeu t0, t1, 2f
    sw zero, 0(t0)
    addi t0, t0, 4
    j 1b
2:  la t0, __sdata
    la t1, __edata
    la t2, __sidata
3:  bgeu t0, t1, 4f
    lw t3, 0(t2)
    sw t3, 0(t0)
    addi t0, t0, 4
    addi t2, t2, 4
    j 3b
4:  call fw_main
5:  j 5b
    .size Reset, . - Reset
"#
);

/// Panics stop the core without formatting the message: `PanicInfo` is never read,
/// so LTO drops the `fmt::Arguments` that panicking call sites build.
#[panic_handler]
fn panic(_info: &PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}
