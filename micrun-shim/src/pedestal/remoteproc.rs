//! The `baremetal` pedestal driven directly through Linux remoteproc (no micad).
//! Not implemented yet: [`pedestal`] reports the pedestal unavailable.

use std::path::Path;

use super::{Pedestal, PedestalError};
use crate::config::{Config, PedestalKind};

/// The pedestal, configured from `config`.
pub fn pedestal(_config: &Config) -> Result<Box<dyn Pedestal>, PedestalError> {
    Err(PedestalError::Unavailable {
        pedestal: PedestalKind::Baremetal,
        why: "this build has no direct remoteproc driver; start micad (`systemctl start micad`)"
            .into(),
    })
}

/// Stops processor `processor` (its sysfs directory) and removes `firmware_file`.
pub fn destroy_detached(
    processor: &Path,
    _firmware_file: Option<&Path>,
) -> Result<(), PedestalError> {
    Err(PedestalError::failed(
        PedestalKind::Baremetal,
        "destroy",
        format!(
            "{}: this build has no direct remoteproc driver",
            processor.display()
        ),
    ))
}
