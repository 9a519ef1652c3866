//! Control virtqueue commands (virtio 1.2, 5.1.6.5 "Control Virtqueue"):
//! their byte layout, apart from any queue so it can be tested alone.
//!
//! A command is `struct virtio_net_ctrl_hdr { u8 class; u8 command; }`,
//! then command-specific data, then one byte the device writes:
//! `virtio_net_ctrl_ack` (0 = VIRTIO_NET_OK, 1 = VIRTIO_NET_ERR). The
//! driver puts the header and each data part in descriptors of their own
//! and the ack in a device-writable one, the layout every device
//! (including old QEMUs that insisted on it) accepts.
use nic::MacAddr;

/// VIRTIO_NET_CTRL_RX: receive-mode switches, each one byte, 0 or 1.
pub const CLASS_RX: u8 = 0;
pub const RX_PROMISC: u8 = 0;
pub const RX_ALLMULTI: u8 = 1;

/// VIRTIO_NET_CTRL_MAC: the MAC filter table and the primary MAC.
pub const CLASS_MAC: u8 = 1;
pub const MAC_TABLE_SET: u8 = 0;
pub const MAC_ADDR_SET: u8 = 1;

/// virtio_net_ctrl_ack values.
pub const ACK_OK: u8 = 0;
#[cfg_attr(not(test), allow(dead_code))]
pub const ACK_ERR: u8 = 1;

/// Entries in QEMU's MAC filter table (MAC_TABLE_ENTRIES in
/// hw/net/virtio-net.c). A longer table makes QEMU accept every unicast
/// frame, so the driver never sends one.
pub const MAC_TABLE_ENTRIES: usize = 64;

/// The largest data any command carries: a full unicast table and an empty
/// multicast one.
#[cfg(test)]
pub const MAX_DATA_LEN: usize = 4 + 6 * MAC_TABLE_ENTRIES + 4;

/// One control command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// VIRTIO_NET_CTRL_RX_PROMISC.
    Promiscuous(bool),
    /// VIRTIO_NET_CTRL_RX_ALLMULTI.
    AllMulticast(bool),
    /// VIRTIO_NET_CTRL_MAC_ADDR_SET: the primary MAC, 6 bytes.
    SetMac(MacAddr),
    /// VIRTIO_NET_CTRL_MAC_TABLE_SET: the unicast entries given, no
    /// multicast entries. At most [`MAC_TABLE_ENTRIES`].
    SetTable(&'a [MacAddr]),
}

impl Command<'_> {
    /// The `virtio_net_ctrl_hdr`.
    pub fn header(&self) -> [u8; 2] {
        match self {
            Self::Promiscuous(_) => [CLASS_RX, RX_PROMISC],
            Self::AllMulticast(_) => [CLASS_RX, RX_ALLMULTI],
            Self::SetMac(_) => [CLASS_MAC, MAC_ADDR_SET],
            Self::SetTable(_) => [CLASS_MAC, MAC_TABLE_SET],
        }
    }

    /// Writes the data parts one after another into `out` and returns their
    /// lengths (one or two parts). `None` if `out` is too short or a table
    /// is longer than [`MAC_TABLE_ENTRIES`]; nothing here panics.
    pub fn encode(&self, out: &mut [u8]) -> Option<Parts> {
        match *self {
            Self::Promiscuous(on) | Self::AllMulticast(on) => {
                *out.first_mut()? = u8::from(on);
                Some(Parts::one(1))
            }
            Self::SetMac(mac) => {
                out.get_mut(..6)?.copy_from_slice(&mac.0);
                Some(Parts::one(6))
            }
            Self::SetTable(macs) => {
                if macs.len() > MAC_TABLE_ENTRIES {
                    return None;
                }
                let uni = encode_mac_table(macs, out)?;
                let multi = encode_mac_table(&[], out.get_mut(uni..)?)?;
                Some(Parts {
                    lens: [uni, multi],
                    count: 2,
                })
            }
        }
    }
}

/// The lengths of a command's data parts, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parts {
    lens: [usize; 2],
    count: usize,
}

impl Parts {
    fn one(len: usize) -> Self {
        Self {
            lens: [len, 0],
            count: 1,
        }
    }

    pub fn lens(&self) -> &[usize] {
        &self.lens[..self.count]
    }

    #[cfg(test)]
    pub fn total(&self) -> usize {
        self.lens().iter().sum()
    }
}

/// `struct virtio_net_ctrl_mac { le32 entries; u8 macs[entries][6]; }`.
/// Returns the bytes written, `None` if `out` is too short.
pub fn encode_mac_table(macs: &[MacAddr], out: &mut [u8]) -> Option<usize> {
    let len = 4 + 6 * macs.len();
    let out = out.get_mut(..len)?;
    out[..4].copy_from_slice(&(macs.len() as u32).to_le_bytes());
    for (chunk, mac) in out[4..].chunks_exact_mut(6).zip(macs) {
        chunk.copy_from_slice(&mac.0);
    }
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(cmd: Command) -> (Vec<u8>, Vec<usize>) {
        let mut buf = [0xeeu8; MAX_DATA_LEN];
        let parts = cmd.encode(&mut buf).unwrap();
        (buf[..parts.total()].to_vec(), parts.lens().to_vec())
    }

    #[test]
    fn rx_mode_commands() {
        assert_eq!(Command::Promiscuous(false).header(), [0, 0]);
        assert_eq!(Command::AllMulticast(true).header(), [0, 1]);
        assert_eq!(encoded(Command::Promiscuous(false)), (vec![0], vec![1]));
        assert_eq!(encoded(Command::Promiscuous(true)), (vec![1], vec![1]));
        assert_eq!(encoded(Command::AllMulticast(true)), (vec![1], vec![1]));
    }

    #[test]
    fn mac_addr_set_is_the_six_bytes_in_wire_order() {
        let mac = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        assert_eq!(Command::SetMac(mac).header(), [1, 1]);
        assert_eq!(encoded(Command::SetMac(mac)), (mac.0.to_vec(), vec![6]));
    }

    #[test]
    fn mac_table_set_is_a_unicast_table_then_an_empty_multicast_table() {
        let a = MacAddr([0x02, 0, 0, 0, 0, 1]);
        let b = MacAddr([0x02, 0, 0, 0, 0, 2]);
        assert_eq!(Command::SetTable(&[]).header(), [1, 0]);
        #[rustfmt::skip]
        let want = vec![
            2, 0, 0, 0,             // le32 entries = 2
            0x02, 0, 0, 0, 0, 1,    // a
            0x02, 0, 0, 0, 0, 2,    // b
            0, 0, 0, 0,             // le32 entries = 0 (multicast)
        ];
        assert_eq!(encoded(Command::SetTable(&[a, b])), (want, vec![16, 4]));
        assert_eq!(encoded(Command::SetTable(&[])), (vec![0; 8], vec![4, 4]));
    }

    #[test]
    fn a_full_table_fits_and_a_longer_one_is_refused() {
        let full = [MacAddr([2, 0, 0, 0, 0, 9]); MAC_TABLE_ENTRIES];
        let (bytes, lens) = encoded(Command::SetTable(&full));
        assert_eq!(lens, vec![4 + 6 * 64, 4]);
        assert_eq!(bytes.len(), MAX_DATA_LEN);
        assert_eq!(&bytes[..4], &64u32.to_le_bytes());
        let over = [MacAddr([2, 0, 0, 0, 0, 9]); MAC_TABLE_ENTRIES + 1];
        assert_eq!(Command::SetTable(&over).encode(&mut [0; 1024]), None);
    }

    #[test]
    fn short_buffers_are_refused_not_overrun() {
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        assert_eq!(Command::Promiscuous(true).encode(&mut []), None);
        assert_eq!(Command::SetMac(mac).encode(&mut [0; 5]), None);
        assert_eq!(Command::SetTable(&[mac]).encode(&mut [0; 13]), None);
        assert!(Command::SetTable(&[mac]).encode(&mut [0; 14]).is_some());
    }
}
