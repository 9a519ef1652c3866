//! The configuration as the operator and dom0 give it: the kernel command
//! line and the xenstore config node, merged as under Xen, parsed, and
//! carried out on fake NICs as the kernel does at boot; then a vif
//! attaching with IPs from netback, with the held-back `bind=` words
//! applied to it, and the node changing at run time.
//!
//! Input: text (the command line, a newline, the node's words), a NUL,
//! then bytes: NIC count and filter slots, the vif's MAC and `ip` entries,
//! and a client address for the `metrics_allow=` check.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aggdom_config::merge::{self, Merged};
use aggdom_config::{parse, AllowList, NicAddress};
use aggregation::IpNet;
use nic::{FakeNic, MacAddr, Nic};

use crate::bytes::Bytes;

fn ip(input: &mut Bytes) -> IpAddr {
    if input.bool() {
        IpAddr::V4(Ipv4Addr::from(input.u32()))
    } else {
        let hi = u128::from(input.u64());
        let lo = u128::from(input.u64());
        IpAddr::V6(Ipv6Addr::from((hi << 64) | lo))
    }
}

fn key(word: &str) -> &str {
    word.split_once('=').map_or(word, |(k, _)| k)
}

pub fn run(data: &[u8]) {
    let split = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let text = String::from_utf8_lossy(&data[..split]);
    let mut input = Bytes::new(data.get(split + 1..).unwrap_or(&[]));
    let (cmdline, store) = text.split_once('\n').unwrap_or((&text, ""));

    // The QEMU path: the command line alone.
    let _ = parse(cmdline);

    // The Xen path: merged first.
    let Merged {
        line,
        vif_binds,
        rejected,
    } = merge::merge(cmdline, store);
    let given: Vec<&str> = cmdline
        .split_ascii_whitespace()
        .chain(store.split_ascii_whitespace())
        .collect();
    for w in line.split_ascii_whitespace() {
        assert!(given.contains(&w), "merge made up the word {w:?}");
    }
    for (i, (ip, _)) in vif_binds.iter().enumerate() {
        assert!(
            vif_binds[..i].iter().all(|(o, _)| o != ip),
            "two held-back binds for {ip}"
        );
    }
    for (w, _) in &rejected {
        assert!(given.contains(&w.as_str()));
    }

    let nic_count = usize::from(input.u8() % 9);
    let slots = usize::from(input.u8() % 17);
    let addresses: Vec<NicAddress> = (0..nic_count)
        .map(|i| NicAddress {
            bus: 0,
            device: 3 + i as u8,
            function: 0,
        })
        .collect();
    let nics = |n: usize| -> Vec<Box<dyn Nic>> {
        (0..n)
            .map(|i| {
                let fake = FakeNic::new(MacAddr([0x52, 0x54, 0, 0, 0, 1 + i as u8]))
                    .with_filter_slots(slots);
                Box::new(fake) as Box<dyn Nic>
            })
            .collect()
    };
    let vif_mac = MacAddr([
        input.u8() & 0xfe,
        input.u8(),
        input.u8(),
        input.u8(),
        input.u8(),
        input.u8(),
    ]);
    let vif_ips: Vec<(IpAddr, u8)> = (0..input.u8() % 5)
        .map(|_| (ip(&mut input), input.u8() % 130))
        .collect();
    let client = ip(&mut input);

    if let Ok(plan) = parse(&line) {
        match datapath::build(&plan, nics(nic_count), &addresses) {
            Ok(built) => {
                let mut dp = built.datapath;
                assert_eq!(built.roles.len(), nic_count);
                if let Some(own) = &plan.own {
                    let mac = dp
                        .engine()
                        .identity_mac(aggregation::IdentityId(own.identity as u8))
                        .unwrap_or(MacAddr([2, 0, 0, 0, 0, 1]));
                    let ips = datapath::own_addresses(own, mac);
                    assert!(ips.len() >= own.ips.len());
                }
                // A vif attaches (xen_net.rs): its `ip` entries as netback
                // read them, then the held-back binds for its IPs.
                let nets: Vec<IpNet> = vif_ips
                    .iter()
                    .filter_map(|&(a, l)| merge::vif_entry(a, l))
                    .collect();
                for n in &nets {
                    assert!(n.is_host() || n.addr().is_ipv6(), "{n}");
                }
                let port = datapath::NicPort::new(Box::new(FakeNic::new(vif_mac)) as Box<dyn Nic>)
                    .expect("a fake NIC port");
                if dp
                    .add_guest("vif1.0", Box::new(port), vif_mac, &nets)
                    .is_ok()
                {
                    for (ip, b) in &vif_binds {
                        if nets.contains(ip) {
                            let _ = datapath::apply_binding(dp.engine_mut(), *ip, b);
                        }
                    }
                }
            }
            Err((_, back)) => assert!(back.is_empty() || back.len() == nic_count),
        }
    }

    // The node changes at run time: its binds re-read, other words noted.
    let (binds, bad) = merge::parse_binds(merge::bind_words(store));
    assert!(binds.len() + bad.len() <= merge::bind_words(store).count());
    for w in merge::boot_time_changes(cmdline, store) {
        assert!(key(w) != "bind" && store.split_ascii_whitespace().any(|s| s == w));
        assert!(!cmdline.split_ascii_whitespace().any(|s| s == w));
    }

    // metrics_allow= values: a client is allowed iff a prefix holds it.
    for value in given
        .iter()
        .filter_map(|w| w.strip_prefix("metrics_allow="))
    {
        if let Ok(list) = AllowList::parse(value) {
            let inside = list.prefixes().iter().any(|p| p.contains(client));
            assert_eq!(list.allows(client), list.is_empty() || inside, "{value}");
        }
    }
}
