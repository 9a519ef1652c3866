//! Packet capture: `capture <port> [count|seconds] [filters]` picks the
//! frames ([`Spec`]), a [`Capture`] keeps them in a bounded ring (what
//! does not fit is dropped and counted), and the ring reads as a classic
//! pcap file ([`pcap`]) for `aggctl capture -w` and `GET /capture`.
//!
//! Pure: the kernel hands in frames with a timestamp from the datapath's
//! tap; nothing here knows a clock or a NIC.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod filter;
pub mod pcap;
mod ring;
mod spec;

pub use filter::{Filter, FilterError};
pub use ring::{Capture, CaptureCounters, Dir, Stopped};
pub use spec::{Limit, Port, Spec, MAX_COUNT, MAX_SECONDS};
