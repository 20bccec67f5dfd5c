//! Reset entry and exception vectors.
//!
//! QEMU's `-kernel fw.elf` loads the ELF segments at their physical addresses and
//! starts every CPU at the ELF entry at EL1h with the MMU and caches off and DAIF
//! masked. With `-M virt` (no EL2/EL3) and `-smp N` the secondaries stay powered off
//! under PSCI, so only CPU 0 normally gets here; any other core is parked anyway.

use core::arch::global_asm;

global_asm!(
    r#"
    .section .text.boot, "ax"
    .global _start
    .type _start, %function
_start:
    // x0 holds what QEMU passes (a device-tree pointer for Linux-style boots); keep it.
    // Park every core whose MPIDR affinity (Aff3..Aff0) is not zero.
    mrs     x19, mpidr_el1
    mov     x20, #0xffffff
    movk    x20, #0xff, lsl #32
    tst     x19, x20
    b.ne    2f

    msr     daifset, #0xf

    // Stack: 64 KiB reserved by link.x, full-descending.
    adrp    x1, __stack_top
    add     x1, x1, :lo12:__stack_top
    mov     sp, x1

    // Zero .bss (16-byte aligned and sized by link.x).
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
1:  cmp     x1, x2
    b.hs    3f
    stp     xzr, xzr, [x1], #16
    b       1b
3:
    // FP/SIMD: CPACR_EL1.FPEN = 0b11, Rust code may use the vector registers.
    mov     x1, #(3 << 20)
    msr     cpacr_el1, x1
    // Exception vectors, so a fault is reported instead of looping silently.
    adrp    x1, __vectors
    add     x1, x1, :lo12:__vectors
    msr     vbar_el1, x1
    isb

    bl      {main}
    // main never returns; fall through to parking if it ever did.
2:  wfe
    b       2b
    .size _start, . - _start

    // Vector table: 16 entries of 0x80 bytes, 2 KiB aligned. Every exception is
    // fatal here (interrupts stay masked; the firmware only polls).
    .section .text.vectors, "ax"
    .balign 0x800
    .global __vectors
__vectors:
    .set    vec_idx, 0
    .rept   16
    .balign 0x80
    mov     x0, #vec_idx
    mrs     x1, esr_el1
    mrs     x2, elr_el1
    mrs     x3, far_el1
    b       {fault}
    .set    vec_idx, vec_idx + 1
    .endr
"#,
    main = sym crate::firmware_main,
    fault = sym fatal_exception,
);

/// Called from the vector table for any exception: report it and power off.
extern "C" fn fatal_exception(vector: u64, esr: u64, elr: u64, far: u64) -> ! {
    panic!("exception (vector {vector}, ESR_EL1 {esr:#x}, ELR_EL1 {elr:#x}, FAR_EL1 {far:#x})");
}
