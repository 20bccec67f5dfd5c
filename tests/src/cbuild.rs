//! Building and running the C side of the tests: libmicrun for the C programs,
//! and a runner for gcc, install scripts and the programs themselves.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::repo_root;

/// How long one command of a C test may take before it is killed.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a cargo build a test needs may take: a cold build of libmicrun's
/// dependencies on a loaded 2-core machine took over 3 minutes. The build is the
/// test's set-up, not what it measures; the limit only keeps a wedged build from
/// hanging the suite.
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(40 * 60);

/// Runs `cmd` to completion (killed after [`RUN_TIMEOUT`]), asserting success, and
/// returns its output. The child is always reaped.
pub fn run(cmd: &mut Command, what: &str) -> Output {
    run_within(cmd, what, RUN_TIMEOUT)
}

/// [`run`] for a cargo build: killed after [`BUILD_TIMEOUT`].
pub fn build(cmd: &mut Command, what: &str) -> Output {
    run_within(cmd, what, BUILD_TIMEOUT)
}

/// [`run`] with the limit `timeout`.
pub fn run_within(cmd: &mut Command, what: &str, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}"));
    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out_thread.join().unwrap();
    let stderr = err_thread.join().unwrap();
    let text = format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    let Some(status) = status else {
        panic!("{what}: no exit within {timeout:?} ({cmd:?}), killed\n{text}");
    };
    assert!(
        status.success(),
        "{what} failed: {status} ({cmd:?})\n{text}"
    );
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Builds libmicrun (debug) with its own target dir (`target/ffi-for-tests`)
/// and returns the directory holding `libmicrun.so` and `libmicrun.a`. Built
/// once per process.
pub fn ffi_build_dir() -> PathBuf {
    static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(dir) = built.as_ref() {
        return dir.clone();
    }
    let root = repo_root();
    let target_dir = root.join("target/ffi-for-tests");
    build(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--quiet", "-p", "micrun-ffi", "--lib"])
            .arg("--manifest-path")
            .arg(root.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir),
        "build micrun-ffi",
    );
    let dir = target_dir.join("debug");
    for f in ["libmicrun.so", "libmicrun.a"] {
        assert!(dir.join(f).is_file(), "{f} missing after the build");
    }
    *built = Some(dir.clone());
    dir
}
