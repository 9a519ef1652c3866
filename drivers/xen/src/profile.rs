//! The hypercall profile: cycles and calls of every hypercall aggdom
//! issues, counted where all of them go through ([`crate::hypercall`]'s
//! `hypercall`), so none can be missed.
//!
//! Counted by hypercall number, except that the multiplexed ones whose
//! sub-operations cost very differently are split by their first argument
//! (the command): `GNTTABOP_copy` (the datapath's every frame) from the
//! other grant ops, `EVTCHNOP_send` (a notify) from the other event-channel
//! ops, and `SCHEDOP_poll` / `block` / `yield` (time handed to Xen) from
//! the other scheduler ops.
//!
//! Beside it, [`runstate`]: Xen's own account of where our vCPU's time went.
use core::fmt::{self, Display, Formatter};

use aggdom_profile::{Counts, Slot};
use hypervisor::abi::{
    EVTCHNOP_SEND, GNTTABOP_COPY, HYPERVISOR_EVENT_CHANNEL_OP, HYPERVISOR_GRANT_TABLE_OP,
};

use crate::abi::{
    VcpuRunstateInfo, HYPERVISOR_SCHED_OP, HYPERVISOR_VCPU_OP, SCHEDOP_BLOCK, SCHEDOP_POLL,
    SCHEDOP_YIELD, VCPUOP_GET_RUNSTATE_INFO,
};

/// Hypercall numbers the hypercall page has stubs for (one 32-byte stub
/// each in a 4 KiB page).
pub const OPS: usize = 128;

// The split-off kinds, past the hypercall numbers.
const GRANT_COPY: usize = OPS;
const EVTCHN_SEND: usize = OPS + 1;
const SCHED_POLL: usize = OPS + 2;
const SCHED_BLOCK: usize = OPS + 3;
const SCHED_YIELD: usize = OPS + 4;
const KINDS: usize = OPS + 5;

/// 133 slots of 16 bytes: a few KiB of statics, no allocation ever.
static SLOTS: [Slot; KINDS] = [const { Slot::new() }; KINDS];

/// What a hypercall is counted as: its number, or a split-off command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind(usize);

impl Kind {
    /// Hypercall `op` with first argument `cmd`; `None` for a number past
    /// the hypercall page (never issued).
    pub fn of(op: u32, cmd: u64) -> Option<Kind> {
        let kind = match (op, cmd) {
            (HYPERVISOR_GRANT_TABLE_OP, c) if c == u64::from(GNTTABOP_COPY) => GRANT_COPY,
            (HYPERVISOR_EVENT_CHANNEL_OP, c) if c == u64::from(EVTCHNOP_SEND) => EVTCHN_SEND,
            (HYPERVISOR_SCHED_OP, SCHEDOP_POLL) => SCHED_POLL,
            (HYPERVISOR_SCHED_OP, SCHEDOP_BLOCK) => SCHED_BLOCK,
            (HYPERVISOR_SCHED_OP, SCHEDOP_YIELD) => SCHED_YIELD,
            (op, _) if (op as usize) < OPS => op as usize,
            _ => return None,
        };
        Some(Kind(kind))
    }

    /// True for the kinds that hand the CPU to Xen (their time is time
    /// asleep, not work).
    pub fn asleep(self) -> bool {
        matches!(self.0, SCHED_POLL | SCHED_BLOCK | SCHED_YIELD)
    }
}

/// One word, for the console's `profile hypercall <kind>` lines: Xen's
/// name without `__HYPERVISOR_` for the numbers aggdom issues (xen.h),
/// `op_<n>` for any other.
impl Display for Kind {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            GRANT_COPY => "grant_copy",
            EVTCHN_SEND => "evtchn_send",
            SCHED_POLL => "sched_poll",
            SCHED_BLOCK => "sched_block",
            SCHED_YIELD => "sched_yield",
            20 => "grant_other",
            32 => "evtchn_other",
            29 => "sched_other",
            12 => "memory_op",
            17 => "xen_version",
            18 => "console_io",
            24 => "vcpu_op",
            33 => "physdev_op",
            34 => "hvm_op",
            n => return write!(f, "op_{n}"),
        };
        f.write_str(name)
    }
}

/// Counts one hypercall that took `cycles`. `op` is below [`OPS`] (the
/// shim issues no other).
#[inline]
pub(crate) fn record(op: u32, cmd: u64, cycles: u64) {
    if let Some(Kind(k)) = Kind::of(op, cmd) {
        SLOTS[k].add(cycles);
    }
}

/// Every kind with its counts since boot or the last [`reset`], called or
/// not.
pub fn counts() -> impl Iterator<Item = (Kind, Counts)> {
    SLOTS.iter().enumerate().map(|(k, s)| (Kind(k), s.get()))
}

pub fn reset() {
    SLOTS.iter().for_each(Slot::reset);
}

/// Xen's own account of vCPU 0's time (`VCPUOP_get_runstate_info`), in ns
/// of Xen system time: running, runnable (wanted a CPU, another vCPU had
/// it), blocked, offline. What the TSC cannot tell: busy time that Xen
/// gave to someone else. `None` when not on Xen or refused.
pub fn runstate() -> Option<[u64; 4]> {
    let mut info = VcpuRunstateInfo::default();
    // SAFETY: VCPUOP_get_runstate_info on vCPU 0 (ours) writes one
    // vcpu_runstate_info, which `info` is (abi.rs layout), and nothing else.
    let rc = unsafe {
        crate::hypercall::hypercall(
            HYPERVISOR_VCPU_OP,
            VCPUOP_GET_RUNSTATE_INFO,
            0,
            &mut info as *mut VcpuRunstateInfo as u64,
            0,
            0,
        )
    };
    (rc == 0).then_some(info.time)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypervisor::abi::{EVTCHNOP_UNMASK, GNTTABOP_MAP_GRANT_REF};

    use crate::abi::{HYPERVISOR_MEMORY_OP, XENMEM_ADD_TO_PHYSMAP};

    fn name(op: u32, cmd: u64) -> String {
        Kind::of(op, cmd).unwrap().to_string()
    }

    #[test]
    fn kinds_by_number_and_by_command() {
        let table: &[(u32, u64, &str, bool)] = &[
            (
                HYPERVISOR_GRANT_TABLE_OP,
                GNTTABOP_COPY.into(),
                "grant_copy",
                false,
            ),
            (
                HYPERVISOR_GRANT_TABLE_OP,
                GNTTABOP_MAP_GRANT_REF.into(),
                "grant_other",
                false,
            ),
            (
                HYPERVISOR_EVENT_CHANNEL_OP,
                EVTCHNOP_SEND.into(),
                "evtchn_send",
                false,
            ),
            (
                HYPERVISOR_EVENT_CHANNEL_OP,
                EVTCHNOP_UNMASK.into(),
                "evtchn_other",
                false,
            ),
            (HYPERVISOR_SCHED_OP, SCHEDOP_POLL, "sched_poll", true),
            (HYPERVISOR_SCHED_OP, SCHEDOP_BLOCK, "sched_block", true),
            (HYPERVISOR_SCHED_OP, SCHEDOP_YIELD, "sched_yield", true),
            (HYPERVISOR_SCHED_OP, 2, "sched_other", false),
            (
                HYPERVISOR_MEMORY_OP,
                XENMEM_ADD_TO_PHYSMAP,
                "memory_op",
                false,
            ),
            (7, 0, "op_7", false),
            (127, 5, "op_127", false),
        ];
        for &(op, cmd, want, asleep) in table {
            assert_eq!(name(op, cmd), want, "op {op} cmd {cmd}");
            assert_eq!(Kind::of(op, cmd).unwrap().asleep(), asleep, "{want}");
        }
        assert_eq!(Kind::of(128, 0), None);
        assert_eq!(Kind::of(u32::MAX, 0), None);
    }

    #[test]
    fn every_kind_has_a_distinct_one_word_name() {
        let names: Vec<String> = counts().map(|(k, _)| k.to_string()).collect();
        assert_eq!(names.len(), KINDS);
        for (i, n) in names.iter().enumerate() {
            assert!(!n.is_empty() && !n.contains(' '), "{n}");
            assert!(!names[..i].contains(n), "{n} twice");
        }
    }

    #[test]
    fn runstate_info_has_xens_layout() {
        assert_eq!(core::mem::size_of::<VcpuRunstateInfo>(), 48);
        assert_eq!(core::mem::offset_of!(VcpuRunstateInfo, state_entry_time), 8);
        assert_eq!(core::mem::offset_of!(VcpuRunstateInfo, time), 16);
    }

    #[test]
    fn records_land_in_their_kind_until_reset() {
        // The only test touching the statics: no race with another test.
        record(HYPERVISOR_GRANT_TABLE_OP, GNTTABOP_COPY.into(), 100);
        record(HYPERVISOR_GRANT_TABLE_OP, GNTTABOP_COPY.into(), 50);
        record(HYPERVISOR_SCHED_OP, SCHEDOP_POLL, 7);
        record(200, 0, 9);
        let called: Vec<(String, Counts)> = counts()
            .filter(|(_, c)| c.calls > 0)
            .map(|(k, c)| (k.to_string(), c))
            .collect();
        assert_eq!(
            called,
            [
                (
                    "grant_copy".into(),
                    Counts {
                        calls: 2,
                        cycles: 150
                    }
                ),
                (
                    "sched_poll".into(),
                    Counts {
                        calls: 1,
                        cycles: 7
                    }
                ),
            ]
        );
        reset();
        assert!(counts().all(|(_, c)| c == Counts::default()));
    }
}
