//! Messages as C structs: encode a `micrun_host_msg` / `micrun_rtos_msg` into a
//! payload, decode a payload into one.
//!
//! Each direction has one tagged struct: `kind` says which message it is and which
//! fields mean something (the others are ignored when encoding and zero after
//! decoding). Decoded byte and text fields are `micrun_bytes` pointing into the
//! payload that was decoded: nothing is copied, nothing allocated.

use core::ptr::{addr_of, NonNull};

use micrun_proto::msg::{self, HelloAck};
use micrun_proto::{
    Announce, ExitReason, Hello, HostMsg, LogLevel, RtosMsg, Stats, Stream, Version,
};

use crate::args::{self, Out};
use crate::status::{
    entry, fail, micrun_status, Failed, MICRUN_ERR_BUFFER_TOO_SHORT, MICRUN_ERR_INVALID_ARG,
    MICRUN_ERR_MALFORMED,
};

/// Protocol version this library speaks (see `Hello.version`).
pub const MICRUN_PROTOCOL_MAJOR: u8 = 1;
pub const MICRUN_PROTOCOL_MINOR: u8 = 2;

/// Longest `agent_version`, `os` or `board` in a HelloAck, in bytes.
pub const MICRUN_MAX_NAME: usize = 24;
/// Longest `text` of a Log message, in bytes.
pub const MICRUN_MAX_LOG: usize = 80;
/// Longest `argv` of an ExecStart, in bytes (every argument followed by a NUL).
pub const MICRUN_MAX_ARGV: usize = 80;

/// Feature bits of `Hello.features` / `HelloAck.features`; a session uses the
/// bits both sides set.
pub const MICRUN_FEATURE_STATS: u32 = 1;
pub const MICRUN_FEATURE_RESIZE: u32 = 2;
pub const MICRUN_FEATURE_SIGNALS: u32 = 4;
pub const MICRUN_FEATURE_STDERR: u32 = 8;
/// The agent runs the application's commands (protocol 1.2): a host sends
/// EXEC_START and EXEC_SIGNAL only when the session has this bit.
pub const MICRUN_FEATURE_EXEC: u32 = 16;

/// `micrun_host_msg.kind`: host → RTOS messages (the wire index).
pub const MICRUN_HOST_HELLO: u32 = 0;
pub const MICRUN_HOST_PING: u32 = 1;
pub const MICRUN_HOST_STOP: u32 = 2;
pub const MICRUN_HOST_SIGNAL: u32 = 3;
pub const MICRUN_HOST_CONSOLE_IN: u32 = 4;
pub const MICRUN_HOST_RESIZE: u32 = 5;
pub const MICRUN_HOST_CREDIT: u32 = 6;
pub const MICRUN_HOST_STATS_REQUEST: u32 = 7;
/// Run a command of the application (protocol 1.2): `exec`, `argv`.
pub const MICRUN_HOST_EXEC_START: u32 = 8;
/// A signal for the running exec (protocol 1.2): `exec`, `signo`.
pub const MICRUN_HOST_EXEC_SIGNAL: u32 = 9;

/// `micrun_rtos_msg.kind`: RTOS → host messages (the wire index).
pub const MICRUN_RTOS_HELLO_ACK: u32 = 0;
pub const MICRUN_RTOS_READY: u32 = 1;
pub const MICRUN_RTOS_PONG: u32 = 2;
pub const MICRUN_RTOS_CONSOLE_OUT: u32 = 3;
pub const MICRUN_RTOS_CREDIT: u32 = 4;
pub const MICRUN_RTOS_STATS: u32 = 5;
pub const MICRUN_RTOS_EXITED: u32 = 6;
pub const MICRUN_RTOS_LOG: u32 = 7;
/// The agent is there and waits for a Hello (protocol 1.1): a host listens for
/// it before it writes anything to a console that may have no agent.
pub const MICRUN_RTOS_ANNOUNCE: u32 = 8;
/// The exec ended (protocol 1.2): `exec`, `code`; sent after all its output.
pub const MICRUN_RTOS_EXEC_EXITED: u32 = 9;

/// Console streams (`stream` fields).
pub const MICRUN_STREAM_STDIN: u32 = 0;
pub const MICRUN_STREAM_STDOUT: u32 = 1;
pub const MICRUN_STREAM_STDERR: u32 = 2;
/// Output of the running exec, RTOS → host (protocol 1.2).
pub const MICRUN_STREAM_EXEC: u32 = 3;

/// Why the RTOS application ended (`micrun_rtos_msg.reason`).
pub const MICRUN_EXIT_REASON_NORMAL: u32 = 0;
pub const MICRUN_EXIT_REASON_PANIC: u32 = 1;
pub const MICRUN_EXIT_REASON_FAULT: u32 = 2;
pub const MICRUN_EXIT_REASON_WATCHDOG: u32 = 3;

/// Severity of a Log message (`micrun_rtos_msg.level`).
pub const MICRUN_LOG_ERROR: u32 = 0;
pub const MICRUN_LOG_WARN: u32 = 1;
pub const MICRUN_LOG_INFO: u32 = 2;
pub const MICRUN_LOG_DEBUG: u32 = 3;
pub const MICRUN_LOG_TRACE: u32 = 4;

// The header needs literal values; these keep them equal to the protocol crate's.
const _: () = {
    assert!(MICRUN_PROTOCOL_MAJOR == micrun_proto::PROTOCOL_VERSION.major);
    assert!(MICRUN_PROTOCOL_MINOR == micrun_proto::PROTOCOL_VERSION.minor);
    assert!(MICRUN_MAX_NAME == msg::MAX_NAME);
    assert!(MICRUN_MAX_LOG == msg::MAX_LOG);
    assert!(MICRUN_MAX_ARGV == msg::MAX_ARGV);
    assert!(MICRUN_FEATURE_STATS == micrun_proto::features::STATS);
    assert!(MICRUN_FEATURE_RESIZE == micrun_proto::features::RESIZE);
    assert!(MICRUN_FEATURE_SIGNALS == micrun_proto::features::SIGNALS);
    assert!(MICRUN_FEATURE_STDERR == micrun_proto::features::STDERR);
    assert!(MICRUN_FEATURE_EXEC == micrun_proto::features::EXEC);
};

/// A byte string or text: `len` bytes at `ptr`. Text is UTF-8 by contract and
/// not NUL-terminated; text decoded from an agent is not checked (the agent
/// sends what its firmware gave it): show it with invalid sequences replaced
/// (U+FFFD). `ptr` may be NULL when `len` is 0.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct micrun_bytes {
    pub ptr: *const u8,
    pub len: usize,
}

impl micrun_bytes {
    pub(crate) const EMPTY: micrun_bytes = micrun_bytes {
        ptr: core::ptr::null(),
        len: 0,
    };

    pub fn of(b: &[u8]) -> Self {
        micrun_bytes {
            ptr: b.as_ptr(),
            len: b.len(),
        }
    }
}

/// A protocol version.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct micrun_proto_version {
    pub major: u8,
    pub minor: u8,
}

/// Fields of Hello (host → RTOS, opens a session).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct micrun_hello {
    pub version: micrun_proto_version,
    /// MICRUN_FEATURE_* bits.
    pub features: u32,
    /// Largest frame the host accepts (header + payload + CRC, before COBS).
    pub max_frame: u16,
    /// Chosen anew for each session; a repeated Hello repeats it.
    pub session: u32,
}

/// Fields of Announce (RTOS → host, until a host says Hello). The wire's magic
/// bytes (`mcrn`) are written by encode and checked by decode.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct micrun_announce {
    pub version: micrun_proto_version,
    /// Largest frame the agent accepts.
    pub max_frame: u16,
}

/// Fields of HelloAck (RTOS → host, answers Hello).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct micrun_hello_ack {
    pub version: micrun_proto_version,
    /// MICRUN_FEATURE_* bits.
    pub features: u32,
    /// Largest frame the agent accepts.
    pub max_frame: u16,
    /// Echo of Hello.session.
    pub session: u32,
    /// Text, at most MICRUN_MAX_NAME bytes.
    pub agent_version: micrun_bytes,
    /// Text, at most MICRUN_MAX_NAME bytes.
    pub os: micrun_bytes,
    /// Text, at most MICRUN_MAX_NAME bytes.
    pub board: micrun_bytes,
}

/// Fields of Stats (RTOS → host): resource usage seen from inside the partition.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct micrun_stats_report {
    pub uptime_ms: u64,
    /// CPU load over the agent's last window, 0..=1000.
    pub cpu_load_permille: u16,
    pub mem_used_kib: u32,
    pub mem_total_kib: u32,
}

/// A host → RTOS message. `kind` (MICRUN_HOST_*) selects the message; only the
/// fields listed for that kind are read by micrun_host_msg_encode, and
/// micrun_host_msg_decode sets the others to zero.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct micrun_host_msg {
    /// MICRUN_HOST_*.
    pub kind: u32,
    /// HELLO.
    pub hello: micrun_hello,
    /// PING: echoed by the agent's Pong.
    pub nonce: u32,
    /// STOP: how long the application may take to stop.
    pub grace_ms: u32,
    /// SIGNAL, EXEC_SIGNAL: a POSIX signal number.
    pub signo: u8,
    /// CONSOLE_IN: console input bytes.
    pub data: micrun_bytes,
    /// RESIZE: terminal rows.
    pub rows: u16,
    /// RESIZE: terminal columns.
    pub cols: u16,
    /// CREDIT: MICRUN_STREAM_* the credit is for.
    pub stream: u32,
    /// CREDIT: how many more bytes of `stream` the host can take.
    pub bytes: u32,
    /// EXEC_START, EXEC_SIGNAL: the exec's number, chosen by the host.
    pub exec: u32,
    /// EXEC_START: every argument followed by a NUL, at most MICRUN_MAX_ARGV
    /// bytes (empty, or ending in a NUL).
    pub argv: micrun_bytes,
}

/// An RTOS → host message. `kind` (MICRUN_RTOS_*) selects the message; only the
/// fields listed for that kind are read by micrun_rtos_msg_encode, and
/// micrun_rtos_msg_decode sets the others to zero.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct micrun_rtos_msg {
    /// MICRUN_RTOS_*.
    pub kind: u32,
    /// HELLO_ACK.
    pub hello_ack: micrun_hello_ack,
    /// PONG: the nonce of the Ping answered.
    pub nonce: u32,
    /// PONG: the agent's uptime.
    pub uptime_ms: u64,
    /// CONSOLE_OUT (STDOUT, STDERR or EXEC), CREDIT (STDIN): MICRUN_STREAM_*.
    pub stream: u32,
    /// CONSOLE_OUT: console output bytes.
    pub data: micrun_bytes,
    /// CREDIT: how many more bytes of console input the agent can take.
    pub bytes: u32,
    /// STATS.
    pub stats: micrun_stats_report,
    /// EXITED: the application's exit code; EXEC_EXITED: the exec's.
    pub code: i32,
    /// EXITED: MICRUN_EXIT_REASON_*.
    pub reason: u32,
    /// LOG: MICRUN_LOG_*.
    pub level: u32,
    /// LOG: text, at most MICRUN_MAX_LOG bytes.
    pub text: micrun_bytes,
    /// ANNOUNCE.
    pub announce: micrun_announce,
    /// EXEC_EXITED: the exec's number (from its EXEC_START).
    pub exec: u32,
}

const ZERO_VERSION: micrun_proto_version = micrun_proto_version { major: 0, minor: 0 };

impl micrun_host_msg {
    pub(crate) const ZERO: micrun_host_msg = micrun_host_msg {
        kind: 0,
        hello: micrun_hello {
            version: ZERO_VERSION,
            features: 0,
            max_frame: 0,
            session: 0,
        },
        nonce: 0,
        grace_ms: 0,
        signo: 0,
        data: micrun_bytes::EMPTY,
        rows: 0,
        cols: 0,
        stream: 0,
        bytes: 0,
        exec: 0,
        argv: micrun_bytes::EMPTY,
    };
}

impl micrun_rtos_msg {
    pub(crate) const ZERO: micrun_rtos_msg = micrun_rtos_msg {
        kind: 0,
        hello_ack: micrun_hello_ack {
            version: ZERO_VERSION,
            features: 0,
            max_frame: 0,
            session: 0,
            agent_version: micrun_bytes::EMPTY,
            os: micrun_bytes::EMPTY,
            board: micrun_bytes::EMPTY,
        },
        nonce: 0,
        uptime_ms: 0,
        stream: 0,
        data: micrun_bytes::EMPTY,
        bytes: 0,
        stats: micrun_stats_report {
            uptime_ms: 0,
            cpu_load_permille: 0,
            mem_used_kib: 0,
            mem_total_kib: 0,
        },
        code: 0,
        reason: 0,
        level: 0,
        text: micrun_bytes::EMPTY,
        announce: micrun_announce {
            version: ZERO_VERSION,
            max_frame: 0,
        },
        exec: 0,
    };
}

const HOST_KINDS: [&str; 10] = [
    "Hello",
    "Ping",
    "Stop",
    "Signal",
    "ConsoleIn",
    "Resize",
    "Credit",
    "StatsRequest",
    "ExecStart",
    "ExecSignal",
];
const RTOS_KINDS: [&str; 10] = [
    "HelloAck",
    "Ready",
    "Pong",
    "ConsoleOut",
    "Credit",
    "Stats",
    "Exited",
    "Log",
    "Announce",
    "ExecExited",
];

/// Reads one field of a caller's struct without reading (or referencing) the
/// others, which the caller may have left uninitialised.
macro_rules! field {
    ($p:expr, $($f:tt)+) => {
        // SAFETY: `$p` is non-NULL and aligned (checked by args::input) and the
        // caller's contract makes the struct readable; the field of the selected
        // kind is initialised by that contract.
        unsafe { addr_of!((*$p.as_ptr()).$($f)+).read() }
    };
}

fn version_from_c(v: micrun_proto_version) -> Version {
    Version {
        major: v.major,
        minor: v.minor,
    }
}

fn version_to_c(v: Version) -> micrun_proto_version {
    micrun_proto_version {
        major: v.major,
        minor: v.minor,
    }
}

fn stream_from_c(v: u32, what: &str) -> Result<Stream, Failed> {
    match v {
        MICRUN_STREAM_STDIN => Ok(Stream::Stdin),
        MICRUN_STREAM_STDOUT => Ok(Stream::Stdout),
        MICRUN_STREAM_STDERR => Ok(Stream::Stderr),
        MICRUN_STREAM_EXEC => Ok(Stream::Exec),
        _ => Err(fail!(
            MICRUN_ERR_INVALID_ARG,
            "{what} {v} is not a MICRUN_STREAM_* value (0..=3)"
        )),
    }
}

fn stream_to_c(s: Stream) -> u32 {
    match s {
        Stream::Stdin => MICRUN_STREAM_STDIN,
        Stream::Stdout => MICRUN_STREAM_STDOUT,
        Stream::Stderr => MICRUN_STREAM_STDERR,
        Stream::Exec => MICRUN_STREAM_EXEC,
    }
}

/// A byte string from the caller; its length must fit the wire's u32 length.
///
/// # Safety
/// As [`args::bytes`], for the lifetime of the message being encoded.
unsafe fn data_from_c<'a>(b: micrun_bytes, what: &str) -> Result<&'a [u8], Failed> {
    // SAFETY: forwarded contract.
    let s = unsafe { args::bytes(b.ptr, b.len, what)? };
    if u32::try_from(s.len()).is_err() {
        return Err(fail!(
            MICRUN_ERR_INVALID_ARG,
            "{what} is {} bytes, more than a message can carry",
            s.len()
        ));
    }
    Ok(s)
}

/// Text from the caller: at most `max` bytes, UTF-8 by contract but not
/// checked (as the agent does not: a decoded message, whatever bytes its text
/// holds, encodes again).
///
/// # Safety
/// As [`args::bytes`], for the lifetime of the message being encoded.
unsafe fn text_from_c<'a>(b: micrun_bytes, max: usize, what: &str) -> Result<&'a [u8], Failed> {
    // SAFETY: forwarded contract.
    let s = unsafe { args::bytes(b.ptr, b.len, what)? };
    if s.len() > max {
        return Err(fail!(
            MICRUN_ERR_INVALID_ARG,
            "{what} is {} bytes, at most {max} are allowed",
            s.len()
        ));
    }
    Ok(s)
}

/// An exec's arguments from the caller: at most MICRUN_MAX_ARGV bytes, empty or
/// ending in a NUL (every argument is NUL-terminated).
///
/// # Safety
/// As [`args::bytes`], for the lifetime of the message being encoded.
unsafe fn argv_from_c<'a>(b: micrun_bytes, what: &str) -> Result<&'a [u8], Failed> {
    // SAFETY: forwarded contract.
    let s = unsafe { args::bytes(b.ptr, b.len, what)? };
    if s.len() > MICRUN_MAX_ARGV {
        return Err(fail!(
            MICRUN_ERR_INVALID_ARG,
            "{what} is {} bytes, at most {MICRUN_MAX_ARGV} are allowed",
            s.len()
        ));
    }
    if s.last().is_some_and(|&b| b != 0) {
        return Err(fail!(
            MICRUN_ERR_INVALID_ARG,
            "{what} does not end in a NUL: every argument must be followed by one"
        ));
    }
    Ok(s)
}

/// The Rust message described by the caller's struct.
///
/// # Safety
/// `p` must point to a readable `micrun_host_msg` whose fields for its kind are
/// initialised, with byte pointers valid for `'a`.
unsafe fn host_from_c<'a>(p: NonNull<micrun_host_msg>) -> Result<HostMsg<'a>, Failed> {
    let kind: u32 = field!(p, kind);
    Ok(match kind {
        MICRUN_HOST_HELLO => {
            let h: micrun_hello = field!(p, hello);
            HostMsg::Hello(Hello {
                version: version_from_c(h.version),
                features: h.features,
                max_frame: h.max_frame,
                session: h.session,
            })
        }
        MICRUN_HOST_PING => HostMsg::Ping {
            nonce: field!(p, nonce),
        },
        MICRUN_HOST_STOP => HostMsg::Stop {
            grace_ms: field!(p, grace_ms),
        },
        MICRUN_HOST_SIGNAL => HostMsg::Signal {
            signo: field!(p, signo),
        },
        MICRUN_HOST_CONSOLE_IN => {
            let data = field!(p, data);
            // SAFETY: forwarded contract.
            let data = unsafe { data_from_c(data, "msg->data")? };
            HostMsg::ConsoleIn { data }
        }
        MICRUN_HOST_RESIZE => HostMsg::Resize {
            rows: field!(p, rows),
            cols: field!(p, cols),
        },
        MICRUN_HOST_CREDIT => HostMsg::Credit {
            stream: stream_from_c(field!(p, stream), "msg->stream")?,
            bytes: field!(p, bytes),
        },
        MICRUN_HOST_STATS_REQUEST => HostMsg::StatsRequest,
        MICRUN_HOST_EXEC_START => {
            let argv = field!(p, argv);
            // SAFETY: forwarded contract.
            let argv = unsafe { argv_from_c(argv, "msg->argv")? };
            HostMsg::ExecStart {
                exec: field!(p, exec),
                argv,
            }
        }
        MICRUN_HOST_EXEC_SIGNAL => HostMsg::ExecSignal {
            exec: field!(p, exec),
            signo: field!(p, signo),
        },
        _ => {
            return Err(fail!(
                MICRUN_ERR_INVALID_ARG,
                "msg->kind {kind} is not a MICRUN_HOST_* value (0..=9)"
            ))
        }
    })
}

/// The C struct for a decoded message; byte fields point where `m` borrows from.
pub fn host_to_c(m: &HostMsg<'_>) -> micrun_host_msg {
    let mut c = micrun_host_msg::ZERO;
    match *m {
        HostMsg::Hello(h) => {
            c.kind = MICRUN_HOST_HELLO;
            c.hello = micrun_hello {
                version: version_to_c(h.version),
                features: h.features,
                max_frame: h.max_frame,
                session: h.session,
            };
        }
        HostMsg::Ping { nonce } => {
            c.kind = MICRUN_HOST_PING;
            c.nonce = nonce;
        }
        HostMsg::Stop { grace_ms } => {
            c.kind = MICRUN_HOST_STOP;
            c.grace_ms = grace_ms;
        }
        HostMsg::Signal { signo } => {
            c.kind = MICRUN_HOST_SIGNAL;
            c.signo = signo;
        }
        HostMsg::ConsoleIn { data } => {
            c.kind = MICRUN_HOST_CONSOLE_IN;
            c.data = micrun_bytes::of(data);
        }
        HostMsg::Resize { rows, cols } => {
            c.kind = MICRUN_HOST_RESIZE;
            c.rows = rows;
            c.cols = cols;
        }
        HostMsg::Credit { stream, bytes } => {
            c.kind = MICRUN_HOST_CREDIT;
            c.stream = stream_to_c(stream);
            c.bytes = bytes;
        }
        HostMsg::StatsRequest => c.kind = MICRUN_HOST_STATS_REQUEST,
        HostMsg::ExecStart { exec, argv } => {
            c.kind = MICRUN_HOST_EXEC_START;
            c.exec = exec;
            c.argv = micrun_bytes::of(argv);
        }
        HostMsg::ExecSignal { exec, signo } => {
            c.kind = MICRUN_HOST_EXEC_SIGNAL;
            c.exec = exec;
            c.signo = signo;
        }
    }
    c
}

/// The Rust message described by the caller's struct.
///
/// # Safety
/// As [`host_from_c`], for a `micrun_rtos_msg`.
unsafe fn rtos_from_c<'a>(p: NonNull<micrun_rtos_msg>) -> Result<RtosMsg<'a>, Failed> {
    let kind: u32 = field!(p, kind);
    Ok(match kind {
        MICRUN_RTOS_HELLO_ACK => {
            let a: micrun_hello_ack = field!(p, hello_ack);
            // SAFETY (the three texts): forwarded contract.
            RtosMsg::HelloAck(HelloAck {
                version: version_from_c(a.version),
                features: a.features,
                max_frame: a.max_frame,
                session: a.session,
                agent_version: unsafe {
                    text_from_c(
                        a.agent_version,
                        MICRUN_MAX_NAME,
                        "msg->hello_ack.agent_version",
                    )?
                },
                os: unsafe { text_from_c(a.os, MICRUN_MAX_NAME, "msg->hello_ack.os")? },
                board: unsafe { text_from_c(a.board, MICRUN_MAX_NAME, "msg->hello_ack.board")? },
            })
        }
        MICRUN_RTOS_READY => RtosMsg::Ready,
        MICRUN_RTOS_PONG => RtosMsg::Pong {
            nonce: field!(p, nonce),
            uptime_ms: field!(p, uptime_ms),
        },
        MICRUN_RTOS_CONSOLE_OUT => {
            let stream = stream_from_c(field!(p, stream), "msg->stream")?;
            let data = field!(p, data);
            // SAFETY: forwarded contract.
            let data = unsafe { data_from_c(data, "msg->data")? };
            RtosMsg::ConsoleOut { stream, data }
        }
        MICRUN_RTOS_CREDIT => RtosMsg::Credit {
            stream: stream_from_c(field!(p, stream), "msg->stream")?,
            bytes: field!(p, bytes),
        },
        MICRUN_RTOS_STATS => {
            let s: micrun_stats_report = field!(p, stats);
            RtosMsg::Stats(Stats {
                uptime_ms: s.uptime_ms,
                cpu_load_permille: s.cpu_load_permille,
                mem_used_kib: s.mem_used_kib,
                mem_total_kib: s.mem_total_kib,
            })
        }
        MICRUN_RTOS_EXITED => RtosMsg::Exited {
            code: field!(p, code),
            reason: match field!(p, reason) {
                MICRUN_EXIT_REASON_NORMAL => ExitReason::Normal,
                MICRUN_EXIT_REASON_PANIC => ExitReason::Panic,
                MICRUN_EXIT_REASON_FAULT => ExitReason::Fault,
                MICRUN_EXIT_REASON_WATCHDOG => ExitReason::Watchdog,
                other => {
                    return Err(fail!(
                        MICRUN_ERR_INVALID_ARG,
                        "msg->reason {other} is not a MICRUN_EXIT_REASON_* value (0..=3)"
                    ))
                }
            },
        },
        MICRUN_RTOS_ANNOUNCE => {
            let a: micrun_announce = field!(p, announce);
            RtosMsg::Announce(Announce::new(version_from_c(a.version), a.max_frame))
        }
        MICRUN_RTOS_LOG => {
            let level = match field!(p, level) {
                MICRUN_LOG_ERROR => LogLevel::Error,
                MICRUN_LOG_WARN => LogLevel::Warn,
                MICRUN_LOG_INFO => LogLevel::Info,
                MICRUN_LOG_DEBUG => LogLevel::Debug,
                MICRUN_LOG_TRACE => LogLevel::Trace,
                other => {
                    return Err(fail!(
                        MICRUN_ERR_INVALID_ARG,
                        "msg->level {other} is not a MICRUN_LOG_* value (0..=4)"
                    ))
                }
            };
            let text = field!(p, text);
            // SAFETY: forwarded contract.
            let text = unsafe { text_from_c(text, MICRUN_MAX_LOG, "msg->text")? };
            RtosMsg::Log { level, text }
        }
        MICRUN_RTOS_EXEC_EXITED => RtosMsg::ExecExited {
            exec: field!(p, exec),
            code: field!(p, code),
        },
        _ => {
            return Err(fail!(
                MICRUN_ERR_INVALID_ARG,
                "msg->kind {kind} is not a MICRUN_RTOS_* value (0..=9)"
            ))
        }
    })
}

/// The C struct for a decoded message; byte fields point where `m` borrows from.
pub fn rtos_to_c(m: &RtosMsg<'_>) -> micrun_rtos_msg {
    let mut c = micrun_rtos_msg::ZERO;
    match *m {
        RtosMsg::HelloAck(a) => {
            c.kind = MICRUN_RTOS_HELLO_ACK;
            c.hello_ack = micrun_hello_ack {
                version: version_to_c(a.version),
                features: a.features,
                max_frame: a.max_frame,
                session: a.session,
                agent_version: micrun_bytes::of(a.agent_version),
                os: micrun_bytes::of(a.os),
                board: micrun_bytes::of(a.board),
            };
        }
        RtosMsg::Ready => c.kind = MICRUN_RTOS_READY,
        RtosMsg::Pong { nonce, uptime_ms } => {
            c.kind = MICRUN_RTOS_PONG;
            c.nonce = nonce;
            c.uptime_ms = uptime_ms;
        }
        RtosMsg::ConsoleOut { stream, data } => {
            c.kind = MICRUN_RTOS_CONSOLE_OUT;
            c.stream = stream_to_c(stream);
            c.data = micrun_bytes::of(data);
        }
        RtosMsg::Credit { stream, bytes } => {
            c.kind = MICRUN_RTOS_CREDIT;
            c.stream = stream_to_c(stream);
            c.bytes = bytes;
        }
        RtosMsg::Stats(s) => {
            c.kind = MICRUN_RTOS_STATS;
            c.stats = micrun_stats_report {
                uptime_ms: s.uptime_ms,
                cpu_load_permille: s.cpu_load_permille,
                mem_used_kib: s.mem_used_kib,
                mem_total_kib: s.mem_total_kib,
            };
        }
        RtosMsg::Exited { code, reason } => {
            c.kind = MICRUN_RTOS_EXITED;
            c.code = code;
            c.reason = match reason {
                ExitReason::Normal => MICRUN_EXIT_REASON_NORMAL,
                ExitReason::Panic => MICRUN_EXIT_REASON_PANIC,
                ExitReason::Fault => MICRUN_EXIT_REASON_FAULT,
                ExitReason::Watchdog => MICRUN_EXIT_REASON_WATCHDOG,
            };
        }
        RtosMsg::Log { level, text } => {
            c.kind = MICRUN_RTOS_LOG;
            c.level = match level {
                LogLevel::Error => MICRUN_LOG_ERROR,
                LogLevel::Warn => MICRUN_LOG_WARN,
                LogLevel::Info => MICRUN_LOG_INFO,
                LogLevel::Debug => MICRUN_LOG_DEBUG,
                LogLevel::Trace => MICRUN_LOG_TRACE,
            };
            c.text = micrun_bytes::of(text);
        }
        RtosMsg::Announce(a) => {
            c.kind = MICRUN_RTOS_ANNOUNCE;
            c.announce = micrun_announce {
                version: version_to_c(a.version),
                max_frame: a.max_frame,
            };
        }
        RtosMsg::ExecExited { exec, code } => {
            c.kind = MICRUN_RTOS_EXEC_EXITED;
            c.exec = exec;
            c.code = code;
        }
    }
    c
}

/// Bytes of the LEB128 varint encoding of `n`.
fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

/// Every message but the console ones has a bounded size well under this.
const SCRATCH: usize = 128;

/// Encoded size of `m`: the console data is left out of a trial encoding and its
/// length added, so any data size is answered without a buffer that large.
fn host_len(m: &HostMsg<'_>) -> usize {
    let mut scratch = [0u8; SCRATCH];
    match *m {
        HostMsg::ConsoleIn { data } => {
            let empty = HostMsg::ConsoleIn { data: &[] }.encode(&mut scratch);
            empty.expect("an empty ConsoleIn fits") - 1 + varint_len(data.len()) + data.len()
        }
        other => other.encode(&mut scratch).expect("bounded messages fit"),
    }
}

fn rtos_len(m: &RtosMsg<'_>) -> usize {
    let mut scratch = [0u8; SCRATCH];
    match *m {
        RtosMsg::ConsoleOut { stream, data } => {
            let empty = RtosMsg::ConsoleOut { stream, data: &[] }.encode(&mut scratch);
            empty.expect("an empty ConsoleOut fits") - 1 + varint_len(data.len()) + data.len()
        }
        other => other.encode(&mut scratch).expect("bounded messages fit"),
    }
}

/// The caller's input slices must not share memory with the output buffer:
/// Rust may not hold both a shared and a mutable view of the same bytes.
fn check_apart(inputs: &[&[u8]], buf: *const u8, cap: usize) -> Result<(), Failed> {
    for s in inputs {
        if args::overlap(s.as_ptr(), s.len(), buf, cap) {
            return Err(fail!(
                MICRUN_ERR_INVALID_ARG,
                "a byte field of msg overlaps buf; encode into a separate buffer"
            ));
        }
    }
    Ok(())
}

/// The shared tail of both encoders.
fn encode_into(
    encode: impl FnOnce(&mut [u8]) -> Result<usize, msg::CodecError>,
    needed: usize,
    buf: &mut [u8],
    out_len: &Out<usize>,
) -> Result<(), Failed> {
    if buf.len() < needed {
        // SAFETY: out_len was checked by Out::new; valid per the contract.
        unsafe { out_len.set(needed) };
        return Err(fail!(
            MICRUN_ERR_BUFFER_TOO_SHORT,
            "the payload needs {needed} bytes, buf has {}",
            buf.len()
        ));
    }
    let n = encode(buf).map_err(|e| {
        fail!(
            MICRUN_ERR_INVALID_ARG,
            "the message cannot be encoded: {e:?}"
        )
    })?;
    debug_assert_eq!(n, needed);
    // SAFETY: as above.
    unsafe { out_len.set(n) };
    Ok(())
}

/// Why a payload did not decode, as precisely as the first bytes tell.
fn malformed(direction: &str, kinds: &[&str], payload: &[u8]) -> Failed {
    if payload.is_empty() {
        return fail!(
            MICRUN_ERR_MALFORMED,
            "empty payload: not a {direction} (a frame without payload is a pure acknowledgement)"
        );
    }
    // The kind is a varint; an over-long one reads as "unknown".
    let mut kind: u64 = 0;
    for (i, &b) in payload.iter().take(5).enumerate() {
        kind |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            break;
        }
        if i == 4 {
            kind = u64::MAX;
        }
    }
    match kinds.get(kind as usize) {
        Some(name) => fail!(
            MICRUN_ERR_MALFORMED,
            "malformed {direction} {name} ({} bytes): truncated, trailing bytes, a value out of range, or text too long",
            payload.len()
        ),
        None => fail!(
            MICRUN_ERR_MALFORMED,
            "unknown {direction} kind {} (this library knows 0..={})",
            kind,
            kinds.len() - 1
        ),
    }
}

/// Encodes a host → RTOS message into `buf` (capacity `cap`) and stores the
/// payload length in `*out_len`. With a `buf` that is too small (or NULL with `cap`
/// 0, to ask), returns MICRUN_ERR_BUFFER_TOO_SHORT with the size needed in
/// `*out_len`. Byte fields of `msg` must not overlap `buf`.
///
/// # Safety
/// `msg` must point to a `micrun_host_msg` whose fields for its kind are set, with
/// byte fields valid for their lengths; `buf` must be valid for `cap` bytes;
/// `out_len` must be valid for a write.
#[no_mangle]
pub unsafe extern "C" fn micrun_host_msg_encode(
    msg: *const micrun_host_msg,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> micrun_status {
    entry("micrun_host_msg_encode", || {
        let out_len = Out::new(out_len, "out_len")?;
        // SAFETY: checked non-NULL and aligned; writable per the contract.
        unsafe { out_len.set(0) };
        // SAFETY: the contract on msg.
        let m = unsafe { host_from_c(args::input(msg, "msg")?)? };
        match m {
            HostMsg::ConsoleIn { data } => check_apart(&[data], buf, cap)?,
            HostMsg::ExecStart { argv, .. } => check_apart(&[argv], buf, cap)?,
            _ => {}
        }
        // SAFETY: the contract on buf; no input slice overlaps it.
        let buf = unsafe { args::buffer(buf, cap, "buf")? };
        encode_into(|b| m.encode(b), host_len(&m), buf, &out_len)
    })
}

/// Decodes a host → RTOS payload (exactly one message) into `*out`. Its `data`
/// field points into `payload`: it is valid while `payload` is, unchanged. On error
/// `*out` is zeroed.
///
/// # Safety
/// `payload` must be valid for `len` bytes; `out` must be valid for a write.
#[no_mangle]
pub unsafe extern "C" fn micrun_host_msg_decode(
    payload: *const u8,
    len: usize,
    out: *mut micrun_host_msg,
) -> micrun_status {
    entry("micrun_host_msg_decode", || {
        let out = Out::new(out, "out")?;
        // SAFETY: checked non-NULL and aligned; writable per the contract.
        unsafe { out.set(micrun_host_msg::ZERO) };
        // SAFETY: the contract on payload.
        let payload = unsafe { args::bytes(payload, len, "payload")? };
        let m = HostMsg::decode(payload).map_err(|_| malformed("HostMsg", &HOST_KINDS, payload))?;
        // SAFETY: as above.
        unsafe { out.set(host_to_c(&m)) };
        Ok(())
    })
}

/// Encodes an RTOS → host message; as micrun_host_msg_encode. Text fields must be
/// within their bounds (MICRUN_MAX_NAME, MICRUN_MAX_LOG), else
/// MICRUN_ERR_INVALID_ARG; they are UTF-8 by contract, not checked (see
/// `micrun_bytes`).
///
/// # Safety
/// As micrun_host_msg_encode, for a `micrun_rtos_msg`.
#[no_mangle]
pub unsafe extern "C" fn micrun_rtos_msg_encode(
    msg: *const micrun_rtos_msg,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> micrun_status {
    entry("micrun_rtos_msg_encode", || {
        let out_len = Out::new(out_len, "out_len")?;
        // SAFETY: checked non-NULL and aligned; writable per the contract.
        unsafe { out_len.set(0) };
        // SAFETY: the contract on msg.
        let m = unsafe { rtos_from_c(args::input(msg, "msg")?)? };
        match m {
            RtosMsg::HelloAck(a) => check_apart(&[a.agent_version, a.os, a.board], buf, cap)?,
            RtosMsg::ConsoleOut { data, .. } => check_apart(&[data], buf, cap)?,
            RtosMsg::Log { text, .. } => check_apart(&[text], buf, cap)?,
            _ => {}
        }
        // SAFETY: the contract on buf; no input slice overlaps it.
        let buf = unsafe { args::buffer(buf, cap, "buf")? };
        encode_into(|b| m.encode(b), rtos_len(&m), buf, &out_len)
    })
}

/// Decodes an RTOS → host payload; as micrun_host_msg_decode. `data`, `text` and
/// the HelloAck names point into `payload`; text is checked to be within its
/// bound, not for UTF-8 (see `micrun_bytes`).
///
/// # Safety
/// As micrun_host_msg_decode, for a `micrun_rtos_msg`.
#[no_mangle]
pub unsafe extern "C" fn micrun_rtos_msg_decode(
    payload: *const u8,
    len: usize,
    out: *mut micrun_rtos_msg,
) -> micrun_status {
    entry("micrun_rtos_msg_decode", || {
        let out = Out::new(out, "out")?;
        // SAFETY: checked non-NULL and aligned; writable per the contract.
        unsafe { out.set(micrun_rtos_msg::ZERO) };
        // SAFETY: the contract on payload.
        let payload = unsafe { args::bytes(payload, len, "payload")? };
        let m = RtosMsg::decode(payload).map_err(|_| malformed("RtosMsg", &RTOS_KINDS, payload))?;
        // SAFETY: as above.
        unsafe { out.set(rtos_to_c(&m)) };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{last_error, MICRUN_ERR_NULL, MICRUN_OK};

    fn enc_host(m: &micrun_host_msg) -> (micrun_status, Vec<u8>) {
        let mut buf = [0u8; 600];
        let mut n = 0;
        // SAFETY: valid pointers and lengths.
        let st = unsafe { micrun_host_msg_encode(m, buf.as_mut_ptr(), buf.len(), &mut n) };
        (st, buf[..n].to_vec())
    }

    #[test]
    fn every_host_kind_round_trips_and_matches_the_proto_crate() {
        let data = b"\0ab\0";
        let msgs = [
            HostMsg::Hello(Hello {
                version: micrun_proto::PROTOCOL_VERSION,
                features: 15,
                max_frame: 496,
                session: 0xdead_beef,
            }),
            HostMsg::Ping { nonce: 300 },
            HostMsg::Stop { grace_ms: 10_000 },
            HostMsg::Signal { signo: 15 },
            HostMsg::ConsoleIn { data },
            HostMsg::Resize { rows: 24, cols: 80 },
            HostMsg::Credit {
                stream: Stream::Stderr,
                bytes: 512,
            },
            HostMsg::StatsRequest,
            HostMsg::ExecStart {
                exec: 300,
                argv: b"ls\0-l\0",
            },
            HostMsg::ExecStart { exec: 0, argv: &[] },
            HostMsg::ExecSignal { exec: 7, signo: 9 },
        ];
        for m in msgs {
            let c = host_to_c(&m);
            let (st, bytes) = enc_host(&c);
            assert_eq!(st, MICRUN_OK, "{m:?}: {}", last_error());
            let mut want = [0u8; 600];
            let n = m.encode(&mut want).unwrap();
            assert_eq!(bytes, &want[..n], "{m:?}");
            assert_eq!(host_len(&m), n, "{m:?}");
            let mut back = micrun_host_msg::ZERO;
            // SAFETY: valid pointers.
            let st = unsafe { micrun_host_msg_decode(bytes.as_ptr(), bytes.len(), &mut back) };
            assert_eq!(st, MICRUN_OK);
            let mut again = [0u8; 600];
            let mut n2 = 0;
            // SAFETY: valid pointers.
            let st = unsafe { micrun_host_msg_encode(&back, again.as_mut_ptr(), 600, &mut n2) };
            assert_eq!(st, MICRUN_OK);
            assert_eq!(&again[..n2], &bytes[..]);
        }
    }

    #[test]
    fn every_rtos_kind_round_trips_and_matches_the_proto_crate() {
        let msgs = [
            RtosMsg::HelloAck(HelloAck {
                version: micrun_proto::PROTOCOL_VERSION,
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
                stream: Stream::Stdin,
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
            RtosMsg::ConsoleOut {
                stream: Stream::Exec,
                data: b"out",
            },
            RtosMsg::ExecExited {
                exec: 300,
                code: -127,
            },
        ];
        for m in msgs {
            let c = rtos_to_c(&m);
            let mut buf = [0u8; 600];
            let mut n = 0;
            // SAFETY: valid pointers.
            let st = unsafe { micrun_rtos_msg_encode(&c, buf.as_mut_ptr(), 600, &mut n) };
            assert_eq!(st, MICRUN_OK, "{m:?}: {}", last_error());
            let mut want = [0u8; 600];
            let wn = m.encode(&mut want).unwrap();
            assert_eq!(&buf[..n], &want[..wn], "{m:?}");
            assert_eq!(rtos_len(&m), wn);
            let mut back = micrun_rtos_msg::ZERO;
            // SAFETY: valid pointers.
            let st = unsafe { micrun_rtos_msg_decode(buf.as_ptr(), n, &mut back) };
            assert_eq!(st, MICRUN_OK);
            let mut again = [0u8; 600];
            let mut n2 = 0;
            // SAFETY: valid pointers; `back` points into `buf`, a different buffer.
            let st = unsafe { micrun_rtos_msg_encode(&back, again.as_mut_ptr(), 600, &mut n2) };
            assert_eq!(st, MICRUN_OK);
            assert_eq!(&again[..n2], &buf[..n], "{m:?}");
        }
    }

    #[test]
    fn short_buffers_report_the_size_needed_for_any_data_length() {
        for len in [0usize, 1, 127, 128, 16_383, 16_384, 100_000] {
            let data = vec![0x55u8; len];
            let c = host_to_c(&HostMsg::ConsoleIn { data: &data });
            let mut need = 0;
            // SAFETY: NULL buffer with capacity 0 is a size query.
            let st = unsafe { micrun_host_msg_encode(&c, core::ptr::null_mut(), 0, &mut need) };
            assert_eq!(st, MICRUN_ERR_BUFFER_TOO_SHORT);
            assert!(last_error().contains(&format!("needs {need} bytes")));
            let mut buf = vec![0u8; need];
            let mut n = 0;
            // SAFETY: valid pointers.
            let st = unsafe { micrun_host_msg_encode(&c, buf.as_mut_ptr(), need - 1, &mut n) };
            assert_eq!((st, n), (MICRUN_ERR_BUFFER_TOO_SHORT, need));
            // SAFETY: valid pointers.
            let st = unsafe { micrun_host_msg_encode(&c, buf.as_mut_ptr(), need, &mut n) };
            assert_eq!((st, n), (MICRUN_OK, need), "{len} bytes of data");
        }
    }

    #[test]
    fn bad_arguments_are_errors() {
        let mut n = 0;
        let mut buf = [0u8; 64];
        // SAFETY (all calls): NULL or valid pointers, as each case says.
        unsafe {
            assert_eq!(
                micrun_host_msg_encode(core::ptr::null(), buf.as_mut_ptr(), 64, &mut n),
                MICRUN_ERR_NULL
            );
            let ping = host_to_c(&HostMsg::Ping { nonce: 1 });
            assert_eq!(
                micrun_host_msg_encode(&ping, buf.as_mut_ptr(), 64, core::ptr::null_mut()),
                MICRUN_ERR_NULL
            );
            assert_eq!(
                micrun_host_msg_encode(&ping, core::ptr::null_mut(), 64, &mut n),
                MICRUN_ERR_NULL
            );
            let mut bad = ping;
            bad.kind = 10;
            assert_eq!(
                micrun_host_msg_encode(&bad, buf.as_mut_ptr(), 64, &mut n),
                MICRUN_ERR_INVALID_ARG
            );
            assert!(last_error().contains("msg->kind 10"), "{}", last_error());
            let mut exec = host_to_c(&HostMsg::ExecStart {
                exec: 1,
                argv: b"ls\0",
            });
            exec.argv = micrun_bytes::of(b"ls");
            assert_eq!(
                micrun_host_msg_encode(&exec, buf.as_mut_ptr(), 64, &mut n),
                MICRUN_ERR_INVALID_ARG
            );
            assert!(
                last_error().contains("does not end in a NUL"),
                "{}",
                last_error()
            );
            let long = [0u8; 81];
            exec.argv = micrun_bytes::of(&long);
            assert_eq!(
                micrun_host_msg_encode(&exec, buf.as_mut_ptr(), 64, &mut n),
                MICRUN_ERR_INVALID_ARG
            );
            assert!(
                last_error().contains("81 bytes, at most 80"),
                "{}",
                last_error()
            );
            let mut credit = host_to_c(&HostMsg::Credit {
                stream: Stream::Stdout,
                bytes: 1,
            });
            credit.stream = 4;
            assert_eq!(
                micrun_host_msg_encode(&credit, buf.as_mut_ptr(), 64, &mut n),
                MICRUN_ERR_INVALID_ARG
            );
            let mut log = rtos_to_c(&RtosMsg::Log {
                level: LogLevel::Info,
                text: b"x",
            });
            let long = [b'a'; 81];
            log.text = micrun_bytes::of(&long);
            assert_eq!(
                micrun_rtos_msg_encode(&log, buf.as_mut_ptr(), 64, &mut n),
                MICRUN_ERR_INVALID_ARG
            );
            // Not UTF-8: encoded as it is (the host shows it replaced).
            log.text = micrun_bytes::of(b"\xff");
            assert_eq!(
                micrun_rtos_msg_encode(&log, buf.as_mut_ptr(), 64, &mut n),
                MICRUN_OK
            );
            assert_eq!(&buf[..n], &[7, 2, 1, 0xff]);
            log.text = micrun_bytes {
                ptr: core::ptr::null(),
                len: 3,
            };
            assert_eq!(
                micrun_rtos_msg_encode(&log, buf.as_mut_ptr(), 64, &mut n),
                MICRUN_ERR_NULL
            );
            let mut exited = rtos_to_c(&RtosMsg::Exited {
                code: 0,
                reason: ExitReason::Normal,
            });
            exited.reason = 4;
            assert_eq!(
                micrun_rtos_msg_encode(&exited, buf.as_mut_ptr(), 64, &mut n),
                MICRUN_ERR_INVALID_ARG
            );
            // Data inside the output buffer.
            let inside = rtos_to_c(&RtosMsg::ConsoleOut {
                stream: Stream::Stdout,
                data: &buf[10..20],
            });
            assert_eq!(
                micrun_rtos_msg_encode(&inside, buf.as_mut_ptr(), 64, &mut n),
                MICRUN_ERR_INVALID_ARG
            );
            let mut out = micrun_rtos_msg::ZERO;
            assert_eq!(
                micrun_rtos_msg_decode(core::ptr::null(), 1, &mut out),
                MICRUN_ERR_NULL
            );
            assert_eq!(
                micrun_rtos_msg_decode(buf.as_ptr(), 1, core::ptr::null_mut()),
                MICRUN_ERR_NULL
            );
        }
    }

    #[test]
    fn malformed_payloads_say_what_they_look_like() {
        let mut out = micrun_host_msg::ZERO;
        let cases: [(&[u8], &str); 6] = [
            (&[], "empty payload"),
            (&[10], "unknown HostMsg kind 10"),
            (
                &[8, 1, 2, b'l', b's'],
                "malformed HostMsg ExecStart (5 bytes)",
            ),
            (&[9, 1], "malformed HostMsg ExecSignal"),
            (&[5, 24], "malformed HostMsg Resize (2 bytes)"),
            (&[7, 0], "malformed HostMsg StatsRequest"),
        ];
        for (payload, want) in cases {
            // SAFETY: valid pointers (an empty slice's pointer with length 0).
            let st = unsafe { micrun_host_msg_decode(payload.as_ptr(), payload.len(), &mut out) };
            assert_eq!(st, MICRUN_ERR_MALFORMED);
            assert!(last_error().contains(want), "{payload:?}: {}", last_error());
            assert_eq!(out, micrun_host_msg::ZERO);
        }
    }
}
