//! Fault injection (issue 12): each test breaks something under a task on a real
//! containerd (the harness's private daemon, tests/src/e2e.rs) and checks that the
//! task ends in a documented state with a log line that says why, and that nothing
//! of it is left once it is deleted ([`Env::leftovers`]: processes, mounts, bundle,
//! micrun state, shim socket; for micad partitions, the emulator's view).
//!
//! A fault "during Create" or "during Start" is made deterministic with the micad
//! emulator (tests/src/micad.rs): it holds its answer to the create or start
//! message (`Fault::Hang`), the test waits until the emulator has the request,
//! then does the damage while the shim is inside that call.
//!
//! | test | fault | documented end |
//! |---|---|---|
//! | `link_lossy_qemu` | a proxy on the QEMU UART (`lossy-qemu`) flips, drops and delays bytes | the console answers, `exit 3` → 3 |
//! | `link_silent_qemu` | the proxy drops everything once the shell answered | peer lost: 137, reason in the log |
//! | `micad_dies_mid_create` | micad reads the create message and dies | Create fails naming micad; no partition, no state |
//! | `micad_answers_garbage` | garbage for create, then for start | Create / Start fail naming micad; the partition is removed |
//! | `state_dir_full` | micrun's state dir (a 256 KiB tmpfs) fills under a running task, then Create runs on it full | the running task is killed (137) and deleted cleanly; Create fails with ENOSPC naming the dir before anything runs, nothing half-written |
//! | `state_dir_full_at_start` | the dir fills while micad holds the `start` answer | Start writes no state: the task runs, `exit 3` → 3, `--rm` removes it, nothing left |
//! | `containerd_killed_during_create`, `_during_start` | SIGKILL of containerd, then a restart on the same dirs | the task gone cleanly (its Create/Start failed; a shim whose Create failed exits by itself after 5 s without Shutdown), nothing left; the daemon runs the next container |
//! | `shim_killed_during_create`, `_during_start` | SIGKILL of the shim | `ctr run` fails, containerd's cleanup removes the partition; 137 for a created task |
//! | `shim_killed_while_flooding` | SIGKILL of the shim while the console floods | 137, the instance process gone |
//! | `rtos_hangs_mid_flood` | `flood` then `hang` in the demo shell | peer lost: 137, reason in the log |
//! | `rtos_panics_mid_exec` | `ctr task exec ... panic` (the demo application's exec hook panics) | the exec ends with 134 and `PANIC: requested by exec`, the task runs on (the next exec answers), SIGKILL → 137 |
//! | `rtos_panics_while_an_exec_runs` | the console's `panic` (the simulator exits 101) while `ctr task exec ... hang` runs, 5 rounds | task 101, exec 137, the two deletes race; the shim gone, nothing left |
//! | `exec_start_fails_while_waited` | an exec whose Start fails (its logger, `/bin/false`, ends) while containerd waits on it | `ctr task exec` fails naming the logger, the task runs on; after delete the shim is gone |
//!
//! Needs root, containerd, `qemu-system-aarch64` (as shim_e2e.rs).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use micrun_tests::containerd::{Events, Namespace, TaskState};
use micrun_tests::e2e::{pid_alive, unique_id, wait_until, Env, Ped, Session};
use micrun_tests::micad::{Fault, Op, Request};
use micrun_tests::scenarios::{
    assert_clean, assert_micad_gone, assert_nothing_left, banner, exit_status,
    expect_create_failure, image_and_args, ok, state, strs, task_pid, wait_state, T_ACT, T_BOOT,
};
use micrun_tests::TempDir;

/// SIGKILL of `pid` (a process this test identified: the shim, containerd).
fn sigkill(pid: u32) {
    // SAFETY: kill(2) on a PID the caller identified as its own child's.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
}

/// `ctr run ... IMAGE ID` arguments (`--rm` for a foreground run).
fn run_args(env: &Env, p: Ped, id: &str, rm: bool) -> Vec<String> {
    let (img, ann) = image_and_args(p, false);
    let mut a = vec!["run".to_string()];
    a.push(if rm { "--rm" } else { "-d" }.into());
    if !rm {
        a.push("--null-io".into());
    }
    a.extend(env.run_args(&img, &strs(&ann)));
    a.push(img.name.clone());
    a.push(id.into());
    a
}

/// Whether the micad emulator has received the create message of `id`
/// (`instance`: none) or a command on `instance`'s socket starting with `cmd`.
fn micad_got(env: &Env, id: &str, cmd: Option<&str>) -> bool {
    let micad = env.micad.as_ref().expect("the env runs a micad emulator");
    micad.requests().iter().any(|r| match (r, cmd) {
        (Request::Create { decoded, .. }, None) => decoded.as_ref().is_some_and(|d| d.name == id),
        (Request::Command { instance, bytes }, Some(c)) => {
            instance == id && bytes.starts_with(c.as_bytes())
        }
        _ => false,
    })
}

/// The shim's log line for a lost peer names the liveness window.
fn assert_liveness_reason(env: &Env, id: &str, what: &str) {
    let log = env.log_lines(id, 200);
    assert!(
        log.contains("has not answered") && log.contains("liveness window"),
        "no reason (liveness window) in the log: {what}"
    );
}

/// An env whose `baremetal` goes through the micad emulator only.
fn micad_env() -> Env {
    Env::start_with(|c| c.baremetal_driver = "micad".into())
}

/// Deletes what is left of `id` (task, container) after a fault, then checks that
/// nothing is left and the emulator holds no partition of it.
fn remove_and_check(env: &Env, ns: &Namespace<'_>, id: &str, pid: u32) {
    ns.delete(id)
        .unwrap_or_else(|e| panic!("delete {id}: {e}{}", env.diag(id)));
    assert_eq!(state(env, ns, id), None, "{}", env.diag(id));
    assert_clean(env, ns, id, pid, None);
    if env.micad.is_some() {
        assert_micad_gone(env, id);
    }
}

// ---------------------------------------------------------------------------
// A link that corrupts, drops and delays bytes: a proxy on the QEMU UART.

/// An env whose `[qemu] binary` is `lossy-qemu` reading its mode from the
/// returned file.
fn lossy_env() -> (Env, TempDir, PathBuf) {
    let dir = TempDir::new("lossy");
    let control = dir.path().join("mode");
    std::fs::write(&control, "pass").unwrap();
    let env = Env::start_with(|c| {
        c.qemu_binary = None;
        c.extra_toml = format!(
            "\n[qemu]\nbinary = {:?}\nextra_args = [\"--proxy-control\", {:?}]\n",
            env!("CARGO_BIN_EXE_lossy-qemu"),
            control.to_string_lossy()
        );
    });
    (env, dir, control)
}

#[test]
fn link_lossy_qemu() {
    let (env, _dir, control) = lossy_env();
    let ns = env.namespace("lossy");
    let (img, ann) = image_and_args(Ped::Qemu, false);
    env.import(&ns, &img);
    let id = unique_id("lossy");
    std::fs::write(&control, "lossy").unwrap();
    let mut s = env.run_session(&ns, &img, &id, &strs(&ann));
    ok(&env, &id, s.expect(&banner(Ped::Qemu), T_BOOT));
    for i in 0..5 {
        s.send(&format!("echo through-noise-{i}\r"));
        ok(
            &env,
            &id,
            s.expect(&format!("through-noise-{i}\r\n"), T_ACT),
        );
    }
    s.send("exit 3\r");
    let st = s.wait(T_ACT);
    let what = format!("{}{}", s.describe(), env.diag(&id));
    let st = st.unwrap_or_else(|| panic!("no end over a lossy link: {what}"));
    assert_eq!(Session::code(st), 3, "exit code over a lossy link: {what}");
    assert_nothing_left(&env, &ns, &id);
    eprintln!("{id}: lossy link: console and exit code intact");
}

#[test]
fn link_silent_qemu() {
    let (env, _dir, control) = lossy_env();
    let ns = env.namespace("silent");
    let (img, ann) = image_and_args(Ped::Qemu, false);
    env.import(&ns, &img);
    let id = unique_id("silent");
    let mut s = env.run_session(&ns, &img, &id, &strs(&ann));
    ok(&env, &id, s.expect(&banner(Ped::Qemu), T_BOOT));
    s.send("echo before-silence\r");
    ok(&env, &id, s.expect("before-silence\r\n", T_ACT));
    let pid = task_pid(&ns, &id);
    std::fs::write(&control, "blackhole").unwrap();
    let st = s.wait(Duration::from_secs(20));
    let what = format!("{}{}", s.describe(), env.diag(&id));
    let st = st.unwrap_or_else(|| panic!("a silent link was not detected in 20 s: {what}"));
    assert_eq!(Session::code(st), 137, "exit status of a lost peer: {what}");
    assert_liveness_reason(&env, &id, &what);
    assert_nothing_left(&env, &ns, &id);
    assert!(!pid_alive(pid) || pid == 0, "QEMU {pid} left");
}

// ---------------------------------------------------------------------------
// micad dying mid-Create and answering garbage.

#[test]
fn micad_dies_mid_create() {
    let mut env = micad_env();
    let ns = env.cd.namespace("mdie");
    let (img, _) = image_and_args(Ped::Micad, false);
    env.import(&ns, &img);
    let micad = env.micad.as_ref().unwrap();
    micad.set_fault(Op::Create, Some(Fault::Die));
    let id = unique_id("mdie");
    let t0 = Instant::now();
    let err = expect_create_failure(
        &env,
        &ns,
        &id,
        &run_args(&env, Ped::Micad, &id, true),
        &["micad"],
    );
    assert!(t0.elapsed() < T_ACT, "ctr held {:?}", t0.elapsed());
    let micad = env.micad.as_ref().unwrap();
    assert!(micad_got(&env, &id, None), "the create never reached micad");
    assert!(!micad.is_listening(), "the emulator did not die");
    assert!(micad.instance(&id).is_none(), "a partition is registered");
    eprintln!("{id}: micad died mid-create: {}", err.trim());
    // micad back: the next container runs.
    let micad = env.micad.as_mut().unwrap();
    micad.set_fault(Op::Create, None);
    micad.restart().unwrap();
    let id = unique_id("mback");
    ok(
        &env,
        &id,
        env.run_detached(&ns, &img, &id, &strs(&image_and_args(Ped::Micad, false).1)),
    );
    wait_state(&env, &ns, &id, TaskState::Running);
    remove_and_check(&env, &ns, &id, 0);
}

#[test]
fn micad_answers_garbage() {
    let env = micad_env();
    let ns = env.namespace("mgarb");
    let (img, _) = image_and_args(Ped::Micad, false);
    env.import(&ns, &img);
    let micad = env.micad.as_ref().unwrap();
    micad.set_fault(
        Op::Create,
        Some(Fault::Garbage(b"\x00\xffOK?\x1b[2J not a reply".to_vec())),
    );
    let id = unique_id("mgarb");
    let err = expect_create_failure(
        &env,
        &ns,
        &id,
        &run_args(&env, Ped::Micad, &id, true),
        &["micad"],
    );
    assert!(micad.instance(&id).is_none(), "a partition is registered");
    eprintln!("{id}: garbage for create: {}", err.trim());

    // Garbage for start: the created partition is removed again.
    micad.set_fault(Op::Create, None);
    micad.set_fault(
        Op::Start,
        Some(Fault::Garbage(b"MICA-SUCC\x00ESS".to_vec())),
    );
    let id = unique_id("mgarbs");
    let out = env.cd.ctr_with(
        Some(ns.name()),
        &strs(&run_args(&env, Ped::Micad, &id, true)),
        None,
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let what = format!(
        "ctr run {id}: {}\nstderr: {stderr:?}{}",
        out.status,
        env.diag(&id)
    );
    assert!(!out.status.success(), "started on garbage: {what}");
    assert!(
        stderr.contains("micad"),
        "the error does not name micad: {what}"
    );
    assert!(
        micad_got(&env, &id, Some("start")),
        "no start reached micad: {what}"
    );
    eprintln!("{id}: garbage for start: {}", stderr.trim());
    remove_and_check(&env, &ns, &id, 0);
}

// ---------------------------------------------------------------------------
// micrun's state dir full.

/// A tmpfs of `size` mounted on `dir`, unmounted (by that exact path) on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0711"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(st.success(), "mount a tmpfs on {}: {st}", dir.display());
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fills the filesystem of `dir` with `dir/filler` until ENOSPC.
fn fill(dir: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join("filler")).unwrap();
    let chunk = vec![0u8; 4096];
    loop {
        match f.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("fill {}: {e}", dir.display()),
        }
    }
    // Even a directory entry must not fit: fill the last blocks' worth of inodes.
    for i in 0.. {
        if std::fs::File::create(dir.join(format!("f{i}"))).is_err() || i > 10_000 {
            break;
        }
    }
}

#[test]
fn state_dir_full() {
    let env = Env::start();
    let tmpfs = Tmpfs::mount(env.state_dir(), "256k");
    let ns = env.namespace("full");
    let (img, ann) = image_and_args(Ped::Sim, false);
    env.import(&ns, &img);

    // A task runs, then the dir fills: its end and delete still work.
    let id = unique_id("fullrun");
    ok(&env, &id, env.run_detached(&ns, &img, &id, &strs(&ann)));
    wait_state(&env, &ns, &id, TaskState::Running);
    let pid = task_pid(&ns, &id);
    fill(&tmpfs.0);
    ns.kill(&id, "SIGKILL").unwrap();
    assert_eq!(exit_status(&env, &ns, &id), 137);
    remove_and_check(&env, &ns, &id, pid);

    // Create on a full dir: ENOSPC naming the dir, nothing half-written.
    let id = unique_id("full");
    let err = expect_create_failure(
        &env,
        &ns,
        &id,
        &run_args(&env, Ped::Sim, &id, true),
        &["no space left"],
    );
    assert!(
        err.contains(&env.state_dir().to_string_lossy().into_owned()),
        "the error does not name the state dir: {err}"
    );
    eprintln!("{id}: state dir full at create: {}", err.trim());
    // The namespace's directory stays (as after any delete), empty.
    let ns_dir = env.state_dir().join(ns.name());
    let left: Vec<_> = std::fs::read_dir(&ns_dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in the full state dir: {left:?}");
    drop(tmpfs);
}

/// The dir fills while the shim is inside Start (micad holds the `start` answer;
/// the shim waits up to 30 s for it here): Start writes no state, so the task
/// starts, its console works, its exit status comes back, and `--rm` removes it
/// from the full dir.
#[test]
fn state_dir_full_at_start() {
    let env = Env::start_with(|c| {
        c.baremetal_driver = "micad".into();
        c.mica_timeout = "30s".into();
    });
    let tmpfs = Tmpfs::mount(env.state_dir(), "256k");
    let ns = env.namespace("fullstart");
    let (img, _) = image_and_args(Ped::Micad, false);
    env.import(&ns, &img);
    let micad = env.micad.as_ref().unwrap();
    micad.set_fault(Op::Start, Some(Fault::Hold));
    let id = unique_id("fullstart");
    let mut s = Session::spawn(
        env.ctr_command(ns.name(), &strs(&run_args(&env, Ped::Micad, &id, true))),
        format!("ctr run {id}"),
    );
    assert!(
        wait_until(T_ACT, || micad_got(&env, &id, Some("start"))),
        "the start never reached micad{}",
        env.diag(&id)
    );
    fill(&tmpfs.0);
    micad.set_fault(Op::Start, None);
    assert_eq!(micad.release_held(), 1, "micad held no start");
    ok(&env, &id, s.expect(&banner(Ped::Micad), T_BOOT));
    let pid = task_pid(&ns, &id);
    s.send("exit 3\r");
    let st = s.wait(T_ACT);
    let what = format!("{}{}", s.describe(), env.diag(&id));
    let st = st.unwrap_or_else(|| panic!("ctr run did not end: {what}"));
    assert_eq!(Session::code(st), 3, "{what}");
    assert_nothing_left(&env, &ns, &id);
    assert!(pid == 0 || !pid_alive(pid), "instance {pid} left");
    assert_micad_gone(&env, &id);
    eprintln!("{id}: state dir full at start: ran, exit 3, removed");
    drop(tmpfs);
}

// ---------------------------------------------------------------------------
// containerd killed during Create and during Start, then restarted.

fn containerd_killed(op: Op, cmd: Option<&str>, tag: &str) {
    let env = micad_env();
    let ns = env.namespace(tag);
    let (img, _) = image_and_args(Ped::Micad, false);
    env.import(&ns, &img);
    env.micad.as_ref().unwrap().set_fault(op, Some(Fault::Hang));
    let id = unique_id(tag);
    let a = run_args(&env, Ped::Micad, &id, false);
    let mut s = Session::spawn(
        env.ctr_command(ns.name(), &strs(&a)),
        format!("ctr run {id}"),
    );
    assert!(
        wait_until(T_ACT, || micad_got(&env, &id, cmd)),
        "the {op:?} never reached micad{}",
        env.diag(&id)
    );
    let cd = env.cd.pid().expect("containerd's pid");
    sigkill(cd);
    let st = s.wait(T_ACT).expect("ctr ends when containerd dies");
    assert!(!st.success(), "ctr run succeeded: {}", s.describe());
    env.micad.as_ref().unwrap().set_fault(op, None);
    env.cd.restart().expect("restart containerd");
    // Either there and usable, or gone cleanly: the held micad call times out
    // (2 s), so the shim's Create/Start failed and the task must not be RUNNING.
    let now = state(&env, &ns, &id);
    assert!(
        matches!(
            now,
            None | Some(TaskState::Stopped) | Some(TaskState::Created)
        ),
        "task {id} after the restart: {now:?}{}",
        env.diag(&id)
    );
    eprintln!("{id}: containerd killed during {op:?}: task {now:?} after the restart");
    // The shim whose Create failed while containerd was down exits by itself
    // (ORPHAN_SHIM_EXIT, 5 s) when no Shutdown comes; `remove_and_check` waits
    // up to 10 s for it and its bundle to go.
    remove_and_check(&env, &ns, &id, 0);
    // The daemon still runs containers.
    let id = unique_id(&format!("{tag}-after"));
    ok(
        &env,
        &id,
        env.run_detached(&ns, &img, &id, &strs(&image_and_args(Ped::Micad, false).1)),
    );
    wait_state(&env, &ns, &id, TaskState::Running);
    remove_and_check(&env, &ns, &id, 0);
}

#[test]
fn containerd_killed_during_create() {
    containerd_killed(Op::Create, None, "cdcreate");
}

#[test]
fn containerd_killed_during_start() {
    containerd_killed(Op::Start, Some("start"), "cdstart");
}

// ---------------------------------------------------------------------------
// The shim SIGKILLed during Create, during Start, while a console floods.

fn shim_killed(op: Op, cmd: Option<&str>, tag: &str) {
    let env = micad_env();
    let ns = env.namespace(tag);
    let (img, _) = image_and_args(Ped::Micad, false);
    env.import(&ns, &img);
    env.micad.as_ref().unwrap().set_fault(op, Some(Fault::Hang));
    let events = env.cd.events().expect("ctr events");
    let id = unique_id(tag);
    let a = run_args(&env, Ped::Micad, &id, false);
    let mut s = Session::spawn(
        env.ctr_command(ns.name(), &strs(&a)),
        format!("ctr run {id}"),
    );
    assert!(
        wait_until(T_ACT, || micad_got(&env, &id, cmd)),
        "the {op:?} never reached micad{}",
        env.diag(&id)
    );
    let shims = env.shim_pids_of(&id);
    assert!(!shims.is_empty(), "no shim for {id}");
    for &p in &shims {
        sigkill(p);
    }
    let st = s.wait(T_ACT).expect("ctr ends when the shim dies");
    let what = format!("{}{}", s.describe(), env.diag(&id));
    assert!(!st.success(), "ctr run succeeded: {what}");
    if op == Op::Start {
        // The task was created: containerd's cleanup reports its end.
        let code = events
            .wait_exit(ns.name(), &id, T_ACT)
            .unwrap_or_else(|e| panic!("no exit event: {e}{what}"));
        assert_eq!(code, 137, "{what}");
    }
    eprintln!("{id}: shim killed during {op:?}: {}", s.stderr().trim());
    env.micad.as_ref().unwrap().set_fault(op, None);
    remove_and_check(&env, &ns, &id, 0);
}

#[test]
fn shim_killed_during_create() {
    shim_killed(Op::Create, None, "skcreate");
}

#[test]
fn shim_killed_during_start() {
    shim_killed(Op::Start, Some("start"), "skstart");
}

#[test]
fn shim_killed_while_flooding() {
    let env = Env::start();
    let ns = env.namespace("skflood");
    let (img, ann) = image_and_args(Ped::Sim, false);
    env.import(&ns, &img);
    let id = unique_id("skflood");
    let events = env.cd.events().expect("ctr events");
    let mut s = env.run_session(&ns, &img, &id, &strs(&ann));
    ok(&env, &id, s.expect(&banner(Ped::Sim), T_BOOT));
    let pid = task_pid(&ns, &id);
    s.send("flood 100000000\r");
    let at = s.stdout_len();
    assert!(
        wait_until(T_ACT, || s.stdout_len() > at + (1 << 20)),
        "no flood{}",
        env.diag(&id)
    );
    for p in env.shim_pids_of(&id) {
        sigkill(p);
    }
    let code = events
        .wait_exit(ns.name(), &id, T_ACT)
        .unwrap_or_else(|e| panic!("no exit event: {e}{}", env.diag(&id)));
    assert_eq!(code, 137, "{}", env.diag(&id));
    let st = s.wait(T_ACT);
    assert!(st.is_some(), "ctr run did not end: {}", s.describe());
    remove_and_check(&env, &ns, &id, pid);
    eprintln!("{id}: shim killed mid-flood: 137, instance {pid} gone");
}

// ---------------------------------------------------------------------------
// The RTOS hanging mid-flood and crashing mid-exec.

#[test]
fn rtos_hangs_mid_flood() {
    let env = Env::start();
    let ns = env.namespace("hflood");
    let (img, ann) = image_and_args(Ped::Sim, false);
    env.import(&ns, &img);
    let id = unique_id("hflood");
    let mut s = env.run_session(&ns, &img, &id, &strs(&ann));
    ok(&env, &id, s.expect(&banner(Ped::Sim), T_BOOT));
    let pid = task_pid(&ns, &id);
    s.send("flood 4000000\r");
    s.send("hang\r");
    let st = s.wait(Duration::from_secs(30));
    let what = format!("{}{}", s.describe(), env.diag(&id));
    let st = st.unwrap_or_else(|| panic!("a hang mid-flood was not detected: {what}"));
    assert!(
        s.stdout().contains("abcdefghijklmnopqrstuvwxyz"),
        "the flood did not flow: {what}"
    );
    assert_eq!(Session::code(st), 137, "{what}");
    assert_liveness_reason(&env, &id, &what);
    assert_nothing_left(&env, &ns, &id);
    assert!(pid == 0 || !pid_alive(pid), "instance {pid} left");
}

/// `ctr task exec ... ARGS` as a [`Session`].
fn exec(env: &Env, ns: &Namespace<'_>, id: &str, exec_id: &str, args: &[&str]) -> Session {
    let mut a = vec!["task", "exec", "--exec-id", exec_id, id];
    a.extend_from_slice(args);
    Session::spawn(
        env.ctr_command(ns.name(), &a),
        format!("ctr task exec {exec_id}"),
    )
}

#[test]
fn rtos_panics_mid_exec() {
    let env = Env::start();
    let ns = env.namespace("pexec");
    let (img, ann) = image_and_args(Ped::Sim, false);
    env.import(&ns, &img);
    let id = unique_id("pexec");
    ok(
        &env,
        &id,
        env.run_detached_fifo(&ns, &img, &id, &strs(&ann)),
    );
    wait_state(&env, &ns, &id, TaskState::Running);
    let pid = task_pid(&ns, &id);

    // `panic` as the exec's command: the demo application ends that command
    // with 134 and runs on.
    let mut x = exec(&env, &ns, &id, "p1", &["panic"]);
    let st = x.wait(T_ACT);
    let what = format!("{}{}", x.describe(), env.diag(&id));
    let st = st.unwrap_or_else(|| panic!("the exec did not end: {what}"));
    assert_eq!(Session::code(st), 134, "the exec's status: {what}");
    assert!(x.stdout().contains("PANIC: requested by exec"), "{what}");
    assert_eq!(state(&env, &ns, &id), Some(TaskState::Running), "{what}");

    // The application answers after the failed command.
    let mut x = exec(&env, &ns, &id, "p2", &["echo", "after-panic"]);
    let st = x.wait(T_ACT);
    let what = format!("{}{}", x.describe(), env.diag(&id));
    assert_eq!(st.map(Session::code), Some(0), "{what}");
    assert!(x.stdout().contains("after-panic"), "{what}");
    eprintln!("{id}: exec `panic` → 134, the application runs on");
    ns.kill(&id, "SIGKILL").unwrap();
    assert_eq!(exit_status(&env, &ns, &id), 137, "{}", env.diag(&id));
    remove_and_check(&env, &ns, &id, pid);
}

/// Waits for the `/tasks/exec-started` event of exec `exec_id` in task `id`.
fn wait_exec_started(env: &Env, events: &Events<'_>, ns: &Namespace<'_>, id: &str, exec_id: &str) {
    let started = events.wait_for(T_ACT, "/tasks/exec-started", |e| {
        e.namespace == ns.name()
            && e.topic == "/tasks/exec-started"
            && e.container_id() == Some(id)
            && e.payload["exec_id"].as_str() == Some(exec_id)
    });
    ok(env, id, started.map_err(|e| e.to_string()));
}

/// The RTOS itself panics (the console's `panic`: the simulator exits 101)
/// while an exec runs (`hang`, which only a signal ends). The task ends with
/// 101, the exec with 137; `ctr run --rm` deletes the task while `ctr task
/// exec` deletes its exec, a few ms apart, in either order; afterwards the
/// shim is gone and nothing is left. Several rounds: the deletes race.
#[test]
fn rtos_panics_while_an_exec_runs() {
    let env = Env::start();
    let ns = env.namespace("pmid");
    let (img, ann) = image_and_args(Ped::Sim, false);
    env.import(&ns, &img);
    let events = env.cd.events().expect("ctr events");
    for round in 0..5 {
        let id = unique_id(&format!("pmid{round}"));
        let mut s = env.run_session(&ns, &img, &id, &strs(&ann));
        ok(&env, &id, s.expect(&banner(Ped::Sim), T_BOOT));
        let pid = task_pid(&ns, &id);
        let mut x = exec(&env, &ns, &id, "hung", &["hang"]);
        wait_exec_started(&env, &events, &ns, &id, "hung");
        s.send("panic\r");
        let st = s.wait(T_ACT);
        let what = format!("{}{}", s.describe(), env.diag(&id));
        let st = st.unwrap_or_else(|| panic!("ctr run did not end after the panic: {what}"));
        assert_eq!(Session::code(st), 101, "the task's status: {what}");
        let xt = x.wait(T_ACT);
        let what = format!("{}{}", x.describe(), env.diag(&id));
        let xt = xt.unwrap_or_else(|| panic!("the exec did not end: {what}"));
        assert_eq!(Session::code(xt), 137, "the exec's status: {what}");
        assert_nothing_left(&env, &ns, &id);
        assert!(pid == 0 || !pid_alive(pid), "instance {pid} left");
    }
    eprintln!("panic mid-exec: task 101, exec 137, shim gone, nothing left (5 rounds)");
}

/// An exec whose Start fails while containerd waits on it (containerd sends
/// Wait before Start): its logger (`--log-uri binary:///bin/false`) ends
/// instead of saying it is ready. `ctr task exec` fails naming the logger;
/// once the task is deleted the shim is gone and nothing is left. (The Wait
/// on the exec that never ran used to block for ever, and the shim, which
/// waited for its ttrpc calls at Shutdown, stayed running.)
#[test]
fn exec_start_fails_while_waited() {
    let env = Env::start();
    let ns = env.namespace("xfail");
    let (img, ann) = image_and_args(Ped::Sim, false);
    env.import(&ns, &img);
    let id = unique_id("xfail");
    ok(&env, &id, env.run_detached(&ns, &img, &id, &strs(&ann)));
    wait_state(&env, &ns, &id, TaskState::Running);
    let pid = task_pid(&ns, &id);
    let a = [
        "task",
        "exec",
        "--exec-id",
        "nolog",
        "--log-uri",
        "binary:///bin/false",
        &id,
        "hang",
    ];
    let mut x = Session::spawn(
        env.ctr_command(ns.name(), &a),
        "ctr task exec nolog".to_string(),
    );
    let st = x.wait(T_ACT);
    let what = format!("{}{}", x.describe(), env.diag(&id));
    let st = st.unwrap_or_else(|| panic!("ctr task exec did not end: {what}"));
    assert!(!st.success(), "the exec started: {what}");
    assert!(
        x.stderr().contains("logger"),
        "the error does not name the logger: {what}"
    );
    // The application runs on.
    assert_eq!(state(&env, &ns, &id), Some(TaskState::Running), "{what}");
    remove_and_check(&env, &ns, &id, pid);
    eprintln!("{id}: exec start failed ({}); shim gone", x.stderr().trim());
}
