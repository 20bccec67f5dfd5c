//! RTOS pods through containerd's own CRI plugin, as kubelet drives them
//! (`micrun_tests::cri`: RuntimeService calls with kubelet's fields), on
//! containerd 1.6 (Debian 12, `version = 2` config) and 2.1 (`version = 3`). The
//! private daemon registers the RuntimeClass handler `micrun` →
//! `io.containerd.mica.v2` with `pod_annotations`/`container_annotations =
//! ["org.openeuler.micrun.*"]` and the locally built sandbox image
//! (`localhost/micrun/pause:1`, a static pause program). Pods use the node's
//! network (no CNI here). The RTOS image is the `sim` pedestal's demo firmware.
//!
//! | tests (`v1_6::*`, `v2_1::*`) | what |
//! |---|---|
//! | `pod_lifecycle` | RunPodSandbox (handler `micrun`) → READY, served by one micrun shim with no pause process; CreateContainer with no command; StartContainer → RUNNING in the pod's shim; the RTOS console in the CRI log file (`<time> stdout F <text>`); StopContainer with a grace period → EXITED, exit code 0 (the agent's graceful stop), reason `Completed`; RemoveContainer, StopPodSandbox, RemovePodSandbox → no shim, socket, bundle, micrun state or CRI record left |
//! | `annotations_reach_shim` | the glob `org.openeuler.micrun.*` passes a container annotation (`container.agent=on` on a raw firmware: StartContainer fails with the shim's message naming the annotation, ContainerStatus EXITED, reason `StartError`, the same message; once removed nothing of it is left) and a pod annotation (the same, set on the pod); the same raw image without it runs |
//! | `image_without_command` | an image with no Entrypoint/Cmd is refused by the CRI plugin itself before the shim is called (`no command specified`): what RTOS images must carry today |
//!
//! Needs what `shim_e2e.rs` needs, gcc (static pause program) and `bash
//! .ci/fetch-newer` (containerd 2.1).

use std::path::Path;
use std::time::{Duration, Instant};

use micrun_tests::containerd::SANDBOX_IMAGE;
use micrun_tests::cri::{
    self, bundle, connect, env, processes_running_from, state_name, status, v1, Cri, LogLine, Pod,
};
use micrun_tests::e2e::{
    paths_mentioning, processes_mentioning, shim_socket_of, sim_image, unique_id, wait_until, Env,
};
use micrun_tests::oci::ImageBuilder;

const PEDESTAL: &str = "org.openeuler.micrun.ped.pedestal";
const AGENT: &str = "org.openeuler.micrun.container.agent";
/// The demo firmware's banner on the sim pedestal.
const BANNER: &str = "micrun demo shell on sim";

fn pod_lifecycle(version: &str) {
    let env = env(version);
    let img = sim_image("cri", false);
    cri::import_k8s(&env, &img);
    let cri = connect(&env);
    let (name, _) = cri.version().expect("CRI Version");
    assert_eq!(name, "containerd");
    assert!(cri.image_present(SANDBOX_IMAGE).unwrap(), "sandbox image");

    // The sandbox: a placeholder in a micrun shim of its own, no pause process.
    let mut pod = Pod::run(&env, &cri, "pod", &[(PEDESTAL, "sim")]);
    let ps = cri.pod_status(&pod.id).expect("PodSandboxStatus");
    assert_eq!(ps.state, v1::PodSandboxState::SandboxReady as i32, "{ps:?}");
    assert_eq!(
        env.shim_pids_of(&pod.id).len(),
        1,
        "one micrun shim serves the pod{}",
        env.diag(&pod.id)
    );
    let pod_bundle = bundle(&env, &pod.id);
    let socket = shim_socket_of(&pod_bundle).expect("the pod's shim socket");
    assert_eq!(
        processes_running_from(&pod_bundle),
        vec![],
        "micrun runs no pause process for the sandbox"
    );

    // The RTOS container: no command in its config (the image's Entrypoint).
    let config = cri::container_config("rtos", &img.name, &[]);
    assert!(config.command.is_empty() && config.args.is_empty());
    let cid = cri
        .create_container(&pod.id, &config, &pod.config)
        .unwrap_or_else(|e| panic!("CreateContainer: {e:?}{}", env.diag(&pod.id)));
    let st = status(&env, &cri, &cid);
    assert_eq!(state_name(st.state), "CONTAINER_CREATED");
    cri.start_container(&cid)
        .unwrap_or_else(|e| panic!("StartContainer: {e:?}{}", env.diag(&cid)));
    let st = status(&env, &cri, &cid);
    assert_eq!(state_name(st.state), "CONTAINER_RUNNING", "{st:?}");
    assert_eq!(
        shim_socket_of(&bundle(&env, &cid)).as_ref(),
        Some(&socket),
        "the container is served by the pod's shim"
    );
    assert!(env.shim_pids_of(&cid).is_empty(), "no second shim");

    // `kubectl logs`: the console in the CRI log at the pod's log path.
    let log_path = pod.log_dir.join("rtos/0.log");
    assert_eq!(Path::new(&st.log_path), log_path);
    let read = || std::fs::read_to_string(&log_path).unwrap_or_default();
    wait_until(Duration::from_secs(10), || read().contains(BANNER));
    let log = read();
    let lines: Vec<LogLine> = log.lines().filter_map(LogLine::parse).collect();
    assert_eq!(
        lines.len(),
        log.lines().count(),
        "every line is in CRI format: {log:?}"
    );
    let banner = lines
        .iter()
        .find(|l| l.text.starts_with(BANNER))
        .unwrap_or_else(|| panic!("no banner in {log_path:?}: {log:?}{}", env.diag(&cid)));
    assert_eq!(
        (banner.stream.as_str(), banner.tag.as_str()),
        ("stdout", "F")
    );

    // StopContainer: the agent's graceful stop, well inside the grace period.
    let t = Instant::now();
    cri.stop_container(&cid, 10)
        .unwrap_or_else(|e| panic!("StopContainer: {e:?}{}", env.diag(&cid)));
    let took = t.elapsed();
    let st = status(&env, &cri, &cid);
    assert_eq!(state_name(st.state), "CONTAINER_EXITED", "{st:?}");
    assert_eq!(st.exit_code, 0, "the RTOS's own exit code: {st:?}");
    assert_eq!(st.reason, "Completed", "{st:?}");
    assert!(took < Duration::from_secs(5), "graceful stop took {took:?}");

    cri.remove_container(&cid).expect("RemoveContainer");
    assert_eq!(cri.list_containers(&pod.id).unwrap(), Vec::<String>::new());
    cri.stop_pod(&pod.id).expect("StopPodSandbox");
    cri.remove_pod(&pod.id).expect("RemovePodSandbox");
    pod.removed = true;

    // Nothing left: CRI records, shim, socket, bundles, micrun state.
    assert_eq!(cri.list_pods(Some(&pod.id)).unwrap(), Vec::<String>::new());
    let left = || {
        let mut left = Vec::new();
        for id in [&pod.id, &cid] {
            let procs = processes_mentioning(id);
            if !procs.is_empty() {
                left.push(format!("processes {procs:?}"));
            }
            if bundle(&env, id).exists() {
                left.push(format!("bundle of {id}"));
            }
            let state = paths_mentioning(env.state_dir(), id);
            if !state.is_empty() {
                left.push(format!("micrun state {state:?}"));
            }
        }
        if socket.exists() {
            left.push(format!("shim socket {socket:?}"));
        }
        left
    };
    wait_until(Duration::from_secs(10), || left().is_empty());
    assert_eq!(left(), Vec::<String>::new(), "{}", env.diag(&pod.id));
}

/// `kubectl top` with CRI stats: ContainerStats of a working RTOS carries CPU
/// time (the partition's host process) and memory, in the metrics type the CRI
/// plugin reads.
fn stats_of_a_working_rtos(version: &str) {
    let env = env(version);
    let img = sim_image("cri", false);
    cri::import_k8s(&env, &img);
    let cri = connect(&env);
    let pod = Pod::run(&env, &cri, "stats", &[(PEDESTAL, "sim")]);
    // The demo shell floods 8 MB at boot (typed by the simulator's `--input`).
    let mut config = cri::container_config("rtos", &img.name, &[]);
    config.args = vec!["--input".into(), "flood 8000000\r".into()];
    let cid = cri
        .create_container(&pod.id, &config, &pod.config)
        .unwrap_or_else(|e| panic!("CreateContainer: {e:?}{}", env.diag(&pod.id)));
    cri.start_container(&cid)
        .unwrap_or_else(|e| panic!("StartContainer: {e:?}{}", env.diag(&cid)));
    let log_path = pod.log_dir.join("rtos/0.log");
    let done = wait_until(Duration::from_secs(30), || {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .contains("flood done 8000000")
    });
    assert!(
        done,
        "the flood did not reach the CRI log{}",
        env.diag(&cid)
    );
    let stats = cri
        .container_stats(&cid)
        .unwrap_or_else(|e| panic!("ContainerStats: {e:?}{}", env.diag(&cid)));
    let cpu = stats
        .cpu
        .as_ref()
        .and_then(|c| c.usage_core_nano_seconds.as_ref())
        .map_or(0, |v| v.value);
    assert!(cpu > 0, "no CPU time after an 8 MB flood: {stats:?}");
    let mem = stats
        .memory
        .as_ref()
        .and_then(|m| m.working_set_bytes.as_ref())
        .map_or(0, |v| v.value);
    assert!(mem > 0, "no memory: {stats:?}");
    cri.stop_container(&cid, 10)
        .unwrap_or_else(|e| panic!("StopContainer: {e:?}{}", env.diag(&cid)));
    cri.remove_container(&cid).expect("RemoveContainer");
}

/// Two RTOS containers in one pod share the pod's shim; removing one leaves the
/// other running and its console going.
fn two_rtos_in_one_pod(version: &str) {
    let env = env(version);
    let img = sim_image("cri", false);
    cri::import_k8s(&env, &img);
    let cri = connect(&env);
    let pod = Pod::run(&env, &cri, "two", &[(PEDESTAL, "sim")]);
    let socket = shim_socket_of(&bundle(&env, &pod.id)).expect("the pod's shim socket");
    let start = |name: &str| {
        let config = cri::container_config(name, &img.name, &[]);
        let cid = cri
            .create_container(&pod.id, &config, &pod.config)
            .unwrap_or_else(|e| panic!("CreateContainer {name}: {e:?}{}", env.diag(&pod.id)));
        cri.start_container(&cid)
            .unwrap_or_else(|e| panic!("StartContainer {name}: {e:?}{}", env.diag(&cid)));
        assert_eq!(
            shim_socket_of(&bundle(&env, &cid)).as_ref(),
            Some(&socket),
            "{name} is served by the pod's shim"
        );
        cid
    };
    let (a, b) = (start("rtos-a"), start("rtos-b"));
    assert_eq!(env.shim_pids_of(&pod.id).len(), 1, "one shim for the pod");
    for (cid, name) in [(&a, "rtos-a"), (&b, "rtos-b")] {
        let log = pod.log_dir.join(format!("{name}/0.log"));
        let ok = wait_until(Duration::from_secs(10), || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains(BANNER)
        });
        assert!(ok, "no banner from {name}{}", env.diag(cid));
    }
    cri.stop_container(&a, 10).expect("StopContainer a");
    cri.remove_container(&a).expect("RemoveContainer a");
    let st = status(&env, &cri, &b);
    assert_eq!(state_name(st.state), "CONTAINER_RUNNING", "{st:?}");
    assert_eq!(
        env.shim_pids_of(&pod.id).len(),
        1,
        "the pod's shim still runs"
    );
    cri.stop_container(&b, 10).expect("StopContainer b");
    let st = status(&env, &cri, &b);
    assert_eq!(
        (state_name(st.state).as_str(), st.exit_code),
        ("CONTAINER_EXITED", 0),
        "{st:?}"
    );
    cri.remove_container(&b).expect("RemoveContainer b");
}

/// Creates and starts a raw-firmware container in `pod`; the start's result.
fn start_raw(
    env: &Env,
    cri: &Cri,
    pod: &Pod<'_>,
    name: &str,
    annotations: &[(&str, &str)],
) -> (String, Result<(), cri::Status>) {
    let img = sim_image("cri", true);
    let config = cri::container_config(name, &img.name, annotations);
    let cid = cri
        .create_container(&pod.id, &config, &pod.config)
        .unwrap_or_else(|e| panic!("CreateContainer {name}: {e:?}{}", env.diag(&pod.id)));
    let r = cri.start_container(&cid);
    (cid, r)
}

/// StartContainer failed with the shim's agent=on message; once removed, nothing
/// of the container is left (no firmware process, bundle or micrun state).
fn assert_agent_on_refused(env: &Env, cri: &Cri, cid: &str, r: Result<(), cri::Status>) {
    let e = r.expect_err("agent=on on a firmware without the agent must fail");
    assert!(
        e.message()
            .contains("org.openeuler.micrun.container.agent=on"),
        "the shim's message reaches the CRI caller: {e:?}{}",
        env.diag(cid)
    );
    // What `kubectl describe pod` shows: the shim's message as the status message.
    let st = status(env, cri, cid);
    assert_eq!(state_name(st.state), "CONTAINER_EXITED", "{st:?}");
    assert_eq!(
        (st.exit_code, st.reason.as_str()),
        (128, "StartError"),
        "{st:?}"
    );
    assert!(
        st.message
            .contains("org.openeuler.micrun.container.agent=on"),
        "{st:?}"
    );
    cri.remove_container(cid)
        .unwrap_or_else(|e| panic!("RemoveContainer {cid}: {e:?}{}", env.diag(cid)));
    assert_eq!(
        cri::leftovers(env, cid),
        Vec::<String>::new(),
        "{}",
        env.diag(cid)
    );
}

fn annotations_reach_shim(version: &str) {
    let env = env(version);
    cri::import_k8s(&env, &sim_image("cri", true));
    let cri = connect(&env);

    // Without annotations the raw firmware runs (agent auto-detection).
    let pod = Pod::run(&env, &cri, "ann", &[]);
    let (plain, r) = start_raw(&env, &cri, &pod, "plain", &[]);
    r.unwrap_or_else(|e| panic!("StartContainer: {e:?}{}", env.diag(&plain)));
    assert_eq!(
        state_name(status(&env, &cri, &plain).state),
        "CONTAINER_RUNNING"
    );
    // A container annotation: agent=on makes the shim demand the handshake.
    let (cid, r) = start_raw(&env, &cri, &pod, "agent-on", &[(AGENT, "on")]);
    assert_agent_on_refused(&env, &cri, &cid, r);
    assert_eq!(
        state_name(status(&env, &cri, &plain).state),
        "CONTAINER_RUNNING",
        "the other container runs on"
    );
    drop(pod);

    // A pod annotation reaches the pod's containers the same way.
    let pod = Pod::run(&env, &cri, "podann", &[(AGENT, "on")]);
    let (cid, r) = start_raw(&env, &cri, &pod, "raw", &[]);
    assert_agent_on_refused(&env, &cri, &cid, r);
}

/// Documents today's behaviour: the CRI plugin refuses an image with neither
/// Entrypoint nor Cmd before calling the shim, so RTOS images must carry one (an
/// image convention matter, not the shim's).
fn image_without_command(version: &str) {
    let env = env(version);
    let name = format!("localhost/micrun/nocmd:{}", unique_id("t"));
    let tar = ImageBuilder::new(name.clone())
        .file(
            "/firmware.elf",
            micrun_tests::e2e::sim_firmware_bytes(),
            0o755,
        )
        .build()
        .and_then(|i| i.to_tar())
        .expect("build the image");
    let img = micrun_tests::e2e::TestImage {
        name: name.clone(),
        tar: std::sync::Arc::new(tar),
        run_args: Vec::new(),
    };
    cri::import_k8s(&env, &img);
    let cri = connect(&env);
    let pod = Pod::run(&env, &cri, "nocmd", &[]);
    let config = cri::container_config("nocmd", &name, &[]);
    let e = cri
        .create_container(&pod.id, &config, &pod.config)
        .expect_err("containerd refuses an image without a command");
    assert!(e.message().contains("no command specified"), "{e:?}");
    assert_eq!(cri.list_containers(&pod.id).unwrap(), Vec::<String>::new());
}

macro_rules! cri_tests {
    ($module:ident, $version:literal) => {
        mod $module {
            #[test]
            fn pod_lifecycle() {
                super::pod_lifecycle($version);
            }
            #[test]
            fn annotations_reach_shim() {
                super::annotations_reach_shim($version);
            }
            #[test]
            fn image_without_command() {
                super::image_without_command($version);
            }
            #[test]
            fn stats_of_a_working_rtos() {
                super::stats_of_a_working_rtos($version);
            }
            #[test]
            fn two_rtos_in_one_pod() {
                super::two_rtos_in_one_pod($version);
            }
        }
    };
}

cri_tests!(v1_6, "1.6");
cri_tests!(v2_1, "2.1");
