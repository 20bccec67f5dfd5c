//! `containerd-shim-mica-v2` end to end: a real containerd (Debian's 1.6), `ctr`,
//! the shim built from this workspace, and the demo firmware on the `sim` pedestal
//! (a host process) and the `qemu` pedestal (`qemu-system-aarch64 -M virt`).
//!
//! Most tests share one daemon ([`Env::shared`]) and work in a namespace of their
//! own; the containerd-restart and `sim`-disabled tests start their own. The micrun
//! config of the shared daemon (`MicrunConfig::for_tests`): sim enabled and the
//! default pedestal, stop grace 3 s, liveness window 2 s with pings every 500 ms,
//! handshake wait 2 s, state dir inside the test's temp dir.
//!
//! Needs root, `containerd`, `runc`, `qemu-system-aarch64`, `script` (util-linux)
//! and the `aarch64-unknown-none` Rust target (`.ci/setup`).
//!
//! | tests | what |
//! |---|---|
//! | `fg_echo_exit_*` | `ctr run` in the foreground, input then EOF, `echo`, `exit 3` → 3; task events in order |
//! | `term_agent_*`, `term_raw_*`, `sigkill_*` | SIGTERM: the agent prints `stopping` → 0; raw → 143 at once; SIGKILL → 137; nothing left |
//! | `usr1_*` | SIGUSR1 reaches the agent (`signal 10`); raw mode: FAILED_PRECONDITION naming it |
//! | `hang_*` | `hang` → peer lost after the liveness window → 137, reason in the log |
//! | `pause_resume_*` | PAUSED longer than the liveness window, RUNNING, console works; events |
//! | `metrics_ps_*` | `ctr task metrics` has memory; `ctr task ps` is the instance's process |
//! | `attach_*` | attach / detach (SIGKILL of `ctr`) / re-attach, output made while detached kept |
//! | `raw_stalled_reader_sim` | raw mode, a reader that stops: the RTOS goes on (its `exit 7` after a flood arrives), the excess is dropped, logged once and counted |
//! | `tty_*` | `ctr run -t` under `script` |
//! | `twenty_sim_containers` | 20 at once (config's default pedestal), all killed and gone |
//! | `containerd_restart` | tasks stay RUNNING, console and SIGTERM work, exit events delivered |
//! | `shim_killed_*` | shim SIGKILLed → `delete` action: 137, no process, mount, state, socket |
//! | `bad_*` | each bad input: a clear error at create, nothing left, no stray task events |
//! | `*_micad` | the same scenarios on `baremetal` through micad (the emulator in `Env::micad`) |
//! | `*_xl` | the same on `xen` through `xl` (a fake Xen host in `Env::xen`), pause/resume included |
//! | `*_rproc` | the same on `baremetal` through Linux remoteproc (fake processors in `Env::remoteproc`, one per test) |
//! | `micad_*` | micad refusing, hanging, no console, an over-long id, micad down; no pause through micad on baremetal (and why); `xl pause`/`unpause` of micad's Xen domain (`micad_xen_pause_resume_through_xl`, micad emulator + fake-xl) |
//! | `shim_help`, `shim_info_*` | the binary's `-h`/`--help` usage and its `-info` RuntimeInfo with the OCI features document |
//!
//! The file takes about 30 s on 2 cores (60 s with both cores busy elsewhere), after
//! the first build of the shim into `target/shim-for-tests`. Failure messages carry
//! the containerd log lines about the container (the shims log through containerd)
//! and the log's tail.

use std::time::{Duration, Instant};

use micrun_tests::containerd::{Namespace, TaskState};
use micrun_tests::e2e::{
    custom_image, next_remoteproc, pid_alive, qemu_firmware_bytes, sha256_hex, shim_socket_of,
    sim_firmware_bytes, sim_image, unique_id, wait_until, Env, Ped, Session, TestImage, ANN_AGENT,
    ANN_AUTO_CLOSE_TIMEOUT, ANN_FIRMWARE_HASH, ANN_FIRMWARE_PATH, ANN_MIN_MEMORY_MB, ANN_PEDESTAL,
    RUNTIME,
};
use micrun_tests::scenarios::{
    annotations, assert_micad_gone, assert_nothing_left, assert_partition_gone, banner,
    exit_status, expect_create_failure, image_and_args, ok, state, strs, wait_state, T_ACT, T_BOOT,
};

/// The shared daemon for pedestal `p` (its own for the hardware stand-ins).
fn env_for(p: Ped) -> std::sync::Arc<Env> {
    match p {
        Ped::Rproc => Env::shared_remoteproc(),
        Ped::Xen => Env::shared_xen(std::path::Path::new(env!("CARGO_BIN_EXE_fake-xl"))),
        _ => Env::shared(),
    }
}

// The scenarios shared with containerd_versions.rs live in micrun_tests::scenarios
// (foreground run and exit code, SIGTERM/SIGKILL, pause/resume, metrics, attach,
// tty, shim killed, containerd restart); here on the daemon of each pedestal.

fn fg_echo_exit(p: Ped) {
    micrun_tests::scenarios::fg_echo_exit(&env_for(p), p);
}

fn term_agent(p: Ped) {
    micrun_tests::scenarios::term_agent(&env_for(p), p);
}

fn kill_detached(p: Ped, raw: bool, signal: &str, want: i32) {
    micrun_tests::scenarios::kill_detached(&env_for(p), p, raw, signal, want);
}

fn pause_resume(p: Ped) {
    micrun_tests::scenarios::pause_resume(&env_for(p), p);
}

fn metrics_ps(p: Ped) {
    micrun_tests::scenarios::metrics_ps(&env_for(p), p);
}

fn shim_killed(p: Ped) {
    micrun_tests::scenarios::shim_killed(&env_for(p), p);
}

fn attach(p: Ped) {
    micrun_tests::scenarios::attach(&env_for(p), p);
}

fn tty(p: Ped) {
    micrun_tests::scenarios::tty(&env_for(p), p);
}

/// containerd restarted while tasks run (a daemon of its own: the shared one
/// must never restart).
#[test]
fn containerd_restart() {
    micrun_tests::scenarios::containerd_restart(&Env::start(), &[Ped::Sim, Ped::Qemu]);
}

// ---------------------------------------------------------------------------
// 3. Other signals: forwarded to the agent; an error naming the signal in raw mode.

fn usr1_raw(p: Ped) {
    let env = env_for(p);
    let ns = env.namespace(&format!("usr1r-{p}"));
    let (img, ann) = image_and_args(p, true);
    env.import(&ns, &img);
    let id = unique_id(&format!("usr1r-{p}"));
    ok(&env, &id, env.run_detached(&ns, &img, &id, &strs(&ann)));
    wait_state(&env, &ns, &id, TaskState::Running);
    let out = ns.ctr(&["tasks", "kill", "-s", "SIGUSR1", &id]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let what = format!(
        "ctr task kill -s SIGUSR1: {} {stderr:?}{}",
        out.status,
        env.diag(&id)
    );
    assert!(!out.status.success(), "raw mode took SIGUSR1: {what}");
    assert!(
        stderr.contains("SIGUSR1") || stderr.contains("USR1") || stderr.contains("signal 10"),
        "the error does not name the signal: {what}"
    );
    assert!(
        stderr.to_lowercase().contains("failed precondition"),
        "not FAILED_PRECONDITION: {what}"
    );
    assert_eq!(state(&env, &ns, &id), Some(TaskState::Running), "{what}");
}

fn usr1_agent(p: Ped) {
    let env = env_for(p);
    let ns = env.namespace(&format!("usr1a-{p}"));
    let (img, ann) = image_and_args(p, false);
    env.import(&ns, &img);
    let id = unique_id(&format!("usr1a-{p}"));
    let mut s = env.run_session(&ns, &img, &id, &strs(&ann));
    let at = ok(&env, &id, s.expect(&banner(p), T_BOOT));
    wait_state(&env, &ns, &id, TaskState::Running);
    ns.kill(&id, "SIGUSR1")
        .unwrap_or_else(|e| panic!("agent mode refused SIGUSR1: {e}{}", env.diag(&id)));
    let at = if p == Ped::Sim {
        // The sim's demo app prints the signals it gets; the QEMU board's ignores them.
        ok(&env, &id, s.expect_from(at, "signal 10\r\n", T_ACT))
    } else {
        at
    };
    s.send("echo alive\r");
    ok(&env, &id, s.expect_from(at, "alive\r\n", T_ACT));
    assert_eq!(state(&env, &ns, &id), Some(TaskState::Running));
}

// ---------------------------------------------------------------------------
// 4. `hang` → no Pong within the liveness window (2 s) → destroyed, 137.

fn hang(p: Ped) {
    let env = env_for(p);
    let ns = env.namespace(&format!("hang-{p}"));
    let (img, ann) = image_and_args(p, false);
    env.import(&ns, &img);
    let id = unique_id(&format!("hang-{p}"));
    let mut s = env.run_session(&ns, &img, &id, &strs(&ann));
    ok(&env, &id, s.expect(&banner(p), T_BOOT));
    wait_state(&env, &ns, &id, TaskState::Running);
    let pid = ns
        .tasks()
        .unwrap()
        .into_iter()
        .find(|t| t.id == id)
        .map_or(0, |t| t.pid);
    let t0 = Instant::now();
    s.send("hang\r");
    let st = s.wait(Duration::from_secs(15));
    let what = format!("{}{}", s.describe(), env.diag(&id));
    let st = st.unwrap_or_else(|| panic!("a hung {p} was not detected within 15 s: {what}"));
    assert_eq!(Session::code(st), 137, "exit status of a lost peer: {what}");
    assert!(
        t0.elapsed() >= Duration::from_millis(1500),
        "ended after {:?}, before the 2 s liveness window: {what}",
        t0.elapsed()
    );
    let log = env.log_lines(&id, 200).to_lowercase();
    assert!(
        ["lost", "liveness", "pong", "not answer", "unresponsive"]
            .iter()
            .any(|k| log.contains(k)),
        "the shim log gives no reason (lost/liveness/pong): {what}"
    );
    if matches!(p, Ped::Micad | Ped::Rproc | Ped::Xen) {
        assert_partition_gone(&env, p, &id);
    } else if pid != 0 {
        assert!(
            wait_until(Duration::from_secs(5), || !pid_alive(pid)),
            "the hung instance process {pid} is still alive{}",
            env.diag(&id)
        );
    }
}

/// Raw mode with a reader that stops reading: the RTOS is never held back (a raw
/// console has no flow control), the shim keeps `RAW_BUFFER` bytes, drops the
/// rest, says so once in the log when it starts, and reports the total at the end.
#[test]
fn raw_stalled_reader_sim() {
    const FLOOD: usize = 4 << 20;
    let p = Ped::Sim;
    let env = Env::shared();
    let ns = env.namespace("rawdrop");
    let (img, ann) = image_and_args(p, true);
    env.import(&ns, &img);
    let id = unique_id("rawdrop");
    ok(
        &env,
        &id,
        env.run_detached_fifo(&ns, &img, &id, &strs(&ann)),
    );
    wait_state(&env, &ns, &id, TaskState::Running);

    // `ctr task attach` whose stdout is a pipe nobody reads: once that pipe is
    // full, ctr stops reading the task's FIFO and the FIFO fills up too. (A
    // Session would read it, so this child is spawned by hand and reaped below.)
    let mut cmd = env.ctr_command(ns.name(), &["task", "attach", &id]);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut stalled = Reap(cmd.spawn().expect("ctr task attach"));
    let mut input = stalled.0.stdin.take().expect("stdin pipe");
    // The shell runs the flood, then `exit 7`: the exit status proves that the
    // RTOS got through the whole flood with nobody reading.
    std::io::Write::write_all(&mut input, format!("flood {FLOOD}\rexit 7\r").as_bytes())
        .expect("write to ctr task attach");
    assert_eq!(exit_status(&env, &ns, &id), 7, "{}", env.diag(&id));
    drop(stalled);
    drop(input);

    let log = env.log_lines(&id, 200);
    let warnings = log
        .matches("raw console: the output reader is not keeping up")
        .count();
    assert_eq!(warnings, 1, "one warning per stall{}", env.diag(&id));
    // "…: raw console: N bytes dropped because nobody read them"
    let dropped = log
        .lines()
        .filter_map(|l| l.split_once(" bytes dropped because nobody read them"))
        .filter_map(|(head, _)| head.rsplit(' ').next()?.parse::<usize>().ok())
        .next_back();
    let Some(dropped) = dropped else {
        panic!("no dropped-bytes total in the log{}", env.diag(&id));
    };
    // What was not dropped fits in the shim's buffer (256 KiB), the FIFO and the
    // unread pipe (64 KiB each) and ctr's copy buffer (32 KiB): 1 MiB is a
    // generous bound. The flood's trailer and the prompt may add a few bytes.
    assert!(
        dropped <= FLOOD + 64 && dropped + (1 << 20) >= FLOOD,
        "dropped {dropped} of a {FLOOD}-byte flood{}",
        env.diag(&id)
    );
    ns.ctr_ok(&["containers", "rm", &id]).unwrap();
}

// ---------------------------------------------------------------------------
// 9. 20 containers at once (sim, by the config's default pedestal: no annotation).

#[test]
fn twenty_sim_containers() {
    const N: usize = 20;
    const WORKERS: usize = 4;
    let env = Env::shared();
    let ns = env.namespace("many");
    let img = sim_image("e2e", false);
    env.import(&ns, &img);
    let ids: Vec<String> = (0..N).map(|_| unique_id("many")).collect();
    let t0 = Instant::now();
    let errors: Vec<String> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (env, ns, img, ids) = (&env, &ns, &img, &ids);
                sc.spawn(move || {
                    ids.iter()
                        .skip(w)
                        .step_by(WORKERS)
                        .filter_map(|id| env.run_detached(ns, img, id, &[]).err())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert!(errors.is_empty(), "run -d failed: {}", errors.join("\n\n"));
    let mut tasks = Vec::new();
    let all_running = wait_until(T_ACT, || {
        tasks = ns.tasks().unwrap_or_default();
        ids.iter().all(|id| {
            tasks
                .iter()
                .any(|t| &t.id == id && t.state == TaskState::Running)
        })
    });
    assert!(
        all_running,
        "not all RUNNING: {tasks:?}{}",
        env.diag("many")
    );
    let started = t0.elapsed();
    let pids: Vec<u32> = ids
        .iter()
        .map(|id| tasks.iter().find(|t| &t.id == id).unwrap().pid)
        .collect();
    let distinct: std::collections::BTreeSet<u32> = pids.iter().copied().collect();
    assert_eq!(distinct.len(), N, "pids {pids:?}");
    assert!(pids.iter().all(|&p| p > 0 && pid_alive(p)), "pids {pids:?}");

    std::thread::scope(|sc| {
        for w in 0..WORKERS {
            let (ns, ids) = (&ns, &ids);
            sc.spawn(move || {
                for id in ids.iter().skip(w).step_by(WORKERS) {
                    let _ = ns.kill(id, "SIGKILL");
                }
            });
        }
    });
    for id in &ids {
        assert_eq!(exit_status(&env, &ns, id), 137, "{id}{}", env.diag(id));
        ns.ctr_ok(&["containers", "rm", id]).unwrap();
    }
    let left = ns.tasks().unwrap();
    assert!(
        left.iter().all(|t| !ids.contains(&t.id)),
        "tasks left: {left:?}"
    );
    assert!(
        wait_until(Duration::from_secs(10), || pids
            .iter()
            .all(|&p| !pid_alive(p))),
        "sim processes left: {:?}",
        pids.iter().filter(|&&p| pid_alive(p)).collect::<Vec<_>>()
    );
    assert!(
        wait_until(Duration::from_secs(10), || ids
            .iter()
            .all(|id| env.shim_pids_of(id).is_empty())),
        "shims left"
    );
    for id in &ids {
        assert!(
            env.state_entries(id).is_empty(),
            "{:?}",
            env.state_entries(id)
        );
    }
    eprintln!(
        "twenty_sim_containers: {N} RUNNING in {started:?}, all gone in {:?}",
        t0.elapsed()
    );
}

// ---------------------------------------------------------------------------
// 12. Bad input: a clear error at create (`ctr run` fails naming the problem) and
//     nothing left behind.

/// Runs `ctr run --rm ARGS IMAGE ID` (or `ctr run --rm --config ...` when
/// `image` is `None`) expecting it to fail at create with every one of
/// `keywords` (case-insensitive) on stderr; then checks that nothing is left.
fn expect_create_error(
    env: &Env,
    ns: &Namespace<'_>,
    image: Option<&TestImage>,
    id: &str,
    extra: &[String],
    keywords: &[&str],
) -> String {
    let mut args = vec!["run".to_string(), "--rm".into()];
    match image {
        Some(img) => {
            env.import(ns, img);
            args.extend(env.run_args(img, &strs(extra)));
            args.push(img.name.clone());
        }
        None => {
            args.extend([
                "--fifo-dir".to_string(),
                env.cd.fifo_dir().to_string_lossy().into_owned(),
                "--runtime".into(),
                RUNTIME.into(),
            ]);
            args.extend(extra.iter().cloned());
        }
    }
    args.push(id.into());
    expect_create_failure(env, ns, id, &args, keywords)
}

/// One bad-input case on the shared daemon: `image` (built by the caller), the
/// annotations `ann` (`K=V`), further `ctr run` flags, expected keywords.
fn bad(
    tag: &str,
    p: Ped,
    image: TestImage,
    ann: &[&str],
    flags: &[&str],
    id: Option<String>,
    keywords: &[&str],
) {
    let env = env_for(p);
    let ns = env.namespace(&format!("bad-{tag}"));
    let id = id.unwrap_or_else(|| unique_id(&format!("bad-{tag}")));
    let mut extra = annotations(p, ann);
    extra.extend(flags.iter().map(|s| s.to_string()));
    expect_create_error(&env, &ns, Some(&image), &id, &extra, keywords);
}

#[test]
fn bad_no_firmware() {
    let img = custom_image("nofw", "linux", micrun_tests::oci::host_arch(), |b| {
        b.file("/etc/readme.txt", b"no firmware in here\n".to_vec(), 0o644)
    });
    bad("nofw", Ped::Sim, img, &[], &[], None, &["no firmware"]);
}

#[test]
fn bad_firmware_path_dotdot() {
    let ann = format!("{ANN_FIRMWARE_PATH}=../x.elf");
    bad(
        "dotdot",
        Ped::Sim,
        sim_image("e2e", false),
        &[&ann],
        &[],
        None,
        &["../x.elf", "rootfs"],
    );
}

#[test]
fn bad_symlink_escapes_rootfs() {
    let img = custom_image("symlink", "linux", micrun_tests::oci::host_arch(), |b| {
        b.symlink("/firmware.elf", "/etc/passwd")
    });
    bad(
        "symlink",
        Ped::Sim,
        img,
        &[],
        &[],
        None,
        &["firmware.elf", "outside"],
    );
}

#[test]
fn bad_firmware_path_absolute() {
    let ann = format!("{ANN_FIRMWARE_PATH}=/etc/hostname");
    bad(
        "abs",
        Ped::Sim,
        sim_image("e2e", false),
        &[&ann],
        &[],
        None,
        &["/etc/hostname", "absolute"],
    );
}

#[test]
fn bad_wrong_arch_on_sim() {
    // The QEMU board's aarch64 ELF in an image for this host.
    let img = custom_image(
        "aarch64-on-sim",
        "linux",
        micrun_tests::oci::host_arch(),
        |b| b.file("/firmware.elf", qemu_firmware_bytes(false), 0o755),
    );
    bad(
        "arch-sim",
        Ped::Sim,
        img,
        &[],
        &[],
        None,
        &["elf", "aarch64", std::env::consts::ARCH],
    );
}

#[test]
fn bad_wrong_arch_on_qemu() {
    // The host simulator in an image that claims linux/arm64.
    let img = custom_image("host-on-qemu", "linux", "arm64", |b| {
        b.file("/firmware.elf", sim_firmware_bytes(), 0o755)
    });
    bad(
        "arch-qemu",
        Ped::Qemu,
        img,
        &[],
        &[],
        None,
        &["elf", std::env::consts::ARCH, "aarch64"],
    );
}

#[test]
fn bad_not_an_elf() {
    let img = custom_image("text", "linux", micrun_tests::oci::host_arch(), |b| {
        b.file(
            "/firmware.elf",
            b"#!/bin/sh\necho not firmware\n".to_vec(),
            0o755,
        )
    });
    bad("notelf", Ped::Sim, img, &[], &[], None, &["not an elf"]);
}

#[test]
fn bad_hash_mismatch() {
    let wrong = sha256_hex(b"some other firmware");
    let ann = format!("{ANN_FIRMWARE_HASH}={wrong}");
    bad(
        "hash",
        Ped::Sim,
        sim_image("e2e", false),
        &[&ann],
        &[],
        None,
        &["firmware_hash", &wrong],
    );
}

#[test]
fn bad_hash_malformed() {
    let ann = format!("{ANN_FIRMWARE_HASH}=xyz123");
    bad(
        "hashfmt",
        Ped::Sim,
        sim_image("e2e", false),
        &[&ann],
        &[],
        None,
        &["firmware_hash", "xyz123"],
    );
}

#[test]
fn bad_pedestal_unknown() {
    // The pedestal annotation given twice: ctr keeps the last.
    let ann = format!("{ANN_PEDESTAL}=bogus");
    bad(
        "ped-bogus",
        Ped::Sim,
        sim_image("e2e", false),
        &[&ann],
        &[],
        None,
        &[ANN_PEDESTAL, "bogus"],
    );
}

#[test]
fn bad_pedestal_unavailable() {
    let ann = format!("{ANN_PEDESTAL}=xen");
    bad(
        "ped-xen",
        Ped::Sim,
        sim_image("e2e", false),
        &[&ann],
        &[],
        None,
        &["xen", "not available"],
    );
}

#[test]
fn bad_sim_not_enabled() {
    // A daemon of its own: the config is the daemon's environment.
    let env = Env::start_with(|c| {
        c.sim_enable = false;
        c.default_pedestal = Some("qemu".into());
    });
    let ns = env.namespace("bad-sim-off");
    let id = unique_id("bad-sim-off");
    let extra = annotations(Ped::Sim, &[]);
    expect_create_error(
        &env,
        &ns,
        Some(&sim_image("e2e", false)),
        &id,
        &extra,
        &["sim", "not enabled"],
    );
}

/// The runtime options' config file (CRI `ConfigPath`; here `ctr run
/// --runtime-config-path`) wins over the shim's `MICRUN_CONFIG`.
#[test]
fn runtime_options_config_path() {
    let env = Env::shared();
    let ns = env.namespace("optcfg");
    let img = sim_image("e2e", false);
    let extra = annotations(Ped::Sim, &[]);
    // The same config with sim disabled: Create fails and names that file.
    let mut off = env.config().clone();
    off.sim_enable = false;
    off.default_pedestal = Some("qemu".into());
    let off_path = env.dir().join("micrun-sim-off.toml");
    off.write(&off_path).unwrap();
    let mut with_path = vec![
        "--runtime-config-path".to_string(),
        off_path.to_string_lossy().into_owned(),
    ];
    with_path.extend(extra.iter().cloned());
    let id = unique_id("optcfg-off");
    expect_create_error(
        &env,
        &ns,
        Some(&img),
        &id,
        &with_path,
        &["not enabled", &off_path.to_string_lossy()],
    );
    // The shim's own config (sim enabled) still runs the next container.
    let id = unique_id("optcfg-on");
    ok(&env, &id, env.run_detached(&ns, &img, &id, &strs(&extra)));
    wait_state(&env, &ns, &id, TaskState::Running);
    ns.kill(&id, "SIGKILL")
        .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));
    assert_eq!(exit_status(&env, &ns, &id), 137);
    ns.ctr_ok(&["containers", "rm", &id]).unwrap();
}

/// `default_pedestal = "auto"`: a container that names no pedestal gets what the
/// host has. With micad running (and no Xen): baremetal through micad. With
/// nothing (no micad, no Xen, no remote processor, no QEMU): Create fails listing
/// every check.
#[test]
fn auto_pedestal_follows_the_host() {
    let img = sim_image("e2e", false);
    let env = Env::start_with(|c| c.default_pedestal = Some("auto".into()));
    let ns = env.namespace("auto-micad");
    env.import(&ns, &img);
    let id = unique_id("auto-micad");
    ok(&env, &id, env.run_detached(&ns, &img, &id, &[]));
    wait_state(&env, &ns, &id, TaskState::Running);
    let micad = env.micad.as_ref().expect("emulator");
    assert_eq!(
        micad.instance(&id).map(|i| i.create.ped),
        Some("baremetal".to_string()),
        "{}",
        env.diag(&id)
    );
    ns.kill(&id, "SIGKILL")
        .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));
    assert_eq!(exit_status(&env, &ns, &id), 137);
    ns.ctr_ok(&["containers", "rm", &id]).unwrap();
    drop(ns);
    drop(env);

    let env = Env::start_with(|c| {
        c.default_pedestal = Some("auto".into());
        c.start_micad = false;
        c.qemu_binary = Some("/nonexistent/qemu-system-aarch64".into());
    });
    let ns = env.namespace("auto-none");
    let id = unique_id("auto-none");
    expect_create_error(
        &env,
        &ns,
        Some(&img),
        &id,
        &[],
        &[
            "no pedestal is available",
            "mica-create.socket does not exist",
            "proc/xen does not exist",
            "no processor under",
            "/nonexistent/qemu-system-aarch64",
        ],
    );
}

#[test]
fn bad_cpuset_invalid() {
    // ctr 1.6 has no --cpuset-cpus: give the whole spec (`ctr run --config`) with a
    // host directory as the rootfs.
    let env = Env::shared();
    let ns = env.namespace("bad-cpuset");
    let id = unique_id("bad-cpuset");
    let dir = env.dir().join(format!("spec-{id}"));
    std::fs::create_dir_all(dir.join("rootfs")).unwrap();
    std::fs::write(dir.join("rootfs/firmware.elf"), sim_firmware_bytes()).unwrap();
    let spec = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": ["/firmware.elf"],
            "cwd": "/",
            "env": ["PATH=/usr/bin:/bin"]
        },
        "root": { "path": dir.join("rootfs") },
        "annotations": { ANN_PEDESTAL: "sim" },
        "linux": { "resources": { "cpu": { "cpus": "abc" } } }
    });
    let spec_path = dir.join("config.json");
    std::fs::write(&spec_path, serde_json::to_vec(&spec).unwrap()).unwrap();
    let extra = vec![
        "--config".to_string(),
        spec_path.to_string_lossy().into_owned(),
    ];
    expect_create_error(&env, &ns, None, &id, &extra, &["cpuset", "abc"]);
}

#[test]
fn bad_memory_below_floor() {
    bad(
        "memfloor",
        Ped::Sim,
        sim_image("e2e", false),
        &[],
        &["--memory-limit", "1048576"],
        None,
        &["memory", "floor"],
    );
}

#[test]
fn bad_min_memory_not_numeric() {
    let ann = format!("{ANN_MIN_MEMORY_MB}=abc");
    bad(
        "minmem",
        Ped::Sim,
        sim_image("e2e", false),
        &[&ann],
        &[],
        None,
        &["min_memory_mb", "abc"],
    );
}

#[test]
fn bad_auto_close_timeout() {
    let ann = format!("{ANN_AUTO_CLOSE_TIMEOUT}=soon");
    bad(
        "autoclose",
        Ped::Sim,
        sim_image("e2e", false),
        &[&ann],
        &[],
        None,
        &["auto_close_timeout", "soon"],
    );
}

#[test]
fn bad_id_too_long_for_qemu() {
    // containerd takes ids up to 76 characters; the QEMU sockets under
    // <state_dir>/... would pass the 107-byte limit of unix socket paths.
    let mut id = unique_id("long");
    id.push('-');
    while id.len() < 76 {
        id.push('x');
    }
    bad(
        "longid",
        Ped::Qemu,
        micrun_tests::e2e::qemu_image("e2e", false),
        &[],
        &[],
        Some(id),
        &["qemu", "107"],
    );
}

/// A pod as the CRI plugin makes it: the sandbox container (no RTOS, a placeholder
/// alive until killed) and an application container with the same
/// `io.kubernetes.cri.sandbox-id`, served by one shim.
#[test]
fn pod_sandbox_and_container_share_one_shim() {
    let env = Env::shared();
    let ns = env.namespace("pod");
    let (img, _) = image_and_args(Ped::Sim, false);
    env.import(&ns, &img);
    let pod = unique_id("pod");
    let app = unique_id("app");
    let sandbox_ann = annotations(
        Ped::Sim,
        &[
            "io.kubernetes.cri.container-type=sandbox",
            &format!("io.kubernetes.cri.sandbox-id={pod}"),
        ],
    );
    ok(
        &env,
        &pod,
        env.run_detached(&ns, &img, &pod, &strs(&sandbox_ann)),
    );
    wait_state(&env, &ns, &pod, TaskState::Running);
    let app_ann = annotations(
        Ped::Sim,
        &[
            "io.kubernetes.cri.container-type=container",
            &format!("io.kubernetes.cri.sandbox-id={pod}"),
        ],
    );
    ok(
        &env,
        &app,
        env.run_detached(&ns, &img, &app, &strs(&app_ann)),
    );
    wait_state(&env, &ns, &app, TaskState::Running);

    let s1 = shim_socket_of(&env.cd.bundle_dir(ns.name(), &pod));
    let s2 = shim_socket_of(&env.cd.bundle_dir(ns.name(), &app));
    assert!(
        s1.is_some() && s1 == s2,
        "one shim per pod: {s1:?} vs {s2:?}"
    );
    let tasks = ns.tasks().unwrap();
    let pid_of = |id: &str| tasks.iter().find(|t| t.id == id).map(|t| t.pid).unwrap();
    assert_ne!(
        pid_of(&app),
        pid_of(&pod),
        "the app has its own (sim) process"
    );

    ns.kill(&app, "SIGKILL").unwrap();
    assert_eq!(exit_status(&env, &ns, &app), 137);
    ns.ctr_ok(&["containers", "rm", &app]).unwrap();
    // The sandbox is still there after its app is gone.
    assert_eq!(state(&env, &ns, &pod), Some(TaskState::Running));
    ns.kill(&pod, "SIGTERM").unwrap();
    assert_eq!(exit_status(&env, &ns, &pod), 143);
    ns.ctr_ok(&["containers", "rm", &pod]).unwrap();
}

// ---------------------------------------------------------------------------
// 13. micad misbehaving. Faults belong to the emulator, not to one container, so
//     these run on a daemon (and emulator) of their own, one fault at a time.

#[test]
fn micad_pause_is_unsupported() {
    let env = Env::shared();
    let ns = env.namespace("mpause");
    let (img, ann) = image_and_args(Ped::Micad, false);
    env.import(&ns, &img);
    let id = unique_id("mpause");
    ok(&env, &id, env.run_detached(&ns, &img, &id, &strs(&ann)));
    wait_state(&env, &ns, &id, TaskState::Running);
    let out = ns.ctr(&["tasks", "pause", &id]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "pause succeeded{}", env.diag(&id));
    assert!(
        stderr.contains("does not support pause through micad"),
        "{stderr}{}",
        env.diag(&id)
    );
    assert_eq!(state(&env, &ns, &id), Some(TaskState::Running));
    ns.kill(&id, "SIGKILL")
        .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));
    assert_eq!(exit_status(&env, &ns, &id), 137);
    ns.ctr_ok(&["containers", "rm", &id]).unwrap();
    assert_micad_gone(&env, &id);
}

#[test]
fn micad_faults() {
    use micrun_tests::micad::{Fault, Op};
    // driver = micad: with micad down, `auto` would fall back to the direct driver.
    let mut env = Env::start_with(|c| c.baremetal_driver = "micad".into());
    let ns = env.namespace("mfault");
    let (img, ann) = image_and_args(Ped::Micad, false);
    let micad = env.micad.as_ref().expect("the env runs a micad emulator");

    // micad refuses: its words reach the user.
    micad.set_fault(
        Op::Create,
        Some(Fault::Fail("no free core for baremetal\n".into())),
    );
    let id = unique_id("mrefuse");
    expect_create_error(
        &env,
        &ns,
        Some(&img),
        &id,
        &ann,
        &["micad refused", "no free core for baremetal"],
    );

    // micad hangs: the exchange times out (2 s in the test config).
    micad.set_fault(Op::Create, Some(Fault::Hang));
    let id = unique_id("mhang");
    let t0 = Instant::now();
    expect_create_error(&env, &ns, Some(&img), &id, &ann, &["did not answer", "2s"]);
    assert!(
        t0.elapsed() < T_ACT,
        "a hung micad held ctr {:?}",
        t0.elapsed()
    );
    micad.set_fault(Op::Create, None);

    // The console never appears (tty_wait is 3 s in the test config): Start
    // fails naming where it looked, the partition is removed, and the task ends
    // (STOPPED), so ctr's own Delete after the failed Start removes it.
    micad.set_tty_delay(Duration::from_secs(600));
    let id = unique_id("mnotty");
    env.import(&ns, &img);
    let mut args = vec!["run".to_string()];
    args.extend(env.run_args(&img, &strs(&ann)));
    args.push(img.name.clone());
    args.push(id.clone());
    let out = env
        .cd
        .ctr_with(Some(ns.name()), &strs(&args), None, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let what = format!(
        "ctr run {id}: {}\nstderr: {stderr:?}{}",
        out.status,
        env.diag(&id)
    );
    assert!(!out.status.success(), "started without a console: {what}");
    let tty = format!("ttyRPMSG_{id}_0");
    assert!(
        stderr.contains("did not appear") && stderr.contains(&tty),
        "the error does not say which console never came: {what}"
    );
    assert_micad_gone(&env, &id);
    assert_eq!(state(&env, &ns, &id), None, "a task is left: {what}");
    ns.ctr_ok(&["containers", "rm", &id]).unwrap();
    assert_nothing_left(&env, &ns, &id);
    micad.set_tty_delay(Duration::ZERO);

    // An id micad's 66-byte name field cannot hold.
    let id = format!("{}-{}", unique_id("mlong"), "x".repeat(60));
    expect_create_error(
        &env,
        &ns,
        Some(&img),
        &id,
        &ann,
        &["not valid for pedestal baremetal", "at most 65 bytes"],
    );
    assert!(
        micad.creates().iter().all(|c| c.name != id),
        "the over-long id reached micad"
    );

    // micad restarts while a partition runs: the partition keeps running (micad
    // cannot reach it any more), its console goes, and the task ends with 255 and
    // a log line that says why, instead of a 0 that would claim a clean exit.
    // Delete still completes. (`env.cd.namespace`: it borrows only the daemon,
    // so the emulator can be restarted meanwhile.)
    drop(ns);
    let ns = env.cd.namespace("mrestart");
    env.import(&ns, &img);
    let id = unique_id("mrestart");
    ok(&env, &id, env.run_detached(&ns, &img, &id, &strs(&ann)));
    wait_state(&env, &ns, &id, TaskState::Running);
    env.micad.as_mut().expect("emulator").restart().unwrap();
    assert_eq!(exit_status(&env, &ns, &id), 255, "{}", env.diag(&id));
    assert!(
        env.log_lines(&id, 50).contains("without an exit report"),
        "no reason in the log{}",
        env.diag(&id)
    );
    ns.ctr_ok(&["containers", "rm", &id]).unwrap();
    // micrun's side is clean (no task, state, mount or shim); the partition
    // itself outlives micad's restart, as on a device (the emulator ends it).
    assert_eq!(state(&env, &ns, &id), None, "{}", env.diag(&id));
    assert!(
        wait_until(Duration::from_secs(10), || env
            .state_entries(&id)
            .is_empty()
            && env.shim_pids_of(&id).is_empty()),
        "micrun state or shim left{}",
        env.diag(&id)
    );
    assert!(
        env.micad
            .as_ref()
            .is_some_and(|m| !m.orphan_pids().is_empty()),
        "the partition should outlive micad's restart"
    );

    // micad not running: says how to start it.
    drop(ns);
    env.micad.as_mut().expect("emulator").stop();
    let ns = env.namespace("mdown");
    let id = unique_id("mdown");
    expect_create_error(
        &env,
        &ns,
        Some(&img),
        &id,
        &ann,
        &["micad is not running", "systemctl start micad"],
    );
}

/// One container per remote processor: a second container on a busy processor
/// fails at Create naming the processor and the container that holds it, and
/// leaves nothing (the first keeps running).
#[test]
fn rproc_busy_processor() {
    let env = Env::shared_remoteproc();
    let ns = env.namespace("rbusy");
    let img = sim_image("e2e", false);
    env.import(&ns, &img);
    let cpu = next_remoteproc();
    let ann = annotations(
        Ped::Rproc,
        &[&format!("org.openeuler.micrun.ped.remoteproc={cpu}")],
    );
    let first = unique_id("rbusy-a");
    ok(
        &env,
        &first,
        env.run_detached(&ns, &img, &first, &strs(&ann)),
    );
    wait_state(&env, &ns, &first, TaskState::Running);
    let second = unique_id("rbusy-b");
    expect_create_error(
        &env,
        &ns,
        Some(&img),
        &second,
        &ann,
        &[
            &format!("remote processor {cpu}"),
            &format!("in use by container \"{first}\""),
        ],
    );
    assert_eq!(state(&env, &ns, &first), Some(TaskState::Running));
    ns.kill(&first, "SIGKILL")
        .unwrap_or_else(|e| panic!("{e}{}", env.diag(&first)));
    assert_eq!(exit_status(&env, &ns, &first), 137);
    ns.ctr_ok(&["containers", "rm", &first]).unwrap();
    assert_partition_gone(&env, Ped::Rproc, &first);
}

/// `xl` failing: Create fails with xl's own words and leaves no domain, no
/// domain config and no micrun state; a hardware pedestal this host lacks is
/// refused with what was checked.
#[test]
fn xl_failing_and_xen_missing() {
    let fake = std::path::Path::new(env!("CARGO_BIN_EXE_fake-xl"));
    let mut env = Env::start_with(|c| {
        c.start_micad = false;
        c.fake_xl = Some(fake.to_path_buf());
    });
    env.xen.as_mut().expect("fake Xen host").fail(
        "create",
        "libxl: error: libxl_create.c: cannot allocate 64 MiB for the domain",
        0,
    );
    let ns = env.namespace("xlfail");
    let (img, ann) = image_and_args(Ped::Xen, false);
    let id = unique_id("xlfail");
    expect_create_error(
        &env,
        &ns,
        Some(&img),
        &id,
        &ann,
        &["xl create", "cannot allocate 64 MiB for the domain"],
    );
    let xen = env.xen.as_ref().expect("fake Xen host");
    assert!(xen.domain(&id).is_none(), "a domain was left");
    drop(ns);

    // The same daemon, Xen gone (its marker removed): not available, and why.
    std::fs::remove_file(env.xen.as_ref().expect("fake").marker()).unwrap();
    let ns = env.namespace("xlgone");
    let id = unique_id("xlgone");
    expect_create_error(
        &env,
        &ns,
        Some(&img),
        &id,
        &ann,
        &["pedestal xen is not available", "proc-xen"],
    );
}

// ---------------------------------------------------------------------------
// The scenarios above on each pedestal they apply to (pause/resume: only where
// the pedestal can pause; raw SIGUSR1: the images with a raw build).

/// `#[test] fn name() { call; }` for each `name => call`.
macro_rules! tests {
    ($($name:ident => $call:expr),+ $(,)?) => {
        $(
            #[test]
            fn $name() {
                $call;
            }
        )+
    };
}

tests! {
    fg_echo_exit_sim => fg_echo_exit(Ped::Sim),
    fg_echo_exit_qemu => fg_echo_exit(Ped::Qemu),
    fg_echo_exit_micad => fg_echo_exit(Ped::Micad),
    fg_echo_exit_xl => fg_echo_exit(Ped::Xen),
    fg_echo_exit_rproc => fg_echo_exit(Ped::Rproc),
}

tests! {
    term_agent_sim => term_agent(Ped::Sim),
    term_agent_qemu => term_agent(Ped::Qemu),
    term_agent_micad => term_agent(Ped::Micad),
    term_agent_xl => term_agent(Ped::Xen),
    term_agent_rproc => term_agent(Ped::Rproc),
}

tests! {
    usr1_agent_sim => usr1_agent(Ped::Sim),
    usr1_agent_qemu => usr1_agent(Ped::Qemu),
    usr1_agent_micad => usr1_agent(Ped::Micad),
    usr1_agent_xl => usr1_agent(Ped::Xen),
    usr1_agent_rproc => usr1_agent(Ped::Rproc),
}

tests! {
    hang_sim => hang(Ped::Sim),
    hang_qemu => hang(Ped::Qemu),
    hang_micad => hang(Ped::Micad),
    hang_xl => hang(Ped::Xen),
    hang_rproc => hang(Ped::Rproc),
}

tests! {
    pause_resume_sim => pause_resume(Ped::Sim),
    pause_resume_qemu => pause_resume(Ped::Qemu),
    pause_resume_xl => pause_resume(Ped::Xen),
}

tests! {
    metrics_ps_sim => metrics_ps(Ped::Sim),
    metrics_ps_qemu => metrics_ps(Ped::Qemu),
    metrics_ps_micad => metrics_ps(Ped::Micad),
    metrics_ps_xl => metrics_ps(Ped::Xen),
    metrics_ps_rproc => metrics_ps(Ped::Rproc),
}

tests! {
    attach_sim => attach(Ped::Sim),
    attach_qemu => attach(Ped::Qemu),
    attach_micad => attach(Ped::Micad),
    attach_xl => attach(Ped::Xen),
    attach_rproc => attach(Ped::Rproc),
}

tests! {
    tty_sim => tty(Ped::Sim),
    tty_qemu => tty(Ped::Qemu),
    tty_micad => tty(Ped::Micad),
    tty_xl => tty(Ped::Xen),
    tty_rproc => tty(Ped::Rproc),
}

tests! {
    shim_killed_sim => shim_killed(Ped::Sim),
    shim_killed_qemu => shim_killed(Ped::Qemu),
    shim_killed_micad => shim_killed(Ped::Micad),
    shim_killed_xl => shim_killed(Ped::Xen),
    shim_killed_rproc => shim_killed(Ped::Rproc),
}

tests! {
    usr1_raw_sim => usr1_raw(Ped::Sim),
    usr1_raw_qemu => usr1_raw(Ped::Qemu),
}

tests! {
    term_raw_sim => kill_detached(Ped::Sim, true, "SIGTERM", 143),
    term_raw_qemu => kill_detached(Ped::Qemu, true, "SIGTERM", 143),
    sigkill_sim => kill_detached(Ped::Sim, false, "SIGKILL", 137),
    sigkill_micad => kill_detached(Ped::Micad, false, "SIGKILL", 137),
    sigkill_xl => kill_detached(Ped::Xen, false, "SIGKILL", 137),
    sigkill_rproc => kill_detached(Ped::Rproc, false, "SIGKILL", 137),
    sigkill_qemu => kill_detached(Ped::Qemu, false, "SIGKILL", 137),
}

// ---------------------------------------------------------------------------
// Small things a user hits (issue 8, item 7).

/// `ctr run --config SPEC` of a spec with a host directory as the rootfs holding the
/// sim firmware; `edit` changes the spec first.
fn expect_spec_error(tag: &str, edit: impl FnOnce(&mut serde_json::Value), keywords: &[&str]) {
    let env = Env::shared();
    let ns = env.namespace(tag);
    let id = unique_id(tag);
    let dir = env.dir().join(format!("spec-{id}"));
    std::fs::create_dir_all(dir.join("rootfs")).unwrap();
    std::fs::write(dir.join("rootfs/firmware.elf"), sim_firmware_bytes()).unwrap();
    let mut spec = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": ["/firmware.elf"],
            "cwd": "/",
            "env": ["PATH=/usr/bin:/bin"]
        },
        "root": { "path": dir.join("rootfs") },
        "annotations": { ANN_PEDESTAL: "sim" }
    });
    edit(&mut spec);
    let spec_path = dir.join("config.json");
    std::fs::write(&spec_path, serde_json::to_vec(&spec).unwrap()).unwrap();
    let extra = vec![
        "--config".to_string(),
        spec_path.to_string_lossy().into_owned(),
    ];
    expect_create_error(&env, &ns, None, &id, &extra, keywords);
}

/// ctr takes `--memory-limit` as an unsigned number and hands containerd an int64:
/// 18446744073709551614 arrives as −2, which must not pass for "no limit".
#[test]
fn bad_memory_limit_wrapped_negative() {
    bad(
        "memneg",
        Ped::Sim,
        sim_image("e2e", false),
        &[],
        &["--memory-limit", "18446744073709551614"],
        None,
        &[
            "linux.resources.memory.limit is -2",
            "18446744073709551614",
            "cannot be negative",
        ],
    );
}

#[test]
fn bad_memory_limit_negative_in_spec() {
    expect_spec_error(
        "memneg-spec",
        |spec| spec["linux"] = serde_json::json!({ "resources": { "memory": { "limit": -5 } } }),
        &["linux.resources.memory.limit is -5", "cannot be negative"],
    );
}

#[test]
fn bad_spec_without_root() {
    expect_spec_error(
        "noroot",
        |spec| {
            spec.as_object_mut().unwrap().remove("root");
        },
        &["has no `root`", "root filesystem"],
    );
}

/// A 10 KB annotation value is quoted by its first 200 bytes and its length.
#[test]
fn bad_long_annotation_is_quoted_short() {
    let value = "9".repeat(10 * 1024);
    let ann = format!("{ANN_MIN_MEMORY_MB}={value}");
    let env = env_for(Ped::Sim);
    let ns = env.namespace("bad-longann");
    let id = unique_id("bad-longann");
    let extra = annotations(Ped::Sim, &[&ann]);
    let stderr = expect_create_error(
        &env,
        &ns,
        Some(&sim_image("e2e", false)),
        &id,
        &extra,
        &["min_memory_mb", "(10240 bytes in all)"],
    );
    assert!(
        stderr.len() < 2048 && !stderr.contains(&value[..300]),
        "{} bytes of error: {stderr}",
        stderr.len()
    );
}

/// `-h` / `--help` print the usage on stdout and exit 0, wherever they stand among
/// the flags; a flag's value that happens to be `-h` is not a request for help.
#[test]
fn shim_help() {
    let shim = micrun_tests::e2e::shim_binary();
    for args in [
        &["-h"][..],
        &["--help"],
        &["-help"],
        &["-namespace", "x", "-h", "start"],
    ] {
        let out = std::process::Command::new(&shim)
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}: {out:?}");
        for word in [
            "Usage: containerd-shim-mica-v2",
            "start",
            "delete",
            "-namespace",
            "-id",
            "-address",
            "-publish-binary",
            "-socket",
            "-bundle",
            "-debug",
            "-version",
            "-info",
        ] {
            assert!(stdout.contains(word), "{args:?}: no {word:?} in {stdout}");
        }
        assert!(out.stderr.is_empty(), "{args:?}: {out:?}");
    }
    // `-id -h`: an id, not help; the namespace is still required.
    let out = std::process::Command::new(&shim)
        .args(["-id", "-h", "start"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("-namespace is required"));
}

/// `-info` prints containerd's `RuntimeInfo`: name, version, the runtime options it
/// was given on stdin, and the OCI features document (typeurl's type URL, JSON) with
/// every micrun annotation from the shim's own table, its pedestals and the
/// protocol version.
#[test]
fn shim_info_is_a_runtime_info_with_features() {
    use containerd_shim::protos::protobuf::well_known_types::any::Any;
    use containerd_shim::protos::protobuf::Message;
    use containerd_shim::protos::types::introspection::RuntimeInfo;
    use std::io::Write;
    let shim = micrun_tests::e2e::shim_binary();
    let run = |stdin: &[u8]| {
        let mut child = std::process::Command::new(&shim)
            .arg("-info")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        RuntimeInfo::parse_from_bytes(&out.stdout).unwrap()
    };
    let info = run(b"");
    assert_eq!(info.name, RUNTIME);
    assert_eq!(info.version.version, env!("CARGO_PKG_VERSION"));
    assert!(info.options.is_none());
    assert_eq!(
        info.features.type_url,
        "types.containerd.io/opencontainers/runtime-spec/1/features/Features"
    );
    let features: serde_json::Value = serde_json::from_slice(&info.features.value).unwrap();
    let listed: Vec<&str> = features["potentiallyUnsafeConfigAnnotations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for key in micrun_shim::annotations::KNOWN_KEYS {
        if key.starts_with(micrun_shim::annotations::PREFIX) {
            assert!(listed.contains(&key), "{key} not in {listed:?}");
        }
    }
    assert!(listed.contains(&ANN_PEDESTAL) && listed.contains(&ANN_AGENT));
    assert_eq!(features["ociVersionMin"], "1.0.0");
    assert_eq!(
        features["annotations"]["org.openeuler.micrun.pedestals"],
        "qemu,sim,xen,baremetal"
    );
    let proto = micrun_proto::PROTOCOL_VERSION;
    assert_eq!(
        features["annotations"]["org.openeuler.micrun.protocol.version"],
        format!("{}.{}", proto.major, proto.minor)
    );
    assert_eq!(
        info.annotations["org.openeuler.micrun.pedestals"],
        "qemu,sim,xen,baremetal"
    );

    // The runtime options containerd passes on stdin come back as `options`.
    let options = Any {
        type_url: "runtimeoptions.v1.Options".into(),
        value: b"\x12\x10/etc/micrun.toml".to_vec(),
        ..Default::default()
    };
    let info = run(&options.write_to_bytes().unwrap());
    assert_eq!(info.options.type_url, options.type_url);
    assert_eq!(info.options.value, options.value);
}

/// Xen through micad: micad's partition is a Xen domain named after the container
/// (the emulator makes it in the fake Xen host with micad's config, as micad's
/// libxl does), and Pause / Resume are `xl pause <id>` / `xl unpause <id>`.
#[test]
fn micad_xen_pause_resume_through_xl() {
    let fake = std::path::Path::new(env!("CARGO_BIN_EXE_fake-xl"));
    let env = Env::start_with(|c| {
        c.fake_xl = Some(fake.to_path_buf());
        c.xen_driver = "micad".into();
    });
    let events = env.cd.events().expect("ctr events");
    let ns = env.namespace("mxpause");
    let img = micrun_tests::e2e::xen_image("e2e");
    env.import(&ns, &img);
    let id = unique_id("mxpause");
    let ann = vec!["--annotation".to_string(), format!("{ANN_PEDESTAL}=xen")];
    ok(&env, &id, env.run_detached(&ns, &img, &id, &strs(&ann)));
    wait_state(&env, &ns, &id, TaskState::Running);
    let xen = env.xen.as_ref().expect("a fake Xen host");
    let micad = env.micad.as_ref().expect("the micad emulator");
    assert_eq!(
        micad.instance(&id).map(|i| i.create.ped),
        Some("xen".to_string())
    );
    let domain = |field: &str| xen.domain(&id).map(|d| d[field].clone());
    assert_eq!(
        domain("state"),
        Some("running".into()),
        "{:?}",
        xen.xl_calls()
    );

    ns.ctr_ok(&["tasks", "pause", &id])
        .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));
    wait_state(&env, &ns, &id, TaskState::Paused);
    assert_eq!(domain("state"), Some("paused".into()));
    assert!(
        xen.xl_calls().contains(&format!("pause {id}")),
        "{:?}",
        xen.xl_calls()
    );
    ns.ctr_ok(&["tasks", "resume", &id])
        .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));
    wait_state(&env, &ns, &id, TaskState::Running);
    assert_eq!(domain("state"), Some("running".into()));
    let topics = events.topics(ns.name(), &id);
    let paused = topics.iter().position(|t| t == "/tasks/paused");
    let resumed = topics.iter().position(|t| t == "/tasks/resumed");
    assert!(
        matches!((paused, resumed), (Some(a), Some(b)) if a < b),
        "events {topics:?}{}",
        env.diag(&id)
    );

    ns.kill(&id, "SIGKILL")
        .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));
    assert_eq!(exit_status(&env, &ns, &id), 137);
    ns.ctr_ok(&["containers", "rm", &id]).unwrap();
    assert_micad_gone(&env, &id);
    assert!(
        wait_until(Duration::from_secs(5), || xen.domain(&id).is_none()),
        "micad's domain is left: {:?}",
        xen.domain(&id)
    );
}

/// On baremetal through micad Pause stays refused, and the error says why: micad's
/// stop/start reboots the core.
#[test]
fn micad_baremetal_pause_says_why() {
    let env = Env::shared();
    let ns = env.namespace("mbpause");
    let (img, ann) = image_and_args(Ped::Micad, false);
    env.import(&ns, &img);
    let id = unique_id("mbpause");
    ok(&env, &id, env.run_detached(&ns, &img, &id, &strs(&ann)));
    wait_state(&env, &ns, &id, TaskState::Running);
    let out = ns.ctr(&["tasks", "pause", &id]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "pause succeeded{}", env.diag(&id));
    assert!(
        stderr.contains("reboots the remote core") && stderr.contains("lose its state"),
        "{stderr}{}",
        env.diag(&id)
    );
    assert_eq!(state(&env, &ns, &id), Some(TaskState::Running));
    ns.kill(&id, "SIGKILL")
        .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));
    assert_eq!(exit_status(&env, &ns, &id), 137);
    ns.ctr_ok(&["containers", "rm", &id]).unwrap();
    assert_micad_gone(&env, &id);
}
