//! The `xen` pedestal driven directly with `xl` (no micad). Not implemented yet:
//! [`pedestal`] reports the pedestal unavailable.

use std::path::Path;

use super::{Pedestal, PedestalError};
use crate::config::{Config, PedestalKind};

/// The pedestal, configured from `config`.
pub fn pedestal(_config: &Config) -> Result<Box<dyn Pedestal>, PedestalError> {
    Err(PedestalError::Unavailable {
        pedestal: PedestalKind::Xen,
        why: "this build has no direct xl driver; start micad (`systemctl start micad`)".into(),
    })
}

/// Ends domain `domain` with `xl destroy`; a domain that is gone counts as ended.
pub fn destroy_detached(_xl: &Path, domain: &str) -> Result<(), PedestalError> {
    Err(PedestalError::failed(
        PedestalKind::Xen,
        "destroy",
        format!("domain {domain:?}: this build has no direct xl driver"),
    ))
}
