//! The netif ring entries of io/netif.h, parsed from and encoded into local
//! byte copies of ring slots. Parsing cannot fail (every bit pattern is some
//! request); validation is the caller's, on the parsed copy.

/// Bytes of one TX ring slot: a `netif_tx_request` (the largest member of
/// the TX ring's entry union).
pub const TX_SLOT: usize = 12;
/// Bytes of one RX ring slot: `netif_rx_request` and `netif_rx_response`.
pub const RX_SLOT: usize = 8;

/// `NETTXF_csum_blank`: the TCP/UDP checksum is not filled in.
pub const NETTXF_CSUM_BLANK: u16 = 1 << 0;
/// `NETTXF_data_validated`.
pub const NETTXF_DATA_VALIDATED: u16 = 1 << 1;
/// `NETTXF_more_data`: the frame continues in the next slot.
pub const NETTXF_MORE_DATA: u16 = 1 << 2;
/// `NETTXF_extra_info`: `netif_extra_info` slots follow this one.
pub const NETTXF_EXTRA_INFO: u16 = 1 << 3;

/// `NETRXF_data_validated`: the checksum is known good.
pub const NETRXF_DATA_VALIDATED: u16 = 1 << 0;
/// `NETRXF_csum_blank`: the checksum is partial (the frontend completes it).
pub const NETRXF_CSUM_BLANK: u16 = 1 << 1;
/// `NETRXF_more_data`: the frame continues in the next response.
pub const NETRXF_MORE_DATA: u16 = 1 << 2;
/// `NETRXF_extra_info`: the next RX slot holds a `netif_extra_info`.
pub const NETRXF_EXTRA_INFO: u16 = 1 << 3;

/// `XEN_NETIF_EXTRA_FLAG_MORE`: another extra slot follows.
pub const XEN_NETIF_EXTRA_FLAG_MORE: u8 = 1 << 0;
/// `XEN_NETIF_EXTRA_TYPE_MAX` (io/netif.h, with HASH = 4 and XDP = 5):
/// extra types are 1..MAX.
pub const XEN_NETIF_EXTRA_TYPE_MAX: u8 = 6;

/// `XEN_NETIF_MAX_TX_SIZE`.
pub const XEN_NETIF_MAX_TX_SIZE: usize = 0xffff;
/// An Ethernet header: the shortest frame netback takes or delivers.
pub const ETH_HLEN: usize = 14;
/// `XEN_NETIF_NR_SLOTS_MIN`: the slots per frame every backend must take.
pub const XEN_NETIF_NR_SLOTS_MIN: usize = 18;

/// `NETIF_RSP_DROPPED`.
pub const NETIF_RSP_DROPPED: i16 = -2;
/// `NETIF_RSP_ERROR`.
pub const NETIF_RSP_ERROR: i16 = -1;
/// `NETIF_RSP_OKAY`.
pub const NETIF_RSP_OKAY: i16 = 0;
/// `NETIF_RSP_NULL`: the response to an extra-info slot.
pub const NETIF_RSP_NULL: i16 = 1;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// `netif_tx_request`: a slot of a guest frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxRequest {
    pub gref: u32,
    pub offset: u16,
    pub flags: u16,
    pub id: u16,
    /// In a frame's first slot: the whole frame's length; in the others:
    /// this slot's bytes.
    pub size: u16,
}

impl TxRequest {
    pub fn parse(b: &[u8; TX_SLOT]) -> Self {
        Self {
            gref: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            offset: u16_at(b, 4),
            flags: u16_at(b, 6),
            id: u16_at(b, 8),
            size: u16_at(b, 10),
        }
    }

    pub fn encode(&self) -> [u8; TX_SLOT] {
        let mut b = [0u8; TX_SLOT];
        b[0..4].copy_from_slice(&self.gref.to_le_bytes());
        b[4..6].copy_from_slice(&self.offset.to_le_bytes());
        b[6..8].copy_from_slice(&self.flags.to_le_bytes());
        b[8..10].copy_from_slice(&self.id.to_le_bytes());
        b[10..12].copy_from_slice(&self.size.to_le_bytes());
        b
    }

    pub fn more_data(&self) -> bool {
        self.flags & NETTXF_MORE_DATA != 0
    }
}

/// `netif_extra_info`, overlaying a TX slot: type, flags and six bytes of
/// type-specific data (GSO: size, type, pad, features).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtraInfo {
    pub kind: u8,
    pub flags: u8,
    pub data: [u8; 6],
}

impl ExtraInfo {
    pub fn parse(b: &[u8; TX_SLOT]) -> Self {
        Self {
            kind: b[0],
            flags: b[1],
            data: [b[2], b[3], b[4], b[5], b[6], b[7]],
        }
    }

    pub fn encode(&self) -> [u8; TX_SLOT] {
        let mut b = [0u8; TX_SLOT];
        b[0] = self.kind;
        b[1] = self.flags;
        b[2..8].copy_from_slice(&self.data);
        b
    }

    pub fn more(&self) -> bool {
        self.flags & XEN_NETIF_EXTRA_FLAG_MORE != 0
    }

    /// A GSO extra's `u.gso.size` and `u.gso.type`.
    pub fn gso(&self) -> (u16, u8) {
        (
            u16::from_le_bytes([self.data[0], self.data[1]]),
            self.data[2],
        )
    }

    /// A GSO extra (`XEN_NETIF_EXTRA_TYPE_GSO`), flags and features 0.
    pub fn new_gso(size: u16, gso_type: u8) -> Self {
        let s = size.to_le_bytes();
        Self {
            kind: 1,
            flags: 0,
            data: [s[0], s[1], gso_type, 0, 0, 0],
        }
    }
}

/// `netif_tx_response`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxResponse {
    pub id: u16,
    pub status: i16,
}

impl TxResponse {
    /// The 4 bytes written to the slot; the rest of the slot is untouched.
    pub fn encode(&self) -> [u8; 4] {
        let mut b = [0u8; 4];
        b[0..2].copy_from_slice(&self.id.to_le_bytes());
        b[2..4].copy_from_slice(&self.status.to_le_bytes());
        b
    }

    pub fn parse(b: &[u8; 4]) -> Self {
        Self {
            id: u16_at(b, 0),
            status: u16_at(b, 2) as i16,
        }
    }
}

/// `netif_rx_request`: a buffer the guest posted for a received frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxRequest {
    pub id: u16,
    pub gref: u32,
}

impl RxRequest {
    pub fn parse(b: &[u8; RX_SLOT]) -> Self {
        Self {
            id: u16_at(b, 0),
            gref: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    pub fn encode(&self) -> [u8; RX_SLOT] {
        let mut b = [0u8; RX_SLOT];
        b[0..2].copy_from_slice(&self.id.to_le_bytes());
        b[4..8].copy_from_slice(&self.gref.to_le_bytes());
        b
    }
}

/// `netif_rx_response`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxResponse {
    pub id: u16,
    pub offset: u16,
    pub flags: u16,
    /// Bytes in this slot, or a negative `NETIF_RSP_*`.
    pub status: i16,
}

impl RxResponse {
    pub fn encode(&self) -> [u8; RX_SLOT] {
        let mut b = [0u8; RX_SLOT];
        b[0..2].copy_from_slice(&self.id.to_le_bytes());
        b[2..4].copy_from_slice(&self.offset.to_le_bytes());
        b[4..6].copy_from_slice(&self.flags.to_le_bytes());
        b[6..8].copy_from_slice(&self.status.to_le_bytes());
        b
    }

    pub fn parse(b: &[u8; RX_SLOT]) -> Self {
        Self {
            id: u16_at(b, 0),
            offset: u16_at(b, 2),
            flags: u16_at(b, 4),
            status: u16_at(b, 6) as i16,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_request_layout_matches_netif_h() {
        // gref 0x04030201, offset 0x0605, flags 0x0807, id 0x0a09, size 0x0c0b.
        let b: [u8; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        let r = TxRequest::parse(&b);
        assert_eq!(
            r,
            TxRequest {
                gref: 0x0403_0201,
                offset: 0x0605,
                flags: 0x0807,
                id: 0x0a09,
                size: 0x0c0b
            }
        );
        assert_eq!(r.encode(), b);
        let e = ExtraInfo::parse(&b);
        assert_eq!((e.kind, e.flags, e.data), (1, 2, [3, 4, 5, 6, 7, 8]));
    }

    #[test]
    fn rx_layouts_match_netif_h() {
        let req = RxRequest {
            id: 0x0201,
            gref: 0x0807_0605,
        };
        assert_eq!(req.encode(), [1, 2, 0, 0, 5, 6, 7, 8]);
        assert_eq!(RxRequest::parse(&req.encode()), req);
        let rsp = RxResponse {
            id: 1,
            offset: 2,
            flags: NETRXF_MORE_DATA,
            status: -1,
        };
        assert_eq!(rsp.encode(), [1, 0, 2, 0, 4, 0, 0xff, 0xff]);
        assert_eq!(RxResponse::parse(&rsp.encode()), rsp);
        assert_eq!(
            TxResponse {
                id: 7,
                status: NETIF_RSP_NULL
            }
            .encode(),
            [7, 0, 1, 0]
        );
    }
}
