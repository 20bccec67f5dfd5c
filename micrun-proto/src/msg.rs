//! Messages exchanged between the host (micrun-shim, libmicrun) and the RTOS agent.
//!
//! Wire types borrow their variable-length data (`&[u8]`) so that neither
//! side copies console data through an intermediate buffer: the sender serializes
//! straight from its ring buffer, the receiver deserializes straight from its frame
//! buffer. Every variable-length field has a hard bound ([`MAX_NAME`], [`MAX_LOG`],
//! and the negotiated frame size for console data) that decoders enforce.
//!
//! Text from the agent (names, log lines) is UTF-8 by contract but arrives as
//! bytes: the agent does not check what a C firmware hands it (the check cost
//! ≈ 190 B of its flash, docs/footprint.md), the receiver does, once, where it
//! shows the text: [`push_lossy`] replaces each invalid sequence with U+FFFD.
//!
//! Payloads use postcard's wire format: the variant index as a varint, then the
//! fields in order (`u8` as one byte, other integers as LEB128 varints, `i32`
//! zig-zag, byte strings and text as a varint length followed by the bytes).
//! `docs/protocol.md` lists every message with its index and field order.
//!
//! The codec here is written out by hand rather than derived through serde: on a
//! Cortex-M the derived postcard code is about 1 KiB larger, which matters for the
//! agent's 8 KiB budget. The serde derives remain for host-side use, and the tests
//! check byte for byte that this codec and postcard agree.

use serde::{Deserialize, Serialize};

/// Longest agent version, OS name or board name in a [`HelloAck`], in bytes.
pub const MAX_NAME: usize = 24;
/// Longest text of a [`RtosMsg::Log`], in bytes.
pub const MAX_LOG: usize = 80;
/// Longest argument vector of a [`HostMsg::ExecStart`], in bytes (every argument
/// followed by a NUL). An `ExecStart` then fits the smallest frame.
pub const MAX_ARGV: usize = 80;

/// Appends `text` (UTF-8 by contract, from the peer) to `out`, each invalid
/// sequence as U+FFFD (as `String::from_utf8_lossy` does), as much as fits:
/// `out` ends at a character boundary. The host keeps the agent's names and
/// log lines this way.
pub fn push_lossy<const N: usize>(out: &mut heapless::String<N>, text: &[u8]) {
    for chunk in text.utf8_chunks() {
        let mut parts = [chunk.valid(), ""];
        if !chunk.invalid().is_empty() {
            parts[1] = "\u{FFFD}";
        }
        for part in parts {
            for c in part.chars() {
                if out.push(c).is_err() {
                    return;
                }
            }
        }
    }
}

/// Protocol version. Peers interoperate when the major versions are equal; the
/// session then uses the lower minor version.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub major: u8,
    pub minor: u8,
}

/// The version this crate speaks. 1.1 added [`RtosMsg::Announce`]; 1.2 added
/// exec ([`HostMsg::ExecStart`], [`HostMsg::ExecSignal`], [`Stream::Exec`],
/// [`RtosMsg::ExecExited`], [`features::EXEC`]).
pub const PROTOCOL_VERSION: Version = Version { major: 1, minor: 2 };

/// The first bytes of every [`Announce`]: `mcrn`. With the CRC and the exact
/// length, they make a console line that happens to look like an announcement
/// practically impossible.
pub const ANNOUNCE_MAGIC: [u8; 4] = *b"mcrn";

impl Version {
    /// Whether a peer speaking `other` can hold a session with us.
    pub fn compatible(self, other: Version) -> bool {
        self.major == other.major
    }

    /// The version a session between `self` and a compatible `other` uses.
    pub fn negotiate(self, other: Version) -> Version {
        Version {
            major: self.major,
            minor: self.minor.min(other.minor),
        }
    }
}

/// Feature bits advertised in [`Hello`] / [`HelloAck`]; the session uses the
/// intersection.
pub mod features {
    /// The agent answers [`super::HostMsg::StatsRequest`] with [`super::RtosMsg::Stats`].
    pub const STATS: u32 = 1 << 0;
    /// The agent forwards [`super::HostMsg::Resize`] to the application.
    pub const RESIZE: u32 = 1 << 1;
    /// The agent forwards [`super::HostMsg::Signal`] to the application.
    pub const SIGNALS: u32 = 1 << 2;
    /// The agent sends a separate stderr stream.
    pub const STDERR: u32 = 1 << 3;
    /// The agent runs commands of the application: [`super::HostMsg::ExecStart`]
    /// (protocol 1.2). A host sends exec messages only when both sides set it.
    pub const EXEC: u32 = 1 << 4;
    /// Everything this crate implements.
    pub const ALL: u32 = STATS | RESIZE | SIGNALS | STDERR | EXEC;
}

/// A console stream. Credits name the stream they open.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Host → RTOS console input.
    Stdin,
    /// RTOS → host standard output.
    Stdout,
    /// RTOS → host standard error.
    Stderr,
    /// RTOS → host output of the running exec (protocol 1.2; one exec at a time,
    /// so its bytes belong to the exec between `ExecStart` and `ExecExited`).
    Exec,
}

/// First message of a session, host → RTOS, repeated until acknowledged.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    pub version: Version,
    pub features: u32,
    /// Largest frame (header + payload + CRC, before COBS) the host accepts.
    pub max_frame: u16,
    /// Chosen by the host for each session; a repeated `Hello` with the same value
    /// is a retransmission, a new value starts a new session.
    pub session: u32,
}

/// Answer to [`Hello`], RTOS → host.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelloAck<'a> {
    pub version: Version,
    pub features: u32,
    /// Largest frame the agent accepts.
    pub max_frame: u16,
    /// Echo of [`Hello::session`].
    pub session: u32,
    /// The agent's version, RTOS and board names: UTF-8 by contract, at most
    /// [`MAX_NAME`] bytes each. Not checked by the agent (a C firmware's bytes
    /// go out as they are): show them with [`push_lossy`].
    pub agent_version: &'a [u8],
    pub os: &'a [u8],
    pub board: &'a [u8],
}

/// The agent is here, RTOS → host, unsequenced: sent while no host has opened a
/// session (and again after the host has been silent for a while), so that a
/// host can detect the agent by listening, without sending a byte a firmware
/// without the agent would take as typed input.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announce {
    /// Always [`ANNOUNCE_MAGIC`]; a decoder refuses anything else.
    pub magic: [u8; 4],
    pub version: Version,
    /// Largest frame the agent accepts.
    pub max_frame: u16,
}

impl Announce {
    /// The announcement of an agent speaking `version`.
    pub const fn new(version: Version, max_frame: u16) -> Self {
        Announce {
            magic: ANNOUNCE_MAGIC,
            version,
            max_frame,
        }
    }
}

/// Resource usage of the partition, as seen from inside.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    pub uptime_ms: u64,
    /// CPU load over the agent's last measurement window, 0..=1000.
    pub cpu_load_permille: u16,
    pub mem_used_kib: u32,
    pub mem_total_kib: u32,
}

/// Why the RTOS application ended.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    Normal,
    Panic,
    Fault,
    Watchdog,
}

/// Severity of a [`RtosMsg::Log`] line.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// Host → RTOS messages. The variant order is the wire index: append only.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostMsg<'a> {
    /// 0: open (or re-open) a session. Unsequenced.
    Hello(Hello),
    /// 1: liveness probe; answered by `Pong` with the same nonce. Unsequenced.
    Ping { nonce: u32 },
    /// 2: ask the application to stop within `grace_ms`.
    Stop { grace_ms: u32 },
    /// 3: deliver a POSIX signal number to the application.
    Signal { signo: u8 },
    /// 4: console input; never more than the stdin credit the agent granted.
    ConsoleIn { data: &'a [u8] },
    /// 5: terminal size changed.
    Resize { rows: u16, cols: u16 },
    /// 6: the host can take `bytes` more of `stream`.
    Credit { stream: Stream, bytes: u32 },
    /// 7: ask for a [`Stats`] report.
    StatsRequest,
    /// 8: run a command of the application (protocol 1.2, [`features::EXEC`]).
    /// `exec` names it in [`RtosMsg::ExecExited`]; `argv` is every argument
    /// followed by a NUL, at most [`MAX_ARGV`] bytes. One exec at a time: the
    /// host sends the next only after the previous one's `ExecExited`.
    ExecStart { exec: u32, argv: &'a [u8] },
    /// 9: deliver a POSIX signal to exec `exec` (e.g. 9 when an exec probe
    /// times out). The application should end it and report `ExecExited`.
    ExecSignal { exec: u32, signo: u8 },
}

/// RTOS → host messages. The variant order is the wire index: append only.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtosMsg<'a> {
    /// 0: answer to `Hello`. Unsequenced.
    #[serde(borrow)]
    HelloAck(HelloAck<'a>),
    /// 1: the application is up.
    Ready,
    /// 2: answer to `Ping`. Unsequenced.
    Pong { nonce: u32, uptime_ms: u64 },
    /// 3: console output; never more than the credit the host granted.
    ConsoleOut { stream: Stream, data: &'a [u8] },
    /// 4: the agent can take `bytes` more console input.
    Credit { stream: Stream, bytes: u32 },
    /// 5: answer to `StatsRequest`.
    Stats(Stats),
    /// 6: the application ended; sent after all its console output.
    Exited { code: i32, reason: ExitReason },
    /// 7: a diagnostic line from the agent or the application: UTF-8 by
    /// contract, at most [`MAX_LOG`] bytes, not checked by the agent (show it
    /// with [`push_lossy`]).
    Log { level: LogLevel, text: &'a [u8] },
    /// 8: the agent is here and waits for a `Hello` (protocol 1.1). Unsequenced.
    Announce(Announce),
    /// 9: exec `exec` ended with `code`; sent after all its [`Stream::Exec`]
    /// output (protocol 1.2).
    ExecExited { exec: u32, code: i32 },
}

/// Why a payload could not be encoded or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecError {
    /// The output buffer is too small for the message.
    BufferTooSmall,
    /// The payload is not a valid message of this protocol version: unknown
    /// variant, truncated, trailing bytes, or a field beyond its bound.
    Malformed,
}

/// Whether `argv` is a valid [`HostMsg::ExecStart`] argument vector: at most
/// [`MAX_ARGV`] bytes, empty or ending in NUL.
pub(crate) fn argv_ok(argv: &[u8]) -> bool {
    argv.len() <= MAX_ARGV && argv.last().is_none_or(|&b| b == 0)
}

/// Encodes [`RtosMsg::Log`] from text the caller knows to be UTF-8 (the RTOS
/// endpoint keeps its log line as bytes cut from a `&str`).
pub(crate) fn encode_log(
    level: LogLevel,
    text: &[u8],
    buf: &mut [u8],
) -> Result<usize, CodecError> {
    if text.len() > MAX_LOG {
        return Err(CodecError::Malformed);
    }
    let mut w = Writer::new(buf);
    w.u8(7);
    w.log(level, text);
    w.done()
}

/// Encodes the head of [`RtosMsg::ConsoleOut`] with `len` bytes of data: the
/// message's bytes up to its data, which the caller sends after it (straight
/// from the ring the data is in).
pub(crate) fn encode_console_out_head(
    stream: Stream,
    len: usize,
    buf: &mut [u8],
) -> Result<usize, CodecError> {
    let mut w = Writer::new(buf);
    w.u8(3);
    w.stream(stream);
    w.varint(len as u32);
    w.done()
}

/// Encodes the head of [`HostMsg::ConsoleIn`] with `len` bytes of data (see
/// [`encode_console_out_head`]).
pub(crate) fn encode_console_in_head(len: usize, buf: &mut [u8]) -> Result<usize, CodecError> {
    let mut w = Writer::new(buf);
    w.u8(4);
    w.varint(len as u32);
    w.done()
}

fn check_len(s: &[u8], max: usize) -> Result<(), CodecError> {
    if s.len() > max {
        Err(CodecError::Malformed)
    } else {
        Ok(())
    }
}

/// Appends postcard-encoded values to a buffer.
///
/// Writing past the end is not checked at every step: the position keeps
/// counting, nothing more is stored, and [`Writer::done`] reports the overflow
/// once. One test at the end instead of one per byte keeps the encoders small.
pub(crate) struct Writer<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl<'b> Writer<'b> {
    pub(crate) fn new(buf: &'b mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }

    pub(crate) fn u8(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.pos) {
            *slot = b;
        }
        self.pos += 1;
    }

    /// Not inlined: a message has several varints, and one call each is
    /// smaller than the loop each time (about 200 bytes on a Cortex-M).
    #[inline(never)]
    pub(crate) fn varint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.u8(v as u8 | 0x80);
            v >>= 7;
        }
        self.u8(v as u8)
    }

    /// 64-bit values are rare (uptime only); split so 32-bit targets keep the
    /// common path in 32-bit arithmetic.
    pub(crate) fn varint64(&mut self, mut v: u64) {
        while v > u64::from(u32::MAX) {
            self.u8(v as u8 | 0x80);
            v >>= 7;
        }
        self.varint(v as u32)
    }

    pub(crate) fn i32(&mut self, v: i32) {
        self.varint(((v << 1) ^ (v >> 31)) as u32)
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.varint(b.len() as u32);
        let end = self.pos.saturating_add(b.len());
        if let Some(dst) = self.buf.get_mut(self.pos..end) {
            dst.copy_from_slice(b);
        }
        self.pos = end;
    }

    /// `b` as it is, without a length.
    pub(crate) fn raw(&mut self, b: &[u8]) {
        let end = self.pos.saturating_add(b.len());
        if let Some(dst) = self.buf.get_mut(self.pos..end) {
            dst.copy_from_slice(b);
        }
        self.pos = end;
    }

    pub(crate) fn version(&mut self, v: Version) {
        self.u8(v.major);
        self.u8(v.minor)
    }

    pub(crate) fn stream(&mut self, s: Stream) {
        self.u8(s as u8)
    }

    /// The fields of [`RtosMsg::Log`] (shared with [`encode_log`]).
    pub(crate) fn log(&mut self, level: LogLevel, text: &[u8]) {
        self.u8(level as u8);
        self.bytes(text)
    }

    /// The payload's length, or [`CodecError::BufferTooSmall`] if it did not fit.
    pub(crate) fn done(self) -> Result<usize, CodecError> {
        if self.pos <= self.buf.len() {
            Ok(self.pos)
        } else {
            Err(CodecError::BufferTooSmall)
        }
    }
}

/// Takes postcard-encoded values from the front of a payload.
///
/// Like [`Writer`], errors are sticky: a read past the end or a value out of
/// range marks the payload bad and yields a zero value, and [`Reader::finish`]
/// refuses the message once, instead of a test after every field.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    bad: bool,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, bad: false }
    }

    pub(crate) fn fail(&mut self) {
        self.bad = true;
        self.buf = &[];
    }

    pub(crate) fn u8(&mut self) -> u8 {
        match self.buf.split_first() {
            Some((&b, rest)) => {
                self.buf = rest;
                b
            }
            None => {
                self.bad = true;
                0
            }
        }
    }

    /// A varint of at most `bits` (≤ 32) bits, accepting what postcard accepts:
    /// at most ceil(bits/7) bytes, the last one within the type's range.
    #[inline(never)]
    pub(crate) fn varint(&mut self, bits: u32) -> u32 {
        let mut out = 0u32;
        // Bit position of this byte's 7 bits: below `bits`, so at most
        // ceil(bits/7) bytes.
        let mut shift = 0;
        loop {
            let b = self.u8();
            out |= u32::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                // The last possible byte may not carry bits beyond the type.
                if shift + 7 > bits && u32::from(b) >> (bits - shift) != 0 {
                    break;
                }
                return out;
            }
            shift += 7;
            if shift >= bits {
                break;
            }
        }
        self.fail();
        0
    }

    pub(crate) fn u16(&mut self) -> u16 {
        self.varint(16) as u16
    }

    pub(crate) fn u32(&mut self) -> u32 {
        self.varint(32)
    }

    /// A u64 varint: at most 10 bytes, the last one 0 or 1.
    pub(crate) fn u64(&mut self) -> u64 {
        let mut out = 0u64;
        for i in 0..10 {
            let b = self.u8();
            out |= u64::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                if i == 9 && b > 1 {
                    break;
                }
                return out;
            }
        }
        self.fail();
        0
    }

    pub(crate) fn i32(&mut self) -> i32 {
        let n = self.u32();
        (n >> 1) as i32 ^ -((n & 1) as i32)
    }

    pub(crate) fn bytes(&mut self) -> &'a [u8] {
        let len = self.u32() as usize;
        match self.buf.split_at_checked(len) {
            Some((b, rest)) => {
                self.buf = rest;
                b
            }
            None => {
                self.fail();
                &[]
            }
        }
    }

    /// Text of at most `max` bytes, as sent (see [`push_lossy`]).
    pub(crate) fn text(&mut self, max: usize) -> &'a [u8] {
        let b = self.bytes();
        if b.len() > max {
            self.fail();
            return &[];
        }
        b
    }

    /// An argument vector: at most [`MAX_ARGV`] bytes, empty or ending in NUL.
    pub(crate) fn argv(&mut self) -> &'a [u8] {
        let b = self.bytes();
        if !argv_ok(b) {
            self.fail();
            return &[];
        }
        b
    }

    pub(crate) fn version(&mut self) -> Version {
        Version {
            major: self.u8(),
            minor: self.u8(),
        }
    }

    /// An enum index (a varint u32).
    pub(crate) fn index(&mut self) -> u32 {
        self.u32()
    }

    pub(crate) fn stream(&mut self) -> Stream {
        match self.index() {
            0 => Stream::Stdin,
            1 => Stream::Stdout,
            2 => Stream::Stderr,
            3 => Stream::Exec,
            _ => {
                self.fail();
                Stream::Stdin
            }
        }
    }

    pub(crate) fn stats(&mut self) -> Stats {
        Stats {
            uptime_ms: self.u64(),
            cpu_load_permille: self.u16(),
            mem_used_kib: self.u32(),
            mem_total_kib: self.u32(),
        }
    }

    /// The whole payload must have been one message, every field valid.
    pub(crate) fn finish<T>(self, v: T) -> Result<T, CodecError> {
        if self.bad || !self.buf.is_empty() {
            Err(CodecError::Malformed)
        } else {
            Ok(v)
        }
    }
}

impl<'a> HostMsg<'a> {
    /// Serializes the payload into `buf`, returning its length.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, CodecError> {
        let mut w = Writer::new(buf);
        match *self {
            HostMsg::Hello(h) => {
                w.u8(0);
                w.version(h.version);
                w.varint(h.features);
                w.varint(u32::from(h.max_frame));
                w.varint(h.session);
            }
            HostMsg::Ping { nonce } => {
                w.u8(1);
                w.varint(nonce);
            }
            HostMsg::Stop { grace_ms } => {
                w.u8(2);
                w.varint(grace_ms);
            }
            HostMsg::Signal { signo } => {
                w.u8(3);
                w.u8(signo);
            }
            HostMsg::ConsoleIn { data } => {
                w.u8(4);
                w.bytes(data);
            }
            HostMsg::Resize { rows, cols } => {
                w.u8(5);
                w.varint(u32::from(rows));
                w.varint(u32::from(cols));
            }
            HostMsg::Credit { stream, bytes } => {
                w.u8(6);
                w.stream(stream);
                w.varint(bytes);
            }
            HostMsg::StatsRequest => w.u8(7),
            HostMsg::ExecStart { exec, argv } => {
                if !argv_ok(argv) {
                    return Err(CodecError::Malformed);
                }
                w.u8(8);
                w.varint(exec);
                w.bytes(argv);
            }
            HostMsg::ExecSignal { exec, signo } => {
                w.u8(9);
                w.varint(exec);
                w.u8(signo);
            }
        }
        w.done()
    }

    /// Parses a payload. The whole slice must be one message.
    pub fn decode(buf: &'a [u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(buf);
        let msg = match r.index() {
            0 => HostMsg::Hello(Hello {
                version: r.version(),
                features: r.u32(),
                max_frame: r.u16(),
                session: r.u32(),
            }),
            1 => HostMsg::Ping { nonce: r.u32() },
            2 => HostMsg::Stop { grace_ms: r.u32() },
            3 => HostMsg::Signal { signo: r.u8() },
            4 => HostMsg::ConsoleIn { data: r.bytes() },
            5 => HostMsg::Resize {
                rows: r.u16(),
                cols: r.u16(),
            },
            6 => HostMsg::Credit {
                stream: r.stream(),
                bytes: r.u32(),
            },
            7 => HostMsg::StatsRequest,
            8 => HostMsg::ExecStart {
                exec: r.u32(),
                argv: r.argv(),
            },
            9 => HostMsg::ExecSignal {
                exec: r.u32(),
                signo: r.u8(),
            },
            _ => return Err(CodecError::Malformed),
        };
        r.finish(msg)
    }

    /// Whether this message travels outside the reliable sequence.
    pub fn is_unsequenced(&self) -> bool {
        matches!(self, HostMsg::Hello(_) | HostMsg::Ping { .. })
    }
}

impl<'a> RtosMsg<'a> {
    /// Serializes the payload into `buf`, returning its length. Text beyond its
    /// bound is an error, not truncated.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, CodecError> {
        let mut w = Writer::new(buf);
        // The variant index once, ahead of the fields (not once per arm).
        let index = match self {
            RtosMsg::HelloAck(_) => 0,
            RtosMsg::Ready => 1,
            RtosMsg::Pong { .. } => 2,
            RtosMsg::ConsoleOut { .. } => 3,
            RtosMsg::Credit { .. } => 4,
            RtosMsg::Stats(_) => 5,
            RtosMsg::Exited { .. } => 6,
            RtosMsg::Log { .. } => 7,
            RtosMsg::Announce(_) => 8,
            RtosMsg::ExecExited { .. } => 9,
        };
        // Bounds first: nothing is written for a message that cannot be sent.
        match *self {
            RtosMsg::HelloAck(a) => {
                check_len(a.agent_version, MAX_NAME)?;
                check_len(a.os, MAX_NAME)?;
                check_len(a.board, MAX_NAME)?;
            }
            RtosMsg::Log { text, .. } => check_len(text, MAX_LOG)?,
            _ => {}
        }
        w.u8(index);
        match *self {
            RtosMsg::HelloAck(a) => {
                w.version(a.version);
                w.varint(a.features);
                w.varint(u32::from(a.max_frame));
                w.varint(a.session);
                w.bytes(a.agent_version);
                w.bytes(a.os);
                w.bytes(a.board);
            }
            RtosMsg::Ready => {}
            RtosMsg::Log { level, text } => w.log(level, text),
            RtosMsg::Pong { nonce, uptime_ms } => {
                w.varint(nonce);
                w.varint64(uptime_ms);
            }
            RtosMsg::ConsoleOut { stream, data } => {
                w.stream(stream);
                w.bytes(data);
            }
            RtosMsg::Credit { stream, bytes } => {
                w.stream(stream);
                w.varint(bytes);
            }
            RtosMsg::Stats(s) => {
                w.varint64(s.uptime_ms);
                w.varint(u32::from(s.cpu_load_permille));
                w.varint(s.mem_used_kib);
                w.varint(s.mem_total_kib);
            }
            RtosMsg::Exited { code, reason } => {
                w.i32(code);
                w.u8(reason as u8);
            }
            RtosMsg::Announce(a) => {
                for b in a.magic {
                    w.u8(b);
                }
                w.version(a.version);
                w.varint(u32::from(a.max_frame));
            }
            RtosMsg::ExecExited { exec, code } => {
                w.varint(exec);
                w.i32(code);
            }
        }
        w.done()
    }

    /// Parses a payload. The whole slice must be one message, and text fields must
    /// be within their bounds.
    pub fn decode(buf: &'a [u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(buf);
        let msg = match r.index() {
            0 => RtosMsg::HelloAck(HelloAck {
                version: r.version(),
                features: r.u32(),
                max_frame: r.u16(),
                session: r.u32(),
                agent_version: r.text(MAX_NAME),
                os: r.text(MAX_NAME),
                board: r.text(MAX_NAME),
            }),
            1 => RtosMsg::Ready,
            2 => RtosMsg::Pong {
                nonce: r.u32(),
                uptime_ms: r.u64(),
            },
            3 => RtosMsg::ConsoleOut {
                stream: r.stream(),
                data: r.bytes(),
            },
            4 => RtosMsg::Credit {
                stream: r.stream(),
                bytes: r.u32(),
            },
            5 => RtosMsg::Stats(r.stats()),
            6 => RtosMsg::Exited {
                code: r.i32(),
                reason: match r.index() {
                    0 => ExitReason::Normal,
                    1 => ExitReason::Panic,
                    2 => ExitReason::Fault,
                    3 => ExitReason::Watchdog,
                    _ => return Err(CodecError::Malformed),
                },
            },
            7 => RtosMsg::Log {
                level: match r.index() {
                    0 => LogLevel::Error,
                    1 => LogLevel::Warn,
                    2 => LogLevel::Info,
                    3 => LogLevel::Debug,
                    4 => LogLevel::Trace,
                    _ => return Err(CodecError::Malformed),
                },
                text: r.text(MAX_LOG),
            },
            8 => {
                let mut magic = [0u8; 4];
                for b in &mut magic {
                    *b = r.u8();
                }
                if magic != ANNOUNCE_MAGIC {
                    return Err(CodecError::Malformed);
                }
                RtosMsg::Announce(Announce {
                    magic,
                    version: r.version(),
                    max_frame: r.u16(),
                })
            }
            9 => RtosMsg::ExecExited {
                exec: r.u32(),
                code: r.i32(),
            },
            _ => return Err(CodecError::Malformed),
        };
        r.finish(msg)
    }

    /// Whether this message travels outside the reliable sequence.
    pub fn is_unsequenced(&self) -> bool {
        matches!(
            self,
            RtosMsg::HelloAck(_) | RtosMsg::Pong { .. } | RtosMsg::Announce(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `push_lossy` gives `String::from_utf8_lossy`'s text, or the longest
    /// prefix of it (whole characters) that fits.
    #[test]
    fn push_lossy_is_from_utf8_lossy_cut_to_fit() {
        let cases: [&[u8]; 7] = [
            b"",
            b"plain",
            "h\u{e9}llo \u{1D11E}".as_bytes(),
            b"25\xB0C",
            b"\xE2\x82",
            b"\xF0\x9D\x84 x \xC0\xAF \xED\xA0\x80",
            b"\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF",
        ];
        for text in cases {
            let want = std::string::String::from_utf8_lossy(text);
            let mut full = heapless::String::<64>::new();
            push_lossy(&mut full, text);
            assert_eq!(full.as_str(), want, "{text:x?}");
            let mut short = heapless::String::<8>::new();
            push_lossy(&mut short, text);
            assert!(want.starts_with(short.as_str()), "{text:x?}");
            let next = want[short.len()..].chars().next();
            assert!(
                next.is_none_or(|c| short.len() + c.len_utf8() > 8),
                "{text:x?}"
            );
        }
    }

    /// The hand-written codec and postcard agree on every message kind.
    #[test]
    fn same_bytes_as_postcard() {
        let host = [
            HostMsg::Hello(Hello {
                version: PROTOCOL_VERSION,
                features: u32::MAX,
                max_frame: 496,
                session: 0xdead_beef,
            }),
            HostMsg::Ping { nonce: 300 },
            HostMsg::Stop { grace_ms: 10_000 },
            HostMsg::Signal { signo: 200 },
            HostMsg::ConsoleIn {
                data: &[0, 1, 2, 255],
            },
            HostMsg::Resize {
                rows: 65535,
                cols: 80,
            },
            HostMsg::Credit {
                stream: Stream::Stdin,
                bytes: 512,
            },
            HostMsg::StatsRequest,
            HostMsg::ExecStart {
                exec: 0x1234_5678,
                argv: b"ls\0-l\0\0",
            },
            HostMsg::ExecStart { exec: 0, argv: &[] },
            HostMsg::ExecStart {
                exec: u32::MAX,
                argv: &[0; MAX_ARGV],
            },
            HostMsg::ExecSignal {
                exec: 300,
                signo: 9,
            },
            HostMsg::Credit {
                stream: Stream::Exec,
                bytes: 1 << 20,
            },
        ];
        for m in host {
            let mut a = [0u8; 600];
            let mut b = [0u8; 600];
            let n = m.encode(&mut a).unwrap();
            let p = postcard::to_slice(&m, &mut b).unwrap();
            assert_eq!(&a[..n], p, "{m:?}");
            assert_eq!(HostMsg::decode(&a[..n]).unwrap(), m);
        }
        let rtos = [
            RtosMsg::HelloAck(HelloAck {
                version: PROTOCOL_VERSION,
                features: 5,
                max_frame: 254,
                session: 1,
                agent_version: b"0.1.0",
                os: b"zephyr",
                board: b"qemu-virt",
            }),
            RtosMsg::Ready,
            RtosMsg::Pong {
                nonce: 7,
                uptime_ms: u64::MAX,
            },
            RtosMsg::ConsoleOut {
                stream: Stream::Stderr,
                data: b"hi",
            },
            RtosMsg::Credit {
                stream: Stream::Stdout,
                bytes: u32::MAX,
            },
            RtosMsg::Stats(Stats {
                uptime_ms: 1,
                cpu_load_permille: 1000,
                mem_used_kib: 2,
                mem_total_kib: 3,
            }),
            RtosMsg::Exited {
                code: -129,
                reason: ExitReason::Watchdog,
            },
            RtosMsg::Log {
                level: LogLevel::Trace,
                text: b"ok",
            },
            RtosMsg::Announce(Announce::new(PROTOCOL_VERSION, 496)),
            RtosMsg::ConsoleOut {
                stream: Stream::Exec,
                data: b"out\n",
            },
            RtosMsg::ExecExited {
                exec: 1 << 31,
                code: -1,
            },
            RtosMsg::ExecExited { exec: 7, code: 127 },
        ];
        for m in rtos {
            let mut a = [0u8; 600];
            let mut b = [0u8; 600];
            let n = m.encode(&mut a).unwrap();
            let p = postcard::to_slice(&m, &mut b).unwrap();
            assert_eq!(&a[..n], p, "{m:?}");
            assert_eq!(RtosMsg::decode(&a[..n]).unwrap(), m);
        }
    }

    /// An `ExecStart` whose argv is longer than [`MAX_ARGV`] or does not end in
    /// a NUL is refused both ways: the encoder will not write a payload the
    /// decoder would refuse, the decoder refuses what postcard would accept.
    #[test]
    fn exec_start_argv_bounds() {
        let mut buf = [0u8; 600];
        let long = [0u8; MAX_ARGV + 1];
        for argv in [&long[..], b"ls", b"ls\0-l"] {
            let m = HostMsg::ExecStart { exec: 1, argv };
            assert_eq!(m.encode(&mut buf), Err(CodecError::Malformed), "{argv:?}");
            let n = postcard::to_slice(&m, &mut buf).unwrap().len();
            assert_eq!(
                HostMsg::decode(&buf[..n]),
                Err(CodecError::Malformed),
                "{argv:?}"
            );
        }
    }

    #[test]
    fn varint_bounds_match_postcard() {
        // u16 field (Resize.rows): 3 bytes max, last byte at most 0b11.
        for bytes in [
            &[5u8, 0xff, 0xff, 0x03, 0][..],
            &[5, 0xff, 0xff, 0x04, 0],
            &[5, 0x80, 0x00, 0x00],
        ] {
            let ours = HostMsg::decode(bytes).ok();
            let theirs = postcard::from_bytes::<HostMsg<'_>>(bytes).ok();
            assert_eq!(ours, theirs, "{bytes:?}");
        }
    }

    /// Every varint of up to five bytes drawn from the edge values, as a
    /// `u32` (`Stop`, `Ping`) and as `u16`s (`Resize`), decodes as postcard
    /// decodes it, or is refused as postcard refuses it.
    #[test]
    fn varints_decode_as_postcard_does() {
        const EDGES: [u8; 10] = [0x00, 0x01, 0x03, 0x04, 0x0f, 0x10, 0x7f, 0x80, 0x81, 0xff];
        let mut seq = Vec::new();
        for len in 1..=5u32 {
            for mut n in 0..10usize.pow(len) {
                seq.clear();
                for _ in 0..len {
                    seq.push(EDGES[n % 10]);
                    n /= 10;
                }
                for kind in [1u8, 2, 5] {
                    for tail in [&[][..], &[0][..], &[1, 2][..]] {
                        let mut p = vec![kind];
                        p.extend_from_slice(&seq);
                        p.extend_from_slice(tail);
                        let ours = HostMsg::decode(&p).ok();
                        // postcard leaves trailing bytes; ours refuses them.
                        let theirs = postcard::take_from_bytes::<HostMsg<'_>>(&p)
                            .ok()
                            .filter(|(_, rest)| rest.is_empty())
                            .map(|(m, _)| m);
                        assert_eq!(ours, theirs, "{p:02x?}");
                    }
                }
            }
        }
    }

    /// A console message's head followed by its data is the whole message,
    /// for data lengths around the varint's one/two-byte edge.
    #[test]
    fn console_heads_then_data_are_the_messages() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
        for n in [0, 1, 127, 128, 129, 255, 300] {
            let d = &data[..n];
            for stream in [Stream::Stdout, Stream::Stderr, Stream::Exec] {
                let mut head = [0u8; 8];
                let h = encode_console_out_head(stream, n, &mut head).unwrap();
                let mut want = [0u8; 310];
                let w = RtosMsg::ConsoleOut { stream, data: d }
                    .encode(&mut want)
                    .unwrap();
                assert_eq!([&head[..h], d].concat(), want[..w], "{stream:?} {n}");
            }
            let mut head = [0u8; 8];
            let h = encode_console_in_head(n, &mut head).unwrap();
            let mut want = [0u8; 310];
            let w = HostMsg::ConsoleIn { data: d }.encode(&mut want).unwrap();
            assert_eq!([&head[..h], d].concat(), want[..w], "stdin {n}");
        }
    }
}
