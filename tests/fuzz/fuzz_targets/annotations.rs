//! The annotation parser (`micrun_shim::annotations`): a map read from text, one
//! `key=value` per line (a line without `=` is a key with an empty value; a key
//! given twice keeps its last value), and the value parsers on every value.
//! Checked: no panic; every message quotes at most a bounded part of the user's
//! text (the messages quote ~200 bytes, escaped).
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use micrun_shim::annotations::{self, Annotations};

/// Longest message allowed: the fixed text and ~200 quoted bytes, escaped.
const MESSAGE_MAX: usize = 2048;

fuzz_target!(|text: &str| {
    let mut map = HashMap::new();
    for line in text.split('\n') {
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        let _ = annotations::parse_address(value);
        let _ = annotations::parse_bool(value);
        let _ = annotations::parse_sha256(value);
        map.insert(key.to_owned(), value.to_owned());
    }
    match Annotations::parse(&map) {
        Ok(a) => {
            for w in &a.warnings {
                assert!(w.len() <= MESSAGE_MAX, "warning of {} bytes", w.len());
            }
        }
        Err(e) => {
            let text = e.to_string();
            assert!(text.len() <= MESSAGE_MAX, "error of {} bytes", text.len());
        }
    }
});
