//! The frame layer: the deframer (COBS, delimiters, oversized frames) on arbitrary
//! bytes cut into arbitrary chunks, `frame::open` on each frame it yields, and the
//! round trip seal → COBS → deframe → open on the same bytes taken as a frame body,
//! and the `AnnounceFilter` that picks the agent's `Announce` out of console output.
//!
//! Input: `chunk data...`; `chunk` (1..=256) is the size of the pieces fed to the
//! deframer, as a UART driver's reads would cut them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use micrun_fuzz::seal;
use micrun_proto::frame::{self, Deframer, MAX_FRAME};
use micrun_proto::{AnnounceFilter, LinkKind};

/// A receive buffer as the RTOS endpoint's smallest (`FRAME` = 64) and as the host's.
fn deframe<const N: usize>(data: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    let mut d = Deframer::<N>::new();
    let mut frames = Vec::new();
    for mut piece in data.chunks(chunk) {
        while !piece.is_empty() {
            let (used, res) = d.push(piece);
            assert!(used >= 1 && used <= piece.len(), "push consumes");
            piece = &piece[used..];
            if let Some(Ok(len)) = res {
                let f = d.frame(len);
                assert_eq!(f.len(), len);
                assert!(
                    len >= frame::OVERHEAD && len <= N,
                    "frame within its buffer"
                );
                if let Ok((_, payload)) = frame::open(f) {
                    assert_eq!(payload.len(), len - frame::OVERHEAD);
                }
                frames.push(f.to_vec());
            }
        }
    }
    frames
}

/// The filter passes console bytes on in order and holds at most one announcement's
/// worth; without an announcement, what comes out is exactly what went in.
fn filter(data: &[u8], chunk: usize) {
    let mut f = AnnounceFilter::new();
    let mut console = Vec::new();
    let mut found = false;
    for mut piece in data.chunks(chunk) {
        while !piece.is_empty() {
            let mut out = |b: &[u8]| console.extend_from_slice(b);
            match f.push(piece, &mut out) {
                Some(a) => {
                    assert!(a.consumed >= 1 && a.consumed <= piece.len());
                    assert_eq!(f.held(), 0, "held bytes after an announcement");
                    found = true;
                    piece = &piece[a.consumed..];
                }
                None => piece = &[],
            }
            assert!(f.held() <= micrun_proto::endpoint::listen::ANNOUNCE_WIRE_MAX);
        }
    }
    f.flush(&mut |b: &[u8]| console.extend_from_slice(b));
    assert_eq!(f.held(), 0);
    if !found {
        assert_eq!(console, data, "console bytes changed");
    } else {
        assert!(console.len() < data.len());
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&chunk, data)) = input.split_first() else {
        return;
    };
    let chunk = usize::from(chunk) + 1;
    deframe::<64>(data, chunk);
    deframe::<{ frame::cobs_max_len(MAX_FRAME) }>(data, chunk);
    filter(data, chunk);

    // The same bytes as a frame body: sealed and stuffed, they come back whole.
    let body = &data[..data.len().min(MAX_FRAME - frame::CRC_LEN)];
    if body.len() >= frame::HEADER_LEN {
        let wire = seal(body, LinkKind::Stream);
        assert!(wire.len() <= frame::wire_len(body.len() + frame::CRC_LEN));
        let frames = deframe::<{ frame::cobs_max_len(MAX_FRAME) }>(&wire, chunk);
        assert_eq!(frames.len(), 1, "one frame");
        let (_, payload) = frame::open(&frames[0]).expect("a sealed frame opens");
        assert_eq!(payload, &body[frame::HEADER_LEN..]);
        // The same frame on a message link opens as is.
        let raw = seal(body, LinkKind::Message);
        assert_eq!(raw, frames[0]);
    }
});
