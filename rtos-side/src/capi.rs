//! C ABI for C RTOSes (UniProton, Zephyr, bare-metal C), behind the `capi` feature.
//!
//! One agent per partition, held in static storage (no allocator): the RTOS calls
//! [`micrun_agent_init`] once with its callbacks, hands received link bytes to
//! [`micrun_agent_feed`], calls [`micrun_agent_poll`] from its main loop or a timer
//! (periodically, or at the latest at the time [`micrun_agent_poll_timeout`]
//! returns after it), and writes console output with
//! [`micrun_agent_write`]. An application with commands sets `on_exec`: the host
//! then runs them (`kubectl exec`, exec probes, `ctr task exec`; protocol 1.2),
//! and the application writes their output with [`micrun_agent_write_exec`] and
//! ends each with [`micrun_agent_exec_exit`] (the `exec` feature: without it the
//! agent does not offer exec to the host, and those two return
//! [`MICRUN_AGENT_ESRCH`]). Without `on_exec` every exec ends at once with 127
//! ("command not found"). Build the static library with
//! `rtos-side/staticlib.sh <target>` (`cargo rustc -p micrun-rtos --release
//! --target <t> --features capi,panic-handler --crate-type staticlib`, then the
//! archive's copies of `memcpy`, `memset`, … made local, so that the firmware
//! keeps its C library's); the header is `include/micrun_agent.h`. The agent's
//! RAM is one `.bss` object (`SLOT`); it keeps a pointer to the config given to
//! [`micrun_agent_init`], which must outlive it.
//!
//! Threading: every function must be called from one thread (task) at a time.
//! `micrun_agent_poll` takes the host's requests one at a time and calls each
//! one's callback with the agent released, in the order the host sent them
//! (then `on_input` with the console input), so callbacks other than `tx` and
//! `on_stats` may call `micrun_agent_write` / `micrun_agent_exit` /
//! `micrun_agent_log` (and the exec calls), and what they write goes out in
//! the same poll; `tx` and `on_stats` must not call back into the agent (such
//! calls fail with [`MICRUN_AGENT_EBUSY`] or do nothing). No callback may call
//! `micrun_agent_poll`, `micrun_agent_feed` or `micrun_agent_init` (refused
//! the same way): the console input and the exec arguments a callback gets
//! are the agent's own storage, handed over without a copy, and stay as they
//! are until the callback returns.
#![allow(unsafe_code)]
#![allow(non_camel_case_types)]

use core::cell::{Cell, UnsafeCell};
use core::ffi::{c_char, c_int, c_void, CStr};
use core::mem::MaybeUninit;

#[cfg(feature = "exec")]
use micrun_proto::msg::MAX_ARGV;

use crate::{Agent, ExitReason, Hook, Link, LogLevel, Stats};

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
/// No exec is running (it was never started, or has been ended already).
pub const MICRUN_AGENT_ESRCH: i32 = -3;

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
    /// Not checked here: the host shows invalid UTF-8 sequences as U+FFFD.
    pub os: *const c_char,
    /// Board name (static, NUL-terminated UTF-8, at most 24 bytes used), or NULL
    /// (as `os`).
    pub board: *const c_char,
    /// Writes bytes to the link; must take all of them (block if needed).
    pub tx: Option<unsafe extern "C" fn(ctx: *mut c_void, data: *const u8, len: usize)>,
    /// The host asks the application to stop within `grace_ms`.
    pub on_stop: Option<unsafe extern "C" fn(ctx: *mut c_void, grace_ms: u32)>,
    /// A forwarded POSIX signal number.
    pub on_signal: Option<unsafe extern "C" fn(ctx: *mut c_void, signo: u8)>,
    /// Console input from the host (valid during the call only).
    pub on_input: Option<unsafe extern "C" fn(ctx: *mut c_void, data: *const u8, len: usize)>,
    /// The container's terminal: its size, or 0x0 (unknown) at the handshake
    /// before the client gave one. Only a container with a terminal gets it.
    pub on_resize: Option<unsafe extern "C" fn(ctx: *mut c_void, rows: u16, cols: u16)>,
    /// Fill `out` (pre-filled with the uptime) with resource usage.
    pub on_stats: Option<unsafe extern "C" fn(ctx: *mut c_void, out: *mut micrun_stats)>,
    /// The host asks to run a command (protocol 1.2): `argv[0..argc]` are its
    /// arguments (NUL-terminated, `argv[argc]` is NULL; valid during the call
    /// only). Return true when the command runs: write its output with
    /// `micrun_agent_write_exec` and end it with `micrun_agent_exec_exit`, now
    /// or later. Return false for an unknown command: the exec ends with 127.
    /// NULL: the application has no commands, and every exec ends with 127.
    /// Called only when the library is built with the `exec` feature (without
    /// it the host is not offered exec).
    pub on_exec: Option<
        unsafe extern "C" fn(ctx: *mut c_void, argc: c_int, argv: *const *const c_char) -> bool,
    >,
    /// A signal for the running exec (9: its caller gave up, e.g. an exec
    /// probe's timeout): end it with `micrun_agent_exec_exit` (e.g. 128 + signo).
    pub on_exec_signal: Option<unsafe extern "C" fn(ctx: *mut c_void, signo: u8)>,
}

/// The link: writes go to the config's `tx` (read through [`SLOT`], so the
/// agent holds no copy of it).
struct CLink;

impl Link for CLink {
    fn read(&mut self, _: &mut [u8]) -> usize {
        0 // input arrives through micrun_agent_feed
    }
    #[inline(never)]
    fn write(&mut self, data: &[u8]) {
        // SAFETY: the agent only runs after `micrun_agent_init` stored a config
        // that stays valid (the init contract); `data` is valid for its length.
        unsafe {
            let cfg = &*SLOT.cfg.get();
            if let Some(tx) = cfg.tx {
                tx(cfg.ctx, data.as_ptr(), data.len());
            }
        }
    }
}

/// Calls `on_stats` (the agent busy: it must not call back in) and returns
/// what it filled in, the load capped at 1000 ‰.
fn c_stats(cfg: &micrun_agent_config, uptime_ms: u64) -> Stats {
    let mut s = micrun_stats {
        uptime_ms,
        ..Default::default()
    };
    if let Some(cb) = cfg.on_stats {
        // SAFETY: valid callback per the config contract; `s` outlives the call.
        unsafe { cb(cfg.ctx, &mut s) };
    }
    Stats {
        uptime_ms: s.uptime_ms,
        cpu_load_permille: s.cpu_load_permille.min(1000),
        mem_used_kib: s.mem_used_kib,
        mem_total_kib: s.mem_total_kib,
    }
}

type CAgent = Agent<CLink, 128, 1024, 512>;

/// The one agent and the caller's config. Every field starts as zero bytes or
/// uninitialised, so the whole slot (≈ 4.6 KB with the rings) lands in `.bss`
/// and costs no flash. `agent` is valid once `cfg` is not null; the config is
/// the caller's (it must outlive the agent), not a copy: 4 bytes, not 44.
struct Slot {
    agent: UnsafeCell<MaybeUninit<CAgent>>,
    cfg: Cell<*const micrun_agent_config>,
    /// Inside an agent call: a callback calling back in is refused.
    busy: Cell<bool>,
    /// Inside `micrun_agent_poll`, its callbacks included: `feed`, `poll` and
    /// `init` are refused, so what a callback was handed in place stays.
    polling: Cell<bool>,
}

// SAFETY: the C contract is single-threaded use; `busy` rejects re-entry.
unsafe impl Sync for Slot {}

static SLOT: Slot = Slot {
    agent: UnsafeCell::new(MaybeUninit::uninit()),
    cfg: Cell::new(core::ptr::null()),
    busy: Cell::new(false),
    polling: Cell::new(false),
};

/// Marks the agent busy and returns 0, unless it is not initialised or
/// already in use (re-entry from a callback): then the error code. One copy
/// for every entry point.
#[inline(never)]
fn enter() -> i32 {
    if SLOT.busy.get() {
        return MICRUN_AGENT_EBUSY;
    }
    if SLOT.cfg.get().is_null() {
        return MICRUN_AGENT_ENOTINIT;
    }
    SLOT.busy.set(true);
    MICRUN_AGENT_OK
}

/// Reads the agent with `f` unless it is not initialised or in use (a call
/// from `tx` or `on_stats`); no other call can start meanwhile, so the agent
/// is not marked busy.
fn read_agent(f: impl FnOnce(&CAgent) -> bool) -> i32 {
    if SLOT.busy.get() || SLOT.cfg.get().is_null() {
        return 0;
    }
    // SAFETY: a non-null config means `micrun_agent_init` wrote the agent;
    // not busy, so no mutable reference into the slot is live.
    f(unsafe { (*SLOT.agent.get()).assume_init_ref() }) as i32
}

/// Runs `f` on the agent unless it is not initialised or already in use
/// (re-entry from a callback).
fn with_agent<T>(f: impl FnOnce(&mut CAgent, &micrun_agent_config) -> T) -> Result<T, i32> {
    let e = enter();
    if e != MICRUN_AGENT_OK {
        return Err(e);
    }
    // SAFETY: a non-null config means `micrun_agent_init` wrote the agent, and
    // the config is valid per its contract; single-threaded by contract, and
    // `busy` guarantees no other live reference into the slot exists during `f`.
    let res = unsafe { f((*SLOT.agent.get()).assume_init_mut(), &*SLOT.cfg.get()) };
    SLOT.busy.set(false);
    Ok(res)
}

/// The bytes of a NUL-terminated string (`None` for NULL). Not checked for
/// UTF-8: the host replaces invalid sequences where it shows the text, so the
/// agent does not link a validator (≈ 190 B, docs/footprint.md).
///
/// # Safety
/// `p` must be NULL or a valid NUL-terminated string that lives for `'a`.
unsafe fn c_text<'a>(p: *const c_char) -> Option<&'a [u8]> {
    // SAFETY: non-null here; NUL-terminated per the function's contract.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_bytes())
}

/// The `len` bytes at `data` (none for `len` 0, whatever `data` is), or
/// `None` for a NULL `data` with a length. One copy for the entry points.
///
/// # Safety
/// `data` must be valid for `len` bytes (or `len` 0).
unsafe fn c_bytes<'a>(data: *const u8, len: usize) -> Option<&'a [u8]> {
    if len == 0 {
        return Some(&[]);
    }
    // SAFETY: non-null here; valid for `len` bytes per the contract.
    (!data.is_null()).then(|| unsafe { core::slice::from_raw_parts(data, len) })
}

/// Initialises (or re-initialises) the agent. Returns 0, or
/// `MICRUN_AGENT_EINVAL` when `cfg` or `cfg->tx` is NULL.
///
/// The agent keeps `cfg` (not a copy): it must stay valid, and its callbacks
/// and `ctx` unchanged, until the next `micrun_agent_init` (a static or a
/// variable of `main` that never returns).
///
/// # Safety
/// `cfg` must point to a valid config that outlives the agent; its strings must be static.
#[no_mangle]
pub unsafe extern "C" fn micrun_agent_init(cfg: *const micrun_agent_config) -> i32 {
    if cfg.is_null() || SLOT.busy.get() || SLOT.polling.get() {
        return if cfg.is_null() {
            MICRUN_AGENT_EINVAL
        } else {
            MICRUN_AGENT_EBUSY
        };
    }
    // SAFETY: checked non-null; valid per contract.
    let c = unsafe { &*cfg };
    if c.tx.is_none() {
        return MICRUN_AGENT_EINVAL;
    }
    // SAFETY: NULL or static NUL-terminated strings per the contract.
    let (os, board) = unsafe { (c_text(c.os), c_text(c.board)) };
    // SAFETY: not busy, single-threaded: no reference into the slot is live.
    // The agent has no drop glue, so overwriting an earlier one is fine.
    unsafe {
        Agent::init_named(
            &mut *SLOT.agent.get(),
            CLink,
            os.unwrap_or_default(),
            board.unwrap_or_default(),
        );
    }
    SLOT.cfg.set(cfg);
    MICRUN_AGENT_OK
}

/// Hands bytes received from the link to the agent.
///
/// # Safety
/// `data` must be valid for `len` bytes (or `len` 0).
#[no_mangle]
pub unsafe extern "C" fn micrun_agent_feed(data: *const u8, len: usize) -> i32 {
    // SAFETY: per the function's contract.
    let Some(bytes) = (unsafe { c_bytes(data, len) }) else {
        return MICRUN_AGENT_EINVAL;
    };
    if SLOT.polling.get() {
        return MICRUN_AGENT_EBUSY;
    }
    match with_agent(|a, _| a.feed(bytes)) {
        Ok(()) => MICRUN_AGENT_OK,
        Err(e) => e,
    }
}

/// Does all pending work at `now_ms` (monotonic, e.g. since boot) and calls the
/// callbacks. When the agent next needs a poll: `micrun_agent_poll_timeout`
/// (an application that polls periodically does not ask, and does not link
/// that computation). Does nothing before `micrun_agent_init` or from inside
/// a callback.
#[no_mangle]
pub extern "C" fn micrun_agent_poll(now_ms: u64) {
    if SLOT.polling.replace(true) {
        return; // from a callback of this poll
    }
    // An exec's arguments for `on_exec` and the console input for
    // `on_input`, where the agent keeps them: unchanged until the next
    // request is taken, and no new input can arrive meanwhile (`polling`).
    #[cfg(feature = "exec")]
    let mut args: *const [u8] = &[];
    let mut input: *const [u8] = &[];
    let mut first = true;
    // One step at a time, each callback called with the agent released, so
    // that it may call back in: the timers (the link's input came through
    // micrun_agent_feed), then the host's requests one by one (`on_stats` is
    // answered inside, the agent busy), then the console input, then the
    // frames that are due.
    loop {
        let step = with_agent(|a, cfg| {
            if core::mem::take(&mut first) {
                a.run_timers(now_ms);
            }
            if let Some(hook) = a.next_hook() {
                match hook {
                    Hook::Stats => a.send_stats(c_stats(cfg, now_ms)),
                    #[cfg(feature = "exec")]
                    Hook::Exec => args = a.exec_args().as_bytes(),
                    _ => {}
                }
                return Step::Hook(hook);
            }
            input = a.take_stdin();
            if !input.is_empty() {
                return Step::Input;
            }
            a.finish(now_ms);
            Step::Done
        });
        let step = match step {
            Ok(Step::Done) | Err(_) => break,
            Ok(step) => step,
        };
        // SAFETY: set by init (the call above succeeded) and valid per its contract.
        let cfg = unsafe { &*SLOT.cfg.get() };
        let ctx = cfg.ctx;
        // SAFETY (all callbacks below): valid per the config contract; no
        // reference into the agent is live, so they may call back in.
        match step {
            Step::Hook(Hook::Stop(grace_ms)) => {
                if let Some(cb) = cfg.on_stop {
                    unsafe { cb(ctx, grace_ms) };
                }
            }
            Step::Hook(Hook::Signal(signo)) => {
                if let Some(cb) = cfg.on_signal {
                    unsafe { cb(ctx, signo) };
                }
            }
            Step::Hook(Hook::Resize(rows, cols)) => {
                if let Some(cb) = cfg.on_resize {
                    unsafe { cb(ctx, rows, cols) };
                }
            }
            #[cfg(feature = "exec")]
            Step::Hook(Hook::Exec) => {
                // SAFETY: the agent's bytes, unchanged since the step (above).
                if !unsafe { call_on_exec(cfg, args) } {
                    let _ = with_agent(|a, _| a.exec_exit(127));
                }
            }
            #[cfg(feature = "exec")]
            Step::Hook(Hook::ExecSignal(signo)) => {
                if let Some(cb) = cfg.on_exec_signal {
                    unsafe { cb(ctx, signo) };
                }
            }
            Step::Input => {
                if let Some(cb) = cfg.on_input {
                    // SAFETY: as above; `input` is the agent's bytes, unchanged
                    // since the step (no feed while polling).
                    unsafe { cb(ctx, input.cast(), input.len()) };
                }
            }
            Step::Hook(Hook::Stats | Hook::Error(_)) | Step::Done => {}
        }
    }
    SLOT.polling.set(false);
}

/// One step of [`micrun_agent_poll`].
enum Step {
    /// A host request for a callback.
    Hook(Hook),
    /// Console input for `on_input`.
    Input,
    /// Done: the reports queued and the frames that are due written.
    Done,
}

/// When the agent next needs a poll (absolute ms, in the clock of
/// `micrun_agent_poll`), or `UINT64_MAX` when only new input or output needs
/// one (also before `micrun_agent_init` and from inside `tx` or `on_stats`).
/// Ask after `micrun_agent_poll`, e.g. to sleep until then.
#[no_mangle]
pub extern "C" fn micrun_agent_poll_timeout() -> u64 {
    with_agent(|a, _| a.poll_timeout())
        .ok()
        .flatten()
        .unwrap_or(u64::MAX)
}

/// Calls `on_exec` with `argv[]` over the arguments in `args` (each ends in
/// its NUL), then NULL. `false` when there is no hook or it does not know the
/// command. `args` is the agent's own storage: it is read through a reference
/// only while `argv[]` is built, none is live during the callback (which may
/// call back in).
///
/// # Safety
/// `args` must be valid for reads and unchanged until this returns.
#[cfg(feature = "exec")]
unsafe fn call_on_exec(cfg: &micrun_agent_config, args: *const [u8]) -> bool {
    let Some(cb) = cfg.on_exec else {
        return false;
    };
    // Every argument has its NUL, so there are at most MAX_ARGV of them.
    let mut ptrs = [core::ptr::null::<c_char>(); MAX_ARGV + 1];
    let mut argc = 0;
    {
        // SAFETY: per the function's contract.
        let args = unsafe { &*args };
        let mut arg = args.as_ptr();
        for (i, &b) in args.iter().enumerate() {
            if b == 0 {
                if let Some(p) = ptrs.get_mut(argc) {
                    *p = arg.cast();
                }
                argc += 1;
                arg = args.as_ptr().wrapping_add(i + 1);
            }
        }
    }
    // SAFETY: valid callback per the config contract; `ptrs` and the
    // arguments outlive the call; no reference into the agent is live.
    unsafe { cb(cfg.ctx, argc as c_int, ptrs.as_ptr()) }
}

/// Queues console output on `stream` (`MICRUN_STDOUT` or `MICRUN_STDERR`).
/// Returns the number of bytes accepted (less than `len` when the ring is full:
/// poll and write the rest later), or a negative error.
///
/// # Safety
/// `data` must be valid for `len` bytes (or `len` 0).
#[no_mangle]
pub unsafe extern "C" fn micrun_agent_write(stream: u8, data: *const u8, len: usize) -> isize {
    // SAFETY: per the function's contract.
    let bytes = unsafe { c_bytes(data, len) };
    let (Some(bytes), MICRUN_STDOUT | MICRUN_STDERR) = (bytes, stream) else {
        return MICRUN_AGENT_EINVAL as isize;
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

/// Queues output of the running exec. Returns the number of bytes accepted
/// (less than `len` when the ring is full: poll and write the rest later),
/// `MICRUN_AGENT_ESRCH` when no exec runs, or another negative error.
///
/// # Safety
/// `data` must be valid for `len` bytes (or `len` 0).
#[no_mangle]
pub unsafe extern "C" fn micrun_agent_write_exec(data: *const u8, len: usize) -> isize {
    // SAFETY: per the function's contract.
    let Some(bytes) = (unsafe { c_bytes(data, len) }) else {
        return MICRUN_AGENT_EINVAL as isize;
    };
    match with_agent(|a, _| {
        if a.exec_running() {
            Ok(a.write_exec(bytes))
        } else {
            Err(MICRUN_AGENT_ESRCH)
        }
    }) {
        Ok(Ok(n)) => n as isize,
        Ok(Err(e)) | Err(e) => e as isize,
    }
}

/// Ends the running exec with `code` (0 success, 1..=255 failure, 128 + n
/// after signal n). The report reaches the host after all the exec's output.
/// Returns 0, or `MICRUN_AGENT_ESRCH` when no exec runs.
#[no_mangle]
pub extern "C" fn micrun_agent_exec_exit(code: i32) -> i32 {
    match with_agent(|a, _| {
        let running = a.exec_running();
        a.exec_exit(code);
        running
    }) {
        Ok(true) => MICRUN_AGENT_OK,
        Ok(false) => MICRUN_AGENT_ESRCH,
        Err(e) => e,
    }
}

/// 1 while an exec is running (started and not yet ended), else 0.
#[no_mangle]
pub extern "C" fn micrun_agent_exec_running() -> i32 {
    read_agent(|a| a.exec_running())
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
    read_agent(|a| a.exit_delivered())
}

/// 1 while a host is connected, else 0.
#[no_mangle]
pub extern "C" fn micrun_agent_connected() -> i32 {
    with_agent(|a, _| a.is_connected() as i32).unwrap_or(0)
}

/// Sends a log line (NUL-terminated UTF-8, cut to 80 bytes, not inside a
/// character) at `level` (0 error … 4 trace). The text is not checked here:
/// the host shows invalid UTF-8 sequences as U+FFFD. `MICRUN_AGENT_EAGAIN`
/// while the previous line is not yet acknowledged or the queue is full.
///
/// # Safety
/// `text` must be a valid NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn micrun_agent_log(level: u8, text: *const c_char) -> i32 {
    let level = match level {
        0 => LogLevel::Error,
        1 => LogLevel::Warn,
        2 => LogLevel::Info,
        3 => LogLevel::Debug,
        4 => LogLevel::Trace,
        _ => return MICRUN_AGENT_EINVAL,
    };
    // SAFETY: NULL or NUL-terminated per contract, and only used during this call.
    let Some(text) = (unsafe { c_text(text) }) else {
        return MICRUN_AGENT_EINVAL;
    };
    match with_agent(|a, _| a.log_bytes(level, text)) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use micrun_proto::{HostConfig, HostEndpoint, HostEvent, Stream};

    /// The tests that use the one agent (`SLOT`) take turns.
    static ONE_AGENT: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// What the C callbacks saw and sent (the `ctx` of the test's config).
    #[derive(Default)]
    struct Rec {
        calls: Vec<String>,
        tx: Vec<u8>,
    }

    unsafe fn rec<'a>(ctx: *mut c_void) -> &'a mut Rec {
        // SAFETY: the test's ctx is a live `Rec`, touched by one callback at a time.
        unsafe { &mut *ctx.cast::<Rec>() }
    }
    unsafe extern "C" fn tx(ctx: *mut c_void, data: *const u8, len: usize) {
        // SAFETY: the agent passes `len` valid bytes.
        unsafe {
            rec(ctx)
                .tx
                .extend_from_slice(core::slice::from_raw_parts(data, len))
        };
    }
    unsafe extern "C" fn on_signal(ctx: *mut c_void, signo: u8) {
        unsafe { rec(ctx).calls.push(format!("signal {signo}")) };
    }
    unsafe extern "C" fn on_resize(ctx: *mut c_void, rows: u16, cols: u16) {
        unsafe { rec(ctx).calls.push(format!("resize {rows}x{cols}")) };
    }
    /// Calls back in: its output must go out in the same poll.
    unsafe extern "C" fn on_stop(ctx: *mut c_void, grace_ms: u32) {
        unsafe { rec(ctx).calls.push(format!("stop {grace_ms}")) };
        // SAFETY: 4 valid bytes.
        let n = unsafe { micrun_agent_write(MICRUN_STDOUT, b"bye\n".as_ptr(), 4) };
        unsafe { rec(ctx).calls.push(format!("write {n}")) };
    }
    /// Tries to feed and poll from inside the poll (both refused), then
    /// records the input it was handed: unchanged by those attempts.
    unsafe extern "C" fn on_input(ctx: *mut c_void, data: *const u8, len: usize) {
        // SAFETY: 2 valid bytes; `data` is valid for `len` bytes during the call.
        unsafe {
            let fed = micrun_agent_feed([2u8, 0].as_ptr(), 2);
            micrun_agent_poll(0);
            let input = String::from_utf8_lossy(core::slice::from_raw_parts(data, len));
            rec(ctx).calls.push(format!("input {input} (feed {fed})"));
        }
    }

    /// `micrun_agent_poll` calls the hooks one per host request, in the order
    /// the host sent them, with the agent released; what a hook writes goes
    /// out in the same poll. (The C programs of tests/c and the mps2-an386
    /// firmware cover the rest of the C ABI.)
    #[test]
    fn poll_calls_hooks_in_order_and_sends_their_output() {
        let _one = ONE_AGENT.lock().unwrap_or_else(|e| e.into_inner());
        let ctx = Box::into_raw(Box::<Rec>::default());
        let cfg = Box::leak(Box::new(micrun_agent_config {
            ctx: ctx.cast(),
            os: c"test-os".as_ptr(),
            board: c"test-board".as_ptr(),
            tx: Some(tx),
            on_stop: Some(on_stop),
            on_signal: Some(on_signal),
            on_input: Some(on_input),
            on_resize: Some(on_resize),
            on_stats: None,
            on_exec: None,
            on_exec_signal: None,
        }));
        // SAFETY: the config is leaked, so it outlives the agent.
        assert_eq!(unsafe { micrun_agent_init(cfg) }, MICRUN_AGENT_OK);
        let mut host: HostEndpoint = HostEndpoint::new(HostConfig::default(), 0);
        let mut buf = [0u8; 600];
        // One round: the host's frames to the agent, one poll, its frames back.
        let mut round = |host: &mut HostEndpoint, t: u64| {
            host.handle_timeout(t);
            while let Some(n) = host.poll_transmit(t, &mut buf) {
                // SAFETY: `n` valid bytes.
                assert_eq!(unsafe { micrun_agent_feed(buf.as_ptr(), n) }, 0);
            }
            micrun_agent_poll(t);
            // SAFETY: no agent call is running.
            let out = core::mem::take(unsafe { &mut (*ctx).tx });
            host.handle_input(t, &out);
            core::iter::from_fn(|| host.poll_event()).collect::<Vec<_>>()
        };
        let mut t = 0;
        while micrun_agent_connected() == 0 || host.poll_event().is_some() {
            round(&mut host, t);
            t += 1;
            assert!(t < 100, "no handshake");
        }
        round(&mut host, t);
        // The deadline the poll used to return: the agent's, a time after
        // this poll (connected, the host-silence timer runs).
        let next = micrun_agent_poll_timeout();
        assert_eq!(Ok(Some(next)), with_agent(|a, _| a.poll_timeout()));
        assert!(next > t && next != u64::MAX, "{next}");
        host.send_signal(10).unwrap();
        host.send_resize(24, 80).unwrap();
        assert_eq!(host.write_stdin(b"ls -l\n"), 6);
        host.send_stop(500).unwrap();
        let mut events = round(&mut host, t + 1);
        // The input came after three requests, which filled the agent's event
        // queue: held back, it comes again with the host's retransmission.
        events.extend(round(&mut host, t + 1000));
        // SAFETY: no agent call is running.
        let calls = unsafe { &(*ctx).calls };
        // The requests in order, then the input (handed over in place: a feed
        // or poll from its callback is refused and changes nothing).
        let ebusy = MICRUN_AGENT_EBUSY;
        let input = format!("input ls -l\n (feed {ebusy})");
        assert_eq!(
            calls,
            &["signal 10", "resize 24x80", "stop 500", "write 4", &input]
        );
        assert!(
            events.contains(&HostEvent::Readable(Stream::Stdout)),
            "{events:?}"
        );
        let mut out = [0u8; 16];
        let n = host.read_console(Stream::Stdout, &mut out);
        assert_eq!(&out[..n], b"bye\n");

        // A log line that is not UTF-8 is sent as it is; the host shows each
        // invalid sequence as U+FFFD.
        let bad = [b'2', b'5', 0xB0, b'C', 0];
        // SAFETY: a NUL-terminated string.
        assert_eq!(unsafe { micrun_agent_log(2, bad.as_ptr().cast()) }, 0);
        let events = round(&mut host, t + 2);
        assert!(
            events
                .iter()
                .any(|e| matches!(e, HostEvent::Log { text, .. } if text == "25\u{FFFD}C")),
            "{events:?}"
        );
    }

    /// The entry points check their arguments: NULL data with a length, an
    /// unknown stream, exit reason or log level are `MICRUN_AGENT_EINVAL`;
    /// NULL data with length 0 is no data; text that is not UTF-8 is taken
    /// (the host replaces it: `poll_calls_hooks_in_order_and_sends_their_output`).
    #[test]
    fn entry_points_check_their_arguments() {
        let _one = ONE_AGENT.lock().unwrap_or_else(|e| e.into_inner());
        let ctx = Box::into_raw(Box::<Rec>::default());
        let cfg = Box::leak(Box::new(micrun_agent_config {
            ctx: ctx.cast(),
            os: core::ptr::null(),
            board: core::ptr::null(),
            tx: Some(tx),
            on_stop: None,
            on_signal: None,
            on_input: None,
            on_resize: None,
            on_stats: None,
            on_exec: None,
            on_exec_signal: None,
        }));
        // SAFETY (all calls): the config is leaked, so it outlives the agent;
        // every pointer is NULL or valid for its length.
        unsafe {
            assert_eq!(micrun_agent_init(cfg), MICRUN_AGENT_OK);
            let null = core::ptr::null::<u8>();
            assert_eq!(micrun_agent_feed(null, 3), MICRUN_AGENT_EINVAL);
            assert_eq!(micrun_agent_feed(null, 0), MICRUN_AGENT_OK);
            assert_eq!(micrun_agent_feed(b"~".as_ptr(), 1), MICRUN_AGENT_OK);
            let einval = MICRUN_AGENT_EINVAL as isize;
            assert_eq!(micrun_agent_write(MICRUN_STDOUT, null, 2), einval);
            assert_eq!(micrun_agent_write(MICRUN_STDERR, null, 0), 0);
            assert_eq!(micrun_agent_write(MICRUN_STDOUT, b"ab".as_ptr(), 2), 2);
            assert_eq!(micrun_agent_write(MICRUN_STDERR, b"c".as_ptr(), 1), 1);
            for stream in [0, 3, 255] {
                assert_eq!(micrun_agent_write(stream, b"ab".as_ptr(), 2), einval);
            }
            assert_eq!(micrun_agent_write_exec(null, 1), einval);
            assert_eq!(
                micrun_agent_write_exec(b"x".as_ptr(), 1),
                MICRUN_AGENT_ESRCH as isize
            );
            assert_eq!(micrun_agent_exit(1, 4), MICRUN_AGENT_EINVAL);
            assert_eq!(micrun_agent_log(5, c"x".as_ptr()), MICRUN_AGENT_EINVAL);
            assert_eq!(micrun_agent_log(2, core::ptr::null()), MICRUN_AGENT_EINVAL);
            let bad = [b'a', 0xC3, b'(', 0];
            assert_eq!(micrun_agent_log(2, bad.as_ptr().cast()), MICRUN_AGENT_OK);
            // One line at a time: the first is not acknowledged yet.
            assert_eq!(micrun_agent_log(2, c"héllo".as_ptr()), MICRUN_AGENT_EAGAIN);
            assert_eq!(micrun_agent_connected(), 0);
            assert_eq!(micrun_agent_exit_delivered(), 0);
            assert_eq!(micrun_agent_exec_running(), 0);
            assert_eq!(micrun_agent_exit(3, MICRUN_EXIT_NORMAL), MICRUN_AGENT_OK);
            assert_eq!(micrun_agent_exit_delivered(), 0, "no host has it");
        }
    }
}
