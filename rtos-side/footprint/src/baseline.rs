//! Footprint baseline: the probe runtime without the agent. Echoes the UART and
//! keeps the millisecond clock running, like the agent firmware's main loop, so
//! that `agent − baseline` is what the agent and the protocol cost.
//!
//! It also links the C runtime's memory routines (`memcpy`, `memset` and the ARM
//! EABI `__aeabi_memclr*` variants), as every RTOS image has them from its libc:
//! they are the platform's, not the agent's, so they belong in the baseline.
#![no_std]
#![no_main]

mod hw;
mod rt;

use hw::{Clock, Uart};

/// Scratch register the loop writes the time to, so the clock is not optimized out.
const SCRATCH: *mut u32 = 0x4000_1004 as *mut u32;

/// Length register for the memory-routine calls: a runtime value, so the
/// compiler must call the routines instead of expanding them inline.
const LEN: *const u32 = 0x4000_1008 as *const u32;

#[repr(C, align(8))]
struct Buffers {
    a: [u64; 16],
    b: [u64; 16],
}

#[no_mangle]
extern "C" fn fw_main() -> ! {
    let mut uart = Uart;
    let mut clock = Clock::new();
    let mut buf = Buffers {
        a: [0; 16],
        b: [0; 16],
    };
    loop {
        let now = clock.now_ms();
        if let Some(b) = uart.try_read() {
            uart.write_byte(b);
        }
        // SAFETY: fixed, always-mapped device registers of the probe board; the
        // copies stay inside `buf` (the length is clamped to its size).
        unsafe {
            core::ptr::write_volatile(SCRATCH, now as u32);
            let n = (core::ptr::read_volatile(LEN) as usize) % 64;
            let a = buf.a.as_mut_ptr() as *mut u8;
            let b = buf.b.as_mut_ptr() as *mut u8;
            core::ptr::copy_nonoverlapping(a.add(1), b.add(3), n); // memcpy
            core::ptr::write_bytes(a.add(1), 0, n); // __aeabi_memclr
            core::ptr::write_bytes(a as *mut u32, 0, n / 4); // __aeabi_memclr4
            core::ptr::write_bytes(b as *mut u64, 0, n / 8); // __aeabi_memclr8
            core::ptr::write_bytes(b.add(5), now as u8, n); // memset
            core::ptr::write_volatile(SCRATCH, core::ptr::read_volatile(a.add(n)) as u32);
        }
    }
}
