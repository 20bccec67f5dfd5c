//! A stand-in for `micad`, the Mica daemon, for tests on machines without Mica.
//!
//! It speaks micad's wire protocol (reference/mica.md) on unix sockets in a
//! directory of the test's choosing, with its own reading of the format: the
//! create message is decoded from a layout derived here from micad's C struct,
//! never with micrun-shim's decoder, so that the two check each other.
//!
//! ```text
//! <dir>/mica-create.socket  one recv of 1772 bytes ─► instance <name>: Offline
//! <dir>/<name>.socket       one recv of ≤ 32 bytes ─► start | stop | rm | status | set | gdb
//! start: the firmware file runs as a host process; its stdin/stdout are pipes to a
//!        bridge thread, which plays micad's rpmsg-tty service: firmware output
//!        goes to a pty master with micad's `\n` → `\r\n`, the pty's input goes
//!        back unchanged, and <tty dir>/ttyRPMSG_<sanitized name>_0 → /dev/pts/N.
//! ```
//!
//! Where micad's behaviour is not a fact of the reference, the choice is written
//! at the place it is made. One deliberate difference, a knob: micad leaves its
//! pty in the kernel's default cooked mode (echo on); the emulator makes it raw
//! unless [`Options::raw_tty`] is false, because with echo on a firmware that talks
//! first reads its own output back until someone opens the console raw.
//!
//! Knobs for failure tests: [`Fault`]s per operation (answer `MICA-FAILED` with a
//! text, never answer, die mid-exchange, or answer garbage), a delay before the console appears, and
//! [`MicadEmulator::stop`] / [`MicadEmulator::restart`] (micad dies or restarts
//! while the partitions keep running). Every request is recorded. Dropping the
//! emulator kills and reaps every firmware process and removes its sockets and
//! console links.

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// micad reads a control command with one `recv` into a zeroed buffer this big.
pub const CONTROL_BUF_LEN: usize = 32;
const SUCCESS: &str = "MICA-SUCCESS";
const FAILED: &str = "MICA-FAILED";
const CREATE_SOCKET: &str = "mica-create.socket";
/// How long the emulator waits for a client's request before giving up on it (micad
/// would wait forever; a test must not).
const REQUEST_WAIT: Duration = Duration::from_secs(2);

/// A member of micad's `struct create_msg`.
#[derive(Debug, Clone, Copy)]
enum Member {
    Chars(usize),
    Bool,
    I32,
}

/// micad's `struct create_msg`, member by member, in declaration order.
const CREATE_MSG: [(&str, Member); 14] = [
    ("name", Member::Chars(66)),
    ("path", Member::Chars(256)),
    ("ped", Member::Chars(16)),
    ("ped_cfg", Member::Chars(256)),
    ("debug", Member::Bool),
    ("cpu_str", Member::Chars(128)),
    ("vcpu_num", Member::I32),
    ("max_vcpu_num", Member::I32),
    ("cpu_weight", Member::I32),
    ("cpu_capacity", Member::I32),
    ("memory", Member::I32),
    ("max_memory", Member::I32),
    ("iomem", Member::Chars(512)),
    ("network", Member::Chars(512)),
];

/// `(member, offset, size)` for each member, laid out as a C compiler does:
/// every member at the next multiple of its alignment (4 for an i32).
pub fn create_msg_layout() -> Vec<(&'static str, usize, usize)> {
    let mut at: usize = 0;
    let mut out = Vec::new();
    for (name, member) in CREATE_MSG {
        let (size, align) = match member {
            Member::Chars(n) => (n, 1),
            Member::Bool => (1, 1),
            Member::I32 => (4, 4),
        };
        at = at.next_multiple_of(align);
        out.push((name, at, size));
        at += size;
    }
    out
}

/// `sizeof(struct create_msg)`: the end of the last member, rounded up to the
/// struct's alignment (4).
pub fn create_msg_size() -> usize {
    let (_, offset, size) = *create_msg_layout().last().expect("members");
    (offset + size).next_multiple_of(4)
}

/// A create message as the emulator read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateRequest {
    pub name: String,
    pub path: String,
    pub ped: String,
    pub ped_cfg: String,
    /// The raw C `bool` byte.
    pub debug: u8,
    pub cpu_str: String,
    pub vcpu_num: i32,
    pub max_vcpu_num: i32,
    pub cpu_weight: i32,
    pub cpu_capacity: i32,
    pub memory: i32,
    pub max_memory: i32,
    pub iomem: String,
    pub network: String,
    /// The byte between `cpu_str` and the integers.
    pub padding: Vec<u8>,
    /// String members with no NUL in their bytes (micad would read past them).
    pub unterminated: Vec<&'static str>,
}

impl CreateRequest {
    /// Decodes `buf` (exactly [`create_msg_size`] bytes) member by member.
    pub fn decode(buf: &[u8]) -> CreateRequest {
        assert_eq!(buf.len(), create_msg_size(), "a whole create message");
        let mut req = CreateRequest::default();
        let mut end_of_previous = 0;
        for (name, offset, size) in create_msg_layout() {
            req.padding.extend_from_slice(&buf[end_of_previous..offset]);
            end_of_previous = offset + size;
            let bytes = &buf[offset..offset + size];
            let text = || {
                let end = bytes.iter().position(|&b| b == 0);
                (
                    String::from_utf8_lossy(&bytes[..end.unwrap_or(size)]).into_owned(),
                    end.is_none(),
                )
            };
            let int = || i32::from_le_bytes(bytes.try_into().expect("4 bytes"));
            let string = |field: &mut String| {
                let (t, unterminated) = text();
                *field = t;
                unterminated.then_some(name)
            };
            let unterminated = match name {
                "name" => string(&mut req.name),
                "path" => string(&mut req.path),
                "ped" => string(&mut req.ped),
                "ped_cfg" => string(&mut req.ped_cfg),
                "cpu_str" => string(&mut req.cpu_str),
                "iomem" => string(&mut req.iomem),
                "network" => string(&mut req.network),
                "debug" => {
                    req.debug = bytes[0];
                    None
                }
                "vcpu_num" => {
                    req.vcpu_num = int();
                    None
                }
                "max_vcpu_num" => {
                    req.max_vcpu_num = int();
                    None
                }
                "cpu_weight" => {
                    req.cpu_weight = int();
                    None
                }
                "cpu_capacity" => {
                    req.cpu_capacity = int();
                    None
                }
                "memory" => {
                    req.memory = int();
                    None
                }
                "max_memory" => {
                    req.max_memory = int();
                    None
                }
                other => unreachable!("member {other}"),
            };
            req.unterminated.extend(unterminated);
        }
        req
    }
}

/// One exchange the emulator received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// On the create socket: the bytes of the single read, the bytes that followed
    /// in the same connection (micad never reads them), and the decoded message
    /// when the read had the full size.
    Create {
        bytes: Vec<u8>,
        extra: usize,
        decoded: Option<Box<CreateRequest>>,
    },
    /// On `<instance>.socket`: the bytes of the single read.
    Command { instance: String, bytes: Vec<u8> },
}

/// The operations a [`Fault`] can be attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Create,
    Start,
    Stop,
    Rm,
    Status,
    Set,
}

/// What to do instead of the operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer `<text>MICA-FAILED`.
    Fail(String),
    /// Read the request, then never answer (the connection stays open until the
    /// emulator is dropped).
    Hang,
    /// Read a control command (`start`, `stop`, `set …`, `status`; not create,
    /// not `rm`), keep it unanswered until [`MicadEmulator::release_held`], then
    /// carry it out and answer as without a fault.
    Hold,
    /// Read the request, then die: the connection closes unanswered and the
    /// emulator stops serving and removes its sockets, as a crashed micad leaves
    /// it ([`MicadEmulator::restart`] brings it back).
    Die,
    /// Answer these bytes (neither marker) and close the connection.
    Garbage(Vec<u8>),
}

/// How the emulator behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the console links go (micad: `/dev`).
    pub tty_dir: PathBuf,
    /// Arguments for the firmware process (e.g. `--raw` for `micrun-rtos-sim`).
    pub firmware_args: Vec<String>,
    /// How long after `start` the console appears (the firmware announcing its
    /// rpmsg-tty late).
    pub tty_delay: Duration,
    /// Make the pty raw at once (see the module doc); false keeps micad's cooked
    /// kernel default.
    pub raw_tty: bool,
    /// micad's `\n` → `\r\n` on the firmware's output.
    pub translate_newlines: bool,
    /// An `xl` (e.g. `fake-xl`'s wrapper): instances created with pedestal `xen`
    /// also get a Xen domain through it, as micad's libxl makes one: micad's
    /// `<name>-xen.cfg` (written here into the socket dir instead of `/etc/xen`),
    /// `xl create -p` at create, `xl unpause` at start, `xl destroy` at rm. The
    /// firmware the emulator runs and relays stays its own process.
    pub xl: Option<PathBuf>,
}

impl Options {
    pub fn new(tty_dir: impl Into<PathBuf>) -> Options {
        Options {
            tty_dir: tty_dir.into(),
            firmware_args: Vec::new(),
            tty_delay: Duration::ZERO,
            raw_tty: true,
            translate_newlines: true,
            xl: None,
        }
    }
}

/// An instance as the emulator holds it, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceView {
    pub create: CreateRequest,
    /// The state word `status` shows.
    pub state: &'static str,
    pub cpu_str: String,
    /// Every accepted `set`, in order: (lower-cased key, value).
    pub settings: Vec<(String, String)>,
    /// The firmware process while started.
    pub pid: Option<u32>,
    /// How the firmware process ended by itself, if it did (micad cannot tell: the
    /// state stays `Running`).
    pub exited: Option<ExitStatus>,
    /// The console link, once it exists.
    pub tty: Option<PathBuf>,
}

/// The micad stand-in. See the module doc.
#[derive(Debug)]
pub struct MicadEmulator {
    dir: PathBuf,
    shared: Arc<Mutex<State>>,
    server: Option<Server>,
}

#[derive(Debug)]
struct Server {
    thread: JoinHandle<()>,
    stop: Arc<AtomicBool>,
    wake: OwnedFd,
}

#[derive(Debug)]
struct State {
    dir: PathBuf,
    options: Options,
    faults: HashMap<Op, Fault>,
    requests: Vec<Request>,
    instances: BTreeMap<String, Instance>,
    /// Partitions left running when micad stopped or restarted.
    orphans: Vec<Partition>,
    /// Connections of hung exchanges.
    held: Vec<UnixStream>,
    /// Held commands ([`Fault::Hold`]): connection, instance, the bytes read.
    on_hold: Vec<(UnixStream, String, Vec<u8>)>,
    /// A [`Fault::Die`] took an exchange: the server loop ends.
    died: bool,
}

#[derive(Debug)]
struct Instance {
    create: CreateRequest,
    state: &'static str,
    cpu_str: String,
    settings: Vec<(String, String)>,
    partition: Option<Partition>,
}

/// A started firmware process and its console.
#[derive(Debug)]
struct Partition {
    child: Child,
    exited: Option<ExitStatus>,
    console: Option<Console>,
    /// The firmware's pipe ends once the console is gone (micad died): the
    /// partition keeps running, its output goes nowhere.
    kept_pipes: Option<(OwnedFd, OwnedFd)>,
    link: PathBuf,
    link_at: Instant,
    linked: bool,
}

/// micad's rpmsg-tty service for one partition: the pty and the bridge thread.
#[derive(Debug)]
struct Console {
    /// Kept open as micad does, so the master never sees EIO.
    _slave: std::fs::File,
    slave_path: PathBuf,
    bridge: Bridge,
}

impl MicadEmulator {
    /// Starts listening on `<dir>/mica-create.socket` (creating `dir`).
    pub fn start(dir: &Path, options: Options) -> io::Result<MicadEmulator> {
        std::fs::create_dir_all(dir)?;
        std::fs::create_dir_all(&options.tty_dir)?;
        let shared = Arc::new(Mutex::new(State {
            dir: dir.to_path_buf(),
            options,
            faults: HashMap::new(),
            requests: Vec::new(),
            instances: BTreeMap::new(),
            orphans: Vec::new(),
            held: Vec::new(),
            on_hold: Vec::new(),
            died: false,
        }));
        let mut emu = MicadEmulator {
            dir: dir.to_path_buf(),
            shared,
            server: None,
        };
        emu.listen()?;
        Ok(emu)
    }

    fn listen(&mut self) -> io::Result<()> {
        let path = self.dir.join(CREATE_SOCKET);
        // micad wipes its directory when it starts.
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        listener.set_nonblocking(true)?;
        let (wake_r, wake_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let shared = Arc::clone(&self.shared);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("micad-emulator".into())
                .spawn(move || serve(listener, path, shared, wake_r, stop))?
        };
        self.server = Some(Server {
            thread,
            stop,
            wake: wake_w,
        });
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn create_socket(&self) -> PathBuf {
        self.dir.join(CREATE_SOCKET)
    }

    /// Where the console of `name` is linked (whether or not it exists yet).
    pub fn tty_link(&self, name: &str) -> PathBuf {
        tty_link(&self.lock().options.tty_dir, name)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every exchange received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// The decoded create messages received so far.
    pub fn creates(&self) -> Vec<CreateRequest> {
        self.requests()
            .into_iter()
            .filter_map(|r| match r {
                Request::Create { decoded, .. } => decoded.map(|d| *d),
                Request::Command { .. } => None,
            })
            .collect()
    }

    pub fn instance(&self, name: &str) -> Option<InstanceView> {
        let mut st = self.lock();
        let inst = st.instances.get_mut(name)?;
        if let Some(p) = inst.partition.as_mut() {
            p.poll_exit();
        }
        Some(InstanceView {
            create: inst.create.clone(),
            state: inst.state,
            cpu_str: inst.cpu_str.clone(),
            settings: inst.settings.clone(),
            pid: inst.partition.as_ref().map(|p| p.child.id()),
            exited: inst.partition.as_ref().and_then(|p| p.exited),
            tty: inst
                .partition
                .as_ref()
                .filter(|p| p.linked)
                .map(|p| p.link.clone()),
        })
    }

    /// The pids of partitions left running by [`MicadEmulator::stop`] or
    /// [`MicadEmulator::restart`].
    pub fn orphan_pids(&self) -> Vec<u32> {
        self.lock().orphans.iter().map(|p| p.child.id()).collect()
    }

    /// Replaces `op` by `fault` (or restores it with `None`).
    pub fn set_fault(&self, op: Op, fault: Option<Fault>) {
        let mut st = self.lock();
        match fault {
            Some(f) => st.faults.insert(op, f),
            None => st.faults.remove(&op),
        };
    }

    /// Carries out and answers the commands a [`Fault::Hold`] kept; returns how
    /// many. (The fault stays set for later commands: clear it first.)
    pub fn release_held(&self) -> usize {
        let mut st = self.lock();
        let held = std::mem::take(&mut st.on_hold);
        let n = held.len();
        for (stream, name, bytes) in held {
            st.answer_command(stream, &name, &bytes);
        }
        n
    }

    /// The console delay for later starts.
    pub fn set_tty_delay(&self, delay: Duration) {
        self.lock().options.tty_delay = delay;
    }

    /// Whether it listens (not stopped).
    pub fn is_listening(&self) -> bool {
        self.server.is_some() && !self.lock().died
    }

    /// micad dies: its sockets go, the partitions keep running without their
    /// consoles (the ptys died with micad; the links are left dangling).
    pub fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop.store(true, Ordering::SeqCst);
            let _ = nix::unistd::write(&server.wake, b"x");
            let _ = server.thread.join();
        }
        let mut st = self.lock();
        let instances = std::mem::take(&mut st.instances);
        for (_, inst) in instances {
            if let Some(mut p) = inst.partition {
                p.drop_console();
                st.orphans.push(p);
            }
        }
        st.held.clear();
        st.on_hold.clear();
    }

    /// micad restarts: [`MicadEmulator::stop`], then listens again knowing no
    /// instance.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        self.lock().died = false;
        self.listen()
    }
}

impl Drop for MicadEmulator {
    fn drop(&mut self) {
        self.stop();
        let mut st = self.lock();
        for mut p in std::mem::take(&mut st.orphans) {
            p.end();
        }
    }
}

/// `<tty dir>/ttyRPMSG_<name>_0`, the name sanitized byte by byte as micad does.
fn tty_link(tty_dir: &Path, name: &str) -> PathBuf {
    let sanitized: String = name
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' => b as char,
            _ => '_',
        })
        .collect();
    tty_dir.join(format!("ttyRPMSG_{sanitized}_0"))
}

/// micad's Xen domain for `msg` (its `generate_xen_cfg`, then libxl's create,
/// paused): the config micad writes, then `xl create -p`.
fn xen_create(xl: &Path, dir: &Path, msg: &CreateRequest) -> Result<(), String> {
    let mut cfg = format!(
        "name = \"{}\"\nvcpus = {}\nmemory = {}\nkernel = \"{}\"\ngic_version = \"v3\"\nacpi = 0\n",
        msg.name, msg.vcpu_num, msg.memory, msg.ped_cfg
    );
    if msg.max_vcpu_num > 0 {
        cfg += &format!("maxvcpus = {}\n", msg.max_vcpu_num);
    }
    if msg.max_memory > 0 {
        cfg += &format!("maxmem = {}\n", msg.max_memory);
    }
    if !msg.cpu_str.is_empty() {
        cfg += &format!("cpus = \"{}\"\n", msg.cpu_str);
    }
    if msg.cpu_weight >= 0 {
        cfg += &format!("cpu_weight = {}\n", msg.cpu_weight);
    }
    if msg.cpu_capacity >= 0 {
        cfg += &format!("cap = {}\n", msg.cpu_capacity);
    }
    let path = dir.join(format!("{}-xen.cfg", msg.name));
    std::fs::write(&path, cfg).map_err(|e| format!("write {}: {e}", path.display()))?;
    run_xl(xl, &["create", "-p", &path.to_string_lossy()]).inspect_err(|_| {
        let _ = std::fs::remove_file(&path);
    })
}

/// Runs `xl args`; its stderr when it fails.
fn run_xl(xl: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new(xl)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", xl.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "xl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// printf's `%-<width>s`: left-aligned, padded with blanks to `width` bytes, never cut.
fn printf_left(s: &str, width: usize) -> String {
    let mut out = s.to_owned();
    while out.len() < width {
        out.push(' ');
    }
    out
}

/// The name micad shows in `status` (its `truncate_name_for_display` into a 32-byte
/// buffer): up to 31 bytes as it is, longer as the first 12 bytes, `...` and the last
/// byte.
fn shown_name(name: &str) -> String {
    let b = name.as_bytes();
    if b.len() > 31 {
        let mut s = b[..12].to_vec();
        s.extend_from_slice(b"...");
        s.push(b[b.len() - 1]);
        String::from_utf8_lossy(&s).into_owned()
    } else {
        name.to_owned()
    }
}

/// The event loop: the create listener, one listener per instance and the wake
/// pipe, like micad's epoll thread. Handles one connection at a time.
fn serve(
    create: UnixListener,
    create_path: PathBuf,
    shared: Arc<Mutex<State>>,
    wake: OwnedFd,
    stop: Arc<AtomicBool>,
) {
    let lock = || shared.lock().unwrap_or_else(|e| e.into_inner());
    // (instance name, its socket path, listener); the create socket has no name.
    let mut listeners: Vec<(Option<String>, PathBuf, UnixListener)> =
        vec![(None, create_path, create)];
    while !stop.load(Ordering::SeqCst) {
        let timeout = lock().next_link_due().map_or(PollTimeout::NONE, |due| {
            let ms = due.saturating_duration_since(Instant::now()).as_millis() + 1;
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
        });
        let ready: Vec<usize> = {
            let mut fds = vec![PollFd::new(wake.as_fd(), PollFlags::POLLIN)];
            fds.extend(
                listeners
                    .iter()
                    .map(|(_, _, l)| PollFd::new(l.as_fd(), PollFlags::POLLIN)),
            );
            match poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => panic!("micad emulator: poll: {e}"),
            }
            fds.iter()
                .enumerate()
                .filter(|(_, f)| f.revents().is_some_and(|r| !r.is_empty()))
                .map(|(i, _)| i)
                .collect()
        };
        let mut added = Vec::new();
        let mut removed = Vec::new();
        for i in ready {
            if i == 0 {
                let mut b = [0u8; 16];
                while matches!(nix::unistd::read(&wake, &mut b), Ok(1..)) {}
                continue;
            }
            let (name, _, listener) = &listeners[i - 1];
            let Ok((stream, _)) = listener.accept() else {
                continue;
            };
            // Accepted sockets inherit nothing from the listener on Linux, but say so.
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(REQUEST_WAIT));
            let mut st = lock();
            match name {
                None => added.extend(st.handle_create(stream)),
                Some(name) => {
                    if st.handle_command(stream, name) {
                        removed.push(name.clone());
                    }
                }
            }
        }
        for name in removed {
            listeners.retain(|(n, path, _)| {
                let keep = n.as_deref() != Some(&name);
                if !keep {
                    let _ = std::fs::remove_file(path);
                }
                keep
            });
        }
        listeners.extend(added.into_iter().map(|(n, p, l)| (Some(n), p, l)));
        if lock().died {
            break;
        }
        lock().make_due_links();
    }
    for (_, path, _) in listeners {
        let _ = std::fs::remove_file(path);
    }
}

/// Writes the reply as micad does: the text and the marker in separate sends.
fn reply(stream: &mut UnixStream, text: &str, ok: bool) {
    if !text.is_empty() {
        let _ = stream.write_all(text.as_bytes());
    }
    let _ = stream.write_all(if ok { SUCCESS } else { FAILED }.as_bytes());
}

impl State {
    fn next_link_due(&self) -> Option<Instant> {
        self.instances
            .values()
            .filter_map(|i| i.partition.as_ref())
            .filter(|p| !p.linked && p.console.is_some())
            .map(|p| p.link_at)
            .min()
    }

    fn make_due_links(&mut self) {
        let now = Instant::now();
        for p in self
            .instances
            .values_mut()
            .filter_map(|i| i.partition.as_mut())
        {
            if !p.linked && now >= p.link_at {
                p.make_link();
            }
        }
    }

    /// Applies the fault set for `op`, if any: answers `MICA-FAILED` with its
    /// text, or keeps the connection unanswered. True when a fault took the
    /// exchange (the caller must not answer).
    fn fault(&mut self, op: Op, stream: &mut UnixStream) -> bool {
        match self.faults.get(&op) {
            None => false,
            Some(Fault::Fail(text)) => {
                reply(stream, text, false);
                true
            }
            Some(Fault::Hold) => false,
            Some(Fault::Hang) => {
                if let Ok(held) = stream.try_clone() {
                    self.held.push(held);
                }
                true
            }
            Some(Fault::Die) => {
                let _ = stream.shutdown(std::net::Shutdown::Both);
                self.died = true;
                true
            }
            Some(Fault::Garbage(bytes)) => {
                let _ = stream.write_all(bytes);
                let _ = stream.shutdown(std::net::Shutdown::Both);
                true
            }
        }
    }

    /// A connection on the create socket; returns the new instance's listener.
    fn handle_create(&mut self, mut stream: UnixStream) -> Option<(String, PathBuf, UnixListener)> {
        let size = create_msg_size();
        let mut buf = vec![0u8; size];
        // One recv, as micad does: a message split over two sends is short.
        let n = stream.read(&mut buf).unwrap_or(0);
        buf.truncate(n);
        let mut extra = 0;
        if stream.set_nonblocking(true).is_ok() {
            let mut more = [0u8; 4096];
            while let Ok(k @ 1..) = stream.read(&mut more) {
                extra += k;
            }
            let _ = stream.set_nonblocking(false);
        }
        let decoded = (n == size).then(|| CreateRequest::decode(&buf));
        self.requests.push(Request::Create {
            bytes: buf,
            extra,
            decoded: decoded.clone().map(Box::new),
        });
        if self.fault(Op::Create, &mut stream) {
            return None;
        }
        let Some(msg) = decoded else {
            // micad would go on with whatever the buffer held; a test wants to know.
            reply(
                &mut stream,
                &format!("short create message: {n} of {size} bytes"),
                false,
            );
            return None;
        };
        if !msg.unterminated.is_empty() {
            reply(
                &mut stream,
                &format!("unterminated strings: {}", msg.unterminated.join(", ")),
                false,
            );
            return None;
        }
        // micad's checks, in micad's order, with micad's texts.
        if !Path::new(&msg.path).exists() {
            reply(&mut stream, &format!("No such file: {}", msg.path), false);
            return None;
        }
        if self.instances.contains_key(&msg.name) {
            reply(
                &mut stream,
                &format!("{} is already created", msg.name),
                false,
            );
            return None;
        }
        if msg.name.is_empty() || msg.name.contains('/') {
            reply(&mut stream, &format!("Invalid name: {}", msg.name), false);
            return None;
        }
        if let (Some(xl), "xen") = (&self.options.xl, msg.ped.as_str()) {
            if let Err(e) = xen_create(xl, &self.dir, &msg) {
                reply(&mut stream, &e, false);
                return None;
            }
        }
        let path = self.dir.join(format!("{}.socket", msg.name));
        let listener = match UnixListener::bind(&path).and_then(|l| {
            l.set_nonblocking(true)?;
            Ok(l)
        }) {
            Ok(l) => l,
            Err(e) => {
                reply(
                    &mut stream,
                    &format!("Failed to listen on {}: {e}", path.display()),
                    false,
                );
                return None;
            }
        };
        let name = msg.name.clone();
        self.instances.insert(
            name.clone(),
            Instance {
                state: "Offline",
                cpu_str: msg.cpu_str.clone(),
                settings: Vec::new(),
                partition: None,
                create: msg,
            },
        );
        reply(&mut stream, "", true);
        Some((name, path, listener))
    }

    /// A connection on `<name>.socket`; returns true when the instance was removed.
    fn handle_command(&mut self, mut stream: UnixStream, name: &str) -> bool {
        let mut buf = [0u8; CONTROL_BUF_LEN];
        let n = stream.read(&mut buf).unwrap_or(0);
        self.requests.push(Request::Command {
            instance: name.to_owned(),
            bytes: buf[..n].to_vec(),
        });
        let text = buf[..n].split(|&b| b == 0).next().unwrap_or_default();
        let op = match text {
            b"start" => Some(Op::Start),
            b"stop" => Some(Op::Stop),
            b"status" => Some(Op::Status),
            t if t.starts_with(b"set ") => Some(Op::Set),
            _ => None,
        };
        if op.is_some_and(|op| self.faults.get(&op) == Some(&Fault::Hold)) {
            self.on_hold
                .push((stream, name.to_owned(), buf[..n].to_vec()));
            return false;
        }
        self.answer_command(stream, name, &buf[..n])
    }

    /// Carries out a control command read from `stream` and answers it; true when
    /// the instance is gone (`rm`: the server removes its socket).
    fn answer_command(&mut self, mut stream: UnixStream, name: &str, read: &[u8]) -> bool {
        let mut buf = [0u8; CONTROL_BUF_LEN];
        buf[..read.len()].copy_from_slice(read);
        let Some(nul) = buf.iter().position(|&b| b == 0) else {
            // All 32 bytes used: micad's string functions would run past the buffer.
            reply(
                &mut stream,
                "command fills micad's 32-byte buffer without a terminating NUL",
                false,
            );
            return false;
        };
        let text = String::from_utf8_lossy(&buf[..nul]).into_owned();
        let op = match text.as_str() {
            "start" => Op::Start,
            "stop" => Op::Stop,
            "rm" => Op::Rm,
            "status" => Op::Status,
            t if t.starts_with("set ") => Op::Set,
            "gdb" => {
                let debug = self
                    .instances
                    .get(name)
                    .is_some_and(|i| i.create.debug != 0);
                if debug {
                    let path = &self.instances[name].create.path;
                    reply(&mut stream, &format!("gdb {path}"), true);
                } else {
                    reply(
                        &mut stream,
                        "The elf file does not support debugging\n",
                        false,
                    );
                }
                return false;
            }
            _ => {
                reply(&mut stream, &format!("Invalid command: {text}"), false);
                return false;
            }
        };
        if self.fault(op, &mut stream) {
            return false;
        }
        let options = self.options.clone();
        let Some(inst) = self.instances.get_mut(name) else {
            reply(&mut stream, &format!("{name} is not created"), false);
            return false;
        };
        let xl = options.xl.as_deref().filter(|_| inst.create.ped == "xen");
        match op {
            Op::Start => match inst
                .start(name, &options)
                .and_then(|()| xl.map_or(Ok(()), |xl| run_xl(xl, &["unpause", name])))
            {
                Ok(()) => reply(&mut stream, "", true),
                Err(e) => reply(&mut stream, &format!("Start failed: {e}"), false),
            },
            Op::Stop => {
                if let Some(mut p) = inst.partition.take() {
                    p.end();
                    inst.state = "Stopped";
                }
                reply(&mut stream, "", true);
            }
            Op::Rm => {
                if let Some(mut p) = inst.partition.take() {
                    p.end();
                }
                if let Some(xl) = xl {
                    let _ = run_xl(xl, &["destroy", name]);
                    let _ = std::fs::remove_file(self.dir.join(format!("{name}-xen.cfg")));
                }
                self.instances.remove(name);
                // As micad: the answer first, then the socket goes.
                reply(&mut stream, "", true);
                return true;
            }
            Op::Status => {
                let services = match &mut inst.partition {
                    Some(p) if p.linked => format!("rpmsg-tty({}) ", p.link.display()),
                    _ => String::new(),
                };
                let line = format!(
                    "{}{}{}{services}",
                    printf_left(&shown_name(name), 30),
                    printf_left(&inst.cpu_str, 20),
                    printf_left(inst.state, 20),
                );
                reply(&mut stream, &line, true);
            }
            Op::Set => match inst.set(&text) {
                Ok(()) => reply(&mut stream, "", true),
                Err(e) => reply(&mut stream, &e, false),
            },
            Op::Create => unreachable!("not a control command"),
        }
        false
    }
}

impl Instance {
    fn start(&mut self, name: &str, options: &Options) -> Result<(), String> {
        if self.partition.is_some() {
            return Err(format!("{name} is already running"));
        }
        let (master, slave, slave_path) =
            open_pty(options.raw_tty).map_err(|e| format!("pty: {e}"))?;
        let mut child = Command::new(&self.create.path)
            .args(&options.firmware_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.create.path))?;
        let pipes = child
            .stdin
            .take()
            .map(OwnedFd::from)
            .zip(child.stdout.take().map(OwnedFd::from));
        let bridge =
            pipes
                .ok_or_else(|| io::Error::other("no pipes"))
                .and_then(|(fw_in, fw_out)| {
                    Bridge::spawn(fw_in, fw_out, master, options.translate_newlines)
                });
        let bridge = match bridge {
            Ok(b) => b,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("console bridge: {e}"));
            }
        };
        let mut p = Partition {
            child,
            exited: None,
            console: Some(Console {
                _slave: slave,
                slave_path,
                bridge,
            }),
            kept_pipes: None,
            link: tty_link(&options.tty_dir, name),
            link_at: Instant::now() + options.tty_delay,
            linked: false,
        };
        if options.tty_delay.is_zero() {
            p.make_link();
        }
        self.partition = Some(p);
        self.state = "Running";
        Ok(())
    }

    /// `set <key> <value>`: keys matched lower-cased, as current micad does.
    fn set(&mut self, text: &str) -> Result<(), String> {
        let words: Vec<&str> = text.split(' ').filter(|w| !w.is_empty()).collect();
        let [_, key, value] = words[..] else {
            return Err(format!(
                "Invalid command: {text} (usage: set <key> <value>)"
            ));
        };
        let key = key.to_ascii_lowercase();
        match key.as_str() {
            "cpu" => self.cpu_str = value.to_owned(),
            "vcpu" | "cpucapacity" | "cpuweight" | "maxmemory" | "memory" => {
                if value
                    .parse::<u32>()
                    .ok()
                    .and_then(|v| i32::try_from(v).ok())
                    .is_none()
                {
                    return Err(format!("Invalid value {value} for {key}"));
                }
            }
            _ => {
                return Err(format!(
                "Invalid key: {key} (keys: vcpu, cpu, cpucapacity, cpuweight, maxmemory, memory)"
            ))
            }
        }
        self.settings.push((key, value.to_owned()));
        Ok(())
    }
}

impl Partition {
    fn make_link(&mut self) {
        let Some(console) = &self.console else {
            return;
        };
        // A stale link (from an earlier run) is replaced, as micad does.
        let _ = std::fs::remove_file(&self.link);
        match std::os::unix::fs::symlink(&console.slave_path, &self.link) {
            Ok(()) => self.linked = true,
            Err(e) => eprintln!("micad emulator: linking {}: {e}", self.link.display()),
        }
    }

    fn poll_exit(&mut self) {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
    }

    /// micad died: the console's pty and bridge go, the firmware keeps its pipes.
    fn drop_console(&mut self) {
        if let Some(console) = self.console.take() {
            self.kept_pipes = Some(console.bridge.stop());
        }
    }

    /// Stops the firmware: kills and reaps the process, removes the console.
    fn end(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
        self.drop_console();
        self.kept_pipes = None;
        if self.linked || self.link.symlink_metadata().is_ok() {
            let _ = std::fs::remove_file(&self.link);
            self.linked = false;
        }
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        // Idempotent: a partition is never left running or linked.
        self.end();
    }
}

/// A new pty: master (close-on-exec), its slave opened and kept, the slave's path.
fn open_pty(raw: bool) -> io::Result<(OwnedFd, std::fs::File, PathBuf)> {
    use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let slave_path = PathBuf::from(ptsname_r(&master)?);
    let master = OwnedFd::from(master);
    fcntl(&master, FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC))?;
    let slave = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&slave_path)?;
    if raw {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let mut t = tcgetattr(&slave)?;
        cfmakeraw(&mut t);
        tcsetattr(&slave, SetArg::TCSANOW, &t)?;
    }
    Ok((master, slave, slave_path))
}

/// The thread that plays micad's rpmsg-tty service: firmware output → pty master
/// (with the newline translation), pty master → firmware input.
#[derive(Debug)]
struct Bridge {
    stop: OwnedFd,
    thread: JoinHandle<(OwnedFd, OwnedFd)>,
}

impl Bridge {
    fn spawn(
        fw_in: OwnedFd,
        fw_out: OwnedFd,
        master: OwnedFd,
        translate: bool,
    ) -> io::Result<Bridge> {
        for fd in [&fw_in, &fw_out, &master] {
            let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
            fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        }
        let (stop_r, stop_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        let thread = std::thread::Builder::new()
            .name("micad-emulator-tty".into())
            .spawn(move || bridge(fw_in, fw_out, master, stop_r, translate))?;
        Ok(Bridge {
            stop: stop_w,
            thread,
        })
    }

    /// Stops the thread; returns the firmware's pipe ends (input, output).
    fn stop(self) -> (OwnedFd, OwnedFd) {
        let _ = nix::unistd::write(&self.stop, b"x");
        self.thread
            .join()
            .expect("the console bridge does not panic")
    }
}

fn bridge(
    fw_in: OwnedFd,
    fw_out: OwnedFd,
    master: OwnedFd,
    stop: OwnedFd,
    translate: bool,
) -> (OwnedFd, OwnedFd) {
    let mut to_tty: Vec<u8> = Vec::new();
    let mut to_fw: Vec<u8> = Vec::new();
    let mut fw_out_open = true;
    let mut fw_in_open = true;
    let mut master_open = true;
    let mut buf = [0u8; 4096];
    loop {
        let mut fds = vec![PollFd::new(stop.as_fd(), PollFlags::POLLIN)];
        let mut slot = |want: bool, fd, flags| {
            want.then(|| {
                fds.push(PollFd::new(fd, flags));
                fds.len() - 1
            })
        };
        let out_i = slot(
            fw_out_open && to_tty.is_empty(),
            fw_out.as_fd(),
            PollFlags::POLLIN,
        );
        let mut master_flags = PollFlags::empty();
        if master_open && to_fw.is_empty() && fw_in_open {
            master_flags |= PollFlags::POLLIN;
        }
        if master_open && !to_tty.is_empty() {
            master_flags |= PollFlags::POLLOUT;
        }
        let master_i = slot(!master_flags.is_empty(), master.as_fd(), master_flags);
        let in_i = slot(
            fw_in_open && !to_fw.is_empty(),
            fw_in.as_fd(),
            PollFlags::POLLOUT,
        );
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => panic!("micad emulator console: poll: {e}"),
        }
        let revents = |i: Option<usize>| {
            i.and_then(|i| fds[i].revents())
                .unwrap_or(PollFlags::empty())
        };
        if !revents(Some(0)).is_empty() {
            break;
        }
        let (out_r, master_r, in_r) = (revents(out_i), revents(master_i), revents(in_i));
        drop(fds);
        if !out_r.is_empty() {
            match nix::unistd::read(&fw_out, &mut buf) {
                Ok(0) => fw_out_open = false,
                Ok(n) => {
                    for &b in &buf[..n] {
                        if translate && b == b'\n' {
                            to_tty.push(b'\r');
                        }
                        to_tty.push(b);
                    }
                }
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(_) => fw_out_open = false,
            }
        }
        if master_r.contains(PollFlags::POLLOUT) {
            match nix::unistd::write(&master, &to_tty) {
                Ok(n) => {
                    to_tty.drain(..n);
                }
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(_) => master_open = false,
            }
        }
        if master_r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            && to_fw.is_empty()
        {
            match nix::unistd::read(&master, &mut buf) {
                Ok(0) => master_open = false,
                Ok(n) => to_fw.extend_from_slice(&buf[..n]),
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(_) => master_open = false,
            }
        }
        if !in_r.is_empty() {
            match nix::unistd::write(&fw_in, &to_fw) {
                Ok(n) => {
                    to_fw.drain(..n);
                }
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(_) => {
                    fw_in_open = false;
                    to_fw.clear();
                }
            }
        }
        if !master_open {
            to_tty.clear();
        }
    }
    (fw_in, fw_out)
}
