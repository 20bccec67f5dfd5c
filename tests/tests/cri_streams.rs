//! The RTOS console through containerd's CRI plugin, as kubelet uses it:
//! `kubectl logs` (the CRI log file the plugin writes from the task's stdout and
//! stderr FIFOs), log rotation (ReopenContainerLog), `kubectl attach` and
//! `kubectl exec` (Attach and Exec, and the WebSocket channel protocol of the
//! plugin's streaming server), on containerd 1.6 and 2.1. The fixtures are
//! `micrun_tests::cri`'s (the private daemon, pods with the `micrun` handler and
//! the node's network); the RTOS is the `sim` pedestal's demo firmware with the
//! agent (its shell: `echo <text>` answers on stdout, `err <text>` on stderr,
//! `flood <bytes>` writes a known pattern, a resize shows as
//! `resize <rows>x<cols>`; as an exec: `stats`, `exit <code>`, `sleep <ms>`).
//!
//! | tests (`v1_6::*`, `v2_1::*`) | what |
//! |---|---|
//! | `log_streams_apart` | the RTOS's stdout and stderr (agent `Stderr` stream) land apart in the CRI log: `<time> stdout F > to-stdout`, `<time> stderr F to-stderr`; every line in CRI format; once the RTOS exits (code 0) the unfinished prompt ends the stdout stream as a partial line, `<time> stdout P > ` |
//! | `flood_log_is_complete` | an 8 MB `flood` in agent mode reaches the CRI log byte for byte (the stdout lines put together are exactly banner, prompt, the flood's pattern, its trailer), the shell then answers the next command, the container still RUNNING; the time is printed |
//! | `reopen_container_log` | kubelet's rotation: rename the log file, ReopenContainerLog → a fresh file at the log path gets the console output typed afterwards (through attach, `after-rotation` alone), the renamed file keeps the old lines and gets none of the new (the prompt pending at the reopen ends it as `stdout P > `); on an exited container ReopenContainerLog fails (`container is not running`) |
//! | `attach_without_tty` | Attach (stdin, stdout, stderr, no TTY) → a URL on `127.0.0.1`; the WebSocket (`v4.channel.k8s.io`) carries `echo` typed on channel 0 to the RTOS shell, its answer back on channel 1 and an `err` answer on channel 2; the CRI log still gets both; closing the WebSocket leaves the RTOS RUNNING and a second attach works; Attach with TTY and stderr is refused by the CRI plugin |
//! | `attach_with_tty` | a container created with `tty: true`: Attach with TTY → the answer to `echo` on channel 1, `err` text merged into it (one stream with a TTY), a resize on channel 4 (`{"Width":100,"Height":40}`) reaches the agent (`resize 40x100` from the shell) |
//! | `exec_stream_commands` | Exec (`kubectl exec`) → a URL on `127.0.0.1`, the WebSocket (`v4.channel.k8s.io`): `stats` → its line on channel 1, nothing on 2, `Success` on channel 3; `exit 3` → a `NonZeroExitCode` status with exit code 3; an unknown command → 127 and the shell's message; `err` text on channel 1 (an exec has one output stream); `kubectl exec -i` with typed input that the command does not read → it ends as usual (0); the container RUNNING, the exec's output not in its log |
//! | `exec_stream_tty` | `kubectl exec -it`: `stats` → its output on channel 1, 0; a resize (channel 4) and typed input during `sleep 300` → accepted, 0; `exit 5` → 5 |
//! | `exec_stream_raw_firmware` | a firmware without the agent: the stream's status on channel 3 is a failure quoting the shim's "exec needs the micrun agent ..."; the container RUNNING |
//!
//! Needs what `cri_pods.rs` needs.

use std::time::{Duration, Instant};

use micrun_tests::cri::{
    self, channel, connect, env, state_name, status, ChannelStream, Cri, LogLine, Pod,
};
use micrun_tests::e2e::{sim_image, wait_until, Env};

const PEDESTAL: &str = "org.openeuler.micrun.ped.pedestal";
/// The demo firmware's banner on the sim pedestal.
const BANNER: &str = "micrun demo shell on sim (linux)";
/// How long console text may take to show up (log file or attach stream).
const SHOW_UP: Duration = Duration::from_secs(10);

/// Creates and starts RTOS container `name` (the agent image) in `pod`, with
/// stdin open if `stdin`, a TTY if `tty`, and `input` typed at boot (the
/// simulator's `--input`).
fn start_rtos(
    env: &Env,
    cri: &Cri,
    pod: &Pod<'_>,
    name: &str,
    stdin: bool,
    tty: bool,
    input: &str,
) -> String {
    let img = sim_image("cri", false);
    cri::import_k8s(env, &img);
    let mut config = cri::container_config(name, &img.name, &[]);
    config.stdin = stdin;
    config.tty = tty;
    if !input.is_empty() {
        config.args = vec!["--input".into(), input.into()];
    }
    let cid = pod.create(env, &config);
    cri.start_container(&cid)
        .unwrap_or_else(|e| panic!("StartContainer {name}: {e:?}{}", env.diag(&cid)));
    cid
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Waits until the file at `path` contains `needle`; panics with the file and the
/// daemon's diagnostics if it does not within `timeout`.
fn wait_log(
    env: &Env,
    path: &std::path::Path,
    needle: &str,
    timeout: Duration,
    id: &str,
) -> String {
    if !wait_until(timeout, || read(path).contains(needle)) {
        let log = read(path);
        let tail = &log[log.len().saturating_sub(2000)..];
        panic!(
            "{needle:?} not in {path:?} within {timeout:?}; its tail: {tail:?}{}",
            env.diag(id)
        );
    }
    read(path)
}

/// Parses a CRI log; panics on a line not in CRI format.
fn parse(log: &str) -> Vec<LogLine> {
    log.lines()
        .map(|l| LogLine::parse(l).unwrap_or_else(|| panic!("not a CRI log line: {l:?}")))
        .collect()
}

/// The bytes of `stream` as the log has them: the lines' texts, each `F` line
/// ended by a newline (the plugin cut at `\n` and dropped it, and a `\r` before it).
fn stream_bytes(lines: &[LogLine], stream: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines.iter().filter(|l| l.stream == stream) {
        out.extend_from_slice(l.text.as_bytes());
        if l.tag == "F" {
            out.push(b'\n');
        }
    }
    out
}

/// Kubelet's `kubectl logs` view of stdout vs stderr: the RTOS's two agent
/// streams stay apart in the CRI log, and a stream that ends mid-line ends with
/// a `P` line.
fn log_streams_apart(version: &str) {
    let env = env(version);
    let cri = connect(&env);
    let pod = Pod::run(&env, &cri, "logs", &[(PEDESTAL, "sim")]);
    let cid = start_rtos(
        &env,
        &cri,
        &pod,
        "rtos",
        false,
        false,
        "echo to-stdout\rerr to-stderr\recho again\rexit 0\r",
    );
    let path = pod.log_path("rtos");
    let exited = wait_until(SHOW_UP, || {
        state_name(status(&env, &cri, &cid).state) == "CONTAINER_EXITED"
    });
    let st = status(&env, &cri, &cid);
    assert!(exited, "the RTOS did not exit: {st:?}{}", env.diag(&cid));
    assert_eq!(st.exit_code, 0, "{st:?}");
    // The stdout stream ends with the prompt after `again` (no newline).
    let log = wait_log(&env, &path, "stdout P > ", SHOW_UP, &cid);
    let lines = parse(&log);
    let of = |stream: &str| -> Vec<(String, String)> {
        lines
            .iter()
            .filter(|l| l.stream == stream)
            .map(|l| (l.tag.clone(), l.text.clone()))
            .collect()
    };
    let pair = |t: &str, s: &str| (t.to_string(), s.to_string());
    assert_eq!(
        of("stdout"),
        vec![
            pair("F", BANNER),
            pair("F", "> to-stdout"),
            // `err`'s prompt, then `again`'s answer.
            pair("F", "> > again"),
            pair("P", "> "),
        ],
        "{log}"
    );
    assert_eq!(of("stderr"), vec![pair("F", "to-stderr")], "{log}");
    cri.remove_container(&cid).expect("RemoveContainer");
}

/// A flood in agent mode: the RTOS is held back by the agent's credit, not
/// stalled, and the CRI log has every byte.
fn flood_log_is_complete(version: &str) {
    const FLOOD: u32 = 8_000_000;
    let env = env(version);
    let cri = connect(&env);
    let pod = Pod::run(&env, &cri, "flood", &[(PEDESTAL, "sim")]);
    let t = Instant::now();
    let cid = start_rtos(
        &env,
        &cri,
        &pod,
        "rtos",
        false,
        false,
        &format!("flood {FLOOD}\recho after-flood\r"),
    );
    let path = pod.log_path("rtos");
    let log = wait_log(&env, &path, "> after-flood", Duration::from_secs(60), &cid);
    let took = t.elapsed();
    println!(
        "containerd {version}: {FLOOD} flood bytes in the CRI log ({} bytes) in {took:?}",
        log.len()
    );
    let lines = parse(&log);
    let stdout = stream_bytes(&lines, "stdout");
    // The CRI plugin drops a `\r` before each `\n`; the flood has none.
    let mut want = format!("{BANNER}\n> ").into_bytes();
    want.extend((0..FLOOD).map(micrun_rtos::demo::flood_byte));
    want.extend_from_slice(format!("\nflood done {FLOOD}\n> after-flood\n").as_bytes());
    if stdout != want {
        let at = stdout
            .iter()
            .zip(&want)
            .position(|(a, b)| a != b)
            .unwrap_or(stdout.len().min(want.len()));
        let around = |b: &[u8]| {
            String::from_utf8_lossy(&b[at.saturating_sub(80)..(at + 80).min(b.len())]).into_owned()
        };
        panic!(
            "the log's stdout ({} bytes) differs from the console ({} bytes) at byte {at}: \
             log {:?} vs console {:?}",
            stdout.len(),
            want.len(),
            around(&stdout),
            around(&want)
        );
    }
    assert!(
        lines.iter().all(|l| l.stream == "stdout"),
        "nothing on stderr"
    );
    let st = status(&env, &cri, &cid);
    assert_eq!(state_name(st.state), "CONTAINER_RUNNING", "{st:?}");
    cri.stop_container(&cid, 10)
        .unwrap_or_else(|e| panic!("StopContainer: {e:?}{}", env.diag(&cid)));
    assert_eq!(status(&env, &cri, &cid).exit_code, 0);
    cri.remove_container(&cid).expect("RemoveContainer");
}

/// Attaches to `cid` as `kubectl attach -i` does (`stderr` unless `tty`).
fn attach(env: &Env, cri: &Cri, cid: &str, tty: bool) -> ChannelStream {
    let url = cri
        .attach(cid, true, tty, true, !tty)
        .unwrap_or_else(|e| panic!("Attach: {e:?}{}", env.diag(cid)));
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "the streaming server listens on loopback only: {url}"
    );
    ChannelStream::connect(&url).unwrap_or_else(|e| panic!("{e}{}", env.diag(cid)))
}

/// Types `line` and waits for `answer` on `ch`.
fn ask(env: &Env, a: &mut ChannelStream, line: &str, ch: u8, answer: &str, cid: &str) {
    a.type_in(line).unwrap_or_else(|e| panic!("{e}"));
    let ok = a
        .read_until(SHOW_UP, |a| a.text(ch).contains(answer))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        ok,
        "no {answer:?} on channel {ch} after typing {line:?}: {a:?}{}",
        env.diag(cid)
    );
}

/// kubelet's log rotation: rename, ReopenContainerLog, new output in a new file.
///
/// The CRI plugin copies the task's stdout FIFO to every output of the
/// container (the log's line cutter and an attached client) in one write, and
/// ReopenContainerLog swaps the log output only between two such writes; the
/// shim keeps writing to the same FIFO. So once the attached client has seen
/// the prompt after `before-rotation`, the old log's cutter holds it, and
/// closing that cutter at the reopen ends the old file with it as a `P` line.
fn reopen_container_log(version: &str) {
    let env = env(version);
    let cri = connect(&env);
    let pod = Pod::run(&env, &cri, "reopen", &[(PEDESTAL, "sim")]);
    let cid = start_rtos(&env, &cri, &pod, "rtos", true, false, "");
    let path = pod.log_path("rtos");
    wait_log(&env, &path, BANNER, SHOW_UP, &cid);
    let mut a = attach(&env, &cri, &cid, false);
    ask(
        &env,
        &mut a,
        "echo before-rotation\r",
        channel::STDOUT,
        "before-rotation\r\n> ",
        &cid,
    );
    wait_log(&env, &path, "before-rotation", SHOW_UP, &cid);

    let rotated = path.with_extension("log.1");
    std::fs::rename(&path, &rotated).expect("rotate the log");
    cri.reopen_container_log(&cid)
        .unwrap_or_else(|e| panic!("ReopenContainerLog: {e:?}{}", env.diag(&cid)));
    assert!(
        path.exists(),
        "ReopenContainerLog makes a new file at {path:?}"
    );

    ask(
        &env,
        &mut a,
        "echo after-rotation\r",
        channel::STDOUT,
        "after-rotation",
        &cid,
    );
    let log = wait_log(&env, &path, "after-rotation", SHOW_UP, &cid);
    let lines = parse(&log);
    assert_eq!(
        lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
        vec!["after-rotation"],
        "the new file has only what came after the reopen"
    );
    // The renamed file keeps the old lines; the prompt that was waiting for
    // its line's end when the plugin closed the file is flushed there as `P`
    // (by the old cutter, on its own time).
    let old = wait_log(&env, &rotated, "stdout P > ", SHOW_UP, &cid);
    let texts: Vec<(String, String)> = parse(&old).into_iter().map(|l| (l.tag, l.text)).collect();
    let pair = |t: &str, s: &str| (t.to_string(), s.to_string());
    assert_eq!(
        texts,
        vec![
            pair("F", BANNER),
            pair("F", "> before-rotation"),
            pair("P", "> ")
        ],
        "{old}"
    );
    drop(a);

    cri.stop_container(&cid, 10)
        .unwrap_or_else(|e| panic!("StopContainer: {e:?}{}", env.diag(&cid)));
    let e = cri
        .reopen_container_log(&cid)
        .expect_err("ReopenContainerLog of an exited container");
    assert!(e.message().contains("container is not running"), "{e:?}");
    cri.remove_container(&cid).expect("RemoveContainer");
}

/// `kubectl attach -i` to a container without a TTY: stdin, stdout and stderr
/// as three channels.
fn attach_without_tty(version: &str) {
    let env = env(version);
    let cri = connect(&env);
    let pod = Pod::run(&env, &cri, "attach", &[(PEDESTAL, "sim")]);
    let cid = start_rtos(&env, &cri, &pod, "rtos", true, false, "");
    let path = pod.log_path("rtos");
    wait_log(&env, &path, BANNER, SHOW_UP, &cid);

    let mut a = attach(&env, &cri, &cid, false);
    assert_eq!(a.protocol, "v4.channel.k8s.io");
    ask(
        &env,
        &mut a,
        "echo hi-attach\r",
        channel::STDOUT,
        "hi-attach",
        &cid,
    );
    ask(
        &env,
        &mut a,
        "err oops-attach\r",
        channel::STDERR,
        "oops-attach",
        &cid,
    );
    assert!(!a.text(channel::STDOUT).contains("oops-attach"), "{a:?}");
    assert!(!a.text(channel::STDERR).contains("hi-attach"), "{a:?}");
    // The log gets the same output as the attached client.
    let log = wait_log(&env, &path, "oops-attach", SHOW_UP, &cid);
    let lines = parse(&log);
    assert!(
        lines
            .iter()
            .any(|l| l.stream == "stdout" && l.text.ends_with("hi-attach")),
        "{log}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.stream == "stderr" && l.text == "oops-attach"),
        "{log}"
    );

    // Detaching leaves the RTOS running; attaching again works.
    a.close(SHOW_UP).unwrap_or_else(|e| panic!("{e}"));
    assert!(a.closed, "{a:?}");
    let st = status(&env, &cri, &cid);
    assert_eq!(state_name(st.state), "CONTAINER_RUNNING", "{st:?}");
    let mut a = attach(&env, &cri, &cid, false);
    ask(&env, &mut a, "echo again\r", channel::STDOUT, "again", &cid);
    drop(a);

    // What the CRI plugin refuses: TTY and stderr together (one stream with a TTY).
    let e = cri
        .attach(&cid, true, true, true, true)
        .expect_err("Attach with tty and stderr");
    println!("containerd {version}: Attach tty+stderr: {e:?}");
    assert!(
        e.message().contains("tty and stderr cannot both be true"),
        "{e:?}"
    );

    cri.stop_container(&cid, 10)
        .unwrap_or_else(|e| panic!("StopContainer: {e:?}{}", env.diag(&cid)));
    assert_eq!(status(&env, &cri, &cid).exit_code, 0);
    cri.remove_container(&cid).expect("RemoveContainer");
}

/// `kubectl attach -it` to a container created with `tty: true`: one output
/// stream, and the terminal size reaches the agent.
fn attach_with_tty(version: &str) {
    let env = env(version);
    let cri = connect(&env);
    let pod = Pod::run(&env, &cri, "attach-tty", &[(PEDESTAL, "sim")]);
    let cid = start_rtos(&env, &cri, &pod, "rtos", true, true, "");
    let path = pod.log_path("rtos");
    wait_log(&env, &path, BANNER, SHOW_UP, &cid);

    let mut a = attach(&env, &cri, &cid, true);
    ask(
        &env,
        &mut a,
        "echo hi-tty\r",
        channel::STDOUT,
        "hi-tty",
        &cid,
    );
    // With a TTY the RTOS's stderr is merged into the one stream.
    ask(
        &env,
        &mut a,
        "err tty-err\r",
        channel::STDOUT,
        "tty-err",
        &cid,
    );
    a.resize(100, 40).unwrap_or_else(|e| panic!("{e}"));
    let ok = a
        .read_until(SHOW_UP, |a| {
            a.text(channel::STDOUT).contains("resize 40x100")
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        ok,
        "the resize did not reach the agent: {a:?}{}",
        env.diag(&cid)
    );
    assert!(a.received[channel::STDERR as usize].is_empty(), "{a:?}");
    drop(a);

    cri.stop_container(&cid, 10)
        .unwrap_or_else(|e| panic!("StopContainer: {e:?}{}", env.diag(&cid)));
    assert_eq!(status(&env, &cri, &cid).exit_code, 0);
    cri.remove_container(&cid).expect("RemoveContainer");
}

/// Runs `cmd` as `kubectl exec` does (`tty`: `-t`, `stdin`: `-i`) over the
/// streaming URL and reads until the server closes the stream (after its
/// status on channel 3).
fn exec_stream(
    env: &Env,
    cri: &Cri,
    cid: &str,
    cmd: &[&str],
    stdin: bool,
    tty: bool,
) -> ChannelStream {
    let url = cri
        .exec_stream_url(cid, cmd, stdin, tty)
        .unwrap_or_else(|e| panic!("Exec {cmd:?}: {e:?}{}", env.diag(cid)));
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let mut s = ChannelStream::connect(&url).unwrap_or_else(|e| panic!("{e}{}", env.diag(cid)));
    assert_eq!(s.protocol, "v4.channel.k8s.io");
    let closed = s
        .read_until(SHOW_UP, |s| s.closed)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        closed,
        "exec {cmd:?}: the stream did not end: {s:?}{}",
        env.diag(cid)
    );
    s
}

/// `kubectl exec` (no TTY) into a running RTOS: the command's output on
/// channel 1, its exit code in the `v4.` status on channel 3.
fn exec_stream_commands(version: &str) {
    let env = env(version);
    let cri = connect(&env);
    let pod = Pod::run(&env, &cri, "exec-stream", &[(PEDESTAL, "sim")]);
    let cid = start_rtos(&env, &cri, &pod, "rtos", false, false, "");

    let s = exec_stream(&env, &cri, &cid, &["stats"], false, false);
    assert_eq!(s.exit_status(), Ok(0), "{s:?}");
    let out = s.text(channel::STDOUT);
    for field in [
        "uptime_ms=",
        "cpu_load_permille=",
        "mem_used_kib=",
        "mem_total_kib=",
    ] {
        assert!(out.contains(field), "{field} missing: {s:?}");
    }
    assert!(!out.contains("> "), "an exec has no prompt: {s:?}");
    assert!(s.received[channel::STDERR as usize].is_empty(), "{s:?}");

    let s = exec_stream(&env, &cri, &cid, &["exit", "3"], false, false);
    assert_eq!(s.exit_status(), Ok(3), "{s:?}");
    println!("containerd {version}: exit 3: {}", s.text(channel::ERROR));

    let s = exec_stream(&env, &cri, &cid, &["nosuch"], false, false);
    assert_eq!(s.exit_status(), Ok(127), "{s:?}");
    assert!(
        s.text(channel::STDOUT).contains("unknown command: nosuch"),
        "{s:?}"
    );

    // An exec has one output stream: `err` text comes on stdout too.
    let s = exec_stream(&env, &cri, &cid, &["err", "exec-err"], false, false);
    assert_eq!(s.exit_status(), Ok(0), "{s:?}");
    assert!(s.text(channel::STDOUT).contains("exec-err"), "{s:?}");
    assert!(s.received[channel::STDERR as usize].is_empty(), "{s:?}");

    // `kubectl exec -i` with input: the command does not read it; it ends as
    // usual and so does the stream.
    let url = cri
        .exec_stream_url(&cid, &["sleep", "300"], true, false)
        .unwrap_or_else(|e| panic!("Exec: {e:?}{}", env.diag(&cid)));
    let mut s = ChannelStream::connect(&url).unwrap_or_else(|e| panic!("{e}"));
    s.type_in("not read\n").unwrap_or_else(|e| panic!("{e}"));
    let closed = s
        .read_until(SHOW_UP, |s| s.closed)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(closed, "{s:?}{}", env.diag(&cid));
    assert_eq!(s.exit_status(), Ok(0), "{s:?}");

    let st = status(&env, &cri, &cid);
    assert_eq!(state_name(st.state), "CONTAINER_RUNNING", "{st:?}");
    // The exec's output went to the client, not into the container's log.
    let log = read(&pod.log_path("rtos"));
    assert!(!log.contains("uptime_ms="), "{log}");
    cri.stop_container(&cid, 10)
        .unwrap_or_else(|e| panic!("StopContainer: {e:?}{}", env.diag(&cid)));
    cri.remove_container(&cid).expect("RemoveContainer");
}

/// `kubectl exec -it`: a terminal and stdin (kubectl drops `-t` without `-i`).
/// An RTOS command has no terminal and no stdin; the exec runs as without
/// them, its output on the one channel, a resize accepted.
fn exec_stream_tty(version: &str) {
    let env = env(version);
    let cri = connect(&env);
    let pod = Pod::run(&env, &cri, "exec-tty", &[(PEDESTAL, "sim")]);
    let cid = start_rtos(&env, &cri, &pod, "rtos", false, false, "");

    let s = exec_stream(&env, &cri, &cid, &["stats"], true, true);
    assert_eq!(s.exit_status(), Ok(0), "{s:?}");
    assert!(
        s.text(channel::STDOUT).contains("uptime_ms="),
        "{s:?}{}",
        env.diag(&cid)
    );

    // A resize while the command runs (kubectl sends the terminal's size
    // first), and typed input: accepted, the command ends as usual.
    let url = cri
        .exec_stream_url(&cid, &["sleep", "300"], true, true)
        .unwrap_or_else(|e| panic!("Exec: {e:?}{}", env.diag(&cid)));
    let mut s = ChannelStream::connect(&url).unwrap_or_else(|e| panic!("{e}"));
    s.resize(80, 24).unwrap_or_else(|e| panic!("{e}"));
    s.type_in("ignored\r").unwrap_or_else(|e| panic!("{e}"));
    let closed = s
        .read_until(SHOW_UP, |s| s.closed)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(closed, "{s:?}{}", env.diag(&cid));
    assert_eq!(s.exit_status(), Ok(0), "{s:?}{}", env.diag(&cid));

    let s = exec_stream(&env, &cri, &cid, &["exit", "5"], true, true);
    assert_eq!(s.exit_status(), Ok(5), "{s:?}");
    cri.stop_container(&cid, 10)
        .unwrap_or_else(|e| panic!("StopContainer: {e:?}{}", env.diag(&cid)));
    cri.remove_container(&cid).expect("RemoveContainer");
}

/// A firmware without the agent: the exec fails, and the status on channel 3
/// says why (the shim's message).
fn exec_stream_raw_firmware(version: &str) {
    let env = env(version);
    let cri = connect(&env);
    let img = sim_image("cri", true);
    cri::import_k8s(&env, &img);
    let pod = Pod::run(&env, &cri, "exec-raw", &[(PEDESTAL, "sim")]);
    let cid = pod.create(&env, &cri::container_config("rtos", &img.name, &[]));
    cri.start_container(&cid)
        .unwrap_or_else(|e| panic!("StartContainer: {e:?}{}", env.diag(&cid)));
    let s = exec_stream(&env, &cri, &cid, &["stats"], false, false);
    let e = s.exit_status().expect_err("exec on a raw console");
    println!("containerd {version}: exec on raw: {e}");
    assert!(
        e.contains(
            "exec needs the micrun agent in the firmware, and this container's console is raw"
        ),
        "{e}"
    );
    let st = status(&env, &cri, &cid);
    assert_eq!(state_name(st.state), "CONTAINER_RUNNING", "{st:?}");
    cri.stop_container(&cid, 10)
        .unwrap_or_else(|e| panic!("StopContainer: {e:?}{}", env.diag(&cid)));
    cri.remove_container(&cid).expect("RemoveContainer");
}

macro_rules! cri_tests {
    ($module:ident, $version:literal) => {
        mod $module {
            #[test]
            fn log_streams_apart() {
                super::log_streams_apart($version);
            }
            #[test]
            fn flood_log_is_complete() {
                super::flood_log_is_complete($version);
            }
            #[test]
            fn reopen_container_log() {
                super::reopen_container_log($version);
            }
            #[test]
            fn attach_without_tty() {
                super::attach_without_tty($version);
            }
            #[test]
            fn attach_with_tty() {
                super::attach_with_tty($version);
            }
            #[test]
            fn exec_stream_commands() {
                super::exec_stream_commands($version);
            }
            #[test]
            fn exec_stream_tty() {
                super::exec_stream_tty($version);
            }
            #[test]
            fn exec_stream_raw_firmware() {
                super::exec_stream_raw_firmware($version);
            }
        }
    };
}

cri_tests!(v1_6, "1.6");
cri_tests!(v2_1, "2.1");
