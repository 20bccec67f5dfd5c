//! The `sim` pedestal: the firmware file is a host executable (the
//! `micrun-rtos-sim` demo, or any host build of an RTOS application) run as a
//! process, its stdin/stdout being the link.
//!
//! It executes image content on the host, so it only runs when the micrun config
//! says `[sim] enable = true`.
//!
//! Create forks the process, which then waits before `exec` for one byte on a
//! "gate" pipe, so a created instance has a pid but runs nothing; Start writes
//! the byte and learns from a close-on-exec pipe whether the exec worked. If the
//! shim dies before Start, the gate closes and the child exits without running.
//! Pause and resume are SIGSTOP and SIGCONT. The OCI `process.args` after the
//! first become the simulator's arguments (e.g. `--raw`).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::unistd::{fork, pipe2, ForkResult};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{
    process_start_time, Leftovers, Link, Partition, PartitionState, PartitionStats, Pedestal,
    PedestalError,
};
use crate::config::{Config, PedestalKind};
use crate::firmware::Arch;
use crate::resources::Resources;
use crate::spec::InstanceSpec;

const KIND: PedestalKind = PedestalKind::Sim;

/// The sim pedestal.
#[derive(Debug)]
pub struct Sim {
    arch: Arch,
}

impl Sim {
    pub fn new(_config: &Config) -> Result<Sim, PedestalError> {
        let arch = Arch::host().ok_or_else(|| PedestalError::Unavailable {
            pedestal: KIND,
            why: format!("unknown host architecture {}", std::env::consts::ARCH),
        })?;
        Ok(Sim { arch })
    }
}

impl Pedestal for Sim {
    fn kind(&self) -> PedestalKind {
        KIND
    }

    fn arch(&self) -> Arch {
        self.arch
    }

    fn check(&self, _spec: &InstanceSpec) -> Result<(), PedestalError> {
        Ok(())
    }

    fn create(
        &self,
        spec: &InstanceSpec,
        _run_dir: &Path,
    ) -> Result<Box<dyn Partition>, PedestalError> {
        let fail = |e: &dyn std::fmt::Display| {
            PedestalError::failed(KIND, "create", format!("{}: {e}", spec.firmware.display()))
        };
        // Everything the child needs is prepared before fork: after it, only
        // async-signal-safe calls are allowed (the shim is multi-threaded).
        let mut argv = vec![cstring(spec.firmware.as_os_str()).map_err(|e| fail(&e))?];
        for a in sim_args(spec) {
            argv.push(cstring(std::ffi::OsStr::new(&a)).map_err(|e| fail(&e))?);
        }
        let mut argv_ptrs: Vec<*const nix::libc::c_char> =
            argv.iter().map(|a| a.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        let cwd = cstring(spec.rootfs.as_os_str()).map_err(|e| fail(&e))?;
        let devnull = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .map_err(|e| fail(&e))?;
        let (to_child_r, to_child_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| fail(&e))?;
        let (from_child_r, from_child_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| fail(&e))?;
        // The child reports an exec failure (its errno) here; EOF means exec worked.
        let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| fail(&e))?;
        // Start writes one byte here; until then the child waits before exec.
        let (gate_r, gate_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| fail(&e))?;

        // SAFETY: the child only calls async-signal-safe functions (dup2, fcntl,
        // close, chdir, read, execv, write, _exit) on data prepared before the fork.
        let pid = match unsafe { fork() }.map_err(|e| fail(&e))? {
            ForkResult::Child => unsafe {
                use nix::libc;
                let ok = libc::dup2(to_child_r.as_raw_fd(), 0) >= 0
                    && libc::dup2(from_child_w.as_raw_fd(), 1) >= 0
                    && libc::dup2(devnull.as_raw_fd(), 2) >= 0
                    && libc::dup2(err_w.as_raw_fd(), 3) >= 0
                    && libc::fcntl(3, libc::F_SETFD, libc::FD_CLOEXEC) == 0
                    && libc::dup2(gate_r.as_raw_fd(), 4) >= 0
                    && libc::fcntl(4, libc::F_SETFD, libc::FD_CLOEXEC) == 0
                    && close_from(5)
                    && libc::chdir(cwd.as_ptr()) == 0;
                // Created, not started: wait for Start's byte on the gate. EOF
                // means the shim went away before Start: never run.
                let mut go = 0u8;
                if libc::read(4, (&mut go as *mut u8).cast(), 1) != 1 {
                    libc::_exit(126);
                }
                if ok {
                    libc::execv(argv_ptrs[0], argv_ptrs.as_ptr());
                }
                let errno = *libc::__errno_location();
                libc::write(3, (&errno as *const i32).cast(), 4);
                libc::_exit(127);
            },
            ForkResult::Parent { child } => child.as_raw() as u32,
        };
        drop((to_child_r, from_child_w, err_w, gate_r, devnull));
        let start = process_start_time(pid).unwrap_or(0);
        let tx = to_child_w;
        let rx = from_child_r;
        for fd in [&tx, &rx] {
            set_nonblocking(fd).map_err(|e| fail(&e))?;
        }
        Ok(Box::new(SimPartition {
            pid,
            start,
            state: PartitionState::Created,
            link: Some(Link::plain(rx, tx)),
            memory_limit: u64::from(spec.resources.memory_mib) << 20,
            exec_error: Some(err_r),
            gate: Some(gate_w),
            firmware: spec.firmware.clone(),
        }))
    }
}

/// Closes every descriptor from `first` up, in the forked child. A created
/// partition waits (stopped) before exec, so without this it would hold other
/// instances' link pipes open, and their ends would never be seen. Only
/// async-signal-safe calls.
pub(crate) unsafe fn close_from(first: i32) -> bool {
    use nix::libc;
    // SAFETY: plain syscalls on descriptor numbers.
    unsafe {
        if libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            0,
        ) == 0
        {
            return true;
        }
        let max = match libc::sysconf(libc::_SC_OPEN_MAX) {
            n if n > 0 => n as i32,
            _ => 65536,
        };
        for fd in first..max {
            libc::close(fd);
        }
    }
    true
}

fn cstring(s: &std::ffi::OsStr) -> Result<std::ffi::CString, std::ffi::NulError> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(s.as_bytes())
}

/// Arguments for the simulator: the OCI `process.args` after `argv[0]`.
fn sim_args(spec: &InstanceSpec) -> Vec<String> {
    crate::spec::load_oci_spec(&spec.bundle)
        .ok()
        .and_then(|s| s.process.and_then(|p| p.args))
        .map(|a| a.into_iter().skip(1).collect())
        .unwrap_or_default()
}

pub(crate) fn set_nonblocking(fd: &impl AsFd) -> nix::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

#[derive(Debug)]
struct SimPartition {
    pid: u32,
    start: u64,
    state: PartitionState,
    link: Option<Link>,
    memory_limit: u64,
    /// Read end of the exec-error pipe, until Start has checked it.
    exec_error: Option<OwnedFd>,
    /// Write end of the start gate, until Start.
    gate: Option<OwnedFd>,
    firmware: PathBuf,
}

impl SimPartition {
    fn signal(&self, sig: Signal, operation: &'static str) -> Result<(), PedestalError> {
        if process_start_time(self.pid) != Some(self.start) {
            return Err(PedestalError::failed(
                KIND,
                operation,
                "the process has ended",
            ));
        }
        kill(Pid::from_raw(self.pid as i32), sig)
            .map_err(|e| PedestalError::failed(KIND, operation, e))
    }
}

/// What to do about a firmware file the kernel would not execute because it has no
/// execute permission (an image built with `COPY` from a file without `+x`).
fn exec_hint(firmware: &Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(firmware) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 == 0 => format!(
            " (its mode is {:04o}, without execute permission: the sim pedestal runs the \
             firmware as a program; `chmod +x` it before building the image, or pack it \
             with `micrun image pack`, which stores firmware with mode 0755)",
            m.permissions().mode() & 0o7777
        ),
        _ => String::new(),
    }
}

impl Partition for SimPartition {
    fn start(&mut self) -> Result<(), PedestalError> {
        let gate = self
            .gate
            .take()
            .ok_or_else(|| PedestalError::failed(KIND, "start", "already started"))?;
        let mut gate = std::fs::File::from(gate);
        std::io::Write::write_all(&mut gate, b"g").map_err(|e| {
            PedestalError::failed(KIND, "start", format!("the created process has ended: {e}"))
        })?;
        // Blocks until the child has exec'd (EOF: the pipe is close-on-exec) or
        // reported why it could not.
        if let Some(fd) = self.exec_error.take() {
            let mut errno = [0u8; 4];
            let mut f = std::fs::File::from(fd);
            if let Ok(4) = std::io::Read::read(&mut f, &mut errno) {
                let err = std::io::Error::from_raw_os_error(i32::from_ne_bytes(errno));
                return Err(PedestalError::failed(
                    KIND,
                    "start",
                    format!(
                        "cannot execute {}: {err}{}",
                        self.firmware.display(),
                        exec_hint(&self.firmware)
                    ),
                ));
            }
        }
        self.state = PartitionState::Running;
        Ok(())
    }

    fn pause(&mut self) -> Result<(), PedestalError> {
        self.signal(Signal::SIGSTOP, "pause")?;
        self.state = PartitionState::Paused;
        Ok(())
    }

    fn resume(&mut self) -> Result<(), PedestalError> {
        self.signal(Signal::SIGCONT, "resume")?;
        self.state = PartitionState::Running;
        Ok(())
    }

    fn destroy(&mut self) -> Result<(), PedestalError> {
        if !matches!(self.state, PartitionState::Stopped(_)) {
            super::kill_if_same(self.pid, self.start);
        }
        Ok(())
    }

    fn update(&mut self, resources: &Resources) -> Result<(), PedestalError> {
        // A host process has no partition resources; record the memory figure so
        // stats report what the container was given.
        self.memory_limit = u64::from(resources.memory_mib) << 20;
        Ok(())
    }

    fn stats(&mut self) -> Result<PartitionStats, PedestalError> {
        let stat = super::proc_stat(self.pid)
            .filter(|s| s.start == self.start)
            .ok_or_else(|| PedestalError::failed(KIND, "stats", "the process has ended"))?;
        Ok(PartitionStats {
            cpu_ns: stat.cpu_ns(),
            memory_limit_bytes: self.memory_limit,
            memory_used_bytes: stat.rss_bytes(),
        })
    }

    fn state(&mut self) -> PartitionState {
        self.state
    }

    fn process_exited(&mut self, code: i32) {
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
            paths: vec![],
            partition: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::Annotations;

    /// A firmware file without execute permission (`COPY` of a file without +x):
    /// Start fails with the kernel's error and what to do about it.
    #[test]
    fn a_firmware_without_execute_permission_says_what_to_do() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("micrun-sim-noexec-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let firmware = dir.join("firmware.elf");
        std::fs::copy("/bin/true", &firmware).unwrap();
        std::fs::set_permissions(&firmware, std::fs::Permissions::from_mode(0o644)).unwrap();
        let spec = InstanceSpec {
            id: "noexec".into(),
            namespace: "default".into(),
            bundle: dir.clone(),
            rootfs: dir.clone(),
            firmware: firmware.clone(),
            image: None,
            pedestal: KIND,
            resources: Resources {
                vcpus: 1,
                max_vcpus: 1,
                cpu_str: None,
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
        };
        let sim = Sim::new(&Config::default()).unwrap();
        let mut partition = sim.create(&spec, &dir).unwrap();
        let err = partition.start().unwrap_err().to_string();
        let pid = partition.pid().unwrap();
        let _ = nix::sys::wait::waitpid(Pid::from_raw(pid as i32), None);
        let hint_with_x = {
            std::fs::set_permissions(&firmware, std::fs::Permissions::from_mode(0o755)).unwrap();
            exec_hint(&firmware)
        };
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.contains("cannot execute"), "{err}");
        for needle in ["mode is 0644", "chmod +x", "micrun image pack", "0755"] {
            assert!(err.contains(needle), "{needle:?} not in {err}");
        }
        assert_eq!(hint_with_x, "");
    }
}
