//! The Xen platform layer of aggdom: everything that talks to Xen itself.
//!
//! - [`early_init`]: CPUID detection ("XenVMMXenVMM" at 0x40000000 +
//!   n·0x100), the hypercall page (MSR from leaf base + 2) and the PV
//!   console ring; no heap needed.
//! - [`Xen::new`]: shared_info mapped with `XENMEM_add_to_physmap`, the
//!   xenstore ring from the HVM params, our domid; then [`Xen`] implements
//!   [`hypervisor::Hypervisor`] for netback: grant table v1 (batched copy,
//!   map/unmap onto frames of our own), 2-level event channels polled from
//!   shared_info, and a non-blocking xenstore client (requests queued and
//!   answered in later pumps, watches, resynchronisation after corruption).
//!   The main loop sleeps with [`Xen::clear_events`] / [`Xen::block_until`].
//! - [`console`]: the PV console as a second console beside COM1;
//!   [`shutdown`]: `SCHEDOP_shutdown`.
//! - [`profile`]: cycles and calls of every hypercall, by kind, counted in
//!   the one place hypercalls are issued (the console's `profile`).
//!
//! Unsafe code of aggdom that touches Xen lives here and only here: the
//! hypercall shim ([`hypercall`]), raw shared pages ([`page`]), the MSR
//! write, and the atomic pending-bit clear. Ring arithmetic, xenstore
//! message framing and copy splitting are pure and host-tested.
//!
//! Memory assumption: guest-physical == virtual (aggdom identity-maps the
//! low 4 GiB), so a local frame number is an address >> 12.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod abi;
pub mod console;
pub mod cpuid;
pub mod evtchn;
pub mod grant;
pub mod hypercall;
pub mod page;
pub mod physdev;
mod platform;
pub mod profile;
pub mod ring;
pub mod time;
pub mod xenstore;
pub mod xs_wire;

pub use cpuid::XenCpuid;
pub use grant::{GrantStats, MappedPage};
pub use platform::{early_init, hvm_param, is_xen, shutdown, InitError, StoreRing, Xen};
pub use xenstore::{XsClient, XsStats, XsTransport, PRIVATE_TOKEN_PREFIX, REQUEST_TIMEOUT_NS};
