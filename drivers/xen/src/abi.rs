//! Xen ABI numbers and struct layouts the platform layer needs beyond
//! [`hypervisor::abi`], each named after its public header
//! (xen/include/public/...). Layouts are byte offsets for x86-64.

/// `__HYPERVISOR_memory_op` (xen.h).
pub const HYPERVISOR_MEMORY_OP: u32 = 12;
/// `__HYPERVISOR_console_io` (xen.h).
pub const HYPERVISOR_CONSOLE_IO: u32 = 18;
/// `__HYPERVISOR_sched_op` (xen.h).
pub const HYPERVISOR_SCHED_OP: u32 = 29;
/// `__HYPERVISOR_hvm_op` (xen.h).
pub const HYPERVISOR_HVM_OP: u32 = 34;
/// `__HYPERVISOR_vcpu_op` (xen.h): `(cmd, vcpuid, arg)`.
pub const HYPERVISOR_VCPU_OP: u32 = 24;

/// `VCPUOP_get_runstate_info` (vcpu.h), argument [`VcpuRunstateInfo`];
/// allowed to HVM domains (xen/arch/x86/hvm/hypercall.c, `hvm_vcpu_op`).
pub const VCPUOP_GET_RUNSTATE_INFO: u64 = 4;

/// `struct vcpu_runstate_info` (vcpu.h): `state` i32 at 0,
/// `state_entry_time` u64 at 8, `time[4]` u64 at 16: Xen system time (ns)
/// spent in each `RUNSTATE_*` (running, runnable, blocked, offline), the
/// current state's included up to the call (`vcpu_runstate_get`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct VcpuRunstateInfo {
    pub state: i32,
    pub pad: u32,
    pub state_entry_time: u64,
    pub time: [u64; 4],
}

/// `XENMEM_add_to_physmap` (memory.h).
pub const XENMEM_ADD_TO_PHYSMAP: u64 = 7;
/// `XENMAPSPACE_shared_info` (memory.h).
pub const XENMAPSPACE_SHARED_INFO: u32 = 0;

/// `struct xen_add_to_physmap` (memory.h): `domid` u16 at 0, `size` u16 at
/// 2, `space` u32 at 4, `idx` u64 at 8, `gpfn` u64 at 16.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct AddToPhysmap {
    pub domid: u16,
    pub size: u16,
    pub space: u32,
    pub idx: u64,
    pub gpfn: u64,
}

/// `HVMOP_get_param` (hvm/hvm_op.h).
pub const HVMOP_GET_PARAM: u64 = 1;
/// `HVMOP_set_param` (hvm_op.h).
pub const HVMOP_SET_PARAM: u64 = 0;
/// `HVM_PARAM_CALLBACK_IRQ` (params.h): how event channels notify an HVM
/// guest; type in bits 63:56.
pub const HVM_PARAM_CALLBACK_IRQ: u32 = 0;
/// `HVM_PARAM_CALLBACK_TYPE_VECTOR`: an interrupt vector, delivered
/// without the local APIC (nothing to EOI).
pub const HVM_PARAM_CALLBACK_TYPE_VECTOR: u64 = 2;

/// `struct xen_hvm_param` (hvm/hvm_op.h): `domid` u16 at 0, `index` u32 at
/// 4, `value` u64 at 8.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HvmParam {
    pub domid: u16,
    pub pad: u16,
    pub index: u32,
    pub value: u64,
}

/// `HVM_PARAM_STORE_PFN` (hvm/params.h): the xenstore ring's frame.
pub const HVM_PARAM_STORE_PFN: u32 = 1;
/// `HVM_PARAM_STORE_EVTCHN`.
pub const HVM_PARAM_STORE_EVTCHN: u32 = 2;
/// `HVM_PARAM_CONSOLE_PFN`: the PV console ring's frame.
pub const HVM_PARAM_CONSOLE_PFN: u32 = 17;
/// `HVM_PARAM_CONSOLE_EVTCHN`.
pub const HVM_PARAM_CONSOLE_EVTCHN: u32 = 18;

/// `SCHEDOP_shutdown` (sched.h), argument `struct sched_shutdown { unsigned
/// int reason; }`.
pub const SCHEDOP_SHUTDOWN: u64 = 2;
/// `SHUTDOWN_poweroff` (sched.h).
pub const SHUTDOWN_POWEROFF: u32 = 0;
/// `SHUTDOWN_crash`.
pub const SHUTDOWN_CRASH: u32 = 3;

/// `SCHEDOP_yield` (sched.h): let another vCPU run; no argument.
pub const SCHEDOP_YIELD: u64 = 0;

/// `SCHEDOP_block` (sched.h): sleep until an event is delivered. aggdom
/// does not issue it (it polls); the profile still names it.
pub const SCHEDOP_BLOCK: u64 = 1;

/// `SCHEDOP_poll` (sched.h): block until one of the listed event channels
/// is pending or the timeout (Xen system time, ns) passes.
pub const SCHEDOP_POLL: u64 = 3;

/// `struct sched_poll`: `ports` (a guest handle: pointer) at 0, `nr_ports`
/// u32 at 8, `timeout` u64 at 16.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SchedPoll {
    pub ports: u64,
    pub nr_ports: u32,
    pub pad: u32,
    pub timeout: u64,
}

/// `struct vcpu_time_info` of vCPU 0 in shared_info: `vcpu_info` starts
/// with `evtchn_upcall_pending`, `_mask`, `evtchn_pending_sel` (8 at 8),
/// `arch_vcpu_info` (16 bytes at 16), then `time` at 32: `version` u32 at
/// 0, `tsc_timestamp` u64 at 8, `system_time` u64 at 16,
/// `tsc_to_system_mul` u32 at 24, `tsc_shift` i8 at 28.
pub const SHARED_INFO_VCPU0_TIME: usize = 32;

/// `CONSOLEIO_write` (xen.h): Xen's own console (debug builds or
/// `guest_loglvl=all` show it in the hypervisor log).
pub const CONSOLEIO_WRITE: u64 = 0;

/// `struct evtchn_alloc_unbound` (event_channel.h): `dom` u16 at 0,
/// `remote_dom` u16 at 2, `port` (out) u32 at 4.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnAllocUnbound {
    pub dom: u16,
    pub remote_dom: u16,
    pub port: u32,
}

/// `struct evtchn_bind_interdomain`: `remote_dom` u16 at 0, `remote_port`
/// u32 at 4, `local_port` (out) u32 at 8.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnBindInterdomain {
    pub remote_dom: u16,
    pub pad: u16,
    pub remote_port: u32,
    pub local_port: u32,
}

/// `struct evtchn_send` / `evtchn_close`: one port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnPortArg {
    pub port: u32,
}

/// `__HYPERVISOR_physdev_op` (xen.h).
pub const HYPERVISOR_PHYSDEV_OP: u32 = 33;
/// `PHYSDEVOP_irq_status_query` (physdev.h): does this pirq need an EOI?
pub const PHYSDEVOP_IRQ_STATUS_QUERY: u64 = 5;
/// `XENIRQSTAT_needs_eoi`: the pirq must be EOIed (`PHYSDEVOP_eoi`).
pub const XENIRQSTAT_NEEDS_EOI: u32 = 1;
/// `PHYSDEVOP_eoi`: the guest is done with an interrupt of this pirq.
pub const PHYSDEVOP_EOI: u64 = 12;
/// `PHYSDEVOP_map_pirq`: a guest GSI (or MSI) to a pirq.
pub const PHYSDEVOP_MAP_PIRQ: u64 = 13;
/// `MAP_PIRQ_TYPE_GSI`.
pub const MAP_PIRQ_TYPE_GSI: i32 = 1;
/// `EVTCHNOP_bind_pirq` (event_channel.h).
pub const EVTCHNOP_BIND_PIRQ: u32 = 2;
/// `BIND_PIRQ__WILL_SHARE`: a level-triggered line others may share.
pub const BIND_PIRQ_WILL_SHARE: u32 = 1;

/// `struct physdev_map_pirq`: `domid` u16 at 0, then `type`, `index`,
/// `pirq` (in/out), `bus`, `devfn`, `entry_nr` as i32 from 4, and
/// `table_base` u64 at 32; 40 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PhysdevMapPirq {
    pub domid: u16,
    pub pad: u16,
    pub ty: i32,
    pub index: i32,
    pub pirq: i32,
    pub bus: i32,
    pub devfn: i32,
    pub entry_nr: i32,
    pub pad2: u32,
    pub table_base: u64,
}

/// `struct physdev_irq_status_query`: `irq` u32 at 0, `flags` (out) at 4.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PhysdevIrqStatusQuery {
    pub irq: u32,
    pub flags: u32,
}

/// `struct evtchn_bind_pirq`: `pirq` u32 at 0, `flags` at 4, `port` (out)
/// at 8.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnBindPirq {
    pub pirq: u32,
    pub flags: u32,
    pub port: u32,
}

/// `struct gnttab_map_grant_ref` (grant_table.h): `host_addr` at 0,
/// `flags` at 8, `ref` at 12, `dom` at 16, `status` (out) at 18, `handle`
/// (out) at 20, `dev_bus_addr` (out) at 24; 32 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabMapGrantRef {
    pub host_addr: u64,
    pub flags: u32,
    pub gref: u32,
    pub dom: u16,
    pub status: i16,
    pub handle: u32,
    pub dev_bus_addr: u64,
}

/// `struct gnttab_unmap_grant_ref`: `host_addr` at 0, `dev_bus_addr` at 8,
/// `handle` at 16, `status` (out) at 20; 24 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabUnmapGrantRef {
    pub host_addr: u64,
    pub dev_bus_addr: u64,
    pub handle: u32,
    pub status: i16,
    pub pad: u16,
}

/// `struct gnttab_copy_ptr`: `union { grant_ref_t ref; xen_pfn_t gmfn; }`
/// at 0, `domid` at 8, `offset` at 10; 16 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabCopyPtr {
    /// A grant ref (with `GNTCOPY_*_gref`) or a local frame number.
    pub u: u64,
    pub domid: u16,
    pub offset: u16,
    pub pad: u32,
}

/// `struct gnttab_copy`: source, dest, `len` u16 at 32, `flags` u16 at 34,
/// `status` (out) i16 at 36; 40 bytes (layout in
/// [`hypervisor::abi::gnttab_copy_layout`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabCopy {
    pub source: GnttabCopyPtr,
    pub dest: GnttabCopyPtr,
    pub len: u16,
    pub flags: u16,
    pub status: i16,
    pub pad: u16,
}

/// `shared_info` (xen.h, x86-64): 32 `vcpu_info` of 64 bytes, then
/// `evtchn_pending[64]` and `evtchn_mask[64]` (unsigned long each).
pub const SHARED_INFO_EVTCHN_PENDING: usize = 32 * 64;
pub const SHARED_INFO_EVTCHN_MASK: usize = SHARED_INFO_EVTCHN_PENDING + 64 * 8;
/// 2-level ABI: 64 words of 64 bits.
pub const EVTCHN_2L_NR_PORTS: u32 = 64 * 64;

/// `struct xenstore_domain_interface` (io/xs_wire.h).
pub mod xs_ring {
    pub const REQ: usize = 0;
    pub const RSP: usize = 1024;
    pub const SIZE: u32 = 1024;
    pub const REQ_CONS: usize = 2048;
    pub const REQ_PROD: usize = 2052;
    pub const RSP_CONS: usize = 2056;
    pub const RSP_PROD: usize = 2060;
    /// `server_features`: a bitmap xenstored sets (and never clears).
    pub const SERVER_FEATURES: usize = 2064;
    /// `connection`: [`CONNECTED`] or [`RECONNECT`]; valid only when the
    /// server offers [`FEATURE_RECONNECTION`].
    pub const CONNECTION: usize = 2068;
    /// `XENSTORE_SERVER_FEATURE_RECONNECTION`.
    pub const FEATURE_RECONNECTION: u32 = 1;
    /// `XENSTORE_CONNECTED`: the steady state; only the server sets it.
    pub const CONNECTED: u32 = 0;
    /// `XENSTORE_RECONNECT`: the guest asked for a reset; only the guest
    /// sets it.
    pub const RECONNECT: u32 = 1;
}

/// `struct xencons_interface` (io/console.h).
pub mod cons_ring {
    pub const IN: usize = 0;
    pub const IN_SIZE: u32 = 1024;
    pub const OUT: usize = 1024;
    pub const OUT_SIZE: u32 = 2048;
    pub const IN_CONS: usize = 3072;
    pub const IN_PROD: usize = 3076;
    pub const OUT_CONS: usize = 3080;
    pub const OUT_PROD: usize = 3084;
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};
    use hypervisor::abi::gnttab_copy_layout as l;

    #[test]
    fn layouts_match_the_headers() {
        assert_eq!(size_of::<AddToPhysmap>(), 24);
        assert_eq!(offset_of!(AddToPhysmap, gpfn), 16);
        assert_eq!(size_of::<HvmParam>(), 16);
        assert_eq!(offset_of!(HvmParam, value), 8);
        assert_eq!(size_of::<EvtchnBindInterdomain>(), 12);
        assert_eq!(offset_of!(EvtchnBindInterdomain, remote_port), 4);
        assert_eq!(size_of::<GnttabMapGrantRef>(), 32);
        assert_eq!(offset_of!(GnttabMapGrantRef, status), 18);
        assert_eq!(offset_of!(GnttabMapGrantRef, handle), 20);
        assert_eq!(offset_of!(GnttabMapGrantRef, dev_bus_addr), 24);
        assert_eq!(size_of::<GnttabUnmapGrantRef>(), 24);
        assert_eq!(size_of::<SchedPoll>(), 24);
        assert_eq!(size_of::<PhysdevMapPirq>(), 40);
        assert_eq!(offset_of!(PhysdevMapPirq, ty), 4);
        assert_eq!(offset_of!(PhysdevMapPirq, pirq), 12);
        assert_eq!(offset_of!(PhysdevMapPirq, entry_nr), 24);
        assert_eq!(offset_of!(PhysdevMapPirq, table_base), 32);
        assert_eq!(size_of::<PhysdevIrqStatusQuery>(), 8);
        assert_eq!(size_of::<EvtchnBindPirq>(), 12);
        assert_eq!(offset_of!(EvtchnBindPirq, port), 8);
        assert_eq!(offset_of!(SchedPoll, timeout), 16);
        assert_eq!(offset_of!(GnttabUnmapGrantRef, status), 20);
        assert_eq!(size_of::<GnttabCopy>(), l::SIZE);
        assert_eq!(offset_of!(GnttabCopy, dest), l::DEST);
        assert_eq!(offset_of!(GnttabCopyPtr, domid), l::PTR_DOMID);
        assert_eq!(offset_of!(GnttabCopyPtr, offset), l::PTR_OFFSET);
        assert_eq!(offset_of!(GnttabCopy, len), l::LEN);
        assert_eq!(offset_of!(GnttabCopy, flags), l::FLAGS);
        assert_eq!(offset_of!(GnttabCopy, status), l::STATUS);
    }
}
