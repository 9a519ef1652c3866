//! Netback's policy knobs, fixed at start.

/// Limits netback applies to every vif.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The longest frame accepted from or delivered to a guest, Ethernet
    /// header included, FCS excluded. Also sets the `mtu` advertised to
    /// frontends (this minus 18: header and one VLAN tag). Frames longer
    /// than a page need `feature-sg` on RX. At most 65535.
    pub max_frame_len: usize,
    /// Slots (data requests) per guest frame accepted; frames with more are
    /// dropped, frames with far more (over [`FATAL_TX_SLOTS`]) disconnect.
    /// `XEN_NETIF_NR_SLOTS_MIN` (18) is what every backend must take.
    pub max_tx_slots: usize,
    /// Frames [`crate::Vif::poll_tx`] takes per call at most.
    pub tx_budget: usize,
    /// Offer TCP segmentation offload (`feature-gso-tcpv4`/`-tcpv6`):
    /// guests may send frames up to 64 KiB with a GSO extra, which
    /// netback segments (or hands to a consumer that can), and receive
    /// large frames if they offer GSO themselves. Costs a 64 KiB buffer
    /// per vif.
    pub gso: bool,
    /// Queues a frontend may use (`multi-queue-max-queues`), 1..=
    /// [`MAX_QUEUES`].
    pub max_queues: usize,
    /// Offer a TX and an RX event channel per queue
    /// (`feature-split-event-channels`).
    pub split_event_channels: bool,
}

/// The most queues a vif may have.
pub const MAX_QUEUES: usize = 8;

/// More data slots than this in one frame is a protocol violation (Linux
/// netback's `fatal_skb_slots` default is 20).
pub const FATAL_TX_SLOTS: usize = 20;

impl Config {
    pub const DEFAULT: Self = Self {
        max_frame_len: nic::MAX_FRAME_LEN,
        max_tx_slots: 18,
        tx_budget: 64,
        gso: false,
        max_queues: 1,
        split_event_channels: false,
    };

    /// Everything offered: GSO both ways, 4 queues, split event channels.
    pub const ALL_FEATURES: Self = Self {
        gso: true,
        max_queues: 4,
        split_event_channels: true,
        ..Self::DEFAULT
    };

    /// The limits actually used: `max_frame_len` within 14..=65535,
    /// `max_tx_slots` within 1..=FATAL_TX_SLOTS, a budget of at least 1,
    /// 1..=MAX_QUEUES queues.
    pub fn clamped(self) -> Self {
        Self {
            max_queues: self.max_queues.clamp(1, MAX_QUEUES),
            gso: self.gso,
            split_event_channels: self.split_event_channels,
            max_frame_len: self
                .max_frame_len
                .clamp(crate::wire::ETH_HLEN, crate::wire::XEN_NETIF_MAX_TX_SIZE),
            max_tx_slots: self.max_tx_slots.clamp(1, FATAL_TX_SLOTS),
            tx_budget: self.tx_budget.max(1),
        }
    }

    /// The MTU advertised to frontends.
    pub fn mtu(&self) -> usize {
        self.max_frame_len.saturating_sub(18).max(68)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::DEFAULT
    }
}
