//! Interrupts under plain QEMU: the legacy PIC (8259A pair) with the NICs'
//! PCI INTx lines, and PIT channel 0 as a one-shot timer, so the idle loop
//! sleeps in `hlt` until a frame, a link change, a console byte or the next
//! timer the domain asked for, never on a fixed tick.
//!
//! Interrupts are only ever enabled inside [`sleep_until`]'s `sti; hlt`; a
//! handler does no work beyond noting which line fired. A NIC line is
//! level-triggered (PCI INTx; ELCR): it stays asserted until the driver
//! acknowledges the device, so the handler masks it at the PIC and the main
//! loop unmasks it once it has drained that NIC and re-armed it
//! (`Domain::arm_interrupts`). Under load the lines stay masked and the loop
//! keeps polling in batches, as NAPI does.
//!
//! Under Xen none of this is used: the loop sleeps in `SCHEDOP_poll` and IF
//! stays clear (xen_net.rs), and no NIC line is registered here.
use crate::time;
use core::sync::atomic::{AtomicU16, Ordering};
use x86_64::instructions::port::Port;

/// The PIC's IRQ 0-15 are remapped to these vectors (above the exceptions).
pub const VECTOR_BASE: u8 = 0x20;
pub const LINES: u8 = 16;
const IRQ_TIMER: u8 = 0;
const IRQ_CASCADE: u8 = 2;
const IRQ_COM1: u8 = 4;
/// PIT input clock (Intel 8254 datasheet): 1.193182 MHz.
pub const PIT_HZ: u64 = 1_193_182;
/// The longest one-shot the PIT's 16-bit counter holds: 65535 ticks, ~55 ms.
/// Longer sleeps are chained shots.
const PIT_MAX_TICKS: u64 = 0xffff;

const PIC1_CMD: u16 = 0x20;
const PIC1_DATA: u16 = 0x21;
const PIC2_CMD: u16 = 0xa0;
const PIC2_DATA: u16 = 0xa1;
/// Edge/Level Control Registers of the PIIX (82371AB datasheet, 4.1.14):
/// bit n set = IRQ n level-triggered (IRQ 0-7 at 0x4d0, 8-15 at 0x4d1).
const ELCR1: u16 = 0x4d0;
const ELCR2: u16 = 0x4d1;
/// OCW2 non-specific end of interrupt; OCW3 "read the in-service register".
const EOI: u8 = 0x20;
const READ_ISR: u8 = 0x0b;

/// Lines masked at the PIC (bit n = IRQ n): everything but the timer, the
/// cascade and COM1 until NIC lines are registered and armed.
static MASKED: AtomicU16 =
    AtomicU16::new(!((1 << IRQ_TIMER) | (1 << IRQ_CASCADE) | (1 << IRQ_COM1)));
/// The NIC lines (level-triggered; masked by the handler).
static NIC_LINES: AtomicU16 = AtomicU16::new(0);
/// Lines that fired since the last `sleep_until` looked.
static FIRED: AtomicU16 = AtomicU16::new(0);

fn write_masks(masked: u16) {
    // SAFETY: the PICs' interrupt mask registers (OCW1); only this module
    // programs the PICs.
    unsafe {
        Port::<u8>::new(PIC1_DATA).write(masked as u8);
        Port::<u8>::new(PIC2_DATA).write((masked >> 8) as u8);
    }
}

/// Remaps the PICs above the exceptions, masks all but the timer, COM1 and
/// the cascade, and leaves the PIT quiet (one shot at a time from
/// [`sleep_until`]). Interrupts stay off until the idle loop.
pub fn init() {
    // SAFETY: 8259A initialisation words (ICW1-4) on the standard ports;
    // nothing else programs them.
    unsafe {
        let mut cmd1 = Port::<u8>::new(PIC1_CMD);
        let mut data1 = Port::<u8>::new(PIC1_DATA);
        let mut cmd2 = Port::<u8>::new(PIC2_CMD);
        let mut data2 = Port::<u8>::new(PIC2_DATA);
        cmd1.write(0x11);
        cmd2.write(0x11);
        data1.write(VECTOR_BASE);
        data2.write(VECTOR_BASE + 8);
        data1.write(1 << IRQ_CASCADE); // slave on IRQ2
        data2.write(IRQ_CASCADE);
        data1.write(0x01); // 8086 mode
        data2.write(0x01);
    }
    write_masks(MASKED.load(Ordering::Relaxed));
    arm_pit(PIT_MAX_TICKS);
}

/// Takes `lines` (bit n = IRQ n) as NIC INTx lines: level-triggered, masked
/// until [`unmask`]ed, masked again by the handler when they fire. Lines
/// 0-2 (timer, keyboard, cascade) are refused; returns the lines taken.
pub fn add_nic_lines(lines: u16) -> u16 {
    let lines = lines & !0b111;
    NIC_LINES.fetch_or(lines, Ordering::Relaxed);
    let masked = MASKED.fetch_or(lines, Ordering::Relaxed) | lines;
    write_masks(masked);
    // SAFETY: the ELCR ports; setting a PCI line's bit only states what
    // SeaBIOS already programmed for PCI interrupts (level).
    unsafe {
        let mut elcr1 = Port::<u8>::new(ELCR1);
        let mut elcr2 = Port::<u8>::new(ELCR2);
        let low = elcr1.read() | lines as u8;
        let high = elcr2.read() | (lines >> 8) as u8;
        elcr1.write(low);
        elcr2.write(high);
    }
    lines
}

/// Unmasks NIC `lines` at the PIC (after their devices were re-armed).
pub fn unmask(lines: u16) {
    let lines = lines & NIC_LINES.load(Ordering::Relaxed);
    let before = MASKED.load(Ordering::Relaxed);
    if before & lines != 0 {
        MASKED.store(before & !lines, Ordering::Relaxed);
        write_masks(before & !lines);
    }
}

/// Starts a one-shot of `ticks` on PIT channel 0 (mode 0: IRQ 0 rises once
/// at terminal count; a new count restarts it).
fn arm_pit(ticks: u64) {
    let ticks = ticks.clamp(1, PIT_MAX_TICKS) as u16;
    // SAFETY: PIT channel 0's mode and counter ports; only this module uses
    // channel 0 (time.rs calibrates on channel 2).
    unsafe {
        Port::<u8>::new(0x43).write(0x30); // channel 0, lo/hi, mode 0
        Port::<u8>::new(0x40).write(ticks as u8);
        Port::<u8>::new(0x40).write((ticks >> 8) as u8);
    }
}

/// Sleeps in `hlt` until an interrupt other than the timer (a NIC, COM1)
/// or until `deadline_ns` (`time::now_ns` scale). Returns at once if the
/// deadline has passed.
pub fn sleep_until(deadline_ns: u64) {
    loop {
        let now = time::now_ns();
        if now >= deadline_ns {
            return;
        }
        let ticks = u128::from(deadline_ns - now) * u128::from(PIT_HZ) / 1_000_000_000;
        arm_pit(ticks.min(u128::from(PIT_MAX_TICKS)) as u64 + 1);
        // `sti; hlt`: an interrupt already pending is taken after the `hlt`
        // starts, so one raised since the last poll still wakes it.
        x86_64::instructions::interrupts::enable_and_hlt();
        x86_64::instructions::interrupts::disable();
        if FIRED.swap(0, Ordering::Relaxed) & !(1 << IRQ_TIMER) != 0 {
            return;
        }
    }
}

fn in_service(cmd: u16) -> u8 {
    // SAFETY: OCW3 selects the in-service register for the next read of
    // the command port; the default (IRR) is not relied on elsewhere.
    unsafe {
        Port::<u8>::new(cmd).write(READ_ISR);
        Port::<u8>::new(cmd).read()
    }
}

/// Called from the interrupt stubs (cpu.rs) with interrupts off.
pub fn handle(irq: u8) {
    // A spurious IRQ 7 / 15 (the line dropped before the PIC's ack) has no
    // in-service bit and must get no EOI from that PIC (8259A datasheet).
    if irq == 7 && in_service(PIC1_CMD) & 0x80 == 0 {
        return;
    }
    if irq == 15 && in_service(PIC2_CMD) & 0x80 == 0 {
        // SAFETY: the master did take the cascade line in service.
        unsafe { Port::<u8>::new(PIC1_CMD).write(EOI) };
        return;
    }
    let bit = 1u16 << irq;
    FIRED.fetch_or(bit, Ordering::Relaxed);
    if NIC_LINES.load(Ordering::Relaxed) & bit != 0 {
        // Still asserted until the device is acknowledged: mask it first,
        // or the EOI re-raises it at once.
        let masked = MASKED.fetch_or(bit, Ordering::Relaxed) | bit;
        write_masks(masked);
    }
    // SAFETY: non-specific EOI to the PIC(s) that took this IRQ in service.
    unsafe {
        if irq >= 8 {
            Port::<u8>::new(PIC2_CMD).write(EOI);
        }
        Port::<u8>::new(PIC1_CMD).write(EOI);
    }
}
