//! Checked views of the few header fields the engine reads and rewrites.
//!
//! Contract: [`parse`] checks every length it relies on before reading, so
//! any byte slice, however short or hostile, yields `Ok(Parsed)` or an
//! `Err`, never a panic; the rewrite helpers take offsets that `parse`
//! validated and still use checked slicing. Offsets follow IEEE 802.3 (the
//! Ethernet II header), RFC 826 (ARP for IPv4 over Ethernet), RFC 791
//! (IPv4), RFC 8200 (IPv6) and RFC 4861 section 4 (NDP messages and their
//! link-layer address options).

use crate::decision::DropReason;

pub const ETH_HEADER_LEN: usize = 14;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Used by Linux bonding's learning packets (drivers/net/bonding/bond_alb.c,
/// `alb_send_lp_vid`: `ETH_P_LOOPBACK`, broadcast, source = the MAC to learn).
pub const ETHERTYPE_LOOPBACK: u16 = 0x9000;

const ARP_LEN: usize = 28;
const ARP_SHA: usize = ETH_HEADER_LEN + 8;
const ARP_THA: usize = ETH_HEADER_LEN + 18;
const IPV6_LEN: usize = 40;

/// ARP operation "request" (RFC 826).
pub const ARP_REQUEST: u16 = 1;

/// IPv6 next-header values (IANA "Assigned Internet Protocol Numbers").
const NH_HOP_BY_HOP: u8 = 0;
const NH_ROUTING: u8 = 43;
const NH_FRAGMENT: u8 = 44;
const NH_AH: u8 = 51;
const NH_DEST_OPTS: u8 = 60;
pub const NH_ICMPV6: u8 = 58;
/// Extension headers walked before giving up: a legitimate packet carries
/// a handful (RFC 8200 4.1 lists six kinds); a long chain only hides what
/// follows it.
const MAX_EXT_HEADERS: usize = 8;

/// ICMPv6 types (RFC 4443, RFC 4861 4, RFC 2710, RFC 3810).
pub const ICMPV6_MLD_QUERY: u8 = 130;
pub const ICMPV6_MLD_REPORT: u8 = 131;
pub const ICMPV6_MLD_DONE: u8 = 132;
pub const ICMPV6_RS: u8 = 133;
pub const ICMPV6_RA: u8 = 134;
pub const ICMPV6_NS: u8 = 135;
pub const ICMPV6_NA: u8 = 136;
pub const ICMPV6_REDIRECT: u8 = 137;
pub const ICMPV6_MLD2_REPORT: u8 = 143;

/// Most link-layer address options one NDP message may carry here: one
/// source and one target (RFC 4861 4.1–4.5 define at most one of each per
/// message); more is treated as malformed.
pub const MAX_ND_LLADDRS: usize = 2;

/// What the engine needs of an ICMPv6 message.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Icmp6 {
    /// Offset of the ICMPv6 header in the frame (after any extension headers).
    pub at: usize,
    /// The ICMPv6 type.
    pub ty: u8,
    /// NS, NA and redirect: the target address (RFC 4861 4.3–4.5).
    pub target: Option<u128>,
    /// Offsets of the MACs in the message's source / target link-layer
    /// address options (RFC 4861 4.6.1), `ll_count` of them.
    pub ll: [usize; MAX_ND_LLADDRS],
    pub ll_count: u8,
}

impl Icmp6 {
    /// One of the five NDP messages (RFC 4861 4.1–4.5).
    pub const fn is_nd(&self) -> bool {
        self.ty >= ICMPV6_RS && self.ty <= ICMPV6_REDIRECT
    }

    /// An MLD message (RFC 2710 3, RFC 3810 5).
    pub const fn is_mld(&self) -> bool {
        matches!(
            self.ty,
            ICMPV6_MLD_QUERY | ICMPV6_MLD_REPORT | ICMPV6_MLD_DONE | ICMPV6_MLD2_REPORT
        )
    }

    /// The link-layer option offsets found.
    pub fn lladdrs(&self) -> &[usize] {
        &self.ll[..(self.ll_count as usize).min(MAX_ND_LLADDRS)]
    }
}

/// The layer-3 facts the engine needs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum L3 {
    /// ARP for IPv4 over Ethernet; addresses as engine keys.
    Arp {
        oper: u16,
        sha: u64,
        spa: u128,
        tha: u64,
        tpa: u128,
    },
    /// IPv4 or IPv6; addresses as engine keys (IPv4-mapped for v4).
    Ip {
        src: u128,
        dst: u128,
        /// IPv6 only: the ICMPv6 message the packet carries, found behind
        /// any extension headers (`None` for other upper layers, and for
        /// non-first fragments, whose upper layer cannot be seen).
        icmp6: Option<Icmp6>,
    },
    /// Any other ethertype.
    Other(u16),
}

/// A validated frame: Ethernet addresses and the layer-3 facts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Parsed {
    pub dst: u64,
    pub src: u64,
    pub l3: L3,
}

impl Parsed {
    /// For an NDP neighbour solicitation from the unspecified address
    /// (duplicate address detection, RFC 4862 5.4.2): its target.
    pub fn dad_target(&self) -> Option<u128> {
        match self.l3 {
            L3::Ip {
                src: 0,
                icmp6:
                    Some(Icmp6 {
                        ty: ICMPV6_NS,
                        target,
                        ..
                    }),
                ..
            } => target,
            _ => None,
        }
    }

    /// The ICMPv6 message, if the frame carries one.
    pub fn icmp6(&self) -> Option<&Icmp6> {
        match &self.l3 {
            L3::Ip { icmp6: Some(i), .. } => Some(i),
            _ => None,
        }
    }

    /// The layer-3 destination (ARP target or IP destination), if any.
    pub fn dst_ip(&self) -> Option<u128> {
        match self.l3 {
            L3::Arp { tpa, .. } => Some(tpa),
            L3::Ip { dst, .. } => Some(dst),
            L3::Other(_) => None,
        }
    }
}

#[inline]
fn mac_at(b: &[u8], off: usize) -> Option<u64> {
    let s = b.get(off..off + 6)?;
    Some(
        ((s[0] as u64) << 40)
            | ((s[1] as u64) << 32)
            | ((s[2] as u64) << 24)
            | ((s[3] as u64) << 16)
            | ((s[4] as u64) << 8)
            | (s[5] as u64),
    )
}

/// The MAC at `off`, if the frame is long enough.
#[inline]
pub fn parse_mac_at(b: &[u8], off: usize) -> Option<u64> {
    mac_at(b, off)
}

#[inline]
fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off + 2)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

#[inline]
fn v6_at(b: &[u8], off: usize) -> Option<u128> {
    let s: [u8; 16] = b.get(off..off + 16)?.try_into().ok()?;
    Some(u128::from_be_bytes(s))
}

/// The Ethernet destination MAC, if the frame has a full header.
#[inline]
pub fn dst_mac(frame: &[u8]) -> Option<u64> {
    if frame.len() < ETH_HEADER_LEN {
        return None;
    }
    mac_at(frame, 0)
}

/// Parse an Ethernet II frame. Runt: shorter than a header the ethertype
/// promises. Malformed: a header whose fixed fields are wrong.
#[inline(always)]
pub fn parse(frame: &[u8]) -> Result<Parsed, DropReason> {
    let Some((eth, l3)) = frame.split_first_chunk::<ETH_HEADER_LEN>() else {
        return Err(DropReason::Runt);
    };
    let dst = mac6([eth[0], eth[1], eth[2], eth[3], eth[4], eth[5]]);
    let src = mac6([eth[6], eth[7], eth[8], eth[9], eth[10], eth[11]]);
    let l3 = match u16::from_be_bytes([eth[12], eth[13]]) {
        ETHERTYPE_IPV4 => {
            let Some(h) = l3.first_chunk::<20>() else {
                return Err(DropReason::Runt);
            };
            let ihl = (h[0] & 0x0f) as usize * 4;
            if h[0] >> 4 != 4 || ihl < 20 {
                return Err(DropReason::Malformed);
            }
            if l3.len() < ihl {
                return Err(DropReason::Runt);
            }
            L3::Ip {
                src: v4([h[12], h[13], h[14], h[15]]),
                dst: v4([h[16], h[17], h[18], h[19]]),
                icmp6: None,
            }
        }
        ETHERTYPE_ARP => {
            let Some(h) = l3.first_chunk::<ARP_LEN>() else {
                return Err(DropReason::Runt);
            };
            // htype 1 (Ethernet), ptype IPv4, hlen 6, plen 4 (RFC 826).
            if h[0..6] != [0, 1, 0x08, 0x00, 6, 4] {
                return Err(DropReason::Malformed);
            }
            L3::Arp {
                oper: u16::from_be_bytes([h[6], h[7]]),
                sha: mac6([h[8], h[9], h[10], h[11], h[12], h[13]]),
                spa: v4([h[14], h[15], h[16], h[17]]),
                tha: mac6([h[18], h[19], h[20], h[21], h[22], h[23]]),
                tpa: v4([h[24], h[25], h[26], h[27]]),
            }
        }
        ETHERTYPE_IPV6 => {
            let Some(h) = l3.first_chunk::<IPV6_LEN>() else {
                return Err(DropReason::Runt);
            };
            if h[0] >> 4 != 6 {
                return Err(DropReason::Malformed);
            }
            let mut a = [0u8; 16];
            a.copy_from_slice(&h[8..24]);
            let src = u128::from_be_bytes(a);
            a.copy_from_slice(&h[24..40]);
            let dst = u128::from_be_bytes(a);
            let payload = u16::from_be_bytes([h[4], h[5]]) as usize;
            let end = frame.len().min(ETH_HEADER_LEN + IPV6_LEN + payload);
            L3::Ip {
                src,
                dst,
                icmp6: icmp6(frame, h[6], end)?,
            }
        }
        other => L3::Other(other),
    };
    Ok(Parsed { dst, src, l3 })
}

/// The common frame read in one pass: Ethernet II, IPv4 without options.
/// Whenever [`ipv4_plain`] returns one, [`parse`] would return
/// `Ok(Parsed { dst, src, l3: L3::Ip { src: src_ip, dst: dst_ip, icmp6:
/// None } })` for the same frame; the engine's fast paths decide from it
/// without building a [`Parsed`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Ipv4Plain {
    pub dst: u64,
    pub src: u64,
    /// Engine keys (IPv4-mapped).
    pub src_ip: u128,
    pub dst_ip: u128,
}

/// See [`Ipv4Plain`]; `None` for every other frame (which [`parse`] reads).
#[inline(always)]
pub fn ipv4_plain(frame: &[u8]) -> Option<Ipv4Plain> {
    let h = frame.first_chunk::<{ ETH_HEADER_LEN + 20 }>()?;
    // Ethertype IPv4, version 4, IHL 5: the 20 bytes are the whole header.
    if h[12] != 0x08 || h[13] != 0x00 || h[14] != 0x45 {
        return None;
    }
    Some(Ipv4Plain {
        dst: mac6([h[0], h[1], h[2], h[3], h[4], h[5]]),
        src: mac6([h[6], h[7], h[8], h[9], h[10], h[11]]),
        src_ip: v4([h[26], h[27], h[28], h[29]]),
        dst_ip: v4([h[30], h[31], h[32], h[33]]),
    })
}

#[inline(always)]
fn mac6(b: [u8; 6]) -> u64 {
    u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
}

#[inline(always)]
fn v4(b: [u8; 4]) -> u128 {
    (0xffff_u128 << 32) | u32::from_be_bytes(b) as u128
}

/// Walks the extension headers after the IPv6 header (RFC 8200 4) from
/// next header `nh` to the upper layer, within `end`. Returns the ICMPv6
/// message if that is what the packet carries.
///
/// Errors: a chain longer than [`MAX_EXT_HEADERS`] or one that runs past
/// the packet, and an NDP message inside a fragment (RFC 6980: NDP must
/// not be fragmented, and a fragment's options cannot all be seen, so it
/// could never be rewritten) are `Ip6ExtHeader`; an ICMPv6 header cut
/// short is `Runt`; an NDP message shorter than its fixed part or with a
/// bad option is `NdMalformed`. Non-first fragments, ESP and "no next
/// header" end the walk with no upper layer to see.
fn icmp6(frame: &[u8], mut nh: u8, end: usize) -> Result<Option<Icmp6>, DropReason> {
    let mut off = ETH_HEADER_LEN + IPV6_LEN;
    let mut fragment = false;
    let mut walked = 0;
    loop {
        let len = match nh {
            NH_HOP_BY_HOP | NH_ROUTING | NH_DEST_OPTS => {
                // Length in 8-byte units, not counting the first 8.
                let Some(&l) = frame.get(off + 1) else {
                    return Err(DropReason::Ip6ExtHeader);
                };
                (l as usize + 1) * 8
            }
            NH_FRAGMENT => {
                // RFC 8200 4.5: offset in the top 13 bits of bytes 2–3.
                let Some(fo) = u16_at(frame, off + 2) else {
                    return Err(DropReason::Ip6ExtHeader);
                };
                if fo >> 3 != 0 {
                    return Ok(None);
                }
                fragment = true;
                8
            }
            NH_AH => {
                // RFC 4302 2.2: length in 4-byte units, minus 2.
                let Some(&l) = frame.get(off + 1) else {
                    return Err(DropReason::Ip6ExtHeader);
                };
                (l as usize + 2) * 4
            }
            _ => break,
        };
        walked += 1;
        if walked > MAX_EXT_HEADERS || off + len > end {
            return Err(DropReason::Ip6ExtHeader);
        }
        let Some(&next) = frame.get(off) else {
            return Err(DropReason::Ip6ExtHeader);
        };
        nh = next;
        off += len;
    }
    if nh != NH_ICMPV6 {
        return Ok(None);
    }
    if off + 4 > end {
        return Err(if fragment {
            DropReason::Ip6ExtHeader
        } else {
            DropReason::Runt
        });
    }
    let Some(&ty) = frame.get(off) else {
        return Err(DropReason::Runt);
    };
    let mut m = Icmp6 {
        at: off,
        ty,
        target: None,
        ll: [0; MAX_ND_LLADDRS],
        ll_count: 0,
    };
    if !m.is_nd() {
        return Ok(Some(m));
    }
    if fragment {
        return Err(DropReason::Ip6ExtHeader);
    }
    // Fixed part of each NDP message before its options (RFC 4861 4.1–4.5).
    let fixed = match ty {
        ICMPV6_RS => 8,
        ICMPV6_RA => 16,
        ICMPV6_NS | ICMPV6_NA => 24,
        _ => 40,
    };
    if off + fixed > end {
        return Err(DropReason::NdMalformed);
    }
    if matches!(ty, ICMPV6_NS | ICMPV6_NA | ICMPV6_REDIRECT) {
        m.target = v6_at(frame, off + 8);
    }
    // Options are type, length in units of 8 bytes, data (RFC 4861 4.6);
    // every one is walked, so none can hide behind another.
    let mut o = off + fixed;
    while o < end {
        let (Some(&otype), Some(&olen)) = (frame.get(o), frame.get(o + 1)) else {
            return Err(DropReason::NdMalformed);
        };
        let olen = olen as usize * 8;
        // RFC 4861 4.6: a zero length must be discarded.
        if olen == 0 || o + olen > end {
            return Err(DropReason::NdMalformed);
        }
        if otype == 1 || otype == 2 {
            // An Ethernet address fills exactly one unit (RFC 2464 6).
            if olen != 8 || m.ll_count as usize >= MAX_ND_LLADDRS {
                return Err(DropReason::NdMalformed);
            }
            m.ll[m.ll_count as usize] = o + 2;
            m.ll_count += 1;
        }
        o += olen;
    }
    Ok(Some(m))
}

#[inline(always)]
fn put_mac(frame: &mut [u8], off: usize, mac: u64) {
    if let Some(s) = frame.get_mut(off..off + 6) {
        s.copy_from_slice(&mac.to_be_bytes()[2..]);
    }
}

#[inline(always)]
pub fn set_src_mac(frame: &mut [u8], mac: u64) {
    put_mac(frame, 6, mac);
}

#[inline(always)]
pub fn set_dst_mac(frame: &mut [u8], mac: u64) {
    put_mac(frame, 0, mac);
}

#[inline(always)]
pub fn set_arp_sha(frame: &mut [u8], mac: u64) {
    put_mac(frame, ARP_SHA, mac);
}

#[inline(always)]
pub fn set_arp_tha(frame: &mut [u8], mac: u64) {
    put_mac(frame, ARP_THA, mac);
}

/// Replace the NDP link-layer address at `off` with `mac` and patch the
/// checksum of the ICMPv6 message at `icmp` incrementally (RFC 1624 eqn. 3:
/// HC' = ~(~HC + ~m + m')). The option sits at an even offset from the
/// ICMPv6 header, so its 16-bit words line up with the checksum's.
pub fn set_nd_lladdr(frame: &mut [u8], icmp: usize, off: usize, mac: u64) {
    let (Some(old), Some(ck)) = (mac_at(frame, off), u16_at(frame, icmp + 2)) else {
        return;
    };
    match off.checked_sub(icmp) {
        Some(rel) if rel % 2 == 0 => {}
        _ => return,
    }
    let mut sum: u32 = !ck as u32 & 0xffff;
    for i in 0..3 {
        let shift = 32 - 16 * i;
        let o = (old >> shift) as u16;
        let n = (mac >> shift) as u16;
        sum += (!o) as u32 & 0xffff;
        sum += n as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let new_ck = !(sum as u16);
    put_mac(frame, off, mac);
    if let Some(s) = frame.get_mut(icmp + 2..icmp + 4) {
        s.copy_from_slice(&new_ck.to_be_bytes());
    }
}

/// Build a learning frame into `buf`: broadcast, source `mac`, ethertype
/// 0x9000, padded to the 60-byte minimum (as Linux bonding's
/// `alb_send_lp_vid`). Sent from an identity's new holder after a move so
/// the upstream switch relearns the MAC at once. Returns the length, or 0 if
/// `buf` is shorter than 60 bytes.
pub fn learning_frame(mac: crate::MacAddr, buf: &mut [u8]) -> usize {
    let Some(f) = buf.get_mut(..60) else {
        return 0;
    };
    f.fill(0);
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac.0);
    f[12..14].copy_from_slice(&ETHERTYPE_LOOPBACK.to_be_bytes());
    60
}

#[cfg(test)]
mod fast_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The one-pass read agrees with `parse` wherever it answers.
        #[test]
        fn ipv4_plain_agrees_with_parse(mut f in prop::collection::vec(any::<u8>(), 0..80), plain in any::<bool>()) {
            if plain && f.len() >= 15 {
                f[12] = 0x08;
                f[13] = 0x00;
                f[14] = 0x45;
            }
            if let Some(v) = ipv4_plain(&f) {
                let p = parse(&f).expect("parse accepts what ipv4_plain reads");
                prop_assert_eq!(p, Parsed {
                    dst: v.dst,
                    src: v.src,
                    l3: L3::Ip { src: v.src_ip, dst: v.dst_ip, icmp6: None },
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn internet_checksum(data: &[u8], init: u32) -> u16 {
        let mut sum = init;
        for c in data.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], 0])
            };
            sum += w as u32;
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn short_frames_are_runts() {
        for n in 0..14 {
            assert_eq!(parse(&[0u8; 14][..n]), Err(DropReason::Runt));
        }
        let mut arp = [0u8; 41];
        arp[12..14].copy_from_slice(&[8, 6]);
        assert_eq!(parse(&arp), Err(DropReason::Runt));
        let mut v4 = [0u8; 33];
        v4[12..14].copy_from_slice(&[8, 0]);
        v4[14] = 0x45;
        assert_eq!(parse(&v4), Err(DropReason::Runt));
        let mut v4opt = [0u8; 40];
        v4opt[12..14].copy_from_slice(&[8, 0]);
        v4opt[14] = 0x4f; // IHL 15: 60-byte header that is not there.
        assert_eq!(parse(&v4opt), Err(DropReason::Runt));
    }

    #[test]
    fn bad_headers_are_malformed() {
        let mut v4 = [0u8; 60];
        v4[12..14].copy_from_slice(&[8, 0]);
        v4[14] = 0x65;
        assert_eq!(parse(&v4), Err(DropReason::Malformed));
        v4[14] = 0x44;
        assert_eq!(parse(&v4), Err(DropReason::Malformed));
        let mut arp = [0u8; 60];
        arp[12..14].copy_from_slice(&[8, 6]);
        assert_eq!(parse(&arp), Err(DropReason::Malformed));
    }

    #[test]
    fn nd_option_rewrite_keeps_checksum_valid() {
        // Neighbour advertisement with a target link-layer address option.
        let mut f = [0u8; 86];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        f[14] = 0x60;
        f[18..20].copy_from_slice(&32u16.to_be_bytes());
        f[20] = 58;
        f[21] = 255;
        f[22..38].copy_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f[38..54].copy_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        f[54] = 136;
        f.copy_within(22..38, 62);
        f[78] = 2;
        f[79] = 1;
        f[80..86].copy_from_slice(&[0x52, 0x54, 0, 0, 0, 1]);
        // Pseudo-header sum (RFC 8200 8.1): src, dst, length, next header.
        let pseudo = |f: &[u8]| {
            let mut s = 0u32;
            for c in f[22..54].chunks(2) {
                s += u16::from_be_bytes([c[0], c[1]]) as u32;
            }
            s + 32 + 58
        };
        let ck = internet_checksum(&f[54..86], pseudo(&f));
        f[56..58].copy_from_slice(&ck.to_be_bytes());
        let p = parse(&f).unwrap();
        let m = p.icmp6().copied().expect("an ICMPv6 message");
        assert_eq!((m.at, m.ty, m.lladdrs()), (54, 136, &[80][..]));
        set_nd_lladdr(&mut f, m.at, 80, 0x02aa_bbcc_ddee);
        assert_eq!(&f[80..86], &[0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]);
        assert_eq!(internet_checksum(&f[54..86], pseudo(&f)), 0);
    }

    use crate::testkit::{
        icmp6_checksum_ok, ipv6_packet, link_local, mld2_report_body, nd_body, EXT_DEST_OPTS,
        EXT_FRAGMENT, EXT_HOP_BY_HOP, PEER_V6,
    };
    use crate::MacAddr;

    const M: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 1]);

    fn nd(exts: &[(u8, [u8; 8])], ty: u8, opts: &[(u8, MacAddr)]) -> ([u8; 200], usize) {
        let mut body = [0u8; 80];
        let k = nd_body(&mut body, ty, PEER_V6, opts);
        let mut f = [0u8; 200];
        let n = ipv6_packet(&mut f, M, M, link_local(1), PEER_V6, exts, 58, &body[..k]);
        (f, n)
    }

    /// NDP and MLD are found behind any walkable chain of extension
    /// headers, at the offset the rewrite needs; what cannot be walked is
    /// an error, never a frame passed with its NDP unseen.
    #[test]
    fn extension_header_table() {
        let ext = |t: u8, l: u8| (t, [0, l, 0, 0, 0, 0, 0, 0]);
        type Ext = (u8, [u8; 8]);
        type Want = Result<Option<(usize, u8)>, DropReason>;
        let cases: &[(&str, &[Ext], Want)] = &[
            ("none", &[], Ok(Some((54, 135)))),
            ("destination options", &[EXT_DEST_OPTS], Ok(Some((62, 135)))),
            (
                "hop-by-hop, routing, destination options",
                &[EXT_HOP_BY_HOP, ext(43, 0), EXT_DEST_OPTS],
                Ok(Some((78, 135))),
            ),
            ("authentication header", &[ext(51, 0)], Ok(Some((62, 135)))),
            (
                "first fragment",
                &[EXT_FRAGMENT],
                Err(DropReason::Ip6ExtHeader),
            ),
            (
                "nine headers",
                &[EXT_DEST_OPTS; 9],
                Err(DropReason::Ip6ExtHeader),
            ),
            ("eight headers", &[EXT_DEST_OPTS; 8], Ok(Some((118, 135)))),
            ("no next header", &[ext(59, 0)], Ok(None)),
            ("ESP", &[ext(50, 0)], Ok(None)),
        ];
        for (name, exts, want) in cases {
            let (f, n) = nd(exts, 135, &[(1, M)]);
            let got = parse(&f[..n]).map(|p| p.icmp6().map(|m| (m.at, m.ty)));
            assert_eq!(got, *want, "{name}");
            if let Ok(Some(_)) = got {
                assert_eq!(icmp6_checksum_ok(&f[..n]), Some(true), "{name}");
            }
        }
        // A header whose length runs past the packet.
        let (mut f, n) = nd(&[EXT_DEST_OPTS], 135, &[(1, M)]);
        f[55] = 20;
        assert_eq!(parse(&f[..n]), Err(DropReason::Ip6ExtHeader));
        // A chain cut off by the payload length.
        let (mut f, n) = nd(&[EXT_DEST_OPTS], 135, &[]);
        f[18..20].copy_from_slice(&4u16.to_be_bytes());
        assert_eq!(parse(&f[..n]), Err(DropReason::Ip6ExtHeader));
        // A non-first fragment: nothing to see, nothing to rewrite.
        let (mut f, n) = nd(&[EXT_FRAGMENT], 135, &[]);
        f[56..58].copy_from_slice(&(185u16 << 3).to_be_bytes());
        assert_eq!(parse(&f[..n]).map(|p| p.icmp6().copied()), Ok(None));
        // Anything else in a first fragment passes (ping, MLD).
        let (mut f, n) = nd(&[EXT_FRAGMENT], 128, &[]);
        f[62] = 128;
        assert!(parse(&f[..n]).is_ok());
    }

    #[test]
    fn ndp_option_table() {
        type Opt = (u8, MacAddr);
        type Want = Result<usize, DropReason>;
        let cases: &[(&str, u8, &[Opt], Want)] = &[
            ("NS, source option", 135, &[(1, M)], Ok(1)),
            ("NA, target option", 136, &[(2, M)], Ok(1)),
            ("RS without option", 133, &[], Ok(0)),
            ("RA with source option", 134, &[(1, M)], Ok(1)),
            ("redirect with target option", 137, &[(2, M)], Ok(1)),
            ("two options", 136, &[(2, M), (1, M)], Ok(2)),
            (
                "three options",
                136,
                &[(2, M), (1, M), (2, M)],
                Err(DropReason::NdMalformed),
            ),
        ];
        for (name, ty, opts, want) in cases {
            let (f, n) = nd(&[], *ty, opts);
            let got = parse(&f[..n]).map(|p| p.icmp6().map_or(9, |m| m.lladdrs().len()));
            assert_eq!(got, *want, "{name}");
        }
        // Zero length, overrun, a 16-byte link-layer option, and options
        // that are not link-layer ones are walked over.
        let (mut f, n) = nd(&[], 135, &[(1, M)]);
        f[79] = 0;
        assert_eq!(parse(&f[..n]), Err(DropReason::NdMalformed));
        f[79] = 3;
        assert_eq!(parse(&f[..n]), Err(DropReason::NdMalformed));
        // An NS whose options are the 16 bytes `opts`, as they are.
        let ns_with = |opts: [u8; 16]| {
            let mut body = [0u8; 64];
            let k = nd_body(&mut body, 135, PEER_V6, &[]);
            body[k..k + 16].copy_from_slice(&opts);
            let mut f = [0u8; 200];
            let n = ipv6_packet(
                &mut f,
                M,
                M,
                link_local(1),
                PEER_V6,
                &[],
                58,
                &body[..k + 16],
            );
            (f, n)
        };
        let (f, n) = ns_with([1, 2, 0x52, 0x54, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(parse(&f[..n]), Err(DropReason::NdMalformed));
        let (f, n) = ns_with([5, 1, 0, 0, 0, 0, 5, 220, 1, 1, 0x52, 0x54, 0, 0, 0, 1]);
        let p = parse(&f[..n]).unwrap();
        assert_eq!(p.icmp6().unwrap().lladdrs(), &[54 + 24 + 8 + 2]);
        // Shorter than its fixed part; an ICMPv6 header cut short.
        let (mut f, _) = nd(&[], 135, &[]);
        f[18..20].copy_from_slice(&20u16.to_be_bytes());
        assert_eq!(parse(&f[..74]), Err(DropReason::NdMalformed));
        f[18..20].copy_from_slice(&2u16.to_be_bytes());
        assert_eq!(parse(&f[..60]), Err(DropReason::Runt));
    }

    #[test]
    fn mld_behind_hop_by_hop_is_seen() {
        let mut body = [0u8; 28];
        mld2_report_body(
            &mut body,
            [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 1],
        );
        let mut f = [0u8; 120];
        let n = ipv6_packet(&mut f, M, M, [0; 16], PEER_V6, &[EXT_HOP_BY_HOP], 58, &body);
        let p = parse(&f[..n]).unwrap();
        let m = p.icmp6().unwrap();
        assert!(m.is_mld() && !m.is_nd() && m.at == 62, "{m:?}");
        assert_eq!(icmp6_checksum_ok(&f[..n]), Some(true));
        assert_eq!(p.dad_target(), None);
    }

    #[test]
    fn learning_frame_shape() {
        let mut b = [0xaau8; 64];
        assert_eq!(
            learning_frame(crate::MacAddr([2, 0, 0, 0, 0, 9]), &mut b),
            60
        );
        assert_eq!(
            &b[..14],
            &[255, 255, 255, 255, 255, 255, 2, 0, 0, 0, 0, 9, 0x90, 0]
        );
        assert_eq!(
            learning_frame(crate::MacAddr([2, 0, 0, 0, 0, 9]), &mut b[..59]),
            0
        );
    }
}
