//! Peers and firmware that come from Debian's packages: the bookworm ones are
//! installed by `.ci/setup`, the newer ones unpacked by `.ci/fetch-newer` under
//! `$MICRUN_PEERS` (default `/opt/micrun-peers`). Every accessor fails with what
//! to run when the file is not there: these tests are not skipped.

use std::path::PathBuf;

/// Where `.ci/fetch-newer` unpacks packages from Debian's newer suites.
pub fn root() -> PathBuf {
    std::env::var_os("MICRUN_PEERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/micrun-peers"))
}

fn need(path: PathBuf, what: &str, how: &str) -> PathBuf {
    assert!(
        path.exists(),
        "{what} is missing at {}: run `{how}` (CI does, in .ci/setup)",
        path.display()
    );
    path
}

/// A file from an installed bookworm package.
pub fn debian(path: &str, package: &str) -> PathBuf {
    need(
        PathBuf::from(path),
        &format!("{path} (Debian package {package})"),
        &format!("apt-get install {package}"),
    )
}

/// A file unpacked by `.ci/fetch-newer` (`dir` is its directory under [`root`]).
pub fn newer(dir: &str, rel: &str) -> PathBuf {
    need(
        root().join(dir).join(rel),
        &format!("{dir}/{rel}"),
        "bash .ci/fetch-newer",
    )
}

/// containerd and ctr of one version: `"1.6"` is the system's, `"1.7"` and
/// `"2.1"` are the ones `.ci/fetch-newer` unpacks.
pub fn containerd(version: &str) -> (PathBuf, PathBuf) {
    match version {
        "1.6" => (
            debian("/usr/bin/containerd", "containerd"),
            debian("/usr/bin/ctr", "containerd"),
        ),
        v => {
            let dir = format!("containerd-{v}");
            (
                newer(&dir, "usr/bin/containerd"),
                newer(&dir, "usr/bin/ctr"),
            )
        }
    }
}

/// Debian bookworm's U-Boot 2023.01 for QEMU `virt` (`qemu_arm64`, `qemu_arm`,
/// `qemu-riscv64_smode`, ...).
pub fn uboot(board: &str) -> PathBuf {
    debian(&format!("/usr/lib/u-boot/{board}/uboot.elf"), "u-boot-qemu")
}

/// Debian trixie's U-Boot 2025.01 for one board.
pub fn uboot_2025(board: &str) -> PathBuf {
    newer(
        "u-boot-2025.01",
        &format!("usr/lib/u-boot/{board}/uboot.elf"),
    )
}

/// EDK2's UEFI firmware for QEMU aarch64 `virt` (not an ELF).
pub fn edk2_aarch64() -> PathBuf {
    debian(
        "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd",
        "qemu-efi-aarch64",
    )
}
