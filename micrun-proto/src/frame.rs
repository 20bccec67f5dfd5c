//! Frame layout, CRC-16 and COBS stuffing.
//!
//! A frame is `flags | seq | ack | payload | crc16-le` (see `docs/protocol.md`):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | flags: bit 0 = [`FLAG_SEQ`] (the frame carries a sequenced message), bits 1–7 reserved, sent as 0, ignored |
//! | 1 | 1 | seq: sequence number of this frame when `FLAG_SEQ` is set, else 0 |
//! | 2 | 1 | ack: the next sequence number the sender expects from its peer |
//! | 3 | n | payload: one postcard message, empty for a pure acknowledgement |
//! | 3+n | 2 | CRC-16/CCITT-FALSE of bytes `0..3+n`, little-endian |
//!
//! On byte-stream links each frame is COBS-encoded and followed by one `0x00`.
//! On message links (rpmsg endpoints) one message carries one frame, unencoded.

/// Bytes before the payload.
pub const HEADER_LEN: usize = 3;
/// Bytes after the payload.
pub const CRC_LEN: usize = 2;
/// Header plus CRC: the size of a pure acknowledgement.
pub const OVERHEAD: usize = HEADER_LEN + CRC_LEN;
/// Largest frame either side may ever send: one rpmsg payload.
pub const MAX_FRAME: usize = 496;
/// Smallest `max_frame` a peer may advertise; the handshake fits in it.
pub const MIN_FRAME: usize = 96;
/// Flag bit: the frame carries a sequenced (reliably delivered) message.
pub const FLAG_SEQ: u8 = 0x01;
/// Frame delimiter on byte-stream links.
pub const DELIMITER: u8 = 0x00;

/// Length of the COBS encoding of `n` bytes, without the delimiter.
pub const fn cobs_max_len(n: usize) -> usize {
    n + n / 254 + 1
}

/// Bytes a byte-stream link needs to carry a frame of `n` bytes: COBS plus delimiter.
pub const fn wire_len(n: usize) -> usize {
    cobs_max_len(n) + 1
}

/// CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor).
/// Bitwise by default (no table: 512 bytes of flash matter on the RTOS); the
/// `crc-table` feature uses a table built at compile time instead. Both give the
/// same result (tested).
pub fn crc16(data: &[u8]) -> u16 {
    crc16_update(CRC_INIT, data)
}

/// The CRC's initial value: `crc16(a ++ b)` is `crc16_update(crc16_update(CRC_INIT, a), b)`.
pub const CRC_INIT: u16 = 0xFFFF;

/// Continues a CRC-16 over more bytes (a frame sent in pieces). Not inlined:
/// one copy serves every frame sent and received.
#[inline(never)]
pub fn crc16_update(crc: u16, data: &[u8]) -> u16 {
    #[cfg(feature = "crc-table")]
    {
        crc16_table(crc, data)
    }
    #[cfg(not(feature = "crc-table"))]
    {
        crc16_bitwise(crc, data)
    }
}

#[cfg_attr(feature = "crc-table", allow(dead_code))]
fn crc16_bitwise(mut crc: u16, data: &[u8]) -> u16 {
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = step(crc);
        }
    }
    crc
}

const fn step(crc: u16) -> u16 {
    if crc & 0x8000 != 0 {
        (crc << 1) ^ 0x1021
    } else {
        crc << 1
    }
}

#[cfg(any(feature = "crc-table", test))]
static CRC_TABLE: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut k = 0;
        while k < 8 {
            crc = step(crc);
            k += 1;
        }
        t[i] = crc;
        i += 1;
    }
    t
};

#[cfg(any(feature = "crc-table", test))]
fn crc16_table(mut crc: u16, data: &[u8]) -> u16 {
    for &b in data {
        crc = (crc << 8) ^ CRC_TABLE[usize::from((crc >> 8) as u8 ^ b)];
    }
    crc
}

/// A frame's header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// `Some(seq)` for a sequenced frame.
    pub seq: Option<u8>,
    /// The next sequence number the sender expects.
    pub ack: u8,
}

/// Why a received frame was discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Shorter than header + CRC.
    Short,
    /// CRC mismatch.
    Crc,
    /// Invalid COBS stuffing.
    Cobs,
    /// Longer than the receive buffer.
    Oversized,
}

/// Writes the header into `buf[..HEADER_LEN]`.
pub fn write_header(buf: &mut [u8], h: Header) {
    buf[0] = if h.seq.is_some() { FLAG_SEQ } else { 0 };
    buf[1] = h.seq.unwrap_or(0);
    buf[2] = h.ack;
}

/// Appends the CRC over `buf[..len]` at `buf[len..len + 2]`; returns the frame length.
pub fn seal(buf: &mut [u8], len: usize) -> usize {
    let crc = crc16(&buf[..len]);
    buf[len..len + CRC_LEN].copy_from_slice(&crc.to_le_bytes());
    len + CRC_LEN
}

/// Checks a raw frame's CRC and splits it into header and payload.
pub fn open(frame: &[u8]) -> Result<(Header, &[u8]), FrameError> {
    if frame.len() < OVERHEAD {
        return Err(FrameError::Short);
    }
    let body = frame.len() - CRC_LEN;
    let want = u16::from_le_bytes([frame[body], frame[body + 1]]);
    if crc16(&frame[..body]) != want {
        return Err(FrameError::Crc);
    }
    let seq = if frame[0] & FLAG_SEQ != 0 {
        Some(frame[1])
    } else {
        None
    };
    Ok((Header { seq, ack: frame[2] }, &frame[HEADER_LEN..body]))
}

/// COBS-encodes `buf[start..start + len]` into `buf[0..]` and appends the delimiter.
/// Returns the wire length. `start` must be at least `len / 254 + 1` so that the
/// output never overtakes the input; `buf` must hold [`wire_len`]`(len)` bytes.
pub fn cobs_encode_in_place(buf: &mut [u8], start: usize, len: usize) -> usize {
    debug_assert!(start > len / 254);
    let mut out = 1; // first code byte at 0
    let mut code_at = 0;
    let mut code: u8 = 1;
    for i in 0..len {
        let b = buf[start + i];
        if b == 0 {
            buf[code_at] = code;
            code_at = out;
            out += 1;
            code = 1;
        } else {
            buf[out] = b;
            out += 1;
            code += 1;
            if code == 0xFF {
                buf[code_at] = code;
                code_at = out;
                out += 1;
                code = 1;
            }
        }
    }
    buf[code_at] = code;
    buf[out] = DELIMITER;
    out + 1
}

/// COBS-encodes the concatenation of `parts` and appends the delimiter, handing
/// the output to `out` in pieces (a code byte, then runs of the input). The
/// same bytes as [`cobs_encode_in_place`], without a buffer for the frame: the
/// RTOS side sends console data straight from its ring this way.
pub fn cobs_encode_to(parts: &[&[u8]], out: &mut impl FnMut(&[u8])) {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut i = 0;
    loop {
        let mut run = 0;
        while run < 254 && i + run < total && byte_at(parts, i + run) != 0 {
            run += 1;
        }
        out(&[run as u8 + 1]);
        // The run, a piece per part it spans.
        let (mut start, mut left) = (i, run);
        for p in parts {
            if left == 0 {
                break;
            }
            if let Some(rest) = p.get(start..) {
                let n = rest.len().min(left);
                if n > 0 {
                    out(&rest[..n]);
                }
                left -= n;
                start = 0;
            } else {
                start -= p.len();
            }
        }
        i += run;
        if run < 254 {
            // A zero byte (or the end) closed the run.
            if i >= total {
                break;
            }
            i += 1;
        }
    }
    out(&[DELIMITER]);
}

/// Byte `i` of the concatenation of `parts` (0 past the end).
fn byte_at(parts: &[&[u8]], mut i: usize) -> u8 {
    for p in parts {
        match p.get(i) {
            Some(&b) => return b,
            None => i -= p.len(),
        }
    }
    0
}

/// COBS-decodes `buf[..len]` (without delimiter) in place; returns the decoded length.
pub fn cobs_decode_in_place(buf: &mut [u8], len: usize) -> Result<usize, FrameError> {
    let mut read = 0;
    let mut write = 0;
    while read < len {
        let code = buf[read] as usize;
        if code == 0 || read + code > len {
            return Err(FrameError::Cobs);
        }
        read += 1;
        for _ in 1..code {
            buf[write] = buf[read];
            write += 1;
            read += 1;
        }
        if code != 0xFF && read < len {
            buf[write] = 0;
            write += 1;
        }
    }
    Ok(write)
}

/// Accumulates bytes from a byte-stream link and yields complete, CRC-checked
/// frames. `N` is the largest wire frame (COBS-encoded, without delimiter) accepted.
///
/// Garbage is skipped up to the next delimiter; every discarded frame is counted.
/// Frames are COBS-decoded as their bytes arrive (no second pass over the buffer);
/// the outcomes are [`cobs_decode_in_place`]'s on the whole wire frame.
#[derive(Debug)]
pub struct Deframer<const N: usize> {
    buf: [u8; N],
    /// Decoded bytes held, or [`OVERSIZED`] once the wire frame is longer than `N`.
    len: u16,
    /// Code bytes minus implied zeros so far (the wire length is `len` plus
    /// this), and in bit 7 whether the current COBS block is a full one (code
    /// `0xFF`, no implied zero after it).
    codes: u8,
    /// Data bytes left in the current COBS block; 0 or [`ZERO_NEXT`] when a code
    /// byte comes next, [`ZERO_NEXT`] when the block before it implies a zero.
    left: u8,
}

/// [`Deframer`]: the frame so far is longer than the buffer.
const OVERSIZED: u16 = u16::MAX;
/// [`Deframer`]: a code byte comes next, after the implied zero of the last block.
const ZERO_NEXT: u8 = 0xFF;
/// [`Deframer`]: the current block is a full one.
const FULL_BLOCK: u8 = 0x80;

impl<const N: usize> Default for Deframer<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Deframer<N> {
    // Full blocks (one code byte each, counted in 7 bits) fit 127 × 254 bytes.
    const FITS: () = assert!(N <= 127 * 254, "a deframer holds at most 32258 bytes");

    pub const fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::FITS;
        Self {
            buf: [0; N],
            len: 0,
            codes: 0,
            left: 0,
        }
    }

    /// A new deframer where it stays, over zero bytes (see `crate::init`):
    /// zero bytes are [`Deframer::new`]'s value (a `const fn`, so a field
    /// list of its own; test `zeroed_init_is_new` compares the two byte for
    /// byte), so nothing is written; this checks the size.
    pub(crate) fn init_zeroed(slot: &mut core::mem::MaybeUninit<Self>) {
        #[allow(clippy::let_unit_value)]
        let () = Self::FITS;
        let _ = slot;
    }

    /// Feeds bytes until one frame is complete. Returns how many bytes of `input`
    /// were consumed and, if a delimiter was reached, the outcome for that frame.
    /// Call [`Deframer::frame`] after `Some(Ok(len))` to read the frame.
    pub fn push(&mut self, input: &[u8]) -> (usize, Option<Result<usize, FrameError>>) {
        for (i, &b) in input.iter().enumerate() {
            if b == DELIMITER {
                let (len, codes, left) = (self.len, self.codes, self.left);
                self.reset();
                if len == OVERSIZED {
                    return (i + 1, Some(Err(FrameError::Oversized)));
                }
                if len == 0 && codes == 0 {
                    // Back-to-back delimiters: a link keeps-alive or line noise; not a frame.
                    continue;
                }
                let res = if left != 0 && left != ZERO_NEXT {
                    Err(FrameError::Cobs) // the last block is cut short
                } else if usize::from(len) < OVERHEAD {
                    Err(FrameError::Short)
                } else {
                    Ok(usize::from(len))
                };
                return (i + 1, Some(res));
            }
            if self.len == OVERSIZED {
                continue;
            }
            if usize::from(self.len) + usize::from(self.codes & !FULL_BLOCK) >= N {
                self.len = OVERSIZED;
                continue;
            }
            if self.left == 0 || self.left == ZERO_NEXT {
                // A code byte: `b - 1` data bytes follow.
                if self.left == ZERO_NEXT {
                    self.put(0);
                } else {
                    self.codes += 1;
                }
                self.codes = (self.codes & !FULL_BLOCK) | if b == 0xFF { FULL_BLOCK } else { 0 };
                self.left = b - 1;
            } else {
                self.put(b);
                self.left -= 1;
            }
            if self.left == 0 && self.codes & FULL_BLOCK == 0 {
                self.left = ZERO_NEXT;
            }
        }
        (input.len(), None)
    }

    /// Appends a decoded byte (the length check above keeps it in the buffer).
    fn put(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(usize::from(self.len)) {
            *slot = b;
            self.len += 1;
        }
    }

    /// The decoded frame after `push` returned `Some(Ok(len))`.
    pub fn frame(&self, len: usize) -> &[u8] {
        &self.buf[..len]
    }

    /// Drops any partial frame (used when a session restarts).
    pub fn reset(&mut self) {
        self.len = 0;
        self.codes = 0;
        self.left = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Deframer::init_zeroed` over zero bytes leaves the very bytes
    /// `Deframer::new` makes (written out field by field): a field whose
    /// initial value were not zero bytes would differ (the type has no
    /// padding at these sizes, so every byte is a field's).
    #[test]
    #[allow(unsafe_code)]
    fn zeroed_init_is_new() {
        fn bytes<T>(v: &T) -> &[u8] {
            // SAFETY: a `Deframer` of these sizes has no padding: all of
            // its bytes are initialised.
            unsafe {
                core::slice::from_raw_parts((v as *const T).cast::<u8>(), core::mem::size_of::<T>())
            }
        }
        fn check<const N: usize>() {
            assert_eq!(core::mem::size_of::<Deframer<N>>(), N + 4);
            let mut slot = core::mem::MaybeUninit::<Deframer<N>>::zeroed();
            Deframer::init_zeroed(&mut slot);
            // SAFETY: zero bytes are a deframer (integers and a byte array).
            let d = unsafe { slot.assume_init_ref() };
            assert_eq!(bytes(d), bytes(&Deframer::<N>::new()));
        }
        check::<128>();
        check::<256>();
    }

    #[test]
    fn crc_table_and_bitwise_agree() {
        // The check value of CRC-16/CCITT-FALSE, then every single byte and a
        // pseudo-random buffer through both implementations.
        assert_eq!(crc16_bitwise(CRC_INIT, b"123456789"), 0x29B1);
        assert_eq!(crc16_table(CRC_INIT, b"123456789"), 0x29B1);
        for b in 0..=255u8 {
            assert_eq!(
                crc16_table(CRC_INIT, &[b]),
                crc16_bitwise(CRC_INIT, &[b]),
                "byte {b:#04x}"
            );
        }
        let mut x = 0x1234_5678u32;
        let buf: [u8; 1000] = core::array::from_fn(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        });
        for n in [0, 1, 2, 7, 496, 1000] {
            assert_eq!(
                crc16_table(CRC_INIT, &buf[..n]),
                crc16_bitwise(CRC_INIT, &buf[..n]),
                "{n} bytes"
            );
        }
    }

    /// `cobs_encode_to` over any split of the input gives `cobs_encode_in_place`'s
    /// bytes, for runs of zeros and of 253–255 non-zero bytes around the ends.
    #[test]
    fn cobs_encode_to_matches_in_place() {
        let mut x = 0x2468_ACE1u32;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for case in 0..3000 {
            let len = match case % 4 {
                0 => (next() % 8) as usize,
                1 => 250 + (next() % 12) as usize,
                _ => (next() % 600) as usize,
            };
            let zeros = next() % 4; // 0: no zeros; 1, 2, 3: one byte in 4, 16, 64
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if zeros > 0 && r % (1 << (2 * zeros)) == 0 {
                        0
                    } else {
                        (r >> 8) as u8 | 1
                    }
                })
                .collect();
            let start = len / 254 + 1;
            let mut buf = vec![0u8; start + wire_len(len)];
            buf[start..start + len].copy_from_slice(&data);
            let n = cobs_encode_in_place(&mut buf, start, len);
            let a = (next() as usize) % (len + 1);
            let b = a + (next() as usize) % (len - a + 1);
            let mut got = Vec::new();
            cobs_encode_to(&[&data[..a], &data[a..b], &data[b..]], &mut |p| {
                got.extend_from_slice(p)
            });
            assert_eq!(got, buf[..n], "len {len}, split {a}/{b}");
        }
    }

    /// The deframer's outcomes as a whole-frame pass gives them: the wire
    /// frame up to a delimiter, `Oversized` beyond `N` bytes, else
    /// `cobs_decode_in_place`, else `Short` under the overhead.
    fn reference<const N: usize>(stream: &[u8]) -> Vec<Result<Vec<u8>, FrameError>> {
        let mut out = Vec::new();
        let mut parts: Vec<&[u8]> = stream.split(|&b| b == DELIMITER).collect();
        parts.pop(); // bytes after the last delimiter: no outcome yet
        for wire in parts {
            if wire.is_empty() {
                continue;
            }
            if wire.len() > N {
                out.push(Err(FrameError::Oversized));
                continue;
            }
            let mut buf = wire.to_vec();
            out.push(match cobs_decode_in_place(&mut buf, wire.len()) {
                Ok(n) if n < OVERHEAD => Err(FrameError::Short),
                Ok(n) => Ok(buf[..n].to_vec()),
                Err(e) => Err(e),
            });
        }
        out
    }

    fn deframe<const N: usize>(stream: &[u8], chunk: usize) -> Vec<Result<Vec<u8>, FrameError>> {
        let mut d = Deframer::<N>::new();
        let mut out = Vec::new();
        for mut piece in stream.chunks(chunk) {
            while !piece.is_empty() {
                let (used, res) = d.push(piece);
                piece = &piece[used..];
                match res {
                    Some(Ok(n)) => out.push(Ok(d.frame(n).to_vec())),
                    Some(Err(e)) => out.push(Err(e)),
                    None => {}
                }
            }
        }
        out
    }

    /// Decoding as the bytes arrive gives the whole-frame outcomes, over valid
    /// frames (with runs of 254 non-zero bytes and zeros at the ends), garbage,
    /// cut blocks and frames around the buffer's size, in any chunking.
    #[test]
    fn deframer_matches_whole_frame_decoding() {
        let mut x = 0x1357_9BDFu32;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for round in 0..4000 {
            let mut stream = Vec::new();
            for _ in 0..next() % 6 {
                match next() % 5 {
                    0 => stream.extend((0..next() % 40).map(|_| next() as u8)),
                    1 => stream.push(0),
                    _ => {
                        let len = match next() % 3 {
                            0 => (next() % 8) as usize,
                            1 => 250 + (next() % 12) as usize,
                            _ => (next() % 300) as usize,
                        };
                        let zeros = next() % 3;
                        let data: Vec<u8> = (0..len)
                            .map(|_| {
                                let r = next();
                                if zeros > 0 && r % (4 << (2 * zeros)) == 0 {
                                    0
                                } else {
                                    (r >> 8) as u8 | 1
                                }
                            })
                            .collect();
                        let start = len / 254 + 1;
                        let mut buf = vec![0u8; start + wire_len(len)];
                        buf[start..start + len].copy_from_slice(&data);
                        let n = cobs_encode_in_place(&mut buf, start, len);
                        let mut wire = buf[..n].to_vec();
                        if next() % 4 == 0 && n > 2 {
                            // Cut short, or a byte changed.
                            let at = (next() as usize) % (n - 1);
                            if next() % 2 == 0 {
                                wire.truncate(at);
                                wire.push(0);
                            } else {
                                wire[at] = (next() as u8) | 1;
                            }
                        }
                        stream.extend_from_slice(&wire);
                    }
                }
            }
            let chunk = 1 + (next() as usize) % 64;
            assert_eq!(
                deframe::<128>(&stream, chunk),
                reference::<128>(&stream),
                "round {round}"
            );
            assert_eq!(
                deframe::<300>(&stream, chunk),
                reference::<300>(&stream),
                "round {round}"
            );
            assert_eq!(
                deframe::<498>(&stream, chunk),
                reference::<498>(&stream),
                "round {round}"
            );
        }
    }
}
