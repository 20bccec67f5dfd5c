//! The crate's error type and its one mapping to ttrpc status codes.

use crate::config::ConfigError;
use crate::image::ImageError;
use crate::instance::InstanceError;
use crate::pedestal::PedestalError;
use crate::spec::SpecError;

/// Everything a task operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Instance(#[from] InstanceError),
    #[error("container {0} not found in this shim")]
    NotFound(String),
    #[error("container {0} already exists in this shim")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Unimplemented(String),
    #[error("{0}")]
    Internal(String),
}

/// The most bytes of a user's value that an error message quotes.
pub const QUOTE_MAX: usize = 200;

/// A user's value (an annotation, a path, a cpuset, …) as error messages quote it:
/// in double quotes with Rust's escapes, cut after [`QUOTE_MAX`] bytes (at a character
/// boundary) and followed by how long it was, so a 10 KB value makes a short message.
/// Every error that quotes a value the user gave goes through this.
pub struct Quoted<'a>(pub &'a str);

/// [`Quoted`] as a function, for `format!` arguments.
pub fn quote(value: &str) -> Quoted<'_> {
    Quoted(value)
}

impl std::fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = self.0;
        if value.len() <= QUOTE_MAX {
            return write!(f, "{value:?}");
        }
        let mut end = QUOTE_MAX;
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        let head = &value[..end];
        // `{:?}` of the head, without its closing quote, then the mark.
        let escaped = format!("{head:?}");
        write!(
            f,
            "{}…\" ({} bytes in all)",
            &escaped[..escaped.len() - 1],
            value.len()
        )
    }
}

impl std::fmt::Debug for Quoted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// gRPC status codes, as ttrpc carries them.
pub use containerd_shim::protos::ttrpc::Code;

impl Error {
    /// The status code containerd receives. Bad input is the user's to fix
    /// (INVALID_ARGUMENT); a call that does not fit the task's state or the host is
    /// FAILED_PRECONDITION; what micrun does not do is UNIMPLEMENTED.
    pub fn code(&self) -> Code {
        match self {
            Error::Config(_) => Code::INVALID_ARGUMENT,
            Error::Spec(SpecError::Pedestal(p)) | Error::Instance(InstanceError::Pedestal(p)) => {
                match p {
                    PedestalError::Unavailable { .. } | PedestalError::NoPedestal { .. } => {
                        Code::FAILED_PRECONDITION
                    }
                    PedestalError::InvalidId { .. } => Code::INVALID_ARGUMENT,
                    PedestalError::Unsupported { .. } => Code::UNIMPLEMENTED,
                    PedestalError::Failed { .. } => Code::INTERNAL,
                }
            }
            Error::Spec(SpecError::SimDisabled { .. }) => Code::FAILED_PRECONDITION,
            // The image is fine and the host is fine, they do not fit each other.
            Error::Spec(SpecError::Image(
                ImageError::NoneFits { .. } | ImageError::Ambiguous { .. },
            )) => Code::FAILED_PRECONDITION,
            Error::Spec(SpecError::Bundle { .. }) => Code::INVALID_ARGUMENT,
            Error::Spec(_) => Code::INVALID_ARGUMENT,
            Error::Instance(InstanceError::Precondition(_)) => Code::FAILED_PRECONDITION,
            Error::Instance(InstanceError::Io(_)) => Code::INTERNAL,
            Error::NotFound(_) => Code::NOT_FOUND,
            Error::AlreadyExists(_) => Code::ALREADY_EXISTS,
            Error::InvalidArgument(_) => Code::INVALID_ARGUMENT,
            Error::Unimplemented(_) => Code::UNIMPLEMENTED,
            Error::Internal(_) => Code::INTERNAL,
        }
    }

    /// As a ttrpc error carrying the code and the message.
    pub fn to_ttrpc(&self) -> containerd_shim::protos::ttrpc::Error {
        use containerd_shim::protos::ttrpc;
        ttrpc::Error::RpcStatus(ttrpc::get_status(self.code(), self.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PedestalKind;
    use crate::firmware::FirmwareError;

    fn ped(p: PedestalError) -> Error {
        Error::Instance(InstanceError::Pedestal(p))
    }

    #[test]
    fn quoting_keeps_short_values_and_cuts_long_ones() {
        assert_eq!(quote("0-1").to_string(), "\"0-1\"");
        assert_eq!(quote("a\"b\n").to_string(), "\"a\\\"b\\n\"");
        let exact = "x".repeat(QUOTE_MAX);
        assert_eq!(quote(&exact).to_string(), format!("{exact:?}"));
        let long = "y".repeat(10 * 1024);
        let q = quote(&long).to_string();
        assert_eq!(
            q,
            format!("\"{}…\" (10240 bytes in all)", "y".repeat(QUOTE_MAX))
        );
        // Cut at a character boundary: 'é' is 2 bytes, the 200th byte is inside one.
        let accents = format!("a{}", "é".repeat(300));
        let q = quote(&accents).to_string();
        assert!(q.starts_with("\"aé"), "{q}");
        assert!(q.ends_with("…\" (601 bytes in all)"), "{q}");
        assert!(q.len() < QUOTE_MAX + 40, "{q}");
    }

    #[test]
    fn every_kind_maps_to_its_code() {
        let k = PedestalKind::Qemu;
        let cases: Vec<(Error, Code)> = vec![
            (
                Error::Config(ConfigError::Invalid {
                    path: "/c".into(),
                    key: None,
                    line: None,
                    message: "x".into(),
                }),
                Code::INVALID_ARGUMENT,
            ),
            (
                Error::Spec(SpecError::Firmware(FirmwareError::NoFirmware {
                    rootfs: "/r".into(),
                })),
                Code::INVALID_ARGUMENT,
            ),
            (
                Error::Spec(SpecError::SimDisabled {
                    config: "/c".into(),
                }),
                Code::FAILED_PRECONDITION,
            ),
            (
                Error::Spec(SpecError::Image(ImageError::NoneFits {
                    offers: "a/b/c/qemu".into(),
                    host: "pedestal xen".into(),
                    hint: "x".into(),
                })),
                Code::FAILED_PRECONDITION,
            ),
            (
                Error::Spec(SpecError::Image(ImageError::Invalid {
                    path: "/i".into(),
                    reason: "x".into(),
                })),
                Code::INVALID_ARGUMENT,
            ),
            (
                Error::Spec(SpecError::Image(ImageError::FirmwareChanged {
                    path: "micrun/qemu/b/os-aarch64/fw.elf".into(),
                    expected: "00".into(),
                    actual: "11".into(),
                })),
                Code::INVALID_ARGUMENT,
            ),
            (
                Error::Spec(SpecError::Bundle {
                    bundle: "/b".into(),
                    detail: "x".into(),
                }),
                Code::INVALID_ARGUMENT,
            ),
            (
                ped(PedestalError::Unavailable {
                    pedestal: k,
                    why: "x".into(),
                }),
                Code::FAILED_PRECONDITION,
            ),
            (
                ped(PedestalError::InvalidId {
                    pedestal: k,
                    id: "x".into(),
                    why: "x".into(),
                }),
                Code::INVALID_ARGUMENT,
            ),
            (
                ped(PedestalError::Unsupported {
                    pedestal: k,
                    operation: "update",
                }),
                Code::UNIMPLEMENTED,
            ),
            (ped(PedestalError::failed(k, "start", "x")), Code::INTERNAL),
            (
                ped(PedestalError::NoPedestal {
                    checked: "x".into(),
                }),
                Code::FAILED_PRECONDITION,
            ),
            (
                Error::Instance(InstanceError::Precondition("x".into())),
                Code::FAILED_PRECONDITION,
            ),
            (
                Error::Instance(InstanceError::Io("x".into())),
                Code::INTERNAL,
            ),
            (Error::NotFound("x".into()), Code::NOT_FOUND),
            (Error::AlreadyExists("x".into()), Code::ALREADY_EXISTS),
            (Error::InvalidArgument("x".into()), Code::INVALID_ARGUMENT),
            (Error::Unimplemented("x".into()), Code::UNIMPLEMENTED),
            (Error::Internal("x".into()), Code::INTERNAL),
        ];
        for (err, code) in cases {
            assert_eq!(err.code(), code, "{err:?}");
            match err.to_ttrpc() {
                containerd_shim::protos::ttrpc::Error::RpcStatus(s) => {
                    assert_eq!(s.code(), code);
                    assert_eq!(s.message(), err.to_string());
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
