use super::*;
use aggregation::{IpNet, Mode};
use core::net::{IpAddr, Ipv4Addr};
use nic::MacAddr;
use proptest::prelude::*;

const NICS: [NicAddress; 6] = [
    NicAddress {
        bus: 0,
        device: 3,
        function: 0,
    },
    NicAddress {
        bus: 0,
        device: 4,
        function: 0,
    },
    NicAddress {
        bus: 0,
        device: 5,
        function: 0,
    },
    NicAddress {
        bus: 0,
        device: 6,
        function: 0,
    },
    NicAddress {
        bus: 0,
        device: 7,
        function: 0,
    },
    NicAddress {
        bus: 0,
        device: 8,
        function: 0,
    },
];

const MAKE_RUN: &str = "uplinks=0,1,2,3 guest=4,52:54:00:00:01:01,10.0.0.11 \
    guest=00:08.0,52:54:00:00:01:02,10.0.0.12+10.0.0.13 bind=10.0.0.11:0+1 bind=10.0.0.13:none \
    pin=2 exclusive=3 capacity=1000,1000,1000,100 ip=10.0.0.2/24 gw=10.0.0.1 mode=literal \
    rebalance_ms=500 overload_pct=70 hysteresis_pct=10 dwell_s=5";

#[test]
fn a_full_configuration_parses_and_resolves() {
    let plan = parse(MAKE_RUN).unwrap();
    assert_eq!(plan.engine.mode, Mode::Literal);
    assert_eq!(plan.engine.rebalance_interval_ns, 500_000_000);
    assert_eq!(plan.engine.overload_permille, 700);
    assert_eq!(plan.engine.hysteresis_permille, 100);
    assert_eq!(plan.engine.min_dwell_ns, 5_000_000_000);
    assert_eq!(plan.guests.len(), 2);
    assert_eq!(plan.guests[1].mac, MacAddr([0x52, 0x54, 0, 0, 1, 2]));
    assert_eq!(plan.guests[1].ips, [net("10.0.0.12"), net("10.0.0.13")]);
    assert_eq!(
        plan.bindings[0],
        (net("10.0.0.11"), Binding::Identities(vec![0, 1]))
    );
    assert_eq!(plan.bindings[1], (net("10.0.0.13"), Binding::None));
    assert_eq!(plan.pinned, [2]);
    let own = plan.own.clone().unwrap();
    let v4 = |s: &str| IpAddr::V4(s.parse::<Ipv4Addr>().unwrap());
    assert_eq!(
        (own.ips, own.gateways),
        (vec![(v4("10.0.0.2"), 24)], vec![v4("10.0.0.1")])
    );

    let r = plan.resolve(&NICS).unwrap();
    assert_eq!(r.guest_ports, [4, 5]);
    let uplinks: Vec<_> = r
        .uplinks
        .iter()
        .map(|u| (u.nic, u.exclusive, u.capacity_mbps))
        .collect();
    assert_eq!(
        uplinks,
        [
            (0, false, 1000),
            (1, false, 1000),
            (2, false, 1000),
            (3, true, 100)
        ]
    );
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// IPv6 beside IPv4 everywhere an address goes: guest addresses and
/// prefixes (shared prefixes allowed, shared addresses not), bindings of
/// either (bracketed or not), the own stack's second address and
/// gateway, and the learned-address bound.
#[test]
fn ipv6_addresses_and_prefixes_parse() {
    let plan = parse(
        "guest=4,52:54:00:00:01:01,10.0.0.11+fd00::11+fd00:0:0:1::/64 \
         guest=5,52:54:00:00:01:02,fd00::12+fd00:0:0:1::/64 \
         bind=fd00::11:0+1 bind=[fd00::12]:none bind=fd00:0:0:1::/64:1 \
         ip=10.0.0.2/24,fd00::2/64 gw=fd00::1,10.0.0.1 ip6_learn=4",
    )
    .unwrap();
    assert_eq!(
        plan.guests[0].ips,
        [net("10.0.0.11"), net("fd00::11"), net("fd00:0:0:1::/64")]
    );
    assert_eq!(
        plan.guests[1].ips,
        [net("fd00::12"), net("fd00:0:0:1::/64")]
    );
    assert_eq!(
        plan.bindings,
        [
            (net("fd00::11"), Binding::Identities(vec![0, 1])),
            (net("fd00::12"), Binding::None),
            (net("fd00:0:0:1::/64"), Binding::Identities(vec![1])),
        ]
    );
    let own = plan.own.unwrap();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(own.ips, [(ip("10.0.0.2"), 24), (ip("fd00::2"), 64)]);
    assert_eq!(own.gateways, [ip("fd00::1"), ip("10.0.0.1")]);
    assert_eq!(plan.engine.learn_max, 4);
    assert_eq!(parse("").unwrap().engine.learn_max, 8, "default");
    assert_eq!(parse("bcast_pps=200").unwrap().engine.bcast_limit_pps, 200);
    assert_eq!(parse("").unwrap().engine.bcast_limit_pps, 0, "no limit");
    // An IPv6-only own stack.
    let own = parse("ip=fd00::2/64 gw=fd00::1").unwrap().own.unwrap();
    assert_eq!(own.ips, [(ip("fd00::2"), 64)]);
}

#[test]
fn bad_ipv6_items_are_named_with_why() {
    let g = "guest=4,52:54:00:00:01:01,fd00::11";
    let table: &[(&str, &str, &str)] = &[
        (
            "guest=4,52:54:00:00:01:01,fd00::1/64",
            "guest=4,52:54:00:00:01:01,fd00::1/64",
            "host bits",
        ),
        (
            "guest=4,52:54:00:00:01:01,10.0.0.0/24",
            "guest=4,52:54:00:00:01:01,10.0.0.0/24",
            "prefixes are for IPv6",
        ),
        (
            "guest=4,52:54:00:00:01:01,::/0",
            "guest=4,52:54:00:00:01:01,::/0",
            "any address",
        ),
        (
            "guest=4,52:54:00:00:01:01,ff02::1",
            "guest=4,52:54:00:00:01:01,ff02::1",
            "host address",
        ),
        (
            "guest=4,52:54:00:00:01:01,::",
            "guest=4,52:54:00:00:01:01,::",
            "host address",
        ),
        (
            "guest=4,52:54:00:00:01:01,fd00::/129",
            "guest=4,52:54:00:00:01:01,fd00::/129",
            "length",
        ),
        (
            "guest=4,52:54:00:00:01:01,fd00::zz",
            "guest=4,52:54:00:00:01:01,fd00::zz",
            "not an IPv4 or IPv6",
        ),
        (
            "guest=4,52:54:00:00:01:01,fd00::11 guest=5,52:54:00:00:01:02,fd00::11",
            "guest=5,52:54:00:00:01:02,fd00::11",
            "another guest",
        ),
        (
            "guest=4,52:54:00:00:01:01,fd00::11 bind=fd00::12:0",
            "bind=fd00::12",
            "no guest",
        ),
        (
            "guest=4,52:54:00:00:01:01,fd00::11 bind=fd00::/64:0",
            "bind=fd00::/64",
            "no guest",
        ),
        (
            "ip=fd00::2/64,fd00::3/64",
            "ip=fd00::2/64,fd00::3/64",
            "one IPv4 and one IPv6",
        ),
        ("ip=fd00::2/129", "ip=fd00::2/129", "more than 128"),
        ("ip=ff02::2/64", "ip=ff02::2/64", "host address"),
        ("ip=10.0.0.2/24 gw=fd00::1", "gw", "family"),
        (
            "ip=fd00::2/64 gw=fd00::1,fd00::3",
            "gw=fd00::1,fd00::3",
            "one IPv4 and one IPv6",
        ),
        ("ip6_learn=17", "ip6_learn=17", "more than 16"),
        ("bcast_pps=-1", "bcast_pps=-1", "not a number"),
    ];
    for (line, item, why) in table {
        let err = parse(line).expect_err(line);
        assert_eq!(err.item, *item, "{line}: {err}");
        assert!(err.why.contains(why), "{line}: {err}");
    }
    let err = parse(&format!("{g} ip=fd00::11/64")).expect_err("own = guest");
    assert_eq!(err.item, "ip", "{err}");
}

#[test]
fn without_uplinks_every_non_guest_nic_is_an_uplink() {
    let plan = parse("guest=1,52:54:00:00:01:01,10.0.0.11").unwrap();
    let r = plan.resolve(&NICS).unwrap();
    let nics: Vec<_> = r.uplinks.iter().map(|u| u.nic).collect();
    assert_eq!(nics, [0, 2, 3, 4, 5]);
    assert_eq!(parse("").unwrap().resolve(&NICS).unwrap().uplinks.len(), 6);
}

#[test]
fn each_bad_item_is_named() {
    let table: &[(&str, &str)] = &[
        ("mode=fast", "mode=fast"),
        ("nonsense", "nonsense"),
        ("colour=blue", "colour=blue"),
        ("mode=literal mode=identity", "mode=identity"),
        ("guest=4,52:54:00:00:01:01", "guest=4,52:54:00:00:01:01"),
        (
            "guest=4,52:54:00:00:01,10.0.0.1",
            "guest=4,52:54:00:00:01,10.0.0.1",
        ),
        (
            "guest=4,01:54:00:00:01:01,10.0.0.1",
            "guest=4,01:54:00:00:01:01,10.0.0.1",
        ),
        (
            "guest=4,52:54:00:00:01:01,10.0.0.300",
            "guest=4,52:54:00:00:01:01,10.0.0.300",
        ),
        (
            "guest=4,52:54:00:00:01:01,10.0.0.1 guest=5,52:54:00:00:01:01,10.0.0.2",
            "guest=5,52:54:00:00:01:01,10.0.0.2",
        ),
        (
            "guest=4,52:54:00:00:01:01,10.0.0.1 guest=5,52:54:00:00:01:02,10.0.0.1",
            "guest=5,52:54:00:00:01:02,10.0.0.1",
        ),
        (
            "guest=00:1f.9,52:54:00:00:01:01,10.0.0.1",
            "guest=00:1f.9,52:54:00:00:01:01,10.0.0.1",
        ),
        ("bind=10.0.0.9:0", "bind=10.0.0.9"),
        (
            "guest=4,52:54:00:00:01:01,10.0.0.1 bind=10.0.0.1:0+0",
            "bind=10.0.0.1:0+0",
        ),
        (
            "guest=4,52:54:00:00:01:01,10.0.0.1 bind=10.0.0.1:x",
            "bind=10.0.0.1:x",
        ),
        ("ip=10.0.0.2", "ip=10.0.0.2"),
        ("ip=10.0.0.2/33", "ip=10.0.0.2/33"),
        ("gw=10.0.0.1", "gw"),
        ("overload_pct=101", "overload_pct=101"),
        ("rebalance_ms=-1", "rebalance_ms=-1"),
        ("uplinks=0,,1", "uplinks=0,,1"),
    ];
    for (line, item) in table {
        let err = parse(line).expect_err(line);
        assert_eq!(err.item, *item, "{line}: {err}");
        assert!(!err.why.is_empty());
    }
}

#[test]
fn metrics_allow_is_a_list_of_client_prefixes() {
    let plan = parse("ip=10.0.0.2/24 metrics_allow=10.0.0.0/24,10.0.1.5/32,0.0.0.0/0").unwrap();
    let want: Vec<String> = ["10.0.0.0/24", "10.0.1.5/32", "0.0.0.0/0"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let got: Vec<String> = plan
        .metrics_allow
        .prefixes()
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(got, want);
    let allow = &plan.metrics_allow;
    let ip = |s: &str| core::net::IpAddr::V4(s.parse().unwrap());
    let only = parse("ip=10.0.0.2/24 metrics_allow=10.0.0.0/24,10.0.1.5/32")
        .unwrap()
        .metrics_allow;
    for (client, allowed) in [
        ("10.0.0.0", true),
        ("10.0.0.77", true),
        ("10.0.0.255", true),
        ("10.0.1.5", true),
        ("10.0.1.4", false),
        ("10.0.1.6", false),
        ("10.0.2.1", false),
        ("192.168.0.1", false),
    ] {
        assert_eq!(only.allows(ip(client)), allowed, "{client}");
    }
    assert!(allow.allows(ip("192.168.0.1")), "0.0.0.0/0 admits everyone");
    assert!(
        !only.allows("::ffff:10.0.0.1".parse().unwrap()),
        "IPv6 clients match no IPv4 prefix"
    );
    let v6 = parse("ip=fd00::2/64 metrics_allow=fd00::/64,10.0.0.0/24")
        .unwrap()
        .metrics_allow;
    assert!(v6.allows("fd00::77".parse().unwrap()));
    assert!(!v6.allows("fd01::77".parse().unwrap()));
    assert!(v6.allows(ip("10.0.0.9")));
    // Absent: every client, as before the key existed.
    let open = parse("ip=10.0.0.2/24").unwrap().metrics_allow;
    assert!(open.is_empty() && open.allows(ip("192.168.0.1")));
}

#[test]
fn a_bad_metrics_prefix_is_named_with_why() {
    let table: &[(&str, &str)] = &[
        ("metrics_allow=", "empty"),
        ("metrics_allow=10.0.0.0/24,", "not a prefix"),
        ("metrics_allow=10.0.0.0", "needs a /prefix"),
        ("metrics_allow=10.0.0.0/33", "more than 32"),
        ("metrics_allow=10.0.0.0/x", "not a number"),
        ("metrics_allow=10.0.0/24", "not an IP address"),
        ("metrics_allow=10.0.0.5/24", "host bits"),
        ("metrics_allow=fd00::5/64", "host bits"),
        ("metrics_allow=fd00::/129", "more than 128"),
    ];
    for (word, why) in table {
        let line = format!("ip=10.0.0.2/24 {word}");
        let err = parse(&line).expect_err(word);
        assert_eq!(err.item, *word, "{line}: {err}");
        assert!(err.why.contains(why), "{word}: {err}");
    }
    let err = parse("metrics_allow=10.0.0.0/24").expect_err("no own IP");
    assert_eq!(err.item, "metrics_allow", "{err}");
    assert!(err.why.contains("ip="), "{err}");
}

#[test]
fn resolution_rejects_missing_and_doubly_used_nics() {
    let table: &[(&str, &str)] = &[
        ("uplinks=0,9", "uplinks"),
        ("uplinks=0,00:09.0", "uplinks"),
        ("uplinks=0,1 guest=1,52:54:00:00:01:01,10.0.0.1", "uplinks"),
        ("uplinks=0,0", "uplinks"),
        (
            "guest=4,52:54:00:00:01:01,10.0.0.1 guest=00:07.0,52:54:00:00:01:02,10.0.0.2",
            "guest",
        ),
        (
            "uplinks=0,1 guest=2,52:54:00:00:01:01,10.0.0.1 bind=10.0.0.1:2",
            "bind",
        ),
        ("uplinks=0,1 pin=5", "pin"),
        ("uplinks=0,1 exclusive=2", "exclusive"),
        ("uplinks=0 capacity=1,2", "capacity"),
        ("uplinks=0 ip=10.0.0.2/24 own=1", "own"),
    ];
    for (line, key) in table {
        let err = parse(line).unwrap().resolve(&NICS).expect_err(line);
        assert_eq!(err.item, *key, "{line}: {err}");
    }
    let all_guests: String = (0..6)
        .map(|i| format!(" guest={i},52:54:00:00:01:0{i},10.0.0.{i}"))
        .collect();
    let err = parse(&all_guests)
        .unwrap()
        .resolve(&NICS)
        .expect_err("no uplink left");
    assert_eq!(err.item, "uplinks", "{err}");
    assert!(err.why.contains("no NIC is left"), "{err}");
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
        if let Ok(plan) = parse(&s) {
            let _ = plan.resolve(&NICS);
        }
    }

    #[test]
    fn config_like_words_never_panic(words in proptest::collection::vec(
        "(mode|uplinks|guest|bind|pin|exclusive|capacity|ip|gw|own|dwell_s|metrics_allow|ip6_learn|bcast_pps)=[0-9a-f:.,+/x\\[\\]]{0,30}", 0..8)) {
        if let Ok(plan) = parse(&words.join(" ")) {
            let _ = plan.resolve(&NICS);
        }
    }
}
