//! The micrun config file parser (`Config::from_str`) on arbitrary text. Checked: no
//! panic; an error renders; a config that parses is written back by `micrun config`
//! (`cli::config::render`) as TOML that parses to the same config.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use micrun_shim::config::{self, Config};

fuzz_target!(|text: &str| {
    let path = Path::new("/etc/micrun/config.toml");
    let _ = config::parse_duration(text);
    match Config::from_str(text, path) {
        Ok(c) => {
            let written = micrun_shim::cli::config::render(&c, path).expect("the config renders");
            let again = Config::from_str(&written, path)
                .unwrap_or_else(|e| panic!("rendered config does not parse: {e}\n{written}"));
            assert_eq!(again, c, "rendered config differs:\n{written}");
        }
        Err(e) => drop(e.to_string()),
    }
});
