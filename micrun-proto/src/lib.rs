//! micrun-proto: the wire contract between a Linux host and an RTOS partition.
//!
//! ```text
//!  host app (shim)                                        RTOS app (via rtos-side)
//!      │ send_stop / write_console / read_console              │
//!  HostEndpoint ── poll_transmit ─► bytes on the link ─► handle_input ── RtosEndpoint
//!      ▲  handle_input ◄── bytes on the link ◄── poll_transmit ─┘
//!      └── poll_event / poll_timeout / handle_timeout(now) (caller's clock)
//! ```
//!
//! Layers, bottom up:
//! - [`frame`]: CRC-16 and COBS framing. A frame is a 3-byte header (flags, seq,
//!   ack), a payload and a CRC; byte links COBS-encode it and end it with `0x00`.
//! - [`msg`]: the messages ([`HostMsg`], [`RtosMsg`]) in postcard's wire format.
//! - [`endpoint`]: sans-IO state machines. [`HostEndpoint`] and [`RtosEndpoint`]
//!   do the handshake and version check, deliver sequenced messages exactly once
//!   and in order (go-back-N with cumulative acks and retransmit back-off), carry
//!   console streams under credit-based flow control, and (host side) detect a
//!   silent peer.
//!
//! Nothing here allocates, reads a clock or does I/O: time comes in as `now_ms`
//! arguments, bytes in through `handle_input`, bytes out through `poll_transmit`.
//! Buffer sizes are const generics, so the RTOS side decides its RAM footprint.
//! Input from the peer never panics: bad frames are counted in [`Counters`],
//! protocol violations become [`endpoint::HostEvent::Error`] /
//! [`endpoint::RtosEvent::Error`].
//!
//! Unsafe code is denied (`#![deny(unsafe_code)]`) and allowed in one place
//! only: the in-place initialisers behind [`RtosEndpoint::init`] (module
//! `init`), which write a new endpoint field by field into the caller's
//! memory, so that its rings are never built on the stack and copied (an
//! agent on a microcontroller with a 2–4 KiB stack could not take that).
//! Each unsafe block says why it is sound; [`RtosEndpoint::new`] is `init`
//! on the stack, so both make the same endpoint.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_debug_implementations)]

pub mod endpoint;
pub mod frame;
mod init;
pub mod msg;
mod queue;
mod ring;

pub use endpoint::{
    AnnounceFilter, Counters, HostConfig, HostEndpoint, HostEvent, HostState, LinkKind, PeerInfo,
    ProtocolError, QueueFull, RtosConfig, RtosEndpoint, RtosEvent, RtosState,
};
pub use msg::{
    features, Announce, ExitReason, Hello, HelloAck, HostMsg, LogLevel, RtosMsg, Stats, Stream,
    Version, ANNOUNCE_MAGIC, PROTOCOL_VERSION,
};
