//! micrun-rtos: the agent that runs inside an RTOS partition.
//!
//! ```text
//!   RTOS application ──write_stdout/stderr──► output rings ─┐
//!        ▲   ▲  read_stdin ◄── input ring ◄─┐               │
//!        │   └─ App hooks (stop, signal,    │               ▼
//!        │      resize, stats, exec)    RtosEndpoint (micrun-proto, sans-IO)
//!        │                                   ▲ handle_input     │ poll_transmit
//!     Agent::poll(now_ms) ── Link::read ─────┘                  └── Link::write
//! ```
//!
//! The [`Agent`] owns a [`micrun_proto::RtosEndpoint`] and a [`Link`] (UART, rpmsg
//! tty, pipe). Each [`Agent::poll`] reads what the link has, runs the protocol's
//! timers with the caller's clock, turns host requests into [`App`] hook calls, and
//! writes the frames that are due. The application writes console output into
//! rings sized by const generics; the agent sends it as the host grants credit, so
//! a slow host never makes the agent drop or block — `write_stdout` simply accepts
//! fewer bytes until there is room.
//!
//! Exec (`kubectl exec`, exec probes, `ctr task exec`; protocol 1.2): the host
//! asks to run one command of the application; [`App::exec`] gets its
//! arguments, the application writes the command's output with
//! [`Agent::write_exec`] and ends it with [`Agent::exec_exit`], at once or over
//! later polls. One exec runs at a time; an application without commands keeps
//! the default hook, and every exec then ends with 127 ("command not found").
//! Exec is the `exec` cargo feature (on with `demo`): without it the agent does
//! not advertise exec in the handshake, so the host refuses an exec with a clear
//! error, the exec hooks are never called, and the agent is ≈ 1.2 KB of flash
//! and one output ring smaller (docs/footprint.md).
//!
//! No allocator, no clock, no I/O of its own: the board supplies the [`Link`] and
//! the time. The `capi` feature adds a C ABI (see [`capi`]) for C RTOSes; the
//! `demo` feature adds the demo shell used by the simulator and the QEMU board.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_debug_implementations)]

#[cfg(feature = "capi")]
pub mod capi;
#[cfg(feature = "demo")]
pub mod demo;

use core::mem::MaybeUninit;
use core::ptr::addr_of_mut;

use micrun_proto::{features, RtosConfig, RtosEndpoint, RtosEvent};
pub use micrun_proto::{ExitReason, LinkKind, LogLevel, ProtocolError, Stats, Stream};

/// The link to the host.
pub trait Link {
    /// A byte stream (UART, tty, pipe: frames are COBS-encoded, and `write`
    /// gets each whole, delimiter included), or a message link ([`LinkKind::Message`]: every
    /// `read` returns exactly one message and every `write` sends one, e.g. an
    /// rpmsg endpoint). Fixed per link type, so only its code is linked.
    const KIND: LinkKind = LinkKind::Stream;
    /// Reads what has arrived, without blocking; 0 when nothing has.
    fn read(&mut self, buf: &mut [u8]) -> usize;
    /// Writes all of `data`; may block until the link takes it (e.g. a UART FIFO).
    fn write(&mut self, data: &[u8]);
}

/// What the application does when the host asks. Every hook has a default, so an
/// application implements only what it supports.
pub trait App {
    /// The host wants the application to stop within `grace_ms`; it should finish
    /// and call [`Agent::exit`].
    fn stop_requested(&mut self, grace_ms: u32) {
        let _ = grace_ms;
    }
    /// A POSIX signal number forwarded by the host (`kill -s USR1`, …).
    fn signal(&mut self, signo: u8) {
        let _ = signo;
    }
    /// The container's terminal: its size, or 0x0 (unknown) at the handshake
    /// before the client gave one. Only a container with a terminal gets it.
    fn resize(&mut self, rows: u16, cols: u16) {
        let _ = (rows, cols);
    }
    /// Resource usage to report; `uptime_ms` is the agent's clock.
    fn stats(&mut self, uptime_ms: u64) -> Stats {
        Stats {
            uptime_ms,
            ..Stats::default()
        }
    }
    /// The host asks to run a command (protocol 1.2). Start it and return
    /// `true`; write its output with [`Agent::write_exec`] and report its end
    /// with [`Agent::exec_exit`] (now or from a later poll). `false`: the
    /// application has no such command, and the exec ends with 127.
    fn exec(&mut self, args: Args<'_>) -> bool {
        let _ = args;
        false
    }
    /// A signal for the running exec (9: its caller gave up, e.g. an exec
    /// probe's timeout). The application should end it and call
    /// [`Agent::exec_exit`] (e.g. with `128 + signo`).
    fn exec_signal(&mut self, signo: u8) {
        let _ = signo;
    }
    /// The session failed (e.g. the host speaks an incompatible version). The
    /// agent keeps running and answers the next `Hello`.
    fn protocol_error(&mut self, error: ProtocolError) {
        let _ = error;
    }
}

/// The arguments of an exec: each one a byte string (not necessarily UTF-8).
#[derive(Debug, Clone, Copy)]
pub struct Args<'a> {
    /// Every argument followed by a NUL.
    raw: &'a [u8],
}

impl<'a> Args<'a> {
    /// Arguments in the wire form: every argument followed by a NUL.
    pub fn new(raw: &'a [u8]) -> Self {
        Args { raw }
    }

    /// The wire form: every argument followed by a NUL (so each one is a C
    /// string in place).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// The number of arguments.
    pub fn len(&self) -> usize {
        self.raw.iter().filter(|&&b| b == 0).count()
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
}

impl<'a> Iterator for Args<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let end = self.raw.iter().position(|&b| b == 0)?;
        let (arg, rest) = self.raw.split_at(end);
        self.raw = &rest[1..];
        Some(arg)
    }
}

/// How the agent describes itself in the handshake (each at most 24 bytes).
#[derive(Debug, Clone, Copy)]
pub struct AgentInfo {
    /// RTOS name, e.g. `zephyr`, `uniproton`, `bare-metal`.
    pub os: &'static str,
    /// Board or platform, e.g. `qemu-virt`.
    pub board: &'static str,
}

/// The agent's version, sent in `HelloAck`.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The agent.
///
/// - `FRAME`: the receive buffer, one encoded frame (≥ 128; 496 the maximum
///   useful); it bounds the frame size both ways. Frames go out from a
///   `FRAME`-byte buffer on the stack of [`Agent::poll`], COBS-encoded in it
///   on a stream link (so they are at most `FRAME` bytes on the wire);
/// - `OUT`: stdout, stderr and exec output rings each (power of two);
/// - `IN`: the console input ring (power of two);
/// - `W`: frames in flight before an acknowledgement (see
///   [`RtosEndpoint`]; raise it on fast links such as a pipe or shared memory).
pub struct Agent<
    L: Link,
    const FRAME: usize = 128,
    const OUT: usize = 1024,
    const IN: usize = 512,
    const W: usize = 4,
> {
    link: L,
    /// It also keeps the time of the last poll (for [`Agent::feed`]).
    ep: RtosEndpoint<FRAME, OUT, IN, W>,
    exit: ExitState,
    #[cfg(feature = "exec")]
    exec: ExecState,
}

/// An event for the application's hooks, one step of [`Agent::poll`] (the C
/// ABI calls its callbacks between the steps, the agent released).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Hook {
    Stop(u32),
    Signal(u8),
    Resize(u16, u16),
    /// Answer with [`Agent::send_stats`].
    Stats,
    /// An exec started; its arguments are [`Agent::exec_args`].
    #[cfg(feature = "exec")]
    Exec,
    #[cfg(feature = "exec")]
    ExecSignal(u8),
    Error(ProtocolError),
}

/// The host's exec, as far as the agent knows.
#[cfg(feature = "exec")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExecState {
    Idle,
    Running,
    /// Ended with this code; the report is not queued yet (queue full).
    Ending(i32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExitState {
    Running,
    /// `exit` was called; the report is not queued yet (queue full).
    Pending(i32, ExitReason),
    Queued,
}

impl<L: Link, const FRAME: usize, const OUT: usize, const IN: usize, const W: usize>
    core::fmt::Debug for Agent<L, FRAME, OUT, IN, W>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Agent")
            .field("endpoint", &self.ep)
            .field("now", &self.ep.now_ms())
            .field("exit", &self.exit)
            .field("exec", &self.exec_running())
            .finish_non_exhaustive()
    }
}

impl<L: Link, const FRAME: usize, const OUT: usize, const IN: usize, const W: usize>
    Agent<L, FRAME, OUT, IN, W>
{
    /// An agent on `link` (of the kind [`Link::KIND`] says).
    pub fn new(link: L, info: AgentInfo) -> Self {
        Self {
            link,
            ep: RtosEndpoint::new(Self::endpoint_config(
                info.os.as_bytes(),
                info.board.as_bytes(),
            )),
            exit: ExitState::Running,
            #[cfg(feature = "exec")]
            exec: ExecState::Idle,
        }
    }

    /// Constructs the agent in `slot` (e.g. a static's `MaybeUninit`), the same
    /// agent as [`Agent::new`] but written field by field where it stays, not
    /// built on the stack and moved: `new` needs a stack temporary of the
    /// agent's size (≈ 3.2 KB in the default configuration) and code to copy it.
    /// The endpoint is built in place too ([`RtosEndpoint::init`]), so the
    /// stack this takes does not grow with the rings (docs/footprint.md,
    /// round 6). Whatever `slot` held is overwritten without being dropped.
    pub fn init(slot: &mut MaybeUninit<Self>, link: L, info: AgentInfo) -> &mut Self {
        Self::init_named(slot, link, info.os.as_bytes(), info.board.as_bytes())
    }

    /// [`Agent::init`] with the names as bytes (UTF-8 by contract, not
    /// checked: the host replaces invalid sequences), for the C ABI.
    #[allow(unsafe_code)]
    pub(crate) fn init_named<'s>(
        slot: &'s mut MaybeUninit<Self>,
        link: L,
        os: &'static [u8],
        board: &'static [u8],
    ) -> &'s mut Self {
        let p = slot.as_mut_ptr();
        // SAFETY: `p` is valid for writes of a whole agent (it comes from a
        // `&mut MaybeUninit<Self>`); each field is written once through a raw
        // pointer, the endpoint through a `&mut MaybeUninit` of its own place
        // (same layout; no reference to an uninitialised endpoint is made),
        // and once all of them are, the agent is initialised.
        unsafe {
            addr_of_mut!((*p).link).write(link);
            RtosEndpoint::init(
                &mut *addr_of_mut!((*p).ep).cast::<MaybeUninit<RtosEndpoint<FRAME, OUT, IN, W>>>(),
                Self::endpoint_config(os, board),
            );
            addr_of_mut!((*p).exit).write(ExitState::Running);
            #[cfg(feature = "exec")]
            addr_of_mut!((*p).exec).write(ExecState::Idle);
            slot.assume_init_mut()
        }
    }

    /// The endpoint's settings for an agent on `os` and `board`.
    fn endpoint_config(os: &'static [u8], board: &'static [u8]) -> RtosConfig {
        RtosConfig {
            link: L::KIND,
            agent_version: AGENT_VERSION.as_bytes(),
            os,
            board,
            // Also when micrun-proto has exec for another crate of the build.
            features: if cfg!(feature = "exec") {
                features::ALL
            } else {
                features::ALL & !features::EXEC
            },
            ..RtosConfig::default()
        }
    }

    /// The link, e.g. to service its interrupts.
    pub fn link(&mut self) -> &mut L {
        &mut self.link
    }

    /// Whether a host is connected.
    pub fn is_connected(&self) -> bool {
        self.ep.is_connected()
    }

    /// Counters of bad frames, retransmissions, etc.
    pub fn counters(&self) -> micrun_proto::Counters {
        self.ep.counters()
    }

    /// Queues stdout bytes; returns how many fit (call again with the rest later).
    /// Before a host connects, output waits in the ring.
    pub fn write_stdout(&mut self, data: &[u8]) -> usize {
        self.ep.write(Stream::Stdout, data)
    }

    /// Queues stderr bytes; returns how many fit.
    pub fn write_stderr(&mut self, data: &[u8]) -> usize {
        self.ep.write(Stream::Stderr, data)
    }

    /// Queues output of the running exec; returns how many bytes fit (0 when
    /// no exec runs).
    pub fn write_exec(&mut self, data: &[u8]) -> usize {
        if !self.exec_running() {
            return 0;
        }
        self.ep.write(Stream::Exec, data)
    }

    /// Whether an exec is running (started and not yet ended by
    /// [`Agent::exec_exit`]).
    pub fn exec_running(&self) -> bool {
        #[cfg(feature = "exec")]
        return self.exec == ExecState::Running;
        #[cfg(not(feature = "exec"))]
        false
    }

    /// Ends the running exec with `code`; the report follows all its output.
    pub fn exec_exit(&mut self, code: i32) {
        let _ = code;
        #[cfg(feature = "exec")]
        if self.exec == ExecState::Running {
            self.exec = ExecState::Ending(code);
            self.queue_reports();
        }
    }

    /// Queues the exit and exec reports that wait for room in the control
    /// queue (one place for both, called from `exit`, `exec_exit` and `poll`).
    fn queue_reports(&mut self) {
        if let ExitState::Pending(code, reason) = self.exit {
            if self.ep.send_exited(code, reason) {
                self.exit = ExitState::Queued;
            }
        }
        #[cfg(feature = "exec")]
        if let ExecState::Ending(code) = self.exec {
            if self.ep.send_exec_exited(code) {
                self.exec = ExecState::Idle;
            }
        }
    }

    /// Takes console input from the host.
    pub fn read_stdin(&mut self, buf: &mut [u8]) -> usize {
        self.ep.read_stdin(buf)
    }

    /// Console input in place (see [`RtosEndpoint::take_stdin`]), for the C ABI.
    #[cfg(feature = "capi")]
    pub(crate) fn take_stdin(&mut self) -> &[u8] {
        self.ep.take_stdin()
    }

    /// Sends a diagnostic line; `false` if the control queue is full right now.
    pub fn log(&mut self, level: LogLevel, text: &str) -> bool {
        self.ep.send_log(level, text.as_bytes())
    }

    /// [`Agent::log`] with bytes from C (UTF-8 by contract, not checked: the
    /// host replaces invalid sequences).
    #[cfg(feature = "capi")]
    pub(crate) fn log_bytes(&mut self, level: LogLevel, text: &[u8]) -> bool {
        self.ep.send_log(level, text)
    }

    /// Reports the application's end. The report follows all output written
    /// before; once [`Agent::exit_delivered`] the partition may power off.
    pub fn exit(&mut self, code: i32, reason: ExitReason) {
        if self.exit == ExitState::Running {
            self.exit = ExitState::Pending(code, reason);
            self.queue_reports();
        }
    }

    /// The host has acknowledged the exit report and all output before it.
    pub fn exit_delivered(&self) -> bool {
        self.exit == ExitState::Queued && self.ep.is_connected() && self.ep.is_flushed()
    }

    /// Bytes received some other way (an rpmsg callback, a UART interrupt
    /// buffer) instead of through [`Link::read`].
    pub fn feed(&mut self, data: &[u8]) {
        self.ep.handle_input_on(L::KIND, self.ep.now_ms(), data);
    }

    /// When [`Agent::poll`] next has timed work, in the caller's milliseconds.
    /// Poll earlier whenever the link has input or the application wrote output.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.ep.poll_timeout()
    }

    /// Does all pending work at time `now_ms` (monotonic milliseconds, e.g. since
    /// boot): reads the link, runs timers, calls `app`'s hooks, writes frames.
    pub fn poll(&mut self, now_ms: u64, app: &mut impl App) {
        // The link's input, a frame's room (on a message link a read is one
        // whole message).
        let mut buf = [0u8; FRAME];
        // Bounded, so a babbling link cannot starve the application.
        for _ in 0..4 {
            let n = self.link.read(&mut buf);
            if n == 0 {
                break;
            }
            self.ep
                .handle_input_on(L::KIND, now_ms, &buf[..n.min(FRAME)]);
        }
        self.run_timers(now_ms);
        while let Some(hook) = self.next_hook() {
            match hook {
                Hook::Stop(grace_ms) => app.stop_requested(grace_ms),
                Hook::Signal(signo) => app.signal(signo),
                Hook::Resize(rows, cols) => app.resize(rows, cols),
                Hook::Stats => {
                    let stats = app.stats(now_ms);
                    self.send_stats(stats);
                }
                #[cfg(feature = "exec")]
                Hook::Exec => {
                    if !app.exec(self.exec_args()) {
                        self.exec_exit(127);
                    }
                }
                #[cfg(feature = "exec")]
                Hook::ExecSignal(signo) => app.exec_signal(signo),
                Hook::Error(e) => app.protocol_error(e),
            }
        }
        self.finish(now_ms);
    }

    /// Sets the clock to `now_ms` and runs the timers that are due (after
    /// the link's input, the first step of a poll). The endpoint's
    /// `handle_timeout` checks each timer's deadline itself, so it is called
    /// without asking `poll_timeout` first (which the Rust probe then does
    /// not link: −172 B; `polls_before_a_deadline_send_nothing`).
    pub(crate) fn run_timers(&mut self, now_ms: u64) {
        // The endpoint keeps `now_ms` for `feed`. Each timer checks its own deadline: no need to ask `poll_timeout` first.
        self.ep.handle_timeout(now_ms);
    }

    /// The next event for the application's hooks; the agent handles the
    /// others (the session's start, an exec without the feature) itself. An
    /// exec is marked running before its [`Hook::Exec`] is returned, and an
    /// exec signal is returned only while the exec runs.
    pub(crate) fn next_hook(&mut self) -> Option<Hook> {
        loop {
            let hook = match self.ep.poll_event()? {
                RtosEvent::Connected { .. } => {
                    self.ep.send_ready();
                    continue;
                }
                RtosEvent::StopRequested { grace_ms } => Hook::Stop(grace_ms),
                RtosEvent::Signal { signo } => Hook::Signal(signo),
                RtosEvent::Resize { rows, cols } => Hook::Resize(rows, cols),
                RtosEvent::StatsRequested => Hook::Stats,
                #[cfg(not(feature = "exec"))]
                RtosEvent::Exec { .. } => {
                    // Only when micrun-proto has exec for another crate of the
                    // build and a host ignored the features of the handshake.
                    self.ep.send_exec_exited(127);
                    continue;
                }
                #[cfg(feature = "exec")]
                RtosEvent::Exec { .. } => {
                    // The host starts one exec at a time; a new one replaces
                    // whatever this side still believed was running.
                    self.exec = ExecState::Running;
                    Hook::Exec
                }
                #[cfg(feature = "exec")]
                RtosEvent::ExecSignal { signo, .. } if self.exec_running() => {
                    Hook::ExecSignal(signo)
                }
                RtosEvent::ExecSignal { .. } | RtosEvent::Readable => continue,
                RtosEvent::Error(e) => Hook::Error(e),
            };
            return Some(hook);
        }
    }

    /// The arguments of the exec of the last [`Hook::Exec`] (until the next
    /// [`Agent::next_hook`]).
    #[cfg(feature = "exec")]
    pub(crate) fn exec_args(&self) -> Args<'_> {
        Args::new(self.ep.exec_argv())
    }

    /// Answers a [`Hook::Stats`].
    pub(crate) fn send_stats(&mut self, stats: Stats) {
        self.ep.send_stats(stats);
    }

    /// The last step of a poll: queues the pending reports and writes the
    /// frames that are due.
    pub(crate) fn finish(&mut self, now_ms: u64) {
        self.queue_reports();
        self.flush(now_ms);
    }

    /// Writes every frame that is due, each whole from a `FRAME`-byte
    /// buffer (on a stream link COBS-encoded in place, at most `FRAME` bytes
    /// with its delimiter; every control message fits: `FRAME` ≥ 128). One
    /// buffer and one encoder in place are less code than encoding the frame
    /// to the link in pieces (`RtosEndpoint::poll_transmit_to`: −128 B on the
    /// C path, −100 B on the Rust probe, docs/footprint.md round 7), and the
    /// stack of the poll is no larger: that path built the frame's head in a
    /// buffer of its own.
    fn flush(&mut self, now_ms: u64) {
        let mut tx = [0u8; FRAME];
        while let Some(n) = self.ep.poll_transmit_on(L::KIND, now_ms, &mut tx) {
            self.link.write(tx.get(..n).unwrap_or_default());
        }
    }
}

/// The agent without the `exec` feature: the handshake does not offer exec, so
/// the host refuses one. Run with `cargo test -p micrun-rtos` (no features);
/// also holds when micrun-proto has exec for another crate of the build.
#[cfg(all(test, not(feature = "exec")))]
mod no_exec_tests {
    use super::*;
    use micrun_proto::frame::{self, Header, HEADER_LEN};
    use micrun_proto::msg::{Hello, PROTOCOL_VERSION};
    use micrun_proto::{HostMsg, RtosMsg};

    use crate::init_tests::{Messages, NoHooks};

    #[test]
    fn hello_ack_does_not_offer_exec() {
        let mut agent: Agent<Messages> = Agent::new(
            Messages::default(),
            AgentInfo {
                os: "t",
                board: "b",
            },
        );
        let mut hello = [0u8; 64];
        frame::write_header(&mut hello, Header { seq: None, ack: 0 });
        let msg = HostMsg::Hello(Hello {
            version: PROTOCOL_VERSION,
            features: features::ALL,
            max_frame: 496,
            session: 1,
        });
        let n = msg.encode(&mut hello[HEADER_LEN..]).unwrap();
        let len = frame::seal(&mut hello, HEADER_LEN + n);
        agent.link().rx.push_back(hello[..len].to_vec());
        agent.poll(1, &mut NoHooks);
        assert!(agent.is_connected());
        let acks: Vec<_> = agent
            .link()
            .tx
            .iter()
            .filter_map(|f| match RtosMsg::decode(frame::open(f).ok()?.1) {
                Ok(RtosMsg::HelloAck(a)) => Some(a.features),
                _ => None,
            })
            .collect();
        assert_eq!(acks.len(), 1, "one HelloAck");
        assert_eq!(acks[0] & features::EXEC, 0, "exec offered");
        assert_eq!(acks[0], features::ALL & !features::EXEC);
        assert!(!agent.exec_running());
        assert_eq!(agent.write_exec(b"x"), 0);
    }
}

/// [`Agent::init`] builds the same agent as [`Agent::new`].
#[cfg(test)]
mod init_tests {
    use super::*;
    use micrun_proto::{HostConfig, HostEndpoint, HostEvent};
    use std::collections::VecDeque;

    /// A byte-stream link: what the host sent, what the agent wrote.
    #[derive(Default)]
    struct Pipe {
        rx: VecDeque<u8>,
        tx: Vec<u8>,
    }

    impl Link for Pipe {
        fn read(&mut self, buf: &mut [u8]) -> usize {
            let n = buf.len().min(self.rx.len());
            for b in &mut buf[..n] {
                *b = self.rx.pop_front().unwrap_or(0);
            }
            n
        }
        fn write(&mut self, data: &[u8]) {
            self.tx.extend_from_slice(data);
        }
    }

    /// Records every hook call.
    #[derive(Default)]
    struct Recorder(Vec<String>);

    impl App for Recorder {
        fn stop_requested(&mut self, grace_ms: u32) {
            self.0.push(format!("stop {grace_ms}"));
        }
        fn signal(&mut self, signo: u8) {
            self.0.push(format!("signal {signo}"));
        }
        fn resize(&mut self, rows: u16, cols: u16) {
            self.0.push(format!("resize {rows}x{cols}"));
        }
        fn stats(&mut self, uptime_ms: u64) -> Stats {
            self.0.push(format!("stats {uptime_ms}"));
            Stats {
                uptime_ms,
                cpu_load_permille: 7,
                mem_used_kib: 8,
                mem_total_kib: 9,
            }
        }
        fn exec(&mut self, args: Args<'_>) -> bool {
            self.0.push(format!("exec {:?}", args.as_bytes()));
            true
        }
        fn exec_signal(&mut self, signo: u8) {
            self.0.push(format!("exec signal {signo}"));
        }
    }

    type TestAgent = Agent<Pipe, 128, 256, 128>;

    /// Runs one scripted session against a host endpoint (same clock, same
    /// requests) and returns everything observable: the agent's wire bytes,
    /// its hook calls, what the host saw, and the agent's state.
    fn session(agent: &mut TestAgent) -> (Vec<u8>, Vec<String>, Vec<String>, String) {
        let mut host: HostEndpoint = HostEndpoint::new(HostConfig::default(), 0);
        let mut app = Recorder::default();
        let (mut wire, mut seen) = (Vec::new(), Vec::new());
        let mut buf = [0u8; 600];
        let mut console = [0u8; 256];
        agent.write_stdout(b"early output\n");
        for t in 0..400u64 {
            while let Some(n) = host.poll_transmit(t, &mut buf) {
                agent.link().rx.extend(&buf[..n]);
            }
            agent.poll(t, &mut app);
            let out = core::mem::take(&mut agent.link().tx);
            host.handle_input(t, &out);
            wire.extend_from_slice(&out);
            if host.poll_timeout().is_some_and(|d| d <= t) {
                host.handle_timeout(t);
            }
            while let Some(e) = host.poll_event() {
                if let HostEvent::Readable(s) = e {
                    let n = host.read_console(s, &mut console);
                    seen.push(format!("{s:?} {:?}", &console[..n]));
                } else {
                    seen.push(format!("{e:?}"));
                }
            }
            let mut input = [0u8; 32];
            let n = agent.read_stdin(&mut input);
            agent.write_stdout(&input[..n]);
            match t {
                20 => assert_eq!(host.write_stdin(b"hello agent\n"), 12),
                30 => host.request_stats().unwrap(),
                40 => host.send_signal(10).unwrap(),
                50 => host.send_resize(24, 80).unwrap(),
                60 => assert!(agent.log(LogLevel::Info, "a log line")),
                70 if host.can_exec() => host.send_exec_start(1, b"cmd\0arg\0").unwrap(),
                80 => {
                    agent.write_exec(b"exec output\n");
                    agent.exec_exit(3);
                }
                90 => host.send_stop(500).unwrap(),
                100 => agent.exit(5, ExitReason::Normal),
                _ => {}
            }
        }
        let state = format!(
            "{agent:?} {:?} {} {}",
            agent.counters(),
            agent.exit_delivered(),
            agent.is_connected()
        );
        (wire, app.0, seen, state)
    }

    /// A poll before the agent's deadline (`poll_timeout`), with no input and
    /// no new output, writes nothing and retransmits nothing: the timers run
    /// only when due, announcing before a host connects and retransmitting
    /// after (the host's frames to the agent are dropped, so nothing is
    /// acknowledged).
    #[test]
    fn polls_before_a_deadline_send_nothing() {
        let mut agent = TestAgent::new(Pipe::default(), info());
        let mut host: HostEndpoint = HostEndpoint::new(HostConfig::default(), 0);
        let mut buf = [0u8; 600];
        let (mut due_polls, mut retransmits) = (0, 0);
        for t in 0..4000u64 {
            if t == 1000 {
                // Connect: the host's Hello, then output the host never acknowledges.
                while let Some(n) = host.poll_transmit(t, &mut buf) {
                    agent.link().rx.extend(&buf[..n]);
                }
                agent.poll(t, &mut NoHooks);
                assert!(agent.is_connected());
                agent.write_stdout(b"never acknowledged\n");
                agent.poll(t, &mut NoHooks);
                assert!(!agent.link().tx.is_empty());
                agent.link().tx.clear();
                continue;
            }
            let due = agent.poll_timeout().is_some_and(|d| d <= t);
            agent.poll(t, &mut NoHooks);
            let sent = !core::mem::take(&mut agent.link().tx).is_empty();
            let r = agent.counters().retransmits;
            if due {
                due_polls += 1;
            } else {
                assert!(!sent, "a frame at {t} ms, before the deadline");
                assert_eq!(
                    r, retransmits,
                    "a retransmission at {t} ms, before the deadline"
                );
            }
            retransmits = r;
        }
        // Announcements (200 ms, backing off) and retransmissions (100 ms, backing off).
        assert!(due_polls >= 6, "{due_polls} due polls");
        assert!(retransmits >= 3, "{retransmits} retransmissions");
    }

    /// An application without hooks.
    pub(crate) struct NoHooks;
    impl App for NoHooks {}

    /// A message link (rpmsg-like): one message per read and per write; a
    /// read into a smaller buffer gets the message's start only.
    #[derive(Default)]
    pub(crate) struct Messages {
        pub(crate) rx: VecDeque<Vec<u8>>,
        pub(crate) tx: Vec<Vec<u8>>,
    }

    impl Link for Messages {
        const KIND: LinkKind = LinkKind::Message;

        fn read(&mut self, buf: &mut [u8]) -> usize {
            let Some(m) = self.rx.pop_front() else {
                return 0;
            };
            let n = m.len().min(buf.len());
            buf[..n].copy_from_slice(&m[..n]);
            n
        }
        fn write(&mut self, data: &[u8]) {
            self.tx.push(data.to_vec());
        }
    }

    /// On a message link, `poll` reads each message whole, up to a frame:
    /// console input in a 200-byte frame arrives intact (a read buffer of
    /// 64 bytes, as before, cut it and the frame failed its CRC).
    #[test]
    fn message_link_reads_whole_frames() {
        let mut agent: Agent<Messages> = Agent::new(Messages::default(), info());
        let mut host: HostEndpoint = HostEndpoint::new(
            HostConfig {
                link: LinkKind::Message,
                ..HostConfig::default()
            },
            0,
        );
        let input: Vec<u8> = (0..180u8).map(|i| b'a' + i % 26).collect();
        let mut buf = [0u8; 600];
        let mut got = Vec::new();
        for t in 0..50u64 {
            if t == 10 {
                assert!(host.is_connected());
                assert_eq!(host.write_stdin(&input), input.len());
            }
            while let Some(n) = host.poll_transmit(t, &mut buf) {
                agent.link().rx.push_back(buf[..n].to_vec());
            }
            agent.poll(t, &mut NoHooks);
            for m in core::mem::take(&mut agent.link().tx) {
                host.handle_input(t, &m);
            }
            while host.poll_event().is_some() {}
            let mut chunk = [0u8; 256];
            let n = agent.read_stdin(&mut chunk);
            got.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(got, input);
        assert_eq!(agent.counters().errors(), 0, "{:?}", agent.counters());
    }

    fn info() -> AgentInfo {
        AgentInfo {
            os: "test-os",
            board: "test-board",
        }
    }

    #[test]
    #[allow(unsafe_code)]
    fn init_in_place_behaves_like_new() {
        let mut by_value = TestAgent::new(Pipe::default(), info());
        let expected = session(&mut by_value);
        assert!(expected.3.ends_with("true true"), "{}", expected.3);
        assert!(
            expected.1.contains(&"signal 10".to_string()),
            "{:?}",
            expected.1
        );
        assert!(
            expected.2.iter().any(|e| e.starts_with("Exited")),
            "{:?}",
            expected.2
        );

        // A slot full of garbage: `init` must write every field of the agent,
        // the endpoint's included (`RtosEndpoint::init`).
        for garbage in [0xA5, 0x00, 0xFF] {
            let mut slot = Box::new(MaybeUninit::<TestAgent>::uninit());
            // SAFETY: writes bytes into the slot's own memory, which is uninit anyway.
            unsafe {
                slot.as_mut_ptr()
                    .cast::<u8>()
                    .write_bytes(garbage, core::mem::size_of::<TestAgent>());
            }
            let in_place = Agent::init(&mut slot, Pipe::default(), info());
            assert_eq!(session(in_place), expected, "garbage {garbage:#x}");

            // Initialising again resets a used agent.
            let again = Agent::init(&mut slot, Pipe::default(), info());
            assert_eq!(session(again), expected, "again, garbage {garbage:#x}");
        }
    }
}
