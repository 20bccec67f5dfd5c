//! The `baremetal` pedestal driven directly through Linux remoteproc, against
//! [`FakeRemoteproc`]: a sysfs tree in a temp dir whose watcher thread plays the
//! kernel, with `micrun-rtos-sim` (an x86-64 host build) as the firmware.
//!
//! The pedestal comes from `spec::build` on a real bundle, as the shim makes it
//! (config `[baremetal] driver = "direct"`, `arch = "x86_64"`), and is driven
//! directly or through an engine `Instance`. Every firmware process is started
//! by the fake, which kills and reaps it when dropped; what appears
//! asynchronously (a state word, the end of a process) is polled for with a
//! deadline.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use micrun_proto::{HostConfig, HostEvent};
use micrun_shim::config::{Config, DriverChoice};
use micrun_shim::firmware::Arch;
use micrun_shim::instance::{Instance, IoPaths, Status};
use micrun_shim::pedestal::detect::{remoteproc_class, remoteproc_names};
use micrun_shim::pedestal::remoteproc::CRASH_EXIT_CODE;
use micrun_shim::pedestal::{DetachedPartition, Link, Partition, PartitionState, Pedestal};
use micrun_shim::spec::InstanceSpec;
use micrun_shim::state::{self, TaskRecord};
use micrun_tests::remoteproc::{Event, FakeRemoteproc, Write as RpWrite, FIRMWARE_PATH_PARAM};
use micrun_tests::{sim_binary, FdLink, HostSession, TempDir, Timeout};

const T: Duration = Duration::from_secs(20);

/// A host with remote processors: the fake's tree in `<tmp>/sys`, the firmware
/// dir `<tmp>/fw` (the firmware_class path), consoles `<tmp>/dev/ttyRPMSG<i>`,
/// micrun's state in `<tmp>/state`.
struct Host {
    // Dropped first: the fake's processes end before the directory goes.
    fake: FakeRemoteproc,
    config: Config,
    tmp: TempDir,
}

impl Host {
    fn new(names: &[&str]) -> Host {
        let tmp = TempDir::new("rproc");
        let ttys: Vec<PathBuf> = (0..names.len())
            .map(|i| tmp.path().join(format!("dev/ttyRPMSG{i}")))
            .collect();
        let procs: Vec<(&str, &Path)> = names
            .iter()
            .copied()
            .zip(ttys.iter().map(PathBuf::as_path))
            .collect();
        let fake = FakeRemoteproc::start(&tmp.path().join("sys"), &procs, &tmp.path().join("fw"))
            .expect("start the remoteproc stand-in");
        let mut config = Config {
            state_dir: tmp.path().join("state"),
            ..Config::default()
        };
        config.mica.dir = tmp.path().join("no-micad");
        config.mica.tty_wait = Duration::from_secs(10);
        config.baremetal.driver = DriverChoice::Direct;
        config.baremetal.sysfs = fake.root().to_path_buf();
        config.baremetal.arch = Arch::X86_64;
        for (name, tty) in &procs {
            config
                .baremetal
                .rpmsg_tty
                .insert((*name).to_owned(), tty.to_path_buf());
        }
        config.lifecycle.handshake_wait = Duration::from_secs(1);
        Host { fake, config, tmp }
    }

    fn fw_dir(&self) -> PathBuf {
        self.tmp.path().join("fw")
    }

    fn fw_files(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.fw_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn claim(&self, entry: &str) -> PathBuf {
        self.config.state_dir.join("remoteproc").join(entry)
    }

    /// A bundle whose firmware is the sim, for `processor` (or any).
    fn bundle(&self, id: &str, processor: Option<&str>) -> PathBuf {
        let b = self.tmp.path().join("bundles").join(id);
        fs::create_dir_all(b.join("rootfs")).unwrap();
        fs::copy(sim_binary(), b.join("rootfs/firmware.elf")).unwrap();
        let mut ann = serde_json::Map::new();
        ann.insert(
            "org.openeuler.micrun.ped.pedestal".into(),
            "baremetal".into(),
        );
        if let Some(p) = processor {
            ann.insert("org.openeuler.micrun.ped.remoteproc".into(), p.into());
        }
        let spec = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": { "args": ["/firmware.elf"], "cwd": "/", "user": {"uid": 0, "gid": 0} },
            "root": { "path": "rootfs" },
            "annotations": ann,
        });
        fs::write(b.join("config.json"), serde_json::to_vec(&spec).unwrap()).unwrap();
        b
    }

    /// The spec and pedestal the shim would make for `id` on `processor`.
    fn build(&self, id: &str, processor: Option<&str>) -> (InstanceSpec, Box<dyn Pedestal>) {
        let b = self.bundle(id, processor);
        micrun_shim::spec::build(id, "default", &b, &self.config).expect("spec::build")
    }

    fn create(&self, id: &str, processor: Option<&str>) -> (InstanceSpec, Box<dyn Partition>) {
        let (spec, ped) = self.build(id, processor);
        assert_eq!(ped.arch(), Arch::X86_64);
        let run = self.tmp.path().join("run").join(id);
        fs::create_dir_all(&run).unwrap();
        let part = ped.create(&spec, &run).expect("create");
        (spec, part)
    }

    fn create_err(&self, id: &str, processor: Option<&str>) -> String {
        let (spec, ped) = self.build(id, processor);
        match ped.create(&spec, self.tmp.path()) {
            Ok(_) => panic!("create of {id} succeeded"),
            Err(e) => e.to_string(),
        }
    }

    fn writes(&self) -> Vec<(String, String)> {
        self.fake
            .writes()
            .into_iter()
            .map(|RpWrite { attr, value, .. }| (attr.to_owned(), value))
            .collect()
    }

    fn wait_state(&self, name: &str, want: &str) {
        eventually(&format!("{name} to be {want}"), T, || {
            self.fake.state(name) == want
        });
    }
}

fn w(attr: &str, value: &str) -> (String, String) {
    (attr.to_owned(), value.to_owned())
}

/// Polls `cond` until it holds; panics naming `what` after `timeout`.
fn eventually(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn process_alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        let state = s
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next());
        !matches!(state, Some("Z" | "X") | None)
    })
}

fn booted_pid(host: &Host) -> u32 {
    host.fake
        .events()
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::Booted { pid, .. } => Some(*pid),
            _ => None,
        })
        .expect("the fake booted a firmware")
}

fn session(link: Link) -> HostSession<FdLink> {
    HostSession::new(
        FdLink::new(link),
        HostConfig {
            ping_interval_ms: 200,
            peer_timeout_ms: 60_000,
            ..HostConfig::default()
        },
    )
}

#[test]
fn the_fake_tree_has_the_kernels_layout_and_plays_its_state_machine() {
    let host = Host::new(&["cm4", "cm7"]);
    let root = host.fake.root();
    let class = remoteproc_class(root);
    for (entry, name) in [("remoteproc0", "cm4"), ("remoteproc1", "cm7")] {
        let dir = class.join(entry);
        assert_eq!(host.fake.processor_dir(name), dir);
        assert_eq!(
            fs::read_to_string(dir.join("name")).unwrap(),
            format!("{name}\n")
        );
        assert_eq!(fs::read_to_string(dir.join("state")).unwrap(), "offline\n");
        assert!(dir.join("firmware").is_file());
    }
    assert_eq!(
        fs::read_to_string(root.join(FIRMWARE_PATH_PARAM)).unwrap(),
        format!("{}\n", host.fw_dir().display())
    );
    // What the shim's host detection reads.
    assert_eq!(remoteproc_names(&class), ["cm4", "cm7"]);

    let attr = |a: &str| host.fake.processor_dir("cm4").join(a);
    let put = |a: &str, v: &str| fs::write(attr(a), v).unwrap();
    // A firmware name that is not in the firmware dir: the boot fails, as the
    // kernel's does, and the state stays offline.
    put("firmware", "missing.elf");
    eventually("the firmware write", T, || host.writes().len() == 1);
    put("state", "start");
    eventually("the failed boot", T, || {
        host.fake
            .events()
            .iter()
            .any(|e| matches!(e, Event::BootFailed { .. }))
    });
    host.wait_state("cm4", "offline");
    put("state", "stop");
    eventually("stop refused", T, || {
        host.fake.events().contains(&Event::Refused {
            processor: "cm4".into(),
            write: "state stop".into(),
            errno: "EINVAL",
        })
    });
    host.wait_state("cm4", "offline");

    fs::copy(sim_binary(), host.fw_dir().join("sim.elf")).unwrap();
    put("firmware", "sim.elf");
    eventually("the second firmware write", T, || host.writes().len() == 4);
    put("state", "start");
    host.wait_state("cm4", "running");
    let pid = host.fake.pid("cm4").expect("a firmware process");
    assert!(process_alive(pid));
    let tty = host.fake.tty("cm4");
    assert_eq!(tty, host.tmp.path().join("dev/ttyRPMSG0"));
    assert!(fs::read_link(&tty).unwrap().starts_with("/dev/pts"));
    put("firmware", "other.elf");
    eventually("firmware refused while running", T, || {
        host.fake.events().iter().any(|e| {
            matches!(e, Event::Refused { write, errno: "EBUSY", .. } if write == "firmware other.elf")
        })
    });
    eventually("the old firmware name back", T, || {
        fs::read_to_string(attr("firmware")).unwrap() == "sim.elf\n"
    });
    put("state", "stop");
    host.wait_state("cm4", "offline");
    assert!(!process_alive(pid), "stop killed and reaped the firmware");
    assert!(tty.symlink_metadata().is_err(), "stop removed the tty link");
    assert_eq!(
        host.writes(),
        [
            w("firmware", "missing.elf"),
            w("state", "start"),
            w("state", "stop"),
            w("firmware", "sim.elf"),
            w("state", "start"),
            w("firmware", "other.elf"),
            w("state", "stop"),
        ]
    );
    assert_eq!(host.fake.state("cm7"), "offline", "the other is untouched");

    // Dropping the fake ends what runs and removes the tree.
    put("state", "start");
    host.wait_state("cm4", "running");
    let pid = host.fake.pid("cm4").unwrap();
    let root = root.to_path_buf();
    let Host { fake, .. } = host;
    drop(fake);
    assert!(!process_alive(pid));
    assert!(!root.exists());
    assert!(tty.symlink_metadata().is_err());
}

#[test]
fn lifecycle_handshake_console_and_destroy() {
    let host = Host::new(&["cm4"]);
    let (spec, mut part) = host.create("rp-life", None);
    assert_eq!(spec.annotations.remoteproc, None, "the only processor");
    assert_eq!(host.fw_files(), ["micrun-rp-life.elf"]);
    assert_eq!(
        fs::read_to_string(host.claim("remoteproc0")).unwrap(),
        "rp-life\n"
    );
    assert_eq!(part.state(), PartitionState::Created);
    assert!(
        part.take_link().is_none(),
        "the console exists once it runs"
    );

    part.start().unwrap();
    assert_eq!(host.fake.state("cm4"), "running");
    assert_eq!(part.state(), PartitionState::Running);
    let pid = booted_pid(&host);
    let mut s = session(part.take_link().expect("the console after start"));
    s.until(T, "the handshake", |s| {
        s.events
            .iter()
            .any(|e| matches!(e, HostEvent::Connected(_)))
    });
    let at = s.expect_stdout(0, "micrun demo shell on sim (linux)\r\n> ", T);
    s.type_line("echo over remoteproc");
    s.expect_stdout(at, "over remoteproc\r\n> ", T);
    let c = s.ep.counters();
    assert_eq!((c.crc_errors, c.malformed_frames), (0, 0), "{c:?}");

    part.destroy().unwrap();
    assert!(!process_alive(pid), "the firmware process is gone");
    assert_eq!(host.fake.state("cm4"), "offline");
    assert!(host.fake.tty("cm4").symlink_metadata().is_err());
    assert!(host.fw_files().is_empty(), "the copy is removed");
    assert!(!host.claim("remoteproc0").exists(), "the claim is released");
    assert_eq!(part.state(), PartitionState::Stopped(None));
    s.until(T, "the console to end", |s| s.link_closed());
    assert_eq!(
        host.writes(),
        [
            w("firmware", "micrun-rp-life.elf"),
            w("state", "start"),
            w("state", "stop"),
        ]
    );
    part.destroy().unwrap();
    assert_eq!(host.writes().len(), 3, "destroy is idempotent");
}

#[test]
fn a_second_create_on_a_busy_processor_names_the_holder() {
    let host = Host::new(&["cm4", "cm7"]);
    let (_spec, mut first) = host.create("rp-first", Some("cm4"));
    let err = host.create_err("rp-second", Some("cm4"));
    assert!(
        err.contains("remote processor cm4 (remoteproc0) is in use by container \"rp-first\""),
        "{err}"
    );
    assert!(
        err.contains(&host.claim("remoteproc0").display().to_string()),
        "{err}"
    );
    assert_eq!(host.fw_files(), ["micrun-rp-first.elf"]);
    // The other processor is free.
    let (_spec, mut other) = host.create("rp-other", Some("cm7"));
    assert_eq!(
        host.fw_files(),
        ["micrun-rp-first.elf", "micrun-rp-other.elf"]
    );
    first.destroy().unwrap();
    other.destroy().unwrap();
    let (_spec, mut again) = host.create("rp-second", Some("cm4"));
    again.destroy().unwrap();
    assert!(host.fw_files().is_empty());
}

#[test]
fn processor_selection_errors_list_what_exists() {
    let host = Host::new(&["cm4", "cm7"]);
    let b = host.bundle("rp-sel", None);
    let err = micrun_shim::spec::build("rp-sel", "default", &b, &host.config)
        .err()
        .expect("two processors and no annotation")
        .to_string();
    assert!(
        err.contains("2 remote processors (cm4 (remoteproc0), cm7 (remoteproc1))"),
        "{err}"
    );
    assert!(err.contains("org.openeuler.micrun.ped.remoteproc"), "{err}");
    let b = host.bundle("rp-sel2", Some("dsp"));
    let err = micrun_shim::spec::build("rp-sel2", "default", &b, &host.config)
        .err()
        .expect("an unknown processor")
        .to_string();
    assert!(err.contains("\"dsp\" names no remote processor"), "{err}");
    assert!(host.writes().is_empty());
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A directory nobody can write to, even root (immutable attribute), restored
/// on drop.
struct Unwritable(PathBuf);

impl Unwritable {
    fn make(dir: &Path) -> Unwritable {
        use std::os::fd::AsRawFd;
        const FS_IMMUTABLE_FL: libc::c_int = 0x10;
        if is_root() {
            let d = File::open(dir).unwrap();
            let mut flags: libc::c_int = 0;
            // SAFETY: FS_IOC_GETFLAGS/SETFLAGS read and write one int.
            unsafe {
                assert_eq!(
                    libc::ioctl(d.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags),
                    0,
                    "FS_IOC_GETFLAGS: {}",
                    io::Error::last_os_error()
                );
                flags |= FS_IMMUTABLE_FL;
                assert_eq!(
                    libc::ioctl(d.as_raw_fd(), libc::FS_IOC_SETFLAGS, &flags),
                    0,
                    "FS_IOC_SETFLAGS: {}",
                    io::Error::last_os_error()
                );
            }
        } else {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o555)).unwrap();
        }
        let guard = Unwritable(dir.to_path_buf());
        assert!(
            fs::write(dir.join("probe"), b"").is_err(),
            "{} is still writable",
            dir.display()
        );
        guard
    }
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        if is_root() {
            if let Ok(d) = File::open(&self.0) {
                let mut flags: libc::c_int = 0;
                // SAFETY: as above.
                unsafe {
                    if libc::ioctl(d.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) == 0 {
                        flags &= !0x10;
                        libc::ioctl(d.as_raw_fd(), libc::FS_IOC_SETFLAGS, &flags);
                    }
                }
            }
        } else {
            use std::os::unix::fs::PermissionsExt;
            let _ = fs::set_permissions(&self.0, fs::Permissions::from_mode(0o755));
        }
    }
}

#[test]
fn an_unwritable_firmware_dir_is_named_and_nothing_is_left() {
    let host = Host::new(&["cm4"]);
    let _ro = Unwritable::make(&host.fw_dir());
    let err = host.create_err("rp-ro", None);
    assert!(
        err.contains(&format!(
            "the firmware directory {} is not writable",
            host.fw_dir().display()
        )),
        "{err}"
    );
    assert!(
        err.contains("Operation not permitted") || err.contains("Permission denied"),
        "the errno: {err}"
    );
    assert!(host.fw_files().is_empty());
    assert!(!host.claim("remoteproc0").exists(), "the claim is released");
    assert!(host.writes().is_empty(), "nothing was written to sysfs");
    assert_eq!(host.fake.state("cm4"), "offline");
}

#[test]
fn a_console_that_never_appears_is_bounded_and_leaves_nothing() {
    let mut host = Host::new(&["cm4"]);
    let missing = host.tmp.path().join("dev/ttyRPMSG-never");
    host.config
        .baremetal
        .rpmsg_tty
        .insert("cm4".into(), missing.clone());
    host.config.mica.tty_wait = Duration::from_millis(300);
    let (_spec, mut part) = host.create("rp-notty", Some("cm4"));
    let t = Instant::now();
    let err = part.start().unwrap_err().to_string();
    assert!(t.elapsed() < Duration::from_secs(10), "bounded");
    assert!(
        err.contains(&format!(
            "its console {} did not appear within 300ms",
            missing.display()
        )),
        "{err}"
    );
    assert!(err.contains("rpmsg_tty.cm4"), "{err}");
    assert!(err.contains("stopped and released"), "{err}");
    let pid = booted_pid(&host);
    assert!(!process_alive(pid), "the firmware was stopped");
    assert_eq!(host.fake.state("cm4"), "offline");
    assert!(host.fw_files().is_empty());
    assert!(!host.claim("remoteproc0").exists());
    assert!(part.take_link().is_none());
    assert_eq!(
        host.writes(),
        [
            w("firmware", "micrun-rp-notty.elf"),
            w("state", "start"),
            w("state", "stop"),
        ]
    );
    part.destroy().unwrap();
}

#[test]
fn a_faulting_firmware_shows_as_crashed() {
    let host = Host::new(&["cm4"]);
    let (_spec, mut part) = host.create("rp-fault", None);
    part.start().unwrap();
    let link = part.take_link().unwrap();
    host.fake.fault("cm4");
    host.wait_state("cm4", "crashed");
    // The console ends: EIO on the tty once the remote side is gone.
    let mut s = FdLink::new(link);
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + T;
    let mut buf = [0u8; 4096];
    loop {
        assert!(Instant::now() < deadline, "the console never ended");
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(part.state(), PartitionState::Stopped(Some(CRASH_EXIT_CODE)));
    assert!(host.fake.tty("cm4").symlink_metadata().is_err());
    part.destroy().unwrap();
    assert_eq!(host.fake.state("cm4"), "offline", "stop clears the crash");
    assert!(host.fw_files().is_empty());
    assert!(!host.claim("remoteproc0").exists());
    assert_eq!(
        part.state(),
        PartitionState::Stopped(Some(CRASH_EXIT_CODE)),
        "the crash is remembered"
    );
}

fn fifo(path: &Path) -> PathBuf {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    path.to_path_buf()
}

/// An engine instance on the processor, with our ends of its FIFOs.
fn instance(host: &Host, id: &str) -> (Arc<Instance>, File, File) {
    let (spec, part) = host.create(id, None);
    let dir = host.tmp.path().join("io").join(id);
    fs::create_dir_all(&dir).unwrap();
    let io = IoPaths {
        stdin: Some(fifo(&dir.join("in"))),
        stdout: Some(fifo(&dir.join("out"))),
        stderr: Some(fifo(&dir.join("err"))),
    };
    let open = |p: &Path| {
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(p)
            .unwrap()
    };
    let stdin = open(io.stdin.as_ref().unwrap());
    let stdout = open(io.stdout.as_ref().unwrap());
    let inst = Instance::new(spec, part, io, host.config.lifecycle.clone()).unwrap();
    (Arc::new(inst), stdin, stdout)
}

fn read_until(stdout: &mut File, got: &mut Vec<u8>, needle: &str) {
    let deadline = Instant::now() + T;
    while !String::from_utf8_lossy(got).contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in {:?}",
            String::from_utf8_lossy(got)
        );
        let mut b = [0u8; 4096];
        match stdout.read(&mut b) {
            Ok(n) => got.extend_from_slice(&b[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// Through the engine: the firmware ends by itself (the demo's `exit 3`), the
/// agent reports the code, the processor shows `crashed`, and Delete releases it.
#[test]
fn the_engine_sees_the_firmware_end_and_delete_releases_the_processor() {
    let host = Host::new(&["cm4"]);
    let (inst, mut stdin, mut stdout) = instance(&host, "rp-engine");
    assert_eq!(inst.pid(), None);
    inst.start().unwrap();
    let mut got = Vec::new();
    read_until(&mut stdout, &mut got, "micrun demo shell on sim (linux)");
    stdin.write_all(b"echo through the engine\r").unwrap();
    read_until(&mut stdout, &mut got, "through the engine\r\n");
    stdin.write_all(b"exit 3\r").unwrap();
    let e = inst.wait_timeout(T).expect("the instance ended");
    assert_eq!(e.code, 3, "the application's code, from the agent");
    assert_eq!(inst.status(), Status::Stopped);
    // The application ended: the engine stops the processor at once (a remote
    // core stays up after its application returns).
    host.wait_state("cm4", "offline");
    let leftovers = inst.leftovers();
    inst.destroy();
    assert_eq!(host.fake.state("cm4"), "offline");
    assert!(host.fw_files().is_empty());
    assert!(!host.claim("remoteproc0").exists());
    assert_eq!(leftovers.paths, [host.claim("remoteproc0")]);
}

/// The firmware faults with no exit report: the processor shows `crashed`, the
/// console hangs up, and the engine reports the driver's status for a crash
/// (134, 128 + SIGABRT) instead of a clean 0.
#[test]
fn a_crash_through_the_engine_is_status_134() {
    let host = Host::new(&["cm4"]);
    let (inst, _stdin, mut stdout) = instance(&host, "rp-crash");
    inst.start().unwrap();
    let mut got = Vec::new();
    read_until(&mut stdout, &mut got, "micrun demo shell on sim (linux)");
    let pid = booted_pid(&host);
    // SAFETY: kill(2) on the firmware process the fake started for this test.
    unsafe {
        libc::kill(pid as i32, libc::SIGABRT);
    }
    let e = inst.wait_timeout(T).unwrap_or_else(|| {
        panic!(
            "the instance did not end; the fake saw {:?}",
            host.fake.events()
        )
    });
    assert_eq!(e.code, 134, "the crash status from the driver");
    inst.destroy();
    assert!(host.fw_files().is_empty());
    assert!(!host.claim("remoteproc0").exists());
}

#[test]
fn sigkill_through_the_engine_stops_the_processor() {
    let host = Host::new(&["cm4"]);
    let (inst, _stdin, mut stdout) = instance(&host, "rp-kill");
    inst.start().unwrap();
    let mut got = Vec::new();
    read_until(&mut stdout, &mut got, "micrun demo shell on sim (linux)");
    let pid = booted_pid(&host);
    inst.kill(9).unwrap();
    assert_eq!(inst.wait_timeout(T).expect("ended").code, 137);
    assert_eq!(host.fake.state("cm4"), "offline");
    assert!(!process_alive(pid));
    inst.destroy();
    assert!(host.fw_files().is_empty());
    assert!(!host.claim("remoteproc0").exists());
}

/// The shim died with the processor running: containerd's `delete` action
/// releases it from the state file alone.
#[test]
fn destroy_detached_stops_a_running_processor() {
    let host = Host::new(&["cm4"]);
    let (spec, mut part) = host.create("rp-orphan", None);
    part.start().unwrap();
    let pid = booted_pid(&host);
    let record = TaskRecord {
        id: spec.id.clone(),
        namespace: "default".into(),
        bundle: spec.bundle.clone(),
        mounted_rootfs: None,
        pedestal: "baremetal".into(),
        leftovers: part.leftovers(),
    };
    assert_eq!(
        record.leftovers.partition,
        Some(DetachedPartition::Remoteproc {
            processor: host.fake.processor_dir("cm4"),
            firmware_file: Some(host.fw_dir().join("micrun-rp-orphan.elf")),
        })
    );
    let dir = state::task_dir(&host.config.state_dir, "default", &spec.id);
    state::create_dir(&dir).unwrap();
    state::write(&dir, &record).unwrap();
    // The shim is gone: its memory with it.
    drop(part);
    assert_eq!(host.fake.state("cm4"), "running");

    let problems = state::release(&dir, &state::read(&dir).unwrap());
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(host.fake.state("cm4"), "offline");
    assert!(!process_alive(pid));
    assert!(host.fw_files().is_empty());
    assert!(!host.claim("remoteproc0").exists());
    assert!(!dir.exists());
    // Again, on a stopped processor: nothing to do, no write.
    let n = host.writes().len();
    record
        .leftovers
        .partition
        .as_ref()
        .unwrap()
        .destroy()
        .unwrap();
    assert_eq!(host.writes().len(), n);
}
