//! The shim started the way iSulad starts it: `--id X --namespace isula start`,
//! no `-address`, no `TTRPC_ADDRESS` (so no event publisher), driven over ttrpc by
//! containerd-shim-protos' `TaskClient`, as iSulad's shim v2 client does.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use containerd_shim::api;
use containerd_shim::protos::shim::shim_ttrpc::TaskClient;
use containerd_shim::protos::ttrpc::context::Context;
use containerd_shim::protos::ttrpc::Client;
use micrun_tests::e2e::shim_binary;
use micrun_tests::{sim_binary, TempDir};

fn ctx() -> Context {
    Context {
        timeout_nano: Duration::from_secs(20).as_nanos() as i64,
        ..Default::default()
    }
}

#[test]
fn isulad_style_lifecycle_over_ttrpc() {
    let dir = TempDir::new("isulad");
    let spec = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": { "args": ["/firmware.elf"], "cwd": "/", "user": {"uid": 0, "gid": 0} },
        "root": { "path": "rootfs" },
        "annotations": { "org.openeuler.micrun.ped.pedestal": "sim" },
    });
    let bundle = sim_bundle(&dir.path().join("bundle"), &spec);
    let cfg = dir.path().join("micrun.toml");
    fs::write(
        &cfg,
        format!(
            "state_dir = {:?}\n[sim]\nenable = true\n",
            dir.path().join("state")
        ),
    )
    .unwrap();
    let id = format!("isulad{}", std::process::id());
    let shim = IsuladShim::start(&bundle, &cfg, &id);
    let address = shim.address.clone();
    let client = TaskClient::new(Client::connect(&address).unwrap());
    let stdout = dir.path().join("out");
    nix::unistd::mkfifo(&stdout, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let created = client
        .create(
            ctx(),
            &api::CreateTaskRequest {
                id: id.clone(),
                bundle: bundle.display().to_string(),
                stdout: stdout.display().to_string(),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(created.pid > 0);
    let state = client
        .state(
            ctx(),
            &api::StateRequest {
                id: id.clone(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(state.status.enum_value_or_default(), api::Status::CREATED);

    client
        .start(
            ctx(),
            &api::StartRequest {
                id: id.clone(),
                ..Default::default()
            },
        )
        .unwrap();
    let mut out = fs::OpenOptions::new().read(true).open(&stdout).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&got).contains("micrun demo shell on sim") {
        let n = std::io::Read::read(&mut out, &mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    let state = client
        .state(
            ctx(),
            &api::StateRequest {
                id: id.clone(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(state.status.enum_value_or_default(), api::Status::RUNNING);
    assert_eq!(state.pid, created.pid);

    // ResizePty reaches the agent as Resize (the demo app prints the size).
    client
        .resize_pty(
            ctx(),
            &api::ResizePtyRequest {
                id: id.clone(),
                width: 100,
                height: 30,
                ..Default::default()
            },
        )
        .unwrap();
    while !String::from_utf8_lossy(&got).contains("resize 30x100") {
        let n = std::io::Read::read(&mut out, &mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }

    // Update: OCI resources as JSON; bad JSON is INVALID_ARGUMENT; the new memory
    // shows in the metrics.
    let bad = client.update(
        ctx(),
        &api::UpdateTaskRequest {
            id: id.clone(),
            resources: Some(resources("{not json")).into(),
            ..Default::default()
        },
    );
    match bad {
        Err(containerd_shim::protos::ttrpc::Error::RpcStatus(s)) => {
            assert_eq!(
                s.code(),
                containerd_shim::protos::ttrpc::Code::INVALID_ARGUMENT
            )
        }
        other => panic!("update with bad JSON: {other:?}"),
    }
    client
        .update(
            ctx(),
            &api::UpdateTaskRequest {
                id: id.clone(),
                resources: Some(resources(r#"{"memory":{"limit":134217728}}"#)).into(),
                ..Default::default()
            },
        )
        .unwrap();
    let m = metrics(&client, &id);
    assert_eq!(m.memory.usage.limit, 128 << 20);
    assert!(m.memory.usage.usage > 0);

    // A second task in the same shim (as a pod's containers share one) with
    // `runtime.static_resource`: Update is refused with FAILED_PRECONDITION naming
    // the annotation, and its resources stay as they were.
    let fixed = format!("{id}-static");
    let mut fixed_spec = spec.clone();
    fixed_spec["annotations"]["org.openeuler.micrun.runtime.static_resource"] = "true".into();
    fixed_spec["linux"] = serde_json::json!({ "resources": { "memory": { "limit": 67108864 } } });
    let fixed_bundle = sim_bundle(&dir.path().join("bundle-static"), &fixed_spec);
    create_start(&client, &fixed, &fixed_bundle, || {});
    match client.update(
        ctx(),
        &api::UpdateTaskRequest {
            id: fixed.clone(),
            resources: Some(resources(r#"{"memory":{"limit":134217728}}"#)).into(),
            ..Default::default()
        },
    ) {
        Err(containerd_shim::protos::ttrpc::Error::RpcStatus(s)) => {
            assert_eq!(
                s.code(),
                containerd_shim::protos::ttrpc::Code::FAILED_PRECONDITION,
                "{s:?}"
            );
            assert!(
                s.message
                    .contains("org.openeuler.micrun.runtime.static_resource"),
                "{s:?}"
            );
        }
        other => panic!("update of a static_resource task: {other:?}"),
    }
    let fixed_metrics = metrics(&client, &fixed);
    assert_eq!(fixed_metrics.memory.usage.limit, 64 << 20);
    assert_eq!(sigkill_wait_delete(&client, &fixed), (137, 137));

    // Exec runs one firmware command through the agent. A request without an
    // OCI process spec is refused by name, and leaves no exec behind.
    match client.exec(
        ctx(),
        &api::ExecProcessRequest {
            id: id.clone(),
            exec_id: "probe".into(),
            ..Default::default()
        },
    ) {
        Err(containerd_shim::protos::ttrpc::Error::RpcStatus(s)) => {
            assert_eq!(
                s.code(),
                containerd_shim::protos::ttrpc::Code::INVALID_ARGUMENT
            );
            assert!(s.message.contains("process spec"), "{s:?}");
        }
        other => panic!("exec without a spec: {other:?}"),
    }
    let mut any = containerd_shim::protos::protobuf::well_known_types::any::Any::new();
    any.type_url = "types.containerd.io/opencontainers/runtime-spec/1/Process".into();
    any.value = br#"{"args":["stats"],"cwd":"/"}"#.to_vec();
    client
        .exec(
            ctx(),
            &api::ExecProcessRequest {
                id: id.clone(),
                exec_id: "probe".into(),
                spec: Some(any).into(),
                ..Default::default()
            },
        )
        .unwrap();
    client
        .start(
            ctx(),
            &api::StartRequest {
                id: id.clone(),
                exec_id: "probe".into(),
                ..Default::default()
            },
        )
        .unwrap();
    let waited = client
        .wait(
            ctx(),
            &api::WaitRequest {
                id: id.clone(),
                exec_id: "probe".into(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(waited.exit_status, 0, "`stats` exits 0");
    client
        .delete(
            ctx(),
            &api::DeleteRequest {
                id: id.clone(),
                exec_id: "probe".into(),
                ..Default::default()
            },
        )
        .unwrap();

    assert_eq!(sigkill_wait_delete(&client, &id), (137, 137));
    assert!(!Path::new(&format!("/proc/{}", created.pid)).exists() || is_gone(created.pid));
    assert!(
        !dir.path().join("state/isula").join(&id).exists(),
        "state removed"
    );
    client
        .shutdown(ctx(), &api::ShutdownRequest::default())
        .unwrap();
}

/// A shim started as iSulad starts it (`--id X --namespace isula start` in the
/// bundle, no `TTRPC_ADDRESS`). Dropping it shuts the shim down and removes its
/// socket and the /run/containerd directories the shim created.
struct IsuladShim {
    address: String,
    socket: String,
    _dirs: Dirs,
}

/// Empty directories to remove by exact path.
struct Dirs(Vec<&'static str>);

impl Drop for Dirs {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = fs::remove_dir(d);
        }
    }
}

impl IsuladShim {
    fn start(bundle: &Path, config: &Path, id: &str) -> IsuladShim {
        // The shim creates /run/containerd/s if missing; remove what we caused.
        let dirs = Dirs(
            ["/run/containerd/s", "/run/containerd"]
                .into_iter()
                .filter(|d| !Path::new(d).exists())
                .collect(),
        );
        let out = Command::new(shim_binary())
            .args(["--id", id, "--namespace", "isula", "start"])
            .current_dir(bundle)
            .env("MICRUN_CONFIG", config)
            .env_remove("TTRPC_ADDRESS")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let address = String::from_utf8(out.stdout).unwrap().trim().to_string();
        assert!(address.starts_with("unix://"), "{address:?}");
        assert_eq!(fs::read_to_string(bundle.join("address")).unwrap(), address);
        IsuladShim {
            socket: address.trim_start_matches("unix://").to_string(),
            address,
            _dirs: dirs,
        }
    }
}

impl Drop for IsuladShim {
    fn drop(&mut self) {
        if let Ok(c) = Client::connect(&self.address) {
            let _ = TaskClient::new(c).shutdown(ctx(), &api::ShutdownRequest::default());
        }
        let _ = fs::remove_file(&self.socket);
    }
}

/// A bundle at `path` whose rootfs holds the simulator as `firmware.elf`, with
/// `spec` as its config.json.
fn sim_bundle(path: &Path, spec: &serde_json::Value) -> std::path::PathBuf {
    fs::create_dir_all(path.join("rootfs")).unwrap();
    fs::copy(sim_binary(), path.join("rootfs/firmware.elf")).unwrap();
    fs::write(path.join("config.json"), serde_json::to_vec(spec).unwrap()).unwrap();
    path.to_path_buf()
}

/// Create (then `between`, e.g. checks of what Create did), then Start.
fn create_start(client: &TaskClient, id: &str, bundle: &Path, between: impl FnOnce()) {
    client
        .create(
            ctx(),
            &api::CreateTaskRequest {
                id: id.to_string(),
                bundle: bundle.display().to_string(),
                ..Default::default()
            },
        )
        .unwrap();
    between();
    client
        .start(
            ctx(),
            &api::StartRequest {
                id: id.to_string(),
                ..Default::default()
            },
        )
        .unwrap();
}

/// The task's Stats as containerd's cgroup Metrics.
fn metrics(client: &TaskClient, id: &str) -> containerd_shim::protos::cgroups::metrics::Metrics {
    use containerd_shim::protos::protobuf::Message;
    let stats = client
        .stats(
            ctx(),
            &api::StatsRequest {
                id: id.to_string(),
                ..Default::default()
            },
        )
        .unwrap();
    containerd_shim::protos::cgroups::metrics::Metrics::parse_from_bytes(&stats.stats.value)
        .unwrap()
}

/// OCI `LinuxResources` JSON as Update carries it.
fn resources(json: &str) -> containerd_shim::protos::protobuf::well_known_types::any::Any {
    containerd_shim::protos::protobuf::well_known_types::any::Any {
        type_url: "opencontainers/runtime-spec/1/LinuxResources".into(),
        value: json.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// Kill with SIGKILL, Wait, Delete: the exit status Wait and Delete report.
fn sigkill_wait_delete(client: &TaskClient, id: &str) -> (u32, u32) {
    client
        .kill(
            ctx(),
            &api::KillRequest {
                id: id.to_string(),
                signal: 9,
                ..Default::default()
            },
        )
        .unwrap();
    let waited = client
        .wait(
            ctx(),
            &api::WaitRequest {
                id: id.to_string(),
                ..Default::default()
            },
        )
        .unwrap();
    let deleted = client
        .delete(
            ctx(),
            &api::DeleteRequest {
                id: id.to_string(),
                ..Default::default()
            },
        )
        .unwrap();
    (waited.exit_status, deleted.exit_status)
}

fn is_gone(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z"))
}

/// containerd ≥ 2.3 sends `BootstrapParams` on stdin and expects a
/// `BootstrapResult` (task API v3) on stdout instead of a plain address.
#[test]
fn bootstrap_protocol_start_gets_a_bootstrap_result() {
    use containerd_shim::bootstrap::{BootstrapParams, BootstrapResult};
    use containerd_shim::protos::protobuf::Message;
    use std::io::Write;

    let dir = TempDir::new("bootstrap");
    let bundle = dir.path().join("bundle");
    fs::create_dir_all(&bundle).unwrap();
    fs::write(
        bundle.join("config.json"),
        br#"{"ociVersion":"1.0.2","root":{"path":"rootfs"}}"#,
    )
    .unwrap();
    let id = format!("boot{}", std::process::id());
    let params = BootstrapParams {
        instance_id: id.clone(),
        namespace: "ns23".into(),
        socket_dir: Some(dir.path().join("s").display().to_string()),
        ..Default::default()
    };
    fs::create_dir_all(dir.path().join("s")).unwrap();
    let mut child = Command::new(shim_binary())
        .args(["-namespace", "ns23", "-id", &id, "start"])
        .current_dir(&bundle)
        .env_remove("TTRPC_ADDRESS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&params.write_to_bytes().unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result = BootstrapResult::parse_from_bytes(&out.stdout).unwrap();
    assert_eq!(result.version, 3);
    assert_eq!(result.protocol, "ttrpc");
    let socket = result.address.trim_start_matches("unix://").to_string();
    assert!(
        socket.starts_with(&dir.path().join("s").display().to_string()),
        "{socket}"
    );
    // The server answers task API v3 there; shut it down.
    let client = TaskClient::new(Client::connect(&result.address).unwrap());
    let c = client
        .connect(
            ctx(),
            &api::ConnectRequest {
                id: id.clone(),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(c.shim_pid > 0);
    client
        .shutdown(ctx(), &api::ShutdownRequest::default())
        .unwrap();
    let _ = fs::remove_file(&socket);
}

/// Update and Stats through micad (the emulator): changed resources become
/// micad `set` commands with the keys current micad accepts, the ceiling
/// before what must fit under it, and Stats reports the new limit.
#[test]
fn update_through_micad() {
    use micrun_tests::micad::{MicadEmulator, Options};
    let dir = TempDir::new("isulad-micad");
    let host = dir.path().join("host");
    let micad = MicadEmulator::start(&host.join("run/mica"), Options::new(host.join("dev")))
        .expect("start the micad emulator");
    let spec = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": { "args": ["/firmware.elf"], "cwd": "/" },
        "root": { "path": "rootfs" },
        "linux": { "resources": { "memory": { "limit": 67108864 } } },
        "annotations": { "org.openeuler.micrun.ped.pedestal": "baremetal" },
    });
    let bundle = sim_bundle(&dir.path().join("bundle"), &spec);
    let cfg = dir.path().join("micrun.toml");
    fs::write(
        &cfg,
        format!(
            "state_dir = {:?}\n[mica]\ndir = {:?}\ntty_dirs = [{:?}]\n\
             [baremetal]\ndriver = \"micad\"\narch = \"x86_64\"\n",
            dir.path().join("state"),
            host.join("run/mica"),
            host.join("dev"),
        ),
    )
    .unwrap();
    let id = format!("isumicad{}", std::process::id());
    let shim = IsuladShim::start(&bundle, &cfg, &id);
    let client = TaskClient::new(Client::connect(&shim.address).unwrap());
    create_start(&client, &id, &bundle, || {
        assert_eq!(micad.creates().last().map(|c| c.memory), Some(64));
    });
    assert_eq!(micad.instance(&id).map(|i| i.state), Some("Running"));

    client
        .update(
            ctx(),
            &api::UpdateTaskRequest {
                id: id.clone(),
                resources: Some(resources(
                    r#"{"memory":{"limit":134217728},"cpu":{"quota":50000,"period":100000}}"#,
                ))
                .into(),
                ..Default::default()
            },
        )
        .unwrap();
    let settings = micad.instance(&id).map(|i| i.settings).unwrap_or_default();
    let keys: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("maxmemory", "128"),
            ("memory", "128"),
            ("cpucapacity", "50")
        ],
        "the set commands micad received"
    );
    let m = metrics(&client, &id);
    assert_eq!(m.memory.usage.limit, 128 << 20);

    assert_eq!(sigkill_wait_delete(&client, &id), (137, 137));
    assert!(micad.instance(&id).is_none(), "micad still has {id}");
    client
        .shutdown(ctx(), &api::ShutdownRequest::default())
        .unwrap();
    drop(shim);
}

/// iSulad creates `<bundle>/log` before it starts the shim. A FIFO that nobody
/// reads yet must not stop the shim (an open for writing would block until a
/// reader comes): `start` returns promptly, the shim serves, and its lines wait
/// in the FIFO for the reader that comes later. Signal 0 is a liveness check:
/// OK while running, NOT_FOUND "process already finished" once ended.
#[test]
fn a_log_fifo_nobody_reads_yet_and_signal_zero() {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = TempDir::new("isulad-log");
    let spec = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": { "args": ["/firmware.elf"], "cwd": "/", "user": {"uid": 0, "gid": 0} },
        "root": { "path": "rootfs" },
        "annotations": { "org.openeuler.micrun.ped.pedestal": "sim" },
    });
    let bundle = sim_bundle(&dir.path().join("bundle"), &spec);
    let log = bundle.join("log");
    nix::unistd::mkfifo(&log, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let cfg = dir.path().join("micrun.toml");
    fs::write(
        &cfg,
        format!(
            "state_dir = {:?}\n[sim]\nenable = true\n",
            dir.path().join("state")
        ),
    )
    .unwrap();
    let id = format!("isulog{}", std::process::id());
    let dirs = Dirs(
        ["/run/containerd/s", "/run/containerd"]
            .into_iter()
            .filter(|d| !Path::new(d).exists())
            .collect(),
    );
    let mut child = Command::new(shim_binary())
        .args(["--id", &id, "--namespace", "isula", "start"])
        .current_dir(&bundle)
        .env("MICRUN_CONFIG", &cfg)
        .env_remove("TTRPC_ADDRESS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if child.try_wait().unwrap().is_none() {
        // The shim hangs on the log: end it and everything it started, by pid.
        let _ = child.kill();
        let _ = child.wait();
        for (pid, _) in micrun_tests::e2e::processes_mentioning(&id) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        panic!("`start` did not return within 10 s with a log FIFO nobody reads");
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let address = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let shim = IsuladShim {
        socket: address.trim_start_matches("unix://").to_string(),
        address,
        _dirs: dirs,
    };
    let client = TaskClient::new(Client::connect(&shim.address).unwrap());
    create_start(&client, &id, &bundle, || {});
    let kill0 = |client: &TaskClient| {
        client.kill(
            ctx(),
            &api::KillRequest {
                id: id.clone(),
                signal: 0,
                ..Default::default()
            },
        )
    };
    kill0(&client).expect("signal 0 on a running task");
    client
        .kill(
            ctx(),
            &api::KillRequest {
                id: id.clone(),
                signal: 9,
                ..Default::default()
            },
        )
        .unwrap();
    let waited = client
        .wait(
            ctx(),
            &api::WaitRequest {
                id: id.clone(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(waited.exit_status, 137);
    // Ended, not yet deleted: what containerd's runc shim answers.
    match kill0(&client) {
        Err(containerd_shim::protos::ttrpc::Error::RpcStatus(s)) => {
            assert_eq!(s.code(), containerd_shim::protos::ttrpc::Code::NOT_FOUND);
            assert!(
                s.message.contains("process already finished"),
                "{}",
                s.message
            );
        }
        other => panic!("signal 0 on an ended task: {other:?}"),
    }
    client
        .delete(
            ctx(),
            &api::DeleteRequest {
                id: id.clone(),
                ..Default::default()
            },
        )
        .unwrap();

    // The reader comes now: the shim's lines waited for it.
    let mut reader = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(&log)
        .unwrap();
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = reader.read(&mut buf) {
        text.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&text);
    assert!(text.contains(&format!("create {id}")), "{text}");
    drop(shim);
}

/// A shim whose last task is deleted exits by itself when no Shutdown follows
/// (containerd killed between the two, a Shutdown that failed or timed out, a
/// client that sends none), `ORPHAN_SHIM_EXIT` (5 s) after the Delete, and
/// removes its socket. It used to stay running for ever, unlisted, holding
/// containerd's end of its log FIFO.
#[test]
fn a_shim_left_without_tasks_exits_without_shutdown() {
    use micrun_shim::service::ORPHAN_SHIM_EXIT;
    use micrun_tests::e2e::{processes_mentioning, wait_until};
    let dir = TempDir::new("isulad-noshut");
    let spec = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": { "args": ["/firmware.elf"], "cwd": "/", "user": {"uid": 0, "gid": 0} },
        "root": { "path": "rootfs" },
        "annotations": { "org.openeuler.micrun.ped.pedestal": "sim" },
    });
    let bundle = sim_bundle(&dir.path().join("bundle"), &spec);
    let cfg = dir.path().join("micrun.toml");
    fs::write(
        &cfg,
        format!(
            "state_dir = {:?}\n[sim]\nenable = true\n",
            dir.path().join("state")
        ),
    )
    .unwrap();
    let id = format!("noshut{}", std::process::id());
    let shim = IsuladShim::start(&bundle, &cfg, &id);
    let client = TaskClient::new(Client::connect(&shim.address).unwrap());
    create_start(&client, &id, &bundle, || {});
    let shims = || {
        processes_mentioning(&id)
            .into_iter()
            .filter(|(_, args)| args.iter().any(|a| a.ends_with("containerd-shim-mica-v2")))
            .count()
    };
    assert_eq!(shims(), 1, "the shim serving {id}");
    assert_eq!(sigkill_wait_delete(&client, &id), (137, 137));
    drop(client);
    // No Shutdown: the shim goes by itself.
    assert!(
        wait_until(ORPHAN_SHIM_EXIT + Duration::from_secs(5), || shims() == 0),
        "the shim still runs {:?} after its last Delete without Shutdown",
        ORPHAN_SHIM_EXIT + Duration::from_secs(5)
    );
    assert!(!Path::new(&shim.socket).exists(), "its socket is left");
}
