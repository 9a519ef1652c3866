//! Small value types shared by the whole engine: addresses, ids, identity sets, config.

use core::net::{IpAddr, Ipv6Addr};

/// Most uplinks (and so identities) one engine manages. e1000 has 16
/// receive-address slots (82540EM datasheet 13.4.26, RAL/RAH 0..15), which
/// is also why an identity set fits a `u16`.
pub const MAX_UPLINKS: usize = 16;
/// Identities are created one per uplink (identity *k* starts as uplink *k*'s
/// factory MAC, DESIGN.md "The aggregation model").
pub const MAX_IDENTITIES: usize = MAX_UPLINKS;
/// Most guests (vifs or guest ports) one engine serves.
pub const MAX_GUESTS: usize = 128;
/// Most IP entries (IPv4 or IPv6 addresses, IPv6 prefixes) one guest may
/// have configured, each with its own binding.
pub const MAX_IPS_PER_GUEST: usize = 4;
/// Most IPv6 addresses one guest may have learned (link-local ones, and
/// those inside its prefixes: SLAAC and privacy addresses); the engine's
/// tables are sized for this, `Config::learn_max` sets the limit in use.
pub const MAX_LEARNED_PER_GUEST: usize = 16;
/// Most IP addresses of the domain's own stack.
pub const MAX_OWN_IPS: usize = 4;

/// An Ethernet MAC address: the one type every aggdom crate speaks.
pub use nic::MacAddr;

/// IPv4 and IPv6 addresses in one comparable key: IPv4 as `::ffff:a.b.c.d`
/// (RFC 4291 2.5.5.2), so one table holds both families.
pub(crate) const fn ip_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => (0xffff_u128 << 32) | (u32::from_be_bytes(v4.octets()) as u128),
        IpAddr::V6(v6) => u128::from_be_bytes(v6.octets()),
    }
}

/// An IP address with a prefix length: a single address (`/32`, `/128`:
/// [`IpNet::host`]) or a network whose bits past the length are zero.
/// Guests are configured with addresses and IPv6 prefixes; a prefix lets
/// the guest use any address inside it (SLAAC, privacy addresses).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct IpNet {
    addr: IpAddr,
    len: u8,
}

impl IpNet {
    /// The single address `addr`.
    pub const fn host(addr: IpAddr) -> IpNet {
        let len = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        IpNet { addr, len }
    }

    /// `None` if `len` is longer than the family allows or `addr` has bits
    /// set past it.
    pub fn new(addr: IpAddr, len: u8) -> Option<IpNet> {
        let net = IpNet { addr, len };
        (len <= net.max_len() && net.network() == addr).then_some(net)
    }

    pub const fn addr(&self) -> IpAddr {
        self.addr
    }

    pub const fn prefix_len(&self) -> u8 {
        self.len
    }

    /// A single address, not a network.
    pub const fn is_host(&self) -> bool {
        self.len == self.max_len()
    }

    const fn max_len(&self) -> u8 {
        match self.addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        }
    }

    /// `addr` with every bit past `len` cleared.
    fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let m = u32::MAX
                    .checked_shl(32 - self.len.min(32) as u32)
                    .unwrap_or(0);
                IpAddr::V4((u32::from(a) & m).into())
            }
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & v6_mask(self.len))),
        }
    }

    /// Whether `ip` is inside (a host net contains only its address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V6(n), IpAddr::V6(a)) => net_contains(u128::from(n), self.len, u128::from(a)),
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let m = u32::MAX
                    .checked_shl(32 - self.len.min(32) as u32)
                    .unwrap_or(0);
                u32::from(a) & m == u32::from(n)
            }
            _ => false,
        }
    }
}

impl From<IpAddr> for IpNet {
    fn from(addr: IpAddr) -> IpNet {
        IpNet::host(addr)
    }
}

impl core::fmt::Display for IpNet {
    /// `a.b.c.d` or `x::y` for a single address, `addr/len` for a network.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.is_host() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.len)
        }
    }
}

/// Why text is not an [`IpNet`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IpNetError {
    /// Not an IPv4 or IPv6 address.
    Address,
    /// The `/len` is not a number, or longer than the family allows.
    Length,
    /// Bits are set past the length (`2001:db8::1/64`): name the network.
    HostBits,
}

impl core::str::FromStr for IpNet {
    type Err = IpNetError;

    /// `addr` or `addr/len` (IPv4 or IPv6); IPv6 may be in brackets.
    fn from_str(s: &str) -> Result<IpNet, IpNetError> {
        let (a, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let a = a
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(a);
        let addr: IpAddr = a.parse().map_err(|_| IpNetError::Address)?;
        let Some(len) = len else {
            return Ok(IpNet::host(addr));
        };
        let len: u8 = len.parse().map_err(|_| IpNetError::Length)?;
        if len > IpNet::host(addr).len {
            return Err(IpNetError::Length);
        }
        IpNet::new(addr, len).ok_or(IpNetError::HostBits)
    }
}

/// The top `len` bits of an IPv6 address.
pub(crate) const fn v6_mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else if len >= 128 {
        u128::MAX
    } else {
        u128::MAX << (128 - len as u32)
    }
}

/// Whether IPv6 `addr` is inside `net/len` (as 128-bit integers).
#[inline(always)]
pub(crate) const fn net_contains(net: u128, len: u8, addr: u128) -> bool {
    addr & v6_mask(len) == net
}

/// Index of an uplink (a NIC the domain owns), in the order it was added.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct UplinkId(pub u8);

/// Index of an identity (a MAC the outside associates with guests). Identity
/// *k* is created with uplink *k* and starts on it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct IdentityId(pub u8);

/// Index of a guest (a Xen vif or a QEMU guest port).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct GuestId(pub u16);

/// A set of identities: the binding of one guest IP (\[0028\]–\[0030\]), or the
/// identities one uplink holds. Empty means "denied" for a binding (\[0029\]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct IdentitySet(pub u16);

impl IdentitySet {
    /// No identity: as a binding, the IP may not reach the network.
    pub const EMPTY: IdentitySet = IdentitySet(0);

    /// The set holding exactly `id`.
    pub const fn one(id: IdentityId) -> IdentitySet {
        IdentitySet(1 << (id.0 as u32 % MAX_IDENTITIES as u32))
    }

    /// The set of the given identities (ids past [`MAX_IDENTITIES`] are ignored).
    pub fn of(ids: &[IdentityId]) -> IdentitySet {
        let mut s = IdentitySet::EMPTY;
        for &id in ids {
            s.insert(id);
        }
        s
    }

    pub const fn contains(self, id: IdentityId) -> bool {
        (id.0 as usize) < MAX_IDENTITIES && self.0 & (1 << id.0) != 0
    }

    pub fn insert(&mut self, id: IdentityId) {
        if (id.0 as usize) < MAX_IDENTITIES {
            self.0 |= 1 << id.0;
        }
    }

    pub fn remove(&mut self, id: IdentityId) {
        if (id.0 as usize) < MAX_IDENTITIES {
            self.0 &= !(1 << id.0);
        }
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The lowest identity in the set.
    pub const fn first(self) -> Option<IdentityId> {
        if self.0 == 0 {
            None
        } else {
            Some(IdentityId(self.0.trailing_zeros() as u8))
        }
    }

    /// The identities in ascending order.
    pub fn iter(self) -> impl Iterator<Item = IdentityId> {
        let mut bits = self.0;
        core::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let i = bits.trailing_zeros();
            bits &= bits - 1;
            Some(IdentityId(i as u8))
        })
    }
}

impl core::fmt::Debug for IdentitySet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_set().entries(self.iter().map(|i| i.0)).finish()
    }
}

/// A set of guests: those a flooded frame reaches ([`crate::RxDecision::Flood`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GuestSet(pub u128);

const _: () = assert!(MAX_GUESTS <= 128, "a GuestSet is a u128");

impl GuestSet {
    pub const EMPTY: GuestSet = GuestSet(0);
    /// Every guest there can be.
    pub const ALL: GuestSet = GuestSet(u128::MAX);

    pub const fn contains(self, g: GuestId) -> bool {
        (g.0 as usize) < MAX_GUESTS && self.0 & (1 << g.0) != 0
    }

    pub fn insert(&mut self, g: GuestId) {
        if (g.0 as usize) < MAX_GUESTS {
            self.0 |= 1 << g.0;
        }
    }

    pub fn remove(&mut self, g: GuestId) {
        if (g.0 as usize) < MAX_GUESTS {
            self.0 &= !(1 << g.0);
        }
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The guests in ascending order.
    pub fn iter(self) -> impl Iterator<Item = GuestId> {
        let mut bits = self.0;
        core::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let i = bits.trailing_zeros();
            bits &= bits - 1;
            Some(GuestId(i as u16))
        })
    }
}

impl core::fmt::Debug for GuestSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_set().entries(self.iter().map(|g| g.0)).finish()
    }
}

/// How a guest frame is steered onto the chosen uplink (DESIGN.md, "Two
/// MAC-steering modes").
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// The outside reaches a guest IP at the identity MAC of its binding.
    /// Transmit rewrites the source MAC (and ARP sender / NDP link-layer
    /// option) to the identity the chosen uplink holds; receive maps identity
    /// + destination IP back to the guest. MAC registers change only when
    ///   identities move; uplinks filter exactly.
    Identity,
    /// The claim word for word (steps 8–10): the frame keeps the guest's
    /// source MAC; the driver writes the uplink's MAC register to it, sends,
    /// and restores. Uplinks must accept guest MACs on receive.
    Literal,
}

impl Mode {
    /// The mode as `mode=` spells it (and `mode`, `stats` print it).
    pub const fn name(self) -> &'static str {
        match self {
            Mode::Identity => "identity",
            Mode::Literal => "literal",
        }
    }
}

/// Tunables of the engine. Times are nanoseconds of the caller's clock.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Config {
    pub mode: Mode,
    /// Time constant of the per-uplink and per-identity rate EWMA.
    pub ewma_tau_ns: u64,
    /// The nominal time between [`crate::Engine::tick`] calls; per-frame load
    /// compares "expected bytes this interval" = rate × interval + bytes
    /// already sent in it.
    pub tick_interval_ns: u64,
    /// How often a tick may consider a rebalancing move (\[0034\]).
    pub rebalance_interval_ns: u64,
    /// An uplink counts as overloaded at this utilisation (‰ of capacity,
    /// the larger of its transmit and receive directions).
    pub overload_permille: u32,
    /// Hysteresis: move only if hottest minus coolest uplink is at least
    /// this many ‰ apart, and the move lowers the hotter of the pair by at
    /// least half of it.
    pub hysteresis_permille: u32,
    /// An identity that moved stays put at least this long (except when its
    /// uplink's link goes down).
    pub min_dwell_ns: u64,
    /// IPv6 addresses one guest may have learned (link-local and in-prefix
    /// ones), at most [`MAX_LEARNED_PER_GUEST`].
    pub learn_max: u8,
    /// A learned address the guest has sent nothing from this long may be
    /// forgotten to make room for a new one.
    pub learn_idle_ns: u64,
    /// Broadcast and multicast frames one guest may send per second (0:
    /// no limit); more in the same second are dropped as
    /// [`crate::DropReason::BroadcastLimit`]. A guest flooding broadcasts
    /// costs every other guest a copy and every uplink a send.
    pub bcast_limit_pps: u32,
}

impl Config {
    /// Identity mode, 10 ms ticks, rebalance at most every second, 80 %
    /// overload mark, 15 % hysteresis, 30 s dwell; 8 learned IPv6
    /// addresses per guest, forgettable after 10 minutes unused; no limit
    /// on a guest's broadcasts.
    pub const DEFAULT: Config = Config {
        mode: Mode::Identity,
        ewma_tau_ns: 100_000_000,
        tick_interval_ns: 10_000_000,
        rebalance_interval_ns: 1_000_000_000,
        overload_permille: 800,
        hysteresis_permille: 150,
        min_dwell_ns: 30_000_000_000,
        learn_max: 8,
        learn_idle_ns: 600_000_000_000,
        bcast_limit_pps: 0,
    };

    /// [`Config::DEFAULT`] in the given mode.
    pub const fn with_mode(mode: Mode) -> Config {
        let mut c = Config::DEFAULT;
        c.mode = mode;
        c
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::DEFAULT
    }
}

/// Static facts about one uplink, given when it is added.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct UplinkConfig {
    /// The NIC's factory MAC; becomes the identity created with this uplink.
    pub mac: MacAddr,
    /// Line rate in Mbit/s (0 = unknown, taken as 10 000).
    pub capacity_mbps: u32,
    /// Receive-filter slots: how many identities the NIC can hold at once
    /// (e1000: 16; virtio-net with a MAC table: its size; at least 1).
    pub filter_slots: u8,
    /// Link state at start.
    pub link_up: bool,
}

impl UplinkConfig {
    /// A 10 Gbit/s uplink with 16 filter slots and link up.
    pub const fn new(mac: MacAddr) -> UplinkConfig {
        UplinkConfig {
            mac,
            capacity_mbps: 10_000,
            filter_slots: 16,
            link_up: true,
        }
    }
}
