//! `fake-xl`: a stand-in for Xen's `xl` and `xenstore-read`, for tests on machines
//! without Xen. It keeps its "hypervisor" in files and runs each domain's firmware
//! as a host process behind a pty, which plays the domain's PV console.
//!
//! ```text
//! fake-xl <xl arguments>                 behaves as `xl`
//! fake-xl xenstore-read <path>...        behaves as `xenstore-read` (so does a
//!                                        binary or link named `xenstore-read`)
//! fake-xl domain-runner <name>           internal: the process behind one domain
//! ```
//!
//! The state directory is `$FAKE_XEN_STATE` (required):
//!
//! | file | what |
//! |---|---|
//! | `config.json` | written by the test: `sim` (the firmware stand-in, run in place of the domain's kernel), `sim_args`, `fail` (xl subcommand, or `xenstore-read` → stderr: it fails with that, exit 1), `fail_from` (subcommand → the call, counting from 1, from which its `fail` applies), `console_delay_ms` (xenconsoled publishing the console late) |
//! | `calls.jsonl` | every call, one JSON object a line: `{"tool": "xl", "argv": [...]}` |
//! | `domains/<name>.json` | a domain: its config values, state, processes |
//! | `domains/<name>.sock`, `.log` | the domain runner's control socket; its and the firmware's stderr |
//! | `xenstore/<path>` | xenstore, a file per key: `local/domain/<domid>/console/tty`, `.../name` |
//! | `pids` | `runner <pid> <name>` and `sim <pid> <name>` lines: every process started, for the tests' cleanup |
//! | `lock` | `flock`ed while a record is read and written |
//!
//! `xl create [-p] <cfg>` parses the config with xl's syntax (`key = value` lines,
//! `#` comments, quoted strings with xl's escapes, numbers, lists), refuses unknown
//! keys (real xl ignores them, which would hide a typo), checks the values, gives
//! the domain the next domid and starts a *domain runner*: a process in its own
//! session (`setsid`), not a child of the short-lived `xl`, which opens a pty (raw,
//! as xenconsoled makes it), publishes the slave's path as
//! `/local/domain/<domid>/console/tty` and listens on the control socket. The
//! firmware starts at the first `unpause`, with the pty master as its stdin and
//! stdout; `pause` stops it (SIGSTOP), `unpause` continues it (SIGCONT), `destroy`
//! kills it, closes the pty (the console reader sees the hang-up) and ends the
//! runner. When the firmware ends by itself the domain shuts down (`poweroff`, or
//! `crash` for a signal or exit status 101) and, as `on_poweroff`/`on_crash`
//! say, is destroyed (`destroy`) or stays listed in state `s` (`preserve`).
//!
//! Messages and output layouts are xl's (`xl list`:
//! `%-40s %5d %5lu %5d     %c%c%c%c%c%c  %8.1f`; `"<dom> is an invalid domain
//! identifier (rc=-6)"`; `"Can't get domid of domain name '<name>', maybe this
//! domain does not exist."`; xenstore-read's `"couldn't read path <path>"`). Messages
//! of the fake's own making start with `fake-xl:`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// The environment variable naming the state directory.
const STATE_ENV: &str = "FAKE_XEN_STATE";
/// How long `xl` waits for a domain runner to start or to answer.
const RUNNER_WAIT: Duration = Duration::from_secs(10);

/// What the test configures (`config.json`).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FakeConfig {
    sim: PathBuf,
    sim_args: Vec<String>,
    fail: BTreeMap<String, String>,
    /// From which call (1-based) of a subcommand its `fail` applies (default 1).
    fail_from: BTreeMap<String, usize>,
    console_delay_ms: u64,
}

impl FakeConfig {
    /// The stderr to fail call `n` of `command` with, if it must fail.
    fn failure(&self, command: &str, n: usize) -> Option<&str> {
        let from = self.fail_from.get(command).copied().unwrap_or(1);
        self.fail
            .get(command)
            .filter(|_| n >= from)
            .map(String::as_str)
    }
}

/// Where a domain stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum DomState {
    Paused,
    Running,
    /// Shut down and preserved.
    Shutdown,
}

/// One domain, as `domains/<name>.json` holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Domain {
    name: String,
    domid: u32,
    cfg: PathBuf,
    kernel: PathBuf,
    vcpus: u32,
    maxvcpus: u32,
    memory_mib: u64,
    maxmem_mib: u64,
    /// Hard affinity; `None` = all CPUs.
    cpus: Option<String>,
    cpu_weight: u32,
    cap: u32,
    on_poweroff: String,
    on_crash: String,
    state: DomState,
    /// `poweroff` or `crash`, once shut down.
    shutdown_reason: Option<String>,
    runner_pid: Option<u32>,
    sim_pid: Option<u32>,
    /// CPU time of the firmware when it ended, ns.
    final_cpu_ns: u64,
}

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = args.remove(0);
    let invoked_as = Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let args: Vec<String> = match args.into_iter().map(OsString::into_string).collect() {
        Ok(a) => a,
        Err(a) => {
            eprintln!("fake-xl: argument {a:?} is not UTF-8");
            return ExitCode::from(2);
        }
    };
    let state = match std::env::var_os(STATE_ENV) {
        Some(dir) if !dir.is_empty() => State::new(PathBuf::from(dir)),
        _ => {
            eprintln!("fake-xl: {STATE_ENV} is not set (the fake's state directory)");
            return ExitCode::from(2);
        }
    };
    let code = match args.first().map(String::as_str) {
        Some("domain-runner") => runner::main(&state, &args[1..]),
        Some("xenstore-read") => xenstore_read(&state, &args[1..]),
        _ if invoked_as == "xenstore-read" => xenstore_read(&state, &args),
        _ => xl(&state, &args),
    };
    ExitCode::from(code)
}

/// The state directory.
#[derive(Debug, Clone)]
struct State {
    dir: PathBuf,
}

impl State {
    fn new(dir: PathBuf) -> State {
        State { dir }
    }

    fn config(&self) -> Result<FakeConfig, String> {
        let path = self.dir.join("config.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("fake-xl: {}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FakeConfig::default()),
            Err(e) => Err(format!("fake-xl: {}: {e}", path.display())),
        }
    }

    fn record_call(&self, tool: &str, args: &[String]) {
        let line = serde_json::json!({ "tool": tool, "argv": args }).to_string() + "\n";
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("calls.jsonl"))
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            eprintln!("fake-xl: recording the call: {e}");
        }
    }

    /// How many calls of `tool` with first argument `first` are recorded
    /// (`None`: any).
    fn count_calls(&self, tool: &str, first: Option<&str>) -> usize {
        let text = std::fs::read_to_string(self.dir.join("calls.jsonl")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|c| c["tool"] == tool)
            .filter(|c| first.is_none_or(|f| c["argv"][0] == f))
            .count()
    }

    fn note_pid(&self, what: &str, pid: u32, name: &str) {
        let line = format!("{what} {pid} {name}\n");
        let _ = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("pids"))
            .and_then(|mut f| f.write_all(line.as_bytes()));
    }

    /// Holds the state lock until the guard drops.
    fn lock(&self) -> Flock<File> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join("lock"))
            .expect("fake-xl: open the lock file");
        Flock::lock(file, FlockArg::LockExclusive).expect("fake-xl: flock")
    }

    fn domains_dir(&self) -> PathBuf {
        self.dir.join("domains")
    }

    fn record_path(&self, name: &str) -> PathBuf {
        self.domains_dir().join(format!("{name}.json"))
    }

    fn socket_path(&self, name: &str) -> PathBuf {
        self.domains_dir().join(format!("{name}.sock"))
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.domains_dir().join(format!("{name}.log"))
    }

    fn xenstore_path(&self, key: &str) -> PathBuf {
        self.dir.join("xenstore").join(key.trim_start_matches('/'))
    }

    fn domain(&self, name: &str) -> Option<Domain> {
        let bytes = std::fs::read(self.record_path(name)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn domains(&self) -> Vec<Domain> {
        let mut out: Vec<Domain> = std::fs::read_dir(self.domains_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
            .collect();
        out.sort_by_key(|d| d.domid);
        out
    }

    fn save(&self, d: &Domain) {
        std::fs::create_dir_all(self.domains_dir()).expect("fake-xl: domains dir");
        let path = self.record_path(&d.name);
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(d).expect("json"))
            .and_then(|()| std::fs::rename(&tmp, &path))
            .expect("fake-xl: write a domain record");
    }

    /// Changes the record of `name` under the lock; `None` if it is gone.
    fn update(&self, name: &str, change: impl FnOnce(&mut Domain)) -> Option<Domain> {
        let _lock = self.lock();
        let mut d = self.domain(name)?;
        change(&mut d);
        self.save(&d);
        Some(d)
    }

    /// Removes a domain's record and xenstore entries (the domain is gone).
    fn forget(&self, d: &Domain) {
        let _lock = self.lock();
        let _ = std::fs::remove_file(self.record_path(&d.name));
        let _ = std::fs::remove_dir_all(self.xenstore_path(&format!("/local/domain/{}", d.domid)));
        let _ = std::fs::remove_file(self.socket_path(&d.name));
    }

    fn write_xenstore(&self, key: &str, value: &str) {
        let path = self.xenstore_path(key);
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let tmp = path.with_extension("tmp");
        let _ = std::fs::write(&tmp, value).and_then(|()| std::fs::rename(&tmp, &path));
    }

    /// xl's `find_domain`: all digits is a domain id, else a name.
    fn find_domain(&self, qualifier: &str) -> Result<Domain, String> {
        let found = if !qualifier.is_empty() && qualifier.bytes().all(|b| b.is_ascii_digit()) {
            let domid: u32 = qualifier.parse().unwrap_or(u32::MAX);
            self.domains().into_iter().find(|d| d.domid == domid)
        } else {
            self.domain(qualifier)
        };
        found.ok_or_else(|| format!("{qualifier} is an invalid domain identifier (rc=-6)"))
    }
}

// ---------------------------------------------------------------- xenstore-read

fn xenstore_read(state: &State, args: &[String]) -> u8 {
    state.record_call("xenstore-read", args);
    if let Ok(config) = state.config() {
        let n = state.count_calls("xenstore-read", None);
        if let Some(text) = config.failure("xenstore-read", n) {
            eprintln!("{text}");
            return 1;
        }
    }
    let paths: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if paths.is_empty() {
        eprintln!("xenstore-read: Usage: xenstore-read [-h] [-s] [-R] [-p] key [...]");
        return 1;
    }
    for path in paths {
        let value = if path.starts_with('/') && !path.contains("..") {
            std::fs::read_to_string(state.xenstore_path(path)).ok()
        } else {
            None
        };
        match value {
            Some(v) => println!("{v}"),
            None => {
                eprintln!("xenstore-read: couldn't read path {path}");
                return 1;
            }
        }
    }
    0
}

// ---------------------------------------------------------------- xl

/// xl's exit status for a failed command (`EXIT_FAILURE`) and for bad usage.
const FAILURE: u8 = 1;
const USAGE: u8 = 2;

fn xl(state: &State, args: &[String]) -> u8 {
    state.record_call("xl", args);
    let config = match state.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return FAILURE;
        }
    };
    let Some(command) = args.first() else {
        eprintln!("Usage xl [-vfN] <subcommand> [args]");
        return USAGE;
    };
    let n = state.count_calls("xl", Some(command));
    if let Some(text) = config.failure(command, n) {
        eprintln!("{text}");
        return FAILURE;
    }
    let rest = &args[1..];
    let result = match command.as_str() {
        "create" => create(state, &config, rest),
        "list" => list(state, rest),
        "domid" => domid(state, rest),
        "pause" => to_runner(state, "pause", rest),
        "unpause" => to_runner(state, "unpause", rest),
        "destroy" => destroy(state, rest),
        "shutdown" => to_runner(state, "shutdown", rest),
        "vcpu-set" => vcpu_set(state, rest),
        "mem-set" => mem_set(state, rest, false),
        "mem-max" => mem_set(state, rest, true),
        "sched-credit2" => sched_credit2(state, rest),
        "vcpu-pin" => vcpu_pin(state, rest),
        "vcpu-list" => vcpu_list(state, rest),
        _ => Err(Failure::new(FAILURE, "command not implemented")),
    };
    match result {
        Ok(()) => 0,
        Err(f) => {
            eprintln!("{}", f.message);
            f.code
        }
    }
}

#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::new(FAILURE, message)
    }
}

/// Splits `args` into options (letters, with a value for those in `with_value`)
/// and operands, as getopt does for xl; unknown options are refused as xl does.
fn getopt(
    command: &str,
    args: &[String],
    letters: &str,
    with_value: &str,
    operands: usize,
) -> Result<(BTreeMap<char, String>, Vec<String>), Failure> {
    let mut options = BTreeMap::new();
    let mut rest = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a.len() > 1 && a.starts_with('-') && rest.is_empty() {
            for (j, c) in a[1..].char_indices() {
                if !letters.contains(c) && !with_value.contains(c) {
                    return Err(Failure::new(USAGE, format!("option `{c}' not supported.")));
                }
                if with_value.contains(c) {
                    let inline = &a[1 + j + c.len_utf8()..];
                    let value = if !inline.is_empty() {
                        inline.to_owned()
                    } else {
                        i += 1;
                        args.get(i).cloned().ok_or_else(|| {
                            Failure::new(USAGE, format!("option `{c}' needs a value."))
                        })?
                    };
                    options.insert(c, value);
                    break;
                }
                options.insert(c, String::new());
            }
        } else {
            rest.push(a.clone());
        }
        i += 1;
    }
    if rest.len() < operands {
        return Err(Failure::new(
            USAGE,
            format!(
                "'xl {command}' requires at least {operands} argument{}.",
                if operands > 1 { "s" } else { "" }
            ),
        ));
    }
    Ok((options, rest))
}

/// xl's `parse_mem_size_kb`: a number, then an optional unit (b, k, m (default), g, t).
fn mem_kib(text: &str) -> Option<u64> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let value: u64 = text[..digits].parse().ok()?;
    let kib = match text[digits..].to_ascii_lowercase().as_str() {
        "t" => value << 30,
        "g" => value << 20,
        "" | "m" => value << 10,
        "k" => value,
        "b" => value >> 10,
        _ => return None,
    };
    Some(kib)
}

/// A CPU list as xl takes it (`all`, `3`, `1-3,5`); normalised, `None` for all.
fn cpu_list(text: &str) -> Result<Option<String>, String> {
    if text == "all" {
        return Ok(None);
    }
    let mut cpus = std::collections::BTreeSet::new();
    for item in text.split(',') {
        let (a, b) = item.split_once('-').unwrap_or((item, item));
        let (a, b): (u32, u32) = match (a.parse(), b.parse()) {
            (Ok(a), Ok(b)) if a <= b && b < 4096 => (a, b),
            _ => return Err(format!("Invalid argument: {item}")),
        };
        cpus.extend(a..=b);
    }
    let list: Vec<String> = cpus.iter().map(u32::to_string).collect();
    Ok(Some(list.join(",")))
}

fn create(state: &State, config: &FakeConfig, args: &[String]) -> Result<(), Failure> {
    let (options, operands) = getopt("create", args, "p", "", 1)?;
    let cfg_path = PathBuf::from(&operands[0]);
    eprintln!("Parsing config from {}", cfg_path.display());
    let text = std::fs::read(&cfg_path)
        .map_err(|e| format!("Failed to read config file: {}: {e}", cfg_path.display()))?;
    let settings = xlcfg::parse(&text).map_err(|(line, near, msg)| {
        format!(
            "{}:{line}: config parsing error near `{near}': {msg}\nFailed to parse config: Invalid argument",
            cfg_path.display()
        )
    })?;
    let mut d = domain_of(&settings, &cfg_path)?;
    if config.sim.as_os_str().is_empty() {
        return Err("fake-xl: config.json names no `sim` to run as the firmware"
            .to_owned()
            .into());
    }
    {
        let _lock = state.lock();
        if state.domain(&d.name).is_some() {
            return Err(format!(
                "libxl: error: libxl_create.c: Domain with name \"{}\" already exists.\n\
                 libxl: error: libxl_create.c: cannot make domain: -6",
                d.name
            )
            .into());
        }
        let counter = state.dir.join("next-domid");
        let domid = std::fs::read_to_string(&counter)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(1u32);
        std::fs::write(&counter, (domid + 1).to_string()).map_err(|e| e.to_string())?;
        d.domid = domid;
        state.save(&d);
    }
    if let Err(e) = start_runner(state, &d) {
        if let Some(d) = state.domain(&d.name) {
            if let Some(pid) = d.runner_pid {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            state.forget(&d);
        }
        return Err(format!("libxl: error: domain {}: {e}", d.domid).into());
    }
    if !options.contains_key(&'p') {
        ask_runner(state, &d.name, "unpause")?;
    }
    Ok(())
}

/// The domain a parsed config describes (domid not yet given).
fn domain_of(settings: &[(String, xlcfg::Value)], cfg: &Path) -> Result<Domain, String> {
    use xlcfg::Value;
    const KNOWN: &[&str] = &[
        "name",
        "type",
        "kernel",
        "vcpus",
        "maxvcpus",
        "cpus",
        "cpu_weight",
        "cap",
        "memory",
        "maxmem",
        "on_poweroff",
        "on_reboot",
        "on_crash",
        // micad's generate_xen_cfg writes these for Arm guests.
        "gic_version",
        "acpi",
    ];
    let mut map: BTreeMap<&str, &Value> = BTreeMap::new();
    for (key, value) in settings {
        if !KNOWN.contains(&key.as_str()) {
            return Err(format!(
                "fake-xl: unknown key `{key}` (real xl would ignore it silently)"
            ));
        }
        // As xl: the last setting of a key wins.
        map.insert(key.as_str(), value);
    }
    let text = |key: &str| -> Result<Option<String>, String> {
        match map.get(key) {
            None => Ok(None),
            Some(Value::Text(t)) => String::from_utf8(t.clone())
                .map(Some)
                .map_err(|_| format!("fake-xl: {key} is not UTF-8")),
            Some(other) => Err(format!("fake-xl: {key} must be a string, not {other:?}")),
        }
    };
    let number = |key: &str| -> Result<Option<u64>, String> {
        match map.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(Some(*n)),
            Some(other) => Err(format!("fake-xl: {key} must be a number, not {other:?}")),
        }
    };
    let name = text("name")?.ok_or("Domain name must be specified.")?;
    if name.is_empty() {
        return Err("Domain name must be specified.".into());
    }
    if let Some(t) = text("type")? {
        if t != "pvh" {
            return Err(format!("fake-xl: guest type {t:?}: an Arm guest is pvh"));
        }
    }
    let kernel = PathBuf::from(text("kernel")?.ok_or("fake-xl: no kernel")?);
    if let Err(e) = std::fs::File::open(&kernel) {
        return Err(format!(
            "libxl: error: libxl_dom.c: cannot open kernel {}: {e}",
            kernel.display()
        ));
    }
    let u32_of = |key: &str, default: u32| -> Result<u32, String> {
        number(key)?.map_or(Ok(default), |n| {
            u32::try_from(n).map_err(|_| format!("{key} {n} is too large"))
        })
    };
    let vcpus = u32_of("vcpus", 1)?;
    let maxvcpus = u32_of("maxvcpus", vcpus)?;
    if vcpus == 0 || maxvcpus < vcpus {
        return Err(format!("fake-xl: vcpus {vcpus} with maxvcpus {maxvcpus}"));
    }
    let memory_mib = number("memory")?.ok_or("fake-xl: no memory")?;
    let maxmem_mib = number("maxmem")?.unwrap_or(memory_mib);
    if memory_mib == 0 || maxmem_mib < memory_mib {
        return Err(format!(
            "fake-xl: memory {memory_mib} with maxmem {maxmem_mib}"
        ));
    }
    let cpus = match text("cpus")? {
        Some(list) => cpu_list(&list).map_err(|e| format!("fake-xl: cpus: {e}"))?,
        None => None,
    };
    let cpu_weight = u32_of("cpu_weight", 256)?;
    if !(1..=65535).contains(&cpu_weight) {
        return Err(format!("fake-xl: cpu_weight {cpu_weight} outside 1..65535"));
    }
    let cap = u32_of("cap", 0)?;
    let action = |key: &str| -> Result<String, String> {
        let value = text(key)?.unwrap_or_else(|| "destroy".into());
        match value.as_str() {
            "destroy" | "preserve" => Ok(value),
            _ => Err(format!("fake-xl: {key} = {value:?} is not simulated")),
        }
    };
    Ok(Domain {
        name,
        domid: 0,
        cfg: cfg.to_path_buf(),
        kernel,
        vcpus,
        maxvcpus,
        memory_mib,
        maxmem_mib,
        cpus,
        cpu_weight,
        cap,
        on_poweroff: action("on_poweroff")?,
        on_crash: action("on_crash")?,
        state: DomState::Paused,
        shutdown_reason: None,
        runner_pid: None,
        sim_pid: None,
        final_cpu_ns: 0,
    })
    .and_then(|d| action("on_reboot").map(|_| d))
}

/// Starts the domain runner of `d` and waits until it has its console.
fn start_runner(state: &State, d: &Domain) -> Result<(), String> {
    std::fs::create_dir_all(state.domains_dir()).map_err(|e| e.to_string())?;
    let log = File::create(state.log_path(&d.name)).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args(["domain-runner", &d.name])
        .env(STATE_ENV, &state.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start the domain runner: {e}"))?;
    let stdout = child.stdout.take().expect("piped");
    // The runner outlives this process: never waited for here (its new parent
    // reaps it).
    drop(child);
    let mut line = String::new();
    let mut reader = BufReader::new(stdout);
    // The runner answers at once; RUNNER_WAIT bounds a broken one (the pipe
    // closes when it dies).
    let _ = reader.read_line(&mut line);
    match line.trim() {
        "ready" => Ok(()),
        "" => Err(format!(
            "the domain runner ended before it was ready; see {}",
            state.log_path(&d.name).display()
        )),
        other => Err(other.to_owned()),
    }
}

/// Sends `command` to the runner of domain `name`; its answer.
fn ask_runner(state: &State, name: &str, command: &str) -> Result<(), String> {
    let path = state.socket_path(name);
    let mut stream = UnixStream::connect(&path).map_err(|e| {
        format!(
            "fake-xl: domain {name}: runner socket {}: {e}",
            path.display()
        )
    })?;
    stream
        .set_read_timeout(Some(RUNNER_WAIT))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(format!("{command}\n").as_bytes())
        .map_err(|e| format!("fake-xl: domain {name}: {e}"))?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    match answer.trim() {
        "ok" => Ok(()),
        "" => Err(format!(
            "fake-xl: domain {name}: the runner did not answer {command}"
        )),
        other => Err(other.to_owned()),
    }
}

fn to_runner(state: &State, command: &str, args: &[String]) -> Result<(), Failure> {
    let (_, operands) = getopt(command, args, "w", "", 1)?;
    let d = state.find_domain(&operands[0])?;
    ask_runner(state, &d.name, command).map_err(Failure::from)
}

fn destroy(state: &State, args: &[String]) -> Result<(), Failure> {
    let (_, operands) = getopt("destroy", args, "", "", 1)?;
    let d = state.find_domain(&operands[0])?;
    ask_runner(state, &d.name, "destroy")?;
    // As `xl destroy`: the domain is gone when it returns.
    let deadline = Instant::now() + RUNNER_WAIT;
    while d.runner_pid.is_some_and(alive) {
        if Instant::now() >= deadline {
            return Err(format!("fake-xl: the runner of {} did not end", d.name).into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// Whether process `pid` exists and has not ended (zombies have).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|s| s != "Z" && s != "X")
    })
}

/// (state letter, CPU ns) of a live process.
fn process_cpu(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => n as u64,
        _ => 100,
    };
    Some((fields.first()?.chars().next()?, ticks * 1_000_000_000 / hz))
}

/// xl's state letters and CPU time of `d`.
fn letters_and_time(d: &Domain) -> (String, u64) {
    let live = d.sim_pid.filter(|&p| alive(p)).and_then(process_cpu);
    let cpu = live.map_or(d.final_cpu_ns, |(_, ns)| ns);
    let letters = match d.state {
        DomState::Paused => "--p---",
        DomState::Running if live.is_some_and(|(s, _)| s == 'R') => "r-----",
        DomState::Running => "-b----",
        DomState::Shutdown if d.shutdown_reason.as_deref() == Some("crash") => "---sc-",
        DomState::Shutdown => "---s--",
    };
    (letters.to_owned(), cpu)
}

fn list(state: &State, args: &[String]) -> Result<(), Failure> {
    let (_, operands) = getopt("list", args, "", "", 0)?;
    let domains = match operands.as_slice() {
        [] => state.domains(),
        [one] => vec![state.find_domain(one)?],
        _ => return Err(Failure::new(FAILURE, "Usage: xl list [options] [Domain]")),
    };
    let mut out = String::from(
        "Name                                        ID   Mem VCPUs\tState\tTime(s)\n",
    );
    if operands.is_empty() {
        out.push_str(&list_line("Domain-0", 0, 1024, 1, "r-----", 0));
    }
    for d in &domains {
        let (letters, cpu) = letters_and_time(d);
        out.push_str(&list_line(
            &d.name,
            d.domid,
            d.memory_mib,
            d.vcpus,
            &letters,
            cpu,
        ));
    }
    print!("{out}");
    Ok(())
}

/// One line of `xl list`: `%-40s %5d %5lu %5d     %c%c%c%c%c%c  %8.1f`.
fn list_line(name: &str, domid: u32, mem: u64, vcpus: u32, letters: &str, cpu_ns: u64) -> String {
    let secs = cpu_ns as f64 / 1e9;
    format!("{name:<40} {domid:>5} {mem:>5} {vcpus:>5}     {letters}  {secs:>8.1}\n")
}

fn domid(state: &State, args: &[String]) -> Result<(), Failure> {
    let (_, operands) = getopt("domid", args, "", "", 1)?;
    let name = &operands[0];
    match state.domain(name) {
        Some(d) => {
            println!("{}", d.domid);
            Ok(())
        }
        None => Err(format!(
            "Can't get domid of domain name '{name}', maybe this domain does not exist."
        )
        .into()),
    }
}

fn vcpu_set(state: &State, args: &[String]) -> Result<(), Failure> {
    let (_, operands) = getopt("vcpu-set", args, "i", "", 2)?;
    let d = state.find_domain(&operands[0])?;
    let n: u32 = operands[1]
        .parse()
        .map_err(|_| Failure::new(FAILURE, "Error: Invalid argument."))?;
    if n == 0 || n > d.maxvcpus {
        return Err(format!(
            "libxl: error: libxl_domain.c: Requested {n} VCPUs, however maxcpus is {}!\n\
             libxl_set_vcpuonline failed domid={} max_vcpus={n}, rc: -3",
            d.maxvcpus, d.domid
        )
        .into());
    }
    state.update(&d.name, |d| d.vcpus = n);
    Ok(())
}

fn mem_set(state: &State, args: &[String], max: bool) -> Result<(), Failure> {
    let command = if max { "mem-max" } else { "mem-set" };
    let (_, operands) = getopt(command, args, "", "", 2)?;
    let d = state.find_domain(&operands[0])?;
    let text = &operands[1];
    let mib = mem_kib(text).ok_or_else(|| format!("invalid memory size: {text}"))? >> 10;
    // libxl keeps the target under the static maximum, and the maximum over it.
    let refused = if max {
        mib < d.memory_mib
    } else {
        mib > d.maxmem_mib || mib == 0
    };
    if refused {
        return Err(format!(
            "cannot set domid {} {} memory to : {text}",
            d.domid,
            if max { "static max" } else { "dynamic max" }
        )
        .into());
    }
    state.update(&d.name, |d| {
        if max {
            d.maxmem_mib = mib;
        } else {
            d.memory_mib = mib;
        }
    });
    Ok(())
}

fn sched_credit2(state: &State, args: &[String]) -> Result<(), Failure> {
    let (options, _) = getopt("sched-credit2", args, "s", "dwcpr", 0)?;
    let Some(dom) = options.get(&'d') else {
        return Err("fake-xl: sched-credit2 is simulated only with -d <domain>"
            .to_owned()
            .into());
    };
    let d = state.find_domain(dom)?;
    let parse = |c: char| -> Result<Option<u32>, Failure> {
        options
            .get(&c)
            .map(|v| {
                v.parse::<u32>()
                    .map_err(|_| Failure::new(FAILURE, format!("Invalid value for -{c}: {v}")))
            })
            .transpose()
    };
    let weight = parse('w')?;
    let cap = parse('c')?;
    if weight.is_some_and(|w| !(1..=65535).contains(&w)) {
        return Err(
            "libxl: error: libxl_sched.c: Cpu weight out of range, valid range is from 1 to 65535"
                .to_owned()
                .into(),
        );
    }
    if cap.is_some_and(|c| c > 100 * d.maxvcpus) {
        return Err(format!(
            "libxl: error: libxl_sched.c: Domain {}: Setting domain sched credit2: Invalid argument",
            d.domid
        )
        .into());
    }
    state.update(&d.name, |d| {
        if let Some(w) = weight {
            d.cpu_weight = w;
        }
        if let Some(c) = cap {
            d.cap = c;
        }
    });
    Ok(())
}

fn vcpu_pin(state: &State, args: &[String]) -> Result<(), Failure> {
    let (_, operands) = getopt("vcpu-pin", args, "f", "", 3)?;
    let d = state.find_domain(&operands[0])?;
    let vcpu = &operands[1];
    if vcpu != "all" && !vcpu.parse::<u32>().is_ok_and(|v| v < d.maxvcpus) {
        return Err(format!("Error: Invalid argument {vcpu} as VCPU.").into());
    }
    let hard = cpu_list(&operands[2])?;
    state.update(&d.name, |d| d.cpus = hard);
    Ok(())
}

fn vcpu_list(state: &State, args: &[String]) -> Result<(), Failure> {
    let (_, operands) = getopt("vcpu-list", args, "", "", 0)?;
    let domains = if operands.is_empty() {
        state.domains()
    } else {
        operands
            .iter()
            .map(|q| state.find_domain(q))
            .collect::<Result<Vec<_>, _>>()?
    };
    let mut out = format!(
        "{:<32} {:>5} {:>5} {:>5} {:>5} {:>9} {}\n",
        "Name", "ID", "VCPU", "CPU", "State", "Time(s)", "Affinity (Hard / Soft)"
    );
    for d in &domains {
        let (letters, cpu) = letters_and_time(d);
        let hard = d.cpus.clone().unwrap_or_else(|| "all".into());
        for v in 0..d.maxvcpus {
            out.push_str(&format!("{:<32} {:>5} {:>5}", d.name, d.domid, v));
            if v < d.vcpus {
                let running = letters.starts_with('r') && v == 0;
                out.push_str(&format!(
                    "{:>5} {:>3}{}- ",
                    0,
                    if running { 'r' } else { '-' },
                    if running { '-' } else { 'b' }
                ));
            } else {
                out.push_str(&format!("{:>5} {:>3}{}p ", '-', '-', '-'));
            }
            let secs = if v == 0 { cpu as f64 / 1e9 } else { 0.0 };
            out.push_str(&format!("{secs:>9.1}  {hard} / all\n"));
        }
    }
    print!("{out}");
    Ok(())
}

// ---------------------------------------------------------------- xl.cfg syntax

mod xlcfg {
    /// A config value.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Value {
        Text(Vec<u8>),
        Number(u64),
        List(Vec<Value>),
    }

    /// A parse error: (line, the text near it, what is wrong).
    pub type Error = (usize, String, String);

    /// Parses an xl config: settings in order.
    pub fn parse(text: &[u8]) -> Result<Vec<(String, Value)>, Error> {
        let mut p = Parser {
            s: text,
            at: 0,
            line: 1,
        };
        let mut out = Vec::new();
        loop {
            p.skip_blank_lines();
            if p.at >= p.s.len() {
                return Ok(out);
            }
            let key = p.ident()?;
            p.skip_spaces();
            p.expect(b'=')?;
            p.skip_spaces();
            let value = p.value()?;
            p.skip_spaces();
            match p.peek() {
                None | Some(b'\n') | Some(b';') => {
                    p.bump();
                }
                Some(b'#') => p.skip_comment(),
                Some(_) => return Err(p.error("syntax error")),
            }
            out.push((key, value));
        }
    }

    struct Parser<'a> {
        s: &'a [u8],
        at: usize,
        line: usize,
    }

    impl Parser<'_> {
        fn peek(&self) -> Option<u8> {
            self.s.get(self.at).copied()
        }

        fn bump(&mut self) -> Option<u8> {
            let c = self.peek()?;
            self.at += 1;
            if c == b'\n' {
                self.line += 1;
            }
            Some(c)
        }

        fn error(&self, msg: &str) -> Error {
            let near: String = String::from_utf8_lossy(&self.s[self.at.min(self.s.len())..])
                .chars()
                .take_while(|&c| c != '\n')
                .take(20)
                .collect();
            (self.line, near, msg.to_owned())
        }

        fn skip_spaces(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\t')) {
                self.bump();
            }
        }

        fn skip_comment(&mut self) {
            while !matches!(self.peek(), None | Some(b'\n')) {
                self.bump();
            }
        }

        fn skip_blank_lines(&mut self) {
            loop {
                self.skip_spaces();
                match self.peek() {
                    Some(b'\n' | b';') => {
                        self.bump();
                    }
                    Some(b'#') => self.skip_comment(),
                    _ => return,
                }
            }
        }

        fn expect(&mut self, c: u8) -> Result<(), Error> {
            if self.peek() == Some(c) {
                self.bump();
                Ok(())
            } else {
                Err(self.error(&format!("syntax error, expected '{}'", c as char)))
            }
        }

        /// `[a-z][._0-9a-z]*`
        fn ident(&mut self) -> Result<String, Error> {
            let start = self.at;
            if !self.peek().is_some_and(|c| c.is_ascii_lowercase()) {
                return Err(self.error("syntax error, expected a setting name"));
            }
            while self.peek().is_some_and(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'_'
            }) {
                self.bump();
            }
            Ok(String::from_utf8_lossy(&self.s[start..self.at]).into_owned())
        }

        fn value(&mut self) -> Result<Value, Error> {
            match self.peek() {
                Some(b'"' | b'\'') => self.string(),
                Some(b'[') => self.list(),
                Some(c) if c.is_ascii_digit() => self.number(),
                _ => Err(self.error("syntax error, expected a value")),
            }
        }

        fn number(&mut self) -> Result<Value, Error> {
            let start = self.at;
            let hex = self.s[self.at..].starts_with(b"0x");
            if hex {
                self.at += 2;
            }
            while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                self.bump();
            }
            let text = String::from_utf8_lossy(&self.s[start..self.at]).into_owned();
            let parsed = if hex {
                u64::from_str_radix(&text[2..], 16)
            } else {
                text.parse()
            };
            parsed.map(Value::Number).map_err(|_| {
                self.at = start;
                self.error("invalid number")
            })
        }

        /// A quoted string with xl's escapes (`\"`, `\'`, `\\`, `\a` … `\v`).
        /// xl's numeric escapes never yield a character (libxlu drops them), so
        /// they are refused here.
        fn string(&mut self) -> Result<Value, Error> {
            let quote = self.bump().expect("a quote");
            let mut out = Vec::new();
            loop {
                match self.peek() {
                    None | Some(b'\n') => return Err(self.error("unterminated string")),
                    Some(c) if c == quote => {
                        self.bump();
                        return Ok(Value::Text(out));
                    }
                    Some(b'\\') => {
                        self.bump();
                        let c = match self.peek() {
                            Some(c @ (b'"' | b'\'' | b'\\')) => c,
                            Some(b'a') => 7,
                            Some(b'b') => 8,
                            Some(b'f') => 12,
                            Some(b'n') => b'\n',
                            Some(b'r') => b'\r',
                            Some(b't') => b'\t',
                            Some(b'v') => 11,
                            _ => return Err(self.error("escape xl cannot decode")),
                        };
                        self.bump();
                        out.push(c);
                    }
                    Some(c) => {
                        self.bump();
                        out.push(c);
                    }
                }
            }
        }

        fn list(&mut self) -> Result<Value, Error> {
            self.bump();
            let mut items = Vec::new();
            loop {
                self.skip_blank_lines();
                if self.peek() == Some(b']') {
                    self.bump();
                    return Ok(Value::List(items));
                }
                items.push(self.value()?);
                self.skip_blank_lines();
                match self.peek() {
                    Some(b',') => {
                        self.bump();
                    }
                    Some(b']') => {}
                    _ => return Err(self.error("syntax error in list")),
                }
            }
        }
    }
}

// ---------------------------------------------------------------- domain runner

mod runner {
    //! The process behind one domain: owns its pty, runs its firmware.

    use super::*;

    /// `fake-xl domain-runner <name>`: stdout is the pipe `xl create` waits on.
    pub fn main(state: &State, args: &[String]) -> u8 {
        let Some(name) = args.first() else {
            eprintln!("fake-xl: domain-runner needs a domain name");
            return USAGE;
        };
        match run(state, name) {
            Ok(()) => 0,
            Err(e) => {
                // Before "ready" this reaches `xl create`, after it the log.
                println!("{e}");
                eprintln!("fake-xl runner {name}: {e}");
                FAILURE
            }
        }
    }

    struct Console {
        master: OwnedFd,
        /// Held open as xenconsoled does, so the master never sees a hang-up
        /// while no reader has the slave open.
        _slave: File,
    }

    fn open_console() -> Result<(Console, PathBuf), String> {
        use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
            .map_err(|e| format!("posix_openpt: {e}"))?;
        grantpt(&master).map_err(|e| format!("grantpt: {e}"))?;
        unlockpt(&master).map_err(|e| format!("unlockpt: {e}"))?;
        let path = PathBuf::from(ptsname_r(&master).map_err(|e| format!("ptsname: {e}"))?);
        let slave = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut t = tcgetattr(&slave).map_err(|e| format!("tcgetattr: {e}"))?;
        cfmakeraw(&mut t);
        tcsetattr(&slave, SetArg::TCSANOW, &t).map_err(|e| format!("tcsetattr: {e}"))?;
        Ok((
            Console {
                master: OwnedFd::from(master),
                _slave: slave,
            },
            path,
        ))
    }

    /// The firmware process and the thread that waits for it.
    struct Firmware {
        pid: u32,
        waiter: std::thread::JoinHandle<(i32, u64)>,
    }

    fn run(state: &State, name: &str) -> Result<(), String> {
        nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
        let me = std::process::id();
        state.note_pid("runner", me, name);
        let config = state.config()?;
        let d = state
            .update(name, |d| d.runner_pid = Some(me))
            .ok_or_else(|| format!("fake-xl: no record for domain {name}"))?;
        let (console, tty) = open_console()?;
        let socket = state.socket_path(name);
        let _ = std::fs::remove_file(&socket);
        let listener =
            UnixListener::bind(&socket).map_err(|e| format!("{}: {e}", socket.display()))?;
        state.write_xenstore(&format!("/local/domain/{}/name", d.domid), name);
        let tty_key = format!("/local/domain/{}/console/tty", d.domid);
        let tty_text = tty.to_string_lossy().into_owned();
        if config.console_delay_ms == 0 {
            state.write_xenstore(&tty_key, &tty_text);
        } else {
            // xenconsoled publishing the console a while after the domain appears.
            let state = state.clone();
            let delay = Duration::from_millis(config.console_delay_ms);
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                state.write_xenstore(&tty_key, &tty_text);
            });
        }
        println!("ready");
        // Close the pipe to `xl create`: stdout goes to the log from now on.
        let _ = std::io::stdout().flush();
        nix::unistd::dup2_stdout(std::io::stderr()).map_err(|e| format!("dup2: {e}"))?;

        let (ended_r, ended_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| e.to_string())?;
        let mut ended_w = Some(ended_w);
        let mut firmware: Option<Firmware> = None;
        loop {
            let (conn, fw_ended) = {
                let mut fds = [
                    PollFd::new(listener.as_fd(), PollFlags::POLLIN),
                    PollFd::new(ended_r.as_fd(), PollFlags::POLLIN),
                ];
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => return Err(format!("poll: {e}")),
                }
                let fired = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
                (fired(&fds[0]), fired(&fds[1]))
            };
            if fw_ended {
                let fw = firmware.take().expect("a firmware ended");
                let (status, cpu_ns) = fw.waiter.join().expect("waiter");
                let crashed = libc::WIFSIGNALED(status)
                    || (libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 101);
                let reason = if crashed { "crash" } else { "poweroff" };
                let d = state
                    .update(name, |d| {
                        d.state = DomState::Shutdown;
                        d.shutdown_reason = Some(reason.into());
                        d.sim_pid = None;
                        d.final_cpu_ns = cpu_ns;
                    })
                    .ok_or("the record vanished")?;
                let action = if crashed { &d.on_crash } else { &d.on_poweroff };
                eprintln!("fake-xl runner {name}: the firmware ended ({reason}): {action}");
                if action == "destroy" {
                    state.forget(&d);
                    drop(console);
                    return Ok(());
                }
                // Preserved: stays listed as shut down until `xl destroy`.
                let mut drain = [0u8; 8];
                let _ = nix::unistd::read(&ended_r, &mut drain);
                continue;
            }
            if !conn {
                continue;
            }
            let Ok((stream, _)) = listener.accept() else {
                continue;
            };
            let mut stream = stream;
            let _ = stream.set_read_timeout(Some(RUNNER_WAIT));
            let mut line = String::new();
            let _ = BufReader::new(&stream).read_line(&mut line);
            let answer = match line.trim() {
                "unpause" => unpause(state, name, &config, &console, &mut firmware, &mut ended_w),
                "pause" => pause(state, name, firmware.as_ref()),
                "shutdown" => {
                    if let Some(fw) = &firmware {
                        let _ = kill(Pid::from_raw(fw.pid as i32), Signal::SIGTERM);
                    }
                    Ok(())
                }
                "destroy" => {
                    if let Some(fw) = firmware.take() {
                        let _ = kill(Pid::from_raw(fw.pid as i32), Signal::SIGKILL);
                        let _ = fw.waiter.join();
                    }
                    if let Some(d) = state.domain(name) {
                        state.forget(&d);
                    }
                    // The console goes before the answer: when `xl destroy`
                    // returns, the reader has its hang-up.
                    drop(console);
                    let _ = stream.write_all(b"ok\n");
                    return Ok(());
                }
                other => Err(format!("fake-xl: runner: unknown request {other:?}")),
            };
            let reply = match answer {
                Ok(()) => "ok\n".to_owned(),
                Err(e) => format!("{e}\n"),
            };
            let _ = stream.write_all(reply.as_bytes());
        }
    }

    fn unpause(
        state: &State,
        name: &str,
        config: &FakeConfig,
        console: &Console,
        firmware: &mut Option<Firmware>,
        ended_w: &mut Option<OwnedFd>,
    ) -> Result<(), String> {
        let d = state.domain(name).ok_or("the record vanished")?;
        if d.state == DomState::Shutdown {
            return Err(format!(
                "libxl: error: domain {}: it has shut down",
                d.domid
            ));
        }
        match firmware {
            Some(fw) => {
                kill(Pid::from_raw(fw.pid as i32), Signal::SIGCONT)
                    .map_err(|e| format!("SIGCONT: {e}"))?;
            }
            None if d.shutdown_reason.is_none() => {
                let dup = |what| {
                    console
                        .master
                        .try_clone()
                        .map_err(|e| format!("dup of the pty master for {what}: {e}"))
                };
                let log = OpenOptions::new()
                    .append(true)
                    .open(state.log_path(name))
                    .map_err(|e| e.to_string())?;
                let child = Command::new(&config.sim)
                    .args(&config.sim_args)
                    .stdin(dup("stdin")?)
                    .stdout(dup("stdout")?)
                    .stderr(log)
                    .spawn()
                    .map_err(|e| format!("cannot run {}: {e}", config.sim.display()))?;
                let pid = child.id();
                // Reaped by the waiter with wait4, for the CPU time.
                drop(child);
                state.note_pid("sim", pid, name);
                let notify = ended_w.take().ok_or("the firmware already ran")?;
                let waiter = std::thread::spawn(move || {
                    let mut status = 0;
                    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
                    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
                    // SAFETY: wait4 on our own child, with valid pointers.
                    unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
                    let ns = |t: libc::timeval| {
                        t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000
                    };
                    let cpu = ns(usage.ru_utime) + ns(usage.ru_stime);
                    let _ = nix::unistd::write(&notify, b"x");
                    (status, cpu)
                });
                *firmware = Some(Firmware { pid, waiter });
                state.update(name, |d| d.sim_pid = Some(pid));
            }
            None => {
                return Err(format!(
                    "libxl: error: domain {}: it has shut down",
                    d.domid
                ))
            }
        }
        state.update(name, |d| d.state = DomState::Running);
        Ok(())
    }

    fn pause(state: &State, name: &str, firmware: Option<&Firmware>) -> Result<(), String> {
        if let Some(fw) = firmware {
            kill(Pid::from_raw(fw.pid as i32), Signal::SIGSTOP)
                .map_err(|e| format!("SIGSTOP: {e}"))?;
        }
        state.update(name, |d| {
            if d.state == DomState::Running {
                d.state = DomState::Paused;
            }
        });
        Ok(())
    }
}
