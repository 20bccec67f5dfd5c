//! The C RTOS integration path: a C program (`tests/c/agent_pipe.c`) built by gcc
//! with `-Wall -Wextra -Werror` against `include/micrun_agent.h` and linked with the
//! rtos-side static library (`capi` feature, built for this host with
//! `panic = "abort"`), its stdin/stdout as the link, driven by micrun-proto's host
//! endpoint: handshake with the names the C side gave, console output and input,
//! stats from the C callback, and the exit code reported through the agent.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use micrun_proto::{ExitReason, HostConfig, HostEvent};
use micrun_tests::cbuild::run;
use micrun_tests::{repo_root, FdLink, HostSession, TempDir};

const T: Duration = Duration::from_secs(20);

/// `libmicrun_rtos.a` for this host: `cargo rustc --crate-type staticlib` with
/// the `capi` and `panic-handler` features, `panic = "abort"`, in a target dir
/// of its own.
fn agent_staticlib() -> PathBuf {
    let root = repo_root();
    let target_dir = root.join("target/agent-host");
    run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "rustc",
                "--quiet",
                "--release",
                "-p",
                "micrun-rtos",
                "--features",
                "capi,panic-handler",
                "--crate-type",
                "staticlib",
                "--config",
                "profile.release.panic=\"abort\"",
            ])
            .arg("--manifest-path")
            .arg(root.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir),
        "build libmicrun_rtos.a",
    );
    let lib = target_dir.join("release/libmicrun_rtos.a");
    assert!(lib.is_file(), "{} missing after the build", lib.display());
    lib
}

#[test]
fn a_c_application_on_the_agent_talks_to_the_host_endpoint() {
    let root = repo_root();
    let dir = TempDir::new("c-agent");
    let exe = dir.path().join("agent_pipe");
    let out = Command::new("gcc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-I"])
        .arg(root.join("include"))
        .arg(root.join("tests/c/agent_pipe.c"))
        .arg(agent_staticlib())
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("run gcc");
    assert!(
        out.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut child = Command::new(&exe)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run the C agent");
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let rx: OwnedFd = child.stdout.take().expect("stdout pipe").into();
    let tx: OwnedFd = child.stdin.take().expect("stdin pipe").into();
    let mut child = Reap(child);
    let mut s = HostSession::new(
        FdLink::with(rx, tx, None),
        HostConfig {
            ping_interval_ms: 200,
            peer_timeout_ms: 60_000,
            ..HostConfig::default()
        },
    );

    s.until(T, "the handshake", |s| s.ep.is_connected());
    let peer = s.ep.peer().expect("connected").clone();
    assert_eq!((peer.os.as_str(), peer.board.as_str()), ("c-test", "pipe"));

    let at = s.expect_stdout(0, "hello from a C agent\r\n", T);
    s.type_line("ping from the host");
    s.expect_stdout(at, "echo: ping from the host\r\n", T);

    let stats = s.stats(T);
    assert_eq!(
        (
            stats.cpu_load_permille,
            stats.mem_used_kib,
            stats.mem_total_kib
        ),
        (123, 456, 789)
    );

    s.type_line("exit 5");
    s.until(T, "the exit report", |s| {
        s.events
            .iter()
            .any(|e| matches!(e, HostEvent::Exited { .. }))
    });
    assert!(s.events.contains(&HostEvent::Exited {
        code: 5,
        reason: ExitReason::Normal
    }));
    // The C side returns once the host has acknowledged the report.
    let deadline = std::time::Instant::now() + T;
    let status = loop {
        s.step();
        if let Some(st) = child.0.try_wait().expect("wait for the C agent") {
            break st;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the C agent did not end after its exit was acknowledged"
        );
    };
    assert_eq!(status.code(), Some(5));
}
