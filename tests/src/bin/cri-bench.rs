//! `cri-bench`: the Kubernetes rows of `docs/benchmarks.md`, measured through
//! containerd's own CRI plugin with the calls kubelet makes (`micrun_tests::cri`), on
//! a private containerd (Debian's 1.6) that registers the handlers `micrun` and
//! `runc`, micrun and runc side by side in one run.
//!
//! ```text
//! 6 pod start  RunPodSandbox → CreateContainer → StartContainer → the first console
//!              line in the CRI log file: an RTOS pod (sim pedestal, demo firmware)
//!              vs a runc pod running a static hello; interleaved, medians, ratio
//! 7 pod memory the shim of one RTOS pod (Pss, VmRSS) once its first line is logged;
//!              the processes it has (no pause process); a runc pod's shim + pause
//! 8 ExecSync   the round trip of `ExecSync(["stats"])` into a running RTOS pod (the
//!              demo shell's command through the agent) vs `ExecSync(["/stats"])` into
//!              a running runc pod (a static program that prints a line); interleaved
//! ```
//!
//! It measures the binaries it is given (`--shim`, `--sim`): `tests/bench/run.sh`
//! passes the ones `micrun-bench` built (the shipped musl build of the shim). Needs
//! root, `containerd`, `runc`, `gcc` with static libc. Prints a markdown block; with
//! `--write-docs FILE` replaces the text between `<!-- cri-bench:begin -->` and
//! `<!-- cri-bench:end -->` in FILE with it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use micrun_tests::containerd::{Containerd, ContainerdOpts};
use micrun_tests::cri::{self, Cri, K8S_NAMESPACE};
use micrun_tests::e2e::{cmdline, MicrunConfig, ANN_PEDESTAL, SHIM_NAME};
use micrun_tests::oci::ImageBuilder;
use micrun_tests::TempDir;

const USAGE: &str = "\
usage: cri-bench --shim PATH --sim PATH [--reps N] [--settle-ms N] [--write-docs FILE]

  --shim PATH        the containerd-shim-mica-v2 to measure
  --sim PATH         the micrun-rtos-sim binary (the RTOS image's firmware)
  --reps N           pod starts of each runtime (default 10)
  --settle-ms N      wait after the first log line before reading memory (default 1000)
  --write-docs FILE  replace the block between <!-- cri-bench:begin --> and
                     <!-- cri-bench:end --> in FILE with the results
";

const BEGIN: &str = "<!-- cri-bench:begin -->";
const END: &str = "<!-- cri-bench:end -->";
/// The demo firmware's first console line on the sim pedestal.
const BANNER: &str = "micrun demo shell on sim";
/// The runc pod's first (and only) line.
const HELLO: &str = "hello from a static C binary";
/// Target of row 6 (issue 9): micrun's pod start ≤ this × runc's.
const POD_START_RATIO: f64 = 0.25;
/// Target of row 7: the same budget as one shim with one container (row 2a).
const POD_MEMORY_MB: f64 = 4.0;
/// Target of row 8 (issue 9): the median ExecSync round trip on the sim pedestal.
const EXEC_SYNC_MS: f64 = 20.0;
/// ExecSync round trips per `--reps` (they are short).
const EXEC_REPS_PER_REP: usize = 3;
/// How long the first log line may take.
const FIRST_LINE_DEADLINE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
struct Opts {
    shim: PathBuf,
    sim: PathBuf,
    reps: usize,
    settle: Duration,
    write_docs: Option<PathBuf>,
}

fn parse_opts() -> Result<Opts, String> {
    let mut shim = None;
    let mut sim = None;
    let mut o = Opts {
        shim: PathBuf::new(),
        sim: PathBuf::new(),
        reps: 10,
        settle: Duration::from_millis(1000),
        write_docs: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--shim" => shim = Some(PathBuf::from(val("--shim")?)),
            "--sim" => sim = Some(PathBuf::from(val("--sim")?)),
            "--reps" => {
                o.reps = val("--reps")?
                    .parse()
                    .map_err(|_| "--reps: a count".to_string())?;
            }
            "--settle-ms" => {
                o.settle = Duration::from_millis(
                    val("--settle-ms")?
                        .parse()
                        .map_err(|_| "--settle-ms: milliseconds".to_string())?,
                );
            }
            "--write-docs" => o.write_docs = Some(PathBuf::from(val("--write-docs")?)),
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    let canon = |p: Option<PathBuf>, name: &str| {
        let p = p.ok_or_else(|| format!("{name} is required\n{USAGE}"))?;
        std::fs::canonicalize(&p).map_err(|e| format!("{name} {}: {e}", p.display()))
    };
    o.shim = canon(shim, "--shim")?;
    o.sim = canon(sim, "--sim")?;
    if o.reps == 0 {
        return Err("--reps: at least 1".into());
    }
    Ok(o)
}

// ---------------------------------------------------------------------------
// Statistics (the same presentation as micrun-bench's).

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
    fn spread(&self, fmt: impl Fn(f64) -> String) -> String {
        let v = self.sorted();
        format!(
            "{} (min {}, max {}, n={})",
            fmt(self.median()),
            fmt(v.first().copied().unwrap_or(f64::NAN)),
            fmt(v.last().copied().unwrap_or(f64::NAN)),
            v.len()
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

fn verdict(pass: bool) -> &'static str {
    if pass {
        "**pass**"
    } else {
        "**FAIL**"
    }
}

// ---------------------------------------------------------------------------
// Processes.

fn status_field(text: &str, key: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// (VmRSS, Pss) of `pid` in KiB.
fn mem_of(pid: u32) -> Option<(f64, f64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let r = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    Some((status_field(&s, "VmRSS:")?, status_field(&r, "Pss:")?))
}

/// The children of `pid` (from `/proc/*/stat`).
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // `pid (comm) state ppid …`: comm may hold spaces; split after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

fn date_utc() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn first_line(prog: &str, arg: &str) -> String {
    Command::new(prog)
        .arg(arg)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

// ---------------------------------------------------------------------------
// The bench.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rt {
    Micrun,
    Runc,
}

impl Rt {
    fn tag(self) -> &'static str {
        match self {
            Rt::Micrun => "micrun",
            Rt::Runc => "runc",
        }
    }
}

struct Bench {
    cd: Containerd,
    cri: Cri,
    work: PathBuf,
    sim_image: String,
    hello_image: String,
}

/// The timings of one pod start, and its memory.
#[derive(Default)]
struct PerRt {
    run_pod: Samples,
    create: Samples,
    start: Samples,
    first_line: Samples,
    total: Samples,
    teardown: Samples,
    shim_rss: Samples,
    shim_pss: Samples,
    /// runc: the pause process's Pss (micrun has none).
    pause_pss: Samples,
    /// Pause programs among the shim's children, per pod.
    pause_procs: Samples,
    /// Children of the pod's shim, per pod.
    shim_children: Samples,
    shims_per_pod: Samples,
}

/// Builds a static C program `name` from `body` (the inside of `main`).
fn build_static(work: &Path, name: &str, body: &str) -> Result<PathBuf, String> {
    let src = work.join(format!("{name}.c"));
    std::fs::write(
        &src,
        format!("#include <stdio.h>\n#include <unistd.h>\nint main(void) {{\n{body}\n}}\n"),
    )
    .map_err(|e| e.to_string())?;
    let exe = work.join(name);
    let st = Command::new("gcc")
        .args(["-static", "-O2", "-s", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .map_err(|e| format!("cannot run gcc: {e}"))?;
    if !st.success() {
        return Err(format!(
            "gcc -static {name}.c failed (libc6-dev installed?)"
        ));
    }
    Ok(exe)
}

/// The runc pod's programs: `/hello` prints a line, then sleeps; `/stats` (its
/// ExecSync command) prints a line and exits.
fn build_runc_programs(work: &Path) -> Result<(PathBuf, PathBuf), String> {
    let hello = build_static(
        work,
        "hello",
        &format!("  printf(\"{HELLO}\\n\");\n  fflush(stdout);\n  for (;;) sleep(3600);"),
    )?;
    let stats = build_static(work, "stats", "  printf(\"uptime 1 s\\n\");\n  return 0;")?;
    Ok((hello, stats))
}

impl Bench {
    fn setup(o: &Opts, work: &Path) -> Result<Bench, String> {
        let shim_dir = work.join("shim");
        std::fs::create_dir_all(&shim_dir).map_err(|e| e.to_string())?;
        std::os::unix::fs::symlink(&o.shim, shim_dir.join(SHIM_NAME)).map_err(|e| e.to_string())?;
        // The shipped defaults, plus what the sim pedestal needs (as micrun-bench).
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
        let sim = std::fs::read(&o.sim).map_err(|e| e.to_string())?;
        let (hello, stats) = build_runc_programs(work)?;
        let hello = std::fs::read(hello).map_err(|e| e.to_string())?;
        let stats = std::fs::read(stats).map_err(|e| e.to_string())?;
        let sim_image = "localhost/micrun/bench-sim:agent".to_string();
        let hello_image = "localhost/micrun/bench-hello:static".to_string();
        let images = [
            ImageBuilder::new(sim_image.clone())
                .file("/firmware.elf", sim, 0o755)
                .entrypoint(["/firmware.elf"]),
            ImageBuilder::new(hello_image.clone())
                .file("/hello", hello, 0o755)
                .file("/stats", stats, 0o755)
                .entrypoint(["/hello"]),
        ];
        let pause = cri::pause_image();
        let pause_tar = work.join("pause.tar");
        std::fs::write(&pause_tar, pause.tar.as_slice()).map_err(|e| e.to_string())?;
        let mut tars = vec![pause_tar];
        for (i, img) in images.iter().enumerate() {
            let tar = work.join(format!("image{i}.tar"));
            img.write_tar(&tar).map_err(|e| e.to_string())?;
            tars.push(tar);
        }
        for tar in &tars {
            cd.ctr_ok(
                Some(K8S_NAMESPACE),
                &["images", "import", &tar.to_string_lossy()],
            )
            .map_err(|e| e.to_string())?;
        }
        let cri = Cri::connect(&cd.address())?;
        Ok(Bench {
            cd,
            cri,
            work: work.to_path_buf(),
            sim_image,
            hello_image,
        })
    }

    /// The runtime handler, image, first log line and pod annotations of a pod of `rt`.
    fn pod_kind(&self, rt: Rt) -> (&str, &str, &str, &'static [(&'static str, &'static str)]) {
        match rt {
            Rt::Micrun => (
                cri::HANDLER,
                &self.sim_image,
                BANNER,
                &[(ANN_PEDESTAL, "sim")],
            ),
            Rt::Runc => ("runc", &self.hello_image, HELLO, &[]),
        }
    }

    fn shim_of(&self, pod: &str) -> Option<u32> {
        self.cd.shim_pids().into_iter().find(|&pid| {
            let a = cmdline(pid);
            a.windows(2).any(|w| w[0] == "-id" && w[1] == pod)
        })
    }

    fn shims_of(&self, pod: &str) -> usize {
        self.cd
            .shim_pids()
            .into_iter()
            .filter(|&pid| cmdline(pid).iter().any(|a| a == pod))
            .count()
    }

    fn diag(&self) -> String {
        format!("\n--- containerd log ---\n{}", self.cd.log_tail(20))
    }

    /// One pod start of `rt`: RunPodSandbox → CreateContainer → StartContainer → the
    /// first line in the CRI log; then (with `measure`) its memory; then StopPodSandbox
    /// and RemovePodSandbox, waiting until the pod's shim has exited.
    fn pod_start(&self, rt: Rt, name: &str, settle: Duration, p: &mut PerRt) -> Result<(), String> {
        let log_dir = self.work.join("pods").join(name);
        std::fs::create_dir_all(&log_dir).map_err(|e| e.to_string())?;
        let (handler, image, first, ann) = self.pod_kind(rt);
        let pod_config = cri::pod_config(name, &log_dir, ann);
        let config = cri::container_config("c", image, &[]);
        let log = log_dir.join("c/0.log");

        let t0 = Instant::now();
        let pod = self
            .cri
            .run_pod(&pod_config, handler)
            .map_err(|e| format!("RunPodSandbox {name}: {e:?}{}", self.diag()))?;
        let t1 = Instant::now();
        let result = (|| {
            let cid = self
                .cri
                .create_container(&pod, &config, &pod_config)
                .map_err(|e| format!("CreateContainer in {name}: {e:?}{}", self.diag()))?;
            let t2 = Instant::now();
            self.cri
                .start_container(&cid)
                .map_err(|e| format!("StartContainer in {name}: {e:?}{}", self.diag()))?;
            let t3 = Instant::now();
            // Polled every 100 µs: the file is small until the first line lands.
            loop {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if text.contains(first) {
                    break;
                }
                if t3.elapsed() > FIRST_LINE_DEADLINE {
                    return Err(format!(
                        "{name}: no {first:?} in {} after {FIRST_LINE_DEADLINE:?}: {text:?}{}",
                        log.display(),
                        self.diag()
                    ));
                }
                std::thread::sleep(Duration::from_micros(100));
            }
            let t4 = Instant::now();
            p.run_pod.push(ms(t1 - t0));
            p.create.push(ms(t2 - t1));
            p.start.push(ms(t3 - t2));
            p.first_line.push(ms(t4 - t3));
            p.total.push(ms(t4 - t0));

            std::thread::sleep(settle);
            let shim = self
                .shim_of(&pod)
                .ok_or_else(|| format!("{name}: no shim with -id {pod}"))?;
            let (rss, pss) = mem_of(shim).ok_or_else(|| format!("no /proc/{shim}"))?;
            p.shim_rss.push(rss);
            p.shim_pss.push(pss);
            p.shims_per_pod.push(self.shims_of(&pod) as f64);
            let children = children_of(shim);
            p.shim_children.push(children.len() as f64);
            // A pause program among the shim's children (runc runs the sandbox's
            // `/pause` there; the containers' processes are the shim's children as
            // it is their subreaper). Its /proc/<pid>/exe is inside the container's
            // root, so it is told by its argv.
            let pause: Vec<u32> = children
                .into_iter()
                .filter(|&c| cmdline(c).first().is_some_and(|a| a.ends_with("/pause")))
                .collect();
            p.pause_procs.push(pause.len() as f64);
            let pause_pss = pause
                .iter()
                .filter_map(|&pid| mem_of(pid).map(|m| m.1))
                .fold(0.0, |a, b| a + b);
            p.pause_pss.push(pause_pss);
            Ok(())
        })();
        let t5 = Instant::now();
        let stop = self.cri.stop_pod(&pod);
        let remove = self.cri.remove_pod(&pod);
        if result.is_ok() {
            stop.map_err(|e| format!("StopPodSandbox {name}: {e:?}{}", self.diag()))?;
            remove.map_err(|e| format!("RemovePodSandbox {name}: {e:?}{}", self.diag()))?;
            p.teardown.push(ms(t5.elapsed()));
        }
        // The next start runs on a quiet machine: this pod's shim has exited.
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.shim_of(&pod).is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        result
    }

    // ---- ExecSync round trip (row 8) -------------------------------------------

    /// Starts a pod of `rt` with its container and waits for its first line;
    /// returns (pod, container).
    fn running_pod(&self, rt: Rt, name: &str) -> Result<(String, String), String> {
        let log_dir = self.work.join("pods").join(name);
        std::fs::create_dir_all(&log_dir).map_err(|e| e.to_string())?;
        let (handler, image, first, ann) = self.pod_kind(rt);
        let pod_config = cri::pod_config(name, &log_dir, ann);
        let config = cri::container_config("c", image, &[]);
        let pod = self
            .cri
            .run_pod(&pod_config, handler)
            .map_err(|e| format!("RunPodSandbox {name}: {e:?}{}", self.diag()))?;
        let started = (|| {
            let cid = self
                .cri
                .create_container(&pod, &config, &pod_config)
                .map_err(|e| format!("CreateContainer in {name}: {e:?}{}", self.diag()))?;
            self.cri
                .start_container(&cid)
                .map_err(|e| format!("StartContainer in {name}: {e:?}{}", self.diag()))?;
            let log = log_dir.join("c/0.log");
            let t = Instant::now();
            while !std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains(first)
            {
                if t.elapsed() > FIRST_LINE_DEADLINE {
                    return Err(format!("{name}: no {first:?} in {}", log.display()));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(cid)
        })();
        match started {
            Ok(cid) => Ok((pod, cid)),
            Err(e) => {
                self.remove_pod(&pod);
                Err(e)
            }
        }
    }

    fn remove_pod(&self, pod: &str) {
        let _ = self.cri.stop_pod(pod);
        let _ = self.cri.remove_pod(pod);
    }

    /// One `ExecSync` of `cmd` in `cid`: its round trip in ms, checked for exit
    /// code 0 and `want` in its stdout.
    fn exec_once(&self, cid: &str, cmd: &[&str], want: &str) -> Result<f64, String> {
        let t = Instant::now();
        let r = self
            .cri
            .exec_sync(cid, cmd, 10)
            .map_err(|e| format!("ExecSync {cmd:?}: {e:?}{}", self.diag()))?;
        let took = ms(t.elapsed());
        let out = String::from_utf8_lossy(&r.stdout);
        if r.exit_code != 0 || !out.contains(want) {
            return Err(format!(
                "ExecSync {cmd:?}: exit code {}, stdout {out:?}, stderr {:?}",
                r.exit_code,
                String::from_utf8_lossy(&r.stderr)
            ));
        }
        Ok(took)
    }

    /// Row 8: `reps` ExecSync round trips into one running pod of each runtime,
    /// alternating, after one untimed exec each.
    fn exec_sync(&self, reps: usize, r: &mut Report) -> Result<(), String> {
        let (mpod, mcid) = self.running_pod(Rt::Micrun, "exec-micrun")?;
        let result = (|| {
            let (rpod, rcid) = self.running_pod(Rt::Runc, "exec-runc")?;
            let result = (|| {
                let micrun = || self.exec_once(&mcid, &["stats"], "uptime");
                let runc = || self.exec_once(&rcid, &["/stats"], "uptime");
                micrun()?;
                runc()?;
                for rep in 0..reps {
                    if rep % 2 == 0 {
                        r.exec_sync.push(micrun()?);
                        r.exec_sync_runc.push(runc()?);
                    } else {
                        r.exec_sync_runc.push(runc()?);
                        r.exec_sync.push(micrun()?);
                    }
                }
                Ok(())
            })();
            self.remove_pod(&rpod);
            result
        })();
        self.remove_pod(&mpod);
        result
    }
}

struct Report {
    started: String,
    machine: String,
    load_before: String,
    load_after: String,
    opts: Opts,
    micrun: PerRt,
    runc: PerRt,
    /// Row 8: ExecSync round trips (ms) into the RTOS pod, and into the runc pod.
    exec_sync: Samples,
    exec_sync_runc: Samples,
}

fn run(o: &Opts, work: &Path, r: &mut Report) -> Result<(), String> {
    let b = Bench::setup(o, work)?;
    // One untimed warm-up of each (page cache, snapshots, the CRI plugin's caches).
    for rt in [Rt::Micrun, Rt::Runc] {
        b.pod_start(
            rt,
            &format!("warm-{}", rt.tag()),
            Duration::ZERO,
            &mut PerRt::default(),
        )?;
    }
    for rep in 0..o.reps {
        let order = if rep % 2 == 0 {
            [Rt::Micrun, Rt::Runc]
        } else {
            [Rt::Runc, Rt::Micrun]
        };
        for rt in order {
            let p = match rt {
                Rt::Micrun => &mut r.micrun,
                Rt::Runc => &mut r.runc,
            };
            b.pod_start(rt, &format!("{}-{rep}", rt.tag()), o.settle, p)?;
        }
        eprintln!(
            "cri-bench: rep {}/{}: pod start micrun {:.1} ms, runc {:.1} ms",
            rep + 1,
            o.reps,
            r.micrun.total.0.last().unwrap_or(&f64::NAN),
            r.runc.total.0.last().unwrap_or(&f64::NAN)
        );
    }
    b.exec_sync(o.reps * EXEC_REPS_PER_REP, r)?;
    eprintln!(
        "cri-bench: ExecSync micrun {:.1} ms, runc {:.1} ms (medians)",
        r.exec_sync.median(),
        r.exec_sync_runc.median()
    );
    Ok(())
}

fn render(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Generated by `tests/bench/run.sh` (`cri-bench --reps {} --settle-ms {}`) on {}.\n",
        r.opts.reps,
        r.opts.settle.as_millis(),
        r.started
    );
    let _ = writeln!(s, "**Machine:** {}.  ", r.machine);
    let _ = writeln!(
        s,
        "Load average before / after the run: {} / {}. Timings are medians over the repetitions; micrun and runc pods are interleaved (alternating which goes first).\n",
        r.load_before, r.load_after
    );
    let _ = writeln!(
        s,
        "| # | measurement | micrun | comparator | micrun / comparator | target | result |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    let (m, c) = (&r.micrun, &r.runc);
    let ratio = m.total.median() / c.total.median();
    let _ = writeln!(
        s,
        "| 6 | pod start: RunPodSandbox → CreateContainer → StartContainer → first console line in the CRI log | {} (sim pedestal, demo firmware) | runc pod, static hello: {} | {ratio:.2} | ≤ {POD_START_RATIO} | {} |",
        f_ms(m.total.median()),
        f_ms(c.total.median()),
        verdict(ratio <= POD_START_RATIO)
    );
    let pss = m.shim_pss.median();
    let runc_pod = c.shim_pss.median() + c.pause_pss.median();
    let _ = writeln!(
        s,
        "| 7 | memory of one RTOS pod: its shim (one process serves the sandbox and the container; no pause process) | Pss {}, VmRSS {}; pause processes: {} | runc pod: shim Pss {} + pause Pss {} = {} | {:.2} (Pss) | ≤ {POD_MEMORY_MB} MB | {} |",
        f_kib(pss),
        f_kib(m.shim_rss.median()),
        m.pause_procs.sorted().last().copied().unwrap_or(f64::NAN),
        f_kib(c.shim_pss.median()),
        f_kib(c.pause_pss.median()),
        f_kib(runc_pod),
        pss / runc_pod,
        verdict(m.shim_rss.median() * 1024.0 <= POD_MEMORY_MB * 1e6)
    );
    let (e, ec) = (r.exec_sync.median(), r.exec_sync_runc.median());
    let _ = writeln!(
        s,
        "| 8 | ExecSync round trip (exec probe): `[\"stats\"]` in a running RTOS pod, through the agent (sim pedestal) | {} | runc pod, `[\"/stats\"]` (static, prints a line): {} | {:.2} | ≤ {EXEC_SYNC_MS} ms median | {} |",
        f_ms(e),
        f_ms(ec),
        e / ec,
        verdict(e <= EXEC_SYNC_MS)
    );
    let _ = writeln!(s, "\n#### Details (median, min, max, n)\n");
    for (tag, p) in [("micrun", m), ("runc", c)] {
        let _ = writeln!(
            s,
            "- {tag} pod start: RunPodSandbox {}; CreateContainer {}; StartContainer {}; StartContainer returned → first line in the CRI log {}; whole {}; StopPodSandbox + RemovePodSandbox {}",
            p.run_pod.spread(f_ms),
            p.create.spread(f_ms),
            p.start.spread(f_ms),
            p.first_line.spread(f_ms),
            p.total.spread(f_ms),
            p.teardown.spread(f_ms)
        );
    }
    let _ = writeln!(
        s,
        "- ExecSync round trip: micrun {}; runc {}",
        r.exec_sync.spread(f_ms),
        r.exec_sync_runc.spread(f_ms)
    );
    let _ = writeln!(
        s,
        "- RTOS pod shim Pss {}; RTOS pod shim VmRSS {}; shims serving the pod: {}; the shim's child processes: {} (the sim partition); pause processes: {}",
        m.shim_pss.spread(f_kib),
        m.shim_rss.spread(f_kib),
        m.shims_per_pod.spread(|v| format!("{v:.0}")),
        m.shim_children.spread(|v| format!("{v:.0}")),
        m.pause_procs.spread(|v| format!("{v:.0}"))
    );
    let _ = writeln!(
        s,
        "- runc pod: shim Pss {}; shim VmRSS {}; the shim's child processes: {} (pause and hello); the pause process's Pss {}; pause processes: {}",
        c.shim_pss.spread(f_kib),
        c.shim_rss.spread(f_kib),
        c.shim_children.spread(|v| format!("{v:.0}")),
        c.pause_pss.spread(f_kib),
        c.pause_procs.spread(|v| format!("{v:.0}"))
    );
    let _ = writeln!(s, "\n#### Commands\n");
    let _ = writeln!(
        s,
        "- daemon: the private containerd of `micrun_tests::containerd` (Debian's 1.6, `version = 2` config: CRI handlers `runc` and `micrun` → `io.containerd.mica.v2` with `pod_annotations`/`container_annotations = [\"org.openeuler.micrun.*\"]`, `sandbox_image = \"localhost/micrun/pause:1\"` (`tests/c/pause.c`, static), `restrict_oom_score_adj = true`), `MICRUN_CONFIG` with the sim pedestal enabled, as `micrun-bench`"
    );
    let _ = writeln!(
        s,
        "- 6 micrun: CRI `RunPodSandbox` (`runtime_handler: micrun`, the pod annotation `org.openeuler.micrun.ped.pedestal=sim`, host network: `micrun_tests::cri::pod_config`), `CreateContainer` (image `localhost/micrun/bench-sim:agent`: `micrun-rtos-sim` as `/firmware.elf`, Entrypoint; no command: `cri::container_config`), `StartContainer`, then the CRI log `<log_directory>/c/0.log` read every 100 µs until it holds `{BANNER}`"
    );
    let _ = writeln!(
        s,
        "- 6 runc: the same calls with `runtime_handler: runc` and image `localhost/micrun/bench-hello:static` (`gcc -static -O2 -s` hello: prints `{HELLO}`, then sleeps), until the log holds that line; every pod is then removed with `StopPodSandbox` + `RemovePodSandbox` and its shim has exited before the next starts"
    );
    let _ = writeln!(
        s,
        "- 7: {} ms after the first line: `VmRSS` of `/proc/<shim>/status` and `Pss` of `/proc/<shim>/smaps_rollup`, the shim being the process whose argv has `-id <pod sandbox id>`; its children from `/proc/*/stat` (the shim is the subreaper of what it runs); a pause process is a child whose argv[0] ends in `/pause` (the sandbox image's Entrypoint), its `Pss` likewise",
        r.opts.settle.as_millis()
    );
    let _ = writeln!(
        s,
        "- 8: one pod of each runtime started as in 6 and left running; one untimed `ExecSync` each, then {} of each alternating (which goes first alternates), `timeout: 10`; each answer checked for exit code 0 and `uptime` in its stdout; the time is `ExecSync` called → returned",
        r.exec_sync.0.len()
    );
    s
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
            eprintln!("cri-bench: {e}");
            std::process::exit(2);
        }
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("cri-bench: needs root (it runs a private containerd)");
        std::process::exit(2);
    }
    let mut r = Report {
        started: date_utc(),
        machine: format!(
            "{} cores, kernel {}; {}; {}",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim(),
            first_line("containerd", "--version"),
            first_line("runc", "--version")
        ),
        load_before: loadavg(),
        load_after: String::new(),
        opts: o.clone(),
        micrun: PerRt::default(),
        runc: PerRt::default(),
        exec_sync: Samples::default(),
        exec_sync_runc: Samples::default(),
    };
    let code = {
        // Dropped (daemon, shims, pods, temp dir) before the process exits.
        let work = TempDir::new("cri-bench");
        match run(&o, work.path(), &mut r) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("cri-bench: {e}");
                1
            }
        }
    };
    if code != 0 {
        std::process::exit(code);
    }
    r.load_after = loadavg();
    let block = render(&r);
    println!("{block}");
    if let Some(p) = &o.write_docs {
        if let Err(e) = write_docs(p, &block) {
            eprintln!("cri-bench: {e}");
            std::process::exit(1);
        }
        eprintln!("cri-bench: wrote {}", p.display());
    }
}
