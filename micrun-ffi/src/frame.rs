//! Frames and their wire form: build a frame around a payload (header + CRC),
//! check and split a received frame, COBS-encode a frame for a byte stream.

use micrun_proto::frame::{self, FrameError, Header};

use crate::args::{self, Out};
use crate::message::micrun_bytes;
use crate::status::{
    entry, fail, micrun_status, Failed, MICRUN_ERR_BUFFER_TOO_SHORT, MICRUN_ERR_CRC,
    MICRUN_ERR_FRAME_SHORT, MICRUN_ERR_INVALID_ARG,
};

/// Bytes before the payload: flags, seq, ack.
pub const MICRUN_FRAME_HEADER_LEN: usize = 3;
/// Bytes after the payload: the CRC-16, little-endian.
pub const MICRUN_FRAME_CRC_LEN: usize = 2;
/// Header plus CRC: the smallest frame (a pure acknowledgement).
pub const MICRUN_FRAME_OVERHEAD: usize = 5;
/// Largest frame either side may send (one rpmsg payload).
pub const MICRUN_FRAME_MAX: usize = 496;
/// Largest payload: MICRUN_FRAME_MAX - MICRUN_FRAME_OVERHEAD.
pub const MICRUN_PAYLOAD_MAX: usize = 491;
/// Every peer accepts frames of this size; the handshake fits in it.
pub const MICRUN_SESSION_FRAME_MIN: usize = 96;
/// `flags` bit: the frame carries a sequenced message. Other bits are reserved (0).
pub const MICRUN_FRAME_FLAG_SEQ: u8 = 1;
/// Largest wire form of a frame on a byte stream: COBS of MICRUN_FRAME_MAX bytes
/// plus the 0x00 delimiter.
pub const MICRUN_WIRE_MAX: usize = 499;

const _: () = {
    assert!(MICRUN_FRAME_HEADER_LEN == frame::HEADER_LEN);
    assert!(MICRUN_FRAME_CRC_LEN == frame::CRC_LEN);
    assert!(MICRUN_FRAME_OVERHEAD == frame::OVERHEAD);
    assert!(MICRUN_FRAME_MAX == frame::MAX_FRAME);
    assert!(MICRUN_PAYLOAD_MAX == frame::MAX_FRAME - frame::OVERHEAD);
    assert!(MICRUN_SESSION_FRAME_MIN == frame::MIN_FRAME);
    assert!(MICRUN_FRAME_FLAG_SEQ == frame::FLAG_SEQ);
    assert!(MICRUN_WIRE_MAX == frame::wire_len(frame::MAX_FRAME));
};

/// A frame's header as it is on the wire.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct micrun_frame_header {
    /// MICRUN_FRAME_FLAG_SEQ or 0. Parsing reports the byte as received (test the
    /// bit: reserved bits are ignored on receipt); building rejects reserved bits.
    pub flags: u8,
    /// Sequence number when MICRUN_FRAME_FLAG_SEQ is set, else 0.
    pub seq: u8,
    /// The next sequence number the sender expects from its peer.
    pub ack: u8,
}

pub fn frame_error(e: FrameError, len: usize) -> Failed {
    match e {
        FrameError::Short => fail!(
            MICRUN_ERR_FRAME_SHORT,
            "a frame of {len} bytes is shorter than header + CRC ({MICRUN_FRAME_OVERHEAD})"
        ),
        FrameError::Crc => fail!(MICRUN_ERR_CRC, "CRC mismatch in a frame of {len} bytes"),
        // Not produced by frame::open; the framer reports these itself.
        FrameError::Cobs | FrameError::Oversized => {
            fail!(MICRUN_ERR_INVALID_ARG, "unexpected frame error {e:?}")
        }
    }
}

/// Builds a frame: `*hdr`, then `payload_len` bytes of `payload` (a message from
/// micrun_*_msg_encode, or none for a pure acknowledgement), then the CRC; stores
/// its length in `*out_len`. `payload` may lie inside `buf` (for instance encoded
/// at `buf + MICRUN_FRAME_HEADER_LEN`, building in place). A payload over
/// MICRUN_PAYLOAD_MAX, reserved flag bits, or a non-zero `seq` without the SEQ flag
/// are MICRUN_ERR_INVALID_ARG. A short `buf`: MICRUN_ERR_BUFFER_TOO_SHORT with the
/// size needed in `*out_len`.
///
/// # Safety
/// `hdr` must be readable; `payload` valid for `payload_len` bytes; `buf` valid for
/// `cap` bytes; `out_len` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn micrun_frame_build(
    hdr: *const micrun_frame_header,
    payload: *const u8,
    payload_len: usize,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> micrun_status {
    entry("micrun_frame_build", || {
        let out_len = Out::new(out_len, "out_len")?;
        // SAFETY: checked non-NULL and aligned; writable per the contract.
        unsafe { out_len.set(0) };
        // SAFETY: checked non-NULL and aligned; readable per the contract.
        let h = unsafe { args::input(hdr, "hdr")?.as_ptr().read() };
        if h.flags & !MICRUN_FRAME_FLAG_SEQ != 0 {
            return Err(fail!(
                MICRUN_ERR_INVALID_ARG,
                "hdr->flags {:#04x} has reserved bits set (only MICRUN_FRAME_FLAG_SEQ is defined)",
                h.flags
            ));
        }
        let sequenced = h.flags & MICRUN_FRAME_FLAG_SEQ != 0;
        if !sequenced && h.seq != 0 {
            return Err(fail!(
                MICRUN_ERR_INVALID_ARG,
                "hdr->seq is {} but MICRUN_FRAME_FLAG_SEQ is clear (an unsequenced frame has seq 0)",
                h.seq
            ));
        }
        if payload.is_null() && payload_len != 0 {
            return Err(fail!(
                crate::status::MICRUN_ERR_NULL,
                "payload is NULL with length {payload_len}"
            ));
        }
        if payload_len > MICRUN_PAYLOAD_MAX {
            return Err(fail!(
                MICRUN_ERR_INVALID_ARG,
                "a payload of {payload_len} bytes makes a frame over MICRUN_FRAME_MAX ({MICRUN_FRAME_MAX})"
            ));
        }
        args::check_buffer(buf, cap, "buf")?;
        let len = payload_len + MICRUN_FRAME_OVERHEAD;
        if cap < len {
            // SAFETY: as above.
            unsafe { out_len.set(len) };
            return Err(fail!(
                MICRUN_ERR_BUFFER_TOO_SHORT,
                "the frame needs {len} bytes, buf has {cap}"
            ));
        }
        if payload_len != 0 {
            // memmove semantics: the payload may overlap buf. No slice of the
            // payload is made, so the mutable view of buf below aliases nothing.
            // SAFETY: both valid for payload_len bytes per the contract; buf has
            // room for HEADER_LEN + payload_len (checked above, cap >= len).
            unsafe {
                core::ptr::copy(
                    payload,
                    buf.wrapping_add(MICRUN_FRAME_HEADER_LEN),
                    payload_len,
                )
            };
        }
        // SAFETY: the contract on buf; no other view of it is live.
        let buf = unsafe { args::buffer(buf, cap, "buf")? };
        frame::write_header(
            buf,
            Header {
                seq: sequenced.then_some(h.seq),
                ack: h.ack,
            },
        );
        let n = frame::seal(buf, MICRUN_FRAME_HEADER_LEN + payload_len);
        // SAFETY: as above.
        unsafe { out_len.set(n) };
        Ok(())
    })
}

/// Checks a frame's length and CRC and splits it: the header into `*hdr`, the
/// payload (empty for a pure acknowledgement) into `*payload`, which points into
/// `frame` and is valid while `frame` is, unchanged. Errors: MICRUN_ERR_FRAME_SHORT
/// (under 5 bytes), MICRUN_ERR_CRC; `*hdr` and `*payload` are then zeroed.
///
/// # Safety
/// `frame` must be valid for `len` bytes; `hdr` and `payload` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn micrun_frame_parse(
    frame: *const u8,
    len: usize,
    hdr: *mut micrun_frame_header,
    payload: *mut micrun_bytes,
) -> micrun_status {
    entry("micrun_frame_parse", || {
        let hdr = Out::new(hdr, "hdr")?;
        let payload = Out::new(payload, "payload")?;
        // SAFETY: checked non-NULL and aligned; writable per the contract.
        unsafe {
            hdr.set(micrun_frame_header::default());
            payload.set(micrun_bytes::EMPTY);
        }
        // SAFETY: the contract on frame.
        let bytes = unsafe { args::bytes(frame, len, "frame")? };
        // The header goes out as the bytes received, not as interpreted.
        let (_, body) = frame::open(bytes).map_err(|e| frame_error(e, len))?;
        // SAFETY: as above.
        unsafe {
            hdr.set(micrun_frame_header {
                flags: bytes[0],
                seq: bytes[1],
                ack: bytes[2],
            });
            payload.set(micrun_bytes::of(body));
        }
        Ok(())
    })
}

/// COBS-encodes a frame for a byte stream and appends the 0x00 delimiter; stores
/// the wire length in `*out_len`. `frame` may lie inside `buf` (encoding in
/// place). `buf` needs `len + len / 254 + 2` bytes, the most the wire form can
/// take (MICRUN_WIRE_MAX for the largest frame), even when the result is shorter; a
/// smaller `cap` gives MICRUN_ERR_BUFFER_TOO_SHORT with that size in `*out_len`.
/// Any bytes are accepted: this is the stuffing layer only.
///
/// # Safety
/// `frame` must be valid for `len` bytes; `buf` valid for `cap` bytes; `out_len`
/// valid for a write.
#[no_mangle]
pub unsafe extern "C" fn micrun_wire_encode(
    frame: *const u8,
    len: usize,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> micrun_status {
    entry("micrun_wire_encode", || {
        let out_len = Out::new(out_len, "out_len")?;
        // SAFETY: checked non-NULL and aligned; writable per the contract.
        unsafe { out_len.set(0) };
        if frame.is_null() && len != 0 {
            return Err(fail!(
                crate::status::MICRUN_ERR_NULL,
                "frame is NULL with length {len}"
            ));
        }
        args::check_buffer(buf, cap, "buf")?;
        let need = len
            .checked_add(len / 254 + 2)
            .filter(|&n| n <= isize::MAX as usize)
            .ok_or_else(|| fail!(MICRUN_ERR_INVALID_ARG, "len {len} is too large"))?;
        if cap < need {
            // SAFETY: as above.
            unsafe { out_len.set(need) };
            return Err(fail!(
                MICRUN_ERR_BUFFER_TOO_SHORT,
                "the wire form needs {need} bytes, buf has {cap}"
            ));
        }
        // The stuffing runs in place from `start`, where the output never
        // overtakes the input.
        let start = len / 254 + 1;
        if len != 0 {
            // SAFETY: frame valid for len (contract); buf has start + len <= need
            // <= cap bytes; memmove allows overlap.
            unsafe { core::ptr::copy(frame, buf.wrapping_add(start), len) };
        }
        // SAFETY: the contract on buf; no other view of it is live.
        let buf = unsafe { args::buffer(buf, cap, "buf")? };
        let n = frame::cobs_encode_in_place(buf, start, len);
        // SAFETY: as above.
        unsafe { out_len.set(n) };
        Ok(())
    })
}

/// CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final XOR) of
/// `len` bytes at `data`, into `*out`; the frame checksum.
///
/// # Safety
/// `data` must be valid for `len` bytes; `out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn micrun_crc16(data: *const u8, len: usize, out: *mut u16) -> micrun_status {
    entry("micrun_crc16", || {
        let out = Out::new(out, "out")?;
        // SAFETY: the contract on data.
        let bytes = unsafe { args::bytes(data, len, "data")? };
        // SAFETY: checked non-NULL and aligned; writable per the contract.
        unsafe { out.set(frame::crc16(bytes)) };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{last_error, MICRUN_ERR_NULL, MICRUN_OK};

    fn build(h: micrun_frame_header, payload: &[u8]) -> (micrun_status, Vec<u8>) {
        let mut buf = [0u8; 600];
        let mut n = 0;
        // SAFETY: valid pointers.
        let st = unsafe {
            micrun_frame_build(
                &h,
                payload.as_ptr(),
                payload.len(),
                buf.as_mut_ptr(),
                600,
                &mut n,
            )
        };
        (st, buf[..n].to_vec())
    }

    #[test]
    fn build_then_parse() {
        let h = micrun_frame_header {
            flags: MICRUN_FRAME_FLAG_SEQ,
            seq: 7,
            ack: 9,
        };
        let (st, f) = build(h, b"\x07");
        assert_eq!(st, MICRUN_OK);
        assert_eq!(f.len(), 6);
        let mut back = micrun_frame_header::default();
        let mut p = micrun_bytes::EMPTY;
        // SAFETY: valid pointers.
        let st = unsafe { micrun_frame_parse(f.as_ptr(), f.len(), &mut back, &mut p) };
        assert_eq!(st, MICRUN_OK);
        assert_eq!(back, h);
        assert_eq!((p.ptr, p.len), (f[3..].as_ptr(), 1));
        let mut bad = f.clone();
        bad[3] ^= 1;
        // SAFETY: valid pointers.
        let st = unsafe { micrun_frame_parse(bad.as_ptr(), bad.len(), &mut back, &mut p) };
        assert_eq!(st, MICRUN_ERR_CRC);
        assert_eq!((back, p.len), (micrun_frame_header::default(), 0));
        // SAFETY: valid pointers.
        let st = unsafe { micrun_frame_parse(f.as_ptr(), 4, &mut back, &mut p) };
        assert_eq!(st, MICRUN_ERR_FRAME_SHORT);
        assert!(last_error().contains("4 bytes"), "{}", last_error());
    }

    #[test]
    fn header_rules() {
        let (st, _) = build(
            micrun_frame_header {
                flags: 0x02,
                seq: 0,
                ack: 0,
            },
            b"",
        );
        assert_eq!(st, MICRUN_ERR_INVALID_ARG);
        let (st, _) = build(
            micrun_frame_header {
                flags: 0,
                seq: 1,
                ack: 0,
            },
            b"",
        );
        assert_eq!(st, MICRUN_ERR_INVALID_ARG);
        let (st, _) = build(micrun_frame_header::default(), &[1; MICRUN_PAYLOAD_MAX + 1]);
        assert_eq!(st, MICRUN_ERR_INVALID_ARG);
        let (st, f) = build(micrun_frame_header::default(), &[1; MICRUN_PAYLOAD_MAX]);
        assert_eq!((st, f.len()), (MICRUN_OK, MICRUN_FRAME_MAX));
    }

    #[test]
    fn in_place_building_and_stuffing() {
        // Payload encoded at buf + 3, framed in place, then stuffed in place.
        let mut buf = [0u8; MICRUN_WIRE_MAX];
        let payload: Vec<u8> = (0..300u32).map(|i| (i % 7) as u8).collect();
        buf[3..303].copy_from_slice(&payload);
        let h = micrun_frame_header {
            flags: 1,
            seq: 3,
            ack: 4,
        };
        let mut n = 0;
        let p = buf.as_mut_ptr();
        // SAFETY: overlapping ranges within one valid buffer are allowed.
        let st = unsafe { micrun_frame_build(&h, p.add(3), 300, p, buf.len(), &mut n) };
        assert_eq!((st, n), (MICRUN_OK, 305));
        let (_, separate) = build(h, &payload);
        assert_eq!(&buf[..n], &separate[..]);
        let mut wire = [0u8; MICRUN_WIRE_MAX];
        let mut wn = 0;
        // SAFETY: valid, separate buffers.
        let st = unsafe { micrun_wire_encode(buf.as_ptr(), n, wire.as_mut_ptr(), 600, &mut wn) };
        assert_eq!(st, MICRUN_OK);
        let mut inplace = 0;
        // SAFETY: in place within one buffer.
        let st = unsafe { micrun_wire_encode(p, n, p, buf.len(), &mut inplace) };
        assert_eq!(st, MICRUN_OK);
        assert_eq!(&buf[..inplace], &wire[..wn]);
        assert!(wn <= n + n / 254 + 2);
        assert!(!wire[..wn - 1].contains(&0));
        assert_eq!(wire[wn - 1], 0);
    }

    #[test]
    fn sizes_and_nulls() {
        let mut n = 0;
        let f = [0u8; 10];
        // SAFETY (all): valid pointers or NULL as each case says.
        unsafe {
            assert_eq!(
                micrun_wire_encode(f.as_ptr(), 10, core::ptr::null_mut(), 0, &mut n),
                MICRUN_ERR_BUFFER_TOO_SHORT
            );
            assert_eq!(n, 12);
            assert_eq!(
                micrun_wire_encode(core::ptr::null(), 10, core::ptr::null_mut(), 0, &mut n),
                MICRUN_ERR_NULL
            );
            assert_eq!(
                micrun_frame_build(
                    &micrun_frame_header::default(),
                    f.as_ptr(),
                    10,
                    core::ptr::null_mut(),
                    0,
                    &mut n
                ),
                MICRUN_ERR_BUFFER_TOO_SHORT
            );
            assert_eq!(n, 15);
            let mut crc = 0;
            assert_eq!(micrun_crc16(b"123456789".as_ptr(), 9, &mut crc), MICRUN_OK);
            assert_eq!(crc, 0x29B1);
            assert_eq!(
                micrun_crc16(core::ptr::null(), 1, &mut crc),
                MICRUN_ERR_NULL
            );
        }
    }
}
