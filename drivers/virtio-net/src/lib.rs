//! Poll-mode virtio-net driver with the control queue, over the
//! `virtio-drivers` crate.
//!
//! `virtio-drivers` 0.13's `VirtIONet` negotiates features inside its own
//! constructor and never the control queue, so it cannot change the MAC,
//! switch promiscuous mode off or program a MAC table. [`VirtioNetNic`] is
//! a thin device of its own on the crate's public pieces (`Transport`,
//! `VirtQueue`, `PciTransport`) that negotiates VIRTIO_NET_F_CTRL_VQ,
//! CTRL_RX, CTRL_MAC_ADDR, STATUS and MAC, and implements
//! [`nic::NicDatapath`] and [`nic::NicControl`]:
//! - receive and transmit queues of 128 2048-byte buffers in DMA memory
//!   from the kernel's `virtio_drivers::Hal`; every frame starts with the
//!   12-byte `virtio_net_hdr` (VERSION_1), which the driver strips on
//!   receive and writes on transmit: zero for a plain frame, or the
//!   checksum and segmentation request of `queue_tx_offload` when the
//!   device offers VIRTIO_NET_F_CSUM and HOST_TSO4/6 (a super-frame then
//!   takes a chain of up to 33 buffers); without them the request is done
//!   in software (QEMU offers them only with a tap backend);
//! - per batch, not per frame: one kick per `flush_tx` and per `receive`,
//!   and none while the device's VIRTQ_USED_F_NO_NOTIFY says it is busy;
//!   receive buffers go back after the batch; receive interrupts are on
//!   only between `arm_interrupt` and the next frame (VIRTIO_F_EVENT_IDX is
//!   declined: see `features`);
//! - the MAC register as VIRTIO_NET_CTRL_MAC_ADDR_SET;
//! - up to 64 extra unicast addresses as VIRTIO_NET_CTRL_MAC_TABLE_SET;
//! - promiscuous and all-multicast as VIRTIO_NET_CTRL_RX_PROMISC/ALLMULTI
//!   (QEMU starts promiscuous; bring-up turns it off);
//! - link state from config space offset 6 (VIRTIO_NET_S_LINK_UP);
//! - software counters (virtio has no statistics registers).
//!
//! Control commands wait for the device's ack with a bounded spin; QEMU
//! answers during the notify itself. A device that does not answer makes
//! the command fail with `NicError::Timeout` and no further command is sent
//! until `reset`.
//!
//! # Use
//! ```ignore
//! // After PCI enumeration found a 1af4:1000 or 1af4:1041 at `df`:
//! let mut nic = virtio_net::VirtioNetNic::<KernelHal>::from_pci(&mut root, df)?;
//! loop {
//!     nic.receive(32, &mut |frame| { /* frame: &[u8], no virtio header */ });
//!     nic.transmit(&[&frame_a, &frame_b]);
//!     let up = nic.link_up();
//! }
//! ```
//!
//! Without CTRL_VQ (not QEMU's default) the NIC still moves frames but stays
//! promiscuous, and `set_mac`, `set_filter` with entries and promiscuous
//! off fail with `NicError::Unsupported`; `filter_slots()` is then 0.
#![cfg_attr(not(test), no_std)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod ctrl;

mod driver;
mod error;
mod features;
mod hdr;
mod slots;

#[cfg(test)]
mod tests;

/// Where a received frame lies and which buffer a used token carries,
/// public for the fuzz target (tests/fuzz): the device writes both.
pub use driver::rx_frame;
pub use driver::{VirtioNetNic, BUF_LEN, QUEUE_LEN};
pub use error::VirtioNetError;
pub use slots::Outstanding;
