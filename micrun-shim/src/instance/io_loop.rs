//! The I/O loop of one instance: a [`IoLoop`] state with one method per concern,
//! driven by [`run`] on the instance's own thread.
//!
//! ```text
//!  loop {
//!    drive_protocol   endpoint timers, frames out, events in (agent / detection)
//!    drive_detection  agent=auto: no announcement within handshake_wait → raw
//!    collect_console  agent mode: console rings → output buffers (credit pace),
//!                     the exec stream → the running exec's buffer (super::exec)
//!    the end?         link closed / process gone, output flushed → finish
//!    wait             sweep every fd (something moved) or race the reactor
//!    on_link_in / on_link_out / on_stdin / drain / on_timer / on_command
//!    (Exec/ExecSignal commands and ExecExited events go to `Execs`)
//!  }
//! ```
//!
//! # How the console's owner is found (`agent=auto`)
//! Until the firmware has shown that it links the agent, the loop is a plain raw
//! relay that writes nothing of its own to the console: what the user types goes
//! to the link as typed, what the firmware prints goes to the user byte for byte,
//! except the agent's `Announce` frames, which an [`AnnounceFilter`] picks out.
//! The first announcement starts the handshake (the endpoint says `Hello`); from
//! then on the link is the protocol's, and what the user typed while the loop was
//! listening (it reached the link raw, where the agent ignores it) is given to
//! the agent again as console input, so a script that pipes commands in at once
//! loses nothing on either kind of firmware. No announcement within `handshake_wait`:
//! raw mode for good. `agent=on` says `Hello` at once; `agent=off` never listens.

use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime};

use micrun_proto::endpoint::transmit_buf_len;
use micrun_proto::frame::MAX_FRAME;
use micrun_proto::{
    AnnounceFilter, HostConfig, HostEndpoint, HostEvent, HostState, LinkKind, Stats, Stream,
};
use smol::channel as async_channel;
use smol::{future, Timer};

use super::exec::Execs;
use super::{
    drain, finish, lock, push_raw, request_destroy, set_cause, set_mode, unreported_end,
    would_block, Command, EndCause, LinkEndpoint, LoopCtx, Mode, Out, Relay, Wake, EXIT_GRACE,
    RAW_BUFFER,
};
use crate::annotations::AgentMode;
use crate::pedestal::micad::NewlineRestorer;
use crate::pedestal::RxTranslate;

/// Bytes the filter holds as a possible announcement go on to the user when
/// the link has been quiet this long (a firmware that printed a lone `0x01`).
const HOLD_QUIET: Duration = Duration::from_millis(50);
/// Raw bytes waiting for the link before stdin is no longer read.
const LINK_OUT_MAX: usize = 64 * 1024;
/// How long the end of an instance waits for a reader to take the output it
/// left in the FIFOs (see `IoLoop::output_read`).
pub const UNREAD_WAIT: Duration = Duration::from_secs(1);
/// How often the output left in the FIFOs is looked at meanwhile.
const UNREAD_POLL: Duration = Duration::from_millis(5);

/// Where `agent=auto` detection stands.
enum Detect {
    /// Not detecting (`agent=on` or `off`, or decided).
    Off,
    /// Listening for an announcement until `deadline`, relaying raw meanwhile.
    Listening {
        filter: Box<AnnounceFilter>,
        deadline: Instant,
        last_rx: Instant,
        /// What the user typed meanwhile (it went to the link raw): given to
        /// the agent as console input if one turns out to be there.
        typed: Vec<u8>,
    },
    /// The agent announced itself; the handshake runs until `deadline`.
    Announced { deadline: Instant },
}

/// Timers of the instance's end.
#[derive(Default)]
struct Ending {
    /// A stop was asked: destroy at this time with `128 + signo` if not ended.
    stop: Option<(Instant, u8)>,
    /// Destroy the partition at this time (after `Exited`, a lost peer, ...).
    exit: Option<Instant>,
    /// When the partition's host process was seen gone.
    process_gone: Option<Instant>,
    /// `container.auto_close(_timeout)`.
    auto_close: Option<Instant>,
    /// The instance ended with output in the FIFOs that no reader has taken
    /// yet: the end is reported once it is read, or at this time.
    unread_until: Option<Instant>,
}

/// The state of one instance's I/O loop.
struct IoLoop {
    ctx: LoopCtx,
    relay: Relay,
    t0: Instant,
    ep: Box<LinkEndpoint>,
    mode: Mode,
    detect: Detect,
    stdout: Out,
    stderr: Out,
    /// Bytes for the link (frames, or raw console input).
    link_out: Vec<u8>,
    /// Console input typed while listening, for the agent once connected.
    replay: Vec<u8>,
    /// The size of the container's terminal as last reported (`ResizePty`),
    /// `None` without a terminal. A terminal container starts at 0x0, "a
    /// terminal of unknown size", as a new pty does: the agent hears of its
    /// terminal at the handshake, before any typed byte, not only once the
    /// client's first resize arrives (`ctr run -t` sends it after Start, so a
    /// firmware that echoes on a terminal would miss the echo of what is typed
    /// at once). Sent at every handshake, so an agent that restarted has it too.
    term_size: Option<(u16, u16)>,
    link_eof: bool,
    stdin_open: bool,
    /// CloseIO: take what is still in the FIFO, then stop reading it.
    stdin_closing: bool,
    paused: bool,
    ending: Ending,
    stats_waiters: Vec<async_channel::Sender<Stats>>,
    frame: Vec<u8>,
    rbuf: Vec<u8>,
    /// The last wake-up moved bytes: sweep every fd before waiting again.
    sweep: bool,
    /// micad's console adds a `\r` before every `\n` the firmware sends; undone
    /// here so frames and text arrive as sent.
    restorer: Option<NewlineRestorer>,
    restored: Vec<u8>,
    /// `ctr task exec`, `kubectl exec`: one at a time through the agent.
    execs: Execs,
}

/// The I/O loop of one instance (see the module doc).
pub(super) async fn run(ctx: LoopCtx, relay: Relay, cmds: async_channel::Receiver<Command>) {
    let mut io = IoLoop::new(ctx, relay);
    loop {
        io.drive_protocol();
        io.drive_detection();
        io.collect_console();
        if io.check_end(&cmds) {
            return;
        }
        for wake in io.wait(&cmds).await {
            if !io.act(wake) {
                return;
            }
        }
    }
}

impl IoLoop {
    fn new(ctx: LoopCtx, relay: Relay) -> IoLoop {
        let t0 = Instant::now();
        let listen = ctx.agent == AgentMode::Auto;
        let cfg = HostConfig {
            session: (SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u32))
                | 1,
            link: LinkKind::Stream,
            hello_interval_ms: 250,
            ping_interval_ms: ctx.lifecycle.ping_interval.as_millis() as u32,
            peer_timeout_ms: ctx.lifecycle.liveness_window.as_millis() as u32,
            listen,
            ..HostConfig::default()
        };
        let mode = match ctx.agent {
            AgentMode::Off => Mode::Raw,
            _ => Mode::Unknown,
        };
        set_mode(&ctx, mode);
        let term_size = ctx.terminal.then_some((0, 0));
        let detect = if listen {
            Detect::Listening {
                filter: Box::default(),
                deadline: t0 + ctx.lifecycle.handshake_wait,
                last_rx: t0,
                typed: Vec::new(),
            }
        } else {
            Detect::Off
        };
        let restorer =
            (relay.rx_translate == RxTranslate::MicadNewlines).then(NewlineRestorer::new);
        IoLoop {
            stdin_open: relay.stdin.is_some(),
            ending: Ending {
                auto_close: ctx.auto_close.map(|d| t0 + d),
                ..Ending::default()
            },
            // Boxed: the rings are large for a stack.
            ep: Box::new(HostEndpoint::new(cfg, 0)),
            ctx,
            relay,
            t0,
            mode,
            detect,
            stdout: Out::default(),
            stderr: Out::default(),
            link_out: Vec::new(),
            replay: Vec::new(),
            term_size,
            link_eof: false,
            stdin_closing: false,
            paused: false,
            stats_waiters: Vec::new(),
            frame: vec![0u8; transmit_buf_len(LinkKind::Stream, MAX_FRAME)],
            rbuf: vec![0u8; 16 * 1024],
            sweep: false,
            restorer,
            restored: Vec::new(),
            execs: Execs::default(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.t0.elapsed().as_millis() as u64
    }

    fn set_mode(&mut self, mode: Mode) {
        if mode == Mode::Raw {
            self.replay.clear();
        }
        if mode == Mode::Agent {
            if let Some((rows, cols)) = self.term_size {
                let _ = self.ep.send_resize(rows, cols);
            }
        }
        self.mode = mode;
        set_mode(&self.ctx, mode);
    }

    // ---- protocol ---------------------------------------------------------------

    /// Endpoint timers, frames for the link, and the endpoint's events.
    fn drive_protocol(&mut self) {
        if self.mode == Mode::Raw || self.paused {
            return;
        }
        let now = self.now_ms();
        if self.ep.poll_timeout().is_some_and(|t| t <= now) {
            self.ep.handle_timeout(now);
        }
        while self.link_out.len() < LINK_OUT_MAX {
            match self.ep.poll_transmit(now, &mut self.frame) {
                Some(n) => self.link_out.extend_from_slice(&self.frame[..n]),
                None => break,
            }
        }
        while let Some(ev) = self.ep.poll_event() {
            self.on_event(ev);
        }
        if self.mode == Mode::Agent && !self.replay.is_empty() {
            let n = self.ep.write_stdin(&self.replay);
            self.replay.drain(..n);
        }
        if self.mode == Mode::Agent {
            self.execs.drive(&mut self.ep);
        }
    }

    fn on_event(&mut self, ev: HostEvent) {
        let id = &self.ctx.id;
        match ev {
            HostEvent::Announced { version } => {
                log::info!(
                    "{id}: the micrun agent announced itself (protocol {}.{}); handshake",
                    version.major,
                    version.minor
                );
            }
            HostEvent::Connected(peer) => {
                log::info!(
                    "{id}: agent {} on {} ({}), protocol {}.{}",
                    peer.agent_version,
                    peer.board,
                    peer.os,
                    peer.version.major,
                    peer.version.minor
                );
                self.detect = Detect::Off;
                lock(&self.ctx.state.0).peer = Some(peer);
                self.set_mode(Mode::Agent);
            }
            HostEvent::Ready => log::debug!("{id}: application ready"),
            HostEvent::Pong { .. } | HostEvent::Readable(_) => {}
            HostEvent::ExecExited { exec, code } => {
                log::debug!("{id}: exec {exec} exited with {code}");
                // Take the rest of its output before the report counts.
                self.execs.collect(&mut self.ep, &mut self.rbuf);
                self.execs.on_exited(exec, code);
                self.sweep = true;
            }
            HostEvent::Stats(s) => {
                for w in self.stats_waiters.drain(..) {
                    let _ = w.try_send(s);
                }
            }
            HostEvent::Exited { code, reason } => {
                log::info!("{id}: the RTOS application exited: code {code}, {reason:?}");
                lock(&self.ctx.state.0).agent_code = Some(code as u32 & 0xff);
                if reason != micrun_proto::ExitReason::Normal {
                    set_cause(&self.ctx.state, EndCause::Agent(reason));
                }
                self.ending.stop = None;
                // A host process gets a moment to end by itself; a partition
                // without one (micad, remoteproc, Xen) stays up after its
                // application ends, so it is ended now.
                self.ending.exit = Some(if self.ctx.has_process {
                    Instant::now() + EXIT_GRACE
                } else {
                    Instant::now()
                });
            }
            HostEvent::Log { level, text } => log::info!("{id}: rtos {level:?}: {text}"),
            HostEvent::PeerLost { silent_ms } => {
                log::warn!(
                    "{id}: the agent has not answered for {silent_ms} ms (liveness window \
                     {:?}); destroying the partition",
                    self.ctx.lifecycle.liveness_window
                );
                lock(&self.ctx.state.0).forced_code.get_or_insert(137);
                set_cause(&self.ctx.state, EndCause::PeerLost { silent_ms });
                self.ending.exit = Some(Instant::now());
            }
            HostEvent::Error(e) => {
                log::warn!("{id}: protocol error: {e}; relaying the raw console");
                self.detect = Detect::Off;
                self.set_mode(Mode::Raw);
            }
        }
    }

    // ---- agent detection --------------------------------------------------------

    /// `agent=auto`: the end of the detection window, and held bytes after a
    /// quiet moment.
    fn drive_detection(&mut self) {
        let now = Instant::now();
        match &mut self.detect {
            Detect::Off => {}
            Detect::Listening {
                filter,
                deadline,
                last_rx,
                ..
            } => {
                if now >= *deadline {
                    log::info!(
                        "{}: no micrun agent announced itself within {:?}; raw console",
                        self.ctx.id,
                        self.ctx.lifecycle.handshake_wait
                    );
                    let out = &mut self.stdout;
                    filter.flush(&mut |b: &[u8]| {
                        push_raw(out, b);
                    });
                    self.detect = Detect::Off;
                    self.set_mode(Mode::Raw);
                } else if filter.held() > 0 && now >= *last_rx + HOLD_QUIET {
                    let out = &mut self.stdout;
                    filter.flush(&mut |b: &[u8]| {
                        push_raw(out, b);
                    });
                }
            }
            Detect::Announced { deadline } => {
                if now >= *deadline && self.mode == Mode::Unknown {
                    log::warn!(
                        "{}: the micrun agent announced itself but did not complete the \
                         handshake within {:?}; raw console",
                        self.ctx.id,
                        self.ctx.lifecycle.handshake_wait
                    );
                    self.detect = Detect::Off;
                    self.set_mode(Mode::Raw);
                }
            }
        }
    }

    /// Link bytes while listening: console output to the user, announcements
    /// to the endpoint, and after the first one, the rest to the protocol.
    fn listen(&mut self, data: &[u8]) {
        let Detect::Listening {
            filter,
            last_rx,
            typed,
            ..
        } = &mut self.detect
        else {
            return;
        };
        *last_rx = Instant::now();
        let out = &mut self.stdout;
        let mut dropping = false;
        let found = filter.push(data, &mut |b: &[u8]| dropping |= push_raw(out, b));
        let typed = std::mem::take(typed);
        if dropping {
            self.warn_dropping();
        }
        let Some(found) = found else {
            if let Detect::Listening { typed: t, .. } = &mut self.detect {
                *t = typed;
            }
            return;
        };
        let now = self.now_ms();
        if !typed.is_empty() {
            // Typed bytes went to the link raw; the agent takes them as the start
            // of a frame, so end that with a delimiter before `Hello`
            // (protocol.md §3), and give them again as console input.
            self.link_out.push(micrun_proto::frame::DELIMITER);
            self.replay = typed;
        }
        self.ep.handle_announce(now, &found.announce);
        self.detect = Detect::Announced {
            deadline: Instant::now() + self.ctx.lifecycle.handshake_wait,
        };
        self.ep.handle_input(now, &data[found.consumed..]);
    }

    // ---- console ----------------------------------------------------------------

    /// Agent mode: takes console output only as fast as the FIFOs drain (credit
    /// back-pressure).
    fn collect_console(&mut self) {
        if self.mode == Mode::Agent {
            for (stream, out) in [
                (Stream::Stdout, &mut self.stdout),
                (Stream::Stderr, &mut self.stderr),
            ] {
                if out.buf.len() < 16 * 1024 {
                    let n = self.ep.read_console(stream, &mut self.rbuf);
                    out.buf.extend_from_slice(&self.rbuf[..n]);
                }
            }
            self.execs.collect(&mut self.ep, &mut self.rbuf);
            self.sweep |= self.execs.drain();
            self.sweep |= self.execs.finish_ended();
            if self.relay.stderr.is_none() && !self.stderr.buf.is_empty() {
                // One console stream (terminal mode, or no stderr FIFO): merge.
                let b = std::mem::take(&mut self.stderr.buf);
                self.stdout.buf.extend_from_slice(&b);
            }
        }
        if self.relay.stdout.is_none() {
            self.stdout.buf.clear();
        }
    }

    fn warn_dropping(&self) {
        log::warn!(
            "{}: raw console: the output reader is not keeping up; {} KiB are buffered, \
             further output is dropped until it catches up",
            self.ctx.id,
            RAW_BUFFER >> 10
        );
    }

    fn on_link_in(&mut self) {
        let n = match std::io::Read::read(&mut self.relay.link_rx.get_ref(), &mut self.rbuf) {
            Ok(0) => return self.link_eof = true,
            Ok(n) => n,
            Err(e) if would_block(&e) => return,
            Err(_) => return self.link_eof = true,
        };
        self.sweep = true;
        // Taken out for the call (no copy), so the handlers may borrow `self`.
        let rbuf = std::mem::take(&mut self.rbuf);
        let mut restored = std::mem::take(&mut self.restored);
        let data = match self.restorer.as_mut() {
            Some(r) => {
                restored.clear();
                r.restore(&rbuf[..n], &mut restored);
                &restored[..]
            }
            None => &rbuf[..n],
        };
        self.link_input(data);
        self.rbuf = rbuf;
        self.restored = restored;
    }

    fn link_input(&mut self, data: &[u8]) {
        if matches!(self.detect, Detect::Listening { .. }) {
            return self.listen(data);
        }
        match self.mode {
            Mode::Raw => {
                if push_raw(&mut self.stdout, data) {
                    self.warn_dropping();
                }
                // Hand it on at once if the reader can take it.
                let _ = drain(&self.relay.stdout, &mut self.stdout);
            }
            Mode::Agent | Mode::Unknown => {
                let now = self.now_ms();
                self.ep.handle_input(now, data);
            }
        }
    }

    fn on_link_out(&mut self) {
        match std::io::Write::write(&mut self.relay.link_tx.get_ref(), &self.link_out) {
            Ok(n) => {
                self.sweep |= n > 0;
                self.link_out.drain(..n);
            }
            Err(e) if would_block(&e) => {}
            Err(_) => self.link_eof = true,
        }
    }

    /// Whether stdin may be read now: the agent's ring has room, or raw bytes
    /// (also while listening) fit before the link.
    fn can_take_stdin(&self) -> bool {
        self.stdin_open
            && match self.mode {
                // Input typed while listening goes first.
                Mode::Agent => self.replay.is_empty() && self.ep.stdin_free() > 0,
                Mode::Raw => self.link_out.len() < LINK_OUT_MAX,
                Mode::Unknown => {
                    matches!(self.detect, Detect::Listening { .. })
                        && self.link_out.len() < LINK_OUT_MAX
                }
            }
    }

    fn on_stdin(&mut self) {
        let Some(s) = self.relay.stdin.as_ref() else {
            return;
        };
        let room = match self.mode {
            Mode::Agent => self.ep.stdin_free().min(self.rbuf.len()),
            _ => self.rbuf.len(),
        };
        match std::io::Read::read(&mut s.get_ref(), &mut self.rbuf[..room]) {
            Ok(0) => self.stdin_open = false,
            Ok(n) => {
                self.sweep = true;
                match self.mode {
                    Mode::Agent => {
                        self.ep.write_stdin(&self.rbuf[..n]);
                    }
                    // Raw, or listening: the console gets exactly what was typed.
                    _ => {
                        self.link_out.extend_from_slice(&self.rbuf[..n]);
                        if let Detect::Listening { typed, .. } = &mut self.detect {
                            if typed.len() < LINK_OUT_MAX {
                                typed.extend_from_slice(&self.rbuf[..n]);
                            }
                        }
                    }
                }
            }
            Err(e) if would_block(&e) => {
                if self.stdin_closing {
                    self.relay.stdin = None;
                    self.stdin_open = false;
                }
            }
            Err(_) => self.stdin_open = false,
        }
    }

    // ---- timers and commands ----------------------------------------------------

    fn on_timer(&mut self) {
        let now = Instant::now();
        let id = &self.ctx.id;
        if self.ending.auto_close.is_some_and(|t| now >= t) {
            self.ending.auto_close = None;
            log::info!("{id}: auto_close timeout reached; stopping");
            let grace = self.ctx.lifecycle.stop_grace;
            if self.mode == Mode::Agent && self.ep.send_stop(grace.as_millis() as u32).is_ok() {
                self.ending.stop = Some((now + grace, 15));
            } else {
                lock(&self.ctx.state.0).forced_code.get_or_insert(143);
                self.link_eof |= request_destroy(&self.ctx);
            }
        }
        if let Some((t, signo)) = self.ending.stop {
            if now >= t {
                log::info!("{id}: the agent did not stop within the grace time; destroying");
                lock(&self.ctx.state.0)
                    .forced_code
                    .get_or_insert(128 + u32::from(signo));
                self.ending.stop = None;
                self.ending.exit = Some(now);
            }
        }
        if self.ending.exit.is_some_and(|t| now >= t) {
            self.ending.exit = None;
            self.link_eof |= request_destroy(&self.ctx);
        }
        self.execs.on_timer(now);
    }

    /// Returns false when the command channel closed (the instance is gone).
    fn on_command(&mut self, cmd: Option<Command>) -> bool {
        let Some(cmd) = cmd else { return false };
        match cmd {
            Command::Stop { signo, grace } => {
                if self.ep.state() == HostState::Connected
                    && self.ep.send_stop(grace.as_millis() as u32).is_ok()
                {
                    self.ending.stop = Some((Instant::now() + grace, signo));
                } else {
                    lock(&self.ctx.state.0)
                        .forced_code
                        .get_or_insert(128 + u32::from(signo));
                    self.link_eof |= request_destroy(&self.ctx);
                }
            }
            Command::Signal(s) => {
                let _ = self.ep.send_signal(s);
            }
            Command::Resize(r, c) => {
                self.term_size = Some((r, c));
                if self.mode == Mode::Agent {
                    let _ = self.ep.send_resize(r, c);
                }
            }
            Command::Stats(tx) => {
                if self.ep.request_stats().is_ok() {
                    self.stats_waiters.push(tx);
                }
            }
            Command::CloseStdin => self.stdin_closing = true,
            Command::Paused => self.paused = true,
            Command::Resumed => {
                self.paused = false;
                let now = self.now_ms();
                self.ep.reset_liveness(now);
            }
            Command::Check => {}
            // Without a host process, nothing else may ever say it ended (a
            // console that does not hang up).
            Command::Destroyed => self.link_eof |= !self.ctx.has_process,
            Command::Exec(job) => {
                if self.mode == Mode::Raw {
                    // The service checked the mode; the agent went away since.
                    log::warn!("{}: exec {}: the console is raw now", self.ctx.id, job.name);
                    (job.on_exit)(126);
                } else {
                    self.execs.submit(job);
                    self.sweep = true;
                }
            }
            Command::ExecSignal(wire, signo) => self.execs.signal(&mut self.ep, wire, signo),
        }
        true
    }

    // ---- the end ------------------------------------------------------------------

    /// True when the instance has ended (and was reported) or ended elsewhere;
    /// then no command is taken any more ([`refuse_commands`]).
    fn check_end(&mut self, cmds: &async_channel::Receiver<Command>) -> bool {
        let process_exited = lock(&self.ctx.state.0).process_code.is_some();
        if process_exited && self.ending.process_gone.is_none() {
            self.ending.process_gone = Some(Instant::now());
        }
        let gone_a_while = self
            .ending
            .process_gone
            .is_some_and(|t| t.elapsed() > Duration::from_secs(2));
        let output_flushed = self.stdout.buf.is_empty() && self.stderr.buf.is_empty();
        // Normally the link closes when the partition ends; if something still
        // holds it open, the host process's exit is enough after a moment.
        let ended = self.link_eof && (!self.ctx.has_process || process_exited) || gone_a_while;
        if ended && (output_flushed || gone_a_while) && self.output_read() {
            if !self.ctx.has_process {
                unreported_end(&self.ctx);
            }
            let dropped = self.stdout.dropped + self.stderr.dropped;
            if dropped > 0 {
                log::warn!(
                    "{}: raw console: {dropped} bytes dropped because nobody read them",
                    self.ctx.id
                );
            }
            refuse_commands(cmds, &mut self.execs);
            self.execs.end_all(137);
            finish(&self.ctx.state, &self.ctx.on_exit, &self.ctx.id);
            return true;
        }
        let ended_elsewhere = lock(&self.ctx.state.0).exit.is_some();
        if ended_elsewhere {
            // Its execs end when `self` drops (`Execs`' drop).
            refuse_commands(cmds, &mut self.execs);
        }
        ended_elsewhere
    }

    /// Whether what the relay wrote to the output FIFOs has been read, so the
    /// end may be reported and the FIFOs closed. The relay writes into the
    /// pipe whether or not a reader has it open (it holds the FIFO read-write);
    /// closing it frees what no reader took. A client opens its reader before
    /// Create, but a short-lived task can end before that open has happened
    /// (ctr opens it from a goroutine): its whole output was lost while the
    /// exit was reported as usual. So the end waits until the pipes are empty,
    /// at most [`UNREAD_WAIT`] (a detached task's output that nobody reads).
    fn output_read(&mut self) -> bool {
        let unread = unread(&self.relay.stdout) + unread(&self.relay.stderr);
        if unread == 0 {
            if let Some(until) = self.ending.unread_until {
                log::info!(
                    "{}: the output left in the FIFOs at the end was read {:?} after the end",
                    self.ctx.id,
                    UNREAD_WAIT.saturating_sub(until.saturating_duration_since(Instant::now()))
                );
            }
            return true;
        }
        let now = Instant::now();
        let until = *self.ending.unread_until.get_or_insert(now + UNREAD_WAIT);
        if now < until {
            return false;
        }
        log::info!(
            "{}: {unread} bytes of output were not read within {UNREAD_WAIT:?} of the end \
             (no reader on the FIFO); they are dropped",
            self.ctx.id
        );
        true
    }

    // ---- waiting ------------------------------------------------------------------

    /// The earliest timer of any concern.
    fn next_deadline(&self) -> Option<Instant> {
        let mut deadline: Option<Instant> = None;
        let mut at = |t: Instant| deadline = Some(deadline.map_or(t, |d| d.min(t)));
        if self.mode != Mode::Raw && !self.paused {
            if let Some(t) = self.ep.poll_timeout() {
                at(self.t0 + Duration::from_millis(t));
            }
        }
        match &self.detect {
            Detect::Off => {}
            Detect::Listening {
                filter,
                deadline,
                last_rx,
                ..
            } => {
                at(*deadline);
                if filter.held() > 0 {
                    at(*last_rx + HOLD_QUIET);
                }
            }
            Detect::Announced { deadline } => at(*deadline),
        }
        let e = &self.ending;
        for t in [
            e.stop.map(|s| s.0),
            e.exit,
            e.auto_close,
            self.execs.deadline(),
        ]
        .into_iter()
        .flatten()
        {
            at(t);
        }
        if let Some(t) = e.process_gone {
            at(t + Duration::from_millis(2100));
        }
        if e.unread_until.is_some() {
            // Nothing signals that a reader took the bytes: look again soon.
            at(Instant::now() + UNREAD_POLL);
        }
        deadline
    }

    /// What to act on next: every fd that may be ready (after a round that
    /// moved bytes), else the first of them the reactor reports.
    async fn wait(&mut self, cmds: &async_channel::Receiver<Command>) -> Vec<Wake> {
        let now = Instant::now();
        let deadline = self.next_deadline();
        let can_take_stdin = self.can_take_stdin();
        let relay = &self.relay;
        let (link_eof, link_out) = (self.link_eof, !self.link_out.is_empty());
        let (stdout, stderr) = (!self.stdout.buf.is_empty(), !self.stderr.buf.is_empty());
        let exec_out = self.execs.fifo_waiting();
        if std::mem::take(&mut self.sweep) {
            // Something moved last time, so more is likely ready: try each fd at
            // once (all are non-blocking) instead of a round trip through the
            // reactor per read or write. The sweep ends when nothing moves.
            return match cmds.try_recv() {
                Ok(cmd) => vec![Wake::Cmd(Some(cmd))],
                Err(async_channel::TryRecvError::Closed) => vec![Wake::Cmd(None)],
                Err(async_channel::TryRecvError::Empty) => {
                    let mut w = Vec::with_capacity(6);
                    if deadline.is_some_and(|d| d <= now) {
                        w.push(Wake::Timer);
                    }
                    if stdout && relay.stdout.is_some() {
                        w.push(Wake::Stdout);
                    }
                    if stderr && relay.stderr.is_some() {
                        w.push(Wake::Stderr);
                    }
                    if exec_out.is_some() {
                        w.push(Wake::ExecOut);
                    }
                    if !link_eof {
                        w.push(Wake::LinkIn);
                        if link_out {
                            w.push(Wake::LinkOut);
                        }
                    }
                    if can_take_stdin && relay.stdin.is_some() {
                        w.push(Wake::Stdin);
                    }
                    w
                }
            };
        }
        let mut waits: Vec<Pin<Box<dyn std::future::Future<Output = Wake> + '_>>> = Vec::new();
        // Output first: `race_all` polls in order, and a busy link must not starve
        // the FIFOs (raw mode would drop bytes a live reader could take).
        if stdout {
            if let Some(s) = relay.stdout.as_ref() {
                waits.push(Box::pin(async {
                    s.writable().await.ok();
                    Wake::Stdout
                }));
            }
        }
        if stderr {
            if let Some(s) = relay.stderr.as_ref() {
                waits.push(Box::pin(async {
                    s.writable().await.ok();
                    Wake::Stderr
                }));
            }
        }
        if let Some(f) = exec_out {
            waits.push(Box::pin(async {
                f.writable().await.ok();
                Wake::ExecOut
            }));
        }
        if !link_eof {
            waits.push(Box::pin(async {
                relay.link_rx.readable().await.ok();
                Wake::LinkIn
            }));
            if link_out {
                waits.push(Box::pin(async {
                    relay.link_tx.writable().await.ok();
                    Wake::LinkOut
                }));
            }
        }
        if can_take_stdin {
            if let Some(s) = relay.stdin.as_ref() {
                waits.push(Box::pin(async {
                    s.readable().await.ok();
                    Wake::Stdin
                }));
            }
        }
        if let Some(d) = deadline {
            let d = d.max(now);
            waits.push(Box::pin(async move {
                Timer::at(d).await;
                Wake::Timer
            }));
        }
        waits.push(Box::pin(async { Wake::Cmd(cmds.recv().await.ok()) }));
        vec![race_all(waits).await]
    }

    /// Acts on one wake-up; false when the loop is to end.
    fn act(&mut self, wake: Wake) -> bool {
        match wake {
            Wake::LinkIn => self.on_link_in(),
            Wake::LinkOut => self.on_link_out(),
            Wake::Stdin => self.on_stdin(),
            Wake::Stdout => self.sweep |= drain(&self.relay.stdout, &mut self.stdout),
            Wake::Stderr => self.sweep |= drain(&self.relay.stderr, &mut self.stderr),
            Wake::ExecOut => {
                self.sweep |= self.execs.drain();
                self.sweep |= self.execs.finish_ended();
            }
            Wake::Timer => self.on_timer(),
            Wake::Cmd(cmd) => return self.on_command(cmd),
        }
        true
    }
}

/// The loop ends: the channel closes, so a command sent from now on fails to
/// send (`Instance::exec` then reports that the container has ended), and an
/// exec queued since the loop last looked joins those that end with the
/// instance. Without this, an exec handed over between the loop's last look
/// and its end stayed in the channel, never ran and never ended: its Wait
/// never returned, and the shim's ttrpc server waited for that handler at
/// Shutdown.
fn refuse_commands(cmds: &async_channel::Receiver<Command>, execs: &mut Execs) {
    cmds.close();
    while let Ok(cmd) = cmds.try_recv() {
        if let Command::Exec(job) = cmd {
            execs.submit(job);
        }
    }
}

/// Bytes waiting in the pipe behind `fifo` (`FIONREAD`); 0 for none or on error.
fn unread(fifo: &Option<smol::Async<std::fs::File>>) -> usize {
    use std::os::fd::AsRawFd;
    let Some(f) = fifo else { return 0 };
    let mut n: nix::libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer, to `n`.
    let r = unsafe { nix::libc::ioctl(f.get_ref().as_raw_fd(), nix::libc::FIONREAD, &mut n) };
    if r == 0 {
        n.max(0) as usize
    } else {
        0
    }
}

/// The first of several futures to finish.
async fn race_all<'a>(
    mut futs: Vec<Pin<Box<dyn std::future::Future<Output = Wake> + 'a>>>,
) -> Wake {
    future::poll_fn(move |cx| {
        for f in futs.iter_mut() {
            if let std::task::Poll::Ready(w) = f.as_mut().poll(cx) {
                return std::task::Poll::Ready(w);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::instance::ExecJob;

    fn job(codes: &Arc<Mutex<Vec<u32>>>) -> ExecJob {
        let codes = codes.clone();
        ExecJob {
            wire: 1,
            name: "c/e".into(),
            argv: b"hang\0".to_vec(),
            stdout: None,
            on_exit: Box::new(move |code| codes.lock().unwrap().push(code)),
        }
    }

    /// An exec handed to a loop that is ending is never lost: one already in
    /// the channel ends with the instance (137), a later one fails to send.
    #[test]
    fn an_ending_loop_ends_queued_execs_and_refuses_later_ones() {
        let codes = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = async_channel::unbounded();
        tx.try_send(Command::Check).unwrap();
        tx.try_send(Command::Exec(job(&codes))).unwrap();
        let mut execs = Execs::default();
        refuse_commands(&rx, &mut execs);
        assert!(tx.try_send(Command::Exec(job(&codes))).is_err());
        assert!(
            codes.lock().unwrap().is_empty(),
            "ended before the instance"
        );
        execs.end_all(137);
        assert_eq!(*codes.lock().unwrap(), [137]);
    }
}
