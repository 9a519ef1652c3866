//! aggdom: a unikernel network driver domain that aggregates NICs.
//!
//! Boot order: clock, console, CPU tables, heap, ACPI, PCI, then the poll
//! loop that serves the console (and, as the datapath lands, the NICs).
#![no_std]
#![no_main]

extern crate alloc;

mod capture;
mod console;
mod cpu;
mod ctl;
mod domain;
mod irq;
mod memory;
mod nics;
mod ownstack;
mod power;
mod profile;
mod serial;
mod shell;
mod time;
mod xen_net;

use boot::BootInfo;
use core::panic::PanicInfo;
use profile::Phase;

#[unsafe(no_mangle)]
pub fn kernel_main(info: Option<&'static BootInfo>) -> ! {
    time::start();
    boot::arm_stack_canary();
    console::init();
    let on_xen = xen_net::early_init();
    cpu::init_tables();
    let cmdline = info.map_or("", BootInfo::cmdline);
    println!(
        "aggdom {} booting (PVH{}) cmdline=\"{cmdline}\"",
        shell::VERSION,
        if on_xen { ", on Xen" } else { "" }
    );
    if info.is_none() {
        println!("warning: no PVH start info (bad magic); no memory map or command line");
    }
    let Some(heap) = memory::init_heap(info) else {
        panic!("no usable RAM above the kernel for a heap");
    };
    println!(
        "memory: {} MiB usable, heap {} KiB at {:#x}",
        heap.usable_ram >> 20,
        heap.len >> 10,
        heap.start
    );
    match time::calibrate() {
        Some(hz) => println!("clock: TSC {} MHz", hz / 1_000_000),
        None => println!(
            "clock: no PIT, assuming TSC {} MHz",
            time::tsc_hz() / 1_000_000
        ),
    }
    if power::init(info).is_none() {
        println!("acpi: no power-off recipe; shutdown will try QEMU's fixed port");
    }
    // Under Xen, xenstore adds to the configuration (xen_net.rs).
    let config = xen_net::start(cmdline);
    let found = nics::discover();
    let mut domain = domain::Domain::start(found, &config);
    xen_net::start_netback();
    cpu::init_wakeups();
    println!(
        "aggdom ready: {} NICs, boot {} ms",
        domain.nics.len(),
        time::now_ns() / 1_000_000
    );
    // Under Xen, COM1 goes quiet now (console.rs: every byte waits for dom0).
    console::boot_done();

    let mut shell = shell::Shell::new();
    shell.start();
    // Each phase's cycles (the console's `profile`): a mark after each,
    // so the phases add up to the loop's time.
    let mut lap = profile::Loop::start();
    loop {
        if !boot::stack_intact() {
            panic!("kernel stack overflow (canary at the stack's end overwritten)");
        }
        // Events that come from here on cut the sleep at the end short.
        xen_net::clear_events();
        let now = time::now_ns();
        let control = xen_net::poll(&mut domain);
        lap.mark(Phase::XenNet);
        let frames = domain.poll(now);
        lap.mark(Phase::Domain);
        let mut busy = control > 0 || frames > 0;
        let mut other = false;
        while let Some(byte) = console::read_byte() {
            shell.feed(&mut domain, byte);
            other = true;
        }
        lap.mark(Phase::Shell);
        // aggctl requests (under Xen), then the capture's time limit.
        other |= ctl::run_pending(&mut domain) > 0;
        lap.mark(Phase::Ctl);
        capture::poll(&mut domain, now);
        shell.tick(&mut domain, now);
        console::flush();
        lap.mark(Phase::Console);
        busy |= other;
        if busy && !other && control == 0 && !domain.saturated() && xen_net::is_xen() {
            // A turn that moved frames but drained every ring: under Xen,
            // sleep until the next event (a frame raises its NIC's
            // interrupt, a guest its vif's event) rather than turn again
            // at once, as Linux's NAPI re-enables interrupts once a poll
            // comes in under its budget. Frames then meet in larger
            // batches and the CPU goes to the domains that send and take
            // them. A frame that came before the re-arm raises nothing:
            // it waits at most DRAINED_TURN_WAIT_NS.
            if domain.arm_interrupts() {
                let deadline = sleep_deadline(&domain, now).min(now + DRAINED_TURN_WAIT_NS);
                if xen_net::block(deadline.saturating_sub(now)) {
                    lap.mark(Phase::Block);
                    continue;
                }
            }
        }
        if busy {
            xen_net::yield_if_due(now);
            lap.mark(Phase::Yield);
            continue;
        }
        let idle = !domain.arm_interrupts() || domain.poll(now) == 0;
        lap.mark(Phase::Domain);
        if idle {
            // Nothing moved. The NICs' interrupts are re-armed and looked
            // at once more (a frame that came before the re-arm raises
            // none): sleep until an interrupt or event, or the next timer
            // the domain needs. Under Xen that is SCHEDOP_poll on the event
            // channels (NIC INTx bound to pirqs, vifs, xenstore, console);
            // under QEMU `hlt` with the PIC.
            let deadline = sleep_deadline(&domain, now);
            if !xen_net::block(deadline.saturating_sub(now)) {
                irq::sleep_until(deadline);
            }
            lap.mark(Phase::Block);
        }
    }
}

/// How soon an idle loop looks again at console output a sink could not
/// take.
const CONSOLE_RETRY_NS: u64 = 1_000_000;

/// The longest a drained turn's sleep lasts: what a frame that came just
/// before the NICs' interrupts were re-armed may wait.
const DRAINED_TURN_WAIT_NS: u64 = 500_000;

/// When the loop must look again with nothing arriving: the domain's next
/// timer, a vif's rate window (its guest sends nothing to wake us), and a
/// console with output waiting (it raises nothing when it drains).
fn sleep_deadline(domain: &domain::Domain, now: u64) -> u64 {
    let mut deadline = domain.next_deadline(now);
    if let Some(at) = xen_net::next_timer_ns() {
        deadline = deadline.min(at.max(now));
    }
    if console::has_pending() {
        deadline = deadline.min(now + CONSOLE_RETRY_NS);
    }
    deadline
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    match info.location() {
        Some(at) => console::print_fatal(format_args!(
            "\nPANIC at {}:{}:{}: {}\n",
            at.file(),
            at.line(),
            at.column(),
            info.message()
        )),
        None => console::print_fatal(format_args!("\nPANIC: {}\n", info.message())),
    }
    power::exit_failure(power::Failure::Panic)
}
