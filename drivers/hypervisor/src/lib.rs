//! The hypervisor seam of aggdom: what a Xen backend (netback) needs from
//! Xen, as traits, with the ABI types they speak and a fake Xen beside them.
//!
//! Three small traits, one per Xen service, and [`Hypervisor`] for all three:
//!
//! - [`GrantOps`]: batched `GNTTABOP_copy` with a status per operation
//!   ([`GrantCopy`]), and `GNTTABOP_map_grant_ref`/`unmap_grant_ref` for
//!   pages that stay shared (rings). A mapped page is reached only through
//!   [`SharedPage`]'s accessors with explicit offsets, because the granting
//!   domain may write it at any time: no `&[u8]` ever points into it.
//! - [`EventChannels`]: `EVTCHNOP_alloc_unbound`, `bind_interdomain`,
//!   `send`, `close`, and polling of pending bits (aggdom runs without
//!   interrupts).
//! - [`XenStore`]: read, write, mkdir, rm, directory, watches with an event
//!   queue polled by the caller, transactions; [`transact`] retries a
//!   transaction body on `EAGAIN`.
//!
//! [`FakeHypervisor`] implements all of them in memory for host tests: other
//! domains that grant pages, bind event channels and write xenstore (a
//! well-behaved or malicious frontend, the toolstack), and a xenstore tree
//! with watches, transactions and a simple permission rule.
//!
//! # Contract for implementations
//! Every method returns an error for bad arguments; none panics on values a
//! guest chose. [`SharedPage`] accessors panic only on offsets beyond the
//! page, which callers compute from constants (a caller bug, not guest
//! input).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod abi;
mod error;
mod evtchn;
mod fake;
mod grant;
mod xenstore;

pub use abi::{DomId, EvtchnPort, GrantRef, GrantStatus, XenbusState, PAGE_SIZE};
pub use error::XenError;
pub use evtchn::EventChannels;
pub use fake::{FakeHypervisor, FakeMapping, FakePage, FakeStats};
pub use grant::{CopyDir, GrantAddr, GrantCopy, GrantOps, MapAccess, SharedPage};
pub use xenstore::{parse_u32, transact, Transaction, WatchEvent, XenStore};

/// Everything a backend needs from Xen, and who it is.
pub trait Hypervisor: GrantOps + EventChannels + XenStore {
    /// This domain's own id (the `<self>` of `/local/domain/<self>`).
    fn domid(&self) -> DomId;
}
