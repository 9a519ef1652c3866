//! Which PCI functions are NICs that aggdom has a driver for.
use core::fmt;
use virtio_drivers::transport::pci::bus::{
    Command, ConfigurationAccess, DeviceFunction, DeviceFunctionInfo, PciRoot,
};

/// A NIC model aggdom drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NicKind {
    /// virtio-net, transitional (1af4:1000) or modern-only (1af4:1041).
    VirtioNet,
    /// Intel 82540EM, the e1000 QEMU and Xen's device model emulate (8086:100e).
    E1000,
}

impl NicKind {
    /// Recognises a function by vendor and device ID; `None` for anything else.
    pub fn from_ids(vendor_id: u16, device_id: u16) -> Option<Self> {
        match (vendor_id, device_id) {
            (0x1af4, 0x1000) | (0x1af4, 0x1041) => Some(Self::VirtioNet),
            (0x8086, 0x100e) => Some(Self::E1000),
            _ => None,
        }
    }

    pub fn from_info(info: &DeviceFunctionInfo) -> Option<Self> {
        Self::from_ids(info.vendor_id, info.device_id)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::VirtioNet => "virtio-net",
            Self::E1000 => "e1000",
        }
    }
}

impl fmt::Display for NicKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Turns on I/O and memory decoding and bus mastering (DMA) for a function.
///
/// Firmware assigns BARs but leaves bus mastering off; a NIC cannot reach its
/// descriptor rings without it.
pub fn enable_device<C: ConfigurationAccess>(root: &mut PciRoot<C>, function: DeviceFunction) {
    let (_, command) = root.get_status_command(function);
    root.set_command(
        function,
        command | Command::IO_SPACE | Command::MEMORY_SPACE | Command::BUS_MASTER,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FakeConfigSpace;

    #[test]
    fn recognises_exactly_the_supported_ids() {
        let table = [
            ((0x1af4, 0x1000), Some(NicKind::VirtioNet)),
            ((0x1af4, 0x1041), Some(NicKind::VirtioNet)),
            ((0x1af4, 0x1001), None), // virtio-blk
            ((0x8086, 0x100e), Some(NicKind::E1000)),
            ((0x8086, 0x10d3), None), // e1000e: not driven
            ((0x8086, 0x1237), None), // i440FX host bridge
        ];
        for ((vendor, device), want) in table {
            assert_eq!(
                NicKind::from_ids(vendor, device),
                want,
                "{vendor:04x}:{device:04x}"
            );
        }
    }

    #[test]
    fn enumeration_finds_nics_and_enable_sets_decode_and_bus_master() {
        let mut cam = FakeConfigSpace::new();
        let nic = DeviceFunction {
            bus: 0,
            device: 3,
            function: 0,
        };
        cam.add_function(
            DeviceFunction {
                bus: 0,
                device: 0,
                function: 0,
            },
            0x8086,
            0x1237,
        );
        cam.add_function(nic, 0x8086, 0x100e);
        let mut root = PciRoot::new(cam);
        let nics: Vec<_> = root
            .enumerate_bus(0)
            .filter_map(|(f, info)| NicKind::from_info(&info).map(|k| (f, k)))
            .collect();
        assert_eq!(nics, vec![(nic, NicKind::E1000)]);

        enable_device(&mut root, nic);
        let (_, command) = root.get_status_command(nic);
        assert!(command.contains(Command::IO_SPACE | Command::MEMORY_SPACE | Command::BUS_MASTER));
    }
}
