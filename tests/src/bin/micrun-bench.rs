//! `micrun-bench`: the numbers of `docs/benchmarks.md`, measured side by side in one
//! run on a private containerd (Debian's 1.6), with the command beside each number.
//!
//! ```text
//! 1 size      cargo build --release --target x86_64-unknown-linux-musl (opt z, LTO,
//!             codegen-units 1, panic abort, strip) → bytes of containerd-shim-mica-v2
//! 2 memory    VmRSS / Pss of the shim with 1 running container, and summed over K
//!             concurrent containers (micrun on the sim pedestal vs runc's shim)
//! 3 lifecycle ctr run -d (→ RUNNING), task kill, task rm, container rm: micrun vs
//!             runc, interleaved, medians and the ratio
//! 4 console   `flood N` through the shim to ctr's stdout vs the simulator alone on
//!             a pipe (`micrun-rtos-sim --raw`)
//! 5 echo      `echo x` → echoed line, through the shim, median of M
//! ```
//!
//! Everything runs against the shim it builds in step 1 (the shipped artifact), and the
//! simulator `micrun-rtos-sim` built `--release`. Needs root, `containerd`, `runc`,
//! `ctr`, `gcc` with static libc (`.ci/setup`). Prints a markdown block; with
//! `--write-docs FILE` replaces the text between `<!-- bench:begin -->` and
//! `<!-- bench:end -->` in FILE with it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use micrun_proto::endpoint::transmit_buf_len;
use micrun_proto::frame::MAX_FRAME;
use micrun_proto::{HostConfig, HostEndpoint, LinkKind, Stream as ConsoleStream};
use micrun_shim::instance::LinkEndpoint;
use micrun_tests::containerd::{Containerd, ContainerdOpts, Namespace, TaskState, RUNC_RUNTIME};
use micrun_tests::e2e::{cmdline, MicrunConfig, ANN_AGENT, ANN_PEDESTAL, RUNTIME, SHIM_NAME};
use micrun_tests::oci::ImageBuilder;
use micrun_tests::{find, repo_root, TempDir};

const USAGE: &str = "\
usage: micrun-bench [OPTIONS]

  --reps N             repetitions of each timed measurement (default 10)
  --containers LIST    concurrent-container counts, comma separated (default 20,50)
  --no-runc-many       do not repeat the concurrent-container memory run with runc
  --flood-bytes N      size of one console flood (default 8388608 = 8 MiB)
  --echo-count N       echo round trips per path (default 50)
  --settle-ms N        wait after `ctr run -d` before reading memory (default 1000)
  --size-breakdown     also build an unstripped twin and sum symbol sizes per crate
  --shim PATH          measure this containerd-shim-mica-v2 instead of building one
                       (an A/B experiment; its size is reported as given)
  --sim PATH           use this micrun-rtos-sim (link and images) instead of building
                       one (an A/B experiment)
  --only LIST          run only these phases: lifecycle,console,many (default all)
  --write-docs FILE    replace the text between the bench markers in FILE
  --help
";

const BEGIN: &str = "<!-- bench:begin -->";
const END: &str = "<!-- bench:end -->";
const MUSL: &str = "x86_64-unknown-linux-musl";
const SIZE_FLAGS: [&str; 5] = [
    "profile.release.opt-level=\"z\"",
    "profile.release.lto=true",
    "profile.release.codegen-units=1",
    "profile.release.panic=\"abort\"",
    "profile.release.strip=true",
];
/// Reference figures from ../shared/reference/mica.md (measured once, not here).
const GO_MICRUN_STRIPPED_MB: f64 = 19.3;
const GO_MICRUN_RSS_MB: f64 = 15.3;
const T_CTR: Duration = Duration::from_secs(60);
const T_ACT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Options.

#[derive(Debug, Clone)]
struct Opts {
    reps: usize,
    containers: Vec<usize>,
    runc_many: bool,
    flood_bytes: u64,
    echo_count: usize,
    settle: Duration,
    size_breakdown: bool,
    shim: Option<PathBuf>,
    only: Vec<String>,
    sim: Option<PathBuf>,
    write_docs: Option<PathBuf>,
}

fn parse_opts() -> Result<Opts, String> {
    let mut o = Opts {
        reps: 10,
        containers: vec![20, 50],
        runc_many: true,
        flood_bytes: 8 << 20,
        echo_count: 50,
        settle: Duration::from_millis(1000),
        size_breakdown: false,
        shim: None,
        sim: None,
        only: vec!["lifecycle".into(), "console".into(), "many".into()],
        write_docs: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        let num = |name: &str, v: String| {
            v.parse::<u64>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{name}: `{v}` is not a positive integer"))
        };
        match a.as_str() {
            "--help" | "-h" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            "--reps" => o.reps = num("--reps", val("--reps")?)? as usize,
            "--containers" => {
                let v = val("--containers")?;
                o.containers = v
                    .split(',')
                    .map(|s| num("--containers", s.trim().to_string()).map(|n| n as usize))
                    .collect::<Result<_, _>>()?;
                o.containers.sort_unstable();
                o.containers.dedup();
            }
            "--no-runc-many" => o.runc_many = false,
            "--flood-bytes" => o.flood_bytes = num("--flood-bytes", val("--flood-bytes")?)?,
            "--echo-count" => o.echo_count = num("--echo-count", val("--echo-count")?)? as usize,
            "--settle-ms" => {
                o.settle = Duration::from_millis(num("--settle-ms", val("--settle-ms")?)?)
            }
            "--size-breakdown" => o.size_breakdown = true,
            "--shim" => o.shim = Some(PathBuf::from(val("--shim")?)),
            "--sim" => o.sim = Some(PathBuf::from(val("--sim")?)),
            "--only" => {
                o.only = val("--only")?
                    .split(',')
                    .map(|x| x.trim().to_string())
                    .collect();
                if let Some(bad) = o
                    .only
                    .iter()
                    .find(|x| !["lifecycle", "console", "many"].contains(&x.as_str()))
                {
                    return Err(format!("--only: unknown phase `{bad}`"));
                }
            }
            "--write-docs" => o.write_docs = Some(PathBuf::from(val("--write-docs")?)),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(o)
}

// ---------------------------------------------------------------------------
// Statistics.

#[derive(Debug, Clone, Default)]
struct Samples(Vec<f64>);

impl Samples {
    fn push(&mut self, v: f64) {
        self.0.push(v);
    }
    fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        v
    }
    fn median(&self) -> f64 {
        let v = self.sorted();
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
    fn min(&self) -> f64 {
        self.sorted().first().copied().unwrap_or(f64::NAN)
    }
    fn max(&self) -> f64 {
        self.sorted().last().copied().unwrap_or(f64::NAN)
    }
    fn n(&self) -> usize {
        self.0.len()
    }
    /// `median (min–max, n=N)` with `fmt` for the values.
    fn spread(&self, fmt: impl Fn(f64) -> String) -> String {
        format!(
            "{} (min {}, max {}, n={})",
            fmt(self.median()),
            fmt(self.min()),
            fmt(self.max()),
            self.n()
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn f_ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.1} ms")
    }
}

fn f_kib(kib: f64) -> String {
    format!("{:.2} MiB ({kib:.0} KiB)", kib / 1024.0)
}

fn f_mbs(v: f64) -> String {
    format!("{:.1} MB/s", v / 1e6)
}

// ---------------------------------------------------------------------------
// Processes.

/// Runs `cmd` to its end (killed after `timeout`), returning how long it took, its
/// success and its output. Polls every 250 µs: the timing is that precise.
fn timed(mut cmd: Command, timeout: Duration) -> (Duration, bool, String, String) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let t0 = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return (
                t0.elapsed(),
                false,
                String::new(),
                format!("cannot run {:?}: {e}", cmd.get_program()),
            )
        }
    };
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let deadline = t0 + timeout;
    let (took, ok) = loop {
        match child.try_wait() {
            Ok(Some(st)) => break (t0.elapsed(), st.success()),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break (t0.elapsed(), false);
            }
            Ok(None) => std::thread::sleep(Duration::from_micros(250)),
            Err(_) => break (t0.elapsed(), false),
        }
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    (
        took,
        ok,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

fn drain<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut v);
        }
        v
    })
}

/// The stdout of a child, read in the measuring thread with poll(2) deadlines:
/// the instant a needle is seen is the instant the bytes arrived.
struct Stream {
    out: ChildStdout,
    buf: Vec<u8>,
    chunk: Vec<u8>,
    /// Bytes read so far.
    total: u64,
}

impl Stream {
    fn new(out: ChildStdout) -> Stream {
        Stream {
            out,
            buf: Vec::new(),
            chunk: vec![0; 256 << 10],
            total: 0,
        }
    }

    /// Reads until `needle` has arrived; drops everything up to its end and returns
    /// the instant it arrived.
    fn wait_for(&mut self, needle: &[u8], timeout: Duration) -> Result<Instant, String> {
        match self.wait_for_or_idle(needle, None, timeout)? {
            (at, true) => Ok(at),
            (_, false) => Err(self.timeout_msg(needle)),
        }
    }

    /// Like [`wait_for`](Self::wait_for), but with `idle` it also ends when no byte
    /// has come for that long: then it returns the instant of the last byte and
    /// false.
    fn wait_for_or_idle(
        &mut self,
        needle: &[u8],
        idle: Option<Duration>,
        timeout: Duration,
    ) -> Result<(Instant, bool), String> {
        let deadline = Instant::now() + timeout;
        let mut last = Instant::now();
        let mut scan = 0;
        loop {
            if let Some(i) = find(&self.buf[scan..], needle) {
                let at = Instant::now();
                self.buf.drain(..scan + i + needle.len());
                return Ok((at, true));
            }
            if idle.is_some_and(|d| last.elapsed() >= d) {
                return Ok((last, false));
            }
            scan = self
                .buf
                .len()
                .saturating_sub(needle.len().saturating_sub(1));
            if self.buf.len() > (1 << 20) {
                // Keep a tail for the error message and for needles split by reads.
                let cut = scan.min(self.buf.len() - 4096);
                self.buf.drain(..cut);
                scan -= cut;
            }
            let mut left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.timeout_msg(needle));
            }
            if let Some(d) = idle {
                left = left.min(d.saturating_sub(last.elapsed()));
            }
            let mut pfd = libc::pollfd {
                fd: self.out.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let wait = left.as_millis().clamp(1, i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd, its count, a timeout.
            let r = unsafe { libc::poll(&mut pfd, 1, wait) };
            if r == 0 {
                continue;
            }
            match self.out.read(&mut self.chunk) {
                Ok(0) => return Err(format!("end of output; {}", self.timeout_msg(needle))),
                Ok(n) => {
                    last = Instant::now();
                    self.total += n as u64;
                    self.buf.extend_from_slice(&self.chunk[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    fn timeout_msg(&self, needle: &[u8]) -> String {
        let tail = &self.buf[self.buf.len().saturating_sub(400)..];
        format!(
            "no {:?} in the output (tail: {:?})",
            String::from_utf8_lossy(needle),
            String::from_utf8_lossy(tail)
        )
    }
}

/// An interactive child: stdin pipe, stdout [`Stream`], stderr collected. Killed
/// (by its own handle) and reaped on drop.
struct Interactive {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    out: Stream,
    err: Arc<Mutex<Vec<u8>>>,
}

impl Interactive {
    fn spawn(mut cmd: Command, what: String) -> Result<Interactive, String> {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {what}: {e}"))?;
        let err = Arc::new(Mutex::new(Vec::new()));
        if let Some(mut e) = child.stderr.take() {
            let sink = err.clone();
            std::thread::spawn(move || {
                let mut b = [0u8; 4096];
                while let Ok(n) = e.read(&mut b) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend_from_slice(&b[..n]);
                }
            });
        }
        let out = Stream::new(child.stdout.take().ok_or("no stdout")?);
        Ok(Interactive {
            what,
            stdin: child.stdin.take(),
            child,
            out,
            err,
        })
    }

    fn send(&mut self, text: &str) -> Result<(), String> {
        let w = self.stdin.as_mut().ok_or("stdin closed")?;
        w.write_all(text.as_bytes())
            .and_then(|_| w.flush())
            .map_err(|e| format!("{}: write {text:?}: {e}", self.what))
    }

    fn wait_for(&mut self, needle: &str, timeout: Duration) -> Result<Instant, String> {
        self.out.wait_for(needle.as_bytes(), timeout).map_err(|e| {
            let err = self.err.lock().unwrap_or_else(|p| p.into_inner());
            format!(
                "{}: {e}; stderr: {}",
                self.what,
                String::from_utf8_lossy(&err)
            )
        })
    }

    /// Waits up to `timeout` for the child to end by itself.
    fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }
}

impl Drop for Interactive {
    fn drop(&mut self) {
        self.stdin = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// /proc.

#[derive(Debug, Clone, Copy, Default)]
struct Mem {
    rss_kib: f64,
    hwm_kib: f64,
    anon_kib: f64,
    file_kib: f64,
    pss_kib: f64,
    threads: f64,
}

fn status_field(text: &str, key: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn mem_of(pid: u32) -> Option<Mem> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let r = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    Some(Mem {
        rss_kib: status_field(&s, "VmRSS:")?,
        hwm_kib: status_field(&s, "VmHWM:").unwrap_or(f64::NAN),
        anon_kib: status_field(&s, "RssAnon:").unwrap_or(f64::NAN),
        file_kib: status_field(&s, "RssFile:").unwrap_or(f64::NAN),
        pss_kib: status_field(&r, "Pss:").unwrap_or(f64::NAN),
        threads: status_field(&s, "Threads:").unwrap_or(f64::NAN),
    })
}

/// Rss (KiB) of `pid` per kind of mapping, from `/proc/<pid>/smaps`. Anonymous
/// writable mappings are told apart by shape and content: thread stacks (Rust's
/// 2 MiB stacks plus guard/TLS), and mappings holding rust-protobuf's descriptor
/// pool (they contain descriptor.proto's names: `uninterpreted_option`,
/// `google.protobuf`; read through `/proc/<pid>/mem`, which needs root like the
/// rest of the bench).
fn rss_by_mapping(pid: u32) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else {
        return m;
    };
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).ok();
    let mut kind = String::new();
    let mut range = (0u64, 0u64);
    for l in text.lines() {
        let first = l.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            let f: Vec<&str> = l.split_whitespace().collect();
            let perms = f.get(1).copied().unwrap_or("");
            range = first
                .split_once('-')
                .and_then(|(a, b)| {
                    Some((
                        u64::from_str_radix(a, 16).ok()?,
                        u64::from_str_radix(b, 16).ok()?,
                    ))
                })
                .unwrap_or((0, 0));
            kind = match f.get(5) {
                Some(p) if p.starts_with('[') => (*p).to_string(),
                Some(p) => format!(
                    "file {} ({})",
                    Path::new(p)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    perms
                ),
                None => format!("anonymous ({perms})"),
            };
        } else if let Some(v) = l.strip_prefix("Rss:") {
            let kib: f64 = v
                .split_whitespace()
                .next()
                .and_then(|x| x.parse().ok())
                .unwrap_or(0.0);
            if kib <= 0.0 {
                continue;
            }
            let mut k = kind.clone();
            if k == "anonymous (rw-p)" {
                let size = range.1 - range.0;
                if (2048 << 10..=2112 << 10).contains(&size) {
                    k = "anonymous: thread stacks (2 MiB mappings)".into();
                } else if kib >= 64.0 && size <= 64 << 20 {
                    let mut buf = vec![0u8; size as usize];
                    let read = mem.as_ref().is_some_and(|f| {
                        std::os::unix::fs::FileExt::read_exact_at(f, &mut buf, range.0).is_ok()
                    });
                    if read
                        && (find(&buf, b"uninterpreted_option").is_some()
                            || find(&buf, b"google.protobuf").is_some())
                    {
                        k = "anonymous: rust-protobuf descriptor pool".into();
                    } else {
                        k = "anonymous: other".into();
                    }
                } else {
                    k = "anonymous: other".into();
                }
            }
            *m.entry(k).or_insert(0.0) += kib;
        }
    }
    m
}

// ---------------------------------------------------------------------------
// The setup: builds, images, the private containerd.

struct Builds {
    shim: PathBuf,
    shim_bytes: Option<u64>,
    shim_build_cmd: String,
    shim_note: String,
    sim: PathBuf,
    hello: PathBuf,
    size_breakdown: Vec<(String, u64)>,
    /// The largest ELF sections of the measured binary.
    sections: Vec<(String, u64)>,
    /// Bytes of the same build linked non-PIE (`-C relocation-model=static`).
    nopie: Option<u64>,
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn size_build_args(target_dir: &str, strip: bool) -> Vec<String> {
    let mut a: Vec<String> = [
        "build",
        "--release",
        "-p",
        "micrun-shim",
        "--bin",
        SHIM_NAME,
        "--target",
        MUSL,
        "--target-dir",
        target_dir,
    ]
    .map(String::from)
    .to_vec();
    for f in SIZE_FLAGS {
        let f = if !strip && f.starts_with("profile.release.strip") {
            "profile.release.strip=\"debuginfo\""
        } else {
            f
        };
        a.push("--config".into());
        a.push(f.into());
    }
    a
}

fn shell_words(prog: &str, args: &[String]) -> String {
    let mut s = prog.to_string();
    for a in args {
        s.push(' ');
        if a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=,:".contains(c))
        {
            s.push_str(a);
        } else {
            s.push('\'');
            s.push_str(&a.replace('\'', "'\\''"));
            s.push('\'');
        }
    }
    s
}

fn run_cargo(args: &[String]) -> Result<(), String> {
    let root = repo_root();
    let out = Command::new(cargo())
        .args(args)
        .current_dir(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(25).collect();
        Err(tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
    }
}

fn build(o: &Opts, work: &Path) -> Result<Builds, String> {
    let root = repo_root();
    let tdir = "target/bench";
    let args = size_build_args(tdir, true);
    let shim_build_cmd = shell_words("cargo", &args);
    let musl = root.join(tdir).join(MUSL).join("release").join(SHIM_NAME);
    let (shim, shim_bytes, shim_note) = if let Some(p) = &o.shim {
        let p = std::fs::canonicalize(p).map_err(|e| format!("--shim {p:?}: {e}"))?;
        let n = std::fs::metadata(&p).map_err(|e| e.to_string())?.len();
        let note = format!(
            "measured the given binary `{}` (`--shim`), not a fresh build",
            p.display()
        );
        (p, Some(n), note)
    } else {
        eprintln!("bench: {shim_build_cmd}");
        match run_cargo(&args) {
            Ok(()) => {
                let n = std::fs::metadata(&musl)
                    .map_err(|e| format!("{musl:?} after the build: {e}"))?
                    .len();
                (musl, Some(n), String::new())
            }
            Err(e) => {
                // Measure the rest with a glibc build of the same profile, and say why.
                eprintln!("bench: the musl build failed:\n{e}");
                let mut a = args.clone();
                if let Some(i) = a.iter().position(|x| x == "--target") {
                    a.drain(i..i + 2);
                }
                run_cargo(&a).map_err(|e2| format!("the glibc fallback build failed too: {e2}"))?;
                (
                    root.join(tdir).join("release").join(SHIM_NAME),
                    None,
                    format!("the musl build FAILED; the runtime numbers use a glibc build of the same profile. cargo said: {e}"),
                )
            }
        }
    };

    let mut size_breakdown = Vec::new();
    if o.size_breakdown && shim_bytes.is_some() {
        let args = size_build_args("target/bench-symbols", false);
        eprintln!("bench: {}", shell_words("cargo", &args));
        run_cargo(&args)?;
        let bin = root
            .join("target/bench-symbols")
            .join(MUSL)
            .join("release")
            .join(SHIM_NAME);
        size_breakdown = symbol_sizes(&bin)?;
    }
    let mut sections = Vec::new();
    let mut nopie = None;
    if o.size_breakdown && shim_bytes.is_some() {
        sections = elf_sections(&shim)?;
        let mut args = size_build_args("target/bench-nopie", true);
        args.extend(nopie_flags());
        eprintln!("bench: {}", shell_words("cargo", &args));
        run_cargo(&args)?;
        let bin = root
            .join("target/bench-nopie")
            .join(MUSL)
            .join("release")
            .join(SHIM_NAME);
        nopie = Some(std::fs::metadata(&bin).map_err(|e| e.to_string())?.len());
    }

    let sim_args: Vec<String> = [
        "build",
        "--release",
        "-p",
        "micrun-rtos-sim",
        "--bin",
        "micrun-rtos-sim",
        "--target-dir",
        tdir,
    ]
    .map(String::from)
    .to_vec();
    let sim = match &o.sim {
        Some(p) => std::fs::canonicalize(p).map_err(|e| format!("--sim {p:?}: {e}"))?,
        None => {
            eprintln!("bench: {}", shell_words("cargo", &sim_args));
            run_cargo(&sim_args)?;
            root.join(tdir).join("release/micrun-rtos-sim")
        }
    };

    let src = work.join("hello.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\n#include <unistd.h>\n\
         int main(void) {\n  printf(\"hello from a static C binary\\n\");\n  fflush(stdout);\n  for (;;) sleep(3600);\n}\n",
    )
    .map_err(|e| e.to_string())?;
    let hello = work.join("hello");
    let st = Command::new("gcc")
        .args(["-static", "-O2", "-s", "-o"])
        .arg(&hello)
        .arg(&src)
        .status()
        .map_err(|e| format!("cannot run gcc: {e}"))?;
    if !st.success() {
        return Err("gcc -static hello.c failed (libc6-dev installed?)".into());
    }
    Ok(Builds {
        shim,
        shim_bytes,
        shim_build_cmd,
        shim_note,
        sim,
        hello,
        size_breakdown,
        sections,
        nopie,
    })
}

/// The extra `--config` flags of the non-PIE variant.
fn nopie_flags() -> [String; 2] {
    [
        "--config".into(),
        format!("target.{MUSL}.rustflags=[\"-C\", \"relocation-model=static\"]"),
    ]
}

/// Section names and sizes of an ELF file (`readelf -SW`), largest first.
fn elf_sections(bin: &Path) -> Result<Vec<(String, u64)>, String> {
    let out = Command::new("readelf")
        .arg("-SW")
        .arg(bin)
        .output()
        .map_err(|e| format!("cannot run readelf: {e}"))?;
    let mut v = Vec::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        // "  [ 9] .text  PROGBITS  addr off size es flg lk inf al"
        let Some(rest) = l.trim_start().strip_prefix('[') else {
            continue;
        };
        let Some((_, rest)) = rest.split_once(']') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() < 5 || !f[0].starts_with('.') {
            continue;
        }
        if f[1] == "NOBITS" {
            continue;
        }
        if let Ok(size) = u64::from_str_radix(f[4], 16) {
            v.push((f[0].to_string(), size));
        }
    }
    v.sort_by_key(|x| std::cmp::Reverse(x.1));
    Ok(v)
}

/// Sums `nm --size-sort` symbol sizes by crate (the first path segment of the
/// demangled name; C symbols are `libc/other`).
fn symbol_sizes(bin: &Path) -> Result<Vec<(String, u64)>, String> {
    let out = Command::new("nm")
        .args(["--size-sort", "-C", "-S"])
        .arg(bin)
        .output()
        .map_err(|e| format!("cannot run nm: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "nm failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut by: BTreeMap<String, u64> = BTreeMap::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let mut f = l.splitn(4, ' ');
        let (_addr, size, kind, name) = (f.next(), f.next(), f.next(), f.next());
        let (Some(size), Some(kind), Some(name)) = (size, kind, name) else {
            continue;
        };
        if !matches!(kind, "t" | "T" | "r" | "R" | "d" | "D" | "W" | "w") {
            continue;
        }
        let size = u64::from_str_radix(size, 16).unwrap_or(0);
        by.entry(crate_of(name))
            .and_modify(|s| *s += size)
            .or_insert(size);
    }
    let mut v: Vec<(String, u64)> = by.into_iter().collect();
    v.sort_by_key(|x| std::cmp::Reverse(x.1));
    Ok(v)
}

fn crate_of(sym: &str) -> String {
    let s = sym.trim_start_matches('<').trim_start_matches('&');
    let s = s.strip_prefix("dyn ").unwrap_or(s);
    if let Some(i) = s.find("::") {
        let head = &s[..i];
        if head.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return head.to_string();
        }
    }
    "(C / musl libc / unnamed)".into()
}

struct Bench {
    cd: Containerd,
    work: PathBuf,
    sim_image: String,
    sim_raw_image: String,
    hello_image: String,
    commands: Vec<(String, String)>,
}

impl Bench {
    fn setup(b: &Builds, work: &Path) -> Result<Bench, String> {
        let shim_dir = work.join("shim");
        std::fs::create_dir_all(&shim_dir).map_err(|e| e.to_string())?;
        std::os::unix::fs::symlink(&b.shim, shim_dir.join(SHIM_NAME)).map_err(|e| e.to_string())?;
        // The shipped defaults (stop grace, liveness, handshake), plus what the sim needs.
        let mut cfg = MicrunConfig::for_tests(work.join("state"));
        cfg.stop_grace = None;
        cfg.liveness_window = None;
        cfg.ping_interval = None;
        cfg.handshake_wait = None;
        cfg.qemu_binary = None;
        let cfg_path = work.join("micrun.toml");
        cfg.write(&cfg_path).map_err(|e| e.to_string())?;
        let cd = Containerd::start_with(ContainerdOpts {
            shim_dirs: vec![shim_dir],
            env: vec![(
                "MICRUN_CONFIG".into(),
                cfg_path.to_string_lossy().into_owned(),
            )],
        })
        .map_err(|e| e.to_string())?;
        let sim = std::fs::read(&b.sim).map_err(|e| e.to_string())?;
        let hello = std::fs::read(&b.hello).map_err(|e| e.to_string())?;
        let mut bench = Bench {
            cd,
            work: work.to_path_buf(),
            sim_image: "localhost/micrun/bench-sim:agent".into(),
            sim_raw_image: "localhost/micrun/bench-sim:raw".into(),
            hello_image: "localhost/micrun/bench-hello:static".into(),
            commands: Vec::new(),
        };
        let images = [
            ImageBuilder::new(bench.sim_image.clone())
                .file("/firmware.elf", sim.clone(), 0o755)
                .entrypoint(["/firmware.elf"]),
            ImageBuilder::new(bench.sim_raw_image.clone())
                .file("/firmware.elf", sim, 0o755)
                .entrypoint(["/firmware.elf"])
                .cmd(["--raw"]),
            ImageBuilder::new(bench.hello_image.clone())
                .file("/hello", hello, 0o755)
                .entrypoint(["/hello"]),
        ];
        for (i, img) in images.iter().enumerate() {
            let tar = work.join(format!("image{i}.tar"));
            img.write_tar(&tar).map_err(|e| e.to_string())?;
        }
        bench.commands.push((
            "micrun config (MICRUN_CONFIG)".into(),
            cfg.to_toml()
                .replace(&*work.to_string_lossy(), "<tmp>")
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(" "),
        ));
        Ok(bench)
    }

    /// Imports the images into `ns`.
    fn import(&self, ns: &Namespace<'_>) -> Result<(), String> {
        for i in 0..3 {
            ns.import(&self.work.join(format!("image{i}.tar")))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn ctr(&self, ns: &str, args: &[String]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(self.cd.address())
            .arg("--namespace")
            .arg(ns)
            .args(args)
            .env("PATH", self.cd.daemon_path_env())
            .env_remove("CONTAINERD_ADDRESS")
            .env_remove("CONTAINERD_NAMESPACE")
            .current_dir(self.cd.dir());
        c
    }

    /// Runs a ctr command, timed; failure is an error with its output.
    fn ctr_timed(&self, ns: &str, args: &[String]) -> Result<Duration, String> {
        let (d, ok, out, err) = timed(self.ctr(ns, args), T_CTR);
        if ok {
            Ok(d)
        } else {
            Err(format!(
                "`ctr {}` failed\nstdout: {out}\nstderr: {err}\n--- containerd log ---\n{}",
                args.join(" "),
                self.cd.log_tail(15)
            ))
        }
    }

    fn fifo(&self) -> String {
        self.cd.fifo_dir().to_string_lossy().into_owned()
    }

    /// The `ctr run -d` arguments for runtime `rt`.
    fn run_d_args(&self, rt: Rt, id: &str) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "run".into(),
            "-d".into(),
            "--null-io".into(),
            "--fifo-dir".into(),
            self.fifo(),
            "--runtime".into(),
            rt.runtime().into(),
        ];
        match rt {
            Rt::Micrun => {
                a.push("--annotation".into());
                a.push(format!("{ANN_PEDESTAL}=sim"));
                a.push(self.sim_image.clone());
            }
            Rt::Runc => a.push(self.hello_image.clone()),
        }
        a.push(id.into());
        a
    }

    fn shim_pid(&self, id: &str) -> Option<u32> {
        self.cd.shim_pids().into_iter().find(|&pid| {
            let a = cmdline(pid);
            a.windows(2).any(|w| w[0] == "-id" && w[1] == id)
        })
    }

    fn wait_no_shim(&self, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.shim_pid(id).is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn task_state(&self, ns: &Namespace<'_>, id: &str) -> Option<TaskState> {
        ns.task_state(id).ok().flatten()
    }

    /// Kill, task rm, container rm, timed (ms each).
    fn teardown(&self, ns: &Namespace<'_>, id: &str) -> Result<[Duration; 3], String> {
        let n = ns.name();
        let kill = self.ctr_timed(n, &["task", "kill", "-s", "SIGKILL", id].map(String::from))?;
        // `task rm -f`: Wait for the exit (a Wait RPC, no polling), then Delete.
        let rm = self.ctr_timed(n, &["task", "rm", "-f", id].map(String::from))?;
        let crm = self.ctr_timed(n, &["container", "rm", id].map(String::from))?;
        Ok([kill, rm, crm])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rt {
    Micrun,
    Runc,
}

impl Rt {
    fn runtime(self) -> &'static str {
        match self {
            Rt::Micrun => RUNTIME,
            Rt::Runc => RUNC_RUNTIME,
        }
    }
    fn tag(self) -> &'static str {
        match self {
            Rt::Micrun => "micrun",
            Rt::Runc => "runc",
        }
    }
}

// ---------------------------------------------------------------------------
// Measurements.

#[derive(Default)]
struct PerRt {
    run_d: Samples,
    kill: Samples,
    task_rm: Samples,
    container_rm: Samples,
    cycle: Samples,
    rss: Samples,
    pss: Samples,
    anon: Samples,
    file: Samples,
    threads: Samples,
    not_running_at_return: usize,
}

struct Lifecycle {
    micrun: PerRt,
    runc: PerRt,
    breakdown: BTreeMap<String, f64>,
    ctr_floor: Samples,
    spawn_micrun: Samples,
    spawn_runc: Samples,
}

fn lifecycle(b: &Bench, o: &Opts, builds: &Builds) -> Result<Lifecycle, String> {
    eprintln!("bench: lifecycle and memory ({} repetitions)", o.reps);
    let ns = b.cd.namespace("bench-lifecycle");
    b.import(&ns)?;
    let mut r = Lifecycle {
        micrun: PerRt::default(),
        runc: PerRt::default(),
        breakdown: BTreeMap::new(),
        ctr_floor: Samples::default(),
        spawn_micrun: Samples::default(),
        spawn_runc: Samples::default(),
    };
    // One untimed warm-up of each (page cache, snapshots, cgroup dirs).
    for rt in [Rt::Micrun, Rt::Runc] {
        let id = format!("warm-{}", rt.tag());
        b.ctr_timed(ns.name(), &b.run_d_args(rt, &id))?;
        b.cd.shim_sockets();
        b.teardown(&ns, &id)?;
        b.wait_no_shim(&id);
    }
    for rep in 0..o.reps {
        // Interleaved, alternating which runtime goes first.
        let order = if rep % 2 == 0 {
            [Rt::Micrun, Rt::Runc]
        } else {
            [Rt::Runc, Rt::Micrun]
        };
        for rt in order {
            let id = format!("{}-{rep}", rt.tag());
            let p = match rt {
                Rt::Micrun => &mut r.micrun,
                Rt::Runc => &mut r.runc,
            };
            let run_d = b.ctr_timed(ns.name(), &b.run_d_args(rt, &id))?;
            if b.task_state(&ns, &id) != Some(TaskState::Running) {
                p.not_running_at_return += 1;
                ns.wait_state(&id, TaskState::Running, T_ACT)
                    .map_err(|e| e.to_string())?;
            }
            b.cd.shim_sockets();
            std::thread::sleep(o.settle);
            let pid = b
                .shim_pid(&id)
                .ok_or_else(|| format!("no shim process for {id}"))?;
            let m = mem_of(pid).ok_or_else(|| format!("no /proc/{pid}/status"))?;
            if rt == Rt::Micrun && rep == 0 {
                r.breakdown = rss_by_mapping(pid);
            }
            let [kill, rm, crm] = b.teardown(&ns, &id)?;
            p.run_d.push(ms(run_d));
            p.kill.push(ms(kill));
            p.task_rm.push(ms(rm));
            p.container_rm.push(ms(crm));
            p.cycle.push(ms(run_d + kill + rm + crm));
            p.rss.push(m.rss_kib);
            p.pss.push(m.pss_kib);
            p.anon.push(m.anon_kib);
            p.file.push(m.file_kib);
            p.threads.push(m.threads);
            // The next run starts on a quiet machine: this shim has exited.
            b.wait_no_shim(&id);
        }
        eprintln!(
            "bench: lifecycle rep {}/{}: micrun cycle {:.1} ms, runc cycle {:.1} ms",
            rep + 1,
            o.reps,
            r.micrun.cycle.0.last().unwrap_or(&f64::NAN),
            r.runc.cycle.0.last().unwrap_or(&f64::NAN)
        );
    }
    // Floors: one ctr invocation, one exec of each shim binary.
    let runc_shim = which("containerd-shim-runc-v2").unwrap_or_default();
    for _ in 0..o.reps {
        let (d, _, _, _) = timed(b.ctr(ns.name(), &["version".to_string()]), T_CTR);
        r.ctr_floor.push(ms(d));
        let mut c = Command::new(&builds.shim);
        c.arg("-v");
        r.spawn_micrun.push(ms(timed(c, T_CTR).0));
        let mut c = Command::new(&runc_shim);
        c.arg("-v");
        r.spawn_runc.push(ms(timed(c, T_CTR).0));
    }
    Ok(r)
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

struct Many {
    rt: Rt,
    k: usize,
    shims: usize,
    rss_sum: f64,
    pss_sum: f64,
    workload_rss_sum: f64,
    start_all: Duration,
    run_d: Samples,
}

/// Starts containers one after another and, at each count of `ks`, sums the memory
/// of their shims (and of the workload processes, for scale).
fn many(b: &Bench, o: &Opts, rt: Rt) -> Result<Vec<Many>, String> {
    let ns = b.cd.namespace(&format!("bench-many-{}", rt.tag()));
    b.import(&ns)?;
    let mut out = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    let t0 = Instant::now();
    let mut run_d = Samples::default();
    let mut result = Ok(());
    for &k in &o.containers {
        while ids.len() < k {
            let id = format!("{}-many-{}", rt.tag(), ids.len());
            match b.ctr_timed(ns.name(), &b.run_d_args(rt, &id)) {
                Ok(d) => run_d.push(ms(d)),
                Err(e) => {
                    result = Err(format!("{} containers of {}: {e}", ids.len() + 1, rt.tag()));
                    break;
                }
            }
            ids.push(id);
        }
        if result.is_err() {
            break;
        }
        let start_all = t0.elapsed();
        b.cd.shim_sockets();
        std::thread::sleep(o.settle);
        let tasks = ns.tasks().map_err(|e| e.to_string())?;
        let running = tasks
            .iter()
            .filter(|t| t.state == TaskState::Running)
            .count();
        if running != k {
            result = Err(format!("{running} of {k} {} tasks RUNNING", rt.tag()));
            break;
        }
        let mut m = Many {
            rt,
            k,
            shims: 0,
            rss_sum: 0.0,
            pss_sum: 0.0,
            workload_rss_sum: 0.0,
            start_all,
            run_d: run_d.clone(),
        };
        let pids = b.cd.shim_pids();
        for id in &ids {
            let Some(pid) = pids
                .iter()
                .copied()
                .find(|&p| cmdline(p).windows(2).any(|w| w[0] == "-id" && w[1] == *id))
            else {
                continue;
            };
            if let Some(mm) = mem_of(pid) {
                m.shims += 1;
                m.rss_sum += mm.rss_kib;
                m.pss_sum += mm.pss_kib;
            }
            if let Some(t) = tasks.iter().find(|t| &t.id == id) {
                if let Some(w) = mem_of(t.pid) {
                    m.workload_rss_sum += w.rss_kib;
                }
            }
        }
        eprintln!(
            "bench: {k} {} containers: {} shims, total VmRSS {:.1} MiB, Pss {:.1} MiB",
            rt.tag(),
            m.shims,
            m.rss_sum / 1024.0,
            m.pss_sum / 1024.0
        );
        out.push(m);
    }
    // Tear down in parallel (4 workers), untimed.
    std::thread::scope(|sc| {
        for w in 0..4 {
            let (ids, ns) = (&ids, &ns);
            sc.spawn(move || {
                for id in ids.iter().skip(w).step_by(4) {
                    let _ = b.teardown(ns, id);
                }
            });
        }
    });
    for id in &ids {
        b.wait_no_shim(id);
    }
    result.map(|()| out)
}

struct ConsoleResults {
    agent_link: Samples,
    echo_agent_link: Samples,
    raw_link: Samples,
    shim_agent: Samples,
    shim_raw: Samples,
    echo_link: Samples,
    echo_agent: Samples,
    echo_raw: Samples,
    agent_mem_after: Option<Mem>,
    raw_mem_after: Option<Mem>,
    raw_failure: Option<String>,
    /// Per flood: the fraction of bytes raw mode dropped.
    raw_lost: Samples,
    /// Per path: wall seconds of all its timed floods, and CPU seconds per process.
    cpu: Vec<CpuUse>,
}

const BANNER: &str = "micrun demo shell on sim";

/// A foreground `ctr run --rm` of the sim image, its console on our pipes.
fn shim_session(
    b: &Bench,
    ns: &Namespace<'_>,
    id: &str,
    raw: bool,
) -> Result<(Interactive, String), String> {
    let mut a: Vec<String> = vec![
        "run".into(),
        "--rm".into(),
        "--fifo-dir".into(),
        b.fifo(),
        "--runtime".into(),
        RUNTIME.into(),
        "--annotation".into(),
        format!("{ANN_PEDESTAL}=sim"),
        "--annotation".into(),
        format!("{ANN_AGENT}={}", if raw { "off" } else { "on" }),
    ];
    a.push(if raw {
        b.sim_raw_image.clone()
    } else {
        b.sim_image.clone()
    });
    a.push(id.into());
    let shown = format!(
        "ctr run --rm --runtime {RUNTIME} {} IMAGE ID",
        a[6..10].join(" ")
    );
    let mut s = Interactive::spawn(b.ctr(ns.name(), &a), format!("ctr run {id}"))?;
    s.wait_for(BANNER, T_ACT)?;
    s.wait_for("> ", T_ACT)?;
    b.cd.shim_sockets();
    Ok((s, shown))
}

fn flood_once(s: &mut dyn Term, n: u64) -> Result<f64, String> {
    let t0 = Instant::now();
    s.send(&format!("flood {n}\r"))?;
    // A stall is reported, not waited out: allow 1 MB/s, at least 20 s.
    let limit = Duration::from_secs((n / 1_000_000).max(20));
    let at = s.wait_for(&format!("flood done {n}\r\n"), limit)?;
    s.wait_for("> ", T_ACT)?;
    Ok(n as f64 / at.duration_since(t0).as_secs_f64())
}

/// A flood through a lossy path (raw mode drops what its buffer cannot hold):
/// the rate of the bytes that arrived, and the fraction that did not.
fn flood_lossy(s: &mut Interactive, n: u64) -> Result<(f64, f64), String> {
    let before = s.out.total;
    let t0 = Instant::now();
    s.send(&format!("flood {n}\r"))?;
    let trailer = format!("flood done {n}\r\n");
    let limit = Duration::from_secs((n / 1_000_000).max(20));
    let (at, found) =
        s.out
            .wait_for_or_idle(trailer.as_bytes(), Some(Duration::from_secs(1)), limit)?;
    if found {
        // The prompt may have been dropped too: do not wait long for it.
        let _ = s
            .out
            .wait_for_or_idle(b"> ", Some(Duration::from_millis(300)), T_ACT);
    }
    let got = (s.out.total - before) as f64;
    let sent = (n + trailer.len() as u64 + 4) as f64;
    Ok((
        got / at.duration_since(t0).as_secs_f64(),
        (1.0 - got / sent).max(0.0),
    ))
}

fn echo_once(s: &mut dyn Term, i: usize) -> Result<f64, String> {
    let token = format!("rt{i}z");
    let t0 = Instant::now();
    s.send(&format!("echo {token}\r"))?;
    let at = s.wait_for(&format!("{token}\r\n"), T_ACT)?;
    s.wait_for("> ", T_ACT)?;
    Ok(ms(at.duration_since(t0)))
}

fn console(b: &Bench, o: &Opts, builds: &Builds) -> Result<ConsoleResults, String> {
    let ns = b.cd.namespace("bench-console");
    b.import(&ns)?;
    let mut link = {
        let mut c = Command::new(&builds.sim);
        c.arg("--raw");
        Interactive::spawn(c, "micrun-rtos-sim --raw".into())?
    };
    link.wait_for("> ", T_ACT)?;
    let mut alink = AgentDriver::spawn(&builds.sim)?;
    let (mut agent, _) = shim_session(b, &ns, "console-agent", false)?;
    // Raw mode is informative: if it fails, say how and go on without it.
    let mut raw = Some(shim_session(b, &ns, "console-raw", true)?.0);
    let mut c = ConsoleResults {
        agent_link: Samples::default(),
        echo_agent_link: Samples::default(),
        raw_link: Samples::default(),
        shim_agent: Samples::default(),
        shim_raw: Samples::default(),
        echo_link: Samples::default(),
        echo_agent: Samples::default(),
        echo_raw: Samples::default(),
        agent_mem_after: None,
        raw_mem_after: None,
        raw_failure: None,
        raw_lost: Samples::default(),
        cpu: Vec::new(),
    };
    let raw_failed =
        |c: &mut ConsoleResults, raw: &mut Option<Interactive>, what: &str, e: String| {
            let got = raw.as_ref().map_or(0, |r| r.out.total);
            c.raw_failure = Some(format!(
                "{what}: {e}; {got} bytes read from this session in all; {}",
                diag_shim(b, "console-raw")
            ));
            eprintln!(
                "bench: raw mode through the shim failed: {}",
                c.raw_failure.as_deref().unwrap_or("")
            );
            *raw = None;
        };
    // Warm-up: one small flood and an echo on each path.
    {
        let all: [&mut dyn Term; 3] = [&mut link, &mut alink, &mut agent];
        for s in all {
            flood_once(s, 1 << 20)?;
            echo_once(s, 0)?;
        }
        if let Some(r) = raw.as_mut() {
            if let Err(e) = flood_lossy(r, 1 << 20).and_then(|_| echo_once(r, 0)) {
                raw_failed(&mut c, &mut raw, "warm-up", e);
            }
        }
    }
    let shim_pid = b.shim_pid("console-agent");
    let sim_pid = shim_pid.and_then(|p| children_of(p).first().copied());
    let mut m_agent = CpuMeter::new(&[
        ("shim", shim_pid),
        ("simulator", sim_pid),
        ("ctr", Some(agent.child.id())),
    ]);
    let mut m_alink = CpuMeter::new(&[("simulator", Some(alink.child.id()))]);
    let mut m_link = CpuMeter::new(&[("simulator", Some(link.child.id()))]);
    let mut wall = [Duration::ZERO; 3];
    for rep in 0..o.reps {
        m_link.resume();
        let t = Instant::now();
        c.raw_link.push(flood_once(&mut link, o.flood_bytes)?);
        wall[0] += t.elapsed();
        m_link.pause();
        m_alink.resume();
        let t = Instant::now();
        c.agent_link.push(flood_once(&mut alink, o.flood_bytes)?);
        wall[1] += t.elapsed();
        m_alink.pause();
        m_agent.resume();
        let t = Instant::now();
        c.shim_agent.push(flood_once(&mut agent, o.flood_bytes)?);
        wall[2] += t.elapsed();
        m_agent.pause();
        if let Some(r) = raw.as_mut() {
            match flood_lossy(r, o.flood_bytes) {
                Ok((v, lost)) => {
                    c.shim_raw.push(v);
                    c.raw_lost.push(lost);
                }
                Err(e) => raw_failed(
                    &mut c,
                    &mut raw,
                    &format!("flood repetition {}", rep + 1),
                    e,
                ),
            }
        }
        eprintln!(
            "bench: flood rep {}/{}: link {:.1} MB/s, agent link {:.1} MB/s, shim agent {:.1} MB/s, shim raw {}",
            rep + 1,
            o.reps,
            c.raw_link.0[rep] / 1e6,
            c.agent_link.0[rep] / 1e6,
            c.shim_agent.0[rep] / 1e6,
            if raw.is_some() {
                format!(
                    "{:.1} MB/s delivered, {:.1} % lost",
                    c.shim_raw.0.last().copied().unwrap_or(f64::NAN) / 1e6,
                    100.0 * c.raw_lost.0.last().copied().unwrap_or(f64::NAN)
                )
            } else {
                "failed".into()
            }
        );
    }
    for (name, m, w) in [
        ("the link alone (raw)", &m_link, wall[0]),
        ("the agent link alone", &m_alink, wall[1]),
        ("through the shim, agent mode", &m_agent, wall[2]),
    ] {
        c.cpu.push((name.to_string(), w.as_secs_f64(), m.seconds()));
    }
    for i in 0..o.echo_count {
        c.echo_link.push(echo_once(&mut link, i + 1)?);
        c.echo_agent_link.push(echo_once(&mut alink, i + 1)?);
        c.echo_agent.push(echo_once(&mut agent, i + 1)?);
        if let Some(r) = raw.as_mut() {
            match echo_once(r, i + 1) {
                Ok(v) => c.echo_raw.push(v),
                Err(e) => raw_failed(&mut c, &mut raw, &format!("echo {}", i + 1), e),
            }
        }
    }
    c.agent_mem_after = b.shim_pid("console-agent").and_then(mem_of);
    c.raw_mem_after = b.shim_pid("console-raw").and_then(mem_of);
    for s in [Some(&mut agent), raw.as_mut()].into_iter().flatten() {
        let _ = s.send("exit 0\r");
        s.stdin = None;
        s.wait_exit(Duration::from_secs(20));
    }
    drop(link);
    drop(alink);
    Ok(c)
}

/// One console path's timed floods: its name, the wall seconds of all of them,
/// and the CPU seconds each process of the path spent meanwhile.
type CpuUse = (String, f64, Vec<(String, f64)>);

/// CPU time (user + system) of `pid` so far, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// The children of every thread of `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in rd.flatten() {
            let c = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            v.extend(c.split_whitespace().filter_map(|x| x.parse::<u32>().ok()));
        }
    }
    v
}

/// CPU time of some processes over the spans between `resume` and `pause`.
struct CpuMeter(Vec<(String, u32, u64, u64)>);

impl CpuMeter {
    fn new(procs: &[(&str, Option<u32>)]) -> CpuMeter {
        CpuMeter(
            procs
                .iter()
                .filter_map(|(n, p)| p.map(|p| (n.to_string(), p, 0, 0)))
                .collect(),
        )
    }
    fn resume(&mut self) {
        for e in &mut self.0 {
            e.2 = cpu_ticks(e.1).unwrap_or(0);
        }
    }
    fn pause(&mut self) {
        for e in &mut self.0 {
            e.3 += cpu_ticks(e.1).unwrap_or(e.2).saturating_sub(e.2);
        }
    }
    /// Per process: CPU seconds spent in the spans.
    fn seconds(&self) -> Vec<(String, f64)> {
        self.0
            .iter()
            .map(|e| (e.0.clone(), e.3 as f64 / ticks_per_sec()))
            .collect()
    }
}

/// The pipes and FIFOs among `pid`'s open files and how many bytes wait in each
/// (FIONREAD on a read-only reopening through /proc; nothing is consumed).
fn pipes(pid: u32) -> String {
    let mut v = Vec::new();
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return String::new();
    };
    for e in rd.flatten() {
        let target = std::fs::read_link(e.path()).unwrap_or_default();
        let t = target.to_string_lossy();
        let is_fifo = std::fs::metadata(e.path())
            .map(|m| std::os::unix::fs::FileTypeExt::is_fifo(&m.file_type()))
            .unwrap_or(false);
        if !is_fifo {
            continue;
        }
        let fill = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(e.path())
            .ok()
            .and_then(|f| {
                let mut n: libc::c_int = 0;
                // SAFETY: FIONREAD writes one c_int through the valid pointer.
                let r = unsafe { libc::ioctl(f.as_raw_fd(), libc::FIONREAD, &mut n) };
                (r == 0).then_some(n)
            });
        v.push(format!(
            "fd {} {} holds {}",
            e.file_name().to_string_lossy(),
            t,
            fill.map_or("?".into(), |n| format!("{n} B"))
        ));
    }
    format!("pipes [{}]", v.join(", "))
}

/// What a stuck console session looks like from /proc: the shim's threads and its
/// children (the simulator), each with state and wait channel, and the
/// containerd log lines about `id`.
fn diag_shim(b: &Bench, id: &str) -> String {
    let Some(pid) = b.shim_pid(id) else {
        return format!("no shim process for {id}");
    };
    let threads = |pid: u32| -> String {
        let mut v = Vec::new();
        if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for t in rd.flatten() {
                let p = t.path();
                let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
                let wchan = std::fs::read_to_string(p.join("wchan")).unwrap_or_default();
                let stat = std::fs::read_to_string(p.join("stat")).unwrap_or_default();
                let state = stat
                    .rfind(')')
                    .and_then(|i| stat.get(i + 2..i + 3))
                    .unwrap_or("?")
                    .to_string();
                v.push(format!("{}:{state}:{}", comm.trim(), wchan.trim()));
            }
        }
        v.join(" ")
    };
    let mut s = format!("shim {pid} threads [{}]", threads(pid));
    // Children of every thread (the simulator is spawned by a service thread).
    for c in children_of(pid) {
        let _ = write!(
            s,
            "; child {c} {:?} [{}] {}",
            cmdline(c),
            threads(c),
            pipes(c)
        );
    }
    let _ = write!(s, "; shim {}", pipes(pid));
    let log = std::fs::read_to_string(b.cd.log_path()).unwrap_or_default();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(id)).collect();
    let _ = write!(
        s,
        "; containerd log about {id}: {}",
        lines[lines.len().saturating_sub(8)..].join(" | ")
    );
    s
}

/// What the flood and echo measurements need from a console.
trait Term {
    fn send(&mut self, text: &str) -> Result<(), String>;
    fn wait_for(&mut self, needle: &str, timeout: Duration) -> Result<Instant, String>;
}

impl Term for Interactive {
    fn send(&mut self, text: &str) -> Result<(), String> {
        Interactive::send(self, text)
    }
    fn wait_for(&mut self, needle: &str, timeout: Duration) -> Result<Instant, String> {
        Interactive::wait_for(self, needle, timeout)
    }
}

/// The simulator in agent mode on a pipe, driven by a host endpoint of the shim's
/// size (`micrun_shim::instance::LinkEndpoint`) in a tight poll(2) loop: the agent-mode link
/// without the shim, containerd's FIFOs or ctr.
struct AgentDriver {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    ep: Box<LinkEndpoint>,
    t0: Instant,
    console: Vec<u8>,
    frame: Vec<u8>,
    rbuf: Vec<u8>,
}

impl AgentDriver {
    fn spawn(sim: &Path) -> Result<AgentDriver, String> {
        let mut child = Command::new(sim)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {sim:?}: {e}"))?;
        let cfg = HostConfig {
            session: 0x5eed_0001,
            link: LinkKind::Stream,
            hello_interval_ms: 250,
            ..HostConfig::default()
        };
        let mut d = AgentDriver {
            stdin: child.stdin.take().ok_or("no stdin")?,
            stdout: child.stdout.take().ok_or("no stdout")?,
            child,
            ep: Box::new(HostEndpoint::new(cfg, 0)),
            t0: Instant::now(),
            console: Vec::new(),
            frame: vec![0; transmit_buf_len(LinkKind::Stream, MAX_FRAME)],
            rbuf: vec![0; 64 << 10],
        };
        d.wait_for("> ", T_ACT)?;
        if !d.ep.is_connected() {
            return Err("agent link: console output without a handshake".into());
        }
        Ok(d)
    }

    fn now(&self) -> u64 {
        self.t0.elapsed().as_millis() as u64
    }

    fn transmit(&mut self) -> Result<(), String> {
        let now = self.now();
        if self.ep.poll_timeout().is_some_and(|t| t <= now) {
            self.ep.handle_timeout(now);
        }
        while let Some(n) = self.ep.poll_transmit(now, &mut self.frame) {
            self.stdin
                .write_all(&self.frame[..n])
                .map_err(|e| format!("agent link: write: {e}"))?;
        }
        while self.ep.poll_event().is_some() {}
        Ok(())
    }

    /// Moves received console bytes into `console`; true if any arrived.
    fn take_console(&mut self) -> bool {
        let mut any = false;
        for st in [ConsoleStream::Stdout, ConsoleStream::Stderr] {
            loop {
                let n = self.ep.read_console(st, &mut self.rbuf);
                if n == 0 {
                    break;
                }
                any = true;
                self.console.extend_from_slice(&self.rbuf[..n]);
            }
        }
        any
    }
}

impl AgentDriver {
    /// One round: send what is due, take console output (which returns credit),
    /// send again, then wait up to `max_wait_ms` for link input and feed it.
    fn step(&mut self, max_wait_ms: u64) -> Result<(), String> {
        self.transmit()?;
        if self.take_console() {
            self.transmit()?;
        }
        let timer = self
            .ep
            .poll_timeout()
            .map_or(max_wait_ms, |t| t.saturating_sub(self.now()));
        let wait = timer.min(max_wait_ms).max(1) as i32;
        let mut pfd = libc::pollfd {
            fd: self.stdout.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, its count, a timeout.
        if unsafe { libc::poll(&mut pfd, 1, wait) } > 0 {
            match self.stdout.read(&mut self.rbuf) {
                Ok(0) => return Err("agent link: the simulator closed its stdout".into()),
                Ok(n) => {
                    let now = self.now();
                    self.ep.handle_input(now, &self.rbuf[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("agent link: read: {e}")),
            }
        }
        Ok(())
    }
}

impl Term for AgentDriver {
    fn send(&mut self, text: &str) -> Result<(), String> {
        let mut rest = text.as_bytes();
        let deadline = Instant::now() + T_ACT;
        loop {
            let n = self.ep.write_stdin(rest);
            rest = &rest[n..];
            self.transmit()?;
            if rest.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("agent link: console input never drained".into());
            }
            self.step(1)?;
        }
    }

    fn wait_for(&mut self, needle: &str, timeout: Duration) -> Result<Instant, String> {
        let needle = needle.as_bytes();
        let deadline = Instant::now() + timeout;
        let mut scan = 0;
        loop {
            if self.take_console() {
                self.transmit()?;
            }
            if let Some(i) = find(&self.console[scan..], needle) {
                let at = Instant::now();
                self.console.drain(..scan + i + needle.len());
                return Ok(at);
            }
            scan = self
                .console
                .len()
                .saturating_sub(needle.len().saturating_sub(1));
            if self.console.len() > (1 << 20) {
                let cut = scan.min(self.console.len() - 4096);
                self.console.drain(..cut);
                scan -= cut;
            }
            let now = Instant::now();
            if now >= deadline {
                let tail = &self.console[self.console.len().saturating_sub(300)..];
                return Err(format!(
                    "agent link: no {:?} (tail {:?}, state {:?})",
                    String::from_utf8_lossy(needle),
                    String::from_utf8_lossy(tail),
                    self.ep.state()
                ));
            }
            let left = deadline.duration_since(now).as_millis() as u64;
            self.step(left.min(50))?;
        }
    }
}

impl Drop for AgentDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// The report.

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| status_field(&t, "MemTotal:"))
        .map(|k| format!("{:.1} GiB", k / 1024.0 / 1024.0))
        .unwrap_or_default();
    let first_line = |prog: &str, arg: &str| {
        Command::new(prog)
            .arg(arg)
            .output()
            .ok()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string()
            })
            .unwrap_or_else(|| "?".into())
    };
    format!(
        "{cores} cores ({cpu}), {mem} RAM, kernel {kernel}; {}; {}; {}",
        first_line("containerd", "--version"),
        first_line("runc", "--version"),
        first_line("rustc", "-V"),
    )
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn verdict(pass: bool) -> &'static str {
    if pass {
        "**pass**"
    } else {
        "**FAIL**"
    }
}

/// `bytes ≤ limit MB`, judged in both units when they disagree (the targets say
/// "MB" without saying which).
fn mb_verdict(bytes: f64, limit: f64) -> String {
    match (bytes / 1048576.0 <= limit, bytes / 1e6 <= limit) {
        (true, true) => verdict(true).to_string(),
        (false, false) => verdict(false).to_string(),
        (true, false) => format!(
            "**pass** as {limit} MiB; **FAIL** as {limit} MB = {} B",
            limit * 1e6
        ),
        (false, true) => "?".to_string(),
    }
}

struct Report {
    machine: String,
    load_before: String,
    load_after: String,
    started: String,
    opts: Opts,
    builds: Builds,
    runc_shim_bytes: Option<u64>,
    life: Option<Lifecycle>,
    many: Vec<Many>,
    many_err: Vec<String>,
    console: Option<ConsoleResults>,
    errors: Vec<String>,
    commands: Vec<(String, String)>,
}

fn render(r: &Report) -> String {
    let mut s = String::new();
    let o = &r.opts;
    let _ = writeln!(
        s,
        "Generated by `tests/bench/run.sh` (`micrun-bench --reps {} --containers {} --flood-bytes {} --echo-count {}{}`) on {}.\n",
        o.reps,
        o.containers
            .iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
            .join(","),
        o.flood_bytes,
        o.echo_count,
        if o.size_breakdown { " --size-breakdown" } else { "" },
        r.started
    );
    let _ = writeln!(s, "**Machine:** {}.  ", r.machine);
    let _ = writeln!(
        s,
        "Load average before / after the run: {} / {}. Timings are medians over the repetitions; \
         micrun and runc runs are interleaved (alternating which goes first).\n",
        r.load_before, r.load_after
    );
    let _ = writeln!(
        s,
        "| # | measurement | micrun | comparator | micrun / comparator | target | result |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");

    // 1. size
    let b = &r.builds;
    match b.shim_bytes {
        Some(n) => {
            let mib = n as f64 / (1024.0 * 1024.0);
            let mb = n as f64 / 1e6;
            let res = mb_verdict(n as f64, 3.5);
            let _ = writeln!(
                s,
                "| 1 | static musl binary, stripped | {n} B = {mib:.2} MiB = {mb:.2} MB | Go MicRun {GO_MICRUN_STRIPPED_MB} MB (reference, not measured here){} | {:.2} | ≤ 3.5 MB | {res} |",
                r.runc_shim_bytes
                    .map(|x| format!("; Debian's Go `containerd-shim-runc-v2` {:.2} MB (measured)", x as f64 / 1e6))
                    .unwrap_or_default(),
                mb / GO_MICRUN_STRIPPED_MB,
            );
        }
        None => {
            let _ = writeln!(
                s,
                "| 1 | static musl binary, stripped | build failed (see below) | Go MicRun {GO_MICRUN_STRIPPED_MB} MB (reference) | — | ≤ 3.5 MB | {} |",
                verdict(false)
            );
        }
    }

    // 2. memory
    if let Some(l) = &r.life {
        let m = l.micrun.rss.median();
        let g = l.runc.rss.median();
        let _ = writeln!(
            s,
            "| 2a | shim VmRSS, 1 running container | {} | runc shim {} (measured); Go MicRun ≥ {GO_MICRUN_RSS_MB} MB (reference: the max RSS of its `-v` alone) | {:.2} (vs runc shim) | ≤ 4 MB | {} |",
            f_kib(m),
            f_kib(g),
            m / g,
            mb_verdict(m * 1024.0, 4.0)
        );
    }
    for k in &o.containers {
        let mm = r.many.iter().find(|m| m.rt == Rt::Micrun && m.k == *k);
        let rm = r.many.iter().find(|m| m.rt == Rt::Runc && m.k == *k);
        if let Some(m) = mm {
            let cmp = rm
                .map(|x| {
                    format!(
                        "runc shims: VmRSS {:.1} MiB, Pss {:.1} MiB",
                        x.rss_sum / 1024.0,
                        x.pss_sum / 1024.0
                    )
                })
                .unwrap_or_else(|| "—".into());
            let ratio = rm
                .map(|x| format!("{:.2} (Pss)", m.pss_sum / x.pss_sum))
                .unwrap_or_else(|| "—".into());
            let per = m.rss_sum / m.shims.max(1) as f64;
            let _ = writeln!(
                s,
                "| 2b | {k} concurrent containers: total shim memory | VmRSS {:.1} MiB, Pss {:.1} MiB ({} shims; {:.2} MiB VmRSS per shim) | {cmp} | {ratio} | ≤ 4 MB per shim | {} |",
                m.rss_sum / 1024.0,
                m.pss_sum / 1024.0,
                m.shims,
                per / 1024.0,
                if m.shims == *k {
                    mb_verdict(per * 1024.0, 4.0)
                } else {
                    format!("{} (only {} shims found)", verdict(false), m.shims)
                }
            );
        }
    }

    // 3. lifecycle
    if let Some(l) = &r.life {
        let (m, g) = (l.micrun.run_d.median(), l.runc.run_d.median());
        let _ = writeln!(
            s,
            "| 3a | `ctr run -d` → RUNNING | {} | runc {} | {:.2} | — | (informative) |",
            f_ms(m),
            f_ms(g),
            m / g
        );
        let (m, g) = (l.micrun.cycle.median(), l.runc.cycle.median());
        let _ = writeln!(
            s,
            "| 3b | run / kill / rm cycle | {} | runc {} | {:.2} | ratio ≤ 1.0 | {} |",
            f_ms(m),
            f_ms(g),
            m / g,
            verdict(m / g <= 1.0)
        );
    }

    // 4, 5. console
    if let Some(c) = &r.console {
        let (a, l) = (c.shim_agent.median(), c.raw_link.median());
        let al = c.agent_link.median();
        // The target compares like with like: the relay (containerd's FIFOs, ctr
        // and the shim) against the same link and protocol without it. What the
        // protocol itself costs on a pipe is row 4p.
        let _ = writeln!(
            s,
            "| 4 | console throughput, `flood {}`, agent mode, through the shim | {} | the same agent link without the shim (4a) {} | {:.0} % | ≥ 80 % | {} |",
            o.flood_bytes,
            f_mbs(a),
            f_mbs(al),
            100.0 * a / al,
            verdict(a / al >= 0.8)
        );
        let _ = writeln!(
            s,
            "| 4a | agent link alone (no shim): the simulator's agent on a pipe, the shim's `LinkEndpoint` in a tight loop | {} | — | — | — | (the comparator of 4) |",
            f_mbs(al),
        );
        let _ = writeln!(
            s,
            "| 4p | the protocol's cost on a pipe: agent link alone (4a) vs the raw link alone (`micrun-rtos-sim --raw` on a pipe) | {} | {} | {:.0} % | — | (informative; through the shim: {:.0} % of the raw link) |",
            f_mbs(al),
            f_mbs(l),
            100.0 * al / l,
            100.0 * a / l
        );
        let rw = c.shim_raw.median();
        let _ = writeln!(
            s,
            "| 4r | same, raw mode (`agent=off`): bytes that arrived | {}{}{} | the link alone {} | {:.0} % | — | {} |",
            f_mbs(rw),
            {
                let lossy = c.raw_lost.0.iter().filter(|&&x| x > 0.0).count();
                if lossy > 0 {
                    format!(
                        "; bytes dropped in {lossy} of {} floods (median loss {:.1} %, max {:.1} %)",
                        c.raw_lost.n(),
                        100.0 * c.raw_lost.median(),
                        100.0 * c.raw_lost.max()
                    )
                } else {
                    format!("; no byte lost in {} floods", c.raw_lost.n())
                }
            },
            if c.shim_raw.n() < o.reps {
                format!(" ({} of {} floods measured)", c.shim_raw.n(), o.reps)
            } else {
                String::new()
            },
            f_mbs(l),
            100.0 * rw / l,
            if c.raw_failure.is_some() {
                "**FAILED** (see below)"
            } else {
                "(informative)"
            }
        );
        let _ = writeln!(
            s,
            "| 5 | echo round trip (`echo x` → line), agent mode | {} | the link alone {}; agent link alone {}; raw mode through the shim {} | — | — | (informative) |",
            f_ms(c.echo_agent.median()),
            f_ms(c.echo_link.median()),
            f_ms(c.echo_agent_link.median()),
            f_ms(c.echo_raw.median())
        );
    }
    s.push('\n');

    // Notes on failures.
    if !b.shim_note.is_empty() {
        let _ = writeln!(s, "**Binary size:** {}\n", b.shim_note);
    }
    if let Some(f) = r.console.as_ref().and_then(|c| c.raw_failure.as_ref()) {
        let _ = writeln!(
            s,
            "**Raw mode through the shim failed:** {}\n",
            f.replace('\n', " ")
        );
    }
    for e in r.errors.iter().chain(&r.many_err) {
        let _ = writeln!(s, "**Not measured:** {}\n", e.replace('\n', " "));
    }

    // Details.
    let _ = writeln!(s, "#### Details (median, min, max, n)\n");
    if let Some(l) = &r.life {
        for (name, m, g) in [
            ("`ctr run -d`", &l.micrun.run_d, &l.runc.run_d),
            ("`ctr task kill -s SIGKILL`", &l.micrun.kill, &l.runc.kill),
            (
                "`ctr task rm -f` (waits for the exit)",
                &l.micrun.task_rm,
                &l.runc.task_rm,
            ),
            (
                "`ctr container rm`",
                &l.micrun.container_rm,
                &l.runc.container_rm,
            ),
            ("whole cycle", &l.micrun.cycle, &l.runc.cycle),
        ] {
            let _ = writeln!(
                s,
                "- {name}: micrun {}; runc {}",
                m.spread(f_ms),
                g.spread(f_ms)
            );
        }
        let _ = writeln!(
            s,
            "- tasks not yet RUNNING when `ctr run -d` returned: micrun {}, runc {} (of {})",
            l.micrun.not_running_at_return, l.runc.not_running_at_return, o.reps
        );
        let _ = writeln!(
            s,
            "- floors: one `ctr version` {}; exec of `containerd-shim-mica-v2 -v` {}; of `containerd-shim-runc-v2 -v` {} (Go MicRun `-v`: 8.2 ms, reference)",
            l.ctr_floor.spread(f_ms),
            l.spawn_micrun.spread(f_ms),
            l.spawn_runc.spread(f_ms)
        );
        for (name, p) in [("micrun shim", &l.micrun), ("runc shim", &l.runc)] {
            let _ = writeln!(
                s,
                "- {name}, {} ms after `ctr run -d`: VmRSS {}; RssAnon {}; RssFile {}; Pss {}; threads {}",
                o.settle.as_millis(),
                p.rss.spread(f_kib),
                f_kib(p.anon.median()),
                f_kib(p.file.median()),
                f_kib(p.pss.median()),
                p.threads.median()
            );
        }
        if !l.breakdown.is_empty() {
            let mut v: Vec<(&String, &f64)> = l.breakdown.iter().collect();
            v.sort_by(|a, b| b.1.total_cmp(a.1));
            let parts: Vec<String> = v
                .iter()
                .map(|(k, kib)| format!("{k} {kib:.0} KiB"))
                .collect();
            let _ = writeln!(
                s,
                "- micrun shim Rss by mapping (/proc/PID/smaps, first repetition): {}",
                parts.join("; ")
            );
        }
    }
    for m in &r.many {
        let _ = writeln!(
            s,
            "- {} × {}: {} shims, VmRSS sum {:.1} MiB, Pss sum {:.1} MiB; workload processes VmRSS sum {:.1} MiB; all started in {:.1} s, `ctr run -d` {}",
            m.k,
            m.rt.tag(),
            m.shims,
            m.rss_sum / 1024.0,
            m.pss_sum / 1024.0,
            m.workload_rss_sum / 1024.0,
            m.start_all.as_secs_f64(),
            m.run_d.spread(f_ms)
        );
    }
    if let Some(c) = &r.console {
        let _ = writeln!(
            s,
            "- flood {} B: link alone {}; agent link alone {}; shim agent {}; shim raw {}",
            o.flood_bytes,
            c.raw_link.spread(f_mbs),
            c.agent_link.spread(f_mbs),
            c.shim_agent.spread(f_mbs),
            c.shim_raw.spread(f_mbs)
        );
        let _ = writeln!(
            s,
            "- echo: link alone {}; agent link alone {}; shim agent {}; shim raw {}",
            c.echo_link.spread(f_ms),
            c.echo_agent_link.spread(f_ms),
            c.echo_agent.spread(f_ms),
            c.echo_raw.spread(f_ms)
        );
        for (path, wall, procs) in &c.cpu {
            let parts: Vec<String> = procs
                .iter()
                .map(|(n, sec)| format!("{n} {sec:.2} s ({:.0} % of a core)", 100.0 * sec / wall))
                .collect();
            let _ = writeln!(
                s,
                "- CPU during the timed floods, {path} ({wall:.2} s wall in all; utime+stime of /proc/PID/stat): {}",
                parts.join(", ")
            );
        }
        for (name, m) in [("agent", &c.agent_mem_after), ("raw", &c.raw_mem_after)] {
            if let Some(m) = m {
                let _ = writeln!(
                    s,
                    "- shim of the {name}-mode console session after the floods and echoes: VmRSS {}, peak VmHWM {}",
                    f_kib(m.rss_kib),
                    f_kib(m.hwm_kib)
                );
            }
        }
    }
    if !b.sections.is_empty() {
        let top: Vec<String> = b
            .sections
            .iter()
            .filter(|x| x.1 >= 16 * 1024)
            .map(|(k, v)| format!("{k} {:.0} KiB", *v as f64 / 1024.0))
            .collect();
        let _ = writeln!(
            s,
            "- binary size by ELF section (`readelf -SW`, sections ≥ 16 KiB): {}",
            top.join("; ")
        );
    }
    if let (Some(np), Some(n)) = (b.nopie, b.shim_bytes) {
        let _ = writeln!(
            s,
            "- the same build linked non-PIE (`-C relocation-model=static`: no `.rela.dyn`, `.data.rel.ro` needs no relocation at start): {np} B = {:.2} MiB = {:.2} MB ({:+.0} KiB)",
            np as f64 / 1048576.0,
            np as f64 / 1e6,
            (np as f64 - n as f64) / 1024.0
        );
    }
    if !b.size_breakdown.is_empty() {
        let total: u64 = b.size_breakdown.iter().map(|x| x.1).sum();
        let top: Vec<String> = b
            .size_breakdown
            .iter()
            .take(14)
            .map(|(k, v)| format!("{k} {:.0} KiB", *v as f64 / 1024.0))
            .collect();
        let _ = writeln!(
            s,
            "- binary size by crate (symbol sizes of an unstripped twin, `nm -S --size-sort`, {:.0} KiB attributed): {}",
            total as f64 / 1024.0,
            top.join("; ")
        );
    }

    // Commands.
    let _ = writeln!(
        s,
        "\n#### Commands\n\n`$A` = `--address <tmp>/containerd.sock --namespace <ns>`, `$F` = `--fifo-dir <tmp>/fifo`.\n"
    );
    for (k, v) in &r.commands {
        let _ = writeln!(s, "- {k}: {v}");
    }
    s
}

fn commands(r: &mut Report, bench_cmds: Vec<(String, String)>) {
    let b = &r.builds;
    let n = r.opts.flood_bytes;
    let mut c = vec![(
        "1 size".to_string(),
        format!(
            "`{}` then `stat -c %s target/bench/{MUSL}/release/{SHIM_NAME}`",
            b.shim_build_cmd
        ),
    )];
    if r.opts.size_breakdown {
        c.push((
            "1 size by section".into(),
            format!("`readelf -SW target/bench/{MUSL}/release/{SHIM_NAME}`"),
        ));
        let mut np = size_build_args("target/bench-nopie", true);
        np.extend(nopie_flags());
        c.push((
            "1 non-PIE variant".into(),
            format!("`{}`", shell_words("cargo", &np)),
        ));
        c.push((
            "1 size by crate".into(),
            format!(
                "`{}` (the same with symbols kept) then `nm -C -S --size-sort target/bench-symbols/{MUSL}/release/{SHIM_NAME}`, sizes summed by the first path segment of each symbol (generic code counts for the crate that defines it)",
                shell_words("cargo", &size_build_args("target/bench-symbols", false))
            ),
        ));
    }
    c.extend([
        (
            "2 memory".into(),
            "after `ctr run -d` and the settle time: `VmRSS`, `RssAnon`, `RssFile` of `/proc/<shim pid>/status`, `Pss` of `/proc/<shim pid>/smaps_rollup`; the shim is the process whose argv has `-address <tmp>/containerd.sock` and `-id <id>`".into(),
        ),
        (
            "3 micrun".into(),
            format!("`ctr $A run -d --null-io $F --runtime {RUNTIME} --annotation {ANN_PEDESTAL}=sim localhost/micrun/bench-sim:agent ID`, `ctr $A task kill -s SIGKILL ID`, `ctr $A task rm -f ID`, `ctr $A container rm ID`"),
        ),
        (
            "3 runc".into(),
            format!("`ctr $A run -d --null-io $F --runtime {RUNC_RUNTIME} localhost/micrun/bench-hello:static ID`, then the same kill / rm"),
        ),
        (
            "3 runc image".into(),
            "`gcc -static -O2 -s -o hello hello.c` (prints a line, then `sleep(3600)` forever), packed by `micrun_tests::oci::ImageBuilder` as `/hello`, Entrypoint `[\"/hello\"]`".into(),
        ),
        (
            "4 link alone".into(),
            format!("`target/bench/release/micrun-rtos-sim --raw` on stdin/stdout pipes: write `flood {n}\\r`, time until `flood done {n}` has been read"),
        ),
        (
            "4a agent link alone".into(),
            "`target/bench/release/micrun-rtos-sim` (agent mode) on stdin/stdout pipes, driven by the shim's `micrun_shim::instance::LinkEndpoint` in a poll(2) loop in the bench process; the same `flood` typed as console input".into(),
        ),
        (
            "4 through the shim".into(),
            format!("`ctr $A run --rm $F --runtime {RUNTIME} --annotation {ANN_PEDESTAL}=sim --annotation {ANN_AGENT}=on localhost/micrun/bench-sim:agent ID` with stdin/stdout pipes, the same `flood` typed and timed; raw mode: `{ANN_AGENT}=off` and image `bench-sim:raw` (Cmd `--raw`), bytes counted until the trailer or 1 s of silence"),
        ),
        (
            "5 echo".into(),
            "in the same sessions: write `echo rt<i>z\\r`, time until `rt<i>z\\r\\n` has been read".into(),
        ),
        (
            "simulator".into(),
            "`cargo build --release -p micrun-rtos-sim --bin micrun-rtos-sim --target-dir target/bench`".into(),
        ),
    ]);
    c.extend(bench_cmds);
    r.commands = c;
}

fn write_docs(path: &Path, block: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("read {path:?}: {e}"))?;
    let (Some(a), Some(z)) = (text.find(BEGIN), text.find(END)) else {
        return Err(format!("{path:?} has no `{BEGIN}` … `{END}` markers"));
    };
    if z < a {
        return Err(format!("{path:?}: `{END}` comes before `{BEGIN}`"));
    }
    let new = format!(
        "{}{BEGIN}\n{}\n{}",
        &text[..a],
        block.trim_end(),
        &text[z..]
    );
    let tmp = path.with_extension("md.tmp");
    std::fs::write(&tmp, new).map_err(|e| format!("write {tmp:?}: {e}"))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("rename {tmp:?}: {e}"))
}

fn main() {
    let o = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("micrun-bench: {e}");
            std::process::exit(2);
        }
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("micrun-bench: needs root (it runs a private containerd)");
        std::process::exit(2);
    }
    let started = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    // Everything made below is dropped (the daemon, its shims and workloads, the
    // temp dir) before the process exits.
    let code = run(o, started);
    std::process::exit(code);
}

/// The whole benchmark; the process's exit code.
fn run(o: Opts, started: String) -> i32 {
    let load_before = loadavg();
    let work = TempDir::new("bench");
    let builds = match build(&o, work.path()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("micrun-bench: build: {e}");
            return 1;
        }
    };
    let runc_shim_bytes = which("containerd-shim-runc-v2")
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.len());
    let bench = match Bench::setup(&builds, work.path()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("micrun-bench: setup: {e}");
            return 1;
        }
    };
    let mut errors = Vec::new();
    let phase = |p: &str| o.only.iter().any(|x| x == p);
    let life = if phase("lifecycle") {
        lifecycle(&bench, &o, &builds)
            .map_err(|e| errors.push(format!("lifecycle: {e}")))
            .ok()
    } else {
        None
    };
    let console = if phase("console") {
        eprintln!("bench: console throughput and echo");
        console(&bench, &o, &builds)
            .map_err(|e| errors.push(format!("console: {e}")))
            .ok()
    } else {
        None
    };
    let mut many_all = Vec::new();
    let mut many_err = Vec::new();
    let mut rts = Vec::new();
    if phase("many") {
        eprintln!("bench: concurrent containers {:?}", o.containers);
        rts.push(Rt::Micrun);
        if o.runc_many {
            rts.push(Rt::Runc);
        }
    }
    for rt in rts {
        match many(&bench, &o, rt) {
            Ok(v) => many_all.extend(v),
            Err(e) => many_err.push(format!("concurrent containers: {e}")),
        }
    }
    let mut report = Report {
        machine: machine(),
        load_before,
        load_after: loadavg(),
        started,
        opts: o.clone(),
        builds,
        runc_shim_bytes,
        life,
        many: many_all,
        many_err,
        console,
        errors,
        commands: Vec::new(),
    };
    let bench_cmds = bench.commands.clone();
    commands(&mut report, bench_cmds);
    let block = render(&report);
    drop(bench);
    println!("{block}");
    if let Some(p) = &o.write_docs {
        match write_docs(p, &block) {
            Ok(()) => eprintln!("bench: wrote {}", p.display()),
            Err(e) => {
                eprintln!("micrun-bench: {e}");
                return 1;
            }
        }
    }
    if !report.errors.is_empty() || !report.many_err.is_empty() {
        return 1;
    }
    0
}
