//! OCI image layouts for the `micrun` command: writing one (as an archive or a
//! directory, reproducibly and atomically) and reading blobs back from an archive,
//! a directory or containerd's content store (through `ctr`).
//!
//! Only the `micrun` command uses this module; the shim reads the unpacked rootfs.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// `application/vnd.oci.image.index.v1+json`
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// `application/vnd.oci.image.manifest.v1+json`
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// `application/vnd.oci.image.config.v1+json`
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// `application/vnd.oci.image.layer.v1.tar`: uncompressed, so the bytes do not
/// depend on a compressor's version.
pub const MEDIA_TYPE_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// The annotation containerd's importer takes the image name from.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The OCI annotation naming a reference in a layout's `index.json`.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The `oci-layout` file.
const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Blobs bigger than this are not kept when reading an archive (layers; inspect
/// needs only the JSON documents).
const MAX_DOCUMENT: u64 = 4 << 20;

/// `sha256:<hex>` of `data`.
pub fn digest(data: &[u8]) -> String {
    format!("sha256:{}", crate::firmware::hex(&Sha256::digest(data)))
}

/// A layout in memory: `index.json` and the blobs by digest.
#[derive(Debug, Default)]
pub struct Layout {
    /// `index.json`.
    pub index: Vec<u8>,
    /// Blobs by `sha256:<hex>`.
    pub blobs: BTreeMap<String, Vec<u8>>,
}

impl Layout {
    /// Adds a blob; returns its digest.
    pub fn add(&mut self, data: Vec<u8>) -> String {
        let d = digest(&data);
        self.blobs.insert(d.clone(), data);
        d
    }

    /// Writes the layout as a tar archive (`*.tar`) or a directory at `out`: first
    /// under a temporary name beside it, renamed at the end, so a failure leaves
    /// nothing. A directory must not exist yet; an archive replaces a file.
    pub fn write(&self, out: &Path, archive: bool) -> io::Result<()> {
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let name = out.file_name().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "the output names no file")
        })?;
        let tmp = parent.join(format!(
            ".{}.micrun-tmp-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let result = if archive {
            self.write_archive(&tmp)
        } else {
            if out.symlink_metadata().is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "it exists; remove it or choose another output",
                ));
            }
            self.write_dir(&tmp)
        };
        let result = result.and_then(|()| fs::rename(&tmp, out));
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
            let _ = fs::remove_dir_all(&tmp);
        }
        result
    }

    fn write_archive(&self, path: &Path) -> io::Result<()> {
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)?;
        let mut b = tar::Builder::new(io::BufWriter::new(file));
        append_dir(&mut b, "blobs/", 0o755)?;
        append_dir(&mut b, "blobs/sha256/", 0o755)?;
        for (d, data) in &self.blobs {
            let hex = d.trim_start_matches("sha256:");
            append_file(&mut b, &format!("blobs/sha256/{hex}"), data, 0o644)?;
        }
        append_file(&mut b, "index.json", &self.index, 0o644)?;
        append_file(&mut b, "oci-layout", OCI_LAYOUT, 0o644)?;
        let mut w = b.into_inner()?;
        w.flush()?;
        w.get_ref().sync_all()
    }

    fn write_dir(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)?;
        fs::create_dir_all(path.join("blobs/sha256"))?;
        for (d, data) in &self.blobs {
            fs::write(
                path.join("blobs/sha256")
                    .join(d.trim_start_matches("sha256:")),
                data,
            )?;
        }
        fs::write(path.join("index.json"), &self.index)?;
        fs::write(path.join("oci-layout"), OCI_LAYOUT)
    }
}

/// The fixed header of every entry this module writes: mtime 0, uid/gid 0, no names.
pub fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// Appends a directory entry (`path` ends with `/`).
pub fn append_dir<W: Write>(b: &mut tar::Builder<W>, path: &str, mode: u32) -> io::Result<()> {
    let mut h = header(tar::EntryType::Directory, mode, 0);
    b.append_data(&mut h, path, io::empty())
}

/// Appends a regular file.
pub fn append_file<W: Write>(
    b: &mut tar::Builder<W>,
    path: &str,
    data: &[u8],
    mode: u32,
) -> io::Result<()> {
    let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
    b.append_data(&mut h, path, data)
}

/// Where blobs are read from.
pub enum Source {
    /// An OCI archive read once: its small files by path.
    Archive {
        /// The archive.
        path: PathBuf,
        /// Files up to [`MAX_DOCUMENT`] bytes, by their path in the archive.
        files: BTreeMap<String, Vec<u8>>,
    },
    /// A layout directory.
    Dir(PathBuf),
    /// containerd's content store, through `ctr`.
    Containerd {
        /// The `ctr` binary.
        ctr: PathBuf,
        /// containerd's socket.
        address: PathBuf,
        /// The namespace.
        namespace: String,
    },
}

impl Source {
    /// Opens an archive (a file) or a layout directory.
    pub fn open(path: &Path) -> Result<Source, String> {
        let meta = fs::metadata(path).map_err(|e| {
            format!(
                "cannot read {}: {e}; give an OCI archive (.tar) or an OCI layout directory",
                path.display()
            )
        })?;
        if meta.is_dir() {
            if !path.join("index.json").is_file() {
                return Err(format!(
                    "{} is a directory without index.json, not an OCI image layout",
                    path.display()
                ));
            }
            return Ok(Source::Dir(path.to_owned()));
        }
        let file =
            fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let mut files = BTreeMap::new();
        let bad = |e: io::Error| {
            format!(
                "{} is not a readable OCI archive (a tar with index.json and blobs/): {e}",
                path.display()
            )
        };
        let mut archive = tar::Archive::new(io::BufReader::new(file));
        for entry in archive.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            if entry.header().entry_type() != tar::EntryType::Regular || entry.size() > MAX_DOCUMENT
            {
                continue;
            }
            let name = entry.path().map_err(bad)?.to_string_lossy().into_owned();
            let name = name.trim_start_matches("./").to_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).map_err(bad)?;
            files.insert(name, data);
        }
        if !files.contains_key("index.json") {
            return Err(format!(
                "{} has no index.json: not an OCI archive (docker save's format is not read; \
                 use skopeo copy docker-archive:… oci-archive:…)",
                path.display()
            ));
        }
        Ok(Source::Archive {
            path: path.to_owned(),
            files,
        })
    }

    /// The layout's `index.json`.
    pub fn index(&self) -> Result<Vec<u8>, String> {
        match self {
            Source::Archive { files, .. } => Ok(files["index.json"].clone()),
            Source::Dir(dir) => fs::read(dir.join("index.json"))
                .map_err(|e| format!("cannot read {}/index.json: {e}", dir.display())),
            Source::Containerd { .. } => Err("containerd has no index.json".to_owned()),
        }
    }

    /// The blob `digest` (`sha256:<hex>`), checked against its digest.
    pub fn blob(&self, digest_: &str) -> Result<Vec<u8>, String> {
        let hex = digest_
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| format!("unsupported digest {}", crate::error::quote(digest_)))?;
        let data =
            match self {
                Source::Archive { path, files } => files
                    .get(&format!("blobs/sha256/{hex}"))
                    .cloned()
                    .ok_or_else(|| format!("{} has no blob {digest_}", path.display()))?,
                Source::Dir(dir) => fs::read(dir.join("blobs/sha256").join(hex))
                    .map_err(|e| format!("cannot read blob {digest_} in {}: {e}", dir.display()))?,
                Source::Containerd {
                    ctr,
                    address,
                    namespace,
                } => run_ctr(ctr, address, namespace, &["content", "get", digest_])?,
            };
        if digest(&data) != digest_ {
            return Err(format!("blob {digest_} does not match its digest"));
        }
        Ok(data)
    }
}

/// Runs `ctr --address A --namespace N args…` and returns its stdout.
pub fn run_ctr(
    ctr: &Path,
    address: &Path,
    namespace: &str,
    args: &[&str],
) -> Result<Vec<u8>, String> {
    let out = Command::new(ctr)
        .arg("--address")
        .arg(address)
        .arg("--namespace")
        .arg(namespace)
        .args(args)
        .output()
        .map_err(|e| {
            format!(
                "cannot run {}: {e}; install containerd's ctr or give its path with --ctr",
                ctr.display()
            )
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "{} {} failed: {}",
            ctr.display(),
            args.join(" "),
            err.trim()
        ));
    }
    Ok(out.stdout)
}
