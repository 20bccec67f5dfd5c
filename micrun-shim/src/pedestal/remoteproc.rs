//! The `baremetal` pedestal driven directly through Linux remoteproc (no micad).
//!
//! A remote processor is a core of the SoC that Linux boots with a firmware file;
//! the kernel shows each under `<sysfs>/class/remoteproc/<entry>/`. micrun uses
//! these attributes (Documentation/ABI/testing/sysfs-class-remoteproc):
//!
//! | attribute | read | write |
//! |---|---|---|
//! | `name` | the processor's name (what the annotation names) | — |
//! | `firmware` | the firmware file name | a file name, looked up in the firmware search path; only while `offline` (else `EBUSY`) |
//! | `state` | `offline`, `suspended`, `running`, `crashed`, `invalid`; newer kernels also `attached`, `detached`, `deleted` | `start` (`EBUSY` when running; the boot runs inside the write, which fails with the boot's errno), `stop` (`EINVAL` unless running or attached), `detach` |
//!
//! The kernel looks firmware up in firmware_class's `path` parameter
//! (`<sysfs>/module/firmware_class/parameters/path`) when set, then under
//! `/lib/firmware`. The rpmsg tty the firmware announces once it runs is the
//! console; which tty belongs to which processor is host configuration
//! (`[baremetal] rpmsg_tty`), since the kernel numbers them in order of
//! appearance.
//!
//! ```text
//! Create ─► pick the processor ─► claim <state_dir>/remoteproc/<entry> (O_EXCL, holds the id)
//!        ─► state must be offline ─► copy the ELF to <firmware dir>/micrun-<id>.elf
//!        ─► write that name to `firmware`
//! Start  ─► write `start` to `state` ─► wait for `running` ─► wait for the rpmsg tty
//!        ─► open it raw ─► Link (bytes unchanged)
//! Delete ─► write `stop` (if running) ─► remove the copy ─► release the claim
//! ```
//!
//! What the ABI does not give is said plainly: no write to `state` suspends a
//! processor (only a driver's own power management shows `suspended`), so pause
//! is unsupported; a remote processor's CPUs and memory are fixed, so only an Update
//! that changes nothing succeeds; there is no host process, so CPU time comes
//! from the agent. A crashed processor reports [`CRASH_EXIT_CODE`] as its state.
//! A crash takes the rpmsg tty away, so the link ends and with it the container.
//! With the kernel's default `recovery = enabled` the kernel then reboots the
//! processor by itself (`crashed` shows only briefly) and Delete stops it; with
//! `disabled` it stays `crashed`. Mainline kernels refuse `stop` on a crashed
//! processor; micrun tries it and, when refused, still releases the processor's
//! claim and firmware file (nothing of the container runs any more), and the next
//! Create names the state.
//!
//! `start` and `stop` are followed by a bounded wait for `state` to show their
//! effect: the kernel applies them within the write, but the tests' stand-in
//! (a regular file and a watcher) does so asynchronously.

use std::fs;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::detect::remoteproc_class;
use super::{
    micad, DetachedPartition, Leftovers, Link, Partition, PartitionState, PartitionStats, Pedestal,
    PedestalError,
};
use crate::annotations::PEDESTAL_REMOTEPROC;
use crate::config::{Config, PedestalKind};
use crate::firmware::Arch;
use crate::resources::Resources;
use crate::spec::InstanceSpec;

const KIND: PedestalKind = PedestalKind::Baremetal;

/// The exit status of a container whose processor crashed: 128 + SIGABRT, as a
/// host process that aborted (and unlike SIGKILL's 137 or SIGTERM's 143, which
/// micrun reports when it ends a container itself).
pub const CRASH_EXIT_CODE: i32 = 134;

/// How long `state` may take to show the effect of `start` or `stop`.
pub const STATE_WAIT: Duration = Duration::from_secs(10);

/// How often `state` (and the tty) is looked at while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Where the kernel looks for firmware when firmware_class has no `path`.
pub const DEFAULT_FIRMWARE_DIR: &str = "/lib/firmware";

/// firmware_class's search path parameter, relative to the sysfs root.
pub const FIRMWARE_PATH_PARAM: &str = "module/firmware_class/parameters/path";

/// The directory of claims, under the state directory: one file per processor.
pub const CLAIM_DIR: &str = "remoteproc";

/// Longest container id: `micrun-<id>.elf` must stay a file name (255 bytes).
const MAX_ID_LEN: usize = 200;

/// What `state` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RprocState {
    Offline,
    Suspended,
    Running,
    Crashed,
    /// Running, booted by someone else (the boot loader) and attached to.
    Attached,
    /// Left running by Linux, which no longer controls it.
    Detached,
    Deleted,
    /// The kernel's word for a state it cannot name.
    Invalid,
    /// A word that is none of the above (a newer kernel, or a driver's own).
    Unknown(String),
}

impl RprocState {
    /// Parses the contents of `state` (surrounding blanks ignored).
    pub fn parse(text: &str) -> RprocState {
        match text.trim() {
            "offline" => Self::Offline,
            "suspended" => Self::Suspended,
            "running" => Self::Running,
            "crashed" => Self::Crashed,
            "attached" => Self::Attached,
            "detached" => Self::Detached,
            "deleted" => Self::Deleted,
            "invalid" => Self::Invalid,
            other => Self::Unknown(other.to_owned()),
        }
    }

    /// Whether firmware runs on it under Linux's control (`stop` ends it).
    pub fn is_running(&self) -> bool {
        matches!(self, Self::Running | Self::Attached)
    }

    /// Whether the processor has settled in a state where nothing of ours runs.
    fn is_down(&self) -> bool {
        matches!(
            self,
            Self::Offline | Self::Crashed | Self::Detached | Self::Deleted
        )
    }
}

impl std::fmt::Display for RprocState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Offline => "offline",
            Self::Suspended => "suspended",
            Self::Running => "running",
            Self::Crashed => "crashed",
            Self::Attached => "attached",
            Self::Detached => "detached",
            Self::Deleted => "deleted",
            Self::Invalid => "invalid",
            Self::Unknown(word) if word.is_empty() => "(empty)",
            Self::Unknown(word) => word,
        })
    }
}

/// One remote processor as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processor {
    /// The class entry, e.g. `remoteproc0`.
    pub entry: String,
    /// Its `name` attribute (the entry when it has none).
    pub name: String,
    /// `<sysfs>/class/remoteproc/<entry>`.
    pub dir: PathBuf,
}

impl Processor {
    /// The processor at `dir` (a class entry).
    pub fn at(dir: &Path) -> Processor {
        let entry = dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let name = fs::read_to_string(dir.join("name"))
            .ok()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| entry.clone());
        Processor {
            entry,
            name,
            dir: dir.to_path_buf(),
        }
    }

    /// `name (entry)`, or just the entry when they are the same.
    pub fn label(&self) -> String {
        if self.name == self.entry {
            self.entry.clone()
        } else {
            format!("{} ({})", self.name, self.entry)
        }
    }

    fn attr(&self, attr: &str) -> PathBuf {
        self.dir.join(attr)
    }

    /// Reads `state`; the error names the file and the errno.
    pub fn state(&self) -> Result<RprocState, String> {
        read_attr(&self.attr("state")).map(|s| RprocState::parse(&s))
    }

    fn write(&self, attr: &str, value: &str) -> Result<(), String> {
        write_attr(&self.attr(attr), value)
    }

    /// Polls `state` until `done` holds for it; the error says what it was last.
    fn wait_state(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&RprocState) -> Result<bool, String>,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let state = self.state()?;
            if done(&state)? {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "{} still shows {state} after {timeout:?}",
                    self.attr("state").display()
                ));
            }
            std::thread::sleep(POLL_INTERVAL.min(left));
        }
    }

    /// Stops the processor if firmware runs on it, and waits for `state` to show
    /// it. Fine on a processor that is already down (or gone from sysfs); a
    /// crashed one is asked to stop too, and a refusal is only logged.
    pub fn stop(&self, timeout: Duration) -> Result<(), String> {
        let state = match self.state() {
            Ok(s) => s,
            Err(_) if !self.dir.exists() => {
                log::warn!(
                    "remote processor {}: {} is gone; nothing to stop",
                    self.label(),
                    self.dir.display()
                );
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        match state {
            s if s.is_running() || s == RprocState::Suspended => {
                self.write("state", "stop")?;
                self.wait_state(timeout, |s| Ok(s.is_down()))
            }
            RprocState::Crashed => {
                if let Err(e) = self.write("state", "stop") {
                    log::warn!(
                        "remote processor {} crashed and the kernel refuses to stop it \
                         ({e}); it stays crashed, and unusable for containers, until the \
                         kernel recovers it (see its `recovery` attribute)",
                        self.label()
                    );
                    return Ok(());
                }
                self.wait_state(timeout, |s| Ok(s.is_down()))
            }
            _ => Ok(()),
        }
    }
}

/// Reads a sysfs attribute; the error names the file and the errno.
fn read_attr(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

/// Writes `value` to a sysfs attribute in one write (never creating the file);
/// the error names the file and the errno.
fn write_attr(path: &Path, value: &str) -> Result<(), String> {
    fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|e| format!("writing {value:?} to {}: {e}", path.display()))
}

/// The remote processors under `<sysfs>/class/remoteproc`, by entry.
pub fn processors(sysfs: &Path) -> Result<Vec<Processor>, String> {
    let class = remoteproc_class(sysfs);
    let entries = match fs::read_dir(&class) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("reading {}: {e}", class.display())),
    };
    let mut all: Vec<Processor> = entries
        .flatten()
        .map(|e| Processor::at(&e.path()))
        .collect();
    all.sort_by(|a, b| a.entry.cmp(&b.entry));
    Ok(all)
}

/// The processor a container gets: the one `wanted` names (its `name`, else its
/// entry), or the only one there is.
pub fn select(all: &[Processor], wanted: Option<&str>, class: &Path) -> Result<Processor, String> {
    let listing = || {
        all.iter()
            .map(Processor::label)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if all.is_empty() {
        return Err(format!(
            "there is no remote processor under {} (is the SoC's remoteproc driver loaded?)",
            class.display()
        ));
    }
    match wanted {
        None if all.len() == 1 => Ok(all[0].clone()),
        None => Err(format!(
            "this host has {} remote processors ({}); choose one with the annotation \
             {PEDESTAL_REMOTEPROC}",
            all.len(),
            listing()
        )),
        Some(wanted) => {
            let by_name: Vec<&Processor> = all.iter().filter(|p| p.name == wanted).collect();
            match by_name[..] {
                [one] => Ok(one.clone()),
                [] => all
                    .iter()
                    .find(|p| p.entry == wanted)
                    .cloned()
                    .ok_or_else(|| {
                        format!(
                            "annotation {PEDESTAL_REMOTEPROC}={wanted:?} names no remote \
                             processor; this host has: {}",
                            listing()
                        )
                    }),
                _ => Err(format!(
                    "annotation {PEDESTAL_REMOTEPROC}={wanted:?} matches {} processors ({}); \
                     name one by its sysfs entry instead",
                    by_name.len(),
                    by_name
                        .iter()
                        .map(|p| p.label())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
    }
}

/// Where firmware files go: `configured` when set, else firmware_class's `path`
/// parameter under `sysfs` when set, else [`DEFAULT_FIRMWARE_DIR`] (the kernel's
/// own order of lookup).
pub fn firmware_dir(configured: &Path, sysfs: &Path) -> PathBuf {
    if !configured.as_os_str().is_empty() {
        return configured.to_path_buf();
    }
    match fs::read_to_string(sysfs.join(FIRMWARE_PATH_PARAM)) {
        Ok(p) if !p.trim().is_empty() => PathBuf::from(p.trim()),
        _ => PathBuf::from(DEFAULT_FIRMWARE_DIR),
    }
}

/// The file name the firmware gets in the firmware directory.
pub fn firmware_name(id: &str) -> String {
    format!("micrun-{id}.elf")
}

/// Whether `id` can be part of a file name here: `[A-Za-z0-9_.-]`, starting with
/// a letter or digit (what containerd allows), at most [`MAX_ID_LEN`] bytes.
fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(format!(
            "it must be 1 to {MAX_ID_LEN} bytes (it names the firmware file {})",
            firmware_name("<id>")
        ));
    }
    let ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
    if !id.as_bytes()[0].is_ascii_alphanumeric() || !id.bytes().all(ok) {
        return Err(format!(
            "it names the firmware file {}, so it must start with a letter or digit and \
             hold only letters, digits, '_', '.' and '-'",
            firmware_name(id)
        ));
    }
    Ok(())
}

/// A TOML key as written in the config (quoted unless bare).
fn toml_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

/// A file this driver made; removed on drop unless kept.
#[derive(Debug)]
struct Made(Option<PathBuf>);

impl Made {
    fn keep(mut self) -> PathBuf {
        self.0.take().unwrap_or_default()
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// Removes `path`; already gone is fine. The error names the file.
fn remove(path: &Path) -> Result<(), String> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("removing {}: {e}", path.display())),
    }
}

/// The remoteproc pedestal.
#[derive(Debug, Clone)]
pub struct Remoteproc {
    sysfs: PathBuf,
    /// `[baremetal] firmware_dir` (empty: firmware_class's path, else /lib/firmware).
    firmware_dir: PathBuf,
    rpmsg_tty: std::collections::BTreeMap<String, PathBuf>,
    arch: Arch,
    /// `<state_dir>/remoteproc`.
    claims: PathBuf,
    /// How long to wait for the rpmsg tty after start: `[mica] tty_wait`, the
    /// same wait for the same kind of console as micad's.
    tty_wait: Duration,
    state_wait: Duration,
    /// The config file, for messages that say what to set.
    config_file: String,
}

impl Remoteproc {
    pub fn new(config: &Config) -> Remoteproc {
        Remoteproc {
            sysfs: config.baremetal.sysfs.clone(),
            firmware_dir: config.baremetal.firmware_dir.clone(),
            rpmsg_tty: config.baremetal.rpmsg_tty.clone(),
            arch: config.baremetal.arch,
            claims: config.state_dir.join(CLAIM_DIR),
            tty_wait: config.mica.tty_wait,
            state_wait: STATE_WAIT,
            config_file: config.origin.as_ref().map_or_else(
                || "the micrun config".to_owned(),
                |p| p.display().to_string(),
            ),
        }
    }

    /// Waits up to `wait` (instead of [`STATE_WAIT`]) for `state` to follow a write.
    pub fn with_state_wait(mut self, wait: Duration) -> Remoteproc {
        self.state_wait = wait;
        self
    }

    /// The firmware directory in use.
    pub fn firmware_dir(&self) -> PathBuf {
        firmware_dir(&self.firmware_dir, &self.sysfs)
    }

    fn failed(&self, detail: impl std::fmt::Display) -> PedestalError {
        PedestalError::failed(KIND, "create", detail)
    }

    /// The processor for `spec` and its console, or why there is none.
    fn choose(&self, spec: &InstanceSpec) -> Result<(Processor, PathBuf), PedestalError> {
        check_id(&spec.id).map_err(|why| PedestalError::InvalidId {
            pedestal: KIND,
            id: spec.id.clone(),
            why,
        })?;
        let class = remoteproc_class(&self.sysfs);
        let all = processors(&self.sysfs).map_err(|e| self.failed(e))?;
        if all.is_empty() {
            return Err(PedestalError::Unavailable {
                pedestal: KIND,
                why: format!(
                    "there is no remote processor under {} (is the SoC's remoteproc driver \
                     loaded?); to go through micad instead set [baremetal] driver = \"micad\"",
                    class.display()
                ),
            });
        }
        let processor = select(&all, spec.annotations.remoteproc.as_deref(), &class)
            .map_err(|e| self.failed(e))?;
        let tty = self
            .rpmsg_tty
            .get(&processor.name)
            .or_else(|| self.rpmsg_tty.get(&processor.entry))
            .cloned()
            .ok_or_else(|| {
                self.failed(format!(
                    "no console is configured for remote processor {}: set [baremetal] \
                     rpmsg_tty.{} = \"/dev/ttyRPMSG<n>\" (the rpmsg tty its firmware \
                     announces) in {}",
                    processor.label(),
                    toml_key(&processor.name),
                    self.config_file
                ))
            })?;
        Ok((processor, tty))
    }

    /// Claims `processor` for container `id`: `<claims>/<entry>`, created
    /// exclusively, holding the id.
    fn claim(&self, processor: &Processor, id: &str) -> Result<Made, PedestalError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.claims)
            .map_err(|e| {
                self.failed(format!(
                    "creating the claim directory {}: {e}",
                    self.claims.display()
                ))
            })?;
        let path = self.claims.join(&processor.entry);
        let mut file = match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let holder = fs::read_to_string(&path)
                    .map(|h| h.trim().to_owned())
                    .unwrap_or_default();
                let holder = if holder.is_empty() {
                    "another container".to_owned()
                } else {
                    format!("container {holder:?}")
                };
                return Err(self.failed(format!(
                    "remote processor {} is in use by {holder} (claim {}); one container \
                     per processor: delete that container first",
                    processor.label(),
                    path.display()
                )));
            }
            Err(e) => {
                return Err(self.failed(format!(
                    "claiming remote processor {}: creating {}: {e}",
                    processor.label(),
                    path.display()
                )))
            }
        };
        let claim = Made(Some(path.clone()));
        file.write_all(format!("{id}\n").as_bytes())
            .map_err(|e| self.failed(format!("writing {}: {e}", path.display())))?;
        Ok(claim)
    }

    /// Copies `firmware` to `<dir>/<name>`, created exclusively, mode 0644.
    fn copy_firmware(&self, firmware: &Path, dir: &Path, name: &str) -> Result<Made, String> {
        let mut src = fs::File::open(firmware)
            .map_err(|e| format!("opening the firmware {}: {e}", firmware.display()))?;
        let dst = dir.join(name);
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&dst)
            .map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => format!(
                    "{} already exists (left by an earlier container with the same id?); \
                     remove it",
                    dst.display()
                ),
                _ => format!(
                    "the firmware directory {} is not writable: creating {}: {e}",
                    dir.display(),
                    dst.display()
                ),
            })?;
        let copy = Made(Some(dst.clone()));
        io::copy(&mut src, &mut out)
            .map_err(|e| format!("copying {} to {}: {e}", firmware.display(), dst.display()))?;
        Ok(copy)
    }
}

impl Pedestal for Remoteproc {
    fn kind(&self) -> PedestalKind {
        KIND
    }

    fn arch(&self) -> Arch {
        self.arch
    }

    fn check(&self, spec: &InstanceSpec) -> Result<(), PedestalError> {
        self.choose(spec).map(drop)
    }

    fn create(
        &self,
        spec: &InstanceSpec,
        _run_dir: &Path,
    ) -> Result<Box<dyn Partition>, PedestalError> {
        let (processor, tty) = self.choose(spec)?;
        // Claimed before the state is read, so that two Creates cannot both see
        // `offline`. Everything made below goes again if a later step fails.
        let claim = self.claim(&processor, &spec.id)?;
        let state = processor.state().map_err(|e| self.failed(e))?;
        if state != RprocState::Offline {
            return Err(self.failed(format!(
                "remote processor {} is {state}, not offline: something outside micrun runs \
                 on it (or a container's shim died without stopping it); stop it with \
                 `echo stop > {}`",
                processor.label(),
                processor.attr("state").display()
            )));
        }
        let dir = self.firmware_dir();
        let name = firmware_name(&spec.id);
        let copy = self
            .copy_firmware(&spec.firmware, &dir, &name)
            .map_err(|e| self.failed(e))?;
        processor
            .write("firmware", &name)
            .map_err(|e| self.failed(e))?;
        log::info!(
            "{}: remote processor {} gets firmware {} ({})",
            spec.id,
            processor.label(),
            dir.join(&name).display(),
            spec.resources
        );
        Ok(Box::new(RemoteprocPartition {
            id: spec.id.clone(),
            processor,
            tty,
            tty_wait: self.tty_wait,
            state_wait: self.state_wait,
            firmware_file: copy.keep(),
            claim: claim.keep(),
            resources: spec.resources.clone(),
            link: None,
            started: false,
            released: false,
            crashed: false,
            last: PartitionState::Created,
        }))
    }
}

/// One container on one remote processor.
#[derive(Debug)]
struct RemoteprocPartition {
    id: String,
    processor: Processor,
    /// The rpmsg tty configured for the processor.
    tty: PathBuf,
    tty_wait: Duration,
    state_wait: Duration,
    /// The copy in the firmware directory.
    firmware_file: PathBuf,
    /// `<state_dir>/remoteproc/<entry>`.
    claim: PathBuf,
    resources: Resources,
    link: Option<Link>,
    started: bool,
    /// Stopped, the copy removed and the claim released.
    released: bool,
    /// `state` showed `crashed` once.
    crashed: bool,
    /// What [`Partition::state`] said last (kept over a word it cannot read).
    last: PartitionState,
}

impl RemoteprocPartition {
    fn failed(&self, operation: &'static str, detail: impl std::fmt::Display) -> PedestalError {
        PedestalError::failed(
            KIND,
            operation,
            format!("remote processor {}: {detail}", self.processor.label()),
        )
    }

    /// Stops the processor, removes the copy, releases the claim. Stops at the
    /// first failure, keeping what it did not release (the leftovers say what).
    fn release(&mut self) -> Result<(), String> {
        if self.released {
            return Ok(());
        }
        self.processor.stop(self.state_wait)?;
        remove(&self.firmware_file)?;
        remove(&self.claim)?;
        self.released = true;
        log::debug!(
            "{}: remote processor {} released",
            self.id,
            self.processor.label()
        );
        Ok(())
    }

    /// Boots the processor and opens its console.
    fn boot(&mut self) -> Result<Link, String> {
        self.processor
            .write("state", "start")
            .map_err(|e| format!("{e}; the kernel log (dmesg) says why the boot failed"))?;
        self.started = true;
        self.processor
            .wait_state(self.state_wait, |s| match s {
                s if s.is_running() => Ok(true),
                RprocState::Crashed => Err("the processor crashed while booting".to_owned()),
                _ => Ok(false),
            })
            .map_err(|e| {
                format!("{e}: the boot did not complete; the kernel log (dmesg) says why")
            })?;
        self.wait_for_tty()?;
        let rx = micad::open_tty(&self.tty).map_err(|e| e.to_string())?;
        let tx: OwnedFd = rx
            .try_clone()
            .map_err(|e| format!("duplicating the console {}: {e}", self.tty.display()))?;
        log::debug!("{}: console {}", self.id, self.tty.display());
        Ok(Link::plain(rx, tx))
    }

    /// Waits for the rpmsg tty: the kernel makes it only once the firmware has
    /// announced its rpmsg channel, some time after `running`.
    fn wait_for_tty(&self) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if self.tty.exists() {
                return Ok(());
            }
            let waited = start.elapsed();
            if waited >= self.tty_wait {
                return Err(format!(
                    "its console {} did not appear within {:?} after it started running \
                     (configured as [baremetal] rpmsg_tty.{}; the wait is [mica] tty_wait); \
                     does the firmware announce an rpmsg tty channel, and is the kernel's \
                     rpmsg_tty driver loaded?",
                    self.tty.display(),
                    self.tty_wait,
                    toml_key(&self.processor.name)
                ));
            }
            std::thread::sleep(micad::TTY_POLL_INTERVAL.min(self.tty_wait - waited));
        }
    }
}

impl Partition for RemoteprocPartition {
    fn start(&mut self) -> Result<(), PedestalError> {
        if self.released {
            return Err(self.failed("start", "the partition was already destroyed"));
        }
        match self.boot() {
            Ok(link) => {
                self.link = Some(link);
                Ok(())
            }
            Err(e) => {
                // The engine does not destroy a partition whose start failed:
                // nothing may be left running or claimed.
                let cleanup = match self.release() {
                    Ok(()) => "the processor was stopped and released".to_owned(),
                    Err(c) => format!("cleaning up failed too: {c}"),
                };
                Err(self.failed("start", format!("{e}; {cleanup}")))
            }
        }
    }

    fn pause(&mut self) -> Result<(), PedestalError> {
        Err(PedestalError::Unsupported {
            pedestal: KIND,
            operation: "pause through remoteproc (its sysfs `state` has no suspend command)",
        })
    }

    fn resume(&mut self) -> Result<(), PedestalError> {
        Err(PedestalError::Unsupported {
            pedestal: KIND,
            operation: "resume through remoteproc (its sysfs `state` has no suspend command)",
        })
    }

    fn destroy(&mut self) -> Result<(), PedestalError> {
        self.link = None;
        self.release().map_err(|e| self.failed("destroy", e))
    }

    fn update(&mut self, r: &Resources) -> Result<(), PedestalError> {
        let old = &self.resources;
        let same = r.vcpus == old.vcpus
            && r.max_vcpus == old.max_vcpus
            && r.cpu_str == old.cpu_str
            && r.cpu_cap_percent == old.cpu_cap_percent
            && r.cpu_weight == old.cpu_weight
            && r.memory_mib == old.memory_mib
            && r.max_memory_mib == old.max_memory_mib;
        if same {
            return Ok(());
        }
        Err(PedestalError::Unsupported {
            pedestal: KIND,
            operation: "changing the resources of a remote processor (its cores and memory \
                        are fixed by the hardware and the device tree)",
        })
    }

    fn stats(&mut self) -> Result<PartitionStats, PedestalError> {
        // No host process: memory is what the container asked for; CPU time and
        // memory use come from the agent.
        Ok(PartitionStats {
            cpu_ns: 0,
            memory_limit_bytes: u64::from(self.resources.memory_mib) << 20,
            memory_used_bytes: 0,
        })
    }

    fn state(&mut self) -> PartitionState {
        if self.crashed {
            return PartitionState::Stopped(Some(CRASH_EXIT_CODE));
        }
        if self.released {
            return PartitionState::Stopped(None);
        }
        let now = match self.processor.state() {
            Ok(s) if s.is_running() => PartitionState::Running,
            Ok(RprocState::Suspended) => PartitionState::Paused,
            Ok(RprocState::Crashed) => {
                self.crashed = true;
                log::warn!(
                    "{}: remote processor {} crashed",
                    self.id,
                    self.processor.label()
                );
                PartitionState::Stopped(Some(CRASH_EXIT_CODE))
            }
            Ok(s) if s.is_down() && !self.started => PartitionState::Created,
            Ok(s) if s.is_down() => PartitionState::Stopped(None),
            Ok(other) => {
                log::debug!("{}: remote processor state {other:?}", self.id);
                self.last
            }
            Err(e) => {
                log::warn!("{}: {e}", self.id);
                self.last
            }
        };
        self.last = now;
        now
    }

    fn take_link(&mut self) -> Option<Link> {
        self.link.take()
    }

    fn leftovers(&self) -> Leftovers {
        Leftovers {
            processes: vec![],
            paths: vec![self.claim.clone()],
            partition: Some(DetachedPartition::Remoteproc {
                processor: self.processor.dir.clone(),
                firmware_file: Some(self.firmware_file.clone()),
            }),
        }
    }
}

/// The pedestal, configured from `config`.
pub fn pedestal(config: &Config) -> Result<Box<dyn Pedestal>, PedestalError> {
    Ok(Box::new(Remoteproc::new(config)))
}

/// Stops processor `processor` (its sysfs directory) if firmware runs on it and
/// removes `firmware_file`. A processor already stopped is fine.
pub fn destroy_detached(
    processor: &Path,
    firmware_file: Option<&Path>,
) -> Result<(), PedestalError> {
    let p = Processor::at(processor);
    let fail = |e: String| {
        PedestalError::failed(
            KIND,
            "destroy",
            format!("remote processor {}: {e}", p.label()),
        )
    };
    p.stop(STATE_WAIT).map_err(fail)?;
    if let Some(file) = firmware_file {
        remove(file).map_err(fail)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::Annotations;

    /// A still sysfs tree (nothing reacts to writes) with a firmware directory
    /// and a state directory, in a fresh temp dir removed on drop.
    struct Tree {
        dir: PathBuf,
        config: Config,
    }

    impl Tree {
        fn new(tag: &str) -> Tree {
            let dir = std::env::temp_dir()
                .join(format!("micrun-rproc-unit-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(dir.join("sys/module/firmware_class/parameters")).unwrap();
            fs::create_dir_all(dir.join("fw")).unwrap();
            fs::write(
                dir.join("sys").join(FIRMWARE_PATH_PARAM),
                format!("{}\n", dir.join("fw").display()),
            )
            .unwrap();
            fs::write(dir.join("firmware.elf"), b"\x7fELF firmware").unwrap();
            let mut config = Config::default();
            config.baremetal.sysfs = dir.join("sys");
            config.state_dir = dir.join("state");
            config.mica.tty_wait = Duration::from_millis(50);
            Tree { dir, config }
        }

        /// A processor `entry` named `name`, in `state`, with a console configured.
        fn processor(mut self, entry: &str, name: &str, state: &str) -> Tree {
            let p = self.proc_dir(entry);
            fs::create_dir_all(&p).unwrap();
            fs::write(p.join("name"), format!("{name}\n")).unwrap();
            fs::write(p.join("state"), format!("{state}\n")).unwrap();
            fs::write(p.join("firmware"), "rproc-fw\n").unwrap();
            self.config
                .baremetal
                .rpmsg_tty
                .insert(name.to_owned(), self.dir.join(format!("tty-{entry}")));
            self
        }

        fn proc_dir(&self, entry: &str) -> PathBuf {
            self.dir.join("sys/class/remoteproc").join(entry)
        }

        fn read(&self, entry: &str, attr: &str) -> String {
            fs::read_to_string(self.proc_dir(entry).join(attr)).unwrap()
        }

        fn ped(&self) -> Remoteproc {
            Remoteproc::new(&self.config).with_state_wait(Duration::from_millis(50))
        }

        fn spec(&self, id: &str, remoteproc: Option<&str>) -> InstanceSpec {
            InstanceSpec {
                id: id.into(),
                namespace: "default".into(),
                bundle: self.dir.clone(),
                rootfs: self.dir.clone(),
                firmware: self.dir.join("firmware.elf"),
                image: None,
                pedestal: KIND,
                resources: Resources {
                    vcpus: 1,
                    max_vcpus: 1,
                    cpu_str: None,
                    cpu_cap_percent: None,
                    cpu_weight: 256,
                    memory_mib: 48,
                    max_memory_mib: 48,
                    dropped_cpus: vec![],
                    ignored: vec![],
                },
                annotations: Annotations {
                    remoteproc: remoteproc.map(str::to_owned),
                    ..Annotations::default()
                },
                terminal: false,
                sandbox: false,
            }
        }

        fn claim(&self, entry: &str) -> PathBuf {
            self.config.state_dir.join(CLAIM_DIR).join(entry)
        }

        fn fw_files(&self) -> Vec<String> {
            let mut v: Vec<String> = fs::read_dir(self.dir.join("fw"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }

    fn create_err(tree: &Tree, spec: &InstanceSpec) -> String {
        match tree.ped().create(spec, &tree.dir) {
            Ok(_) => panic!("create of {} succeeded", spec.id),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn state_words() {
        for (word, state) in [
            ("offline\n", RprocState::Offline),
            ("suspended", RprocState::Suspended),
            (" running \n", RprocState::Running),
            ("crashed\n", RprocState::Crashed),
            ("attached\n", RprocState::Attached),
            ("detached\n", RprocState::Detached),
            ("deleted\n", RprocState::Deleted),
            ("invalid\n", RprocState::Invalid),
            ("booting\n", RprocState::Unknown("booting".into())),
            ("", RprocState::Unknown(String::new())),
        ] {
            assert_eq!(RprocState::parse(word), state, "{word:?}");
            if !word.is_empty() {
                assert_eq!(state.to_string(), word.trim());
            }
        }
        assert!(RprocState::Attached.is_running() && RprocState::Running.is_running());
        assert!(!RprocState::Suspended.is_running() && !RprocState::Crashed.is_running());
    }

    #[test]
    fn processor_selection() {
        let none = Tree::new("none");
        let spec = none.spec("c1", None);
        match none.ped().check(&spec) {
            Err(PedestalError::Unavailable { why, .. }) => {
                assert!(why.contains("no remote processor under"), "{why}");
                assert!(why.contains("class/remoteproc"), "{why}");
            }
            other => panic!("{other:?}"),
        }

        let one = Tree::new("one").processor("remoteproc0", "cm4", "offline");
        one.ped().check(&one.spec("c1", None)).unwrap();
        one.ped().check(&one.spec("c1", Some("cm4"))).unwrap();
        one.ped()
            .check(&one.spec("c1", Some("remoteproc0")))
            .unwrap();
        let err = one
            .ped()
            .check(&one.spec("c1", Some("cm7")))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"cm7\" names no remote processor; this host has: cm4 (remoteproc0)"),
            "{err}"
        );

        let two = Tree::new("two")
            .processor("remoteproc0", "cm4", "offline")
            .processor("remoteproc1", "cm7", "offline");
        let err = two
            .ped()
            .check(&two.spec("c1", None))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("2 remote processors (cm4 (remoteproc0), cm7 (remoteproc1))"),
            "{err}"
        );
        assert!(err.contains(PEDESTAL_REMOTEPROC), "{err}");
        two.ped().check(&two.spec("c1", Some("cm7"))).unwrap();

        let same = Tree::new("same")
            .processor("remoteproc0", "r5f", "offline")
            .processor("remoteproc1", "r5f", "offline");
        let err = same
            .ped()
            .check(&same.spec("c1", Some("r5f")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("matches 2 processors"), "{err}");
        assert!(err.contains("sysfs entry"), "{err}");
        let all = processors(&same.config.baremetal.sysfs).unwrap();
        let class = remoteproc_class(&same.config.baremetal.sysfs);
        assert_eq!(
            select(&all, Some("remoteproc1"), &class).unwrap().entry,
            "remoteproc1"
        );
    }

    #[test]
    fn ids_and_consoles_are_checked_before_anything_is_made() {
        let mut tree = Tree::new("ids").processor("remoteproc0", "41000000.r5f", "offline");
        for bad in ["", "a/b", ".hidden", "a b", &"x".repeat(MAX_ID_LEN + 1)] {
            match tree.ped().check(&tree.spec(bad, None)) {
                Err(PedestalError::InvalidId { id, .. }) => assert_eq!(id, bad),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        tree.config.baremetal.rpmsg_tty.clear();
        let err = create_err(&tree, &tree.spec("c1", None));
        assert!(
            err.contains("set [baremetal] rpmsg_tty.\"41000000.r5f\" = "),
            "{err}"
        );
        assert!(!tree.claim("remoteproc0").exists());
        assert!(tree.fw_files().is_empty());
    }

    #[test]
    fn firmware_dir_resolution() {
        let tree = Tree::new("fwdir");
        let sysfs = &tree.config.baremetal.sysfs;
        assert_eq!(
            firmware_dir(Path::new("/opt/fw"), sysfs),
            Path::new("/opt/fw")
        );
        assert_eq!(firmware_dir(Path::new(""), sysfs), tree.dir.join("fw"));
        fs::write(sysfs.join(FIRMWARE_PATH_PARAM), "\n").unwrap();
        assert_eq!(
            firmware_dir(Path::new(""), sysfs),
            Path::new(DEFAULT_FIRMWARE_DIR)
        );
        fs::remove_file(sysfs.join(FIRMWARE_PATH_PARAM)).unwrap();
        assert_eq!(
            firmware_dir(Path::new(""), sysfs),
            Path::new(DEFAULT_FIRMWARE_DIR)
        );
    }

    #[test]
    fn create_claims_copies_and_names_the_firmware_and_destroy_releases() {
        let tree = Tree::new("create").processor("remoteproc0", "cm4", "offline");
        let spec = tree.spec("c1", None);
        let mut part = tree.ped().create(&spec, &tree.dir).unwrap();
        assert_eq!(
            fs::read_to_string(tree.claim("remoteproc0")).unwrap(),
            "c1\n"
        );
        assert_eq!(tree.fw_files(), ["micrun-c1.elf"]);
        assert_eq!(
            fs::read(tree.dir.join("fw/micrun-c1.elf")).unwrap(),
            b"\x7fELF firmware"
        );
        assert_eq!(tree.read("remoteproc0", "firmware"), "micrun-c1.elf");
        assert_eq!(part.state(), PartitionState::Created);
        assert_eq!(part.pid(), None);
        assert!(part.take_link().is_none(), "no console before start");
        assert_eq!(
            part.leftovers(),
            Leftovers {
                processes: vec![],
                paths: vec![tree.claim("remoteproc0")],
                partition: Some(DetachedPartition::Remoteproc {
                    processor: tree.proc_dir("remoteproc0"),
                    firmware_file: Some(tree.dir.join("fw/micrun-c1.elf")),
                }),
            }
        );
        assert_eq!(part.stats().unwrap().memory_limit_bytes, 48 << 20);

        // One container per processor.
        let err = create_err(&tree, &tree.spec("c2", None));
        assert!(
            err.contains("remote processor cm4 (remoteproc0) is in use by container \"c1\""),
            "{err}"
        );
        assert_eq!(
            tree.fw_files(),
            ["micrun-c1.elf"],
            "the loser copied nothing"
        );

        part.destroy().unwrap();
        assert!(!tree.claim("remoteproc0").exists());
        assert!(tree.fw_files().is_empty());
        assert_eq!(
            tree.read("remoteproc0", "state"),
            "offline\n",
            "an offline processor is not stopped"
        );
        part.destroy().unwrap();
        assert_eq!(part.state(), PartitionState::Stopped(None));
        tree.ped()
            .create(&tree.spec("c2", None), &tree.dir)
            .unwrap();
    }

    #[test]
    fn a_processor_that_is_not_offline_is_refused_and_nothing_is_left() {
        let tree = Tree::new("busy").processor("remoteproc0", "cm4", "running");
        let err = create_err(&tree, &tree.spec("c1", None));
        assert!(
            err.contains("remote processor cm4 (remoteproc0) is running, not offline"),
            "{err}"
        );
        assert!(!tree.claim("remoteproc0").exists(), "claim released");
        assert!(tree.fw_files().is_empty());
        assert_eq!(tree.read("remoteproc0", "firmware"), "rproc-fw\n");
    }

    #[test]
    fn an_unwritable_firmware_dir_is_named_and_nothing_is_left() {
        let mut tree = Tree::new("unwritable").processor("remoteproc0", "cm4", "offline");
        // A regular file where the directory should be: not writable, even for root.
        let not_a_dir = tree.dir.join("not-a-dir");
        fs::write(&not_a_dir, b"").unwrap();
        tree.config.baremetal.firmware_dir = not_a_dir.clone();
        let err = create_err(&tree, &tree.spec("c1", None));
        assert!(
            err.contains(&format!(
                "the firmware directory {} is not writable",
                not_a_dir.display()
            )),
            "{err}"
        );
        assert!(err.contains("Not a directory"), "{err}");
        assert!(!tree.claim("remoteproc0").exists());
        assert_eq!(tree.read("remoteproc0", "firmware"), "rproc-fw\n");
    }

    #[test]
    fn a_failed_firmware_write_removes_the_copy_and_the_claim() {
        let tree = Tree::new("fwattr").processor("remoteproc0", "cm4", "offline");
        fs::remove_file(tree.proc_dir("remoteproc0").join("firmware")).unwrap();
        let err = create_err(&tree, &tree.spec("c1", None));
        let attr = tree.proc_dir("remoteproc0").join("firmware");
        assert!(
            err.contains(&format!(
                "writing \"micrun-c1.elf\" to {}: No such file or directory",
                attr.display()
            )),
            "{err}"
        );
        assert!(!attr.exists(), "a missing attribute is never created");
        assert!(tree.fw_files().is_empty());
        assert!(!tree.claim("remoteproc0").exists());
    }

    #[test]
    fn an_existing_copy_is_not_overwritten() {
        let tree = Tree::new("exists").processor("remoteproc0", "cm4", "offline");
        fs::write(tree.dir.join("fw/micrun-c1.elf"), b"someone's").unwrap();
        let err = create_err(&tree, &tree.spec("c1", None));
        assert!(err.contains("already exists"), "{err}");
        assert_eq!(
            fs::read(tree.dir.join("fw/micrun-c1.elf")).unwrap(),
            b"someone's"
        );
        assert!(!tree.claim("remoteproc0").exists());
    }

    #[test]
    fn a_start_that_never_runs_is_bounded_and_cleaned_up() {
        // Nothing plays the kernel here: `state` keeps the word written to it.
        let tree = Tree::new("nostart").processor("remoteproc0", "cm4", "offline");
        let mut part = tree
            .ped()
            .create(&tree.spec("c1", None), &tree.dir)
            .unwrap();
        let t = Instant::now();
        let err = part.start().unwrap_err().to_string();
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(err.contains("state still shows start after 50ms"), "{err}");
        assert!(
            err.contains("the processor was stopped and released"),
            "{err}"
        );
        assert!(tree.fw_files().is_empty());
        assert!(!tree.claim("remoteproc0").exists());
        assert!(part.take_link().is_none());
        part.destroy().unwrap();
        assert!(part.start().is_err(), "no start after destroy");
    }

    #[test]
    fn state_follows_sysfs() {
        let tree = Tree::new("state").processor("remoteproc0", "cm4", "offline");
        let mut part = tree
            .ped()
            .create(&tree.spec("c1", None), &tree.dir)
            .unwrap();
        let set = |s: &str| fs::write(tree.proc_dir("remoteproc0").join("state"), s).unwrap();
        assert_eq!(part.state(), PartitionState::Created);
        set("running\n");
        assert_eq!(part.state(), PartitionState::Running);
        set("attached\n");
        assert_eq!(part.state(), PartitionState::Running);
        set("suspended\n");
        assert_eq!(part.state(), PartitionState::Paused);
        set("what\n");
        assert_eq!(
            part.state(),
            PartitionState::Paused,
            "kept over an unknown word"
        );
        set("crashed\n");
        assert_eq!(part.state(), PartitionState::Stopped(Some(CRASH_EXIT_CODE)));
        set("offline\n");
        assert_eq!(
            part.state(),
            PartitionState::Stopped(Some(CRASH_EXIT_CODE)),
            "a crash is remembered"
        );
        part.destroy().unwrap();
        assert_eq!(part.state(), PartitionState::Stopped(Some(CRASH_EXIT_CODE)));
    }

    #[test]
    fn no_pause_and_no_resource_changes() {
        let tree = Tree::new("update").processor("remoteproc0", "cm4", "offline");
        let spec = tree.spec("c1", None);
        let mut part = tree.ped().create(&spec, &tree.dir).unwrap();
        assert!(matches!(
            part.pause(),
            Err(PedestalError::Unsupported { .. })
        ));
        assert!(matches!(
            part.resume(),
            Err(PedestalError::Unsupported { .. })
        ));
        let mut same = spec.resources.clone();
        same.ignored = vec!["memory.swap"];
        part.update(&same).unwrap();
        let mut more = spec.resources.clone();
        more.memory_mib = 64;
        let err = part.update(&more).unwrap_err().to_string();
        assert!(
            err.contains("does not support changing the resources"),
            "{err}"
        );
        part.destroy().unwrap();
    }

    #[test]
    fn destroy_detached_of_a_stopped_processor() {
        let tree = Tree::new("detached").processor("remoteproc0", "cm4", "offline");
        let file = tree.dir.join("fw/micrun-old.elf");
        fs::write(&file, b"x").unwrap();
        destroy_detached(&tree.proc_dir("remoteproc0"), Some(&file)).unwrap();
        assert!(!file.exists());
        assert_eq!(
            tree.read("remoteproc0", "state"),
            "offline\n",
            "nothing written"
        );
        // Again, and with the processor gone from sysfs: nothing to do.
        destroy_detached(&tree.proc_dir("remoteproc0"), Some(&file)).unwrap();
        destroy_detached(&tree.proc_dir("remoteproc9"), None).unwrap();
        // An unreadable state is an error naming the file.
        fs::remove_file(tree.proc_dir("remoteproc0").join("state")).unwrap();
        let err = destroy_detached(&tree.proc_dir("remoteproc0"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("reading"), "{err}");
        assert!(err.contains("remoteproc0/state"), "{err}");
    }
}
