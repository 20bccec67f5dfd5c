//! `micrun` as an OCI runtime (docs/oci-runtime.md): runc's command line driven
//! directly, then by Debian's podman 4.3.1 and conmon 2.1.6, on the sim pedestal
//! (the demo firmware as a host process).
//!
//! | test | what |
//! |---|---|
//! | `cli_lifecycle` | create with pipes as stdio, `--pid-file`, `state`/`list`/`ps` documents, start, console in and out, `exit 3` → the monitor's exit status 3 (collected as conmon does, as its subreaper); `kill TERM` → graceful stop (0), `kill KILL` → 137, a firmware that ignores stop → 143 after the grace time; pause/resume; `update --resources` (and a cpuset the host lacks, bad JSON); `delete` refuses a running container, `delete --force` ends it; a monitor killed from outside: `state` says stopped and `delete` ends its partition |
//! | `cli_bad_input` | a missing bundle, a bad config.json, sim not enabled, an existing id, bad ids and signals, unknown commands and flags, refused commands, an unknown container: exit 1, the message (the shim's words for bundle errors), nothing left under `--root` |
//! | `cli_features_and_version` | `features` is the runtime-spec features document with micrun's annotations; `--version` as runc prints it |
//! | `podman_runs_qemu_firmware` | the QEMU board image (arm64) on the qemu pedestal through podman: `run --rm -i`, console in and out, `exit 3` → 3, nothing left |
//! | `podman_runs_firmware` | an OCI archive loaded into a private podman store; `podman run --runtime micrun --rm -i` with `echo hi` and `exit 3` on stdin → the echo, exit 3; `run -d -t` (a pty through `--console-socket`) + `logs` + `pause`/`unpause` + `stop` → the RTOS's code (0) + `rm`; `run -d -i` + `attach` with `exit 4` → `wait` says 4; the raw-console image stopped → 143; `run -d` + `kill` → 137 + `rm -f`; nothing left: no process, no state, no mount |

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use micrun_tests::e2e::{micrun_binary, qemu_image, sim_image, MicrunConfig, Ped, TestImage};
use micrun_tests::scenarios::{banner, T_ACT, T_BOOT};
use micrun_tests::{sim_binary, TempDir};

/// One test at a time: `cli_lifecycle` makes the test process a subreaper, which
/// must not adopt podman's conmon.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A state root, a micrun config (sim enabled, 3 s stop grace) and bundles in a
/// temp dir; every process the test started is killed and reaped on drop.
struct Rt {
    dir: TempDir,
    root: PathBuf,
    config: PathBuf,
    pids: Vec<u32>,
}

impl Rt {
    fn new(tag: &str, sim_enable: bool) -> Rt {
        let dir = TempDir::new(tag);
        let root = dir.path().join("root");
        let config = dir.path().join("micrun.toml");
        let mut c = MicrunConfig::for_tests(dir.path().join("state"));
        c.sim_enable = sim_enable;
        if !sim_enable {
            c.default_pedestal = None;
        }
        c.write(&config).unwrap();
        Rt {
            dir,
            root,
            config,
            pids: Vec::new(),
        }
    }

    /// A bundle whose firmware is the simulator, run with `args`.
    fn bundle(&self, name: &str, args: &[&str]) -> PathBuf {
        let b = self.dir.path().join(name);
        fs::create_dir_all(b.join("rootfs")).unwrap();
        fs::copy(sim_binary(), b.join("rootfs/firmware.elf")).unwrap();
        let mut argv = vec!["/firmware.elf".to_string()];
        argv.extend(args.iter().map(|s| s.to_string()));
        let spec = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": { "args": argv, "cwd": "/", "user": {"uid": 0, "gid": 0}, "terminal": false },
            "root": { "path": "rootfs" },
            "annotations": { "org.openeuler.micrun.ped.pedestal": "sim", "test.note": "oci" },
        });
        fs::write(b.join("config.json"), spec.to_string()).unwrap();
        b
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(micrun_binary());
        c.arg("--root")
            .arg(&self.root)
            .arg("--config")
            .arg(&self.config)
            .env_remove("MICRUN_CONFIG");
        c
    }

    /// `micrun --root R --config C ARGS`, its output.
    fn run(&self, args: &[&str]) -> Output {
        self.cmd()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run micrun")
    }

    /// Like [`Rt::run`]; must succeed; stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "micrun {args:?}: {} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Like [`Rt::run`]; must fail with exit 1; stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "micrun {args:?}: {err}");
        assert!(err.starts_with("micrun: "), "{err}");
        err
    }

    fn state(&self, id: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    /// `create` with pipes as the container's stdio; the console and the
    /// monitor's pid (from `--pid-file`).
    fn create(&mut self, id: &str, bundle: &Path) -> (Console, u32) {
        let (in_r, in_w) = nix::unistd::pipe().unwrap();
        let (out_r, out_w) = nix::unistd::pipe().unwrap();
        let pid_file = self.dir.path().join(format!("{id}.pid"));
        let status = self
            .cmd()
            .args(["create", "--bundle"])
            .arg(bundle)
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(id)
            .stdin(Stdio::from(in_r))
            .stdout(Stdio::from(out_w.try_clone().unwrap()))
            .stderr(Stdio::from(out_w))
            .status()
            .unwrap();
        assert!(status.success(), "create {id}: {status}");
        let pid: u32 = fs::read_to_string(&pid_file).unwrap().parse().unwrap();
        self.pids.push(pid);
        (Console::new(in_w, out_r), pid)
    }

    /// Waits for child `pid` (a monitor, adopted as its subreaper) to end; its
    /// exit status.
    fn wait_exit(&mut self, pid: u32) -> i32 {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use nix::sys::wait::{waitpid, WaitStatus};
            let r = match waitpid(nix::unistd::Pid::from_raw(pid as i32), None) {
                Ok(WaitStatus::Exited(_, c)) => c,
                Ok(WaitStatus::Signaled(_, s, _)) => 128 + s as i32,
                other => panic!("waitpid {pid}: {other:?}"),
            };
            let _ = tx.send(r);
        });
        let code = rx
            .recv_timeout(T_ACT)
            .unwrap_or_else(|_| panic!("monitor {pid} did not end"));
        self.pids.retain(|&p| p != pid);
        code
    }

    fn entries(&self) -> Vec<PathBuf> {
        micrun_tests::entries(&self.root)
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        for &pid in &self.pids {
            let p = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(p, None);
        }
    }
}

/// The container's end of the console, from the test's side.
struct Console {
    input: File,
    output: File,
    seen: Vec<u8>,
}

impl Console {
    fn new(input: OwnedFd, output: OwnedFd) -> Console {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        fcntl(&output, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).unwrap();
        Console {
            input: File::from(input),
            output: File::from(output),
            seen: Vec::new(),
        }
    }

    fn send(&mut self, line: &str) {
        self.input.write_all(line.as_bytes()).unwrap();
    }

    /// Reads until `needle` has been seen (since the start).
    fn expect(&mut self, needle: &str, timeout: Duration) {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let deadline = Instant::now() + timeout;
        while !String::from_utf8_lossy(&self.seen).contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {needle:?} in {:?}",
                String::from_utf8_lossy(&self.seen)
            );
            let mut fds = [PollFd::new(self.output.as_fd(), PollFlags::POLLIN)];
            let ms = PollTimeout::try_from(left.as_millis().min(60_000) as i32).unwrap();
            poll(&mut fds, ms).unwrap();
            let mut b = [0u8; 4096];
            match self.output.read(&mut b) {
                Ok(0) => panic!(
                    "console closed before {needle:?}: {:?}",
                    String::from_utf8_lossy(&self.seen)
                ),
                Ok(n) => self.seen.extend_from_slice(&b[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
    }
}

/// Live (not zombie) processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let (Ok(cmdline), Ok(stat)) = (
            fs::read(e.path().join("cmdline")),
            fs::read_to_string(e.path().join("stat")),
        ) else {
            continue;
        };
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'));
        if !zombie && String::from_utf8_lossy(&cmdline).contains(needle) {
            found.push(pid);
        }
    }
    found
}

/// The host process of the sim partition of a container whose bundle is `bundle`
/// (it runs `<bundle>/rootfs/firmware.elf`).
fn partition_pids(bundle: &Path) -> Vec<u32> {
    processes_mentioning(&bundle.join("rootfs/firmware.elf").to_string_lossy())
}

#[test]
fn cli_lifecycle() {
    let _serial = serial();
    nix::sys::prctl::set_child_subreaper(true).unwrap();
    struct Unset;
    impl Drop for Unset {
        fn drop(&mut self) {
            let _ = nix::sys::prctl::set_child_subreaper(false);
        }
    }
    let _unset = Unset;
    let mut rt = Rt::new("oci-cli", true);
    let b = rt.bundle("b", &[]);

    // create: a created container, its monitor's pid everywhere.
    let (mut con, pid) = rt.create("c1", &b);
    let st = rt.state("c1");
    assert_eq!(st["ociVersion"], "1.0.2", "{st}");
    assert_eq!(st["id"], "c1");
    assert_eq!(st["status"], "created");
    assert_eq!(st["pid"], pid);
    assert_eq!(st["bundle"], b.to_string_lossy().as_ref());
    assert_eq!(st["annotations"]["test.note"], "oci");
    let list: serde_json::Value =
        serde_json::from_str(&rt.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(list[0]["id"], "c1", "{list}");
    assert!(rt.ok(&["list"]).contains(&format!("c1\t{pid}\tcreated\t")));
    assert_eq!(rt.ok(&["list", "-q"]), "c1\n");
    assert_eq!(
        rt.ok(&["ps", "--format", "json", "c1"]).trim(),
        format!("[{pid}]")
    );
    // start: the RTOS boots; its console is the stdio create was given.
    rt.ok(&["start", "c1"]);
    assert_eq!(rt.state("c1")["status"], "running");
    let err = rt.fails(&["start", "c1"]);
    assert!(
        err.contains("start c1: the container is running, not created"),
        "{err}"
    );
    con.expect(&banner(Ped::Sim), T_BOOT);
    con.send("echo hi there\r");
    con.expect("hi there", T_ACT);
    // pause and resume.
    rt.ok(&["pause", "c1"]);
    assert_eq!(rt.state("c1")["status"], "paused");
    rt.ok(&["resume", "c1"]);
    assert_eq!(rt.state("c1")["status"], "running");
    // update: linux.resources mapped by the monitor as the shim maps them.
    let res = rt.dir.path().join("resources.json");
    let res_arg = res.to_string_lossy().into_owned();
    fs::write(
        &res,
        r#"{"memory": {"limit": 67108864}, "cpu": {"cpus": "0"}}"#,
    )
    .unwrap();
    rt.ok(&["update", "--resources", &res_arg, "c1"]);
    fs::write(&res, r#"{"cpu": {"cpus": "4000"}}"#).unwrap();
    let err = rt.fails(&["update", "-r", &res_arg, "c1"]);
    assert!(
        err.contains("update c1: cpuset 4000 names no CPU this host has"),
        "{err}"
    );
    fs::write(&res, r#"{"cpu": {"cpus": 5}}"#).unwrap();
    let err = rt.fails(&["update", "-r", &res_arg, "c1"]);
    assert!(
        err.contains("not OCI linux.resources JSON: invalid type"),
        "{err}"
    );
    // The RTOS's exit code is the monitor's exit status.
    con.send("exit 3\r");
    assert_eq!(rt.wait_exit(pid), 3);
    let st = rt.state("c1");
    assert_eq!(st["status"], "stopped", "{st}");
    assert_eq!(st["pid"], 0);
    let err = rt.fails(&["kill", "c1", "TERM"]);
    assert!(
        err.contains("kill c1: the container is not running"),
        "{err}"
    );
    rt.ok(&["delete", "c1"]);
    assert!(rt.entries().is_empty(), "{:?}", rt.entries());
    assert!(partition_pids(&b).is_empty());

    // kill TERM: a graceful stop through the agent, the firmware's code (0).
    let (mut con, pid) = rt.create("c2", &b);
    rt.ok(&["start", "c2"]);
    con.expect("> ", T_BOOT);
    rt.ok(&["kill", "c2", "TERM"]);
    assert_eq!(rt.wait_exit(pid), 0);
    rt.ok(&["delete", "c2"]);

    // kill KILL (by number): the partition is destroyed, 137.
    let (mut con, pid) = rt.create("c3", &b);
    rt.ok(&["start", "c3"]);
    con.expect("> ", T_BOOT);
    rt.ok(&["kill", "c3", "9"]);
    assert_eq!(rt.wait_exit(pid), 137);
    assert!(partition_pids(&b).is_empty());
    rt.ok(&["delete", "c3"]);

    // A firmware that ignores stop requests: forced after the grace time, 143.
    let stubborn = rt.bundle("stubborn", &["--ignore-stop"]);
    let (mut con, pid) = rt.create("c4", &stubborn);
    rt.ok(&["start", "c4"]);
    con.expect("> ", T_BOOT);
    let asked = Instant::now();
    rt.ok(&["kill", "c4", "SIGTERM"]);
    con.expect("stop ignored", T_ACT);
    assert_eq!(rt.wait_exit(pid), 143);
    assert!(asked.elapsed() >= Duration::from_secs(3));
    rt.ok(&["delete", "c4"]);

    // delete --force of a running container.
    let (mut con, pid) = rt.create("c5", &b);
    rt.ok(&["start", "c5"]);
    con.expect("> ", T_BOOT);
    let err = rt.fails(&["delete", "c5"]);
    assert!(
        err.contains("the container is running; stop it first"),
        "{err}"
    );
    rt.ok(&["delete", "--force", "c5"]);
    assert_eq!(rt.wait_exit(pid), 137);
    assert!(partition_pids(&b).is_empty());
    assert!(rt.entries().is_empty());

    // A monitor killed from outside: stopped; delete ends the partition it left.
    // The simulator ends by itself when its link closes; stopped (SIGSTOP) it
    // cannot, like a partition that outlives its monitor.
    let (mut con, pid) = rt.create("c6", &b);
    rt.ok(&["start", "c6"]);
    con.expect("> ", T_BOOT);
    let orphans = partition_pids(&b);
    assert_eq!(orphans.len(), 1);
    rt.pids.extend(&orphans);
    let signal = |pid: u32, s| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), s);
    signal(orphans[0], nix::sys::signal::Signal::SIGSTOP).unwrap();
    signal(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    assert_eq!(rt.wait_exit(pid), 137);
    assert_eq!(partition_pids(&b), orphans);
    assert_eq!(rt.state("c6")["status"], "stopped");
    rt.ok(&["delete", "c6"]);
    assert!(partition_pids(&b).is_empty());
    assert!(rt.entries().is_empty());
}

#[test]
fn cli_bad_input() {
    let _serial = serial();
    let rt = Rt::new("oci-bad", true);
    let b = rt.bundle("b", &[]);
    let create = |bundle: &Path, id: &str| {
        let out = rt
            .cmd()
            .args(["create", "--bundle"])
            .arg(bundle)
            .arg(id)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = create(&rt.dir.path().join("nope"), "x1");
    assert!(
        err.contains("create x1: bundle") && err.contains("nope"),
        "{err}"
    );
    // A bad config.json: the shim's message (file, line and column).
    let bad = rt.bundle("bad", &[]);
    fs::write(bad.join("config.json"), "{\"ociVersion\": 1,\n").unwrap();
    let err = create(&bad, "x2");
    assert!(
        err.contains("create x2: bundle") && err.contains("config.json"),
        "{err}"
    );
    assert!(err.contains("line"), "{err}");
    // A firmware that is not there.
    let empty = rt.bundle("empty", &[]);
    fs::remove_file(empty.join("rootfs/firmware.elf")).unwrap();
    let err = create(&empty, "x3");
    assert!(
        err.contains("create x3:") && err.contains("firmware"),
        "{err}"
    );
    assert!(
        err.contains("[pedestal sim, chosen by the annotation"),
        "{err}"
    );
    // sim not enabled in this config.
    let off = Rt::new("oci-bad-off", false);
    let out = off
        .cmd()
        .args(["create", "--bundle"])
        .arg(&b)
        .arg("x4")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("pedestal sim is not enabled"), "{err}");
    assert!(
        err.contains(&off.config.to_string_lossy().into_owned()),
        "{err}"
    );
    assert!(off.entries().is_empty());
    // Nothing is left of the failed creates.
    assert!(rt.entries().is_empty(), "{:?}", rt.entries());

    for (args, want) in [
        (vec!["state", "ghost"], "container ghost does not exist"),
        (vec!["start", "ghost"], "container ghost does not exist"),
        (
            vec!["kill", "ghost", "KILL"],
            "container ghost does not exist",
        ),
        (vec!["delete", "ghost"], "container ghost does not exist"),
        (vec!["kill", "ghost", "SIGNOPE"], "signal \"SIGNOPE\""),
        (vec!["start", "../up"], "container id \"../up\""),
        (vec!["create", "--bundle"], "--bundle needs a value"),
        (
            vec!["create", "--frob", "x"],
            "create: unknown flag \"--frob\"",
        ),
        (vec!["frob"], "unknown command \"frob\""),
        (
            vec!["exec", "c", "sh"],
            "exec is not supported by micrun's OCI runtime",
        ),
        (vec!["checkpoint", "c"], "checkpoint is not supported"),
        (vec!["restore", "c"], "restore is not supported"),
        (
            vec!["update", "--memory", "1M", "c"],
            "\"--memory\" is not supported",
        ),
    ] {
        let err = rt.fails(&args);
        assert!(err.contains(want), "{args:?}: {err:?} lacks {want:?}");
    }
    // As runc: --force of a container that is not there succeeds.
    rt.ok(&["delete", "--force", "ghost"]);
    // An id in use.
    let out = rt
        .cmd()
        .args(["create", "--bundle"])
        .arg(&b)
        .arg("dup")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(out.success());
    let st = rt.state("dup");
    let err = create(&b, "dup");
    assert!(err.contains("a container with this id exists"), "{err}");
    rt.ok(&["delete", "dup"]);
    let pid = st["pid"].as_u64().unwrap() as u32;
    assert!(
        micrun_shim::pedestal::proc_stat(pid).is_none_or(|s| s.ended()),
        "monitor {pid} still runs"
    );
    assert!(rt.entries().is_empty());
}

#[test]
fn cli_features_and_version() {
    let _serial = serial();
    let rt = Rt::new("oci-features", true);
    let doc: serde_json::Value = serde_json::from_str(&rt.ok(&["features"])).unwrap();
    assert_eq!(
        doc.to_string(),
        serde_json::from_str::<serde_json::Value>(
            &micrun_shim::annotations::runtime_features_json()
        )
        .unwrap()
        .to_string()
    );
    assert!(
        doc["annotations"]
            .as_object()
            .is_some_and(|a| a.keys().any(|k| k.starts_with("org.openeuler.micrun"))),
        "{doc}"
    );
    let out = Command::new(micrun_binary())
        .arg("--version")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("micrun version "), "{text}");
    assert!(text.contains("\nspec: 1.0.2"), "{text}");
}

/// podman with a store, run root and temp dir of its own, cgroupfs, a file for
/// its events and no network: nothing of the host's podman setup is used or
/// changed.
struct Podman {
    dir: TempDir,
    runtime: PathBuf,
}

impl Podman {
    fn new(rt: &Rt) -> Podman {
        let dir = TempDir::new("oci-podman");
        // podman 4.3.1 gives its `--runtime-flag`s to the commands it runs itself
        // but not to the `delete` of the cleanup process conmon starts, and conmon
        // clears the environment: a non-default --root or --config needs the
        // runtime path to carry them (docs/oci-runtime.md).
        let runtime = dir.path().join("micrun-runtime");
        fs::write(
            &runtime,
            format!(
                "#!/bin/sh\nexec {} --root {} --config {} \"$@\"\n",
                micrun_binary().display(),
                rt.root.display(),
                rt.config.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&runtime, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(
            dir.path().join("registries.conf"),
            "unqualified-search-registries = []\n",
        )
        .unwrap();
        fs::create_dir_all(dir.path().join("tmp")).unwrap();
        Podman { dir, runtime }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(d.join("storage"))
            .arg("--runroot")
            .arg(d.join("run"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file"])
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .arg("--runtime")
            .arg(&self.runtime)
            .args(args)
            .env("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf"));
        c
    }

    fn output(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        self.output_with(args, stdin, true)
    }

    /// `podman ARGS` with `stdin` written; stdin is closed then (`close_stdin`)
    /// or only once podman has ended (an attach that must not see EOF).
    fn output_with(&self, args: &[&str], stdin: Option<&[u8]>, close_stdin: bool) -> Output {
        let mut c = self.cmd(args);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap_or_else(|e| {
            panic!("podman: {e}; the OCI runtime tests need podman and conmon: run .ci/setup")
        });
        let mut input = child.stdin.take().unwrap();
        if let Some(bytes) = stdin {
            input.write_all(bytes).unwrap();
        }
        let input = if close_stdin {
            drop(input);
            None
        } else {
            Some(input)
        };
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let out = rx.recv_timeout(T_BOOT + T_ACT);
        drop(input);
        match out {
            Ok(out) => out.unwrap(),
            Err(_) => {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                panic!("podman {args:?} did not end")
            }
        }
    }

    /// `podman load` of the image's OCI archive.
    fn load(&self, image: &TestImage) {
        let archive = self.dir.path().join("image.tar");
        fs::write(&archive, image.tar.as_slice()).unwrap();
        let out = self.ok(&["load", "-i", &archive.to_string_lossy()]);
        assert!(out.contains("Loaded image"), "{out}");
        fs::remove_file(&archive).unwrap();
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.output(args, None);
        assert!(
            out.status.success(),
            "podman {args:?}: {} {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Whatever a failed check left: containers, then any process of ours.
        let _ = self.cmd(&["rm", "-a", "-f"]).output();
        for pid in processes_mentioning(&self.dir.path().to_string_lossy()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// What must be gone after a podman test: containers, processes of the runtime
/// (monitors, partitions) and podman's, state, mounts.
fn assert_nothing_left(rt: &Rt, pm: &Podman) {
    assert_eq!(pm.ok(&["ps", "-a", "-q"]).trim(), "");
    assert!(rt.entries().is_empty(), "{:?}", rt.entries());
    assert_eq!(
        processes_mentioning(&rt.root.to_string_lossy()),
        Vec::<u32>::new()
    );
    assert_eq!(
        processes_mentioning(&pm.dir.path().to_string_lossy()),
        Vec::<u32>::new()
    );
    assert_eq!(mounts_under(pm.dir.path()), Vec::<String>::new());
}

/// Mount points under `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| m.starts_with(&*dir.to_string_lossy()))
        .map(str::to_string)
        .collect()
}

#[test]
fn podman_runs_firmware() {
    let _serial = serial();
    let rt = Rt::new("oci-podman-rt", true);
    let pm = Podman::new(&rt);
    let image = sim_image("oci", false);
    pm.load(&image);
    let run = |extra: &[&'static str]| -> Vec<&str> {
        let mut a = vec!["run", "--network", "none"];
        a.extend_from_slice(extra);
        a.push(&image.name);
        a
    };

    // Console in and out, the RTOS's exit code as podman's.
    let out = pm.output(
        &run(&["--rm", "-i"]),
        Some(b"echo hi from podman\rexit 3\r"),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let what = format!("{stdout:?} {:?}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&banner(Ped::Sim)), "{what}");
    assert!(stdout.contains("hi from podman"), "{what}");
    assert_eq!(out.status.code(), Some(3), "{what}");

    // Detached with a terminal (the pty through --console-socket): logs, pause,
    // unpause, stop → the firmware's own exit code.
    pm.ok(&run(&["-d", "-t", "--name", "c1"]));
    let deadline = Instant::now() + T_BOOT;
    loop {
        let logs = pm.ok(&["logs", "c1"]);
        if logs.contains(&banner(Ped::Sim)) {
            break;
        }
        assert!(Instant::now() < deadline, "no banner in {logs:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    pm.ok(&["pause", "c1"]);
    assert_eq!(
        pm.ok(&["inspect", "-f", "{{.State.Status}}", "c1"]).trim(),
        "paused"
    );
    pm.ok(&["unpause", "c1"]);
    assert_eq!(
        pm.ok(&["inspect", "-f", "{{.State.Status}}", "c1"]).trim(),
        "running"
    );
    pm.ok(&["stop", "c1"]);
    assert_eq!(pm.ok(&["wait", "c1"]).trim(), "0");
    assert_eq!(
        pm.ok(&["inspect", "-f", "{{.State.ExitCode}}", "c1"])
            .trim(),
        "0"
    );
    pm.ok(&["rm", "c1"]);

    // attach: console input to a detached container; its exit code for wait.
    pm.ok(&run(&["-d", "-i", "--name", "c3"]));
    let out = pm.output_with(
        &["attach", "c3"],
        Some(b"echo attached here\rexit 4\r"),
        false,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("attached here"),
        "{stdout:?} {:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(pm.ok(&["wait", "c3"]).trim(), "4");
    pm.ok(&["rm", "c3"]);

    // A raw console (no agent): stop cannot ask the firmware, so it is forced: 143.
    let raw = sim_image("oci", true);
    pm.load(&raw);
    pm.ok(&["run", "--network", "none", "-d", "--name", "c4", &raw.name]);
    pm.ok(&["stop", "c4"]);
    assert_eq!(pm.ok(&["wait", "c4"]).trim(), "143");
    pm.ok(&["rm", "c4"]);

    // kill: the partition destroyed, 137.
    pm.ok(&run(&["-d", "--name", "c2"]));
    pm.ok(&["kill", "c2"]);
    assert_eq!(pm.ok(&["wait", "c2"]).trim(), "137");
    pm.ok(&["rm", "-f", "c2"]);

    assert_nothing_left(&rt, &pm);
}

#[test]
fn podman_runs_qemu_firmware() {
    let _serial = serial();
    // QEMU's sockets are in --root/<id>/ and podman's ids are 64 bytes: a short
    // root keeps them within the 107 bytes of a unix socket path.
    let rt = Rt::new("oq", true);
    let pm = Podman::new(&rt);
    let image = qemu_image("oci", false);
    pm.load(&image);
    // An arm64 image: the qemu pedestal boots it whatever the host's arch.
    let out = pm.output(
        &[
            "run",
            "--network",
            "none",
            "--rm",
            "-i",
            "--annotation",
            "org.openeuler.micrun.ped.pedestal=qemu",
            &image.name,
        ],
        Some(b"echo hi from qemu\rexit 3\r"),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let what = format!("{stdout:?} {:?}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&banner(Ped::Qemu)), "{what}");
    assert!(stdout.contains("hi from qemu"), "{what}");
    assert_eq!(out.status.code(), Some(3), "{what}");
    assert_nothing_left(&rt, &pm);
}
