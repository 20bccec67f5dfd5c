//! The engine without containerd: a bundle → instance spec → sim partition → I/O
//! relay over real FIFOs, with the simulator as the RTOS.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use micrun_shim::config::Config;
use micrun_shim::instance::{Instance, IoPaths, Mode, Status};
use micrun_tests::{sim_binary, TempDir};

fn bundle(dir: &Path, annotations: &[(&str, &str)], args: &[&str], terminal: bool) -> PathBuf {
    let b = dir.join("bundle");
    fs::create_dir_all(b.join("rootfs")).unwrap();
    fs::copy(sim_binary(), b.join("rootfs/firmware.elf")).unwrap();
    let mut ann = serde_json::Map::new();
    ann.insert("org.openeuler.micrun.ped.pedestal".into(), "sim".into());
    for (k, v) in annotations {
        ann.insert((*k).into(), (*v).into());
    }
    let mut argv = vec!["/firmware.elf".to_string()];
    argv.extend(args.iter().map(|s| s.to_string()));
    let spec = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": { "args": argv, "cwd": "/", "user": {"uid": 0, "gid": 0}, "terminal": terminal },
        "root": { "path": "rootfs" },
        "annotations": ann,
    });
    fs::write(b.join("config.json"), serde_json::to_vec(&spec).unwrap()).unwrap();
    b
}

fn fifo(path: &Path) -> PathBuf {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    path.to_path_buf()
}

struct Io {
    stdin: fs::File,
    stdout: fs::File,
    out: Vec<u8>,
}

impl Io {
    fn read_until(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !String::from_utf8_lossy(&self.out).contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in {:?}",
                String::from_utf8_lossy(&self.out)
            );
            let mut b = [0u8; 4096];
            match self.stdout.read(&mut b) {
                Ok(n) => self.out.extend_from_slice(&b[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
}

/// Reaps the partition's process as the shim's reaper would, and tells the instance.
fn reaper(inst: &Arc<Instance>) {
    let pid = inst.pid().expect("sim has a pid");
    let inst = inst.clone();
    std::thread::spawn(move || {
        use nix::sys::wait::{waitpid, WaitStatus};
        loop {
            match waitpid(nix::unistd::Pid::from_raw(pid as i32), None) {
                Ok(WaitStatus::Exited(_, c)) => return inst.process_exited(c),
                Ok(WaitStatus::Signaled(_, s, _)) => return inst.process_exited(128 + s as i32),
                Ok(_) => continue,
                Err(_) => return,
            }
        }
    });
}

fn setup(dir: &TempDir, annotations: &[(&str, &str)], args: &[&str]) -> (Arc<Instance>, Io) {
    setup_with(dir, annotations, args, "")
}

fn setup_with(
    dir: &TempDir,
    annotations: &[(&str, &str)],
    args: &[&str],
    lifecycle: &str,
) -> (Arc<Instance>, Io) {
    setup_opts(dir, annotations, args, lifecycle, false)
}

fn setup_opts(
    dir: &TempDir,
    annotations: &[(&str, &str)],
    args: &[&str],
    lifecycle: &str,
    terminal: bool,
) -> (Arc<Instance>, Io) {
    let b = bundle(dir.path(), annotations, args, terminal);
    let config = Config::from_str(
        &format!("[sim]\nenable = true\n[lifecycle]\nhandshake_wait = \"1s\"\n{lifecycle}"),
        Path::new("test.toml"),
    )
    .unwrap();
    let (spec, ped) = micrun_shim::spec::build("engine-test", "default", &b, &config).unwrap();
    let run = dir.path().join("run");
    fs::create_dir_all(&run).unwrap();
    let part = ped.create(&spec, &run).unwrap();
    let io = IoPaths {
        stdin: Some(fifo(&dir.path().join("in"))),
        stdout: Some(fifo(&dir.path().join("out"))),
        stderr: Some(fifo(&dir.path().join("err"))),
    };
    // Open our ends first (read-write: never blocks).
    let open = |p: &Path| {
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(p)
            .unwrap()
    };
    let ours = Io {
        stdin: open(io.stdin.as_ref().unwrap()),
        stdout: open(io.stdout.as_ref().unwrap()),
        out: vec![],
    };
    let inst = Arc::new(Instance::new(spec, part, io, config.lifecycle.clone()).unwrap());
    reaper(&inst);
    (inst, ours)
}

#[test]
fn agent_mode_console_and_exit_code() {
    let dir = TempDir::new("engine-agent");
    let (inst, mut io) = setup(&dir, &[], &[]);
    assert_eq!(inst.status(), Status::Created);
    inst.start().unwrap();
    io.read_until("micrun demo shell on sim", Duration::from_secs(10));
    assert_eq!(inst.mode(), Mode::Agent);
    io.stdin.write_all(b"echo engine works\r").unwrap();
    io.read_until("engine works\r\n", Duration::from_secs(10));
    let (ped, agent) = inst.stats().unwrap();
    assert!(ped.memory_used_bytes > 0);
    assert!(agent.is_some_and(|s| s.mem_total_kib > 0));
    io.stdin.write_all(b"exit 3\r").unwrap();
    let e = inst.wait_timeout(Duration::from_secs(10)).expect("exit");
    assert_eq!(e.code, 3);
    assert_eq!(inst.status(), Status::Stopped);
}

/// A container with a terminal (`process.terminal`): the agent hears of its
/// terminal at the handshake (a size of 0x0, unknown, as a new pty has), so
/// what is typed at once is echoed as on a terminal, before any client resize
/// (`ctr run -t` sends its first one after Start: typed quickly, the first line
/// had no echo).
#[test]
fn a_terminal_is_told_at_the_handshake() {
    let t = Duration::from_secs(10);
    let dir = TempDir::new("engine-tty");
    let (inst, mut io) = setup_opts(&dir, &[], &[], "", true);
    inst.start().unwrap();
    io.read_until("micrun demo shell on sim (linux)\r\n> ", t);
    assert_eq!(inst.mode(), Mode::Agent);
    io.stdin.write_all(b"echo typed\r").unwrap();
    // The typed line echoed, then the command's output; the 0x0 size itself is
    // not shown.
    io.read_until("> echo typed\r\ntyped\r\n> ", t);
    // A client's resize still arrives.
    inst.resize(24, 80);
    io.read_until("resize 24x80\r\n", t);
    io.stdin.write_all(b"exit 4\r").unwrap();
    let e = inst.wait_timeout(t).expect("exit");
    assert_eq!(e.code, 4);
}

/// Without a terminal the agent hears of none: typed bytes are not echoed.
#[test]
fn no_terminal_no_echo() {
    let t = Duration::from_secs(10);
    let dir = TempDir::new("engine-notty");
    let (inst, mut io) = setup(&dir, &[], &[]);
    inst.start().unwrap();
    io.read_until("micrun demo shell on sim (linux)\r\n> ", t);
    let mark = io.out.len();
    io.stdin.write_all(b"echo plain\r").unwrap();
    io.read_until("plain\r\n> ", t);
    assert_eq!(String::from_utf8_lossy(&io.out[mark..]), "plain\r\n> ");
    io.stdin.write_all(b"exit 0\r").unwrap();
    assert_eq!(inst.wait_timeout(t).expect("exit").code, 0);
}

#[test]
fn raw_mode_detected_and_sigterm_is_143() {
    let dir = TempDir::new("engine-raw");
    let (inst, mut io) = setup(&dir, &[], &["--raw"]);
    inst.start().unwrap();
    io.read_until("micrun demo shell on sim", Duration::from_secs(10));
    // No announcement within the handshake wait (1 s): raw for good.
    let deadline = Instant::now() + Duration::from_secs(5);
    while inst.mode() != Mode::Raw {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    io.stdin.write_all(b"echo raw relay\r").unwrap();
    io.read_until("raw relay\r\n", Duration::from_secs(10));
    assert!(inst.kill(10).is_err(), "SIGUSR1 cannot reach a raw console");
    inst.kill(15).unwrap();
    let e = inst.wait_timeout(Duration::from_secs(10)).expect("exit");
    assert_eq!(e.code, 143);
}

/// The raw demo shell under `agent=auto` and under `agent=off`, typed at from
/// the first moment: in both it gets exactly the typed bytes (no command fails)
/// and the user gets the same bytes back.
#[test]
fn raw_console_in_auto_is_byte_identical_to_off() {
    let session = |mode: &str| {
        let dir = TempDir::new(&format!("engine-raw-{mode}"));
        let (inst, mut io) = setup(
            &dir,
            &[("org.openeuler.micrun.container.agent", mode)],
            &["--raw"],
        );
        inst.start().unwrap();
        // At once, while `auto` is still listening for an agent.
        io.stdin.write_all(b"echo first\r").unwrap();
        io.read_until("> first\r\n", Duration::from_secs(10));
        io.stdin.write_all(b"hello\r").unwrap();
        io.read_until("hello from", Duration::from_secs(10));
        io.stdin.write_all(b"exit 4\r").unwrap();
        let e = inst.wait_timeout(Duration::from_secs(10)).expect("exit");
        assert_eq!(e.code, 4, "{mode}");
        assert_ne!(inst.mode(), Mode::Agent, "{mode}");
        // The rest of the output, up to the end of the relay.
        io.read_until("> ", Duration::from_secs(1));
        let mut b = [0u8; 4096];
        while let Ok(n) = io.stdout.read(&mut b) {
            if n == 0 {
                break;
            }
            io.out.extend_from_slice(&b[..n]);
        }
        io.out
    };
    let (auto, off) = (session("auto"), session("off"));
    let text = String::from_utf8_lossy(&auto);
    assert!(!text.contains("unknown command"), "{text:?}");
    assert_eq!(text, String::from_utf8_lossy(&off));
    assert_eq!(auto, off);
}

#[test]
fn agent_stop_uses_the_agents_code_and_sigkill_is_137() {
    let dir = TempDir::new("engine-stop");
    let (inst, mut io) = setup(&dir, &[("org.openeuler.micrun.container.agent", "on")], &[]);
    inst.start().unwrap();
    assert_eq!(inst.mode(), Mode::Agent);
    inst.kill(15).unwrap();
    let e = inst.wait_timeout(Duration::from_secs(10)).expect("exit");
    assert_eq!(e.code, 0, "the demo app stops with 0");
    io.read_until("stopping", Duration::from_secs(5));

    let dir2 = TempDir::new("engine-kill");
    let (inst, _io) = setup(&dir2, &[], &[]);
    inst.start().unwrap();
    inst.kill(9).unwrap();
    assert_eq!(
        inst.wait_timeout(Duration::from_secs(10))
            .expect("exit")
            .code,
        137
    );
}

#[test]
fn auto_close_stops_after_the_timeout_only_when_asked() {
    let dir = TempDir::new("engine-autoclose");
    let (inst, _io) = setup(
        &dir,
        &[("org.openeuler.micrun.container.auto_close_timeout", "1s")],
        &[],
    );
    let started = Instant::now();
    inst.start().unwrap();
    let e = inst
        .wait_timeout(Duration::from_secs(10))
        .expect("auto-closed");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "not before the timeout"
    );
    assert_eq!(e.code, 0, "stopped through the agent, which exits 0");

    // Without the annotation the instance keeps running.
    let dir2 = TempDir::new("engine-noautoclose");
    let (inst, _io) = setup(&dir2, &[], &[]);
    inst.start().unwrap();
    assert!(inst.wait_timeout(Duration::from_millis(1500)).is_none());
    inst.kill(9).unwrap();
    assert_eq!(
        inst.wait_timeout(Duration::from_secs(10)).unwrap().code,
        137
    );
}

/// Nobody reads stdout for longer than the liveness window while the RTOS floods:
/// the agent stops getting credits and waits, but keeps answering pings (no peer
/// loss), and nothing is lost once a reader comes.
#[test]
fn absent_reader_stalls_output_without_losing_it_or_the_partition() {
    let dir = TempDir::new("engine-slow");
    let (inst, mut io) = setup_with(
        &dir,
        &[],
        &[],
        "liveness_window = \"1s\"\nping_interval = \"200ms\"\n",
    );
    inst.start().unwrap();
    io.read_until("> ", Duration::from_secs(10));
    let before = io.out.len();
    const N: usize = 2_000_000;
    io.stdin
        .write_all(format!("flood {N}\r").as_bytes())
        .unwrap();
    // 2.5 liveness windows without reading: the pipe (64 KiB) and the rings fill.
    let idle_until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < idle_until {
        assert_eq!(
            inst.status(),
            Status::Running,
            "the partition must not be lost"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(inst.status(), Status::Running);
    io.read_until("flood done", Duration::from_secs(60));
    let flood = &io.out[before..];
    let start = flood.iter().position(|&b| b == b'a').unwrap();
    let body = &flood[start..start + N];
    for (i, &b) in body.iter().enumerate() {
        let want = if i % 64 == 63 {
            b'\n'
        } else {
            b'a' + (i % 26) as u8
        };
        assert_eq!(b, want, "byte {i} of the flood");
    }
    inst.kill(9).unwrap();
    inst.wait_timeout(Duration::from_secs(10)).unwrap();
}

/// An exec whose reader stalls: its output waits (credit holds the agent back),
/// nothing is lost, and the exit comes only after the last byte was taken.
#[test]
fn exec_with_a_stalled_reader_loses_nothing() {
    use micrun_shim::instance::ExecJob;
    let dir = TempDir::new("engine-exec");
    let (inst, mut io) = setup(&dir, &[], &[]);
    inst.start().unwrap();
    io.read_until("> ", Duration::from_secs(10));
    let (rx, tx) = nix::unistd::pipe().unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    const N: u32 = 500_000;
    let wire = inst
        .exec(ExecJob {
            wire: 0,
            name: "flood".into(),
            argv: format!("flood\0{N}\0").into_bytes(),
            stdout: Some(fs::File::from(tx)),
            on_exit: Box::new(move |code| {
                let _ = done_tx.send(code);
            }),
        })
        .expect("exec");
    assert_ne!(wire, 0);
    // Nobody reads for a while: the pipe (64 KiB) and the buffers fill.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        done_rx.try_recv().is_err(),
        "ended before its output was read"
    );
    let mut out = Vec::new();
    fs::File::from(rx).read_to_end(&mut out).unwrap();
    assert_eq!(done_rx.recv_timeout(Duration::from_secs(10)), Ok(0));
    let mismatch = (0..N).find(|&i| out.get(i as usize) != Some(&micrun_rtos::demo::flood_byte(i)));
    assert_eq!(mismatch, None, "{} bytes", out.len());
    assert!(String::from_utf8_lossy(&out[N as usize..]).contains("flood done"));
    // The console is untouched by the exec.
    assert!(!String::from_utf8_lossy(&io.out).contains("flood done"));
    inst.kill(9).unwrap();
    inst.wait_timeout(Duration::from_secs(10)).unwrap();
}

/// An exec that can no longer run ends, so that a Wait on it returns:
/// containerd sends Wait before Start, and a Wait that never returned held the
/// shim's ttrpc server, and the shim, after Shutdown. Its Start fails because
/// the instance has ended (126); one deleted before it started ends with 137.
#[test]
fn an_exec_that_cannot_run_releases_its_waiters() {
    use micrun_shim::exec::{ExecProcess, NOT_RUN, START_FAILED};
    let dir = TempDir::new("engine-exec-late");
    let (inst, mut io) = setup(&dir, &[], &[]);
    inst.start().unwrap();
    io.read_until("> ", Duration::from_secs(10));
    io.stdin.write_all(b"exit 5\r").unwrap();
    assert_eq!(
        inst.wait_timeout(Duration::from_secs(10)).map(|e| e.code),
        Some(5)
    );

    let spec = br#"{"args":["hang"],"cwd":"/"}"#;
    let waited = |exec: &Arc<ExecProcess>| {
        let (tx, rx) = std::sync::mpsc::channel();
        let exec = exec.clone();
        std::thread::spawn(move || {
            let _ = tx.send(exec.wait().code);
        });
        rx
    };
    let late =
        Arc::new(ExecProcess::new("engine-test", "late", spec, IoPaths::default(), false).unwrap());
    let wait = waited(&late);
    let err = late.start(&inst, "default", |_| {}).unwrap_err();
    assert!(err.to_string().contains("stopped"), "{err}");
    assert_eq!(wait.recv_timeout(Duration::from_secs(5)), Ok(START_FAILED));
    assert_eq!(late.status().0, Status::Stopped);

    let unstarted = Arc::new(
        ExecProcess::new("engine-test", "never", spec, IoPaths::default(), false).unwrap(),
    );
    let wait = waited(&unstarted);
    unstarted.abandon();
    assert_eq!(wait.recv_timeout(Duration::from_secs(5)), Ok(NOT_RUN));
}

/// Output the firmware wrote before it exited reaches a reader that opens the
/// FIFO only after the firmware has gone (as ctr's reader, opened from a
/// goroutine, can under load): the end is not reported while the output waits
/// unread in the pipe, and the pipe is not closed, so the late reader takes
/// all of it, then the exit comes. (The end used to be reported and the FIFO
/// closed as soon as the bytes were in the pipe: a reader that opened later
/// found nothing.)
#[test]
fn output_is_read_before_the_end_is_reported() {
    use micrun_shim::instance::UNREAD_WAIT;
    let dir = TempDir::new("engine-unread");
    let (inst, mut io) = setup(&dir, &[], &["--input", "echo last words\rexit 0\r"]);
    let pid = inst.pid().unwrap();
    inst.start().unwrap();
    // The firmware prints, exits and is reaped; nobody has read the FIFO yet.
    let gone = || nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_err();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gone() {
        assert!(Instant::now() < deadline, "the firmware did not exit");
        std::thread::sleep(Duration::from_millis(5));
    }
    // A third of the wait for a reader: the end is still not reported.
    std::thread::sleep(UNREAD_WAIT / 3);
    assert_eq!(
        inst.exit(),
        None,
        "the end was reported with its output unread"
    );
    io.read_until("last words\r\n", Duration::from_secs(5));
    assert!(String::from_utf8_lossy(&io.out).contains("micrun demo shell on sim"));
    let e = inst
        .wait_timeout(Duration::from_secs(5))
        .expect("the end, once read");
    assert_eq!(e.code, 0);
}
