//! The wire layer of the `micad` driver: micad's create message, its control
//! commands and replies, and a blocking client (reference/mica.md, "micad wire
//! protocol").
//!
//! ```text
//! MicadClient::create(&CreateMsg) ─► <dir>/mica-create.socket  1772 packed bytes
//!                                 ◄─ [text] MICA-SUCCESS | MICA-FAILED
//! MicadClient::command(id, &cmd)  ─► <dir>/<id>.socket          start | stop | rm | status |
//!                                                               set <key> <value>  (≤ 31 bytes)
//!                                 ◄─ [text] MICA-SUCCESS | MICA-FAILED
//! console: <tty dir>/ttyRPMSG_<sanitized id>_0 ─► /dev/pts/N, once the RTOS announces it
//! ```
//!
//! One connection per exchange, as micad expects; each exchange (connect, send,
//! read the reply) has one deadline, [`DEFAULT_TIMEOUT`] unless configured. Every
//! outside input (names, paths, values, replies) is checked: nothing is truncated
//! to fit, and a reply micad did not finish is an error, never a success.
//!
//! Two facts about micad's console the engine must handle (read from micad's
//! `rpmsg_pty.c`): micad turns every `\n` the RTOS sends into `\r\n` before it
//! reaches the pty ([`NewlineRestorer`] undoes that for binary agent frames), and it
//! leaves the pty in the kernel's default cooked mode, echo on, until a reader
//! changes it ([`open_tty`] makes it raw).

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};

use crate::resources::Resources;

/// Where micad keeps its sockets.
pub const DEFAULT_DIR: &str = "/run/mica";
/// The socket that takes create messages, in micad's directory.
pub const CREATE_SOCKET: &str = "mica-create.socket";
/// Where micad (built with `RPMSG_TTY_USE_CLIENT_NAME`) links the consoles.
pub const DEFAULT_TTY_DIR: &str = "/dev";
/// How long one exchange with micad may take (the Go MicRun's client timeout).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often [`wait_for_tty`] looks for the console (as the Go shim does).
pub const TTY_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Size of micad's `struct create_msg`.
pub const CREATE_MSG_LEN: usize = 1772;
/// micad reads a control command with one `recv` into a zeroed 32-byte buffer and
/// then treats it as a C string: the command must leave its last byte NUL.
pub const COMMAND_MAX_LEN: usize = 31;

/// The end of a reply that succeeded.
pub const SUCCESS_MARKER: &str = "MICA-SUCCESS";
/// The end of a reply that failed; the text before it says why.
pub const FAILED_MARKER: &str = "MICA-FAILED";

/// Column widths of micad's status line, `printf("%-30s%-20s%-20s%s")`.
const STATUS_NAME_WIDTH: usize = 30;
const STATUS_CPU_WIDTH: usize = 20;
const STATUS_STATE_WIDTH: usize = 20;
/// micad copies the name into a 32-byte buffer before printing it
/// (`truncate_name_for_display` in its socket_listener.c): a name of up to 31 bytes
/// is shown whole (a 31-byte one fills the 30-byte column and touches the CPU list),
/// a longer one as its first 12 bytes, `...` and its last byte.
const STATUS_NAME_SHOWN_MAX: usize = 31;
const STATUS_NAME_HEAD: usize = 12;

/// The longest reply read: micad's replies are a few hundred bytes (its status
/// buffer is 512); more is not micad.
const MAX_REPLY_LEN: usize = 64 * 1024;
/// The longest status line parsed.
const MAX_STATUS_LEN: usize = 4096;

/// The largest unix socket path (`sun_path` holds 108 bytes with the NUL).
const SUN_PATH_MAX: usize = 107;

/// A fixed-size, NUL-padded string field of the create message.
#[derive(Debug, Clone, Copy)]
struct StrField {
    name: &'static str,
    offset: usize,
    size: usize,
}

// The offsets and sizes of reference/mica.md, written out rather than derived, so
// that the tests (which derive them from the C struct) check this table.
const NAME: StrField = StrField {
    name: "name",
    offset: 0,
    size: 66,
};
const PATH: StrField = StrField {
    name: "path",
    offset: 66,
    size: 256,
};
const PED: StrField = StrField {
    name: "ped",
    offset: 322,
    size: 16,
};
const PED_CFG: StrField = StrField {
    name: "ped_cfg",
    offset: 338,
    size: 256,
};
const DEBUG_OFFSET: usize = 594;
const CPU_STR: StrField = StrField {
    name: "cpu_str",
    offset: 595,
    size: 128,
};
/// One byte of padding at 723 aligns the integers; it is sent as 0.
const INTS_OFFSET: usize = 724;
/// `vcpu_num, max_vcpu_num, cpu_weight, cpu_capacity, memory, max_memory`.
const INT_NAMES: [&str; 6] = [
    "vcpu_num",
    "max_vcpu_num",
    "cpu_weight",
    "cpu_capacity",
    "memory",
    "max_memory",
];
const IOMEM: StrField = StrField {
    name: "iomem",
    offset: 748,
    size: 512,
};
const NETWORK: StrField = StrField {
    name: "network",
    offset: 1260,
    size: 512,
};

const _: () = assert!(INTS_OFFSET + 4 * INT_NAMES.len() == IOMEM.offset);
const _: () = assert!(NETWORK.offset + NETWORK.size == CREATE_MSG_LEN);

/// What can go wrong talking to micad. Each message names the thing and, where
/// there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum MicadError {
    /// A string does not fit its field of the create message.
    #[error("micad's create message holds at most {max} bytes of {field} (a {size}-byte field with its terminating NUL) but the value is {len} bytes; shorten it")]
    FieldTooLong {
        field: &'static str,
        size: usize,
        max: usize,
        len: usize,
    },
    /// A string holds a NUL byte, which would cut it short in micad.
    #[error("{field} for micad contains a NUL byte at offset {at} (of {len}); micad would read only the part before it")]
    FieldHasNul {
        field: &'static str,
        at: usize,
        len: usize,
    },
    /// A path is not UTF-8 (the message carries text).
    #[error("{field} {path:?} is not valid UTF-8, which micad's create message cannot carry")]
    NotUtf8 { field: &'static str, path: PathBuf },
    /// A number does not fit micad's i32 fields.
    #[error(
        "{field} = {value} does not fit micad's 32-bit signed field (at most {})",
        i32::MAX
    )]
    IntOutOfRange { field: &'static str, value: u64 },
    /// The name cannot name a micad instance (its socket file).
    #[error("{name:?} cannot name a micad instance: {why}")]
    InvalidName { name: String, why: &'static str },
    /// A control command is longer than micad reads.
    #[error("micad command {command:?} is {len} bytes but micad reads at most {max} (a 32-byte buffer that must keep a terminating NUL)")]
    CommandTooLong {
        command: String,
        len: usize,
        max: usize,
    },
    /// A control command is malformed.
    #[error("invalid micad command {command:?}: {why}")]
    InvalidCommand { command: String, why: &'static str },
    /// A socket path is too long for a unix socket address.
    #[error("micad socket path {path:?} is {len} bytes, longer than a unix socket address holds ({SUN_PATH_MAX}); use a shorter micad directory or container id")]
    SocketPathTooLong { path: PathBuf, len: usize },
    /// micad does not run (or does not listen).
    #[error("micad is not running: {path:?} {why}; start it with `systemctl start micad` (or run `micad` as root)")]
    NotRunning { path: PathBuf, why: &'static str },
    /// micad runs but has no such instance.
    #[error("micad has no instance {id:?}: {path:?} {why}")]
    NoInstance {
        id: String,
        path: PathBuf,
        why: &'static str,
    },
    /// micad did not finish the exchange in time.
    #[error("micad did not answer on {socket:?} within the timeout of {timeout:?} ({stage}); check micad with `systemctl status micad`")]
    Timeout {
        socket: PathBuf,
        timeout: Duration,
        stage: &'static str,
    },
    /// An I/O error other than the above.
    #[error("talking to micad on {socket:?} ({stage}): {source}")]
    Io {
        socket: PathBuf,
        stage: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// micad ended the reply without `MICA-SUCCESS` or `MICA-FAILED`.
    #[error("micad closed the connection on {socket:?} before answering {SUCCESS_MARKER} or {FAILED_MARKER} (it sent {received:?})")]
    Closed { socket: PathBuf, received: String },
    /// The peer sent far more than any micad reply.
    #[error("the reply on {socket:?} passed {max} bytes without {SUCCESS_MARKER} or {FAILED_MARKER}: that is not micad")]
    ReplyTooLong { socket: PathBuf, max: usize },
    /// micad answered `MICA-FAILED`.
    #[error("micad refused `{request}` on {socket:?}: {message}")]
    Failed {
        socket: PathBuf,
        request: String,
        message: String,
    },
    /// A status reply does not have micad's layout.
    #[error("micad's status reply {reply:?} is not `<name> <cpus> <state> <services>` in micad's columns: {why}")]
    BadStatus { reply: String, why: String },
    /// A status reply is about another instance.
    #[error("micad answered the status of {shown:?} on the socket of {id:?}")]
    StatusOfOther { id: String, shown: String },
    /// A create message read back does not hold what micad's struct holds.
    #[error("not a micad create message: {why}")]
    Decode { why: String },
    /// The console did not appear.
    #[error("the console of micad instance {id:?} did not appear within {waited:?} (looked for {candidates:?}); is micad built with RPMSG_TTY_USE_CLIENT_NAME, and does the firmware start its rpmsg-tty?")]
    NoTty {
        id: String,
        candidates: Vec<PathBuf>,
        waited: Duration,
    },
    /// The console exists but cannot be opened as a terminal.
    #[error("opening the console {path:?}: {source}")]
    Tty {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
}

/// micad's `struct create_msg`: what a partition is made of. Strings are sent
/// NUL-padded; integers little-endian.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateMsg {
    /// The instance name: the container id.
    pub name: String,
    /// The firmware file, as micad (on this host) sees it.
    pub path: String,
    /// The pedestal: `xen`, `baremetal`, ...
    pub ped: String,
    /// Pedestal config (Xen: the boot image).
    pub ped_cfg: String,
    pub debug: bool,
    /// Allowed physical CPUs (`1-3,5`); empty = any.
    pub cpu_str: String,
    pub vcpu_num: i32,
    pub max_vcpu_num: i32,
    pub cpu_weight: i32,
    /// CPU cap in percent of one CPU; 0 = uncapped.
    pub cpu_capacity: i32,
    /// MiB.
    pub memory: i32,
    /// MiB.
    pub max_memory: i32,
    pub iomem: String,
    pub network: String,
}

impl CreateMsg {
    /// The create message for container `id` running `firmware` on `pedestal`
    /// with `resources`. An uncapped CPU is capacity 0 and "any CPU" is an empty
    /// `cpu_str`, which is what micad's Xen config writer leaves out.
    pub fn for_container(
        id: &str,
        firmware: &Path,
        pedestal: &str,
        ped_cfg: Option<&Path>,
        debug: bool,
        resources: &Resources,
    ) -> Result<CreateMsg, MicadError> {
        let utf8 = |field: &'static str, path: &Path| {
            path.to_str()
                .map(str::to_owned)
                .ok_or_else(|| MicadError::NotUtf8 {
                    field,
                    path: path.to_path_buf(),
                })
        };
        let int = |field: &'static str, value: u32| {
            i32::try_from(value).map_err(|_| MicadError::IntOutOfRange {
                field,
                value: u64::from(value),
            })
        };
        let msg = CreateMsg {
            name: id.to_owned(),
            path: utf8(PATH.name, firmware)?,
            ped: pedestal.to_owned(),
            ped_cfg: ped_cfg
                .map(|p| utf8(PED_CFG.name, p))
                .transpose()?
                .unwrap_or_default(),
            debug,
            cpu_str: resources.cpu_str.clone().unwrap_or_default(),
            vcpu_num: int("vcpu_num", resources.vcpus)?,
            max_vcpu_num: int("max_vcpu_num", resources.max_vcpus)?,
            cpu_weight: int("cpu_weight", resources.cpu_weight)?,
            cpu_capacity: int("cpu_capacity", resources.cpu_cap_percent.unwrap_or(0))?,
            memory: int("memory", resources.memory_mib)?,
            max_memory: int("max_memory", resources.max_memory_mib)?,
            iomem: String::new(),
            network: String::new(),
        };
        // Fail now, not at send time.
        msg.encode()?;
        Ok(msg)
    }

    fn ints(&self) -> [i32; 6] {
        [
            self.vcpu_num,
            self.max_vcpu_num,
            self.cpu_weight,
            self.cpu_capacity,
            self.memory,
            self.max_memory,
        ]
    }

    fn strings(&self) -> [(StrField, &str); 7] {
        [
            (NAME, &self.name),
            (PATH, &self.path),
            (PED, &self.ped),
            (PED_CFG, &self.ped_cfg),
            (CPU_STR, &self.cpu_str),
            (IOMEM, &self.iomem),
            (NETWORK, &self.network),
        ]
    }

    /// The 1772 bytes micad receives. Fails, naming the field, when a string does
    /// not fit with its terminating NUL or holds a NUL, or the name cannot name an
    /// instance.
    pub fn encode(&self) -> Result<[u8; CREATE_MSG_LEN], MicadError> {
        check_instance_name(&self.name)?;
        let mut buf = [0u8; CREATE_MSG_LEN];
        for (field, value) in self.strings() {
            check_str(field.name, value, field.size)?;
            buf[field.offset..field.offset + value.len()].copy_from_slice(value.as_bytes());
        }
        buf[DEBUG_OFFSET] = u8::from(self.debug);
        for (i, value) in self.ints().into_iter().enumerate() {
            let at = INTS_OFFSET + 4 * i;
            buf[at..at + 4].copy_from_slice(&value.to_le_bytes());
        }
        Ok(buf)
    }

    /// Reads a create message back: exactly [`CREATE_MSG_LEN`] bytes, every string
    /// NUL-terminated within its field and UTF-8, `debug` 0 or 1.
    pub fn decode(bytes: &[u8]) -> Result<CreateMsg, MicadError> {
        if bytes.len() != CREATE_MSG_LEN {
            return Err(MicadError::Decode {
                why: format!("{} bytes, expected {CREATE_MSG_LEN}", bytes.len()),
            });
        }
        let text = |field: StrField| -> Result<String, MicadError> {
            let raw = &bytes[field.offset..field.offset + field.size];
            let end = raw
                .iter()
                .position(|&b| b == 0)
                .ok_or_else(|| MicadError::Decode {
                    why: format!(
                        "{} (bytes {}..{}) has no terminating NUL",
                        field.name,
                        field.offset,
                        field.offset + field.size
                    ),
                })?;
            String::from_utf8(raw[..end].to_vec()).map_err(|_| MicadError::Decode {
                why: format!("{} is not UTF-8", field.name),
            })
        };
        let debug = match bytes[DEBUG_OFFSET] {
            0 => false,
            1 => true,
            other => {
                return Err(MicadError::Decode {
                    why: format!("debug (byte {DEBUG_OFFSET}) is {other}, not a C bool"),
                })
            }
        };
        let int = |i: usize| {
            let at = INTS_OFFSET + 4 * i;
            i32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        Ok(CreateMsg {
            name: text(NAME)?,
            path: text(PATH)?,
            ped: text(PED)?,
            ped_cfg: text(PED_CFG)?,
            debug,
            cpu_str: text(CPU_STR)?,
            vcpu_num: int(0),
            max_vcpu_num: int(1),
            cpu_weight: int(2),
            cpu_capacity: int(3),
            memory: int(4),
            max_memory: int(5),
            iomem: text(IOMEM)?,
            network: text(NETWORK)?,
        })
    }
}

/// Checks that `value` fits a `size`-byte C string field with its NUL.
fn check_str(field: &'static str, value: &str, size: usize) -> Result<(), MicadError> {
    if let Some(at) = value.bytes().position(|b| b == 0) {
        return Err(MicadError::FieldHasNul {
            field,
            at,
            len: value.len(),
        });
    }
    if value.len() >= size {
        return Err(MicadError::FieldTooLong {
            field,
            size,
            max: size - 1,
            len: value.len(),
        });
    }
    Ok(())
}

/// Checks that `name` can name a micad instance: it fits the create message's
/// name field and makes a socket file name (`<name>.socket`).
pub fn check_instance_name(name: &str) -> Result<(), MicadError> {
    check_str(NAME.name, name, NAME.size)?;
    let why = if name.is_empty() {
        "it is empty"
    } else if name.contains('/') {
        "it contains '/', and micad makes <name>.socket of it"
    } else if name == "." || name == ".." {
        "it is a directory name"
    } else if name == "mica-create" {
        "micad's own create socket has that name"
    } else {
        return Ok(());
    };
    Err(MicadError::InvalidName {
        name: name.to_owned(),
        why,
    })
}

/// The keys of `set`, as current micad matches them (lower-cased).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetKey {
    Vcpu,
    Cpu,
    CpuCapacity,
    CpuWeight,
    MaxMemory,
    Memory,
}

impl SetKey {
    pub const ALL: [SetKey; 6] = [
        SetKey::Vcpu,
        SetKey::Cpu,
        SetKey::CpuCapacity,
        SetKey::CpuWeight,
        SetKey::MaxMemory,
        SetKey::Memory,
    ];

    /// The key on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            SetKey::Vcpu => "vcpu",
            SetKey::Cpu => "cpu",
            SetKey::CpuCapacity => "cpucapacity",
            SetKey::CpuWeight => "cpuweight",
            SetKey::MaxMemory => "maxmemory",
            SetKey::Memory => "memory",
        }
    }
}

impl std::fmt::Display for SetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A command on an instance's control socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Start,
    Stop,
    /// Removes the instance (stopping it first) and its socket.
    Rm,
    Status,
    Set {
        key: SetKey,
        value: String,
    },
}

impl Command {
    /// `set <key> <value>`.
    pub fn set(key: SetKey, value: impl std::fmt::Display) -> Command {
        Command::Set {
            key,
            value: value.to_string(),
        }
    }

    /// The bytes sent: the command text, no NUL (micad's buffer is zeroed). Fails
    /// for a `set` value that is empty or holds blanks or NULs, and for a command
    /// longer than [`COMMAND_MAX_LEN`].
    pub fn encode(&self) -> Result<Vec<u8>, MicadError> {
        let text = self.to_string();
        if let Command::Set { value, .. } = self {
            let why = if value.is_empty() {
                Some("the value is empty")
            } else if value.bytes().any(|b| b == 0 || b.is_ascii_whitespace()) {
                Some("the value holds a blank or NUL, and micad splits the command at blanks")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(MicadError::InvalidCommand { command: text, why });
            }
        }
        if text.len() > COMMAND_MAX_LEN {
            return Err(MicadError::CommandTooLong {
                len: text.len(),
                command: text,
                max: COMMAND_MAX_LEN,
            });
        }
        Ok(text.into_bytes())
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Start => f.write_str("start"),
            Command::Stop => f.write_str("stop"),
            Command::Rm => f.write_str("rm"),
            Command::Status => f.write_str("status"),
            Command::Set { key, value } => write!(f, "set {key} {value}"),
        }
    }
}

/// A complete micad reply: the text before the marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Success(String),
    Failed(String),
}

impl Reply {
    /// Parses a whole reply. `None` when it does not end with a marker: micad
    /// closed the connection before finishing. Trailing NULs and line ends after
    /// the marker are tolerated (micad sends none).
    pub fn parse(bytes: &[u8]) -> Option<Reply> {
        let end = bytes
            .iter()
            .rposition(|&b| !matches!(b, 0 | b'\n' | b'\r'))
            .map_or(0, |i| i + 1);
        let bytes = &bytes[..end];
        let text = |marker: &str| {
            String::from_utf8_lossy(&bytes[..bytes.len() - marker.len()]).into_owned()
        };
        if bytes.ends_with(SUCCESS_MARKER.as_bytes()) {
            Some(Reply::Success(text(SUCCESS_MARKER)))
        } else if bytes.ends_with(FAILED_MARKER.as_bytes()) {
            Some(Reply::Failed(text(FAILED_MARKER)))
        } else {
            None
        }
    }

    /// Whether `bytes` end exactly with a marker (the reply is complete without
    /// waiting for the end of the connection).
    fn complete(bytes: &[u8]) -> bool {
        bytes.ends_with(SUCCESS_MARKER.as_bytes()) || bytes.ends_with(FAILED_MARKER.as_bytes())
    }
}

/// A partition's state as micad names it (OpenAMP's remoteproc states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MicaState {
    Offline,
    Configured,
    Ready,
    Running,
    Suspended,
    Error,
    Stopped,
}

impl MicaState {
    pub const ALL: [MicaState; 7] = [
        MicaState::Offline,
        MicaState::Configured,
        MicaState::Ready,
        MicaState::Running,
        MicaState::Suspended,
        MicaState::Error,
        MicaState::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MicaState::Offline => "Offline",
            MicaState::Configured => "Configured",
            MicaState::Ready => "Ready",
            MicaState::Running => "Running",
            MicaState::Suspended => "Suspended",
            MicaState::Error => "Error",
            MicaState::Stopped => "Stopped",
        }
    }

    /// The state word exactly as micad prints it.
    pub fn from_word(word: &str) -> Option<MicaState> {
        MicaState::ALL.into_iter().find(|s| s.as_str() == word)
    }
}

impl std::fmt::Display for MicaState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One instance's line of micad's `status` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The name as shown: names longer than 31 bytes are shortened (see
    /// [`status_name`]).
    pub name: String,
    pub cpu_str: String,
    pub state: MicaState,
    /// The services column, trimmed, e.g. `rpmsg-tty(/dev/ttyRPMSG_x_0)`.
    pub services: String,
}

/// The name micad shows in `status` for instance `name`: itself when it has at most
/// 31 bytes, else its first 12 bytes, `...` and its last byte.
pub fn status_name(name: &str) -> String {
    let bytes = name.as_bytes();
    if bytes.len() <= STATUS_NAME_SHOWN_MAX {
        return name.to_owned();
    }
    let mut shown = bytes[..STATUS_NAME_HEAD].to_vec();
    shown.extend_from_slice(b"...");
    shown.push(bytes[bytes.len() - 1]);
    String::from_utf8_lossy(&shown).into_owned()
}

impl Status {
    /// Parses the text of a `status` reply (before `MICA-SUCCESS`): the name in a
    /// 30-byte column, the CPUs in a 20-byte column (a longer CPU list pushes the
    /// rest right, as printf does), the state in a 20-byte column, then the
    /// services. A 31-byte name (which micad shows whole, touching the CPU list)
    /// is told apart only by [`Status::parse_of`], which knows the name to expect.
    pub fn parse(text: &str) -> Result<Status, MicadError> {
        Self::parse_columns(text, None)
    }

    /// Parses the `status` reply of instance `id`: as [`Status::parse`], but when the
    /// line starts with the name micad shows for `id` and that name overflows the
    /// name column, the columns after it start where the name ends, as micad's
    /// printf puts them.
    pub fn parse_of(text: &str, id: &str) -> Result<Status, MicadError> {
        let shown = status_name(id);
        let overflow = shown.len() > STATUS_NAME_WIDTH && text.starts_with(&shown);
        Self::parse_columns(text, overflow.then_some(shown.len()))
    }

    fn parse_columns(text: &str, name_end: Option<usize>) -> Result<Status, MicadError> {
        let bad = |why: String| MicadError::BadStatus {
            reply: preview(text),
            why,
        };
        let line = text.trim_end_matches(['\n', '\r', '\0']);
        if line.len() > MAX_STATUS_LEN {
            return Err(bad(format!("longer than {MAX_STATUS_LEN} bytes")));
        }
        if line.contains('\n') {
            return Err(bad("more than one line".into()));
        }
        let name_width = name_end.unwrap_or(STATUS_NAME_WIDTH);
        let name = line
            .get(..name_width)
            .ok_or_else(|| {
                bad(format!(
                    "shorter than the {STATUS_NAME_WIDTH}-byte name column"
                ))
            })?
            .trim_end();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(bad(format!(
                "no single name in the first {STATUS_NAME_WIDTH} bytes"
            )));
        }
        let rest = &line[name_width..];
        // The state starts where the CPU column ends: at 20, or later when the CPU
        // list (which has no blanks) overflows it. Past 20 the CPU list is all of
        // `rest[..at]`, so `at` can go no further than the first blank, and every
        // such `at` has the same next space ending its state word: one pass over
        // the line (rescanning each prefix made a long reply cost quadratic time).
        let first_blank = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let space_from = |from: usize| {
            let bytes = rest.as_bytes();
            bytes[from.min(bytes.len())..]
                .iter()
                .position(|&b| b == b' ')
                .map_or(bytes.len(), |i| from + i)
        };
        let word_end_past = space_from(first_blank.max(STATUS_CPU_WIDTH));
        let mut found = None;
        for at in STATUS_CPU_WIDTH..=rest.len() {
            if at > STATUS_CPU_WIDTH && at > first_blank {
                break;
            }
            if !rest.is_char_boundary(at) {
                continue;
            }
            let (cpu_str, end) = if at == STATUS_CPU_WIDTH {
                let cpus = rest[..at].trim_end_matches(' ');
                if cpus.contains(char::is_whitespace) {
                    break;
                }
                (cpus, space_from(at))
            } else {
                (&rest[..at], word_end_past)
            };
            // A state word is at most 10 bytes: a longer one cannot match.
            if end - at <= 10 {
                if let Some(state) = MicaState::from_word(&rest[at..end]) {
                    found = Some((cpu_str, state, &rest[at..]));
                    break;
                }
            }
        }
        let Some((cpu_str, state, tail)) = found else {
            let word = rest
                .get(STATUS_CPU_WIDTH..)
                .and_then(|t| t.split_whitespace().next())
                .unwrap_or("");
            return Err(bad(format!(
                "unknown state {word:?} (micad's states: {})",
                MicaState::ALL.map(MicaState::as_str).join(", ")
            )));
        };
        let padding = tail
            .get(state.as_str().len()..STATUS_STATE_WIDTH.min(tail.len()))
            .unwrap_or("");
        if padding.bytes().any(|b| b != b' ') {
            return Err(bad(format!(
                "the state column is not {STATUS_STATE_WIDTH} bytes wide"
            )));
        }
        let services = tail.get(STATUS_STATE_WIDTH..).unwrap_or("").trim();
        Ok(Status {
            name: name.to_owned(),
            cpu_str: cpu_str.to_owned(),
            state,
            services: services.to_owned(),
        })
    }

    /// Whether this is the status of instance `id` (micad may have shortened it).
    pub fn is_of(&self, id: &str) -> bool {
        self.name == status_name(id)
    }

    /// The services, one per blank-separated entry.
    pub fn service_entries(&self) -> impl Iterator<Item = &str> {
        self.services.split_whitespace()
    }

    /// The console micad reports, from `rpmsg-tty(<path>)`.
    pub fn tty(&self) -> Option<PathBuf> {
        self.service_entries().find_map(|entry| {
            let path = entry.strip_prefix("rpmsg-tty")?;
            // `rpmsg-tty` may carry a suffix (`rpmsg-tty0`): skip to the parenthesis.
            let path = &path[path.find('(')? + 1..];
            Some(PathBuf::from(path.strip_suffix(')')?))
        })
    }
}

/// Whether micad runs: its create socket exists in `dir`.
pub fn is_running(dir: &Path) -> bool {
    dir.join(CREATE_SOCKET).symlink_metadata().is_ok()
}

/// A blocking micad client: one connection per exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MicadClient {
    /// micad's socket directory ([`DEFAULT_DIR`]).
    pub dir: PathBuf,
    /// How long one exchange (connect, send, read the reply) may take.
    pub timeout: Duration,
}

impl Default for MicadClient {
    fn default() -> Self {
        MicadClient::new(DEFAULT_DIR)
    }
}

impl MicadClient {
    pub fn new(dir: impl Into<PathBuf>) -> MicadClient {
        MicadClient {
            dir: dir.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> MicadClient {
        self.timeout = timeout;
        self
    }

    pub fn create_socket(&self) -> PathBuf {
        self.dir.join(CREATE_SOCKET)
    }

    pub fn instance_socket(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.socket"))
    }

    /// Creates instance `msg.name`; returns micad's text before `MICA-SUCCESS`.
    /// The message is checked before anything is sent.
    pub fn create(&self, msg: &CreateMsg) -> Result<String, MicadError> {
        let bytes = msg.encode()?;
        let socket = self.create_socket();
        self.exchange(&socket, &bytes, &format!("create {}", msg.name), None)
    }

    /// Sends `command` to instance `id`; returns micad's text before
    /// `MICA-SUCCESS`. The id and command are checked before anything is sent.
    pub fn command(&self, id: &str, command: &Command) -> Result<String, MicadError> {
        check_instance_name(id)?;
        let bytes = command.encode()?;
        let socket = self.instance_socket(id);
        self.exchange(&socket, &bytes, &command.to_string(), Some(id))
    }

    /// The status of instance `id`.
    pub fn status(&self, id: &str) -> Result<Status, MicadError> {
        let text = self.command(id, &Command::Status)?;
        let status = Status::parse_of(&text, id)?;
        if !status.is_of(id) {
            return Err(MicadError::StatusOfOther {
                id: id.to_owned(),
                shown: status.name,
            });
        }
        Ok(status)
    }

    fn exchange(
        &self,
        socket: &Path,
        request: &[u8],
        what: &str,
        instance: Option<&str>,
    ) -> Result<String, MicadError> {
        let deadline = Instant::now() + self.timeout;
        let stream = self.connect(socket, deadline, instance)?;
        let timeout = |stage| MicadError::Timeout {
            socket: socket.to_path_buf(),
            timeout: self.timeout,
            stage,
        };
        let io = |stage, source| MicadError::Io {
            socket: socket.to_path_buf(),
            stage,
            source,
        };
        let closed = |received: &[u8]| MicadError::Closed {
            socket: socket.to_path_buf(),
            received: preview(&String::from_utf8_lossy(received)),
        };

        let mut rest = request;
        while !rest.is_empty() {
            let left = remaining(deadline).ok_or_else(|| timeout("sending the request"))?;
            stream
                .set_write_timeout(Some(left))
                .map_err(|e| io("sending the request", e))?;
            // MSG_NOSIGNAL: a micad that went away must not kill the caller
            // (libmicrun runs in C programs that keep SIGPIPE's default).
            match socket::send(stream.as_raw_fd(), rest, MsgFlags::MSG_NOSIGNAL) {
                Ok(n) => rest = &rest[n..],
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return Err(timeout("sending the request")),
                Err(Errno::EPIPE | Errno::ECONNRESET) => return Err(closed(b"")),
                Err(e) => return Err(io("sending the request", e.into())),
            }
        }
        // Nothing more will come; micad reads once anyway.
        let _ = stream.shutdown(std::net::Shutdown::Write);

        let mut reply = Vec::new();
        let mut chunk = [0u8; 1024];
        let mut reader = &stream;
        loop {
            let left = remaining(deadline).ok_or_else(|| timeout("waiting for the reply"))?;
            stream
                .set_read_timeout(Some(left))
                .map_err(|e| io("reading the reply", e))?;
            match reader.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    reply.extend_from_slice(&chunk[..n]);
                    if Reply::complete(&reply) {
                        break;
                    }
                    if reply.len() > MAX_REPLY_LEN {
                        return Err(MicadError::ReplyTooLong {
                            socket: socket.to_path_buf(),
                            max: MAX_REPLY_LEN,
                        });
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(timeout("waiting for the reply"))
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => return Err(io("reading the reply", e)),
            }
        }
        match Reply::parse(&reply) {
            Some(Reply::Success(text)) => Ok(text),
            Some(Reply::Failed(text)) => {
                let text = text.trim_matches(|c: char| c.is_whitespace() || c == '\0');
                Err(MicadError::Failed {
                    socket: socket.to_path_buf(),
                    request: what.to_owned(),
                    message: if text.is_empty() {
                        "(micad gave no reason)".to_owned()
                    } else {
                        text.to_owned()
                    },
                })
            }
            None => Err(closed(&reply)),
        }
    }

    /// Connects within the deadline. A unix connect fails with EAGAIN only while
    /// the listener's backlog is full (micad busy): that is retried until the
    /// deadline.
    fn connect(
        &self,
        path: &Path,
        deadline: Instant,
        instance: Option<&str>,
    ) -> Result<UnixStream, MicadError> {
        let len = path.as_os_str().len();
        if len > SUN_PATH_MAX {
            return Err(MicadError::SocketPathTooLong {
                path: path.to_path_buf(),
                len,
            });
        }
        let io = |source: std::io::Error| MicadError::Io {
            socket: path.to_path_buf(),
            stage: "connecting",
            source,
        };
        let addr = UnixAddr::new(path).map_err(|e| io(e.into()))?;
        let fd: OwnedFd = socket::socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map_err(|e| io(e.into()))?;
        loop {
            match socket::connect(fd.as_raw_fd(), &addr) {
                Ok(()) => break,
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => match remaining(deadline) {
                    Some(left) => std::thread::sleep(left.min(Duration::from_millis(10))),
                    None => {
                        return Err(MicadError::Timeout {
                            socket: path.to_path_buf(),
                            timeout: self.timeout,
                            stage: "connecting; its listen backlog is full",
                        })
                    }
                },
                Err(e @ (Errno::ENOENT | Errno::ECONNREFUSED)) => {
                    return Err(self.unreachable(path, e == Errno::ENOENT, instance))
                }
                Err(e) => return Err(io(e.into())),
            }
        }
        let stream = UnixStream::from(fd);
        stream.set_nonblocking(false).map_err(io)?;
        Ok(stream)
    }

    /// Why `path` cannot be reached: micad is down, or it lacks the instance.
    fn unreachable(&self, path: &Path, missing: bool, instance: Option<&str>) -> MicadError {
        let why = if missing {
            "does not exist"
        } else {
            "exists but nothing accepts connections on it (left behind by a micad that exited?)"
        };
        match instance {
            Some(id) if is_running(&self.dir) => MicadError::NoInstance {
                id: id.to_owned(),
                path: path.to_path_buf(),
                why,
            },
            Some(_) => MicadError::NotRunning {
                path: self.create_socket(),
                why: "does not exist",
            },
            None => MicadError::NotRunning {
                path: path.to_path_buf(),
                why,
            },
        }
    }
}

/// At most the first 300 bytes of `text` for an error message, marked when cut.
fn preview(text: &str) -> String {
    const MAX: usize = 300;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], text.len())
}

fn remaining(deadline: Instant) -> Option<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    (!left.is_zero()).then_some(left)
}

/// The console name micad derives from an instance name: every byte outside
/// `[A-Za-z0-9_-]` becomes `_` (byte by byte, as micad's C loop does).
pub fn sanitize_tty_name(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
                char::from(b)
            } else {
                '_'
            }
        })
        .collect()
}

/// Where micad may link the console of instance `id`: `ttyRPMSG_<sanitized>_0`
/// in each of `dirs` (micad's first console of an instance has index 0).
pub fn tty_candidates(dirs: &[impl AsRef<Path>], id: &str) -> Vec<PathBuf> {
    let file = format!("ttyRPMSG_{}_0", sanitize_tty_name(id));
    dirs.iter().map(|d| d.as_ref().join(&file)).collect()
}

/// The first candidate console that exists now (a link to a pty that exists).
pub fn find_tty(dirs: &[impl AsRef<Path>], id: &str) -> Option<PathBuf> {
    tty_candidates(dirs, id).into_iter().find(|p| p.exists())
}

/// Waits up to `timeout` for the console of `id` to appear: micad makes it only
/// once the firmware announces its rpmsg-tty, which can be late.
pub fn wait_for_tty(
    dirs: &[impl AsRef<Path>],
    id: &str,
    timeout: Duration,
) -> Result<PathBuf, MicadError> {
    let start = Instant::now();
    loop {
        if let Some(path) = find_tty(dirs, id) {
            return Ok(path);
        }
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(MicadError::NoTty {
                id: id.to_owned(),
                candidates: tty_candidates(dirs, id),
                waited,
            });
        }
        std::thread::sleep(TTY_POLL_INTERVAL.min(timeout - waited));
    }
}

/// Opens a micad console as a byte link: `O_RDWR|O_NOCTTY|O_NONBLOCK`, and raw
/// (no echo, no line editing, no CR/LF mapping, no output processing). micad
/// leaves the pty in the kernel's default cooked mode, where every byte the
/// firmware sends would be echoed back to it.
pub fn open_tty(path: &Path) -> Result<OwnedFd, MicadError> {
    use nix::fcntl::{open, OFlag};
    use nix::sys::stat::Mode;
    use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, OutputFlags, SetArg};
    let err = |source| MicadError::Tty {
        path: path.to_path_buf(),
        source,
    };
    let fd = open(
        path,
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(err)?;
    let mut t = tcgetattr(fd.as_fd()).map_err(err)?;
    cfmakeraw(&mut t);
    t.output_flags
        .remove(OutputFlags::OPOST | OutputFlags::ONLCR);
    tcsetattr(fd.as_fd(), SetArg::TCSANOW, &t).map_err(err)?;
    Ok(fd)
}

/// Undoes micad's console translation of the firmware's output: micad writes
/// `\r\n` for every `\n`, so exactly one `\r` right before each `\n` is dropped.
/// A `\r` at the end of one chunk is held until the next shows what follows it.
#[derive(Debug, Default, Clone)]
pub struct NewlineRestorer {
    held_cr: bool,
}

impl NewlineRestorer {
    pub fn new() -> NewlineRestorer {
        NewlineRestorer::default()
    }

    /// Appends the restored bytes of `input` to `out`.
    pub fn restore(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &b in input {
            if self.held_cr {
                self.held_cr = false;
                if b != b'\n' {
                    out.push(b'\r');
                }
            }
            if b == b'\r' {
                self.held_cr = true;
            } else {
                out.push(b);
            }
        }
    }

    /// The held `\r`, if the stream ended after it.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.held_cr) {
            out.push(b'\r');
        }
    }
}

/// micad's translation of the firmware's output (what [`NewlineRestorer`] undoes).
pub fn micad_translate_newlines(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    for &b in input {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CreateMsg {
        CreateMsg {
            name: "rtos-1".into(),
            path: "/fw/zephyr.elf".into(),
            ped: "xen".into(),
            ped_cfg: "/fw/image.bin".into(),
            debug: true,
            cpu_str: "1-3,5".into(),
            vcpu_num: 4,
            max_vcpu_num: 8,
            cpu_weight: 256,
            cpu_capacity: 150,
            memory: 64,
            max_memory: 64,
            iomem: "0x1000".into(),
            network: "br0".into(),
        }
    }

    /// Bytes `at..at + text.len()` hold `text`, and the rest of the field up to
    /// `end` is NUL.
    fn assert_str_at(buf: &[u8], at: usize, end: usize, text: &str) {
        assert_eq!(&buf[at..at + text.len()], text.as_bytes(), "text at {at}");
        assert!(
            buf[at + text.len()..end].iter().all(|&b| b == 0),
            "NUL padding {}..{end}",
            at + text.len()
        );
    }

    #[test]
    fn encode_puts_every_field_at_micads_offset() {
        let buf = sample().encode().unwrap();
        assert_eq!(buf.len(), 1772);
        assert_str_at(&buf, 0, 66, "rtos-1");
        assert_str_at(&buf, 66, 322, "/fw/zephyr.elf");
        assert_str_at(&buf, 322, 338, "xen");
        assert_str_at(&buf, 338, 594, "/fw/image.bin");
        assert_eq!(buf[594], 1);
        assert_str_at(&buf, 595, 723, "1-3,5");
        assert_eq!(buf[723], 0, "padding byte");
        // vcpu_num 4, max_vcpu_num 8, cpu_weight 256, cpu_capacity 150, memory 64,
        // max_memory 64: little-endian, written out by hand.
        assert_eq!(
            &buf[724..748],
            &[4, 0, 0, 0, 8, 0, 0, 0, 0, 1, 0, 0, 150, 0, 0, 0, 64, 0, 0, 0, 64, 0, 0, 0]
        );
        assert_str_at(&buf, 748, 1260, "0x1000");
        assert_str_at(&buf, 1260, 1772, "br0");
    }

    #[test]
    fn integers_are_little_endian_signed() {
        let msg = CreateMsg {
            vcpu_num: -1,
            max_vcpu_num: i32::MAX,
            cpu_weight: 0x0102_0304,
            cpu_capacity: i32::MIN,
            memory: 0,
            max_memory: 65536,
            ..sample()
        };
        let buf = msg.encode().unwrap();
        assert_eq!(&buf[724..728], &[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(&buf[728..732], &[0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(&buf[732..736], &[0x04, 0x03, 0x02, 0x01]);
        assert_eq!(&buf[736..740], &[0, 0, 0, 0x80]);
        assert_eq!(&buf[740..744], &[0, 0, 0, 0]);
        assert_eq!(&buf[744..748], &[0, 0, 1, 0]);
        assert_eq!(CreateMsg::decode(&buf).unwrap(), msg);
    }

    #[test]
    fn debug_false_is_a_zero_byte() {
        let buf = CreateMsg {
            debug: false,
            ..sample()
        }
        .encode()
        .unwrap();
        assert_eq!(buf[594], 0);
    }

    /// Each string field takes its size minus one byte, and refuses one more.
    #[test]
    fn every_string_limit_is_the_field_size_minus_the_nul() {
        type Set = fn(&mut CreateMsg, String);
        let cases: [(&str, usize, usize, Set); 7] = [
            ("name", 0, 66, |m, v| m.name = v),
            ("path", 66, 256, |m, v| m.path = v),
            ("ped", 322, 16, |m, v| m.ped = v),
            ("ped_cfg", 338, 256, |m, v| m.ped_cfg = v),
            ("cpu_str", 595, 128, |m, v| m.cpu_str = v),
            ("iomem", 748, 512, |m, v| m.iomem = v),
            ("network", 1260, 512, |m, v| m.network = v),
        ];
        for (field, offset, size, set) in cases {
            let mut msg = sample();
            set(&mut msg, "x".repeat(size - 1));
            let buf = msg.encode().unwrap_or_else(|e| panic!("{field}: {e}"));
            assert!(buf[offset..offset + size - 1].iter().all(|&b| b == b'x'));
            assert_eq!(buf[offset + size - 1], 0, "{field}: the NUL stays");
            assert_eq!(CreateMsg::decode(&buf).unwrap(), msg, "{field}");

            let mut msg = sample();
            set(&mut msg, "x".repeat(size));
            match msg.encode() {
                Err(MicadError::FieldTooLong {
                    field: f,
                    size: s,
                    max,
                    len,
                }) => {
                    assert_eq!((f, s, max, len), (field, size, size - 1, size));
                }
                other => panic!("{field}: {other:?}"),
            }
            let text = msg.encode().unwrap_err().to_string();
            assert!(
                text.contains(field) && text.contains(&(size - 1).to_string()),
                "{text}"
            );
            assert!(text.contains(&format!("{size} bytes;")), "{text}");
        }
    }

    #[test]
    fn a_nul_inside_a_string_is_refused() {
        let msg = CreateMsg {
            path: "/fw/a\0b.elf".into(),
            ..sample()
        };
        match msg.encode() {
            Err(MicadError::FieldHasNul { field, at, len }) => {
                assert_eq!((field, at, len), ("path", 5, 11))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn names_micad_cannot_use_are_refused() {
        for name in ["", "a/b", ".", "..", "mica-create"] {
            let msg = CreateMsg {
                name: name.into(),
                ..sample()
            };
            assert!(
                matches!(msg.encode(), Err(MicadError::InvalidName { .. })),
                "{name:?}"
            );
        }
        assert!(check_instance_name(&"n".repeat(65)).is_ok());
        assert!(matches!(
            check_instance_name(&"n".repeat(66)),
            Err(MicadError::FieldTooLong { len: 66, .. })
        ));
    }

    /// Found by the `micad` fuzz target: `decode` reads any name that is on the
    /// wire (micad's side of the socket), while `encode` refuses names micad
    /// cannot use, so a decoded message need not encode again.
    #[test]
    fn decode_reads_names_that_encode_refuses() {
        let mut buf = sample().encode().unwrap();
        buf[..4].copy_from_slice(b"a/b\0");
        let msg = CreateMsg::decode(&buf).unwrap();
        assert_eq!(msg.name, "a/b");
        assert!(matches!(msg.encode(), Err(MicadError::InvalidName { .. })));
    }

    #[test]
    fn decode_refuses_what_micad_would_misread() {
        let good = sample().encode().unwrap();
        assert!(matches!(
            CreateMsg::decode(&good[..1771]),
            Err(MicadError::Decode { .. })
        ));
        let mut long = good.to_vec();
        long.push(0);
        assert!(CreateMsg::decode(&long).is_err());
        let mut unterminated = good;
        unterminated[322..338].fill(b'p');
        let err = CreateMsg::decode(&unterminated).unwrap_err().to_string();
        assert!(err.contains("ped (bytes 322..338)"), "{err}");
        let mut bad_bool = good;
        bad_bool[594] = 2;
        assert!(CreateMsg::decode(&bad_bool)
            .unwrap_err()
            .to_string()
            .contains("debug"));
        let mut bad_utf8 = good;
        bad_utf8[0] = 0xff;
        assert!(CreateMsg::decode(&bad_utf8)
            .unwrap_err()
            .to_string()
            .contains("name is not UTF-8"));
    }

    fn resources() -> Resources {
        Resources {
            vcpus: 2,
            max_vcpus: 8,
            cpu_str: Some("1-2".into()),
            cpu_cap_percent: Some(150),
            cpu_weight: 512,
            memory_mib: 128,
            max_memory_mib: 128,
            dropped_cpus: vec![],
            ignored: vec![],
        }
    }

    #[test]
    fn for_container_maps_the_resources() {
        let msg = CreateMsg::for_container(
            "c1",
            Path::new("/b/rootfs/firmware.elf"),
            "xen",
            Some(Path::new("/b/rootfs/image.bin")),
            false,
            &resources(),
        )
        .unwrap();
        assert_eq!(
            msg,
            CreateMsg {
                name: "c1".into(),
                path: "/b/rootfs/firmware.elf".into(),
                ped: "xen".into(),
                ped_cfg: "/b/rootfs/image.bin".into(),
                debug: false,
                cpu_str: "1-2".into(),
                vcpu_num: 2,
                max_vcpu_num: 8,
                cpu_weight: 512,
                cpu_capacity: 150,
                memory: 128,
                max_memory: 128,
                iomem: String::new(),
                network: String::new(),
            }
        );
        let any = Resources {
            cpu_str: None,
            cpu_cap_percent: None,
            ..resources()
        };
        let msg =
            CreateMsg::for_container("c1", Path::new("/f"), "baremetal", None, true, &any).unwrap();
        assert_eq!((msg.cpu_str.as_str(), msg.cpu_capacity), ("", 0));
        assert_eq!((msg.ped_cfg.as_str(), msg.debug), ("", true));
    }

    #[test]
    fn for_container_refuses_what_does_not_fit() {
        let big = Resources {
            memory_mib: u32::MAX,
            ..resources()
        };
        let err =
            CreateMsg::for_container("c", Path::new("/f"), "xen", None, false, &big).unwrap_err();
        assert!(
            matches!(err, MicadError::IntOutOfRange { field: "memory", value } if value == u64::from(u32::MAX)),
            "{err}"
        );
        let long_path = PathBuf::from(format!("/{}", "p".repeat(255)));
        let err = CreateMsg::for_container("c", &long_path, "xen", None, false, &resources())
            .unwrap_err();
        assert!(matches!(
            err,
            MicadError::FieldTooLong {
                field: "path",
                len: 256,
                ..
            }
        ));
        use std::os::unix::ffi::OsStrExt;
        let not_utf8 = Path::new(std::ffi::OsStr::from_bytes(b"/f\xff"));
        let err =
            CreateMsg::for_container("c", not_utf8, "xen", None, false, &resources()).unwrap_err();
        assert!(matches!(err, MicadError::NotUtf8 { field: "path", .. }));
    }

    #[test]
    fn commands_on_the_wire() {
        assert_eq!(Command::Start.encode().unwrap(), b"start");
        assert_eq!(Command::Stop.encode().unwrap(), b"stop");
        assert_eq!(Command::Rm.encode().unwrap(), b"rm");
        assert_eq!(Command::Status.encode().unwrap(), b"status");
        let keys: Vec<&str> = SetKey::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "vcpu",
                "cpu",
                "cpucapacity",
                "cpuweight",
                "maxmemory",
                "memory"
            ]
        );
        assert_eq!(
            Command::set(SetKey::MaxMemory, 1024).encode().unwrap(),
            b"set maxmemory 1024"
        );
        assert_eq!(
            Command::set(SetKey::Cpu, "1-3,5").encode().unwrap(),
            b"set cpu 1-3,5"
        );
    }

    #[test]
    fn command_limit_is_31_bytes() {
        // "set cpu " is 8 bytes: a 23-byte value makes 31, a 24-byte one 32.
        let fits = Command::set(SetKey::Cpu, "1".repeat(23));
        assert_eq!(fits.encode().unwrap().len(), 31);
        match Command::set(SetKey::Cpu, "1".repeat(24)).encode() {
            Err(MicadError::CommandTooLong { len, max, .. }) => assert_eq!((len, max), (32, 31)),
            other => panic!("{other:?}"),
        }
        for value in ["", "1 2", "1\t2", "a\0"] {
            assert!(
                matches!(
                    Command::set(SetKey::Memory, value).encode(),
                    Err(MicadError::InvalidCommand { .. })
                ),
                "{value:?}"
            );
        }
    }

    #[test]
    fn replies() {
        assert_eq!(
            Reply::parse(b"MICA-SUCCESS"),
            Some(Reply::Success(String::new()))
        );
        assert_eq!(
            Reply::parse(b"some textMICA-SUCCESS"),
            Some(Reply::Success("some text".into()))
        );
        assert_eq!(
            Reply::parse(b"No such file: /x.elfMICA-FAILED"),
            Some(Reply::Failed("No such file: /x.elf".into()))
        );
        assert_eq!(
            Reply::parse(b"MICA-FAILED"),
            Some(Reply::Failed(String::new()))
        );
        // Tolerated after the marker.
        assert_eq!(
            Reply::parse(b"okMICA-SUCCESS\n\0"),
            Some(Reply::Success("ok".into()))
        );
        // Garbage, early EOF, a marker in the middle.
        for garbage in [
            &b""[..],
            b"MICA-SUCC",
            b"MICA-SUCCESS and more",
            b"MICA-FAILEDx",
            b"\xff\xfe",
            b"mica-success",
        ] {
            assert_eq!(Reply::parse(garbage), None, "{garbage:?}");
        }
        assert!(Reply::complete(b"xMICA-FAILED"));
        assert!(!Reply::complete(b"MICA-FAILED\n"));
    }

    /// micad's line for `name`, `cpus`, `state`, `services`, padded by hand.
    fn line(name: &str, cpus: &str, state: &str, services: &str) -> String {
        let pad = |s: &str, w: usize| format!("{s}{}", " ".repeat(w.saturating_sub(s.len())));
        format!(
            "{}{}{}{services}",
            pad(name, 30),
            pad(cpus, 20),
            pad(state, 20)
        )
    }

    #[test]
    fn status_of_every_state() {
        for state in MicaState::ALL {
            let text = line("rtos-1", "1-3,5", state.as_str(), "");
            let s = Status::parse(&text).unwrap();
            assert_eq!(s.state, state);
            assert_eq!((s.name.as_str(), s.cpu_str.as_str()), ("rtos-1", "1-3,5"));
            assert_eq!(s.services, "");
            assert_eq!(s.tty(), None);
        }
        let words: Vec<&str> = MicaState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            words,
            [
                "Offline",
                "Configured",
                "Ready",
                "Running",
                "Suspended",
                "Error",
                "Stopped"
            ]
        );
    }

    #[test]
    fn status_with_services() {
        let text = "rtos-1                        1                   Running             rpmsg-tty(/dev/ttyRPMSG_rtos-1_0) ";
        let s = Status::parse(text).unwrap();
        assert_eq!(s.state, MicaState::Running);
        assert_eq!(s.cpu_str, "1");
        assert_eq!(s.services, "rpmsg-tty(/dev/ttyRPMSG_rtos-1_0)");
        assert_eq!(s.tty(), Some(PathBuf::from("/dev/ttyRPMSG_rtos-1_0")));
        let two = line(
            "a",
            "0",
            "Running",
            "rpmsg-rpc rpmsg-tty(/dev/ttyRPMSG_a_0) ",
        );
        let s = Status::parse(&two).unwrap();
        assert_eq!(
            s.service_entries().collect::<Vec<_>>(),
            ["rpmsg-rpc", "rpmsg-tty(/dev/ttyRPMSG_a_0)"]
        );
        assert_eq!(s.tty(), Some(PathBuf::from("/dev/ttyRPMSG_a_0")));
    }

    #[test]
    fn status_edges_of_the_columns() {
        // A name of exactly 30 bytes runs into the CPU column; an empty CPU list.
        let name30 = "n".repeat(30);
        let s = Status::parse(&line(&name30, "", "Stopped", "")).unwrap();
        assert_eq!((s.name.as_str(), s.cpu_str.as_str()), (name30.as_str(), ""));
        assert_eq!(s.state, MicaState::Stopped);
        // A CPU list of exactly 20 bytes runs into the state; a longer one pushes it.
        let cpus20 = "0,2,4,6,8,10,12,14,1";
        assert_eq!(cpus20.len(), 20);
        let s = Status::parse(&line("a", cpus20, "Ready", "")).unwrap();
        assert_eq!((s.cpu_str.as_str(), s.state), (cpus20, MicaState::Ready));
        let cpus23 = "0,2,4,6,8,10,12,14,16,1";
        let s = Status::parse(&line("a", cpus23, "Running", "svc ")).unwrap();
        assert_eq!(
            (s.cpu_str.as_str(), s.state, s.services.as_str()),
            (cpus23, MicaState::Running, "svc")
        );
        // No trailing padding at all, and a trailing newline.
        let s = Status::parse(&format!("{}{}Error\n", "b".repeat(30), " ".repeat(20))).unwrap();
        assert_eq!(s.state, MicaState::Error);
    }

    #[test]
    fn status_name_is_shortened_like_micad() {
        assert_eq!(status_name("short"), "short");
        let name30 = "a".repeat(30);
        assert_eq!(status_name(&name30), name30);
        let id = "0123456789abcdefghijklmnopqrstuvwxyz"; // 36 bytes
        assert_eq!(status_name(id), "0123456789ab...z");
        let s = Status::parse(&line("0123456789ab...z", "1", "Running", "")).unwrap();
        assert!(s.is_of(id));
        assert!(!s.is_of("0123456789abXXXXXXXXXXXXXXXXXXXXXXXz0"));
        assert!(!s.is_of("0123456789ab...z0"));
        let s = Status::parse(&line("short", "1", "Running", "")).unwrap();
        assert!(s.is_of("short") && !s.is_of("shorter"));
    }

    /// micad shows a 31-byte name whole (its buffer holds 31 bytes and a NUL), so
    /// the name overflows the 30-byte column and touches the CPU list; 32 bytes and
    /// more are shortened.
    #[test]
    fn status_of_a_31_byte_name_overflows_the_column() {
        let id31 = "c".repeat(30) + "d";
        assert_eq!(status_name(&id31), id31);
        let id32 = "e".repeat(31) + "f";
        assert_eq!(status_name(&id32), "eeeeeeeeeeee...f");
        let text = line(&id31, "1-3", "Running", "rpmsg-tty(/dev/ttyRPMSG_x_0) ");
        assert!(text.starts_with(&format!("{id31}1-3 ")), "{text:?}");
        let s = Status::parse_of(&text, &id31).unwrap();
        assert_eq!(
            (s.name.as_str(), s.cpu_str.as_str(), s.state),
            (id31.as_str(), "1-3", MicaState::Running)
        );
        assert!(s.is_of(&id31));
        assert_eq!(s.tty(), Some(PathBuf::from("/dev/ttyRPMSG_x_0")));
        // With an empty CPU list the name is followed by the 20 blanks of that column.
        let s = Status::parse_of(&line(&id31, "", "Stopped", ""), &id31).unwrap();
        assert_eq!((s.cpu_str.as_str(), s.state), ("", MicaState::Stopped));
        // Shorter and shortened names parse the same with or without the id.
        for id in ["short", &"n".repeat(30), &id32] {
            let text = line(&status_name(id), "0", "Ready", "");
            assert_eq!(
                Status::parse_of(&text, id).unwrap(),
                Status::parse(&text).unwrap()
            );
        }
    }

    #[test]
    fn garbage_status_is_an_error_not_a_panic() {
        let cases = [
            String::new(),
            "rtos-1".into(),
            line("rtos-1", "1", "Sleeping", ""),
            line("rtos-1", "1", "running", ""),
            line("rtos-1", "1", "(null)", ""),
            line("rtos-1", "1 2", "Running", ""),
            line("", "1", "Running", ""),
            line("a b", "1", "Running", ""),
            format!(
                "{}\n{}",
                line("a", "1", "Running", ""),
                line("b", "1", "Running", "")
            ),
            format!("{}{}RunningX", "a".repeat(30), " ".repeat(20)),
            // Multi-byte characters across the column boundary.
            format!("{}é{}", "a".repeat(29), " ".repeat(40)),
            "\u{0}\u{0}".repeat(40),
        ];
        for text in &cases {
            let err = Status::parse(text).unwrap_err();
            assert!(
                matches!(err, MicadError::BadStatus { .. }),
                "{text:?}: {err}"
            );
        }
        let err = Status::parse(&line("rtos-1", "1", "Sleeping", ""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown state \"Sleeping\""), "{err}");
    }

    #[test]
    fn tty_names() {
        assert_eq!(sanitize_tty_name("abc-XYZ_09"), "abc-XYZ_09");
        assert_eq!(sanitize_tty_name("a.b:c/d e"), "a_b_c_d_e");
        // Byte by byte: a two-byte character becomes two underscores.
        assert_eq!(sanitize_tty_name("é"), "__");
        assert_eq!(
            tty_candidates(&["/dev", "/tmp/x"], "pod.1"),
            [
                PathBuf::from("/dev/ttyRPMSG_pod_1_0"),
                PathBuf::from("/tmp/x/ttyRPMSG_pod_1_0")
            ]
        );
    }

    #[test]
    fn newline_restorer_undoes_micads_translation() {
        let samples: [&[u8]; 6] = [
            b"plain",
            b"a\nb\n",
            b"\r\n\r\r\n\n\r",
            b"\r",
            b"\n\n\r\r",
            &[0, 0x0a, 0x0d, 0x0a, 0xff, 0x0d],
        ];
        for sample in samples {
            let wire = micad_translate_newlines(sample);
            // Every split point, so a `\r` at a chunk end is exercised.
            for split in 0..=wire.len() {
                let mut r = NewlineRestorer::new();
                let mut out = Vec::new();
                r.restore(&wire[..split], &mut out);
                r.restore(&wire[split..], &mut out);
                r.finish(&mut out);
                assert_eq!(out, sample, "{sample:?} split at {split}");
            }
        }
        assert_eq!(micad_translate_newlines(b"a\nb"), b"a\r\nb");
    }

    #[test]
    fn open_tty_makes_a_cooked_pty_raw() {
        use nix::sys::termios::{tcgetattr, InputFlags, LocalFlags, OutputFlags};
        let pty = nix::pty::openpty(None, None).unwrap();
        let slave = nix::unistd::ttyname(&pty.slave).unwrap();
        let before = tcgetattr(&pty.slave).unwrap();
        assert!(
            before.local_flags.contains(LocalFlags::ECHO),
            "kernel default"
        );
        let fd = open_tty(&slave).unwrap();
        let t = tcgetattr(&fd).unwrap();
        assert!(!t
            .local_flags
            .intersects(LocalFlags::ECHO | LocalFlags::ICANON));
        assert!(!t
            .output_flags
            .intersects(OutputFlags::OPOST | OutputFlags::ONLCR));
        assert!(!t.input_flags.contains(InputFlags::ICRNL));
        let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL).unwrap();
        assert!(nix::fcntl::OFlag::from_bits_retain(flags).contains(nix::fcntl::OFlag::O_NONBLOCK));
        let err = open_tty(Path::new("/nonexistent/tty"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/tty"), "{err}");
    }

    #[test]
    fn wait_for_tty_names_what_it_looked_for() {
        let err = wait_for_tty(&["/nonexistent-dir"], "x.y", Duration::from_millis(60))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent-dir/ttyRPMSG_x_y_0"), "{err}");
    }

    /// A one-shot server on `<dir>/<id>.socket` that reads the request, then
    /// answers with `reply` in `chunks`-byte writes and closes. Returns the dir
    /// (removed by the guard) and the thread.
    struct Canned {
        dir: PathBuf,
        thread: Option<std::thread::JoinHandle<Vec<u8>>>,
    }

    impl Canned {
        fn serve(id: &str, reply: Vec<u8>, chunk: usize) -> Canned {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "micad-unit-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            let listener =
                std::os::unix::net::UnixListener::bind(dir.join(format!("{id}.socket"))).unwrap();
            let thread = std::thread::spawn(move || {
                use std::io::Write;
                let (mut s, _) = listener.accept().unwrap();
                let mut request = vec![0u8; 64];
                let n = s.read(&mut request).unwrap();
                request.truncate(n);
                for piece in reply.chunks(chunk.max(1)) {
                    if s.write_all(piece).is_err() {
                        break;
                    }
                }
                request
            });
            Canned {
                dir,
                thread: Some(thread),
            }
        }

        fn client(&self) -> MicadClient {
            MicadClient::new(&self.dir).with_timeout(Duration::from_secs(10))
        }

        fn request(mut self) -> Vec<u8> {
            self.thread.take().unwrap().join().unwrap()
        }
    }

    impl Drop for Canned {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn client_reads_a_reply_in_pieces() {
        let c = Canned::serve("a", b"it took a whileMICA-SUCCESS".to_vec(), 1);
        assert_eq!(
            c.client().command("a", &Command::Stop).unwrap(),
            "it took a while"
        );
        assert_eq!(c.request(), b"stop");
    }

    #[test]
    fn client_reports_a_reply_cut_short() {
        let c = Canned::serve("a", b"half a replyMICA-SUCC".to_vec(), 4);
        let err = c.client().command("a", &Command::Start).unwrap_err();
        assert!(
            matches!(&err, MicadError::Closed { received, .. } if received == "half a replyMICA-SUCC"),
            "{err:?}"
        );
        assert!(err.to_string().contains("closed the connection"), "{err}");
        let c = Canned::serve("a", Vec::new(), 1);
        assert!(matches!(
            c.client().command("a", &Command::Start),
            Err(MicadError::Closed { .. })
        ));
    }

    #[test]
    fn client_stops_reading_an_endless_reply() {
        let c = Canned::serve("a", vec![b'x'; 200 * 1024], 4096);
        let err = c.client().command("a", &Command::Status).unwrap_err();
        assert!(matches!(err, MicadError::ReplyTooLong { .. }), "{err:?}");
    }

    #[test]
    fn client_refuses_the_status_of_another_instance() {
        let mut reply = format!("{:<30}{:<20}{:<20}", "other", "1", "Running").into_bytes();
        reply.extend_from_slice(b"MICA-SUCCESS");
        let c = Canned::serve("mine", reply, 7);
        let err = c.client().status("mine").unwrap_err();
        assert!(
            matches!(&err, MicadError::StatusOfOther { id, shown } if id == "mine" && shown == "other"),
            "{err:?}"
        );
        let c = Canned::serve("mine", b"garbageMICA-SUCCESS".to_vec(), 100);
        assert!(matches!(
            c.client().status("mine"),
            Err(MicadError::BadStatus { .. })
        ));
    }

    #[test]
    fn socket_paths_longer_than_sun_path_are_refused() {
        let client = MicadClient::new(format!("/{}", "d".repeat(60)));
        let err = client
            .command(&"n".repeat(60), &Command::Start)
            .unwrap_err();
        assert!(
            matches!(err, MicadError::SocketPathTooLong { len: 129, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn errors_say_how_to_fix() {
        let down = MicadError::NotRunning {
            path: "/run/mica/mica-create.socket".into(),
            why: "does not exist",
        }
        .to_string();
        assert!(
            down.contains("systemctl start micad") && down.contains("/run/mica/mica-create.socket")
        );
        let t = MicadError::Timeout {
            socket: "/run/mica/x.socket".into(),
            timeout: Duration::from_secs(5),
            stage: "waiting for the reply",
        }
        .to_string();
        assert!(
            t.contains("did not answer") && t.contains("5s") && t.contains("/run/mica/x.socket")
        );
    }
}
