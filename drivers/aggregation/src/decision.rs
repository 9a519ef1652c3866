//! What the engine tells the driver layer to do: plain values, no callbacks.

use crate::types::{GuestId, GuestSet, IdentityId, MacAddr, UplinkId, MAX_IDENTITIES};

/// Why a frame was dropped. Every drop is counted under its reason.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum DropReason {
    /// Shorter than its Ethernet, ARP or IP header.
    Runt = 0,
    /// A header is inconsistent (IP version, IHL, ARP hardware/protocol).
    Malformed,
    /// Not IPv4, IPv6 or ARP (guests send untagged IP only).
    BadEthertype,
    /// A guest frame whose source MAC (or ARP sender MAC) is not the guest's.
    SpoofedMac,
    /// A guest frame whose source IP (or ARP sender IP) is not the guest's.
    SpoofedIp,
    /// The IP is bound to no identity (\[0029\]): it may not use the network.
    Denied,
    /// Every uplink that could carry the frame has its link down.
    NoLiveUplink,
    /// The guest or uplink index names nothing.
    UnknownPort,
    /// Unicast to an identity this uplink does not hold (the switch has not
    /// relearned yet, or flooded an unknown unicast).
    NotHolder,
    /// A broadcast or multicast copy on an uplink other than the one chosen
    /// to receive broadcasts (the switch floods to every uplink), or one
    /// of our own broadcasts flooded back (its source is an identity or a
    /// guest).
    DuplicateBroadcast,
    /// No guest and not the own stack: nobody here has that address.
    UnknownDestination,
    /// A guest frame addressed to the guest itself.
    Hairpin,
    /// A guest frame whose IPv6 source (or, for duplicate address
    /// detection, the address claimed) is not the guest's: not configured,
    /// not in one of its prefixes, not link-local, nor `::` for DAD / MLD.
    SpoofedIp6,
    /// A guest's neighbour advertisement for a target that is not its own
    /// (RFC 4861 7.2.4: an NA is only the target owner's to send).
    NdTarget,
    /// A guest's NDP message with a link-layer address option that names a
    /// MAC other than the guest's (neighbour-cache poisoning).
    NdLladdr,
    /// An NDP message shorter than its fixed part, or with an option of
    /// length zero, past the end, or a link-layer option of the wrong size.
    NdMalformed,
    /// A router advertisement or redirect from a guest (RA guard, RFC 6105):
    /// guests are hosts, the routers are outside.
    RaGuard,
    /// An IPv6 extension header chain that is too long or runs past the
    /// packet, or an NDP message inside a fragment (RFC 6980): NDP behind
    /// headers that cannot be walked is never passed unrewritten.
    Ip6ExtHeader,
    /// A link-local or in-prefix IPv6 address another guest (or the own
    /// stack) holds already.
    Ip6Taken,
    /// The guest holds as many learned IPv6 addresses as `learn_max`
    /// allows (and none of them has been idle long enough to forget).
    Ip6LearnLimit,
    /// A guest's broadcast or multicast frame beyond `bcast_limit_pps` in
    /// the current second.
    BroadcastLimit,
}

impl DropReason {
    /// Number of reasons, for counter arrays.
    pub const COUNT: usize = 21;
    /// Every reason, in counter order.
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::Runt,
        DropReason::Malformed,
        DropReason::BadEthertype,
        DropReason::SpoofedMac,
        DropReason::SpoofedIp,
        DropReason::Denied,
        DropReason::NoLiveUplink,
        DropReason::UnknownPort,
        DropReason::NotHolder,
        DropReason::DuplicateBroadcast,
        DropReason::UnknownDestination,
        DropReason::Hairpin,
        DropReason::SpoofedIp6,
        DropReason::NdTarget,
        DropReason::NdLladdr,
        DropReason::NdMalformed,
        DropReason::RaGuard,
        DropReason::Ip6ExtHeader,
        DropReason::Ip6Taken,
        DropReason::Ip6LearnLimit,
        DropReason::BroadcastLimit,
    ];

    /// A short snake_case name, for consoles and metric labels.
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::Runt => "runt",
            DropReason::Malformed => "malformed",
            DropReason::BadEthertype => "bad_ethertype",
            DropReason::SpoofedMac => "spoofed_mac",
            DropReason::SpoofedIp => "spoofed_ip",
            DropReason::Denied => "denied",
            DropReason::NoLiveUplink => "no_live_uplink",
            DropReason::UnknownPort => "unknown_port",
            DropReason::NotHolder => "not_holder",
            DropReason::DuplicateBroadcast => "duplicate_broadcast",
            DropReason::UnknownDestination => "unknown_destination",
            DropReason::Hairpin => "hairpin",
            DropReason::SpoofedIp6 => "spoofed_ip6",
            DropReason::NdTarget => "nd_target",
            DropReason::NdLladdr => "nd_lladdr",
            DropReason::NdMalformed => "nd_malformed",
            DropReason::RaGuard => "ra_guard",
            DropReason::Ip6ExtHeader => "ip6_ext_header",
            DropReason::Ip6Taken => "ip6_taken",
            DropReason::Ip6LearnLimit => "ip6_learn_limit",
            DropReason::BroadcastLimit => "broadcast_limit",
        }
    }
}

/// How the chosen uplink must present the frame's source (claim steps 8–10).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Steering {
    /// Identity mode: the engine has already rewritten the frame's source MAC
    /// (and ARP sender / NDP link-layer option) to `identity`, which the
    /// uplink holds. Send the frame as it is.
    Rewritten { identity: IdentityId, mac: MacAddr },
    /// Literal mode, claim steps 8–10: write the uplink's MAC register to
    /// `mac` (the guest's), send, wait for the send to complete, then write
    /// `restore` (the identity the uplink holds) back.
    WriteMacThenRestore { mac: MacAddr, restore: MacAddr },
}

/// What to do with a frame a guest sent (claim steps 7–10).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TxDecision {
    /// Send through `uplink` with the given steering. When `flood_local` is
    /// set the frame is broadcast/multicast: also give a copy (as it is now)
    /// to every other guest and to the own stack.
    Send {
        uplink: UplinkId,
        steering: Steering,
        flood_local: bool,
    },
    /// The destination is another guest of this domain: hand it over
    /// without touching an uplink (the bridge's job). The destination MAC has
    /// been rewritten to the guest's if the frame was sent to an identity.
    SwitchLocal { guest: GuestId },
    /// The destination is the domain's own IP stack.
    ToOwnStack,
    /// Drop the frame; it was counted under `DropReason`.
    Drop(DropReason),
}

/// What to do with a frame that arrived on an uplink.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RxDecision {
    /// Deliver to this guest (identity mode: the destination MAC, and ARP
    /// target MAC, have been rewritten to the guest's MAC).
    ToGuest { guest: GuestId },
    /// Deliver to the domain's own IP stack.
    ToOwnStack,
    /// A broadcast or multicast: deliver a copy to each of `guests` and to
    /// the own stack. `guests` are those that may use the network in the
    /// frame's family (an IPv4 bound for IPv4 and ARP, an IPv6 for IPv6): a
    /// denied guest (\[0029\]) hears nothing from the outside.
    Flood { guests: GuestSet },
    /// Drop the frame; it was counted under `DropReason`.
    Drop(DropReason),
}

/// One identity changing holder. The driver reprograms both uplinks' MAC
/// register / receive filters to [`crate::Engine::held`] and sends a
/// learning frame ([`crate::learning_frame`]) from `to` so the switch
/// relearns `mac` at once.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Move {
    pub identity: IdentityId,
    pub mac: MacAddr,
    pub from: UplinkId,
    pub to: UplinkId,
}

/// A short list of moves, returned by value (no allocation).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Moves {
    items: [Move; MAX_IDENTITIES],
    len: u8,
}

impl Moves {
    pub const NONE: Moves = Moves {
        items: [Move {
            identity: IdentityId(0),
            mac: MacAddr([0; 6]),
            from: UplinkId(0),
            to: UplinkId(0),
        }; MAX_IDENTITIES],
        len: 0,
    };

    pub(crate) fn push(&mut self, m: Move) {
        if (self.len as usize) < MAX_IDENTITIES {
            self.items[self.len as usize] = m;
            self.len += 1;
        }
    }

    pub fn as_slice(&self) -> &[Move] {
        &self.items[..self.len as usize]
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> core::slice::Iter<'_, Move> {
        self.as_slice().iter()
    }
}

impl Default for Moves {
    fn default() -> Self {
        Moves::NONE
    }
}

impl core::fmt::Debug for Moves {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// What to do with a frame from the domain's own stack (claim steps 3–6).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OwnTxDecision {
    /// Carry out `moves` first (claim step 5, the MAC swap; empty when the
    /// least-loaded uplink already holds the source MAC, step 4), then send
    /// the frame unchanged through `uplink` (step 6).
    Send { uplink: UplinkId, moves: Moves },
    /// The destination is a local guest (by its MAC, or by an identity
    /// and its IP: the frame's destination is rewritten to the guest's).
    SwitchLocal { guest: GuestId },
    /// Drop the frame; it was counted under `DropReason`.
    Drop(DropReason),
}
