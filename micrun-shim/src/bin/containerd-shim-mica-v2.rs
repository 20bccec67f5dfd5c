//! `containerd-shim-mica-v2`: the containerd runtime v2 shim of micrun
//! (runtime `io.containerd.mica.v2`).
//!
//! Actions, as containerd (or iSulad) runs the binary:
//! - `start`: spawn the shim server (one per pod: containers with the same
//!   `io.kubernetes.cri.sandbox-id` share it), write `<bundle>/address`, print the
//!   address. containerd 1.6 to 2.2 read a plain address (task API v2); containerd
//!   ≥ 2.3 sends `BootstrapParams` on stdin and gets a `BootstrapResult` (task API
//!   v3). The server answers both API versions.
//! - `delete`: containerd's cleanup after a lost shim (see `service::cleanup_lost_task`).
//! - no action: serve ttrpc on `-socket` until Shutdown. Without a containerd to
//!   publish to (iSulad starts shims with no `-address` and no `TTRPC_ADDRESS`),
//!   events are dropped with a debug log line and the shim keeps serving.
//!
//! The pieces are containerd-shim's (sync mode); the bootstrap is ours because
//! containerd-shim 0.12 serves only task API v3 and fails without a publisher.

use std::io::{IsTerminal, Read, Write};
use std::os::fd::IntoRawFd;
use std::os::unix::fs::FileTypeExt;
use std::sync::Arc;

use containerd_shim::bootstrap::{BootstrapParams, BootstrapResult};
use containerd_shim::protos::protobuf::Message;
use containerd_shim::protos::shim::shim_ttrpc::create_task;
use containerd_shim::protos::ttrpc::{Client, Server};
use containerd_shim::protos::types::introspection::RuntimeInfo;
use containerd_shim::synchronous::util::write_address;
use containerd_shim::{ExitSignal, Flags, StartOpts};
use micrun_shim::service::{cleanup_lost_task, Events, Service};

const RUNTIME_ID: &str = "io.containerd.mica.v2";
/// Annotation that groups the containers of a pod into one shim.
const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
const TTRPC_ADDRESS: &str = "TTRPC_ADDRESS";
/// How long the shim waits after Shutdown for its ttrpc connections to close.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

const USAGE: &str = "\
Usage: containerd-shim-mica-v2 [flags] [start | delete]

The containerd runtime v2 shim of micrun (runtime io.containerd.mica.v2): runs RTOS
firmware images as containers on a pedestal (qemu, sim, xen, baremetal). containerd,
iSulad or libmicrun start it; a person rarely needs to.

Actions:
  start     start (or join) the shim server of this container's pod, write
            <bundle>/address and print the address (run in the bundle directory)
  delete    clean up after a lost shim: end the container's partition, remove its
            state, print the exit status (137) as a DeleteResponse
  (none)    serve the task API on -socket until Shutdown

Flags (containerd's shim protocol; one dash or two):
  -namespace NS         containerd namespace (required for the actions)
  -id ID                container id
  -address PATH         containerd's gRPC socket (events are published there)
  -publish-binary PATH  containerd binary used to publish events
  -socket PATH          the socket to serve on (no action)
  -bundle PATH          the bundle (delete)
  -debug                debug logging
  -v, -version          print the version and exit
  -info                 print the RuntimeInfo protobuf (name, version, the OCI
                        features document with the annotations micrun reads, its
                        pedestals and protocol version) and exit; runtime options
                        (a protobuf Any) may come on stdin
  -h, -help             this text

Environment: MICRUN_CONFIG (default /etc/micrun/config.toml), TTRPC_ADDRESS.
See docs/shim.md.
";

/// The flags of containerd's shim protocol that take a value (go's flag package
/// syntax: `-flag value` or `-flag=value`, one or two dashes).
const VALUE_FLAGS: [&str; 6] = [
    "namespace",
    "id",
    "address",
    "publish-binary",
    "socket",
    "bundle",
];

/// Whether the command line asks for help: `-h`, `-help`, `--h` or `--help` among the
/// flags (before the action; a flag's value does not count).
fn wants_help(args: &[std::ffi::OsString]) -> bool {
    let mut skip_value = false;
    for arg in args {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        let Some(arg) = arg.to_str() else {
            continue;
        };
        let Some(name) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return false; // the action: flags end here
        };
        if name.is_empty() {
            return false; // `--`
        }
        if name == "h" || name == "help" {
            return true;
        }
        skip_value = VALUE_FLAGS.contains(&name);
    }
    false
}

fn main() {
    let args: Vec<_> = std::env::args_os().collect();
    if wants_help(&args[1..]) {
        print!("{USAGE}");
        return;
    }
    let flags = match containerd_shim::parse(&args[1..]) {
        Ok(f) => f,
        Err(e) => fail(&format!("bad arguments: {e}")),
    };
    if flags.version {
        println!("{RUNTIME_ID} (micrun {})", env!("CARGO_PKG_VERSION"));
        return;
    }
    if flags.info {
        if let Err(e) = info() {
            fail(&e);
        }
        return;
    }
    if flags.namespace.is_empty() {
        fail("-namespace is required");
    }
    let result = match flags.action.as_str() {
        "start" => start(&flags),
        "delete" => delete(&flags),
        _ => serve(&flags),
    };
    if let Err(e) = result {
        fail(&e);
    }
}

/// `-info`, as containerd's introspection (and its CRI plugin, for every runtime
/// handler) runs it: a `RuntimeInfo` protobuf on stdout with the runtime options it
/// was given on stdin (if any) and the OCI features document.
fn info() -> Result<(), String> {
    use containerd_shim::protos::protobuf::well_known_types::any::Any;
    use containerd_shim::protos::types::introspection::RuntimeVersion;
    let mut input = Vec::new();
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let _ = stdin.lock().take(1 << 20).read_to_end(&mut input);
    }
    let options = Any::parse_from_bytes(&input)
        .map_err(|e| format!("-info: stdin is not runtime options (a protobuf Any): {e}"))?;
    let mut info = RuntimeInfo {
        name: RUNTIME_ID.to_string(),
        version: Some(RuntimeVersion {
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        })
        .into(),
        features: Some(Any {
            type_url: micrun_shim::annotations::FEATURES_TYPE_URL.to_string(),
            value: micrun_shim::annotations::runtime_features_json().into_bytes(),
            ..Default::default()
        })
        .into(),
        annotations: micrun_shim::annotations::implementation_annotations()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        ..Default::default()
    };
    if !options.type_url.is_empty() {
        info.options = Some(options).into();
    }
    let bytes = info.write_to_bytes().map_err(|e| e.to_string())?;
    std::io::stdout()
        .write_all(&bytes)
        .map_err(|e| format!("-info: write stdout: {e}"))
}

fn fail(msg: &str) -> ! {
    eprintln!("{RUNTIME_ID}: {msg}");
    std::process::exit(1);
}

fn start(flags: &Flags) -> Result<(), String> {
    let mut input = Vec::new();
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let _ = stdin.lock().take(10 << 20).read_to_end(&mut input);
    }
    // containerd ≥ 2.3 sends BootstrapParams naming this instance; anything else
    // (nothing, or runtime options as a protobuf Any) is the flags protocol.
    let bootstrap = BootstrapParams::parse_from_bytes(&input)
        .ok()
        .filter(|p| p.instance_id == flags.id && p.namespace == flags.namespace);
    let env_ttrpc = std::env::var(TTRPC_ADDRESS).unwrap_or_default();
    let opts = match &bootstrap {
        Some(p) => StartOpts {
            id: flags.id.clone(),
            namespace: flags.namespace.clone(),
            publish_binary: p.containerd_binary.clone(),
            address: p.containerd_grpc_address.clone(),
            ttrpc_address: p.containerd_ttrpc_address.clone(),
            debug: flags.debug,
            socket_dir: p.socket_dir.clone().filter(|d| !d.is_empty()),
            ..Default::default()
        },
        None => StartOpts {
            id: flags.id.clone(),
            namespace: flags.namespace.clone(),
            publish_binary: flags.publish_binary.clone(),
            address: flags.address.clone(),
            ttrpc_address: env_ttrpc,
            debug: flags.debug,
            ..Default::default()
        },
    };
    // The bundle is the working directory.
    // Our spec types, not containerd-shim's `read_spec_from_file`: that one links
    // oci-spec's deserializer and its regex (see micrun_shim::oci).
    let grouping = micrun_shim::oci::Spec::load(std::path::Path::new("config.json"))
        .ok()
        .and_then(|spec| spec.annotations?.remove(SANDBOX_ID))
        .unwrap_or_else(|| flags.id.clone());
    let (_pid, address) = containerd_shim::spawn(opts, &grouping, Vec::new())
        .map_err(|e| format!("spawn the shim server: {e}"))?;
    write_address(&address).map_err(|e| format!("write the address file: {e}"))?;
    let reply = match bootstrap {
        Some(_) => BootstrapResult {
            version: containerd_shim::protos::TASK_API_VERSION,
            address,
            protocol: "ttrpc".to_string(),
            ..Default::default()
        }
        .write_to_bytes()
        .map_err(|e| e.to_string())?,
        None => address.into_bytes(),
    };
    let mut out = std::io::stdout();
    out.write_all(&reply)
        .and_then(|_| out.flush())
        .map_err(|e| e.to_string())
}

fn delete(flags: &Flags) -> Result<(), String> {
    // containerd shows this action's stderr; the FIFO logger is the server's.
    let _ = log::set_boxed_logger(Box::new(StderrLog))
        .map(|()| log::set_max_level(log::LevelFilter::Info));
    // The bundle is the working directory.
    let bundle = std::env::current_dir().unwrap_or_default();
    let resp = cleanup_lost_task(&flags.namespace, &flags.id, &bundle);
    remove_stale_socket();
    let bytes = resp.write_to_bytes().map_err(|e| e.to_string())?;
    std::io::stdout()
        .write_all(&bytes)
        .map_err(|e| e.to_string())
}

fn serve(flags: &Flags) -> Result<(), String> {
    if flags.socket.is_empty() {
        return Err("-socket is required to serve".into());
    }
    set_subreaper();
    if let Err(e) = micrun_shim::service::init_bundle_log(flags.debug) {
        // No `<bundle>/log` (libmicrun without one, or by hand): say it once.
        eprintln!("{RUNTIME_ID}: no log in the bundle ({e}); logging disabled");
    }
    reap_children();

    let address = std::env::var(TTRPC_ADDRESS).ok().filter(|a| !a.is_empty());
    if address.is_none() {
        log::info!("no {TTRPC_ADDRESS}: running without an event publisher (e.g. under iSulad)");
    }
    let exit = Arc::new(ExitSignal::default());
    let service = Arc::new(Service::new(
        &flags.namespace,
        Events::new(address, &flags.namespace),
        exit.clone(),
    ));
    // Task API v3 (containerd ≥ 2.0 via bootstrap) and v2 (containerd 1.6 – 2.2):
    // the messages are the same on the wire, only the service name differs.
    let mut methods = create_task(service.clone());
    for (name, handler) in create_task(service) {
        methods.insert(
            name.replace("/containerd.task.v3.Task/", "/containerd.task.v2.Task/"),
            handler,
        );
    }

    let path = flags
        .socket
        .strip_prefix("unix://")
        .unwrap_or(&flags.socket)
        .to_string();
    if let Some(dir) = std::path::Path::new(&path).parent() {
        // Under containerd it exists; under iSulad it may not.
        let _ = std::fs::create_dir_all(dir);
    }
    let listener = match std::os::unix::net::UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            // Another shim of this pod serves here already, or a stale socket.
            if Client::connect(&flags.socket).is_ok() {
                write_address(&flags.socket).map_err(|e| e.to_string())?;
                server_started();
                return Ok(());
            }
            if std::fs::metadata(&path).is_ok_and(|m| m.file_type().is_socket()) {
                let _ = std::fs::remove_file(&path);
            }
            std::os::unix::net::UnixListener::bind(&path)
                .map_err(|e| format!("listen on {path}: {e}"))?
        }
        Err(e) => return Err(format!("listen on {path}: {e}")),
    };
    let mut server = Server::new()
        .add_listener(listener.into_raw_fd())
        .map_err(|e| e.to_string())?
        .register_service(methods);
    server.start().map_err(|e| e.to_string())?;
    server_started();
    log::info!("{RUNTIME_ID} serving on {path}");
    exit.wait();
    // `Server::shutdown` joins every connection's threads, which wait for their
    // calls: one call that never returned (a Wait on an exec that never ran
    // did) kept the shim running after containerd's Shutdown, unlisted and
    // unremovable. Shutdown comes once no task is left, so no call still
    // matters: the connections get SHUTDOWN_GRACE to close (the Shutdown reply
    // goes out meanwhile), then the process ends what is left by exiting, as a
    // Go shim exits with its calls.
    let server = server.stop_listen();
    let (closed_tx, closed_rx) = std::sync::mpsc::channel();
    let _ = std::thread::Builder::new()
        .name("disconnect".into())
        .spawn(move || {
            server.disconnect();
            let _ = closed_tx.send(());
        });
    if closed_rx.recv_timeout(SHUTDOWN_GRACE).is_err() {
        log::warn!(
            "a task API call still runs {SHUTDOWN_GRACE:?} after Shutdown; exiting without it"
        );
    }
    let _ = std::fs::remove_file(&path);
    Ok(())
}

/// The lost shim's socket (named in `<bundle>/address`; the bundle is our working
/// directory): removed if nothing answers there any more. A live shim of the same
/// pod still answers, and keeps it.
fn remove_stale_socket() {
    let Ok(address) = std::fs::read_to_string("address") else {
        return;
    };
    let address = address.trim();
    let path = address.strip_prefix("unix://").unwrap_or(address);
    if path.is_empty() || Client::connect(address).is_ok() {
        return;
    }
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        match std::fs::remove_file(path) {
            Ok(()) => log::info!("removed the lost shim's socket {path}"),
            Err(e) => log::warn!("remove the lost shim's socket {path}: {e}"),
        }
    }
}

/// Log lines of the `delete` action, on stderr.
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Info
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            eprintln!("{RUNTIME_ID}: {}: {}", r.level(), r.args());
        }
    }
    fn flush(&self) {}
}

/// Lets the `start` action's `spawn` return: it reads our stdout until it closes.
fn server_started() {
    let _ = nix::unistd::dup2_stdout(std::io::stderr());
}

fn set_subreaper() {
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        log::warn!("cannot become a child subreaper: {e}");
    }
}

/// Reaps every child and tells the engine (through containerd-shim's monitor)
/// which process ended with what status.
fn reap_children() {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    use signal_hook::consts::{SIGCHLD, SIGINT, SIGPIPE, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGCHLD, SIGTERM, SIGINT, SIGPIPE])
    {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot watch signals: {e}");
            return;
        }
    };
    std::thread::spawn(move || {
        for sig in signals.forever() {
            if sig != SIGCHLD {
                log::debug!("signal {sig} ignored");
                continue;
            }
            loop {
                match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(pid, code)) => {
                        let _ = containerd_shim::monitor::monitor_notify_by_pid(pid.as_raw(), code);
                    }
                    Ok(WaitStatus::Signaled(pid, sig, _)) => {
                        let _ = containerd_shim::monitor::monitor_notify_by_pid(
                            pid.as_raw(),
                            128 + sig as i32,
                        );
                    }
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
    });
}
