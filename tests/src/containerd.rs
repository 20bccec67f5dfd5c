//! A private containerd for end-to-end tests, driven with `ctr`.
//!
//! [`Containerd::start`] runs Debian's `containerd` on a fresh temp dir (root,
//! state, gRPC and ttrpc sockets, opt dir, a version 2 `config.toml`), never
//! touching `/etc/containerd` or the system socket, and returns once `ctr version`
//! answers. [`Containerd::start_release`] runs another [`Release`] (1.7, 2.1 from
//! `.ci/fetch-newer`) the same way with that release's `ctr`; for 2.x the config
//! is `version = 3` (plugin sections renamed, NRI turned off, the `micrun` CRI
//! runtime registered). Both formats register the CRI runtime `micrun` (→
//! `io.containerd.mica.v2`, micrun's annotations passed as the globs
//! `org.openeuler.micrun.*`), the sandbox image [`SANDBOX_IMAGE`], the CRI
//! streaming server (attach, exec) on `127.0.0.1` with a free port, and
//! `restrict_oom_score_adj` (runc pods need it on hosts where a negative
//! `oom_score_adj` cannot be written). Everything of 2.x outside the temp dir is where 1.x puts
//! it: the shim sockets under `/run/containerd/s/`. The daemon's `PATH` is the
//! caller's shim dirs ([`ContainerdOpts::shim_dirs`]) before the system `PATH`, so
//! `--runtime io.containerd.mica.v2` finds `containerd-shim-mica-v2` there. Its
//! log is `<tmp>/containerd.log`; every [`Error`] carries its tail. The daemon runs
//! in a process group of its own (a terminal's Ctrl-C does not stop it under the
//! cleanup).
//!
//! Tests work in a [`Namespace`] each: a containerd namespace unique in the
//! process and on the machine (runc keeps state under `/run/containerd/runc/<ns>`
//! and ctr puts cgroups at `/<ns>/<id>`, both shared by all daemons), so tests can
//! share one daemon ([`Containerd::shared`]) and run in parallel.
//! [`Containerd::events`] records `ctr events` (e.g. to check the order of task
//! events, or to read an exit status without deleting the task).
//!
//! Cleanup, also on unwind from a panic:
//! - dropping a [`Namespace`] kills (SIGKILL) and deletes its tasks, removes its
//!   containers and images, the namespace and its empty cgroups;
//! - dropping the [`Containerd`] does that for every namespace of the daemon
//!   (first starting the daemon again if it died), stops the daemon by its PID
//!   (SIGTERM, SIGKILL after a deadline) and reaps it, then kills by PID what
//!   outlived it (processes with an argument under the temp dir, i.e. its shims,
//!   and their descendants, i.e. the workloads), lazily unmounts what is still
//!   mounted under the temp dir, removes by exact path the shim sockets of this
//!   daemon under `/run/containerd/s/` (read from the bundles' `address` files,
//!   and only names that were not there before it started), runc's state dir and
//!   the cgroups of each namespace, and the temp dir. Directories under
//!   `/run/containerd` that did not exist before the first daemon of the process
//!   started are removed (only if empty) when the last one stops;
//! - a test process killed outright (SIGKILL, timeout) cannot do any of this: the
//!   next process that starts a daemon runs [`sweep_stale`], which does it for
//!   every daemon dir, namespace and cgroup named after a PID that is dead.
//!
//! Every `ctr run` made here uses `--fifo-dir <tmp>/fifo`, so nothing lands in
//! `/run/containerd/fifo`. Every `ctr` call has a deadline: a hung `ctr` is killed
//! and reported, not waited for. Processes are only ever signalled by PID.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// The CRI plugin's sandbox (pause) image in every config written here. No
/// registry is reachable: tests that use CRI import it into `k8s.io` first
/// (`micrun_tests::cri::import_pause_image`).
pub const SANDBOX_IMAGE: &str = "localhost/micrun/pause:1";
/// Where containerd shims put their sockets, whatever the daemon's config says.
pub const SHIM_SOCKET_DIR: &str = "/run/containerd/s";
/// Where runc (as started by `containerd-shim-runc-v2`) keeps container state,
/// one directory per namespace.
pub const RUNC_ROOT: &str = "/run/containerd/runc";
/// The runtime name of Debian's runc shim, the stand-in workload runtime.
pub const RUNC_RUNTIME: &str = "io.containerd.runc.v2";

/// How long the daemon may take to answer `ctr version` after it is started.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the daemon may take to exit after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The deadline of one ordinary `ctr` call.
pub const CTR_TIMEOUT: Duration = Duration::from_secs(60);
/// The deadline of a foreground `ctr run`.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a killed task may take to reach STOPPED during cleanup.
const CLEANUP_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A failure of the harness or of a `ctr` command, with what is needed to see why:
/// the command, its status and output, and the tail of the daemon's log.
#[derive(Clone)]
pub struct Error(String);

impl Error {
    fn new(msg: impl Into<String>) -> Error {
        Error(msg.into())
    }

    /// The whole message.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// `unwrap()` prints Debug: make it the readable, multi-line message.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Results of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How to start a private containerd.
#[derive(Debug, Clone, Default)]
pub struct ContainerdOpts {
    /// Directories put before the system `PATH` of the daemon (and so of the shims
    /// it starts), e.g. the cargo target dir holding `containerd-shim-mica-v2`.
    pub shim_dirs: Vec<PathBuf>,
    /// Extra environment of the daemon, inherited by the shims (e.g. `MICRUN_CONFIG`).
    pub env: Vec<(String, String)>,
}

/// A containerd release to run: its daemon and its `ctr`. The release decides the
/// config file's format: `version = 2` for 1.x, `version = 3` for 2.x (see
/// [`Release::config_version`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// `major.minor`, e.g. `"1.6"`, `"2.1"`.
    pub version: String,
    /// The `containerd` binary (a bare name is looked up in the daemon's `PATH`).
    pub containerd: PathBuf,
    /// The `ctr` of the same release.
    pub ctr: PathBuf,
}

impl Default for Release {
    /// The system's containerd and ctr (Debian 12: 1.6), found in `PATH`.
    fn default() -> Release {
        Release {
            version: "1.6".into(),
            containerd: "containerd".into(),
            ctr: "ctr".into(),
        }
    }
}

impl Release {
    /// containerd `version` as [`crate::peers::containerd`] finds it: `"1.6"` is
    /// the system's, `"1.7"` and `"2.1"` the ones `.ci/fetch-newer` unpacks.
    pub fn of(version: &str) -> Release {
        let (containerd, ctr) = crate::peers::containerd(version);
        Release {
            version: version.into(),
            containerd,
            ctr,
        }
    }

    /// The major version (1 or 2).
    pub fn major(&self) -> u32 {
        self.version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(1)
    }

    /// The `version` of the config file this release reads natively: 2 for 1.x,
    /// 3 for 2.x (2.x converts a version 2 file on every start and warns).
    pub fn config_version(&self) -> u32 {
        if self.major() >= 2 {
            3
        } else {
            2
        }
    }

    /// The directory of the release's binaries, when they are given by path (it
    /// goes on the daemon's `PATH`, so the release's own `containerd-shim-runc-v2`
    /// serves runc tasks).
    fn bin_dir(&self) -> Option<&Path> {
        self.containerd
            .parent()
            .filter(|d| self.containerd.is_absolute() && !d.as_os_str().is_empty())
    }
}

/// The state of a task as `ctr task ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    Created,
    Running,
    Stopped,
    Paused,
    Pausing,
    /// Anything else `ctr` printed (e.g. `UNKNOWN`).
    Other(String),
}

impl TaskState {
    fn parse(s: &str) -> TaskState {
        match s {
            "CREATED" => TaskState::Created,
            "RUNNING" => TaskState::Running,
            "STOPPED" => TaskState::Stopped,
            "PAUSED" => TaskState::Paused,
            "PAUSING" => TaskState::Pausing,
            other => TaskState::Other(other.into()),
        }
    }
}

/// One row of `ctr task ls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    pub id: String,
    /// The task's PID as the shim reports it (0 when it has none).
    pub pid: u32,
    pub state: TaskState,
}

/// Directories under `/run/containerd` that did not exist when the first live
/// daemon of this process started, and how many daemons are live.
struct RunDirs {
    live: usize,
    created: Vec<PathBuf>,
}

static RUN_DIRS: Mutex<RunDirs> = Mutex::new(RunDirs {
    live: 0,
    created: Vec::new(),
});

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding a lock must not stop cleanup.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    // containerd namespaces: [A-Za-z0-9]+ joined by single [._-].
    let mut clean = String::new();
    for c in tag.chars() {
        if c.is_ascii_alphanumeric() {
            clean.push(c.to_ascii_lowercase());
        } else if !clean.is_empty() && !clean.ends_with('-') {
            clean.push('-');
        }
    }
    let clean = clean.trim_end_matches('-');
    let clean = if clean.is_empty() { "t" } else { clean };
    format!("micrun-{clean}-{}-{n}", std::process::id())
}

/// A private containerd daemon. See the module docs.
pub struct Containerd {
    dir: PathBuf,
    opts: ContainerdOpts,
    release: Release,
    path_env: OsString,
    daemon: Mutex<Option<Child>>,
    /// Names in `/run/containerd/s` before this daemon started.
    shim_dir_before: BTreeSet<OsString>,
    /// Shim sockets of this daemon seen in `address` files (to remove at the end).
    shim_sockets: Mutex<BTreeSet<PathBuf>>,
    /// Every namespace handed out or seen.
    namespaces: Mutex<BTreeSet<String>>,
    /// The daemon answered at least once (else Drop does not try to start it).
    ever_ready: std::sync::atomic::AtomicBool,
    registered: bool,
}

impl fmt::Debug for Containerd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Containerd")
            .field("dir", &self.dir)
            .field("pid", &self.pid())
            .finish_non_exhaustive()
    }
}

impl Containerd {
    /// Starts a private containerd with the system `PATH` and no extra environment.
    pub fn start() -> Result<Containerd> {
        Containerd::start_with(ContainerdOpts::default())
    }

    /// Starts a private containerd of the system's release; returns once `ctr
    /// version` answers.
    pub fn start_with(opts: ContainerdOpts) -> Result<Containerd> {
        Containerd::start_release(Release::default(), opts)
    }

    /// Starts a private containerd of `release` (its config in the release's
    /// format, its `ctr` for every command); returns once `ctr version` answers.
    pub fn start_release(release: Release, opts: ContainerdOpts) -> Result<Containerd> {
        let dir = std::env::temp_dir().join(unique("ctrd"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| Error::new(format!("create {dir:?}: {e}")))?;
        let mut path_dirs = opts.shim_dirs.clone();
        path_dirs.extend(release.bin_dir().map(Path::to_path_buf));
        let path_env = daemon_path(&path_dirs);
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(|| {
            sweep_stale();
        });
        {
            let mut g = lock(&RUN_DIRS);
            if g.live == 0 {
                g.created = [
                    "/run/containerd",
                    SHIM_SOCKET_DIR,
                    RUNC_ROOT,
                    "/run/containerd/fifo",
                ]
                .iter()
                .map(PathBuf::from)
                .filter(|p| fs::symlink_metadata(p).is_err())
                .collect();
            }
            g.live += 1;
        }
        let shim_dir_before = fs::read_dir(SHIM_SOCKET_DIR)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        // From here on, Drop cleans up whatever happens.
        let cd = Containerd {
            dir,
            opts,
            release,
            path_env,
            daemon: Mutex::new(None),
            shim_dir_before,
            shim_sockets: Mutex::new(BTreeSet::new()),
            namespaces: Mutex::new(BTreeSet::new()),
            ever_ready: std::sync::atomic::AtomicBool::new(false),
            registered: true,
        };
        for d in ["root", "state", "opt", "fifo"] {
            fs::create_dir_all(cd.dir.join(d))
                .map_err(|e| Error::new(format!("create {:?}: {e}", cd.dir.join(d))))?;
        }
        fs::write(cd.config_path(), cd.config_toml())
            .map_err(|e| Error::new(format!("write {:?}: {e}", cd.config_path())))?;
        cd.spawn_daemon()?;
        Ok(cd)
    }

    /// A daemon shared by every caller in this process while one of them holds it:
    /// tests running in parallel use one daemon, each in its own [`Namespace`].
    /// It stops when the last holder drops it. Do not [`restart`](Self::restart)
    /// a shared daemon.
    pub fn shared() -> Result<Arc<Containerd>> {
        static SHARED: Mutex<Weak<Containerd>> = Mutex::new(Weak::new());
        let mut g = lock(&SHARED);
        if let Some(cd) = g.upgrade() {
            return Ok(cd);
        }
        let cd = Arc::new(Containerd::start()?);
        *g = Arc::downgrade(&cd);
        Ok(cd)
    }

    /// The temp dir holding everything of this daemon.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The gRPC socket (`ctr -a`).
    pub fn address(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// The ttrpc socket.
    pub fn ttrpc_address(&self) -> PathBuf {
        self.dir.join("containerd.sock.ttrpc")
    }

    /// containerd's `root` dir.
    pub fn root_dir(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// containerd's `state` dir; bundles are under `io.containerd.runtime.v2.task/<ns>/<id>`.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// The bundle dir of task `id` in namespace `ns`.
    pub fn bundle_dir(&self, ns: &str, id: &str) -> PathBuf {
        self.state_dir()
            .join("io.containerd.runtime.v2.task")
            .join(ns)
            .join(id)
    }

    /// The dir given to every `ctr run` as `--fifo-dir`.
    pub fn fifo_dir(&self) -> PathBuf {
        self.dir.join("fifo")
    }

    /// The daemon's config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.toml")
    }

    /// The daemon's log (stdout and stderr, appended across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("containerd.log")
    }

    /// The `PATH` the daemon runs with.
    pub fn daemon_path_env(&self) -> &OsString {
        &self.path_env
    }

    /// The options it was started with.
    pub fn opts(&self) -> &ContainerdOpts {
        &self.opts
    }

    /// The containerd release it runs.
    pub fn release(&self) -> &Release {
        &self.release
    }

    /// The `ctr` of its release.
    pub fn ctr_binary(&self) -> &Path {
        &self.release.ctr
    }

    /// The PID of the running daemon, if it runs.
    pub fn pid(&self) -> Option<u32> {
        lock(&self.daemon).as_ref().map(Child::id)
    }

    /// The last `max_lines` lines of the daemon's log.
    pub fn log_tail(&self, max_lines: usize) -> String {
        let log = fs::read(self.log_path()).unwrap_or_default();
        let log = String::from_utf8_lossy(&log);
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(max_lines)..].join("\n")
    }

    fn config_toml(&self) -> String {
        if self.release.config_version() >= 3 {
            return self.config_toml_v3();
        }
        let d = &self.dir;
        format!(
            r#"version = 2
root = "{root}"
state = "{state}"

[grpc]
  address = "{grpc}"

[ttrpc]
  address = "{ttrpc}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  # attach/exec/port-forward URLs: loopback only, a free port.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

# Naming one runtime replaces 1.x's default table: runc (the default handler) again.
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.micrun]
  runtime_type = "io.containerd.mica.v2"
  pod_annotations = ["org.openeuler.micrun.*"]
  container_annotations = ["org.openeuler.micrun.*"]
"#,
            pause = SANDBOX_IMAGE,
            root = d.join("root").display(),
            state = d.join("state").display(),
            grpc = self.address().display(),
            ttrpc = self.ttrpc_address().display(),
            opt = d.join("opt").display(),
        )
    }

    /// The same daemon in containerd 2.x's format. Plugin sections are named
    /// `'io.containerd.<kind>.v1.<name>'`; the CRI runtimes moved from
    /// `io.containerd.grpc.v1.cri` to `io.containerd.cri.v1.runtime`. NRI, off in
    /// 1.x, is on by default in 2.x with a socket at `/var/run/nri/nri.sock`
    /// shared by every daemon on the machine: turned off. The `micrun` CRI runtime
    /// is registered as docs/shim.md shows (micrun's annotations passed through).
    fn config_toml_v3(&self) -> String {
        let d = &self.dir;
        format!(
            r#"version = 3
root = "{root}"
state = "{state}"

[grpc]
  address = "{grpc}"

[ttrpc]
  address = "{ttrpc}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"

[plugins."io.containerd.nri.v1.nri"]
  disable = true

# attach/exec/port-forward URLs: loopback only, a free port.
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = "{pause}"

[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.micrun]
  runtime_type = "io.containerd.mica.v2"
  pod_annotations = ["org.openeuler.micrun.*"]
  container_annotations = ["org.openeuler.micrun.*"]
"#,
            pause = SANDBOX_IMAGE,
            root = d.join("root").display(),
            state = d.join("state").display(),
            grpc = self.address().display(),
            ttrpc = self.ttrpc_address().display(),
            opt = d.join("opt").display(),
        )
    }

    /// Starts the daemon process on this dir and waits until it answers.
    fn spawn_daemon(&self) -> Result<()> {
        // containerd silently falls back to its system defaults (/var/lib/containerd,
        // /run/containerd/containerd.sock) when --config names no file: never let it.
        if !self.config_path().is_file() {
            return Err(Error::new(format!(
                "refusing to start containerd: {:?} is missing",
                self.config_path()
            )));
        }
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| Error::new(format!("open {:?}: {e}", self.log_path())))?;
        let log2 = log
            .try_clone()
            .map_err(|e| Error::new(format!("dup log fd: {e}")))?;
        let mut cmd = Command::new(&self.release.containerd);
        cmd.arg("--config")
            .arg(self.config_path())
            .env("PATH", &self.path_env)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            // A process group of its own: a Ctrl-C at the terminal reaches the test
            // or the demo, whose cleanup goes through the daemon, not the daemon too.
            .process_group(0);
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().map_err(|e| {
            Error::new(format!(
                "cannot start containerd {} ({}): {e} (apt-get install containerd runc; \
                 bash .ci/fetch-newer for 1.7 and 2.1)",
                self.release.version,
                self.release.containerd.display()
            ))
        })?;
        *lock(&self.daemon) = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let sock = self.address();
        let mut last = String::new();
        loop {
            {
                let mut g = lock(&self.daemon);
                let Some(child) = g.as_mut() else {
                    return Err(Error::new("containerd is not running"));
                };
                if let Ok(Some(status)) = child.try_wait() {
                    *g = None;
                    drop(g);
                    return Err(Error::new(format!(
                        "containerd exited before it was ready: {status}\n--- containerd log (tail) ---\n{}",
                        self.log_tail(40)
                    )));
                }
            }
            if sock.exists() {
                let out = self.ctr_with(None, &["version"], None, Duration::from_secs(5));
                if out.status.success() {
                    self.ever_ready.store(true, Ordering::Relaxed);
                    return Ok(());
                }
                last = String::from_utf8_lossy(&out.stderr).into_owned();
            }
            if Instant::now() >= deadline {
                return Err(Error::new(format!(
                    "containerd did not answer `ctr version` within {READY_TIMEOUT:?}: {last}\n--- containerd log (tail) ---\n{}",
                    self.log_tail(40)
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Runs `ctr -a <sock> ARGS` (no namespace flag) with the default deadline.
    pub fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_with(None, args, None, CTR_TIMEOUT)
    }

    /// Runs `ctr -a <sock> [-n NS] ARGS`, feeding `stdin` (else /dev/null), killing
    /// it after `timeout`. Never panics: a ctr that cannot start or that hangs
    /// gives a failed [`Output`] whose stderr says so.
    pub fn ctr_with(
        &self,
        ns: Option<&str>,
        args: &[&str],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Output {
        let mut cmd = Command::new(&self.release.ctr);
        cmd.arg("--address").arg(self.address());
        if let Some(ns) = ns {
            cmd.arg("--namespace").arg(ns);
        }
        cmd.args(args)
            .env("PATH", &self.path_env)
            .env_remove("CONTAINERD_ADDRESS")
            .env_remove("CONTAINERD_NAMESPACE")
            .current_dir(&self.dir);
        run_with_deadline(cmd, stdin, timeout)
    }

    /// Like [`ctr_with`](Self::ctr_with), but a non-zero exit is an [`Error`]
    /// naming the command, its output and the daemon's log tail.
    pub fn ctr_ok(&self, ns: Option<&str>, args: &[&str]) -> Result<Output> {
        let out = self.ctr_with(ns, args, None, CTR_TIMEOUT);
        if out.status.success() {
            Ok(out)
        } else {
            Err(self.ctr_error(ns, args, &out))
        }
    }

    fn ctr_error(&self, ns: Option<&str>, args: &[&str], out: &Output) -> Error {
        Error::new(format!(
            "`ctr{} {}` failed: {}\nstdout: {}\nstderr: {}\n--- containerd log (tail) ---\n{}",
            ns.map(|n| format!(" -n {n}")).unwrap_or_default(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout).trim_end(),
            String::from_utf8_lossy(&out.stderr).trim_end(),
            self.log_tail(20)
        ))
    }

    /// A fresh namespace, unique in this process and on this machine; dropping the
    /// handle cleans it up.
    pub fn namespace(&self, tag: &str) -> Namespace<'_> {
        let name = unique(tag);
        lock(&self.namespaces).insert(name.clone());
        Namespace { cd: self, name }
    }

    /// Starts recording the daemon's events (`ctr events`, all namespaces). Returns
    /// once the subscription is live: a marker event (creating and removing a
    /// namespace) has been seen. The recording ends when the daemon stops or
    /// restarts; start a new one after [`restart`](Self::restart).
    pub fn events(&self) -> Result<Events<'_>> {
        let mut cmd = Command::new(&self.release.ctr);
        cmd.arg("--address")
            .arg(self.address())
            .arg("events")
            .env("PATH", &self.path_env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::new(format!("cannot run `ctr events`: {e}")))?;
        let stdout = child.stdout.take();
        let stderr = reader(child.stderr.take());
        let log: Arc<Mutex<Vec<Event>>> = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let thread = std::thread::spawn(move || {
            let Some(stdout) = stdout else { return };
            let r = std::io::BufReader::new(stdout);
            for line in std::io::BufRead::lines(r) {
                let Ok(line) = line else { break };
                if let Some(e) = Event::parse(&line) {
                    lock(&sink).push(e);
                }
            }
        });
        let mut events = Events {
            cd: self,
            child: Some(child),
            log,
            threads: vec![thread],
            stderr: Some(stderr),
        };
        let marker = unique("events-marker");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let _ = self.ctr_ok(None, &["namespaces", "create", &marker]);
            let _ = self.ctr_ok(None, &["namespaces", "rm", &marker]);
            let seen = lock(&events.log).iter().any(|e| {
                e.topic.starts_with("/namespaces/") && e.payload["name"] == marker.as_str()
            });
            if seen {
                return Ok(events);
            }
            let ended = events.threads.iter().all(|t| t.is_finished());
            if ended || Instant::now() >= deadline {
                let stderr = events
                    .stderr
                    .take()
                    .and_then(|t| if ended { t.join().ok() } else { None })
                    .unwrap_or_default();
                return Err(Error::new(format!(
                    "`ctr events` {} (stderr: {})\n--- containerd log (tail) ---\n{}",
                    if ended {
                        "exited"
                    } else {
                        "saw no marker event in time"
                    },
                    String::from_utf8_lossy(&stderr).trim_end(),
                    self.log_tail(20)
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the daemon (SIGTERM, SIGKILL after a deadline), reaps it and starts it
    /// again on the same dirs and config. Shims and their tasks live on: containerd
    /// reconnects to them through `<bundle>/address`.
    pub fn restart(&self) -> Result<()> {
        self.record_shim_sockets();
        self.stop_daemon();
        self.spawn_daemon()
    }

    /// Whether the daemon process is alive (not exited).
    pub fn is_running(&self) -> bool {
        let mut g = lock(&self.daemon);
        match g.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGTERM, wait, SIGKILL after [`STOP_TIMEOUT`], reap.
    fn stop_daemon(&self) {
        let Some(mut child) = lock(&self.daemon).take() else {
            return;
        };
        if let Ok(None) = child.try_wait() {
            signal(child.id(), libc::SIGTERM);
            let deadline = Instant::now() + STOP_TIMEOUT;
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = child.kill();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }
        let _ = child.wait();
    }

    /// The shim sockets named by the `address` files of this daemon's bundles: the
    /// ones under [`SHIM_SOCKET_DIR`] that were not there before the daemon started.
    fn record_shim_sockets(&self) {
        let root = self.state_dir().join("io.containerd.runtime.v2.task");
        let mut found = Vec::new();
        for ns in read_dir_names(&root) {
            for id in read_dir_names(&root.join(&ns)) {
                let Ok(addr) = fs::read_to_string(root.join(&ns).join(&id).join("address")) else {
                    continue;
                };
                if let Some(p) = socket_path(addr.trim()) {
                    found.push(p);
                }
            }
            lock(&self.namespaces).insert(ns.to_string_lossy().into_owned());
        }
        let mut g = lock(&self.shim_sockets);
        for p in found {
            let ours = p.parent() == Some(Path::new(SHIM_SOCKET_DIR))
                && p.file_name()
                    .is_some_and(|n| !self.shim_dir_before.contains(n));
            if ours {
                g.insert(p);
            }
        }
    }

    /// The shim sockets recorded so far (created by shims of this daemon).
    pub fn shim_sockets(&self) -> Vec<PathBuf> {
        self.record_shim_sockets();
        lock(&self.shim_sockets).iter().cloned().collect()
    }

    /// PIDs of live processes started for this daemon: the shims, recognised by
    /// this daemon's socket path on their command line (`-address <sock>`).
    pub fn shim_pids(&self) -> Vec<u32> {
        let daemon = self.pid();
        let needle = self.address();
        let needle = needle.as_os_str().as_bytes();
        let me = std::process::id();
        procs()
            .into_iter()
            .filter(|&(pid, _)| Some(pid) != daemon && pid != me)
            .filter(|(_, cmdline)| cmdline.split(|&b| b == 0).any(|a| a == needle))
            .map(|(pid, _)| pid)
            .collect()
    }

    /// Best effort: bring the daemon back if it died, so that cleanup can go
    /// through it.
    fn ensure_running_for_cleanup(&self) -> bool {
        if self.is_running() {
            return true;
        }
        if !self.ever_ready.load(Ordering::Relaxed) {
            return false;
        }
        self.stop_daemon();
        self.spawn_daemon().is_ok()
    }

    fn shutdown(&mut self) {
        // 1. Through the daemon: tasks, containers, images, namespaces.
        if self.ensure_running_for_cleanup() {
            let mut all: BTreeSet<String> = lock(&self.namespaces).clone();
            if let Ok(out) = self.ctr_ok(None, &["namespaces", "ls", "-q"]) {
                all.extend(
                    String::from_utf8_lossy(&out.stdout)
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(String::from),
                );
            }
            lock(&self.namespaces).extend(all.iter().cloned());
            for ns in &all {
                self.record_shim_sockets();
                cleanup_namespace(self, ns);
            }
        }
        self.record_shim_sockets();
        // 2. The daemon.
        self.stop_daemon();
        // 3.–6. Whatever outlived it, by PID and by exact path; the temp dir.
        let sockets = lock(&self.shim_sockets).clone();
        let namespaces = lock(&self.namespaces).clone();
        purge(&self.dir, &sockets, &namespaces);
        if self.registered {
            self.registered = false;
            let mut g = lock(&RUN_DIRS);
            g.live -= 1;
            if g.live == 0 {
                for d in std::mem::take(&mut g.created).iter().rev() {
                    // Only if empty: never removes what anyone else put there.
                    let _ = fs::remove_dir(d);
                }
            }
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One event as `ctr events` prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The namespace it happened in.
    pub namespace: String,
    /// The topic, e.g. `/tasks/exit`.
    pub topic: String,
    /// The event's fields, e.g. `{"container_id":"x","exit_status":143,...}`.
    pub payload: serde_json::Value,
}

impl Event {
    /// Parses `DATE TIME ZONE ZONENAME NAMESPACE TOPIC JSON`.
    fn parse(line: &str) -> Option<Event> {
        let mut rest = line;
        let mut field = || {
            let t = rest.trim_start();
            let end = t.find(' ').unwrap_or(t.len());
            let (f, r) = t.split_at(end);
            rest = r;
            f
        };
        for _ in 0..4 {
            field();
        }
        let namespace = field().to_string();
        let topic = field().to_string();
        if !topic.starts_with('/') {
            return None;
        }
        let payload = serde_json::from_str(rest.trim()).unwrap_or(serde_json::Value::Null);
        Some(Event {
            namespace,
            topic,
            payload,
        })
    }

    /// The container (task) the event is about, if any.
    pub fn container_id(&self) -> Option<&str> {
        self.payload["container_id"]
            .as_str()
            .or_else(|| self.payload["id"].as_str())
    }
}

/// A live recording of the daemon's events; see [`Containerd::events`]. Dropping
/// it stops `ctr events`.
pub struct Events<'a> {
    cd: &'a Containerd,
    child: Option<Child>,
    log: Arc<Mutex<Vec<Event>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl fmt::Debug for Events<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Events")
            .field("count", &lock(&self.log).len())
            .finish_non_exhaustive()
    }
}

impl Events<'_> {
    /// Every event recorded so far.
    pub fn all(&self) -> Vec<Event> {
        lock(&self.log).clone()
    }

    /// The events of container `id` in namespace `ns`, in order.
    pub fn of(&self, ns: &str, id: &str) -> Vec<Event> {
        lock(&self.log)
            .iter()
            .filter(|e| e.namespace == ns && e.container_id() == Some(id))
            .cloned()
            .collect()
    }

    /// The topics of [`of`](Self::of), e.g. `["/containers/create", "/tasks/create", ...]`.
    pub fn topics(&self, ns: &str, id: &str) -> Vec<String> {
        self.of(ns, id).into_iter().map(|e| e.topic).collect()
    }

    /// Waits until an event matching `pred` has been recorded; returns the first.
    pub fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Event) -> bool,
    ) -> Result<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = lock(&self.log).iter().find(|e| pred(e)) {
                return Ok(e.clone());
            }
            if Instant::now() >= deadline {
                return Err(Error::new(format!(
                    "no event {what} within {timeout:?}; recorded: {:?}\n--- containerd log (tail) ---\n{}",
                    lock(&self.log).iter().map(|e| format!("{} {}", e.namespace, e.topic)).collect::<Vec<_>>(),
                    self.cd.log_tail(20)
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the `/tasks/exit` event of task `id` in `ns` and returns its exit
    /// status (the task is left as it is).
    pub fn wait_exit(&self, ns: &str, id: &str, timeout: Duration) -> Result<i32> {
        let e = self.wait_for(timeout, &format!("/tasks/exit of {ns}/{id}"), |e| {
            e.namespace == ns && e.topic == "/tasks/exit" && e.container_id() == Some(id)
        })?;
        Ok(e.payload["exit_status"].as_i64().unwrap_or(0) as i32)
    }
}

impl Drop for Events<'_> {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(t) = self.stderr.take() {
            let _ = t.join();
        }
    }
}

/// Removes what a daemon on `dir` left once the daemon is gone: kills (SIGKILL)
/// every process whose command line has an argument under `dir` (its shims, with
/// `-address <dir>/containerd.sock`; a daemon orphaned by a killed test, with
/// `--config <dir>/config.toml`) and their descendants (the workloads), lazily
/// unmounts what is mounted under `dir`, removes the shim `sockets` (only if they
/// are sockets), runc's state dir and the empty cgroups of each of `namespaces`,
/// then `dir`.
fn purge(dir: &Path, sockets: &BTreeSet<PathBuf>, namespaces: &BTreeSet<String>) {
    let mut prefix = dir.as_os_str().as_bytes().to_vec();
    prefix.push(b'/');
    let me = std::process::id();
    let roots: Vec<u32> = procs()
        .into_iter()
        .filter(|&(pid, _)| pid != me)
        .filter(|(_, cmdline)| cmdline.split(|&b| b == 0).any(|a| a.starts_with(&prefix)))
        .map(|(pid, _)| pid)
        .collect();
    if !roots.is_empty() {
        let all: Vec<u32> = roots.iter().copied().chain(descendants(&roots)).collect();
        for &pid in &all {
            signal(pid, libc::SIGKILL);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while all.iter().any(|&p| alive_not_zombie(p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    unmount_under(dir);
    for p in sockets {
        if p.starts_with(SHIM_SOCKET_DIR)
            && fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket())
        {
            let _ = fs::remove_file(p);
        }
    }
    for ns in namespaces {
        let p = Path::new(RUNC_ROOT).join(ns);
        if !ns.is_empty() && !ns.contains('/') && p.is_dir() {
            let _ = fs::remove_dir_all(&p);
        }
        remove_cgroups(ns);
    }
    let _ = fs::remove_dir_all(dir);
}

/// `micrun-<tag>-<pid>-<n>` → `pid` (the naming of [`unique`]).
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("micrun-")?;
    let (rest, n) = rest.rsplit_once('-')?;
    let (_, pid) = rest.rsplit_once('-')?;
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

/// Cleans up after test processes that died without dropping their daemons (a
/// test binary killed by a timeout or SIGKILL): for every `micrun-ctrd-<pid>-<n>`
/// temp dir, runc state dir and cgroup named by this harness whose `<pid>` is no
/// longer alive, kills that daemon and its shims and workloads by PID, and
/// removes what they left by exact path (see the module docs). Runs once per
/// process before the first daemon starts; call it again as you like. Returns
/// the temp dirs it purged.
pub fn sweep_stale() -> Vec<PathBuf> {
    static SWEEP: Mutex<()> = Mutex::new(());
    let _g = lock(&SWEEP);
    let me = std::process::id();
    let dead = |pid: u32| pid != me && !alive_not_zombie(pid);
    let mut dirs: Vec<(u32, PathBuf)> = Vec::new();
    let tmp = std::env::temp_dir();
    for name in read_dir_names(&tmp) {
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with("micrun-ctrd-") {
            continue;
        }
        if let Some(pid) = owner_pid(name).filter(|&p| dead(p)) {
            dirs.push((pid, tmp.join(name)));
        }
    }
    let mut namespaces: BTreeSet<String> = BTreeSet::new();
    let places: Vec<PathBuf> = std::iter::once(PathBuf::from(RUNC_ROOT))
        .chain(cgroup_mounts())
        .collect();
    for place in &places {
        for name in read_dir_names(place) {
            let Some(name) = name.to_str() else { continue };
            if owner_pid(name).is_some_and(dead) {
                namespaces.insert(name.to_string());
            }
        }
    }
    let mut purged = Vec::new();
    for (_, dir) in &dirs {
        let mut sockets = BTreeSet::new();
        let root = dir.join("state/io.containerd.runtime.v2.task");
        for ns in read_dir_names(&root) {
            for id in read_dir_names(&root.join(&ns)) {
                if let Some(p) = fs::read_to_string(root.join(&ns).join(&id).join("address"))
                    .ok()
                    .and_then(|a| socket_path(a.trim()))
                {
                    sockets.insert(p);
                }
            }
            namespaces.insert(ns.to_string_lossy().into_owned());
        }
        purge(dir, &sockets, &BTreeSet::new());
        purged.push(dir.clone());
    }
    // Namespaces last: their workloads are dead now, their cgroups can go.
    for ns in &namespaces {
        let p = Path::new(RUNC_ROOT).join(ns);
        if p.is_dir() {
            let _ = fs::remove_dir_all(&p);
        }
        remove_cgroups(ns);
    }
    if !purged.is_empty() && lock(&RUN_DIRS).live == 0 {
        for d in [
            SHIM_SOCKET_DIR,
            RUNC_ROOT,
            "/run/containerd/fifo",
            "/run/containerd",
        ] {
            let _ = fs::remove_dir(d);
        }
    }
    purged
}

/// A containerd namespace for one test. Dropping it kills and deletes its tasks,
/// deletes its containers and images, and removes the namespace.
pub struct Namespace<'a> {
    cd: &'a Containerd,
    name: String,
}

impl fmt::Debug for Namespace<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Namespace")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<'a> Namespace<'a> {
    /// The namespace's name (`ctr -n`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The daemon.
    pub fn containerd(&self) -> &'a Containerd {
        self.cd
    }

    /// Runs `ctr -n NS ARGS` with the default deadline.
    pub fn ctr(&self, args: &[&str]) -> Output {
        self.cd.ctr_with(Some(&self.name), args, None, CTR_TIMEOUT)
    }

    /// Runs `ctr -n NS ARGS`; a non-zero exit is an [`Error`].
    pub fn ctr_ok(&self, args: &[&str]) -> Result<Output> {
        self.cd.ctr_ok(Some(&self.name), args)
    }

    /// `ctr images import --all-platforms TAR` (so that non-linux platforms such as
    /// `zephyr/arm64` are imported too). Returns ctr's stdout.
    pub fn import(&self, tar: &Path) -> Result<String> {
        let tar = tar.to_string_lossy();
        self.import_with(&tar, &["--all-platforms"])
    }

    /// `ctr images import EXTRA TAR`.
    pub fn import_with(&self, tar: &str, extra: &[&str]) -> Result<String> {
        let mut args = vec!["images", "import"];
        args.extend_from_slice(extra);
        args.push(tar);
        let out = self.ctr_ok(&args)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The image names in this namespace.
    pub fn images(&self) -> Result<Vec<String>> {
        let out = self.ctr_ok(&["images", "ls", "-q"])?;
        Ok(lines(&out.stdout))
    }

    /// `ctr run --rm --fifo-dir <tmp>/fifo --runtime RUNTIME EXTRA IMAGE ID ARGS`,
    /// in the foreground with `stdin` (else /dev/null) fed to the task: the
    /// [`Output`]'s status is the task's exit status (ctr exits with it) and its
    /// stdout/stderr are the task's. Killed after [`RUN_TIMEOUT`].
    pub fn run(
        &self,
        image: &str,
        id: &str,
        runtime: &str,
        extra_args: &[&str],
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Output {
        let fifo = self.cd.fifo_dir();
        let fifo = fifo.to_string_lossy();
        let mut a = vec!["run", "--rm", "--fifo-dir", &fifo, "--runtime", runtime];
        a.extend_from_slice(extra_args);
        a.push(image);
        a.push(id);
        a.extend_from_slice(args);
        self.cd.ctr_with(Some(&self.name), &a, stdin, RUN_TIMEOUT)
    }

    /// `ctr run -d --null-io --fifo-dir <tmp>/fifo --runtime RUNTIME EXTRA IMAGE ID
    /// ARGS` (no `--null-io` if EXTRA has `--log-uri` or `--null-io`). Returns once
    /// ctr has started the task.
    pub fn run_detached(
        &self,
        image: &str,
        id: &str,
        runtime: &str,
        extra_args: &[&str],
        args: &[&str],
    ) -> Result<()> {
        let fifo = self.cd.fifo_dir();
        let fifo = fifo.to_string_lossy();
        let mut a = vec!["run", "-d", "--fifo-dir", &fifo, "--runtime", runtime];
        if !extra_args
            .iter()
            .any(|x| x.starts_with("--log-uri") || x.starts_with("--null-io"))
        {
            a.push("--null-io");
        }
        a.extend_from_slice(extra_args);
        a.push(image);
        a.push(id);
        a.extend_from_slice(args);
        let r = self.ctr_ok(&a).map(|_| ());
        self.cd.record_shim_sockets();
        r
    }

    /// Every task of this namespace (`ctr task ls`).
    pub fn tasks(&self) -> Result<Vec<TaskInfo>> {
        let out = self.ctr_ok(&["tasks", "ls"])?;
        Ok(parse_task_ls(&String::from_utf8_lossy(&out.stdout)))
    }

    /// The state of task `id`, `None` if there is no such task.
    pub fn task_state(&self, id: &str) -> Result<Option<TaskState>> {
        Ok(self
            .tasks()?
            .into_iter()
            .find(|t| t.id == id)
            .map(|t| t.state))
    }

    /// Polls `ctr task ls` until task `id` is in `state`.
    pub fn wait_state(&self, id: &str, state: TaskState, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.task_state(id)?;
            if now.as_ref() == Some(&state) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::new(format!(
                    "task {id} in namespace {} is {now:?}, not {state:?}, after {timeout:?}\n--- containerd log (tail) ---\n{}",
                    self.name,
                    self.cd.log_tail(20)
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `ctr task kill -s SIGNAL ID` (SIGNAL as ctr takes it: `SIGTERM`, `9`, ...).
    pub fn kill(&self, id: &str, signal: &str) -> Result<()> {
        self.ctr_ok(&["tasks", "kill", "-s", signal, id])
            .map(|_| ())
    }

    /// Waits until task `id` has exited and returns its exit status, DELETING the
    /// task (the container stays). ctr 1.6 has no `task wait`, and `ctr task rm`
    /// exits 0 whatever the status: this polls `ctr task ls` until STOPPED, then
    /// runs `ctr task rm`, which logs `task ID exit with non-zero exit code N` on
    /// stderr when the status is not 0. (To see the status without deleting, use
    /// [`Containerd::events`] and its `/tasks/exit` event.)
    pub fn wait_exit(&self, id: &str, timeout: Duration) -> Result<i32> {
        self.wait_state(id, TaskState::Stopped, timeout)?;
        let out = self.ctr_ok(&["tasks", "rm", id])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        Ok(parse_nonzero_exit(&stderr).unwrap_or(0))
    }

    /// Deletes task `id` (killed first if it runs) and container `id`. Missing
    /// ones are not an error.
    pub fn delete(&self, id: &str) -> Result<()> {
        if let Some(state) = self.task_state(id)? {
            if state != TaskState::Stopped && state != TaskState::Created {
                let _ = self.kill(id, "SIGKILL");
                self.wait_state(id, TaskState::Stopped, CLEANUP_STOP_TIMEOUT)?;
            }
            let _ = self.ctr(&["tasks", "rm", "-f", id]);
        }
        let containers = lines(&self.ctr_ok(&["containers", "ls", "-q"])?.stdout);
        if containers.iter().any(|c| c == id) {
            self.ctr_ok(&["containers", "rm", id])?;
        }
        Ok(())
    }
}

impl Drop for Namespace<'_> {
    fn drop(&mut self) {
        self.cd.record_shim_sockets();
        cleanup_namespace(self.cd, &self.name);
    }
}

/// Kills (SIGKILL) and deletes every task of `ns`, deletes its containers and
/// images and removes the namespace. Best effort, with deadlines.
fn cleanup_namespace(cd: &Containerd, ns: &str) {
    let Ok(out) = cd.ctr_ok(Some(ns), &["tasks", "ls"]) else {
        return;
    };
    let tasks = parse_task_ls(&String::from_utf8_lossy(&out.stdout));
    for t in &tasks {
        if t.state != TaskState::Stopped && t.state != TaskState::Created {
            let _ = cd.ctr_ok(Some(ns), &["tasks", "kill", "-s", "SIGKILL", &t.id]);
        }
    }
    let deadline = Instant::now() + CLEANUP_STOP_TIMEOUT;
    for t in &tasks {
        loop {
            let stopped = cd
                .ctr_ok(Some(ns), &["tasks", "ls"])
                .map(|o| parse_task_ls(&String::from_utf8_lossy(&o.stdout)))
                .map(|ts| {
                    ts.iter().find(|x| x.id == t.id).is_none_or(|x| {
                        x.state == TaskState::Stopped || x.state == TaskState::Created
                    })
                })
                .unwrap_or(true);
            if stopped || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = cd.ctr_with(Some(ns), &["tasks", "rm", "-f", &t.id], None, CTR_TIMEOUT);
    }
    if let Ok(out) = cd.ctr_ok(Some(ns), &["containers", "ls", "-q"]) {
        for c in lines(&out.stdout) {
            let _ = cd.ctr_ok(Some(ns), &["containers", "rm", &c]);
        }
    }
    if let Ok(out) = cd.ctr_ok(Some(ns), &["images", "ls", "-q"]) {
        let images = lines(&out.stdout);
        if !images.is_empty() {
            let mut a = vec!["images", "rm", "--sync"];
            a.extend(images.iter().map(String::as_str));
            let _ = cd.ctr_ok(Some(ns), &a);
        }
    }
    let _ = cd.ctr_ok(None, &["namespaces", "rm", ns]);
    remove_cgroups(ns);
}

/// The cgroup directories named for namespace `ns` that exist: ctr gives each
/// container the cgroups path `/<ns>/<id>`, and runc leaves `/<ns>` behind in
/// every hierarchy (cgroup v1) or in the unified one (v2) when it deletes the
/// container.
pub fn cgroup_dirs(ns: &str) -> Vec<PathBuf> {
    cgroup_mounts()
        .into_iter()
        .map(|m| m.join(ns))
        .filter(|d| d.is_dir())
        .collect()
}

/// Mount points of cgroup (v1) and cgroup2 file systems that show their
/// hierarchy from its root.
fn cgroup_mounts() -> Vec<PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let fstype = post.split(' ').next()?;
            let f: Vec<&str> = pre.split(' ').collect();
            let point = f.get(4)?;
            ((fstype == "cgroup" || fstype == "cgroup2") && f.get(3) == Some(&"/"))
                .then(|| unescape_mount_path(point))
        })
        .collect()
}

/// Removes the (empty, process-free) cgroups `/<ns>/*` and `/<ns>` in every
/// hierarchy, by exact path. rmdir(2) on a cgroup fails while it has processes
/// or children, so this never removes a cgroup in use; a just-killed process may
/// take a moment to leave, hence the short retry.
fn remove_cgroups(ns: &str) {
    for d in cgroup_dirs(ns) {
        let mut dirs: Vec<PathBuf> = fs::read_dir(&d)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        dirs.push(d);
        for dir in dirs {
            let deadline = Instant::now() + Duration::from_secs(2);
            while fs::remove_dir(&dir).is_err() && dir.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// The `N` of ctr's `task ID exit with non-zero exit code N` warning.
fn parse_nonzero_exit(stderr: &str) -> Option<i32> {
    const KEY: &str = "exit with non-zero exit code ";
    let at = stderr.find(KEY)? + KEY.len();
    let digits: String = stderr[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().ok()
}

/// Parses `ctr task ls` (`TASK PID STATUS` columns).
pub fn parse_task_ls(text: &str) -> Vec<TaskInfo> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let id = f.next()?;
            let pid = f.next()?.parse().unwrap_or(0);
            let state = TaskState::parse(f.next()?);
            Some(TaskInfo {
                id: id.into(),
                pid,
                state,
            })
        })
        .collect()
}

fn lines(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// `dirs` before the system `PATH` (or a default one), with the sbin dirs added if
/// missing (runc is `/usr/sbin/runc`).
fn daemon_path(dirs: &[PathBuf]) -> OsString {
    let system = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    let mut parts: Vec<PathBuf> = dirs.to_vec();
    parts.extend(std::env::split_paths(&system));
    for d in [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ] {
        if !parts.iter().any(|p| p == Path::new(d)) {
            parts.push(d.into());
        }
    }
    std::env::join_paths(parts).unwrap_or(system)
}

/// `unix:///run/containerd/s/<hash>` → `/run/containerd/s/<hash>`.
fn socket_path(addr: &str) -> Option<PathBuf> {
    let p = addr.strip_prefix("unix://").unwrap_or(addr);
    let p = Path::new(p);
    p.is_absolute().then(|| p.to_path_buf())
}

fn read_dir_names(dir: &Path) -> Vec<OsString> {
    fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default()
}

fn signal(pid: u32, sig: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        if pid > 0 {
            // SAFETY: kill(2) on one PID we identified; no memory is involved.
            unsafe {
                libc::kill(pid, sig);
            }
        }
    }
}

/// Every process as (pid, raw cmdline).
fn procs() -> Vec<(u32, Vec<u8>)> {
    let mut v = Vec::new();
    for name in read_dir_names(Path::new("/proc")) {
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) {
            v.push((pid, cmdline));
        }
    }
    v
}

/// The parent PID and state letter of `pid`, from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(u32, u8)> {
    let s = fs::read(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ppid ...": comm may hold spaces and parens; take the last ')'.
    let close = s.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&s[close + 1..]).ok()?;
    let mut f = rest.split_whitespace();
    let state = f.next()?.bytes().next()?;
    let ppid = f.next()?.parse().ok()?;
    Some((ppid, state))
}

fn alive_not_zombie(pid: u32) -> bool {
    matches!(stat(pid), Some((_, s)) if s != b'Z' && s != b'X')
}

/// All descendants of `roots` (not including them).
fn descendants(roots: &[u32]) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = procs()
        .iter()
        .filter_map(|&(pid, _)| stat(pid).map(|(ppid, _)| (pid, ppid)))
        .collect();
    let mut found: BTreeSet<u32> = BTreeSet::new();
    let mut frontier: Vec<u32> = roots.to_vec();
    while let Some(p) = frontier.pop() {
        for &(child, parent) in &parents {
            if parent == p && !roots.contains(&child) && found.insert(child) {
                frontier.push(child);
            }
        }
    }
    found.into_iter().collect()
}

/// Lazily unmounts every mount point at or below `dir`, deepest first.
fn unmount_under(dir: &Path) {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    points.dedup();
    for p in points {
        let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
            continue;
        };
        // SAFETY: umount2(2) with a valid NUL-terminated path.
        unsafe {
            libc::umount2(c.as_ptr(), libc::MNT_DETACH);
        }
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount_path(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(std::ffi::OsStr::from_bytes(&out))
}

/// Runs `cmd` with piped output, feeding `stdin`, killing it after `timeout`.
fn run_with_deadline(mut cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Output {
                status: ExitStatus::from_raw(127 << 8),
                stdout: Vec::new(),
                stderr: format!("micrun-tests: cannot run {:?}: {e}", cmd.get_program())
                    .into_bytes(),
            }
        }
    };
    let writer = match (child.stdin.take(), stdin) {
        (Some(mut w), Some(data)) => {
            let data = data.to_vec();
            Some(std::thread::spawn(move || {
                let _ = w.write_all(&data);
                // Dropping `w` closes the pipe: the task sees end of input.
            }))
        }
        _ => None,
    };
    let out_reader = reader(child.stdout.take());
    let err_reader = reader(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().unwrap_or(ExitStatus::from_raw(libc::SIGKILL));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(_) => break child.wait().unwrap_or(ExitStatus::from_raw(libc::SIGKILL)),
        }
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    let stdout = out_reader.join().unwrap_or_default();
    let mut stderr = err_reader.join().unwrap_or_default();
    if timed_out {
        stderr.extend_from_slice(
            format!(
                "\nmicrun-tests: killed {:?} after {timeout:?}",
                cmd.get_program()
            )
            .as_bytes(),
        );
    }
    Output {
        status,
        stdout,
        stderr,
    }
}

fn reader<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut buf);
        }
        buf
    })
}
