//! CPU tables: the GDT with a TSS (so a double fault gets a good stack), and
//! the IDT with exception stubs that report and exit and interrupt stubs for
//! the legacy PIC's 16 lines, which hand over to irq.rs.
use crate::{console, irq, power};
use core::ptr::addr_of;
use spin::Once;
use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::{lidt, load_tss};
use x86_64::registers::control::Cr2;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

const DOUBLE_FAULT_STACK_BYTES: usize = 16 * 1024;
/// IST slot (1-based in the gate, 0-based in the TSS array) for #DF.
const DOUBLE_FAULT_IST: u8 = 1;

#[repr(C, align(16))]
struct Stack([u8; DOUBLE_FAULT_STACK_BYTES]);
static DOUBLE_FAULT_STACK: Stack = Stack([0; DOUBLE_FAULT_STACK_BYTES]);

struct Selectors {
    code: SegmentSelector,
    data: SegmentSelector,
    tss: SegmentSelector,
}

static TSS: Once<TaskStateSegment> = Once::new();
static GDT: Once<(GlobalDescriptorTable, Selectors)> = Once::new();

/// One 64-bit interrupt gate (Intel SDM vol. 3, 6.14.1).
#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    const MISSING: Gate = Gate {
        offset_low: 0,
        selector: 0,
        ist: 0,
        type_attr: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    };

    fn interrupt(handler: u64, selector: SegmentSelector, ist: u8) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: selector.0,
            ist,
            type_attr: 0x8e, // present, DPL 0, 64-bit interrupt gate
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

static IDT: Once<[Gate; 256]> = Once::new();

// Exception entry stubs. Vectors without a CPU-pushed error code push a 0 so
// every frame has one shape: [vector, error, rip, cs, rflags, rsp, ss].
core::arch::global_asm!(
    r#"
    .macro EXC_NOERR n
    exc_stub_\n:
        push 0
        push \n
        jmp exc_common
    .endm
    .macro EXC_ERR n
    exc_stub_\n:
        push \n
        jmp exc_common
    .endm

    .section .text.exceptions, "ax"
    .irp n, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31
    EXC_NOERR \n
    .endr
    .irp n, 8,10,11,12,13,14,17,21,29,30
    EXC_ERR \n
    .endr
    exc_common:
        mov rdi, rsp
        and rsp, -16
        call {report}
        ud2

    /* PIC interrupts: save the scratch registers, call irq::handle with
       the line, return. The CPU aligned rsp to 16 before its 5-word frame;
       the line and 9 registers make 80 bytes, 8 more re-align the call. */
    .macro IRQ_STUB n
    irq_stub_\n:
        push \n
        jmp irq_common
    .endm
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
    IRQ_STUB \n
    .endr
    irq_common:
        push rax
        push rcx
        push rdx
        push rsi
        push rdi
        push r8
        push r9
        push r10
        push r11
        mov rdi, [rsp + 72]
        sub rsp, 8
        call {irq_entry}
        add rsp, 8
        pop r11
        pop r10
        pop r9
        pop r8
        pop rdi
        pop rsi
        pop rdx
        pop rcx
        pop rax
        add rsp, 8
        iretq

    /* Xen's event-channel callback vector: registered only because Xen
       wants one before it maps a NIC's GSI to a pirq; interrupts stay off
       under Xen, so this never runs. Vector delivery needs no EOI. */
    .global xen_callback_stub
    xen_callback_stub:
        iretq

    .section .rodata.exceptions, "a"
    .p2align 3
    .global exception_stubs
    exception_stubs:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        .quad exc_stub_\n
    .endr
    .global irq_stubs
    irq_stubs:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
        .quad irq_stub_\n
    .endr
    "#,
    report = sym exception_report,
    irq_entry = sym irq_entry,
);

unsafe extern "C" {
    static exception_stubs: [u64; 32];
    static irq_stubs: [u64; irq::LINES as usize];
    fn xen_callback_stub();
}

/// The vector registered as Xen's event-channel callback
/// (`xen_net::bind_nic_irqs`); its gate only returns.
pub const XEN_CALLBACK_VECTOR: u8 = 0xf3;

extern "C" fn irq_entry(line: u64) {
    irq::handle(line as u8);
}

#[repr(C)]
struct ExceptionFrame {
    vector: u64,
    error: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

fn exception_name(vector: u64) -> &'static str {
    const NAMES: [&str; 22] = [
        "#DE divide error",
        "#DB debug",
        "NMI",
        "#BP breakpoint",
        "#OF overflow",
        "#BR bound range",
        "#UD invalid opcode",
        "#NM device not available",
        "#DF double fault",
        "coprocessor segment overrun",
        "#TS invalid TSS",
        "#NP segment not present",
        "#SS stack fault",
        "#GP general protection",
        "#PF page fault",
        "reserved",
        "#MF x87 error",
        "#AC alignment check",
        "#MC machine check",
        "#XM SIMD error",
        "#VE virtualization",
        "#CP control protection",
    ];
    NAMES.get(vector as usize).copied().unwrap_or("reserved")
}

extern "C" fn exception_report(frame: &ExceptionFrame) -> ! {
    console::print_fatal(format_args!(
        "\nEXCEPTION: {} (vector {}) error={:#x} rip={:#x} cr2={:#x} rsp={:#x}\n",
        exception_name(frame.vector),
        frame.vector,
        frame.error,
        frame.rip,
        Cr2::read_raw(),
        frame.rsp,
    ));
    power::exit_failure(power::Failure::Exception)
}

/// Loads the GDT + TSS and the IDT. Exceptions are reported from here on.
pub fn init_tables() {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        let top = addr_of!(DOUBLE_FAULT_STACK) as u64 + DOUBLE_FAULT_STACK_BYTES as u64;
        tss.interrupt_stack_table[usize::from(DOUBLE_FAULT_IST - 1)] = VirtAddr::new(top);
        tss
    });
    let (gdt, sel) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        let tss = gdt.append(Descriptor::tss_segment(tss));
        (gdt, Selectors { code, data, tss })
    });
    gdt.load();
    // SAFETY: the selectors index the GDT just loaded, with a 64-bit code
    // segment and a flat data segment; the TSS descriptor is valid and unused.
    unsafe {
        CS::set_reg(sel.code);
        DS::set_reg(sel.data);
        ES::set_reg(sel.data);
        SS::set_reg(sel.data);
        load_tss(sel.tss);
    }

    let idt = IDT.call_once(|| {
        let mut idt = [Gate::MISSING; 256];
        // SAFETY: `exception_stubs` is a table of 32 code addresses in rodata.
        let stubs = unsafe { &*addr_of!(exception_stubs) };
        for (vector, &stub) in stubs.iter().enumerate() {
            let ist = if vector == 8 { DOUBLE_FAULT_IST } else { 0 };
            idt[vector] = Gate::interrupt(stub, sel.code, ist);
        }
        // SAFETY: `irq_stubs` is a table of 16 code addresses in rodata.
        let stubs = unsafe { &*addr_of!(irq_stubs) };
        for (line, &stub) in stubs.iter().enumerate() {
            idt[usize::from(irq::VECTOR_BASE) + line] = Gate::interrupt(stub, sel.code, 0);
        }
        idt[usize::from(XEN_CALLBACK_VECTOR)] =
            Gate::interrupt(xen_callback_stub as *const () as u64, sel.code, 0);
        idt
    });
    let pointer = DescriptorTablePointer {
        limit: (core::mem::size_of::<[Gate; 256]>() - 1) as u16,
        base: VirtAddr::new(idt.as_ptr() as u64),
    };
    // SAFETY: the IDT is 'static and every present gate points at a stub.
    unsafe { lidt(&pointer) };
}

/// Programs the PICs and the PIT (irq.rs); interrupts stay off until the
/// idle loop sleeps.
pub fn init_wakeups() {
    irq::init();
}
