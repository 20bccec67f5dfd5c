//! `micrun` as an OCI runtime: runc's command line (podman, conmon, CRI-O and
//! other runc-type callers), on the shim's engine. docs/oci-runtime.md.
//!
//! `create` forks a monitor ([`monitor`]) that owns the partition and stays
//! behind as the container's process; the other commands read the container's
//! record under `--root/<id>/` ([`record`]) and talk to its monitor over its
//! control socket.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod args;
pub mod monitor;
pub mod record;

use args::{Cmd, Global, Invocation};

/// The runtime-spec version micrun's state and features documents follow.
pub const OCI_VERSION: &str = "1.0.2";

/// Runs `args` (without the program name) if it is an OCI runtime command line;
/// `None` leaves it to the `micrun` command's own parser.
pub fn dispatch(args: &[std::ffi::OsString]) -> Option<i32> {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if !args::is_runtime_invocation(&args) {
        return None;
    }
    Some(match args::parse(&args) {
        Ok(inv) => run(inv),
        Err(e) => crate::cli::fail(e),
    })
}

/// Runs a parsed command; returns the exit status.
pub fn run(inv: Invocation) -> i32 {
    let g = &inv.global;
    if let Some(path) = &g.log {
        if let Err(e) = FileLog::install(path, g.log_json, g.debug) {
            return crate::cli::fail(format!("--log {}: {e}", path.display()));
        }
    }
    let result = match inv.cmd {
        Cmd::Version => {
            println!(
                "micrun version {}\nspec: {OCI_VERSION}",
                crate::cli::VERSION
            );
            Ok(0)
        }
        Cmd::Features => {
            println!("{}", crate::annotations::runtime_features_json());
            Ok(0)
        }
        Cmd::Create {
            id,
            bundle,
            pid_file,
            console_socket,
        } => create(g, &id, &bundle, pid_file.as_deref(), console_socket),
        Cmd::Start { id } => send(g, &id, "start", &["created"]),
        Cmd::State { id } => existing(g, &id).map(|c| {
            println!("{:#}", c.state_json());
            0
        }),
        Cmd::Kill { id, signal, all: _ } => kill(g, &id, signal),
        Cmd::Delete { id, force } => delete(g, &id, force),
        Cmd::List { json, quiet } => list(g, json, quiet),
        Cmd::Ps { id, json } => existing(g, &id).map(|c| {
            let pids: Vec<u32> = if c.status_now() == "stopped" {
                Vec::new()
            } else {
                vec![c.pid]
            };
            if json {
                println!("{}", serde_json::json!(pids));
            } else {
                println!("PID");
                for p in pids {
                    println!("{p}");
                }
            }
            0
        }),
        Cmd::Pause { id } => send(g, &id, "pause", &["running"]),
        Cmd::Resume { id } => send(g, &id, "resume", &["paused"]),
        Cmd::Update { id, resources } => update(g, &id, &resources),
        Cmd::Refused(what) => Err(refusal(what)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            log::error!("{e}");
            crate::cli::fail(e)
        }
    }
}

/// Why a runc command is not there, and what to use.
fn refusal(what: &str) -> String {
    let why = match what {
        "exec" => {
            "an RTOS partition has no Linux process to start another in; type \
                   into the console (podman attach), or run commands through the micrun agent \
                   with containerd (ctr task exec, kubectl exec)"
        }
        "checkpoint" | "restore" => "a partition's memory cannot be checkpointed",
        "run" => "use create, then start",
        "spec" => "write config.json by hand or with podman; see docs/images.md",
        _ => "not implemented",
    };
    format!("{what} is not supported by micrun's OCI runtime: {why}")
}

fn existing(g: &Global, id: &str) -> Result<record::Container, String> {
    let dir = record::dir(&g.root, id);
    record::read(&dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("container {id} does not exist"),
        _ => format!("container {id}: read {}: {e}", dir.display()),
    })
}

/// `update --resources FILE|-`: checked here, mapped and applied by the monitor
/// as the shim's Update does.
fn update(g: &Global, id: &str, resources: &Path) -> Result<i32, String> {
    let text = if resources == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .take(1 << 20)
            .read_to_string(&mut s)
            .map(|_| s)
    } else {
        std::fs::read_to_string(resources)
    }
    .map_err(|e| format!("update {id}: --resources {}: {e}", resources.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .and_then(|v: serde_json::Value| {
            serde_json::from_value::<crate::oci::LinuxResources>(v.clone()).map(|_| v)
        })
        .map_err(|e| {
            format!(
                "update {id}: --resources {}: not OCI linux.resources JSON: {e}",
                resources.display()
            )
        })?;
    send(
        g,
        id,
        &format!("update {value}"),
        &["created", "running", "paused"],
    )
}

/// A control command to a live monitor, if the container is in one of `states`.
fn send(g: &Global, id: &str, command: &str, states: &[&str]) -> Result<i32, String> {
    let c = existing(g, id)?;
    let status = c.status_now();
    if !states.contains(&status) {
        return Err(format!(
            "{} {id}: the container is {status}, not {}",
            command.split(' ').next().unwrap_or(command),
            states.join(" or ")
        ));
    }
    let verb = command.split(' ').next().unwrap_or(command);
    match monitor::control(&record::dir(&g.root, id), command)? {
        Some(_) => Ok(0),
        None => Err(format!("{verb} {id}: the container's monitor has ended")),
    }
}

fn create(
    g: &Global,
    id: &str,
    bundle: &Path,
    pid_file: Option<&Path>,
    console_socket: Option<PathBuf>,
) -> Result<i32, String> {
    let bundle = std::fs::canonicalize(bundle).map_err(|e| {
        format!(
            "create {id}: bundle {}: {e}",
            args::quote(&bundle.display().to_string())
        )
    })?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .create(&g.root)
        .map_err(|e| format!("create {id}: --root {}: {e}", g.root.display()))?;
    let dir = record::dir(&g.root, id);
    match std::fs::DirBuilder::new().create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(format!(
                "create {id}: a container with this id exists (micrun delete {id})"
            ))
        }
        Err(e) => return Err(format!("create {id}: {}: {e}", dir.display())),
    }
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("create {id}: pipe: {e}"))?;
    // SAFETY: this process has one thread here (nothing before forks a thread), so
    // the child may run ordinary code.
    match unsafe { nix::unistd::fork() } {
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            Err(format!("create {id}: fork the monitor: {e}"))
        }
        Ok(nix::unistd::ForkResult::Child) => {
            drop(ready_r);
            let code = monitor::run(
                monitor::MonitorArgs {
                    id: id.to_string(),
                    bundle,
                    dir,
                    config: g.config.clone(),
                    console_socket,
                },
                ready_w,
            );
            std::process::exit(code);
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(ready_w);
            let mut answer = String::new();
            let _ = std::io::Read::read_to_string(&mut std::fs::File::from(ready_r), &mut answer);
            if answer == "ok" {
                if let Some(p) = pid_file {
                    write_pid_file(p, child.as_raw() as u32)
                        .map_err(|e| format!("create {id}: --pid-file {}: {e}", p.display()))?;
                }
                return Ok(0);
            }
            let _ = nix::sys::wait::waitpid(child, None);
            let _ = std::fs::remove_dir_all(&dir);
            Err(answer
                .strip_prefix("error ")
                .map(str::to_string)
                .unwrap_or_else(|| format!("create {id}: the monitor ended before it was ready")))
        }
    }
}

/// Writes the pid as runc does: the number alone, atomically.
fn write_pid_file(path: &Path, pid: u32) -> std::io::Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.micrun-tmp"));
    std::fs::write(&tmp, pid.to_string())?;
    std::fs::rename(&tmp, path)
}

fn kill(g: &Global, id: &str, signal: i32) -> Result<i32, String> {
    let c = existing(g, id)?;
    if c.status_now() == "stopped" {
        return Err(format!("kill {id}: the container is not running"));
    }
    let dir = record::dir(&g.root, id);
    match monitor::control(&dir, &format!("kill {signal}"))? {
        Some(_) => Ok(0),
        None if signal == nix::libc::SIGKILL => {
            // A monitor that no longer answers: end it; `delete` releases the rest.
            crate::pedestal::kill_if_same(c.pid, c.pid_start);
            Ok(0)
        }
        None => Err(format!(
            "kill {id}: the container's monitor does not answer; `micrun kill {id} KILL` \
             ends it"
        )),
    }
}

fn delete(g: &Global, id: &str, force: bool) -> Result<i32, String> {
    let dir = record::dir(&g.root, id);
    let c = match existing(g, id) {
        Ok(c) => c,
        // As runc: --force of a container that is not there (a create that
        // failed, a delete already done) succeeds; podman runs one after a
        // failed create.
        Err(_) if force && !dir.join(record::CONTAINER_FILE).exists() => {
            let _ = std::fs::remove_dir_all(&dir);
            return Ok(0);
        }
        Err(e) => return Err(e),
    };
    let status = c.status_now();
    if matches!(status, "running" | "paused") && !force {
        return Err(format!(
            "delete {id}: the container is {status}; stop it first (micrun kill {id}) or use \
             delete --force"
        ));
    }
    if status != "stopped" {
        let _ = monitor::control(&dir, &format!("kill {}", nix::libc::SIGKILL));
        if !monitor::wait_gone(c.pid, c.pid_start, Duration::from_secs(10)) {
            log::warn!("{id}: the monitor did not end 10 s after KILL; killing it");
            crate::pedestal::kill_if_same(c.pid, c.pid_start);
            monitor::wait_gone(c.pid, c.pid_start, Duration::from_secs(2));
        }
    }
    // What the monitor made and did not release (it died): as the shim's
    // `delete` action does.
    match crate::state::read(&dir) {
        Ok(task) => {
            for p in crate::state::release(&dir, &task) {
                log::warn!("{id}: {p}");
            }
        }
        Err(_) => {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    if dir.exists() {
        return Err(format!("delete {id}: could not remove {}", dir.display()));
    }
    Ok(0)
}

fn list(g: &Global, json: bool, quiet: bool) -> Result<i32, String> {
    let mut all = Vec::new();
    match std::fs::read_dir(&g.root) {
        Ok(entries) => {
            for e in entries.flatten() {
                if let Ok(c) = record::read(&e.path()) {
                    all.push(c);
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("list: --root {}: {e}", g.root.display())),
    }
    all.sort_by(|a, b| a.id.cmp(&b.id));
    let mut out = std::io::stdout().lock();
    if json {
        let docs: Vec<serde_json::Value> = all.iter().map(|c| c.state_json()).collect();
        let _ = writeln!(out, "{}", serde_json::Value::Array(docs));
    } else if quiet {
        for c in &all {
            let _ = writeln!(out, "{}", c.id);
        }
    } else {
        let _ = writeln!(out, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER");
        for c in &all {
            let s = c.state_json();
            let _ = writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}\t",
                c.id,
                s["pid"],
                c.status_now(),
                c.bundle.display(),
                c.created
            );
        }
    }
    Ok(0)
}

/// `--log FILE`: one line per message, text or runc's JSON form
/// (`{"level":…,"msg":…,"time":…}`), appended.
struct FileLog {
    file: std::sync::Mutex<std::fs::File>,
    json: bool,
}

impl FileLog {
    fn install(path: &Path, json: bool, debug: bool) -> std::io::Result<()> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        // Not inherited by the firmware's processes.
        let _ = nix::fcntl::fcntl(
            &file,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
        let logger = FileLog {
            file: std::sync::Mutex::new(file),
            json,
        };
        if log::set_boxed_logger(Box::new(logger)).is_ok() {
            log::set_max_level(if debug {
                log::LevelFilter::Debug
            } else {
                log::LevelFilter::Info
            });
        }
        Ok(())
    }
}

impl log::Log for FileLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, r: &log::Record<'_>) {
        let level = r.level().as_str().to_ascii_lowercase();
        let time = record::now_rfc3339();
        let line = if self.json {
            serde_json::json!({"level": level, "msg": r.args().to_string(), "time": time})
                .to_string()
        } else {
            format!("{time} {level} {}", r.args())
        };
        let _ = writeln!(crate::instance::lock(&self.file), "{line}");
    }

    fn flush(&self) {}
}
