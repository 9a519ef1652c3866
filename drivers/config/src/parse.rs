//! From `key=value` words to a [`Plan`], one word at a time, then checks
//! across words. The first bad word stops everything.
use crate::plan::{Binding, GuestPlan, NicAddress, NicRef, OwnStack, Plan};
use crate::prefix::AllowList;
use aggregation::{IpNet, Mode};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use alloc::{format, vec};
use core::fmt;
use core::net::IpAddr;
use nic::MacAddr;

/// The configuration item that is wrong, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The word (or key) at fault, as given.
    pub item: String,
    pub why: String,
}

impl ConfigError {
    pub fn new(item: &str, why: String) -> Self {
        Self {
            item: item.to_string(),
            why,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad config item '{}': {}", self.item, self.why)
    }
}

/// The most guests / IPs a configuration may name (the engine's tables).
const MAX_GUESTS: usize = aggregation::MAX_GUESTS;
const MAX_IPS: usize = aggregation::MAX_IPS_PER_GUEST;

/// Parses a whole command line.
pub fn parse(line: &str) -> Result<Plan, ConfigError> {
    let mut plan = Plan {
        engine: aggregation::Config::DEFAULT,
        uplinks: Vec::new(),
        guests: Vec::new(),
        bindings: Vec::new(),
        pinned: Vec::new(),
        own: None,
        exclusive: Vec::new(),
        capacity: Vec::new(),
        metrics_allow: AllowList::open(),
    };
    let mut own_ips: Vec<(IpAddr, u8)> = Vec::new();
    let mut gateways: Vec<IpAddr> = Vec::new();
    let mut own_identity = 0;
    let mut seen_once: Vec<&str> = Vec::new();
    for word in line.split_ascii_whitespace() {
        let bad = |why: String| ConfigError::new(word, why);
        let (key, value) = word
            .split_once('=')
            .ok_or_else(|| bad("expected key=value".into()))?;
        if !matches!(key, "guest" | "bind") {
            if seen_once.contains(&key) {
                return Err(bad(format!("'{key}' given twice")));
            }
            seen_once.push(key);
        }
        match key {
            "mode" => {
                plan.engine.mode = match value {
                    "identity" => Mode::Identity,
                    "literal" => Mode::Literal,
                    _ => return Err(bad("mode is 'identity' or 'literal'".into())),
                }
            }
            "uplinks" => plan.uplinks = list(value, parse_nic_ref).map_err(bad)?,
            "guest" => {
                let g = parse_guest(value).map_err(bad)?;
                if plan.guests.len() == MAX_GUESTS {
                    return Err(bad(format!("at most {MAX_GUESTS} guests")));
                }
                if let Some(other) = plan.guests.iter().find(|o| o.mac == g.mac) {
                    return Err(bad(format!(
                        "MAC {} already belongs to the guest on {}",
                        g.mac, other.port
                    )));
                }
                // Addresses are one guest's; a prefix (a LAN's /64) may be
                // shared, its addresses going to whoever claims them.
                for ip in g.ips.iter().filter(|ip| ip.is_host()) {
                    if plan.guests.iter().any(|o| o.ips.contains(ip)) {
                        return Err(bad(format!("IP {ip} already belongs to another guest")));
                    }
                }
                plan.guests.push(g);
            }
            "bind" => {
                let (ip, b) = parse_bind(value).map_err(bad)?;
                if plan.bindings.iter().any(|(other, _)| *other == ip) {
                    return Err(bad(format!("{ip} is bound twice")));
                }
                plan.bindings.push((ip, b));
            }
            "pin" => plan.pinned = list(value, parse_index).map_err(bad)?,
            "exclusive" => plan.exclusive = list(value, parse_index).map_err(bad)?,
            "capacity" => plan.capacity = list(value, |s| parse_int(s, 1_000_000)).map_err(bad)?,
            "ip" => own_ips = parse_own_ips(value).map_err(bad)?,
            "gw" => gateways = parse_gateways(value).map_err(bad)?,
            "ip6_learn" => {
                plan.engine.learn_max =
                    parse_int(value, aggregation::MAX_LEARNED_PER_GUEST as u64).map_err(bad)?
            }
            "bcast_pps" => {
                plan.engine.bcast_limit_pps = parse_int(value, 10_000_000).map_err(bad)?
            }
            "own" => own_identity = parse_index(value).map_err(bad)?,
            "metrics_allow" => plan.metrics_allow = AllowList::parse(value).map_err(bad)?,
            "rebalance_ms" => {
                plan.engine.rebalance_interval_ns =
                    parse_int::<u64>(value, 3_600_000).map_err(bad)? * 1_000_000;
            }
            "overload_pct" => {
                plan.engine.overload_permille = parse_pct(value).map_err(bad)? * 10;
            }
            "hysteresis_pct" => {
                plan.engine.hysteresis_permille = parse_pct(value).map_err(bad)? * 10;
            }
            "dwell_s" => {
                plan.engine.min_dwell_ns =
                    parse_int::<u64>(value, 86_400).map_err(bad)? * 1_000_000_000
            }
            _ => return Err(bad(format!("unknown key '{key}'"))),
        }
    }
    for (ip, _) in &plan.bindings {
        if !plan.guests.iter().any(|g| g.ips.contains(ip)) {
            return Err(ConfigError::new(
                &format!("bind={ip}"),
                format!("no guest has IP {ip}"),
            ));
        }
    }
    for (ip, _) in &own_ips {
        let host = IpNet::host(*ip);
        if plan.guests.iter().any(|g| g.ips.contains(&host)) {
            return Err(ConfigError::new("ip", format!("{ip} is also a guest's IP")));
        }
    }
    for gw in &gateways {
        if !own_ips.iter().any(|(ip, _)| ip.is_ipv4() == gw.is_ipv4()) {
            return Err(ConfigError::new(
                "gw",
                format!("gateway {gw} needs an own address of its family in ip="),
            ));
        }
    }
    if !own_ips.is_empty() {
        plan.own = Some(OwnStack {
            ips: own_ips,
            gateways,
            identity: own_identity,
        });
    }
    if plan.own.is_none() && !plan.metrics_allow.is_empty() {
        return Err(ConfigError::new(
            "metrics_allow",
            "there is no /metrics without ip=<addr>/<prefix>".into(),
        ));
    }
    Ok(plan)
}

fn list<T>(value: &str, item: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    value.split(',').map(&item).collect()
}

fn parse_int<T: TryFrom<u64>>(s: &str, max: u64) -> Result<T, String> {
    let n: u64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if n > max {
        return Err(format!("{n} is more than {max}"));
    }
    T::try_from(n).map_err(|_| format!("{n} is too large"))
}

fn parse_index(s: &str) -> Result<usize, String> {
    parse_int(s, 255)
}

fn parse_pct(s: &str) -> Result<u32, String> {
    parse_int(s, 100)
}

fn parse_ip(s: &str) -> Result<IpAddr, String> {
    let bare = s
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(s);
    bare.parse()
        .map_err(|_| format!("'{s}' is not an IPv4 or IPv6 address"))
}

/// An address a host may own: not unspecified, multicast or broadcast.
fn check_host(ip: IpAddr) -> Result<IpAddr, String> {
    let bad = match ip {
        IpAddr::V4(a) => a.is_unspecified() || a.is_broadcast() || a.is_multicast(),
        IpAddr::V6(a) => a.is_unspecified() || a.is_multicast() || a.is_loopback(),
    };
    if bad {
        return Err(format!("{ip} cannot be a host address"));
    }
    Ok(ip)
}

/// `<addr>/<prefix>`: an address and the length of its subnet.
fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let (ip, prefix) = s
        .split_once('/')
        .ok_or_else(|| format!("'{s}' needs a /prefix"))?;
    let ip = check_host(parse_ip(ip)?)?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = parse_int(prefix, max)?;
    Ok((ip, prefix))
}

/// `ip=`: one or two `<addr>/<prefix>`, at most one per family.
fn parse_own_ips(value: &str) -> Result<Vec<(IpAddr, u8)>, String> {
    let ips = list(value, parse_cidr)?;
    if ips.len() > 2 || (ips.len() == 2 && ips[0].0.is_ipv4() == ips[1].0.is_ipv4()) {
        return Err("at most one IPv4 and one IPv6 address".into());
    }
    Ok(ips)
}

/// `gw=`: one or two addresses, at most one per family.
fn parse_gateways(value: &str) -> Result<Vec<IpAddr>, String> {
    let gws = list(value, |s| check_host(parse_ip(s)?))?;
    if gws.len() > 2 || (gws.len() == 2 && gws[0].is_ipv4() == gws[1].is_ipv4()) {
        return Err("at most one IPv4 and one IPv6 gateway".into());
    }
    Ok(gws)
}

/// A guest entry: an IPv4 or IPv6 address, or an IPv6 prefix (`/1` to
/// `/127`, host bits clear).
fn parse_guest_ip(s: &str) -> Result<IpNet, String> {
    let net: IpNet = s.parse().map_err(|e| match e {
        aggregation::IpNetError::Address => {
            format!("'{s}' is not an IPv4 or IPv6 address or IPv6 prefix")
        }
        aggregation::IpNetError::Length => format!("the length in '{s}' is not valid"),
        aggregation::IpNetError::HostBits => {
            format!("'{s}' has host bits set past its prefix length")
        }
    })?;
    if net.is_host() {
        check_host(net.addr())?;
        return Ok(net);
    }
    match net.addr() {
        IpAddr::V4(_) => Err(format!(
            "'{s}': IPv4 guests name addresses (prefixes are for IPv6)"
        )),
        IpAddr::V6(_) if net.prefix_len() == 0 => {
            Err(format!("'{s}' would let the guest use any address"))
        }
        IpAddr::V6(_) => Ok(net),
    }
}

fn parse_mac(s: &str) -> Result<MacAddr, String> {
    let mac: MacAddr = s
        .parse()
        .map_err(|_| format!("'{s}' is not a MAC (aa:bb:cc:dd:ee:ff)"))?;
    if !mac.is_valid_unicast() {
        return Err(format!("{s} is not a unicast MAC"));
    }
    Ok(mac)
}

/// `3` or `00:04.0`.
fn parse_nic_ref(s: &str) -> Result<NicRef, String> {
    if !s.contains(':') {
        return parse_index(s).map(NicRef::Index);
    }
    let bad = || format!("'{s}' is not a NIC index or PCI address (bb:dd.f)");
    let (bus, rest) = s.split_once(':').ok_or_else(bad)?;
    let (device, function) = rest.split_once('.').ok_or_else(bad)?;
    let hex = |x: &str, max: u8| {
        u8::from_str_radix(x, 16)
            .ok()
            .filter(|v| *v <= max)
            .ok_or_else(bad)
    };
    Ok(NicRef::Pci(NicAddress {
        bus: hex(bus, 0xff)?,
        device: hex(device, 0x1f)?,
        function: hex(function, 7)?,
    }))
}

/// `<nic>,<mac>,<ip>[+<ip>...]`
fn parse_guest(value: &str) -> Result<GuestPlan, String> {
    let mut parts = value.split(',');
    let (Some(port), Some(mac), Some(ips), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("expected guest=<nic>,<mac>,<ip>[+<ip>...]".into());
    };
    let ips: Vec<IpNet> = ips
        .split('+')
        .map(parse_guest_ip)
        .collect::<Result<_, _>>()?;
    if ips.len() > MAX_IPS {
        return Err(format!("at most {MAX_IPS} IPs per guest"));
    }
    for (i, ip) in ips.iter().enumerate() {
        if ips[..i].contains(ip) {
            return Err(format!("{ip} listed twice"));
        }
    }
    Ok(GuestPlan {
        port: parse_nic_ref(port)?,
        mac: parse_mac(mac)?,
        ips,
    })
}

/// The value of one `bind=` word: `<ip>:<id>[+<id>...]`, `<ip>:none`,
/// `<ip>:auto`, where `<ip>` is an address or IPv6 prefix (IPv6 may be
/// bracketed, `[fd00::5]:0`; the identities are after the last colon).
/// Public for words checked on their own, before the guest owning the IP
/// exists (a Xen vif's `bind=` words).
pub fn parse_bind(value: &str) -> Result<(IpNet, Binding), String> {
    let (ip, ids) = value
        .rsplit_once(':')
        .ok_or("expected bind=<ip>:<ids>|none|auto")?;
    let ip = parse_guest_ip(ip)?;
    let binding = match ids {
        "none" => Binding::None,
        "auto" => Binding::Auto,
        _ => {
            let mut list: Vec<usize> = vec![];
            for id in ids.split('+') {
                let id = parse_index(id)?;
                if list.contains(&id) {
                    return Err(format!("identity {id} listed twice"));
                }
                list.push(id);
            }
            Binding::Identities(list)
        }
    };
    Ok((ip, binding))
}
