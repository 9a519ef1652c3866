//! Finding the NICs: a walk of PCI that prints every function, brings up a
//! driver for each recognised NIC, and reports the ones that fail.
use crate::memory::{self, KernelHal};
use crate::println;
use aggdom_config::NicAddress;
use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use nic::Nic;
use pci::{ConfigurationAccess, DeviceFunction, NicKind, PciRoot, PortIoCam};
use virtio_drivers::transport::pci::bus::{BarInfo, HeaderType};

/// A recognised NIC, with its driver or the reason it has none.
pub struct FoundNic {
    pub at: DeviceFunction,
    pub vendor_id: u16,
    pub device_id: u16,
    pub kind: NicKind,
    /// The legacy PIC line its INTx is wired to, as firmware wrote it into
    /// the Interrupt Line register (`None`: no INTx pin, or not routed).
    pub irq_line: Option<u8>,
    /// Its Interrupt Pin (1 = INTA .. 4 = INTD; 0 = none): under Xen the
    /// guest GSI of a passed-through device follows from slot and pin.
    pub irq_pin: u8,
    pub driver: Result<Box<dyn Nic>, String>,
}

/// PCI config dword 0x3c: Interrupt Line (byte 0, written by firmware:
/// SeaBIOS routes PIIX PIRQA-D to ISA IRQs 10/11) and Interrupt Pin (byte 1,
/// 0 = none). PCI Local Bus spec 3.0, 6.2.4.
fn irq_line(cam: &PortIoCam, at: DeviceFunction) -> Option<u8> {
    let (line, pin) = line_and_pin(cam, at);
    (pin != 0 && line < 16).then_some(line)
}

fn line_and_pin(cam: &PortIoCam, at: DeviceFunction) -> (u8, u8) {
    let dword = cam.read_word(at, 0x3c);
    (dword as u8, (dword >> 8) as u8)
}

/// A PCI function's address, which config's [`NicAddress`] prints as
/// `bb:dd.f` (as lspci and Xen's `pci=[...]` write it).
pub fn address(at: DeviceFunction) -> NicAddress {
    NicAddress {
        bus: at.bus,
        device: at.device,
        function: at.function,
    }
}

/// Enumerates PCI (bus 0 and every bus behind a bridge), starts a driver on
/// each NIC and prints one line per function.
pub fn discover() -> Vec<FoundNic> {
    // SAFETY: x86 PCs have the CF8/CFC pair, and nothing in the kernel
    // but `PortIoCam` touches those ports.
    let mut root = PciRoot::new(unsafe { PortIoCam::new() });
    // SAFETY: as above. A second handle is sound: each `PortIoCam` access
    // is an indivisible address/data pair, so handles cannot interleave;
    // this one only reads (bridge headers, interrupt line and pin).
    let reader = unsafe { PortIoCam::new() };
    let mut found = Vec::new();
    let mut buses = alloc::vec![0u8];
    let mut seen = Vec::new();
    while let Some(bus) = buses.pop() {
        seen.push(bus);
        let functions: Vec<_> = root.enumerate_bus(bus).collect();
        for (at, info) in functions {
            if info.header_type == HeaderType::PciPciBridge {
                // Secondary bus number: byte 1 of dword 0x18 of a type-1 header.
                let secondary = (reader.read_word(at, 0x18) >> 8) as u8;
                if secondary != 0 && !seen.contains(&secondary) && !buses.contains(&secondary) {
                    buses.push(secondary);
                }
            }
            let ids = alloc::format!("{:04x}:{:04x}", info.vendor_id, info.device_id);
            let Some(kind) = NicKind::from_info(&info) else {
                println!("pci {} {ids} other", address(at));
                continue;
            };
            let mut driver = start_driver(&mut root, at, kind);
            match &mut driver {
                Ok(nic) => println!(
                    "pci {} {ids} {kind} mac {} link {}",
                    address(at),
                    nic.permanent_mac(),
                    if nic.link_up() { "up" } else { "down" }
                ),
                Err(why) => println!("pci {} {ids} {kind} left out: {why}", address(at)),
            }
            found.push(FoundNic {
                at,
                vendor_id: info.vendor_id,
                device_id: info.device_id,
                kind,
                irq_line: irq_line(&reader, at),
                irq_pin: line_and_pin(&reader, at).1,
                driver,
            });
        }
    }
    found
}

/// Identity-maps every memory BAR of `at` before its driver maps them. The
/// drivers map registers through `Hal::mmio_phys_to_virt`, which cannot
/// fail and so panics on a BAR the identity map cannot reach (above
/// 512 GiB, where firmware may put a 64-bit BAR): here that NIC is left out
/// instead. BARs that cannot be read are left to the driver to judge.
fn map_bars(root: &mut PciRoot<PortIoCam>, at: DeviceFunction) -> Result<(), String> {
    let Ok(bars) = root.bars(at) else {
        return Ok(());
    };
    for (i, bar) in bars.iter().enumerate() {
        let Some((addr, size)) = bar.as_ref().and_then(BarInfo::memory_address_size) else {
            continue;
        };
        if addr != 0 && size != 0 {
            memory::ensure_identity_mapped(addr, size)
                .map_err(|why| format!("BAR{i} at {addr:#x}: {why}"))?;
        }
    }
    Ok(())
}

fn start_driver(
    root: &mut PciRoot<PortIoCam>,
    at: DeviceFunction,
    kind: NicKind,
) -> Result<Box<dyn Nic>, String> {
    map_bars(root, at)?;
    match kind {
        NicKind::E1000 => e1000::E1000::<KernelHal>::from_pci(root, at)
            .map(|n| Box::new(n) as Box<dyn Nic>)
            .map_err(|e| e.to_string()),
        NicKind::VirtioNet => virtio_net::VirtioNetNic::<KernelHal>::from_pci(root, at)
            .map(|n| Box::new(n) as Box<dyn Nic>)
            .map_err(|e| e.to_string()),
    }
}
