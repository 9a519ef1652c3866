//! `FakeHypervisor`: an in-memory Xen for host tests. It is the backend
//! domain (the trait implementations act as `self`), and its inherent
//! methods let tests act as other domains: the toolstack (domain 0) writing
//! xenstore, and frontends granting pages, binding event channels and
//! writing their own xenstore nodes — well-behaved or malicious.
//!
//! What it models, so tests mean something:
//! - grants: each domain's grant table maps refs to pages granted to one
//!   grantee, read-only or writable; copies and maps check the domain, the
//!   ref, the grantee, write permission and page bounds, as Xen does;
//! - event channels: per-domain port tables with unbound / interdomain
//!   states and pending bits;
//! - xenstore: nodes, watches (an initial event; events for the node and
//!   everything below; removal fires watches inside the removed subtree),
//!   and the rule that a guest writes only under its own
//!   `/local/domain/<id>`. The backend's requests are answered at once, or
//!   held until the test runs xenstored ([`FakeHypervisor::hold_xenstore`],
//!   [`FakeHypervisor::run_xenstored`]): a slow or mute dom0.
mod nodes;
mod page;
mod store;

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

pub use page::FakePage;
use store::Store;

use crate::abi::{DomId, EvtchnPort, GrantRef, GrantStatus, PAGE_SIZE};
use crate::error::XenError;
use crate::evtchn::EventChannels;
use crate::grant::{CopyDir, GrantCopy, GrantOps, MapAccess, SharedPage};
use crate::xenstore::{RequestId, WatchEvent, XenStore, XsOp, XsReply};
use crate::Hypervisor;

/// What the fake has seen the backend do, for tests that count hypercalls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FakeStats {
    /// `grant_copy` calls (hypercalls a real implementation would make).
    pub copy_calls: u64,
    /// Copy operations in them.
    pub copy_ops: u64,
    /// Operations that failed.
    pub copy_failures: u64,
    /// Grants currently mapped by the backend.
    pub live_maps: u64,
    /// `send` calls by the backend.
    pub sends: u64,
}

struct Grant {
    page: Arc<FakePage>,
    grantee: DomId,
    readonly: bool,
    maps: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PortState {
    Unbound {
        remote: DomId,
    },
    Interdomain {
        remote: DomId,
        remote_port: EvtchnPort,
    },
}

struct Port {
    state: PortState,
    pending: bool,
}

#[derive(Default)]
struct Domain {
    grants: BTreeMap<GrantRef, Grant>,
    next_gref: GrantRef,
    ports: BTreeMap<EvtchnPort, Port>,
}

/// A mapped grant, as the fake's [`GrantOps::map_grant`] returns it.
pub struct FakeMapping {
    handle: u64,
    page: Arc<FakePage>,
}

impl SharedPage for FakeMapping {
    fn load_u32(&self, offset: usize) -> u32 {
        self.page.load_u32(offset)
    }
    fn store_u32(&self, offset: usize, value: u32) {
        self.page.store_u32(offset, value)
    }
    fn read(&self, offset: usize, buf: &mut [u8]) {
        self.page.read(offset, buf)
    }
    fn write(&self, offset: usize, data: &[u8]) {
        self.page.write(offset, data)
    }
    fn fence(&self) {
        self.page.fence()
    }
}

/// An in-memory Xen: see the module documentation.
pub struct FakeHypervisor {
    me: DomId,
    domains: BTreeMap<DomId, Domain>,
    store: Store,
    stats: FakeStats,
    /// Live mappings by handle: which grant each maps.
    maps: BTreeMap<u64, (DomId, GrantRef)>,
    next_handle: u64,
    xs: FakeXsConnection,
    /// [`Hypervisor::now_ns`]: moves only by [`Self::advance_clock`].
    clock_ns: u64,
}

/// A request the backend submitted that xenstored has not answered yet.
enum HeldOp {
    Read(String),
    Write(String, Vec<u8>),
    Mkdir(String),
    Rm(String),
    Directory(String),
    Watch(String, String),
    Unwatch(String, String),
}

impl HeldOp {
    fn op(&self) -> XsOp<'_> {
        match self {
            Self::Read(p) => XsOp::Read(p),
            Self::Write(p, v) => XsOp::Write(p, v),
            Self::Mkdir(p) => XsOp::Mkdir(p),
            Self::Rm(p) => XsOp::Rm(p),
            Self::Directory(p) => XsOp::Directory(p),
            Self::Watch(p, t) => XsOp::Watch { path: p, token: t },
            Self::Unwatch(p, t) => XsOp::Unwatch { path: p, token: t },
        }
    }

    fn of(op: XsOp<'_>) -> Self {
        match op {
            XsOp::Read(p) => Self::Read(p.into()),
            XsOp::Write(p, v) => Self::Write(p.into(), v.to_vec()),
            XsOp::Mkdir(p) => Self::Mkdir(p.into()),
            XsOp::Rm(p) => Self::Rm(p.into()),
            XsOp::Directory(p) => Self::Directory(p.into()),
            XsOp::Watch { path, token } => Self::Watch(path.into(), token.into()),
            XsOp::Unwatch { path, token } => Self::Unwatch(path.into(), token.into()),
        }
    }
}

/// The backend's xenstore connection: requests in order, replies by id.
#[derive(Default)]
struct FakeXsConnection {
    next_id: u32,
    hold: bool,
    queue: VecDeque<(RequestId, HeldOp)>,
    /// Answers not yet taken, oldest first: the backend takes them
    /// mostly in that order, so a take looks at the front first (a map
    /// cost a search of compares per take).
    replies: VecDeque<(RequestId, XsReply)>,
    forgotten: alloc::collections::BTreeSet<RequestId>,
    submitted: u64,
}

impl FakeXsConnection {
    fn take_reply(&mut self, id: RequestId) -> Option<XsReply> {
        let at = self.replies.iter().position(|(r, _)| *r == id)?;
        self.replies.remove(at).map(|(_, reply)| reply)
    }
}

/// Unanswered requests the fake accepts before `submit` says `Busy`.
pub const FAKE_XS_MAX_IN_FLIGHT: usize = 256;

impl FakeHypervisor {
    /// A fake Xen in which the backend is domain `me`; domain 0 (the
    /// toolstack) and `me` exist, with their xenstore homes.
    pub fn new(me: DomId) -> Self {
        let mut hv = Self {
            me,
            domains: BTreeMap::new(),
            store: Store::new(),
            stats: FakeStats::default(),
            maps: BTreeMap::new(),
            next_handle: 1,
            xs: FakeXsConnection::default(),
            clock_ns: 0,
        };
        hv.add_domain(0);
        hv.add_domain(me);
        hv
    }

    /// Moves the clock [`Hypervisor::now_ns`] reads forward.
    pub fn advance_clock(&mut self, ns: u64) {
        self.clock_ns = self.clock_ns.saturating_add(ns);
    }

    /// Creates domain `id` (a guest) and its `/local/domain/<id>` node.
    pub fn add_domain(&mut self, id: DomId) {
        self.domains.entry(id).or_insert_with(|| Domain {
            next_gref: 8,
            ..Domain::default()
        });
        let _ = self.store.mkdir(0, &format!("/local/domain/{id}"));
    }

    /// Destroys domain `id`: its grants vanish (pages stay alive only in
    /// existing mappings), ports bound to it become unbound, its xenstore
    /// home is removed.
    pub fn destroy_domain(&mut self, id: DomId) {
        if self.domains.remove(&id).is_none() {
            return;
        }
        for d in self.domains.values_mut() {
            for p in d.ports.values_mut() {
                if let PortState::Interdomain { remote, .. } = p.state {
                    if remote == id {
                        p.state = PortState::Unbound { remote: id };
                    }
                }
            }
        }
        self.store.drop_connection(id);
        let _ = self.store.rm(0, &format!("/local/domain/{id}"));
    }

    /// Models the backend domain restarting in place (same domain id, as
    /// after a soft reset): its ports close, so frontends' ports are unbound
    /// again and waiting for it; its mappings are gone; its watches and
    /// transactions are forgotten. Xenstore contents and other domains stay.
    pub fn restart_self(&mut self) {
        let me = self.me;
        let ports: Vec<EvtchnPort> = self
            .domains
            .get(&me)
            .map(|d| d.ports.keys().copied().collect())
            .unwrap_or_default();
        for p in ports {
            let _ = self.close_as(me, p);
        }
        for d in self.domains.values_mut() {
            for g in d.grants.values_mut() {
                if g.grantee == me {
                    g.maps = 0;
                }
            }
        }
        self.maps.clear();
        self.stats.live_maps = 0;
        self.store.drop_connection(me);
        self.xs = FakeXsConnection::default();
    }

    pub fn stats(&self) -> FakeStats {
        self.stats
    }

    // ----- grants, as the granting domain -----

    /// `owner` grants a fresh zeroed page to `grantee`; returns its ref.
    /// `None` if `owner` does not exist.
    pub fn grant_page(&mut self, owner: DomId, grantee: DomId, readonly: bool) -> Option<GrantRef> {
        self.grant_existing(owner, grantee, Arc::new(FakePage::new()), readonly)
    }

    /// `owner` grants `page` (possibly already granted elsewhere) to `grantee`.
    pub fn grant_existing(
        &mut self,
        owner: DomId,
        grantee: DomId,
        page: Arc<FakePage>,
        readonly: bool,
    ) -> Option<GrantRef> {
        let d = self.domains.get_mut(&owner)?;
        let gref = d.next_gref;
        d.next_gref = d.next_gref.checked_add(1)?;
        d.grants.insert(
            gref,
            Grant {
                page,
                grantee,
                readonly,
                maps: 0,
            },
        );
        Some(gref)
    }

    /// The page behind `owner`'s grant `gref`.
    pub fn granted_page(&self, owner: DomId, gref: GrantRef) -> Option<Arc<FakePage>> {
        Some(self.domains.get(&owner)?.grants.get(&gref)?.page.clone())
    }

    /// `owner` ends a grant (`gnttab_end_foreign_access`). False if it was
    /// still mapped (Xen refuses then) or does not exist.
    pub fn revoke_grant(&mut self, owner: DomId, gref: GrantRef) -> bool {
        let Some(d) = self.domains.get_mut(&owner) else {
            return false;
        };
        match d.grants.get(&gref) {
            Some(g) if g.maps == 0 => {
                d.grants.remove(&gref);
                true
            }
            _ => false,
        }
    }

    // ----- event channels, as another domain -----

    /// `dom` allocates a port unbound for `remote`.
    pub fn alloc_unbound_as(&mut self, dom: DomId, remote: DomId) -> Result<EvtchnPort, XenError> {
        if !self.domains.contains_key(&remote) {
            return Err(XenError::Srch);
        }
        let d = self.domains.get_mut(&dom).ok_or(XenError::Srch)?;
        let port = (1..)
            .find(|p| !d.ports.contains_key(p))
            .ok_or(XenError::NoSpc)?;
        d.ports.insert(
            port,
            Port {
                state: PortState::Unbound { remote },
                pending: false,
            },
        );
        Ok(port)
    }

    /// `dom` binds to `remote`'s unbound `remote_port`.
    pub fn bind_interdomain_as(
        &mut self,
        dom: DomId,
        remote: DomId,
        remote_port: EvtchnPort,
    ) -> Result<EvtchnPort, XenError> {
        let ok = self
            .domains
            .get(&remote)
            .ok_or(XenError::Srch)?
            .ports
            .get(&remote_port)
            .is_some_and(|p| p.state == PortState::Unbound { remote: dom });
        if !ok {
            return Err(XenError::Inval);
        }
        let local = self.alloc_unbound_as(dom, remote)?;
        let d = self.domains.get_mut(&dom).ok_or(XenError::Srch)?;
        if let Some(p) = d.ports.get_mut(&local) {
            p.state = PortState::Interdomain {
                remote,
                remote_port,
            };
            // Xen marks the new local port pending on bind.
            p.pending = true;
        }
        if let Some(p) = self
            .domains
            .get_mut(&remote)
            .and_then(|d| d.ports.get_mut(&remote_port))
        {
            p.state = PortState::Interdomain {
                remote: dom,
                remote_port: local,
            };
        }
        Ok(local)
    }

    /// `dom` notifies through `port`.
    pub fn send_as(&mut self, dom: DomId, port: EvtchnPort) -> Result<(), XenError> {
        let state = self
            .domains
            .get(&dom)
            .ok_or(XenError::Srch)?
            .ports
            .get(&port)
            .ok_or(XenError::Inval)?
            .state;
        if let PortState::Interdomain {
            remote,
            remote_port,
        } = state
        {
            if let Some(p) = self
                .domains
                .get_mut(&remote)
                .and_then(|d| d.ports.get_mut(&remote_port))
            {
                p.pending = true;
            }
        }
        Ok(())
    }

    /// Tests and clears `dom`'s pending bit for `port`.
    pub fn take_pending_as(&mut self, dom: DomId, port: EvtchnPort) -> bool {
        match self
            .domains
            .get_mut(&dom)
            .and_then(|d| d.ports.get_mut(&port))
        {
            Some(p) => core::mem::replace(&mut p.pending, false),
            None => false,
        }
    }

    /// `dom` closes `port`; the other end becomes unbound (waiting for `dom`).
    pub fn close_as(&mut self, dom: DomId, port: EvtchnPort) -> Result<(), XenError> {
        let p = self
            .domains
            .get_mut(&dom)
            .ok_or(XenError::Srch)?
            .ports
            .remove(&port)
            .ok_or(XenError::Inval)?;
        if let PortState::Interdomain {
            remote,
            remote_port,
        } = p.state
        {
            if let Some(rp) = self
                .domains
                .get_mut(&remote)
                .and_then(|d| d.ports.get_mut(&remote_port))
            {
                rp.state = PortState::Unbound { remote: dom };
            }
        }
        Ok(())
    }

    /// Whether `dom`'s `port` is bound to some port of `remote`.
    pub fn is_bound(&self, dom: DomId, port: EvtchnPort, remote: DomId) -> bool {
        self.domains
            .get(&dom)
            .and_then(|d| d.ports.get(&port))
            .is_some_and(
                |p| matches!(p.state, PortState::Interdomain { remote: r, .. } if r == remote),
            )
    }

    /// Ports `dom` holds open.
    pub fn open_ports(&self, dom: DomId) -> usize {
        self.domains.get(&dom).map_or(0, |d| d.ports.len())
    }

    // ----- xenstore, as another domain -----

    /// `dom` writes a node (domain 0 may write anywhere).
    pub fn xs_write_as(&mut self, dom: DomId, path: &str, value: &str) -> Result<(), XenError> {
        self.store.write(dom, path, value.as_bytes())
    }

    /// `dom` removes a node and its subtree.
    pub fn xs_rm_as(&mut self, dom: DomId, path: &str) -> Result<(), XenError> {
        self.store.rm(dom, path)
    }

    /// `dom` sets a watch.
    pub fn xs_watch_as(&mut self, dom: DomId, path: &str, token: &str) -> Result<(), XenError> {
        self.store.watch(dom, path, token)
    }

    /// `dom`'s oldest watch event.
    pub fn xs_poll_watch_as(&mut self, dom: DomId) -> Option<WatchEvent> {
        self.store.poll_watch(dom)
    }

    /// A node's value as text, without permission checks (for assertions).
    pub fn xs_get(&self, path: &str) -> Option<String> {
        self.store
            .peek(path)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// `dom` reads a node (for a test acting as the toolstack or a guest).
    pub fn xs_read_as(&mut self, dom: DomId, path: &str) -> Result<Vec<u8>, XenError> {
        self.store.read(dom, path)
    }

    /// From now on the backend's xenstore requests wait for
    /// [`FakeHypervisor::run_xenstored`] (`true`), or are answered at once
    /// (`false`, the default; requests held so far are answered now).
    pub fn hold_xenstore(&mut self, hold: bool) {
        self.xs.hold = hold;
        if !hold {
            self.run_xenstored(usize::MAX);
        }
    }

    /// Lets xenstored answer up to `max` held requests, oldest first.
    /// Returns how many it answered.
    pub fn run_xenstored(&mut self, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            let Some((id, op)) = self.xs.queue.pop_front() else {
                break;
            };
            let reply = self.execute(op.op());
            if !self.xs.forgotten.remove(&id) {
                self.xs.replies.push_back((id, reply));
            }
            n += 1;
        }
        n
    }

    /// Backend requests submitted but not yet answered.
    pub fn xs_unanswered(&self) -> usize {
        self.xs.queue.len()
    }

    /// Backend requests submitted so far.
    pub fn xs_submitted(&self) -> u64 {
        self.xs.submitted
    }

    /// Answers one backend request as xenstored would.
    fn execute(&mut self, op: XsOp<'_>) -> XsReply {
        let me = self.me;
        let s = &mut self.store;
        match op {
            XsOp::Read(p) => s.read(me, p),
            XsOp::Write(p, v) => s.write(me, p, v).map(|()| Vec::new()),
            XsOp::Mkdir(p) => s.mkdir(me, p).map(|()| Vec::new()),
            XsOp::Rm(p) => s.rm(me, p).map(|()| Vec::new()),
            XsOp::Directory(p) => s.directory(me, p).map(|names| {
                let mut out = Vec::new();
                for n in names {
                    out.extend_from_slice(n.as_bytes());
                    out.push(0);
                }
                out
            }),
            XsOp::Watch { path, token } => s.watch(me, path, token).map(|()| Vec::new()),
            XsOp::Unwatch { path, token } => s.unwatch(me, path, token).map(|()| Vec::new()),
        }
    }

    fn check_foreign(
        &self,
        domid: DomId,
        gref: GrantRef,
        write: bool,
    ) -> Result<&Grant, GrantStatus> {
        let d = self.domains.get(&domid).ok_or(GrantStatus::BadDomain)?;
        let g = d.grants.get(&gref).ok_or(GrantStatus::BadGntref)?;
        if g.grantee != self.me {
            return Err(GrantStatus::BadGntref);
        }
        if write && g.readonly {
            return Err(GrantStatus::PermissionDenied);
        }
        Ok(g)
    }

    fn copy_one(&self, op: &mut GrantCopy<'_>) -> GrantStatus {
        let foreign = op.foreign();
        let len = op.len();
        if len > PAGE_SIZE || usize::from(foreign.offset) + len > PAGE_SIZE {
            return GrantStatus::BadCopyArg;
        }
        let write = matches!(op.dir, CopyDir::ToForeign { .. });
        let page = match self.check_foreign(foreign.domid, foreign.gref, write) {
            Ok(g) => g.page.clone(),
            Err(s) => return s,
        };
        match &mut op.dir {
            CopyDir::FromForeign { dst, .. } => page.read(foreign.offset.into(), dst),
            CopyDir::ToForeign { src, .. } => page.write(foreign.offset.into(), src),
        }
        GrantStatus::Okay
    }
}

impl GrantOps for FakeHypervisor {
    type Page = FakeMapping;

    fn grant_copy(&mut self, ops: &mut [GrantCopy<'_>]) {
        self.stats.copy_calls += 1;
        for op in ops.iter_mut() {
            op.status = self.copy_one(op);
            self.stats.copy_ops += 1;
            if !op.status.is_okay() {
                self.stats.copy_failures += 1;
            }
        }
    }

    fn map_grant(
        &mut self,
        domid: DomId,
        gref: GrantRef,
        access: MapAccess,
    ) -> Result<FakeMapping, GrantStatus> {
        let page = self
            .check_foreign(domid, gref, access == MapAccess::ReadWrite)?
            .page
            .clone();
        if let Some(g) = self
            .domains
            .get_mut(&domid)
            .and_then(|d| d.grants.get_mut(&gref))
        {
            g.maps += 1;
        }
        let handle = self.next_handle;
        self.next_handle += 1;
        self.maps.insert(handle, (domid, gref));
        self.stats.live_maps = self.maps.len() as u64;
        Ok(FakeMapping { handle, page })
    }

    /// Works even after the granting domain died (Xen keeps a dying
    /// domain's mapped pages until they are unmapped).
    fn unmap_grant(&mut self, page: FakeMapping) -> Result<(), GrantStatus> {
        let (owner, gref) = self
            .maps
            .remove(&page.handle)
            .ok_or(GrantStatus::BadHandle)?;
        if let Some(g) = self
            .domains
            .get_mut(&owner)
            .and_then(|d| d.grants.get_mut(&gref))
        {
            g.maps = g.maps.saturating_sub(1);
        }
        self.stats.live_maps = self.maps.len() as u64;
        Ok(())
    }
}

impl EventChannels for FakeHypervisor {
    fn alloc_unbound(&mut self, remote: DomId) -> Result<EvtchnPort, XenError> {
        self.alloc_unbound_as(self.me, remote)
    }

    fn bind_interdomain(
        &mut self,
        remote: DomId,
        remote_port: EvtchnPort,
    ) -> Result<EvtchnPort, XenError> {
        self.bind_interdomain_as(self.me, remote, remote_port)
    }

    fn send(&mut self, port: EvtchnPort) -> Result<(), XenError> {
        self.stats.sends += 1;
        self.send_as(self.me, port)
    }

    fn take_pending(&mut self, port: EvtchnPort) -> bool {
        self.take_pending_as(self.me, port)
    }

    fn close(&mut self, port: EvtchnPort) -> Result<(), XenError> {
        self.close_as(self.me, port)
    }
}

impl XenStore for FakeHypervisor {
    fn submit(&mut self, op: XsOp<'_>) -> Result<RequestId, XenError> {
        if self.xs.queue.len() + self.xs.replies.len() >= FAKE_XS_MAX_IN_FLIGHT {
            return Err(XenError::Busy);
        }
        self.xs.next_id = self.xs.next_id.wrapping_add(1);
        let id = RequestId(self.xs.next_id);
        self.xs.submitted += 1;
        if !self.xs.hold && self.xs.queue.is_empty() {
            // Answered at once, without the owned copy a held request
            // needs (the fuzz targets make hundreds per input).
            let reply = self.execute(op);
            self.xs.replies.push_back((id, reply));
        } else {
            self.xs.queue.push_back((id, HeldOp::of(op)));
            if !self.xs.hold {
                self.run_xenstored(usize::MAX);
            }
        }
        Ok(id)
    }

    fn take_reply(&mut self, id: RequestId) -> Option<XsReply> {
        self.xs.take_reply(id)
    }

    fn forget(&mut self, id: RequestId) {
        if self.xs.take_reply(id).is_none() {
            self.xs.forgotten.insert(id);
        }
    }

    fn poll_watch(&mut self) -> Option<WatchEvent> {
        self.store.poll_watch(self.me)
    }
}

impl Hypervisor for FakeHypervisor {
    fn domid(&self) -> DomId {
        self.me
    }
    fn now_ns(&mut self) -> u64 {
        self.clock_ns
    }
}

#[cfg(test)]
mod tests;
