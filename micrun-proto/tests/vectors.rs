//! Golden wire vectors: `tests/vectors/messages.txt` at the repository root.
//!
//! The messages are described here, in Rust ([`cases`]); the bytes come from the
//! file. A change to the payload encoding, the frame layout, the CRC or the COBS
//! stuffing therefore fails [`golden_vectors`] instead of silently rewriting the
//! contract that the C side (and older agents) rely on.
//!
//! After an intentional change of the wire format (or when adding a case), bless
//! the file and review the diff:
//!
//! ```text
//! MICRUN_BLESS=1 cargo test -p micrun-proto --test vectors -- regenerate
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use micrun_proto::frame::{self, Deframer, Header, FLAG_SEQ, MAX_FRAME};
use micrun_proto::msg::{HelloAck, MAX_ARGV, MAX_LOG, MAX_NAME};
use micrun_proto::{
    features, Announce, ExitReason, Hello, HostMsg, LogLevel, RtosMsg, Stats, Stream, Version,
};

// ---- the cases ----------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    H2r,
    R2h,
}

impl Dir {
    fn as_str(self) -> &'static str {
        match self {
            Dir::H2r => "h2r",
            Dir::R2h => "r2h",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Msg {
    Host(HostMsg<'static>),
    Rtos(RtosMsg<'static>),
}

#[derive(Debug, Clone, Copy)]
struct Case {
    name: &'static str,
    dir: Dir,
    /// `Some` for a sequenced frame.
    seq: Option<u8>,
    ack: u8,
    /// `None` for a pure acknowledgement.
    msg: Option<Msg>,
}

fn leak(v: Vec<u8>) -> &'static [u8] {
    Box::leak(v.into_boxed_slice())
}

fn leak_str(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// The longest argument vector: 8 arguments of 8 bytes and one of 7, each with its NUL.
fn argv_max() -> &'static [u8] {
    let mut v = Vec::new();
    for i in 0..9u8 {
        let len = if i == 8 { 7 } else { 8 };
        v.extend((0..len).map(|j| b'a' + (i + j) % 26));
        v.push(0);
    }
    assert_eq!(v.len(), MAX_ARGV);
    leak(v)
}

/// 480 bytes without a zero: the COBS encoding needs a 0xFF block (> 254 bytes).
fn console_480() -> &'static [u8] {
    leak((0..480).map(|i| (i % 255 + 1) as u8).collect())
}

fn h(name: &'static str, seq: Option<u8>, ack: u8, m: HostMsg<'static>) -> Case {
    Case {
        name,
        dir: Dir::H2r,
        seq,
        ack,
        msg: Some(Msg::Host(m)),
    }
}

fn r(name: &'static str, seq: Option<u8>, ack: u8, m: RtosMsg<'static>) -> Case {
    Case {
        name,
        dir: Dir::R2h,
        seq,
        ack,
        msg: Some(Msg::Rtos(m)),
    }
}

/// Every vector, in file order. Names are unique.
fn cases() -> Vec<Case> {
    let name24 = leak_str("abcdefghijklmnopqrstuvwx".to_string());
    assert_eq!(name24.len(), MAX_NAME);
    let text80 = leak_str(
        (0..MAX_LOG)
            .map(|i| (b'!' + (i % 94) as u8) as char)
            .collect(),
    );
    assert_eq!(text80.len(), MAX_LOG);
    let v1 = Version { major: 1, minor: 0 };
    // What a 1.0 peer offers: the vectors written for 1.0 keep their bytes.
    let v1_features = features::STATS | features::RESIZE | features::SIGNALS | features::STDERR;
    let v1_2 = Version { major: 1, minor: 2 };

    vec![
        // ---- host -> RTOS ----
        h(
            "hello",
            None,
            0,
            HostMsg::Hello(Hello {
                version: v1,
                features: v1_features,
                max_frame: MAX_FRAME as u16,
                session: 1,
            }),
        ),
        h(
            "hello_1_2",
            None,
            0,
            HostMsg::Hello(Hello {
                version: v1_2,
                features: features::ALL,
                max_frame: MAX_FRAME as u16,
                session: 2,
            }),
        ),
        h(
            "hello_max",
            None,
            0,
            HostMsg::Hello(Hello {
                version: Version {
                    major: u8::MAX,
                    minor: u8::MAX,
                },
                features: u32::MAX,
                max_frame: u16::MAX,
                session: u32::MAX,
            }),
        ),
        h("ping_1", None, 0, HostMsg::Ping { nonce: 1 }),
        h("ping_max", None, 17, HostMsg::Ping { nonce: u32::MAX }),
        h("stop", Some(0), 0, HostMsg::Stop { grace_ms: 5000 }),
        h("stop_0", Some(1), 2, HostMsg::Stop { grace_ms: 0 }),
        h("signal_0", Some(2), 0, HostMsg::Signal { signo: 0 }),
        h("signal_255", Some(3), 1, HostMsg::Signal { signo: 255 }),
        h(
            "console_in_empty",
            Some(4),
            0,
            HostMsg::ConsoleIn { data: &[] },
        ),
        h(
            "console_in_1",
            Some(5),
            0,
            HostMsg::ConsoleIn { data: b"a" },
        ),
        h(
            "console_in_zeros",
            Some(6),
            0,
            HostMsg::ConsoleIn {
                data: &[0, 0x61, 0, 0, 0x62, 0],
            },
        ),
        h(
            "console_in_480",
            Some(7),
            9,
            HostMsg::ConsoleIn {
                data: console_480(),
            },
        ),
        h("resize", Some(8), 0, HostMsg::Resize { rows: 24, cols: 80 }),
        h(
            "resize_max",
            Some(9),
            0,
            HostMsg::Resize {
                rows: u16::MAX,
                cols: u16::MAX,
            },
        ),
        h(
            "h_credit_stdin",
            Some(10),
            0,
            HostMsg::Credit {
                stream: Stream::Stdin,
                bytes: 512,
            },
        ),
        h(
            "h_credit_stdout",
            Some(11),
            0,
            HostMsg::Credit {
                stream: Stream::Stdout,
                bytes: 8192,
            },
        ),
        h(
            "h_credit_stderr",
            Some(12),
            0,
            HostMsg::Credit {
                stream: Stream::Stderr,
                bytes: u32::MAX,
            },
        ),
        h("stats_request", Some(13), 0, HostMsg::StatsRequest),
        h(
            "exec_start",
            Some(14),
            3,
            HostMsg::ExecStart {
                exec: 1,
                argv: b"stats\0",
            },
        ),
        h(
            "exec_start_max",
            Some(15),
            0,
            HostMsg::ExecStart {
                exec: u32::MAX,
                argv: argv_max(),
            },
        ),
        h(
            "exec_start_empty",
            Some(16),
            0,
            HostMsg::ExecStart { exec: 0, argv: &[] },
        ),
        h(
            "exec_signal",
            Some(17),
            4,
            HostMsg::ExecSignal {
                exec: 300,
                signo: 9,
            },
        ),
        h(
            "h_credit_exec",
            Some(18),
            0,
            HostMsg::Credit {
                stream: Stream::Exec,
                bytes: 4096,
            },
        ),
        h("h_seq_255", Some(255), 254, HostMsg::StatsRequest),
        Case {
            name: "h_pure_ack_255",
            dir: Dir::H2r,
            seq: None,
            ack: 255,
            msg: None,
        },
        // ---- RTOS -> host ----
        r(
            "hello_ack",
            None,
            0,
            RtosMsg::HelloAck(HelloAck {
                version: v1,
                features: v1_features,
                max_frame: 253,
                session: 1,
                agent_version: b"0.1.0",
                os: b"uniproton",
                board: b"qemu-virt",
            }),
        ),
        r(
            "hello_ack_1_2",
            None,
            0,
            RtosMsg::HelloAck(HelloAck {
                version: v1_2,
                features: features::ALL,
                max_frame: 253,
                session: 2,
                agent_version: b"0.3.0",
                os: b"zephyr",
                board: b"qemu-virt",
            }),
        ),
        r(
            "hello_ack_empty",
            None,
            0,
            RtosMsg::HelloAck(HelloAck {
                version: v1,
                features: 0,
                max_frame: 96,
                session: 0,
                agent_version: b"",
                os: b"",
                board: b"",
            }),
        ),
        r(
            "hello_ack_24",
            None,
            0,
            RtosMsg::HelloAck(HelloAck {
                version: Version {
                    major: u8::MAX,
                    minor: u8::MAX,
                },
                features: u32::MAX,
                max_frame: u16::MAX,
                session: u32::MAX,
                agent_version: name24.as_bytes(),
                os: name24.as_bytes(),
                board: name24.as_bytes(),
            }),
        ),
        r("ready", Some(0), 0, RtosMsg::Ready),
        r(
            "pong",
            None,
            3,
            RtosMsg::Pong {
                nonce: 1,
                uptime_ms: 1234,
            },
        ),
        r(
            "pong_max",
            None,
            0,
            RtosMsg::Pong {
                nonce: u32::MAX,
                uptime_ms: u64::MAX,
            },
        ),
        r(
            "console_out_stdout",
            Some(1),
            0,
            RtosMsg::ConsoleOut {
                stream: Stream::Stdout,
                data: b"hello\n",
            },
        ),
        r(
            "console_out_stderr",
            Some(2),
            0,
            RtosMsg::ConsoleOut {
                stream: Stream::Stderr,
                data: &[0, b'e', 0],
            },
        ),
        r(
            "console_out_480",
            Some(3),
            5,
            RtosMsg::ConsoleOut {
                stream: Stream::Stdout,
                data: console_480(),
            },
        ),
        r(
            "r_credit_stdin",
            Some(4),
            0,
            RtosMsg::Credit {
                stream: Stream::Stdin,
                bytes: 128,
            },
        ),
        r(
            "r_credit_stdout",
            Some(5),
            0,
            RtosMsg::Credit {
                stream: Stream::Stdout,
                bytes: 0,
            },
        ),
        r(
            "r_credit_stderr",
            Some(6),
            0,
            RtosMsg::Credit {
                stream: Stream::Stderr,
                bytes: u32::MAX,
            },
        ),
        r(
            "stats",
            Some(7),
            0,
            RtosMsg::Stats(Stats {
                uptime_ms: 60_000,
                cpu_load_permille: 125,
                mem_used_kib: 300,
                mem_total_kib: 1024,
            }),
        ),
        r(
            "stats_max",
            Some(8),
            0,
            RtosMsg::Stats(Stats {
                uptime_ms: u64::MAX,
                cpu_load_permille: u16::MAX,
                mem_used_kib: u32::MAX,
                mem_total_kib: u32::MAX,
            }),
        ),
        r(
            "exited_normal_0",
            Some(9),
            0,
            RtosMsg::Exited {
                code: 0,
                reason: ExitReason::Normal,
            },
        ),
        r(
            "exited_panic_neg1",
            Some(10),
            0,
            RtosMsg::Exited {
                code: -1,
                reason: ExitReason::Panic,
            },
        ),
        r(
            "exited_fault_min",
            Some(11),
            0,
            RtosMsg::Exited {
                code: i32::MIN,
                reason: ExitReason::Fault,
            },
        ),
        r(
            "exited_watchdog_max",
            Some(12),
            0,
            RtosMsg::Exited {
                code: i32::MAX,
                reason: ExitReason::Watchdog,
            },
        ),
        r(
            "log_error",
            Some(13),
            0,
            RtosMsg::Log {
                level: LogLevel::Error,
                text: b"oops",
            },
        ),
        r(
            "log_warn",
            Some(14),
            0,
            RtosMsg::Log {
                level: LogLevel::Warn,
                text: b"low memory",
            },
        ),
        r(
            "log_info",
            Some(15),
            0,
            RtosMsg::Log {
                level: LogLevel::Info,
                text: b"booted",
            },
        ),
        r(
            "log_debug",
            Some(16),
            0,
            RtosMsg::Log {
                level: LogLevel::Debug,
                text: b"tick",
            },
        ),
        r(
            "log_trace_empty",
            Some(17),
            0,
            RtosMsg::Log {
                level: LogLevel::Trace,
                text: b"",
            },
        ),
        r(
            "log_info_80",
            Some(18),
            0,
            RtosMsg::Log {
                level: LogLevel::Info,
                text: text80.as_bytes(),
            },
        ),
        r(
            "log_utf8",
            Some(19),
            0,
            RtosMsg::Log {
                level: LogLevel::Warn,
                text: "température ≥ 90°C".as_bytes(),
            },
        ),
        r(
            "console_out_exec",
            Some(20),
            0,
            RtosMsg::ConsoleOut {
                stream: Stream::Exec,
                data: b"uptime 12 ms\n",
            },
        ),
        r(
            "exec_exited",
            Some(21),
            17,
            RtosMsg::ExecExited { exec: 1, code: 0 },
        ),
        r(
            "exec_exited_137",
            Some(22),
            0,
            RtosMsg::ExecExited {
                exec: u32::MAX,
                code: 137,
            },
        ),
        r(
            "exec_exited_negative",
            Some(23),
            0,
            RtosMsg::ExecExited {
                exec: 300,
                code: i32::MIN,
            },
        ),
        r("r_seq_255", Some(255), 7, RtosMsg::Ready),
        r(
            "announce",
            None,
            0,
            RtosMsg::Announce(Announce::new(Version { major: 1, minor: 1 }, 253)),
        ),
        r(
            "announce_ack_max",
            None,
            255,
            RtosMsg::Announce(Announce::new(
                Version {
                    major: u8::MAX,
                    minor: u8::MAX,
                },
                u16::MAX,
            )),
        ),
        Case {
            name: "r_pure_ack_255",
            dir: Dir::R2h,
            seq: None,
            ack: 255,
            msg: None,
        },
    ]
}

// ---- variant coverage -----------------------------------------------------------------
//
// No wildcard arms: a new variant does not compile until it is given a number here,
// and `every_variant_has_a_vector` then fails until a vector uses it. The number is
// the wire index, which the test also checks against the payload's first byte.

const HOST_VARIANTS: usize = 10;
const RTOS_VARIANTS: usize = 10;

fn host_variant(m: &HostMsg<'_>) -> usize {
    match m {
        HostMsg::Hello(_) => 0,
        HostMsg::Ping { .. } => 1,
        HostMsg::Stop { .. } => 2,
        HostMsg::Signal { .. } => 3,
        HostMsg::ConsoleIn { .. } => 4,
        HostMsg::Resize { .. } => 5,
        HostMsg::Credit { .. } => 6,
        HostMsg::StatsRequest => 7,
        HostMsg::ExecStart { .. } => 8,
        HostMsg::ExecSignal { .. } => 9,
    }
}

fn rtos_variant(m: &RtosMsg<'_>) -> usize {
    match m {
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
    }
}

fn stream_index(s: Stream) -> usize {
    match s {
        Stream::Stdin => 0,
        Stream::Stdout => 1,
        Stream::Stderr => 2,
        Stream::Exec => 3,
    }
}

fn exit_index(e: ExitReason) -> usize {
    match e {
        ExitReason::Normal => 0,
        ExitReason::Panic => 1,
        ExitReason::Fault => 2,
        ExitReason::Watchdog => 3,
    }
}

fn level_index(l: LogLevel) -> usize {
    match l {
        LogLevel::Error => 0,
        LogLevel::Warn => 1,
        LogLevel::Info => 2,
        LogLevel::Debug => 3,
        LogLevel::Trace => 4,
    }
}

#[test]
fn every_variant_has_a_vector() {
    let mut host = BTreeSet::new();
    let mut rtos = BTreeSet::new();
    let (mut h_credit, mut r_credit, mut out_streams) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let (mut exits, mut levels) = (BTreeSet::new(), BTreeSet::new());
    let (mut pure_ack, mut seq_255) = (false, false);
    for c in cases() {
        seq_255 |= c.seq == Some(255);
        match c.msg {
            None => pure_ack |= c.ack == 255,
            Some(Msg::Host(m)) => {
                host.insert(host_variant(&m));
                if let HostMsg::Credit { stream, .. } = m {
                    h_credit.insert(stream_index(stream));
                }
            }
            Some(Msg::Rtos(m)) => {
                rtos.insert(rtos_variant(&m));
                match m {
                    RtosMsg::Credit { stream, .. } => {
                        r_credit.insert(stream_index(stream));
                    }
                    RtosMsg::ConsoleOut { stream, .. } => {
                        out_streams.insert(stream_index(stream));
                    }
                    RtosMsg::Exited { reason, .. } => {
                        exits.insert(exit_index(reason));
                    }
                    RtosMsg::Log { level, .. } => {
                        levels.insert(level_index(level));
                    }
                    _ => {}
                }
            }
        }
    }
    assert_eq!(host, (0..HOST_VARIANTS).collect(), "HostMsg variants");
    assert_eq!(rtos, (0..RTOS_VARIANTS).collect(), "RtosMsg variants");
    assert_eq!(h_credit, (0..4).collect(), "HostMsg::Credit streams");
    assert_eq!(r_credit, (0..3).collect(), "RtosMsg::Credit streams");
    assert_eq!(out_streams, [1, 2, 3].into(), "ConsoleOut streams");
    assert_eq!(exits, (0..4).collect(), "exit reasons");
    assert_eq!(levels, (0..5).collect(), "log levels");
    assert!(pure_ack && seq_255);
}

// ---- building the bytes ---------------------------------------------------------------

struct Bytes {
    flags: u8,
    payload: Vec<u8>,
    frame: Vec<u8>,
    wire: Vec<u8>,
}

fn build(c: &Case) -> Bytes {
    let mut payload = vec![0u8; MAX_FRAME];
    let n = match c.msg {
        None => 0,
        Some(Msg::Host(m)) => m.encode(&mut payload).expect("encode"),
        Some(Msg::Rtos(m)) => m.encode(&mut payload).expect("encode"),
    };
    payload.truncate(n);

    let (raw, wire) = wire_of(c.seq, c.ack, &payload);
    assert!(
        raw.len() <= MAX_FRAME,
        "{}: frame of {} bytes",
        c.name,
        raw.len()
    );
    Bytes {
        flags: raw[0],
        payload,
        frame: raw,
        wire,
    }
}

fn hex(b: &[u8]) -> String {
    if b.is_empty() {
        return "-".into();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    if s == "-" {
        return vec![];
    }
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

const HEADER: &str = "\
# micrun-proto golden wire vectors. Generated by micrun-proto/tests/vectors.rs
# (MICRUN_BLESS=1 cargo test -p micrun-proto --test vectors -- regenerate);
# checked by the same file. Do not edit by hand.
#
# One vector per line, 8 fields separated by single spaces, at most 4096 bytes per
# line including the newline; a line starting with '#' is a comment.
#   name       unique identifier, [a-z0-9_]+
#   direction  h2r (host -> RTOS: payload is a HostMsg) or r2h (RTOS -> host: RtosMsg)
#   flags      frame byte 0 as two hex digits: 01 = sequenced (FLAG_SEQ), 00 = not
#   seq        frame byte 1, decimal 0..255 (0 when not sequenced)
#   ack        frame byte 2, decimal 0..255
#   payload    postcard message bytes, lowercase hex; '-' when empty (pure ack)
#   frame      flags seq ack payload crc16, lowercase hex; crc16 is CRC-16/CCITT-FALSE
#              (poly 0x1021, init 0xffff, no reflection, no xor-out) of the bytes
#              before it, little-endian
#   wire       COBS(frame) followed by one 00 delimiter, lowercase hex
";

fn render() -> String {
    let mut out = String::from(HEADER);
    for c in cases() {
        let b = build(&c);
        out.push_str(&format!(
            "{} {} {:02x} {} {} {} {} {}\n",
            c.name,
            c.dir.as_str(),
            b.flags,
            c.seq.unwrap_or(0),
            c.ack,
            hex(&b.payload),
            hex(&b.frame),
            hex(&b.wire)
        ));
    }
    out
}

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/messages.txt")
}

/// Rewrites the vectors file from [`cases`], only when `MICRUN_BLESS=1`.
#[test]
fn regenerate() {
    if std::env::var("MICRUN_BLESS").as_deref() != Ok("1") {
        return;
    }
    let path = vectors_path();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("txt.tmp");
    std::fs::write(&tmp, render()).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

// ---- checking -----------------------------------------------------------------------

struct Line {
    dir: String,
    flags: u8,
    seq: u8,
    ack: u8,
    payload: Vec<u8>,
    frame: Vec<u8>,
    wire: Vec<u8>,
}

fn parse(text: &str) -> BTreeMap<String, Line> {
    let mut lines = BTreeMap::new();
    for (i, l) in text.lines().enumerate() {
        assert!(l.len() < 4096, "line {}: longer than 4096 bytes", i + 1);
        if l.starts_with('#') || l.is_empty() {
            continue;
        }
        let f: Vec<&str> = l.split(' ').collect();
        assert_eq!(f.len(), 8, "line {}: expected 8 fields", i + 1);
        assert!(
            !f[0].is_empty()
                && f[0]
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "line {}: bad name",
            i + 1
        );
        let line = Line {
            dir: f[1].to_string(),
            flags: u8::from_str_radix(f[2], 16).expect("flags"),
            seq: f[3].parse().expect("seq"),
            ack: f[4].parse().expect("ack"),
            payload: unhex(f[5]),
            frame: unhex(f[6]),
            wire: unhex(f[7]),
        };
        assert!(
            lines.insert(f[0].to_string(), line).is_none(),
            "line {}: duplicate name {}",
            i + 1,
            f[0]
        );
    }
    lines
}

fn load() -> String {
    let path = vectors_path();
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run MICRUN_BLESS=1 cargo test -p micrun-proto --test vectors -- regenerate",
            path.display()
        )
    })
}

#[test]
fn golden_vectors() {
    let lines = parse(&load());
    let cases = cases();
    let names: BTreeSet<&str> = cases.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), cases.len(), "case names are unique");
    for name in lines.keys() {
        assert!(names.contains(name.as_str()), "{name}: no such case");
    }

    for c in &cases {
        let name = c.name;
        let l = lines
            .get(name)
            .unwrap_or_else(|| panic!("{name}: missing from the vectors file"));
        assert_eq!(l.dir, c.dir.as_str(), "{name}: direction");
        assert_eq!(
            l.flags,
            if c.seq.is_some() { FLAG_SEQ } else { 0 },
            "{name}: flags"
        );
        assert_eq!(l.seq, c.seq.unwrap_or(0), "{name}: seq");
        assert_eq!(l.ack, c.ack, "{name}: ack");

        // (a) + (b): what we encode now is what the file says.
        let b = build(c);
        assert_eq!(hex(&b.payload), hex(&l.payload), "{name}: payload");
        assert_eq!(hex(&b.frame), hex(&l.frame), "{name}: frame");
        assert_eq!(hex(&b.wire), hex(&l.wire), "{name}: wire");

        // The file's fields are consistent with each other.
        assert_eq!(&l.frame[..3], &[l.flags, l.seq, l.ack], "{name}: header");
        assert_eq!(&l.frame[3..l.frame.len() - 2], &l.payload[..], "{name}");
        assert_eq!(*l.wire.last().unwrap(), 0, "{name}: delimiter");
        assert!(!l.wire[..l.wire.len() - 1].contains(&0), "{name}: stuffing");

        // (c) decoding the file's wire bytes gives back the described message.
        let mut d = Deframer::<{ frame::cobs_max_len(MAX_FRAME) }>::new();
        let (used, res) = d.push(&l.wire);
        assert_eq!(used, l.wire.len(), "{name}: whole wire consumed");
        let len = res
            .unwrap_or_else(|| panic!("{name}: no frame"))
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(d.frame(len), &l.frame[..], "{name}: deframed");
        let (header, payload) = frame::open(d.frame(len)).expect("open");
        assert_eq!(
            header,
            Header {
                seq: c.seq,
                ack: c.ack
            },
            "{name}: header"
        );
        assert_eq!(payload, &l.payload[..], "{name}: payload");
        match c.msg {
            None => assert!(payload.is_empty(), "{name}: pure ack"),
            Some(Msg::Host(m)) => {
                assert_eq!(HostMsg::decode(payload), Ok(m), "{name}");
                assert_eq!(payload[0] as usize, host_variant(&m), "{name}: index");
                assert_eq!(m.is_unsequenced(), c.seq.is_none(), "{name}: sequencing");
            }
            Some(Msg::Rtos(m)) => {
                assert_eq!(RtosMsg::decode(payload), Ok(m), "{name}");
                assert_eq!(payload[0] as usize, rtos_variant(&m), "{name}: index");
                assert_eq!(m.is_unsequenced(), c.seq.is_none(), "{name}: sequencing");
            }
        }
    }

    // The special shapes the C tests rely on are really there.
    let big = &lines["console_in_480"];
    assert!(
        big.frame.len() > 254 && big.wire[0] == 0xff,
        "a 0xff COBS block"
    );
    assert_eq!(lines["h_pure_ack_255"].frame.len(), frame::OVERHEAD);
}

#[test]
fn vectors_file_is_what_the_generator_writes() {
    // Catches hand edits, reordering and stale comments, not just wrong bytes.
    assert_eq!(
        load(),
        render(),
        "run MICRUN_BLESS=1 cargo test -p micrun-proto --test vectors -- regenerate"
    );
}

// ---- vectors worked out by hand -------------------------------------------------------

#[test]
fn crc_check_value() {
    assert_eq!(frame::crc16(b"123456789"), 0x29B1);
    assert_eq!(frame::crc16(b""), 0xFFFF);
}

/// Frame and wire bytes for `payload` under the given header, built with the
/// crate's own `write_header` / `seal` / `cobs_encode_in_place`.
fn wire_of(seq: Option<u8>, ack: u8, payload: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut raw = vec![0u8; frame::HEADER_LEN + payload.len() + frame::CRC_LEN];
    frame::write_header(&mut raw, Header { seq, ack });
    raw[frame::HEADER_LEN..frame::HEADER_LEN + payload.len()].copy_from_slice(payload);
    let n = frame::seal(&mut raw, frame::HEADER_LEN + payload.len());
    let off = n / 254 + 1;
    let mut wire = vec![0u8; off + frame::wire_len(n)];
    wire[off..off + n].copy_from_slice(&raw);
    let w = frame::cobs_encode_in_place(&mut wire, off, n);
    wire.truncate(w);
    (raw, wire)
}

/// `Ping { nonce: 1 }`, host -> RTOS, unsequenced, ack 0.
///
/// - payload: variant index 1 (varint `01`), nonce 1 (varint `01`) -> `01 01`
/// - frame: flags `00` (unsequenced), seq `00`, ack `00`, payload, then the CRC of
///   `00 00 00 01 01` = 0x321C (computed with an independent Python
///   implementation of CRC-16/CCITT-FALSE), little-endian `1c 32`
/// - COBS: a zero at 0, 1, 2 -> code bytes `01 01 01`, then `05` for the four-byte
///   run `01 01 1c 32` that ends the frame, then the delimiter `00`.
#[test]
fn hand_vector_ping() {
    let mut p = [0u8; 8];
    let n = HostMsg::Ping { nonce: 1 }.encode(&mut p).unwrap();
    assert_eq!(&p[..n], &[0x01, 0x01]);
    let (frame, wire) = wire_of(None, 0, &p[..n]);
    assert_eq!(frame, [0x00, 0x00, 0x00, 0x01, 0x01, 0x1c, 0x32]);
    assert_eq!(wire, [0x01, 0x01, 0x01, 0x05, 0x01, 0x01, 0x1c, 0x32, 0x00]);
    assert_eq!(
        HostMsg::decode(&[0x01, 0x01]),
        Ok(HostMsg::Ping { nonce: 1 })
    );
}

/// `Exited { code: -1, reason: Panic }`, RTOS -> host, seq 5, ack 3.
///
/// - payload: variant 6 (`06`), code -1 zig-zag encoded = 1 (`01`), reason index 1
///   (`01`) -> `06 01 01`
/// - frame: flags `01` (FLAG_SEQ), seq `05`, ack `03`, payload, CRC 0x628B -> `8b 62`
/// - COBS: no zero in the 8 frame bytes -> code `09`, the 8 bytes, delimiter `00`.
#[test]
fn hand_vector_exited() {
    let mut p = [0u8; 8];
    let n = RtosMsg::Exited {
        code: -1,
        reason: ExitReason::Panic,
    }
    .encode(&mut p)
    .unwrap();
    assert_eq!(&p[..n], &[0x06, 0x01, 0x01]);
    let (frame, wire) = wire_of(Some(5), 3, &p[..n]);
    assert_eq!(frame, [0x01, 0x05, 0x03, 0x06, 0x01, 0x01, 0x8b, 0x62]);
    assert_eq!(
        wire,
        [0x09, 0x01, 0x05, 0x03, 0x06, 0x01, 0x01, 0x8b, 0x62, 0x00]
    );
}
