//! Poll-mode driver for the Intel 82540EM (PCI 8086:100e), the e1000 that
//! QEMU and Xen's device model emulate, written from the 8254x Software
//! Developer's Manual and checked against QEMU's model (hw/net/e1000.c).
//!
//! [`E1000`] implements [`nic::NicDatapath`] and [`nic::NicControl`]:
//! - legacy receive and transmit descriptor rings of 128 entries with
//!   2048-byte buffers, all in DMA memory from the `virtio_drivers::Hal`
//!   the kernel provides (one allocation of 1 page for the rings and one of
//!   128 pages for the buffers);
//! - the primary MAC in receive-address slot 0 (RAL0/RAH0) and up to 15
//!   extra unicast addresses in slots 1..15, each slot computed by
//!   [`rar_encode`] from a [`nic::MacAddr`] and written invalid-first;
//! - promiscuous mode as RCTL.UPE|MPE, all-multicast as RCTL.MPE;
//! - link state from STATUS.LU;
//! - the statistics registers folded into [`nic::Counters`] (missed frames,
//!   receive and transmit errors, the device's own good-frame counts);
//! - the factory MAC from RAR0, or from the EEPROM through EERD;
//! - checksum insertion and IPv4 TCP segmentation (TSO) through TCP/IP
//!   context descriptors, for `queue_tx_offload`: one context descriptor
//!   and the frame in as many 2048-byte data descriptors as it needs (a
//!   64 KiB super-frame takes 33); IPv6 segmentation is done in software
//!   (QEMU's model gets the IPv6 payload length wrong);
//! - per batch, not per frame: one TDT write per `flush_tx`, one RDT write
//!   per `receive`, transmit completions from the descriptors' DD bits (no
//!   register read), IMS written once per reset, and ITR limiting
//!   interrupts to one per 128 us.
//!
//! Runt, oversized, errored and multi-buffer receive descriptors are
//! counted in `rx_drops` and never delivered; nothing the device writes
//! into a descriptor can make the driver panic or loop.
//!
//! # Use
//! ```ignore
//! // After PCI enumeration found an 8086:100e at `df`:
//! let mut nic = e1000::E1000::<KernelHal>::from_pci(&mut root, df)?;
//! // or, knowing BAR0 and with decoding + bus mastering already on:
//! // let mut nic = unsafe { e1000::E1000::<KernelHal>::new(bar0_phys, bar0_len)? };
//! loop {
//!     nic.receive(32, &mut |frame| { /* frame: &[u8], no FCS */ });
//!     nic.transmit(&[&frame_a, &frame_b]);
//!     let up = nic.link_up();
//! }
//! ```
//!
//! # QEMU specifics worth knowing
//! - Every write of RCTL makes QEMU hold back received frames for one
//!   second (its `flush_queue_timer`): after bring-up, after `reset` and
//!   after each promiscuous/all-multicast change. Frames are queued by
//!   QEMU, not lost. MAC and filter changes do not touch RCTL.
//! - QEMU reruns a 500 ms autonegotiation each time the link comes back,
//!   so the driver turns PHY autonegotiation off at bring-up (see
//!   [`E1000::set_autonegotiation`]) and sees a link return at once.
//! - QEMU ignores CTRL.RST; bring-up and `reset` therefore program every
//!   register they rely on rather than trusting reset values.
//!
//! Unsafe code is confined to [`Mmio`] (volatile register access) and the
//! DMA region (descriptor and buffer memory); everything else is safe and
//! runs on the host against an emulated device in the tests.
#![cfg_attr(not(test), no_std)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod desc;
mod driver;
mod error;
mod mmio;
mod regs;
mod ring;
mod stats;

#[cfg(test)]
mod tests;

/// The receive descriptor verdict, public for the fuzz target
/// (tests/fuzz): the device writes status, errors and length.
pub use desc::{classify_rx, RxVerdict};
pub use driver::{BUF_LEN, DEVICE_ID, E1000, RX_RING_LEN, TX_RING_LEN, VENDOR_ID};
pub use error::E1000Error;
pub use mmio::{Mmio, Registers};
pub use regs::{rar_decode, rar_encode};
