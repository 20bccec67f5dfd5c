//! The C codec entry points of libmicrun (`micrun-ffi`), called as C calls them:
//! `micrun_framer_init`/`_feed` on arbitrary bytes cut into arbitrary chunks with an
//! arbitrary storage size, `micrun_frame_parse` on each frame and on the raw input,
//! `micrun_host_msg_decode`/`micrun_rtos_msg_decode` on every payload (and what
//! decodes is encoded again with `micrun_*_msg_encode`, into a buffer of arbitrary
//! size), `micrun_wire_encode` + the framer + `micrun_frame_parse` as a round trip,
//! `micrun_frame_build` with arbitrary headers, and `micrun_crc16`. Checked: no
//! panic (the entry points catch none: a panic would abort the C caller), outputs
//! within the buffers given, and agreement with micrun-proto. Input:
//! `storage chunk cap[2] flags seq ack data...`.
#![no_main]

use std::mem::MaybeUninit;

use libfuzzer_sys::fuzz_target;
use micrun::frame::{
    micrun_crc16, micrun_frame_build, micrun_frame_header, micrun_frame_parse, micrun_wire_encode,
};
use micrun::framer::{micrun_framer, micrun_framer_feed, micrun_framer_init};
use micrun::message::{
    micrun_bytes, micrun_host_msg, micrun_host_msg_decode, micrun_host_msg_encode, micrun_rtos_msg,
    micrun_rtos_msg_decode, micrun_rtos_msg_encode,
};
use micrun::status::micrun_status::{self, MICRUN_ERR_BUFFER_TOO_SHORT, MICRUN_OK};
use micrun_proto::{frame, HostMsg, RtosMsg};

fn bytes_of(b: &micrun_bytes) -> &[u8] {
    if b.len == 0 {
        &[]
    } else {
        // SAFETY: set by the library to a range of a live buffer.
        unsafe { std::slice::from_raw_parts(b.ptr, b.len) }
    }
}

/// Both decoders on `payload`; what decodes encodes again (into `cap` bytes, or
/// the size asked for) to the same message.
fn decode(payload: &[u8], cap: usize) {
    let mut out = vec![0u8; cap];
    let mut host = MaybeUninit::<micrun_host_msg>::uninit();
    // SAFETY: valid pointers and lengths.
    let st = unsafe { micrun_host_msg_decode(payload.as_ptr(), payload.len(), host.as_mut_ptr()) };
    assert_eq!(st == MICRUN_OK, HostMsg::decode(payload).is_ok(), "{st:?}");
    if st == MICRUN_OK {
        // SAFETY: written by the call.
        let host = unsafe { host.assume_init() };
        let mut n = 0;
        // SAFETY: as above; the message's bytes point into `payload`, apart from `out`.
        let st = unsafe { micrun_host_msg_encode(&host, out.as_mut_ptr(), cap, &mut n) };
        check_encoded(st, &out, n, |b| {
            HostMsg::decode(b) == HostMsg::decode(payload)
        });
    }
    let mut rtos = MaybeUninit::<micrun_rtos_msg>::uninit();
    // SAFETY: as above.
    let st = unsafe { micrun_rtos_msg_decode(payload.as_ptr(), payload.len(), rtos.as_mut_ptr()) };
    assert_eq!(st == MICRUN_OK, RtosMsg::decode(payload).is_ok(), "{st:?}");
    if st == MICRUN_OK {
        // SAFETY: written by the call.
        let rtos = unsafe { rtos.assume_init() };
        let mut n = 0;
        // SAFETY: as above.
        let st = unsafe { micrun_rtos_msg_encode(&rtos, out.as_mut_ptr(), cap, &mut n) };
        check_encoded(st, &out, n, |b| {
            RtosMsg::decode(b) == RtosMsg::decode(payload)
        });
    }
}

fn check_encoded(st: micrun_status, out: &[u8], n: usize, same: impl Fn(&[u8]) -> bool) {
    match st {
        MICRUN_OK => {
            assert!(n <= out.len());
            assert!(same(&out[..n]), "re-encoded message differs");
        }
        MICRUN_ERR_BUFFER_TOO_SHORT => assert!(n > out.len(), "asks {n}, had {}", out.len()),
        other => panic!("encoding a decoded message failed: {other:?}"),
    }
}

fn parse(frame: &[u8], cap: usize) {
    let mut hdr = micrun_frame_header::default();
    let mut payload = micrun_bytes {
        ptr: std::ptr::null(),
        len: 0,
    };
    // SAFETY: valid pointers and lengths.
    let st = unsafe { micrun_frame_parse(frame.as_ptr(), frame.len(), &mut hdr, &mut payload) };
    assert_eq!(st == MICRUN_OK, frame::open(frame).is_ok());
    if st == MICRUN_OK {
        let p = bytes_of(&payload);
        assert_eq!(p.len(), frame.len() - frame::OVERHEAD);
        decode(p, cap);
    }
}

/// Feeds `data` to a framer with `capacity` bytes of storage in `chunk`-byte
/// pieces; returns the frames it yields.
fn framer(data: &[u8], capacity: usize, chunk: usize) -> Vec<Vec<u8>> {
    let mut storage = vec![0u8; capacity];
    let mut f = MaybeUninit::<micrun_framer>::uninit();
    // SAFETY: valid pointers; capacity is the storage's size.
    let st = unsafe { micrun_framer_init(f.as_mut_ptr(), storage.as_mut_ptr(), capacity) };
    assert_eq!(st, MICRUN_OK);
    let mut frames = Vec::new();
    for mut piece in data.chunks(chunk) {
        while !piece.is_empty() {
            let mut used = 0;
            let mut out = micrun_bytes {
                ptr: std::ptr::null(),
                len: 0,
            };
            // SAFETY: the framer was initialised; valid pointers and lengths.
            let st = unsafe {
                micrun_framer_feed(
                    f.as_mut_ptr(),
                    piece.as_ptr(),
                    piece.len(),
                    &mut used,
                    &mut out,
                )
            };
            assert!(used >= 1 && used <= piece.len(), "{st:?} consumed {used}");
            piece = &piece[used..];
            if st == MICRUN_OK && out.len > 0 {
                assert!(out.len <= capacity);
                frames.push(bytes_of(&out).to_vec());
            }
        }
    }
    frames
}

fuzz_target!(|input: &[u8]| {
    // storage chunk cap[2] flags seq ack data...
    let [storage, chunk, cap0, cap1, flags, seq, ack, data @ ..] = input else {
        return;
    };
    let cap = usize::from(u16::from_le_bytes([*cap0, *cap1]) % 1024);
    let capacity = micrun::framer::MICRUN_FRAMER_STORAGE_MIN + 4 * usize::from(*storage);
    let chunk = usize::from(*chunk) + 1;

    let mut crc = 0;
    // SAFETY: valid pointers and lengths.
    assert_eq!(
        unsafe { micrun_crc16(data.as_ptr(), data.len(), &mut crc) },
        MICRUN_OK
    );
    assert_eq!(crc, frame::crc16(data));

    parse(data, cap);
    decode(data, cap);
    for f in framer(data, capacity, chunk) {
        parse(&f, cap);
    }

    // Build a frame around the input, stuff it, deframe it, parse it.
    let hdr = micrun_frame_header {
        flags: *flags,
        seq: *seq,
        ack: *ack,
    };
    let mut built = vec![0u8; cap];
    let mut n = 0;
    // SAFETY: valid pointers and lengths.
    let st = unsafe {
        micrun_frame_build(
            &hdr,
            data.as_ptr(),
            data.len(),
            built.as_mut_ptr(),
            cap,
            &mut n,
        )
    };
    if st != MICRUN_OK {
        return;
    }
    assert!(n <= cap && n == data.len() + frame::OVERHEAD);
    built.truncate(n);
    let mut wire = vec![0u8; n + n / 254 + 2];
    let mut w = 0;
    // SAFETY: valid pointers and lengths.
    let st =
        unsafe { micrun_wire_encode(built.as_ptr(), n, wire.as_mut_ptr(), wire.len(), &mut w) };
    assert_eq!(st, MICRUN_OK);
    assert!(w <= wire.len());
    let frames = framer(&wire[..w], capacity, chunk);
    if w - 1 <= capacity {
        assert_eq!(frames, vec![built.clone()], "the frame comes back whole");
        parse(&built, cap);
    }
});
