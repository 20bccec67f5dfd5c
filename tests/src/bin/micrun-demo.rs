//! The micrun demo (`bash .ci/demo`, the README's first command): the demo firmware
//! of the QEMU aarch64 board as a container, the way a user runs one.
//!
//! 1. builds `containerd-shim-mica-v2` and `micrun` (debug, `target/shim-for-tests`,
//!    where the tests build them) and the board firmware, with cargo's progress;
//! 2. starts a private containerd in a temp dir (the tests' [`Env`]: own root, state,
//!    sockets and config, the shim first on the daemon's `PATH`, a micrun config
//!    that only moves the shim's state into the temp dir, so the shim detects the
//!    pedestal as on any host);
//! 3. `micrun image pack`s the firmware for `qemu-virt/demo/aarch64/qemu`,
//!    `ctr images import`s the archive (no flags) and
//!    `ctr run --rm -t --runtime io.containerd.mica.v2 IMAGE ID`s it;
//! 4. on a terminal, ctr gets the user's terminal: the user types into the RTOS
//!    shell. Otherwise ctr gets a pseudo-terminal the demo holds: it types the
//!    commands (default: `help`, `hello`, `echo …`, `stats`, `exit 3`) and shows
//!    what the RTOS prints; the code of the last `exit` must come back as ctr's
//!    exit status (the demo's own exit status is 0 only then);
//! 5. cleans up on every path, also on SIGINT, SIGTERM and SIGHUP: the task,
//!    container and image, the daemon and every process it started (by PID), the
//!    shim sockets under `/run/containerd` (by exact path), the temp dir.
//!
//! Usage: `micrun-demo [COMMAND...]` — shell commands to type (non-interactive).

use std::io::{IsTerminal, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use micrun_tests::containerd::CTR_TIMEOUT;
use micrun_tests::e2e::{self, shell_quote, Env, MicrunConfig, RUNTIME, SHIM_NAME};
use micrun_tests::firmware_build;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::termios;

const IMAGE: &str = "localhost/micrun/demo:1";
const ID: &str = "rtos1";
const TOUR: [&str; 5] = ["help", "hello", "echo hello from Linux", "stats", "exit 3"];
/// From `ctr run` to the shell's first prompt (QEMU boot included).
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// From a typed command to the next prompt, or to ctr's exit after `exit`.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The signal that interrupted the demo (0: none yet).
static INTERRUPTED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    INTERRUPTED.store(sig, Ordering::SeqCst);
}

/// SIGINT, SIGTERM, SIGHUP only set [`INTERRUPTED`]; without `SA_RESTART`, a blocking
/// `poll` or `waitpid` returns `EINTR`, so the demo notices and cleans up.
fn catch_signals() {
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        let _ = unsafe { sigaction(sig, &action) };
    }
}

/// An error ending the demo: its message, or the signal that interrupted it.
enum Stop {
    Failed(String),
    Signal(i32),
}

impl From<String> for Stop {
    fn from(s: String) -> Stop {
        Stop::Failed(s)
    }
}

fn interrupted() -> Result<(), Stop> {
    match INTERRUPTED.load(Ordering::SeqCst) {
        0 => Ok(()),
        sig => Err(Stop::Signal(sig)),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!(
            "usage: micrun-demo [COMMAND...]\n\
             Runs the QEMU demo firmware as a container under a private containerd.\n\
             On a terminal you type into the RTOS shell; otherwise the demo types each\n\
             COMMAND (default: {}) and succeeds when the container's exit status is\n\
             the code of the last `exit`.",
            TOUR.join(", ")
        );
        return ExitCode::SUCCESS;
    }
    catch_signals();
    let started = Instant::now();
    let result = demo(args);
    let secs = started.elapsed().as_secs_f64();
    match result {
        Ok(code) => {
            say(&format!("done in {secs:.1} s"));
            code
        }
        Err(Stop::Failed(msg)) => {
            eprintln!("demo: {msg}");
            ExitCode::FAILURE
        }
        Err(Stop::Signal(sig)) => {
            eprintln!("demo: interrupted by signal {sig}; everything it started is cleaned up");
            ExitCode::from(128 + sig as u8)
        }
    }
}

fn say(text: &str) {
    println!("== {text}");
    let _ = std::io::stdout().flush();
}

fn step(n: u32, text: &str) -> Instant {
    say(&format!("[{n}/6] {text}"));
    Instant::now()
}

fn took(since: Instant) {
    println!("   ({:.1} s)", since.elapsed().as_secs_f64());
}

/// A command line as a user would type it.
fn shown(cmd: &Command) -> String {
    let mut line = vec![cmd.get_program().to_string_lossy().into_owned()];
    line.extend(cmd.get_args().map(|a| shell_quote(&a.to_string_lossy())));
    line.join(" ")
}

/// Runs a build step with cargo's own output on our stderr.
fn build(mut cmd: Command) -> Result<(), Stop> {
    println!("   $ {}", shown(&cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run cargo: {e} (install Rust with rustup)"))?;
    interrupted()?;
    if status.success() {
        Ok(())
    } else {
        Err(Stop::Failed(format!("`{}` failed: {status}", shown(&cmd))))
    }
}

/// The micrun config of the demo: the shim's defaults (the pedestal detected, QEMU
/// from `PATH`), except its state dir, which stays in the temp dir.
fn demo_config(c: &mut MicrunConfig) {
    c.default_pedestal = None;
    c.sim_enable = false;
    c.stop_grace = None;
    c.liveness_window = None;
    c.ping_interval = None;
    c.handshake_wait = None;
    c.qemu_binary = None;
    c.host_root = None;
    c.start_micad = false;
}

fn demo(args: Vec<String>) -> Result<ExitCode, Stop> {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(Stop::Failed(
            "the demo starts containerd, which needs root: run it as root (sudo bash .ci/demo)"
                .into(),
        ));
    }
    let interactive = std::io::stdin().is_terminal();
    let mut commands: Vec<String> = if args.is_empty() {
        TOUR.map(String::from).to_vec()
    } else {
        args
    };
    if !commands.iter().any(|c| ends_the_board(c)) {
        commands.push("exit 0".into());
    }

    let t = step(
        1,
        "building containerd-shim-mica-v2 and micrun (cargo, debug)",
    );
    let (cmd, bin_dir) = e2e::shim_build(&[SHIM_NAME, "micrun"]);
    build(cmd)?;
    took(t);
    let t = step(
        2,
        "building the demo firmware for the QEMU aarch64 board (rtos-side/firmware)",
    );
    let (cmd, elf) = firmware_build(false);
    build(cmd)?;
    took(t);

    let t = step(3, "starting a private containerd in a temp dir");
    let env = Env::start_with(demo_config);
    interrupted()?;
    let ns = env.namespace("demo");
    println!(
        "   containerd {} (pid {}) on {}\n   its root, state, config and log in {}\n   \
         the shim on its PATH: {}\n   the shim's config (MICRUN_CONFIG): {}",
        env.cd.release().version,
        env.cd.pid().unwrap_or(0),
        env.cd.address().display(),
        env.dir().display(),
        e2e::shim_dir().join(SHIM_NAME).display(),
        env.config_path().display(),
    );
    took(t);
    let code = run_steps(
        &env,
        &ns,
        &bin_dir.join("micrun"),
        &elf,
        &commands,
        interactive,
    );
    say("cleaning up: the task, container and image, containerd and what it started, the temp dir");
    let dirs = [env.dir().to_path_buf(), env.cd.dir().to_path_buf()];
    drop(ns);
    drop(env);
    for dir in dirs {
        if dir.exists() {
            return Err(Stop::Failed(format!("{} is still there", dir.display())));
        }
        println!("   {} removed", dir.display());
    }
    code
}

/// Steps 4–6 (pack, import, run) in namespace `ns` of `env`.
fn run_steps(
    env: &Env,
    ns: &micrun_tests::containerd::Namespace<'_>,
    micrun: &Path,
    elf: &Path,
    commands: &[String],
    interactive: bool,
) -> Result<ExitCode, Stop> {
    let t = step(
        4,
        "packing the firmware into an OCI image (micrun image pack)",
    );
    let archive = env.dir().join("demo.tar");
    let mut pack = Command::new(micrun);
    pack.args(["image", "pack", "--board", "qemu-virt", "--os", "demo"])
        .args(["--pedestal", "qemu", "--tag", IMAGE, "-o"])
        .arg(&archive)
        .arg(elf);
    println!("   $ {}", shown(&pack));
    let out = pack
        .output()
        .map_err(|e| format!("cannot run {}: {e}", micrun.display()))?;
    shown_output(&out, "micrun image pack")?;
    took(t);

    let t = step(5, "importing it (ctr images import, no flags)");
    let ctr = env.cd.ctr_binary().display().to_string();
    let sock = env.cd.address().display().to_string();
    let archive_s = archive.display().to_string();
    println!(
        "   $ {ctr} -a {sock} -n {} images import {archive_s}",
        ns.name()
    );
    let out = env.cd.ctr_with(
        Some(ns.name()),
        &["images", "import", &archive_s],
        None,
        CTR_TIMEOUT,
    );
    shown_output(&out, "ctr images import")?;
    took(t);

    let fifo = env.cd.fifo_dir().display().to_string();
    let run_args = [
        "run",
        "--rm",
        "-t",
        "--fifo-dir",
        &fifo,
        "--runtime",
        RUNTIME,
        IMAGE,
        ID,
    ];
    let cmd = env.ctr_command(ns.name(), &run_args);
    let t = step(
        6,
        &format!(
            "running it on the pedestal the shim detects: {}",
            if interactive {
                "the RTOS shell is yours"
            } else {
                "the demo types for you"
            }
        ),
    );
    println!("   $ {}", shown(&cmd));
    let status = if interactive {
        println!(
            "   type `help` and Enter; \
             `exit N` powers the board off\n   and N becomes the container's exit status; \
             Ctrl-C goes to the RTOS"
        );
        run_on_terminal(cmd)?
    } else {
        run_on_pty(cmd, commands)?
    };
    let code = status_code(status);
    say(&format!("the container exited with status {code}"));
    let picked = env.log_lines("firmware for this host", 1);
    if let Some(tuple) = picked.split("firmware for this host: ").nth(1) {
        let tuple: String = tuple
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '"')
            .collect();
        println!("   the shim ran the image's firmware for this host: {tuple}");
    }
    took(t);
    if interactive {
        return Ok(ExitCode::SUCCESS);
    }
    let expected = commands.last().and_then(|c| exit_code_of(c));
    match expected {
        Some(want) if want.rem_euclid(256) == code => Ok(ExitCode::SUCCESS),
        Some(want) => Err(Stop::Failed(format!(
            "the RTOS was told `exit {want}`, but the container exited with status {code}"
        ))),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Shows a finished step's output, indented; an error if it failed (or the demo
/// was interrupted meanwhile).
fn shown_output(out: &std::process::Output, what: &str) -> Result<(), Stop> {
    interrupted()?;
    for bytes in [&out.stdout, &out.stderr] {
        for line in String::from_utf8_lossy(bytes).lines() {
            println!("   {line}");
        }
    }
    if out.status.success() {
        Ok(())
    } else {
        Err(Stop::Failed(format!("{what} failed: {}", out.status)))
    }
}

/// Commands after which the board is gone (no prompt follows); `exit` without a
/// number only gets the shell's usage line.
fn ends_the_board(cmd: &str) -> bool {
    cmd.trim() == "panic" || exit_code_of(cmd).is_some()
}

/// The code of `exit N`.
fn exit_code_of(cmd: &str) -> Option<i32> {
    let mut words = cmd.split_whitespace();
    (words.next() == Some("exit"))
        .then(|| words.next()?.parse().ok())
        .flatten()
}

fn status_code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Waits for `child`; on a signal to the demo, kills it (by PID) and reports it.
fn wait_child(child: &mut Child) -> Result<ExitStatus, Stop> {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    loop {
        let mut raw = 0;
        // SAFETY: waitpid(2) on our own child, with a valid out pointer.
        let r = unsafe { libc::waitpid(pid.as_raw(), &mut raw, 0) };
        if r == pid.as_raw() {
            return Ok(ExitStatus::from_raw(raw));
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Err(Stop::Failed(format!(
                "waiting for ctr: {}",
                std::io::Error::last_os_error()
            )));
        }
        if INTERRUPTED.load(Ordering::SeqCst) != 0 {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            // SAFETY: as above; reaps the killed child.
            unsafe { libc::waitpid(pid.as_raw(), &mut raw, 0) };
            interrupted()?;
        }
    }
}

/// ctr on the user's terminal (ctr makes it raw and restores it; the demo restores
/// it too, should ctr be killed).
fn run_on_terminal(mut cmd: Command) -> Result<ExitStatus, Stop> {
    let stdin = std::io::stdin();
    let saved = termios::tcgetattr(stdin.as_fd()).ok();
    let mut child = cmd.spawn().map_err(|e| format!("cannot run ctr: {e}"))?;
    let status = wait_child(&mut child);
    if let Some(t) = saved {
        let _ = termios::tcsetattr(stdin.as_fd(), termios::SetArg::TCSANOW, &t);
    }
    status
}

/// The console of a ctr running on a pseudo-terminal the demo holds: what came out
/// so far, shown as it comes.
struct Console {
    master: OwnedFd,
    out: Vec<u8>,
    /// ctr closed its side (it has exited).
    closed: bool,
}

impl Console {
    /// Reads what is there within `wait`, shows it (without `\r`). `EINTR` returns
    /// early; `EIO` means ctr's side is closed.
    fn pump(&mut self, wait: Duration) {
        let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(n) if n > 0 => {}
            _ => return,
        }
        let mut buf = [0u8; 4096];
        match nix::unistd::read(&self.master, &mut buf) {
            Ok(0) | Err(nix::errno::Errno::EIO) => self.closed = true,
            Ok(n) => {
                self.out.extend_from_slice(&buf[..n]);
                let text: Vec<u8> = buf[..n].iter().copied().filter(|&b| b != b'\r').collect();
                let mut o = std::io::stdout();
                let _ = o.write_all(&text);
                let _ = o.flush();
            }
            Err(_) => {}
        }
    }

    /// Waits until `needle` appears after `from`; returns the position after it.
    fn expect(
        &mut self,
        child: &mut Child,
        from: usize,
        needle: &str,
        timeout: Duration,
    ) -> Result<usize, Stop> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = micrun_tests::find(&self.out[from..], needle.as_bytes()) {
                return Ok(from + i + needle.len());
            }
            interrupted()?;
            if self.closed || matches!(child.try_wait(), Ok(Some(_))) {
                self.drain();
                return Err(Stop::Failed(format!(
                    "ctr ended before the RTOS printed {needle:?}"
                )));
            }
            if Instant::now() >= deadline {
                return Err(Stop::Failed(format!(
                    "no {needle:?} from the RTOS within {timeout:?}"
                )));
            }
            self.pump(Duration::from_millis(100));
        }
    }

    /// Shows what is left once ctr is gone.
    fn drain(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.closed && Instant::now() < deadline {
            self.pump(Duration::from_millis(50));
        }
    }

    fn type_line(&mut self, line: &str) -> Result<(), Stop> {
        let data = format!("{line}\r");
        let mut at = 0;
        while at < data.len() {
            match nix::unistd::write(&self.master, &data.as_bytes()[at..]) {
                Ok(n) => at += n,
                Err(nix::errno::Errno::EINTR) => interrupted()?,
                Err(e) => return Err(Stop::Failed(format!("typing into ctr's terminal: {e}"))),
            }
        }
        Ok(())
    }
}

/// ctr on a pseudo-terminal the demo holds (a session of its own, so a Ctrl-C at
/// the user's terminal reaches the demo only): types `commands`, shows the output.
fn run_on_pty(mut cmd: Command, commands: &[String]) -> Result<ExitStatus, Stop> {
    let size = nix::pty::Winsize {
        ws_row: 24,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size), None).map_err(|e| format!("openpty: {e}"))?;
    let slave = pty.slave;
    let dup = |fd: &OwnedFd| -> Result<Stdio, Stop> {
        Ok(Stdio::from(
            fd.try_clone().map_err(|e| format!("dup: {e}"))?,
        ))
    };
    cmd.stdin(dup(&slave)?)
        .stdout(dup(&slave)?)
        .stderr(dup(&slave)?);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot run ctr: {e}"))?;
    // Only ctr holds the terminal now: its exit closes it (EIO on the master).
    drop(cmd);
    drop(slave);
    let mut con = Console {
        master: pty.master,
        out: Vec::new(),
        closed: false,
    };
    let result = (|| {
        let mut at = con.expect(&mut child, 0, "> ", BOOT_TIMEOUT)?;
        for line in commands {
            // Shown after the prompt, as if typed there.
            println!("{line}");
            con.type_line(line)?;
            if ends_the_board(line) {
                break;
            }
            at = con.expect(&mut child, at, "> ", COMMAND_TIMEOUT)?;
        }
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                con.drain();
                println!();
                return Ok(st);
            }
            interrupted()?;
            if Instant::now() >= deadline {
                return Err(Stop::Failed(format!(
                    "ctr did not exit within {COMMAND_TIMEOUT:?} after `{}`",
                    commands.last().map_or("", String::as_str)
                )));
            }
            con.pump(Duration::from_millis(100));
        }
    })();
    if result.is_err() {
        // ctr is in a session of its own: end it by PID (the task goes with the
        // namespace's cleanup).
        let _ = child.kill();
        let _ = child.wait();
    }
    result
}
