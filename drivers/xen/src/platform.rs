//! The Xen platform as one value: [`Xen`] implements
//! [`hypervisor::Hypervisor`] (grants, event channels, xenstore) for
//! netback, plus start-up, HVM params, shutdown and the main loop's sleep.
//!
//! # The main loop and event channels
//! aggdom takes no interrupts; it sleeps in `SCHEDOP_poll` on every port it
//! holds. A wake-up must never be lost between looking at the rings and
//! going to sleep, so each loop turn is:
//!
//! 1. [`Xen::clear_events`]: test-and-clear every polled port's pending
//!    bit (what was pending is latched for [`EventChannels::take_pending`],
//!    so netback still learns of it);
//! 2. all the work: [`Xen::pump_xenstore`], netback, the console;
//! 3. [`Xen::block_until`]: sleep until a port is pending, which returns at
//!    once for any event that came after step 1.
use alloc::vec::Vec;
use core::fmt;

use hypervisor::{
    parse_u32, DomId, EventChannels, EvtchnPort, GrantCopy, GrantOps, GrantRef, GrantStatus,
    Hypervisor, MapAccess, RequestId, WatchEvent, XenError, XenStore, XsOp, XsReply,
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
use crate::{console, cpuid, evtchn, physdev};

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
    /// (2 emulated CPUs) a spinning aggdom starved dom0 for minutes. Only
    /// the boot-time [`XsClient::request_blocking`] gets here.
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
    /// What [`Xen::block_until`] polls: xenstore, console, then
    /// `open_ports`; rebuilt when they change, so polling allocates nothing.
    poll_ports: Vec<EvtchnPort>,
    /// Pending bits [`Xen::clear_events`] took, 2-level layout, until
    /// [`EventChannels::take_pending`] hands them out.
    latched: [u64; LATCH_WORDS],
    /// Passed-through devices' interrupts bound to event channels.
    device_irqs: Vec<physdev::DeviceIrq>,
    device_irq_events: u64,
    block_fallbacks: u64,
}

const LATCH_WORDS: usize = (crate::abi::EVTCHN_2L_NR_PORTS / 64) as usize;

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
        // Boot: nothing else runs yet, so waiting for xenstored is fine.
        let domid = xs
            .request_blocking(XsOp::Read("domid"))
            .and_then(|v| parse_u32(&v).ok_or(XenError::Inval))
            .map_err(InitError::XenStore)?;
        let mut xen = Self {
            info,
            domid: domid as DomId,
            shared_info,
            xs,
            grants: Grants::default(),
            store_pfn,
            store_port,
            open_ports: Vec::new(),
            poll_ports: Vec::new(),
            latched: [0; LATCH_WORDS],
            device_irqs: Vec::new(),
            device_irq_events: 0,
            block_fallbacks: 0,
        };
        xen.rebuild_poll_ports();
        Ok(xen)
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

    /// The last xenstore request that failed (not with `ENOENT`).
    pub fn xenstore_last_error(&self) -> Option<&crate::xenstore::XsFailure> {
        self.xs.last_error()
    }

    pub fn open_ports(&self) -> &[EvtchnPort] {
        &self.open_ports
    }

    /// Step 1 of a main-loop turn (module docs): test-and-clears the
    /// pending bit of every port [`Self::block_until`] polls, before the
    /// loop looks at any ring. A bit found set is latched for
    /// [`EventChannels::take_pending`], so clearing here loses nothing.
    pub fn clear_events(&mut self) {
        for &port in &self.poll_ports {
            if evtchn::take_pending(self.shared_info, port) {
                if let Some((word, bit)) = evtchn::pending_word_bit(port) {
                    self.latched[word] |= bit;
                }
            }
        }
    }

    /// Step 3 of a main-loop turn: sleeps (`SCHEDOP_poll`, no interrupts)
    /// until a polled port is pending or `timeout_ns` has passed. Returns
    /// at once if a port became pending after [`Self::clear_events`], or if
    /// the xenstore client left messages for its next pump. If Xen's clock
    /// cannot be read or the poll fails it yields the CPU instead (counted,
    /// [`Self::block_fallbacks`]) and the loop turns again: under Xen the
    /// loop never sleeps in `hlt`, whose only wake-ups there (the emulated
    /// PIT and PIC) a loop waiting for event channels must not depend on.
    pub fn block_until(&mut self, timeout_ns: u64) {
        if self.xs.has_backlog() {
            return;
        }
        let Some(now) =
            evtchn::time_info(self.shared_info).and_then(|t| t.at(crate::hypercall::rdtsc()))
        else {
            self.block_fallbacks += 1;
            evtchn::sched_yield();
            return;
        };
        // Xen's do_poll refuses more than 128 ports (-EINVAL). Past that we
        // poll the first 128 (xenstore and console come first) and wake
        // every 1 ms so the loop still sees the others' rings.
        let (ports, timeout_ns) = if self.poll_ports.len() > evtchn::SCHEDOP_POLL_MAX_PORTS {
            (
                &self.poll_ports[..evtchn::SCHEDOP_POLL_MAX_PORTS],
                timeout_ns.min(1_000_000),
            )
        } else {
            (&self.poll_ports[..], timeout_ns)
        };
        // A timeout of 0 would mean "none" to Xen.
        let deadline = now.saturating_add(timeout_ns).max(1);
        if evtchn::poll(ports, deadline).is_err() {
            self.block_fallbacks += 1;
            evtchn::sched_yield();
        }
    }

    /// Times [`Self::block_until`] yielded instead of polling (Xen's clock
    /// unreadable, or `SCHEDOP_poll` refused).
    pub fn block_fallbacks(&self) -> u64 {
        self.block_fallbacks
    }

    /// Reads `path`, waiting for xenstored up to
    /// [`crate::xenstore::REQUEST_TIMEOUT_NS`]. Boot only (the kernel's
    /// configuration read before the main loop starts): it blocks, and
    /// must never be called from the main loop.
    pub fn read_blocking(&mut self, path: &str) -> Result<Vec<u8>, XenError> {
        self.xs.request_blocking(XsOp::Read(path))
    }

    /// The main loop's xenstore work for this turn: pushes requests, files
    /// replies and watch events, times out old requests. Never waits.
    pub fn pump_xenstore(&mut self) {
        let now = self.xs.transport_mut().now_ns();
        self.xs.pump(now);
    }

    /// The next event of a watch whose token starts with
    /// [`crate::PRIVATE_TOKEN_PREFIX`].
    pub fn poll_private_watch(&mut self) -> Option<WatchEvent> {
        self.xs.poll_private_watch()
    }

    /// Binds a passed-through device's interrupt (its guest `gsi`, see
    /// [`crate::physdev::hvm_pci_intx_gsi`]) to an event channel the idle
    /// loop sleeps on: the device then wakes [`Self::block_until`].
    pub fn bind_device_irq(&mut self, gsi: u32) -> Result<physdev::DeviceIrq, XenError> {
        let irq = physdev::bind_gsi(gsi)?;
        self.open_ports.push(irq.port);
        self.device_irqs.push(irq);
        self.rebuild_poll_ports();
        Ok(irq)
    }

    /// Device interrupts bound so far.
    pub fn device_irqs(&self) -> &[physdev::DeviceIrq] {
        &self.device_irqs
    }

    /// After a loop turn has serviced the devices: EOIs every device
    /// interrupt that fired since the last call, so a level-triggered line
    /// can raise the next one. Returns how many fired.
    pub fn ack_device_irqs(&mut self) -> usize {
        let mut fired = 0;
        for i in 0..self.device_irqs.len() {
            let irq = self.device_irqs[i];
            if self.take_pending(irq.port) {
                physdev::eoi(&irq);
                fired += 1;
            }
        }
        self.device_irq_events += fired as u64;
        fired
    }

    /// Device interrupt events seen since start.
    pub fn device_irq_events(&self) -> u64 {
        self.device_irq_events
    }

    fn rebuild_poll_ports(&mut self) {
        self.poll_ports.clear();
        self.poll_ports.push(self.store_port);
        if let Some(p) = console::port().filter(|p| *p != self.store_port) {
            self.poll_ports.push(p);
        }
        self.poll_ports.extend_from_slice(&self.open_ports);
    }

    /// Takes `port`'s latched bit, if [`Self::clear_events`] saw it.
    fn take_latched(&mut self, port: EvtchnPort) -> bool {
        let Some((word, bit)) = evtchn::pending_word_bit(port) else {
            return false;
        };
        let was = self.latched[word] & bit != 0;
        self.latched[word] &= !bit;
        was
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
        self.rebuild_poll_ports();
        Ok(p)
    }

    fn bind_interdomain(
        &mut self,
        remote: DomId,
        remote_port: EvtchnPort,
    ) -> Result<EvtchnPort, XenError> {
        let p = evtchn::bind_interdomain(remote, remote_port)?;
        self.open_ports.push(p);
        self.rebuild_poll_ports();
        Ok(p)
    }

    fn send(&mut self, port: EvtchnPort) -> Result<(), XenError> {
        evtchn::send(port)
    }

    fn take_pending(&mut self, port: EvtchnPort) -> bool {
        // Both, always: the bit may have been latched and set again since.
        let latched = self.take_latched(port);
        evtchn::take_pending(self.shared_info, port) || latched
    }

    fn close(&mut self, port: EvtchnPort) -> Result<(), XenError> {
        evtchn::close(port)?;
        self.open_ports.retain(|p| *p != port);
        // A port number is reused by the next bind: no stale latch for it.
        let _ = self.take_latched(port);
        self.rebuild_poll_ports();
        Ok(())
    }
}

impl XenStore for Xen {
    fn submit(&mut self, op: XsOp<'_>) -> Result<RequestId, XenError> {
        self.xs.submit(op)
    }
    fn take_reply(&mut self, id: RequestId) -> Option<XsReply> {
        self.xs.take_reply(id)
    }
    fn forget(&mut self, id: RequestId) {
        self.xs.forget(id)
    }
    fn poll_watch(&mut self) -> Option<WatchEvent> {
        self.xs.poll_watch()
    }
}

impl Hypervisor for Xen {
    fn domid(&self) -> DomId {
        self.domid
    }
    fn now_ns(&mut self) -> u64 {
        self.xs.transport_mut().now_ns()
    }
}
