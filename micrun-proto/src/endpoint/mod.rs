//! Sans-IO endpoints: [`HostEndpoint`] (Linux side) and [`RtosEndpoint`] (partition side).
//!
//! Both are driven the same way:
//! - `handle_input(now_ms, bytes)` with whatever the link delivered (any split);
//! - `handle_timeout(now_ms)` when `poll_timeout()` says so;
//! - `poll_transmit(now_ms, buf)` until it returns `None`, writing each frame to the
//!   link;
//! - `poll_event()` until `None`.
//!
//! # Delivery
//! Control messages and console data travel in *sequenced* frames: each carries an
//! 8-bit sequence number and every frame carries the cumulative acknowledgement of
//! the peer's frames. At most `W` frames are in flight (8 host→RTOS, 4 RTOS→host);
//! if the oldest is not acknowledged within the retransmission timeout, all of them
//! are sent again in order (go-back-N) and the timeout doubles up to a maximum. The
//! receiver delivers only the next expected frame and drops the rest, so each
//! message arrives exactly once and in order. `Hello`, `HelloAck`, `Announce`,
//! `Ping` and `Pong` travel unsequenced: they are idempotent and repeated by
//! their own timers.
//!
//! # Who speaks first
//! The agent announces itself (`Announce`, every `announce_interval_ms`) until a
//! host opens a session with `Hello`. A host that must not disturb a firmware
//! without the agent listens first ([`HostConfig::listen`], with
//! [`AnnounceFilter`] to keep the console's own bytes apart); a host that knows
//! the agent is there says `Hello` at once.
//!
//! # Flow control
//! A receiver grants credit for each console stream equal to the free space of its
//! receive ring; a sender never sends console bytes beyond its credit. Credit returns
//! as the application reads. A slow reader therefore stops the sender without any
//! byte being lost, and the RTOS's input ring (`IN` bytes) can never overflow.

mod host;
pub mod listen;
mod rtos;
pub(crate) mod session;

pub use host::{HostConfig, HostEndpoint, HostEvent, HostState, PeerInfo, QueueFull};
pub use listen::AnnounceFilter;
pub use rtos::{RtosConfig, RtosEndpoint, RtosEvent, RtosState, ANNOUNCE_MAX_MS};
pub use session::Counters;

use crate::frame::{self, FrameError};
use crate::msg::Version;

/// How frames are delimited on the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// A byte stream (UART, pty, socket, virtio console): COBS, `0x00` delimiter.
    Stream,
    /// A message link (rpmsg endpoint): one frame per message, unencoded.
    Message,
}

/// A protocol-level failure, reported as an event on the side that detects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// The peer speaks a protocol major version we do not.
    IncompatibleVersion { ours: Version, peer: Version },
    /// The peer cannot take frames as large as the handshake needs.
    FrameTooSmall { peer_max_frame: u16 },
    /// No `HelloAck` within the configured handshake timeout.
    HandshakeTimeout,
}

impl core::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            ProtocolError::IncompatibleVersion { ours, peer } => write!(
                f,
                "incompatible protocol version: ours {}.{}, the peer's {}.{}",
                ours.major, ours.minor, peer.major, peer.minor
            ),
            ProtocolError::FrameTooSmall { peer_max_frame } => write!(
                f,
                "the peer's largest frame is {peer_max_frame} bytes, below the protocol's minimum {}",
                frame::MIN_FRAME
            ),
            ProtocolError::HandshakeTimeout => f.write_str("no answer to the handshake in time"),
        }
    }
}

impl core::error::Error for ProtocolError {}

/// Bytes `poll_transmit` needs to emit frames of up to `max_frame` bytes on `link`.
pub const fn transmit_buf_len(link: LinkKind, max_frame: usize) -> usize {
    match link {
        LinkKind::Stream => frame::wire_len(max_frame) + max_frame / 254 + 2,
        LinkKind::Message => max_frame,
    }
}

/// Where a raw frame goes in a transmit buffer, and how large it may be.
fn raw_layout(link: LinkKind, buf_len: usize, max_frame: usize) -> (usize, usize) {
    match link {
        LinkKind::Stream => {
            let room = buf_len.saturating_sub(buf_len / 254 + 3).min(max_frame);
            // COBS output never overtakes its input when the input starts this far in.
            (room / 254 + 1, room)
        }
        LinkKind::Message => (0, buf_len.min(max_frame)),
    }
}

/// Turns a raw frame at `buf[offset..offset + len]` into what goes on the link.
fn to_wire(link: LinkKind, buf: &mut [u8], offset: usize, len: usize) -> usize {
    match link {
        LinkKind::Stream => frame::cobs_encode_in_place(buf, offset, len),
        LinkKind::Message => len,
    }
}

fn count_frame_error(c: &mut Counters, e: FrameError) {
    session::bump(match e {
        FrameError::Crc => &mut c.crc_errors,
        FrameError::Oversized => &mut c.oversized_frames,
        FrameError::Short | FrameError::Cobs => &mut c.malformed_frames,
    })
}
