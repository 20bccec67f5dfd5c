//! One RTOS container: its partition, its link, and the console relay between the
//! link and containerd's FIFOs.
//!
//! ```text
//!  stdin FIFO ──► ConsoleIn / raw bytes ──► link ──► partition (agent or raw console)
//!  stdout/stderr FIFO ◄── ConsoleOut / raw bytes ◄── link ◄──┘
//!  Kill/Resize/Stats ──► Command channel ──► I/O loop (HostEndpoint: Stop, Signal, ...)
//! ```
//!
//! The I/O loop runs on its own thread (`smol::block_on`) from Start until the
//! instance has ended. Lifecycle calls (`start`, `kill`, `pause`, ...) come from the
//! task service's threads and act on the [`Partition`] directly; what needs the
//! protocol goes to the loop as a `Command` on a channel.
//!
//! # Exit status
//! The first of these that applies:
//! 1. the instance was ended by micrun: `128 + signal` (SIGKILL → 137; SIGTERM
//!    when the agent did not stop in the grace time, or in raw mode → 143); a peer
//!    that stops answering the protocol is destroyed and reports 137;
//! 2. the agent's `Exited` code (its low 8 bits, like a POSIX exit status);
//! 3. the exit code of the partition's host process (sim);
//! 4. 0 (a raw-mode partition that powered itself off).
//!
//! # Auto-close
//! With `org.openeuler.micrun.container.auto_close_timeout` (or `auto_close=true`,
//! 30 s) the instance is stopped like a SIGTERM that long after Start. The Go
//! MicRun did this for every task by default; micrun does it only when asked,
//! because an RTOS workload normally runs until it is stopped.
//!
//! # Console flow control
//! Agent mode reads console data from the endpoint only as fast as the FIFO takes
//! it, so a slow or absent reader stops credits and the RTOS waits. Raw mode has no
//! way to slow the RTOS: it keeps up to [`RAW_BUFFER`] bytes and drops the rest,
//! counting them in the log. The FIFOs are opened read-write so that a detached
//! `ctr` neither blocks nor breaks the relay; output waits in the pipe for the next
//! attach. The end is reported (and the FIFOs closed) once what is in them has
//! been read, at most [`UNREAD_WAIT`] after the end: a reader that opens late
//! (ctr opens its FIFOs from a goroutine) still gets a short task's output.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use micrun_proto::{HostEndpoint, Stats};
use smol::channel as async_channel;
use smol::future;
use smol::{Async, Timer};

use crate::annotations::AgentMode;
use crate::config::LifecycleConfig;
use crate::pedestal::{
    Link, Partition, PartitionState, PartitionStats, PedestalError, RxTranslate,
};
use crate::spec::InstanceSpec;
use crate::termination::EndCause;

mod exec;
mod io_loop;
pub use exec::{ExecJob, KILL_GRACE};
use io_loop::run;
pub use io_loop::UNREAD_WAIT;

/// Raw-mode output kept for a slow reader before bytes are dropped.
pub const RAW_BUFFER: usize = 256 * 1024;
/// The host endpoint of one instance: a 4 KiB console input ring and 16 KiB
/// rings for stdout and stderr. The output ring is also the credit the RTOS gets:
/// on a fast link (shared memory, a pipe) it bounds the bytes in flight per
/// round trip. Four times as much gave the console about 20 % more on a pipe
/// and cost 100 KiB of RSS per shim, so not.
pub type LinkEndpoint = HostEndpoint<4096, 16384>;

/// How long a partition may take to end by itself after reporting `Exited`.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// The console FIFOs containerd gave the task (any may be absent).
#[derive(Debug, Clone, Default)]
pub struct IoPaths {
    pub stdin: Option<PathBuf>,
    pub stdout: Option<PathBuf>,
    pub stderr: Option<PathBuf>,
}

/// What containerd sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

/// How the host talks to the partition, once known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Not started, or waiting for the agent's handshake.
    Unknown,
    Agent,
    Raw,
}

/// How the instance ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    pub code: u32,
    pub at: SystemTime,
}

/// Errors of lifecycle calls, mapped to ttrpc status codes by the service.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error(transparent)]
    Pedestal(#[from] PedestalError),
    /// The call does not fit the instance's state or mode.
    #[error("{0}")]
    Precondition(String),
    #[error("{0}")]
    Io(String),
}

/// What [`Instance::start`] hands the I/O loop: the link (unless the partition
/// gives it only once started), the FIFOs and the command channel.
type IoParts = (Option<Link>, IoPaths, async_channel::Receiver<Command>);

/// Requests for the I/O loop.
#[derive(Debug)]
enum Command {
    /// Ask the agent to stop; force after `grace` with `128 + signo`.
    Stop {
        signo: u8,
        grace: Duration,
    },
    Signal(u8),
    Resize(u16, u16),
    Stats(async_channel::Sender<Stats>),
    CloseStdin,
    Paused,
    Resumed,
    /// The partition was ended from outside the loop; look for the end.
    Check,
    /// The partition was destroyed from outside the loop (Kill, Delete).
    Destroyed,
    /// Run an exec (after those queued before it).
    Exec(ExecJob),
    /// A signal for the exec with this wire id.
    ExecSignal(u32, u8),
}

#[derive(Debug)]
struct State {
    status: Status,
    mode: Mode,
    exit: Option<ExitInfo>,
    /// Set when micrun ended the partition.
    forced_code: Option<u32>,
    agent_code: Option<u32>,
    process_code: Option<i32>,
    peer: Option<micrun_proto::PeerInfo>,
    /// Why it ended, when a user has something to act on.
    cause: Option<EndCause>,
    /// The host file kubelet shows as the termination message ([`crate::termination`]).
    termination_log: Option<PathBuf>,
}

type ExitHook = Box<dyn Fn(&ExitInfo) + Send + Sync>;

/// One container's RTOS instance.
pub struct Instance {
    pub spec: InstanceSpec,
    partition: Arc<Mutex<Box<dyn Partition>>>,
    state: Arc<(Mutex<State>, Condvar)>,
    cmd_tx: async_channel::Sender<Command>,
    io_parts: Mutex<Option<IoParts>>,
    lifecycle: LifecycleConfig,
    on_exit: Arc<Mutex<Option<ExitHook>>>,
    /// What Start made for stdout/stderr (a logger, log file copiers); ended at Delete.
    stdio: Mutex<Option<crate::stdio::StdioGuard>>,
    /// The last exec id used on the wire.
    exec_wire: std::sync::atomic::AtomicU32,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("id", &self.spec.id)
            .field("state", &self.state.0.lock().map(|s| s.status).ok())
            .finish_non_exhaustive()
    }
}

/// Locks, ignoring poisoning: a panicked holder must not wedge containerd's calls.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Instance {
    /// Wraps a created partition. Its link is taken now if it has one (so nothing
    /// the RTOS prints at boot is lost), else right after the partition starts
    /// (a console that exists only once the partition runs, as micad's); the
    /// relay starts at [`Instance::start`].
    pub fn new(
        spec: InstanceSpec,
        mut partition: Box<dyn Partition>,
        io: IoPaths,
        lifecycle: LifecycleConfig,
    ) -> Result<Instance, InstanceError> {
        let link = partition.take_link();
        let (cmd_tx, cmd_rx) = async_channel::unbounded();
        let termination_log = crate::termination::host_file(&spec.bundle);
        Ok(Instance {
            spec,
            partition: Arc::new(Mutex::new(partition)),
            state: Arc::new((
                Mutex::new(State {
                    status: Status::Created,
                    mode: Mode::Unknown,
                    exit: None,
                    forced_code: None,
                    agent_code: None,
                    process_code: None,
                    peer: None,
                    cause: None,
                    termination_log,
                }),
                Condvar::new(),
            )),
            cmd_tx,
            io_parts: Mutex::new(Some((link, io, cmd_rx))),
            lifecycle,
            on_exit: Arc::new(Mutex::new(None)),
            stdio: Mutex::new(None),
            exec_wire: std::sync::atomic::AtomicU32::new(0),
        })
    }

    /// Called once when the instance ends (to publish TaskExit).
    pub fn set_exit_hook(&self, hook: impl Fn(&ExitInfo) + Send + Sync + 'static) {
        *lock(&self.on_exit) = Some(Box::new(hook));
    }

    pub fn status(&self) -> Status {
        lock(&self.state.0).status
    }

    pub fn mode(&self) -> Mode {
        lock(&self.state.0).mode
    }

    pub fn exit(&self) -> Option<ExitInfo> {
        lock(&self.state.0).exit
    }

    /// The agent's identity, in agent mode.
    pub fn peer(&self) -> Option<micrun_proto::PeerInfo> {
        lock(&self.state.0).peer.clone()
    }

    /// The pid of the partition's host process, if it has one.
    pub fn pid(&self) -> Option<u32> {
        lock(&self.partition).pid()
    }

    pub fn leftovers(&self) -> crate::pedestal::Leftovers {
        lock(&self.partition).leftovers()
    }

    /// Starts the partition and the console relay.
    pub fn start(&self) -> Result<(), InstanceError> {
        {
            let st = lock(&self.state.0);
            if st.status != Status::Created {
                return Err(InstanceError::Precondition(format!(
                    "container {} is {:?}, not created",
                    self.spec.id, st.status
                )));
            }
        }
        let Some((link, io, cmd_rx)) = lock(&self.io_parts).take() else {
            return Err(InstanceError::Precondition("already started".into()));
        };
        let open = |link| {
            Relay::open(&self.spec, link, io, &self.stdio)
                .map_err(|e| InstanceError::Io(format!("container {}: console: {e}", self.spec.id)))
        };
        // A start that fails half way (the partition runs, its console never
        // came) must not leave the partition behind.
        let start = |partition: &mut Box<dyn Partition>| {
            partition.start().inspect_err(|_| {
                if let Err(e) = partition.destroy() {
                    log::warn!("{}: destroy after a failed start: {e}", self.spec.id);
                }
            })
        };
        let relay = match link {
            Some(link) => {
                let relay = open(link)?;
                start(&mut lock(&self.partition))?;
                relay
            }
            None => {
                let mut partition = lock(&self.partition);
                start(&mut partition)?;
                let link = partition.take_link().ok_or_else(|| {
                    InstanceError::Io(format!(
                        "container {}: the partition started but has no console link",
                        self.spec.id
                    ))
                });
                match link.and_then(open) {
                    Ok(relay) => relay,
                    Err(e) => {
                        let _ = partition.destroy();
                        return Err(e);
                    }
                }
            }
        };
        lock(&self.state.0).status = Status::Running;
        let ctx = LoopCtx {
            id: self.spec.id.clone(),
            agent: self.spec.agent_mode(),
            lifecycle: self.lifecycle.clone(),
            state: self.state.clone(),
            on_exit: self.on_exit.clone(),
            has_process: lock(&self.partition).pid().is_some(),
            partition: self.partition.clone(),
            auto_close: self.spec.annotations.auto_close,
            terminal: self.spec.terminal,
        };
        std::thread::Builder::new()
            .name(format!("io-{}", self.spec.id))
            .stack_size(1 << 20)
            .spawn(move || smol::block_on(run(ctx, relay, cmd_rx)))
            .map_err(|e| InstanceError::Io(format!("spawn the console thread: {e}")))?;
        if self.spec.agent_mode() == AgentMode::On {
            self.wait_mode(self.lifecycle.handshake_wait + Duration::from_millis(500))?;
        }
        Ok(())
    }

    /// Waits until the mode is known; in `agent=on` mode a missing agent is an error
    /// and the partition is destroyed.
    fn wait_mode(&self, timeout: Duration) -> Result<(), InstanceError> {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.state;
        let mut st = lock(m);
        while st.mode == Mode::Unknown && st.exit.is_none() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = cv
                .wait_timeout(st, deadline - now)
                .map(|r| r.0)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        if st.mode == Mode::Agent {
            return Ok(());
        }
        drop(st);
        self.force_end(137);
        Err(InstanceError::Precondition(format!(
            "container {}: annotation org.openeuler.micrun.container.agent=on, but the firmware \
             did not answer the micrun handshake within {:?}; use agent=auto or off for a \
             firmware without the agent",
            self.spec.id, self.lifecycle.handshake_wait
        )))
    }

    /// Ends the partition now and reports `code`.
    fn force_end(&self, code: u32) {
        {
            let mut st = lock(&self.state.0);
            if st.exit.is_some() {
                return;
            }
            st.forced_code.get_or_insert(code);
        }
        let destroyed = match lock(&self.partition).destroy() {
            Ok(()) => true,
            Err(e) => {
                log::warn!("{}: destroy: {e}", self.spec.id);
                false
            }
        };
        if self.status() == Status::Created || lock(&self.io_parts).is_some() {
            // No loop is running to notice: finish here.
            lock(&self.io_parts).take();
            finish(&self.state, &self.on_exit, &self.spec.id);
        } else {
            let _ = self.cmd_tx.try_send(if destroyed {
                Command::Destroyed
            } else {
                Command::Check
            });
        }
    }

    /// Delivers a signal the way a container user expects (see the module doc).
    pub fn kill(&self, signo: u32) -> Result<(), InstanceError> {
        use nix::sys::signal::Signal;
        let sig = Signal::try_from(signo as i32)
            .map_err(|_| InstanceError::Precondition(format!("{signo} is not a signal number")))?;
        let status = self.status();
        if status == Status::Stopped {
            return Ok(());
        }
        match sig {
            Signal::SIGKILL => self.force_end(137),
            Signal::SIGTERM | Signal::SIGINT => {
                if status == Status::Running && self.mode() == Mode::Agent {
                    let _ = self.cmd_tx.try_send(Command::Stop {
                        signo: signo as u8,
                        grace: self.lifecycle.stop_grace,
                    });
                } else {
                    self.force_end(128 + signo);
                }
            }
            Signal::SIGSTOP => self.pause()?,
            Signal::SIGCONT => self.resume()?,
            _ => {
                if status == Status::Running && self.mode() == Mode::Agent {
                    let _ = self.cmd_tx.try_send(Command::Signal(signo as u8));
                } else {
                    return Err(InstanceError::Precondition(format!(
                        "container {} runs without the micrun agent (raw console), so signal \
                         {} ({sig}) cannot be delivered; only SIGTERM, SIGINT, SIGKILL, SIGSTOP \
                         and SIGCONT work in raw mode",
                        self.spec.id, signo
                    )));
                }
            }
        }
        Ok(())
    }

    pub fn pause(&self) -> Result<(), InstanceError> {
        if self.status() != Status::Running {
            return Err(InstanceError::Precondition(format!(
                "container {} is not running",
                self.spec.id
            )));
        }
        lock(&self.partition).pause()?;
        lock(&self.state.0).status = Status::Paused;
        let _ = self.cmd_tx.try_send(Command::Paused);
        Ok(())
    }

    pub fn resume(&self) -> Result<(), InstanceError> {
        if self.status() != Status::Paused {
            return Err(InstanceError::Precondition(format!(
                "container {} is not paused",
                self.spec.id
            )));
        }
        lock(&self.partition).resume()?;
        lock(&self.state.0).status = Status::Running;
        let _ = self.cmd_tx.try_send(Command::Resumed);
        Ok(())
    }

    /// Whether an exec can run now: the instance runs and its agent speaks
    /// protocol 1.2 with exec. While `agent=auto` is still finding out, waits
    /// (at most the handshake wait). The error says what the user can do.
    pub fn exec_ready(&self) -> Result<(), InstanceError> {
        let id = &self.spec.id;
        let deadline = Instant::now() + self.lifecycle.handshake_wait + Duration::from_millis(500);
        let (m, cv) = &*self.state;
        let mut st = lock(m);
        while st.status == Status::Running && st.mode == Mode::Unknown {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = cv
                .wait_timeout(st, deadline - now)
                .map(|r| r.0)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        if st.status != Status::Running {
            return Err(InstanceError::Precondition(format!(
                "exec in container {id}: the container is {}, not running",
                match st.status {
                    Status::Created => "created",
                    Status::Paused => "paused",
                    _ => "stopped",
                }
            )));
        }
        match (st.mode, st.peer.as_ref()) {
            (Mode::Agent, Some(p)) if p.features & micrun_proto::features::EXEC != 0 => Ok(()),
            (Mode::Agent, Some(p)) => Err(InstanceError::Precondition(format!(
                "exec in container {id}: the firmware's micrun agent ({}, protocol {}.{}) \
                 does not run commands; exec needs an agent of protocol 1.2 or later",
                p.agent_version, p.version.major, p.version.minor
            ))),
            _ => Err(InstanceError::Precondition(format!(
                "exec in container {id}: exec needs the micrun agent in the firmware, and \
                 this container's console is raw (no agent answered, or \
                 org.openeuler.micrun.container.agent=off); use `ctr task attach` or \
                 `kubectl attach` to type into its console"
            ))),
        }
    }

    /// Hands an exec to the I/O loop; returns its wire id (for
    /// [`Instance::exec_signal`]). The job's `on_exit` is called once, also
    /// when the instance ends first.
    pub fn exec(&self, mut job: ExecJob) -> Result<u32, InstanceError> {
        self.exec_ready()?;
        let wire = self
            .exec_wire
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .wrapping_add(1)
            .max(1);
        job.wire = wire;
        self.cmd_tx.try_send(Command::Exec(job)).map_err(|_| {
            InstanceError::Precondition(format!(
                "exec in container {}: the container has ended",
                self.spec.id
            ))
        })?;
        Ok(wire)
    }

    /// A signal for a running exec.
    pub fn exec_signal(&self, wire: u32, signo: u8) {
        let _ = self.cmd_tx.try_send(Command::ExecSignal(wire, signo));
    }

    pub fn resize(&self, rows: u16, cols: u16) {
        let _ = self.cmd_tx.try_send(Command::Resize(rows, cols));
    }

    pub fn close_stdin(&self) {
        let _ = self.cmd_tx.try_send(Command::CloseStdin);
    }

    pub fn update(&self, resources: &crate::resources::Resources) -> Result<(), InstanceError> {
        lock(&self.partition).update(resources)?;
        Ok(())
    }

    /// Pedestal figures, and the agent's own report when it answers within 1 s.
    pub fn stats(&self) -> Result<(PartitionStats, Option<Stats>), InstanceError> {
        let ped = lock(&self.partition).stats()?;
        let mut agent = None;
        if self.status() == Status::Running && self.mode() == Mode::Agent {
            let (tx, rx) = async_channel::bounded(1);
            if self.cmd_tx.try_send(Command::Stats(tx)).is_ok() {
                agent = smol::block_on(future::or(async { rx.recv().await.ok() }, async {
                    Timer::after(Duration::from_secs(1)).await;
                    None
                }));
            }
        }
        Ok((ped, agent))
    }

    /// The reaper saw the partition's host process end.
    pub fn process_exited(&self, code: i32) {
        let cause = {
            let mut p = lock(&self.partition);
            p.process_exited(code);
            p.end_cause()
        };
        if let Some(cause) = cause {
            set_cause(&self.state, cause);
        }
        lock(&self.state.0).process_code = Some(code);
        if lock(&self.io_parts).is_some() {
            // Never started: nothing else will notice.
            lock(&self.io_parts).take();
            finish(&self.state, &self.on_exit, &self.spec.id);
        } else {
            let _ = self.cmd_tx.try_send(Command::Check);
        }
    }

    /// Blocks until the instance has ended.
    pub fn wait(&self) -> ExitInfo {
        let (m, cv) = &*self.state;
        let mut st = lock(m);
        loop {
            if let Some(e) = st.exit {
                return e;
            }
            st = cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Like [`Instance::wait`], at most `timeout`.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<ExitInfo> {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.state;
        let mut st = lock(m);
        loop {
            if let Some(e) = st.exit {
                return Some(e);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            st = cv
                .wait_timeout(st, deadline - now)
                .map(|r| r.0)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Delete, once the instance has ended: the logger or log file copiers of
    /// its stdio finish (see [`crate::stdio::StdioGuard::close`]).
    pub fn close_stdio(&self) {
        if let Some(guard) = lock(&self.stdio).take() {
            guard.close();
        }
    }

    /// Destroys what is left of the partition (Delete). Never blocks on the RTOS.
    pub fn destroy(&self) {
        if self.exit().is_none() {
            self.force_end(137);
        }
        if let Err(e) = lock(&self.partition).destroy() {
            log::warn!("{}: destroy: {e}", self.spec.id);
        }
        if let PartitionState::Running | PartitionState::Paused = lock(&self.partition).state() {
            log::warn!(
                "{}: partition still reported alive after destroy",
                self.spec.id
            );
        }
    }
}

/// Notes why the instance is ending (the first cause noted wins).
fn set_cause(state: &(Mutex<State>, Condvar), cause: EndCause) {
    lock(&state.0).cause.get_or_insert(cause);
}

/// Records the end and tells everyone, once.
fn finish(state: &Arc<(Mutex<State>, Condvar)>, on_exit: &Arc<Mutex<Option<ExitHook>>>, id: &str) {
    let (info, cause, termination_log) = {
        let mut st = lock(&state.0);
        if st.exit.is_some() {
            return;
        }
        let code = st
            .forced_code
            .or(st.agent_code)
            .or(st.process_code.map(|c| c as u32 & 0xff))
            .unwrap_or(0);
        let info = ExitInfo {
            code,
            at: SystemTime::now(),
        };
        st.exit = Some(info);
        st.status = Status::Stopped;
        state.1.notify_all();
        (info, st.cause, st.termination_log.clone())
    };
    log::info!("{id}: exited with status {}", info.code);
    crate::termination::record(id, termination_log.as_deref(), cause, info.code);
    if let Some(hook) = lock(on_exit).as_ref() {
        hook(&info);
    }
}

struct LoopCtx {
    id: String,
    agent: AgentMode,
    lifecycle: LifecycleConfig,
    state: Arc<(Mutex<State>, Condvar)>,
    on_exit: Arc<Mutex<Option<ExitHook>>>,
    has_process: bool,
    partition: Arc<Mutex<Box<dyn Partition>>>,
    /// `container.auto_close(_timeout)`: stop the instance this long after Start.
    auto_close: Option<Duration>,
    /// The OCI `process.terminal`: the agent is told of a terminal at each
    /// handshake (see `IoLoop::term_size`).
    terminal: bool,
}

/// The open ends of the relay.
struct Relay {
    link_rx: Async<File>,
    link_tx: Async<File>,
    rx_translate: RxTranslate,
    stdin: Option<Async<File>>,
    stdout: Option<Async<File>>,
    stderr: Option<Async<File>>,
}

impl Relay {
    /// Opens the link and the stdio (FIFOs, log files, a logger: [`crate::stdio`]),
    /// leaving in `guard` what must be ended at Delete.
    fn open(
        spec: &InstanceSpec,
        link: Link,
        io: IoPaths,
        guard: &Mutex<Option<crate::stdio::StdioGuard>>,
    ) -> io::Result<Relay> {
        let s = crate::stdio::open(
            &spec.id,
            &spec.namespace,
            &io,
            spec.terminal,
            crate::stdio::TIMEOUTS,
        )?;
        *lock(guard) = Some(s.guard);
        let a = |f: Option<File>| f.map(Async::new).transpose();
        Ok(Relay {
            link_rx: Async::new(File::from(link.rx))?,
            link_tx: Async::new(File::from(link.tx))?,
            rx_translate: link.rx_translate,
            stdin: a(s.stdin)?,
            stdout: a(s.stdout)?,
            stderr: a(s.stderr)?,
        })
    }
}

/// Bytes waiting for one output FIFO.
#[derive(Default)]
struct Out {
    buf: Vec<u8>,
    /// Raw-mode bytes dropped so far (reported when the task ends).
    dropped: u64,
    /// Dropping now; reset once the reader has emptied the buffer, so each
    /// episode of a stalled reader is logged once, not once per read.
    dropping: bool,
}

enum Wake {
    LinkIn,
    LinkOut,
    Stdin,
    Stdout,
    Stderr,
    ExecOut,
    Timer,
    Cmd(Option<Command>),
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted
}

/// Exit status of a partition without a host process whose console closed with
/// no exit report and no stop asked by micrun: it was stopped from outside, or
/// its driver lost it (micad restarted). Not 0: nothing says it ended well.
pub const UNREPORTED_END: u32 = 255;

/// A partition without a host process ended: if nobody said how, say so.
fn unreported_end(ctx: &LoopCtx) {
    {
        let st = lock(&ctx.state.0);
        if st.forced_code.is_some() || st.agent_code.is_some() {
            return;
        }
    }
    // What the driver says: an exit status of its own (a remote processor that
    // crashed), or nothing (micad may no longer know the partition). The console
    // can hang up a moment before the driver's state changes: give it a second.
    let settle = Instant::now() + Duration::from_secs(1);
    let seen = loop {
        let seen = lock(&ctx.partition).state();
        if matches!(seen, PartitionState::Stopped(_)) || Instant::now() >= settle {
            break seen;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let code = match seen {
        PartitionState::Stopped(Some(code)) => {
            log::warn!(
                "{}: the partition ended without an exit report; its driver reports \
                 status {code}",
                ctx.id
            );
            code as u32 & 0xff
        }
        _ => {
            log::warn!(
                "{}: the partition's console closed without an exit report (the driver \
                 now reports it {seen:?}); it was stopped outside micrun, or its driver \
                 lost it (micad restarted); exit status {UNREPORTED_END}",
                ctx.id
            );
            UNREPORTED_END
        }
    };
    lock(&ctx.state.0).forced_code.get_or_insert(code);
    set_cause(&ctx.state, EndCause::Unreported);
}

/// Ends the partition from the loop (its end then shows as link EOF and, where
/// there is a host process, its exit).
///
/// Returns true when the link is to be taken as closed: a partition without a
/// host process was destroyed, whether or not its console hangs up.
fn request_destroy(ctx: &LoopCtx) -> bool {
    match lock(&ctx.partition).destroy() {
        Ok(()) => !ctx.has_process,
        Err(e) => {
            log::warn!("{}: destroy: {e}", ctx.id);
            false
        }
    }
}

fn set_mode(ctx: &LoopCtx, mode: Mode) {
    let mut st = lock(&ctx.state.0);
    st.mode = mode;
    ctx.state.1.notify_all();
}

/// Buffers raw console output, dropping what does not fit. True when this call
/// started an episode of dropping (the caller logs it).
fn push_raw(out: &mut Out, data: &[u8]) -> bool {
    let room = RAW_BUFFER.saturating_sub(out.buf.len());
    let n = data.len().min(room);
    out.buf.extend_from_slice(&data[..n]);
    if n == data.len() {
        return false;
    }
    out.dropped += (data.len() - n) as u64;
    !std::mem::replace(&mut out.dropping, true)
}

/// Writes what the FIFO takes without blocking; true if any byte went.
fn drain(fifo: &Option<Async<File>>, out: &mut Out) -> bool {
    let Some(f) = fifo else { return false };
    match f.get_ref().write(&out.buf) {
        Ok(n) => {
            out.buf.drain(..n);
            if out.buf.is_empty() {
                out.dropping = false;
            }
            n > 0
        }
        Err(e) if would_block(&e) => false,
        Err(_) => {
            out.buf.clear();
            false
        }
    }
}
