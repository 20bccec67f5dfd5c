//! Where a task's console goes: the stdio strings containerd passes at Create.
//!
//! containerd gives the shim one string per stream (`CreateTaskRequest.stdin`,
//! `stdout`, `stderr`). micrun reads them as containerd's runc shim does:
//!
//! | string | [`StdioTarget`] | what the relay writes to |
//! |---|---|---|
//! | `/path` (no scheme) or `fifo:///path` | `Fifo` | the FIFO, opened read-write and non-blocking (ctr, CRI, iSulad) |
//! | `file:///path` | `File` | a pipe; a thread appends what arrives to the file (its directory is created) |
//! | `binary:///path?key=value&...` | `Binary` | a pipe per stream, read by a logger process (nerdctl's log driver, `ctr run --log-uri`) |
//!
//! A logger is started as containerd starts one: `path` with the query's keys and
//! values as arguments (`key value ...`, in the URI's order; a key without `=`
//! gets an empty value), an environment of exactly `CONTAINER_ID` and
//! `CONTAINER_NAMESPACE`, stdin/stdout/stderr on `/dev/null`, the stdout pipe's
//! read end as fd 3, the stderr pipe's as fd 4 and the write end of a "ready"
//! pipe as fd 5. Start waits (at most [`Timeouts::ready`]) until the logger
//! writes a byte to fd 5 or closes it; a logger that ends instead fails Start.
//! Both streams go to the one logger: stdout and stderr must name the same URI
//! (or stderr none). stdin is always a FIFO.
//!
//! # The logger's end
//! When the instance ends, the relay drops its write ends: the logger reads EOF
//! on fds 3 and 4. At Delete ([`StdioGuard::close`]) it gets [`Timeouts::grace`]
//! to end by itself, then SIGTERM (as containerd sends), then SIGKILL after
//! [`Timeouts::term`] (containerd's 12 s).
//!
//! The shim's reaper (`waitpid(-1)`) reaps every child, the logger included; its
//! exit reaches the task service as a pid no instance has, and is ignored. This
//! module never waits by pid: it holds a pidfd taken while the child is known to
//! be alive (it waits on a gate pipe before `exec`), watches the pidfd for the
//! exit, signals through it, and reaps through it (`waitid(P_PIDFD)`), so
//! neither a reaped nor a reused pid can be mistaken for the logger. Without a
//! reaper (engine tests), the reaping here is what collects it.
//!
//! Checks at Create ([`check`]) are pure: an unknown scheme, a URI without a
//! path, a logger that is missing or not executable fail Create before anything
//! exists. Files are created and loggers started at Start ([`open`]).

use std::ffi::{CString, OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::{fork, pipe2, ForkResult};

use crate::instance::IoPaths;
use crate::pedestal::sim::set_nonblocking;

/// Most of a user's value that an error message quotes.
const QUOTE_MAX: usize = 200;

/// What one stdio string names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StdioTarget {
    /// A FIFO made by the caller (a plain path, or `fifo:///path`).
    Fifo(PathBuf),
    /// `file:///path`: output appended to the file.
    File(PathBuf),
    /// `binary:///path?args`: a logger process reads the output.
    Binary { path: PathBuf, args: Vec<OsString> },
}

/// A stdio string micrun cannot use: the stream, the string (at most 200 bytes of
/// it) and why, with the form that works.
#[derive(Debug, thiserror::Error)]
#[error("{stream} {uri}: {why}")]
pub struct StdioError {
    pub stream: &'static str,
    pub uri: String,
    pub why: String,
}

impl StdioError {
    fn new(stream: &'static str, value: &[u8], why: impl Into<String>) -> StdioError {
        StdioError {
            stream,
            uri: quote(value),
            why: why.into(),
        }
    }
}

/// `value` in quotes, cut to [`QUOTE_MAX`] bytes (saying how long it was).
fn quote(value: &[u8]) -> String {
    if value.len() <= QUOTE_MAX {
        format!("{:?}", String::from_utf8_lossy(value))
    } else {
        format!(
            "{:?}... ({} bytes)",
            String::from_utf8_lossy(&value[..QUOTE_MAX]),
            value.len()
        )
    }
}

const FORMS: &str = "micrun takes a FIFO path (or fifo:///path), file:///path or \
                     binary:///path?key=value";

impl StdioTarget {
    /// Reads the string containerd passed for `stream` (`"stdout"`, ...). Pure:
    /// nothing on disk is looked at.
    pub fn parse(stream: &'static str, value: &OsStr) -> Result<StdioTarget, StdioError> {
        let raw = value.as_bytes();
        let err = |why: String| StdioError::new(stream, raw, why);
        let Some((scheme, rest)) = split_scheme(raw) else {
            return Ok(StdioTarget::Fifo(PathBuf::from(value)));
        };
        let scheme = String::from_utf8_lossy(scheme).to_ascii_lowercase();
        if !matches!(scheme.as_str(), "fifo" | "file" | "binary") {
            return Err(err(format!(
                "unknown scheme {}; {FORMS}",
                quote(scheme.as_bytes())
            )));
        }
        let example = format!("{scheme}:///absolute/path");
        let Some(rest) = rest.strip_prefix(b"//") else {
            return Err(err(format!("expected {example}")));
        };
        // The authority ends at the path, the query or the fragment.
        let end = rest
            .iter()
            .position(|&c| matches!(c, b'/' | b'?' | b'#'))
            .unwrap_or(rest.len());
        if end > 0 {
            return Err(err(format!(
                "the path must be absolute, after an empty host: {example} (three slashes)"
            )));
        }
        let rest = rest.split(|&c| c == b'#').next().unwrap_or_default();
        let (raw_path, query) = match rest.iter().position(|&c| c == b'?') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let path = percent_decode(raw_path, false).map_err(&err)?;
        if path.iter().all(|&c| c == b'/') {
            return Err(err(format!("no path; expected {example}")));
        }
        let path = PathBuf::from(OsString::from_vec(path));
        match scheme.as_str() {
            "fifo" => Ok(StdioTarget::Fifo(path)),
            "file" if raw_path.ends_with(b"/") => Err(err(format!(
                "names a directory; a file:// URI names the log file, e.g. {example}.log"
            ))),
            "file" => Ok(StdioTarget::File(path)),
            _ => Ok(StdioTarget::Binary {
                path,
                args: parse_query(query.unwrap_or_default()).map_err(err)?,
            }),
        }
    }

    /// What Create can check without making anything: the logger is an
    /// executable file; a log file is not a directory.
    fn check(&self, stream: &'static str, value: &OsStr) -> Result<(), StdioError> {
        let err = |why: String| StdioError::new(stream, value.as_bytes(), why);
        match self {
            StdioTarget::Fifo(_) => Ok(()),
            StdioTarget::File(path) => match std::fs::metadata(path) {
                Ok(m) if m.is_dir() => Err(err(format!(
                    "{} is a directory; name the log file",
                    path.display()
                ))),
                _ => Ok(()),
            },
            StdioTarget::Binary { path, .. } => {
                let m = std::fs::metadata(path).map_err(|e| {
                    err(format!(
                        "logger {}: {e}; install it or correct the path",
                        path.display()
                    ))
                })?;
                if !m.is_file() {
                    return Err(err(format!("logger {} is not a file", path.display())));
                }
                let mode = m.permissions().mode();
                if mode & 0o111 == 0
                    || nix::unistd::access(path.as_path(), nix::unistd::AccessFlags::X_OK).is_err()
                {
                    return Err(err(format!(
                        "logger {} is not executable (mode {:o})",
                        path.display(),
                        mode & 0o7777
                    )));
                }
                Ok(())
            }
        }
    }
}

/// `scheme:` and the rest, as URL parsers split it (a letter, then letters,
/// digits, `+`, `-`, `.`); `None` for a plain path.
fn split_scheme(raw: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = raw.iter().position(|&c| c == b':')?;
    let scheme = &raw[..colon];
    let ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'));
    ok.then(|| (scheme, &raw[colon + 1..]))
}

/// `%XX` escapes (and, in a query, `+` for a space).
fn percent_decode(s: &[u8], query: bool) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        format!("bad percent escape {}", quote(&s[i..(i + 3).min(s.len())]))
                    })?;
                out.push(hex);
                i += 3;
            }
            b'+' if query => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// The logger's arguments from the query: each key, then its first value (empty
/// without `=`), keys in the order they first appear.
fn parse_query(query: &[u8]) -> Result<Vec<OsString>, String> {
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut args = Vec::new();
    for pair in query.split(|&c| c == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match pair.iter().position(|&c| c == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let k = percent_decode(k, true)?;
        if keys.contains(&k) {
            continue;
        }
        keys.push(k.clone());
        args.push(OsString::from_vec(k));
        args.push(OsString::from_vec(percent_decode(v, true)?));
    }
    Ok(args)
}

/// The three streams' targets: stdin a FIFO; a logger takes both output streams.
struct Targets {
    stdin: Option<PathBuf>,
    stdout: Option<StdioTarget>,
    stderr: Option<StdioTarget>,
}

fn targets(io: &IoPaths) -> Result<Targets, StdioError> {
    let parse = |stream, p: &Option<PathBuf>| -> Result<_, StdioError> {
        match p.as_deref().filter(|p| !p.as_os_str().is_empty()) {
            Some(p) => {
                let t = StdioTarget::parse(stream, p.as_os_str())?;
                t.check(stream, p.as_os_str())?;
                Ok(Some(t))
            }
            None => Ok(None),
        }
    };
    let stdin = match parse("stdin", &io.stdin)? {
        None => None,
        Some(StdioTarget::Fifo(p)) => Some(p),
        Some(_) => {
            let raw = io.stdin.as_deref().unwrap_or(Path::new(""));
            return Err(StdioError::new(
                "stdin",
                raw.as_os_str().as_bytes(),
                "stdin can only be a FIFO (a path or fifo:///path)",
            ));
        }
    };
    let stdout = parse("stdout", &io.stdout)?;
    let stderr = parse("stderr", &io.stderr)?;
    let binary = |t: &Option<StdioTarget>| matches!(t, Some(StdioTarget::Binary { .. }));
    if (binary(&stdout) || binary(&stderr)) && stderr.is_some() && stdout != stderr {
        let raw = io.stderr.as_deref().unwrap_or(Path::new(""));
        return Err(StdioError::new(
            "stderr",
            raw.as_os_str().as_bytes(),
            format!(
                "one logger reads both output streams: stderr must name the same binary:// \
                 URI as stdout ({}) or nothing",
                quote(
                    io.stdout
                        .as_deref()
                        .unwrap_or(Path::new(""))
                        .as_os_str()
                        .as_bytes()
                )
            ),
        ));
    }
    Ok(Targets {
        stdin,
        stdout,
        stderr,
    })
}

/// Create: checks the stdio strings (see the module doc) before anything is made.
pub fn check(io: &IoPaths) -> Result<(), StdioError> {
    targets(io).map(|_| ())
}

/// How long a logger gets for each step.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From `exec` to its ready signal on fd 5.
    pub ready: Duration,
    /// At Delete, to end by itself after EOF on its pipes, before SIGTERM.
    pub grace: Duration,
    /// After SIGTERM, before SIGKILL (containerd: 12 s).
    pub term: Duration,
}

/// The timeouts the shim uses.
pub const TIMEOUTS: Timeouts = Timeouts {
    ready: Duration::from_secs(10),
    grace: Duration::from_secs(2),
    term: Duration::from_secs(12),
};

/// The opened streams: the relay owns the files (closing the output ones is the
/// logger's and the copiers' EOF); the guard ends what was started for them.
pub struct Opened {
    pub stdin: Option<File>,
    pub stdout: Option<File>,
    pub stderr: Option<File>,
    pub guard: StdioGuard,
}

/// Start: opens the FIFOs, creates the log files and starts their copiers, then
/// the logger. The output files are non-blocking write ends. With `terminal`
/// there is one output stream: stderr is not opened (a logger sees EOF on fd 4).
pub fn open(
    id: &str,
    namespace: &str,
    io: &IoPaths,
    terminal: bool,
    timeouts: Timeouts,
) -> io::Result<Opened> {
    let t = targets(io).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let mut guard = StdioGuard {
        id: id.to_string(),
        timeouts,
        logger: None,
        copiers: Vec::new(),
    };
    let stderr_target = if terminal { None } else { t.stderr.as_ref() };
    let stdin = t.stdin.as_deref().map(open_fifo).transpose()?;
    // FIFOs first: they make nothing, so a failure leaves no file behind.
    let fifo = |t: Option<&StdioTarget>| match t {
        Some(StdioTarget::Fifo(p)) => open_fifo(p).map(Some),
        _ => Ok(None),
    };
    let mut stdout = fifo(t.stdout.as_ref())?;
    let mut stderr = fifo(stderr_target)?;
    for (target, slot) in [
        (t.stdout.as_ref(), &mut stdout),
        (stderr_target, &mut stderr),
    ] {
        if let Some(StdioTarget::File(path)) = target {
            let (w, copier) = open_file(id, path)?;
            guard.copiers.push(copier);
            *slot = Some(w);
        }
    }
    if let Some(StdioTarget::Binary { path, args }) = t.stdout.as_ref().or(t.stderr.as_ref()) {
        let (out_w, err_w, logger) = spawn_logger(path, args, id, namespace, &timeouts)?;
        guard.logger = Some(logger);
        stdout = Some(out_w);
        // Terminal mode: dropping it now is the logger's EOF on fd 4.
        stderr = (!terminal).then_some(err_w);
    }
    Ok(Opened {
        stdin,
        stdout,
        stderr,
        guard,
    })
}

/// A write-only handle on FIFO `p` once a reader has it open (a write-only
/// open blocks until one does), or `None` after `timeout` or when `p` is not a
/// FIFO. An exec's output goes through it: written into a FIFO that no reader
/// has opened yet, it would be discarded when the writer closes, so a fast
/// command's output would be lost to a reader that opens late.
pub fn writer_once_read(p: &Path, timeout: Duration) -> Option<File> {
    use std::os::unix::fs::FileTypeExt;
    if !std::fs::metadata(p).is_ok_and(|m| m.file_type().is_fifo()) {
        return None;
    }
    let path = p.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    let opener = std::thread::spawn(move || {
        let _ = tx.send(OpenOptions::new().write(true).open(&path));
    });
    match rx.recv_timeout(timeout) {
        Ok(opened) => {
            let _ = opener.join();
            opened.ok()
        }
        Err(_) => {
            // Be the reader the blocked open waits for, so that its thread ends.
            if let Ok(_reader) = OpenOptions::new()
                .read(true)
                .custom_flags(nix::libc::O_NONBLOCK)
                .open(p)
            {
                let _ = opener.join();
            }
            None
        }
    }
}

/// Read-write: never blocks at open, never EPIPE when no reader is attached.
fn open_fifo(p: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(p)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    pipe2(OFlag::O_CLOEXEC).map_err(io::Error::from)
}

/// The log file (appended to, its directory made) and a thread copying a pipe
/// into it; returns the pipe's non-blocking write end.
fn open_file(id: &str, path: &Path) -> io::Result<(File, Copier)> {
    let ctx = |e: io::Error, what: &str| io::Error::new(e.kind(), format!("{what}: {e}"));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|e| ctx(e, &format!("create the log directory {}", dir.display())))?;
    }
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .open(path)
        .map_err(|e| ctx(e, &format!("open the log file {}", path.display())))?;
    let (r, w) = pipe()?;
    set_nonblocking(&w)?;
    let (done_tx, done) = mpsc::channel();
    let what = path.display().to_string();
    let id2 = id.to_string();
    std::thread::Builder::new()
        .name(format!("log-{id}"))
        .stack_size(64 << 10)
        .spawn(move || {
            let mut r = File::from(r);
            let mut buf = vec![0u8; 16 << 10];
            loop {
                match r.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if let Err(e) = file.write_all(&buf[..n]) {
                            log::warn!("{id2}: write the log file {what}: {e}; output dropped");
                            // Keep reading: the relay must never block on this pipe.
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        log::warn!("{id2}: read the output for {what}: {e}");
                        break;
                    }
                }
            }
            let _ = done_tx.send(());
        })?;
    Ok((
        File::from(w),
        Copier {
            path: path.to_path_buf(),
            done,
        },
    ))
}

/// A thread appending one stream to a log file.
struct Copier {
    path: PathBuf,
    /// Sent (or dropped) when the thread has written everything.
    done: mpsc::Receiver<()>,
}

/// A started logger: its pidfd is the only handle used to wait, signal or reap.
struct Logger {
    pid: i32,
    pidfd: OwnedFd,
    path: PathBuf,
}

/// Ends what [`open`] started, at Delete: see the module doc. Dropping it
/// without [`StdioGuard::close`] sends the logger SIGTERM and does not wait.
pub struct StdioGuard {
    id: String,
    timeouts: Timeouts,
    logger: Option<Logger>,
    copiers: Vec<Copier>,
}

impl std::fmt::Debug for StdioGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdioGuard")
            .field("id", &self.id)
            .field("logger", &self.logger.as_ref().map(|l| l.pid))
            .field("copiers", &self.copiers.len())
            .finish()
    }
}

impl StdioGuard {
    /// The logger's pid, if one runs for this task.
    pub fn logger_pid(&self) -> Option<u32> {
        self.logger.as_ref().map(|l| l.pid as u32)
    }

    /// Waits for the copiers to write what the relay gave them and for the logger
    /// to end (grace, SIGTERM, SIGKILL; see [`Timeouts`]), and reaps it. The relay
    /// should have closed its write ends first (the instance ended).
    pub fn close(mut self) {
        let t = self.timeouts;
        let start = Instant::now();
        if let Some(l) = self.logger.take() {
            let ended = |limit: Duration| wait_exit(&l.pidfd, limit);
            let how = if ended(t.grace) {
                "ended"
            } else {
                let _ = send_signal(&l.pidfd, nix::libc::SIGTERM);
                if ended(t.term) {
                    "ended after SIGTERM"
                } else {
                    log::warn!(
                        "{}: logger {} (pid {}) still runs {:?} after SIGTERM; killing it",
                        self.id,
                        l.path.display(),
                        l.pid,
                        t.term
                    );
                    let _ = send_signal(&l.pidfd, nix::libc::SIGKILL);
                    ended(Duration::from_secs(5));
                    "killed"
                }
            };
            // Not inside the log call: its arguments run only when logging is on.
            let status = reap_logger(&l).map_or(String::new(), |s| format!(", {s}"));
            log::info!(
                "{}: logger {} (pid {}) {how}{status}",
                self.id,
                l.path.display(),
                l.pid
            );
        }
        let deadline = start + t.grace + t.term;
        for c in self.copiers.drain(..) {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(mpsc::RecvTimeoutError::Timeout) = c.done.recv_timeout(left) {
                log::warn!(
                    "{}: the copy of the output to {} has not finished; leaving it",
                    self.id,
                    c.path.display()
                );
            }
        }
    }
}

impl Drop for StdioGuard {
    fn drop(&mut self) {
        if let Some(l) = self.logger.take() {
            let _ = send_signal(&l.pidfd, nix::libc::SIGTERM);
        }
    }
}

fn send_signal(pidfd: &OwnedFd, sig: i32) -> io::Result<()> {
    // SAFETY: a plain syscall on a descriptor we own; no siginfo.
    let r = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<nix::libc::siginfo_t>(),
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// True once the process has ended (its pidfd is readable), within `limit`.
fn wait_exit(pidfd: &OwnedFd, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(n) if n > 0 => return true,
            Ok(_) => return false,
            Err(nix::errno::Errno::EINTR) if Instant::now() < deadline => {}
            Err(_) => return false,
        }
    }
}

/// Loggers running now, and the exit status the shim's reaper saw for each: the
/// reaper (`waitpid(-1)`) may collect a logger before its pidfd can, and then
/// only the reaper knows the status. Filled by [`child_exited`].
static LOGGER_EXITS: (Mutex<Vec<LoggerExit>>, Condvar) = (Mutex::new(Vec::new()), Condvar::new());

/// A running logger's pid, and its exit status once the shim's reaper saw it.
type LoggerExit = (i32, Option<i32>);

fn lock_exits() -> std::sync::MutexGuard<'static, Vec<LoggerExit>> {
    LOGGER_EXITS.0.lock().unwrap_or_else(|e| e.into_inner())
}

/// The shim's reaper collected child `pid` with exit `code` (every child; only
/// loggers are kept).
pub fn child_exited(pid: i32, code: i32) {
    let mut exits = lock_exits();
    if let Some(e) = exits.iter_mut().find(|e| e.0 == pid) {
        e.1 = Some(code);
        LOGGER_EXITS.1.notify_all();
    }
}

/// The status of a logger that has ended: reaped through its pidfd, or, when the
/// shim's reaper was first, as the reaper reports it (it will: it holds the
/// status; waited for at most a second). Forgets the logger either way.
fn reap_logger(l: &Logger) -> Option<String> {
    let status = reap(&l.pidfd).or_else(|| {
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut exits = lock_exits();
        loop {
            match exits.iter().find(|e| e.0 == l.pid) {
                Some((_, Some(code))) => return Some(format!("exit status {code}")),
                None => return None,
                Some((_, None)) => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            exits = LOGGER_EXITS
                .1
                .wait_timeout(exits, left)
                .map(|r| r.0)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    });
    lock_exits().retain(|e| e.0 != l.pid);
    status
}

/// Reaps the process through its pidfd if the shim's reaper has not; its status
/// when this call reaped it.
fn reap(pidfd: &OwnedFd) -> Option<String> {
    use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
    match waitid(
        Id::PIDFd(pidfd.as_fd()),
        WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG,
    ) {
        Ok(WaitStatus::Exited(_, code)) => Some(format!("exit status {code}")),
        Ok(WaitStatus::Signaled(_, sig, _)) => Some(format!("killed by {sig}")),
        _ => None,
    }
}

/// Whether `pid` has begun to exit (`PF_EXITING` in `/proc/<pid>/stat`): a
/// process closes its files before its pidfd reports the exit.
fn exiting(pid: i32) -> bool {
    const PF_EXITING: u64 = 0x4;
    let Ok(stat) = std::fs::read(format!("/proc/{pid}/stat")) else {
        return true;
    };
    let Some(close) = stat.iter().rposition(|&c| c == b')') else {
        return true;
    };
    // After "pid (comm)": state ppid pgrp session tty_nr tpgid flags.
    String::from_utf8_lossy(&stat[close + 1..])
        .split_ascii_whitespace()
        .nth(6)
        .and_then(|f| f.parse::<u64>().ok())
        .is_none_or(|flags| flags & PF_EXITING != 0)
}

fn cstring(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} contains a NUL byte", quote(b)),
        )
    })
}

/// Starts the logger (see the module doc) and waits for its ready signal.
/// Returns the non-blocking write ends of its stdout and stderr pipes.
fn spawn_logger(
    path: &Path,
    args: &[OsString],
    id: &str,
    namespace: &str,
    t: &Timeouts,
) -> io::Result<(File, File, Logger)> {
    use nix::libc;
    let what = path.display().to_string();
    let ctx =
        |e: io::Error, step: &str| io::Error::new(e.kind(), format!("logger {what}: {step}: {e}"));
    // Everything the child needs is made before fork: after it, only
    // async-signal-safe calls (the shim is multi-threaded).
    let mut argv = vec![cstring(path.as_os_str().as_bytes())?];
    for a in args {
        argv.push(cstring(a.as_bytes())?);
    }
    let envp = [
        cstring(format!("CONTAINER_ID={id}").as_bytes())?,
        cstring(format!("CONTAINER_NAMESPACE={namespace}").as_bytes())?,
    ];
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    let devnull = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| ctx(e, "open /dev/null"))?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (ready_r, ready_w) = pipe()?;
    // The child reports a failed exec (its errno) here; EOF means exec worked.
    let (exec_r, exec_w) = pipe()?;
    // One byte here lets the child exec: until then it is alive for certain,
    // so the pidfd taken meanwhile is the child's.
    let (gate_r, gate_w) = pipe()?;
    // Sources of fds 0-2 (devnull), 3, 4, 5 and 6 (the exec-error pipe).
    let src = [
        devnull.as_raw_fd(),
        out_r.as_raw_fd(),
        err_r.as_raw_fd(),
        ready_w.as_raw_fd(),
        exec_w.as_raw_fd(),
    ];
    let gate = gate_r.as_raw_fd();

    // SAFETY: the child only makes async-signal-safe calls (read, fcntl, dup2,
    // dup3, close_range/close, sigprocmask, signal, execve, write, _exit) on
    // data prepared before the fork.
    let pid = match unsafe { fork() }.map_err(|e| ctx(e.into(), "fork"))? {
        ForkResult::Child => unsafe {
            let mut go = 0u8;
            if libc::read(gate, (&mut go as *mut u8).cast(), 1) != 1 {
                libc::_exit(126);
            }
            // Move the sources above 6 first, so that no dup2 onto 0..=6
            // overwrites a source still to be placed.
            let mut hi = [-1; 5];
            let mut ok = true;
            for (h, &s) in hi.iter_mut().zip(src.iter()) {
                *h = libc::fcntl(s, libc::F_DUPFD_CLOEXEC, 10);
                ok &= *h >= 0;
            }
            ok = ok
                && libc::dup2(hi[0], 0) == 0
                && libc::dup2(hi[0], 1) == 1
                && libc::dup2(hi[0], 2) == 2
                && libc::dup2(hi[1], 3) == 3
                && libc::dup2(hi[2], 4) == 4
                && libc::dup2(hi[3], 5) == 5
                && libc::dup3(hi[4], 6, libc::O_CLOEXEC) == 6;
            let report = |fd: i32| {
                let errno = *libc::__errno_location();
                libc::write(fd, (&errno as *const i32).cast(), 4);
                libc::_exit(127);
            };
            if !ok {
                report(if hi[4] >= 0 { hi[4] } else { src[4] });
            }
            crate::pedestal::sim::close_from(7);
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::execve(argv_ptrs[0], argv_ptrs.as_ptr(), envp_ptrs.as_ptr());
            report(6);
            libc::_exit(127)
        },
        ForkResult::Parent { child } => child.as_raw(),
    };
    drop((devnull, out_r, err_r, ready_w, exec_w, gate_r));
    // SAFETY: a plain syscall; the result is a new descriptor we then own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        // Still waiting at the gate, so the pid is the child's; the reaper reaps it.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        return Err(ctx(
            e,
            "pidfd_open (binary:// loggers need Linux 5.3 or later)",
        ));
    }
    // SAFETY: `fd` was just returned by pidfd_open and is owned by nobody else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let logger = Logger {
        pid,
        pidfd,
        path: path.to_path_buf(),
    };
    lock_exits().push((pid, None));
    // From here on, a failure must end and reap the child.
    let fail = |logger: Logger, e: io::Error| {
        let _ = send_signal(&logger.pidfd, libc::SIGKILL);
        wait_exit(&logger.pidfd, Duration::from_secs(5));
        reap_logger(&logger);
        e
    };
    if let Err(e) = File::from(gate_w).write_all(&[1]) {
        return Err(fail(logger, ctx(e, "start")));
    }
    let mut errno = [0u8; 4];
    let mut exec_r = File::from(exec_r);
    match exec_r.read(&mut errno) {
        Ok(0) => {}
        Ok(_) => {
            let e = io::Error::from_raw_os_error(i32::from_ne_bytes(errno));
            return Err(fail(logger, ctx(e, "exec")));
        }
        Err(e) => return Err(fail(logger, ctx(e, "exec"))),
    }
    match wait_ready(&logger, ready_r, t.ready) {
        Ok(()) => {}
        Err(e) => return Err(fail(logger, e)),
    }
    set_nonblocking(&out_w)?;
    set_nonblocking(&err_w)?;
    Ok((File::from(out_w), File::from(err_w), logger))
}

/// Waits for a byte on (or the close of) fd 5; a logger that ends instead, or
/// stays silent for `limit`, is an error.
fn wait_ready(l: &Logger, ready_r: OwnedFd, limit: Duration) -> io::Result<()> {
    let what = l.path.display();
    let deadline = Instant::now() + limit;
    let mut ready = File::from(ready_r);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "logger {what} (pid {}) did not signal ready (a byte written to fd 5, \
                     or fd 5 closed) within {limit:?}; it was killed",
                    l.pid
                ),
            ));
        }
        let ms = PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(PollTimeout::MAX);
        let mut fds = [
            PollFd::new(ready.as_fd(), PollFlags::POLLIN),
            PollFd::new(l.pidfd.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, ms) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(io::Error::from(e)),
        }
        let mut b = [0u8; 1];
        // A byte is ready; EOF is ready too (nerdctl closes fd 5) unless the
        // logger is exiting: its exit closed fd 5.
        let gone = match ready.read(&mut b) {
            Ok(1) => return Ok(()),
            Ok(_) => exiting(l.pid) || wait_exit(&l.pidfd, Duration::ZERO),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if !gone {
            return Ok(());
        }
        wait_exit(&l.pidfd, Duration::from_secs(5));
        let status = reap_logger(l).unwrap_or_else(|| "status unknown".into());
        return Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            format!(
                "logger {what} (pid {}) ended ({status}) before it signalled ready",
                l.pid
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<StdioTarget, StdioError> {
        StdioTarget::parse("stdout", OsStr::new(s))
    }

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn plain_paths_and_fifo_uris_are_fifos() {
        for (s, p) in [
            (
                "/run/containerd/fifo/1/x-stdout",
                "/run/containerd/fifo/1/x-stdout",
            ),
            ("relative/fifo", "relative/fifo"),
            ("fifo:///run/x", "/run/x"),
            ("FIFO:///run/x%20y", "/run/x y"),
        ] {
            assert_eq!(parse(s).unwrap(), StdioTarget::Fifo(p.into()), "{s}");
        }
    }

    #[test]
    fn file_uris() {
        assert_eq!(
            parse("file:///var/log/x.log").unwrap(),
            StdioTarget::File("/var/log/x.log".into())
        );
        let e = parse("file:///var/log/").unwrap_err().to_string();
        assert!(e.contains("names a directory"), "{e}");
        let e = parse("file://x.log").unwrap_err().to_string();
        assert!(
            e.contains("three slashes") && e.starts_with("stdout \"file://x.log\""),
            "{e}"
        );
        let e = parse("file://").unwrap_err().to_string();
        assert!(e.contains("no path"), "{e}");
        let e = parse("file:x.log").unwrap_err().to_string();
        assert!(e.contains("expected file:///absolute/path"), "{e}");
    }

    #[test]
    fn binary_uris_take_the_query_as_arguments() {
        assert_eq!(
            parse("binary:///usr/bin/nerdctl?_NERDCTL_INTERNAL_LOGGING=/var/lib/nerdctl/1935db59")
                .unwrap(),
            StdioTarget::Binary {
                path: "/usr/bin/nerdctl".into(),
                args: os(&["_NERDCTL_INTERNAL_LOGGING", "/var/lib/nerdctl/1935db59"]),
            }
        );
        // Keys in order, first value only, `+` and escapes decoded, no `=`: "".
        assert_eq!(
            parse("binary:///opt/my%20logger?b=2&a&b=3&c=x+y%2Fz&&#frag").unwrap(),
            StdioTarget::Binary {
                path: "/opt/my logger".into(),
                args: os(&["b", "2", "a", "", "c", "x y/z"]),
            }
        );
        assert_eq!(
            parse("binary:///bin/logger").unwrap(),
            StdioTarget::Binary {
                path: "/bin/logger".into(),
                args: vec![]
            }
        );
        let e = parse("binary:///bin/x?a=%zz").unwrap_err().to_string();
        assert!(e.contains("bad percent escape \"%zz\""), "{e}");
        let e = parse("binary://usr/bin/logger").unwrap_err().to_string();
        assert!(e.contains("binary:///absolute/path"), "{e}");
    }

    #[test]
    fn unknown_schemes_name_the_stream_and_the_forms() {
        let e = StdioTarget::parse("stderr", OsStr::new("syslog://host/x"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("stderr \"syslog://host/x\": unknown scheme \"syslog\""),
            "{e}"
        );
        assert!(e.contains("binary:///path"), "{e}");
    }

    #[test]
    fn long_values_are_quoted_short() {
        let long = format!("nope://{}", "x".repeat(10_000));
        let e = parse(&long).unwrap_err().to_string();
        assert!(e.len() < 600, "{} bytes", e.len());
        assert!(e.contains("(10007 bytes)"), "{e}");
    }

    fn io(stdout: &str, stderr: &str) -> IoPaths {
        let p = |s: &str| (!s.is_empty()).then(|| PathBuf::from(s));
        IoPaths {
            stdin: None,
            stdout: p(stdout),
            stderr: p(stderr),
        }
    }

    #[test]
    fn check_looks_at_the_logger() {
        check(&io("binary:///bin/sh?x=1", "binary:///bin/sh?x=1")).unwrap();
        check(&io("binary:///bin/sh", "")).unwrap();
        let e = check(&io("binary:///nonexistent/logger", ""))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("logger /nonexistent/logger: No such file"),
            "{e}"
        );
        let tmp = Tmp::new("check");
        let plain = tmp.0.join("plain");
        std::fs::write(&plain, b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        let uri = format!("binary://{}", plain.display());
        let e = check(&io(&uri, "")).unwrap_err().to_string();
        assert!(e.contains("is not executable (mode 644)"), "{e}");
        let e = check(&io("binary:///etc", "")).unwrap_err().to_string();
        assert!(e.contains("is not a file"), "{e}");
        let e = check(&io("binary:///bin/sh", "binary:///bin/cat"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("stderr \"binary:///bin/cat\""), "{e}");
        let e = check(&io("file:///tmp", "")).unwrap_err().to_string();
        assert!(e.contains("/tmp is a directory"), "{e}");
        let e = check(&IoPaths {
            stdin: Some("file:///x".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("stdin can only be a FIFO"), "{e}");
    }

    /// A temp dir removed on drop.
    struct Tmp(PathBuf);
    impl Tmp {
        fn new(tag: &str) -> Tmp {
            let p = std::env::temp_dir().join(format!("micrun-stdio-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Tmp(p)
        }
    }
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const FAST: Timeouts = Timeouts {
        ready: Duration::from_millis(500),
        grace: Duration::from_secs(5),
        term: Duration::from_millis(500),
    };

    /// `binary:///bin/sh?-c=SCRIPT` as IoPaths for both streams.
    fn sh(script: &str) -> IoPaths {
        let mut q = String::new();
        for b in script.bytes() {
            if b.is_ascii_alphanumeric() || b"/._-".contains(&b) {
                q.push(b as char);
            } else {
                q.push_str(&format!("%{b:02X}"));
            }
        }
        let uri = format!("binary:///bin/sh?-c={q}");
        io(&uri, &uri)
    }

    fn gone(pid: u32) -> bool {
        !Path::new(&format!("/proc/{pid}")).exists()
    }

    #[test]
    fn a_logger_gets_both_streams_its_env_and_ends_at_eof() {
        let tmp = Tmp::new("logger");
        let d = tmp.0.display();
        let o = open(
            "c1",
            "ns1",
            &sh(&format!(
                "env > {d}/env; exec 5>&-; cat <&3 > {d}/out & cat <&4 > {d}/err; wait"
            )),
            false,
            FAST,
        )
        .unwrap();
        let pid = o.guard.logger_pid().unwrap();
        o.stdout
            .as_ref()
            .unwrap()
            .write_all(b"to stdout\n")
            .unwrap();
        o.stderr
            .as_ref()
            .unwrap()
            .write_all(b"to stderr\n")
            .unwrap();
        let guard = o.guard;
        drop((o.stdin, o.stdout, o.stderr));
        let t0 = Instant::now();
        guard.close();
        assert!(t0.elapsed() < FAST.grace, "it ended by itself at EOF");
        assert!(gone(pid), "reaped");
        let read = |f: &str| std::fs::read_to_string(tmp.0.join(f)).unwrap();
        assert_eq!(read("out"), "to stdout\n");
        assert_eq!(read("err"), "to stderr\n");
        let env = read("env");
        assert!(env.contains("CONTAINER_ID=c1\n"), "{env}");
        assert!(env.contains("CONTAINER_NAMESPACE=ns1\n"), "{env}");
        assert!(!env.contains("HOME="), "{env}");
    }

    #[test]
    fn terminal_mode_gives_the_logger_eof_on_fd_4() {
        let tmp = Tmp::new("tty");
        let d = tmp.0.display();
        let o = open(
            "c1",
            "ns1",
            &sh(&format!(
                "exec 5>&-; cat <&4 > {d}/err; echo eof > {d}/done; cat <&3 >/dev/null"
            )),
            true,
            FAST,
        )
        .unwrap();
        assert!(o.stderr.is_none());
        let marker = tmp.0.join("done");
        let t0 = Instant::now();
        while !marker.exists() && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(marker.exists(), "fd 4 reached EOF while stdout was open");
        drop(o.stdout);
        o.guard.close();
    }

    #[test]
    fn a_silent_logger_is_killed_and_start_fails() {
        let t0 = Instant::now();
        let e = open("c1", "ns1", &sh("exec sleep 30"), false, FAST)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("did not signal ready") && e.contains("killed"),
            "{e}"
        );
        assert!(t0.elapsed() < Duration::from_secs(5));
        let pid: u32 = e
            .split("(pid ")
            .nth(1)
            .and_then(|s| s.split(')').next())
            .and_then(|s| s.parse().ok())
            .unwrap();
        assert!(gone(pid), "pid {pid} reaped");
    }

    #[test]
    fn a_logger_that_ends_before_ready_fails_start() {
        let e = open("c1", "ns1", &sh("exit 3"), false, FAST)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("ended (exit status 3) before it signalled ready"),
            "{e}"
        );
    }

    #[test]
    fn a_logger_that_ignores_eof_gets_sigterm_then_sigkill() {
        let fast = Timeouts {
            grace: Duration::from_millis(200),
            ..FAST
        };
        let tmp = Tmp::new("term");
        let d = tmp.0.display();
        // Ready by a byte; then ignores SIGTERM and never reads.
        let o = open(
            "c1",
            "ns1",
            &sh(&format!(
                "trap 'echo term > {d}/term' TERM; echo >&5; while :; do sleep 0.05; done"
            )),
            false,
            fast,
        )
        .unwrap();
        let pid = o.guard.logger_pid().unwrap();
        let guard = o.guard;
        drop((o.stdout, o.stderr));
        guard.close();
        assert!(gone(pid), "killed and reaped");
        assert!(tmp.0.join("term").exists(), "SIGTERM came first");
    }

    #[test]
    fn an_exec_failure_is_reported() {
        let tmp = Tmp::new("exec");
        let bad = tmp.0.join("not-a-program");
        std::fs::write(&bad, b"\x7fELF garbage").unwrap();
        std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o755)).unwrap();
        let uri = format!("binary://{}", bad.display());
        let e = open("c1", "ns1", &io(&uri, ""), false, FAST)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("exec: Exec format error"), "{e}");
    }

    #[test]
    fn a_file_gets_both_streams_appended() {
        let tmp = Tmp::new("file");
        // Its directory does not exist yet: Start makes it.
        let log = tmp.0.join("a/b/x.log");
        let uri = format!("file://{}", log.display());
        for round in 0..2 {
            let o = open("c1", "ns1", &io(&uri, &uri), false, FAST).unwrap();
            o.stdout
                .as_ref()
                .unwrap()
                .write_all(format!("out {round}\n").as_bytes())
                .unwrap();
            o.stderr
                .as_ref()
                .unwrap()
                .write_all(format!("err {round}\n").as_bytes())
                .unwrap();
            let guard = o.guard;
            drop((o.stdout, o.stderr));
            guard.close();
        }
        let text = std::fs::read_to_string(&log).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort();
        assert_eq!(lines, ["err 0", "err 1", "out 0", "out 1"], "{text:?}");
    }
}
