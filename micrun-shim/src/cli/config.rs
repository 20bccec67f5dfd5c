//! `micrun config`: the effective configuration as TOML the shim accepts back, and
//! `--check FILE`, which validates with the shim's own loader
//! ([`Config::load_from`]) and so gives exactly its errors (docs/cli.md).

use std::path::{Path, PathBuf};

use argh::FromArgs;
use serde_json::Value;

use super::fail;
use crate::config::{config_path, Config, CONFIG_ENV};

/// Print the effective micrun configuration (built-in defaults + the file) as TOML
/// the shim accepts back, or with --check validate a file with the shim's errors.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "config")]
pub struct ConfigCommand {
    /// the micrun config (default: $MICRUN_CONFIG or /etc/micrun/config.toml)
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// validate FILE as the shim would load it: prints "FILE: ok" or the shim's error
    #[argh(option)]
    pub check: Option<PathBuf>,
}

/// Runs `micrun config`.
pub fn run(cmd: ConfigCommand) -> i32 {
    if let Some(file) = cmd.check {
        if cmd.config.is_some() {
            eprintln!("micrun: give --config or --check, not both");
            return 2;
        }
        // A missing file is fine for the shim (the defaults apply), but a file
        // named to be checked must be there.
        if let Err(e) = std::fs::symlink_metadata(&file) {
            return fail(format!(
                "{}: {e} (without a config file the shim uses its built-in defaults)",
                file.display()
            ));
        }
        return match Config::load_from(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
                0
            }
            Err(e) => fail(e),
        };
    }
    let path = cmd
        .config
        .unwrap_or_else(|| config_path(std::env::var_os(CONFIG_ENV).as_deref()));
    let text = Config::load_from(&path)
        .map_err(|e| e.to_string())
        .and_then(|c| render(&c, &path));
    match text {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(e) => fail(e),
    }
}

/// `config` as TOML, after a comment that says where it came from.
///
/// Written from the configuration's `Serialize` form (so every key is there) by
/// [`toml_document`]: toml's own writer (its `display` feature) would also grow
/// the shim, which shares the toml crate.
pub fn render(config: &Config, path: &Path) -> Result<String, String> {
    let value = serde_json::to_value(config)
        .map_err(|e| format!("cannot write the configuration as TOML: {e}"))?;
    let body = toml_document(&value)?;
    let from = match &config.origin {
        Some(p) => format!("the built-in defaults and {}", p.display()),
        None => format!("the built-in defaults ({} does not exist)", path.display()),
    };
    Ok(format!(
        "# The effective micrun configuration: {from}.\n{body}"
    ))
}

/// A TOML document of `value` (an object): its plain keys first, then one
/// `[section]` per object in it; objects deeper down are inline tables.
fn toml_document(value: &Value) -> Result<String, String> {
    let Value::Object(top) = value else {
        return Err("the configuration is not a table".into());
    };
    let mut out = String::new();
    for (key, v) in top.iter().filter(|(_, v)| !v.is_object()) {
        out.push_str(&format!("{} = {}\n", toml_key(key), toml_value(v)?));
    }
    for (key, v) in top {
        if let Value::Object(section) = v {
            out.push_str(&format!("\n[{}]\n", toml_key(key)));
            for (k, v) in section {
                out.push_str(&format!("{} = {}\n", toml_key(k), toml_value(v)?));
            }
        }
    }
    Ok(out)
}

/// A key, bare when TOML allows it, else quoted.
fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        key.to_owned()
    } else {
        toml_string(key)
    }
}

/// A TOML basic string. JSON's escapes (`\"`, `\\`, `\n`, `\u0001`, ...) are
/// TOML's too; TOML also wants DEL escaped.
fn toml_string(s: &str) -> String {
    Value::String(s.to_owned())
        .to_string()
        .replace('\u{7f}', "\\u007F")
}

fn toml_value(v: &Value) -> Result<String, String> {
    Ok(match v {
        Value::Null => return Err("the configuration has a value TOML cannot hold (null)".into()),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => toml_string(s),
        Value::Array(items) => {
            let items: Result<Vec<String>, String> = items.iter().map(toml_value).collect();
            format!("[{}]", items?.join(", "))
        }
        Value::Object(map) if map.is_empty() => "{}".to_owned(),
        Value::Object(map) => {
            let items: Result<Vec<String>, String> = map
                .iter()
                .map(|(k, v)| Ok(format!("{} = {}", toml_key(k), toml_value(v)?)))
                .collect();
            format!("{{ {} }}", items?.join(", "))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_keys_are_toml() {
        let text = toml_document(&serde_json::json!({
            "a": "q\"uote\\ tab\t nl\n del\u{7f} bell\u{7}",
            "t": { "odd key": ["x", 1, true], "m": { "k.1": "v" }, "e": {} },
        }))
        .unwrap();
        let back: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(
            back["a"].as_str(),
            Some("q\"uote\\ tab\t nl\n del\u{7f} bell\u{7}")
        );
        assert_eq!(back["t"]["odd key"][1].as_integer(), Some(1));
        assert_eq!(back["t"]["m"]["k.1"].as_str(), Some("v"));
        assert!(back["t"]["e"].as_table().unwrap().is_empty());
    }

    #[test]
    fn defaults_round_trip() {
        let path = Path::new("/nonexistent/micrun.toml");
        let text = render(&Config::default(), path).unwrap();
        let back = Config::from_str(&text, path).unwrap();
        assert_eq!(
            Config {
                origin: None,
                ..back
            },
            Config::default()
        );
    }
}
