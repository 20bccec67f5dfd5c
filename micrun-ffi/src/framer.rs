//! The stream framer: turns the bytes of a byte-stream link (UART, pty, socket)
//! into checked frames, in storage the caller provides.
//!
//! It follows `micrun_proto::frame::Deframer` exactly (a unit test runs both on the
//! same streams): bytes collect up to a 0x00 delimiter, are COBS-decoded in place
//! and CRC-checked; back-to-back delimiters are ignored; a frame larger than the
//! storage is discarded up to its delimiter. Unlike the Deframer, whose storage is
//! a const generic, this one works in any buffer the C caller hands it, checks the
//! CRC itself, and counts every outcome.

use micrun_proto::frame::{self, FrameError, DELIMITER, OVERHEAD};

use crate::args::{self, Out};
use crate::message::micrun_bytes;
use crate::status::{
    entry, fail, micrun_status, Failed, MICRUN_ERR_COBS, MICRUN_ERR_CRC, MICRUN_ERR_FRAME_SHORT,
    MICRUN_ERR_INVALID_ARG, MICRUN_ERR_NULL, MICRUN_ERR_OVERSIZED,
};

/// Storage for a framer that accepts every frame the protocol allows: the COBS
/// form of MICRUN_FRAME_MAX bytes, without the delimiter.
pub const MICRUN_FRAMER_STORAGE: usize = 498;
/// The least storage a framer accepts: room for a MICRUN_SESSION_FRAME_MIN frame,
/// which every peer must be able to receive.
pub const MICRUN_FRAMER_STORAGE_MIN: usize = 97;

const _: () = {
    assert!(MICRUN_FRAMER_STORAGE == frame::cobs_max_len(frame::MAX_FRAME));
    assert!(MICRUN_FRAMER_STORAGE_MIN == frame::cobs_max_len(frame::MIN_FRAME));
};

/// Marks an initialised framer ("MCRF").
const MAGIC: u32 = 0x4d43_5246;

/// What a framer has seen since micrun_framer_init. Every delimiter that ends a
/// non-empty frame adds one to exactly one counter.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct micrun_framer_counters {
    /// Good frames returned.
    pub frames: u64,
    /// Discarded: not valid COBS.
    pub cobs_errors: u64,
    /// Discarded: decoded to fewer than MICRUN_FRAME_OVERHEAD bytes.
    pub short_frames: u64,
    /// Discarded: CRC mismatch.
    pub crc_errors: u64,
    /// Discarded: longer than the storage.
    pub oversized: u64,
}

/// A stream framer. Declare one (on the stack, statically, anywhere), set it up
/// with micrun_framer_init and use it through the micrun_framer_* functions only;
/// read `counters` at will. The other fields are private.
#[repr(C)]
#[derive(Debug)]
pub struct micrun_framer {
    /// Read-only for the caller.
    pub counters: micrun_framer_counters,
    /// Private: the storage given to micrun_framer_init.
    pub storage: *mut u8,
    /// Private: its size.
    pub capacity: usize,
    /// Private: bytes of the current frame collected so far.
    pub len: usize,
    /// Private: the current frame has outgrown the storage.
    pub overflow: bool,
    /// Private: set by micrun_framer_init.
    pub magic: u32,
}

/// What one delimiter (or the end of the input) produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// All input consumed without reaching the end of a frame.
    NeedMore,
    /// A checked frame of this length at the start of the storage.
    Frame(usize),
    /// A discarded frame.
    Bad(FrameError),
}

impl micrun_framer {
    /// Consumes input up to and including the next delimiter that ends a
    /// non-empty frame, or all of it. Returns the bytes consumed and the outcome.
    fn push(&mut self, storage: &mut [u8], input: &[u8]) -> (usize, Outcome) {
        let mut used = 0;
        while used < input.len() {
            let rest = &input[used..];
            let (chunk, delimited) = match rest.iter().position(|&b| b == DELIMITER) {
                Some(i) => (&rest[..i], true),
                None => (rest, false),
            };
            used += chunk.len() + usize::from(delimited);
            let room = storage.len() - self.len;
            if chunk.len() > room {
                self.overflow = true;
            }
            let take = chunk.len().min(room);
            storage[self.len..self.len + take].copy_from_slice(&chunk[..take]);
            self.len += take;
            if !delimited {
                break;
            }
            let (len, overflow) = (self.len, self.overflow);
            self.len = 0;
            self.overflow = false;
            if overflow {
                self.counters.oversized += 1;
                return (used, Outcome::Bad(FrameError::Oversized));
            }
            if len == 0 {
                // Back-to-back delimiters: resynchronisation or line noise.
                continue;
            }
            let outcome = match frame::cobs_decode_in_place(storage, len) {
                Err(e) => {
                    self.counters.cobs_errors += 1;
                    Outcome::Bad(e)
                }
                Ok(n) if n < OVERHEAD => {
                    self.counters.short_frames += 1;
                    Outcome::Bad(FrameError::Short)
                }
                Ok(n) => match frame::open(&storage[..n]) {
                    Ok(_) => {
                        self.counters.frames += 1;
                        Outcome::Frame(n)
                    }
                    Err(e) => {
                        self.counters.crc_errors += 1;
                        Outcome::Bad(e)
                    }
                },
            };
            return (used, outcome);
        }
        (used, Outcome::NeedMore)
    }
}

/// The caller's framer, checked to be one micrun_framer_init set up.
///
/// # Safety
/// `f` must be valid for reads and writes of a `micrun_framer`, and not used
/// elsewhere during the call.
unsafe fn checked_framer<'a>(f: *mut micrun_framer) -> Result<&'a mut micrun_framer, Failed> {
    let p = args::input(f as *const micrun_framer, "framer")?;
    // SAFETY: non-NULL, aligned; readable and writable per the contract. The
    // fields are plain integers, a pointer and a bool; the bool is read as a byte
    // first so that an uninitialised framer is rejected rather than misread.
    unsafe {
        let magic = core::ptr::addr_of!((*p.as_ptr()).magic).read();
        let overflow = core::ptr::addr_of!((*p.as_ptr()).overflow)
            .cast::<u8>()
            .read();
        if magic != MAGIC || overflow > 1 {
            return Err(not_initialised());
        }
        let f = &mut *p.as_ptr();
        if f.storage.is_null()
            || f.capacity < MICRUN_FRAMER_STORAGE_MIN
            || f.capacity > isize::MAX as usize
            || f.len > f.capacity
        {
            return Err(not_initialised());
        }
        Ok(f)
    }
}

fn not_initialised() -> Failed {
    fail!(
        MICRUN_ERR_INVALID_ARG,
        "framer is not initialised (call micrun_framer_init) or was overwritten"
    )
}

/// Sets up `*framer` to collect frames in `capacity` bytes at `storage`
/// (MICRUN_FRAMER_STORAGE for any frame the protocol allows; at least
/// MICRUN_FRAMER_STORAGE_MIN). The storage belongs to the framer until it is no
/// longer used; the framer holds no other resources, so there is nothing to free.
/// Counters start at zero.
///
/// # Safety
/// `framer` must be valid for a write; `storage` valid for `capacity` bytes for as
/// long as the framer is used, and not touched by anything else meanwhile.
#[no_mangle]
pub unsafe extern "C" fn micrun_framer_init(
    framer: *mut micrun_framer,
    storage: *mut u8,
    capacity: usize,
) -> micrun_status {
    entry("micrun_framer_init", || {
        let out = Out::new(framer, "framer")?;
        if storage.is_null() {
            return Err(fail!(MICRUN_ERR_NULL, "storage is NULL"));
        }
        if !(MICRUN_FRAMER_STORAGE_MIN..=isize::MAX as usize).contains(&capacity) {
            return Err(fail!(
                MICRUN_ERR_INVALID_ARG,
                "capacity {capacity} is below MICRUN_FRAMER_STORAGE_MIN ({MICRUN_FRAMER_STORAGE_MIN})"
            ));
        }
        if args::overlap(
            storage,
            capacity,
            framer as *const u8,
            core::mem::size_of::<micrun_framer>(),
        ) {
            return Err(fail!(
                MICRUN_ERR_INVALID_ARG,
                "storage overlaps the framer struct"
            ));
        }
        // SAFETY: checked non-NULL and aligned; writable per the contract.
        unsafe {
            out.set(micrun_framer {
                counters: micrun_framer_counters::default(),
                storage,
                capacity,
                len: 0,
                overflow: false,
                magic: MAGIC,
            })
        };
        Ok(())
    })
}

/// Feeds `len` bytes from the link. Consumes them up to the end of the next
/// complete frame (or all of them) and stores the count in `*consumed`; call
/// again with the rest. Outcomes:
/// - MICRUN_OK with `frame->len > 0`: a complete frame whose CRC checked, ready
///   for micrun_frame_parse. It lies in the framer's storage and is valid until the
///   next micrun_framer_feed or micrun_framer_reset on this framer.
/// - MICRUN_OK with `frame->len == 0`: all input consumed, no frame complete yet.
/// - MICRUN_ERR_COBS, MICRUN_ERR_FRAME_SHORT, MICRUN_ERR_CRC, MICRUN_ERR_OVERSIZED:
///   a frame was discarded (and counted); the framer is in sync again after its
///   delimiter, so go on with the rest of the input.
/// - MICRUN_ERR_NULL, MICRUN_ERR_INVALID_ARG: bad arguments; nothing consumed.
///
/// # Safety
/// `framer` must have been set up by micrun_framer_init (its storage still valid)
/// and not be used by another thread during the call; `data` valid for `len` bytes
/// and not inside the framer's storage; `consumed` and `frame` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn micrun_framer_feed(
    framer: *mut micrun_framer,
    data: *const u8,
    len: usize,
    consumed: *mut usize,
    frame: *mut micrun_bytes,
) -> micrun_status {
    entry("micrun_framer_feed", || {
        let consumed = Out::new(consumed, "consumed")?;
        let out = Out::new(frame, "frame")?;
        // SAFETY: checked non-NULL and aligned; writable per the contract.
        unsafe {
            consumed.set(0);
            out.set(micrun_bytes::EMPTY);
        }
        // SAFETY: the contract on framer.
        let f = unsafe { checked_framer(framer)? };
        if args::overlap(data, len, f.storage, f.capacity) {
            return Err(fail!(
                MICRUN_ERR_INVALID_ARG,
                "data lies inside the framer's storage"
            ));
        }
        // SAFETY: the contract on data.
        let input = unsafe { args::bytes(data, len, "data")? };
        // SAFETY: checked by framer(); the storage belongs to the framer and does
        // not overlap the input (checked above).
        let storage = unsafe { core::slice::from_raw_parts_mut(f.storage, f.capacity) };
        let (used, outcome) = f.push(storage, input);
        // SAFETY: as above.
        unsafe { consumed.set(used) };
        match outcome {
            Outcome::NeedMore => Ok(()),
            Outcome::Frame(n) => {
                // SAFETY: as above.
                unsafe { out.set(micrun_bytes::of(&storage[..n])) };
                Ok(())
            }
            Outcome::Bad(e) => Err(bad_frame(e, f)),
        }
    })
}

fn bad_frame(e: FrameError, f: &micrun_framer) -> Failed {
    let c = f.counters;
    let discarded = c.cobs_errors + c.short_frames + c.crc_errors + c.oversized;
    match e {
        FrameError::Cobs => fail!(
            MICRUN_ERR_COBS,
            "discarded a frame with invalid COBS stuffing ({discarded} discarded so far)"
        ),
        FrameError::Oversized => fail!(
            MICRUN_ERR_OVERSIZED,
            "discarded a frame longer than the {}-byte storage ({discarded} discarded so far)",
            f.capacity
        ),
        FrameError::Short => fail!(
            MICRUN_ERR_FRAME_SHORT,
            "discarded a frame shorter than header + CRC ({discarded} discarded so far)"
        ),
        FrameError::Crc => fail!(
            MICRUN_ERR_CRC,
            "discarded a frame whose CRC does not match ({discarded} discarded so far)"
        ),
    }
}

/// Drops a partly received frame (for instance when the link is reopened). The
/// counters are kept.
///
/// # Safety
/// As micrun_framer_feed.
#[no_mangle]
pub unsafe extern "C" fn micrun_framer_reset(framer: *mut micrun_framer) -> micrun_status {
    entry("micrun_framer_reset", || {
        // SAFETY: the contract on framer.
        let f = unsafe { checked_framer(framer)? };
        f.len = 0;
        f.overflow = false;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{last_error, MICRUN_ERR_CRC, MICRUN_OK};
    use micrun_proto::frame::Deframer;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn new_framer(storage: &mut [u8]) -> micrun_framer {
        let mut f = core::mem::MaybeUninit::<micrun_framer>::uninit();
        // SAFETY: valid pointers; init writes the whole struct.
        let st = unsafe { micrun_framer_init(f.as_mut_ptr(), storage.as_mut_ptr(), storage.len()) };
        assert_eq!(st, MICRUN_OK, "{}", last_error());
        // SAFETY: initialised by micrun_framer_init.
        unsafe { f.assume_init() }
    }

    /// Feeds `input` in one call per outcome; returns every outcome as the
    /// frame bytes or the status.
    fn feed_all(f: &mut micrun_framer, mut input: &[u8]) -> Vec<Result<Vec<u8>, micrun_status>> {
        let mut out = Vec::new();
        while !input.is_empty() {
            let mut used = 0;
            let mut fr = micrun_bytes::EMPTY;
            // SAFETY: valid pointers; the input is not in the storage.
            let st =
                unsafe { micrun_framer_feed(f, input.as_ptr(), input.len(), &mut used, &mut fr) };
            assert!(used <= input.len());
            input = &input[used..];
            match st {
                MICRUN_OK if fr.len == 0 => assert!(input.is_empty()),
                // SAFETY: the frame lies in the storage until the next feed.
                MICRUN_OK => out.push(Ok(
                    unsafe { core::slice::from_raw_parts(fr.ptr, fr.len) }.to_vec()
                )),
                other => {
                    assert!(!last_error().is_empty());
                    out.push(Err(other))
                }
            }
        }
        out
    }

    /// The same stream through micrun_proto's Deframer plus frame::open.
    fn reference<const N: usize>(mut input: &[u8]) -> Vec<Result<Vec<u8>, micrun_status>> {
        let mut d = Deframer::<N>::new();
        let mut out = Vec::new();
        while !input.is_empty() {
            let (used, res) = d.push(input);
            input = &input[used..];
            match res {
                None => {}
                Some(Ok(n)) => match frame::open(d.frame(n)) {
                    Ok(_) => out.push(Ok(d.frame(n).to_vec())),
                    Err(_) => out.push(Err(MICRUN_ERR_CRC)),
                },
                Some(Err(FrameError::Cobs)) => out.push(Err(MICRUN_ERR_COBS)),
                Some(Err(FrameError::Short)) => out.push(Err(MICRUN_ERR_FRAME_SHORT)),
                Some(Err(FrameError::Oversized)) => out.push(Err(MICRUN_ERR_OVERSIZED)),
                Some(Err(FrameError::Crc)) => unreachable!("the Deframer does not check CRCs"),
            }
        }
        out
    }

    fn wire(payload_len: usize, rng: &mut Rng) -> Vec<u8> {
        let mut f = vec![1u8, rng.next() as u8, rng.next() as u8];
        f.extend((0..payload_len).map(|_| {
            if rng.below(4) == 0 {
                0
            } else {
                rng.next() as u8
            }
        }));
        let n = f.len();
        f.extend([0, 0]);
        frame::seal(&mut f, n);
        let mut w = vec![0u8; frame::wire_len(f.len()) + f.len()];
        let start = f.len() / 254 + 1;
        w[start..start + f.len()].copy_from_slice(&f);
        let wn = frame::cobs_encode_in_place(&mut w, start, f.len());
        w.truncate(wn);
        w
    }

    #[test]
    fn same_outcomes_as_the_proto_deframer() {
        const N: usize = MICRUN_FRAMER_STORAGE_MIN;
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..300 {
            let mut stream = Vec::new();
            for _ in 0..rng.below(12) {
                match rng.below(5) {
                    0 => stream.extend((0..rng.below(40)).map(|_| rng.next() as u8)),
                    1 => stream.push(0),
                    2 => {
                        // A good frame with one byte flipped.
                        let mut w = wire(rng.below(150), &mut rng);
                        let i = rng.below(w.len() - 1);
                        w[i] ^= 1 << rng.below(8);
                        stream.extend(w);
                    }
                    _ => stream.extend(wire(rng.below(150), &mut rng)),
                }
            }
            let mut storage = [0u8; N];
            let mut f = new_framer(&mut storage);
            let ours = feed_all(&mut f, &stream);
            assert_eq!(ours, reference::<N>(&stream), "round {round}");
            let c = f.counters;
            let total = c.frames + c.cobs_errors + c.short_frames + c.crc_errors + c.oversized;
            assert_eq!(total as usize, ours.len());
            assert_eq!(c.frames as usize, ours.iter().filter(|o| o.is_ok()).count());
        }
    }

    #[test]
    fn byte_by_byte_and_all_at_once_agree() {
        let mut rng = Rng(42);
        let mut stream = vec![7, 7, 0];
        for _ in 0..20 {
            stream.extend(wire(rng.below(491), &mut rng));
        }
        let mut s1 = [0u8; MICRUN_FRAMER_STORAGE];
        let mut f1 = new_framer(&mut s1);
        let whole = feed_all(&mut f1, &stream);
        let mut s2 = [0u8; MICRUN_FRAMER_STORAGE];
        let mut f2 = new_framer(&mut s2);
        let mut split = Vec::new();
        for b in &stream {
            split.extend(feed_all(&mut f2, core::slice::from_ref(b)));
        }
        assert_eq!(whole, split);
        assert_eq!(whole.len(), 21);
        assert_eq!(f1.counters, f2.counters);
        assert_eq!((f1.counters.frames, f1.counters.cobs_errors), (20, 1));
    }

    #[test]
    fn garbage_is_counted_and_the_next_frame_gets_through() {
        let mut storage = [0u8; MICRUN_FRAMER_STORAGE_MIN];
        let mut f = new_framer(&mut storage);
        let mut rng = Rng(7);
        let good = wire(10, &mut rng);
        let mut stream = vec![0x11; 300]; // oversized garbage, then its delimiter
        stream.push(0);
        stream.extend(&good);
        let out = feed_all(&mut f, &stream);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], Err(MICRUN_ERR_OVERSIZED));
        assert!(out[1].is_ok());
        assert_eq!(f.counters.oversized, 1);
        // A partial frame dropped by reset does not spoil the next one.
        let _ = feed_all(&mut f, &good[..5]);
        // SAFETY: an initialised framer.
        assert_eq!(unsafe { micrun_framer_reset(&mut f) }, MICRUN_OK);
        assert_eq!(feed_all(&mut f, &good), vec![out[1].clone()]);
    }

    #[test]
    fn uninitialised_or_misused_framers_are_rejected() {
        let mut storage = [0u8; MICRUN_FRAMER_STORAGE];
        let mut used = 0;
        let mut fr = micrun_bytes::EMPTY;
        // SAFETY (all): pointers valid or NULL as each case says.
        unsafe {
            let mut zeroed: micrun_framer = core::mem::zeroed();
            assert_eq!(
                micrun_framer_feed(&mut zeroed, [0u8].as_ptr(), 1, &mut used, &mut fr),
                MICRUN_ERR_INVALID_ARG
            );
            assert!(last_error().contains("not initialised"));
            let mut f = core::mem::MaybeUninit::<micrun_framer>::uninit();
            assert_eq!(
                micrun_framer_init(f.as_mut_ptr(), storage.as_mut_ptr(), 10),
                MICRUN_ERR_INVALID_ARG
            );
            assert_eq!(
                micrun_framer_init(f.as_mut_ptr(), core::ptr::null_mut(), 500),
                MICRUN_ERR_NULL
            );
            assert_eq!(
                micrun_framer_init(core::ptr::null_mut(), storage.as_mut_ptr(), 500),
                MICRUN_ERR_NULL
            );
            let mut f = new_framer(&mut storage);
            let inside = f.storage.add(3);
            assert_eq!(
                micrun_framer_feed(&mut f, inside, 4, &mut used, &mut fr),
                MICRUN_ERR_INVALID_ARG
            );
            assert_eq!(
                micrun_framer_feed(&mut f, core::ptr::null(), 4, &mut used, &mut fr),
                MICRUN_ERR_NULL
            );
            f.len = f.capacity + 1;
            assert_eq!(
                micrun_framer_feed(&mut f, [0u8].as_ptr(), 1, &mut used, &mut fr),
                MICRUN_ERR_INVALID_ARG
            );
        }
    }
}
