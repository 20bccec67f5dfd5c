//! Feeds arbitrary bytes to everything in micrun-proto that parses peer input: both
//! message decoders, the deframer, and both endpoints on both kinds of link; then
//! drives the endpoints (timers, transmit, events) and checks the invariants a
//! firmware relies on. Any panic, or a failed assertion, is a finding.
//!
//! Input layout: `split step mode data...`
//! - `split`: where the link data is cut in two (as a fraction of its length);
//! - `step`: time between the two pieces, in units of 40 ms;
//! - `mode` bit 0 clear: `data` goes to the link as is (raw mode);
//! - `mode` bit 0 set: `data` is a list of records `len flags seq ack payload...`
//!   (`len` counts the bytes after it) that the target seals with a correct CRC
//!   (and COBS on a stream link) before sending, so that the fuzzer reaches
//!   the message handling instead of stopping at the CRC (sealed mode).
//!
//! See ../README.md to run it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use micrun_fuzz::{check_tx, seal};
use micrun_proto::endpoint::transmit_buf_len;
use micrun_proto::frame::{self, Deframer, MAX_FRAME};
use micrun_proto::{
    HostConfig, HostEndpoint, HostMsg, LinkKind, RtosConfig, RtosEndpoint, RtosMsg, Stream,
};

type Rtos = RtosEndpoint<128, 256, 128>;

fn check_decoders(data: &[u8]) {
    if let Ok(m) = HostMsg::decode(data) {
        let mut buf = vec![0u8; data.len()];
        let n = m.encode(&mut buf).expect("a decoded message re-encodes");
        assert!(n <= data.len(), "canonical form is never longer");
        assert_eq!(HostMsg::decode(&buf[..n]), Ok(m));
    }
    if let Ok(m) = RtosMsg::decode(data) {
        let mut buf = vec![0u8; data.len()];
        let n = m.encode(&mut buf).expect("a decoded message re-encodes");
        assert!(n <= data.len(), "canonical form is never longer");
        assert_eq!(RtosMsg::decode(&buf[..n]), Ok(m));
    }
    // The deframer consumes everything and yields frames within its bound.
    let mut d = Deframer::<{ frame::cobs_max_len(MAX_FRAME) }>::new();
    let mut rest = data;
    while !rest.is_empty() {
        let (used, res) = d.push(rest);
        assert!(used >= 1 && used <= rest.len());
        rest = &rest[used..];
        if let Some(Ok(len)) = res {
            let f = d.frame(len);
            assert!(f.len() >= frame::OVERHEAD && f.len() < frame::cobs_max_len(MAX_FRAME));
            let _ = frame::open(f);
        }
    }
}

fn drive_host(ep: &mut HostEndpoint<64, 256>, link: LinkKind, now: u64) {
    let mut buf = [0u8; transmit_buf_len(LinkKind::Stream, MAX_FRAME)];
    for _ in 0..64 {
        if ep.poll_event().is_none() {
            break;
        }
    }
    if ep.poll_timeout().is_some_and(|t| t <= now) {
        ep.handle_timeout(now);
        assert!(ep.poll_timeout().is_none_or(|t| t > now), "timer stays due");
    }
    let mut n = 0;
    while let Some(len) = ep.poll_transmit(now, &mut buf) {
        check_tx(link, &buf[..len], true);
        n += 1;
        assert!(n < 64, "poll_transmit never ends");
    }
    for s in [Stream::Stdout, Stream::Stderr] {
        assert!(ep.readable(s) <= 256);
    }
    let mut out = [0u8; 100];
    let _ = ep.read_console(Stream::Stdout, &mut out);
}

fn drive_rtos(ep: &mut Rtos, link: LinkKind, now: u64) {
    let mut buf = [0u8; transmit_buf_len(LinkKind::Stream, Rtos::MAX_FRAME)];
    for _ in 0..64 {
        if ep.poll_event().is_none() {
            break;
        }
    }
    if ep.poll_timeout().is_some_and(|t| t <= now) {
        ep.handle_timeout(now);
        assert!(ep.poll_timeout().is_none_or(|t| t > now), "timer stays due");
    }
    let mut n = 0;
    while let Some(len) = ep.poll_transmit(now, &mut buf) {
        check_tx(link, &buf[..len], false);
        n += 1;
        assert!(n < 64, "poll_transmit never ends");
    }
    assert!(ep.stdin_len() <= 128);
    let mut out = [0u8; 50];
    let _ = ep.read_stdin(&mut out);
}

/// Sealed mode: turns records into frames for `link`. On a message link each
/// frame is one piece; on a stream link all frames make one byte stream.
fn seal_records(mut data: &[u8], link: LinkKind) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    while let [len, rest @ ..] = data {
        let n = usize::from(*len).min(rest.len());
        frames.push(seal(&rest[..n], link));
        data = &rest[n..];
    }
    frames
}

fuzz_target!(|input: &[u8]| {
    let (split, step, mode, data) = match input {
        [a, b, c, rest @ ..] => (*a, u64::from(*b), *c, rest),
        _ => return,
    };
    check_decoders(data);

    for link in [LinkKind::Stream, LinkKind::Message] {
        // Raw mode: the data in two pieces (an arbitrary split of a byte stream, or
        // two messages). Sealed mode: the frames, as messages or as a byte stream
        // split in two.
        let pieces: Vec<Vec<u8>> = if mode & 1 == 0 || link == LinkKind::Stream {
            let bytes = if mode & 1 == 0 {
                data.to_vec()
            } else {
                seal_records(data, link).concat()
            };
            let at = bytes.len() * usize::from(split) / 255;
            vec![bytes[..at].to_vec(), bytes[at..].to_vec()]
        } else {
            seal_records(data, link)
        };

        let mut host: HostEndpoint<64, 256> = HostEndpoint::new(
            HostConfig {
                link,
                handshake_timeout_ms: Some(1_000),
                ..HostConfig::default()
            },
            0,
        );
        let mut rtos = Rtos::new(RtosConfig {
            link,
            ..RtosConfig::default()
        });
        let _ = rtos.write(Stream::Stdout, b"output waiting for a host");
        let _ = host.write_stdin(b"input waiting for an agent");
        let mut now = 0;
        for piece in &pieces {
            host.handle_input(now, piece);
            rtos.handle_input(now, piece);
            drive_host(&mut host, link, now);
            drive_rtos(&mut rtos, link, now);
            now += step * 40;
        }
        for _ in 0..4 {
            now += 3_000;
            host.handle_timeout(now);
            rtos.handle_timeout(now);
            drive_host(&mut host, link, now);
            drive_rtos(&mut rtos, link, now);
        }
    }
});
