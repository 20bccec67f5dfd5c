//! The runtime API: micrun containers driven the way iSulad's runtime layer drives
//! a shim v2 runtime. Header `include/micrun.h`; rules in `docs/c-api.md`.
//!
//! Stateless between calls: [`micrun_rt_create`] starts the shim binary
//! (`containerd-shim-mica-v2 --id ID --namespace NS start` in the bundle, as
//! iSulad starts it; the shim daemonizes and writes `<bundle>/address`) and sends
//! Create over ttrpc. Every later call reads `<bundle>/address`, connects, and
//! makes one ttrpc call with containerd-shim-protos' `TaskClient`. So any thread
//! or process may make any call.

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
    MICRUN_ERR_NULL, MICRUN_ERR_RUNTIME,
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

/// What [`micrun_rt_stats`] fills in (from the shim's cgroup Metrics).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct micrun_rt_stats_info {
    /// CPU time used, in nanoseconds.
    pub cpu_ns: u64,
    /// Memory in use, in bytes.
    pub memory_usage: u64,
    /// The memory limit, in bytes.
    pub memory_limit: u64,
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

/// Starts the shim for `opts->id` in `opts->bundle` and creates the container
/// there (stopped, not started). `*pid` receives the partition's host pid. On
/// an error the shim started for it is gone again and `<bundle>/address` removed.
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
        let o = unsafe { input(opts, "opts")?.as_ref() };
        // SAFETY: as documented.
        let (ns, id, bundle, stdin, stdout, stderr, shim, config) = unsafe {
            (
                text(o.ns, "opts->ns")?,
                text(o.id, "opts->id")?,
                text(o.bundle, "opts->bundle")?,
                optional(o.stdin_path, "opts->stdin_path")?,
                optional(o.stdout_path, "opts->stdout_path")?,
                optional(o.stderr_path, "opts->stderr_path")?,
                optional(o.shim_binary, "opts->shim_binary")?,
                optional(o.config_path, "opts->config_path")?,
            )
        };
        let bundle = Path::new(bundle);
        if !bundle.is_dir() {
            return Err(fail!(
                MICRUN_ERR_INVALID_ARG,
                "bundle {} is not a directory",
                bundle.display()
            ));
        }
        let shim = shim.unwrap_or("containerd-shim-mica-v2");
        let mut cmd = Command::new(shim);
        cmd.args(["--id", id, "--namespace", ns, "start"])
            .current_dir(bundle)
            .env_remove("TTRPC_ADDRESS")
            .stdin(Stdio::null());
        if let Some(config) = config {
            cmd.env("MICRUN_CONFIG", config);
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
        let client = connect(&address).map_err(|e| {
            fail!(
                MICRUN_ERR_RUNTIME,
                "the shim started but does not answer at {address:?}: {e}"
            )
        })?;
        let req = api::CreateTaskRequest {
            id: id.to_string(),
            bundle: bundle.display().to_string(),
            terminal: o.terminal,
            stdin: stdin.unwrap_or_default().to_string(),
            stdout: stdout.unwrap_or_default().to_string(),
            stderr: stderr.unwrap_or_default().to_string(),
            options: config.map(runtime_options).into(),
            ..Default::default()
        };
        match client.create(ctx(Some(CALL_TIMEOUT)), &req) {
            Ok(resp) => {
                // SAFETY: checked by Out::new; valid per the contract.
                unsafe { out.set(resp.pid) };
                Ok(())
            }
            Err(e) => {
                let failed = rpc_failed("create", id, e);
                shutdown(&client, &address);
                let _ = std::fs::remove_file(bundle.join("address"));
                Err(failed)
            }
        }
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
        let req = api::StartRequest {
            id: t.id.clone(),
            ..Default::default()
        };
        let resp = s
            .client
            .start(ctx(Some(CALL_TIMEOUT)), &req)
            .map_err(|e| rpc_failed("start", &t.id, e))?;
        // SAFETY: as documented.
        unsafe { out.set(resp.pid) };
        Ok(())
    })
}

/// Sends `signal` to the container (SIGTERM: an orderly stop; SIGKILL: at once).
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

/// The container's CPU time and memory use and limit.
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
        // SAFETY: as documented.
        unsafe {
            out.set(micrun_rt_stats_info {
                cpu_ns: m.cpu.usage.total,
                memory_usage: m.memory.usage.usage,
                memory_limit: m.memory.usage.limit,
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
