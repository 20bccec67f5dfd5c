//! Agent mode (the default): the link carries micrun frames; the shell's console
//! is one of the streams the agent multiplexes.

use micrun_proto::Stats;
use micrun_rtos::demo::{self, Action, Exec, Shell};
use micrun_rtos::ExitReason;

use crate::app::{BOARD_NAME, OS_NAME};
use crate::board::{Board, IDLE_TICK_MS};
use crate::pl011::Pl011;
use crate::power::power_off;

/// The agent's link: the UART, read without blocking, written with waiting.
struct UartLink {
    uart: Pl011,
    /// Something arrived since the main loop last looked.
    got_input: bool,
}

impl micrun_rtos::Link for UartLink {
    fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = self.uart.read_into(buf);
        self.got_input |= n > 0;
        n
    }

    fn write(&mut self, data: &[u8]) {
        self.uart.write_all(data);
    }
}

/// After an exit is reported, how long to wait for the host's acknowledgement
/// before powering off anyway (the host may be gone).
const EXIT_DELIVERY_TIMEOUT_MS: u64 = 10_000;
/// Exit code reported for a panic, as Rust's test harness and `std` use.
const PANIC_EXIT_CODE: i32 = 101;

type FwAgent = micrun_rtos::Agent<UartLink>;

/// The agent's hooks for one `poll`: stats come from the board, a stop request is
/// remembered for the main loop.
struct Hooks<'a> {
    board: &'a Board,
    stop: bool,
    /// The host reported a terminal size: a terminal is attached.
    terminal: bool,
    /// The host's exec: one command of the shell at a time.
    exec: &'a mut Exec,
}

impl micrun_rtos::App for Hooks<'_> {
    fn stop_requested(&mut self, _grace_ms: u32) {
        self.stop = true;
    }

    fn exec(&mut self, args: micrun_rtos::Args<'_>) -> bool {
        self.exec.start(args.as_bytes());
        true
    }

    fn exec_signal(&mut self, signo: u8) {
        self.exec.signal(signo);
    }

    fn resize(&mut self, _rows: u16, _cols: u16) {
        self.terminal = true;
    }

    fn stats(&mut self, _uptime_ms: u64) -> Stats {
        demo::Board::stats(self.board)
    }
}

/// The shell's console in agent mode: stdout of the agent (`err` text: its stderr),
/// under its flow control.
struct AgentConsole<'a> {
    agent: &'a mut FwAgent,
    /// The agent refused bytes (no room until the host grants credit).
    blocked: bool,
}

/// The exec's console: the agent's exec stream.
struct ExecConsole<'a> {
    agent: &'a mut FwAgent,
    blocked: bool,
}

impl demo::Console for ExecConsole<'_> {
    fn write(&mut self, data: &[u8]) -> usize {
        let n = self.agent.write_exec(data);
        if n < data.len() {
            self.blocked = true;
        }
        n
    }
}

impl demo::Console for AgentConsole<'_> {
    fn write(&mut self, data: &[u8]) -> usize {
        let n = self.agent.write_stdout(data);
        if n < data.len() {
            self.blocked = true;
        }
        n
    }

    fn write_err(&mut self, data: &[u8]) -> usize {
        let n = self.agent.write_stderr(data);
        if n < data.len() {
            self.blocked = true;
        }
        n
    }
}

/// Agent mode: the shell's console is carried in micrun frames. Output waits in the
/// agent until a host connects, so the shell runs (and its banner is kept) even
/// before the first `Hello`. `exit`, a stop request and `panic` are reported to the
/// host, which acknowledges them before the board powers off.
pub fn run_agent(mut board: Board, uart: Pl011) -> ! {
    let mut agent = FwAgent::new(
        UartLink {
            uart,
            got_input: false,
        },
        micrun_rtos::AgentInfo {
            os: OS_NAME,
            board: BOARD_NAME,
        },
    );
    let mut shell = Shell::new();
    shell.start(&board);
    let mut exec = Exec::new();
    let mut buf = [0u8; 64];
    loop {
        board.update_load();
        let room = shell.input_room().min(buf.len());
        let n = agent.read_stdin(&mut buf[..room]);
        shell.feed(&buf[..n]);
        let mut console = AgentConsole {
            agent: &mut agent,
            blocked: false,
        };
        let action = shell.poll(&board, &mut console);
        let blocked = console.blocked;
        match action {
            Action::None => {}
            Action::Exit(code) => finish(&mut board, &mut agent, code, ExitReason::Normal),
            Action::Panic => {
                agent.write_stderr(b"PANIC: panic command\r\n");
                report_exit(&mut board, &mut agent, PANIC_EXIT_CODE, ExitReason::Panic);
                panic!("panic command");
            }
            Action::Hang => board.hang(),
        }
        let mut exec_console = ExecConsole {
            agent: &mut agent,
            blocked: false,
        };
        let exec_end = exec.poll(&board, &mut exec_console);
        let exec_blocked = exec_console.blocked;
        if let Some(code) = exec_end {
            agent.exec_exit(code);
        }

        // Sends what the shell wrote, takes what the host sent, runs timers.
        agent.link().got_input = false;
        let mut hooks = Hooks {
            board: &board,
            stop: false,
            terminal: false,
            exec: &mut exec,
        };
        let now = board.uptime_ms();
        agent.poll(now, &mut hooks);
        if hooks.terminal {
            // Only a container with a terminal gets sizes: echo what is typed,
            // as a shell on a terminal does.
            shell.set_echo(true);
        }
        if hooks.stop {
            // Best effort: the line is dropped if the host is not taking output.
            agent.write_stdout(b"stopping\r\n");
            finish(&mut board, &mut agent, 0, ExitReason::Normal);
        }

        // Sleep only when nothing can move until the link or the agent's next timer
        // says so: no input arrived (it may be stdin, or credit for more output),
        // and the shell is done or waits for credit.
        let exec_idle = !exec.is_busy() || exec_blocked;
        if n == 0 && !agent.link().got_input && (shell.is_idle() || blocked) && exec_idle {
            let wake = [shell.wake_at(), exec.wake_at()].into_iter().flatten();
            let wait = agent
                .poll_timeout()
                .into_iter()
                .chain(wake)
                .min()
                .map_or(IDLE_TICK_MS, |t| t.saturating_sub(now));
            board.idle(&agent.link().uart, wait);
        }
    }
}

/// Reports the exit and waits (bounded) until the host has it with all output.
fn report_exit(board: &mut Board, agent: &mut FwAgent, code: i32, reason: ExitReason) {
    agent.exit(code, reason);
    let deadline = board.uptime_ms() + EXIT_DELIVERY_TIMEOUT_MS;
    loop {
        let now = board.uptime_ms();
        let mut idle = Exec::new();
        let mut hooks = Hooks {
            board,
            stop: false,
            terminal: false,
            exec: &mut idle,
        };
        // A stop request now changes nothing: the exit is already on its way.
        agent.poll(now, &mut hooks);
        if agent.exit_delivered() || now >= deadline {
            return;
        }
        let wait = agent
            .poll_timeout()
            .map_or(IDLE_TICK_MS, |t| t.saturating_sub(now));
        board.idle(&agent.link().uart, wait);
    }
}

/// Reports the exit, then powers off.
fn finish(board: &mut Board, agent: &mut FwAgent, code: i32, reason: ExitReason) -> ! {
    report_exit(board, agent, code, reason);
    power_off()
}
