//! libmicrun (`libmicrun.so`, `libmicrun.a`): micrun for C programs. The headers
//! are `include/micrun_codec.h` and `include/micrun.h`; `docs/c-api.md` has the
//! rules.
//!
//! Two parts. The [`runtime`] API runs containers the way iSulad does (it starts
//! the shim and talks ttrpc to it; see that module). The protocol codec is
//! `micrun-proto`'s messages, frames and framing behind a C ABI. Data flows through
//! the codec like this:
//!
//! ```text
//!  sending                                       receiving
//!  micrun_host_msg ──micrun_host_msg_encode──►   link bytes ──micrun_framer_feed──►
//!    payload ──micrun_frame_build──►               frame (CRC checked, in the
//!    frame (header + payload + CRC)                framer's storage)
//!    ──micrun_wire_encode──► COBS + 0x00          ──micrun_frame_parse──► header,
//!    ──► the link                                  payload ──micrun_rtos_msg_decode──►
//!                                                  micrun_rtos_msg (points into it)
//! ```
//!
//! (The RTOS side is the mirror image: `micrun_rtos_msg_encode`,
//! `micrun_host_msg_decode`.) A message link (rpmsg endpoint) skips the COBS step
//! and the framer: one frame per message.
//!
//! Rules every function keeps:
//! - Nothing in the codec allocates. Output goes into buffers the caller passes with their
//!   capacity; a short one is `MICRUN_ERR_BUFFER_TOO_SHORT` with the size needed.
//!   Decoded byte and text fields point into the caller's input buffer.
//! - Every function returns a [`status::micrun_status`]; on error the thread-local
//!   [`status::micrun_last_error`] says why. NULL pointers, bad lengths, unknown
//!   kinds and malformed input are errors, never crashes.
//! - No panic unwinds into C: each entry point runs in [`status::entry`], which
//!   turns one into `MICRUN_ERR_PANIC`. (This needs the default `panic = "unwind"`.)
//! - Only `micrun_*` symbols are exported from the shared library.
//!
//! Modules: [`status`] (status codes, last error, the entry guard), [`message`]
//! (the message structs and their codec), [`frame`] (frames, COBS, CRC),
//! [`framer`] (the stream framer), [`runtime`] (the runtime API); `args` checks raw
//! C arguments.
#![allow(non_camel_case_types)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_debug_implementations)]

mod args;
pub mod frame;
pub mod framer;
pub mod message;
pub mod runtime;
pub mod status;
