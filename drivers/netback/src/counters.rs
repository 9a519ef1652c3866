//! Per-vif counters: frames and bytes each way, drops by reason, and the
//! fatal errors that disconnected the vif. Counted in one place each, read
//! by the console and metrics.

macro_rules! reasons {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident => $s:literal,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $v,)* }

        impl $name {
            /// Every reason, in counter order.
            pub const ALL: &'static [Self] = &[$(Self::$v,)*];
            pub const COUNT: usize = Self::ALL.len();

            /// A short name for the console and metrics labels.
            pub const fn name(self) -> &'static str {
                match self { $(Self::$v => $s,)* }
            }
        }
    };
}

reasons! {
    /// Why a frame from the guest was dropped (answered `NETIF_RSP_ERROR`).
    TxDrop {
        /// Shorter than an Ethernet header (including zero bytes).
        Runt => "runt",
        /// Longer than the configured maximum frame.
        Oversize => "oversize",
        /// The later slots claim more bytes than the first slot's total.
        SizeMismatch => "size_mismatch",
        /// More slots than the configured maximum, but not absurdly many.
        TooManySlots => "too_many_slots",
        /// A grant copy failed: bad grant ref, not granted to us, or similar.
        BadGrant => "bad_grant",
        /// A GSO extra: segmentation offload is not advertised.
        Gso => "gso",
        /// `NETTXF_csum_blank` on a frame that is not TCP/UDP over IPv4/IPv6.
        Checksum => "checksum",
    }
}

reasons! {
    /// Why a frame for the guest was not delivered.
    RxDrop {
        /// The vif is not connected.
        NotConnected => "not_connected",
        /// The guest has not posted enough receive buffers.
        RingFull => "ring_full",
        /// Shorter than an Ethernet header, longer than the maximum, or
        /// needing several slots from a frontend without `feature-sg`.
        BadLength => "bad_length",
        /// A grant copy into a posted buffer failed.
        BadGrant => "bad_grant",
    }
}

reasons! {
    /// Protocol violations after which the rings cannot be trusted: the vif
    /// is disconnected and its backend state set to Closing.
    Fatal {
        /// `req_prod` beyond the ring or moved backwards.
        RingOverflow => "ring_overflow",
        /// A frame's slots continue past `req_prod`.
        MissingSlots => "missing_slots",
        /// A slot's offset plus size passes the end of its page.
        CrossPage => "cross_page",
        /// Far more slots in one frame than any frontend uses.
        SlotFlood => "slot_flood",
        /// An extra-info slot of type 0 or unknown, or too many of them.
        BadExtra => "bad_extra",
    }
}

/// What one vif has done since aggdom started serving it. TX is guest to
/// aggdom, RX is aggdom to guest (the guest's names, as in netif.h).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VifCounters {
    /// Frames from the guest handed to the datapath.
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Control requests (multicast extras) answered without a frame.
    pub tx_control: u64,
    /// Frames delivered into the guest's buffers.
    pub rx_frames: u64,
    pub rx_bytes: u64,
    /// Successful connections (rings mapped, event channel bound).
    pub connects: u64,
    /// Connections torn down, for any reason.
    pub disconnects: u64,
    /// Connection attempts refused: missing or bad frontend keys, grant
    /// maps or event channel bind failed.
    pub connect_failures: u64,
    /// Notifications sent to the guest.
    pub notifies: u64,
    tx_drops: [u64; TxDrop::COUNT],
    rx_drops: [u64; RxDrop::COUNT],
    fatal: [u64; Fatal::COUNT],
}

impl VifCounters {
    pub fn tx_drops(&self, why: TxDrop) -> u64 {
        self.tx_drops[why as usize]
    }

    pub fn rx_drops(&self, why: RxDrop) -> u64 {
        self.rx_drops[why as usize]
    }

    pub fn fatal(&self, why: Fatal) -> u64 {
        self.fatal[why as usize]
    }

    /// All TX drops, whatever the reason.
    pub fn tx_drops_total(&self) -> u64 {
        self.tx_drops.iter().sum()
    }

    /// All RX drops, whatever the reason.
    pub fn rx_drops_total(&self) -> u64 {
        self.rx_drops.iter().sum()
    }

    pub fn fatal_total(&self) -> u64 {
        self.fatal.iter().sum()
    }

    pub(crate) fn count_tx_drop(&mut self, why: TxDrop) {
        self.tx_drops[why as usize] += 1;
    }

    pub(crate) fn count_rx_drop(&mut self, why: RxDrop) {
        self.rx_drops[why as usize] += 1;
    }

    pub(crate) fn count_fatal(&mut self, why: Fatal) {
        self.fatal[why as usize] += 1;
    }
}
