//! The RTOS side of a session: announces itself until a host says `Hello`,
//! answers `Hello` and `Ping`, carries stdout/stderr
//! to the host and console input from it, hands the host's exec requests to the
//! application and carries their output back, and reports the application's life.

use core::mem::MaybeUninit;
use core::ptr::addr_of_mut;

use heapless::Vec;

use crate::init::field;

use crate::queue::{Item, Queue};

const _: () = assert!(
    MAX_ARGV <= MAX_LOG,
    "exec arguments share the log line's storage"
);

use super::session::{
    bump, Counters, Deadline, Ms, Role, SeqVerdict, Session, Slot, Timing, Wrap, MAX_WAIT_MS,
};
use super::{count_frame_error, raw_layout, to_wire, LinkKind, ProtocolError};
use crate::frame::{self, Deframer, HEADER_LEN, MAX_FRAME, MIN_FRAME};
use crate::msg::{
    encode_console_out_head, encode_log, features, CodecError, ExitReason, Hello, LogLevel, Reader,
    Stats, Stream, Version, Writer, ANNOUNCE_MAGIC, MAX_ARGV, MAX_LOG, MAX_NAME, PROTOCOL_VERSION,
};

/// RTOS endpoint settings. Times in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct RtosConfig {
    pub link: LinkKind,
    pub features: u32,
    /// The first retransmission timeout, doubling per unanswered round up to
    /// `rto_max_ms`; both between 1 and 65535 (clamped).
    pub rto_initial_ms: u32,
    pub rto_max_ms: u32,
    /// Reported in `HelloAck`; at most [`crate::msg::MAX_NAME`] bytes each
    /// (longer values are cut at a character boundary).
    pub agent_version: &'static [u8],
    pub os: &'static [u8],
    pub board: &'static [u8],
    /// While no host has opened a session, `Announce` goes out at this interval,
    /// so that a listening host detects the agent (protocol 1.1); the interval
    /// doubles with each unanswered announcement up to [`ANNOUNCE_MAX_MS`] (or
    /// stays, if it is longer already). 0: never (only a host that sends `Hello`
    /// unasked can then connect). At most 2³¹ − 1 ms (≈ 24.8 days; clamped):
    /// the endpoint keeps its deadlines as wrapping 32-bit milliseconds.
    pub announce_interval_ms: u32,
    /// A connected agent that has received no valid frame for this long announces
    /// itself again (its host may have gone and a new one may be listening); the
    /// session itself stays. 0: never. At most 2³¹ − 1 ms (clamped, as above).
    pub host_silence_ms: u32,
}

impl Default for RtosConfig {
    fn default() -> Self {
        Self {
            link: LinkKind::Stream,
            features: if cfg!(feature = "rtos-exec") {
                features::ALL
            } else {
                features::ALL & !features::EXEC
            },
            rto_initial_ms: 100,
            rto_max_ms: 2000,
            agent_version: b"",
            os: b"",
            board: b"",
            announce_interval_ms: 200,
            host_silence_ms: 5000,
        }
    }
}

/// Something the RTOS application should act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtosEvent {
    /// A host opened a session.
    Connected {
        version: Version,
        features: u32,
    },
    /// Stop within `grace_ms`, then report [`RtosEndpoint::send_exited`].
    StopRequested {
        grace_ms: u32,
    },
    Signal {
        signo: u8,
    },
    Resize {
        rows: u16,
        cols: u16,
    },
    /// Answer with [`RtosEndpoint::send_stats`].
    StatsRequested,
    /// Console input is waiting in [`RtosEndpoint::read_stdin`].
    Readable,
    /// The host asks to run a command (protocol 1.2): its arguments are in
    /// [`RtosEndpoint::exec_argv`] until the next `poll_event`. Write its output
    /// to [`Stream::Exec`], then [`RtosEndpoint::send_exec_exited`].
    Exec {
        exec: u32,
    },
    /// A signal for the running exec (e.g. 9: an exec probe timed out).
    ExecSignal {
        exec: u32,
        signo: u8,
    },
    Error(ProtocolError),
}

/// Where the RTOS side's session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtosState {
    /// No host has said `Hello` yet (output is buffered meanwhile).
    Waiting,
    Connected,
}

#[derive(Debug)]
pub(crate) struct RtosRole;

/// RTOS→host control messages waiting for delivery.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RtosCtrl {
    Ready,
    /// The values are in the session's extra storage (the latest report; a
    /// report in flight may go out again with newer values).
    Stats,
    Exited(i32, ExitReason),
    /// The text is in the session's extra storage: one log line in flight at a time.
    Log(LogLevel),
    /// The current exec (its number is in the extra storage) ended with this code.
    ExecExited(i32),
}

impl Item for RtosCtrl {
    const FILL: RtosCtrl = RtosCtrl::Ready;
}

impl Item for RtosEvent {
    const FILL: RtosEvent = RtosEvent::Connected {
        version: Version { major: 0, minor: 0 },
        features: 0,
    };
}

/// [`Stats`] as kept for sending: aligned to 4 instead of 8 (the `u64` uptime).
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, packed(4))]
pub(crate) struct PackedStats {
    uptime_ms: u64,
    cpu_load_permille: u16,
    mem_used_kib: u32,
    mem_total_kib: u32,
}

impl PackedStats {
    fn pack(s: Stats) -> Self {
        PackedStats {
            uptime_ms: s.uptime_ms,
            cpu_load_permille: s.cpu_load_permille,
            mem_used_kib: s.mem_used_kib,
            mem_total_kib: s.mem_total_kib,
        }
    }

    fn unpack(self) -> Stats {
        Stats {
            uptime_ms: self.uptime_ms,
            cpu_load_permille: self.cpu_load_permille,
            mem_used_kib: self.mem_used_kib,
            mem_total_kib: self.mem_total_kib,
        }
    }
}

/// Storage beside the control queue (not in every entry, for the RAM budget).
#[derive(Debug, Default)]
pub(crate) struct Extra {
    /// The text of the one log line in flight, or the arguments of an exec the
    /// application has not taken yet (never both: see `RtosEndpoint::send_log`).
    bytes: Vec<u8, MAX_LOG>,
    /// The last stats report (kept here, not in every control queue entry,
    /// which is 8 bytes instead of 24 this way).
    stats: PackedStats,
    /// The exec the host started last: its output and `ExecExited` belong to
    /// it. (The host starts the next only after this one's `ExecExited`, whose
    /// acknowledgement comes with or before that start, so a queued report
    /// never takes the next exec's number.)
    #[cfg(feature = "rtos-exec")]
    exec: u32,
}

impl Role for RtosRole {
    type Ctrl = RtosCtrl;
    type Extra = Extra;

    #[allow(unsafe_code)]
    fn init_extra(slot: &mut MaybeUninit<Extra>) {
        let p = slot.as_mut_ptr();
        // SAFETY: `p` is valid for writes of an `Extra` (from the `&mut`);
        // each field is written through a raw pointer (an empty `Vec` is its
        // length: its buffer needs no initialising).
        unsafe {
            addr_of_mut!((*p).bytes).write(Vec::new());
            addr_of_mut!((*p).stats).write(PackedStats::default());
            #[cfg(feature = "rtos-exec")]
            addr_of_mut!((*p).exec).write(0);
        }
    }
    type At = Wrap;
    #[cfg(feature = "rtos-exec")]
    const TX: &'static [Stream] = &[Stream::Stdout, Stream::Stderr, Stream::Exec];
    #[cfg(not(feature = "rtos-exec"))]
    const TX: &'static [Stream] = &[Stream::Stdout, Stream::Stderr];
    const RX: &'static [Stream] = &[Stream::Stdin];
    const TX_FIRST: Stream = Stream::Stdout;

    /// Written field by field (the wire bytes of [`RtosMsg::encode`], test
    /// `rtos_encoders_match_rtos_msg`), not through an `RtosMsg` built for it:
    /// the agent links no encoder arms it never sends.
    fn encode_ctrl(c: &RtosCtrl, extra: &Extra, buf: &mut [u8]) -> Result<usize, CodecError> {
        let mut w = Writer::new(buf);
        match *c {
            RtosCtrl::Ready => w.u8(1),
            RtosCtrl::Stats => {
                let s = extra.stats.unpack();
                w.u8(5);
                w.varint64(s.uptime_ms);
                w.varint(u32::from(s.cpu_load_permille));
                w.varint(s.mem_used_kib);
                w.varint(s.mem_total_kib);
            }
            RtosCtrl::Exited(code, reason) => {
                w.u8(6);
                w.i32(code);
                w.u8(reason as u8);
            }
            // Pushed from a `&str` cut at a character boundary: valid UTF-8,
            // written without validating it again (that would link a 256-byte
            // table and the validator into every agent).
            RtosCtrl::Log(level) => return encode_log(level, &extra.bytes, buf),
            RtosCtrl::ExecExited(code) => {
                w.u8(9);
                #[cfg(feature = "rtos-exec")]
                w.varint(extra.exec);
                #[cfg(not(feature = "rtos-exec"))]
                w.u8(0);
                w.i32(code);
            }
        }
        w.done()
    }

    fn encode_data_head(stream: Stream, len: usize, buf: &mut [u8]) -> Result<usize, CodecError> {
        encode_console_out_head(stream, len, buf)
    }

    fn encode_credit(stream: Stream, bytes: u32, buf: &mut [u8]) -> Result<usize, CodecError> {
        let mut w = Writer::new(buf);
        w.u8(4);
        w.stream(stream);
        w.varint(bytes);
        w.done()
    }

    fn after_output(c: &RtosCtrl) -> bool {
        matches!(c, RtosCtrl::Exited(..) | RtosCtrl::ExecExited(..))
    }
}

/// Output streams: stdout, stderr and (with exec) the exec's output.
const NTX: usize = if cfg!(feature = "rtos-exec") { 3 } else { 2 };

/// Events waiting for the application; a full queue holds back further sequenced
/// input (the host retransmits), so nothing is lost.
const EVENTS: usize = 3;

/// The longest wait between two announcements once they go unanswered: a host
/// that starts listening hears the agent within this long.
pub const ANNOUNCE_MAX_MS: u32 = 1000;

/// What the endpoint keeps of its [`RtosConfig`] (the retransmission timing
/// lives in the session; not stored twice, for the agent's RAM budget).
#[derive(Debug, Clone, Copy)]
struct Setup {
    features: u32,
    agent_version: &'static [u8],
    os: &'static [u8],
    board: &'static [u8],
    announce_interval_ms: u32,
    host_silence_ms: u32,
}

/// The RTOS endpoint.
///
/// - `FRAME`: receive buffer for one encoded frame, at least 128 bytes; it bounds
///   the frame size advertised to the host.
/// - `OUT`: each of the stdout, stderr and exec output rings (power of two).
///   Bytes stay there until the host acknowledges them.
/// - `IN`: the console input ring (power of two); the host never sends more than
///   its free space.
/// - `W`: sequenced frames in flight before an acknowledgement, 1..=64. A frame
///   in flight costs a few bytes of bookkeeping (its payload stays in its ring),
///   so a host-class RTOS on a fast link raises it to keep the link busy; 4 is
///   plenty for a UART, whose round trip is short next to a frame's time on the
///   wire.
pub struct RtosEndpoint<
    const FRAME: usize = 128,
    const OUT: usize = 1024,
    const IN: usize = 512,
    const W: usize = 4,
> {
    deframer: Deframer<FRAME>,
    core: Core<OUT, IN, W>,
}

/// Everything but the receive buffer, so a frame borrowed from the buffer can be
/// dispatched without copying it. (`Debug` for the test that `init` writes
/// every field: derived, it lists them all; unused, it costs the agent no
/// code.)
#[derive(Debug)]
struct Core<const OUT: usize, const IN: usize, const W: usize> {
    cfg: Setup,
    /// Beside the setup, not in it: a byte there would pad it by three.
    link: LinkKind,
    state: RtosState,
    session: Session<RtosRole, NTX, OUT, 1, IN, 4, W>,
    events: Queue<RtosEvent, EVENTS>,
    session_id: u32,
    max_frame: u16,
    hello_ack_due: bool,
    /// Nonce of a `Ping` to answer; the uptime is taken when the `Pong` is sent.
    pong_due: bool,
    /// The nonce of that `Ping` (beside the flag: an `Option<u32>` is 8 bytes).
    pong_nonce: u32,
    /// An `Announce` is to go out.
    announce_due: bool,
    /// Announcing: when the next `Announce` is due. Connected: when the host
    /// will have been silent for `host_silence_ms` (one timer serves both).
    announce_at: Wrap,
    /// The latest time the endpoint was given (`handle_input`,
    /// `handle_timeout`, `poll_transmit`): the 32-bit deadlines are read as
    /// `u64` times near it ([`RtosEndpoint::poll_timeout`]).
    now: Ms,
    /// Connected, but the host has been silent for `host_silence_ms`.
    host_silent: bool,
    /// Announcements sent since the host was last heard (the back-off).
    announced: u8,
    /// Whether the session's extra storage holds that exec's arguments.
    argv: Argv,
}

/// A host message as the RTOS side decodes it: its kind (the variant index of
/// [`crate::msg::HostMsg`], [`kind`]), its numbers in wire order and its one
/// byte string (`ConsoleIn`'s data, `ExecStart`'s arguments). One loop over a
/// table of each kind's fields reads them all, instead of a decoder arm per
/// kind building a `HostMsg` for the endpoint to match again. It accepts and
/// refuses exactly the payloads `HostMsg::decode` does, with the same values
/// (test `rtos_decoder_matches_host_msg`).
#[derive(Debug, Clone, Copy)]
struct Rx<'a> {
    kind: u32,
    num: [u32; 5],
    data: &'a [u8],
}

/// The kinds of host message, as on the wire.
mod kind {
    pub const HELLO: u32 = 0;
    pub const PING: u32 = 1;
    pub const STOP: u32 = 2;
    pub const SIGNAL: u32 = 3;
    pub const CONSOLE_IN: u32 = 4;
    pub const RESIZE: u32 = 5;
    pub const CREDIT: u32 = 6;
    pub const STATS_REQUEST: u32 = 7;
    pub const EXEC_START: u32 = 8;
    #[cfg_attr(not(feature = "rtos-exec"), allow(dead_code))]
    pub const EXEC_SIGNAL: u32 = 9;
}

/// Field codes of [`FIELDS`], 3 bits each.
const F_BYTE: u16 = 1; // one raw byte (`u8`)
const F_U16: u16 = 2; // a varint of at most 16 bits
const F_U32: u16 = 3; // a varint of at most 32 bits
const F_STREAM: u16 = 4; // a stream's index (0..=3)
const F_BYTES: u16 = 5; // a length-prefixed byte string
const F_ARGV: u16 = 6; // an argument vector (`MAX_ARGV`, NUL-terminated)

/// The fields of `list`, first in the lowest bits.
const fn fields(list: &[u16]) -> u16 {
    let mut v = 0;
    let mut i = list.len();
    while i > 0 {
        i -= 1;
        v = v << 3 | list[i];
    }
    v
}

/// Each kind's fields in wire order (the `HostMsg` variants' fields).
const FIELDS: [u16; 10] = [
    // Hello: version (major, minor), features, max_frame, session
    fields(&[F_BYTE, F_BYTE, F_U32, F_U16, F_U32]),
    fields(&[F_U32]),           // Ping: nonce
    fields(&[F_U32]),           // Stop: grace_ms
    fields(&[F_BYTE]),          // Signal: signo
    fields(&[F_BYTES]),         // ConsoleIn: data
    fields(&[F_U16, F_U16]),    // Resize: rows, cols
    fields(&[F_STREAM, F_U32]), // Credit: stream, bytes
    fields(&[]),                // StatsRequest
    fields(&[F_U32, F_ARGV]),   // ExecStart: exec, argv
    fields(&[F_U32, F_BYTE]),   // ExecSignal: exec, signo
];

impl<'a> Rx<'a> {
    /// Parses a payload (the whole slice is one message) with the reader of
    /// `HostMsg::decode`.
    fn decode(buf: &'a [u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(buf);
        let kind = r.index();
        let Some(&list) = FIELDS.get(kind as usize) else {
            return Err(CodecError::Malformed);
        };
        let mut m = Rx {
            kind,
            num: [0; 5],
            data: &[],
        };
        let mut list = list;
        let mut i = 0;
        while list != 0 {
            let v = match list & 7 {
                F_BYTE => u32::from(r.u8()),
                F_U16 => u32::from(r.u16()),
                F_U32 => r.u32(),
                F_STREAM => r.stream() as u32,
                F_BYTES => {
                    m.data = r.bytes();
                    0
                }
                _ => {
                    m.data = r.argv();
                    0
                }
            };
            if let Some(n) = m.num.get_mut(i) {
                *n = v;
            }
            i += 1;
            list >>= 3;
        }
        r.finish(m)
    }

    fn hello(&self) -> Hello {
        let n = self.num;
        Hello {
            version: Version {
                major: n[0] as u8,
                minor: n[1] as u8,
            },
            features: n[2],
            max_frame: n[3] as u16,
            session: n[4],
        }
    }
}

/// Where the arguments of the last `ExecStart` are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "rtos-exec"), allow(dead_code))]
enum Argv {
    /// Not held (the storage may carry a log line).
    Free,
    /// Held; the `Exec` event waits in the queue.
    Queued,
    /// Held; the application took the `Exec` event and may read them until its
    /// next `poll_event`.
    Taken,
}

impl<const FRAME: usize, const OUT: usize, const IN: usize, const W: usize> core::fmt::Debug
    for RtosEndpoint<FRAME, OUT, IN, W>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RtosEndpoint")
            .field("state", &self.core.state)
            .field("counters", &self.core.session.counters)
            .finish_non_exhaustive()
    }
}

/// `text` cut to at most `max` bytes, not inside a UTF-8 character: the cut
/// backs off over continuation bytes, so it never makes valid text invalid
/// (text that is not UTF-8 is cut the same way; the host replaces it). One
/// copy, not inlined, for the names and the log line.
#[inline(never)]
fn clip(text: &[u8], max: usize) -> &[u8] {
    let mut end = text.len().min(max);
    while end > 0 && text.get(end).is_some_and(|&b| b & 0xC0 == 0x80) {
        end -= 1;
    }
    text.get(..end).unwrap_or(&[])
}

impl<const FRAME: usize, const OUT: usize, const IN: usize, const W: usize>
    RtosEndpoint<FRAME, OUT, IN, W>
{
    const FRAME_OK: () = assert!(FRAME >= 128, "FRAME must be at least 128 bytes");
    const WINDOW_OK: () = assert!(W >= 1 && W <= 64, "W must be 1..=64");

    /// Largest raw frame this endpoint accepts, as advertised in `HelloAck`.
    pub const MAX_FRAME: usize = if FRAME > MAX_FRAME + MAX_FRAME / 254 + 1 {
        MAX_FRAME
    } else {
        FRAME - FRAME / 254 - 1
    };

    /// A new endpoint, built by value: the host tests, the simulator and
    /// whoever has the stack for it. An agent on a microcontroller builds
    /// it where it stays with [`RtosEndpoint::init`] (this is that, moved).
    #[allow(unsafe_code)]
    pub fn new(cfg: RtosConfig) -> Self {
        // SAFETY: `init` writes every field.
        unsafe {
            crate::init::new(|slot| {
                Self::init(slot, cfg);
            })
        }
    }

    /// Constructs the endpoint in `slot` (e.g. a field of a static's
    /// `MaybeUninit`), the same endpoint as [`RtosEndpoint::new`], written
    /// field by field where it stays: no ring or queue is ever a stack
    /// temporary, so the stack this takes does not grow with the rings
    /// (`new` builds the value on the stack and moves it). Whatever `slot`
    /// held is overwritten without being dropped (nothing in an endpoint
    /// needs dropping): first cleared as a whole, then the fields that do
    /// not start as zero bytes are written (see `crate::init`).
    #[allow(unsafe_code)]
    pub fn init(slot: &mut MaybeUninit<Self>, cfg: RtosConfig) -> &mut Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::FRAME_OK;
        #[allow(clippy::let_unit_value)]
        let () = Self::WINDOW_OK;
        let p = slot.as_mut_ptr();
        // SAFETY: `p` is valid for writes of an endpoint (from the `&mut`):
        // all its bytes are cleared, then its two fields, disjoint places of
        // zero bytes, are each handed (`field`) to their own initialiser for
        // that call only; once both are done, the endpoint is initialised.
        unsafe {
            p.write_bytes(0, 1);
            Deframer::init_zeroed(field(addr_of_mut!((*p).deframer)));
            Core::init_zeroed(field(addr_of_mut!((*p).core)), cfg, Self::MAX_FRAME as u16);
            slot.assume_init_mut()
        }
    }

    pub fn state(&self) -> RtosState {
        self.core.state
    }

    pub fn is_connected(&self) -> bool {
        self.core.state == RtosState::Connected
    }

    pub fn counters(&self) -> Counters {
        self.core.session.counters
    }

    /// The latest time given to [`RtosEndpoint::handle_input`],
    /// [`RtosEndpoint::handle_timeout`] or a `poll_transmit` (0 before).
    pub fn now_ms(&self) -> u64 {
        self.core.now.0
    }

    // ---- application API --------------------------------------------------------

    /// Queues console output; returns how many bytes fit in the ring.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> usize {
        self.core.session.write(stream, data)
    }

    /// Free space in `stream`'s output ring.
    pub fn write_free(&self, stream: Stream) -> usize {
        self.core.session.tx_free(stream)
    }

    /// Takes console input. Reading returns credit to the host.
    pub fn read_stdin(&mut self, out: &mut [u8]) -> usize {
        self.core.session.read(Stream::Stdin, out)
    }

    /// Takes console input in place, without a copy: the bytes that lie
    /// contiguous in the input ring (when the input wraps around the ring's
    /// end, the rest comes with the next call). Like [`RtosEndpoint::read_stdin`]
    /// it returns credit to the host; the slice borrows the endpoint, so no
    /// new input can overwrite it while it is read.
    pub fn take_stdin(&mut self) -> &[u8] {
        self.core.session.take(Stream::Stdin)
    }

    /// Console input bytes waiting.
    pub fn stdin_len(&self) -> usize {
        self.core.session.readable(Stream::Stdin)
    }

    /// Whether `n` more control messages fit the queue.
    pub fn can_send(&self, n: usize) -> bool {
        self.core.session.ctrl_free() >= n
    }

    /// Reports that the application is up. `false` when the queue is full.
    pub fn send_ready(&mut self) -> bool {
        self.core.session.queue_ctrl(RtosCtrl::Ready)
    }

    /// Answers a [`RtosEvent::StatsRequested`]. `false` when the queue is full.
    /// One set of values is kept (not one per queued report): a report queued
    /// earlier and not yet acknowledged goes out with these.
    pub fn send_stats(&mut self, stats: Stats) -> bool {
        let s = &mut self.core.session;
        if s.ctrl_free() == 0 {
            return false;
        }
        s.extra.stats = PackedStats::pack(stats);
        s.queue_ctrl(RtosCtrl::Stats)
    }

    /// Reports the application's end. It reaches the host after every console byte
    /// written before it. `false` when the queue is full.
    pub fn send_exited(&mut self, code: i32, reason: ExitReason) -> bool {
        self.core.session.queue_ctrl(RtosCtrl::Exited(code, reason))
    }

    /// Sends a diagnostic line (UTF-8 by contract, not checked here: the host
    /// replaces invalid sequences; cut to [`MAX_LOG`] bytes, not inside a
    /// character). `false` when the queue is full, the previous line is not
    /// yet acknowledged, or an exec's arguments wait in the same storage (one
    /// at a time keeps the RAM cost at one line).
    pub fn send_log(&mut self, level: LogLevel, text: &[u8]) -> bool {
        // Without exec the arguments never hold the storage.
        if cfg!(feature = "rtos-exec") && self.core.argv != Argv::Free {
            return false;
        }
        let s = &mut self.core.session;
        if s.ctrl_free() == 0 || s.ctrl_queued(|c| matches!(c, RtosCtrl::Log(_))) {
            return false;
        }
        s.extra.bytes.clear();
        let _ = s.extra.bytes.extend_from_slice(clip(text, MAX_LOG));
        s.queue_ctrl(RtosCtrl::Log(level))
    }

    /// The arguments of the exec of the last [`RtosEvent::Exec`], each followed
    /// by a NUL (valid until the next [`RtosEndpoint::poll_event`]).
    pub fn exec_argv(&self) -> &[u8] {
        match self.core.argv {
            Argv::Free => &[],
            Argv::Queued | Argv::Taken => &self.core.session.extra.bytes,
        }
    }

    /// Reports the end of the current exec. It reaches the host after every
    /// byte written to [`Stream::Exec`] before it. `false` when the queue is full.
    pub fn send_exec_exited(&mut self, code: i32) -> bool {
        if !cfg!(feature = "rtos-exec") {
            return false;
        }
        self.core.session.queue_ctrl(RtosCtrl::ExecExited(code))
    }

    /// Everything queued so far (console bytes and control messages) has been
    /// acknowledged by the host.
    pub fn is_flushed(&self) -> bool {
        self.core.session.is_flushed()
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<RtosEvent> {
        let c = &mut self.core;
        if c.argv == Argv::Taken {
            // The application has moved past its `Exec` event.
            c.argv = Argv::Free;
        }
        let e = c.events.pop_front();
        if let Some(RtosEvent::Exec { .. }) = e {
            c.argv = Argv::Taken;
        }
        e
    }

    // ---- driving ----------------------------------------------------------------

    /// Feeds bytes received from the link (any split). On a message link each call
    /// must be exactly one message. Bytes beyond a frame's bound are dropped and
    /// counted.
    pub fn handle_input(&mut self, now_ms: u64, data: &[u8]) {
        self.handle_input_on(self.core.link, now_ms, data);
    }

    /// [`RtosEndpoint::handle_input`] on a link of kind `link`, which must be
    /// [`RtosConfig::link`]: an agent whose link kind is fixed when it is built
    /// passes it as a constant, and the other kind's code is not linked
    /// (docs/footprint.md, round 7). Not inlined into the poll: smaller on a
    /// Cortex-M (the same round).
    #[inline(never)]
    pub fn handle_input_on(&mut self, link: LinkKind, now_ms: u64, data: &[u8]) {
        debug_assert!(link == self.core.link, "the link kind of RtosConfig");
        self.core.now = Ms(now_ms);
        match link {
            LinkKind::Message => {
                if data.len() > Self::MAX_FRAME {
                    bump(&mut self.core.session.counters.oversized_frames);
                    return;
                }
                self.core.handle_frame(now_ms, data);
            }
            LinkKind::Stream => {
                let mut rest = data;
                while !rest.is_empty() {
                    let (used, res) = self.deframer.push(rest);
                    rest = &rest[used..];
                    match res {
                        Some(Ok(len)) => self.core.handle_frame(now_ms, self.deframer.frame(len)),
                        Some(Err(e)) => count_frame_error(&mut self.core.session.counters, e),
                        None => {}
                    }
                }
            }
        }
    }

    /// The next time [`RtosEndpoint::handle_timeout`] has work, if any.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        let c = &self.core;
        let now = c.now.0;
        let mut t = c
            .session
            .poll_timeout()
            .filter(|_| self.is_connected())
            .map(|at| at.to_u64(now));
        let mut take = |x: u64| t = Some(t.map_or(x, |t| t.min(x)));
        // Once the host is known to be silent, the silence timer has done its work:
        // without announcements to send it would stay due (and a firmware that sleeps
        // until this time would spin) until the host is heard again.
        let silence_timer = self.is_connected() && c.cfg.host_silence_ms > 0 && !c.host_silent;
        if c.announcing() || silence_timer {
            take(c.announce_at.to_u64(now));
        }
        t
    }

    /// Runs the timers that are due at `now_ms` (retransmission, host
    /// silence, announcements). Each checks its own deadline, so calling this
    /// before [`RtosEndpoint::poll_timeout`] says changes nothing.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        let c = &mut self.core;
        c.now = Ms(now_ms);
        if c.state == RtosState::Connected {
            c.session.handle_timeout(now_ms);
            if c.cfg.host_silence_ms > 0 && c.announce_at.reached(now_ms) {
                c.host_silent = true;
            }
        }
        if c.announcing() && c.announce_at.reached(now_ms) {
            c.announce_due = true;
            let base = c.cfg.announce_interval_ms;
            let wait = (base << c.announced.min(10)).min(ANNOUNCE_MAX_MS.max(base));
            c.announced = c.announced.saturating_add(1);
            c.announce_at = Wrap::after(now_ms, wait);
        }
    }

    /// Writes the next frame for the link into `buf` and returns its length, or
    /// `None` when there is nothing to send. `buf` should hold
    /// [`super::transmit_buf_len`]`(link, Self::MAX_FRAME)` bytes; a smaller one
    /// (at least 128) only makes console chunks smaller.
    #[must_use]
    pub fn poll_transmit(&mut self, now_ms: u64, buf: &mut [u8]) -> Option<usize> {
        self.poll_transmit_on(self.core.link, now_ms, buf)
    }

    /// [`RtosEndpoint::poll_transmit`] on a link of kind `link`, which must be
    /// [`RtosConfig::link`] (as [`RtosEndpoint::handle_input_on`]).
    #[must_use]
    pub fn poll_transmit_on(
        &mut self,
        link: LinkKind,
        now_ms: u64,
        buf: &mut [u8],
    ) -> Option<usize> {
        debug_assert!(link == self.core.link, "the link kind of RtosConfig");
        let (offset, room) = raw_layout(link, buf.len(), usize::from(self.core.max_frame));
        if room < MIN_FRAME {
            return None;
        }
        let raw = &mut buf[offset..offset + room];
        let (n, slot) = self
            .core
            .next_head(now_ms, raw, room, Self::MAX_FRAME as u16)?;
        let data = self.core.session.slot_data(slot);
        // Fits: console chunks are sized to the frame.
        let end = n + data.len();
        raw.get_mut(n..end)?.copy_from_slice(data);
        let len = frame::seal(raw, end);
        Some(to_wire(link, buf, offset, len))
    }

    /// Like [`RtosEndpoint::poll_transmit`] on a stream link, without a buffer
    /// for the frame: hands the next frame's COBS encoding and its delimiter to
    /// `out` in pieces as they come, and returns whether there was a frame.
    /// Console data goes out straight from its ring; the rest of a frame is
    /// built in a [`MIN_FRAME`]-byte buffer on the stack. (A message link needs
    /// each frame whole: [`RtosEndpoint::poll_transmit`].)
    #[inline(never)]
    pub fn poll_transmit_to(&mut self, now_ms: u64, out: &mut impl FnMut(&[u8])) -> bool {
        let mut head = [0u8; MIN_FRAME];
        let room = usize::from(self.core.max_frame);
        let Some((n, slot)) = self
            .core
            .next_head(now_ms, &mut head, room, Self::MAX_FRAME as u16)
        else {
            return false;
        };
        // `get`, not indexing: no panic path (`n` is within `head`).
        let Some(head) = head.get(..n) else {
            return false;
        };
        let data = self.core.session.slot_data(slot);
        let crc = frame::crc16_update(frame::crc16(head), data).to_le_bytes();
        frame::cobs_encode_to(&[head, data, &crc], out);
        true
    }
}

impl<const OUT: usize, const IN: usize, const W: usize> Core<OUT, IN, W> {
    /// Writes the endpoint's state for `cfg` where it stays, over zero bytes
    /// (see `crate::init`): the settings, the enums and the non-zero values;
    /// the rest (the session's rings and positions, the flags, the session
    /// id, the timers at 0, the counters) is zero bytes already.
    ///
    /// # Safety
    /// `slot` holds zero bytes.
    #[allow(unsafe_code)]
    unsafe fn init_zeroed(slot: &mut MaybeUninit<Self>, cfg: RtosConfig, max_frame: u16) {
        let timing = Timing::new(cfg.rto_initial_ms, cfg.rto_max_ms);
        let setup = Setup {
            features: cfg.features,
            agent_version: clip(cfg.agent_version, MAX_NAME),
            os: clip(cfg.os, MAX_NAME),
            board: clip(cfg.board, MAX_NAME),
            announce_interval_ms: cfg.announce_interval_ms.min(MAX_WAIT_MS),
            host_silence_ms: cfg.host_silence_ms.min(MAX_WAIT_MS),
        };
        let p = slot.as_mut_ptr();
        // SAFETY: `p` is valid for writes of a `Core` (from the `&mut`) and
        // its bytes are zero (the caller's guarantee), which the fields not
        // written here are validly and initially: `session_id`, `pong_nonce`
        // and `announced` 0, `hello_ack_due`, `pong_due` and `host_silent`
        // false, `announce_at` and `now` at 0 ms. Each other field is written
        // once through a raw pointer (the enums whatever their layout); the
        // session and the event queue are disjoint places of zero bytes, each
        // handed (`field`) to its own initialiser for that call only.
        unsafe {
            addr_of_mut!((*p).cfg).write(setup);
            addr_of_mut!((*p).link).write(cfg.link);
            addr_of_mut!((*p).state).write(RtosState::Waiting);
            Session::init_zeroed(field(addr_of_mut!((*p).session)), timing);
            Queue::init_zeroed(field(addr_of_mut!((*p).events)));
            addr_of_mut!((*p).max_frame).write(max_frame);
            addr_of_mut!((*p).announce_due).write(setup.announce_interval_ms > 0);
            addr_of_mut!((*p).argv).write(Argv::Free);
        }
    }

    /// The head of the next frame in `raw` (see `Session::next_frame_head`):
    /// the unsequenced messages first, through one encode path, then the
    /// session's frames. `ours` is the largest frame we accept.
    fn next_head(
        &mut self,
        now_ms: u64,
        raw: &mut [u8],
        room: usize,
        ours: u16,
    ) -> Option<(usize, Slot)> {
        self.now = Ms(now_ms);
        // Written field by field like `RtosRole::encode_ctrl`.
        let mut w = Writer::new(raw.get_mut(HEADER_LEN..)?);
        if self.hello_ack_due {
            self.hello_ack_due = false;
            // HelloAck (0); the names were clipped to `MAX_NAME` by `new`.
            w.u8(0);
            w.version(PROTOCOL_VERSION);
            w.varint(self.cfg.features);
            w.varint(u32::from(ours));
            w.varint(self.session_id);
            w.bytes(self.cfg.agent_version);
            w.bytes(self.cfg.os);
            w.bytes(self.cfg.board);
        } else if self.announce_due && self.announcing() {
            self.announce_due = false;
            w.u8(8);
            w.raw(&ANNOUNCE_MAGIC);
            w.version(PROTOCOL_VERSION);
            w.varint(u32::from(ours));
        } else if self.state != RtosState::Connected {
            return None;
        } else if self.pong_due {
            self.pong_due = false;
            w.u8(2);
            w.varint(self.pong_nonce);
            w.varint64(now_ms);
        } else {
            return self.session.next_frame_head(raw, room, now_ms);
        }
        let n = w.done().ok()?;
        Some((self.session.head_unsequenced(raw, n), Slot::Ctrl))
    }

    /// Whether `Announce` goes out: no session yet, or a silent host.
    fn announcing(&self) -> bool {
        self.cfg.announce_interval_ms > 0
            && (self.state != RtosState::Connected || self.host_silent)
    }

    /// A valid frame from the host of our session: it is not silent. Not
    /// inlined: one copy for `handle_frame`'s two callers of it.
    #[inline(never)]
    fn host_heard(&mut self, now: u64) {
        if self.state == RtosState::Connected {
            self.host_silent = false;
            self.announced = 0;
            self.announce_at = Wrap::after(now, self.cfg.host_silence_ms);
        }
    }

    /// Whether an in-order `msg` can be taken now: an `ExecStart` needs the
    /// extra storage, which a log line in flight or unread arguments hold.
    fn can_take(&self, msg: &Rx<'_>, seq: u8) -> bool {
        if !cfg!(feature = "rtos-exec")
            || msg.kind != kind::EXEC_START
            || !self.session.expects(seq)
        {
            return true;
        }
        self.argv == Argv::Free && !self.session.ctrl_queued(|c| matches!(c, RtosCtrl::Log(_)))
    }

    /// Queues an event, dropping the oldest when full. Not inlined: one copy
    /// for its four callers.
    #[inline(never)]
    fn push_event(&mut self, e: RtosEvent) {
        self.events.push_back_overwrite(e);
    }

    fn handle_frame(&mut self, now: u64, raw: &[u8]) {
        let (header, payload) = match frame::open(raw) {
            Ok(x) => x,
            Err(e) => return count_frame_error(&mut self.session.counters, e),
        };
        let msg = if payload.is_empty() {
            None
        } else {
            match Rx::decode(payload) {
                Ok(m) => Some(m),
                Err(_) => {
                    bump(&mut self.session.counters.unknown_messages);
                    // Acknowledge it anyway so a newer host's message cannot stall us.
                    if let (Some(seq), RtosState::Connected) = (header.seq, self.state) {
                        self.session.on_ack(header.ack, now);
                        if self.session.check_seq(seq) == SeqVerdict::Deliver {
                            self.session.accept_seq();
                        }
                    }
                    return;
                }
            }
        };
        if let Some(m) = msg.filter(|m| m.kind == kind::HELLO) {
            self.on_hello(&m.hello());
            return self.host_heard(now);
        }
        if self.state != RtosState::Connected {
            bump(&mut self.session.counters.unexpected);
            return;
        }
        self.host_heard(now);
        self.session.on_ack(header.ack, now);
        let Some(msg) = msg else { return };
        match header.seq {
            None => {
                if msg.kind == kind::PING {
                    self.pong_due = true;
                    self.pong_nonce = msg.num[0];
                } else {
                    bump(&mut self.session.counters.unexpected);
                }
            }
            Some(seq) => {
                // Hold back while the application has not taken its events (or
                // an exec's arguments cannot be stored yet): the host will send
                // it again.
                if self.events.is_full() || !self.can_take(&msg, seq) {
                    return;
                }
                if self.session.check_seq(seq) == SeqVerdict::Drop {
                    return;
                }
                self.session.accept_seq();
                self.deliver(msg);
            }
        }
    }

    fn deliver(&mut self, msg: Rx<'_>) {
        let n = msg.num;
        let event = match msg.kind {
            kind::STOP => RtosEvent::StopRequested { grace_ms: n[0] },
            kind::SIGNAL => RtosEvent::Signal { signo: n[0] as u8 },
            kind::RESIZE => RtosEvent::Resize {
                rows: n[0] as u16,
                cols: n[1] as u16,
            },
            kind::STATS_REQUEST => RtosEvent::StatsRequested,
            kind::CONSOLE_IN => {
                let was_empty = self.session.readable(Stream::Stdin) == 0;
                self.session.ingest(Stream::Stdin, msg.data);
                if !(was_empty && self.session.readable(Stream::Stdin) > 0) {
                    return;
                }
                RtosEvent::Readable
            }
            kind::CREDIT => {
                let stream = match n[0] {
                    0 => Stream::Stdin,
                    1 => Stream::Stdout,
                    2 => Stream::Stderr,
                    _ => Stream::Exec,
                };
                self.session.add_credit(stream, n[1]);
                return;
            }
            #[cfg(feature = "rtos-exec")]
            kind::EXEC_START => {
                let extra = &mut self.session.extra;
                extra.bytes.clear();
                // Bounded by the decoder (`MAX_ARGV` = the storage's size).
                let _ = extra.bytes.extend_from_slice(msg.data);
                extra.exec = n[0];
                self.argv = Argv::Queued;
                RtosEvent::Exec { exec: n[0] }
            }
            #[cfg(feature = "rtos-exec")]
            kind::EXEC_SIGNAL => RtosEvent::ExecSignal {
                exec: n[0],
                signo: n[1] as u8,
            },
            // `Hello` and `Ping` travel unsequenced; without exec the agent
            // does not advertise `features::EXEC`, so a host sends no exec
            // message.
            _ => {
                bump(&mut self.session.counters.unexpected);
                return;
            }
        };
        self.push_event(event);
    }

    /// Inlined into `handle_frame`, its one caller: smaller on a Cortex-M
    /// since the receive path is a function of its own (docs/footprint.md,
    /// round 7).
    #[inline(always)]
    fn on_hello(&mut self, hello: &Hello) {
        // Always answer, so the host learns our version even when we cannot talk.
        self.hello_ack_due = true;
        if self.state == RtosState::Connected && hello.session == self.session_id {
            return; // a repeated Hello: our HelloAck was lost
        }
        self.session_id = hello.session;
        if !PROTOCOL_VERSION.compatible(hello.version) {
            self.state = RtosState::Waiting;
            return self.push_event(RtosEvent::Error(ProtocolError::IncompatibleVersion {
                ours: PROTOCOL_VERSION,
                peer: hello.version,
            }));
        }
        if usize::from(hello.max_frame) < MIN_FRAME {
            self.state = RtosState::Waiting;
            return self.push_event(RtosEvent::Error(ProtocolError::FrameTooSmall {
                peer_max_frame: hello.max_frame,
            }));
        }
        self.max_frame = self.max_frame.min(hello.max_frame);
        self.session.restart();
        self.state = RtosState::Connected;
        let version = PROTOCOL_VERSION.negotiate(hello.version);
        self.push_event(RtosEvent::Connected {
            version,
            features: self.cfg.features & hello.features,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `RtosEndpoint::init` over memory full of garbage makes the endpoint
    /// `new` makes, field for field: the derived `Debug` of its parts lists
    /// every field (a field added to the endpoint is in it without touching
    /// this test), and one that `init` left unwritten would show the garbage
    /// (or, under Miri, make `new`, which is `init` on uninitialised memory,
    /// fail). Also over a used endpoint, as an agent re-initialises itself.
    #[test]
    #[allow(unsafe_code)]
    fn init_over_garbage_is_new() {
        type Ep = RtosEndpoint<130, 64, 32, 3>;
        let cfg = RtosConfig {
            agent_version: b"1.2.3",
            os: b"os",
            board: b"a board with a name longer than the wire allows for it",
            rto_initial_ms: 70_000,
            announce_interval_ms: u32::MAX,
            ..RtosConfig::default()
        };
        let show = |ep: &Ep| format!("{:?} {:?}", ep.deframer, ep.core);
        let expected = show(&Ep::new(cfg));
        for garbage in [0x00, 0xA5, 0xFF] {
            let mut slot = Box::new(MaybeUninit::<Ep>::uninit());
            // SAFETY: bytes into the slot's own memory.
            unsafe { slot.as_mut_ptr().write_bytes(garbage, 1) };
            let ep = RtosEndpoint::init(&mut slot, cfg);
            assert_eq!(show(ep), expected, "garbage {garbage:#x}");
            // Used, then built again where it is.
            ep.write(Stream::Stdout, b"hello");
            ep.handle_input(5, &[1, 2, 3, 0, 9, 9]);
            assert!(ep.send_ready());
            let ep = RtosEndpoint::init(&mut slot, cfg);
            assert_eq!(show(ep), expected, "again over garbage {garbage:#x}");
        }
    }

    /// Names and log lines are cut to their bound at a character boundary;
    /// bytes that are not UTF-8 are cut by the same rule, never panicking.
    #[test]
    fn text_is_clipped_at_a_character_boundary() {
        let clip = |s: &'static str| clip(s.as_bytes(), MAX_NAME);
        assert_eq!(clip(""), b"");
        assert_eq!(clip("qemu-virt"), b"qemu-virt");
        let exact = "abcdefghijklmnopqrstuvwx";
        assert_eq!(clip(exact), exact.as_bytes());
        assert_eq!(clip("abcdefghijklmnopqrstuvwxyz"), exact.as_bytes());
        // 'é' is two bytes: 12 of them fill 24 bytes, a 13th does not fit.
        assert_eq!(clip("éééééééééééééé"), "éééééééééééé".as_bytes());
        // 'ℝ' is three bytes: 8 fill 24; "a" first leaves room for 7.
        assert_eq!(clip("aℝℝℝℝℝℝℝℝ"), "aℝℝℝℝℝℝℝ".as_bytes());
        assert_eq!(clip("€€€€€€€€€"), "€€€€€€€€".as_bytes());
        // Every valid text stays valid whatever the bound.
        let text = "aé€𝄞 x";
        for max in 0..=text.len() + 1 {
            let cut = super::clip(text.as_bytes(), max);
            assert!(cut.len() <= max && text.as_bytes().starts_with(cut));
            assert!(core::str::from_utf8(cut).is_ok(), "{max}");
        }
        // Not UTF-8: continuation bytes only are cut to nothing, the rest to the bound.
        assert_eq!(super::clip(&[0x80; 30], MAX_NAME), b"");
        assert_eq!(super::clip(&[0xFF; 30], MAX_NAME), &[0xFF; 24]);
    }

    /// The RTOS side's decoder accepts exactly what `HostMsg::decode` does and
    /// reads the same values: every kind with edge values, each of those
    /// payloads cut short, lengthened and with every byte changed, every
    /// payload of up to two bytes and many random ones.
    #[test]
    fn rtos_decoder_matches_host_msg() {
        use crate::msg::HostMsg;
        type View = (u32, std::vec::Vec<u32>, std::vec::Vec<u8>);
        fn want(m: &HostMsg<'_>) -> View {
            let (kind, num, data): (u32, &[u32], &[u8]) = match *m {
                HostMsg::Hello(h) => (
                    0,
                    &[
                        u32::from(h.version.major),
                        u32::from(h.version.minor),
                        h.features,
                        u32::from(h.max_frame),
                        h.session,
                    ],
                    &[],
                ),
                HostMsg::Ping { nonce } => (1, &[nonce], &[]),
                HostMsg::Stop { grace_ms } => (2, &[grace_ms], &[]),
                HostMsg::Signal { signo } => (3, &[u32::from(signo)], &[]),
                HostMsg::ConsoleIn { data } => (4, &[0], data),
                HostMsg::Resize { rows, cols } => (5, &[u32::from(rows), u32::from(cols)], &[]),
                HostMsg::Credit { stream, bytes } => (6, &[stream as u32, bytes], &[]),
                HostMsg::StatsRequest => (7, &[], &[]),
                HostMsg::ExecStart { exec, argv } => (8, &[exec, 0], argv),
                HostMsg::ExecSignal { exec, signo } => (9, &[exec, u32::from(signo)], &[]),
            };
            let mut n = num.to_vec();
            n.resize(5, 0);
            (kind, n, data.to_vec())
        }
        fn check(p: &[u8]) {
            let got = Rx::decode(p)
                .ok()
                .map(|m| (m.kind, m.num.to_vec(), m.data.to_vec()));
            let expected = HostMsg::decode(p).ok().map(|m| want(&m));
            assert_eq!(got, expected, "payload {p:02x?}");
        }
        let hello = crate::msg::Hello {
            version: Version { major: 1, minor: 2 },
            features: u32::MAX,
            max_frame: u16::MAX,
            session: 0x8000_0001,
        };
        let msgs = [
            HostMsg::Hello(hello),
            HostMsg::Ping { nonce: 0 },
            HostMsg::Ping { nonce: u32::MAX },
            HostMsg::Stop { grace_ms: 300 },
            HostMsg::Signal { signo: 255 },
            HostMsg::ConsoleIn { data: b"" },
            HostMsg::ConsoleIn { data: b"ls -l\n" },
            HostMsg::Resize {
                rows: 24,
                cols: u16::MAX,
            },
            HostMsg::Credit {
                stream: Stream::Stdout,
                bytes: 1024,
            },
            HostMsg::Credit {
                stream: Stream::Exec,
                bytes: u32::MAX,
            },
            HostMsg::StatsRequest,
            HostMsg::ExecStart { exec: 7, argv: b"" },
            HostMsg::ExecStart {
                exec: 1 << 20,
                argv: b"ls\0-l\0",
            },
            HostMsg::ExecSignal { exec: 7, signo: 9 },
        ];
        let mut payloads = std::vec::Vec::new();
        for m in &msgs {
            let mut b = [0u8; 256];
            let n = m.encode(&mut b).unwrap();
            payloads.push(b[..n].to_vec());
        }
        for p in &payloads {
            check(p);
            for cut in 0..p.len() {
                check(&p[..cut]);
            }
            for extra in [0u8, 1, 0x80] {
                let mut q = p.clone();
                q.push(extra);
                check(&q);
            }
            for i in 0..p.len() {
                for v in [0u8, 1, 3, 4, 9, 10, 0x7f, 0x80, 0xff] {
                    let mut q = p.clone();
                    q[i] = v;
                    check(&q);
                }
            }
        }
        check(&[]);
        for a in 0..=255u8 {
            check(&[a]);
            for b in 0..=255u8 {
                check(&[a, b]);
            }
        }
        // Random payloads whose first byte is a kind or just past the kinds.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 12) as usize;
            let mut q: std::vec::Vec<u8> = (0..len).map(|i| (x >> (8 * (i % 8))) as u8).collect();
            if let Some(k) = q.first_mut() {
                *k %= 11;
            }
            check(&q);
        }
    }

    /// Kept stats keep every bit, in 20 bytes aligned to 4.
    #[test]
    fn packed_stats_round_trip() {
        for uptime_ms in [
            0,
            1,
            u64::from(u32::MAX),
            1 << 32,
            0x1234_5678_9abc_def0,
            u64::MAX,
        ] {
            let s = Stats {
                uptime_ms,
                cpu_load_permille: 999,
                mem_used_kib: u32::MAX,
                mem_total_kib: 7,
            };
            assert_eq!(PackedStats::pack(s).unpack(), s);
        }
        assert!(core::mem::size_of::<RtosCtrl>() <= 8);
        assert_eq!(core::mem::size_of::<PackedStats>(), 20);
    }

    /// The RTOS side writes its messages field by field; the bytes are those
    /// of `RtosMsg::encode` for every message it sends.
    #[test]
    fn rtos_encoders_match_rtos_msg() {
        use crate::msg::{Announce, HelloAck, RtosMsg};
        fn enc(m: RtosMsg<'_>) -> std::vec::Vec<u8> {
            let mut b = [0u8; 256];
            let n = m.encode(&mut b).unwrap();
            b[..n].to_vec()
        }
        fn ctrl(c: RtosCtrl, extra: &Extra) -> std::vec::Vec<u8> {
            let mut b = [0u8; 256];
            let n = RtosRole::encode_ctrl(&c, extra, &mut b).unwrap();
            b[..n].to_vec()
        }
        let mut extra = Extra::default();
        extra.bytes.extend_from_slice("héllo".as_bytes()).unwrap();
        #[cfg(feature = "rtos-exec")]
        {
            extra.exec = 300;
        }
        let exec = if cfg!(feature = "rtos-exec") { 300 } else { 0 };
        for uptime_ms in [0, 127, 1 << 40, u64::MAX] {
            let stats = Stats {
                uptime_ms,
                cpu_load_permille: 999,
                mem_used_kib: u32::MAX,
                mem_total_kib: 200,
            };
            extra.stats = PackedStats::pack(stats);
            assert_eq!(ctrl(RtosCtrl::Stats, &extra), enc(RtosMsg::Stats(stats)));
        }
        assert_eq!(ctrl(RtosCtrl::Ready, &extra), enc(RtosMsg::Ready));
        for code in [0, -1, 3, i32::MIN, i32::MAX] {
            for reason in [ExitReason::Normal, ExitReason::Panic, ExitReason::Watchdog] {
                assert_eq!(
                    ctrl(RtosCtrl::Exited(code, reason), &extra),
                    enc(RtosMsg::Exited { code, reason })
                );
            }
            assert_eq!(
                ctrl(RtosCtrl::ExecExited(code), &extra),
                enc(RtosMsg::ExecExited { exec, code })
            );
        }
        assert_eq!(
            ctrl(RtosCtrl::Log(LogLevel::Warn), &extra),
            enc(RtosMsg::Log {
                level: LogLevel::Warn,
                text: "héllo".as_bytes()
            })
        );
        for bytes in [0, 1, 300, u32::MAX] {
            let mut b = [0u8; 16];
            let n = RtosRole::encode_credit(Stream::Stdin, bytes, &mut b).unwrap();
            let stream = Stream::Stdin;
            assert_eq!(b[..n], enc(RtosMsg::Credit { stream, bytes })[..]);
        }

        // The unsequenced messages, from the endpoint's own state.
        let mut ep: RtosEndpoint = RtosEndpoint::new(RtosConfig {
            agent_version: b"0.1.0",
            os: b"zephyr",
            board: "an386-ℝℝℝℝℝℝℝℝℝ".as_bytes(),
            features: 0x1234_5678,
            ..RtosConfig::default()
        });
        let ours = RtosEndpoint::<128, 1024, 512, 4>::MAX_FRAME as u16;
        let head = |ep: &mut RtosEndpoint, now: u64| {
            let mut raw = [0u8; MIN_FRAME];
            let room = usize::from(ep.core.max_frame);
            let (n, _) = ep.core.next_head(now, &mut raw, room, ours).unwrap();
            raw[HEADER_LEN..n].to_vec()
        };
        assert_eq!(
            head(&mut ep, 0),
            enc(RtosMsg::Announce(Announce::new(PROTOCOL_VERSION, ours)))
        );
        ep.core.hello_ack_due = true;
        ep.core.session_id = 0xdead_beef;
        assert_eq!(
            head(&mut ep, 0),
            enc(RtosMsg::HelloAck(HelloAck {
                version: PROTOCOL_VERSION,
                features: 0x1234_5678,
                max_frame: ours,
                session: 0xdead_beef,
                agent_version: b"0.1.0",
                os: b"zephyr",
                board: clip("an386-ℝℝℝℝℝℝℝℝℝ".as_bytes(), MAX_NAME),
            }))
        );
        ep.core.state = RtosState::Connected;
        for (nonce, uptime_ms) in [(0, 0), (7, 1 << 33), (u32::MAX, u64::MAX)] {
            ep.core.pong_due = true;
            ep.core.pong_nonce = nonce;
            assert_eq!(
                head(&mut ep, uptime_ms),
                enc(RtosMsg::Pong { nonce, uptime_ms })
            );
        }
    }
}
