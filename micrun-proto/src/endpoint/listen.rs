//! Passive agent detection on a byte-stream console: [`AnnounceFilter`].
//!
//! A host that does not know whether the firmware links the agent (`agent=auto`)
//! must not write a byte to the console until it knows: a plain shell or a boot
//! loader takes any byte as typed input. So it listens. Everything the firmware
//! prints goes on to the user as it comes, except the agent's own `Announce`
//! frames, which the filter picks out of the stream.
//!
//! An `Announce` on a byte link is an unsequenced frame (`flags` 0, `seq` 0),
//! COBS-encoded and ended by `0x00`, so its wire form always starts with
//! `01 01` and is at most [`ANNOUNCE_WIRE_MAX`] bytes long. The filter passes
//! every byte on at once, except from a `01 01` on: those few bytes are held
//! until they either end in a valid `Announce` (CRC, magic, exact length) or
//! cannot any more. Held bytes that turn out to be console output are passed on
//! in order, so what the user sees is byte for byte what the firmware printed.
//! Text consoles practically never print `0x01`; if one does and then falls
//! silent, the caller hands the held bytes on with [`AnnounceFilter::flush`]
//! after a short quiet time.

use crate::frame::{self, DELIMITER, HEADER_LEN};
use crate::msg::{Announce, RtosMsg};

/// Longest wire form of an `Announce`: a 3-byte header, a 7..=9-byte payload and
/// the CRC (at most 14 bytes), one COBS code byte more, and the delimiter.
pub const ANNOUNCE_WIRE_MAX: usize = HEADER_LEN + 1 + 4 + 2 + 3 + frame::CRC_LEN + 1 + 1;

/// What [`AnnounceFilter::push`] found in the bytes it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// The announcement.
    pub announce: Announce,
    /// How many of the bytes given to this `push` it took, up to and including
    /// the announcement's delimiter. The rest are the protocol's: give them to
    /// the host endpoint.
    pub consumed: usize,
}

/// Splits console output from the agent's `Announce` frames (see the module doc).
#[derive(Debug, Clone)]
pub struct AnnounceFilter {
    held: [u8; ANNOUNCE_WIRE_MAX],
    len: usize,
}

impl Default for AnnounceFilter {
    fn default() -> Self {
        Self::new()
    }
}

impl AnnounceFilter {
    pub const fn new() -> Self {
        Self {
            held: [0; ANNOUNCE_WIRE_MAX],
            len: 0,
        }
    }

    /// Bytes held back as a possible announcement.
    pub fn held(&self) -> usize {
        self.len
    }

    /// Feeds link bytes. Console bytes go to `console` in order (in one or more
    /// calls). Stops at the first announcement and says where it ended; the held
    /// bytes are then empty.
    #[must_use = "after an announcement the rest of the input is protocol, not console"]
    pub fn push(&mut self, data: &[u8], console: &mut impl FnMut(&[u8])) -> Option<Found> {
        let mut start = 0; // first byte of `data` not yet passed on or held
        for (i, &b) in data.iter().enumerate() {
            if self.len == 0 {
                if b == 0x01 {
                    console(&data[start..i]);
                    start = i + 1;
                    self.held[0] = b;
                    self.len = 1;
                }
                continue;
            }
            start = i + 1;
            self.held[self.len] = b;
            self.len += 1;
            if let Some(announce) = self.settle(console) {
                return Some(Found {
                    announce,
                    consumed: i + 1,
                });
            }
        }
        console(&data[start..]);
        None
    }

    /// Hands the held bytes on as console output (the link has been quiet, or
    /// detection is over).
    pub fn flush(&mut self, console: &mut impl FnMut(&[u8])) {
        console(&self.held[..self.len]);
        self.len = 0;
    }

    /// After a byte was added to the held ones: an announcement, still possible,
    /// or not (then pass on what cannot start one and keep the rest).
    fn settle(&mut self, console: &mut impl FnMut(&[u8])) -> Option<Announce> {
        loop {
            match self.verdict() {
                Verdict::Maybe => return None,
                Verdict::Announce(a) => {
                    self.len = 0;
                    return Some(a);
                }
                Verdict::No => {
                    // The first held byte is console output; look again from the
                    // next `0x01`.
                    let next = self.held[1..self.len]
                        .iter()
                        .position(|&b| b == 0x01)
                        .map_or(self.len, |p| p + 1);
                    console(&self.held[..next]);
                    self.held.copy_within(next..self.len, 0);
                    self.len -= next;
                    if self.len == 0 {
                        return None;
                    }
                }
            }
        }
    }

    fn verdict(&self) -> Verdict {
        let h = &self.held[..self.len];
        if h.len() >= 2 && h[1] != 0x01 {
            return Verdict::No;
        }
        let Some(end) = h.iter().position(|&b| b == DELIMITER) else {
            return if h.len() < ANNOUNCE_WIRE_MAX {
                Verdict::Maybe
            } else {
                Verdict::No
            };
        };
        let mut buf = [0u8; ANNOUNCE_WIRE_MAX];
        buf[..end].copy_from_slice(&h[..end]);
        let Ok(n) = frame::cobs_decode_in_place(&mut buf, end) else {
            return Verdict::No;
        };
        match frame::open(&buf[..n]) {
            Ok((hdr, payload)) if hdr.seq.is_none() => match RtosMsg::decode(payload) {
                Ok(RtosMsg::Announce(a)) if end + 1 == h.len() => Verdict::Announce(a),
                _ => Verdict::No,
            },
            _ => Verdict::No,
        }
    }
}

enum Verdict {
    Maybe,
    No,
    Announce(Announce),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::{LinkKind, RtosConfig, RtosEndpoint};
    use crate::msg::PROTOCOL_VERSION;

    fn announce_wire() -> ([u8; 600], usize) {
        let mut ep: RtosEndpoint = RtosEndpoint::new(RtosConfig {
            link: LinkKind::Stream,
            ..RtosConfig::default()
        });
        let mut buf = [0u8; 600];
        let n = ep.poll_transmit(0, &mut buf).unwrap();
        (buf, n)
    }

    fn run(chunks: &[&[u8]]) -> (std::vec::Vec<u8>, Option<(Announce, usize, usize)>) {
        let mut f = AnnounceFilter::new();
        let mut out = std::vec::Vec::new();
        for (k, c) in chunks.iter().enumerate() {
            if let Some(found) = f.push(c, &mut |b: &[u8]| out.extend_from_slice(b)) {
                return (out, Some((found.announce, k, found.consumed)));
            }
        }
        f.flush(&mut |b: &[u8]| out.extend_from_slice(b));
        (out, None)
    }

    #[test]
    fn agent_announces_first_and_fits() {
        let (w, n) = announce_wire();
        assert!(n <= ANNOUNCE_WIRE_MAX, "{n}");
        assert_eq!(&w[..2], &[1, 1]);
        assert_eq!(w[n - 1], 0);
    }

    #[test]
    fn text_passes_unchanged_and_announce_is_cut_out() {
        let (w, n) = announce_wire();
        let mut data = b"U-Boot 2023.01\r\n=> ".to_vec();
        data.extend_from_slice(&w[..n]);
        data.extend_from_slice(b"protocol");
        let (out, found) = run(&[&data]);
        assert_eq!(out, b"U-Boot 2023.01\r\n=> ");
        let (a, _, consumed) = found.unwrap();
        assert_eq!(a.version, PROTOCOL_VERSION);
        assert_eq!(&data[consumed..], b"protocol");
    }

    #[test]
    fn announce_split_byte_by_byte() {
        let (w, n) = announce_wire();
        let mut data = b"boot\x01x".to_vec();
        data.extend_from_slice(&w[..n]);
        let chunks: std::vec::Vec<&[u8]> = data.chunks(1).collect();
        let (out, found) = run(&chunks);
        assert_eq!(out, b"boot\x01x");
        assert!(found.is_some());
    }

    #[test]
    fn raw_output_is_byte_identical() {
        // Console bytes that look like a frame start, a corrupted announcement,
        // NULs, and 0x01 runs: all passed on, in order, nothing found.
        let (w, n) = announce_wire();
        let mut bad = w[..n].to_vec();
        bad[6] ^= 0x40;
        let mut data = b"a\x01\x01\x01b\x00\x01".to_vec();
        data.extend_from_slice(&bad);
        data.extend_from_slice(&[
            1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 9,
        ]);
        data.extend_from_slice(b"\x00\x00end\x01");
        for split in [1, 2, 3, 7, data.len()] {
            let chunks: std::vec::Vec<&[u8]> = data.chunks(split).collect();
            let (out, found) = run(&chunks);
            assert!(found.is_none());
            assert_eq!(out, data, "split {split}");
        }
    }

    #[test]
    fn announce_after_a_false_start() {
        // `01` then the real announcement: the stray byte is console output.
        let (w, n) = announce_wire();
        let mut data = vec![1u8];
        data.extend_from_slice(&w[..n]);
        let (out, found) = run(&[&data]);
        assert_eq!(out, [1]);
        assert_eq!(found.unwrap().2, data.len());
    }
}
