//! Building a datapath from a configuration plan: all or nothing.
//!
//! The plan is first carried out on fake copies of the NICs (same factory
//! MACs and filter slots), so any error is found before a real NIC is
//! touched and every real NIC comes back to the caller unchanged.
use crate::{Datapath, GuestPort, NicPort};
use aggdom_config::{Binding, ConfigError, NicAddress, OwnStack, Plan};
use aggregation::{Engine, GuestId, IdentityId, IpNet, UplinkId};
use alloc::boxed::Box;
use alloc::format;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv6Addr};
use nic::{FakeNic, MacAddr, Nic};

/// Frames of room each way between the datapath and the own IP stack.
pub const OWN_QUEUE_FRAMES: usize = 64;

/// What each NIC became.
pub enum Role {
    Uplink(UplinkId),
    Guest(GuestId),
    /// Named by no configuration item: left idle.
    Spare(Box<dyn Nic>),
}

pub struct Built {
    pub datapath: Datapath,
    /// One per NIC, in the order given.
    pub roles: Vec<Role>,
}

/// Builds the datapath `plan` describes from `nics` (the usable NICs, in
/// PCI order, at `addresses`). On error the NICs are returned untouched.
pub fn build(
    plan: &Plan,
    nics: Vec<Box<dyn Nic>>,
    addresses: &[NicAddress],
) -> Result<Built, (ConfigError, Vec<Box<dyn Nic>>)> {
    let fakes: Vec<Box<dyn Nic>> = nics
        .iter()
        .map(|n| {
            let mut fake = FakeNic::new(n.permanent_mac()).with_filter_slots(n.filter_slots());
            fake.set_link(true);
            Box::new(fake) as Box<dyn Nic>
        })
        .collect();
    if let Err(e) = configure(plan, fakes, addresses) {
        return Err((e, nics));
    }
    configure(plan, nics, addresses).map_err(|e| (e, Vec::new()))
}

/// Carries out one `bind=` item on the engine (the plan's, and under Xen
/// those held back until a vif with the IP attaches).
pub fn apply_binding(
    engine: &mut Engine,
    ip: IpNet,
    binding: &Binding,
) -> Result<(), aggregation::Error> {
    match binding {
        Binding::Identities(ids) => {
            // Config's parser keeps identities within 0..=255.
            let ids: Vec<IdentityId> = ids.iter().map(|&i| IdentityId(i as u8)).collect();
            engine.bind(ip, &ids)
        }
        Binding::None => engine.bind(ip, &[]),
        Binding::Auto => engine.bind_auto(ip),
    }
}

/// The own stack's addresses with their prefix lengths: those configured,
/// and with IPv6 the link-local address made from `mac` (RFC 4291 2.5.1,
/// modified EUI-64), which every IPv6 node has.
pub fn own_addresses(own: &OwnStack, mac: MacAddr) -> Vec<(IpAddr, u8)> {
    let mut ips = own.ips.clone();
    if ips.iter().any(|(ip, _)| ip.is_ipv6()) {
        let m = mac.0;
        let ll = Ipv6Addr::from([
            0xfe,
            0x80,
            0,
            0,
            0,
            0,
            0,
            0,
            m[0] ^ 2,
            m[1],
            m[2],
            0xff,
            0xfe,
            m[3],
            m[4],
            m[5],
        ]);
        if !ips.iter().any(|(ip, _)| *ip == IpAddr::V6(ll)) {
            ips.push((IpAddr::V6(ll), 64));
        }
    }
    ips
}

fn engine_error(item: &str, e: impl core::fmt::Display) -> ConfigError {
    ConfigError::new(item, format!("{e}"))
}

fn configure(
    plan: &Plan,
    nics: Vec<Box<dyn Nic>>,
    addresses: &[NicAddress],
) -> Result<Built, ConfigError> {
    let resolved = plan.resolve(addresses)?;
    let mut slots: Vec<Option<Box<dyn Nic>>> = nics.into_iter().map(Some).collect();
    let mut roles: Vec<Option<Role>> = slots.iter().map(|_| None).collect();
    let mut dp = Datapath::new(plan.engine, OWN_QUEUE_FRAMES);
    for u in &resolved.uplinks {
        let nic = slots[u.nic]
            .take()
            .ok_or_else(|| ConfigError::new("uplinks", "NIC used twice".into()))?;
        let id = dp
            .add_uplink(nic, u.capacity_mbps, u.exclusive)
            .map_err(|e| engine_error("uplinks", e))?;
        roles[u.nic] = Some(Role::Uplink(id));
    }
    for (k, (g, &at)) in plan.guests.iter().zip(&resolved.guest_ports).enumerate() {
        let nic = slots[at]
            .take()
            .ok_or_else(|| ConfigError::new("guest", "NIC used twice".into()))?;
        let port: Box<dyn GuestPort> =
            Box::new(NicPort::new(nic).map_err(|e| engine_error("guest", e))?);
        let id = dp
            .add_guest(&format!("guest{k}"), port, g.mac, &g.ips)
            .map_err(|e| engine_error("guest", e))?;
        roles[at] = Some(Role::Guest(id));
    }
    for (ip, binding) in &plan.bindings {
        apply_binding(dp.engine_mut(), *ip, binding)
            .map_err(|e| engine_error(&format!("bind={ip}"), e))?;
    }
    for &id in &plan.pinned {
        dp.engine_mut()
            .pin(IdentityId(id as u8))
            .map_err(|e| engine_error("pin", e))?;
    }
    if let Some(own) = &plan.own {
        let id = IdentityId(own.identity as u8);
        let mac = dp.engine().identity_mac(id).unwrap_or_default();
        let ips: Vec<IpAddr> = own_addresses(own, mac).iter().map(|a| a.0).collect();
        dp.set_own_stack(id, &ips)
            .map_err(|e| engine_error("ip", e))?;
    }
    dp.program_all();
    let roles = roles
        .into_iter()
        .zip(slots)
        .map(|(role, spare)| match (role, spare) {
            (Some(role), _) => role,
            (None, Some(nic)) => Role::Spare(nic),
            // Every NIC taken has a role; kept total for the type checker.
            (None, None) => Role::Spare(Box::new(FakeNic::new(nic::MacAddr([2, 0, 0, 0, 0, 0])))),
        })
        .collect();
    Ok(Built {
        datapath: dp,
        roles,
    })
}
