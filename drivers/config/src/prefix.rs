//! IPv4 prefixes (`10.0.0.0/24`) and the `metrics_allow=` list of them: the
//! clients that may read `GET /metrics`.
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::{IpAddr, Ipv4Addr};

/// An IPv4 network: an address with every bit past `len` zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Prefix {
    network: Ipv4Addr,
    len: u8,
}

impl Ipv4Prefix {
    /// `None` when `len` is over 32 or `network` has bits set past `len`.
    pub fn new(network: Ipv4Addr, len: u8) -> Option<Self> {
        (len <= 32 && u32::from(network) & !mask(len) == 0).then_some(Self { network, len })
    }

    /// Parses `a.b.c.d/len`. The error says what is wrong, for a config
    /// line: a missing `/len`, a length over 32, host bits set (the prefix
    /// the writer probably meant is named).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (ip, len) = s
            .split_once('/')
            .ok_or_else(|| format!("'{s}' needs a /prefix (a.b.c.d/len; /32 for one host)"))?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("'{ip}' is not an IPv4 address"))?;
        let len: u8 = len
            .parse()
            .map_err(|_| format!("'{len}' in '{s}' is not a number"))?;
        if len > 32 {
            return Err(format!("/{len} in '{s}' is more than 32"));
        }
        let network = Ipv4Addr::from(u32::from(ip) & mask(len));
        Self::new(ip, len).ok_or_else(|| {
            format!("'{s}' has host bits set past /{len} (the network is {network}/{len})")
        })
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.len) == u32::from(self.network)
    }
}

/// The top `len` bits set.
fn mask(len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(len.min(32)))
        .unwrap_or(0)
}

impl fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.len)
    }
}

/// Clients allowed to reach a service. Empty allows every client (the
/// service is open, as without `metrics_allow=`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList(Vec<Ipv4Prefix>);

impl AllowList {
    /// Every client.
    pub const fn open() -> Self {
        Self(Vec::new())
    }

    /// Parses `<prefix>,<prefix>,...` (at least one).
    pub fn parse(value: &str) -> Result<Self, String> {
        if value.is_empty() {
            return Err("empty list (leave the key out to allow every client)".into());
        }
        value
            .split(',')
            .map(|p| {
                if p.is_empty() {
                    Err(format!("'' in '{value}' is not a prefix"))
                } else {
                    Ipv4Prefix::parse(p)
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn prefixes(&self) -> &[Ipv4Prefix] {
        &self.0
    }

    /// Whether `client` may connect: any client when the list is empty,
    /// else an IPv4 client inside one of the prefixes.
    pub fn allows(&self, client: IpAddr) -> bool {
        if self.0.is_empty() {
            return true;
        }
        match client {
            IpAddr::V4(ip) => self.0.iter().any(|p| p.contains(ip)),
            IpAddr::V6(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_cover_zero_to_thirty_two_bits() {
        assert_eq!(mask(0), 0);
        assert_eq!(mask(1), 0x8000_0000);
        assert_eq!(mask(24), 0xffff_ff00);
        assert_eq!(mask(32), u32::MAX);
    }

    #[test]
    fn prefixes_contain_exactly_their_addresses() {
        let p = Ipv4Prefix::parse("192.168.4.0/22").unwrap();
        assert!(p.contains(Ipv4Addr::new(192, 168, 4, 0)));
        assert!(p.contains(Ipv4Addr::new(192, 168, 7, 255)));
        assert!(!p.contains(Ipv4Addr::new(192, 168, 8, 0)));
        assert!(!p.contains(Ipv4Addr::new(192, 168, 3, 255)));
        let all = Ipv4Prefix::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(Ipv4Addr::BROADCAST) && all.contains(Ipv4Addr::UNSPECIFIED));
        assert_eq!(Ipv4Prefix::new(Ipv4Addr::new(10, 0, 0, 1), 24), None);
        assert_eq!(Ipv4Prefix::new(Ipv4Addr::new(10, 0, 0, 0), 33), None);
    }

    #[test]
    fn host_bits_name_the_network_meant() {
        let e = Ipv4Prefix::parse("10.1.2.3/16").unwrap_err();
        assert!(e.contains("10.1.0.0/16"), "{e}");
    }
}
