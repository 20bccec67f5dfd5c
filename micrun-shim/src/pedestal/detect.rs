//! What this host can run: the pedestal for a container that names none
//! (`default_pedestal = "auto"`), the driver of a hardware pedestal, and how each
//! was chosen ([`Chosen`], quoted in every Create and Start error).
//!
//! The order, first match wins:
//!
//! | checked | gives |
//! |---|---|
//! | micad answers on `<mica dir>/mica-create.socket` ([`probe_micad`]) | `xen` if the Xen marker (`/proc/xen`) exists, else `baremetal`, both through micad |
//! | the Xen marker exists | `xen`, through `xl` |
//! | a remote processor exists (`<sysfs>/class/remoteproc/*`) | `baremetal`, through Linux remoteproc |
//! | the QEMU binary is found | `qemu` |
//!
//! and none of them is an error that lists every check and its result. All the
//! paths come from the config file, so tests point them at a temp dir.
//!
//! A socket file is not a micad: one left behind by a micad that exited, or a
//! foreign listener at that path, would capture every container. So micad counts
//! only when it answers a harmless request within [`MICAD_PROBE_TIMEOUT`] (the
//! whole exchange): a create message with an empty firmware path, which micad
//! refuses (`MICA-FAILED`) before it makes anything. Any reply that ends in
//! `MICA-SUCCESS` or `MICA-FAILED` is micad; silence, a refused connection, a
//! closed connection or other bytes are not, and detection goes on down the table
//! with the reason in the log.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};

use super::{micad, qemu, PedestalError};
use crate::config::{Config, DriverChoice, PedestalChoice, PedestalKind};

/// How long detection waits for micad to answer, connect to reply.
pub const MICAD_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// How a hardware pedestal is driven on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Micad,
    /// `xl` for xen, Linux remoteproc for baremetal.
    Direct,
}

/// Whether micad answers at `<dir>/mica-create.socket` within `timeout`: `Ok`
/// with what it said, or why it does not count as micad. Sends one create message
/// with an empty name and firmware path (micad refuses it and makes nothing).
pub fn probe_micad(dir: &Path, timeout: Duration) -> Result<(), String> {
    let path = dir.join(micad::CREATE_SOCKET);
    if path.symlink_metadata().is_err() {
        return Err(format!("{} does not exist", path.display()));
    }
    let deadline = Instant::now() + timeout;
    let stream = connect_within(&path, deadline)?;
    let left = |what: &str| {
        let d = deadline.saturating_duration_since(Instant::now());
        if d.is_zero() {
            Err(format!(
                "{} accepted the connection but did not answer within {timeout:?} ({what})",
                path.display()
            ))
        } else {
            Ok(d)
        }
    };
    let not_micad = |reply: &[u8]| {
        let shown: String = String::from_utf8_lossy(&reply[..reply.len().min(64)])
            .chars()
            .map(|c| if c.is_control() { '.' } else { c })
            .collect();
        format!(
            "{} answered {} bytes that are not micad's ({shown:?}{})",
            path.display(),
            reply.len(),
            if reply.len() > 64 { "…" } else { "" }
        )
    };
    let request = [0u8; micad::CREATE_MSG_LEN];
    let mut sent = 0;
    while sent < request.len() {
        stream
            .set_write_timeout(Some(left("sending")?))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        match socket::send(stream.as_raw_fd(), &request[sent..], MsgFlags::MSG_NOSIGNAL) {
            Ok(n) => sent += n,
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                return Err(format!(
                    "{} accepted the connection but did not take the request within {timeout:?}",
                    path.display()
                ))
            }
            Err(e) => return Err(format!("{}: sending a probe: {e}", path.display())),
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut reply = Vec::new();
    let mut chunk = [0u8; 512];
    let mut timed_out = false;
    loop {
        let Ok(wait) = left("waiting for the reply") else {
            timed_out = true;
            break;
        };
        stream
            .set_read_timeout(Some(wait))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        match (&stream).read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                reply.extend_from_slice(&chunk[..n]);
                if micad::Reply::parse(&reply).is_some() || reply.len() > 4096 {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                timed_out = true;
                break;
            }
            Err(e) => return Err(format!("{}: reading the reply: {e}", path.display())),
        }
    }
    if micad::Reply::parse(&reply).is_some() {
        return Ok(());
    }
    Err(match (reply.is_empty(), timed_out) {
        (true, true) => format!(
            "{} accepted the connection but did not answer within {timeout:?}",
            path.display()
        ),
        (true, false) => format!(
            "{} closed the connection without an answer (not micad)",
            path.display()
        ),
        (false, _) => not_micad(&reply),
    })
}

/// A non-blocking connect to `path`, retried while the listener's backlog is full,
/// until `deadline`.
fn connect_within(path: &Path, deadline: Instant) -> Result<UnixStream, String> {
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let addr = UnixAddr::new(path).map_err(|e| fail(&e))?;
    let fd: OwnedFd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(|e| fail(&e))?;
    loop {
        match socket::connect(fd.as_raw_fd(), &addr) {
            Ok(()) => break,
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(Errno::EAGAIN) => {
                return Err(format!(
                    "{}: its listen backlog stayed full (nothing accepts connections)",
                    path.display()
                ))
            }
            Err(Errno::ECONNREFUSED) => {
                return Err(format!(
                    "{} exists but nothing listens on it (left behind by a micad that exited?)",
                    path.display()
                ))
            }
            Err(e) => return Err(fail(&e)),
        }
    }
    let stream = UnixStream::from(fd);
    stream.set_nonblocking(false).map_err(|e| fail(&e))?;
    Ok(stream)
}

/// What the host has, as probed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostProbe {
    /// micad's create socket, when micad answered on it.
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
        let micad = match probe_micad(&config.mica.dir, MICAD_PROBE_TIMEOUT) {
            Ok(()) => {
                checked.push(format!("micad: answered at {}", create.display()));
                Some(create)
            }
            Err(why) => {
                if create.symlink_metadata().is_ok() {
                    log::warn!("micad is not used: {why}");
                }
                checked.push(format!("micad: {why}"));
                None
            }
        };
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

    /// micad's answer to the probe: `Ok`, or why it does not count as micad.
    pub fn micad_answer(&self) -> Result<(), String> {
        match &self.micad {
            Some(_) => Ok(()),
            None => Err(self.checked[0].trim_start_matches("micad: ").to_owned()),
        }
    }

    /// The pedestal for a container that names none.
    pub fn default_pedestal(&self) -> Result<PedestalKind, PedestalError> {
        self.decide().map(|(kind, _)| kind)
    }

    /// The pedestal, the check that matched (and the ones before it that did not),
    /// and for a hardware pedestal its driver.
    fn decide(&self) -> Result<(PedestalKind, String), PedestalError> {
        // The checks before the one that matched say why they did not.
        let before = |n: usize| {
            let skipped: Vec<&str> = self.checked[..n].iter().map(String::as_str).collect();
            if skipped.is_empty() {
                String::new()
            } else {
                format!(" (not matched: {})", skipped.join("; "))
            }
        };
        if self.micad.is_some() {
            let kind = if self.xen {
                PedestalKind::Xen
            } else {
                PedestalKind::Baremetal
            };
            Ok((kind, self.checked[0].clone()))
        } else if self.xen {
            Ok((
                PedestalKind::Xen,
                format!("{}{}", self.checked[1], before(1)),
            ))
        } else if !self.remoteprocs.is_empty() {
            Ok((
                PedestalKind::Baremetal,
                format!("{}{}", self.checked[2], before(2)),
            ))
        } else if self.qemu.is_some() {
            Ok((
                PedestalKind::Qemu,
                format!("{} found{}", self.checked[3], before(3)),
            ))
        } else {
            Err(PedestalError::NoPedestal {
                checked: self.checked.join("; "),
            })
        }
    }
}

/// How a container's pedestal was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChosenBy {
    /// The `org.openeuler.micrun.ped.pedestal` annotation.
    Annotation,
    /// `default_pedestal` in the config file (`None`: the built-in default).
    Config(Option<PathBuf>),
    /// Host detection (`default_pedestal = "auto"`), with the check that matched.
    Detection(String),
}

/// A container's pedestal, its driver, and how both were chosen: what Create and
/// Start errors quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub kind: PedestalKind,
    pub by: ChosenBy,
    /// For `xen` and `baremetal`: the driver and why.
    pub driver: Option<(Driver, String)>,
}

impl std::fmt::Display for Chosen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pedestal {}, chosen by ", self.kind)?;
        match &self.by {
            ChosenBy::Annotation => write!(f, "the annotation org.openeuler.micrun.ped.pedestal")?,
            ChosenBy::Config(Some(p)) => write!(f, "default_pedestal in {}", p.display())?,
            ChosenBy::Config(None) => write!(f, "the built-in default_pedestal")?,
            ChosenBy::Detection(check) => write!(f, "host detection: {check}")?,
        }
        if let Some((driver, why)) = &self.driver {
            let name = match (driver, self.kind) {
                (Driver::Micad, _) => "micad",
                (Driver::Direct, PedestalKind::Xen) => "xl",
                (Driver::Direct, _) => "Linux remoteproc",
            };
            write!(f, "; driven through {name} ({why})")?;
        }
        Ok(())
    }
}

/// The pedestal of a container: `annotation` (the `ped.pedestal` annotation) if
/// given, else the config's `default_pedestal`, else host detection; and for a
/// hardware pedestal its driver. micad is probed at most once.
pub fn choose(annotation: Option<PedestalKind>, config: &Config) -> Result<Chosen, PedestalError> {
    choose_with(annotation, config, HostProbe::probe)
}

/// [`choose`], with the host probed by `probe` when detection needs it (`micrun
/// check` hands in the probe it made, so micad is asked once).
pub fn choose_with(
    annotation: Option<PedestalKind>,
    config: &Config,
    probe: impl FnOnce(&Config) -> HostProbe,
) -> Result<Chosen, PedestalError> {
    let mut micad_answer = None;
    let (kind, by) = match (annotation, config.default_pedestal) {
        (Some(kind), _) => (kind, ChosenBy::Annotation),
        (None, PedestalChoice::Named(kind)) => (kind, ChosenBy::Config(config.origin.clone())),
        (None, PedestalChoice::Auto) => {
            let probe = probe(config);
            micad_answer = Some(probe.micad_answer());
            let (kind, check) = probe.decide()?;
            (kind, ChosenBy::Detection(check))
        }
    };
    let driver = match kind {
        PedestalKind::Xen | PedestalKind::Baremetal => {
            Some(driver_with(kind, config, micad_answer))
        }
        _ => None,
    };
    Ok(Chosen { kind, by, driver })
}

/// The driver of hardware pedestal `kind`: the configured one, or for `auto`
/// micad when it answers ([`probe_micad`]), else direct.
pub fn driver(kind: PedestalKind, config: &Config) -> Driver {
    driver_with(kind, config, None).0
}

/// [`driver`] and why; `micad` is the answer of a probe already made, if any.
pub fn driver_with(
    kind: PedestalKind,
    config: &Config,
    micad: Option<Result<(), String>>,
) -> (Driver, String) {
    let (choice, key) = match kind {
        PedestalKind::Xen => (config.xen.driver, "xen.driver"),
        _ => (config.baremetal.driver, "baremetal.driver"),
    };
    match choice {
        DriverChoice::Micad => (Driver::Micad, format!("{key} = \"micad\"")),
        DriverChoice::Direct => (Driver::Direct, format!("{key} = \"direct\"")),
        DriverChoice::Auto => {
            // A probe made here logs its own result (detection logged its own).
            let answer = micad.unwrap_or_else(|| {
                let answer = probe_micad(&config.mica.dir, MICAD_PROBE_TIMEOUT);
                if let Err(why) = &answer {
                    if config
                        .mica
                        .dir
                        .join(micad::CREATE_SOCKET)
                        .symlink_metadata()
                        .is_ok()
                    {
                        log::warn!("micad is not used: {why}");
                    }
                }
                answer
            });
            match answer {
                Ok(()) => (
                    Driver::Micad,
                    format!(
                        "{key} = \"auto\" and micad answered at {}",
                        config.mica.dir.join(micad::CREATE_SOCKET).display()
                    ),
                ),
                Err(why) => (
                    Driver::Direct,
                    format!("{key} = \"auto\" and no micad: {why}"),
                ),
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    struct Host {
        dir: PathBuf,
        config: Config,
        /// Connections a silent listener holds open until the host is dropped.
        held: std::sync::Arc<std::sync::Mutex<Vec<UnixStream>>>,
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
            Host {
                dir,
                config,
                held: Default::default(),
            }
        }

        /// A micad that answers `answers` connections the way micad answers the
        /// probe, then stops listening (its socket file stays).
        fn micad(self, answers: usize) -> Self {
            self.listener(answers, Some(b"No such file: MICA-FAILED"))
        }

        /// A listener at micad's path that accepts `conns` connections, reads the
        /// request, and answers `reply` (or nothing, holding the connection until
        /// the client closes it).
        fn listener(self, conns: usize, reply: Option<&'static [u8]>) -> Self {
            use std::io::Write;
            let path = self.dir.join("mica").join(micad::CREATE_SOCKET);
            let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
            let held = self.held.clone();
            std::thread::spawn(move || {
                for _ in 0..conns {
                    let Ok((mut c, _)) = l.accept() else { return };
                    let mut buf = [0u8; micad::CREATE_MSG_LEN];
                    let _ = c.read(&mut buf);
                    match reply {
                        Some(r) => {
                            let _ = c.write_all(r);
                        }
                        None => held.lock().unwrap().push(c),
                    }
                }
            });
            self
        }

        /// A socket file nothing listens on (a micad that exited).
        fn stale_micad(self) -> Self {
            let path = self.dir.join("mica").join(micad::CREATE_SOCKET);
            drop(std::os::unix::net::UnixListener::bind(path).unwrap());
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
            ("micad-xen", Host::new("a").micad(1).xen().qemu(), Xen),
            (
                "micad-bm",
                Host::new("b")
                    .micad(1)
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
        let mut host = host.micad(1);
        assert_eq!(driver(PedestalKind::Xen, &host.config), Driver::Micad);
        host.config.xen.driver = DriverChoice::Direct;
        assert_eq!(driver(PedestalKind::Xen, &host.config), Driver::Direct);
        host.config.baremetal.driver = DriverChoice::Micad;
        assert_eq!(driver(PedestalKind::Baremetal, &host.config), Driver::Micad);
    }

    /// Something at micad's path that is not a working micad: detection goes on
    /// to the next check within the probe's bound, and says why.
    #[test]
    fn a_socket_that_is_not_micad_is_passed_over() {
        let cases: Vec<(&str, Host, &str)> = vec![
            (
                "stale",
                Host::new("stale").stale_micad().qemu(),
                "nothing listens on it",
            ),
            (
                "silent",
                Host::new("silent").listener(1, None).qemu(),
                "did not answer within 1s",
            ),
            (
                "garbage",
                Host::new("garbage")
                    .listener(1, Some(b"HTTP/1.1 400 Bad Request\r\n\r\n"))
                    .qemu(),
                "not micad's",
            ),
            (
                "closes",
                Host::new("closes").listener(1, Some(b"")).qemu(),
                "closed the connection without an answer",
            ),
        ];
        for (what, host, why) in cases {
            let t = Instant::now();
            let chosen = choose(None, &host.config).unwrap();
            let took = t.elapsed();
            assert_eq!(chosen.kind, PedestalKind::Qemu, "{what}: {chosen}");
            assert!(
                took < MICAD_PROBE_TIMEOUT + Duration::from_millis(300),
                "{what}: detection took {took:?}"
            );
            let text = chosen.to_string();
            assert!(text.contains("host detection: QEMU"), "{what}: {text}");
            assert!(text.contains(why), "{what}: {why:?} not in {text}");
        }
    }

    #[test]
    fn chosen_says_how() {
        let host = Host::new("how").micad(1);
        let chosen = choose(Some(PedestalKind::Baremetal), &host.config).unwrap();
        assert_eq!(
            chosen.to_string(),
            format!(
                "pedestal baremetal, chosen by the annotation org.openeuler.micrun.ped.pedestal; \
                 driven through micad (baremetal.driver = \"auto\" and micad answered at {})",
                host.dir.join("mica/mica-create.socket").display()
            )
        );
        let mut host = Host::new("how2").stale_micad();
        host.config.default_pedestal = PedestalChoice::Named(PedestalKind::Xen);
        host.config.origin = Some("/etc/micrun/config.toml".into());
        let text = choose(None, &host.config).unwrap().to_string();
        assert!(
            text.starts_with(
                "pedestal xen, chosen by default_pedestal in /etc/micrun/config.toml; \
                 driven through xl (xen.driver = \"auto\" and no micad: "
            ),
            "{text}"
        );
        let host = Host::new("how3").remoteproc("r0", "m4");
        let text = choose(None, &host.config).unwrap().to_string();
        assert!(
            text.starts_with("pedestal baremetal, chosen by host detection: remoteproc: m4 under "),
            "{text}"
        );
        assert!(text.contains("(not matched: micad: "), "{text}");
    }
}
