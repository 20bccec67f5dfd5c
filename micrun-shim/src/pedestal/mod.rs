//! Pedestals: the partitioning technologies an RTOS instance runs on.
//!
//! A [`Pedestal`] makes [`Partition`]s; a partition is one running (or ready to run)
//! RTOS with a byte-stream [`Link`] to its console or agent. The engine
//! ([`crate::instance`]) never knows which pedestal it drives: everything it needs
//! goes through these two traits.
//!
//! | pedestal | where it is real | partition is | link |
//! |---|---|---|---|
//! | `sim` | tests, explicitly enabled | the firmware file run as a host process | its stdin/stdout |
//! | `qemu` | any Linux box | `qemu-system-<arch> -M virt` booting the firmware (ELF, raw, bios; aarch64, arm, riscv64) | the first UART on a unix socket |
//! | `xen`, `baremetal` through micad | openEuler Embedded with Mica | a micad instance ([`mica`]) | micad's pty (`ttyRPMSG_<id>_0`) |
//! | `xen` through `xl` | a Xen dom0 without micad | a domain ([`xl`]) | its PV console pty (from xenstore) |
//! | `baremetal` through remoteproc | Linux with remote cores, without micad | a remote processor ([`remoteproc`]) | its rpmsg tty (`[baremetal] rpmsg_tty`) |
//!
//! Which pedestal a container gets when it names none, and which driver a
//! hardware pedestal uses, is [`detect`]'s.
//!
//! Partitions with a host process report its pid; the engine learns of that process's
//! end from the shim's reaper (see [`crate::instance`]), never by waiting on it here,
//! because the shim's SIGCHLD handler reaps every child.

pub mod detect;
pub mod mica;
pub mod micad;
pub mod qemu;
mod qmp;
pub mod remoteproc;
pub mod sim;
pub mod xl;

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::config::{Config, PedestalKind};
use crate::firmware::{Arch, FirmwareError, FirmwareImage, ImageHints};
use crate::resources::Resources;
use crate::spec::InstanceSpec;

/// A failure of a pedestal operation, with the pedestal's own words.
#[derive(Debug, thiserror::Error)]
pub enum PedestalError {
    /// The pedestal cannot run on this host, with what was checked.
    #[error("pedestal {pedestal} is not available on this host: {why}")]
    Unavailable { pedestal: PedestalKind, why: String },
    /// The container names no pedestal and this host has none (`auto`).
    #[error(
        "no pedestal is available on this host (checked: {checked}); name one with the \
         org.openeuler.micrun.ped.pedestal annotation or set default_pedestal in the \
         micrun config"
    )]
    NoPedestal { checked: String },
    /// The pedestal does not support the operation.
    #[error("pedestal {pedestal} does not support {operation}")]
    Unsupported {
        pedestal: PedestalKind,
        operation: &'static str,
    },
    /// The container id cannot name a partition of this pedestal.
    #[error("container id {id:?} is not valid for pedestal {pedestal}: {why}")]
    InvalidId {
        pedestal: PedestalKind,
        id: String,
        why: String,
    },
    /// The operation was tried and failed.
    #[error("{pedestal}: {operation} failed: {detail}")]
    Failed {
        pedestal: PedestalKind,
        operation: &'static str,
        detail: String,
    },
}

impl PedestalError {
    pub(crate) fn failed(
        pedestal: PedestalKind,
        operation: &'static str,
        detail: impl std::fmt::Display,
    ) -> Self {
        PedestalError::Failed {
            pedestal,
            operation,
            detail: detail.to_string(),
        }
    }
}

/// The byte link to the partition: what the host endpoint or the raw console relay
/// reads and writes. Both ends non-blocking. `rx` and `tx` may be the same socket
/// (duplicated) or two pipe ends.
#[derive(Debug)]
pub struct Link {
    pub rx: OwnedFd,
    pub tx: OwnedFd,
    /// What the link does to the bytes the RTOS sends, for the relay to undo.
    pub rx_translate: RxTranslate,
}

impl Link {
    /// A link that carries bytes unchanged.
    pub fn plain(rx: OwnedFd, tx: OwnedFd) -> Link {
        Link {
            rx,
            tx,
            rx_translate: RxTranslate::None,
        }
    }
}

/// A change a link makes to the RTOS's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RxTranslate {
    /// Bytes arrive as sent.
    #[default]
    None,
    /// micad's console: `\n` arrives as `\r\n`.
    MicadNewlines,
}

/// Where a partition stands, as far as the pedestal can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionState {
    /// Created, not started.
    Created,
    Running,
    Paused,
    /// Ended; the pedestal's exit status if it has one (a process exit code).
    Stopped(Option<i32>),
}

/// Resource use of a partition as the pedestal sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PartitionStats {
    /// CPU time used by the partition, nanoseconds.
    pub cpu_ns: u64,
    /// Memory assigned to the partition, bytes.
    pub memory_limit_bytes: u64,
    /// Memory the host spends on it (e.g. the QEMU or sim process's RSS), bytes.
    pub memory_used_bytes: u64,
}

/// What must be released if the shim dies: written to the state file at create, so
/// that containerd's `delete` action can clean up without the shim's memory.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Leftovers {
    /// Host processes of the partition, with their start time (clock ticks since
    /// boot, from `/proc/<pid>/stat`) so a recycled pid is never killed.
    pub processes: Vec<(u32, u64)>,
    /// Files and sockets to remove.
    pub paths: Vec<PathBuf>,
    /// A partition that is not a host process (hardware pedestals): how to end it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<DetachedPartition>,
}

/// A partition that lives outside the shim's process tree, as recorded for the
/// `delete` action: enough to end it with no shim memory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "driver", rename_all = "lowercase")]
pub enum DetachedPartition {
    /// An instance of micad: `rm` on `<dir>/<name>.socket`.
    Micad {
        pedestal: PedestalKind,
        dir: PathBuf,
        name: String,
    },
    /// A Xen domain driven by `xl`: `xl destroy <domain>`.
    Xl { xl: PathBuf, domain: String },
    /// A remote processor: write `stop` to `<processor>/state`, then remove
    /// `firmware_file` from the firmware directory.
    Remoteproc {
        processor: PathBuf,
        firmware_file: Option<PathBuf>,
    },
}

impl DetachedPartition {
    /// Ends the partition; fine when it is already gone. The error says what is
    /// left running.
    pub fn destroy(&self) -> Result<(), PedestalError> {
        match self {
            DetachedPartition::Micad {
                pedestal,
                dir,
                name,
            } => mica::destroy_detached(*pedestal, dir, name),
            DetachedPartition::Xl { xl, domain } => xl::destroy_detached(xl, domain),
            DetachedPartition::Remoteproc {
                processor,
                firmware_file,
            } => remoteproc::destroy_detached(processor, firmware_file.as_deref()),
        }
    }
}

/// One partition.
pub trait Partition: Send {
    /// Lets it run (Start).
    fn start(&mut self) -> Result<(), PedestalError>;
    fn pause(&mut self) -> Result<(), PedestalError>;
    fn resume(&mut self) -> Result<(), PedestalError>;
    /// Ends it now; idempotent, and fine on a partition that already ended.
    fn destroy(&mut self) -> Result<(), PedestalError>;
    /// Applies new resources to a running partition.
    fn update(&mut self, resources: &Resources) -> Result<(), PedestalError>;
    fn stats(&mut self) -> Result<PartitionStats, PedestalError>;
    fn state(&mut self) -> PartitionState;
    /// Records that its host process ended with `code` (from the reaper). The
    /// default is for partitions without one (hardware pedestals).
    fn process_exited(&mut self, code: i32) {
        let _ = code;
    }
    /// What ended it, when the pedestal saw something a user must know (QEMU:
    /// a guest it reports panicked); asked once its host process has ended.
    fn end_cause(&self) -> Option<crate::termination::EndCause> {
        None
    }
    /// The host process that embodies the partition, if there is one (default:
    /// none, as for hardware partitions).
    fn pid(&self) -> Option<u32> {
        None
    }
    /// The link; `None` after it was taken, and `None` before [`Partition::start`]
    /// for a partition whose console exists only once it runs.
    fn take_link(&mut self) -> Option<Link>;
    /// What to release if the shim dies.
    fn leftovers(&self) -> Leftovers;
}

/// A partitioning technology.
pub trait Pedestal: Send + Sync {
    fn kind(&self) -> PedestalKind;
    /// The architecture firmware must be built for (the default one, for a
    /// pedestal that runs several).
    fn arch(&self) -> Arch;
    /// Every architecture it runs, [`Pedestal::arch`] first (what a multi-firmware
    /// image is matched against: `crate::image::select`). The default: that one.
    fn archs(&self) -> Vec<Arch> {
        vec![self.arch()]
    }
    /// Reads the firmware at `path` and checks that this pedestal can boot it, as
    /// `hints` (the container's image annotations) describe it. The default: an ELF
    /// for [`Pedestal::arch`], nothing else.
    fn inspect_firmware(
        &self,
        path: &Path,
        hints: &ImageHints,
    ) -> Result<FirmwareImage, FirmwareError> {
        crate::firmware::inspect(path, hints, &[self.arch()], self.kind().name(), false)
    }
    /// Checks that the pedestal can run `spec` on this host (binary present, id
    /// valid for it, ...), before anything is created.
    fn check(&self, spec: &InstanceSpec) -> Result<(), PedestalError>;
    /// Creates the partition, ready to start. `run_dir` is private to the instance
    /// (sockets go there).
    fn create(
        &self,
        spec: &InstanceSpec,
        run_dir: &Path,
    ) -> Result<Box<dyn Partition>, PedestalError>;
}

/// The pedestal implementation for `kind`, configured from `config` (the driver
/// of a hardware pedestal as [`detect::driver`] decides).
pub fn for_kind(kind: PedestalKind, config: &Config) -> Result<Box<dyn Pedestal>, PedestalError> {
    let driver = match kind {
        PedestalKind::Xen | PedestalKind::Baremetal => Some(detect::driver(kind, config)),
        _ => None,
    };
    with_driver(kind, driver, config)
}

/// The pedestal implementation [`detect::choose`] chose.
pub fn for_chosen(
    chosen: &detect::Chosen,
    config: &Config,
) -> Result<Box<dyn Pedestal>, PedestalError> {
    with_driver(chosen.kind, chosen.driver.as_ref().map(|d| d.0), config)
}

fn with_driver(
    kind: PedestalKind,
    driver: Option<detect::Driver>,
    config: &Config,
) -> Result<Box<dyn Pedestal>, PedestalError> {
    match kind {
        PedestalKind::Sim => Ok(Box::new(sim::Sim::new(config)?)),
        PedestalKind::Qemu => Ok(Box::new(qemu::Qemu::new(config))),
        PedestalKind::Xen | PedestalKind::Baremetal => {
            match driver.unwrap_or(detect::Driver::Direct) {
                detect::Driver::Micad => Ok(Box::new(mica::Mica::new(kind, config))),
                detect::Driver::Direct if kind == PedestalKind::Xen => xl::pedestal(config),
                detect::Driver::Direct => remoteproc::pedestal(config),
            }
        }
    }
}

/// Finds an executable: a path (with a `/`) is checked as it is, a bare name is
/// looked up in `path_var` (the value of `PATH`). The error starts with the
/// binary and says what was looked at, for the pedestal to add how to fix it.
pub(crate) fn find_executable(binary: &Path, path_var: Option<&OsStr>) -> Result<PathBuf, String> {
    if binary.as_os_str().as_bytes().contains(&b'/') {
        return executable(binary)
            .map(|()| binary.to_path_buf())
            .map_err(|e| format!("{}: {e}", binary.display()));
    }
    let path_var = path_var.unwrap_or_default();
    for dir in std::env::split_paths(path_var) {
        let candidate = dir.join(binary);
        if executable(&candidate).is_ok() {
            return Ok(candidate);
        }
    }
    Err(format!(
        "{} not found in PATH ({})",
        binary.display(),
        if path_var.is_empty() {
            "unset".into()
        } else {
            path_var.to_string_lossy()
        }
    ))
}

fn executable(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err("not executable".into());
    }
    Ok(())
}

/// What `/proc/<pid>/stat` says about a process (the one place that reads it).
#[derive(Debug, Clone, Copy)]
pub struct ProcStat {
    /// `R`, `S`, `D`, `Z` (ended, not yet reaped), ...
    pub state: char,
    /// The parent's pid.
    pub ppid: u32,
    /// Page faults that needed no disk read (minor) and that did (major).
    pub minor_faults: u64,
    pub major_faults: u64,
    /// Start time in clock ticks since boot: tells a process from a later one
    /// with the same pid.
    pub start: u64,
    /// utime + stime, clock ticks, all threads.
    pub cpu_ticks: u64,
    pub rss_pages: u64,
}

impl ProcStat {
    /// Whether the process has ended (zombie or being reaped).
    pub fn ended(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }

    pub fn cpu_ns(&self) -> u64 {
        self.cpu_ticks.saturating_mul(1_000_000_000)
            / sysconf(nix::unistd::SysconfVar::CLK_TCK, 100)
    }

    pub fn rss_bytes(&self) -> u64 {
        self.rss_pages
            .saturating_mul(sysconf(nix::unistd::SysconfVar::PAGE_SIZE, 4096))
    }
}

/// Reads `/proc/<pid>/stat`; `None` when the process is gone.
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: skip past the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let num = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        ppid: u32::try_from(num(1)?).ok()?,
        minor_faults: num(7)?,
        major_faults: num(9)?,
        start: num(19)?,
        cpu_ticks: num(11)? + num(12)?,
        rss_pages: num(21)?,
    })
}

fn sysconf(var: nix::unistd::SysconfVar, default: u64) -> u64 {
    nix::unistd::sysconf(var)
        .ok()
        .flatten()
        .and_then(|v| u64::try_from(v).ok())
        .filter(|&v| v > 0)
        .unwrap_or(default)
}

/// Bytes process `pid` made the storage layer read and write (`read_bytes`,
/// `write_bytes` of `/proc/<pid>/io`); `None` when unreadable.
pub fn proc_io(pid: u32) -> Option<(u64, u64)> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    let field = |name: &str| {
        io.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some((field("read_bytes")?, field("write_bytes")?))
}

/// Start time of process `pid` (see [`ProcStat::start`]).
pub fn process_start_time(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|s| s.start)
}

/// Kills `pid` with SIGKILL if it is still the process that started at `start`.
pub fn kill_if_same(pid: u32, start: u64) -> bool {
    if process_start_time(pid) != Some(start) {
        return false;
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .is_ok()
}
