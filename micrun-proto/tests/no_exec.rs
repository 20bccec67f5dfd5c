//! The RTOS endpoint without the `rtos-exec` feature (as an agent built without
//! exec has it): it does not offer exec, has no exec output stream, and takes a
//! stray `ExecStart` as unexpected (acknowledged, no event). Run with
//! `cargo test -p micrun-proto --no-default-features --test no_exec`.
#![cfg(not(feature = "rtos-exec"))]

use micrun_proto::frame::{self, Header, HEADER_LEN};
use micrun_proto::msg::{features, Hello, PROTOCOL_VERSION};
use micrun_proto::{HostMsg, LinkKind, RtosConfig, RtosEndpoint, RtosEvent, RtosMsg, Stream};

/// A raw frame (message link: no COBS) carrying `msg`.
fn frame(seq: Option<u8>, msg: &HostMsg<'_>) -> Vec<u8> {
    let mut buf = [0u8; 256];
    frame::write_header(&mut buf, Header { seq, ack: 0 });
    let n = msg.encode(&mut buf[HEADER_LEN..]).unwrap();
    let len = frame::seal(&mut buf, HEADER_LEN + n);
    buf[..len].to_vec()
}

/// Every frame the endpoint has to send, decoded.
fn sent(rtos: &mut RtosEndpoint, now: u64) -> Vec<(Header, Vec<u8>)> {
    let mut out = vec![];
    let mut buf = [0u8; 256];
    while let Some(n) = rtos.poll_transmit(now, &mut buf) {
        let (h, payload) = frame::open(&buf[..n]).unwrap();
        out.push((h, payload.to_vec()));
    }
    out
}

#[test]
fn without_exec_the_agent_does_not_offer_it_and_ignores_a_stray_start() {
    assert_eq!(RtosConfig::default().features & features::EXEC, 0);
    let mut rtos: RtosEndpoint = RtosEndpoint::new(RtosConfig {
        link: LinkKind::Message,
        announce_interval_ms: 0,
        ..RtosConfig::default()
    });
    let hello = Hello {
        version: PROTOCOL_VERSION,
        features: features::ALL,
        max_frame: 496,
        session: 7,
    };
    rtos.handle_input(1, &frame(None, &HostMsg::Hello(hello)));
    let ack = sent(&mut rtos, 1);
    let Ok(RtosMsg::HelloAck(a)) = RtosMsg::decode(&ack[0].1) else {
        panic!("no HelloAck: {ack:?}");
    };
    assert_eq!(a.features & features::EXEC, 0, "exec offered");
    assert!(matches!(
        rtos.poll_event(),
        Some(RtosEvent::Connected { .. })
    ));

    // No exec output stream, no exec report.
    assert_eq!(rtos.write(Stream::Exec, b"out"), 0);
    assert_eq!(rtos.write_free(Stream::Exec), 0);
    assert!(!rtos.send_exec_exited(0));

    // A host that starts an exec anyway: acknowledged, counted, no event.
    let start = HostMsg::ExecStart {
        exec: 1,
        argv: b"ls\0",
    };
    rtos.handle_input(2, &frame(Some(0), &start));
    assert_eq!(rtos.poll_event(), None);
    assert_eq!(rtos.exec_argv(), b"");
    assert_eq!(rtos.counters().unexpected, 1);
    let acks = sent(&mut rtos, 2);
    assert!(
        acks.iter().any(|(h, _)| h.ack == 1),
        "ExecStart not acknowledged: {acks:?}"
    );
}
