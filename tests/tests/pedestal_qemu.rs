//! The `qemu` pedestal (micrun-shim `pedestal::qemu`) against a real
//! `qemu-system-aarch64` booting the agent-mode demo firmware: create with the guest
//! halted, start, a micrun-proto session over the pedestal's link, pause and resume,
//! stats, update, destroy; QEMU ending on its own; bad input failing at create
//! with nothing left behind; and the start-up deadline with U-Boot 2025.01, whose
//! QEMU answers QMP late.
//!
//! There is no containerd-shim reaper here, so the tests reap QEMU themselves
//! (`waitpid`), also when an assertion fails ([`Reap`]). The tests of this file run
//! one at a time ([`serial`]): they look at every child of the test process.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use micrun_proto::{ExitReason, HostConfig, HostEvent};
use micrun_shim::annotations::Annotations;
use micrun_shim::config::{Config, PedestalKind};
use micrun_shim::firmware::Arch;
use micrun_shim::pedestal::{self, Partition, PartitionState, Pedestal, PedestalError};
use micrun_shim::resources::{CpuSet, Resources};
use micrun_shim::spec::InstanceSpec;
use micrun_tests::{children, entries, firmware, HostSession, TempDir};

const T: Duration = Duration::from_secs(20);

/// The tests inspect and reap all children of the test process: one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Kills (if needed) and reaps a QEMU child on drop, unless the test reaped it.
struct Reap(Option<u32>);

impl Reap {
    /// Waits up to `timeout` for the child to end and reaps it; its exit code
    /// (128 + signal if killed).
    fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let pid = self.0? as libc::pid_t;
        let deadline = Instant::now() + timeout;
        loop {
            let mut status = 0;
            // SAFETY: plain waitpid(2) on our own child.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                self.0 = None;
                return Some(if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else {
                    128 + libc::WTERMSIG(status)
                });
            }
            if r < 0 || Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            // SAFETY: signalling and reaping our own unreaped child (its pid cannot
            // have been reused).
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
                libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0);
            }
        }
    }
}

/// Checks that the failed create left no running QEMU: every child is a zombie
/// (killed or exited, waiting for a reaper). Reaps them all.
fn assert_no_qemu_left(what: &str) {
    let kids = children();
    for &(pid, _) in &kids {
        drop(Reap(Some(pid)));
    }
    assert!(
        kids.iter().all(|&(_, state)| state == 'Z'),
        "{what}: children still running after a failed create: {kids:?}"
    );
    assert!(
        children().is_empty(),
        "{what}: children left: {:?}",
        children()
    );
}

fn resources(vcpus: u32, memory_mib: u32, cpus: Option<&str>) -> Resources {
    Resources {
        vcpus,
        max_vcpus: vcpus,
        cpu_str: cpus.map(str::to_owned),
        cpu_cap_percent: None,
        cpu_weight: 256,
        memory_mib,
        max_memory_mib: memory_mib,
        dropped_cpus: vec![],
        ignored: vec![],
    }
}

/// The spec `spec::build` would make for a bundle whose rootfs holds `fw`.
fn spec(id: &str, fw: &Path, resources: Resources) -> InstanceSpec {
    let rootfs = fw.parent().unwrap().to_path_buf();
    InstanceSpec {
        id: id.to_owned(),
        namespace: "default".to_owned(),
        bundle: rootfs.parent().unwrap().to_path_buf(),
        rootfs,
        firmware: fw.to_path_buf(),
        image: qemu().inspect_firmware(fw, &Default::default()).ok(),
        pedestal: PedestalKind::Qemu,
        resources,
        annotations: Annotations::default(),
        terminal: false,
        sandbox: false,
    }
}

fn qemu() -> Box<dyn Pedestal> {
    pedestal::for_kind(PedestalKind::Qemu, &Config::default()).unwrap()
}

/// The CPUs every thread of `pid` may run on (`Cpus_allowed_list`), deduplicated.
fn affinities(pid: u32) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .map(|v| v.trim().to_owned())
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The CPUs this test process may run on.
fn own_cpus() -> CpuSet {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap();
    CpuSet::parse(list.trim()).unwrap()
}

/// A host session on the partition's link (made blocking: the session reads with
/// a timeout).
fn session(part: &mut dyn Partition) -> HostSession<UnixStream> {
    let link = part.take_link().expect("the link");
    assert!(part.take_link().is_none(), "the link is taken once");
    let stream = UnixStream::from(link.rx);
    stream.set_nonblocking(false).unwrap();
    drop(link.tx);
    HostSession::new(
        stream,
        HostConfig {
            ping_interval_ms: 100,
            peer_timeout_ms: 60_000,
            ..HostConfig::default()
        },
    )
}

#[test]
fn lifecycle_over_the_uart_link() {
    let _serial = serial();
    let fw = firmware(false);
    let dir = TempDir::new("ped-qemu");
    // A comma in the run dir: QEMU option values need it doubled.
    let run_dir = dir.path().join("run,1");
    std::fs::create_dir(&run_dir).unwrap();
    // Pin to the first CPU this process may use; re-pin to the last by update.
    let cpus = own_cpus();
    let first_cpu = cpus.iter().next().unwrap().to_string();
    let last_cpu = cpus.iter().last().unwrap().to_string();
    let spec = spec("lifecycle", &fw, resources(1, 64, Some(&first_cpu)));
    let ped = qemu();
    assert_eq!(ped.kind(), PedestalKind::Qemu);
    assert_eq!(ped.arch(), Arch::Aarch64);
    ped.check(&spec).unwrap();

    let t_create = Instant::now();
    let mut part = ped.create(&spec, &run_dir).unwrap();
    let create_time = t_create.elapsed();
    let pid = part.pid().unwrap();
    let mut reap = Reap(Some(pid));
    assert_eq!(part.state(), PartitionState::Created);
    assert_eq!(
        affinities(pid),
        [first_cpu.as_str()],
        "QEMU pinned to the cpuset"
    );

    let leftovers = part.leftovers();
    assert_eq!(leftovers.processes.len(), 1);
    assert_eq!(leftovers.processes[0].0, pid);
    assert!(leftovers.processes[0].1 > 0, "start time recorded");
    let names: Vec<_> = leftovers
        .paths
        .iter()
        .map(|p| p.strip_prefix(&run_dir).unwrap().to_str().unwrap())
        .collect();
    assert_eq!(names, ["uart.sock", "qmp.sock", "qemu.log"]);
    assert!(leftovers.paths.iter().all(|p| p.exists()), "{leftovers:?}");

    // `-S`: the guest is halted. The host's Hello goes out and nothing answers.
    let mut s = session(part.as_mut());
    s.step_for(Duration::from_millis(300));
    assert!(
        !s.ep.is_connected() && s.events.is_empty(),
        "{:?}",
        s.events
    );
    assert_eq!(part.state(), PartitionState::Created);

    let t_start = Instant::now();
    part.start().unwrap();
    s.until(T, "HelloAck", |s| s.ep.is_connected());
    let start_to_handshake = t_start.elapsed();
    assert_eq!(s.ep.peer().unwrap().board, "qemu-virt");
    assert_eq!(part.state(), PartitionState::Running);
    s.until(T, "Ready", |s| s.events.contains(&HostEvent::Ready));
    let at = s.expect_stdout(0, "micrun demo shell on qemu-virt", T);
    s.type_line("echo one two");
    let at = s.expect_stdout(at, "one two\r\n", T);
    s.until(T, "a Pong", |s| s.pongs() > 0);

    // Paused: the guest answers no Ping and runs no command.
    part.pause().unwrap();
    assert_eq!(part.state(), PartitionState::Paused);
    // What the guest wrote before `stop` returned may still be in the socket.
    s.step_for(Duration::from_millis(100));
    let before = s.pongs();
    let out_before = s.stdout.len();
    s.type_line("echo while paused");
    s.step_for(Duration::from_millis(600));
    assert_eq!(s.pongs(), before, "no Pong while paused");
    assert_eq!(s.stdout.len(), out_before, "no output while paused");

    part.resume().unwrap();
    assert_eq!(part.state(), PartitionState::Running);
    s.until(T, "a Pong after resume", |s| s.pongs() > before);
    s.expect_stdout(at, "while paused\r\n", T);

    let stats = part.stats().unwrap();
    assert!(stats.cpu_ns > 0, "{stats:?}");
    assert_eq!(stats.memory_limit_bytes, 64 << 20);
    assert!(stats.memory_used_bytes > 0, "{stats:?}");

    // Unchanged resources are fine; vcpus and memory cannot change; a cpuset can.
    part.update(&spec.resources).unwrap();
    let err = part
        .update(&resources(1, 128, Some(&first_cpu)))
        .unwrap_err();
    assert!(matches!(err, PedestalError::Unsupported { .. }), "{err}");
    let err = part
        .update(&resources(2, 64, Some(&first_cpu)))
        .unwrap_err();
    assert!(matches!(err, PedestalError::Unsupported { .. }), "{err}");
    part.update(&resources(1, 64, Some(&last_cpu))).unwrap();
    assert_eq!(affinities(pid), [last_cpu.as_str()]);
    part.update(&resources(1, 64, None)).unwrap();
    assert_eq!(affinities(pid), [cpus.to_string()]);
    // The guest still answers.
    let n = s.pongs();
    s.until(T, "a Pong after update", |s| s.pongs() > n);

    let t_destroy = Instant::now();
    part.destroy().unwrap();
    let destroy_time = t_destroy.elapsed();
    // Ended (a zombie until reaped: no reaper here).
    assert_eq!(part.state(), PartitionState::Stopped(None));
    let code = reap.wait(T).expect("QEMU ended after destroy");
    assert_eq!(code, 0, "QEMU quit cleanly");
    part.process_exited(code);
    assert_eq!(part.state(), PartitionState::Stopped(Some(0)));
    part.destroy().unwrap();
    assert!(part.start().is_err() && part.stats().is_err());
    assert!(!run_dir.join("uart.sock").exists() && !run_dir.join("qmp.sock").exists());
    for p in &leftovers.paths {
        if p.exists() {
            std::fs::remove_file(p).unwrap();
        }
    }
    assert!(entries(&run_dir).is_empty());
    assert!(children().is_empty(), "{:?}", children());
    assert_eq!(s.ep.counters().errors(), 0, "{:?}", s.ep.counters());
    eprintln!(
        "qemu pedestal: create {create_time:?}, start→handshake {start_to_handshake:?}, \
         create→handshake {:?}, destroy {destroy_time:?}",
        create_time + start_to_handshake
    );
}

#[test]
fn qemu_ending_by_itself_or_killed() {
    let _serial = serial();
    let fw = firmware(false);
    let dir = TempDir::new("ped-qemu-end");
    // A comma in the firmware path (`-kernel` takes it as it is).
    let fw_dir = TempDir::new("ped-qemu-fw");
    let fw_copy = fw_dir.path().join("fw,1.elf");
    std::fs::copy(&fw, &fw_copy).unwrap();
    let spec = spec("ends", &fw_copy, resources(2, 64, None));
    let ped = qemu();

    // The guest powers off (PSCI SYSTEM_OFF) after `exit 3`: QEMU ends with 0.
    let mut part = ped.create(&spec, dir.path()).unwrap();
    let mut reap = Reap(part.pid());
    let mut s = session(part.as_mut());
    part.start().unwrap();
    s.until(T, "connected", |s| s.ep.is_connected());
    s.type_line("exit 3");
    s.until(T, "Exited", |s| {
        s.events
            .iter()
            .any(|e| matches!(e, HostEvent::Exited { .. }))
    });
    assert!(s.events.contains(&HostEvent::Exited {
        code: 3,
        reason: ExitReason::Normal
    }));
    let deadline = Instant::now() + T;
    while part.state() != PartitionState::Stopped(None) {
        assert!(
            Instant::now() < deadline,
            "the guest did not power off after its exit report: state {:?}; QEMU \
             /proc stat {:?}; host events {:?}; stdout {:?}; qemu.log {:?}",
            part.state(),
            part.pid()
                .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok()),
            s.events,
            String::from_utf8_lossy(&s.stdout),
            std::fs::read_to_string(dir.path().join("qemu.log")).unwrap_or_default()
        );
        s.step();
    }
    let err = part.pause().unwrap_err().to_string();
    assert!(err.contains("has ended"), "{err}");
    assert_eq!(reap.wait(T), Some(0));
    part.process_exited(0);
    assert_eq!(part.state(), PartitionState::Stopped(Some(0)));
    part.destroy().unwrap();
    // QEMU removed its sockets as it quit; the log stays for the engine.
    assert_eq!(entries(dir.path()), [dir.path().join("qemu.log")]);
    std::fs::remove_file(dir.path().join("qemu.log")).unwrap();

    // Killed from outside: the state says so, operations fail cleanly, destroy
    // removes the sockets QEMU could not.
    let mut part = ped.create(&spec, dir.path()).unwrap();
    let pid = part.pid().unwrap();
    let mut reap = Reap(Some(pid));
    part.start().unwrap();
    assert_eq!(part.state(), PartitionState::Running);
    // SAFETY: our own unreaped child.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    let deadline = Instant::now() + T;
    while part.state() == PartitionState::Running {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(part.state(), PartitionState::Stopped(None));
    let err = part.stats().unwrap_err().to_string();
    assert!(
        err.contains(&format!("QEMU (pid {pid}) has ended")),
        "{err}"
    );
    assert!(part.resume().is_err());
    part.destroy().unwrap();
    part.destroy().unwrap();
    assert_eq!(entries(dir.path()), [dir.path().join("qemu.log")]);
    assert_eq!(reap.wait(T), Some(128 + libc::SIGKILL));
    part.process_exited(128 + libc::SIGKILL);
    assert_eq!(
        part.state(),
        PartitionState::Stopped(Some(128 + libc::SIGKILL))
    );
    assert!(children().is_empty(), "{:?}", children());
}

#[test]
fn missing_binary_is_unavailable() {
    let _serial = serial();
    let fw = firmware(false);
    let dir = TempDir::new("ped-qemu-nobin");
    let mut config = Config::default();
    config.qemu.binary = "/nonexistent/qemu".into();
    let ped = pedestal::for_kind(PedestalKind::Qemu, &config).unwrap();
    let spec = spec("nobin", &fw, resources(1, 64, None));
    for err in [
        ped.check(&spec).unwrap_err(),
        ped.create(&spec, dir.path()).map(drop).unwrap_err(),
    ] {
        let text = err.to_string();
        assert!(matches!(err, PedestalError::Unavailable { .. }), "{text}");
        assert!(
            text.contains("/nonexistent/qemu") && text.contains("`[qemu] binary`"),
            "{text}"
        );
    }

    config.qemu.binary = "no-such-qemu-system-aarch64".into();
    let ped = pedestal::for_kind(PedestalKind::Qemu, &config).unwrap();
    let text = ped.check(&spec).unwrap_err().to_string();
    let path = std::env::var("PATH").unwrap();
    assert!(
        text.contains(&format!(
            "no-such-qemu-system-aarch64 not found in PATH ({path})"
        )),
        "{text}"
    );
    assert!(entries(dir.path()).is_empty());
    assert!(children().is_empty());
}

#[test]
fn overlong_run_dir_is_an_invalid_id() {
    let _serial = serial();
    let fw = firmware(false);
    let dir = TempDir::new("ped-qemu-long");
    let id = "c".repeat(110);
    let run_dir = dir.path().join(&id);
    std::fs::create_dir(&run_dir).unwrap();
    let spec = spec(&id, &fw, resources(1, 64, None));
    let ped = qemu();
    ped.check(&spec).unwrap();
    let err = ped.create(&spec, &run_dir).map(drop).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PedestalError::InvalidId { .. }), "{text}");
    let len = run_dir.join("uart.sock").as_os_str().len();
    assert!(
        text.contains(&id) && text.contains(&format!("{len} bytes")) && text.contains("107"),
        "{text}"
    );
    assert!(entries(&run_dir).is_empty());
    assert!(children().is_empty());
}

#[test]
fn unbootable_partition_fails_with_qemu_log_and_leaves_nothing() {
    let _serial = serial();
    let fw = firmware(false);
    let dir = TempDir::new("ped-qemu-bad");
    let run_dir = dir.path().join("run");
    std::fs::create_dir(&run_dir).unwrap();
    // QEMU takes any file that is not an ELF or uImage as a raw image (even a text
    // file boots, into garbage); one larger than the RAM it refuses.
    let big = dir.path().join("big.bin");
    std::fs::write(&big, "not firmware\n").unwrap();
    std::fs::File::options()
        .append(true)
        .open(&big)
        .unwrap()
        .set_len(100 << 20)
        .unwrap();
    let gone = dir.path().join("deleted.elf");
    let ped = qemu();
    let cases = [
        (
            spec("big", &big, resources(1, 64, None)),
            "kernel '".to_owned() + big.to_str().unwrap() + "' is too large to fit in RAM",
        ),
        (
            spec("gone", &gone, resources(1, 64, None)),
            format!("could not load kernel '{}'", gone.display()),
        ),
        (
            spec("smp", &fw, resources(9, 64, None)),
            "Number of SMP CPUs requested (9) exceeds max CPUs".to_owned(),
        ),
    ];
    for (spec, want) in cases {
        let t = Instant::now();
        let err = ped.create(&spec, &run_dir).map(drop).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, PedestalError::Failed { .. }), "{text}");
        assert!(
            text.contains("qemu.log: ") && text.contains(&want),
            "{text}"
        );
        assert!(entries(&run_dir).is_empty(), "{:?}", entries(&run_dir));
        assert_no_qemu_left(&spec.id);
        eprintln!("{} failed in {:?}: {text}", spec.id, t.elapsed());
    }
}

/// U-Boot 2025.01 makes QEMU answer its first QMP command only after ~2.4 s. The
/// start-up deadline (`[qemu] startup_timeout`) covers the whole QMP handshake: a
/// deadline shorter than that wait fails as a timeout naming what was awaited,
/// where and for how long, and leaves nothing; the default deadline lets it boot.
#[test]
fn qmp_handshake_uses_the_startup_deadline() {
    let _serial = serial();
    let fw = micrun_tests::peers::uboot_2025("qemu_arm64");
    let dir = TempDir::new("ped-qemu-slow");
    let mut config = Config::default();
    config.qemu.startup_timeout = Duration::from_secs(1);
    let ped = pedestal::for_kind(PedestalKind::Qemu, &config).unwrap();
    let spec = spec("slow", &fw, resources(1, 64, None));
    let t = Instant::now();
    let err = ped.create(&spec, dir.path()).map(drop).unwrap_err();
    let text = err.to_string();
    let qmp = dir.path().join("qmp.sock");
    assert!(
        text.contains(&format!(
            "timed out: no QMP answer to qmp_capabilities from QEMU on {} within 1",
            qmp.display()
        )) && text.contains("`[qemu] startup_timeout` (1s"),
        "{text}"
    );
    assert!(!text.contains("os error 11"), "{text}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
    assert_no_qemu_left("slow");

    // The default deadline (20 s) is enough.
    let ped = qemu();
    let t = Instant::now();
    let mut part = ped.create(&spec, dir.path()).unwrap();
    let _reap = Reap(part.pid());
    assert_eq!(part.state(), PartitionState::Created);
    eprintln!("U-Boot 2025.01: QEMU ready for start in {:?}", t.elapsed());
    part.destroy().unwrap();
}
