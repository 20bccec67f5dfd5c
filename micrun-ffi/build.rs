//! Gives libmicrun.so its SONAME: `libmicrun.so.<major>`, so that programs linked
//! against it keep working across minor releases and pick up a new major by name.

fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("set by cargo");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libmicrun.so.{major}");
    println!("cargo:rerun-if-changed=build.rs");
}
