//! The one thing the firmware wants from the device tree: how much RAM there is.

const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

/// A device tree blob larger than this is not believed (QEMU's virt DTB is ~8 KiB;
/// QEMU caps a generated one at 1 MiB).
pub const MAX_SIZE: usize = 2 << 20;

fn be32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// `totalsize` from a header, if the first 8 bytes look like a DTB header.
pub fn header_total_size(head: &[u8; 8]) -> Option<usize> {
    if be32(head, 0)? != FDT_MAGIC {
        return None;
    }
    let total = be32(head, 4)? as usize;
    (40..=MAX_SIZE).contains(&total).then_some(total)
}

fn cstr(b: &[u8], off: usize) -> Option<&[u8]> {
    let rest = b.get(off..)?;
    let len = rest.iter().position(|&c| c == 0)?;
    Some(&rest[..len])
}

fn cells(b: &[u8], n: u32) -> Option<u64> {
    match n {
        1 => be32(b, 0).map(u64::from),
        2 => Some((u64::from(be32(b, 0)?) << 32) | u64::from(be32(b, 4)?)),
        _ => None,
    }
}

/// Sum of the sizes in the `reg` of every top-level `memory` node, in bytes.
/// Every read is bounds-checked: a malformed blob gives `None`, never a fault.
pub fn memory_size(dtb: &[u8]) -> Option<u64> {
    if be32(dtb, 0)? != FDT_MAGIC {
        return None;
    }
    let total = (be32(dtb, 4)? as usize).min(dtb.len());
    let dtb = &dtb[..total];
    let off_struct = be32(dtb, 8)? as usize;
    let off_strings = be32(dtb, 12)? as usize;
    let strings = dtb.get(off_strings..)?;

    let (mut addr_cells, mut size_cells) = (2u32, 1u32);
    let mut depth = 0u32;
    let mut in_memory = false;
    let mut sum = 0u64;
    let mut found = false;
    let mut pos = off_struct;
    loop {
        let token = be32(dtb, pos)?;
        pos += 4;
        match token {
            FDT_BEGIN_NODE => {
                let name = cstr(dtb, pos)?;
                pos += (name.len() + 1 + 3) & !3;
                depth += 1;
                in_memory = depth == 2 && (name == b"memory" || name.starts_with(b"memory@"));
            }
            FDT_END_NODE => {
                depth = depth.checked_sub(1)?;
                in_memory = false;
            }
            FDT_PROP => {
                let len = be32(dtb, pos)? as usize;
                let name = cstr(strings, be32(dtb, pos + 4)? as usize)?;
                let value = dtb.get(pos + 8..(pos + 8).checked_add(len)?)?;
                pos += 8 + ((len + 3) & !3);
                if depth == 1 && name == b"#address-cells" {
                    addr_cells = be32(value, 0)?;
                } else if depth == 1 && name == b"#size-cells" {
                    size_cells = be32(value, 0)?;
                } else if in_memory && name == b"reg" {
                    let entry = (addr_cells + size_cells) as usize * 4;
                    if entry == 0 {
                        return None;
                    }
                    for e in value.chunks_exact(entry) {
                        sum = sum.saturating_add(cells(&e[addr_cells as usize * 4..], size_cells)?);
                        found = true;
                    }
                }
            }
            FDT_NOP => {}
            FDT_END => break,
            _ => return None,
        }
    }
    found.then_some(sum)
}
