//! Sparse physical memory for the firmware and loader targets: blobs at
//! chosen addresses, anywhere in the 64-bit space (the top included, so
//! address arithmetic that would wrap is reached). A read succeeds only
//! inside one blob, and the bytes of a blob past the last address do not
//! exist.
use crate::bytes::Bytes;

#[derive(Default)]
pub struct Memory {
    blobs: Vec<(u64, Vec<u8>)>,
    /// Reads asked for, to bound a walk.
    pub reads: std::cell::Cell<u64>,
}

impl Memory {
    pub fn put(&mut self, base: u64, bytes: Vec<u8>) {
        self.blobs.push((base, bytes));
    }

    pub fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        self.reads.set(self.reads.get() + 1);
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
