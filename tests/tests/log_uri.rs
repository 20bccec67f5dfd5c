//! containerd's log URIs end to end: `ctr run --log-uri binary://...` (the path
//! nerdctl's log driver takes) and `--log-uri file://...`, through a real
//! containerd, `ctr` and the shim, with the demo firmware on the `sim` pedestal
//! (commands given with its `--input`, since a log URI leaves the task without
//! stdin) and once on `qemu`.
//!
//! | tests | what |
//! |---|---|
//! | `binary_logger_*` | the logger (`log-recorder`) gets the console whole, stdout and stderr apart, `CONTAINER_ID`/`CONTAINER_NAMESPACE` as its only environment, the query as arguments; it ends at EOF and is gone after the task is deleted |
//! | `file_uri_*` | the file (its directory made) gets the console; a second task appends; the qemu run |
//! | `logger_ends_before_ready` | Start fails naming the logger and its status; nothing left |
//! | `bad_log_uris` | unknown scheme, no path, a host for a path, a missing or non-executable logger: Create fails naming the stream, nothing left |
//! | `create_error_starts_no_logger` | a good URI with a Create that fails for another reason: no logger ran, no file made |

use std::path::{Path, PathBuf};
use std::time::Duration;

use micrun_tests::e2e::{
    pid_alive, qemu_image, sim_image, unique_id, wait_until, Env, Ped, TestImage, ANN_AGENT,
};
use micrun_tests::scenarios::assert_nothing_left;

const LOGGER: &str = env!("CARGO_BIN_EXE_log-recorder");
/// A whole `ctr run` of the sim firmware (boot, commands, exit, delete).
const T_RUN: Duration = Duration::from_secs(60);

fn banner(p: Ped) -> String {
    let os = if p == Ped::Qemu {
        "bare-metal"
    } else {
        "linux"
    };
    format!("micrun demo shell on {} ({os})\r\n> ", p.board())
}

/// What the demo shell prints for `flood n`.
fn flood(n: u32) -> Vec<u8> {
    let mut v: Vec<u8> = (0..n)
        .map(|i| {
            if i % 64 == 63 {
                b'\n'
            } else {
                b'a' + (i % 26) as u8
            }
        })
        .collect();
    v.extend_from_slice(format!("\r\nflood done {n}\r\n> ").as_bytes());
    v
}

/// `ctr run --rm --log-uri URI [flags] IMAGE ID [cmd...]` in namespace `ns`; the
/// output of ctr (its status is the task's exit status).
fn run(
    env: &Env,
    ns: &str,
    img: &TestImage,
    id: &str,
    uri: &str,
    flags: &[&str],
    cmd: &[&str],
) -> std::process::Output {
    let mut a: Vec<String> = vec!["run".into(), "--rm".into(), "--log-uri".into(), uri.into()];
    let mut extra = vec!["--annotation".to_string(), Ped::Sim.annotation()];
    extra.extend(flags.iter().map(|s| s.to_string()));
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    a.extend(env.run_args(img, &extra));
    a.push(img.name.clone());
    a.push(id.into());
    a.extend(cmd.iter().map(|s| s.to_string()));
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    env.cd.ctr_with(Some(ns), &a, None, T_RUN)
}

fn describe(env: &Env, id: &str, out: &std::process::Output) -> String {
    format!(
        "ctr run {id}: {}\nstdout: {:?}\nstderr: {:?}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        env.diag(id)
    )
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_default()
}

/// `binary://<log-recorder>?dir=DIR&...`.
fn logger_uri(dir: &Path, extra: &str) -> String {
    format!("binary://{LOGGER}?dir={}{extra}", dir.display())
}

// ---------------------------------------------------------------------------

/// Agent mode: the console arrives whole at the logger (a 100 kB flood with
/// flow control), stdout and stderr apart; the logger's environment and
/// arguments are containerd's; it ends at EOF and is gone once ctr has deleted
/// the task.
#[test]
fn binary_logger_sim() {
    let env = Env::shared();
    let ns = env.namespace("logbin");
    let img = sim_image("e2e", false);
    env.import(&ns, &img);
    let id = unique_id("logbin");
    let dir = env.dir().join(format!("rec-{id}"));
    let out = run(
        &env,
        ns.name(),
        &img,
        &id,
        &logger_uri(&dir, ""),
        &[],
        &[
            "/firmware.elf",
            "--input",
            "echo hello\rflood 100000\rpanic\r",
        ],
    );
    let what = describe(&env, &id, &out);
    assert_eq!(out.status.code(), Some(101), "panic's status: {what}");
    assert!(out.stdout.is_empty(), "ctr printed the console: {what}");

    let mut want = banner(Ped::Sim).into_bytes();
    want.extend_from_slice(b"hello\r\n> ");
    want.extend_from_slice(&flood(100_000));
    let got = read(&dir, "stdout");
    assert!(
        got == want,
        "the logger's stdout ({} bytes) is not the console ({} bytes); first difference at \
         {:?}; tail {:?}: {what}",
        got.len(),
        want.len(),
        got.iter().zip(&want).position(|(a, b)| a != b),
        String::from_utf8_lossy(&got[got.len().saturating_sub(80)..])
    );
    assert_eq!(
        String::from_utf8_lossy(&read(&dir, "stderr")),
        "PANIC: requested by shell\r\n",
        "{what}"
    );
    assert_eq!(
        String::from_utf8_lossy(&read(&dir, "env")),
        format!("CONTAINER_ID={id}\nCONTAINER_NAMESPACE={}\n", ns.name()),
        "the logger's environment: {what}"
    );
    assert_eq!(
        String::from_utf8_lossy(&read(&dir, "args")),
        format!("dir\n{}\n", dir.display()),
        "{what}"
    );
    assert_eq!(
        read(&dir, "end"),
        b"eof",
        "it ended by itself at EOF: {what}"
    );
    let pid: u32 = String::from_utf8_lossy(&read(&dir, "pid"))
        .parse()
        .expect("the logger's pid");
    // ctr run --rm returns after Delete, which waits for the logger.
    assert!(!pid_alive(pid), "logger {pid} still runs: {what}");
    assert!(
        !env.log_lines(&id, 50).contains("killing it"),
        "the logger was killed: {what}"
    );
    assert_nothing_left(&env, &ns, &id);
}

/// A logger that signals ready with a byte, and a raw console.
#[test]
fn binary_logger_ready_byte_raw_sim() {
    let env = Env::shared();
    let ns = env.namespace("logbyte");
    let img = sim_image("e2e", true);
    env.import(&ns, &img);
    let id = unique_id("logbyte");
    let dir = env.dir().join(format!("rec-{id}"));
    let out = run(
        &env,
        ns.name(),
        &img,
        &id,
        &logger_uri(&dir, "&ready=byte"),
        &["--annotation", &format!("{ANN_AGENT}=off")],
        &["/firmware.elf", "--raw", "--input", "echo raw\rexit 3\r"],
    );
    let what = describe(&env, &id, &out);
    assert_eq!(out.status.code(), Some(3), "{what}");
    let mut want = banner(Ped::Sim);
    want.push_str("raw\r\n> ");
    assert_eq!(
        String::from_utf8_lossy(&read(&dir, "stdout")),
        want,
        "{what}"
    );
    assert_eq!(read(&dir, "stderr"), b"", "{what}");
    assert_eq!(read(&dir, "end"), b"eof", "{what}");
    assert_nothing_left(&env, &ns, &id);
}

/// `file://`: the directory is made, both streams go to the file, a second task
/// appends.
#[test]
fn file_uri_sim() {
    let env = Env::shared();
    let ns = env.namespace("logfile");
    let agent = sim_image("e2e", false);
    let raw = sim_image("e2e", true);
    env.import(&ns, &agent);
    env.import(&ns, &raw);
    let id1 = unique_id("logfile");
    let id2 = unique_id("logfile");
    let log = env.dir().join(format!("logs-{id1}/sub/console.log"));
    let uri = format!("file://{}", log.display());
    let out = run(
        &env,
        ns.name(),
        &raw,
        &id1,
        &uri,
        &["--annotation", &format!("{ANN_AGENT}=off")],
        &["/firmware.elf", "--raw", "--input", "echo one\rexit 3\r"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", describe(&env, &id1, &out));
    let out = run(
        &env,
        ns.name(),
        &agent,
        &id2,
        &uri,
        &[],
        &["/firmware.elf", "--input", "echo two\rpanic\r"],
    );
    let what = describe(&env, &id2, &out);
    assert_eq!(out.status.code(), Some(101), "{what}");
    let text = String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
    let b = banner(Ped::Sim);
    let first = format!("{b}one\r\n> ");
    assert!(
        text.starts_with(&first),
        "the first task's output: {text:?}: {what}"
    );
    // stdout and stderr are copied apart: the stderr line may come first.
    let panic = "PANIC: requested by shell\r\n";
    let second = &text[first.len()..];
    assert_eq!(second.matches(panic).count(), 1, "{text:?}: {what}");
    assert_eq!(
        second.replacen(panic, "", 1),
        format!("{b}two\r\n> "),
        "the second task's output: {text:?}: {what}"
    );
    assert_nothing_left(&env, &ns, &id1);
    assert_nothing_left(&env, &ns, &id2);
}

/// The QEMU pedestal writes to a `file://` log the same way: `ctr run -d`, the
/// banner arrives, SIGTERM → the agent's `stopping` and status 0.
#[test]
fn file_uri_qemu() {
    let env = Env::shared();
    let ns = env.namespace("logqemu");
    let img = qemu_image("e2e", false);
    env.import(&ns, &img);
    let id = unique_id("logqemu");
    let log = env.dir().join(format!("logs-{id}.log"));
    let uri = format!("file://{}", log.display());
    let mut extra = vec![
        "--log-uri".to_string(),
        uri,
        "--annotation".into(),
        Ped::Qemu.annotation(),
    ];
    extra.extend(img.run_args.iter().cloned());
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    ns.run_detached(&img.name, &id, micrun_tests::e2e::RUNTIME, &extra, &[])
        .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));
    let text = || String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
    let b = banner(Ped::Qemu);
    assert!(
        wait_until(Duration::from_secs(30), || text().contains(&b)),
        "no banner in {log:?}: {:?}{}",
        text(),
        env.diag(&id)
    );
    ns.kill(&id, "SIGTERM")
        .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));
    let code = ns
        .wait_exit(&id, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}{}", env.diag(&id)));
    assert_eq!(code, 0, "{}", env.diag(&id));
    assert_eq!(text(), format!("{b}stopping\r\n"), "{}", env.diag(&id));
    ns.ctr_ok(&["containers", "rm", &id]).unwrap();
    assert_nothing_left(&env, &ns, &id);
}

/// A logger that ends instead of signalling ready fails Start, naming it and its
/// status; nothing is left (the partition never ran).
#[test]
fn logger_ends_before_ready() {
    let env = Env::shared();
    let ns = env.namespace("logexit");
    let img = sim_image("e2e", false);
    env.import(&ns, &img);
    let id = unique_id("logexit");
    let dir = env.dir().join(format!("rec-{id}"));
    let out = run(
        &env,
        ns.name(),
        &img,
        &id,
        &logger_uri(&dir, "&ready=exit"),
        &[],
        &[],
    );
    let what = describe(&env, &id, &out);
    assert!(!out.status.success(), "{what}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("logger {LOGGER}"))
            && stderr.contains("ended (exit status 3) before it signalled ready"),
        "{what}"
    );
    // A failed Start ends the task, so `ctr run --rm` removes it by itself.
    assert_nothing_left(&env, &ns, &id);
}

/// Each bad URI fails Create with the stream, the URI and what is wrong; ctr run
/// --rm leaves nothing.
#[test]
fn bad_log_uris() {
    let env = Env::shared();
    let ns = env.namespace("logbad");
    let img = sim_image("e2e", false);
    env.import(&ns, &img);
    let plain = env.dir().join("not-executable");
    std::fs::write(&plain, b"#!/bin/sh\n").unwrap();
    let not_exec = format!("binary://{}", plain.display());
    let long = format!("syslog://{}", "x".repeat(5000));
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            "syslog:///var/log/x".into(),
            vec![
                "stdout \"syslog:///var/log/x\"",
                "unknown scheme \"syslog\"",
                "binary:///path",
            ],
        ),
        (
            "binary:///nonexistent/micrun-logger".into(),
            vec![
                "logger /nonexistent/micrun-logger",
                "No such file",
                "install it",
            ],
        ),
        (not_exec.clone(), vec!["is not executable"]),
        (
            format!("binary:{LOGGER}"),
            vec!["expected binary:///absolute/path"],
        ),
        ("binary://usr/bin/logger".into(), vec!["three slashes"]),
        // ctr re-writes it as `file:`.
        (
            "file://".into(),
            vec!["stdout \"file:\"", "expected file:///absolute/path"],
        ),
        ("file:///".into(), vec!["no path"]),
        (long, vec!["(5009 bytes)"]),
    ];
    for (uri, keywords) in cases {
        let id = unique_id("logbad");
        let out = run(&env, ns.name(), &img, &id, &uri, &[], &[]);
        let what = describe(&env, &id, &out);
        assert!(!out.status.success(), "{uri}: {what}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        for k in keywords {
            assert!(stderr.contains(k), "{uri}: the error lacks {k:?}: {what}");
        }
        assert!(stderr.len() < 1500, "a long message: {what}");
        eprintln!("{id}: {}", stderr.trim());
        assert_nothing_left(&env, &ns, &id);
    }
}

/// A good log URI, but Create fails for another reason (an unknown pedestal):
/// the logger never ran and the log file was not made.
#[test]
fn create_error_starts_no_logger() {
    let env = Env::shared();
    let ns = env.namespace("lognone");
    let img = sim_image("e2e", false);
    env.import(&ns, &img);
    let bad = ["--annotation", "org.openeuler.micrun.ped.pedestal=nosuch"];
    let id = unique_id("lognone");
    let dir = env.dir().join(format!("rec-{id}"));
    let out = run(&env, ns.name(), &img, &id, &logger_uri(&dir, ""), &bad, &[]);
    let what = describe(&env, &id, &out);
    assert!(!out.status.success(), "{what}");
    assert!(!dir.exists(), "the logger ran: {what}");
    assert_nothing_left(&env, &ns, &id);

    let id = unique_id("lognone");
    let log: PathBuf = env.dir().join(format!("logs-{id}/x.log"));
    let out = run(
        &env,
        ns.name(),
        &img,
        &id,
        &format!("file://{}", log.display()),
        &bad,
        &[],
    );
    let what = describe(&env, &id, &out);
    assert!(!out.status.success(), "{what}");
    assert!(
        !log.parent().unwrap().exists(),
        "the log dir was made: {what}"
    );
    assert_nothing_left(&env, &ns, &id);
}
