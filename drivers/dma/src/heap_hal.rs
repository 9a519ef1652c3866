//! DMA from the global heap where physical == virtual: aggdom's identity
//! mapped kernel, and host tests with fake devices.
use alloc::alloc::{alloc_zeroed, dealloc, Layout};
use core::ptr::NonNull;
use virtio_drivers::{BufferDirection, Hal, PhysAddr, PAGE_SIZE};

/// Page-aligned, zeroed heap pages whose address is their physical address.
pub struct HeapHal;

fn layout(pages: usize) -> Layout {
    Layout::from_size_align(pages.max(1) * PAGE_SIZE, PAGE_SIZE).expect("DMA size fits a layout")
}

// SAFETY: allocations are zeroed, page aligned, exclusive until freed, and
// where this Hal is used the heap is identity mapped, so the address handed
// to a device is the address the CPU uses.
unsafe impl Hal for HeapHal {
    fn dma_alloc(pages: usize, _: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc_zeroed(layout(pages)) };
        match NonNull::new(p) {
            Some(p) => (p.as_ptr() as PhysAddr, p),
            // Out of memory: paddr 0 tells the caller; `DmaRegion::new` and
            // virtio-drivers' `Dma::new` check it before touching the pointer.
            None => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(_: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        // SAFETY: the caller passes back what `dma_alloc` returned.
        unsafe { dealloc(vaddr.as_ptr(), layout(pages)) };
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _: usize) -> NonNull<u8> {
        NonNull::new(paddr as *mut u8).expect("MMIO is never at address 0")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _: BufferDirection) -> PhysAddr {
        buffer.as_ptr().cast::<u8>() as PhysAddr
    }

    unsafe fn unshare(_: PhysAddr, _: NonNull<[u8]>, _: BufferDirection) {}
}
