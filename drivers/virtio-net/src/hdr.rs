//! `struct virtio_net_hdr` (virtio 1.2, 5.1.6), the header before every
//! frame in a virtio-net buffer, built from a [`nic::TxOffload`].
use nic::offload::{GsoKind, TcpFrame, TxOffload, TCP_CSUM_OFFSET};

/// VIRTIO_NET_HDR_F_NEEDS_CSUM.
pub const F_NEEDS_CSUM: u8 = 1;
/// VIRTIO_NET_HDR_GSO_NONE / TCPV4 / TCPV6.
pub const GSO_NONE: u8 = 0;
pub const GSO_TCPV4: u8 = 1;
pub const GSO_TCPV6: u8 = 4;

/// The header's fields, in the order they are laid out (little endian).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VirtioNetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VirtioNetHdr {
    /// The header of a plain frame: all zero.
    pub const PLAIN: Self = Self {
        flags: 0,
        gso_type: GSO_NONE,
        hdr_len: 0,
        gso_size: 0,
        csum_start: 0,
        csum_offset: 0,
    };

    /// The header asking the device for `req` on a frame whose TCP headers
    /// (for GSO) are `tcp`. A segmentation request always comes with
    /// NEEDS_CSUM over the TCP header (5.1.6.2: the driver MUST set it).
    pub fn for_request(req: &TxOffload, tcp: Option<&TcpFrame>) -> Self {
        let mut h = Self::PLAIN;
        if let Some(c) = req.csum {
            h.flags = F_NEEDS_CSUM;
            h.csum_start = c.start;
            h.csum_offset = c.offset;
        }
        if let (Some(gso), Some(t)) = (req.gso, tcp) {
            h.flags = F_NEEDS_CSUM;
            h.csum_start = t.l4 as u16;
            h.csum_offset = TCP_CSUM_OFFSET;
            h.gso_type = match gso.kind {
                GsoKind::TcpV4 => GSO_TCPV4,
                GsoKind::TcpV6 => GSO_TCPV6,
            };
            h.gso_size = gso.size;
            h.hdr_len = t.hdr_len as u16;
        }
        h
    }

    /// The header as 12 bytes, `num_buffers` 0 (it means nothing on
    /// transmit); a legacy device without merged buffers takes the first 10.
    pub fn encode(&self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        b
    }

    /// The header at the start of `b` (for the emulated device in tests).
    #[cfg(test)]
    pub fn decode(b: &[u8; 12]) -> Self {
        let le = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Self {
            flags: b[0],
            gso_type: b[1],
            hdr_len: le(2),
            gso_size: le(4),
            csum_start: le(6),
            csum_offset: le(8),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nic::offload::tcp_test_frame;
    use nic::MacAddr;

    #[test]
    fn headers_have_the_spec_layout() {
        let h = VirtioNetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV6,
            hdr_len: 74,
            gso_size: 1440,
            csum_start: 54,
            csum_offset: 16,
        };
        let b = h.encode();
        assert_eq!(b, [1, 4, 74, 0, 0xa0, 0x05, 54, 0, 16, 0, 0, 0]);
        assert_eq!(VirtioNetHdr::decode(&b), h);
        assert_eq!(VirtioNetHdr::PLAIN.encode(), [0; 12]);
    }

    #[test]
    fn requests_become_headers() {
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let mut f = vec![0u8; 5000];
        let req = tcp_test_frame(&mut f, mac, mac, false, 1460).unwrap();
        let t = TcpFrame::parse(&f).unwrap();
        let h = VirtioNetHdr::for_request(&req, Some(&t));
        assert_eq!(
            (h.flags, h.gso_type, h.hdr_len, h.gso_size),
            (F_NEEDS_CSUM, GSO_TCPV4, 54, 1460)
        );
        assert_eq!((h.csum_start, h.csum_offset), (34, 16));
        let csum_only = TxOffload { gso: None, ..req };
        let h = VirtioNetHdr::for_request(&csum_only, None);
        assert_eq!(
            (h.flags, h.gso_type, h.csum_start),
            (F_NEEDS_CSUM, GSO_NONE, 34)
        );
        assert_eq!(
            VirtioNetHdr::for_request(&TxOffload::NONE, None),
            VirtioNetHdr::PLAIN
        );
    }
}
