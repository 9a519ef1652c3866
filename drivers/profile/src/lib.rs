//! aggdom's always-on cycle profile, the part that needs no hardware.
//!
//! - [`Slot`]: cycles and calls of one profiled scope, in a static; the
//!   caller reads the TSC (two reads and an add per scope, no allocation).
//! - [`Lap`]: splits the main loop's time among its phases with one TSC
//!   read per phase, every cycle charged to exactly one phase.
//! - [`Report`]: the console's `profile` reply, one line per item.
//!
//! The TSC itself is read by the crates that own the CPU (the kernel's
//! clock, the Xen hypercall shim), so this crate has no `unsafe`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

mod report;
mod slot;

pub use report::{Item, Report};
pub use slot::{Counts, Lap, Slot};
