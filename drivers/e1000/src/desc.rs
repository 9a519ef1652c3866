//! Legacy receive and transmit descriptors (8254x SDM 3.2.3 and 3.3.3), and
//! what the driver makes of a receive descriptor the device hands back.
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
