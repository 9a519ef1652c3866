//! aggdom's configuration, parsed from `key=value` words (the kernel command
//! line; under Xen the same keys come from xenstore) and checked as a whole:
//! either every item is valid and a [`Plan`] comes out, or the first bad item
//! is named in a [`ConfigError`] and nothing is applied.
//!
//! | key | value | meaning |
//! |---|---|---|
//! | `mode` | `identity` \| `literal` | MAC steering mode (DESIGN.md) |
//! | `uplinks` | `<nic>,<nic>,...` | NICs that are uplinks; identity *k* is uplink *k*'s factory MAC |
//! | `guest` | `<nic>,<mac>,<ip>[+<ip>...]` | a guest port (repeatable): the NIC standing for the guest's vif, its MAC and IPs: IPv4 or IPv6 addresses, IPv6 prefixes (`fd00:1::/64`) |
//! | `bind` | `<ip>:<id>[+<id>...]` \| `<ip>:none` \| `<ip>:auto` | a guest IP's (or IPv6 prefix's) binding to identities (repeatable); unbound IPs are spread evenly. IPv6 may be bracketed: `[fd00::5]:0` |
//! | `pin` | `<id>,...` | identities no other uplink may take ([0051]) |
//! | `exclusive` | `<uplink>,...` | uplinks whose MAC never changes ([0051]) |
//! | `capacity` | `<mbps>,...` | line rate per uplink, in uplink order (0 = unknown) |
//! | `ip` | `<addr>/<prefix>[,<addr>/<prefix>]` | the domain's own IPs, at most one IPv4 and one IPv6 (ARP / NDP, ping, `GET /metrics`) |
//! | `gw` | `<addr>[,<addr>]` | the own stack's default gateways, one per family |
//! | `own` | `<id>` | the identity the own stack starts on (default 0) |
//! | `metrics_allow` | `<prefix>,...` | clients allowed to read `GET /metrics`, IPv4 or IPv6 prefixes (default: all) |
//! | `ip6_learn` | `0`..`16` | IPv6 addresses a guest may have learned (link-local, in-prefix; default 8) |
//! | `bcast_pps` | integer | broadcast / multicast frames one guest may send per second (default 0: no limit); more are dropped and counted (`broadcast_limit`) |
//! | `rebalance_ms`, `overload_pct`, `hysteresis_pct`, `dwell_s` | integers | rebalance tuning |
//!
//! `<nic>` is a NIC's index in PCI order (as `nics` lists them) or its PCI
//! address (`00:04.0`). Words without `=` and keys of other programs are
//! rejected: a typo must not silently leave a guest unbound.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod merge;
mod parse;
mod plan;
mod prefix;

pub use parse::{parse, parse_bind, ConfigError};
pub use plan::{Binding, GuestPlan, NicAddress, NicRef, OwnStack, Plan, Resolved, UplinkPlan};
pub use prefix::{AllowList, IpPrefix};

#[cfg(test)]
mod tests;
