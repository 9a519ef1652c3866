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
//! - [`XenStore`]: read, write, mkdir, rm, directory and watches as
//!   requests that are queued and answered later ([`XsOp`], [`RequestId`]):
//!   the caller never waits for xenstored. Watch events are polled.
//!
//! [`FakeHypervisor`] implements all of them in memory for host tests: other
//! domains that grant pages, bind event channels and write xenstore (a
//! well-behaved or malicious frontend, the toolstack), and a xenstore tree
//! with watches, a simple permission rule, and a dom0 that can be slow.
//!
//! # Contract for implementations
//! Every method returns an error for bad arguments; none panics on values a
//! guest chose. [`SharedPage`] accessors panic only on offsets beyond the
//! page, which callers compute from constants (a caller bug, not guest
//! input).
//!
//! # What a real (kernel-side) implementation does
//! The Xen platform layer implements these traits over hypercalls; nothing
//! here needs interrupts.
//!
//! - [`GrantOps::grant_copy`]: one `HYPERVISOR_grant_table_op(GNTTABOP_copy,
//!   ops, n)` per batch (split into chunks if its own array is smaller).
//!   For each [`GrantCopy`] the foreign side is `{u.ref = gref, domid,
//!   offset}` with `GNTCOPY_source_gref` (`FromForeign`) or
//!   `GNTCOPY_dest_gref` (`ToForeign`); the local side is `{u.gmfn =
//!   gfn of the buffer, domid = DOMID_SELF, offset = buffer address & 4095}`.
//!   A local slice may cross a 4 KiB boundary (it is ordinary heap memory):
//!   the implementation then issues two `gnttab_copy` entries and reports
//!   the worse status. A copy longer than a page, or whose foreign offset
//!   plus length passes the page, must come back `BadCopyArg` without a
//!   hypercall. The hypercall's own failure (`-EFAULT`...) sets every
//!   status to `GeneralError`.
//! - [`GrantOps::map_grant`]: `GNTTABOP_map_grant_ref` with
//!   `GNTMAP_host_map` (`| GNTMAP_readonly`) onto a page-aligned virtual
//!   address the implementation reserves (under HVM/PVH: a free guest frame
//!   whose address it passes as `host_addr`), keeping the returned handle
//!   in its [`GrantOps::Page`] type. [`SharedPage`] methods are volatile
//!   accesses to that page: `load_u32`/`store_u32` through `AtomicU32`
//!   with acquire/release ordering, `fence` a `SeqCst` fence (`mfence`).
//!   [`GrantOps::unmap_grant`]: `GNTTABOP_unmap_grant_ref` with that
//!   address and handle.
//! - [`EventChannels`]: `HYPERVISOR_event_channel_op` with
//!   `EVTCHNOP_alloc_unbound` (`dom = DOMID_SELF, remote_dom`),
//!   `EVTCHNOP_bind_interdomain` (`remote_dom, remote_port` → `local_port`),
//!   `EVTCHNOP_send`, `EVTCHNOP_close`. Ports stay masked (no upcalls);
//!   [`EventChannels::take_pending`] is an atomic test-and-clear of bit
//!   `port` in `shared_info.evtchn_pending` (2-level ABI).
//! - [`XenStore`]: requests of io/xs_wire.h over the xenstore ring (its
//!   page and event channel from `HVM_PARAM_STORE_PFN` /
//!   `HVM_PARAM_STORE_EVTCHN`): `XS_READ`, `XS_WRITE`, `XS_MKDIR`, `XS_RM`,
//!   `XS_DIRECTORY`, `XS_WATCH`, `XS_UNWATCH`, with `req_id` as the
//!   [`RequestId`]; an `XS_ERROR` reply's text becomes
//!   [`XenError::from_xs_name`]. `submit` writes into the ring what fits
//!   and keeps the rest queued; replies and `XS_WATCH_EVENT`s are read
//!   from the ring when the main loop pumps the client, and filed by id.
//! - [`Hypervisor::domid`]: `XS_READ "domid"` once at start.
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
pub use fake::{FakeHypervisor, FakeMapping, FakePage, FakeStats, FAKE_XS_MAX_IN_FLIGHT};
pub use grant::{CopyDir, GrantAddr, GrantCopy, GrantOps, MapAccess, SharedPage};
pub use xenstore::{parse_directory, parse_u32, RequestId, WatchEvent, XenStore, XsOp, XsReply};

/// Everything a backend needs from Xen, and who it is.
pub trait Hypervisor: GrantOps + EventChannels + XenStore {
    /// This domain's own id (the `<self>` of `/local/domain/<self>`).
    fn domid(&self) -> DomId;
    /// A monotonic clock in nanoseconds, for what must wait on the
    /// toolstack's pace rather than on a reply (netback's grace before it
    /// removes an unplugged vif's directory).
    fn now_ns(&mut self) -> u64;
}
