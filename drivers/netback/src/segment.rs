//! Offload metadata that travels with a frame ([`Offload`]), and TCP
//! segmentation in software: a GSO super-frame cut into frames of at most
//! `gso_size` payload bytes each, with their own IPv4/IPv6 and TCP headers
//! (lengths, IPv4 IDs, sequence numbers, flags, checksums), as Linux's
//! `tcp_gso_segment` produces them.
//!
//! Pure and allocation-free: [`Plan::new`] validates a super-frame once
//! (headers found through [`checksum::locate`], sizes and the segment count
//! checked), then [`Plan::write`] builds segment `i` into a caller's buffer
//! and cannot panic. It is the default path, so aggdom works with any
//! uplink; a consumer that segments in hardware gets the super-frame and
//! its [`Offload`] instead. It lives in netback because both directions of
//! a vif need it (guest TX to plain uplinks, guest RX to frontends without
//! GSO); a datapath that wants it for uplink large-receive can use it from
//! here (it depends on nothing of netback's but [`checksum`]).
use crate::checksum::{self, Lengths, IPPROTO_TCP, L4};

/// `XEN_NETIF_GSO_TYPE_*` (io/netif.h).
pub const XEN_NETIF_GSO_TYPE_TCPV4: u8 = 1;
pub const XEN_NETIF_GSO_TYPE_TCPV6: u8 = 2;

/// Segments one super-frame may become. 64 KiB at the IPv4 default MSS
/// (536) is 123 segments; a guest asking for more is asking the backend to
/// turn one ring slot into thousands of frames.
pub const MAX_SEGMENTS: usize = 128;

/// TCP flags cleared on all but the last segment (FIN, PSH) and on all but
/// the first (CWR), as `tcp_gso_segment` does.
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// Which segmentation a super-frame asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GsoKind {
    TcpV4,
    TcpV6,
}

impl GsoKind {
    /// From `netif_extra_info.u.gso.type`; `None` for NONE and unknown types.
    pub fn from_netif(t: u8) -> Option<Self> {
        match t {
            XEN_NETIF_GSO_TYPE_TCPV4 => Some(Self::TcpV4),
            XEN_NETIF_GSO_TYPE_TCPV6 => Some(Self::TcpV6),
            _ => None,
        }
    }

    pub fn to_netif(self) -> u8 {
        match self {
            Self::TcpV4 => XEN_NETIF_GSO_TYPE_TCPV4,
            Self::TcpV6 => XEN_NETIF_GSO_TYPE_TCPV6,
        }
    }
}

/// A super-frame's segmentation: at most `size` TCP payload bytes per
/// segment (the MSS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gso {
    pub size: u16,
    pub kind: GsoKind,
}

/// What is known about a frame's transport checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Csum {
    /// Nothing: whoever receives it checks it.
    Unknown,
    /// Complete and known good (checked by a NIC, or computed here).
    Validated,
    /// Partial (Linux `CHECKSUM_PARTIAL`): the field at `start + offset`
    /// holds the pseudo-header sum over the frame's own transport length;
    /// the checksum over `start..` the end of the IP data must still be
    /// computed (by a NIC, the receiving frontend, or [`checksum::fill`]).
    Partial { start: u16, offset: u16 },
}

/// What travels with a frame beyond its bytes: a consumer that can
/// segment or checksum in hardware takes the frame as it is; any other
/// gets frames that need neither.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offload {
    /// A TCP super-frame to cut into `gso.size` segments. Always comes
    /// with [`Csum::Partial`].
    pub gso: Option<Gso>,
    pub csum: Csum,
}

impl Offload {
    /// A plain frame, checksum unknown.
    pub const NONE: Self = Self {
        gso: None,
        csum: Csum::Unknown,
    };
}

/// What a consumer of frames can finish itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OffloadCaps {
    /// Takes [`Csum::Partial`] frames (checksum insertion).
    pub csum: bool,
    pub tso4: bool,
    pub tso6: bool,
}

impl OffloadCaps {
    /// Plain frames only: segmentation and checksums done in software.
    pub const NONE: Self = Self {
        csum: false,
        tso4: false,
        tso6: false,
    };

    pub fn takes(&self, gso: Gso) -> bool {
        self.csum
            && match gso.kind {
                GsoKind::TcpV4 => self.tso4,
                GsoKind::TcpV6 => self.tso6,
            }
    }
}

/// Why a super-frame cannot be segmented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegError {
    /// Not TCP over the IP version the GSO type names (UDP, ARP, a
    /// fragment, headers that do not fit).
    NotTcp,
    /// Headers plus `gso_size` exceed the largest frame allowed, or
    /// `gso_size` is 0.
    BadSize,
    /// More than [`MAX_SEGMENTS`] segments.
    TooManySegments,
}

/// A validated super-frame: where its headers are and how it is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    at: L4,
    /// Ethernet + IP + TCP headers: copied into every segment.
    header: usize,
    mss: usize,
    count: usize,
    frame_len: usize,
}

impl Plan {
    /// Checks `frame` as a `gso` super-frame whose segments may be at most
    /// `max_frame` bytes. The IP length fields are not trusted: the
    /// frame's own length is the data's end.
    pub fn new(frame: &[u8], gso: Gso, max_frame: usize) -> Result<Self, SegError> {
        let at = checksum::locate(frame, Lengths::Frame).ok_or(SegError::NotTcp)?;
        let ipv6 = gso.kind == GsoKind::TcpV6;
        if at.proto != IPPROTO_TCP || at.ipv6 != ipv6 {
            return Err(SegError::NotTcp);
        }
        let header = at.l4 + at.header_len;
        let mss = usize::from(gso.size);
        if mss == 0 || header + mss > max_frame {
            return Err(SegError::BadSize);
        }
        let payload = frame.len() - header;
        let count = payload.div_ceil(mss).max(1);
        if count > MAX_SEGMENTS {
            return Err(SegError::TooManySegments);
        }
        Ok(Self {
            at,
            header,
            mss,
            count,
            frame_len: frame.len(),
        })
    }

    /// The checksum offsets for [`Csum::Partial`].
    pub fn csum(&self) -> Csum {
        Csum::Partial {
            start: self.at.l4 as u16,
            offset: self.at.csum_offset() as u16,
        }
    }

    /// Makes the super-frame itself consistent for a consumer that
    /// segments it (a NIC, a frontend with GSO): IP lengths over the whole
    /// frame, the IPv4 header checksum, and the partial TCP checksum.
    /// Nothing if `frame` is not the plan's.
    pub fn normalise(&self, frame: &mut [u8]) {
        if frame.len() != self.frame_len {
            return;
        }
        let (l3, l4) = (self.at.l3, self.at.l4);
        if self.at.ipv6 {
            let plen = (self.frame_len - l3 - 40) as u16;
            frame[l3 + 4..l3 + 6].copy_from_slice(&plen.to_be_bytes());
        } else {
            let total = (self.frame_len - l3) as u16;
            frame[l3 + 2..l3 + 4].copy_from_slice(&total.to_be_bytes());
            frame[l3 + 10] = 0;
            frame[l3 + 11] = 0;
            let c = checksum::ipv4_header(&frame[l3..l4]);
            frame[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        }
        checksum::fill_partial(frame, &self.at);
    }

    /// Segments the frame becomes (at least 1).
    pub fn count(&self) -> usize {
        self.count
    }

    /// The length of segment `i`.
    pub fn len(&self, i: usize) -> usize {
        let start = self.header + i * self.mss;
        self.header + (self.frame_len - start.min(self.frame_len)).min(self.mss)
    }

    /// Always false: a segment holds its headers at least.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The longest segment.
    pub fn max_len(&self) -> usize {
        self.len(0)
    }

    /// Builds segment `i` (`< count()`) of `frame` (the frame the plan was
    /// made from) into `dst`, which must hold [`Plan::max_len`] bytes, and
    /// returns its length; 0 if `i`, `frame` or `dst` do not fit the plan.
    /// With `csum` the TCP checksum is completed; without, the field gets
    /// the partial pseudo-header sum (for a receiver that completes it).
    pub fn write(&self, frame: &[u8], i: usize, dst: &mut [u8], csum: bool) -> usize {
        let len = self.len(i);
        if i >= self.count || frame.len() != self.frame_len || dst.len() < len {
            return 0;
        }
        let (h, at) = (self.header, self.at);
        let start = h + i * self.mss;
        let data = len - h;
        let seg = &mut dst[..len];
        seg[..h].copy_from_slice(&frame[..h]);
        seg[h..].copy_from_slice(&frame[start..start + data]);

        let (l3, l4) = (at.l3, at.l4);
        if at.ipv6 {
            let plen = (len - l3 - 40) as u16;
            seg[l3 + 4..l3 + 6].copy_from_slice(&plen.to_be_bytes());
        } else {
            let total = (len - l3) as u16;
            seg[l3 + 2..l3 + 4].copy_from_slice(&total.to_be_bytes());
            let id = u16::from_be_bytes([frame[l3 + 4], frame[l3 + 5]]).wrapping_add(i as u16);
            seg[l3 + 4..l3 + 6].copy_from_slice(&id.to_be_bytes());
            seg[l3 + 10] = 0;
            seg[l3 + 11] = 0;
            let c = checksum::ipv4_header(&seg[l3..l4]);
            seg[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        }
        let seq = u32::from_be_bytes([frame[l4 + 4], frame[l4 + 5], frame[l4 + 6], frame[l4 + 7]])
            .wrapping_add((i * self.mss) as u32);
        seg[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
        if i + 1 < self.count {
            seg[l4 + 13] &= !(TCP_FIN | TCP_PSH);
        }
        if i > 0 {
            seg[l4 + 13] &= !TCP_CWR;
        }
        let seg_at = L4 { end: len, ..at };
        if csum {
            checksum::fill(seg, &seg_at);
        } else {
            checksum::fill_partial(seg, &seg_at);
        }
        len
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    /// RFC 1071 checksum written independently of `checksum`: 16-bit words
    /// summed in a u64, carries folded at the end.
    fn rfc1071(chunks: &[&[u8]]) -> u16 {
        let bytes: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let mut s: u64 = 0;
        for (i, b) in bytes.iter().enumerate() {
            s += if i % 2 == 0 {
                u64::from(*b) << 8
            } else {
                u64::from(*b)
            };
        }
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    /// A TCP segment's checksum verifies (the sum over pseudo header and
    /// segment, field included, is 0), computed from scratch.
    pub(crate) fn tcp_ok(seg: &[u8]) -> bool {
        let v6 = seg[12..14] == [0x86, 0xdd];
        let (pseudo, l4): (Vec<u8>, usize) = if v6 {
            let len = (seg.len() - 54) as u32;
            let mut p = seg[22..54].to_vec();
            p.extend_from_slice(&len.to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, 6]);
            (p, 54)
        } else {
            let ihl = usize::from(seg[14] & 15) * 4;
            let len = (seg.len() - 14 - ihl) as u16;
            let mut p = seg[26..34].to_vec();
            p.extend_from_slice(&[0, 6]);
            p.extend_from_slice(&len.to_be_bytes());
            (p, 14 + ihl)
        };
        rfc1071(&[&pseudo, &seg[l4..]]) == 0
    }

    pub(crate) fn ipv4_ok(seg: &[u8]) -> bool {
        let ihl = usize::from(seg[14] & 15) * 4;
        rfc1071(&[&seg[14..14 + ihl]]) == 0
    }

    /// A TCP super-frame: `payload` bytes counting up, seq 1000, flags
    /// CWR|PSH|FIN|ACK, IPv4 ID 0xfffe (to see it wrap) or IPv6.
    pub(crate) fn tcp_frame(v6: bool, payload: usize) -> Vec<u8> {
        let l3 = if v6 { 40 } else { 20 };
        let mut f = vec![0u8; 14 + l3 + 20 + payload];
        f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
        f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
        if v6 {
            f[12..14].copy_from_slice(&[0x86, 0xdd]);
            f[14] = 0x60;
            f[18..20].copy_from_slice(&((20 + payload) as u16).to_be_bytes());
            f[20] = 6;
            f[21] = 64;
            f[22] = 0xfd;
            f[37] = 1;
            f[38] = 0xfd;
            f[53] = 2;
        } else {
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            f[14] = 0x45;
            f[16..18].copy_from_slice(&((20 + 20 + payload) as u16).to_be_bytes());
            f[18..20].copy_from_slice(&0xfffeu16.to_be_bytes());
            f[20] = 0x40; // DF
            f[22] = 64;
            f[23] = 6;
            f[26..30].copy_from_slice(&[10, 0, 0, 1]);
            f[30..34].copy_from_slice(&[10, 0, 0, 2]);
        }
        let t = 14 + l3;
        f[t..t + 2].copy_from_slice(&40000u16.to_be_bytes());
        f[t + 2..t + 4].copy_from_slice(&5201u16.to_be_bytes());
        f[t + 4..t + 8].copy_from_slice(&0xffff_fc00u32.to_be_bytes()); // wraps
        f[t + 8..t + 12].copy_from_slice(&77u32.to_be_bytes());
        f[t + 12] = 0x50;
        f[t + 13] = TCP_CWR | TCP_PSH | TCP_FIN | 0x10;
        f[t + 14..t + 16].copy_from_slice(&502u16.to_be_bytes());
        for (i, b) in f[t + 20..].iter_mut().enumerate() {
            *b = (i * 7 % 251) as u8;
        }
        f
    }

    fn segments(f: &[u8], gso: Gso, max: usize) -> Vec<Vec<u8>> {
        let plan = Plan::new(f, gso, max).unwrap();
        (0..plan.count())
            .map(|i| {
                let mut b = vec![0u8; plan.max_len()];
                let n = plan.write(f, i, &mut b, true);
                b.truncate(n);
                b
            })
            .collect()
    }

    #[test]
    fn ipv4_segments_have_their_own_headers() {
        let f = tcp_frame(false, 4000);
        let segs = segments(
            &f,
            Gso {
                size: 1448,
                kind: GsoKind::TcpV4,
            },
            1514,
        );
        assert_eq!(
            segs.iter().map(Vec::len).collect::<Vec<_>>(),
            [1502, 1502, 54 + 1104]
        );
        let mut data = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            assert_eq!(
                u16::from_be_bytes([s[16], s[17]]) as usize,
                s.len() - 14,
                "total length"
            );
            assert_eq!(
                u16::from_be_bytes([s[18], s[19]]),
                0xfffeu16.wrapping_add(i as u16),
                "IPv4 ID"
            );
            assert!(ipv4_ok(s), "IPv4 header checksum of segment {i}");
            assert!(tcp_ok(s), "TCP checksum of segment {i}");
            let seq = u32::from_be_bytes([s[38], s[39], s[40], s[41]]);
            assert_eq!(seq, 0xffff_fc00u32.wrapping_add(1448 * i as u32));
            let flags = s[47];
            assert_eq!(flags & TCP_CWR != 0, i == 0, "CWR on the first only");
            assert_eq!(flags & (TCP_FIN | TCP_PSH) != 0, i == 2, "FIN/PSH last");
            assert_eq!(flags & 0x10, 0x10, "ACK everywhere");
            assert_eq!(
                &s[..34],
                &{
                    let mut h = f[..34].to_vec();
                    h[16..20].copy_from_slice(&s[16..20]);
                    h[24..26].copy_from_slice(&s[24..26]);
                    h
                }[..]
            );
            data.extend_from_slice(&s[54..]);
        }
        assert_eq!(data, &f[54..], "payload reassembles");
    }

    #[test]
    fn ipv6_segments_and_partial_checksums() {
        let f = tcp_frame(true, 3000);
        let gso = Gso {
            size: 1000,
            kind: GsoKind::TcpV6,
        };
        let segs = segments(&f, gso, 1514);
        assert_eq!(segs.len(), 3);
        for s in &segs {
            assert_eq!(u16::from_be_bytes([s[18], s[19]]), 1020, "payload length");
            assert!(tcp_ok(s));
        }
        // Partial: the seed plus the data's sum completes to the same.
        let plan = Plan::new(&f, gso, 1514).unwrap();
        let mut b = vec![0u8; plan.max_len()];
        let n = plan.write(&f, 1, &mut b, false);
        assert!(!tcp_ok(&b[..n]));
        let at = checksum::locate(&b[..n], Lengths::Ip).unwrap();
        let seed = u16::from_be_bytes([b[at.l4 + 16], b[at.l4 + 17]]);
        // Completing from the seed as a NIC does: sum over the segment with
        // the seed in the field, complemented.
        let c = rfc1071(&[&b[at.l4..n]]);
        b[at.l4 + 16..at.l4 + 18].copy_from_slice(&c.to_be_bytes());
        assert_ne!(seed, 0);
        assert!(tcp_ok(&b[..n]), "the seed is the pseudo-header sum");
    }

    #[test]
    fn normalised_super_frame_checks_out() {
        let mut f = tcp_frame(false, 5000);
        f[16..18].copy_from_slice(&[0, 0]); // a lying total length
        let plan = Plan::new(
            &f,
            Gso {
                size: 1448,
                kind: GsoKind::TcpV4,
            },
            1514,
        )
        .unwrap();
        plan.normalise(&mut f);
        assert_eq!(
            usize::from(u16::from_be_bytes([f[16], f[17]])),
            f.len() - 14
        );
        assert!(ipv4_ok(&f));
        let c = rfc1071(&[&f[34..]]);
        f[50..52].copy_from_slice(&c.to_be_bytes());
        assert!(tcp_ok(&f));
    }

    #[test]
    fn refuses_bad_super_frames() {
        let v4 = Gso {
            size: 1448,
            kind: GsoKind::TcpV4,
        };
        let mut udp = tcp_frame(false, 3000);
        udp[23] = 17;
        assert_eq!(Plan::new(&udp, v4, 1514), Err(SegError::NotTcp));
        let v6 = tcp_frame(true, 3000);
        assert_eq!(
            Plan::new(&v6, v4, 1514),
            Err(SegError::NotTcp),
            "wrong family"
        );
        let mut frag = tcp_frame(false, 3000);
        frag[20] = 0x20;
        assert_eq!(Plan::new(&frag, v4, 1514), Err(SegError::NotTcp));
        assert_eq!(Plan::new(&[0u8; 40], v4, 1514), Err(SegError::NotTcp));
        let f = tcp_frame(false, 3000);
        for size in [0, 1461, u16::MAX] {
            assert_eq!(
                Plan::new(&f, Gso { size, ..v4 }, 1514),
                Err(SegError::BadSize),
                "size {size}"
            );
        }
        let big = tcp_frame(false, 60000);
        assert_eq!(
            Plan::new(&big, Gso { size: 400, ..v4 }, 1514),
            Err(SegError::TooManySegments)
        );
        assert!(Plan::new(&big, Gso { size: 536, ..v4 }, 1514).is_ok());
        // A data offset past the frame.
        let mut off = tcp_frame(false, 0);
        off[46] = 0xf0;
        assert_eq!(Plan::new(&off, v4, 1514), Err(SegError::NotTcp));
    }

    #[test]
    fn one_segment_and_header_only() {
        let v4 = Gso {
            size: 1448,
            kind: GsoKind::TcpV4,
        };
        for payload in [0, 1, 1448] {
            let f = tcp_frame(false, payload);
            let segs = segments(&f, v4, 1514);
            assert_eq!(segs.len(), 1);
            assert_eq!(segs[0].len(), f.len());
            assert!(tcp_ok(&segs[0]) && ipv4_ok(&segs[0]));
            assert_eq!(segs[0][47], f[47], "all flags kept on a lone segment");
        }
        let plan = Plan::new(&tcp_frame(false, 10), v4, 1514).unwrap();
        assert_eq!(
            plan.write(&tcp_frame(false, 11), 0, &mut [0; 2000], true),
            0
        );
        assert_eq!(
            plan.write(&tcp_frame(false, 10), 1, &mut [0; 2000], true),
            0
        );
        assert_eq!(plan.write(&tcp_frame(false, 10), 0, &mut [0; 20], true), 0);
    }
}
