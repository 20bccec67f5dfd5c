//! The parts of an OCI runtime spec (a bundle's `config.json`) that micrun reads.
//!
//! These are our own types, not oci-spec's, for binary size: deserializing
//! `oci_spec::runtime::Spec` checks `process.execCPUAffinity` with a regex, which
//! links the `regex` crate (about 380 KiB of the static shim). Field names follow the
//! OCI runtime spec (camelCase in JSON); every field is optional, as in the spec, and
//! fields micrun does not read are ignored. Settings micrun only reports as ignored
//! (`pids`, `blockIO`, …) are kept as "present or not" without their contents.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::de::IgnoredAny;
use serde::Deserialize;

/// The top level of `config.json`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// `root`: the container's root filesystem.
    #[serde(default)]
    pub root: Option<Root>,
    /// `process`: the container's process.
    #[serde(default)]
    pub process: Option<Process>,
    /// `annotations`: arbitrary metadata, where micrun's settings live.
    #[serde(default)]
    pub annotations: Option<HashMap<String, String>>,
    /// `linux`: Linux-specific settings.
    #[serde(default)]
    pub linux: Option<Linux>,
}

/// `root`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Root {
    /// `root.path`: absolute, or relative to the bundle.
    #[serde(default)]
    pub path: PathBuf,
}

/// `process`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    /// `process.terminal`: the container gets a terminal.
    #[serde(default)]
    pub terminal: Option<bool>,
    /// `process.args`: the command line, `argv[0]` first.
    #[serde(default)]
    pub args: Option<Vec<String>>,
}

/// `linux`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Linux {
    /// `linux.resources`.
    #[serde(default)]
    pub resources: Option<LinuxResources>,
}

/// `linux.resources`; also the JSON of a task update request.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinuxResources {
    /// `memory`.
    #[serde(default)]
    pub memory: Option<LinuxMemory>,
    /// `cpu`.
    #[serde(default)]
    pub cpu: Option<LinuxCpu>,
    /// `pids` (present or not).
    #[serde(default)]
    pub pids: Option<IgnoredAny>,
    /// `blockIO` (present or not).
    #[serde(default, rename = "blockIO")]
    pub block_io: Option<IgnoredAny>,
    /// `hugepageLimits` (how many).
    #[serde(default)]
    pub hugepage_limits: Option<Vec<IgnoredAny>>,
    /// `network` (present or not).
    #[serde(default)]
    pub network: Option<IgnoredAny>,
    /// `rdma` (present or not).
    #[serde(default)]
    pub rdma: Option<IgnoredAny>,
    /// `unified`: cgroup v2 key/value settings.
    #[serde(default)]
    pub unified: Option<HashMap<String, String>>,
}

/// `linux.resources.memory`, in bytes where a size.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinuxMemory {
    /// `limit`.
    #[serde(default)]
    pub limit: Option<i64>,
    /// `reservation`.
    #[serde(default)]
    pub reservation: Option<i64>,
    /// `swap`.
    #[serde(default)]
    pub swap: Option<i64>,
    /// `kernel` (deprecated in the spec).
    #[serde(default)]
    pub kernel: Option<i64>,
    /// `kernelTCP`.
    #[serde(default, rename = "kernelTCP")]
    pub kernel_tcp: Option<i64>,
    /// `swappiness`.
    #[serde(default)]
    pub swappiness: Option<u64>,
    /// `disableOOMKiller`.
    #[serde(default, rename = "disableOOMKiller")]
    pub disable_oom_killer: Option<bool>,
    /// `useHierarchy`.
    #[serde(default)]
    pub use_hierarchy: Option<bool>,
    /// `checkBeforeUpdate`.
    #[serde(default)]
    pub check_before_update: Option<bool>,
}

/// `linux.resources.cpu`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinuxCpu {
    /// `shares`: relative weight.
    #[serde(default)]
    pub shares: Option<u64>,
    /// `quota`: CFS quota in µs per period.
    #[serde(default)]
    pub quota: Option<i64>,
    /// `burst`, µs.
    #[serde(default)]
    pub burst: Option<u64>,
    /// `period`: CFS period, µs.
    #[serde(default)]
    pub period: Option<u64>,
    /// `realtimeRuntime`, µs.
    #[serde(default)]
    pub realtime_runtime: Option<i64>,
    /// `realtimePeriod`, µs.
    #[serde(default)]
    pub realtime_period: Option<u64>,
    /// `cpus`: a cpuset list.
    #[serde(default)]
    pub cpus: Option<String>,
    /// `mems`: a list of memory nodes.
    #[serde(default)]
    pub mems: Option<String>,
    /// `idle`: cgroup v2 `cpu.idle`.
    #[serde(default)]
    pub idle: Option<i64>,
}

/// A `config.json` that cannot be read or is not a runtime spec.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not a runtime spec; the serde error gives line and column.
    #[error("{} is not a valid OCI runtime spec: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// A field the runtime spec requires on Linux is absent or empty.
    #[error(
        "{} has no `{field}`: an OCI runtime spec for Linux must name the container's root \
         filesystem, e.g. \"root\": {{\"path\": \"rootfs\"}} (containerd and iSulad write it)",
        path.display()
    )]
    Missing { path: PathBuf, field: &'static str },
}

impl Spec {
    /// Reads and parses the runtime spec at `path`.
    pub fn load(path: &Path) -> Result<Spec, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let spec: Spec = serde_json::from_slice(&bytes).map_err(|source| LoadError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        // The runtime spec requires `root` (and `root.path`) on Linux; without them
        // there is no rootfs to find the firmware in.
        let missing = match &spec.root {
            None => Some("root"),
            Some(root) if root.path.as_os_str().is_empty() => Some("root.path"),
            Some(_) => None,
        };
        if let Some(field) = missing {
            return Err(LoadError::Missing {
                path: path.to_path_buf(),
                field,
            });
        }
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config.json as containerd writes it (shortened), with fields micrun does not
    /// read, including the `execCPUAffinity` whose regex check the types avoid.
    const CONTAINERD_SPEC: &str = r#"{
        "ociVersion": "1.2.0",
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["/firmware.elf", "-v"],
            "env": ["PATH=/usr/bin"],
            "cwd": "/",
            "capabilities": {"bounding": ["CAP_KILL"]},
            "noNewPrivileges": true,
            "execCPUAffinity": {"initial": "0-1", "final": "0"}
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "h",
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "annotations": {"org.openeuler.micrun.container.max_vcpu_num": "2"},
        "linux": {
            "resources": {
                "devices": [{"allow": false, "access": "rwm"}],
                "memory": {"limit": 67108864, "reservation": 1048576, "swap": 134217728,
                           "kernelTCP": 1, "disableOOMKiller": false},
                "cpu": {"shares": 1024, "quota": 150000, "period": 100000,
                        "realtimeRuntime": 10, "realtimePeriod": 20,
                        "cpus": "0-1", "mems": "0", "idle": 0, "burst": 5},
                "pids": {"limit": 10},
                "blockIO": {"weight": 10},
                "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
                "network": {"classID": 1},
                "rdma": {"mlx5_0": {"hcaHandles": 1}},
                "unified": {"memory.high": "1M"},
                "someFutureKnob": {"x": 1}
            },
            "cgroupsPath": "/default/c1",
            "namespaces": [{"type": "pid"}]
        }
    }"#;

    #[test]
    fn reads_what_micrun_uses_and_ignores_the_rest() {
        let spec: Spec = serde_json::from_str(CONTAINERD_SPEC).unwrap();
        assert_eq!(spec.root.unwrap().path, PathBuf::from("rootfs"));
        let process = spec.process.unwrap();
        assert_eq!(process.terminal, Some(true));
        assert_eq!(process.args.unwrap(), ["/firmware.elf", "-v"]);
        assert_eq!(
            spec.annotations.unwrap()["org.openeuler.micrun.container.max_vcpu_num"],
            "2"
        );
        let res = spec.linux.unwrap().resources.unwrap();
        assert_eq!(
            res.memory.unwrap(),
            LinuxMemory {
                limit: Some(64 << 20),
                reservation: Some(1 << 20),
                swap: Some(128 << 20),
                kernel_tcp: Some(1),
                disable_oom_killer: Some(false),
                ..LinuxMemory::default()
            }
        );
        assert_eq!(
            res.cpu.unwrap(),
            LinuxCpu {
                shares: Some(1024),
                quota: Some(150_000),
                burst: Some(5),
                period: Some(100_000),
                realtime_runtime: Some(10),
                realtime_period: Some(20),
                cpus: Some("0-1".into()),
                mems: Some("0".into()),
                idle: Some(0),
            }
        );
        assert!(res.pids.is_some() && res.block_io.is_some());
        assert!(res.network.is_some() && res.rdma.is_some());
        assert_eq!(res.hugepage_limits.map(|h| h.len()), Some(1));
        assert_eq!(res.unified.unwrap()["memory.high"], "1M");
    }

    #[test]
    fn everything_is_optional() {
        assert_eq!(serde_json::from_str::<Spec>("{}").unwrap(), Spec::default());
        let spec: Spec = serde_json::from_str(
            r#"{"root": {}, "process": {}, "annotations": null,
                "linux": {"resources": {"cpu": {}, "memory": null, "pids": null}}}"#,
        )
        .unwrap();
        assert_eq!(spec.root, Some(Root::default()));
        assert_eq!(spec.process, Some(Process::default()));
        assert_eq!(spec.annotations, None);
        let res = spec.linux.unwrap().resources.unwrap();
        assert_eq!(res.cpu, Some(LinuxCpu::default()));
        assert_eq!(res.memory, None);
        assert!(res.pids.is_none());
    }

    #[test]
    fn wrong_types_are_errors() {
        for bad in [
            r#"{"process": {"terminal": "yes"}}"#,
            r#"{"process": {"args": "/fw"}}"#,
            r#"{"annotations": {"a": 1}}"#,
            r#"{"linux": {"resources": {"memory": {"limit": "1G"}}}}"#,
            r#"{"linux": {"resources": {"cpu": {"shares": -1}}}}"#,
            r#"{"linux": {"resources": {"unified": {"a": 1}}}}"#,
            r#""a string""#,
        ] {
            assert!(serde_json::from_str::<Spec>(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn load_errors_name_the_file_and_the_place() {
        let dir = std::env::temp_dir().join(format!("micrun-oci-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.json");

        let err = Spec::load(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("cannot read {}: ", path.display())),
            "{err}"
        );

        std::fs::write(
            &path,
            "{\n  \"process\": {\n    \"terminal\": \"yes\"\n  }\n}\n",
        )
        .unwrap();
        let err = Spec::load(&path).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{} is not a valid OCI runtime spec: invalid type: string \"yes\", \
                 expected a boolean at line 3 column 21",
                path.display()
            )
        );

        for (text, field) in [
            (r#"{"process": {"args": ["/fw"]}}"#, "root"),
            (r#"{"root": null}"#, "root"),
            (r#"{"root": {}}"#, "root.path"),
            (r#"{"root": {"path": ""}}"#, "root.path"),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = Spec::load(&path).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("{} has no `{field}`: ", path.display())),
                "{text}: {err}"
            );
        }

        std::fs::write(&path, CONTAINERD_SPEC).unwrap();
        let spec = Spec::load(&path).unwrap();
        assert_eq!(spec.process.unwrap().terminal, Some(true));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
