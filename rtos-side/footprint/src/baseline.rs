//! Footprint baseline: the probe runtime without the agent. Echoes the UART and
//! keeps the millisecond clock running, like the agent firmware's main loop, so
//! that `agent − baseline` is what the agent and the protocol cost.
//!
//! It also links the C runtime's memory routines (`hw::memory_routines`, which
//! the agent firmware calls too), as every RTOS image has them from its libc:
//! they are the platform's, not the agent's, so they belong in the baseline.
#![no_std]
#![no_main]

mod hw;
mod rt;

use hw::{Clock, Uart};

/// Scratch register the loop writes the time to, so the clock is not optimized out.
const SCRATCH: *mut u32 = 0x4000_1004 as *mut u32;

#[no_mangle]
extern "C" fn fw_main() -> ! {
    let mut uart = Uart;
    let mut clock = Clock::new();
    loop {
        let now = clock.now_ms();
        if let Some(b) = uart.try_read() {
            uart.write_byte(b);
        }
        // SAFETY: a fixed, always-mapped device register of the probe board.
        unsafe { core::ptr::write_volatile(SCRATCH, now as u32) };
        hw::memory_routines(now as u32);
    }
}
