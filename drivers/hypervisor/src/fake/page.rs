//! A 4 KiB page two domains can share, for the fake.
use core::sync::atomic::{fence, AtomicU8, Ordering};

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::abi::PAGE_SIZE;
use crate::grant::SharedPage;

/// A page of fake guest memory. Both the granting test code (the frontend)
/// and the backend's mapping reach it through [`SharedPage`].
pub struct FakePage {
    bytes: Box<[AtomicU8]>,
}

impl Default for FakePage {
    fn default() -> Self {
        Self::new()
    }
}

impl FakePage {
    /// A zeroed page.
    pub fn new() -> Self {
        Self {
            bytes: (0..PAGE_SIZE).map(|_| AtomicU8::new(0)).collect(),
        }
    }

    /// A copy of the whole page.
    pub fn snapshot(&self) -> Vec<u8> {
        self.bytes
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect()
    }

    /// Sets every byte to `value` (e.g. a marker to detect leaks).
    pub fn fill(&self, value: u8) {
        for b in self.bytes.iter() {
            b.store(value, Ordering::Relaxed);
        }
    }

    fn range(offset: usize, len: usize) -> core::ops::Range<usize> {
        let end = offset.checked_add(len).filter(|e| *e <= PAGE_SIZE);
        match end {
            Some(end) => offset..end,
            None => panic!("shared page access {offset}+{len} beyond the page"),
        }
    }
}

impl SharedPage for FakePage {
    fn load_u32(&self, offset: usize) -> u32 {
        assert!(offset.is_multiple_of(4), "unaligned u32 access at {offset}");
        let mut b = [0u8; 4];
        self.read(offset, &mut b);
        fence(Ordering::Acquire);
        u32::from_le_bytes(b)
    }

    fn store_u32(&self, offset: usize, value: u32) {
        assert!(offset.is_multiple_of(4), "unaligned u32 access at {offset}");
        fence(Ordering::Release);
        self.write(offset, &value.to_le_bytes());
    }

    fn read(&self, offset: usize, buf: &mut [u8]) {
        let r = Self::range(offset, buf.len());
        for (d, s) in buf.iter_mut().zip(&self.bytes[r]) {
            *d = s.load(Ordering::Relaxed);
        }
    }

    fn write(&self, offset: usize, data: &[u8]) {
        let r = Self::range(offset, data.len());
        for (d, s) in self.bytes[r].iter().zip(data) {
            d.store(*s, Ordering::Relaxed);
        }
    }

    fn fence(&self) {
        fence(Ordering::SeqCst);
    }
}
