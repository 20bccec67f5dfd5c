//! The shim's end-to-end scenarios, each a function of the [`Env`] (the daemon,
//! of whichever containerd release) and the pedestal it runs on, with the
//! helpers they share. `tests/shim_e2e.rs` runs them on containerd 1.6 on every
//! pedestal; `tests/containerd_versions.rs` runs a subset on 1.7 and 2.1.
//!
//! Every scenario works in a namespace of its own and panics with the
//! containerd log lines about its container ([`Env::diag`]) when a check fails.

use std::time::{Duration, Instant};

use crate::containerd::{Events, Namespace, TaskState};
use crate::e2e::{
    next_remoteproc, pid_alive, script_command, shim_socket_of, unique_id, wait_until, Env, Ped,
    Session, TestImage, ANN_AGENT,
};

/// From `ctr run` to the demo shell's banner (QEMU boots in well under a second
/// alone; this leaves room for a loaded 2-core machine).
pub const T_BOOT: Duration = Duration::from_secs(30);
/// From a command to its effect (output, exit, state change).
pub const T_ACT: Duration = Duration::from_secs(20);

/// The first line the demo shell prints on pedestal `p`.
pub fn banner(p: Ped) -> String {
    format!("micrun demo shell on {}", p.board())
}

/// `&str` views of `v`, for argument lists.
pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `--annotation K=V` pairs: the pedestal's, then `extra` (`K=V` each).
pub fn annotations(p: Ped, extra: &[&str]) -> Vec<String> {
    let mut a = vec!["--annotation".to_string(), p.annotation()];
    for kv in extra {
        a.push("--annotation".into());
        a.push((*kv).into());
    }
    a
}

/// The demo image of `p` in the mode the test wants. Raw mode: the sim image gets
/// `--raw` in its Cmd and is detected by `agent=auto`; the QEMU raw firmware is run
/// with `agent=off`. Returns the image and the annotations.
pub fn image_and_args(p: Ped, raw: bool) -> (TestImage, Vec<String>) {
    let img = p.image(raw);
    let args = match (p, raw) {
        (Ped::Qemu, true) => annotations(p, &[&format!("{ANN_AGENT}=off")]),
        // One container per remote processor: each test takes its own.
        (Ped::Rproc, _) => annotations(
            p,
            &[&format!(
                "org.openeuler.micrun.ped.remoteproc={}",
                next_remoteproc()
            )],
        ),
        _ => annotations(p, &[]),
    };
    (img, args)
}

/// The state of task `id` (`None`: no such task); panics with the diagnostics.
pub fn state(env: &Env, ns: &Namespace<'_>, id: &str) -> Option<TaskState> {
    ns.task_state(id)
        .unwrap_or_else(|e| panic!("ctr task ls: {e}{}", env.diag(id)))
}

/// Waits up to [`T_ACT`] for task `id` to be in state `want`.
pub fn wait_state(env: &Env, ns: &Namespace<'_>, id: &str, want: TaskState) {
    ns.wait_state(id, want.clone(), T_ACT)
        .unwrap_or_else(|e| panic!("{id} never {want:?}: {e}{}", env.diag(id)));
}

/// The value of `r`, or a panic with its error and the diagnostics of `id`.
pub fn ok<T>(env: &Env, id: &str, r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| panic!("{e}{}", env.diag(id)))
}

/// The exit status of a task that ended, from `ctr task rm` (deletes the task).
pub fn exit_status(env: &Env, ns: &Namespace<'_>, id: &str) -> i32 {
    ns.wait_exit(id, T_ACT)
        .unwrap_or_else(|e| panic!("{id} did not exit: {e}{}", env.diag(id)))
}

/// The pid containerd reports for task `id` (0 when it has none).
pub fn task_pid(ns: &Namespace<'_>, id: &str) -> u32 {
    ns.tasks()
        .unwrap()
        .into_iter()
        .find(|t| t.id == id)
        .map_or(0, |t| t.pid)
}

/// What is left of container `id` once it is deleted ([`Env::leftovers`]).
pub fn leftovers(
    env: &Env,
    ns: &Namespace<'_>,
    id: &str,
    pid: u32,
    socket: Option<&std::path::Path>,
) -> Vec<String> {
    env.leftovers(ns, id, pid, socket)
}

/// Runs `ctr ARGS` in `ns` (a `ctr run --rm … ID` the caller made) expecting it to
/// fail at create, with every one of `keywords` (case-insensitive) on stderr and the
/// firmware never run; then checks that nothing of `id` is left
/// ([`assert_nothing_left`]) and that the failed create published no task events
/// but, at most, a create undone by a delete. Returns ctr's stderr.
pub fn expect_create_failure(
    env: &Env,
    ns: &Namespace<'_>,
    id: &str,
    args: &[String],
    keywords: &[&str],
) -> String {
    let events = env.cd.events().expect("ctr events");
    let out = env
        .cd
        .ctr_with(Some(ns.name()), &strs(args), None, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let what = format!(
        "ctr {}: {}\nstdout: {stdout:?}\nstderr: {stderr:?}{}",
        args.join(" "),
        out.status,
        env.diag(id)
    );
    assert!(!out.status.success(), "create succeeded: {what}");
    assert!(
        !stdout.contains("micrun demo shell"),
        "the firmware ran: {what}"
    );
    let low = stderr.to_lowercase();
    let missing: Vec<&&str> = keywords
        .iter()
        .filter(|k| !low.contains(&k.to_lowercase()))
        .collect();
    assert!(missing.is_empty(), "the error lacks {missing:?}: {what}");
    eprintln!("{id}: {}", stderr.trim());
    assert_nothing_left(env, ns, id);
    let topics: Vec<String> = events
        .topics(ns.name(), id)
        .into_iter()
        .filter(|t| t.starts_with("/tasks/"))
        .collect();
    assert!(
        topics.is_empty() || topics == ["/tasks/create", "/tasks/delete"],
        "task events of a failed create: {topics:?}{}",
        env.diag(id)
    );
    stderr.into_owned()
}

/// Nothing of container `id` is left once `ctr run --rm` (or a failed create)
/// is done: no task, no container, and [`assert_clean`].
pub fn assert_nothing_left(env: &Env, ns: &Namespace<'_>, id: &str) {
    assert_eq!(state(env, ns, id), None, "a task is left{}", env.diag(id));
    let containers = ns.ctr_ok(&["containers", "ls", "-q"]).unwrap();
    assert!(
        !String::from_utf8_lossy(&containers.stdout)
            .lines()
            .any(|l| l.trim() == id),
        "ctr run --rm left the container{}",
        env.diag(id)
    );
    assert_clean(env, ns, id, 0, None);
}

pub fn assert_clean(
    env: &Env,
    ns: &Namespace<'_>,
    id: &str,
    pid: u32,
    socket: Option<&std::path::Path>,
) {
    let left = leftovers(env, ns, id, pid, socket);
    assert!(
        left.is_empty(),
        "{id}: left behind: {left:?}{}",
        env.diag(id)
    );
}

// ---------------------------------------------------------------------------
// 1. Foreground run, console input and output, exit code.

/// `ctr run --rm` in the foreground with input then EOF: the banner, `echo hello`,
/// `exit 3` → exit status 3, no task left, task events in order.
pub fn fg_echo_exit(env: &Env, p: Ped) {
    let events = env.cd.events().expect("ctr events");
    let ns = env.namespace(&format!("fg-{p}"));
    let (img, ann) = image_and_args(p, false);
    env.import(&ns, &img);
    let id = unique_id(&format!("fg-{p}"));
    let mut args = vec!["run".to_string(), "--rm".into()];
    args.extend(env.run_args(&img, &strs(&ann)));
    args.push(img.name.clone());
    args.push(id.clone());
    // All input at once, then end of input (ctr sends CloseIO): nothing typed
    // before the EOF may be lost.
    let out = env.cd.ctr_with(
        Some(ns.name()),
        &strs(&args),
        Some(b"echo hello\rexit 3\r"),
        T_BOOT + T_ACT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let what = format!(
        "ctr run {id}: {}\nstdout: {stdout:?}\nstderr: {stderr:?}{}",
        out.status,
        env.diag(&id)
    );
    assert!(stdout.contains(&banner(p)), "no banner: {what}");
    assert!(stdout.contains("> hello\r\n"), "no echo: {what}");
    assert_eq!(out.status.code(), Some(3), "exit status: {what}");
    assert_eq!(state(env, &ns, &id), None, "--rm left the task: {what}");
    assert_task_events(env, &events, &ns, &id, &TASK_LIFE);
}

/// The task events of a task that ran and was deleted, in containerd's order.
pub const TASK_LIFE: [&str; 4] = [
    "/tasks/create",
    "/tasks/start",
    "/tasks/exit",
    "/tasks/delete",
];

/// Waits for the last of `want` and checks the `/tasks/*` events of `id` are `want`.
pub fn assert_task_events(
    env: &Env,
    events: &Events<'_>,
    ns: &Namespace<'_>,
    id: &str,
    want: &[&str],
) {
    if let Some(last) = want.last() {
        let _ = events.wait_for(T_ACT, last, |e| {
            e.namespace == ns.name() && e.topic == *last && e.container_id() == Some(id)
        });
    }
    let topics: Vec<String> = events
        .topics(ns.name(), id)
        .into_iter()
        .filter(|t| t.starts_with("/tasks/"))
        .collect();
    assert_eq!(topics, want, "task events of {id}{}", env.diag(id));
}

// ---------------------------------------------------------------------------
// 2. kill: SIGTERM with the agent (its code), raw (143), SIGKILL (137).

/// SIGTERM to an agent firmware: it prints `stopping` and exits with its code (0).
pub fn term_agent(env: &Env, p: Ped) {
    let ns = env.namespace(&format!("terma-{p}"));
    let (img, ann) = image_and_args(p, false);
    env.import(&ns, &img);
    let id = unique_id(&format!("terma-{p}"));
    let mut s = env.run_session(&ns, &img, &id, &strs(&ann));
    ok(env, &id, s.expect(&banner(p), T_BOOT));
    wait_state(env, &ns, &id, TaskState::Running);
    ns.kill(&id, "SIGTERM")
        .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));
    let st = s.wait(T_ACT);
    let what = format!("{}{}", s.describe(), env.diag(&id));
    let st = st.unwrap_or_else(|| panic!("ctr run did not end after SIGTERM: {what}"));
    assert!(s.stdout().contains("stopping"), "no `stopping`: {what}");
    assert_eq!(Session::code(st), 0, "agent's exit code: {what}");
}

/// `ctr run -d`, then `ctr task kill -s SIGNAL`: exit status `want`, nothing left
/// (raw SIGTERM ends at once, without the stop grace).
pub fn kill_detached(env: &Env, p: Ped, raw: bool, signal: &str, want: i32) {
    let tag = format!(
        "{}{}-{p}",
        signal.trim_start_matches("SIG").to_lowercase(),
        if raw { "r" } else { "a" }
    );
    let ns = env.namespace(&tag);
    let (img, ann) = image_and_args(p, raw);
    env.import(&ns, &img);
    let id = unique_id(&tag);
    ok(env, &id, env.run_detached(&ns, &img, &id, &strs(&ann)));
    wait_state(env, &ns, &id, TaskState::Running);
    let pid = task_pid(&ns, &id);
    let socket = shim_socket_of(&env.cd.bundle_dir(ns.name(), &id));
    let t0 = Instant::now();
    ns.kill(&id, signal)
        .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));
    let code = exit_status(env, &ns, &id);
    assert_eq!(code, want, "exit status after {signal}{}", env.diag(&id));
    if raw && signal == "SIGTERM" {
        // Raw mode has nobody to ask: no stop grace (3 s) to sit out.
        assert!(
            t0.elapsed() < Duration::from_millis(2900),
            "raw SIGTERM took {:?}{}",
            t0.elapsed(),
            env.diag(&id)
        );
    }
    // `ctr task rm` (in exit_status) deleted the task; now the container.
    ns.ctr_ok(&["containers", "rm", &id]).unwrap();
    assert_clean(env, &ns, &id, pid, socket.as_deref());
    if matches!(p, Ped::Micad | Ped::Rproc | Ped::Xen) {
        assert_partition_gone(env, p, &id);
    }
}

/// The hardware partition of `id` is gone: micad no longer has it, or no
/// remote processor holds it (its firmware copy and claim are removed).
pub fn assert_partition_gone(env: &Env, p: Ped, id: &str) {
    match p {
        Ped::Micad => assert_micad_gone(env, id),
        Ped::Rproc => {
            let rp = env
                .remoteproc
                .as_ref()
                .expect("the env has fake processors");
            let fw = rp
                .root()
                .join("../lib/firmware")
                .join(format!("micrun-{id}.elf"));
            let claims = env.state_dir().join("remoteproc");
            let held = || {
                std::fs::read_dir(&claims)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .any(|e| std::fs::read_to_string(e.path()).is_ok_and(|c| c.trim() == id))
            };
            assert!(
                wait_until(Duration::from_secs(5), || !fw.exists() && !held()),
                "a processor still holds {id} (firmware copy {fw:?} or a claim){}",
                env.diag(id)
            );
        }
        _ => {}
    }
}

/// micad (the emulator) no longer has instance `id`, and its firmware process
/// is gone.
pub fn assert_micad_gone(env: &Env, id: &str) {
    let micad = env.micad.as_ref().expect("the env runs a micad emulator");
    let pid = micad.instance(id).and_then(|i| i.pid);
    assert!(
        wait_until(Duration::from_secs(5), || micad.instance(id).is_none()),
        "micad still has instance {id}: {:?}{}",
        micad.instance(id),
        env.diag(id)
    );
    if let Some(pid) = pid {
        assert!(
            wait_until(Duration::from_secs(5), || !pid_alive(pid)),
            "the partition's process {pid} is still alive{}",
            env.diag(id)
        );
    }
}

// ---------------------------------------------------------------------------
// 5. pause / resume; paused longer than the liveness window, the peer is not lost.

/// PAUSED past the liveness window without being declared lost, then RUNNING,
/// the console answers; `/tasks/paused` before `/tasks/resumed`.
pub fn pause_resume(env: &Env, p: Ped) {
    let events = env.cd.events().expect("ctr events");
    let ns = env.namespace(&format!("pause-{p}"));
    let (img, ann) = image_and_args(p, false);
    env.import(&ns, &img);
    let id = unique_id(&format!("pause-{p}"));
    let mut s = env.run_session(&ns, &img, &id, &strs(&ann));
    let at = ok(env, &id, s.expect(&banner(p), T_BOOT));
    wait_state(env, &ns, &id, TaskState::Running);
    ns.ctr_ok(&["tasks", "pause", &id])
        .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));
    wait_state(env, &ns, &id, TaskState::Paused);
    // Stay paused past the liveness window (2 s): a paused partition cannot answer
    // pings and must not be declared lost.
    let until = Instant::now() + Duration::from_millis(3000);
    while Instant::now() < until {
        assert_eq!(
            state(env, &ns, &id),
            Some(TaskState::Paused),
            "left PAUSED by itself: {}{}",
            s.describe(),
            env.diag(&id)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    ns.ctr_ok(&["tasks", "resume", &id])
        .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));
    wait_state(env, &ns, &id, TaskState::Running);
    s.send("echo resumed\r");
    ok(env, &id, s.expect_from(at, "resumed\r\n", T_ACT));
    let topics = events.topics(ns.name(), &id);
    let paused = topics.iter().position(|t| t == "/tasks/paused");
    let resumed = topics.iter().position(|t| t == "/tasks/resumed");
    assert!(
        matches!((paused, resumed), (Some(a), Some(b)) if a < b),
        "events {topics:?}{}",
        env.diag(&id)
    );
}

// ---------------------------------------------------------------------------
// 6. ctr task metrics / ps.

/// `ctr task metrics` has memory; `ctr task ps` is the one instance process.
pub fn metrics_ps(env: &Env, p: Ped) {
    let ns = env.namespace(&format!("metrics-{p}"));
    let (img, ann) = image_and_args(p, false);
    env.import(&ns, &img);
    let id = unique_id(&format!("metrics-{p}"));
    ok(env, &id, env.run_detached(&ns, &img, &id, &strs(&ann)));
    wait_state(env, &ns, &id, TaskState::Running);
    let m = ns
        .ctr_ok(&["tasks", "metrics", &id])
        .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));
    let m = String::from_utf8_lossy(&m.stdout);
    assert!(
        m.contains("memory"),
        "no memory in metrics: {m:?}{}",
        env.diag(&id)
    );

    let ls_pid = ns
        .tasks()
        .unwrap()
        .into_iter()
        .find(|t| t.id == id)
        .map_or(0, |t| t.pid);
    let ps = ns
        .ctr_ok(&["tasks", "ps", &id])
        .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));
    let ps = String::from_utf8_lossy(&ps.stdout).to_string();
    let pids: Vec<u32> = ps
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    let what = format!("ctr task ps: {ps:?}; task ls pid {ls_pid}{}", env.diag(&id));
    assert_eq!(pids.len(), 1, "{what}");
    assert!(pids[0] > 0 && pid_alive(pids[0]), "{what}");
    assert_eq!(pids[0], ls_pid, "ps and task ls disagree: {what}");
    let args = crate::e2e::cmdline(pids[0]);
    let is_instance = match p {
        Ped::Sim => args.first().is_some_and(|a| a.ends_with("firmware.elf")),
        Ped::Qemu => args.first().is_some_and(|a| a.contains("qemu-system")),
        // No host process embodies a hardware partition: the shim's own pid.
        Ped::Micad | Ped::Rproc | Ped::Xen => args
            .first()
            .is_some_and(|a| a.ends_with("containerd-shim-mica-v2")),
    };
    assert!(
        is_instance,
        "pid {} is not the {p} instance: {args:?}; {what}",
        pids[0]
    );
}

// ---------------------------------------------------------------------------
// 10. containerd restarted while tasks run: still RUNNING, console and kill work.

/// A task on each of `peds` runs across a restart of `env`'s daemon (which must be
/// `env`'s own, not a shared one): still RUNNING, the shims alive, the console
/// answers, SIGTERM → 0 through the task API and the `/tasks/exit` event.
pub fn containerd_restart(env: &Env, peds: &[Ped]) {
    let ns = env.namespace("restart");
    let cases: Vec<(Ped, TestImage, Vec<String>, String)> = peds
        .iter()
        .copied()
        .map(|p| {
            let (img, ann) = image_and_args(p, false);
            env.import(&ns, &img);
            (p, img, ann, unique_id(&format!("restart-{p}")))
        })
        .collect();
    for (_, img, ann, id) in &cases {
        ok(env, id, env.run_detached_fifo(&ns, img, id, &strs(ann)));
        wait_state(env, &ns, id, TaskState::Running);
    }
    let shims: Vec<Vec<u32>> = cases.iter().map(|c| env.shim_pids_of(&c.3)).collect();
    env.cd
        .restart()
        .unwrap_or_else(|e| panic!("restart containerd: {e}"));
    for ((p, _, _, id), before) in cases.iter().zip(&shims) {
        wait_state(env, &ns, id, TaskState::Running);
        assert!(
            before.iter().all(|&pid| pid_alive(pid)),
            "{p}: shim {before:?} died with containerd{}",
            env.diag(id)
        );
        let mut a = env.attach(&ns, id);
        a.send("echo after-restart\r");
        ok(env, id, a.expect("after-restart\r\n", T_ACT));
        a.kill();
    }
    let events = env.cd.events().expect("ctr events");
    for (_, _, _, id) in &cases {
        ns.kill(id, "SIGTERM")
            .unwrap_or_else(|e| panic!("{e}{}", env.diag(id)));
    }
    // The status through the task API (Wait/Delete) and the /tasks/exit event the
    // shim publishes to the restarted containerd (CRI relies on the event).
    let event_codes: Vec<_> = cases
        .iter()
        .map(|(p, _, _, id)| (p, events.wait_exit(ns.name(), id, T_ACT)))
        .collect();
    for (p, _, _, id) in &cases {
        let code = exit_status(env, &ns, id);
        assert_eq!(
            code,
            0,
            "{p}: agent's exit code after SIGTERM{}",
            env.diag(id)
        );
    }
    for ((p, r), (_, _, _, id)) in event_codes.into_iter().zip(&cases) {
        match r {
            Ok(code) => assert_eq!(code, 0, "{p}: /tasks/exit status"),
            Err(e) => panic!(
                "{p}: no /tasks/exit event after a containerd restart: {e}{}",
                env.diag(id)
            ),
        }
    }
}

// ---------------------------------------------------------------------------
// 11. The shim killed with SIGKILL: containerd's cleanup (`... delete`) leaves
//     nothing: no instance process, mount, socket or micrun state.

/// The shim SIGKILLed: containerd's cleanup (`... delete`) reports 137 and leaves
/// no process, mount, socket or micrun state.
pub fn shim_killed(env: &Env, p: Ped) {
    let events = env.cd.events().expect("ctr events");
    let ns = env.namespace(&format!("shimk-{p}"));
    let (img, ann) = image_and_args(p, false);
    env.import(&ns, &img);
    let id = unique_id(&format!("shimk-{p}"));
    ok(env, &id, env.run_detached(&ns, &img, &id, &strs(&ann)));
    wait_state(env, &ns, &id, TaskState::Running);
    let pid = ns
        .tasks()
        .unwrap()
        .into_iter()
        .find(|t| t.id == id)
        .map_or(0, |t| t.pid);
    assert!(pid > 0 && pid_alive(pid), "task pid {pid}{}", env.diag(&id));
    let bundle = env.cd.bundle_dir(ns.name(), &id);
    let socket = shim_socket_of(&bundle);
    assert!(socket.is_some(), "no <bundle>/address{}", env.diag(&id));
    assert!(
        !env.state_entries(&id).is_empty(),
        "no micrun state for a running task under {:?}",
        env.state_dir()
    );
    let shims = env.shim_pids_of(&id);
    assert!(!shims.is_empty(), "no shim for {id}");
    for &s in &shims {
        // SAFETY: kill(2) on a PID we identified as this container's shim.
        unsafe {
            libc::kill(s as i32, libc::SIGKILL);
        }
    }
    let code = events
        .wait_exit(ns.name(), &id, T_ACT)
        .unwrap_or_else(|e| panic!("no exit event after the shim died: {e}{}", env.diag(&id)));
    assert_eq!(code, 137, "exit status from `delete`{}", env.diag(&id));
    // containerd drops the task itself after a dead shim; `task rm` if it did not.
    if !wait_until(Duration::from_secs(5), || state(env, &ns, &id).is_none()) {
        let _ = ns.ctr(&["tasks", "rm", "-f", &id]);
    }
    assert!(
        wait_until(T_ACT, || state(env, &ns, &id).is_none()),
        "the task is still listed{}",
        env.diag(&id)
    );
    ns.ctr_ok(&["containers", "rm", &id]).unwrap();
    assert_clean(env, &ns, &id, pid, socket.as_deref());
    if matches!(p, Ped::Micad | Ped::Rproc | Ped::Xen) {
        assert_partition_gone(env, p, &id);
    }
}

// ---------------------------------------------------------------------------
// 7. attach / detach / re-attach; output made while detached waits for the next.

/// `ctr task attach`, detach (SIGKILL of `ctr`), re-attach: the console answers
/// each time, output made while detached (sim: `signal 10`) waits for the next.
pub fn attach(env: &Env, p: Ped) {
    let ns = env.namespace(&format!("attach-{p}"));
    let (img, ann) = image_and_args(p, false);
    env.import(&ns, &img);
    let id = unique_id(&format!("attach-{p}"));
    ok(env, &id, env.run_detached_fifo(&ns, &img, &id, &strs(&ann)));
    wait_state(env, &ns, &id, TaskState::Running);

    let mut a1 = env.attach(&ns, &id);
    a1.send("echo one\r");
    ok(env, &id, a1.expect("one\r\n", T_ACT));
    a1.kill();

    if p == Ped::Sim {
        // Output produced while nobody is attached: "signal 10" from the demo app.
        ns.kill(&id, "SIGUSR1")
            .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));
    }

    let mut a2 = env.attach(&ns, &id);
    if p == Ped::Sim {
        ok(env, &id, a2.expect("signal 10\r\n", T_ACT));
    }
    a2.send("echo two\r");
    ok(env, &id, a2.expect("two\r\n", T_ACT));
    a2.kill();

    let mut a3 = env.attach(&ns, &id);
    a3.send("echo three\r");
    ok(env, &id, a3.expect("three\r\n", T_ACT));
    a3.kill();
    assert_eq!(state(env, &ns, &id), Some(TaskState::Running));
}

// ---------------------------------------------------------------------------
// 8. tty mode (`ctr run -t` on a pseudo-terminal made by `script`).

/// `ctr run -t` on a pseudo-terminal (`script`): the console answers, `exit 0` → 0.
pub fn tty(env: &Env, p: Ped) {
    let ns = env.namespace(&format!("tty-{p}"));
    let (img, ann) = image_and_args(p, false);
    env.import(&ns, &img);
    let id = unique_id(&format!("tty-{p}"));
    let mut a = vec!["run".to_string(), "-t".into(), "--rm".into()];
    a.extend(env.run_args(&img, &strs(&ann)));
    a.push(img.name.clone());
    a.push(id.clone());
    let cmd = env.ctr_command(ns.name(), &strs(&a));
    let mut s = Session::spawn(script_command(&cmd), format!("script: ctr run -t {id}"));
    let at = ok(env, &id, s.expect(&banner(p), T_BOOT));
    s.send("echo tty\r");
    // ctr puts its terminal in raw mode, and micrun tells the agent of the
    // terminal at the handshake, so the shell echoes what is typed (as a shell
    // on a terminal does), then the command's output. The outer pty (script's) may turn "\n" into "\r\n",
    // hence only "\r" after each.
    let typed = ok(env, &id, s.expect_from(at, "> echo tty\r", T_ACT));
    ok(env, &id, s.expect_from(typed, "\ntty\r", T_ACT));
    s.send("exit 0\r");
    let st = s.wait(T_ACT);
    let what = format!("{}{}", s.describe(), env.diag(&id));
    let st = st.unwrap_or_else(|| panic!("did not end after `exit 0`: {what}"));
    assert_eq!(Session::code(st), 0, "{what}");
}
