use super::*;
use std::collections::BTreeMap;

/// Sparse physical memory: (base, bytes) blobs.
#[derive(Default)]
struct FakeMemory(BTreeMap<u64, Vec<u8>>);

impl FakeMemory {
    fn put(&mut self, at: u64, bytes: Vec<u8>) {
        self.0.insert(at, bytes);
    }
}

impl PhysicalMemory for FakeMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        for (&base, blob) in &self.0 {
            // Inclusive ends: the last bytes of the address space exist.
            let last = addr.checked_add((buf.len() as u64).saturating_sub(1));
            let blob_last = base + (blob.len() as u64 - 1);
            if addr >= base && last.is_some_and(|l| l <= blob_last) {
                let o = (addr - base) as usize;
                buf.copy_from_slice(&blob[o..o + buf.len()]);
                return true;
            }
        }
        false
    }
}

fn fix_checksum(t: &mut [u8], at: usize) {
    t[at] = 0;
    let sum = t.iter().fold(0u8, |s, b| s.wrapping_add(*b));
    t[at] = 0u8.wrapping_sub(sum);
}

fn sdt(sig: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; SDT_HEADER_LEN];
    t[..4].copy_from_slice(sig);
    t.extend_from_slice(body);
    let len = t.len() as u32;
    t[4..8].copy_from_slice(&len.to_le_bytes());
    fix_checksum(&mut t, 9);
    t
}

/// A QEMU-like layout: RSDP (rev 0) → RSDT → FACP → DSDT with `_S5`.
fn machine(s5: &[u8], rsdp_at: u64) -> FakeMemory {
    let mut m = FakeMemory::default();
    let (rsdt_at, facp_at, dsdt_at) = (0x7fe_0000u64, 0x7fe_1000u64, 0x7fe_2000u64);
    let mut rsdp = b"RSD PTR ".to_vec();
    rsdp.extend_from_slice(&[0; 12]);
    rsdp[16..20].copy_from_slice(&(rsdt_at as u32).to_le_bytes());
    fix_checksum(&mut rsdp, 8);
    m.put(rsdp_at, rsdp);
    m.put(rsdt_at, sdt(b"RSDT", &(facp_at as u32).to_le_bytes()));
    let mut facp_body = vec![0u8; 116 - SDT_HEADER_LEN];
    facp_body[40 - 36..44 - 36].copy_from_slice(&(dsdt_at as u32).to_le_bytes());
    facp_body[64 - 36..68 - 36].copy_from_slice(&0x604u32.to_le_bytes());
    m.put(facp_at, sdt(b"FACP", &facp_body));
    let mut aml = vec![0x5b, 0x80, b'P', b'I', b'R', b'Q']; // unrelated AML first
    aml.extend_from_slice(&[0x08]);
    aml.extend_from_slice(b"_S5_");
    aml.extend_from_slice(s5);
    m.put(dsdt_at, sdt(b"DSDT", &aml));
    m
}

#[test]
fn finds_pm1a_port_and_s5_from_the_loader_hint() {
    // Package(4) { 0, 0, 0, 0 } as QEMU's piix4 DSDT encodes it.
    let m = machine(&[0x12, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00], 0xf_5000);
    let p = find_power_off(&m, Some(0xf_5000)).expect("power-off recipe");
    assert_eq!(p.pm1a_control_port, 0x604);
    assert_eq!(p.pm1b_control_port, None);
    assert_eq!((p.slp_typ_a, p.slp_typ_b), (0, 0));
    assert_eq!(p.pm1a_value(), 0x2000);
}

#[test]
fn scans_the_bios_area_when_the_hint_is_missing_or_wrong() {
    let m = machine(
        &[0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00],
        0xf_5a10,
    );
    for hint in [None, Some(0x1234)] {
        let p = find_power_off(&m, hint).expect("found by scan");
        assert_eq!((p.slp_typ_a, p.slp_typ_b), (5, 5));
        assert_eq!(p.pm1a_value(), (5 << 10) | (1 << 13));
    }
}

#[test]
fn malformed_tables_give_none_not_a_panic() {
    let table: &[&[u8]] = &[
        &[],
        b"_S5_",
        b"_S5_\x12",
        b"_S5_\x12\xc0",
        b"_S5_\x12\x06\x04",
        b"_S5_\x12\x06\x04\x0a",
        b"_S5_\x13\x06\x04\x00",
        b"_S5_\x12\x06\x04\x42",
    ];
    for aml in table {
        assert_eq!(parse_s5(aml), None, "{aml:?}");
    }
    // No RSDP anywhere.
    assert_eq!(find_power_off(&FakeMemory::default(), None), None);
    // A bad RSDP checksum is not trusted.
    let mut m = machine(&[0x12, 0x06, 0x04, 0, 0, 0, 0], 0xf_5000);
    m.0.get_mut(&0xf_5000).unwrap()[8] ^= 0xff;
    assert_eq!(find_power_off(&m, Some(0xf_5000)), None);
}

#[test]
fn tables_at_the_top_of_the_address_space_do_not_wrap() {
    // Found by the acpi_tables fuzz target (tests/fuzz/fuzz/corpus/
    // acpi_tables/crash-root-at-top): an XSDT whose header ends at the
    // last byte made the entry address overflow.
    let mut m = FakeMemory::default();
    let xsdt_at = u64::MAX - 35;
    let mut rsdp = b"RSD PTR ".to_vec();
    rsdp.resize(36, 0);
    rsdp[15] = 2;
    rsdp[24..32].copy_from_slice(&xsdt_at.to_le_bytes());
    fix_checksum(&mut rsdp[..20], 8);
    m.put(0xf_5000, rsdp);
    let mut xsdt = sdt(b"XSDT", &[]);
    xsdt[4..8].copy_from_slice(&(36u32 + 8 * 4).to_le_bytes());
    m.put(xsdt_at, xsdt);
    assert_eq!(find_power_off(&m, Some(0xf_5000)), None);
    // A DSDT there: its body would start past the end.
    let mut m = machine(&[0x12, 0x06, 0x04, 0, 0, 0, 0], 0xf_5000);
    let dsdt_at = u64::MAX - 35;
    let mut dsdt = sdt(b"DSDT", &[]);
    dsdt[4..8].copy_from_slice(&100u32.to_le_bytes());
    m.put(dsdt_at, dsdt);
    let facp = m.0.get_mut(&0x7fe_1000).unwrap();
    facp[40..44].copy_from_slice(&0u32.to_le_bytes());
    facp.resize(148, 0);
    facp[140..148].copy_from_slice(&dsdt_at.to_le_bytes());
    facp[4..8].copy_from_slice(&148u32.to_le_bytes());
    assert_eq!(find_power_off(&m, Some(0xf_5000)), None);
}
