//! Message decoding, both directions: `HostMsg::decode` (what an agent reads) and
//! `RtosMsg::decode` (what the host reads) on arbitrary payloads. A decoded message
//! re-encodes to a canonical form no longer than the input that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use micrun_proto::{HostMsg, RtosMsg};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = HostMsg::decode(data) {
        let mut buf = vec![0u8; data.len()];
        let n = m.encode(&mut buf).expect("a decoded message re-encodes");
        assert!(n <= data.len(), "canonical form is never longer");
        assert_eq!(HostMsg::decode(&buf[..n]), Ok(m));
    }
    if let Ok(m) = RtosMsg::decode(data) {
        let mut buf = vec![0u8; data.len()];
        let n = m.encode(&mut buf).expect("a decoded message re-encodes");
        assert!(n <= data.len(), "canonical form is never longer");
        assert_eq!(RtosMsg::decode(&buf[..n]), Ok(m));
    }
});
