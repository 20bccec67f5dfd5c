//! Proves the end-to-end test harness before micrun's shim exists: OCI image tars
//! built by `micrun_tests::oci` are imported into a private containerd
//! (`micrun_tests::containerd`) and run with Debian's runc shim
//! (`io.containerd.runc.v2`) standing in for `containerd-shim-mica-v2`.
//!
//! Needs root, `containerd`, `runc`, `gcc` with a static libc, and (for the
//! independent layout checks) `skopeo` and `umoci`: `.ci/setup` installs them.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use micrun_tests::containerd::{
    cgroup_dirs, sweep_stale, Containerd, TaskState, RUNC_ROOT, RUNC_RUNTIME, SHIM_SOCKET_DIR,
};
use micrun_tests::oci::{self, ImageBuilder};
use micrun_tests::TempDir;

const HELLO_C: &str = r#"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void on_signal(int sig) { _exit(128 + sig); }

/* hello [echo] [wait] [CODE]: greets, echoes one line of stdin with `echo`,
   waits for a signal with `wait` (exits 128+signal: as PID 1 of its pid
   namespace it would otherwise ignore SIGTERM), exits with CODE. */
int main(int argc, char **argv) {
    int code = 0, echo = 0, wait = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "echo") == 0) echo = 1;
        else if (strcmp(argv[i], "wait") == 0) wait = 1;
        else code = atoi(argv[i]);
    }
    printf("hello from runc\n");
    fflush(stdout);
    if (echo) {
        char line[256];
        if (fgets(line, sizeof line, stdin)) {
            printf("echo: %s", line);
            fflush(stdout);
        }
    }
    if (wait) {
        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
        for (;;) pause();
    }
    return code;
}
"#;

const IMAGE: &str = "localhost/micrun/hello:test";

/// The static hello binary, compiled once per test process.
fn hello_binary() -> &'static [u8] {
    static BIN: OnceLock<Vec<u8>> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = TempDir::new("hello-c");
        let src = dir.path().join("hello.c");
        std::fs::write(&src, HELLO_C).unwrap();
        let out = dir.path().join("hello");
        let r = Command::new("gcc")
            .args(["-static", "-O2", "-o"])
            .arg(&out)
            .arg(&src)
            .output()
            .expect("run gcc");
        assert!(
            r.status.success(),
            "gcc -static failed: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        std::fs::read(&out).unwrap()
    })
}

fn hello_image() -> ImageBuilder {
    ImageBuilder::new(IMAGE)
        .platform("linux", oci::host_arch())
        .file("/hello", hello_binary(), 0o755)
        .symlink("/bin/hello", "../hello")
        .file("/etc/motd", b"micrun harness\n".to_vec(), 0o644)
        .label("org.openeuler.micrun.test", "harness")
        .env("PATH", "/bin")
        .entrypoint(["/hello"])
        .cmd(["0"])
}

/// Writes the hello image tar into `dir`.
fn hello_tar(dir: &Path) -> (PathBuf, oci::Image) {
    let tar = dir.join("hello.tar");
    let image = hello_image().write_tar(&tar).unwrap();
    (tar, image)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// What a dropped daemon must have left: no process, no temp dir, none of its
/// shim sockets, no runc state of its namespaces.
struct Footprint {
    daemon_pid: u32,
    shim_pids: Vec<u32>,
    dir: PathBuf,
    sockets: Vec<PathBuf>,
    runc_dirs: Vec<PathBuf>,
    namespaces: Vec<String>,
}

impl Footprint {
    fn of(cd: &Containerd, namespaces: &[&str]) -> Footprint {
        Footprint {
            daemon_pid: cd.pid().expect("daemon runs"),
            shim_pids: cd.shim_pids(),
            dir: cd.dir().to_path_buf(),
            sockets: cd.shim_sockets(),
            runc_dirs: namespaces
                .iter()
                .map(|ns| Path::new(RUNC_ROOT).join(ns))
                .collect(),
            namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn assert_gone(&self) {
        for pid in std::iter::once(self.daemon_pid).chain(self.shim_pids.iter().copied()) {
            // Gone, or a zombie waiting for a reaper that is not us (a shim is
            // re-parented to init).
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next();
            assert!(
                stat.is_empty() || state == Some("Z"),
                "process {pid} still alive after drop: {stat}"
            );
        }
        assert!(!self.dir.exists(), "{:?} still exists", self.dir);
        for s in &self.sockets {
            assert!(s.starts_with(SHIM_SOCKET_DIR), "{s:?}");
            assert!(
                std::fs::symlink_metadata(s).is_err(),
                "shim socket {s:?} still exists"
            );
        }
        for d in &self.runc_dirs {
            assert!(!d.exists(), "runc state {d:?} still exists");
        }
        for ns in &self.namespaces {
            assert_eq!(cgroup_dirs(ns), Vec::<PathBuf>::new(), "cgroups left");
        }
        // No process anywhere mentions the daemon's dir (shims carry `-address`).
        let needle = self.dir.as_os_str().as_bytes();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            assert!(
                !cmdline.windows(needle.len()).any(|w| w == needle),
                "process {:?} still refers to {:?}: {}",
                e.file_name(),
                self.dir,
                text(&cmdline).replace('\0', " ")
            );
        }
    }
}

#[test]
fn image_layout_is_deterministic_and_consistent() {
    let a = hello_image().build().unwrap();
    let b = hello_image().build().unwrap();
    assert_eq!(a, b, "same input, same blobs");
    assert_eq!(a.to_tar().unwrap(), b.to_tar().unwrap(), "same tar bytes");
    assert_eq!(a.tag, "test");

    let index: serde_json::Value = serde_json::from_slice(&a.index).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], oci::MEDIA_TYPE_INDEX);
    let desc = &index["manifests"][0];
    assert_eq!(desc["mediaType"], oci::MEDIA_TYPE_MANIFEST);
    assert_eq!(desc["digest"], a.manifest_digest.as_str());
    assert_eq!(desc["size"], a.manifest().len());
    assert_eq!(desc["platform"]["os"], "linux");
    assert_eq!(desc["platform"]["architecture"], oci::host_arch());
    assert_eq!(desc["annotations"][oci::ANNOTATION_CONTAINERD_NAME], IMAGE);
    assert_eq!(desc["annotations"][oci::ANNOTATION_REF_NAME], "test");

    // Every blob is stored under its own digest.
    for (digest, data) in &a.blobs {
        assert_eq!(&oci::sha256(data), digest);
    }
    let manifest: serde_json::Value = serde_json::from_slice(a.manifest()).unwrap();
    assert_eq!(manifest["config"]["mediaType"], oci::MEDIA_TYPE_CONFIG);
    assert_eq!(manifest["config"]["digest"], a.config_digest.as_str());
    assert_eq!(manifest["config"]["size"], a.config().len());
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        oci::MEDIA_TYPE_LAYER_GZIP
    );
    assert_eq!(manifest["layers"][0]["digest"], a.layer_digest.as_str());
    assert_eq!(manifest["layers"][0]["size"], a.layer().len());

    let config: serde_json::Value = serde_json::from_slice(a.config()).unwrap();
    assert_eq!(config["os"], "linux");
    assert_eq!(config["config"]["Entrypoint"][0], "/hello");
    assert_eq!(
        config["config"]["Labels"]["org.openeuler.micrun.test"],
        "harness"
    );
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(a.layer())
        .read_to_end(&mut raw)
        .unwrap();
    assert_eq!(config["rootfs"]["diff_ids"][0], oci::sha256(&raw).as_str());
    assert_eq!(a.layer_diff_id, oci::sha256(&raw));

    // The layer: parents before children, fixed metadata, the given modes.
    let mut seen = Vec::new();
    let mut ar = tar::Archive::new(raw.as_slice());
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        assert_eq!(h.mtime().unwrap(), 0);
        assert_eq!(h.uid().unwrap(), 0);
        seen.push((
            e.path().unwrap().to_string_lossy().into_owned(),
            h.entry_type(),
            h.mode().unwrap(),
        ));
    }
    let names: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        names,
        ["bin/", "bin/hello", "etc/", "etc/motd", "hello"],
        "{seen:?}"
    );
    assert_eq!(seen[4].1, tar::EntryType::Regular);
    assert_eq!(seen[4].2, 0o755);
    assert_eq!(seen[1].1, tar::EntryType::Symlink);

    // A different input, a different digest; the zephyr platform is recorded.
    let z = hello_image().platform("zephyr", "arm64").build().unwrap();
    assert_ne!(z.manifest_digest, a.manifest_digest);
    let zi: serde_json::Value = serde_json::from_slice(&z.index).unwrap();
    assert_eq!(zi["manifests"][0]["platform"]["os"], "zephyr");
    assert_eq!(zi["manifests"][0]["platform"]["architecture"], "arm64");
}

#[test]
#[should_panic(expected = "/a is not a directory")]
fn image_path_below_a_file_is_refused() {
    let _ = ImageBuilder::new("localhost/x:y")
        .file("/a", b"file".to_vec(), 0o644)
        .file("/a/b", b"below a file".to_vec(), 0o644);
}

#[test]
#[should_panic(expected = "without `..`")]
fn image_path_with_dotdot_is_refused() {
    let _ = ImageBuilder::new("localhost/x:y").file("/../etc/passwd", b"x".to_vec(), 0o644);
}

/// skopeo and umoci (independent implementations) read our layout tar.
#[test]
fn skopeo_and_umoci_read_the_layout() {
    let have = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have("skopeo") || !have("umoci") {
        assert!(
            std::env::var_os("CI").is_none(),
            "skopeo and umoci must be installed in CI (.ci/setup)"
        );
        eprintln!("NOTE: skopeo or umoci not installed: independent layout checks skipped");
        return;
    }
    let dir = TempDir::new("oci-xcheck");
    let (tar, image) = hello_tar(dir.path());

    let out = Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci-archive:{}", tar.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo: {}", text(&out.stderr));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["Digest"], image.manifest_digest.as_str());
    assert_eq!(info["Os"], "linux");
    assert_eq!(info["Architecture"], oci::host_arch());
    assert_eq!(info["Labels"]["org.openeuler.micrun.test"], "harness");
    assert_eq!(info["Layers"][0], image.layer_digest.as_str());

    // umoci works on a layout directory; unpack by the ref.name tag.
    let layout = dir.path().join("layout");
    std::fs::create_dir(&layout).unwrap();
    tar::Archive::new(std::fs::File::open(&tar).unwrap())
        .unpack(&layout)
        .unwrap();
    let bundle = dir.path().join("bundle");
    let out = Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:test", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(out.status.success(), "umoci unpack: {}", text(&out.stderr));
    let rootfs = bundle.join("rootfs");
    assert_eq!(std::fs::read(rootfs.join("hello")).unwrap(), hello_binary());
    let mode = std::fs::metadata(rootfs.join("hello"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755);
    assert_eq!(
        std::fs::read_link(rootfs.join("bin/hello")).unwrap(),
        Path::new("../hello")
    );
    assert_eq!(
        std::fs::read(rootfs.join("etc/motd")).unwrap(),
        b"micrun harness\n"
    );
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["process"]["args"], serde_json::json!(["/hello", "0"]));
}

/// Import, then `ctr run --rm` in the foreground: output, stdin and exit status.
#[test]
fn run_foreground_with_runc() {
    let cd = Containerd::shared().unwrap();
    let ns = cd.namespace("fg");
    let dir = TempDir::new("fg");
    let (tar, image) = hello_tar(dir.path());
    ns.import(&tar).unwrap();
    assert_eq!(ns.images().unwrap(), [IMAGE]);
    // The image's digest in containerd is our manifest's.
    let ls = text(&ns.ctr_ok(&["images", "ls"]).unwrap().stdout);
    assert!(ls.contains(&image.manifest_digest), "{ls}");

    let sys_fifo = Path::new("/run/containerd/fifo");
    let sys_fifo_existed = sys_fifo.exists();
    let out = ns.run(IMAGE, "hello-0", RUNC_RUNTIME, &[], &[], None);
    assert_eq!(
        text(&out.stdout),
        "hello from runc\n",
        "{}",
        text(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let out = ns.run(
        IMAGE,
        "hello-7",
        RUNC_RUNTIME,
        &[],
        &["/hello", "echo", "7"],
        Some(b"ping\n"),
    );
    assert_eq!(
        text(&out.stdout),
        "hello from runc\necho: ping\n",
        "{}",
        text(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(7));

    // `--rm` left no task and no container; ctr made its FIFOs in our fifo dir
    // (not /run/containerd/fifo) and removed them.
    assert!(ns.tasks().unwrap().is_empty());
    assert!(text(&ns.ctr_ok(&["containers", "ls", "-q"]).unwrap().stdout).is_empty());
    let mut left = Vec::new();
    for d in std::fs::read_dir(cd.fifo_dir()).unwrap().flatten() {
        for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
            if f.file_name().to_string_lossy().starts_with("hello-") {
                left.push(f.path());
            }
        }
    }
    assert!(left.is_empty(), "ctr left fifos: {left:?}");
    assert!(
        sys_fifo_existed || !sys_fifo.exists(),
        "ctr used {sys_fifo:?}"
    );
}

/// `run -d`, `task kill -s SIGTERM` → STOPPED with status 143.
#[test]
fn detached_task_is_killed_with_sigterm() {
    let cd = Containerd::shared().unwrap();
    let ns = cd.namespace("kill");
    let dir = TempDir::new("kill");
    let (tar, _) = hello_tar(dir.path());
    ns.import(&tar).unwrap();
    let events = cd.events().unwrap();

    ns.run_detached(IMAGE, "sleeper", RUNC_RUNTIME, &[], &["/hello", "wait"])
        .unwrap();
    ns.wait_state("sleeper", TaskState::Running, Duration::from_secs(10))
        .unwrap();
    let info = ns.tasks().unwrap();
    assert_eq!(info.len(), 1);
    assert!(info[0].pid > 0, "{info:?}");
    // The shim's socket is recorded, and it is one (outside our temp dir).
    let sockets = cd.shim_sockets();
    assert!(
        sockets
            .iter()
            .any(|s| std::fs::symlink_metadata(s).is_ok_and(|m| m.file_type().is_socket())),
        "{sockets:?}"
    );

    ns.kill("sleeper", "SIGTERM").unwrap();
    ns.wait_state("sleeper", TaskState::Stopped, Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        events
            .wait_exit(ns.name(), "sleeper", Duration::from_secs(5))
            .unwrap(),
        143
    );
    assert_eq!(
        ns.wait_exit("sleeper", Duration::from_secs(5)).unwrap(),
        143
    );
    assert_eq!(ns.task_state("sleeper").unwrap(), None);
    ns.delete("sleeper").unwrap();
    assert!(text(&ns.ctr_ok(&["containers", "ls", "-q"]).unwrap().stdout).is_empty());
    events
        .wait_for(Duration::from_secs(5), "/containers/delete", |e| {
            e.namespace == ns.name() && e.topic == "/containers/delete"
        })
        .unwrap();
    assert_eq!(
        events.topics(ns.name(), "sleeper"),
        [
            "/containers/create",
            "/tasks/create",
            "/tasks/start",
            "/tasks/exit",
            "/tasks/delete",
            "/containers/delete"
        ]
    );
}

/// A zephyr/arm64 image (what micrun's firmware images are) imports with
/// `--all-platforms` and keeps its platform.
#[test]
fn non_linux_platform_imports() {
    let cd = Containerd::shared().unwrap();
    let ns = cd.namespace("zephyr");
    let dir = TempDir::new("zephyr");
    let tar = dir.path().join("fw.tar");
    let image = ImageBuilder::new("localhost/micrun/sim:test")
        .platform("zephyr", "arm64")
        .file("/firmware.elf", b"\x7fELF not really".to_vec(), 0o755)
        .label("org.openeuler.micrun.ped.pedestal", "sim")
        .entrypoint(["/firmware.elf"])
        .write_tar(&tar)
        .unwrap();
    ns.import(&tar).unwrap();
    assert_eq!(ns.images().unwrap(), ["localhost/micrun/sim:test"]);
    let ls = text(&ns.ctr_ok(&["images", "ls"]).unwrap().stdout);
    assert!(ls.contains(&image.manifest_digest), "{ls}");
    assert!(ls.contains("zephyr/arm64"), "{ls}");
}

/// A live shim survives a containerd restart; the task is still RUNNING and can
/// be managed after it. Then drop cleans up everything, including a task left
/// running on purpose in a second namespace.
#[test]
fn restart_keeps_running_task_and_drop_cleans_up() {
    let started = Instant::now();
    let cd = Containerd::start().unwrap();
    let dir = TempDir::new("restart");
    let (tar, _) = hello_tar(dir.path());
    let ns = cd.namespace("restart");
    ns.import(&tar).unwrap();
    ns.run_detached(IMAGE, "survivor", RUNC_RUNTIME, &[], &["/hello", "wait"])
        .unwrap();
    ns.wait_state("survivor", TaskState::Running, Duration::from_secs(10))
        .unwrap();
    let task_pid = ns.tasks().unwrap()[0].pid;
    let before = cd.pid().unwrap();
    let shims = cd.shim_pids();
    assert_eq!(shims.len(), 1, "one shim: {shims:?}");

    let t = Instant::now();
    cd.restart().unwrap();
    eprintln!("containerd restart took {:?}", t.elapsed());
    assert_ne!(cd.pid().unwrap(), before, "a new daemon process");
    assert_eq!(
        ns.task_state("survivor").unwrap(),
        Some(TaskState::Running),
        "task after restart; log:\n{}",
        cd.log_tail(30)
    );
    assert_eq!(ns.tasks().unwrap()[0].pid, task_pid, "same task process");
    assert_eq!(cd.shim_pids(), shims, "same shim");
    // The reconnected shim still obeys.
    ns.kill("survivor", "SIGKILL").unwrap();
    assert_eq!(
        ns.wait_exit("survivor", Duration::from_secs(10)).unwrap(),
        137
    );

    // Leave a running task in another namespace for Drop to clean.
    let ns2 = cd.namespace("left-running");
    ns2.import(&tar).unwrap();
    ns2.run_detached(IMAGE, "orphan", RUNC_RUNTIME, &[], &["/hello", "wait"])
        .unwrap();
    ns2.wait_state("orphan", TaskState::Running, Duration::from_secs(10))
        .unwrap();
    let names = [ns.name().to_string(), ns2.name().to_string()];
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let orphan_pid = ns2.tasks().unwrap()[0].pid;
    std::mem::forget(ns2); // as if the test had lost track of it
    drop(ns);
    let fp = Footprint::of(&cd, &names);
    assert_eq!(fp.shim_pids.len(), 1, "the orphan's shim");
    let t = Instant::now();
    drop(cd);
    eprintln!("drop with a running task took {:?}", t.elapsed());
    fp.assert_gone();
    assert!(
        !Path::new(&format!("/proc/{orphan_pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{orphan_pid}/stat"))
                .is_ok_and(|s| s.contains(") Z ")),
        "the orphan task process {orphan_pid} still runs"
    );
    eprintln!("restart test took {:?}", started.elapsed());
}

/// A test that panics midway with a running task leaves nothing behind.
#[test]
fn panic_midway_cleans_up() {
    let fp = std::sync::Mutex::new(None);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let cd = Containerd::start().unwrap();
        let dir = TempDir::new("panic");
        let (tar, _) = hello_tar(dir.path());
        let ns = cd.namespace("panic");
        ns.import(&tar).unwrap();
        ns.run_detached(IMAGE, "doomed", RUNC_RUNTIME, &[], &["/hello", "wait"])
            .unwrap();
        ns.wait_state("doomed", TaskState::Running, Duration::from_secs(10))
            .unwrap();
        *fp.lock().unwrap() = Some(Footprint::of(&cd, &[ns.name()]));
        panic!("deliberate panic with a running task");
    }));
    assert!(r.is_err());
    let fp = fp.into_inner().unwrap().expect("footprint recorded");
    assert!(!fp.shim_pids.is_empty());
    fp.assert_gone();
}

/// Failures carry the daemon's log and the ctr output.
#[test]
fn errors_are_explained() {
    let cd = Containerd::shared().unwrap();
    let ns = cd.namespace("errors");
    let e = ns.import(Path::new("/nonexistent/image.tar")).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("images import"), "{msg}");
    assert!(msg.contains("containerd log (tail)"), "{msg}");
    let e = ns.kill("no-such-task", "SIGTERM").unwrap_err();
    assert!(e.to_string().contains("no-such-task"), "{e}");
    let out = ns.run("localhost/none:x", "x", RUNC_RUNTIME, &[], &[], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not found"),
        "{}",
        text(&out.stderr)
    );
    // Nothing was created.
    let mut counts = BTreeMap::new();
    for what in ["tasks", "containers"] {
        counts.insert(what, ns.ctr_ok(&[what, "ls", "-q"]).unwrap().stdout.len());
    }
    assert_eq!(counts.values().sum::<usize>(), 0, "{counts:?}");
}

/// Starts a daemon with a task running in a namespace; returns what must vanish.
fn daemon_with_task(tag: &str) -> (Containerd, Footprint, u32) {
    let cd = Containerd::start().unwrap();
    let dir = TempDir::new(tag);
    let (tar, _) = hello_tar(dir.path());
    let ns = cd.namespace(tag);
    ns.import(&tar).unwrap();
    ns.run_detached(IMAGE, "t", RUNC_RUNTIME, &[], &["/hello", "wait"])
        .unwrap();
    ns.wait_state("t", TaskState::Running, Duration::from_secs(10))
        .unwrap();
    let task_pid = ns.tasks().unwrap()[0].pid;
    let fp = Footprint::of(&cd, &[ns.name()]);
    assert_eq!(fp.shim_pids.len(), 1);
    assert!(!cgroup_dirs(ns.name()).is_empty(), "the task's cgroups");
    std::mem::forget(ns); // cleanup is left to the daemon's Drop
    (cd, fp, task_pid)
}

fn assert_process_gone(pid: u32) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z "),
        "process {pid} still runs: {stat}"
    );
}

/// The daemon died (SIGKILL) under a live shim: Drop starts it again to clean up
/// through it.
#[test]
fn drop_after_daemon_died() {
    let (cd, fp, task_pid) = daemon_with_task("daemon-died");
    let pid = cd.pid().unwrap();
    // SAFETY: kill(2) on the daemon this test started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while cd.is_running() {
        assert!(Instant::now() < deadline, "daemon survived SIGKILL");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(cd);
    fp.assert_gone();
    assert_process_gone(task_pid);
}

/// The daemon died and cannot start again: Drop kills the shim and its workload
/// by PID, unmounts the rootfs left under the temp dir, removes the shim socket,
/// runc's state and the cgroups by exact path.
#[test]
fn drop_without_a_daemon_falls_back_to_pids() {
    let (cd, fp, task_pid) = daemon_with_task("no-daemon");
    std::fs::write(cd.config_path(), "this is not toml [").unwrap();
    let pid = cd.pid().unwrap();
    // SAFETY: kill(2) on the daemon this test started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let mounted = |dir: &Path| {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(dir.to_str().unwrap())
    };
    assert!(
        mounted(&fp.dir),
        "the task's rootfs is mounted under the temp dir"
    );
    let dir = fp.dir.clone();
    drop(cd);
    fp.assert_gone();
    assert_process_gone(task_pid);
    assert!(!mounted(&dir), "mounts left under {dir:?}");
}

/// The child half of `sweep_cleans_up_after_a_killed_test_process` (the same
/// test, re-run in a child process with `MICRUN_HARNESS_CHILD` set): leaves a
/// daemon with a running task, reports it, and waits to be SIGKILLed.
fn child_killed_with_a_running_task() -> ! {
    let (cd, fp, task_pid) = daemon_with_task("killed");
    let report = serde_json::json!({
        "daemon": fp.daemon_pid,
        "shims": fp.shim_pids,
        "dir": fp.dir,
        "sockets": fp.sockets,
        "namespaces": fp.namespaces,
        "task": task_pid,
    });
    println!("READY {report}");
    std::mem::forget(cd);
    loop {
        std::thread::park();
    }
}

/// A test process killed with SIGKILL cannot clean up; the next harness run does:
/// `sweep_stale` finds the dead process's temp dir, namespaces and cgroups by
/// name, kills its orphaned daemon, shim and workload by PID, and removes the rest.
#[test]
fn sweep_cleans_up_after_a_killed_test_process() {
    use std::io::BufRead;
    if std::env::var_os("MICRUN_HARNESS_CHILD").is_some() {
        child_killed_with_a_running_task();
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sweep_cleans_up_after_a_killed_test_process",
            "--nocapture",
        ])
        .env("MICRUN_HARNESS_CHILD", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(r) = line.strip_prefix("READY ") {
                let _ = tx.send(r.to_string());
            }
        }
    });
    let report = rx.recv_timeout(Duration::from_secs(60));
    child.kill().unwrap();
    child.wait().unwrap();
    let report: serde_json::Value = serde_json::from_str(&report.expect("child's report")).unwrap();
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect()
    };
    let namespaces = strings(&report["namespaces"]);
    let fp = Footprint {
        daemon_pid: report["daemon"].as_u64().unwrap() as u32,
        shim_pids: report["shims"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_u64().unwrap() as u32)
            .collect(),
        dir: PathBuf::from(report["dir"].as_str().unwrap()),
        sockets: strings(&report["sockets"])
            .into_iter()
            .map(PathBuf::from)
            .collect(),
        runc_dirs: namespaces
            .iter()
            .map(|ns| Path::new(RUNC_ROOT).join(ns))
            .collect(),
        namespaces,
    };
    let task_pid = report["task"].as_u64().unwrap() as u32;
    // The orphans live on after their test process died.
    assert!(Path::new(&format!("/proc/{}", fp.daemon_pid)).exists());
    assert!(fp.dir.exists());
    let purged = sweep_stale();
    assert!(purged.contains(&fp.dir), "{purged:?}");
    fp.assert_gone();
    assert_process_gone(task_pid);
}
