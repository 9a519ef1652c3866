//! Transmit offloads: what a NIC can finish for a frame (checksum insertion,
//! TCP segmentation), the per-frame request in `virtio_net_hdr` terms
//! ([`TxOffload`]), and the software fallback every NIC gets by default.
//!
//! The request means what `struct virtio_net_hdr` (virtio 1.2, 5.1.6) and
//! Linux's `CHECKSUM_PARTIAL` mean, so netback (Xen's `csum_blank` and GSO
//! extra info) and virtio map onto it one to one:
//! - [`PartialCsum`] is `VIRTIO_NET_HDR_F_NEEDS_CSUM` with `csum_start` and
//!   `csum_offset`: the ones' complement sum from `start` to the end of the
//!   frame goes, complemented, into the 16 bits at `start + offset`, which
//!   hold the pseudo-header sum beforehand (over the frame's own transport
//!   length, as Linux leaves it).
//! - [`Gso`] is `gso_type` TCPV4/TCPV6 with `gso_size`: the frame is a TCP
//!   super-frame (up to [`MAX_GSO_FRAME_LEN`]) to be cut into segments of
//!   at most `size` payload bytes, each with its own IP length, IPv4 ID,
//!   sequence number, flags and complete checksums. `hdr_len` is not
//!   passed: drivers read it from the headers, which they check anyway.
//!
//! Frames are untrusted: [`TcpFrame::parse`] and [`Segmenter::new`] check
//! everything once, after which nothing here can panic.
use crate::{MacAddr, NicDatapath, NicError, MAX_FRAME_LEN, MIN_FRAME_LEN};

/// The longest super-frame a GSO request may carry: the largest IP packet
/// (65535 bytes) behind an Ethernet header with one 802.1Q tag.
pub const MAX_GSO_FRAME_LEN: usize = 18 + 65535;

/// The most segments one super-frame may become, so that the software
/// fallback fits every driver's transmit ring (e1000: 127 free
/// descriptors). 64 KiB at an MSS of 1448 is 46.
pub const MAX_SEGMENTS: usize = 120;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const IPPROTO_TCP: u8 = 6;
/// TCP flags: FIN and PSH only on the last segment, CWR only on the first
/// (as Linux's `tcp_gso_segment`).
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;
/// The TCP checksum field's offset in the TCP header.
pub const TCP_CSUM_OFFSET: u16 = 16;

/// What a NIC finishes itself on transmit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offloads {
    /// Takes [`PartialCsum`] frames (checksum insertion).
    pub csum: bool,
    /// Segments [`GsoKind::TcpV4`] super-frames.
    pub tso4: bool,
    /// Segments [`GsoKind::TcpV6`] super-frames.
    pub tso6: bool,
}

impl Offloads {
    /// Plain frames only (the default of every NIC).
    pub const NONE: Self = Self {
        csum: false,
        tso4: false,
        tso6: false,
    };

    /// Whether the device does all of `req` itself (else the driver falls
    /// back to software for it).
    pub fn covers(&self, req: &TxOffload) -> bool {
        let csum = req.csum.is_none() || self.csum;
        let gso = match req.gso {
            None => true,
            Some(g) => match g.kind {
                GsoKind::TcpV4 => self.tso4,
                GsoKind::TcpV6 => self.tso6,
            },
        };
        csum && gso
    }
}

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: where the checksum is summed from and
/// stored (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartialCsum {
    /// `csum_start`: offset from the frame's first byte.
    pub start: u16,
    /// `csum_offset`: offset of the checksum field from `start` (16 for
    /// TCP, 6 for UDP).
    pub offset: u16,
}

impl PartialCsum {
    /// The checksum field's offset in the frame.
    pub fn field(&self) -> usize {
        usize::from(self.start) + usize::from(self.offset)
    }

    /// Whether the summed range and the field lie in a frame of `len`
    /// bytes.
    pub fn fits(&self, len: usize) -> bool {
        usize::from(self.start) < len && self.field() + 2 <= len
    }
}

/// `gso_type`: which segmentation a super-frame asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GsoKind {
    /// `VIRTIO_NET_HDR_GSO_TCPV4`.
    TcpV4,
    /// `VIRTIO_NET_HDR_GSO_TCPV6`.
    TcpV6,
}

/// A super-frame's segmentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gso {
    pub kind: GsoKind,
    /// `gso_size`: TCP payload bytes per segment (the MSS).
    pub size: u16,
}

/// The offload request that travels with one frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxOffload {
    /// The transport checksum is partial and must be completed. With
    /// `gso` it may be left out: every segment gets complete checksums.
    pub csum: Option<PartialCsum>,
    /// The frame is a TCP super-frame to segment.
    pub gso: Option<Gso>,
}

impl TxOffload {
    /// A plain frame: nothing to finish.
    pub const NONE: Self = Self {
        csum: None,
        gso: None,
    };
}

/// Where the headers of a checked Ethernet / IPv4-or-IPv6 / TCP frame are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpFrame {
    /// Offset of the IP header.
    pub l3: usize,
    /// Offset of the TCP header.
    pub l4: usize,
    /// Offset of the TCP payload: every header's bytes.
    pub hdr_len: usize,
    pub ipv6: bool,
}

impl TcpFrame {
    /// Checks `frame` is TCP over IPv4 (no fragment) or IPv6 (TCP as the
    /// first next header), behind Ethernet with at most one 802.1Q tag,
    /// with every header inside the frame. IP length fields are not
    /// trusted: segmentation and checksums go by the frame's length.
    pub fn parse(frame: &[u8]) -> Option<Self> {
        let be16 = |at: usize| -> Option<u16> {
            Some(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]))
        };
        let mut l3 = 14;
        let mut ethertype = be16(12)?;
        if ethertype == ETHERTYPE_VLAN {
            ethertype = be16(16)?;
            l3 = 18;
        }
        let (l4, ipv6) = match ethertype {
            ETHERTYPE_IPV4 => {
                let vihl = *frame.get(l3)?;
                let ihl = usize::from(vihl & 0x0f) * 4;
                let frag = be16(l3 + 6)?;
                // More fragments, or a fragment offset: not a whole segment.
                if vihl >> 4 != 4 || ihl < 20 || frag & 0x3fff != 0 {
                    return None;
                }
                if *frame.get(l3 + 9)? != IPPROTO_TCP {
                    return None;
                }
                (l3 + ihl, false)
            }
            ETHERTYPE_IPV6 => {
                if *frame.get(l3)? >> 4 != 6 || *frame.get(l3 + 6)? != IPPROTO_TCP {
                    return None;
                }
                (l3 + 40, true)
            }
            _ => return None,
        };
        let doff = usize::from(*frame.get(l4 + 12)? >> 4) * 4;
        let hdr_len = l4 + doff;
        if doff < 20 || hdr_len > frame.len() {
            return None;
        }
        Some(Self {
            l3,
            l4,
            hdr_len,
            ipv6,
        })
    }

    /// Whether `frame`'s IPv4 header checksum (if IPv4) and TCP checksum
    /// verify, with the frame's own length as the TCP length. `frame` is
    /// the one [`TcpFrame::parse`] took.
    pub fn checksums_ok(&self, frame: &[u8]) -> bool {
        let ip = self.ipv6 || fold(sum(&frame[self.l3..self.l4], 0)) == 0xffff;
        let tcp = sum(
            &frame[self.l4..],
            self.pseudo_header_sum(frame, frame.len() - self.l4),
        );
        ip && fold(tcp) == 0xffff
    }

    /// The ones' complement sum of the pseudo-header (RFC 793 / RFC 8200
    /// 8.1) for a TCP segment of `tcp_len` bytes, unfolded; `tcp_len` 0
    /// gives the sum without the length, as e1000 TSO wants it.
    pub fn pseudo_header_sum(&self, frame: &[u8], tcp_len: usize) -> u64 {
        let addrs = if self.ipv6 {
            &frame[self.l3 + 8..self.l3 + 40]
        } else {
            &frame[self.l3 + 12..self.l3 + 20]
        };
        sum(addrs, u64::from(IPPROTO_TCP) + tcp_len as u64)
    }
}

/// Adds `data` to a ones' complement sum as big-endian 16-bit words (an odd
/// last byte padded with zero, RFC 1071). Fold with [`fold`].
///
/// Eight bytes at a time, as two 32-bit words: since 2^16 = 1 modulo
/// 0xffff, their sum folds to what the 16-bit words' does, and every
/// received segment a vif coalesces is summed, under TCG too, where a
/// loop turn per 16-bit word costs. (A u64 cannot overflow: 2^33 per
/// eight bytes.)
pub fn sum(data: &[u8], mut acc: u64) -> u64 {
    let mut quads = data.chunks_exact(8);
    for q in &mut quads {
        let w = u64::from_be_bytes([q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7]]);
        acc += (w >> 32) + (w & 0xffff_ffff);
    }
    let mut words = quads.remainder().chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folds a sum to 16 bits (not complemented).
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Completes a partial checksum in place, as a device does for
/// `NEEDS_CSUM`. `Err(Offload)` when the field is not inside the frame.
pub fn complete_checksum(frame: &mut [u8], c: PartialCsum) -> Result<(), NicError> {
    if !c.fits(frame.len()) {
        return Err(NicError::Offload);
    }
    let (start, at) = (usize::from(c.start), c.field());
    let csum = !fold(sum(&frame[start..], 0));
    frame[at..at + 2].copy_from_slice(&csum.to_be_bytes());
    Ok(())
}

/// A checked super-frame and how it is cut: segment `i` carries payload
/// bytes `i * mss ..` and all of the headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segmenter {
    pub tcp: TcpFrame,
    mss: usize,
    payload: usize,
    count: usize,
}

impl Segmenter {
    /// Checks `frame` against `gso`: TCP over the IP version the kind
    /// names, a non-zero MSS whose segments fit [`MAX_FRAME_LEN`], an IP
    /// packet of at most 65535 bytes (so at most [`MAX_GSO_FRAME_LEN`]
    /// with a tag), and at most [`MAX_SEGMENTS`] segments.
    pub fn new(frame: &[u8], gso: Gso) -> Result<Self, NicError> {
        let tcp = TcpFrame::parse(frame).ok_or(NicError::Offload)?;
        let mss = usize::from(gso.size);
        let kind_ok = tcp.ipv6 == (gso.kind == GsoKind::TcpV6);
        if !kind_ok || mss == 0 || tcp.hdr_len + mss > MAX_FRAME_LEN {
            return Err(NicError::Offload);
        }
        // The IP header's length fields cannot say more: a longer
        // super-frame could not be made consistent for a device
        // (netback's `Plan::normalise`, TSO) without truncating them.
        // `parse` put `l3` inside the frame.
        if frame.len() - tcp.l3 > 0xffff {
            return Err(NicError::Offload);
        }
        let payload = frame.len() - tcp.hdr_len;
        let count = payload.div_ceil(mss).max(1);
        if count > MAX_SEGMENTS {
            return Err(NicError::Offload);
        }
        Ok(Self {
            tcp,
            mss,
            payload,
            count,
        })
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// Payload bytes in all segments together.
    pub fn payload(&self) -> usize {
        self.payload
    }

    pub fn mss(&self) -> usize {
        self.mss
    }

    /// Bytes of segment `i` (headers and payload), 0 past the last.
    pub fn len(&self, i: usize) -> usize {
        if i >= self.count {
            return 0;
        }
        let from = i * self.mss;
        self.tcp.hdr_len + self.mss.min(self.payload - from)
    }

    /// Never true: a super-frame is at least one segment.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes all segments put on the wire together.
    pub fn wire_bytes(&self) -> usize {
        self.count * self.tcp.hdr_len + self.payload
    }

    /// Writes segment `i` of `frame` (the frame `new` checked) into `out`,
    /// which must be `len(i)` bytes; anything else leaves `out` alone.
    pub fn write(&self, frame: &[u8], i: usize, out: &mut [u8]) {
        let len = self.len(i);
        if len == 0 || out.len() != len || frame.len() != self.tcp.hdr_len + self.payload {
            return;
        }
        let t = self.tcp;
        let from = t.hdr_len + i * self.mss;
        out[..t.hdr_len].copy_from_slice(&frame[..t.hdr_len]);
        out[t.hdr_len..].copy_from_slice(&frame[from..from + (len - t.hdr_len)]);
        let ip_len = len - t.l3;
        if t.ipv6 {
            let payload_len = (ip_len - 40) as u16;
            out[t.l3 + 4..t.l3 + 6].copy_from_slice(&payload_len.to_be_bytes());
        } else {
            out[t.l3 + 2..t.l3 + 4].copy_from_slice(&(ip_len as u16).to_be_bytes());
            let id = u16::from_be_bytes([out[t.l3 + 4], out[t.l3 + 5]]).wrapping_add(i as u16);
            out[t.l3 + 4..t.l3 + 6].copy_from_slice(&id.to_be_bytes());
            out[t.l3 + 10..t.l3 + 12].fill(0);
            let csum = !fold(sum(&out[t.l3..t.l4], 0));
            out[t.l3 + 10..t.l3 + 12].copy_from_slice(&csum.to_be_bytes());
        }
        let seq = u32::from_be_bytes([out[t.l4 + 4], out[t.l4 + 5], out[t.l4 + 6], out[t.l4 + 7]]);
        let seq = seq.wrapping_add((i * self.mss) as u32);
        out[t.l4 + 4..t.l4 + 8].copy_from_slice(&seq.to_be_bytes());
        if i + 1 < self.count {
            out[t.l4 + 13] &= !(TCP_FIN | TCP_PSH);
        }
        if i > 0 {
            out[t.l4 + 13] &= !TCP_CWR;
        }
        let at = t.l4 + usize::from(TCP_CSUM_OFFSET);
        out[at..at + 2].fill(0);
        let tcp_len = len - t.l4;
        let acc = sum(&out[t.l4..], t.pseudo_header_sum(out, tcp_len));
        out[at..at + 2].copy_from_slice(&(!fold(acc)).to_be_bytes());
    }
}

/// The software fallback behind [`NicDatapath::queue_tx_offload`]: a
/// super-frame cut into segments queued with `queue_tx` (all or none), a
/// partial checksum completed in the driver's buffer. Drivers call it for
/// whatever their device cannot do.
pub fn queue_in_software<N: NicDatapath + ?Sized>(
    nic: &mut N,
    frame: &[u8],
    req: &TxOffload,
) -> Result<(), NicError> {
    if let Some(gso) = req.gso {
        let seg = Segmenter::new(frame, gso)?;
        if nic.tx_space() < seg.count() {
            return Err(NicError::TxFull);
        }
        for i in 0..seg.count() {
            nic.queue_tx(seg.len(i), &mut |buf| seg.write(frame, i, buf))?;
        }
        return Ok(());
    }
    match req.csum {
        None => nic.queue_tx(frame.len(), &mut |buf| buf.copy_from_slice(frame)),
        Some(c) => {
            // Checked before anything is queued, so `fill` cannot fail.
            if !c.fits(frame.len()) {
                return Err(NicError::Offload);
            }
            nic.queue_tx(frame.len(), &mut |buf| {
                buf.copy_from_slice(frame);
                let _ = complete_checksum(buf, c);
            })
        }
    }
}

/// Writes a TCP super-frame for tests and the console's `tso` command into
/// `buf` (its whole length): Ethernet `src` → `dst`, 192.0.2.1:40000 →
/// 192.0.2.2:5001 (or 2001:db8::1 → 2001:db8::2), sequence 1000, ACK|PSH,
/// payload bytes counting up from 0, and the TCP checksum field holding
/// the pseudo-header sum, as a [`PartialCsum`] frame from Linux would.
/// Returns the request that sends it as segments of `mss`, or `None` if
/// `buf` cannot hold the headers.
pub fn tcp_test_frame(
    buf: &mut [u8],
    src: MacAddr,
    dst: MacAddr,
    ipv6: bool,
    mss: u16,
) -> Option<TxOffload> {
    let l4 = if ipv6 { 54 } else { 34 };
    if buf.len() < l4 + 20 || buf.len() < MIN_FRAME_LEN {
        return None;
    }
    buf.fill(0);
    buf[..6].copy_from_slice(&dst.0);
    buf[6..12].copy_from_slice(&src.0);
    let ip_len = (buf.len() - 14).min(0xffff) as u16;
    if ipv6 {
        buf[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        buf[14] = 0x60;
        buf[18..20].copy_from_slice(&ip_len.saturating_sub(40).to_be_bytes());
        buf[20] = IPPROTO_TCP;
        buf[21] = 64;
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        a[15] = 1;
        buf[22..38].copy_from_slice(&a);
        a[15] = 2;
        buf[38..54].copy_from_slice(&a);
    } else {
        buf[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        buf[14] = 0x45;
        buf[16..18].copy_from_slice(&ip_len.to_be_bytes());
        buf[18..20].copy_from_slice(&0x1234u16.to_be_bytes());
        buf[20] = 0x40; // don't fragment
        buf[22] = 64;
        buf[23] = IPPROTO_TCP;
        buf[26..30].copy_from_slice(&[192, 0, 2, 1]);
        buf[30..34].copy_from_slice(&[192, 0, 2, 2]);
        let csum = !fold(sum(&buf[14..34], 0));
        buf[24..26].copy_from_slice(&csum.to_be_bytes());
    }
    buf[l4..l4 + 2].copy_from_slice(&40000u16.to_be_bytes());
    buf[l4 + 2..l4 + 4].copy_from_slice(&5001u16.to_be_bytes());
    buf[l4 + 4..l4 + 8].copy_from_slice(&1000u32.to_be_bytes());
    buf[l4 + 12] = 5 << 4;
    buf[l4 + 13] = 0x18; // PSH, ACK
    buf[l4 + 14..l4 + 16].copy_from_slice(&0xffffu16.to_be_bytes());
    for (k, b) in buf[l4 + 20..].iter_mut().enumerate() {
        *b = k as u8;
    }
    let tcp = TcpFrame::parse(buf)?;
    let pseudo = fold(tcp.pseudo_header_sum(buf, buf.len() - l4));
    let at = l4 + usize::from(TCP_CSUM_OFFSET);
    buf[at..at + 2].copy_from_slice(&pseudo.to_be_bytes());
    Some(TxOffload {
        csum: Some(PartialCsum {
            start: l4 as u16,
            offset: TCP_CSUM_OFFSET,
        }),
        gso: Some(Gso {
            kind: if ipv6 { GsoKind::TcpV6 } else { GsoKind::TcpV4 },
            size: mss,
        }),
    })
}

/// Whether a TCP frame's IPv4 header checksum (if IPv4) and TCP checksum
/// verify, with the frame's own length as the TCP length: for tests of
/// drivers and devices that finish [`tcp_test_frame`]'s frames. False for
/// anything [`TcpFrame::parse`] refuses.
pub fn tcp_checksums_ok(frame: &[u8]) -> bool {
    TcpFrame::parse(frame).is_some_and(|t| t.checksums_ok(frame))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FakeNic, NicControl};
    use alloc::vec;

    #[test]
    fn sum_folds_as_rfc_1071s_word_by_word_sum() {
        let word_by_word = |d: &[u8], mut acc: u64| {
            for (i, b) in d.iter().enumerate() {
                acc += u64::from(*b) << if i % 2 == 0 { 8 } else { 0 };
            }
            fold(acc)
        };
        let mut x: u32 = 1;
        let data: Vec<u8> = (0..3000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        for len in (0..40).chain([1447, 1448, 1500, 2999, 3000]) {
            for start in [0, 1, 3] {
                let d = &data[start..start + len.min(data.len() - start)];
                for seed in [0, 6, 0x1_2345] {
                    assert_eq!(fold(sum(d, seed)), word_by_word(d, seed), "{len} {start}");
                }
            }
        }
        assert_eq!(fold(sum(&[0xff; 64], 0)), 0xffff);
        assert_eq!(fold(sum(&[0; 64], 0)), 0);
    }
    use alloc::vec::Vec;

    const A: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 1]);
    const B: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 2]);

    /// RFC 1071 the slow way, byte pairs into a u32, as a check on `sum`.
    fn rfc1071(parts: &[&[u8]]) -> u16 {
        let bytes: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        let mut s: u32 = 0;
        for pair in bytes.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            let lo = pair.get(1).map_or(0, |&b| u32::from(b));
            s += hi | lo;
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    /// Whether a segment's IPv4 header and TCP checksums verify.
    fn checksums_ok(f: &[u8]) -> bool {
        let t = TcpFrame::parse(f).unwrap();
        let tcp = &f[t.l4..];
        let len = (tcp.len() as u16).to_be_bytes();
        let pseudo: Vec<u8> = if t.ipv6 {
            let mut p = f[t.l3 + 8..t.l3 + 40].to_vec();
            p.extend_from_slice(&[0, 0, len[0], len[1], 0, 0, 0, IPPROTO_TCP]);
            p
        } else {
            let mut p = f[t.l3 + 12..t.l3 + 20].to_vec();
            p.extend_from_slice(&[0, IPPROTO_TCP, len[0], len[1]]);
            p
        };
        let ip_ok = t.ipv6 || rfc1071(&[&f[t.l3..t.l4]]) == 0;
        ip_ok && rfc1071(&[&pseudo, tcp]) == 0
    }

    fn super_frame(len: usize, ipv6: bool, mss: u16) -> (Vec<u8>, TxOffload) {
        let mut f = vec![0; len];
        let req = tcp_test_frame(&mut f, A, B, ipv6, mss).unwrap();
        (f, req)
    }

    #[test]
    fn tcp_checksums_ok_agrees_with_an_independent_check() {
        for ipv6 in [false, true] {
            let (mut f, req) = super_frame(700, ipv6, 1448);
            assert!(!tcp_checksums_ok(&f), "a partial checksum does not verify");
            complete_checksum(&mut f, req.csum.unwrap()).unwrap();
            assert!(checksums_ok(&f) && tcp_checksums_ok(&f));
            f[600] ^= 1;
            assert!(!checksums_ok(&f) && !tcp_checksums_ok(&f));
        }
        assert!(!tcp_checksums_ok(&[0u8; 60]), "not TCP");
    }

    #[test]
    fn segments_carry_the_payload_in_order_with_their_own_headers() {
        for ipv6 in [false, true] {
            // The MSS of a 1500-byte MTU.
            let mss = if ipv6 { 1440 } else { 1460 };
            let (f, req) = super_frame(20_000, ipv6, mss as u16);
            let seg = Segmenter::new(&f, req.gso.unwrap()).unwrap();
            let hdr = seg.tcp.hdr_len;
            assert_eq!(hdr, if ipv6 { 74 } else { 54 });
            let payload = 20_000 - hdr;
            assert_eq!(seg.count(), payload.div_ceil(mss));
            let mut joined = Vec::new();
            for i in 0..seg.count() {
                let mut out = vec![0; seg.len(i)];
                seg.write(&f, i, &mut out);
                let last = i + 1 == seg.count();
                assert!(out.len() <= MAX_FRAME_LEN);
                assert_eq!(out.len() - hdr, if last { payload % mss } else { mss });
                assert!(checksums_ok(&out), "segment {i} (ipv6 {ipv6})");
                let t = seg.tcp;
                let seq = u32::from_be_bytes(out[t.l4 + 4..t.l4 + 8].try_into().unwrap());
                assert_eq!(seq, 1000 + (i * mss) as u32);
                let flags = out[t.l4 + 13];
                assert_eq!(flags & TCP_PSH != 0, last, "PSH only on the last");
                if ipv6 {
                    let plen = u16::from_be_bytes([out[t.l3 + 4], out[t.l3 + 5]]);
                    assert_eq!(usize::from(plen), out.len() - t.l3 - 40);
                } else {
                    let tot = u16::from_be_bytes([out[t.l3 + 2], out[t.l3 + 3]]);
                    assert_eq!(usize::from(tot), out.len() - t.l3);
                    let id = u16::from_be_bytes([out[t.l3 + 4], out[t.l3 + 5]]);
                    assert_eq!(id, 0x1234 + i as u16);
                }
                assert_eq!(out[..12], f[..12]);
                joined.extend_from_slice(&out[hdr..]);
            }
            assert_eq!(joined, f[hdr..]);
            assert_eq!(seg.wire_bytes(), 20_000 + (seg.count() - 1) * hdr);
        }
    }

    #[test]
    fn a_short_super_frame_is_one_segment_and_a_tag_is_carried() {
        let (f, req) = super_frame(300, false, 1448);
        let seg = Segmenter::new(&f, req.gso.unwrap()).unwrap();
        assert_eq!((seg.count(), seg.len(0), seg.len(1)), (1, 300, 0));
        // The same frame behind an 802.1Q tag.
        let mut tagged = f[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        tagged.extend_from_slice(&f[12..]);
        let seg = Segmenter::new(&tagged, req.gso.unwrap()).unwrap();
        assert_eq!(seg.tcp.l3, 18);
        let mut out = vec![0; seg.len(0)];
        seg.write(&tagged, 0, &mut out);
        assert!(checksums_ok(&out));
    }

    #[test]
    fn requests_that_do_not_fit_the_frame_are_refused() {
        let (f, req) = super_frame(3000, false, 1000);
        let gso = req.gso.unwrap();
        let v6 = Gso {
            kind: GsoKind::TcpV6,
            ..gso
        };
        let bad = |frame: &[u8], g: Gso| Segmenter::new(frame, g).err();
        assert_eq!(bad(&f, v6), Some(NicError::Offload), "kind mismatch");
        assert_eq!(bad(&f, Gso { size: 0, ..gso }), Some(NicError::Offload));
        assert_eq!(bad(&f, Gso { size: 1500, ..gso }), Some(NicError::Offload));
        assert_eq!(
            bad(&f, Gso { size: 10, ..gso }),
            Some(NicError::Offload),
            "too many"
        );
        let mut udp = f.clone();
        udp[23] = 17;
        assert_eq!(bad(&udp, gso), Some(NicError::Offload));
        let mut frag = f.clone();
        frag[20] = 0x20; // more fragments
        assert_eq!(bad(&frag, gso), Some(NicError::Offload));
        let mut arp = f.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(bad(&arp, gso), Some(NicError::Offload));
        // Headers cut short, at every length.
        for len in 0..54 {
            assert_eq!(bad(&f[..len], gso), Some(NicError::Offload), "len {len}");
        }
        let mut huge_doff = f.clone();
        huge_doff[34 + 12] = 0xf0;
        assert!(bad(&huge_doff[..80], gso).is_some());
        let big = vec![0u8; MAX_GSO_FRAME_LEN + 1];
        assert!(bad(&big, gso).is_some());
        // The largest IP packet is taken; one byte more is not (the zeroed
        // frame above fails on its ethertype, whatever its length).
        for ipv6 in [false, true] {
            let (at_most, req) = super_frame(14 + 0xffff, ipv6, 1400);
            let ok = Segmenter::new(&at_most, req.gso.unwrap());
            assert!(ok.is_ok(), "ipv6 {ipv6}: {ok:?}");
            let (over, req) = super_frame(14 + 0x10000, ipv6, 1400);
            let err = Segmenter::new(&over, req.gso.unwrap()).err();
            assert_eq!(err, Some(NicError::Offload), "ipv6 {ipv6}");
        }
        // Writing a segment into a wrong-sized buffer does nothing.
        let seg = Segmenter::new(&f, gso).unwrap();
        let mut out = vec![0xaa; seg.len(0) + 1];
        seg.write(&f, 0, &mut out);
        assert!(out.iter().all(|&b| b == 0xaa));
    }

    #[test]
    fn a_partial_checksum_is_completed_as_a_device_would() {
        let (mut f, req) = super_frame(600, true, 1448);
        let c = req.csum.unwrap();
        assert!(!checksums_ok(&f));
        complete_checksum(&mut f, c).unwrap();
        assert!(checksums_ok(&f));
        let outside = PartialCsum {
            start: 590,
            offset: 9,
        };
        assert_eq!(complete_checksum(&mut f, outside), Err(NicError::Offload));
        let past = PartialCsum {
            start: 600,
            offset: 0,
        };
        assert!(!past.fits(600));
    }

    #[test]
    fn the_software_fallback_queues_all_segments_or_none() {
        let (f, req) = super_frame(10_000, false, 1448);
        let mut nic = FakeNic::new(A);
        nic.set_tx_capacity(3);
        assert_eq!(nic.queue_tx_offload(&f, &req), Err(NicError::TxFull));
        assert_eq!(nic.queued_tx(), 0);
        nic.set_tx_capacity(64);
        nic.queue_tx_offload(&f, &req).unwrap();
        nic.flush_tx();
        let sent = nic.take_sent();
        assert_eq!(sent.len(), 7);
        assert!(sent.iter().all(|s| checksums_ok(s) && s.len() <= 1502));
        assert_eq!(nic.counters().tx_frames, 7);

        // Checksum only: one frame, completed.
        let (mut small, req) = super_frame(200, false, 1448);
        let csum_only = TxOffload { gso: None, ..req };
        nic.queue_tx_offload(&small, &csum_only).unwrap();
        nic.flush_tx();
        complete_checksum(&mut small, req.csum.unwrap()).unwrap();
        assert_eq!(nic.take_sent(), vec![small]);
        let nowhere = TxOffload {
            csum: Some(PartialCsum {
                start: 300,
                offset: 16,
            }),
            gso: None,
        };
        assert_eq!(
            nic.queue_tx_offload(&f[..200], &nowhere),
            Err(NicError::Offload)
        );
        assert_eq!(nic.queued_tx(), 0);
    }

    #[test]
    fn offloads_cover_what_the_device_claims() {
        let (_, req) = super_frame(3000, true, 1448);
        let all = Offloads {
            csum: true,
            tso4: true,
            tso6: true,
        };
        assert!(all.covers(&req));
        assert!(!Offloads { tso6: false, ..all }.covers(&req));
        assert!(!Offloads::NONE.covers(&req));
        assert!(Offloads::NONE.covers(&TxOffload::NONE));
        let csum_only = TxOffload { gso: None, ..req };
        assert!(Offloads {
            csum: true,
            ..Offloads::NONE
        }
        .covers(&csum_only));
    }

    #[test]
    fn a_fake_with_offloads_keeps_the_super_frame_and_its_request() {
        let (f, req) = super_frame(30_000, false, 1448);
        let mut nic = FakeNic::new(A).with_offloads(Offloads {
            csum: true,
            tso4: true,
            tso6: false,
        });
        nic.queue_tx_offload(&f, &req).unwrap();
        nic.flush_tx();
        assert_eq!(nic.sent(), std::slice::from_ref(&f));
        assert_eq!(nic.sent_offloads(), &[req]);
        // IPv6 it cannot: segmented in software.
        let (f6, req6) = super_frame(3000, true, 1000);
        nic.queue_tx_offload(&f6, &req6).unwrap();
        nic.flush_tx();
        assert_eq!(nic.sent().len(), 4);
        assert_eq!(nic.sent_offloads()[1..], [TxOffload::NONE; 3]);
    }
}
