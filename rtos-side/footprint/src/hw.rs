//! Memory-mapped "devices" of the probe board: a UART and a free-running
//! millisecond counter. The addresses are made up; all that matters for the
//! measurement is that every access is volatile, so nothing is optimized away.

use core::ptr::{read_volatile, write_volatile};

/// UART data register: reading takes a received byte, writing sends one.
const UART_DATA: *mut u32 = 0x4000_C000 as *mut u32;
/// UART status register.
const UART_STATUS: *const u32 = 0x4000_C004 as *const u32;
/// Status bit: a received byte is waiting in `UART_DATA`.
const UART_RX_READY: u32 = 1 << 0;
/// A SysTick-like free-running counter, incremented every millisecond (wraps).
const MS_COUNTER: *const u32 = 0x4000_1000 as *const u32;

/// The UART. Zero-sized: the registers are fixed addresses.
#[derive(Debug)]
pub struct Uart;

impl Uart {
    /// A received byte, if one is waiting.
    #[inline]
    pub fn try_read(&mut self) -> Option<u8> {
        // SAFETY: fixed, always-mapped device registers of the probe board.
        unsafe {
            if read_volatile(UART_STATUS) & UART_RX_READY != 0 {
                Some(read_volatile(UART_DATA) as u8)
            } else {
                None
            }
        }
    }

    /// Sends one byte.
    #[inline]
    pub fn write_byte(&mut self, b: u8) {
        // SAFETY: as above.
        unsafe { write_volatile(UART_DATA, u32::from(b)) }
    }
}

/// Milliseconds since boot, extended from the 32-bit hardware counter.
#[derive(Debug, Default)]
pub struct Clock {
    last: u32,
    high: u32,
}

impl Clock {
    pub const fn new() -> Self {
        Self { last: 0, high: 0 }
    }

    /// Monotonic milliseconds; call at least once per counter wrap (49 days).
    #[inline]
    pub fn now_ms(&mut self) -> u64 {
        // SAFETY: fixed, always-mapped device register of the probe board.
        let now = unsafe { read_volatile(MS_COUNTER) };
        if now < self.last {
            self.high = self.high.wrapping_add(1);
        }
        self.last = now;
        (u64::from(self.high) << 32) | u64::from(now)
    }
}

/// Scratch register `memory_routines` writes to, so nothing is optimized out.
const SCRATCH: *mut u32 = 0x4000_1004 as *mut u32;

/// Length register for the memory-routine calls: a runtime value, so the
/// compiler must call the routines instead of expanding them inline.
const LEN: *const u32 = 0x4000_1008 as *const u32;

#[repr(C, align(8))]
struct Buffers {
    a: [u64; 16],
    b: [u64; 16],
}

/// Calls the C memory routines with run-time lengths: `memcpy`, `memset` and
/// the ARM EABI `__aeabi_memcpy4/8` and `__aeabi_memclr`/`4`/`8` variants.
/// Every RTOS image has them from its libc, so both probe images link all of
/// them through this one function: the agent share then counts none of them,
/// whichever of them the agent's code happens to call.
#[inline(never)]
pub fn memory_routines(seed: u32) {
    let mut buf = Buffers {
        a: [0; 16],
        b: [0; 16],
    };
    // SAFETY: fixed, always-mapped device registers of the probe board; the
    // copies stay inside `buf` (the length is clamped to its size).
    unsafe {
        let n = (read_volatile(LEN) as usize) % 64;
        let a = buf.a.as_mut_ptr() as *mut u8;
        let b = buf.b.as_mut_ptr() as *mut u8;
        core::ptr::copy_nonoverlapping(a.add(1), b.add(3), n); // memcpy
                                                               // Word pointers 4 bytes into the 8-aligned buffers: 4-aligned, not 8.
        let (a4, b4) = (a.add(4) as *mut u32, b.add(4) as *mut u32);
        core::ptr::copy_nonoverlapping(a4 as *const u32, b4, n / 8); // __aeabi_memcpy4
        core::ptr::copy_nonoverlapping(b as *const u64, a as *mut u64, n / 8); // __aeabi_memcpy8
        core::ptr::write_bytes(a.add(1), 0, n); // __aeabi_memclr
        core::ptr::write_bytes(a4, 0, n / 8); // __aeabi_memclr4
        core::ptr::write_bytes(b as *mut u64, 0, n / 8); // __aeabi_memclr8
        core::ptr::write_bytes(b.add(5), seed as u8, n); // memset
        write_volatile(SCRATCH, read_volatile(a.add(n)) as u32);
    }
}
