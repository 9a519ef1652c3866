//! The Xen platform as one value: [`Xen`] implements
//! [`hypervisor::Hypervisor`] (grants, event channels, xenstore) for
//! netback, plus start-up, HVM params and shutdown.
use alloc::vec::Vec;
use core::fmt;

use hypervisor::{
    DomId, EventChannels, EvtchnPort, GrantCopy, GrantOps, GrantRef, GrantStatus, Hypervisor,
    MapAccess, Transaction, WatchEvent, XenError, XenStore,
};

use crate::abi::{
    HvmParam, HVMOP_GET_PARAM, HVM_PARAM_CONSOLE_EVTCHN, HVM_PARAM_CONSOLE_PFN,
    HVM_PARAM_STORE_EVTCHN, HVM_PARAM_STORE_PFN, HYPERVISOR_HVM_OP, HYPERVISOR_SCHED_OP,
    SCHEDOP_SHUTDOWN, SHUTDOWN_CRASH, SHUTDOWN_POWEROFF,
};
use crate::cpuid::XenCpuid;
use crate::grant::{GrantStats, Grants, MappedPage};
use crate::hypercall::{self, check, op2};
use crate::page::RawPage;
use crate::xenstore::{XsClient, XsStats, XsTransport};
use crate::{console, cpuid, evtchn};

/// Why the platform could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    /// CPUID offers no hypercall page.
    NoHypercallPage,
    /// `XENMEM_add_to_physmap` of shared_info failed.
    SharedInfo(XenError),
    /// An HVM param could not be read (or is 0).
    Param(&'static str, XenError),
    /// xenstore did not answer the read of our `domid`.
    XenStore(XenError),
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoHypercallPage => write!(f, "CPUID offers no hypercall page"),
            Self::SharedInfo(e) => write!(f, "mapping shared_info failed: {e}"),
            Self::Param(p, e) => write!(f, "HVM param {p}: {e}"),
            Self::XenStore(e) => write!(f, "xenstore: {e}"),
        }
    }
}

/// Detects Xen and does the set-up that needs no heap: the hypercall page
/// and the PV console. `None` when not running on Xen (or without a
/// hypercall page).
pub fn early_init() -> Option<XenCpuid> {
    let info = cpuid::detect()?;
    if !hypercall::init(&info) {
        return None;
    }
    if let (Ok(pfn), Ok(port)) = (
        hvm_param(HVM_PARAM_CONSOLE_PFN),
        hvm_param(HVM_PARAM_CONSOLE_EVTCHN),
    ) {
        if pfn != 0 {
            // SAFETY: Xen named this frame as our console ring; it lies in
            // the identity-mapped low 4 GiB (HVM special pages) and only the
            // console module uses it.
            unsafe { console::attach((pfn << 12) as usize, port as u32) };
        }
    }
    Some(info)
}

/// True once [`early_init`] found Xen.
pub fn is_xen() -> bool {
    hypercall::is_ready()
}

/// `HVMOP_get_param` for this domain.
pub fn hvm_param(index: u32) -> Result<u64, XenError> {
    let mut p = HvmParam {
        domid: hypervisor::abi::DOMID_SELF,
        pad: 0,
        index,
        value: 0,
    };
    // SAFETY: a valid xen_hvm_param; Xen writes only `value`.
    check(unsafe { op2(HYPERVISOR_HVM_OP, HVMOP_GET_PARAM, &mut p) })?;
    Ok(p.value)
}

/// `SCHEDOP_shutdown`: powers the domain off (or reports a crash, which
/// the toolstack handles per `on_crash`). Returns only if Xen refused.
pub fn shutdown(crash: bool) {
    let mut reason: u32 = if crash {
        SHUTDOWN_CRASH
    } else {
        SHUTDOWN_POWEROFF
    };
    // SAFETY: `struct sched_shutdown { unsigned int reason; }`.
    let _ = unsafe { op2(HYPERVISOR_SCHED_OP, SCHEDOP_SHUTDOWN, &mut reason) };
}

/// The xenstore ring as the client's transport.
pub struct StoreRing {
    page: RawPage,
    port: EvtchnPort,
    clock: fn() -> u64,
    shared_info: usize,
}

impl XsTransport for StoreRing {
    type Page = RawPage;
    fn page(&self) -> &RawPage {
        &self.page
    }
    fn notify(&mut self) {
        let _ = evtchn::send(self.port);
    }
    fn now_ns(&mut self) -> u64 {
        (self.clock)()
    }
    /// Blocks until xenstored kicks us (or 1 ms): spinning would keep the
    /// CPU from dom0, where xenstored has to run to answer. On the rig
    /// (2 emulated CPUs) a spinning aggdom starved dom0 for minutes.
    fn idle(&mut self) {
        evtchn::wait_port(self.shared_info, self.port, 1_000_000);
    }
}

/// Xen, for netback and the kernel.
pub struct Xen {
    info: XenCpuid,
    domid: DomId,
    shared_info: usize,
    xs: XsClient<StoreRing>,
    grants: Grants,
    store_pfn: u64,
    store_port: EvtchnPort,
    /// Event-channel ports this domain bound or allocated and still holds.
    open_ports: Vec<EvtchnPort>,
}

impl Xen {
    /// Sets up shared_info and xenstore after [`early_init`]; needs the
    /// heap. `clock` is a monotonic nanosecond clock (xenstore timeouts).
    pub fn new(info: XenCpuid, clock: fn() -> u64) -> Result<Self, InitError> {
        if !hypercall::is_ready() {
            return Err(InitError::NoHypercallPage);
        }
        let shared_info = evtchn::map_shared_info().map_err(InitError::SharedInfo)?;
        let param = |name, index| match hvm_param(index) {
            Ok(0) => Err(InitError::Param(name, XenError::NoEnt)),
            Ok(v) => Ok(v),
            Err(e) => Err(InitError::Param(name, e)),
        };
        let store_pfn = param("STORE_PFN", HVM_PARAM_STORE_PFN)?;
        let store_port = param("STORE_EVTCHN", HVM_PARAM_STORE_EVTCHN)? as EvtchnPort;
        let ring = StoreRing {
            // SAFETY: Xen named this frame as our xenstore ring; it lies in
            // the identity-mapped low 4 GiB and only the client uses it.
            page: unsafe { RawPage::new((store_pfn << 12) as usize) },
            port: store_port,
            clock,
            shared_info,
        };
        let mut xs = XsClient::new(ring);
        let domid = xs
            .read_u32(Transaction::NONE, "domid")
            .map_err(InitError::XenStore)?;
        Ok(Self {
            info,
            domid: domid as DomId,
            shared_info,
            xs,
            grants: Grants::default(),
            store_pfn,
            store_port,
            open_ports: Vec::new(),
        })
    }

    pub fn version(&self) -> (u32, u32) {
        (self.info.major(), self.info.minor())
    }

    /// The xenstore ring's frame (`HVM_PARAM_STORE_PFN`).
    pub fn store_pfn(&self) -> u64 {
        self.store_pfn
    }

    /// The address of the mapped shared_info page.
    pub fn shared_info_addr(&self) -> usize {
        self.shared_info
    }

    pub fn store_port(&self) -> EvtchnPort {
        self.store_port
    }

    pub fn grant_stats(&self) -> GrantStats {
        self.grants.stats
    }

    pub fn xenstore_stats(&self) -> XsStats {
        self.xs.stats()
    }

    pub fn open_ports(&self) -> &[EvtchnPort] {
        &self.open_ports
    }

    /// Idles until an event channel this domain holds (xenstore, console,
    /// every bound port) is pending, or `timeout_ns` passed: `SCHEDOP_poll`,
    /// so the domain sleeps without taking interrupts. The xenstore and
    /// console pending bits are cleared first (their rings are read in the
    /// poll loop anyway); a vif's is cleared by netback. `false` if Xen's
    /// clock could not be read or the poll failed: idle some other way.
    pub fn idle(&mut self, timeout_ns: u64) -> bool {
        let mut ports: Vec<EvtchnPort> = Vec::with_capacity(self.open_ports.len() + 2);
        ports.push(self.store_port);
        if let Some(p) = console::port() {
            ports.push(p);
        }
        for &p in &ports {
            let _ = evtchn::take_pending(self.shared_info, p);
        }
        ports.extend_from_slice(&self.open_ports);
        let Some(now) =
            evtchn::time_info(self.shared_info).and_then(|t| t.at(crate::hypercall::rdtsc()))
        else {
            return false;
        };
        evtchn::poll(&ports, now.saturating_add(timeout_ns)).is_ok()
    }

    /// The next event of a watch whose token starts with
    /// [`crate::PRIVATE_TOKEN_PREFIX`].
    pub fn poll_private_watch(&mut self) -> Option<WatchEvent> {
        self.xs.poll_private_watch()
    }
}

impl GrantOps for Xen {
    type Page = MappedPage;

    fn grant_copy(&mut self, ops: &mut [GrantCopy<'_>]) {
        self.grants.copy(ops)
    }

    fn map_grant(
        &mut self,
        domid: DomId,
        gref: GrantRef,
        access: MapAccess,
    ) -> Result<MappedPage, GrantStatus> {
        self.grants.map(domid, gref, access)
    }

    fn unmap_grant(&mut self, page: MappedPage) -> Result<(), GrantStatus> {
        self.grants.unmap(page)
    }
}

impl EventChannels for Xen {
    fn alloc_unbound(&mut self, remote: DomId) -> Result<EvtchnPort, XenError> {
        let p = evtchn::alloc_unbound(remote)?;
        self.open_ports.push(p);
        Ok(p)
    }

    fn bind_interdomain(
        &mut self,
        remote: DomId,
        remote_port: EvtchnPort,
    ) -> Result<EvtchnPort, XenError> {
        let p = evtchn::bind_interdomain(remote, remote_port)?;
        self.open_ports.push(p);
        Ok(p)
    }

    fn send(&mut self, port: EvtchnPort) -> Result<(), XenError> {
        evtchn::send(port)
    }

    fn take_pending(&mut self, port: EvtchnPort) -> bool {
        evtchn::take_pending(self.shared_info, port)
    }

    fn close(&mut self, port: EvtchnPort) -> Result<(), XenError> {
        evtchn::close(port)?;
        self.open_ports.retain(|p| *p != port);
        Ok(())
    }
}

impl XenStore for Xen {
    fn read(&mut self, t: Transaction, path: &str) -> Result<Vec<u8>, XenError> {
        self.xs.read(t, path)
    }
    fn write(&mut self, t: Transaction, path: &str, value: &[u8]) -> Result<(), XenError> {
        self.xs.write(t, path, value)
    }
    fn mkdir(&mut self, t: Transaction, path: &str) -> Result<(), XenError> {
        self.xs.mkdir(t, path)
    }
    fn rm(&mut self, t: Transaction, path: &str) -> Result<(), XenError> {
        self.xs.rm(t, path)
    }
    fn directory(
        &mut self,
        t: Transaction,
        path: &str,
    ) -> Result<Vec<alloc::string::String>, XenError> {
        self.xs.directory(t, path)
    }
    fn watch(&mut self, path: &str, token: &str) -> Result<(), XenError> {
        self.xs.watch(path, token)
    }
    fn unwatch(&mut self, path: &str, token: &str) -> Result<(), XenError> {
        self.xs.unwatch(path, token)
    }
    fn poll_watch(&mut self) -> Option<WatchEvent> {
        self.xs.poll_watch()
    }
    fn transaction_start(&mut self) -> Result<Transaction, XenError> {
        self.xs.transaction_start()
    }
    fn transaction_end(&mut self, t: Transaction, commit: bool) -> Result<(), XenError> {
        self.xs.transaction_end(t, commit)
    }
}

impl Hypervisor for Xen {
    fn domid(&self) -> DomId {
        self.domid
    }
}
