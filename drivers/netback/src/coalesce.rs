//! Receive coalescing (Linux's GRO, for one flow at a time): a flow's
//! in-order TCP segments that reach a vif in one batch go to a frontend
//! that takes GSO as one super-frame with a GSO extra, instead of one
//! frame each.
//!
//! Why: a frame costs the guest a response, an skb and a trip through its
//! TCP stack, and each two of them an ACK that aggdom must grant-copy off
//! its TX ring (bench-8's profile: most of aggdom's copy hypercalls for
//! dom0->guest TCP carried those ACKs). A Linux driver domain gets the
//! same from its NIC driver's GRO before its netback.
//!
//! What may join, as Linux's `tcp_gro_receive` decides it: segments with
//! exactly the same headers (Ethernet and tag, IP but for the lengths,
//! the IPv4 ID and header checksum, TCP but for the sequence number, the
//! checksum and PSH), flags ACK with at most PSH, the next sequence
//! number, the next IPv4 ID (or the same one with DF), no more payload
//! than the first (a shorter one or one with PSH ends the super-frame),
//! and a checksum that verifies: the super-frame goes with
//! `NETRXF_data_validated`, so a corrupt segment must never be hidden
//! inside one. A segment held alone goes as it came, validated.
//!
//! Pure and allocation-free after [`Coalescer::new`]: [`Segment::parse`]
//! checks every offset once, after which nothing here can panic.
use alloc::vec;
use alloc::vec::Vec;

use nic::offload::{TcpFrame, MAX_SEGMENTS};

use crate::segment::{Csum, Gso, GsoKind, Offload, Plan};
use crate::wire::XEN_NETIF_MAX_TX_SIZE;

const TCP_PSH: u8 = 0x08;
const TCP_ACK: u8 = 0x10;

/// A TCP segment that may start or join a super-frame, its headers
/// checked and its checksums verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    tcp: TcpFrame,
    seq: u32,
    /// IPv4 ID (0 for IPv6).
    id: u16,
    /// IPv4 "don't fragment" (IDs may then repeat).
    df: bool,
    push: bool,
    payload: usize,
}

impl Segment {
    /// `frame` as a segment that may be coalesced: TCP over IPv4 or IPv6
    /// whose IP length matches the frame (no padding, nothing cut), with
    /// payload, flags ACK and at most PSH, no longer than `max_frame`,
    /// and an IPv4 header checksum and TCP checksum that verify. `None`
    /// for anything else (the frame then goes alone, as before).
    pub(crate) fn parse(frame: &[u8], max_frame: usize) -> Option<Self> {
        if frame.len() > max_frame {
            return None;
        }
        let tcp = TcpFrame::parse(frame)?;
        let be16 = |at: usize| u16::from_be_bytes([frame[at], frame[at + 1]]);
        let (l3, l4) = (tcp.l3, tcp.l4);
        // `parse` checked every header lies inside the frame.
        let (id, df) = if tcp.ipv6 {
            if usize::from(be16(l3 + 4)) + 40 + l3 != frame.len() {
                return None;
            }
            (0, false)
        } else {
            if usize::from(be16(l3 + 2)) + l3 != frame.len() {
                return None;
            }
            (be16(l3 + 4), be16(l3 + 6) & 0x4000 != 0)
        };
        let flags = frame[l4 + 13];
        let payload = frame.len() - tcp.hdr_len;
        if flags & !TCP_PSH != TCP_ACK || payload == 0 {
            return None;
        }
        if !tcp.checksums_ok(frame) {
            return None;
        }
        Some(Self {
            tcp,
            seq: u32::from_be_bytes([frame[l4 + 4], frame[l4 + 5], frame[l4 + 6], frame[l4 + 7]]),
            id,
            df,
            push: flags & TCP_PSH != 0,
            payload,
        })
    }

    pub(crate) fn kind(&self) -> GsoKind {
        if self.tcp.ipv6 {
            GsoKind::TcpV6
        } else {
            GsoKind::TcpV4
        }
    }
}

/// One super-frame being built: the first segment's bytes, then the
/// payload of each segment that joined it.
pub(crate) struct Coalescer {
    /// [`XEN_NETIF_MAX_TX_SIZE`] bytes (empty in a [`Default`] one).
    buf: Vec<u8>,
    /// Bytes held; 0 when nothing is.
    len: usize,
    /// The first segment (its headers are `buf[..hdr_len]`).
    first: Segment,
    segments: usize,
    next_seq: u32,
    last_id: u16,
    /// The last segment ended the super-frame (PSH, or short).
    closed: bool,
}

impl Default for Coalescer {
    /// Holds nothing and takes nothing (no buffer): a placeholder.
    fn default() -> Self {
        Self {
            buf: Vec::new(),
            len: 0,
            first: Segment {
                tcp: TcpFrame {
                    l3: 0,
                    l4: 0,
                    hdr_len: 0,
                    ipv6: false,
                },
                seq: 0,
                id: 0,
                df: false,
                push: false,
                payload: 0,
            },
            segments: 0,
            next_seq: 0,
            last_id: 0,
            closed: true,
        }
    }
}

impl Coalescer {
    /// With its buffer for the longest super-frame a frontend takes.
    pub(crate) fn new() -> Self {
        Self {
            buf: vec![0; XEN_NETIF_MAX_TX_SIZE],
            ..Self::default()
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Holds `frame` (parsed as `seg`) as the start of a super-frame;
    /// false (nothing held) if one is held already or it does not fit.
    pub(crate) fn start(&mut self, frame: &[u8], seg: &Segment) -> bool {
        let Some(dst) = self.buf.get_mut(..frame.len()) else {
            return false;
        };
        if self.len != 0 {
            return false;
        }
        dst.copy_from_slice(frame);
        self.len = frame.len();
        self.first = *seg;
        self.segments = 1;
        self.next_seq = seg.seq.wrapping_add(seg.payload as u32);
        self.last_id = seg.id;
        self.closed = seg.push;
        true
    }

    /// Appends `frame`'s payload (parsed as `seg`) to the held
    /// super-frame if it continues it (see the module documentation) and
    /// the super-frame stays within `max_len` bytes; false, with nothing
    /// changed, if not.
    pub(crate) fn append(&mut self, frame: &[u8], seg: &Segment, max_len: usize) -> bool {
        let f = &self.first;
        let joins = self.len != 0
            && !self.closed
            && seg.tcp == f.tcp
            && seg.seq == self.next_seq
            && seg.payload <= f.payload
            && (f.tcp.ipv6
                || seg.id == self.last_id.wrapping_add(1)
                || seg.df && seg.id == self.last_id)
            && self.segments < MAX_SEGMENTS
            && self.len + seg.payload <= self.buf.len().min(max_len)
            && same_headers(&self.buf[..f.tcp.hdr_len], frame, &f.tcp);
        if !joins {
            return false;
        }
        let hdr = f.tcp.hdr_len;
        let flags_at = f.tcp.l4 + 13;
        self.buf[self.len..self.len + seg.payload].copy_from_slice(&frame[hdr..]);
        self.len += seg.payload;
        self.segments += 1;
        self.next_seq = seg.seq.wrapping_add(seg.payload as u32);
        self.last_id = seg.id;
        if seg.push {
            self.buf[flags_at] |= TCP_PSH;
        }
        self.closed = seg.push || seg.payload < f.payload;
        true
    }

    /// Lets go of the held frame: a lone segment as it came (checksum
    /// validated); several as one super-frame, its IP lengths, IPv4
    /// header checksum and partial TCP checksum made consistent
    /// ([`Plan::normalise`]), with a GSO request of the first segment's
    /// payload. `max_frame` is the frontend's longest frame. `None` if
    /// nothing is held.
    pub(crate) fn take(&mut self, max_frame: usize) -> Option<(&[u8], Offload)> {
        let len = core::mem::take(&mut self.len);
        if len == 0 {
            return None;
        }
        let frame = &mut self.buf[..len];
        if self.segments == 1 {
            let off = Offload {
                gso: None,
                csum: Csum::Validated,
            };
            return Some((frame, off));
        }
        let gso = Gso {
            kind: self.first.kind(),
            // At most a frame's length: `parse` took it from one.
            size: self.first.payload as u16,
        };
        // A plan it refuses goes anyway: the delivery counts the drop.
        let csum = match Plan::new(frame, gso, max_frame) {
            Ok(plan) => {
                plan.normalise(frame);
                plan.csum()
            }
            Err(_) => Csum::Unknown,
        };
        Some((
            frame,
            Offload {
                gso: Some(gso),
                csum,
            },
        ))
    }
}

/// Whether `frame`'s headers are `held`'s but for the fields each segment
/// has its own of: IP lengths, IPv4 ID and header checksum, TCP sequence
/// number, checksum and PSH. Both have headers at `tcp`.
fn same_headers(held: &[u8], frame: &[u8], tcp: &TcpFrame) -> bool {
    let (l3, l4, h) = (tcp.l3, tcp.l4, tcp.hdr_len);
    let Some(frame) = frame.get(..h) else {
        return false;
    };
    if held.len() != h {
        return false;
    }
    let eq = |r: core::ops::Range<usize>| held[r.clone()] == frame[r];
    let ip = if tcp.ipv6 {
        // Version, class and flow label; next header, hop limit, addresses.
        eq(0..l3 + 4) && eq(l3 + 6..l4)
    } else {
        // Version to TOS; fragment bits, TTL, protocol; addresses, options.
        eq(0..l3 + 2) && eq(l3 + 6..l3 + 10) && eq(l3 + 12..l4)
    };
    // Ports; ACK number and data offset; flags but PSH; window; urgent
    // pointer and options.
    ip && eq(l4..l4 + 4)
        && eq(l4 + 8..l4 + 13)
        && (held[l4 + 13] | TCP_PSH) == (frame[l4 + 13] | TCP_PSH)
        && eq(l4 + 14..l4 + 16)
        && eq(l4 + 18..h)
}
