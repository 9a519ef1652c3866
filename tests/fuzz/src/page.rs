//! The xenstore ring page the xenstore targets share, over plain bytes.
use std::cell::RefCell;

use hypervisor::{SharedPage, PAGE_SIZE};

/// A ring's page: the fake hypervisor's `FakePage` semantics (a 4 KiB
/// page, an access beyond it or an unaligned `u32` panics) over plain bytes
/// copied in bulk. `FakePage` keeps an atomic per byte, and building,
/// reading and checking it a byte at a time was half of `xs_wire`'s time.
pub(crate) struct RingPage(pub(crate) RefCell<Box<[u8; PAGE_SIZE]>>);

impl RingPage {
    pub(crate) fn new() -> Self {
        Self(RefCell::new(Box::new([0; PAGE_SIZE])))
    }

    fn range(offset: usize, len: usize) -> core::ops::Range<usize> {
        match offset.checked_add(len).filter(|e| *e <= PAGE_SIZE) {
            Some(end) => offset..end,
            None => panic!("shared page access {offset}+{len} beyond the page"),
        }
    }
}

impl SharedPage for RingPage {
    fn load_u32(&self, offset: usize) -> u32 {
        assert!(offset.is_multiple_of(4), "unaligned u32 access at {offset}");
        let mut b = [0u8; 4];
        self.read(offset, &mut b);
        u32::from_le_bytes(b)
    }

    fn store_u32(&self, offset: usize, value: u32) {
        assert!(offset.is_multiple_of(4), "unaligned u32 access at {offset}");
        self.write(offset, &value.to_le_bytes());
    }

    fn read(&self, offset: usize, buf: &mut [u8]) {
        buf.copy_from_slice(&self.0.borrow()[Self::range(offset, buf.len())]);
    }

    fn write(&self, offset: usize, data: &[u8]) {
        self.0.borrow_mut()[Self::range(offset, data.len())].copy_from_slice(data);
    }

    fn fence(&self) {}
}
