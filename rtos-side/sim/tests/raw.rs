//! The simulator in raw mode, as a real process over pipes, a pty and a unix
//! socket. Every child is reaped by [`ChildGuard`] even when an assertion
//! fails; output is awaited with a deadline instead of sleeps.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

const SIM: &str = env!("CARGO_BIN_EXE_micrun-rtos-sim");
const TIMEOUT: Duration = Duration::from_secs(20);

/// Kills (by PID) and waits for the child on drop, so no test leaves a
/// process behind, whatever happens.
struct ChildGuard(Child);

impl ChildGuard {
    fn spawn(cmd: &mut Command) -> Self {
        ChildGuard(cmd.spawn().expect("spawning micrun-rtos-sim"))
    }

    /// Waits for the exit, after its output has reached EOF (so it is exiting).
    fn wait(&mut self) -> ExitStatus {
        self.0.wait().expect("waiting for micrun-rtos-sim")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Bytes from a reader thread, awaited with a deadline.
struct Output {
    rx: Receiver<Vec<u8>>,
    buf: Vec<u8>,
    eof: bool,
}

impl Output {
    fn new(mut r: impl Read + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut chunk = vec![0u8; 64 * 1024];
            // Ends at EOF or an error (EIO on a pty whose master closed).
            while let Ok(n @ 1..) = r.read(&mut chunk) {
                if tx.send(chunk[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Output {
            rx,
            buf: Vec::new(),
            eof: false,
        }
    }

    /// Receives more bytes; false at EOF. Panics at the deadline.
    fn more(&mut self, deadline: Instant, waiting_for: &str) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(left) {
            Ok(data) => {
                self.buf.extend(data);
                true
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.eof = true;
                false
            }
            Err(RecvTimeoutError::Timeout) => panic!(
                "timed out waiting for {waiting_for}; got {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    /// Waits until the output contains `needle`; returns and consumes
    /// everything up to and including it.
    fn until(&mut self, needle: &[u8]) -> Vec<u8> {
        let deadline = Instant::now() + TIMEOUT;
        let what = String::from_utf8_lossy(needle).into_owned();
        loop {
            if let Some(i) = self.buf.windows(needle.len()).position(|w| w == needle) {
                return self.buf.drain(..i + needle.len()).collect();
            }
            assert!(
                self.more(deadline, &what),
                "EOF while waiting for {what:?}; got {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    /// Asserts that the next output is exactly `expected`.
    fn expect(&mut self, expected: &[u8]) {
        let deadline = Instant::now() + TIMEOUT;
        while self.buf.len() < expected.len() && self.more(deadline, "exact output") {}
        let got: Vec<u8> = self
            .buf
            .drain(..expected.len().min(self.buf.len()))
            .collect();
        assert!(
            got == expected,
            "expected {:?}\n     got {:?}",
            String::from_utf8_lossy(&expected[..expected.len().min(300)]),
            String::from_utf8_lossy(&got[..got.len().min(300)])
        );
    }

    /// Waits for EOF and returns whatever came before it.
    fn rest(&mut self) -> Vec<u8> {
        let deadline = Instant::now() + TIMEOUT;
        while self.more(deadline, "EOF") {}
        std::mem::take(&mut self.buf)
    }
}

fn banner(board: &str) -> Vec<u8> {
    format!("micrun demo shell on {board} (linux)\r\n> ").into_bytes()
}

fn flood(n: u32) -> Vec<u8> {
    let mut v: Vec<u8> = (0..n)
        .map(|i| {
            if i % 64 == 63 {
                b'\n'
            } else {
                b'a' + (i % 26) as u8
            }
        })
        .collect();
    v.extend_from_slice(format!("\r\nflood done {n}\r\n> ").as_bytes());
    v
}

fn raw_stdio(board: &str) -> (ChildGuard, ChildStdin, Output) {
    let mut child = ChildGuard::spawn(
        Command::new(SIM)
            .args(["--raw", "--board", board])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    );
    let stdin = child.0.stdin.take().unwrap();
    let out = Output::new(child.0.stdout.take().unwrap());
    (child, stdin, out)
}

/// A fresh path in the temp dir, removed on drop.
struct TempPath(PathBuf);

impl TempPath {
    fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("micrun-sim-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_file(&p);
        TempPath(p)
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

#[test]
fn stdio_session() {
    let (mut child, mut stdin, mut out) = raw_stdio("testbrd");
    out.expect(&banner("testbrd"));

    stdin.write_all(b"echo hello  world\r\n").unwrap();
    out.expect(b"hello  world\r\n> ");
    stdin.write_all(b"hello\r").unwrap();
    out.expect(b"hello from testbrd\r\n> ");

    stdin.write_all(b"stats\n").unwrap();
    let line = String::from_utf8(out.until(b"\r\n> ")).unwrap();
    let values: Vec<u64> = line
        .trim_end_matches("\r\n> ")
        .split(' ')
        .zip([
            "uptime_ms=",
            "cpu_load_permille=",
            "mem_used_kib=",
            "mem_total_kib=",
        ])
        .map(|(field, key)| {
            field
                .strip_prefix(key)
                .unwrap_or_else(|| panic!("{line:?}"))
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(values.len(), 4, "{line:?}");
    assert!(
        values[1] <= 1000 && values[2] > 0 && values[3] > values[2],
        "{line:?}"
    );

    // Several commands in one write; a flood far larger than any pipe buffer.
    stdin.write_all(b"flood 100000\recho after\r").unwrap();
    let mut expected = flood(100_000);
    expected.extend_from_slice(b"after\r\n> ");
    out.expect(&expected);

    stdin.write_all(b"exit 3\r").unwrap();
    assert_eq!(out.rest(), b"");
    assert_eq!(child.wait().code(), Some(3));
}

#[test]
fn exit_codes_are_truncated_like_posix() {
    for (cmd, code) in [("exit -1", 255), ("exit 258", 2), ("exit 0", 0)] {
        let (mut child, mut stdin, mut out) = raw_stdio("sim");
        out.expect(&banner("sim"));
        stdin.write_all(format!("{cmd}\r").as_bytes()).unwrap();
        assert_eq!(out.rest(), b"", "{cmd}");
        assert_eq!(child.wait().code(), Some(code), "{cmd}");
    }
}

#[test]
fn panic_exits_101() {
    let (mut child, mut stdin, mut out) = raw_stdio("sim");
    out.expect(&banner("sim"));
    stdin.write_all(b"panic\r").unwrap();
    assert_eq!(out.rest(), b"PANIC: requested by shell\r\n");
    assert_eq!(child.wait().code(), Some(101));
}

#[test]
fn eof_on_the_link_exits_0_after_pending_lines() {
    let (mut child, mut stdin, mut out) = raw_stdio("sim");
    stdin.write_all(b"echo last words\r").unwrap();
    drop(stdin);
    let mut expected = banner("sim");
    expected.extend_from_slice(b"last words\r\n> ");
    assert_eq!(out.rest(), expected);
    assert_eq!(child.wait().code(), Some(0));
}

/// `--input`: commands typed at boot, before (and without) any from the link.
#[test]
fn input_at_boot() {
    let mut child = ChildGuard::spawn(
        Command::new(SIM)
            .args(["--raw", "--input", "echo typed\rexit 4\r"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    );
    let _stdin = child.0.stdin.take().unwrap();
    let mut out = Output::new(child.0.stdout.take().unwrap());
    let mut expected = banner("sim");
    expected.extend_from_slice(b"typed\r\n> ");
    assert_eq!(out.rest(), expected);
    assert_eq!(child.wait().code(), Some(4));
}

#[test]
fn hang_stays_alive_and_silent() {
    let (mut child, mut stdin, mut out) = raw_stdio("sim");
    out.expect(&banner("sim"));
    stdin.write_all(b"hang\recho still there?\r").unwrap();
    // Nothing can prove "never answers" without waiting; a 300 ms window is
    // enough to catch a sim that keeps serving the link.
    let quiet = Instant::now() + Duration::from_millis(300);
    match out
        .rx
        .recv_timeout(quiet.saturating_duration_since(Instant::now()))
    {
        Err(RecvTimeoutError::Timeout) => {}
        other => panic!("hung sim answered: {other:?}"),
    }
    assert!(child.0.try_wait().unwrap().is_none(), "hung sim exited");
    // SIGTERM still ends it, through the cleanup path.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(out.rest(), b"");
    assert_eq!(child.wait().code(), Some(128 + 15));
}

#[test]
fn pty_link() {
    let link = TempPath::new("pty");
    let mut child = ChildGuard::spawn(
        Command::new(SIM)
            .args(["--raw", "--pty", "--pty-link"])
            .arg(&link.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let mut stderr = BufReader::new(child.0.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let pty = PathBuf::from(
        line.strip_prefix("pty: ")
            .unwrap_or_else(|| panic!("first stderr line: {line:?}"))
            .trim_end(),
    );
    assert_eq!(fs::read_link(&link.0).unwrap(), pty);

    let tty: File = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&pty)
        .unwrap();
    let mut writer = tty.try_clone().unwrap();
    let mut out = Output::new(tty);
    // The banner was written before we opened the slave; the pty kept it.
    out.expect(&banner("sim"));
    writer.write_all(b"echo over the pty\r").unwrap();
    out.expect(b"over the pty\r\n> ");
    writer.write_all(b"flood 10000\r").unwrap();
    out.expect(&flood(10_000));

    writer.write_all(b"exit 7\r").unwrap();
    // Exit is seen through stderr's EOF: the pty slave stays open here.
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "");
    assert_eq!(child.wait().code(), Some(7));
    assert!(
        fs::symlink_metadata(&link.0).is_err(),
        "--pty-link symlink left behind"
    );
}

#[test]
fn socket_link() {
    let path = TempPath::new("sock");
    let listener = UnixListener::bind(&path.0).unwrap();
    let mut child = ChildGuard::spawn(
        Command::new(SIM)
            .args(["--raw", "--socket"])
            .arg(&path.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null()),
    );
    let (conn, _) = listener.accept().unwrap();
    let mut writer = conn.try_clone().unwrap();
    let mut out = Output::new(conn);
    out.expect(&banner("sim"));
    writer.write_all(b"echo over a socket\r").unwrap();
    out.expect(b"over a socket\r\n> ");
    // The host closing the link ends the sim with 0.
    writer.shutdown(std::net::Shutdown::Both).unwrap();
    assert_eq!(out.rest(), b"");
    assert_eq!(child.wait().code(), Some(0));
}

#[test]
fn bad_flags_exit_2_with_usage() {
    let out = Command::new(SIM).arg("--frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("unknown argument `--frobnicate`") && err.contains("usage:"),
        "{err}"
    );

    let out = Command::new(SIM).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("usage:"));

    let out = Command::new(SIM)
        .args(["--raw", "--socket", "/nonexistent/micrun.sock"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("/nonexistent/micrun.sock"));
}

#[test]
fn idle_raw_sim_sleeps() {
    let (child, _stdin, mut out) = raw_stdio("sim");
    out.expect(&banner("sim"));
    let ticks = || {
        let stat = fs::read_to_string(format!("/proc/{}/stat", child.0.id())).unwrap();
        let f: Vec<String> = stat[stat.rfind(')').unwrap() + 1..]
            .split_whitespace()
            .map(String::from)
            .collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    let before = ticks();
    // A measurement window, not a race: the sim must sleep while idle.
    match out.rx.recv_timeout(Duration::from_secs(1)) {
        Err(RecvTimeoutError::Timeout) => {}
        other => panic!("idle sim wrote: {other:?}"),
    }
    let used = ticks() - before;
    assert!(used <= 10, "idle sim used {used} ticks of CPU in 1 s");
}
