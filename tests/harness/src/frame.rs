//! Test frames: builders for Ethernet, ARP, IPv4, UDP and ICMP echo, and
//! checked parsers for what comes back. Builders produce complete frames
//! (no FCS; QEMU's dgram netdev neither adds nor expects one) padded to the
//! 60-byte Ethernet minimum. Parsers return `None` on anything short or
//! malformed, never panic.

use std::net::Ipv4Addr;

use crate::MacAddr;

/// EtherType IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType "local experimental 1" (IEEE 802): [`tagged`] test frames.
pub const ETHERTYPE_TEST: u16 = 0x88b5;
/// IP protocol ICMP.
pub const IPPROTO_ICMP: u8 = 1;
/// IP protocol TCP.
pub const IPPROTO_TCP: u8 = 6;
/// IP protocol UDP.
pub const IPPROTO_UDP: u8 = 17;
/// Shortest Ethernet frame without FCS.
pub const MIN_FRAME: usize = 60;
/// ARP request / reply opcodes.
pub const ARP_REQUEST: u16 = 1;
/// ARP reply opcode.
pub const ARP_REPLY: u16 = 2;

/// Marks the payload of [`tagged`] frames.
const TAG_MAGIC: &[u8; 8] = b"aggdomT\0";

/// The Internet checksum (RFC 1071) of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum = data.chunks(2).fold(0u32, |acc, c| {
        acc + u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]))
    });
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet II frame, padded with zeros to [`MIN_FRAME`].
pub fn ethernet(dst: MacAddr, src: MacAddr, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity((14 + payload.len()).max(MIN_FRAME));
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    if f.len() < MIN_FRAME {
        f.resize(MIN_FRAME, 0);
    }
    f
}

/// A test frame of exactly `len` bytes (at least [`MIN_FRAME`]) whose
/// payload carries `tag`, recognisable with [`tag_of`] wherever it shows up.
pub fn tagged(dst: MacAddr, src: MacAddr, tag: u64, len: usize) -> Vec<u8> {
    let mut payload = Vec::with_capacity(len.saturating_sub(14));
    payload.extend_from_slice(TAG_MAGIC);
    payload.extend_from_slice(&tag.to_be_bytes());
    payload.resize(len.max(MIN_FRAME) - 14, 0xa5);
    ethernet(dst, src, ETHERTYPE_TEST, &payload)
}

/// The tag of a frame built by [`tagged`].
pub fn tag_of(frame: &[u8]) -> Option<u64> {
    let eth = Eth::parse(frame)?;
    if eth.ethertype != ETHERTYPE_TEST || !eth.payload.starts_with(TAG_MAGIC) {
        return None;
    }
    let t = eth.payload.get(8..16)?;
    Some(u64::from_be_bytes(t.try_into().ok()?))
}

/// An ARP packet (Ethernet/IPv4), without the Ethernet header.
pub fn arp_packet(
    op: u16,
    sender_mac: MacAddr,
    sender_ip: Ipv4Addr,
    target_mac: MacAddr,
    target_ip: Ipv4Addr,
) -> Vec<u8> {
    let mut p = Vec::with_capacity(28);
    p.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
    p.extend_from_slice(&op.to_be_bytes());
    p.extend_from_slice(&sender_mac.0);
    p.extend_from_slice(&sender_ip.octets());
    p.extend_from_slice(&target_mac.0);
    p.extend_from_slice(&target_ip.octets());
    p
}

/// A broadcast "who has `target_ip`? tell `sender_ip`".
pub fn arp_request(sender_mac: MacAddr, sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> Vec<u8> {
    let arp = arp_packet(
        ARP_REQUEST,
        sender_mac,
        sender_ip,
        MacAddr([0; 6]),
        target_ip,
    );
    ethernet(MacAddr::BROADCAST, sender_mac, ETHERTYPE_ARP, &arp)
}

/// "`sender_ip` is at `sender_mac`", sent to `target`.
pub fn arp_reply(
    sender_mac: MacAddr,
    sender_ip: Ipv4Addr,
    target_mac: MacAddr,
    target_ip: Ipv4Addr,
) -> Vec<u8> {
    let arp = arp_packet(ARP_REPLY, sender_mac, sender_ip, target_mac, target_ip);
    ethernet(target_mac, sender_mac, ETHERTYPE_ARP, &arp)
}

/// An IPv4 packet (20-byte header, TTL 64, DF, header checksum filled in).
pub fn ipv4_packet(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, payload: &[u8]) -> Vec<u8> {
    let total = u16::try_from(20 + payload.len()).expect("IPv4 packet over 64 KiB");
    let mut p = Vec::with_capacity(total.into());
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0, 64, protocol, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let c = checksum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Addressing of one IPv4 frame: who sends it to whom, at both layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Ends {
    /// Ethernet source.
    pub src_mac: MacAddr,
    /// Ethernet destination.
    pub dst_mac: MacAddr,
    /// IP source.
    pub src_ip: Ipv4Addr,
    /// IP destination.
    pub dst_ip: Ipv4Addr,
}

impl Ipv4Ends {
    /// The same conversation the other way round.
    pub fn reversed(self) -> Ipv4Ends {
        Ipv4Ends {
            src_mac: self.dst_mac,
            dst_mac: self.src_mac,
            src_ip: self.dst_ip,
            dst_ip: self.src_ip,
        }
    }
}

/// A UDP datagram (header and `payload`) whose checksum is `sum` of the
/// datagram with the field zero: the caller's IP family brings the
/// pseudo-header.
pub(crate) fn udp_datagram(
    src_port: u16,
    dst_port: u16,
    payload: &[u8],
    sum: impl FnOnce(&[u8]) -> u16,
) -> Vec<u8> {
    let len = u16::try_from(8 + payload.len()).expect("UDP datagram over 64 KiB");
    let mut u = Vec::with_capacity(len.into());
    u.extend_from_slice(&src_port.to_be_bytes());
    u.extend_from_slice(&dst_port.to_be_bytes());
    u.extend_from_slice(&len.to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let c = match sum(&u) {
        0 => 0xffff, // 0 means "no checksum" in UDP
        c => c,
    };
    u[6..8].copy_from_slice(&c.to_be_bytes());
    u
}

/// A UDP datagram in an IPv4 frame, with the UDP checksum filled in.
pub fn udp(ends: Ipv4Ends, src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let u = udp_datagram(src_port, dst_port, payload, |u| {
        l4_checksum(&ends, IPPROTO_UDP, u)
    });
    let ip = ipv4_packet(ends.src_ip, ends.dst_ip, IPPROTO_UDP, &u);
    ethernet(ends.dst_mac, ends.src_mac, ETHERTYPE_IPV4, &ip)
}

/// TCP header flags.
pub mod tcp_flags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronise sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field significant.
    pub const ACK: u8 = 0x10;
}

/// One TCP segment's header fields (options: none, or an MSS on SYN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpFields {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Flags ([`tcp_flags`]).
    pub flags: u8,
    /// Receive window.
    pub window: u16,
    /// MSS option to add (SYN segments).
    pub mss: Option<u16>,
}

fn l4_checksum(ends: &Ipv4Ends, protocol: u8, segment: &[u8]) -> u16 {
    let mut pseudo = Vec::with_capacity(12 + segment.len());
    pseudo.extend_from_slice(&ends.src_ip.octets());
    pseudo.extend_from_slice(&ends.dst_ip.octets());
    pseudo.extend_from_slice(&[0, protocol]);
    pseudo.extend_from_slice(&(segment.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(segment);
    checksum(&pseudo)
}

/// A TCP segment (header, options and `payload`) whose checksum is `sum`
/// of the segment with the field zero: the caller's IP family brings the
/// pseudo-header.
pub(crate) fn tcp_segment(f: TcpFields, payload: &[u8], sum: impl FnOnce(&[u8]) -> u16) -> Vec<u8> {
    let opts: Vec<u8> = match f.mss {
        Some(mss) => {
            let m = mss.to_be_bytes();
            vec![2, 4, m[0], m[1]]
        }
        None => Vec::new(),
    };
    let header_len = 20 + opts.len();
    let mut t = Vec::with_capacity(header_len + payload.len());
    t.extend_from_slice(&f.src_port.to_be_bytes());
    t.extend_from_slice(&f.dst_port.to_be_bytes());
    t.extend_from_slice(&f.seq.to_be_bytes());
    t.extend_from_slice(&f.ack.to_be_bytes());
    t.extend_from_slice(&[((header_len / 4) as u8) << 4, f.flags]);
    t.extend_from_slice(&f.window.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    t.extend_from_slice(&opts);
    t.extend_from_slice(payload);
    let c = sum(&t);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    t
}

/// A TCP segment in an IPv4 frame, with the checksum filled in.
pub fn tcp(ends: Ipv4Ends, f: TcpFields, payload: &[u8]) -> Vec<u8> {
    let t = tcp_segment(f, payload, |t| l4_checksum(&ends, IPPROTO_TCP, t));
    let ip = ipv4_packet(ends.src_ip, ends.dst_ip, IPPROTO_TCP, &t);
    ethernet(ends.dst_mac, ends.src_mac, ETHERTYPE_IPV4, &ip)
}

/// An ICMP echo request (`ty` 8) or reply (`ty` 0) in an IPv4 frame.
pub fn icmp_echo(ends: Ipv4Ends, ty: u8, ident: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(8 + payload.len());
    m.extend_from_slice(&[ty, 0, 0, 0]);
    m.extend_from_slice(&ident.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(payload);
    let c = checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    let ip = ipv4_packet(ends.src_ip, ends.dst_ip, IPPROTO_ICMP, &m);
    ethernet(ends.dst_mac, ends.src_mac, ETHERTYPE_IPV4, &ip)
}

/// An ICMP echo request ("ping").
pub fn icmp_echo_request(ends: Ipv4Ends, ident: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    icmp_echo(ends, 8, ident, seq, payload)
}

/// An Ethernet II header and what follows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Eth<'a> {
    /// Destination.
    pub dst: MacAddr,
    /// Source.
    pub src: MacAddr,
    /// EtherType (no VLAN tag handling).
    pub ethertype: u16,
    /// Everything after the header, padding included.
    pub payload: &'a [u8],
}

fn mac_at(b: &[u8], at: usize) -> Option<MacAddr> {
    Some(MacAddr(b.get(at..at + 6)?.try_into().ok()?))
}

fn ip_at(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    let o: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(o))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

impl<'a> Eth<'a> {
    /// Parses an Ethernet header.
    pub fn parse(frame: &'a [u8]) -> Option<Eth<'a>> {
        Some(Eth {
            dst: mac_at(frame, 0)?,
            src: mac_at(frame, 6)?,
            ethertype: u16_at(frame, 12)?,
            payload: frame.get(14..)?,
        })
    }

    /// The ARP packet inside, if this is one.
    pub fn arp(&self) -> Option<Arp> {
        (self.ethertype == ETHERTYPE_ARP)
            .then(|| Arp::parse(self.payload))
            .flatten()
    }

    /// The IPv4 packet inside, if this is one.
    pub fn ipv4(&self) -> Option<Ipv4<'a>> {
        (self.ethertype == ETHERTYPE_IPV4)
            .then(|| Ipv4::parse(self.payload))
            .flatten()
    }
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arp {
    /// [`ARP_REQUEST`] or [`ARP_REPLY`] (or anything else the wire says).
    pub op: u16,
    /// Sender hardware address.
    pub sender_mac: MacAddr,
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target hardware address.
    pub target_mac: MacAddr,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

impl Arp {
    /// Parses an ARP packet for Ethernet and IPv4; `None` for other types.
    pub fn parse(p: &[u8]) -> Option<Arp> {
        if p.get(0..6)? != [0, 1, 0x08, 0x00, 6, 4] {
            return None;
        }
        Some(Arp {
            op: u16_at(p, 6)?,
            sender_mac: mac_at(p, 8)?,
            sender_ip: ip_at(p, 14)?,
            target_mac: mac_at(p, 18)?,
            target_ip: ip_at(p, 24)?,
        })
    }
}

/// An IPv4 packet whose header checksum verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4<'a> {
    /// Source.
    pub src: Ipv4Addr,
    /// Destination.
    pub dst: Ipv4Addr,
    /// Protocol number.
    pub protocol: u8,
    /// Time to live.
    pub ttl: u8,
    /// The payload, cut to the header's total length (Ethernet padding off).
    pub payload: &'a [u8],
}

impl<'a> Ipv4<'a> {
    /// Parses and verifies an IPv4 header.
    pub fn parse(p: &'a [u8]) -> Option<Ipv4<'a>> {
        let first = *p.first()?;
        let ihl = usize::from(first & 0x0f) * 4;
        if first >> 4 != 4 || ihl < 20 || checksum(p.get(..ihl)?) != 0 {
            return None;
        }
        let total = usize::from(u16_at(p, 2)?);
        Some(Ipv4 {
            src: ip_at(p, 12)?,
            dst: ip_at(p, 16)?,
            protocol: p[9],
            ttl: p[8],
            payload: p.get(ihl..total)?,
        })
    }

    /// The UDP datagram inside, if this is one.
    pub fn udp(&self) -> Option<Udp<'a>> {
        (self.protocol == IPPROTO_UDP)
            .then(|| Udp::parse(self.payload))
            .flatten()
    }

    /// The TCP segment inside, if this is one and its checksum verifies.
    pub fn tcp(&self) -> Option<Tcp<'a>> {
        if self.protocol != IPPROTO_TCP {
            return None;
        }
        let ends = Ipv4Ends {
            src_mac: MacAddr::default(),
            dst_mac: MacAddr::default(),
            src_ip: self.src,
            dst_ip: self.dst,
        };
        if l4_checksum(&ends, IPPROTO_TCP, self.payload) != 0 {
            return None;
        }
        Tcp::parse(self.payload)
    }

    /// The ICMP message inside, if this is one.
    pub fn icmp(&self) -> Option<Icmp<'a>> {
        (self.protocol == IPPROTO_ICMP)
            .then(|| Icmp::parse(self.payload))
            .flatten()
    }
}

/// A UDP datagram (checksum not verified).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Udp<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// The payload, cut to the UDP length.
    pub payload: &'a [u8],
}

impl<'a> Udp<'a> {
    /// Parses a UDP header.
    pub fn parse(p: &'a [u8]) -> Option<Udp<'a>> {
        let len = usize::from(u16_at(p, 4)?);
        Some(Udp {
            src_port: u16_at(p, 0)?,
            dst_port: u16_at(p, 2)?,
            payload: p.get(8..len)?,
        })
    }
}

/// A TCP segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tcp<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Flags ([`tcp_flags`]).
    pub flags: u8,
    /// Receive window.
    pub window: u16,
    /// The data after the header and options.
    pub payload: &'a [u8],
}

impl<'a> Tcp<'a> {
    /// Parses a TCP header (checksum not verified; see [`Ipv4::tcp`]).
    pub fn parse(p: &'a [u8]) -> Option<Tcp<'a>> {
        let data_off = usize::from(*p.get(12)? >> 4) * 4;
        if data_off < 20 {
            return None;
        }
        Some(Tcp {
            src_port: u16_at(p, 0)?,
            dst_port: u16_at(p, 2)?,
            seq: u32::from_be_bytes(p.get(4..8)?.try_into().ok()?),
            ack: u32::from_be_bytes(p.get(8..12)?.try_into().ok()?),
            flags: *p.get(13)?,
            window: u16_at(p, 14)?,
            payload: p.get(data_off..)?,
        })
    }

    /// Are all of `flags` set?
    pub fn has(&self, flags: u8) -> bool {
        self.flags & flags == flags
    }
}

/// An ICMP message whose checksum verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Icmp<'a> {
    /// Type (0 echo reply, 8 echo request, ...).
    pub ty: u8,
    /// Code.
    pub code: u8,
    /// Echo identifier (bytes 4..6; meaningless for other types).
    pub ident: u16,
    /// Echo sequence number (bytes 6..8).
    pub seq: u16,
    /// Everything after the first 8 bytes.
    pub payload: &'a [u8],
}

impl<'a> Icmp<'a> {
    /// Parses and verifies an ICMP message.
    pub fn parse(p: &'a [u8]) -> Option<Icmp<'a>> {
        if p.len() < 8 || checksum(p) != 0 {
            return None;
        }
        Some(Icmp {
            ty: p[0],
            code: p[1],
            ident: u16_at(p, 4)?,
            seq: u16_at(p, 6)?,
            payload: &p[8..],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: MacAddr = MacAddr::qemu(1);
    const B: MacAddr = MacAddr::local(7);

    fn ends() -> Ipv4Ends {
        Ipv4Ends {
            src_mac: A,
            dst_mac: B,
            src_ip: Ipv4Addr::new(10, 0, 0, 1),
            dst_ip: Ipv4Addr::new(10, 0, 0, 2),
        }
    }

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 section 3: the sum of these words is ddf2, checksum 220d.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
        assert_eq!(checksum(&[0xff]), 0x00ff);
    }

    #[test]
    fn arp_request_bytes() {
        let f = arp_request(
            A,
            Ipv4Addr::new(192, 168, 1, 1),
            Ipv4Addr::new(192, 168, 1, 2),
        );
        let want: &[u8] = &[
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0, 0, 1, 0x08,
            0x06, // ethernet
            0, 1, 0x08, 0, 6, 4, 0, 1, 0x52, 0x54, 0, 0, 0, 1, 192, 168, 1, 1, // sender
            0, 0, 0, 0, 0, 0, 192, 168, 1, 2, // target
        ];
        assert_eq!(&f[..42], want);
        assert_eq!(f.len(), MIN_FRAME);
        assert!(f[42..].iter().all(|&b| b == 0));
        let arp = Eth::parse(&f).unwrap().arp().unwrap();
        assert_eq!(arp.op, ARP_REQUEST);
        assert_eq!(arp.target_ip, Ipv4Addr::new(192, 168, 1, 2));
        let r = arp_reply(B, arp.target_ip, arp.sender_mac, arp.sender_ip);
        let eth = Eth::parse(&r).unwrap();
        assert_eq!((eth.dst, eth.src), (A, B));
        assert_eq!(eth.arp().unwrap().op, ARP_REPLY);
    }

    #[test]
    fn udp_round_trip_with_valid_checksums() {
        let f = udp(ends(), 1234, 5678, b"hello");
        assert_eq!(f.len(), MIN_FRAME); // 14 + 20 + 8 + 5 = 47, padded
        let eth = Eth::parse(&f).unwrap();
        let ip = eth.ipv4().unwrap();
        assert_eq!((ip.src, ip.dst, ip.ttl), (ends().src_ip, ends().dst_ip, 64));
        assert_eq!(ip.payload.len(), 13, "padding is not payload");
        let u = ip.udp().unwrap();
        assert_eq!(
            (u.src_port, u.dst_port, u.payload),
            (1234, 5678, &b"hello"[..])
        );
        // The UDP checksum over the pseudo-header verifies to zero.
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2, 0, 17, 0, 13]);
        pseudo.extend_from_slice(ip.payload);
        assert_eq!(checksum(&pseudo), 0);
    }

    #[test]
    fn icmp_echo_round_trip() {
        let f = icmp_echo_request(ends(), 0x1234, 7, b"ping");
        let ip = Eth::parse(&f).unwrap().ipv4().unwrap();
        let icmp = ip.icmp().unwrap();
        assert_eq!(
            (icmp.ty, icmp.code, icmp.ident, icmp.seq, icmp.payload),
            (8, 0, 0x1234, 7, &b"ping"[..])
        );
        let reply = icmp_echo(ends().reversed(), 0, icmp.ident, icmp.seq, icmp.payload);
        let eth = Eth::parse(&reply).unwrap();
        assert_eq!(eth.dst, A);
        assert_eq!(eth.ipv4().unwrap().icmp().unwrap().ty, 0);
    }

    #[test]
    fn tcp_round_trip_with_valid_checksum() {
        use tcp_flags::*;
        let syn = TcpFields {
            src_port: 40000,
            dst_port: 80,
            seq: 1000,
            ack: 0,
            flags: SYN,
            window: 8192,
            mss: Some(1460),
        };
        let f = tcp(ends(), syn, b"");
        let ip = Eth::parse(&f).unwrap().ipv4().unwrap();
        let t = ip.tcp().unwrap();
        assert_eq!(
            (t.src_port, t.dst_port, t.seq, t.ack, t.window),
            (40000, 80, 1000, 0, 8192)
        );
        assert!(t.has(SYN) && !t.has(ACK));
        assert!(t.payload.is_empty(), "the MSS option is not payload");
        let data = TcpFields {
            flags: PSH | ACK,
            ack: 77,
            mss: None,
            ..syn
        };
        let f = tcp(ends(), data, b"GET /metrics HTTP/1.0\r\n\r\n");
        let mut corrupt = f.clone();
        let ip = Eth::parse(&f).unwrap().ipv4().unwrap();
        assert_eq!(ip.tcp().unwrap().payload, b"GET /metrics HTTP/1.0\r\n\r\n");
        *corrupt.last_mut().unwrap() ^= 0x20;
        assert!(
            Eth::parse(&corrupt)
                .unwrap()
                .ipv4()
                .unwrap()
                .tcp()
                .is_none(),
            "bad checksum accepted"
        );
    }

    #[test]
    fn tagged_frames() {
        let f = tagged(B, A, 0xdead_beef, 1500);
        assert_eq!(f.len(), 1500);
        assert_eq!(tag_of(&f), Some(0xdead_beef));
        assert_eq!(tagged(B, A, 1, 10).len(), MIN_FRAME);
        assert_eq!(tag_of(&udp(ends(), 1, 2, b"")), None);
    }

    #[test]
    fn parsers_reject_truncated_and_corrupt_input() {
        let good = udp(ends(), 1, 2, b"x");
        for n in 0..42 {
            let eth = Eth::parse(&good[..n]);
            assert!(
                eth.and_then(|e| e.ipv4()).and_then(|ip| ip.udp()).is_none(),
                "len {n}"
            );
        }
        let mut bad = good.clone();
        bad[14 + 8] ^= 1; // TTL: header checksum no longer verifies
        assert!(Eth::parse(&bad).unwrap().ipv4().is_none());
        let mut bad_len = good;
        bad_len[14 + 3] = 0xff; // total length past the frame (checksum off too)
        assert!(Eth::parse(&bad_len).unwrap().ipv4().is_none());
        assert!(Arp::parse(&[0, 1, 0x86, 0xdd, 6, 16]).is_none());
    }
}
