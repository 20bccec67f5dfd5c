//! The host endpoint driven statefully: an `arbitrary` list of operations — bytes
//! and sealed frames from the link, exchanges with a real agent over a link that
//! drops frames, time passing, timeouts, and every application call — with the
//! invariants checked after each step:
//! - no panic;
//! - every transmitted frame is well formed (COBS, CRC, a payload the agent decodes)
//!   and `poll_transmit` stops after a bounded number of frames;
//! - the console rings stay within their sizes; `write_stdin` takes at most the
//!   free space and the free space drops by what it took; written-but-unacknowledged
//!   input never exceeds the ring (the agent's credit never goes negative);
//! - a due timer is no longer due after `handle_timeout`;
//! - the event queue is bounded; once the session is closed and its events are
//!   read, no further event comes until `reconnect`;
//! - counters only grow.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use micrun_fuzz::{check_tx, seal};
use micrun_proto::endpoint::transmit_buf_len;
use micrun_proto::frame::MAX_FRAME;
use micrun_proto::{
    Counters, ExitReason, HostConfig, HostEndpoint, HostState, LinkKind, LogLevel, RtosConfig,
    RtosEndpoint, Stats, Stream,
};

/// The console input ring (host → agent).
const IN: usize = 64;
/// Each console output ring (agent → host).
const OUT: usize = 256;
type Host = HostEndpoint<IN, OUT>;

#[derive(Arbitrary, Debug)]
enum Op {
    /// Bytes from the link, as they come.
    Raw(Vec<u8>),
    /// A frame with a valid CRC (and COBS on a stream link).
    Frame {
        flags: u8,
        seq: u8,
        ack: u8,
        payload: Vec<u8>,
    },
    /// Host and agent exchange what they transmit; bit i of `drop` loses frame i.
    Exchange {
        drop: u16,
    },
    Advance(u16),
    Timeout,
    WriteStdin(Vec<u8>),
    Read {
        stream: u8,
        len: u8,
    },
    Events,
    Stop(u32),
    Signal(u8),
    Resize(u16, u16),
    RequestStats,
    ExecStart(u32, Vec<u8>),
    ExecSignal(u32, u8),
    Reconnect(u32),
    ResetLiveness,
    /// The agent's application writes console output.
    AgentWrite {
        stream: u8,
        data: Vec<u8>,
    },
    /// The agent's application reports something.
    AgentSend(u8, i32),
}

#[derive(Arbitrary, Debug)]
struct Input {
    message_link: bool,
    listen: bool,
    ops: Vec<Op>,
}

fn stream(n: u8) -> Stream {
    match n % 3 {
        0 => Stream::Stdout,
        1 => Stream::Stderr,
        _ => Stream::Exec,
    }
}

fn counters_grow(before: &Counters, after: &Counters) {
    let b = [
        before.crc_errors,
        before.malformed_frames,
        before.oversized_frames,
        before.unknown_messages,
        before.duplicates,
        before.retransmits,
        before.credit_violations,
        before.unexpected,
    ];
    let a = [
        after.crc_errors,
        after.malformed_frames,
        after.oversized_frames,
        after.unknown_messages,
        after.duplicates,
        after.retransmits,
        after.credit_violations,
        after.unexpected,
    ];
    for (b, a) in b.iter().zip(a) {
        assert!(a >= *b, "a counter went down: {before:?} → {after:?}");
    }
}

/// Everything the host transmits now, checked.
fn transmit(host: &mut Host, link: LinkKind, now: u64) -> Vec<Vec<u8>> {
    let mut buf = [0u8; transmit_buf_len(LinkKind::Stream, MAX_FRAME)];
    let mut out = Vec::new();
    while let Some(len) = host.poll_transmit(now, &mut buf) {
        assert!(len <= buf.len());
        check_tx(link, &buf[..len], true);
        out.push(buf[..len].to_vec());
        assert!(out.len() < 64, "poll_transmit never ends");
    }
    out
}

fuzz_target!(|input: Input| {
    let link = if input.message_link {
        LinkKind::Message
    } else {
        LinkKind::Stream
    };
    let mut now = 0u64;
    let mut host = Host::new(
        HostConfig {
            link,
            listen: input.listen,
            handshake_timeout_ms: Some(2_000),
            ..HostConfig::default()
        },
        now,
    );
    let mut agent = RtosEndpoint::<256, 512, 256>::new(RtosConfig {
        link,
        agent_version: b"fuzz",
        ..RtosConfig::default()
    });
    // Closed, with every event up to the close read.
    let mut drained_closed = false;
    let mut counters = host.counters();
    let mut rx = [0u8; 256];
    for op in input.ops {
        match op {
            Op::Raw(bytes) => host.handle_input(now, &bytes),
            Op::Frame {
                flags,
                seq,
                ack,
                payload,
            } => {
                let mut body = vec![flags, seq, ack];
                body.extend_from_slice(&payload);
                host.handle_input(now, &seal(&body, link));
            }
            Op::Exchange { drop } => {
                for (i, f) in transmit(&mut host, link, now).iter().enumerate() {
                    if drop & (1 << (i % 16)) == 0 {
                        agent.handle_input(now, f);
                    }
                }
                let mut buf = [0u8; 1024];
                let mut n = 0;
                while let Some(len) = agent.poll_transmit(now, &mut buf) {
                    if drop & (1 << (15 - n % 16)) == 0 {
                        host.handle_input(now, &buf[..len]);
                    }
                    n += 1;
                    assert!(n < 64, "the agent's poll_transmit never ends");
                }
                while agent.poll_event().is_some() {}
            }
            Op::Advance(ms) => {
                now += u64::from(ms);
                agent.handle_timeout(now);
            }
            Op::Timeout => {
                let due = host.poll_timeout().is_some_and(|t| t <= now);
                host.handle_timeout(now);
                if due {
                    assert!(
                        host.poll_timeout().is_none_or(|t| t > now),
                        "timer stays due"
                    );
                }
            }
            Op::WriteStdin(data) => {
                let free = host.stdin_free();
                let n = host.write_stdin(&data);
                assert!(n <= data.len() && n <= free, "took {n} of {free} free");
                assert_eq!(host.stdin_free(), free - n);
            }
            Op::Read { stream: s, len } => {
                let s = stream(s);
                let readable = host.readable(s);
                let n = host.read_console(s, &mut rx[..usize::from(len)]);
                assert!(n <= usize::from(len) && n <= readable);
                assert_eq!(host.readable(s), readable - n);
            }
            Op::Events => {
                let mut n = 0;
                while host.poll_event().is_some() {
                    assert!(!drained_closed, "an event after the session closed");
                    n += 1;
                    assert!(n <= 64, "the event queue is unbounded");
                }
                drained_closed = host.state() == HostState::Closed;
            }
            Op::Stop(grace) => {
                let _ = host.send_stop(grace);
            }
            Op::Signal(signo) => {
                let _ = host.send_signal(signo);
            }
            Op::Resize(rows, cols) => {
                let _ = host.send_resize(rows, cols);
            }
            Op::RequestStats => {
                let _ = host.request_stats();
            }
            Op::ExecStart(exec, argv) => {
                let _ = host.send_exec_start(exec, &argv);
            }
            Op::ExecSignal(exec, signo) => {
                let _ = host.send_exec_signal(exec, signo);
            }
            Op::Reconnect(session) => {
                host.reconnect(now, session);
                drained_closed = false;
                counters = host.counters();
            }
            Op::ResetLiveness => host.reset_liveness(now),
            Op::AgentWrite { stream: s, data } => {
                let _ = agent.write(stream(s), &data);
            }
            Op::AgentSend(what, code) => {
                let _ = match what % 5 {
                    0 => agent.send_ready(),
                    1 => agent.send_stats(Stats::default()),
                    2 => agent.send_exited(code, ExitReason::Normal),
                    3 => agent.send_log(LogLevel::Info, b"a log line"),
                    _ => agent.send_exec_exited(code),
                };
            }
        }
        // The invariants, after every step.
        for s in [Stream::Stdout, Stream::Stderr, Stream::Exec] {
            assert!(host.readable(s) <= OUT, "{s:?} ring over its size");
        }
        assert!(host.stdin_free() <= IN);
        assert!(
            host.stdin_free() + host.stdin_unacked() <= IN,
            "free {} + unacked {} over the ring",
            host.stdin_free(),
            host.stdin_unacked()
        );
        let c = host.counters();
        counters_grow(&counters, &c);
        counters = c;
        if drained_closed {
            assert_eq!(host.state(), HostState::Closed);
        }
    }
});
