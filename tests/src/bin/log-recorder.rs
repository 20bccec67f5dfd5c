//! `log-recorder`: a containerd logging binary for the tests, what a
//! `binary:///path?query` stdio URI starts (nerdctl's log driver is one). It
//! follows containerd's logging protocol: the task's stdout on fd 3, its stderr
//! on fd 4, "ready" signalled on fd 5, the container in `CONTAINER_ID` and
//! `CONTAINER_NAMESPACE`.
//!
//! Arguments come in `key value` pairs, as the shim makes them from the URI's
//! query:
//!
//! | key | value |
//! |---|---|
//! | `dir` | required: the directory it records in (created) |
//! | `ready` | `close` (default, as nerdctl: fd 5 closed), `byte` (one byte written), `exit` (ends with status 3 without signalling) |
//!
//! Files in `dir`: `pid`; `args` and `env` (one per line, as received);
//! `stdout` and `stderr` (the bytes as they arrived, written as they arrive);
//! `end`, written last, `eof` once both streams have ended. No `end` means it
//! was killed before the streams ended.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let mut dir = None;
    let mut ready = "close".to_string();
    for pair in args.chunks(2) {
        let value = pair.get(1).cloned().unwrap_or_default();
        match pair[0].to_str() {
            Some("dir") => dir = Some(PathBuf::from(value)),
            Some("ready") => ready = value.to_string_lossy().into_owned(),
            _ => fail(&format!("unknown argument {:?}", pair[0])),
        }
    }
    let Some(dir) = dir else {
        fail("usage: log-recorder dir <path> [ready close|byte|exit]")
    };
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| fail(&format!("{}: {e}", dir.display())));
    let write = |name: &str, data: &[u8]| {
        std::fs::write(dir.join(name), data).unwrap_or_else(|e| fail(&format!("{name}: {e}")))
    };
    write("pid", std::process::id().to_string().as_bytes());
    let mut text = Vec::new();
    for a in std::env::args_os().skip(1) {
        text.extend_from_slice(a.as_bytes());
        text.push(b'\n');
    }
    write("args", &text);
    text.clear();
    for (k, v) in std::env::vars_os() {
        text.extend_from_slice(k.as_bytes());
        text.push(b'=');
        text.extend_from_slice(v.as_bytes());
        text.push(b'\n');
    }
    write("env", &text);

    // SAFETY: fds 3, 4 and 5 are the ones the logging protocol hands us; each is
    // wrapped once.
    let (out, err, mut ready_fd) = unsafe {
        (
            File::from_raw_fd(3),
            File::from_raw_fd(4),
            File::from_raw_fd(5),
        )
    };
    match ready.as_str() {
        "close" => drop(ready_fd),
        "byte" => {
            ready_fd
                .write_all(b"r")
                .unwrap_or_else(|e| fail(&format!("fd 5: {e}")));
            drop(ready_fd);
        }
        "exit" => std::process::exit(3),
        other => fail(&format!("unknown ready mode {other:?}")),
    }
    let copy = |from: File, name: &'static str, dir: &Path| {
        let path = dir.join(name);
        std::thread::spawn(move || {
            let mut to = File::create(&path).unwrap_or_else(|e| fail(&format!("{name}: {e}")));
            let mut from = from;
            let mut buf = [0u8; 8192];
            loop {
                match from.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => to
                        .write_all(&buf[..n])
                        .unwrap_or_else(|e| fail(&format!("{name}: {e}"))),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => fail(&format!("read {name}: {e}")),
                }
            }
        })
    };
    let a = copy(out, "stdout", &dir);
    let b = copy(err, "stderr", &dir);
    let _ = (a.join(), b.join());
    write("end", b"eof");
}

fn fail(msg: &str) -> ! {
    eprintln!("log-recorder: {msg}");
    std::process::exit(2);
}
