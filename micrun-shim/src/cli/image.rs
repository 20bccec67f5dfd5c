//! `micrun image pack` and `micrun image inspect` (docs/images.md).
//!
//! Pack: firmware files, each with its [board, os, arch, pedestal] → one layer
//! (every firmware under `micrun/<pedestal>/<board>/<os>-<arch>/` and the index
//! `crate::image::INDEX_PATH`), one image config and manifest per host platform,
//! an image index over them, written as an OCI archive or layout. Same inputs, same
//! bytes: entries sorted, mtime 0, uid/gid 0, fixed modes, JSON in a fixed order.
//!
//! Inspect: reads an archive, a layout or an image in containerd and prints the
//! tuples it offers and which one this host would pick ([`crate::image::select`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use argh::FromArgs;
use serde_json::{json, Value};
use sha2::Digest;

use super::fail;
use super::oci_layout::{self, Layout, Source};
use crate::annotations::{Annotations, PREFIX};
use crate::config::{Config, PedestalKind};
use crate::error::quote;
use crate::firmware::{self, Arch, ImageKind};
use crate::image::{
    self, FirmwareEntry, FirmwareIndex, Host, HostBoard, INDEX_PATH, INDEX_SCHEMA, LABEL_FIRMWARE,
    LABEL_SCHEMA, LABEL_TUPLES, RESERVED_ANNOTATIONS,
};

/// The architectures a firmware may be packed for.
const ARCHS: [Arch; 5] = [
    Arch::Aarch64,
    Arch::Arm,
    Arch::Riscv64,
    Arch::Riscv32,
    Arch::X86_64,
];

/// The image's entrypoint: CRI needs one, the shim does not run it (the firmware the
/// index picks is what runs).
pub const ENTRYPOINT: &str = "/micrun/firmware.json";

/// Work with RTOS firmware images.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "image")]
pub struct ImageCommand {
    /// what to do
    #[argh(subcommand)]
    pub command: ImageSub,
}

/// The `image` subcommands.
#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum ImageSub {
    /// `pack`.
    Pack(Pack),
    /// `inspect`.
    Inspect(Inspect),
}

/// Pack firmware into an OCI image. Each FIRMWARE takes the --board, --os, --arch
/// and --pedestal given in the same position (a flag given once applies to all).
/// --arch defaults to the ELF's machine. The image is reproducible: the same inputs
/// give the same digest.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "pack")]
pub struct Pack {
    /// the firmware files (ELF; raw or bios images with the firmware_kind annotation)
    #[argh(positional)]
    pub firmware: Vec<PathBuf>,
    /// board it is built for: a device-tree compatible string or the name hosts set as [board] name in the micrun config
    #[argh(option)]
    pub board: Vec<String>,
    /// the RTOS: zephyr, uniproton, ...
    #[argh(option)]
    pub os: Vec<String>,
    /// CPU architecture: aarch64, arm, riscv64, riscv32, x86_64 (default: the ELF's)
    #[argh(option)]
    pub arch: Vec<String>,
    /// pedestal (the hypervisor): qemu, sim, xen, baremetal
    #[argh(option)]
    pub pedestal: Vec<String>,
    /// another name for --pedestal (give one of the two)
    #[argh(option)]
    pub hypervisor: Vec<String>,
    /// the Xen boot image of each xen firmware, in their order
    #[argh(option)]
    pub boot_image: Vec<PathBuf>,
    /// default annotation KEY=VALUE (org.openeuler.micrun.*) for every firmware; the container's own win
    #[argh(option)]
    pub annotation: Vec<String>,
    /// host platform OS/ARCH the image is for, repeatable (default: from the pedestals)
    #[argh(option)]
    pub platform: Vec<String>,
    /// image name, e.g. localhost/micrun/zephyr:1.0
    #[argh(option)]
    pub tag: String,
    /// where to write: NAME.tar for an OCI archive, else an OCI layout directory (must not exist)
    #[argh(option, short = 'o')]
    pub output: PathBuf,
}

/// Show the firmware an image offers and which this host would run.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "inspect")]
pub struct Inspect {
    /// an OCI archive, an OCI layout directory, or (with --address) an image name in containerd
    #[argh(positional)]
    pub image: String,
    /// containerd's socket: read IMAGE from its content store (with `ctr`)
    #[argh(option)]
    pub address: Option<PathBuf>,
    /// containerd namespace (default: default)
    #[argh(option, default = "String::from(\"default\")")]
    pub namespace: String,
    /// the ctr binary (default: ctr)
    #[argh(option, default = "PathBuf::from(\"ctr\")")]
    pub ctr: PathBuf,
    /// the micrun config to judge the host by (default: $MICRUN_CONFIG or /etc/micrun/config.toml)
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// the pedestal to judge for (default: the one the shim would choose)
    #[argh(option)]
    pub pedestal: Option<String>,
}

/// Runs `micrun image …`.
pub fn run(cmd: ImageCommand) -> i32 {
    match cmd.command {
        ImageSub::Pack(p) => match pack(&p) {
            Ok(out) => {
                println!("{out}");
                0
            }
            Err(e) => fail(e),
        },
        ImageSub::Inspect(i) => match inspect(&i) {
            Ok(out) => {
                print!("{out}");
                0
            }
            Err(e) => fail(e),
        },
    }
}

/// One firmware to pack, checked.
struct Packed {
    entry: FirmwareEntry,
    data: Vec<u8>,
    boot: Option<(String, Vec<u8>)>,
}

/// The `i`-th of `values` (a flag given once applies to every firmware).
fn nth<'a, T>(values: &'a [T], i: usize, n: usize, flag: &str) -> Result<Option<&'a T>, String> {
    match values.len() {
        0 => Ok(None),
        1 => Ok(values.first()),
        len if len == n => Ok(values.get(i)),
        len => Err(format!(
            "--{flag} is given {len} times for {n} firmware files; give it once (for all) or once per firmware, in their order"
        )),
    }
}

/// A board or os name: it becomes a path component and a label value.
fn check_name(flag: &str, value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && !value.starts_with('.')
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._,+-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "--{flag} {}: use 1 to 128 letters, digits and . _ , + - (not starting with .)",
            quote(value)
        ))
    }
}

/// The file name of `path`, checked to be a plain name for the layer.
fn file_name(path: &Path) -> Result<String, String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
        return Err(format!(
            "{}: the file needs a plain name (it is kept in the image)",
            path.display()
        ));
    }
    Ok(name)
}

/// The OCI architecture of a Linux host that drives firmware of `arch` on its own cores.
fn host_arch_for(arch: Arch) -> &'static str {
    match arch {
        Arch::Aarch64 | Arch::Arm => "arm64",
        Arch::Riscv64 | Arch::Riscv32 => "riscv64",
        Arch::X86_64 => "amd64",
    }
}

/// The host platforms `entry` can be run from: qemu anywhere QEMU runs (amd64,
/// arm64); sim a host of the firmware's own architecture; xen and baremetal the
/// SoC's Linux, of the firmware's architecture family.
fn platforms_for(entry: &FirmwareEntry, arch: Arch) -> Vec<String> {
    match entry.pedestal {
        PedestalKind::Qemu => vec!["linux/amd64".into(), "linux/arm64".into()],
        PedestalKind::Sim => vec![format!(
            "linux/{}",
            match arch {
                Arch::Arm => "arm",
                a => host_arch_for(a),
            }
        )],
        PedestalKind::Xen | PedestalKind::Baremetal => {
            vec![format!("linux/{}", host_arch_for(arch))]
        }
    }
}

/// Reads and checks the inputs of `micrun image pack`.
fn collect(p: &Pack) -> Result<Vec<Packed>, String> {
    let n = p.firmware.len();
    if n == 0 {
        return Err("no firmware given: micrun image pack --board B --os O --pedestal P --tag NAME -o OUT.tar FIRMWARE.elf".into());
    }
    let mut defaults = BTreeMap::new();
    for a in &p.annotation {
        let Some((k, v)) = a.split_once('=') else {
            return Err(format!("--annotation {}: give KEY=VALUE", quote(a)));
        };
        if !k.starts_with(PREFIX) {
            return Err(format!(
                "--annotation {}: only micrun's annotations ({PREFIX}*) can be image defaults",
                quote(k)
            ));
        }
        if RESERVED_ANNOTATIONS.contains(&k) {
            return Err(format!(
                "--annotation {k}: pack sets it (use --pedestal, the firmware's own path; the sha256 is computed)"
            ));
        }
        defaults.insert(k.to_owned(), v.to_owned());
    }
    let parsed = Annotations::parse(&defaults.clone().into_iter().collect::<HashMap<_, _>>())
        .map_err(|e| e.to_string())?;
    if let Some(w) = parsed.warnings.first() {
        return Err(format!("--annotation: {w}"));
    }
    // --hypervisor is --pedestal under the and the labels' other word.
    let (pedestals, ped_flag) = match (p.pedestal.is_empty(), p.hypervisor.is_empty()) {
        (false, false) => {
            return Err(
                "--pedestal and --hypervisor are one setting under two names; give one of them"
                    .into(),
            )
        }
        (true, false) => (&p.hypervisor, "hypervisor"),
        _ => (&p.pedestal, "pedestal"),
    };
    let mut xen_count = 0;
    for i in 0..n {
        if nth(pedestals, i, n, ped_flag)?.is_some_and(|s| s.trim() == "xen") {
            xen_count += 1;
        }
    }
    if !p.boot_image.is_empty() && p.boot_image.len() != xen_count {
        let times = match p.boot_image.len() {
            1 => "once".to_owned(),
            n => format!("{n} times"),
        };
        return Err(format!(
            "--boot-image is given {times} for {xen_count} xen firmware; give one per xen firmware, in their order"
        ));
    }
    let mut out: Vec<Packed> = Vec::new();
    let mut xen_seen = 0;
    for (i, path) in p.firmware.iter().enumerate() {
        let need = |flag: &str, v: Option<&String>| {
            v.cloned().ok_or_else(|| {
                format!(
                    "{}: --{flag} is missing (give it once for all firmware or once per firmware)",
                    path.display()
                )
            })
        };
        let board = need("board", nth(&p.board, i, n, "board")?)?;
        let os = need("os", nth(&p.os, i, n, "os")?)?;
        let ped_name = need(ped_flag, nth(pedestals, i, n, ped_flag)?)?;
        check_name("board", &board)?;
        check_name("os", &os)?;
        let pedestal = PedestalKind::parse(&ped_name).ok_or_else(|| {
            format!(
                "--{ped_flag} {}: unknown pedestal (expected {})",
                quote(&ped_name),
                PedestalKind::NAMES
            )
        })?;
        let arch = match nth(&p.arch, i, n, "arch")? {
            Some(a) => Some(Arch::parse(a).ok_or_else(|| {
                format!(
                    "--arch {}: unknown architecture (expected aarch64, arm, riscv64, riscv32 or x86_64)",
                    quote(a)
                )
            })?),
            None => None,
        };
        let archs: Vec<Arch> = match arch {
            Some(a) => vec![a],
            None => ARCHS.to_vec(),
        };
        let other_kinds = pedestal == PedestalKind::Qemu;
        let mut hints = parsed.image;
        if hints.kind.is_some() && hints.kind != Some(ImageKind::Elf) && arch.is_some() {
            hints.arch = arch;
        }
        // The shim's own checks, so pack refuses what Create would.
        let image = firmware::inspect(path, &hints, &archs, pedestal.name(), other_kinds)
            .map_err(|e| e.to_string())?;
        if arch.is_none() && image.kind() != ImageKind::Elf && hints.arch.is_none() {
            return Err(format!(
                "{}: a {} image has no header to read the architecture from; give --arch",
                path.display(),
                image.kind()
            ));
        }
        let arch = image.arch;
        let data =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let dir = format!("micrun/{pedestal}/{board}/{os}-{arch}");
        let name = file_name(path)?;
        let boot = if pedestal == PedestalKind::Xen && !p.boot_image.is_empty() {
            let b = &p.boot_image[xen_seen];
            xen_seen += 1;
            let bname = file_name(b)?;
            if bname == name {
                return Err(format!(
                    "{}: the boot image has the firmware's file name; rename one",
                    b.display()
                ));
            }
            let bdata = std::fs::read(b)
                .map_err(|e| format!("cannot read the Xen boot image {}: {e}", b.display()))?;
            Some((format!("{dir}/{bname}"), bdata))
        } else {
            None
        };
        let entry = FirmwareEntry {
            board,
            os,
            arch: arch.name().to_owned(),
            pedestal,
            path: format!("{dir}/{name}"),
            sha256: crate::firmware::hex(&sha2::Sha256::digest(&data)),
            size: data.len() as u64,
            boot_image: boot.as_ref().map(|(p, _)| p.clone()),
            annotations: defaults.clone(),
        };
        if let Some(dup) = out.iter().find(|o| o.entry.tuple() == entry.tuple()) {
            return Err(format!(
                "{} and {} are both for {}: one firmware per board/os/arch/pedestal",
                dup_path(p, &out, dup),
                path.display(),
                entry.tuple()
            ));
        }
        out.push(Packed { entry, data, boot });
    }
    Ok(out)
}

fn dup_path(p: &Pack, out: &[Packed], dup: &Packed) -> String {
    let i = out.iter().position(|o| std::ptr::eq(o, dup)).unwrap_or(0);
    p.firmware[i].display().to_string()
}

/// Checks `--platform OS/ARCH[/VARIANT]`.
fn check_platform(text: &str) -> Result<Vec<String>, String> {
    let parts: Vec<&str> = text.split('/').collect();
    let ok = (2..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    if ok {
        Ok(parts.into_iter().map(str::to_owned).collect())
    } else {
        Err(format!(
            "--platform {}: give OS/ARCH or OS/ARCH/VARIANT, e.g. linux/arm64",
            quote(text)
        ))
    }
}

/// The name's tag: what follows the last `:` after the last `/` (`latest` if none).
fn tag_of(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.rsplit_once(':') {
        Some((_, tag)) if !tag.is_empty() => tag.into(),
        _ => "latest".into(),
    }
}

/// The uncompressed layer: directories and files sorted by path.
fn layer(packed: &[Packed], index_json: &[u8]) -> Result<Vec<u8>, String> {
    let mut files: BTreeMap<String, (&[u8], u32)> = BTreeMap::new();
    files.insert(INDEX_PATH.to_owned(), (index_json, 0o644));
    for p in packed {
        files.insert(p.entry.path.clone(), (&p.data, 0o755));
        if let Some((path, data)) = &p.boot {
            files.insert(path.clone(), (data, 0o644));
        }
    }
    let mut dirs = BTreeSet::new();
    for path in files.keys() {
        let mut acc = String::new();
        for part in path
            .split('/')
            .rev()
            .skip(1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            acc.push_str(part);
            acc.push('/');
            dirs.insert(acc.clone());
        }
    }
    let mut entries: BTreeMap<String, Option<(&[u8], u32)>> = BTreeMap::new();
    for d in dirs {
        entries.insert(d, None);
    }
    for (p, f) in files {
        entries.insert(p, Some(f));
    }
    let io = |e: std::io::Error| format!("cannot build the layer: {e}");
    let mut b = tar::Builder::new(Vec::new());
    for (path, file) in entries {
        match file {
            None => oci_layout::append_dir(&mut b, &path, 0o755).map_err(io)?,
            Some((data, mode)) => oci_layout::append_file(&mut b, &path, data, mode).map_err(io)?,
        }
    }
    b.into_inner().map_err(io)
}

/// The image's labels (also its manifests' annotations).
fn labels(entries: &[FirmwareEntry]) -> BTreeMap<String, String> {
    let list: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({"board": e.board, "os": e.os, "arch": e.arch, "pedestal": e.pedestal, "sha256": e.sha256})
        })
        .collect();
    let mut l = BTreeMap::new();
    l.insert(LABEL_SCHEMA.to_owned(), INDEX_SCHEMA.to_string());
    l.insert(LABEL_FIRMWARE.to_owned(), Value::Array(list).to_string());
    l.insert(
        LABEL_TUPLES.to_owned(),
        entries
            .iter()
            .map(FirmwareEntry::tuple)
            .collect::<Vec<_>>()
            .join(","),
    );
    l
}

/// Builds the layout of `micrun image pack`.
pub fn build(p: &Pack) -> Result<(Layout, String), String> {
    if p.tag.trim().is_empty() || p.tag.chars().any(char::is_whitespace) {
        return Err(format!(
            "--tag {}: give an image name such as localhost/micrun/zephyr:1.0",
            quote(&p.tag)
        ));
    }
    let packed = collect(p)?;
    let entries: Vec<FirmwareEntry> = packed.iter().map(|p| p.entry.clone()).collect();
    let index = FirmwareIndex {
        schema_version: INDEX_SCHEMA,
        firmware: entries.clone(),
    };
    let index_json = serde_json::to_vec_pretty(&index).map_err(|e| e.to_string())?;
    let layer = layer(&packed, &index_json)?;

    let mut platforms: BTreeSet<Vec<String>> = BTreeSet::new();
    if p.platform.is_empty() {
        for pk in &packed {
            let arch = Arch::parse(&pk.entry.arch).unwrap_or(Arch::Aarch64);
            for pl in platforms_for(&pk.entry, arch) {
                platforms.insert(pl.split('/').map(str::to_owned).collect());
            }
        }
    } else {
        for pl in &p.platform {
            platforms.insert(check_platform(pl)?);
        }
    }

    let labels = labels(&entries);
    let mut layout = Layout::default();
    let layer_size = layer.len();
    let layer_digest = layout.add(layer);
    let mut manifests = Vec::new();
    for pl in &platforms {
        let mut config = json!({
            "created": "1970-01-01T00:00:00Z",
            "architecture": pl[1],
            "os": pl[0],
            "config": { "Entrypoint": [ENTRYPOINT], "Labels": labels },
            "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
            "history": [{ "created": "1970-01-01T00:00:00Z", "created_by": "micrun image pack" }],
        });
        let mut platform = json!({ "architecture": pl[1], "os": pl[0] });
        if let Some(v) = pl.get(2) {
            config["variant"] = json!(v);
            platform["variant"] = json!(v);
        }
        let config = serde_json::to_vec(&config).map_err(|e| e.to_string())?;
        let config_size = config.len();
        let config_digest = layout.add(config);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": oci_layout::MEDIA_TYPE_MANIFEST,
            "config": { "mediaType": oci_layout::MEDIA_TYPE_CONFIG, "digest": config_digest, "size": config_size },
            "layers": [{ "mediaType": oci_layout::MEDIA_TYPE_LAYER, "digest": layer_digest, "size": layer_size }],
            "annotations": labels,
        });
        let manifest = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
        let size = manifest.len();
        let d = layout.add(manifest);
        manifests.push(json!({
            "mediaType": oci_layout::MEDIA_TYPE_MANIFEST, "digest": d, "size": size, "platform": platform,
        }));
    }
    let image_index = json!({
        "schemaVersion": 2,
        "mediaType": oci_layout::MEDIA_TYPE_INDEX,
        "manifests": manifests,
        "annotations": labels,
    });
    let image_index = serde_json::to_vec(&image_index).map_err(|e| e.to_string())?;
    let size = image_index.len();
    let digest = layout.add(image_index);
    let top = json!({
        "schemaVersion": 2,
        "mediaType": oci_layout::MEDIA_TYPE_INDEX,
        "manifests": [{
            "mediaType": oci_layout::MEDIA_TYPE_INDEX, "digest": digest, "size": size,
            "annotations": {
                oci_layout::ANNOTATION_CONTAINERD_NAME: p.tag,
                oci_layout::ANNOTATION_REF_NAME: tag_of(&p.tag),
            },
        }],
    });
    layout.index = serde_json::to_vec(&top).map_err(|e| e.to_string())?;
    Ok((layout, digest))
}

/// `micrun image pack`: builds and writes the image; returns what to print.
pub fn pack(p: &Pack) -> Result<String, String> {
    let (layout, digest) = build(p)?;
    let archive = p
        .output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("tar"));
    layout
        .write(&p.output, archive)
        .map_err(|e| format!("cannot write {}: {e}", p.output.display()))?;
    Ok(format!("{} {digest} {}", p.output.display(), p.tag))
}

/// What `inspect` found in an image.
struct Found {
    name: Option<String>,
    digest: String,
    platforms: Vec<String>,
    firmware: Option<Vec<FirmwareEntry>>,
}

/// Walks an index/manifest from `digest` collecting platforms and the firmware label.
fn walk(
    src: &Source,
    digest: &str,
    media: &str,
    found: &mut Found,
    depth: u32,
) -> Result<(), String> {
    if depth > 4 {
        return Err("image indexes nest too deep".into());
    }
    let doc: Value = serde_json::from_slice(&src.blob(digest)?)
        .map_err(|e| format!("blob {digest} is not JSON: {e}"))?;
    let media = doc["mediaType"].as_str().unwrap_or(media);
    if media.contains("index") || media.contains("manifest.list") {
        let mut children = Vec::new();
        for m in doc["manifests"].as_array().into_iter().flatten() {
            let mut platform = None;
            if let Some(pl) = m.get("platform") {
                let mut s = format!(
                    "{}/{}",
                    pl["os"].as_str().unwrap_or("?"),
                    pl["architecture"].as_str().unwrap_or("?")
                );
                if let Some(v) = pl["variant"].as_str() {
                    s = format!("{s}/{v}");
                }
                found.platforms.push(s.clone());
                platform = Some(s);
            }
            if let Some(d) = m["digest"].as_str() {
                let mt = m["mediaType"].as_str().unwrap_or("");
                children.push((d, mt, platform));
            }
        }
        // One manifest is enough for the labels (they are the same in all): this
        // host's first, as containerd holds only the host's after a plain import;
        // the others only if it is missing.
        let host = host_platform();
        children.sort_by_key(|(_, _, pl)| pl.as_deref() != Some(host.as_str()));
        let (mut read_one, mut missed) = (false, None);
        for (d, mt, _) in children {
            if found.firmware.is_none() || mt.contains("index") {
                match walk(src, d, mt, found, depth + 1) {
                    Ok(()) => read_one = true,
                    Err(e) => {
                        missed.get_or_insert(e);
                    }
                }
            }
        }
        return match missed {
            Some(e) if !read_one => Err(e),
            _ => Ok(()),
        };
    }
    // A manifest: its annotations, else its config's labels.
    let mut label = doc["annotations"][LABEL_FIRMWARE]
        .as_str()
        .map(str::to_owned);
    if label.is_none() || found.platforms.is_empty() {
        if let Some(cd) = doc["config"]["digest"].as_str() {
            let config: Value = serde_json::from_slice(&src.blob(cd)?)
                .map_err(|e| format!("config {cd} is not JSON: {e}"))?;
            label = label.or_else(|| {
                config["config"]["Labels"][LABEL_FIRMWARE]
                    .as_str()
                    .map(str::to_owned)
            });
            if found.platforms.is_empty() {
                found.platforms.push(format!(
                    "{}/{}",
                    config["os"].as_str().unwrap_or("?"),
                    config["architecture"].as_str().unwrap_or("?")
                ));
            }
        }
    }
    if let Some(label) = label {
        let list: Vec<Value> = serde_json::from_str(&label)
            .map_err(|e| format!("label {LABEL_FIRMWARE} is not valid JSON: {e}"))?;
        let mut entries = Vec::new();
        for v in list {
            let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
            let pedestal = PedestalKind::parse(&s("pedestal")).ok_or_else(|| {
                format!(
                    "label {LABEL_FIRMWARE} names an unknown pedestal {}",
                    quote(&s("pedestal"))
                )
            })?;
            entries.push(FirmwareEntry {
                board: s("board"),
                os: s("os"),
                arch: s("arch"),
                pedestal,
                path: String::new(),
                sha256: s("sha256"),
                size: 0,
                boot_image: None,
                annotations: BTreeMap::new(),
            });
        }
        found.firmware = Some(entries);
    }
    Ok(())
}

/// This machine's OCI platform, `linux/<arch>` (as containerd's default matcher names it).
fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        a => a,
    };
    format!("linux/{arch}")
}

/// Reads what an image offers.
fn read_image(i: &Inspect) -> Result<Found, String> {
    if let Some(address) = &i.address {
        let src = Source::Containerd {
            ctr: i.ctr.clone(),
            address: address.clone(),
            namespace: i.namespace.clone(),
        };
        let list = oci_layout::run_ctr(&i.ctr, address, &i.namespace, &["images", "ls"])?;
        let list = String::from_utf8_lossy(&list);
        let row = list
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|cols| cols.first() == Some(&i.image.as_str()))
            .ok_or_else(|| {
                format!(
                    "image {} is not in containerd at {} (namespace {}); import or pull it first",
                    quote(&i.image),
                    address.display(),
                    i.namespace
                )
            })?;
        let (media, digest) = (
            row.get(1).copied().unwrap_or(""),
            row.get(2).copied().unwrap_or(""),
        );
        let mut found = Found {
            name: Some(i.image.clone()),
            digest: digest.to_owned(),
            platforms: Vec::new(),
            firmware: None,
        };
        walk(&src, digest, media, &mut found, 0)?;
        return Ok(found);
    }
    let src = Source::open(Path::new(&i.image))?;
    let top: Value = serde_json::from_slice(&src.index()?)
        .map_err(|e| format!("{}: index.json is not JSON: {e}", i.image))?;
    let first = top["manifests"]
        .as_array()
        .and_then(|m| m.first())
        .ok_or_else(|| format!("{}: index.json lists no image", i.image))?;
    let digest = first["digest"].as_str().unwrap_or("").to_owned();
    let mut found = Found {
        name: first["annotations"][oci_layout::ANNOTATION_CONTAINERD_NAME]
            .as_str()
            .or(first["annotations"][oci_layout::ANNOTATION_REF_NAME].as_str())
            .map(str::to_owned),
        digest: digest.clone(),
        platforms: Vec::new(),
        firmware: None,
    };
    walk(
        &src,
        &digest,
        first["mediaType"].as_str().unwrap_or(""),
        &mut found,
        0,
    )?;
    Ok(found)
}

/// The host as the shim would see it (its config, the pedestal it would choose).
fn this_host(i: &Inspect) -> Result<Host, String> {
    let config = Config::load_for(i.config.as_deref()).map_err(|e| e.to_string())?;
    let chosen = match &i.pedestal {
        Some(name) => {
            let kind = PedestalKind::parse(name).ok_or_else(|| {
                format!(
                    "--pedestal {}: unknown pedestal (expected {})",
                    quote(name),
                    PedestalKind::NAMES
                )
            })?;
            crate::pedestal::detect::choose(Some(kind), &config)
        }
        None => crate::pedestal::detect::choose(None, &config),
    }
    .map_err(|e| e.to_string())?;
    let ped = crate::pedestal::for_chosen(&chosen, &config).map_err(|e| e.to_string())?;
    Ok(Host {
        pedestal: ped.kind(),
        archs: ped.archs(),
        board: HostBoard::of(&config),
        os: None,
    })
}

/// `micrun image inspect`: returns the report.
pub fn inspect(i: &Inspect) -> Result<String, String> {
    let found = read_image(i)?;
    let mut out = String::new();
    out += &format!(
        "image:     {} ({})\n",
        found.name.as_deref().unwrap_or("(unnamed)"),
        found.digest
    );
    out += &format!("platforms: {}\n", found.platforms.join(", "));
    let Some(entries) = found.firmware else {
        out += "firmware:  no micrun firmware labels: a plain image; the shim takes /firmware.elf \
                 (or the first *.elf) for whatever pedestal it runs on\n";
        return Ok(out);
    };
    out += "firmware:\n";
    let w = |f: fn(&FirmwareEntry) -> &str, title: &str| {
        entries
            .iter()
            .map(|e| f(e).len())
            .chain([title.len()])
            .max()
            .unwrap_or(0)
    };
    let (wb, wo, wa) = (
        w(|e| &e.board, "BOARD"),
        w(|e| &e.os, "OS"),
        w(|e| &e.arch, "ARCH"),
    );
    out += &format!(
        "  {:wb$}  {:wo$}  {:wa$}  {:9}  SHA256\n",
        "BOARD", "OS", "ARCH", "PEDESTAL"
    );
    for e in &entries {
        out += &format!(
            "  {:wb$}  {:wo$}  {:wa$}  {:9}  {}\n",
            e.board,
            e.os,
            e.arch,
            e.pedestal.name(),
            e.sha256
        );
    }
    let index = FirmwareIndex {
        schema_version: INDEX_SCHEMA,
        firmware: entries,
    };
    match this_host(i) {
        Ok(host) => match image::select(&index, &host) {
            Ok(e) => out += &format!("this host: {host}\npicks:     {}\n", e.tuple()),
            Err(e) => out += &format!("this host: {host}\npicks:     nothing: {e}\n"),
        },
        Err(e) => out += &format!("this host: cannot tell: {e}\n"),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A `pack` of this test program (an ELF of the host's machine) for `pedestal`.
    fn pack_of(pedestal: &str, boot_image: Vec<PathBuf>, out: &Path) -> Pack {
        Pack {
            firmware: vec![std::env::current_exe().unwrap()],
            board: vec!["board-x".into()],
            os: vec!["zephyr".into()],
            arch: vec![std::env::consts::ARCH.into()],
            pedestal: vec![pedestal.into()],
            hypervisor: vec![],
            boot_image,
            annotation: vec![],
            platform: vec![],
            tag: "localhost/micrun/t:1".into(),
            output: out.to_owned(),
        }
    }

    /// The files of the one layer of `layout`, by path.
    fn layer_files(layout: &Layout) -> BTreeMap<String, Vec<u8>> {
        for blob in layout.blobs.values() {
            let mut files = BTreeMap::new();
            let mut archive = tar::Archive::new(blob.as_slice());
            let Ok(entries) = archive.entries() else {
                continue;
            };
            for e in entries.flatten() {
                let mut e = e;
                let path = e.path().unwrap().to_string_lossy().into_owned();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                files.insert(path, data);
            }
            if files.contains_key(INDEX_PATH) {
                return files;
            }
        }
        panic!("no layer with {INDEX_PATH}");
    }

    #[test]
    fn xen_firmware_carries_its_boot_image() {
        let dir = std::env::temp_dir().join(format!("micrun-pack-xen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let boot = dir.join("boot.bin");
        std::fs::write(&boot, b"xen boot image").unwrap();
        let (layout, _) = build(&pack_of("xen", vec![boot.clone()], &dir.join("o"))).unwrap();
        let files = layer_files(&layout);
        let index = image::parse_index(&files[INDEX_PATH]).unwrap();
        let arch = Arch::parse(std::env::consts::ARCH).unwrap();
        let want = format!("micrun/xen/board-x/zephyr-{arch}/boot.bin");
        assert_eq!(index.firmware[0].boot_image.as_deref(), Some(want.as_str()));
        assert_eq!(files[&want], b"xen boot image");
        // The boot image becomes the default of ped.conf at Create.
        let ann = image::with_defaults(&Default::default(), &index.firmware[0]);
        assert_eq!(ann[crate::annotations::PEDESTAL_CONF], want);

        // One --boot-image per xen firmware; none for other pedestals.
        let two = pack_of("xen", vec![boot.clone(), boot.clone()], &dir.join("o"));
        let err = build(&two).unwrap_err();
        assert!(
            err.contains("--boot-image is given 2 times for 1 xen firmware"),
            "{err}"
        );
        let err = build(&pack_of("qemu", vec![boot], &dir.join("o"))).unwrap_err();
        assert!(
            err.contains("--boot-image is given once for 0 xen firmware"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
