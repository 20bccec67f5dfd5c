//! libmicrun's runtime API seen from C, the way iSulad's runtime layer uses it.
//!
//! The test builds `micrun-ffi` (into `target/ffi-for-tests`, as `c_codec` does),
//! installs it with `micrun-ffi/install.sh` into a private prefix, and compiles
//! `tests/c/rt_driver.c` with gcc (`-Wall -Wextra -Werror -std=c11 -pthread`)
//! against the installed `micrun.h`, with the flags `pkg-config` gives, linked
//! against `libmicrun.so` (and once against `libmicrun.a`). It writes
//! two sim bundles (the simulator as `rootfs/firmware.elf`, the `sim` pedestal
//! annotation), one without firmware, and a micrun config with `[sim] enable =
//! true` and a private `state_dir`, and runs the driver (plain, under
//! AddressSanitizer + UndefinedBehaviorSanitizer, and under valgrind): two
//! containers from two threads through create → start → console over FIFOs → state → pause/resume →
//! update → stats → pids → resize → SIGKILL → wait (137) → delete, then bad
//! inputs (NULLs, non-UTF-8, unknown ids, a missing shim, a bundle without
//! firmware). Afterwards no shim of this test may be left, nor its socket, nor
//! the micrun state. The same driver also runs on the `qemu` pedestal (skipped
//! without qemu-system-aarch64).
//!
//! It also runs under valgrind (skipped when valgrind is not installed), where
//! definite and indirect leaks and memory errors fail the test; "possibly lost"
//! blocks are allowed, because ttrpc's synchronous client leaves detached
//! per-connection threads winding down at exit. (Valgrind does not follow the shim:
//! it is exec'd.)

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use micrun_tests::cbuild::{ffi_build_dir, run};
use micrun_tests::e2e::shim_binary;
use micrun_tests::{repo_root, sim_binary, TempDir};

const CFLAGS: &[&str] = &[
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wpedantic",
    "-std=c11",
    "-g",
    "-pthread",
];
const SANITIZE: &[&str] = &[
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
];

/// The directories under /run/containerd the shims create when missing, removed
/// (by exact path, when empty) once the last test of this process using them is
/// done: the tests run in parallel, so the first one decides what was missing.
struct Dirs;

static DIRS: std::sync::Mutex<(usize, Vec<&'static str>)> = std::sync::Mutex::new((0, Vec::new()));

impl Dirs {
    fn enter() -> Dirs {
        let mut g = DIRS.lock().unwrap_or_else(|e| e.into_inner());
        if g.0 == 0 {
            g.1 = ["/run/containerd/s", "/run/containerd"]
                .into_iter()
                .filter(|d| !Path::new(d).exists())
                .collect();
        }
        g.0 += 1;
        Dirs
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        let mut g = DIRS.lock().unwrap_or_else(|e| e.into_inner());
        g.0 -= 1;
        if g.0 == 0 {
            for d in std::mem::take(&mut g.1) {
                let _ = fs::remove_dir(d);
            }
        }
    }
}

/// A bundle at `path` for `pedestal`, with `firmware` (if any) as its
/// `rootfs/firmware.elf`.
fn bundle(path: &Path, firmware: Option<&Path>, pedestal: &str) -> PathBuf {
    let spec = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": { "args": ["/firmware.elf"], "cwd": "/", "user": {"uid": 0, "gid": 0} },
        "root": { "path": "rootfs" },
        "annotations": { "org.openeuler.micrun.ped.pedestal": pedestal },
    });
    fs::create_dir_all(path.join("rootfs")).unwrap();
    if let Some(fw) = firmware {
        fs::copy(fw, path.join("rootfs/firmware.elf")).unwrap();
    }
    fs::write(path.join("config.json"), serde_json::to_vec(&spec).unwrap()).unwrap();
    path.to_path_buf()
}

/// The pids of live (not zombie) processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let zombie = fs::read_to_string(e.path().join("stat")).map_or(true, |s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        });
        if !zombie && String::from_utf8_lossy(&cmdline).contains(needle) {
            found.push(pid);
        }
    }
    found
}

/// Builds `rt_driver.c` (against `libmicrun.a` when `static_link`, else the
/// `.so`), optionally with the sanitizers, and runs it under `wrapper` (e.g.
/// valgrind); `tag` names the temp dir and, as one letter, the container ids.
/// Kills, waits for and deletes the task `<id>-<suffix>` of each bundle's shim,
/// shuts the shim down, and SIGKILLs by pid any process of `id` still there after
/// 10 s.
fn cleanup_shims(id: &str, bundles: &[(&Path, &str)]) {
    use containerd_shim::api;
    use containerd_shim::protos::shim::shim_ttrpc::TaskClient;
    use containerd_shim::protos::ttrpc::context::Context;
    use containerd_shim::protos::ttrpc::Client;
    let ctx = || Context {
        timeout_nano: Duration::from_secs(10).as_nanos() as i64,
        ..Default::default()
    };
    for (bundle, suffix) in bundles {
        let Ok(addr) = fs::read_to_string(bundle.join("address")) else {
            continue;
        };
        let Ok(c) = Client::connect(addr.trim()) else {
            continue;
        };
        let c = TaskClient::new(c);
        let task = format!("{id}-{suffix}");
        let _ = c.kill(
            ctx(),
            &api::KillRequest {
                id: task.clone(),
                signal: 9,
                ..Default::default()
            },
        );
        let _ = c.wait(
            ctx(),
            &api::WaitRequest {
                id: task.clone(),
                ..Default::default()
            },
        );
        let _ = c.delete(
            ctx(),
            &api::DeleteRequest {
                id: task,
                ..Default::default()
            },
        );
        let _ = c.shutdown(ctx(), &api::ShutdownRequest::default());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_mentioning(id).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in processes_mentioning(id) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Installs libmicrun into `<dir>/prefix` and builds `tests/c/<name>.c` against
/// it with gcc (against `libmicrun.a` when `static_link`, else the `.so`),
/// optionally with the sanitizers. Returns the executable.
fn compile(dir: &Path, name: &str, sanitize: bool, static_link: bool) -> PathBuf {
    let prefix = dir.join("prefix");
    run(
        Command::new("sh")
            .arg(repo_root().join("micrun-ffi/install.sh"))
            .arg(&prefix)
            .arg(ffi_build_dir()),
        "install.sh",
    );
    let libdir = prefix.join("lib");
    let pkg = |args: &[&str]| -> Vec<String> {
        let out = run(
            Command::new("pkg-config")
                .env("PKG_CONFIG_PATH", libdir.join("pkgconfig"))
                .env("PKG_CONFIG_LIBDIR", libdir.join("pkgconfig"))
                .args(args)
                .arg("micrun"),
            "pkg-config",
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    let exe = dir.join(name);
    let mut gcc = Command::new("gcc");
    gcc.args(CFLAGS);
    if sanitize {
        gcc.args(SANITIZE);
    }
    gcc.arg(repo_root().join(format!("tests/c/{name}.c")))
        .arg("-o")
        .arg(&exe)
        .args(pkg(&["--cflags"]));
    if static_link {
        // The archive itself, then what it needs from the system (Libs.private).
        gcc.arg(libdir.join("libmicrun.a")).args(
            pkg(&["--static", "--libs"])
                .into_iter()
                .filter(|w| w != "-lmicrun" && !w.starts_with("-L")),
        );
    } else {
        gcc.args(pkg(&["--libs"]))
            .arg(format!("-Wl,-rpath,{}", libdir.display()));
    }
    run(&mut gcc, &format!("gcc {name}.c"));
    exe
}

fn drive(tag: &str, letter: char, sanitize: bool, static_link: bool, wrapper: &[&str]) {
    drive_on(Pedestal::Sim, tag, letter, sanitize, static_link, wrapper)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pedestal {
    Sim,
    Qemu,
}

fn drive_on(
    ped: Pedestal,
    tag: &str,
    letter: char,
    sanitize: bool,
    static_link: bool,
    wrapper: &[&str],
) {
    let dir = TempDir::new(tag);
    let exe = compile(dir.path(), "rt_driver", sanitize, static_link);

    let (fw, name, extra) = match ped {
        Pedestal::Sim => (sim_binary(), "sim", ""),
        Pedestal::Qemu => (
            micrun_tests::firmware(false),
            "qemu",
            "[qemu]\nbinary = \"qemu-system-aarch64\"\n",
        ),
    };
    let a = bundle(&dir.path().join("bundle-a"), Some(&fw), name);
    let b = bundle(&dir.path().join("bundle-b"), Some(&fw), name);
    let bad = bundle(&dir.path().join("bundle-nofw"), None, name);
    let state = dir.path().join("state");
    let cfg = dir.path().join("micrun.toml");
    fs::write(
        &cfg,
        format!("state_dir = {state:?}\n[sim]\nenable = true\n{extra}"),
    )
    .unwrap();
    let fifos = dir.path().join("fifos");
    fs::create_dir_all(&fifos).unwrap();
    // Distinct letters: no test's ids are a prefix of another's.
    let id = format!("crt{}{letter}", std::process::id());

    let _dirs = Dirs::enter();
    let shim = shim_binary();
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    cmd.arg(&shim)
        .arg(&cfg)
        .arg("isula")
        .arg(&id)
        .arg(&a)
        .arg(&b)
        .arg(&bad)
        .arg(&fifos)
        .env(
            "ASAN_OPTIONS",
            "detect_leaks=1:halt_on_error=1:abort_on_error=0",
        )
        .env("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        .env("MICRUN_RT_PEDESTAL", name);
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&mut cmd, "rt_driver")));
    // Whatever happened: no shim of this test may be left. (Shims are not our
    // children: they daemonize.) Any left (the driver failed midway) has its
    // task killed, waited for and deleted over ttrpc, and is then shut down; one
    // still there after that is killed by its pid.
    let left = processes_mentioning(&id);
    if !left.is_empty() {
        cleanup_shims(&id, &[(&a, "a"), (&b, "b"), (&bad, "nofw")]);
    }
    // The sockets the shims served on (as the shim names them under iSulad: no
    // containerd address): gone, or removed here by exact path and reported.
    let sockets: Vec<PathBuf> = ["a", "b", "nofw"]
        .iter()
        .map(|s| {
            let addr = containerd_shim::socket_address("", "isula", &format!("{id}-{s}"));
            PathBuf::from(addr.trim_start_matches("unix://"))
        })
        .collect();
    let sockets_left: Vec<_> = sockets.iter().filter(|p| p.exists()).cloned().collect();
    for p in &sockets_left {
        let _ = fs::remove_file(p);
    }
    let out = match result {
        Ok(out) => out,
        Err(p) => std::panic::resume_unwind(p),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("rt_driver:\n{text}");
    assert!(text.contains(&format!("{id}-a: lifecycle ok")), "{text}");
    assert!(text.contains(&format!("{id}-b: lifecycle ok")), "{text}");
    assert!(text.contains("bad inputs ok\nrt ok"), "{text}");
    assert!(left.is_empty(), "shims left running: {left:?}");
    assert!(sockets_left.is_empty(), "sockets left: {sockets_left:?}");
    for b in [&a, &b, &bad] {
        assert!(!b.join("address").exists(), "{b:?}/address left");
    }
    let leftover: Vec<_> = fs::read_dir(&state)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    let tasks: Vec<_> = leftover
        .iter()
        .flat_map(|p| fs::read_dir(p).into_iter().flatten().flatten())
        .map(|e| e.path())
        .collect();
    assert!(tasks.is_empty(), "micrun state left: {tasks:?}");
}

#[test]
fn isulad_style_driver_in_c() {
    drive("c-rt", 'p', false, false, &[]);
}

#[test]
fn isulad_style_driver_in_c_static() {
    drive("c-rt-static", 's', false, true, &[]);
}

#[test]
fn isulad_style_driver_in_c_under_asan() {
    drive("c-rt-asan", 'a', true, false, &[]);
}

#[test]
fn isulad_style_driver_in_c_under_valgrind() {
    if Command::new("valgrind")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("SKIPPED isulad_style_driver_in_c_under_valgrind: valgrind is not installed");
        return;
    }
    // "possibly lost" is not an error here: ttrpc's sync client runs detached
    // reader/writer threads per connection, which may still be winding down (their
    // stacks, TLS and maps reachable only through interior pointers) when the
    // driver exits. Definite and indirect leaks are errors.
    drive(
        "c-rt-valgrind",
        'v',
        false,
        false,
        &[
            "valgrind",
            "-q",
            "--error-exitcode=1",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect",
            "--show-leak-kinds=definite,indirect",
        ],
    );
}

/// The same driver on the `qemu` pedestal (the QEMU board firmware under
/// qemu-system-aarch64); skipped with a message when QEMU is not installed.
#[test]
fn isulad_style_driver_in_c_on_qemu() {
    if Command::new("qemu-system-aarch64")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("SKIPPED isulad_style_driver_in_c_on_qemu: qemu-system-aarch64 is not installed");
        return;
    }
    drive_on(Pedestal::Qemu, "c-rt-qemu", 'q', false, false, &[]);
}

/// Every bad input of the shim issue, seen from C: `micrun_rt_create` refuses
/// each with an error code and a message naming the problem (checked by
/// keywords), and nothing is left: no `<bundle>/address`, no shim, no socket, no
/// micrun state. Built with the sanitizers.
#[test]
fn every_bad_input_from_c_is_an_error_and_leaves_nothing() {
    let dir = TempDir::new("c-rt-bad");
    let exe = compile(dir.path(), "rt_bad_bundles", true, false);
    let state = dir.path().join("state");
    let cfg = dir.path().join("micrun.toml");
    fs::write(
        &cfg,
        format!("state_dir = {state:?}\n[sim]\nenable = true\n"),
    )
    .unwrap();
    let sim_off = dir.path().join("micrun-sim-off.toml");
    fs::write(
        &sim_off,
        format!("state_dir = {state:?}\ndefault_pedestal = \"qemu\"\n"),
    )
    .unwrap();
    let sim = sim_binary();
    let aarch64 = micrun_tests::firmware(false);
    let id = format!("crtbad{}", std::process::id());

    // (name, firmware file, other rootfs files, annotations, linux.resources,
    // config, keywords)
    type Case<'a> = (
        &'a str,
        Option<&'a Path>,
        Vec<(&'a str, Vec<u8>)>,
        Vec<(&'a str, &'a str)>,
        Option<serde_json::Value>,
        &'a Path,
        &'a str,
    );
    let wrong_hash = format!("sha256:{}", "0".repeat(64));
    let ped = "org.openeuler.micrun.ped.pedestal";
    let cases: Vec<Case> = vec![
        (
            "nofw",
            None,
            vec![("readme.txt", b"no firmware\n".to_vec())],
            vec![(ped, "sim")],
            None,
            &cfg,
            "no firmware",
        ),
        (
            "dotdot",
            Some(&sim),
            vec![],
            vec![
                (ped, "sim"),
                ("org.openeuler.micrun.container.firmware_path", "../x.elf"),
            ],
            None,
            &cfg,
            "../x.elf",
        ),
        (
            "absolute",
            Some(&sim),
            vec![],
            vec![
                (ped, "sim"),
                (
                    "org.openeuler.micrun.container.firmware_path",
                    "/etc/hostname",
                ),
            ],
            None,
            &cfg,
            "/etc/hostname|absolute",
        ),
        (
            "arch",
            Some(&aarch64),
            vec![],
            vec![(ped, "sim")],
            None,
            &cfg,
            "aarch64",
        ),
        (
            "notelf",
            None,
            vec![("firmware.elf", b"#!/bin/sh\necho not an elf\n".to_vec())],
            vec![(ped, "sim")],
            None,
            &cfg,
            "not an elf",
        ),
        (
            "hash",
            Some(&sim),
            vec![],
            vec![
                (ped, "sim"),
                ("org.openeuler.micrun.container.firmware_hash", &wrong_hash),
            ],
            None,
            &cfg,
            "firmware_hash",
        ),
        (
            "hashfmt",
            Some(&sim),
            vec![],
            vec![
                (ped, "sim"),
                ("org.openeuler.micrun.container.firmware_hash", "xyz123"),
            ],
            None,
            &cfg,
            "firmware_hash|xyz123",
        ),
        (
            "pedunknown",
            Some(&sim),
            vec![],
            vec![(ped, "bogus")],
            None,
            &cfg,
            "bogus",
        ),
        (
            "pedmissing",
            Some(&aarch64),
            vec![],
            vec![(ped, "xen")],
            None,
            &cfg,
            "xen|not available",
        ),
        (
            "simoff",
            Some(&sim),
            vec![],
            vec![(ped, "sim")],
            None,
            &sim_off,
            "sim|not enabled",
        ),
        (
            "cpuset",
            Some(&sim),
            vec![],
            vec![(ped, "sim")],
            Some(serde_json::json!({ "cpu": { "cpus": "abc" } })),
            &cfg,
            "cpuset|abc",
        ),
        (
            "memfloor",
            Some(&sim),
            vec![],
            vec![(ped, "sim")],
            Some(serde_json::json!({ "memory": { "limit": 1048576 } })),
            &cfg,
            "memory|floor",
        ),
        (
            "minmem",
            Some(&sim),
            vec![],
            vec![
                (ped, "sim"),
                ("org.openeuler.micrun.container.min_memory_mb", "abc"),
            ],
            None,
            &cfg,
            "min_memory_mb|abc",
        ),
        (
            "autoclose",
            Some(&sim),
            vec![],
            vec![
                (ped, "sim"),
                ("org.openeuler.micrun.container.auto_close_timeout", "soon"),
            ],
            None,
            &cfg,
            "auto_close_timeout|soon",
        ),
    ];
    let mut lines = String::new();
    let mut bundles = Vec::new();
    for (name, fw, files, ann, res, config, keywords) in &cases {
        let b = dir.path().join(format!("bundle-{name}"));
        fs::create_dir_all(b.join("rootfs")).unwrap();
        if let Some(fw) = fw {
            fs::copy(fw, b.join("rootfs/firmware.elf")).unwrap();
        }
        for (f, bytes) in files {
            fs::write(b.join("rootfs").join(f), bytes).unwrap();
        }
        let annotations: serde_json::Map<String, serde_json::Value> = ann
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).into()))
            .collect();
        let mut spec = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": { "args": ["/firmware.elf"], "cwd": "/" },
            "root": { "path": "rootfs" },
            "annotations": annotations,
        });
        if let Some(r) = res {
            spec["linux"] = serde_json::json!({ "resources": r });
        }
        fs::write(b.join("config.json"), serde_json::to_vec(&spec).unwrap()).unwrap();
        lines += &format!(
            "{}\t{id}-{name}\t{}\t{keywords}\n",
            b.display(),
            config.display()
        );
        bundles.push((b, format!("{id}-{name}")));
    }
    // One container id no pedestal can take: over the 107-byte socket path limit
    // of the qemu pedestal's run dir.
    let long = format!("{id}-{}", "l".repeat(64));
    let b = bundle(&dir.path().join("bundle-long"), Some(&aarch64), "qemu");
    lines += &format!("{}\t{long}\t{}\tqemu|107\n", b.display(), cfg.display());
    bundles.push((b, long));
    let cases_file = dir.path().join("cases.tsv");
    fs::write(&cases_file, lines).unwrap();

    let _dirs = Dirs::enter();
    let out = run(
        Command::new(&exe)
            .arg(shim_binary())
            .arg("isula")
            .arg(&cases_file)
            .env(
                "ASAN_OPTIONS",
                "detect_leaks=1:halt_on_error=1:abort_on_error=0",
            )
            .env("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1"),
        "rt_bad_bundles",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("rt_bad_bundles:\n{text}");
    assert!(
        text.contains(&format!("{} cases, 0 failed", bundles.len())),
        "{text}"
    );
    for (b, cid) in &bundles {
        assert!(!b.join("address").exists(), "{b:?}/address left");
        assert!(
            processes_mentioning(cid).is_empty(),
            "a process of {cid} is left"
        );
        let addr = containerd_shim::socket_address("", "isula", cid);
        assert!(
            !Path::new(addr.trim_start_matches("unix://")).exists(),
            "the shim socket of {cid} is left"
        );
    }
    let tasks: Vec<_> = fs::read_dir(&state)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|ns| fs::read_dir(ns.path()).into_iter().flatten().flatten())
        .map(|e| e.path())
        .collect();
    assert!(tasks.is_empty(), "micrun state left: {tasks:?}");
}

/// The calls iSulad makes beyond the lifecycle, from C (`tests/c/rt_isulad.c`,
/// with the sanitizers), on the sim pedestal: kill 0 as a liveness check (success
/// while created and running, NOT_FOUND "process already finished" once ended);
/// `micrun_rt_start_info` against `/proc`; a second create of a live id refused
/// with `<bundle>/address` and the container untouched; the shim in a session of
/// its own (a SIGHUP to the driver's process group does not reach it; stdin
/// `/dev/null`); every stats field a partition has filled, the others 0; the
/// shim's log appended to `<bundle>/log` (a file) and written to a FIFO the caller
/// reads; a shim the driver started iSulad-style driven with
/// `micrun_rt_create_at`, where a failing create touches nothing. Nothing is left.
#[test]
fn isulad_calls_from_c() {
    use std::os::unix::process::CommandExt;
    let dir = TempDir::new("c-rt-isulad");
    let exe = compile(dir.path(), "rt_isulad", true, false);
    let fw = sim_binary();
    let a = bundle(&dir.path().join("bundle-a"), Some(&fw), "sim");
    let b = bundle(&dir.path().join("bundle-b"), Some(&fw), "sim");
    let bad = bundle(&dir.path().join("bundle-nofw"), None, "sim");
    let state = dir.path().join("state");
    let cfg = dir.path().join("micrun.toml");
    fs::write(
        &cfg,
        format!("state_dir = {state:?}\n[sim]\nenable = true\n"),
    )
    .unwrap();
    let id = format!("crtisu{}", std::process::id());
    let _dirs = Dirs::enter();
    let mut cmd = Command::new(&exe);
    cmd.arg(shim_binary())
        .arg(&cfg)
        .arg("isula")
        .arg(&id)
        .arg(&a)
        .arg(&b)
        .arg(&bad)
        // The driver sends SIGHUP to its own process group: not this test's.
        .process_group(0)
        .env(
            "ASAN_OPTIONS",
            "detect_leaks=1:halt_on_error=1:abort_on_error=0",
        )
        .env("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1");
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&mut cmd, "rt_isulad")));
    let left = processes_mentioning(&id);
    if !left.is_empty() {
        cleanup_shims(&id, &[(&a, "a"), (&b, "b")]);
    }
    let sockets: Vec<PathBuf> = ["a", "b"]
        .iter()
        .map(|s| {
            let addr = containerd_shim::socket_address("", "isula", &format!("{id}-{s}"));
            PathBuf::from(addr.trim_start_matches("unix://"))
        })
        .collect();
    let sockets_left: Vec<_> = sockets.iter().filter(|p| p.exists()).cloned().collect();
    for p in &sockets_left {
        let _ = fs::remove_file(p);
    }
    let out = match result {
        Ok(out) => out,
        Err(p) => std::panic::resume_unwind(p),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("rt_isulad:\n{text}");
    assert!(text.contains("isulad ok"), "{text}");
    assert!(left.is_empty(), "shims left running: {left:?}");
    assert!(sockets_left.is_empty(), "sockets left: {sockets_left:?}");
    for b in [&a, &b, &bad] {
        assert!(!b.join("address").exists(), "{b:?}/address left");
    }
    let tasks: Vec<_> = fs::read_dir(&state)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|ns| fs::read_dir(ns.path()).into_iter().flatten().flatten())
        .map(|e| e.path())
        .collect();
    assert!(tasks.is_empty(), "micrun state left: {tasks:?}");
}
