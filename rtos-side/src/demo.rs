//! The demo shell: a tiny line-oriented console application used by the host
//! simulator (`micrun-rtos-sim`) and the QEMU board firmware.
//!
//! It is I/O-agnostic so that one implementation serves every combination of
//! target (host process, bare metal) and link mode (agent-carried console, raw
//! console bytes):
//!
//! ```text
//!  console input ──feed()──► input queue ──poll()──► line ──► command
//!                                                              │
//!  Console::write ◄──poll()── pending output / running flood ◄─┘
//! ```
//!
//! Everything lives in fixed-size buffers inside [`Shell`]; nothing allocates.
//! Output is produced only as fast as the [`Console`] accepts it, so a `flood`
//! of any size needs no more RAM than a short line, and the next input line is
//! not looked at until the previous command's output has fully drained.

use core::fmt::{self, Write as _};

use micrun_proto::Stats;

/// Longest accepted input line in bytes; longer lines answer `error: line too long`.
pub const MAX_LINE: usize = 120;
/// Input bytes the shell can hold while a command's output is still draining.
pub const INPUT_CAPACITY: usize = 512;
/// Room for one command's text output (plus prompt). Longer texts (e.g. a
/// banner with an absurdly long board name) are truncated, never overflowed.
const OUTPUT_CAPACITY: usize = 256;
/// Flood bytes written per `poll` at most, so the caller's event loop keeps
/// servicing its link (stop requests, input) even on a console that never
/// pushes back.
const FLOOD_BUDGET_PER_POLL: u32 = 16 * 1024;
/// Size of the stack chunk a flood is generated into.
const FLOOD_CHUNK: usize = 256;

const PROMPT: &[u8] = b"> ";
const HELP: &[u8] = b"commands: help, hello, echo <text>, err <text>, uptime, stats, exit <code>, panic, hang, flood <bytes>, sleep <ms>\r\n";
/// Status of a command line that was not understood (usage errors).
pub const STATUS_USAGE: i32 = 2;
/// Status of an unknown command, as a shell's "command not found".
pub const STATUS_UNKNOWN: i32 = 127;

/// Where the shell's output goes.
pub trait Console {
    /// Writes as much of `data` as fits now and returns the number of bytes
    /// accepted (may be less than `data.len()`, or 0, under flow control).
    fn write(&mut self, data: &[u8]) -> usize;

    /// Like [`Console::write`], for the error stream (`err <text>`); a console
    /// with one stream (a UART) takes it as ordinary output.
    fn write_err(&mut self, data: &[u8]) -> usize {
        self.write(data)
    }
}

/// The error stream of a [`Console`], as a console.
struct ErrStream<'a, C: Console>(&'a mut C);

impl<C: Console> Console for ErrStream<'_, C> {
    fn write(&mut self, data: &[u8]) -> usize {
        self.0.write_err(data)
    }
}

/// What the shell needs to know about the machine it runs on.
pub trait Board {
    /// Milliseconds since the board (or process) started.
    fn uptime_ms(&self) -> u64;
    /// Current resource usage.
    fn stats(&self) -> Stats;
    /// Board name, e.g. `sim` or `qemu-virt`.
    fn name(&self) -> &str;
    /// Operating system name, e.g. `linux-sim` or `bare-metal`.
    fn os(&self) -> &str;
}

/// Something the caller of [`Shell::poll`] has to carry out; the shell itself
/// cannot exit, panic or stop servicing its link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do.
    None,
    /// `exit <code>`: end the application with this exit code.
    Exit(i32),
    /// `panic`: end the application as if it had panicked.
    Panic,
    /// `hang`: stop responding entirely (to exercise liveness detection).
    Hang,
}

/// The demo shell. See the module documentation.
///
/// `exit`, `panic` and `hang` queue no prompt: the caller is expected to end or
/// freeze the application. If it ignores the [`Action`], later lines are still
/// executed.
#[derive(Debug)]
pub struct Shell {
    input: InputQueue,
    line: [u8; MAX_LINE],
    line_len: usize,
    /// The current line went past [`MAX_LINE`]; the rest of it is dropped.
    line_overflow: bool,
    /// The previous line ended with `\r`: a directly following `\n` belongs to it.
    skip_lf: bool,
    out: OutBuf,
    /// `out` holds an `err` command's text, for the error stream; the prompt
    /// is queued once it has drained.
    out_is_err: bool,
    flood: Option<Flood>,
    /// `sleep`: the command ends at this uptime.
    sleep_until: Option<u64>,
    /// Whether a prompt follows each command (not for an exec).
    prompt: bool,
    /// The status of the last command: 0, [`STATUS_USAGE`], [`STATUS_UNKNOWN`].
    status: i32,
    /// Whether typed bytes are echoed, as on a terminal (see [`Shell::set_echo`]).
    echo: bool,
}

#[derive(Debug, Clone, Copy)]
struct Flood {
    total: u32,
    sent: u32,
}

impl Default for Shell {
    fn default() -> Self {
        Self::new()
    }
}

impl Shell {
    /// A shell with empty buffers; call [`Shell::start`] to queue the banner.
    pub const fn new() -> Self {
        Shell {
            input: InputQueue::new(),
            line: [0; MAX_LINE],
            line_len: 0,
            line_overflow: false,
            skip_lf: false,
            out: OutBuf::new(),
            out_is_err: false,
            flood: None,
            sleep_until: None,
            prompt: true,
            status: 0,
            echo: false,
        }
    }

    /// Echoes what is typed from now on (`true`), as a shell on a terminal does:
    /// the host's terminal is in raw mode and shows only what the RTOS sends.
    /// The firmware turns it on when the host reports a terminal size (only a
    /// container with a terminal gets one); a console without a terminal (a log,
    /// a pipe) gets no echo.
    pub fn set_echo(&mut self, on: bool) {
        self.echo = on;
    }

    /// The prompt after each command (not wanted for an exec).
    fn push_prompt(&mut self) {
        if self.prompt {
            self.out.push(PROMPT);
        }
    }

    /// When a running `sleep` ends (uptime in ms): a caller that waits for
    /// input should wake up then and [`Shell::poll`].
    pub fn wake_at(&self) -> Option<u64> {
        self.sleep_until
    }

    /// Queues the banner and the first prompt.
    pub fn start(&mut self, board: &impl Board) {
        let _ = write!(
            self.out,
            "micrun demo shell on {} ({})\r\n",
            board.name(),
            board.os()
        );
        self.out.push(PROMPT);
    }

    /// Console input: any bytes, possibly several lines or part of one.
    ///
    /// Bytes beyond [`Shell::input_room`] are dropped; callers with their own
    /// flow control (a link, a UART FIFO) should read no more than that.
    pub fn feed(&mut self, input: &[u8]) {
        for &b in input {
            if !self.input.push(b) {
                break;
            }
        }
    }

    /// Queues an asynchronous message (e.g. `signal 10\r\n` from the agent's
    /// signal hook) after the output pending so far. Text that does not fit
    /// the output buffer is cut off.
    pub fn notify(&mut self, text: &[u8]) {
        self.out.push(text);
    }

    /// How many more input bytes [`Shell::feed`] accepts right now.
    pub fn input_room(&self) -> usize {
        INPUT_CAPACITY - self.input.len
    }

    /// Makes progress: drains pending output into `out` as far as it accepts,
    /// advances a running flood, and executes complete input lines once the
    /// previous command's output is gone. Returns an [`Action`] the caller has
    /// to carry out (`Action::None` most of the time).
    ///
    /// Call again when [`Shell::is_idle`] is false and the console can take
    /// more bytes, and after each [`Shell::feed`].
    pub fn poll(&mut self, board: &impl Board, out: &mut impl Console) -> Action {
        let mut budget = FLOOD_BUDGET_PER_POLL;
        loop {
            let drained = if self.out_is_err {
                self.out.drain(&mut ErrStream(&mut *out))
            } else {
                self.out.drain(out)
            };
            if !drained {
                return Action::None;
            }
            if core::mem::take(&mut self.out_is_err) {
                self.push_prompt();
                continue;
            }
            if self.flood.is_some() {
                if !self.run_flood(out, &mut budget) {
                    return Action::None;
                }
                // The trailer and prompt are queued; drain them first.
                continue;
            }
            if let Some(t) = self.sleep_until {
                if board.uptime_ms() < t {
                    return Action::None;
                }
                self.sleep_until = None;
                self.push_prompt();
                continue;
            }
            if !self.take_line() {
                return Action::None;
            }
            let action = self.execute(board);
            if action != Action::None {
                return action;
            }
        }
    }

    /// True when there is no pending output, no flood running and no complete
    /// but unprocessed line: a caller may then sleep until new input arrives.
    ///
    /// A running `sleep` counts as idle (see [`Shell::wake_at`]).
    pub fn is_idle(&self) -> bool {
        self.out.is_empty() && self.flood.is_none() && !self.has_complete_line()
    }

    /// Whether a command is still running (its output draining, a flood, a
    /// sleep) or a complete line waits.
    pub fn is_busy(&self) -> bool {
        !self.is_idle() || self.sleep_until.is_some()
    }

    fn has_complete_line(&self) -> bool {
        let mut skip_lf = self.skip_lf;
        for b in self.input.iter() {
            if skip_lf && b == b'\n' {
                skip_lf = false;
                continue;
            }
            skip_lf = false;
            if b == b'\r' || b == b'\n' {
                return true;
            }
        }
        false
    }

    /// Moves queued input into the line buffer; true when a line is complete.
    fn take_line(&mut self) -> bool {
        while let Some(b) = self.input.pop() {
            if core::mem::take(&mut self.skip_lf) && b == b'\n' {
                continue;
            }
            match b {
                b'\r' | b'\n' => {
                    self.skip_lf = b == b'\r';
                    if self.echo {
                        self.out.push(b"\r\n");
                    }
                    return true;
                }
                0x08 | 0x7f => {
                    // Once a line has overflowed its tail is gone; erasing
                    // cannot bring it back, so the line stays an error.
                    if !self.line_overflow && self.line_len > 0 {
                        self.line_len -= 1;
                        if self.echo {
                            self.out.push(b"\x08 \x08");
                        }
                    }
                }
                _ if self.line_len < MAX_LINE => {
                    self.line[self.line_len] = b;
                    self.line_len += 1;
                    if self.echo && (0x20..0x7f).contains(&b) {
                        self.out.push(&[b]);
                    }
                }
                _ => self.line_overflow = true,
            }
        }
        false
    }

    fn execute(&mut self, board: &impl Board) -> Action {
        // Copy the line out so that `self` can be written to while parsing it.
        let line_buf = self.line;
        let line = &line_buf[..self.line_len];
        let overflow = self.line_overflow;
        self.line_len = 0;
        self.line_overflow = false;

        self.status = 0;
        if overflow {
            self.out.push(b"error: line too long\r\n");
            self.status = STATUS_USAGE;
            self.push_prompt();
            return Action::None;
        }
        let line = trim_start(line);
        let (cmd, rest) = match line.iter().position(|&b| b == b' ') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &[][..]),
        };
        match cmd {
            b"" => {}
            b"help" => self.out.push(HELP),
            b"hello" => {
                let _ = write!(self.out, "hello from {}\r\n", board.name());
            }
            b"echo" => {
                self.out.push(rest);
                self.out.push(b"\r\n");
            }
            b"err" => {
                self.out.push(rest);
                self.out.push(b"\r\n");
                self.out_is_err = true;
                return Action::None;
            }
            b"uptime" => {
                let _ = write!(self.out, "uptime {} ms\r\n", board.uptime_ms());
            }
            b"stats" => {
                let s = board.stats();
                let _ = write!(
                    self.out,
                    "uptime_ms={} cpu_load_permille={} mem_used_kib={} mem_total_kib={}\r\n",
                    s.uptime_ms, s.cpu_load_permille, s.mem_used_kib, s.mem_total_kib
                );
            }
            b"exit" => match parse_arg::<i32>(rest) {
                Some(code) => return Action::Exit(code),
                None => self.usage(b"usage: exit <code>\r\n"),
            },
            b"sleep" => match parse_arg::<u32>(rest) {
                Some(ms) => {
                    self.sleep_until = Some(board.uptime_ms() + u64::from(ms));
                    return Action::None;
                }
                None => self.usage(b"usage: sleep <ms>\r\n"),
            },
            b"panic" => return Action::Panic,
            b"hang" => return Action::Hang,
            b"flood" => match parse_arg::<u32>(rest) {
                Some(total) => {
                    // The prompt follows the flood's trailer.
                    self.flood = Some(Flood { total, sent: 0 });
                    return Action::None;
                }
                None => self.usage(b"usage: flood <bytes>\r\n"),
            },
            _ => {
                self.out.push(b"unknown command: ");
                self.out.push(cmd);
                self.out.push(b"\r\n");
                self.status = STATUS_UNKNOWN;
            }
        }
        self.push_prompt();
        Action::None
    }

    fn usage(&mut self, text: &[u8]) {
        self.out.push(text);
        self.status = STATUS_USAGE;
    }

    /// Writes flood bytes while `out` accepts them and budget is left; true
    /// when the flood is complete (its trailer is then queued).
    fn run_flood(&mut self, out: &mut impl Console, budget: &mut u32) -> bool {
        let Some(flood) = self.flood.as_mut() else {
            return true;
        };
        // Bytes are regenerated from the index, so a partial write costs
        // nothing to resume: no copy of the flood is ever kept.
        let mut chunk = [0u8; FLOOD_CHUNK];
        while flood.sent < flood.total {
            if *budget == 0 {
                return false;
            }
            let n = (flood.total - flood.sent)
                .min(*budget)
                .min(FLOOD_CHUNK as u32) as usize;
            for (k, b) in chunk[..n].iter_mut().enumerate() {
                *b = flood_byte(flood.sent + k as u32);
            }
            let accepted = out.write(&chunk[..n]).min(n);
            if accepted == 0 {
                return false;
            }
            flood.sent += accepted as u32;
            *budget -= accepted as u32;
        }
        let total = flood.total;
        self.flood = None;
        let _ = write!(self.out, "\r\nflood done {}\r\n", total);
        self.push_prompt();
        true
    }
}

/// One exec of the demo shell's commands (`kubectl exec`, exec probes; the
/// agent's [`crate::App::exec`]): the arguments, joined by spaces, run as one
/// command line of a shell of its own with no banner and no prompt, its output
/// goes to the exec's console, and its status is the exec's exit code: 0,
/// [`STATUS_USAGE`], [`STATUS_UNKNOWN`], the code of `exit <code>`, 134 for
/// `panic` (the exec's end, not the application's); `hang` never ends until a
/// signal does.
#[derive(Debug)]
pub struct Exec {
    shell: Shell,
    state: ExecRun,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExecRun {
    Idle,
    Running,
    /// Ended with this code once the output has drained.
    Ending(i32),
    /// `hang`: runs until a signal.
    Hung,
}

/// Exit code of an exec that ran `panic`.
pub const EXEC_PANIC: i32 = 134;

impl Default for Exec {
    fn default() -> Self {
        Self::new()
    }
}

impl Exec {
    pub const fn new() -> Self {
        let mut shell = Shell::new();
        shell.prompt = false;
        Exec {
            shell,
            state: ExecRun::Idle,
        }
    }

    /// Starts a command; `args` as the agent hands them over (each followed by
    /// a NUL). A running one is abandoned.
    pub fn start(&mut self, args: &[u8]) {
        self.shell = Shell::new();
        self.shell.prompt = false;
        for (k, arg) in args.split(|&b| b == 0).enumerate() {
            if k > 0 && !arg.is_empty() {
                self.shell.feed(b" ");
            }
            self.shell.feed(arg);
        }
        self.shell.feed(b"\n");
        self.state = ExecRun::Running;
    }

    /// Ends the running command as a signal would: `128 + signo`.
    pub fn signal(&mut self, signo: u8) {
        if self.state != ExecRun::Idle {
            self.shell.flood = None;
            self.shell.sleep_until = None;
            self.state = ExecRun::Ending(128 + i32::from(signo));
        }
    }

    /// Whether a command is running.
    pub fn is_running(&self) -> bool {
        self.state != ExecRun::Idle
    }

    /// When a running `sleep` ends, see [`Shell::wake_at`].
    pub fn wake_at(&self) -> Option<u64> {
        self.shell.wake_at()
    }

    /// Whether [`Exec::poll`] has work now (output to write, a flood).
    pub fn is_busy(&self) -> bool {
        matches!(self.state, ExecRun::Running | ExecRun::Ending(_)) && !self.shell.is_idle()
    }

    /// Makes progress; `Some(code)` once the command has ended and its output
    /// is all written to `out`.
    pub fn poll(&mut self, board: &impl Board, out: &mut impl Console) -> Option<i32> {
        match self.state {
            ExecRun::Idle | ExecRun::Hung => return None,
            ExecRun::Running => match self.shell.poll(board, out) {
                Action::None => {
                    if self.shell.is_idle() && self.shell.sleep_until.is_none() {
                        self.state = ExecRun::Ending(self.shell.status);
                    }
                }
                Action::Exit(code) => self.state = ExecRun::Ending(code),
                Action::Panic => {
                    self.shell.out.push(b"PANIC: requested by exec\r\n");
                    self.state = ExecRun::Ending(EXEC_PANIC);
                }
                Action::Hang => self.state = ExecRun::Hung,
            },
            ExecRun::Ending(_) => {}
        }
        if let ExecRun::Ending(code) = self.state {
            if self.shell.out.drain(out) {
                self.state = ExecRun::Idle;
                return Some(code);
            }
        }
        None
    }
}

/// Byte `i` of a flood: the alphabet, with a newline every 64 bytes so that
/// line-buffered readers see bounded lines.
pub const fn flood_byte(i: u32) -> u8 {
    if i % 64 == 63 {
        b'\n'
    } else {
        b'a' + (i % 26) as u8
    }
}

fn trim_start(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(s.len());
    &s[start..]
}

fn trim(s: &[u8]) -> &[u8] {
    let s = trim_start(s);
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |i| i + 1);
    &s[..end]
}

fn parse_arg<T: core::str::FromStr>(arg: &[u8]) -> Option<T> {
    core::str::from_utf8(trim(arg)).ok()?.parse().ok()
}

/// Fixed-size FIFO of input bytes.
#[derive(Debug)]
struct InputQueue {
    buf: [u8; INPUT_CAPACITY],
    head: usize,
    len: usize,
}

impl InputQueue {
    const fn new() -> Self {
        InputQueue {
            buf: [0; INPUT_CAPACITY],
            head: 0,
            len: 0,
        }
    }

    fn push(&mut self, b: u8) -> bool {
        if self.len == INPUT_CAPACITY {
            return false;
        }
        self.buf[(self.head + self.len) % INPUT_CAPACITY] = b;
        self.len += 1;
        true
    }

    fn pop(&mut self) -> Option<u8> {
        if self.len == 0 {
            return None;
        }
        let b = self.buf[self.head];
        self.head = (self.head + 1) % INPUT_CAPACITY;
        self.len -= 1;
        Some(b)
    }

    fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        (0..self.len).map(move |k| self.buf[(self.head + k) % INPUT_CAPACITY])
    }
}

/// Pending text output: filled by one command, drained before the next runs.
#[derive(Debug)]
struct OutBuf {
    buf: [u8; OUTPUT_CAPACITY],
    start: usize,
    end: usize,
}

impl OutBuf {
    const fn new() -> Self {
        OutBuf {
            buf: [0; OUTPUT_CAPACITY],
            start: 0,
            end: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Appends as much of `data` as fits; the rest is cut off.
    fn push(&mut self, data: &[u8]) {
        let n = data.len().min(OUTPUT_CAPACITY - self.end);
        self.buf[self.end..self.end + n].copy_from_slice(&data[..n]);
        self.end += n;
    }

    /// Writes pending bytes while `out` accepts them; true when empty.
    fn drain(&mut self, out: &mut impl Console) -> bool {
        while self.start < self.end {
            let pending = self.end - self.start;
            let n = out.write(&self.buf[self.start..self.end]).min(pending);
            if n == 0 {
                return false;
            }
            self.start += n;
        }
        // Empty again: rewind so the next command gets the whole buffer.
        self.start = 0;
        self.end = 0;
        true
    }
}

impl fmt::Write for OutBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TestBoard;

    impl Board for TestBoard {
        fn uptime_ms(&self) -> u64 {
            12_345
        }
        fn stats(&self) -> Stats {
            Stats {
                uptime_ms: 12_345,
                cpu_load_permille: 42,
                mem_used_kib: 1_024,
                mem_total_kib: 65_536,
            }
        }
        fn name(&self) -> &str {
            "testboard"
        }
        fn os(&self) -> &str {
            "testos"
        }
    }

    /// Records output; accepts at most `per_call` bytes per write and at most
    /// `per_tick` bytes between two `refill`s (0 = unlimited).
    struct TestConsole {
        data: Vec<u8>,
        per_call: usize,
        per_tick: usize,
        left: usize,
        max_write: usize,
    }

    impl TestConsole {
        fn new() -> Self {
            Self::limited(usize::MAX, 0)
        }
        fn limited(per_call: usize, per_tick: usize) -> Self {
            TestConsole {
                data: Vec::new(),
                per_call,
                per_tick,
                left: per_tick,
                max_write: 0,
            }
        }
        fn refill(&mut self) {
            self.left = self.per_tick;
        }
        fn take(&mut self) -> Vec<u8> {
            core::mem::take(&mut self.data)
        }
    }

    impl Console for TestConsole {
        fn write(&mut self, data: &[u8]) -> usize {
            let mut n = data.len().min(self.per_call);
            if self.per_tick != 0 {
                n = n.min(self.left);
                self.left -= n;
            }
            self.max_write = self.max_write.max(n);
            self.data.extend_from_slice(&data[..n]);
            n
        }
    }

    /// Polls until idle or an action; refills the console between polls.
    fn run(shell: &mut Shell, con: &mut TestConsole) -> Action {
        for _ in 0..10_000_000 {
            let action = shell.poll(&TestBoard, con);
            if action != Action::None {
                return action;
            }
            if shell.is_idle() {
                return Action::None;
            }
            con.refill();
        }
        panic!("shell never became idle");
    }

    fn started() -> (Shell, TestConsole) {
        let mut shell = Shell::new();
        let mut con = TestConsole::new();
        shell.start(&TestBoard);
        assert_eq!(run(&mut shell, &mut con), Action::None);
        assert_eq!(con.take(), b"micrun demo shell on testboard (testos)\r\n> ");
        (shell, con)
    }

    /// Feeds `input`, runs to idle, returns (output, action).
    fn cmd(input: &str) -> (String, Action) {
        let (mut shell, mut con) = started();
        shell.feed(input.as_bytes());
        let action = run(&mut shell, &mut con);
        (String::from_utf8(con.take()).unwrap(), action)
    }

    fn flood_expect(n: u32) -> Vec<u8> {
        let mut v: Vec<u8> = (0..n).map(flood_byte).collect();
        v.extend_from_slice(format!("\r\nflood done {n}\r\n> ").as_bytes());
        v
    }

    #[test]
    fn banner_and_prompt() {
        started();
    }

    #[test]
    fn help_lists_every_command() {
        let (out, a) = cmd("help\r");
        assert_eq!(a, Action::None);
        assert_eq!(out.matches("\r\n").count(), 1);
        for c in [
            "help", "hello", "echo", "err", "uptime", "stats", "exit", "panic", "hang", "flood",
        ] {
            assert!(out.contains(c), "{c} missing from {out:?}");
        }
        assert!(out.ends_with("\r\n> "));
    }

    #[test]
    fn simple_commands() {
        assert_eq!(cmd("hello\r").0, "hello from testboard\r\n> ");
        assert_eq!(cmd("uptime\n").0, "uptime 12345 ms\r\n> ");
        assert_eq!(
            cmd("stats\r\n").0,
            "uptime_ms=12345 cpu_load_permille=42 mem_used_kib=1024 mem_total_kib=65536\r\n> "
        );
        assert_eq!(
            cmd("frobnicate now\r").0,
            "unknown command: frobnicate\r\n> "
        );
        assert_eq!(cmd("\r").0, "> ");
        assert_eq!(cmd("   \r").0, "> ");
    }

    #[test]
    fn echo_is_verbatim() {
        assert_eq!(cmd("echo hi there\r").0, "hi there\r\n> ");
        assert_eq!(cmd("echo  two  spaces \r").0, " two  spaces \r\n> ");
        assert_eq!(cmd("echo\r").0, "\r\n> ");
        assert_eq!(cmd("echo \r").0, "\r\n> ");
    }

    #[test]
    fn err_goes_to_the_error_stream() {
        /// Keeps the streams apart; takes one byte per write.
        #[derive(Default)]
        struct TwoStreams {
            out: Vec<u8>,
            err: Vec<u8>,
        }
        impl Console for TwoStreams {
            fn write(&mut self, data: &[u8]) -> usize {
                self.out.extend_from_slice(&data[..1]);
                1
            }
            fn write_err(&mut self, data: &[u8]) -> usize {
                self.err.extend_from_slice(&data[..1]);
                1
            }
        }
        let mut shell = Shell::new();
        let mut con = TwoStreams::default();
        shell.start(&TestBoard);
        shell.feed(b"err oops\recho ok\r");
        while !shell.is_idle() {
            assert_eq!(shell.poll(&TestBoard, &mut con), Action::None);
        }
        assert_eq!(con.err, b"oops\r\n");
        assert_eq!(
            con.out,
            b"micrun demo shell on testboard (testos)\r\n> > ok\r\n> "
        );
        // A console with one stream (a UART) shows it as ordinary output.
        assert_eq!(cmd("err oops\r").0, "oops\r\n> ");
    }

    #[test]
    fn exit_panic_hang() {
        assert_eq!(cmd("exit 3\r"), (String::new(), Action::Exit(3)));
        assert_eq!(cmd("exit -7\r"), (String::new(), Action::Exit(-7)));
        assert_eq!(cmd("exit 2147483647\r").1, Action::Exit(i32::MAX));
        assert_eq!(cmd("exit 300\r").1, Action::Exit(300));
        for bad in [
            "exit\r",
            "exit \r",
            "exit x\r",
            "exit 1.5\r",
            "exit 99999999999\r",
        ] {
            assert_eq!(
                cmd(bad),
                ("usage: exit <code>\r\n> ".to_string(), Action::None),
                "{bad:?}"
            );
        }
        assert_eq!(cmd("panic\r"), (String::new(), Action::Panic));
        assert_eq!(cmd("hang\r"), (String::new(), Action::Hang));
    }

    #[test]
    fn action_stops_processing_of_later_lines() {
        let (mut shell, mut con) = started();
        shell.feed(b"exit 5\rhello\r");
        assert_eq!(shell.poll(&TestBoard, &mut con), Action::Exit(5));
        assert!(con.take().is_empty());
        assert!(!shell.is_idle(), "hello is still pending");
        assert_eq!(run(&mut shell, &mut con), Action::None);
        assert_eq!(con.take(), b"hello from testboard\r\n> ");
    }

    #[test]
    fn flood_usage() {
        assert_eq!(cmd("flood\r").0, "usage: flood <bytes>\r\n> ");
        assert_eq!(cmd("flood -1\r").0, "usage: flood <bytes>\r\n> ");
        assert_eq!(cmd("flood 4294967296\r").0, "usage: flood <bytes>\r\n> ");
    }

    #[test]
    fn flood_is_byte_exact() {
        for n in [
            0u32,
            1,
            25,
            26,
            63,
            64,
            65,
            255,
            256,
            257,
            1000,
            16 * 1024 + 1,
            1_000_000,
        ] {
            let (mut shell, mut con) = started();
            shell.feed(format!("flood {n}\r").as_bytes());
            assert_eq!(run(&mut shell, &mut con), Action::None);
            let out = con.take();
            assert!(out == flood_expect(n), "flood {n}: {} bytes", out.len());
        }
        // Spot-check the pattern itself.
        let (out, _) = cmd("flood 130\r");
        assert_eq!(&out.as_bytes()[..5], b"abcde");
        assert_eq!(out.as_bytes()[63], b'\n');
        assert_eq!(out.as_bytes()[64], b'a' + (64 % 26) as u8);
        assert_eq!(out.as_bytes()[127], b'\n');
    }

    #[test]
    fn flood_bounded_per_poll() {
        let (mut shell, mut con) = started();
        shell.feed(b"flood 1000000\r");
        assert_eq!(shell.poll(&TestBoard, &mut con), Action::None);
        assert_eq!(con.data.len(), FLOOD_BUDGET_PER_POLL as usize);
        assert!(!shell.is_idle());
        assert!(con.max_write <= FLOOD_CHUNK);
    }

    #[test]
    fn flow_control_three_bytes_per_call() {
        let mut shell = Shell::new();
        let mut con = TestConsole::limited(3, 7);
        shell.start(&TestBoard);
        shell.feed(b"hello\recho abc\rflood 1000\rstats\r");
        let mut polls = 0;
        while !shell.is_idle() {
            assert_eq!(shell.poll(&TestBoard, &mut con), Action::None);
            assert!(con.max_write <= 3);
            con.refill();
            polls += 1;
        }
        let mut expect =
            b"micrun demo shell on testboard (testos)\r\n> hello from testboard\r\n> abc\r\n> "
                .to_vec();
        expect.extend(flood_expect(1000));
        expect.extend_from_slice(
            b"uptime_ms=12345 cpu_load_permille=42 mem_used_kib=1024 mem_total_kib=65536\r\n> ",
        );
        assert_eq!(con.take(), expect);
        assert!(polls >= expect.len() / 7);
    }

    #[test]
    fn next_line_waits_for_output_to_drain() {
        let (mut shell, _) = started();
        let mut con = TestConsole::limited(usize::MAX, 10);
        shell.feed(b"flood 100\rhello\r");
        assert_eq!(shell.poll(&TestBoard, &mut con), Action::None);
        assert_eq!(con.data.len(), 10);
        // A console that takes nothing: no progress, nothing executed.
        assert_eq!(shell.poll(&TestBoard, &mut con), Action::None);
        assert_eq!(con.data.len(), 10);
        assert!(!shell.is_idle());
        assert_eq!(run(&mut shell, &mut con), Action::None);
        let mut expect = flood_expect(100);
        expect.extend_from_slice(b"hello from testboard\r\n> ");
        assert_eq!(con.take(), expect);
    }

    #[test]
    fn split_and_partial_input() {
        let (mut shell, mut con) = started();
        for part in [
            &b"he"[..],
            b"l",
            b"lo",
            b"\r",
            b"\n",
            b"ech",
            b"o a\nupt",
            b"ime\r",
        ] {
            shell.feed(part);
            run(&mut shell, &mut con);
        }
        assert_eq!(
            con.take(),
            b"hello from testboard\r\n> a\r\n> uptime 12345 ms\r\n> "
        );
        assert!(shell.is_idle());
    }

    #[test]
    fn line_endings() {
        // "\r\n" is one line end, "\n\r" two, a lone "\n" or "\r" one.
        assert_eq!(
            cmd("hello\r\nhello\r\n").0,
            "hello from testboard\r\n> ".repeat(2)
        );
        assert_eq!(cmd("hello\n\r").0, "hello from testboard\r\n> > ");
        assert_eq!(
            cmd("hello\nhello\rhello\r\n").0,
            "hello from testboard\r\n> ".repeat(3)
        );
        assert_eq!(cmd("\r\n\r\n").0, "> > ");
    }

    #[test]
    fn complete_line_is_not_idle() {
        let (mut shell, mut con) = started();
        shell.feed(b"hel");
        assert!(shell.is_idle());
        shell.feed(b"lo\r");
        assert!(!shell.is_idle());
        run(&mut shell, &mut con);
        assert!(shell.is_idle());
        // The "\n" of a "\r\n" split across feeds is not a new line.
        shell.feed(b"\n");
        assert!(shell.is_idle());
        shell.poll(&TestBoard, &mut con);
        assert_eq!(con.take(), b"hello from testboard\r\n> ");
    }

    #[test]
    fn backspace() {
        assert_eq!(cmd("helx\x08lo\r").0, "hello from testboard\r\n> ");
        assert_eq!(cmd("hellzz\x7f\x7fo\r").0, "hello from testboard\r\n> ");
        assert_eq!(cmd("\x08\x08hello\r").0, "hello from testboard\r\n> ");
        assert_eq!(cmd("x\x08\r").0, "> ");
    }

    #[test]
    fn echo_on_a_terminal() {
        let (mut shell, mut con) = started();
        shell.set_echo(true);
        shell.feed(b"helx\x7flo\r\x7f");
        assert_eq!(run(&mut shell, &mut con), Action::None);
        assert_eq!(
            String::from_utf8(con.take()).unwrap(),
            "helx\x08 \x08lo\r\nhello from testboard\r\n> "
        );
        // Nothing typed yet: a backspace has nothing to erase and echoes nothing;
        // control bytes are not echoed.
        shell.feed(b"\x01\r\n");
        assert_eq!(run(&mut shell, &mut con), Action::None);
        assert_eq!(con.take(), b"\r\nunknown command: \x01\r\n> ");
        // Off again: nothing but the output.
        shell.set_echo(false);
        shell.feed(b"hello\r");
        assert_eq!(run(&mut shell, &mut con), Action::None);
        assert_eq!(con.take(), b"hello from testboard\r\n> ");
    }

    #[test]
    fn long_lines() {
        let max = format!("echo {}", "x".repeat(MAX_LINE - 5));
        assert_eq!(
            cmd(&format!("{max}\r")).0,
            format!("{}\r\n> ", "x".repeat(MAX_LINE - 5))
        );
        let (out, _) = cmd(&format!("{max}y\rhello\r"));
        assert_eq!(out, "error: line too long\r\n> hello from testboard\r\n> ");
        let (out, _) = cmd(&format!("{}\r", "z".repeat(400)));
        assert_eq!(out, "error: line too long\r\n> ");
        // The longest possible unknown command fits the output buffer.
        let (out, _) = cmd(&format!("{}\r", "q".repeat(MAX_LINE)));
        assert_eq!(
            out,
            format!("unknown command: {}\r\n> ", "q".repeat(MAX_LINE))
        );
    }

    #[test]
    fn long_input_streams_through_small_queue() {
        // Much more than INPUT_CAPACITY, fed as the shell has room.
        let input = "echo 0123456789\r".repeat(200);
        let (mut shell, mut con) = started();
        let mut rest = input.as_bytes();
        while !rest.is_empty() {
            let n = shell.input_room().min(rest.len());
            assert!(n > 0 || !shell.is_idle());
            shell.feed(&rest[..n]);
            rest = &rest[n..];
            run(&mut shell, &mut con);
        }
        assert_eq!(con.take(), "0123456789\r\n> ".repeat(200).as_bytes());
    }

    #[test]
    fn feed_beyond_room_is_dropped() {
        let (mut shell, _) = started();
        shell.feed(&[b'a'; INPUT_CAPACITY + 10]);
        assert_eq!(shell.input_room(), 0);
    }

    #[test]
    fn long_board_name_is_truncated_not_overflowed() {
        struct Long;
        impl Board for Long {
            fn uptime_ms(&self) -> u64 {
                0
            }
            fn stats(&self) -> Stats {
                Stats::default()
            }
            fn name(&self) -> &str {
                "n123456789n123456789n123456789n123456789n123456789n123456789n123456789n123456789n123456789n123456789n123456789n123456789n123456789n123456789n123456789n123456789n123456789n123456789n123456789n123456789n123456789n123456789n123456789n123456789n123456789n123456789"
            }
            fn os(&self) -> &str {
                "os"
            }
        }
        let mut shell = Shell::new();
        let mut con = TestConsole::new();
        shell.start(&Long);
        shell.poll(&Long, &mut con);
        assert_eq!(con.data.len(), OUTPUT_CAPACITY);
        assert!(shell.is_idle());
    }

    #[test]
    fn notify_queues_after_pending_output() {
        let (mut shell, _) = started();
        let mut con = TestConsole::limited(usize::MAX, 5);
        shell.feed(b"hello\r");
        shell.poll(&TestBoard, &mut con);
        shell.notify(b"signal 10\r\n");
        assert!(!shell.is_idle());
        run(&mut shell, &mut con);
        assert_eq!(con.take(), b"hello from testboard\r\n> signal 10\r\n");
    }

    #[test]
    fn const_new() {
        const SHELL: Shell = Shell::new();
        assert!(SHELL.is_idle());
    }

    /// Like a plain RTOS shell, the demo takes every byte as typed input: a
    /// host must never write anything to a raw console that the user did not
    /// type (agent=auto listens; docs/protocol.md §5).
    #[test]
    fn every_byte_is_typed_input() {
        let mut sh = Shell::new();
        let mut con = TestConsole::new();
        sh.start(&TestBoard);
        run(&mut sh, &mut con);
        sh.feed(&[0x01, 0x05, 0x00, b'\r']);
        sh.feed(b"echo after\r");
        run(&mut sh, &mut con);
        let text = String::from_utf8_lossy(&con.take()).into_owned();
        assert!(
            text.contains("unknown command: \u{1}\u{5}\u{0}"),
            "{text:?}"
        );
        assert!(text.ends_with("after\r\n> "), "{text:?}");
    }
}
