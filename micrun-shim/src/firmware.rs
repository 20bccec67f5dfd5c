//! Finding and checking the firmware in a container's rootfs.
//!
//! The rules (reference/mica.md, `container.firmware_path` and `container.firmware_hash`):
//!
//! 1. Which file: the `org.openeuler.micrun.container.firmware_path` annotation, relative
//!    to the rootfs; else `firmware.elf`; else the first `*.elf` in the rootfs's top
//!    directory in byte order of the names (deterministic). If the chosen candidate is
//!    unusable that is an error: micrun never falls through to another file silently.
//! 2. It must stay inside the rootfs. An absolute path or a `..` component is refused
//!    before the filesystem is touched; then the path is canonicalized and must lie under
//!    the canonical rootfs, which catches symlinks (and symlinked directories) leading
//!    out. Symlinks resolve on the host, so an absolute symlink target points outside the
//!    rootfs and is refused: images should use relative links.
//! 3. It must be a regular file, and an ELF executable (`ET_EXEC`, or `ET_DYN` for
//!    position-independent host builds run by the sim pedestal), little-endian, for an
//!    architecture the pedestal runs ([`validate_elf`] reads only the header) — unless
//!    it is an image that is not an ELF, which only pedestals that can load one accept
//!    (qemu): see [`inspect`] for how its kind is decided and what is checked.
//! 4. With `container.firmware_hash` set, its sha256 must match ([`verify_hash`], streamed).
//!
//! Nothing here panics on file content: short, empty, huge files, directories, dangling
//! symlinks and unreadable files all come back as [`FirmwareError`]s. Special files are
//! refused by a metadata check before they are opened (opening a FIFO would block).

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::annotations::{FIRMWARE_HASH, FIRMWARE_KIND, FIRMWARE_LOAD_ADDRESS, FIRMWARE_PATH};

/// The firmware file looked for when no annotation names one.
pub const DEFAULT_FIRMWARE: &str = "firmware.elf";

/// What [`resolve_firmware`] calls the file it resolves, in messages.
const FIRMWARE: &str = "firmware";

/// A CPU architecture a pedestal runs firmware for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// 64-bit Arm (ELF machine 183).
    Aarch64,
    /// 32-bit Arm (ELF machine 40).
    Arm,
    /// 64-bit RISC-V (ELF machine 243, class 64).
    Riscv64,
    /// 32-bit RISC-V (ELF machine 243, class 32).
    Riscv32,
    /// x86-64 (ELF machine 62).
    X86_64,
}

impl Arch {
    /// The architecture this program was built for (what the sim pedestal runs), if it is
    /// one of the supported ones.
    pub fn host() -> Option<Arch> {
        if cfg!(target_arch = "aarch64") {
            Some(Self::Aarch64)
        } else if cfg!(target_arch = "arm") {
            Some(Self::Arm)
        } else if cfg!(target_arch = "riscv64") {
            Some(Self::Riscv64)
        } else if cfg!(target_arch = "riscv32") {
            Some(Self::Riscv32)
        } else if cfg!(target_arch = "x86_64") {
            Some(Self::X86_64)
        } else {
            None
        }
    }

    /// The architecture's name: `aarch64`, `arm`, `riscv64`, `riscv32`, `x86_64`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Aarch64 => "aarch64",
            Self::Arm => "arm",
            Self::Riscv64 => "riscv64",
            Self::Riscv32 => "riscv32",
            Self::X86_64 => "x86_64",
        }
    }

    /// Parses a name: [`Arch::name`]'s, or the OCI platform names `arm64` and `amd64`.
    pub fn parse(text: &str) -> Option<Arch> {
        match text.trim() {
            "aarch64" | "arm64" => Some(Self::Aarch64),
            "arm" => Some(Self::Arm),
            "riscv64" => Some(Self::Riscv64),
            "riscv32" => Some(Self::Riscv32),
            "x86_64" | "amd64" => Some(Self::X86_64),
            _ => None,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The ELF class: the width of the header's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfClass {
    /// ELFCLASS32.
    Elf32,
    /// ELFCLASS64.
    Elf64,
}

/// The kinds of ELF file accepted as firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfKind {
    /// `ET_EXEC`: a fixed-address executable, what RTOS builds produce.
    Executable,
    /// `ET_DYN`: a position-independent executable (host builds for the sim pedestal).
    PositionIndependent,
}

/// What [`validate_elf`] read from the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElfInfo {
    /// The architecture.
    pub arch: Arch,
    /// 32 or 64 bit.
    pub class: ElfClass,
    /// Executable or position-independent.
    pub kind: ElfKind,
    /// The entry point address.
    pub entry: u64,
}

/// Why the firmware cannot be used. Each message names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum FirmwareError {
    /// The rootfs itself cannot be read.
    #[error("cannot read the container rootfs {}: {source}", .rootfs.display())]
    Rootfs {
        /// The rootfs.
        rootfs: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// No candidate file exists.
    #[error("no firmware: looked for {DEFAULT_FIRMWARE} and *.elf in {}; put the firmware there or set {FIRMWARE_PATH}", .rootfs.display())]
    NoFirmware {
        /// The rootfs searched.
        rootfs: PathBuf,
    },
    /// The path is absolute.
    #[error("{what} path {path:?} is absolute; give it relative to the container rootfs (e.g. {:?})", .path.trim_start_matches('/'))]
    AbsolutePath {
        /// What the path is for (`firmware`, `pedestal config`, …).
        what: &'static str,
        /// The path as given.
        path: String,
    },
    /// The path has a `..` component.
    #[error("{what} path {path:?} contains \"..\"; it must stay inside the container rootfs")]
    ParentComponent {
        /// What the path is for.
        what: &'static str,
        /// The path as given.
        path: String,
    },
    /// The path is empty.
    #[error("{what} path is empty; give a path relative to the container rootfs")]
    EmptyPath {
        /// What the path is for.
        what: &'static str,
    },
    /// Nothing exists at the path (or a symlink on it dangles).
    #[error("{what} {path:?} not found in the container rootfs {} (or it is a dangling symlink)", .rootfs.display())]
    NotFound {
        /// What the path is for.
        what: &'static str,
        /// The path as given.
        path: String,
        /// The rootfs.
        rootfs: PathBuf,
    },
    /// The path resolves outside the rootfs.
    #[error("{what} {path:?} resolves to {}, outside the container rootfs {}; a symlink leads out of the image (use relative links that stay inside it)", .target.display(), .rootfs.display())]
    Escapes {
        /// What the path is for.
        what: &'static str,
        /// The path as given.
        path: String,
        /// Where it resolved.
        target: PathBuf,
        /// The canonical rootfs.
        rootfs: PathBuf,
    },
    /// The path is not a regular file.
    #[error("{} is {kind}, not a regular file", .path.display())]
    NotRegularFile {
        /// The file.
        path: PathBuf,
        /// What it is instead ("a directory", …).
        kind: &'static str,
    },
    /// Reading the file failed.
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The file does not start with the ELF magic.
    #[error("{} is not an ELF file ({found}); {}", .path.display(), if *.other_kinds {
        "for a raw binary give its load address in annotation org.openeuler.micrun.container.firmware_load_address, for a UEFI/-bios image set org.openeuler.micrun.container.firmware_kind=bios"
    } else {
        "the firmware must be a linked ELF image"
    })]
    NotElf {
        /// The file.
        path: PathBuf,
        /// What it starts with.
        found: String,
        /// Whether the pedestal also boots raw and bios images (the message says how).
        other_kinds: bool,
    },
    /// An image that is not an ELF, for a pedestal that boots only ELFs.
    #[error("{} is a {kind} image ({FIRMWARE_KIND}); pedestal {pedestal} boots ELF firmware only (raw and bios images run on the qemu pedestal)", .path.display())]
    ElfOnly {
        /// The file.
        path: PathBuf,
        /// The kind asked for.
        kind: ImageKind,
        /// The pedestal's name.
        pedestal: String,
    },
    /// An image that is not an ELF cannot be used as it is described.
    #[error("{}: {reason}", .path.display())]
    BadImage {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The file is an ELF, but not one a pedestal can boot.
    #[error("{} is not a usable ELF firmware: {reason}", .path.display())]
    BadElf {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The firmware is for another architecture.
    #[error("{} is {} for {found}, but the pedestal runs {expected}; use a firmware built for {expected}", .path.display(), if *.elf { "an ELF" } else { "an image" })]
    WrongArch {
        /// The file.
        path: PathBuf,
        /// Whether the architecture was read from an ELF header (else it was given
        /// by annotation for a raw or bios image).
        elf: bool,
        /// The architecture found (a name, or the raw machine number).
        found: String,
        /// The architectures the pedestal runs (`aarch64`, `aarch64, arm or riscv64`).
        expected: String,
    },
    /// The sha256 differs from the annotation's.
    #[error("{} has sha256 {actual}, but {FIRMWARE_HASH} expects {expected}; the image and the annotation disagree", .path.display())]
    HashMismatch {
        /// The file.
        path: PathBuf,
        /// The digest expected, hex.
        expected: String,
        /// The digest found, hex.
        actual: String,
    },
}

/// How a pedestal boots a firmware file (annotation [`FIRMWARE_KIND`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// An ELF executable: loaded by its program headers, entered at its entry point.
    Elf,
    /// A raw binary: copied to memory at its load address and entered there.
    Raw,
    /// A firmware image for the machine's boot flash (QEMU `-bios`), e.g. UEFI.
    Bios,
}

impl ImageKind {
    /// `elf`, `raw`, `bios`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Elf => "elf",
            Self::Raw => "raw",
            Self::Bios => "bios",
        }
    }

    /// Parses [`ImageKind::name`]'s names.
    pub fn parse(text: &str) -> Option<ImageKind> {
        match text.trim() {
            "elf" => Some(Self::Elf),
            "raw" => Some(Self::Raw),
            "bios" => Some(Self::Bios),
            _ => None,
        }
    }
}

impl fmt::Display for ImageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the container's annotations say about its firmware image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImageHints {
    /// [`FIRMWARE_KIND`].
    pub kind: Option<ImageKind>,
    /// [`FIRMWARE_LOAD_ADDRESS`].
    pub load_address: Option<u64>,
    /// `container.firmware_arch`: the architecture of an image that is not an ELF.
    pub arch: Option<Arch>,
}

/// How the firmware is booted, with what was read or given for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// An ELF; its header.
    Elf(ElfInfo),
    /// A raw binary loaded and entered at `load_address`.
    Raw {
        /// Where it is loaded and entered.
        load_address: u64,
    },
    /// A boot-flash image (`-bios`).
    Bios,
}

/// A firmware file a pedestal can boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirmwareImage {
    /// What it is built for.
    pub arch: Arch,
    /// How it is booted.
    pub format: ImageFormat,
    /// Its size in bytes.
    pub size: u64,
}

impl FirmwareImage {
    /// Its kind.
    pub fn kind(&self) -> ImageKind {
        match self.format {
            ImageFormat::Elf(_) => ImageKind::Elf,
            ImageFormat::Raw { .. } => ImageKind::Raw,
            ImageFormat::Bios => ImageKind::Bios,
        }
    }
}

/// The names of `archs` for a message: `aarch64`, `aarch64 or arm`, `aarch64, arm or riscv64`.
fn arch_list(archs: &[Arch]) -> String {
    let names: Vec<&str> = archs.iter().map(|a| a.name()).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => (*last).to_owned(),
        None => "nothing".to_owned(),
    }
}

/// Reads the firmware at `path` and checks that a pedestal running `archs` (the first
/// is its default) can boot it; `pedestal` names it in messages and `other_kinds` says
/// whether it boots images that are not ELFs.
///
/// The kind is [`ImageHints::kind`] when given; else an ELF when the file starts with
/// the ELF magic; else `raw` when a load address is given; else `bios` for a file
/// named `*.fd` (EDK2's images); else it is refused as not an ELF, saying how to
/// describe another kind.
///
/// Checked: an ELF as by [`validate_elf`] (its machine among `archs`; the arch
/// annotation is not used). An image that is not an ELF: not empty; its architecture
/// ([`ImageHints::arch`], else the pedestal's default) among `archs`; a raw image
/// needs a load address (whether it fits the memory is the pedestal's check); a load
/// address is refused for any other kind. What the bytes are cannot be checked.
pub fn inspect(
    path: &Path,
    hints: &ImageHints,
    archs: &[Arch],
    pedestal: &str,
    other_kinds: bool,
) -> Result<FirmwareImage, FirmwareError> {
    let mut file = open_regular(path)?;
    let io_error = |source| FirmwareError::Io {
        path: path.to_owned(),
        source,
    };
    let size = file.metadata().map_err(io_error)?.len();
    let mut magic = [0u8; 4];
    let n = read_up_to(&mut file, &mut magic).map_err(io_error)?;
    drop(file);
    let is_elf = n == magic.len() && magic == ELF_MAGIC;
    let kind = hints.kind.unwrap_or(if is_elf {
        ImageKind::Elf
    } else if hints.load_address.is_some() {
        ImageKind::Raw
    } else if other_kinds && path.extension().is_some_and(|e| e == "fd") {
        ImageKind::Bios
    } else {
        ImageKind::Elf
    });
    let bad = |reason: String| FirmwareError::BadImage {
        path: path.to_owned(),
        reason,
    };
    if kind != ImageKind::Raw {
        if let Some(at) = hints.load_address {
            return Err(bad(format!(
                "{FIRMWARE_LOAD_ADDRESS} ({at:#x}) is for raw images, but the image is \
                 {kind}; drop the annotation or set {FIRMWARE_KIND}=raw"
            )));
        }
    }
    if kind == ImageKind::Elf {
        let info = check_elf(path, archs, other_kinds)?;
        return Ok(FirmwareImage {
            arch: info.arch,
            format: ImageFormat::Elf(info),
            size,
        });
    }
    if !other_kinds {
        return Err(FirmwareError::ElfOnly {
            path: path.to_owned(),
            kind,
            pedestal: pedestal.to_owned(),
        });
    }
    if size == 0 {
        return Err(bad(format!("the {kind} image is empty")));
    }
    let arch = hints.arch.unwrap_or(archs[0]);
    if !archs.contains(&arch) {
        return Err(FirmwareError::WrongArch {
            path: path.to_owned(),
            elf: false,
            found: arch.name().to_owned(),
            expected: arch_list(archs),
        });
    }
    let format = match kind {
        ImageKind::Raw => ImageFormat::Raw {
            load_address: hints.load_address.ok_or_else(|| {
                bad(format!(
                    "a raw image needs its load address: set {FIRMWARE_LOAD_ADDRESS} \
                     (e.g. 0x40200000)"
                ))
            })?,
        },
        _ => ImageFormat::Bios,
    };
    Ok(FirmwareImage { arch, format, size })
}

/// Finds the firmware in `rootfs` (see the module doc for the order) and returns its
/// canonical host path. `annotation` is the `container.firmware_path` value, if set.
pub fn resolve_firmware(rootfs: &Path, annotation: Option<&str>) -> Result<PathBuf, FirmwareError> {
    if let Some(path) = annotation {
        return resolve_in_rootfs(rootfs, path, FIRMWARE);
    }
    let root = canonical_rootfs(rootfs)?;
    // `firmware.elf` counts as present even as a dangling symlink: resolving it then
    // reports the problem instead of quietly taking some other file.
    if fs::symlink_metadata(root.join(DEFAULT_FIRMWARE)).is_ok() {
        return resolve_in_rootfs(&root, DEFAULT_FIRMWARE, FIRMWARE);
    }
    let rootfs_error = |source| FirmwareError::Rootfs {
        rootfs: root.clone(),
        source,
    };
    let mut names = Vec::new();
    for entry in fs::read_dir(&root).map_err(rootfs_error)? {
        let name = entry.map_err(rootfs_error)?.file_name();
        let bytes = name.as_encoded_bytes();
        if bytes.len() > 4 && bytes.ends_with(b".elf") {
            names.push(name);
        }
    }
    names.sort();
    match names.first() {
        Some(name) => resolve_in_rootfs(&root, &name.to_string_lossy(), FIRMWARE),
        None => Err(FirmwareError::NoFirmware { rootfs: root }),
    }
}

/// Resolves `relative` inside `rootfs` and returns the canonical host path of the regular
/// file it names. `what` names the file in messages (`"firmware"`, `"pedestal config"`).
///
/// Refuses, before touching the filesystem, empty and absolute paths and any `..`
/// component; then refuses anything that resolves outside the canonical rootfs, does not
/// exist, or is not a regular file.
pub fn resolve_in_rootfs(
    rootfs: &Path,
    relative: &str,
    what: &'static str,
) -> Result<PathBuf, FirmwareError> {
    if relative.is_empty() {
        return Err(FirmwareError::EmptyPath { what });
    }
    for component in Path::new(relative).components() {
        match component {
            Component::RootDir | Component::Prefix(_) => {
                return Err(FirmwareError::AbsolutePath {
                    what,
                    path: relative.to_owned(),
                })
            }
            Component::ParentDir => {
                return Err(FirmwareError::ParentComponent {
                    what,
                    path: relative.to_owned(),
                })
            }
            Component::CurDir | Component::Normal(_) => {}
        }
    }
    let root = canonical_rootfs(rootfs)?;
    let joined = root.join(relative);
    let not_found = || FirmwareError::NotFound {
        what,
        path: relative.to_owned(),
        rootfs: root.clone(),
    };
    let target = match joined.canonicalize() {
        Ok(target) => target,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Err(not_found()),
        Err(source) => {
            return Err(FirmwareError::Io {
                path: joined,
                source,
            })
        }
    };
    if !target.starts_with(&root) {
        return Err(FirmwareError::Escapes {
            what,
            path: relative.to_owned(),
            target,
            rootfs: root,
        });
    }
    check_regular(&target)?;
    Ok(target)
}

fn canonical_rootfs(rootfs: &Path) -> Result<PathBuf, FirmwareError> {
    rootfs
        .canonicalize()
        .map_err(|source| FirmwareError::Rootfs {
            rootfs: rootfs.to_owned(),
            source,
        })
}

/// Fails unless `path` is (after following symlinks) a regular file.
fn check_regular(path: &Path) -> Result<(), FirmwareError> {
    let metadata = fs::metadata(path).map_err(|source| FirmwareError::Io {
        path: path.to_owned(),
        source,
    })?;
    file_type_check(path, &metadata)
}

fn file_type_check(path: &Path, metadata: &fs::Metadata) -> Result<(), FirmwareError> {
    if metadata.is_file() {
        return Ok(());
    }
    let kind = if metadata.is_dir() {
        "a directory"
    } else {
        "a special file (device, FIFO or socket)"
    };
    Err(FirmwareError::NotRegularFile {
        path: path.to_owned(),
        kind,
    })
}

/// Opens a regular file for reading; anything else is refused before it is opened.
fn open_regular(path: &Path) -> Result<File, FirmwareError> {
    let io_error = |source| FirmwareError::Io {
        path: path.to_owned(),
        source,
    };
    check_regular(path)?;
    let file = File::open(path).map_err(io_error)?;
    // The path may have changed between the check and the open.
    file_type_check(path, &file.metadata().map_err(io_error)?)?;
    Ok(file)
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_up_to(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

const ELF_MAGIC: [u8; 4] = [0x7f, b'E', b'L', b'F'];
const EI_CLASS: usize = 4;
const EI_DATA: usize = 5;
const EHDR32_SIZE: usize = 52;
const EHDR64_SIZE: usize = 64;

const EM_X86_64: u16 = 62;
const EM_ARM: u16 = 40;
const EM_AARCH64: u16 = 183;
const EM_RISCV: u16 = 243;

/// Reads the ELF header of `path` and checks that a pedestal running `expected` can boot
/// it: ELF magic, class 32/64, little-endian, an executable (not an object file or core
/// dump), and the machine. Only the first 64 bytes are read.
pub fn validate_elf(path: &Path, expected: Arch) -> Result<ElfInfo, FirmwareError> {
    check_elf(path, &[expected], false)
}

/// [`validate_elf`] for a pedestal that runs any of `archs`; `other_kinds` as for
/// [`inspect`].
fn check_elf(path: &Path, archs: &[Arch], other_kinds: bool) -> Result<ElfInfo, FirmwareError> {
    let mut file = open_regular(path)?;
    let mut header = [0u8; EHDR64_SIZE];
    let len = read_up_to(&mut file, &mut header).map_err(|source| FirmwareError::Io {
        path: path.to_owned(),
        source,
    })?;
    let header = &header[..len];
    let bad = |reason: String| FirmwareError::BadElf {
        path: path.to_owned(),
        reason,
    };

    if len < ELF_MAGIC.len() || header[..4] != ELF_MAGIC {
        let found = if len == 0 {
            "the file is empty".to_owned()
        } else {
            format!(
                "it starts with {}, an ELF with 7f 45 4c 46",
                hex_spaced(&header[..len.min(4)])
            )
        };
        return Err(FirmwareError::NotElf {
            path: path.to_owned(),
            found,
            other_kinds,
        });
    }
    if len <= EI_DATA {
        return Err(bad(format!(
            "the ELF header is cut short ({len} bytes, the file ends inside it)"
        )));
    }
    let (class, header_size) = match header[EI_CLASS] {
        1 => (ElfClass::Elf32, EHDR32_SIZE),
        2 => (ElfClass::Elf64, EHDR64_SIZE),
        other => return Err(bad(format!("unknown ELF class {other} (expected 1 or 2)"))),
    };
    match header[EI_DATA] {
        1 => {}
        2 => {
            return Err(bad(
                "it is big-endian; micrun's pedestals boot little-endian firmware".to_owned(),
            ))
        }
        other => {
            return Err(bad(format!(
                "unknown ELF data encoding {other} (expected 1, little-endian)"
            )))
        }
    }
    if len < header_size {
        return Err(bad(format!(
            "the ELF header is cut short ({len} of {header_size} bytes)"
        )));
    }
    let u16_at = |at: usize| u16::from_le_bytes([header[at], header[at + 1]]);
    let e_type = u16_at(16);
    let e_machine = u16_at(18);
    let entry = match class {
        ElfClass::Elf32 => u64::from(u32::from_le_bytes([
            header[24], header[25], header[26], header[27],
        ])),
        ElfClass::Elf64 => {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&header[24..32]);
            u64::from_le_bytes(bytes)
        }
    };

    let arch = arch_of(e_machine, class).map_err(|found| FirmwareError::WrongArch {
        path: path.to_owned(),
        elf: true,
        found,
        expected: arch_list(archs),
    })?;
    if !archs.contains(&arch) {
        return Err(FirmwareError::WrongArch {
            path: path.to_owned(),
            elf: true,
            found: arch.name().to_owned(),
            expected: arch_list(archs),
        });
    }
    let kind = match e_type {
        2 => ElfKind::Executable,
        3 => ElfKind::PositionIndependent,
        1 => {
            return Err(bad(
                "it is a relocatable object file (.o), not a linked image; link it first"
                    .to_owned(),
            ))
        }
        4 => return Err(bad("it is a core dump".to_owned())),
        other => return Err(bad(format!("unknown ELF file type {other}"))),
    };
    Ok(ElfInfo {
        arch,
        class,
        kind,
        entry,
    })
}

/// The architecture of an ELF machine number and class, or a description of what was
/// found when it is not a supported one.
fn arch_of(machine: u16, class: ElfClass) -> Result<Arch, String> {
    let bits = match class {
        ElfClass::Elf32 => 32,
        ElfClass::Elf64 => 64,
    };
    let arch = match (machine, class) {
        (EM_AARCH64, ElfClass::Elf64) => Some(Arch::Aarch64),
        (EM_ARM, ElfClass::Elf32) => Some(Arch::Arm),
        (EM_RISCV, ElfClass::Elf64) => Some(Arch::Riscv64),
        (EM_RISCV, ElfClass::Elf32) => Some(Arch::Riscv32),
        (EM_X86_64, ElfClass::Elf64) => Some(Arch::X86_64),
        _ => None,
    };
    if let Some(arch) = arch {
        return Ok(arch);
    }
    let name = match machine {
        0 => "no machine",
        3 => "i386",
        8 => "mips",
        20 => "powerpc",
        21 => "powerpc64",
        22 => "s390",
        43 => "sparc64",
        EM_X86_64 => "x86_64",
        EM_ARM => "arm",
        EM_AARCH64 => "aarch64",
        258 => "loongarch",
        _ => return Err(format!("machine {machine} ({bits}-bit)")),
    };
    Err(match (machine, class) {
        (EM_X86_64 | EM_AARCH64, ElfClass::Elf32) | (EM_ARM, ElfClass::Elf64) => {
            format!("{name} in a {bits}-bit ELF")
        }
        _ => name.to_owned(),
    })
}

/// The sha256 of a regular file, read in chunks (the file may be large).
pub fn sha256_file(path: &Path) -> Result<[u8; 32], FirmwareError> {
    let mut file = open_regular(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(FirmwareError::Io {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

/// Checks that the sha256 of `path` is `expected` (from `container.firmware_hash`); the
/// error shows both digests.
pub fn verify_hash(path: &Path, expected: [u8; 32]) -> Result<(), FirmwareError> {
    check_hash(path, sha256_file(path)?, expected)
}

/// [`verify_hash`] with the file's digest already computed (`actual`).
pub fn check_hash(path: &Path, actual: [u8; 32], expected: [u8; 32]) -> Result<(), FirmwareError> {
    if actual == expected {
        Ok(())
    } else {
        Err(FirmwareError::HashMismatch {
            path: path.to_owned(),
            expected: hex(&expected),
            actual: hex(&actual),
        })
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_spaced(bytes: &[u8]) -> String {
    let parts: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            use std::sync::atomic::{AtomicU32, Ordering};
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "micrun-firmware-{tag}-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).unwrap();
            TempDir(path.canonicalize().unwrap())
        }

        /// `<dir>/rootfs`, created.
        fn rootfs(&self) -> PathBuf {
            let rootfs = self.0.join("rootfs");
            fs::create_dir_all(&rootfs).unwrap();
            rootfs
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// An ELF header: class 1/2, data 1/2, e_type, e_machine, entry 0x4000_0000.
    fn elf(class: u8, data: u8, e_type: u16, machine: u16) -> Vec<u8> {
        let mut header = vec![0u8; 64];
        header[..4].copy_from_slice(&ELF_MAGIC);
        header[EI_CLASS] = class;
        header[EI_DATA] = data;
        header[6] = 1;
        header[16..18].copy_from_slice(&e_type.to_le_bytes());
        header[18..20].copy_from_slice(&machine.to_le_bytes());
        header[20..24].copy_from_slice(&1u32.to_le_bytes());
        header[24..28].copy_from_slice(&0x4000_0000u32.to_le_bytes());
        if class == 1 {
            header.truncate(EHDR32_SIZE);
        }
        header
    }

    fn aarch64_elf() -> Vec<u8> {
        elf(2, 1, 2, EM_AARCH64)
    }

    fn write(path: &Path, bytes: &[u8]) {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(path, bytes).unwrap();
    }

    #[test]
    fn annotation_path_inside_rootfs() {
        let dir = TempDir::new("annot");
        let rootfs = dir.rootfs();
        write(&rootfs.join("images/zephyr.elf"), &aarch64_elf());
        write(&rootfs.join("firmware.elf"), &aarch64_elf());
        for given in [
            "images/zephyr.elf",
            "./images/zephyr.elf",
            "images//zephyr.elf",
        ] {
            let found = resolve_firmware(&rootfs, Some(given)).unwrap();
            assert_eq!(found, rootfs.join("images/zephyr.elf"), "{given}");
        }
    }

    #[test]
    fn default_name_then_first_elf_sorted() {
        let dir = TempDir::new("default");
        let rootfs = dir.rootfs();
        write(&rootfs.join("notes.txt"), b"hello");
        write(&rootfs.join("zz.elf"), &aarch64_elf());
        write(&rootfs.join("b.elf"), &aarch64_elf());
        write(&rootfs.join("a.elf"), &aarch64_elf());
        write(&rootfs.join("sub/0.elf"), &aarch64_elf());
        assert_eq!(
            resolve_firmware(&rootfs, None).unwrap(),
            rootfs.join("a.elf")
        );
        write(&rootfs.join(DEFAULT_FIRMWARE), &aarch64_elf());
        assert_eq!(
            resolve_firmware(&rootfs, None).unwrap(),
            rootfs.join(DEFAULT_FIRMWARE)
        );
    }

    #[test]
    fn no_firmware() {
        let dir = TempDir::new("none");
        let rootfs = dir.rootfs();
        write(&rootfs.join("image.bin"), b"xen");
        write(&rootfs.join(".elf"), b"not a name with a stem");
        write(&rootfs.join("sub/fw.elf"), &aarch64_elf());
        let err = resolve_firmware(&rootfs, None).unwrap_err();
        assert!(matches!(err, FirmwareError::NoFirmware { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "no firmware: looked for firmware.elf and *.elf in {}; put the firmware there or set org.openeuler.micrun.container.firmware_path",
                rootfs.display()
            )
        );
        // An annotation naming a missing file.
        let err = resolve_firmware(&rootfs, Some("zephyr.elf")).unwrap_err();
        assert!(matches!(err, FirmwareError::NotFound { .. }), "{err}");
        assert!(
            err.to_string().contains("\"zephyr.elf\" not found"),
            "{err}"
        );
    }

    #[test]
    fn parent_components_refused_before_touching_the_filesystem() {
        // The rootfs does not exist: the check must come first.
        let rootfs = Path::new("/nonexistent/micrun/rootfs");
        for given in [
            "../x.elf",
            "images/../firmware.elf",
            "..",
            "a/b/../../../etc/passwd",
        ] {
            let err = resolve_firmware(rootfs, Some(given)).unwrap_err();
            assert!(
                matches!(err, FirmwareError::ParentComponent { .. }),
                "{given}: {err}"
            );
            assert!(err.to_string().contains("contains \"..\""), "{err}");
        }
    }

    #[test]
    fn absolute_paths_refused() {
        let rootfs = Path::new("/nonexistent/micrun/rootfs");
        for given in ["/etc/passwd", "/firmware.elf", "//x.elf"] {
            let err = resolve_firmware(rootfs, Some(given)).unwrap_err();
            assert!(
                matches!(err, FirmwareError::AbsolutePath { .. }),
                "{given}: {err}"
            );
        }
        let err = resolve_firmware(rootfs, Some("/images/z.elf")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "firmware path \"/images/z.elf\" is absolute; give it relative to the container rootfs (e.g. \"images/z.elf\")"
        );
        let err = resolve_in_rootfs(rootfs, "", "pedestal config").unwrap_err();
        assert!(matches!(err, FirmwareError::EmptyPath { .. }), "{err}");
    }

    #[test]
    fn symlinks_escaping_the_rootfs() {
        let dir = TempDir::new("escape");
        let rootfs = dir.rootfs();
        let outside = dir.0.join("outside");
        write(&outside.join("secret.elf"), &aarch64_elf());

        // A relative link leading out.
        symlink("../outside/secret.elf", rootfs.join("rel.elf")).unwrap();
        // An absolute link: resolves on the host, so outside.
        symlink(outside.join("secret.elf"), rootfs.join("abs.elf")).unwrap();
        // A symlinked directory leading out.
        symlink("../outside", rootfs.join("images")).unwrap();
        for given in ["rel.elf", "abs.elf", "images/secret.elf"] {
            let err = resolve_firmware(&rootfs, Some(given)).unwrap_err();
            match &err {
                FirmwareError::Escapes { target, .. } => {
                    assert_eq!(target, &outside.join("secret.elf"), "{given}")
                }
                other => panic!("{given}: {other}"),
            }
            assert!(
                err.to_string().contains("outside the container rootfs"),
                "{err}"
            );
        }
        // The default name escaping is an error, not a reason to pick another file.
        symlink("../outside/secret.elf", rootfs.join(DEFAULT_FIRMWARE)).unwrap();
        write(&rootfs.join("good.elf"), &aarch64_elf());
        let err = resolve_firmware(&rootfs, None).unwrap_err();
        assert!(matches!(err, FirmwareError::Escapes { .. }), "{err}");
        // So is the first *.elf escaping.
        fs::remove_file(rootfs.join(DEFAULT_FIRMWARE)).unwrap();
        let err = resolve_firmware(&rootfs, None).unwrap_err();
        assert!(
            matches!(&err, FirmwareError::Escapes { path, .. } if path == "abs.elf"),
            "{err}"
        );
    }

    #[test]
    fn symlinks_inside_the_rootfs_are_fine() {
        let dir = TempDir::new("inside");
        let rootfs = dir.rootfs();
        write(&rootfs.join("boot/zephyr.elf"), &aarch64_elf());
        symlink("boot/zephyr.elf", rootfs.join(DEFAULT_FIRMWARE)).unwrap();
        symlink("boot", rootfs.join("current")).unwrap();
        assert_eq!(
            resolve_firmware(&rootfs, None).unwrap(),
            rootfs.join("boot/zephyr.elf")
        );
        assert_eq!(
            resolve_firmware(&rootfs, Some("current/zephyr.elf")).unwrap(),
            rootfs.join("boot/zephyr.elf")
        );
        // The rootfs itself may be reached through a symlink.
        let link = dir.0.join("rootfs-link");
        symlink(&rootfs, &link).unwrap();
        assert_eq!(
            resolve_firmware(&link, None).unwrap(),
            rootfs.join("boot/zephyr.elf")
        );
    }

    #[test]
    fn dangling_symlinks_directories_and_missing_rootfs() {
        let dir = TempDir::new("odd");
        let rootfs = dir.rootfs();
        symlink("nowhere.elf", rootfs.join(DEFAULT_FIRMWARE)).unwrap();
        let err = resolve_firmware(&rootfs, None).unwrap_err();
        assert!(matches!(err, FirmwareError::NotFound { .. }), "{err}");
        assert!(err.to_string().contains("dangling symlink"), "{err}");

        fs::create_dir(rootfs.join("dir.elf")).unwrap();
        let err = resolve_firmware(&rootfs, Some("dir.elf")).unwrap_err();
        assert!(
            matches!(
                err,
                FirmwareError::NotRegularFile {
                    kind: "a directory",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err
            .to_string()
            .ends_with("is a directory, not a regular file"));
        let err = validate_elf(&rootfs.join("dir.elf"), Arch::Aarch64).unwrap_err();
        assert!(matches!(err, FirmwareError::NotRegularFile { .. }), "{err}");
        let err = verify_hash(&rootfs.join("dir.elf"), [0; 32]).unwrap_err();
        assert!(matches!(err, FirmwareError::NotRegularFile { .. }), "{err}");

        // A symlink loop.
        symlink("loop-b", rootfs.join("loop-a.elf")).unwrap();
        symlink("loop-a.elf", rootfs.join("loop-b")).unwrap();
        let err = resolve_firmware(&rootfs, Some("loop-a.elf")).unwrap_err();
        assert!(matches!(err, FirmwareError::Io { .. }), "{err}");

        let err = resolve_firmware(&dir.0.join("missing"), None).unwrap_err();
        assert!(matches!(err, FirmwareError::Rootfs { .. }), "{err}");
        let err = resolve_firmware(&dir.0.join("missing"), Some("x.elf")).unwrap_err();
        assert!(matches!(err, FirmwareError::Rootfs { .. }), "{err}");

        let err = validate_elf(&rootfs.join("absent.elf"), Arch::Aarch64).unwrap_err();
        assert!(matches!(err, FirmwareError::Io { .. }), "{err}");
    }

    #[test]
    fn good_elfs() {
        let dir = TempDir::new("good");
        let cases = [
            (
                elf(2, 1, 2, EM_AARCH64),
                Arch::Aarch64,
                ElfClass::Elf64,
                ElfKind::Executable,
            ),
            (
                elf(1, 1, 2, EM_ARM),
                Arch::Arm,
                ElfClass::Elf32,
                ElfKind::Executable,
            ),
            (
                elf(2, 1, 2, EM_RISCV),
                Arch::Riscv64,
                ElfClass::Elf64,
                ElfKind::Executable,
            ),
            (
                elf(1, 1, 2, EM_RISCV),
                Arch::Riscv32,
                ElfClass::Elf32,
                ElfKind::Executable,
            ),
            (
                elf(2, 1, 3, EM_X86_64),
                Arch::X86_64,
                ElfClass::Elf64,
                ElfKind::PositionIndependent,
            ),
        ];
        for (i, (bytes, arch, class, kind)) in cases.into_iter().enumerate() {
            let path = dir.0.join(format!("{i}.elf"));
            write(&path, &bytes);
            let info = validate_elf(&path, arch).unwrap_or_else(|e| panic!("{arch}: {e}"));
            assert_eq!(
                info,
                ElfInfo {
                    arch,
                    class,
                    kind,
                    entry: 0x4000_0000
                }
            );
        }
        // A 64-bit entry point above 4 GiB is read whole.
        let mut bytes = aarch64_elf();
        bytes[24..32].copy_from_slice(&0x1_2345_6789u64.to_le_bytes());
        let path = dir.0.join("high.elf");
        write(&path, &bytes);
        assert_eq!(
            validate_elf(&path, Arch::Aarch64).unwrap().entry,
            0x1_2345_6789
        );
    }

    #[test]
    fn this_test_binary_is_a_host_elf() {
        // What the sim pedestal does: a real host executable checked against the host arch.
        let exe = std::env::current_exe().unwrap();
        let host = Arch::host().expect("tests run on a supported architecture");
        let info = validate_elf(&exe, host).unwrap();
        assert_eq!(info.arch, host);
    }

    #[test]
    fn wrong_architecture() {
        let dir = TempDir::new("arch");
        let path = dir.0.join("firmware.elf");
        write(&path, &elf(2, 1, 2, EM_X86_64));
        let err = validate_elf(&path, Arch::Aarch64).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} is an ELF for x86_64, but the pedestal runs aarch64; use a firmware built for aarch64",
                path.display()
            )
        );
        for (bytes, expected, found) in [
            (elf(1, 1, 2, EM_ARM), Arch::Aarch64, "arm"),
            (elf(1, 1, 2, EM_RISCV), Arch::Riscv64, "riscv32"),
            (elf(1, 1, 2, 3), Arch::X86_64, "i386"),
            (
                elf(1, 1, 2, EM_AARCH64),
                Arch::Aarch64,
                "aarch64 in a 32-bit ELF",
            ),
            (
                elf(1, 1, 2, EM_X86_64),
                Arch::X86_64,
                "x86_64 in a 32-bit ELF",
            ),
            (
                elf(2, 1, 2, 0x9999),
                Arch::Aarch64,
                "machine 39321 (64-bit)",
            ),
            (elf(2, 1, 2, 0), Arch::Aarch64, "no machine"),
        ] {
            write(&path, &bytes);
            match validate_elf(&path, expected).unwrap_err() {
                FirmwareError::WrongArch {
                    found: got,
                    expected: e,
                    ..
                } => {
                    assert_eq!((got.as_str(), e.as_str()), (found, expected.name()));
                }
                other => panic!("{found}: {other}"),
            }
        }
    }

    #[test]
    fn not_an_elf_and_broken_headers() {
        let dir = TempDir::new("bad");
        let path = dir.0.join("firmware.elf");
        let mut truncated64 = aarch64_elf();
        truncated64.truncate(40);
        let mut truncated32 = elf(1, 1, 2, EM_ARM);
        truncated32.truncate(51);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                b"#!/bin/sh\necho hi\n".to_vec(),
                "is not an ELF file (it starts with 23 21 2f 62, an ELF with 7f 45 4c 46)",
            ),
            (Vec::new(), "is not an ELF file (the file is empty)"),
            (b"\x7fEL".to_vec(), "it starts with 7f 45 4c,"),
            (b"\x7fELF".to_vec(), "the ELF header is cut short (4 bytes"),
            (
                b"\x7fELF\x02".to_vec(),
                "the ELF header is cut short (5 bytes",
            ),
            (truncated64, "the ELF header is cut short (40 of 64 bytes)"),
            (truncated32, "the ELF header is cut short (51 of 52 bytes)"),
            (elf(3, 1, 2, EM_AARCH64), "unknown ELF class 3"),
            (elf(0, 1, 2, EM_AARCH64), "unknown ELF class 0"),
            (elf(2, 2, 2, EM_AARCH64), "big-endian"),
            (elf(2, 0, 2, EM_AARCH64), "unknown ELF data encoding 0"),
            (elf(2, 1, 1, EM_AARCH64), "relocatable object file (.o)"),
            (elf(2, 1, 4, EM_AARCH64), "core dump"),
            (elf(2, 1, 0xfe00, EM_AARCH64), "unknown ELF file type 65024"),
        ];
        for (bytes, expected) in cases {
            write(&path, &bytes);
            let err = validate_elf(&path, Arch::Aarch64).unwrap_err();
            let message = err.to_string();
            assert!(
                message.contains(expected),
                "{bytes:?}: {message} (wanted {expected})"
            );
            assert!(
                message.starts_with(&path.display().to_string()),
                "{message}"
            );
        }
        // Random content of every length up to two headers never panics.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for len in 0..=128 {
            let mut bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            if len >= 4 {
                bytes[..4].copy_from_slice(&ELF_MAGIC);
            }
            write(&path, &bytes);
            let _ = validate_elf(&path, Arch::Aarch64);
        }
    }

    #[test]
    fn large_sparse_file_reads_only_the_header() {
        let dir = TempDir::new("large");
        let path = dir.0.join("big.elf");
        write(&path, &aarch64_elf());
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(1 << 30)
            .unwrap();
        assert_eq!(
            validate_elf(&path, Arch::Aarch64).unwrap().arch,
            Arch::Aarch64
        );
    }

    #[test]
    fn hashes() {
        let dir = TempDir::new("hash");
        let path = dir.0.join("firmware.elf");
        write(&path, b"abc");
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let digest = crate::annotations::parse_sha256(abc).unwrap();
        assert_eq!(hex(&sha256_file(&path).unwrap()), abc);
        verify_hash(&path, digest).unwrap();

        let err = verify_hash(&path, [0x11; 32]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} has sha256 {abc}, but org.openeuler.micrun.container.firmware_hash expects {}; the image and the annotation disagree",
                path.display(),
                "11".repeat(32)
            )
        );

        write(&path, b"");
        assert_eq!(
            hex(&sha256_file(&path).unwrap()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // Streaming over many chunks: 1 MiB + 1 of 'a' against a one-shot digest.
        let data = vec![b'a'; (1 << 20) + 1];
        write(&path, &data);
        let one_shot: [u8; 32] = Sha256::digest(&data).into();
        assert_eq!(sha256_file(&path).unwrap(), one_shot);

        let err = verify_hash(&dir.0.join("absent"), digest).unwrap_err();
        assert!(matches!(err, FirmwareError::Io { .. }), "{err}");
    }

    #[test]
    fn malformed_hash_is_refused_at_the_annotation() {
        use crate::annotations::{AnnotationError, Annotations, FIRMWARE_HASH};
        let map =
            std::collections::HashMap::from([(FIRMWARE_HASH.to_owned(), "sha256:abc".to_owned())]);
        let err = Annotations::parse(&map).unwrap_err();
        assert!(
            matches!(&err, AnnotationError::Invalid { key, .. } if *key == FIRMWARE_HASH),
            "{err}"
        );
    }

    #[test]
    fn arch_names() {
        for arch in [
            Arch::Aarch64,
            Arch::Arm,
            Arch::Riscv64,
            Arch::Riscv32,
            Arch::X86_64,
        ] {
            assert_eq!(Arch::parse(arch.name()), Some(arch));
            assert_eq!(arch.to_string(), arch.name());
        }
        assert_eq!(Arch::parse("arm64"), Some(Arch::Aarch64));
        assert_eq!(Arch::parse("amd64"), Some(Arch::X86_64));
        assert_eq!(Arch::parse("mips"), None);
    }

    #[test]
    fn image_kinds_detected_and_checked() {
        let dir = TempDir::new("kinds");
        let qemu = [Arch::Aarch64, Arch::Arm, Arch::Riscv64];
        let elf_path = dir.0.join("fw.elf");
        write(&elf_path, &elf(1, 1, 2, EM_ARM));
        let raw = dir.0.join("u-boot.bin");
        write(&raw, &[0x00, 0x04, 0x00, 0x14, 1, 2, 3, 4]);
        let fd = dir.0.join("QEMU_EFI.fd");
        write(&fd, &[0x00, 0x04, 0x00, 0x14]);
        let empty = dir.0.join("empty.bin");
        write(&empty, b"");
        let hints = |kind, load_address, arch| ImageHints {
            kind,
            load_address,
            arch,
        };
        let none = hints(None, None, None);

        // An ELF: its own machine, among the pedestal's.
        let image = inspect(&elf_path, &none, &qemu, "qemu", true).unwrap();
        assert_eq!((image.arch, image.kind()), (Arch::Arm, ImageKind::Elf));
        // A load address makes a raw image; `.fd` a bios image.
        let image = inspect(
            &raw,
            &hints(None, Some(0x4020_0000), None),
            &qemu,
            "qemu",
            true,
        )
        .unwrap();
        assert_eq!(
            (image.arch, image.format, image.size),
            (
                Arch::Aarch64,
                ImageFormat::Raw {
                    load_address: 0x4020_0000
                },
                8
            )
        );
        let image = inspect(&fd, &none, &qemu, "qemu", true).unwrap();
        assert_eq!(image.format, ImageFormat::Bios);
        let image = inspect(
            &raw,
            &hints(Some(ImageKind::Bios), None, Some(Arch::Riscv64)),
            &qemu,
            "qemu",
            true,
        )
        .unwrap();
        assert_eq!(
            (image.arch, image.format),
            (Arch::Riscv64, ImageFormat::Bios)
        );

        let err = |path: &Path, h: ImageHints, archs: &[Arch], other: bool| {
            inspect(path, &h, archs, "sim", other)
                .unwrap_err()
                .to_string()
        };
        // Not an ELF and nothing said: how to describe it.
        let text = err(&raw, none, &qemu, true);
        assert!(
            text.contains("is not an ELF file")
                && text.contains("container.firmware_load_address")
                && text.contains("container.firmware_kind=bios"),
            "{text}"
        );
        // A pedestal that boots ELFs only says so.
        let text = err(&raw, none, &[Arch::X86_64], false);
        assert!(
            text.ends_with("the firmware must be a linked ELF image"),
            "{text}"
        );
        let text = err(
            &fd,
            hints(Some(ImageKind::Bios), None, None),
            &[Arch::X86_64],
            false,
        );
        assert!(
            text.contains("is a bios image")
                && text.contains("pedestal sim boots ELF firmware only"),
            "{text}"
        );
        // Raw without a load address; a load address on another kind; empty; arch.
        let text = err(&raw, hints(Some(ImageKind::Raw), None, None), &qemu, true);
        assert!(text.contains("a raw image needs its load address: set org.openeuler.micrun.container.firmware_load_address"), "{text}");
        let text = err(
            &fd,
            hints(Some(ImageKind::Bios), Some(16), None),
            &qemu,
            true,
        );
        assert!(
            text.contains("(0x10) is for raw images, but the image is bios"),
            "{text}"
        );
        let text = err(&elf_path, hints(None, Some(16), None), &qemu, true);
        assert!(
            text.contains("is for raw images, but the image is elf"),
            "{text}"
        );
        let text = err(&empty, hints(None, Some(16), None), &qemu, true);
        assert!(text.contains("the raw image is empty"), "{text}");
        let text = err(&fd, hints(None, None, Some(Arch::X86_64)), &qemu, true);
        assert!(
            text.contains("is an image for x86_64, but the pedestal runs aarch64, arm or riscv64"),
            "{text}"
        );
        // The ELF machine check stays.
        let text = err(&elf_path, none, &[Arch::Aarch64, Arch::Riscv64], true);
        assert!(
            text.contains("is an ELF for arm, but the pedestal runs aarch64 or riscv64"),
            "{text}"
        );
        // kind=elf insists on an ELF.
        let text = err(&fd, hints(Some(ImageKind::Elf), None, None), &qemu, true);
        assert!(text.contains("is not an ELF file"), "{text}");
    }
}
