//! Bundle → [`InstanceSpec`]: everything about one container that the engine and
//! the pedestal need, checked once at Create.
//!
//! Order of checks, so the cheapest and most common mistakes are reported first:
//! `config.json` → annotations → pedestal (named, or the host default; `sim` only
//! when enabled) → the container id for that pedestal → firmware (path inside the
//! rootfs, an image the pedestal boots, optional sha256) → resources.

use std::path::{Path, PathBuf};

use crate::annotations::{AgentMode, AnnotationError, Annotations};
use crate::config::{Config, PedestalKind};
use crate::firmware::{self, FirmwareError, FirmwareImage};
use crate::image::{self, ImageError};
use crate::oci::Spec;
use crate::pedestal::{self, Pedestal, PedestalError};
use crate::resources::{self, CpuSet, ResourceError, Resources};

/// Why a bundle cannot become an instance. Every message names the thing at fault
/// and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// `config.json` is missing, unreadable or not a runtime spec; `detail` names
    /// the file and, for a parse error, the line and column.
    #[error("bundle {bundle}: {detail}")]
    Bundle { bundle: PathBuf, detail: String },
    #[error(transparent)]
    Annotation(#[from] AnnotationError),
    #[error(
        "pedestal sim is not enabled: it runs image content as a host process; \
         set `[sim] enable = true` in {config} to allow it"
    )]
    SimDisabled { config: String },
    #[error(transparent)]
    Pedestal(#[from] PedestalError),
    #[error(transparent)]
    Firmware(#[from] FirmwareError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Resources(#[from] ResourceError),
}

/// One container, ready for a pedestal.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    pub id: String,
    pub namespace: String,
    pub bundle: PathBuf,
    /// The mounted root filesystem (`<bundle>/rootfs` or the spec's `root.path`).
    pub rootfs: PathBuf,
    /// Canonical path of the firmware file, inside `rootfs`.
    pub firmware: PathBuf,
    /// What the firmware is and how it boots (`None` for a sandbox).
    pub image: Option<FirmwareImage>,
    pub pedestal: PedestalKind,
    pub resources: Resources,
    pub annotations: Annotations,
    /// The OCI `process.terminal`: one console stream, resizable.
    pub terminal: bool,
    /// A CRI sandbox container: no RTOS runs for it.
    pub sandbox: bool,
}

impl InstanceSpec {
    /// How the host talks to the RTOS.
    pub fn agent_mode(&self) -> AgentMode {
        self.annotations.agent
    }
}

/// Reads `<bundle>/config.json`.
pub fn load_oci_spec(bundle: &Path) -> Result<Spec, SpecError> {
    Spec::load(&bundle.join("config.json")).map_err(|e| SpecError::Bundle {
        bundle: bundle.to_path_buf(),
        detail: e.to_string(),
    })
}

/// The root filesystem path of a bundle (absolute, or relative to the bundle).
pub fn rootfs_path(bundle: &Path, spec: &Spec) -> PathBuf {
    match &spec.root {
        Some(root) if root.path.is_absolute() => root.path.clone(),
        Some(root) => bundle.join(&root.path),
        None => bundle.join("rootfs"),
    }
}

/// The pedestal for a container: its annotation, else the configured default,
/// else what the host has ([`pedestal::detect`]).
pub fn choose_pedestal(
    annotations: &Annotations,
    config: &Config,
) -> Result<PedestalKind, PedestalError> {
    pedestal::detect::choose(annotations.pedestal, config).map(|c| c.kind)
}

/// CPUs of this host, from `/sys/devices/system/cpu/online` (e.g. `0-3`).
pub fn host_cpus() -> CpuSet {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| CpuSet::parse(s.trim()).ok())
        .unwrap_or_else(|| {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            CpuSet::first(n as u32)
        })
}

/// The entry of the image's firmware index (`crate::image`) for this host and
/// `ped`, or `None` for an image without an index.
pub fn select_firmware(
    rootfs: &Path,
    annotations: &Annotations,
    config: &Config,
    ped: &dyn Pedestal,
) -> Result<Option<image::FirmwareEntry>, SpecError> {
    let Some(index) = image::read_index(rootfs)? else {
        return Ok(None);
    };
    let host = image::Host {
        pedestal: ped.kind(),
        archs: ped.archs(),
        board: image::HostBoard::of(config),
        os: annotations.os.clone(),
    };
    Ok(Some(image::select(&index, &host)?.clone()))
}

/// Builds the instance spec of a bundle whose rootfs is already mounted, and the
/// pedestal that will run it.
pub fn build(
    id: &str,
    namespace: &str,
    bundle: &Path,
    config: &Config,
) -> Result<(InstanceSpec, Box<dyn Pedestal>), SpecError> {
    build_noting(id, namespace, bundle, config, &mut None)
}

/// [`build`], noting in `chosen` the pedestal and how it was chosen as soon as
/// it is (so that a later error can say so).
pub fn build_noting(
    id: &str,
    namespace: &str,
    bundle: &Path,
    config: &Config,
    chosen: &mut Option<pedestal::detect::Chosen>,
) -> Result<(InstanceSpec, Box<dyn Pedestal>), SpecError> {
    let oci = load_oci_spec(bundle)?;
    let mut annotations = Annotations::from_spec(&oci)?;
    for w in &annotations.warnings {
        log::warn!("{id}: {w}");
    }
    let sandbox = annotations.is_sandbox();
    let choice = pedestal::detect::choose(annotations.pedestal, config)?;
    let kind = choice.kind;
    let choice = chosen.insert(choice);
    if kind == PedestalKind::Sim && !config.sim.enable {
        return Err(SpecError::SimDisabled {
            config: config.origin.as_ref().map_or_else(
                || {
                    crate::config::config_path(std::env::var_os("MICRUN_CONFIG").as_deref())
                        .display()
                        .to_string()
                },
                |p| p.display().to_string(),
            ),
        });
    }
    let ped = pedestal::for_chosen(choice, config)?;
    let terminal = oci
        .process
        .as_ref()
        .is_some_and(|p| p.terminal.unwrap_or(false));
    let rootfs = rootfs_path(bundle, &oci);
    // A packed image's index picks the firmware; its defaults join the annotations
    // before anything reads them (resources, agent mode, pedestal checks).
    let entry = if sandbox || annotations.firmware_path.is_some() {
        None
    } else {
        select_firmware(&rootfs, &annotations, config, ped.as_ref())?
    };
    if let Some(entry) = &entry {
        log::info!(
            "{id}: the image's firmware for this host: {}",
            entry.tuple()
        );
        let empty = Default::default();
        let given = oci.annotations.as_ref().unwrap_or(&empty);
        annotations = Annotations::parse(&image::with_defaults(given, entry))?;
    }
    let linux_resources = oci.linux.as_ref().and_then(|l| l.resources.as_ref());
    let resources = resources::map_resources(
        linux_resources,
        &annotations,
        &host_cpus(),
        &config.resources,
    )?;
    for what in &resources.ignored {
        log::info!("{id}: linux.resources {what} has no pedestal equivalent; ignored");
    }

    let (firmware, image) = if sandbox {
        (PathBuf::new(), None)
    } else {
        let fw = match &entry {
            Some(entry) => firmware::resolve_in_rootfs(&rootfs, &entry.path, "firmware")?,
            None => firmware::resolve_firmware(&rootfs, annotations.firmware_path.as_deref())?,
        };
        let image = ped.inspect_firmware(&fw, &annotations.image)?;
        // Both the container's firmware_hash and the index's sha256 must hold (the
        // index's says the file is the one packed; the file is read once).
        let packed = entry.as_ref().and_then(|e| {
            crate::annotations::parse_sha256(&e.sha256).map(|want| (e.path.as_str(), want))
        });
        if annotations.firmware_hash.is_some() || packed.is_some() {
            let actual = firmware::sha256_file(&fw)?;
            if let Some(want) = annotations.firmware_hash {
                firmware::check_hash(&fw, actual, want)?;
            }
            if let Some((path, want)) = packed.filter(|&(_, want)| want != actual) {
                return Err(ImageError::FirmwareChanged {
                    path: path.to_owned(),
                    expected: firmware::hex(&want),
                    actual: firmware::hex(&actual),
                }
                .into());
            }
        }
        (fw, Some(image))
    };

    let spec = InstanceSpec {
        id: id.to_string(),
        namespace: namespace.to_string(),
        bundle: bundle.to_path_buf(),
        rootfs,
        firmware,
        image,
        pedestal: kind,
        resources,
        annotations,
        terminal,
        sandbox,
    };
    if !sandbox {
        ped.check(&spec)?;
    }
    Ok((spec, ped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firmware::Arch;
    use std::fs;

    /// A bundle for the sim pedestal whose image has a firmware index with one entry
    /// (a copy of /bin/true, an ELF of the host's machine) and the sha256 `sha256`.
    fn packed_bundle(dir: &Path, sha256: Option<&str>) -> (PathBuf, String) {
        let rootfs = dir.join("rootfs");
        let arch = Arch::parse(std::env::consts::ARCH).unwrap();
        let rel = format!("micrun/sim/b/demo-{arch}/fw");
        fs::create_dir_all(rootfs.join(&rel).parent().unwrap()).unwrap();
        fs::copy("/bin/true", rootfs.join(&rel)).unwrap();
        let actual = firmware::sha256_file(&rootfs.join(&rel)).unwrap();
        let index = serde_json::json!({"schemaVersion": 1, "firmware": [{
            "board": "b", "os": "demo", "arch": arch.name(), "pedestal": "sim",
            "path": rel, "sha256": sha256.map_or_else(|| firmware::hex(&actual), str::to_owned),
            "size": 1,
        }]});
        fs::write(rootfs.join(image::INDEX_PATH), index.to_string()).unwrap();
        let config = serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "annotations": {crate::annotations::PEDESTAL: "sim"},
        });
        fs::write(dir.join("config.json"), config.to_string()).unwrap();
        (rootfs, rel)
    }

    #[test]
    fn the_index_picks_the_firmware_and_its_sha256_is_checked() {
        let dir = std::env::temp_dir().join(format!("micrun-spec-index-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let mut config = Config::default();
        config.sim.enable = true;
        config.state_dir = dir.join("state");

        let (rootfs, rel) = packed_bundle(&dir, None);
        let (spec, _) = build("c1", "default", &dir, &config).unwrap();
        assert_eq!(spec.firmware, fs::canonicalize(rootfs.join(&rel)).unwrap());

        fs::remove_dir_all(dir.join("rootfs")).unwrap();
        packed_bundle(&dir, Some(&"00".repeat(32)));
        let err = build("c2", "default", &dir, &config).err().unwrap();
        assert!(
            matches!(err, SpecError::Image(ImageError::FirmwareChanged { .. })),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&rel) && text.contains(&"00".repeat(32)),
            "{text}"
        );
        assert!(text.contains(image::INDEX_PATH), "{text}");
        // The container's own firmware_hash, right for the file, does not excuse
        // the index's: both must hold.
        let actual = firmware::hex(&firmware::sha256_file(&rootfs.join(&rel)).unwrap());
        let oci = serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "annotations": {
                crate::annotations::PEDESTAL: "sim",
                crate::annotations::FIRMWARE_HASH: actual,
            },
        });
        fs::write(dir.join("config.json"), oci.to_string()).unwrap();
        let err = build("c3", "default", &dir, &config).err().unwrap();
        assert!(
            matches!(err, SpecError::Image(ImageError::FirmwareChanged { .. })),
            "{err}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
