//! A deterministic writer of OCI image layout tars, for tests that import images
//! into containerd (`ctr images import`) without a registry or a build tool.
//!
//! ```no_run
//! use micrun_tests::oci::ImageBuilder;
//! let image = ImageBuilder::new("localhost/micrun/sim:test")
//!     .platform("zephyr", "arm64")
//!     .file("/firmware.elf", b"\x7fELF...".to_vec(), 0o755)
//!     .label("org.openeuler.micrun.example", "1")
//!     .entrypoint(["/firmware.elf"])
//!     .write_tar("/tmp/sim.tar".as_ref())
//!     .unwrap();
//! println!("manifest {}", image.manifest_digest);
//! ```
//!
//! The tar holds `oci-layout`, `index.json` and `blobs/sha256/*`: the image config
//! (JSON), the manifest (JSON) and one gzip-compressed layer tar. The index's one
//! manifest descriptor carries the platform and the annotations
//! `io.containerd.image.name` (the full name, which `ctr images import` uses) and
//! `org.opencontainers.image.ref.name` (the tag, which skopeo and umoci use to
//! select the image). Media types are those of the OCI image spec v1.
//!
//! Output is a pure function of the input: fixed mtimes (0), uid/gid 0, entries
//! sorted by path, JSON keys sorted, a fixed gzip header. The same builder gives
//! the same bytes and so the same digests.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// `application/vnd.oci.image.index.v1+json`
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// `application/vnd.oci.image.manifest.v1+json`
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// `application/vnd.oci.image.config.v1+json`
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// `application/vnd.oci.image.layer.v1.tar+gzip`
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The annotation containerd's importer reads the image name from.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The OCI annotation naming a reference (a tag) in an image layout's index.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The fixed modification time of every tar entry (the Unix epoch).
const MTIME: u64 = 0;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Dir { mode: u32 },
    File { data: Vec<u8>, mode: u32 },
    Symlink { target: String },
}

/// Builds a single-layer, single-platform OCI image. See the module docs.
#[derive(Debug, Clone)]
pub struct ImageBuilder {
    name: String,
    os: String,
    arch: String,
    variant: Option<String>,
    entries: BTreeMap<String, Entry>,
    labels: BTreeMap<String, String>,
    env: Vec<String>,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
}

/// What [`ImageBuilder::build`] made: every blob and the digests tests check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The image name as given to [`ImageBuilder::new`].
    pub name: String,
    /// The tag written as `org.opencontainers.image.ref.name`.
    pub tag: String,
    /// `sha256:<hex>` of the manifest: the image's digest once imported.
    pub manifest_digest: String,
    /// `sha256:<hex>` of the config blob (the image ID).
    pub config_digest: String,
    /// `sha256:<hex>` of the compressed layer blob.
    pub layer_digest: String,
    /// `sha256:<hex>` of the uncompressed layer tar, as in the config's `rootfs.diff_ids`.
    pub layer_diff_id: String,
    /// The `index.json` bytes.
    pub index: Vec<u8>,
    /// Blobs by `sha256:<hex>` digest: config, manifest, layer.
    pub blobs: BTreeMap<String, Vec<u8>>,
}

impl Image {
    /// The blob with digest `digest` (`sha256:<hex>`).
    pub fn blob(&self, digest: &str) -> Option<&[u8]> {
        self.blobs.get(digest).map(Vec::as_slice)
    }

    /// The manifest JSON bytes.
    pub fn manifest(&self) -> &[u8] {
        &self.blobs[&self.manifest_digest]
    }

    /// The config JSON bytes.
    pub fn config(&self) -> &[u8] {
        &self.blobs[&self.config_digest]
    }

    /// The compressed layer bytes.
    pub fn layer(&self) -> &[u8] {
        &self.blobs[&self.layer_digest]
    }

    /// The image layout as a tar: what `ctr images import`, `skopeo oci-archive:`
    /// and `tar -x` followed by `umoci` read.
    pub fn to_tar(&self) -> io::Result<Vec<u8>> {
        let mut b = tar::Builder::new(Vec::new());
        append_dir(&mut b, "blobs/", 0o755)?;
        append_dir(&mut b, "blobs/sha256/", 0o755)?;
        for (digest, data) in &self.blobs {
            let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
            append_file(&mut b, &format!("blobs/sha256/{hex}"), data, 0o644)?;
        }
        append_file(&mut b, "index.json", &self.index, 0o644)?;
        append_file(
            &mut b,
            "oci-layout",
            br#"{"imageLayoutVersion":"1.0.0"}"#,
            0o644,
        )?;
        b.into_inner()
    }
}

impl ImageBuilder {
    /// A builder for the image `name`, e.g. `localhost/micrun/sim:test`. The tag is
    /// what follows the last `:` after the last `/` (`latest` if there is none).
    /// The platform defaults to `linux` and the host's architecture in OCI terms.
    pub fn new(name: impl Into<String>) -> ImageBuilder {
        ImageBuilder {
            name: name.into(),
            os: "linux".into(),
            arch: host_arch().into(),
            variant: None,
            entries: BTreeMap::new(),
            labels: BTreeMap::new(),
            env: Vec::new(),
            entrypoint: None,
            cmd: None,
        }
    }

    /// Sets the platform, e.g. `("zephyr", "arm64")` or `("linux", "amd64")`.
    pub fn platform(mut self, os: impl Into<String>, arch: impl Into<String>) -> Self {
        self.os = os.into();
        self.arch = arch.into();
        self
    }

    /// Sets the platform's variant (e.g. `v8` for arm64).
    pub fn variant(mut self, variant: impl Into<String>) -> Self {
        self.variant = Some(variant.into());
        self
    }

    /// Adds a regular file at `path` (absolute or relative to the rootfs) with
    /// permission bits `mode`. Missing parent directories are added with 0755.
    /// A later entry at the same path replaces the earlier one.
    pub fn file(mut self, path: &str, data: impl Into<Vec<u8>>, mode: u32) -> Self {
        let p = self.add_parents(path);
        self.entries.insert(
            p,
            Entry::File {
                data: data.into(),
                mode: mode & 0o7777,
            },
        );
        self
    }

    /// Adds a directory at `path` with permission bits `mode`.
    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        let p = self.add_parents(path);
        self.entries.insert(
            p,
            Entry::Dir {
                mode: mode & 0o7777,
            },
        );
        self
    }

    /// Adds a symbolic link at `path` pointing to `target` (stored as given).
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let p = self.add_parents(path);
        self.entries.insert(
            p,
            Entry::Symlink {
                target: target.into(),
            },
        );
        self
    }

    /// Adds a label to the image config (`config.Labels`).
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Adds `KEY=value` to the image config's `Env`.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push(format!("{key}={value}"));
        self
    }

    /// Sets the image config's `Entrypoint`.
    pub fn entrypoint<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.entrypoint = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the image config's `Cmd` (the default arguments after the entrypoint).
    pub fn cmd<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.cmd = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// Normalises `path` (no leading `/`, no `.`/empty components) and adds the
    /// directories above it that are not there yet.
    fn add_parents(&mut self, path: &str) -> String {
        let parts: Vec<&str> = path
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        assert!(
            !parts.is_empty() && !parts.contains(&".."),
            "bad rootfs path {path:?}: must name an entry below / without `..`"
        );
        for i in 1..parts.len() {
            let dir = parts[..i].join("/");
            let e = self
                .entries
                .entry(dir.clone())
                .or_insert(Entry::Dir { mode: 0o755 });
            assert!(
                matches!(e, Entry::Dir { .. }),
                "bad rootfs path {path:?}: /{dir} is not a directory"
            );
        }
        parts.join("/")
    }

    /// The tag part of the name.
    fn tag(&self) -> String {
        let last = self.name.rsplit('/').next().unwrap_or(&self.name);
        match last.rsplit_once(':') {
            Some((_, tag)) if !tag.is_empty() => tag.into(),
            _ => "latest".into(),
        }
    }

    /// The uncompressed layer tar.
    fn layer_tar(&self) -> io::Result<Vec<u8>> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, entry) in &self.entries {
            match entry {
                Entry::Dir { mode } => append_dir(&mut b, &format!("{path}/"), *mode)?,
                Entry::File { data, mode } => append_file(&mut b, path, data, *mode)?,
                Entry::Symlink { target } => {
                    let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                    b.append_link(&mut h, path, target)?;
                }
            }
        }
        b.into_inner()
    }

    /// Builds every blob in memory.
    pub fn build(&self) -> io::Result<Image> {
        let layer_tar = self.layer_tar()?;
        let diff_id = sha256(&layer_tar);
        // A fixed gzip header: no name, mtime 0, OS "unknown".
        let mut gz = flate2::GzBuilder::new()
            .mtime(0)
            .operating_system(255)
            .write(Vec::new(), flate2::Compression::new(6));
        gz.write_all(&layer_tar)?;
        let layer = gz.finish()?;
        let layer_digest = sha256(&layer);

        let mut container_config = serde_json::Map::new();
        if !self.env.is_empty() {
            container_config.insert("Env".into(), json!(self.env));
        }
        if let Some(e) = &self.entrypoint {
            container_config.insert("Entrypoint".into(), json!(e));
        }
        if let Some(c) = &self.cmd {
            container_config.insert("Cmd".into(), json!(c));
        }
        if !self.labels.is_empty() {
            container_config.insert("Labels".into(), json!(self.labels));
        }
        let mut config = json!({
            "created": "1970-01-01T00:00:00Z",
            "architecture": self.arch,
            "os": self.os,
            "config": Value::Object(container_config),
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
            "history": [{ "created": "1970-01-01T00:00:00Z", "created_by": "micrun-tests ImageBuilder" }],
        });
        if let Some(v) = &self.variant {
            config["variant"] = json!(v);
        }
        let config = serde_json::to_vec(&config).map_err(io::Error::other)?;
        let config_digest = sha256(&config);

        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_MANIFEST,
            "config": { "mediaType": MEDIA_TYPE_CONFIG, "digest": config_digest, "size": config.len() },
            "layers": [{ "mediaType": MEDIA_TYPE_LAYER_GZIP, "digest": layer_digest, "size": layer.len() }],
        });
        let manifest = serde_json::to_vec(&manifest).map_err(io::Error::other)?;
        let manifest_digest = sha256(&manifest);

        let tag = self.tag();
        let mut platform = json!({ "architecture": self.arch, "os": self.os });
        if let Some(v) = &self.variant {
            platform["variant"] = json!(v);
        }
        let index = json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_INDEX,
            "manifests": [{
                "mediaType": MEDIA_TYPE_MANIFEST,
                "digest": manifest_digest,
                "size": manifest.len(),
                "platform": platform,
                "annotations": {
                    ANNOTATION_CONTAINERD_NAME: self.name,
                    ANNOTATION_REF_NAME: tag,
                },
            }],
        });
        let index = serde_json::to_vec(&index).map_err(io::Error::other)?;

        let mut blobs = BTreeMap::new();
        blobs.insert(config_digest.clone(), config);
        blobs.insert(manifest_digest.clone(), manifest);
        blobs.insert(layer_digest.clone(), layer);
        Ok(Image {
            name: self.name.clone(),
            tag,
            manifest_digest,
            config_digest,
            layer_digest,
            layer_diff_id: diff_id,
            index,
            blobs,
        })
    }

    /// Builds the image and writes its layout tar to `out`.
    pub fn write_tar(&self, out: &Path) -> io::Result<Image> {
        let image = self.build()?;
        std::fs::write(out, image.to_tar()?)?;
        Ok(image)
    }
}

/// The host's architecture in OCI/Go terms (`amd64`, `arm64`, ...).
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        other => other,
    }
}

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    let d = Sha256::digest(data);
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256:");
    for b in d.iter() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(MTIME);
    h.set_uid(0);
    h.set_gid(0);
    // Names stay empty: numeric ids only, as in the images docker and buildkit make
    // from scratch.
    h
}

fn append_dir(b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32) -> io::Result<()> {
    let mut h = header(tar::EntryType::Directory, mode, 0);
    b.append_data(&mut h, path, io::empty())
}

fn append_file(
    b: &mut tar::Builder<Vec<u8>>,
    path: &str,
    data: &[u8],
    mode: u32,
) -> io::Result<()> {
    let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
    b.append_data(&mut h, path, data)
}
