//! A stand-in for Linux remoteproc, for tests on machines without remote cores.
//!
//! [`FakeRemoteproc::start`] builds a sysfs tree under a root of the test's
//! choosing, laid out as the kernel's (Documentation/ABI/testing/sysfs-class-remoteproc):
//!
//! ```text
//! <root>/class/remoteproc/remoteproc<N>/name        the processor's name
//! <root>/class/remoteproc/remoteproc<N>/state       offline | running | crashed
//! <root>/class/remoteproc/remoteproc<N>/firmware    a file name in the firmware dir
//! <root>/module/firmware_class/parameters/path      the firmware dir
//! ```
//!
//! and a watcher thread that plays the kernel on it (a thread rather than a
//! process: it needs no protocol of its own to report what it saw, and the test
//! process reaps what it spawns). The watcher looks at the files every
//! [`TICK`]; a value that differs from what it last showed is a write (so a
//! write of the very value shown goes unseen):
//!
//! - `start` on `state`: the file named by `firmware` is looked up in the
//!   firmware dir (as the kernel's firmware loader does); missing → the boot
//!   fails and `state` stays `offline` ([`Event::BootFailed`]). Else the file
//!   is run as the firmware: in these tests it is an x86-64 build of
//!   `micrun-rtos-sim` ([`crate::sim_binary`]), so it can simply be executed (the
//!   watcher marks it executable; the kernel would load it into the core's
//!   memory instead). Its stdin and stdout are a pty's master; the processor's
//!   rpmsg tty path becomes a symlink to the pty's slave, made raw (no echo:
//!   the firmware must not read its own output back) and held open by the
//!   watcher, as the kernel keeps an rpmsg tty while the remote side is up.
//!   Then `state` shows `running`.
//! - `stop` on `state`: the firmware process is killed and reaped, the tty link
//!   removed, `state` shows `offline`. Also from `crashed`: mainline kernels
//!   refuse that with EINVAL, which the driver under test only logs; the
//!   stand-in accepts it, as kernels that allow stopping a crashed core do.
//! - the firmware process ending by itself: `state` shows `crashed` and the tty
//!   link goes, as when a remote core faults with the kernel's `recovery`
//!   disabled (with recovery enabled the kernel would reboot it by itself).
//! - `start` while running, `stop` while offline, any other word: refused
//!   (recorded as [`Event::Refused`] with the kernel's errno), the state word is
//!   put back.
//! - a write to `firmware` while not offline: refused (the kernel's EBUSY),
//!   the old name put back.
//!
//! The watcher replaces `state` and `firmware` by rename, so a reader never
//! sees a half-written word of its. What a regular file cannot give: a write
//! that fails with an errno, and a `state` that shows the result as soon as the
//! write returns; the driver under test therefore waits for `state` with a
//! deadline. Every write and event is recorded. Dropping the stand-in stops the
//! watcher, kills and reaps every firmware process, removes the tty links and
//! the whole tree.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the watcher looks at the tree.
pub const TICK: Duration = Duration::from_millis(2);

/// firmware_class's search path parameter, under the root.
pub const FIRMWARE_PATH_PARAM: &str = "module/firmware_class/parameters/path";

/// A write the watcher saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The processor's name.
    pub processor: String,
    /// `state` or `firmware`.
    pub attr: &'static str,
    /// The value, without surrounding blanks.
    pub value: String,
}

/// What the watcher did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `start` ran the firmware file as process `pid`.
    Booted {
        processor: String,
        firmware: PathBuf,
        pid: u32,
    },
    /// `start` could not run the firmware; `state` stayed `offline`.
    BootFailed { processor: String, why: String },
    /// `stop` ended the firmware (or cleared a crash).
    Stopped { processor: String },
    /// The firmware process ended by itself: `state` shows `crashed`.
    Crashed { processor: String, status: String },
    /// A write the kernel refuses, with its errno name.
    Refused {
        processor: String,
        write: String,
        errno: &'static str,
    },
}

/// The remoteproc stand-in. See the module doc.
#[derive(Debug)]
pub struct FakeRemoteproc {
    root: PathBuf,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    watcher: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    firmware_dir: PathBuf,
    /// Where the watcher stages files it swaps in by rename.
    scratch: PathBuf,
    processors: Vec<Processor>,
    writes: Vec<Write>,
    events: Vec<Event>,
}

#[derive(Debug)]
struct Processor {
    name: String,
    dir: PathBuf,
    tty: PathBuf,
    /// The state word the watcher shows.
    state: &'static str,
    /// The firmware name the watcher shows.
    firmware: String,
    running: Option<Firmware>,
}

/// A booted firmware: the process and the pty slave behind the tty link.
#[derive(Debug)]
struct Firmware {
    child: Child,
    _slave: File,
}

impl FakeRemoteproc {
    /// Builds the tree under `root` (which must not hold one yet) with one
    /// processor `remoteproc<i>` per `(name, rpmsg tty path)`, all `offline`,
    /// the firmware search path set to `firmware_dir` (created if missing), and
    /// starts the watcher.
    pub fn start(
        root: &Path,
        processors: &[(&str, &Path)],
        firmware_dir: &Path,
    ) -> io::Result<FakeRemoteproc> {
        let scratch = root.join(".fake");
        fs::create_dir_all(&scratch)?;
        fs::create_dir_all(firmware_dir)?;
        let param = root.join(FIRMWARE_PATH_PARAM);
        fs::create_dir_all(param.parent().expect("the parameter has a directory"))?;
        fs::write(&param, format!("{}\n", firmware_dir.display()))?;
        let mut procs = Vec::new();
        for (i, (name, tty)) in processors.iter().enumerate() {
            if let Some(parent) = tty.parent() {
                fs::create_dir_all(parent)?;
            }
            let dir = root.join(format!("class/remoteproc/remoteproc{i}"));
            fs::create_dir_all(&dir)?;
            fs::write(dir.join("name"), format!("{name}\n"))?;
            fs::write(dir.join("state"), "offline\n")?;
            // A kernel shows the driver's default firmware name until one is written.
            fs::write(dir.join("firmware"), format!("rproc-{name}-fw\n"))?;
            procs.push(Processor {
                name: (*name).to_owned(),
                dir,
                tty: tty.to_path_buf(),
                state: "offline",
                firmware: format!("rproc-{name}-fw"),
                running: None,
            });
        }
        let shared = Arc::new(Mutex::new(Shared {
            firmware_dir: firmware_dir.to_path_buf(),
            scratch,
            processors: procs,
            writes: Vec::new(),
            events: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let shared = Arc::clone(&shared);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("remoteproc-fake".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        lock(&shared).tick();
                        std::thread::sleep(TICK);
                    }
                })?
        };
        Ok(FakeRemoteproc {
            root: root.to_path_buf(),
            shared,
            stop,
            watcher: Some(watcher),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        lock(&self.shared)
    }

    /// The sysfs root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/class/remoteproc/<entry>` of processor `name`.
    pub fn processor_dir(&self, name: &str) -> PathBuf {
        self.with(name, |p| p.dir.clone())
    }

    /// The rpmsg tty path of processor `name` (a link while it runs).
    pub fn tty(&self, name: &str) -> PathBuf {
        self.with(name, |p| p.tty.clone())
    }

    /// What `state` of processor `name` reads now.
    pub fn state(&self, name: &str) -> String {
        let dir = self.processor_dir(name);
        fs::read_to_string(dir.join("state"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    }

    /// The pid of the firmware running on processor `name`.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.with(name, |p| p.running.as_ref().map(|f| f.child.id()))
    }

    /// Kills the firmware of processor `name` with SIGKILL, as a core that
    /// faults without a word; the watcher then shows `crashed`.
    pub fn fault(&self, name: &str) {
        if let Some(pid) = self.pid(name) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    /// Every write seen so far, in order.
    pub fn writes(&self) -> Vec<Write> {
        self.lock().writes.clone()
    }

    /// Every event so far, in order.
    pub fn events(&self) -> Vec<Event> {
        self.lock().events.clone()
    }

    fn with<T>(&self, name: &str, f: impl FnOnce(&Processor) -> T) -> T {
        let st = self.lock();
        let p = st
            .processors
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("the fake has no processor {name:?}"));
        f(p)
    }
}

impl Drop for FakeRemoteproc {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
        let mut st = self.lock();
        for p in &mut st.processors {
            p.end();
        }
        drop(st);
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn tick(&mut self) {
        for i in 0..self.processors.len() {
            self.firmware_write(i);
            self.state_write(i);
            self.watch_firmware(i);
        }
    }

    /// A new name in `firmware`.
    fn firmware_write(&mut self, i: usize) {
        let p = &self.processors[i];
        let Some(value) = read_word(&p.dir.join("firmware")) else {
            return;
        };
        if value == p.firmware {
            return;
        }
        let name = p.name.clone();
        self.writes.push(Write {
            processor: name.clone(),
            attr: "firmware",
            value: value.clone(),
        });
        if self.processors[i].state == "offline" {
            self.processors[i].firmware = value;
        } else {
            self.events.push(Event::Refused {
                processor: name,
                write: format!("firmware {value}"),
                errno: "EBUSY",
            });
        }
        let shown = format!("{}\n", self.processors[i].firmware);
        self.show(i, "firmware", &shown);
    }

    /// A command in `state`.
    fn state_write(&mut self, i: usize) {
        let p = &self.processors[i];
        let Some(value) = read_word(&p.dir.join("state")) else {
            return;
        };
        if value == p.state {
            return;
        }
        let name = p.name.clone();
        self.writes.push(Write {
            processor: name.clone(),
            attr: "state",
            value: value.clone(),
        });
        let refuse = |errno| Event::Refused {
            processor: name.clone(),
            write: format!("state {value}"),
            errno,
        };
        let state = self.processors[i].state;
        match (value.as_str(), state) {
            ("start", "running") => self.events.push(refuse("EBUSY")),
            ("start", _) => self.boot(i),
            ("stop", "running" | "crashed") => {
                self.processors[i].end();
                self.processors[i].state = "offline";
                self.events.push(Event::Stopped { processor: name });
            }
            _ => self.events.push(refuse("EINVAL")),
        }
        let shown = format!("{}\n", self.processors[i].state);
        self.show(i, "state", &shown);
    }

    /// Runs the firmware named by `firmware`, as `start` does.
    fn boot(&mut self, i: usize) {
        let p = &mut self.processors[i];
        let file = self.firmware_dir.join(&p.firmware);
        match run_firmware(&file, &p.tty) {
            Ok(fw) => {
                self.events.push(Event::Booted {
                    processor: p.name.clone(),
                    firmware: file,
                    pid: fw.child.id(),
                });
                p.running = Some(fw);
                p.state = "running";
            }
            Err(why) => self.events.push(Event::BootFailed {
                processor: p.name.clone(),
                why,
            }),
        }
    }

    /// Notices the firmware ending by itself.
    fn watch_firmware(&mut self, i: usize) {
        let p = &mut self.processors[i];
        let Some(fw) = p.running.as_mut() else {
            return;
        };
        let Ok(Some(status)) = fw.child.try_wait() else {
            return;
        };
        p.end();
        p.state = "crashed";
        self.events.push(Event::Crashed {
            processor: p.name.clone(),
            status: status.to_string(),
        });
        self.show(i, "state", "crashed\n");
    }

    /// Replaces attribute `attr` of processor `i` by `text`, by rename.
    fn show(&self, i: usize, attr: &str, text: &str) {
        let p = &self.processors[i];
        let staged = self.scratch.join(format!("{}-{attr}", p.name));
        if let Err(e) =
            fs::write(&staged, text).and_then(|()| fs::rename(&staged, p.dir.join(attr)))
        {
            eprintln!("remoteproc fake: showing {attr} of {}: {e}", p.name);
        }
    }
}

impl Processor {
    /// Kills and reaps the firmware and removes its tty link.
    fn end(&mut self) {
        if let Some(mut fw) = self.running.take() {
            let _ = fw.child.kill();
            let _ = fw.child.wait();
        }
        if self.tty.symlink_metadata().is_ok() {
            let _ = fs::remove_file(&self.tty);
        }
    }
}

/// The trimmed contents of `path`; `None` when empty or unreadable (a write
/// caught between its truncation and its bytes).
fn read_word(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let word = text.trim();
    (!word.is_empty()).then(|| word.to_owned())
}

/// Runs `file` behind a raw pty and links `tty` to the pty's slave.
fn run_firmware(file: &Path, tty: &Path) -> Result<Firmware, String> {
    let meta = fs::metadata(file).map_err(|e| format!("{}: {e}", file.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a file", file.display()));
    }
    // The stand-in executes the image (see the module doc).
    fs::set_permissions(file, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod {}: {e}", file.display()))?;
    let (master, slave, slave_path) = open_pty().map_err(|e| format!("pty: {e}"))?;
    let stdin = master.try_clone().map_err(|e| format!("dup: {e}"))?;
    let child = Command::new(file)
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(master))
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("running {}: {e}", file.display()))?;
    let mut fw = Firmware {
        child,
        _slave: slave,
    };
    // A stale link (an earlier boot) is replaced, as the kernel reuses the name.
    let _ = fs::remove_file(tty);
    if let Err(e) = std::os::unix::fs::symlink(&slave_path, tty) {
        let _ = fw.child.kill();
        let _ = fw.child.wait();
        return Err(format!("linking {}: {e}", tty.display()));
    }
    Ok(fw)
}

/// A new pty: the master, its slave opened (raw) and kept, the slave's path.
fn open_pty() -> io::Result<(OwnedFd, File, PathBuf)> {
    use nix::fcntl::OFlag;
    use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
    use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let slave_path = PathBuf::from(ptsname_r(&master)?);
    let slave = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(&slave_path)?;
    let mut t = tcgetattr(&slave)?;
    cfmakeraw(&mut t);
    tcsetattr(&slave, SetArg::TCSANOW, &t)?;
    Ok((OwnedFd::from(master), slave, slave_path))
}
