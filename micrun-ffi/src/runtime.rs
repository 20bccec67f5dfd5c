//! The runtime API: micrun containers driven the way iSulad's runtime layer drives
//! a shim v2 runtime. Header `include/micrun.h`; rules in `docs/c-api.md`.
//!
//! Stateless between calls: [`micrun_rt_create`] starts the shim binary
//! (`containerd-shim-mica-v2 --id ID --namespace NS start` in the bundle, in its
//! own session with stdin `/dev/null`, as iSulad starts it; the shim daemonizes
//! and writes `<bundle>/address`) and sends Create over ttrpc;
//! [`micrun_rt_create_at`] sends Create to a shim the caller started (iSulad's
//! `task_addr`). Every later call reads `<bundle>/address`, connects, and makes
//! one ttrpc call with containerd-shim-protos' `TaskClient`. So any thread or
//! process may make any call.

use core::ffi::{c_char, CStr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use containerd_shim_protos::api;
use containerd_shim_protos::cgroups::metrics::Metrics;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim_sync::{Client, TaskClient};
use containerd_shim_protos::ttrpc::context::Context;
use containerd_shim_protos::ttrpc::{self, Code};

use crate::args::{input, Out};
use crate::status::{
    entry, fail, micrun_status, Failed, MICRUN_ERR_INVALID_ARG, MICRUN_ERR_NOT_FOUND,
    MICRUN_ERR_NULL, MICRUN_ERR_RUNTIME, MICRUN_ERR_TIMEOUT,
};

/// How long one ttrpc call may take (Wait has no limit).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a shim may take to exit after Shutdown.
const EXIT_TIMEOUT: Duration = Duration::from_secs(3);

/// What [`micrun_rt_create`] needs. Strings are NUL-terminated UTF-8, borrowed for
/// the call only.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct micrun_rt_opts {
    /// The namespace (iSulad: "isula"). Required.
    pub ns: *const c_char,
    /// The container id. Required.
    pub id: *const c_char,
    /// The OCI bundle directory (config.json, rootfs). Required.
    pub bundle: *const c_char,
    /// FIFO the partition's console input is read from; NULL for none.
    pub stdin_path: *const c_char,
    /// FIFO the console output is written to; NULL for none.
    pub stdout_path: *const c_char,
    /// FIFO for the error stream; NULL for none.
    pub stderr_path: *const c_char,
    /// Whether the container has a terminal (`process.terminal`).
    pub terminal: bool,
    /// The shim binary; NULL: `containerd-shim-mica-v2` found on PATH.
    pub shim_binary: *const c_char,
    /// The micrun config file given to the shim as MICRUN_CONFIG; NULL: the
    /// shim's default (or MICRUN_CONFIG of the caller's environment).
    pub config_path: *const c_char,
}

/// Names a container after [`micrun_rt_create`]: the same namespace, id and bundle.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct micrun_rt_ref {
    pub ns: *const c_char,
    pub id: *const c_char,
    pub bundle: *const c_char,
}

/// A container's status, as [`micrun_rt_state`] reports it.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum micrun_rt_status {
    MICRUN_RT_UNKNOWN = 0,
    MICRUN_RT_CREATED = 1,
    MICRUN_RT_RUNNING = 2,
    MICRUN_RT_STOPPED = 3,
    MICRUN_RT_PAUSED = 4,
}

/// Bytes of [`micrun_rt_state_info::pedestal`], with its terminating NUL.
pub const MICRUN_RT_PEDESTAL_LEN: usize = 16;

/// What [`micrun_rt_state`] fills in.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct micrun_rt_state_info {
    pub status: micrun_rt_status,
    /// The partition's host process id (0 when it has none).
    pub pid: u32,
    /// The exit status once stopped (128 + signal for a signal), else 0.
    pub exit_status: u32,
    /// The pedestal the container runs on (`qemu`, `sim`, `xen`, `baremetal`),
    /// NUL-terminated; empty when the shim's state record cannot be read.
    pub pedestal: [c_char; MICRUN_RT_PEDESTAL_LEN],
}

/// The pedestal of container `t`, from the shim's state record
/// (`<state_dir>/<ns>/<id>/state.json`, where the shim wrote the one it chose);
/// the config is the one the task was created with (`<bundle>/micrun-config-path`,
/// else the shim's default).
fn pedestal_of(t: &Target) -> [c_char; MICRUN_RT_PEDESTAL_LEN] {
    use micrun_shim::{config::Config, service::CONFIG_PATH_FILE, state};
    let mut out = [0 as c_char; MICRUN_RT_PEDESTAL_LEN];
    let config_path = std::fs::read_to_string(t.bundle.join(CONFIG_PATH_FILE))
        .ok()
        .map(PathBuf::from);
    let name = Config::load_for(config_path.as_deref())
        .ok()
        .and_then(|c| state::read(&state::task_dir(&c.state_dir, &t.ns, &t.id)).ok())
        .map(|r| r.pedestal)
        .unwrap_or_default();
    for (o, b) in out
        .iter_mut()
        .zip(name.bytes().take(MICRUN_RT_PEDESTAL_LEN - 1))
    {
        *o = b as c_char;
    }
    out
}

/// `runtimeoptions.v1.Options { config_path }` in protobuf: field 2, a string.
/// The shim uses it for this task and records it for later calls and its
/// `delete` action.
fn runtime_options(config_path: &str) -> Any {
    let mut value = vec![0x12];
    let mut len = config_path.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            value.push(byte);
            break;
        }
        value.push(byte | 0x80);
    }
    value.extend_from_slice(config_path.as_bytes());
    Any {
        type_url: micrun_shim::config::RUNTIME_OPTIONS_TYPE.to_string(),
        value,
        ..Default::default()
    }
}

/// What [`micrun_rt_stats`] fills in (from the shim's cgroup Metrics): the 17
/// fields of iSulad's container stats, in its order after the first three.
/// Fields a partition never has are 0 (docs/c-api.md, "Stats").
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct micrun_rt_stats_info {
    /// CPU time the partition used, in nanoseconds (iSulad: `cpu_use_nanos`).
    pub cpu_ns: u64,
    /// Memory in use, in bytes (iSulad: `mem_used`): what the RTOS reports
    /// through the agent, else what its host process uses.
    pub memory_usage: u64,
    /// The partition's memory, in bytes (iSulad: `mem_limit`).
    pub memory_limit: u64,
    /// Host processes of the partition: 1 for qemu and sim, 0 for hardware.
    pub pids_current: u64,
    /// CPU time of the whole host since boot, in nanoseconds (`/proc/stat`), the
    /// base iSulad divides `cpu_ns` deltas by.
    pub cpu_system_use: u64,
    /// Bytes the partition's host process read and wrote through the storage
    /// layer (`/proc/<pid>/io`); 0 without one.
    pub blkio_read: u64,
    pub blkio_write: u64,
    /// Resident memory of the host process, bytes.
    pub rss_bytes: u64,
    /// Page faults of the host process, all and major.
    pub page_faults: u64,
    pub major_page_faults: u64,
    /// Never known for a partition (always 0).
    pub kmem_used: u64,
    pub kmem_limit: u64,
    pub cache: u64,
    pub cache_total: u64,
    pub inactive_file_total: u64,
    pub swap_used: u64,
    pub swap_limit: u64,
}

/// What [`micrun_rt_start_info`] fills in: iSulad's `pid_ppid_info_t`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct micrun_rt_pid_info {
    /// The task's pid: the partition's host process, or the shim's when the
    /// partition has none (hardware pedestals).
    pub pid: u32,
    /// Its start time, clock ticks since boot (`/proc/<pid>/stat` field 22).
    pub start_time: u64,
    /// Its parent: the shim for a host process, the shim's parent (init or a
    /// subreaper) for the shim.
    pub ppid: u32,
    /// The parent's start time, clock ticks since boot.
    pub pstart_time: u64,
}

/// The pid facts of `pid` for [`micrun_rt_pid_info`].
fn pid_info(pid: u32) -> Result<micrun_rt_pid_info, String> {
    use micrun_shim::pedestal::proc_stat;
    let st = proc_stat(pid).ok_or_else(|| format!("process {pid} is gone"))?;
    let parent = proc_stat(st.ppid).ok_or_else(|| format!("its parent {} is gone", st.ppid))?;
    Ok(micrun_rt_pid_info {
        pid,
        start_time: st.start,
        ppid: st.ppid,
        pstart_time: parent.start,
    })
}

/// The host's CPU time since boot in nanoseconds: the sum of `/proc/stat`'s
/// `cpu` line, as iSulad and docker compute the system CPU usage.
fn system_cpu_ns() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let ticks: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("cpu "))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|v| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|v| u64::try_from(v).ok())
        .filter(|&v| v > 0)
        .unwrap_or(100);
    ticks.saturating_mul(1_000_000_000 / hz)
}

/// A required C string argument.
///
/// # Safety
/// A non-NULL `p` must point to a NUL-terminated string alive for `'a`.
unsafe fn text<'a>(p: *const c_char, what: &str) -> Result<&'a str, Failed> {
    if p.is_null() {
        return Err(fail!(MICRUN_ERR_NULL, "{what} is NULL"));
    }
    // SAFETY: non-NULL, NUL-terminated per the contract.
    let s = unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| fail!(MICRUN_ERR_INVALID_ARG, "{what} is not UTF-8"))?;
    if s.is_empty() {
        return Err(fail!(MICRUN_ERR_INVALID_ARG, "{what} is empty"));
    }
    Ok(s)
}

/// An optional C string argument: NULL (or "") is `None`.
///
/// # Safety
/// As [`text`].
unsafe fn optional<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>, Failed> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: as text.
    let s = unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| fail!(MICRUN_ERR_INVALID_ARG, "{what} is not UTF-8"))?;
    Ok(Some(s).filter(|s| !s.is_empty()))
}

/// A container reference, checked.
struct Target {
    ns: String,
    id: String,
    bundle: PathBuf,
}

/// # Safety
/// `r` must be NULL or point to a valid `micrun_rt_ref` whose strings are valid.
unsafe fn target(r: *const micrun_rt_ref) -> Result<Target, Failed> {
    // SAFETY: checked non-NULL and aligned; valid per the contract.
    let r = unsafe { input(r, "ref")?.as_ref() };
    // SAFETY: the strings' validity is the caller's contract.
    unsafe {
        Ok(Target {
            ns: text(r.ns, "ref->ns")?.to_owned(),
            id: text(r.id, "ref->id")?.to_owned(),
            bundle: PathBuf::from(text(r.bundle, "ref->bundle")?),
        })
    }
}

fn ctx(timeout: Option<Duration>) -> Context {
    Context {
        timeout_nano: timeout.map_or(0, |t| t.as_nanos() as i64),
        ..Default::default()
    }
}

/// A connection to the shim serving the container.
struct Shim {
    client: TaskClient,
    address: String,
}

impl Target {
    fn connect(&self) -> Result<Shim, Failed> {
        let file = self.bundle.join("address");
        let address = std::fs::read_to_string(&file).map_err(|e| {
            fail!(
                MICRUN_ERR_NOT_FOUND,
                "no container {} in {}: {}: {e}",
                self.id,
                self.bundle.display(),
                file.display()
            )
        })?;
        let address = address.trim().to_string();
        connect(&address)
            .map_err(|e| {
                fail!(
                    MICRUN_ERR_NOT_FOUND,
                    "container {}: no shim answers at {address}: {e}",
                    self.id
                )
            })
            .map(|client| Shim { client, address })
    }
}

fn connect(address: &str) -> Result<TaskClient, ttrpc::Error> {
    Client::connect(address).map(TaskClient::new)
}

/// A failed ttrpc call as a status and message.
fn rpc_failed(what: &str, id: &str, e: ttrpc::Error) -> Failed {
    match e {
        ttrpc::Error::RpcStatus(s) => {
            let status = if s.code() == Code::NOT_FOUND {
                MICRUN_ERR_NOT_FOUND
            } else if s.code() == Code::INVALID_ARGUMENT {
                MICRUN_ERR_INVALID_ARG
            } else {
                MICRUN_ERR_RUNTIME
            };
            fail!(status, "{what} {id}: {}", s.message)
        }
        e => fail!(MICRUN_ERR_RUNTIME, "{what} {id}: {e}"),
    }
}

/// Runs `body` as exported function `name` on the container `r`'s shim.
fn on_shim(
    name: &'static str,
    r: *const micrun_rt_ref,
    body: impl FnOnce(&Target, &Shim) -> Result<(), Failed>,
) -> micrun_status {
    entry(name, || {
        // SAFETY: the ref's validity is the caller's contract.
        let t = unsafe { target(r)? };
        let shim = t.connect()?;
        body(&t, &shim)
    })
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet).
fn process_gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        s.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

/// Asks the shim at `address` to exit (it does only when it has no task left) and
/// waits up to [`EXIT_TIMEOUT`] for it to go. Returns whether it went; a gone
/// shim's socket is removed if the shim left it.
fn shutdown(client: &TaskClient, address: &str) -> bool {
    let pid = client
        .connect(ctx(Some(CALL_TIMEOUT)), &api::ConnectRequest::default())
        .map(|c| c.shim_pid)
        .unwrap_or(0);
    let _ = client.shutdown(ctx(Some(CALL_TIMEOUT)), &api::ShutdownRequest::default());
    if pid == 0 {
        return false;
    }
    let deadline = Instant::now() + EXIT_TIMEOUT;
    while !process_gone(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let socket = Path::new(address.strip_prefix("unix://").unwrap_or(address));
    if std::fs::symlink_metadata(socket).is_ok_and(|m| {
        use std::os::unix::fs::FileTypeExt;
        m.file_type().is_socket()
    }) {
        let _ = std::fs::remove_file(socket);
    }
    true
}

/// The checked strings of a `micrun_rt_opts`.
struct CreateArgs<'a> {
    ns: &'a str,
    id: &'a str,
    bundle: &'a Path,
    stdin: Option<&'a str>,
    stdout: Option<&'a str>,
    stderr: Option<&'a str>,
    shim: Option<&'a str>,
    config: Option<&'a str>,
    terminal: bool,
}

/// # Safety
/// `opts` must be NULL or point to a valid `micrun_rt_opts` whose non-NULL
/// strings are NUL-terminated and outlive `'a`.
unsafe fn create_args<'a>(opts: *const micrun_rt_opts) -> Result<CreateArgs<'a>, Failed> {
    // SAFETY: as documented.
    let o = unsafe { input(opts, "opts")?.as_ref() };
    // SAFETY: as documented.
    let a = unsafe {
        CreateArgs {
            ns: text(o.ns, "opts->ns")?,
            id: text(o.id, "opts->id")?,
            bundle: Path::new(text(o.bundle, "opts->bundle")?),
            stdin: optional(o.stdin_path, "opts->stdin_path")?,
            stdout: optional(o.stdout_path, "opts->stdout_path")?,
            stderr: optional(o.stderr_path, "opts->stderr_path")?,
            shim: optional(o.shim_binary, "opts->shim_binary")?,
            config: optional(o.config_path, "opts->config_path")?,
            terminal: o.terminal,
        }
    };
    if !a.bundle.is_dir() {
        return Err(fail!(
            MICRUN_ERR_INVALID_ARG,
            "bundle {} is not a directory",
            a.bundle.display()
        ));
    }
    Ok(a)
}

impl CreateArgs<'_> {
    /// Sends Create to the shim `client`; the container's pid.
    fn send(&self, client: &TaskClient) -> Result<u32, ttrpc::Error> {
        let req = api::CreateTaskRequest {
            id: self.id.to_string(),
            bundle: self.bundle.display().to_string(),
            terminal: self.terminal,
            stdin: self.stdin.unwrap_or_default().to_string(),
            stdout: self.stdout.unwrap_or_default().to_string(),
            stderr: self.stderr.unwrap_or_default().to_string(),
            options: self.config.map(runtime_options).into(),
            ..Default::default()
        };
        client
            .create(ctx(Some(CALL_TIMEOUT)), &req)
            .map(|resp| resp.pid)
    }
}

/// Whether a shim at `address` already serves a task named `id`.
fn serves(address: &str, id: &str) -> bool {
    connect(address).is_ok_and(|c| {
        c.state(
            ctx(Some(CALL_TIMEOUT)),
            &api::StateRequest {
                id: id.to_string(),
                ..Default::default()
            },
        )
        .is_ok()
    })
}

/// Starts the shim for `opts->id` in `opts->bundle` and creates the container
/// there (stopped, not started). `*pid` receives the partition's host pid.
///
/// The shim runs in a session of its own with stdin `/dev/null` (as iSulad starts
/// it): a hangup of the caller's terminal or a signal to the caller's process
/// group does not reach it. On an error nothing this call did not make is
/// touched: a container of that id that already runs (its `<bundle>/address`
/// answers and knows it) is `MICRUN_ERR_INVALID_ARG` with nothing started; a
/// shim started for this call is shut down again and the `<bundle>/address` it
/// wrote removed.
///
/// # Safety
/// `opts` must point to a valid `micrun_rt_opts` whose non-NULL strings are
/// NUL-terminated; `pid` must be valid for a write.
#[no_mangle]
pub unsafe extern "C" fn micrun_rt_create(
    opts: *const micrun_rt_opts,
    pid: *mut u32,
) -> micrun_status {
    entry("micrun_rt_create", || {
        let out = Out::new(pid, "pid")?;
        // SAFETY: as documented.
        let a = unsafe { create_args(opts)? };
        let address_file = a.bundle.join("address");
        // A live shim named by <bundle>/address (a stale file names none).
        let before = std::fs::read_to_string(&address_file)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|addr| connect(addr).is_ok());
        if let Some(existing) = before.as_deref().filter(|addr| serves(addr, a.id)) {
            return Err(fail!(
                MICRUN_ERR_INVALID_ARG,
                "container {} already exists: the shim at {existing} (named by {}) serves it; \
                 delete it first or use another id",
                a.id,
                address_file.display()
            ));
        }
        let shim = a.shim.unwrap_or("containerd-shim-mica-v2");
        let mut cmd = Command::new(shim);
        cmd.args(["--id", a.id, "--namespace", a.ns, "start"])
            .current_dir(a.bundle)
            .env_remove("TTRPC_ADDRESS")
            .stdin(Stdio::null());
        if let Some(config) = a.config {
            cmd.env("MICRUN_CONFIG", config);
        }
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: setsid is async-signal-safe; nothing else runs in the child
            // between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    nix::unistd::setsid()
                        .map(drop)
                        .map_err(std::io::Error::from)
                });
            }
        }
        let started = cmd
            .output()
            .map_err(|e| fail!(MICRUN_ERR_RUNTIME, "cannot run the shim {shim}: {e}"))?;
        if !started.status.success() {
            return Err(fail!(
                MICRUN_ERR_RUNTIME,
                "the shim {shim} failed to start ({}): {}",
                started.status,
                String::from_utf8_lossy(&started.stderr).trim()
            ));
        }
        let address = String::from_utf8_lossy(&started.stdout).trim().to_string();
        // Whether this call made the shim and the address file (else a live
        // shim served there already, and stays as it was).
        let ours = before.as_deref() != Some(address.as_str());
        let client = connect(&address).map_err(|e| {
            fail!(
                MICRUN_ERR_RUNTIME,
                "the shim started but does not answer at {address:?}: {e}"
            )
        })?;
        match a.send(&client) {
            Ok(p) => {
                // SAFETY: checked by Out::new; valid per the contract.
                unsafe { out.set(p) };
                Ok(())
            }
            Err(e) => {
                let failed = rpc_failed("create", a.id, e);
                if ours {
                    shutdown(&client, &address);
                    let _ = std::fs::remove_file(&address_file);
                }
                Err(failed)
            }
        }
    })
}

/// Creates the container `opts->id` on the shim the caller started and serves
/// at `task_addr` (iSulad starts the shim itself and passes its address; the
/// caller also writes `<bundle>/address`, which every later call reads).
/// `opts->shim_binary` is not used. On an error nothing is touched: the shim
/// keeps running for the caller to end.
///
/// # Safety
/// As [`micrun_rt_create`]; `task_addr` must point to a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn micrun_rt_create_at(
    opts: *const micrun_rt_opts,
    task_addr: *const c_char,
    pid: *mut u32,
) -> micrun_status {
    entry("micrun_rt_create_at", || {
        let out = Out::new(pid, "pid")?;
        // SAFETY: as documented.
        let (a, address) = unsafe { (create_args(opts)?, text(task_addr, "task_addr")?) };
        let client = connect(address).map_err(|e| {
            fail!(
                MICRUN_ERR_NOT_FOUND,
                "create {}: no shim answers at {address}: {e}",
                a.id
            )
        })?;
        let p = a.send(&client).map_err(|e| rpc_failed("create", a.id, e))?;
        // SAFETY: checked by Out::new; valid per the contract.
        unsafe { out.set(p) };
        Ok(())
    })
}

/// Starts the created container; `*pid` receives its host pid.
///
/// # Safety
/// `r` must point to a valid `micrun_rt_ref`; `pid` must be valid for a write.
#[no_mangle]
pub unsafe extern "C" fn micrun_rt_start(r: *const micrun_rt_ref, pid: *mut u32) -> micrun_status {
    on_shim("micrun_rt_start", r, |t, s| {
        let out = Out::new(pid, "pid")?;
        let started = start(t, s)?;
        // SAFETY: as documented.
        unsafe { out.set(started) };
        Ok(())
    })
}

/// [`micrun_rt_start`] filling in what iSulad's `pid_ppid_info_t` holds: the
/// task's pid (the partition's host process, else the shim), its start time,
/// its parent's pid and start time, all from `/proc/<pid>/stat`.
///
/// # Safety
/// `r` must point to a valid `micrun_rt_ref`; `info` must be valid for a write.
#[no_mangle]
pub unsafe extern "C" fn micrun_rt_start_info(
    r: *const micrun_rt_ref,
    info: *mut micrun_rt_pid_info,
) -> micrun_status {
    on_shim("micrun_rt_start_info", r, |t, s| {
        let out = Out::new(info, "info")?;
        let started = start(t, s)?;
        let facts = pid_info(started).map_err(|e| {
            fail!(
                MICRUN_ERR_RUNTIME,
                "start {}: started, but its pid {started} cannot be read: {e}",
                t.id
            )
        })?;
        // SAFETY: as documented.
        unsafe { out.set(facts) };
        Ok(())
    })
}

fn start(t: &Target, s: &Shim) -> Result<u32, Failed> {
    let req = api::StartRequest {
        id: t.id.clone(),
        ..Default::default()
    };
    s.client
        .start(ctx(Some(CALL_TIMEOUT)), &req)
        .map(|resp| resp.pid)
        .map_err(|e| rpc_failed("start", &t.id, e))
}

/// Sends `signal` to the container (SIGTERM: an orderly stop; SIGKILL: at once).
/// Signal 0 is a liveness check: `MICRUN_OK` while the container exists and has
/// not ended (created, running, paused), `MICRUN_ERR_NOT_FOUND` once it has
/// ended ("process already finished", as containerd's runc shim answers) or when
/// no shim serves it.
///
/// # Safety
/// `r` must point to a valid `micrun_rt_ref`.
#[no_mangle]
pub unsafe extern "C" fn micrun_rt_kill(r: *const micrun_rt_ref, signal: u32) -> micrun_status {
    on_shim("micrun_rt_kill", r, |t, s| {
        let req = api::KillRequest {
            id: t.id.clone(),
            signal,
            ..Default::default()
        };
        s.client
            .kill(ctx(Some(CALL_TIMEOUT)), &req)
            .map(drop)
            .map_err(|e| rpc_failed("kill", &t.id, e))
    })
}

/// Blocks until the container has exited; `*exit_status` receives its status.
///
/// # Safety
/// `r` must point to a valid `micrun_rt_ref`; `exit_status` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn micrun_rt_wait(
    r: *const micrun_rt_ref,
    exit_status: *mut u32,
) -> micrun_status {
    on_shim("micrun_rt_wait", r, |t, s| {
        let out = Out::new(exit_status, "exit_status")?;
        let req = api::WaitRequest {
            id: t.id.clone(),
            ..Default::default()
        };
        let resp = s
            .client
            .wait(ctx(None), &req)
            .map_err(|e| rpc_failed("wait", &t.id, e))?;
        // SAFETY: as documented.
        unsafe { out.set(resp.exit_status) };
        Ok(())
    })
}

/// Deletes the stopped (or never started) container, then shuts its shim down
/// if the shim has no task left, and removes `<bundle>/address` then.
/// `*exit_status` receives the exit status.
///
/// # Safety
/// `r` must point to a valid `micrun_rt_ref`; `exit_status` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn micrun_rt_delete(
    r: *const micrun_rt_ref,
    exit_status: *mut u32,
) -> micrun_status {
    on_shim("micrun_rt_delete", r, |t, s| {
        let out = Out::new(exit_status, "exit_status")?;
        let req = api::DeleteRequest {
            id: t.id.clone(),
            ..Default::default()
        };
        let resp = s
            .client
            .delete(ctx(Some(CALL_TIMEOUT)), &req)
            .map_err(|e| rpc_failed("delete", &t.id, e))?;
        // SAFETY: as documented.
        unsafe { out.set(resp.exit_status) };
        if shutdown(&s.client, &s.address) {
            let _ = std::fs::remove_file(t.bundle.join("address"));
        }
        Ok(())
    })
}

/// The container's status, pid and exit status.
///
/// # Safety
/// `r` must point to a valid `micrun_rt_ref`; `state` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn micrun_rt_state(
    r: *const micrun_rt_ref,
    state: *mut micrun_rt_state_info,
) -> micrun_status {
    on_shim("micrun_rt_state", r, |t, s| {
        let out = Out::new(state, "state")?;
        let req = api::StateRequest {
            id: t.id.clone(),
            ..Default::default()
        };
        let resp = s
            .client
            .state(ctx(Some(CALL_TIMEOUT)), &req)
            .map_err(|e| rpc_failed("state", &t.id, e))?;
        let status = match resp.status.enum_value_or_default() {
            api::Status::CREATED => micrun_rt_status::MICRUN_RT_CREATED,
            api::Status::RUNNING => micrun_rt_status::MICRUN_RT_RUNNING,
            api::Status::STOPPED => micrun_rt_status::MICRUN_RT_STOPPED,
            api::Status::PAUSED | api::Status::PAUSING => micrun_rt_status::MICRUN_RT_PAUSED,
            _ => micrun_rt_status::MICRUN_RT_UNKNOWN,
        };
        // SAFETY: as documented.
        unsafe {
            out.set(micrun_rt_state_info {
                status,
                pid: resp.pid,
                exit_status: resp.exit_status,
                pedestal: pedestal_of(t),
            })
        };
        Ok(())
    })
}

/// Pauses the running container.
///
/// # Safety
/// `r` must point to a valid `micrun_rt_ref`.
#[no_mangle]
pub unsafe extern "C" fn micrun_rt_pause(r: *const micrun_rt_ref) -> micrun_status {
    on_shim("micrun_rt_pause", r, |t, s| {
        let req = api::PauseRequest {
            id: t.id.clone(),
            ..Default::default()
        };
        s.client
            .pause(ctx(Some(CALL_TIMEOUT)), &req)
            .map(drop)
            .map_err(|e| rpc_failed("pause", &t.id, e))
    })
}

/// Resumes the paused container.
///
/// # Safety
/// `r` must point to a valid `micrun_rt_ref`.
#[no_mangle]
pub unsafe extern "C" fn micrun_rt_resume(r: *const micrun_rt_ref) -> micrun_status {
    on_shim("micrun_rt_resume", r, |t, s| {
        let req = api::ResumeRequest {
            id: t.id.clone(),
            ..Default::default()
        };
        s.client
            .resume(ctx(Some(CALL_TIMEOUT)), &req)
            .map(drop)
            .map_err(|e| rpc_failed("resume", &t.id, e))
    })
}

/// Changes the container's resources: `oci_resources_json` is an OCI
/// `LinuxResources` object, e.g. `{"memory":{"limit":134217728}}`.
///
/// # Safety
/// `r` must point to a valid `micrun_rt_ref`; `oci_resources_json` to a
/// NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn micrun_rt_update(
    r: *const micrun_rt_ref,
    oci_resources_json: *const c_char,
) -> micrun_status {
    on_shim("micrun_rt_update", r, |t, s| {
        // SAFETY: as documented.
        let json = unsafe { text(oci_resources_json, "oci_resources_json")? };
        let req = api::UpdateTaskRequest {
            id: t.id.clone(),
            resources: Some(Any {
                type_url: "opencontainers/runtime-spec/1/LinuxResources".into(),
                value: json.as_bytes().to_vec(),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        };
        s.client
            .update(ctx(Some(CALL_TIMEOUT)), &req)
            .map(drop)
            .map_err(|e| rpc_failed("update", &t.id, e))
    })
}

/// The container's resource use: every field of iSulad's stats a pedestal knows
/// (see [`micrun_rt_stats_info`]).
///
/// # Safety
/// `r` must point to a valid `micrun_rt_ref`; `stats` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn micrun_rt_stats(
    r: *const micrun_rt_ref,
    stats: *mut micrun_rt_stats_info,
) -> micrun_status {
    on_shim("micrun_rt_stats", r, |t, s| {
        let out = Out::new(stats, "stats")?;
        let req = api::StatsRequest {
            id: t.id.clone(),
            ..Default::default()
        };
        let resp = s
            .client
            .stats(ctx(Some(CALL_TIMEOUT)), &req)
            .map_err(|e| rpc_failed("stats", &t.id, e))?;
        let m = Metrics::parse_from_bytes(&resp.stats.value).map_err(|e| {
            fail!(
                MICRUN_ERR_RUNTIME,
                "stats {}: the shim's metrics do not parse: {e}",
                t.id
            )
        })?;
        let blkio = |op: &str| {
            m.blkio
                .io_service_bytes_recursive
                .iter()
                .filter(|e| e.op.eq_ignore_ascii_case(op))
                .map(|e| e.value)
                .sum()
        };
        // SAFETY: as documented.
        unsafe {
            out.set(micrun_rt_stats_info {
                cpu_ns: m.cpu.usage.total,
                memory_usage: m.memory.usage.usage,
                memory_limit: m.memory.usage.limit,
                pids_current: m.pids.current,
                cpu_system_use: system_cpu_ns(),
                blkio_read: blkio("Read"),
                blkio_write: blkio("Write"),
                rss_bytes: m.memory.rss,
                page_faults: m.memory.pg_fault,
                major_page_faults: m.memory.pg_maj_fault,
                kmem_used: m.memory.kernel.usage,
                kmem_limit: m.memory.kernel.limit,
                cache: m.memory.cache,
                cache_total: m.memory.total_cache,
                inactive_file_total: m.memory.total_inactive_file,
                swap_used: m.memory.swap.usage,
                swap_limit: m.memory.swap.limit,
            })
        };
        Ok(())
    })
}

/// The container's host process ids into `buf` (capacity `cap`); `*n` receives
/// how many there are. A short `buf` (or NULL with `cap` 0, a size query) is
/// `MICRUN_ERR_BUFFER_TOO_SHORT` with the count in `*n`.
///
/// # Safety
/// `r` must point to a valid `micrun_rt_ref`; `buf` valid for `cap` writes;
/// `n` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn micrun_rt_pids(
    r: *const micrun_rt_ref,
    buf: *mut u32,
    cap: usize,
    n: *mut usize,
) -> micrun_status {
    on_shim("micrun_rt_pids", r, |t, s| {
        let out = Out::new(n, "n")?;
        if buf.is_null() && cap != 0 {
            return Err(fail!(MICRUN_ERR_NULL, "buf is NULL with capacity {cap}"));
        }
        let req = api::PidsRequest {
            id: t.id.clone(),
            ..Default::default()
        };
        let resp = s
            .client
            .pids(ctx(Some(CALL_TIMEOUT)), &req)
            .map_err(|e| rpc_failed("pids", &t.id, e))?;
        let pids: Vec<u32> = resp.processes.iter().map(|p| p.pid).collect();
        // SAFETY: as documented.
        unsafe { out.set(pids.len()) };
        if pids.len() > cap {
            return Err(fail!(
                crate::status::MICRUN_ERR_BUFFER_TOO_SHORT,
                "{} pids, buf holds {cap}",
                pids.len()
            ));
        }
        for (i, p) in pids.iter().enumerate() {
            // SAFETY: i < cap; buf valid for cap writes per the contract.
            unsafe { buf.add(i).write(*p) };
        }
        Ok(())
    })
}

/// Tells the container its console is now `width` columns by `height` rows.
///
/// # Safety
/// `r` must point to a valid `micrun_rt_ref`.
#[no_mangle]
pub unsafe extern "C" fn micrun_rt_resize(
    r: *const micrun_rt_ref,
    width: u32,
    height: u32,
) -> micrun_status {
    on_shim("micrun_rt_resize", r, |t, s| {
        let req = api::ResizePtyRequest {
            id: t.id.clone(),
            width,
            height,
            ..Default::default()
        };
        s.client
            .resize_pty(ctx(Some(CALL_TIMEOUT)), &req)
            .map(drop)
            .map_err(|e| rpc_failed("resize", &t.id, e))
    })
}

/// What [`micrun_rt_exec`] runs: iSulad's `rt_exec_params_t` for one exec.
/// Strings are NUL-terminated UTF-8, borrowed for the call only.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct micrun_rt_exec_opts {
    /// The exec's id, unique among the container's running execs. Required.
    pub exec_id: *const c_char,
    /// The OCI process to run as JSON (`{"args":["stats"]}`; iSulad's
    /// `defs_process` serialised). `args` is the firmware command line; the agent
    /// runs it. Required.
    pub process_json: *const c_char,
    /// FIFO the exec's input is read from; NULL for none.
    pub stdin_path: *const c_char,
    /// FIFO its output is written to; NULL to discard it.
    pub stdout_path: *const c_char,
    /// FIFO for its error stream; NULL to discard it.
    pub stderr_path: *const c_char,
    /// Whether the exec has a terminal (stdout carries both streams).
    pub terminal: bool,
}

/// The checked strings of a `micrun_rt_exec_opts`.
struct ExecArgs<'a> {
    id: &'a str,
    process: &'a str,
    stdin: Option<&'a str>,
    stdout: Option<&'a str>,
    stderr: Option<&'a str>,
    terminal: bool,
}

/// # Safety
/// `opts` must be NULL or point to a valid `micrun_rt_exec_opts` whose non-NULL
/// strings are NUL-terminated and outlive `'a`.
unsafe fn exec_args<'a>(opts: *const micrun_rt_exec_opts) -> Result<ExecArgs<'a>, Failed> {
    // SAFETY: as documented.
    let o = unsafe { input(opts, "opts")?.as_ref() };
    // SAFETY: as documented.
    unsafe {
        Ok(ExecArgs {
            id: text(o.exec_id, "opts->exec_id")?,
            process: text(o.process_json, "opts->process_json")?,
            stdin: optional(o.stdin_path, "opts->stdin_path")?,
            stdout: optional(o.stdout_path, "opts->stdout_path")?,
            stderr: optional(o.stderr_path, "opts->stderr_path")?,
            terminal: o.terminal,
        })
    }
}

/// The OCI process spec's type URL in an `ExecProcessRequest`, as containerd
/// sends it.
const PROCESS_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";

impl Shim {
    /// Deletes exec `exec_id` of container `id`, ignoring errors (cleanup).
    fn forget_exec(&self, id: &str, exec_id: &str) {
        let req = api::DeleteRequest {
            id: id.to_string(),
            exec_id: exec_id.to_string(),
            ..Default::default()
        };
        let _ = self.client.delete(ctx(Some(CALL_TIMEOUT)), &req);
    }

    /// Waits for exec `exec_id` of container `id`; `timeout` `None`: no limit.
    fn wait_exec(
        &self,
        id: &str,
        exec_id: &str,
        timeout: Option<Duration>,
    ) -> Result<u32, ttrpc::Error> {
        let req = api::WaitRequest {
            id: id.to_string(),
            exec_id: exec_id.to_string(),
            ..Default::default()
        };
        self.client.wait(ctx(timeout), &req).map(|r| r.exit_status)
    }
}

/// Runs a command in the running container and waits for it (iSulad's
/// `rt_exec`): Exec, Start, Wait, then Delete of the exec, so nothing of it is
/// left whatever happens. `*exit_status` receives its exit status (127: the
/// firmware has no such command; 128 + signal when it was signalled).
/// `timeout_ms` 0 waits without limit; otherwise an exec still running after
/// it is killed (SIGKILL through the agent) and deleted, and the call returns
/// `MICRUN_ERR_TIMEOUT` (the container runs on). A container whose firmware
/// has no micrun agent cannot exec (`MICRUN_ERR_RUNTIME`, the shim says why).
///
/// # Safety
/// `r` must point to a valid `micrun_rt_ref`, `opts` to a valid
/// `micrun_rt_exec_opts`; `exit_status` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn micrun_rt_exec(
    r: *const micrun_rt_ref,
    opts: *const micrun_rt_exec_opts,
    timeout_ms: u64,
    exit_status: *mut u32,
) -> micrun_status {
    on_shim("micrun_rt_exec", r, |t, s| {
        // SAFETY: as documented.
        let a = unsafe { exec_args(opts)? };
        let out = Out::new(exit_status, "exit_status")?;
        let what = format!("{} (exec {})", t.id, a.id);
        let req = api::ExecProcessRequest {
            id: t.id.clone(),
            exec_id: a.id.to_string(),
            terminal: a.terminal,
            stdin: a.stdin.unwrap_or_default().to_string(),
            stdout: a.stdout.unwrap_or_default().to_string(),
            stderr: a.stderr.unwrap_or_default().to_string(),
            spec: Some(Any {
                type_url: PROCESS_TYPE_URL.to_string(),
                value: a.process.as_bytes().to_vec(),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        };
        s.client
            .exec(ctx(Some(CALL_TIMEOUT)), &req)
            .map_err(|e| rpc_failed("exec", &what, e))?;
        let start = api::StartRequest {
            id: t.id.clone(),
            exec_id: a.id.to_string(),
            ..Default::default()
        };
        if let Err(e) = s.client.start(ctx(Some(CALL_TIMEOUT)), &start) {
            s.forget_exec(&t.id, a.id);
            return Err(rpc_failed("exec start", &what, e));
        }
        let limit = (timeout_ms > 0).then(|| Duration::from_millis(timeout_ms));
        let status = match s.wait_exec(&t.id, a.id, limit) {
            Ok(status) => status,
            Err(_) if limit.is_some() && timed_out(&s.client, &t.id, a.id) => {
                kill_exec(s, &t.id, a.id);
                s.forget_exec(&t.id, a.id);
                return Err(fail!(
                    MICRUN_ERR_TIMEOUT,
                    "exec {what}: still running after {timeout_ms} ms; killed"
                ));
            }
            Err(e) => {
                s.forget_exec(&t.id, a.id);
                return Err(rpc_failed("exec wait", &what, e));
            }
        };
        s.forget_exec(&t.id, a.id);
        // SAFETY: as documented.
        unsafe { out.set(status) };
        Ok(())
    })
}

/// Whether exec `exec_id` still runs (its Wait timed out rather than failed).
fn timed_out(client: &TaskClient, id: &str, exec_id: &str) -> bool {
    let req = api::StateRequest {
        id: id.to_string(),
        exec_id: exec_id.to_string(),
        ..Default::default()
    };
    client
        .state(ctx(Some(CALL_TIMEOUT)), &req)
        .is_ok_and(|st| st.status.enum_value_or_default() == api::Status::RUNNING)
}

/// SIGKILL to exec `exec_id`, then its end awaited (bounded).
fn kill_exec(s: &Shim, id: &str, exec_id: &str) {
    let req = api::KillRequest {
        id: id.to_string(),
        exec_id: exec_id.to_string(),
        signal: 9,
        ..Default::default()
    };
    if s.client.kill(ctx(Some(CALL_TIMEOUT)), &req).is_ok() {
        let _ = s.wait_exec(id, exec_id, Some(CALL_TIMEOUT));
    }
}

/// Sends `signal` to exec `exec_id` of the container (e.g. from another thread
/// while [`micrun_rt_exec`] waits for it).
///
/// # Safety
/// `r` must point to a valid `micrun_rt_ref`; `exec_id` to a NUL-terminated
/// string.
#[no_mangle]
pub unsafe extern "C" fn micrun_rt_exec_kill(
    r: *const micrun_rt_ref,
    exec_id: *const c_char,
    signal: u32,
) -> micrun_status {
    on_shim("micrun_rt_exec_kill", r, |t, s| {
        // SAFETY: as documented.
        let exec_id = unsafe { text(exec_id, "exec_id")? };
        let req = api::KillRequest {
            id: t.id.clone(),
            exec_id: exec_id.to_string(),
            signal,
            ..Default::default()
        };
        s.client
            .kill(ctx(Some(CALL_TIMEOUT)), &req)
            .map(drop)
            .map_err(|e| rpc_failed("exec kill", &format!("{} (exec {exec_id})", t.id), e))
    })
}

/// Tells exec `exec_id` (one with a terminal) its console is now `width`
/// columns by `height` rows (iSulad's `rt_exec_resize`).
///
/// # Safety
/// `r` must point to a valid `micrun_rt_ref`; `exec_id` to a NUL-terminated
/// string.
#[no_mangle]
pub unsafe extern "C" fn micrun_rt_exec_resize(
    r: *const micrun_rt_ref,
    exec_id: *const c_char,
    width: u32,
    height: u32,
) -> micrun_status {
    on_shim("micrun_rt_exec_resize", r, |t, s| {
        // SAFETY: as documented.
        let exec_id = unsafe { text(exec_id, "exec_id")? };
        let req = api::ResizePtyRequest {
            id: t.id.clone(),
            exec_id: exec_id.to_string(),
            width,
            height,
            ..Default::default()
        };
        s.client
            .resize_pty(ctx(Some(CALL_TIMEOUT)), &req)
            .map(drop)
            .map_err(|e| rpc_failed("exec resize", &format!("{} (exec {exec_id})", t.id), e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::last_error;
    use core::ptr::{null, null_mut};

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("micrun-ffi-rt-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn null_and_bad_arguments_are_errors() {
        let mut pid = 0u32;
        // SAFETY: NULL and valid pointers only.
        unsafe {
            assert_eq!(micrun_rt_create(null(), &mut pid), MICRUN_ERR_NULL);
            assert_eq!(last_error(), "micrun_rt_create: opts is NULL");
            let opts = micrun_rt_opts {
                ns: c"isula".as_ptr(),
                id: c"x".as_ptr(),
                bundle: c"/nonexistent-micrun-bundle".as_ptr(),
                stdin_path: null(),
                stdout_path: null(),
                stderr_path: null(),
                terminal: false,
                shim_binary: null(),
                config_path: null(),
            };
            assert_eq!(micrun_rt_create(&opts, null_mut()), MICRUN_ERR_NULL);
            assert_eq!(last_error(), "micrun_rt_create: pid is NULL");
            assert_eq!(micrun_rt_create(&opts, &mut pid), MICRUN_ERR_INVALID_ARG);
            assert!(
                last_error().contains("is not a directory"),
                "{}",
                last_error()
            );
            let bad = micrun_rt_opts {
                id: c"\xff".as_ptr(),
                ..opts
            };
            assert_eq!(micrun_rt_create(&bad, &mut pid), MICRUN_ERR_INVALID_ARG);
            assert_eq!(last_error(), "micrun_rt_create: opts->id is not UTF-8");
            let empty = micrun_rt_opts {
                ns: c"".as_ptr(),
                ..opts
            };
            assert_eq!(micrun_rt_create(&empty, &mut pid), MICRUN_ERR_INVALID_ARG);
            assert_eq!(last_error(), "micrun_rt_create: opts->ns is empty");

            assert_eq!(micrun_rt_kill(null(), 9), MICRUN_ERR_NULL);
            assert_eq!(last_error(), "micrun_rt_kill: ref is NULL");
            let r = micrun_rt_ref {
                ns: c"isula".as_ptr(),
                id: null(),
                bundle: c"/tmp".as_ptr(),
            };
            assert_eq!(micrun_rt_pause(&r), MICRUN_ERR_NULL);
            assert_eq!(last_error(), "micrun_rt_pause: ref->id is NULL");
        }
        assert_eq!(pid, 0);
    }

    #[test]
    fn a_missing_shim_binary_is_a_runtime_error() {
        let d = dir("noshim");
        let b = std::ffi::CString::new(d.display().to_string()).unwrap();
        let opts = micrun_rt_opts {
            ns: c"isula".as_ptr(),
            id: c"x".as_ptr(),
            bundle: b.as_ptr(),
            stdin_path: null(),
            stdout_path: null(),
            stderr_path: null(),
            terminal: false,
            shim_binary: c"/nonexistent/containerd-shim-mica-v2".as_ptr(),
            config_path: null(),
        };
        let mut pid = 0;
        // SAFETY: valid pointers.
        let st = unsafe { micrun_rt_create(&opts, &mut pid) };
        assert_eq!(st, MICRUN_ERR_RUNTIME);
        assert!(
            last_error().contains("cannot run the shim /nonexistent/containerd-shim-mica-v2"),
            "{}",
            last_error()
        );
        assert!(!d.join("address").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn unknown_containers_are_not_found() {
        let d = dir("unknown");
        let b = std::ffi::CString::new(d.display().to_string()).unwrap();
        let r = micrun_rt_ref {
            ns: c"isula".as_ptr(),
            id: c"nosuch".as_ptr(),
            bundle: b.as_ptr(),
        };
        let mut st = micrun_rt_state_info {
            status: micrun_rt_status::MICRUN_RT_RUNNING,
            pid: 1,
            exit_status: 1,
            pedestal: [0; MICRUN_RT_PEDESTAL_LEN],
        };
        // SAFETY: valid pointers.
        unsafe {
            assert_eq!(micrun_rt_state(&r, &mut st), MICRUN_ERR_NOT_FOUND);
            let msg = last_error();
            assert!(
                msg.starts_with("micrun_rt_state: no container nosuch in "),
                "{msg}"
            );
            assert!(msg.contains("address"), "{msg}");
            // An address nobody answers at: also NOT_FOUND.
            std::fs::write(d.join("address"), "unix:///nonexistent/micrun.sock").unwrap();
            assert_eq!(micrun_rt_resume(&r), MICRUN_ERR_NOT_FOUND);
            assert!(last_error().contains("no shim answers"), "{}", last_error());
            let mut n = 5usize;
            assert_eq!(
                micrun_rt_pids(&r, null_mut(), 0, &mut n),
                MICRUN_ERR_NOT_FOUND
            );
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}
