//! The simulator in agent mode over stdin/stdout pipes, driven by a real
//! `micrun_proto::HostEndpoint` as the shim would. Every child is reaped by
//! [`ChildGuard`]; waits have deadlines, never sleeps.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use micrun_proto::endpoint::transmit_buf_len;
use micrun_proto::frame::MAX_FRAME;
use micrun_proto::{ExitReason, HostConfig, HostEndpoint, HostEvent, LinkKind, Stream};

const SIM: &str = env!("CARGO_BIN_EXE_micrun-rtos-sim");
const TIMEOUT: Duration = Duration::from_secs(20);

/// Kills (by PID) and waits for the child on drop, whatever happens.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A host session with one simulator process.
struct Host {
    child: ChildGuard,
    stdin: Option<ChildStdin>,
    rx: Receiver<Vec<u8>>,
    ep: HostEndpoint,
    start: Instant,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    events: Vec<HostEvent>,
    eof: bool,
}

impl Host {
    fn spawn(args: &[&str]) -> Self {
        // The host clock starts before the simulator does, so the sim's uptime can
        // never be ahead of it.
        let start = Instant::now();
        let mut child = ChildGuard(
            Command::new(SIM)
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawning micrun-rtos-sim"),
        );
        let stdin = child.0.stdin.take();
        let mut stdout = child.0.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut chunk = vec![0u8; 64 * 1024];
            while let Ok(n @ 1..) = stdout.read(&mut chunk) {
                if tx.send(chunk[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Host {
            child,
            stdin,
            rx,
            ep: HostEndpoint::new(HostConfig::default(), 0),
            start,
            stdout: Vec::new(),
            stderr: Vec::new(),
            events: Vec::new(),
            eof: false,
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Runs due timers, transmits what is due, and collects events and
    /// console output.
    fn pump(&mut self) {
        let now = self.now();
        if self.ep.poll_timeout().is_some_and(|t| t <= now) {
            self.ep.handle_timeout(now);
        }
        let mut buf = [0u8; transmit_buf_len(LinkKind::Stream, MAX_FRAME)];
        while let Some(n) = self.ep.poll_transmit(now, &mut buf) {
            if let Some(stdin) = &mut self.stdin {
                // The sim may have exited already; its EOF is what counts.
                if stdin.write_all(&buf[..n]).is_err() {
                    self.stdin = None;
                }
            }
        }
        while let Some(ev) = self.ep.poll_event() {
            self.events.push(ev);
        }
        let mut chunk = [0u8; 4096];
        for (stream, sink) in [
            (Stream::Stdout, &mut self.stdout),
            (Stream::Stderr, &mut self.stderr),
        ] {
            loop {
                let n = self.ep.read_console(stream, &mut chunk);
                if n == 0 {
                    break;
                }
                sink.extend_from_slice(&chunk[..n]);
            }
        }
    }

    /// Waits (at most until `deadline` or the endpoint's next timer) for
    /// bytes from the sim and feeds them to the endpoint.
    fn receive(&mut self, deadline: Instant) {
        if self.eof {
            return;
        }
        let mut wait = deadline.saturating_duration_since(Instant::now());
        if let Some(t) = self.ep.poll_timeout() {
            wait = wait.min(Duration::from_millis(t.saturating_sub(self.now())));
        }
        match self.rx.recv_timeout(wait) {
            Ok(data) => self.ep.handle_input(self.now(), &data),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => self.eof = true,
        }
    }

    /// Runs the session until `done` holds; panics with the state at the
    /// deadline or when the sim closed its output and `done` is still false.
    fn until(&mut self, what: &str, mut done: impl FnMut(&Host) -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        self.pump();
        while !done(self) {
            assert!(
                Instant::now() < deadline && !self.eof,
                "waiting for {what}: eof {}, events {:?}\nstdout {:?}\nstderr {:?}",
                self.eof,
                self.events,
                tail(&self.stdout),
                tail(&self.stderr),
            );
            self.receive(deadline);
            self.pump();
        }
    }

    /// Waits until stdout ends with `text`, then forgets the stdout so far.
    fn expect_stdout(&mut self, text: &[u8]) {
        self.until(&String::from_utf8_lossy(text), |h| h.stdout.ends_with(text));
        self.stdout.clear();
    }

    fn send_line(&mut self, line: &str) {
        let n = self.ep.write_stdin(line.as_bytes());
        assert_eq!(n, line.len(), "stdin ring full");
    }

    fn exited(&self) -> Option<(i32, ExitReason)> {
        self.events.iter().find_map(|e| match e {
            HostEvent::Exited { code, reason } => Some((*code, *reason)),
            _ => None,
        })
    }

    /// Waits for the `Exited` report and the process end.
    fn expect_exit(&mut self, code: i32, reason: ExitReason) -> ExitStatus {
        self.until("Exited", |h| h.exited().is_some());
        assert_eq!(self.exited(), Some((code, reason)));
        // Keep acknowledging until the sim has seen the ack and closed stdout.
        self.until("EOF", |h| h.eof);
        self.child.0.wait().unwrap()
    }
}

fn tail(v: &[u8]) -> String {
    String::from_utf8_lossy(&v[v.len().saturating_sub(300)..]).into_owned()
}

fn connected(board: &str) -> Host {
    let mut host = Host::spawn(&["--board", board]);
    host.until("Connected", |h| h.ep.is_connected());
    let peer = host.ep.peer().unwrap();
    assert_eq!(peer.board.as_str(), board);
    assert_eq!(peer.os.as_str(), "linux");
    host.expect_stdout(format!("micrun demo shell on {board} (linux)\r\n> ").as_bytes());
    host.until("Ready", |h| h.events.contains(&HostEvent::Ready));
    host
}

#[test]
fn agent_session() {
    let mut host = connected("agentbrd");
    host.send_line("echo over the agent\r");
    host.expect_stdout(b"over the agent\r\n> ");
    host.send_line("hello\r");
    host.expect_stdout(b"hello from agentbrd\r\n> ");

    host.ep.request_stats().unwrap();
    host.until("Stats", |h| {
        h.events.iter().any(|e| matches!(e, HostEvent::Stats(_)))
    });
    let stats = host
        .events
        .iter()
        .find_map(|e| match e {
            HostEvent::Stats(s) => Some(*s),
            _ => None,
        })
        .unwrap();
    assert!(
        stats.mem_total_kib > stats.mem_used_kib && stats.mem_used_kib > 0,
        "{stats:?}"
    );
    // The sim started after the host's clock did, so its uptime cannot exceed it
    // (it may be 0 on a fast machine: the whole exchange can fit in 1 ms).
    assert!(
        stats.cpu_load_permille <= 1000 && stats.uptime_ms <= host.now(),
        "{stats:?}"
    );

    host.ep.send_signal(10).unwrap();
    host.expect_stdout(b"signal 10\r\n");

    // Far more than every ring on the way: only credit-paced transfer works.
    host.send_line("flood 100000\r");
    host.until("flood done", |h| {
        h.stdout.ends_with(b"flood done 100000\r\n> ")
    });
    let mut expected: Vec<u8> = (0..100_000u32)
        .map(|i| {
            if i % 64 == 63 {
                b'\n'
            } else {
                b'a' + (i % 26) as u8
            }
        })
        .collect();
    expected.extend_from_slice(b"\r\nflood done 100000\r\n> ");
    assert!(host.stdout == expected, "flood output differs");
    host.stdout.clear();

    host.send_line("exit 300\r");
    let status = host.expect_exit(300, ExitReason::Normal);
    assert_eq!(status.code(), Some(300 & 0xff));
}

#[test]
fn stop_request() {
    let mut host = connected("sim");
    // Stop in the middle of a long flood: the sim abandons it.
    host.send_line("flood 100000000\r");
    host.until("flood output", |h| h.stdout.len() > 10_000);
    host.ep.send_stop(1000).unwrap();
    let status = host.expect_exit(0, ExitReason::Normal);
    assert!(
        host.stdout.ends_with(b"stopping\r\n"),
        "{}",
        tail(&host.stdout)
    );
    assert_eq!(status.code(), Some(0));
}

#[test]
fn panic_reports_exited_panic() {
    let mut host = connected("sim");
    host.send_line("panic\r");
    let status = host.expect_exit(101, ExitReason::Panic);
    assert_eq!(host.stderr, b"PANIC: requested by shell\r\n");
    assert_eq!(status.code(), Some(101));
}

#[test]
fn link_eof_exits_0() {
    let mut host = connected("sim");
    host.stdin = None;
    host.until("EOF", |h| h.eof);
    assert_eq!(host.child.0.wait().unwrap().code(), Some(0));
}

/// utime + stime of a process in clock ticks (normally 10 ms each).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 1..];
    let f: Vec<&str> = after_comm.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn connected_idle_sim_sleeps() {
    let mut host = connected("sim");
    let before = cpu_ticks(host.child.0.id());
    // A measurement window, not a race: one second of an idle session with
    // the host's pings going back and forth.
    let end = Instant::now() + Duration::from_secs(1);
    while Instant::now() < end {
        host.receive(end);
        host.pump();
    }
    assert!(!host.eof && host.ep.is_connected());
    let used = cpu_ticks(host.child.0.id()) - before;
    assert!(used <= 10, "idle sim used {used} ticks of CPU in 1 s");
}

#[test]
fn hang_is_detected_as_peer_lost() {
    let mut host = Host::spawn(&["--board", "sim"]);
    host.ep = HostEndpoint::new(
        HostConfig {
            ping_interval_ms: 100,
            peer_timeout_ms: 500,
            ..HostConfig::default()
        },
        host.now(),
    );
    host.until("Connected", |h| h.ep.is_connected());
    host.until("Pong", |h| {
        h.events.iter().any(|e| matches!(e, HostEvent::Pong { .. }))
    });
    host.send_line("hang\r");
    host.until("PeerLost", |h| {
        h.events
            .iter()
            .any(|e| matches!(e, HostEvent::PeerLost { .. }))
    });
    let silent = host
        .events
        .iter()
        .find_map(|e| match e {
            HostEvent::PeerLost { silent_ms } => Some(*silent_ms),
            _ => None,
        })
        .unwrap();
    assert!((500..2000).contains(&silent), "silent for {silent} ms");
    // The process is still alive: only the host's liveness check found the hang.
    assert!(host.child.0.try_wait().unwrap().is_none());
}
