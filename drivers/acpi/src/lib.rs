//! Just enough ACPI to power off: RSDP → RSDT/XSDT → FADT (PM1 control
//! ports) and DSDT (the `\_S5` sleep type), following ACPI 6.4 §5.2 and
//! the AML encoding of §20.2.
//!
//! Tables are read through [`PhysicalMemory`], so the walk is plain safe code
//! tested on the host with a fake memory; the kernel supplies the real one.
//! Table contents are checked before use; a malformed table yields `None`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

mod ranges;

pub use ranges::{FirmwareRanges, BIOS_AREA, CHIPSET_WINDOW};

/// Reads physical memory. `false` when the range is not readable.
pub trait PhysicalMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool;
}

/// How to enter S5 (soft off): write `(slp_typ << 10) | SLP_EN` to each
/// PM1 control port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PowerOff {
    pub pm1a_control_port: u16,
    pub pm1b_control_port: Option<u16>,
    pub slp_typ_a: u8,
    pub slp_typ_b: u8,
}

impl PowerOff {
    /// PM1 control SLP_EN (ACPI 6.4 table 4.14).
    const SLP_EN: u16 = 1 << 13;

    pub fn pm1a_value(&self) -> u16 {
        (u16::from(self.slp_typ_a & 7) << 10) | Self::SLP_EN
    }

    pub fn pm1b_value(&self) -> u16 {
        (u16::from(self.slp_typ_b & 7) << 10) | Self::SLP_EN
    }
}

const SDT_HEADER_LEN: usize = 36;
/// The BIOS read-only area searched for an RSDP when the loader gave none.
const RSDP_SCAN: (u64, u64) = (0xe_0000, 0x10_0000);
/// Upper bound on a DSDT we are willing to scan.
const MAX_DSDT: usize = 1 << 20;

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn checksum_ok(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |sum, b| sum.wrapping_add(*b)) == 0
}

/// Finds the S5 recipe; `rsdp` is the loader's hint (PVH `rsdp_paddr`).
pub fn find_power_off(mem: &impl PhysicalMemory, rsdp: Option<u64>) -> Option<PowerOff> {
    let rsdp = rsdp
        .filter(|&a| valid_rsdp(mem, a))
        .or_else(|| scan_rsdp(mem))?;
    let fadt = find_table(mem, rsdp, b"FACP")?;
    let mut fadt_bytes = [0u8; 148];
    let fadt_len = table_len(mem, fadt)?.min(fadt_bytes.len());
    if fadt_len < 76 || !mem.read(fadt, &mut fadt_bytes[..fadt_len]) {
        return None;
    }
    let fadt_bytes = &fadt_bytes[..fadt_len];
    let pm1a = u32_at(fadt_bytes, 64)?;
    let pm1b = u32_at(fadt_bytes, 68)?;
    let dsdt = match u64_at(fadt_bytes, 140) {
        Some(x) if x != 0 => x,
        _ => u64::from(u32_at(fadt_bytes, 40)?),
    };
    let (slp_typ_a, slp_typ_b) = read_s5(mem, dsdt)?;
    Some(PowerOff {
        pm1a_control_port: u16::try_from(pm1a).ok().filter(|&p| p != 0)?,
        pm1b_control_port: u16::try_from(pm1b).ok().filter(|&p| p != 0),
        slp_typ_a,
        slp_typ_b,
    })
}

fn valid_rsdp(mem: &impl PhysicalMemory, addr: u64) -> bool {
    let mut b = [0u8; 20];
    mem.read(addr, &mut b) && &b[..8] == b"RSD PTR " && checksum_ok(&b)
}

fn scan_rsdp(mem: &impl PhysicalMemory) -> Option<u64> {
    (RSDP_SCAN.0..RSDP_SCAN.1)
        .step_by(16)
        .find(|&a| valid_rsdp(mem, a))
}

fn table_len(mem: &impl PhysicalMemory, addr: u64) -> Option<usize> {
    let mut h = [0u8; SDT_HEADER_LEN];
    if !mem.read(addr, &mut h) {
        return None;
    }
    let len = usize::try_from(u32_at(&h, 4)?).ok()?;
    (len >= SDT_HEADER_LEN).then_some(len)
}

fn signature_at(mem: &impl PhysicalMemory, addr: u64) -> Option<[u8; 4]> {
    let mut s = [0u8; 4];
    mem.read(addr, &mut s).then_some(s)
}

/// Walks the XSDT (ACPI 2+) or RSDT for a table with `signature`.
fn find_table(mem: &impl PhysicalMemory, rsdp: u64, signature: &[u8; 4]) -> Option<u64> {
    let mut r = [0u8; 36];
    if !mem.read(rsdp, &mut r[..20]) {
        return None;
    }
    let revision = r[15];
    let (root, entry_size) = if revision >= 2 && mem.read(rsdp, &mut r) && u64_at(&r, 24)? != 0 {
        (u64_at(&r, 24)?, 8)
    } else {
        (u64::from(u32_at(&r, 16)?), 4)
    };
    let len = table_len(mem, root)?;
    let entries = (len - SDT_HEADER_LEN) / entry_size;
    for i in 0..entries.min(64) {
        let mut e = [0u8; 8];
        // A root table at the top of the address space must not wrap
        // around to low memory.
        let at = root.checked_add((SDT_HEADER_LEN + i * entry_size) as u64)?;
        if !mem.read(at, &mut e[..entry_size]) {
            return None;
        }
        let table = u64::from_le_bytes(e);
        if signature_at(mem, table).as_ref() == Some(signature) {
            return Some(table);
        }
    }
    None
}

/// Reads `Name(\_S5, Package() { a, b, ... })` from the DSDT's AML.
fn read_s5(mem: &impl PhysicalMemory, dsdt: u64) -> Option<(u8, u8)> {
    let len = table_len(mem, dsdt)?.min(MAX_DSDT);
    // Scan in chunks with an overlap, so a fixed buffer covers any DSDT.
    const CHUNK: usize = 4096;
    const OVERLAP: usize = 32;
    let mut buf = [0u8; CHUNK];
    let mut offset = SDT_HEADER_LEN;
    while offset < len {
        let n = (len - offset).min(CHUNK);
        if !mem.read(dsdt.checked_add(offset as u64)?, &mut buf[..n]) {
            return None;
        }
        if let Some(v) = parse_s5(&buf[..n]) {
            return Some(v);
        }
        if offset + n >= len {
            break;
        }
        offset += n - OVERLAP;
    }
    None
}

/// Finds `_S5_` followed by a package and returns its first two integers.
pub fn parse_s5(aml: &[u8]) -> Option<(u8, u8)> {
    let at = aml.windows(4).position(|w| w == b"_S5_")?;
    let mut p = aml.get(at + 4..)?;
    if *p.first()? != 0x12 {
        return None; // PackageOp
    }
    p = p.get(1..)?;
    // PkgLength: bits 7-6 of the lead byte count the bytes that follow.
    let extra = usize::from(*p.first()? >> 6);
    p = p.get(1 + extra..)?;
    p = p.get(1..)?; // NumElements
    let (a, rest) = aml_integer(p)?;
    let (b, _) = aml_integer(rest).unwrap_or((0, rest));
    Some((a, b))
}

/// One small AML integer: ZeroOp, OneOp, OnesOp or BytePrefix n.
fn aml_integer(p: &[u8]) -> Option<(u8, &[u8])> {
    match *p.first()? {
        0x00 => Some((0, &p[1..])),
        0x01 => Some((1, &p[1..])),
        0xff => Some((0xff, &p[1..])),
        0x0a => Some((*p.get(1)?, p.get(2..)?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
