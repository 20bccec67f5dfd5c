//! The `org.openeuler.micrun.*` annotations: every key name, and their parsing into
//! [`Annotations`].
//!
//! This module is the one place where annotation names are spelled. The names and meanings
//! are the Go MicRun's user contract (reference/mica.md, "User contract of MicRun"), so
//! existing pod specs keep working; `container.agent` is micrun's own addition.
//!
//! Parsing rules:
//! - A value that is empty (or only blanks) counts as not set, for every key.
//! - Booleans accept `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off` and `t`/`f`, in any
//!   case: a superset of Go's `strconv.ParseBool`, which the Go MicRun used.
//! - Counts (`min_memory_mb`, `max_vcpu_num`, `pipe_size`) are decimal digits only, from
//!   1 to `i32::MAX` (they travel in i32 fields of micad's create message).
//! - `container.firmware_hash` is 64 hex digits, any case, optionally prefixed `sha256:`.
//! - `container.auto_close_timeout` is a duration (`60s`, `5m`, integer seconds; see
//!   [`crate::config::parse_duration`]); `0` disables auto-close and any timeout wins over
//!   `container.auto_close`. `auto_close = true` alone means [`DEFAULT_AUTO_CLOSE_TIMEOUT`].
//!   Unlike the Go MicRun, auto-close is off unless asked for.
//! - A bad value is an error naming the key, the value and what is expected.
//! - An unknown key under [`PREFIX`] is not an error: it lands in
//!   [`Annotations::warnings`] for the caller to log (a typo must not stop a pod, but must
//!   be visible). Keys outside the prefix are not ours and are ignored silently, except the
//!   CRI keys [`CRI_CONTAINER_TYPE`] and [`CRI_SANDBOX_ID`], which are read.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use crate::config::{parse_duration, PedestalKind};
use crate::firmware::{Arch, ImageHints, ImageKind};

/// The prefix of every micrun annotation.
pub const PREFIX: &str = "org.openeuler.micrun.";

/// RTOS name (`zephyr`, `uniproton`, …); informational.
pub const OS: &str = "org.openeuler.micrun.container.os";
/// The board the firmware is built for. On the `qemu` pedestal it picks QEMU's
/// machine (`crate::pedestal::qemu::MACHINES`); a packed image's index gives it
/// by default.
pub const BOARD: &str = "org.openeuler.micrun.container.board";
/// Firmware path relative to the rootfs (default `firmware.elf`, else the first `*.elf`).
pub const FIRMWARE_PATH: &str = "org.openeuler.micrun.container.firmware_path";
/// Expected sha256 of the firmware; a mismatch fails Create.
pub const FIRMWARE_HASH: &str = "org.openeuler.micrun.container.firmware_hash";
/// How the firmware is booted: `elf`, `raw` or `bios` (default: detected, see
/// `crate::firmware::inspect`).
pub const FIRMWARE_KIND: &str = "org.openeuler.micrun.container.firmware_kind";
/// Where a raw firmware image is loaded and entered (`0x40200000`, or decimal).
pub const FIRMWARE_LOAD_ADDRESS: &str = "org.openeuler.micrun.container.firmware_load_address";
/// The architecture of a firmware image that is not an ELF (default: the pedestal's).
pub const FIRMWARE_ARCH: &str = "org.openeuler.micrun.container.firmware_arch";
/// Memory floor in MiB (default: `[resources] min_memory_mib`, 32).
pub const MIN_MEMORY_MB: &str = "org.openeuler.micrun.container.min_memory_mb";
/// Most vCPUs the instance may have (default: `[resources] max_vcpus`, 8).
pub const MAX_VCPU_NUM: &str = "org.openeuler.micrun.container.max_vcpu_num";
/// Close the task on its own after a while (bool).
pub const AUTO_CLOSE: &str = "org.openeuler.micrun.container.auto_close";
/// How long until auto-close; `0` disables; wins over [`AUTO_CLOSE`].
pub const AUTO_CLOSE_TIMEOUT: &str = "org.openeuler.micrun.container.auto_close_timeout";
/// Agent or raw mode: `auto` (default), `on`, `off`.
pub const AGENT: &str = "org.openeuler.micrun.container.agent";
/// Pedestal the container needs (`xen`, `baremetal`, `qemu`, `sim`).
pub const PEDESTAL: &str = "org.openeuler.micrun.ped.pedestal";
/// Pedestal config file in the rootfs (Xen: the boot image, default `image.bin`).
pub const PEDESTAL_CONF: &str = "org.openeuler.micrun.ped.conf";
/// Remoteproc instance for the baremetal pedestal's direct driver (e.g. `remoteproc0`).
pub const PEDESTAL_REMOTEPROC: &str = "org.openeuler.micrun.ped.remoteproc";
/// Ignore Update requests: resources stay as created (bool).
pub const STATIC_RESOURCE: &str = "org.openeuler.micrun.runtime.static_resource";
/// Bind each vCPU to one physical CPU (bool; the Go MicRun's older name for pinning).
pub const VCPU_PCPU_BINDING: &str = "org.openeuler.micrun.runtime.vcpu_pcpu_binding";
/// Pin vCPUs to the cpuset's physical CPUs (bool).
pub const ENABLE_VCPUS_PINNING: &str = "org.openeuler.micrun.runtime.enable_vcpus_pinning";
/// Keep dom0's CPUs for dom0 alone (bool, Xen).
pub const EXCLUSIVE_DOM0_CPU: &str = "org.openeuler.micrun.runtime.exclusive_dom0_cpu";
/// Debug mode: passed to micad's create message, more logging (bool).
pub const DEBUG: &str = "org.openeuler.micrun.runtime.debug";
/// Size in bytes of the console pipes (count).
pub const PIPE_SIZE: &str = "org.openeuler.micrun.runtime.pipe_size";
/// Do not create a network namespace (bool).
pub const DISABLE_NEW_NETNS: &str = "org.openeuler.micrun.runtime.disable_new_netns";
/// Back the instance's memory with huge pages where the pedestal can (bool).
pub const HUGEPAGE_ENABLE: &str = "org.openeuler.micrun.runtime.hugepage_enable";

/// CRI: `sandbox` for a pod's sandbox (pause) container, `container` for the others.
pub const CRI_CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
/// CRI: the id of the pod sandbox a container belongs to.
pub const CRI_SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";

/// Every annotation key micrun reads.
pub const KNOWN_KEYS: [&str; 25] = [
    OS,
    BOARD,
    FIRMWARE_PATH,
    FIRMWARE_HASH,
    FIRMWARE_KIND,
    FIRMWARE_LOAD_ADDRESS,
    FIRMWARE_ARCH,
    MIN_MEMORY_MB,
    MAX_VCPU_NUM,
    AUTO_CLOSE,
    AUTO_CLOSE_TIMEOUT,
    AGENT,
    PEDESTAL,
    PEDESTAL_CONF,
    PEDESTAL_REMOTEPROC,
    STATIC_RESOURCE,
    VCPU_PCPU_BINDING,
    ENABLE_VCPUS_PINNING,
    EXCLUSIVE_DOM0_CPU,
    DEBUG,
    PIPE_SIZE,
    DISABLE_NEW_NETNS,
    HUGEPAGE_ENABLE,
    CRI_CONTAINER_TYPE,
    CRI_SANDBOX_ID,
];

/// The `type_url` containerd gives the OCI runtime-spec features document (typeurl's
/// name for `features.Features` of runtime-spec 1.x; the value is its JSON).
pub const FEATURES_TYPE_URL: &str =
    "types.containerd.io/opencontainers/runtime-spec/1/features/Features";

/// What micrun is, for tools: its version, pedestals and host↔RTOS protocol version
/// (the `annotations` of the features document and of the shim's `-info`).
pub fn implementation_annotations() -> Vec<(&'static str, String)> {
    let v = micrun_proto::PROTOCOL_VERSION;
    vec![
        (
            "org.openeuler.micrun.version",
            env!("CARGO_PKG_VERSION").to_owned(),
        ),
        (
            "org.openeuler.micrun.pedestals",
            PedestalKind::ALL.map(PedestalKind::name).join(","),
        ),
        (
            "org.openeuler.micrun.protocol.version",
            format!("{}.{}", v.major, v.minor),
        ),
    ]
}

/// The OCI runtime-spec features document (runtime-spec `features.md`) of micrun, as
/// JSON: the spec versions it reads, no hooks, no mount options and no Linux
/// namespaces (an RTOS partition uses none), [`implementation_annotations`], and every
/// `org.openeuler.micrun.*` annotation it reads as `potentiallyUnsafeConfigAnnotations`
/// (they change what runs where), taken from [`KNOWN_KEYS`].
pub fn runtime_features_json() -> String {
    let annotations: serde_json::Map<String, serde_json::Value> = implementation_annotations()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v)))
        .collect();
    let read: Vec<&str> = KNOWN_KEYS
        .iter()
        .copied()
        .filter(|k| k.starts_with(PREFIX))
        .collect();
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.1",
        "hooks": [],
        "mountOptions": [],
        "linux": { "namespaces": [] },
        "annotations": annotations,
        "potentiallyUnsafeConfigAnnotations": read,
    })
    .to_string()
}

/// The auto-close timeout when `container.auto_close` is true and no timeout is given
/// (the Go MicRun's 30 s).
pub const DEFAULT_AUTO_CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// How the host talks to the RTOS (brief: "Two ways an RTOS talks to the host").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AgentMode {
    /// Try the agent handshake; fall back to raw console mode if none comes.
    #[default]
    Auto,
    /// The firmware has the agent: a missing handshake is an error.
    On,
    /// Raw mode: console bytes only, no handshake attempted.
    Off,
}

impl fmt::Display for AgentMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::On => "on",
            Self::Off => "off",
        })
    }
}

/// The CRI container type ([`CRI_CONTAINER_TYPE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CriContainerType {
    /// The pod's sandbox (pause) container: no RTOS runs for it.
    Sandbox,
    /// An application container of a pod.
    Container,
}

/// The annotations of one container, parsed. [`Default`] is "no annotations".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Annotations {
    /// [`OS`].
    pub os: Option<String>,
    /// [`BOARD`].
    pub board: Option<String>,
    /// [`FIRMWARE_PATH`], unchecked (`crate::firmware` checks it against the rootfs).
    pub firmware_path: Option<String>,
    /// [`FIRMWARE_HASH`], decoded.
    pub firmware_hash: Option<[u8; 32]>,
    /// [`FIRMWARE_KIND`], [`FIRMWARE_LOAD_ADDRESS`] and [`FIRMWARE_ARCH`].
    pub image: ImageHints,
    /// [`MIN_MEMORY_MB`].
    pub min_memory_mib: Option<u32>,
    /// [`MAX_VCPU_NUM`].
    pub max_vcpus: Option<u32>,
    /// The auto-close timeout from [`AUTO_CLOSE`] and [`AUTO_CLOSE_TIMEOUT`]; `None` = never.
    pub auto_close: Option<Duration>,
    /// [`AGENT`].
    pub agent: AgentMode,
    /// [`PEDESTAL`].
    pub pedestal: Option<PedestalKind>,
    /// [`PEDESTAL_CONF`], unchecked.
    pub pedestal_conf: Option<String>,
    /// [`PEDESTAL_REMOTEPROC`].
    pub remoteproc: Option<String>,
    /// [`STATIC_RESOURCE`].
    pub static_resource: bool,
    /// [`VCPU_PCPU_BINDING`].
    pub vcpu_pcpu_binding: bool,
    /// [`ENABLE_VCPUS_PINNING`].
    pub enable_vcpus_pinning: bool,
    /// [`EXCLUSIVE_DOM0_CPU`].
    pub exclusive_dom0_cpu: bool,
    /// [`DEBUG`].
    pub debug: bool,
    /// [`PIPE_SIZE`], bytes.
    pub pipe_size: Option<u32>,
    /// [`DISABLE_NEW_NETNS`].
    pub disable_new_netns: bool,
    /// [`HUGEPAGE_ENABLE`].
    pub hugepage_enable: bool,
    /// [`CRI_CONTAINER_TYPE`].
    pub cri_container_type: Option<CriContainerType>,
    /// [`CRI_SANDBOX_ID`].
    pub cri_sandbox_id: Option<String>,
    /// One line per unknown key under [`PREFIX`], for the caller to log as a warning.
    pub warnings: Vec<String>,
}

/// A bad annotation value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    /// The value of `key` is not what the key takes.
    #[error("annotation {key}: invalid value {} (expected {expected})", crate::error::quote(.value))]
    Invalid {
        /// The annotation key.
        key: &'static str,
        /// The value as given.
        value: String,
        /// What the key takes.
        expected: String,
    },
}

impl Annotations {
    /// Parses the annotations of an OCI spec (none → [`Annotations::default`]).
    pub fn from_spec(spec: &crate::oci::Spec) -> Result<Annotations, AnnotationError> {
        match &spec.annotations {
            Some(map) => Self::parse(map),
            None => Ok(Self::default()),
        }
    }

    /// Parses an annotation map. Keys are visited in sorted order, so the first error and
    /// the order of warnings do not depend on hashing.
    pub fn parse(map: &HashMap<String, String>) -> Result<Annotations, AnnotationError> {
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        let mut out = Annotations::default();
        let mut auto_close = None;
        let mut auto_close_timeout = None;
        for key in keys {
            let raw = map[key].as_str();
            let value = raw.trim();
            let Some(known) = KNOWN_KEYS.iter().copied().find(|k| k == key) else {
                if key.starts_with(PREFIX) {
                    out.warnings.push(format!(
                        "unknown annotation {} ignored: micrun does not read it (check the spelling)",
                        crate::error::quote(key)
                    ));
                }
                continue;
            };
            if value.is_empty() {
                continue;
            }
            let invalid = |expected: &str| AnnotationError::Invalid {
                key: known,
                value: raw.to_owned(),
                expected: expected.to_owned(),
            };
            match known {
                OS => out.os = Some(value.to_owned()),
                BOARD => out.board = Some(value.to_owned()),
                FIRMWARE_PATH => out.firmware_path = Some(value.to_owned()),
                FIRMWARE_HASH => {
                    out.firmware_hash = Some(parse_sha256(value).ok_or_else(|| {
                        invalid("64 hex digits, optionally prefixed by \"sha256:\"")
                    })?)
                }
                FIRMWARE_KIND => {
                    out.image.kind =
                        Some(ImageKind::parse(value).ok_or_else(|| invalid("elf, raw or bios"))?)
                }
                FIRMWARE_LOAD_ADDRESS => {
                    out.image.load_address = Some(parse_address(value).ok_or_else(|| {
                        invalid("an address: 0x followed by hex digits (e.g. 0x40200000), or decimal digits")
                    })?)
                }
                FIRMWARE_ARCH => {
                    out.image.arch = Some(
                        Arch::parse(value)
                            .ok_or_else(|| invalid("aarch64, arm, riscv64, riscv32 or x86_64"))?,
                    )
                }
                MIN_MEMORY_MB => {
                    out.min_memory_mib = Some(parse_count(value).ok_or_else(|| invalid(COUNT_MIB))?)
                }
                MAX_VCPU_NUM => {
                    out.max_vcpus = Some(parse_count(value).ok_or_else(|| invalid(COUNT))?)
                }
                AUTO_CLOSE => auto_close = Some(parse_bool(value).ok_or_else(|| invalid(BOOL))?),
                AUTO_CLOSE_TIMEOUT => {
                    auto_close_timeout = Some(parse_duration(value).ok_or_else(|| {
                        invalid("a duration such as \"60s\", \"5m\" or integer seconds; 0 disables")
                    })?)
                }
                AGENT => {
                    out.agent = match value.to_ascii_lowercase().as_str() {
                        "auto" => AgentMode::Auto,
                        "on" => AgentMode::On,
                        "off" => AgentMode::Off,
                        _ => return Err(invalid("auto, on or off")),
                    }
                }
                PEDESTAL => {
                    out.pedestal = Some(
                        PedestalKind::parse(value)
                            .ok_or_else(|| invalid(&format!("one of {}", PedestalKind::NAMES)))?,
                    )
                }
                PEDESTAL_CONF => out.pedestal_conf = Some(value.to_owned()),
                PEDESTAL_REMOTEPROC => out.remoteproc = Some(value.to_owned()),
                PIPE_SIZE => {
                    out.pipe_size = Some(parse_count(value).ok_or_else(|| {
                        invalid(&format!("a whole number of bytes, 1 to {}", i32::MAX))
                    })?)
                }
                CRI_CONTAINER_TYPE => {
                    out.cri_container_type = Some(match value {
                        "sandbox" => CriContainerType::Sandbox,
                        "container" => CriContainerType::Container,
                        _ => return Err(invalid("sandbox or container")),
                    })
                }
                CRI_SANDBOX_ID => out.cri_sandbox_id = Some(value.to_owned()),
                _ => {
                    // The remaining keys are the booleans.
                    let flag = parse_bool(value).ok_or_else(|| invalid(BOOL))?;
                    if let Some(field) = out.flag_mut(known) {
                        *field = flag;
                    }
                }
            }
        }
        out.auto_close = match (auto_close_timeout, auto_close) {
            (Some(timeout), _) if timeout.is_zero() => None,
            (Some(timeout), _) => Some(timeout),
            (None, Some(true)) => Some(DEFAULT_AUTO_CLOSE_TIMEOUT),
            (None, _) => None,
        };
        Ok(out)
    }

    /// The field of a boolean key (`None` for the other keys).
    fn flag_mut(&mut self, key: &str) -> Option<&mut bool> {
        Some(match key {
            STATIC_RESOURCE => &mut self.static_resource,
            VCPU_PCPU_BINDING => &mut self.vcpu_pcpu_binding,
            ENABLE_VCPUS_PINNING => &mut self.enable_vcpus_pinning,
            EXCLUSIVE_DOM0_CPU => &mut self.exclusive_dom0_cpu,
            DEBUG => &mut self.debug,
            DISABLE_NEW_NETNS => &mut self.disable_new_netns,
            HUGEPAGE_ENABLE => &mut self.hugepage_enable,
            _ => return None,
        })
    }

    /// Whether this is a CRI pod sandbox (pause) container, which runs no RTOS.
    pub fn is_sandbox(&self) -> bool {
        self.cri_container_type == Some(CriContainerType::Sandbox)
    }
}

const BOOL: &str = "true or false (also 1/0, yes/no, on/off)";
const COUNT: &str = "a whole number, 1 to 2147483647";
const COUNT_MIB: &str = "a whole number of MiB, 1 to 2147483647";

/// Parses an address: `0x` (or `0X`) and 1 to 16 hex digits, or decimal digits that
/// fit 64 bits.
pub fn parse_address(text: &str) -> Option<u64> {
    let text = text.trim();
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            u64::from_str_radix(hex, 16).ok()
        }
        Some(_) => None,
        None if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => text.parse().ok(),
        None => None,
    }
}

/// Parses a boolean annotation value (see the module doc for the accepted words).
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "1" | "yes" | "on" => Some(true),
        "false" | "f" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Parses a count: decimal digits only, 1 to `i32::MAX`.
fn parse_count(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u32 = text.parse().ok()?;
    (1..=i32::MAX as u32).contains(&value).then_some(value)
}

/// Parses a sha256 digest: 64 hex digits in any case, optionally prefixed `sha256:`
/// (the prefix in any case too). Blanks around the text are ignored.
pub fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    let hex = match text.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("sha256:") => &text[7..],
        _ => text,
    };
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (out, pair) in digest.iter_mut().zip(bytes.chunks_exact(2)) {
        let high = (pair[0] as char).to_digit(16)?;
        let low = (pair[1] as char).to_digit(16)?;
        *out = (high * 16 + low) as u8;
    }
    Some(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<Annotations, AnnotationError> {
        Annotations::parse(&map(pairs))
    }

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn every_key_is_under_the_prefix_or_cri() {
        for key in KNOWN_KEYS {
            assert!(
                key.starts_with(PREFIX) || key.starts_with("io.kubernetes.cri."),
                "{key}"
            );
        }
        let mut sorted = KNOWN_KEYS.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), KNOWN_KEYS.len(), "duplicate key");
    }

    #[test]
    fn no_annotations_means_defaults() {
        let parsed = parse(&[]).unwrap();
        assert_eq!(parsed, Annotations::default());
        assert_eq!(parsed.agent, AgentMode::Auto);
        assert_eq!(parsed.auto_close, None);
        assert!(!parsed.is_sandbox());
    }

    #[test]
    fn every_key_is_read() {
        let parsed = parse(&[
            (OS, "zephyr"),
            (BOARD, "mps2-an386"),
            (FIRMWARE_PATH, "images/zephyr.elf"),
            (FIRMWARE_HASH, HASH),
            (FIRMWARE_KIND, "raw"),
            (FIRMWARE_LOAD_ADDRESS, "0x40200000"),
            (FIRMWARE_ARCH, "arm"),
            (MIN_MEMORY_MB, "48"),
            (MAX_VCPU_NUM, "4"),
            (AUTO_CLOSE, "true"),
            (AUTO_CLOSE_TIMEOUT, "60s"),
            (AGENT, "off"),
            (PEDESTAL, "xen"),
            (PEDESTAL_CONF, "boot/image.bin"),
            (PEDESTAL_REMOTEPROC, "remoteproc1"),
            (STATIC_RESOURCE, "true"),
            (VCPU_PCPU_BINDING, "1"),
            (ENABLE_VCPUS_PINNING, "yes"),
            (EXCLUSIVE_DOM0_CPU, "on"),
            (DEBUG, "TRUE"),
            (PIPE_SIZE, "65536"),
            (DISABLE_NEW_NETNS, "t"),
            (HUGEPAGE_ENABLE, "True"),
            (CRI_CONTAINER_TYPE, "container"),
            (CRI_SANDBOX_ID, "abc123"),
            ("io.kubernetes.cri.sandbox-name", "pod"),
        ])
        .unwrap();
        let mut digest = [0u8; 32];
        digest[..4].copy_from_slice(&[0x9f, 0x86, 0xd0, 0x81]);
        assert_eq!(parsed.firmware_hash.unwrap()[..4], digest[..4]);
        assert_eq!(parsed.firmware_hash.unwrap()[31], 0x08);
        assert_eq!(
            parsed,
            Annotations {
                os: Some("zephyr".into()),
                board: Some("mps2-an386".into()),
                firmware_path: Some("images/zephyr.elf".into()),
                firmware_hash: parsed.firmware_hash,
                image: ImageHints {
                    kind: Some(ImageKind::Raw),
                    load_address: Some(0x4020_0000),
                    arch: Some(Arch::Arm),
                },
                min_memory_mib: Some(48),
                max_vcpus: Some(4),
                auto_close: Some(Duration::from_secs(60)),
                agent: AgentMode::Off,
                pedestal: Some(PedestalKind::Xen),
                pedestal_conf: Some("boot/image.bin".into()),
                remoteproc: Some("remoteproc1".into()),
                static_resource: true,
                vcpu_pcpu_binding: true,
                enable_vcpus_pinning: true,
                exclusive_dom0_cpu: true,
                debug: true,
                pipe_size: Some(65536),
                disable_new_netns: true,
                hugepage_enable: true,
                cri_container_type: Some(CriContainerType::Container),
                cri_sandbox_id: Some("abc123".into()),
                warnings: Vec::new(),
            }
        );
    }

    #[test]
    fn booleans() {
        for (text, expected) in [
            ("true", Some(true)),
            ("TRUE", Some(true)),
            ("1", Some(true)),
            ("yes", Some(true)),
            ("On", Some(true)),
            ("t", Some(true)),
            ("false", Some(false)),
            ("0", Some(false)),
            ("No", Some(false)),
            ("off", Some(false)),
            ("F", Some(false)),
            ("2", None),
            ("enabled", None),
            ("y", None),
        ] {
            assert_eq!(parse_bool(text), expected, "{text}");
        }
        let err = parse(&[(DEBUG, "sure")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("annotation {DEBUG}: invalid value \"sure\" (expected {BOOL})")
        );
        // Every boolean key rejects a non-boolean.
        for key in [
            STATIC_RESOURCE,
            VCPU_PCPU_BINDING,
            ENABLE_VCPUS_PINNING,
            EXCLUSIVE_DOM0_CPU,
            DISABLE_NEW_NETNS,
            HUGEPAGE_ENABLE,
            AUTO_CLOSE,
        ] {
            let err = parse(&[(key, "maybe")]).unwrap_err();
            assert!(matches!(err, AnnotationError::Invalid { key: k, .. } if k == key));
        }
    }

    #[test]
    fn image_annotations() {
        for (text, want) in [
            ("0x40200000", Some(0x4020_0000)),
            ("0X0", Some(0)),
            (" 0xFFFFffffFFFFffff ", Some(u64::MAX)),
            ("1075838976", Some(0x4020_0000)),
            ("0x", None),
            ("0x1_0", None),
            ("0x10000000000000000", None),
            ("18446744073709551616", None),
            ("-1", None),
            ("40200000h", None),
            ("0o17", None),
        ] {
            assert_eq!(parse_address(text), want, "{text}");
        }
        let err = parse(&[(FIRMWARE_LOAD_ADDRESS, "0xg")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "annotation {FIRMWARE_LOAD_ADDRESS}: invalid value \"0xg\" (expected an \
                 address: 0x followed by hex digits (e.g. 0x40200000), or decimal digits)"
            )
        );
        let err = parse(&[(FIRMWARE_KIND, "uimage")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "annotation {FIRMWARE_KIND}: invalid value \"uimage\" (expected elf, raw or bios)"
            )
        );
        let err = parse(&[(FIRMWARE_ARCH, "mips")]).unwrap_err();
        assert!(err.to_string().contains("aarch64, arm, riscv64"), "{err}");
        assert_eq!(
            parse(&[(FIRMWARE_KIND, " bios ")]).unwrap().image.kind,
            Some(ImageKind::Bios)
        );
    }

    #[test]
    fn counts_reject_non_numeric_values() {
        for key in [MIN_MEMORY_MB, MAX_VCPU_NUM, PIPE_SIZE] {
            for bad in ["abc", "-1", "0", "1.5", "+4", "12MB", "0x10", "2147483648"] {
                let err = parse(&[(key, bad)]).unwrap_err();
                let message = err.to_string();
                assert!(
                    message.starts_with(&format!("annotation {key}: invalid value \"{bad}\"")),
                    "{message}"
                );
            }
        }
        let parsed = parse(&[(MIN_MEMORY_MB, " 64 "), (MAX_VCPU_NUM, "2147483647")]).unwrap();
        assert_eq!(parsed.min_memory_mib, Some(64));
        assert_eq!(parsed.max_vcpus, Some(i32::MAX as u32));
    }

    #[test]
    fn firmware_hash_forms() {
        let expected = parse_sha256(HASH).unwrap();
        for text in [
            HASH.to_string(),
            HASH.to_uppercase(),
            format!("sha256:{HASH}"),
            format!("SHA256:{}", HASH.to_uppercase()),
            format!("  {HASH}\n"),
        ] {
            assert_eq!(parse_sha256(&text), Some(expected), "{text}");
        }
        for bad in [
            &HASH[..63],
            &format!("{HASH}0"),
            &format!("sha512:{HASH}"),
            &format!("md5:{HASH}"),
            &HASH.replace('9', "g"),
            "sha256:",
            "é",
            &format!("{}é", &HASH[..62]),
        ] {
            assert_eq!(parse_sha256(bad), None, "{bad}");
            let err = parse(&[(FIRMWARE_HASH, bad)]).unwrap_err();
            assert!(err.to_string().contains("64 hex digits"), "{err}");
        }
    }

    #[test]
    fn auto_close_rules() {
        type Pairs = &'static [(&'static str, &'static str)];
        let cases: &[(Pairs, Option<Duration>)] = &[
            (&[], None),
            (&[(AUTO_CLOSE, "false")], None),
            (&[(AUTO_CLOSE, "true")], Some(DEFAULT_AUTO_CLOSE_TIMEOUT)),
            (
                &[(AUTO_CLOSE_TIMEOUT, "60s")],
                Some(Duration::from_secs(60)),
            ),
            (
                &[(AUTO_CLOSE_TIMEOUT, "5m")],
                Some(Duration::from_secs(300)),
            ),
            (&[(AUTO_CLOSE_TIMEOUT, "45")], Some(Duration::from_secs(45))),
            (&[(AUTO_CLOSE_TIMEOUT, "0")], None),
            // The timeout wins over auto_close, both ways.
            (&[(AUTO_CLOSE, "true"), (AUTO_CLOSE_TIMEOUT, "0")], None),
            (
                &[(AUTO_CLOSE, "false"), (AUTO_CLOSE_TIMEOUT, "10s")],
                Some(Duration::from_secs(10)),
            ),
            (
                &[(AUTO_CLOSE, "true"), (AUTO_CLOSE_TIMEOUT, "2m")],
                Some(Duration::from_secs(120)),
            ),
        ];
        for (pairs, expected) in cases {
            assert_eq!(parse(pairs).unwrap().auto_close, *expected, "{pairs:?}");
        }
        for bad in ["soon", "-5s", "1.5m", "60 s"] {
            let err = parse(&[(AUTO_CLOSE_TIMEOUT, bad)]).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with(&format!("annotation {AUTO_CLOSE_TIMEOUT}: invalid value")),
                "{err}"
            );
        }
    }

    #[test]
    fn agent_modes() {
        for (text, mode) in [
            ("auto", AgentMode::Auto),
            ("ON", AgentMode::On),
            ("off", AgentMode::Off),
        ] {
            assert_eq!(parse(&[(AGENT, text)]).unwrap().agent, mode);
            assert!(text.eq_ignore_ascii_case(&mode.to_string()));
        }
        let err = parse(&[(AGENT, "true")]).unwrap_err();
        assert!(err.to_string().contains("auto, on or off"), "{err}");
    }

    #[test]
    fn pedestal_names() {
        for kind in PedestalKind::ALL {
            assert_eq!(
                parse(&[(PEDESTAL, kind.name())]).unwrap().pedestal,
                Some(kind)
            );
        }
        let err = parse(&[(PEDESTAL, "kvm")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "annotation {PEDESTAL}: invalid value \"kvm\" (expected one of qemu, sim, xen, baremetal)"
            )
        );
    }

    #[test]
    fn cri_keys() {
        let parsed = parse(&[(CRI_CONTAINER_TYPE, "sandbox"), (CRI_SANDBOX_ID, "pod1")]).unwrap();
        assert!(parsed.is_sandbox());
        assert_eq!(parsed.cri_sandbox_id.as_deref(), Some("pod1"));
        assert!(parsed.warnings.is_empty());
        assert!(parse(&[(CRI_CONTAINER_TYPE, "pause")]).is_err());
    }

    #[test]
    fn unknown_keys_under_the_prefix_warn() {
        let parsed = parse(&[
            ("org.openeuler.micrun.container.firmware_pth", "x.elf"),
            ("org.openeuler.micrun.runtime.experimental", "true"),
            ("io.kubernetes.cri.image-name", "demo"),
            ("org.opencontainers.image.title", "demo"),
            (OS, "zephyr"),
        ])
        .unwrap();
        assert_eq!(parsed.os.as_deref(), Some("zephyr"));
        assert_eq!(
            parsed.warnings,
            [
                "unknown annotation \"org.openeuler.micrun.container.firmware_pth\" ignored: micrun does not read it (check the spelling)",
                "unknown annotation \"org.openeuler.micrun.runtime.experimental\" ignored: micrun does not read it (check the spelling)",
            ]
        );
    }

    #[test]
    fn features_list_every_micrun_annotation() {
        let doc: serde_json::Value = serde_json::from_str(&runtime_features_json()).unwrap();
        let listed: Vec<&str> = doc["potentiallyUnsafeConfigAnnotations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(
            listed.len(),
            KNOWN_KEYS.len() - 2,
            "all but the two CRI keys"
        );
        assert!(listed.contains(&AGENT) && listed.contains(&PEDESTAL));
        assert_eq!(
            doc["annotations"]["org.openeuler.micrun.pedestals"],
            "qemu,sim,xen,baremetal"
        );
        assert!(doc["annotations"]["org.openeuler.micrun.protocol.version"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}.", micrun_proto::PROTOCOL_VERSION.major)));
    }

    /// A 10 KB value (or key) makes a message of a few hundred bytes, not 10 KB.
    #[test]
    fn long_values_are_quoted_short() {
        let huge = "9".repeat(10 * 1024);
        let err = parse(&[(MAX_VCPU_NUM, &huge)]).unwrap_err().to_string();
        assert!(err.len() < 400, "{} bytes: {err}", err.len());
        assert!(
            err.starts_with(&format!("annotation {MAX_VCPU_NUM}: invalid value \"999")),
            "{err}"
        );
        assert!(err.contains("…\" (10240 bytes in all) (expected "), "{err}");
        let key = format!("{PREFIX}{}", "k".repeat(10 * 1024));
        let parsed = parse(&[(&key, "1")]).unwrap();
        assert!(parsed.warnings[0].len() < 400, "{}", parsed.warnings[0]);
    }

    #[test]
    fn empty_values_count_as_unset() {
        let parsed = parse(&[
            (FIRMWARE_PATH, ""),
            (MIN_MEMORY_MB, "  "),
            (DEBUG, ""),
            (PEDESTAL, ""),
        ])
        .unwrap();
        assert_eq!(parsed, Annotations::default());
    }

    #[test]
    fn from_spec_reads_the_annotations() {
        let mut spec = crate::oci::Spec::default();
        assert_eq!(
            Annotations::from_spec(&spec).unwrap(),
            Annotations::default()
        );
        spec.annotations = Some(map(&[(MAX_VCPU_NUM, "2")]));
        assert_eq!(Annotations::from_spec(&spec).unwrap().max_vcpus, Some(2));
    }
}
