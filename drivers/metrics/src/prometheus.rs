//! The Prometheus text exposition format (version 0.0.4): one `# HELP` and
//! one `# TYPE` line per metric family, counters named `*_total`, labels
//! for uplink, guest, identity and drop reason.
use crate::snapshot::Snapshot;
use aggregation::DropReason;
use alloc::string::String;
use core::fmt::Write;

enum Kind {
    Counter,
    Gauge,
}

/// Writes one metric family: its HELP and TYPE lines and one sample per row.
fn family<I, L>(out: &mut String, name: &str, help: &str, kind: Kind, rows: I)
where
    I: IntoIterator<Item = (L, u64)>,
    L: core::fmt::Display,
{
    let kind = match kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
    };
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in rows {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

/// `{uplink="0"}` and friends.
struct Labels<'a>(&'a [(&'a str, &'a dyn core::fmt::Display)]);

impl core::fmt::Display for Labels<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            // Label values here are numbers, MACs and reason names: no
            // character needs escaping.
            write!(f, "{k}=\"{v}\"")?;
        }
        f.write_str("}")
    }
}

pub fn render_prometheus(s: &Snapshot) -> String {
    let mut out = String::new();
    let o = &mut out;
    macro_rules! per_uplink {
        ($name:literal, $help:literal, $kind:expr, |$u:ident| $value:expr) => {
            family(
                o,
                $name,
                $help,
                $kind,
                s.uplinks.iter().map(|$u| {
                    (
                        alloc::format!("{}", Labels(&[("uplink", &$u.index)])),
                        $value,
                    )
                }),
            )
        };
    }
    per_uplink!(
        "aggdom_uplink_tx_frames_total",
        "Frames the engine sent through the uplink.",
        Kind::Counter,
        |u| u.engine.tx_frames
    );
    per_uplink!(
        "aggdom_uplink_tx_bytes_total",
        "Bytes the engine sent through the uplink.",
        Kind::Counter,
        |u| u.engine.tx_bytes
    );
    per_uplink!(
        "aggdom_uplink_rx_frames_total",
        "Frames received on the uplink.",
        Kind::Counter,
        |u| u.engine.rx_frames
    );
    per_uplink!(
        "aggdom_uplink_rx_bytes_total",
        "Bytes received on the uplink.",
        Kind::Counter,
        |u| u.engine.rx_bytes
    );
    per_uplink!(
        "aggdom_uplink_mac_writes_total",
        "Writes of the uplink's MAC register (driver count).",
        Kind::Counter,
        |u| u.nic.mac_writes
    );
    per_uplink!(
        "aggdom_uplink_moves_in_total",
        "Identities that moved onto the uplink.",
        Kind::Counter,
        |u| u.engine.moves_in
    );
    per_uplink!(
        "aggdom_uplink_moves_out_total",
        "Identities that moved off the uplink.",
        Kind::Counter,
        |u| u.engine.moves_out
    );
    per_uplink!(
        "aggdom_uplink_link_downs_total",
        "Times the uplink's link went down.",
        Kind::Counter,
        |u| u.engine.link_downs
    );
    per_uplink!(
        "aggdom_uplink_identities",
        "Identities the uplink holds now.",
        Kind::Gauge,
        |u| u.identities.len() as u64
    );
    per_uplink!(
        "aggdom_uplink_link_up",
        "1 when the uplink's link is up.",
        Kind::Gauge,
        |u| u64::from(u.link_up)
    );
    per_uplink!(
        "aggdom_uplink_tx_rate_bytes_per_second",
        "Smoothed transmit rate (EWMA).",
        Kind::Gauge,
        |u| u.load.map_or(0, |l| l.tx_bytes_per_s)
    );
    per_uplink!(
        "aggdom_uplink_rx_rate_bytes_per_second",
        "Smoothed receive rate (EWMA).",
        Kind::Gauge,
        |u| u.load.map_or(0, |l| l.rx_bytes_per_s)
    );
    per_uplink!(
        "aggdom_uplink_nic_tx_frames_total",
        "Frames the NIC reported sent.",
        Kind::Counter,
        |u| u.nic.tx_frames
    );
    per_uplink!(
        "aggdom_uplink_nic_rx_frames_total",
        "Frames the NIC delivered.",
        Kind::Counter,
        |u| u.nic.rx_frames
    );
    per_uplink!(
        "aggdom_uplink_nic_rx_drops_total",
        "Frames the driver discarded (runt, oversized, errored).",
        Kind::Counter,
        |u| u.nic.rx_drops
    );
    per_uplink!(
        "aggdom_uplink_nic_rx_missed_total",
        "Frames the NIC missed for lack of receive buffers.",
        Kind::Counter,
        |u| u.nic.rx_missed
    );
    family(
        o,
        "aggdom_uplink_rx_drops_total",
        "Frames received on the uplink and dropped, by reason.",
        Kind::Counter,
        s.uplinks.iter().flat_map(|u| {
            DropReason::ALL.iter().map(move |r| {
                (
                    alloc::format!("{}", Labels(&[("uplink", &u.index), ("reason", &r.name())])),
                    u.engine.rx_drops.get(*r),
                )
            })
        }),
    );

    macro_rules! per_guest {
        ($name:literal, $help:literal, |$g:ident| $value:expr) => {
            family(
                o,
                $name,
                $help,
                Kind::Counter,
                s.guests.iter().map(|$g| {
                    (
                        alloc::format!("{}", Labels(&[("guest", &$g.index), ("mac", &$g.mac)])),
                        $value,
                    )
                }),
            )
        };
    }
    per_guest!(
        "aggdom_guest_tx_frames_total",
        "Frames the guest sent that left through an uplink.",
        |g| g.counters.tx_frames
    );
    per_guest!(
        "aggdom_guest_tx_bytes_total",
        "Bytes the guest sent that left through an uplink.",
        |g| g.counters.tx_bytes
    );
    per_guest!(
        "aggdom_guest_rx_frames_total",
        "Frames delivered to the guest.",
        |g| g.counters.rx_frames
    );
    per_guest!(
        "aggdom_guest_rx_bytes_total",
        "Bytes delivered to the guest.",
        |g| g.counters.rx_bytes
    );
    per_guest!(
        "aggdom_guest_tx_local_total",
        "Frames the guest sent that were switched locally.",
        |g| g.counters.tx_local
    );
    family(
        o,
        "aggdom_guest_tx_drops_total",
        "Frames from the guest dropped, by reason (denied, spoofed, ...).",
        Kind::Counter,
        s.guests.iter().flat_map(|g| {
            DropReason::ALL.iter().map(move |r| {
                (
                    alloc::format!("{}", Labels(&[("guest", &g.index), ("reason", &r.name())])),
                    g.counters.tx_drops.get(*r),
                )
            })
        }),
    );
    family(
        o,
        "aggdom_guest_rx_drops_total",
        "Frames to the guest dropped, by reason (denied, ...).",
        Kind::Counter,
        s.guests.iter().flat_map(|g| {
            DropReason::ALL.iter().map(move |r| {
                (
                    alloc::format!("{}", Labels(&[("guest", &g.index), ("reason", &r.name())])),
                    g.counters.rx_drops.get(*r),
                )
            })
        }),
    );
    family(
        o,
        "aggdom_guest_uplink_tx_frames_total",
        "Frames from the guest, by the uplink they left through.",
        Kind::Counter,
        s.guests.iter().flat_map(|g| {
            s.uplinks.iter().map(move |u| {
                let n = g
                    .counters
                    .tx_frames_per_uplink
                    .get(u.index)
                    .copied()
                    .unwrap_or(0);
                (
                    alloc::format!("{}", Labels(&[("guest", &g.index), ("uplink", &u.index)])),
                    n,
                )
            })
        }),
    );

    let id_labels = |i: &crate::IdentityRow| {
        alloc::format!("{}", Labels(&[("identity", &i.index), ("mac", &i.mac)]))
    };
    family(
        o,
        "aggdom_identity_holder",
        "The uplink holding the identity now.",
        Kind::Gauge,
        s.identities
            .iter()
            .map(|i| (id_labels(i), i.holder.map_or(u64::MAX, |h| h as u64))),
    );
    family(
        o,
        "aggdom_identity_pinned",
        "1 when the identity is pinned to its uplink.",
        Kind::Gauge,
        s.identities
            .iter()
            .map(|i| (id_labels(i), u64::from(i.pinned))),
    );
    family(
        o,
        "aggdom_identity_moves_total",
        "Times the identity moved to another uplink.",
        Kind::Counter,
        s.identities.iter().map(|i| (id_labels(i), i.moves)),
    );
    family(
        o,
        "aggdom_identity_tx_bytes_total",
        "Bytes sent under the identity.",
        Kind::Counter,
        s.identities.iter().map(|i| (id_labels(i), i.tx_bytes)),
    );
    family(
        o,
        "aggdom_identity_rx_bytes_total",
        "Bytes received for the identity.",
        Kind::Counter,
        s.identities.iter().map(|i| (id_labels(i), i.rx_bytes)),
    );

    family(
        o,
        "aggdom_own_tx_drops_total",
        "Frames from the domain's own stack dropped, by reason.",
        Kind::Counter,
        DropReason::ALL.iter().map(|r| {
            (
                alloc::format!("{}", Labels(&[("reason", &r.name())])),
                s.engine.own_tx_drops.get(*r),
            )
        }),
    );

    let none = || alloc::format!("{}", Labels(&[]));
    let e = &s.engine;
    let d = &s.datapath;
    let scalars: [(&str, &str, Kind, u64); 24] = [
        (
            "aggdom_own_tx_frames_total",
            "Frames the domain's own stack sent.",
            Kind::Counter,
            e.own_tx_frames,
        ),
        (
            "aggdom_own_rx_frames_total",
            "Frames delivered to the domain's own stack.",
            Kind::Counter,
            e.own_rx_frames,
        ),
        (
            "aggdom_own_tx_swaps_total",
            "Identity swaps made for own-stack frames (claim step 5).",
            Kind::Counter,
            e.own_tx_swaps,
        ),
        (
            "aggdom_rebalance_runs_total",
            "Rebalance checks run.",
            Kind::Counter,
            e.rebalance_runs,
        ),
        (
            "aggdom_rebalance_moves_total",
            "Identity moves made to rebalance load.",
            Kind::Counter,
            e.rebalance_moves,
        ),
        (
            "aggdom_failover_moves_total",
            "Identity moves made because a link went down or came back.",
            Kind::Counter,
            e.failover_moves,
        ),
        (
            "aggdom_rx_flooded_total",
            "Broadcasts received and flooded to the guests.",
            Kind::Counter,
            e.rx_flooded,
        ),
        (
            "aggdom_rx_nd_directed_total",
            "IPv6 neighbour solicitations received and given to their target's guest alone.",
            Kind::Counter,
            e.rx_nd_directed,
        ),
        (
            "aggdom_mld_out_total",
            "MLD reports from guests sent through the uplink taking in multicast.",
            Kind::Counter,
            e.mld_out,
        ),
        (
            "aggdom_stranded_identities_total",
            "Identities a link failure could move nowhere (no live uplink with room).",
            Kind::Counter,
            e.stranded,
        ),
        (
            "aggdom_datapath_program_errors_total",
            "MAC register or filter writes the NIC refused.",
            Kind::Counter,
            d.program_errors,
        ),
        (
            "aggdom_datapath_uplink_tx_full_total",
            "Frames lost to a full uplink transmit ring.",
            Kind::Counter,
            d.uplink_tx_full,
        ),
        (
            "aggdom_datapath_guest_port_full_total",
            "Frames lost to a guest port without room.",
            Kind::Counter,
            d.guest_port_full,
        ),
        (
            "aggdom_datapath_own_queue_full_total",
            "Frames lost to a full own-stack queue.",
            Kind::Counter,
            d.own_queue_full,
        ),
        (
            "aggdom_datapath_learning_frames_total",
            "Learning frames sent after identity moves.",
            Kind::Counter,
            d.learning_frames,
        ),
        (
            "aggdom_datapath_literal_mac_writes_total",
            "MAC register writes around guest frames (literal mode).",
            Kind::Counter,
            d.literal_mac_writes,
        ),
        (
            "aggdom_datapath_literal_unsupported_total",
            "Guest frames sent without the MAC register write: the uplink cannot write it (literal mode).",
            Kind::Counter,
            d.literal_unsupported,
        ),
        (
            "aggdom_datapath_gso_uplink_tso_total",
            "Guests' GSO super-frames queued whole on an uplink that segments them (TSO).",
            Kind::Counter,
            d.gso_uplink_tso,
        ),
        (
            "aggdom_datapath_gso_uplink_software_total",
            "Guests' GSO super-frames cut into segments in software for an uplink without TSO.",
            Kind::Counter,
            d.gso_uplink_software,
        ),
        (
            "aggdom_datapath_gso_guest_total",
            "GSO super-frames handed whole to another guest's port.",
            Kind::Counter,
            d.gso_guest,
        ),
        (
            "aggdom_datapath_gso_software_total",
            "GSO super-frames the datapath cut itself (own stack, floods, plain ports).",
            Kind::Counter,
            d.gso_software,
        ),
        (
            "aggdom_datapath_csum_software_total",
            "Partial checksums the datapath completed itself.",
            Kind::Counter,
            d.csum_software,
        ),
        (
            "aggdom_datapath_offload_errors_total",
            "Frames dropped because their offload request does not fit them.",
            Kind::Counter,
            d.offload_errors,
        ),
        (
            "aggdom_uptime_seconds",
            "Seconds since aggdom started.",
            Kind::Gauge,
            s.uptime_ms / 1000,
        ),
    ];
    for (name, help, kind, value) in scalars {
        family(o, name, help, kind, [(none(), value)]);
    }
    for (name, help, value) in &s.extra {
        family(o, name, help, Kind::Counter, [(none(), *value)]);
    }
    out
}
