//! The receive filter every driver implements, as data: drivers keep their
//! programmed state in one, and [`RxFilter::accepts`] is the contract.
use crate::{MacAddr, NicError};

/// The receive-filter state of one NIC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RxFilter {
    /// The primary MAC (the MAC register).
    pub mac: MacAddr,
    entries: [MacAddr; RxFilter::MAX_ENTRIES],
    len: usize,
    /// Accept every frame.
    pub promiscuous: bool,
    /// Accept every multicast frame.
    pub all_multicast: bool,
}

impl RxFilter {
    /// The most extra unicast entries any driver offers (virtio-net's MAC
    /// table in QEMU).
    pub const MAX_ENTRIES: usize = 64;

    /// Only `mac` and broadcast; both switches off.
    pub fn new(mac: MacAddr) -> Self {
        Self {
            mac,
            entries: [MacAddr::ZERO; Self::MAX_ENTRIES],
            len: 0,
            promiscuous: false,
            all_multicast: false,
        }
    }

    /// The extra unicast entries, in the order they were set.
    pub fn entries(&self) -> &[MacAddr] {
        &self.entries[..self.len]
    }

    /// Checks `macs` against `slots` and the unicast rule without changing
    /// anything; drivers call it before touching the device.
    pub fn check_entries(macs: &[MacAddr], slots: usize) -> Result<(), NicError> {
        if macs.len() > slots.min(Self::MAX_ENTRIES) {
            return Err(NicError::FilterFull);
        }
        if macs.iter().any(|m| !m.is_valid_unicast()) {
            return Err(NicError::InvalidMac);
        }
        Ok(())
    }

    /// Replaces the extra entries after [`RxFilter::check_entries`].
    pub fn set_entries(&mut self, macs: &[MacAddr], slots: usize) -> Result<(), NicError> {
        Self::check_entries(macs, slots)?;
        self.entries[..macs.len()].copy_from_slice(macs);
        self.len = macs.len();
        Ok(())
    }

    /// Whether a frame to `dst` passes this filter.
    pub fn accepts(&self, dst: MacAddr) -> bool {
        if self.promiscuous || dst.is_broadcast() {
            return true;
        }
        if dst.is_multicast() {
            return self.all_multicast;
        }
        dst == self.mac || self.entries().contains(&dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 1]);
    const EXTRA: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 2]);
    const OTHER: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 3]);
    const MCAST: MacAddr = MacAddr([0x01, 0x00, 0x5e, 0, 0, 1]);

    #[test]
    fn acceptance_table() {
        // (promiscuous, all_multicast, destination, accepted)
        let table = [
            (false, false, OWN, true),
            (false, false, EXTRA, true),
            (false, false, OTHER, false),
            (false, false, MacAddr::BROADCAST, true),
            (false, false, MCAST, false),
            (false, true, MCAST, true),
            (false, true, OTHER, false),
            (true, false, OTHER, true),
            (true, false, MCAST, true),
        ];
        for (promiscuous, all_multicast, dst, want) in table {
            let mut f = RxFilter::new(OWN);
            f.set_entries(&[EXTRA], 15).unwrap();
            f.promiscuous = promiscuous;
            f.all_multicast = all_multicast;
            assert_eq!(f.accepts(dst), want, "{promiscuous} {all_multicast} {dst}");
        }
    }

    #[test]
    fn entries_are_checked_before_anything_changes() {
        let mut f = RxFilter::new(OWN);
        f.set_entries(&[EXTRA], 1).unwrap();
        assert_eq!(f.set_entries(&[EXTRA, OTHER], 1), Err(NicError::FilterFull));
        assert_eq!(f.set_entries(&[MCAST], 4), Err(NicError::InvalidMac));
        assert_eq!(
            f.set_entries(&[MacAddr::ZERO], 4),
            Err(NicError::InvalidMac)
        );
        assert_eq!(f.entries(), &[EXTRA]);
        let many = [EXTRA; RxFilter::MAX_ENTRIES + 1];
        assert_eq!(f.set_entries(&many, usize::MAX), Err(NicError::FilterFull));
        f.set_entries(&[], 1).unwrap();
        assert!(f.entries().is_empty());
        assert!(!f.accepts(EXTRA));
    }
}
