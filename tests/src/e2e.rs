//! End-to-end helpers for `containerd-shim-mica-v2` under a real containerd.
//!
//! ```text
//! shim_binary()  cargo build -p micrun-shim --bin containerd-shim-mica-v2 (own target dir)
//! shim_dir()     <repo>/target/shim-for-tests/path/containerd-shim-mica-v2 -> the binary
//! Env::start()   private containerd: PATH = shim_dir() first, MICRUN_CONFIG = <tmp>/micrun.toml
//!                (state_dir = <tmp>/state), images written to <tmp>/images/*.tar
//! Env::start_release(Release::of("2.1"), ..), Env::shared_release("1.7")
//!                the same on another containerd release, with its own ctr
//! sim_image()    OCI image, linux/<host arch>, /firmware.elf = micrun-rtos-sim
//! qemu_image()   OCI image, linux/arm64, /firmware.elf = the QEMU board ELF
//! Session        one interactive `ctr` (or `script`) child: stdin pipe, stdout/stderr
//!                collected by threads, deadlines, SIGKILL + reap on drop
//! ```
//!
//! Everything a test makes is removed by drops: the [`Session`]s (their `ctr`), the
//! namespaces (tasks, containers, images), the daemon (shims and what they started,
//! mounts, shim sockets), then the [`Env`]'s temp dir (config, micrun state, images).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use crate::containerd::{Containerd, ContainerdOpts, Namespace, Release};
use crate::micad::{MicadEmulator, Options as MicadOptions};
use crate::oci::{host_arch, ImageBuilder};
use crate::remoteproc::FakeRemoteproc;
use crate::xen::FakeXen;
use crate::{firmware, repo_root, sim_binary, TempDir};

/// The runtime name given to `ctr run --runtime`.
pub const RUNTIME: &str = "io.containerd.mica.v2";
/// The shim binary's name, as containerd derives it from [`RUNTIME`].
pub const SHIM_NAME: &str = "containerd-shim-mica-v2";

/// The annotation choosing the pedestal (the Go MicRun's user contract).
pub const ANN_PEDESTAL: &str = "org.openeuler.micrun.ped.pedestal";
/// The annotation choosing agent or raw mode (`auto`, `on`, `off`).
pub const ANN_AGENT: &str = "org.openeuler.micrun.container.agent";
/// The annotation naming the firmware file in the rootfs.
pub const ANN_FIRMWARE_PATH: &str = "org.openeuler.micrun.container.firmware_path";
/// The annotation with the firmware's expected sha256.
pub const ANN_FIRMWARE_HASH: &str = "org.openeuler.micrun.container.firmware_hash";
/// The annotation with the memory floor in MiB.
pub const ANN_MIN_MEMORY_MB: &str = "org.openeuler.micrun.container.min_memory_mb";
/// The annotation with the auto-close timeout.
pub const ANN_AUTO_CLOSE_TIMEOUT: &str = "org.openeuler.micrun.container.auto_close_timeout";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `cargo build -p micrun-shim --bin NAME...` (debug) into `target/shim-for-tests`, its
/// own target directory (so it never waits for the lock of the `cargo test` running
/// us), and the directory the binaries land in. [`shim_binary`] and
/// [`micrun_binary`] run it quietly; the demo shows cargo's progress.
pub fn shim_build(bins: &[&str]) -> (Command, PathBuf) {
    let root = repo_root();
    let target_dir = root.join("target/shim-for-tests");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["build", "-p", "micrun-shim"]);
    for b in bins {
        cmd.args(["--bin", b]);
    }
    cmd.arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    (cmd, target_dir.join("debug"))
}

/// Builds `bin` of micrun-shim quietly with [`shim_build`], once per process per
/// `cell`; its path.
fn built(cell: &Mutex<Option<PathBuf>>, bin: &str) -> PathBuf {
    let mut g = lock(cell);
    if let Some(p) = g.as_ref() {
        return p.clone();
    }
    let (mut cmd, dir) = shim_build(&[bin]);
    let status = cmd
        .arg("--quiet")
        .status()
        .unwrap_or_else(|e| panic!("run cargo to build {bin}: {e}"));
    assert!(
        status.success(),
        "building {bin} failed (cargo build -p micrun-shim --bin {bin})"
    );
    let path = dir.join(bin);
    assert!(path.is_file(), "{path:?} missing after the build");
    *g = Some(path.clone());
    path
}

/// Builds `containerd-shim-mica-v2` (debug) with [`shim_build`] and returns its
/// path. Built once per process; serialised.
pub fn shim_binary() -> PathBuf {
    static LOCK: Mutex<Option<PathBuf>> = Mutex::new(None);
    built(&LOCK, SHIM_NAME)
}

/// A directory holding only `containerd-shim-mica-v2` (a symlink to [`shim_binary`]),
/// to put first on containerd's `PATH`. It lives under the target dir (not in /tmp),
/// is rebuilt idempotently, and holds nothing else containerd could pick up.
pub fn shim_dir() -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let bin = shim_binary();
    let _g = lock(&LOCK);
    let dir = repo_root().join("target/shim-for-tests/path");
    std::fs::create_dir_all(&dir).expect("create the shim dir");
    let link = dir.join(SHIM_NAME);
    if std::fs::read_link(&link).ok().as_deref() != Some(bin.as_path()) {
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&bin, &link).expect("link the shim into the shim dir");
    }
    dir
}

/// The micrun config file the tests give the shim (`MICRUN_CONFIG`). `None` fields
/// are left out of the file (the shim's default applies).
#[derive(Debug, Clone)]
pub struct MicrunConfig {
    /// `default_pedestal`.
    pub default_pedestal: Option<String>,
    /// `state_dir`; [`Env`] puts it inside its temp dir.
    pub state_dir: PathBuf,
    /// `[sim] enable`.
    pub sim_enable: bool,
    /// `[lifecycle] stop_grace`.
    pub stop_grace: Option<String>,
    /// `[lifecycle] liveness_window`.
    pub liveness_window: Option<String>,
    /// `[lifecycle] ping_interval`.
    pub ping_interval: Option<String>,
    /// `[lifecycle] handshake_wait`.
    pub handshake_wait: Option<String>,
    /// `[qemu] binary`.
    pub qemu_binary: Option<String>,
    /// Where the hardware pedestals look for the host's devices: micad's
    /// `<root>/run/mica`, ttys in `<root>/dev`, the Xen marker `<root>/proc/xen` and
    /// sysfs `<root>/sys` (so a test host is a temp dir, not this machine's `/run`,
    /// `/proc` and `/sys`).
    pub host_root: Option<PathBuf>,
    /// `[baremetal] driver` (with `host_root`): `auto`, `micad` or `direct`.
    pub baremetal_driver: String,
    /// Run the micad emulator in `host_root` ([`Env::micad`]).
    pub start_micad: bool,
    /// Arguments the micad emulator gives every firmware (`--raw` for the raw
    /// demo shell) and how late each console appears after `start`.
    pub micad_firmware_args: Vec<String>,
    pub micad_tty_delay: Duration,
    /// Fake remote processors in `host_root` ([`Env::remoteproc`]): their names,
    /// each with its console `<host_root>/dev/ttyRPMSG_<name>` in `[baremetal]
    /// rpmsg_tty`.
    pub remoteprocs: Vec<String>,
    /// The `fake-xl` binary: run a fake Xen host ([`Env::xen`]) and point `[xen]`
    /// at its `xl` and `xenstore-read` (set by [`Env::start_with`]).
    pub fake_xl: Option<PathBuf>,
    /// `[xen] xl`, `xenstore_read`, `detect` (from the fake Xen host).
    xen_tools: Option<(PathBuf, PathBuf, PathBuf)>,
    /// `[xen] driver`: `direct` (default), or `micad` (with [`Self::fake_xl`] and the
    /// micad emulator: micad's Xen domains are made in the fake Xen host).
    pub xen_driver: String,
    /// `[mica] timeout`: how long the shim waits for one micad answer.
    pub mica_timeout: String,
    /// More TOML, appended as is.
    pub extra_toml: String,
}

impl MicrunConfig {
    /// What the e2e tests use: sim enabled and the default pedestal, short timings
    /// (a hung agent is lost after 2 s; a stop that is not answered is forced after 3 s).
    pub fn for_tests(state_dir: PathBuf) -> MicrunConfig {
        let host_root = state_dir_sibling(&state_dir, "host");
        MicrunConfig {
            default_pedestal: Some("sim".into()),
            state_dir,
            sim_enable: true,
            stop_grace: Some("3s".into()),
            liveness_window: Some("2s".into()),
            ping_interval: Some("500ms".into()),
            handshake_wait: Some("2s".into()),
            qemu_binary: Some("qemu-system-aarch64".into()),
            host_root,
            baremetal_driver: "auto".into(),
            start_micad: true,
            micad_firmware_args: Vec::new(),
            micad_tty_delay: Duration::ZERO,
            remoteprocs: Vec::new(),
            fake_xl: None,
            xen_tools: None,
            xen_driver: "direct".into(),
            mica_timeout: "2s".into(),
            extra_toml: String::new(),
        }
    }

    /// The TOML text.
    pub fn to_toml(&self) -> String {
        let mut s = String::new();
        if let Some(p) = &self.default_pedestal {
            s += &format!("default_pedestal = {}\n", toml_str(p));
        }
        s += &format!(
            "state_dir = {}\n",
            toml_str(&self.state_dir.to_string_lossy())
        );
        s += &format!("\n[sim]\nenable = {}\n", self.sim_enable);
        let lifecycle: Vec<String> = [
            ("stop_grace", &self.stop_grace),
            ("liveness_window", &self.liveness_window),
            ("ping_interval", &self.ping_interval),
            ("handshake_wait", &self.handshake_wait),
        ]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} = {}\n", toml_str(v))))
        .collect();
        if !lifecycle.is_empty() {
            s += "\n[lifecycle]\n";
            s += &lifecycle.concat();
        }
        if let Some(b) = &self.qemu_binary {
            s += &format!("\n[qemu]\nbinary = {}\n", toml_str(b));
        }
        if let Some(root) = &self.host_root {
            // The micad emulator runs the x86-64 simulator as the "firmware", so
            // the hardware pedestals expect x86-64 ELFs here; short waits, so a
            // fault test does not sit out micad's 5 s and 30 s.
            let p = |rel: &str| toml_str(&root.join(rel).to_string_lossy());
            s += &format!(
                "\n[mica]\ndir = {}\ntty_dirs = [{}]\ntty_wait = \"3s\"\ntimeout = {}\n\
                 \n[xen]\ndriver = {}\n{}arch = \"x86_64\"\n\
                 \n[baremetal]\ndriver = {}\nsysfs = {}\narch = \"x86_64\"\nrpmsg_tty = {{ {} }}\n",
                p("run/mica"),
                p("dev"),
                toml_str(&self.mica_timeout),
                toml_str(&self.xen_driver),
                match &self.xen_tools {
                    Some((xl, xsr, detect)) => format!(
                        "xl = {}\nxenstore_read = {}\ndetect = {}\n",
                        toml_str(&xl.to_string_lossy()),
                        toml_str(&xsr.to_string_lossy()),
                        toml_str(&detect.to_string_lossy())
                    ),
                    None => format!("detect = {}\n", p("proc/xen")),
                },
                toml_str(&self.baremetal_driver),
                p("sys"),
                self.remoteprocs
                    .iter()
                    .map(|n| format!("{n} = {}", p(&format!("dev/ttyRPMSG_{n}"))))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        s += &self.extra_toml;
        s
    }

    /// Writes the TOML text to `path`.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.to_toml())
    }
}

/// `<parent of dir>/<name>`, where a test keeps things next to its state dir.
fn state_dir_sibling(dir: &Path, name: &str) -> Option<PathBuf> {
    dir.parent().map(|p| p.join(name))
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out += "\\\"",
            '\\' => out += "\\\\",
            c if (c as u32) < 0x20 => out += &format!("\\u{:04x}", c as u32),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Fake remote processors of [`Env::shared_remoteproc`] (`cm0`..).
pub const REMOTEPROCS: usize = 12;

/// The next free fake remote processor of [`Env::shared_remoteproc`], for a
/// test's `org.openeuler.micrun.ped.remoteproc` annotation.
pub fn next_remoteproc() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let i = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    assert!(
        i < REMOTEPROCS,
        "more remoteproc tests than fake processors"
    );
    format!("cm{i}")
}

/// The pedestals the e2e tests run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ped {
    Sim,
    Qemu,
    /// `baremetal` through micad (the [`Env::micad`] emulator, which runs the
    /// x86-64 simulator as the partition).
    Micad,
    /// `baremetal` through Linux remoteproc (the [`Env::remoteproc`] fake, on
    /// [`Env::shared_remoteproc`]).
    Rproc,
    /// `xen` through `xl` (the [`Env::xen`] fake, on [`Env::shared_xen`]).
    Xen,
}

impl Ped {
    /// The annotation value.
    pub fn name(self) -> &'static str {
        match self {
            Ped::Sim => "sim",
            Ped::Qemu => "qemu",
            Ped::Micad | Ped::Rproc => "baremetal",
            Ped::Xen => "xen",
        }
    }

    /// `org.openeuler.micrun.ped.pedestal=<name>`, for `ctr run --annotation`.
    pub fn annotation(self) -> String {
        format!("{ANN_PEDESTAL}={}", self.name())
    }

    /// The board name the demo shell prints in its banner.
    pub fn board(self) -> &'static str {
        match self {
            Ped::Sim | Ped::Micad | Ped::Rproc | Ped::Xen => "sim",
            Ped::Qemu => "qemu-virt",
        }
    }

    /// The demo firmware image for this pedestal (agent or raw mode).
    pub fn image(self, raw: bool) -> TestImage {
        match self {
            Ped::Sim | Ped::Micad | Ped::Rproc => sim_image("e2e", raw),
            Ped::Xen => xen_image("e2e"),
            Ped::Qemu => qemu_image("e2e", raw),
        }
    }
}

impl fmt::Display for Ped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ped::Micad => "micad",
            Ped::Rproc => "rproc",
            Ped::Xen => "xl",
            p => p.name(),
        })
    }
}

/// An OCI image layout tar in memory, and how `ctr run` must name it.
#[derive(Debug, Clone)]
pub struct TestImage {
    /// The image reference (`localhost/micrun/...:tag`).
    pub name: String,
    /// The OCI layout tar.
    pub tar: Arc<Vec<u8>>,
    /// Extra `ctr run` arguments the image needs (`--platform linux/arm64`).
    pub run_args: Vec<String>,
}

/// Image tars by name: building one gzips a few MB, do it once per process.
fn cached(name: &str, build: impl FnOnce() -> ImageBuilder) -> Arc<Vec<u8>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Vec<u8>>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(t) = lock(cache).get(name) {
        return t.clone();
    }
    let tar = Arc::new(
        build()
            .build()
            .and_then(|i| i.to_tar())
            .expect("build an OCI image tar"),
    );
    lock(cache).insert(name.to_string(), tar.clone());
    tar
}

/// The host simulator's (`micrun-rtos-sim`) bytes, built once.
pub fn sim_firmware_bytes() -> Vec<u8> {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES
        .get_or_init(|| std::fs::read(sim_binary()).expect("read micrun-rtos-sim"))
        .clone()
}

/// The QEMU board firmware's bytes (built once per mode).
pub fn qemu_firmware_bytes(raw: bool) -> Vec<u8> {
    static AGENT: OnceLock<Vec<u8>> = OnceLock::new();
    static RAW: OnceLock<Vec<u8>> = OnceLock::new();
    let cell = if raw { &RAW } else { &AGENT };
    cell.get_or_init(|| std::fs::read(firmware(raw)).expect("read the QEMU firmware"))
        .clone()
}

/// `localhost/micrun/sim:<tag>[-raw]`: platform `linux/<host arch>`, `/firmware.elf` =
/// `micrun-rtos-sim`, Entrypoint `/firmware.elf`, Cmd `--raw` in raw mode (the sim
/// pedestal passes `process.args[1..]` to the firmware).
pub fn sim_image(tag: &str, raw: bool) -> TestImage {
    let name = format!(
        "localhost/micrun/sim:{tag}{}",
        if raw { "-raw" } else { "" }
    );
    let tar = cached(&name, || {
        let b = ImageBuilder::new(name.clone())
            .file("/firmware.elf", sim_firmware_bytes(), 0o755)
            .entrypoint(["/firmware.elf"]);
        if raw {
            b.cmd(["--raw"])
        } else {
            b
        }
    });
    TestImage {
        name,
        tar,
        run_args: Vec::new(),
    }
}

/// `localhost/micrun/xen:<tag>`: [`sim_image`]'s content plus the Xen boot image
/// `/image.bin` (the xen pedestal's default `ped.conf`; the fake Xen host runs
/// the simulator whatever the domain config says).
pub fn xen_image(tag: &str) -> TestImage {
    let name = format!("localhost/micrun/xen:{tag}");
    let tar = cached(&name, || {
        ImageBuilder::new(name.clone())
            .file("/firmware.elf", sim_firmware_bytes(), 0o755)
            .file("/image.bin", b"xen boot image stand-in\n".to_vec(), 0o644)
            .entrypoint(["/firmware.elf"])
    });
    TestImage {
        name,
        tar,
        run_args: Vec::new(),
    }
}

/// `localhost/micrun/qemu:<tag>[-raw]`: platform linux/arm64, `/firmware.elf` = the
/// QEMU board ELF (agent or raw build). `ctr run` needs `--platform linux/arm64` on a
/// host of another architecture; [`TestImage::run_args`] has it.
pub fn qemu_image(tag: &str, raw: bool) -> TestImage {
    let name = format!(
        "localhost/micrun/qemu:{tag}{}",
        if raw { "-raw" } else { "" }
    );
    let tar = cached(&name, || {
        ImageBuilder::new(name.clone())
            .platform("linux", "arm64")
            .file("/firmware.elf", qemu_firmware_bytes(raw), 0o755)
            .entrypoint(["/firmware.elf"])
    });
    TestImage {
        name,
        tar,
        run_args: vec!["--platform".into(), "linux/arm64".into()],
    }
}

/// `localhost/micrun/custom:<tag>`: whatever `build` adds to a builder of platform
/// `os/arch` whose Entrypoint is `/firmware.elf` (so `ctr run` has a command even
/// when the image has no firmware). Not cached: tags must be unique per content.
pub fn custom_image(
    tag: &str,
    os: &str,
    arch: &str,
    build: impl FnOnce(ImageBuilder) -> ImageBuilder,
) -> TestImage {
    let name = format!("localhost/micrun/custom:{tag}");
    let b = build(
        ImageBuilder::new(name.clone())
            .platform(os, arch)
            .entrypoint(["/firmware.elf"]),
    );
    let tar = Arc::new(
        b.build()
            .and_then(|i| i.to_tar())
            .expect("build an OCI image tar"),
    );
    let run_args = if os == "linux" && arch == host_arch() {
        Vec::new()
    } else {
        vec!["--platform".into(), format!("{os}/{arch}")]
    };
    TestImage {
        name,
        tar,
        run_args,
    }
}

/// A private containerd with the shim on its `PATH` and a micrun config of its own.
/// Fields drop in order: the daemon (and everything it started) first, then the temp
/// dir with the config, the micrun state dir and the image tars.
pub struct Env {
    /// The daemon.
    pub cd: Containerd,
    /// micad's stand-in, serving `<host_root>/run/mica` (after the daemon, so the
    /// shims are gone before the partitions it runs).
    pub micad: Option<MicadEmulator>,
    /// Fake remote processors under `<host_root>/sys`, firmware dir
    /// `<host_root>/lib/firmware`.
    pub remoteproc: Option<FakeRemoteproc>,
    /// A fake Xen host (`xl`, `xenstore-read`; its domains run the simulator).
    pub xen: Option<FakeXen>,
    config: MicrunConfig,
    config_path: PathBuf,
    imported: Mutex<BTreeSet<String>>,
    dir: TempDir,
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env")
            .field("cd", &self.cd)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Env {
    /// A daemon with [`MicrunConfig::for_tests`].
    pub fn start() -> Env {
        Env::start_with(|_| {})
    }

    /// A daemon whose config is [`MicrunConfig::for_tests`] changed by `edit`. The
    /// state dir is always inside the env's temp dir.
    pub fn start_with(edit: impl FnOnce(&mut MicrunConfig)) -> Env {
        Env::start_release(Release::default(), edit)
    }

    /// [`Env::start_with`] on a daemon of containerd `release` (its config
    /// format and its `ctr`).
    pub fn start_release(release: Release, edit: impl FnOnce(&mut MicrunConfig)) -> Env {
        sweep_stale_envs();
        let shims = shim_dir();
        // Short paths: the qemu pedestal keeps unix sockets (<= 107 bytes) under
        // <state_dir>/<namespace>/<id>/.
        let dir = TempDir::new("e2e");
        let state_dir = dir.path().join("s");
        let mut config = MicrunConfig::for_tests(state_dir.clone());
        edit(&mut config);
        let xen = config.fake_xl.as_ref().map(|fake| {
            let x = FakeXen::new(fake, &sim_binary(), &[]);
            config.xen_tools = Some((x.xl(), x.xenstore_read(), x.marker()));
            x
        });
        assert!(
            config.state_dir.starts_with(dir.path()),
            "the micrun state_dir must stay inside the test's temp dir"
        );
        std::fs::create_dir_all(dir.path().join("images")).expect("create the image dir");
        let config_path = dir.path().join("micrun.toml");
        config.write(&config_path).expect("write the micrun config");
        let cd = Containerd::start_release(
            release,
            ContainerdOpts {
                shim_dirs: vec![shims],
                env: vec![(
                    "MICRUN_CONFIG".into(),
                    config_path.to_string_lossy().into_owned(),
                )],
            },
        )
        .expect("start a private containerd");
        let micad = config
            .host_root
            .as_ref()
            .filter(|_| config.start_micad)
            .map(|root| {
                let mut options = MicadOptions::new(root.join("dev"));
                options.firmware_args = config.micad_firmware_args.clone();
                options.tty_delay = config.micad_tty_delay;
                options.xl = xen.as_ref().map(FakeXen::xl);
                MicadEmulator::start(&root.join("run/mica"), options)
                    .expect("start the micad emulator")
            });
        let remoteproc = config
            .host_root
            .as_ref()
            .filter(|_| !config.remoteprocs.is_empty())
            .map(|root| {
                let ttys: Vec<(String, PathBuf)> = config
                    .remoteprocs
                    .iter()
                    .map(|n| (n.clone(), root.join(format!("dev/ttyRPMSG_{n}"))))
                    .collect();
                let procs: Vec<(&str, &Path)> = ttys
                    .iter()
                    .map(|(n, t)| (n.as_str(), t.as_path()))
                    .collect();
                FakeRemoteproc::start(&root.join("sys"), &procs, &root.join("lib/firmware"))
                    .expect("start the fake remote processors")
            });
        Env {
            cd,
            micad,
            remoteproc,
            xen,
            config,
            config_path,
            imported: Mutex::new(BTreeSet::new()),
            dir,
        }
    }

    /// One daemon shared by the tests of a process while any of them holds it (each
    /// test works in its own namespace). Never restart it: use [`Env::start`].
    pub fn shared() -> Arc<Env> {
        static SHARED: Mutex<Weak<Env>> = Mutex::new(Weak::new());
        let mut g = lock(&SHARED);
        if let Some(e) = g.upgrade() {
            return e;
        }
        let e = Arc::new(Env::start());
        *g = Arc::downgrade(&e);
        e
    }

    /// Like [`Env::shared`], one daemon per containerd release (`"1.7"`, `"2.1"`,
    /// as [`Release::of`] takes it), shared by the tests of a process that use it.
    pub fn shared_release(version: &str) -> Arc<Env> {
        static SHARED: Mutex<BTreeMap<String, Weak<Env>>> = Mutex::new(BTreeMap::new());
        let mut g = lock(&SHARED);
        if let Some(e) = g.get(version).and_then(Weak::upgrade) {
            return e;
        }
        let e = Arc::new(Env::start_release(Release::of(version), |_| {}));
        g.insert(version.to_string(), Arc::downgrade(&e));
        e
    }

    /// The daemon for [`Ped::Rproc`] tests: no micad, `[baremetal] driver =
    /// "direct"`, [`REMOTEPROCS`] fake processors (each test takes its own with
    /// the `ped.remoteproc` annotation: one container per processor).
    pub fn shared_remoteproc() -> Arc<Env> {
        static SHARED: Mutex<Weak<Env>> = Mutex::new(Weak::new());
        let mut g = lock(&SHARED);
        if let Some(e) = g.upgrade() {
            return e;
        }
        let e = Arc::new(Env::start_with(|c| {
            c.start_micad = false;
            c.baremetal_driver = "direct".into();
            c.remoteprocs = (0..REMOTEPROCS).map(|i| format!("cm{i}")).collect();
        }));
        *g = Arc::downgrade(&e);
        e
    }

    /// The daemon for [`Ped::Xen`] tests: a fake Xen host whose `xl` is
    /// `fake_xl` (the `fake-xl` binary), `[xen] driver = "direct"`.
    pub fn shared_xen(fake_xl: &Path) -> Arc<Env> {
        static SHARED: Mutex<Weak<Env>> = Mutex::new(Weak::new());
        let mut g = lock(&SHARED);
        if let Some(e) = g.upgrade() {
            return e;
        }
        let e = Arc::new(Env::start_with(|c| {
            c.start_micad = false;
            c.fake_xl = Some(fake_xl.to_path_buf());
        }));
        *g = Arc::downgrade(&e);
        e
    }

    /// A fresh namespace of the daemon.
    pub fn namespace(&self, tag: &str) -> Namespace<'_> {
        self.cd.namespace(tag)
    }

    /// The config the shim reads.
    pub fn config(&self) -> &MicrunConfig {
        &self.config
    }

    /// Its path (`MICRUN_CONFIG`).
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// micrun's state dir.
    pub fn state_dir(&self) -> &Path {
        &self.config.state_dir
    }

    /// The env's temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Imports `image` into namespace `ns` (`ctr images import --all-platforms`).
    pub fn import(&self, ns: &Namespace<'_>, image: &TestImage) {
        let file = image.name.replace(['/', ':'], "_") + ".tar";
        let path = self.dir.path().join("images").join(file);
        {
            let mut g = lock(&self.imported);
            if !g.contains(&image.name) {
                std::fs::write(&path, image.tar.as_slice()).expect("write the image tar");
                g.insert(image.name.clone());
            }
        }
        ns.import(&path)
            .unwrap_or_else(|e| panic!("import {}: {e}", image.name));
    }

    /// The last `n` lines of containerd's log (which carries the shims' log lines).
    pub fn log_tail(&self, n: usize) -> String {
        self.cd.log_tail(n)
    }

    /// The lines of containerd's log that mention `needle` (e.g. a container id),
    /// the last `n` of them.
    pub fn log_lines(&self, needle: &str, n: usize) -> String {
        let log = std::fs::read(self.cd.log_path()).unwrap_or_default();
        let log = String::from_utf8_lossy(&log);
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(needle)).collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// What to append to a failure message: the log lines about `id` and the tail.
    pub fn diag(&self, id: &str) -> String {
        format!(
            "\n--- containerd log lines about {id} ---\n{}\n--- containerd log (tail) ---\n{}",
            self.log_lines(id, 30),
            self.log_tail(25)
        )
    }

    /// `ctr --address <sock> --namespace NS ARGS` as a [`Command`] (not started), with
    /// the daemon's `PATH`.
    pub fn ctr_command(&self, ns: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.cd.ctr_binary());
        cmd.arg("--address")
            .arg(self.cd.address())
            .arg("--namespace")
            .arg(ns)
            .args(args)
            .env("PATH", self.cd.daemon_path_env())
            .env_remove("CONTAINERD_ADDRESS")
            .env_remove("CONTAINERD_NAMESPACE")
            .current_dir(self.cd.dir());
        cmd
    }

    /// The arguments of `ctr run` between `run` and the image: `--fifo-dir` and
    /// `--runtime`, then `extra`, then what the image needs.
    pub fn run_args(&self, image: &TestImage, extra: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--fifo-dir".into(),
            self.cd.fifo_dir().to_string_lossy().into_owned(),
            "--runtime".into(),
            RUNTIME.into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a.extend(image.run_args.iter().cloned());
        a
    }

    /// Starts `ctr run --rm [-t] ... IMAGE ID` in the foreground as a [`Session`].
    pub fn run_session(
        &self,
        ns: &Namespace<'_>,
        image: &TestImage,
        id: &str,
        extra: &[&str],
    ) -> Session {
        let mut a = vec!["run".to_string(), "--rm".into()];
        a.extend(self.run_args(image, extra));
        a.push(image.name.clone());
        a.push(id.into());
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        Session::spawn(self.ctr_command(ns.name(), &a), format!("ctr run {id}"))
    }

    /// `ctr run -d` WITH console FIFOs (no `--null-io`), so that `ctr task attach`
    /// works later. ctr's stdin is a pipe kept open until ctr has exited: a closed
    /// stdin would make ctr send CloseIO to the task before it detaches.
    pub fn run_detached_fifo(
        &self,
        ns: &Namespace<'_>,
        image: &TestImage,
        id: &str,
        extra: &[&str],
    ) -> Result<(), String> {
        let mut a = vec!["run".to_string(), "-d".into()];
        a.extend(self.run_args(image, extra));
        a.push(image.name.clone());
        a.push(id.into());
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let mut s = Session::spawn(self.ctr_command(ns.name(), &a), format!("ctr run -d {id}"));
        match s.wait(Duration::from_secs(60)) {
            Some(st) if st.success() => Ok(()),
            st => Err(format!(
                "`ctr run -d {id}` ended with {st:?}\nstdout: {}\nstderr: {}{}",
                s.stdout(),
                s.stderr(),
                self.diag(id)
            )),
        }
    }

    /// `ctr run -d --null-io ... IMAGE ID`.
    pub fn run_detached(
        &self,
        ns: &Namespace<'_>,
        image: &TestImage,
        id: &str,
        extra: &[&str],
    ) -> Result<(), String> {
        let mut e: Vec<&str> = extra.to_vec();
        e.extend(image.run_args.iter().map(String::as_str));
        ns.run_detached(&image.name, id, RUNTIME, &e, &[])
            .map_err(|err| format!("{err}{}", self.diag(id)))
    }

    /// `ctr task attach ID` as a [`Session`].
    pub fn attach(&self, ns: &Namespace<'_>, id: &str) -> Session {
        Session::spawn(
            self.ctr_command(ns.name(), &["task", "attach", id]),
            format!("ctr task attach {id}"),
        )
    }

    /// The shim processes serving container `id` (their command line has `-id ID`).
    pub fn shim_pids_of(&self, id: &str) -> Vec<u32> {
        self.cd
            .shim_pids()
            .into_iter()
            .filter(|&pid| {
                let args = cmdline(pid);
                args.windows(2).any(|w| w[0] == "-id" && w[1] == id)
            })
            .collect()
    }

    /// What is left of container `id` once it is deleted, waiting up to 10 s for it
    /// to go: its instance process `pid` (0: unknown), processes naming the id
    /// (shim, sim, QEMU), mounts under its bundle, the bundle, micrun state naming
    /// the id, the shim `socket`. Empty when all is clean.
    pub fn leftovers(
        &self,
        ns: &Namespace<'_>,
        id: &str,
        pid: u32,
        socket: Option<&Path>,
    ) -> Vec<String> {
        let env = self;
        let bundle = env.cd.bundle_dir(ns.name(), id);
        let check = || {
            let mut left = Vec::new();
            if pid != 0 && pid_alive(pid) {
                left.push(format!("instance process {pid}"));
            }
            let procs = processes_mentioning(id);
            if !procs.is_empty() {
                left.push(format!("processes {procs:?}"));
            }
            let mounts = mounts_under(&bundle);
            if !mounts.is_empty() {
                left.push(format!("mounts {mounts:?}"));
            }
            if bundle.exists() {
                left.push(format!("bundle {bundle:?}"));
            }
            let state = env.state_entries(id);
            if !state.is_empty() {
                left.push(format!("micrun state {state:?}"));
            }
            if let Some(s) = socket.filter(|s| s.exists()) {
                left.push(format!("shim socket {s:?}"));
            }
            left
        };
        wait_until(Duration::from_secs(10), || check().is_empty());
        check()
    }

    /// Entries under micrun's state dir whose path [`mentions`] `id`.
    pub fn state_entries(&self, id: &str) -> Vec<PathBuf> {
        paths_mentioning(self.state_dir(), id)
    }
}

/// Removes the temp dirs of [`Env`]s whose test process died without dropping them
/// (`micrun-e2e-<pid>-<n>`, pid dead). Their daemons are swept by
/// `containerd::sweep_stale`.
fn sweep_stale_envs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let tmp = std::env::temp_dir();
        let Ok(rd) = std::fs::read_dir(&tmp) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("micrun-e2e-")) else {
                continue;
            };
            let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if pid != std::process::id() && !pid_alive(pid) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    });
}

/// One interactive child process (`ctr run`, `ctr task attach`, `script`): stdin is a
/// pipe the test writes to, stdout and stderr are collected by threads. Dropping it
/// SIGKILLs the child by PID and reaps it.
pub struct Session {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
    status: Option<ExitStatus>,
    what: String,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("what", &self.what)
            .field("pid", &self.pid())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Starts `cmd` with piped stdio. Panics if it cannot start.
    pub fn spawn(mut cmd: Command, what: impl Into<String>) -> Session {
        let what = what.into();
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        collect(child.stdout.take(), out.clone());
        collect(child.stderr.take(), err.clone());
        Session {
            stdin: child.stdin.take(),
            child: Some(child),
            out,
            err,
            status: None,
            what,
        }
    }

    /// The child's PID (while it has not been reaped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Writes `text` to the child's stdin.
    pub fn send(&mut self, text: &str) {
        let what = &self.what;
        let w = self
            .stdin
            .as_mut()
            .unwrap_or_else(|| panic!("{what}: stdin already closed"));
        w.write_all(text.as_bytes())
            .and_then(|()| w.flush())
            .unwrap_or_else(|e| panic!("{what}: writing {text:?} to stdin: {e}"));
    }

    /// Closes the child's stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Everything the child printed on stdout so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&lock(&self.out)).into_owned()
    }

    /// Everything the child printed on stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&lock(&self.err)).into_owned()
    }

    /// Bytes of stdout so far.
    pub fn stdout_len(&self) -> usize {
        lock(&self.out).len()
    }

    /// Waits until stdout, from byte `from` on, contains `needle`; returns the offset
    /// just past the match. On timeout (or if the child ends first) the error shows
    /// what was seen.
    pub fn expect_from(
        &mut self,
        from: usize,
        needle: &str,
        timeout: Duration,
    ) -> Result<usize, String> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let out = lock(&self.out);
                let from = from.min(out.len());
                if let Some(i) = find(&out[from..], needle.as_bytes()) {
                    return Ok(from + i + needle.len());
                }
            }
            let ended = self.try_status().is_some();
            if ended || Instant::now() >= deadline {
                // Output written just before the exit may still be in the pipe.
                std::thread::sleep(Duration::from_millis(50));
                let out = lock(&self.out);
                if let Some(i) = find(&out[from.min(out.len())..], needle.as_bytes()) {
                    return Ok(from.min(out.len()) + i + needle.len());
                }
                drop(out);
                return Err(format!(
                    "{}: no {needle:?} on stdout after byte {from} {} \nstdout: {:?}\nstderr: {:?}",
                    self.what,
                    if ended {
                        format!("(it ended: {:?})", self.status)
                    } else {
                        format!("within {timeout:?}")
                    },
                    self.stdout(),
                    self.stderr()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// [`expect_from`](Self::expect_from) from the start of the output.
    pub fn expect(&mut self, needle: &str, timeout: Duration) -> Result<usize, String> {
        self.expect_from(0, needle, timeout)
    }

    /// The exit status if the child has ended (reaping it).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(s)) = c.try_wait() {
                    self.status = Some(s);
                }
            }
        }
        self.status
    }

    /// Waits up to `timeout` for the child to end; `None` if it did not (it is then
    /// still running: drop or [`kill`](Self::kill) it).
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_status() {
                // Let the reader threads take the last bytes from the pipes.
                let settle = Instant::now() + Duration::from_millis(200);
                while Arc::strong_count(&self.out) > 1 && Instant::now() < settle {
                    std::thread::sleep(Duration::from_millis(2));
                }
                while Arc::strong_count(&self.err) > 1 && Instant::now() < settle {
                    std::thread::sleep(Duration::from_millis(2));
                }
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The exit code of an ended child: its code, or 128 + the signal that ended it.
    pub fn code(status: ExitStatus) -> i32 {
        status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(-1)
    }

    /// SIGKILLs the child by PID (a catchable signal would be forwarded by ctr to the
    /// task) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            if self.status.is_none() {
                let _ = c.kill();
                if let Ok(s) = c.wait() {
                    self.status = Some(s);
                }
            }
        }
        self.stdin = None;
    }

    /// A description for failure messages: what it is, status, output.
    pub fn describe(&self) -> String {
        format!(
            "{} (status {:?})\nstdout: {:?}\nstderr: {:?}",
            self.what,
            self.status,
            self.stdout(),
            self.stderr()
        )
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.kill();
    }
}

fn collect<R: Read + Send + 'static>(r: Option<R>, sink: Arc<Mutex<Vec<u8>>>) {
    let Some(mut r) = r else { return };
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => lock(&sink).extend_from_slice(&buf[..n]),
            }
        }
        // Dropping `sink` here lowers the strong count: `Session::wait` sees the end.
    });
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    crate::find(hay, needle)
}

/// `s` quoted for `sh -c` (single quotes).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@+".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// `script -qec "<cmd>" /dev/null`: runs `cmd` on a pseudo-terminal (ctr `-t` needs
/// one) with our pipes on the outside.
pub fn script_command(cmd: &Command) -> Command {
    let mut line: Vec<String> = vec![shell_quote(&cmd.get_program().to_string_lossy())];
    line.extend(cmd.get_args().map(|a| shell_quote(&a.to_string_lossy())));
    let mut s = Command::new("script");
    s.args(["-qec", &line.join(" "), "/dev/null"]);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => {
                s.env(k, v);
            }
            None => {
                s.env_remove(k);
            }
        }
    }
    if let Some(d) = cmd.get_current_dir() {
        s.current_dir(d);
    }
    s
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes; whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The command line of `pid`, one string per argument (empty if it is gone).
pub fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `pid` is a live process (exists and is not a zombie).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(s) = std::fs::read(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some(close) = s.iter().rposition(|&b| b == b')') else {
        return false;
    };
    let state = s.get(close + 2).copied().unwrap_or(b'?');
    state != b'Z' && state != b'X'
}

/// Whether `hay` names `id` as a word of its own: an occurrence not preceded or
/// followed by an ASCII alphanumeric or `-` (ids and namespace names are made of
/// those, so `run-1-2` is not found in `micrun-run-1-23`).
pub fn mentions(hay: &str, id: &str) -> bool {
    if id.is_empty() {
        return false;
    }
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-');
    hay.match_indices(id).any(|(i, _)| {
        !word(hay[..i].chars().next_back()) && !word(hay[i + id.len()..].chars().next())
    })
}

/// Live processes (not this one, not zombies) with an argument that
/// [`mentions`] `id`.
pub fn processes_mentioning(id: &str) -> Vec<(u32, Vec<String>)> {
    let me = std::process::id();
    let mut v = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return v;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let args = cmdline(pid);
        if args.iter().any(|a| mentions(a, id)) && pid_alive(pid) {
            v.push((pid, args));
        }
    }
    v
}

/// Mount points at or below `dir` (from `/proc/self/mountinfo`).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|p| p.starts_with(dir))
        .collect()
}

fn unescape_mount_path(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(std::ffi::OsStr::from_bytes(&out))
}

/// Every path under `dir` (recursively, not following symlinks) whose path relative
/// to `dir` [`mentions`] `id`.
pub fn paths_mentioning(dir: &Path, id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap_or(&p);
            if mentions(&rel.to_string_lossy(), id) {
                found.push(p.clone());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    found
}

/// The unix socket path in a bundle's `address` file (`unix:///run/containerd/s/..`).
pub fn shim_socket_of(bundle: &Path) -> Option<PathBuf> {
    let a = std::fs::read_to_string(bundle.join("address")).ok()?;
    let a = a.trim();
    let p = a.strip_prefix("unix://").unwrap_or(a);
    Path::new(p).is_absolute().then(|| PathBuf::from(p))
}

/// A container id unique in this process: `<tag>-<pid>-<n>`.
pub fn unique_id(tag: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{tag}-{}-{n}", std::process::id())
}

/// sha256 of `data` as 64 lowercase hex digits.
pub fn sha256_hex(data: &[u8]) -> String {
    crate::oci::sha256(data)
        .trim_start_matches("sha256:")
        .to_string()
}

// ---------------------------------------------------------------------------
// The `micrun` command (image tests).

/// Builds `micrun` (debug) like [`shim_binary`] and returns its path. Built once per
/// process.
pub fn micrun_binary() -> PathBuf {
    static LOCK: Mutex<Option<PathBuf>> = Mutex::new(None);
    built(&LOCK, "micrun")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_whole_ids_only() {
        assert!(mentions("run-1-2", "run-1-2"));
        assert!(mentions("/s/micrun-ns-1-4/run-1-2/uart.sock", "run-1-2"));
        assert!(mentions("path=/x/run-1-2.json", "run-1-2"));
        assert!(!mentions("micrun-run-1-23", "run-1-2"));
        assert!(!mentions("/s/micrun-run-1-2", "run-1-2"));
        assert!(!mentions("run-1-20", "run-1-2"));
        assert!(!mentions("anything", ""));
    }

    #[test]
    fn config_toml() {
        let c = MicrunConfig::for_tests(PathBuf::from("/tmp/x \"y\"/s"));
        let t = c.to_toml();
        assert!(t.contains("state_dir = \"/tmp/x \\\"y\\\"/s\"\n"), "{t}");
        assert!(t.contains("[sim]\nenable = true\n"), "{t}");
        assert!(t.contains("liveness_window = \"2s\"\n"), "{t}");
        assert!(t.contains("ping_interval = \"500ms\"\n"), "{t}");
        assert!(
            t.contains("[qemu]\nbinary = \"qemu-system-aarch64\"\n"),
            "{t}"
        );
        // The shim's own parser takes it, with the values meant.
        let parsed = micrun_shim::config::Config::from_str(&t, Path::new("test.toml"))
            .unwrap_or_else(|e| panic!("{e}\n{t}"));
        assert!(parsed.sim.enable);
        assert_eq!(parsed.state_dir, c.state_dir);
        assert_eq!(parsed.lifecycle.liveness_window, Duration::from_secs(2));
        assert_eq!(parsed.lifecycle.ping_interval, Duration::from_millis(500));
        assert_eq!(parsed.lifecycle.stop_grace, Duration::from_secs(3));
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("ctr"), "ctr");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
