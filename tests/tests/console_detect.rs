//! `agent=auto` never disturbs a firmware without the agent: real third-party
//! firmware (Debian's U-Boot for QEMU `virt`, aarch64) and the raw demo shell run
//! as containers under a private containerd, driven by `ctr`.
//!
//! U-Boot takes any byte that arrives during its 2 s autoboot countdown as a key
//! press (`<INTERRUPT>`) and any stray byte at its prompt as typed input, so it
//! shows at once whether the host wrote something the user did not type.
//!
//! | test | what |
//! |---|---|
//! | `uboot_auto_is_off_byte_for_byte` | U-Boot under `auto` and under `off` side by side: countdown not interrupted, `version` / `echo` answer, `poweroff` → 0, and the console up to the first prompt is the same bytes in both |
//! | `uboot_signals_auto` | SIGTERM → 143, SIGKILL → 137, nothing left |
//! | `raw_shell_micad_auto` | the raw demo shell through micad's emulator (its console appears 1.2 s after start), typed at as soon as it answers and after the detection window: no command fails |
//! | `agent_found_on_late_console_micad` | the agent demo on micad under `auto`, its console appearing 1.2 s after it booted: found by its next announcement (SIGUSR1 reaches it; SIGTERM → its own 0) |

use std::time::Duration;

use micrun_tests::containerd::TaskState;
use micrun_tests::e2e::{custom_image, unique_id, Env, Ped, Session, TestImage, ANN_AGENT};
use micrun_tests::peers;
use micrun_tests::scenarios::{
    annotations, assert_clean, exit_status, image_and_args, ok, strs, task_pid, wait_state, T_ACT,
    T_BOOT,
};

/// U-Boot prints this before its countdown, and `<INTERRUPT>` when a byte stops it.
const COUNTDOWN: &str = "Hit any key to stop autoboot";
const PROMPT: &str = "=> ";

fn uboot_image() -> TestImage {
    let elf = std::fs::read(peers::uboot("qemu_arm64")).expect("read U-Boot");
    custom_image("uboot-arm64", "linux", "arm64", |b| {
        b.file("/firmware.elf", elf, 0o755)
    })
}

/// Runs U-Boot in the foreground under `agent=<mode>` to its first prompt after
/// the autoboot, types `version` and `echo`, and powers it off. Returns the
/// console output up to the first prompt.
fn uboot_session(env: &Env, mode: &str) -> String {
    let ns = env.namespace(&format!("uboot-{mode}"));
    let img = uboot_image();
    env.import(&ns, &img);
    let id = unique_id(&format!("uboot-{mode}"));
    let ann = annotations(Ped::Qemu, &[&format!("{ANN_AGENT}={mode}")]);
    let mut s = env.run_session(&ns, &img, &id, &strs(&ann));
    let what = |s: &Session| format!("{mode}: {}{}", s.describe(), env.diag(&id));
    let after_countdown = s
        .expect(COUNTDOWN, T_BOOT)
        .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));
    // The countdown runs out by itself; the boot commands find nothing to boot
    // and U-Boot gives its prompt.
    let prompt = s
        .expect_from(after_countdown, PROMPT, T_BOOT)
        .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));
    let boot = s.stdout()[..prompt].to_string();
    assert!(
        !boot.contains("<INTERRUPT>"),
        "the autoboot was interrupted: {}",
        what(&s)
    );
    s.send("version\r");
    let v = s
        .expect_from(prompt, "U-Boot 2023.01", T_ACT)
        .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));
    let v = s
        .expect_from(v, PROMPT, T_ACT)
        .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));
    s.send("echo hello-from-ctr\r");
    s.expect_from(v, "\r\nhello-from-ctr\r\n", T_ACT)
        .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));
    s.send("poweroff\r");
    let st = s.wait(T_ACT);
    let out = s.stdout();
    assert!(!out.contains("Unknown command"), "{}", what(&s));
    let st = st.unwrap_or_else(|| panic!("U-Boot did not power off: {}", what(&s)));
    assert_eq!(
        Session::code(st),
        0,
        "exit status of poweroff: {}",
        what(&s)
    );
    assert_clean(env, &ns, &id, 0, None);
    boot
}

#[test]
fn uboot_auto_is_off_byte_for_byte() {
    let env = Env::shared();
    let (auto, off) = std::thread::scope(|sc| {
        let auto = sc.spawn(|| uboot_session(&env, "auto"));
        let off = sc.spawn(|| uboot_session(&env, "off"));
        (auto.join(), off.join())
    });
    let (auto, off) = (
        auto.unwrap_or_else(|e| std::panic::resume_unwind(e)),
        off.unwrap_or_else(|e| std::panic::resume_unwind(e)),
    );
    assert_eq!(auto, off, "the console differs between agent=auto and off");
}

#[test]
fn uboot_signals_auto() {
    let env = Env::shared();
    let ns = env.namespace("uboot-sig");
    let img = uboot_image();
    env.import(&ns, &img);
    for (signal, want) in [("SIGTERM", 143), ("SIGKILL", 137)] {
        let id = unique_id(&format!("uboot-{}", signal.to_lowercase()));
        let ann = annotations(Ped::Qemu, &[]);
        ok(&env, &id, env.run_detached(&ns, &img, &id, &strs(&ann)));
        wait_state(&env, &ns, &id, TaskState::Running);
        let pid = task_pid(&ns, &id);
        ns.kill(&id, signal)
            .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));
        assert_eq!(
            exit_status(&env, &ns, &id),
            want,
            "{signal}{}",
            env.diag(&id)
        );
        ns.ctr_ok(&["containers", "rm", &id]).unwrap();
        assert_clean(&env, &ns, &id, pid, None);
    }
}

/// The micad emulator's consoles appear this long after `start`, while the
/// firmware already runs (an agent announces into the void meanwhile).
const LATE_CONSOLE: Duration = Duration::from_millis(1200);

#[test]
fn raw_shell_micad_auto() {
    let env = Env::start_with(|c| {
        c.micad_firmware_args = vec!["--raw".into()];
        c.micad_tty_delay = LATE_CONSOLE;
    });
    let p = Ped::Micad;
    let ns = env.namespace("rawauto-micad");
    let (img, ann) = image_and_args(p, true);
    env.import(&ns, &img);
    let id = unique_id("rawauto-micad");
    let mut s = env.run_session(&ns, &img, &id, &strs(&ann));
    // Typed as soon as the shell speaks, well inside the detection window.
    let at = s
        .expect("> ", T_BOOT)
        .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));
    s.send("echo typed-at-once\r");
    let at = s
        .expect_from(at, "typed-at-once\r\n> ", T_ACT)
        .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));
    // And after the window, in raw mode for good.
    // (The shared daemon's handshake_wait is 2 s: MicrunConfig::for_tests.)
    assert_eq!(env.config().handshake_wait.as_deref(), Some("2s"));
    std::thread::sleep(Duration::from_millis(2200));
    s.send("echo later\r");
    s.expect_from(at, "later\r\n> ", T_ACT)
        .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));
    ns.kill(&id, "SIGTERM")
        .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));
    let st = s.wait(T_ACT);
    let what = format!("{}{}", s.describe(), env.diag(&id));
    assert!(!s.stdout().contains("unknown command"), "{what}");
    let st = st.unwrap_or_else(|| panic!("no exit: {what}"));
    assert_eq!(Session::code(st), 143, "raw console, SIGTERM: {what}");
    assert_clean(&env, &ns, &id, 0, None);
}

#[test]
fn agent_found_on_late_console_micad() {
    let env = Env::start_with(|c| c.micad_tty_delay = LATE_CONSOLE);
    let p = Ped::Micad;
    let ns = env.namespace("agentauto-micad");
    let (img, ann) = image_and_args(p, false);
    env.import(&ns, &img);
    let id = unique_id("agentauto-micad");
    ok(
        &env,
        &id,
        env.run_detached_fifo(&ns, &img, &id, &strs(&ann)),
    );
    wait_state(&env, &ns, &id, TaskState::Running);
    // SIGUSR1 reaches only an agent: it must have been found by its announcement.
    let found = micrun_tests::e2e::wait_until(T_ACT, || {
        ns.ctr(&["tasks", "kill", "-s", "SIGUSR1", &id])
            .status
            .success()
    });
    assert!(found, "the agent was not detected{}", env.diag(&id));
    ns.kill(&id, "SIGTERM")
        .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));
    assert_eq!(exit_status(&env, &ns, &id), 0, "{}", env.diag(&id));
    ns.ctr_ok(&["containers", "rm", &id]).unwrap();
    assert_clean(&env, &ns, &id, 0, None);
}
