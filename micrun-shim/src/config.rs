//! The host configuration file, `/etc/micrun/config.toml`.
//!
//! The file is optional: a missing file means the built-in defaults, so a fresh host needs
//! none. The path can be changed with the environment variable `MICRUN_CONFIG` (see
//! [`config_path`]). Everything the host administrator decides lives here; everything a
//! container decides comes from annotations (`crate::annotations`), which win where both
//! speak (for example `container.min_memory_mb` over `[resources] min_memory_mib`).
//!
//! ```toml
//! default_pedestal = "auto"        # auto | qemu | sim | xen | baremetal
//! state_dir = "/run/micrun"
//! [board]                          # which firmware of a multi-board image runs (docs/images.md)
//! name = ""                        # this host's board; "" = read the device tree's compatible
//! compatible = "/proc/device-tree/compatible"
//!
//! [lifecycle]
//! stop_grace = "10s"               # durations: "500ms", "10s", "5m", "1m30s" or integer seconds
//! liveness_window = "5s"
//! ping_interval = "1s"
//! handshake_wait = "2s"
//!
//! [sim]
//! enable = false                   # the sim pedestal runs host processes: tests only
//!
//! [qemu]
//! binary = "qemu-system-aarch64"
//! machine = "virt"
//! cpu = "cortex-a53"
//! extra_args = []
//! startup_timeout = "20s"          # QEMU started → its QMP answers
//! watch_interval = "1s"            # how often a running guest's state is asked
//!
//! [mica]                           # micad, the Mica daemon (drives xen and baremetal)
//! dir = "/run/mica"                # its sockets: mica-create.socket, <id>.socket
//! tty_dirs = ["/dev"]              # where ttyRPMSG_<id>_0 appears
//! tty_wait = "30s"                 # how long to wait for it after start
//! timeout = "5s"                   # per exchange with micad
//!
//! [xen]
//! driver = "auto"                  # auto (micad if running, else direct) | micad | direct
//! xl = "xl"
//! xenstore_read = "xenstore-read"
//! detect = "/proc/xen"             # a Xen host has this
//! boot_image = "image.bin"         # default of the ped.conf annotation
//! arch = "aarch64"                 # what guest firmware must be built for
//!
//! [baremetal]
//! driver = "auto"
//! sysfs = "/sys"                   # remoteproc processors under <sysfs>/class/remoteproc
//! firmware_dir = ""                # "" = firmware_class's path parameter, else /lib/firmware
//! rpmsg_tty = { remoteproc0 = "/dev/ttyRPMSG0" }   # the console of each processor
//! arch = "aarch64"                 # aarch64 | arm | riscv32 | riscv64
//!
//! [resources]
//! min_memory_mib = 32              # memory floor (reference/mica.md: default 32 MiB)
//! default_memory_mib = 64          # memory for a container without a memory limit
//! max_vcpus = 8                    # reference/mica.md: default 8
//! ```
//!
//! Each pedestal has its own section (`[qemu]`, `[sim]`, `[xen]`, `[baremetal]`),
//! micad's sockets and ttys are `[mica]`, and limits shared by all pedestals live in
//! `[resources]`.
//!
//! Strictness: every section rejects unknown keys, and every error names the file, the
//! dotted key (`lifecycle.stop_grace`), the line where toml can tell it, and what is
//! expected. toml's own messages carry a byte span but no key path, so
//! [`Config::from_str`] finds the key whose span holds the error.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// Where the configuration is read from when `MICRUN_CONFIG` is not set.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/micrun/config.toml";

/// The environment variable that overrides [`DEFAULT_CONFIG_PATH`].
pub const CONFIG_ENV: &str = "MICRUN_CONFIG";

/// How a duration may be written, for error messages.
pub const DURATION_HINT: &str = r#"expected e.g. "10s", "500ms", "5m", "1m30s" or integer seconds"#;

/// A pedestal micrun can drive (reference/mica.md, brief: "Pedestals").
///
/// The names are the values of the `org.openeuler.micrun.ped.pedestal` annotation and of
/// `default_pedestal` in the config file.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum PedestalKind {
    /// QEMU system emulation: runs anywhere, the default when no hardware pedestal exists.
    Qemu,
    /// A host build of the firmware run as a process; only when `[sim] enable = true`.
    Sim,
    /// Xen partitions, through micad or `xl`.
    Xen,
    /// Remoteproc-capable cores, through micad or Linux remoteproc sysfs.
    Baremetal,
}

impl PedestalKind {
    /// Every pedestal, in the order used in messages.
    pub const ALL: [PedestalKind; 4] = [Self::Qemu, Self::Sim, Self::Xen, Self::Baremetal];

    /// The accepted names, for error messages.
    pub const NAMES: &'static str = "qemu, sim, xen, baremetal";

    /// The pedestal's name as written in annotations and the config file.
    pub fn name(self) -> &'static str {
        match self {
            Self::Qemu => "qemu",
            Self::Sim => "sim",
            Self::Xen => "xen",
            Self::Baremetal => "baremetal",
        }
    }

    /// Parses a pedestal name (ASCII case-insensitive, surrounding blanks ignored).
    pub fn parse(text: &str) -> Option<PedestalKind> {
        let text = text.trim();
        Self::ALL
            .into_iter()
            .find(|kind| kind.name().eq_ignore_ascii_case(text))
    }
}

impl fmt::Display for PedestalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The `default_pedestal` setting: one pedestal, or `auto` (probe the host).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PedestalChoice {
    /// Use the hardware pedestal the host has (xen, baremetal), else qemu.
    #[default]
    Auto,
    /// Always this pedestal.
    Named(PedestalKind),
}

impl fmt::Display for PedestalChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Named(kind) => kind.fmt(f),
        }
    }
}

impl Serialize for PedestalChoice {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PedestalChoice {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.trim().eq_ignore_ascii_case("auto") {
            return Ok(Self::Auto);
        }
        PedestalKind::parse(&text).map(Self::Named).ok_or_else(|| {
            de::Error::custom(format!(
                "unknown pedestal {} (expected auto, {})",
                crate::error::quote(&text),
                PedestalKind::NAMES
            ))
        })
    }
}

/// The whole configuration. [`Default`] gives the built-in defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The file this configuration came from; `None` for the built-in defaults.
    #[serde(skip)]
    pub origin: Option<PathBuf>,
    /// The pedestal used when a container does not name one (`auto` by default).
    pub default_pedestal: PedestalChoice,
    /// Where the shim keeps per-container state (default `/run/micrun`); must be absolute.
    pub state_dir: PathBuf,
    /// This host's board, for images with firmware for several (`crate::image`).
    pub board: BoardConfig,
    /// Timings of start, liveness and stop.
    pub lifecycle: LifecycleConfig,
    /// The `sim` pedestal.
    pub sim: SimConfig,
    /// The `qemu` pedestal.
    pub qemu: QemuConfig,
    /// micad, the Mica daemon that drives the `xen` and `baremetal` pedestals.
    pub mica: MicaConfig,
    /// The `xen` pedestal.
    pub xen: XenConfig,
    /// The `baremetal` pedestal.
    pub baremetal: BaremetalConfig,
    /// Resource defaults and limits shared by all pedestals.
    pub resources: ResourceConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            origin: None,
            default_pedestal: PedestalChoice::Auto,
            state_dir: PathBuf::from("/run/micrun"),
            board: BoardConfig::default(),
            lifecycle: LifecycleConfig::default(),
            sim: SimConfig::default(),
            qemu: QemuConfig::default(),
            mica: MicaConfig::default(),
            xen: XenConfig::default(),
            baremetal: BaremetalConfig::default(),
            resources: ResourceConfig::default(),
        }
    }
}

/// `[board]`: what this host's board is, for images that carry firmware for several
/// boards (`crate::image::HostBoard`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BoardConfig {
    /// The board's name as images name it; empty = read [`BoardConfig::compatible`].
    pub name: String,
    /// The device tree's `compatible` file (NUL-separated strings, most specific first).
    pub compatible: PathBuf,
}

impl Default for BoardConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            compatible: PathBuf::from("/proc/device-tree/compatible"),
        }
    }
}

/// `[lifecycle]`: how long micrun waits for the RTOS at each step.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LifecycleConfig {
    /// Time between a graceful stop request and a forced stop (default 10 s; 0 = force at once).
    #[serde(deserialize_with = "duration", serialize_with = "write_duration")]
    pub stop_grace: Duration,
    /// An agent silent for this long is considered lost (default 5 s).
    #[serde(deserialize_with = "duration", serialize_with = "write_duration")]
    pub liveness_window: Duration,
    /// How often the host pings an agent (default 1 s); shorter than `liveness_window`.
    #[serde(deserialize_with = "duration", serialize_with = "write_duration")]
    pub ping_interval: Duration,
    /// How long agent mode `auto` waits for a handshake before falling back to raw mode,
    /// and how long mode `on` waits before failing (default 2 s).
    #[serde(deserialize_with = "duration", serialize_with = "write_duration")]
    pub handshake_wait: Duration,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            stop_grace: Duration::from_secs(10),
            liveness_window: Duration::from_secs(5),
            ping_interval: Duration::from_secs(1),
            handshake_wait: Duration::from_secs(2),
        }
    }
}

/// `[sim]`: the simulator pedestal, off unless enabled (it runs arbitrary host processes).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Allow containers on the `sim` pedestal (default false).
    pub enable: bool,
}

/// `[qemu]`: how the qemu pedestal starts QEMU.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QemuConfig {
    /// The QEMU binary for aarch64 firmware, a name looked up in `PATH` or a path
    /// (default `qemu-system-aarch64`). Other architectures use the binary of the
    /// pedestal's table (`crate::pedestal::qemu::MACHINES`).
    pub binary: PathBuf,
    /// `-M` machine for aarch64 firmware (default `virt`).
    pub machine: String,
    /// `-cpu` model for aarch64 firmware (default `cortex-a53`).
    pub cpu: String,
    /// Arguments appended to QEMU's command line (default none).
    pub extra_args: Vec<String>,
    /// How long QEMU may take from its start to answering QMP in `prelaunch`
    /// (default 20 s; a large image makes QEMU answer late, U-Boot 2025.01 after ~2.4 s on an idle host).
    #[serde(deserialize_with = "duration", serialize_with = "write_duration")]
    pub startup_timeout: Duration,
    /// How often a running guest's state is asked (`query-status`), to see a guest
    /// that panicked or stopped with an internal error (default 1 s).
    #[serde(deserialize_with = "duration", serialize_with = "write_duration")]
    pub watch_interval: Duration,
}

impl Default for QemuConfig {
    fn default() -> Self {
        // The default architecture's entry of the qemu pedestal's table.
        let aarch64 = &crate::pedestal::qemu::MACHINES[0];
        Self {
            binary: PathBuf::from(aarch64.binary),
            machine: aarch64.machine.to_owned(),
            cpu: aarch64.cpu.to_owned(),
            extra_args: Vec::new(),
            startup_timeout: Duration::from_secs(20),
            watch_interval: Duration::from_secs(1),
        }
    }
}

/// How a hardware pedestal is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DriverChoice {
    /// Through micad when it answers on its create socket (a harmless probe,
    /// within 1 s: `pedestal::detect`), else directly.
    #[default]
    Auto,
    /// Always through micad; Create fails when micad is not running.
    Micad,
    /// Never through micad: `xl` for xen, Linux remoteproc for baremetal.
    Direct,
}

impl fmt::Display for DriverChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Micad => "micad",
            Self::Direct => "direct",
        })
    }
}

/// `[mica]`: where micad's sockets and consoles are.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MicaConfig {
    /// micad's socket directory (default `/run/mica`); micad is used when it
    /// answers on `<dir>/mica-create.socket`.
    pub dir: PathBuf,
    /// Directories searched for `ttyRPMSG_<id>_0`, the console micad makes (default
    /// `/dev`).
    pub tty_dirs: Vec<PathBuf>,
    /// How long to wait for that console after start (default 30 s).
    #[serde(deserialize_with = "duration", serialize_with = "write_duration")]
    pub tty_wait: Duration,
    /// Timeout of one exchange with micad (default 5 s).
    #[serde(deserialize_with = "duration", serialize_with = "write_duration")]
    pub timeout: Duration,
}

impl Default for MicaConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("/run/mica"),
            tty_dirs: vec![PathBuf::from("/dev")],
            tty_wait: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
        }
    }
}

/// `[xen]`: the xen pedestal.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct XenConfig {
    /// micad, `xl`, or whichever the host has (default `auto`).
    pub driver: DriverChoice,
    /// The `xl` tool (default `xl`, looked up in `PATH`).
    pub xl: PathBuf,
    /// The `xenstore-read` tool (default `xenstore-read`).
    pub xenstore_read: PathBuf,
    /// A path that exists on a Xen host (default `/proc/xen`).
    pub detect: PathBuf,
    /// The boot image in the container's rootfs when it sets no
    /// `org.openeuler.micrun.ped.conf` (default `image.bin`).
    pub boot_image: PathBuf,
    /// The architecture of the guests' firmware (default `aarch64`).
    #[serde(deserialize_with = "arch", serialize_with = "write_arch")]
    pub arch: crate::firmware::Arch,
}

impl Default for XenConfig {
    fn default() -> Self {
        Self {
            driver: DriverChoice::Auto,
            xl: PathBuf::from("xl"),
            xenstore_read: PathBuf::from("xenstore-read"),
            detect: PathBuf::from("/proc/xen"),
            boot_image: PathBuf::from("image.bin"),
            arch: crate::firmware::Arch::Aarch64,
        }
    }
}

/// `[baremetal]`: the baremetal pedestal.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BaremetalConfig {
    /// micad, Linux remoteproc, or whichever the host has (default `auto`).
    pub driver: DriverChoice,
    /// The sysfs root (default `/sys`); processors are under `class/remoteproc`.
    pub sysfs: PathBuf,
    /// Where firmware files are put for the kernel to load; empty (the default)
    /// means firmware_class's `path` parameter when set, else `/lib/firmware`.
    pub firmware_dir: PathBuf,
    /// The console (rpmsg tty) of each remote processor, by its name.
    pub rpmsg_tty: std::collections::BTreeMap<String, PathBuf>,
    /// The architecture of the remote cores' firmware (default `aarch64`: the
    /// spare cores of the same SoC; `arm` or `riscv32` for a microcontroller core).
    #[serde(deserialize_with = "arch", serialize_with = "write_arch")]
    pub arch: crate::firmware::Arch,
}

impl Default for BaremetalConfig {
    fn default() -> Self {
        Self {
            driver: DriverChoice::Auto,
            sysfs: PathBuf::from("/sys"),
            firmware_dir: PathBuf::new(),
            rpmsg_tty: std::collections::BTreeMap::new(),
            arch: crate::firmware::Arch::Aarch64,
        }
    }
}

/// `[resources]`: defaults and limits for the resource mapping (`crate::resources`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResourceConfig {
    /// The memory floor in MiB when the container sets no `container.min_memory_mb`
    /// annotation (default 32, as in reference/mica.md).
    pub min_memory_mib: u32,
    /// Memory in MiB for a container without a memory limit (default 64; never below the
    /// floor).
    pub default_memory_mib: u32,
    /// The most vCPUs a container may have when it sets no `container.max_vcpu_num`
    /// annotation (default 8, as in reference/mica.md).
    pub max_vcpus: u32,
}

impl Default for ResourceConfig {
    fn default() -> Self {
        Self {
            min_memory_mib: 32,
            default_memory_mib: 64,
            max_vcpus: 8,
        }
    }
}

/// Why the configuration could not be loaded. Every message starts with the file path.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but cannot be read (permissions, a directory, I/O error).
    #[error("{}: cannot read the micrun config file: {source} (fix the file or point {CONFIG_ENV} at another)", .path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The file is not valid TOML, has an unknown key or a bad value.
    #[error("{}", render_invalid(.path, .key.as_deref(), .line, .message))]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// The dotted key at fault (`lifecycle.stop_grace`), when one is known.
        key: Option<String>,
        /// The 1-based line of the fault, when known.
        line: Option<usize>,
        /// What is wrong and what is expected.
        message: String,
    },
}

fn render_invalid(path: &Path, key: Option<&str>, line: &Option<usize>, message: &str) -> String {
    let mut out = format!("{}: ", path.display());
    if let Some(key) = key {
        out.push_str(key);
        out.push_str(": ");
    }
    out.push_str(message);
    if let Some(line) = line {
        out.push_str(&format!(" (line {line})"));
    }
    out
}

/// The config file path: the value of `MICRUN_CONFIG` when set and not empty, else
/// [`DEFAULT_CONFIG_PATH`]. `env_value` is what the environment holds (taken as a parameter
/// so tests need not change the process environment).
pub fn config_path(env_value: Option<&std::ffi::OsStr>) -> PathBuf {
    match env_value {
        Some(value) if !value.is_empty() => PathBuf::from(value),
        _ => PathBuf::from(DEFAULT_CONFIG_PATH),
    }
}

/// The `type_url` of the runtime options containerd passes to a runtime that is
/// not runc: CRI's `[...runtimes.<name>.options] ConfigPath`, or
/// `ctr run --runtime-config-path`.
pub const RUNTIME_OPTIONS_TYPE: &str = "runtimeoptions.v1.Options";

/// The config file named by runtime options (`runtimeoptions.v1.Options`, decoded
/// with the message type build.rs generates from `proto/runtimeoptions.proto`), if
/// `type_url` is theirs and a path is set. Anything else is `Ok(None)`; options of
/// that type that do not parse are an error.
pub fn options_config_path(type_url: &str, value: &[u8]) -> Result<Option<PathBuf>, String> {
    use protobuf::Message;
    if type_url.trim_start_matches("type.googleapis.com/") != RUNTIME_OPTIONS_TYPE {
        return Ok(None);
    }
    let options = runtimeoptions::Options::parse_from_bytes(value)
        .map_err(|e| format!("runtime options ({RUNTIME_OPTIONS_TYPE}) do not parse: {e}"))?;
    Ok((!options.config_path.is_empty()).then(|| PathBuf::from(options.config_path)))
}

/// containerd's `runtimeoptions.v1.Options`, generated from
/// `proto/runtimeoptions.proto` by build.rs.
#[allow(warnings, clippy::all, missing_docs)]
mod runtimeoptions {
    include!(concat!(env!("OUT_DIR"), "/runtimeoptions.rs"));
}

impl Config {
    /// Loads the configuration from `path` when given (the runtime options'
    /// `ConfigPath`), else from `$MICRUN_CONFIG` or [`DEFAULT_CONFIG_PATH`].
    pub fn load_for(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            Some(path) => Self::load_from(path),
            None => Self::load(),
        }
    }

    /// Loads the configuration from `$MICRUN_CONFIG` or [`DEFAULT_CONFIG_PATH`].
    /// A missing file gives the defaults (with `origin` `None`).
    pub fn load() -> Result<Config, ConfigError> {
        Self::load_from(&config_path(std::env::var_os(CONFIG_ENV).as_deref()))
    }

    /// Loads the configuration from `path`; a missing file gives the defaults.
    pub fn load_from(path: &Path) -> Result<Config, ConfigError> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes).map_err(|err| ConfigError::Invalid {
                    path: path.to_owned(),
                    key: None,
                    line: None,
                    message: format!(
                        "not UTF-8 text (invalid byte at offset {})",
                        err.utf8_error().valid_up_to()
                    ),
                })?;
                Self::from_str(&text, path)
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Config::default()),
            Err(source) => Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Parses and validates configuration text; `origin` is the file it came from (used in
    /// messages and kept in [`Config::origin`]).
    pub fn from_str(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let invalid =
            |key: Option<String>, span: Option<std::ops::Range<usize>>, message: String| {
                ConfigError::Invalid {
                    path: origin.to_owned(),
                    key,
                    line: span.map(|span| line_of(text, span.start)),
                    message,
                }
            };
        // Syntax first: a document that does not parse has no keys to name.
        let document = DeTable::parse(text)
            .map_err(|err| invalid(None, err.span(), err.message().to_owned()))?;
        let mut config: Config = toml::from_str(text).map_err(|err| {
            let key = err
                .span()
                .and_then(|span| key_at(document.get_ref(), span.start));
            invalid(key, err.span(), tidy_message(err.message()))
        })?;
        config.origin = Some(origin.to_owned());
        config.validate().map_err(|(key, message)| {
            let span = value_span(document.get_ref(), key);
            invalid(Some(key.to_owned()), span, message)
        })?;
        Ok(config)
    }

    /// Checks the rules that types alone do not express; the error names the key.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        if !self.state_dir.is_absolute() {
            return Err((
                "state_dir",
                format!("{:?} is not an absolute path", self.state_dir),
            ));
        }
        if self.default_pedestal == PedestalChoice::Named(PedestalKind::Sim) && !self.sim.enable {
            return Err((
                "default_pedestal",
                "\"sim\" needs [sim] enable = true".to_owned(),
            ));
        }
        let life = &self.lifecycle;
        for (key, value) in [
            ("lifecycle.liveness_window", life.liveness_window),
            ("lifecycle.ping_interval", life.ping_interval),
            ("lifecycle.handshake_wait", life.handshake_wait),
            ("qemu.startup_timeout", self.qemu.startup_timeout),
            ("qemu.watch_interval", self.qemu.watch_interval),
        ] {
            if value.is_zero() {
                return Err((key, "must be longer than 0".to_owned()));
            }
        }
        if life.ping_interval >= life.liveness_window {
            return Err((
                "lifecycle.ping_interval",
                format!(
                    "{:?} must be shorter than lifecycle.liveness_window ({:?}), or every agent looks lost",
                    life.ping_interval, life.liveness_window
                ),
            ));
        }
        if self.qemu.binary.as_os_str().is_empty() {
            return Err(("qemu.binary", "must not be empty".to_owned()));
        }
        for (key, value) in [
            ("qemu.machine", &self.qemu.machine),
            ("qemu.cpu", &self.qemu.cpu),
        ] {
            if value.trim().is_empty() {
                return Err((key, "must not be empty".to_owned()));
            }
        }
        if !self.mica.dir.is_absolute() {
            return Err((
                "mica.dir",
                format!("{:?} is not an absolute path", self.mica.dir),
            ));
        }
        if self.mica.tty_dirs.is_empty() {
            return Err((
                "mica.tty_dirs",
                "must name at least one directory".to_owned(),
            ));
        }
        if self.mica.timeout.is_zero() {
            return Err(("mica.timeout", "must be longer than 0".to_owned()));
        }
        for (key, value) in [
            ("xen.xl", &self.xen.xl),
            ("xen.xenstore_read", &self.xen.xenstore_read),
            ("xen.boot_image", &self.xen.boot_image),
        ] {
            if value.as_os_str().is_empty() {
                return Err((key, "must not be empty".to_owned()));
            }
        }
        if self.xen.boot_image.is_absolute() {
            return Err((
                "xen.boot_image",
                "must be a path inside the container's rootfs, not absolute".to_owned(),
            ));
        }
        if !self.baremetal.sysfs.is_absolute() {
            return Err((
                "baremetal.sysfs",
                format!("{:?} is not an absolute path", self.baremetal.sysfs),
            ));
        }
        let fw = &self.baremetal.firmware_dir;
        if !fw.as_os_str().is_empty() && !fw.is_absolute() {
            return Err((
                "baremetal.firmware_dir",
                format!("{fw:?} is not an absolute path"),
            ));
        }
        // These values travel in the i32 fields of micad's create message.
        let res = &self.resources;
        for (key, value) in [
            ("resources.min_memory_mib", res.min_memory_mib),
            ("resources.default_memory_mib", res.default_memory_mib),
            ("resources.max_vcpus", res.max_vcpus),
        ] {
            if value == 0 || value > i32::MAX as u32 {
                return Err((key, format!("{value} is out of range (1 to {})", i32::MAX)));
            }
        }
        if res.default_memory_mib < res.min_memory_mib {
            return Err((
                "resources.default_memory_mib",
                format!(
                    "{} is below resources.min_memory_mib ({})",
                    res.default_memory_mib, res.min_memory_mib
                ),
            ));
        }
        Ok(())
    }
}

/// Parses a duration: integer seconds (`"10"`), or one or more `<integer><unit>` parts
/// with units `h`, `m`, `s`, `ms` (`"500ms"`, `"10s"`, `"5m"`, `"1m30s"`). Blanks around
/// the whole text are ignored. Returns `None` for anything else (negative, fractional,
/// unknown unit, overflow).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok().map(Duration::from_secs);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.checked_mul(60)?),
            "h" => Duration::from_secs(number.checked_mul(3600)?),
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add(part)?;
    }
    Some(total)
}

/// Writes a duration the way [`parse_duration`] reads it back: `"500ms"` when it
/// has milliseconds, else hours, minutes and seconds (`"1h"`, `"1m30s"`, `"0s"`).
/// Below a millisecond is dropped (no config value has it).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// serde helper: a duration as [`format_duration`] writes it.
fn write_duration<S: Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_duration(*d))
}

/// serde helper: an architecture's name.
fn write_arch<S: Serializer>(
    arch: &crate::firmware::Arch,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(arch.name())
}

/// serde helper: an architecture name ([`crate::firmware::Arch::parse`]).
fn arch<'de, D: Deserializer<'de>>(deserializer: D) -> Result<crate::firmware::Arch, D::Error> {
    let text = String::deserialize(deserializer)?;
    crate::firmware::Arch::parse(&text).ok_or_else(|| {
        de::Error::custom(format!(
            "unknown architecture {} (expected aarch64, arm, riscv64, riscv32 or x86_64)",
            crate::error::quote(&text)
        ))
    })
}

/// serde helper: a duration written as a string ([`parse_duration`]) or integer seconds.
fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration")
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<Duration, E> {
            u64::try_from(value)
                .map(Duration::from_secs)
                .map_err(|_| E::custom(format!("invalid duration {value} ({DURATION_HINT})")))
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<Duration, E> {
            Ok(Duration::from_secs(value))
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<Duration, E> {
            parse_duration(value).ok_or_else(|| {
                E::custom(format!(
                    "invalid duration {} ({DURATION_HINT})",
                    crate::error::quote(value)
                ))
            })
        }
    }

    deserializer.deserialize_any(DurationVisitor)
}

/// serde's "unknown field `x`, expected one of …" says `x` again after the key path;
/// keep only the list.
fn tidy_message(message: &str) -> String {
    match message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once("`, "))
    {
        Some((_, tail)) => format!("unknown key ({tail})"),
        None => message.to_owned(),
    }
}

/// The 1-based line holding byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn contains(span: &std::ops::Range<usize>, offset: usize) -> bool {
    span.contains(&offset) || (span.is_empty() && span.start == offset)
}

/// The dotted path of the deepest key whose name or value holds byte `offset`.
///
/// Every table is searched, not only those whose span holds the offset: the span toml
/// gives a `[section]` table need not cover the section's body.
fn key_at(table: &DeTable<'_>, offset: usize) -> Option<String> {
    let mut best: Option<Vec<String>> = None;
    search_table(table, offset, &mut Vec::new(), &mut best);
    best.map(|parts| parts.join(".").replace(".[", "["))
}

fn search_table(
    table: &DeTable<'_>,
    offset: usize,
    path: &mut Vec<String>,
    best: &mut Option<Vec<String>>,
) {
    for (key, value) in table.iter() {
        path.push(key.get_ref().to_string());
        search_value(value, contains(&key.span(), offset), offset, path, best);
        path.pop();
    }
}

fn search_value(
    value: &Spanned<DeValue<'_>>,
    key_hit: bool,
    offset: usize,
    path: &mut Vec<String>,
    best: &mut Option<Vec<String>>,
) {
    if key_hit || contains(&value.span(), offset) {
        let deeper = best.as_ref().is_none_or(|found| found.len() < path.len());
        if deeper {
            *best = Some(path.clone());
        }
    }
    match value.get_ref() {
        DeValue::Table(inner) => search_table(inner, offset, path, best),
        DeValue::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                path.push(format!("[{index}]"));
                search_value(item, false, offset, path, best);
                path.pop();
            }
        }
        _ => {}
    }
}

/// The span of the value at dotted `key`, when the document has it.
fn value_span(table: &DeTable<'_>, key: &str) -> Option<std::ops::Range<usize>> {
    let (first, rest) = match key.split_once('.') {
        Some((first, rest)) => (first, Some(rest)),
        None => (key, None),
    };
    let (_, value) = table.iter().find(|(name, _)| name.get_ref() == first)?;
    match (rest, value.get_ref()) {
        (None, _) => Some(value.span()),
        (Some(rest), DeValue::Table(inner)) => value_span(inner, rest),
        (Some(_), _) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "/etc/micrun/config.toml";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_str(text, Path::new(ORIGIN))
    }

    /// docs/shim.md's sample config is what the code reads, and its prose names the
    /// config's memory floor by the key the code accepts (the annotation keeps the Go
    /// MicRun's `container.min_memory_mb`).
    #[test]
    fn shim_doc_sample_and_key_names_match_the_code() {
        let doc = include_str!("../../docs/shim.md");
        let start = doc
            .find("```toml\ndefault_pedestal")
            .expect("the sample config in docs/shim.md");
        let body = &doc[start + "```toml\n".len()..];
        let sample = &body[..body.find("```").unwrap()];
        let config = parse(sample).unwrap();
        assert_eq!(config.resources, ResourceConfig::default());
        for (at, _) in doc.match_indices("min_memory_mb") {
            assert!(
                doc[..at].ends_with("org.openeuler.micrun.container."),
                "docs/shim.md names `min_memory_mb` without the annotation prefix at byte {at}: \
                 the config key is `min_memory_mib`"
            );
        }
    }

    fn error(text: &str) -> String {
        match parse(text) {
            Ok(config) => panic!("{text:?} was accepted: {config:?}"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn runtime_options_name_the_config_file() {
        // runtimeoptions.v1.Options{type_url: "x", config_path: "/etc/m.toml"}
        let mut msg = vec![0x0a, 1, b'x', 0x12, 11];
        msg.extend_from_slice(b"/etc/m.toml");
        assert_eq!(
            options_config_path(RUNTIME_OPTIONS_TYPE, &msg),
            Ok(Some(PathBuf::from("/etc/m.toml")))
        );
        assert_eq!(
            options_config_path("type.googleapis.com/runtimeoptions.v1.Options", &msg),
            Ok(Some(PathBuf::from("/etc/m.toml")))
        );
        // Other options (runc's) are not ours; an empty path is no path.
        assert_eq!(
            options_config_path("containerd.runc.v1.Options", &msg),
            Ok(None)
        );
        assert_eq!(
            options_config_path(RUNTIME_OPTIONS_TYPE, &[0x12, 0]),
            Ok(None)
        );
        assert_eq!(options_config_path(RUNTIME_OPTIONS_TYPE, &[]), Ok(None));
        // An unknown varint field is skipped.
        let mut with_extra = vec![0x18, 0x96, 0x01];
        with_extra.extend_from_slice(&msg);
        assert_eq!(
            options_config_path(RUNTIME_OPTIONS_TYPE, &with_extra),
            Ok(Some(PathBuf::from("/etc/m.toml")))
        );
        // Truncated input is an error, never a panic.
        for n in 0..msg.len() {
            let _ = options_config_path(RUNTIME_OPTIONS_TYPE, &msg[..n]);
        }
        assert!(options_config_path(RUNTIME_OPTIONS_TYPE, &msg[..msg.len() - 1]).is_err());
        assert!(options_config_path(RUNTIME_OPTIONS_TYPE, &[0x12, 2, 0xff, 0xfe]).is_err());
    }

    #[test]
    fn empty_file_gives_defaults() {
        let config = parse("").unwrap();
        assert_eq!(config.origin.as_deref(), Some(Path::new(ORIGIN)));
        assert_eq!(
            Config {
                origin: None,
                ..config
            },
            Config::default()
        );
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = Config::default();
        assert_eq!(config.default_pedestal, PedestalChoice::Auto);
        assert_eq!(config.state_dir, Path::new("/run/micrun"));
        assert_eq!(config.lifecycle.stop_grace, Duration::from_secs(10));
        assert_eq!(config.lifecycle.liveness_window, Duration::from_secs(5));
        assert_eq!(config.lifecycle.ping_interval, Duration::from_secs(1));
        assert_eq!(config.lifecycle.handshake_wait, Duration::from_secs(2));
        assert!(!config.sim.enable);
        assert_eq!(config.qemu.binary, Path::new("qemu-system-aarch64"));
        assert_eq!(config.qemu.machine, "virt");
        assert_eq!(config.qemu.cpu, "cortex-a53");
        assert!(config.qemu.extra_args.is_empty());
        assert_eq!(config.qemu.startup_timeout, Duration::from_secs(20));
        assert_eq!(config.qemu.watch_interval, Duration::from_secs(1));
        assert_eq!(config.resources.min_memory_mib, 32);
        assert_eq!(config.resources.default_memory_mib, 64);
        assert_eq!(config.resources.max_vcpus, 8);
        // The defaults pass their own validation.
        config.validate().unwrap();
    }

    #[test]
    fn full_file_is_read() {
        let config = parse(
            r#"
default_pedestal = "xen"
state_dir = "/var/run/micrun"

[lifecycle]
stop_grace = "1m30s"
liveness_window = 7
ping_interval = "500ms"
handshake_wait = "3s"

[board]
name = "rk3588"
compatible = "/host/proc/device-tree/compatible"

[sim]
enable = true

[qemu]
binary = "/opt/qemu/bin/qemu-system-aarch64"
machine = "virt,gic-version=3"
cpu = "cortex-a57"
extra_args = ["-smp", "2"]
startup_timeout = "45s"
watch_interval = "250ms"

[resources]
min_memory_mib = 16
default_memory_mib = 128
max_vcpus = 4
"#,
        )
        .unwrap();
        assert_eq!(
            config.default_pedestal,
            PedestalChoice::Named(PedestalKind::Xen)
        );
        assert_eq!(config.state_dir, Path::new("/var/run/micrun"));
        assert_eq!(config.lifecycle.stop_grace, Duration::from_secs(90));
        assert_eq!(config.lifecycle.liveness_window, Duration::from_secs(7));
        assert_eq!(config.lifecycle.ping_interval, Duration::from_millis(500));
        assert_eq!(config.lifecycle.handshake_wait, Duration::from_secs(3));
        assert_eq!(config.board.name, "rk3588");
        assert_eq!(
            config.board.compatible,
            Path::new("/host/proc/device-tree/compatible")
        );
        assert!(config.sim.enable);
        assert_eq!(
            config.qemu.binary,
            Path::new("/opt/qemu/bin/qemu-system-aarch64")
        );
        assert_eq!(config.qemu.machine, "virt,gic-version=3");
        assert_eq!(config.qemu.cpu, "cortex-a57");
        assert_eq!(config.qemu.extra_args, ["-smp", "2"]);
        assert_eq!(config.qemu.startup_timeout, Duration::from_secs(45));
        assert_eq!(config.qemu.watch_interval, Duration::from_millis(250));
        assert_eq!(
            config.resources,
            ResourceConfig {
                min_memory_mib: 16,
                default_memory_mib: 128,
                max_vcpus: 4
            }
        );
    }

    #[test]
    fn partial_sections_keep_other_defaults() {
        let config = parse("[lifecycle]\nstop_grace = \"2s\"\n").unwrap();
        assert_eq!(config.lifecycle.stop_grace, Duration::from_secs(2));
        assert_eq!(config.lifecycle.liveness_window, Duration::from_secs(5));
        assert_eq!(config.qemu, QemuConfig::default());
    }

    #[test]
    fn pedestal_names() {
        for (text, expected) in [
            ("auto", PedestalChoice::Auto),
            ("qemu", PedestalChoice::Named(PedestalKind::Qemu)),
            ("Xen", PedestalChoice::Named(PedestalKind::Xen)),
            ("baremetal", PedestalChoice::Named(PedestalKind::Baremetal)),
        ] {
            let config = parse(&format!("default_pedestal = {text:?}")).unwrap();
            assert_eq!(config.default_pedestal, expected, "{text}");
        }
        let config = parse("default_pedestal = \"sim\"\n[sim]\nenable = true").unwrap();
        assert_eq!(
            config.default_pedestal,
            PedestalChoice::Named(PedestalKind::Sim)
        );
        for kind in PedestalKind::ALL {
            assert_eq!(PedestalKind::parse(kind.name()), Some(kind));
            assert!(PedestalKind::NAMES.contains(kind.name()));
        }
        assert_eq!(PedestalKind::parse("kvm"), None);
    }

    #[test]
    fn bad_duration_names_file_key_and_expectation() {
        let message = error("[lifecycle]\nstop_grace = \"ten\"\n");
        assert_eq!(
            message,
            format!(
                "{ORIGIN}: lifecycle.stop_grace: invalid duration \"ten\" ({DURATION_HINT}) (line 2)"
            )
        );
        let message = error("[lifecycle]\nhandshake_wait = -3\n");
        assert!(
            message.starts_with(&format!(
                "{ORIGIN}: lifecycle.handshake_wait: invalid duration -3"
            )),
            "{message}"
        );
        let message = error("[lifecycle]\nstop_grace = 1.5\n");
        assert!(message.contains("lifecycle.stop_grace"), "{message}");
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let message = error("colour = \"blue\"\n");
        assert!(
            message.starts_with(&format!(
                "{ORIGIN}: colour: unknown key (expected one of `default_pedestal`"
            )),
            "{message}"
        );
        assert!(message.ends_with("(line 1)"), "{message}");

        let message = error("[lifecycle]\nstop_grace = \"1s\"\nstop_grase = \"1s\"\n");
        assert!(
            message.starts_with(&format!(
                "{ORIGIN}: lifecycle.stop_grase: unknown key (expected one of `stop_grace`"
            )),
            "{message}"
        );
        assert!(message.ends_with("(line 3)"), "{message}");

        let message = error("[qemu]\nbinary = \"q\"\n[kvm]\ndriver = \"micad\"\n");
        assert!(
            message.contains(": kvm: unknown key (expected one of"),
            "{message}"
        );
        let message = error("[xen]\ndriver = \"xl\"\n");
        assert!(
            message.contains("xen.driver: unknown variant `xl`"),
            "{message}"
        );
        let message = error("[baremetal]\narch = \"mips\"\n");
        assert!(
            message.contains("baremetal.arch: unknown architecture \"mips\""),
            "{message}"
        );
        let message = error("[mica]\ndir = \"run/mica\"\n");
        assert!(
            message.contains("mica.dir: \"run/mica\" is not an absolute path"),
            "{message}"
        );

        assert_eq!(
            tidy_message("unknown field `x`, there are no fields"),
            "unknown key (there are no fields)"
        );
        assert_eq!(tidy_message("duplicate key"), "duplicate key");

        // Dotted keys outside a section header are located too.
        let message = error("sim.enabled = true\n");
        assert!(message.contains(": sim.enabled: unknown key"), "{message}");
    }

    #[test]
    fn wrong_types_name_the_key() {
        let message = error("[resources]\nmax_vcpus = \"eight\"\n");
        assert!(
            message.starts_with(&format!("{ORIGIN}: resources.max_vcpus: invalid type")),
            "{message}"
        );
        let message = error("[resources]\nmin_memory_mib = -1\n");
        assert!(
            message.contains("resources.min_memory_mib: invalid value"),
            "{message}"
        );
        let message = error("[sim]\nenable = \"yes\"\n");
        assert!(message.contains("sim.enable: invalid type"), "{message}");
        let message = error("lifecycle = 3\n");
        assert!(message.contains(": lifecycle: invalid type"), "{message}");
        let message = error("[qemu]\nextra_args = [\"-s\", 2]\n");
        assert!(
            message.contains("qemu.extra_args[1]: invalid type"),
            "{message}"
        );
        let message = error("default_pedestal = \"kvm\"\n");
        assert!(
            message.contains(
                "default_pedestal: unknown pedestal \"kvm\" (expected auto, qemu, sim, xen, baremetal)"
            ),
            "{message}"
        );
    }

    #[test]
    fn syntax_errors_give_file_and_line() {
        let message = error("[lifecycle]\nstop_grace = \n");
        assert!(message.starts_with(&format!("{ORIGIN}: ")), "{message}");
        assert!(message.ends_with("(line 2)"), "{message}");
        let message = error("[lifecycle]\n[lifecycle]\n");
        assert!(message.contains("duplicate key"), "{message}");
    }

    #[test]
    fn semantic_rules_name_the_key() {
        for (text, key) in [
            ("state_dir = \"run/micrun\"", "state_dir"),
            ("default_pedestal = \"sim\"", "default_pedestal"),
            (
                "[lifecycle]\nliveness_window = 0",
                "lifecycle.liveness_window",
            ),
            (
                "[lifecycle]\nping_interval = \"0s\"",
                "lifecycle.ping_interval",
            ),
            (
                "[lifecycle]\nhandshake_wait = 0",
                "lifecycle.handshake_wait",
            ),
            (
                "[lifecycle]\nping_interval = \"5s\"",
                "lifecycle.ping_interval",
            ),
            ("[qemu]\nbinary = \"\"", "qemu.binary"),
            ("[qemu]\nstartup_timeout = \"0s\"", "qemu.startup_timeout"),
            ("[qemu]\nwatch_interval = 0", "qemu.watch_interval"),
            ("[qemu]\nmachine = \" \"", "qemu.machine"),
            ("[qemu]\ncpu = \"\"", "qemu.cpu"),
            (
                "[resources]\nmin_memory_mib = 0",
                "resources.min_memory_mib",
            ),
            ("[resources]\nmax_vcpus = 0", "resources.max_vcpus"),
            ("[resources]\nmax_vcpus = 4294967295", "resources.max_vcpus"),
            (
                "[resources]\ndefault_memory_mib = 16",
                "resources.default_memory_mib",
            ),
        ] {
            let message = error(text);
            assert!(
                message.starts_with(&format!("{ORIGIN}: {key}: ")),
                "{text:?}: {message}"
            );
        }
        // The line is found for semantic errors too.
        let message = error("\n\n[lifecycle]\nping_interval = \"5s\"\n");
        assert!(message.ends_with("(line 4)"), "{message}");
        // A zero stop grace is allowed: stop forcibly at once.
        let config = parse("[lifecycle]\nstop_grace = 0").unwrap();
        assert_eq!(config.lifecycle.stop_grace, Duration::ZERO);
    }

    #[test]
    fn durations_are_written_as_they_are_read() {
        for (d, text) in [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3600), "1h"),
            (Duration::from_secs(3725), "1h2m5s"),
        ] {
            assert_eq!(format_duration(d), text);
            assert_eq!(parse_duration(text), Some(d));
        }
    }

    #[test]
    fn durations() {
        for (text, expected) in [
            ("10", Some(Duration::from_secs(10))),
            ("0", Some(Duration::ZERO)),
            (" 10s ", Some(Duration::from_secs(10))),
            ("500ms", Some(Duration::from_millis(500))),
            ("5m", Some(Duration::from_secs(300))),
            ("2h", Some(Duration::from_secs(7200))),
            ("1m30s", Some(Duration::from_secs(90))),
            ("1s500ms", Some(Duration::from_millis(1500))),
            ("0s", Some(Duration::ZERO)),
            ("", None),
            ("ten", None),
            ("-1", None),
            ("-1s", None),
            ("1.5s", None),
            ("10 s", None),
            ("s", None),
            ("10x", None),
            ("10S", None),
            ("+5", None),
            ("99999999999999999999", None),
            ("9999999999999999999h", None),
        ] {
            assert_eq!(parse_duration(text), expected, "{text:?}");
        }
    }

    /// A directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            use std::sync::atomic::{AtomicU32, Ordering};
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "micrun-config-{tag}-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn load_from_files() {
        let dir = TempDir::new("load");
        // Missing file: defaults, no origin.
        let config = Config::load_from(&dir.0.join("absent.toml")).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.origin, None);

        let path = dir.0.join("config.toml");
        std::fs::write(&path, "[resources]\nmax_vcpus = 2\n").unwrap();
        let config = Config::load_from(&path).unwrap();
        assert_eq!(config.resources.max_vcpus, 2);
        assert_eq!(config.origin.as_deref(), Some(path.as_path()));

        std::fs::write(&path, "[resources]\nmax_vcpu = 2\n").unwrap();
        let message = Config::load_from(&path).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("{}: resources.max_vcpu: ", path.display())),
            "{message}"
        );

        std::fs::write(&path, b"state_dir = \"/\xff\"\n").unwrap();
        let message = Config::load_from(&path).unwrap_err().to_string();
        assert!(message.contains("not UTF-8"), "{message}");

        // A directory where the file should be is an error, not the defaults.
        let err = Config::load_from(&dir.0).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
        assert!(err.to_string().contains(CONFIG_ENV), "{err}");
    }

    #[test]
    fn path_comes_from_env_value() {
        use std::ffi::OsStr;
        assert_eq!(config_path(None), Path::new(DEFAULT_CONFIG_PATH));
        assert_eq!(
            config_path(Some(OsStr::new(""))),
            Path::new(DEFAULT_CONFIG_PATH)
        );
        assert_eq!(
            config_path(Some(OsStr::new("/tmp/m.toml"))),
            Path::new("/tmp/m.toml")
        );
    }
}
