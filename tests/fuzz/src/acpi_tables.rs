//! The ACPI walk for power-off over memory firmware laid out, any bytes
//! at any addresses: the RSDP (the loader's hint or the BIOS-area scan),
//! the RSDT or XSDT, the FADT, and the DSDT's `\_S5` package.
//!
//! Checked: no panic, whatever the tables say; the walk reads a bounded
//! number of times (8192 RSDP candidates, 64 root entries, a DSDT of at
//! most 1 MiB); a recipe found names a nonzero PM1a port; `parse_s5` finds
//! a package only behind `_S5_`.
//!
//! Input: a flags byte (loader hint, checksums fixed, raw or laid out),
//! then either raw blobs (address, bytes) or the fields of a QEMU-like
//! chain of tables, each field of the input's choosing.
use acpi::{find_power_off, parse_s5, PhysicalMemory};

use crate::bytes::Bytes;
use crate::mem::{address, Memory};

struct Mem(Memory);

impl PhysicalMemory for Mem {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        self.0.read(addr, buf)
    }
}

const HEADER: usize = 36;

fn fix_checksum(t: &mut [u8], at: usize) {
    if let Some(b) = t.get_mut(at) {
        *b = 0;
    }
    let sum = t.iter().fold(0u8, |s, b| s.wrapping_add(*b));
    if let Some(b) = t.get_mut(at) {
        *b = 0u8.wrapping_sub(sum);
    }
}

/// A table: signature, length field as given (or true), the body.
fn sdt(sig: &[u8; 4], body: &[u8], length: Option<u32>, fix: bool) -> Vec<u8> {
    let mut t = vec![0u8; HEADER];
    t[..4].copy_from_slice(sig);
    t.extend_from_slice(body);
    let len = length.unwrap_or(t.len() as u32);
    t[4..8].copy_from_slice(&len.to_le_bytes());
    if fix {
        fix_checksum(&mut t, 9);
    }
    t
}

pub fn run(data: &[u8]) {
    let mut input = Bytes::new(data);
    let flags = input.u8();
    let fix = flags & 2 != 0;
    let mut mem = Memory::default();
    let hint = if flags & 4 == 0 {
        raw_blobs(&mut input, &mut mem);
        (flags & 1 != 0).then(|| address(&mut input))
    } else {
        let rsdp = laid_out(&mut input, &mut mem, fix);
        (flags & 1 != 0).then_some(rsdp)
    };
    let mem = Mem(mem);
    if let Some(p) = find_power_off(&mem, hint) {
        assert_ne!(p.pm1a_control_port, 0);
        assert_ne!(p.pm1b_control_port, Some(0));
        assert_eq!(p.pm1a_value() & !(7 << 10), 1 << 13);
        assert_eq!(p.pm1b_value() & !(7 << 10), 1 << 13);
    }
    let reads = mem.0.reads.get();
    assert!(reads <= 10_000, "the walk read {reads} times");
    // The AML scan on its own, on the input's bytes.
    if parse_s5(data).is_some() {
        let at = data.windows(4).position(|w| w == b"_S5_").expect("no _S5_");
        assert_eq!(data.get(at + 4), Some(&0x12), "no PackageOp after _S5_");
    }
}

/// Up to 6 blobs of up to 4 KiB at addresses of the input's choosing.
fn raw_blobs(input: &mut Bytes, mem: &mut Memory) {
    for _ in 0..input.u8() % 7 {
        let base = address(input);
        let n = if input.bool() {
            usize::from(input.u8())
        } else {
            usize::from(input.u16() % 4097)
        };
        mem.put(base, input.take(n).to_vec());
    }
}

/// RSDP → RSDT or XSDT → (entries) → FACP → DSDT, as QEMU and Xen lay
/// them out, with every field the input's. Returns the RSDP's address.
fn laid_out(input: &mut Bytes, mem: &mut Memory, fix: bool) -> u64 {
    let rsdp_at = 0xe_0000 + u64::from(input.u16() % 0x2000) * 16;
    let revision = input.u8() % 4;
    let root_at = if input.bool() {
        0x7fe_0000
    } else {
        address(input)
    };
    let facp_at = if input.bool() {
        0x7fe_1000
    } else {
        address(input)
    };
    let dsdt_at = if input.bool() {
        0x7fe_2000
    } else {
        address(input)
    };
    let mut rsdp = b"RSD PTR ".to_vec();
    rsdp.resize(36, 0);
    rsdp[15] = revision;
    rsdp[16..20].copy_from_slice(&(root_at as u32).to_le_bytes());
    rsdp[24..32].copy_from_slice(&root_at.to_le_bytes());
    if fix {
        fix_checksum(&mut rsdp[..20], 8);
    }
    mem.put(rsdp_at, rsdp);

    let xsdt = revision >= 2;
    let width = if xsdt { 8 } else { 4 };
    let mut entries = Vec::new();
    for _ in 0..input.u8() % 8 {
        let e = if input.bool() {
            facp_at
        } else {
            address(input)
        };
        entries.extend_from_slice(&e.to_le_bytes()[..width]);
    }
    let root_len = input.bool().then(|| input.u32());
    let sig = if xsdt { b"XSDT" } else { b"RSDT" };
    mem.put(root_at, sdt(sig, &entries, root_len, fix));

    let facp_body_len = match input.u8() % 3 {
        0 => 116 - HEADER,
        1 => 244 - HEADER,
        _ => usize::from(input.u8()),
    };
    let mut facp = vec![0u8; facp_body_len];
    let mut put = |at: usize, bytes: &[u8]| {
        if let Some(dst) = facp.get_mut(at - HEADER..at - HEADER + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    };
    put(40, &(dsdt_at as u32).to_le_bytes());
    put(64, &input.u32().to_le_bytes());
    put(68, &input.u32().to_le_bytes());
    let x_dsdt = if input.bool() { dsdt_at } else { input.u64() };
    put(140, &x_dsdt.to_le_bytes());
    let facp_len = input.bool().then(|| input.u32());
    mem.put(facp_at, sdt(b"FACP", &facp, facp_len, fix));

    // AML: the input's bytes, with `_S5_` and a package start spliced in
    // at a point of its choosing.
    let n = usize::from(input.u16() % 6000);
    let mut aml = input.take(n).to_vec();
    if input.bool() {
        let at = usize::from(input.u16()).min(aml.len());
        let mut s5 = b"\x08_S5_\x12".to_vec();
        s5.extend_from_slice(input.take(6));
        aml.splice(at..at, s5);
    }
    let dsdt_len = input.bool().then(|| input.u32());
    mem.put(dsdt_at, sdt(b"DSDT", &aml, dsdt_len, fix));
    rsdp_at
}
