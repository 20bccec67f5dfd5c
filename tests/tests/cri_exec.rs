//! Exec through containerd's CRI plugin, as kubelet's exec probes and
//! `kubectl exec` use it, on containerd 1.6 and 2.1: ExecSync runs one command
//! of the RTOS application through the micrun agent (protocol 1.2).
//!
//! | tests (`v1_6::*`, `v2_1::*`) | what |
//! |---|---|
//! | `exec_sync_commands` | `["stats"]` → exit 0 and the stats line on stdout; `["exit", "4"]` → 4; an unknown command → 127 with the shell's message on stdout; the container stays RUNNING |
//! | `exec_sync_timeout` | `["sleep", "60000"]` with a 1 s timeout: the CRI call returns after ≈ 1 s saying the timeout passed; the exec was killed (the next ExecSync answers at once) |
//! | `exec_sync_raw_firmware` | a firmware without the agent: the call fails with the shim's FAILED_PRECONDITION message saying exec needs the agent; the container runs on |
//!
//! Needs what `cri_pods.rs` needs.

use std::time::{Duration, Instant};

use micrun_tests::cri::{self, connect, env, state_name, status, Pod};
use micrun_tests::e2e::sim_image;

const PEDESTAL: &str = "org.openeuler.micrun.ped.pedestal";

/// A running RTOS container (sim, agent or raw firmware) in a new pod.
fn running<'a>(
    env: &micrun_tests::e2e::Env,
    cri: &'a cri::Cri,
    tag: &str,
    raw: bool,
) -> (Pod<'a>, String) {
    let img = sim_image("cri", raw);
    cri::import_k8s(env, &img);
    let pod = Pod::run(env, cri, tag, &[(PEDESTAL, "sim")]);
    let cid = pod.create(env, &cri::container_config("rtos", &img.name, &[]));
    cri.start_container(&cid)
        .unwrap_or_else(|e| panic!("StartContainer: {e:?}{}", env.diag(&cid)));
    (pod, cid)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn exec_sync_commands(version: &str) {
    let env = env(version);
    let cri = connect(&env);
    let (_pod, cid) = running(&env, &cri, "exec", false);

    let r = cri
        .exec_sync(&cid, &["stats"], 10)
        .unwrap_or_else(|e| panic!("ExecSync stats: {e:?}{}", env.diag(&cid)));
    assert_eq!(r.exit_code, 0, "{r:?}");
    assert!(text(&r.stdout).contains("uptime_ms="), "{r:?}");
    assert!(r.stderr.is_empty(), "{r:?}");

    let r = cri
        .exec_sync(&cid, &["exit", "4"], 10)
        .expect("ExecSync exit 4");
    assert_eq!(r.exit_code, 4, "{r:?}");
    let r = cri
        .exec_sync(&cid, &["nosuch"], 10)
        .expect("ExecSync nosuch");
    assert_eq!(r.exit_code, 127, "{r:?}");
    assert!(text(&r.stdout).contains("unknown command: nosuch"), "{r:?}");
    assert_eq!(
        state_name(status(&env, &cri, &cid).state),
        "CONTAINER_RUNNING"
    );
}

fn exec_sync_timeout(version: &str) {
    let env = env(version);
    let cri = connect(&env);
    let (_pod, cid) = running(&env, &cri, "exect", false);
    let t0 = Instant::now();
    let r = cri.exec_sync(&cid, &["sleep", "60000"], 1);
    let took = t0.elapsed();
    // containerd reports a passed timeout as an error (1.6) or, since 1.7, as
    // kubelet expects it: an error whose message says the timeout passed.
    match &r {
        Err(e) => assert!(
            e.message().contains("timeout") || e.message().contains("deadline"),
            "{e:?}"
        ),
        Ok(resp) => panic!("a 60 s sleep with a 1 s timeout returned {resp:?}"),
    }
    assert!(
        took < Duration::from_secs(10),
        "ExecSync returned after {took:?}{}",
        env.diag(&cid)
    );
    // The sleep was killed: the next exec runs at once, not after 60 s.
    let t0 = Instant::now();
    let r = cri
        .exec_sync(&cid, &["hello"], 10)
        .expect("ExecSync after a timeout");
    assert_eq!(r.exit_code, 0, "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
}

fn exec_sync_raw_firmware(version: &str) {
    let env = env(version);
    let cri = connect(&env);
    let (_pod, cid) = running(&env, &cri, "execraw", true);
    let e = cri
        .exec_sync(&cid, &["stats"], 10)
        .expect_err("exec on a firmware without the agent");
    assert!(
        e.message().contains("exec needs the micrun agent"),
        "{e:?}{}",
        env.diag(&cid)
    );
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    assert_eq!(
        state_name(status(&env, &cri, &cid).state),
        "CONTAINER_RUNNING"
    );
}

macro_rules! cri_tests {
    ($module:ident, $version:literal) => {
        mod $module {
            #[test]
            fn exec_sync_commands() {
                super::exec_sync_commands($version);
            }
            #[test]
            fn exec_sync_timeout() {
                super::exec_sync_timeout($version);
            }
            #[test]
            fn exec_sync_raw_firmware() {
                super::exec_sync_raw_firmware($version);
            }
        }
    };
}

cri_tests!(v1_6, "1.6");
cri_tests!(v2_1, "2.1");
