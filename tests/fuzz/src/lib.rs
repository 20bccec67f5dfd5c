//! Helpers shared by the fuzz targets in `fuzz_targets/`: checks on what an endpoint
//! transmits, sealing fuzzer records into valid frames, and a per-process scratch
//! file for the parsers that read from a path.

use std::path::PathBuf;

use micrun_proto::frame::{self, MAX_FRAME};
use micrun_proto::{HostMsg, LinkKind, RtosMsg};

/// Checks one transmitted frame: delimited and stuffed on a stream link, within the
/// frame size, a valid CRC, and a payload the peer decodes (`host`: the host sent it).
pub fn check_tx(link: LinkKind, out: &[u8], host: bool) {
    let mut raw = out.to_vec();
    if link == LinkKind::Stream {
        assert_eq!(raw.last(), Some(&0), "delimited");
        assert!(!raw[..raw.len() - 1].contains(&0), "stuffed");
        let n = frame::cobs_decode_in_place(&mut raw, out.len() - 1).expect("valid COBS");
        raw.truncate(n);
    }
    assert!(raw.len() <= MAX_FRAME);
    let (_, payload) = frame::open(&raw).expect("valid CRC");
    if !payload.is_empty() {
        if host {
            assert!(HostMsg::decode(payload).is_ok(), "host sent {payload:02x?}");
        } else {
            assert!(
                RtosMsg::decode(payload).is_ok(),
                "agent sent {payload:02x?}"
            );
        }
    }
}

/// Seals `body` (header and payload, at most `MAX_FRAME - CRC_LEN` bytes) into a
/// frame for `link`: CRC, and COBS with its delimiter on a stream link. A body
/// shorter than the header is returned as is (a runt).
pub fn seal(body: &[u8], link: LinkKind) -> Vec<u8> {
    let n = body.len().min(MAX_FRAME - frame::CRC_LEN);
    if n < frame::HEADER_LEN {
        return body[..n].to_vec();
    }
    let mut raw = vec![0u8; n + frame::CRC_LEN];
    raw[..n].copy_from_slice(&body[..n]);
    let n = frame::seal(&mut raw, n);
    match link {
        LinkKind::Message => raw,
        LinkKind::Stream => {
            let off = n / 254 + 1;
            let mut wire = vec![0u8; off + frame::wire_len(n)];
            wire[off..off + n].copy_from_slice(&raw);
            let w = frame::cobs_encode_in_place(&mut wire, off, n);
            wire.truncate(w);
            wire
        }
    }
}

/// A scratch path private to this fuzzing process (`name` tells files apart).
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("micrun-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir.join(name)
}
