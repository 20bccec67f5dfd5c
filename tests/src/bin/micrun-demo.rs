//! The micrun demo: boots the bare-metal QEMU board firmware in
//! `qemu-system-aarch64 -M virt` and holds a protocol session with its agent, the
//! way the shim will: handshake, console input and output through the demo shell,
//! a stats request, and an exit code reported by the RTOS.
//!
//! Usage: `micrun-demo [COMMAND...]` — shell commands to type (default: a tour).

use std::time::Duration;

use micrun_proto::{HostConfig, HostEvent};
use micrun_tests::{firmware, HostSession, Qemu};

const T: Duration = Duration::from_secs(30);

fn main() {
    let mut commands: Vec<String> = std::env::args().skip(1).collect();
    if commands.iter().any(|a| a == "-h" || a == "--help") {
        println!("usage: micrun-demo [COMMAND...]\n  types each COMMAND into the RTOS demo shell (default: help, hello, echo, uptime, stats, exit 3)");
        return;
    }
    if commands.is_empty() {
        commands = [
            "help",
            "hello",
            "echo hello from Linux",
            "uptime",
            "stats",
            "exit 3",
        ]
        .map(String::from)
        .to_vec();
    }
    if !commands.iter().any(|c| c.starts_with("exit")) {
        commands.push("exit 0".into());
    }

    println!("== building the QEMU board firmware (rtos-side/firmware, aarch64-unknown-none)");
    let fw = firmware(false);
    println!(
        "== booting {} in qemu-system-aarch64 -M virt -cpu cortex-a53 -smp 2 -m 64",
        fw.display()
    );
    let mut q = Qemu::boot(&fw, 2, 64);
    let link = q.uart.try_clone().expect("clone UART socket");
    let mut s = HostSession::new(link, HostConfig::default());

    s.until(T, "the agent's HelloAck", |s| s.ep.is_connected());
    let p = s.ep.peer().expect("connected").clone();
    println!(
        "== connected after {} ms: agent {} on {} ({}), protocol {}.{}, frame {} bytes, features {:#x}",
        s.now_ms(), p.agent_version, p.board, p.os, p.version.major, p.version.minor, p.max_frame, p.features
    );
    let mut shown_events = 0;
    let mut shown_out = 0;
    let mut show = |s: &HostSession<_>| {
        for e in &s.events[shown_events..] {
            match e {
                HostEvent::Pong { .. } | HostEvent::Readable(_) | HostEvent::Connected(_) => {}
                e => println!("   [event] {e:?}"),
            }
        }
        shown_events = s.events.len();
        let text = String::from_utf8_lossy(&s.stdout[shown_out..]).replace('\r', "");
        for line in text.lines() {
            println!("   [stdout] {line}");
        }
        // Keep a partial line (the prompt) for the next round.
        shown_out = s.stdout.len();
    };

    let mut at = s.expect_stdout(0, "> ", T);
    show(&s);
    for cmd in &commands {
        println!("== typing: {cmd}");
        s.type_line(cmd);
        if cmd.starts_with("exit") || cmd == "panic" {
            s.until(T, "the exit report", |s| {
                s.events
                    .iter()
                    .any(|e| matches!(e, HostEvent::Exited { .. }))
            });
            show(&s);
            break;
        }
        at = s.expect_stdout(at, "> ", T);
        show(&s);
        if cmd == "stats" {
            println!("== StatsRequest over the protocol");
            s.ep.request_stats().expect("queue");
            s.until(T, "Stats", |s| {
                s.events.iter().any(|e| matches!(e, HostEvent::Stats(_)))
            });
            show(&s);
        }
    }
    // Keep the session going so the agent sees its report acknowledged; it then
    // powers the board off.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(st) = q.try_wait() {
            println!("== the board powered off (PSCI SYSTEM_OFF); qemu {st}");
            break;
        }
        if std::time::Instant::now() > deadline {
            println!("== the board is still running; stopping QEMU");
            break;
        }
        s.step();
    }
    let c = s.ep.counters();
    println!("== link counters: {c:?}");
}
