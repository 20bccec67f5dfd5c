//! A real Cortex-M firmware as a container: the C application of
//! `rtos-side/firmware/mps2-an386` (built by its `build.sh` with Debian's
//! `arm-none-eabi-gcc` on the agent's C ABI) booted by
//! `qemu-system-arm -M mps2-an386` on the qemu pedestal, under a private real
//! containerd driven by `ctr`. The path a UniProton or Zephyr port follows
//! (docs/porting.md).
//!
//! | test | what |
//! |---|---|
//! | `packed_m4_image_runs` | `micrun image pack --board mps2-an386 --arch arm` → plain `ctr images import` → `ctr run --rm`: the board comes from the image, QEMU runs `-M mps2-an386 -cpu cortex-m4`; handshake (the greeting), console (`echo`), `stats` on the console, `exit 3` → 3, nothing left |
//! | `m4_stop_hook_exec_and_stats` | a plain image with the board annotation, detached: `ctr task metrics` has the RTOS's memory, `ctr task exec` of `stats` (its output, 0) and `exit 4` (4), an unknown command 127; SIGTERM → the application's stop hook prints its line and ends with its own code 0; nothing left |

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use micrun_tests::containerd::TaskState;
use micrun_tests::e2e::{
    cmdline, custom_image, micrun_binary, shim_socket_of, unique_id, Env, Session, TestImage,
    ANN_PEDESTAL,
};
use micrun_tests::scenarios::{assert_clean, ok, state, strs, task_pid, wait_state};
use micrun_tests::scenarios::{T_ACT, T_BOOT};
use micrun_tests::{repo_root, TempDir};

const BOARD: &str = "mps2-an386";
const GREETING: &str = "micrun C application on mps2-an386 (Cortex-M4)";

/// The firmware ELF, built once per process into `target/cortex-m-for-tests`.
fn firmware() -> PathBuf {
    static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.as_ref() {
        return p.clone();
    }
    let root = repo_root();
    let target_dir = root.join("target/cortex-m-for-tests");
    std::fs::create_dir_all(&target_dir).unwrap();
    let out = target_dir.join("mps2-an386.elf");
    let status = Command::new("bash")
        .arg(root.join("rtos-side/firmware/mps2-an386/build.sh"))
        .arg(&out)
        .env("CARGO_TARGET_DIR", &target_dir)
        .status()
        .expect("run build.sh");
    assert!(
        status.success() && out.is_file(),
        "rtos-side/firmware/mps2-an386/build.sh failed ({status}); it needs \
         gcc-arm-none-eabi and libnewlib-arm-none-eabi (.ci/setup installs them)"
    );
    *built = Some(out.clone());
    out
}

/// The QEMU process of task `id` runs the mps2-an386 machine.
fn assert_m4_machine(env: &Env, ns: &micrun_tests::containerd::Namespace<'_>, id: &str) {
    let pid = task_pid(ns, id);
    let args = cmdline(pid).join(" ");
    assert!(
        args.contains("qemu-system-arm") && args.contains("-M mps2-an386 -cpu cortex-m4"),
        "task pid {pid} is not QEMU's mps2-an386: {args}{}",
        env.diag(id)
    );
}

#[test]
fn packed_m4_image_runs() {
    let dir = TempDir::new("m4-pack");
    let d = dir.path();
    std::fs::copy(firmware(), d.join("m4.elf")).unwrap();
    let name = "localhost/micrun/m4:1";
    let out = Command::new(micrun_binary())
        .args(["image", "pack", "--board", BOARD, "--os", "bare-metal-c"])
        .args(["--arch", "arm", "--pedestal", "qemu", "--tag", name])
        .args(["-o", "m4.tar", "m4.elf"])
        .current_dir(d)
        .env_remove("MICRUN_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "micrun image pack: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env = Env::shared();
    let ns = env.namespace("m4-pack");
    ns.import_with(&d.join("m4.tar").to_string_lossy(), &[])
        .unwrap_or_else(|e| panic!("ctr images import: {e}"));
    let image = TestImage {
        name: name.to_owned(),
        tar: Arc::new(Vec::new()),
        run_args: Vec::new(),
    };
    let id = unique_id("m4-pack");
    // The test daemon's micrun defaults to sim; a host without one detects qemu.
    let pedestal = format!("{ANN_PEDESTAL}=qemu");
    let mut args = vec!["run".to_string(), "--rm".into()];
    args.extend(env.run_args(&image, &["--annotation", &pedestal]));
    args.push(name.to_owned());
    args.push(id.clone());
    let out = env.cd.ctr_with(
        Some(ns.name()),
        &strs(&args),
        Some(b"echo hello from the host\rstats\rexit 3\r"),
        T_BOOT + T_ACT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let what = format!(
        "ctr {}: {}\nstdout: {stdout:?}\nstderr: {:?}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr),
        env.diag(&id)
    );
    assert!(stdout.contains(GREETING), "no greeting: {what}");
    assert!(
        stdout.contains("hello from the host\r\n"),
        "no echo: {what}"
    );
    assert!(
        stdout.contains("mem_total_kib=4096"),
        "no stats line: {what}"
    );
    assert_eq!(out.status.code(), Some(3), "exit status: {what}");
    let log = env.log_lines(&id, 80);
    assert!(
        log.contains(&format!("{BOARD}/bare-metal-c/arm/qemu")),
        "the shim did not pick the image's firmware: {log}"
    );
    micrun_tests::scenarios::assert_nothing_left(&env, &ns, &id);
}

/// A plain image: `/firmware.elf`, the board given by annotation.
fn plain_image(tag: &str, fw: &Path) -> TestImage {
    let bytes = std::fs::read(fw).unwrap();
    custom_image(tag, "linux", "arm", |b| {
        b.file("/firmware.elf", bytes, 0o755)
    })
}

#[test]
fn m4_stop_hook_exec_and_stats() {
    let env = Env::shared();
    let ns = env.namespace("m4-plain");
    let img = plain_image("m4-plain", &firmware());
    env.import(&ns, &img);
    let id = unique_id("m4-plain");
    let ann = [
        "--annotation".to_string(),
        format!("{ANN_PEDESTAL}=qemu"),
        "--annotation".into(),
        format!("org.openeuler.micrun.container.board={BOARD}"),
    ];
    let mut s = env.run_session(&ns, &img, &id, &strs(&ann));
    ok(&env, &id, s.expect(GREETING, T_BOOT));
    wait_state(&env, &ns, &id, TaskState::Running);
    assert_m4_machine(&env, &ns, &id);
    let pid = task_pid(&ns, &id);
    let socket = shim_socket_of(&env.cd.bundle_dir(ns.name(), &id));

    // Stats through the agent: the RTOS's own memory (4 MiB of data SSRAM).
    let m = ns
        .ctr_ok(&["tasks", "metrics", &id])
        .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));
    let m = String::from_utf8_lossy(&m.stdout).into_owned();
    assert!(
        m.contains("memory"),
        "no memory in metrics: {m:?}{}",
        env.diag(&id)
    );

    // Exec through the agent's exec hook.
    let exec = |exec_id: &str, cmd: &[&str]| {
        let mut args = vec!["tasks", "exec", "--exec-id", exec_id, &id];
        args.extend_from_slice(cmd);
        ns.ctr(&args)
    };
    let out = exec("st", &["stats"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "exec stats: {text:?}");
    assert!(text.contains("mem_total_kib=4096"), "exec stats: {text:?}");
    assert_eq!(exec("four", &["exit", "4"]).status.code(), Some(4));
    assert_eq!(exec("none", &["no-such"]).status.code(), Some(127));

    // SIGTERM: the application's stop hook, and its exit code.
    ns.kill(&id, "SIGTERM")
        .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));
    let st = s.wait(T_ACT);
    let what = format!("{}{}", s.describe(), env.diag(&id));
    let st = st.unwrap_or_else(|| panic!("ctr run did not end after SIGTERM: {what}"));
    assert!(
        s.stdout().contains("stop requested (grace "),
        "the stop hook did not run: {what}"
    );
    assert_eq!(Session::code(st), 0, "exit code: {what}");
    // `ctr run --rm` removed the task and the container; nothing else is left.
    assert_eq!(
        state(&env, &ns, &id),
        None,
        "a task is left{}",
        env.diag(&id)
    );
    assert_clean(&env, &ns, &id, pid, socket.as_deref());
}
