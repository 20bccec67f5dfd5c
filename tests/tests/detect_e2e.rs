//! Host detection against what a real host may have at micad's socket path, and
//! what a failed Start leaves, through a private containerd and `ctr`
//! (docs/shim.md, "Which pedestal").
//!
//! Each daemon has `default_pedestal = "auto"` and its own host root (no Xen
//! marker, no remote processor, QEMU installed), so a container that names no
//! pedestal lands on `qemu` unless micad answers at
//! `<host root>/run/mica/mica-create.socket`. At that path the tests put what is
//! not a micad: a socket file nothing listens on (a micad that exited), a listener
//! that accepts and never answers, and one that answers garbage. The container
//! must run on QEMU, the detection must give up within its 1 s bound (measured by
//! the listener: from accept to the shim closing the connection), and the shim's
//! log must say why micad was passed over.
//!
//! A Start that fails (micad's emulator refuses `start`) must name the pedestal and
//! how it was chosen, and `ctr run --rm` must leave nothing: no task, no shim
//! process, no shim socket, no micrun state, no partition.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use micrun_tests::containerd::TaskState;
use micrun_tests::e2e::{
    processes_mentioning, qemu_image, sim_image, unique_id, wait_until, Env, ANN_PEDESTAL, RUNTIME,
};
use micrun_tests::micad::{Fault, Op};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// What sits at micad's socket path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NotMicad {
    /// A socket file, nothing listening.
    Stale,
    /// Accepts, reads, never answers.
    Silent,
    /// Accepts and answers bytes that are not micad's.
    Garbage,
}

/// A listener at `path` standing in for something that is not micad: each
/// connection is accepted on its own thread, and the time from accept to the
/// client closing its end is recorded.
struct Impostor {
    held: Arc<Mutex<Vec<Duration>>>,
    path: PathBuf,
}

impl Impostor {
    fn start(path: &Path, kind: NotMicad) -> Impostor {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).unwrap();
        let held = Arc::new(Mutex::new(Vec::new()));
        if kind == NotMicad::Stale {
            // The socket file stays; nothing listens on it any more.
            drop(listener);
        } else {
            let held = held.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    let Ok(mut conn) = conn else { return };
                    let held = held.clone();
                    std::thread::spawn(move || {
                        let accepted = Instant::now();
                        let mut buf = [0u8; 4096];
                        // The request (the shim half-closes after it).
                        let _ = conn.read(&mut buf);
                        if kind == NotMicad::Garbage {
                            let _ = conn.write_all(b"SSH-2.0-OpenSSH_9.2\r\n");
                        }
                        // Until the client gives up and closes its end (a
                        // hangup; its half-close after the request is not one).
                        let mut fds = [PollFd::new(conn.as_fd(), PollFlags::empty())];
                        let _ = poll(&mut fds, PollTimeout::from(10_000u16));
                        held.lock().unwrap().push(accepted.elapsed());
                    });
                }
            });
        }
        Impostor {
            held,
            path: path.to_path_buf(),
        }
    }

    fn connections(&self) -> Vec<Duration> {
        self.held.lock().unwrap().clone()
    }
}

impl Drop for Impostor {
    fn drop(&mut self) {
        // Wakes the accept loop so that it ends, then removes the socket file.
        if let Ok(c) = UnixStream::connect(&self.path) {
            drop(c);
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn auto_env() -> Env {
    Env::start_with(|c| {
        c.default_pedestal = Some("auto".into());
        c.start_micad = false;
    })
}

fn micad_socket(env: &Env) -> PathBuf {
    env.config()
        .host_root
        .as_ref()
        .expect("a host root")
        .join("run/mica/mica-create.socket")
}

fn falls_through(kind: NotMicad, why: &str) {
    let env = auto_env();
    let socket = micad_socket(&env);
    let impostor = Impostor::start(&socket, kind);
    let ns = env.namespace("detect");
    let img = qemu_image("e2e", false);
    env.import(&ns, &img);
    let id = unique_id(&format!("det-{kind:?}").to_lowercase());

    let t = Instant::now();
    env.run_detached(&ns, &img, &id, &[])
        .unwrap_or_else(|e| panic!("{kind:?}: the container did not run: {e}"));
    let took = t.elapsed();
    ns.wait_state(&id, TaskState::Running, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));

    // It runs on QEMU (the state record names the pedestal the shim chose).
    let record =
        std::fs::read_to_string(env.state_dir().join(ns.name()).join(&id).join("state.json"))
            .unwrap_or_default();
    let pedestal = serde_json::from_str::<serde_json::Value>(&record)
        .map(|v| v["pedestal"].clone())
        .unwrap_or_default();
    assert_eq!(
        pedestal,
        "qemu",
        "{kind:?}: state {record}{}",
        env.diag(&id)
    );
    // Detection gave up within its bound: each connection was held ≤ 1 s (plus
    // scheduling on a busy 2-core machine).
    let held = impostor.connections();
    if kind != NotMicad::Stale {
        assert!(!held.is_empty(), "{kind:?}: the shim never probed micad");
    }
    for h in &held {
        assert!(
            *h <= Duration::from_millis(1500),
            "{kind:?}: the probe held the connection {h:?}"
        );
    }
    assert!(
        took < Duration::from_secs(20),
        "{kind:?}: ctr run -d took {took:?}"
    );
    // The log says why micad was not used.
    let log = env.log_lines("micad is not used", 5);
    assert!(
        log.contains(&socket.display().to_string()) && log.contains(why),
        "{kind:?}: the log does not say why: {log:?}{}",
        env.diag(&id)
    );
    eprintln!("{kind:?}: ctr run -d took {took:?}; probe held {held:?}; log: {log}");

    ns.ctr_ok(&["task", "kill", "-s", "SIGKILL", &id]).unwrap();
    ns.wait_state(&id, TaskState::Stopped, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));
    ns.ctr_ok(&["task", "rm", &id]).unwrap();
    ns.ctr_ok(&["containers", "rm", &id]).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || processes_mentioning(&id)
            .is_empty()),
        "left: {:?}",
        processes_mentioning(&id)
    );
}

#[test]
fn a_stale_micad_socket_falls_through_to_qemu() {
    falls_through(NotMicad::Stale, "nothing listens on it");
}

#[test]
fn a_silent_listener_at_micads_path_falls_through_to_qemu() {
    falls_through(NotMicad::Silent, "did not answer within 1s");
}

#[test]
fn a_listener_answering_garbage_falls_through_to_qemu() {
    falls_through(NotMicad::Garbage, "not micad's");
}

/// micad (the emulator) answers, so detection chooses `baremetal` through micad;
/// its `start` fails. The error names the pedestal and the check that chose it,
/// and `ctr run --rm` leaves nothing behind.
#[test]
fn a_failed_start_names_the_pedestal_and_leaves_nothing() {
    let env = Env::start_with(|c| c.default_pedestal = Some("auto".into()));
    let micad = env.micad.as_ref().expect("the micad emulator");
    micad.set_fault(Op::Start, Some(Fault::Fail("core 3 is offline".into())));
    let ns = env.namespace("failstart");
    let img = sim_image("e2e", true);
    env.import(&ns, &img);
    let id = unique_id("failstart");
    let bundle = env.cd.bundle_dir(ns.name(), &id);

    let out = ns.run(&img.name, &id, RUNTIME, &img_args(&img), &[], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the start did not fail: {stderr}");
    for needle in [
        "core 3 is offline",
        "pedestal baremetal, chosen by host detection: micad: answered at ",
        "driven through micad",
    ] {
        assert!(
            stderr.contains(needle),
            "{needle:?} not in the error: {stderr}{}",
            env.diag(&id)
        );
    }

    // Nothing left: no task, no container, no shim, no socket, no state, no
    // partition in micad.
    let tasks = ns.tasks().unwrap();
    assert!(
        tasks.iter().all(|t| t.id != id),
        "a task is left: {tasks:?}{}",
        env.diag(&id)
    );
    let containers = ns.ctr_ok(&["containers", "ls", "-q"]).unwrap();
    assert!(
        !String::from_utf8_lossy(&containers.stdout)
            .lines()
            .any(|l| l.trim() == id),
        "the container is left{}",
        env.diag(&id)
    );
    let clean = || {
        processes_mentioning(&id).is_empty()
            && env.state_entries(&id).is_empty()
            && !bundle.exists()
            && micad.instance(&id).is_none()
    };
    wait_until(Duration::from_secs(10), clean);
    assert!(
        processes_mentioning(&id).is_empty(),
        "processes left: {:?}{}",
        processes_mentioning(&id),
        env.diag(&id)
    );
    assert!(env.state_entries(&id).is_empty(), "micrun state left");
    assert!(!bundle.exists(), "bundle left: {bundle:?}");
    assert!(micad.instance(&id).is_none(), "micad instance left");
    let socket =
        containerd_shim::socket_address(&env.cd.address().to_string_lossy(), ns.name(), &id);
    let socket = PathBuf::from(socket.trim_start_matches("unix://"));
    assert!(!socket.exists(), "shim socket left: {socket:?}");
}

fn img_args(img: &micrun_tests::e2e::TestImage) -> Vec<&str> {
    img.run_args.iter().map(String::as_str).collect()
}

/// The annotation wins over detection, and an error says so.
#[test]
fn a_create_error_names_the_annotation() {
    let env = auto_env();
    let ns = env.namespace("annerr");
    let img = qemu_image("e2e", false);
    env.import(&ns, &img);
    let id = unique_id("annerr");
    let ann = format!("{ANN_PEDESTAL}=xen");
    let out = ns.run(
        &img.name,
        &id,
        RUNTIME,
        &["--annotation", &ann, "--platform", "linux/arm64"],
        &[],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "xen ran: {stderr}");
    assert!(
        stderr.contains("pedestal xen, chosen by the annotation org.openeuler.micrun.ped.pedestal; driven through xl"),
        "{stderr}{}",
        env.diag(&id)
    );
}
