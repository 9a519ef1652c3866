//! A passed-through PCI device's interrupt as an event channel, so the
//! main loop's `SCHEDOP_poll` wakes when a NIC has frames instead of
//! polling its rings on a timer.
//!
//! In an HVM domain, qemu-xen binds a passed-through device's INTx to the
//! guest GSI `hvm_pci_intx_gsi` names. `PHYSDEVOP_map_pirq` (GSI, this
//! domain) returns the pirq of that binding (the machine GSI), and
//! `EVTCHNOP_bind_pirq` then makes Xen raise an event channel on every
//! interrupt (`hvm_dirq_assist` → `send_guest_pirq`) besides asserting the
//! virtual line, which aggdom leaves masked. Ports stay masked: the event
//! is only a pending bit, which is all `SCHEDOP_poll` needs. This is the
//! path Linux HVM guests with `XENFEAT_hvm_pirqs` take. Xen allows it only
//! to a domain that has an event-channel callback vector
//! (`is_hvm_pv_evtchn_domain`; `-EINVAL` otherwise): see
//! [`set_callback_vector`]. aggdom keeps interrupts off under Xen, so the
//! vector is never taken; it only has to be registered.
use hypervisor::abi::{DOMID_SELF, HYPERVISOR_EVENT_CHANNEL_OP};
use hypervisor::{EvtchnPort, XenError};

use crate::abi::{
    EvtchnBindPirq, PhysdevIrqStatusQuery, PhysdevMapPirq, BIND_PIRQ_WILL_SHARE,
    EVTCHNOP_BIND_PIRQ, HYPERVISOR_PHYSDEV_OP, MAP_PIRQ_TYPE_GSI, PHYSDEVOP_EOI,
    PHYSDEVOP_IRQ_STATUS_QUERY, PHYSDEVOP_MAP_PIRQ, XENIRQSTAT_NEEDS_EOI,
};
use crate::abi::{
    HvmParam, HVMOP_SET_PARAM, HVM_PARAM_CALLBACK_IRQ, HVM_PARAM_CALLBACK_TYPE_VECTOR,
    HYPERVISOR_HVM_OP,
};
use crate::hypercall::{check, op2};

/// The guest GSI of PCI device `slot`'s interrupt pin `pin` (1 = INTA ..
/// 4 = INTD, the config space's Interrupt Pin) in an HVM domain: Xen's
/// `hvm_pci_intx_gsi(dev, intx)`, the IOAPIC pins 16-47 the DSDT routes
/// PCI interrupts to. `None` for a device without an interrupt pin.
pub fn hvm_pci_intx_gsi(slot: u8, pin: u8) -> Option<u32> {
    if !(1..=4).contains(&pin) || slot > 31 {
        return None;
    }
    let (dev, intx) = (u32::from(slot), u32::from(pin - 1));
    Some((((dev << 2) + (dev >> 3) + intx) & 31) + 16)
}

/// Registers `vector` as this domain's event-channel callback
/// (`HVM_PARAM_CALLBACK_IRQ`, vector type), which Xen requires before it
/// maps a GSI to a pirq for an HVM domain; `None` removes it again. The
/// caller has an IDT gate for `vector` that simply returns, in case
/// interrupts are ever enabled with events pending.
pub fn set_callback_vector(vector: Option<u8>) -> Result<(), XenError> {
    let mut p = HvmParam {
        domid: DOMID_SELF,
        pad: 0,
        index: HVM_PARAM_CALLBACK_IRQ,
        value: vector.map_or(0, |v| (HVM_PARAM_CALLBACK_TYPE_VECTOR << 56) | u64::from(v)),
    };
    // SAFETY: a valid xen_hvm_param; Xen only reads it.
    check(unsafe { op2(HYPERVISOR_HVM_OP, HVMOP_SET_PARAM, &mut p) }).map(drop)
}

/// A device interrupt bound to an event channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceIrq {
    pub gsi: u32,
    pub pirq: u32,
    pub port: EvtchnPort,
    /// Xen wants `PHYSDEVOP_eoi` after each interrupt ([`eoi`]).
    pub needs_eoi: bool,
}

/// Maps guest `gsi` to its pirq and binds that to a new event channel.
pub fn bind_gsi(gsi: u32) -> Result<DeviceIrq, XenError> {
    let mut map = PhysdevMapPirq {
        domid: DOMID_SELF,
        ty: MAP_PIRQ_TYPE_GSI,
        index: gsi as i32,
        pirq: -1,
        ..Default::default()
    };
    // SAFETY: a valid physdev_map_pirq; Xen writes only `pirq` (and for
    // MSI types other fields, not used here).
    check(unsafe { op2(HYPERVISOR_PHYSDEV_OP, PHYSDEVOP_MAP_PIRQ, &mut map) })?;
    let pirq = u32::try_from(map.pirq).map_err(|_| XenError::Inval)?;
    let mut bind = EvtchnBindPirq {
        pirq,
        // PCI INTx is level-triggered and may be shared.
        flags: BIND_PIRQ_WILL_SHARE,
        port: 0,
    };
    // SAFETY: a valid evtchn_bind_pirq; Xen writes only `port`.
    check(unsafe {
        op2(
            HYPERVISOR_EVENT_CHANNEL_OP,
            u64::from(EVTCHNOP_BIND_PIRQ),
            &mut bind,
        )
    })?;
    let mut status = PhysdevIrqStatusQuery {
        irq: pirq,
        flags: 0,
    };
    // SAFETY: a valid physdev_irq_status_query; Xen writes only `flags`.
    // If the query fails, EOI anyway: a needless EOI is harmless.
    let needs_eoi = check(unsafe {
        op2(
            HYPERVISOR_PHYSDEV_OP,
            PHYSDEVOP_IRQ_STATUS_QUERY,
            &mut status,
        )
    })
    .map_or(true, |_| status.flags & XENIRQSTAT_NEEDS_EOI != 0);
    Ok(DeviceIrq {
        gsi,
        pirq,
        port: bind.port,
        needs_eoi,
    })
}

/// Tells Xen the domain has serviced `irq`'s device (it may deliver the
/// next interrupt of a level-triggered line).
pub fn eoi(irq: &DeviceIrq) {
    if !irq.needs_eoi {
        return;
    }
    let mut arg = irq.pirq;
    // SAFETY: `struct physdev_eoi { uint32_t irq; }`.
    let _ = unsafe { op2(HYPERVISOR_PHYSDEV_OP, PHYSDEVOP_EOI, &mut arg) };
}

#[cfg(test)]
mod tests {
    use super::hvm_pci_intx_gsi;

    #[test]
    fn gsis_follow_xens_formula() {
        // The rig passes NICs through at 00:03.0 and 00:04.0, INTA.
        assert_eq!(hvm_pci_intx_gsi(3, 1), Some(28));
        assert_eq!(hvm_pci_intx_gsi(4, 1), Some(32));
        assert_eq!(hvm_pci_intx_gsi(4, 2), Some(33));
        // dev >> 3 spreads slots 8 apart onto different pins.
        assert_eq!(hvm_pci_intx_gsi(8, 1), Some(((32 + 1) & 31) + 16));
        assert_eq!(hvm_pci_intx_gsi(31, 4), Some(((124 + 3 + 3) & 31) + 16));
        assert_eq!(hvm_pci_intx_gsi(3, 0), None, "no interrupt pin");
        assert_eq!(hvm_pci_intx_gsi(3, 5), None);
        assert_eq!(hvm_pci_intx_gsi(32, 1), None);
    }
}
