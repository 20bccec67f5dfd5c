//! The image index reader (`image::read_index`: the JSON index a multi-firmware
//! image carries) on arbitrary bytes: the parser itself (`image::parse_index`), and
//! `read_index` on a scratch root filesystem that holds them. Checked: no panic;
//! both agree; an index that parses lists firmware, renders its tuples, and reads
//! back the same once written as JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use micrun_shim::image;

fuzz_target!(|data: &[u8]| {
    let parsed = image::parse_index(data);
    if let Ok(index) = &parsed {
        assert!(!index.firmware.is_empty());
        drop(image::tuple_list(&index.firmware));
        let json = serde_json::to_vec(index).expect("an index serializes");
        assert_eq!(image::parse_index(&json).as_ref(), Ok(index), "round trip");
    }
    let rootfs = micrun_fuzz::scratch("rootfs");
    let path = rootfs.join(image::INDEX_PATH);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("scratch dir");
    std::fs::write(&path, data).expect("scratch write");
    match image::read_index(&rootfs) {
        Ok(read) => assert_eq!(read.as_ref(), parsed.as_ref().ok()),
        Err(e) => {
            assert!(parsed.is_err());
            drop(e.to_string())
        }
    }
});
