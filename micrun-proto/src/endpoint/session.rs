//! The part both endpoints share: sequence numbers, cumulative acknowledgements,
//! go-back-N retransmission with back-off, console streams under credit-based flow
//! control, and the queue of control messages.
//!
//! Every sequenced frame occupies one [`Slot`] until the peer acknowledges it. A slot
//! describes how to rebuild the frame (a control message at the front of the queue,
//! a range of a console ring, a credit grant), so a retransmission replays exactly
//! the bytes first sent without keeping a copy of the frame.

use core::mem::MaybeUninit;
use core::ptr::addr_of_mut;

use crate::init::field;
use crate::queue::{Item, Queue};

use crate::frame::{self, Header, HEADER_LEN, OVERHEAD};
use crate::msg::{CodecError, Stream};
use crate::ring::Ring;

/// Encodes one side's messages; implemented by the host and RTOS roles.
pub(crate) trait Role {
    /// A queued control message (owned, small).
    type Ctrl: Item + core::fmt::Debug;
    /// Side storage that control messages may refer to (the RTOS keeps the text of
    /// its one pending log line here instead of in every queue entry).
    type Extra: Default + core::fmt::Debug;
    /// How this side stores a deadline.
    type At: Deadline;
    /// Writes a new `Extra` (its `default()`) where it stays.
    fn init_extra(slot: &mut MaybeUninit<Self::Extra>) {
        slot.write(Self::Extra::default());
    }
    /// Streams this side sends, by index: consecutive wire values from
    /// `TX_FIRST` (test `stream_indices`), so a stream's index is a
    /// subtraction, not a search.
    const TX: &'static [Stream];
    const TX_FIRST: Stream;
    /// Streams this side receives, by index.
    const RX: &'static [Stream];
    fn encode_ctrl(
        c: &Self::Ctrl,
        extra: &Self::Extra,
        buf: &mut [u8],
    ) -> Result<usize, CodecError>;
    /// The console message carrying `len` bytes of `stream`, up to its data
    /// (which follows it on the wire, taken straight from the ring).
    fn encode_data_head(stream: Stream, len: usize, buf: &mut [u8]) -> Result<usize, CodecError>;
    fn encode_credit(stream: Stream, bytes: u32, buf: &mut [u8]) -> Result<usize, CodecError>;
    /// Whether `c` must wait until every console byte written before it was sent
    /// (so an exit report never overtakes the output that preceded it).
    fn after_output(c: &Self::Ctrl) -> bool;
}

/// A time in milliseconds, stored 4-aligned: a `u64` field is 8-aligned on
/// 32-bit targets and pads every structure around it.
#[derive(Debug, Clone, Copy)]
#[repr(C, packed(4))]
pub(crate) struct Ms(pub u64);

/// A stored deadline, from the callers' `u64` milliseconds.
pub(crate) trait Deadline: Copy + core::fmt::Debug {
    /// `ms` after `now`.
    fn after(now: u64, ms: u32) -> Self;
    /// Whether `now` is at or past it.
    fn reached(self, now: u64) -> bool;
}

impl Deadline for Ms {
    fn after(now: u64, ms: u32) -> Self {
        Ms(now + u64::from(ms))
    }
    fn reached(self, now: u64) -> bool {
        now >= self.0
    }
}

/// A deadline as the low 32 bits of the millisecond clock, compared with
/// wrapping arithmetic: one word instead of two, in RAM and in every
/// computation on a 32-bit RTOS. Exact while the deadline is less than
/// 2³¹ ms (≈ 24.8 days) from the time it is compared with: every interval
/// is at most [`MAX_WAIT_MS`], and the clock moves on with every poll.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wrap(pub u32);

/// The longest wait a [`Wrap`] deadline can express.
pub(crate) const MAX_WAIT_MS: u32 = i32::MAX as u32;

impl Wrap {
    /// Milliseconds from `now` to the deadline; negative once it is past.
    fn from(self, now: u64) -> i32 {
        self.0.wrapping_sub(now as u32) as i32
    }

    /// The deadline on the caller's `u64` clock, near `now`.
    pub(crate) fn to_u64(self, now: u64) -> u64 {
        now.wrapping_add_signed(i64::from(self.from(now)))
    }
}

impl Deadline for Wrap {
    fn after(now: u64, ms: u32) -> Self {
        Wrap((now as u32).wrapping_add(ms))
    }
    fn reached(self, now: u64) -> bool {
        self.from(now) <= 0
    }
}

/// Bytes a console message adds around its data: variant, stream, length varint.
pub(crate) const DATA_MSG_OVERHEAD: usize = 4;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Slot {
    Ctrl,
    Data { stream: u8, start: u32, len: u16 },
    Credit { stream: u8, bytes: u32 },
}

impl Item for Slot {
    const FILL: Slot = Slot::Ctrl;
}

#[derive(Debug)]
struct TxStream<const N: usize> {
    ring: Ring<N>,
    /// Bytes before this position have been sent at least once.
    sent: u32,
    /// Bytes the peer can still take.
    credit: u32,
}

#[derive(Debug)]
struct RxStream<const N: usize> {
    ring: Ring<N>,
    /// Stream position up to which the peer has been allowed to send.
    granted: u32,
}

/// Retransmission timing, from the endpoint's configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    rto_initial_ms: u16,
    rto_max_ms: u16,
}

impl Timing {
    /// From a configuration: at least 1 ms, the maximum at least the initial
    /// timeout, both at most 65535 ms (`u16`: two words less of RAM per session).
    pub(crate) fn new(rto_initial_ms: u32, rto_max_ms: u32) -> Self {
        let initial = rto_initial_ms.clamp(1, u32::from(u16::MAX));
        let max = rto_max_ms.clamp(initial, u32::from(u16::MAX));
        Timing {
            rto_initial_ms: initial as u16,
            rto_max_ms: max as u16,
        }
    }
}

/// Counters of discarded or repeated traffic. They only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames dropped for a CRC mismatch.
    pub crc_errors: u32,
    /// Frames dropped for invalid COBS stuffing or a length below the header.
    pub malformed_frames: u32,
    /// Frames longer than the receive buffer.
    pub oversized_frames: u32,
    /// Valid frames whose payload is not a message we know (acknowledged, dropped).
    pub unknown_messages: u32,
    /// Sequenced frames received again (already delivered) or out of order.
    pub duplicates: u32,
    /// Retransmission rounds.
    pub retransmits: u32,
    /// Console bytes the peer sent beyond the credit it had (dropped).
    pub credit_violations: u32,
    /// Frames that made no sense in the current state (e.g. data before the handshake).
    pub unexpected: u32,
}

impl Counters {
    /// Total frames or bytes rejected for any reason other than repetition.
    pub fn errors(&self) -> u32 {
        self.crc_errors
            .saturating_add(self.malformed_frames)
            .saturating_add(self.oversized_frames)
            .saturating_add(self.unknown_messages)
            .saturating_add(self.credit_violations)
    }
}

/// Counts one more; counters saturate instead of wrapping (a peer can send 2³²
/// bad frames, and a debug build must not panic on it). Not inlined: one copy
/// for the dozen counting sites.
#[inline(never)]
pub(crate) fn bump(counter: &mut u32) {
    *counter = counter.saturating_add(1);
}

/// What to do with a received sequenced frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeqVerdict {
    /// In order: deliver it, then call [`Session::accept_seq`].
    Deliver,
    /// Already delivered or out of order: drop it (an ack is scheduled).
    Drop,
}

#[derive(Debug)]
pub(crate) struct Session<
    R: Role,
    const NTX: usize,
    const TXN: usize,
    const NRX: usize,
    const RXN: usize,
    const Q: usize,
    const W: usize,
> {
    tx: [TxStream<TXN>; NTX],
    rx: [RxStream<RXN>; NRX],
    ctrl: Queue<R::Ctrl, Q>,
    pub(crate) extra: R::Extra,
    /// In-flight sequenced frames, oldest first; `slots[i]` has seq `una + i`.
    slots: Queue<Slot, W>,
    una: u8,
    /// Slots before this index were (re)sent in the current round.
    replay: u8,
    rx_expected: u8,
    ack_pending: bool,
    rto_ms: u16,
    /// When the oldest frame in flight is due again; meaningless when none
    /// is in flight (set when the first slot is taken, not an `Option`).
    retransmit_at: R::At,
    timing: Timing,
    next_tx_stream: u8,
    pub counters: Counters,
}

impl<
        R: Role,
        const NTX: usize,
        const TXN: usize,
        const NRX: usize,
        const RXN: usize,
        const Q: usize,
        const W: usize,
    > Session<R, NTX, TXN, NRX, RXN, Q, W>
{
    #[allow(unsafe_code)]
    pub(crate) fn new(timing: Timing) -> Self {
        // SAFETY: `init::new` hands over zero bytes, which `init_zeroed`
        // turns into a session.
        unsafe { crate::init::new(|slot| Self::init_zeroed(slot, timing)) }
    }

    /// A new session where it stays, over zero bytes (see `crate::init`):
    /// its queues and the role's storage by their own initialisers, the
    /// timing; the rest is zero bytes already: the rings (empty), the
    /// streams' positions and credits, the sequence numbers, the flags and
    /// the counters (all integers and `bool`s, 0 and `false` at the start).
    ///
    /// # Safety
    /// `slot` holds zero bytes.
    #[allow(unsafe_code)]
    pub(crate) unsafe fn init_zeroed(slot: &mut MaybeUninit<Self>, timing: Timing) {
        let p = slot.as_mut_ptr();
        // SAFETY: `p` is valid for writes of a session (from the `&mut`) and
        // its bytes are zero (the caller's guarantee), which the fields left
        // here are validly (integers, `bool`s, byte arrays and structs of
        // them). The parts handed to their initialisers (`field`) are
        // disjoint fields of zero bytes, each borrowed only for its
        // initialiser's call; the streams of the two arrays one by one
        // (indices below the arrays' lengths).
        unsafe {
            let tx = addr_of_mut!((*p).tx).cast::<TxStream<TXN>>();
            for i in 0..NTX {
                Ring::init_zeroed(field(addr_of_mut!((*tx.add(i)).ring)));
            }
            let rx = addr_of_mut!((*p).rx).cast::<RxStream<RXN>>();
            for i in 0..NRX {
                Ring::init_zeroed(field(addr_of_mut!((*rx.add(i)).ring)));
            }
            Queue::init_zeroed(field(addr_of_mut!((*p).ctrl)));
            R::init_extra(field(addr_of_mut!((*p).extra)));
            Queue::init_zeroed(field(addr_of_mut!((*p).slots)));
            addr_of_mut!((*p).rto_ms).write(timing.rto_initial_ms);
            addr_of_mut!((*p).retransmit_at).write(R::At::after(0, 0));
            addr_of_mut!((*p).timing).write(timing);
        }
    }

    /// Starts a new session with the peer: sequence numbers restart at 0, nothing is
    /// in flight, the peer's credits are gone. Unacknowledged console bytes and
    /// control messages stay queued and go out again in the new session.
    pub(crate) fn restart(&mut self) {
        self.slots.clear();
        self.una = 0;
        self.replay = 0;
        self.rx_expected = 0;
        self.ack_pending = false;
        self.rto_ms = self.timing.rto_initial_ms;
        for s in &mut self.tx {
            s.sent = s.ring.tail();
            s.credit = 0;
        }
        for s in &mut self.rx {
            s.granted = s.ring.head();
        }
    }

    fn tx_index(stream: Stream) -> Option<usize> {
        let i = (stream as usize).wrapping_sub(R::TX_FIRST as usize);
        (i < R::TX.len()).then_some(i)
    }

    fn rx_index(stream: Stream) -> Option<usize> {
        R::RX.iter().position(|&s| s == stream)
    }

    // ---- application side -------------------------------------------------------

    /// Not inlined: one copy for the application's writes to every stream.
    #[inline(never)]
    pub(crate) fn write(&mut self, stream: Stream, data: &[u8]) -> usize {
        match Self::tx_index(stream) {
            Some(i) => self.tx[i].ring.push(data),
            None => 0,
        }
    }

    pub(crate) fn tx_free(&self, stream: Stream) -> usize {
        Self::tx_index(stream).map_or(0, |i| self.tx[i].ring.free())
    }

    /// Bytes written but not yet acknowledged by the peer, over all streams.
    pub(crate) fn tx_unacked(&self) -> usize {
        self.tx.iter().map(|s| s.ring.len()).sum()
    }

    pub(crate) fn read(&mut self, stream: Stream, out: &mut [u8]) -> usize {
        match Self::rx_index(stream) {
            Some(i) => self.rx[i].ring.pop(out),
            None => 0,
        }
    }

    /// `stream`'s received bytes that lie contiguous, in place (see `Ring::take`).
    pub(crate) fn take(&mut self, stream: Stream) -> &[u8] {
        match Self::rx_index(stream) {
            Some(i) => self.rx[i].ring.take(),
            None => &[],
        }
    }

    pub(crate) fn readable(&self, stream: Stream) -> usize {
        Self::rx_index(stream).map_or(0, |i| self.rx[i].ring.len())
    }

    /// Not inlined: every kind of control message is queued through this one copy.
    #[inline(never)]
    /// `false` when the queue is full.
    pub(crate) fn queue_ctrl(&mut self, c: R::Ctrl) -> bool {
        self.ctrl.push_back(c).is_ok()
    }

    /// Whether a queued (unacknowledged) control message matches `f`.
    pub(crate) fn ctrl_queued(&self, f: impl Fn(&R::Ctrl) -> bool) -> bool {
        (0..self.ctrl.len()).any(|i| self.ctrl.get(i).is_some_and(&f))
    }

    pub(crate) fn ctrl_free(&self) -> usize {
        Q - self.ctrl.len()
    }

    /// Nothing queued, nothing in flight.
    pub(crate) fn is_flushed(&self) -> bool {
        self.slots.is_empty() && self.ctrl.is_empty() && self.tx_unacked() == 0
    }

    // ---- receive side -----------------------------------------------------------

    /// Processes the cumulative acknowledgement carried by every frame.
    pub(crate) fn on_ack(&mut self, ack: u8, now: u64) {
        let n = ack.wrapping_sub(self.una) as usize;
        if n == 0 || n > self.slots.len() {
            return;
        }
        for _ in 0..n {
            match self.slots.pop_front() {
                Some(Slot::Ctrl) => self.ctrl.drop_front(),
                Some(Slot::Data { stream, len, .. }) => {
                    if let Some(s) = self.tx.get_mut(usize::from(stream)) {
                        s.ring.consume(usize::from(len));
                    }
                }
                Some(Slot::Credit { .. }) | None => {}
            }
        }
        self.una = ack;
        self.replay = self.replay.saturating_sub(n as u8);
        self.rto_ms = self.timing.rto_initial_ms;
        self.arm(now);
    }

    pub(crate) fn check_seq(&mut self, seq: u8) -> SeqVerdict {
        self.ack_pending = true;
        if seq == self.rx_expected {
            SeqVerdict::Deliver
        } else {
            bump(&mut self.counters.duplicates);
            SeqVerdict::Drop
        }
    }

    /// Whether `seq` is the next in-order sequence number.
    pub(crate) fn expects(&self, seq: u8) -> bool {
        seq == self.rx_expected
    }

    pub(crate) fn accept_seq(&mut self) {
        self.rx_expected = self.rx_expected.wrapping_add(1);
    }

    /// Room to take a console message of `len` bytes on `stream` without
    /// exceeding what was granted. Data beyond the grant is a protocol violation.
    pub(crate) fn ingest(&mut self, stream: Stream, data: &[u8]) {
        let Some(i) = Self::rx_index(stream) else {
            bump(&mut self.counters.unexpected);
            return;
        };
        let s = &mut self.rx[i];
        let allowed = s.granted.wrapping_sub(s.ring.head()) as usize;
        let allowed = allowed.min(s.ring.free());
        let n = data.len().min(allowed);
        s.ring.push(&data[..n]);
        if n < data.len() {
            self.counters.credit_violations = self
                .counters
                .credit_violations
                .saturating_add((data.len() - n) as u32);
        }
    }

    pub(crate) fn add_credit(&mut self, stream: Stream, bytes: u32) {
        match Self::tx_index(stream) {
            Some(i) => {
                let s = &mut self.tx[i];
                // A peer cannot grant more than fits in a u32 window.
                s.credit = s.credit.saturating_add(bytes);
            }
            None => bump(&mut self.counters.unexpected),
        }
    }

    // ---- timers -----------------------------------------------------------------

    /// The retransmission deadline, while a frame is in flight.
    pub(crate) fn poll_timeout(&self) -> Option<R::At> {
        (!self.slots.is_empty()).then_some(self.retransmit_at)
    }

    /// Starts the retransmission timer at `now` (one timeout).
    fn arm(&mut self, now: u64) {
        self.retransmit_at = R::At::after(now, u32::from(self.rto_ms));
    }

    pub(crate) fn handle_timeout(&mut self, now: u64) {
        if !self.slots.is_empty() && self.retransmit_at.reached(now) {
            self.replay = 0;
            self.rto_ms = (self.rto_ms.saturating_mul(2)).min(self.timing.rto_max_ms);
            self.arm(now);
            bump(&mut self.counters.retransmits);
        }
    }

    // ---- transmit side ----------------------------------------------------------

    /// Credit to grant on `rx[i]` now, if worth a message: a quarter of the ring, or
    /// everything once the reader has drained it.
    fn grant_due(&self, i: usize) -> u32 {
        let s = &self.rx[i];
        let edge = s.ring.tail().wrapping_add(RXN as u32);
        let due = edge.wrapping_sub(s.granted);
        if due as usize >= (RXN / 4).max(1) || (due > 0 && s.ring.len() == 0) {
            due
        } else {
            0
        }
    }

    fn in_flight_ctrl(&self) -> usize {
        self.ctrl_before(self.slots.len())
    }

    /// Control messages among the first `n` slots in flight: the index in the
    /// control queue of the message a `Slot::Ctrl` at position `n` carries. One
    /// out-of-line function for the replay and the new-frame paths.
    #[inline(never)]
    fn ctrl_before(&self, n: usize) -> usize {
        (0..n)
            .filter(|&i| matches!(self.slots.get(i), Some(Slot::Ctrl)))
            .count()
    }

    fn output_pending(&self) -> bool {
        self.tx.iter().any(|s| s.sent != s.ring.head())
    }

    /// Writes the payload of `slot` into `buf`; for console data only its head
    /// (the bytes are [`Session::slot_data`]).
    fn encode_slot(
        &self,
        slot: Slot,
        ctrl_index: usize,
        buf: &mut [u8],
    ) -> Result<usize, CodecError> {
        match slot {
            Slot::Ctrl => match self.ctrl.get(ctrl_index) {
                Some(c) => R::encode_ctrl(c, &self.extra, buf),
                None => Err(CodecError::Malformed),
            },
            // Slots are built with indices of existing streams: `get`, not
            // indexing, keeps the panic paths out.
            Slot::Data { stream, start, len } => {
                let _ = start;
                match R::TX.get(usize::from(stream)) {
                    Some(&id) => R::encode_data_head(id, usize::from(len), buf),
                    None => Err(CodecError::Malformed),
                }
            }
            Slot::Credit { stream, bytes } => match R::RX.get(usize::from(stream)) {
                Some(&id) => R::encode_credit(id, bytes, buf),
                None => Err(CodecError::Malformed),
            },
        }
    }

    /// Builds the next sequenced frame, or a pure acknowledgement, into `buf` (raw,
    /// before COBS). `max_frame` is the negotiated frame size. Returns the length.
    pub(crate) fn next_frame(
        &mut self,
        buf: &mut [u8],
        max_frame: usize,
        now: u64,
    ) -> Option<usize> {
        let (n, slot) = self.next_frame_head(buf, max_frame.min(buf.len()), now)?;
        let data = self.slot_data(slot);
        // Fits: the chunk was sized to the frame (`pick_new`).
        let end = n + data.len();
        buf.get_mut(n..end)?.copy_from_slice(data);
        Some(frame::seal(buf, end))
    }

    /// The console bytes a frame built for `slot` carries after its head.
    pub(crate) fn slot_data(&self, slot: Slot) -> &[u8] {
        match slot {
            Slot::Data { stream, start, len } => self
                .tx
                .get(usize::from(stream))
                .map_or(&[], |s| s.ring.contiguous(start, usize::from(len))),
            _ => &[],
        }
    }

    /// Like [`Session::next_frame`], but writes only the frame's head into `buf`
    /// (header and payload, for console data up to the data): returns its
    /// length and the slot whose [`Session::slot_data`] follows it, then the
    /// CRC over both. `buf` may be smaller than `max_frame`: every frame but
    /// console data fits [`crate::frame::MIN_FRAME`] bytes.
    pub(crate) fn next_frame_head(
        &mut self,
        buf: &mut [u8],
        max_frame: usize,
        now: u64,
    ) -> Option<(usize, Slot)> {
        let payload_room = max_frame - OVERHEAD;
        let body_end = buf.len().min(HEADER_LEN + payload_room);
        let replay = usize::from(self.replay);
        let seq = self.una.wrapping_add(self.replay);

        // 1. Replay of a retransmission round.
        if replay < self.slots.len() {
            let slot = *self.slots.get(replay)?;
            let ctrl_index = self.ctrl_before(replay);
            let body = &mut buf[HEADER_LEN..body_end];
            if let Ok(n) = self.encode_slot(slot, ctrl_index, body) {
                self.replay += 1;
                return Some((self.finish(buf, Some(seq), n), slot));
            }
            // Cannot happen for slots we built ourselves; drop the round rather than spin.
            self.replay = self.slots.len() as u8;
        }

        // 2. A new sequenced frame, if the window has room.
        if !self.slots.is_full() {
            if let Some(slot) = self.pick_new(payload_room) {
                let ctrl_index = self.in_flight_ctrl();
                let body = &mut buf[HEADER_LEN..body_end];
                if let Ok(n) = self.encode_slot(slot, ctrl_index, body) {
                    self.commit_new(slot);
                    // The timer runs while a frame is in flight: from the first.
                    if self.slots.len() == 1 {
                        self.arm(now);
                    }
                    // `seq` of a new slot is una + (slots before it); replay == slots.len() here.
                    let seq = self.una.wrapping_add((self.slots.len() - 1) as u8);
                    self.replay = self.slots.len() as u8;
                    return Some((self.finish(buf, Some(seq), n), slot));
                }
                // A control message that does not fit the negotiated frame can never be
                // sent: drop it so it does not block the queue.
                if matches!(slot, Slot::Ctrl) {
                    self.drop_ctrl_at(ctrl_index);
                }
            }
        }

        // 3. A pure acknowledgement.
        if self.ack_pending {
            return Some((self.finish(buf, None, 0), Slot::Ctrl));
        }
        None
    }

    fn drop_ctrl_at(&mut self, index: usize) {
        // Only the first not-yet-sent message can be dropped; it sits at `index`.
        self.ctrl.remove(index);
        bump(&mut self.counters.unexpected);
    }

    fn pick_new(&mut self, payload_room: usize) -> Option<Slot> {
        // Credits first: they unblock the peer.
        for i in 0..NRX {
            let due = self.grant_due(i);
            if due > 0 {
                return Some(Slot::Credit {
                    stream: i as u8,
                    bytes: due,
                });
            }
        }
        // Control messages in order.
        let in_flight = self.in_flight_ctrl();
        if let Some(c) = self.ctrl.get(in_flight) {
            if !(R::after_output(c) && self.output_pending()) {
                return Some(Slot::Ctrl);
            }
        }
        // Console data, streams in turn.
        let data_room = payload_room.saturating_sub(DATA_MSG_OVERHEAD);
        for k in 0..NTX {
            let i = (usize::from(self.next_tx_stream) + k) % NTX;
            let s = &self.tx[i];
            let max = data_room.min(s.credit as usize).min(u16::MAX as usize);
            let chunk = s.ring.contiguous(s.sent, max);
            if !chunk.is_empty() {
                self.next_tx_stream = ((i + 1) % NTX) as u8;
                return Some(Slot::Data {
                    stream: i as u8,
                    start: s.sent,
                    len: chunk.len() as u16,
                });
            }
        }
        None
    }

    fn commit_new(&mut self, slot: Slot) {
        match slot {
            Slot::Data { stream, len, .. } => {
                if let Some(s) = self.tx.get_mut(usize::from(stream)) {
                    s.sent = s.sent.wrapping_add(u32::from(len));
                    s.credit -= u32::from(len);
                }
            }
            Slot::Credit { stream, bytes } => {
                if let Some(s) = self.rx.get_mut(usize::from(stream)) {
                    s.granted = s.granted.wrapping_add(bytes);
                }
            }
            Slot::Ctrl => {}
        }
        // The window was checked by the caller.
        let _ = self.slots.push_back(slot);
    }

    /// Header and ack bookkeeping for a frame whose
    /// payload (head) of `n` bytes is already at `buf[HEADER_LEN..]`; returns
    /// the length before the CRC. Not inlined: one copy for its callers.
    #[inline(never)]
    fn finish(&mut self, buf: &mut [u8], seq: Option<u8>, n: usize) -> usize {
        frame::write_header(
            buf,
            Header {
                seq,
                ack: self.rx_expected,
            },
        );
        self.ack_pending = false;
        HEADER_LEN + n
    }

    /// Seals an unsequenced frame (payload of `n` bytes already at
    /// `buf[HEADER_LEN..]`); it still carries the current acknowledgement.
    pub(crate) fn seal_unsequenced(&mut self, buf: &mut [u8], n: usize) -> usize {
        let len = self.finish(buf, None, n);
        frame::seal(buf, len)
    }

    /// Like [`Session::seal_unsequenced`] without the CRC: returns the length
    /// of the frame before it.
    pub(crate) fn head_unsequenced(&mut self, buf: &mut [u8], n: usize) -> usize {
        self.finish(buf, None, n)
    }
}

#[cfg(test)]
mod tests {
    use super::{Role, Timing};
    use crate::Stream;

    /// Each role's sent streams are consecutive wire values from `TX_FIRST`,
    /// which `tx_index` relies on; a stream it does not send has no index.
    #[test]
    fn stream_indices() {
        fn check<R: Role>() {
            for (i, &s) in R::TX.iter().enumerate() {
                assert_eq!(s as usize, R::TX_FIRST as usize + i, "{s:?}");
            }
            for s in [Stream::Stdin, Stream::Stdout, Stream::Stderr, Stream::Exec] {
                let i = (s as usize).wrapping_sub(R::TX_FIRST as usize);
                assert_eq!(i < R::TX.len(), R::TX.contains(&s), "{s:?}");
            }
        }
        check::<crate::endpoint::rtos::RtosRole>();
        check::<crate::endpoint::host::HostRole>();
    }

    /// The configured timeouts become 1..=65535 ms, the maximum at least the
    /// initial one.
    #[test]
    fn timing_is_clamped() {
        for (initial, max, want) in [
            (100, 2000, (100, 2000)),
            (0, 0, (1, 1)),
            (100, 50, (100, 100)),
            (70_000, 90_000, (65_535, 65_535)),
            (500, u32::MAX, (500, 65_535)),
        ] {
            let t = Timing::new(initial, max);
            assert_eq!((t.rto_initial_ms, t.rto_max_ms), want, "{initial} {max}");
        }
    }
}
