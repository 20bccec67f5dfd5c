//! The QEMU board firmware (bare-metal aarch64, PL011 UART, generic timer, PSCI)
//! booted in a real `qemu-system-aarch64 -M virt`, driven over the micrun protocol
//! by the host endpoint, and in raw mode as plain console bytes.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use micrun_proto::{ExitReason, HostConfig, HostEvent};
use micrun_tests::{find, firmware, HostSession, Qemu};

const T: Duration = Duration::from_secs(20);

#[test]
fn agent_session_handshake_echo_stats_exit() {
    let fw = firmware(false);
    let mut q = Qemu::boot(&fw, 2, 64);
    let uart = q.uart.try_clone().unwrap();
    let mut s = HostSession::new(uart, HostConfig::default());

    s.until(T, "HelloAck", |s| s.ep.is_connected());
    let peer = s.ep.peer().unwrap().clone();
    assert_eq!(peer.board, "qemu-virt");
    assert_eq!(peer.agent_version, micrun_rtos_version());
    s.until(T, "Ready", |s| s.events.contains(&HostEvent::Ready));

    // The banner was produced before we connected and kept for us.
    let at = s.expect_stdout(0, "micrun demo shell on qemu-virt", T);
    s.type_line("echo hello over the protocol");
    let at = s.expect_stdout(at, "hello over the protocol\r\n", T);

    s.type_line("stats");
    let at = s.expect_stdout(at, "mem_total_kib=", T);
    let stats = s.stats(T);
    assert!(stats.uptime_ms > 0);
    assert!(stats.cpu_load_permille <= 1000);
    // -m 64: the board reports the memory QEMU gave it.
    assert_eq!(stats.mem_total_kib, 64 * 1024, "{stats:?}");

    s.type_line("exit 3");
    s.until(T, "Exited", |s| {
        s.events
            .iter()
            .any(|e| matches!(e, HostEvent::Exited { .. }))
    });
    assert!(s.events.contains(&HostEvent::Exited {
        code: 3,
        reason: ExitReason::Normal
    }));
    let _ = at;
    // The board powers off (PSCI SYSTEM_OFF) once the report is acknowledged.
    let deadline = Instant::now() + T;
    while q.try_wait().is_none() {
        assert!(
            Instant::now() < deadline,
            "QEMU did not power off after exit"
        );
        s.step();
    }
    assert_eq!(s.ep.counters().errors(), 0, "{:?}", s.ep.counters());
}

#[test]
fn agent_stop_request_exits_zero() {
    let fw = firmware(false);
    let mut q = Qemu::boot(&fw, 1, 64);
    let mut s = HostSession::new(q.uart.try_clone().unwrap(), HostConfig::default());
    s.until(T, "connect", |s| s.ep.is_connected());
    s.ep.send_stop(1000).unwrap();
    s.until(T, "Exited", |s| {
        s.events
            .iter()
            .any(|e| matches!(e, HostEvent::Exited { .. }))
    });
    assert!(s.events.contains(&HostEvent::Exited {
        code: 0,
        reason: ExitReason::Normal
    }));
    s.expect_stdout(0, "stopping\r\n", T);
    // The board powers off as soon as the host has acknowledged the report.
    let t0 = Instant::now();
    while q.try_wait().is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "QEMU did not power off after the acknowledged exit"
        );
        s.step();
    }
}

#[test]
fn raw_image_is_a_plain_console() {
    let fw = firmware(true);
    let mut q = Qemu::boot(&fw, 1, 64);
    q.uart
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut out = Vec::new();
    let read_until = |q: &mut Qemu, out: &mut Vec<u8>, needle: &str| {
        let deadline = Instant::now() + T;
        while find(out, needle.as_bytes()).is_none() {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in {:?}",
                String::from_utf8_lossy(out)
            );
            let mut b = [0u8; 512];
            if let Ok(n) = q.uart.read(&mut b) {
                out.extend_from_slice(&b[..n]);
            }
        }
    };
    read_until(&mut q, &mut out, "> ");
    assert!(find(&out, b"micrun demo shell on qemu-virt").is_some());
    q.uart.write_all(b"echo raw works\r").unwrap();
    read_until(&mut q, &mut out, "raw works\r\n");
    q.uart.write_all(b"exit 3\r").unwrap();
    assert!(
        q.wait_exit(T).is_some(),
        "QEMU powered off after exit in raw mode"
    );
}

fn micrun_rtos_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}
