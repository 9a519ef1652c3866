//! CPU tables: the GDT with a TSS (so a double fault gets a good stack), the
//! IDT with exception stubs that report and exit, and the legacy PIC + PIT
//! whose only job is waking the idle loop from `hlt`.
use crate::{console, power};
use core::ptr::addr_of;
use spin::Once;
use x86_64::instructions::port::Port;
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
/// The PIC's IRQ 0-7 are remapped to these vectors (above the exceptions).
const PIC_VECTOR_BASE: u8 = 0x20;
const IRQ_TIMER: u8 = 0;
const IRQ_COM1: u8 = 4;
/// PIT input clock (Intel 8254 datasheet): 1.193182 MHz.
pub const PIT_HZ: u64 = 1_193_182;
const TICK_HZ: u64 = 1000;

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

    /* PIC interrupts: acknowledge and return; waking `hlt` is the point. */
    .global irq_wake_stub
    irq_wake_stub:
        push rax
        mov al, 0x20
        out 0x20, al
        pop rax
        iretq

    .section .rodata.exceptions, "a"
    .p2align 3
    .global exception_stubs
    exception_stubs:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        .quad exc_stub_\n
    .endr
    "#,
    report = sym exception_report,
);

unsafe extern "C" {
    static exception_stubs: [u64; 32];
    fn irq_wake_stub();
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
        for irq in 0..8 {
            idt[usize::from(PIC_VECTOR_BASE + irq)] =
                Gate::interrupt(irq_wake_stub as *const () as u64, sel.code, 0);
        }
        idt
    });
    let pointer = DescriptorTablePointer {
        limit: (core::mem::size_of::<[Gate; 256]>() - 1) as u16,
        base: VirtAddr::new(idt.as_ptr() as u64),
    };
    // SAFETY: the IDT is 'static and every present gate points at a stub.
    unsafe { lidt(&pointer) };
}

/// Remaps the PICs above the exceptions, unmasks only the timer and COM1,
/// and starts the PIT at 1 kHz. Interrupts stay off until the idle loop.
pub fn init_wakeups() {
    // SAFETY: 8259A initialisation words (ICW1-4) and 8254 mode/divisor
    // writes, on the standard ports; nothing else programs them.
    unsafe {
        let mut cmd1 = Port::<u8>::new(0x20);
        let mut data1 = Port::<u8>::new(0x21);
        let mut cmd2 = Port::<u8>::new(0xa0);
        let mut data2 = Port::<u8>::new(0xa1);
        cmd1.write(0x11);
        cmd2.write(0x11);
        data1.write(PIC_VECTOR_BASE);
        data2.write(PIC_VECTOR_BASE + 8);
        data1.write(4); // slave on IRQ2
        data2.write(2);
        data1.write(0x01); // 8086 mode
        data2.write(0x01);
        data1.write(!((1 << IRQ_TIMER) | (1 << IRQ_COM1)));
        data2.write(0xff);

        let divisor = (PIT_HZ / TICK_HZ) as u16;
        Port::<u8>::new(0x43).write(0x34); // channel 0, lo/hi, rate generator
        Port::<u8>::new(0x40).write(divisor as u8);
        Port::<u8>::new(0x40).write((divisor >> 8) as u8);
    }
}

/// Sleeps until the next interrupt (at most one timer tick).
pub fn idle() {
    x86_64::instructions::interrupts::enable_and_hlt();
    x86_64::instructions::interrupts::disable();
}
