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

use micrun_proto::{features, RtosConfig, RtosEndpoint, RtosEvent};
pub use micrun_proto::{ExitReason, LinkKind, LogLevel, ProtocolError, Stats, Stream};

/// The link to the host.
pub trait Link {
    /// A byte stream (UART, tty, pipe: frames are COBS-encoded, and `write`
    /// gets each in pieces), or a message link ([`LinkKind::Message`]: every
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
    /// The host terminal changed size.
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
///   useful); it bounds the frame size both ways. Frames go out without a
///   buffer of their own on a stream link, from a `FRAME`-byte one on the
///   stack of [`Agent::poll`] on a message link;
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
    ep: RtosEndpoint<FRAME, OUT, IN, W>,
    /// The time of the last poll (for [`Agent::feed`]).
    now: Ms,
    exit: ExitState,
    #[cfg(feature = "exec")]
    exec: ExecState,
}

/// A time in milliseconds, stored 4-aligned (a `u64` is 8-aligned on 32-bit
/// targets and would pad the agent).
#[derive(Debug, Clone, Copy)]
#[repr(C, packed(4))]
struct Ms(u64);

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
            .field("now", &{ self.now.0 })
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
            ep: RtosEndpoint::new(RtosConfig {
                link: L::KIND,
                agent_version: AGENT_VERSION,
                os: info.os,
                board: info.board,
                // Also when micrun-proto has exec for another crate of the build.
                features: if cfg!(feature = "exec") {
                    features::ALL
                } else {
                    features::ALL & !features::EXEC
                },
                ..RtosConfig::default()
            }),
            now: Ms(0),
            exit: ExitState::Running,
            #[cfg(feature = "exec")]
            exec: ExecState::Idle,
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

    /// Sends a diagnostic line; `false` if the control queue is full right now.
    pub fn log(&mut self, level: LogLevel, text: &str) -> bool {
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
        self.ep.handle_input(self.now.0, data);
    }

    /// When [`Agent::poll`] next has timed work, in the caller's milliseconds.
    /// Poll earlier whenever the link has input or the application wrote output.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.ep.poll_timeout()
    }

    /// Does all pending work at time `now_ms` (monotonic milliseconds, e.g. since
    /// boot): reads the link, runs timers, calls `app`'s hooks, writes frames.
    pub fn poll(&mut self, now_ms: u64, app: &mut impl App) {
        self.now = Ms(now_ms);
        // Bounded, so a babbling link cannot starve the application.
        let mut chunk = [0u8; 64];
        for _ in 0..(4 * FRAME / chunk.len()).max(1) {
            let n = self.link.read(&mut chunk);
            if n == 0 {
                break;
            }
            self.ep.handle_input(now_ms, &chunk[..n.min(chunk.len())]);
        }
        // Each timer checks its own deadline: no need to ask `poll_timeout` first.
        self.ep.handle_timeout(now_ms);
        while let Some(event) = self.ep.poll_event() {
            match event {
                RtosEvent::Connected { .. } => {
                    self.ep.send_ready();
                }
                RtosEvent::StopRequested { grace_ms } => app.stop_requested(grace_ms),
                RtosEvent::Signal { signo } => app.signal(signo),
                RtosEvent::Resize { rows, cols } => app.resize(rows, cols),
                RtosEvent::StatsRequested => {
                    let stats = app.stats(now_ms);
                    self.ep.send_stats(stats);
                }
                #[cfg(not(feature = "exec"))]
                RtosEvent::Exec { .. } => {
                    // Only when micrun-proto has exec for another crate of the
                    // build and a host ignored the features of the handshake.
                    self.ep.send_exec_exited(127);
                }
                #[cfg(feature = "exec")]
                RtosEvent::Exec { .. } => {
                    // The host starts one exec at a time; a new one replaces
                    // whatever this side still believed was running.
                    self.exec = ExecState::Running;
                    if !app.exec(Args::new(self.ep.exec_argv())) {
                        self.exec_exit(127);
                    }
                }
                RtosEvent::ExecSignal { signo, .. } => {
                    if self.exec_running() {
                        app.exec_signal(signo);
                    }
                }
                RtosEvent::Readable => {}
                RtosEvent::Error(e) => app.protocol_error(e),
            }
        }
        self.queue_reports();
        self.flush(now_ms);
    }

    /// Writes every frame that is due.
    fn flush(&mut self, now_ms: u64) {
        let link = &mut self.link;
        match L::KIND {
            LinkKind::Stream => while self.ep.poll_transmit_to(now_ms, &mut |p| link.write(p)) {},
            LinkKind::Message => {
                let mut tx = [0u8; FRAME];
                while let Some(n) = self.ep.poll_transmit(now_ms, &mut tx) {
                    link.write(&tx[..n]);
                }
            }
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

    /// A message link: one frame per read and per write.
    #[derive(Default)]
    struct Frames {
        rx: Vec<Vec<u8>>,
        tx: Vec<Vec<u8>>,
    }

    impl Link for Frames {
        const KIND: LinkKind = LinkKind::Message;

        fn read(&mut self, buf: &mut [u8]) -> usize {
            let Some(f) = self.rx.pop() else { return 0 };
            buf[..f.len()].copy_from_slice(&f);
            f.len()
        }
        fn write(&mut self, data: &[u8]) {
            self.tx.push(data.to_vec());
        }
    }

    struct NoApp;
    impl App for NoApp {}

    #[test]
    fn hello_ack_does_not_offer_exec() {
        let mut agent: Agent<Frames> = Agent::new(
            Frames::default(),
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
        agent.link().rx.push(hello[..len].to_vec());
        agent.poll(1, &mut NoApp);
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
