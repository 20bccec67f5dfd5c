//! ARM generic timer: the clock (CNTPCT_EL0 / CNTFRQ_EL0) and a one-shot wake-up
//! through the EL1 physical timer (CNTP_*), whose PPI reaches the GIC as INTID 30.

use core::arch::asm;

/// GIC interrupt ID of the EL1 non-secure physical timer (PPI 14).
pub const PHYS_TIMER_INTID: u32 = 30;

pub fn counter() -> u64 {
    let v: u64;
    // SAFETY: reading CNTPCT_EL0 has no side effect and is allowed at EL1. The
    // `isb` keeps the read from being hoisted above earlier instructions.
    unsafe { asm!("isb", "mrs {}, cntpct_el0", out(reg) v, options(nomem, nostack)) };
    v
}

pub fn frequency() -> u64 {
    let v: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effect and is allowed at EL1.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) v, options(nomem, nostack)) };
    v
}

pub struct Clock {
    freq: u64,
    start: u64,
}

impl Clock {
    /// Starts counting milliseconds from now. QEMU sets CNTFRQ_EL0; a zero (no
    /// firmware set it) is treated as 1 Hz rather than dividing by zero.
    pub fn new() -> Self {
        Self {
            freq: frequency().max(1),
            start: counter(),
        }
    }

    pub fn ticks(&self) -> u64 {
        counter().wrapping_sub(self.start)
    }

    pub fn ticks_to_ms(&self, ticks: u64) -> u64 {
        (ticks / self.freq) * 1000 + (ticks % self.freq) * 1000 / self.freq
    }

    pub fn ms_to_ticks(&self, ms: u64) -> u64 {
        (ms / 1000) * self.freq + (ms % 1000) * self.freq / 1000
    }

    pub fn uptime_ms(&self) -> u64 {
        self.ticks_to_ms(self.ticks())
    }
}

/// Arms the physical timer to fire (raise its level interrupt) at absolute counter
/// value `deadline`.
pub fn arm(deadline: u64) {
    // SAFETY: CNTP_CVAL_EL0 and CNTP_CTL_EL0 are EL1-accessible timer registers that
    // only this module programs; ENABLE=1, IMASK=0 drives the PPI, which is masked
    // at PSTATE (DAIF.I) so it can only end a `wfi`, never take an exception.
    unsafe {
        asm!(
            "msr cntp_cval_el0, {d}",
            "msr cntp_ctl_el0, {ctl}",
            "isb",
            d = in(reg) deadline,
            ctl = in(reg) 1u64,
            options(nomem, nostack),
        )
    };
}

pub fn disarm() {
    // SAFETY: as in `arm`; ENABLE=0 drops the timer's interrupt line.
    unsafe { asm!("msr cntp_ctl_el0, xzr", "isb", options(nomem, nostack)) };
}
