//! Ethernet MAC addresses.
use core::fmt;
use core::str::FromStr;

/// A 48-bit IEEE 802 MAC address, in wire order.
///
/// Converts from and to `[u8; 6]`, so smoltcp's `EthernetAddress(bytes)`
/// converts with `MacAddr(e.0)` and `EthernetAddress(m.0)`.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: Self = Self([0xff; 6]);
    /// 00:00:00:00:00:00, which no NIC may hold.
    pub const ZERO: Self = Self([0; 6]);

    /// Reads an address from the first six bytes of `bytes`; `None` if
    /// there are fewer.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let b: [u8; 6] = bytes.get(..6)?.try_into().ok()?;
        Some(Self(b))
    }

    /// The destination address of an Ethernet frame; `None` for a frame
    /// shorter than an address.
    pub fn destination_of(frame: &[u8]) -> Option<Self> {
        Self::from_bytes(frame)
    }

    /// The source address of an Ethernet frame; `None` for a frame too short.
    pub fn source_of(frame: &[u8]) -> Option<Self> {
        Self::from_bytes(frame.get(6..)?)
    }

    pub const fn octets(self) -> [u8; 6] {
        self.0
    }

    /// Group bit set: multicast, including broadcast.
    pub const fn is_multicast(self) -> bool {
        self.0[0] & 1 != 0
    }

    pub const fn is_broadcast(self) -> bool {
        let b = self.0;
        b[0] & b[1] & b[2] & b[3] & b[4] & b[5] == 0xff
    }

    pub const fn is_zero(self) -> bool {
        let b = self.0;
        b[0] | b[1] | b[2] | b[3] | b[4] | b[5] == 0
    }

    /// An address a NIC may hold in its MAC register or unicast filter:
    /// neither multicast nor all zeroes.
    pub const fn is_valid_unicast(self) -> bool {
        !self.is_multicast() && !self.is_zero()
    }

    /// Locally administered (bit 1 of the first octet), as opposed to a
    /// vendor-assigned address.
    pub const fn is_local(self) -> bool {
        self.0[0] & 2 != 0
    }

    /// The address as the low 48 bits of a `u64` (one compare instead of
    /// six; the aggregation engine keys its tables so).
    pub const fn to_u64(self) -> u64 {
        let b = self.0;
        ((b[0] as u64) << 40)
            | ((b[1] as u64) << 32)
            | ((b[2] as u64) << 24)
            | ((b[3] as u64) << 16)
            | ((b[4] as u64) << 8)
            | (b[5] as u64)
    }

    /// Inverse of [`MacAddr::to_u64`] (the high 16 bits are ignored).
    pub const fn from_u64(v: u64) -> Self {
        Self([
            (v >> 40) as u8,
            (v >> 32) as u8,
            (v >> 24) as u8,
            (v >> 16) as u8,
            (v >> 8) as u8,
            v as u8,
        ])
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(b: [u8; 6]) -> Self {
        Self(b)
    }
}

impl From<MacAddr> for [u8; 6] {
    fn from(m: MacAddr) -> Self {
        m.0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The text was not six hex octets separated by `:` or `-`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseMacError;

impl fmt::Display for ParseMacError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected a MAC address like 52:54:00:12:34:56")
    }
}

impl FromStr for MacAddr {
    type Err = ParseMacError;

    /// Parses `52:54:00:12:34:56` (or with `-`), one or two hex digits per
    /// octet.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for o in out.iter_mut() {
            let p = parts.next().ok_or(ParseMacError)?;
            // from_str_radix alone would take a sign ("+2").
            if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ParseMacError);
            }
            *o = u8::from_str_radix(p, 16).map_err(|_| ParseMacError)?;
        }
        if parts.next().is_some() {
            return Err(ParseMacError);
        }
        Ok(Self(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        let m: MacAddr = "52:54:00:12:34:5f".parse().unwrap();
        assert_eq!(m, MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x5f]));
        assert_eq!(m.to_string(), "52:54:00:12:34:5f");
        assert_eq!("2-4-0-a-b-c".parse(), Ok(MacAddr([2, 4, 0, 0xa, 0xb, 0xc])));
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in [
            "",
            "52:54:00:12:34",
            "52:54:00:12:34:56:78",
            "52:54:00:12:34:5g",
            "52:54:00:12::56",
            "152:54:00:12:34:56",
            "+2:54:00:12:34:56",
        ] {
            assert_eq!(bad.parse::<MacAddr>(), Err(ParseMacError), "{bad:?}");
        }
    }

    #[test]
    fn classifies_addresses() {
        let table = [
            (MacAddr::BROADCAST, true, true, false),
            (MacAddr([0x01, 0, 0x5e, 0, 0, 1]), true, false, false),
            (MacAddr([0x52, 0x54, 0, 0, 0, 1]), false, false, true),
            (MacAddr::ZERO, false, false, false),
        ];
        for (m, multicast, broadcast, valid_unicast) in table {
            assert_eq!(m.is_multicast(), multicast, "{m}");
            assert_eq!(m.is_broadcast(), broadcast, "{m}");
            assert_eq!(m.is_valid_unicast(), valid_unicast, "{m}");
        }
        assert!(MacAddr([0x52, 0x54, 0, 0, 0, 1]).is_local());
        assert!(!MacAddr([0x00, 0x1b, 0x21, 0, 0, 1]).is_local());
    }

    #[test]
    fn reads_addresses_out_of_frames() {
        let frame = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00];
        assert_eq!(
            MacAddr::destination_of(&frame),
            Some(MacAddr([1, 2, 3, 4, 5, 6]))
        );
        assert_eq!(
            MacAddr::source_of(&frame),
            Some(MacAddr([7, 8, 9, 10, 11, 12]))
        );
        assert_eq!(MacAddr::source_of(&frame[..11]), None);
        assert_eq!(MacAddr::destination_of(&frame[..5]), None);
    }
}
