//! Sparse physical memory for the firmware and loader targets: blobs at
//! chosen addresses, anywhere in the 64-bit space (the top included, so
//! address arithmetic that would wrap is reached). A read succeeds only
//! inside one blob, and the bytes of a blob past the last address do not
//! exist.
use crate::bytes::Bytes;

/// The BIOS area, in [`Memory`]'s granules.
const BIOS: core::ops::Range<u64> = 0xe_0000..0x10_0000;
const BIOS_GRANULES: usize = ((BIOS.end - BIOS.start) / 16) as usize;

pub struct Memory {
    blobs: Vec<(u64, Vec<u8>)>,
    /// Which 16-byte granules of the BIOS area (where the ACPI walk scans
    /// 8192 places for an RSDP) any blob touches: a read starting in an
    /// untouched one is refused after one look instead of a comparison
    /// with every blob, which was most of the ACPI target's time.
    bios: Box<[bool; BIOS_GRANULES]>,
    /// Reads asked for, to bound a walk.
    pub reads: std::cell::Cell<u64>,
}

impl Default for Memory {
    fn default() -> Self {
        Self {
            blobs: Vec::new(),
            bios: Box::new([false; BIOS_GRANULES]),
            reads: Default::default(),
        }
    }
}

impl Memory {
    pub fn put(&mut self, base: u64, bytes: Vec<u8>) {
        let start = base.max(BIOS.start);
        let end = (u128::from(base) + bytes.len() as u128).min(u128::from(BIOS.end)) as u64;
        if start < end {
            let first = ((start - BIOS.start) / 16) as usize;
            let last = ((end - 1 - BIOS.start) / 16) as usize;
            self.bios[first..=last].fill(true);
        }
        self.blobs.push((base, bytes));
    }

    pub fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        self.reads.set(self.reads.get() + 1);
        // (First, as the fewest comparisons: the fuzzer traces each one.)
        let granule = addr.wrapping_sub(BIOS.start) / 16;
        if granule < BIOS_GRANULES as u64 && !buf.is_empty() && !self.bios[granule as usize] {
            return false;
        }
        // Memory ends with the address space: a read may end at its last
        // byte, not past it.
        let last = (buf.len() as u64)
            .checked_sub(1)
            .map(|n| addr.checked_add(n));
        if last == Some(None) {
            return false;
        }
        for (base, blob) in &self.blobs {
            let Some(off) = addr.checked_sub(*base) else {
                continue;
            };
            let Ok(off) = usize::try_from(off) else {
                continue;
            };
            if let Some(src) = off
                .checked_add(buf.len())
                .and_then(|end| blob.get(off..end))
            {
                buf.copy_from_slice(src);
                return true;
            }
        }
        false
    }
}

/// An address: small, in the BIOS area, below 4 GiB, anywhere, or within
/// a page of the top of the address space.
pub fn address(input: &mut Bytes) -> u64 {
    match input.u8() % 5 {
        0 => u64::from(input.u16()) << 4,
        1 => 0xe_0000 + (u64::from(input.u16()) << 1),
        2 => u64::from(input.u32()),
        3 => input.u64(),
        _ => u64::MAX - u64::from(input.u16() % 4096),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The BIOS-area shortcut refuses only reads no blob could serve: every
    /// read there answers as a look at every blob would.
    #[test]
    fn shortcut_answers_as_the_blobs_do() {
        let mut mem = Memory::default();
        mem.put(0xd_fff8, vec![1; 12]);
        mem.put(0xe_0105, vec![2; 20]);
        mem.put(0xe_8000, vec![3; 36]);
        mem.put(0xf_fff0, vec![4; 32]);
        mem.put(0xe_9000, Vec::new());
        let slow = |addr: u64, len: usize| {
            mem.blobs.iter().any(|(base, blob)| {
                addr.checked_sub(*base)
                    .is_some_and(|off| u128::from(off) + len as u128 <= blob.len() as u128)
            })
        };
        for addr in 0xd_fff0..0x10_0010u64 {
            for len in [0, 1, 4, 20, 36] {
                let mut buf = vec![0; len];
                assert_eq!(mem.read(addr, &mut buf), slow(addr, len), "{addr:#x}+{len}");
            }
        }
    }
}
