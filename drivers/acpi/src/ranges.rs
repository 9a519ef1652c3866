//! Where firmware tables may be read from physical memory: the regions
//! the loader's memory map gives to firmware, never the kernel's RAM nor
//! the map's gaps (where device registers live).

/// Most ranges kept; a memory map has a handful of firmware regions.
const MAX_RANGES: usize = 32;

/// The BIOS read-only area an RSDP may lie in (ACPI 6.4 §5.2.5.1), ROM or
/// shadow RAM on every PC, whatever the memory map says of it.
pub const BIOS_AREA: (u64, u64) = (0xe_0000, 0x10_0000);

/// The fixed x86 chipset window: I/O APIC at 0xFEC0_0000, HPET, TPM (whose
/// data register a read consumes), local APIC at 0xFEE0_0000. Firmware may
/// mark it reserved; no table lives there, and nothing in it is read.
pub const CHIPSET_WINDOW: (u64, u64) = (0xfec0_0000, 0xff00_0000);

/// Physical ranges `[start, end)` holding firmware data (ACPI tables), in
/// which a read touches neither a device register nor memory the kernel
/// owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirmwareRanges {
    ranges: [(u64, u64); MAX_RANGES],
    len: usize,
}

impl Default for FirmwareRanges {
    fn default() -> Self {
        Self::new()
    }
}

impl FirmwareRanges {
    /// Only the BIOS area.
    pub fn new() -> Self {
        let mut r = Self {
            ranges: [(0, 0); MAX_RANGES],
            len: 0,
        };
        r.add(BIOS_AREA.0, BIOS_AREA.1 - BIOS_AREA.0);
        r
    }

    /// Adds a region the memory map gives to firmware (reserved, ACPI
    /// reclaimable, ACPI NVS). False when it wraps or there is no room
    /// (the region is then left out: reads there are refused).
    pub fn add(&mut self, start: u64, len: u64) -> bool {
        let Some(end) = start.checked_add(len) else {
            return false;
        };
        if len == 0 || self.len == MAX_RANGES {
            return false;
        }
        self.ranges[self.len] = (start, end);
        self.len += 1;
        true
    }

    /// Whether every byte of `[addr, addr + len)` lies in the ranges
    /// (adjacent or overlapping ones join) and outside the chipset window.
    pub fn covers(&self, addr: u64, len: usize) -> bool {
        let Some(end) = addr.checked_add(len as u64) else {
            return false;
        };
        if addr < CHIPSET_WINDOW.1 && end > CHIPSET_WINDOW.0 {
            return false;
        }
        // Walk forward from `addr`: each step finds a range holding the
        // next byte still to cover. Ranges are few; this is quadratic in
        // them at worst.
        let mut at = addr;
        while at < end {
            let next = self.ranges[..self.len]
                .iter()
                .filter(|&&(s, e)| s <= at && at < e)
                .map(|&(_, e)| e)
                .max();
            match next {
                Some(e) => at = e,
                None => return false,
            }
        }
        len > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU `pc` with SeaBIOS, 128 MiB: its e820's reserved regions.
    fn qemu_pc() -> FirmwareRanges {
        let mut r = FirmwareRanges::new();
        for (start, end) in [
            (0x9_fc00u64, 0xa_0000u64),
            (0xf_0000, 0x10_0000),
            (0x7fe_0000, 0x800_0000),
            (0xfeff_c000, 0xff00_0000),
            (0xfffc_0000, 0x1_0000_0000),
        ] {
            assert!(r.add(start, end - start));
        }
        r
    }

    #[test]
    fn firmware_regions_and_the_bios_area_are_readable() {
        let r = qemu_pc();
        for (addr, len) in [
            (0xf_5a40u64, 20usize), // RSDP
            (0x7fe_1000, 36),       // a table in SeaBIOS's high zone
            (0x7ff_ffdc, 36),       // up to the region's last byte
            (0xe_0000, 16),         // BIOS area, not in the map
            (0xf_fff0, 16),
        ] {
            assert!(r.covers(addr, len), "{addr:#x}+{len}");
        }
    }

    #[test]
    fn ram_gaps_and_device_registers_are_not() {
        let r = qemu_pc();
        for (addr, len) in [
            (0x10_0000u64, 36usize), // RAM: the kernel's
            (0x7fd_fff0, 36),        // RAM running into a reserved region
            (0x7ff_fff0, 36),        // past a region's end, into the gap
            (0xfebf_0000, 4),        // a BAR in the PCI hole
            (0xfec0_0000, 4),        // I/O APIC
            (0xfed4_0024, 4),        // TPM data FIFO
            (0xfee0_0000, 4),        // local APIC
            (0x0, 16),               // the real-mode IVT, RAM
            (0x1_0000_0000, 16),     // above 4 GiB
            (u64::MAX - 3, 8),       // wraps
            (0xf_5a40, 0),           // nothing to read
        ] {
            assert!(!r.covers(addr, len), "{addr:#x}+{len}");
        }
    }

    #[test]
    fn adjacent_regions_join() {
        let mut r = FirmwareRanges::new();
        r.add(0x100_0000, 0x1000); // ACPI reclaimable
        r.add(0x100_1000, 0x1000); // ACPI NVS right after it
        assert!(r.covers(0x100_0ff0, 0x20));
        assert!(!r.covers(0x100_1ff0, 0x20));
        // And the BIOS area meets a region that follows it.
        r.add(0x10_0000, 0x100);
        assert!(r.covers(0xf_fff0, 0x20));
    }

    #[test]
    fn a_chipset_window_marked_reserved_stays_unread() {
        // Xen's hvmloader reserves 0xFC00_0000..4 GiB: ACPI tables and the
        // local APIC alike.
        let mut r = FirmwareRanges::new();
        r.add(0xfc00_0000, 0x400_0000);
        assert!(r.covers(0xfc00_1000, 36));
        assert!(!r.covers(0xfee0_0000, 4));
        assert!(!r.covers(0xfebf_fff0, 0x20), "straddles into the window");
    }

    #[test]
    fn a_full_table_refuses_more_regions() {
        let mut r = FirmwareRanges::new();
        let added = (0..40u64)
            .filter(|i| r.add(0x100_0000 * (i + 1), 0x10))
            .count();
        assert_eq!(added, MAX_RANGES - 1, "the BIOS area takes one");
        assert!(!r.add(0, 0) && !r.add(u64::MAX, 2));
    }
}
