//! Status codes, the thread-local last-error message, and the guard every C entry
//! point runs in.
//!
//! Every exported function body runs inside [`entry`]: it records the function's
//! name for error messages, catches a Rust panic (turning it into
//! [`micrun_status::MICRUN_ERR_PANIC`] instead of unwinding into C, which would be
//! undefined behaviour), and sets or clears the thread's last-error message. The
//! message lives in a fixed thread-local buffer, so reporting an error never
//! allocates and nothing is left for a leak checker to find.

use core::cell::{Cell, RefCell};
use core::ffi::{c_char, CStr};
use core::fmt::{self, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What a libmicrun function returns. `MICRUN_OK` is 0; every error is negative,
/// and `micrun_last_error()` then says what went wrong.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum micrun_status {
    /// Success.
    MICRUN_OK = 0,
    /// A required pointer is NULL (or a data pointer is NULL with a non-zero length).
    MICRUN_ERR_NULL = -1,
    /// An argument is out of range: an unknown message kind, stream, exit reason or
    /// log level; text beyond its bound; reserved frame flags; an
    /// uninitialised framer; overlapping buffers where that is not allowed.
    MICRUN_ERR_INVALID_ARG = -2,
    /// The output buffer is too small. The function's `out_len` holds the size
    /// needed; nothing useful was written.
    MICRUN_ERR_BUFFER_TOO_SHORT = -3,
    /// A payload is not exactly one valid message: empty, unknown kind, truncated,
    /// trailing bytes, or a value beyond its type or bound.
    MICRUN_ERR_MALFORMED = -4,
    /// A frame is shorter than header + CRC (5 bytes).
    MICRUN_ERR_FRAME_SHORT = -5,
    /// A frame's CRC does not match its bytes.
    MICRUN_ERR_CRC = -6,
    /// Bytes between two delimiters are not valid COBS.
    MICRUN_ERR_COBS = -7,
    /// A frame on the byte stream is larger than the framer's storage; it was
    /// discarded up to its delimiter.
    MICRUN_ERR_OVERSIZED = -8,
    /// A bug in libmicrun (a Rust panic, caught at the boundary). The message has
    /// the details; please report it.
    MICRUN_ERR_PANIC = -9,
    /// Runtime API: no such container: nothing answers at `<bundle>/address`, or
    /// the shim there does not know the id.
    MICRUN_ERR_NOT_FOUND = -10,
    /// Runtime API: the shim could not be started, or it refused or failed the
    /// request; the message carries the shim's own words.
    MICRUN_ERR_RUNTIME = -11,
    /// Runtime API: an exec did not end within the timeout given; it was killed
    /// (SIGKILL) and deleted, the container runs on.
    MICRUN_ERR_TIMEOUT = -12,
}

pub use micrun_status::*;

impl micrun_status {
    /// One line of English for the status, as `micrun_status_str` returns it.
    pub fn describe(self) -> &'static CStr {
        match self {
            MICRUN_OK => c"success",
            MICRUN_ERR_NULL => c"null pointer",
            MICRUN_ERR_INVALID_ARG => c"invalid argument",
            MICRUN_ERR_BUFFER_TOO_SHORT => c"output buffer too short",
            MICRUN_ERR_MALFORMED => c"malformed message",
            MICRUN_ERR_FRAME_SHORT => c"frame too short",
            MICRUN_ERR_CRC => c"CRC mismatch",
            MICRUN_ERR_COBS => c"invalid COBS encoding",
            MICRUN_ERR_OVERSIZED => c"frame larger than the framer's storage",
            MICRUN_ERR_PANIC => c"internal error in libmicrun",
            MICRUN_ERR_NOT_FOUND => c"no such container",
            MICRUN_ERR_RUNTIME => c"the runtime (shim) failed the request",
            MICRUN_ERR_TIMEOUT => c"the exec did not end within its timeout",
        }
    }

    fn from_i32(v: i32) -> Option<Self> {
        const ALL: [micrun_status; 13] = [
            MICRUN_OK,
            MICRUN_ERR_NULL,
            MICRUN_ERR_INVALID_ARG,
            MICRUN_ERR_BUFFER_TOO_SHORT,
            MICRUN_ERR_MALFORMED,
            MICRUN_ERR_FRAME_SHORT,
            MICRUN_ERR_CRC,
            MICRUN_ERR_COBS,
            MICRUN_ERR_OVERSIZED,
            MICRUN_ERR_PANIC,
            MICRUN_ERR_NOT_FOUND,
            MICRUN_ERR_RUNTIME,
            MICRUN_ERR_TIMEOUT,
        ];
        ALL.into_iter().find(|s| *s as i32 == v)
    }
}

/// Longest last-error message kept, including the terminating NUL; longer ones are
/// cut at a character boundary. Runtime errors name paths and ids (several times
/// at most), so 1 KiB; fixed, so that reporting an error never allocates.
const LAST_ERROR_CAP: usize = 1024;

thread_local! {
    static LAST_ERROR: RefCell<[u8; LAST_ERROR_CAP]> = const { RefCell::new([0; LAST_ERROR_CAP]) };
    /// The exported function running on this thread, for message prefixes.
    static CURRENT: Cell<&'static str> = const { Cell::new("") };
}

/// Writes into the last-error buffer, keeping room for the NUL and never splitting
/// a UTF-8 sequence.
struct Truncating<'a> {
    buf: &'a mut [u8; LAST_ERROR_CAP],
    len: usize,
}

impl Write for Truncating<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = LAST_ERROR_CAP - 1 - self.len;
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

fn set_last_error(args: fmt::Arguments<'_>) {
    let func = CURRENT.with(Cell::get);
    let _ = LAST_ERROR.try_with(|cell| {
        let mut buf = cell.borrow_mut();
        let mut w = Truncating {
            buf: &mut buf,
            len: 0,
        };
        if !func.is_empty() {
            let _ = write!(w, "{func}: ");
        }
        let _ = w.write_fmt(args);
        let end = w.len;
        buf[end] = 0;
    });
}

fn clear_last_error() {
    let _ = LAST_ERROR.try_with(|cell| cell.borrow_mut()[0] = 0);
}

/// The current last-error message (for Rust tests).
pub fn last_error() -> String {
    LAST_ERROR.with(|cell| {
        let buf = cell.borrow();
        let end = buf.iter().position(|&b| b == 0).unwrap_or(0);
        String::from_utf8_lossy(&buf[..end]).into_owned()
    })
}

/// An error whose message is already stored as the thread's last error.
#[derive(Debug)]
pub struct Failed(pub micrun_status);

/// Records `args` as the last error and returns the failure to propagate.
pub fn record(status: micrun_status, args: fmt::Arguments<'_>) -> Failed {
    set_last_error(args);
    Failed(status)
}

/// `fail!(STATUS, "format", args..)`: records the message, evaluates to [`Failed`].
macro_rules! fail {
    ($status:expr, $($arg:tt)*) => {
        $crate::status::record($status, format_args!($($arg)*))
    };
}
pub(crate) use fail;

/// Runs the body of the exported function `name`: a panic becomes
/// `MICRUN_ERR_PANIC`, success clears the last error.
pub fn entry(name: &'static str, body: impl FnOnce() -> Result<(), Failed>) -> micrun_status {
    let outer = CURRENT.with(|c| c.replace(name));
    let result = catch_unwind(AssertUnwindSafe(body));
    let status = match result {
        Ok(Ok(())) => {
            clear_last_error();
            MICRUN_OK
        }
        Ok(Err(Failed(status))) => status,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(no message)");
            set_last_error(format_args!(
                "internal error, please report it: panicked: {what}"
            ));
            MICRUN_ERR_PANIC
        }
    };
    CURRENT.with(|c| c.set(outer));
    status
}

/// The message describing the last error on the calling thread, or "" when the
/// last call succeeded. Never NULL. The string is owned by libmicrun and stays
/// valid (and unchanged) until the next libmicrun call on this thread; copy it to
/// keep it. Calling this function does not change it.
#[no_mangle]
pub extern "C" fn micrun_last_error() -> *const c_char {
    LAST_ERROR
        .try_with(|cell| cell.as_ptr() as *const c_char)
        .unwrap_or(c"".as_ptr())
}

/// A static, NUL-terminated English description of a status code ("CRC mismatch"),
/// "unknown status" for a value that is not one. Never NULL; no need to free.
#[no_mangle]
pub extern "C" fn micrun_status_str(status: i32) -> *const c_char {
    match micrun_status::from_i32(status) {
        Some(s) => s.describe().as_ptr(),
        None => c"unknown status".as_ptr(),
    }
}

/// The library's version, e.g. "0.1.0" (static, NUL-terminated). The SONAME
/// carries the major version: libmicrun.so.0.
#[no_mangle]
pub extern "C" fn micrun_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c_last_error() -> String {
        // SAFETY: micrun_last_error always returns a valid NUL-terminated string.
        unsafe { CStr::from_ptr(micrun_last_error()) }
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        let st = entry("micrun_test", || panic!("boom {}", 42));
        assert_eq!(st, MICRUN_ERR_PANIC);
        let msg = c_last_error();
        assert!(msg.starts_with("micrun_test: internal error"), "{msg}");
        assert!(msg.contains("boom 42"), "{msg}");
        let st = entry("micrun_test", || panic!("static"));
        assert_eq!(st, MICRUN_ERR_PANIC);
        assert!(c_last_error().contains("static"));
    }

    #[test]
    fn success_clears_and_errors_are_prefixed() {
        let st = entry("micrun_x", || Err(fail!(MICRUN_ERR_CRC, "bad {}", 1)));
        assert_eq!(st, MICRUN_ERR_CRC);
        assert_eq!(c_last_error(), "micrun_x: bad 1");
        assert_eq!(entry("micrun_x", || Ok(())), MICRUN_OK);
        assert_eq!(c_last_error(), "");
    }

    #[test]
    fn long_messages_are_cut_at_a_char_boundary() {
        let long = "é".repeat(LAST_ERROR_CAP);
        let _ = entry("micrun_x", || Err(fail!(MICRUN_ERR_NULL, "{long}")));
        let msg = c_last_error();
        assert!(msg.len() < LAST_ERROR_CAP);
        assert!(msg.len() > LAST_ERROR_CAP - 4);
        assert!(msg.ends_with('é'));
    }

    #[test]
    fn the_message_is_per_thread() {
        let _ = entry("micrun_x", || Err(fail!(MICRUN_ERR_NULL, "here")));
        std::thread::spawn(|| {
            assert_eq!(c_last_error(), "");
            let _ = entry("micrun_y", || Err(fail!(MICRUN_ERR_CRC, "there")));
            assert_eq!(c_last_error(), "micrun_y: there");
        })
        .join()
        .unwrap();
        assert_eq!(c_last_error(), "micrun_x: here");
    }

    #[test]
    fn every_status_has_a_c_description() {
        for v in -20..20 {
            // SAFETY: static NUL-terminated strings.
            let s = unsafe { CStr::from_ptr(micrun_status_str(v)) }
                .to_str()
                .unwrap();
            match micrun_status::from_i32(v) {
                Some(st) => assert_eq!(s, st.describe().to_str().unwrap()),
                None => assert_eq!(s, "unknown status"),
            }
        }
    }
}
