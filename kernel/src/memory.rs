//! Physical memory: the heap (sized from the loader's memory map) and the
//! identity mapping that makes physical == virtual for RAM and BARs.
use boot::{BootInfo, MemoryType};
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};
use dma_region::HeapHal;
use linked_list_allocator::LockedHeap;
use virtio_drivers::{BufferDirection, Hal, PhysAddr};
use x86_64::instructions::port::Port;

#[global_allocator]
static HEAP: PeakTrackingHeap = PeakTrackingHeap {
    heap: LockedHeap::empty(),
    peak: AtomicUsize::new(0),
};

/// The heap, remembering the most it ever had in use (`mem`'s peak, the
/// figure a memory budget is checked against).
struct PeakTrackingHeap {
    heap: LockedHeap,
    peak: AtomicUsize,
}

// SAFETY: every call is forwarded to `LockedHeap`, a correct allocator; the
// peak is bookkeeping only.
unsafe impl GlobalAlloc for PeakTrackingHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { self.heap.alloc(layout) };
        self.peak
            .fetch_max(self.heap.lock().used(), Ordering::Relaxed);
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded: `ptr` came from `alloc` with `layout`.
        unsafe { self.heap.dealloc(ptr, layout) }
    }
}

/// The boot page tables map this much, identity (boot/src/entry.rs).
pub const IDENTITY_MAPPED_END: u64 = 4 << 30;

unsafe extern "C" {
    static __kernel_end: u8;
}

fn kernel_end() -> u64 {
    // A linker-script symbol: only its address means anything.
    core::ptr::addr_of!(__kernel_end) as u64
}

/// Where the heap went and how big it is.
pub struct HeapInfo {
    pub start: u64,
    pub len: u64,
    pub usable_ram: u64,
}

/// The largest RAM range above the kernel and below the mapped limit.
fn choose_heap(info: Option<&BootInfo>) -> Option<(u64, u64, u64)> {
    let floor = kernel_end();
    if let Some(map) = info.map(BootInfo::memory_map).filter(|m| !m.is_empty()) {
        let (best, usable) = boot::heap_range(map, floor, IDENTITY_MAPPED_END);
        return best.map(|(start, len)| (start, len, usable));
    }
    // No memory map (start info version 0): CMOS 0x34/0x35 hold RAM above
    // 16 MiB in 64 KiB units, as SeaBIOS and Xen's hvmloader set them.
    let above_16m = u64::from(cmos(0x34)) | (u64::from(cmos(0x35)) << 8);
    let end = ((16 << 20) + (above_16m << 16)).min(IDENTITY_MAPPED_END);
    (end > floor).then_some((floor, end - floor, end))
}

fn cmos(register: u8) -> u8 {
    // SAFETY: CMOS index/data ports; reading a register has no side effect
    // (bit 7 of the index keeps NMIs disabled, as they already are).
    unsafe {
        Port::<u8>::new(0x70).write(0x80 | register);
        Port::<u8>::new(0x71).read()
    }
}

pub fn init_heap(info: Option<&BootInfo>) -> Option<HeapInfo> {
    let (start, len, usable_ram) = choose_heap(info)?;
    // SAFETY: [start, start+len) is RAM per the loader's map, above the
    // kernel image, identity mapped, and handed to nothing else.
    unsafe { HEAP.heap.lock().init(start as *mut u8, len as usize) };
    Some(HeapInfo {
        start,
        len,
        usable_ram,
    })
}

/// The most heap ever in use at once, in bytes.
pub fn heap_peak() -> usize {
    HEAP.peak.load(Ordering::Relaxed)
}

pub fn heap_used_free() -> (usize, usize) {
    let heap = HEAP.heap.lock();
    (heap.used(), heap.free())
}

/// The boot PDPT, owned here: `ensure_identity_mapped` is the one code
/// that edits the page tables after boot. The lock turns a reentrant call
/// (none exists) into a deadlock instead of two `&mut` to one table.
static IDENTITY_PDPT: spin::Once<spin::Mutex<&'static mut [u64; 512]>> = spin::Once::new();

/// The reach of the boot PML4 entry that `ensure_identity_mapped` extends.
const PDPT_REACH: u64 = 512 << 30;

/// Extends the identity map to cover `[start, start+len)`, 1 GiB at a time
/// with 2 MiB pages, for BARs firmware put above 4 GiB (real hardware does;
/// QEMU's `pc` machine does not). The new pages are uncached (PCD|PWT), as
/// device registers want.
pub fn ensure_identity_mapped(start: u64, len: u64) -> Result<(), &'static str> {
    let end = start.checked_add(len.max(1)).ok_or("range wraps")?;
    if end > PDPT_REACH {
        return Err("above 512 GiB, beyond the identity map's reach");
    }
    let (first, last) = ((start >> 30) as usize, ((end - 1) >> 30) as usize);
    let mut pdpt = IDENTITY_PDPT
        .call_once(|| {
            // SAFETY: this is the only caller, and below entries are only
            // added for GiB not mapped yet, identity, then the TLB flushed.
            let pdpt = unsafe { boot::take_identity_pdpt() };
            spin::Mutex::new(pdpt.expect("the boot PDPT is taken only here"))
        })
        .lock();
    let mut changed = false;
    for gib in first..=last {
        if pdpt[gib] & 1 != 0 {
            continue;
        }
        let layout = Layout::from_size_align(4096, 4096).expect("one page");
        // SAFETY: a non-zero-sized layout; the page lives forever (never freed).
        let pd = unsafe { alloc::alloc::alloc_zeroed(layout) } as *mut u64;
        if pd.is_null() {
            return Err("no memory for a page directory");
        }
        for i in 0..512u64 {
            let addr = ((gib as u64) << 30) | (i << 21);
            // present | writable | PWT | PCD | 2 MiB page
            // SAFETY: `pd` is a fresh 4 KiB page: 512 entries.
            unsafe { pd.add(i as usize).write(addr | 0x9b) };
        }
        pdpt[gib] = pd as u64 | 0x3;
        changed = true;
    }
    if changed {
        x86_64::instructions::tlb::flush_all();
    }
    Ok(())
}

/// Reads firmware tables through the identity mapping: only where the
/// loader's memory map puts firmware data (and the BIOS area), checked on
/// every read, so a wrong pointer in a table can make the walk read neither
/// a device register (BARs sit in the map's gaps) nor memory the kernel
/// owns (RAM).
pub struct IdentityMapped {
    ranges: acpi::FirmwareRanges,
}

impl IdentityMapped {
    /// The firmware regions of the loader's memory map: reserved, ACPI
    /// reclaimable, ACPI NVS. Without a map (start info version 0) only
    /// the BIOS area is readable.
    pub fn from_map(info: Option<&BootInfo>) -> Self {
        let mut ranges = acpi::FirmwareRanges::new();
        for r in info.map_or(&[][..], BootInfo::memory_map) {
            if matches!(
                r.kind,
                MemoryType::Reserved | MemoryType::AcpiReclaimable | MemoryType::AcpiNvs
            ) {
                ranges.add(r.start, r.len);
            }
        }
        Self { ranges }
    }
}

impl acpi::PhysicalMemory for IdentityMapped {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        let Some(end) = addr.checked_add(buf.len() as u64) else {
            return false;
        };
        if end > IDENTITY_MAPPED_END || !self.ranges.covers(addr, buf.len()) {
            return false;
        }
        // SAFETY: (1) the range is identity mapped (below 4 GiB); (2) the
        // memory map gives it to firmware, so no Rust object lives there
        // and no device register does (the chipset window is excluded by
        // `covers`, BARs lie in the map's gaps); a plain copy reads it
        // without side effects.
        unsafe { core::ptr::copy_nonoverlapping(addr as *const u8, buf.as_mut_ptr(), buf.len()) };
        true
    }
}

/// DMA for the drivers: heap pages, physical == virtual ([`HeapHal`]), and
/// MMIO through the identity map, extended on demand above 4 GiB.
pub struct KernelHal;

// SAFETY: DMA memory comes from `HeapHal` (zeroed, page aligned, identity
// mapped); MMIO addresses are identity mapped before they are handed out.
unsafe impl Hal for KernelHal {
    fn dma_alloc(pages: usize, direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        HeapHal::dma_alloc(pages, direction)
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        // SAFETY: forwarded: the caller returns what `dma_alloc` gave.
        unsafe { HeapHal::dma_dealloc(paddr, vaddr, pages) }
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        if let Err(why) = ensure_identity_mapped(paddr, size as u64) {
            panic!("MMIO at {paddr:#x}: {why}");
        }
        NonNull::new(paddr as *mut u8).expect("MMIO is never at address 0")
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        // SAFETY: forwarded to the identity-mapped heap's rule.
        unsafe { HeapHal::share(buffer, direction) }
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        // SAFETY: forwarded.
        unsafe { HeapHal::unshare(paddr, buffer, direction) }
    }
}
