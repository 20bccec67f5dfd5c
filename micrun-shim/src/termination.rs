//! The termination message of an RTOS that ended abnormally, where kubelet shows it.
//!
//! containerd's CRI plugin (1.6.20 and 2.1.9: `pkg/cri/server`, `internal/cri/server`)
//! fills `ContainerStatus.reason` only with `Completed` (exit code 0), `Error`
//! (any other code), `OOMKilled` (a TaskOOM event) or `StartError`, and `message`
//! only for a failed start: a shim's TaskExit carries a status and no text. What
//! kubelet offers instead is the termination message file: it bind-mounts a host
//! file of its own at the container's `terminationMessagePath` (default
//! `/dev/termination-log`; kubelet also passes the path as the CRI annotation
//! `io.kubernetes.container.terminationMessagePath`) and, once the container has
//! exited, shows the file's content as the container's termination message
//! (`kubectl describe pod`, `status.containerStatuses[].state.terminated.message`).
//!
//! No Linux process runs in an RTOS container to write that file, so the shim
//! does: when an instance ends for a reason a user has to act on (the agent's
//! exit reason `panic`, `fault`, `watchdog`; an agent that stopped answering; a
//! guest QEMU reports panicked; a partition that ended without an exit report), it
//! writes one short line (e.g. `RTOS panicked (agent exit reason: panic), exit
//! code 101`) to the host source of the bundle's mount whose destination is the
//! termination message path. The file must exist and be a regular file (kubelet
//! creates it before the container); a symlink is not followed and nothing is
//! created; the line is at most [`MAX_MESSAGE`] bytes (kubelet reads 4 KiB).
//! Without such a mount (ctr, iSulad) nothing is written.
//!
//! The CRI plugin passes container annotations to the runtime only where the
//! runtime's `container_annotations` globs allow them: without
//! `io.kubernetes.container.terminationMessagePath` in that list the shim looks
//! for the default destination only.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use micrun_proto::ExitReason;
use serde::Deserialize;

/// kubelet's annotation naming the container's termination message path.
pub const PATH_ANNOTATION: &str = "io.kubernetes.container.terminationMessagePath";
/// kubelet's default termination message path.
pub const DEFAULT_PATH: &str = "/dev/termination-log";
/// The longest line written (kubelet shows at most 4096 bytes of the file).
pub const MAX_MESSAGE: usize = 1024;

/// Why an instance ended, when it was not a plain exit or a stop asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndCause {
    /// The agent's `Exited` report with a reason other than `Normal`.
    Agent(ExitReason),
    /// The agent stopped answering for `silent_ms`; micrun destroyed the partition.
    PeerLost { silent_ms: u64 },
    /// QEMU reported the guest `guest-panicked` (pvpanic) or `internal-error`.
    GuestFailed { panicked: bool },
    /// The partition ended with no exit report and no stop asked by micrun.
    Unreported,
}

/// The line a user sees for an instance that ended with `cause` and exit `code`.
pub fn describe(cause: EndCause, code: u32) -> String {
    match cause {
        EndCause::Agent(reason) => {
            let (what, name) = match reason {
                ExitReason::Normal => ("RTOS application ended", "normal"),
                ExitReason::Panic => ("RTOS panicked", "panic"),
                ExitReason::Fault => ("RTOS faulted", "fault"),
                ExitReason::Watchdog => ("RTOS watchdog fired", "watchdog"),
            };
            format!("{what} (agent exit reason: {name}), exit code {code}")
        }
        EndCause::PeerLost { silent_ms } => format!(
            "RTOS agent silent for {:.1} s (peer lost): the RTOS hung or its link broke; \
             micrun destroyed the partition, exit code {code}",
            silent_ms as f64 / 1000.0
        ),
        EndCause::GuestFailed { panicked: true } => format!(
            "QEMU reports the guest panicked (the firmware signalled its pvpanic device), \
             exit code {code}"
        ),
        EndCause::GuestFailed { panicked: false } => {
            format!("QEMU could not go on running the guest (internal-error), exit code {code}")
        }
        EndCause::Unreported => format!(
            "the RTOS partition ended without an exit report (stopped outside micrun, \
             crashed, or its driver lost it), exit code {code}"
        ),
    }
}

#[derive(Deserialize)]
struct Bundle {
    #[serde(default)]
    mounts: Vec<Mount>,
    #[serde(default)]
    annotations: std::collections::HashMap<String, String>,
}

#[derive(Deserialize)]
struct Mount {
    destination: String,
    #[serde(default)]
    source: Option<String>,
}

/// The host file mounted at the termination message path of the bundle's
/// `config.json`, if there is one (the last such mount, as mounts stack).
pub fn host_file(bundle: &Path) -> Option<PathBuf> {
    let bytes = std::fs::read(bundle.join("config.json")).ok()?;
    host_file_of(&bytes)
}

fn host_file_of(config_json: &[u8]) -> Option<PathBuf> {
    let b: Bundle = serde_json::from_slice(config_json).ok()?;
    let dest = b
        .annotations
        .get(PATH_ANNOTATION)
        .filter(|p| !p.is_empty())
        .map_or(DEFAULT_PATH, String::as_str);
    let dest = Path::new(dest);
    b.mounts
        .iter()
        .rev()
        .find(|m| Path::new(&m.destination) == dest)
        .and_then(|m| m.source.as_deref())
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

/// Replaces the content of the existing regular file `path` with `text` (cut
/// to [`MAX_MESSAGE`] bytes at a character boundary). A symlink, a missing file
/// or anything but a regular file is refused; nothing is ever created.
pub fn write(path: &Path, text: &str) -> io::Result<()> {
    let mut end = text.len().min(MAX_MESSAGE);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut f = OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    f.set_len(0)?;
    f.write_all(&text.as_bytes()[..end])
}

/// Writes the line for `cause` to `file`, if both are there; failures go to the log.
pub fn record(id: &str, file: Option<&Path>, cause: Option<EndCause>, code: u32) {
    let (Some(file), Some(cause)) = (file, cause) else {
        return;
    };
    let line = describe(cause, code);
    match write(file, &line) {
        Ok(()) => log::info!("{id}: termination message in {}: {line}", file.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => log::warn!(
            "{id}: termination message not written to {}: {e}",
            file.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mounts: &str, annotations: &str) -> Vec<u8> {
        format!(r#"{{"ociVersion":"1.0.2","mounts":[{mounts}],"annotations":{{{annotations}}}}}"#)
            .into_bytes()
    }

    #[test]
    fn finds_the_default_destination() {
        let c = config(
            r#"{"destination":"/proc","type":"proc","source":"proc"},
               {"destination":"/dev/termination-log","type":"bind","source":"/var/lib/kubelet/pods/u/containers/c/1a2b","options":["rbind","rw"]}"#,
            "",
        );
        assert_eq!(
            host_file_of(&c),
            Some(PathBuf::from("/var/lib/kubelet/pods/u/containers/c/1a2b"))
        );
    }

    #[test]
    fn the_annotation_names_another_destination() {
        let mounts = r#"{"destination":"/dev/termination-log","source":"/a"},
                        {"destination":"/tmp/why","source":"/b"}"#;
        let c = config(mounts, &format!(r#""{PATH_ANNOTATION}":"/tmp/why""#));
        assert_eq!(host_file_of(&c), Some(PathBuf::from("/b")));
        assert_eq!(host_file_of(&config(mounts, "")), Some(PathBuf::from("/a")));
    }

    #[test]
    fn no_mount_or_a_relative_source_is_none() {
        assert_eq!(host_file_of(&config("", "")), None);
        assert_eq!(
            host_file_of(&config(
                r#"{"destination":"/dev/termination-log","source":"rel"}"#,
                ""
            )),
            None
        );
        assert_eq!(host_file_of(b"not json"), None);
    }

    #[test]
    fn describes_each_cause() {
        assert_eq!(
            describe(EndCause::Agent(ExitReason::Panic), 101),
            "RTOS panicked (agent exit reason: panic), exit code 101"
        );
        assert!(describe(EndCause::Agent(ExitReason::Watchdog), 9).contains("watchdog"));
        let lost = describe(EndCause::PeerLost { silent_ms: 5200 }, 137);
        assert!(lost.contains("5.2 s") && lost.contains("peer lost") && lost.contains("137"));
        assert!(describe(EndCause::GuestFailed { panicked: true }, 134).contains("panicked"));
        assert!(describe(EndCause::Unreported, 255).contains("without an exit report"));
    }

    #[test]
    fn writes_only_an_existing_regular_file() {
        let dir = std::env::temp_dir().join(format!("micrun-term-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("log");
        std::fs::write(&file, "old content that is longer").unwrap();
        write(&file, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "new");
        // Bounded, cut at a character boundary.
        let long = "é".repeat(MAX_MESSAGE);
        write(&file, &long).unwrap();
        let got = std::fs::read_to_string(&file).unwrap();
        assert!(got.len() <= MAX_MESSAGE && got.len() >= MAX_MESSAGE - 1);
        // Missing: not created.
        let missing = dir.join("missing");
        assert_eq!(
            write(&missing, "x").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert!(!missing.exists());
        record("t", Some(&missing), Some(EndCause::Unreported), 255);
        assert!(!missing.exists());
        // A symlink is not followed.
        let target = dir.join("target");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(write(&link, "x").is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        // A FIFO neither blocks nor is written.
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(write(&fifo, "x").is_err());
        // A directory is refused.
        assert!(write(&dir, "x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
