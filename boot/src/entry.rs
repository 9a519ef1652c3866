//! From the loader's 32-bit protected mode to `kernel_main` in long mode.
//!
//! PVH boot protocol (xen/include/public/arch-x86/hvm/start_info.h): paging
//! off, flat 4 GiB segments, `%ebx` = physical address of `hvm_start_info`.
//! We build page tables that identity-map the low 4 GiB with 2 MiB pages
//! (RAM, the kernel at 4 MiB and the PCI hole where firmware puts BARs), load
//! a 64-bit GDT, enable PAE + LME + PG and jump to 64-bit code.
use crate::start_info::BootInfo;
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, Ordering};

/// Boot stack size; the kernel runs on it for its whole life.
pub const BOOT_STACK_BYTES: usize = 1024 * 1024;

core::arch::global_asm!(
    r#"
    .section .note.Xen, "a"
    .p2align 2
    .long 4                 /* namesz: "Xen\0" */
    .long 8                 /* descsz */
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .p2align 2
    .quad pvh_start
    .p2align 2

    .section .bss.boot, "aw", @nobits
    .p2align 12
boot_pml4:   .skip 4096
    .global boot_pdpt
boot_pdpt:   .skip 4096
boot_pd:     .skip 4096 * 4
    .global boot_stack_bottom
boot_stack_bottom:
boot_stack:  .skip {stack}
boot_stack_top:

    .section .rodata.boot, "a"
    .p2align 3
boot_gdt:
    .quad 0                     /* null */
    .quad 0x00af9a000000ffff    /* 0x08: 64-bit code, DPL 0 */
    .quad 0x00cf92000000ffff    /* 0x10: data */
boot_gdt_end:
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .quad boot_gdt

    .section .text.boot, "ax"
    .code32
    .global pvh_start
pvh_start:
    cli
    cld
    mov %ebx, %esi                   /* keep the start info pointer */

    /* PML4[0] -> PDPT; PDPT[0..4] -> four page directories. */
    mov $boot_pdpt, %eax
    or $0x3, %eax                    /* present | writable */
    mov %eax, boot_pml4
    mov $boot_pd, %eax
    or $0x3, %eax
    xor %ecx, %ecx
1:  mov %eax, boot_pdpt(,%ecx,8)
    add $4096, %eax
    inc %ecx
    cmp $4, %ecx
    jb 1b

    /* 2048 PD entries of 2 MiB: 0..4 GiB, identity. */
    xor %ecx, %ecx
2:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax                   /* present | writable | 2 MiB page */
    mov %eax, boot_pd(,%ecx,8)
    movl $0, boot_pd+4(,%ecx,8)
    inc %ecx
    cmp $2048, %ecx
    jb 2b

    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov %cr4, %eax
    or $0x20, %eax                   /* CR4.PAE */
    mov %eax, %cr4
    mov $0xc0000080, %ecx            /* IA32_EFER */
    rdmsr
    or $0x100, %eax                  /* EFER.LME */
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax             /* CR0.PG | CR0.PE */
    mov %eax, %cr0

    lgdt boot_gdt_ptr
    ljmp $0x08, $3f

    .code64
3:  mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %ax, %ax
    mov %ax, %fs
    mov %ax, %gs
    mov $boot_stack_top, %rsp
    xor %ebp, %ebp
    mov %esi, %edi                   /* zero-extends: arg 0 = start info */
    call {entry}
4:  hlt
    jmp 4b
    "#,
    stack = const BOOT_STACK_BYTES,
    entry = sym boot_entry64,
    options(att_syntax)
);

/// Holds the copied start info for the kernel's whole life.
struct BootInfoCell(UnsafeCell<MaybeUninit<BootInfo>>);
// SAFETY: written once on the single boot CPU before anything else runs,
// read-only afterwards.
unsafe impl Sync for BootInfoCell {}
static BOOT_INFO: BootInfoCell = BootInfoCell(UnsafeCell::new(MaybeUninit::uninit()));

unsafe extern "Rust" {
    /// Defined by the kernel binary.
    fn kernel_main(info: Option<&'static BootInfo>) -> !;
}

extern "C" fn boot_entry64(start_info_paddr: u64) -> ! {
    // SAFETY: the low 4 GiB are identity mapped and the PVH loader passed the
    // start info in %ebx; `read` checks the magic before trusting it.
    let info = unsafe { BootInfo::read(start_info_paddr) };
    let info = info.map(|info| {
        // SAFETY: this is the only write, before any reader exists.
        unsafe { (*BOOT_INFO.0.get()).write(info) };
        // SAFETY: initialised just above; never written again.
        unsafe { (*BOOT_INFO.0.get()).assume_init_ref() }
    });
    // SAFETY: `kernel_main` is the kernel's entry, called exactly once.
    unsafe { kernel_main(info) }
}

unsafe extern "C" {
    static mut boot_stack_bottom: [u64; 8];
}

/// Written at the lowest words of the boot stack: a stack that grew past
/// its end overwrote them. There is no guard page (the boot map uses 2 MiB
/// pages), so this is how an overflow gets noticed.
const STACK_CANARY: u64 = 0x5afe_57ac_cafe_f00d;

/// Arms the stack canary; call once, early.
pub fn arm_stack_canary() {
    // SAFETY: the lowest 64 bytes of the boot stack; the stack pointer is
    // far above them this early, and nothing else names this memory.
    unsafe { core::ptr::addr_of_mut!(boot_stack_bottom).write_volatile([STACK_CANARY; 8]) };
}

/// `false` once the stack has grown into its last 64 bytes.
pub fn stack_intact() -> bool {
    // SAFETY: a read of the words `arm_stack_canary` wrote.
    let words = unsafe { core::ptr::addr_of!(boot_stack_bottom).read_volatile() };
    words.iter().all(|&w| w == STACK_CANARY)
}

unsafe extern "C" {
    /// The page-directory-pointer table behind PML4[0]: entries 0-3 map the
    /// low 4 GiB; the kernel fills others to reach BARs above 4 GiB.
    static mut boot_pdpt: [u64; 512];
}

/// Set once the boot PDPT has been handed out.
static PDPT_TAKEN: AtomicBool = AtomicBool::new(false);

/// The boot PDPT, for extending the identity map (512 GiB reach). Handed
/// out once: the first call gets the only reference there will ever be,
/// later calls `None`, so two `&mut` to the live page table cannot exist.
///
/// # Safety
/// Page tables decide what every address means: the caller only adds
/// entries for addresses nothing maps yet (identity, as the rest of the
/// map), never changes one in use, and flushes the TLB after a change.
pub unsafe fn take_identity_pdpt() -> Option<&'static mut [u64; 512]> {
    if PDPT_TAKEN.swap(true, Ordering::AcqRel) {
        return None;
    }
    // SAFETY: (1) the flag makes this the one reference to `boot_pdpt`
    // Rust ever creates (nothing else in Rust names it); (2) the 32-bit
    // entry code wrote it before any Rust ran and never touches it again;
    // (3) the CPU's page walker reading it is not a Rust access. The table
    // is 'static and page aligned.
    Some(unsafe { &mut *core::ptr::addr_of_mut!(boot_pdpt) })
}
