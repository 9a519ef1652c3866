//! Hypercalls through the hypercall page Xen writes into our memory (the
//! MSR named by CPUID leaf base + 2), with the x86-64 ABI: number in rax
//! (as the page offset), arguments in rdi, rsi, rdx, r10, r8, result in rax.
//!
//! Xen may clobber every argument register (debug builds poison them), so
//! all five are declared clobbered whatever the call's arity. xen-sys's
//! `hypercall_5` passes the fifth argument in r9 and is not used.
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::cpuid::{cpuid, XenCpuid};

/// One 4 KiB page, aligned, that Xen or the hardware may write behind the
/// compiler's back.
#[repr(C, align(4096))]
pub(crate) struct PageCell(UnsafeCell<[u8; 4096]>);

// SAFETY: the contents are only reached through raw pointers by code that
// documents who writes them (Xen); Rust never forms references to them.
unsafe impl Sync for PageCell {}

impl PageCell {
    pub(crate) const fn new() -> Self {
        Self(UnsafeCell::new([0; 4096]))
    }
    pub(crate) fn addr(&self) -> u64 {
        self.0.get() as u64
    }
}

/// Filled by Xen with 32-byte call stubs, one per hypercall number.
static HYPERCALL_PAGE: PageCell = PageCell::new();
static READY: AtomicBool = AtomicBool::new(false);

/// Asks Xen to fill the hypercall page. Returns false if CPUID does not
/// offer a hypercall page.
pub fn init(xen: &XenCpuid) -> bool {
    // Leaf base + 2: eax = number of hypercall pages, ebx = the MSR.
    let [pages, msr, ..] = cpuid(xen.base + 2);
    if pages == 0 {
        return false;
    }
    let addr = HYPERCALL_PAGE.addr();
    // SAFETY: the MSR is the one Xen named for this purpose; the value is
    // the guest-physical address (identity mapped: phys == virt) of a
    // page-aligned page nothing else uses. Xen writes the stubs into it.
    unsafe { x86_64::registers::model_specific::Msr::new(msr).write(addr) };
    READY.store(true, Ordering::Release);
    true
}

pub fn is_ready() -> bool {
    READY.load(Ordering::Acquire)
}

/// Issues hypercall `op` with up to five arguments; returns Xen's result
/// (negative errno on failure). Returns -ENOSYS (-38) before [`init`].
///
/// # Safety
/// The arguments must be what hypercall `op` expects: pointers among them
/// must point to live, correctly laid out structures (Xen reads and writes
/// them), and the operation must not take memory away that Rust still uses.
pub unsafe fn hypercall(op: u32, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    if !is_ready() || op >= 128 {
        return -38;
    }
    let entry = HYPERCALL_PAGE.addr() + u64::from(op) * 32;
    let ret: i64;
    // Every hypercall passes here: the profile's cycles are taken around
    // the call itself (crate::profile).
    let start = rdtsc();
    // SAFETY: `entry` is a stub Xen wrote into the hypercall page (init
    // ran); the caller vouches for the arguments. The stack is usable for
    // `call` (no `nostack`), the red zone is off on this target, and every
    // register Xen may change is declared clobbered.
    unsafe {
        core::arch::asm!(
            "call {entry}",
            entry = in(reg) entry,
            inout("rax") 0u64 => ret,
            inout("rdi") a1 => _,
            inout("rsi") a2 => _,
            inout("rdx") a3 => _,
            inout("r10") a4 => _,
            inout("r8") a5 => _,
            out("rcx") _,
            out("r11") _,
        );
    }
    crate::profile::record(op, a1, rdtsc().wrapping_sub(start));
    ret
}

/// A two-argument hypercall (`cmd`, pointer), the shape of most ops.
///
/// # Safety
/// As [`hypercall`]: `arg` points to the structure `cmd` expects.
pub unsafe fn op2<T>(op: u32, cmd: u64, arg: *mut T) -> i64 {
    // SAFETY: forwarded from the caller.
    unsafe { hypercall(op, cmd, arg as u64, 0, 0, 0) }
}

/// The CPU's time stamp counter.
pub fn rdtsc() -> u64 {
    #[allow(unused_unsafe)]
    // SAFETY: RDTSC has no side effects; CR4.TSD is clear.
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
}

/// A Xen return code as a `Result`: negative errno to [`hypervisor::XenError`].
pub fn check(rc: i64) -> Result<i64, hypervisor::XenError> {
    if rc < 0 {
        Err(hypervisor::XenError::from_errno(rc as i32))
    } else {
        Ok(rc)
    }
}
