//! The OCI runtime spec reader (`oci::Spec::load`, the bundle's `config.json`) on
//! arbitrary bytes written to a scratch file, then the annotation parser on the
//! spec it read (`Annotations::from_spec`). Checked: no panic; errors render.
#![no_main]

use libfuzzer_sys::fuzz_target;
use micrun_shim::annotations::Annotations;
use micrun_shim::oci::Spec;

fuzz_target!(|data: &[u8]| {
    let path = micrun_fuzz::scratch("config.json");
    std::fs::write(&path, data).expect("scratch write");
    match Spec::load(&path) {
        Ok(spec) => match Annotations::from_spec(&spec) {
            Ok(_) => {}
            Err(e) => drop(e.to_string()),
        },
        Err(e) => drop(e.to_string()),
    }
});
