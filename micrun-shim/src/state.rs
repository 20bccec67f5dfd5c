//! Per-task state on disk: what must be released if the shim dies.
//!
//! `<state_dir>/<namespace>/<id>/state.json` (directory mode 0700) is written at
//! Create, atomically (temporary file, fsync, rename), and removed at Delete. When a
//! shim is lost, containerd runs the binary with the `delete` action; that reads the
//! record and releases the partition's processes (only if the pid still belongs to
//! the same process), its files and sockets, and the rootfs mount.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pedestal::{kill_if_same, proc_stat, Leftovers};

/// What the state file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub id: String,
    pub namespace: String,
    pub bundle: PathBuf,
    /// The rootfs this shim mounted (to unmount), if it mounted one.
    pub mounted_rootfs: Option<PathBuf>,
    pub pedestal: String,
    pub leftovers: Leftovers,
}

/// The instance's private directory.
pub fn task_dir(state_dir: &Path, namespace: &str, id: &str) -> PathBuf {
    state_dir.join(namespace).join(id)
}

/// Creates the task directory (0700, parents 0700 too).
pub fn create_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes the record atomically.
pub fn write(dir: &Path, record: &TaskRecord) -> io::Result<()> {
    write_json(dir, "state.json", record)
}

/// Writes `<dir>/<name>` as JSON atomically: a temporary file, fsync, rename.
pub fn write_json(dir: &Path, name: &str, value: &impl Serialize) -> io::Result<()> {
    let data = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&data)?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(name))?;
    // Make the rename durable too.
    fs::File::open(dir)?.sync_all()
}

pub fn read(dir: &Path) -> io::Result<TaskRecord> {
    let data = fs::read(dir.join("state.json"))?;
    serde_json::from_slice(&data).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Releases everything a record names and removes the task directory. Returns
/// what could not be released (for the log); never fails on what is already gone.
pub fn release(dir: &Path, record: &TaskRecord) -> Vec<String> {
    let mut problems = Vec::new();
    for &(pid, start) in &record.leftovers.processes {
        if kill_if_same(pid, start) {
            // Give it a moment to go, so the mount below is not busy.
            for _ in 0..100 {
                match proc_stat(pid) {
                    Some(s) if s.start == start && !s.ended() => {
                        std::thread::sleep(std::time::Duration::from_millis(10))
                    }
                    _ => break,
                }
            }
        }
    }
    if let Some(partition) = &record.leftovers.partition {
        if let Err(e) = partition.destroy() {
            problems.push(e.to_string());
        }
    }
    for p in &record.leftovers.paths {
        match fs::remove_file(p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => problems.push(format!("remove {}: {e}", p.display())),
        }
    }
    if let Some(rootfs) = &record.mounted_rootfs {
        if let Err(e) = unmount(rootfs) {
            problems.push(e);
        }
    }
    match fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => problems.push(format!("remove {}: {e}", dir.display())),
    }
    problems
}

/// Unmounts `target` if something is mounted there (lazily if busy).
pub fn unmount(target: &Path) -> Result<(), String> {
    use nix::mount::{umount2, MntFlags};
    match umount2(target, MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()), // not mounted
        Err(nix::errno::Errno::EBUSY) => umount2(target, MntFlags::MNT_DETACH)
            .map_err(|e| format!("unmount {}: {e}", target.display())),
        Err(e) => Err(format!("unmount {}: {e}", target.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_release_round_trip() {
        let base = std::env::temp_dir().join(format!("micrun-state-{}", std::process::id()));
        let dir = task_dir(&base, "ns", "id1");
        create_dir(&dir).unwrap();
        let file = dir.join("uart.sock");
        fs::write(&file, b"x").unwrap();
        let rec = TaskRecord {
            id: "id1".into(),
            namespace: "ns".into(),
            bundle: "/b".into(),
            mounted_rootfs: None,
            pedestal: "sim".into(),
            leftovers: Leftovers {
                processes: vec![(u32::MAX - 1, 1)],
                paths: vec![file.clone()],
                partition: None,
            },
        };
        write(&dir, &rec).unwrap();
        assert_eq!(read(&dir).unwrap(), rec);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert!(release(&dir, &rec).is_empty());
        assert!(!dir.exists());
        let _ = fs::remove_dir_all(&base);
    }
}
