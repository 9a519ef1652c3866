//! The simulated world: uplinks of fixed capacity behind one learning
//! switch, guests with steady, bursty and heavy-hitter demand towards peers
//! on the switch, an optional link failure, and the figures measured.
//!
//! Time advances in 1 ms steps. Each step every uplink may carry `C` bytes
//! per direction (no queue: what does not fit is a capacity drop); frames
//! are 1500 bytes and are interleaved round-robin over guests, so contending
//! guests share a full uplink about evenly. Peers resolve each guest's IP by
//! ARP at start and every 30 s, staggered. The switch learns source MACs
//! from frames leaving the uplinks (and from learning frames), forgets a
//! port's MACs when its link drops, and floods unknown unicast to every live
//! port; a static link aggregation (balance-xor) hashes instead.

// Per-guest and per-uplink state lives in parallel vectors indexed by
// number; index loops read better here than zipped iterators.
#![allow(clippy::needless_range_loop)]

use std::collections::HashMap;

use aggregation::MacAddr;

use crate::policies::{Out, Policy};

pub const FRAME: u64 = 1500;
const ARP_REFRESH_MS: u64 = 30_000;
const TICK_MS: u64 = 10;
const SERIES_MS: u64 = 100;
/// After a link event, moves within this long count as failover, not
/// steady state; so do the first seconds of a run (warm-up).
const SETTLE_MS: u64 = 10_000;

/// A tiny deterministic generator (xorshift64*).
#[derive(Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What a guest asks for, in Mbit/s per direction.
#[derive(Clone, Copy, Debug)]
pub enum Demand {
    Steady {
        tx: u32,
        rx: u32,
    },
    /// On for `on_ms` at the rates, then off for `off_ms`, from `phase_ms`.
    Bursty {
        tx: u32,
        rx: u32,
        on_ms: u64,
        off_ms: u64,
        phase_ms: u64,
    },
    /// Wants more than one uplink: bound to every identity in aggdom ([0052]).
    Heavy {
        tx: u32,
        rx: u32,
    },
}

#[derive(Clone)]
pub struct Topology {
    pub uplinks: usize,
    pub mbps: u32,
    pub guests: Vec<Demand>,
    pub peers: usize,
    /// How many peers are on the switch; the others sit behind one router.
    pub on_link: usize,
}

impl Topology {
    pub fn uplink_mac(&self, u: usize) -> MacAddr {
        MacAddr([0x02, 0, 0, 0, 0, 1 + u as u8])
    }
    pub fn guest_mac(&self, g: usize) -> MacAddr {
        MacAddr([0x52, 0x54, 0, 0x12, 0x34, 1 + g as u8])
    }
    pub fn guest_ip(&self, g: usize) -> [u8; 4] {
        [10, 0, 1, 1 + g as u8]
    }
    /// Peers 0..ON_LINK are hosts on the switch; the rest are remote, so
    /// their frames carry the router's MAC (and the router keeps one ARP
    /// entry per guest for all of them).
    pub fn peer_mac(&self, p: usize) -> MacAddr {
        let l2 = self.l2_peer(p);
        MacAddr([
            0x02,
            0xbb,
            0,
            0,
            0,
            (l2 as u8).wrapping_mul(29).wrapping_add(3),
        ])
    }
    /// The on-link neighbour that frames for peer `p` go to / come from.
    pub fn l2_peer(&self, p: usize) -> usize {
        p.min(self.on_link)
    }
    pub fn peer_ip(&self, p: usize) -> [u8; 4] {
        [10, 0, 2, 1 + p as u8]
    }
    pub fn heavy_guests(&self) -> impl Iterator<Item = usize> + '_ {
        self.guests
            .iter()
            .enumerate()
            .filter(|(_, d)| matches!(d, Demand::Heavy { .. }))
            .map(|(g, _)| g)
    }
    /// (tx, rx) Mbit/s of guest `g` at `t_ms`.
    pub fn demand(&self, g: usize, t_ms: u64) -> (u32, u32) {
        match self.guests[g] {
            Demand::Steady { tx, rx } | Demand::Heavy { tx, rx } => (tx, rx),
            Demand::Bursty {
                tx,
                rx,
                on_ms,
                off_ms,
                phase_ms,
            } => {
                if (t_ms + phase_ms) % (on_ms + off_ms) < on_ms {
                    (tx, rx)
                } else {
                    (0, 0)
                }
            }
        }
    }
    pub fn guest_kind(&self, g: usize) -> &'static str {
        match self.guests[g] {
            Demand::Steady { .. } => "steady",
            Demand::Bursty { .. } => "bursty",
            Demand::Heavy { .. } => "heavy",
        }
    }
}

#[derive(Clone, Copy)]
pub struct Failure {
    pub uplink: usize,
    pub down_ms: u64,
    pub up_ms: u64,
}

#[derive(Clone)]
pub struct Scenario {
    pub name: &'static str,
    pub seconds: u64,
    pub failure: Option<Failure>,
    /// Link-monitor delay before the policy hears of a link change (bonding
    /// miimon=100 detects in 50 ms on average); the same for every policy.
    pub detect_ms: u64,
}

struct Switch {
    table: HashMap<MacAddr, usize>,
    flaps: u64,
}

impl Switch {
    fn learn(&mut self, mac: MacAddr, port: usize) {
        if let Some(old) = self.table.insert(mac, port) {
            if old != port {
                self.flaps += 1;
            }
        }
    }
    fn port_down(&mut self, port: usize) {
        self.table.retain(|_, p| *p != port);
    }
}

/// Everything measured in one run of one policy.
pub struct Outcome {
    pub policy: &'static str,
    pub offered: u64,
    pub feasible: u64,
    pub delivered: u64,
    pub jain: f64,
    pub max_over_mean: f64,
    pub moves_rebalance: u64,
    pub moves_failover: u64,
    pub steady_moves_per_min: f64,
    pub mac_writes: u64,
    pub switch_flaps: u64,
    pub lost_noncapacity: u64,
    pub lost_failure_window: u64,
    /// Per guest: (delivered bytes, fair-share bytes).
    pub per_guest: Vec<(u64, u64)>,
    /// Per uplink, utilisation % (mean of both directions) per 100 ms.
    pub series: Vec<Vec<f64>>,
}

/// Max-min fair split of `cap` over `demands` (water-filling).
fn waterfill(demands: &[u64], cap: u64) -> Vec<u64> {
    let mut idx: Vec<usize> = (0..demands.len()).collect();
    idx.sort_by_key(|&i| demands[i]);
    let mut out = vec![0; demands.len()];
    let mut left = cap;
    let mut n = demands.len() as u64;
    for i in idx {
        let share = left / n.max(1);
        let give = demands[i].min(share);
        out[i] = give;
        left -= give;
        n -= 1;
    }
    out
}

pub fn run(topo: &Topology, sc: &Scenario, policy: &mut dyn Policy) -> Outcome {
    let nu = topo.uplinks;
    let ng = topo.guests.len();
    let cap = topo.mbps as u64 * 125; // bytes per ms
    let overhead = policy.tx_overhead();
    let mut phys = vec![true; nu];
    let mut sw = Switch {
        table: HashMap::new(),
        flaps: 0,
    };
    let mut cache = vec![vec![MacAddr::default(); topo.peers]; ng];
    let mut carry_tx = vec![0u64; ng];
    let mut carry_rx = vec![0u64; ng];
    let mut frame = vec![0u8; FRAME as usize];
    let mut peer_rr = vec![0usize; ng];
    // A static aggregation is one logical port to the switch: it hashes
    // rather than learns, so nothing there can flap.
    let lag = policy
        .lag_port(MacAddr::default(), MacAddr::default(), &phys)
        .is_some();

    let mut o = Outcome {
        policy: policy.name(),
        offered: 0,
        feasible: 0,
        delivered: 0,
        jain: 0.0,
        max_over_mean: 0.0,
        moves_rebalance: 0,
        moves_failover: 0,
        steady_moves_per_min: 0.0,
        mac_writes: 0,
        switch_flaps: 0,
        lost_noncapacity: 0,
        lost_failure_window: 0,
        per_guest: vec![(0, 0); ng],
        series: vec![vec![]; nu],
    };
    let mut sec_load = vec![0u64; nu];
    let mut series_load = vec![0u64; nu];
    let (mut jain_sum, mut mm_sum, mut windows) = (0.0, 0.0, 0u64);
    let mut steady_moves = 0u64;
    let mut steady_ms = 0u64;
    let total_ms = sc.seconds * 1000;

    let settling = |t: u64| {
        t < SETTLE_MS
            || sc.failure.is_some_and(|f| {
                (t >= f.down_ms && t < f.down_ms + SETTLE_MS)
                    || (t >= f.up_ms && t < f.up_ms + SETTLE_MS)
            })
    };
    let in_failure_window = |t: u64| {
        sc.failure
            .is_some_and(|f| t >= f.down_ms && t < f.up_ms + 5_000)
    };

    for t in 0..total_ms {
        let now = t * 1_000_000;
        // Link events: the wire and switch at once, the policy after detection.
        if let Some(f) = sc.failure {
            if t == f.down_ms {
                phys[f.uplink] = false;
                sw.port_down(f.uplink);
            }
            if t == f.up_ms {
                phys[f.uplink] = true;
            }
            let mut learn = vec![];
            if t == f.down_ms + sc.detect_ms {
                learn = policy.link(now, f.uplink, false);
            }
            if t == f.up_ms + sc.detect_ms {
                learn = policy.link(now, f.uplink, true);
            }
            for (u, mac) in learn {
                if phys[u] && !lag {
                    sw.learn(mac, u);
                }
            }
        }
        // ARP: every peer resolves every guest at start, then every 30 s.
        for g in 0..ng {
            for p in 0..=topo.on_link.min(topo.peers - 1) {
                let offset = ((g * topo.peers + p) as u64 * 37) % ARP_REFRESH_MS;
                if t == 0 || (t > 0 && (t + offset).is_multiple_of(ARP_REFRESH_MS)) {
                    let (mac, out) = policy.resolve(now, g, p, &mut frame);
                    cache[g][p] = mac;
                    if let Some((u, src)) = out {
                        if phys[u] && !lag {
                            sw.learn(src, u);
                        }
                    }
                }
            }
        }

        // Demand this millisecond, and what an ideal aggregate could carry.
        let live_cap = cap * phys.iter().filter(|&&l| l).count() as u64;
        let mut want_tx = vec![0u64; ng];
        let mut want_rx = vec![0u64; ng];
        for g in 0..ng {
            let (tx, rx) = topo.demand(g, t);
            carry_tx[g] += tx as u64 * 125;
            carry_rx[g] += rx as u64 * 125;
            want_tx[g] = carry_tx[g] / FRAME;
            want_rx[g] = carry_rx[g] / FRAME;
            carry_tx[g] %= FRAME;
            carry_rx[g] %= FRAME;
        }
        let bytes = |v: &[u64]| v.iter().map(|f| f * FRAME).collect::<Vec<_>>();
        let fair_tx = waterfill(&bytes(&want_tx), live_cap);
        let fair_rx = waterfill(&bytes(&want_rx), live_cap);
        for g in 0..ng {
            o.per_guest[g].1 += fair_tx[g] + fair_rx[g];
            o.feasible += fair_tx[g] + fair_rx[g];
            o.offered += (want_tx[g] + want_rx[g]) * FRAME;
        }

        let mut tx_budget = vec![cap; nu];
        let mut rx_budget = vec![cap; nu];
        let mut lost = 0u64;

        // Transmit, one frame per guest per round.
        let mut left = want_tx.clone();
        let mut active = true;
        while active {
            active = false;
            for g in 0..ng {
                if left[g] == 0 {
                    continue;
                }
                left[g] -= 1;
                active = true;
                let p = peer_rr[g] % topo.peers;
                peer_rr[g] += 1;
                let out: Out = policy.tx(now, g, p, &mut frame);
                match out {
                    Some((u, src)) if phys[u] => {
                        if tx_budget[u] >= FRAME + overhead {
                            tx_budget[u] -= FRAME + overhead;
                            sec_load[u] += FRAME;
                            series_load[u] += FRAME;
                            o.delivered += FRAME;
                            o.per_guest[g].0 += FRAME;
                            if !lag {
                                sw.learn(src, u);
                            }
                        }
                    }
                    _ => lost += 1,
                }
            }
        }

        // Receive: peers send to the MAC they resolved.
        let mut left = want_rx.clone();
        let mut active = true;
        let live: Vec<bool> = phys.clone();
        while active {
            active = false;
            for g in 0..ng {
                if left[g] == 0 {
                    continue;
                }
                left[g] -= 1;
                active = true;
                let p = peer_rr[g] % topo.peers;
                peer_rr[g] += 1;
                let dst = cache[g][topo.l2_peer(p)];
                let src = topo.peer_mac(p);
                let ports: Vec<usize> = match policy.lag_port(src, dst, &live) {
                    Some(u) => vec![u],
                    None => match sw.table.get(&dst) {
                        Some(&u) if phys[u] => vec![u],
                        _ => (0..nu).filter(|&u| phys[u]).collect(),
                    },
                };
                let mut accepted = false;
                let mut squeezed = false;
                for u in ports {
                    if rx_budget[u] < FRAME {
                        squeezed = true;
                        continue;
                    }
                    rx_budget[u] -= FRAME;
                    sec_load[u] += FRAME;
                    series_load[u] += FRAME;
                    aggregation::testkit::ipv4(
                        &mut frame,
                        dst,
                        src,
                        topo.peer_ip(p),
                        topo.guest_ip(g),
                    );
                    if !accepted && policy.rx(now, u, g, &mut frame) {
                        accepted = true;
                    }
                }
                if accepted {
                    o.delivered += FRAME;
                    o.per_guest[g].0 += FRAME;
                } else if !squeezed {
                    lost += 1;
                }
            }
        }
        o.lost_noncapacity += lost;
        if in_failure_window(t) {
            o.lost_failure_window += lost;
        }

        if t % TICK_MS == 0 {
            let before = policy.moves().0;
            for (u, mac) in policy.tick(now) {
                if phys[u] && !lag {
                    sw.learn(mac, u);
                }
            }
            if !settling(t) {
                steady_moves += policy.moves().0 - before;
            }
        }
        if !settling(t) {
            steady_ms += 1;
        }
        if (t + 1) % SERIES_MS == 0 {
            for u in 0..nu {
                let util = series_load[u] as f64 / (2.0 * cap as f64 * SERIES_MS as f64) * 100.0;
                o.series[u].push(util);
                series_load[u] = 0;
            }
        }
        if (t + 1) % 1000 == 0 {
            let xs: Vec<f64> = (0..nu)
                .filter(|&u| phys[u])
                .map(|u| sec_load[u] as f64)
                .collect();
            let sum: f64 = xs.iter().sum();
            let sq: f64 = xs.iter().map(|x| x * x).sum();
            let n = xs.len() as f64;
            if sum > 0.0 {
                jain_sum += sum * sum / (n * sq);
                mm_sum += xs.iter().cloned().fold(0.0, f64::max) / (sum / n);
                windows += 1;
            }
            sec_load.iter_mut().for_each(|x| *x = 0);
        }
    }
    o.jain = jain_sum / windows.max(1) as f64;
    o.max_over_mean = mm_sum / windows.max(1) as f64;
    let (r, f) = policy.moves();
    o.moves_rebalance = r;
    o.moves_failover = f;
    o.steady_moves_per_min = steady_moves as f64 / (steady_ms.max(1) as f64 / 60_000.0);
    o.mac_writes = policy.mac_writes();
    o.switch_flaps = sw.flaps;
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policies::{Aggdom, Static};
    use aggregation::Mode;

    #[test]
    fn waterfill_is_max_min_fair() {
        assert_eq!(waterfill(&[10, 50, 100], 90), vec![10, 40, 40]);
        assert_eq!(waterfill(&[10, 20], 100), vec![10, 20]);
        assert_eq!(waterfill(&[], 100), Vec::<u64>::new());
    }

    fn small() -> (Topology, Scenario) {
        let topo = Topology {
            uplinks: 2,
            mbps: 100,
            guests: vec![
                Demand::Heavy { tx: 250, rx: 0 },
                Demand::Steady { tx: 20, rx: 20 },
                Demand::Steady { tx: 20, rx: 20 },
            ],
            peers: 4,
            on_link: 2,
        };
        let sc = Scenario {
            name: "small",
            seconds: 3,
            failure: Some(Failure {
                uplink: 1,
                down_ms: 1_000,
                up_ms: 2_000,
            }),
            detect_ms: 50,
        };
        (topo, sc)
    }

    #[test]
    fn heavy_hitter_bound_to_both_identities_uses_both_uplinks() {
        let (topo, sc) = small();
        let id = run(&topo, &sc, &mut Aggdom::new(&topo, Mode::Identity, 0, true));
        let st = run(&topo, &sc, &mut Static::new(&topo));
        assert!(
            id.delivered > st.delivered,
            "{} <= {}",
            id.delivered,
            st.delivered
        );
        // Failover and return: one move each way, nothing stranded.
        assert_eq!(id.moves_failover, 2);
        assert!(id.per_guest[0].0 > id.per_guest[0].1 * 9 / 10);
        assert_eq!(id.series.len(), 2);
        assert_eq!(id.series[0].len(), 30);
    }
}
