//! PCI for aggdom: configuration access through port I/O, and which devices
//! are NICs aggdom drives.
//!
//! Enumeration and BAR decoding come from `virtio_drivers`' `PciRoot`; this
//! crate adds what it lacks on x86 without ECAM (the CF8/CFC port pair), the
//! NIC recognition table, and a fake configuration space for host tests.
#![cfg_attr(not(test), no_std)]

mod fake;
mod nic_kind;
mod port_io;

pub use fake::FakeConfigSpace;
pub use nic_kind::{enable_device, NicKind};
pub use port_io::PortIoCam;
pub use virtio_drivers::transport::pci::bus::{
    BarInfo, Command, ConfigurationAccess, DeviceFunction, DeviceFunctionInfo, PciRoot,
};
