//! The remoteproc sysfs readers (`pedestal/remoteproc.rs`): `RprocState::parse` on
//! arbitrary text, and a processor read from a scratch class entry whose `name` and
//! `state` attributes hold arbitrary bytes (`Processor::at`, `label`, `state`,
//! `select` by its name and by none). Input: `n name[n] state...`. Checked: no
//! panic; a known state word displays as itself; the file reads as the text
//! parses; errors render.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use micrun_shim::pedestal::remoteproc::{self, Processor, RprocState};

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (name, state_bytes) = rest.split_at(usize::from(n).min(rest.len()));
    let text = String::from_utf8_lossy(state_bytes);
    let state = RprocState::parse(&text);
    if !matches!(state, RprocState::Unknown(_)) {
        assert_eq!(state.to_string(), text.trim());
    }
    let _ = state.is_running();

    let dir = micrun_fuzz::scratch("remoteproc0");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    std::fs::write(dir.join("name"), name).expect("scratch write");
    std::fs::write(dir.join("state"), state_bytes).expect("scratch write");
    let p = Processor::at(&dir);
    let _ = p.label();
    match p.state() {
        Ok(s) => assert_eq!(s, state),
        Err(e) => assert!(std::str::from_utf8(state_bytes).is_err(), "{e}"),
    }
    let class = Path::new("/sys/class/remoteproc");
    let wanted = p.name.clone();
    for wanted in [None, Some(wanted.as_str())] {
        if let Err(e) = remoteproc::select(std::slice::from_ref(&p), wanted, class) {
            drop(e)
        }
    }
});
