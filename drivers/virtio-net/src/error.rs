//! Why a virtio-net device could not be brought up.
use core::fmt;
use nic::NicError;

/// Why constructing (or resetting) a [`crate::VirtioNetNic`] failed. The
/// device is left reset or marked FAILED; report it and carry on without it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VirtioNetError {
    /// `PciTransport::new` refused the function: not virtio, no modern
    /// (virtio 1.0) capabilities, or a BAR unassigned.
    Transport,
    /// A virtio device, but not a network device.
    NotNetwork,
    /// The device status did not read back as reset within the bounded wait.
    ResetTimeout,
    /// The device lacks features the driver cannot do without (the bits).
    MissingFeatures(u64),
    /// The device cleared FEATURES_OK: it refused the feature set.
    FeaturesRejected,
    /// A virtqueue could not be set up (the device's queue is smaller than
    /// the driver's, or already in use).
    Queue,
    /// DMA memory for queues or buffers could not be allocated.
    NoMemory,
    /// The MAC could not be read from config space.
    ConfigSpace,
    /// The MAC in config space is multicast or all zeros: no usable
    /// factory address (an e1000 in that state is left out likewise).
    NoMac,
    /// A control command at bring-up (promiscuous off, empty MAC table)
    /// failed.
    Control(NicError),
}

impl fmt::Display for VirtioNetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transport => f.write_str("no usable virtio PCI transport"),
            Self::NotNetwork => f.write_str("not a network device"),
            Self::ResetTimeout => f.write_str("device reset did not complete"),
            Self::MissingFeatures(bits) => write!(f, "device lacks features {bits:#x}"),
            Self::FeaturesRejected => f.write_str("device refused the features"),
            Self::Queue => f.write_str("virtqueue set-up failed"),
            Self::NoMemory => f.write_str("out of DMA memory"),
            Self::ConfigSpace => f.write_str("config space unreadable"),
            Self::NoMac => f.write_str("no unicast MAC address in config space"),
            Self::Control(e) => write!(f, "control command failed: {e}"),
        }
    }
}

impl From<VirtioNetError> for NicError {
    fn from(e: VirtioNetError) -> Self {
        match e {
            VirtioNetError::NoMemory => NicError::NoMemory,
            VirtioNetError::Control(e) => e,
            VirtioNetError::MissingFeatures(_) => NicError::Unsupported,
            VirtioNetError::NoMac => NicError::InvalidMac,
            _ => NicError::Timeout,
        }
    }
}
