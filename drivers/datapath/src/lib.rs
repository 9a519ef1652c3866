//! The datapath: every frame from a guest port, an uplink or the domain's
//! own IP stack goes through the aggregation engine, and the engine's
//! decision is carried out here on the NICs (claim steps 1-11).
//!
//! Poll mode, one CPU: the kernel calls [`Datapath::poll`] in its loop. Each
//! poll takes a bounded batch from every source, rewrites nothing itself
//! (the engine edits frames in identity mode), queues to the chosen NICs and
//! flushes each NIC once. Nothing is allocated per frame: frames are copied
//! once into a scratch buffer the engine may edit, and the own stack's
//! frames wait in fixed rings.
//!
//! MAC register and filter programming follow the engine's moves: after a
//! move both uplinks are reprogrammed to the identities they now hold and a
//! learning frame leaves the new holder, so the switch outside relearns the
//! MAC at once ([0034], DESIGN.md).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod datapath;
mod frame_queue;
mod guest_port;
mod setup;
mod tap;

pub use datapath::{Datapath, DatapathCounters, GuestInfo, SetupError};
pub use frame_queue::FrameQueue;
pub use guest_port::{GuestPort, NicPort, PortError};
pub use setup::{apply_binding, build, own_addresses, Built, Role, OWN_QUEUE_FRAMES};
pub use tap::{Tap, TapDir, TapPort};

#[cfg(test)]
mod tests;
