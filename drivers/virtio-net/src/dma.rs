//! DMA memory for buffers: one allocation from the `Hal`, lent out through
//! bounds-checked slices only.
use core::marker::PhantomData;
use core::ptr::NonNull;

use virtio_drivers::{BufferDirection, Hal, PhysAddr, PAGE_SIZE};

/// Pages of zeroed, physically contiguous memory for frame buffers and
/// control commands. Buffers are lent as slices only while the driver owns
/// them (the device has returned them, or has not been given them yet);
/// `VirtQueue` shares them with the device by address.
pub(crate) struct DmaRegion<H: Hal> {
    paddr: PhysAddr,
    vaddr: NonNull<u8>,
    pages: usize,
    _hal: PhantomData<H>,
}

impl<H: Hal> DmaRegion<H> {
    /// `None` when the allocator is out of memory.
    pub fn new(pages: usize) -> Option<Self> {
        let (paddr, vaddr) = H::dma_alloc(pages, BufferDirection::Both);
        if paddr == 0 {
            return None;
        }
        Some(Self {
            paddr,
            vaddr,
            pages,
            _hal: PhantomData,
        })
    }

    pub fn len(&self) -> usize {
        self.pages * PAGE_SIZE
    }

    /// Bytes `offset..offset+len` as a slice.
    pub fn slice(&self, offset: usize, len: usize) -> &[u8] {
        assert!(offset.checked_add(len).is_some_and(|end| end <= self.len()));
        // SAFETY: in bounds (checked above) of an allocation valid for our
        // lifetime; callers only ask for buffers the device does not own
        // right now, so nothing writes them while the slice lives.
        unsafe { core::slice::from_raw_parts(self.vaddr.as_ptr().add(offset), len) }
    }

    /// Bytes `offset..offset+len` as a mutable slice.
    pub fn slice_mut(&mut self, offset: usize, len: usize) -> &mut [u8] {
        assert!(offset.checked_add(len).is_some_and(|end| end <= self.len()));
        // SAFETY: as in `slice`; `&mut self` makes the slice unique on our
        // side.
        unsafe { core::slice::from_raw_parts_mut(self.vaddr.as_ptr().add(offset), len) }
    }
}

impl<H: Hal> Drop for DmaRegion<H> {
    fn drop(&mut self) {
        // SAFETY: `paddr`, `vaddr` and `pages` are exactly what `dma_alloc`
        // returned and were given, and this is the only deallocation.
        unsafe {
            H::dma_dealloc(self.paddr, self.vaddr, self.pages);
        }
    }
}

// SAFETY: the region is owned memory; the raw pointer is not shared with
// other threads by this type.
unsafe impl<H: Hal> Send for DmaRegion<H> {}
