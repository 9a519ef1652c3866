//! What can go wrong when driving a NIC through the traits.
use core::fmt;

/// Why a NIC operation failed. Every variant leaves the NIC usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NicError {
    /// The device lacks the feature (e.g. a virtio-net device without the
    /// control queue cannot change its MAC). Nothing changed; do not retry.
    Unsupported,
    /// More filter entries than [`crate::NicControl::filter_slots`]. Nothing
    /// changed; program fewer or turn promiscuous mode on.
    FilterFull,
    /// A multicast or all-zero address where a unicast one is needed.
    /// Nothing changed.
    InvalidMac,
    /// The transmit ring is full right now. The frame was not taken; retry
    /// after the device has drained (poll again).
    TxFull,
    /// The frame is shorter than [`crate::MIN_FRAME_LEN`] or longer than
    /// [`crate::MAX_FRAME_LEN`]. It was taken, dropped and counted in
    /// `tx_drops`; do not retry.
    FrameLength,
    /// The device did not answer within a bounded wait. The NIC's state is
    /// unknown: [`crate::NicControl::reset`] it or leave it out.
    Timeout,
    /// The device answered that it refused the command (a virtio control
    /// command acked with an error). Nothing changed.
    Rejected,
    /// DMA memory could not be allocated during a reset. The NIC cannot
    /// move frames; leave it out.
    NoMemory,
    /// An offload request that does not fit its frame (not TCP over the IP
    /// version the GSO kind names, a checksum field outside the frame, a
    /// zero or oversized MSS, too many segments). Nothing was queued; drop
    /// the frame, do not retry.
    Offload,
}

impl fmt::Display for NicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unsupported => "not supported by this device",
            Self::FilterFull => "more filter entries than the device has slots",
            Self::InvalidMac => "not a unicast MAC address",
            Self::TxFull => "transmit ring full",
            Self::FrameLength => "frame length out of range",
            Self::Timeout => "device did not answer",
            Self::Rejected => "device refused the command",
            Self::NoMemory => "out of DMA memory",
            Self::Offload => "offload request does not fit the frame",
        })
    }
}
