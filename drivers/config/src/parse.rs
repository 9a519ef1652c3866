//! From `key=value` words to a [`Plan`], one word at a time, then checks
//! across words. The first bad word stops everything.
use crate::plan::{Binding, GuestPlan, NicAddress, NicRef, OwnStack, Plan};
use crate::prefix::AllowList;
use aggregation::Mode;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use alloc::{format, vec};
use core::fmt;
use core::net::Ipv4Addr;
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
    let mut own_ip: Option<(Ipv4Addr, u8)> = None;
    let mut gateway = None;
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
                for ip in &g.ips {
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
            "ip" => own_ip = Some(parse_cidr(value).map_err(bad)?),
            "gw" => gateway = Some(parse_ip(value).map_err(bad)?),
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
    match (own_ip, gateway) {
        (Some((ip, prefix)), gateway) => {
            if plan.guests.iter().any(|g| g.ips.contains(&ip)) {
                return Err(ConfigError::new("ip", format!("{ip} is also a guest's IP")));
            }
            plan.own = Some(OwnStack {
                ip,
                prefix,
                gateway,
                identity: own_identity,
            });
        }
        (None, Some(_)) => {
            return Err(ConfigError::new(
                "gw",
                "a gateway needs ip=<a.b.c.d>/<prefix>".into(),
            ))
        }
        (None, None) => {}
    }
    if plan.own.is_none() && !plan.metrics_allow.is_empty() {
        return Err(ConfigError::new(
            "metrics_allow",
            "there is no /metrics without ip=<a.b.c.d>/<prefix>".into(),
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

fn parse_ip(s: &str) -> Result<Ipv4Addr, String> {
    s.parse()
        .map_err(|_| format!("'{s}' is not an IPv4 address"))
}

fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let (ip, prefix) = s
        .split_once('/')
        .ok_or_else(|| format!("'{s}' needs a /prefix"))?;
    let ip = parse_ip(ip)?;
    let prefix: u8 = parse_int(prefix, 32)?;
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
        return Err(format!("{ip} cannot be a host address"));
    }
    Ok((ip, prefix))
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
    let ips: Vec<Ipv4Addr> = ips.split('+').map(parse_ip).collect::<Result<_, _>>()?;
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
/// `<ip>:auto`. Public for words checked on their own, before the guest
/// owning the IP exists (a Xen vif's `bind=` words).
pub fn parse_bind(value: &str) -> Result<(Ipv4Addr, Binding), String> {
    let (ip, ids) = value
        .split_once(':')
        .ok_or("expected bind=<ip>:<ids>|none|auto")?;
    let ip = parse_ip(ip)?;
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
