//! PCI configuration mechanism #1: the CONFIG_ADDRESS (0xCF8) and
//! CONFIG_DATA (0xCFC) I/O ports of every x86 PC chipset.
use core::sync::atomic::{AtomicBool, Ordering};
use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction};
use x86_64::instructions::port::Port;

const CONFIG_ADDRESS: u16 = 0xcf8;
const CONFIG_DATA: u16 = 0xcfc;

/// Configuration access through ports 0xCF8/0xCFC.
///
/// The port pair is one global resource and each access is two steps (the
/// address, then the data): two users interleaving their steps would read
/// or write the wrong register. Every access here is one indivisible pair
/// (interrupts off, and a lock for a second CPU), so any number of handles
/// may exist: `PciRoot` keeps one and clones it for enumeration
/// (`unsafe_clone`), and the kernel reads interrupt and bridge registers
/// through another.
#[derive(Debug)]
pub struct PortIoCam {
    _private: (),
}

/// Held across one address/data pair.
static PAIR: AtomicBool = AtomicBool::new(false);

impl PortIoCam {
    /// # Safety
    /// The caller is on x86 with a PCI host bridge at the standard ports,
    /// and no code but `PortIoCam`'s touches ports 0xCF8/0xCFC.
    pub unsafe fn new() -> Self {
        Self { _private: () }
    }

    /// Runs one address/data pair with nothing able to come between.
    fn pair<R>(f: impl FnOnce() -> R) -> R {
        x86_64::instructions::interrupts::without_interrupts(|| {
            while PAIR
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                core::hint::spin_loop();
            }
            let r = f();
            PAIR.store(false, Ordering::Release);
            r
        })
    }
}

/// The CONFIG_ADDRESS value for one dword of one function's header.
pub(crate) fn config_address(function: DeviceFunction, register_offset: u8) -> u32 {
    (1 << 31)
        | (u32::from(function.bus) << 16)
        | (u32::from(function.device & 0x1f) << 11)
        | (u32::from(function.function & 0x7) << 8)
        | u32::from(register_offset & 0xfc)
}

impl ConfigurationAccess for PortIoCam {
    fn read_word(&self, function: DeviceFunction, register_offset: u8) -> u32 {
        Self::pair(|| {
            // SAFETY: (1) `PortIoCam::new`'s contract: the standard
            // configuration ports exist and only this type uses them; (2)
            // `pair` keeps any other access from coming between the
            // address and the data; both accesses are dword sized.
            unsafe {
                Port::<u32>::new(CONFIG_ADDRESS).write(config_address(function, register_offset));
                Port::<u32>::new(CONFIG_DATA).read()
            }
        })
    }

    fn write_word(&mut self, function: DeviceFunction, register_offset: u8, data: u32) {
        Self::pair(|| {
            // SAFETY: as in `read_word`; the caller of a config write owns
            // the device it configures (it came from enumeration).
            unsafe {
                Port::<u32>::new(CONFIG_ADDRESS).write(config_address(function, register_offset));
                Port::<u32>::new(CONFIG_DATA).write(data);
            }
        })
    }

    unsafe fn unsafe_clone(&self) -> Self {
        // Sound for reads and writes alike: every access is an indivisible
        // pair (see `pair`), whichever handle makes it.
        Self { _private: () }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_address_packs_bus_device_function_and_dword_offset() {
        let f = DeviceFunction {
            bus: 1,
            device: 3,
            function: 2,
        };
        assert_eq!(config_address(f, 0x10), 0x8001_1a10);
        // Offsets are dword-aligned: the low two bits never reach the port.
        assert_eq!(config_address(f, 0x13), 0x8001_1a10);
    }
}
