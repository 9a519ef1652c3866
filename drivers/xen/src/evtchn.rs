//! Event channels, 2-level ABI, polled: ports are bound and sent with
//! `HYPERVISOR_event_channel_op`; pending bits are tested and cleared in
//! shared_info, which is mapped into our memory with
//! `XENMEM_add_to_physmap`. No upcall vector is registered, so Xen never
//! interrupts us.
use core::sync::atomic::{AtomicU64, Ordering};

use hypervisor::abi::{
    DOMID_SELF, EVTCHNOP_ALLOC_UNBOUND, EVTCHNOP_BIND_INTERDOMAIN, EVTCHNOP_CLOSE, EVTCHNOP_SEND,
    HYPERVISOR_EVENT_CHANNEL_OP,
};
use hypervisor::{DomId, EvtchnPort, XenError};

use crate::abi::{
    AddToPhysmap, EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnPortArg, SchedPoll,
    EVTCHN_2L_NR_PORTS, HYPERVISOR_MEMORY_OP, HYPERVISOR_SCHED_OP, SCHEDOP_POLL, SCHEDOP_YIELD,
    SHARED_INFO_EVTCHN_PENDING, SHARED_INFO_VCPU0_TIME, XENMAPSPACE_SHARED_INFO,
    XENMEM_ADD_TO_PHYSMAP,
};
use crate::hypercall::{check, op2, PageCell};

/// The page whose frame is replaced by Xen's shared_info.
static SHARED_INFO: PageCell = PageCell::new();

/// The word and bit of `port` in the 2-level pending bitmap.
pub fn pending_word_bit(port: EvtchnPort) -> Option<(usize, u64)> {
    (port < EVTCHN_2L_NR_PORTS).then(|| ((port / 64) as usize, 1u64 << (port % 64)))
}

/// Maps shared_info over [`SHARED_INFO`]'s frame. Returns its address.
pub fn map_shared_info() -> Result<usize, XenError> {
    let addr = SHARED_INFO.addr();
    let mut arg = AddToPhysmap {
        domid: DOMID_SELF,
        size: 0,
        space: XENMAPSPACE_SHARED_INFO,
        idx: 0,
        gpfn: addr >> 12,
    };
    // SAFETY: `arg` is a valid xen_add_to_physmap; the frame it names is
    // our static page, which only this module reaches, by raw pointer.
    check(unsafe { op2(HYPERVISOR_MEMORY_OP, XENMEM_ADD_TO_PHYSMAP, &mut arg) })?;
    Ok(addr as usize)
}

/// Tests and clears `port`'s pending bit in shared_info at `shared_info`.
pub fn take_pending(shared_info: usize, port: EvtchnPort) -> bool {
    let Some((word, bit)) = pending_word_bit(port) else {
        return false;
    };
    let at = shared_info + SHARED_INFO_EVTCHN_PENDING + word * 8;
    // SAFETY: `shared_info` is the mapped shared_info page (map_shared_info
    // succeeded); the word lies inside it (port < 4096) and is 8-aligned.
    // Xen sets bits with locked operations, so an atomic and is the right
    // way to clear ours.
    let w = unsafe { AtomicU64::from_ptr(at as *mut u64) };
    w.fetch_and(!bit, Ordering::AcqRel) & bit != 0
}

/// Reads vCPU 0's time record consistently (version even and unchanged
/// around the copy), up to a few tries.
pub fn time_info(shared_info: usize) -> Option<crate::time::TimeInfo> {
    let base = shared_info + SHARED_INFO_VCPU0_TIME;
    for _ in 0..16 {
        // SAFETY: `shared_info` is the mapped shared_info page; the record
        // lies inside it. Xen updates it concurrently, hence volatile reads
        // and the version check around them.
        let (v0, tsc_timestamp, system_time, mul, shift, v1) = unsafe {
            let v0 = core::ptr::read_volatile(base as *const u32);
            core::sync::atomic::fence(Ordering::Acquire);
            let tsc = core::ptr::read_volatile((base + 8) as *const u64);
            let sys = core::ptr::read_volatile((base + 16) as *const u64);
            let mul = core::ptr::read_volatile((base + 24) as *const u32);
            let shift = core::ptr::read_volatile((base + 28) as *const i8);
            core::sync::atomic::fence(Ordering::Acquire);
            let v1 = core::ptr::read_volatile(base as *const u32);
            (v0, tsc, sys, mul, shift, v1)
        };
        if v0 == v1 && v0 & 1 == 0 {
            return Some(crate::time::TimeInfo {
                version: v0,
                tsc_timestamp,
                system_time,
                tsc_to_system_mul: mul,
                tsc_shift: shift,
            });
        }
    }
    None
}

/// The most ports one `SCHEDOP_poll` takes: Xen's `do_poll`
/// (xen/common/sched/core.c) answers `-EINVAL` to `nr_ports > 128`.
pub const SCHEDOP_POLL_MAX_PORTS: usize = 128;

/// Blocks this vCPU until one of `ports` is pending or Xen system time
/// reaches `deadline` (`SCHEDOP_poll`); no interrupt is involved. Returns
/// at once if a port is already pending. At most
/// [`SCHEDOP_POLL_MAX_PORTS`] ports; `deadline` 0 means no timeout.
pub fn poll(ports: &[EvtchnPort], deadline: u64) -> Result<(), XenError> {
    let mut arg = SchedPoll {
        ports: ports.as_ptr() as u64,
        nr_ports: ports.len() as u32,
        pad: 0,
        timeout: deadline,
    };
    // SAFETY: a valid sched_poll whose `ports` points to `ports.len()`
    // port numbers that Xen only reads.
    check(unsafe { op2(HYPERVISOR_SCHED_OP, SCHEDOP_POLL, &mut arg) }).map(drop)
}

/// `SCHEDOP_yield`: gives this physical CPU to another runnable vCPU (dom0's
/// xenstored or xenconsoled, whom we are waiting for).
pub fn sched_yield() {
    // SAFETY: SCHEDOP_yield takes no argument.
    let _ = unsafe { crate::hypercall::hypercall(HYPERVISOR_SCHED_OP, SCHEDOP_YIELD, 0, 0, 0, 0) };
}

/// Waits for `port` (or `timeout_ns`) without spinning: clears its pending
/// bit, then `SCHEDOP_poll`; falls back to a yield when Xen's clock cannot
/// be read. A notification that came between the caller's last look and
/// the clear costs at most `timeout_ns`.
pub fn wait_port(shared_info: usize, port: EvtchnPort, timeout_ns: u64) {
    let _ = take_pending(shared_info, port);
    match time_info(shared_info).and_then(|t| t.at(crate::hypercall::rdtsc())) {
        Some(now) => {
            if poll(&[port], now.saturating_add(timeout_ns)).is_err() {
                sched_yield();
            }
        }
        None => sched_yield(),
    }
}

fn evtchn_op<T>(cmd: u32, arg: &mut T) -> Result<(), XenError> {
    // SAFETY: every caller passes the structure `cmd` takes (abi.rs layouts).
    check(unsafe { op2(HYPERVISOR_EVENT_CHANNEL_OP, u64::from(cmd), arg) }).map(drop)
}

pub fn alloc_unbound(remote: DomId) -> Result<EvtchnPort, XenError> {
    let mut a = EvtchnAllocUnbound {
        dom: DOMID_SELF,
        remote_dom: remote,
        port: 0,
    };
    evtchn_op(EVTCHNOP_ALLOC_UNBOUND, &mut a)?;
    Ok(a.port)
}

pub fn bind_interdomain(remote: DomId, remote_port: EvtchnPort) -> Result<EvtchnPort, XenError> {
    let mut a = EvtchnBindInterdomain {
        remote_dom: remote,
        remote_port,
        ..Default::default()
    };
    evtchn_op(EVTCHNOP_BIND_INTERDOMAIN, &mut a)?;
    Ok(a.local_port)
}

pub fn send(port: EvtchnPort) -> Result<(), XenError> {
    evtchn_op(EVTCHNOP_SEND, &mut EvtchnPortArg { port })
}

pub fn close(port: EvtchnPort) -> Result<(), XenError> {
    evtchn_op(EVTCHNOP_CLOSE, &mut EvtchnPortArg { port })
}

#[cfg(test)]
mod tests {
    use super::pending_word_bit;

    #[test]
    fn ports_map_to_words_and_bits() {
        assert_eq!(pending_word_bit(0), Some((0, 1)));
        assert_eq!(pending_word_bit(63), Some((0, 1 << 63)));
        assert_eq!(pending_word_bit(64), Some((1, 1)));
        assert_eq!(pending_word_bit(4095), Some((63, 1 << 63)));
        assert_eq!(pending_word_bit(4096), None);
    }
}
