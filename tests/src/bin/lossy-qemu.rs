//! `lossy-qemu`: a test stand-in for `[qemu] binary` that runs the real QEMU with
//! a proxy on the guest's UART, for the fault-injection tests (tests/tests/faults.rs).
//!
//! The qemu pedestal starts `BINARY ... -chardev socket,id=link,path=P,server=on,wait=on
//! ... --proxy-control FILE` (the last two from `[qemu] extra_args`) and connects to
//! P. This program starts `qemu-system-aarch64` with the same arguments but the
//! chardev at `P` + `q`, connects to it, listens on P itself and copies the bytes
//! both ways, applying the mode named by FILE's content (read again for every
//! chunk, so a test can change it while the guest runs):
//!
//! | mode | what happens to the bytes |
//! |---|---|
//! | `pass` (or no file) | copied unchanged |
//! | `lossy` | by byte offset in each direction (the same offsets every run): one byte in 97 has a bit flipped, one in 89 is dropped, and every 256 bytes the copy pauses 2 ms |
//! | `blackhole` | dropped; the connection stays open (a link that went silent) |
//!
//! QEMU dies with this process (`PR_SET_PDEATHSIG`), and this process exits as
//! QEMU does (its code, or the same signal), so the shim's view of "the QEMU
//! process" holds. Without a `socket,id=link` chardev it runs QEMU unchanged.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

const QEMU: &str = "qemu-system-aarch64";
const CHARDEV: &[u8] = b"socket,id=link,path=";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Pass,
    Lossy,
    Blackhole,
}

fn mode(control: Option<&Path>) -> Mode {
    match control.and_then(|c| std::fs::read_to_string(c).ok()) {
        Some(s) if s.trim() == "lossy" => Mode::Lossy,
        Some(s) if s.trim() == "blackhole" => Mode::Blackhole,
        _ => Mode::Pass,
    }
}

/// Copies `from` to `to` until either side closes, applying the control file's mode.
fn pump(mut from: UnixStream, mut to: UnixStream, control: Option<PathBuf>) {
    let mut buf = [0u8; 4096];
    let mut offset: u64 = 0;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut out = Vec::with_capacity(n);
        let m = mode(control.as_deref());
        for &b in &buf[..n] {
            offset += 1;
            match m {
                Mode::Pass => out.push(b),
                Mode::Blackhole => {}
                Mode::Lossy => {
                    if offset.is_multiple_of(256) {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    if offset.is_multiple_of(89) {
                        continue;
                    }
                    out.push(if offset.is_multiple_of(97) {
                        b ^ 0x10
                    } else {
                        b
                    });
                }
            }
        }
        if to.write_all(&out).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
}

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let mut control = None;
    if let Some(i) = args.iter().position(|a| a == "--proxy-control") {
        if i + 1 < args.len() {
            control = Some(PathBuf::from(args.remove(i + 1)));
        }
        args.remove(i);
    }
    // The UART socket's path: up to the first single comma (`,,` escapes one).
    let found = args.iter().position(|a| a.as_bytes().starts_with(CHARDEV));
    let Some(at) = found else {
        let e = Command::new(QEMU).args(&args).exec();
        eprintln!("lossy-qemu: cannot run {QEMU}: {e}");
        return ExitCode::from(127);
    };
    let value = &args[at].as_bytes()[CHARDEV.len()..];
    let mut path = Vec::new();
    let mut i = 0;
    while i < value.len() {
        match (value[i], value.get(i + 1)) {
            (b',', Some(b',')) => {
                path.push(b',');
                i += 2;
            }
            (b',', _) => break,
            (b, _) => {
                path.push(b);
                i += 1;
            }
        }
    }
    let rest = value[i..].to_vec();
    let outer = PathBuf::from(OsString::from_vec(path.clone()));
    let mut inner_bytes = path;
    inner_bytes.push(b'q');
    let inner = PathBuf::from(OsString::from_vec(inner_bytes));
    let escaped: Vec<u8> = inner
        .as_os_str()
        .as_bytes()
        .iter()
        .flat_map(|&b| if b == b',' { vec![b',', b','] } else { vec![b] })
        .collect();
    args[at] = OsString::from_vec([CHARDEV, &escaped, &rest].concat());

    let _ = std::fs::remove_file(&inner);
    let mut cmd = Command::new(QEMU);
    cmd.args(&args);
    // SAFETY: prctl(2) between fork and exec: QEMU gets SIGKILL when we die.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lossy-qemu: cannot run {QEMU}: {e}");
            return ExitCode::from(127);
        }
    };
    let listener = match UnixListener::bind(&outer) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("lossy-qemu: cannot listen on {}: {e}", outer.display());
            let _ = child.kill();
            let _ = child.wait();
            return ExitCode::from(1);
        }
    };
    let guest = loop {
        if let Ok(s) = UnixStream::connect(&inner) {
            // QEMU takes one client: the path is no longer needed, and a SIGKILL
            // of this process must not leave it in the shim's run directory.
            let _ = std::fs::remove_file(&inner);
            break Some(s);
        }
        if !matches!(child.try_wait(), Ok(None)) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if let Some(guest) = guest {
        std::thread::spawn(move || {
            if let Ok((host, _)) = listener.accept() {
                let (g2, h2) = (guest.try_clone(), host.try_clone());
                if let (Ok(g2), Ok(h2)) = (g2, h2) {
                    let c = control.clone();
                    std::thread::spawn(move || pump(h2, g2, c));
                    pump(guest, host, control);
                }
            }
        });
    }
    let status = child.wait();
    let _ = std::fs::remove_file(&inner);
    match status {
        Ok(st) => {
            if let Some(sig) = st.signal() {
                // SAFETY: signal(2) and kill(2) on ourselves: end as QEMU ended.
                unsafe {
                    libc::signal(sig, libc::SIG_DFL);
                    libc::kill(libc::getpid(), sig);
                }
            }
            ExitCode::from(st.code().unwrap_or(1) as u8)
        }
        Err(_) => ExitCode::from(1),
    }
}
