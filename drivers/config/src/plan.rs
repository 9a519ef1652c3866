//! What a parsed configuration asks for, and its resolution against the NICs
//! actually found.
use crate::parse::ConfigError;
use crate::prefix::AllowList;
use aggregation::IpNet;
use alloc::format;
use alloc::vec::Vec;
use core::fmt;
use core::net::IpAddr;
use nic::MacAddr;

/// A PCI address, `bb:dd.f`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NicAddress {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl fmt::Display for NicAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02x}:{:02x}.{:x}",
            self.bus, self.device, self.function
        )
    }
}

/// How the configuration names a NIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NicRef {
    /// Position in PCI order among the NICs found (as `nics` numbers them).
    Index(usize),
    Pci(NicAddress),
}

impl fmt::Display for NicRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NicRef::Index(i) => write!(f, "NIC {i}"),
            NicRef::Pci(a) => write!(f, "NIC at {a}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestPlan {
    /// The NIC standing for this guest's vif (QEMU guest port).
    pub port: NicRef,
    pub mac: MacAddr,
    /// Addresses (IPv4, IPv6) and IPv6 prefixes.
    pub ips: Vec<IpNet>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Binding {
    /// Bound to these identities (indices = uplink order).
    Identities(Vec<usize>),
    /// Bound to nothing: denied ([0029]).
    None,
    /// Spread evenly with the other automatic IPs ([0030]).
    Auto,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnStack {
    /// Its addresses with their subnet prefix lengths: at most one IPv4
    /// and one IPv6.
    pub ips: Vec<(IpAddr, u8)>,
    /// Default gateways, at most one per family, each of a family the
    /// stack has an address in.
    pub gateways: Vec<IpAddr>,
    /// The identity the own stack's MAC starts as.
    pub identity: usize,
}

/// A whole, internally consistent configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub engine: aggregation::Config,
    /// Empty: every NIC that is not a guest port is an uplink, in PCI order.
    pub uplinks: Vec<NicRef>,
    pub guests: Vec<GuestPlan>,
    /// Per guest address or IPv6 prefix.
    pub bindings: Vec<(IpNet, Binding)>,
    pub pinned: Vec<usize>,
    pub own: Option<OwnStack>,
    /// Uplinks (by position) whose MAC never changes.
    pub exclusive: Vec<usize>,
    /// Line rate of uplink k in Mbit/s (0 or missing = unknown).
    pub capacity: Vec<u32>,
    /// Clients the own stack serves `GET /metrics` to (empty: all).
    pub metrics_allow: AllowList,
}

/// One uplink, resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UplinkPlan {
    /// Position in the list of NICs found.
    pub nic: usize,
    pub exclusive: bool,
    /// Mbit/s; 0 = unknown.
    pub capacity_mbps: u32,
}

/// A plan's NIC references turned into positions in the list of NICs found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub uplinks: Vec<UplinkPlan>,
    /// For guest g: the NIC position of its port.
    pub guest_ports: Vec<usize>,
}

impl Plan {
    /// Maps NIC references onto `nics` (the NICs found, in PCI order) and
    /// checks that each exists and serves one role only.
    pub fn resolve(&self, nics: &[NicAddress]) -> Result<Resolved, ConfigError> {
        let find = |r: NicRef, key: &str| -> Result<usize, ConfigError> {
            let pos = match r {
                NicRef::Index(i) => (i < nics.len()).then_some(i),
                NicRef::Pci(a) => nics.iter().position(|n| *n == a),
            };
            pos.ok_or_else(|| {
                ConfigError::new(
                    key,
                    format!("{r} does not exist ({} NICs found)", nics.len()),
                )
            })
        };
        let mut used: Vec<usize> = Vec::new();
        let mut guest_ports = Vec::new();
        for g in &self.guests {
            let at = find(g.port, "guest")?;
            if used.contains(&at) {
                return Err(ConfigError::new(
                    "guest",
                    format!("{} is the port of two guests", g.port),
                ));
            }
            used.push(at);
            guest_ports.push(at);
        }
        let mut uplinks = Vec::new();
        if self.uplinks.is_empty() {
            for at in (0..nics.len()).filter(|at| !used.contains(at)) {
                uplinks.push(UplinkPlan {
                    nic: at,
                    exclusive: false,
                    capacity_mbps: 0,
                });
            }
        } else {
            for &r in &self.uplinks {
                let at = find(r, "uplinks")?;
                if used.contains(&at) {
                    return Err(ConfigError::new(
                        "uplinks",
                        format!("{r} is listed twice or is also a guest port"),
                    ));
                }
                used.push(at);
                uplinks.push(UplinkPlan {
                    nic: at,
                    exclusive: false,
                    capacity_mbps: 0,
                });
            }
        }
        if uplinks.is_empty() {
            return Err(ConfigError::new(
                "uplinks",
                "no NIC is left to be an uplink".into(),
            ));
        }
        for &k in &self.exclusive {
            match uplinks.get_mut(k) {
                Some(u) => u.exclusive = true,
                None => {
                    return Err(ConfigError::new(
                        "exclusive",
                        format!("there is no uplink {k}"),
                    ))
                }
            }
        }
        for (k, &c) in self.capacity.iter().enumerate() {
            match uplinks.get_mut(k) {
                Some(u) => u.capacity_mbps = c,
                None => {
                    return Err(ConfigError::new(
                        "capacity",
                        format!("there is no uplink {k}"),
                    ))
                }
            }
        }
        let identities = uplinks.len();
        let check_id = |id: usize, key: &str| {
            if id < identities {
                Ok(())
            } else {
                Err(ConfigError::new(
                    key,
                    format!("identity {id} does not exist ({identities} uplinks)"),
                ))
            }
        };
        for (_, b) in &self.bindings {
            if let Binding::Identities(ids) = b {
                for &id in ids {
                    check_id(id, "bind")?;
                }
            }
        }
        for &id in &self.pinned {
            check_id(id, "pin")?;
        }
        if let Some(own) = &self.own {
            check_id(own.identity, "own")?;
        }
        Ok(Resolved {
            uplinks,
            guest_ports,
        })
    }
}
