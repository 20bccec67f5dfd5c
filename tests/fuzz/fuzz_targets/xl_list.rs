//! `xl list` parsing (`pedestal/xl.rs`, through `xl::parse_list_line`) on arbitrary
//! output. Input: `flags output... [\0 name]`: bit 0 of `flags` is `started`; the
//! domain name is the one after a NUL, else the first word of the output's second
//! line (so that a line is found). Checked: no panic; an error quotes the output; a
//! parsed line has six state letters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use micrun_shim::pedestal::xl;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (output, name) = match text.split_once('\0') {
        Some((output, name)) => (output, name),
        None => {
            let listed = text
                .lines()
                .nth(1)
                .and_then(|l| l.split_whitespace().next());
            (&*text, listed.unwrap_or(""))
        }
    };
    match xl::parse_list_line(output, name, flags & 1 != 0) {
        Ok((letters, _)) => assert_eq!(letters.len(), 6),
        Err(e) => assert!(e.starts_with("unexpected `xl list` output"), "{e}"),
    }
});
