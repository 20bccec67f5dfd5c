//! Property tests: codecs round-trip, framing resynchronises, and nothing a peer can
//! send makes an endpoint panic or exceed its buffers.
//!
//! Case counts are kept low enough for the whole file to run in a few seconds in a
//! debug build; raise them locally with `PROPTEST_CASES=10000`.

use std::collections::BTreeSet;

use micrun_proto::endpoint::{transmit_buf_len, RtosState};
use micrun_proto::frame::{self, Deframer, FrameError, Header, MAX_FRAME, MIN_FRAME};
use micrun_proto::msg::{CodecError, HelloAck, MAX_ARGV, MAX_LOG, MAX_NAME};
use micrun_proto::{
    ExitReason, Hello, HostConfig, HostEndpoint, HostEvent, HostMsg, LinkKind, LogLevel,
    RtosConfig, RtosEndpoint, RtosEvent, RtosMsg, Stats, Stream, Version,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::Config;

/// Largest console chunk in generated messages: a full frame's worth.
const MAX_DATA: usize = 480;

fn config(cases: u32) -> Config {
    Config {
        cases,
        // Keep the tree clean: a failure prints its minimal input; turn it into a
        // named test instead of a proptest-regressions/ file.
        failure_persistence: None,
        ..Config::default()
    }
}

// ---- owned messages and their strategies --------------------------------------------

/// A `HostMsg` that owns its data, so strategies can produce it.
#[derive(Debug, Clone)]
enum HostOwned {
    Hello(Hello),
    Ping(u32),
    Stop(u32),
    Signal(u8),
    ConsoleIn(Vec<u8>),
    Resize(u16, u16),
    Credit(Stream, u32),
    StatsRequest,
    ExecStart(u32, Vec<u8>),
    ExecSignal(u32, u8),
}

impl HostOwned {
    fn view(&self) -> HostMsg<'_> {
        match self {
            HostOwned::Hello(h) => HostMsg::Hello(*h),
            HostOwned::Ping(nonce) => HostMsg::Ping { nonce: *nonce },
            HostOwned::Stop(grace_ms) => HostMsg::Stop {
                grace_ms: *grace_ms,
            },
            HostOwned::Signal(signo) => HostMsg::Signal { signo: *signo },
            HostOwned::ConsoleIn(data) => HostMsg::ConsoleIn { data },
            HostOwned::Resize(rows, cols) => HostMsg::Resize {
                rows: *rows,
                cols: *cols,
            },
            HostOwned::Credit(stream, bytes) => HostMsg::Credit {
                stream: *stream,
                bytes: *bytes,
            },
            HostOwned::StatsRequest => HostMsg::StatsRequest,
            HostOwned::ExecStart(exec, argv) => HostMsg::ExecStart { exec: *exec, argv },
            HostOwned::ExecSignal(exec, signo) => HostMsg::ExecSignal {
                exec: *exec,
                signo: *signo,
            },
        }
    }
}

/// An `RtosMsg` that owns its data.
#[derive(Debug, Clone)]
enum RtosOwned {
    HelloAck {
        version: Version,
        features: u32,
        max_frame: u16,
        session: u32,
        agent_version: String,
        os: String,
        board: String,
    },
    Ready,
    Pong(u32, u64),
    ConsoleOut(Stream, Vec<u8>),
    Credit(Stream, u32),
    Stats(Stats),
    Exited(i32, ExitReason),
    Log(LogLevel, String),
    ExecExited(u32, i32),
}

impl RtosOwned {
    fn view(&self) -> RtosMsg<'_> {
        match self {
            RtosOwned::HelloAck {
                version,
                features,
                max_frame,
                session,
                agent_version,
                os,
                board,
            } => RtosMsg::HelloAck(HelloAck {
                version: *version,
                features: *features,
                max_frame: *max_frame,
                session: *session,
                agent_version: agent_version.as_bytes(),
                os: os.as_bytes(),
                board: board.as_bytes(),
            }),
            RtosOwned::Ready => RtosMsg::Ready,
            RtosOwned::Pong(nonce, uptime_ms) => RtosMsg::Pong {
                nonce: *nonce,
                uptime_ms: *uptime_ms,
            },
            RtosOwned::ConsoleOut(stream, data) => RtosMsg::ConsoleOut {
                stream: *stream,
                data,
            },
            RtosOwned::Credit(stream, bytes) => RtosMsg::Credit {
                stream: *stream,
                bytes: *bytes,
            },
            RtosOwned::Stats(s) => RtosMsg::Stats(*s),
            RtosOwned::Exited(code, reason) => RtosMsg::Exited {
                code: *code,
                reason: *reason,
            },
            RtosOwned::Log(level, text) => RtosMsg::Log {
                level: *level,
                text: text.as_bytes(),
            },
            RtosOwned::ExecExited(exec, code) => RtosMsg::ExecExited {
                exec: *exec,
                code: *code,
            },
        }
    }
}

fn stream() -> impl Strategy<Value = Stream> {
    prop_oneof![
        Just(Stream::Stdin),
        Just(Stream::Stdout),
        Just(Stream::Stderr),
        Just(Stream::Exec)
    ]
}

/// A valid exec argument vector: up to `MAX_ARGV` bytes of arguments (any
/// bytes but NUL, empty ones included), each followed by a NUL.
fn argv() -> impl Strategy<Value = Vec<u8>> {
    vec(vec(1u8.., 0..12), 0..12).prop_map(|args| {
        let mut out = Vec::new();
        for a in args {
            if out.len() + a.len() + 1 > MAX_ARGV {
                break;
            }
            out.extend_from_slice(&a);
            out.push(0);
        }
        out
    })
}

/// An argument vector the protocol refuses: longer than `MAX_ARGV`, or with a
/// last byte that is not NUL.
fn bad_argv() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), MAX_ARGV + 1..=2 * MAX_ARGV),
        (vec(any::<u8>(), 0..MAX_ARGV), 1u8..).prop_map(|(mut v, last)| {
            v.push(last);
            v
        }),
    ]
}

fn version() -> impl Strategy<Value = Version> {
    (any::<u8>(), any::<u8>()).prop_map(|(major, minor)| Version { major, minor })
}

/// Text of at most `max` bytes (not chars), any Unicode.
fn text(max: usize) -> impl Strategy<Value = String> {
    vec(any::<char>(), 0..=max).prop_map(move |cs| {
        let mut s = String::new();
        for c in cs {
            if s.len() + c.len_utf8() > max {
                break;
            }
            s.push(c);
        }
        s
    })
}

fn hello() -> impl Strategy<Value = Hello> {
    (version(), any::<u32>(), any::<u16>(), any::<u32>()).prop_map(
        |(version, features, max_frame, session)| Hello {
            version,
            features,
            max_frame,
            session,
        },
    )
}

fn host_msg() -> impl Strategy<Value = HostOwned> {
    prop_oneof![
        hello().prop_map(HostOwned::Hello),
        any::<u32>().prop_map(HostOwned::Ping),
        any::<u32>().prop_map(HostOwned::Stop),
        any::<u8>().prop_map(HostOwned::Signal),
        vec(any::<u8>(), 0..=MAX_DATA).prop_map(HostOwned::ConsoleIn),
        (any::<u16>(), any::<u16>()).prop_map(|(r, c)| HostOwned::Resize(r, c)),
        (stream(), any::<u32>()).prop_map(|(s, b)| HostOwned::Credit(s, b)),
        Just(HostOwned::StatsRequest),
        (any::<u32>(), argv()).prop_map(|(e, a)| HostOwned::ExecStart(e, a)),
        (any::<u32>(), any::<u8>()).prop_map(|(e, s)| HostOwned::ExecSignal(e, s)),
    ]
}

fn exit_reason() -> impl Strategy<Value = ExitReason> {
    prop_oneof![
        Just(ExitReason::Normal),
        Just(ExitReason::Panic),
        Just(ExitReason::Fault),
        Just(ExitReason::Watchdog),
    ]
}

fn log_level() -> impl Strategy<Value = LogLevel> {
    prop_oneof![
        Just(LogLevel::Error),
        Just(LogLevel::Warn),
        Just(LogLevel::Info),
        Just(LogLevel::Debug),
        Just(LogLevel::Trace),
    ]
}

fn hello_ack(
    session: BoxedStrategy<u32>,
    version: BoxedStrategy<Version>,
) -> BoxedStrategy<RtosOwned> {
    (
        version,
        any::<u32>(),
        any::<u16>(),
        session,
        text(MAX_NAME),
        text(MAX_NAME),
        text(MAX_NAME),
    )
        .prop_map(
            |(version, features, max_frame, session, agent_version, os, board)| {
                RtosOwned::HelloAck {
                    version,
                    features,
                    max_frame,
                    session,
                    agent_version,
                    os,
                    board,
                }
            },
        )
        .boxed()
}

fn rtos_msg() -> impl Strategy<Value = RtosOwned> {
    prop_oneof![
        hello_ack(any::<u32>().boxed(), version().boxed()),
        Just(RtosOwned::Ready),
        (any::<u32>(), any::<u64>()).prop_map(|(n, u)| RtosOwned::Pong(n, u)),
        (stream(), vec(any::<u8>(), 0..=MAX_DATA)).prop_map(|(s, d)| RtosOwned::ConsoleOut(s, d)),
        (stream(), any::<u32>()).prop_map(|(s, b)| RtosOwned::Credit(s, b)),
        (any::<u64>(), any::<u16>(), any::<u32>(), any::<u32>()).prop_map(|(u, c, m, t)| {
            RtosOwned::Stats(Stats {
                uptime_ms: u,
                cpu_load_permille: c,
                mem_used_kib: m,
                mem_total_kib: t,
            })
        }),
        (any::<i32>(), exit_reason()).prop_map(|(c, r)| RtosOwned::Exited(c, r)),
        (log_level(), text(MAX_LOG)).prop_map(|(l, t)| RtosOwned::Log(l, t)),
        (any::<u32>(), any::<i32>()).prop_map(|(e, c)| RtosOwned::ExecExited(e, c)),
    ]
}

// ---- framing helpers ----------------------------------------------------------------

fn encode_host(m: &HostMsg<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; MAX_FRAME];
    let n = m.encode(&mut buf).expect("encode");
    buf.truncate(n);
    buf
}

fn encode_rtos(m: &RtosMsg<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; MAX_FRAME];
    let n = m.encode(&mut buf).expect("encode");
    buf.truncate(n);
    buf
}

/// header + payload + CRC, with the crate's own helpers.
fn raw_frame(seq: Option<u8>, ack: u8, payload: &[u8]) -> Vec<u8> {
    let mut raw = vec![0u8; frame::OVERHEAD + payload.len()];
    frame::write_header(&mut raw, Header { seq, ack });
    raw[frame::HEADER_LEN..frame::HEADER_LEN + payload.len()].copy_from_slice(payload);
    let n = frame::seal(&mut raw, frame::HEADER_LEN + payload.len());
    assert_eq!(n, raw.len());
    raw
}

/// COBS(raw) + delimiter, encoded in place at the documented offset.
fn cobs(raw: &[u8]) -> Vec<u8> {
    let off = raw.len() / 254 + 1;
    let mut buf = vec![0u8; off + frame::wire_len(raw.len())];
    buf[off..off + raw.len()].copy_from_slice(raw);
    let n = frame::cobs_encode_in_place(&mut buf, off, raw.len());
    buf.truncate(n);
    buf
}

/// The textbook COBS encoder (Cheshire & Baker; a full 254-byte run is followed by
/// a new block even at the end), as an independent reference.
fn cobs_reference(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8];
    let mut code_at = 0;
    let mut code = 1u8;
    for &b in data {
        if b == 0 {
            out[code_at] = code;
            code_at = out.len();
            out.push(0);
            code = 1;
        } else {
            out.push(b);
            code += 1;
            if code == 0xFF {
                out[code_at] = code;
                code_at = out.len();
                out.push(0);
                code = 1;
            }
        }
    }
    out[code_at] = code;
    out.push(0);
    out
}

/// Feeds `bytes` in pieces of the given sizes (cycled), collecting every outcome.
fn deframe_all<const N: usize>(
    d: &mut Deframer<N>,
    bytes: &[u8],
    splits: &[usize],
) -> Vec<Result<Vec<u8>, FrameError>> {
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut k = 0;
    while !rest.is_empty() {
        let take = splits[k % splits.len()].clamp(1, rest.len());
        k += 1;
        let mut piece = &rest[..take];
        rest = &rest[take..];
        while !piece.is_empty() {
            let (used, res) = d.push(piece);
            assert!(used >= 1 && used <= piece.len(), "push consumes input");
            piece = &piece[used..];
            if let Some(r) = res {
                out.push(r.map(|len| d.frame(len).to_vec()));
            }
        }
    }
    out
}

fn splits() -> impl Strategy<Value = Vec<usize>> {
    vec(1usize..700, 1..16)
}

// ---- codec properties ---------------------------------------------------------------

/// Random bytes, and valid payloads with a few bytes changed, inserted or removed
/// (so that decoders get past the variant index and into the fields).
fn payload_like<M: Strategy + 'static>(
    msg: M,
    encode: fn(&M::Value) -> Vec<u8>,
) -> impl Strategy<Value = Vec<u8>> {
    let mutated =
        (msg, vec((any::<usize>(), any::<u8>(), 0u8..3), 0..4)).prop_map(move |(m, edits)| {
            let mut b = encode(&m);
            for (at, byte, kind) in edits {
                let i = if b.is_empty() { 0 } else { at % b.len() };
                match kind {
                    0 if !b.is_empty() => b[i] = byte,
                    1 => b.insert(i, byte),
                    _ if !b.is_empty() => {
                        b.remove(i);
                    }
                    _ => {}
                }
            }
            b
        });
    prop_oneof![vec(any::<u8>(), 0..64), mutated]
}

/// A host endpoint connected (by a hand-made `HelloAck`) to an agent with exec.
fn exec_host() -> HostEndpoint<64, 256> {
    let mut host = HostEndpoint::new(HostConfig::default(), 0);
    let ack = RtosMsg::HelloAck(HelloAck {
        version: micrun_proto::PROTOCOL_VERSION,
        features: micrun_proto::features::ALL,
        max_frame: MAX_FRAME as u16,
        session: 1,
        agent_version: b"",
        os: b"",
        board: b"",
    });
    host.handle_input(
        0,
        &frame_bytes(LinkKind::Stream, None, 0, &encode_rtos(&ack)),
    );
    assert!(host.can_exec());
    host
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn host_decode_never_panics_and_reencodes(
        bytes in payload_like(host_msg(), |m: &HostOwned| encode_host(&m.view()))
    ) {
        if let Ok(m) = HostMsg::decode(&bytes) {
            // The decoder accepts over-long (non-canonical) varints, as postcard
            // does, e.g. `81 00` for 1, so the bytes need not come back identical;
            // the message must, and the canonical form is never longer.
            let again = encode_host(&m);
            prop_assert!(again.len() <= bytes.len());
            prop_assert_eq!(HostMsg::decode(&again), Ok(m));
        }
    }

    #[test]
    fn rtos_decode_never_panics_and_reencodes(
        bytes in payload_like(rtos_msg(), |m: &RtosOwned| encode_rtos(&m.view()))
    ) {
        if let Ok(m) = RtosMsg::decode(&bytes) {
            let again = encode_rtos(&m);
            prop_assert!(again.len() <= bytes.len());
            prop_assert_eq!(RtosMsg::decode(&again), Ok(m));
        }
    }

    #[test]
    fn host_msg_round_trips(m in host_msg()) {
        let bytes = encode_host(&m.view());
        prop_assert_eq!(HostMsg::decode(&bytes), Ok(m.view()));
    }

    #[test]
    fn rtos_msg_round_trips(m in rtos_msg()) {
        let bytes = encode_rtos(&m.view());
        prop_assert_eq!(RtosMsg::decode(&bytes), Ok(m.view()));
    }

    #[test]
    fn exec_start_with_a_bad_argv_is_refused_both_ways(exec in any::<u32>(), argv in bad_argv()) {
        let m = HostMsg::ExecStart { exec, argv: &argv };
        let mut buf = vec![0u8; MAX_FRAME];
        prop_assert_eq!(m.encode(&mut buf), Err(CodecError::Malformed));
        // The same fields written by hand (index 8, varint exec, varint length,
        // bytes) are refused by the decoder.
        let mut raw = vec![8u8];
        for mut v in [exec, argv.len() as u32] {
            while v >= 0x80 {
                raw.push(v as u8 | 0x80);
                v >>= 7;
            }
            raw.push(v as u8);
        }
        raw.extend_from_slice(&argv);
        prop_assert_eq!(HostMsg::decode(&raw), Err(CodecError::Malformed));
        // And a host endpoint that could exec will not queue it.
        let mut host = exec_host();
        prop_assert!(host.send_exec_start(exec, &argv).is_err());
        prop_assert!(host.send_exec_start(exec, b"ok\0").is_ok());
    }

    #[test]
    fn exec_start_argv_round_trips_as_c_strings(exec in any::<u32>(), argv in argv()) {
        let bytes = encode_host(&HostMsg::ExecStart { exec, argv: &argv });
        let Ok(HostMsg::ExecStart { exec: e, argv: got }) = HostMsg::decode(&bytes) else {
            return Err(TestCaseError::fail("not an ExecStart"));
        };
        prop_assert_eq!(e, exec);
        prop_assert_eq!(got, &argv[..]);
        prop_assert!(got.is_empty() || got.last() == Some(&0));
        prop_assert!(got.len() <= MAX_ARGV);
    }

    #[test]
    fn frames_round_trip_through_cobs_and_the_deframer(
        host in host_msg(),
        rtos in rtos_msg(),
        which in any::<bool>(),
        seq in any::<Option<u8>>(),
        ack in any::<u8>(),
        splits in splits(),
    ) {
        let payload = if which { encode_host(&host.view()) } else { encode_rtos(&rtos.view()) };
        let raw = raw_frame(seq, ack, &payload);
        prop_assert!(raw.len() <= MAX_FRAME);
        let wire = cobs(&raw);
        prop_assert!(wire.len() <= frame::wire_len(raw.len()));

        let mut d = Deframer::<{ frame::cobs_max_len(MAX_FRAME) }>::new();
        let got = deframe_all(&mut d, &wire, &splits);
        prop_assert_eq!(got.len(), 1);
        let f = got[0].clone().expect("valid frame");
        prop_assert_eq!(&f, &raw);
        let (h, p) = frame::open(&f).expect("crc");
        prop_assert_eq!(h, Header { seq, ack });
        if which {
            prop_assert_eq!(HostMsg::decode(p), Ok(host.view()));
        } else {
            prop_assert_eq!(RtosMsg::decode(p), Ok(rtos.view()));
        }
    }

    #[test]
    fn cobs_stuffs_and_unstuffs(data in vec(any::<u8>(), 0..1000), sparse in any::<bool>()) {
        // Half the inputs without zeros, to get long 0xff blocks.
        let data: Vec<u8> = if sparse {
            data.into_iter().map(|b| b.max(1)).collect()
        } else {
            data
        };
        let start = data.len() / 254 + 1;
        let mut buf = vec![0xAAu8; start + frame::wire_len(data.len())];
        buf[start..start + data.len()].copy_from_slice(&data);
        let n = frame::cobs_encode_in_place(&mut buf, start, data.len());
        prop_assert!(n <= frame::wire_len(data.len()));
        prop_assert_eq!(buf[n - 1], 0);
        prop_assert!(!buf[..n - 1].contains(&0));
        prop_assert_eq!(&buf[..n], &cobs_reference(&data)[..]);
        let m = frame::cobs_decode_in_place(&mut buf, n - 1).expect("decodes");
        prop_assert_eq!(&buf[..m], &data[..]);
    }

    #[test]
    fn cobs_decode_never_panics(data in vec(1u8.., 0..1000)) {
        let mut buf = data.clone();
        if let Ok(m) = frame::cobs_decode_in_place(&mut buf, data.len()) {
            prop_assert!(m < data.len().max(1));
            // Valid stuffing re-encodes to itself: COBS is canonical.
            prop_assert_eq!(&cobs_reference(&buf[..m])[..data.len()], &data[..]);
        }
    }

    #[test]
    fn deframer_resynchronises_after_garbage(
        items in vec(
            (
                vec(1u8.., 0..700),          // garbage without a zero, then a delimiter
                any::<Option<u8>>(),
                any::<u8>(),
                vec(any::<u8>(), 0..=MAX_FRAME - frame::OVERHEAD),
            ),
            1..6,
        ),
        splits in splits(),
    ) {
        let mut stream = Vec::new();
        let mut expect = Vec::new(); // per item: whether garbage precedes, and the frame
        for (garbage, seq, ack, payload) in &items {
            stream.extend_from_slice(garbage);
            stream.push(frame::DELIMITER);
            let raw = raw_frame(*seq, *ack, payload);
            stream.extend_from_slice(&cobs(&raw));
            expect.push((!garbage.is_empty(), raw));
        }
        let mut d = Deframer::<{ frame::cobs_max_len(MAX_FRAME) }>::new();
        let got = deframe_all(&mut d, &stream, &splits);
        // Exactly one outcome per non-empty delimited chunk: the garbage's (whatever
        // it is) and then the valid frame, intact.
        let mut it = got.into_iter();
        for (i, (garbage, raw)) in expect.into_iter().enumerate() {
            if garbage {
                prop_assert!(it.next().is_some(), "item {}: garbage outcome", i);
            }
            let f = it.next();
            prop_assert_eq!(f, Some(Ok(raw)), "item {}", i);
        }
        prop_assert!(it.next().is_none());
    }
}

/// The non-canonical case the decode properties allow for, pinned down so that a
/// decoder change that starts rejecting it is noticed (then the properties can
/// demand byte-exact re-encoding). Accepting it is harmless: nothing relies on
/// payload bytes being canonical (duplicates are recognised by sequence number,
/// not by content).
#[test]
fn overlong_varints_are_accepted() {
    // Ping with variant index 1 written as `81 00` and nonce 0 as `80 00`.
    assert_eq!(
        HostMsg::decode(&[0x81, 0x00, 0x80, 0x00]),
        Ok(HostMsg::Ping { nonce: 0 })
    );
    assert_eq!(encode_host(&HostMsg::Ping { nonce: 0 }), [0x01, 0x00]);
}

// ---- endpoints under hostile input --------------------------------------------------

/// One step of a hostile or confused peer, or of the local application.
#[derive(Debug, Clone)]
enum Op<M> {
    /// Raw bytes (on a message link: one message).
    Bytes(Vec<u8>),
    /// A well-formed frame carrying `M` (or a pure ack), any header.
    Frame(Option<u8>, u8, Option<M>),
    /// An unsequenced frame opening a session (`Hello` / `HelloAck`); the
    /// peer's sequence numbers restart.
    Connect(M),
    /// A frame in the sequence a well-behaved peer would use next, with this ack.
    InOrder(u8, M),
    /// Time passes.
    Advance(u64),
    /// The local application writes console bytes / reads console bytes.
    Write(usize),
    Read(usize),
    /// The local application queues a control message.
    Control(u8),
}

fn seq_biased() -> impl Strategy<Value = Option<u8>> {
    prop_oneof![
        3 => (0u8..6).prop_map(Some),
        1 => any::<u8>().prop_map(Some),
        1 => Just(None),
    ]
}

fn op<M: Clone + std::fmt::Debug + 'static>(
    msg: BoxedStrategy<M>,
    connect: BoxedStrategy<M>,
) -> impl Strategy<Value = Op<M>> {
    prop_oneof![
        2 => vec(any::<u8>(), 0..600).prop_map(Op::Bytes),
        1 => connect.prop_map(Op::Connect),
        3 => (seq_biased(), 0u8..6, proptest::option::weighted(0.9, msg.clone()))
            .prop_map(|(s, a, m)| Op::Frame(s, a, m)),
        6 => (0u8..6, msg).prop_map(|(a, m)| Op::InOrder(a, m)),
        2 => (0u64..2000).prop_map(Op::Advance),
        1 => (0usize..600).prop_map(Op::Write),
        2 => (0usize..600).prop_map(Op::Read),
        1 => any::<u8>().prop_map(Op::Control),
    ]
}

/// Checks one transmitted frame: well-formed, within its size, and carrying a
/// message of the sender's kind.
fn check_tx(link: LinkKind, out: &[u8], max_frame: usize, host: bool) -> Result<(), TestCaseError> {
    let mut raw = out.to_vec();
    if link == LinkKind::Stream {
        prop_assert_eq!(raw.last(), Some(&0));
        prop_assert!(!raw[..raw.len() - 1].contains(&0), "stuffed");
        let n = frame::cobs_decode_in_place(&mut raw, out.len() - 1).expect("valid COBS");
        raw.truncate(n);
    }
    prop_assert!(
        raw.len() <= max_frame,
        "frame of {} > {}",
        raw.len(),
        max_frame
    );
    let (_, payload) = frame::open(&raw).expect("valid CRC");
    if !payload.is_empty() {
        if host {
            prop_assert!(HostMsg::decode(payload).is_ok(), "{:02x?}", payload);
        } else {
            prop_assert!(RtosMsg::decode(payload).is_ok(), "{:02x?}", payload);
        }
    }
    Ok(())
}

fn frame_bytes(link: LinkKind, seq: Option<u8>, ack: u8, payload: &[u8]) -> Vec<u8> {
    let raw = raw_frame(seq, ack, payload);
    match link {
        LinkKind::Stream => cobs(&raw),
        LinkKind::Message => raw,
    }
}

/// Feeds `input` to the endpoint in the given pieces (stream link) or as one
/// message per piece (message link).
fn pieces<'a>(input: &'a [u8], splits: &'a [usize]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = input;
    let mut k = 0;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let take = splits[k % splits.len()].clamp(1, rest.len());
        k += 1;
        let (a, b) = rest.split_at(take);
        rest = b;
        Some(a)
    })
}

const POLL_LIMIT: usize = 64;

/// The name of an event's variant, for coverage accounting.
fn kind(e: &impl std::fmt::Debug) -> String {
    let s = format!("{e:?}");
    s.split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("")
        .to_string()
}

struct HostRig<const IN: usize, const OUT: usize> {
    ep: HostEndpoint<IN, OUT>,
    link: LinkKind,
    now: u64,
    buf: Vec<u8>,
    /// Kinds of events seen.
    seen: BTreeSet<String>,
    /// Sequence number of the next `Op::InOrder` frame.
    next_seq: u8,
}

impl<const IN: usize, const OUT: usize> HostRig<IN, OUT> {
    fn new(link: LinkKind) -> Self {
        let cfg = HostConfig {
            link,
            handshake_timeout_ms: Some(10_000),
            ..HostConfig::default()
        };
        Self {
            ep: HostEndpoint::new(cfg, 0),
            link,
            now: 0,
            buf: vec![0u8; transmit_buf_len(link, MAX_FRAME)],
            seen: BTreeSet::new(),
            next_seq: 0,
        }
    }

    /// Everything the driver does between inputs, with the invariants.
    fn drive(&mut self) -> Result<(), TestCaseError> {
        let mut n = 0;
        while let Some(e) = self.ep.poll_event() {
            n += 1;
            prop_assert!(n <= POLL_LIMIT, "poll_event never ends");
            if let HostEvent::Log { text, .. } = &e {
                prop_assert!(text.len() <= MAX_LOG);
            }
            self.seen.insert(kind(&e));
        }
        if self.ep.poll_timeout().is_some_and(|t| t <= self.now) {
            self.ep.handle_timeout(self.now);
            // Running the due timers moves them on: a driver that sleeps until
            // `poll_timeout()` must not spin.
            let next = self.ep.poll_timeout();
            prop_assert!(
                next.is_none_or(|t| t > self.now),
                "timer still due after handle_timeout: {:?} <= {}",
                next,
                self.now
            );
        }
        let max_frame = self
            .ep
            .peer()
            .map_or(MAX_FRAME, |p| usize::from(p.max_frame));
        let mut n = 0;
        while let Some(len) = self.ep.poll_transmit(self.now, &mut self.buf) {
            n += 1;
            prop_assert!(n <= POLL_LIMIT, "poll_transmit never ends");
            prop_assert!(len <= self.buf.len());
            check_tx(self.link, &self.buf[..len], max_frame, true)?;
        }
        for s in [Stream::Stdin, Stream::Stdout, Stream::Stderr, Stream::Exec] {
            prop_assert!(
                self.ep.readable(s) <= OUT,
                "{:?}: {}",
                s,
                self.ep.readable(s)
            );
        }
        prop_assert!(self.ep.stdin_free() <= IN);
        Ok(())
    }

    fn run(&mut self, ops: &[Op<RtosOwned>]) -> Result<(), TestCaseError> {
        for op in ops {
            match op {
                Op::Bytes(b) => self.ep.handle_input(self.now, b),
                Op::Frame(seq, ack, m) => {
                    let payload = m.as_ref().map_or(vec![], |m| encode_rtos(&m.view()));
                    let f = frame_bytes(self.link, *seq, *ack, &payload);
                    self.ep.handle_input(self.now, &f);
                }
                Op::Connect(m) => {
                    let f = frame_bytes(self.link, None, 0, &encode_rtos(&m.view()));
                    self.ep.handle_input(self.now, &f);
                    self.next_seq = 0;
                }
                Op::InOrder(ack, m) => {
                    let seq = (!m.view().is_unsequenced()).then_some(self.next_seq);
                    let f = frame_bytes(self.link, seq, *ack, &encode_rtos(&m.view()));
                    self.ep.handle_input(self.now, &f);
                    if seq.is_some() {
                        self.next_seq = self.next_seq.wrapping_add(1);
                    }
                }
                Op::Advance(ms) => self.now += ms,
                Op::Write(n) => {
                    let data: Vec<u8> = (0..*n).map(|i| i as u8).collect();
                    let took = self.ep.write_stdin(&data);
                    prop_assert!(took <= data.len());
                }
                Op::Read(n) => {
                    let mut b = vec![0u8; *n];
                    for s in [Stream::Stdout, Stream::Stderr, Stream::Exec, Stream::Stdin] {
                        let got = self.ep.read_console(s, &mut b);
                        prop_assert!(got <= *n);
                    }
                }
                Op::Control(k) => {
                    let _ = match k % 6 {
                        0 => self.ep.send_stop(u32::from(*k)),
                        1 => self.ep.send_signal(*k),
                        2 => self.ep.send_resize(u16::from(*k), 80),
                        3 => self.ep.send_exec_start(u32::from(*k), b"x\0"),
                        4 => self.ep.send_exec_signal(u32::from(*k), 9),
                        _ => self.ep.request_stats(),
                    };
                }
            }
            self.drive()?;
        }
        // Let every timer run out.
        for _ in 0..8 {
            self.now += 5_000;
            self.ep.handle_timeout(self.now);
            self.drive()?;
        }
        Ok(())
    }
}

type SmallRtos = RtosEndpoint<128, 256, 128>;

struct RtosRig {
    ep: SmallRtos,
    link: LinkKind,
    now: u64,
    buf: Vec<u8>,
    seen: BTreeSet<String>,
    next_seq: u8,
}

impl RtosRig {
    fn new(link: LinkKind) -> Self {
        Self {
            ep: RtosEndpoint::new(RtosConfig {
                link,
                agent_version: b"0.1.0-props",
                os: b"proptest",
                board: b"a-board-name-longer-than-24-bytes",
                ..RtosConfig::default()
            }),
            link,
            now: 0,
            buf: vec![0u8; transmit_buf_len(link, SmallRtos::MAX_FRAME)],
            seen: BTreeSet::new(),
            next_seq: 0,
        }
    }

    fn drive(&mut self) -> Result<(), TestCaseError> {
        let mut n = 0;
        while let Some(e) = self.ep.poll_event() {
            n += 1;
            prop_assert!(n <= POLL_LIMIT, "poll_event never ends");
            if let RtosEvent::Exec { .. } = e {
                // The arguments are there, as the decoder let them through.
                let argv = self.ep.exec_argv();
                prop_assert!(argv.len() <= MAX_ARGV);
                prop_assert!(argv.is_empty() || argv.last() == Some(&0), "{:?}", argv);
            }
            self.seen.insert(kind(&e));
        }
        if self.ep.poll_timeout().is_some_and(|t| t <= self.now) {
            self.ep.handle_timeout(self.now);
            // Running the due timers moves them on: a driver that sleeps until
            // `poll_timeout()` must not spin.
            let next = self.ep.poll_timeout();
            prop_assert!(
                next.is_none_or(|t| t > self.now),
                "timer still due after handle_timeout: {:?} <= {}",
                next,
                self.now
            );
        }
        let mut n = 0;
        while let Some(len) = self.ep.poll_transmit(self.now, &mut self.buf) {
            n += 1;
            prop_assert!(n <= POLL_LIMIT, "poll_transmit never ends");
            prop_assert!(len <= self.buf.len());
            check_tx(self.link, &self.buf[..len], SmallRtos::MAX_FRAME, false)?;
        }
        prop_assert!(
            self.ep.stdin_len() <= 128,
            "stdin_len {}",
            self.ep.stdin_len()
        );
        for s in [Stream::Stdout, Stream::Stderr, Stream::Exec] {
            prop_assert!(self.ep.write_free(s) <= 256);
        }
        prop_assert!(self.ep.exec_argv().len() <= MAX_ARGV);
        Ok(())
    }

    fn run(&mut self, ops: &[Op<HostOwned>]) -> Result<(), TestCaseError> {
        for op in ops {
            match op {
                Op::Bytes(b) => self.ep.handle_input(self.now, b),
                Op::Frame(seq, ack, m) => {
                    let payload = m.as_ref().map_or(vec![], |m| encode_host(&m.view()));
                    let f = frame_bytes(self.link, *seq, *ack, &payload);
                    self.ep.handle_input(self.now, &f);
                }
                Op::Connect(m) => {
                    let f = frame_bytes(self.link, None, 0, &encode_host(&m.view()));
                    self.ep.handle_input(self.now, &f);
                    self.next_seq = 0;
                }
                Op::InOrder(ack, m) => {
                    let seq = (!m.view().is_unsequenced()).then_some(self.next_seq);
                    let f = frame_bytes(self.link, seq, *ack, &encode_host(&m.view()));
                    self.ep.handle_input(self.now, &f);
                    if seq.is_some() {
                        self.next_seq = self.next_seq.wrapping_add(1);
                    }
                }
                Op::Advance(ms) => self.now += ms,
                Op::Write(n) => {
                    let data: Vec<u8> = (0..*n).map(|i| i as u8).collect();
                    let s = [Stream::Stdout, Stream::Stderr, Stream::Exec][n % 3];
                    prop_assert!(self.ep.write(s, &data) <= data.len());
                    prop_assert_eq!(self.ep.write(Stream::Stdin, &data), 0);
                }
                Op::Read(n) => {
                    let mut b = vec![0u8; *n];
                    prop_assert!(self.ep.read_stdin(&mut b) <= *n);
                }
                Op::Control(k) => {
                    let _ = match k % 6 {
                        0 => self.ep.send_ready(),
                        1 => self.ep.send_stats(Stats::default()),
                        2 => self.ep.send_exited(i32::from(*k) - 128, ExitReason::Normal),
                        3 => self
                            .ep
                            .send_log(LogLevel::Info, "é".repeat(usize::from(*k)).as_bytes()),
                        4 => self.ep.send_exec_exited(i32::from(*k)),
                        _ => self.ep.can_send(1),
                    };
                }
            }
            self.drive()?;
        }
        for _ in 0..8 {
            self.now += 5_000;
            self.ep.handle_timeout(self.now);
            self.drive()?;
        }
        Ok(())
    }
}

fn link() -> impl Strategy<Value = LinkKind> {
    prop_oneof![Just(LinkKind::Stream), Just(LinkKind::Message)]
}

/// `HelloAck`s that connect a host with session 1 (and a few that do not).
fn host_connect() -> BoxedStrategy<RtosOwned> {
    let session = prop_oneof![4 => Just(1u32), 1 => any::<u32>()].boxed();
    let version = prop_oneof![
        4 => (0u8..3).prop_map(|minor| Version { major: 1, minor }),
        1 => version(),
    ]
    .boxed();
    hello_ack(session, version)
        .prop_map(|mut m| {
            if let RtosOwned::HelloAck { max_frame, .. } = &mut m {
                // Mostly usable frame sizes, sometimes too small.
                if *max_frame % 8 != 0 {
                    *max_frame = MIN_FRAME as u16 + *max_frame % (MAX_FRAME - MIN_FRAME + 1) as u16;
                }
            }
            m
        })
        .boxed()
}

/// `Hello`s that connect an agent (and a few that do not).
fn rtos_connect() -> BoxedStrategy<HostOwned> {
    (
        prop_oneof![
            4 => (0u8..3).prop_map(|minor| Version { major: 1, minor }),
            1 => version(),
        ],
        any::<u32>(),
        prop_oneof![4 => MIN_FRAME as u16..=MAX_FRAME as u16, 1 => any::<u16>()],
        0u32..3,
    )
        .prop_map(|(version, features, max_frame, session)| {
            HostOwned::Hello(Hello {
                version,
                features,
                max_frame,
                session,
            })
        })
        .boxed()
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn host_survives_any_bytes(
        link in link(),
        input in vec(any::<u8>(), 0..4096),
        splits in splits(),
    ) {
        let mut rig = HostRig::<1024, 8192>::new(link);
        for piece in pieces(&input, &splits) {
            rig.ep.handle_input(rig.now, piece);
            rig.now += 1;
            rig.drive()?;
        }
        rig.run(&[])?;
    }

    #[test]
    fn rtos_survives_any_bytes(
        link in link(),
        input in vec(any::<u8>(), 0..4096),
        splits in splits(),
    ) {
        let mut rig = RtosRig::new(link);
        for piece in pieces(&input, &splits) {
            rig.ep.handle_input(rig.now, piece);
            rig.now += 1;
            rig.drive()?;
        }
        rig.run(&[])?;
    }

    #[test]
    fn host_survives_a_confused_agent(
        link in link(),
        ops in vec(op(rtos_msg().boxed(), host_connect()), 0..48),
    ) {
        HostRig::<64, 256>::new(link).run(&ops)?;
    }

    #[test]
    fn rtos_survives_a_confused_host(
        link in link(),
        ops in vec(op(host_msg().boxed(), rtos_connect()), 0..48),
    ) {
        RtosRig::new(link).run(&ops)?;
    }
}

/// The structured strategies above really reach the connected states and deliver
/// messages (otherwise the properties would only exercise the handshake).
#[test]
fn confused_peers_get_connected_and_deliver() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let (mut host_seen, mut rtos_seen) = (BTreeSet::new(), BTreeSet::new());
    for _ in 0..64 {
        let ops = vec(op(rtos_msg().boxed(), host_connect()), 0..48)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let mut rig = HostRig::<64, 256>::new(LinkKind::Stream);
        rig.run(&ops).unwrap();
        host_seen.extend(rig.seen);

        let ops = vec(op(host_msg().boxed(), rtos_connect()), 0..48)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let mut rig = RtosRig::new(LinkKind::Stream);
        rig.run(&ops).unwrap();
        rtos_seen.extend(rig.seen);
    }
    for k in [
        "Connected",
        "Ready",
        "Readable",
        "Log",
        "Stats",
        "Exited",
        "ExecExited",
        "PeerLost",
        "Error",
    ] {
        assert!(host_seen.contains(k), "host never saw {k}: {host_seen:?}");
    }
    for k in [
        "Connected",
        "Readable",
        "StopRequested",
        "Signal",
        "Resize",
        "StatsRequested",
        "Exec",
        "ExecSignal",
        "Error",
    ] {
        assert!(rtos_seen.contains(k), "agent never saw {k}: {rtos_seen:?}");
    }
}

/// Regression (found by `rtos_survives_a_confused_host`): an agent that is connected
/// and has a sequenced frame in flight, then rejects a `Hello` (incompatible
/// version, or a frame size below `MIN_FRAME`), goes back to `Waiting` but kept its
/// retransmission deadline. `handle_timeout` does nothing while not connected, so
/// `poll_timeout` stayed in the past for good: a firmware loop that sleeps until
/// `poll_timeout()` spun.
#[test]
fn rejected_hello_leaves_no_timer_due() {
    let hello = |version: Version, max_frame: u16, session: u32| {
        frame_bytes(
            LinkKind::Stream,
            None,
            0,
            &encode_host(&HostMsg::Hello(Hello {
                version,
                features: 0,
                max_frame,
                session,
            })),
        )
    };
    let future = Version { major: 2, minor: 0 };
    for bad in [
        hello(future, 496, 2),
        hello(Version { major: 1, minor: 0 }, 8, 2),
    ] {
        let mut ep = SmallRtos::new(RtosConfig::default());
        ep.handle_input(0, &hello(Version { major: 1, minor: 0 }, 496, 1));
        let mut buf = [0u8; 256];
        while ep.poll_transmit(0, &mut buf).is_some() {} // HelloAck, then a stdin Credit
        assert!(ep.poll_timeout().is_some(), "the credit is in flight");
        ep.handle_input(10, &bad);
        assert_eq!(ep.state(), RtosState::Waiting);
        ep.handle_timeout(1_000);
        assert!(
            ep.poll_timeout().is_none_or(|t| t > 1_000),
            "still due: {:?}",
            ep.poll_timeout()
        );
    }
}
