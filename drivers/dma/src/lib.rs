//! DMA memory for aggdom's NIC drivers, one implementation for all of them:
//! [`DmaRegion`], a bounds-checked allocation from any `virtio_drivers::Hal`,
//! and [`HeapHal`], the `Hal` of an identity-mapped heap (the kernel's, and
//! host tests' with fake devices).
#![cfg_attr(not(test), no_std)]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

mod heap_hal;
mod region;

pub use heap_hal::HeapHal;
pub use region::DmaRegion;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_is_zeroed_bounds_checked_and_addressed_from_its_start() {
        // Dirty memory first, so "zeroed" is not just fresh pages: the
        // allocator will likely hand the same block out again.
        let mut old = DmaRegion::<HeapHal>::new(2).expect("memory");
        old.slice_mut(0, 8192).fill(0xa5);
        drop(old);
        let mut r = DmaRegion::<HeapHal>::new(2).expect("memory");
        assert_eq!(r.len(), 8192);
        assert!(r.slice(0, 8192).iter().all(|&b| b == 0));
        r.write::<u32>(4096, 0xdead_beef);
        assert_eq!(r.read::<u32>(4096), 0xdead_beef);
        assert_eq!(r.paddr(4096) - r.paddr(0), 4096);
        r.slice_mut(10, 3).copy_from_slice(&[1, 2, 3]);
        assert_eq!(r.slice(10, 3), &[1, 2, 3]);
        r.zero();
        assert_eq!(r.read::<u32>(4096), 0);
    }

    #[test]
    #[should_panic]
    fn access_past_the_end_panics_instead_of_touching_other_memory() {
        let r = DmaRegion::<HeapHal>::new(1).expect("memory");
        let _ = r.slice(4000, 100);
    }
}
