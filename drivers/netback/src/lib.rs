//! Xen netback for aggdom: serves guests' netfront devices as the backend
//! of Xen's split network driver, over the [`hypervisor`] traits.
//!
//! - [`Netback`] watches `/local/domain/<self>/backend/vif` and runs the
//!   xenbus backend state machine per vif (Initialising → InitWait →
//!   Connected → Closing → Closed), writes `hotplug-status = connected`
//!   itself, advertises `feature-rx-copy`, `feature-sg` and IPv6 checksum
//!   offload, and reconnects when a frontend restarts or when it finds a
//!   frontend already Connected (aggdom restarted).
//! - Each connected [`Vif`] is a guest port for the datapath:
//!   [`Vif::poll_tx`] lends frames the guest sent, [`Vif::deliver_rx`]
//!   copies a frame into the guest's buffers. Neither allocates.
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
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod backend;
pub mod checksum;
mod config;
mod counters;
mod error;
pub mod ring;
mod rx;
mod tx;
mod vif;
pub mod wire;

pub mod testkit;

#[cfg(test)]
mod tests;

pub use backend::Netback;
pub use config::{Config, FATAL_TX_SLOTS};
pub use counters::{Fatal, RxDrop, TxDrop, VifCounters};
pub use error::{ConnectError, RxError};
pub use vif::{Vif, VifId};
