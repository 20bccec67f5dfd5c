//! The C RTOS integration path: a C program (`tests/c/agent_pipe.c`) built by gcc
//! with `-Wall -Wextra -Werror` against `include/micrun_agent.h` and linked with the
//! rtos-side static library (`capi` feature, built for this host with
//! `panic = "abort"`), its stdin/stdout as the link, driven by micrun-proto's host
//! endpoint: handshake with the names the C side gave, console output and input,
//! stats from the C callback, and the exit code reported through the agent; and
//! exec (protocol 1.2): commands run through the C exec hook with their output
//! and codes, a signal ending one, and 127 for every exec without a hook.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use micrun_proto::{ExitReason, HostConfig, HostEvent, Stream};
use micrun_tests::cbuild::build;
use micrun_tests::{repo_root, FdLink, HostSession, TempDir};

const T: Duration = Duration::from_secs(20);

/// `libmicrun_rtos.a` for this host: `cargo rustc --crate-type staticlib` with
/// the `capi`, `panic-handler` and `exec` features, `panic = "abort"`, in a target dir
/// of its own.
fn agent_staticlib() -> PathBuf {
    let root = repo_root();
    let target_dir = root.join("target/agent-host");
    build(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "rustc",
                "--quiet",
                "--release",
                "-p",
                "micrun-rtos",
                "--features",
                "capi,panic-handler,exec",
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

/// `tests/c/agent_pipe.c` built by gcc against the header and the library.
fn build_agent_pipe(dir: &TempDir) -> PathBuf {
    let root = repo_root();
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
    exe
}

/// The C agent process, killed and reaped when dropped.
struct Reap(std::process::Child);
impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the C agent with `args` and connects a host session to it.
fn start(exe: &std::path::Path, args: &[&str]) -> (Reap, HostSession<FdLink>) {
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run the C agent");
    let rx: OwnedFd = child.stdout.take().expect("stdout pipe").into();
    let tx: OwnedFd = child.stdin.take().expect("stdin pipe").into();
    let child = Reap(child);
    let mut s = HostSession::new(
        FdLink::with(rx, tx, None),
        HostConfig {
            ping_interval_ms: 200,
            peer_timeout_ms: 60_000,
            ..HostConfig::default()
        },
    );
    s.until(T, "the handshake", |s| s.ep.is_connected());
    (child, s)
}

/// Runs exec `id` with `argv` (wire form) and returns its output and code;
/// checks that the code arrives after the last byte of output.
fn exec(s: &mut HostSession<FdLink>, id: u32, argv: &[u8], signal: Option<u8>) -> (Vec<u8>, i32) {
    s.ep.send_exec_start(id, argv).expect("an exec start");
    let mut out = Vec::new();
    let mut signalled = false;
    let deadline = std::time::Instant::now() + T;
    loop {
        s.step();
        let exited = s.events.iter().find_map(|e| match e {
            HostEvent::ExecExited { exec, code } if *exec == id => Some(*code),
            _ => None,
        });
        let mut b = [0u8; 4096];
        loop {
            let n = s.ep.read_console(Stream::Exec, &mut b);
            if n == 0 {
                break;
            }
            out.extend_from_slice(&b[..n]);
        }
        if let Some(code) = exited {
            // Everything it wrote was in the ring when its end arrived.
            return (out, code);
        }
        if let (Some(signo), false) = (signal, signalled) {
            // Once the command runs (its start acknowledged), signal it.
            if s.ep.send_exec_signal(id, signo).is_ok() {
                signalled = true;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "exec {id} ({argv:?}) did not end; output so far {:?}",
            String::from_utf8_lossy(&out)
        );
    }
}

#[test]
fn a_c_application_on_the_agent_talks_to_the_host_endpoint() {
    let dir = TempDir::new("c-agent");
    let exe = build_agent_pipe(&dir);
    let (mut child, mut s) = start(&exe, &[]);
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

#[test]
fn c_commands_run_through_the_exec_hook() {
    let dir = TempDir::new("c-agent-exec");
    let exe = build_agent_pipe(&dir);
    let (_child, mut s) = start(&exe, &[]);
    assert!(s.ep.can_exec(), "the C agent offers exec");
    s.expect_stdout(0, "hello from a C agent\r\n", T);

    assert_eq!(
        exec(&mut s, 1, b"echo\0hello\0from C\0", None),
        (b"hello from C\n".to_vec(), 0)
    );
    // argv[] as C sees it: every argument, empty ones included.
    assert_eq!(
        exec(&mut s, 2, b"argv\0a\0\0b c\0", None),
        (b"4 [argv] [a] [] [b c]\n".to_vec(), 0)
    );
    assert_eq!(exec(&mut s, 3, b"exit\x0042\0", None), (vec![], 42));
    // Unknown to the hook: 127.
    assert_eq!(exec(&mut s, 4, b"nope\0", None), (vec![], 127));
    // Output over many polls, more than the agent's 1 KiB exec ring.
    let (out, code) = exec(&mut s, 5, b"count\x00400\0", None);
    let want: String = (0..400).map(|i| format!("line {i}\n")).collect();
    assert_eq!(String::from_utf8_lossy(&out), want);
    assert_eq!(code, 0);
    // A command that runs until a signal ends with 128 + signo.
    assert_eq!(exec(&mut s, 6, b"wait\0", Some(9)), (vec![], 137));
    // Exec output never reaches the console.
    let console = String::from_utf8_lossy(&s.stdout).into_owned();
    assert!(!console.contains("line 0"), "{console:?}");
    assert!(s.stderr.is_empty());
    // The application is still there.
    let at = s.stdout.len();
    s.type_line("still here");
    s.expect_stdout(at, "echo: still here\r\n", T);
}

#[test]
fn without_an_exec_hook_every_exec_ends_with_127() {
    let dir = TempDir::new("c-agent-noexec");
    let exe = build_agent_pipe(&dir);
    let (_child, mut s) = start(&exe, &["--no-exec"]);
    s.expect_stdout(0, "hello from a C agent\r\n", T);
    assert_eq!(exec(&mut s, 1, b"echo\0hi\0", None), (vec![], 127));
    assert_eq!(exec(&mut s, 2, b"\0", None), (vec![], 127));
    let at = s.stdout.len();
    s.type_line("after");
    s.expect_stdout(at, "echo: after\r\n", T);
}
