//! Real third-party firmware (Debian's packages, nothing this project wrote) as
//! containers on the `qemu` pedestal, under a private real containerd driven by
//! `ctr`: what the pedestal must boot besides micrun's own demo.
//!
//! | test | firmware | what |
//! |---|---|---|
//! | `uboot_2025_aarch64` | U-Boot 2025.01 ELF (trixie) | QEMU answers QMP only after ~2.4 s: Create waits to the start-up deadline; `version`, `echo`, `poweroff` → 0 |
//! | `uboot_raw_binary_at_its_load_address` | U-Boot 2023.01 `u-boot.bin` | a raw image at `firmware_load_address`; `echo`; SIGTERM → 143 |
//! | `edk2_uefi_shell` | EDK2 `QEMU_EFI.fd` | a bios image (`*.fd`) with 128 MiB: `Shell>`, `reset -s` → 0 |
//! | `guest_panic_ends_the_task` | U-Boot 2023.01 aarch64 | writes the pvpanic device (`pci enum`, `mw.b`): QEMU reports `guest-panicked` → 134, the reason in the shim log |
//! | `uboot_arm32` | U-Boot 2023.01 `qemu_arm` ELF | `qemu-system-arm -M virt`: `version`, `echo`, SIGKILL → 137 |
//! | `uboot_riscv64_over_opensbi` | U-Boot 2023.01 `qemu-riscv64_smode` ELF | `qemu-system-riscv64 -M virt` over OpenSBI: `version`, `echo`, SIGTERM → 143 |
//! | `bad_images` | — | a raw image outside the guest's RAM, a non-ELF without a kind: clear errors, nothing left |
//!
//! Third-party firmware runs with `agent=off` (raw console). Every test checks that
//! nothing is left (`Env::leftovers`). The tests share one daemon and run in
//! parallel, each in its own namespace.

use std::path::Path;
use std::time::Duration;

use micrun_tests::containerd::{Namespace, TaskState};
use micrun_tests::e2e::{custom_image, shim_socket_of, unique_id, Env, Session, TestImage};
use micrun_tests::peers;

/// From `ctr run` to the firmware's prompt: U-Boot counts down 2 s and then tries
/// to boot from every device; EDK2 takes ~11 s on an idle host. Room for a loaded
/// 2-core machine.
const T_BOOT: Duration = Duration::from_secs(90);
/// From a command to its effect.
const T_ACT: Duration = Duration::from_secs(30);

const PEDESTAL_QEMU: &str = "org.openeuler.micrun.ped.pedestal=qemu";
const AGENT_OFF: &str = "org.openeuler.micrun.container.agent=off";
const FIRMWARE_PATH: &str = "org.openeuler.micrun.container.firmware_path";
const LOAD_ADDRESS: &str = "org.openeuler.micrun.container.firmware_load_address";
const MIN_MEMORY: &str = "org.openeuler.micrun.container.min_memory_mb";

/// An image of platform linux/`arch` with `file` at `/<name>`.
fn image(tag: &str, arch: &str, name: &str, file: &Path) -> TestImage {
    let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    custom_image(tag, "linux", arch, |b| {
        b.file(&format!("/{name}"), bytes, 0o644)
    })
}

/// `--annotation` flags: qemu, agent off, then `extra` (`K=V` each).
fn annotations(extra: &[String]) -> Vec<String> {
    let mut a = Vec::new();
    for kv in [PEDESTAL_QEMU, AGENT_OFF]
        .into_iter()
        .map(str::to_owned)
        .chain(extra.iter().cloned())
    {
        a.push("--annotation".to_owned());
        a.push(kv);
    }
    a
}

/// One firmware container, run in the foreground by `ctr run --rm`.
struct Run<'e> {
    env: &'e Env,
    ns: Namespace<'e>,
    id: String,
    s: Session,
    /// The shim's socket, for the leftover check.
    socket: Option<std::path::PathBuf>,
    /// Output offset after the last expectation.
    at: usize,
}

impl<'e> Run<'e> {
    fn start(env: &'e Env, tag: &str, img: &TestImage, extra: &[String]) -> Run<'e> {
        let ns = env.namespace(tag);
        env.import(&ns, img);
        let id = unique_id(tag);
        let args = annotations(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let s = env.run_session(&ns, img, &id, &args);
        Run {
            env,
            ns,
            id,
            s,
            socket: None,
            at: 0,
        }
    }

    /// Waits for `needle` after what was already matched.
    fn expect(&mut self, needle: &str, timeout: Duration) {
        match self.s.expect_from(self.at, needle, timeout) {
            Ok(at) => self.at = at,
            Err(e) => panic!("{}: {e}{}", self.id, self.env.diag(&self.id)),
        }
        if self.socket.is_none() {
            self.socket = shim_socket_of(&self.env.cd.bundle_dir(self.ns.name(), &self.id));
        }
    }

    /// Types `line` (with the Enter key) and waits for `answer`.
    fn command(&mut self, line: &str, answer: &str) {
        self.s.send(&format!("{line}\r"));
        self.expect(answer, T_ACT);
    }

    /// Waits for `ctr run` to end; its exit status.
    fn exit_code(&mut self) -> i32 {
        match self.s.wait(T_ACT) {
            Some(st) => Session::code(st),
            None => panic!(
                "{}: ctr run did not end: {}{}",
                self.id,
                self.s.describe(),
                self.env.diag(&self.id)
            ),
        }
    }

    fn kill(&self, signal: &str) {
        self.ns
            .kill(&self.id, signal)
            .unwrap_or_else(|e| panic!("{e}{}", self.env.diag(&self.id)));
    }

    /// Nothing of the container is left (`ctr run --rm` removed it).
    fn assert_clean(&self) {
        let left = self
            .env
            .leftovers(&self.ns, &self.id, 0, self.socket.as_deref());
        assert!(
            left.is_empty(),
            "{}: left behind: {left:?}{}",
            self.id,
            self.env.diag(&self.id)
        );
        assert_eq!(
            self.ns.task_state(&self.id).unwrap(),
            None,
            "{}: a task is left",
            self.id
        );
    }
}

/// U-Boot's prompt once autoboot has run (any byte during the countdown would
/// stop it; agent=off sends none).
fn uboot_prompt(r: &mut Run<'_>) {
    r.expect("Hit any key to stop autoboot", T_BOOT);
    r.expect("=> ", T_BOOT);
}

#[test]
fn uboot_2025_aarch64() {
    let env = Env::shared();
    let img = image(
        "uboot2025",
        "arm64",
        "firmware.elf",
        &peers::uboot_2025("qemu_arm64"),
    );
    let mut r = Run::start(&env, "uboot2025", &img, &[]);
    r.expect("U-Boot 2025.01", T_BOOT);
    uboot_prompt(&mut r);
    r.command("version", "U-Boot 2025.01");
    r.expect("=> ", T_ACT);
    r.command("echo hi there", "\nhi there\r\n");
    r.s.send("poweroff\r");
    assert_eq!(r.exit_code(), 0, "{}", r.env.diag(&r.id));
    r.assert_clean();
}

#[test]
fn uboot_raw_binary_at_its_load_address() {
    let env = Env::shared();
    let img = image(
        "uboot-raw",
        "arm64",
        "u-boot.bin",
        &peers::debian("/usr/lib/u-boot/qemu_arm64/u-boot.bin", "u-boot-qemu"),
    );
    // Above the device tree QEMU puts at the start of RAM (0x40000000).
    let mut r = Run::start(
        &env,
        "uboot-raw",
        &img,
        &[
            format!("{FIRMWARE_PATH}=u-boot.bin"),
            format!("{LOAD_ADDRESS}=0x40200000"),
        ],
    );
    uboot_prompt(&mut r);
    r.command("echo raw", "\nraw\r\n");
    r.ns.wait_state(&r.id, TaskState::Running, T_ACT).unwrap();
    r.kill("SIGTERM");
    assert_eq!(r.exit_code(), 143, "{}", r.env.diag(&r.id));
    r.assert_clean();
}

#[test]
fn edk2_uefi_shell() {
    let env = Env::shared();
    let img = image("edk2", "arm64", "QEMU_EFI.fd", &peers::edk2_aarch64());
    // EDK2 needs 128 MiB (with 64 it takes a synchronous exception and spins).
    let mut r = Run::start(
        &env,
        "edk2",
        &img,
        &[
            format!("{FIRMWARE_PATH}=QEMU_EFI.fd"),
            format!("{MIN_MEMORY}=128"),
        ],
    );
    r.expect("Shell> ", T_BOOT);
    r.s.send("reset -s\r");
    assert_eq!(r.exit_code(), 0, "{}", r.env.diag(&r.id));
    r.assert_clean();
}

#[test]
fn guest_panic_ends_the_task() {
    let env = Env::shared();
    let img = image(
        "panic",
        "arm64",
        "firmware.elf",
        &peers::uboot("qemu_arm64"),
    );
    let mut r = Run::start(&env, "panic", &img, &[]);
    uboot_prompt(&mut r);
    // The pedestal gives the guest a pvpanic PCI device: find its register.
    r.command("pci enum", "=> ");
    let from = r.at;
    r.command("pci bar 0.1.0", "=> ");
    let out = r.s.stdout()[from..].to_owned();
    let bar = out
        .lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("0")).then(|| w.next()).flatten()
        })
        .unwrap_or_else(|| panic!("no BAR 0 of the pvpanic device in {out:?}"));
    // PVPANIC_PANICKED: QEMU stops the guest as `guest-panicked`.
    r.s.send(&format!("mw.b {bar} 1\r"));
    assert_eq!(r.exit_code(), 134, "{}", r.env.diag(&r.id));
    let log = r.env.log_lines(&r.id, 50);
    assert!(
        log.contains("guest-panicked")
            && log.contains("the firmware reported a panic on its pvpanic device")
            && log.contains("exit status 134"),
        "{log}"
    );
    r.assert_clean();
}

#[test]
fn uboot_arm32() {
    let env = Env::shared();
    let img = image(
        "uboot-arm",
        "arm",
        "firmware.elf",
        &peers::uboot("qemu_arm"),
    );
    let mut r = Run::start(&env, "uboot-arm", &img, &[]);
    uboot_prompt(&mut r);
    r.command("version", "U-Boot 2023.01");
    r.command("echo arm32", "\narm32\r\n");
    let qemu = micrun_tests::e2e::processes_mentioning(&r.id)
        .into_iter()
        .find(|(_, args)| args[0].ends_with("qemu-system-arm"));
    assert!(
        qemu.is_some(),
        "no qemu-system-arm for {}: {:?}",
        r.id,
        micrun_tests::e2e::processes_mentioning(&r.id)
    );
    r.kill("SIGKILL");
    assert_eq!(r.exit_code(), 137, "{}", r.env.diag(&r.id));
    r.assert_clean();
}

#[test]
fn uboot_riscv64_over_opensbi() {
    let env = Env::shared();
    let img = image(
        "uboot-rv",
        "riscv64",
        "firmware.elf",
        &peers::uboot("qemu-riscv64_smode"),
    );
    let mut r = Run::start(&env, "uboot-rv", &img, &[]);
    r.expect("OpenSBI", T_BOOT);
    uboot_prompt(&mut r);
    r.command("version", "U-Boot 2023.01");
    r.command("echo riscv", "\nriscv\r\n");
    r.kill("SIGTERM");
    assert_eq!(r.exit_code(), 143, "{}", r.env.diag(&r.id));
    r.assert_clean();
}

/// `ctr run` of `img` fails at create with every one of `keywords` on stderr, and
/// nothing is left.
fn expect_create_error(env: &Env, tag: &str, img: &TestImage, extra: &[String], keywords: &[&str]) {
    let mut r = Run::start(env, tag, img, extra);
    let code = r.exit_code();
    let stderr = r.s.stderr();
    assert_ne!(code, 0, "{tag}: create succeeded: {}", r.s.describe());
    for k in keywords {
        assert!(stderr.contains(k), "{tag}: {k:?} not in {stderr:?}");
    }
    eprintln!("{tag}: {}", stderr.trim());
    r.assert_clean();
}

#[test]
fn bad_images() {
    let env = Env::shared();
    let bin = peers::debian("/usr/lib/u-boot/qemu_arm64/u-boot.bin", "u-boot-qemu");
    let img = image("bad-raw", "arm64", "u-boot.bin", &bin);
    // Not in RAM (0x0 is the flash of -M virt).
    expect_create_error(
        &env,
        "bad-raw-addr",
        &img,
        &[
            format!("{FIRMWARE_PATH}=u-boot.bin"),
            format!("{LOAD_ADDRESS}=0x0"),
        ],
        &[
            "u-boot.bin",
            "at 0x0",
            "does not fit the aarch64 guest's RAM 0x40000000..0x44000000 (64 MiB)",
        ],
    );
    // A raw image with nothing said about it.
    expect_create_error(
        &env,
        "bad-raw-kind",
        &img,
        &[format!("{FIRMWARE_PATH}=u-boot.bin")],
        &[
            "is not an ELF file",
            "org.openeuler.micrun.container.firmware_load_address",
            "firmware_kind=bios",
        ],
    );
    // A load address that is not one.
    expect_create_error(
        &env,
        "bad-raw-parse",
        &img,
        &[
            format!("{FIRMWARE_PATH}=u-boot.bin"),
            format!("{LOAD_ADDRESS}=0x4020_0000"),
        ],
        &[LOAD_ADDRESS, "0x4020_0000", "0x followed by hex digits"],
    );
}
