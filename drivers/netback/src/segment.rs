//! Offload metadata that travels with a frame ([`Offload`]), and TCP
//! segmentation in software for a vif: a GSO super-frame cut into frames
//! of at most `gso_size` payload bytes each, with their own IPv4/IPv6 and
//! TCP headers (lengths, IPv4 IDs, sequence numbers, flags, checksums), as
//! Linux's `tcp_gso_segment` produces them.
//!
//! The cutting itself is the uplinks' software fallback,
//! [`nic::offload::Segmenter`], so aggdom has one segmenter: guest TX to
//! plain uplinks and guest RX to frontends without GSO go through the same
//! code as an uplink that cannot segment. The types at the seam are the
//! nic crate's too ([`Gso`], [`GsoKind`], [`OffloadCaps`] =
//! [`nic::Offloads`], and [`Offload::tx`] gives a [`nic::TxOffload`]), so a
//! frame netback lends can go to [`nic::NicDatapath::queue_tx_offload`]
//! as it is. What is netback's own: [`Plan`] says why a guest's
//! super-frame is refused (each reason a counter) and makes a super-frame
//! consistent for a consumer that segments it ([`Plan::normalise`]); and
//! [`Csum::Validated`], which Xen's RX flags carry and a transmit request
//! does not.
//!
//! Pure and allocation-free: [`Plan::new`] validates once, then
//! [`Plan::write`] cannot panic.
pub use nic::offload::MAX_SEGMENTS;
use nic::offload::{self, Segmenter, TcpFrame};
pub use nic::{Gso, GsoKind, PartialCsum, TxOffload};

/// `XEN_NETIF_GSO_TYPE_*` (io/netif.h).
pub const XEN_NETIF_GSO_TYPE_TCPV4: u8 = 1;
pub const XEN_NETIF_GSO_TYPE_TCPV6: u8 = 2;

/// TCP flags a lone segment keeps (tests).
#[cfg(test)]
const TCP_FIN: u8 = 0x01;
#[cfg(test)]
const TCP_PSH: u8 = 0x08;
#[cfg(test)]
const TCP_CWR: u8 = 0x80;

/// From `netif_extra_info.u.gso.type`; `None` for NONE and unknown types.
pub fn gso_kind(netif_type: u8) -> Option<GsoKind> {
    match netif_type {
        XEN_NETIF_GSO_TYPE_TCPV4 => Some(GsoKind::TcpV4),
        XEN_NETIF_GSO_TYPE_TCPV6 => Some(GsoKind::TcpV6),
        _ => None,
    }
}

/// `netif_extra_info.u.gso.type` for `kind`.
pub fn netif_gso_type(kind: GsoKind) -> u8 {
    match kind {
        GsoKind::TcpV4 => XEN_NETIF_GSO_TYPE_TCPV4,
        GsoKind::TcpV6 => XEN_NETIF_GSO_TYPE_TCPV6,
    }
}

/// What a consumer of frames finishes itself: the uplinks' own
/// capabilities type.
pub type OffloadCaps = nic::Offloads;

/// Whether `caps` segments `gso` frames (with their partial checksums).
pub fn takes(caps: &OffloadCaps, gso: Gso) -> bool {
    caps.csum
        && match gso.kind {
            GsoKind::TcpV4 => caps.tso4,
            GsoKind::TcpV6 => caps.tso6,
        }
}

/// What is known about a frame's transport checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Csum {
    /// Nothing: whoever receives it checks it.
    Unknown,
    /// Complete and known good (checked by a NIC, or computed here).
    Validated,
    /// Partial (Linux `CHECKSUM_PARTIAL`, [`PartialCsum`]): the field at
    /// `start + offset` holds the pseudo-header sum over the frame's own
    /// transport length; the checksum from `start` to the end of the IP
    /// data must still be computed (by a NIC, the receiving frontend, or
    /// [`crate::checksum::fill`]).
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

    /// The transmit request an uplink takes ([`nic::NicDatapath::queue_tx_offload`]).
    pub fn tx(&self) -> TxOffload {
        TxOffload {
            csum: match self.csum {
                Csum::Partial { start, offset } => Some(PartialCsum { start, offset }),
                Csum::Unknown | Csum::Validated => None,
            },
            gso: self.gso,
        }
    }

    /// From a transmit request (a frame another port asked to send).
    pub fn from_tx(req: &TxOffload) -> Self {
        Self {
            gso: req.gso,
            csum: match req.csum {
                Some(c) => Csum::Partial {
                    start: c.start,
                    offset: c.offset,
                },
                None => Csum::Unknown,
            },
        }
    }
}

/// Why a super-frame cannot be segmented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegError {
    /// Not TCP over the IP version the GSO type names (UDP, ARP, a
    /// fragment, IPv6 extension headers, headers that do not fit).
    NotTcp,
    /// `gso_size` is 0, or headers plus `gso_size` exceed the largest
    /// frame allowed (at most [`nic::MAX_FRAME_LEN`], jumbo frames or not).
    BadSize,
    /// More than [`MAX_SEGMENTS`] segments.
    TooManySegments,
}

/// A validated super-frame: where its headers are and how it is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    seg: Segmenter,
    frame_len: usize,
}

impl Plan {
    /// Checks `frame` as a `gso` super-frame whose segments may be at most
    /// `max_frame` bytes. The IP length fields are not trusted: the
    /// frame's own length is the data's end.
    pub fn new(frame: &[u8], gso: Gso, max_frame: usize) -> Result<Self, SegError> {
        match Segmenter::new(frame, gso) {
            Ok(seg) if seg.tcp.hdr_len + seg.mss() <= max_frame => Ok(Self {
                seg,
                frame_len: frame.len(),
            }),
            Ok(_) => Err(SegError::BadSize),
            Err(_) => Err(refusal(frame, gso, max_frame)),
        }
    }

    /// Segments the frame becomes (at least 1).
    pub fn count(&self) -> usize {
        self.seg.count()
    }

    /// The length of segment `i` (0 past the last).
    pub fn len(&self, i: usize) -> usize {
        self.seg.len(i)
    }

    /// Always false: a segment holds its headers at least.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The longest segment.
    pub fn max_len(&self) -> usize {
        self.seg.len(0)
    }

    /// The checksum offsets for [`Csum::Partial`].
    pub fn csum(&self) -> Csum {
        Csum::Partial {
            start: self.seg.tcp.l4 as u16,
            offset: offload::TCP_CSUM_OFFSET,
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
        let t = self.seg.tcp;
        let (l3, l4) = (t.l3, t.l4);
        if t.ipv6 {
            let plen = (self.frame_len - l3 - 40) as u16;
            frame[l3 + 4..l3 + 6].copy_from_slice(&plen.to_be_bytes());
        } else {
            let total = (self.frame_len - l3) as u16;
            frame[l3 + 2..l3 + 4].copy_from_slice(&total.to_be_bytes());
            frame[l3 + 10..l3 + 12].fill(0);
            let c = !offload::fold(offload::sum(&frame[l3..l4], 0));
            frame[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        }
        let seed = offload::fold(t.pseudo_header_sum(frame, self.frame_len - l4));
        let at = l4 + usize::from(offload::TCP_CSUM_OFFSET);
        frame[at..at + 2].copy_from_slice(&seed.to_be_bytes());
    }

    /// Builds segment `i` (`< count()`) of `frame` (the frame the plan was
    /// made from) into `dst`, which must hold [`Plan::max_len`] bytes, and
    /// returns its length; 0 if `i`, `frame` or `dst` do not fit the plan.
    /// With `csum` the TCP checksum is complete; without, the field gets
    /// the partial pseudo-header sum (for a receiver that completes it).
    pub fn write(&self, frame: &[u8], i: usize, dst: &mut [u8], csum: bool) -> usize {
        let len = self.seg.len(i);
        if len == 0 || frame.len() != self.frame_len || dst.len() < len {
            return 0;
        }
        let out = &mut dst[..len];
        self.seg.write(frame, i, out);
        if !csum {
            let l4 = self.seg.tcp.l4;
            let seed = offload::fold(self.seg.tcp.pseudo_header_sum(out, len - l4));
            let at = l4 + usize::from(offload::TCP_CSUM_OFFSET);
            out[at..at + 2].copy_from_slice(&seed.to_be_bytes());
        }
        len
    }
}

/// Why [`Segmenter::new`] refused `frame`, for the counters. Only a
/// refused frame is parsed twice.
fn refusal(frame: &[u8], gso: Gso, max_frame: usize) -> SegError {
    let Some(tcp) = TcpFrame::parse(frame).filter(|t| t.ipv6 == (gso.kind == GsoKind::TcpV6))
    else {
        return SegError::NotTcp;
    };
    let mss = usize::from(gso.size);
    if mss == 0 || tcp.hdr_len + mss > max_frame {
        SegError::BadSize
    } else if (frame.len() - tcp.hdr_len).div_ceil(mss) > MAX_SEGMENTS {
        SegError::TooManySegments
    } else {
        // Segments longer than nic::MAX_FRAME_LEN, or a frame longer
        // than nic::offload::MAX_GSO_FRAME_LEN.
        SegError::BadSize
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
        let at = crate::checksum::locate(&b[..n], crate::checksum::Lengths::Ip).unwrap();
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
        // IPv6 extension headers before TCP are not segmented.
        let mut hbh = tcp_frame(true, 3000);
        hbh[20] = 0;
        let v6 = Gso {
            size: 1428,
            kind: GsoKind::TcpV6,
        };
        assert_eq!(Plan::new(&hbh, v6, 1514), Err(SegError::NotTcp));
        // Jumbo frames allowed or not, segments stay within a plain frame.
        assert_eq!(
            Plan::new(&f, Gso { size: 8000, ..v4 }, 9018),
            Err(SegError::BadSize)
        );
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

#[cfg(test)]
mod seam_tests {
    use super::*;

    #[test]
    fn offload_maps_to_the_uplinks_request_and_back() {
        let o = Offload {
            gso: Some(Gso {
                size: 1448,
                kind: GsoKind::TcpV4,
            }),
            csum: Csum::Partial {
                start: 34,
                offset: 16,
            },
        };
        let t = o.tx();
        assert_eq!(
            t.csum,
            Some(PartialCsum {
                start: 34,
                offset: 16
            })
        );
        assert_eq!(Offload::from_tx(&t), o);
        let v = Offload {
            gso: None,
            csum: Csum::Validated,
        };
        assert_eq!(v.tx(), TxOffload::NONE);
        for k in [GsoKind::TcpV4, GsoKind::TcpV6] {
            assert_eq!(gso_kind(netif_gso_type(k)), Some(k));
        }
        assert_eq!(gso_kind(0), None);
        assert_eq!(gso_kind(3), None);
    }
}
