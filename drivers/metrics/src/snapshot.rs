//! One consistent copy of the counters, taken between two polls.
use aggregation::{DropCounters, GuestCounters, IdentityId, Load, Mode, UplinkCounters, UplinkId};
use alloc::string::String;
use alloc::vec::Vec;
use datapath::{Datapath, DatapathCounters};
use nic::{Counters, MacAddr};

pub struct UplinkRow {
    pub index: usize,
    pub nic_kind: &'static str,
    /// The MAC register now.
    pub mac: MacAddr,
    pub link_up: bool,
    pub exclusive: bool,
    /// Identities held (indices).
    pub identities: Vec<usize>,
    pub load: Option<Load>,
    pub engine: UplinkCounters,
    pub nic: Counters,
}

pub struct GuestRow {
    pub index: usize,
    pub name: String,
    pub mac: MacAddr,
    pub ips: Vec<aggregation::IpNet>,
    pub counters: GuestCounters,
}

pub struct IdentityRow {
    pub index: usize,
    pub mac: MacAddr,
    pub holder: Option<usize>,
    pub pinned: bool,
    pub moves: u64,
    pub tx_bytes: u64,
    pub rx_bytes: u64,
}

pub struct Snapshot {
    pub mode: Mode,
    pub uptime_ms: u64,
    pub uplinks: Vec<UplinkRow>,
    pub guests: Vec<GuestRow>,
    pub identities: Vec<IdentityRow>,
    pub engine: aggregation::EngineCounters,
    pub datapath: DatapathCounters,
    /// Other counters of the domain, (name, help, value), e.g. HTTP scrapes.
    pub extra: Vec<(&'static str, &'static str, u64)>,
}

impl Snapshot {
    /// Takes the snapshot; `&mut` because NIC counters fold device
    /// statistics registers (clear-on-read) in as they are read.
    pub fn take(dp: &mut Datapath, uptime_ms: u64) -> Self {
        let mut uplinks = Vec::new();
        for i in 0..dp.uplink_count() {
            let id = UplinkId(i as u8);
            let engine = dp.engine();
            let identities = engine.held(id).iter().map(|x| usize::from(x.0)).collect();
            let load = engine.load(id);
            let counters = engine
                .uplink_counters(id)
                .copied()
                .unwrap_or(UplinkCounters::ZERO);
            let exclusive = engine.is_exclusive(id);
            let Some(nic) = dp.uplink(id) else { continue };
            uplinks.push(UplinkRow {
                index: i,
                nic_kind: nic.kind(),
                mac: nic.mac(),
                link_up: nic.link_up(),
                exclusive,
                identities,
                load,
                engine: counters,
                nic: nic.counters(),
            });
        }
        let engine = dp.engine();
        let guests = dp
            .guests()
            .map(|(g, info)| GuestRow {
                index: usize::from(g.0),
                name: info.name.clone(),
                mac: info.mac,
                ips: info.ips.clone(),
                counters: engine
                    .guest_counters(g)
                    .copied()
                    .unwrap_or(GuestCounters::ZERO),
            })
            .collect();
        let identities = (0..engine.identity_count())
            .map(|i| {
                let id = IdentityId(i as u8);
                let c = engine.identity_counters(id).copied().unwrap_or_default();
                IdentityRow {
                    index: i,
                    mac: engine.identity_mac(id).unwrap_or(MacAddr::ZERO),
                    holder: engine.holder(id).map(|u| usize::from(u.0)),
                    pinned: engine.is_pinned(id),
                    moves: c.moves,
                    tx_bytes: c.tx_bytes,
                    rx_bytes: c.rx_bytes,
                }
            })
            .collect();
        Snapshot {
            mode: engine.mode(),
            uptime_ms,
            uplinks,
            guests,
            identities,
            engine: *engine.counters(),
            datapath: *dp.counters(),
            extra: Vec::new(),
        }
    }
}

/// All drop reasons with a non-zero count, for compact tables.
pub(crate) fn nonzero_drops(d: &DropCounters) -> impl Iterator<Item = (&'static str, u64)> + '_ {
    aggregation::DropReason::ALL
        .iter()
        .map(|r| (r.name(), d.get(*r)))
        .filter(|(_, n)| *n > 0)
}
