//! The console's `stats`: the same snapshot as `/metrics`, as three tables.
use crate::snapshot::{nonzero_drops, Snapshot};
use alloc::string::String;
use core::fmt::Write;

fn join<T: core::fmt::Display>(items: &[T], sep: &str) -> String {
    let mut s = String::new();
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            s.push_str(sep);
        }
        let _ = write!(s, "{x}");
    }
    s
}

/// Non-zero drop counts as `reason=n` words (reasons prefixed), or `-`.
fn drop_list(d: &aggregation::DropCounters, prefix: &str) -> String {
    let mut out = String::new();
    for (name, n) in nonzero_drops(d) {
        if !out.is_empty() {
            out.push(' ');
        }
        let _ = write!(out, "{prefix}{name}={n}");
    }
    if out.is_empty() {
        out.push('-');
    }
    out
}

pub fn render_tables(s: &Snapshot) -> String {
    let mut o = String::new();
    let mode = s.mode.name();
    let _ = writeln!(
        o,
        "mode {mode}, uptime {}.{:03} s",
        s.uptime_ms / 1000,
        s.uptime_ms % 1000
    );
    let _ = writeln!(
        o,
        "uplink kind        mac               link ids      tx_frames   tx_bytes    rx_frames   rx_bytes    tx_B/s     rx_B/s     mac_writes moves_in moves_out rx_drops"
    );
    for u in &s.uplinks {
        let ids = join(&u.identities, ",");
        let (tx_rate, rx_rate) = u
            .load
            .map_or((0, 0), |l| (l.tx_bytes_per_s, l.rx_bytes_per_s));
        let _ =
            writeln!(
            o,
            "{:<6} {:<11} {} {:<4} {:<8} {:<11} {:<11} {:<11} {:<11} {:<10} {:<10} {:<10} {:<8} {:<9} {}",
            u.index,
            u.nic_kind,
            u.mac,
            if u.link_up { "up" } else { "down" },
            if u.exclusive { alloc::format!("{ids}x") } else { ids },
            u.engine.tx_frames,
            u.engine.tx_bytes,
            u.engine.rx_frames,
            u.engine.rx_bytes,
            tx_rate,
            rx_rate,
            u.nic.mac_writes,
            u.engine.moves_in,
            u.engine.moves_out,
            drop_list(&u.engine.rx_drops, ""),
        );
    }
    let _ = writeln!(o, "guest  name        mac               tx_frames   tx_bytes    rx_frames   rx_bytes    local    per-uplink tx     drops");
    for g in &s.guests {
        let per_uplink: alloc::vec::Vec<u64> = s
            .uplinks
            .iter()
            .map(|u| {
                g.counters
                    .tx_frames_per_uplink
                    .get(u.index)
                    .copied()
                    .unwrap_or(0)
            })
            .collect();
        // Frames from the guest, then frames to it (`rx_` reasons).
        let mut drops = drop_list(&g.counters.tx_drops, "");
        let rx = drop_list(&g.counters.rx_drops, "rx_");
        if drops == "-" {
            drops = rx;
        } else if rx != "-" {
            drops = alloc::format!("{drops} {rx}");
        }
        let _ = writeln!(
            o,
            "{:<6} {:<11} {} {:<11} {:<11} {:<11} {:<11} {:<8} {:<17} {}",
            g.index,
            g.name,
            g.mac,
            g.counters.tx_frames,
            g.counters.tx_bytes,
            g.counters.rx_frames,
            g.counters.rx_bytes,
            g.counters.tx_local,
            join(&per_uplink, "/"),
            drops,
        );
    }
    let _ = writeln!(
        o,
        "identity mac               holder pinned moves tx_bytes    rx_bytes"
    );
    for i in &s.identities {
        let holder = i
            .holder
            .map_or(String::from("-"), |h| alloc::format!("{h}"));
        let _ = writeln!(
            o,
            "{:<8} {} {:<6} {:<6} {:<5} {:<11} {}",
            i.index,
            i.mac,
            holder,
            if i.pinned { "yes" } else { "no" },
            i.moves,
            i.tx_bytes,
            i.rx_bytes
        );
    }
    let d = &s.datapath;
    let e = &s.engine;
    let _ = writeln!(
        o,
        "own tx {} rx {} swaps {}; rebalance runs {} moves {}; failover moves {}; learning frames {}; lost: uplink full {}, guest full {}, own queue full {}",
        e.own_tx_frames,
        e.own_rx_frames,
        e.own_tx_swaps,
        e.rebalance_runs,
        e.rebalance_moves,
        e.failover_moves,
        d.learning_frames,
        d.uplink_tx_full,
        d.guest_port_full,
        d.own_queue_full
    );
    let _ = writeln!(
        o,
        "flooded {}; solicitations directed {}; mld out {}; stranded identities {}; program errors {}; literal mac writes {}; literal unsupported {}; own tx drops {}",
        e.rx_flooded,
        e.rx_nd_directed,
        e.mld_out,
        e.stranded,
        d.program_errors,
        d.literal_mac_writes,
        d.literal_unsupported,
        drop_list(&e.own_tx_drops, ""),
    );
    let _ = writeln!(
        o,
        "offload: gso to uplink tso {}, gso cut for an uplink {}, gso to guests {}, gso cut {}, checksums completed {}, errors {}",
        d.gso_uplink_tso,
        d.gso_uplink_software,
        d.gso_guest,
        d.gso_software,
        d.csum_software,
        d.offload_errors,
    );
    // The engine's count, not the NIC's link bit: a frame the datapath
    // put on an uplink before its link check saw the link go is lost with
    // no counter, so a test waits for this before it sends again.
    let downs: alloc::vec::Vec<u64> = s.uplinks.iter().map(|u| u.engine.link_downs).collect();
    let _ = writeln!(o, "link downs per uplink {}", join(&downs, "/"));
    if !s.extra.is_empty() {
        // `aggdom_http_refused_total` -> `http_refused`: the /metrics
        // name, without what every name has.
        let mut words = String::new();
        for (name, _, value) in &s.extra {
            let name = name.strip_prefix("aggdom_").unwrap_or(name);
            let name = name.strip_suffix("_total").unwrap_or(name);
            let _ = write!(
                words,
                "{}{name} {value}",
                if words.is_empty() { "" } else { ", " }
            );
        }
        let _ = writeln!(o, "domain: {words}");
    }
    o
}
