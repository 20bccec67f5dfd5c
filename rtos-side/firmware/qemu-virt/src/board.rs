//! The QEMU `virt` board as the firmware sees it: clock, sleep-until-something-
//! happens, memory figures and a CPU load meter. The console UART is handed out
//! separately by [`Board::init`] so that the shell can borrow both at once.

use core::arch::asm;

use crate::fdt;
use crate::gic::{Gic, VIRT_GICC, VIRT_GICD};
use crate::pl011::{Pl011, VIRT_UART0, VIRT_UART0_INTID};
use crate::timer::{self, Clock, PHYS_TIMER_INTID};

/// Start of RAM on `-M virt`.
const RAM_BASE: usize = 0x4000_0000;
/// Longest sleep of the idle loop. UART input ends a sleep at once; this bounds how
/// late anything timer-driven can be, and how often an idle guest wakes its host
/// (`check-raw.py` measures the host CPU that costs).
pub const IDLE_TICK_MS: u64 = 10;
/// Length of a CPU load measurement window.
const LOAD_WINDOW_MS: u64 = 1000;

extern "C" {
    static __image_start: u8;
    static __image_end: u8;
}

fn image_range() -> (usize, usize) {
    (
        (&raw const __image_start) as usize,
        (&raw const __image_end) as usize,
    )
}

pub struct Board {
    gic: Option<Gic>,
    clock: Clock,
    mem_total_kib: u32,
    mem_used_kib: u32,
    /// Counter value at which the current load window started.
    window_start: u64,
    /// Ticks spent asleep in the current window.
    window_idle: u64,
    load_permille: u16,
}

impl Board {
    /// Brings the board up and returns it with its console UART. `boot_x0` is x0
    /// as QEMU left it at entry.
    ///
    /// # Safety
    /// Call once, from the boot CPU: it takes the UART and GIC for itself.
    pub unsafe fn init(boot_x0: usize) -> (Self, Pl011) {
        let clock = Clock::new();
        // SAFETY: the virt UART0 base; the caller guarantees we are its only user.
        let mut uart = unsafe { Pl011::new(VIRT_UART0) };
        uart.init();
        // SAFETY: the virt GICv2 bases; the caller guarantees we are the only user.
        let mut gic = unsafe { Gic::probe(VIRT_GICD, VIRT_GICC) };
        if let Some(gic) = gic.as_mut() {
            gic.init(&[PHYS_TIMER_INTID, VIRT_UART0_INTID]);
        }
        let (start, end) = image_range();
        let mem_total = find_dtb(boot_x0)
            .and_then(fdt::memory_size)
            .unwrap_or((end - RAM_BASE) as u64);
        let window_start = timer::counter();
        let board = Self {
            gic,
            clock,
            mem_total_kib: u32::try_from(mem_total / 1024).unwrap_or(u32::MAX),
            mem_used_kib: u32::try_from((end - start) / 1024).unwrap_or(u32::MAX),
            window_start,
            window_idle: 0,
            load_permille: 0,
        };
        (board, uart)
    }

    pub fn uptime_ms(&self) -> u64 {
        self.clock.uptime_ms()
    }

    pub fn mem_total_kib(&self) -> u32 {
        self.mem_total_kib
    }

    /// The image (code, data, bss and stack); there is no heap.
    pub fn mem_used_kib(&self) -> u32 {
        self.mem_used_kib
    }

    /// Busy share of the last complete measurement window, 0..=1000.
    pub fn load_permille(&self) -> u16 {
        self.load_permille
    }

    /// Closes the load window if it is over; call often (the idle path does).
    pub fn update_load(&mut self) {
        self.account(timer::counter());
    }

    fn account(&mut self, now: u64) {
        let window = self.clock.ms_to_ticks(LOAD_WINDOW_MS).max(1);
        let elapsed = now.wrapping_sub(self.window_start);
        if elapsed >= window {
            let busy = elapsed.saturating_sub(self.window_idle);
            self.load_permille = (busy.saturating_mul(1000) / elapsed).min(1000) as u16;
            self.window_start = now;
            self.window_idle = 0;
        }
    }

    /// Called when the main loop found nothing to do: sleeps until a byte arrives
    /// on `uart` or `max_ms` (at most [`IDLE_TICK_MS`]) pass. Without a GICv2 it
    /// only spins once.
    pub fn idle(&mut self, uart: &Pl011, max_ms: u64) {
        let before = timer::counter();
        self.account(before);
        let Some(gic) = self.gic.as_mut() else {
            core::hint::spin_loop();
            return;
        };
        let ms = max_ms.min(IDLE_TICK_MS);
        if ms == 0 {
            return;
        }
        timer::arm(before + self.clock.ms_to_ticks(ms));
        gic.clear_pending();
        if !uart.rx_ready() {
            // SAFETY: `wfi` only waits for a pending interrupt; PSTATE.I is set so
            // none is taken, execution simply continues after it.
            unsafe { asm!("wfi", options(nomem, nostack)) };
        }
        timer::disarm();
        let after = timer::counter();
        self.window_idle += after.wrapping_sub(before);
    }

    /// Stops servicing anything, for good, without burning the host's CPU.
    pub fn hang(&mut self) -> ! {
        timer::disarm();
        if let Some(gic) = self.gic.as_mut() {
            gic.disable();
        }
        loop {
            // SAFETY: as in `idle`; with the GIC off nothing ends the wait.
            unsafe { asm!("wfi", options(nomem, nostack)) };
        }
    }
}

/// The device tree QEMU passed: at x0 (Linux-style boot) or, for a bare ELF, at the
/// start of RAM. Only blobs wholly between RAM_BASE and the image are believed, so
/// reading them can never touch unmapped memory or the firmware itself.
fn find_dtb(boot_x0: usize) -> Option<&'static [u8]> {
    let (image_start, _) = image_range();
    [boot_x0, RAM_BASE].into_iter().find_map(|addr| {
        if addr < RAM_BASE || addr % 8 != 0 || addr + 8 > image_start {
            return None;
        }
        // SAFETY: [addr, addr+8) lies in RAM below the image (checked above); RAM is
        // always readable with the MMU off, and nothing writes there.
        let head: &[u8; 8] = unsafe { &*(addr as *const [u8; 8]) };
        let total = fdt::header_total_size(head)?;
        if addr + total > image_start {
            return None;
        }
        // SAFETY: as above, for [addr, addr+total), still below the image.
        Some(unsafe { core::slice::from_raw_parts(addr as *const u8, total) })
    })
}
