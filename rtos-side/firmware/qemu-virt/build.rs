//! Passes the linker script to the final link, wherever cargo is invoked from, and
//! refuses host builds with a clear message.

use std::env;
use std::path::PathBuf;

fn main() {
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if arch != "aarch64" || os != "none" {
        panic!(
            "micrun-fw-qemu-virt is bare-metal aarch64 firmware; build it with \
             `--target aarch64-unknown-none` (target here: {arch}-{os}), see \
             rtos-side/firmware/README.md"
        );
    }
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    println!("cargo:rustc-link-search={}", dir.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    println!("cargo:rerun-if-changed=link.x");
    println!("cargo:rerun-if-changed=build.rs");
}
