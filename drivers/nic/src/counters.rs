//! Per-NIC counters, cumulative since the driver was constructed.
use core::ops::AddAssign;

/// What one NIC has done, since its driver was constructed (a reset keeps
/// them). Frames and bytes count whole Ethernet frames without FCS.
///
/// A counter a device cannot provide stays 0 (virtio-net has no hardware
/// statistics, so its `rx_missed`, `dev_rx_frames` and `dev_tx_frames` do).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames delivered to the caller of `receive`.
    pub rx_frames: u64,
    /// Bytes of those frames.
    pub rx_bytes: u64,
    /// Frames the device reported sent (completed transmit descriptors).
    /// A super-frame the device segmented counts as its segments.
    pub tx_frames: u64,
    /// Bytes of those frames (each segment's headers included).
    pub tx_bytes: u64,
    /// Frames the driver received and discarded: runt, oversized, split over
    /// several buffers, or with a device-reported error.
    pub rx_drops: u64,
    /// Frames the device dropped because the driver had given it no free
    /// receive buffer (e1000 MPC): the caller polls too rarely.
    pub rx_missed: u64,
    /// Receive errors the device reported (e1000: CRC, alignment, symbol,
    /// RX-error, undersize and oversize statistics).
    pub rx_errors: u64,
    /// Frames handed to `transmit`/`queue_tx` that were refused for their
    /// length; they were never sent.
    pub tx_drops: u64,
    /// Transmit failures the device reported (e1000: excessive and late
    /// collisions).
    pub tx_errors: u64,
    /// Writes of the primary MAC register (`set_mac`), the price of literal
    /// mode.
    pub mac_writes: u64,
    /// Receive-filter programming: `set_filter`, promiscuous and
    /// all-multicast changes.
    pub filter_writes: u64,
    /// Link transitions observed by `link_up`.
    pub link_changes: u64,
    /// Good frames received, by the device's own count (e1000 GPRC).
    pub dev_rx_frames: u64,
    /// Good frames sent, by the device's own count (e1000 GPTC).
    pub dev_tx_frames: u64,
}

impl AddAssign for Counters {
    /// Field-wise sum, for totals over several NICs.
    fn add_assign(&mut self, o: Self) {
        self.rx_frames += o.rx_frames;
        self.rx_bytes += o.rx_bytes;
        self.tx_frames += o.tx_frames;
        self.tx_bytes += o.tx_bytes;
        self.rx_drops += o.rx_drops;
        self.rx_missed += o.rx_missed;
        self.rx_errors += o.rx_errors;
        self.tx_drops += o.tx_drops;
        self.tx_errors += o.tx_errors;
        self.mac_writes += o.mac_writes;
        self.filter_writes += o.filter_writes;
        self.link_changes += o.link_changes;
        self.dev_rx_frames += o.dev_rx_frames;
        self.dev_tx_frames += o.dev_tx_frames;
    }
}
