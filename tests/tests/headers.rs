//! The committed C headers in `include/` (the RTOS agent's, libmicrun's codec and
//! runtime API) match what cbindgen generates from the sources. Regenerate with
//! `MICRUN_BLESS=1 cargo test -p micrun-tests --test headers`.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Generates `header` from the C-facing source files `srcs` of `crate_dir` (only
/// those, so that Rust-only public items stay out of the header).
fn check(crate_dir: &str, srcs: &[&str], header: &str) {
    check_with(crate_dir, "cbindgen.toml", srcs, header)
}

/// [`check`] with the cbindgen config file `config` of `crate_dir`.
fn check_with(crate_dir: &str, config: &str, srcs: &[&str], header: &str) {
    let crate_dir = root().join(crate_dir);
    let config = cbindgen::Config::from_file(crate_dir.join(config)).unwrap();
    let mut out = Vec::new();
    let mut builder = cbindgen::Builder::new().with_config(config);
    for src in srcs {
        builder = builder.with_src(crate_dir.join(src));
    }
    builder.generate().expect("cbindgen failed").write(&mut out);
    let path = root().join("include").join(header);
    if std::env::var_os("MICRUN_BLESS").is_some() {
        std::fs::write(&path, &out).unwrap();
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == out,
        "include/{header} is stale: run `MICRUN_BLESS=1 cargo test -p micrun-tests --test headers` and commit it"
    );
}

#[test]
fn agent_header_is_fresh() {
    check("rtos-side", &["src/capi.rs"], "micrun_agent.h");
}

#[test]
fn codec_header_is_fresh() {
    check(
        "micrun-ffi",
        &[
            "src/status.rs",
            "src/message.rs",
            "src/frame.rs",
            "src/framer.rs",
        ],
        "micrun_codec.h",
    );
}

#[test]
fn runtime_header_is_fresh() {
    check_with(
        "micrun-ffi",
        "cbindgen-runtime.toml",
        &["src/runtime.rs"],
        "micrun.h",
    );
}
