//! The firmware image convention: which firmware of an image runs on this host.
//!
//! An RTOS image made by `micrun image pack` (docs/images.md) carries one or more
//! firmware files, each built for one tuple **[board, os, arch, pedestal]**, and an
//! index of them at [`INDEX_PATH`] in its root filesystem:
//!
//! ```json
//! {"schemaVersion":1,"firmware":[{"board":"qemu-virt","os":"zephyr","arch":"aarch64",
//!   "pedestal":"qemu","path":"micrun/qemu/qemu-virt/zephyr-aarch64/zephyr.elf",
//!   "sha256":"…","size":123456,"annotations":{"org.openeuler.micrun.container.agent":"on"}}]}
//! ```
//!
//! At Create the shim reads the index (when the container names no firmware path) and
//! [`select`]s the entry for the pedestal in use and this host's board; the entry's
//! annotations are defaults under the container's own, and its sha256 is checked.
//! Images without an index (`FROM scratch` + `COPY firmware.elf /`) are resolved as
//! before by [`crate::firmware::resolve_firmware`].
//!
//! The board of the host ([`HostBoard`]) matters only for the hardware pedestals
//! (`xen`, `baremetal`), whose firmware runs on the host's own cores: the `board`
//! setting of the config, else the device tree's `compatible` strings (most specific
//! first). Firmware for `qemu` and `sim` runs on an emulated or host-process "board"
//! that does not depend on the hardware, so for them the host's board is not asked.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{Config, PedestalKind};
use crate::firmware::Arch;

/// Where the index lies in the image's root filesystem (relative to it).
pub const INDEX_PATH: &str = "micrun/firmware.json";

/// The index format this code writes and reads.
pub const INDEX_SCHEMA: u32 = 1;

/// Image label (config `Labels`) and manifest annotation: the firmware the image
/// carries, as compact JSON `[{"board":…,"os":…,"arch":…,"pedestal":…,"sha256":…}]`.
pub const LABEL_FIRMWARE: &str = "org.openeuler.micrun.image.firmware";

/// Image label and manifest annotation: the tuples, `board/os/arch/pedestal`
/// separated by `,`, for people and `grep`.
pub const LABEL_TUPLES: &str = "org.openeuler.micrun.image.tuples";

/// Image label and manifest annotation: the index format ([`INDEX_SCHEMA`]).
pub const LABEL_SCHEMA: &str = "org.openeuler.micrun.image.schema";

/// The annotations an index entry may not set: the tuple and the pack step decide them.
pub const RESERVED_ANNOTATIONS: [&str; 4] = [
    crate::annotations::PEDESTAL,
    crate::annotations::BOARD,
    crate::annotations::FIRMWARE_PATH,
    crate::annotations::FIRMWARE_HASH,
];

/// The index file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmwareIndex {
    /// [`INDEX_SCHEMA`].
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// The firmware, in the order they were packed.
    pub firmware: Vec<FirmwareEntry>,
}

/// One firmware of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmwareEntry {
    /// The board it is built for (a device-tree `compatible` string, or a name the
    /// host's config gives as `board`).
    pub board: String,
    /// The RTOS (`zephyr`, `uniproton`, …).
    pub os: String,
    /// The CPU architecture ([`Arch::name`]).
    pub arch: String,
    /// The pedestal it runs on.
    pub pedestal: PedestalKind,
    /// The file, relative to the rootfs.
    pub path: String,
    /// sha256 of the file, hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// The Xen boot image, relative to the rootfs (becomes the default of
    /// `org.openeuler.micrun.ped.conf`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_image: Option<String>,
    /// Default annotations, under the container's own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl FirmwareEntry {
    /// `board/os/arch/pedestal`.
    pub fn tuple(&self) -> String {
        format!("{}/{}/{}/{}", self.board, self.os, self.arch, self.pedestal)
    }
}

/// What the host is, for [`select`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The pedestal in use.
    pub pedestal: PedestalKind,
    /// The architectures it runs, its default first.
    pub archs: Vec<Arch>,
    /// The board (asked only for the hardware pedestals).
    pub board: HostBoard,
    /// The container's `org.openeuler.micrun.container.os`, if set: only firmware for
    /// that RTOS fit.
    pub os: Option<String>,
}

/// What the host's board is and where that was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostBoard {
    /// The config's `board` setting (and the config file, if any).
    Configured(String, Option<PathBuf>),
    /// The device tree's `compatible` strings, most specific first, and the file.
    Compatible(Vec<String>, PathBuf),
    /// Neither: no `board` setting and no readable device tree at the path.
    Unknown(PathBuf),
}

impl HostBoard {
    /// The board of this host: `[board] name`, else the strings of the file
    /// `[board] compatible` (NUL-separated, as the kernel writes them).
    pub fn of(config: &Config) -> HostBoard {
        let board = config.board.name.trim();
        if !board.is_empty() {
            return HostBoard::Configured(board.to_owned(), config.origin.clone());
        }
        let path = config.board.compatible.clone();
        match fs::read(&path) {
            Ok(bytes) => {
                let names: Vec<String> = bytes
                    .split(|b| *b == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| String::from_utf8_lossy(s).trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect();
                if names.is_empty() {
                    HostBoard::Unknown(path)
                } else {
                    HostBoard::Compatible(names, path)
                }
            }
            Err(_) => HostBoard::Unknown(path),
        }
    }
}

impl fmt::Display for HostBoard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Configured(board, Some(origin)) => {
                write!(f, "board {board:?} ([board] name in {})", origin.display())
            }
            Self::Configured(board, None) => write!(f, "board {board:?} (configured)"),
            Self::Compatible(names, path) => {
                write!(f, "board compatible with ")?;
                for (i, n) in names.iter().enumerate() {
                    write!(f, "{}{n:?}", if i > 0 { ", " } else { "" })?;
                }
                write!(f, " ({})", path.display())
            }
            Self::Unknown(path) => write!(
                f,
                "board unknown (no [board] name in the micrun config, no device tree at {})",
                path.display()
            ),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let archs: Vec<&str> = self.archs.iter().map(|a| a.name()).collect();
        write!(f, "pedestal {} (runs {})", self.pedestal, archs.join(", "))?;
        if uses_board(self.pedestal) {
            write!(f, ", {}", self.board)?;
        }
        if let Some(os) = &self.os {
            write!(f, ", os {os:?} (annotation {})", crate::annotations::OS)?;
        }
        Ok(())
    }
}

/// Whether firmware for `pedestal` runs on the host's own board (so the board must fit).
pub fn uses_board(pedestal: PedestalKind) -> bool {
    matches!(pedestal, PedestalKind::Xen | PedestalKind::Baremetal)
}

/// Why the index cannot be read or nothing in it fits.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The index exists but cannot be read.
    #[error("cannot read the image's firmware index {}: {source}", .path.display())]
    Read {
        /// The index file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The index does not parse or is of an unknown format.
    #[error("the image's firmware index {} is not valid: {reason}; repack the image with `micrun image pack`", .path.display())]
    Invalid {
        /// The index file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No firmware fits this host.
    #[error("no firmware in this image fits this host: the image offers {offers}; this host is {host}; {hint}")]
    NoneFits {
        /// The tuples the image offers.
        offers: String,
        /// What the host is.
        host: String,
        /// What to do.
        hint: String,
    },
    /// The firmware's bytes are not the ones the index recorded at packing.
    #[error("the image's firmware {path} has sha256 {actual}, but the image's firmware index ({INDEX_PATH}) lists {expected}: the file was changed after packing; pack the image again with `micrun image pack`")]
    FirmwareChanged {
        /// The firmware's path in the image (as the index names it).
        path: String,
        /// The digest the index lists, hex.
        expected: String,
        /// The digest of the file, hex.
        actual: String,
    },
    /// Several firmware fit and nothing tells them apart.
    #[error("several firmware in this image fit this host ({fits}); this host is {host}; choose one with annotation {} (e.g. {:?}) or set [board] name in the micrun config", crate::annotations::FIRMWARE_PATH, .example)]
    Ambiguous {
        /// The tuples that fit.
        fits: String,
        /// What the host is.
        host: String,
        /// A path to suggest.
        example: String,
    },
}

/// Reads the index of the image whose root filesystem is `rootfs`; `Ok(None)` when
/// it has none (a plain image).
pub fn read_index(rootfs: &Path) -> Result<Option<FirmwareIndex>, ImageError> {
    let path = rootfs.join(INDEX_PATH);
    // Only a regular file counts: the index is written by pack, never a link.
    match fs::symlink_metadata(&path) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ImageError::Read { path, source }),
        Ok(m) if !m.file_type().is_file() => {
            return Err(ImageError::Invalid {
                path,
                reason: "it is not a regular file".to_owned(),
            })
        }
        Ok(_) => {}
    }
    let bytes = fs::read(&path).map_err(|source| ImageError::Read {
        path: path.clone(),
        source,
    })?;
    parse_index(&bytes)
        .map(Some)
        .map_err(|reason| ImageError::Invalid { path, reason })
}

/// Parses index bytes and checks the format.
pub fn parse_index(bytes: &[u8]) -> Result<FirmwareIndex, String> {
    let index: FirmwareIndex = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if index.schema_version != INDEX_SCHEMA {
        return Err(format!(
            "schemaVersion {} (this micrun reads {INDEX_SCHEMA})",
            index.schema_version
        ));
    }
    if index.firmware.is_empty() {
        return Err("it lists no firmware".to_owned());
    }
    Ok(index)
}

/// The tuples of `entries`, for messages.
pub fn tuple_list<'a>(entries: impl IntoIterator<Item = &'a FirmwareEntry>) -> String {
    let list: Vec<String> = entries.into_iter().map(FirmwareEntry::tuple).collect();
    if list.is_empty() {
        "nothing".to_owned()
    } else {
        list.join(", ")
    }
}

/// The firmware of `index` for `host`:
///
/// 1. entries for the pedestal in use, of an architecture it runs, of the container's
///    os when the annotation names one;
/// 2. for `xen` and `baremetal`, the board: the configured board must match exactly;
///    else the first device-tree `compatible` string any entry is for; else, with no
///    match, the only entry left (a board name the device tree does not spell);
/// 3. if several remain, those for the pedestal's default architecture; still several
///    is [`ImageError::Ambiguous`].
pub fn select<'a>(index: &'a FirmwareIndex, host: &Host) -> Result<&'a FirmwareEntry, ImageError> {
    let none_fits = |hint: String| ImageError::NoneFits {
        offers: tuple_list(&index.firmware),
        host: host.to_string(),
        hint,
    };
    let mut fits: Vec<&FirmwareEntry> = index
        .firmware
        .iter()
        .filter(|e| e.pedestal == host.pedestal)
        .filter(|e| Arch::parse(&e.arch).is_some_and(|a| host.archs.contains(&a)))
        .filter(|e| host.os.as_ref().is_none_or(|os| *os == e.os))
        .collect();
    if fits.is_empty() {
        return Err(none_fits(format!(
            "use an image with firmware for pedestal {}, or run this one on the pedestal it \
             was packed for (annotation {})",
            host.pedestal,
            crate::annotations::PEDESTAL
        )));
    }
    if uses_board(host.pedestal) {
        match &host.board {
            HostBoard::Configured(board, _) => {
                fits.retain(|e| e.board == *board);
                if fits.is_empty() {
                    return Err(none_fits(format!(
                        "use an image packed for board {board:?}, or fix [board] name in the micrun config"
                    )));
                }
            }
            HostBoard::Compatible(names, _) => {
                if let Some(name) = names.iter().find(|n| fits.iter().any(|e| e.board == **n)) {
                    fits.retain(|e| e.board == *name);
                } else if fits.len() > 1 {
                    return Err(none_fits(
                        "no firmware is for a board the device tree names; set [board] name in \
                         the micrun config to one the image offers"
                            .to_owned(),
                    ));
                }
            }
            HostBoard::Unknown(_) => {}
        }
    }
    if fits.len() > 1 {
        let default = host.archs[0].name();
        if fits.iter().any(|e| e.arch == default) {
            fits.retain(|e| e.arch == default);
        }
    }
    match fits.as_slice() {
        [one] => Ok(one),
        _ => Err(ImageError::Ambiguous {
            fits: tuple_list(fits.iter().copied()),
            host: host.to_string(),
            example: fits[0].path.clone(),
        }),
    }
}

/// The container's annotations with `entry`'s defaults under them (the container's
/// own win; [`RESERVED_ANNOTATIONS`] and keys outside micrun's are not taken from the
/// image), the entry's board as the default of `container.board`, and the boot
/// image as the default of `ped.conf`.
pub fn with_defaults(
    container: &std::collections::HashMap<String, String>,
    entry: &FirmwareEntry,
) -> std::collections::HashMap<String, String> {
    let mut out = container.clone();
    for (key, value) in &entry.annotations {
        if key.starts_with(crate::annotations::PREFIX)
            && !RESERVED_ANNOTATIONS.contains(&key.as_str())
        {
            out.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    out.entry(crate::annotations::BOARD.to_owned())
        .or_insert_with(|| entry.board.clone());
    if let Some(boot) = &entry.boot_image {
        out.entry(crate::annotations::PEDESTAL_CONF.to_owned())
            .or_insert_with(|| boot.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(board: &str, os: &str, arch: &str, pedestal: PedestalKind) -> FirmwareEntry {
        FirmwareEntry {
            board: board.into(),
            os: os.into(),
            arch: arch.into(),
            pedestal,
            path: format!("micrun/{pedestal}/{board}/{os}-{arch}/firmware.elf"),
            sha256: "00".repeat(32),
            size: 1,
            boot_image: None,
            annotations: BTreeMap::new(),
        }
    }

    fn index(entries: Vec<FirmwareEntry>) -> FirmwareIndex {
        FirmwareIndex {
            schema_version: INDEX_SCHEMA,
            firmware: entries,
        }
    }

    fn host(pedestal: PedestalKind, board: HostBoard) -> Host {
        Host {
            pedestal,
            archs: vec![Arch::Aarch64, Arch::Arm],
            board,
            os: None,
        }
    }

    use PedestalKind::{Baremetal, Qemu, Xen};

    #[test]
    fn configured_board_picks_and_refuses_with_the_list() {
        let idx = index(vec![
            entry("rk3588", "zephyr", "aarch64", Baremetal),
            entry("imx8mp", "zephyr", "aarch64", Baremetal),
            entry("qemu-virt", "zephyr", "aarch64", Qemu),
        ]);
        let h = host(Baremetal, HostBoard::Configured("imx8mp".into(), None));
        assert_eq!(select(&idx, &h).unwrap().board, "imx8mp");
        let h = host(Baremetal, HostBoard::Configured("rpi4".into(), None));
        let msg = select(&idx, &h).unwrap_err().to_string();
        assert!(msg.contains("rk3588/zephyr/aarch64/baremetal, imx8mp/zephyr/aarch64/baremetal, qemu-virt/zephyr/aarch64/qemu"), "{msg}");
        assert!(msg.contains("board \"rpi4\""), "{msg}");
    }

    #[test]
    fn device_tree_most_specific_first_then_the_only_one() {
        let idx = index(vec![
            entry("brcm,bcm2711", "zephyr", "aarch64", Xen),
            entry("raspberrypi,4-model-b", "zephyr", "aarch64", Xen),
        ]);
        let dt = |names: &[&str]| {
            HostBoard::Compatible(
                names.iter().map(|s| s.to_string()).collect(),
                "/proc/device-tree/compatible".into(),
            )
        };
        let h = host(Xen, dt(&["raspberrypi,4-model-b", "brcm,bcm2711"]));
        assert_eq!(select(&idx, &h).unwrap().board, "raspberrypi,4-model-b");
        let h = host(Xen, dt(&["other", "brcm,bcm2711"]));
        assert_eq!(select(&idx, &h).unwrap().board, "brcm,bcm2711");
        // No match and two candidates: refused; one candidate: taken.
        let h = host(Xen, dt(&["other"]));
        assert!(matches!(select(&idx, &h), Err(ImageError::NoneFits { .. })));
        let one = index(vec![entry("rk3588", "zephyr", "aarch64", Xen)]);
        assert_eq!(select(&one, &h).unwrap().board, "rk3588");
    }

    #[test]
    fn qemu_ignores_the_host_board_and_prefers_the_default_arch() {
        let idx = index(vec![
            entry("qemu-virt", "zephyr", "arm", Qemu),
            entry("qemu-virt", "zephyr", "aarch64", Qemu),
        ]);
        let h = host(Qemu, HostBoard::Configured("rk3588".into(), None));
        assert_eq!(select(&idx, &h).unwrap().arch, "aarch64");
        let two = index(vec![
            entry("qemu-virt", "zephyr", "aarch64", Qemu),
            entry("qemu-virt", "uniproton", "aarch64", Qemu),
        ]);
        assert!(matches!(
            select(&two, &h),
            Err(ImageError::Ambiguous { .. })
        ));
        let mut h = h;
        h.os = Some("uniproton".into());
        assert_eq!(select(&two, &h).unwrap().os, "uniproton");
        h.pedestal = Xen;
        let msg = select(&two, &h).unwrap_err().to_string();
        assert!(msg.contains("pedestal xen"), "{msg}");
    }

    #[test]
    fn defaults_stay_under_the_container_and_skip_reserved_keys() {
        let mut e = entry("b", "o", "aarch64", Xen);
        e.annotations
            .insert(crate::annotations::AGENT.into(), "on".into());
        e.annotations
            .insert(crate::annotations::MIN_MEMORY_MB.into(), "64".into());
        e.annotations
            .insert(crate::annotations::PEDESTAL.into(), "qemu".into());
        e.boot_image = Some("micrun/xen/b/o-aarch64/image.bin".into());
        let mut c = std::collections::HashMap::new();
        c.insert(crate::annotations::AGENT.to_owned(), "off".to_owned());
        let out = with_defaults(&c, &e);
        assert_eq!(out[crate::annotations::AGENT], "off");
        assert_eq!(out[crate::annotations::MIN_MEMORY_MB], "64");
        assert!(!out.contains_key(crate::annotations::PEDESTAL));
        assert_eq!(
            out[crate::annotations::PEDESTAL_CONF],
            "micrun/xen/b/o-aarch64/image.bin"
        );
    }

    #[test]
    fn host_board_from_the_config_else_the_device_tree() {
        let dir = std::env::temp_dir().join(format!("micrun-board-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let dt = dir.join("compatible");
        fs::write(&dt, b"raspberrypi,4-model-b\0brcm,bcm2711\0").unwrap();
        let mut config = Config::default();
        config.board.compatible = dt.clone();
        assert_eq!(
            HostBoard::of(&config),
            HostBoard::Compatible(
                vec!["raspberrypi,4-model-b".into(), "brcm,bcm2711".into()],
                dt.clone()
            )
        );
        config.board.name = " rk3588 ".into();
        assert_eq!(
            HostBoard::of(&config),
            HostBoard::Configured("rk3588".into(), None)
        );
        config.board.name.clear();
        config.board.compatible = dir.join("absent");
        assert_eq!(
            HostBoard::of(&config),
            HostBoard::Unknown(dir.join("absent"))
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn index_format_is_checked() {
        assert!(parse_index(b"{}").is_err());
        assert!(parse_index(br#"{"schemaVersion":2,"firmware":[]}"#)
            .unwrap_err()
            .contains("schemaVersion 2"));
        assert!(parse_index(br#"{"schemaVersion":1,"firmware":[]}"#).is_err());
    }
}
