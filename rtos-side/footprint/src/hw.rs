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
