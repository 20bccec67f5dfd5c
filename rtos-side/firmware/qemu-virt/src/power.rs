//! Power off through PSCI, and the panic handler.

use core::arch::asm;
use core::fmt::Write;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::pl011::{Pl011, VIRT_UART0};

const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;

/// PSCI SYSTEM_OFF. `-M virt` without EL2/EL3 implements PSCI in QEMU with the HVC
/// conduit; QEMU then exits with status 0.
pub fn power_off() -> ! {
    // SAFETY: an `hvc #0` PSCI call with x0 = SYSTEM_OFF; it does not return when
    // PSCI is there. x0-x3 may be clobbered per the SMC calling convention.
    unsafe {
        asm!(
            "hvc #0",
            inout("x0") PSCI_SYSTEM_OFF => _,
            out("x1") _, out("x2") _, out("x3") _,
            options(nomem, nostack),
        )
    };
    // No PSCI (or it failed): stop here, quietly.
    loop {
        // SAFETY: `wfi` only waits; interrupts are masked, so nothing is taken.
        unsafe { asm!("wfi", options(nomem, nostack)) };
    }
}

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    if PANICKING.swap(true, Ordering::Relaxed) {
        // A panic while reporting a panic: do not recurse.
        power_off();
    }
    // SAFETY: the main loop owns the UART, but it will never run again; the panic
    // handler is the only code running from here on (single core, no interrupts).
    let mut uart = unsafe { Pl011::new(VIRT_UART0) };
    let _ = write!(uart, "\r\nPANIC: {}", info.message());
    if let Some(loc) = info.location() {
        let _ = write!(uart, " at {}:{}:{}", loc.file(), loc.line(), loc.column());
    }
    let _ = uart.write_str("\r\n");
    power_off()
}
