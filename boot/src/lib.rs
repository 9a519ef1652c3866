//! The PVH entry: the Xen ELF note that makes QEMU and Xen start us in 32-bit
//! protected mode, the switch to long mode on early identity page tables, and
//! a safe view of `hvm_start_info` for the kernel.
//!
//! The kernel binary defines `kernel_main(&BootInfo) -> !`; this crate calls
//! it on the boot stack with paging on and the low 4 GiB identity mapped.
#![no_std]

mod entry;

pub use entry::{arm_stack_canary, stack_intact, take_identity_pdpt};
mod start_info;

pub use start_info::{BootInfo, MemoryRegion, MemoryType, START_INFO_MAGIC};
