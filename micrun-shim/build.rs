//! Generates the protobuf message of containerd's runtime options
//! (`proto/runtimeoptions.proto`) with ttrpc-codegen, as containerd-shim-protos
//! generates its own messages (pure Rust: no protoc).

fn main() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    println!("cargo:rerun-if-changed=proto/runtimeoptions.proto");
    ttrpc_codegen::Codegen::new()
        .input("proto/runtimeoptions.proto")
        .include("proto")
        .rust_protobuf()
        .out_dir(&out)
        .run()
        .expect("generate the runtime options message");
    // `include!` takes no inner attributes or inner doc comments: drop them.
    let path = out.join("runtimeoptions.rs");
    let text = std::fs::read_to_string(&path).expect("read the generated file");
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("#!") && !l.starts_with("//!"))
        .collect();
    std::fs::write(&path, kept.join("\n")).expect("write the generated file");
}
