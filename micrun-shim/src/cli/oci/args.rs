//! runc's command line, parsed by hand: global flags before the command, the
//! command's flags and arguments after it, in the style of Go's urfave/cli that
//! runc uses (`--flag value`, `--flag=value`, one dash or two, boolean flags
//! alone or `=true`/`=false`). argh cannot take flags before a subcommand that
//! it does not own, nor one-dash long flags, so this surface is parsed here.

use std::path::PathBuf;

/// The default state directory (runc's is /run/runc).
pub const DEFAULT_ROOT: &str = "/run/micrun-oci";

/// The runc commands: what makes a `micrun` command line an OCI runtime's.
pub const COMMANDS: [&str; 17] = [
    "create",
    "start",
    "state",
    "kill",
    "delete",
    "list",
    "features",
    "ps",
    "pause",
    "resume",
    "exec",
    "checkpoint",
    "restore",
    "update",
    "run",
    "spec",
    "events",
];

/// The global flags that come before the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Global {
    pub root: PathBuf,
    pub log: Option<PathBuf>,
    pub log_json: bool,
    pub debug: bool,
    /// The micrun config file (micrun's own flag; else MICRUN_CONFIG, else
    /// /etc/micrun/config.toml).
    pub config: Option<PathBuf>,
}

impl Default for Global {
    fn default() -> Global {
        Global {
            root: PathBuf::from(DEFAULT_ROOT),
            log: None,
            log_json: false,
            debug: false,
            config: None,
        }
    }
}

/// One command with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    Create {
        id: String,
        bundle: PathBuf,
        pid_file: Option<PathBuf>,
        console_socket: Option<PathBuf>,
    },
    Start {
        id: String,
    },
    State {
        id: String,
    },
    Kill {
        id: String,
        signal: i32,
        all: bool,
    },
    Delete {
        id: String,
        force: bool,
    },
    List {
        json: bool,
        quiet: bool,
    },
    Ps {
        id: String,
        json: bool,
    },
    Pause {
        id: String,
    },
    Resume {
        id: String,
    },
    /// `update --resources FILE|- ID`: `linux.resources` JSON.
    Update {
        id: String,
        resources: PathBuf,
    },
    Features,
    Version,
    /// A runc command micrun does not implement.
    Refused(&'static str),
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub global: Global,
    pub cmd: Cmd,
}

/// Whether `args` (without the program name) is an OCI runtime command line:
/// a runc command after the global flags, or a runc global flag first.
pub fn is_runtime_invocation(args: &[String]) -> bool {
    let mut i = 0;
    let mut global = false;
    while let Some(a) = args.get(i) {
        let Some(flag) = flag_name(a) else {
            return global || COMMANDS.contains(&a.as_str());
        };
        match global_flag(flag) {
            Some(GlobalFlag::Value) => {
                if !a.contains('=') {
                    i += 1;
                }
            }
            Some(GlobalFlag::Switch) => {}
            Some(GlobalFlag::Version) => return global || args.len() == 1,
            None => return false,
        }
        global = true;
        i += 1;
    }
    global
}

enum GlobalFlag {
    Value,
    Switch,
    Version,
}

fn global_flag(name: &str) -> Option<GlobalFlag> {
    match name {
        "root" | "log" | "log-format" | "criu" | "rootless" | "config" => Some(GlobalFlag::Value),
        "debug" | "systemd-cgroup" => Some(GlobalFlag::Switch),
        "version" | "v" => Some(GlobalFlag::Version),
        _ => None,
    }
}

/// `--name`, `-name`, `--name=value` → `name` (not `-` or `--` alone).
fn flag_name(arg: &str) -> Option<&str> {
    let rest = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'))?;
    let name = rest.split_once('=').map_or(rest, |(n, _)| n);
    (!name.is_empty()).then_some(name)
}

/// At most 200 bytes of a user's value, for an error message.
pub fn quote(s: &str) -> String {
    let mut end = s.len().min(200);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    if end < s.len() {
        format!("{:?}...", &s[..end])
    } else {
        format!("{s:?}")
    }
}

/// Walks flags and positional arguments.
struct Words<'a> {
    args: &'a [String],
    i: usize,
}

impl<'a> Words<'a> {
    fn next(&mut self) -> Option<&'a str> {
        let a = self.args.get(self.i)?;
        self.i += 1;
        Some(a)
    }

    /// The value of flag `arg` (`--flag=value`, or the next word).
    fn value(&mut self, arg: &str, name: &str) -> Result<String, String> {
        if let Some((_, v)) = arg.split_once('=') {
            return Ok(v.to_string());
        }
        self.next()
            .map(str::to_string)
            .ok_or_else(|| format!("flag --{name} needs a value"))
    }
}

/// A boolean flag's value: alone is true, `=true`/`=false` as given.
fn switch(arg: &str, name: &str) -> Result<bool, String> {
    match arg.split_once('=') {
        None => Ok(true),
        Some((_, "true" | "1")) => Ok(true),
        Some((_, "false" | "0")) => Ok(false),
        Some((_, v)) => Err(format!("flag --{name}: {} is not true or false", quote(v))),
    }
}

/// Parses `args` (without the program name).
pub fn parse(args: &[String]) -> Result<Invocation, String> {
    let mut w = Words { args, i: 0 };
    let mut global = Global::default();
    let command = loop {
        let Some(a) = w.next() else {
            return Err(
                "no command given; runc commands: create, start, state, kill, \
                        delete, list, features, ps, pause, resume"
                    .into(),
            );
        };
        let Some(name) = flag_name(a) else {
            break a;
        };
        match name {
            "root" => global.root = PathBuf::from(w.value(a, name)?),
            "log" => global.log = Some(PathBuf::from(w.value(a, name)?)),
            "log-format" => {
                global.log_json = match w.value(a, name)?.as_str() {
                    "json" => true,
                    "text" => false,
                    v => {
                        return Err(format!(
                            "flag --log-format: {} is not text or json",
                            quote(v)
                        ))
                    }
                }
            }
            "config" => global.config = Some(PathBuf::from(w.value(a, name)?)),
            "debug" => global.debug = switch(a, name)?,
            // No cgroups of micrun's own: the partition is not a Linux process tree.
            "systemd-cgroup" => {
                switch(a, name)?;
            }
            "criu" | "rootless" => {
                w.value(a, name)?;
            }
            "version" | "v" => {
                return Ok(Invocation {
                    global,
                    cmd: Cmd::Version,
                })
            }
            _ => return Err(format!("unknown global flag {}", quote(a))),
        }
    };
    if global.root.as_os_str().is_empty() {
        return Err("flag --root: an empty path; give the state directory".into());
    }
    let cmd = parse_command(command, &mut w)?;
    Ok(Invocation { global, cmd })
}

/// The flags and positional arguments after `command`.
fn parse_command(command: &str, w: &mut Words<'_>) -> Result<Cmd, String> {
    let mut positional: Vec<String> = Vec::new();
    let mut bundle = None;
    let mut pid_file = None;
    let mut console_socket = None;
    let mut resources = None;
    let (mut all, mut force, mut json, mut quiet) = (false, false, false, false);
    let mut only_positional = false;
    while let Some(a) = w.next() {
        let name = if only_positional { None } else { flag_name(a) };
        let Some(name) = name else {
            if a == "--" {
                only_positional = true;
            } else {
                positional.push(a.to_string());
            }
            continue;
        };
        let unknown = || format!("{command}: unknown flag {}", quote(a));
        match (command, name) {
            ("create", "bundle" | "b") => bundle = Some(PathBuf::from(w.value(a, name)?)),
            ("create", "pid-file") => pid_file = Some(PathBuf::from(w.value(a, name)?)),
            ("create", "console-socket") => console_socket = Some(PathBuf::from(w.value(a, name)?)),
            // runc's container-process flags: nothing to do for a partition.
            ("create", "no-pivot" | "no-new-keyring") => {
                switch(a, name)?;
            }
            ("create", "preserve-fds") => {
                w.value(a, name)?;
            }
            ("kill", "all" | "a") => all = switch(a, name)?,
            ("delete", "force" | "f") => force = switch(a, name)?,
            ("list" | "ps", "format" | "f") => {
                json = match w.value(a, name)?.as_str() {
                    "json" => true,
                    "table" => false,
                    v => {
                        return Err(format!(
                            "{command}: --format {} is not table or json",
                            quote(v)
                        ))
                    }
                }
            }
            ("list", "quiet" | "q") => quiet = switch(a, name)?,
            ("update", "resources" | "r") => resources = Some(PathBuf::from(w.value(a, name)?)),
            ("update", _) => {
                return Err(format!(
                    "update: {} is not supported; give the whole linux.resources JSON with \
                     --resources FILE (or - for stdin)",
                    quote(a)
                ))
            }
            _ if ["exec", "checkpoint", "restore", "run", "spec", "events"].contains(&command) => {}
            _ => return Err(unknown()),
        }
    }
    let id = |positional: &[String]| -> Result<String, String> {
        match positional.first() {
            Some(id) => check_id(id).map(|()| id.clone()),
            None => Err(format!("{command}: the container id is missing")),
        }
    };
    let at_most = |n: usize| -> Result<(), String> {
        match positional.get(n) {
            Some(extra) => Err(format!("{command}: unexpected argument {}", quote(extra))),
            None => Ok(()),
        }
    };
    let cmd = match command {
        "create" => {
            at_most(1)?;
            Cmd::Create {
                id: id(&positional)?,
                bundle: bundle.unwrap_or_else(|| PathBuf::from(".")),
                pid_file,
                console_socket,
            }
        }
        "start" | "state" | "pause" | "resume" => {
            at_most(1)?;
            let id = id(&positional)?;
            match command {
                "start" => Cmd::Start { id },
                "state" => Cmd::State { id },
                "pause" => Cmd::Pause { id },
                _ => Cmd::Resume { id },
            }
        }
        "kill" => {
            at_most(2)?;
            let signal = match positional.get(1) {
                Some(s) => parse_signal(s)?,
                None => nix::libc::SIGTERM,
            };
            Cmd::Kill {
                id: id(&positional)?,
                signal,
                all,
            }
        }
        "delete" => {
            at_most(1)?;
            Cmd::Delete {
                id: id(&positional)?,
                force,
            }
        }
        "list" => {
            at_most(0)?;
            Cmd::List { json, quiet }
        }
        "ps" => {
            // runc passes what follows the id to ps(1); there is one process here.
            Cmd::Ps {
                id: id(&positional)?,
                json,
            }
        }
        "features" => {
            at_most(0)?;
            Cmd::Features
        }
        "exec" => Cmd::Refused("exec"),
        "checkpoint" => Cmd::Refused("checkpoint"),
        "restore" => Cmd::Refused("restore"),
        "update" => {
            at_most(1)?;
            Cmd::Update {
                id: id(&positional)?,
                resources: resources.ok_or_else(|| {
                    "update: --resources FILE (or - for stdin) is missing".to_string()
                })?,
            }
        }
        "run" => Cmd::Refused("run"),
        "spec" => Cmd::Refused("spec"),
        "events" => Cmd::Refused("events"),
        _ => return Err(format!("unknown command {}", quote(command))),
    };
    Ok(cmd)
}

/// A container id as runc allows it: letters, digits, `_`, `+`, `-`, `.`
/// (not `.` or `..`), at most 1024 bytes; it names a directory under `--root`.
pub fn check_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "container id {}: use 1 to 1024 letters, digits, '_', '+', '-' or '.'",
            quote(id)
        ))
    }
}

/// `TERM`, `SIGTERM`, `term` or `15`.
pub fn parse_signal(s: &str) -> Result<i32, String> {
    use std::str::FromStr;
    let bad = || {
        format!(
            "signal {}: give a name (TERM, SIGKILL, ...) or a number from 1 to 64",
            quote(s)
        )
    };
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    nix::sys::signal::Signal::from_str(&name)
        .map(|s| s as i32)
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Result<Invocation, String> {
        let args: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        parse(&args)
    }

    #[test]
    fn what_podman_and_conmon_pass() {
        let inv = p(
            "create --bundle /b --pid-file /p/pidfile --console-socket /s.sock \
                     --no-pivot --no-new-keyring c1",
        )
        .unwrap();
        assert_eq!(inv.global, Global::default());
        assert_eq!(
            inv.cmd,
            Cmd::Create {
                id: "c1".into(),
                bundle: "/b".into(),
                pid_file: Some("/p/pidfile".into()),
                console_socket: Some("/s.sock".into()),
            }
        );
        let inv =
            p("--root=/r --log /l --log-format json --systemd-cgroup --debug kill c1 15").unwrap();
        assert_eq!(inv.global.root, PathBuf::from("/r"));
        assert_eq!(inv.global.log, Some(PathBuf::from("/l")));
        assert!(inv.global.log_json && inv.global.debug);
        assert_eq!(
            inv.cmd,
            Cmd::Kill {
                id: "c1".into(),
                signal: 15,
                all: false
            }
        );
        assert_eq!(
            p("-root /r delete -force c1").unwrap().cmd,
            Cmd::Delete {
                id: "c1".into(),
                force: true
            }
        );
        assert_eq!(
            p("kill --all c1 KILL").unwrap().cmd,
            Cmd::Kill {
                id: "c1".into(),
                signal: 9,
                all: true
            }
        );
        assert_eq!(
            p("kill c1").unwrap().cmd,
            Cmd::Kill {
                id: "c1".into(),
                signal: 15,
                all: false
            }
        );
        assert_eq!(
            p("list --format json").unwrap().cmd,
            Cmd::List {
                json: true,
                quiet: false
            }
        );
        assert_eq!(p("--version").unwrap().cmd, Cmd::Version);
        assert_eq!(p("exec -t c1 sh").unwrap().cmd, Cmd::Refused("exec"));
        assert_eq!(
            p("update --resources - c1").unwrap().cmd,
            Cmd::Update {
                id: "c1".into(),
                resources: "-".into()
            }
        );
    }

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("SIGKILL"), Ok(9));
        assert_eq!(parse_signal("term"), Ok(15));
        assert_eq!(parse_signal("USR1"), Ok(nix::libc::SIGUSR1));
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("65").is_err());
        assert!(parse_signal("NOPE").unwrap_err().contains("\"NOPE\""));
    }

    #[test]
    fn bad_command_lines_say_what_is_wrong() {
        for (line, want) in [
            ("", "no command given"),
            ("--bogus create c1", "unknown global flag \"--bogus\""),
            ("frob c1", "unknown command \"frob\""),
            ("create --bundle", "--bundle needs a value"),
            ("create --frob c1", "create: unknown flag \"--frob\""),
            ("start", "start: the container id is missing"),
            ("start ../x", "container id \"../x\""),
            ("start a b", "unexpected argument \"b\""),
            ("kill c1 NOPE", "signal \"NOPE\""),
            ("--log-format yaml list", "not text or json"),
            ("list --format yaml", "not table or json"),
            ("update --memory 1M c1", "\"--memory\" is not supported"),
            ("update c1", "--resources FILE (or - for stdin) is missing"),
        ] {
            let err = p(line).unwrap_err();
            assert!(err.contains(want), "{line:?}: {err:?} lacks {want:?}");
        }
        let long = "x".repeat(5000);
        let err = p(&format!("start {long}y")).unwrap_err();
        assert!(err.len() < 400, "{err}");
    }

    #[test]
    fn runtime_command_lines_are_told_apart() {
        let v = |s: &str| -> Vec<String> { s.split_whitespace().map(str::to_string).collect() };
        assert!(is_runtime_invocation(&v("create --bundle b c1")));
        assert!(is_runtime_invocation(&v("--root /r state c1")));
        assert!(is_runtime_invocation(&v("--root=/r --debug kill c1")));
        assert!(is_runtime_invocation(&v("--version")));
        assert!(is_runtime_invocation(&v("--root /r frob")));
        assert!(is_runtime_invocation(&v("--debug")));
        assert!(!is_runtime_invocation(&v("image pack x")));
        assert!(!is_runtime_invocation(&v("--help")));
        assert!(!is_runtime_invocation(&v("")));
    }
}
