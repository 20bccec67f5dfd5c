//! The shim under newer containerd releases: 1.7.24 (Debian trixie) and 2.1.9
//! (Debian sid), unpacked by `.ci/fetch-newer`, each a private daemon of its own
//! with its own `ctr` (a `version = 3` config for 2.1). The scenarios are the
//! ones `shim_e2e.rs` runs on 1.6 (`micrun_tests::scenarios`), mostly on the
//! `sim` pedestal, with QEMU in the restart scenario.
//!
//! | tests (`v1_7::*`, `v2_1::*`) | what |
//! |---|---|
//! | `release` | daemon and ctr are the release asked for; the config is in its format (2.1: no "migrated from version 2" warning), the `micrun` CRI runtime and the local sandbox image registered in it |
//! | `fg_echo_exit` | `ctr run` in the foreground: console input and output, `exit 3` → 3, task events in order |
//! | `term_agent` | SIGTERM: the agent's own exit code (0) |
//! | `term_raw`, `sigkill` | raw SIGTERM → 143 at once, SIGKILL → 137, nothing left |
//! | `pause_resume` | PAUSED past the liveness window, resumed, console works |
//! | `metrics_ps` | `ctr task metrics` has memory, `ctr task ps` the instance process |
//! | `attach` | `ctr task attach`, detach, re-attach; output made while detached kept |
//! | `tty` | `ctr run -t` on a pseudo-terminal |
//! | `shim_killed` | shim SIGKILLed → 137, nothing left |
//! | `containerd_restart` | sim and QEMU tasks survive a daemon restart (reconnect) |
//! | `nothing_left` | after the daemon is gone: no shim socket, FIFO or runc state of its namespaces under `/run/containerd`; NRI off (2.x would leave `/run/nri/nri.sock`) |
//!
//! About 25 s on 2 cores once the shim and firmware are built (both releases in
//! parallel, each with a shared daemon plus its own for the restart and
//! leftover tests).
//!
//! Needs what `shim_e2e.rs` needs, and `bash .ci/fetch-newer` (run by `.ci/setup`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use micrun_tests::containerd::{Release, RUNC_ROOT, SHIM_SOCKET_DIR};
use micrun_tests::e2e::{paths_mentioning, sim_image, unique_id, Env, Ped};
use micrun_tests::scenarios;

/// containerd 2.x's default NRI socket (`[plugins.'io.containerd.nri.v1.nri']`).
const NRI_SOCKET: &str = "/run/nri/nri.sock";

/// The shared daemon of containerd `version`.
fn env(version: &str) -> Arc<Env> {
    Env::shared_release(version)
}

/// The daemon answers with the release asked for, reads a config in that
/// release's format, and the `micrun` runtime is in its CRI config.
fn release(version: &str) {
    let env = env(version);
    let rel = env.cd.release().clone();
    let out = std::process::Command::new(&rel.containerd)
        .arg("--version")
        .output()
        .expect("containerd --version");
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        said.contains(&format!(" {version}.")),
        "{:?} is not containerd {version}: {said:?}",
        rel.containerd
    );
    let ctr = env.cd.ctr(&["version"]);
    let ctr_said = String::from_utf8_lossy(&ctr.stdout).to_string();
    // `ctr version` prints the client's then the server's version.
    assert_eq!(
        ctr_said.matches(&format!("Version:  {version}.")).count(),
        2,
        "ctr and daemon are not both {version}: {ctr_said:?}"
    );
    let config = std::fs::read_to_string(env.cd.config_path()).expect("read the config");
    let want = format!("version = {}\n", rel.config_version());
    assert!(config.starts_with(&want), "{config}");
    // The daemon logs no complaint about the config it read (2.x logs a
    // migration warning for a version 2 file, an error for unknown plugins).
    let log = std::fs::read_to_string(env.cd.log_path()).unwrap_or_default();
    for bad in ["migrat", "deprecated", "failed to load plugin"] {
        assert!(
            !log.to_lowercase().contains(bad),
            "containerd {version} log has {bad:?}:\n{}",
            env.log_tail(40)
        );
    }
    // The CRI plugin logs the config it started with: the `micrun` runtime is in it
    // (on 2.x registered under `io.containerd.cri.v1.runtime`; a runtime under 1.x's
    // `io.containerd.grpc.v1.cri` in a version 3 file would not be), and so is the
    // local sandbox image.
    let cri = log
        .lines()
        .rfind(|l| {
            let l = l.to_lowercase();
            l.contains("start cri plugin") || l.contains("starting cri plugin")
        })
        .unwrap_or_default();
    assert!(!cri.is_empty(), "no CRI plugin start in the log");
    if rel.config_version() >= 3 {
        // 2.x logs the runtime config as JSON (the images plugin, which holds the
        // sandbox image, logs nothing of it).
        assert!(
            cri.contains(r#"\"micrun\":{\"runtimeType\":\"io.containerd.mica.v2\""#)
                && cri.contains(r#"\"PodAnnotations\":[\"org.openeuler.micrun.*\"]"#),
            "the micrun runtime is not in containerd {version}'s CRI config: {cri}"
        );
    } else {
        // 1.x logs it as a Go struct.
        assert!(
            cri.contains("micrun:{Type:io.containerd.mica.v2 ")
                && cri.contains("PodAnnotations:[org.openeuler.micrun.*]")
                && cri.contains(&format!(
                    "SandboxImage:{}",
                    micrun_tests::containerd::SANDBOX_IMAGE
                )),
            "the micrun runtime or sandbox image is not in containerd {version}'s CRI config: {cri}"
        );
    }
}

/// A daemon of its own runs a task to its end, then stops: nothing of its
/// namespaces is left under `/run/containerd` (shim sockets, FIFOs, runc state).
fn nothing_left(version: &str) {
    let nri_before = Path::new(NRI_SOCKET).exists();
    let env = Env::start_release(Release::of(version), |_| {});
    let ns = env.namespace(&format!("left-{version}"));
    let ns_name = ns.name().to_string();
    let img = sim_image("e2e", false);
    env.import(&ns, &img);
    let id = unique_id("left");
    scenarios::ok(&env, &id, env.run_detached(&ns, &img, &id, &[]));
    scenarios::wait_state(&env, &ns, &id, micrun_tests::containerd::TaskState::Running);
    let sockets = env.cd.shim_sockets();
    assert!(!sockets.is_empty(), "no shim socket seen{}", env.diag(&id));
    // containerd 2.x turns NRI on by default, with one socket for the machine
    // that outlives the daemon: the harness's config turns it off.
    let log = std::fs::read_to_string(env.cd.log_path()).unwrap_or_default();
    assert!(
        !log.contains("created NRI interface"),
        "containerd {version} started NRI:\n{}",
        env.log_tail(40)
    );
    drop(ns);
    drop(env);
    if !nri_before {
        assert!(
            !Path::new(NRI_SOCKET).exists(),
            "containerd {version} left {NRI_SOCKET}"
        );
    }
    let left: Vec<PathBuf> = sockets
        .into_iter()
        .filter(|s| s.exists())
        .chain(paths_mentioning(Path::new("/run/containerd"), &ns_name))
        .chain(paths_mentioning(Path::new("/run/containerd"), &id))
        .collect();
    assert!(
        left.is_empty(),
        "containerd {version} left {left:?} (shim sockets are in {SHIM_SOCKET_DIR}, runc state in {RUNC_ROOT})"
    );
}

/// For each version, `name_<version> => call(version)`.
macro_rules! on_releases {
    ($($name:ident => $call:expr),+ $(,)?) => {
        mod v1_7 {
            use super::*;
            $(#[test] fn $name() { let f = $call; f("1.7"); })+
        }
        mod v2_1 {
            use super::*;
            $(#[test] fn $name() { let f = $call; f("2.1"); })+
        }
    };
}

on_releases! {
    release => super::release,
    fg_echo_exit => |v| scenarios::fg_echo_exit(&env(v), Ped::Sim),
    term_agent => |v| scenarios::term_agent(&env(v), Ped::Sim),
    term_raw => |v| scenarios::kill_detached(&env(v), Ped::Sim, true, "SIGTERM", 143),
    sigkill => |v| scenarios::kill_detached(&env(v), Ped::Sim, false, "SIGKILL", 137),
    pause_resume => |v| scenarios::pause_resume(&env(v), Ped::Sim),
    metrics_ps => |v| scenarios::metrics_ps(&env(v), Ped::Sim),
    attach => |v| scenarios::attach(&env(v), Ped::Sim),
    tty => |v| scenarios::tty(&env(v), Ped::Sim),
    shim_killed => |v| scenarios::shim_killed(&env(v), Ped::Sim),
    containerd_restart => |v| scenarios::containerd_restart(
        &Env::start_release(Release::of(v), |_| {}),
        &[Ped::Sim, Ped::Qemu],
    ),
    nothing_left => super::nothing_left,
}
