//! Exec through containerd's task API (`ctr task exec`): one command of the
//! firmware's application runs through the micrun agent (protocol 1.2), its
//! output comes back on the exec's stdout, its exit code is ctr's. The demo
//! shell's commands are the exec commands. On the `sim` pedestal and on QEMU
//! (`qemu-system-aarch64 -M virt`, the bare-metal demo firmware).
//!
//! | tests | what |
//! |---|---|
//! | `commands_*` | `stats` → its line, 0, and the events TaskExecAdded, TaskExecStarted, TaskExit (id `e1`); `exit 3` → 3 (the task runs on); an unknown command → 127 and the shell's message; the console still answers |
//! | `flood_*` | 300 000 bytes of exec output arrive complete and in order (credit flow control), then `flood done` |
//! | `queued_execs_sim` | four execs at once run one after another, each with its own output and code |
//! | `kill_exec_sim` | `sleep 60000` killed with SIGKILL through `ctr task kill --exec-id` → 137 at once; the task runs on |
//! | `exec_needs_the_agent_*` | a raw firmware: FAILED_PRECONDITION saying exec needs the agent; nothing of the exec is left |
//! | `exec_ends_with_the_task_sim` | a running exec ends with 137 when the task is killed |
//!
//! Needs what `shim_e2e.rs` needs.

use std::time::Duration;

use micrun_tests::containerd::TaskState;
use micrun_tests::e2e::{unique_id, wait_until, Env, Ped, Session};
use micrun_tests::scenarios::{image_and_args, ok, strs, wait_state, T_ACT};

/// `ctr task exec --exec-id EXEC ID ARGS...`: (exit code, stdout, stderr).
fn exec(env: &Env, ns: &str, id: &str, exec_id: &str, args: &[&str]) -> (i32, String, String) {
    let mut a = vec!["task", "exec", "--exec-id", exec_id, id];
    a.extend_from_slice(args);
    let mut s = Session::spawn(env.ctr_command(ns, &a), format!("ctr task exec {exec_id}"));
    let st = s
        .wait(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("ctr task exec {args:?} did not end{}", env.diag(id)));
    (Session::code(st), s.stdout(), s.stderr())
}

/// A running container of the demo firmware on `p` in its own namespace.
fn running<'e>(
    env: &'e Env,
    p: Ped,
    tag: &str,
    raw: bool,
) -> (micrun_tests::containerd::Namespace<'e>, String) {
    let ns = env.namespace(&format!("{tag}-{p}"));
    let (img, ann) = image_and_args(p, raw);
    env.import(&ns, &img);
    let id = unique_id(&format!("{tag}-{p}"));
    ok(env, &id, env.run_detached(&ns, &img, &id, &strs(&ann)));
    wait_state(env, &ns, &id, TaskState::Running);
    (ns, id)
}

fn commands(p: Ped) {
    let env = Env::shared();
    let (ns, id) = running(&env, p, "exec", false);
    let events = env.cd.events().expect("ctr events");
    let (code, out, err) = exec(&env, ns.name(), &id, "e1", &["stats"]);
    assert_eq!(code, 0, "stats: {out:?} {err:?}{}", env.diag(&id));
    assert!(out.contains("uptime_ms="), "stats output: {out:?}");
    assert!(
        !out.contains("> "),
        "no prompt in an exec's output: {out:?}"
    );
    // The exec's events, as runc's shim sends them: added, started, its exit.
    let exit = events
        .wait_for(T_ACT, "/tasks/exit of e1", |e| {
            e.topic == "/tasks/exit" && e.payload["id"] == "e1"
        })
        .expect("the exec's TaskExit");
    assert_eq!(exit.payload["container_id"], id.as_str());
    assert_eq!(exit.payload["exit_status"].as_i64().unwrap_or(0), 0);
    let topics: Vec<String> = events
        .of(ns.name(), &id)
        .into_iter()
        .filter(|e| e.topic.starts_with("/tasks/exec") || e.payload["id"] == "e1")
        .map(|e| e.topic)
        .collect();
    assert_eq!(
        topics,
        ["/tasks/exec-added", "/tasks/exec-started", "/tasks/exit"],
        "the exec's events"
    );

    let (code, out, err) = exec(&env, ns.name(), &id, "e2", &["exit", "3"]);
    assert_eq!(code, 3, "exit 3: {out:?} {err:?}");
    let (code, out, _) = exec(&env, ns.name(), &id, "e3", &["nosuch", "thing"]);
    assert_eq!(code, 127, "unknown command: {out:?}");
    assert!(out.contains("unknown command: nosuch"), "{out:?}");
    let (code, out, _) = exec(&env, ns.name(), &id, "e4", &["echo", "two", "words"]);
    assert_eq!((code, out.trim_end()), (0, "two words"));
    // An exec's `exit` ends the exec, not the application.
    assert_eq!(
        micrun_tests::scenarios::state(&env, &ns, &id),
        Some(TaskState::Running)
    );
    // The exec ids are free again once each exec is deleted (ctr deletes them).
    let (code, _, _) = exec(&env, ns.name(), &id, "e1", &["hello"]);
    assert_eq!(code, 0);
}

fn flood(p: Ped) {
    let env = Env::shared();
    let (ns, id) = running(&env, p, "execflood", false);
    let total = 300_000u32;
    let (code, out, err) = exec(&env, ns.name(), &id, "f", &["flood", &total.to_string()]);
    assert_eq!(code, 0, "{err:?}{}", env.diag(&id));
    let body = out.as_bytes();
    let mismatch =
        (0..total).find(|&i| body.get(i as usize) != Some(&micrun_rtos::demo::flood_byte(i)));
    assert_eq!(
        mismatch,
        None,
        "flood byte {mismatch:?} wrong or missing ({} bytes)",
        body.len()
    );
    assert!(out[total as usize..].contains(&format!("flood done {total}")));
}

#[test]
fn queued_execs_sim() {
    let env = Env::shared();
    let (ns, id) = running(&env, Ped::Sim, "execq", false);
    let handles: Vec<_> = (0..4)
        .map(|k| {
            let env = env.clone();
            let (ns, id) = (ns.name().to_string(), id.clone());
            std::thread::spawn(move || {
                let text = format!("exec-{k}");
                let r = exec(&env, &ns, &id, &format!("q{k}"), &["echo", &text]);
                let c = exec(&env, &ns, &id, &format!("x{k}"), &["exit", &k.to_string()]);
                (k, text, r, c)
            })
        })
        .collect();
    for h in handles {
        let (k, text, (code, out, err), (xcode, _, _)) = h.join().expect("exec thread");
        assert_eq!((code, out.trim_end()), (0, text.as_str()), "{err:?}");
        assert_eq!(xcode, k);
    }
}

#[test]
fn kill_exec_sim() {
    let env = Env::shared();
    let (ns, id) = running(&env, Ped::Sim, "execkill", false);
    let a = [
        "task",
        "exec",
        "--exec-id",
        "long",
        id.as_str(),
        "sleep",
        "60000",
    ];
    let mut s = Session::spawn(env.ctr_command(ns.name(), &a), "ctr task exec sleep");
    // The exec runs once ctr's task list shows it (ctr task ps lists the init only).
    let started = wait_until(T_ACT, || {
        env.log_lines(&format!("start exec long in {id}"), 1)
            .contains("long")
    });
    assert!(started, "the exec never started{}", env.diag(&id));
    let out = ns.ctr(&["task", "kill", "--exec-id", "long", "-s", "SIGKILL", &id]);
    assert!(out.status.success(), "{out:?}");
    let st = s
        .wait(Duration::from_secs(10))
        .expect("the killed exec ends");
    assert_eq!(Session::code(st), 137, "{}", s.describe());
    assert_eq!(
        micrun_tests::scenarios::state(&env, &ns, &id),
        Some(TaskState::Running)
    );
    let (code, out, _) = exec(&env, ns.name(), &id, "after", &["hello"]);
    assert_eq!(code, 0, "the next exec runs: {out:?}");
}

#[test]
fn exec_ends_with_the_task_sim() {
    let env = Env::shared();
    let (ns, id) = running(&env, Ped::Sim, "execend", false);
    let a = [
        "task",
        "exec",
        "--exec-id",
        "long",
        id.as_str(),
        "sleep",
        "60000",
    ];
    let mut s = Session::spawn(env.ctr_command(ns.name(), &a), "ctr task exec sleep");
    assert!(wait_until(T_ACT, || {
        env.log_lines(&format!("start exec long in {id}"), 1)
            .contains("long")
    }));
    let out = ns.ctr(&["task", "kill", "-s", "SIGKILL", &id]);
    assert!(out.status.success(), "{out:?}");
    let st = s
        .wait(Duration::from_secs(10))
        .expect("the exec ends with its task");
    assert_eq!(Session::code(st), 137, "{}", s.describe());
}

fn exec_needs_the_agent(p: Ped) {
    let env = Env::shared();
    let (ns, id) = running(&env, p, "execraw", true);
    let (code, out, err) = exec(&env, ns.name(), &id, "r1", &["stats"]);
    assert_ne!(code, 0, "{out:?}");
    assert!(
        err.contains("exec needs the micrun agent") && err.contains("raw"),
        "{err:?}"
    );
    assert!(
        err.to_lowercase().contains("failed precondition"),
        "{err:?}"
    );
    // Nothing of the exec is left: the same id can be used again (and fails the same way).
    let (_, _, err2) = exec(&env, ns.name(), &id, "r1", &["stats"]);
    assert!(!err2.contains("already exists"), "{err2:?}");
}

macro_rules! per_pedestal {
    ($($name:ident: $ped:expr;)*) => {
        $(
            mod $name {
                use super::*;
                #[test]
                fn commands() { super::commands($ped) }
                #[test]
                fn flood() { super::flood($ped) }
                #[test]
                fn exec_needs_the_agent() { super::exec_needs_the_agent($ped) }
            }
        )*
    };
}

per_pedestal! {
    sim: Ped::Sim;
    qemu: Ped::Qemu;
}
