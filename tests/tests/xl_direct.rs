//! The `xen` pedestal driven directly with `xl` (micrun-shim `pedestal::xl`),
//! against `fake-xl`, the stand-in for Xen's `xl` and `xenstore-read`
//! (`src/bin/fake-xl.rs`, set up by `micrun_tests::xen`), with `micrun-rtos-sim`
//! as each domain's firmware behind the domain's pty console.
//!
//! First the fake's own formats (xl's list layout and messages, the xenstore
//! console path, the config syntax); then the pedestal: create (paused, console
//! taken at once) → agent handshake over the console → start → echo → pause and
//! resume → update (the xl calls, in order) → stats → destroy (runner and firmware
//! gone by pid, console hung up, config removed); the engine's `Instance` over the
//! same domain (raw console, kill); a domain powering off by itself; `xl` failing
//! at create and after it (nothing left behind); a console published late; and
//! `destroy_detached` ending a live domain.
//!
//! The test process makes itself a child subreaper, as the shim is: the fake's
//! domain runners, orphaned by the `xl` that started them, become its children,
//! and [`micrun_tests::xen::FakeXen`] kills and reaps them on drop. The tests run
//! one at a time ([`serial`]): they look at every child of the test process.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use micrun_proto::{ExitReason, HostConfig, HostEvent};
use micrun_shim::config::{Config, PedestalKind};
use micrun_shim::instance::{Instance, IoPaths, Mode, Status};
use micrun_shim::pedestal::{
    self, DetachedPartition, Partition, PartitionState, Pedestal, PedestalError,
};
use micrun_shim::resources::Resources;
use micrun_shim::spec::InstanceSpec;
use micrun_tests::xen::{adopt_orphans, alive, process_state, FakeXen};
use micrun_tests::{children, entries, firmware, sim_binary, FdLink, HostSession, TempDir};

const T: Duration = Duration::from_secs(20);
const FAKE: &str = env!("CARGO_BIN_EXE_fake-xl");

/// One test at a time; the test process adopts orphans (see the module doc).
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    adopt_orphans();
    guard
}

fn fake(sim_args: &[&str]) -> FakeXen {
    FakeXen::new(Path::new(FAKE), &sim_binary(), sim_args)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A bundle for container `id`: the aarch64 demo firmware as `firmware.elf`, a
/// boot image `image.bin`, the xen pedestal, 64 MiB and CPU shares 1024.
fn bundle(dir: &Path, id: &str, annotations: &[(&str, &str)]) -> PathBuf {
    let b = dir.join(id);
    fs::create_dir_all(b.join("rootfs")).unwrap();
    fs::copy(firmware(false), b.join("rootfs/firmware.elf")).unwrap();
    fs::write(b.join("rootfs/image.bin"), b"a Xen boot image").unwrap();
    let mut ann = serde_json::Map::new();
    ann.insert("org.openeuler.micrun.ped.pedestal".into(), "xen".into());
    for (k, v) in annotations {
        ann.insert((*k).into(), (*v).into());
    }
    let spec = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": { "args": ["/firmware.elf"], "cwd": "/", "user": {"uid": 0, "gid": 0} },
        "root": { "path": "rootfs" },
        "linux": { "resources": {
            "cpu": { "shares": 1024 },
            "memory": { "limit": 64u64 << 20 }
        } },
        "annotations": ann,
    });
    fs::write(b.join("config.json"), serde_json::to_vec(&spec).unwrap()).unwrap();
    b
}

fn config(x: &FakeXen) -> Config {
    Config::from_str(
        &format!(
            "{}\n[lifecycle]\nhandshake_wait = \"1s\"\n",
            x.config_toml()
        ),
        Path::new("test.toml"),
    )
    .unwrap()
}

/// The spec and pedestal `spec::build` makes for container `id`, and its run dir.
fn build(
    x: &FakeXen,
    dir: &Path,
    id: &str,
    annotations: &[(&str, &str)],
) -> (InstanceSpec, Box<dyn Pedestal>, PathBuf) {
    let b = bundle(dir, id, annotations);
    let (spec, ped) = micrun_shim::spec::build(id, "default", &b, &config(x)).unwrap();
    let run = dir.join(format!("{id}.run"));
    fs::create_dir_all(&run).unwrap();
    (spec, ped, run)
}

fn session(part: &mut dyn Partition) -> HostSession<FdLink> {
    let link = part.take_link().expect("the console, taken at create");
    assert!(part.take_link().is_none(), "the link is taken once");
    assert_eq!(link.rx_translate, pedestal::RxTranslate::None);
    HostSession::new(
        FdLink::new(link),
        HostConfig {
            ping_interval_ms: 100,
            peer_timeout_ms: 60_000,
            ..HostConfig::default()
        },
    )
}

/// The xl calls recorded since the `from`-th.
fn xl_calls_since(x: &FakeXen, from: usize) -> Vec<String> {
    x.xl_calls().split_off(from)
}

#[test]
fn fake_formats_are_xls() {
    let _serial = serial();
    let x = fake(&["--raw"]);
    let kernel = x.root().join("kernel.bin");
    fs::write(&kernel, b"image").unwrap();
    let cfg = x.root().join("d.cfg");
    fs::write(
        &cfg,
        format!(
            "# comment\nname = \"rtos-1\" # trailing comment\ntype='pvh'\nkernel = \"{}\"\n\
             vcpus = 1; maxvcpus = 2\nmemory = 64\nmaxmem = 0x40\ncpus = \"0\"\n",
            kernel.display()
        ),
    )
    .unwrap();
    let out = x.run_xl(&["create", "-p", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        format!("Parsing config from {}\n", cfg.display())
    );

    // `xl list`: "%-40s %5d %5lu %5d     %c%c%c%c%c%c  %8.1f", written out by hand.
    let out = x.run_xl(&["list"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        "Name                                        ID   Mem VCPUs\tState\tTime(s)\n\
         Domain-0                                     0  1024     1     r-----       0.0\n\
         rtos-1                                       1    64     1     --p---       0.0\n"
    );
    let out = x.run_xl(&["list", "rtos-1"]);
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(
        lines[1],
        "rtos-1                                       1    64     1     --p---       0.0"
    );
    // A domain id is a domain too, as xl's find_domain has it.
    assert_eq!(text(&x.run_xl(&["list", "1"]).stdout), text(&out.stdout));
    assert_eq!(text(&x.run_xl(&["domid", "rtos-1"]).stdout), "1\n");

    // The PV console: its pty path under the domain's xenstore directory.
    let out = x.run_xenstore_read(&["/local/domain/1/console/tty"]);
    assert!(out.status.success());
    let tty = text(&out.stdout);
    assert!(
        tty.starts_with("/dev/pts/") && tty.ends_with('\n'),
        "{tty:?}"
    );
    assert!(Path::new(tty.trim()).exists());
    assert_eq!(
        text(&x.run_xenstore_read(&["/local/domain/1/name"]).stdout),
        "rtos-1\n"
    );

    // xl's and xenstore-read's words for what does not exist.
    let out = x.run_xl(&["list", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "nope is an invalid domain identifier (rc=-6)\n"
    );
    let out = x.run_xl(&["domid", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Can't get domid of domain name 'nope', maybe this domain does not exist.\n"
    );
    let out = x.run_xenstore_read(&["/local/domain/9/console/tty"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "xenstore-read: couldn't read path /local/domain/9/console/tty\n"
    );
    let out = x.run_xl(&["frobnicate"]);
    assert_eq!(
        (out.status.code(), text(&out.stderr)),
        (Some(1), "command not implemented\n".to_owned())
    );
    let out = x.run_xl(&["pause"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("'xl pause' requires at least 1 argument."));

    // Configs xl would not take.
    for (body, want) in [
        ("name = \"a\"\nvcpus = \n", "config parsing error near"),
        ("name = \"a\nb\"\n", "unterminated string"),
        ("name = \"a\\x41\"\n", "escape xl cannot decode"),
        ("Name = \"a\"\n", "expected a setting name"),
        ("name = \"a\"\ncpuweight = 3\n", "unknown key `cpuweight`"),
        (
            "name = \"a\"\nkernel = \"/nonexistent/k\"\nmemory = 8\n",
            "cannot open kernel /nonexistent/k",
        ),
        (
            "kernel = \"/dev/null\"\nmemory = 8\n",
            "Domain name must be specified.",
        ),
        (
            "name = \"rtos-1\"\nkernel = \"/dev/null\"\nmemory = 8\n",
            "already exists",
        ),
    ] {
        let bad = x.root().join("bad.cfg");
        fs::write(&bad, body).unwrap();
        let out = x.run_xl(&["create", "-p", bad.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{body:?}");
        let err = text(&out.stderr);
        assert!(err.contains(want), "{body:?}: {err}");
    }

    // Every call is recorded, argv as given.
    let calls = x.calls();
    assert_eq!(calls[0].tool, "xl");
    assert_eq!(calls[0].argv, ["create", "-p", cfg.to_str().unwrap()]);
    assert!(calls
        .iter()
        .any(|c| c.tool == "xenstore-read" && c.argv == ["/local/domain/1/console/tty"]));

    // The runner: in its own session, not a child of the `xl` that made it.
    let runner = x.pids("runner", "rtos-1")[0];
    assert!(alive(runner));
    let sid = fs::read_to_string(format!("/proc/{runner}/stat")).unwrap();
    let fields: Vec<&str> = sid[sid.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .collect();
    assert_eq!(
        fields[3],
        runner.to_string(),
        "the runner leads its session"
    );
    assert_eq!(
        fields[1],
        std::process::id().to_string(),
        "adopted by the test"
    );

    let out = x.run_xl(&["destroy", "rtos-1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!alive(runner));
    assert!(x.domain("rtos-1").is_none());
    assert!(x.xenstore("/local/domain/1/console/tty").is_none());
    let out = x.run_xl(&["destroy", "rtos-1"]);
    assert_eq!(
        text(&out.stderr),
        "rtos-1 is an invalid domain identifier (rc=-6)\n"
    );
    drop(x);
    assert!(children().is_empty(), "{:?}", children());
}

#[test]
fn lifecycle_through_the_pedestal() {
    let _serial = serial();
    let mut x = fake(&[]);
    let dir = TempDir::new("xl-life");
    let id = "xl-life";
    let (spec, ped, run) = build(&x, dir.path(), id, &[]);
    assert_eq!(
        (ped.kind(), spec.pedestal),
        (PedestalKind::Xen, PedestalKind::Xen)
    );
    assert_eq!(spec.resources.memory_mib, 64);

    let t_create = Instant::now();
    let mut part = ped.create(&spec, &run).unwrap();
    let create_time = t_create.elapsed();
    let cfg = run.join(format!("{id}.cfg"));
    assert_eq!(entries(&run), std::slice::from_ref(&cfg));
    let cfg_text = fs::read_to_string(&cfg).unwrap();
    let image = spec.rootfs.canonicalize().unwrap().join("image.bin");
    assert!(
        cfg_text.contains(&format!("\nkernel = \"{}\"\n", image.display())),
        "{cfg_text}"
    );
    assert_eq!(part.pid(), None);
    let leftovers = part.leftovers();
    assert!(leftovers.processes.is_empty());
    assert_eq!(leftovers.paths, std::slice::from_ref(&cfg));
    assert_eq!(
        leftovers.partition,
        Some(DetachedPartition::Xl {
            xl: x.xl(),
            domain: id.to_owned()
        })
    );
    assert_eq!(
        x.xl_calls(),
        [
            format!("domid {id}"),
            format!("create -p {}", cfg.display()),
            format!("domid {id}")
        ]
    );
    let domain = x.domain(id).expect("the fake has the domain");
    assert_eq!(domain["state"], "paused");
    assert_eq!(domain["kernel"], image.display().to_string());
    assert!(domain["sim_pid"].is_null(), "nothing runs before Start");
    assert_eq!(part.state(), PartitionState::Created);

    // Created paused: the console exists, the firmware does not run yet.
    let mut s = session(part.as_mut());
    s.step_for(Duration::from_millis(300));
    assert!(
        !s.ep.is_connected() && s.events.is_empty(),
        "{:?}",
        s.events
    );

    let t_start = Instant::now();
    part.start().unwrap();
    s.until(T, "the handshake", |s| s.ep.is_connected());
    let start_to_handshake = t_start.elapsed();
    assert_eq!(s.ep.peer().unwrap().board, "sim");
    assert_eq!(part.state(), PartitionState::Running);
    s.until(T, "Ready", |s| s.events.contains(&HostEvent::Ready));
    let at = s.expect_stdout(0, "micrun demo shell on sim", T);
    s.type_line("echo one two");
    let at = s.expect_stdout(at, "one two\r\n", T);
    s.until(T, "a Pong", |s| s.pongs() > 0);
    let sim = x.pids("sim", id);
    let runner = x.pids("runner", id);
    assert_eq!((sim.len(), runner.len()), (1, 1));
    let (sim, runner) = (sim[0], runner[0]);

    // Paused: the firmware is stopped, answers nothing, runs no command.
    part.pause().unwrap();
    assert_eq!(part.state(), PartitionState::Paused);
    assert_eq!(process_state(sim), Some('T'));
    s.step_for(Duration::from_millis(100));
    let before = s.pongs();
    let out_before = s.stdout.len();
    s.type_line("echo while paused");
    s.step_for(Duration::from_millis(500));
    assert_eq!(s.pongs(), before, "no Pong while paused");
    assert_eq!(s.stdout.len(), out_before, "no output while paused");
    part.resume().unwrap();
    assert_eq!(part.state(), PartitionState::Running);
    s.until(T, "a Pong after resume", |s| s.pongs() > before);
    s.expect_stdout(at, "while paused\r\n", T);

    // Update: the xl calls, in the order Xen needs them.
    let base = spec.resources.clone();
    let bigger = Resources {
        vcpus: 2,
        cpu_str: Some("0".into()),
        cpu_cap_percent: Some(150),
        cpu_weight: 512,
        memory_mib: 128,
        max_memory_mib: 128,
        ..base.clone()
    };
    let n = x.xl_calls().len();
    part.update(&base).unwrap();
    assert!(
        xl_calls_since(&x, n).is_empty(),
        "nothing changed, nothing called"
    );
    part.update(&bigger).unwrap();
    assert_eq!(
        xl_calls_since(&x, n),
        [
            format!("mem-max {id} 128m"),
            format!("mem-set {id} 128m"),
            format!("vcpu-set {id} 2"),
            format!("vcpu-pin {id} all 0"),
            format!("sched-credit2 -d {id} -w 512 -c 150"),
        ]
    );
    let d = x.domain(id).unwrap();
    assert_eq!(
        (
            &d["vcpus"],
            &d["memory_mib"],
            &d["maxmem_mib"],
            &d["cpus"],
            &d["cpu_weight"],
            &d["cap"]
        ),
        (
            &2.into(),
            &128.into(),
            &128.into(),
            &"0".into(),
            &512.into(),
            &150.into()
        )
    );
    let stats = part.stats().unwrap();
    assert_eq!(stats.memory_limit_bytes, 128 << 20);
    assert_eq!(stats.memory_used_bytes, 128 << 20, "xl list's Mem column");

    // Back down: the memory before its ceiling (the fake refuses the reverse).
    let n = x.xl_calls().len();
    part.update(&base).unwrap();
    assert_eq!(
        xl_calls_since(&x, n),
        [
            format!("mem-set {id} 64m"),
            format!("mem-max {id} 64m"),
            format!("vcpu-set {id} 1"),
            format!("vcpu-pin {id} all all"),
            format!("sched-credit2 -d {id} -w 256 -c 0"),
        ]
    );
    assert!(x.domain(id).unwrap()["cpus"].is_null());

    // A failing step names what was applied before it.
    x.fail(
        "vcpu-set",
        "libxl: error: libxl_domain.c: vcpu-set refused",
        0,
    );
    let err = part.update(&bigger).unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "vcpu-set {id} 2` exited with status 1: libxl: error: libxl_domain.c: vcpu-set refused"
        )) && err.contains(&format!(
            "applied before it: xl mem-max {id} 128m; xl mem-set {id} 128m"
        )),
        "{err}"
    );
    x.clear_failures();
    part.update(&base).unwrap();
    let n = x.xl_calls().len();
    let stats = part.stats().unwrap();
    assert_eq!(
        (stats.memory_limit_bytes, stats.memory_used_bytes),
        (64 << 20, 64 << 20)
    );
    assert_eq!(xl_calls_since(&x, n), [format!("list {id}")]);
    // The guest still answers.
    let n = s.pongs();
    s.until(T, "a Pong after the updates", |s| s.pongs() > n);

    let t_destroy = Instant::now();
    part.destroy().unwrap();
    let destroy_time = t_destroy.elapsed();
    assert!(!alive(runner) && !alive(sim), "runner and firmware gone");
    s.until(T, "the console's hang-up", |s| s.link_closed());
    assert!(entries(&run).is_empty(), "{:?}", entries(&run));
    assert!(x.domain(id).is_none());
    assert_eq!(part.state(), PartitionState::Stopped(None));
    part.destroy().unwrap();
    assert!(part.start().is_err() && part.pause().is_err());
    assert_eq!(s.ep.counters().errors(), 0, "{:?}", s.ep.counters());
    eprintln!(
        "xl pedestal (fake xl): create {create_time:?}, start→handshake {start_to_handshake:?}, \
         destroy {destroy_time:?}"
    );
    drop(x);
    assert!(children().is_empty(), "{:?}", children());
}

#[test]
fn a_domain_powering_off_hangs_up_its_console() {
    let _serial = serial();
    let x = fake(&[]);
    let dir = TempDir::new("xl-off");
    let id = "xl-off";
    let (spec, ped, run) = build(&x, dir.path(), id, &[]);
    let mut part = ped.create(&spec, &run).unwrap();
    let mut s = session(part.as_mut());
    part.start().unwrap();
    s.until(T, "the handshake", |s| s.ep.is_connected());
    let runner = x.pids("runner", id)[0];
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
    // on_poweroff = "destroy": Xen destroys the domain, xenconsoled hangs up.
    s.until(T, "the console's hang-up", |s| s.link_closed());
    let deadline = Instant::now() + T;
    while alive(runner) {
        assert!(Instant::now() < deadline, "the runner outlived its domain");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(x.domain(id).is_none());
    assert_eq!(part.state(), PartitionState::Stopped(None));
    let err = part.stats().unwrap_err().to_string();
    assert!(
        err.contains(&format!("Xen domain \"{id}\" no longer exists")),
        "{err}"
    );
    // Destroying a domain that is gone is fine; the config goes.
    part.destroy().unwrap();
    assert!(entries(&run).is_empty());
    drop(x);
    assert!(children().is_empty(), "{:?}", children());
}

fn fifo(path: &Path) -> PathBuf {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    path.to_path_buf()
}

/// The engine over a Xen domain: the relay on the pty console (raw, as for an
/// image without the agent), and Kill ending the domain.
#[test]
fn engine_instance_on_a_xen_domain() {
    let _serial = serial();
    let x = fake(&["--raw"]);
    let dir = TempDir::new("xl-engine");
    let id = "xl-engine";
    let (spec, ped, run) = build(
        &x,
        dir.path(),
        id,
        &[("org.openeuler.micrun.container.agent", "off")],
    );
    let part = ped.create(&spec, &run).unwrap();
    let io = IoPaths {
        stdin: Some(fifo(&dir.path().join("in"))),
        stdout: Some(fifo(&dir.path().join("out"))),
        stderr: Some(fifo(&dir.path().join("err"))),
    };
    let open = |p: &Path| {
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(p)
            .unwrap()
    };
    let mut stdin = open(io.stdin.as_ref().unwrap());
    let mut stdout = open(io.stdout.as_ref().unwrap());
    let lifecycle = config(&x).lifecycle;
    let inst = Arc::new(Instance::new(spec, part, io, lifecycle).unwrap());
    assert_eq!(inst.pid(), None);
    inst.start().unwrap();
    let deadline = Instant::now() + T;
    while inst.mode() != Mode::Raw {
        assert!(Instant::now() < deadline, "mode {:?}", inst.mode());
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut out = Vec::new();
    let mut read_until = |needle: &str| {
        let deadline = Instant::now() + T;
        while !text(&out).contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in {:?}",
                text(&out)
            );
            let mut b = [0u8; 4096];
            match stdout.read(&mut b) {
                Ok(n) => out.extend_from_slice(&b[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => panic!("{e}"),
            }
        }
    };
    read_until("micrun demo shell on sim");
    stdin.write_all(b"echo through xen\r").unwrap();
    read_until("through xen\r\n");
    let runner = x.pids("runner", id)[0];

    inst.pause().unwrap();
    assert_eq!(inst.status(), Status::Paused);
    assert_eq!(x.domain(id).unwrap()["state"], "paused");
    inst.resume().unwrap();
    assert_eq!(x.domain(id).unwrap()["state"], "running");

    // SIGTERM without the agent: the domain is destroyed, the relay sees the
    // console hang up, the task ends with 143.
    inst.kill(15).unwrap();
    let exit = inst.wait_timeout(T).expect("the task ended");
    assert_eq!(exit.code, 143);
    assert_eq!(inst.status(), Status::Stopped);
    assert!(!alive(runner));
    assert!(x.domain(id).is_none());
    inst.destroy();
    assert!(entries(&run).is_empty());
    assert!(x.xl_calls().iter().any(|c| c == &format!("destroy {id}")));
    drop(x);
    assert!(children().is_empty(), "{:?}", children());
}

#[test]
fn xl_failing_at_create_leaves_nothing() {
    let _serial = serial();
    let mut x = fake(&[]);
    let dir = TempDir::new("xl-fail");
    let id = "xl-fail";
    let (spec, ped, run) = build(&x, dir.path(), id, &[]);

    // `xl create` itself fails.
    let msg =
        "libxl: error: libxl_create.c:1216:initiate_domain_create: Domain 9:cannot make domain: -3";
    x.fail("create", msg, 0);
    let err = ped.create(&spec, &run).map(drop).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PedestalError::Failed { .. }), "{text}");
    assert!(
        text.contains(&format!(
            "/bin/xl create -p {}",
            run.join(format!("{id}.cfg")).display()
        )) && text.contains(&format!("exited with status 1: {msg}")),
        "{text}"
    );
    assert!(entries(&run).is_empty(), "{:?}", entries(&run));
    assert!(x.processes().is_empty(), "no runner was started");
    assert!(x.domain(id).is_none());

    // `xl create` succeeds, the step after it fails: the domain is destroyed.
    x.clear_failures();
    x.fail("domid", "libxl: error: cannot look up domains", 1);
    let err = ped.create(&spec, &run).map(drop).unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "domid {id}` exited with status 1: libxl: error: cannot look up domains"
        )),
        "{err}"
    );
    let runner = x.pids("runner", id);
    assert_eq!(runner.len(), 1, "the domain was made");
    assert!(!alive(runner[0]), "and destroyed");
    assert!(x.domain(id).is_none());
    assert!(x.xl_calls().iter().any(|c| c == &format!("destroy {id}")));
    assert!(entries(&run).is_empty(), "{:?}", entries(&run));

    // A domain of that name that is not ours is never touched.
    x.clear_failures();
    let mut part = ped.create(&spec, &run).unwrap();
    let calls = x.xl_calls().len();
    let err = ped.create(&spec, &run).map(drop).unwrap_err().to_string();
    assert!(
        err.contains(&format!("a Xen domain named \"{id}\" already exists")),
        "{err}"
    );
    assert_eq!(xl_calls_since(&x, calls), [format!("domid {id}")]);
    assert!(x.domain(id).is_some());
    part.destroy().unwrap();
    drop(x);
    assert!(children().is_empty(), "{:?}", children());
}

#[test]
fn a_console_published_late_is_waited_for() {
    let _serial = serial();
    let mut x = fake(&[]);
    x.set_console_delay(300);
    let dir = TempDir::new("xl-late");
    let id = "xl-late";
    let (spec, ped, run) = build(&x, dir.path(), id, &[]);
    let t = Instant::now();
    let mut part = ped.create(&spec, &run).unwrap();
    assert!(t.elapsed() >= Duration::from_millis(300));
    let reads = x
        .calls()
        .into_iter()
        .filter(|c| c.tool == "xenstore-read")
        .count();
    assert!(reads >= 2, "polled for the console: {reads} reads");
    let mut s = session(part.as_mut());
    part.start().unwrap();
    s.until(T, "the handshake", |s| s.ep.is_connected());
    part.destroy().unwrap();
    drop(x);
    assert!(children().is_empty(), "{:?}", children());
}

#[test]
fn destroy_detached_ends_a_live_domain() {
    let _serial = serial();
    let x = fake(&[]);
    let dir = TempDir::new("xl-detached");
    let id = "xl-detached";
    let (spec, ped, run) = build(&x, dir.path(), id, &[]);
    let mut part = ped.create(&spec, &run).unwrap();
    part.start().unwrap();
    let leftovers = part.leftovers();
    // The shim dies: the partition is forgotten, the domain keeps running.
    drop(part);
    let runner = x.pids("runner", id)[0];
    let sim = x.pids("sim", id)[0];
    assert!(alive(runner) && alive(sim));
    let detached = leftovers.partition.expect("an xl partition");
    detached.destroy().unwrap();
    assert!(!alive(runner) && !alive(sim));
    assert!(x.domain(id).is_none());
    // Again, and for a domain that never existed: ended is ended.
    detached.destroy().unwrap();
    micrun_shim::pedestal::xl::destroy_detached(&x.xl(), "never-made").unwrap();
    // xl failing for another reason is an error naming the domain and xl's words.
    let mut x = x;
    x.fail("destroy", "libxl: error: permission denied", 0);
    x.fail("domid", "libxl: error: permission denied", 0);
    let err = micrun_shim::pedestal::xl::destroy_detached(&x.xl(), "other")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Xen domain \"other\" may still run")
            && err.contains("exited with status 1: libxl: error: permission denied"),
        "{err}"
    );
    fs::remove_file(run.join(format!("{id}.cfg"))).unwrap();
    drop(x);
    assert!(children().is_empty(), "{:?}", children());
}
