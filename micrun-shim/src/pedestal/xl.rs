//! The `xen` pedestal driven directly with Xen's `xl` tool, for a Xen dom0 without
//! micad.
//!
//! ```text
//! Create ─► check: Xen marker, xl + xenstore-read found, domain name, boot image
//!        ─► <run_dir>/<id>.cfg ─► xl create -p <cfg>          (the domain exists, paused)
//!        ─► xl domid <id> ─► xenstore-read /local/domain/<domid>/console/tty
//!        ─► open that pty raw ─► Link                          (before the RTOS runs a cycle)
//! Start ─► xl unpause        Pause / Resume ─► xl pause / xl unpause
//! Update ─► xl mem-max, mem-set, vcpu-set, vcpu-pin, sched-credit2
//! State, Stats ─► xl list <id>: the state letters, Time(s), Mem
//! Kill / Delete ─► xl destroy <id> ─► xenconsoled closes the pty ─► the relay sees the hang-up
//! ```
//!
//! The domain is named after the container, so `xl list` shows the container id; the
//! id must therefore be a name xl handles ([`check_domain_name`]). The console is
//! the domain's PV console, which libxl makes for every domain and xenconsoled
//! serves as a pty whose path it publishes in xenstore (`console/tty`), shortly
//! after the domain appears: it is polled for, up to [`CONSOLE_WAIT`]. The domain
//! is created paused and the link taken at create, so nothing the RTOS prints at
//! boot is lost.
//!
//! Every tool runs without a shell, its arguments as argv, with a deadline
//! ([`TOOL_TIMEOUT`]): a hung `xl` cannot hang the shim. A failure carries the
//! command, its exit status and its stderr. The shim's reaper reaps every child,
//! `xl` included, so the exit status is taken from `waitpid` when this module gets
//! there first and otherwise from the reaper's report (containerd-shim's monitor).
//!
//! The domain has no host process (`pid` is `None`): the engine learns of its end
//! from the console's hang-up, or from the agent. The config asks Xen to destroy
//! the domain on poweroff, reboot and crash alike: a partition that ends is a task
//! that ended, and containerd, not Xen, decides about restarts.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{
    find_executable, micad, DetachedPartition, Leftovers, Link, Partition, PartitionState,
    PartitionStats, Pedestal, PedestalError, RxTranslate,
};
use crate::annotations::PEDESTAL_CONF;
use crate::config::{Config, PedestalKind};
use crate::firmware::{self, Arch};
use crate::resources::Resources;
use crate::spec::InstanceSpec;

const KIND: PedestalKind = PedestalKind::Xen;

/// How long one `xl` or `xenstore-read` may run before it is killed.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long xenconsoled may take to publish the console of a new domain.
pub const CONSOLE_WAIT: Duration = Duration::from_secs(10);
/// How often the console path is looked for meanwhile.
const CONSOLE_POLL: Duration = Duration::from_millis(20);
/// The longest domain name micrun gives a domain: a CRI container id (64 hex
/// digits); micad's name field holds no more either.
pub const DOMAIN_NAME_MAX: usize = 64;
/// dom0's name: never a container's.
const DOM0_NAME: &str = "Domain-0";
/// Output of a tool kept for parsing and messages; the rest is read and dropped.
const OUTPUT_LIMIT: usize = 1 << 20;
/// stderr quoted in an error message.
const STDERR_QUOTE: usize = 2000;
/// How long a killed tool may take to be reaped.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// The pedestal, configured from `config`.
pub fn pedestal(config: &Config) -> Result<Box<dyn Pedestal>, PedestalError> {
    Ok(Box::new(XenDirect::new(config)))
}

/// Ends domain `domain` with `xl destroy`; a domain that is gone counts as ended.
pub fn destroy_detached(xl: &Path, domain: &str) -> Result<(), PedestalError> {
    // The name comes from a state file: never let it address dom0 or an option.
    check_domain_name(domain).map_err(|why| {
        PedestalError::failed(
            KIND,
            "destroy",
            format!("refusing to destroy domain {domain:?}: {why}"),
        )
    })?;
    Tools::xl_only(xl).destroy(domain).map_err(|e| {
        PedestalError::failed(
            KIND,
            "destroy",
            format!("Xen domain {domain:?} may still run: {e}"),
        )
    })
}

/// `xl pause <domain>` (or `xl unpause`), for a domain another driver made: micad
/// names a container's Xen domain after the instance, the container id.
pub(crate) fn pause_domain(xl: &Path, domain: &str, pause: bool) -> Result<(), String> {
    check_domain_name(domain)?;
    let verb = if pause { "pause" } else { "unpause" };
    Tools::xl_only(xl)
        .xl([verb, domain])
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The `xen` pedestal through `xl`.
#[derive(Debug)]
pub struct XenDirect {
    xl: PathBuf,
    xenstore_read: PathBuf,
    detect: PathBuf,
    boot_image: PathBuf,
    arch: Arch,
    /// The config file, for error messages.
    config_origin: Option<PathBuf>,
}

impl XenDirect {
    pub fn new(config: &Config) -> XenDirect {
        XenDirect {
            xl: config.xen.xl.clone(),
            xenstore_read: config.xen.xenstore_read.clone(),
            detect: config.xen.detect.clone(),
            boot_image: config.xen.boot_image.clone(),
            arch: config.xen.arch,
            config_origin: config.origin.clone(),
        }
    }

    fn config_name(&self) -> String {
        self.config_origin.as_ref().map_or_else(
            || "the micrun config".to_owned(),
            |p| p.display().to_string(),
        )
    }

    /// The tools, once the host is a Xen dom0 that has them; the error lists every
    /// check that failed and how to fix it.
    pub(crate) fn available(&self) -> Result<Tools, PedestalError> {
        let config = self.config_name();
        let path_var = std::env::var_os("PATH");
        let mut problems = Vec::new();
        if !self.detect.exists() {
            problems.push(format!(
                "the Xen marker {} does not exist, so this is not a Xen dom0 (the marker \
                 is `[xen] detect` in {config})",
                self.detect.display()
            ));
        }
        let mut find = |binary: &Path, key: &str, package: &str| {
            find_executable(binary, path_var.as_deref())
                .map_err(|e| {
                    problems.push(format!(
                        "{e}; install {package} or set `[xen] {key}` in {config}"
                    ))
                })
                .ok()
        };
        let xl = find(&self.xl, "xl", "the Xen tools (Debian: xen-utils)");
        let xenstore_read = find(
            &self.xenstore_read,
            "xenstore_read",
            "the xenstore tools (Debian: xenstore-utils)",
        );
        match (xl, xenstore_read) {
            (Some(xl), Some(xenstore_read)) if problems.is_empty() => Ok(Tools {
                xl,
                xenstore_read,
                timeout: TOOL_TIMEOUT,
            }),
            _ => Err(PedestalError::Unavailable {
                pedestal: KIND,
                why: problems.join("; "),
            }),
        }
    }

    /// The boot image `kernel=` names: the `ped.conf` annotation, else
    /// `[xen] boot_image`, inside the rootfs.
    fn boot_image(&self, spec: &InstanceSpec) -> Result<PathBuf, PedestalError> {
        let (relative, from) = match &spec.annotations.pedestal_conf {
            Some(conf) => (conf.clone(), format!("the {PEDESTAL_CONF} annotation")),
            None => (
                self.boot_image.to_string_lossy().into_owned(),
                format!(
                    "`[xen] boot_image` in {}, as the {PEDESTAL_CONF} annotation is not set",
                    self.config_name()
                ),
            ),
        };
        firmware::resolve_in_rootfs(&spec.rootfs, &relative, "Xen boot image").map_err(|e| {
            PedestalError::failed(
                KIND,
                "create",
                format!("{e} (the boot image comes from {from})"),
            )
        })
    }
}

impl Pedestal for XenDirect {
    fn kind(&self) -> PedestalKind {
        KIND
    }

    fn arch(&self) -> Arch {
        self.arch
    }

    fn check(&self, spec: &InstanceSpec) -> Result<(), PedestalError> {
        self.available()?;
        check_domain_name(&spec.id).map_err(|why| invalid_id(&spec.id, why))?;
        let kernel = self.boot_image(spec)?;
        domain_config(spec, &kernel)
            .map(drop)
            .map_err(|e| PedestalError::failed(KIND, "create", e))
    }

    fn create(
        &self,
        spec: &InstanceSpec,
        run_dir: &Path,
    ) -> Result<Box<dyn Partition>, PedestalError> {
        let tools = self.available()?;
        let name = spec.id.as_str();
        check_domain_name(name).map_err(|why| invalid_id(name, why))?;
        let kernel = self.boot_image(spec)?;
        let fail = |detail: String| PedestalError::failed(KIND, "create", detail);
        let text = domain_config(spec, &kernel).map_err(fail)?;
        // A domain of this name is left over or someone else's: never touched.
        match tools.domid(name) {
            Ok(None) => {}
            Ok(Some(domid)) => {
                return Err(fail(format!(
                    "a Xen domain named {name:?} already exists (domid {domid}); if it is \
                     left over from an earlier container, remove it with `xl destroy {name}`"
                )))
            }
            Err(e) => return Err(fail(e.to_string())),
        }
        let cfg = run_dir.join(format!("{name}.cfg"));
        std::fs::write(&cfg, &text)
            .map_err(|e| fail(format!("cannot write {}: {e}", cfg.display())))?;
        let undo = |detail: String| {
            // xl removes a domain it failed to build, but not one it was killed
            // building: whatever carries the name now is the one just made.
            let cleanup = tools.destroy(name);
            remove(&cfg);
            fail(match cleanup {
                Ok(()) => detail,
                Err(e) => {
                    format!("{detail}; then destroying the domain failed, it may still exist: {e}")
                }
            })
        };
        let started = Instant::now();
        if let Err(e) = tools.xl([OsStr::new("create"), OsStr::new("-p"), cfg.as_os_str()]) {
            return Err(undo(e.to_string()));
        }
        let (domid, tty, link) = attach(&tools, name).map_err(undo)?;
        log::info!(
            "{name}: Xen domain {domid} created paused in {:?} ({}), console {}",
            started.elapsed(),
            spec.resources,
            tty.display()
        );
        Ok(Box::new(XlPartition {
            tools,
            name: name.to_owned(),
            domid,
            cfg,
            link: Some(link),
            resources: spec.resources.clone(),
            started: false,
            destroyed: false,
            state: PartitionState::Created,
        }))
    }
}

fn invalid_id(id: &str, why: String) -> PedestalError {
    PedestalError::InvalidId {
        pedestal: KIND,
        id: id.to_owned(),
        why,
    }
}

/// The domain id and console of the domain just made, and the console as a link.
fn attach(tools: &Tools, name: &str) -> Result<(u32, PathBuf, Link), String> {
    let domid = tools
        .domid(name)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("xl created domain {name:?}, but `xl domid` does not find it"))?;
    let tty = tools.console_tty(domid, CONSOLE_WAIT)?;
    let rx = micad::open_tty(&tty).map_err(|e| e.to_string())?;
    let tx = rx
        .try_clone()
        .map_err(|e| format!("duplicating the console descriptor: {e}"))?;
    Ok((
        domid,
        tty,
        Link {
            rx,
            tx,
            rx_translate: RxTranslate::None,
        },
    ))
}

/// Why `name` cannot name a Xen domain made by micrun, if it cannot.
pub fn check_domain_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a Xen domain name cannot be empty".into());
    }
    if name.len() > DOMAIN_NAME_MAX {
        return Err(format!(
            "it is {} bytes long; a Xen domain name made by micrun has at most \
             {DOMAIN_NAME_MAX}",
            name.len()
        ));
    }
    if let Some((at, c)) = name
        .char_indices()
        .find(|&(_, c)| !c.is_ascii_graphic() || c == '/')
    {
        return Err(format!(
            "it has {c:?} at byte {at}; a Xen domain name may hold printable ASCII \
             characters only, no blanks and no '/'"
        ));
    }
    if name.starts_with('-') {
        return Err("it starts with '-', which xl would take for an option".into());
    }
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return Err("it is all digits, which xl takes for a domain id".into());
    }
    if name == DOM0_NAME {
        return Err(format!("{DOM0_NAME} is the name of Xen's control domain"));
    }
    Ok(())
}

/// The domain config `xl create` reads (xl.cfg syntax): one `key = value` per
/// line, strings double-quoted.
fn domain_config(spec: &InstanceSpec, kernel: &Path) -> Result<Vec<u8>, String> {
    enum Value<'a> {
        Text(&'a [u8]),
        Number(u32),
    }
    use Value::{Number, Text};
    let r = &spec.resources;
    let mut settings = vec![
        ("name", Text(spec.id.as_bytes())),
        // The only guest type on Arm: a firmware image loaded directly.
        ("type", Text(b"pvh")),
        ("kernel", Text(kernel.as_os_str().as_bytes())),
        ("vcpus", Number(r.vcpus)),
        ("maxvcpus", Number(r.max_vcpus)),
    ];
    if let Some(cpus) = &r.cpu_str {
        settings.push(("cpus", Text(cpus.as_bytes())));
    }
    settings.push(("cpu_weight", Number(r.cpu_weight)));
    if let Some(cap) = r.cpu_cap_percent {
        settings.push(("cap", Number(cap)));
    }
    settings.push(("memory", Number(r.memory_mib)));
    settings.push(("maxmem", Number(r.max_memory_mib)));
    // The PV console needs no key: libxl makes console 0 for every domain.
    for key in ["on_poweroff", "on_reboot", "on_crash"] {
        settings.push((key, Text(b"destroy")));
    }
    let mut out = format!(
        "# Xen domain of container {}, written by micrun for `xl create`.\n",
        spec.id
    )
    .into_bytes();
    for (key, value) in settings {
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b" = ");
        match value {
            Text(text) => out.extend(quoted(text).map_err(|e| format!("{key}: {e}"))?),
            Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        }
        out.push(b'\n');
    }
    Ok(out)
}

/// `value` as an xl.cfg string: in double quotes, `"` and `\` escaped. Control
/// characters are refused: xl's strings cannot hold a raw newline, and its
/// numeric escapes (`\xHH`, octal) do not work in the libxlu versions read.
fn quoted(value: &[u8]) -> Result<Vec<u8>, String> {
    if let Some(at) = value.iter().position(|b| b.is_ascii_control()) {
        return Err(format!(
            "{:?} has a control character at byte {at}, which an xl config string \
             cannot hold",
            String::from_utf8_lossy(value)
        ));
    }
    let mut out = Vec::with_capacity(value.len() + 2);
    out.push(b'"');
    for &b in value {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
    Ok(out)
}

/// One `xl` command of an update, and the resources it sets.
struct UpdateStep {
    /// The arguments after `xl`.
    args: Vec<String>,
    /// Copies what the command set from the new resources to the applied ones.
    apply: fn(&mut Resources, &Resources),
}

/// The `xl` commands that take a domain from `old` to `new` resources, in order:
/// memory ceilings grow before and shrink after the memory under them; vCPUs come
/// online before they are pinned.
fn update_commands(
    name: &str,
    old: &Resources,
    new: &Resources,
) -> Result<Vec<UpdateStep>, String> {
    if new.max_vcpus != old.max_vcpus {
        return Err(format!(
            "maxvcpus cannot change while the domain exists (it is {}, {} was asked)",
            old.max_vcpus, new.max_vcpus
        ));
    }
    if new.vcpus > old.max_vcpus {
        return Err(format!(
            "{} vCPUs asked, over the domain's maxvcpus {}",
            new.vcpus, old.max_vcpus
        ));
    }
    let mut out = Vec::new();
    let mut step = |args: &[&str], apply: fn(&mut Resources, &Resources)| {
        out.push(UpdateStep {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            apply,
        })
    };
    let mib = |m: u32| format!("{m}m");
    let max_memory: fn(&mut Resources, &Resources) = |r, new| r.max_memory_mib = new.max_memory_mib;
    if new.max_memory_mib > old.max_memory_mib {
        step(&["mem-max", name, &mib(new.max_memory_mib)], max_memory);
    }
    if new.memory_mib != old.memory_mib {
        step(&["mem-set", name, &mib(new.memory_mib)], |r, new| {
            r.memory_mib = new.memory_mib
        });
    }
    if new.max_memory_mib < old.max_memory_mib {
        step(&["mem-max", name, &mib(new.max_memory_mib)], max_memory);
    }
    if new.vcpus != old.vcpus {
        step(&["vcpu-set", name, &new.vcpus.to_string()], |r, new| {
            r.vcpus = new.vcpus
        });
    }
    if new.cpu_str != old.cpu_str {
        let cpus = new.cpu_str.as_deref().unwrap_or("all");
        step(&["vcpu-pin", name, "all", cpus], |r, new| {
            r.cpu_str.clone_from(&new.cpu_str)
        });
    }
    if new.cpu_weight != old.cpu_weight || new.cpu_cap_percent != old.cpu_cap_percent {
        let weight = new.cpu_weight.to_string();
        // 0 is "no cap" to Xen.
        let cap = new.cpu_cap_percent.unwrap_or(0).to_string();
        step(
            &["sched-credit2", "-d", name, "-w", &weight, "-c", &cap],
            |r, new| {
                r.cpu_weight = new.cpu_weight;
                r.cpu_cap_percent = new.cpu_cap_percent;
            },
        );
    }
    Ok(out)
}

/// One line of `xl list` (`%-40s %5d %5lu %5d     %c%c%c%c%c%c  %8.1f`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ListEntry {
    domid: u32,
    mem_mib: u64,
    /// Six letters: running, blocked, paused, shutdown, shutdown reason, dying.
    state: String,
    cpu_ns: u64,
}

impl ListEntry {
    /// The line of domain `name` in the output of `xl list`.
    fn parse(output: &str, name: &str) -> Result<ListEntry, String> {
        let bad = |why: String| format!("unexpected `xl list` output ({why}): {output:?}");
        let mut lines = output.lines().filter(|l| !l.trim().is_empty());
        let header = lines.next().ok_or_else(|| bad("empty".into()))?;
        let columns: Vec<&str> = header.split_whitespace().collect();
        if columns.get(..6) != Some(&["Name", "ID", "Mem", "VCPUs", "State", "Time(s)"][..]) {
            return Err(bad(format!("header {header:?}")));
        }
        for line in lines {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 6 || fields[..fields.len() - 5].join(" ") != name {
                continue;
            }
            let &[id, mem, vcpus, state, time] = &fields[fields.len() - 5..] else {
                unreachable!("five fields");
            };
            let number = |what: &str, text: &str| {
                text.parse::<u64>()
                    .map_err(|_| bad(format!("{what} {text:?} is not a number")))
            };
            let domid = u32::try_from(number("ID", id)?).map_err(|_| bad(format!("ID {id}")))?;
            number("VCPUs", vcpus)?;
            if !state_letters_valid(state) {
                return Err(bad(format!("state {state:?}")));
            }
            return Ok(ListEntry {
                domid,
                mem_mib: number("Mem", mem)?,
                state: state.to_owned(),
                cpu_ns: seconds_to_ns(time).ok_or_else(|| bad(format!("Time(s) {time:?}")))?,
            });
        }
        Err(bad(format!("no line for domain {name:?}")))
    }

    /// The partition state these letters mean; `started` tells a domain paused
    /// since create from one paused after Start.
    fn partition_state(&self, started: bool) -> PartitionState {
        let has = |i: usize, c: u8| self.state.as_bytes().get(i) == Some(&c);
        if has(3, b's') || has(5, b'd') {
            PartitionState::Stopped(None)
        } else if has(2, b'p') {
            if started {
                PartitionState::Paused
            } else {
                PartitionState::Created
            }
        } else {
            PartitionState::Running
        }
    }
}

/// `xl list` parsing from outside the crate, for the fuzz targets (tests/fuzz): the
/// state letters on the line of domain `name` in `output`, and the partition state
/// they mean (`started` as for the partition).
#[doc(hidden)]
pub fn parse_list_line(
    output: &str,
    name: &str,
    started: bool,
) -> Result<(String, PartitionState), String> {
    let e = ListEntry::parse(output, name)?;
    let state = e.partition_state(started);
    Ok((e.state, state))
}

/// Whether `state` is xl's six state letters: `r`, `b`, `p`, `s`, a shutdown
/// reason (`r`eboot, `s`uspend, `c`rash, `w`atchdog, `S`oft reset, `?`), `d`;
/// `-` for each that does not hold.
fn state_letters_valid(state: &str) -> bool {
    let allowed: [&[u8]; 6] = [b"r-", b"b-", b"p-", b"s-", b"-rscwS?", b"d-"];
    state.len() == 6
        && state
            .bytes()
            .zip(allowed)
            .all(|(c, allowed)| allowed.contains(&c))
}

/// `12.3` (seconds, as `%8.1f` prints them) in nanoseconds.
fn seconds_to_ns(text: &str) -> Option<u64> {
    let (whole, fraction) = match text.split_once('.') {
        Some((_, "")) => return None,
        Some(split) => split,
        None => (text, ""),
    };
    if whole.is_empty()
        || fraction.len() > 9
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let nanos = format!("{fraction:0<9}").parse::<u64>().ok()?;
    whole
        .parse::<u64>()
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(nanos)
}

/// One Xen domain.
#[derive(Debug)]
struct XlPartition {
    tools: Tools,
    name: String,
    domid: u32,
    cfg: PathBuf,
    link: Option<Link>,
    resources: Resources,
    /// Unpaused once by Start.
    started: bool,
    /// `xl destroy` succeeded.
    destroyed: bool,
    /// The last state seen, for when xl cannot be asked.
    state: PartitionState,
}

impl XlPartition {
    fn xl(&self, operation: &'static str, args: &[&str]) -> Result<String, PedestalError> {
        if self.destroyed {
            return Err(PedestalError::failed(
                KIND,
                operation,
                format!("Xen domain {:?} was destroyed", self.name),
            ));
        }
        self.tools
            .xl(args)
            .map_err(|e| PedestalError::failed(KIND, operation, e))
    }

    /// `xl list` of the domain; `None` when it no longer exists (a domain of the
    /// same name with another id is another domain).
    fn list(&self) -> Result<Option<ListEntry>, String> {
        Ok(self
            .tools
            .list(&self.name)?
            .filter(|entry| entry.domid == self.domid))
    }
}

impl Partition for XlPartition {
    fn start(&mut self) -> Result<(), PedestalError> {
        self.xl("start", &["unpause", &self.name])?;
        self.started = true;
        self.state = PartitionState::Running;
        Ok(())
    }

    fn pause(&mut self) -> Result<(), PedestalError> {
        self.xl("pause", &["pause", &self.name])?;
        self.state = PartitionState::Paused;
        Ok(())
    }

    fn resume(&mut self) -> Result<(), PedestalError> {
        self.xl("resume", &["unpause", &self.name])?;
        self.state = PartitionState::Running;
        Ok(())
    }

    fn destroy(&mut self) -> Result<(), PedestalError> {
        self.link = None;
        if !self.destroyed {
            self.tools.destroy(&self.name).map_err(|e| {
                PedestalError::failed(
                    KIND,
                    "destroy",
                    format!("Xen domain {:?} may still run: {e}", self.name),
                )
            })?;
            self.destroyed = true;
            log::debug!("{}: Xen domain {} destroyed", self.name, self.domid);
        }
        remove(&self.cfg);
        self.state = PartitionState::Stopped(None);
        Ok(())
    }

    fn update(&mut self, resources: &Resources) -> Result<(), PedestalError> {
        let steps = update_commands(&self.name, &self.resources, resources).map_err(|why| {
            PedestalError::failed(KIND, "update", format!("domain {:?}: {why}", self.name))
        })?;
        for (i, step) in steps.iter().enumerate() {
            let args: Vec<&str> = step.args.iter().map(String::as_str).collect();
            self.xl("update", &args).map_err(|e| {
                if i == 0 {
                    return e;
                }
                let done: Vec<String> = steps[..i].iter().map(|s| s.args.join(" ")).collect();
                PedestalError::failed(
                    KIND,
                    "update",
                    format!("{e} (applied before it: xl {})", done.join("; xl ")),
                )
            })?;
            // Remembered step by step: the next update starts from what the
            // domain has, also after a failed step.
            (step.apply)(&mut self.resources, resources);
        }
        self.resources.clone_from(resources);
        Ok(())
    }

    fn stats(&mut self) -> Result<PartitionStats, PedestalError> {
        let fail = |detail: String| PedestalError::failed(KIND, "stats", detail);
        let entry = self
            .list()
            .map_err(fail)?
            .ok_or_else(|| fail(format!("Xen domain {:?} no longer exists", self.name)))?;
        Ok(PartitionStats {
            cpu_ns: entry.cpu_ns,
            memory_limit_bytes: u64::from(self.resources.memory_mib) << 20,
            memory_used_bytes: entry.mem_mib << 20,
        })
    }

    fn state(&mut self) -> PartitionState {
        if self.destroyed {
            return PartitionState::Stopped(None);
        }
        match self.list() {
            Ok(Some(entry)) => self.state = entry.partition_state(self.started),
            Ok(None) => self.state = PartitionState::Stopped(None),
            // xl could not tell: the domain may well still run.
            Err(e) => log::warn!("{}: {e}", self.name),
        }
        self.state
    }

    fn take_link(&mut self) -> Option<Link> {
        self.link.take()
    }

    fn leftovers(&self) -> Leftovers {
        Leftovers {
            processes: vec![],
            paths: vec![self.cfg.clone()],
            partition: Some(DetachedPartition::Xl {
                xl: self.tools.xl.clone(),
                domain: self.name.clone(),
            }),
        }
    }
}

fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            log::warn!("cannot remove {}: {e}", path.display());
        }
    }
}

/// The Xen tools, found.
#[derive(Debug, Clone)]
pub(crate) struct Tools {
    pub(crate) xl: PathBuf,
    pub(crate) xenstore_read: PathBuf,
    timeout: Duration,
}

impl Tools {
    /// Only `xl` (destroying needs no more).
    fn xl_only(xl: &Path) -> Tools {
        Tools {
            xl: xl.to_path_buf(),
            xenstore_read: PathBuf::from("xenstore-read"),
            timeout: TOOL_TIMEOUT,
        }
    }

    /// Runs `xl <args>`; its stdout.
    fn xl<I, S>(&self, args: I) -> Result<String, ToolError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_tool(&self.xl, args, self.timeout)
    }

    /// The id of domain `name`; `None` when no domain has that name.
    fn domid(&self, name: &str) -> Result<Option<u32>, ToolError> {
        match self.xl(["domid", name]) {
            Ok(out) => out.trim().parse().map(Some).map_err(|_| ToolError::Output {
                command: command_line(&self.xl, ["domid", name]),
                why: format!("{:?} is not a domain id", out.trim()),
            }),
            Err(e) if e.says_no_such_domain() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `xl list <name>`, parsed; `None` when no domain has that name.
    fn list(&self, name: &str) -> Result<Option<ListEntry>, String> {
        match self.xl(["list", name]) {
            Ok(out) => ListEntry::parse(&out, name).map(Some),
            Err(e) if e.says_no_such_domain() => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// `xl destroy <name>`; a domain that does not exist (any more) is fine.
    fn destroy(&self, name: &str) -> Result<(), ToolError> {
        match self.xl(["destroy", name]) {
            Ok(_) => Ok(()),
            Err(e) => match self.domid(name) {
                Ok(None) => Ok(()),
                _ => Err(e),
            },
        }
    }

    /// The console pty of domain `domid`, once xenconsoled has published it.
    fn console_tty(&self, domid: u32, wait: Duration) -> Result<PathBuf, String> {
        let key = format!("/local/domain/{domid}/console/tty");
        let deadline = Instant::now() + wait;
        loop {
            let last = match run_tool(&self.xenstore_read, [&key], self.timeout) {
                Ok(value) if !value.trim().is_empty() => {
                    return Ok(PathBuf::from(value.trim()));
                }
                Ok(_) => format!("{key} is empty"),
                // Not there yet: xenconsoled writes it after the domain appears.
                Err(e @ ToolError::Exit { .. }) => e.to_string(),
                Err(e) => return Err(e.to_string()),
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "the console of Xen domain {domid} did not appear in xenstore within \
                     {wait:?} (last: {last}); is xenconsoled running?"
                ));
            }
            std::thread::sleep(CONSOLE_POLL);
        }
    }
}

/// How a tool run went wrong.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ToolError {
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` {ended}: {}", quote_stderr(.stderr))]
    Exit {
        command: String,
        ended: Ended,
        stderr: String,
    },
    #[error("`{command}` did not finish within {timeout:?} and was killed: {}", quote_stderr(.stderr))]
    Timeout {
        command: String,
        timeout: Duration,
        stderr: String,
    },
    #[error("`{command}` ended, but its exit status was lost (reaped elsewhere)")]
    StatusLost { command: String },
    #[error("`{command}`: {why}")]
    Output { command: String, why: String },
}

impl ToolError {
    /// Whether xl said the domain it was given does not exist (`xl domid`: "maybe
    /// this domain does not exist"; `xl list`, `xl destroy`: "is an invalid domain
    /// identifier", as any name that resolves to no domain).
    fn says_no_such_domain(&self) -> bool {
        matches!(self, ToolError::Exit { stderr, .. }
            if stderr.contains("does not exist") || stderr.contains("is an invalid domain identifier"))
    }
}

fn quote_stderr(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return "no message on stderr".to_owned();
    }
    let text = lines.join(" | ");
    match text.char_indices().nth(STDERR_QUOTE) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// How a tool ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    Code(i32),
    Signal(i32),
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Code(c) => write!(f, "exited with status {c}"),
            Ended::Signal(s) => write!(f, "was killed by signal {s}"),
        }
    }
}

impl From<ExitStatus> for Ended {
    fn from(status: ExitStatus) -> Ended {
        match (status.code(), status.signal()) {
            (Some(c), _) => Ended::Code(c),
            (None, Some(s)) => Ended::Signal(s),
            (None, None) => Ended::Code(-1),
        }
    }
}

fn command_line<I, S>(program: &Path, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut line = program.display().to_string();
    for a in args {
        line.push(' ');
        line.push_str(&a.as_ref().to_string_lossy());
    }
    line
}

/// Runs `program args` (no shell) with its stdout and stderr captured, and returns
/// its stdout when it exits with 0; killed at `timeout`.
pub(crate) fn run_tool<I, S>(
    program: &Path,
    args: I,
    timeout: Duration,
) -> Result<String, ToolError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    use containerd_shim::monitor::{monitor_subscribe, Topic};
    let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let command = command_line(program, &args);
    let deadline = Instant::now() + timeout;
    // Subscribed before the spawn: in the shim, the reaper may reap the tool and
    // report it before this thread waits.
    let exits = monitor_subscribe(Topic::Pid).ok();
    let mut child = Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ToolError::Spawn {
            command: command.clone(),
            source,
        })?;
    let (stdout, stderr, closed) = read_output(&mut child, deadline);
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    let ended = if closed {
        wait_exit(&mut child, exits.as_ref(), deadline)
    } else {
        None
    };
    match ended {
        Some(Some(Ended::Code(0))) => Ok(String::from_utf8_lossy(&stdout).into_owned()),
        Some(Some(ended)) => Err(ToolError::Exit {
            command,
            ended,
            stderr,
        }),
        Some(None) => Err(ToolError::StatusLost { command }),
        None => {
            let _ = child.kill();
            if wait_exit(&mut child, exits.as_ref(), Instant::now() + KILL_WAIT).is_none() {
                log::warn!("`{command}` (pid {}) did not end after SIGKILL", child.id());
            }
            Err(ToolError::Timeout {
                command,
                timeout,
                stderr,
            })
        }
    }
}

/// Reads the child's stdout and stderr until both close or `deadline`; whether
/// both closed.
fn read_output(child: &mut Child, deadline: Instant) -> (Vec<u8>, Vec<u8>, bool) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::{AsFd, OwnedFd};
    let mut pipes: [(Option<OwnedFd>, Vec<u8>); 2] = [
        (child.stdout.take().map(Into::into), Vec::new()),
        (child.stderr.take().map(Into::into), Vec::new()),
    ];
    let mut buf = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || pipes.iter().all(|(fd, _)| fd.is_none()) {
            break;
        }
        let mut ready = [false; 2];
        {
            let mut fds = Vec::with_capacity(2);
            let mut which = Vec::with_capacity(2);
            for (i, (fd, _)) in pipes.iter().enumerate() {
                if let Some(fd) = fd {
                    fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                    which.push(i);
                }
            }
            let wait = PollTimeout::try_from(left.as_millis().max(1)).unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, wait) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    log::warn!("poll on a tool's output: {e}");
                    break;
                }
            }
            for (fd, i) in fds.iter().zip(which) {
                ready[i] = fd.revents().is_some_and(|r| !r.is_empty());
            }
        }
        for ((fd, data), ready) in pipes.iter_mut().zip(ready) {
            let result = match fd.as_ref() {
                Some(open) if ready => nix::unistd::read(open, &mut buf),
                _ => continue,
            };
            match result {
                Ok(0) => *fd = None,
                Ok(n) => {
                    let room = OUTPUT_LIMIT.saturating_sub(data.len());
                    data.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                Err(_) => *fd = None,
            }
        }
    }
    let closed = pipes.iter().all(|(fd, _)| fd.is_none());
    let [(_, stdout), (_, stderr)] = pipes;
    (stdout, stderr, closed)
}

/// Waits until `deadline` for the child to end: `Some(Some(how))` when it ended,
/// `Some(None)` when it ended but the reaper took its status and did not report
/// it, `None` at the deadline.
fn wait_exit(
    child: &mut Child,
    exits: Option<&containerd_shim::monitor::Subscription>,
    deadline: Instant,
) -> Option<Option<Ended>> {
    use containerd_shim::monitor::Subject;
    let pid = child.id() as i32;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(Some(status.into())),
            Ok(None) => {}
            // Reaped by the shim's reaper, which reports it through the monitor.
            Err(_) => {
                let Some(exits) = exits else {
                    return Some(None);
                };
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match exits.rx.recv_timeout(left) {
                        Ok(ev) if matches!(ev.subject, Subject::Pid(p) if p == pid) => {
                            return Some(Some(Ended::Code(ev.exit_code)));
                        }
                        Ok(_) => {}
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => return None,
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Some(None),
                    }
                }
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::Annotations;

    fn resources(vcpus: u32, cpus: Option<&str>, cap: Option<u32>, memory: u32) -> Resources {
        Resources {
            vcpus,
            max_vcpus: 4,
            cpu_str: cpus.map(str::to_owned),
            cpu_cap_percent: cap,
            cpu_weight: 256,
            memory_mib: memory,
            max_memory_mib: memory,
            dropped_cpus: vec![],
            ignored: vec![],
        }
    }

    fn spec(id: &str, rootfs: &Path, resources: Resources) -> InstanceSpec {
        InstanceSpec {
            id: id.into(),
            namespace: "default".into(),
            bundle: rootfs.parent().unwrap_or(rootfs).to_path_buf(),
            rootfs: rootfs.to_path_buf(),
            firmware: rootfs.join("firmware.elf"),
            image: None,
            pedestal: KIND,
            resources,
            annotations: Annotations::default(),
            terminal: false,
            sandbox: false,
        }
    }

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn config_of_a_typical_spec() {
        let mut r = resources(2, Some("1-2,5"), Some(150), 64);
        r.cpu_weight = 512;
        let s = spec("rtos-1", Path::new("/b/rootfs"), r);
        let cfg = domain_config(&s, Path::new("/b/rootfs/image.bin")).unwrap();
        assert_eq!(
            text(cfg),
            "# Xen domain of container rtos-1, written by micrun for `xl create`.\n\
             name = \"rtos-1\"\n\
             type = \"pvh\"\n\
             kernel = \"/b/rootfs/image.bin\"\n\
             vcpus = 2\n\
             maxvcpus = 4\n\
             cpus = \"1-2,5\"\n\
             cpu_weight = 512\n\
             cap = 150\n\
             memory = 64\n\
             maxmem = 64\n\
             on_poweroff = \"destroy\"\n\
             on_reboot = \"destroy\"\n\
             on_crash = \"destroy\"\n"
        );
        // No cpuset, no cap: no `cpus`, no `cap` (Xen's defaults: any CPU, uncapped).
        let s = spec("c", Path::new("/b/rootfs"), resources(1, None, None, 32));
        let cfg = text(domain_config(&s, Path::new("/k")).unwrap());
        assert!(
            !cfg.contains("\ncpus =") && !cfg.contains("\ncap ="),
            "{cfg}"
        );
        assert!(cfg.contains("\nvcpus = 1\nmaxvcpus = 4\ncpu_weight = 256\nmemory = 32\n"));
    }

    #[test]
    fn config_strings_are_quoted_for_xl() {
        assert_eq!(quoted(b"plain").unwrap(), b"\"plain\"");
        assert_eq!(
            text(quoted("a \"b\" \\c é'".as_bytes()).unwrap()),
            "\"a \\\"b\\\" \\\\c é'\""
        );
        // A path that is not UTF-8 goes through as bytes.
        assert_eq!(quoted(b"/x\xff").unwrap(), b"\"/x\xff\"");
        let err = quoted(b"a\nb").unwrap_err();
        assert!(err.contains("control character at byte 1"), "{err}");
        let s = spec("c", Path::new("/b/rootfs"), resources(1, None, None, 32));
        let err = domain_config(&s, Path::new("/b/rootfs/im\tage")).unwrap_err();
        assert!(err.starts_with("kernel: "), "{err}");
        let cfg = text(domain_config(&s, Path::new("/b/root \"fs\"/image.bin")).unwrap());
        assert!(
            cfg.contains("\nkernel = \"/b/root \\\"fs\\\"/image.bin\"\n"),
            "{cfg}"
        );
    }

    #[test]
    fn domain_names() {
        for ok in [
            "rtos-1",
            "a.b_c:d@e+f",
            &"f".repeat(DOMAIN_NAME_MAX),
            "1a",
            "Domain-1",
        ] {
            check_domain_name(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
        for (bad, why) in [
            ("", "cannot be empty"),
            (&"f".repeat(DOMAIN_NAME_MAX + 1), "65 bytes long"),
            ("a b", "' ' at byte 1"),
            ("a/b", "'/' at byte 1"),
            ("a\tb", "'\\t' at byte 1"),
            ("é", "'é' at byte 0"),
            ("-rf", "starts with '-'"),
            ("123", "all digits"),
            ("Domain-0", "control domain"),
        ] {
            let err = check_domain_name(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    /// A line as xl prints it.
    fn list_line(name: &str, id: u32, mem: u64, vcpus: u32, state: &str, secs: f32) -> String {
        format!("{name:<40} {id:>5} {mem:>5} {vcpus:>5}     {state}  {secs:>8.1}\n")
    }

    const HEADER: &str =
        "Name                                        ID   Mem VCPUs\tState\tTime(s)\n";

    #[test]
    fn xl_list_lines() {
        let out = format!(
            "{HEADER}{}{}",
            list_line("Domain-0", 0, 1024, 4, "r-----", 1234.5),
            list_line("rtos-1", 7, 64, 2, "-b----", 3.2)
        );
        let e = ListEntry::parse(&out, "rtos-1").unwrap();
        assert_eq!(
            e,
            ListEntry {
                domid: 7,
                mem_mib: 64,
                state: "-b----".into(),
                cpu_ns: 3_200_000_000
            }
        );
        assert_eq!(ListEntry::parse(&out, "Domain-0").unwrap().domid, 0);
        // A name longer than its 40-character column pushes the others right.
        let long = "n".repeat(DOMAIN_NAME_MAX);
        let out = format!("{HEADER}{}", list_line(&long, 12, 32, 1, "--p---", 0.0));
        let e = ListEntry::parse(&out, &long).unwrap();
        assert_eq!((e.domid, e.mem_mib, e.cpu_ns), (12, 32, 0));
        for (bad, why) in [
            (String::new(), "empty"),
            ("Name ID\n".to_owned(), "header"),
            (
                format!("{HEADER}{}", list_line("other", 1, 1, 1, "r-----", 0.1)),
                "no line for domain \"rtos-1\"",
            ),
            (
                format!("{HEADER}{}", list_line("rtos-1", 1, 1, 1, "running", 0.1)),
                "state \"running\"",
            ),
            (
                format!("{HEADER}{}", list_line("rtos-1", 1, 1, 1, "x-----", 0.1)),
                "state \"x-----\"",
            ),
            (format!("{HEADER}rtos-1 one 1 1 r----- 0.1\n"), "ID \"one\""),
            (
                format!("{HEADER}rtos-1 1 1 1 r----- 1e3\n"),
                "Time(s) \"1e3\"",
            ),
        ] {
            let err = ListEntry::parse(&bad, "rtos-1").unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn state_letters() {
        let entry = |state: &str| ListEntry {
            domid: 1,
            mem_mib: 1,
            state: state.into(),
            cpu_ns: 0,
        };
        use PartitionState::*;
        for (state, started, want) in [
            ("--p---", false, Created),
            ("--p---", true, Paused),
            ("r-----", true, Running),
            ("-b----", true, Running),
            ("------", true, Running),
            ("---s--", true, Stopped(None)),
            ("---sc-", true, Stopped(None)),
            ("--ps-d", true, Stopped(None)),
            ("-----d", true, Stopped(None)),
        ] {
            assert!(state_letters_valid(state), "{state}");
            assert_eq!(entry(state).partition_state(started), want, "{state}");
        }
        for bad in ["", "r----", "r------", "b-----", "----x-", "rbpsxd"] {
            assert!(!state_letters_valid(bad), "{bad}");
        }
    }

    #[test]
    fn seconds() {
        assert_eq!(seconds_to_ns("0.0"), Some(0));
        assert_eq!(seconds_to_ns("12.3"), Some(12_300_000_000));
        assert_eq!(seconds_to_ns("7"), Some(7_000_000_000));
        assert_eq!(seconds_to_ns("0.000000001"), Some(1));
        for bad in [
            "",
            ".5",
            "1.",
            "-1.0",
            "1e3",
            "1.0000000001",
            "99999999999999999999.0",
        ] {
            assert_eq!(seconds_to_ns(bad), None, "{bad:?}");
        }
    }

    fn joined(steps: Vec<UpdateStep>) -> Vec<String> {
        steps.into_iter().map(|s| s.args.join(" ")).collect()
    }

    #[test]
    fn update_command_sequences() {
        let old = resources(1, None, None, 64);
        assert!(update_commands("d", &old, &old).unwrap().is_empty());

        // Growing: the ceiling first; more vCPUs before pinning them.
        let mut new = resources(2, Some("1-2"), Some(150), 128);
        new.cpu_weight = 512;
        assert_eq!(
            joined(update_commands("d", &old, &new).unwrap()),
            [
                "mem-max d 128m",
                "mem-set d 128m",
                "vcpu-set d 2",
                "vcpu-pin d all 1-2",
                "sched-credit2 -d d -w 512 -c 150",
            ]
        );
        // Shrinking: the memory first, then its ceiling; no cpuset pins to all
        // CPUs again; no cap is cap 0.
        assert_eq!(
            joined(update_commands("d", &new, &old).unwrap()),
            [
                "mem-set d 64m",
                "mem-max d 64m",
                "vcpu-set d 1",
                "vcpu-pin d all all",
                "sched-credit2 -d d -w 256 -c 0",
            ]
        );
        // Only the weight.
        let mut heavier = old.clone();
        heavier.cpu_weight = 1000;
        assert_eq!(
            joined(update_commands("d", &old, &heavier).unwrap()),
            ["sched-credit2 -d d -w 1000 -c 0"]
        );

        let mut more_max = old.clone();
        more_max.max_vcpus = 8;
        let err = update_commands("d", &old, &more_max).map(drop).unwrap_err();
        assert!(err.contains("maxvcpus cannot change"), "{err}");
        let err = update_commands("d", &old, &resources(5, None, None, 64))
            .map(drop)
            .unwrap_err();
        assert!(
            err.contains("5 vCPUs asked, over the domain's maxvcpus 4"),
            "{err}"
        );

        // Each step sets what its command set, and only that.
        let mut applied = old.clone();
        for step in update_commands("d", &old, &new).unwrap() {
            let before = applied.clone();
            (step.apply)(&mut applied, &new);
            assert_ne!(applied, before, "{:?} changed nothing", step.args);
        }
        assert_eq!(applied, new);
    }

    #[test]
    fn tool_failures_carry_status_and_stderr() {
        let sh = Path::new("/bin/sh");
        let t = Duration::from_secs(10);
        assert_eq!(
            run_tool(sh, ["-c", "echo out; echo noise >&2"], t).unwrap(),
            "out\n"
        );
        let err = run_tool(
            sh,
            [
                "-c",
                "echo out; echo 'xl: it broke' >&2; echo more >&2; exit 3",
            ],
            t,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                ToolError::Exit {
                    ended: Ended::Code(3),
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "`/bin/sh -c echo out; echo 'xl: it broke' >&2; echo more >&2; exit 3` exited \
             with status 3: xl: it broke | more"
        );
        let err = run_tool(sh, ["-c", "kill -9 $$"], t)
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("was killed by signal 9: no message on stderr"),
            "{err}"
        );
        let err = run_tool(Path::new("/nonexistent/xl"), ["list"], t)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("cannot run `/nonexistent/xl list`: "),
            "{err}"
        );
        // A lot of output is read (and kept up to the limit) without blocking the tool.
        let out = run_tool(sh, ["-c", "head -c 3000000 /dev/zero"], t).unwrap();
        assert_eq!(out.len(), OUTPUT_LIMIT);
    }

    #[test]
    fn a_hung_tool_is_killed_at_its_deadline() {
        let started = Instant::now();
        let err = run_tool(
            Path::new("/bin/sh"),
            ["-c", "echo waiting >&2; exec sleep 30"],
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(matches!(err, ToolError::Timeout { .. }), "{err:?}");
        assert!(
            err.to_string()
                .ends_with("did not finish within 300ms and was killed: waiting"),
            "{err}"
        );
    }

    /// In the shim the reaper may reap a tool first: its status then comes from
    /// the reaper's report through containerd-shim's monitor.
    #[test]
    fn an_exit_status_taken_by_the_reaper_comes_from_the_monitor() {
        use containerd_shim::monitor::{monitor_notify_by_pid, monitor_subscribe, Topic};
        let exits = monitor_subscribe(Topic::Pid).unwrap();
        let mut child = Command::new("/bin/sh")
            .args(["-c", "exit 7"])
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        // The reaper's part: waitpid, then the report.
        let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
        assert_eq!(
            status,
            nix::sys::wait::WaitStatus::Exited(nix::unistd::Pid::from_raw(pid), 7)
        );
        monitor_notify_by_pid(pid + 1_000_000, 1).unwrap();
        monitor_notify_by_pid(pid, 7).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        assert_eq!(
            wait_exit(&mut child, Some(&exits), deadline),
            Some(Some(Ended::Code(7)))
        );
        // Without a report, the deadline ends the wait.
        let mut child = Command::new("/bin/true").spawn().unwrap();
        nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child.id() as i32), None).unwrap();
        let soon = Instant::now() + Duration::from_millis(50);
        assert_eq!(wait_exit(&mut child, Some(&exits), soon), None);
        assert_eq!(wait_exit(&mut child, None, soon), Some(None));
    }

    #[test]
    fn no_such_domain_is_told_from_other_failures() {
        let exit = |stderr: &str| ToolError::Exit {
            command: "xl".into(),
            ended: Ended::Code(1),
            stderr: stderr.into(),
        };
        assert!(exit("rtos-1 is an invalid domain identifier (rc=-6)\n").says_no_such_domain());
        assert!(exit(
            "Can't get domid of domain name 'rtos-1', maybe this domain does not exist.\n"
        )
        .says_no_such_domain());
        assert!(!exit("libxl: error: permission denied\n").says_no_such_domain());
    }

    /// A temp dir, removed on drop.
    struct Temp(PathBuf);

    impl Temp {
        fn new(tag: &str) -> Temp {
            let p = std::env::temp_dir().join(format!("micrun-xl-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(p.join("rootfs")).unwrap();
            Temp(p)
        }
    }

    impl Drop for Temp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn check_names_every_missing_piece_and_how_to_fix_it() {
        let mut config = Config {
            origin: Some("/etc/micrun/config.toml".into()),
            ..Config::default()
        };
        config.xen.detect = "/nonexistent/proc-xen".into();
        config.xen.xl = "/nonexistent/xl".into();
        config.xen.xenstore_read = "no-such-xenstore-read".into();
        let dir = Temp::new("check");
        let s = spec("c1", &dir.0.join("rootfs"), resources(1, None, None, 32));
        let err = XenDirect::new(&config).check(&s).unwrap_err();
        assert!(matches!(err, PedestalError::Unavailable { .. }), "{err}");
        let text = err.to_string();
        for want in [
            "the Xen marker /nonexistent/proc-xen does not exist",
            "`[xen] detect` in /etc/micrun/config.toml",
            "/nonexistent/xl: No such file or directory",
            "`[xen] xl` in /etc/micrun/config.toml",
            "no-such-xenstore-read not found in PATH (",
            "`[xen] xenstore_read` in /etc/micrun/config.toml",
        ] {
            assert!(text.contains(want), "{want:?} in {text}");
        }

        // With the tools present: the id, then the boot image.
        config.xen.detect = dir.0.clone();
        config.xen.xl = "/bin/true".into();
        config.xen.xenstore_read = "/bin/true".into();
        let ped = XenDirect::new(&config);
        let bad = spec("12", &dir.0.join("rootfs"), resources(1, None, None, 32));
        let err = ped.check(&bad).unwrap_err();
        assert!(matches!(err, PedestalError::InvalidId { .. }), "{err}");
        assert!(err.to_string().contains("all digits"), "{err}");

        let err = ped.check(&s).unwrap_err().to_string();
        assert!(
            err.contains("Xen boot image \"image.bin\" not found in the container rootfs")
                && err.contains("`[xen] boot_image` in /etc/micrun/config.toml")
                && err.contains(PEDESTAL_CONF),
            "{err}"
        );
        let mut with_conf = s.clone();
        with_conf.annotations.pedestal_conf = Some("boot/xen.bin".into());
        let err = ped.check(&with_conf).unwrap_err().to_string();
        assert!(
            err.contains("\"boot/xen.bin\" not found")
                && err.contains(&format!("the {PEDESTAL_CONF} annotation")),
            "{err}"
        );
        std::fs::create_dir(dir.0.join("rootfs/boot")).unwrap();
        std::fs::write(dir.0.join("rootfs/boot/xen.bin"), b"image").unwrap();
        ped.check(&with_conf).unwrap();
        assert_eq!(ped.kind(), KIND);
        assert_eq!(ped.arch(), Arch::Aarch64);
    }

    #[test]
    fn destroy_detached_refuses_names_that_are_not_containers() {
        for name in ["0", "Domain-0", "-a", "a b"] {
            let err = destroy_detached(Path::new("/bin/true"), name)
                .unwrap_err()
                .to_string();
            assert!(err.contains("refusing to destroy"), "{name:?}: {err}");
        }
        // `xl destroy` succeeding is the end of it.
        destroy_detached(Path::new("/bin/true"), "rtos-1").unwrap();
        // `xl destroy` failing while the domain still exists is an error with
        // xl's words; here `xl domid` (also /bin/false) fails without saying
        // the domain is gone.
        let err = destroy_detached(Path::new("/bin/false"), "rtos-1")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Xen domain \"rtos-1\" may still run: `/bin/false destroy rtos-1` exited with status 1"),
            "{err}"
        );
    }
}
