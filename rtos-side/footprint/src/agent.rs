//! Footprint probe: the baseline runtime driving `micrun_rtos::Agent` over the
//! UART. The application exercises every agent API a real firmware uses, so none
//! of it is optimized away: handshake, console output (stdout and stderr) and
//! input, credits, retransmit timers, stats, stop, exit, log, and with the `exec`
//! feature exec (a command with output and an exit code, a signal ending it).
//! Without it the agent has no exec (micrun-rtos's `exec` feature off), as in the
//! default configuration measured against the budget.
//!
//! The agent lives in a static (`MICRUN_AGENT`, in `.bss`), so its RAM counts as
//! static RAM, the way a firmware would normally hold it; measure.sh cross-checks
//! the section sizes against this symbol's size.
#![no_std]
#![no_main]

mod hw;
mod rt;

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;

use hw::{Clock, Uart};
#[cfg(feature = "exec")]
use micrun_rtos::Args;
use micrun_rtos::{Agent, AgentInfo, App, ExitReason, Link, LogLevel, Stats};

/// Console buffer sizes: `FRAME` (the receive frame buffer; frames go out
/// without one), `OUT` (stdout, stderr and, with exec, exec output rings each)
/// and `IN` (stdin ring). measure.sh subtracts the rings (2 or 3 × OUT + IN)
/// from static RAM.
#[cfg(not(feature = "small"))]
type FwAgent = Agent<Uart, 128, 1024, 512>;
/// Small rings (the frame is the default's, the smallest supported).
#[cfg(feature = "small")]
type FwAgent = Agent<Uart, 128, 256, 128>;

impl Link for Uart {
    fn read(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        while n < buf.len() {
            match self.try_read() {
                Some(b) => {
                    buf[n] = b;
                    n += 1;
                }
                None => break,
            }
        }
        n
    }

    fn write(&mut self, data: &[u8]) {
        for &b in data {
            self.write_byte(b);
        }
    }
}

/// A statically allocated, once-initialized value (no `static mut`).
struct Singleton<T>(UnsafeCell<MaybeUninit<T>>);

// SAFETY: the probe is single-threaded and has no interrupt handlers that touch it;
// `fw_main` initializes it once and then holds the only reference.
unsafe impl<T> Sync for Singleton<T> {}

/// The agent. Uninitialized, so it lands in `.bss` and costs no flash.
#[no_mangle]
static MICRUN_AGENT: Singleton<FwAgent> = Singleton(UnsafeCell::new(MaybeUninit::uninit()));

/// The probe application.
struct ProbeApp {
    stop: bool,
    /// An exec started with this many arguments; it runs from the main loop.
    #[cfg(feature = "exec")]
    exec_argc: Option<usize>,
    /// A signal for the running exec.
    #[cfg(feature = "exec")]
    exec_signo: u8,
}

impl App for ProbeApp {
    fn stop_requested(&mut self, _grace_ms: u32) {
        self.stop = true;
    }

    fn stats(&mut self, uptime_ms: u64) -> Stats {
        Stats {
            uptime_ms,
            cpu_load_permille: 10,
            mem_used_kib: 4,
            mem_total_kib: 64,
        }
    }

    /// One command: anything starting with `e` ("echo"); the rest are unknown.
    #[cfg(feature = "exec")]
    fn exec(&mut self, args: Args<'_>) -> bool {
        if args.as_bytes().first() != Some(&b'e') {
            return false;
        }
        self.exec_argc = Some(args.len());
        self.exec_signo = 0;
        true
    }

    #[cfg(feature = "exec")]
    fn exec_signal(&mut self, signo: u8) {
        self.exec_signo = signo;
    }
}

/// Whether `input` holds `byte`. Not `<[u8]>::contains`: that links the ~150-byte
/// `memchr`, which the measurement would charge to the agent.
#[allow(clippy::manual_contains)]
fn has(input: &[u8], byte: u8) -> bool {
    input.iter().any(|&b| b == byte)
}

#[no_mangle]
extern "C" fn fw_main() -> ! {
    // SAFETY: called once from Reset; nothing else refers to MICRUN_AGENT. The
    // agent is built in the static (`Agent::init`), not on the stack and moved.
    let agent: &mut FwAgent = Agent::init(
        unsafe { &mut *MICRUN_AGENT.0.get() },
        Uart,
        AgentInfo {
            os: "bare-metal",
            board: "footprint-m4",
        },
    );
    let mut app = ProbeApp {
        stop: false,
        #[cfg(feature = "exec")]
        exec_argc: None,
        #[cfg(feature = "exec")]
        exec_signo: 0,
    };
    let mut clock = Clock::new();
    let mut greeted = false;
    let mut line = [0u8; 32];

    agent.write_stdout(b"footprint probe up\n");
    loop {
        let now = clock.now_ms();
        // The platform's memory routines, linked as in the baseline.
        hw::memory_routines(now as u32);
        agent.poll(now, &mut app);

        if agent.is_connected() && !greeted {
            greeted = agent.log(LogLevel::Info, "probe connected");
        }

        // Console input: echo it; `q` ends the application, `!` complains on stderr.
        let n = agent.read_stdin(&mut line);
        if n > 0 {
            let input = &line[..n];
            agent.write_stdout(input);
            if has(input, b'!') {
                agent.write_stderr(b"probe: bang\n");
            }
            if has(input, b'q') {
                agent.write_stdout(b"bye\n");
                agent.exit(0, ExitReason::Normal);
            }
        }
        // The exec: its output, then its end (its argument count, or 128 + signo).
        #[cfg(feature = "exec")]
        if let Some(argc) = app.exec_argc {
            if app.exec_signo != 0 {
                agent.exec_exit(128 + i32::from(app.exec_signo));
                app.exec_argc = None;
            } else if agent.write_exec(b"probe: exec\n") > 0 {
                agent.exec_exit(argc as i32);
                app.exec_argc = None;
            }
        }
        if app.stop {
            app.stop = false;
            agent.exit(143, ExitReason::Normal);
        }
        if agent.counters().errors() > 100 {
            agent.log(LogLevel::Warn, "probe: link errors");
        }
        if agent.exit_delivered() {
            // A real firmware powers off here; the probe idles.
            loop {
                core::hint::spin_loop();
            }
        }
    }
}
