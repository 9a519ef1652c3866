//! The one error type of the engine's control calls (setup and run-time changes).

/// Why a control call (adding an uplink or guest, changing a binding, pinning
/// …) was refused. Nothing changed when one is returned.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Error {
    /// [`crate::MAX_UPLINKS`] uplinks exist already; the NIC cannot join.
    TooManyUplinks,
    /// [`crate::MAX_GUESTS`] guests exist already; detach one first.
    TooManyGuests,
    /// More than [`crate::MAX_IPS_PER_GUEST`] (or [`crate::MAX_OWN_IPS`]) IPs given.
    TooManyIps,
    /// The MAC is all-zero or multicast; give a unicast address.
    InvalidMac,
    /// The IP is unspecified, multicast or broadcast; give a unicast address.
    InvalidIp,
    /// The MAC is already a guest's or an identity; addresses must be unique.
    DuplicateMac,
    /// The IP already belongs to a guest or to the own stack.
    DuplicateIp,
    /// No guest or own-stack IP is this address.
    UnknownIp,
    /// No such guest (never added, or removed).
    UnknownGuest,
    /// No such uplink.
    UnknownUplink,
    /// No such identity.
    UnknownIdentity,
    /// The identity is pinned to its uplink (\[0051\]); unpin it first.
    Pinned,
    /// The uplink is exclusive (\[0051\]); it never takes or gives identities.
    Exclusive,
    /// The target uplink has no free receive-filter slot.
    NoFilterSlot,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self, f)
    }
}
