//! Under Xen the configuration has two sources: the kernel command line
//! (`cmdline=` of the xl config) and the words in xenstore at
//! `/local/domain/<self>/aggdom/config`. A key given once that appears in
//! both is taken from xenstore; `guest=` and `bind=` words add up.
//!
//! `bind=` words for IPs that no configured guest port holds are for vifs,
//! which only attach later: they are held back from the boot line and
//! applied when a vif with that IP attaches (and again whenever the node
//! changes: that is how binding changes at run time).
use aggregation::IpNet;
use alloc::string::String;
use alloc::vec::Vec;

use crate::{parse, parse_bind, Binding};

/// `bind=` items by IP (an address or IPv6 prefix).
pub type Binds = Vec<(IpNet, Binding)>;
/// Words that did not parse, each with why.
pub type Rejected = Vec<(String, String)>;

/// The two sources merged.
#[derive(Debug, Default, PartialEq)]
pub struct Merged {
    /// The line to build the datapath from.
    pub line: String,
    /// `bind=` items held back for vifs, one per IP (the last word wins).
    pub vif_binds: Binds,
    /// `bind=` words that did not parse, with why: reported and skipped.
    pub rejected: Rejected,
}

fn key_of(word: &str) -> &str {
    word.split_once('=').map_or(word, |(k, _)| k)
}

/// The IP a `bind=<ip>:...` word names.
fn bind_ip(word: &str) -> Option<IpNet> {
    parse_bind(word.strip_prefix("bind=")?)
        .ok()
        .map(|(ip, _)| ip)
}

/// Merges the command line with xenstore's words.
pub fn merge(cmdline: &str, store: &str) -> Merged {
    let store_words: Vec<&str> = store.split_ascii_whitespace().collect();
    let repeatable = |k: &str| matches!(k, "guest" | "bind");
    let mut words: Vec<&str> = cmdline
        .split_ascii_whitespace()
        .filter(|w| {
            let k = key_of(w);
            repeatable(k) || !store_words.iter().any(|s| key_of(s) == k)
        })
        .collect();
    words.extend(store_words.iter().copied());
    // IPs of configured guest ports (QEMU-style) keep their binds in the plan.
    let guest_line: Vec<&str> = words
        .iter()
        .copied()
        .filter(|w| key_of(w) == "guest")
        .collect();
    let guest_ips: Vec<IpNet> = parse(&guest_line.join(" "))
        .map(|p| p.guests.iter().flat_map(|g| g.ips.clone()).collect())
        .unwrap_or_default();
    let mut line = Vec::new();
    let mut held = Vec::new();
    for w in words {
        match bind_ip(w) {
            Some(ip) if !guest_ips.contains(&ip) => held.push(w),
            _ => line.push(w),
        }
    }
    let (vif_binds, rejected) = parse_binds(held.iter().copied());
    Merged {
        line: line.join(" "),
        vif_binds,
        rejected,
    }
}

/// Parses `bind=<ip>:<id>[+<id>...]|none|auto` words with the line
/// parser's own `bind=` rule (the whole-line check would also want the
/// IP's guest, which a vif only brings later). One binding per IP, the
/// last word wins; bad words come back with why.
pub fn parse_binds<'a>(words: impl IntoIterator<Item = &'a str>) -> (Binds, Rejected) {
    let mut out: Binds = Vec::new();
    let mut rejected = Vec::new();
    for w in words {
        let parsed = match w.strip_prefix("bind=") {
            Some(value) => parse_bind(value),
            None => Err("expected bind=<ip>:<id>[+<id>...]|none|auto".into()),
        };
        match parsed {
            Ok((ip, b)) => {
                out.retain(|(o, _)| *o != ip);
                out.push((ip, b));
            }
            Err(why) => rejected.push((String::from(w), why)),
        }
    }
    (out, rejected)
}

/// A vif's `ip` entry (address and length, as netback read it) as a guest
/// entry: an address given with its subnet length (`10.0.0.5/24`,
/// `fd00::5/64`) is that address; an IPv6 network (`fd00::/64`) is a
/// prefix; an IPv4 network, or an address no host may own, is nothing.
pub fn vif_entry(addr: core::net::IpAddr, len: u8) -> Option<IpNet> {
    let entry = match IpNet::new(addr, len) {
        Some(net) if !net.is_host() => net,
        _ => IpNet::host(addr),
    };
    let word = alloc::format!("guest=0,02:00:00:00:00:01,{entry}");
    parse(&word).ok().map(|_| entry)
}

/// The `bind=` words of a config node's text.
pub fn bind_words(text: &str) -> impl Iterator<Item = &str> {
    text.split_ascii_whitespace()
        .filter(|w| key_of(w) == "bind")
}

/// Words of `new` other than `bind=` that `old` did not have: they take
/// effect only at the next boot.
pub fn boot_time_changes<'a>(old: &str, new: &'a str) -> Vec<&'a str> {
    let old: Vec<&str> = old.split_ascii_whitespace().collect();
    new.split_ascii_whitespace()
        .filter(|w| key_of(w) != "bind" && !old.contains(w))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn xenstore_overrides_single_keys_and_adds_repeatable_ones() {
        let m = merge(
            "uplinks=0,1 mode=identity ip=10.0.0.2/24 guest=2,52:54:00:00:01:01,10.0.0.11",
            "mode=literal guest=3,52:54:00:00:01:02,10.0.0.12",
        );
        assert_eq!(
            m.line,
            "uplinks=0,1 ip=10.0.0.2/24 guest=2,52:54:00:00:01:01,10.0.0.11 \
             mode=literal guest=3,52:54:00:00:01:02,10.0.0.12"
        );
        assert!(m.vif_binds.is_empty() && m.rejected.is_empty());
    }

    #[test]
    fn binds_for_vif_ips_are_held_back_and_guest_port_binds_stay() {
        let m = merge(
            "uplinks=0,1 guest=2,52:54:00:00:01:01,10.0.0.11 bind=10.0.0.11:1",
            "bind=10.0.0.50:0+1 bind=10.0.0.51:none bind=10.0.0.50:auto bind=oops",
        );
        assert_eq!(
            m.line,
            "uplinks=0,1 guest=2,52:54:00:00:01:01,10.0.0.11 bind=10.0.0.11:1 bind=oops"
        );
        assert_eq!(
            m.vif_binds,
            [
                (ip("10.0.0.51"), Binding::None),
                (ip("10.0.0.50"), Binding::Auto)
            ],
            "one binding per IP, the last word wins"
        );
    }

    #[test]
    fn ipv6_binds_are_held_back_for_vifs_like_ipv4_ones() {
        let m = merge(
            "guest=2,52:54:00:00:01:01,fd00::11+fd00:1::/64 bind=[fd00::11]:1",
            "bind=fd00::50:0+1 bind=fd00:1::/64:none bind=fd00:2::/64:0",
        );
        assert_eq!(
            m.line,
            "guest=2,52:54:00:00:01:01,fd00::11+fd00:1::/64 bind=[fd00::11]:1 \
             bind=fd00:1::/64:none"
        );
        assert_eq!(
            m.vif_binds,
            [
                (ip("fd00::50"), Binding::Identities(alloc::vec![0, 1])),
                (ip("fd00:2::/64"), Binding::Identities(alloc::vec![0])),
            ]
        );
    }

    #[test]
    fn vif_ip_entries_become_addresses_or_ipv6_prefixes() {
        let a = |s: &str| s.parse::<core::net::IpAddr>().unwrap();
        for (addr, len, want) in [
            ("10.0.0.5", 32, Some("10.0.0.5")),
            ("10.0.0.5", 24, Some("10.0.0.5")),
            ("fd00::5", 128, Some("fd00::5")),
            ("fd00::5", 64, Some("fd00::5")),
            ("fd00:1::", 64, Some("fd00:1::/64")),
            ("10.0.0.0", 24, None),
            ("ff02::1", 128, None),
            ("::", 0, None),
        ] {
            let got = vif_entry(a(addr), len).map(|n| alloc::format!("{n}"));
            assert_eq!(got.as_deref(), want, "{addr}/{len}");
        }
    }

    #[test]
    fn bad_bind_words_are_rejected_with_why() {
        let (binds, rejected) = parse_binds(["bind=10.0.0.5:0", "bind=10.0.0.6:x", "pin=0"]);
        assert_eq!(binds.len(), 1);
        assert_eq!(rejected.len(), 2);
        assert_eq!(rejected[0].0, "bind=10.0.0.6:x");
        assert!(
            rejected[1].1.starts_with("expected bind="),
            "{:?}",
            rejected[1]
        );
    }

    #[test]
    fn only_new_non_bind_words_wait_for_the_next_boot() {
        assert_eq!(
            boot_time_changes(
                "mode=identity bind=1.2.3.4:0",
                "mode=literal bind=1.2.3.4:1 pin=0"
            ),
            ["mode=literal", "pin=0"]
        );
        assert_eq!(
            bind_words("mode=literal bind=1.2.3.4:1 pin=0").collect::<Vec<_>>(),
            ["bind=1.2.3.4:1"]
        );
    }
}
