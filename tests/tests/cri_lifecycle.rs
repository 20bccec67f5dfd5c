//! The lifecycle of RTOS containers through containerd's own CRI plugin, as
//! kubelet drives it (`micrun_tests::cri`), on containerd 1.6 (`version = 2`
//! config) and 2.1 (`version = 3`): how an RTOS ends and what ContainerStatus and
//! the termination message say, StopContainer's timeout, UpdateContainerResources,
//! ListContainerStats, bad input, and the QEMU pedestal. The shared fixtures and the
//! daemon's set-up are those of `cri_pods.rs`; the RTOS is the demo firmware
//! (`sim` pedestal unless said), whose shell runs the commands that the
//! simulator's `--input` types at boot (the container config's `args`).
//!
//! | tests (`v1_6::*`, `v2_1::*`) | what |
//! |---|---|
//! | `exit_code_of_the_rtos` | shell `exit 7` → EXITED, exit code 7, reason `Error` (containerd's), empty message; a normal end writes no termination message |
//! | `panic_in_termination_message` | shell `panic` → exit code 101 (the agent's), reason `Error`; the shim writes `RTOS panicked (agent exit reason: panic), exit code 101` to the host file mounted at `terminationMessagePath` (kubelet's mount, given as kubelet gives it) |
//! | `silent_agent_in_termination_message` | shell `hang` (the agent stops answering) → the shim's liveness check (2 s in the tests' config) destroys the partition: exit code 137, termination message `RTOS agent silent for … (peer lost) …` |
//! | `stop_timeout_kills` | a firmware whose application ignores the agent's stop (`micrun-rtos-sim --ignore-stop`; it prints `stop ignored`), shim `stop_grace` 5 s: StopContainer(2 s) → the CRI plugin SIGKILLs after its timeout, exit code 137, returns in 1.5–4.5 s; StopContainer(10 s) → the shim forces the stop after its `stop_grace`, exit code 143, returns in 4.5–9 s; a raw firmware is ended at once by the stop signal (143): it has nothing to ignore it with |
//! | `update_resources` | UpdateContainerResources (memory limit) reaches the pedestal (ContainerStats' `available_bytes` + `working_set_bytes` = the new limit); with `runtime.static_resource=true` it is refused with the shim's message |
//! | `list_stats_of_a_pod` | ListContainerStats of a pod: its two RTOS containers, with CPU time and memory; the CPU time of the one that floods its console grows between two samples |
//! | `bad_no_firmware`, `bad_wrong_arch`, `bad_unknown_pedestal` | StartContainer (where the shim's Create runs) fails with the shim's message (as through `ctr`); ContainerStatus EXITED / `StartError` with it; once removed nothing is left, no shim of the container |
//! | `wrong_handler_runs_runc` | an RTOS image in a pod of handler `runc`: no micrun shim takes part; StartContainer succeeds, runc's init fails to exec the aarch64 `/firmware.elf` (`exec /firmware.elf: exec format error` on stderr in the CRI log), EXITED with 1, `Error` |
//! | `qemu_pod` | the qemu pedestal through CRI (pod annotation `ped.pedestal=qemu`): an image labelled `linux/arm64` only, imported with `--all-platforms`, is known to the CRI plugin of an amd64 node and runs; the aarch64 firmware boots in QEMU, its console is in the CRI log, a memory update is refused with the pedestal's reason, StopContainer → exit code 0, `Completed`. CRI's 64-character container ids need a micrun `state_dir` of at most 25 bytes for QEMU's sockets: where the test daemon's is 26, StartContainer's refusal naming the limit is checked instead |
//!
//! Needs what `cri_pods.rs` needs, and `qemu-system-aarch64` for `qemu_pod`.

use std::path::Path;
use std::time::{Duration, Instant};

use micrun_tests::containerd::Release;
use micrun_tests::cri::{self, connect, env, state_name, status, v1, Cri, Pod};
use micrun_tests::e2e::{
    custom_image, qemu_firmware_bytes, sim_image, unique_id, wait_until, Env, TestImage,
};

const PEDESTAL: &str = "org.openeuler.micrun.ped.pedestal";
const STATIC_RESOURCE: &str = "org.openeuler.micrun.runtime.static_resource";
/// The demo firmware's banner on the QEMU board.
const QEMU_BANNER: &str = "micrun demo shell on qemu-virt";

/// A sim container `name` whose shell is typed `input` at boot.
fn sim_config(img: &TestImage, name: &str, input: &str) -> v1::ContainerConfig {
    let mut config = cri::container_config(name, &img.name, &[]);
    if !input.is_empty() {
        config.args = vec!["--input".into(), input.into()];
    }
    config
}

/// An empty termination message file for `name`, as kubelet creates one.
fn termination_file(pod: &Pod<'_>, name: &str) -> std::path::PathBuf {
    let f = pod.log_dir.join(format!("{name}.termination-log"));
    std::fs::write(&f, b"").expect("create the termination message file");
    f
}

/// Creates and starts `config` in `pod`; panics with the daemon's diagnostics.
fn start(env: &Env, pod: &Pod<'_>, config: &v1::ContainerConfig) -> String {
    let cid = pod.create(env, config);
    pod.cri
        .start_container(&cid)
        .unwrap_or_else(|e| panic!("StartContainer: {e:?}{}", env.diag(&cid)));
    cid
}

/// Waits (up to `timeout`) for `cid` to be EXITED; its status.
fn wait_exited(env: &Env, cri: &Cri, cid: &str, timeout: Duration) -> v1::ContainerStatus {
    wait_until(timeout, || {
        state_name(status(env, cri, cid).state) == "CONTAINER_EXITED"
    });
    let st = status(env, cri, cid);
    assert_eq!(
        state_name(st.state),
        "CONTAINER_EXITED",
        "{st:?}{}",
        env.diag(cid)
    );
    st
}

/// Removes `cid`; nothing of it is left.
fn remove_clean(env: &Env, cri: &Cri, cid: &str) {
    cri.remove_container(cid)
        .unwrap_or_else(|e| panic!("RemoveContainer {cid}: {e:?}{}", env.diag(cid)));
    assert_eq!(
        cri::leftovers(env, cid),
        Vec::<String>::new(),
        "{}",
        env.diag(cid)
    );
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

// ---- 1. how an RTOS ends: exit code, reason, message ----

fn exit_code_of_the_rtos(version: &str) {
    let env = env(version);
    let img = sim_image("cri", false);
    cri::import_k8s(&env, &img);
    let cri = connect(&env);
    let pod = Pod::run(&env, &cri, "exit", &[(PEDESTAL, "sim")]);
    let term = termination_file(&pod, "rtos");
    let mut config = sim_config(&img, "rtos", "exit 7\r");
    cri::with_termination_log(&mut config, &term, "/dev/termination-log");
    let cid = start(&env, &pod, &config);
    let st = wait_exited(&env, &cri, &cid, Duration::from_secs(15));
    assert_eq!(
        (st.exit_code, st.reason.as_str(), st.message.as_str()),
        (7, "Error", ""),
        "the RTOS's own exit code; containerd's reason: {st:?}"
    );
    assert_eq!(read(&term), "", "a normal end has nothing to explain");
    remove_clean(&env, &cri, &cid);
}

fn panic_in_termination_message(version: &str) {
    let env = env(version);
    let img = sim_image("cri", false);
    cri::import_k8s(&env, &img);
    let cri = connect(&env);
    let pod = Pod::run(&env, &cri, "panic", &[(PEDESTAL, "sim")]);
    let term = termination_file(&pod, "rtos");
    let mut config = sim_config(&img, "rtos", "panic\r");
    cri::with_termination_log(&mut config, &term, "/dev/termination-log");
    let cid = start(&env, &pod, &config);
    let st = wait_exited(&env, &cri, &cid, Duration::from_secs(15));
    assert_eq!((st.exit_code, st.reason.as_str()), (101, "Error"), "{st:?}");
    assert_eq!(
        read(&term),
        "RTOS panicked (agent exit reason: panic), exit code 101",
        "{}",
        env.diag(&cid)
    );
    remove_clean(&env, &cri, &cid);
}

/// Typed at boot: a flood longer than the agent's output ring holds before a
/// host connects, then `hang` (so the agent is connected when it hangs).
const HANG_AFTER_CONNECT: &str = "flood 100000\rhang\r";

fn silent_agent_in_termination_message(version: &str) {
    let env = env(version);
    let img = sim_image("cri", false);
    cri::import_k8s(&env, &img);
    let cri = connect(&env);
    let pod = Pod::run(&env, &cri, "silent", &[(PEDESTAL, "sim")]);
    let term = termination_file(&pod, "rtos");
    let mut config = sim_config(&img, "rtos", HANG_AFTER_CONNECT);
    cri::with_termination_log(&mut config, &term, "/dev/termination-log");
    let cid = start(&env, &pod, &config);
    // The liveness window is 5 s.
    let st = wait_exited(&env, &cri, &cid, Duration::from_secs(20));
    assert_eq!((st.exit_code, st.reason.as_str()), (137, "Error"), "{st:?}");
    let msg = read(&term);
    assert!(
        msg.starts_with("RTOS agent silent for ") && msg.contains("(peer lost)"),
        "{msg:?}{}",
        env.diag(&cid)
    );
    assert!(msg.ends_with("exit code 137"), "{msg:?}");
    remove_clean(&env, &cri, &cid);
}

// ---- 2. StopContainer's timeout ----

fn stop_timeout_kills(version: &str) {
    // A daemon of its own whose shim waits 5 s for a stop to be answered (the
    // shared daemon's 3 s is too close to the CRI timeouts used here).
    let env = Env::start_release(Release::of(version), |c| {
        c.stop_grace = Some("5s".into());
    });
    cri::import_pause_image(&env);
    let img = sim_image("cri", false);
    let raw = sim_image("cri", true);
    cri::import_k8s(&env, &img);
    cri::import_k8s(&env, &raw);
    let cri = connect(&env);
    let pod = Pod::run(&env, &cri, "stopkill", &[(PEDESTAL, "sim")]);

    // A firmware that ignores the stop (it says so on its console) and keeps
    // answering the agent's liveness pings.
    let stop_it = |name: &str, timeout_s: i64| {
        let mut config = sim_config(&img, name, "");
        config.args = vec!["--ignore-stop".into()];
        let cid = start(&env, &pod, &config);
        let log = pod.log_path(name);
        let up = wait_until(Duration::from_secs(10), || {
            read(&log).contains("micrun demo shell")
        });
        assert!(up, "no banner{}", env.diag(&cid));
        let t = Instant::now();
        cri.stop_container(&cid, timeout_s)
            .unwrap_or_else(|e| panic!("StopContainer: {e:?}{}", env.diag(&cid)));
        let took = t.elapsed();
        let st = status(&env, &cri, &cid);
        assert_eq!(state_name(st.state), "CONTAINER_EXITED", "{st:?}");
        assert!(
            read(&log).contains("stop ignored"),
            "the agent got the stop: {:?}",
            read(&log)
        );
        (cid, st, took)
    };
    // The CRI timeout (2 s) ends first: the CRI plugin's SIGKILL → 137.
    let (cid, st, took) = stop_it("short", 2);
    assert_eq!((st.exit_code, st.reason.as_str()), (137, "Error"), "{st:?}");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_millis(4500),
        "StopContainer(2 s) took {took:?}"
    );
    remove_clean(&env, &cri, &cid);
    // The shim's stop_grace (5 s) ends first: it forces the stop signal's 143.
    let (cid, st, took) = stop_it("long", 10);
    assert_eq!((st.exit_code, st.reason.as_str()), (143, "Error"), "{st:?}");
    assert!(
        took >= Duration::from_millis(4500) && took < Duration::from_millis(9000),
        "StopContainer(10 s) with stop_grace 5 s took {took:?}"
    );
    remove_clean(&env, &cri, &cid);

    // A raw firmware cannot ignore it: the stop signal ends the partition.
    let config = cri::container_config("raw", &raw.name, &[]);
    let cid = start(&env, &pod, &config);
    let ok = wait_until(Duration::from_secs(10), || {
        read(&pod.log_path("raw")).contains("micrun demo shell")
    });
    assert!(ok, "no banner from the raw firmware{}", env.diag(&cid));
    let t = Instant::now();
    cri.stop_container(&cid, 10)
        .unwrap_or_else(|e| panic!("StopContainer: {e:?}{}", env.diag(&cid)));
    let took = t.elapsed();
    let st = status(&env, &cri, &cid);
    assert_eq!((st.exit_code, st.reason.as_str()), (143, "Error"), "{st:?}");
    assert!(took < Duration::from_secs(3), "raw stop took {took:?}");
    remove_clean(&env, &cri, &cid);
}

// ---- 3. UpdateContainerResources ----

fn memory(limit: i64) -> v1::LinuxContainerResources {
    v1::LinuxContainerResources {
        memory_limit_in_bytes: limit,
        ..Default::default()
    }
}

/// `available_bytes + working_set_bytes`: the limit the CRI plugin read.
fn memory_limit_seen(env: &Env, cri: &Cri, cid: &str) -> u64 {
    let s = cri
        .container_stats(cid)
        .unwrap_or_else(|e| panic!("ContainerStats: {e:?}{}", env.diag(cid)));
    let m = s.memory.as_ref().expect("memory stats");
    m.available_bytes.as_ref().map_or(0, |v| v.value)
        + m.working_set_bytes.as_ref().map_or(0, |v| v.value)
}

fn update_resources(version: &str) {
    let env = env(version);
    let img = sim_image("cri", false);
    cri::import_k8s(&env, &img);
    let cri = connect(&env);
    let pod = Pod::run(&env, &cri, "update", &[(PEDESTAL, "sim")]);
    let cid = start(&env, &pod, &sim_config(&img, "rtos", ""));
    let new_limit: i64 = 96 << 20;
    assert_ne!(memory_limit_seen(&env, &cri, &cid), new_limit as u64);
    cri.update_container_resources(&cid, memory(new_limit))
        .unwrap_or_else(|e| panic!("UpdateContainerResources: {e:?}{}", env.diag(&cid)));
    assert_eq!(
        memory_limit_seen(&env, &cri, &cid),
        new_limit as u64,
        "the new limit reached the pedestal{}",
        env.diag(&cid)
    );
    cri.stop_container(&cid, 10).expect("StopContainer");
    remove_clean(&env, &cri, &cid);

    // Refused: the container's resources are static.
    let mut config = sim_config(&img, "static", "");
    config
        .annotations
        .insert(STATIC_RESOURCE.into(), "true".into());
    let cid = start(&env, &pod, &config);
    let e = cri
        .update_container_resources(&cid, memory(new_limit))
        .expect_err("static resources cannot be updated");
    assert!(
        e.message().contains(STATIC_RESOURCE) && e.message().contains("cannot be updated"),
        "{e:?}"
    );
    assert_eq!(
        state_name(status(&env, &cri, &cid).state),
        "CONTAINER_RUNNING",
        "a refused update leaves the RTOS running"
    );
    cri.stop_container(&cid, 10).expect("StopContainer");
    remove_clean(&env, &cri, &cid);
}

// ---- 4. ListContainerStats ----

fn list_stats_of_a_pod(version: &str) {
    let env = env(version);
    let img = sim_image("cri", false);
    cri::import_k8s(&env, &img);
    let cri = connect(&env);
    let pod = Pod::run(&env, &cri, "liststats", &[(PEDESTAL, "sim")]);
    let idle = start(&env, &pod, &sim_config(&img, "idle", ""));
    let busy = start(&env, &pod, &sim_config(&img, "busy", "flood 400000000\r"));
    let ok = wait_until(Duration::from_secs(15), || {
        read(&pod.log_path("busy")).len() > 1 << 20
    });
    assert!(ok, "the flood did not start{}", env.diag(&busy));
    let sample = || -> Vec<(String, (u64, u64))> {
        let mut v: Vec<_> = cri
            .list_container_stats(&pod.id)
            .unwrap_or_else(|e| panic!("ListContainerStats: {e:?}{}", env.diag(&pod.id)))
            .iter()
            .map(|s| {
                let id = s.attributes.as_ref().map_or("", |a| a.id.as_str());
                (id.to_string(), cri::cpu_and_memory(s))
            })
            .collect();
        v.sort();
        v
    };
    let first = sample();
    let mut ids: Vec<&str> = first.iter().map(|(id, _)| id.as_str()).collect();
    let mut want = vec![idle.as_str(), busy.as_str()];
    ids.sort();
    want.sort();
    assert_eq!(ids, want, "the pod's two RTOS containers: {first:?}");
    for (id, (cpu, mem)) in &first {
        // An idle RTOS may not have used a clock tick of CPU yet.
        assert!(*mem > 0, "{id}: memory {mem} B");
        assert!(id != &busy || *cpu > 0, "{id}: cpu {cpu} ns while flooding");
    }
    let cpu_of = |v: &[(String, (u64, u64))], id: &str| {
        v.iter().find(|(i, _)| i == id).map_or(0, |(_, (c, _))| *c)
    };
    let before = cpu_of(&first, &busy);
    let grew = wait_until(Duration::from_secs(10), || {
        cpu_of(&sample(), &busy) > before
    });
    assert!(
        grew,
        "the flooding RTOS's CPU time stayed at {before} ns{}",
        env.diag(&busy)
    );
    assert!(
        !read(&pod.log_path("busy")).contains("flood done"),
        "still flooding while sampled"
    );
    for cid in [&idle, &busy] {
        cri.stop_container(cid, 10).expect("StopContainer");
        remove_clean(&env, &cri, cid);
    }
}

// ---- 5. bad input ----

/// `image` in a micrun pod: StartContainer (the shim's Create) fails naming
/// every one of `keywords`; the status says so; once removed nothing is left.
fn expect_refused(
    version: &str,
    tag: &str,
    image: TestImage,
    ann: &[(&str, &str)],
    keywords: &[&str],
) {
    let env = env(version);
    cri::import_k8s(&env, &image);
    let cri = connect(&env);
    let pod = Pod::run(&env, &cri, tag, &[(PEDESTAL, "sim")]);
    let config = cri::container_config("rtos", &image.name, ann);
    let cid = pod.create(&env, &config);
    let e = cri
        .start_container(&cid)
        .expect_err("the shim refuses the container");
    let low = e.message().to_lowercase();
    let missing: Vec<_> = keywords
        .iter()
        .filter(|k| !low.contains(&k.to_lowercase()))
        .collect();
    assert!(
        missing.is_empty(),
        "{missing:?} not in {e:?}{}",
        env.diag(&cid)
    );
    eprintln!("{tag}: {}", e.message());
    let st = status(&env, &cri, &cid);
    assert_eq!(
        (state_name(st.state).as_str(), st.reason.as_str()),
        ("CONTAINER_EXITED", "StartError"),
        "{st:?}"
    );
    assert!(
        st.message
            .to_lowercase()
            .contains(&keywords[0].to_lowercase()),
        "{st:?}"
    );
    assert!(env.shim_pids_of(&cid).is_empty(), "no shim of its own");
    remove_clean(&env, &cri, &cid);
    assert_eq!(
        env.shim_pids_of(&pod.id).len(),
        1,
        "the pod's shim serves on"
    );
}

fn bad_no_firmware(version: &str) {
    let img = custom_image(
        &unique_id("cri-nofw"),
        "linux",
        micrun_tests::oci::host_arch(),
        |b| b.file("/etc/readme.txt", b"no firmware in here\n".to_vec(), 0o644),
    );
    expect_refused(version, "nofw", img, &[], &["no firmware"]);
}

fn bad_wrong_arch(version: &str) {
    // The QEMU board's aarch64 ELF for the sim pedestal (this host's arch).
    let img = custom_image(
        &unique_id("cri-arch"),
        "linux",
        micrun_tests::oci::host_arch(),
        |b| b.file("/firmware.elf", qemu_firmware_bytes(false), 0o755),
    );
    expect_refused(
        version,
        "arch",
        img,
        &[],
        &["aarch64", "elf", std::env::consts::ARCH],
    );
}

fn bad_unknown_pedestal(version: &str) {
    expect_refused(
        version,
        "ped",
        sim_image("cri", false),
        &[(PEDESTAL, "bogus")],
        &[PEDESTAL, "bogus"],
    );
}

/// An RTOS image in a runc pod: nothing of micrun takes part; runc executes
/// `/firmware.elf` as a Linux program, which an RTOS firmware is not.
fn wrong_handler_runs_runc(version: &str) {
    let env = env(version);
    let img = custom_image(
        &unique_id("cri-runc"),
        "linux",
        micrun_tests::oci::host_arch(),
        |b| b.file("/firmware.elf", qemu_firmware_bytes(false), 0o755),
    );
    cri::import_k8s(&env, &img);
    let cri = connect(&env);
    let pod = Pod::run_with(&env, &cri, "runc", &[(PEDESTAL, "qemu")], "runc");
    assert_eq!(
        micrun_shims(&env, &pod.id),
        0,
        "a runc pod has no micrun shim"
    );
    let config = cri::container_config("rtos", &img.name, &[]);
    let cid = pod.create(&env, &config);
    // runc starts the container, whose init then fails to exec the ELF: the
    // container ends with 1 and runc's message in the CRI log. No RTOS runs.
    cri.start_container(&cid)
        .unwrap_or_else(|e| panic!("StartContainer: {e:?}{}", env.diag(&cid)));
    let st = wait_exited(&env, &cri, &cid, Duration::from_secs(15));
    let log = read(&pod.log_path("rtos"));
    eprintln!(
        "runc pod: exit code {} ({}); log {log:?}",
        st.exit_code, st.reason
    );
    assert_eq!((st.exit_code, st.reason.as_str()), (1, "Error"), "{st:?}");
    assert!(
        log.contains("stderr F exec /firmware.elf: exec format error"),
        "{log:?}"
    );
    assert!(!read(&pod.log_path("rtos")).contains("micrun demo shell"));
    assert_eq!(micrun_shims(&env, &cid), 0);
    remove_clean(&env, &cri, &cid);
}

/// How many micrun shims were started for `id`.
fn micrun_shims(env: &Env, id: &str) -> usize {
    env.shim_pids_of(id)
        .into_iter()
        .filter(|&pid| {
            micrun_tests::e2e::cmdline(pid)
                .first()
                .is_some_and(|a| a.ends_with("containerd-shim-mica-v2"))
        })
        .count()
}

// ---- 6. the QEMU pedestal ----

fn qemu_pod(version: &str) {
    let env = env(version);
    let cri = connect(&env);
    let pod = Pod::run(&env, &cri, "qemu", &[(PEDESTAL, "qemu")]);

    // The image declares the firmware's platform, linux/arm64, not the node's.
    // Imported with all its platforms (`ctr images import --all-platforms`).
    let img = custom_image(&unique_id("cri-qemu-arm64"), "linux", "arm64", |b| {
        b.file("/firmware.elf", qemu_firmware_bytes(false), 0o755)
    });
    let tar = env
        .dir()
        .join(format!("{}.tar", img.name.replace(['/', ':'], "_")));
    std::fs::write(&tar, img.tar.as_slice()).unwrap();
    env.cd
        .ctr_ok(
            Some(cri::K8S_NAMESPACE),
            &[
                "images",
                "import",
                "--all-platforms",
                &tar.to_string_lossy(),
            ],
        )
        .expect("import the arm64 image");
    // The CRI plugin learns of the import from containerd's event, on its own
    // time (as in `cri::import_k8s`); containerd 2.1 took longer than the call.
    let known = micrun_tests::e2e::wait_until(Duration::from_secs(10), || {
        cri.image_present(&img.name).unwrap_or(false)
    });
    assert!(known, "the CRI plugin knows the arm64 image");
    let config = cri::container_config("rtos", &img.name, &[]);
    // CRI container ids are 64 characters: QEMU's sockets under
    // `<state_dir>/k8s.io/<id>/` fit the 107-byte limit of unix socket paths only
    // with a state_dir of at most 25 bytes (the default `/run/micrun` is 11). The
    // test daemon's (`/tmp/micrun-e2e-<pid>-<n>/s`) is 25 or 26: where it is too
    // long, the shim's refusal is what a user gets, and what is checked.
    let socket_len = env.state_dir().as_os_str().len() + "/k8s.io/".len() + 64 + "/uart.sock".len();
    if socket_len > 107 {
        let cid = pod.create(&env, &config);
        let e = cri
            .start_container(&cid)
            .expect_err("the QEMU socket path is too long");
        eprintln!("state_dir {:?}: {}", env.state_dir(), e.message());
        assert!(
            e.message().contains("107-byte limit") && e.message().contains("shorter state_dir"),
            "{e:?}"
        );
        remove_clean(&env, &cri, &cid);
        return;
    }
    let cid = start(&env, &pod, &config);
    assert_eq!(
        state_name(status(&env, &cri, &cid).state),
        "CONTAINER_RUNNING"
    );
    let log = pod.log_path("rtos");
    let ok = wait_until(Duration::from_secs(30), || read(&log).contains(QEMU_BANNER));
    assert!(
        ok,
        "no banner in the CRI log: {:?}{}",
        read(&log),
        env.diag(&cid)
    );
    let e = cri
        .update_container_resources(&cid, memory(256 << 20))
        .expect_err("QEMU cannot change a running guest's memory");
    assert!(e.message().contains("QEMU -M virt has no hotplug"), "{e:?}");
    let t = Instant::now();
    cri.stop_container(&cid, 10)
        .unwrap_or_else(|e| panic!("StopContainer: {e:?}{}", env.diag(&cid)));
    let took = t.elapsed();
    let st = status(&env, &cri, &cid);
    assert_eq!(
        (
            state_name(st.state).as_str(),
            st.exit_code,
            st.reason.as_str()
        ),
        ("CONTAINER_EXITED", 0, "Completed"),
        "{st:?}"
    );
    assert!(took < Duration::from_secs(5), "graceful stop took {took:?}");
    remove_clean(&env, &cri, &cid);
}

macro_rules! cri_tests {
    ($module:ident, $version:literal) => {
        mod $module {
            #[test]
            fn exit_code_of_the_rtos() {
                super::exit_code_of_the_rtos($version);
            }
            #[test]
            fn panic_in_termination_message() {
                super::panic_in_termination_message($version);
            }
            #[test]
            fn silent_agent_in_termination_message() {
                super::silent_agent_in_termination_message($version);
            }
            #[test]
            fn stop_timeout_kills() {
                super::stop_timeout_kills($version);
            }
            #[test]
            fn update_resources() {
                super::update_resources($version);
            }
            #[test]
            fn list_stats_of_a_pod() {
                super::list_stats_of_a_pod($version);
            }
            #[test]
            fn bad_no_firmware() {
                super::bad_no_firmware($version);
            }
            #[test]
            fn bad_wrong_arch() {
                super::bad_wrong_arch($version);
            }
            #[test]
            fn bad_unknown_pedestal() {
                super::bad_unknown_pedestal($version);
            }
            #[test]
            fn wrong_handler_runs_runc() {
                super::wrong_handler_runs_runc($version);
            }
            #[test]
            fn qemu_pod() {
                super::qemu_pod($version);
            }
        }
    };
}

cri_tests!(v1_6, "1.6");
cri_tests!(v2_1, "2.1");
