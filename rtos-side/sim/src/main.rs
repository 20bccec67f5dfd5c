//! `micrun-rtos-sim`: the demo firmware built as a Linux process, the "RTOS"
//! behind micrun's `sim` pedestal and the tests' stand-in for a partition.
//!
//! Data flow:
//!
//! ```text
//!            link: stdin/stdout | unix socket (--socket) | pty master (--pty)
//!                 │ bytes in                           ▲ bytes out
//!   raw mode:     └─► Shell::feed ─► demo Shell ─► RawConsole (non-blocking write)
//!   agent mode:   └─► Agent (micrun-proto frames) ─► read_stdin ─► Shell::feed
//!                     Agent::write_stdout ◄─ AgentConsole ◄─ Shell::poll
//! ```
//!
//! One thread, one `poll(2)` loop over the link and a signalfd: the loop
//! sleeps until the link is readable, writable (only while output is blocked)
//! or the agent's next timer is due, so an idle sim uses no CPU. All link fds
//! are non-blocking; the shell produces output only as fast as the link (or
//! the agent's flow-control credit) accepts it.
//!
//! The shell's [`Action`]s become process behaviour: `exit <code>` ends the
//! process with `code & 0xff` (in agent mode once the host has the `Exited`
//! message), `panic` exits 101, `hang` stops servicing the link but stays alive.
//! `--ignore-stop` makes the application answer the host's stop requests with
//! `stop ignored` and go on, like a firmware without a graceful stop.
//! SIGINT/SIGTERM/SIGHUP are taken through a signalfd so that the `--pty-link`
//! symlink is removed and stdio flags restored even then.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use micrun_proto::Stats;
use micrun_rtos::demo::{Action, Board, Console, Exec, Shell};
use micrun_rtos::{Agent, AgentInfo, App, ExitReason};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use nix::unistd::{sysconf, SysconfVar};

const USAGE: &str = "\
usage: micrun-rtos-sim [OPTIONS]

Runs the micrun demo shell as a simulated RTOS partition.

Link (default: stdin/stdout):
  --socket PATH     connect to the unix stream socket server at PATH
  --pty             open a pseudo-terminal and use its master side; prints
                    `pty: /dev/pts/N` on stderr
  --pty-link PATH   with --pty: also create symlink PATH -> the pty slave
                    (removed on exit)
Mode:
  --raw             plain console bytes over the link, no micrun agent
Other:
  --board NAME      board name shown by the shell (default: sim)
  --input TEXT      console input typed at boot, before anything from the
                    link (at most 512 bytes; end each command with a CR)
  --ignore-stop     agent mode: answer the host's stop requests with
                    `stop ignored` on the console and go on (a firmware
                    without a graceful stop)
  --help            show this help
";

/// What the sim reports as its operating system (banner, handshake).
const OS_NAME: &str = "linux";

/// Exit code of the `panic` command, as a Rust panic exits.
const PANIC_EXIT_CODE: i32 = 101;

/// The simulator's agent: largest frame (496 bytes raw, 512 with COBS), 16 KiB
/// stdout/stderr rings, 4 KiB input ring, and 32 frames in flight: a pipe's
/// round trip is long next to the time it takes to write a frame, so a UART-sized
/// window of 4 would leave the link idle most of the time.
type SimAgent<'l> = Agent<AgentLink<'l>, 512, 16384, 4096, 32>;

fn main() -> ExitCode {
    let opts = match parse_args(std::env::args_os().skip(1)) {
        Ok(Some(opts)) => opts,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprint!("micrun-rtos-sim: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        // POSIX keeps the low 8 bits of an exit status.
        Ok(code) => ExitCode::from((code & 0xff) as u8),
        Err(msg) => {
            eprintln!("micrun-rtos-sim: {msg}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, PartialEq)]
enum LinkOpt {
    Stdio,
    Socket(PathBuf),
    Pty { link: Option<PathBuf> },
}

#[derive(Debug, PartialEq)]
struct Opts {
    link: LinkOpt,
    raw: bool,
    board: String,
    /// `--input`: typed at boot (a task whose stdin is not a console, such as
    /// one with a containerd log URI, can still be given commands).
    input: Vec<u8>,
    /// `--ignore-stop`: the application does not stop when the host asks.
    ignore_stop: bool,
}

/// `Ok(None)` means `--help`.
fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Option<Opts>, String> {
    let mut args = args.into_iter();
    let mut socket = None;
    let mut pty = false;
    let mut pty_link = None;
    let mut raw = false;
    let mut board = String::from("sim");
    let mut input = Vec::new();
    let mut ignore_stop = false;
    while let Some(arg) = args.next() {
        let arg = arg
            .into_string()
            .map_err(|a| format!("invalid argument {a:?}"))?;
        let mut value = |flag: &str| args.next().ok_or_else(|| format!("{flag} needs a value"));
        match arg.as_str() {
            "--help" | "-h" => return Ok(None),
            "--raw" => raw = true,
            "--ignore-stop" => ignore_stop = true,
            "--pty" => pty = true,
            "--socket" => socket = Some(PathBuf::from(value("--socket")?)),
            "--pty-link" => pty_link = Some(PathBuf::from(value("--pty-link")?)),
            "--input" => {
                input = std::os::unix::ffi::OsStringExt::into_vec(value("--input")?);
                if input.len() > micrun_rtos::demo::INPUT_CAPACITY {
                    return Err(format!(
                        "--input: {} bytes, at most {} fit",
                        input.len(),
                        micrun_rtos::demo::INPUT_CAPACITY
                    ));
                }
            }
            "--board" => {
                board = value("--board")?
                    .into_string()
                    .map_err(|_| "--board: name is not UTF-8".to_string())?;
            }
            _ => return Err(format!("unknown argument `{arg}`")),
        }
    }
    let link = match (socket, pty) {
        (Some(_), true) => return Err("--socket and --pty exclude each other".into()),
        (Some(path), false) if pty_link.is_none() => LinkOpt::Socket(path),
        (None, true) => LinkOpt::Pty { link: pty_link },
        (None, false) if pty_link.is_none() => LinkOpt::Stdio,
        _ => return Err("--pty-link needs --pty".into()),
    };
    Ok(Some(Opts {
        link,
        raw,
        board,
        input,
        ignore_stop,
    }))
}

fn run(opts: &Opts) -> Result<i32, String> {
    // Block the terminating signals and receive them as events instead, so
    // every exit path runs the destructors (pty symlink, stdio flags).
    let mut mask = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        mask.add(s);
    }
    mask.thread_block()
        .map_err(|e| format!("blocking signals: {e}"))?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| format!("signalfd: {e}"))?;

    let link = Link::open(&opts.link)?;
    let board = SimBoard::new(&opts.board);
    let end = if opts.raw {
        run_raw(&link, &board, &signals, &opts.input)
    } else {
        run_agent(&link, &board, &signals, opts)
    }?;
    Ok(match end {
        End::Exit(code) => code,
        End::Signal(signo) => 128 + signo,
    })
}

/// How the event loop ended.
enum End {
    Exit(i32),
    Signal(i32),
}

/// Raw mode: console bytes straight over the link, like an RTOS image with a
/// plain UART console.
fn run_raw(link: &Link, board: &SimBoard, signals: &SignalFd, input: &[u8]) -> Result<End, String> {
    let mut shell = Shell::new();
    shell.start(board);
    shell.feed(input);
    let mut eof = false;
    let mut buf = [0u8; 512];
    loop {
        let mut con = RawConsole::new(link);
        match shell.poll(board, &mut con) {
            Action::None => {}
            // The shell executes a line only once earlier output has drained
            // and our writes go straight to the fd: nothing is left to flush.
            Action::Exit(code) => return Ok(End::Exit(code)),
            Action::Panic => {
                // Best effort: the process ends either way.
                let _ = link.write_all(b"PANIC: requested by shell\r\n");
                return Ok(End::Exit(PANIC_EXIT_CODE));
            }
            Action::Hang => return hang(signals),
        }
        if con.closed || (eof && shell.is_idle()) {
            return Ok(End::Exit(0));
        }
        let busy = !shell.is_idle();
        let want_in = !eof && shell.input_room() > 0;
        let want_out = busy && con.blocked;
        // Busy but not blocked: the shell paused a long flood to let us look
        // at the link; come straight back.
        let timeout = if busy && !con.blocked {
            PollTimeout::ZERO
        } else if let Some(at) = shell.wake_at() {
            // A `sleep` runs.
            let ms = at.saturating_sub(board.uptime_ms());
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
        } else {
            PollTimeout::NONE
        };
        let ready = wait(link, signals, want_in, want_out, timeout)?;
        if ready.signal {
            if let Some(signo) = take_signal(signals) {
                return Ok(End::Signal(signo));
            }
        }
        if ready.input {
            let n = buf.len().min(shell.input_room());
            match link.read(&mut buf[..n]) {
                Ok(Some(0)) => eof = true,
                Ok(Some(n)) => shell.feed(&buf[..n]),
                Ok(None) => {}
                Err(e) => return Err(format!("reading the link: {e}")),
            }
        }
    }
}

/// Agent mode: the console and the lifecycle are carried by micrun-proto
/// frames through [`micrun_rtos::Agent`].
///
/// Each turn: the agent reads the link, runs its timers and calls the
/// [`DemoApp`] hooks; the shell takes console input from the agent and writes
/// its output into the agent's stdout ring (as far as the host's credit
/// allows); then the loop sleeps until link input, the agent's next timer or
/// a signal, or loops at once while there is work the agent has not sent yet.
fn run_agent(
    link: &Link,
    board: &SimBoard,
    signals: &SignalFd,
    opts: &Opts,
) -> Result<End, String> {
    // The agent wants `'static` names; the process lives as long as they do.
    let info = AgentInfo {
        os: OS_NAME,
        board: Box::leak(board.name.clone().into_boxed_str()),
    };
    // A host has memory to spare: full rpmsg-sized frames and 16 KiB output rings
    // (the bare-metal defaults are sized for a microcontroller).
    let mut agent: SimAgent<'_> = Agent::new(AgentLink::new(link), info);
    let mut app = DemoApp {
        board,
        shell: Shell::new(),
        exec: Exec::new(),
        stop_requested: false,
        ignore_stop: opts.ignore_stop,
    };
    // Before a host connects the banner waits in the agent's stdout ring.
    app.shell.start(board);
    app.shell.feed(&opts.input);
    let mut phase = Phase::Running;
    let mut buf = [0u8; 512];
    loop {
        agent.poll(board.uptime_ms(), &mut app);
        agent.link().flush();
        // Set when bytes moved between the shell and the agent's rings, or an
        // exit was reported: the agent should transmit before we sleep.
        let mut progress = false;
        match phase {
            Phase::Running if app.stop_requested => {
                // Abandon the shell (even mid-flood) and say goodbye.
                phase = Phase::Stopping(b"stopping\r\n");
                progress = true;
            }
            Phase::Running => {
                let n = buf.len().min(app.shell.input_room());
                let n = agent.read_stdin(&mut buf[..n]);
                app.shell.feed(&buf[..n]);
                let mut con = AgentConsole {
                    agent: &mut agent,
                    wrote: false,
                    blocked: false,
                };
                let action = app.shell.poll(board, &mut con);
                // Busy and not held back by credit: a long flood paused.
                progress = n > 0 || con.wrote || (!con.blocked && !app.shell.is_idle());
                progress |= run_exec(&mut agent, &mut app.exec, board);
                match action {
                    Action::None => {}
                    Action::Exit(code) => {
                        agent.exit(code, ExitReason::Normal);
                        phase = Phase::Exiting(code);
                    }
                    Action::Panic => {
                        // Best effort: a full stderr ring cuts the message.
                        agent.write_stderr(b"PANIC: requested by shell\r\n");
                        agent.exit(PANIC_EXIT_CODE, ExitReason::Panic);
                        phase = Phase::Exiting(PANIC_EXIT_CODE);
                    }
                    Action::Hang => return hang(signals),
                }
            }
            Phase::Stopping(left) => {
                let n = agent.write_stdout(left);
                progress = true;
                phase = if n == left.len() {
                    agent.exit(0, ExitReason::Normal);
                    Phase::Exiting(0)
                } else {
                    Phase::Stopping(&left[n..])
                };
            }
            Phase::Exiting(code) => {
                if agent.exit_delivered() {
                    return Ok(End::Exit(code));
                }
            }
        }
        let link_state = agent.link();
        if link_state.eof || link_state.closed {
            // The host is gone: nobody can take an exit report any more.
            return Ok(End::Exit(match phase {
                Phase::Exiting(code) => code,
                _ => 0,
            }));
        }
        let timeout = if progress || agent.link().buffered_input() {
            PollTimeout::ZERO
        } else {
            let wake = [app.shell.wake_at(), app.exec.wake_at()]
                .into_iter()
                .flatten();
            match agent.poll_timeout().into_iter().chain(wake).min() {
                Some(at) => {
                    let ms = at.saturating_sub(board.uptime_ms());
                    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
                }
                None => PollTimeout::NONE,
            }
        };
        // The agent writes blocking (`Link::write`), so only input is awaited.
        let ready = wait(link, signals, true, false, timeout)?;
        if ready.signal {
            if let Some(signo) = take_signal(signals) {
                return Ok(End::Signal(signo));
            }
        }
    }
}

/// Where agent mode stands.
#[derive(Clone, Copy)]
enum Phase {
    /// The shell runs.
    Running,
    /// The host asked to stop; the rest of `stopping\r\n` is still to be queued.
    Stopping(&'static [u8]),
    /// `exit` was reported with this code; waiting for the host's ack.
    Exiting(i32),
}

/// Advances the host's exec (the shell's commands; see [`Exec`]): its output
/// into the agent's exec ring, its end to the agent. True if it made progress.
fn run_exec(agent: &mut SimAgent<'_>, exec: &mut Exec, board: &SimBoard) -> bool {
    if !exec.is_running() {
        return false;
    }
    let mut con = ExecConsole {
        agent,
        wrote: false,
        blocked: false,
    };
    let end = exec.poll(board, &mut con);
    let progress = con.wrote || (!con.blocked && exec.is_busy());
    if let Some(code) = end {
        agent.exec_exit(code);
        return true;
    }
    progress
}

/// The demo application as the agent sees it.
struct DemoApp<'a> {
    board: &'a SimBoard,
    shell: Shell,
    /// The host's exec: one command of the shell at a time.
    exec: Exec,
    stop_requested: bool,
    /// `--ignore-stop`.
    ignore_stop: bool,
}

impl App for DemoApp<'_> {
    fn exec(&mut self, args: micrun_rtos::Args<'_>) -> bool {
        self.exec.start(args.as_bytes());
        true
    }

    fn exec_signal(&mut self, signo: u8) {
        self.exec.signal(signo);
    }

    fn stop_requested(&mut self, _grace_ms: u32) {
        if self.ignore_stop {
            self.shell.notify(b"stop ignored\r\n");
            return;
        }
        // Acted upon in the main loop, which can write to the agent.
        self.stop_requested = true;
    }

    fn signal(&mut self, signo: u8) {
        self.shell.notify(format!("signal {signo}\r\n").as_bytes());
    }

    fn resize(&mut self, rows: u16, cols: u16) {
        // Only a container with a terminal gets sizes: echo what is typed, as a
        // shell on a terminal does.
        self.shell.set_echo(true);
        // The demo has nothing to redraw; it shows that the size arrived.
        // A 0x0 size is "unknown" (ctr -t sends it when its own terminal has
        // none); printing it would land in the middle of the user's first line.
        if rows == 0 && cols == 0 {
            return;
        }
        self.shell
            .notify(format!("resize {rows}x{cols}\r\n").as_bytes());
    }

    fn stats(&mut self, uptime_ms: u64) -> Stats {
        Stats {
            uptime_ms,
            ..self.board.stats()
        }
    }
}

/// The shell's console in agent mode: the agent's stdout ring (`err` text: its
/// stderr ring).
struct AgentConsole<'a, 'l> {
    agent: &'a mut SimAgent<'l>,
    wrote: bool,
    /// The ring was full (no credit from the host yet).
    blocked: bool,
}

/// The exec's console: the agent's exec ring.
struct ExecConsole<'a, 'l> {
    agent: &'a mut SimAgent<'l>,
    wrote: bool,
    blocked: bool,
}

impl Console for ExecConsole<'_, '_> {
    fn write(&mut self, data: &[u8]) -> usize {
        let n = self.agent.write_exec(data);
        self.wrote |= n > 0;
        self.blocked |= n < data.len();
        n
    }
}

impl Console for AgentConsole<'_, '_> {
    fn write(&mut self, data: &[u8]) -> usize {
        let n = self.agent.write_stdout(data);
        self.wrote |= n > 0;
        self.blocked |= n < data.len();
        n
    }

    fn write_err(&mut self, data: &[u8]) -> usize {
        let n = self.agent.write_stderr(data);
        self.wrote |= n > 0;
        self.blocked |= n < data.len();
        n
    }
}

/// [`Link`] as the agent's link, remembering EOF and write failures for the
/// main loop (the agent's trait has no way to report them).
/// The agent's view of the link. It batches: reads fill a 16 KiB buffer with one
/// system call and hand it out in the agent's small chunks; writes collect in a
/// buffer that [`AgentLink::flush`] sends after each `Agent::poll`. One system call
/// per frame each way had cost more than the protocol itself on a pipe.
struct AgentLink<'a> {
    link: &'a Link,
    rx: Box<[u8]>,
    rx_start: usize,
    rx_end: usize,
    tx: Vec<u8>,
    eof: bool,
    closed: bool,
}

const LINK_BATCH: usize = 16 * 1024;

impl<'a> AgentLink<'a> {
    fn new(link: &'a Link) -> Self {
        AgentLink {
            link,
            rx: vec![0; LINK_BATCH].into_boxed_slice(),
            rx_start: 0,
            rx_end: 0,
            tx: Vec::with_capacity(LINK_BATCH),
            eof: false,
            closed: false,
        }
    }

    /// Input already read from the link that the agent has not taken yet (the
    /// link's fd will not show it as readable).
    fn buffered_input(&self) -> bool {
        self.rx_start != self.rx_end
    }

    /// Sends what the agent wrote (blocking until the link takes it).
    fn flush(&mut self) {
        if !self.closed && !self.tx.is_empty() && self.link.write_all(&self.tx).is_err() {
            self.closed = true;
        }
        self.tx.clear();
    }
}

impl micrun_rtos::Link for AgentLink<'_> {
    fn read(&mut self, buf: &mut [u8]) -> usize {
        if self.rx_start == self.rx_end && !self.eof {
            self.rx_start = 0;
            self.rx_end = match self.link.read(&mut self.rx) {
                Ok(Some(0)) | Err(_) => {
                    self.eof = true;
                    0
                }
                Ok(Some(n)) => n,
                Ok(None) => 0,
            };
        }
        let n = buf.len().min(self.rx_end - self.rx_start);
        buf[..n].copy_from_slice(&self.rx[self.rx_start..self.rx_start + n]);
        self.rx_start += n;
        n
    }

    fn write(&mut self, data: &[u8]) {
        self.tx.extend_from_slice(data);
        if self.tx.len() >= LINK_BATCH {
            self.flush();
        }
    }
}

/// `hang`: stop servicing the link for good. Only a terminating signal ends
/// the process (or SIGKILL), as with a wedged partition.
fn hang(signals: &SignalFd) -> Result<End, String> {
    loop {
        let mut fds = [PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
        if let Some(signo) = take_signal(signals) {
            return Ok(End::Signal(signo));
        }
    }
}

fn take_signal(signals: &SignalFd) -> Option<i32> {
    match signals.read_signal() {
        Ok(Some(info)) => Some(info.ssi_signo as i32),
        _ => None,
    }
}

struct Ready {
    input: bool,
    signal: bool,
}

/// Sleeps in poll(2) until the link is readable (if `want_in`), writable (if
/// `want_out`), a signal arrives or `timeout` passes.
fn wait(
    link: &Link,
    signals: &SignalFd,
    want_in: bool,
    want_out: bool,
    timeout: PollTimeout,
) -> Result<Ready, String> {
    // Only fds we want to hear from are polled: POLLHUP/POLLERR are reported
    // even with no events requested, and a closed stdin or stdout that we
    // are not waiting on must not wake us in a busy loop.
    let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
    if want_in {
        fds.push(PollFd::new(link.rx.as_fd(), PollFlags::POLLIN));
    }
    if want_out {
        fds.push(PollFd::new(link.tx.as_fd(), PollFlags::POLLOUT));
    }
    match poll(&mut fds, timeout) {
        Ok(_) => {}
        Err(Errno::EINTR) => {
            return Ok(Ready {
                input: false,
                signal: false,
            })
        }
        Err(e) => return Err(format!("poll: {e}")),
    }
    let fired = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
    Ok(Ready {
        signal: fired(&fds[0]),
        // POLLHUP/POLLERR count too: the read then reports EOF or the error.
        input: want_in && fired(&fds[1]),
    })
}

/// The byte link to the host: a read side and a write side (the same file
/// for a socket or pty, stdin and stdout otherwise), both non-blocking.
struct Link {
    rx: OwnedFd,
    tx: OwnedFd,
    /// The pty slave, held open so that the master never sees a hang-up
    /// (EIO, endless POLLHUP) while no client has the slave open.
    _pty_slave: Option<OwnedFd>,
    _symlink: Option<Symlink>,
    /// File status flags to put back on shared stdio descriptions on exit,
    /// so that a terminal is not left non-blocking for the parent shell.
    restore: Vec<(OwnedFd, OFlag)>,
}

impl Link {
    fn open(opt: &LinkOpt) -> Result<Link, String> {
        let link = match opt {
            LinkOpt::Stdio => {
                let dup = |fd: BorrowedFd<'_>, what: &str| {
                    fd.try_clone_to_owned()
                        .map_err(|e| format!("duplicating {what}: {e}"))
                };
                let rx = dup(io::stdin().as_fd(), "stdin")?;
                let tx = dup(io::stdout().as_fd(), "stdout")?;
                let mut restore = Vec::new();
                for fd in [&rx, &tx] {
                    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(|e| format!("fcntl: {e}"))?;
                    restore.push((dup(fd.as_fd(), "stdio")?, OFlag::from_bits_retain(flags)));
                }
                Link {
                    rx,
                    tx,
                    _pty_slave: None,
                    _symlink: None,
                    restore,
                }
            }
            LinkOpt::Socket(path) => {
                let stream = UnixStream::connect(path)
                    .map_err(|e| format!("connecting to {}: {e}", path.display()))?;
                let rx = OwnedFd::from(stream);
                let tx = rx.try_clone().map_err(|e| format!("dup: {e}"))?;
                Link {
                    rx,
                    tx,
                    _pty_slave: None,
                    _symlink: None,
                    restore: Vec::new(),
                }
            }
            LinkOpt::Pty { link } => {
                let pty = nix::pty::openpty(None, None).map_err(|e| format!("openpty: {e}"))?;
                // Raw: no echo, no line discipline, no CR/LF translation;
                // the link must carry bytes (and agent frames) unchanged.
                let mut t = tcgetattr(&pty.slave).map_err(|e| format!("tcgetattr: {e}"))?;
                cfmakeraw(&mut t);
                tcsetattr(&pty.slave, SetArg::TCSANOW, &t)
                    .map_err(|e| format!("tcsetattr: {e}"))?;
                let slave_path =
                    nix::unistd::ttyname(&pty.slave).map_err(|e| format!("ttyname: {e}"))?;
                let symlink = match link {
                    Some(path) => Some(Symlink::create(path, &slave_path)?),
                    None => None,
                };
                // Announced after the symlink exists, so a reader of stderr
                // may use either right away.
                eprintln!("pty: {}", slave_path.display());
                let tx = pty.master.try_clone().map_err(|e| format!("dup: {e}"))?;
                Link {
                    rx: pty.master,
                    tx,
                    _pty_slave: Some(pty.slave),
                    _symlink: symlink,
                    restore: Vec::new(),
                }
            }
        };
        for fd in [&link.rx, &link.tx] {
            let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(|e| format!("fcntl: {e}"))?;
            let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
            fcntl(fd, FcntlArg::F_SETFL(flags)).map_err(|e| format!("fcntl: {e}"))?;
        }
        Ok(link)
    }

    /// Non-blocking read: `Ok(None)` when nothing is available, `Ok(Some(0))`
    /// at end of stream.
    fn read(&self, buf: &mut [u8]) -> Result<Option<usize>, Errno> {
        loop {
            match nix::unistd::read(&self.rx, buf) {
                Ok(n) => return Ok(Some(n)),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Ok(None),
                // A vanished peer is an end of stream, not a failure.
                Err(Errno::ECONNRESET | Errno::EIO) => return Ok(Some(0)),
                Err(e) => return Err(e),
            }
        }
    }

    /// Non-blocking write: bytes accepted now (0 when the link is full).
    fn write(&self, data: &[u8]) -> Result<usize, Errno> {
        loop {
            match nix::unistd::write(&self.tx, data) {
                Ok(n) => return Ok(n),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Ok(0),
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes all of `data`, sleeping in poll(2) while the link is full.
    fn write_all(&self, mut data: &[u8]) -> Result<(), Errno> {
        while !data.is_empty() {
            let n = self.write(data)?;
            data = &data[n..];
            if n == 0 {
                let mut fds = [PollFd::new(self.tx.as_fd(), PollFlags::POLLOUT)];
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        for (fd, flags) in &self.restore {
            let _ = fcntl(fd, FcntlArg::F_SETFL(*flags));
        }
    }
}

/// A symlink to the pty slave that is removed again on drop.
struct Symlink(PathBuf);

impl Symlink {
    fn create(path: &Path, target: &Path) -> Result<Symlink, String> {
        // A stale link from a killed run is replaced; anything else is not ours.
        if let Ok(meta) = fs::symlink_metadata(path) {
            if !meta.file_type().is_symlink() {
                return Err(format!(
                    "--pty-link {}: exists and is not a symlink",
                    path.display()
                ));
            }
            fs::remove_file(path).map_err(|e| format!("removing {}: {e}", path.display()))?;
        }
        std::os::unix::fs::symlink(target, path)
            .map_err(|e| format!("--pty-link {}: {e}", path.display()))?;
        Ok(Symlink(path.to_path_buf()))
    }
}

impl Drop for Symlink {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// The shell's console in raw mode: straight, non-blocking writes to the link.
struct RawConsole<'a> {
    link: &'a Link,
    /// The link refused bytes: wait for POLLOUT before polling the shell again.
    blocked: bool,
    /// The link is gone (EPIPE and the like).
    closed: bool,
}

impl<'a> RawConsole<'a> {
    fn new(link: &'a Link) -> Self {
        RawConsole {
            link,
            blocked: false,
            closed: false,
        }
    }
}

impl Console for RawConsole<'_> {
    fn write(&mut self, data: &[u8]) -> usize {
        match self.link.write(data) {
            Ok(n) => {
                self.blocked |= n < data.len();
                n
            }
            Err(_) => {
                self.closed = true;
                0
            }
        }
    }
}

/// The host process seen as a board.
struct SimBoard {
    name: String,
    start: Instant,
    clock_ticks_per_s: u64,
}

impl SimBoard {
    fn new(name: &str) -> Self {
        let ticks = match sysconf(SysconfVar::CLK_TCK) {
            Ok(Some(t)) if t > 0 => t as u64,
            _ => 100, // USER_HZ on every Linux architecture
        };
        SimBoard {
            name: name.to_string(),
            start: Instant::now(),
            clock_ticks_per_s: ticks,
        }
    }
}

impl Board for SimBoard {
    fn uptime_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn stats(&self) -> Stats {
        let uptime_ms = self.uptime_ms();
        let cpu_ms = cpu_ticks().unwrap_or(0) * 1000 / self.clock_ticks_per_s;
        Stats {
            uptime_ms,
            cpu_load_permille: (cpu_ms * 1000 / uptime_ms.max(1)).min(1000) as u16,
            mem_used_kib: kib_field("/proc/self/status", "VmRSS:").unwrap_or(0),
            mem_total_kib: kib_field("/proc/meminfo", "MemTotal:").unwrap_or(0),
        }
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn os(&self) -> &str {
        OS_NAME
    }
}

/// utime + stime of this process, in clock ticks, from /proc/self/stat.
fn cpu_ticks() -> Option<u64> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may contain spaces; fields after it are
    // plain. utime and stime are fields 14 and 15, i.e. 11 and 12 after ')'.
    let mut fields = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The number of a `Key:   1234 kB` line in a /proc file.
fn kib_field(path: &str, key: &str) -> Option<u32> {
    let text = fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line[key.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kib.min(u32::MAX as u64) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Opts>, String> {
        parse_args(args.iter().map(OsString::from))
    }

    #[test]
    fn args() {
        assert_eq!(
            parse(&[]).unwrap().unwrap(),
            Opts {
                link: LinkOpt::Stdio,
                raw: false,
                board: "sim".into(),
                input: Vec::new(),
                ignore_stop: false,
            }
        );
        assert_eq!(
            parse(&["--raw", "--pty", "--pty-link", "/tmp/x", "--board", "b"])
                .unwrap()
                .unwrap(),
            Opts {
                link: LinkOpt::Pty {
                    link: Some("/tmp/x".into())
                },
                raw: true,
                board: "b".into(),
                input: Vec::new(),
                ignore_stop: false,
            }
        );
        assert!(parse(&["--ignore-stop"]).unwrap().unwrap().ignore_stop);
        assert_eq!(
            parse(&["--socket", "/s"]).unwrap().unwrap().link,
            LinkOpt::Socket("/s".into())
        );
        assert_eq!(
            parse(&["--input", "echo a\rexit 3\r"])
                .unwrap()
                .unwrap()
                .input,
            b"echo a\rexit 3\r"
        );
        assert_eq!(parse(&["--help"]).unwrap(), None);
        for bad in [
            &["--bogus"][..],
            &["--socket"],
            &["--board"],
            &["--input"],
            &["--input", &"x".repeat(513)],
            &["--pty-link", "/x"],
            &["--socket", "/s", "--pty"],
            &["--socket", "/s", "--pty-link", "/x"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn proc_stats() {
        let board = SimBoard::new("t");
        let s = board.stats();
        assert!(s.mem_total_kib > 0 && s.mem_used_kib > 0 && s.mem_used_kib < s.mem_total_kib);
        assert!(s.cpu_load_permille <= 1000);
        assert!(cpu_ticks().is_some());
    }
}
