//! Shared helpers for micrun's cross-crate and end-to-end tests and for the demo.
//!
//! - [`firmware`] builds the bare-metal QEMU board firmware (its own cargo
//!   workspace under `rtos-side/firmware`).
//! - [`Qemu`] boots it with `qemu-system-aarch64 -M virt`, the UART on a unix
//!   socket; dropping it kills and reaps QEMU and removes the socket.
//! - [`HostSession`] drives a [`micrun_proto::HostEndpoint`] over a byte stream
//!   with the real clock: what the shim does, in a test-sized form.
//! - [`micad::MicadEmulator`] stands in for Mica's `micad` daemon: its wire
//!   protocol on unix sockets, firmware run as processes behind a pty console.
//! - [`xen::FakeXen`] sets up `fake-xl`, the stand-in for Xen's `xl` and
//!   `xenstore-read`: wrapper scripts, knobs, and cleanup of its domains.

pub mod cbuild;
pub mod containerd;
pub mod cri;
pub mod e2e;
pub mod micad;
pub mod oci;
pub mod peers;
pub mod remoteproc;
pub mod scenarios;
pub mod xen;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use micrun_proto::endpoint::transmit_buf_len;
use micrun_proto::frame::MAX_FRAME;
use micrun_proto::{HostConfig, HostEndpoint, HostEvent, LinkKind, Stream};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Builds the QEMU board firmware (agent mode, or raw mode without the agent) and
/// returns the ELF's path. Serialised: cargo builds of one target dir must not race.
pub fn firmware(raw: bool) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let (mut cmd, elf) = firmware_build(raw);
    let status = cmd
        .arg("--quiet")
        .status()
        .expect("run cargo to build the QEMU firmware");
    assert!(status.success(), "building the QEMU firmware failed");
    elf
}

/// The `cargo build` of the QEMU board firmware (its own workspace and target dir
/// under `rtos-side/firmware`) that [`firmware`] runs quietly, and the ELF it makes.
pub fn firmware_build(raw: bool) -> (Command, PathBuf) {
    let root = repo_root();
    let target_dir = root
        .join("rtos-side/firmware/target")
        .join(if raw { "raw" } else { "agent" });
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["build", "--release", "--target", "aarch64-unknown-none"])
        .arg("--manifest-path")
        .arg(root.join("rtos-side/firmware/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    if raw {
        cmd.args(["--features", "raw"]);
    }
    (
        cmd,
        target_dir.join("aarch64-unknown-none/release/micrun-fw-qemu-virt"),
    )
}

/// Builds the host simulator `micrun-rtos-sim` (the `sim` pedestal's firmware) and
/// returns its path. Uses its own target directory, so it never waits for the
/// build lock of the `cargo test` that runs us.
pub fn sim_binary() -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let root = repo_root();
    let target_dir = root.join("target/sim-for-tests");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--quiet",
            "-p",
            "micrun-rtos-sim",
            "--bin",
            "micrun-rtos-sim",
        ])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .status()
        .expect("run cargo to build micrun-rtos-sim");
    assert!(status.success(), "building micrun-rtos-sim failed");
    target_dir.join("debug/micrun-rtos-sim")
}

/// A private temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("micrun-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running QEMU with the firmware's UART on a unix socket. Killed and reaped on
/// drop, whatever happened.
#[derive(Debug)]
pub struct Qemu {
    child: Option<Child>,
    /// The UART: bytes written here reach the firmware, its output comes back.
    pub uart: UnixStream,
    _dir: TempDir,
}

impl Qemu {
    /// Boots `fw` with `smp` CPUs and `mem_mib` MiB. QEMU waits for our connection
    /// before running the guest (`server=on,wait=on`), so no output is lost.
    pub fn boot(fw: &Path, smp: u32, mem_mib: u32) -> Qemu {
        let dir = TempDir::new("qemu");
        let sock = dir.path().join("uart.sock");
        let child = Command::new("qemu-system-aarch64")
            .args(["-M", "virt", "-cpu", "cortex-a53"])
            .args(["-smp", &smp.to_string(), "-m", &mem_mib.to_string()])
            .args([
                "-nodefaults",
                "-display",
                "none",
                "-monitor",
                "none",
                "-no-reboot",
            ])
            .arg("-kernel")
            .arg(fw)
            .arg("-chardev")
            .arg(format!(
                "socket,id=link,path={},server=on,wait=on",
                sock.display()
            ))
            .args(["-serial", "chardev:link"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("qemu.log")).expect("qemu log file"))
            .spawn()
            .expect("start qemu-system-aarch64 (package qemu-system-arm)");
        let mut q = Qemu {
            child: Some(child),
            // Placeholder until connected; replaced below.
            uart: UnixStream::pair().expect("socketpair").0,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match UnixStream::connect(&sock) {
                Ok(s) => {
                    q.uart = s;
                    return q;
                }
                Err(e) => {
                    if let Some(status) = q.try_wait() {
                        let log = std::fs::read_to_string(q._dir.path().join("qemu.log"));
                        panic!("qemu exited before opening its UART socket: {status}: {log:?}");
                    }
                    assert!(
                        Instant::now() < deadline,
                        "qemu UART socket never appeared: {e}"
                    );
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }

    /// QEMU's exit status if it has ended.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits up to `timeout` for QEMU to end by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_wait() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Keeps a unix listener and its path for a test, removing the path on drop.
#[derive(Debug)]
pub struct Listener {
    pub listener: UnixListener,
    pub path: PathBuf,
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A host endpoint driven over a byte stream with the real clock.
pub struct HostSession<S: Read + Write> {
    pub link: S,
    pub ep: HostEndpoint,
    start: Instant,
    /// Events seen so far, in order.
    pub events: Vec<HostEvent>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    link_closed: bool,
}

impl<S: Read + Write> std::fmt::Debug for HostSession<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostSession")
            .field("ep", &self.ep)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

/// What [`HostSession`] needs from its stream besides Read + Write.
pub trait Timeout {
    fn set_read_timeout(&self, d: Option<Duration>) -> std::io::Result<()>;
}

impl Timeout for UnixStream {
    fn set_read_timeout(&self, d: Option<Duration>) -> std::io::Result<()> {
        UnixStream::set_read_timeout(self, d)
    }
}

/// A pedestal's link (two fds, e.g. a pty or a socket, non-blocking) as a
/// blocking stream for [`HostSession`]: reads wait up to the session's read
/// timeout, a hung-up pty (EIO) reads as end of stream, and a link that adds
/// micad's `\r` before `\n` ([`micrun_shim::pedestal::RxTranslate`]) is
/// undone as the shim's relay undoes it.
pub struct FdLink {
    rx: std::fs::File,
    tx: std::fs::File,
    timeout: std::cell::Cell<Option<Duration>>,
    restorer: Option<micrun_shim::pedestal::micad::NewlineRestorer>,
    pending: Vec<u8>,
}

impl FdLink {
    pub fn new(link: micrun_shim::pedestal::Link) -> FdLink {
        let restorer = (link.rx_translate == micrun_shim::pedestal::RxTranslate::MicadNewlines)
            .then(micrun_shim::pedestal::micad::NewlineRestorer::new);
        FdLink::with(link.rx, link.tx, restorer)
    }

    /// `rx` and `tx` as given, and a newline restorer if `restorer`.
    pub fn with(
        rx: std::os::fd::OwnedFd,
        tx: std::os::fd::OwnedFd,
        restorer: Option<micrun_shim::pedestal::micad::NewlineRestorer>,
    ) -> FdLink {
        FdLink {
            rx: rx.into(),
            tx: tx.into(),
            timeout: std::cell::Cell::new(None),
            restorer,
            pending: Vec::new(),
        }
    }

    fn wait(
        fd: std::os::fd::BorrowedFd<'_>,
        events: nix::poll::PollFlags,
        t: Option<Duration>,
    ) -> std::io::Result<bool> {
        use nix::poll::{poll, PollFd, PollTimeout};
        let t = t.map_or(PollTimeout::NONE, |t| {
            PollTimeout::try_from(t).unwrap_or(PollTimeout::MAX)
        });
        Ok(poll(&mut [PollFd::new(fd, events)], t)? > 0)
    }
}

impl Read for FdLink {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::fd::AsFd;
        if self.pending.is_empty() {
            if !FdLink::wait(
                self.rx.as_fd(),
                nix::poll::PollFlags::POLLIN,
                self.timeout.get(),
            )? {
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            let mut raw = [0u8; 4096];
            let n = match self.rx.read(&mut raw) {
                Err(e) if e.raw_os_error() == Some(libc::EIO) => 0,
                other => other?,
            };
            if n == 0 {
                return Ok(0);
            }
            match self.restorer.as_mut() {
                Some(restorer) => restorer.restore(&raw[..n], &mut self.pending),
                None => self.pending.extend_from_slice(&raw[..n]),
            }
            if self.pending.is_empty() {
                // Only a held '\r': not an end of stream.
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

impl Write for FdLink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use std::os::fd::AsFd;
        FdLink::wait(
            self.tx.as_fd(),
            nix::poll::PollFlags::POLLOUT,
            Some(Duration::from_secs(1)),
        )?;
        self.tx.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Timeout for FdLink {
    fn set_read_timeout(&self, d: Option<Duration>) -> std::io::Result<()> {
        self.timeout.set(d);
        Ok(())
    }
}

impl<S: Read + Write + Timeout> HostSession<S> {
    /// Steps for `d`.
    pub fn step_for(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.step();
        }
    }

    /// Asks the agent for stats and waits for them.
    pub fn stats(&mut self, timeout: Duration) -> micrun_proto::Stats {
        self.ep.request_stats().expect("a stats request");
        let mut got = None;
        self.until(timeout, "a Stats event", |s| {
            got = s.events.iter().rev().find_map(|e| match e {
                HostEvent::Stats(st) => Some(*st),
                _ => None,
            });
            got.is_some()
        });
        got.expect("checked by until")
    }

    /// `Pong`s received so far.
    pub fn pongs(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, HostEvent::Pong { .. }))
            .count()
    }

    pub fn new(link: S, cfg: HostConfig) -> Self {
        HostSession {
            link,
            ep: HostEndpoint::new(cfg, 0),
            start: Instant::now(),
            events: Vec::new(),
            stdout: Vec::new(),
            stderr: Vec::new(),
            link_closed: false,
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// One round: send what is due, wait for input up to the next timer (at most
    /// 20 ms), feed it, run timers, collect events and console output.
    pub fn step(&mut self) {
        let now = self.now_ms();
        if self.ep.poll_timeout().is_some_and(|t| t <= now) {
            self.ep.handle_timeout(now);
        }
        let mut buf = [0u8; transmit_buf_len(LinkKind::Stream, MAX_FRAME)];
        while let Some(n) = self.ep.poll_transmit(now, &mut buf) {
            if self.link.write_all(&buf[..n]).is_err() {
                self.link_closed = true;
                break;
            }
        }
        let wait = self
            .ep
            .poll_timeout()
            .map_or(20, |t| t.saturating_sub(now).clamp(1, 20));
        let _ = self
            .link
            .set_read_timeout(Some(Duration::from_millis(wait)));
        let mut rx = [0u8; 4096];
        if !self.link_closed {
            match self.link.read(&mut rx) {
                Ok(0) => self.link_closed = true,
                Ok(n) => {
                    let now = self.now_ms();
                    self.ep.handle_input(now, &rx[..n]);
                }
                Err(_) => {} // timeout
            }
        }
        while let Some(e) = self.ep.poll_event() {
            self.events.push(e);
        }
        let mut b = [0u8; 4096];
        loop {
            let n = self.ep.read_console(Stream::Stdout, &mut b);
            if n == 0 {
                break;
            }
            self.stdout.extend_from_slice(&b[..n]);
        }
        loop {
            let n = self.ep.read_console(Stream::Stderr, &mut b);
            if n == 0 {
                break;
            }
            self.stderr.extend_from_slice(&b[..n]);
        }
    }

    /// Whether the link reached end-of-file (the partition went away).
    pub fn link_closed(&self) -> bool {
        self.link_closed
    }

    /// Steps until `done` holds; panics with the session state after `timeout`.
    pub fn until(&mut self, timeout: Duration, what: &str, mut done: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + timeout;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; events {:?}; stdout {:?}",
                self.events,
                String::from_utf8_lossy(&self.stdout)
            );
            self.step();
        }
    }

    /// Types a line on the console.
    pub fn type_line(&mut self, line: &str) {
        let data = format!("{line}\n");
        let mut rest = data.as_bytes();
        while !rest.is_empty() {
            let n = self.ep.write_stdin(rest);
            rest = &rest[n..];
            if !rest.is_empty() {
                self.step();
            }
        }
    }

    /// Waits until stdout contains `needle` after byte `from`; returns the end
    /// offset of the match.
    pub fn expect_stdout(&mut self, from: usize, needle: &str, timeout: Duration) -> usize {
        let mut found = None;
        self.until(timeout, &format!("{needle:?} on stdout"), |s| {
            let hay = &s.stdout[from.min(s.stdout.len())..];
            if let Some(i) = find(hay, needle.as_bytes()) {
                found = Some(from + i + needle.len());
                true
            } else {
                false
            }
        });
        // `until` returned because `done` held, which set `found`.
        found.unwrap_or(from)
    }
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Children of the test process (pid, state letter from `/proc/<pid>/stat`).
pub fn children() -> Vec<(u32, char)> {
    let me = std::process::id();
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(me) {
            out.push((pid, fields[0].chars().next().unwrap_or('?')));
        }
    }
    out
}

/// The entries of `dir`, sorted.
pub fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}
