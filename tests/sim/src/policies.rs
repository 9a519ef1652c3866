//! The policies compared: aggdom (identity and literal mode, through the real
//! engine), static one-NIC-per-guest, Linux bonding balance-xor and
//! balance-tlb, Open vSwitch balance-slb. Each baseline follows its
//! documented rules, cited where it is implemented.

use std::net::{IpAddr, Ipv4Addr};

use aggregation::testkit;
use aggregation::{
    Config, Engine, GuestId, IdentityId, MacAddr, Mode, RxDecision, Steering, TxDecision,
    UplinkConfig, UplinkId,
};

use crate::model::{Rng, Topology};

/// A frame handed to an uplink: which one, and the source MAC on the wire
/// (the upstream switch learns it there).
pub type Out = Option<(usize, MacAddr)>;

pub trait Policy {
    fn name(&self) -> &'static str;
    /// Guest `g` sends a frame to peer `p`.
    fn tx(&mut self, now: u64, g: usize, p: usize, frame: &mut [u8]) -> Out;
    /// Extra link budget one transmitted frame costs, in bytes.
    fn tx_overhead(&self) -> u64 {
        0
    }
    /// Peer `p` (re)resolves guest `g`'s IP: the MAC it will send to, and
    /// the uplink / source MAC the guest's ARP reply left by.
    fn resolve(&mut self, now: u64, g: usize, p: usize, frame: &mut [u8]) -> (MacAddr, Out);
    /// For a static link aggregation the switch hashes over member ports
    /// instead of learning; `None` means a learning switch.
    fn lag_port(&self, _src: MacAddr, _dst: MacAddr, _live: &[bool]) -> Option<usize> {
        None
    }
    /// A frame for guest `g` arrived on `uplink`: is it delivered to `g`?
    fn rx(&mut self, now: u64, uplink: usize, g: usize, frame: &mut [u8]) -> bool;
    /// Periodic work; returns learning frames (uplink, MAC) to send.
    fn tick(&mut self, now: u64) -> Vec<(usize, MacAddr)>;
    /// The policy learns that `uplink`'s link went down or up.
    fn link(&mut self, now: u64, uplink: usize, up: bool) -> Vec<(usize, MacAddr)>;
    /// Moves so far: (by rebalancing, by failover); for baselines, hash
    /// buckets or destinations reassigned to another uplink.
    fn moves(&self) -> (u64, u64);
    /// MAC register writes so far.
    fn mac_writes(&self) -> u64 {
        0
    }
}

// ---------------------------------------------------------------------------
// aggdom, through the real engine.
// ---------------------------------------------------------------------------

pub struct Aggdom {
    name: &'static str,
    e: Box<Engine>,
    topo: Topology,
    literal_overhead: u64,
    rebalance_moves: u64,
    failover_moves: u64,
    /// AGGDOM_SIM_DEBUG=1: print the engine's moves and loads.
    debug: bool,
}

impl Aggdom {
    /// Guests auto-spread one identity each ([0030]); the heavy hitter, a
    /// guest that "needs more bandwidth", bound to every identity ([0052]).
    /// With `widen` false the heavy hitter keeps its one spread identity:
    /// the engine's defaults alone, for comparison.
    pub fn new(topo: &Topology, mode: Mode, literal_overhead: u64, widen: bool) -> Aggdom {
        let mut e = Box::new(Engine::new(Config::with_mode(mode)));
        for u in 0..topo.uplinks {
            let mut c = UplinkConfig::new(topo.uplink_mac(u));
            c.capacity_mbps = topo.mbps;
            e.add_uplink(c).unwrap();
        }
        for g in 0..topo.guests.len() {
            e.add_guest(topo.guest_mac(g), &[ip(topo.guest_ip(g))])
                .unwrap();
        }
        for g in topo.heavy_guests().filter(|_| widen) {
            let all: Vec<_> = (0..topo.uplinks as u8).map(IdentityId).collect();
            e.bind(ip(topo.guest_ip(g)), &all).unwrap();
        }
        e.respread();
        Aggdom {
            name: match (mode, widen) {
                (Mode::Identity, true) => "aggdom identity",
                (Mode::Literal, true) => "aggdom literal",
                (Mode::Identity, false) => "aggdom id, no [0052]",
                (Mode::Literal, false) => "aggdom lit, no [0052]",
            },
            e,
            topo: topo.clone(),
            literal_overhead: if mode == Mode::Literal {
                literal_overhead
            } else {
                0
            },
            rebalance_moves: 0,
            failover_moves: 0,
            debug: std::env::var_os("AGGDOM_SIM_DEBUG").is_some(),
        }
    }

    fn out(d: TxDecision, guest_mac: MacAddr) -> Out {
        match d {
            TxDecision::Send {
                uplink,
                steering: Steering::Rewritten { mac, .. },
                ..
            } => Some((uplink.0 as usize, mac)),
            TxDecision::Send {
                uplink,
                steering: Steering::WriteMacThenRestore { .. },
                ..
            } => Some((uplink.0 as usize, guest_mac)),
            _ => None,
        }
    }

    fn learning(moves: &aggregation::Moves) -> Vec<(usize, MacAddr)> {
        moves.iter().map(|m| (m.to.0 as usize, m.mac)).collect()
    }
}

fn ip(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

impl Policy for Aggdom {
    fn name(&self) -> &'static str {
        self.name
    }

    fn tx(&mut self, now: u64, g: usize, p: usize, frame: &mut [u8]) -> Out {
        let gm = self.topo.guest_mac(g);
        testkit::ipv4(
            frame,
            self.topo.peer_mac(p),
            gm,
            self.topo.guest_ip(g),
            self.topo.peer_ip(p),
        );
        Self::out(self.e.guest_transmit(now, GuestId(g as u16), frame), gm)
    }

    fn tx_overhead(&self) -> u64 {
        self.literal_overhead
    }

    fn resolve(&mut self, now: u64, g: usize, p: usize, frame: &mut [u8]) -> (MacAddr, Out) {
        let gm = self.topo.guest_mac(g);
        let pm = self.topo.peer_mac(p);
        let n = testkit::arp(
            frame,
            2,
            pm,
            gm,
            self.topo.guest_ip(g),
            pm,
            self.topo.peer_ip(p),
        );
        let d = self
            .e
            .guest_transmit(now, GuestId(g as u16), &mut frame[..n.max(60)]);
        let out = Self::out(d, gm);
        // The peer caches the ARP sender hardware address.
        let sha = MacAddr(frame[22..28].try_into().unwrap());
        (sha, out)
    }

    fn rx(&mut self, now: u64, uplink: usize, g: usize, frame: &mut [u8]) -> bool {
        matches!(
            self.e.uplink_receive(now, UplinkId(uplink as u8), frame),
            RxDecision::ToGuest { guest } if guest.0 as usize == g
        )
    }

    fn tick(&mut self, now: u64) -> Vec<(usize, MacAddr)> {
        let m = self.e.tick(now);
        self.rebalance_moves += m.len() as u64;
        if self.debug && (!m.is_empty() || now.is_multiple_of(5_000_000_000)) {
            eprintln!("{} t={}ms tick moves={:?}", self.name, now / 1_000_000, m);
            for u in 0..self.topo.uplinks {
                let up = UplinkId(u as u8);
                eprintln!(
                    "   uplink {u}: held {:?} load {:?}",
                    self.e.held(up),
                    self.e.load(up).unwrap()
                );
            }
        }
        Self::learning(&m)
    }

    fn link(&mut self, now: u64, uplink: usize, up: bool) -> Vec<(usize, MacAddr)> {
        let m = self.e.link_changed(now, UplinkId(uplink as u8), up);
        self.failover_moves += m.len() as u64;
        if self.debug {
            eprintln!(
                "{} t={}ms link {uplink} up={up} moves={:?}",
                self.name,
                now / 1_000_000,
                m
            );
        }
        Self::learning(&m)
    }

    fn moves(&self) -> (u64, u64) {
        (self.rebalance_moves, self.failover_moves)
    }

    fn mac_writes(&self) -> u64 {
        (0..self.topo.uplinks)
            .map(|u| {
                self.e
                    .uplink_counters(UplinkId(u as u8))
                    .unwrap()
                    .mac_writes
            })
            .sum()
    }
}

// ---------------------------------------------------------------------------
// Static: one NIC per guest, the [0049] starting point (a bridge per NIC).
// ---------------------------------------------------------------------------

pub struct Static {
    topo: Topology,
    up: Vec<bool>,
}

impl Static {
    pub fn new(topo: &Topology) -> Static {
        Static {
            topo: topo.clone(),
            up: vec![true; topo.uplinks],
        }
    }
    fn home(&self, g: usize) -> usize {
        g % self.topo.uplinks
    }
}

impl Policy for Static {
    fn name(&self) -> &'static str {
        "static 1 NIC/guest"
    }
    fn tx(&mut self, _: u64, g: usize, _: usize, _: &mut [u8]) -> Out {
        let h = self.home(g);
        self.up[h].then(|| (h, self.topo.guest_mac(g)))
    }
    fn resolve(&mut self, now: u64, g: usize, p: usize, f: &mut [u8]) -> (MacAddr, Out) {
        (self.topo.guest_mac(g), self.tx(now, g, p, f))
    }
    fn rx(&mut self, _: u64, uplink: usize, g: usize, _: &mut [u8]) -> bool {
        uplink == self.home(g)
    }
    fn tick(&mut self, _: u64) -> Vec<(usize, MacAddr)> {
        vec![]
    }
    fn link(&mut self, _: u64, uplink: usize, up: bool) -> Vec<(usize, MacAddr)> {
        self.up[uplink] = up;
        vec![]
    }
    fn moves(&self) -> (u64, u64) {
        (0, 0)
    }
}

// ---------------------------------------------------------------------------
// Linux bonding balance-xor, xmit_hash_policy=layer2.
// ---------------------------------------------------------------------------

/// Documentation/networking/bonding.rst, "xmit_hash_policy", layer2: "Uses
/// XOR of hardware MAC addresses and packet type ID field to generate the
/// hash. The formula is hash = source MAC[5] XOR destination MAC[5] XOR
/// packet type ID; slave number = hash modulo slave count." balance-xor
/// needs a static EtherChannel on the switch ("balance-xor ... require[s]
/// that the switch have the appropriate ports grouped together"), which
/// hashes return traffic itself; the switch here uses the same formula over
/// its live member ports (as Cisco's src-dst-mac does, in spirit).
pub struct BalanceXor {
    topo: Topology,
    up: Vec<bool>,
}

impl BalanceXor {
    pub fn new(topo: &Topology) -> BalanceXor {
        BalanceXor {
            topo: topo.clone(),
            up: vec![true; topo.uplinks],
        }
    }
}

fn layer2_hash(src: MacAddr, dst: MacAddr) -> usize {
    // Packet type ID of IPv4 is 0x0800.
    (src.0[5] ^ dst.0[5]) as usize ^ 0x0800
}

fn pick_live(hash: usize, live: &[bool]) -> Option<usize> {
    let n = live.iter().filter(|&&l| l).count();
    if n == 0 {
        return None;
    }
    live.iter()
        .enumerate()
        .filter(|(_, &l)| l)
        .nth(hash % n)
        .map(|(i, _)| i)
}

impl Policy for BalanceXor {
    fn name(&self) -> &'static str {
        "bonding balance-xor"
    }
    fn tx(&mut self, _: u64, g: usize, p: usize, _: &mut [u8]) -> Out {
        let src = self.topo.guest_mac(g);
        pick_live(layer2_hash(src, self.topo.peer_mac(p)), &self.up).map(|u| (u, src))
    }
    fn resolve(&mut self, now: u64, g: usize, p: usize, f: &mut [u8]) -> (MacAddr, Out) {
        (self.topo.guest_mac(g), self.tx(now, g, p, f))
    }
    fn lag_port(&self, src: MacAddr, dst: MacAddr, live: &[bool]) -> Option<usize> {
        pick_live(layer2_hash(src, dst), live)
    }
    fn rx(&mut self, _: u64, _: usize, _: usize, _: &mut [u8]) -> bool {
        true
    }
    fn tick(&mut self, _: u64) -> Vec<(usize, MacAddr)> {
        vec![]
    }
    fn link(&mut self, _: u64, uplink: usize, up: bool) -> Vec<(usize, MacAddr)> {
        self.up[uplink] = up;
        vec![]
    }
    fn moves(&self) -> (u64, u64) {
        (0, 0)
    }
}

// ---------------------------------------------------------------------------
// Linux bonding balance-tlb (tlb_dynamic_lb=1).
// ---------------------------------------------------------------------------

/// bonding.rst, balance-tlb: "The outgoing traffic is distributed according
/// to the current load (computed relative to the speed) on each slave.
/// Incoming traffic is received by the current slave. If the receiving
/// slave fails, another slave takes over the MAC address of the failed
/// receiving slave." drivers/net/bonding/bond_alb.c: 256 hash buckets
/// (`TLB_HASH_TABLE_SIZE`) keyed by the xmit hash; `tlb_choose_channel`
/// gives an unassigned bucket to the slave with the largest gap between
/// speed and assigned load (`tlb_get_least_loaded_slave`); every
/// `BOND_TLB_REBALANCE_INTERVAL` (10 s) `bond_alb_monitor` clears every
/// assignment, keeping each bucket's bytes as its load history. Frames
/// leaving a slave other than the active one get that slave's MAC as
/// source (`bond_do_alb_xmit`), so the switch learns guest MACs only where
/// their ARP (never balanced) leaves: the active slave.
pub struct BalanceTlb {
    topo: Topology,
    up: Vec<bool>,
    active: usize,
    bucket_slave: [Option<usize>; 256],
    last_slave: [Option<usize>; 256],
    bucket_bytes: [u64; 256],
    bucket_history: [u64; 256],
    slave_load: Vec<u64>,
    last_rebalance: u64,
    moves: u64,
    failover: u64,
}

const TLB_INTERVAL_NS: u64 = 10_000_000_000;

impl BalanceTlb {
    pub fn new(topo: &Topology) -> BalanceTlb {
        BalanceTlb {
            topo: topo.clone(),
            up: vec![true; topo.uplinks],
            active: 0,
            bucket_slave: [None; 256],
            last_slave: [None; 256],
            bucket_bytes: [0; 256],
            bucket_history: [0; 256],
            slave_load: vec![0; topo.uplinks],
            last_rebalance: 0,
            moves: 0,
            failover: 0,
        }
    }

    fn least_loaded(&self) -> Option<usize> {
        let speed = self.topo.mbps as u64 * 125_000; // bytes/s
        (0..self.topo.uplinks)
            .filter(|&s| self.up[s])
            .max_by_key(|&s| (speed as i64 - self.slave_load[s] as i64, -(s as i64)))
    }
}

impl Policy for BalanceTlb {
    fn name(&self) -> &'static str {
        "bonding balance-tlb"
    }
    fn tx(&mut self, _: u64, g: usize, p: usize, _: &mut [u8]) -> Out {
        let src = self.topo.guest_mac(g);
        let b = layer2_hash(src, self.topo.peer_mac(p)) & 0xff;
        let s = match self.bucket_slave[b] {
            Some(s) if self.up[s] => s,
            _ => {
                let s = self.least_loaded()?;
                if self.last_slave[b].is_some_and(|p| p != s) {
                    self.moves += 1;
                }
                self.bucket_slave[b] = Some(s);
                self.last_slave[b] = Some(s);
                self.slave_load[s] += self.bucket_history[b] / 10;
                s
            }
        };
        self.bucket_bytes[b] += 1500;
        let wire_src = if s == self.active {
            src
        } else {
            self.topo.uplink_mac(s)
        };
        Some((s, wire_src))
    }
    fn resolve(&mut self, _: u64, g: usize, _: usize, _: &mut [u8]) -> (MacAddr, Out) {
        // ARP is not balanced: it leaves the active slave with the guest MAC.
        let gm = self.topo.guest_mac(g);
        (gm, self.up[self.active].then_some((self.active, gm)))
    }
    fn rx(&mut self, _: u64, _: usize, _: usize, _: &mut [u8]) -> bool {
        true
    }
    fn tick(&mut self, now: u64) -> Vec<(usize, MacAddr)> {
        if now - self.last_rebalance >= TLB_INTERVAL_NS {
            self.last_rebalance = now;
            for b in 0..256 {
                self.bucket_history[b] = self.bucket_bytes[b];
                self.bucket_bytes[b] = 0;
            }
            // tlb_clear_slave(.., save_load = 1): every assignment is
            // forgotten and reassigned by the next frame of its bucket.
            self.bucket_slave = [None; 256];
            self.slave_load.iter_mut().for_each(|l| *l = 0);
        }
        vec![]
    }
    fn link(&mut self, _: u64, uplink: usize, up: bool) -> Vec<(usize, MacAddr)> {
        self.up[uplink] = up;
        let mut learn = vec![];
        if !up {
            for b in 0..256 {
                if self.bucket_slave[b] == Some(uplink) {
                    self.bucket_slave[b] = None;
                    self.last_slave[b] = None;
                    self.failover += 1;
                }
            }
            self.slave_load[uplink] = 0;
            if uplink == self.active {
                if let Some(n) = (0..self.topo.uplinks).find(|&s| self.up[s]) {
                    // The new active slave takes over the receiving MAC and
                    // sends learning packets for the guests behind it.
                    self.active = n;
                    for g in 0..self.topo.guests.len() {
                        learn.push((n, self.topo.guest_mac(g)));
                    }
                }
            }
        }
        learn
    }
    fn moves(&self) -> (u64, u64) {
        (self.moves, self.failover)
    }
}

// ---------------------------------------------------------------------------
// Open vSwitch balance-slb.
// ---------------------------------------------------------------------------

/// ovs-vswitchd.conf.db(5) / ofproto/bond.c: balance-slb hashes the source
/// MAC (and VLAN) into 256 entries (`BOND_BUCKETS`); an entry without an
/// enabled member gets a random one (`choose_output_member`). Every
/// `bond-rebalance-interval` (default 10 000 ms) `bond_rebalance` sorts
/// enabled members by the bytes their entries sent, and while the busiest
/// exceeds the idlest by at least ~3 % (`>> 5`) and ~1 Mbps (100 000 bytes),
/// moves one entry (`choose_entry_to_migrate`: the new low side must rise
/// by at least 10 % of its distance to the midpoint; a member with a single
/// entry is skipped); then every entry's bytes are halved (an EWMA).
/// Return traffic follows the switch's learning, which SLB's learning
/// packets refresh on failover.
pub struct BalanceSlb {
    topo: Topology,
    up: Vec<bool>,
    entry_member: [Option<usize>; 256],
    entry_bytes: [u64; 256],
    last_rebalance: u64,
    rng: Rng,
    moves: u64,
    failover: u64,
}

const SLB_INTERVAL_NS: u64 = 10_000_000_000;

impl BalanceSlb {
    pub fn new(topo: &Topology) -> BalanceSlb {
        BalanceSlb {
            topo: topo.clone(),
            up: vec![true; topo.uplinks],
            entry_member: [None; 256],
            entry_bytes: [0; 256],
            last_rebalance: 0,
            rng: Rng(0x5eed_f0b5),
            moves: 0,
            failover: 0,
        }
    }

    fn entry(mac: MacAddr) -> usize {
        // A mixing hash over the MAC, like OVS's hash_mac.
        let v = mac.to_u64().wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (v >> 56) as usize
    }

    fn member_for(&mut self, e: usize) -> Option<usize> {
        match self.entry_member[e] {
            Some(m) if self.up[m] => Some(m),
            _ => {
                let live: Vec<_> = (0..self.topo.uplinks).filter(|&m| self.up[m]).collect();
                if live.is_empty() {
                    return None;
                }
                let m = live[self.rng.below(live.len() as u64) as usize];
                self.entry_member[e] = Some(m);
                Some(m)
            }
        }
    }

    fn rebalance(&mut self) {
        let n = self.topo.uplinks;
        let mut tx = vec![0u64; n];
        let mut entries: Vec<Vec<usize>> = vec![vec![]; n];
        for e in 0..256 {
            if let (Some(m), b) = (self.entry_member[e], self.entry_bytes[e]) {
                if b > 0 {
                    tx[m] += b;
                    entries[m].push(e);
                }
            }
        }
        let mut bals: Vec<usize> = (0..n).filter(|&m| self.up[m]).collect();
        while bals.len() >= 2 {
            bals.sort_by_key(|&m| std::cmp::Reverse(tx[m]));
            let (from, to) = (bals[0], *bals.last().unwrap());
            let overload = tx[from] - tx[to];
            if overload < tx[to] >> 5 || overload < 100_000 {
                break;
            }
            let chosen = if entries[from].len() <= 1 {
                None
            } else {
                let ideal = (tx[from] + tx[to]) / 2;
                entries[from].iter().copied().find(|&e| {
                    let delta = self.entry_bytes[e];
                    let new_low = (tx[from] - delta).min(tx[to] + delta);
                    new_low > tx[to] && new_low - tx[to] >= (ideal - tx[to]) / 10
                })
            };
            match chosen {
                Some(e) => {
                    let delta = self.entry_bytes[e];
                    self.entry_member[e] = Some(to);
                    tx[from] -= delta;
                    tx[to] += delta;
                    entries[from].retain(|&x| x != e);
                    self.moves += 1;
                }
                None => bals.retain(|&m| m != from),
            }
        }
        self.entry_bytes.iter_mut().for_each(|b| *b /= 2);
    }
}

impl Policy for BalanceSlb {
    fn name(&self) -> &'static str {
        "OVS balance-slb"
    }
    fn tx(&mut self, _: u64, g: usize, _: usize, _: &mut [u8]) -> Out {
        let src = self.topo.guest_mac(g);
        let e = Self::entry(src);
        let m = self.member_for(e)?;
        self.entry_bytes[e] += 1500;
        Some((m, src))
    }
    fn resolve(&mut self, now: u64, g: usize, p: usize, f: &mut [u8]) -> (MacAddr, Out) {
        (self.topo.guest_mac(g), self.tx(now, g, p, f))
    }
    fn rx(&mut self, _: u64, _: usize, _: usize, _: &mut [u8]) -> bool {
        true
    }
    fn tick(&mut self, now: u64) -> Vec<(usize, MacAddr)> {
        if now - self.last_rebalance >= SLB_INTERVAL_NS {
            self.last_rebalance = now;
            self.rebalance();
        }
        vec![]
    }
    fn link(&mut self, _: u64, uplink: usize, up: bool) -> Vec<(usize, MacAddr)> {
        self.up[uplink] = up;
        let mut learn = vec![];
        if !up {
            for g in 0..self.topo.guests.len() {
                let mac = self.topo.guest_mac(g);
                let e = Self::entry(mac);
                if self.entry_member[e] == Some(uplink) {
                    self.failover += 1;
                    if let Some(m) = self.member_for(e) {
                        learn.push((m, mac));
                    }
                }
            }
        }
        learn
    }
    fn moves(&self) -> (u64, u64) {
        (self.moves, self.failover)
    }
}
