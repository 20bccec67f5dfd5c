//! What this host can run: the pedestal for a container that names none
//! (`default_pedestal = "auto"`), and the driver of a hardware pedestal.
//!
//! The order, first match wins:
//!
//! | checked | gives |
//! |---|---|
//! | micad runs (`<mica dir>/mica-create.socket` exists) | `xen` if the Xen marker (`/proc/xen`) exists, else `baremetal`, both through micad |
//! | the Xen marker exists | `xen`, through `xl` |
//! | a remote processor exists (`<sysfs>/class/remoteproc/*`) | `baremetal`, through Linux remoteproc |
//! | the QEMU binary is found | `qemu` |
//!
//! and none of them is an error that lists every check and its result. All the
//! paths come from the config file, so tests point them at a temp dir.

use std::path::{Path, PathBuf};

use super::{micad, qemu, PedestalError};
use crate::config::{Config, DriverChoice, PedestalKind};

/// How a hardware pedestal is driven on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Micad,
    /// `xl` for xen, Linux remoteproc for baremetal.
    Direct,
}

/// What the host has, as probed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostProbe {
    /// micad's create socket, when it exists.
    pub micad: Option<PathBuf>,
    /// Whether the Xen marker exists.
    pub xen: bool,
    /// Names of the remote processors (`<sysfs>/class/remoteproc/*/name`).
    pub remoteprocs: Vec<String>,
    /// The QEMU binary, when found.
    pub qemu: Option<PathBuf>,
    /// One line per check, for error messages.
    pub checked: Vec<String>,
}

impl HostProbe {
    /// Probes the host as `config` describes it.
    pub fn probe(config: &Config) -> HostProbe {
        let mut checked = Vec::new();
        let create = config.mica.dir.join(micad::CREATE_SOCKET);
        let micad = micad::is_running(&config.mica.dir).then(|| create.clone());
        checked.push(format!(
            "micad: {} {}",
            create.display(),
            if micad.is_some() {
                "exists"
            } else {
                "does not exist"
            }
        ));
        let xen = config.xen.detect.exists();
        checked.push(format!(
            "Xen: {} {}",
            config.xen.detect.display(),
            if xen { "exists" } else { "does not exist" }
        ));
        let class = remoteproc_class(&config.baremetal.sysfs);
        let remoteprocs = remoteproc_names(&class);
        checked.push(format!(
            "remoteproc: {}",
            if remoteprocs.is_empty() {
                format!("no processor under {}", class.display())
            } else {
                format!("{} under {}", remoteprocs.join(", "), class.display())
            }
        ));
        let qemu = match qemu::Qemu::new(config).resolve_binary() {
            Ok(path) => {
                checked.push(format!("QEMU: {}", path.display()));
                Some(path)
            }
            Err(e) => {
                checked.push(format!("QEMU: {e}"));
                None
            }
        };
        HostProbe {
            micad,
            xen,
            remoteprocs,
            qemu,
            checked,
        }
    }

    /// The pedestal for a container that names none.
    pub fn default_pedestal(&self) -> Result<PedestalKind, PedestalError> {
        if self.micad.is_some() || self.xen {
            Ok(if self.xen {
                PedestalKind::Xen
            } else {
                PedestalKind::Baremetal
            })
        } else if !self.remoteprocs.is_empty() {
            Ok(PedestalKind::Baremetal)
        } else if self.qemu.is_some() {
            Ok(PedestalKind::Qemu)
        } else {
            Err(PedestalError::NoPedestal {
                checked: self.checked.join("; "),
            })
        }
    }
}

/// `<sysfs>/class/remoteproc`.
pub fn remoteproc_class(sysfs: &Path) -> PathBuf {
    sysfs.join("class/remoteproc")
}

/// The names of the processors under `class` (each `<entry>/name`, else the
/// entry's own name), sorted.
pub fn remoteproc_names(class: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(class) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| {
            std::fs::read_to_string(e.path().join("name"))
                .ok()
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    names
}

/// The driver of hardware pedestal `kind`: the configured one, or for `auto`
/// micad when it runs, else direct.
pub fn driver(kind: PedestalKind, config: &Config) -> Driver {
    let choice = match kind {
        PedestalKind::Xen => config.xen.driver,
        _ => config.baremetal.driver,
    };
    match choice {
        DriverChoice::Micad => Driver::Micad,
        DriverChoice::Direct => Driver::Direct,
        DriverChoice::Auto if micad::is_running(&config.mica.dir) => Driver::Micad,
        DriverChoice::Auto => Driver::Direct,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Host {
        dir: PathBuf,
        config: Config,
    }

    impl Host {
        /// A host with nothing: paths in a fresh temp dir, no QEMU.
        fn new(tag: &str) -> Host {
            let dir =
                std::env::temp_dir().join(format!("micrun-detect-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("mica")).unwrap();
            let mut config = Config::default();
            config.mica.dir = dir.join("mica");
            config.xen.detect = dir.join("proc-xen");
            config.baremetal.sysfs = dir.join("sys");
            config.qemu.binary = dir.join("no-qemu");
            Host { dir, config }
        }

        fn micad(self) -> Self {
            std::fs::write(self.dir.join("mica").join(micad::CREATE_SOCKET), b"").unwrap();
            self
        }

        fn xen(self) -> Self {
            std::fs::create_dir_all(self.dir.join("proc-xen")).unwrap();
            self
        }

        fn remoteproc(self, entry: &str, name: &str) -> Self {
            let p = self.dir.join("sys/class/remoteproc").join(entry);
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join("name"), format!("{name}\n")).unwrap();
            self
        }

        fn qemu(mut self) -> Self {
            use std::os::unix::fs::PermissionsExt;
            let q = self.dir.join("qemu-system-aarch64");
            std::fs::write(&q, b"#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&q, std::fs::Permissions::from_mode(0o755)).unwrap();
            self.config.qemu.binary = q;
            self
        }
    }

    impl Drop for Host {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn default_pedestal_in_order() {
        use PedestalKind::*;
        let cases: Vec<(&str, Host, PedestalKind)> = vec![
            ("micad-xen", Host::new("a").micad().xen().qemu(), Xen),
            (
                "micad-bm",
                Host::new("b")
                    .micad()
                    .remoteproc("remoteproc0", "m4")
                    .qemu(),
                Baremetal,
            ),
            (
                "xen",
                Host::new("c").xen().remoteproc("r0", "m4").qemu(),
                Xen,
            ),
            (
                "rproc",
                Host::new("d").remoteproc("r0", "m4").qemu(),
                Baremetal,
            ),
            ("qemu", Host::new("e").qemu(), Qemu),
        ];
        for (what, host, want) in cases {
            let probe = HostProbe::probe(&host.config);
            assert_eq!(probe.default_pedestal().unwrap(), want, "{what}: {probe:?}");
        }
    }

    #[test]
    fn nothing_is_an_error_listing_every_check() {
        let host = Host::new("none");
        let err = HostProbe::probe(&host.config)
            .default_pedestal()
            .unwrap_err()
            .to_string();
        for needle in [
            "mica-create.socket does not exist",
            "proc-xen does not exist",
            "no processor under",
            "no-qemu",
        ] {
            assert!(err.contains(needle), "{needle:?} not in {err}");
        }
    }

    #[test]
    fn remoteproc_names_read_the_name_file() {
        let host = Host::new("names")
            .remoteproc("remoteproc1", "cm7")
            .remoteproc("remoteproc0", "cm4");
        let probe = HostProbe::probe(&host.config);
        assert_eq!(probe.remoteprocs, ["cm4", "cm7"]);
    }

    #[test]
    fn driver_auto_follows_micad() {
        let host = Host::new("drv");
        assert_eq!(driver(PedestalKind::Xen, &host.config), Driver::Direct);
        let mut host = host.micad();
        assert_eq!(driver(PedestalKind::Xen, &host.config), Driver::Micad);
        host.config.xen.driver = DriverChoice::Direct;
        assert_eq!(driver(PedestalKind::Xen, &host.config), Driver::Direct);
        host.config.baremetal.driver = DriverChoice::Micad;
        assert_eq!(driver(PedestalKind::Baremetal, &host.config), Driver::Micad);
    }
}
