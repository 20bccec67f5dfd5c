//! Just enough GICv2 to let a masked interrupt end a `wfi`.
//!
//! The firmware never takes interrupts (PSTATE.I stays set); it only wants the CPU
//! to sleep until a UART byte arrives or a wake-up deadline passes, instead of
//! spinning the host CPU at 100 %. A pending interrupt ends `wfi` even while masked.
//! Pending interrupts are acknowledged and completed by polling GICC_IAR/GICC_EOIR,
//! because QEMU's GIC latches a level interrupt as pending until it is acknowledged.

use core::ptr::{read_volatile, write_volatile};

/// `-M virt` GICv2 distributor and CPU interface.
pub const VIRT_GICD: usize = 0x0800_0000;
pub const VIRT_GICC: usize = 0x0801_0000;

const GICD_CTLR: usize = 0x000;
const GICD_ISENABLER: usize = 0x100;
const GICD_ICENABLER: usize = 0x180;
const GICD_ICPENDR: usize = 0x280;
const GICD_IPRIORITYR: usize = 0x400;
const GICD_ITARGETSR: usize = 0x800;
const GICD_PIDR2: usize = 0xfe8;
const GICC_CTLR: usize = 0x000;
const GICC_PMR: usize = 0x004;
const GICC_IAR: usize = 0x00c;
const GICC_EOIR: usize = 0x010;

const SPURIOUS: u32 = 1023;

pub struct Gic {
    gicd: usize,
    gicc: usize,
}

impl Gic {
    /// Returns `None` unless the distributor identifies as GICv1/v2 (e.g. when QEMU
    /// runs with `gic-version=3`); the caller then polls without sleeping.
    ///
    /// # Safety
    /// `gicd`/`gicc` must be the GIC's distributor and CPU interface MMIO bases,
    /// used by nothing else.
    pub unsafe fn probe(gicd: usize, gicc: usize) -> Option<Self> {
        let gic = Self { gicd, gicc };
        let arch_rev = (gic.dist_read(GICD_PIDR2) >> 4) & 0xf;
        matches!(arch_rev, 1 | 2).then_some(gic)
    }

    fn dist_read(&self, off: usize) -> u32 {
        // SAFETY: `probe`'s contract: `gicd + off` is a 4-byte aligned distributor
        // register (callers pass the offsets defined above).
        unsafe { read_volatile((self.gicd + off) as *const u32) }
    }

    fn dist_write(&mut self, off: usize, val: u32) {
        // SAFETY: as in `dist_read`.
        unsafe { write_volatile((self.gicd + off) as *mut u32, val) }
    }

    fn cpu_read(&self, off: usize) -> u32 {
        // SAFETY: `probe`'s contract: `gicc + off` is a 4-byte aligned CPU
        // interface register (callers pass the offsets defined above).
        unsafe { read_volatile((self.gicc + off) as *const u32) }
    }

    fn cpu_write(&mut self, off: usize, val: u32) {
        // SAFETY: as in `cpu_read`.
        unsafe { write_volatile((self.gicc + off) as *mut u32, val) }
    }

    /// Routes `intids` to CPU 0 at the highest priority and enables them.
    pub fn init(&mut self, intids: &[u32]) {
        self.dist_write(GICD_CTLR, 0);
        for &id in intids {
            let (word, bit) = ((id / 32) as usize * 4, id % 32);
            self.dist_write(GICD_ICENABLER + word, 1 << bit);
            self.dist_write(GICD_ICPENDR + word, 1 << bit);
            // Priority and target are byte registers; rewrite the containing word.
            let byte_shift = (id % 4) * 8;
            let word4 = (id / 4) as usize * 4;
            let prio = self.dist_read(GICD_IPRIORITYR + word4) & !(0xff << byte_shift);
            self.dist_write(GICD_IPRIORITYR + word4, prio);
            if id >= 32 {
                let targets = self.dist_read(GICD_ITARGETSR + word4) & !(0xff << byte_shift);
                self.dist_write(GICD_ITARGETSR + word4, targets | (1 << byte_shift));
            }
            self.dist_write(GICD_ISENABLER + word, 1 << bit);
        }
        self.cpu_write(GICC_PMR, 0xff);
        self.cpu_write(GICC_CTLR, 1);
        self.dist_write(GICD_CTLR, 1);
    }

    /// Acknowledges and completes everything pending, so only interrupt lines that
    /// are still high (or go high later) can end the next `wfi`.
    pub fn clear_pending(&mut self) {
        // Bounded: at most one acknowledge per possible interrupt ID.
        for _ in 0..1020 {
            let iar = self.cpu_read(GICC_IAR);
            if iar & 0x3ff == SPURIOUS {
                break;
            }
            self.cpu_write(GICC_EOIR, iar);
        }
    }

    /// Stops all wake-ups (used by `hang`, so a hung partition sleeps for good).
    pub fn disable(&mut self) {
        self.dist_write(GICD_CTLR, 0);
        self.cpu_write(GICC_CTLR, 0);
    }
}
