//! Execs of one instance (`ctr task exec`, `kubectl exec`, exec probes) on the
//! I/O loop's side: an [`Execs`] state with one method per concern, called from
//! the loop.
//!
//! ```text
//!  Service::exec/start ──Command::Exec(job)──► queue ─drive─► ExecStart{id, argv}
//!  the job's stdout FIFO ◄─drain─ out ◄─collect─ Stream::Exec ◄── agent
//!  job.on_exit(code) ◄─finish (output written)─ ExecExited{id, code} ◄── agent
//! ```
//!
//! The agent runs one exec at a time (protocol 1.2), so jobs queue here and the
//! next `ExecStart` goes out once the previous `ExecExited` has arrived. Output
//! is read from the endpoint only as fast as the exec's FIFO takes it (credit
//! back-pressure, as for the console). A SIGKILL for an exec that the
//! application does not end within [`KILL_GRACE`] ends it here with 137; the
//! agent's late report for it is then ignored (output such an application
//! still sends for it may reach the next exec). When the instance ends, every
//! exec still queued or running ends with 137, as a runtime kills a
//! container's processes with its init.

use std::collections::VecDeque;
use std::fs::File;
use std::time::{Duration, Instant};

use micrun_proto::{HostEndpoint, Stream};
use smol::Async;

use super::{drain, Out};

/// How long an exec may take to end after a SIGKILL before it is ended here.
pub const KILL_GRACE: Duration = Duration::from_secs(1);
/// Exec output buffered for a slow reader before reading stops (credit then
/// holds the agent back).
const OUT_MAX: usize = 64 * 1024;

/// One exec, handed to the loop by the service at Start.
pub struct ExecJob {
    /// Its id on the wire (never 0; see `Instance::exec`).
    pub wire: u32,
    /// The exec id containerd gave it (for logs).
    pub name: String,
    /// Its arguments in the wire form: every argument followed by a NUL.
    pub argv: Vec<u8>,
    /// Where its output goes (stdout; an exec's output is one stream).
    pub stdout: Option<File>,
    /// Called once with its exit status, after its output was written.
    pub on_exit: Box<dyn FnOnce(u32) + Send>,
}

impl std::fmt::Debug for ExecJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecJob")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The exec the agent runs now.
struct Current {
    wire: u32,
    name: String,
    on_exit: Option<Box<dyn FnOnce(u32) + Send>>,
    fifo: Option<Async<File>>,
    out: Out,
    /// The agent reported the end (or it was ended here): finish once `out` is
    /// written.
    code: Option<u32>,
    /// A SIGKILL was sent: end it here at this time if the agent has not.
    kill_at: Option<Instant>,
    /// Nothing of its output waits in the endpoint (as of the last collect).
    ring_empty: bool,
}

/// The execs of one instance, on the loop's side.
#[derive(Default)]
pub(super) struct Execs {
    queue: VecDeque<ExecJob>,
    current: Option<Current>,
}

impl Execs {
    /// A job from the service.
    pub fn submit(&mut self, job: ExecJob) {
        self.queue.push_back(job);
    }

    /// Starts the next queued exec when none runs and the session is up.
    pub fn drive<const I: usize, const O: usize>(&mut self, ep: &mut HostEndpoint<I, O>) {
        if self.current.is_some() || !ep.is_connected() {
            return;
        }
        let Some(job) = self.queue.pop_front() else {
            return;
        };
        let wire = job.wire;
        if ep.send_exec_start(wire, &job.argv).is_err() {
            // The control queue is full: try again on the next turn.
            self.queue.push_front(job);
            return;
        }
        log::debug!("exec {} started as {wire}", job.name);
        let fifo = job.stdout.and_then(|f| Async::new(f).ok());
        self.current = Some(Current {
            wire,
            name: job.name,
            on_exit: Some(job.on_exit),
            fifo,
            out: Out::default(),
            code: None,
            kill_at: None,
            ring_empty: true,
        });
    }

    /// Takes exec output from the endpoint as far as the FIFO keeps up: it is
    /// the current exec's (the agent's `ExecExited` follows all of it). Output
    /// with no exec to take it (one ended here after a SIGKILL) is discarded.
    pub fn collect<const I: usize, const O: usize>(
        &mut self,
        ep: &mut HostEndpoint<I, O>,
        rbuf: &mut [u8],
    ) {
        match self.current.as_mut() {
            Some(c) => {
                if c.out.buf.len() < OUT_MAX {
                    let n = ep.read_console(Stream::Exec, rbuf);
                    if c.fifo.is_some() {
                        c.out.buf.extend_from_slice(&rbuf[..n]);
                    }
                }
                c.ring_empty = ep.readable(Stream::Exec) == 0;
            }
            None => while ep.read_console(Stream::Exec, rbuf) > 0 {},
        }
    }

    /// The agent's `ExecExited`.
    pub fn on_exited(&mut self, wire: u32, code: i32) {
        match self.current.as_mut() {
            Some(c) if c.wire == wire && c.code.is_none() => {
                c.code = Some(code as u32 & 0xff);
            }
            // An exec ended here after a SIGKILL: its report came late.
            _ => log::debug!("exec {wire}: late or unknown exit report ({code}) ignored"),
        }
    }

    /// A signal for exec `wire` (Kill with its exec id).
    pub fn signal<const I: usize, const O: usize>(
        &mut self,
        ep: &mut HostEndpoint<I, O>,
        wire: u32,
        signo: u8,
    ) {
        if let Some(c) = self.current.as_mut().filter(|c| c.wire == wire) {
            if c.code.is_some() {
                return;
            }
            let _ = ep.send_exec_signal(wire, signo);
            if signo == 9 {
                c.kill_at.get_or_insert(Instant::now() + KILL_GRACE);
            }
            return;
        }
        if let Some(i) = self.queue.iter().position(|j| j.wire == wire) {
            // Not started yet: it ends without running.
            if let Some(job) = self.queue.remove(i) {
                (job.on_exit)(128 + u32::from(signo));
            }
        }
    }

    /// Timers: an exec killed and not ended by the application.
    pub fn on_timer(&mut self, now: Instant) {
        if let Some(c) = self.current.as_mut() {
            if c.code.is_none() && c.kill_at.is_some_and(|t| now >= t) {
                log::warn!(
                    "exec {}: the application did not end it within {KILL_GRACE:?} of SIGKILL; \
                     reported as killed",
                    c.name
                );
                c.code = Some(137);
                c.out.buf.clear();
                // What it still sends is not waited for.
                c.ring_empty = true;
            }
        }
    }

    /// Writes pending output to the exec's FIFO; true if any byte went.
    pub fn drain(&mut self) -> bool {
        match self.current.as_mut() {
            Some(c) => drain(&c.fifo, &mut c.out),
            None => false,
        }
    }

    /// Finishes the current exec once it has ended and its output is written
    /// (or cannot be: its reader is gone). True when one finished.
    pub fn finish_ended(&mut self) -> bool {
        let done = self.current.as_ref().is_some_and(|c| {
            c.code.is_some() && ((c.out.buf.is_empty() && c.ring_empty) || c.fifo.is_none())
        });
        if !done {
            return false;
        }
        if let Some(mut c) = self.current.take() {
            // Closing the FIFO is the reader's EOF; it comes before the exit.
            drop(c.fifo.take());
            if let Some(f) = c.on_exit.take() {
                f(c.code.unwrap_or(137));
            }
        }
        true
    }

    /// The instance ended: every exec still here ends with `code`.
    pub fn end_all(&mut self, code: u32) {
        if let Some(mut c) = self.current.take() {
            // What the agent sent before the end is written if the reader takes
            // it now; the rest is gone with the partition.
            let _ = drain(&c.fifo, &mut c.out);
            drop(c.fifo.take());
            if let Some(f) = c.on_exit.take() {
                f(c.code.unwrap_or(code));
            }
        }
        for job in self.queue.drain(..) {
            (job.on_exit)(code);
        }
    }

    /// The FIFO to wait on for writing, when output waits for it.
    pub fn fifo_waiting(&self) -> Option<&Async<File>> {
        let c = self.current.as_ref()?;
        if c.out.buf.is_empty() {
            return None;
        }
        c.fifo.as_ref()
    }

    /// The earliest timer.
    pub fn deadline(&self) -> Option<Instant> {
        self.current
            .as_ref()
            .filter(|c| c.code.is_none())
            .and_then(|c| c.kill_at)
    }
}

impl Drop for Execs {
    /// The loop ended (also when the instance was ended elsewhere): no exec
    /// outlives it unreported.
    fn drop(&mut self) {
        self.end_all(137);
    }
}
