//! Messages exchanged between the host (micrun-shim, libmicrun) and the RTOS agent.
//!
//! Wire types borrow their variable-length data (`&[u8]`, `&str`) so that neither
//! side copies console data through an intermediate buffer: the sender serializes
//! straight from its ring buffer, the receiver deserializes straight from its frame
//! buffer. Every variable-length field has a hard bound ([`MAX_NAME`], [`MAX_LOG`],
//! and the negotiated frame size for console data) that decoders enforce.
//!
//! Payload encoding is postcard: the variant index as a varint, then the fields in
//! order (integers as varints, `i32` zig-zag, byte strings and text as a varint
//! length followed by the bytes). `docs/protocol.md` lists every message with its
//! index and field order.

use serde::{Deserialize, Serialize};

/// Longest agent version, OS name or board name in a [`HelloAck`], in bytes.
pub const MAX_NAME: usize = 24;
/// Longest text of a [`RtosMsg::Log`], in bytes.
pub const MAX_LOG: usize = 80;

/// Protocol version. Peers interoperate when the major versions are equal; the
/// session then uses the lower minor version.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub major: u8,
    pub minor: u8,
}

/// The version this crate speaks.
pub const PROTOCOL_VERSION: Version = Version { major: 1, minor: 0 };

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
    /// Everything this crate implements.
    pub const ALL: u32 = STATS | RESIZE | SIGNALS | STDERR;
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
    pub agent_version: &'a str,
    pub os: &'a str,
    pub board: &'a str,
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
    /// 7: a diagnostic line from the agent or the application.
    Log { level: LogLevel, text: &'a str },
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

fn check_str(s: &str, max: usize) -> Result<(), CodecError> {
    if s.len() > max {
        Err(CodecError::Malformed)
    } else {
        Ok(())
    }
}

impl<'a> HostMsg<'a> {
    /// Serializes the payload into `buf`, returning its length.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, CodecError> {
        encode(self, buf)
    }

    /// Parses a payload. The whole slice must be one message.
    pub fn decode(buf: &'a [u8]) -> Result<Self, CodecError> {
        decode(buf)
    }

    /// Whether this message travels outside the reliable sequence.
    pub fn is_unsequenced(&self) -> bool {
        matches!(self, HostMsg::Hello(_) | HostMsg::Ping { .. })
    }
}

impl<'a> RtosMsg<'a> {
    /// Serializes the payload into `buf`, returning its length.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, CodecError> {
        match self {
            RtosMsg::HelloAck(a) => {
                check_str(a.agent_version, MAX_NAME)?;
                check_str(a.os, MAX_NAME)?;
                check_str(a.board, MAX_NAME)?;
            }
            RtosMsg::Log { text, .. } => check_str(text, MAX_LOG)?,
            _ => {}
        }
        encode(self, buf)
    }

    /// Parses a payload. The whole slice must be one message, and text fields must
    /// be within their bounds.
    pub fn decode(buf: &'a [u8]) -> Result<Self, CodecError> {
        let msg: RtosMsg<'a> = decode(buf)?;
        match &msg {
            RtosMsg::HelloAck(a) => {
                check_str(a.agent_version, MAX_NAME)?;
                check_str(a.os, MAX_NAME)?;
                check_str(a.board, MAX_NAME)?;
            }
            RtosMsg::Log { text, .. } => check_str(text, MAX_LOG)?,
            _ => {}
        }
        Ok(msg)
    }

    /// Whether this message travels outside the reliable sequence.
    pub fn is_unsequenced(&self) -> bool {
        matches!(self, RtosMsg::HelloAck(_) | RtosMsg::Pong { .. })
    }
}

fn encode<T: Serialize>(msg: &T, buf: &mut [u8]) -> Result<usize, CodecError> {
    postcard::to_slice(msg, buf)
        .map(|s| s.len())
        .map_err(|_| CodecError::BufferTooSmall)
}

fn decode<'a, T: Deserialize<'a>>(buf: &'a [u8]) -> Result<T, CodecError> {
    match postcard::take_from_bytes::<T>(buf) {
        Ok((msg, [])) => Ok(msg),
        _ => Err(CodecError::Malformed),
    }
}
