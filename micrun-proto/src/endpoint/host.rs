//! The host side of a session: opens it with `Hello` (at once, or when the agent
//! has announced itself to a listening host), watches the peer's liveness,
//! sends control messages and console input, receives console output and reports.

use heapless::{Deque, String, Vec};

use super::session::{bump, Counters, Ms, Role, SeqVerdict, Session, Timing};
use super::{count_frame_error, raw_layout, to_wire, LinkKind, ProtocolError};
use crate::frame::{self, Deframer, HEADER_LEN, MAX_FRAME, MIN_FRAME};
use crate::msg::{
    argv_ok, encode_console_in_head, features, push_lossy, CodecError, ExitReason, Hello, HostMsg,
    LogLevel, RtosMsg, Stats, Stream, Version, MAX_ARGV, MAX_LOG, MAX_NAME, PROTOCOL_VERSION,
};

/// Host endpoint settings. Times in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct HostConfig {
    /// Identifies this session to the agent; pick a new value (random, or a
    /// counter kept across restarts) for every new session on the same link.
    pub session: u32,
    pub link: LinkKind,
    /// Largest frame the host accepts (at most [`MAX_FRAME`]).
    pub max_frame: u16,
    pub features: u32,
    /// `Hello` is repeated at this interval until answered.
    pub hello_interval_ms: u32,
    /// Give up the handshake after this long ([`ProtocolError::HandshakeTimeout`]);
    /// `None` waits forever.
    pub handshake_timeout_ms: Option<u32>,
    /// A `Ping` goes out at this interval once connected.
    pub ping_interval_ms: u32,
    /// [`HostEvent::PeerLost`] after this long without a valid frame from the agent.
    pub peer_timeout_ms: u32,
    /// The first retransmission timeout, doubling per unanswered round up to
    /// `rto_max_ms`; both between 1 and 65535 (clamped).
    pub rto_initial_ms: u32,
    pub rto_max_ms: u32,
    /// Start in [`HostState::Listening`]: send nothing until the agent's
    /// `Announce` has been received (protocol 1.1), so that a firmware without
    /// the agent never sees a byte it did not get from the user.
    pub listen: bool,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            session: 1,
            link: LinkKind::Stream,
            max_frame: MAX_FRAME as u16,
            features: features::ALL,
            hello_interval_ms: 100,
            handshake_timeout_ms: None,
            ping_interval_ms: 1000,
            peer_timeout_ms: 5000,
            rto_initial_ms: 100,
            rto_max_ms: 2000,
            listen: false,
        }
    }
}

/// What the agent told us about itself in `HelloAck`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The version the session uses (same major, lower minor of the two).
    pub version: Version,
    /// Features both sides have.
    pub features: u32,
    /// Frame size the session uses (the smaller of the two).
    pub max_frame: u16,
    /// The agent's names, each invalid UTF-8 sequence as U+FFFD
    /// ([`crate::msg::push_lossy`]).
    pub agent_version: String<MAX_NAME>,
    pub os: String<MAX_NAME>,
    pub board: String<MAX_NAME>,
}

/// Something the host application should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEvent {
    /// A listening host received the agent's `Announce` and now opens the session.
    Announced {
        version: Version,
    },
    /// The handshake completed.
    Connected(PeerInfo),
    /// The RTOS application is up.
    Ready,
    /// A `Ping` was answered.
    Pong {
        nonce: u32,
        uptime_ms: u64,
    },
    Stats(Stats),
    /// The RTOS application ended. Its console output before this point has been
    /// delivered to the console rings.
    Exited {
        code: i32,
        reason: ExitReason,
    },
    /// A log line: the agent's text with each invalid UTF-8 sequence as
    /// U+FFFD ([`crate::msg::push_lossy`]), as much as fits.
    Log {
        level: LogLevel,
        text: String<MAX_LOG>,
    },
    /// Console bytes are waiting in [`HostEndpoint::read_console`].
    Readable(Stream),
    /// Exec `exec` ended with `code`; all its output has been delivered to the
    /// [`Stream::Exec`] ring before this event.
    ExecExited {
        exec: u32,
        code: i32,
    },
    /// No valid frame for `silent_ms`; the session is over.
    PeerLost {
        silent_ms: u64,
    },
    /// The session cannot go on.
    Error(ProtocolError),
}

/// Where the host's session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostState {
    /// Waiting, silent, for the agent's `Announce` ([`HostConfig::listen`]).
    Listening,
    Handshaking,
    Connected,
    /// Ended by [`HostEvent::PeerLost`] or [`HostEvent::Error`].
    Closed,
}

pub(crate) struct HostRole;

/// Host→RTOS control messages waiting for delivery.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HostCtrl {
    Stop(u32),
    Signal(u8),
    Resize(u16, u16),
    StatsRequest,
    /// The arguments are in the session's extra storage: one start in flight.
    ExecStart(u32),
    ExecSignal(u32, u8),
}

impl crate::queue::Item for HostCtrl {
    const FILL: HostCtrl = HostCtrl::Stop(0);
}

impl Role for HostRole {
    type Ctrl = HostCtrl;
    type Extra = Vec<u8, MAX_ARGV>;
    type At = Ms;
    const TX: &'static [Stream] = &[Stream::Stdin];
    const RX: &'static [Stream] = &[Stream::Stdout, Stream::Stderr, Stream::Exec];
    const TX_FIRST: Stream = Stream::Stdin;

    fn encode_ctrl(
        c: &HostCtrl,
        argv: &Vec<u8, MAX_ARGV>,
        buf: &mut [u8],
    ) -> Result<usize, CodecError> {
        match *c {
            HostCtrl::Stop(grace_ms) => HostMsg::Stop { grace_ms },
            HostCtrl::Signal(signo) => HostMsg::Signal { signo },
            HostCtrl::Resize(rows, cols) => HostMsg::Resize { rows, cols },
            HostCtrl::StatsRequest => HostMsg::StatsRequest,
            HostCtrl::ExecStart(exec) => HostMsg::ExecStart { exec, argv },
            HostCtrl::ExecSignal(exec, signo) => HostMsg::ExecSignal { exec, signo },
        }
        .encode(buf)
    }

    fn encode_data_head(_: Stream, len: usize, buf: &mut [u8]) -> Result<usize, CodecError> {
        encode_console_in_head(len, buf)
    }

    fn encode_credit(stream: Stream, bytes: u32, buf: &mut [u8]) -> Result<usize, CodecError> {
        HostMsg::Credit { stream, bytes }.encode(buf)
    }

    fn after_output(_: &HostCtrl) -> bool {
        false
    }
}

/// Events the queue keeps room for, so that a final `PeerLost`/`Error` always fits.
const EVENTS: usize = 16;
const EVENT_RESERVE: usize = 2;
/// Largest encoded frame the host reads: a full rpmsg-sized frame after COBS.
const RX_WIRE: usize = frame::cobs_max_len(MAX_FRAME);

/// The host endpoint. `IN` is the console input ring (host → RTOS), `OUT` the size
/// of each output ring (stdout, stderr, exec); both powers of two.
pub struct HostEndpoint<const IN: usize = 1024, const OUT: usize = 8192> {
    cfg: HostConfig,
    state: HostState,
    session: Session<HostRole, 1, IN, 3, OUT, 8, 8>,
    deframer: Deframer<RX_WIRE>,
    events: Deque<HostEvent, EVENTS>,
    peer: Option<PeerInfo>,
    max_frame: usize,
    handshake_deadline: Option<u64>,
    next_hello: u64,
    hello_due: bool,
    next_ping: u64,
    ping_due: bool,
    ping_nonce: u32,
    last_rx: u64,
}

impl<const IN: usize, const OUT: usize> core::fmt::Debug for HostEndpoint<IN, OUT> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HostEndpoint")
            .field("state", &self.state)
            .field("peer", &self.peer)
            .field("counters", &self.session.counters)
            .finish_non_exhaustive()
    }
}

impl<const IN: usize, const OUT: usize> HostEndpoint<IN, OUT> {
    /// A new endpoint that starts its handshake at `now_ms`.
    pub fn new(cfg: HostConfig, now_ms: u64) -> Self {
        let max_frame = usize::from(cfg.max_frame).clamp(MIN_FRAME, MAX_FRAME);
        let mut ep = Self {
            cfg,
            state: HostState::Handshaking,
            session: Session::new(Timing::new(cfg.rto_initial_ms, cfg.rto_max_ms)),
            deframer: Deframer::new(),
            events: Deque::new(),
            peer: None,
            max_frame,
            handshake_deadline: None,
            next_hello: 0,
            hello_due: false,
            next_ping: 0,
            ping_due: false,
            ping_nonce: 0,
            last_rx: now_ms,
        };
        ep.cfg.max_frame = max_frame as u16;
        if cfg.listen {
            ep.state = HostState::Listening;
        } else {
            ep.start_handshake(now_ms);
        }
        ep
    }

    fn start_handshake(&mut self, now: u64) {
        self.state = HostState::Handshaking;
        self.peer = None;
        self.hello_due = true;
        self.next_hello = now + u64::from(self.cfg.hello_interval_ms.max(1));
        self.handshake_deadline = self.cfg.handshake_timeout_ms.map(|t| now + u64::from(t));
        self.deframer.reset();
    }

    /// Opens a new session on the same link (e.g. after the agent rebooted or after
    /// [`HostState::Closed`]). Unacknowledged console input is sent again.
    pub fn reconnect(&mut self, now_ms: u64, session: u32) {
        self.cfg.session = session;
        self.session.restart();
        self.start_handshake(now_ms);
    }

    /// Restarts the liveness clock at `now_ms`, e.g. after the partition was paused
    /// (a paused partition cannot answer pings, and that is not a lost peer). Call
    /// it on resume; do not call `handle_timeout` while paused.
    pub fn reset_liveness(&mut self, now_ms: u64) {
        self.last_rx = now_ms;
        self.next_ping = now_ms + u64::from(self.cfg.ping_interval_ms.max(1));
        self.ping_due = false;
    }

    pub fn state(&self) -> HostState {
        self.state
    }

    pub fn is_connected(&self) -> bool {
        self.state == HostState::Connected
    }

    /// The agent's identity, once connected.
    pub fn peer(&self) -> Option<&PeerInfo> {
        self.peer.as_ref()
    }

    pub fn counters(&self) -> Counters {
        self.session.counters
    }

    // ---- application API --------------------------------------------------------

    /// Queues console input; returns how many bytes fit (the rest must be offered
    /// again later).
    pub fn write_stdin(&mut self, data: &[u8]) -> usize {
        self.session.write(Stream::Stdin, data)
    }

    /// Free space in the console input ring.
    pub fn stdin_free(&self) -> usize {
        self.session.tx_free(Stream::Stdin)
    }

    /// Console input written but not yet acknowledged by the agent.
    pub fn stdin_unacked(&self) -> usize {
        self.session.tx_unacked()
    }

    /// Takes received console output of `stream`. Reading returns credit to the agent.
    pub fn read_console(&mut self, stream: Stream, out: &mut [u8]) -> usize {
        self.session.read(stream, out)
    }

    /// Bytes waiting in [`HostEndpoint::read_console`].
    pub fn readable(&self, stream: Stream) -> usize {
        self.session.readable(stream)
    }

    fn queue(&mut self, c: HostCtrl) -> Result<(), QueueFull> {
        if self.session.queue_ctrl(c) {
            Ok(())
        } else {
            Err(QueueFull)
        }
    }

    /// Asks the application to stop within `grace_ms`.
    pub fn send_stop(&mut self, grace_ms: u32) -> Result<(), QueueFull> {
        self.queue(HostCtrl::Stop(grace_ms))
    }

    /// Forwards a signal number.
    pub fn send_signal(&mut self, signo: u8) -> Result<(), QueueFull> {
        self.queue(HostCtrl::Signal(signo))
    }

    pub fn send_resize(&mut self, rows: u16, cols: u16) -> Result<(), QueueFull> {
        self.queue(HostCtrl::Resize(rows, cols))
    }

    /// Asks for a [`HostEvent::Stats`].
    pub fn request_stats(&mut self) -> Result<(), QueueFull> {
        self.queue(HostCtrl::StatsRequest)
    }

    /// Whether the session can carry exec: connected, and both sides have
    /// [`features::EXEC`] (a 1.0/1.1 agent, or one without commands, has not).
    pub fn can_exec(&self) -> bool {
        self.state == HostState::Connected
            && self
                .peer
                .as_ref()
                .is_some_and(|p| p.features & features::EXEC != 0)
    }

    /// Starts exec `exec` (protocol 1.2): `argv` is every argument followed by
    /// a NUL, at most [`MAX_ARGV`] bytes. One exec at a time: wait for its
    /// [`HostEvent::ExecExited`] before the next. `Err` (nothing is sent) when
    /// the session cannot carry exec ([`HostEndpoint::can_exec`]), the queue is
    /// full, a start is still unacknowledged, or `argv` is not of that form.
    pub fn send_exec_start(&mut self, exec: u32, argv: &[u8]) -> Result<(), QueueFull> {
        if !self.can_exec()
            || !argv_ok(argv)
            || self
                .session
                .ctrl_queued(|c| matches!(c, HostCtrl::ExecStart(_)))
        {
            return Err(QueueFull);
        }
        self.session.extra.clear();
        let _ = self.session.extra.extend_from_slice(argv);
        self.queue(HostCtrl::ExecStart(exec))
    }

    /// Forwards a signal to exec `exec` (e.g. 9 when its deadline passed).
    /// `Err` as for [`HostEndpoint::send_exec_start`] (except `argv`).
    pub fn send_exec_signal(&mut self, exec: u32, signo: u8) -> Result<(), QueueFull> {
        if !self.can_exec() {
            return Err(QueueFull);
        }
        self.queue(HostCtrl::ExecSignal(exec, signo))
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<HostEvent> {
        self.events.pop_front()
    }

    // ---- driving ----------------------------------------------------------------

    /// Feeds bytes received from the link (any split). On a message link, each
    /// call must be exactly one message.
    pub fn handle_input(&mut self, now_ms: u64, data: &[u8]) {
        match self.cfg.link {
            LinkKind::Message => {
                let mut buf = [0u8; MAX_FRAME];
                if data.len() > MAX_FRAME {
                    bump(&mut self.session.counters.oversized_frames);
                    return;
                }
                buf[..data.len()].copy_from_slice(data);
                self.handle_frame(now_ms, &buf[..data.len()]);
            }
            LinkKind::Stream => {
                let mut rest = data;
                while !rest.is_empty() {
                    let (used, res) = self.deframer.push(rest);
                    rest = &rest[used..];
                    match res {
                        Some(Ok(len)) => {
                            let mut buf = [0u8; MAX_FRAME];
                            let frame = self.deframer.frame(len);
                            if frame.len() > MAX_FRAME {
                                bump(&mut self.session.counters.oversized_frames);
                                continue;
                            }
                            buf[..frame.len()].copy_from_slice(frame);
                            self.handle_frame(now_ms, &buf[..len]);
                        }
                        Some(Err(e)) => count_frame_error(&mut self.session.counters, e),
                        None => {}
                    }
                }
            }
        }
    }

    fn push_event(&mut self, e: HostEvent) {
        if self.events.is_full() {
            self.events.pop_front();
        }
        let _ = self.events.push_back(e);
    }

    fn handle_frame(&mut self, now: u64, raw: &[u8]) {
        let (header, payload) = match frame::open(raw) {
            Ok(x) => x,
            Err(e) => return count_frame_error(&mut self.session.counters, e),
        };
        if self.state == HostState::Closed {
            return;
        }
        self.last_rx = now;
        let msg = if payload.is_empty() {
            None
        } else {
            match RtosMsg::decode(payload) {
                Ok(m) => Some(m),
                Err(_) => {
                    bump(&mut self.session.counters.unknown_messages);
                    // Acknowledge it anyway so a newer agent's message cannot stall us.
                    if let (Some(seq), HostState::Connected) = (header.seq, self.state) {
                        self.session.on_ack(header.ack, now);
                        if self.session.check_seq(seq) == SeqVerdict::Deliver {
                            self.session.accept_seq();
                        }
                    }
                    return;
                }
            }
        };

        if let Some(RtosMsg::HelloAck(ack)) = msg {
            return self.on_hello_ack(now, &ack);
        }
        if let Some(RtosMsg::Announce(a)) = msg {
            return self.on_announce(now, &a);
        }
        if self.state != HostState::Connected {
            bump(&mut self.session.counters.unexpected);
            return;
        }
        self.session.on_ack(header.ack, now);
        let Some(msg) = msg else { return };
        match header.seq {
            None => {
                if let RtosMsg::Pong { nonce, uptime_ms } = msg {
                    self.push_event(HostEvent::Pong { nonce, uptime_ms });
                } else {
                    bump(&mut self.session.counters.unexpected);
                }
            }
            Some(seq) => {
                if self.events.len() + EVENT_RESERVE + 1 > EVENTS {
                    // No room for what it may produce: let the agent send it again.
                    return;
                }
                if self.session.check_seq(seq) == SeqVerdict::Drop {
                    return;
                }
                self.session.accept_seq();
                self.deliver(msg);
            }
        }
    }

    fn deliver(&mut self, msg: RtosMsg<'_>) {
        let event = match msg {
            RtosMsg::Ready => HostEvent::Ready,
            RtosMsg::Stats(s) => HostEvent::Stats(s),
            RtosMsg::Exited { code, reason } => HostEvent::Exited { code, reason },
            RtosMsg::ExecExited { exec, code } => HostEvent::ExecExited { exec, code },
            RtosMsg::Log { level, text } => {
                let mut t = String::new();
                push_lossy(&mut t, text);
                HostEvent::Log { level, text: t }
            }
            RtosMsg::ConsoleOut { stream, data } => {
                let was_empty = self.session.readable(stream) == 0;
                self.session.ingest(stream, data);
                if !(was_empty && self.session.readable(stream) > 0) {
                    return;
                }
                HostEvent::Readable(stream)
            }
            RtosMsg::Credit { stream, bytes } => {
                self.session.add_credit(stream, bytes);
                return;
            }
            RtosMsg::HelloAck(_) | RtosMsg::Pong { .. } | RtosMsg::Announce(_) => {
                // Unsequenced kinds in a sequenced frame: accepted, ignored.
                bump(&mut self.session.counters.unexpected);
                return;
            }
        };
        self.push_event(event);
    }

    /// The agent's announcement, found by the caller (e.g. an
    /// [`super::AnnounceFilter`] on a console shared with raw output): as if
    /// its frame had arrived through [`HostEndpoint::handle_input`].
    pub fn handle_announce(&mut self, now_ms: u64, a: &crate::msg::Announce) {
        self.last_rx = now_ms;
        self.on_announce(now_ms, a);
    }

    fn on_announce(&mut self, now: u64, a: &crate::msg::Announce) {
        match self.state {
            HostState::Listening => {
                self.start_handshake(now);
                self.push_event(HostEvent::Announced { version: a.version });
            }
            // Waiting for an answer: the agent is there now, say Hello at once.
            HostState::Handshaking => self.hello_due = true,
            // The agent no longer hears us; our pings will tell it otherwise.
            HostState::Connected | HostState::Closed => {}
        }
    }

    fn on_hello_ack(&mut self, now: u64, ack: &crate::msg::HelloAck<'_>) {
        if ack.session != self.cfg.session || self.state != HostState::Handshaking {
            // A late answer to an earlier Hello, or a repeat.
            return;
        }
        if !PROTOCOL_VERSION.compatible(ack.version) {
            self.state = HostState::Closed;
            return self.push_event(HostEvent::Error(ProtocolError::IncompatibleVersion {
                ours: PROTOCOL_VERSION,
                peer: ack.version,
            }));
        }
        if usize::from(ack.max_frame) < MIN_FRAME {
            self.state = HostState::Closed;
            return self.push_event(HostEvent::Error(ProtocolError::FrameTooSmall {
                peer_max_frame: ack.max_frame,
            }));
        }
        self.max_frame = self.max_frame.min(usize::from(ack.max_frame));
        let mut info = PeerInfo {
            version: PROTOCOL_VERSION.negotiate(ack.version),
            features: self.cfg.features & ack.features,
            max_frame: self.max_frame as u16,
            agent_version: String::new(),
            os: String::new(),
            board: String::new(),
        };
        // Bounds were checked by the decoder.
        push_lossy(&mut info.agent_version, ack.agent_version);
        push_lossy(&mut info.os, ack.os);
        push_lossy(&mut info.board, ack.board);
        self.session.restart();
        self.state = HostState::Connected;
        self.handshake_deadline = None;
        self.hello_due = false;
        self.last_rx = now;
        self.next_ping = now + u64::from(self.cfg.ping_interval_ms.max(1));
        self.peer = Some(info.clone());
        self.push_event(HostEvent::Connected(info));
    }

    /// The next time [`HostEndpoint::handle_timeout`] has work, if any.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        let mut t: Option<u64> = None;
        let mut take = |x: Option<u64>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        match self.state {
            HostState::Listening => {}
            HostState::Handshaking => {
                take(Some(self.next_hello));
                take(self.handshake_deadline);
            }
            HostState::Connected => {
                take(Some(self.next_ping));
                take(Some(self.last_rx + u64::from(self.cfg.peer_timeout_ms)));
                take(self.session.poll_timeout().map(|at| at.0));
            }
            HostState::Closed => {}
        }
        t
    }

    /// Runs the timers that are due at `now_ms`.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        match self.state {
            HostState::Handshaking => {
                if self.handshake_deadline.is_some_and(|d| now_ms >= d) {
                    self.state = HostState::Closed;
                    return self.push_event(HostEvent::Error(ProtocolError::HandshakeTimeout));
                }
                if now_ms >= self.next_hello {
                    self.hello_due = true;
                    self.next_hello = now_ms + u64::from(self.cfg.hello_interval_ms.max(1));
                }
            }
            HostState::Connected => {
                let silent = now_ms.saturating_sub(self.last_rx);
                if silent >= u64::from(self.cfg.peer_timeout_ms) {
                    self.state = HostState::Closed;
                    return self.push_event(HostEvent::PeerLost { silent_ms: silent });
                }
                if now_ms >= self.next_ping {
                    self.ping_due = true;
                    self.ping_nonce = self.ping_nonce.wrapping_add(1);
                    self.next_ping = now_ms + u64::from(self.cfg.ping_interval_ms.max(1));
                }
                self.session.handle_timeout(now_ms);
            }
            HostState::Listening | HostState::Closed => {}
        }
    }

    /// Writes the next frame for the link into `buf` and returns its length, or
    /// `None` when there is nothing to send. `buf` should hold
    /// [`super::transmit_buf_len`]`(link, max_frame)` bytes; a smaller one limits
    /// console chunks and may hold back control messages.
    #[must_use]
    pub fn poll_transmit(&mut self, now_ms: u64, buf: &mut [u8]) -> Option<usize> {
        let (offset, room) = raw_layout(self.cfg.link, buf.len(), self.max_frame);
        if room < MIN_FRAME {
            return None;
        }
        let raw = &mut buf[offset..offset + room];
        let len = match self.state {
            HostState::Listening | HostState::Closed => return None,
            HostState::Handshaking => {
                if !self.hello_due {
                    return None;
                }
                self.hello_due = false;
                let hello = HostMsg::Hello(Hello {
                    version: PROTOCOL_VERSION,
                    features: self.cfg.features,
                    max_frame: self.cfg.max_frame,
                    session: self.cfg.session,
                });
                let n = hello.encode(&mut raw[HEADER_LEN..]).ok()?;
                self.session.seal_unsequenced(raw, n)
            }
            HostState::Connected => {
                if self.ping_due {
                    self.ping_due = false;
                    let n = HostMsg::Ping {
                        nonce: self.ping_nonce,
                    }
                    .encode(&mut raw[HEADER_LEN..])
                    .ok()?;
                    self.session.seal_unsequenced(raw, n)
                } else {
                    self.session.next_frame(raw, room, now_ms)?
                }
            }
        };
        Some(to_wire(self.cfg.link, buf, offset, len))
    }
}

/// The control queue is full; try again after the agent has acknowledged some.
/// (The exec calls also return it for a request that cannot go out at all: see
/// [`HostEndpoint::send_exec_start`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;
