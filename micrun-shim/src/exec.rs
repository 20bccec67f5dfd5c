//! Exec processes of the task service: `ctr task exec`, `kubectl exec`, exec
//! probes (CRI ExecSync).
//!
//! ```text
//!  Exec(exec_id, spec) ─► ExecProcess::new: args → argv (wire form), CREATED
//!  Start(exec_id)      ─► opens its stdio, Instance::exec(job) ─► I/O loop ─► agent
//!  agent's ExecExited  ─► job.on_exit(code): STOPPED, TaskExit{id: exec_id}
//!  Wait / State / Kill / Delete(exec_id) act on the ExecProcess
//! ```
//!
//! An exec runs one command of the firmware's application through the micrun
//! agent (protocol 1.2): the arguments are its command line, its output comes
//! back on the exec stream, its exit code is the application's. There is no
//! exec without the agent: a raw console is the firmware's own, and micrun
//! cannot tell the firmware's answer to a typed line from other output, so an
//! exec there fails with FAILED_PRECONDITION at once. An exec reads no input
//! (an RTOS command takes its arguments only; `kubectl attach` types into the
//! console) and has one output stream, its stdout. Its stdin FIFO, if it has
//! one (`kubectl exec -i`, `ctr task exec`), is held open unread until the
//! exec ends or CloseIO: typed bytes wait in the pipe as for a Linux command
//! that does not read them, and containerd's copier into the FIFO finds a
//! reader (without one its write would never return, and the CRI plugin would
//! never report the exec's end).

use std::sync::{Arc, Condvar, Mutex};
use std::time::SystemTime;

use micrun_proto::msg::MAX_ARGV;

use crate::error::{quote, Error};
use crate::instance::{lock, ExecJob, ExitInfo, Instance, IoPaths, Status};

/// Exit status of an exec whose Start failed (the shell's "cannot execute").
pub const START_FAILED: u32 = 126;
/// Exit status of an exec deleted, or whose task was deleted, before it ran:
/// ended with the container, as SIGKILL ends a container's processes.
pub const NOT_RUN: u32 = 137;

/// One exec of a task.
pub struct ExecProcess {
    /// The container's id.
    pub container: String,
    /// containerd's exec id.
    pub id: String,
    pub io: IoPaths,
    pub terminal: bool,
    /// The arguments in the wire form (each followed by a NUL).
    argv: Vec<u8>,
    state: Mutex<(Status, Option<ExitInfo>)>,
    cond: Condvar,
    /// Its id on the wire, once started.
    wire: Mutex<Option<u32>>,
    /// What its stdio needed (a logger, copiers); ended at Delete.
    stdio: Mutex<Option<crate::stdio::StdioGuard>>,
    /// Its stdin FIFO, held open unread until it ends (see the module docs).
    stdin: Mutex<Option<std::fs::File>>,
}

impl std::fmt::Debug for ExecProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecProcess")
            .field("container", &self.container)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The arguments of an exec's OCI process (`ExecProcessRequest.spec`, JSON) in
/// the wire form: every argument followed by a NUL, at most [`MAX_ARGV`] bytes.
pub fn wire_argv(container: &str, exec_id: &str, spec: &[u8]) -> Result<Vec<u8>, Error> {
    let process: crate::oci::Process = serde_json::from_slice(spec).map_err(|e| {
        Error::InvalidArgument(format!(
            "exec {} in container {container}: the process spec is not OCI process JSON: {e}",
            quote(exec_id)
        ))
    })?;
    let args = process.args.unwrap_or_default();
    if args.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "exec {} in container {container}: no command; give the firmware command to run \
             (e.g. `stats`)",
            quote(exec_id)
        )));
    }
    let mut argv = Vec::new();
    for a in &args {
        if a.as_bytes().contains(&0) {
            return Err(Error::InvalidArgument(format!(
                "exec {} in container {container}: argument {} contains a NUL byte",
                quote(exec_id),
                quote(a)
            )));
        }
        argv.extend_from_slice(a.as_bytes());
        argv.push(0);
    }
    if argv.len() > MAX_ARGV {
        return Err(Error::InvalidArgument(format!(
            "exec {} in container {container}: the command line is {} bytes (each argument \
             counts one more), the micrun agent takes at most {MAX_ARGV}; shorten it",
            quote(exec_id),
            argv.len()
        )));
    }
    Ok(argv)
}

impl ExecProcess {
    pub fn new(
        container: &str,
        id: &str,
        spec: &[u8],
        io: IoPaths,
        terminal: bool,
    ) -> Result<ExecProcess, Error> {
        let argv = wire_argv(container, id, spec)?;
        Ok(ExecProcess {
            container: container.to_string(),
            id: id.to_string(),
            io,
            terminal,
            argv,
            state: Mutex::new((Status::Created, None)),
            cond: Condvar::new(),
            wire: Mutex::new(None),
            stdio: Mutex::new(None),
            stdin: Mutex::new(None),
        })
    }

    pub fn status(&self) -> (Status, Option<ExitInfo>) {
        *lock(&self.state)
    }

    /// Blocks until the exec has ended.
    pub fn wait(&self) -> ExitInfo {
        let mut s = lock(&self.state);
        loop {
            if let Some(e) = s.1 {
                return e;
            }
            s = self.cond.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Records the end (once) and returns it; `None` if it had ended already.
    /// Its stdin closes: a writer blocked on a full pipe gets EPIPE.
    fn end(&self, code: u32) -> Option<ExitInfo> {
        self.close_stdin();
        let mut s = lock(&self.state);
        if s.1.is_some() {
            return None;
        }
        let info = ExitInfo {
            code,
            at: SystemTime::now(),
        };
        *s = (Status::Stopped, Some(info));
        self.cond.notify_all();
        Some(info)
    }

    /// CloseIO, and its end: the stdin FIFO's read end closes.
    pub fn close_stdin(&self) {
        drop(lock(&self.stdin).take());
    }

    /// Start: opens its stdio and hands it to the instance's I/O loop.
    /// `on_exit` is called once when it ends (to publish TaskExit).
    ///
    /// A Start that fails past the state check ends the exec with
    /// [`START_FAILED`]: it will never run, and a Wait on it (containerd sends
    /// Wait before Start) must return, as containerd's runc shim releases the
    /// waiters of an exec whose start failed. A handler blocked in Wait would
    /// otherwise hold the shim's ttrpc server, and the shim, after Shutdown.
    pub fn start(
        self: &Arc<Self>,
        inst: &Instance,
        namespace: &str,
        on_exit: impl Fn(&ExitInfo) + Send + 'static,
    ) -> Result<(), Error> {
        if lock(&self.state).0 != Status::Created {
            return Err(Error::Instance(
                crate::instance::InstanceError::Precondition(format!(
                    "exec {} in container {} was started already",
                    quote(&self.id),
                    self.container
                )),
            ));
        }
        self.try_start(inst, namespace, on_exit).inspect_err(|_| {
            self.close_stdio();
            self.end(START_FAILED);
        })
    }

    fn try_start(
        self: &Arc<Self>,
        inst: &Instance,
        namespace: &str,
        on_exit: impl Fn(&ExitInfo) + Send + 'static,
    ) -> Result<(), Error> {
        inst.exec_ready()?;
        let name = format!("{}/{}", self.container, self.id);
        // Its output FIFO once its reader is there (see stdio::writer_once_read).
        let out_path = self.io.stdout.as_ref().or(self.io.stderr.as_ref());
        let writer =
            out_path.and_then(|p| crate::stdio::writer_once_read(p, crate::stdio::TIMEOUTS.ready));
        let opened = crate::stdio::open(
            &name,
            namespace,
            &self.io,
            self.terminal,
            crate::stdio::TIMEOUTS,
        )
        .map_err(|e| {
            Error::Internal(format!(
                "exec {} in container {}: its stdio: {e}",
                quote(&self.id),
                self.container
            ))
        })?;
        *lock(&self.stdio) = Some(opened.guard);
        *lock(&self.stdin) = opened.stdin;
        // Without a stdout (ExecSync always has one) the output goes to stderr.
        let stdout = writer.or(opened.stdout).or(opened.stderr);
        let me = self.clone();
        let job = ExecJob {
            wire: 0,
            name,
            argv: self.argv.clone(),
            stdout,
            on_exit: Box::new(move |code| {
                if let Some(info) = me.end(code) {
                    on_exit(&info);
                }
            }),
        };
        *lock(&self.state) = (Status::Running, None);
        let wire = inst.exec(job)?;
        *lock(&self.wire) = Some(wire);
        Ok(())
    }

    /// Kill with this exec's id. Before Start it ends without running.
    pub fn kill(&self, inst: &Instance, signo: u32) -> Option<ExitInfo> {
        let signo = signo.min(255) as u8;
        match *lock(&self.wire) {
            Some(wire) => {
                inst.exec_signal(wire, signo);
                None
            }
            None => self.end(128 + u32::from(signo)),
        }
    }

    /// Delete of the exec or of its task: one that has not ended (it never
    /// started) ends now with [`NOT_RUN`], so that a Wait on it returns.
    pub fn abandon(&self) {
        self.end(NOT_RUN);
    }

    /// Delete: what its stdio needed ends.
    pub fn close_stdio(&self) {
        self.close_stdin();
        if let Some(guard) = lock(&self.stdio).take() {
            guard.close();
        }
    }
}
