//! `micrun check`: what this host offers and why (docs/cli.md).
//!
//! Every answer comes from the shim's own code: the host is probed once with
//! [`HostProbe::probe`] (the micad probe, the Xen marker, remoteproc, QEMU), the
//! default pedestal is [`detect::choose_with`] on that probe, each hardware
//! pedestal's driver is [`detect::driver_with`], `xl` and QEMU are found with the
//! pedestals' own lookups, and the board is [`HostBoard::of`]. Nothing here waits
//! without a bound: micad's probe has [`detect::MICAD_PROBE_TIMEOUT`], every
//! program run (`qemu-system-* --version`, `containerd-shim-mica-v2 -v`) is killed
//! and reaped after [`TOOL_TIMEOUT`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use argh::FromArgs;
use serde_json::{json, Value};

use crate::config::{config_path, Config, PedestalKind, CONFIG_ENV};
use crate::image::HostBoard;
use crate::pedestal::detect::{self, ChosenBy, Driver, HostProbe};
use crate::pedestal::{find_executable, micad, qemu, remoteproc, xl};

/// How long a program run by `check` may take before it is killed.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(3);

/// The shim's binary name (containerd derives it from [`RUNTIME_TYPE`]).
pub const SHIM_NAME: &str = "containerd-shim-mica-v2";

/// The runtime type containerd's config names the shim by.
pub const RUNTIME_TYPE: &str = "io.containerd.mica.v2";

/// containerd's config file when `--containerd-config` is not given.
pub const CONTAINERD_CONFIG: &str = "/etc/containerd/config.toml";

/// Where containerd's CRI plugin keeps its runtimes, by config format: the plugin
/// key under `[plugins]` and the config `version` that uses it.
const CRI_RUNTIME_PLUGINS: [(&str, u32); 3] = [
    ("cri", 1),
    ("io.containerd.grpc.v1.cri", 2),
    ("io.containerd.cri.v1.runtime", 3),
];

/// Tell what this host offers: each pedestal usable or not, through which driver,
/// and the check that decided; the config file, the shim, and containerd's config.
/// Exit status 0 when at least one pedestal is usable, 1 when none is (or the
/// config file does not parse), 2 for a usage error.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "check")]
pub struct Check {
    /// the micrun config (default: $MICRUN_CONFIG or /etc/micrun/config.toml)
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// print one JSON object (docs/cli.md) instead of the table
    #[argh(switch)]
    pub json: bool,
    /// containerd's config file to read (default: /etc/containerd/config.toml; never written)
    #[argh(option)]
    pub containerd_config: Option<PathBuf>,
}

/// One pedestal's verdict.
struct PedestalRow {
    kind: PedestalKind,
    usable: bool,
    /// `micad`, `xl`, `remoteproc`, `qemu` or `process` (sim).
    driver: Option<&'static str>,
    why: String,
}

/// A program found (or not) and what its version flag printed.
struct Program {
    /// What was looked for (a name in `PATH` or a path).
    wanted: PathBuf,
    path: Option<PathBuf>,
    /// The first line of its version output.
    version: Option<String>,
    error: Option<String>,
}

impl Program {
    fn find(wanted: &Path) -> Program {
        let found = find_executable(wanted, std::env::var_os("PATH").as_deref());
        Program {
            wanted: wanted.to_path_buf(),
            path: found.as_ref().ok().cloned(),
            version: None,
            error: found.err(),
        }
    }

    /// Runs `<path> <flag>` and keeps the first non-empty line of its output.
    fn with_version(mut self, flag: &str) -> Program {
        if let Some(path) = &self.path {
            match xl::run_tool(path, [flag], TOOL_TIMEOUT) {
                Ok(out) => {
                    self.version = out
                        .lines()
                        .map(str::trim)
                        .find(|l| !l.is_empty())
                        .map(str::to_owned)
                }
                Err(e) => self.error = Some(e.to_string()),
            }
        }
        self
    }

    fn json(&self) -> Value {
        json!({
            "wanted": self.wanted.display().to_string(),
            "path": self.path.as_ref().map(|p| p.display().to_string()),
            "version": self.version,
            "error": self.error,
        })
    }

    fn text(&self) -> String {
        match (&self.path, &self.version, &self.error) {
            (Some(p), Some(v), _) => format!("{}: {v}", p.display()),
            (Some(p), None, Some(e)) => format!("{}: found, but {e}", p.display()),
            (Some(p), None, None) => format!("{}: found", p.display()),
            (None, _, Some(e)) => format!("not found: {e}"),
            (None, _, None) => "not found".to_owned(),
        }
    }
}

/// What `check` found.
struct Report {
    config_path: PathBuf,
    /// `Ok(true)`: the file parsed; `Ok(false)`: no file, built-in defaults.
    config_state: Result<bool, String>,
    pedestals: Vec<PedestalRow>,
    default: Result<(PedestalKind, String), String>,
    micad_socket: PathBuf,
    micad_result: &'static str,
    micad_detail: String,
    xen_marker: PathBuf,
    xen_marker_exists: bool,
    xl: Program,
    xenstore_read: Program,
    remoteproc_class: PathBuf,
    remoteprocs: Result<Vec<(String, String, String)>, String>,
    qemu: Vec<(&'static str, Program)>,
    sim_enabled: bool,
    board: HostBoard,
    shim: Option<(Program, &'static str)>,
    shim_on_path: Option<PathBuf>,
    containerd: ContainerdConfig,
}

/// What containerd's config says about the shim.
struct ContainerdConfig {
    path: PathBuf,
    /// `Ok(None)`: the file does not exist.
    read: Result<Option<Vec<(String, String)>>, String>,
}

/// Runs `micrun check`.
pub fn run(cmd: Check) -> i32 {
    let report = Report::gather(&cmd);
    let usable = report.pedestals.iter().any(|p| p.usable);
    let ok = usable && report.config_state.is_ok();
    if cmd.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.json(ok)).unwrap_or_default()
        );
    } else {
        print!("{}", report.text(ok));
    }
    if ok {
        0
    } else {
        1
    }
}

impl Report {
    fn gather(cmd: &Check) -> Report {
        let config_path = cmd
            .config
            .clone()
            .unwrap_or_else(|| config_path(std::env::var_os(CONFIG_ENV).as_deref()));
        let (config, config_state) = match Config::load_from(&config_path) {
            Ok(c) => {
                let exists = c.origin.is_some();
                (c, Ok(exists))
            }
            // The shim refuses every container then; the host is still probed,
            // with the built-in defaults, to say what it has.
            Err(e) => (Config::default(), Err(e.to_string())),
        };
        let probe = HostProbe::probe(&config);
        let micad_socket = config.mica.dir.join(micad::CREATE_SOCKET);
        let (micad_result, micad_detail) = micad_result(&probe, &micad_socket);
        let remoteprocs = remoteproc::processors(&config.baremetal.sysfs).map(|all| {
            all.iter()
                .map(|p| {
                    let state = p
                        .state()
                        .map_or_else(|e| format!("unknown ({e})"), |s| s.to_string());
                    (p.entry.clone(), p.name.clone(), state)
                })
                .collect::<Vec<_>>()
        });
        let qemu: Vec<(&'static str, Program)> = qemu::Qemu::new(&config)
            .binaries()
            .into_iter()
            .map(|(arch, binary)| {
                (
                    arch.name(),
                    Program::find(&binary).with_version("--version"),
                )
            })
            .collect();
        let pedestals = PedestalKind::ALL
            .iter()
            .map(|&kind| pedestal_row(kind, &config, &probe, &remoteprocs, &qemu))
            .collect();
        let default = match detect::choose_with(None, &config, |_| probe.clone()) {
            Ok(chosen) => {
                let how = match &chosen.by {
                    ChosenBy::Detection(check) => format!("host detection: {check}"),
                    ChosenBy::Config(Some(p)) => format!("default_pedestal in {}", p.display()),
                    ChosenBy::Config(None) | ChosenBy::Annotation => {
                        "the built-in default_pedestal".to_owned()
                    }
                };
                Ok((chosen.kind, how))
            }
            Err(e) => Err(e.to_string()),
        };
        let (shim, shim_on_path) = find_shim();
        Report {
            config_path,
            config_state,
            pedestals,
            default,
            micad_socket,
            micad_result,
            micad_detail,
            xen_marker: config.xen.detect.clone(),
            xen_marker_exists: probe.xen,
            xl: Program::find(&config.xen.xl),
            xenstore_read: Program::find(&config.xen.xenstore_read),
            remoteproc_class: detect::remoteproc_class(&config.baremetal.sysfs),
            remoteprocs,
            qemu,
            sim_enabled: config.sim.enable,
            board: HostBoard::of(&config),
            shim,
            shim_on_path,
            containerd: ContainerdConfig::read(
                cmd.containerd_config
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(CONTAINERD_CONFIG)),
            ),
        }
    }

    fn json(&self, ok: bool) -> Value {
        let usable: Vec<&str> = self
            .pedestals
            .iter()
            .filter(|p| p.usable)
            .map(|p| p.kind.name())
            .collect();
        let (config_status, config_error) = match &self.config_state {
            Ok(true) => ("parsed", None),
            Ok(false) => ("absent", None),
            Err(e) => ("invalid", Some(e.clone())),
        };
        let (cd_status, cd_error, handlers) = match &self.containerd.read {
            Ok(None) => ("absent", None, Vec::new()),
            Ok(Some(h)) if h.is_empty() => ("not-registered", None, Vec::new()),
            Ok(Some(h)) => ("registered", None, h.clone()),
            Err(e) => ("invalid", Some(e.clone()), Vec::new()),
        };
        json!({
            "schema": 1,
            "micrun_version": super::VERSION,
            "ok": ok,
            "advice": (!ok).then(|| self.advice().trim_start_matches("micrun: ").trim_end().to_owned()),
            "usable": usable,
            "default_pedestal": match &self.default {
                Ok((kind, how)) => json!({ "pedestal": kind.name(), "chosen_by": how, "error": null }),
                Err(e) => json!({ "pedestal": null, "chosen_by": null, "error": e }),
            },
            "pedestals": self.pedestals.iter().map(|p| json!({
                "name": p.kind.name(),
                "usable": p.usable,
                "driver": p.driver,
                "why": p.why,
            })).collect::<Vec<_>>(),
            "checks": {
                "micad": {
                    "socket": self.micad_socket.display().to_string(),
                    "result": self.micad_result,
                    "detail": self.micad_detail,
                },
                "xen_marker": {
                    "path": self.xen_marker.display().to_string(),
                    "exists": self.xen_marker_exists,
                },
                "xl": self.xl.json(),
                "xenstore_read": self.xenstore_read.json(),
                "remoteproc": {
                    "class": self.remoteproc_class.display().to_string(),
                    "processors": self.remoteprocs.as_ref().map(|all| all.iter().map(|(entry, name, state)| json!({
                        "entry": entry, "name": name, "state": state,
                    })).collect::<Vec<_>>()).unwrap_or_default(),
                    "error": self.remoteprocs.as_ref().err(),
                },
                "qemu": self.qemu.iter().map(|(arch, p)| {
                    let mut v = p.json();
                    v["arch"] = json!(arch);
                    v
                }).collect::<Vec<_>>(),
                "sim": { "enabled": self.sim_enabled },
            },
            "board": board_json(&self.board),
            "config": {
                "path": self.config_path.display().to_string(),
                "status": config_status,
                "error": config_error,
            },
            "shim": match &self.shim {
                Some((p, found_by)) => {
                    let mut v = p.json();
                    v["found_by"] = json!(found_by);
                    v["on_path"] = json!(self.shim_on_path.as_ref().map(|p| p.display().to_string()));
                    v
                }
                None => json!({
                    "wanted": SHIM_NAME, "path": null, "version": null, "found_by": null,
                    "on_path": null,
                    "error": format!("{SHIM_NAME} is neither beside micrun nor in PATH"),
                }),
            },
            "containerd": {
                "config": self.containerd.path.display().to_string(),
                "status": cd_status,
                "error": cd_error,
                "cri_handlers": handlers.iter().map(|(name, section)| json!({
                    "handler": name, "section": section,
                })).collect::<Vec<_>>(),
            },
        })
    }

    fn text(&self, ok: bool) -> String {
        let mut out = format!("micrun {}: what this host offers\n\n", super::VERSION);
        let mut rows = vec![[
            "PEDESTAL".to_owned(),
            "USABLE".to_owned(),
            "DRIVER".to_owned(),
            "WHY".to_owned(),
        ]];
        for p in &self.pedestals {
            rows.push([
                p.kind.name().to_owned(),
                if p.usable { "yes" } else { "no" }.to_owned(),
                p.driver.unwrap_or("-").to_owned(),
                p.why.clone(),
            ]);
        }
        out.push_str(&table(&rows));
        out.push('\n');
        let mut facts: Vec<[String; 2]> = Vec::new();
        let mut fact = |k: &str, v: String| facts.push([k.to_owned(), v]);
        fact(
            "default pedestal",
            match &self.default {
                Ok((kind, how)) => format!("{kind} (chosen by {how})"),
                Err(e) => e.clone(),
            },
        );
        fact(
            "micad",
            format!("{}: {}", self.micad_result, self.micad_detail),
        );
        fact(
            "Xen marker",
            format!(
                "{} {}",
                self.xen_marker.display(),
                if self.xen_marker_exists {
                    "exists"
                } else {
                    "does not exist"
                }
            ),
        );
        fact("xl", self.xl.text());
        fact("xenstore-read", self.xenstore_read.text());
        match &self.remoteprocs {
            Ok(all) if all.is_empty() => fact(
                "remoteproc",
                format!("no processor under {}", self.remoteproc_class.display()),
            ),
            Ok(all) => {
                fact(
                    "remoteproc",
                    format!(
                        "{} processor(s) under {}",
                        all.len(),
                        self.remoteproc_class.display()
                    ),
                );
                for (entry, name, state) in all {
                    fact(&format!("  {entry}"), format!("{name}: {state}"));
                }
            }
            Err(e) => fact("remoteproc", e.clone()),
        }
        for (arch, p) in &self.qemu {
            fact(&format!("QEMU {arch}"), p.text());
        }
        fact(
            "sim",
            if self.sim_enabled {
                "enabled ([sim] enable = true)"
            } else {
                "disabled ([sim] enable = false)"
            }
            .to_owned(),
        );
        fact("board", self.board.to_string());
        fact(
            "config",
            match &self.config_state {
                Ok(true) => format!("{}: parsed", self.config_path.display()),
                Ok(false) => format!(
                    "{}: absent, the built-in defaults apply",
                    self.config_path.display()
                ),
                Err(e) => format!("does not parse, the shim refuses every container: {e}"),
            },
        );
        fact(
            "shim",
            match &self.shim {
                Some((p, found_by)) => format!("{} ({found_by})", p.text()),
                None => format!("{SHIM_NAME} is neither beside micrun nor in PATH; install it on containerd's PATH"),
            },
        );
        fact("containerd config", self.containerd.text());
        fact(
            "ctr",
            format!(
                "`ctr run --runtime {RUNTIME_TYPE}` needs only {SHIM_NAME} on containerd's PATH ({})",
                match &self.shim_on_path {
                    Some(p) => format!("on this PATH: {}", p.display()),
                    None => "not on this PATH".to_owned(),
                }
            ),
        );
        out.push_str(&table(&facts));
        if !ok {
            out.push('\n');
            out.push_str(&self.advice());
        }
        out
    }

    /// What to install or configure when nothing is usable.
    fn advice(&self) -> String {
        if let Err(e) = &self.config_state {
            return format!("micrun: fix the micrun config first: {e}\n");
        }
        let qemu = qemu::MACHINES[0];
        format!(
            "micrun: no pedestal is usable on this host. Install QEMU (Debian package {}) for \
             the qemu pedestal, start micad (Mica) for xen or baremetal, or on a Xen dom0 \
             install the Xen tools (xl); tests may set [sim] enable = true in {}.\n",
            qemu.package,
            self.config_path.display()
        )
    }
}

/// micad's answer in one word (`answering`, `missing`, `refused`, `silent`,
/// `not-micad`, `error`) and the probe's own words.
fn micad_result(probe: &HostProbe, socket: &Path) -> (&'static str, String) {
    match probe.micad_answer() {
        Ok(()) => (
            "answering",
            format!("micad answered at {}", socket.display()),
        ),
        Err(why) => {
            let word = if socket.symlink_metadata().is_err() {
                "missing"
            } else if why.contains("nothing listens") {
                "refused"
            } else if why.contains("did not answer")
                || why.contains("did not take the request")
                || why.contains("backlog")
            {
                "silent"
            } else if why.contains("not micad") {
                "not-micad"
            } else {
                "error"
            };
            (word, why)
        }
    }
}

fn pedestal_row(
    kind: PedestalKind,
    config: &Config,
    probe: &HostProbe,
    remoteprocs: &Result<Vec<(String, String, String)>, String>,
    qemu: &[(&'static str, Program)],
) -> PedestalRow {
    let config_name = config.origin.as_ref().map_or_else(
        || "the micrun config".to_owned(),
        |p| p.display().to_string(),
    );
    let row = |usable: bool, driver: &'static str, why: String| PedestalRow {
        kind,
        usable,
        driver: usable.then_some(driver),
        why,
    };
    match kind {
        PedestalKind::Sim => {
            if config.sim.enable {
                row(
                    true,
                    "process",
                    format!("[sim] enable = true in {config_name}"),
                )
            } else {
                row(
                    false,
                    "process",
                    format!("[sim] enable is false in {config_name} (it runs image content as host processes: tests only)"),
                )
            }
        }
        PedestalKind::Qemu => {
            let found: Vec<String> = qemu
                .iter()
                .filter(|(_, p)| p.path.is_some())
                .map(|(arch, p)| {
                    format!(
                        "{arch} ({})",
                        p.path.as_deref().unwrap_or(&p.wanted).display()
                    )
                })
                .collect();
            if found.is_empty() {
                let missing: Vec<String> = qemu
                    .iter()
                    .map(|(_, p)| format!("{} not found", p.wanted.display()))
                    .collect();
                row(false, "qemu", missing.join("; "))
            } else {
                row(true, "qemu", format!("found for {}", found.join(", ")))
            }
        }
        PedestalKind::Xen | PedestalKind::Baremetal => {
            let (driver, why) = detect::driver_with(kind, config, Some(probe.micad_answer()));
            match driver {
                Driver::Micad => match (probe.micad_answer(), kind, probe.xen) {
                    (Err(e), _, _) => row(false, "micad", format!("driven through micad ({why}), which does not answer: {e}")),
                    (Ok(()), PedestalKind::Xen, false) => row(
                        false,
                        "micad",
                        format!(
                            "micad answers, but the Xen marker {} does not exist (micad drives baremetal here)",
                            config.xen.detect.display()
                        ),
                    ),
                    (Ok(()), _, _) => row(true, "micad", why),
                },
                Driver::Direct if kind == PedestalKind::Xen => {
                    match xl::XenDirect::new(config).available() {
                        Ok(tools) => row(
                            true,
                            "xl",
                            format!(
                                "{why}; the Xen marker {} exists, xl at {}, xenstore-read at {}",
                                config.xen.detect.display(),
                                tools.xl.display(),
                                tools.xenstore_read.display()
                            ),
                        ),
                        Err(e) => row(false, "xl", format!("{why}; {}", unavailable_why(e))),
                    }
                }
                Driver::Direct => match remoteprocs {
                    Ok(all) if all.is_empty() => row(
                        false,
                        "remoteproc",
                        format!(
                            "{why}; no remote processor under {}",
                            detect::remoteproc_class(&config.baremetal.sysfs).display()
                        ),
                    ),
                    Ok(all) => {
                        let list: Vec<String> =
                            all.iter().map(|(e, n, s)| format!("{n} ({e}) {s}")).collect();
                        row(true, "remoteproc", format!("{why}; {}", list.join(", ")))
                    }
                    Err(e) => row(false, "remoteproc", format!("{why}; {e}")),
                },
            }
        }
    }
}

/// The reason of an `Unavailable` error without its "pedestal X is not available" frame.
fn unavailable_why(e: crate::pedestal::PedestalError) -> String {
    match e {
        crate::pedestal::PedestalError::Unavailable { why, .. } => why,
        other => other.to_string(),
    }
}

fn board_json(board: &HostBoard) -> Value {
    let (source, names, path) = match board {
        HostBoard::Configured(name, origin) => (
            "config",
            vec![name.clone()],
            origin.as_ref().map(|p| p.display().to_string()),
        ),
        HostBoard::Compatible(names, path) => (
            "device-tree",
            names.clone(),
            Some(path.display().to_string()),
        ),
        HostBoard::Unknown(path) => ("unknown", Vec::new(), Some(path.display().to_string())),
    };
    json!({ "source": source, "names": names, "path": path, "text": board.to_string() })
}

/// The shim beside the running `micrun`, else in `PATH`; and the one in `PATH`.
fn find_shim() -> (Option<(Program, &'static str)>, Option<PathBuf>) {
    let on_path = find_executable(Path::new(SHIM_NAME), std::env::var_os("PATH").as_deref()).ok();
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(SHIM_NAME)))
        .filter(|p| find_executable(p, None).is_ok());
    let shim = match (beside, &on_path) {
        (Some(p), _) => Some((Program::find(&p).with_version("-v"), "beside micrun")),
        (None, Some(p)) => Some((Program::find(p).with_version("-v"), "PATH")),
        (None, None) => None,
    };
    (shim, on_path)
}

impl ContainerdConfig {
    /// Reads containerd's config (never writes it) and finds the CRI runtimes whose
    /// `runtime_type` is [`RUNTIME_TYPE`].
    fn read(path: PathBuf) -> ContainerdConfig {
        let read = match std::fs::read_to_string(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: cannot read: {e}", path.display())),
            Ok(text) => cri_handlers(&text)
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.display())),
        };
        ContainerdConfig { path, read }
    }

    fn text(&self) -> String {
        let path = self.path.display();
        match &self.read {
            Ok(None) => format!(
                "{path} does not exist: containerd's defaults, which do not register {RUNTIME_TYPE} for CRI"
            ),
            Ok(Some(h)) if h.is_empty() => format!(
                "{path} registers no CRI runtime with runtime_type = \"{RUNTIME_TYPE}\" (docs/shim.md, Install)"
            ),
            Ok(Some(h)) => {
                let list: Vec<String> = h.iter().map(|(n, s)| format!("{n} ({s})")).collect();
                format!("{path} registers {RUNTIME_TYPE} for CRI as handler {}", list.join(", "))
            }
            Err(e) => format!("does not parse: {e}"),
        }
    }
}

/// The CRI handlers in containerd config `text` whose runtime_type is
/// [`RUNTIME_TYPE`], each with its section, in every config format
/// (`version` 1, 2 and 3).
fn cri_handlers(text: &str) -> Result<Vec<(String, String)>, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
        format!(
            "not valid TOML: {}{}",
            e.message().trim(),
            line.map_or_else(String::new, |l| format!(" (line {l})"))
        )
    })?;
    let mut found = Vec::new();
    for (plugin, _version) in CRI_RUNTIME_PLUGINS {
        let runtimes = table
            .get("plugins")
            .and_then(|p| p.get(plugin))
            .and_then(|p| p.get("containerd"))
            .and_then(|c| c.get("runtimes"))
            .and_then(|r| r.as_table());
        for (name, runtime) in runtimes.into_iter().flatten() {
            if runtime.get("runtime_type").and_then(|t| t.as_str()) == Some(RUNTIME_TYPE) {
                found.push((
                    name.clone(),
                    format!("[plugins.\"{plugin}\".containerd.runtimes.{name}]"),
                ));
            }
        }
    }
    Ok(found)
}

/// Rows aligned in columns (the last column is not padded).
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == N {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_handlers_in_every_format() {
        let text = r#"
version = 2
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.micrun]
  runtime_type = "io.containerd.mica.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.rtos]
  runtime_type = "io.containerd.mica.v2"
[plugins.cri.containerd.runtimes.old]
  runtime_type = "io.containerd.mica.v2"
"#;
        let found = cri_handlers(text).unwrap();
        let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["old", "micrun", "rtos"]);
        assert!(cri_handlers("version = 2\n").unwrap().is_empty());
        let err = cri_handlers("version = 2\n[plugins\n").unwrap_err();
        assert!(
            err.contains("not valid TOML") && err.contains("line 2"),
            "{err}"
        );
    }

    /// What sits at micad's path, in one word, from the shim's own probe.
    #[test]
    fn micad_results_in_one_word() {
        use std::io::{Read, Write};
        let dir = std::env::temp_dir().join(format!("micrun-check-micad-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut config = Config::default();
        config.mica.dir = dir.clone();
        config.xen.detect = dir.join("no-xen");
        config.baremetal.sysfs = dir.join("sys");
        config.qemu.binary = dir.join("no-qemu");
        let socket = dir.join(micad::CREATE_SOCKET);
        let word = |config: &Config| micad_result(&HostProbe::probe(config), &socket).0;
        assert_eq!(word(&config), "missing");
        drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
        assert_eq!(word(&config), "refused");
        std::fs::remove_file(&socket).unwrap();
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let server = std::thread::spawn(move || {
            for reply in [&b"SSH-2.0-OpenSSH_9.2\r\n"[..], b"x: MICA-FAILED"] {
                let (mut c, _) = listener.accept().unwrap();
                let mut buf = [0u8; micad::CREATE_MSG_LEN];
                let _ = c.read_exact(&mut buf);
                c.write_all(reply).unwrap();
            }
        });
        assert_eq!(word(&config), "not-micad");
        assert_eq!(word(&config), "answering");
        server.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn table_aligns() {
        let t = table(&[
            ["a".to_owned(), "x".to_owned()],
            ["long".to_owned(), "y".to_owned()],
        ]);
        assert_eq!(t, "a     x\nlong  y\n");
    }
}
