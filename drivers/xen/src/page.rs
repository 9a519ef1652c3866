//! A page of guest-physical memory that another party (Xen, xenstored, the
//! console daemon, a frontend) writes concurrently, reached by address
//! through the identity mapping. Only [`SharedPage`]'s accessors touch it:
//! volatile byte copies, atomic aligned `u32`s, fences.
use core::sync::atomic::{fence, AtomicU32, Ordering};

use hypervisor::{SharedPage, PAGE_SIZE};

/// A shared page at a fixed address.
#[derive(Debug)]
pub struct RawPage {
    addr: usize,
}

impl RawPage {
    /// # Safety
    /// `addr` is page-aligned, mapped readable and writable for as long as
    /// the `RawPage` lives, and nothing reaches that page through Rust
    /// references.
    pub unsafe fn new(addr: usize) -> Self {
        debug_assert!(addr.is_multiple_of(PAGE_SIZE));
        Self { addr }
    }

    pub fn addr(&self) -> usize {
        self.addr
    }

    fn check(offset: usize, len: usize) -> usize {
        match offset.checked_add(len) {
            Some(end) if end <= PAGE_SIZE => offset,
            _ => panic!("shared page access {offset}+{len} beyond the page"),
        }
    }

    fn atomic(&self, offset: usize) -> &AtomicU32 {
        assert!(offset.is_multiple_of(4), "unaligned u32 access at {offset}");
        let at = self.addr + Self::check(offset, 4);
        // SAFETY: in the page (checked), 4-byte aligned, and the page is
        // valid for the `RawPage`'s life (`new`'s contract). Other parties
        // write it concurrently, which is what an atomic is for.
        unsafe { AtomicU32::from_ptr(at as *mut u32) }
    }
}

impl SharedPage for RawPage {
    fn load_u32(&self, offset: usize) -> u32 {
        self.atomic(offset).load(Ordering::Acquire)
    }

    fn store_u32(&self, offset: usize, value: u32) {
        self.atomic(offset).store(value, Ordering::Release)
    }

    fn read(&self, offset: usize, buf: &mut [u8]) {
        let base = self.addr + Self::check(offset, buf.len());
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: inside the page (checked above), valid per `new`.
            *b = unsafe { core::ptr::read_volatile((base + i) as *const u8) };
        }
    }

    fn write(&self, offset: usize, data: &[u8]) {
        let base = self.addr + Self::check(offset, data.len());
        for (i, b) in data.iter().enumerate() {
            // SAFETY: inside the page (checked above), valid per `new`.
            unsafe { core::ptr::write_volatile((base + i) as *mut u8, *b) };
        }
    }

    fn fence(&self) {
        fence(Ordering::SeqCst);
    }
}
