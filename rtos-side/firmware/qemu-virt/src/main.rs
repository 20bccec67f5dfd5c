//! micrun demo RTOS firmware for `qemu-system-aarch64 -M virt -cpu cortex-a53`.
//!
//! Runs the demo shell of `micrun-rtos` on the first PL011 UART: behind the micrun
//! agent by default, or with console bytes straight on the UART with the `raw`
//! feature. See README.md for building and running it.
#![no_std]
#![no_main]

#[cfg(not(feature = "raw"))]
mod agent_mode;
mod app;
mod board;
mod boot;
mod fdt;
mod gic;
mod pl011;
mod power;
#[cfg(feature = "raw")]
mod raw_mode;
mod timer;

/// Entered from `boot.rs` on CPU 0 with a stack, zeroed .bss and FP/SIMD on.
extern "C" fn firmware_main(boot_x0: usize) -> ! {
    // SAFETY: called once, on the boot CPU, before anything else touches devices.
    let (board, uart) = unsafe { board::Board::init(boot_x0) };
    #[cfg(feature = "raw")]
    raw_mode::run_raw(board, uart);
    #[cfg(not(feature = "raw"))]
    agent_mode::run_agent(board, uart);
}
