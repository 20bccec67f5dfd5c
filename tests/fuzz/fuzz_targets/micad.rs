//! What the shim reads from micad (`pedestal/micad.rs`): whole replies
//! (`Reply::parse`), the `status` reply (`Status::parse`, `Status::parse_of` with an
//! arbitrary instance name), the create message (`CreateMsg::decode`), and the
//! console's newline restoration (`NewlineRestorer`) over arbitrary chunks.
//! Input: `chunk n id[n] reply...`. Checked: no panic; errors render; a decoded create message encodes and decodes
//! to itself, unless its name is one micrun never sends (encode refuses only that); restoring micad's translation gives the firmware's bytes back, however
//! the output is cut.
#![no_main]

use libfuzzer_sys::fuzz_target;
use micrun_shim::pedestal::micad::{
    micad_translate_newlines, CreateMsg, MicadError, NewlineRestorer, Reply, Status, CREATE_MSG_LEN,
};

fn status(parsed: Result<Status, MicadError>, id: &str) {
    match parsed {
        Ok(s) => {
            let _ = s.is_of(id);
            let _ = s.service_entries().count();
            let _ = s.tty();
        }
        Err(e) => drop(e.to_string()),
    }
}

fn restore(bytes: &[u8], chunk: usize) -> Vec<u8> {
    let mut r = NewlineRestorer::new();
    let mut out = Vec::new();
    for piece in bytes.chunks(chunk) {
        r.restore(piece, &mut out);
    }
    r.finish(&mut out);
    out
}

fuzz_target!(|data: &[u8]| {
    // chunk n id[n] reply...
    let [chunk, n, rest @ ..] = data else {
        return;
    };
    let (id, bytes) = rest.split_at(usize::from(*n).min(rest.len()));
    let id = String::from_utf8_lossy(id);
    let _ = Reply::parse(bytes);
    let text = String::from_utf8_lossy(bytes);
    status(Status::parse(&text), &id);
    status(Status::parse_of(&text, &id), &id);

    if bytes.len() >= CREATE_MSG_LEN {
        match CreateMsg::decode(&bytes[..CREATE_MSG_LEN]) {
            // decode reads any name on the wire; encode refuses the names micad
            // cannot use (a '/', "..", ...): the only reason it may refuse.
            Ok(msg) => match msg.encode() {
                Ok(again) => assert_eq!(CreateMsg::decode(&again).expect("decodes"), msg),
                Err(MicadError::InvalidName { .. }) => {}
                Err(e) => panic!("a decoded create message does not encode: {e}"),
            },
            Err(e) => drop(e.to_string()),
        }
    }

    let chunk = usize::from(*chunk) + 1;
    assert_eq!(restore(&micad_translate_newlines(bytes), chunk), bytes);
    assert_eq!(restore(bytes, chunk), restore(bytes, bytes.len().max(1)));
});
