//! micrun-ffi: the C library `libmicrun`.
//!
//! Not yet implemented: see the libmicrun issue. It will expose the micrun-proto codec
//! and the runtime engine of micrun-shim through a C ABI for iSulad and C Mica tools.
