//! A host and an RTOS endpoint wired together over a simulated link that splits,
//! drops and corrupts bytes, stepped deterministically with a fake clock.

use std::mem::MaybeUninit;

use micrun_proto::endpoint::{transmit_buf_len, HostState, RtosState};
use micrun_proto::frame::{self, MAX_FRAME};
use micrun_proto::msg::{Hello, HelloAck, Version};
use micrun_proto::{
    Counters, ExitReason, HostConfig, HostEndpoint, HostEvent, HostMsg, LinkKind, LogLevel,
    ProtocolError, RtosConfig, RtosEndpoint, RtosEvent, RtosMsg, Stats, Stream,
};

/// xorshift64*: deterministic, seedable, no dependencies.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// Impairments applied to each frame written to the link.
#[derive(Clone, Copy)]
struct Impair {
    drop_frame: u64,
    drop_byte: u64,
    flip_byte: u64,
    garbage: u64,
}

const CLEAN: Impair = Impair {
    drop_frame: 0,
    drop_byte: 0,
    flip_byte: 0,
    garbage: 0,
};
const LOSSY: Impair = Impair {
    drop_frame: 30,
    drop_byte: 30,
    flip_byte: 30,
    garbage: 20,
};

/// One direction of the link: bytes in flight, delivered in random-sized pieces.
struct Pipe {
    bytes: std::collections::VecDeque<u8>,
    impair: Impair,
}

impl Pipe {
    fn send(&mut self, rng: &mut Rng, frame: &[u8]) {
        let im = self.impair;
        if rng.chance(im.drop_frame) {
            return;
        }
        let mut f = frame.to_vec();
        if rng.chance(im.drop_byte) && !f.is_empty() {
            let i = rng.below(f.len() as u64) as usize;
            f.remove(i);
        }
        if rng.chance(im.flip_byte) && !f.is_empty() {
            let i = rng.below(f.len() as u64) as usize;
            f[i] ^= 1 << rng.below(8);
        }
        if rng.chance(im.garbage) {
            for _ in 0..rng.below(40) {
                f.insert(0, rng.next() as u8);
            }
        }
        self.bytes.extend(f);
    }

    fn take(&mut self, rng: &mut Rng) -> Vec<u8> {
        let n = (rng.below(300) as usize).min(self.bytes.len());
        self.bytes.drain(..n).collect()
    }
}

type Rtos = RtosEndpoint<256, 1024, 512>;

/// An RTOS endpoint built by `RtosEndpoint::init` in memory first filled
/// with `garbage`, left where it was built.
#[allow(unsafe_code)]
fn rtos_in_place(cfg: RtosConfig, garbage: u8) -> Box<Rtos> {
    let mut slot = Box::new(MaybeUninit::<Rtos>::uninit());
    // SAFETY: bytes into the slot's own memory.
    unsafe { slot.as_mut_ptr().write_bytes(garbage, 1) };
    RtosEndpoint::init(&mut slot, cfg);
    // SAFETY: `init` initialised the endpoint.
    unsafe { slot.assume_init() }
}

/// The agent's settings in these tests.
fn rtos_config(features: u32) -> RtosConfig {
    RtosConfig {
        agent_version: b"0.1.0",
        os: b"testos",
        board: b"pair",
        features,
        ..RtosConfig::default()
    }
}

struct Pair {
    now: u64,
    rng: Rng,
    host: HostEndpoint<1024, 4096>,
    /// Boxed: where `RtosEndpoint::init` built it, for `rtos_in_place`.
    rtos: Box<Rtos>,
    to_rtos: Pipe,
    to_host: Pipe,
    host_events: Vec<HostEvent>,
    rtos_events: Vec<RtosEvent>,
    /// The RTOS stops servicing the link (a hung partition).
    rtos_hung: bool,
    /// The RTOS sends with `poll_transmit_to` (in pieces, no frame buffer)
    /// instead of `poll_transmit`.
    rtos_pieces: bool,
    /// When the host first wrote to the link, and how many events it had then.
    first_host_tx: Option<(u64, usize)>,
    /// FNV-1a over every byte the RTOS endpoint transmitted.
    rtos_tx_hash: u64,
}

impl Pair {
    fn new(seed: u64, impair: Impair, host_cfg: HostConfig) -> Self {
        Self::with_agent_features(seed, impair, host_cfg, micrun_proto::features::ALL)
    }

    fn with_agent_features(seed: u64, impair: Impair, host_cfg: HostConfig, features: u32) -> Self {
        Pair {
            now: 0,
            rng: Rng(seed | 1),
            host: HostEndpoint::new(host_cfg, 0),
            rtos: Box::new(RtosEndpoint::new(rtos_config(features))),
            to_rtos: Pipe {
                bytes: Default::default(),
                impair,
            },
            to_host: Pipe {
                bytes: Default::default(),
                impair,
            },
            host_events: vec![],
            rtos_events: vec![],
            rtos_hung: false,
            rtos_pieces: false,
            first_host_tx: None,
            rtos_tx_hash: 0xCBF2_9CE4_8422_2325,
        }
    }

    /// Advances the clock by 1 ms and moves everything that is ready.
    fn step(&mut self) {
        self.now += 1;
        let now = self.now;
        let mut buf = [0u8; transmit_buf_len(LinkKind::Stream, MAX_FRAME)];

        if self.host.poll_timeout().is_some_and(|t| t <= now) {
            self.host.handle_timeout(now);
        }
        while let Some(n) = self.host.poll_transmit(now, &mut buf) {
            assert!(n <= buf.len());
            assert_eq!(buf[n - 1], 0, "frames end with the delimiter");
            self.first_host_tx
                .get_or_insert((now, self.host_events.len()));
            self.to_rtos.send(&mut self.rng, &buf[..n]);
        }
        let bytes = self.to_host.take(&mut self.rng);
        self.host.handle_input(now, &bytes);
        while let Some(e) = self.host.poll_event() {
            self.host_events.push(e);
        }

        if !self.rtos_hung {
            let bytes = self.to_rtos.take(&mut self.rng);
            self.rtos.handle_input(now, &bytes);
            if self.rtos.poll_timeout().is_some_and(|t| t <= now) {
                self.rtos.handle_timeout(now);
            }
            let mut rbuf = [0u8; 260];
            if self.rtos_pieces {
                let mut frame = Vec::new();
                while self
                    .rtos
                    .poll_transmit_to(now, &mut |p| frame.extend_from_slice(p))
                {
                    assert_eq!(frame.last(), Some(&0), "frames end with the delimiter");
                    self.rtos_tx_hash = fnv(self.rtos_tx_hash, &frame);
                    self.to_host.send(&mut self.rng, &frame);
                    frame.clear();
                }
            } else {
                while let Some(n) = self.rtos.poll_transmit(now, &mut rbuf) {
                    self.rtos_tx_hash = fnv(self.rtos_tx_hash, &rbuf[..n]);
                    self.to_host.send(&mut self.rng, &rbuf[..n]);
                }
            }
            while let Some(e) = self.rtos.poll_event() {
                self.rtos_events.push(e);
            }
        }
    }

    fn run_until(&mut self, limit_ms: u64, mut done: impl FnMut(&mut Self) -> bool) {
        let end = self.now + limit_ms;
        while !done(self) {
            assert!(
                self.now < end,
                "not done within {limit_ms} ms of simulated time"
            );
            self.step();
        }
    }

    fn connect(&mut self) {
        self.run_until(5_000, |p| p.host.is_connected() && p.rtos.is_connected());
    }
}

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
    }
    h
}

fn flood_byte(i: usize) -> u8 {
    (i * 7 + i / 251) as u8
}

/// Everything a user relies on, over a link with the given impairments.
fn full_session(seed: u64, impair: Impair) {
    full_session_with(seed, impair, HostConfig::default());
}

fn full_session_with(seed: u64, impair: Impair, host_cfg: HostConfig) {
    full_session_opts(seed, impair, host_cfg, false);
}

fn full_session_opts(seed: u64, impair: Impair, host_cfg: HostConfig, rtos_pieces: bool) {
    full_session_from(seed, impair, host_cfg, rtos_pieces, 0);
}

/// A full session whose clock starts at `start` ms on both sides.
fn full_session_from(
    seed: u64,
    impair: Impair,
    host_cfg: HostConfig,
    rtos_pieces: bool,
    start: u64,
) {
    full_session_run(seed, impair, host_cfg, rtos_pieces, start, None);
}

/// What a session did: both sides' events and counters, and the RTOS
/// side's transmitted bytes (hashed).
type Trace = (Vec<HostEvent>, Vec<RtosEvent>, Counters, Counters, u64, u64);

/// [`full_session_from`], with the RTOS endpoint built in place over this
/// garbage if given.
fn full_session_run(
    seed: u64,
    impair: Impair,
    host_cfg: HostConfig,
    rtos_pieces: bool,
    start: u64,
    in_place_over: Option<u8>,
) -> Trace {
    let mut p = Pair::new(seed, impair, host_cfg);
    if let Some(garbage) = in_place_over {
        p.rtos = rtos_in_place(rtos_config(micrun_proto::features::ALL), garbage);
    }
    p.now = start;
    p.host = HostEndpoint::new(host_cfg, start);
    p.rtos_pieces = rtos_pieces;
    p.connect();
    let first = p
        .host_events
        .iter()
        .find(|e| !matches!(e, HostEvent::Announced { .. }));
    match first.unwrap() {
        HostEvent::Connected(info) => {
            assert_eq!(info.os, "testos");
            assert_eq!(info.board, "pair");
            assert_eq!(info.agent_version, "0.1.0");
            assert_eq!(
                usize::from(info.max_frame),
                RtosEndpoint::<256, 1024, 512>::MAX_FRAME
            );
        }
        e => panic!("first host event should be Connected, got {e:?}"),
    }
    assert!(matches!(p.rtos_events[0], RtosEvent::Connected { .. }));

    // Control messages both ways.
    assert!(p.rtos.send_ready());
    assert!(p.rtos.send_log(LogLevel::Info, b"booted"));
    p.host.send_resize(24, 80).unwrap();
    p.host.send_signal(10).unwrap();
    p.host.request_stats().unwrap();
    p.run_until(20_000, |p| {
        p.rtos_events.contains(&RtosEvent::StatsRequested)
    });
    assert!(p.rtos.send_stats(Stats {
        uptime_ms: 42,
        cpu_load_permille: 7,
        mem_used_kib: 100,
        mem_total_kib: 200
    }));

    // Console: 64 KiB out of the RTOS (through a 1 KiB ring, 4 KiB host rings, and
    // a host reader that takes at most 100 bytes per ms), 8 KiB into it (through a
    // 512-byte ring and an RTOS reader that takes at most 50 bytes per ms).
    const OUT: usize = 64 * 1024;
    const IN: usize = 8 * 1024;
    let (mut written, mut got_out, mut typed, mut got_in) =
        (0usize, Vec::new(), 0usize, Vec::new());
    let mut stderr_seen = Vec::new();
    let end = p.now + 120_000;
    while got_out.len() < OUT || got_in.len() < IN {
        assert!(
            p.now < end,
            "console transfer stalled: out {} in {}",
            got_out.len(),
            got_in.len()
        );
        while written < OUT {
            let chunk: Vec<u8> = (written..OUT.min(written + 300)).map(flood_byte).collect();
            let n = p.rtos.write(Stream::Stdout, &chunk);
            if n == 0 {
                break;
            }
            written += n;
        }
        if typed < IN {
            let chunk: Vec<u8> = (typed..IN.min(typed + 200))
                .map(|i| flood_byte(i + 3))
                .collect();
            typed += p.host.write_stdin(&chunk);
        }
        p.step();
        let mut b = [0u8; 100];
        let n = p.host.read_console(Stream::Stdout, &mut b);
        got_out.extend_from_slice(&b[..n]);
        let n = p.host.read_console(Stream::Stderr, &mut b);
        stderr_seen.extend_from_slice(&b[..n]);
        let mut b = [0u8; 50];
        let n = p.rtos.read_stdin(&mut b);
        got_in.extend_from_slice(&b[..n]);
        assert!(p.rtos.stdin_len() <= 512);
    }
    assert!(
        got_out.iter().enumerate().all(|(i, &b)| b == flood_byte(i)),
        "stdout corrupted"
    );
    assert!(
        got_in
            .iter()
            .enumerate()
            .all(|(i, &b)| b == flood_byte(i + 3)),
        "stdin corrupted"
    );
    assert!(stderr_seen.is_empty());
    assert_eq!(p.host.counters().credit_violations, 0);
    assert_eq!(p.rtos.counters().credit_violations, 0);

    // Output then exit: the exit report arrives after the last byte.
    assert_eq!(p.rtos.write(Stream::Stderr, b"bye\n"), 4);
    assert!(p.rtos.send_exited(3, ExitReason::Normal));
    p.host.send_stop(1000).unwrap();
    p.run_until(20_000, |p| {
        p.rtos.is_flushed()
            && p.host.stdin_unacked() == 0
            && p.rtos_events
                .iter()
                .any(|e| matches!(e, RtosEvent::StopRequested { .. }))
    });
    let mut b = [0u8; 16];
    assert_eq!(p.host.read_console(Stream::Stderr, &mut b), 4);
    assert_eq!(&b[..4], b"bye\n");

    // Every control message exactly once, in order.
    let host_ctrl: Vec<_> = p
        .host_events
        .iter()
        .filter(|e| {
            !matches!(
                e,
                HostEvent::Pong { .. } | HostEvent::Readable(_) | HostEvent::Announced { .. }
            )
        })
        .cloned()
        .collect();
    assert_eq!(host_ctrl.len(), 5, "{host_ctrl:?}");
    assert!(matches!(host_ctrl[0], HostEvent::Connected(_)));
    assert_eq!(host_ctrl[1], HostEvent::Ready);
    assert!(
        matches!(&host_ctrl[2], HostEvent::Log { level: LogLevel::Info, text } if text == "booted")
    );
    assert!(matches!(
        host_ctrl[3],
        HostEvent::Stats(Stats { uptime_ms: 42, .. })
    ));
    assert_eq!(
        host_ctrl[4],
        HostEvent::Exited {
            code: 3,
            reason: ExitReason::Normal
        }
    );
    let rtos_ctrl: Vec<_> = p
        .rtos_events
        .iter()
        .filter(|e| !matches!(e, RtosEvent::Readable))
        .cloned()
        .collect();
    assert_eq!(rtos_ctrl.len(), 5, "{rtos_ctrl:?}");
    assert_eq!(rtos_ctrl[1], RtosEvent::Resize { rows: 24, cols: 80 });
    assert_eq!(rtos_ctrl[2], RtosEvent::Signal { signo: 10 });
    assert_eq!(rtos_ctrl[3], RtosEvent::StatsRequested);
    assert_eq!(rtos_ctrl[4], RtosEvent::StopRequested { grace_ms: 1000 });
    p.run_until(3000, |p| {
        p.host_events
            .iter()
            .any(|e| matches!(e, HostEvent::Pong { .. }))
    });
    assert!(p.host.is_connected(), "no false peer loss");

    if impair.drop_frame > 0 {
        let c = p.host.counters();
        let r = p.rtos.counters();
        assert!(
            c.retransmits + r.retransmits > 0,
            "the lossy link exercised retransmission"
        );
        assert!(
            c.crc_errors + r.crc_errors > 0,
            "the lossy link exercised the CRC"
        );
    }
    (
        p.host_events,
        p.rtos_events,
        p.host.counters(),
        p.rtos.counters(),
        p.rtos_tx_hash,
        p.now,
    )
}

/// An endpoint `RtosEndpoint::init` builds in memory full of garbage behaves
/// exactly as one `RtosEndpoint::new` makes: over a clean and lossy links,
/// the same events on both sides, the same counters and the same bytes sent,
/// step by step (a field `init` left unwritten would hold the garbage).
#[test]
fn endpoint_built_in_place_behaves_like_new() {
    for (seed, impair, pieces) in [(1, CLEAN, false), (7919, LOSSY, false), (31, LOSSY, true)] {
        let by_value = full_session_run(seed, impair, HostConfig::default(), pieces, 0, None);
        for garbage in [0xA5, 0xFF, 0x00] {
            let in_place = full_session_run(
                seed,
                impair,
                HostConfig::default(),
                pieces,
                0,
                Some(garbage),
            );
            assert!(by_value == in_place, "seed {seed}, garbage {garbage:#x}");
        }
    }
}

#[test]
fn clean_link_session() {
    full_session(1, CLEAN);
}

#[test]
fn lossy_link_sessions() {
    for seed in 1..=12 {
        full_session(seed * 7919, LOSSY);
    }
}

/// The RTOS endpoint keeps its deadlines (retransmission, announcements, host
/// silence) as wrapping 32-bit milliseconds: sessions over a lossy link whose
/// clock crosses a multiple of 2³² ms (≈ 49.7 days of uptime) retransmit,
/// announce and report their deadlines (`poll_timeout`, which `step` obeys)
/// as before.
#[test]
fn sessions_across_the_32_bit_clock_wrap() {
    let wrap = 1u64 << 32;
    for (seed, start) in [(3, wrap - 40), (5, wrap - 2_500), (11, 7 * wrap - 9_000)] {
        full_session_from(seed * 4001, LOSSY, HostConfig::default(), seed == 5, start);
    }
    // The host goes silent just before the wrap; the agent announces again
    // after `host_silence_ms`, past it.
    let mut p = Pair::new(19, CLEAN, HostConfig::default());
    p.now = wrap - 3_000;
    p.host = HostEndpoint::new(HostConfig::default(), p.now);
    p.connect();
    let gone = p.now;
    let silence = u64::from(RtosConfig::default().host_silence_ms);
    assert!(gone + silence > wrap, "the silence ends after the wrap");
    p.host = HostEndpoint::new(
        HostConfig {
            session: 99,
            ..LISTEN
        },
        gone,
    );
    p.to_host.bytes.clear();
    p.run_until(8_000, |p| p.host.is_connected());
    assert!(p.now - gone >= silence && p.now - gone <= silence + 1_500);
    let t = p.rtos.poll_timeout().unwrap();
    assert!(
        t > p.now && t <= p.now + silence,
        "deadline {t} at {}",
        p.now
    );
}

/// Intervals beyond 2³¹ − 1 ms are clamped to it (the longest wait a wrapping
/// 32-bit deadline expresses), not read as already past.
#[test]
fn very_long_intervals_are_clamped_not_wrapped() {
    let mut p = Pair::new(29, CLEAN, HostConfig::default());
    *p.rtos = RtosEndpoint::new(RtosConfig {
        host_silence_ms: u32::MAX,
        ..RtosConfig::default()
    });
    p.connect();
    // Once everything is acknowledged, the silence timer is the only one.
    let heard = p.now;
    p.run_until(1_000, |p| p.now >= heard + 500);
    let t = p.rtos.poll_timeout().unwrap();
    assert!(t >= heard + u64::from(i32::MAX as u32), "deadline {t}");
    // A host that stops talking is not taken for silent (no `Announce`).
    p.rtos_events.clear();
    p.rtos.handle_timeout(p.now + 10_000);
    let mut buf = [0u8; 260];
    assert_eq!(p.rtos.poll_transmit(p.now + 10_000, &mut buf), None);
}

/// The same sessions with the RTOS side sending through `poll_transmit_to`
/// (console data COBS-encoded straight from its ring, as the agent does).
#[test]
fn sessions_sent_in_pieces() {
    full_session_opts(1, CLEAN, HostConfig::default(), true);
    for seed in 1..=12 {
        full_session_opts(seed * 6007, LOSSY, HostConfig::default(), true);
    }
}

const LISTEN: HostConfig = HostConfig {
    session: 77,
    link: LinkKind::Stream,
    max_frame: MAX_FRAME as u16,
    features: micrun_proto::features::ALL,
    hello_interval_ms: 100,
    handshake_timeout_ms: None,
    ping_interval_ms: 1000,
    peer_timeout_ms: 5000,
    rto_initial_ms: 100,
    rto_max_ms: 2000,
    listen: true,
};

#[test]
fn listening_host_sessions() {
    full_session_with(3, CLEAN, LISTEN);
    for seed in 1..=6 {
        full_session_with(seed * 104_729, LOSSY, LISTEN);
    }
}

/// A listening host never writes to a console where no agent announced itself
/// (a plain shell or boot loader would take any byte as typed input).
#[test]
fn listening_host_is_silent_without_an_agent() {
    let mut p = Pair::new(11, CLEAN, LISTEN);
    p.rtos_hung = true; // no agent ever speaks
    let mut garbage = Rng(5);
    for _ in 0..10_000 {
        // Console text, and bytes that look like the start of a frame.
        let line: Vec<u8> = (0..8).map(|_| garbage.next() as u8 | 1).collect();
        p.to_host.bytes.extend(line);
        p.to_host.bytes.extend([1u8, 1, 0]);
        p.step();
        assert!(p.to_rtos.bytes.is_empty(), "the host wrote at {} ms", p.now);
    }
    assert_eq!(p.host.state(), HostState::Listening);
    assert!(p.host_events.is_empty());
}

/// A listening host says its first byte only after the agent's announcement.
#[test]
fn listening_host_speaks_after_the_announcement() {
    let mut p = Pair::new(13, CLEAN, LISTEN);
    p.connect();
    let (at, events) = p.first_host_tx.unwrap();
    assert!(
        matches!(p.host_events[..events], [HostEvent::Announced { .. }]),
        "the host wrote at {at} ms after events {:?}",
        &p.host_events[..events]
    );
}

/// An agent that booted long before the host attached (a console that appears
/// late) is still found, within the longest announce interval.
#[test]
fn late_host_finds_an_agent_that_booted_first() {
    let mut p = Pair::new(17, CLEAN, LISTEN);
    // The agent runs alone for 10 s; what it sent before the host attached is lost.
    let mut buf = [0u8; 260];
    for now in 1..=10_000 {
        if p.rtos.poll_timeout().is_some_and(|t| t <= now) {
            p.rtos.handle_timeout(now);
        }
        while p.rtos.poll_transmit(now, &mut buf).is_some() {}
    }
    assert_eq!(p.rtos.write(Stream::Stdout, b"booted"), 6);
    p.now = 10_000;
    let attached = p.now;
    p.host = HostEndpoint::new(LISTEN, attached);
    p.connect();
    // Unanswered announcements back off to one a second.
    let bound = u64::from(micrun_proto::endpoint::ANNOUNCE_MAX_MS) + 50;
    assert!(
        p.now - attached <= bound,
        "found after {} ms",
        p.now - attached
    );
    p.run_until(1000, |p| p.host.readable(Stream::Stdout) == 6);
}

/// A host that went away without a word (a shim killed) is replaced by a new,
/// listening one: the agent announces again once the old host has been silent.
#[test]
fn agent_announces_again_after_its_host_went_silent() {
    let mut p = Pair::new(19, CLEAN, HostConfig::default());
    p.connect();
    p.run_until(2_000, |p| p.now >= 1_000);
    let gone = p.now;
    p.host = HostEndpoint::new(
        HostConfig {
            session: 99,
            ..LISTEN
        },
        gone,
    );
    p.to_host.bytes.clear();
    p.host_events.clear();
    p.run_until(8_000, |p| p.host.is_connected());
    let silence = RtosConfig::default().host_silence_ms as u64;
    assert!(
        p.now - gone <= silence + 1_500,
        "reconnected after {} ms",
        p.now - gone
    );
    assert_eq!(p.rtos.write(Stream::Stdout, b"still here"), 10);
    p.run_until(1000, |p| p.host.readable(Stream::Stdout) == 10);
}

#[test]
fn hung_peer_is_lost_within_the_window() {
    let cfg = HostConfig {
        ping_interval_ms: 200,
        peer_timeout_ms: 1000,
        ..HostConfig::default()
    };
    let mut p = Pair::new(5, CLEAN, cfg);
    p.connect();
    p.run_until(3000, |p| p.now > 2500);
    assert!(p.host.is_connected(), "a live peer is not declared lost");
    p.rtos_hung = true;
    let hung_at = p.now;
    p.run_until(5_000, |p| p.host.state() == HostState::Closed);
    let lost_after = p.now - hung_at;
    assert!(lost_after <= 1000 + 1, "lost after {lost_after} ms");
    assert!(lost_after >= 1000 - 200, "lost too early: {lost_after} ms");
    assert!(
        matches!(p.host_events.last(), Some(HostEvent::PeerLost { silent_ms }) if *silent_ms >= 1000)
    );
}

#[test]
fn agent_reboot_is_a_new_session() {
    let mut p = Pair::new(9, CLEAN, HostConfig::default());
    p.connect();
    // The partition reboots: a fresh agent on the same link. The host notices the
    // silence... or, here, opens a new session explicitly.
    *p.rtos = RtosEndpoint::new(RtosConfig::default());
    p.host.reconnect(p.now, 2);
    p.connect();
    assert_eq!(p.rtos.write(Stream::Stdout, b"again"), 5);
    p.run_until(1000, |p| p.host.readable(Stream::Stdout) == 5);
}

fn seal(seq: Option<u8>, payload: &[u8]) -> Vec<u8> {
    let mut raw = vec![0u8; 3 + payload.len() + 2];
    frame::write_header(&mut raw, frame::Header { seq, ack: 0 });
    raw[3..3 + payload.len()].copy_from_slice(payload);
    let n = frame::seal(&mut raw, 3 + payload.len());
    let mut wire = vec![0u8; frame::wire_len(n) + 8];
    let off = n / 254 + 1;
    wire[off..off + n].copy_from_slice(&raw[..n]);
    let len = frame::cobs_encode_in_place(&mut wire, off, n);
    wire.truncate(len);
    wire
}

#[test]
fn future_major_version_is_an_error_on_both_sides() {
    let future = Version { major: 2, minor: 0 };
    // RTOS side: a Hello from a future host.
    let mut rtos: RtosEndpoint = RtosEndpoint::new(RtosConfig::default());
    let mut payload = [0u8; 64];
    let n = HostMsg::Hello(Hello {
        version: future,
        features: 0,
        max_frame: 496,
        session: 7,
    })
    .encode(&mut payload)
    .unwrap();
    rtos.handle_input(0, &seal(None, &payload[..n]));
    assert_eq!(
        rtos.poll_event(),
        Some(RtosEvent::Error(ProtocolError::IncompatibleVersion {
            ours: micrun_proto::PROTOCOL_VERSION,
            peer: future
        }))
    );
    assert_eq!(rtos.state(), RtosState::Waiting);
    // It still answers, so the host can tell the user what it runs.
    let mut out = [0u8; 300];
    assert!(rtos.poll_transmit(1, &mut out).is_some());

    // Host side: a HelloAck from a future agent.
    let mut host: HostEndpoint = HostEndpoint::new(
        HostConfig {
            session: 7,
            ..HostConfig::default()
        },
        0,
    );
    let n = RtosMsg::HelloAck(HelloAck {
        version: future,
        features: 0,
        max_frame: 496,
        session: 7,
        agent_version: b"9",
        os: b"x",
        board: b"y",
    })
    .encode(&mut payload)
    .unwrap();
    host.handle_input(1, &seal(None, &payload[..n]));
    assert!(matches!(
        host.poll_event(),
        Some(HostEvent::Error(ProtocolError::IncompatibleVersion { peer, .. })) if peer == future
    ));
    assert_eq!(host.state(), HostState::Closed);
}

#[test]
fn handshake_timeout_reports_once() {
    let mut host: HostEndpoint = HostEndpoint::new(
        HostConfig {
            handshake_timeout_ms: Some(300),
            ..HostConfig::default()
        },
        0,
    );
    let mut buf = [0u8; 600];
    let mut hellos = 0;
    for now in 0..1000 {
        if host.poll_timeout().is_some_and(|t| t <= now) {
            host.handle_timeout(now);
        }
        while host.poll_transmit(now, &mut buf).is_some() {
            hellos += 1;
        }
    }
    assert_eq!(hellos, 3, "Hello at 0, 100, 200 ms");
    assert_eq!(
        host.poll_event(),
        Some(HostEvent::Error(ProtocolError::HandshakeTimeout))
    );
    assert_eq!(host.poll_event(), None);
}

#[test]
fn unknown_sequenced_message_is_acked_and_counted() {
    let mut p = Pair::new(3, CLEAN, HostConfig::default());
    p.connect();
    // A message index from the future (0x7f), in sequence number 0 from the agent.
    let frame = seal(Some(0), &[0x7f, 1, 2, 3]);
    p.host.handle_input(p.now, &frame);
    assert_eq!(p.host.counters().unknown_messages, 1);
    // The next real message (seq 1) is still delivered.
    let mut payload = [0u8; 8];
    let n = RtosMsg::Ready.encode(&mut payload).unwrap();
    let mut f = seal(Some(1), &payload[..n]);
    // ack field 0: nothing of ours acknowledged.
    p.host.handle_input(p.now, &f);
    assert!(std::iter::from_fn(|| p.host.poll_event()).any(|e| e == HostEvent::Ready));
    // And a replay of it is suppressed.
    p.host.handle_input(p.now, &f);
    f.clear();
    assert!(std::iter::from_fn(|| p.host.poll_event()).all(|e| e != HostEvent::Ready));
    assert!(p.host.counters().duplicates >= 1);
}

/// A host endpoint that has completed a handshake with a hand-made `HelloAck`.
fn connected_host(session: u32) -> HostEndpoint<1024, 4096> {
    let mut host = HostEndpoint::new(
        HostConfig {
            session,
            ..HostConfig::default()
        },
        0,
    );
    let mut payload = [0u8; 128];
    let n = RtosMsg::HelloAck(HelloAck {
        version: micrun_proto::PROTOCOL_VERSION,
        features: 0,
        max_frame: 496,
        session,
        agent_version: b"x",
        os: b"x",
        board: b"x",
    })
    .encode(&mut payload)
    .unwrap();
    host.handle_input(0, &seal(None, &payload[..n]));
    assert!(host.is_connected());
    host
}

fn cobs(raw: &[u8]) -> Vec<u8> {
    let mut wire = vec![0u8; frame::wire_len(raw.len()) + 8];
    let off = raw.len() / 254 + 1;
    wire[off..off + raw.len()].copy_from_slice(raw);
    let len = frame::cobs_encode_in_place(&mut wire, off, raw.len());
    wire.truncate(len);
    wire
}

#[test]
fn bad_frames_are_counted_and_the_stream_resynchronises() {
    let mut host = connected_host(11);
    let mut payload = [0u8; 16];
    let n = RtosMsg::Ready.encode(&mut payload).unwrap();
    let good = seal(Some(0), &payload[..n]);

    // Oversized: 2000 non-zero bytes before a delimiter.
    let mut junk = vec![0x55u8; 2000];
    junk.push(0);
    host.handle_input(1, &junk);
    // Wrong CRC: a payload bit flipped before stuffing.
    let mut raw = vec![frame::FLAG_SEQ, 0, 0];
    raw.extend_from_slice(&payload[..n]);
    raw.extend_from_slice(&frame::crc16(&raw).wrapping_add(1).to_le_bytes());
    host.handle_input(1, &cobs(&raw));
    // Invalid COBS (a code byte pointing past the delimiter) and a too-short frame.
    host.handle_input(1, &[0x09, 1, 2, 0]);
    host.handle_input(1, &[0x02, 7, 0]);
    // Garbage without a delimiter spoils only the frame it precedes; a lone
    // delimiter resynchronises.
    host.handle_input(1, &[1, 2, 3, 4, 5, 0]);
    host.handle_input(1, &good);

    let c = host.counters();
    assert_eq!(c.oversized_frames, 1, "{c:?}");
    assert_eq!(c.crc_errors, 1, "{c:?}");
    assert_eq!(c.malformed_frames, 3, "{c:?}"); // bad COBS, short, the garbage
    assert!(std::iter::from_fn(|| host.poll_event()).any(|e| e == HostEvent::Ready));
    assert!(host.is_connected());
}

#[test]
fn a_flooding_peer_cannot_overrun_the_host() {
    // An agent that ignores credits and sends 64 KiB of console output at once.
    let mut host = connected_host(5);
    let mut payload = [0u8; 600];
    let data = [b'z'; 480];
    for seq in 0..137u32 {
        let n = RtosMsg::ConsoleOut {
            stream: Stream::Stdout,
            data: &data,
        }
        .encode(&mut payload)
        .unwrap();
        host.handle_input(1, &seal(Some(seq as u8), &payload[..n]));
    }
    assert!(host.readable(Stream::Stdout) <= 4096);
    assert!(host.counters().credit_violations > 0);
    // Unsequenced junk messages in a sequenced slot do not break the session either.
    assert!(host.is_connected());
}

#[test]
fn message_links_carry_one_frame_per_message() {
    let cfg = HostConfig {
        link: LinkKind::Message,
        ..HostConfig::default()
    };
    let mut host: HostEndpoint = HostEndpoint::new(cfg, 0);
    let mut rtos: RtosEndpoint = RtosEndpoint::new(RtosConfig {
        link: LinkKind::Message,
        ..RtosConfig::default()
    });
    let mut buf = [0u8; 496];
    let mut now = 0;
    while !(host.is_connected() && rtos.is_connected()) {
        now += 1;
        assert!(now < 1000);
        host.handle_timeout(now);
        while let Some(n) = host.poll_transmit(now, &mut buf) {
            assert!(n <= 496);
            rtos.handle_input(now, &buf[..n]);
        }
        while let Some(n) = rtos.poll_transmit(now, &mut buf) {
            host.handle_input(now, &buf[..n]);
        }
    }
    rtos.write(Stream::Stdout, b"rpmsg");
    for _ in 0..3 {
        while let Some(n) = rtos.poll_transmit(now, &mut buf) {
            host.handle_input(now, &buf[..n]);
        }
        while let Some(n) = host.poll_transmit(now, &mut buf) {
            rtos.handle_input(now, &buf[..n]);
        }
    }
    let mut out = [0u8; 8];
    assert_eq!(host.read_console(Stream::Stdout, &mut out), 5);
    assert_eq!(&out[..5], b"rpmsg");
}

// ---- exec (protocol 1.2) ------------------------------------------------------------

/// An exec from start to end over a link with the given impairments: the
/// arguments arrive intact, a signal reaches the agent, 16 KiB of output cross a
/// 1 KiB ring under credit (on the exec stream only), and `ExecExited` comes
/// after the last byte.
#[cfg(feature = "rtos-exec")]
fn exec_round_trip(seed: u64, impair: Impair) {
    let mut p = Pair::new(seed, impair, HostConfig::default());
    p.connect();
    assert!(p.host.can_exec());
    let argv = b"echo\0hello world\0\0";
    p.host.send_exec_start(7, argv).unwrap();
    // One start in flight at a time.
    assert!(p.host.send_exec_start(8, b"x\0").is_err());
    let mut got_argv = None;
    let end = p.now + 20_000;
    while got_argv.is_none() {
        assert!(p.now < end, "no Exec event");
        p.now += 1;
        // Step by hand so that the arguments are read right after their event.
        p.step_taking_exec(&mut got_argv);
    }
    assert_eq!(got_argv.as_deref(), Some(&argv[..]));
    assert!(p.rtos_events.contains(&RtosEvent::Exec { exec: 7 }));

    p.host.send_exec_signal(7, 15).unwrap();
    p.run_until(20_000, |p| {
        p.rtos_events
            .contains(&RtosEvent::ExecSignal { exec: 7, signo: 15 })
    });

    const OUT: usize = 16 * 1024;
    let (mut written, mut got) = (0usize, Vec::new());
    let mut exited_at = None;
    let end = p.now + 120_000;
    while exited_at.is_none() || got.len() < OUT {
        assert!(p.now < end, "exec output stalled at {} bytes", got.len());
        while written < OUT {
            let chunk: Vec<u8> = (written..OUT.min(written + 300)).map(flood_byte).collect();
            let n = p.rtos.write(Stream::Exec, &chunk);
            if n == 0 {
                break;
            }
            written += n;
        }
        if written == OUT && exited_at.is_none() && p.rtos.send_exec_exited(3) {
            exited_at = Some(got.len());
        }
        p.step();
        if let Some(i) = p
            .host_events
            .iter()
            .position(|e| matches!(e, HostEvent::ExecExited { .. }))
        {
            // The report is there only once every byte is in the host's ring.
            assert_eq!(
                got.len() + p.host.readable(Stream::Exec),
                OUT,
                "ExecExited before the last byte"
            );
            assert_eq!(p.host_events[i], HostEvent::ExecExited { exec: 7, code: 3 });
        }
        let mut b = [0u8; 100];
        let n = p.host.read_console(Stream::Exec, &mut b);
        got.extend_from_slice(&b[..n]);
        assert!(p.host.readable(Stream::Exec) <= 4096);
    }
    p.run_until(20_000, |p| {
        p.host_events
            .iter()
            .any(|e| matches!(e, HostEvent::ExecExited { .. }))
    });
    assert!(
        got.iter().enumerate().all(|(i, &b)| b == flood_byte(i)),
        "exec output corrupted"
    );
    let exits = p
        .host_events
        .iter()
        .filter(|e| matches!(e, HostEvent::ExecExited { .. }))
        .count();
    assert_eq!(exits, 1);
    assert_eq!(p.host.readable(Stream::Stdout), 0, "nothing on stdout");
    assert_eq!(p.host.readable(Stream::Stderr), 0, "nothing on stderr");
    assert_eq!(p.host.counters().credit_violations, 0);
    assert_eq!(p.rtos.counters().credit_violations, 0);
    // The next exec may start now.
    p.host.send_exec_start(8, b"true\0").unwrap();
    p.run_until(20_000, |p| {
        p.rtos_events.contains(&RtosEvent::Exec { exec: 8 })
    });
}

#[cfg(feature = "rtos-exec")]
impl Pair {
    /// `step`, but the agent's events are polled one by one and the arguments
    /// of an `Exec` are copied while they are valid (until the next poll).
    fn step_taking_exec(&mut self, argv: &mut Option<Vec<u8>>) {
        let now = self.now;
        let mut buf = [0u8; transmit_buf_len(LinkKind::Stream, MAX_FRAME)];
        if self.host.poll_timeout().is_some_and(|t| t <= now) {
            self.host.handle_timeout(now);
        }
        while let Some(n) = self.host.poll_transmit(now, &mut buf) {
            self.to_rtos.send(&mut self.rng, &buf[..n]);
        }
        let bytes = self.to_host.take(&mut self.rng);
        self.host.handle_input(now, &bytes);
        while let Some(e) = self.host.poll_event() {
            self.host_events.push(e);
        }
        let bytes = self.to_rtos.take(&mut self.rng);
        self.rtos.handle_input(now, &bytes);
        if self.rtos.poll_timeout().is_some_and(|t| t <= now) {
            self.rtos.handle_timeout(now);
        }
        let mut rbuf = [0u8; 260];
        while let Some(n) = self.rtos.poll_transmit(now, &mut rbuf) {
            self.to_host.send(&mut self.rng, &rbuf[..n]);
        }
        while let Some(e) = self.rtos.poll_event() {
            if let RtosEvent::Exec { .. } = e {
                *argv = Some(self.rtos.exec_argv().to_vec());
            }
            self.rtos_events.push(e);
        }
    }

    /// Moves every frame the host has to send now straight to the agent.
    fn host_to_rtos(&mut self) {
        let mut buf = [0u8; transmit_buf_len(LinkKind::Stream, MAX_FRAME)];
        while let Some(n) = self.host.poll_transmit(self.now, &mut buf) {
            self.rtos.handle_input(self.now, &buf[..n]);
        }
    }

    /// Moves every frame the agent has to send now straight to the host.
    fn rtos_to_host(&mut self) {
        let mut buf = [0u8; 260];
        while let Some(n) = self.rtos.poll_transmit(self.now, &mut buf) {
            self.host.handle_input(self.now, &buf[..n]);
        }
        while let Some(e) = self.host.poll_event() {
            self.host_events.push(e);
        }
    }

    /// Lets the host's retransmission timer run out (at most `rto_max_ms`).
    fn host_retransmits(&mut self) {
        self.now += 2_000;
        self.host.handle_timeout(self.now);
        self.host_to_rtos();
    }
}

#[test]
#[cfg(feature = "rtos-exec")]
fn exec_round_trip_on_a_clean_link() {
    exec_round_trip(5, CLEAN);
}

#[test]
#[cfg(feature = "rtos-exec")]
fn exec_round_trips_on_lossy_links() {
    for seed in 1..=8 {
        exec_round_trip(seed * 6007, LOSSY);
    }
}

/// An `ExecStart` shares the agent's storage with the log line in flight: it
/// is held back (not acknowledged, so the host sends it again) while a log
/// line is queued, and while the previous exec's arguments are unread. The log
/// text and the arguments both arrive intact.
#[test]
#[cfg(feature = "rtos-exec")]
fn exec_start_waits_for_the_log_line_and_unread_arguments() {
    let cfg = HostConfig {
        peer_timeout_ms: 60_000,
        ..HostConfig::default()
    };
    let mut p = Pair::new(9, CLEAN, cfg);
    p.connect();
    p.run_until(1000, |p| p.rtos.is_flushed() && p.host.stdin_unacked() == 0);
    p.rtos_events.clear();
    p.host_events.clear();

    // A log line is queued (not even sent yet) when the ExecStart arrives.
    assert!(p.rtos.send_log(LogLevel::Warn, b"a line in flight"));
    p.host.send_exec_start(5, b"run\0").unwrap();
    p.host_to_rtos();
    assert_eq!(p.rtos.poll_event(), None, "held back behind the log line");
    assert_eq!(p.rtos.exec_argv(), b"");
    // It stays held back until the host has acknowledged the line.
    p.host_retransmits();
    assert_eq!(p.rtos.poll_event(), None);
    p.rtos_to_host(); // the log line; the host acknowledges it with its next frame
    p.host_retransmits();
    assert!(p.host_events.iter().any(
        |e| matches!(e, HostEvent::Log { level: LogLevel::Warn, text } if text == "a line in flight")
    ));

    // Now it is taken. While its arguments are unread, no log line fits.
    assert_eq!(p.rtos.exec_argv(), b"run\0");
    assert!(!p.rtos.send_log(LogLevel::Info, b"no room"));
    // A second start (the host allows it once the first is acknowledged) waits
    // until the application has moved past the first one's event.
    p.rtos_to_host();
    p.host.send_exec_start(6, b"two\0").unwrap();
    p.host_to_rtos();
    assert_eq!(p.rtos.poll_event(), Some(RtosEvent::Exec { exec: 5 }));
    p.host_retransmits();
    assert_eq!(p.rtos.exec_argv(), b"run\0", "valid until the next poll");
    assert_eq!(p.rtos.poll_event(), None);
    assert_eq!(p.rtos.exec_argv(), b"");
    p.host_retransmits();
    assert_eq!(p.rtos.poll_event(), Some(RtosEvent::Exec { exec: 6 }));
    assert_eq!(p.rtos.exec_argv(), b"two\0");
    assert_eq!(p.rtos.poll_event(), None);
    assert!(p.rtos.send_log(LogLevel::Info, b"room again"));
}

/// Text the agent was handed that is not UTF-8 (a C firmware's bytes: the
/// agent does not check them) reaches the host with each invalid sequence as
/// U+FFFD, in the names and in log lines; the session goes on.
#[test]
fn text_that_is_not_utf8_is_shown_with_replacements() {
    let mut p = Pair::new(31, CLEAN, HostConfig::default());
    *p.rtos = RtosEndpoint::new(RtosConfig {
        os: b"zeph\xFFyr",
        board: b"an\xC3(386",
        ..rtos_config(micrun_proto::features::ALL)
    });
    p.connect();
    let peer = p.host_events.iter().find_map(|e| match e {
        HostEvent::Connected(peer) => Some(peer.clone()),
        _ => None,
    });
    let peer = peer.expect("connected");
    assert_eq!(
        (peer.os.as_str(), peer.board.as_str()),
        ("zeph\u{FFFD}yr", "an\u{FFFD}(386")
    );

    // A lone continuation byte, a cut sequence at the end, and valid text after.
    assert!(p
        .rtos
        .send_log(LogLevel::Warn, b"25\xB0C \xE2\x82 ok \xE2\x82"));
    p.run_until(1000, |p| {
        p.host_events
            .iter()
            .any(|e| matches!(e, HostEvent::Log { .. }))
    });
    let text = p.host_events.iter().find_map(|e| match e {
        HostEvent::Log { text, .. } => Some(text.clone()),
        _ => None,
    });
    assert_eq!(text.unwrap().as_str(), "25\u{FFFD}C \u{FFFD} ok \u{FFFD}");
    let c = p.host.counters();
    assert_eq!((c.malformed_frames, c.unknown_messages), (0, 0), "{c:?}");
}

/// An agent without `features::EXEC` (a 1.0/1.1 agent, or one built without
/// commands): the host endpoint refuses to send exec messages, and nothing
/// reaches the agent.
#[test]
fn no_exec_toward_an_agent_without_the_feature() {
    let all = micrun_proto::features::ALL;
    let mut p = Pair::with_agent_features(
        4,
        CLEAN,
        HostConfig::default(),
        all & !micrun_proto::features::EXEC,
    );
    p.connect();
    let peer = p.host.peer().unwrap().clone();
    assert_eq!(peer.features & micrun_proto::features::EXEC, 0);
    assert!(!p.host.can_exec());
    assert!(p.host.send_exec_start(1, b"ls\0").is_err());
    assert!(p.host.send_exec_signal(1, 9).is_err());
    // The same for a host that does not want exec itself.
    let mut q = Pair::new(
        4,
        CLEAN,
        HostConfig {
            features: all & !micrun_proto::features::EXEC,
            ..HostConfig::default()
        },
    );
    q.connect();
    assert!(!q.host.can_exec());
    assert!(q.host.send_exec_start(1, b"ls\0").is_err());
    // And before any session.
    let mut h: HostEndpoint = HostEndpoint::new(HostConfig::default(), 0);
    assert!(h.send_exec_start(1, b"ls\0").is_err());

    p.run_until(3_000, |p| {
        p.host.stdin_unacked() == 0 && p.rtos.is_flushed()
    });
    p.step();
    assert!(p.rtos.is_connected() && p.host.is_connected());
    assert!(!p
        .rtos_events
        .iter()
        .any(|e| matches!(e, RtosEvent::Exec { .. } | RtosEvent::ExecSignal { .. })));
    // The rest of the session is unaffected.
    p.host.request_stats().unwrap();
    p.run_until(3_000, |p| {
        p.rtos_events.contains(&RtosEvent::StatsRequested)
    });
}

/// Found by fuzzing (tests/fuzz, rtos_endpoint): an agent that does not announce
/// (`announce_interval_ms` 0) kept reporting its host-silence deadline as due after
/// `handle_timeout` had marked the host silent, so a firmware sleeping until
/// `poll_timeout` spun until the host spoke again.
#[test]
fn a_silent_host_leaves_no_timer_due_on_an_agent_that_does_not_announce() {
    let mut host: HostEndpoint<1024, 4096> = HostEndpoint::new(HostConfig::default(), 0);
    let mut rtos: RtosEndpoint = RtosEndpoint::new(RtosConfig {
        announce_interval_ms: 0,
        ..RtosConfig::default()
    });
    let mut buf = [0u8; 1024];
    while let Some(n) = host.poll_transmit(0, &mut buf) {
        rtos.handle_input(0, &buf[..n]);
    }
    assert!(rtos.is_connected());
    let now = 20_000;
    assert!(
        rtos.poll_timeout().is_some_and(|t| t <= now),
        "the silence deadline is due"
    );
    rtos.handle_timeout(now);
    assert!(
        rtos.poll_timeout().is_none_or(|t| t > now),
        "still due after handle_timeout: {:?}",
        rtos.poll_timeout()
    );
}

/// Stats reports queued back to back each reach the host; the agent keeps one
/// set of values, so a report not yet sent carries the latest. Over a lossy
/// link too (a report in flight may go out again with newer values).
#[test]
fn stats_reports_queued_together_all_arrive() {
    for (seed, impair) in [(5, CLEAN), (11, LOSSY), (29, LOSSY)] {
        let mut p = Pair::new(seed, impair, HostConfig::default());
        p.connect();
        let stats = |uptime_ms| Stats {
            uptime_ms,
            cpu_load_permille: 7,
            mem_used_kib: 1,
            mem_total_kib: 2,
        };
        assert!(p.rtos.send_stats(stats(1)));
        assert!(p.rtos.send_stats(stats(2)));
        assert!(p.rtos.send_stats(stats(u64::MAX)));
        let count = |p: &Pair| {
            p.host_events
                .iter()
                .filter(|e| matches!(e, HostEvent::Stats(_)))
                .count()
        };
        p.run_until(20_000, |p| count(p) == 3);
        let last = p.host_events.iter().rev().find_map(|e| match e {
            HostEvent::Stats(s) => Some(*s),
            _ => None,
        });
        assert_eq!(last, Some(stats(u64::MAX)));
        p.run_until(2_000, |p| p.rtos.is_flushed());
        assert_eq!(count(&p), 3, "one report per send_stats");
    }
}

/// `handle_timeout` before the time `poll_timeout` names changes nothing (the
/// agent calls it on every poll): no retransmission, no announcement, the
/// same next deadline; at that time the retransmission happens.
#[test]
fn early_timeouts_on_the_agent_change_nothing() {
    let mut p = Pair::new(17, CLEAN, HostConfig::default());
    p.connect();
    assert_eq!(p.rtos.write(Stream::Stdout, b"hello"), 5);
    let mut buf = [0u8; 260];
    let now = p.now;
    while p.rtos.poll_transmit(now, &mut buf).is_some() {} // lost on the way
    let due = p.rtos.poll_timeout().expect("a retransmission is due");
    let before = p.rtos.counters();
    for t in now..due {
        p.rtos.handle_timeout(t);
        assert_eq!(p.rtos.poll_timeout(), Some(due), "at {t}");
        assert!(p.rtos.poll_transmit(t, &mut buf).is_none(), "sent at {t}");
    }
    assert_eq!(p.rtos.counters(), before);
    p.rtos.handle_timeout(due);
    assert_eq!(p.rtos.counters().retransmits, before.retransmits + 1);
    assert!(
        p.rtos.poll_transmit(due, &mut buf).is_some(),
        "the retransmission"
    );
}
