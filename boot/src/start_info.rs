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

#[repr(C)]
struct RawStartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

#[repr(C)]
struct RawMemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}

impl BootInfo {
    /// Copies the start info at physical address `paddr`.
    ///
    /// # Safety
    /// Paging identity-maps `paddr` and everything the structure points to,
    /// and the loader really left an `hvm_start_info` there (the magic is
    /// checked, the rest is trusted: it comes from our own loader).
    pub(crate) unsafe fn read(paddr: u64) -> Option<Self> {
        // SAFETY: the caller vouches for the mapping; the magic check below
        // rejects a pointer that is not a start info.
        let raw = unsafe { core::ptr::read_unaligned(paddr as *const RawStartInfo) };
        if raw.magic != START_INFO_MAGIC {
            return None;
        }
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
            rsdp: (raw.rsdp_paddr != 0).then_some(raw.rsdp_paddr),
            version: raw.version,
        };
        if raw.cmdline_paddr != 0 {
            let mut p = raw.cmdline_paddr as *const u8;
            loop {
                // SAFETY: the command line is a NUL-terminated string in
                // identity-mapped memory; we stop at the NUL.
                let b = unsafe { p.read() };
                if b == 0 {
                    break;
                }
                if info.cmdline_len == MAX_CMDLINE {
                    info.cmdline_truncated = true;
                    break;
                }
                info.cmdline[info.cmdline_len] = b;
                info.cmdline_len += 1;
                // SAFETY: still inside the string (no NUL seen yet).
                p = unsafe { p.add(1) };
            }
        }
        if raw.version >= 1 && raw.memmap_paddr != 0 {
            let entries = raw.memmap_paddr as *const RawMemmapEntry;
            for i in 0..(raw.memmap_entries as usize).min(MAX_REGIONS) {
                // SAFETY: `memmap_entries` entries follow `memmap_paddr`.
                let e = unsafe { entries.add(i).read_unaligned() };
                info.regions[i] = MemoryRegion {
                    start: e.addr,
                    len: e.size,
                    kind: MemoryType::from(e.kind),
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
