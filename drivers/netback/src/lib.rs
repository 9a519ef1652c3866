//! Xen netback for aggdom: serves guests' netfront devices as the backend
//! of Xen's split network driver, over the [`hypervisor`] traits.
//!
//! - [`Netback`] watches `/local/domain/<self>/backend/vif` and runs the
//!   xenbus backend state machine per vif (Initialising → InitWait →
//!   Connected → Closing → Closed), writes `hotplug-status = connected`
//!   itself, advertises what [`Config`] turns on, and reconnects when a
//!   frontend restarts or when it finds a frontend already Connected
//!   (aggdom restarted).
//! - Each connected [`Vif`] is a guest port for the datapath:
//!   [`Vif::poll_tx`] lends frames the guest sent (at most
//!   `max_frame_len` bytes, checksums complete: GSO frames are segmented
//!   here, [`segment`]), [`Vif::deliver_rx`] copies a frame into the
//!   guest's buffers, and [`Vif::rx_batch`] a loop turn's frames with
//!   one grant copy and at most one notification per queue, a flow's
//!   in-order TCP segments joined into one GSO frame for a frontend that
//!   takes GSO (`coalesce`).
//!   [`Vif::poll_tx_offload`] and
//!   [`Vif::deliver_rx_offload`] carry [`segment::Offload`] metadata for a
//!   datapath whose uplinks segment and checksum themselves. None of them
//!   allocates.
//! - With several queues, TX is taken from every queue and RX goes to the
//!   queue the frame's flow hashes to. The vif's `rate` key limits guest
//!   TX ([`Rate`]).
//! - The guest controls its rings, grant refs and xenstore keys, so all of
//!   it is untrusted: each ring slot is copied out once ([`ring`]) and
//!   parsed ([`wire`]) before it is checked; indices and sizes use checked
//!   arithmetic; data moves only by grant copy from or to the frontend's
//!   own domain, so a bad grant ref fails instead of reaching another
//!   guest. Bad frames are counted drops ([`TxDrop`], [`RxDrop`]); ring
//!   violations disconnect the vif ([`Fatal`]).
//!
//! [`testkit`] is a netfront simulator over [`hypervisor::FakeHypervisor`],
//! well-behaved or malicious, for tests here and in the crates that use
//! netback, and the fuzz entry point.
//!
//! # Using it
//! ```
//! use hypervisor::{FakeHypervisor, XenbusState};
//! use netback::{testkit, Config, Netback, VifId};
//!
//! let mut hv = FakeHypervisor::new(1); // aggdom is domain 1
//! let mut nb = Netback::new(&mut hv, Config::DEFAULT).unwrap();
//! // xl creates vif 0 of guest 5; netback probes it (InitWait).
//! let mut guest = testkit::create_vif(&mut hv, 1, 5, 0, "00:16:3e:00:00:05", "10.0.0.5");
//! nb.poll_control(&mut hv);
//! // The guest's netfront publishes its rings; netback connects.
//! guest.connect(&mut hv);
//! nb.poll_control(&mut hv);
//! assert_eq!(guest.backend_state(&hv), XenbusState::Connected);
//!
//! let vif = nb.vif_mut(VifId { frontend: 5, handle: 0 }).unwrap();
//! assert_eq!(vif.ips(), [("10.0.0.5".parse::<core::net::IpAddr>().unwrap(), 32)]);
//! guest.send(&mut hv, &[0xab; 60], 4096, 0);
//! assert_eq!(vif.poll_tx(&mut hv, |frame| assert_eq!(frame.len(), 60)), 1);
//! guest.post_rx(&mut hv, 1);
//! vif.deliver_rx(&mut hv, &[0xcd; 64]).unwrap();
//! assert_eq!(vif.counters().rx_frames, 1);
//! ```
//! The poll loop calls [`Netback::poll_control`] and, for each connected
//! vif, `poll_tx` and `deliver_rx` (or `rx_batch`); it learns of (dis)connections from
//! [`Vif::is_connected`] and [`VifCounters::connects`].
//!
//! # Xenstore keys
//! In the backend directory `/local/domain/<self>/backend/vif/<domid>/<handle>`:
//! - read (written by the toolstack): `frontend`, `frontend-id`, `online`,
//!   `mac`, `ip` (space-separated addresses), `rate` (`<bytes>,<usec>`,
//!   re-read whenever it changes), `mtu` (xl `mtu=`: kept if this backend
//!   carries it, else the vif is refused with an `error` node), and
//!   `state` when the toolstack itself sets Closing to detach the vif;
//! - written: `state`, `hotplug-status = connected`, `feature-sg = 1`,
//!   `feature-rx-copy = 1`, `feature-rx-flip = 0`,
//!   `feature-gso-tcpv4`/`feature-gso-tcpv6` (= [`Config::gso`]),
//!   `feature-ipv6-csum-offload = 1`, `feature-multicast-control = 0`,
//!   `feature-split-event-channels` (= [`Config::split_event_channels`]),
//!   `multi-queue-max-queues` (= [`Config::max_queues`]), and `mtu`
//!   (= [`Config::mtu`]) when the toolstack wrote none.
//!
//! In the frontend directory: `state`, `request-rx-copy` (must be 1),
//! `feature-sg` (multi-slot RX frames), `feature-gso-tcpv4`/`-tcpv6` (GSO
//! frames on RX, if netback offers GSO), `feature-no-csum-offload` and
//! `feature-ipv6-csum-offload` (partial checksums on RX),
//! `feature-rx-notify` (not required: aggdom polls; see
//! [`Vif::rx_notify`]), `multi-queue-num-queues` (1 if absent, at most
//! `max_queues`); and per queue, in the frontend directory for one queue
//! or in `queue-<n>/` for several: `tx-ring-ref`, `rx-ring-ref`, and
//! `event-channel` or (split, if offered) `event-channel-tx` with
//! `event-channel-rx`. Multi-page rings are refused.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod backend;
pub mod checksum;
mod coalesce;
mod config;
mod counters;
mod error;
mod rate;
pub mod ring;
mod rx;
pub mod segment;
mod snapshot;
mod tx;
mod vif;
pub mod wire;

pub mod testkit;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_coalesce;
#[cfg(test)]
mod tests_offload;
#[cfg(test)]
mod tests_rx_batch;
#[cfg(test)]
mod tests_xl;

pub use backend::{Netback, EVENTS_PER_POLL};
pub use config::{Config, FATAL_TX_SLOTS, MAX_QUEUES};
pub use counters::{Fatal, RxDrop, TxDrop, VifCounters};
pub use error::{ConnectError, RxError};
pub use rate::Rate;
pub use rx::{RxBatch, RxDelivered, RX_BATCH_OPS};
pub use vif::{Vif, VifId, UNPLUG_GRACE_NS};
