//! The PVH start info the loader leaves, and the heap's place in its
//! memory map: the structure, the command line it points to and the
//! memory map entries, anywhere in memory with any values.
//!
//! Checked: no magic, no start info; the command line is at most 1024
//! bytes of UTF-8 and `cmdline_truncated` only when the limit was hit;
//! at most 32 regions, as many as claimed and readable; the heap is the
//! largest piece of RAM between the kernel's end and the identity map's
//! end, inside one RAM region; the firmware ranges the ACPI walk may
//! read (the kernel's `IdentityMapped::from_map`) cover exactly the
//! reserved and ACPI regions plus the BIOS area, never the chipset window.
//!
//! Input: flags, the structure's 56 bytes, the command line's and the
//! map's addresses and bytes, the kernel's end, and addresses to check.
use acpi::{FirmwareRanges, BIOS_AREA, CHIPSET_WINDOW};
use boot::{heap_range, BootInfo, MemoryType, START_INFO_MAGIC};

use crate::bytes::Bytes;
use crate::mem::{address, Memory};

/// The identity map's end (kernel/src/memory.rs `IDENTITY_MAPPED_END`).
const LIMIT: u64 = 4 << 30;

pub fn run(data: &[u8]) {
    let mut input = Bytes::new(data);
    let flags = input.u8();
    let paddr = if flags & 1 != 0 {
        0x1000
    } else {
        address(&mut input)
    };
    let mut raw = input.take(56).to_vec();
    raw.resize(56, 0);
    if flags & 2 != 0 {
        raw[0..4].copy_from_slice(&START_INFO_MAGIC.to_le_bytes());
    }
    let cmdline_at = address(&mut input);
    let memmap_at = address(&mut input);
    if flags & 4 != 0 {
        raw[24..32].copy_from_slice(&cmdline_at.to_le_bytes());
    }
    if flags & 8 != 0 {
        raw[40..48].copy_from_slice(&memmap_at.to_le_bytes());
    }
    let n = input_len(&mut input);
    let cmdline = input.take(usize::from(n)).to_vec();
    let n = input_len(&mut input);
    let memmap = input.take(usize::from(n)).to_vec();
    let mut mem = Memory::default();
    let magic_ok = raw[0..4] == START_INFO_MAGIC.to_le_bytes();
    mem.put(paddr, raw.clone());
    mem.put(cmdline_at, cmdline.clone());
    mem.put(memmap_at, memmap);

    let info = BootInfo::parse(paddr, |a, buf| mem.read(a, buf));
    let readable = paddr.checked_add(56).is_some();
    let Some(info) = info else {
        assert!(
            !magic_ok || !readable,
            "a start info with its magic was refused"
        );
        return;
    };
    assert!(magic_ok, "a start info without the magic");
    assert!(info.cmdline().len() <= 1024);
    if info.cmdline_truncated {
        assert!(
            mem.reads.get() > 1024,
            "truncated without reaching the limit"
        );
    }
    let claimed = u32::from_le_bytes(raw[48..52].try_into().unwrap()) as usize;
    let map = info.memory_map();
    assert!(map.len() <= 32 && map.len() <= claimed);
    if info.version == 0 {
        assert!(map.is_empty(), "a version-0 start info has no map");
    }

    // The heap (kernel/src/memory.rs `choose_heap`).
    let floor = match input.u8() % 3 {
        0 => 0x60_0000,
        1 => u64::from(input.u32()),
        _ => input.u64(),
    };
    let (best, usable) = heap_range(map, floor, LIMIT);
    let ram = || map.iter().filter(|r| r.kind == MemoryType::Ram);
    let sum = ram().fold(0u64, |s, r| s.saturating_add(r.len));
    assert_eq!(usable, sum);
    let clipped = |r: &boot::MemoryRegion| {
        let start = r.start.max(floor);
        let end = r.start.saturating_add(r.len).min(LIMIT);
        end.saturating_sub(start)
    };
    let largest = ram().map(clipped).max().unwrap_or(0);
    match best {
        Some((start, len)) => {
            assert!(len > 0 && start >= floor && start + len <= LIMIT);
            assert_eq!(len, largest, "not the largest piece");
            assert!(
                ram().any(|r| r.start <= start && start + len <= r.start.saturating_add(r.len)),
                "the heap is not inside one RAM region"
            );
        }
        None => assert_eq!(largest, 0, "RAM left unused"),
    }

    // The firmware ranges (kernel/src/memory.rs `IdentityMapped::from_map`).
    let mut ranges = FirmwareRanges::new();
    let mut added = vec![BIOS_AREA];
    for r in map {
        if matches!(
            r.kind,
            MemoryType::Reserved | MemoryType::AcpiReclaimable | MemoryType::AcpiNvs
        ) && ranges.add(r.start, r.len)
        {
            added.push((r.start, r.start + r.len));
        }
    }
    while !input.is_empty() {
        let addr = match input.u8() % 3 {
            0 => address(&mut input),
            1 => map
                .get(usize::from(input.u8()) % map.len().max(1))
                .map_or(0, |r| r.start)
                .wrapping_add(u64::from(input.u8()))
                .wrapping_sub(32),
            _ => CHIPSET_WINDOW.0 - 16 + u64::from(input.u8()),
        };
        let len = usize::from(input.u8() % 65);
        let want = len > 0
            && addr.checked_add(len as u64).is_some_and(|end| {
                !(addr < CHIPSET_WINDOW.1 && end > CHIPSET_WINDOW.0)
                    && (addr..end).all(|a| added.iter().any(|&(s, e)| s <= a && a < e))
            });
        assert_eq!(ranges.covers(addr, len), want, "{addr:#x}+{len}");
    }
}

/// A length up to 4 KiB, mostly short.
fn input_len(input: &mut Bytes) -> u16 {
    if input.bool() {
        u16::from(input.u8())
    } else {
        input.u16() % 4096
    }
}
