//! The `qemu` pedestal: `qemu-system-<arch> -M virt` boots the firmware; the first
//! UART is the link, on a unix socket; QMP drives the lifecycle.
//!
//! What differs per architecture (binary, machine, CPU, UART, RAM base) is one
//! table, [`MACHINES`]; the firmware's architecture picks the row. The firmware is
//! an ELF (`-kernel`), a raw binary at a load address (`-device loader`) or a
//! boot-flash image (`-bios`): see [`crate::firmware::inspect`].
//!
//! Create starts QEMU with `-S` (guest CPUs halted), the UART as a listening socket
//! that QEMU waits on (`server=on,wait=on`, so no early output is lost) and QMP on a
//! second socket. It connects the UART, then QMP, and checks that QEMU reports
//! `prelaunch`: the partition exists and runs nothing until Start (`cont`). Pause
//! and resume are QMP `stop` and `cont`; the state is `query-status`. Destroy asks
//! QEMU to `quit` and kills it if it does not. The whole start, QMP handshake
//! included, has one deadline (`[qemu] startup_timeout`). While the guest runs, a
//! thread asks `query-status` every `[qemu] watch_interval` and ends a guest that
//! QEMU reports panicked or failed ([`GUEST_FAILED_STATUS`]).
//!
//! Files, all in the instance's run directory: `uart.sock`, `qmp.sock` and
//! `qemu.log` (QEMU's stderr). Unix socket paths are limited to 107 bytes, which
//! bounds the run directory (and so the container id).
//!
//! QEMU is a child of the shim, whose reaper reaps every child; this module never
//! waits on it. It watches `/proc/<pid>/stat` instead (a reaped or zombie QEMU has
//! ended), and compares the start time before signalling, so that a recycled pid
//! is never hit.
//!
//! The resources map to `-smp` (vcpus) and `-m` (memory); a cpuset pins QEMU (all
//! its threads) to those host CPUs. `-M virt` cannot change vcpus or memory at run
//! time; a cpuset change re-pins QEMU's threads. The CPU cap and weight are not
//! applied by this pedestal.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use super::qmp::{Qmp, QmpError};
use super::{
    find_executable, kill_if_same, proc_stat, process_start_time, Leftovers, Link, Partition,
    PartitionState, PartitionStats, Pedestal, PedestalError,
};
use crate::config::{Config, PedestalKind};
use crate::firmware::{Arch, FirmwareError, FirmwareImage, ImageFormat, ImageHints};
use crate::resources::{CpuSet, Resources};
use crate::spec::InstanceSpec;
use crate::termination::EndCause;

const KIND: PedestalKind = PedestalKind::Qemu;

/// The longest unix socket path: `sun_path` is 108 bytes with the terminating NUL.
pub const SUN_PATH_MAX: usize = 107;
/// How long `quit` may take to be answered, and then for QEMU to end.
const QUIT_TIMEOUT: Duration = Duration::from_millis(500);
const QUIT_WAIT: Duration = Duration::from_secs(1);
/// How long a SIGKILLed QEMU may take to end.
const KILL_WAIT: Duration = Duration::from_secs(2);
/// How long a failed start may take to end by itself before it is killed.
const EXIT_GRACE: Duration = Duration::from_millis(300);
/// Lines of `qemu.log` quoted in an error.
const LOG_TAIL_LINES: usize = 12;

/// One architecture the pedestal runs: everything about QEMU that differs between
/// architectures lives in [`MACHINES`], not in branches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineSpec {
    /// What the firmware is built for.
    pub arch: Arch,
    /// The QEMU binary (looked up in `PATH`).
    pub binary: &'static str,
    /// The Debian package that has [`MachineSpec::binary`], for error messages.
    pub package: &'static str,
    /// `-M`.
    pub machine: &'static str,
    /// `-cpu`.
    pub cpu: &'static str,
    /// The machine's first UART, which QEMU's `-serial` connects to the link.
    pub uart: &'static str,
    /// Where the machine's RAM starts.
    pub ram_base: u64,
    /// The board this row is for (`org.openeuler.micrun.container.board`, or the
    /// board of a packed image's firmware); `None`: the architecture's generic
    /// machine, for every board without a row of its own.
    pub board: Option<&'static str>,
    /// RAM the machine has whatever the container asks, in MiB (QEMU refuses any
    /// other `-m`); `None`: `-m` from the container's resources.
    pub fixed_ram_mib: Option<u32>,
    /// The most vCPUs the machine takes (`-smp`).
    pub max_vcpus: u32,
    /// Whether the machine has a PCI bus for the pvpanic device (a guest panic
    /// then ends the container with [`GUEST_FAILED_STATUS`]).
    pub pci: bool,
    /// What else QEMU needs for this machine.
    pub extra_args: &'static [&'static str],
}

/// The machines the qemu pedestal runs: first one generic `virt` machine per
/// architecture (the first is the default, for images that are not ELFs and name
/// none), then the boards with a machine of their own, picked by board name.
pub const MACHINES: [MachineSpec; 4] = [
    MachineSpec {
        arch: Arch::Aarch64,
        binary: "qemu-system-aarch64",
        package: "qemu-system-arm",
        machine: "virt",
        cpu: "cortex-a53",
        uart: "PL011",
        ram_base: 0x4000_0000,
        board: None,
        fixed_ram_mib: None,
        max_vcpus: 8,
        pci: true,
        extra_args: &[],
    },
    MachineSpec {
        arch: Arch::Arm,
        binary: "qemu-system-arm",
        package: "qemu-system-arm",
        machine: "virt",
        cpu: "cortex-a15",
        uart: "PL011",
        ram_base: 0x4000_0000,
        board: None,
        fixed_ram_mib: None,
        max_vcpus: 8,
        pci: true,
        extra_args: &[],
    },
    // QEMU's default `-bios` here is OpenSBI (Debian: package opensbi), so an
    // S-mode firmware given as `-kernel` runs over it.
    MachineSpec {
        arch: Arch::Riscv64,
        binary: "qemu-system-riscv64",
        package: "qemu-system-misc",
        machine: "virt",
        cpu: "rv64",
        uart: "NS16550A",
        ram_base: 0x8000_0000,
        board: None,
        fixed_ram_mib: None,
        max_vcpus: 8,
        pci: true,
        extra_args: &[],
    },
    // ARM's MPS2 board with the AN386 image: one Cortex-M4, 4 MiB of code SSRAM
    // at 0 and 4 MiB of data SSRAM at 0x2000_0000 (QEMU's RAM size for it is
    // 16 MiB and fixed), UART0 a CMSDK APB UART. No PCI. Semihosting lets the
    // firmware end QEMU (SYS_EXIT) once the host has its exit code; `-nic none`
    // leaves the on-board Ethernet unconnected.
    MachineSpec {
        arch: Arch::Arm,
        binary: "qemu-system-arm",
        package: "qemu-system-arm",
        machine: "mps2-an386",
        cpu: "cortex-m4",
        uart: "CMSDK APB UART0",
        ram_base: 0x2000_0000,
        board: Some("mps2-an386"),
        fixed_ram_mib: Some(16),
        max_vcpus: 1,
        pci: false,
        extra_args: &[
            "-semihosting-config",
            "enable=on,target=native",
            "-nic",
            "none",
        ],
    },
];

/// How many rows of [`MACHINES`] are generic machines (one per architecture).
const GENERIC: usize = 3;

/// The architectures of [`MACHINES`]' generic rows, in its order (the board rows
/// add none).
const ARCHS: [Arch; GENERIC] = {
    let mut archs = [Arch::Aarch64; GENERIC];
    let mut i = 0;
    while i < GENERIC {
        assert!(MACHINES[i].board.is_none());
        archs[i] = MACHINES[i].arch;
        i += 1;
    }
    archs
};

/// The exit status of a guest that QEMU reports `guest-panicked` or
/// `internal-error`: 128 + SIGABRT, as for a crashed remote processor.
pub const GUEST_FAILED_STATUS: i32 = 128 + nix::libc::SIGABRT;

/// The generic table entry of `arch`.
pub fn machine_for(arch: Arch) -> Option<&'static MachineSpec> {
    MACHINES
        .iter()
        .find(|m| m.arch == arch && m.board.is_none())
}

/// The table entry of a board with a machine of its own.
pub fn machine_for_board(board: &str) -> Option<&'static MachineSpec> {
    MACHINES.iter().find(|m| m.board == Some(board))
}

/// A [`MachineSpec`] as configured: `[qemu] binary`, `machine` and `cpu` replace
/// the aarch64 entry's.
#[derive(Debug, Clone)]
struct Machine {
    spec: &'static MachineSpec,
    binary: PathBuf,
    machine: String,
    cpu: String,
}

/// The qemu pedestal.
#[derive(Debug)]
pub struct Qemu {
    machines: Vec<Machine>,
    extra_args: Vec<String>,
    /// From spawn to QMP answering in `prelaunch` (`[qemu] startup_timeout`).
    startup_timeout: Duration,
    /// How often a running guest's state is asked (`[qemu] watch_interval`).
    watch_interval: Duration,
    /// The config file, for error messages.
    config_origin: Option<PathBuf>,
}

impl Qemu {
    pub fn new(config: &Config) -> Qemu {
        let machines = MACHINES
            .iter()
            .map(|spec| {
                if spec.arch == Arch::Aarch64 {
                    Machine {
                        spec,
                        binary: config.qemu.binary.clone(),
                        machine: config.qemu.machine.clone(),
                        cpu: config.qemu.cpu.clone(),
                    }
                } else {
                    Machine {
                        spec,
                        binary: spec.binary.into(),
                        machine: spec.machine.to_owned(),
                        cpu: spec.cpu.to_owned(),
                    }
                }
            })
            .collect();
        Qemu {
            machines,
            extra_args: config.qemu.extra_args.clone(),
            startup_timeout: config.qemu.startup_timeout,
            watch_interval: config.qemu.watch_interval,
            config_origin: config.origin.clone(),
        }
    }

    /// The QEMU binary of the default architecture: the configured path, or the
    /// name found in `PATH`.
    pub fn resolve_binary(&self) -> Result<PathBuf, PedestalError> {
        self.resolve(&self.machines[0])
    }

    /// The QEMU binary of every architecture, as configured (a name for `PATH`
    /// or a path), in [`MACHINES`]' order (`micrun check` looks each up); the
    /// board rows use their architecture's binary and are not listed again.
    pub fn binaries(&self) -> Vec<(Arch, PathBuf)> {
        self.machines
            .iter()
            .filter(|m| m.spec.board.is_none())
            .map(|m| (m.spec.arch, m.binary.clone()))
            .collect()
    }

    fn resolve(&self, machine: &Machine) -> Result<PathBuf, PedestalError> {
        find_binary(
            &machine.binary,
            machine.spec,
            std::env::var_os("PATH").as_deref(),
            self.config_origin.as_deref(),
        )
    }

    /// The machine that runs `spec`'s firmware: its board's, if the board has a
    /// row of its own (and the firmware's architecture matches it), else the
    /// generic one of its image's architecture; the default for a spec without
    /// an image.
    fn machine(&self, spec: &InstanceSpec) -> &Machine {
        let arch = spec.image.map(|image| image.arch);
        let board = spec.annotations.board.as_deref();
        board
            .and_then(|b| {
                self.machines
                    .iter()
                    .find(|m| m.spec.board == Some(b) && arch.is_none_or(|a| a == m.spec.arch))
            })
            .or_else(|| {
                arch.and_then(|a| {
                    self.machines
                        .iter()
                        .find(|m| m.spec.board.is_none() && m.spec.arch == a)
                })
            })
            .unwrap_or(&self.machines[0])
    }

    /// QEMU's arguments for `spec` with the files in `files`.
    fn args(&self, spec: &InstanceSpec, files: &RunFiles) -> Vec<OsString> {
        let machine = self.machine(spec);
        let mut args: Vec<OsString> = [
            "-M",
            &machine.machine,
            "-cpu",
            &machine.cpu,
            "-smp",
            &spec.resources.vcpus.to_string(),
            "-m",
            &memory_mib(machine.spec, spec).to_string(),
            "-nodefaults",
            "-display",
            "none",
            "-monitor",
            "none",
            "-no-reboot",
            "-S",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        if machine.spec.pci {
            // A guest can report a panic (pvpanic); QEMU then stops it in state
            // `guest-panicked`, which the watch sees, instead of exiting with 0.
            args.extend(["-device", "pvpanic-pci", "-action", "panic=pause"].map(OsString::from));
        }
        args.extend(machine.spec.extra_args.iter().map(OsString::from));
        match spec.image.map(|i| i.format) {
            Some(ImageFormat::Raw { load_address }) => {
                // Copied to `load_address`, where the first CPU starts.
                args.push("-device".into());
                args.push(concat(&[
                    OsStr::new("loader,file="),
                    &opt_value(&spec.firmware),
                    OsStr::new(&format!(",addr={load_address:#x},cpu-num=0")),
                ]));
            }
            Some(ImageFormat::Bios) => {
                args.push("-bios".into());
                args.push(spec.firmware.clone().into_os_string());
            }
            Some(ImageFormat::Elf(_)) | None => {
                args.push("-kernel".into());
                args.push(spec.firmware.clone().into_os_string());
            }
        }
        args.push("-chardev".into());
        args.push(concat(&[
            OsStr::new("socket,id=link,path="),
            &opt_value(&files.uart),
            OsStr::new(",server=on,wait=on"),
        ]));
        args.extend(["-serial", "chardev:link", "-qmp"].map(OsString::from));
        args.push(concat(&[
            OsStr::new("unix:"),
            &opt_value(&files.qmp),
            OsStr::new(",server=on,wait=off"),
        ]));
        args.extend(self.extra_args.iter().map(OsString::from));
        args
    }

    /// Spawns QEMU and brings it to `prelaunch`; on failure kills it and removes
    /// its files.
    fn launch(
        &self,
        binary: &Path,
        spec: &InstanceSpec,
        files: RunFiles,
        pin: Option<nix::sched::CpuSet>,
    ) -> Result<QemuPartition, PedestalError> {
        let fail = |detail: String| PedestalError::failed(KIND, "create", detail);
        files.remove_all();
        let log = File::create(&files.log)
            .map_err(|e| fail(format!("cannot create {}: {e}", files.log.display())))?;
        let mut cmd = Command::new(binary);
        cmd.args(self.args(spec, &files))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // SAFETY: between fork and exec only setrlimit(2) and sched_setaffinity(2),
        // plain system calls; the set was built before the fork. No core file: a
        // failed guest is ended with SIGABRT (see `watch`), and a core of QEMU
        // holds the guest's whole RAM.
        unsafe {
            cmd.pre_exec(move || {
                nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0)
                    .map_err(std::io::Error::from)?;
                if let Some(set) = pin {
                    nix::sched::sched_setaffinity(Pid::from_raw(0), &set)
                        .map_err(std::io::Error::from)?;
                }
                Ok(())
            });
        }
        let started = Instant::now();
        let child = cmd.spawn().map_err(|e| {
            files.remove_all();
            fail(format!("cannot run {}: {e}", binary.display()))
        })?;
        let pid = child.id();
        // Dropping the handle neither kills nor waits: the shim's reaper reaps QEMU.
        drop(child);
        let start = proc_stat(pid).map_or(0, |s| s.start);

        match startup(pid, start, &files, started, self.startup_timeout) {
            Ok((uart, qmp)) => {
                log::debug!(
                    "{}: QEMU pid {pid} ready in {:?}",
                    spec.id,
                    started.elapsed()
                );
                let link = link_of(uart).map_err(|e| {
                    abandon(pid, start, &files);
                    files.remove_all();
                    fail(format!("UART socket: {e}"))
                })?;
                Ok(QemuPartition {
                    id: spec.id.clone(),
                    pid,
                    start,
                    qmp: Arc::new(Mutex::new(Some(qmp))),
                    watch: None,
                    watch_interval: self.watch_interval,
                    link: Some(link),
                    files,
                    state: PartitionState::Created,
                    exit_code: None,
                    failed: None,
                    resources: Resources {
                        memory_mib: memory_mib(self.machine(spec).spec, spec),
                        ..spec.resources.clone()
                    },
                })
            }
            Err(why) => {
                // A QEMU that refuses its command line closes the sockets as it
                // exits: give it a moment to end by itself, so that the error
                // leads with its own words.
                let exited = wait_ended(pid, start, EXIT_GRACE);
                abandon(pid, start, &files);
                let log = files.log_tail();
                files.remove_all();
                Err(fail(if exited {
                    format!("QEMU (pid {pid}) exited while starting: {log} ({why})")
                } else {
                    format!("{why}; QEMU (pid {pid}) was killed; {log}")
                }))
            }
        }
    }
}

impl Pedestal for Qemu {
    fn kind(&self) -> PedestalKind {
        KIND
    }

    fn arch(&self) -> Arch {
        MACHINES[0].arch
    }

    fn archs(&self) -> Vec<Arch> {
        ARCHS.to_vec()
    }

    fn inspect_firmware(
        &self,
        path: &Path,
        hints: &ImageHints,
    ) -> Result<FirmwareImage, FirmwareError> {
        crate::firmware::inspect(path, hints, &ARCHS, KIND.name(), true)
    }

    fn check(&self, spec: &InstanceSpec) -> Result<(), PedestalError> {
        // The socket paths depend on the run directory, checked by `create`.
        let machine = self.machine(spec);
        if spec.resources.vcpus > machine.spec.max_vcpus {
            return Err(PedestalError::failed(
                KIND,
                "create",
                format!(
                    "{} vCPUs asked, but QEMU's {} machine{} has at most {}; ask for fewer \
                     (org.openeuler.micrun.container.max_vcpu_num or the CPU limit)",
                    spec.resources.vcpus,
                    machine.machine,
                    machine
                        .spec
                        .board
                        .map_or_else(String::new, |b| format!(" (board {b})")),
                    machine.spec.max_vcpus
                ),
            ));
        }
        if let Some(image) = &spec.image {
            check_fits(
                image,
                &spec.firmware,
                machine.spec,
                memory_mib(machine.spec, spec),
            )?;
        }
        self.resolve(machine).map(drop)
    }

    fn create(
        &self,
        spec: &InstanceSpec,
        run_dir: &Path,
    ) -> Result<Box<dyn Partition>, PedestalError> {
        let binary = self.resolve(self.machine(spec))?;
        let files = RunFiles::new(run_dir);
        files.check_len(&spec.id)?;
        let pin = match &spec.resources.cpu_str {
            Some(cpus) => Some(CpuSet::parse(cpus).and_then(|set| affinity(&set)).map_err(
                |e| PedestalError::failed(KIND, "create", format!("cpuset {cpus}: {e}")),
            )?),
            None => None,
        };
        Ok(Box::new(self.launch(&binary, spec, files, pin)?))
    }
}

/// The guest's RAM in MiB: the machine's own when it is fixed, else the
/// container's memory.
fn memory_mib(machine: &MachineSpec, spec: &InstanceSpec) -> u32 {
    machine.fixed_ram_mib.unwrap_or(spec.resources.memory_mib)
}

/// A raw image must lie inside the guest's RAM (`memory_mib` from the machine's
/// RAM base); other kinds are placed by QEMU, which reports what does not fit.
fn check_fits(
    image: &FirmwareImage,
    path: &Path,
    machine: &MachineSpec,
    memory_mib: u32,
) -> Result<(), PedestalError> {
    let ImageFormat::Raw { load_address } = image.format else {
        return Ok(());
    };
    let ram_end = machine.ram_base + (u64::from(memory_mib) << 20);
    let end = load_address.checked_add(image.size);
    if load_address >= machine.ram_base && end.is_some_and(|end| end <= ram_end) {
        return Ok(());
    }
    Err(PedestalError::failed(
        KIND,
        "create",
        format!(
            "the raw image {} ({} bytes at {load_address:#x}, from \
             org.openeuler.micrun.container.firmware_load_address) does not fit the \
             {} guest's RAM {:#x}..{ram_end:#x} ({memory_mib} MiB); give a load address \
             inside it, or more memory",
            path.display(),
            image.size,
            machine.arch,
            machine.ram_base,
        ),
    ))
}

/// Finds `binary` ([`super::find_executable`]) for `machine`; the error says how
/// to get QEMU.
fn find_binary(
    binary: &Path,
    machine: &MachineSpec,
    path_var: Option<&OsStr>,
    config: Option<&Path>,
) -> Result<PathBuf, PedestalError> {
    find_executable(binary, path_var).map_err(|e| {
        let config = config.map_or_else(
            || "the micrun config".to_owned(),
            |p| p.display().to_string(),
        );
        PedestalError::Unavailable {
            pedestal: KIND,
            why: format!(
                "QEMU binary for {} firmware {e}; install QEMU (Debian package {}) or set \
                 `[qemu] binary` in {config}",
                machine.arch, machine.package
            ),
        }
    })
}

/// A path as the value of a QEMU option (`,` is written `,,`).
fn opt_value(path: &Path) -> OsString {
    let mut out = Vec::new();
    for &b in path.as_os_str().as_bytes() {
        out.push(b);
        if b == b',' {
            out.push(b',');
        }
    }
    OsString::from_vec(out)
}

fn concat(parts: &[&OsStr]) -> OsString {
    parts.iter().fold(OsString::new(), |mut s, p| {
        s.push(p);
        s
    })
}

/// A host CPU set as an affinity mask.
fn affinity(cpus: &CpuSet) -> Result<nix::sched::CpuSet, String> {
    let mut set = nix::sched::CpuSet::new();
    for cpu in cpus.iter() {
        set.set(cpu as usize).map_err(|_| {
            format!(
                "CPU {cpu} is beyond the {} CPUs an affinity mask holds",
                nix::sched::CpuSet::count()
            )
        })?;
    }
    Ok(set)
}

/// The instance's files in its run directory.
#[derive(Debug)]
struct RunFiles {
    uart: PathBuf,
    qmp: PathBuf,
    log: PathBuf,
}

impl RunFiles {
    fn new(run_dir: &Path) -> RunFiles {
        RunFiles {
            uart: run_dir.join("uart.sock"),
            qmp: run_dir.join("qmp.sock"),
            log: run_dir.join("qemu.log"),
        }
    }

    /// Both socket paths must fit `sun_path`.
    fn check_len(&self, id: &str) -> Result<(), PedestalError> {
        for path in [&self.uart, &self.qmp] {
            let len = path.as_os_str().len();
            if len > SUN_PATH_MAX {
                return Err(PedestalError::InvalidId {
                    pedestal: KIND,
                    id: id.to_owned(),
                    why: format!(
                        "the QEMU socket path {} would be {len} bytes, over the \
                         {SUN_PATH_MAX}-byte limit of unix socket paths; use a shorter \
                         container id (or a shorter state_dir)",
                        path.display()
                    ),
                });
            }
        }
        Ok(())
    }

    fn remove_sockets(&self) {
        for path in [&self.uart, &self.qmp] {
            remove(path);
        }
    }

    fn remove_all(&self) {
        self.remove_sockets();
        remove(&self.log);
    }

    /// The end of `qemu.log`, for an error message.
    fn log_tail(&self) -> String {
        let text = match std::fs::read(&self.log) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => return format!("qemu.log unreadable: {e}"),
        };
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            // QEMU's note that it waits for the UART client is expected noise.
            .filter(|l| !l.is_empty() && !l.contains("info: QEMU waiting for connection"))
            .collect();
        if lines.is_empty() {
            return "qemu.log is empty".to_owned();
        }
        let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
        format!("qemu.log: {}", tail.join(" | "))
    }
}

fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            log::warn!("cannot remove {}: {e}", path.display());
        }
    }
}

/// Connects the UART, then QMP, and checks that QEMU waits in `prelaunch`.
/// All of it by `started + timeout` (`[qemu] startup_timeout`).
fn startup(
    pid: u32,
    start: u64,
    files: &RunFiles,
    started: Instant,
    timeout: Duration,
) -> Result<(UnixStream, Qmp), String> {
    let deadline = started + timeout;
    let uart = connect_when_listening(&files.uart, "UART", pid, start, deadline, timeout)?;
    let stream = connect_when_listening(&files.qmp, "QMP", pid, start, deadline, timeout)?;
    let mut qmp = Qmp::handshake(stream, &files.qmp, started, deadline).map_err(|e| {
        format!(
            "QMP handshake: {e}; the start-up deadline is `[qemu] startup_timeout` \
             ({timeout:?} from QEMU's start)"
        )
    })?;
    let status = qmp
        .query_status()
        .map_err(|e| format!("QMP query-status: {e}"))?;
    if status != "prelaunch" && status != "paused" {
        return Err(format!(
            "QEMU reports status {status:?}, expected \"prelaunch\""
        ));
    }
    Ok((uart, qmp))
}

/// Connects to the socket QEMU will listen on, polling until `deadline`.
fn connect_when_listening(
    path: &Path,
    what: &str,
    pid: u32,
    start: u64,
    deadline: Instant,
    timeout: Duration,
) -> Result<UnixStream, String> {
    loop {
        match UnixStream::connect(path) {
            Ok(s) => return Ok(s),
            Err(e) => {
                if !alive(pid, start) {
                    return Err(format!("QEMU ended before opening its {what} socket"));
                }
                if Instant::now() >= deadline {
                    return Err(format!(
                        "QEMU did not open its {what} socket {} within {timeout:?} (`[qemu] startup_timeout`): {e}",
                        path.display()
                    ));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// The link over the connected UART socket: the socket and a duplicate of it.
fn link_of(uart: UnixStream) -> std::io::Result<Link> {
    uart.set_nonblocking(true)?;
    let tx = uart.try_clone()?;
    Ok(Link::plain(uart.into(), tx.into()))
}

/// Kills a QEMU that failed to start and waits (without reaping) until it ended,
/// so that it creates no file after they are removed.
fn abandon(pid: u32, start: u64, files: &RunFiles) {
    if alive(pid, start) {
        kill_if_same(pid, start);
    }
    if !wait_ended(pid, start, KILL_WAIT) {
        log::warn!("QEMU pid {pid} did not end after SIGKILL");
    }
    files.remove_sockets();
}

/// Whether the process that started at `start` still runs (not reaped, not a zombie).
fn alive(pid: u32, start: u64) -> bool {
    proc_stat(pid).is_some_and(|s| s.start == start && !matches!(s.state, 'Z' | 'X'))
}

/// Waits up to `timeout` for the process to end; true if it has.
fn wait_ended(pid: u32, start: u64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !alive(pid, start) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The partition state for a QMP run state; `None` for transient states
/// (migration, snapshots) that say nothing about the container.
fn state_of(status: &str, exit_code: Option<i32>) -> Option<PartitionState> {
    Some(match status {
        "prelaunch" => PartitionState::Created,
        "running" => PartitionState::Running,
        "paused" | "suspended" | "debug" | "io-error" | "watchdog" => PartitionState::Paused,
        "shutdown" | "guest-panicked" | "internal-error" => PartitionState::Stopped(exit_code),
        _ => return None,
    })
}

/// Asks a running guest's state every `interval` until told to stop (the sender
/// dropped) or QEMU is gone. A guest QEMU reports `guest-panicked` (the guest
/// reported a panic on its pvpanic device) or `internal-error` makes no more
/// progress: the reason goes to the log and QEMU is ended with SIGABRT, so that
/// the task's exit status is [`GUEST_FAILED_STATUS`]. `shutdown` never lasts:
/// QEMU exits on it (no `-no-shutdown`).
fn watch(
    id: String,
    pid: u32,
    start: u64,
    qmp: Arc<Mutex<Option<Qmp>>>,
    interval: Duration,
    stop: mpsc::Receiver<()>,
) -> Option<EndCause> {
    loop {
        match stop.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return None,
        }
        if !alive(pid, start) {
            return None;
        }
        let status = match lock(&qmp).as_mut() {
            Some(qmp) => qmp.query_status(),
            None => return None,
        };
        match status {
            Ok(status) if status == "guest-panicked" || status == "internal-error" => {
                log::warn!(
                    "{id}: QEMU (pid {pid}) reports the guest {status:?}: {}; ending it \
                     with exit status {GUEST_FAILED_STATUS}",
                    if status == "guest-panicked" {
                        "the firmware reported a panic on its pvpanic device"
                    } else {
                        "QEMU could not go on running it"
                    }
                );
                if process_start_time(pid) == Some(start) {
                    let _ = nix::sys::signal::kill(
                        Pid::from_raw(pid as i32),
                        nix::sys::signal::Signal::SIGABRT,
                    );
                }
                return Some(EndCause::GuestFailed {
                    panicked: status == "guest-panicked",
                });
            }
            Ok(_) => {}
            Err(QmpError::Closed) => return None,
            Err(e) => log::debug!("{id}: QEMU pid {pid}: query-status: {e}"),
        }
    }
}

/// The shared QMP session; a panic elsewhere while it was held leaves it usable
/// (every exchange is complete or failed).
fn lock(qmp: &Mutex<Option<Qmp>>) -> std::sync::MutexGuard<'_, Option<Qmp>> {
    qmp.lock().unwrap_or_else(|e| e.into_inner())
}

/// The thread of [`watch`] and how to stop it.
#[derive(Debug)]
struct Watch {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<Option<EndCause>>,
}

impl Watch {
    /// Stops it; what it saw end the guest, if anything.
    fn end(self) -> Option<EndCause> {
        drop(self.stop);
        // It wakes at once, or after the query it is in (bounded by QMP's timeout).
        self.thread.join().ok().flatten()
    }
}

/// One QEMU.
#[derive(Debug)]
struct QemuPartition {
    id: String,
    pid: u32,
    start: u64,
    /// `None` once QEMU closed it or the partition was destroyed. Shared with
    /// the watch.
    qmp: Arc<Mutex<Option<Qmp>>>,
    /// Runs while the guest runs.
    watch: Option<Watch>,
    watch_interval: Duration,
    link: Option<Link>,
    files: RunFiles,
    /// The last state seen, for when QEMU cannot be asked.
    state: PartitionState,
    /// From the reaper.
    exit_code: Option<i32>,
    /// What the watch saw end the guest.
    failed: Option<EndCause>,
    resources: Resources,
}

impl QemuPartition {
    fn ended(&self) -> bool {
        self.exit_code.is_some() || !alive(self.pid, self.start)
    }

    fn gone(&self, operation: &'static str) -> PedestalError {
        PedestalError::failed(
            KIND,
            operation,
            format!(
                "QEMU (pid {}) has ended{}; {}",
                self.pid,
                self.exit_code
                    .map_or_else(String::new, |c| format!(" with status {c}")),
                self.files.log_tail()
            ),
        )
    }

    /// Runs a QMP command, telling an ended QEMU from a refused command.
    fn command(&mut self, operation: &'static str, command: &str) -> Result<(), PedestalError> {
        if self.ended() {
            self.state = PartitionState::Stopped(self.exit_code);
            return Err(self.gone(operation));
        }
        let result = {
            let mut qmp = lock(&self.qmp);
            let qmp = qmp.as_mut().ok_or_else(|| {
                PedestalError::failed(KIND, operation, "the QMP connection to QEMU is closed")
            })?;
            qmp.execute(command)
        };
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                if matches!(e, QmpError::Closed) {
                    // QEMU closes QMP when it exits.
                    *lock(&self.qmp) = None;
                    if wait_ended(self.pid, self.start, Duration::from_millis(200)) {
                        self.state = PartitionState::Stopped(self.exit_code);
                        return Err(self.gone(operation));
                    }
                }
                Err(PedestalError::failed(KIND, operation, e))
            }
        }
    }

    /// Pins every thread of QEMU to `cpus`; for `None`, to the CPUs the shim may
    /// use (what QEMU inherits when created without a cpuset).
    fn pin(&self, cpus: Option<&str>) -> Result<(), PedestalError> {
        let fail = |e: String| PedestalError::failed(KIND, "update", e);
        let (mask, shown) = match cpus {
            Some(text) => (
                CpuSet::parse(text)
                    .and_then(|set| affinity(&set))
                    .map_err(|e| fail(format!("cpuset {text}: {e}")))?,
                text,
            ),
            None => (
                nix::sched::sched_getaffinity(Pid::from_raw(0))
                    .map_err(|e| fail(format!("the shim's CPU affinity: {e}")))?,
                "any",
            ),
        };
        let mut done = std::collections::BTreeSet::new();
        // A thread started during a pass by a thread not yet re-pinned is caught by
        // the next pass.
        for _ in 0..3 {
            let dir = std::fs::read_dir(format!("/proc/{}/task", self.pid))
                .map_err(|e| fail(format!("QEMU threads: {e}")))?;
            let mut new = false;
            for tid in dir
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            {
                if !done.insert(tid) {
                    continue;
                }
                new = true;
                match nix::sched::sched_setaffinity(Pid::from_raw(tid), &mask) {
                    Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                    Err(e) => {
                        return Err(fail(format!("pin QEMU thread {tid} to CPUs {shown}: {e}")))
                    }
                }
            }
            if !new {
                break;
            }
        }
        Ok(())
    }
}

impl Partition for QemuPartition {
    fn start(&mut self) -> Result<(), PedestalError> {
        self.command("start", "cont")?;
        self.state = PartitionState::Running;
        if self.watch.is_none() {
            let (stop, stopped) = mpsc::channel();
            let (id, pid, start) = (self.id.clone(), self.pid, self.start);
            let (qmp, interval) = (self.qmp.clone(), self.watch_interval);
            let thread = std::thread::Builder::new()
                .name("qemu-watch".into())
                .spawn(move || watch(id, pid, start, qmp, interval, stopped))
                .map_err(|e| PedestalError::failed(KIND, "start", format!("watch thread: {e}")))?;
            self.watch = Some(Watch { stop, thread });
        }
        Ok(())
    }

    fn pause(&mut self) -> Result<(), PedestalError> {
        self.command("pause", "stop")?;
        self.state = PartitionState::Paused;
        Ok(())
    }

    fn resume(&mut self) -> Result<(), PedestalError> {
        self.command("resume", "cont")?;
        self.state = PartitionState::Running;
        Ok(())
    }

    fn destroy(&mut self) -> Result<(), PedestalError> {
        self.link = None;
        if let Some(watch) = self.watch.take() {
            self.failed = self.failed.or(watch.end());
        }
        if alive(self.pid, self.start) {
            let quitting = lock(&self.qmp).as_mut().is_some_and(|qmp| {
                let _ = qmp.set_timeout(QUIT_TIMEOUT);
                qmp.execute("quit")
                    .inspect_err(|e| log::debug!("QEMU pid {}: quit: {e}", self.pid))
                    .is_ok()
            });
            if !(quitting && wait_ended(self.pid, self.start, QUIT_WAIT)) {
                kill_if_same(self.pid, self.start);
                if !wait_ended(self.pid, self.start, KILL_WAIT) {
                    return Err(PedestalError::failed(
                        KIND,
                        "destroy",
                        format!("QEMU (pid {}) did not end after SIGKILL", self.pid),
                    ));
                }
            }
        }
        *lock(&self.qmp) = None;
        // QEMU removes its sockets when it quits, not when it is killed.
        self.files.remove_sockets();
        self.state = PartitionState::Stopped(self.exit_code);
        Ok(())
    }

    fn update(&mut self, resources: &Resources) -> Result<(), PedestalError> {
        if resources.vcpus != self.resources.vcpus
            || resources.memory_mib != self.resources.memory_mib
        {
            return Err(PedestalError::Unsupported {
                pedestal: KIND,
                operation:
                    "changing vcpus or memory at run time (QEMU -M virt has no hotplug for them)",
            });
        }
        if resources.cpu_str != self.resources.cpu_str {
            if self.ended() {
                return Err(self.gone("update"));
            }
            self.pin(resources.cpu_str.as_deref())?;
        }
        self.resources = resources.clone();
        Ok(())
    }

    fn stats(&mut self) -> Result<PartitionStats, PedestalError> {
        let stat = proc_stat(self.pid)
            .filter(|s| s.start == self.start && !matches!(s.state, 'Z' | 'X'))
            .filter(|_| self.exit_code.is_none())
            .ok_or_else(|| self.gone("stats"))?;
        Ok(PartitionStats {
            cpu_ns: stat.cpu_ns(),
            memory_limit_bytes: u64::from(self.resources.memory_mib) << 20,
            memory_used_bytes: stat.rss_bytes(),
        })
    }

    fn state(&mut self) -> PartitionState {
        if self.ended() {
            self.state = PartitionState::Stopped(self.exit_code);
            return self.state;
        }
        let status = lock(&self.qmp).as_mut().map(Qmp::query_status);
        if let Some(status) = status {
            match status {
                Ok(status) => {
                    if let Some(state) = state_of(&status, self.exit_code) {
                        self.state = state;
                    }
                }
                Err(e) => {
                    log::debug!("QEMU pid {}: query-status: {e}", self.pid);
                    if matches!(e, QmpError::Closed) {
                        *lock(&self.qmp) = None;
                        if wait_ended(self.pid, self.start, Duration::from_millis(200)) {
                            self.state = PartitionState::Stopped(self.exit_code);
                        }
                    }
                }
            }
        }
        self.state
    }

    fn end_cause(&self) -> Option<EndCause> {
        self.failed
    }

    fn process_exited(&mut self, code: i32) {
        self.exit_code = Some(code);
        if let Some(watch) = self.watch.take() {
            self.failed = self.failed.or(watch.end());
        }
        *lock(&self.qmp) = None;
        self.state = PartitionState::Stopped(Some(code));
    }

    fn pid(&self) -> Option<u32> {
        Some(self.pid)
    }

    fn take_link(&mut self) -> Option<Link> {
        self.link.take()
    }

    fn leftovers(&self) -> Leftovers {
        Leftovers {
            processes: vec![(self.pid, self.start)],
            paths: vec![
                self.files.uart.clone(),
                self.files.qmp.clone(),
                self.files.log.clone(),
            ],
            partition: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::Annotations;

    fn spec(cpus: Option<&str>) -> InstanceSpec {
        InstanceSpec {
            id: "c1".into(),
            namespace: "default".into(),
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            firmware: "/b/rootfs/fw,1.elf".into(),
            image: None,
            pedestal: KIND,
            resources: Resources {
                vcpus: 2,
                max_vcpus: 2,
                cpu_str: cpus.map(str::to_owned),
                cpu_cap_percent: None,
                cpu_weight: 256,
                memory_mib: 64,
                max_memory_mib: 64,
                dropped_cpus: vec![],
                ignored: vec![],
            },
            annotations: Annotations::default(),
            terminal: false,
            sandbox: false,
        }
    }

    #[test]
    fn command_line() {
        let mut config = Config::default();
        config.qemu.extra_args = vec!["-d".into(), "guest_errors".into()];
        let q = Qemu::new(&config);
        let files = RunFiles::new(Path::new("/run/micrun/a,b"));
        let args: Vec<String> = q
            .args(&spec(None), &files)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(
            args.join(" "),
            "-M virt -cpu cortex-a53 -smp 2 -m 64 -nodefaults -display none -monitor none \
             -no-reboot -S -device pvpanic-pci -action panic=pause -kernel /b/rootfs/fw,1.elf \
             -chardev socket,id=link,path=/run/micrun/a,,b/uart.sock,server=on,wait=on \
             -serial chardev:link -qmp unix:/run/micrun/a,,b/qmp.sock,server=on,wait=off \
             -d guest_errors"
        );
    }

    #[test]
    fn board_picks_the_machine() {
        let q = Qemu::new(&Config::default());
        let files = RunFiles::new(Path::new("/r"));
        let line = |board: Option<&str>, arch: Arch, vcpus: u32| {
            let mut s = spec(None);
            s.annotations.board = board.map(str::to_owned);
            s.image = Some(FirmwareImage {
                arch,
                format: ImageFormat::Elf(crate::firmware::ElfInfo {
                    arch,
                    class: crate::firmware::ElfClass::Elf32,
                    kind: crate::firmware::ElfKind::Executable,
                    entry: 0,
                }),
                size: 1,
            });
            s.resources.vcpus = vcpus;
            let args: Vec<String> = q
                .args(&s, &files)
                .into_iter()
                .map(|a| a.into_string().unwrap())
                .collect();
            (args.join(" "), q.check(&s).err().map(|e| e.to_string()))
        };
        // Its own machine: fixed RAM, one CPU, no PCI (no pvpanic), semihosting.
        let (m4, _) = line(Some("mps2-an386"), Arch::Arm, 1);
        assert!(
            m4.starts_with(
                "-M mps2-an386 -cpu cortex-m4 -smp 1 -m 16 -nodefaults -display none \
                 -monitor none -no-reboot -S -semihosting-config enable=on,target=native \
                 -nic none -kernel "
            ),
            "{m4}"
        );
        assert!(!m4.contains("pvpanic"), "{m4}");
        let (_, err) = line(Some("mps2-an386"), Arch::Arm, 2);
        let err = err.expect("2 vCPUs on a one-CPU board");
        assert!(
            err.contains("mps2-an386") && err.contains("at most 1"),
            "{err}"
        );
        // A board without a row, or a firmware of another architecture: the
        // architecture's generic machine.
        let (virt, _) = line(Some("qemu-virt"), Arch::Arm, 2);
        assert!(
            virt.starts_with("-M virt -cpu cortex-a15 -smp 2 -m 64 "),
            "{virt}"
        );
        assert!(virt.contains("pvpanic-pci"), "{virt}");
        let (a64, _) = line(Some("mps2-an386"), Arch::Aarch64, 2);
        assert!(a64.starts_with("-M virt -cpu cortex-a53 "), "{a64}");
        let (none, _) = line(None, Arch::Arm, 2);
        assert!(none.starts_with("-M virt -cpu cortex-a15 "), "{none}");
        assert_eq!(machine_for(Arch::Arm).unwrap().machine, "virt");
        assert_eq!(machine_for_board("mps2-an386").unwrap().cpu, "cortex-m4");
    }

    #[test]
    fn socket_path_limit() {
        let dir = format!("/run/micrun/{}", "x".repeat(SUN_PATH_MAX - 12 - 10));
        // "/uart.sock" is 10 bytes: exactly at the limit.
        assert_eq!(
            RunFiles::new(Path::new(&dir)).uart.as_os_str().len(),
            SUN_PATH_MAX
        );
        RunFiles::new(Path::new(&dir)).check_len("c1").unwrap();
        let long = format!("{dir}y");
        let err = RunFiles::new(Path::new(&long)).check_len("c1").unwrap_err();
        assert!(matches!(err, PedestalError::InvalidId { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("108 bytes") && text.contains("107-byte"),
            "{text}"
        );
    }

    #[test]
    fn binary_lookup() {
        let err =
            find_binary(Path::new("/nonexistent/qemu"), &MACHINES[0], None, None).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, PedestalError::Unavailable { .. }));
        assert!(
            text.contains("/nonexistent/qemu") && text.contains("`[qemu] binary`"),
            "{text}"
        );

        let err = find_binary(
            Path::new("no-such-qemu"),
            &MACHINES[0],
            Some(OsStr::new("/nonexistent-a:/nonexistent-b")),
            Some(Path::new("/etc/micrun/config.toml")),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("no-such-qemu not found in PATH (/nonexistent-a:/nonexistent-b)")
                && err.contains("`[qemu] binary` in /etc/micrun/config.toml"),
            "{err}"
        );

        // `sh` exists on every host this builds on.
        let found = find_binary(
            Path::new("sh"),
            &MACHINES[0],
            Some(OsStr::new("/nonexistent:/bin")),
            None,
        );
        assert_eq!(found.unwrap(), Path::new("/bin/sh"));
        // A directory is not a binary.
        assert!(find_binary(Path::new("/bin"), &MACHINES[0], None, None).is_err());
    }

    #[test]
    fn run_states() {
        assert_eq!(state_of("prelaunch", None), Some(PartitionState::Created));
        assert_eq!(state_of("running", None), Some(PartitionState::Running));
        assert_eq!(state_of("paused", None), Some(PartitionState::Paused));
        assert_eq!(
            state_of("shutdown", Some(0)),
            Some(PartitionState::Stopped(Some(0)))
        );
        assert_eq!(state_of("inmigrate", None), None);
    }

    #[test]
    fn affinity_mask() {
        let mask = affinity(&CpuSet::parse("0,2-3").unwrap()).unwrap();
        let on: Vec<usize> = (0..8).filter(|&c| mask.is_set(c).unwrap()).collect();
        assert_eq!(on, [0, 2, 3]);
        assert!(
            affinity(&CpuSet::parse(&nix::sched::CpuSet::count().to_string()).unwrap()).is_err()
        );
    }

    #[test]
    fn log_tail_skips_the_waiting_note() {
        let dir = std::env::temp_dir().join(format!("micrun-qemu-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = RunFiles::new(&dir);
        std::fs::write(
            &files.log,
            "qemu-system-aarch64: -chardev socket,...: info: QEMU waiting for connection on: x\n\
             qemu-system-aarch64: could not load kernel '/x'\n",
        )
        .unwrap();
        assert_eq!(
            files.log_tail(),
            "qemu.log: qemu-system-aarch64: could not load kernel '/x'"
        );
        files.remove_all();
        assert_eq!(
            files.log_tail().split(':').next(),
            Some("qemu.log unreadable")
        );
        std::fs::remove_dir(&dir).unwrap();
    }
}
