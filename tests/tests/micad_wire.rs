//! The micad wire protocol, both ends: the emulator's formats checked against
//! reference/mica.md byte by byte (hand-built buffers, hand-padded status lines),
//! and micrun-shim's `MicadClient` driving the emulator, with `micrun-rtos-sim` as
//! the firmware, through create → start → console → status → stop → rm and
//! through micad's failures (down, refusing, hanging, restarting).
//!
//! Every firmware process is started by the emulator, which kills and reaps it
//! when dropped; things that appear asynchronously (the console link, a removed
//! socket) are polled for with a deadline.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use micrun_proto::{HostConfig, HostEvent};
use micrun_shim::pedestal::micad::{
    self, is_running, open_tty, wait_for_tty, Command, CreateMsg, MicaState, MicadClient,
    MicadError, NewlineRestorer, SetKey,
};
use micrun_shim::resources::Resources;
use micrun_tests::micad::{
    create_msg_layout, create_msg_size, CreateRequest, Fault, MicadEmulator, Op, Options, Request,
};
use micrun_tests::{find, sim_binary, FdLink, HostSession, TempDir};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

const T: Duration = Duration::from_secs(20);

/// A test's directories: micad's sockets in `<tmp>/m`, consoles in `<tmp>/dev`
/// (short, so that 65-byte names still make unix socket paths).
struct Env {
    tmp: TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            tmp: TempDir::new("mw"),
        }
    }
    fn sockets(&self) -> PathBuf {
        self.tmp.path().join("m")
    }
    fn ttys(&self) -> PathBuf {
        self.tmp.path().join("dev")
    }
    fn options(&self) -> Options {
        Options::new(self.ttys())
    }
    fn emulator(&self, options: Options) -> MicadEmulator {
        MicadEmulator::start(&self.sockets(), options).expect("start the micad emulator")
    }
    fn client(&self) -> MicadClient {
        MicadClient::new(self.sockets())
    }
    /// A firmware file for exchanges that never start it.
    fn dummy_firmware(&self) -> PathBuf {
        let p = self.tmp.path().join("fw.elf");
        std::fs::write(&p, b"\x7fELF").unwrap();
        p
    }
}

fn resources() -> Resources {
    Resources {
        vcpus: 1,
        max_vcpus: 8,
        cpu_str: Some("1".into()),
        cpu_cap_percent: None,
        cpu_weight: 256,
        memory_mib: 32,
        max_memory_mib: 32,
        dropped_cpus: vec![],
        ignored: vec![],
    }
}

fn create_msg(id: &str, firmware: &Path) -> CreateMsg {
    CreateMsg::for_container(id, firmware, "baremetal", None, false, &resources())
        .expect("a valid create message")
}

/// One exchange with raw bytes: send, half-close, read to EOF.
fn raw_exchange(socket: &Path, request: &[u8]) -> Vec<u8> {
    let mut s = UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(request).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).expect("read the reply to EOF");
    reply
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

/// Polls `cond` until it holds; panics naming `what` after `timeout`.
fn eventually(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reads the non-blocking `fd` into `got` until `needle` appears after `from`.
fn read_until(fd: &OwnedFd, got: &mut Vec<u8>, from: usize, needle: &str) {
    let deadline = Instant::now() + T;
    let mut buf = [0u8; 4096];
    while find(&got[from.min(got.len())..], needle.as_bytes()).is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "timed out waiting for {needle:?} on the console; got {:?}",
            String::from_utf8_lossy(got)
        );
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        poll(
            &mut fds,
            PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX),
        )
        .unwrap();
        match nix::unistd::read(fd, &mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(e) => panic!("reading the console: {e}"),
        }
    }
}

fn write_tty(fd: &OwnedFd, mut data: &[u8]) {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::EAGAIN | Errno::EINTR) => {
                let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
                poll(&mut fds, PollTimeout::from(100u16)).unwrap();
            }
            Err(e) => panic!("writing the console: {e}"),
        }
    }
}

fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        let state = s
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next());
        !matches!(state, Some("Z" | "X") | None)
    })
}

#[test]
fn emulator_layout_is_the_reference_table() {
    // reference/mica.md, "micad wire protocol", copied by hand.
    let reference = [
        ("name", 0, 66),
        ("path", 66, 256),
        ("ped", 322, 16),
        ("ped_cfg", 338, 256),
        ("debug", 594, 1),
        ("cpu_str", 595, 128),
        ("vcpu_num", 724, 4),
        ("max_vcpu_num", 728, 4),
        ("cpu_weight", 732, 4),
        ("cpu_capacity", 736, 4),
        ("memory", 740, 4),
        ("max_memory", 744, 4),
        ("iomem", 748, 512),
        ("network", 1260, 512),
    ];
    assert_eq!(create_msg_layout(), reference);
    assert_eq!(create_msg_size(), 1772);
}

#[test]
fn emulator_decodes_a_hand_built_create_message() {
    let env = Env::new();
    let emu = env.emulator(env.options());
    let fw = env.dummy_firmware();
    let fw = fw.to_str().unwrap();
    let mut buf = vec![0u8; 1772];
    put(&mut buf, 0, b"inst-a");
    put(&mut buf, 66, fw.as_bytes());
    put(&mut buf, 322, b"xen");
    put(&mut buf, 338, b"image.bin");
    buf[594] = 1;
    put(&mut buf, 595, b"1-3,5");
    // vcpu_num 2, max_vcpu_num 8, cpu_weight 300, cpu_capacity 150, memory 64,
    // max_memory 96, little-endian.
    put(&mut buf, 724, &[2, 0, 0, 0]);
    put(&mut buf, 728, &[8, 0, 0, 0]);
    put(&mut buf, 732, &[0x2c, 0x01, 0, 0]);
    put(&mut buf, 736, &[150, 0, 0, 0]);
    put(&mut buf, 740, &[64, 0, 0, 0]);
    put(&mut buf, 744, &[96, 0, 0, 0]);
    put(&mut buf, 748, b"0x3000000:0x1000");
    put(&mut buf, 1260, b"br0");
    put(&mut buf, 1771, b"\0");

    let reply = raw_exchange(&emu.create_socket(), &buf);
    assert_eq!(reply, b"MICA-SUCCESS", "no text, no newline, no NUL");
    let creates = emu.creates();
    assert_eq!(
        creates,
        [CreateRequest {
            name: "inst-a".into(),
            path: fw.into(),
            ped: "xen".into(),
            ped_cfg: "image.bin".into(),
            debug: 1,
            cpu_str: "1-3,5".into(),
            vcpu_num: 2,
            max_vcpu_num: 8,
            cpu_weight: 300,
            cpu_capacity: 150,
            memory: 64,
            max_memory: 96,
            iomem: "0x3000000:0x1000".into(),
            network: "br0".into(),
            padding: vec![0],
            unterminated: vec![],
        }]
    );
    assert!(env.sockets().join("inst-a.socket").exists());
    assert_eq!(emu.instance("inst-a").unwrap().state, "Offline");
    // micrun-shim reads the same bytes the same way.
    let shim = CreateMsg::decode(&buf).unwrap();
    assert_eq!(
        (
            shim.name.as_str(),
            shim.cpu_str.as_str(),
            shim.cpu_weight,
            shim.max_memory
        ),
        ("inst-a", "1-3,5", 300, 96)
    );
}

#[test]
fn emulator_reads_every_field_to_its_last_byte() {
    let env = Env::new();
    let emu = env.emulator(env.options());
    // Each string field full: size - 1 bytes of its own letter, then the NUL.
    let fields = [
        (0, 66, b'n'),
        (66, 256, b'p'),
        (322, 16, b'e'),
        (338, 256, b'c'),
        (595, 128, b'u'),
        (748, 512, b'i'),
        (1260, 512, b'w'),
    ];
    let mut buf = vec![0u8; 1772];
    for (at, size, letter) in fields {
        buf[at..at + size - 1].fill(letter);
    }
    buf[594] = 0;
    let path = "p".repeat(255);
    let reply = raw_exchange(&emu.create_socket(), &buf);
    // No such firmware file: micad's text, then the marker, nothing between.
    assert_eq!(
        String::from_utf8(reply).unwrap(),
        format!("No such file: {path}MICA-FAILED")
    );
    let c = &emu.creates()[0];
    assert_eq!(c.name, "n".repeat(65));
    assert_eq!(c.path, path);
    assert_eq!(c.ped, "e".repeat(15));
    assert_eq!(c.ped_cfg, "c".repeat(255));
    assert_eq!(c.cpu_str, "u".repeat(127));
    assert_eq!(c.iomem, "i".repeat(511));
    assert_eq!(c.network, "w".repeat(511));
    assert!(c.unterminated.is_empty());
    assert!(emu.instance(&c.name).is_none(), "refused, not created");

    // The ped field without its NUL: micad would read on into ped_cfg.
    buf[322 + 15] = b'e';
    let reply = raw_exchange(&emu.create_socket(), &buf);
    assert_eq!(reply, b"unterminated strings: pedMICA-FAILED");
    // A message sent short is one micad cannot use.
    let reply = raw_exchange(&emu.create_socket(), &buf[..1000]);
    assert_eq!(
        reply,
        b"short create message: 1000 of 1772 bytesMICA-FAILED"
    );
}

#[test]
fn shim_encoder_and_emulator_decoder_agree() {
    let env = Env::new();
    let emu = env.emulator(env.options());
    let fw = env.dummy_firmware();
    let res = Resources {
        vcpus: 3,
        max_vcpus: 6,
        cpu_str: Some("0-2".into()),
        cpu_cap_percent: Some(250),
        cpu_weight: 1000,
        memory_mib: 256,
        max_memory_mib: 256,
        dropped_cpus: vec![],
        ignored: vec![],
    };
    let msg = CreateMsg::for_container(
        "ctr.1",
        &fw,
        "xen",
        Some(Path::new("/b/rootfs/image.bin")),
        true,
        &res,
    )
    .unwrap();
    assert_eq!(env.client().create(&msg).unwrap(), "");
    let requests = emu.requests();
    let [Request::Create {
        bytes,
        extra,
        decoded: Some(c),
    }] = &requests[..]
    else {
        panic!("one whole create message: {requests:?}");
    };
    assert_eq!(bytes.len(), 1772);
    assert_eq!(*extra, 0, "the client sends the struct and nothing more");
    assert_eq!(bytes[..], msg.encode().unwrap()[..]);
    assert_eq!(
        **c,
        CreateRequest {
            name: "ctr.1".into(),
            path: fw.to_str().unwrap().into(),
            ped: "xen".into(),
            ped_cfg: "/b/rootfs/image.bin".into(),
            debug: 1,
            cpu_str: "0-2".into(),
            vcpu_num: 3,
            max_vcpu_num: 6,
            cpu_weight: 1000,
            cpu_capacity: 250,
            memory: 256,
            max_memory: 256,
            iomem: String::new(),
            network: String::new(),
            padding: vec![0],
            unterminated: vec![],
        }
    );
}

#[test]
fn status_is_micads_printf_layout_byte_by_byte() {
    let env = Env::new();
    let _emu = env.emulator(env.options());
    let fw = env.dummy_firmware();
    let client = env.client();
    let mut msg = create_msg("inst-a", &fw);
    msg.cpu_str = "1-3,5".into();
    client.create(&msg).unwrap();
    let reply = raw_exchange(&env.sockets().join("inst-a.socket"), b"status");
    // %-30s%-20s%-20s%s: "inst-a" + 24 blanks, "1-3,5" + 15, "Offline" + 13, no
    // services, then the marker.
    let expected = format!(
        "inst-a{}1-3,5{}Offline{}MICA-SUCCESS",
        " ".repeat(24),
        " ".repeat(15),
        " ".repeat(13)
    );
    assert_eq!(String::from_utf8(reply).unwrap(), expected);
    let status = client.status("inst-a").unwrap();
    assert_eq!(
        (status.name.as_str(), status.cpu_str.as_str(), status.state),
        ("inst-a", "1-3,5", MicaState::Offline)
    );

    // A 40-byte name is shown as its first 12 bytes, "...", its last byte.
    let long = "abcdefghijkl-0123456789012345678901234-z";
    assert_eq!(long.len(), 40);
    client.create(&create_msg(long, &fw)).unwrap();
    let reply = raw_exchange(&env.sockets().join(format!("{long}.socket")), b"status");
    let expected = format!(
        "abcdefghijkl...z{}1{}Offline{}MICA-SUCCESS",
        " ".repeat(14),
        " ".repeat(19),
        " ".repeat(13)
    );
    assert_eq!(String::from_utf8(reply).unwrap(), expected);
    let status = client.status(long).unwrap();
    assert_eq!(status.name, "abcdefghijkl...z");
    assert!(status.is_of(long));
}

#[test]
fn lifecycle_with_the_raw_sim_behind_the_console() {
    let env = Env::new();
    let mut options = env.options();
    options.firmware_args = vec!["--raw".into()];
    let emu = env.emulator(options);
    let client = env.client();
    let id = "pod.sim-1";
    let sim = sim_binary();
    client.create(&create_msg(id, &sim)).unwrap();
    assert_eq!(client.status(id).unwrap().state, MicaState::Offline);
    assert!(
        micad::find_tty(&[env.ttys()], id).is_none(),
        "no console before start"
    );

    assert_eq!(client.command(id, &Command::Start).unwrap(), "");
    let tty = wait_for_tty(&[env.ttys()], id, T).unwrap();
    assert_eq!(tty, env.ttys().join("ttyRPMSG_pod_sim-1_0"));
    assert_eq!(tty, emu.tty_link(id));
    let status = client.status(id).unwrap();
    assert_eq!(status.state, MicaState::Running);
    assert_eq!(status.tty(), Some(tty.clone()));
    assert_eq!(
        status.services,
        format!("rpmsg-tty({})", tty.display()),
        "micad's services column"
    );
    let pid = emu.instance(id).unwrap().pid.expect("a firmware process");
    assert!(process_alive(pid));

    let fd = open_tty(&tty).unwrap();
    let mut got = Vec::new();
    // micad's console turns the sim's "\r\n" into "\r\r\n".
    read_until(&fd, &mut got, 0, "micrun demo shell on sim (linux)\r\r\n> ");
    let mark = got.len();
    write_tty(&fd, b"hello\r");
    read_until(&fd, &mut got, mark, "hello from sim\r\r\n> ");
    drop(fd);

    assert_eq!(client.command(id, &Command::Stop).unwrap(), "");
    assert!(!process_alive(pid), "stop ended and reaped the firmware");
    assert!(
        tty.symlink_metadata().is_err(),
        "stop removes the console link"
    );
    let status = client.status(id).unwrap();
    assert_eq!((status.state, status.tty()), (MicaState::Stopped, None));

    assert_eq!(client.command(id, &Command::Rm).unwrap(), "");
    // micad answers, then removes the socket.
    let socket = client.instance_socket(id);
    eventually("the instance socket to go", T, || !socket.exists());
    match client.status(id) {
        Err(MicadError::NoInstance { id: got, path, .. }) => {
            assert_eq!((got.as_str(), path), (id, socket))
        }
        other => panic!("{other:?}"),
    }
    // Exactly what was sent, nothing more.
    let commands: Vec<Vec<u8>> = emu
        .requests()
        .into_iter()
        .filter_map(|r| match r {
            Request::Command { bytes, .. } => Some(bytes),
            Request::Create { .. } => None,
        })
        .collect();
    let expected: [&[u8]; 6] = [b"status", b"start", b"status", b"stop", b"status", b"rm"];
    assert_eq!(commands, expected);
}

/// Agent mode through micad's console as micad leaves it (cooked, echo on, `\n`
/// → `\r\n`). The agent announces itself from boot, so what it sent before the
/// console was opened went through the cooked line discipline (its 0x03 byte is
/// VINTR, which flushes the line) and reaches the host as at most one damaged
/// frame, which the host drops. From the moment `open_tty` makes the pty raw,
/// every frame arrives intact: the restorer undoes micad's newline translation.
#[test]
fn agent_handshake_over_the_micad_console() {
    let env = Env::new();
    let mut options = env.options();
    options.raw_tty = false;
    let _emu = env.emulator(options);
    let client = env.client();
    let id = "agent-1";
    client.create(&create_msg(id, &sim_binary())).unwrap();
    client.command(id, &Command::Start).unwrap();
    let tty = wait_for_tty(&[env.ttys()], id, T).unwrap();
    // micad's console: the same fd both ways, micad's newline translation undone.
    let fd = open_tty(&tty).unwrap();
    let link = FdLink::with(fd.try_clone().unwrap(), fd, Some(NewlineRestorer::new()));
    let mut s = HostSession::new(
        link,
        HostConfig {
            ping_interval_ms: 200,
            peer_timeout_ms: 60_000,
            ..HostConfig::default()
        },
    );
    s.until(T, "the handshake", |s| {
        s.events
            .iter()
            .any(|e| matches!(e, HostEvent::Connected(_)))
    });
    // What the cooked pty left of the announcements sent before `open_tty` is
    // read first, before the agent's answer to the host's Hello.
    let before = s.ep.counters();
    assert!(
        before.crc_errors + before.malformed_frames <= 1,
        "only the cooked leftover of one announcement is damaged: {before:?}"
    );
    let at = s.expect_stdout(0, "micrun demo shell on sim (linux)\r\n> ", T);
    s.type_line("hello");
    s.expect_stdout(at, "hello from sim\r\n> ", T);
    // The sim's console text holds '\n' bytes, which micad doubles: without the
    // restorer these frames would fail their CRC.
    let c = s.ep.counters();
    assert_eq!(
        (c.crc_errors, c.malformed_frames),
        (before.crc_errors, before.malformed_frames),
        "no frame after the handshake was damaged: {c:?}"
    );
}

#[test]
fn micad_down_is_reported_with_how_to_start_it() {
    let env = Env::new();
    std::fs::create_dir_all(env.sockets()).unwrap();
    let fw = env.dummy_firmware();
    let client = env.client();
    assert!(!is_running(&env.sockets()));
    let create_socket = env.sockets().join("mica-create.socket");
    let check = |err: MicadError, why: &str| {
        let text = err.to_string();
        assert!(
            matches!(&err, MicadError::NotRunning { path, .. } if *path == create_socket),
            "{err:?}"
        );
        assert!(text.contains("systemctl start micad"), "{text}");
        assert!(text.contains(&*create_socket.to_string_lossy()), "{text}");
        assert!(text.contains(why), "{text}");
    };
    check(
        client.create(&create_msg("c1", &fw)).unwrap_err(),
        "does not exist",
    );
    check(
        client.command("c1", &Command::Start).unwrap_err(),
        "does not exist",
    );
    // A socket file left by a micad that died: it exists, nobody listens.
    drop(UnixListener::bind(&create_socket).unwrap());
    assert!(
        is_running(&env.sockets()),
        "the file is all is_running sees"
    );
    check(
        client.create(&create_msg("c1", &fw)).unwrap_err(),
        "nothing accepts connections",
    );
}

#[test]
fn micad_refusals_are_surfaced_with_their_text() {
    let env = Env::new();
    let emu = env.emulator(env.options());
    let fw = env.dummy_firmware();
    let client = env.client();
    let failed = |err: MicadError| match err {
        MicadError::Failed { message, .. } => message,
        other => panic!("expected MICA-FAILED, got {other:?}"),
    };

    let missing = env.tmp.path().join("missing.elf");
    let err = client.create(&create_msg("c1", &missing)).unwrap_err();
    let text = err.to_string();
    assert_eq!(failed(err), format!("No such file: {}", missing.display()));
    assert!(
        text.contains("create c1") && text.contains("mica-create.socket"),
        "{text}"
    );

    client.create(&create_msg("c1", &fw)).unwrap();
    assert_eq!(
        failed(client.create(&create_msg("c1", &fw)).unwrap_err()),
        "c1 is already created"
    );

    emu.set_fault(Op::Start, Some(Fault::Fail("no free CPU for c1".into())));
    let err = client.command("c1", &Command::Start).unwrap_err();
    assert!(err.to_string().contains("refused `start`"), "{err}");
    assert_eq!(failed(err), "no free CPU for c1");
    emu.set_fault(Op::Start, Some(Fault::Fail(String::new())));
    assert_eq!(
        failed(client.command("c1", &Command::Start).unwrap_err()),
        "(micad gave no reason)"
    );

    // What micad answers to commands it does not know, and to the keys the Go
    // MicRun sends.
    let socket = env.sockets().join("c1.socket");
    assert_eq!(
        raw_exchange(&socket, b"reboot"),
        b"Invalid command: rebootMICA-FAILED"
    );
    for (sent, key) in [
        ("set MaxMem 64", "maxmem"),
        ("set CPUCpacity 50", "cpucpacity"),
    ] {
        let reply = String::from_utf8(raw_exchange(&socket, sent.as_bytes())).unwrap();
        assert!(
            reply.starts_with(&format!("Invalid key: {key} ")) && reply.ends_with("MICA-FAILED"),
            "{reply}"
        );
    }
    // A command filling micad's whole 32-byte buffer.
    let reply = raw_exchange(&socket, &[b's'; 32]);
    assert!(reply.ends_with(b"MICA-FAILED"), "{reply:?}");
}

#[test]
fn a_hung_micad_times_out() {
    let env = Env::new();
    let emu = env.emulator(env.options());
    let fw = env.dummy_firmware();
    let timeout = Duration::from_millis(300);
    let client = env.client().with_timeout(timeout);
    client.create(&create_msg("c1", &fw)).unwrap();

    for (op, run) in [
        (
            Op::Status,
            Box::new(|| client.status("c1").map(|_| ())) as Box<dyn Fn() -> Result<(), MicadError>>,
        ),
        (
            Op::Create,
            Box::new(|| client.create(&create_msg("c2", &fw)).map(|_| ())),
        ),
    ] {
        emu.set_fault(op, Some(Fault::Hang));
        let t0 = Instant::now();
        let err = run().unwrap_err();
        let took = t0.elapsed();
        assert!(took >= timeout, "{op:?}: gave up after {took:?}");
        assert!(took < Duration::from_secs(3), "{op:?}: took {took:?}");
        let text = err.to_string();
        assert!(matches!(err, MicadError::Timeout { .. }), "{err:?}");
        assert!(
            text.contains("did not answer") && text.contains("300ms"),
            "{text}"
        );
        let socket = match op {
            Op::Create => "mica-create.socket",
            _ => "c1.socket",
        };
        assert!(text.contains(socket), "{text}");
        emu.set_fault(op, None);
    }
    // Back to normal.
    assert_eq!(client.status("c1").unwrap().state, MicaState::Offline);
}

#[test]
fn over_long_ids_are_refused_before_anything_is_sent() {
    let env = Env::new();
    let emu = env.emulator(env.options());
    let fw = env.dummy_firmware();
    let client = env.client();
    let id66 = "i".repeat(66);
    let msg = CreateMsg {
        name: id66.clone(),
        ..create_msg("x", &fw)
    };
    for err in [
        client.create(&msg).unwrap_err(),
        client.command(&id66, &Command::Start).unwrap_err(),
        client.status(&id66).unwrap_err(),
    ] {
        assert!(
            matches!(
                err,
                MicadError::FieldTooLong {
                    field: "name",
                    len: 66,
                    max: 65,
                    ..
                }
            ),
            "{err:?}"
        );
    }
    let err = client
        .command("c1", &Command::set(SetKey::Cpu, "0,1,2,3,4,5,6,7,8,9,10,1"))
        .unwrap_err();
    assert!(
        matches!(err, MicadError::CommandTooLong { len: 32, .. }),
        "{err:?}"
    );
    assert_eq!(emu.requests(), [], "nothing reached micad");

    // 65 bytes is the longest name: created, shown shortened, matched.
    let id65 = format!("{}-{}", "a".repeat(12), "b".repeat(52));
    assert_eq!(id65.len(), 65);
    client.create(&create_msg(&id65, &fw)).unwrap();
    let status = client.status(&id65).unwrap();
    assert_eq!(status.name, "aaaaaaaaaaaa...b");
    assert_eq!(emu.creates()[0].name, id65);
}

#[test]
fn set_commands_reach_micad_lower_cased() {
    let env = Env::new();
    let emu = env.emulator(env.options());
    let fw = env.dummy_firmware();
    let client = env.client();
    client.create(&create_msg("c1", &fw)).unwrap();
    let values = [
        (SetKey::Vcpu, "2"),
        (SetKey::Cpu, "2-3"),
        (SetKey::CpuCapacity, "150"),
        (SetKey::CpuWeight, "512"),
        (SetKey::MaxMemory, "128"),
        (SetKey::Memory, "128"),
    ];
    for (key, value) in values {
        client.command("c1", &Command::set(key, value)).unwrap();
    }
    let settings = emu.instance("c1").unwrap().settings;
    let expected: Vec<(String, String)> = [
        ("vcpu", "2"),
        ("cpu", "2-3"),
        ("cpucapacity", "150"),
        ("cpuweight", "512"),
        ("maxmemory", "128"),
        ("memory", "128"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(settings, expected);
    assert_eq!(client.status("c1").unwrap().cpu_str, "2-3");
    let err = client
        .command("c1", &Command::set(SetKey::Memory, "-5"))
        .unwrap_err();
    assert!(
        err.to_string().contains("Invalid value -5 for memory"),
        "{err}"
    );
}

#[test]
fn a_late_console_is_waited_for() {
    let env = Env::new();
    let mut options = env.options();
    options.firmware_args = vec!["--raw".into()];
    let emu = env.emulator(options);
    let delay = Duration::from_millis(400);
    emu.set_tty_delay(delay);
    let client = env.client();
    client.create(&create_msg("late", &sim_binary())).unwrap();
    let t0 = Instant::now();
    client.command("late", &Command::Start).unwrap();
    let tty = wait_for_tty(&[env.ttys()], "late", T).unwrap();
    assert!(t0.elapsed() >= delay, "appeared after {:?}", t0.elapsed());
    let fd = open_tty(&tty).unwrap();
    let mut got = Vec::new();
    read_until(&fd, &mut got, 0, "micrun demo shell on sim");
    assert_eq!(client.status("late").unwrap().tty(), Some(tty));
}

#[test]
fn micad_restart_leaves_partitions_running_and_forgets_them() {
    let env = Env::new();
    let mut options = env.options();
    options.firmware_args = vec!["--raw".into()];
    let mut emu = env.emulator(options);
    let client = env.client();
    client.create(&create_msg("kept", &sim_binary())).unwrap();
    client.command("kept", &Command::Start).unwrap();
    wait_for_tty(&[env.ttys()], "kept", T).unwrap();
    let pid = emu.instance("kept").unwrap().pid.unwrap();

    emu.restart().unwrap();
    assert!(is_running(&env.sockets()));
    assert!(process_alive(pid), "the partition outlives micad");
    assert_eq!(emu.orphan_pids(), [pid]);
    assert!(
        micad::find_tty(&[env.ttys()], "kept").is_none(),
        "its console died with micad"
    );
    assert!(matches!(
        client.status("kept").unwrap_err(),
        MicadError::NoInstance { .. }
    ));

    emu.stop();
    assert!(!is_running(&env.sockets()));
    assert!(matches!(
        client.command("kept", &Command::Stop).unwrap_err(),
        MicadError::NotRunning { .. }
    ));
    assert!(process_alive(pid));
    drop(emu);
    assert!(
        !process_alive(pid),
        "dropping the emulator reaps its children"
    );
}

/// micad copies an instance's name into a 32-byte buffer before printing its status
/// line: 31 bytes are shown whole and overflow the 30-byte name column, straight
/// into the CPU list; from 32 bytes on the name is shortened. The shim's parser
/// must follow both, or a 31-byte container id reads as an "unknown state".
#[test]
fn status_of_a_31_byte_name_is_shown_whole_and_parsed() {
    let env = Env::new();
    let _emu = env.emulator(env.options());
    let fw = env.dummy_firmware();
    let client = env.client();
    let id31 = "abcdefghijkl-012345678901234-yz";
    assert_eq!(id31.len(), 31);
    let mut msg = create_msg(id31, &fw);
    msg.cpu_str = "1-3".into();
    client.create(&msg).unwrap();
    let reply = raw_exchange(&env.sockets().join(format!("{id31}.socket")), b"status");
    let expected = format!(
        "{id31}1-3{}Offline{}MICA-SUCCESS",
        " ".repeat(17),
        " ".repeat(13)
    );
    assert_eq!(String::from_utf8(reply).unwrap(), expected);
    let status = client.status(id31).unwrap();
    assert_eq!(
        (status.name.as_str(), status.cpu_str.as_str(), status.state),
        (id31, "1-3", MicaState::Offline)
    );

    let id32 = "abcdefghijkl-0123456789012345-yz";
    assert_eq!(id32.len(), 32);
    client.create(&create_msg(id32, &fw)).unwrap();
    let reply = raw_exchange(&env.sockets().join(format!("{id32}.socket")), b"status");
    assert!(
        String::from_utf8(reply)
            .unwrap()
            .starts_with(&format!("abcdefghijkl...z{}1 ", " ".repeat(14))),
        "a 32-byte name is shortened"
    );
    let status = client.status(id32).unwrap();
    assert_eq!(
        (status.name.as_str(), status.state),
        ("abcdefghijkl...z", MicaState::Offline)
    );
}
