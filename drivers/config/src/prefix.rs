//! IP prefixes (`10.0.0.0/24`, `fd00::/64`) and the `metrics_allow=` list
//! of them: the clients that may read `GET /metrics`.
use aggregation::IpNet;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::IpAddr;

/// An IPv4 or IPv6 network: an address with every bit past `len` zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpPrefix(IpNet);

impl IpPrefix {
    /// `None` when `len` is longer than the family allows or `network`
    /// has bits set past `len`.
    pub fn new(network: IpAddr, len: u8) -> Option<Self> {
        IpNet::new(network, len).map(Self)
    }

    /// Parses `addr/len`. The error says what is wrong, for a config line:
    /// a missing `/len`, a length over 32 (128), host bits set (the prefix
    /// the writer probably meant is named).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (ip, len) = s.split_once('/').ok_or_else(|| {
            format!("'{s}' needs a /prefix (a.b.c.d/len or x::/len; /32 or /128 for one host)")
        })?;
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| format!("'{ip}' is not an IP address"))?;
        let len: u8 = len
            .parse()
            .map_err(|_| format!("'{len}' in '{s}' is not a number"))?;
        let max = IpNet::host(ip).prefix_len();
        if len > max {
            return Err(format!("/{len} in '{s}' is more than {max}"));
        }
        Self::new(ip, len).ok_or_else(|| {
            let network = match ip {
                IpAddr::V4(a) => IpAddr::V4((u32::from(a) & mask(len)).into()),
                IpAddr::V6(a) => {
                    let m = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                    IpAddr::V6((u128::from(a) & m).into())
                }
            };
            format!("'{s}' has host bits set past /{len} (the network is {network}/{len})")
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(ip)
    }
}

/// The top `len` bits set.
fn mask(len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(len.min(32)))
        .unwrap_or(0)
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0.addr(), self.0.prefix_len())
    }
}

/// Clients allowed to reach a service. Empty allows every client (the
/// service is open, as without `metrics_allow=`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList(Vec<IpPrefix>);

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
                    IpPrefix::parse(p)
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn prefixes(&self) -> &[IpPrefix] {
        &self.0
    }

    /// Whether `client` may connect: any client when the list is empty,
    /// else a client inside one of the prefixes (of its own family: an
    /// IPv4-mapped IPv6 address matches no IPv4 prefix).
    pub fn allows(&self, client: IpAddr) -> bool {
        self.0.is_empty() || self.0.iter().any(|p| p.contains(client))
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

    use core::net::{Ipv4Addr, Ipv6Addr};

    fn v4(a: Ipv4Addr) -> IpAddr {
        IpAddr::V4(a)
    }

    #[test]
    fn prefixes_contain_exactly_their_addresses() {
        let p = IpPrefix::parse("192.168.4.0/22").unwrap();
        assert!(p.contains(v4(Ipv4Addr::new(192, 168, 4, 0))));
        assert!(p.contains(v4(Ipv4Addr::new(192, 168, 7, 255))));
        assert!(!p.contains(v4(Ipv4Addr::new(192, 168, 8, 0))));
        assert!(!p.contains(v4(Ipv4Addr::new(192, 168, 3, 255))));
        let all = IpPrefix::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(v4(Ipv4Addr::BROADCAST)) && all.contains(v4(Ipv4Addr::UNSPECIFIED)));
        assert!(!all.contains(IpAddr::V6(Ipv6Addr::UNSPECIFIED)));
        assert_eq!(IpPrefix::new(v4(Ipv4Addr::new(10, 0, 0, 1)), 24), None);
        assert_eq!(IpPrefix::new(v4(Ipv4Addr::new(10, 0, 0, 0)), 33), None);
        let p6 = IpPrefix::parse("fd00:1::/32").unwrap();
        assert!(p6.contains("fd00:1:ffff::9".parse().unwrap()));
        assert!(!p6.contains("fd00:2::9".parse().unwrap()));
        assert_eq!(format!("{p6}"), "fd00:1::/32");
    }

    #[test]
    fn host_bits_name_the_network_meant() {
        let e = IpPrefix::parse("10.1.2.3/16").unwrap_err();
        assert!(e.contains("10.1.0.0/16"), "{e}");
        let e = IpPrefix::parse("fd00:1:2::3/48").unwrap_err();
        assert!(e.contains("fd00:1:2::/48"), "{e}");
        let e = IpPrefix::parse("fd00::/129").unwrap_err();
        assert!(e.contains("more than 128"), "{e}");
    }
}
