//! Why an e1000 could not be brought up.
use core::fmt;
use nic::NicError;

/// Why constructing (or resetting) an [`crate::E1000`] failed. The device is
/// left alone; report it and carry on without it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum E1000Error {
    /// BAR0 is missing, an I/O BAR, unassigned or smaller than 128 KiB.
    BadBar,
    /// The PCI function is not an 82540EM (8086:100e).
    NotE1000,
    /// The registers read as all-ones: the device is not decoding its BAR
    /// (memory space disabled) or is gone.
    Absent,
    /// CTRL.RST did not clear within the bounded wait.
    ResetTimeout,
    /// An EEPROM read (EERD) did not complete within the bounded wait.
    EepromTimeout,
    /// Neither receive-address slot 0 nor the EEPROM holds a unicast MAC.
    NoMac,
    /// DMA memory for the rings and buffers could not be allocated.
    NoMemory,
    /// A PHY register access (MDIC) did not complete or reported an error.
    Phy,
}

impl fmt::Display for E1000Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadBar => "BAR0 is not a 128 KiB memory BAR",
            Self::NotE1000 => "not an 82540EM (8086:100e)",
            Self::Absent => "registers read all-ones",
            Self::ResetTimeout => "reset did not complete",
            Self::EepromTimeout => "EEPROM read did not complete",
            Self::NoMac => "no MAC address in RAR0 or EEPROM",
            Self::NoMemory => "out of DMA memory",
            Self::Phy => "PHY access failed",
        })
    }
}

impl From<E1000Error> for NicError {
    fn from(e: E1000Error) -> Self {
        match e {
            E1000Error::NoMemory => NicError::NoMemory,
            E1000Error::Phy => NicError::Rejected,
            _ => NicError::Timeout,
        }
    }
}
