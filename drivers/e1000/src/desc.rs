//! Legacy receive and transmit descriptors (8254x SDM 3.2.3 and 3.3.3), the
//! TCP/IP context and data descriptors of checksum offload and TCP
//! segmentation (3.3.6, 3.3.7), and what the driver makes of a receive
//! descriptor the device hands back.
use nic::offload::{PartialCsum, TcpFrame, TCP_CSUM_OFFSET};
use nic::{MAX_FRAME_LEN, MIN_FRAME_LEN};

/// Both descriptor kinds are 16 bytes.
pub const DESC_LEN: usize = 16;

// Field offsets inside a legacy receive descriptor.
pub const RX_ADDR: usize = 0;
pub const RX_LENGTH: usize = 8;
pub const RX_STATUS: usize = 12;
pub const RX_ERRORS: usize = 13;

// Field offsets inside a legacy transmit descriptor.
pub const TX_ADDR: usize = 0;
pub const TX_LENGTH: usize = 8;
pub const TX_STATUS: usize = 12;

// RX status bits (3.2.3.1).
/// Descriptor Done.
pub const RXD_STAT_DD: u8 = 1 << 0;
/// End Of Packet.
pub const RXD_STAT_EOP: u8 = 1 << 1;

// RX error bits (3.2.3.2): CRC/alignment, symbol, sequence, carrier
// extension, RX data error. TCP/IP checksum errors (bits 5, 6) only mean
// something with checksum offload, which is off.
pub const RXD_ERR_CE: u8 = 1 << 0;
pub const RXD_ERR_SE: u8 = 1 << 1;
pub const RXD_ERR_SEQ: u8 = 1 << 2;
pub const RXD_ERR_CXE: u8 = 1 << 4;
pub const RXD_ERR_RXE: u8 = 1 << 7;
pub const RXD_ERR_FRAME: u8 = RXD_ERR_CE | RXD_ERR_SE | RXD_ERR_SEQ | RXD_ERR_CXE | RXD_ERR_RXE;

// TX command bits (3.3.3.1): End Of Packet, Insert FCS, Report Status.
pub const TXD_CMD_EOP: u8 = 1 << 0;
pub const TXD_CMD_IFCS: u8 = 1 << 1;
pub const TXD_CMD_RS: u8 = 1 << 3;
/// TX status: Descriptor Done.
pub const TXD_STAT_DD: u8 = 1 << 0;

/// The command of every transmit descriptor: a whole frame, FCS added by
/// the device, status reported so the driver can reclaim the buffer.
pub const TX_CMD_FRAME: u8 = TXD_CMD_EOP | TXD_CMD_IFCS | TXD_CMD_RS;

// Extended transmit descriptors (3.3.6, 3.3.7): the second quadword as one
// little-endian u64. Data: DTALEN 19:0, DTYP 23:20, DCMD 31:24, STA 35:32,
// POPTS 47:40, special 63:48. Context: PAYLEN 19:0, DTYP 23:20, TUCMD 31:24,
// STA 35:32, HDRLEN 47:40, MSS 63:48.
/// DTYP of a data descriptor (a context descriptor's is 0).
pub const TXD_DTYP_DATA: u64 = 1 << 20;
/// DCMD / TUCMD bits shared by both: Report Status, Descriptor Extension.
pub const TXD_CMD_DEXT: u8 = 1 << 5;
/// DCMD: TCP Segmentation Enable (this data belongs to a TSO frame).
pub const TXD_DCMD_TSE: u8 = 1 << 2;
/// TUCMD: the context is TCP (not UDP), IPv4 (not IPv6), and for TSO.
pub const TXD_TUCMD_TCP: u8 = 1 << 0;
pub const TXD_TUCMD_IP: u8 = 1 << 1;
pub const TXD_TUCMD_TSE: u8 = 1 << 2;
/// POPTS: insert the IP checksum, insert the TCP/UDP checksum.
pub const TXD_POPTS_IXSM: u8 = 1 << 0;
pub const TXD_POPTS_TXSM: u8 = 1 << 1;

/// The second quadword of a legacy transmit descriptor for a whole frame
/// of `len` bytes: length, CSO 0, [`TX_CMD_FRAME`], status 0, CSS 0.
pub const fn legacy_tx(len: u16) -> u64 {
    len as u64 | ((TX_CMD_FRAME as u64) << 24)
}

/// The second quadword of a data descriptor for `len` bytes (at most a
/// buffer) of an offloaded frame: extended, FCS added, status reported,
/// TSE for segmentation, EOP on the frame's last; `popts` the checksums to
/// insert (the device reads them from the frame's first data descriptor).
pub const fn data_tx(len: u16, tse: bool, eop: bool, popts: u8) -> u64 {
    let mut cmd = TXD_CMD_DEXT | TXD_CMD_IFCS | TXD_CMD_RS;
    if tse {
        cmd |= TXD_DCMD_TSE;
    }
    if eop {
        cmd |= TXD_CMD_EOP;
    }
    len as u64 | TXD_DTYP_DATA | ((cmd as u64) << 24) | ((popts as u64) << 40)
}

/// A TCP/IP context descriptor (3.3.6): where the checksums start, are
/// stored and end (CSS, CSO, CSE; CSE 0 is "to the end of the frame"), and
/// for TSO the payload length, header length and MSS. Offsets are from
/// the frame's first byte.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxContext {
    pub ipcss: u8,
    pub ipcso: u8,
    pub ipcse: u16,
    pub tucss: u8,
    pub tucso: u8,
    pub tucse: u16,
    /// TSO: TCP payload bytes of the whole frame (20 bits).
    pub paylen: u32,
    /// [`TXD_TUCMD_TCP`], [`TXD_TUCMD_IP`], [`TXD_TUCMD_TSE`]; DEXT and RS
    /// are added by [`TxContext::encode`].
    pub tucmd: u8,
    pub hdr_len: u8,
    pub mss: u16,
}

impl TxContext {
    /// Both quadwords. RS is set, so the device writes back DD here too
    /// and reclaiming can walk every descriptor alike.
    pub const fn encode(&self) -> (u64, u64) {
        let lo = self.ipcss as u64
            | (self.ipcso as u64) << 8
            | (self.ipcse as u64) << 16
            | (self.tucss as u64) << 32
            | (self.tucso as u64) << 40
            | (self.tucse as u64) << 48;
        let cmd = self.tucmd | TXD_CMD_DEXT | TXD_CMD_RS;
        let hi = (self.paylen & 0xf_ffff) as u64
            | (cmd as u64) << 24
            | (self.hdr_len as u64) << 40
            | (self.mss as u64) << 48;
        (lo, hi)
    }

    /// The context of a descriptor pair (the inverse of `encode`, for the
    /// emulated device in the tests).
    #[cfg(test)]
    pub const fn decode(lo: u64, hi: u64) -> Self {
        Self {
            ipcss: lo as u8,
            ipcso: (lo >> 8) as u8,
            ipcse: (lo >> 16) as u16,
            tucss: (lo >> 32) as u8,
            tucso: (lo >> 40) as u8,
            tucse: (lo >> 48) as u16,
            paylen: (hi & 0xf_ffff) as u32,
            tucmd: ((hi >> 24) as u8) & !(TXD_CMD_DEXT | TXD_CMD_RS),
            hdr_len: (hi >> 40) as u8,
            mss: (hi >> 48) as u16,
        }
    }

    /// Segmentation of a checked TCP super-frame of `len` bytes into
    /// `mss` payload bytes per segment, inserting the IPv4 header checksum
    /// (IPv4) and the TCP checksum of every segment. `None` if an offset
    /// does not fit its 8-bit field (cannot happen with the headers
    /// [`TcpFrame::parse`] accepts, but is not assumed).
    pub fn tso(t: &TcpFrame, len: usize, mss: u16) -> Option<Self> {
        let tcp = TXD_TUCMD_TCP | TXD_TUCMD_TSE | if t.ipv6 { 0 } else { TXD_TUCMD_IP };
        let tucso = t.l4 + usize::from(TCP_CSUM_OFFSET);
        let (ipcss, ipcso, ipcse) = if t.ipv6 {
            (t.l3, 0, 0)
        } else {
            (t.l3, t.l3 + 10, t.l4 - 1)
        };
        Some(Self {
            ipcss: u8::try_from(ipcss).ok()?,
            ipcso: u8::try_from(ipcso).ok()?,
            ipcse: u16::try_from(ipcse).ok()?,
            tucss: u8::try_from(t.l4).ok()?,
            tucso: u8::try_from(tucso).ok()?,
            tucse: 0,
            paylen: u32::try_from(len.checked_sub(t.hdr_len)?).ok()?,
            tucmd: tcp,
            hdr_len: u8::try_from(t.hdr_len).ok()?,
            mss,
        })
    }

    /// Checksum insertion alone (`NEEDS_CSUM` semantics: sum from `start`
    /// to the end into `start + offset`). `None` if the offsets do not fit
    /// the 8-bit fields: then it is done in software.
    pub fn csum(c: PartialCsum) -> Option<Self> {
        Some(Self {
            tucss: u8::try_from(c.start).ok()?,
            tucso: u8::try_from(c.field()).ok()?,
            ..Self::default()
        })
    }
}

/// The checksums data descriptors of a TSO frame ask for: the IPv4 header's
/// (IPv4 only) and TCP's.
pub const fn tso_popts(ipv6: bool) -> u8 {
    if ipv6 {
        TXD_POPTS_TXSM
    } else {
        TXD_POPTS_TXSM | TXD_POPTS_IXSM
    }
}

/// Prepares the headers of a TSO super-frame (in the driver's copy) as the
/// device expects them (Linux e1000_tso, and QEMU's xmit_seg, which adds
/// each segment's length to the TCP checksum field): the IPv4 header
/// checksum zero, the TCP checksum field the pseudo-header sum without the
/// length. The device sets lengths, IDs and sequence numbers per segment.
pub fn prepare_tso_headers(t: &TcpFrame, headers: &mut [u8]) {
    if headers.len() < t.hdr_len {
        return;
    }
    if !t.ipv6 {
        headers[t.l3 + 10..t.l3 + 12].fill(0);
    }
    let pseudo = nic::offload::fold(t.pseudo_header_sum(headers, 0));
    let at = t.l4 + usize::from(TCP_CSUM_OFFSET);
    headers[at..at + 2].copy_from_slice(&pseudo.to_be_bytes());
}

/// What to do with one receive descriptor the device handed back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxVerdict {
    /// Not done yet: the device still owns it. Stop here.
    NotDone,
    /// A whole good frame of this many bytes: deliver it.
    Deliver(usize),
    /// A buffer of a frame that spans several buffers, not its last: drop
    /// quietly, the frame is counted once at its end.
    Fragment,
    /// The last buffer of a frame that spanned several (too long for one
    /// buffer): count one drop.
    DropSplit,
    /// The device flagged the frame as bad: count one drop.
    DropError,
    /// Shorter than an Ethernet header: count one drop.
    DropRunt,
    /// Longer than [`MAX_FRAME_LEN`] or the buffer: count one drop.
    DropOversize,
}

/// Judges a receive descriptor from its status, errors and length fields.
///
/// `in_split` says whether earlier descriptors started a frame that has not
/// ended (no EOP yet); the second value returned is the new `in_split`.
/// Every value the device can write gives a verdict: nothing here panics.
pub fn classify_rx(
    status: u8,
    errors: u8,
    length: u16,
    buffer_len: usize,
    in_split: bool,
) -> (RxVerdict, bool) {
    if status & RXD_STAT_DD == 0 {
        return (RxVerdict::NotDone, in_split);
    }
    if status & RXD_STAT_EOP == 0 {
        return (RxVerdict::Fragment, true);
    }
    if in_split {
        return (RxVerdict::DropSplit, false);
    }
    let length = usize::from(length);
    let verdict = if errors & RXD_ERR_FRAME != 0 {
        RxVerdict::DropError
    } else if length < MIN_FRAME_LEN {
        RxVerdict::DropRunt
    } else if length > MAX_FRAME_LEN || length > buffer_len {
        RxVerdict::DropOversize
    } else {
        RxVerdict::Deliver(length)
    };
    (verdict, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use RxVerdict::*;

    const DD: u8 = RXD_STAT_DD;
    const EOP: u8 = RXD_STAT_EOP;

    #[test]
    fn verdict_table() {
        // (status, errors, length, in_split) -> (verdict, in_split after)
        let table = [
            ((0, 0, 60, false), (NotDone, false)),
            ((0, 0, 60, true), (NotDone, true)),
            ((EOP, 0, 60, false), (NotDone, false)),
            ((DD | EOP, 0, 60, false), (Deliver(60), false)),
            ((DD | EOP, 0, 14, false), (Deliver(14), false)),
            ((DD | EOP, 0, 1518, false), (Deliver(1518), false)),
            ((DD | EOP, 0, 13, false), (DropRunt, false)),
            ((DD | EOP, 0, 0, false), (DropRunt, false)),
            ((DD | EOP, 0, 1519, false), (DropOversize, false)),
            ((DD | EOP, 0, u16::MAX, false), (DropOversize, false)),
            ((DD | EOP, RXD_ERR_CE, 60, false), (DropError, false)),
            ((DD | EOP, RXD_ERR_RXE, 60, false), (DropError, false)),
            // Checksum error bits are ignored: offload is off.
            ((DD | EOP, 0x60, 60, false), (Deliver(60), false)),
            ((DD, 0, 2048, false), (Fragment, true)),
            ((DD, 0, 2048, true), (Fragment, true)),
            ((DD | EOP, 0, 100, true), (DropSplit, false)),
            ((DD | EOP, RXD_ERR_CE, 100, true), (DropSplit, false)),
        ];
        for ((status, errors, length, in_split), want) in table {
            assert_eq!(
                classify_rx(status, errors, length, 2048, in_split),
                want,
                "status {status:#x} errors {errors:#x} length {length} in_split {in_split}"
            );
        }
    }

    #[test]
    fn transmit_descriptor_words_have_the_manual_layout() {
        // Legacy: length 60, CMD = EOP|IFCS|RS at byte 11.
        assert_eq!(legacy_tx(60), 0x0b00_003c);
        // Data, first of a TSO frame: DTYP 1, DCMD DEXT|RS|TSE|IFCS, POPTS
        // IXSM|TXSM in byte 13.
        assert_eq!(data_tx(2048, true, false, 3), 0x0300_2e10_0800);
        // The last one adds EOP.
        assert_eq!(data_tx(100, true, true, 3) >> 24 & 0xff, 0x2f);
        let ctx = TxContext {
            ipcss: 14,
            ipcso: 24,
            ipcse: 33,
            tucss: 34,
            tucso: 50,
            tucse: 0,
            paylen: 65_000,
            tucmd: TXD_TUCMD_TCP | TXD_TUCMD_IP | TXD_TUCMD_TSE,
            hdr_len: 54,
            mss: 1460,
        };
        let (lo, hi) = ctx.encode();
        assert_eq!(lo.to_le_bytes(), [14, 24, 33, 0, 34, 50, 0, 0]);
        // PAYLEN 65000 = 0x0fde8, DTYP 0, TUCMD DEXT|RS|TSE|IP|TCP = 0x2f,
        // STA 0, HDRLEN 54, MSS 1460 = 0x05b4.
        assert_eq!(
            hi.to_le_bytes(),
            [0xe8, 0xfd, 0x00, 0x2f, 0, 54, 0xb4, 0x05]
        );
        assert_eq!(TxContext::decode(lo, hi), ctx);
    }

    #[test]
    fn contexts_follow_the_frame_headers() {
        let mut f = vec![0u8; 9000];
        let src = nic::MacAddr([2, 0, 0, 0, 0, 1]);
        nic::offload::tcp_test_frame(&mut f, src, src, false, 1460).unwrap();
        let t = TcpFrame::parse(&f).unwrap();
        let c = TxContext::tso(&t, f.len(), 1460).unwrap();
        assert_eq!((c.ipcss, c.ipcso, c.ipcse), (14, 24, 33));
        assert_eq!((c.tucss, c.tucso, c.tucse), (34, 50, 0));
        assert_eq!((c.paylen, c.hdr_len, c.mss), (9000 - 54, 54, 1460));
        assert_eq!(tso_popts(false), TXD_POPTS_IXSM | TXD_POPTS_TXSM);

        prepare_tso_headers(&t, &mut f);
        assert_eq!(&f[24..26], &[0, 0]);
        // 192.0.2.1 + 192.0.2.2 + protocol 6, no length.
        let want = nic::offload::fold(0xc000 + 0x0201 + 0xc000 + 0x0202 + 6);
        assert_eq!(f[50..52], want.to_be_bytes());

        let c = TxContext::csum(PartialCsum {
            start: 34,
            offset: 16,
        })
        .unwrap();
        assert_eq!(
            (c.tucss, c.tucso, c.tucse, c.tucmd, c.ipcss),
            (34, 50, 0, 0, 0)
        );
        let far = PartialCsum {
            start: 250,
            offset: 16,
        };
        assert_eq!(TxContext::csum(far), None);
    }

    #[test]
    fn never_delivers_more_than_the_buffer() {
        assert_eq!(classify_rx(DD | EOP, 0, 1000, 512, false).0, DropOversize);
    }

    #[test]
    fn every_descriptor_value_gets_a_verdict_within_bounds() {
        for status in 0..=255u8 {
            for errors in [0u8, 1, 0x80, 0xff] {
                for length in [0u16, 13, 14, 1518, 1519, 2048, u16::MAX] {
                    for in_split in [false, true] {
                        if let (Deliver(n), _) = classify_rx(status, errors, length, 2048, in_split)
                        {
                            assert!((MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&n));
                        }
                    }
                }
            }
        }
    }
}
