//! IPv6 test frames: builders for UDP, TCP, ICMPv6 echo and the NDP
//! messages (RFC 4861) tests send, with every checksum filled in, and
//! checked parsers for what comes back (no extension headers: aggdom's own
//! stack and the test's guests send none). Parsers return `None` on
//! anything short, malformed or with a bad checksum, never panic.

use std::net::Ipv6Addr;

use crate::frame::{
    checksum, ethernet, tcp_segment, udp_datagram, Eth, Tcp, TcpFields, Udp, IPPROTO_TCP,
    IPPROTO_UDP,
};
use crate::MacAddr;

/// EtherType IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Next header ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;
/// ICMPv6 echo request and reply (RFC 4443 4).
pub const ICMPV6_ECHO_REQUEST: u8 = 128;
/// ICMPv6 echo reply.
pub const ICMPV6_ECHO_REPLY: u8 = 129;
/// Router advertisement (RFC 4861 4.2).
pub const ICMPV6_RA: u8 = 134;
/// Neighbour solicitation (RFC 4861 4.3).
pub const ICMPV6_NS: u8 = 135;
/// Neighbour advertisement (RFC 4861 4.4).
pub const ICMPV6_NA: u8 = 136;
/// All-nodes multicast, ff02::1.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Addressing of one IPv6 frame, at both layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Ends {
    /// Ethernet source.
    pub src_mac: MacAddr,
    /// Ethernet destination.
    pub dst_mac: MacAddr,
    /// IP source.
    pub src_ip: Ipv6Addr,
    /// IP destination.
    pub dst_ip: Ipv6Addr,
}

impl Ipv6Ends {
    /// The same conversation the other way round.
    pub fn reversed(self) -> Ipv6Ends {
        Ipv6Ends {
            src_mac: self.dst_mac,
            dst_mac: self.src_mac,
            src_ip: self.dst_ip,
            dst_ip: self.src_ip,
        }
    }
}

/// The Ethernet address IPv6 multicast `a` is sent to (RFC 2464 7).
pub fn multicast_mac(a: Ipv6Addr) -> MacAddr {
    let o = a.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// The solicited-node multicast group of `a` (RFC 4291 2.7.1).
pub fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    let mut g = [0u8; 16];
    g[0] = 0xff;
    g[1] = 0x02;
    g[11] = 1;
    g[12] = 0xff;
    g[13..].copy_from_slice(&o[13..]);
    Ipv6Addr::from(g)
}

/// The upper-layer checksum with the RFC 8200 8.1 pseudo-header.
pub fn l4_checksum6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, segment: &[u8]) -> u16 {
    let mut pseudo = Vec::with_capacity(40 + segment.len());
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(segment.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, next_header]);
    pseudo.extend_from_slice(segment);
    checksum(&pseudo)
}

/// An IPv6 packet (no extension headers) in an Ethernet frame.
pub fn ipv6_frame(ends: Ipv6Ends, next_header: u8, hop_limit: u8, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len()).expect("IPv6 payload over 64 KiB");
    let mut p = Vec::with_capacity(40 + payload.len());
    p.extend_from_slice(&[0x60, 0, 0, 0]);
    p.extend_from_slice(&len.to_be_bytes());
    p.extend_from_slice(&[next_header, hop_limit]);
    p.extend_from_slice(&ends.src_ip.octets());
    p.extend_from_slice(&ends.dst_ip.octets());
    p.extend_from_slice(payload);
    ethernet(ends.dst_mac, ends.src_mac, ETHERTYPE_IPV6, &p)
}

/// A UDP datagram in an IPv6 frame, checksum filled in.
pub fn udp6(ends: Ipv6Ends, src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let u = udp_datagram(src_port, dst_port, payload, |u| {
        l4_checksum6(ends.src_ip, ends.dst_ip, IPPROTO_UDP, u)
    });
    ipv6_frame(ends, IPPROTO_UDP, 64, &u)
}

/// A TCP segment in an IPv6 frame, checksum filled in.
pub fn tcp6(ends: Ipv6Ends, f: TcpFields, payload: &[u8]) -> Vec<u8> {
    let t = tcp_segment(f, payload, |t| {
        l4_checksum6(ends.src_ip, ends.dst_ip, IPPROTO_TCP, t)
    });
    ipv6_frame(ends, IPPROTO_TCP, 64, &t)
}

/// An ICMPv6 message of type `ty` (code 0) whose body (after the checksum)
/// is `body`, with hop limit `hop_limit`.
pub fn icmp6(ends: Ipv6Ends, hop_limit: u8, ty: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, 0, 0, 0];
    m.extend_from_slice(body);
    let c = l4_checksum6(ends.src_ip, ends.dst_ip, IPPROTO_ICMPV6, &m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    ipv6_frame(ends, IPPROTO_ICMPV6, hop_limit, &m)
}

/// An ICMPv6 echo request ("ping6").
pub fn echo6_request(ends: Ipv6Ends, ident: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut body = ident.to_be_bytes().to_vec();
    body.extend_from_slice(&seq.to_be_bytes());
    body.extend_from_slice(payload);
    icmp6(ends, 64, ICMPV6_ECHO_REQUEST, &body)
}

/// A link-layer address option (RFC 4861 4.6.1): 1 source, 2 target.
fn lladdr_option(kind: u8, mac: MacAddr) -> [u8; 8] {
    let mut o = [kind, 1, 0, 0, 0, 0, 0, 0];
    o[2..].copy_from_slice(&mac.0);
    o
}

/// "Who has `target`?" from `src_mac` / `src_ip` to `target`'s
/// solicited-node group, with a source link-layer option.
pub fn neighbour_solicitation(src_mac: MacAddr, src_ip: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node(target);
    let ends = Ipv6Ends {
        src_mac,
        dst_mac: multicast_mac(group),
        src_ip,
        dst_ip: group,
    };
    let mut body = vec![0u8; 4];
    body.extend_from_slice(&target.octets());
    body.extend_from_slice(&lladdr_option(1, src_mac));
    icmp6(ends, 255, ICMPV6_NS, &body)
}

/// "`target` is at `tlla`" (solicited and override set), with a target
/// link-layer option.
pub fn neighbour_advertisement(ends: Ipv6Ends, target: Ipv6Addr, tlla: MacAddr) -> Vec<u8> {
    let mut body = vec![0x60, 0, 0, 0];
    body.extend_from_slice(&target.octets());
    body.extend_from_slice(&lladdr_option(2, tlla));
    icmp6(ends, 255, ICMPV6_NA, &body)
}

/// A router advertisement to all nodes announcing itself as a default
/// router for 30 minutes, with a source link-layer option.
pub fn router_advertisement(src_mac: MacAddr, src_ip: Ipv6Addr) -> Vec<u8> {
    let ends = Ipv6Ends {
        src_mac,
        dst_mac: multicast_mac(ALL_NODES),
        src_ip,
        dst_ip: ALL_NODES,
    };
    // Hop limit 64, no flags, lifetime 1800 s, reachable and retrans 0.
    let mut body = vec![64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
    body.extend_from_slice(&lladdr_option(1, src_mac));
    icmp6(ends, 255, ICMPV6_RA, &body)
}

/// An IPv6 packet (no extension headers walked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6<'a> {
    /// Source.
    pub src: Ipv6Addr,
    /// Destination.
    pub dst: Ipv6Addr,
    /// Next header.
    pub next_header: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// The payload, cut to the payload length (Ethernet padding off).
    pub payload: &'a [u8],
}

fn v6_at(b: &[u8], at: usize) -> Option<Ipv6Addr> {
    let o: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(o))
}

impl<'a> Ipv6<'a> {
    /// Parses an IPv6 header.
    pub fn parse(p: &'a [u8]) -> Option<Ipv6<'a>> {
        if p.first()? >> 4 != 6 {
            return None;
        }
        let len = usize::from(u16::from_be_bytes(p.get(4..6)?.try_into().ok()?));
        Some(Ipv6 {
            src: v6_at(p, 8)?,
            dst: v6_at(p, 24)?,
            next_header: *p.get(6)?,
            hop_limit: *p.get(7)?,
            payload: p.get(40..40 + len)?,
        })
    }

    fn checksum_ok(&self) -> bool {
        l4_checksum6(self.src, self.dst, self.next_header, self.payload) == 0
    }

    /// The UDP datagram inside, if this is one and its checksum verifies.
    pub fn udp(&self) -> Option<Udp<'a>> {
        (self.next_header == IPPROTO_UDP && self.checksum_ok())
            .then(|| Udp::parse(self.payload))
            .flatten()
    }

    /// The TCP segment inside, if this is one and its checksum verifies.
    pub fn tcp(&self) -> Option<Tcp<'a>> {
        (self.next_header == IPPROTO_TCP && self.checksum_ok())
            .then(|| Tcp::parse(self.payload))
            .flatten()
    }

    /// The ICMPv6 message inside, if this is one and its checksum verifies.
    pub fn icmp6(&self) -> Option<Icmp6<'a>> {
        if self.next_header != IPPROTO_ICMPV6 || self.payload.len() < 4 || !self.checksum_ok() {
            return None;
        }
        Some(Icmp6 {
            ty: self.payload[0],
            code: self.payload[1],
            body: &self.payload[4..],
        })
    }
}

/// An ICMPv6 message whose checksum verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Icmp6<'a> {
    /// Type.
    pub ty: u8,
    /// Code.
    pub code: u8,
    /// Everything after type, code and checksum.
    pub body: &'a [u8],
}

impl<'a> Icmp6<'a> {
    /// NS, NA: the target address.
    pub fn target(&self) -> Option<Ipv6Addr> {
        matches!(self.ty, ICMPV6_NS | ICMPV6_NA)
            .then(|| v6_at(self.body, 4))
            .flatten()
    }

    /// The link-layer address options of an NDP message: (kind, MAC).
    pub fn lladdrs(&self) -> Vec<(u8, MacAddr)> {
        let fixed = match self.ty {
            133 => 4,
            134 => 12,
            135 | 136 => 20,
            137 => 36,
            _ => return Vec::new(),
        };
        let mut out = Vec::new();
        let mut o = fixed;
        while let (Some(&kind), Some(&len)) = (self.body.get(o), self.body.get(o + 1)) {
            if len == 0 {
                break;
            }
            if matches!(kind, 1 | 2) && len == 1 {
                if let Some(m) = self.body.get(o + 2..o + 8) {
                    out.push((kind, MacAddr(m.try_into().expect("six bytes"))));
                }
            }
            o += usize::from(len) * 8;
        }
        out
    }

    /// Echo request / reply: (identifier, sequence number, data).
    pub fn echo(&self) -> Option<(u16, u16, &'a [u8])> {
        if !matches!(self.ty, ICMPV6_ECHO_REQUEST | ICMPV6_ECHO_REPLY) {
            return None;
        }
        let id = u16::from_be_bytes(self.body.get(0..2)?.try_into().ok()?);
        let seq = u16::from_be_bytes(self.body.get(2..4)?.try_into().ok()?);
        Some((id, seq, &self.body[4..]))
    }
}

impl<'a> Eth<'a> {
    /// The IPv6 packet inside, if this is one.
    pub fn ipv6(&self) -> Option<Ipv6<'a>> {
        (self.ethertype == ETHERTYPE_IPV6)
            .then(|| Ipv6::parse(self.payload))
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: MacAddr = MacAddr::qemu(1);
    const B: MacAddr = MacAddr::local(7);

    fn ends() -> Ipv6Ends {
        Ipv6Ends {
            src_mac: A,
            dst_mac: B,
            src_ip: "fd00::1".parse().unwrap(),
            dst_ip: "fd00::2".parse().unwrap(),
        }
    }

    #[test]
    fn udp_and_echo_round_trip_with_valid_checksums() {
        let f = udp6(ends(), 7000, 7001, b"hello");
        let e = Eth::parse(&f).unwrap();
        let ip = e.ipv6().unwrap();
        assert_eq!(
            (ip.src, ip.dst, ip.hop_limit),
            (ends().src_ip, ends().dst_ip, 64)
        );
        let u = ip.udp().unwrap();
        assert_eq!(
            (u.src_port, u.dst_port, u.payload),
            (7000, 7001, &b"hello"[..])
        );
        let f = echo6_request(ends(), 7, 9, b"ping");
        let m = Eth::parse(&f).unwrap().ipv6().unwrap().icmp6().unwrap();
        assert_eq!(m.echo(), Some((7, 9, &b"ping"[..])));
        let mut bad = f.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(Eth::parse(&bad).unwrap().ipv6().unwrap().icmp6().is_none());
    }

    #[test]
    fn ndp_messages_round_trip() {
        let t: Ipv6Addr = "fd00::1:2345".parse().unwrap();
        let f = neighbour_solicitation(A, "fd00::1".parse().unwrap(), t);
        let e = Eth::parse(&f).unwrap();
        assert_eq!(e.dst, MacAddr([0x33, 0x33, 0xff, 0x01, 0x23, 0x45]));
        let ip = e.ipv6().unwrap();
        assert_eq!(ip.dst, "ff02::1:ff01:2345".parse::<Ipv6Addr>().unwrap());
        assert_eq!(ip.hop_limit, 255);
        let m = ip.icmp6().unwrap();
        assert_eq!(
            (m.ty, m.target(), m.lladdrs()),
            (ICMPV6_NS, Some(t), vec![(1, A)])
        );
        let f = neighbour_advertisement(ends(), t, B);
        let m = Eth::parse(&f).unwrap().ipv6().unwrap().icmp6().unwrap();
        assert_eq!(
            (m.ty, m.target(), m.lladdrs()),
            (ICMPV6_NA, Some(t), vec![(2, B)])
        );
        let f = router_advertisement(A, "fe80::1".parse().unwrap());
        let m = Eth::parse(&f).unwrap().ipv6().unwrap().icmp6().unwrap();
        assert_eq!((m.ty, m.lladdrs()), (ICMPV6_RA, vec![(1, A)]));
    }

    #[test]
    fn tcp6_round_trip_with_valid_checksum() {
        let f = tcp6(
            ends(),
            TcpFields {
                src_port: 40000,
                dst_port: 80,
                seq: 1,
                ack: 2,
                flags: crate::frame::tcp_flags::SYN,
                window: 100,
                mss: Some(1400),
            },
            b"",
        );
        let t = Eth::parse(&f).unwrap().ipv6().unwrap().tcp().unwrap();
        assert_eq!((t.src_port, t.dst_port, t.seq), (40000, 80, 1));
    }

    #[test]
    fn parsers_reject_short_input() {
        let f = udp6(ends(), 1, 2, b"x");
        for n in 0..f.len().min(62) {
            let _ = Eth::parse(&f[..n])
                .and_then(|e| e.ipv6())
                .and_then(|ip| ip.udp());
        }
        assert!(Eth::parse(&f[..50]).and_then(|e| e.ipv6()).is_none());
    }
}
