//! DMA memory shared with a device: one allocation from the `Hal`, read
//! and written through bounds-checked methods only.
use core::marker::PhantomData;
use core::ptr::NonNull;

use virtio_drivers::{BufferDirection, Hal, PhysAddr, PAGE_SIZE};

/// Pages of zeroed, physically contiguous memory the device may access.
///
/// Descriptor fields are accessed with volatile loads and stores, since the
/// device writes them behind the compiler's back. Frame buffers are lent as
/// slices only while the driver owns them (the device has handed the
/// descriptor back, or has not been given it yet); virtio's `VirtQueue`
/// shares them with the device by address.
pub struct DmaRegion<H: Hal> {
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

    /// Never true for a region `new` made (it is at least one page).
    pub fn is_empty(&self) -> bool {
        self.pages == 0
    }

    /// The device's address of byte `offset`.
    pub fn paddr(&self, offset: usize) -> PhysAddr {
        assert!(offset < self.len());
        self.paddr + offset as PhysAddr
    }

    fn ptr<T>(&self, offset: usize) -> *mut T {
        assert!(offset
            .checked_add(size_of::<T>())
            .is_some_and(|end| end <= self.len()));
        assert!(offset.is_multiple_of(align_of::<T>()));
        // `dma_alloc` memory is page aligned, so aligned offsets give aligned
        // pointers.
        self.vaddr.as_ptr().wrapping_add(offset).cast()
    }

    pub fn read<T: Copy>(&self, offset: usize) -> T {
        let p = self.ptr::<T>(offset);
        // SAFETY: `ptr` checked that `offset..offset+size_of::<T>()` lies in
        // this allocation, which `dma_alloc` made valid and exclusive to us,
        // and is aligned. The only other writer is the device; volatile keeps
        // the compiler from caching the value.
        unsafe { p.read_volatile() }
    }

    pub fn write<T: Copy>(&mut self, offset: usize, value: T) {
        let p = self.ptr::<T>(offset);
        // SAFETY: as in `read`.
        unsafe { p.write_volatile(value) }
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

    /// Zeroes the whole region (the device must not be using it).
    pub fn zero(&mut self) {
        let len = self.len();
        self.slice_mut(0, len).fill(0);
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
