//! `soak`: lifecycle cycles and a parallel load on a private containerd (the test
//! harness's [`Env`]), with what containerd and the host hold before and after
//! each phase. Run by tests/soak/run.sh; see docs/reliability.md.
//!
//! ```text
//! soak [--cycles-sim N] [--cycles-qemu N] [--parallel N] [--write-docs FILE]
//! ```
//!
//! Phases: `sim` and `qemu` cycles (`ctr run --rm` in the foreground, the shell
//! told `exit 0` on stdin: create, start, console, exit, delete), then `parallel`
//! (N `ctr run -d` on sim at once, all RUNNING, SIGKILL, `ctr task rm`,
//! `ctr container rm`). Per phase: failures (with the first messages), shim start
//! failures, containerd's open fds, threads and RSS before and after, and what is
//! left: processes naming the phase's namespace (shims, simulators, QEMU), mounts
//! under containerd's state dir, shim sockets under /run/containerd, entries
//! under micrun's state dir, FIFOs in ctr's FIFO dir.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use micrun_tests::containerd::TaskState;
use micrun_tests::e2e::{mounts_under, processes_mentioning, Env, Ped, RUNTIME};
use micrun_tests::scenarios::image_and_args;

#[derive(Default)]
struct Daemon {
    fds: usize,
    threads: usize,
    rss_kib: usize,
}

fn daemon(env: &Env) -> Daemon {
    let Some(pid) = env.cd.pid() else {
        return Daemon::default();
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Daemon {
        fds,
        threads: field("Threads:"),
        rss_kib: field("VmRSS:"),
    }
}

struct Phase {
    name: String,
    runs: usize,
    failures: Vec<String>,
    shim_start_failures: usize,
    before: Daemon,
    after: Daemon,
    left: Vec<String>,
    took: Duration,
    /// The shim's log lines of this phase's containers about output left
    /// unread in their FIFOs at the end (see `late_readers`).
    unread: Unread,
}

/// Containers whose end waited for a late reader of their output (the shim
/// logs "… was read N after the end"), the longest wait, and those whose
/// output nobody read ("… were not read within").
#[derive(Default)]
struct Unread {
    waited: usize,
    longest: String,
    dropped: usize,
}

/// What the shim logged about output left unread at the end, for containers
/// whose id starts with `prefix`.
fn late_readers(env: &Env, prefix: &str) -> Unread {
    let log = env.cd.log_tail(usize::MAX);
    let mut u = Unread::default();
    let mut longest = Duration::ZERO;
    for line in log.lines().filter(|l| l.contains(prefix)) {
        if line.contains("were not read within") {
            u.dropped += 1;
        } else if let Some(rest) = line.split("at the end was read ").nth(1) {
            u.waited += 1;
            let took = rest.split(" after").next().unwrap_or("");
            let ms: f64 = took
                .strip_suffix("ms")
                .and_then(|v| v.parse().ok())
                .or_else(|| {
                    took.strip_suffix("µs")
                        .and_then(|v| v.parse::<f64>().ok())
                        .map(|v| v / 1000.0)
                })
                .or_else(|| {
                    took.strip_suffix('s')
                        .and_then(|v| v.parse::<f64>().ok())
                        .map(|v| v * 1000.0)
                })
                .unwrap_or(0.0);
            let d = Duration::from_secs_f64(ms / 1000.0);
            if d > longest {
                longest = d;
                u.longest = format!("{:.0} ms", ms);
            }
        }
    }
    u
}

/// Files under `dir` (recursively) for which `pick` holds.
fn files_under(dir: &Path, pick: &dyn Fn(&std::fs::Metadata) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.is_dir() {
            out.extend(files_under(&p, pick));
        } else if pick(&m) {
            out.push(p.display().to_string());
        }
    }
    out
}

fn leftovers(env: &Env, ns: &str) -> Vec<String> {
    use std::os::unix::fs::FileTypeExt;
    let mut left = Vec::new();
    // Wait up to 10 s for what ends asynchronously (shims exit after Delete).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let procs = processes_mentioning(ns);
        if procs.is_empty() || Instant::now() > deadline {
            if !procs.is_empty() {
                left.push(format!("{} processes: {:?}", procs.len(), &procs[..1]));
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mounts = mounts_under(&env.cd.state_dir());
    if !mounts.is_empty() {
        left.push(format!("{} mounts: {:?}", mounts.len(), &mounts[..1]));
    }
    let sockets: Vec<_> = env
        .cd
        .shim_sockets()
        .into_iter()
        .filter(|s| s.exists())
        .collect();
    if !sockets.is_empty() {
        left.push(format!(
            "{} shim sockets under /run/containerd",
            sockets.len()
        ));
    }
    let state = files_under(env.state_dir(), &|_| true);
    if !state.is_empty() {
        left.push(format!(
            "{} micrun state files: {:?}",
            state.len(),
            &state[..1]
        ));
    }
    let fifos = files_under(&env.cd.fifo_dir(), &|m| m.file_type().is_fifo());
    if !fifos.is_empty() {
        left.push(format!("{} FIFOs: {:?}", fifos.len(), &fifos[..1]));
    }
    left
}

fn is_shim_start_failure(e: &str) -> bool {
    e.contains("failed to start shim") || e.contains("start failed")
}

/// `n` foreground `ctr run --rm` cycles on `p`, `exit 0` typed.
fn cycles(env: &Env, p: Ped, n: usize) -> Phase {
    let name = format!("{p}-cycles");
    let ns = env.namespace(&name);
    let (img, ann) = image_and_args(p, false);
    env.import(&ns, &img);
    let before = daemon(env);
    let t0 = Instant::now();
    let mut failures = Vec::new();
    let mut extra: Vec<String> = ann.clone();
    extra.extend(img.run_args.iter().cloned());
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    for i in 0..n {
        let id = format!("soak-{p}-{i}");
        let out = ns.run(&img.name, &id, RUNTIME, &extra, &[], Some(b"exit 0\r"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !stdout.contains("micrun demo shell") {
            let banner = if stdout.contains("micrun demo shell") {
                ""
            } else {
                " (no banner on stdout)"
            };
            failures.push(format!(
                "{id}: {}{banner} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            // What to look at: ctr's output and the shim's lines about it.
            eprintln!(
                "soak: {id} failed: {}\nstdout: {stdout:?}\nstderr: {:?}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                env.log_lines(&id, 40)
            );
            let _ = ns.delete(&id);
        }
        if (i + 1) % 100 == 0 {
            eprintln!(
                "soak: {name}: {} of {n}, {} failures",
                i + 1,
                failures.len()
            );
        }
    }
    let took = t0.elapsed();
    let left = leftovers(env, ns.name());
    Phase {
        name,
        runs: n,
        shim_start_failures: failures.iter().filter(|f| is_shim_start_failure(f)).count(),
        failures,
        before,
        after: daemon(env),
        left,
        took,
        unread: late_readers(env, &format!("soak-{p}-")),
    }
}

/// `n` sim containers started at once, all RUNNING, then killed and removed.
fn parallel(env: &Arc<Env>, n: usize) -> Phase {
    let name = "parallel".to_string();
    let ns = env.namespace(&name);
    let (img, ann) = image_and_args(Ped::Sim, false);
    env.import(&ns, &img);
    let before = daemon(env);
    let t0 = Instant::now();
    let ids: Vec<String> = (0..n).map(|i| format!("soak-par-{i}")).collect();
    let mut failures = Vec::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = ids
            .iter()
            .map(|id| {
                let (env, ns, img, ann) = (&env, &ns, &img, &ann);
                s.spawn(move || {
                    let ann: Vec<&str> = ann.iter().map(String::as_str).collect();
                    env.run_detached(ns, img, id, &ann)
                })
            })
            .collect();
        for (h, id) in handles.into_iter().zip(&ids) {
            if let Err(e) = h.join().expect("a start thread panicked") {
                failures.push(format!("{id}: {}", e.lines().next().unwrap_or("")));
            }
        }
    });
    for id in &ids {
        if ns
            .wait_state(id, TaskState::Running, Duration::from_secs(60))
            .is_err()
        {
            failures.push(format!("{id}: never RUNNING"));
        }
    }
    for id in &ids {
        if let Err(e) = ns.delete(id) {
            failures.push(format!("{id}: delete: {e}"));
        }
    }
    let took = t0.elapsed();
    let left = leftovers(env, ns.name());
    Phase {
        name,
        runs: n,
        shim_start_failures: failures.iter().filter(|f| is_shim_start_failure(f)).count(),
        failures,
        before,
        after: daemon(env),
        left,
        took,
        unread: late_readers(env, "soak-par-"),
    }
}

fn table(phases: &[Phase], command: &str) -> String {
    let mut s = format!(
        "Command: `{command}` ({} UTC, containerd 1.6, debug shim).\n\n\
         | phase | runs | failures | shim start failures | containerd fds before → after | threads | RSS KiB | left | time |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        utc_now()
    );
    for p in phases {
        s += &format!(
            "| {} | {} | {} | {} | {} → {} | {} → {} | {} → {} | {} | {:.0} s |\n",
            p.name,
            p.runs,
            p.failures.len(),
            p.shim_start_failures,
            p.before.fds,
            p.after.fds,
            p.before.threads,
            p.after.threads,
            p.before.rss_kib,
            p.after.rss_kib,
            if p.left.is_empty() {
                "nothing".to_string()
            } else {
                p.left.join("; ")
            },
            p.took.as_secs_f64()
        );
    }
    s += "\nOutput left unread in the FIFOs when a container ended (the end waits for it, at most 1 s): ";
    let notes: Vec<String> = phases
        .iter()
        .map(|p| {
            let u = &p.unread;
            let longest = if u.waited > 0 {
                format!(" (longest wait {})", u.longest)
            } else {
                String::new()
            };
            format!(
                "{}: read late in {}{longest}, dropped unread in {}",
                p.name, u.waited, u.dropped
            )
        })
        .collect();
    s += &notes.join("; ");
    s += ".\n";
    for p in phases.iter().filter(|p| !p.failures.is_empty()) {
        s += &format!(
            "\n{} failures (first 3): {:?}\n",
            p.name,
            &p.failures[..p.failures.len().min(3)]
        );
    }
    s
}

fn utc_now() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M"])
        .output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

const BEGIN: &str = "<!-- soak:begin -->";
const END: &str = "<!-- soak:end -->";

fn write_docs(path: &Path, block: &str) -> std::io::Result<()> {
    let text = std::fs::read_to_string(path)?;
    let (Some(a), Some(b)) = (text.find(BEGIN), text.find(END)) else {
        return Err(std::io::Error::other(format!(
            "{} has no {BEGIN} … {END} block",
            path.display()
        )));
    };
    let new = format!("{}{BEGIN}\n{block}{}", &text[..a], &text[b..]);
    std::fs::write(path, new)
}

fn main() {
    let mut sim = 1000;
    let mut qemu = 100;
    let mut par = 100;
    let mut docs = None;
    let mut args = std::env::args().skip(1);
    let mut shown = vec!["tests/soak/run.sh".to_string()];
    while let Some(a) = args.next() {
        let mut num = |what: &str| -> usize {
            let v = args.next().unwrap_or_default();
            v.parse().unwrap_or_else(|_| {
                eprintln!("soak: {what} takes a number, not {v:?}");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--cycles-sim" => {
                sim = num("--cycles-sim");
                shown.push(format!("--cycles-sim {sim}"));
            }
            "--cycles-qemu" => {
                qemu = num("--cycles-qemu");
                shown.push(format!("--cycles-qemu {qemu}"));
            }
            "--parallel" => {
                par = num("--parallel");
                shown.push(format!("--parallel {par}"));
            }
            "--write-docs" => docs = args.next(),
            _ => {
                eprintln!(
                    "usage: soak [--cycles-sim N] [--cycles-qemu N] [--parallel N] [--write-docs FILE]"
                );
                std::process::exit(2);
            }
        }
    }
    let env = Arc::new(Env::start());
    let mut phases = Vec::new();
    if sim > 0 {
        phases.push(cycles(&env, Ped::Sim, sim));
    }
    if qemu > 0 {
        phases.push(cycles(&env, Ped::Qemu, qemu));
    }
    if par > 0 {
        phases.push(parallel(&env, par));
    }
    let block = table(&phases, &shown.join(" "));
    println!("{block}");
    let mut bad_docs = false;
    if let Some(d) = docs {
        if let Err(e) = write_docs(Path::new(&d), &block) {
            eprintln!("soak: {e}");
            bad_docs = true;
        }
    }
    let bad = phases
        .iter()
        .any(|p| !p.failures.is_empty() || !p.left.is_empty())
        || bad_docs;
    // Stop the daemon and remove the temp dir before exit (which runs no drops).
    drop(phases);
    drop(env);
    std::process::exit(i32::from(bad));
}
