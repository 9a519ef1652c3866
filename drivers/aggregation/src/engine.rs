//! The engine: state of uplinks, identities and guests, and every decision.

use core::net::IpAddr;

use crate::counters::{
    DropCounters, EngineCounters, GuestCounters, IdentityCounters, UplinkCounters,
};
use crate::decision::{DropReason, Move, Moves, OwnTxDecision, RxDecision, Steering, TxDecision};
use crate::error::Error;
use crate::table::Table;
use crate::types::{
    ip_key, net_contains, Config, GuestId, GuestSet, IdentityId, IdentitySet, IpNet, MacAddr, Mode,
    UplinkConfig, UplinkId, MAX_GUESTS, MAX_IDENTITIES, MAX_IPS_PER_GUEST, MAX_LEARNED_PER_GUEST,
    MAX_OWN_IPS, MAX_UPLINKS,
};
use crate::wire::{self, Icmp6, Parsed, L3};

const NS_PER_S: u128 = 1_000_000_000;
/// `ip_owner` value meaning "the own stack".
const OWN: u16 = u16::MAX;
/// `ip_owner` values with this bit name a learned IPv6 address (guest
/// index × [`MAX_LEARNED_PER_GUEST`] + entry); without it (and not
/// [`OWN`]), a configured one (guest index × [`MAX_IPS_PER_GUEST`] + slot).
const LEARNED_TAG: u16 = 0x4000;
const _: () = assert!(MAX_GUESTS * MAX_LEARNED_PER_GUEST < LEARNED_TAG as usize);
const _: () = assert!(MAX_GUESTS * MAX_IPS_PER_GUEST < LEARNED_TAG as usize);
/// Prefix length of a guest slot holding a single address (an IPv4 key is
/// 128 bits too).
const HOST: u8 = 128;
/// `learned_from` value: a link-local address, bound as the union of the
/// guest's IPv6 bindings.
const ALL_V6: u8 = u8::MAX;

/// Who an `ip_owner` value names.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Owner {
    Own,
    /// A configured address: guest, slot.
    Slot(usize, usize),
    /// A learned IPv6 address: guest, entry.
    Learned(usize, usize),
}

#[inline(always)]
fn owner(v: u16) -> Owner {
    if v == OWN {
        Owner::Own
    } else if v & LEARNED_TAG != 0 {
        let i = (v & !LEARNED_TAG) as usize;
        Owner::Learned(i / MAX_LEARNED_PER_GUEST, i % MAX_LEARNED_PER_GUEST)
    } else {
        Owner::Slot(
            v as usize / MAX_IPS_PER_GUEST,
            v as usize % MAX_IPS_PER_GUEST,
        )
    }
}

/// Where a guest frame's binding comes from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Src {
    /// A configured address.
    Slot(usize),
    /// A learned IPv6 address.
    Learned(usize),
    /// `::` (DAD, MLD, router solicitation before an address is ready):
    /// the union of the guest's IPv6 bindings.
    AllV6,
}
/// The group bit of a MAC as a `u64` (IEEE 802 I/G): broadcast and multicast.
const MULTICAST: u64 = 1 << 40;
/// `macs` values with this bit name an identity, without it a guest.
const IDENTITY_TAG: u16 = 0x8000;

#[derive(Clone, Copy, PartialEq)]
struct Uplink {
    factory: u64,
    cap_mbps: u32,
    /// 2^24 / capacity: turns bytes into a capacity-relative score.
    weight: u64,
    slots: u8,
    up: bool,
    exclusive: bool,
    held: IdentitySet,
    tx_pending: u64,
    rx_pending: u64,
    /// EWMA rates in bytes per second.
    tx_rate: u64,
    rx_rate: u64,
    /// `tx_rate` and `rx_rate` as bytes per nominal tick interval.
    tx_base: u64,
    rx_base: u64,
    /// ARP and NDP frames that named an identity of this uplink to a peer
    /// lately (halved every tick), each counted as 1/64 of a tick's
    /// capacity: peers that resolve in the same instant then spread
    /// instead of herding onto whichever uplink looked idlest.
    promises: u64,
    /// (guest IP, peer) pairs promised here since the last tick, hashed
    /// into 256 bits: a guest repeating its ARP request promises once. A
    /// collision forgets a promise, which only makes the spreading rougher.
    promised: [u64; 4],
    promise_bytes: u64,
    counters: UplinkCounters,
}

impl Uplink {
    const EMPTY: Uplink = Uplink {
        factory: 0,
        cap_mbps: 1,
        weight: 0,
        slots: 1,
        up: false,
        exclusive: false,
        held: IdentitySet::EMPTY,
        tx_pending: 0,
        rx_pending: 0,
        tx_rate: 0,
        rx_rate: 0,
        tx_base: 0,
        rx_base: 0,
        promises: 0,
        promised: [0; 4],
        promise_bytes: 0,
        counters: UplinkCounters::ZERO,
    };

    /// Claim step 3's "traffic", per frame: bytes expected in this tick
    /// interval (rate × interval + already sent), relative to capacity.
    #[inline(always)]
    fn score(&self) -> u64 {
        (self.tx_base + self.tx_pending).saturating_mul(self.weight)
    }

    /// The same in the receive direction: an ARP reply names the identity
    /// the peer will send to, so it is chosen by receive load.
    #[inline(always)]
    fn rx_score(&self) -> u64 {
        (self.rx_base + self.rx_pending + self.promises * self.promise_bytes)
            .saturating_mul(self.weight)
    }

    fn util_permille(&self, tx: u64, rx: u64) -> u64 {
        // bytes/s × 8 = bit/s; ‰ of cap_mbps × 10^6 bit/s.
        (tx.max(rx) as u128 * 8 / (self.cap_mbps as u128 * 1000)).min(u64::MAX as u128) as u64
    }
}

#[derive(Clone, Copy, PartialEq)]
struct Identity {
    mac: u64,
    holder: UplinkId,
    pinned: bool,
    last_move: Option<u64>,
    tx_pending: u64,
    rx_pending: u64,
    tx_rate: u64,
    rx_rate: u64,
    /// Transmit bytes that could use no other identity (the sender's IP is
    /// bound to this one alone, or it is the own stack's): the load that
    /// moves only when the identity moves.
    fixed_tx_pending: u64,
    fixed_tx_rate: u64,
    /// Identity mode's decision for a guest frame leaving under this
    /// identity (`Send` through its holder), kept whole so the fast path
    /// hands it over in one copy rather than assembling it byte by byte
    /// (a store-forwarding stall in the caller that cost more than the
    /// rest of the decision). Refreshed whenever the holder changes.
    send: TxDecision,
    counters: IdentityCounters,
}

impl Identity {
    const EMPTY: Identity = Identity {
        mac: 0,
        holder: UplinkId(0),
        pinned: false,
        last_move: None,
        tx_pending: 0,
        rx_pending: 0,
        tx_rate: 0,
        rx_rate: 0,
        fixed_tx_pending: 0,
        fixed_tx_rate: 0,
        send: TxDecision::ToOwnStack,
        counters: IdentityCounters::ZERO,
    };

    /// `send` for the identity's current holder; `i` is its index.
    fn refresh_send(&mut self, i: usize) {
        self.send = TxDecision::Send {
            uplink: self.holder,
            steering: Steering::Rewritten {
                identity: IdentityId(i as u8),
                mac: MacAddr::from_u64(self.mac),
            },
            flood_local: false,
        };
    }
}

#[derive(Clone, Copy, PartialEq)]
struct Guest {
    active: bool,
    mac: u64,
    n_ips: u8,
    /// Engine keys of the configured addresses, or networks of IPv6 prefixes.
    ips: [u128; MAX_IPS_PER_GUEST],
    /// [`HOST`] for an address, else the IPv6 prefix length.
    plen: [u8; MAX_IPS_PER_GUEST],
    bindings: [IdentitySet; MAX_IPS_PER_GUEST],
    /// Bound by the spreading rule of \[0030\] rather than by the operator.
    auto: [bool; MAX_IPS_PER_GUEST],
    /// Learned IPv6 addresses (0: a free entry), each bound as the prefix
    /// slot it lies in (or [`ALL_V6`] for link-local ones), and when a
    /// frame last came from or went to it.
    learned: [u128; MAX_LEARNED_PER_GUEST],
    learned_from: [u8; MAX_LEARNED_PER_GUEST],
    learned_seen: [u64; MAX_LEARNED_PER_GUEST],
    n_learned: u8,
    /// Start of the current one-second window of `bcast_limit_pps`, and
    /// the broadcast / multicast frames sent in it.
    bcast_window: u64,
    bcast_sent: u32,
    counters: GuestCounters,
}

impl Guest {
    const EMPTY: Guest = Guest {
        active: false,
        mac: 0,
        n_ips: 0,
        ips: [0; MAX_IPS_PER_GUEST],
        plen: [HOST; MAX_IPS_PER_GUEST],
        bindings: [IdentitySet::EMPTY; MAX_IPS_PER_GUEST],
        auto: [false; MAX_IPS_PER_GUEST],
        learned: [0; MAX_LEARNED_PER_GUEST],
        learned_from: [0; MAX_LEARNED_PER_GUEST],
        learned_seen: [0; MAX_LEARNED_PER_GUEST],
        n_learned: 0,
        bcast_window: 0,
        bcast_sent: 0,
        counters: GuestCounters::ZERO,
    };

    /// Non-zero where `self` and `other` differ (`!=`, every field
    /// compared) but without a branch per field: the fuzz harness compares
    /// all [`MAX_GUESTS`] slots of two engines after every frame, and the
    /// fuzzer's coverage instrumentation traces each comparison `!=` makes
    /// (a third of that target's time), so the differences are OR-ed and
    /// the caller tests them once. The patterns name every field, so a new
    /// one cannot be left out.
    fn diff(&self, other: &Guest) -> u128 {
        let Guest {
            active,
            mac,
            n_ips,
            ips,
            plen,
            bindings,
            auto,
            learned,
            learned_from,
            learned_seen,
            n_learned,
            bcast_window,
            bcast_sent,
            counters,
        } = self;
        let GuestCounters {
            tx_frames,
            tx_bytes,
            rx_frames,
            rx_bytes,
            tx_local,
            tx_drops,
            rx_drops,
            tx_frames_per_uplink,
        } = counters;
        let o = &other.counters;
        let mut d = u128::from(*active ^ other.active)
            | u128::from(mac ^ other.mac)
            | u128::from(n_ips ^ other.n_ips)
            | u128::from(n_learned ^ other.n_learned)
            | u128::from(bcast_window ^ other.bcast_window)
            | u128::from(bcast_sent ^ other.bcast_sent)
            | u128::from(tx_frames ^ o.tx_frames)
            | u128::from(tx_bytes ^ o.tx_bytes)
            | u128::from(rx_frames ^ o.rx_frames)
            | u128::from(rx_bytes ^ o.rx_bytes)
            | u128::from(tx_local ^ o.tx_local);
        for s in 0..MAX_IPS_PER_GUEST {
            d |= (ips[s] ^ other.ips[s])
                | u128::from(plen[s] ^ other.plen[s])
                | u128::from(bindings[s].0 ^ other.bindings[s].0)
                | u128::from(auto[s] ^ other.auto[s]);
        }
        for k in 0..MAX_LEARNED_PER_GUEST {
            d |= (learned[k] ^ other.learned[k])
                | u128::from(learned_from[k] ^ other.learned_from[k])
                | u128::from(learned_seen[k] ^ other.learned_seen[k]);
        }
        for (a, b) in [(tx_drops, &o.tx_drops), (rx_drops, &o.rx_drops)] {
            for r in 0..a.0.len() {
                d |= u128::from(a.0[r] ^ b.0[r]);
            }
        }
        for (a, b) in tx_frames_per_uplink.iter().zip(&o.tx_frames_per_uplink) {
            d |= u128::from(a ^ b);
        }
        d
    }

    /// The slot of configured address `ip` (not of a prefix).
    #[inline(always)]
    fn slot_of(&self, ip: u128) -> Option<usize> {
        let n = (self.n_ips as usize).min(MAX_IPS_PER_GUEST);
        (0..n).find(|&s| self.ips[s] == ip && self.plen[s] == HOST)
    }

    /// The slot of the configured network `net`/`len` (an address or prefix).
    fn net_slot(&self, net: u128, len: u8) -> Option<usize> {
        let n = (self.n_ips as usize).min(MAX_IPS_PER_GUEST);
        (0..n).find(|&s| self.ips[s] == net && self.plen[s] == len)
    }

    /// Configured IPv6 addresses and prefixes.
    fn v6_slots(&self) -> impl Iterator<Item = usize> + '_ {
        let n = (self.n_ips as usize).min(MAX_IPS_PER_GUEST);
        (0..n).filter(|&s| !is_v4_key(self.ips[s]) || self.plen[s] != HOST)
    }

    /// Every identity one of the guest's IPv6 entries is bound to: where
    /// its link-local and `::` traffic may go.
    fn v6_union(&self) -> IdentitySet {
        IdentitySet(self.v6_slots().fold(0, |a, s| a | self.bindings[s].0))
    }

    /// What binds IPv6 address `a` if the guest may claim it: the first
    /// prefix slot holding it, or [`ALL_V6`] for a link-local address of a
    /// guest with some IPv6 entry. `None` for anything else (and for
    /// addresses no host may use as its own).
    fn governing(&self, a: u128) -> Option<u8> {
        if !is_unicast_v6(a) {
            return None;
        }
        let n = (self.n_ips as usize).min(MAX_IPS_PER_GUEST);
        if let Some(s) =
            (0..n).find(|&s| self.plen[s] != HOST && net_contains(self.ips[s], self.plen[s], a))
        {
            return Some(s as u8);
        }
        (is_link_local(a) && self.v6_slots().next().is_some()).then_some(ALL_V6)
    }

    fn learned_binding(&self, k: usize) -> IdentitySet {
        match self.learned_from[k] {
            ALL_V6 => self.v6_union(),
            s => self.bindings[(s as usize).min(MAX_IPS_PER_GUEST - 1)],
        }
    }

    fn src_binding(&self, src: Src) -> IdentitySet {
        match src {
            Src::Slot(s) => self.bindings[s],
            Src::Learned(k) => self.learned_binding(k),
            Src::AllV6 => self.v6_union(),
        }
    }
}

/// A snapshot of one uplink's load, for consoles, exporters and simulators.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Load {
    /// EWMA transmit rate, bytes per second.
    pub tx_bytes_per_s: u64,
    /// EWMA receive rate, bytes per second.
    pub rx_bytes_per_s: u64,
    /// The larger direction as ‰ of the uplink's capacity.
    pub util_permille: u64,
}

/// The aggregation engine. See the crate docs for the contract.
#[derive(Clone)]
pub struct Engine {
    cfg: Config,
    n_uplinks: u8,
    uplinks: [Uplink; MAX_UPLINKS],
    identities: [Identity; MAX_IDENTITIES],
    guests: [Guest; MAX_GUESTS],
    /// Guest MACs (value: guest index) and identity MACs (value:
    /// [`IDENTITY_TAG`] | identity index): one probe answers "whose MAC?".
    macs: Table<u64, { 2 * (MAX_GUESTS + MAX_IDENTITIES).next_power_of_two() }>,
    /// guest index × 4 + IP slot, [`LEARNED_TAG`] | guest index × 16 +
    /// entry, or [`OWN`] (see [`owner`]).
    ip_owner: Table<
        u128,
        {
            2 * (MAX_GUESTS * (MAX_IPS_PER_GUEST + MAX_LEARNED_PER_GUEST) + MAX_OWN_IPS)
                .next_power_of_two()
        },
    >,
    own_identity: Option<IdentityId>,
    own_ips: [u128; MAX_OWN_IPS],
    n_own_ips: u8,
    /// The live uplink that accepts broadcasts (the lowest-numbered one).
    bcast_uplink: Option<UplinkId>,
    /// Guests with an IPv4 / an IPv6 address bound to some identity: those
    /// an IPv4 (or ARP) / IPv6 broadcast from the outside may reach.
    reach_v4: GuestSet,
    reach_v6: GuestSet,
    last_tick: u64,
    last_rebalance: u64,
    counters: EngineCounters,
}

impl Engine {
    /// An engine with no uplinks and no guests. `const`, so the kernel can
    /// place it in a `static`; it is about 290 KiB, most of it the IP
    /// table, sized for every guest's learned IPv6 addresses.
    pub const fn new(cfg: Config) -> Engine {
        Engine {
            cfg,
            n_uplinks: 0,
            uplinks: [Uplink::EMPTY; MAX_UPLINKS],
            identities: [Identity::EMPTY; MAX_IDENTITIES],
            guests: [Guest::EMPTY; MAX_GUESTS],
            macs: Table::new(),
            ip_owner: Table::new(),
            own_identity: None,
            own_ips: [0; MAX_OWN_IPS],
            n_own_ips: 0,
            bcast_uplink: None,
            reach_v4: GuestSet::EMPTY,
            reach_v6: GuestSet::EMPTY,
            last_tick: 0,
            last_rebalance: 0,
            counters: EngineCounters {
                own_tx_frames: 0,
                own_rx_frames: 0,
                own_tx_swaps: 0,
                own_tx_drops: DropCounters::ZERO,
                rebalance_runs: 0,
                rebalance_moves: 0,
                failover_moves: 0,
                stranded: 0,
                rx_flooded: 0,
                rx_nd_directed: 0,
                mld_out: 0,
            },
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn mode(&self) -> Mode {
        self.cfg.mode
    }

    // ------------------------------------------------------------------
    // Setup and run-time changes
    // ------------------------------------------------------------------

    /// Add a NIC. It creates identity *k* = its factory MAC, held by it.
    /// Guests bound automatically are spread again over the new set (\[0030\]).
    pub fn add_uplink(&mut self, cfg: UplinkConfig) -> Result<UplinkId, Error> {
        let n = self.n_uplinks as usize;
        if n >= MAX_UPLINKS {
            return Err(Error::TooManyUplinks);
        }
        let mac = cfg.mac.to_u64();
        if mac == 0 || cfg.mac.is_multicast() {
            return Err(Error::InvalidMac);
        }
        if self.macs.get(mac).is_some() {
            return Err(Error::DuplicateMac);
        }
        let cap = if cfg.capacity_mbps == 0 {
            10_000
        } else {
            cfg.capacity_mbps
        };
        self.uplinks[n] = Uplink {
            factory: mac,
            cap_mbps: cap,
            weight: (1u64 << 24) / cap as u64,
            promise_bytes: (cap as u128 * 125_000 * self.cfg.tick_interval_ns as u128
                / NS_PER_S
                / 64) as u64,
            slots: cfg.filter_slots.max(1),
            up: cfg.link_up,
            held: IdentitySet::one(IdentityId(n as u8)),
            counters: UplinkCounters {
                identities_held: 1,
                ..UplinkCounters::ZERO
            },
            ..Uplink::EMPTY
        };
        self.macs.insert(mac, IDENTITY_TAG | n as u16);
        self.identities[n] = Identity {
            mac,
            counters: IdentityCounters {
                holder: n as u64,
                ..IdentityCounters::ZERO
            },
            holder: UplinkId(n as u8),
            ..Identity::EMPTY
        };
        self.identities[n].refresh_send(n);
        self.n_uplinks += 1;
        self.recompute_bcast();
        self.respread();
        Ok(UplinkId(n as u8))
    }

    /// Add a guest with its MAC and IPs. Each IP is bound to one identity,
    /// spread so each identity has about as many IPs bound (\[0030\]).
    pub fn add_guest(&mut self, mac: MacAddr, ips: &[IpAddr]) -> Result<GuestId, Error> {
        let mut nets =
            [IpNet::host(IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED)); MAX_IPS_PER_GUEST];
        if ips.len() > MAX_IPS_PER_GUEST {
            return Err(Error::TooManyIps);
        }
        for (n, ip) in nets.iter_mut().zip(ips) {
            *n = IpNet::host(*ip);
        }
        self.add_guest_nets(mac, &nets[..ips.len()])
    }

    /// [`Engine::add_guest`] with IPv6 prefixes beside addresses: the guest
    /// may then use any address inside a prefix (SLAAC, privacy
    /// addresses), learned when it first claims it. Prefixes may be shared
    /// by several guests (a LAN's /64); addresses may not.
    pub fn add_guest_nets(&mut self, mac: MacAddr, nets: &[IpNet]) -> Result<GuestId, Error> {
        let m = mac.to_u64();
        if m == 0 || mac.is_multicast() {
            return Err(Error::InvalidMac);
        }
        if nets.len() > MAX_IPS_PER_GUEST {
            return Err(Error::TooManyIps);
        }
        if self.macs.get(m).is_some() {
            return Err(Error::DuplicateMac);
        }
        let mut keys = [0u128; MAX_IPS_PER_GUEST];
        let mut plen = [HOST; MAX_IPS_PER_GUEST];
        for (i, net) in nets.iter().enumerate() {
            let (k, l) = if net.is_host() {
                let k = valid_ip(net.addr())?;
                if self.ip_owner.get(k).is_some() {
                    return Err(Error::DuplicateIp);
                }
                (k, HOST)
            } else {
                match net.addr() {
                    IpAddr::V6(_) => (ip_key(net.addr()), net.prefix_len()),
                    // Prefixes are for SLAAC; IPv4 guests name addresses.
                    IpAddr::V4(_) => return Err(Error::InvalidIp),
                }
            };
            if (0..i).any(|j| keys[j] == k && plen[j] == l) {
                return Err(Error::DuplicateIp);
            }
            keys[i] = k;
            plen[i] = l;
        }
        let Some(g) = self.guests.iter().position(|g| !g.active) else {
            return Err(Error::TooManyGuests);
        };
        self.guests[g] = Guest {
            active: true,
            mac: m,
            n_ips: nets.len() as u8,
            ips: keys,
            plen,
            auto: [true; MAX_IPS_PER_GUEST],
            ..Guest::EMPTY
        };
        self.macs.insert(m, g as u16);
        for slot in 0..nets.len() {
            if plen[slot] == HOST {
                self.ip_owner
                    .insert(keys[slot], (g * MAX_IPS_PER_GUEST + slot) as u16);
            }
            let b = self.spread_pick();
            self.guests[g].bindings[slot] = b;
        }
        self.refresh_reach(g);
        Ok(GuestId(g as u16))
    }

    /// Remove a guest; its counters and learned addresses are discarded.
    pub fn remove_guest(&mut self, guest: GuestId) -> Result<(), Error> {
        let g = self.guest_index(guest).ok_or(Error::UnknownGuest)?;
        let gu = self.guests[g];
        self.macs.remove(gu.mac);
        for s in 0..gu.n_ips as usize {
            if gu.plen[s] == HOST {
                self.ip_owner.remove(gu.ips[s]);
            }
        }
        for &a in gu.learned.iter().filter(|&&a| a != 0) {
            self.ip_owner.remove(a);
        }
        self.guests[g] = Guest::EMPTY;
        self.refresh_reach(g);
        Ok(())
    }

    /// The configured slots `net` names: the guest owning it, for an
    /// address; every guest configured with it, for a prefix.
    fn net_slots(&self, net: IpNet) -> impl Iterator<Item = (usize, usize)> + '_ {
        let host = if net.is_host() {
            self.guest_ip(net.addr()).ok()
        } else {
            None
        };
        let key = ip_key(net.addr());
        let len = net.prefix_len();
        let prefix = !net.is_host() && matches!(net.addr(), IpAddr::V6(_));
        host.into_iter().chain(
            self.guests
                .iter()
                .enumerate()
                .filter(move |(_, g)| prefix && g.active)
                .filter_map(move |(i, g)| Some((i, g.net_slot(key, len)?))),
        )
    }

    /// Bind a guest IP to a set of identities (\[0028\]–\[0029\], \[0052\]): one
    /// (default), several (more bandwidth) or none (`&[]`: denied). An
    /// IPv6 prefix is bound for every guest configured with it, and its
    /// learned addresses follow it.
    pub fn bind(&mut self, ip: impl Into<IpNet>, identities: &[IdentityId]) -> Result<(), Error> {
        let net = ip.into();
        let mut set = IdentitySet::EMPTY;
        for &id in identities {
            if id.0 >= self.n_uplinks {
                return Err(Error::UnknownIdentity);
            }
            set.insert(id);
        }
        self.rebind_net_slots(net, |e, g, slot| {
            e.guests[g].bindings[slot] = set;
            e.guests[g].auto[slot] = false;
        })
    }

    /// Give a guest IP (or IPv6 prefix) back to the spreading rule of \[0030\].
    pub fn bind_auto(&mut self, ip: impl Into<IpNet>) -> Result<(), Error> {
        self.rebind_net_slots(ip.into(), |e, g, slot| {
            e.guests[g].auto[slot] = true;
            e.guests[g].bindings[slot] = IdentitySet::EMPTY;
            let b = e.spread_pick();
            e.guests[g].bindings[slot] = b;
        })
    }

    /// `rebind` every configured slot `net` names ([`Engine::net_slots`]),
    /// then refresh that guest's reach. The slots are collected first, as
    /// `rebind` changes the engine. `UnknownIp`, and nothing changed, when
    /// `net` names none.
    fn rebind_net_slots(
        &mut self,
        net: IpNet,
        mut rebind: impl FnMut(&mut Self, usize, usize),
    ) -> Result<(), Error> {
        let mut slots = [(0usize, 0usize); MAX_GUESTS];
        let mut n = 0;
        for gs in self.net_slots(net) {
            slots[n] = gs;
            n += 1;
        }
        if n == 0 {
            return Err(Error::UnknownIp);
        }
        for &(g, slot) in &slots[..n] {
            rebind(self, g, slot);
            self.refresh_reach(g);
        }
        Ok(())
    }

    /// The binding of a guest IP: a configured address's or prefix's, or
    /// for a learned IPv6 address the binding it follows.
    pub fn binding(&self, ip: impl Into<IpNet>) -> Option<IdentitySet> {
        let net = ip.into();
        if let Some((g, slot)) = self.net_slots(net).next() {
            return Some(self.guests[g].bindings[slot]);
        }
        if !net.is_host() {
            return None;
        }
        match owner(self.ip_owner.get(ip_key(net.addr()))?) {
            Owner::Learned(g, k) => Some(self.guests[g].learned_binding(k)),
            _ => None,
        }
    }

    /// Guest `g`'s binding of its configured address or prefix `net`.
    pub fn guest_binding(&self, g: GuestId, net: impl Into<IpNet>) -> Option<IdentitySet> {
        let net = net.into();
        let gu = &self.guests[self.guest_index(g)?];
        let len = if net.is_host() {
            HOST
        } else {
            net.prefix_len()
        };
        Some(gu.bindings[gu.net_slot(ip_key(net.addr()), len)?])
    }

    /// The IPv6 addresses guest `g` has learned (link-local, in-prefix).
    pub fn learned(&self, g: GuestId) -> impl Iterator<Item = core::net::Ipv6Addr> + '_ {
        let gu = self.guest_index(g).map(|i| &self.guests[i]);
        gu.into_iter().flat_map(|gu| {
            gu.learned
                .iter()
                .filter(|&&a| a != 0)
                .map(|&a| core::net::Ipv6Addr::from(a))
        })
    }

    /// Spread every automatically bound IP evenly again over the identities
    /// (\[0030\]). Called by [`Engine::add_uplink`]; explicit bindings stay.
    pub fn respread(&mut self) {
        for g in 0..MAX_GUESTS {
            for s in 0..MAX_IPS_PER_GUEST {
                if self.guests[g].active && self.guests[g].auto[s] {
                    self.guests[g].bindings[s] = IdentitySet::EMPTY;
                }
            }
        }
        for g in 0..MAX_GUESTS {
            let n = self.guests[g].n_ips as usize;
            for s in 0..n {
                if self.guests[g].active && self.guests[g].auto[s] {
                    let b = self.spread_pick();
                    self.guests[g].bindings[s] = b;
                }
            }
            self.refresh_reach(g);
        }
    }

    /// Recompute whether guest `g` may hear broadcasts from the outside,
    /// per family, after its bindings changed.
    fn refresh_reach(&mut self, g: usize) {
        let (v4, v6) = self.guest_reach(g);
        let id = GuestId(g as u16);
        self.reach_v4.remove(id);
        self.reach_v6.remove(id);
        if v4 {
            self.reach_v4.insert(id);
        }
        if v6 {
            self.reach_v6.insert(id);
        }
    }

    /// (has a bound IPv4, has a bound IPv6).
    fn guest_reach(&self, g: usize) -> (bool, bool) {
        let gu = &self.guests[g];
        let n = (gu.n_ips as usize).min(MAX_IPS_PER_GUEST);
        let bound =
            |v4: bool| (0..n).any(|s| is_v4_key(gu.ips[s]) == v4 && !gu.bindings[s].is_empty());
        (gu.active && bound(true), gu.active && bound(false))
    }

    /// The identity with the fewest IPs bound, preferring identities that
    /// are neither pinned nor on an exclusive uplink (those serve only the
    /// guests the operator put there, \[0051\]).
    fn spread_pick(&self) -> IdentitySet {
        let n = self.n_uplinks as usize;
        if n == 0 {
            return IdentitySet::EMPTY;
        }
        let mut count = [0u32; MAX_IDENTITIES];
        for g in self.guests.iter().filter(|g| g.active) {
            for b in &g.bindings[..g.n_ips as usize] {
                for id in b.iter() {
                    count[id.0 as usize] += 1;
                }
            }
        }
        let reserved = |i: usize| {
            let id = &self.identities[i];
            id.pinned || self.uplinks[id.holder.0 as usize].exclusive
        };
        let open = (0..n).filter(|&i| !reserved(i));
        let best = open
            .min_by_key(|&i| (count[i], i))
            .or_else(|| (0..n).min_by_key(|&i| (count[i], i)));
        best.map_or(IdentitySet::EMPTY, |i| {
            IdentitySet::one(IdentityId(i as u8))
        })
    }

    /// Pin an identity to its current uplink: no other uplink may take it,
    /// so the guests bound to it use only that uplink (\[0051\]).
    pub fn pin(&mut self, id: IdentityId) -> Result<(), Error> {
        self.identity_mut(id)?.pinned = true;
        Ok(())
    }

    pub fn unpin(&mut self, id: IdentityId) -> Result<(), Error> {
        self.identity_mut(id)?.pinned = false;
        Ok(())
    }

    /// Make an uplink exclusive: it never changes its MAC (never gives or
    /// takes identities), so only the guests bound to its identity use it
    /// (\[0051\]).
    pub fn set_exclusive(&mut self, uplink: UplinkId, exclusive: bool) -> Result<(), Error> {
        let u = self.uplink_index(uplink).ok_or(Error::UnknownUplink)?;
        self.uplinks[u].exclusive = exclusive;
        Ok(())
    }

    /// Declare the domain's own IP stack: it sends with `identity`'s MAC as
    /// source and owns `ips`.
    pub fn set_own_stack(&mut self, identity: IdentityId, ips: &[IpAddr]) -> Result<(), Error> {
        if identity.0 >= self.n_uplinks {
            return Err(Error::UnknownIdentity);
        }
        if ips.len() > MAX_OWN_IPS {
            return Err(Error::TooManyIps);
        }
        let mut keys = [0u128; MAX_OWN_IPS];
        for (i, ip) in ips.iter().enumerate() {
            let k = valid_ip(*ip)?;
            match self.ip_owner.get(k) {
                Some(OWN) | None => {}
                Some(_) => return Err(Error::DuplicateIp),
            }
            keys[i] = k;
        }
        for &k in &self.own_ips[..self.n_own_ips as usize] {
            self.ip_owner.remove(k);
        }
        for &k in &keys[..ips.len()] {
            self.ip_owner.insert(k, OWN);
        }
        self.own_ips = keys;
        self.n_own_ips = ips.len() as u8;
        self.own_identity = Some(identity);
        Ok(())
    }

    // ------------------------------------------------------------------
    // Per-frame decisions
    // ------------------------------------------------------------------

    /// A frame from `guest` (claim steps 7–10, \[0032\]–\[0033\]). In identity
    /// mode a `Send` comes with the frame's source MAC (and ARP sender / NDP
    /// link-layer option) already rewritten; a `SwitchLocal` to a guest
    /// reached at an identity comes with the destination rewritten.
    ///
    /// Inlined into the caller with the fast path, so the common decision
    /// reaches it in registers; the general path is an ordinary call.
    #[inline(always)]
    pub fn guest_transmit(&mut self, now: u64, guest: GuestId, frame: &mut [u8]) -> TxDecision {
        if let Some(g) = self.guest_index(guest) {
            if let Some(d) = self.guest_tx_fast(g, frame) {
                return d;
            }
        }
        self.guest_transmit_general(now, guest, frame)
    }

    /// [`Engine::guest_transmit`] without the fast path: the test kit
    /// checks that both decide every frame alike.
    #[doc(hidden)]
    #[inline(never)]
    pub fn guest_transmit_general(
        &mut self,
        now: u64,
        guest: GuestId,
        frame: &mut [u8],
    ) -> TxDecision {
        let Some(g) = self.guest_index(guest) else {
            return TxDecision::Drop(DropReason::UnknownPort);
        };
        match self.guest_tx_inner(now, g, frame) {
            Ok(d) => d,
            Err(r) => {
                self.guests[g].counters.tx_drops.bump(r);
                TxDecision::Drop(r)
            }
        }
    }

    /// The first step of both fast paths: they decide only plain IPv4
    /// frames, and leave every frame this refuses, untouched, to the
    /// general path. The test kit relies on that: for such a frame
    /// `guest_transmit` and `uplink_receive` are the general path, so it
    /// compares the two paths only for frames this admits.
    #[inline(always)]
    fn fast_gate(frame: &[u8]) -> Option<wire::Ipv4Plain> {
        wire::ipv4_plain(frame)
    }

    /// Whether [`Engine::guest_transmit`] or [`Engine::uplink_receive`]
    /// may take their fast path for `frame` at all (see `fast_gate`).
    #[doc(hidden)]
    pub fn fast_path_may_take(frame: &[u8]) -> bool {
        Self::fast_gate(frame).is_some()
    }

    /// The common guest frame, decided in one pass over its header (issue
    /// 13.3): unicast IPv4 without options, from one of the guest's
    /// configured addresses, to a MAC that is neither a guest's nor an
    /// identity's, through its binding's least-loaded live holder. The
    /// guest is known from its port, so its MAC and address are compared,
    /// not looked up. `None` for every other frame, drops included: the
    /// general path decides those from scratch, so both always agree.
    #[inline(always)]
    fn guest_tx_fast(&mut self, g: usize, frame: &mut [u8]) -> Option<TxDecision> {
        let v = Self::fast_gate(frame)?;
        let gu = &self.guests[g];
        if v.src != gu.mac || v.dst == gu.mac || v.dst & MULTICAST != 0 {
            return None;
        }
        let binding = gu.bindings[gu.slot_of(v.src_ip)?];
        if self.macs.get(v.dst).is_some() {
            return None;
        }
        let (id, u) = self.least_loaded_holder(binding, false).ok()?;
        let len = frame.len() as u64;
        if self.cfg.mode == Mode::Identity {
            let ident = &self.identities[id];
            wire::set_src_mac(frame, ident.mac);
            let d = ident.send;
            self.count_tx(g, id, u, binding, len);
            return Some(d);
        }
        let steering = self.steer(g, id, u, frame);
        self.count_tx(g, id, u, binding, len);
        Some(TxDecision::Send {
            uplink: UplinkId(u as u8),
            steering,
            flood_local: false,
        })
    }

    /// Claim steps 8-10 for a frame of guest `g` leaving under identity
    /// `id` on uplink `u`: identity mode rewrites its source MAC (the
    /// caller rewrites what else names it), literal mode asks for the
    /// register write.
    #[inline(always)]
    fn steer(&mut self, g: usize, id: usize, u: usize, frame: &mut [u8]) -> Steering {
        let idm = self.identities[id].mac;
        match self.cfg.mode {
            Mode::Identity => {
                wire::set_src_mac(frame, idm);
                Steering::Rewritten {
                    identity: IdentityId(id as u8),
                    mac: MacAddr::from_u64(idm),
                }
            }
            Mode::Literal => {
                // Steps 8 and 10: two register writes per frame (the
                // datapath shares them between a guest's frames).
                self.uplinks[u].counters.mac_writes += 2;
                Steering::WriteMacThenRestore {
                    mac: MacAddr::from_u64(self.guests[g].mac),
                    restore: MacAddr::from_u64(self.uplink_mac_u64(u)),
                }
            }
        }
    }

    /// A guest frame of `len` bytes sent under identity `id` on uplink `u`.
    #[inline(always)]
    fn count_tx(&mut self, g: usize, id: usize, u: usize, binding: IdentitySet, len: u64) {
        let up = &mut self.uplinks[u];
        up.tx_pending += len;
        up.counters.tx_frames += 1;
        up.counters.tx_bytes += len;
        let ident = &mut self.identities[id];
        ident.tx_pending += len;
        if binding.0 & (binding.0 - 1) == 0 {
            ident.fixed_tx_pending += len;
        }
        ident.counters.tx_bytes += len;
        let c = &mut self.guests[g].counters;
        c.tx_frames += 1;
        c.tx_bytes += len;
        c.tx_frames_per_uplink[u] += 1;
    }

    #[inline(always)]
    fn guest_tx_inner(
        &mut self,
        now: u64,
        g: usize,
        frame: &mut [u8],
    ) -> Result<TxDecision, DropReason> {
        let p = wire::parse(frame)?;
        let gmac = self.guests[g].mac;
        if p.src != gmac {
            return Err(DropReason::SpoofedMac);
        }
        // Step 1: the source IP (or, for an ARP probe / IPv6 DAD from the
        // unspecified address, the address being claimed) must be the guest's.
        let src = match p.l3 {
            L3::Arp { sha, spa, tpa, .. } => {
                if sha != gmac {
                    return Err(DropReason::SpoofedMac);
                }
                let ip = if spa == 0xffff_0000_0000 {
                    tpa // RFC 5227 2.1.1 probe
                } else {
                    spa
                };
                Src::Slot(self.guests[g].slot_of(ip).ok_or(DropReason::SpoofedIp)?)
            }
            L3::Ip { src, .. } if is_v4_key(src) => {
                Src::Slot(self.guests[g].slot_of(src).ok_or(DropReason::SpoofedIp)?)
            }
            L3::Ip { src, icmp6, .. } => self.v6_source(now, g, frame, src, icmp6.as_ref())?,
            L3::Other(_) => return Err(DropReason::BadEthertype),
        };
        let slot = match src {
            Src::Slot(s) => s,
            Src::Learned(_) | Src::AllV6 => 0,
        };
        let len = frame.len() as u64;

        // Step 2: local destinations never touch an uplink.
        if p.dst == gmac {
            return Err(DropReason::Hairpin);
        }
        let multicast = p.dst & (1 << 40) != 0;
        if multicast && self.cfg.bcast_limit_pps != 0 {
            self.bcast_allowance(now, g)?;
        }
        if !multicast {
            if let Some(d) = self.local_destination(&p, frame) {
                let c = &mut self.guests[g].counters;
                c.tx_local += 1;
                if let TxDecision::SwitchLocal { guest } = d {
                    let dc = &mut self.guests[guest.0 as usize].counters;
                    dc.rx_frames += 1;
                    dc.rx_bytes += len;
                }
                return Ok(d);
            }
        }

        // Step 7: assign a NIC by the source IP's binding.
        let binding = self.guests[g].src_binding(src);
        if binding.is_empty() {
            return Err(DropReason::Denied);
        }
        // ARP and NDP tell peers where to send (a reply names the sender,
        // and a request or solicitation updates the target's cache too):
        // pick by receive load, so peers of a guest bound to several
        // identities spread over them.
        let icmp6 = p.icmp6().copied();
        let by_rx = matches!(p.l3, L3::Arp { .. }) || icmp6.is_some_and(|m| m.ll_count > 0);
        // MLD reports leave where group traffic is taken in: a snooping
        // switch sends a group only to the ports its reports came from.
        let mld_out = icmp6
            .filter(|m| {
                matches!(
                    m.ty,
                    wire::ICMPV6_MLD_REPORT | wire::ICMPV6_MLD_DONE | wire::ICMPV6_MLD2_REPORT
                )
            })
            .and(self.bcast_uplink)
            .and_then(|u| {
                Some((
                    self.uplinks[u.0 as usize].held.first()?.0 as usize,
                    u.0 as usize,
                ))
            });
        let (id, u) = match mld_out {
            Some(pair) => pair,
            None => self.least_loaded_holder(binding, by_rx)?,
        };

        let steering = self.steer(g, id, u, frame);
        if let Steering::Rewritten { mac, .. } = steering {
            let idm = mac.to_u64();
            if let L3::Arp { .. } = p.l3 {
                wire::set_arp_sha(frame, idm);
            }
            if let Some(m) = icmp6 {
                // Every option was checked to be the guest's MAC.
                for &off in m.lladdrs() {
                    wire::set_nd_lladdr(frame, m.at, off, idm);
                }
            }
        }
        self.count_tx(g, id, u, binding, len);
        if by_rx {
            self.promise(u, g * MAX_IPS_PER_GUEST + slot, p.dst_ip().unwrap_or(0));
        }
        if mld_out.is_some() {
            self.counters.mld_out += 1;
        }
        Ok(TxDecision::Send {
            uplink: UplinkId(u as u8),
            steering,
            flood_local: multicast,
        })
    }

    /// Step 1 for IPv6: the guards on what a guest may say in NDP, then the
    /// source address, claimed (learned) if it is link-local or inside one
    /// of the guest's prefixes. Returns where the frame's binding comes
    /// from.
    fn v6_source(
        &mut self,
        now: u64,
        g: usize,
        frame: &[u8],
        src: u128,
        icmp6: Option<&Icmp6>,
    ) -> Result<Src, DropReason> {
        if let Some(m) = icmp6 {
            // RA guard (RFC 6105): guests are hosts.
            if m.ty == wire::ICMPV6_RA || m.ty == wire::ICMPV6_REDIRECT {
                return Err(DropReason::RaGuard);
            }
            let gmac = self.guests[g].mac;
            if m.lladdrs()
                .iter()
                .any(|&off| wire::parse_mac_at(frame, off) != Some(gmac))
            {
                return Err(DropReason::NdLladdr);
            }
        }
        let from = if src == 0 {
            // The unspecified source is for DAD (RFC 4862 5.4.2), router
            // solicitation before an address is ready (RFC 4861 4.1) and
            // MLD reports meanwhile (RFC 3810 5.2.13); DAD claims its target.
            match icmp6 {
                Some(m) if m.ty == wire::ICMPV6_NS => {
                    let t = m.target.ok_or(DropReason::NdMalformed)?;
                    self.claim_v6(now, g, t)?
                }
                Some(m) if m.ty == wire::ICMPV6_RS || m.is_mld() => Src::AllV6,
                _ => return Err(DropReason::SpoofedIp6),
            }
        } else {
            self.claim_v6(now, g, src)?
        };
        if let Some(m) = icmp6.filter(|m| m.ty == wire::ICMPV6_NA) {
            // RFC 4861 7.2.4: an advertisement is its target owner's to send.
            let t = m.target.ok_or(DropReason::NdMalformed)?;
            match self.claim_v6(now, g, t) {
                Ok(_) => {}
                Err(DropReason::SpoofedIp6 | DropReason::Ip6Taken | DropReason::Denied) => {
                    return Err(DropReason::NdTarget)
                }
                Err(e) => return Err(e),
            }
        }
        Ok(from)
    }

    /// IPv6 address `a` as guest `g`'s: configured, learned before, or
    /// learned now if it is link-local or inside one of its prefixes and no
    /// one else holds it.
    fn claim_v6(&mut self, now: u64, g: usize, a: u128) -> Result<Src, DropReason> {
        if let Some(s) = self.guests[g].slot_of(a) {
            return Ok(Src::Slot(s));
        }
        let governing = self.guests[g].governing(a);
        match self.ip_owner.get(a).map(owner) {
            Some(Owner::Learned(h, k)) if h == g => {
                self.guests[g].learned_seen[k] = now;
                Ok(Src::Learned(k))
            }
            Some(_) if governing.is_some() => Err(DropReason::Ip6Taken),
            Some(_) => Err(DropReason::SpoofedIp6),
            None => match governing {
                Some(from) => self.learn(now, g, a, from).map(Src::Learned),
                // A link-local address of a guest with no IPv6 entry: it may
                // not use IPv6 at all.
                None if is_link_local(a) && is_unicast_v6(a) => Err(DropReason::Denied),
                None => Err(DropReason::SpoofedIp6),
            },
        }
    }

    /// Records `a` as learned by guest `g`, bound as `from`. When the
    /// guest is at `learn_max`, its least recently used address makes room
    /// if it has been idle `learn_idle_ns`.
    fn learn(&mut self, now: u64, g: usize, a: u128, from: u8) -> Result<usize, DropReason> {
        let max = (self.cfg.learn_max as usize).min(MAX_LEARNED_PER_GUEST);
        let gu = &self.guests[g];
        let k = if (gu.n_learned as usize) < max {
            gu.learned.iter().position(|&x| x == 0)
        } else {
            (0..MAX_LEARNED_PER_GUEST)
                .filter(|&k| gu.learned[k] != 0)
                .min_by_key(|&k| gu.learned_seen[k])
                .filter(|&k| now.saturating_sub(gu.learned_seen[k]) >= self.cfg.learn_idle_ns)
        };
        let Some(k) = k else {
            return Err(DropReason::Ip6LearnLimit);
        };
        if self.guests[g].learned[k] != 0 {
            self.forget(g, k);
        }
        let v = LEARNED_TAG | (g * MAX_LEARNED_PER_GUEST + k) as u16;
        if !self.ip_owner.insert(a, v) {
            return Err(DropReason::Ip6LearnLimit);
        }
        let gu = &mut self.guests[g];
        gu.learned[k] = a;
        gu.learned_from[k] = from;
        gu.learned_seen[k] = now;
        gu.n_learned += 1;
        Ok(k)
    }

    fn forget(&mut self, g: usize, k: usize) {
        let a = self.guests[g].learned[k];
        if a != 0 {
            self.ip_owner.remove(a);
            self.guests[g].learned[k] = 0;
            self.guests[g].n_learned -= 1;
        }
    }

    /// Guest IP `who` named an identity of uplink `u` to `peer` (an ARP
    /// target or NDP destination): a promise of receive load, unless this
    /// pair already made one since the last tick.
    #[inline(always)]
    fn promise(&mut self, u: usize, who: usize, peer: u128) {
        let h = ((peer as u64)
            ^ ((peer >> 64) as u64)
            ^ (who as u64).wrapping_mul(0xff51_afd7_ed55_8ccd))
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            >> 56;
        let (word, bit) = ((h >> 6) as usize, 1u64 << (h & 63));
        let up = &mut self.uplinks[u];
        if up.promised[word] & bit == 0 {
            up.promised[word] |= bit;
            up.promises += 1;
        }
    }

    /// One more broadcast or multicast frame from guest `g` in this
    /// one-second window, or `BroadcastLimit` if the window's allowance is
    /// spent. A fixed window (no division): a burst of twice the limit
    /// across a window edge gets through, which is all a limit meant to
    /// stop a flood needs.
    fn bcast_allowance(&mut self, now: u64, g: usize) -> Result<(), DropReason> {
        let gu = &mut self.guests[g];
        if now < gu.bcast_window || now - gu.bcast_window >= NS_PER_S as u64 {
            gu.bcast_window = now;
            gu.bcast_sent = 0;
        }
        if gu.bcast_sent >= self.cfg.bcast_limit_pps {
            return Err(DropReason::BroadcastLimit);
        }
        gu.bcast_sent += 1;
        Ok(())
    }

    /// Another guest or the own stack, for a unicast guest frame.
    #[inline(always)]
    fn local_destination(&self, p: &Parsed, frame: &mut [u8]) -> Option<TxDecision> {
        let by_mac = self.macs.get(p.dst)?;
        if by_mac & IDENTITY_TAG == 0 {
            return Some(TxDecision::SwitchLocal {
                guest: GuestId(by_mac),
            });
        }
        // Sent to an identity: the outside's name for a local guest or for
        // the own stack. Deliver here, with the real MAC put back.
        let d = match owner(self.ip_owner.get(p.dst_ip()?)?) {
            Owner::Own => return Some(TxDecision::ToOwnStack),
            Owner::Slot(d, _) | Owner::Learned(d, _) => d,
        };
        self.restore_guest_mac(p, frame, self.guests[d].mac);
        Some(TxDecision::SwitchLocal {
            guest: GuestId(d as u16),
        })
    }

    /// A frame sent to identity `p.dst` for a guest: the guest's own MAC put
    /// back as destination, and where the frame names the identity as the
    /// guest's link-layer address (ARP target, NDP option), there too. An
    /// option that names the sender stays: the own stack's, when it sends
    /// under the very identity the guest is reached at.
    #[inline(always)]
    fn restore_guest_mac(&self, p: &Parsed, frame: &mut [u8], gmac: u64) {
        wire::set_dst_mac(frame, gmac);
        match &p.l3 {
            L3::Arp { tha, .. } if *tha == p.dst => wire::set_arp_tha(frame, gmac),
            L3::Ip { icmp6: Some(m), .. } if p.dst != p.src => {
                for &off in m.lladdrs() {
                    if wire::parse_mac_at(frame, off) == Some(p.dst) {
                        wire::set_nd_lladdr(frame, m.at, off, gmac);
                    }
                }
            }
            _ => {}
        }
    }

    /// \[0032\]: among the live uplinks holding an identity of `binding`, the
    /// one with the least traffic. Returns (identity, uplink).
    #[inline(always)]
    fn least_loaded_holder(
        &self,
        binding: IdentitySet,
        by_rx: bool,
    ) -> Result<(usize, usize), DropReason> {
        if binding.0 != 0 && binding.0 & (binding.0 - 1) == 0 {
            // One identity (the usual binding): no load to compare.
            let i = binding.0.trailing_zeros() as usize;
            if i < self.n_uplinks as usize {
                let u = self.identities[i].holder.0 as usize;
                if self.uplinks[u].up {
                    return Ok((i, u));
                }
            }
            return Err(DropReason::NoLiveUplink);
        }
        let mut best: Option<(u64, usize, usize)> = None;
        let mut bits = binding.0;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if i >= self.n_uplinks as usize {
                continue;
            }
            let u = self.identities[i].holder.0 as usize;
            let up = &self.uplinks[u];
            if !up.up {
                continue;
            }
            let s = if by_rx { up.rx_score() } else { up.score() };
            if best.is_none_or(|(bs, _, _)| s < bs) {
                best = Some((s, i, u));
            }
        }
        best.map(|(_, i, u)| (i, u)).ok_or(DropReason::NoLiveUplink)
    }

    /// A frame that arrived on `uplink`. In identity mode a `ToGuest` comes
    /// with the destination MAC (and ARP target MAC) rewritten to the guest's.
    ///
    /// Inlined into the caller with the fast path, as
    /// [`Engine::guest_transmit`].
    #[inline(always)]
    pub fn uplink_receive(&mut self, now: u64, uplink: UplinkId, frame: &mut [u8]) -> RxDecision {
        if let Some(u) = self.uplink_index(uplink) {
            if let Some(d) = self.uplink_rx_fast(u, frame) {
                return d;
            }
        }
        self.uplink_receive_general(now, uplink, frame)
    }

    /// [`Engine::uplink_receive`] without the fast path: the test kit
    /// checks that both decide every frame alike.
    #[doc(hidden)]
    #[inline(never)]
    pub fn uplink_receive_general(
        &mut self,
        now: u64,
        uplink: UplinkId,
        frame: &mut [u8],
    ) -> RxDecision {
        let _ = now;
        let Some(u) = self.uplink_index(uplink) else {
            return RxDecision::Drop(DropReason::UnknownPort);
        };
        let len = frame.len() as u64;
        {
            // The NIC's counters see every arrival ...
            let up = &mut self.uplinks[u];
            up.counters.rx_frames += 1;
            up.counters.rx_bytes += len;
        }
        let d = match wire::parse(frame) {
            Ok(p) => self.rx_inner(u, &p, frame),
            Err(r) => RxDecision::Drop(r),
        };
        // ... the load only what was delivered: junk must not steer ARP
        // choices or rebalancing.
        if !matches!(d, RxDecision::Drop(_)) {
            self.uplinks[u].rx_pending += len;
        }
        match d {
            RxDecision::Drop(r) => self.uplinks[u].counters.rx_drops.bump(r),
            RxDecision::ToOwnStack => self.counters.own_rx_frames += 1,
            RxDecision::Flood { .. } => self.counters.rx_flooded += 1,
            RxDecision::ToGuest { guest } => {
                let c = &mut self.guests[guest.0 as usize].counters;
                c.rx_frames += 1;
                c.rx_bytes += len;
            }
        }
        d
    }

    /// The common received frame, decided in one pass over its header
    /// (issue 13.3): unicast IPv4 without options to an identity this
    /// uplink holds, for a configured address of a guest that may use the
    /// network. `None` for every other frame, drops included (the general
    /// path decides those from scratch).
    #[inline(always)]
    fn uplink_rx_fast(&mut self, u: usize, frame: &mut [u8]) -> Option<RxDecision> {
        let v = Self::fast_gate(frame)?;
        if v.dst & MULTICAST != 0 {
            return None;
        }
        let i = self.identity_by_mac(v.dst)?;
        if self.identities[i].holder.0 as usize != u {
            return None;
        }
        let Owner::Slot(g, s) = owner(self.ip_owner.get(v.dst_ip)?) else {
            return None;
        };
        if self.guests[g].bindings[s].is_empty() {
            return None;
        }
        let len = frame.len() as u64;
        wire::set_dst_mac(frame, self.guests[g].mac);
        let up = &mut self.uplinks[u];
        up.counters.rx_frames += 1;
        up.counters.rx_bytes += len;
        up.rx_pending += len;
        self.count_identity_rx(i, len);
        let c = &mut self.guests[g].counters;
        c.rx_frames += 1;
        c.rx_bytes += len;
        Some(RxDecision::ToGuest {
            guest: GuestId(g as u16),
        })
    }

    #[inline(always)]
    fn rx_inner(&mut self, u: usize, p: &Parsed, frame: &mut [u8]) -> RxDecision {
        if p.dst & (1 << 40) != 0 {
            // The switch floods broadcasts to every uplink: take one copy,
            // and none of our own (an identity's or, in literal mode, a
            // guest's) flooded back: a guest that gets its own ARP or DAD
            // probe back from another MAC thinks its address is taken.
            if self.bcast_uplink != Some(UplinkId(u as u8)) || self.macs.get(p.src).is_some() {
                return RxDecision::Drop(DropReason::DuplicateBroadcast);
            }
            // ARP requests and neighbour solicitations for an address here
            // go to its owner alone (RFC 4861 7.2.2: an NS goes to the
            // target's solicited-node group, which only its owner joins).
            let target = match p.l3 {
                L3::Arp { tpa, .. } => Some(tpa),
                L3::Ip {
                    icmp6:
                        Some(Icmp6 {
                            ty: wire::ICMPV6_NS,
                            target,
                            ..
                        }),
                    ..
                } => target,
                _ => None,
            };
            if let Some(t) = target {
                match self.ip_owner.get(t) {
                    Some(OWN) => return RxDecision::ToOwnStack,
                    Some(v) => {
                        let d = self.guest_for_owner(v);
                        if !matches!(p.l3, L3::Arp { .. }) {
                            if let RxDecision::ToGuest { .. } = d {
                                self.counters.rx_nd_directed += 1;
                            }
                        }
                        return d;
                    }
                    None => {}
                }
            }
            return RxDecision::Flood {
                guests: self.reach(&p.l3),
            };
        }
        let owner = self.macs.get(p.dst);
        if let Some(i) = owner.filter(|o| o & IDENTITY_TAG != 0) {
            let i = (i & !IDENTITY_TAG) as usize;
            if self.identities[i].holder.0 as usize != u {
                return RxDecision::Drop(DropReason::NotHolder);
            }
            let Some(owner) = p.dst_ip().and_then(|ip| self.ip_owner.get(ip)) else {
                return RxDecision::Drop(DropReason::UnknownDestination);
            };
            // Counted once delivered: it is the load that follows the
            // identity when it moves.
            let len = frame.len() as u64;
            if owner == OWN {
                self.count_identity_rx(i, len);
                return RxDecision::ToOwnStack;
            }
            let d = self.guest_for_owner(owner);
            if let RxDecision::ToGuest { guest } = d {
                self.count_identity_rx(i, len);
                let gmac = self.guests[guest.0 as usize].mac;
                self.restore_guest_mac(p, frame, gmac);
            }
            return d;
        }
        if self.cfg.mode == Mode::Literal {
            if let Some(g) = owner {
                let g = g as usize;
                // A denied IP receives nothing either ([0029]), nor does a
                // guest denied in the frame's family, whatever IP it names.
                let denied = match p.dst_ip().and_then(|ip| self.guest_binding_of(g, ip)) {
                    Some(b) => b.is_empty(),
                    None => !self.reach(&p.l3).contains(GuestId(g as u16)),
                };
                if denied {
                    self.guests[g].counters.rx_drops.bump(DropReason::Denied);
                    return RxDecision::Drop(DropReason::Denied);
                }
                return RxDecision::ToGuest {
                    guest: GuestId(g as u16),
                };
            }
        }
        RxDecision::Drop(DropReason::UnknownDestination)
    }

    /// The guests a frame not addressed to one of their IPs may reach: a
    /// broadcast or multicast. A guest hears one only if it may use the
    /// network in that frame's family (an IP of it bound to some identity),
    /// so a denied guest (\[0029\]) hears nothing from the outside; frames
    /// of other ethertypes reach any guest not wholly denied.
    #[inline(always)]
    fn reach(&self, l3: &L3) -> GuestSet {
        match *l3 {
            L3::Arp { .. } => self.reach_v4,
            L3::Ip { dst, .. } if is_v4_key(dst) => self.reach_v4,
            L3::Ip { .. } => self.reach_v6,
            L3::Other(_) => GuestSet(self.reach_v4.0 | self.reach_v6.0),
        }
    }

    #[inline(always)]
    fn count_identity_rx(&mut self, i: usize, len: u64) {
        let ident = &mut self.identities[i];
        ident.rx_pending += len;
        ident.counters.rx_bytes += len;
    }

    /// The guest an `ip_owner` value names, unless the address is denied.
    #[inline(always)]
    fn guest_for_owner(&mut self, v: u16) -> RxDecision {
        let (g, binding) = match owner(v) {
            Owner::Own => return RxDecision::ToOwnStack,
            Owner::Slot(g, s) => (g, self.guests[g].bindings[s]),
            Owner::Learned(g, k) => (g, self.guests[g].learned_binding(k)),
        };
        if binding.is_empty() {
            self.guests[g].counters.rx_drops.bump(DropReason::Denied);
            return RxDecision::Drop(DropReason::Denied);
        }
        RxDecision::ToGuest {
            guest: GuestId(g as u16),
        }
    }

    /// The binding of `ip` if it is guest `g`'s (configured or learned).
    fn guest_binding_of(&self, g: usize, ip: u128) -> Option<IdentitySet> {
        let gu = &self.guests[g];
        if let Some(s) = gu.slot_of(ip) {
            return Some(gu.bindings[s]);
        }
        match owner(self.ip_owner.get(ip)?) {
            Owner::Learned(h, k) if h == g => Some(gu.learned_binding(k)),
            _ => None,
        }
    }

    /// A frame from the domain's own stack (claim steps 3–6). Its source
    /// MAC must be an identity (normally the own stack's). A `SwitchLocal`
    /// to a guest reached at an identity comes with the destination
    /// rewritten.
    pub fn own_transmit(&mut self, now: u64, frame: &mut [u8]) -> OwnTxDecision {
        match self.own_tx_inner(now, frame) {
            Ok(d) => {
                self.counters.own_tx_frames += 1;
                d
            }
            Err(r) => {
                self.counters.own_tx_drops.bump(r);
                OwnTxDecision::Drop(r)
            }
        }
    }

    fn own_tx_inner(&mut self, now: u64, frame: &mut [u8]) -> Result<OwnTxDecision, DropReason> {
        let p = wire::parse(frame)?;
        let s = self.identity_by_mac(p.src).ok_or(DropReason::SpoofedMac)?;
        // A local guest, by its MAC or (identity mode) by the identity its
        // ARP / NDP replies named, which is where the own stack learns it:
        // switched here as a guest's frame would be, never out and lost
        // (the switch outside does not send an identity's frames back).
        if let Some(TxDecision::SwitchLocal { guest }) = self.local_destination(&p, frame) {
            let c = &mut self.guests[guest.0 as usize].counters;
            c.rx_frames += 1;
            c.rx_bytes += frame.len() as u64;
            return Ok(OwnTxDecision::SwitchLocal { guest });
        }
        let h = self.identities[s].holder.0 as usize;
        let s_movable = self.movable(s, now) && !self.uplinks[h].exclusive;
        // Step 3: the least-loaded uplink that may send this frame: the
        // holder of the source MAC, or one that can swap with it.
        let mut best: Option<(u64, usize)> = None;
        for u in 0..self.n_uplinks as usize {
            let up = &self.uplinks[u];
            if !up.up {
                continue;
            }
            let ok = u == h || (s_movable && !up.exclusive && self.swap_partner(u, h, now).is_ok());
            if ok && best.is_none_or(|(b, _)| up.score() < b) {
                best = Some((up.score(), u));
            }
        }
        let (_, a) = best.ok_or(DropReason::NoLiveUplink)?;
        let mut moves = Moves::NONE;
        if a != h {
            // Step 5: swap the MACs of the holder and the assigned uplink.
            let partner = self.swap_partner(a, h, now).ok().flatten();
            self.move_identity(now, IdentityId(s as u8), a, &mut moves);
            if let Some(y) = partner {
                self.move_identity(now, y, h, &mut moves);
            }
            self.counters.own_tx_swaps += 1;
        }
        // Step 4/6: send through the assigned uplink, unchanged.
        let len = frame.len() as u64;
        let up = &mut self.uplinks[a];
        up.tx_pending += len;
        up.counters.tx_frames += 1;
        up.counters.tx_bytes += len;
        self.identities[s].tx_pending += len;
        self.identities[s].fixed_tx_pending += len;
        self.identities[s].counters.tx_bytes += len;
        Ok(OwnTxDecision::Send {
            uplink: UplinkId(a as u8),
            moves,
        })
    }

    /// For an own-stack swap onto `a` from holder `h`: the identity `a`
    /// gives back (`Ok(Some)`), or `Ok(None)` when `a` can simply take one
    /// more (it has a free slot and `h` is dead or would keep another).
    fn swap_partner(&self, a: usize, h: usize, now: u64) -> Result<Option<IdentityId>, ()> {
        let up = &self.uplinks[a];
        let give = up.held.iter().find(|y| self.movable(y.0 as usize, now));
        let free_slot = (up.held.len()) < up.slots as usize;
        let h_up = self.uplinks[h].up;
        match give {
            Some(y) if h_up => Ok(Some(y)),
            _ if free_slot && (!h_up || self.uplinks[h].held.len() > 1 || up.held.is_empty()) => {
                Ok(None)
            }
            _ => Err(()),
        }
    }

    fn movable(&self, i: usize, now: u64) -> bool {
        let id = &self.identities[i];
        !id.pinned
            && id
                .last_move
                .is_none_or(|t| now.saturating_sub(t) >= self.cfg.min_dwell_ns)
    }

    fn move_identity(&mut self, now: u64, id: IdentityId, to: usize, moves: &mut Moves) {
        let i = id.0 as usize;
        let from = self.identities[i].holder.0 as usize;
        if from == to {
            return;
        }
        self.uplinks[from].held.remove(id);
        self.uplinks[to].held.insert(id);
        let (txr, rxr) = (self.identities[i].tx_rate, self.identities[i].rx_rate);
        {
            let f = &mut self.uplinks[from];
            f.tx_rate = f.tx_rate.saturating_sub(txr);
            f.rx_rate = f.rx_rate.saturating_sub(rxr);
            f.counters.moves_out += 1;
            f.counters.identities_held -= 1;
            f.counters.mac_writes += 1;
        }
        {
            let t = &mut self.uplinks[to];
            t.tx_rate = t.tx_rate.saturating_add(txr);
            t.rx_rate = t.rx_rate.saturating_add(rxr);
            t.counters.moves_in += 1;
            t.counters.identities_held += 1;
            t.counters.mac_writes += 1;
        }
        let interval = self.cfg.tick_interval_ns as u128;
        for u in [from, to] {
            let up = &mut self.uplinks[u];
            up.tx_base = (up.tx_rate as u128 * interval / NS_PER_S) as u64;
            up.rx_base = (up.rx_rate as u128 * interval / NS_PER_S) as u64;
        }
        let ident = &mut self.identities[i];
        ident.holder = UplinkId(to as u8);
        ident.refresh_send(i);
        ident.last_move = Some(now);
        ident.counters.moves += 1;
        ident.counters.holder = to as u64;
        moves.push(Move {
            identity: id,
            mac: MacAddr::from_u64(ident.mac),
            from: UplinkId(from as u8),
            to: UplinkId(to as u8),
        });
    }

    // ------------------------------------------------------------------
    // Time: load and rebalance
    // ------------------------------------------------------------------

    /// Fold the bytes counted since the last tick into the rate EWMAs and,
    /// at most every `rebalance_interval_ns`, rebalance (\[0034\]). Call every
    /// `tick_interval_ns` or so. Returns the identity moves to carry out.
    pub fn tick(&mut self, now: u64) -> Moves {
        let dt = now.saturating_sub(self.last_tick);
        if dt > 0 {
            let tau = self.cfg.ewma_tau_ns as u128;
            let interval = self.cfg.tick_interval_ns as u128;
            let ewma = |rate: u64, pending: u64| -> u64 {
                let dt = dt as u128;
                let sample = pending as u128 * NS_PER_S / dt;
                let r = (rate as u128 * tau + sample * dt) / (tau + dt).max(1);
                r.min(u64::MAX as u128) as u64
            };
            for up in &mut self.uplinks[..self.n_uplinks as usize] {
                up.tx_rate = ewma(up.tx_rate, up.tx_pending);
                up.rx_rate = ewma(up.rx_rate, up.rx_pending);
                up.tx_pending = 0;
                up.rx_pending = 0;
                up.promises /= 2;
                up.promised = [0; 4];
                up.tx_base =
                    (up.tx_rate as u128 * interval / NS_PER_S).min(u64::MAX as u128) as u64;
                up.rx_base =
                    (up.rx_rate as u128 * interval / NS_PER_S).min(u64::MAX as u128) as u64;
            }
            for id in &mut self.identities[..self.n_uplinks as usize] {
                id.tx_rate = ewma(id.tx_rate, id.tx_pending);
                id.rx_rate = ewma(id.rx_rate, id.rx_pending);
                id.fixed_tx_rate = ewma(id.fixed_tx_rate, id.fixed_tx_pending);
                id.tx_pending = 0;
                id.rx_pending = 0;
                id.fixed_tx_pending = 0;
            }
            self.last_tick = now;
        }
        if now.saturating_sub(self.last_rebalance) >= self.cfg.rebalance_interval_ns {
            self.last_rebalance = now;
            return self.rebalance(now);
        }
        Moves::NONE
    }

    /// The load an uplink carries because of the identities it holds and
    /// that would follow them if they moved: (transmit that could use no
    /// other identity, all receive), bytes/s. Traffic of IPs bound to
    /// several identities is left out: it already goes, frame by frame, to
    /// the least-loaded of its uplinks and fills whatever room a move makes.
    fn fixed_load(&self, u: usize) -> (u64, u64) {
        self.uplinks[u].held.iter().fold((0u64, 0u64), |(t, r), i| {
            let id = &self.identities[i.0 as usize];
            (
                t.saturating_add(id.fixed_tx_rate),
                r.saturating_add(id.rx_rate),
            )
        })
    }

    fn fixed_util(&self, u: usize) -> u64 {
        let (t, r) = self.fixed_load(u);
        self.uplinks[u].util_permille(t, r)
    }

    /// \[0034\]: when the busiest uplink is overloaded, swap its identity with
    /// the least-loaded uplink's (or, when it holds several, hand one over),
    /// but only if that lowers the busier of the two by at least half the
    /// hysteresis: swapping two equal loads would only move the problem.
    /// Loads here are [`Engine::fixed_load`]s.
    fn rebalance(&mut self, now: u64) -> Moves {
        self.counters.rebalance_runs += 1;
        let mut moves = Moves::NONE;
        let n = self.n_uplinks as usize;
        let mut hot: Option<(u64, usize)> = None;
        for u in 0..n {
            let up = &self.uplinks[u];
            if !up.up || up.exclusive {
                continue;
            }
            let x = self.fixed_util(u);
            if hot.is_none_or(|(h, _)| x > h) {
                hot = Some((x, u));
            }
        }
        let Some((hu, h)) = hot else {
            return moves;
        };
        if hu < self.cfg.overload_permille as u64 {
            return moves;
        }
        let hup = self.uplinks[h];
        let (h_tx, h_rx) = self.fixed_load(h);
        // [0034] takes the least-loaded NIC. With uplinks of different
        // capacities the least loaded may have no room for the hot identity
        // while another has, so every cooler uplink is tried and the best
        // result wins; equal results go to the least loaded, then the
        // lowest-numbered, as [0034] would pick.
        // (gain, cold utilisation, cold uplink, identity out, identity back)
        let mut best: Option<(u64, u64, usize, IdentityId, Option<IdentityId>)> = None;
        for c in 0..n {
            let cup = self.uplinks[c];
            if c == h || !cup.up || cup.exclusive {
                continue;
            }
            let cu = self.fixed_util(c);
            if hu.saturating_sub(cu) < self.cfg.hysteresis_permille as u64 {
                continue;
            }
            let (c_tx, c_rx) = self.fixed_load(c);
            for x in hup.held.iter().filter(|x| self.movable(x.0 as usize, now)) {
                let xi = &self.identities[x.0 as usize];
                let mut consider = |y: Option<IdentityId>| {
                    let (ytx, yrx) = y.map_or((0, 0), |y| {
                        let yi = &self.identities[y.0 as usize];
                        (yi.fixed_tx_rate, yi.rx_rate)
                    });
                    let after_h = hup.util_permille(
                        h_tx.saturating_sub(xi.fixed_tx_rate).saturating_add(ytx),
                        h_rx.saturating_sub(xi.rx_rate).saturating_add(yrx),
                    );
                    let after_c = cup.util_permille(
                        c_tx.saturating_sub(ytx).saturating_add(xi.fixed_tx_rate),
                        c_rx.saturating_sub(yrx).saturating_add(xi.rx_rate),
                    );
                    let gain = hu.saturating_sub(after_h.max(after_c));
                    if gain * 2 >= self.cfg.hysteresis_permille as u64
                        && best.is_none_or(|(g, bcu, ..)| gain > g || (gain == g && cu < bcu))
                    {
                        best = Some((gain, cu, c, x, y));
                    }
                };
                if hup.held.len() > 1 && cup.held.len() < cup.slots as usize {
                    consider(None);
                }
                for y in cup.held.iter().filter(|y| self.movable(y.0 as usize, now)) {
                    consider(Some(y));
                }
            }
        }
        if let Some((_, _, c, x, y)) = best {
            self.move_identity(now, x, c, &mut moves);
            if let Some(y) = y {
                self.move_identity(now, y, h, &mut moves);
            }
            self.counters.rebalance_moves += moves.len() as u64;
        }
        moves
    }

    // ------------------------------------------------------------------
    // Links
    // ------------------------------------------------------------------

    /// The link of `uplink` went down or came up. Down: its identities move
    /// to live uplinks with free filter slots, least loaded first (pinned
    /// identities and exclusive uplinks stay, \[0051\]). Up: identities left
    /// on dead uplinks come here, then its own identity comes home, or it
    /// takes one from an uplink holding several. Dwell time is ignored.
    pub fn link_changed(&mut self, now: u64, uplink: UplinkId, up: bool) -> Moves {
        let mut moves = Moves::NONE;
        let Some(u) = self.uplink_index(uplink) else {
            return moves;
        };
        if self.uplinks[u].up == up {
            return moves;
        }
        self.uplinks[u].up = up;
        self.recompute_bcast();
        if !up {
            self.uplinks[u].counters.link_downs += 1;
            for x in self.uplinks[u].held.iter() {
                let target = self.failover_target(x, u);
                match target {
                    Some(t) => self.move_identity(now, x, t, &mut moves),
                    None => self.counters.stranded += 1,
                }
            }
        } else if !self.uplinks[u].exclusive {
            // Identities stranded on dead uplinks.
            for i in 0..self.n_uplinks as usize {
                let h = self.identities[i].holder.0 as usize;
                let room = self.uplinks[u].held.len() < self.uplinks[u].slots as usize;
                if room
                    && !self.uplinks[h].up
                    && !self.uplinks[h].exclusive
                    && !self.identities[i].pinned
                {
                    self.move_identity(now, IdentityId(i as u8), u, &mut moves);
                }
            }
            // Its own identity, if another uplink holds it beside others.
            let home = u;
            let h = self.identities[home].holder.0 as usize;
            if h != u
                && self.uplinks[h].held.len() > 1
                && !self.uplinks[h].exclusive
                && !self.identities[home].pinned
                && self.uplinks[u].held.len() < self.uplinks[u].slots as usize
            {
                self.move_identity(now, IdentityId(home as u8), u, &mut moves);
            }
            // Otherwise any identity from the busiest uplink holding several.
            if self.uplinks[u].held.is_empty() {
                let donor = (0..self.n_uplinks as usize)
                    .filter(|&d| {
                        let du = &self.uplinks[d];
                        d != u && !du.exclusive && du.held.len() > 1
                    })
                    .max_by_key(|&d| self.fixed_util(d));
                if let Some(d) = donor {
                    let x = self.uplinks[d]
                        .held
                        .iter()
                        .find(|x| !self.identities[x.0 as usize].pinned);
                    if let Some(x) = x {
                        self.move_identity(now, x, u, &mut moves);
                    }
                }
            }
        }
        self.counters.failover_moves += moves.len() as u64;
        moves
    }

    fn failover_target(&self, x: IdentityId, from: usize) -> Option<usize> {
        if self.identities[x.0 as usize].pinned || self.uplinks[from].exclusive {
            return None;
        }
        (0..self.n_uplinks as usize)
            .filter(|&t| {
                let tu = &self.uplinks[t];
                t != from && tu.up && !tu.exclusive && tu.held.len() < tu.slots as usize
            })
            .min_by_key(|&t| (self.fixed_util(t), self.uplinks[t].held.len(), t))
    }

    fn recompute_bcast(&mut self) {
        self.bcast_uplink = (0..self.n_uplinks as usize)
            .find(|&u| self.uplinks[u].up)
            .map(|u| UplinkId(u as u8));
    }

    // ------------------------------------------------------------------
    // Queries and counters
    // ------------------------------------------------------------------

    pub fn uplink_count(&self) -> usize {
        self.n_uplinks as usize
    }

    /// Identities exist one per uplink.
    pub fn identity_count(&self) -> usize {
        self.n_uplinks as usize
    }

    /// The guests currently attached.
    pub fn guests(&self) -> impl Iterator<Item = GuestId> + '_ {
        self.guests
            .iter()
            .enumerate()
            .filter(|(_, g)| g.active)
            .map(|(i, _)| GuestId(i as u16))
    }

    pub fn guest_mac(&self, g: GuestId) -> Option<MacAddr> {
        self.guest_index(g)
            .map(|g| MacAddr::from_u64(self.guests[g].mac))
    }

    /// The guest that owns `ip` (configured, or a learned IPv6 address), if any.
    pub fn guest_of_ip(&self, ip: IpAddr) -> Option<GuestId> {
        match owner(self.ip_owner.get(ip_key(ip))?) {
            Owner::Own => None,
            Owner::Slot(g, _) | Owner::Learned(g, _) => Some(GuestId(g as u16)),
        }
    }

    /// Which uplink holds `id` (its MAC register / receive filter has it).
    pub fn holder(&self, id: IdentityId) -> Option<UplinkId> {
        (id.0 < self.n_uplinks).then(|| self.identities[id.0 as usize].holder)
    }

    pub fn identity_mac(&self, id: IdentityId) -> Option<MacAddr> {
        (id.0 < self.n_uplinks).then(|| MacAddr::from_u64(self.identities[id.0 as usize].mac))
    }

    pub fn is_pinned(&self, id: IdentityId) -> bool {
        id.0 < self.n_uplinks && self.identities[id.0 as usize].pinned
    }

    /// The identities `uplink` holds: program its receive filter to these.
    pub fn held(&self, uplink: UplinkId) -> IdentitySet {
        self.uplink_index(uplink)
            .map_or(IdentitySet::EMPTY, |u| self.uplinks[u].held)
    }

    /// The MAC the uplink's primary MAC register holds: its lowest
    /// identity, or its factory MAC if it holds none.
    pub fn uplink_mac(&self, uplink: UplinkId) -> Option<MacAddr> {
        self.uplink_index(uplink)
            .map(|u| MacAddr::from_u64(self.uplink_mac_u64(u)))
    }

    fn uplink_mac_u64(&self, u: usize) -> u64 {
        match self.uplinks[u].held.first() {
            Some(i) => self.identities[i.0 as usize].mac,
            None => self.uplinks[u].factory,
        }
    }

    /// The uplink that takes in broadcasts and multicast from the outside
    /// (the lowest-numbered live one): the switch floods them to every
    /// uplink, and the copies the others receive are dropped.
    pub fn broadcast_uplink(&self) -> Option<UplinkId> {
        self.bcast_uplink
    }

    pub fn is_link_up(&self, uplink: UplinkId) -> bool {
        self.uplink_index(uplink)
            .is_some_and(|u| self.uplinks[u].up)
    }

    pub fn is_exclusive(&self, uplink: UplinkId) -> bool {
        self.uplink_index(uplink)
            .is_some_and(|u| self.uplinks[u].exclusive)
    }

    pub fn load(&self, uplink: UplinkId) -> Option<Load> {
        let up = &self.uplinks[self.uplink_index(uplink)?];
        Some(Load {
            tx_bytes_per_s: up.tx_rate,
            rx_bytes_per_s: up.rx_rate,
            util_permille: up.util_permille(up.tx_rate, up.rx_rate),
        })
    }

    pub fn uplink_counters(&self, uplink: UplinkId) -> Option<&UplinkCounters> {
        Some(&self.uplinks[self.uplink_index(uplink)?].counters)
    }

    pub fn guest_counters(&self, guest: GuestId) -> Option<&GuestCounters> {
        Some(&self.guests[self.guest_index(guest)?].counters)
    }

    pub fn identity_counters(&self, id: IdentityId) -> Option<&IdentityCounters> {
        (id.0 < self.n_uplinks).then(|| &self.identities[id.0 as usize].counters)
    }

    pub fn counters(&self) -> &EngineCounters {
        &self.counters
    }

    /// Check the structural invariants: every identity is held by exactly
    /// one uplink, within its filter slots; the lookup tables agree with the
    /// guests. Tests and fuzzing call this after every step.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        let n = self.n_uplinks as usize;
        for i in 0..n {
            let h = self.identities[i].holder.0 as usize;
            if h >= n {
                return Err("identity held by a nonexistent uplink");
            }
            let holders = (0..n)
                .filter(|&u| self.uplinks[u].held.contains(IdentityId(i as u8)))
                .count();
            if holders != 1 || !self.uplinks[h].held.contains(IdentityId(i as u8)) {
                return Err("identity not held by exactly one uplink");
            }
            if self.identities[i].counters.holder != h as u64 {
                return Err("identity holder gauge out of step");
            }
        }
        for u in 0..n {
            let held = self.uplinks[u].held;
            if held.0 >> n != 0 {
                return Err("uplink holds a nonexistent identity");
            }
            if self.uplinks[u].counters.identities_held != held.len() as u64 {
                return Err("identities-held gauge out of step");
            }
            if held.len() > self.uplinks[u].slots as usize {
                return Err("uplink holds more identities than filter slots");
            }
        }
        let mut ips = 0;
        let mut guests = 0;
        // The broadcast reach each guest's bindings call for: an inactive
        // guest reaches nothing (`guest_reach`), so only the active ones
        // add to it, and the whole sets are compared once at the end.
        let (mut reach_v4, mut reach_v6) = (GuestSet::EMPTY, GuestSet::EMPTY);
        // The active slots as a mask first, without a branch per slot (the
        // fuzzer's instrumentation traces every comparison), then those.
        let active = (self.guests.iter().enumerate())
            .fold(0u128, |m, (gi, g)| m | u128::from(g.active) << gi);
        let mut rest = active;
        while rest != 0 {
            let gi = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            let g = &self.guests[gi];
            guests += 1;
            let (v4, v6) = self.guest_reach(gi);
            if v4 {
                reach_v4.insert(GuestId(gi as u16));
            }
            if v6 {
                reach_v6.insert(GuestId(gi as u16));
            }
            if self.macs.get(g.mac) != Some(gi as u16) {
                return Err("guest MAC table out of step");
            }
            for s in 0..g.n_ips as usize {
                if g.bindings[s].0 >> n != 0 {
                    return Err("binding names a nonexistent identity");
                }
                if g.plen[s] != HOST {
                    continue;
                }
                ips += 1;
                if self.ip_owner.get(g.ips[s]) != Some((gi * MAX_IPS_PER_GUEST + s) as u16) {
                    return Err("IP table out of step");
                }
            }
            let mut learned = 0;
            // (The used entries as a mask first, as for the slots above.)
            let mut used =
                (g.learned.iter().enumerate()).fold(0u32, |m, (k, &a)| m | u32::from(a != 0) << k);
            while used != 0 {
                let k = used.trailing_zeros() as usize;
                used &= used - 1;
                let a = g.learned[k];
                learned += 1;
                let v = LEARNED_TAG | (gi * MAX_LEARNED_PER_GUEST + k) as u16;
                if self.ip_owner.get(a) != Some(v) {
                    return Err("learned address table out of step");
                }
                if g.governing(a) != Some(g.learned_from[k]) {
                    return Err("learned address outside the guest's prefixes");
                }
            }
            if learned != g.n_learned as usize
                || learned > (self.cfg.learn_max as usize).min(MAX_LEARNED_PER_GUEST)
            {
                return Err("learned address count out of step");
            }
            ips += learned;
        }
        for (i, id) in self.identities[..n].iter().enumerate() {
            if self.macs.get(id.mac) != Some(IDENTITY_TAG | i as u16) {
                return Err("identity MAC table out of step");
            }
        }
        if self.macs.len() != guests + n || self.ip_owner.len() != ips + self.n_own_ips as usize {
            return Err("lookup tables hold stale entries");
        }
        if (reach_v4, reach_v6) != (self.reach_v4, self.reach_v6) {
            return Err("broadcast reach out of step with the bindings");
        }
        Ok(())
    }

    // ------------------------------------------------------------------

    /// Whether the per-uplink, per-identity and per-guest state and the
    /// counters of `self` and `other` are equal: the test kit's check that
    /// the fast and general paths leave the engine alike.
    #[doc(hidden)]
    pub fn same_frame_state(&self, other: &Engine) -> bool {
        self.uplinks == other.uplinks
            && self.identities == other.identities
            && self
                .guests
                .iter()
                .zip(&other.guests)
                .fold(0, |d, (a, b)| d | a.diff(b))
                == 0
            && self.counters == other.counters
    }

    #[inline(always)]
    fn guest_index(&self, g: GuestId) -> Option<usize> {
        let i = g.0 as usize;
        (i < MAX_GUESTS && self.guests[i].active).then_some(i)
    }

    #[inline(always)]
    fn uplink_index(&self, u: UplinkId) -> Option<usize> {
        (u.0 < self.n_uplinks).then_some(u.0 as usize)
    }

    #[inline(always)]
    fn identity_by_mac(&self, mac: u64) -> Option<usize> {
        match self.macs.get(mac) {
            Some(v) if v & IDENTITY_TAG != 0 => Some((v & !IDENTITY_TAG) as usize),
            _ => None,
        }
    }

    fn identity_mut(&mut self, id: IdentityId) -> Result<&mut Identity, Error> {
        if id.0 >= self.n_uplinks {
            return Err(Error::UnknownIdentity);
        }
        Ok(&mut self.identities[id.0 as usize])
    }

    /// The guest and slot of a configured address.
    fn guest_ip(&self, ip: IpAddr) -> Result<(usize, usize), Error> {
        match self.ip_owner.get(ip_key(ip)).map(owner) {
            Some(Owner::Slot(g, s)) => Ok((g, s)),
            _ => Err(Error::UnknownIp),
        }
    }
}

/// Operator moves (the console's `swap` and `rebalance`).
impl Engine {
    /// Swaps the uplinks of identities `a` and `b` (\[0034\] by hand). Pinned
    /// identities and exclusive uplinks refuse, as for automatic moves; the
    /// dwell time does not apply (the operator asked).
    pub fn swap(&mut self, now: u64, a: IdentityId, b: IdentityId) -> Result<Moves, Error> {
        let n = self.n_uplinks as usize;
        let (ia, ib) = (a.0 as usize, b.0 as usize);
        if ia >= n || ib >= n {
            return Err(Error::UnknownIdentity);
        }
        let (ha, hb) = (
            self.identities[ia].holder.0 as usize,
            self.identities[ib].holder.0 as usize,
        );
        if self.identities[ia].pinned || self.identities[ib].pinned {
            return Err(Error::Pinned);
        }
        if self.uplinks[ha].exclusive || self.uplinks[hb].exclusive {
            return Err(Error::Exclusive);
        }
        let mut moves = Moves::NONE;
        if ha != hb {
            self.move_identity(now, a, hb, &mut moves);
            self.move_identity(now, b, ha, &mut moves);
        }
        Ok(moves)
    }

    /// Runs the rebalance check of [`Engine::tick`] now, whatever the
    /// interval; hysteresis and dwell still apply.
    pub fn rebalance_now(&mut self, now: u64) -> Moves {
        self.last_rebalance = now;
        self.rebalance(now)
    }
}

/// An engine IP key of an IPv4 address (`::ffff:a.b.c.d`, see `ip_key`).
#[inline(always)]
fn is_v4_key(k: u128) -> bool {
    k >> 32 == 0xffff
}

/// fe80::/10 (RFC 4291 2.5.6).
#[inline(always)]
fn is_link_local(a: u128) -> bool {
    a >> 118 == 0x3fa
}

/// An IPv6 address a host may send from as its own: not `::`, `::1`,
/// multicast (ff00::/8) or IPv4-mapped (the engine's IPv4 keys).
#[inline(always)]
fn is_unicast_v6(a: u128) -> bool {
    a > 1 && a >> 120 != 0xff && !is_v4_key(a)
}

fn valid_ip(ip: IpAddr) -> Result<u128, Error> {
    let bad = match ip {
        IpAddr::V4(v4) => v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
    };
    if bad {
        Err(Error::InvalidIp)
    } else {
        Ok(ip_key(ip))
    }
}

#[cfg(test)]
mod guest_diff_tests {
    use super::*;

    /// `Guest::diff` (the fuzz harness's fast `!=`) sees a change in any
    /// one field, as the derived `!=` does.
    #[test]
    fn guest_diff_sees_every_field() {
        let base = Guest::EMPTY;
        let edits: &[fn(&mut Guest)] = &[
            |g| g.active = true,
            |g| g.mac = 1 << 40,
            |g| g.n_ips = 3,
            |g| g.ips[3] = 1 << 100,
            |g| g.plen[2] = 64,
            |g| g.bindings[1] = IdentitySet(1 << 15),
            |g| g.auto[3] = true,
            |g| g.learned[15] = 1 << 127,
            |g| g.learned_from[15] = ALL_V6,
            |g| g.learned_seen[7] = u64::MAX,
            |g| g.n_learned = 1,
            |g| g.bcast_window = 1 << 63,
            |g| g.bcast_sent = 1 << 31,
            |g| g.counters.tx_frames = 1,
            |g| g.counters.tx_bytes = 1,
            |g| g.counters.rx_frames = 1,
            |g| g.counters.rx_bytes = 1,
            |g| g.counters.tx_local = 1,
            |g| g.counters.tx_drops.0[DropReason::COUNT - 1] = 1,
            |g| g.counters.rx_drops.0[0] = 1 << 63,
            |g| g.counters.tx_frames_per_uplink[MAX_UPLINKS - 1] = 1,
        ];
        assert_eq!(base.diff(&base), 0);
        for (i, edit) in edits.iter().enumerate() {
            let mut g = base;
            edit(&mut g);
            assert!(g != base, "edit {i} changes nothing");
            assert_ne!(g.diff(&base), 0, "edit {i} not seen");
            assert_ne!(base.diff(&g), 0, "edit {i} not seen the other way");
        }
    }
}
