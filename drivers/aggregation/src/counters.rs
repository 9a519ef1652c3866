//! Plain `u64` counters, readable from outside (console, Prometheus exporter).

use crate::decision::DropReason;
use crate::types::MAX_UPLINKS;

/// Drops by reason; index with [`DropCounters::get`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct DropCounters(pub [u64; DropReason::COUNT]);

impl DropCounters {
    pub const ZERO: DropCounters = DropCounters([0; DropReason::COUNT]);

    pub const fn get(&self, r: DropReason) -> u64 {
        self.0[r as usize]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    pub(crate) fn bump(&mut self, r: DropReason) {
        let c = &mut self.0[r as usize];
        *c = c.wrapping_add(1);
    }
}

/// Per uplink.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct UplinkCounters {
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Every frame that arrived here, delivered or dropped (the receive
    /// load the engine steers by counts only delivered ones).
    pub rx_frames: u64,
    pub rx_bytes: u64,
    /// Frames that arrived here and were dropped, by reason.
    pub rx_drops: DropCounters,
    /// MAC register / receive-filter writes asked of the driver (identity
    /// moves in identity mode; two per frame in literal mode, which the
    /// datapath shares between a guest's consecutive frames: its
    /// `literal_mac_writes` counts those it made).
    pub mac_writes: u64,
    /// Identities that moved onto this uplink.
    pub moves_in: u64,
    /// Identities that moved away from this uplink.
    pub moves_out: u64,
    /// Times the link went down.
    pub link_downs: u64,
    /// Identities held now (a gauge).
    pub identities_held: u64,
}

impl UplinkCounters {
    pub const ZERO: UplinkCounters = UplinkCounters {
        tx_frames: 0,
        tx_bytes: 0,
        rx_frames: 0,
        rx_bytes: 0,
        rx_drops: DropCounters::ZERO,
        mac_writes: 0,
        moves_in: 0,
        moves_out: 0,
        link_downs: 0,
        identities_held: 0,
    };
}

/// Per guest.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct GuestCounters {
    pub tx_frames: u64,
    pub tx_bytes: u64,
    pub rx_frames: u64,
    pub rx_bytes: u64,
    /// Frames switched to another local guest or the own stack.
    pub tx_local: u64,
    /// Frames from this guest that were dropped, by reason.
    pub tx_drops: DropCounters,
    /// Frames to this guest that were dropped (e.g. its IP is denied).
    pub rx_drops: DropCounters,
    /// Frames this guest sent through each uplink.
    pub tx_frames_per_uplink: [u64; MAX_UPLINKS],
}

impl GuestCounters {
    pub const ZERO: GuestCounters = GuestCounters {
        tx_frames: 0,
        tx_bytes: 0,
        rx_frames: 0,
        rx_bytes: 0,
        tx_local: 0,
        tx_drops: DropCounters::ZERO,
        rx_drops: DropCounters::ZERO,
        tx_frames_per_uplink: [0; MAX_UPLINKS],
    };
}

impl Default for GuestCounters {
    fn default() -> Self {
        GuestCounters::ZERO
    }
}

/// Per identity. The holder is [`crate::Engine::holder`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct IdentityCounters {
    /// The uplink holding it now (a gauge; also [`crate::Engine::holder`]).
    pub holder: u64,
    /// Times the identity changed holder.
    pub moves: u64,
    pub tx_bytes: u64,
    /// Bytes sent to this identity and delivered (to a guest or the own
    /// stack); dropped frames are not its load.
    pub rx_bytes: u64,
}

impl IdentityCounters {
    pub const ZERO: IdentityCounters = IdentityCounters {
        holder: 0,
        moves: 0,
        tx_bytes: 0,
        rx_bytes: 0,
    };
}

/// Engine-wide counters.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct EngineCounters {
    pub own_tx_frames: u64,
    pub own_rx_frames: u64,
    /// Own-stack transmits that swapped identities (claim step 5).
    pub own_tx_swaps: u64,
    /// Own-stack frames dropped, by reason.
    pub own_tx_drops: DropCounters,
    /// Rebalance evaluations, and those that moved something (\[0034\]).
    pub rebalance_runs: u64,
    pub rebalance_moves: u64,
    /// Identity moves forced by links going down or coming back.
    pub failover_moves: u64,
    /// Identities left on a dead uplink because no live uplink could take
    /// them (pinned, exclusive, or no free filter slot), per failover.
    pub stranded: u64,
    /// Broadcast/multicast frames flooded to the guests.
    pub rx_flooded: u64,
    /// Neighbour solicitations from the outside (to a solicited-node
    /// group) delivered to the one guest owning their target instead.
    pub rx_nd_directed: u64,
    /// MLD reports from guests sent out through the uplink that takes in
    /// group traffic.
    pub mld_out: u64,
}
