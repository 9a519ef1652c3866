//! Completes the TCP/UDP checksum of a frame the guest sent with
//! `NETTXF_csum_blank` (checksum offload: Linux netfront always offloads
//! IPv4 TCP/UDP checksums, so aggdom must finish them before the frame
//! reaches a wire). Works on aggdom's local copy of the frame; every length
//! is checked against the frame first.

use nic::offload::{fold, sum};

use crate::wire::ETH_HLEN;

const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
/// IPv6 extension headers followed at most.
const MAX_IPV6_EXT: usize = 8;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Where a frame's transport header is: found by [`locate`], every offset
/// checked against the frame, so slicing with them cannot panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L4 {
    /// The IP header's offset (after Ethernet and an optional 802.1Q tag).
    pub l3: usize,
    /// The TCP/UDP header's offset.
    pub l4: usize,
    /// Where the transport data ends: the IP lengths' end, or the frame's
    /// end for a GSO frame ([`Lengths::Frame`]).
    pub end: usize,
    /// `PROTO_TCP` or `PROTO_UDP`.
    pub proto: u8,
    pub ipv6: bool,
    /// TCP: the header's length (data offset); UDP: 8.
    pub header_len: usize,
}

impl L4 {
    /// The checksum field's offset from the transport header.
    pub fn csum_offset(&self) -> usize {
        if self.proto == PROTO_TCP {
            16
        } else {
            6
        }
    }
}

/// Which lengths say where a frame's transport data ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lengths {
    /// The IP header's (total length, payload length): trailing bytes are
    /// Ethernet padding. For ordinary frames.
    Ip,
    /// The frame's own end, whatever the IP header says: a GSO super-frame,
    /// whose lengths segmentation rewrites anyway.
    Frame,
}

/// `PROTO_TCP` for callers outside.
pub const IPPROTO_TCP: u8 = PROTO_TCP;

/// Finds the TCP or UDP header of an Ethernet frame (optionally with one
/// 802.1Q tag) carrying IPv4 (unfragmented) or IPv6 (hop-by-hop, routing
/// and destination options headers skipped; no fragment header). `None`
/// for anything else or for lengths that do not add up.
pub fn locate(frame: &[u8], lengths: Lengths) -> Option<L4> {
    let mut l3 = ETH_HLEN;
    let mut ethertype = be16(frame, 12)?;
    if ethertype == ETHERTYPE_VLAN {
        l3 += 4;
        ethertype = be16(frame, 16)?;
    }
    let (l4, end, proto, ipv6) = match ethertype {
        ETHERTYPE_IPV4 => {
            let vihl = *frame.get(l3)?;
            let ihl = usize::from(vihl & 0x0f) * 4;
            let total = usize::from(be16(frame, l3 + 2)?);
            let frag = be16(frame, l3 + 6)?;
            let end = match lengths {
                Lengths::Ip => l3 + total,
                Lengths::Frame => frame.len(),
            };
            if vihl >> 4 != 4
                || ihl < 20
                || (lengths == Lengths::Ip && total < ihl)
                || end > frame.len()
                || l3 + ihl > end
                || frag & 0x3fff != 0
            {
                return None;
            }
            (l3 + ihl, end, frame[l3 + 9], false)
        }
        ETHERTYPE_IPV6 => {
            let payload = usize::from(be16(frame, l3 + 4)?);
            let end = match lengths {
                Lengths::Ip => l3 + 40 + payload,
                Lengths::Frame => frame.len(),
            };
            if frame.get(l3).is_none_or(|v| v >> 4 != 6) || l3 + 40 > end || end > frame.len() {
                return None;
            }
            // Skip hop-by-hop, routing and destination options headers
            // (RFC 8200 4.1); a fragment header or anything else ends it.
            let (mut next, mut at) = (frame[l3 + 6], l3 + 40);
            for _ in 0..MAX_IPV6_EXT {
                if !matches!(next, 0 | 43 | 60) {
                    break;
                }
                let (Some(&n), Some(&len)) = (frame.get(at), frame.get(at + 1)) else {
                    return None;
                };
                next = n;
                at += usize::from(len) * 8 + 8;
            }
            if at > end {
                return None;
            }
            (at, end, next, true)
        }
        _ => return None,
    };
    let header_len = match proto {
        PROTO_TCP => usize::from(*frame.get(l4 + 12)? >> 4) * 4,
        PROTO_UDP => 8,
        _ => return None,
    };
    if header_len < 8 || (proto == PROTO_TCP && header_len < 20) || l4 + header_len > end {
        return None;
    }
    Some(L4 {
        l3,
        l4,
        end,
        proto,
        ipv6,
        header_len,
    })
}

/// The unfolded one's-complement sum of the pseudo header (RFC 793 /
/// RFC 8200 8.1) for a transport length of `len` bytes.
pub fn pseudo_sum(frame: &[u8], at: &L4, len: usize) -> u64 {
    let addrs = if at.ipv6 {
        &frame[at.l3 + 8..at.l3 + 40]
    } else {
        &frame[at.l3 + 12..at.l3 + 20]
    };
    sum(addrs, u64::from(at.proto) + len as u64)
}

/// Fills in the transport checksum of the frame whose header [`locate`]
/// found at `at`: over `at.l4..at.end`.
pub fn fill(frame: &mut [u8], at: &L4) {
    let field = at.l4 + at.csum_offset();
    frame[field] = 0;
    frame[field + 1] = 0;
    let len = at.end - at.l4;
    let mut csum = !fold(sum(&frame[at.l4..at.end], pseudo_sum(frame, at, len)));
    if at.proto == PROTO_UDP && csum == 0 {
        csum = 0xffff; // RFC 768: zero means "no checksum"
    }
    frame[field..field + 2].copy_from_slice(&csum.to_be_bytes());
}

/// Writes the partial checksum Linux's `CHECKSUM_PARTIAL` expects in the
/// field (the folded pseudo-header sum over the transport length, not
/// complemented): what a frontend or a NIC completes from.
pub fn fill_partial(frame: &mut [u8], at: &L4) {
    let field = at.l4 + at.csum_offset();
    let seed = fold(pseudo_sum(frame, at, at.end - at.l4));
    frame[field..field + 2].copy_from_slice(&seed.to_be_bytes());
}

/// Fills in the TCP or UDP checksum of an Ethernet frame [`locate`] takes
/// (lengths from the IP header). False, with the frame unchanged, for
/// anything else or for lengths that do not add up.
pub fn complete(frame: &mut [u8]) -> bool {
    match locate(frame, Lengths::Ip) {
        Some(at) => {
            fill(frame, &at);
            true
        }
        None => false,
    }
}

/// Whether the TCP/UDP checksum of such a frame verifies (for tests).
pub fn verifies(frame: &[u8]) -> bool {
    let mut copy = frame.to_vec();
    complete(&mut copy) && copy == frame
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UDP/IPv4 datagram whose checksum is computed by hand below.
    fn udp4() -> [u8; 14 + 20 + 8 + 4] {
        let mut f = [0u8; 46];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&32u16.to_be_bytes()); // total length
        f[22] = 64;
        f[23] = PROTO_UDP;
        f[26..30].copy_from_slice(&[10, 0, 0, 1]);
        f[30..34].copy_from_slice(&[10, 0, 0, 2]);
        f[34..36].copy_from_slice(&1000u16.to_be_bytes());
        f[36..38].copy_from_slice(&2000u16.to_be_bytes());
        f[38..40].copy_from_slice(&12u16.to_be_bytes());
        f[42..46].copy_from_slice(b"ping");
        f
    }

    #[test]
    fn udp4_checksum_matches_hand_computation() {
        let mut f = udp4();
        assert!(complete(&mut f));
        // Pseudo header: 0a00+0001+0a00+0002+0011+000c = 0x1420; UDP header
        // 03e8+07d0+000c = 0x0bc4; data 7069+6e67 = 0xded0. Sum 0xfeb4,
        // complement 0x014b.
        assert_eq!(&f[40..42], &[0x01, 0x4b]);
        assert!(verifies(&f));
    }

    #[test]
    fn tcp6_checksum_verifies_after_completion() {
        let mut f = [0u8; 14 + 40 + 20 + 3];
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f[14] = 0x60;
        f[18..20].copy_from_slice(&23u16.to_be_bytes());
        f[20] = PROTO_TCP;
        f[22] = 0xfe;
        f[23] = 0x80;
        f[37] = 1;
        f[38] = 0xfe;
        f[39] = 0x80;
        f[53] = 2;
        f[54 + 12] = 0x50;
        f[74..77].copy_from_slice(b"abc");
        f[54 + 16] = 0x12; // garbage where the checksum goes
        assert!(complete(&mut f));
        assert!(verifies(&f));
        // Corrupt a payload byte: the checksum no longer verifies.
        f[75] ^= 1;
        let mut g = f;
        assert!(complete(&mut g));
        assert_ne!(g, f);
    }

    #[test]
    fn udp6_after_a_hop_by_hop_header() {
        let mut f = [0u8; 14 + 40 + 8 + 8 + 2];
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f[14] = 0x60;
        f[18..20].copy_from_slice(&18u16.to_be_bytes());
        f[20] = 0; // hop-by-hop
        f[54] = PROTO_UDP; // its next header; length 0 = 8 bytes
        f[62..64].copy_from_slice(&7u16.to_be_bytes());
        f[66..68].copy_from_slice(&10u16.to_be_bytes());
        f[70..72].copy_from_slice(b"hi");
        assert!(complete(&mut f));
        assert!(verifies(&f));
        assert_ne!(&f[68..70], &[0, 0]);
        // A fragment header stops it.
        f[54] = 44;
        assert!(!complete(&mut f));
    }

    #[test]
    fn refuses_what_it_cannot_complete() {
        let mut frag = udp4();
        frag[20] = 0x20; // more fragments
        let mut short = udp4();
        short[16..18].copy_from_slice(&200u16.to_be_bytes());
        let mut icmp = udp4();
        icmp[23] = 1;
        let mut arp = udp4();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        for f in [
            &mut frag[..],
            &mut short[..],
            &mut icmp[..],
            &mut arp[..],
            &mut [0u8; 13][..],
        ] {
            let before = f.to_vec();
            assert!(!complete(f));
            assert_eq!(f, &before[..]);
        }
    }

    #[test]
    fn vlan_tagged_udp4() {
        let plain = udp4();
        let mut tagged = [0u8; 50];
        tagged[..12].copy_from_slice(&plain[..12]);
        tagged[12..14].copy_from_slice(&[0x81, 0x00]);
        tagged[14..16].copy_from_slice(&[0, 5]);
        tagged[16..].copy_from_slice(&plain[12..]);
        assert!(complete(&mut tagged));
        assert_eq!(&tagged[44..46], &[0x01, 0x4b]);
    }
}
