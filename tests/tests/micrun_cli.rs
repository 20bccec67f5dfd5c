//! `micrun check`, `micrun config`, `--help`/`--version` and `image pack
//! --hypervisor`, run as the real `micrun` binary (docs/cli.md).
//!
//! Each host is a temp dir the micrun config points every path into (micad's
//! socket dir, the Xen marker, sysfs, the device tree, the QEMU binary), and
//! `micrun` runs with `PATH` set to an empty dir of that host, so nothing of the
//! machine's leaks in except what a test puts there: the micad emulator, a
//! listener that never answers, the remoteproc stand-in, the real
//! `qemu-system-aarch64`. The shim is built beside `micrun` (as a release puts
//! them), so `check` finds it there and runs its `-v`.
//!
//! | tests | what |
//! |---|---|
//! | `check_on_a_host_with_nothing` | exit 1; the JSON gives each check's result and each pedestal's reason; the table says what to install |
//! | `check_with_a_silent_micad` | a listener that accepts and never answers: micad `silent`, xen and baremetal not usable, within the 1 s probe bound |
//! | `check_with_micad_answering` | the micad emulator: baremetal usable through micad, then with the Xen marker xen too, and the default pedestal follows |
//! | `check_with_remoteproc_cores` | the remoteproc stand-in: baremetal through remoteproc, each core with its name and state |
//! | `check_with_qemu` | the real `qemu-system-aarch64`: qemu usable with its `--version` line; the default pedestal is qemu |
//! | `check_reads_containerd_config` | registered (v2 and v3 formats, handler names), not registered, absent, unparsable |
//! | `check_with_a_bad_config` | the shim's own error, exit 1 |
//! | `config_check_gives_the_shims_errors` | good file → `FILE: ok`; bad files → exactly `Config::load_from`'s message; a missing file |
//! | `config_round_trips` | `micrun config` output is accepted back and gives the same configuration, for defaults and a file that changes every section |
//! | `help_and_version` | `--help` on every subcommand, `--version`, usage errors exit 2 |
//! | `pack_takes_hypervisor_for_pedestal` | `--hypervisor sim` packs the same image as `--pedestal sim`; both given is an error |

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use micrun_shim::config::Config;
use micrun_tests::e2e::{micrun_binary, shim_binary, sim_firmware_bytes};
use micrun_tests::micad::{MicadEmulator, Options as MicadOptions};
use micrun_tests::remoteproc::FakeRemoteproc;
use micrun_tests::TempDir;
use serde_json::Value;

/// A host in a temp dir: the micrun config at `<dir>/micrun.toml` points every
/// path into it; `<dir>/bin` is `micrun`'s whole `PATH`.
struct Host {
    dir: TempDir,
    default_pedestal: String,
    extra: String,
    qemu_binary: String,
}

impl Host {
    fn new(tag: &str) -> Host {
        let dir = TempDir::new(&format!("cli-{tag}"));
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::create_dir_all(dir.path().join("mica")).unwrap();
        let qemu_binary = dir.path().join("no-qemu").display().to_string();
        Host {
            dir,
            default_pedestal: "auto".into(),
            extra: String::new(),
            qemu_binary,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn config_file(&self) -> PathBuf {
        self.path().join("micrun.toml")
    }

    fn write_config(&self) {
        let d = self.path().display();
        let text = format!(
            r#"default_pedestal = "{p}"
state_dir = "{d}/state"
[board]
compatible = "{d}/dt-compatible"
[qemu]
binary = "{q}"
[mica]
dir = "{d}/mica"
[xen]
detect = "{d}/proc-xen"
xl = "xl"
xenstore_read = "xenstore-read"
[baremetal]
sysfs = "{d}/sys"
{extra}"#,
            p = self.default_pedestal,
            q = self.qemu_binary,
            extra = self.extra
        );
        std::fs::write(self.config_file(), text).unwrap();
    }

    /// Runs `micrun ARGS` with this host's `PATH`.
    fn micrun(&self, args: &[&str]) -> Output {
        micrun_in(self.path(), &self.path().join("bin"), args)
    }

    /// `micrun check --json` with this host's config and `containerd` (default: a
    /// file that does not exist); the exit status and the JSON.
    fn check(&self, containerd: Option<&Path>) -> (i32, Value) {
        self.write_config();
        let config = self.config_file();
        let cd =
            containerd.map_or_else(|| self.path().join("no-containerd.toml"), Path::to_path_buf);
        let out = self.micrun(&[
            "check",
            "--json",
            "--config",
            config.to_str().unwrap(),
            "--containerd-config",
            cd.to_str().unwrap(),
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let json: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "check --json printed no JSON ({e}): {stdout}\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().expect("micrun exited"), json)
    }
}

/// Runs the `micrun` binary (built beside the shim) in `dir` with `PATH` = `path`.
fn micrun_in(dir: &Path, path: &Path, args: &[&str]) -> Output {
    // The shim beside micrun, as a release installs them.
    shim_binary();
    Command::new(micrun_binary())
        .args(args)
        .current_dir(dir)
        .env("PATH", path)
        .env_remove("MICRUN_CONFIG")
        .output()
        .expect("run micrun")
}

fn pedestal<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["pedestals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no pedestal {name} in {json:#}"))
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("{v} is not a string"))
}

#[test]
fn check_on_a_host_with_nothing() {
    let host = Host::new("nothing");
    let (code, json) = host.check(None);
    assert_eq!(code, 1, "{json:#}");
    assert_eq!(json["schema"], 1);
    assert_eq!(json["ok"], false);
    assert!(text(&json["advice"]).contains("Install QEMU"), "{json:#}");
    assert_eq!(json["usable"], serde_json::json!([]));
    let checks = &json["checks"];
    assert_eq!(checks["micad"]["result"], "missing", "{json:#}");
    assert!(text(&checks["micad"]["detail"]).contains("mica-create.socket does not exist"));
    assert_eq!(checks["xen_marker"]["exists"], false);
    assert!(text(&checks["xen_marker"]["path"]).ends_with("proc-xen"));
    assert_eq!(checks["xl"]["path"], Value::Null);
    assert!(text(&checks["xl"]["error"]).contains("xl not found in PATH"));
    assert_eq!(checks["remoteproc"]["processors"], serde_json::json!([]));
    let qemu = checks["qemu"].as_array().unwrap();
    let archs: Vec<&str> = qemu.iter().map(|q| text(&q["arch"])).collect();
    assert_eq!(archs, ["aarch64", "arm", "riscv64"]);
    for q in qemu {
        assert_eq!(q["path"], Value::Null, "{q}");
        assert!(q["error"].is_string(), "{q}");
    }
    assert_eq!(checks["sim"]["enabled"], false);
    for (name, why) in [
        ("xen", "the Xen marker"),
        ("baremetal", "no remote processor under"),
        ("qemu", "no-qemu not found"),
        ("sim", "[sim] enable is false"),
    ] {
        let p = pedestal(&json, name);
        assert_eq!(p["usable"], false, "{p}");
        assert_eq!(p["driver"], Value::Null, "{p}");
        assert!(text(&p["why"]).contains(why), "{name}: {why:?} not in {p}");
    }
    assert_eq!(json["default_pedestal"]["pedestal"], Value::Null);
    assert!(text(&json["default_pedestal"]["error"]).contains("no pedestal is available"));
    assert_eq!(json["config"]["status"], "parsed");
    assert_eq!(json["board"]["source"], "unknown");
    assert_eq!(json["containerd"]["status"], "absent");
    assert_eq!(json["shim"]["found_by"], "beside micrun");
    assert_eq!(json["shim"]["on_path"], Value::Null);
    assert!(
        text(&json["shim"]["version"]).starts_with("io.containerd.mica.v2 (micrun "),
        "{}",
        json["shim"]
    );

    // The table: the same verdicts, and what to do.
    let out = host.micrun(&[
        "check",
        "--config",
        host.config_file().to_str().unwrap(),
        "--containerd-config",
        host.path().join("none.toml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("PEDESTAL   USABLE  DRIVER"), "{table}");
    for line in [
        "xen        no",
        "baremetal  no",
        "qemu       no",
        "sim        no",
    ] {
        assert!(table.contains(line), "{line:?} not in {table}");
    }
    assert!(table.contains("no pedestal is usable"), "{table}");
    assert!(table.contains("qemu-system-arm"), "{table}");
}

/// Accepts connections at `path` and holds them without a word until dropped.
struct SilentListener {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SilentListener {
    fn start(path: &Path) -> SilentListener {
        let listener = UnixListener::bind(path).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut held = Vec::new();
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Ok(c) = conn {
                        held.push(c);
                    }
                }
            })
        };
        SilentListener {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for SilentListener {
    fn drop(&mut self) {
        // Wakes the accept loop, which then ends and closes what it held.
        self.stop.store(true, Ordering::SeqCst);
        drop(UnixStream::connect(&self.path));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

#[test]
fn check_with_a_silent_micad() {
    let host = Host::new("silent");
    let _l = SilentListener::start(&host.path().join("mica/mica-create.socket"));
    let t = Instant::now();
    let (code, json) = host.check(None);
    let took = t.elapsed();
    assert_eq!(code, 1, "{json:#}");
    let micad = &json["checks"]["micad"];
    assert_eq!(micad["result"], "silent", "{micad}");
    assert!(
        text(&micad["detail"]).contains("did not answer within 1s"),
        "{micad}"
    );
    for name in ["xen", "baremetal"] {
        let p = pedestal(&json, name);
        assert_eq!(p["usable"], false, "{p}");
        assert!(text(&p["why"]).contains("no micad"), "{p}");
    }
    // One probe of at most 1 s, nothing else that waits.
    assert!(took < Duration::from_millis(1800), "check took {took:?}");
}

#[test]
fn check_with_micad_answering() {
    let mut host = Host::new("micad");
    let _micad = MicadEmulator::start(
        &host.path().join("mica"),
        MicadOptions::new(host.path().join("dev")),
    )
    .unwrap();
    let (code, json) = host.check(None);
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["advice"], Value::Null);
    assert_eq!(json["checks"]["micad"]["result"], "answering");
    let bm = pedestal(&json, "baremetal");
    assert_eq!(bm["usable"], true, "{bm}");
    assert_eq!(bm["driver"], "micad");
    assert!(text(&bm["why"]).contains("micad answered at"), "{bm}");
    let xen = pedestal(&json, "xen");
    assert_eq!(xen["usable"], false, "{xen}");
    assert!(text(&xen["why"]).contains("Xen marker"), "{xen}");
    assert_eq!(json["usable"], serde_json::json!(["baremetal"]));
    assert_eq!(json["default_pedestal"]["pedestal"], "baremetal");
    assert!(
        text(&json["default_pedestal"]["chosen_by"]).starts_with("host detection: micad: answered")
    );

    std::fs::create_dir_all(host.path().join("proc-xen")).unwrap();
    let (_, json) = host.check(None);
    assert_eq!(pedestal(&json, "xen")["usable"], true, "{json:#}");
    assert_eq!(pedestal(&json, "xen")["driver"], "micad");
    assert_eq!(json["default_pedestal"]["pedestal"], "xen");

    // A configured default wins over detection, as in the shim.
    host.default_pedestal = "sim".into();
    host.extra = "[sim]\nenable = true\n".into();
    let (_, json) = host.check(None);
    assert_eq!(json["default_pedestal"]["pedestal"], "sim", "{json:#}");
    assert!(text(&json["default_pedestal"]["chosen_by"]).starts_with("default_pedestal in "));
    assert_eq!(pedestal(&json, "sim")["usable"], true);
}

#[test]
fn check_with_remoteproc_cores() {
    let host = Host::new("rproc");
    let tty = host.path().join("dev/ttyRPMSG0");
    let tty1 = host.path().join("dev/ttyRPMSG1");
    let _rp = FakeRemoteproc::start(
        &host.path().join("sys"),
        &[("cm4", tty.as_path()), ("cm7", tty1.as_path())],
        &host.path().join("firmware"),
    )
    .unwrap();
    let (code, json) = host.check(None);
    assert_eq!(code, 0, "{json:#}");
    let bm = pedestal(&json, "baremetal");
    assert_eq!(bm["usable"], true, "{bm}");
    assert_eq!(bm["driver"], "remoteproc");
    assert!(
        text(&bm["why"]).contains("cm4 (remoteproc0) offline"),
        "{bm}"
    );
    let procs = &json["checks"]["remoteproc"]["processors"];
    assert_eq!(
        procs,
        &serde_json::json!([
            {"entry": "remoteproc0", "name": "cm4", "state": "offline"},
            {"entry": "remoteproc1", "name": "cm7", "state": "offline"},
        ])
    );
    assert_eq!(json["default_pedestal"]["pedestal"], "baremetal");
    assert!(text(&json["default_pedestal"]["chosen_by"]).contains("remoteproc: cm4, cm7 under"));
}

#[test]
fn check_with_qemu() {
    let mut host = Host::new("qemu");
    // The real QEMU, found through PATH as the shim finds it.
    let real = Command::new("sh")
        .args(["-c", "command -v qemu-system-aarch64"])
        .output()
        .unwrap();
    let real = PathBuf::from(String::from_utf8(real.stdout).unwrap().trim());
    assert!(
        real.is_file(),
        "qemu-system-aarch64 is not installed (run .ci/setup)"
    );
    std::os::unix::fs::symlink(&real, host.path().join("bin/qemu-system-aarch64")).unwrap();
    host.qemu_binary = "qemu-system-aarch64".into();
    let version = Command::new(&real).arg("--version").output().unwrap();
    let version = String::from_utf8(version.stdout).unwrap();
    let first = version.lines().next().unwrap().trim().to_owned();
    let (code, json) = host.check(None);
    assert_eq!(code, 0, "{json:#}");
    let q = &json["checks"]["qemu"][0];
    assert_eq!(q["arch"], "aarch64");
    assert_eq!(q["version"], first.as_str(), "{q}");
    assert_eq!(
        q["path"],
        host.path()
            .join("bin/qemu-system-aarch64")
            .to_str()
            .unwrap()
    );
    let p = pedestal(&json, "qemu");
    assert_eq!(p["usable"], true);
    assert_eq!(p["driver"], "qemu");
    assert!(text(&p["why"]).starts_with("found for aarch64 ("), "{p}");
    assert_eq!(json["usable"], serde_json::json!(["qemu"]));
    assert_eq!(json["default_pedestal"]["pedestal"], "qemu");
}

#[test]
fn check_reads_containerd_config() {
    let host = Host::new("containerd");
    let file = host.path().join("containerd.toml");
    let cases: [(&str, &str, &[&str]); 4] = [
        (
            r#"version = 2
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.micrun]
  runtime_type = "io.containerd.mica.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
"#,
            "registered",
            &["micrun"],
        ),
        (
            r#"version = 3
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.rtos]
  runtime_type = "io.containerd.mica.v2"
"#,
            "registered",
            &["rtos"],
        ),
        (
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n",
            "not-registered",
            &[],
        ),
        ("version = 2\n[plugins\nroot = 1\n", "invalid", &[]),
    ];
    for (content, status, handlers) in cases {
        std::fs::write(&file, content).unwrap();
        let (_, json) = host.check(Some(&file));
        let cd = &json["containerd"];
        assert_eq!(cd["status"], status, "{content}: {cd}");
        let got: Vec<&str> = cd["cri_handlers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| text(&h["handler"]))
            .collect();
        assert_eq!(got, handlers, "{cd}");
        if status == "invalid" {
            assert!(text(&cd["error"]).contains("not valid TOML"), "{cd}");
            assert!(text(&cd["error"]).contains("line 2"), "{cd}");
        }
    }
    // The file is only read.
    assert_eq!(std::fs::read_to_string(&file).unwrap(), cases[3].0);
    std::fs::remove_file(&file).unwrap();
    let (_, json) = host.check(Some(&file));
    assert_eq!(json["containerd"]["status"], "absent");
    assert!(!file.exists());
}

#[test]
fn check_with_a_bad_config() {
    let host = Host::new("badcfg");
    host.write_config();
    let bad = host.path().join("bad.toml");
    std::fs::write(&bad, "[lifecycle]\nstop_grace = \"ten\"\n").unwrap();
    let want = Config::load_from(&bad).unwrap_err().to_string();
    let out = host.micrun(&["check", "--json", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["config"]["status"], "invalid");
    assert_eq!(json["config"]["error"], want.as_str());
    assert_eq!(json["ok"], false);
}

#[test]
fn config_check_gives_the_shims_errors() {
    let host = Host::new("cfgcheck");
    let good = host.path().join("good.toml");
    std::fs::write(
        &good,
        "default_pedestal = \"qemu\"\n[lifecycle]\nstop_grace = \"1m30s\"\n",
    )
    .unwrap();
    let out = host.micrun(&["config", "--check", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}: ok\n", good.display())
    );

    let bad = host.path().join("bad.toml");
    for content in [
        "[lifecycle]\nstop_grace = \"ten\"\n",
        "default_pedestal = \"vmware\"\n",
        "[qemu]\nbinray = \"x\"\n",
        "[resources]\nmin_memory_mib = 64\ndefault_memory_mib = 32\n",
        "not toml [\n",
    ] {
        std::fs::write(&bad, content).unwrap();
        let want = Config::load_from(&bad).unwrap_err().to_string();
        let out = host.micrun(&["config", "--check", bad.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{content}");
        assert!(out.stdout.is_empty());
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!("micrun: {want}\n"),
            "{content}"
        );
    }
    let missing = host.path().join("missing.toml");
    let out = host.micrun(&["config", "--check", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("missing.toml") && err.contains("built-in defaults"),
        "{err}"
    );
}

/// The TOML body of `micrun config` output (without its comment line).
fn body(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(
        s.starts_with("# The effective micrun configuration: "),
        "{s}"
    );
    s.split_once('\n').unwrap().1.to_owned()
}

#[test]
fn config_round_trips() {
    let host = Host::new("roundtrip");
    let d = host.path();
    // The defaults: no file.
    let none = d.join("none.toml");
    let defaults = body(&host.micrun(&["config", "--config", none.to_str().unwrap()]));
    let back = Config::from_str(&defaults, &none).unwrap();
    assert_eq!(
        Config {
            origin: None,
            ..back
        },
        Config::default()
    );

    // A file that changes something in every section.
    let file = d.join("in.toml");
    std::fs::write(
        &file,
        r#"default_pedestal = "sim"
state_dir = "/var/run/m \"quoted\""
[board]
name = "rk3588-evb"
compatible = "/tmp/dt"
[lifecycle]
stop_grace = "1m30s"
liveness_window = "7s"
ping_interval = "250ms"
handshake_wait = "1h"
[sim]
enable = true
[qemu]
binary = "/opt/q/qemu-system-aarch64"
machine = "virt,gic-version=3"
cpu = "cortex-a72"
extra_args = ["-d", "guest_errors"]
startup_timeout = "30s"
watch_interval = "2s"
[mica]
dir = "/run/mica2"
tty_dirs = ["/dev", "/dev/pts"]
tty_wait = "10s"
timeout = "3s"
[xen]
driver = "direct"
xl = "/usr/sbin/xl"
xenstore_read = "/usr/bin/xenstore-read"
detect = "/proc/xen2"
boot_image = "boot/image.bin"
arch = "arm"
[baremetal]
driver = "micad"
sysfs = "/sys2"
firmware_dir = "/lib/fw2"
rpmsg_tty = { remoteproc0 = "/dev/ttyRPMSG0", "core m7" = "/dev/ttyRPMSG1" }
arch = "riscv32"
[resources]
min_memory_mib = 16
default_memory_mib = 128
max_vcpus = 4
"#,
    )
    .unwrap();
    let first = body(&host.micrun(&["config", "--config", file.to_str().unwrap()]));
    let printed = d.join("printed.toml");
    std::fs::write(&printed, &first).unwrap();
    let out = host.micrun(&["config", "--check", printed.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = Config::load_from(&file).unwrap();
    let got = Config::load_from(&printed).unwrap();
    assert_eq!(
        Config {
            origin: None,
            ..got
        },
        Config {
            origin: None,
            ..want.clone()
        }
    );
    assert_ne!(
        Config {
            origin: None,
            ..want
        },
        Config::default()
    );
    let second = body(&host.micrun(&["config", "--config", printed.to_str().unwrap()]));
    assert_eq!(first, second);

    // A bad file: the shim's error.
    std::fs::write(&file, "[mica]\ndir = \"relative\"\n").unwrap();
    let want = Config::load_from(&file).unwrap_err().to_string();
    let out = host.micrun(&["config", "--config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("micrun: {want}\n")
    );
}

#[test]
fn help_and_version() {
    let host = Host::new("help");
    let out = host.micrun(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    // As runc prints it (podman shows it as the runtime's version).
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "micrun version {}\nspec: 1.0.2\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    for (args, usage) in [
        (&["--help"][..], "Usage: micrun"),
        (&["image", "--help"], "Usage: micrun image"),
        (&["image", "pack", "--help"], "Usage: micrun image pack"),
        (
            &["image", "inspect", "--help"],
            "Usage: micrun image inspect",
        ),
        (&["check", "--help"], "Usage: micrun check"),
        (&["config", "--help"], "Usage: micrun config"),
        (&["help", "check"], "Usage: micrun check"),
    ] {
        let out = host.micrun(args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stdout}");
        assert!(stdout.starts_with(usage), "{args:?}: {stdout}");
        assert!(stdout.contains("--help"), "{args:?}: {stdout}");
    }
    let out = host.micrun(&["check", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in ["--config", "--json", "--containerd-config"] {
        assert!(help.contains(flag), "{flag} not in {help}");
    }
    for args in [
        &["check", "--bogus"][..],
        &["frobnicate"],
        &["config", "--check"],
        &[],
    ] {
        let out = host.micrun(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
    let out = host.micrun(&["config", "--config", "a", "--check", "b"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn pack_takes_hypervisor_for_pedestal() {
    let host = Host::new("hyper");
    let d = host.path();
    std::fs::write(d.join("sim.elf"), sim_firmware_bytes()).unwrap();
    // `micrun image pack PEDESTAL_FLAGS ... -o OUT sim.elf`.
    let pack = |pedestal: &[&str], out: &str| {
        let mut args = vec!["image", "pack"];
        args.extend_from_slice(pedestal);
        args.extend([
            "--board",
            "any",
            "--os",
            "demo",
            "--tag",
            "localhost/micrun/hyper:1",
            "-o",
            out,
            "sim.elf",
        ]);
        host.micrun(&args)
    };
    let a = pack(&["--pedestal", "sim"], "a.tar");
    let b = pack(&["--hypervisor", "sim"], "b.tar");
    for o in [&a, &b] {
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // "<output> <digest> <tag>": the same digest.
    let digest = |o: &Output| {
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_owned()
    };
    assert_eq!(digest(&a), digest(&b));
    assert_eq!(
        std::fs::read(d.join("a.tar")).unwrap(),
        std::fs::read(d.join("b.tar")).unwrap()
    );
    let both = pack(&["--pedestal", "sim", "--hypervisor", "sim"], "c.tar");
    assert_eq!(both.status.code(), Some(1));
    let err = String::from_utf8_lossy(&both.stderr);
    assert!(
        err.contains("--hypervisor") && err.contains("--pedestal"),
        "{err}"
    );
    assert!(!d.join("c.tar").exists());
}
