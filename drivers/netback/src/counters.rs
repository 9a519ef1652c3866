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
        /// A GSO extra while segmentation offload is not offered.
        Gso => "gso",
        /// A GSO frame that is not TCP over the IP version its GSO type
        /// names (UDP, ARP, an IPv4 fragment, headers past the end).
        GsoNotTcp => "gso_not_tcp",
        /// A GSO size whose segments would exceed the largest frame.
        GsoSize => "gso_size",
        /// A GSO frame that would become more than
        /// [`crate::segment::MAX_SEGMENTS`] segments.
        GsoSegments => "gso_segments",
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
        /// Offload metadata that does not fit the frame (a GSO frame that
        /// cannot be segmented, a partial checksum that cannot be
        /// completed).
        Offload => "offload",
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
        /// A GSO extra of size 0 or of an unknown type (Linux's
        /// `xenvif_set_skb_gso` treats both as fatal too).
        BadGso => "bad_gso",
    }
}

/// What one vif has done since aggdom started serving it. TX is guest to
/// aggdom, RX is aggdom to guest (the guest's names, as in netif.h).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VifCounters {
    /// Frames from the guest accepted (a GSO frame counts once).
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Of those, GSO frames (extra info with a GSO type).
    pub tx_gso: u64,
    /// Segments made in software from guest GSO frames.
    pub tx_segments: u64,
    /// Times a guest frame waited on the ring for `rate` credit.
    pub tx_rate_limited: u64,
    /// `rate` values that did not parse (the vif is then unlimited).
    pub rate_errors: u64,
    /// Control requests (multicast extras) answered without a frame.
    pub tx_control: u64,
    /// Frames delivered into the guest's buffers.
    pub rx_frames: u64,
    pub rx_bytes: u64,
    /// Of those, delivered as GSO frames (with a GSO extra).
    pub rx_gso: u64,
    /// Frames segmented in software because the guest takes no GSO.
    pub rx_segmented: u64,
    /// TCP segments pushed that joined the one before them in a
    /// super-frame for a guest that takes GSO ([`crate::RxBatch::push`]),
    /// so are not in `rx_frames` themselves.
    pub rx_coalesced: u64,
    /// Grant-copy calls that delivered frames to the guest: one per
    /// [`crate::RxBatch`] unless it outgrew its stage, so `rx_frames`
    /// over this is the frames each hypercall carried.
    pub rx_batches: u64,
    /// Successful connections (rings mapped, event channel bound).
    pub connects: u64,
    /// Connections torn down, for any reason.
    pub disconnects: u64,
    /// Connection attempts refused: missing or bad frontend keys, grant
    /// maps or event channel bind failed.
    pub connect_failures: u64,
    /// Notifications sent to the guest.
    pub notifies: u64,
    /// Times the vif was refused (the datapath would not take it): it
    /// went to Closing with an `error` node.
    pub refusals: u64,
    /// Xenstore requests of this vif that failed or could not be queued.
    pub xenstore_errors: u64,
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

    /// Calls `f(name, reason, value)` for every counter: plain counters
    /// with an empty reason, then `tx_drops`, `rx_drops` and `fatal` once
    /// per reason (e.g. `("tx_drops", "bad_grant", 3)`). For the console
    /// and Prometheus text, so neither needs to know the fields.
    pub fn visit(&self, mut f: impl FnMut(&'static str, &'static str, u64)) {
        for (name, v) in [
            ("tx_frames", self.tx_frames),
            ("tx_bytes", self.tx_bytes),
            ("tx_gso", self.tx_gso),
            ("tx_segments", self.tx_segments),
            ("tx_rate_limited", self.tx_rate_limited),
            ("rate_errors", self.rate_errors),
            ("tx_control", self.tx_control),
            ("rx_frames", self.rx_frames),
            ("rx_bytes", self.rx_bytes),
            ("rx_gso", self.rx_gso),
            ("rx_segmented", self.rx_segmented),
            ("rx_coalesced", self.rx_coalesced),
            ("rx_batches", self.rx_batches),
            ("connects", self.connects),
            ("disconnects", self.disconnects),
            ("connect_failures", self.connect_failures),
            ("notifies", self.notifies),
            ("refusals", self.refusals),
            ("xenstore_errors", self.xenstore_errors),
        ] {
            f(name, "", v);
        }
        for r in TxDrop::ALL {
            f("tx_drops", r.name(), self.tx_drops(*r));
        }
        for r in RxDrop::ALL {
            f("rx_drops", r.name(), self.rx_drops(*r));
        }
        for r in Fatal::ALL {
            f("fatal", r.name(), self.fatal(*r));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visit_names_every_counter_once() {
        let mut c = VifCounters {
            tx_frames: 2,
            ..VifCounters::default()
        };
        c.count_tx_drop(TxDrop::BadGrant);
        c.count_fatal(Fatal::CrossPage);
        let mut seen = alloc::vec::Vec::new();
        c.visit(|name, reason, v| seen.push((name, reason, v)));
        assert_eq!(
            seen.len(),
            19 + TxDrop::COUNT + RxDrop::COUNT + Fatal::COUNT
        );
        assert!(seen.contains(&("tx_frames", "", 2)));
        assert!(seen.contains(&("tx_drops", "bad_grant", 1)));
        assert!(seen.contains(&("fatal", "cross_page", 1)));
        let mut keys: alloc::vec::Vec<_> = seen.iter().map(|(n, r, _)| (*n, *r)).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), seen.len());
    }
}
