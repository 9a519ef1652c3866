//! Finding the NICs: a walk of PCI that records every function and reads
//! each recognised NIC's MAC and link state.
use crate::memory::{KernelHal, IDENTITY_MAPPED_END};
use crate::println;
use alloc::vec::Vec;
use core::fmt;
use pci::{
    enable_device, BarInfo, ConfigurationAccess, DeviceFunction, NicKind, PciRoot, PortIoCam,
};
use spin::Mutex;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::Transport;

/// One PCI function as found at boot.
pub struct PciFunction {
    pub at: DeviceFunction,
    pub vendor_id: u16,
    pub device_id: u16,
    pub nic: Option<Nic>,
}

pub struct Nic {
    pub kind: NicKind,
    pub mac: Option<MacText>,
    pub link_up: bool,
    /// Why the NIC is left out, if it is.
    pub problem: Option<&'static str>,
}

/// A MAC address printed the usual way.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MacText(pub [u8; 6]);

impl fmt::Display for MacText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// `bb:dd.f`, as lspci and Xen's `pci=[...]` write it.
pub struct PciAddr(pub DeviceFunction);

impl fmt::Display for PciAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02x}:{:02x}.{:x}",
            self.0.bus, self.0.device, self.0.function
        )
    }
}

static FUNCTIONS: Mutex<Vec<PciFunction>> = Mutex::new(Vec::new());
static ROOT: Mutex<Option<PciRoot<PortIoCam>>> = Mutex::new(None);

/// Enumerates PCI (bus 0 and every bus behind a bridge), probes the NICs and
/// prints one line per function.
pub fn discover() -> usize {
    // SAFETY: the kernel's one user of ports 0xCF8/0xCFC (kept in `ROOT`).
    let mut root = PciRoot::new(unsafe { PortIoCam::new() });
    // SAFETY: a second handle used only for reads of bridge headers, between
    // the main handle's accesses, on the one CPU (`unsafe_clone`'s rule).
    let reader = unsafe { root_reader() };
    let mut found = Vec::new();
    let mut buses = alloc::vec![0u8];
    while let Some(bus) = buses.pop() {
        let functions: Vec<_> = root.enumerate_bus(bus).collect();
        for (at, info) in functions {
            if matches!(
                info.header_type,
                virtio_drivers::transport::pci::bus::HeaderType::PciPciBridge
            ) {
                // Secondary bus number: byte 1 of dword 0x18 of a type-1 header.
                let secondary = (reader.read_word(at, 0x18) >> 8) as u8;
                if secondary > bus && !buses.contains(&secondary) {
                    buses.push(secondary);
                }
            }
            let nic = NicKind::from_info(&info).map(|kind| probe(&mut root, at, kind));
            found.push(PciFunction {
                at,
                vendor_id: info.vendor_id,
                device_id: info.device_id,
                nic,
            });
        }
    }
    for f in &found {
        print_function(f);
    }
    let nics = found
        .iter()
        .filter(|f| f.nic.as_ref().is_some_and(|n| n.problem.is_none()))
        .count();
    *FUNCTIONS.lock() = found;
    *ROOT.lock() = Some(root);
    nics
}

/// # Safety
/// Only for reads; see `ConfigurationAccess::unsafe_clone`.
unsafe fn root_reader() -> PortIoCam {
    // SAFETY: forwarded to the caller.
    unsafe { PortIoCam::new() }
}

fn print_function(f: &PciFunction) {
    let at = PciAddr(f.at);
    match &f.nic {
        None => println!("pci {at} {:04x}:{:04x} other", f.vendor_id, f.device_id),
        Some(nic) => {
            let (vendor, device, kind) = (f.vendor_id, f.device_id, nic.kind);
            match (nic.problem, nic.mac) {
                (Some(why), _) => {
                    println!("pci {at} {vendor:04x}:{device:04x} {kind} left out: {why}")
                }
                (None, Some(mac)) => println!(
                    "pci {at} {vendor:04x}:{device:04x} {kind} mac {mac} link {}",
                    if nic.link_up { "up" } else { "down" }
                ),
                (None, None) => {
                    println!("pci {at} {vendor:04x}:{device:04x} {kind} left out: no MAC")
                }
            }
        }
    }
}

fn probe(root: &mut PciRoot<PortIoCam>, at: DeviceFunction, kind: NicKind) -> Nic {
    enable_device(root, at);
    let mut nic = Nic {
        kind,
        mac: None,
        link_up: false,
        problem: None,
    };
    match kind {
        NicKind::E1000 => match root.bar_info(at, 0) {
            Ok(Some(BarInfo::Memory { address, size, .. }))
                if address != 0
                    && address.saturating_add(size) <= IDENTITY_MAPPED_END
                    && size >= 0x6000 =>
            {
                let reg = |offset: u64| {
                    // SAFETY: BAR0 of an e1000 is its register file, identity
                    // mapped and at least 0x6000 bytes; reads of RAL0, RAH0
                    // and STATUS have no side effects (82540EM manual 13.4).
                    unsafe { core::ptr::read_volatile((address + offset) as *const u32) }
                };
                let (ral, rah) = (reg(0x5400), reg(0x5404));
                let mac = [
                    ral as u8,
                    (ral >> 8) as u8,
                    (ral >> 16) as u8,
                    (ral >> 24) as u8,
                    rah as u8,
                    (rah >> 8) as u8,
                ];
                nic.mac = Some(MacText(mac));
                nic.link_up = reg(0x0008) & 0x2 != 0; // STATUS.LU
            }
            Ok(Some(BarInfo::Memory { .. })) => {
                nic.problem = Some("BAR0 outside the identity map or too small")
            }
            _ => nic.problem = Some("BAR0 is not a memory BAR"),
        },
        NicKind::VirtioNet => match PciTransport::new::<KernelHal, _>(root, at) {
            Ok(transport) => {
                // virtio-net config (virtio 1.2, 5.1.4): mac[6] then status.
                nic.mac = transport.read_config_space::<[u8; 6]>(0).ok().map(MacText);
                nic.link_up = transport
                    .read_config_space::<u16>(6)
                    .is_ok_and(|s| s & 1 != 0);
            }
            Err(_) => nic.problem = Some("no usable virtio PCI capabilities"),
        },
    }
    nic
}

/// Runs `f` over the functions found at boot.
pub fn with_functions<R>(f: impl FnOnce(&[PciFunction]) -> R) -> R {
    f(&FUNCTIONS.lock())
}
