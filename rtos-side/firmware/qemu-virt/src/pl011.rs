//! ARM PL011 UART, polled. QEMU ignores the baud rate, so none is set.

use core::ptr::{read_volatile, write_volatile};

/// Where `-M virt` maps its first PL011 (the one `-serial` connects).
pub const VIRT_UART0: usize = 0x0900_0000;
/// GIC interrupt ID of that UART (SPI 1).
pub const VIRT_UART0_INTID: u32 = 33;

const DR: usize = 0x00;
const FR: usize = 0x18;
const LCR_H: usize = 0x2c;
const CR: usize = 0x30;
const IMSC: usize = 0x38;
const ICR: usize = 0x44;

const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;
const LCR_H_FEN: u32 = 1 << 4;
const LCR_H_WLEN8: u32 = 0b11 << 5;
const CR_UARTEN: u32 = 1 << 0;
const CR_TXE: u32 = 1 << 8;
const CR_RXE: u32 = 1 << 9;
const INT_RX: u32 = 1 << 4;
const INT_RT: u32 = 1 << 6;

pub struct Pl011 {
    base: usize,
}

impl Pl011 {
    /// # Safety
    /// `base` must be the MMIO base of a PL011, and nothing else may program it
    /// while this value is used (a panic path that takes over is the exception).
    pub const unsafe fn new(base: usize) -> Self {
        Self { base }
    }

    fn reg_read(&self, off: usize) -> u32 {
        // SAFETY: `new`'s contract: `base + off` is a register of this PL011, and
        // MMIO needs volatile accesses of 32 bits at a 4-byte aligned address.
        unsafe { read_volatile((self.base + off) as *const u32) }
    }

    fn reg_write(&mut self, off: usize, val: u32) {
        // SAFETY: as in `read`.
        unsafe { write_volatile((self.base + off) as *mut u32, val) }
    }

    /// 8N1 with FIFOs, TX and RX on; RX and RX-timeout interrupts unmasked in the
    /// UART only, so the GIC can wake the CPU from `wfi` when a byte arrives.
    pub fn init(&mut self) {
        self.reg_write(CR, 0);
        self.reg_write(ICR, 0x7ff);
        self.reg_write(LCR_H, LCR_H_WLEN8 | LCR_H_FEN);
        self.reg_write(IMSC, INT_RX | INT_RT);
        self.reg_write(CR, CR_UARTEN | CR_TXE | CR_RXE);
    }

    pub fn put(&mut self, byte: u8) {
        while self.reg_read(FR) & FR_TXFF != 0 {
            core::hint::spin_loop();
        }
        self.reg_write(DR, u32::from(byte));
    }

    pub fn write_all(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.put(b);
        }
    }

    pub fn rx_ready(&self) -> bool {
        self.reg_read(FR) & FR_RXFE == 0
    }

    /// Non-blocking: one received byte, if any (error bits are dropped).
    pub fn get(&mut self) -> Option<u8> {
        if self.rx_ready() {
            Some((self.reg_read(DR) & 0xff) as u8)
        } else {
            None
        }
    }

    /// Non-blocking: as many received bytes as fit in `buf`.
    pub fn read_into(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        while n < buf.len() {
            match self.get() {
                Some(b) => {
                    buf[n] = b;
                    n += 1;
                }
                None => break,
            }
        }
        n
    }
}

impl core::fmt::Write for Pl011 {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.write_all(s.as_bytes());
        Ok(())
    }
}

/// The shell's console in raw mode: QEMU's PL011 takes every byte at once.
impl micrun_rtos::demo::Console for Pl011 {
    fn write(&mut self, data: &[u8]) -> usize {
        self.write_all(data);
        data.len()
    }
}
