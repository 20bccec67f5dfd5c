//! The RTOS endpoint driven statefully: an `arbitrary` list of operations — bytes
//! and sealed frames from the link, exchanges with a real host over a link that
//! drops frames, time passing, timeouts, and every application call — with the
//! invariants checked after each step:
//! - no panic;
//! - every transmitted frame is well formed (COBS, CRC, a payload the host decodes)
//!   and `poll_transmit` stops after a bounded number of frames;
//! - the rings stay within their sizes; `write` takes at most the free space and
//!   the free space drops by what it took; `read_stdin` gives at most what waits;
//! - a due timer is no longer due after `handle_timeout`;
//! - the event queue is bounded; `exec_argv` is bounded by a frame;
//! - counters only grow.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use micrun_fuzz::{check_tx, seal};
use micrun_proto::endpoint::transmit_buf_len;
use micrun_proto::frame::MAX_FRAME;
use micrun_proto::{
    Counters, ExitReason, HostConfig, HostEndpoint, LinkKind, LogLevel, RtosConfig, RtosEndpoint,
    RtosEvent, Stats, Stream,
};

const OUT: usize = 256;
const IN: usize = 128;
type Rtos = RtosEndpoint<128, OUT, IN>;

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
    /// Agent and host exchange what they transmit; bit i of `drop` loses frame i.
    Exchange {
        drop: u16,
    },
    Advance(u16),
    Timeout,
    Write {
        stream: u8,
        data: Vec<u8>,
    },
    ReadStdin(u8),
    Events,
    Ready,
    Stats(u64, u16, u32, u32),
    Exited(i32, u8),
    Log(u8, Vec<u8>),
    ExecExited(i32),
    /// The host's application sends something.
    HostSend(u8, u32, Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    message_link: bool,
    announce: bool,
    ops: Vec<Op>,
}

fn counters(c: &Counters) -> [u32; 8] {
    [
        c.crc_errors,
        c.malformed_frames,
        c.oversized_frames,
        c.unknown_messages,
        c.duplicates,
        c.retransmits,
        c.credit_violations,
        c.unexpected,
    ]
}

/// Everything the agent transmits now, checked.
fn transmit(rtos: &mut Rtos, link: LinkKind, now: u64) -> Vec<Vec<u8>> {
    let mut buf = [0u8; transmit_buf_len(LinkKind::Stream, Rtos::MAX_FRAME)];
    let mut out = Vec::new();
    while let Some(len) = rtos.poll_transmit(now, &mut buf) {
        assert!(len <= buf.len());
        check_tx(link, &buf[..len], false);
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
    let mut rtos = Rtos::new(RtosConfig {
        link,
        announce_interval_ms: if input.announce { 200 } else { 0 },
        agent_version: b"fuzz",
        ..RtosConfig::default()
    });
    let mut host: HostEndpoint<256, 512> = HostEndpoint::new(
        HostConfig {
            link,
            ..HostConfig::default()
        },
        now,
    );
    let mut seen = counters(&rtos.counters());
    let mut rx = [0u8; 256];
    for op in input.ops {
        match op {
            Op::Raw(bytes) => rtos.handle_input(now, &bytes),
            Op::Frame {
                flags,
                seq,
                ack,
                payload,
            } => {
                let mut body = vec![flags, seq, ack];
                body.extend_from_slice(&payload);
                rtos.handle_input(now, &seal(&body, link));
            }
            Op::Exchange { drop } => {
                for (i, f) in transmit(&mut rtos, link, now).iter().enumerate() {
                    if drop & (1 << (i % 16)) == 0 {
                        host.handle_input(now, f);
                    }
                }
                let mut buf = [0u8; 1024];
                let mut n = 0;
                while let Some(len) = host.poll_transmit(now, &mut buf) {
                    if drop & (1 << (15 - n % 16)) == 0 {
                        rtos.handle_input(now, &buf[..len]);
                    }
                    n += 1;
                    assert!(n < 64, "the host's poll_transmit never ends");
                }
                while host.poll_event().is_some() {}
                for s in [Stream::Stdout, Stream::Stderr, Stream::Exec] {
                    while host.read_console(s, &mut buf) > 0 {}
                }
            }
            Op::Advance(ms) => {
                now += u64::from(ms);
                host.handle_timeout(now);
            }
            Op::Timeout => {
                let due = rtos.poll_timeout().is_some_and(|t| t <= now);
                rtos.handle_timeout(now);
                if due {
                    assert!(
                        rtos.poll_timeout().is_none_or(|t| t > now),
                        "timer stays due"
                    );
                }
            }
            Op::Write { stream, data } => {
                let s = match stream % 3 {
                    0 => Stream::Stdout,
                    1 => Stream::Stderr,
                    _ => Stream::Exec,
                };
                let free = rtos.write_free(s);
                let n = rtos.write(s, &data);
                assert!(n <= data.len() && n <= free, "took {n} of {free} free");
                assert_eq!(rtos.write_free(s), free - n);
            }
            Op::ReadStdin(len) => {
                let waiting = rtos.stdin_len();
                let n = rtos.read_stdin(&mut rx[..usize::from(len)]);
                assert!(n <= usize::from(len) && n <= waiting);
                assert_eq!(rtos.stdin_len(), waiting - n);
            }
            Op::Events => {
                let mut n = 0;
                while let Some(e) = rtos.poll_event() {
                    if let RtosEvent::Exec { .. } = e {
                        assert!(rtos.exec_argv().len() <= MAX_FRAME);
                    }
                    n += 1;
                    assert!(n <= 64, "the event queue is unbounded");
                }
            }
            Op::Ready => {
                let _ = rtos.send_ready();
            }
            Op::Stats(uptime_ms, cpu_load_permille, mem_used_kib, mem_total_kib) => {
                let _ = rtos.send_stats(Stats {
                    uptime_ms,
                    cpu_load_permille,
                    mem_used_kib,
                    mem_total_kib,
                });
            }
            Op::Exited(code, reason) => {
                let reason = match reason % 4 {
                    0 => ExitReason::Normal,
                    1 => ExitReason::Panic,
                    2 => ExitReason::Fault,
                    _ => ExitReason::Watchdog,
                };
                let _ = rtos.send_exited(code, reason);
            }
            Op::Log(level, text) => {
                let level = match level % 5 {
                    0 => LogLevel::Error,
                    1 => LogLevel::Warn,
                    2 => LogLevel::Info,
                    3 => LogLevel::Debug,
                    _ => LogLevel::Trace,
                };
                let _ = rtos.send_log(level, &text);
            }
            Op::ExecExited(code) => {
                let _ = rtos.send_exec_exited(code);
            }
            Op::HostSend(what, n, data) => {
                let _ = match what % 6 {
                    0 => host.write_stdin(&data) > 0,
                    1 => host.send_stop(n).is_ok(),
                    2 => host.send_signal(n as u8).is_ok(),
                    3 => host.send_resize(n as u16, (n >> 16) as u16).is_ok(),
                    4 => host.send_exec_start(n, &data).is_ok(),
                    _ => host.request_stats().is_ok(),
                };
            }
        }
        // The invariants, after every step.
        assert!(rtos.stdin_len() <= IN, "stdin ring over its size");
        for s in [Stream::Stdout, Stream::Stderr, Stream::Exec] {
            assert!(rtos.write_free(s) <= OUT, "{s:?} ring over its size");
        }
        let c = counters(&rtos.counters());
        assert!(
            c.iter().zip(seen).all(|(a, b)| *a >= b),
            "a counter went down: {seen:?} → {c:?}"
        );
        seen = c;
    }
});
