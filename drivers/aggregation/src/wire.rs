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
const ICMPV6: usize = ETH_HEADER_LEN + IPV6_LEN;

/// ARP operation "request" (RFC 826).
pub const ARP_REQUEST: u16 = 1;

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
        /// Offset of an NDP link-layer address option's MAC, if the frame is
        /// an ICMPv6 NDP message carrying one (RFC 4861 4.6.1).
        nd_lladdr: Option<usize>,
        /// For an NDP neighbour solicitation from the unspecified address
        /// (duplicate address detection, RFC 4862 5.4.2): its target.
        dad_target: Option<u128>,
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
                nd_lladdr: None,
                dad_target: None,
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
            let (nd_lladdr, dad_target) = ndp(frame, src);
            L3::Ip {
                src,
                dst,
                nd_lladdr,
                dad_target,
            }
        }
        other => L3::Other(other),
    };
    Ok(Parsed { dst, src, l3 })
}

#[inline(always)]
fn mac6(b: [u8; 6]) -> u64 {
    u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
}

#[inline(always)]
fn v4(b: [u8; 4]) -> u128 {
    (0xffff_u128 << 32) | u32::from_be_bytes(b) as u128
}

/// For an ICMPv6 NDP message directly after the IPv6 header (next header
/// 58, no extension headers): the offset of the MAC in its first source or
/// target link-layer address option, and the DAD target if `src` is `::`.
fn ndp(frame: &[u8], src: u128) -> (Option<usize>, Option<u128>) {
    if frame.get(ETH_HEADER_LEN + 6) != Some(&58) {
        return (None, None);
    }
    let Some(&ty) = frame.get(ICMPV6) else {
        return (None, None);
    };
    // Fixed part of each NDP message before its options (RFC 4861 4.1–4.5).
    let fixed = match ty {
        133 => 8,
        134 => 16,
        135 | 136 => 24,
        137 => 40,
        _ => return (None, None),
    };
    let payload = u16_at(frame, ETH_HEADER_LEN + 4).unwrap_or(0) as usize;
    let end = frame.len().min(ICMPV6 + payload);
    let dad = if ty == 135 && src == 0 {
        v6_at(frame, ICMPV6 + 8)
    } else {
        None
    };
    let mut off = ICMPV6 + fixed;
    // Options are type, length in units of 8 bytes, data (RFC 4861 4.6).
    while off + 8 <= end {
        let (Some(&otype), Some(&olen)) = (frame.get(off), frame.get(off + 1)) else {
            break;
        };
        if olen == 0 {
            break; // RFC 4861 4.6: a zero length must be discarded.
        }
        if (otype == 1 || otype == 2) && olen == 1 {
            return (Some(off + 2), dad);
        }
        off += olen as usize * 8;
    }
    (None, dad)
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
/// ICMPv6 checksum incrementally (RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')).
/// The option sits at an even offset from the ICMPv6 header, so its 16-bit
/// words line up with the checksum's.
pub fn set_nd_lladdr(frame: &mut [u8], off: usize, mac: u64) {
    let (Some(old), Some(ck)) = (mac_at(frame, off), u16_at(frame, ICMPV6 + 2)) else {
        return;
    };
    match off.checked_sub(ICMPV6) {
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
    if let Some(s) = frame.get_mut(ICMPV6 + 2..ICMPV6 + 4) {
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
        let L3::Ip {
            nd_lladdr: Some(off),
            ..
        } = p.l3
        else {
            panic!("no option found: {p:?}")
        };
        assert_eq!(off, 80);
        set_nd_lladdr(&mut f, off, 0x02aa_bbcc_ddee);
        assert_eq!(&f[80..86], &[0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]);
        assert_eq!(internet_checksum(&f[54..86], pseudo(&f)), 0);
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
