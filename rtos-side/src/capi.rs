//! C ABI for C RTOSes (UniProton, Zephyr, bare-metal C), behind the `capi` feature.
//!
//! One agent per partition, held in static storage (no allocator): the RTOS calls
//! [`micrun_agent_init`] once with its callbacks, hands received link bytes to
//! [`micrun_agent_feed`], calls [`micrun_agent_poll`] from its main loop or a timer
//! (at the latest at the time it returns), and writes console output with
//! [`micrun_agent_write`]. Build the static library with
//! `cargo rustc -p micrun-rtos --release --target <t> --features capi,panic-handler --crate-type staticlib`;
//! the header is `include/micrun_agent.h`.
//!
//! Threading: every function must be called from one thread (task) at a time.
//! Callbacks other than `tx` and `on_stats` run after the agent's internal work is
//! done, so they may call `micrun_agent_write` / `micrun_agent_exit`; `tx` and
//! `on_stats` must not call back into the agent (such calls fail with
//! [`MICRUN_AGENT_EBUSY`] or do nothing).
#![allow(unsafe_code)]
#![allow(non_camel_case_types)]

use core::cell::{Cell, UnsafeCell};
use core::ffi::{c_char, c_void, CStr};

use crate::{Agent, AgentInfo, App, ExitReason, Link, LogLevel, Stats};

/// Success.
pub const MICRUN_AGENT_OK: i32 = 0;
/// A null pointer or an out-of-range argument.
pub const MICRUN_AGENT_EINVAL: i32 = -22;
/// [`micrun_agent_init`] has not been called.
pub const MICRUN_AGENT_ENOTINIT: i32 = -19;
/// Called from inside a `tx` or `on_stats` callback.
pub const MICRUN_AGENT_EBUSY: i32 = -16;
/// The control queue is full; call [`micrun_agent_poll`] and try again.
pub const MICRUN_AGENT_EAGAIN: i32 = -11;

/// Stream numbers for [`micrun_agent_write`].
pub const MICRUN_STDOUT: u8 = 1;
pub const MICRUN_STDERR: u8 = 2;

/// Exit reasons for [`micrun_agent_exit`].
pub const MICRUN_EXIT_NORMAL: u8 = 0;
pub const MICRUN_EXIT_PANIC: u8 = 1;
pub const MICRUN_EXIT_FAULT: u8 = 2;
pub const MICRUN_EXIT_WATCHDOG: u8 = 3;

/// Resource usage reported by `on_stats`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct micrun_stats {
    pub uptime_ms: u64,
    pub cpu_load_permille: u16,
    pub mem_used_kib: u32,
    pub mem_total_kib: u32,
}

/// What the agent needs from the RTOS. Every callback but `tx` may be NULL.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct micrun_agent_config {
    /// Passed back as the first argument of every callback.
    pub ctx: *mut c_void,
    /// RTOS name (static, NUL-terminated UTF-8, at most 24 bytes used), or NULL.
    pub os: *const c_char,
    /// Board name (static, NUL-terminated UTF-8, at most 24 bytes used), or NULL.
    pub board: *const c_char,
    /// Writes bytes to the link; must take all of them (block if needed).
    pub tx: Option<unsafe extern "C" fn(ctx: *mut c_void, data: *const u8, len: usize)>,
    /// The host asks the application to stop within `grace_ms`.
    pub on_stop: Option<unsafe extern "C" fn(ctx: *mut c_void, grace_ms: u32)>,
    /// A forwarded POSIX signal number.
    pub on_signal: Option<unsafe extern "C" fn(ctx: *mut c_void, signo: u8)>,
    /// Console input from the host.
    pub on_input: Option<unsafe extern "C" fn(ctx: *mut c_void, data: *const u8, len: usize)>,
    /// The host terminal changed size.
    pub on_resize: Option<unsafe extern "C" fn(ctx: *mut c_void, rows: u16, cols: u16)>,
    /// Fill `out` (pre-filled with the uptime) with resource usage.
    pub on_stats: Option<unsafe extern "C" fn(ctx: *mut c_void, out: *mut micrun_stats)>,
}

struct CLink {
    ctx: *mut c_void,
    tx: unsafe extern "C" fn(*mut c_void, *const u8, usize),
}

impl Link for CLink {
    fn read(&mut self, _: &mut [u8]) -> usize {
        0 // input arrives through micrun_agent_feed
    }
    fn write(&mut self, data: &[u8]) {
        // SAFETY: the C side promised a valid callback; `data` is valid for `len`.
        unsafe { (self.tx)(self.ctx, data.as_ptr(), data.len()) }
    }
}

/// Hook calls recorded during `Agent::poll` and replayed after it, so that C
/// callbacks can call back into the agent.
#[derive(Default)]
struct Deferred {
    stop: Option<u32>,
    signals: [u8; 4],
    nsignals: usize,
    resize: Option<(u16, u16)>,
    stats_cb: Option<unsafe extern "C" fn(*mut c_void, *mut micrun_stats)>,
    ctx: usize,
}

impl App for Deferred {
    fn stop_requested(&mut self, grace_ms: u32) {
        self.stop = Some(grace_ms);
    }
    fn signal(&mut self, signo: u8) {
        if self.nsignals < self.signals.len() {
            self.signals[self.nsignals] = signo;
            self.nsignals += 1;
        }
    }
    fn resize(&mut self, rows: u16, cols: u16) {
        self.resize = Some((rows, cols));
    }
    fn stats(&mut self, uptime_ms: u64) -> Stats {
        let mut s = micrun_stats {
            uptime_ms,
            ..Default::default()
        };
        if let Some(cb) = self.stats_cb {
            // SAFETY: valid callback per the config contract; `s` outlives the call.
            unsafe { cb(self.ctx as *mut c_void, &mut s) };
        }
        Stats {
            uptime_ms: s.uptime_ms,
            cpu_load_permille: s.cpu_load_permille.min(1000),
            mem_used_kib: s.mem_used_kib,
            mem_total_kib: s.mem_total_kib,
        }
    }
}

type CAgent = Agent<CLink, 256, 1024, 512>;

struct Slot {
    agent: UnsafeCell<Option<CAgent>>,
    cfg: UnsafeCell<Option<micrun_agent_config>>,
    busy: Cell<bool>,
}

// SAFETY: the C contract is single-threaded use; `busy` rejects re-entry.
unsafe impl Sync for Slot {}

static SLOT: Slot = Slot {
    agent: UnsafeCell::new(None),
    cfg: UnsafeCell::new(None),
    busy: Cell::new(false),
};

/// Runs `f` on the agent unless it is already in use (re-entry from a callback).
fn with_agent<T>(f: impl FnOnce(&mut CAgent, &micrun_agent_config) -> T) -> Result<T, i32> {
    if SLOT.busy.get() {
        return Err(MICRUN_AGENT_EBUSY);
    }
    SLOT.busy.set(true);
    // SAFETY: single-threaded by contract and `busy` guarantees no other live
    // reference into the slot exists during `f`.
    let res = unsafe {
        match (&mut *SLOT.agent.get(), &*SLOT.cfg.get()) {
            (Some(agent), Some(cfg)) => Ok(f(agent, cfg)),
            _ => Err(MICRUN_AGENT_ENOTINIT),
        }
    };
    SLOT.busy.set(false);
    res
}

fn static_str(p: *const c_char) -> &'static str {
    if p.is_null() {
        return "";
    }
    // SAFETY: the contract requires a static NUL-terminated string.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str().unwrap_or("")
}

/// Initialises (or re-initialises) the agent. Returns 0, or
/// `MICRUN_AGENT_EINVAL` when `cfg` or `cfg->tx` is NULL.
///
/// # Safety
/// `cfg` must point to a valid config; its strings must be static.
#[no_mangle]
pub unsafe extern "C" fn micrun_agent_init(cfg: *const micrun_agent_config) -> i32 {
    if cfg.is_null() || SLOT.busy.get() {
        return if cfg.is_null() {
            MICRUN_AGENT_EINVAL
        } else {
            MICRUN_AGENT_EBUSY
        };
    }
    // SAFETY: checked non-null; valid per contract.
    let cfg = unsafe { *cfg };
    let Some(tx) = cfg.tx else {
        return MICRUN_AGENT_EINVAL;
    };
    let info = AgentInfo {
        os: static_str(cfg.os),
        board: static_str(cfg.board),
    };
    // SAFETY: not busy, single-threaded: no reference into the slot is live.
    unsafe {
        *SLOT.cfg.get() = Some(cfg);
        *SLOT.agent.get() = Some(Agent::new(CLink { ctx: cfg.ctx, tx }, info));
    }
    MICRUN_AGENT_OK
}

/// Hands bytes received from the link to the agent.
///
/// # Safety
/// `data` must be valid for `len` bytes (or `len` 0).
#[no_mangle]
pub unsafe extern "C" fn micrun_agent_feed(data: *const u8, len: usize) -> i32 {
    if data.is_null() && len != 0 {
        return MICRUN_AGENT_EINVAL;
    }
    let bytes = if len == 0 {
        &[][..]
    } else {
        // SAFETY: checked non-null; valid for len per contract.
        unsafe { core::slice::from_raw_parts(data, len) }
    };
    match with_agent(|a, _| a.feed(bytes)) {
        Ok(()) => MICRUN_AGENT_OK,
        Err(e) => e,
    }
}

/// Does all pending work at `now_ms` (monotonic, e.g. since boot) and calls the
/// callbacks. Returns when the agent next needs a poll (absolute ms), or
/// `UINT64_MAX` when only new input or output needs one.
#[no_mangle]
pub extern "C" fn micrun_agent_poll(now_ms: u64) -> u64 {
    let mut d = Deferred::default();
    let mut input = [0u8; 64];
    let mut ninput;
    let polled = with_agent(|a, cfg| {
        d.stats_cb = cfg.on_stats;
        d.ctx = cfg.ctx as usize;
        a.poll(now_ms, &mut d);
        (*cfg, a.poll_timeout())
    });
    let Ok((cfg, next)) = polled else {
        return u64::MAX;
    };
    // SAFETY (all callbacks below): valid per the config contract; no reference
    // into the agent is live, so they may call back in.
    if let (Some(cb), Some(g)) = (cfg.on_stop, d.stop) {
        unsafe { cb(cfg.ctx, g) };
    }
    if let Some(cb) = cfg.on_signal {
        for &s in &d.signals[..d.nsignals] {
            unsafe { cb(cfg.ctx, s) };
        }
    }
    if let (Some(cb), Some((r, c))) = (cfg.on_resize, d.resize) {
        unsafe { cb(cfg.ctx, r, c) };
    }
    loop {
        ninput = with_agent(|a, _| a.read_stdin(&mut input)).unwrap_or(0);
        if ninput == 0 {
            break;
        }
        if let Some(cb) = cfg.on_input {
            unsafe { cb(cfg.ctx, input.as_ptr(), ninput) };
        }
    }
    next.unwrap_or(u64::MAX)
}

/// Queues console output on `stream` (`MICRUN_STDOUT` or `MICRUN_STDERR`).
/// Returns the number of bytes accepted (less than `len` when the ring is full:
/// poll and write the rest later), or a negative error.
///
/// # Safety
/// `data` must be valid for `len` bytes (or `len` 0).
#[no_mangle]
pub unsafe extern "C" fn micrun_agent_write(stream: u8, data: *const u8, len: usize) -> isize {
    if (data.is_null() && len != 0) || !(stream == MICRUN_STDOUT || stream == MICRUN_STDERR) {
        return MICRUN_AGENT_EINVAL as isize;
    }
    let bytes = if len == 0 {
        &[][..]
    } else {
        // SAFETY: checked non-null; valid for len per contract.
        unsafe { core::slice::from_raw_parts(data, len) }
    };
    match with_agent(|a, _| {
        if stream == MICRUN_STDOUT {
            a.write_stdout(bytes)
        } else {
            a.write_stderr(bytes)
        }
    }) {
        Ok(n) => n as isize,
        Err(e) => e as isize,
    }
}

/// Reports the application's end with `code` and `reason` (`MICRUN_EXIT_*`).
#[no_mangle]
pub extern "C" fn micrun_agent_exit(code: i32, reason: u8) -> i32 {
    let reason = match reason {
        MICRUN_EXIT_NORMAL => ExitReason::Normal,
        MICRUN_EXIT_PANIC => ExitReason::Panic,
        MICRUN_EXIT_FAULT => ExitReason::Fault,
        MICRUN_EXIT_WATCHDOG => ExitReason::Watchdog,
        _ => return MICRUN_AGENT_EINVAL,
    };
    match with_agent(|a, _| a.exit(code, reason)) {
        Ok(()) => MICRUN_AGENT_OK,
        Err(e) => e,
    }
}

/// 1 once the host has acknowledged the exit report (the partition may power
/// off), else 0.
#[no_mangle]
pub extern "C" fn micrun_agent_exit_delivered() -> i32 {
    with_agent(|a, _| a.exit_delivered() as i32).unwrap_or(0)
}

/// 1 while a host is connected, else 0.
#[no_mangle]
pub extern "C" fn micrun_agent_connected() -> i32 {
    with_agent(|a, _| a.is_connected() as i32).unwrap_or(0)
}

/// Sends a log line (NUL-terminated UTF-8, cut to 80 bytes) at `level`
/// (0 error … 4 trace).
///
/// # Safety
/// `text` must be a valid NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn micrun_agent_log(level: u8, text: *const c_char) -> i32 {
    if text.is_null() {
        return MICRUN_AGENT_EINVAL;
    }
    let level = match level {
        0 => LogLevel::Error,
        1 => LogLevel::Warn,
        2 => LogLevel::Info,
        3 => LogLevel::Debug,
        4 => LogLevel::Trace,
        _ => return MICRUN_AGENT_EINVAL,
    };
    // SAFETY: checked non-null; NUL-terminated per contract.
    let Ok(text) = (unsafe { CStr::from_ptr(text) }).to_str() else {
        return MICRUN_AGENT_EINVAL;
    };
    match with_agent(|a, _| a.log(level, text)) {
        Ok(true) => MICRUN_AGENT_OK,
        Ok(false) => MICRUN_AGENT_EAGAIN,
        Err(e) => e,
    }
}

#[cfg(all(feature = "panic-handler", not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // A C firmware has its own fault handling; stop here where a debugger can see it.
    // (A hosted build, e.g. the C test on Linux, is linked with panic = "abort"
    // and never gets here unless the agent has a bug.)
    loop {
        core::hint::spin_loop();
    }
}
