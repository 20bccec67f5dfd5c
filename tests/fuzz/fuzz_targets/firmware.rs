//! The firmware inspector (`firmware::inspect`, and `validate_elf`) on arbitrary
//! bytes written to a scratch file, with arbitrary image hints (kind, load address,
//! architecture), accepted architectures and pedestal abilities. Input:
//! `flags kind arch archs load_address[8] file...` (flags: bit 0 the pedestal boots
//! other kinds than ELF, bit 1 the file is named `.fd`, bits 2, 3, 4 the kind, arch
//! and load address hints are set).
//! Checked: no panic; errors render; what is accepted has an accepted architecture.
#![no_main]

use libfuzzer_sys::fuzz_target;
use micrun_shim::firmware::{self, Arch, ImageHints, ImageKind};

const ARCHS: [Arch; 5] = [
    Arch::Aarch64,
    Arch::Arm,
    Arch::Riscv64,
    Arch::Riscv32,
    Arch::X86_64,
];
const KINDS: [ImageKind; 3] = [ImageKind::Elf, ImageKind::Raw, ImageKind::Bios];

fuzz_target!(|data: &[u8]| {
    // flags kind arch archs load_address[8] bytes...
    let [flags, kind, arch, archs, rest @ ..] = data else {
        return;
    };
    let Some((load, bytes)) = rest.split_first_chunk::<8>() else {
        return;
    };
    let name = if flags & 2 != 0 {
        "firmware.fd"
    } else {
        "firmware.elf"
    };
    let path = micrun_fuzz::scratch(name);
    std::fs::write(&path, bytes).expect("scratch write");

    let archs: Vec<Arch> = ARCHS
        .iter()
        .enumerate()
        .filter(|(i, _)| archs & (1 << i) != 0)
        .map(|(_, a)| *a)
        .collect();
    let archs = if archs.is_empty() {
        vec![Arch::Aarch64]
    } else {
        archs
    };
    let hints = ImageHints {
        kind: (flags & 4 != 0).then(|| KINDS[usize::from(*kind) % KINDS.len()]),
        load_address: (flags & 16 != 0).then(|| u64::from_le_bytes(*load)),
        arch: (flags & 8 != 0).then(|| ARCHS[usize::from(*arch) % ARCHS.len()]),
    };
    let other_kinds = flags & 1 != 0;
    match firmware::inspect(&path, &hints, &archs, "fuzz", other_kinds) {
        Ok(image) => assert!(archs.contains(&image.arch), "{image:?} for {archs:?}"),
        Err(e) => drop(e.to_string()),
    }
    match firmware::validate_elf(&path, archs[0]) {
        Ok(info) => assert_eq!(info.arch, archs[0]),
        Err(e) => drop(e.to_string()),
    }
    let _ = std::fs::remove_file(&path);
});
