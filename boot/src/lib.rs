//! The PVH entry: the Xen ELF note that makes QEMU and Xen start us in 32-bit
//! protected mode, the switch to long mode on early identity page tables, and
//! a safe view of `hvm_start_info` for the kernel.
//!
//! The kernel binary defines `kernel_main(&BootInfo) -> !`; this crate calls
//! it on the boot stack with paging on and the low 4 GiB identity mapped.
//!
//! The entry code exists only for the bare-metal target; the start info
//! parser and the heap's place in the memory map are plain code, built and
//! fuzzed on the host too.
#![cfg_attr(not(test), no_std)]

#[cfg(target_os = "none")]
mod entry;

#[cfg(target_os = "none")]
pub use entry::{arm_stack_canary, stack_intact, take_identity_pdpt};
mod start_info;

pub use start_info::{heap_range, BootInfo, MemoryRegion, MemoryType, START_INFO_MAGIC};
