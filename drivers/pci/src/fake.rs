//! An in-memory configuration space for host tests of anything that walks PCI.
use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction};

const MAX_FUNCTIONS: usize = 16;

/// Up to 16 functions of 256 config bytes each; absent functions read as
/// all-ones, as on real hardware.
#[derive(Clone, Debug)]
pub struct FakeConfigSpace {
    functions: [(Option<DeviceFunction>, [u32; 64]); MAX_FUNCTIONS],
}

impl FakeConfigSpace {
    pub fn new() -> Self {
        Self {
            functions: [(None, [0; 64]); MAX_FUNCTIONS],
        }
    }

    /// Adds a function with the given IDs and an otherwise zero header.
    /// Panics when full: this is a test fixture.
    pub fn add_function(&mut self, at: DeviceFunction, vendor_id: u16, device_id: u16) {
        let slot = self
            .functions
            .iter_mut()
            .find(|(f, _)| f.is_none())
            .expect("FakeConfigSpace holds 16 functions");
        slot.0 = Some(at);
        slot.1 = [0; 64];
        slot.1[0] = u32::from(vendor_id) | (u32::from(device_id) << 16);
    }

    fn dwords(&self, at: DeviceFunction) -> Option<&[u32; 64]> {
        self.functions
            .iter()
            .find(|(f, _)| *f == Some(at))
            .map(|(_, d)| d)
    }
}

impl Default for FakeConfigSpace {
    fn default() -> Self {
        Self::new()
    }
}

impl ConfigurationAccess for FakeConfigSpace {
    fn read_word(&self, at: DeviceFunction, register_offset: u8) -> u32 {
        self.dwords(at)
            .map_or(u32::MAX, |d| d[usize::from(register_offset / 4)])
    }

    fn write_word(&mut self, at: DeviceFunction, register_offset: u8, data: u32) {
        if let Some((_, d)) = self.functions.iter_mut().find(|(f, _)| *f == Some(at)) {
            d[usize::from(register_offset / 4)] = data;
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        self.clone()
    }
}
