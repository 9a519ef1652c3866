//! `struct hvm_start_info` (xen/include/public/arch-x86/hvm/start_info.h),
//! read once at entry into a plain `BootInfo`.

/// `XEN_HVM_START_MAGIC_VALUE`.
pub const START_INFO_MAGIC: u32 = 0x336e_c578;

/// Most memory map entries kept; QEMU gives 3-5, Xen HVM a few more.
const MAX_REGIONS: usize = 32;
/// Longest command line kept; the rest is cut (and said so by `cmdline_truncated`).
const MAX_CMDLINE: usize = 1024;

/// `XEN_HVM_MEMMAP_TYPE_*`, the E820 types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryType {
    Ram,
    Reserved,
    AcpiReclaimable,
    AcpiNvs,
    Unusable,
    Unknown(u32),
}

impl From<u32> for MemoryType {
    fn from(v: u32) -> Self {
        match v {
            1 => Self::Ram,
            2 => Self::Reserved,
            3 => Self::AcpiReclaimable,
            4 => Self::AcpiNvs,
            5 => Self::Unusable,
            n => Self::Unknown(n),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRegion {
    pub start: u64,
    pub len: u64,
    pub kind: MemoryType,
}

/// What the loader told us, copied out of its memory so nothing points
/// into pages the heap may later cover.
pub struct BootInfo {
    cmdline: [u8; MAX_CMDLINE],
    cmdline_len: usize,
    pub cmdline_truncated: bool,
    regions: [MemoryRegion; MAX_REGIONS],
    region_count: usize,
    /// Physical address of the ACPI RSDP, when the loader gave one.
    pub rsdp: Option<u64>,
    /// `hvm_start_info.version`: 0 has no memory map.
    pub version: u32,
}

/// `struct hvm_start_info`: its size, and the offsets of the fields read.
const RAW_LEN: usize = 56;
const RAW_MAGIC: usize = 0;
const RAW_VERSION: usize = 4;
const RAW_CMDLINE: usize = 24;
const RAW_RSDP: usize = 32;
const RAW_MEMMAP: usize = 40;
const RAW_MEMMAP_ENTRIES: usize = 48;
/// `struct hvm_memmap_table_entry`: addr u64, size u64, type u32, reserved.
const RAW_ENTRY_LEN: usize = 24;

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

impl BootInfo {
    /// Copies the start info at physical address `paddr`.
    ///
    /// # Safety
    /// Paging identity-maps `paddr` and everything the structure points to,
    /// and the loader really left an `hvm_start_info` there (the magic is
    /// checked, the rest is trusted: it comes from our own loader).
    #[cfg(target_os = "none")]
    pub(crate) unsafe fn read(paddr: u64) -> Option<Self> {
        Self::parse(paddr, |addr, buf| {
            // SAFETY: the caller vouches that the start info and what it
            // points to are identity mapped; `parse` reads only those.
            unsafe {
                core::ptr::copy_nonoverlapping(addr as *const u8, buf.as_mut_ptr(), buf.len())
            };
            true
        })
    }

    /// Copies the start info at physical address `paddr` out of the
    /// loader's memory, read through `read` (false: not readable). `None`
    /// without the magic or when the structure itself is unreadable; a
    /// command line or memory map that cannot be read is cut where it
    /// stops. Safe code over any memory, so it is fuzzed on the host.
    pub fn parse(paddr: u64, mut read: impl FnMut(u64, &mut [u8]) -> bool) -> Option<Self> {
        let mut raw = [0u8; RAW_LEN];
        if !read(paddr, &mut raw) || u32_at(&raw, RAW_MAGIC) != START_INFO_MAGIC {
            return None;
        }
        let rsdp = u64_at(&raw, RAW_RSDP);
        let mut info = BootInfo {
            cmdline: [0; MAX_CMDLINE],
            cmdline_len: 0,
            cmdline_truncated: false,
            regions: [MemoryRegion {
                start: 0,
                len: 0,
                kind: MemoryType::Unusable,
            }; MAX_REGIONS],
            region_count: 0,
            rsdp: (rsdp != 0).then_some(rsdp),
            version: u32_at(&raw, RAW_VERSION),
        };
        let cmdline = u64_at(&raw, RAW_CMDLINE);
        if cmdline != 0 {
            // A NUL-terminated string: read byte by byte up to the NUL.
            loop {
                let mut b = [0u8];
                let readable = cmdline
                    .checked_add(info.cmdline_len as u64)
                    .is_some_and(|at| read(at, &mut b));
                if !readable || b[0] == 0 {
                    break;
                }
                if info.cmdline_len == MAX_CMDLINE {
                    info.cmdline_truncated = true;
                    break;
                }
                info.cmdline[info.cmdline_len] = b[0];
                info.cmdline_len += 1;
            }
        }
        let memmap = u64_at(&raw, RAW_MEMMAP);
        if info.version >= 1 && memmap != 0 {
            let entries = (u32_at(&raw, RAW_MEMMAP_ENTRIES) as usize).min(MAX_REGIONS);
            for i in 0..entries {
                let mut e = [0u8; RAW_ENTRY_LEN];
                let readable = memmap
                    .checked_add((i * RAW_ENTRY_LEN) as u64)
                    .is_some_and(|at| read(at, &mut e));
                if !readable {
                    break;
                }
                info.regions[i] = MemoryRegion {
                    start: u64_at(&e, 0),
                    len: u64_at(&e, 8),
                    kind: MemoryType::from(u32_at(&e, 16)),
                };
                info.region_count += 1;
            }
        }
        Some(info)
    }

    /// The kernel command line; bytes that are not UTF-8 are cut at the
    /// first bad one (a config parser wants text).
    pub fn cmdline(&self) -> &str {
        let bytes = &self.cmdline[..self.cmdline_len];
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        }
    }

    /// The loader's memory map; empty for a version-0 start info.
    pub fn memory_map(&self) -> &[MemoryRegion] {
        &self.regions[..self.region_count]
    }
}

/// The heap's place in the loader's memory map: the largest stretch of RAM
/// between `floor` (the kernel's end) and `limit` (the end of the identity
/// map), as `(start, len)`, and the RAM the map lists in all. The map is
/// the loader's, but a broken one (overlaps, lengths that wrap) gives a
/// wrong answer, never a panic: sums saturate.
pub fn heap_range(map: &[MemoryRegion], floor: u64, limit: u64) -> (Option<(u64, u64)>, u64) {
    let mut usable: u64 = 0;
    let mut best: Option<(u64, u64)> = None;
    for r in map.iter().filter(|r| r.kind == MemoryType::Ram) {
        usable = usable.saturating_add(r.len);
        let start = r.start.max(floor);
        let end = r.start.saturating_add(r.len).min(limit);
        if end > start && best.is_none_or(|(s, e)| end - start > e - s) {
            best = Some((start, end));
        }
    }
    (best.map(|(s, e)| (s, e - s)), usable)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loader memory: one blob at `base`.
    fn reader(base: u64, mem: &[u8]) -> impl FnMut(u64, &mut [u8]) -> bool + '_ {
        move |addr, buf| {
            let Some(at) = addr.checked_sub(base).map(|a| a as usize) else {
                return false;
            };
            match mem.get(at..at.saturating_add(buf.len())) {
                Some(src) if src.len() == buf.len() => {
                    buf.copy_from_slice(src);
                    true
                }
                _ => false,
            }
        }
    }

    /// A start info at `0x1000` as QEMU lays it out: the structure, then
    /// the command line at 0x1100 and the memory map at 0x1200.
    fn qemu_like(version: u32, cmdline: &[u8], map: &[(u64, u64, u32)], entries: u32) -> Vec<u8> {
        let mut m = vec![0u8; 0x400];
        m[0..4].copy_from_slice(&START_INFO_MAGIC.to_le_bytes());
        m[4..8].copy_from_slice(&version.to_le_bytes());
        m[24..32].copy_from_slice(&0x1100u64.to_le_bytes());
        m[32..40].copy_from_slice(&0xf_5a40u64.to_le_bytes());
        m[40..48].copy_from_slice(&0x1200u64.to_le_bytes());
        m[48..52].copy_from_slice(&entries.to_le_bytes());
        m[0x100..0x100 + cmdline.len()].copy_from_slice(cmdline);
        for (i, &(addr, size, kind)) in map.iter().enumerate() {
            let e = 0x200 + i * RAW_ENTRY_LEN;
            m[e..e + 8].copy_from_slice(&addr.to_le_bytes());
            m[e + 8..e + 16].copy_from_slice(&size.to_le_bytes());
            m[e + 16..e + 20].copy_from_slice(&kind.to_le_bytes());
        }
        m
    }

    #[test]
    fn a_qemu_start_info_gives_command_line_rsdp_and_map() {
        let map = [
            (0, 0x9fc00, 1),
            (0x10_0000, 0x7ee_0000, 1),
            (0xfffc_0000, 0x4_0000, 2),
        ];
        let m = qemu_like(1, b"uplinks=0,1 mode=literal\0", &map, 3);
        let info = BootInfo::parse(0x1000, reader(0x1000, &m)).unwrap();
        assert_eq!(info.cmdline(), "uplinks=0,1 mode=literal");
        assert!(!info.cmdline_truncated);
        assert_eq!(info.rsdp, Some(0xf_5a40));
        let kinds: Vec<_> = info.memory_map().iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [MemoryType::Ram, MemoryType::Ram, MemoryType::Reserved]
        );
        assert_eq!(info.memory_map()[1].len, 0x7ee_0000);
    }

    #[test]
    fn bad_magic_version_0_and_unreadable_parts() {
        let mut m = qemu_like(1, b"x\0", &[(0, 0x1000, 1)], 1);
        assert!(BootInfo::parse(0x1000, reader(0x1000, &m)).is_some());
        assert!(BootInfo::parse(0x1001, reader(0x1000, &m)).is_none());
        // A map claiming 4 billion entries is cut where memory ends (or
        // at MAX_REGIONS).
        m[48..52].copy_from_slice(&u32::MAX.to_le_bytes());
        let info = BootInfo::parse(0x1000, reader(0x1000, &m)).unwrap();
        assert_eq!(info.memory_map().len(), (0x400 - 0x200) / RAW_ENTRY_LEN);
        // Version 0 has no map.
        m[4..8].copy_from_slice(&0u32.to_le_bytes());
        let info = BootInfo::parse(0x1000, reader(0x1000, &m)).unwrap();
        assert!(info.memory_map().is_empty());
        // A command line without its NUL stops where memory stops; one at
        // the top of the address space does not wrap.
        let mut m = qemu_like(1, &[b'a'; 0x300], &[], 0);
        m.truncate(0x180);
        assert_eq!(
            BootInfo::parse(0x1000, reader(0x1000, &m))
                .unwrap()
                .cmdline()
                .len(),
            0x80
        );
        m[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            BootInfo::parse(0x1000, reader(0x1000, &m))
                .unwrap()
                .cmdline(),
            ""
        );
    }

    #[test]
    fn a_long_command_line_is_cut_and_said_so() {
        let mut line = vec![b'w'; MAX_CMDLINE + 5];
        line.push(0);
        let mut m = qemu_like(1, &[], &[], 0);
        m.resize(0x100, 0);
        m.extend_from_slice(&line);
        let info = BootInfo::parse(0x1000, reader(0x1000, &m)).unwrap();
        assert!(info.cmdline_truncated);
        assert_eq!(info.cmdline().len(), MAX_CMDLINE);
    }

    #[test]
    fn the_heap_takes_the_largest_ram_above_the_kernel() {
        let r = |start, len, kind| MemoryRegion { start, len, kind };
        let map = [
            r(0, 0x9fc00, MemoryType::Ram),
            r(0x10_0000, 0x7ee_0000, MemoryType::Ram),
            r(0xfffc_0000, 0x4_0000, MemoryType::Reserved),
        ];
        let floor = 0x60_0000;
        assert_eq!(
            heap_range(&map, floor, 4 << 30),
            (Some((floor, 0x7fe_0000 - floor)), 0x9fc00 + 0x7ee_0000)
        );
        // RAM only below the kernel, or only above the limit: no heap.
        assert_eq!(heap_range(&map[..1], floor, 4 << 30).0, None);
        let high = [r(5 << 30, 1 << 30, MemoryType::Ram)];
        assert_eq!(heap_range(&high, floor, 4 << 30), (None, 1 << 30));
        // Lengths that wrap saturate instead of panicking.
        let broken = [
            r(u64::MAX, u64::MAX, MemoryType::Ram),
            r(1, u64::MAX, MemoryType::Ram),
        ];
        assert_eq!(
            heap_range(&broken, floor, 4 << 30),
            (Some((floor, (4 << 30) - floor)), u64::MAX)
        );
    }
}
