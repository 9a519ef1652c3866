//! Leaving the machine: ACPI soft-off for `shutdown` (QEMU exits 0), and
//! isa-debug-exit for failures (QEMU exits non-zero). Under Xen,
//! `SCHEDOP_shutdown` first: poweroff, or crash for failures (the toolstack
//! then acts on `on_crash`).
use crate::memory::IdentityMapped;
use x86_64::instructions::port::Port;

/// `-device isa-debug-exit,iobase=0xf4,iosize=0x04`: writing v exits QEMU
/// with status (v << 1) | 1.
const DEBUG_EXIT_PORT: u16 = 0xf4;

/// Why the kernel gives up; the value reaches QEMU's exit status.
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum Failure {
    Panic = 1,
    Exception = 2,
}

static POWER_OFF: spin::Once<Option<acpi::PowerOff>> = spin::Once::new();

/// Reads the ACPI tables once, so `shutdown` does not walk them late.
pub fn init(info: Option<&boot::BootInfo>) -> Option<acpi::PowerOff> {
    *POWER_OFF.call_once(|| {
        let rsdp = info.and_then(|i| i.rsdp);
        acpi::find_power_off(&IdentityMapped::from_map(info), rsdp)
    })
}

fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

pub fn exit_failure(why: Failure) -> ! {
    if xen::is_xen() {
        xen::shutdown(true);
    }
    // SAFETY: a write to the debug-exit port; where no such device exists
    // the write is ignored and we halt below.
    unsafe { Port::<u32>::new(DEBUG_EXIT_PORT).write(why as u32) };
    halt_forever()
}

/// Clean power-off.
pub fn shutdown() -> ! {
    if xen::is_xen() {
        xen::shutdown(false);
        crate::println!("shutdown: Xen refused SCHEDOP_shutdown; trying ACPI");
    }
    let recipe = POWER_OFF.get().copied().flatten();
    // SAFETY: PM1 control writes as ACPI (or, failing that, QEMU's fixed
    // piix4/ich9 PM block at 0x604) prescribes for entering S5.
    unsafe {
        if let Some(p) = recipe {
            Port::<u16>::new(p.pm1a_control_port).write(p.pm1a_value());
            if let Some(port) = p.pm1b_control_port {
                Port::<u16>::new(port).write(p.pm1b_value());
            }
        }
        Port::<u16>::new(0x604).write(0x2000);
    }
    // QEMU acts on a power-off request asynchronously: give it a moment
    // before saying it failed.
    let asked = crate::time::now_ns();
    while crate::time::now_ns() - asked < 500_000_000 {
        core::hint::spin_loop();
    }
    crate::println!("shutdown: ACPI power-off did not take effect; halting");
    halt_forever()
}
