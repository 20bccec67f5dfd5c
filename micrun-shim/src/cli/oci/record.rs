//! What `micrun create` leaves under `--root/<id>/`:
//!
//! | file | written by | holds |
//! |---|---|---|
//! | `container.json` | the monitor, at each change (atomic: temporary file, rename) | [`Container`]: the monitor's pid, status, exit code, bundle, annotations |
//! | `state.json` | the monitor, after the partition is made | the shim's [`crate::state::TaskRecord`]: what `delete` releases if the monitor died |
//! | `control.sock` | the monitor | the commands `start`, `kill`, `pause`, `resume` ([`super::monitor`]) |
//!
//! A monitor that is gone (its pid ended, or now belongs to another process) is
//! a stopped container whatever the file says.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pedestal::process_start_time;

pub const CONTAINER_FILE: &str = "container.json";
pub const CONTROL_SOCKET: &str = "control.sock";

/// The container as this runtime keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    /// The monitor's pid and its start time (clock ticks since boot).
    pub pid: u32,
    pub pid_start: u64,
    /// `created`, `running`, `paused` or `stopped`.
    pub status: String,
    pub exit_code: Option<u32>,
    /// RFC 3339, UTC.
    pub created: String,
    pub annotations: BTreeMap<String, String>,
}

impl Container {
    /// Whether the monitor process still runs.
    pub fn monitor_alive(&self) -> bool {
        process_start_time(self.pid) == Some(self.pid_start)
            && crate::pedestal::proc_stat(self.pid).is_some_and(|s| !s.ended())
    }

    /// The status with a dead monitor taken into account.
    pub fn status_now(&self) -> &str {
        if self.status != "stopped" && !self.monitor_alive() {
            "stopped"
        } else {
            &self.status
        }
    }

    /// The runtime-spec state document.
    pub fn state_json(&self) -> serde_json::Value {
        let status = self.status_now();
        serde_json::json!({
            "ociVersion": crate::cli::oci::OCI_VERSION,
            "id": self.id,
            "status": status,
            "pid": if status == "stopped" { 0 } else { self.pid },
            "bundle": self.bundle,
            "rootfs": self.bundle.join("rootfs"),
            "created": self.created,
            "owner": "",
            "annotations": self.annotations,
        })
    }
}

/// `<root>/<id>`.
pub fn dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

pub fn read(dir: &Path) -> io::Result<Container> {
    let data = std::fs::read(dir.join(CONTAINER_FILE))?;
    serde_json::from_slice(&data).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

pub fn write(dir: &Path, c: &Container) -> io::Result<()> {
    crate::state::write_json(dir, CONTAINER_FILE, c)
}

/// Now as RFC 3339 in UTC, with nanoseconds (as runc's `created`).
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86400, secs % 86400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_793), (2026, 12, 6));
    }
}
