//! The NIC interface of aggdom: what every uplink driver offers the rest of
//! the domain, and a fake NIC for host tests.
//!
//! Two traits, kept apart as the datapath and the control plane are kept
//! apart in the rest of aggdom:
//!
//! - [`NicDatapath`] moves Ethernet frames (without FCS) in batches and never
//!   allocates: [`NicDatapath::receive`] lends each received frame to a
//!   closure straight from the driver's receive buffer;
//!   [`NicDatapath::queue_tx`] lets the caller write a frame straight into the
//!   driver's transmit buffer (e.g. while rewriting its source MAC), and
//!   [`NicDatapath::flush_tx`] hands everything queued to the device with one
//!   doorbell; [`NicDatapath::transmit`] copies ready-made frames.
//!   [`NicDatapath::receive_in_place`] lends received frames mutably, so a
//!   caller that rewrites them (MAC steering) copies each frame once, from
//!   the receive buffer into a transmit buffer. [`NicDatapath::offloads`]
//!   and [`NicDatapath::queue_tx_offload`] take checksum and TCP
//!   segmentation requests in `virtio_net_hdr` terms ([`offload`]), done
//!   by the device when it can and in software otherwise.
//! - [`NicControl`] is the MAC register, the unicast receive filter, the
//!   promiscuous and all-multicast switches, link state, counters and reset.
//!
//! [`Nic`] is both, for `dyn Nic` tables of mixed drivers.
//!
//! # The receive filter contract
//! Every driver accepts exactly these destinations (see [`RxFilter::accepts`]):
//! its primary MAC ([`NicControl::mac`]), the broadcast address, the unicast
//! entries set by [`NicControl::set_filter`], every multicast address when
//! all-multicast is on, and everything when promiscuous is on. After
//! construction and after [`NicControl::reset`] a NIC holds its factory MAC,
//! no filter entries, and both switches off.
//!
//! # Frames
//! Frames are Ethernet frames from the destination MAC to the end of the
//! payload: no preamble, no FCS, no virtio header. Their length is between
//! [`MIN_FRAME_LEN`] and [`MAX_FRAME_LEN`]; drivers count anything else as a
//! drop and never deliver it.
//!
//! [`FakeNic`] implements both traits in memory and models the filter and the
//! link, for tests of the crates that drive NICs.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod counters;
mod error;
mod fake;
mod filter;
mod mac;
pub mod offload;
mod traits;

pub use counters::Counters;
pub use error::NicError;
pub use fake::FakeNic;
pub use filter::RxFilter;
pub use mac::{MacAddr, ParseMacError};
pub use offload::{Gso, GsoKind, Offloads, PartialCsum, TxOffload};
pub use traits::{Nic, NicControl, NicDatapath};

/// The shortest frame a driver delivers or sends: one Ethernet header.
pub const MIN_FRAME_LEN: usize = 14;

/// The longest frame a driver delivers or sends: 1500 bytes of payload, the
/// Ethernet header and one 802.1Q tag, without FCS.
pub const MAX_FRAME_LEN: usize = 1518;
