//! Which frames a capture keeps: by MAC (source or destination), by IP
//! (source or destination, IPv4, IPv6 or ARP) and by ethertype, all of
//! the given ones at once. One 802.1Q tag is looked through.
use core::fmt;
use core::net::IpAddr;
use nic::MacAddr;

/// Every condition set must hold; none set keeps every frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub mac: Option<MacAddr>,
    pub ip: Option<IpAddr>,
    pub ethertype: Option<u16>,
}

/// A filter word that could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterError {
    /// Not `mac=`, `ip=` or `ethertype=`.
    UnknownKey,
    Mac,
    Ip,
    Ethertype,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnknownKey => "a filter is mac=<mac>, ip=<ip> or ethertype=<type>",
            Self::Mac => "mac= takes a MAC address",
            Self::Ip => "ip= takes an IPv4 or IPv6 address",
            Self::Ethertype => "ethertype= takes arp, ipv4, ipv6 or a number (0x88b5)",
        })
    }
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;

impl Filter {
    /// Adds the condition `key=value` (one filter word).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), FilterError> {
        match key {
            "mac" => self.mac = Some(value.parse().map_err(|_| FilterError::Mac)?),
            "ip" => self.ip = Some(value.parse().map_err(|_| FilterError::Ip)?),
            "ethertype" => self.ethertype = Some(parse_ethertype(value)?),
            _ => return Err(FilterError::UnknownKey),
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Whether `frame` passes. Frames too short for a condition fail it.
    pub fn matches(&self, frame: &[u8]) -> bool {
        if let Some(mac) = self.mac {
            let hit = MacAddr::destination_of(frame) == Some(mac)
                || MacAddr::source_of(frame) == Some(mac);
            if !hit {
                return false;
            }
        }
        if self.ethertype.is_none() && self.ip.is_none() {
            return true;
        }
        let Some((ethertype, l3)) = l3(frame) else {
            return false;
        };
        if self.ethertype.is_some_and(|t| t != ethertype) {
            return false;
        }
        match self.ip {
            None => true,
            Some(ip) => ip_matches(ethertype, l3, ip),
        }
    }

    /// The filter as the words that set it (`mac=... ip=...`).
    pub fn words(&self) -> alloc::string::String {
        use alloc::format;
        let mut w = alloc::vec::Vec::new();
        if let Some(m) = self.mac {
            w.push(format!("mac={m}"));
        }
        if let Some(ip) = self.ip {
            w.push(format!("ip={ip}"));
        }
        if let Some(t) = self.ethertype {
            w.push(format!("ethertype={t:#06x}"));
        }
        w.join(" ")
    }
}

fn parse_ethertype(s: &str) -> Result<u16, FilterError> {
    match s {
        "arp" => Ok(ETHERTYPE_ARP),
        "ipv4" | "ip" => Ok(ETHERTYPE_IPV4),
        "ipv6" => Ok(ETHERTYPE_IPV6),
        _ => match s.strip_prefix("0x") {
            Some(hex) => u16::from_str_radix(hex, 16),
            None => s.parse(),
        }
        .map_err(|_| FilterError::Ethertype),
    }
}

/// The ethertype and the bytes after it, through one VLAN tag.
fn l3(frame: &[u8]) -> Option<(u16, &[u8])> {
    let ty = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    if ty == ETHERTYPE_VLAN {
        let inner = u16::from_be_bytes([*frame.get(16)?, *frame.get(17)?]);
        return Some((inner, frame.get(18..)?));
    }
    Some((ty, frame.get(14..)?))
}

fn ip_matches(ethertype: u16, l3: &[u8], ip: IpAddr) -> bool {
    let at = |a: usize, b: usize| l3.get(a..b);
    match (ethertype, ip) {
        (ETHERTYPE_IPV4, IpAddr::V4(v4)) => {
            let o = v4.octets();
            at(12, 16) == Some(&o[..]) || at(16, 20) == Some(&o[..])
        }
        // ARP for IPv4 over Ethernet: sender and target protocol addresses.
        (ETHERTYPE_ARP, IpAddr::V4(v4)) => {
            let o = v4.octets();
            at(14, 18) == Some(&o[..]) || at(24, 28) == Some(&o[..])
        }
        (ETHERTYPE_IPV6, IpAddr::V6(v6)) => {
            let o = v6.octets();
            at(8, 24) == Some(&o[..]) || at(24, 40) == Some(&o[..])
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    fn v4(src: [u8; 4], dst: [u8; 4], tagged: bool) -> Vec<u8> {
        let mut f = vec![0u8; 6 + 6];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[6..12].copy_from_slice(&[0x52, 0x54, 0, 0, 1, 1]);
        if tagged {
            f.extend_from_slice(&[0x81, 0x00, 0, 5]);
        }
        f.extend_from_slice(&[0x08, 0x00]);
        let mut ip = vec![0u8; 20];
        ip[0] = 0x45;
        ip[12..16].copy_from_slice(&src);
        ip[16..20].copy_from_slice(&dst);
        f.extend_from_slice(&ip);
        f
    }

    fn filter(words: &[(&str, &str)]) -> Filter {
        let mut f = Filter::default();
        for (k, v) in words {
            f.set(k, v).unwrap();
        }
        f
    }

    #[test]
    fn filter_table() {
        let plain = v4([10, 0, 0, 11], [8, 8, 8, 8], false);
        let tagged = v4([8, 8, 8, 8], [10, 0, 0, 11], true);
        let cases: &[(&[(&str, &str)], bool, bool)] = &[
            (&[], true, true),
            (&[("ip", "10.0.0.11")], true, true),
            (&[("ip", "10.0.0.12")], false, false),
            (&[("ip", "fd00::11")], false, false),
            (&[("mac", "52:54:00:00:01:01")], true, true),
            (&[("mac", "02:00:00:00:00:01")], true, true),
            (&[("mac", "02:00:00:00:00:02")], false, false),
            (&[("ethertype", "ipv4")], true, true),
            (&[("ethertype", "0x0800")], true, true),
            (&[("ethertype", "2048")], true, true),
            (&[("ethertype", "arp")], false, false),
            (&[("ethertype", "ipv4"), ("ip", "8.8.8.8")], true, true),
            (
                &[("ethertype", "ipv4"), ("mac", "02:00:00:00:00:02")],
                false,
                false,
            ),
        ];
        for (words, want_plain, want_tagged) in cases {
            let f = filter(words);
            assert_eq!(f.matches(&plain), *want_plain, "{words:?} plain");
            assert_eq!(f.matches(&tagged), *want_tagged, "{words:?} tagged");
        }
    }

    #[test]
    fn arp_and_ipv6_addresses_match() {
        let mut arp = vec![0xff; 6];
        arp.extend_from_slice(&[0x52, 0x54, 0, 0, 1, 1, 0x08, 0x06]);
        let mut body = vec![0u8; 28];
        body[14..18].copy_from_slice(&[10, 0, 0, 11]);
        body[24..28].copy_from_slice(&[10, 0, 0, 1]);
        arp.extend_from_slice(&body);
        assert!(filter(&[("ip", "10.0.0.1")]).matches(&arp));
        assert!(filter(&[("ip", "10.0.0.11"), ("ethertype", "arp")]).matches(&arp));
        assert!(!filter(&[("ip", "10.0.0.2")]).matches(&arp));

        let mut v6 = vec![0u8; 12];
        v6.extend_from_slice(&[0x86, 0xdd]);
        let mut ip = vec![0u8; 40];
        ip[8..24].copy_from_slice(&"fd00::11".parse::<core::net::Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&ip);
        assert!(filter(&[("ip", "fd00::11")]).matches(&v6));
        assert!(!filter(&[("ip", "fd00::12")]).matches(&v6));
        assert!(!filter(&[("ip", "10.0.0.11")]).matches(&v6));
    }

    #[test]
    fn short_frames_fail_conditions_without_panicking() {
        for len in 0..40 {
            let f = vec![0x08; len];
            for words in [
                &[("ip", "8.8.8.8")][..],
                &[("ethertype", "0x0808")],
                &[("mac", "08:08:08:08:08:08")],
            ] {
                let _ = filter(words).matches(&f);
            }
        }
        assert!(Filter::default().matches(&[]));
    }

    #[test]
    fn bad_words_are_named() {
        let mut f = Filter::default();
        assert_eq!(f.set("port", "80"), Err(FilterError::UnknownKey));
        assert_eq!(f.set("mac", "zz"), Err(FilterError::Mac));
        assert_eq!(f.set("ip", "10.0.0"), Err(FilterError::Ip));
        assert_eq!(f.set("ethertype", "0xfffff"), Err(FilterError::Ethertype));
        assert!(f.is_empty());
        f.set("ethertype", "arp").unwrap();
        assert_eq!(f.words(), "ethertype=0x0806");
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use crate::spec::Spec;
    use proptest::prelude::*;

    proptest! {
        /// Any frame against any filter: an answer, never a panic.
        #[test]
        fn any_frame_any_filter(frame in proptest::collection::vec(any::<u8>(), 0..80),
                                mac in any::<[u8; 6]>(), v4 in any::<[u8; 4]>(), v6 in any::<[u8; 16]>(),
                                ty in any::<u16>(), pick in 0u8..8) {
            let f = Filter {
                mac: (pick & 1 != 0).then_some(MacAddr(mac)),
                ip: match pick >> 1 {
                    1 => Some(IpAddr::from(v4)),
                    2 => Some(IpAddr::from(v6)),
                    _ => None,
                },
                ethertype: (pick & 4 != 0).then_some(ty),
            };
            let _ = f.matches(&frame);
        }

        /// The query a /capture client sends (any text): a spec or an
        /// error line, never a panic; a spec reads back from its words.
        #[test]
        fn any_query(q in "[a-z0-9=&.:x]{0,60}") {
            if let Ok(spec) = Spec::parse_query(&q) {
                let text = alloc::format!("{spec}");
                prop_assert_eq!(Spec::parse(text.split(' ')), Ok(spec));
            }
        }
    }
}
