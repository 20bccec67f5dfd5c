//! The per-container monitor that `micrun create` leaves behind: the OCI
//! runtime's "container process". It owns the partition through the shim's
//! engine ([`Instance`]), relays the console between the stdio `create` was
//! given (or the pty it sent to `--console-socket`) and the link, and ends with
//! the RTOS's exit status under the shim's rules (docs/shim.md).
//!
//! ```text
//! micrun create ──fork──► monitor (setsid): spec::build, Pedestal::create,
//!      │ ◄── "ok" / "error …" ─┘   container.json, state.json, control.sock
//!      └─ exits 0/1            ◄── start | kill N | pause | resume (control.sock)
//!                              ◄── SIGTERM, SIGINT, SIGHUP, SIGUSR1, … (kill(2))
//!                              ──► exit status = the instance's (137 after KILL)
//! ```
//!
//! The monitor is forked, not spawned: `create` is single-threaded when it forks
//! (nothing before it starts a thread), and the monitor inherits its stdio.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::Config;
use crate::instance::{lock, Instance, IoPaths, Status};
use crate::state::{self, TaskRecord};

use super::record::{self, Container, CONTROL_SOCKET};

/// The namespace the engine sees for OCI-runtime containers (in logs and a
/// logger's environment).
pub const NAMESPACE: &str = "oci";

/// How long a control command may take (a start boots the RTOS).
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(60);

/// What the monitor is made from.
pub struct MonitorArgs {
    pub id: String,
    pub bundle: PathBuf,
    pub dir: PathBuf,
    pub config: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
}

/// The monitor's life, in the forked child: returns its exit status. `ready`
/// gets `ok` once the container is created, or `error <message>`.
pub fn run(args: MonitorArgs, ready: OwnedFd) -> i32 {
    let _ = nix::unistd::setsid();
    let mut ready = File::from(ready);
    let (inst, container, config) = match setup(&args) {
        Ok(x) => x,
        Err(message) => {
            log::warn!("{message}");
            let _ = ready.write_all(format!("error {message}").as_bytes());
            let _ = std::fs::remove_dir_all(&args.dir);
            return 1;
        }
    };
    let listener = match bind_control(&args.dir) {
        Ok(l) => l,
        Err(e) => {
            inst.destroy();
            let message = format!("create {}: control socket: {e}", args.id);
            let _ = ready.write_all(format!("error {message}").as_bytes());
            if let Ok(r) = state::read(&args.dir) {
                state::release(&args.dir, &r);
            }
            let _ = std::fs::remove_dir_all(&args.dir);
            return 1;
        }
    };
    let _ = ready.write_all(b"ok");
    drop(ready);
    // The caller's stdio is held through the copies the relay opens; the
    // monitor's own 0, 1, 2 must not keep `create`'s pipes (a caller waiting
    // for EOF on its stderr) or take log lines into the container's output.
    detach_stdio();

    let monitor = Arc::new(Monitor {
        inst,
        dir: args.dir.clone(),
        container: Mutex::new(container),
        config,
    });
    monitor.publish();
    reap(&monitor.inst);
    forward_signals(&monitor);
    {
        let m = monitor.clone();
        std::thread::spawn(move || serve(&m, listener));
    }
    let exit = monitor.inst.wait();
    monitor.publish();
    monitor.inst.close_stdio();
    monitor.inst.destroy();
    let _ = std::fs::remove_file(args.dir.join(CONTROL_SOCKET));
    log::info!("{}: monitor exits with {}", args.id, exit.code);
    (exit.code & 0xff) as i32
}

struct Monitor {
    inst: Arc<Instance>,
    dir: PathBuf,
    container: Mutex<Container>,
    config: Config,
}

impl Monitor {
    /// Writes the instance's status to container.json (atomically).
    fn publish(&self) {
        let mut c = lock(&self.container);
        c.status = status_name(self.inst.status()).to_string();
        c.exit_code = self.inst.exit().map(|e| e.code);
        if let Err(e) = record::write(&self.dir, &c) {
            log::warn!("{}: write {}: {e}", c.id, record::CONTAINER_FILE);
        }
    }

    /// One control command; the answer's first word is `ok` or `error`.
    fn command(&self, line: &str) -> String {
        let id = &self.inst.spec.id;
        log::info!("{id}: {line}");
        if let Some(json) = line.strip_prefix("update ") {
            let result = serde_json::from_str(json)
                .map_err(|e| format!("update {id}: resources are not OCI JSON: {e}"))
                .and_then(|res| {
                    crate::service::update_resources(&self.inst, &res, &self.config)
                        .map_err(|e| format!("update {id}: {e}"))
                });
            return match result {
                Ok(()) => "ok".into(),
                Err(e) => format!("error {e}"),
            };
        }
        let mut words = line.split_whitespace();
        let result = match (words.next(), words.next()) {
            (Some("start"), None) => self.inst.start().inspect_err(|_| {
                // As the shim: a failed start ends the container (stopped).
                self.inst.destroy();
            }),
            (Some("kill"), Some(n)) => match n.parse::<u32>() {
                Ok(signo) => self.inst.kill(signo),
                Err(_) => return format!("error kill {id}: bad signal {n:?}"),
            },
            (Some("pause"), None) => self.inst.pause(),
            (Some("resume"), None) => self.inst.resume(),
            _ => return format!("error unknown control command {line:?}"),
        };
        self.publish();
        match result {
            Ok(()) => "ok".into(),
            Err(e) => format!("error {e}"),
        }
    }
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Created => "created",
        Status::Running => "running",
        Status::Paused => "paused",
        Status::Stopped => "stopped",
    }
}

/// Config, spec, partition, state: everything `create` promises, or the error
/// (as the shim words it), with nothing left behind.
fn setup(args: &MonitorArgs) -> Result<(Arc<Instance>, Container, Config), String> {
    let id = &args.id;
    let config =
        Config::load_for(args.config.as_deref()).map_err(|e| format!("create {id}: {e}"))?;
    let mut chosen = None;
    let built = crate::spec::build_noting(id, NAMESPACE, &args.bundle, &config, &mut chosen);
    let with_pedestal = |e: &dyn std::fmt::Display, chosen: &Option<_>| match chosen {
        Some(c) => format!("create {id}: {e} [{c}]"),
        None => format!("create {id}: {e} [no pedestal chosen yet]"),
    };
    let (spec, ped) = built.map_err(|e| with_pedestal(&e, &chosen))?;
    if spec.sandbox {
        return Err(format!(
            "create {id}: the bundle is a CRI sandbox (pause) container; micrun's OCI runtime \
             runs firmware containers only"
        ));
    }
    let io = stdio(id, args.console_socket.as_deref())?;
    let oci = crate::spec::load_oci_spec(&args.bundle).map_err(|e| format!("create {id}: {e}"))?;
    let partition = ped
        .create(&spec, &args.dir)
        .map_err(|e| with_pedestal(&e, &chosen))?;
    let record = TaskRecord {
        id: id.clone(),
        namespace: NAMESPACE.into(),
        bundle: args.bundle.clone(),
        mounted_rootfs: None,
        pedestal: spec.pedestal.name().to_string(),
        leftovers: partition.leftovers(),
    };
    let inst = Instance::new(spec, partition, io, config.lifecycle.clone())
        .map_err(|e| format!("create {id}: {e}"))?;
    let inst = Arc::new(inst);
    let pid = std::process::id();
    let container = Container {
        id: id.clone(),
        bundle: args.bundle.clone(),
        pid,
        pid_start: crate::pedestal::process_start_time(pid).unwrap_or(0),
        status: "created".into(),
        exit_code: None,
        created: record::now_rfc3339(),
        annotations: oci.annotations.unwrap_or_default().into_iter().collect(),
    };
    let written =
        state::write(&args.dir, &record).and_then(|()| record::write(&args.dir, &container));
    if let Err(e) = written {
        inst.destroy();
        return Err(format!(
            "create {id}: write the state in {}: {e}",
            args.dir.display()
        ));
    }
    Ok((inst, container, config))
}

/// The console's ends for the engine: copies of fds 0, 1 and 2, or the slave of
/// a new pty whose master went to `console_socket`, named by `/proc/self/fd/N`
/// (the relay opens them at start, in this process). A pipe or a terminal is
/// relayed as the shim relays a FIFO; a regular file is appended to (the
/// shim's `file://`); /dev/null is no stream.
fn stdio(id: &str, console_socket: Option<&Path>) -> Result<IoPaths, String> {
    let Some(socket) = console_socket else {
        return Ok(IoPaths {
            stdin: keep(id, 0, "stdin")?,
            stdout: keep(id, 1, "stdout")?,
            stderr: keep(id, 2, "stderr")?,
        });
    };
    let fail = |e: &dyn std::fmt::Display| {
        format!(
            "create {id}: --console-socket {}: {e}",
            super::args::quote(&socket.display().to_string())
        )
    };
    let pty = nix::pty::openpty(None, None).map_err(|e| fail(&e))?;
    // The relay is the line's only user: no echo or line editing of its own
    // (the RTOS's shell echoes).
    let mut t = nix::sys::termios::tcgetattr(&pty.slave).map_err(|e| fail(&e))?;
    nix::sys::termios::cfmakeraw(&mut t);
    nix::sys::termios::tcsetattr(&pty.slave, nix::sys::termios::SetArg::TCSANOW, &t)
        .map_err(|e| fail(&e))?;
    let name = nix::unistd::ttyname(&pty.slave).map_err(|e| fail(&e))?;
    let stream = UnixStream::connect(socket).map_err(|e| fail(&e))?;
    let fds = [pty.master.as_raw_fd()];
    let iov = [std::io::IoSlice::new(name.as_os_str().as_encoded_bytes())];
    nix::sys::socket::sendmsg::<()>(
        stream.as_raw_fd(),
        &iov,
        &[nix::sys::socket::ControlMessage::ScmRights(&fds)],
        nix::sys::socket::MsgFlags::empty(),
        None,
    )
    .map_err(|e| fail(&e))?;
    drop(pty.master);
    let path = keep(id, pty.slave.as_raw_fd(), "the pty")?;
    Ok(IoPaths {
        stdin: path.clone(),
        stdout: path,
        stderr: None,
    })
}

/// A copy of descriptor `fd` (not inherited by the firmware) as the engine's
/// stdio string for it.
fn keep(id: &str, fd: RawFd, what: &str) -> Result<Option<PathBuf>, String> {
    use nix::sys::stat::{fstat, SFlag};
    // SAFETY: borrowing a descriptor this process holds, for these calls only.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let Ok(st) = fstat(borrowed) else {
        return Ok(None); // not open: no stream
    };
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    let dev_null = kind == SFlag::S_IFCHR && st.st_rdev == nix::sys::stat::makedev(1, 3);
    if dev_null {
        return Ok(None);
    }
    if kind == SFlag::S_IFSOCK {
        return Err(format!(
            "create {id}: {what} is a socket; micrun relays pipes, FIFOs, terminals and \
             files (or a pty with --console-socket)"
        ));
    }
    let copy = nix::fcntl::fcntl(borrowed, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))
        .map_err(|e| format!("create {id}: copy {what}: {e}"))?;
    Ok(Some(PathBuf::from(if kind == SFlag::S_IFREG {
        format!("file:///proc/self/fd/{copy}")
    } else {
        format!("/proc/self/fd/{copy}")
    })))
}

/// Binds `<dir>/control.sock` (by a relative path: `--root` may be long).
fn bind_control(dir: &Path) -> std::io::Result<UnixListener> {
    std::env::set_current_dir(dir)?;
    UnixListener::bind(CONTROL_SOCKET)
}

/// Points fds 0, 1 and 2 at /dev/null.
fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors, which this process owns.
            unsafe { nix::libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

/// Collects the partition's host process (if it has one) for the instance.
fn reap(inst: &Arc<Instance>) {
    let Some(pid) = inst.pid() else { return };
    let inst = inst.clone();
    std::thread::spawn(move || {
        use nix::sys::wait::{waitpid, WaitStatus};
        loop {
            match waitpid(nix::unistd::Pid::from_raw(pid as i32), None) {
                Ok(WaitStatus::Exited(_, c)) => return inst.process_exited(c),
                Ok(WaitStatus::Signaled(_, s, _)) => return inst.process_exited(128 + s as i32),
                Ok(_) => continue,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
            }
        }
    });
}

/// Signals sent to the monitor go to the container as `kill` would send them
/// (SIGTERM: a graceful stop through the agent).
fn forward_signals(m: &Arc<Monitor>) {
    use signal_hook::consts::*;
    let Ok(mut signals) =
        signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2])
    else {
        log::warn!("cannot catch signals");
        return;
    };
    let m = m.clone();
    std::thread::spawn(move || {
        for sig in signals.forever() {
            log::info!("{}: signal {sig}", m.inst.spec.id);
            if let Err(e) = m.inst.kill(sig as u32) {
                log::warn!("{}: signal {sig}: {e}", m.inst.spec.id);
            }
            m.publish();
        }
    });
}

/// Answers control connections, one line each, until the process ends.
fn serve(m: &Arc<Monitor>, listener: UnixListener) {
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        let mut line = String::new();
        if BufReader::new(&conn)
            .take(256)
            .read_line(&mut line)
            .is_err()
        {
            continue;
        }
        let answer = m.command(line.trim());
        let _ = conn.write_all(answer.as_bytes());
    }
}

/// Sends one control command to the monitor of the container in `dir`; its
/// answer, `Err` for `error …` (the message) or when the monitor cannot be
/// reached (`Ok(None)`).
pub fn control(dir: &Path, command: &str) -> Result<Option<String>, String> {
    let path = dir.join(CONTROL_SOCKET);
    // A long --root: connect by a path relative to the state directory.
    let conn = if path.as_os_str().len() < 100 {
        UnixStream::connect(&path)
    } else {
        std::env::set_current_dir(dir).and_then(|()| UnixStream::connect(CONTROL_SOCKET))
    };
    let Ok(mut conn) = conn else {
        return Ok(None);
    };
    let _ = conn.set_read_timeout(Some(CONTROL_TIMEOUT));
    conn.write_all(format!("{command}\n").as_bytes())
        .map_err(|e| format!("send {command:?} to the monitor: {e}"))?;
    let _ = conn.shutdown(std::net::Shutdown::Write);
    let mut answer = String::new();
    conn.read_to_string(&mut answer)
        .map_err(|e| format!("{command}: no answer from the monitor: {e}"))?;
    match answer.strip_prefix("error ") {
        Some(message) => Err(message.to_string()),
        None if answer == "ok" => Ok(Some(answer)),
        // The monitor ended while answering (a KILL): the command was done.
        None if answer.is_empty() => Ok(Some(answer)),
        None => Err(format!(
            "{command}: unexpected answer {answer:?} from the monitor"
        )),
    }
}

/// Waits until process `pid` (started at `start`) has ended, at most `timeout`;
/// true if it has.
pub fn wait_gone(pid: u32, start: u64, timeout: Duration) -> bool {
    let alive = || {
        crate::pedestal::process_start_time(pid) == Some(start)
            && crate::pedestal::proc_stat(pid).is_some_and(|s| !s.ended())
    };
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid as nix::libc::c_int, 0) };
    if fd < 0 || !alive() {
        return !alive();
    }
    // SAFETY: a descriptor just returned by pidfd_open, owned here.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let mut fds = [nix::poll::PollFd::new(
        pidfd.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    let _ = nix::poll::poll(
        &mut fds,
        nix::poll::PollTimeout::try_from(ms).unwrap_or(nix::poll::PollTimeout::MAX),
    );
    !alive()
}
