//! The `xen` and `baremetal` pedestals through micad, the Mica daemon.
//!
//! micad makes and runs the partitions; micrun sends it the container's
//! `create_msg`, `start`, `stop`/`rm` and `set`, reads its `status`, and relays the
//! console micad creates (`ttyRPMSG_<id>_0`, a pty) once the partition runs. The wire
//! format is in [`super::micad`]. What micad cannot do is said plainly: it has no
//! pause command, and the partition has no host process, so CPU time comes from the
//! agent only.
//!
//! Pause and resume: on `xen`, micad's partition is a Xen domain named after the
//! instance (micad writes `name = "<id>"` into `/etc/xen/<id>-xen.cfg`), so micrun
//! pauses it with `xl pause <id>` / `xl unpause <id>` when `xl` (`[xen] xl`) is on
//! `PATH`. On `baremetal` there is no pause: micad's `stop` and `start` shut the
//! remote core down and boot the firmware again, so the RTOS would lose its state
//! (the Go MicRun's "pause" does that; micrun refuses rather than reboot).
//!
//! ```text
//! Create ─► check (id, socket path, micad up, boot image) ─► create_msg ─► Offline
//! Start  ─► `start` ─► wait for ttyRPMSG_<id>_0 ─► open raw ─► Link (\r\n → \n)
//! Kill/Delete ─► `rm` (micad stops the partition first) ─► the pty goes, the relay sees EOF
//! ```

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::micad::{self, Command, MicaState, MicadClient, MicadError, SetKey};
use super::{
    DetachedPartition, Leftovers, Link, Partition, PartitionState, PartitionStats, Pedestal,
    PedestalError, RxTranslate,
};
use crate::config::{Config, PedestalKind};
use crate::firmware::{self, Arch};
use crate::resources::Resources;
use crate::spec::InstanceSpec;

/// Longest unix socket path (`sun_path` less its NUL).
const SUN_PATH_MAX: usize = 107;

/// A hardware pedestal driven by micad.
#[derive(Debug)]
pub struct Mica {
    kind: PedestalKind,
    client: MicadClient,
    tty_dirs: Vec<PathBuf>,
    tty_wait: Duration,
    arch: Arch,
    /// Xen: the boot image in the rootfs when `ped.conf` is not set.
    boot_image: Option<PathBuf>,
    /// Xen: the `xl` that pauses micad's domains (`[xen] xl`, looked up in `PATH`
    /// when used).
    xl: Option<PathBuf>,
}

impl Mica {
    /// The `kind` pedestal (xen or baremetal) through the micad of `config`.
    pub fn new(kind: PedestalKind, config: &Config) -> Mica {
        let (arch, boot_image, xl) = match kind {
            PedestalKind::Xen => (
                config.xen.arch,
                Some(config.xen.boot_image.clone()),
                Some(config.xen.xl.clone()),
            ),
            _ => (config.baremetal.arch, None, None),
        };
        Mica {
            kind,
            client: MicadClient::new(&config.mica.dir).with_timeout(config.mica.timeout),
            tty_dirs: config.mica.tty_dirs.clone(),
            tty_wait: config.mica.tty_wait,
            arch,
            boot_image,
            xl,
        }
    }

    fn invalid_id(&self, id: &str, why: impl Into<String>) -> PedestalError {
        PedestalError::InvalidId {
            pedestal: self.kind,
            id: id.to_owned(),
            why: why.into(),
        }
    }

    /// The pedestal config file micad gets (`ped_cfg`): the `ped.conf` annotation,
    /// or for Xen the configured boot image, inside the rootfs.
    fn ped_cfg(&self, spec: &InstanceSpec) -> Result<Option<PathBuf>, PedestalError> {
        let relative = match (&spec.annotations.pedestal_conf, &self.boot_image) {
            (Some(conf), _) => conf.clone(),
            (None, Some(image)) => image.to_string_lossy().into_owned(),
            (None, None) => return Ok(None),
        };
        firmware::resolve_in_rootfs(&spec.rootfs, &relative, "pedestal config")
            .map(Some)
            .map_err(|e| PedestalError::Failed {
                pedestal: self.kind,
                operation: "create",
                detail: e.to_string(),
            })
    }

    fn create_msg(&self, spec: &InstanceSpec) -> Result<micad::CreateMsg, PedestalError> {
        let ped_cfg = self.ped_cfg(spec)?;
        micad::CreateMsg::for_container(
            &spec.id,
            &spec.firmware,
            self.kind.name(),
            ped_cfg.as_deref(),
            spec.annotations.debug,
            &spec.resources,
        )
        .map_err(|e| match e {
            MicadError::InvalidName { .. } => self.invalid_id(&spec.id, e.to_string()),
            e => PedestalError::failed(self.kind, "create", e),
        })
    }
}

/// The pedestal error for a micad error: micad down is "not available", the
/// rest keeps micad's words.
fn from_micad(kind: PedestalKind, operation: &'static str, e: MicadError) -> PedestalError {
    match e {
        MicadError::NotRunning { .. } => PedestalError::Unavailable {
            pedestal: kind,
            why: e.to_string(),
        },
        e => PedestalError::failed(kind, operation, e),
    }
}

impl Pedestal for Mica {
    fn kind(&self) -> PedestalKind {
        self.kind
    }

    fn arch(&self) -> Arch {
        self.arch
    }

    fn check(&self, spec: &InstanceSpec) -> Result<(), PedestalError> {
        micad::check_instance_name(&spec.id)
            .map_err(|e| self.invalid_id(&spec.id, e.to_string()))?;
        let socket = self.client.instance_socket(&spec.id);
        let len = socket.as_os_str().len();
        if len > SUN_PATH_MAX {
            return Err(self.invalid_id(
                &spec.id,
                format!(
                    "micad's control socket {} would be {len} bytes, over the \
                     {SUN_PATH_MAX}-byte limit of unix socket paths; use a shorter id",
                    socket.display()
                ),
            ));
        }
        if !micad::is_running(&self.client.dir) {
            return Err(PedestalError::Unavailable {
                pedestal: self.kind,
                why: format!(
                    "micad is not running ({} does not exist); start it with \
                     `systemctl start micad`, or set [{}] driver = \"direct\" in the \
                     micrun config",
                    self.client.create_socket().display(),
                    self.kind
                ),
            });
        }
        // Everything the message holds is checked now, not when micad sees it.
        self.create_msg(spec).map(drop)
    }

    fn create(
        &self,
        spec: &InstanceSpec,
        _run_dir: &Path,
    ) -> Result<Box<dyn Partition>, PedestalError> {
        let msg = self.create_msg(spec)?;
        self.client
            .create(&msg)
            .map_err(|e| from_micad(self.kind, "create", e))?;
        log::info!(
            "{}: micad created the {} partition ({})",
            spec.id,
            self.kind,
            spec.resources
        );
        Ok(Box::new(MicaPartition {
            kind: self.kind,
            client: self.client.clone(),
            id: spec.id.clone(),
            tty_dirs: self.tty_dirs.clone(),
            tty_wait: self.tty_wait,
            resources: spec.resources.clone(),
            xl: self.xl.clone(),
            link: None,
            started: false,
            paused: false,
            removed: false,
        }))
    }
}

/// One micad instance.
#[derive(Debug)]
struct MicaPartition {
    kind: PedestalKind,
    client: MicadClient,
    id: String,
    tty_dirs: Vec<PathBuf>,
    tty_wait: Duration,
    resources: Resources,
    /// Xen: the configured `xl` (see [`Mica`]); `None` on baremetal.
    xl: Option<PathBuf>,
    link: Option<Link>,
    started: bool,
    /// Paused with `xl pause` (micad's status still says Running).
    paused: bool,
    /// `rm` succeeded (or micad no longer knows the instance).
    removed: bool,
}

impl MicaPartition {
    fn command(&self, operation: &'static str, command: &Command) -> Result<(), PedestalError> {
        self.client
            .command(&self.id, command)
            .map(drop)
            .map_err(|e| from_micad(self.kind, operation, e))
    }

    /// `xl pause` / `xl unpause` of micad's Xen domain, or why there is none.
    fn xl_pause(&self, operation: &'static str, pause: bool) -> Result<(), PedestalError> {
        let Some(xl) = &self.xl else {
            return Err(PedestalError::Unsupported {
                pedestal: self.kind,
                operation: if pause {
                    "pause through micad: micad has no pause command, and its stop/start \
                     reboots the remote core, so the RTOS would lose its state (not a pause)"
                } else {
                    "resume through micad: micad has no pause command, and its stop/start \
                     reboots the remote core, so the RTOS would lose its state (not a pause)"
                },
            });
        };
        let path = std::env::var_os("PATH");
        let xl = super::find_executable(xl, path.as_deref()).map_err(|why| {
            log::warn!("{}: {operation}: no xl: {why}", self.id);
            PedestalError::Unsupported {
                pedestal: self.kind,
                operation: if pause {
                    "pause through micad without `xl` (micad has no pause command; \
                     install xl or set [xen] xl)"
                } else {
                    "resume through micad without `xl` (micad has no pause command; \
                     install xl or set [xen] xl)"
                },
            }
        })?;
        super::xl::pause_domain(&xl, &self.id, pause)
            .map_err(|e| PedestalError::failed(self.kind, operation, e))
    }

    fn open_console(&self) -> Result<Link, PedestalError> {
        let failed = |e: MicadError| PedestalError::failed(self.kind, "start", e);
        let path = micad::wait_for_tty(&self.tty_dirs, &self.id, self.tty_wait).map_err(failed)?;
        let rx = micad::open_tty(&path).map_err(failed)?;
        let tx: OwnedFd = rx
            .try_clone()
            .map_err(|e| PedestalError::failed(self.kind, "start", e))?;
        log::debug!("{}: console {}", self.id, path.display());
        Ok(Link {
            rx,
            tx,
            rx_translate: RxTranslate::MicadNewlines,
        })
    }
}

impl Partition for MicaPartition {
    fn start(&mut self) -> Result<(), PedestalError> {
        self.command("start", &Command::Start)?;
        self.started = true;
        self.link = Some(self.open_console()?);
        Ok(())
    }

    fn pause(&mut self) -> Result<(), PedestalError> {
        self.xl_pause("pause", true)?;
        self.paused = true;
        Ok(())
    }

    fn resume(&mut self) -> Result<(), PedestalError> {
        self.xl_pause("resume", false)?;
        self.paused = false;
        Ok(())
    }

    fn destroy(&mut self) -> Result<(), PedestalError> {
        if self.removed {
            return Ok(());
        }
        destroy_detached(self.kind, &self.client.dir, &self.id)?;
        self.removed = true;
        Ok(())
    }

    fn update(&mut self, r: &Resources) -> Result<(), PedestalError> {
        let old = &self.resources;
        let mut sets = Vec::new();
        // Grow the ceiling before what must fit under it.
        if r.max_memory_mib != old.max_memory_mib {
            sets.push(Command::set(SetKey::MaxMemory, r.max_memory_mib));
        }
        if r.memory_mib != old.memory_mib {
            sets.push(Command::set(SetKey::Memory, r.memory_mib));
        }
        if r.vcpus != old.vcpus {
            sets.push(Command::set(SetKey::Vcpu, r.vcpus));
        }
        if r.cpu_str != old.cpu_str {
            // micad has no "any CPU" value: an unset cpuset leaves the pinning.
            if let Some(cpus) = &r.cpu_str {
                sets.push(Command::set(SetKey::Cpu, cpus));
            }
        }
        if r.cpu_weight != old.cpu_weight {
            sets.push(Command::set(SetKey::CpuWeight, r.cpu_weight));
        }
        if r.cpu_cap_percent != old.cpu_cap_percent {
            sets.push(Command::set(
                SetKey::CpuCapacity,
                r.cpu_cap_percent.unwrap_or(0),
            ));
        }
        for set in &sets {
            self.command("update", set)?;
        }
        self.resources = r.clone();
        Ok(())
    }

    fn stats(&mut self) -> Result<PartitionStats, PedestalError> {
        // No host process: memory is what the partition was given; CPU time and
        // memory use come from the agent.
        Ok(PartitionStats {
            cpu_ns: 0,
            memory_limit_bytes: u64::from(self.resources.memory_mib) << 20,
            memory_used_bytes: 0,
        })
    }

    fn state(&mut self) -> PartitionState {
        if self.removed {
            return PartitionState::Stopped(None);
        }
        match self.client.status(&self.id) {
            Ok(status) => match status.state {
                MicaState::Running if self.paused => PartitionState::Paused,
                MicaState::Running => PartitionState::Running,
                MicaState::Suspended => PartitionState::Paused,
                MicaState::Offline | MicaState::Configured | MicaState::Ready if !self.started => {
                    PartitionState::Created
                }
                _ => PartitionState::Stopped(None),
            },
            // micad gone or restarted without the instance: nothing runs that
            // micrun can reach. Said as it is, with no attempt to re-create.
            Err(e) => {
                log::warn!("{}: micad status: {e}", self.id);
                PartitionState::Stopped(None)
            }
        }
    }

    fn take_link(&mut self) -> Option<Link> {
        self.link.take()
    }

    fn leftovers(&self) -> Leftovers {
        Leftovers {
            processes: vec![],
            paths: vec![],
            partition: Some(DetachedPartition::Micad {
                pedestal: self.kind,
                dir: self.client.dir.clone(),
                name: self.id.clone(),
            }),
        }
    }
}

/// Ends micad instance `name`: `rm` stops it and removes it. An instance micad
/// does not know (already removed, or micad restarted) counts as gone; micad not
/// running is an error, since the partition may still run.
pub fn destroy_detached(
    pedestal: PedestalKind,
    dir: &Path,
    name: &str,
) -> Result<(), PedestalError> {
    let client = MicadClient::new(dir);
    match client.command(name, &Command::Rm) {
        Ok(_) | Err(MicadError::NoInstance { .. }) => Ok(()),
        Err(e) => Err(PedestalError::Failed {
            pedestal,
            operation: "destroy",
            detail: format!("micad instance {name:?} may still run: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn partition(kind: PedestalKind, xl: Option<PathBuf>) -> MicaPartition {
        MicaPartition {
            kind,
            client: MicadClient::new("/nonexistent/mica"),
            id: "rtos-1".into(),
            tty_dirs: vec![],
            tty_wait: Duration::ZERO,
            resources: crate::resources::map_resources(
                None,
                &crate::annotations::Annotations::default(),
                &crate::resources::CpuSet::first(1),
                &crate::config::ResourceConfig::default(),
            )
            .unwrap(),
            xl,
            link: None,
            started: true,
            paused: false,
            removed: false,
        }
    }

    #[test]
    fn baremetal_pause_is_refused_saying_why() {
        let mut p = partition(PedestalKind::Baremetal, None);
        for err in [p.pause().unwrap_err(), p.resume().unwrap_err()] {
            assert!(matches!(err, PedestalError::Unsupported { .. }), "{err:?}");
            let text = err.to_string();
            assert!(
                text.contains("reboots the remote core")
                    && text.contains("the RTOS would lose its state"),
                "{text}"
            );
        }
        assert!(!p.paused);
    }

    /// On Xen, micad's domain is named after the instance: `xl pause <id>` and
    /// `xl unpause <id>`, run without a shell.
    #[test]
    fn xen_pause_is_xl_pause_of_the_instance_domain() {
        let dir = std::env::temp_dir().join(format!("micrun-mica-xl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let calls = dir.join("calls");
        let xl = dir.join("xl");
        std::fs::write(
            &xl,
            format!("#!/bin/sh\necho \"$*\" >> '{}'\n", calls.display()),
        )
        .unwrap();
        std::fs::set_permissions(&xl, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut p = partition(PedestalKind::Xen, Some(xl.clone()));
        p.pause().unwrap();
        assert!(p.paused);
        p.resume().unwrap();
        assert!(!p.paused);
        assert_eq!(
            std::fs::read_to_string(&calls).unwrap(),
            "pause rtos-1\nunpause rtos-1\n"
        );

        // An xl that fails: its words, and the partition is not marked paused.
        std::fs::write(
            &xl,
            "#!/bin/sh\necho 'rtos-1 is an invalid domain identifier (rc=-6)' >&2\nexit 1\n",
        )
        .unwrap();
        let err = p.pause().unwrap_err().to_string();
        assert!(err.contains("invalid domain identifier"), "{err}");
        assert!(!p.paused);

        // No xl at all: unsupported, and how to fix it.
        let mut p = partition(PedestalKind::Xen, Some(dir.join("missing/xl")));
        let err = p.pause().unwrap_err();
        assert!(matches!(err, PedestalError::Unsupported { .. }), "{err:?}");
        assert!(err.to_string().contains("without `xl`"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
