//! Feature bits (virtio 1.2, 5.1.3 "Feature bits" and 6 "Reserved Feature
//! Bits") and what the driver asks for.

/// VIRTIO_NET_F_CSUM: the device completes partial checksums
/// (`VIRTIO_NET_HDR_F_NEEDS_CSUM`) of frames the driver sends.
pub const CSUM: u64 = 1 << 0;
/// VIRTIO_NET_F_HOST_TSO4 / HOST_TSO6: the device segments TCP super-frames
/// the driver sends (both require CSUM, 5.1.3.1).
pub const HOST_TSO4: u64 = 1 << 11;
pub const HOST_TSO6: u64 = 1 << 12;
/// VIRTIO_NET_F_MAC: config space holds the factory MAC.
pub const MAC: u64 = 1 << 5;
/// VIRTIO_NET_F_MRG_RXBUF: not negotiated; listed for the header length.
pub const MRG_RXBUF: u64 = 1 << 15;
/// VIRTIO_NET_F_STATUS: config space holds the link status.
pub const STATUS: u64 = 1 << 16;
/// VIRTIO_NET_F_CTRL_VQ: the control virtqueue exists.
pub const CTRL_VQ: u64 = 1 << 17;
/// VIRTIO_NET_F_CTRL_RX: promiscuous/all-multicast and the MAC table.
pub const CTRL_RX: u64 = 1 << 18;
/// VIRTIO_NET_F_CTRL_MAC_ADDR: VIRTIO_NET_CTRL_MAC_ADDR_SET.
pub const CTRL_MAC_ADDR: u64 = 1 << 23;
/// VIRTIO_F_VERSION_1: the modern interface, which `PciTransport` speaks.
pub const VERSION_1: u64 = 1 << 32;

/// Everything the driver uses: transmit checksum and segmentation offloads
/// when offered (QEMU offers them only with a backend that takes a
/// `virtio_net_hdr`, a tap; not with socket or dgram netdevs). No receive
/// offloads (GUEST_CSUM, GUEST_TSO*: the NIC traits deliver plain, whole
/// frames), no merged buffers, no indirect descriptors, and no event
/// index: virtio-drivers 0.13's `VirtQueue::should_notify` compares the
/// 16-bit avail index with `avail_event` without wrapping, so kicks would
/// stop after 65536 frames. Notifications are suppressed with the ring
/// flags instead (VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_USED_F_NO_NOTIFY).
pub const WANTED: u64 =
    MAC | STATUS | CTRL_VQ | CTRL_RX | CTRL_MAC_ADDR | VERSION_1 | CSUM | HOST_TSO4 | HOST_TSO6;

/// Without these the driver cannot work at all.
pub const REQUIRED: u64 = MAC | VERSION_1;

/// The features to accept from what the device offers, or the required
/// ones it lacks.
///
/// The control-queue commands depend on the control queue (5.1.3.1), so
/// they are dropped when it is missing.
pub fn negotiate(offered: u64) -> Result<u64, u64> {
    let missing = REQUIRED & !offered;
    if missing != 0 {
        return Err(missing);
    }
    let mut accepted = offered & WANTED;
    if accepted & CTRL_VQ == 0 {
        accepted &= !(CTRL_RX | CTRL_MAC_ADDR);
    }
    if accepted & CSUM == 0 {
        accepted &= !(HOST_TSO4 | HOST_TSO6);
    }
    Ok(accepted)
}

/// Bytes of `struct virtio_net_hdr` before each frame (5.1.6): 12 with
/// VERSION_1 or merged buffers, 10 for a legacy device. This is the header
/// that `VirtIONetRaw::send()` adds itself and `transmit_begin()` does not;
/// here the driver always writes it into the buffer.
pub const fn header_len(features: u64) -> usize {
    if features & (VERSION_1 | MRG_RXBUF) != 0 {
        12
    } else {
        10
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What QEMU 7.2's virtio-net-pci offers by default, less offloads:
    /// enough to check the negotiation keeps exactly what it wants.
    const QEMU: u64 = MAC
        | CSUM
        | STATUS
        | CTRL_VQ
        | CTRL_RX
        | CTRL_MAC_ADDR
        | MRG_RXBUF
        | VERSION_1
        | (1 << 19) // CTRL_VLAN
        | (1 << 28) // INDIRECT_DESC
        | (1 << 29); // EVENT_IDX

    #[test]
    fn keeps_only_what_the_driver_uses() {
        assert_eq!(negotiate(QEMU), Ok(WANTED & !(HOST_TSO4 | HOST_TSO6)));
        // With a tap backend QEMU adds the segmentation offloads.
        assert_eq!(negotiate(QEMU | HOST_TSO4 | HOST_TSO6), Ok(WANTED));
    }

    #[test]
    fn control_commands_go_with_the_control_queue() {
        let plain = MAC | STATUS | VERSION_1 | CSUM;
        assert_eq!(negotiate(QEMU & !CTRL_VQ), Ok(plain));
        let no_rx = WANTED & !(CTRL_RX | HOST_TSO4 | HOST_TSO6);
        assert_eq!(negotiate(QEMU & !CTRL_RX), Ok(no_rx));
    }

    #[test]
    fn segmentation_goes_with_checksums() {
        let offered = (QEMU | HOST_TSO4 | HOST_TSO6) & !CSUM;
        assert_eq!(negotiate(offered).unwrap() & (HOST_TSO4 | HOST_TSO6), 0);
    }

    #[test]
    fn reports_missing_required_features() {
        assert_eq!(negotiate(QEMU & !VERSION_1), Err(VERSION_1));
        assert_eq!(negotiate(0), Err(MAC | VERSION_1));
    }

    #[test]
    fn header_is_12_bytes_on_modern_devices() {
        assert_eq!(header_len(WANTED), 12);
        assert_eq!(header_len(MAC), 10);
        assert_eq!(header_len(MAC | MRG_RXBUF), 12);
    }
}
