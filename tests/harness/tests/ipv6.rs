//! IPv6 end to end (issue 11): the real kernel in QEMU with dual-stack
//! guests (`Layout::with_ipv6`: guest *j* has `10.0.0.<11+j>`,
//! `fd00::<11+j>` and the prefix `fd00::/64`), the harness playing the
//! guests and the outside network behind a learning switch (`rig::Net`).
//!
//! QEMU under TCG on shared cores: waits are generous and nothing asserts on
//! time; senders are paced.

use std::net::Ipv6Addr;
use std::thread::sleep;
use std::time::Duration;

use aggdom_harness::frame::{self, Eth, Ipv4Ends, ARP_REPLY};
use aggdom_harness::frame6::{self, Ipv6Ends, ICMPV6_NA, ICMPV6_NS};
use aggdom_harness::rig::{
    self, guest_ip, guest_ip6, guest_mac, guest_udp6, macs, remote, remote_ip6, udp6_frame,
    udp6_tag, uplink_mac, Echo, Layout, Net, Stats, OWN_IP,
};
use aggdom_harness::{MacAddr, Machine, NicKind, Received};

/// How long a frame may take through QEMU and aggdom.
const T: Duration = Duration::from_secs(10);
/// How long to wait before concluding that a frame will not come.
const QUIET: Duration = Duration::from_millis(1500);

fn stats(m: &mut Machine) -> Stats {
    Stats::parse(&m.command("stats").unwrap())
}

/// The NDP message of type `ty` for `target` in `f`, if it is one: its
/// Ethernet source and its link-layer options (checksum verified).
fn nd_of(f: &[u8], ty: u8, target: Ipv6Addr) -> Option<(MacAddr, Vec<(u8, MacAddr)>)> {
    let eth = Eth::parse(f)?;
    let m = eth.ipv6()?.icmp6()?;
    (m.ty == ty && m.target() == Some(target)).then(|| (eth.src, m.lladdrs()))
}

/// Issue 11, item 4: a dual-stack guest whose IPv6 address is bound to two
/// identities spreads its IPv6 traffic over both uplinks, each frame under
/// the identity of the uplink it leaves; the outside resolves the guest
/// with a neighbour solicitation (delivered to that guest alone), learns
/// an identity from its advertisement (link-layer option rewritten,
/// checksum valid) and reaches it there.
#[test]
fn dual_stack_guest_spreads_ipv6_and_is_resolved_and_reached_from_outside() {
    let layout = Layout::new(2, 2).with_ipv6().with("bind=fd00::11:0+1");
    let mut m = layout.boot().unwrap();
    let mut per = [0u64; 2];
    for t in 0..40u64 {
        m.send_frame(layout.port(0), &guest_udp6(0, 0, 0x10 + t, 200))
            .unwrap();
        let r = m
            .recv_where(T, |r| r.nic < 2 && udp6_tag(&r.data) == Some(0x10 + t))
            .unwrap_or_else(|| panic!("IPv6 frame {t} left through no uplink"));
        assert_eq!(
            macs(&r.data).0,
            uplink_mac(r.nic),
            "uplink {} sent under another identity",
            r.nic
        );
        per[r.nic] += 1;
        sleep(Duration::from_millis(20));
    }
    assert!(per[0] >= 8 && per[1] >= 8, "frames per uplink: {per:?}");
    let s = stats(&mut m);
    assert_eq!(s.guests[0].per_uplink, per.to_vec(), "stats per-uplink tx");
    assert_eq!(s.guests[0].tx_frames, 40);
    m.drain_all();
    resolved_and_reached(&mut m, &layout, false);
}

/// The same resolution through e1000 uplinks (all-multicast is the
/// receive-control register there, not a virtio-net control command).
#[test]
fn ipv6_guest_is_resolved_and_reached_through_e1000_uplinks_too() {
    let mut layout = Layout::new(2, 2).with_ipv6();
    layout.kind = NicKind::E1000;
    let mut m = layout.boot().unwrap();
    resolved_and_reached(&mut m, &layout, false);
}

/// Literal mode: the solicitation reaches the guest, its advertisement
/// leaves with its own MAC, and the outside reaches it there.
#[test]
fn ipv6_guest_is_resolved_and_reached_in_literal_mode() {
    let layout = Layout::new(2, 2).with_ipv6().with("mode=literal");
    let mut m = layout.boot().unwrap();
    resolved_and_reached(&mut m, &layout, true);
}

/// Remote host 0 solicits guest 0's IPv6 address; the solicitation reaches
/// guest 0 alone, unchanged; the guest's advertisement reaches the remote
/// naming the MAC the frame left under (an identity, or in literal mode the
/// guest's own MAC), with a valid checksum; a frame to that MAC reaches
/// the guest.
fn resolved_and_reached(m: &mut Machine, layout: &Layout, literal: bool) {
    let net = Net::new(2, 1);
    let r = remote(0);
    let ns = frame6::neighbour_solicitation(r.mac, remote_ip6(0), guest_ip6(0));
    net.remote_send(m, 0, &ns).unwrap();
    let got = m
        .recv_where(T, |x| {
            x.nic == layout.port(0) && nd_of(&x.data, ICMPV6_NS, guest_ip6(0)).is_some()
        })
        .expect("the solicitation did not reach the guest");
    assert_eq!(got.data, ns, "delivered as the outside sent it");
    // Directed: the other guest did not get it.
    sleep(QUIET);
    let others: Vec<Received> = m
        .drain_all()
        .into_iter()
        .filter(|x| x.nic == layout.port(1) && nd_of(&x.data, ICMPV6_NS, guest_ip6(0)).is_some())
        .collect();
    assert!(others.is_empty(), "guest 1 was solicited for guest 0");
    let to_remote = Ipv6Ends {
        src_mac: guest_mac(0),
        dst_mac: r.mac,
        src_ip: guest_ip6(0),
        dst_ip: remote_ip6(0),
    };
    m.send_frame(
        layout.port(0),
        &frame6::neighbour_advertisement(to_remote, guest_ip6(0), guest_mac(0)),
    )
    .unwrap();
    let na = net
        .remote_recv(m, 0, T, |f| nd_of(f, ICMPV6_NA, guest_ip6(0)).is_some())
        .unwrap()
        .expect("the guest's advertisement never reached the outside (or its checksum broke)");
    let (src, opts) = nd_of(&na, ICMPV6_NA, guest_ip6(0)).unwrap();
    if literal {
        assert_eq!(src, guest_mac(0), "literal mode keeps the guest's MAC");
    } else {
        assert!(
            src == uplink_mac(0) || src == uplink_mac(1),
            "advertised from {src}"
        );
    }
    assert_eq!(
        opts,
        vec![(2, src)],
        "the option names the MAC it left under"
    );

    // The outside reaches the guest there.
    let to_guest = Ipv6Ends {
        src_mac: r.mac,
        dst_mac: src,
        src_ip: remote_ip6(0),
        dst_ip: guest_ip6(0),
    };
    net.remote_send(m, 0, &udp6_frame(to_guest, 0x77, 100))
        .unwrap();
    let back = m
        .recv_where(T, |x| {
            x.nic == layout.port(0) && udp6_tag(&x.data) == Some(0x77)
        })
        .unwrap_or_else(|| panic!("the frame to {src} never reached the guest"));
    assert_eq!(macs(&back.data), (r.mac, guest_mac(0)));
    let s = stats(m);
    assert!(s.total("nd_directed") >= 1, "{:?}", s.totals);
}

/// Issue 11, item 4: a spoofed IPv6 source, another guest's address, a
/// rogue router advertisement and an advertisement for another guest's
/// address are dropped, each counted under its own reason, and none of
/// them leaves; the guest's honest IPv6 frame still does.
#[test]
fn spoofed_ipv6_and_rogue_router_advertisements_are_dropped_and_counted() {
    let layout = Layout::new(2, 2).with_ipv6();
    let mut m = layout.boot().unwrap();
    let r = remote(0);
    let from = |src_ip: Ipv6Addr| Ipv6Ends {
        src_mac: guest_mac(0),
        dst_mac: r.mac,
        src_ip,
        dst_ip: remote_ip6(0),
    };
    let link_local: Ipv6Addr = "fe80::1:101".parse().unwrap();
    let frames = [
        // Outside every entry of the guest.
        udp6_frame(from("fd01::99".parse().unwrap()), 0x70, 100),
        // Guest 1's address, inside guest 0's prefix: taken.
        udp6_frame(from(guest_ip6(1)), 0x71, 100),
        // A rogue router.
        frame6::router_advertisement(guest_mac(0), link_local),
        // "Guest 1's address is at my MAC".
        frame6::neighbour_advertisement(from(guest_ip6(0)), guest_ip6(1), guest_mac(0)),
    ];
    for f in &frames {
        m.send_frame(layout.port(0), f).unwrap();
        sleep(Duration::from_millis(20));
    }
    let reasons = ["spoofed_ip6", "ip6_taken", "ra_guard", "nd_target"];
    let s = aggdom_harness::rig::eventually(T, || {
        let s = stats(&mut m);
        (reasons.iter().map(|r| s.guests[0].drops(r)).sum::<u64>() >= 4).then_some(s)
    })
    .unwrap_or_else(|| panic!("IPv6 drops not counted:\n{}", m.command("stats").unwrap()));
    for r in reasons {
        assert_eq!(s.guests[0].drops(r), 1, "{r}: {:?}", s.guests[0]);
    }
    assert_eq!(s.guests[0].tx_frames, 0);
    // The honest frame leaves.
    m.send_frame(layout.port(0), &guest_udp6(0, 0, 0x74, 100))
        .unwrap();
    m.recv_where(T, |x| x.nic < 2 && udp6_tag(&x.data) == Some(0x74))
        .expect("the guest's own IPv6 frame did not leave");
    sleep(QUIET);
    let out: Vec<Received> = m
        .drain_all()
        .into_iter()
        .filter(|x| x.nic < 2)
        .filter(|x| {
            let e = Eth::parse(&x.data).unwrap();
            udp6_tag(&x.data).is_some_and(|t| (0x70..0x74).contains(&t))
                || e.ipv6()
                    .and_then(|ip| ip.icmp6())
                    .is_some_and(|i| i.ty == frame6::ICMPV6_RA || i.ty == ICMPV6_NA)
        })
        .collect();
    assert!(out.is_empty(), "dropped frames got out: {out:?}");
    let table = m.command("stats").unwrap();
    assert!(table.contains("ra_guard=1"), "{table}");
}

/// Issue 11, item 3: the own stack on IPv6 answers neighbour
/// solicitations (from its identity, with its identity as the option),
/// ping6 and `GET /metrics` over TCP on IPv6.
#[test]
fn own_stack_answers_ndp_ping6_and_metrics_over_ipv6() {
    let own: Ipv6Addr = "fd00::2".parse().unwrap();
    let layout = Layout::new(2, 1).with("ip=10.0.0.2/24,fd00::2/64");
    let mut m = layout.boot().unwrap();
    assert!(
        m.transcript()
            .contains("own stack: 10.0.0.2, fd00::2, fe80::"),
        "{}",
        m.transcript()
    );
    let net = Net::new(2, 1);
    let r = remote(0);
    net.remote_send(
        &m,
        0,
        &frame6::neighbour_solicitation(r.mac, remote_ip6(0), own),
    )
    .unwrap();
    let na = net
        .remote_recv(&m, 0, T, |f| nd_of(f, ICMPV6_NA, own).is_some())
        .unwrap()
        .expect("no advertisement for the own IPv6 address");
    let (src, opts) = nd_of(&na, ICMPV6_NA, own).unwrap();
    assert_eq!(src, uplink_mac(0), "the own stack starts on identity 0");
    assert_eq!(opts, vec![(2, uplink_mac(0))]);

    let ends = Ipv6Ends {
        src_mac: r.mac,
        dst_mac: uplink_mac(0),
        src_ip: remote_ip6(0),
        dst_ip: own,
    };
    for seq in 1..=3u16 {
        let f = rig::ping(&net.link(&m, 0), ends, 0x4242, seq, b"aggdom ping6", T)
            .unwrap()
            .unwrap_or_else(|| panic!("no echo reply {seq}"));
        assert_eq!(
            ends.echo_reply(&f),
            Some((0x4242, seq, &b"aggdom ping6"[..]))
        );
        assert_eq!(macs(&f).0, uplink_mac(0));
    }

    let text = rig::get_metrics(&net.link(&m, 0), ends, 40000).unwrap();
    assert!(text.starts_with("HTTP/1.0 200 OK"), "{text}");
    assert!(text.contains("aggdom_rx_nd_directed_total"), "{text}");
    assert!(text.contains("reason=\"ra_guard\""), "{text}");
    let s = stats(&mut m);
    assert!(s.total("own_rx") >= 5, "{:?}", s.totals);
}

/// A dual-stack guest reaches the own stack, and what the own stack sends
/// back (sent to the identity the guest's ARP request and solicitation
/// named) is switched to the guest with its own MAC, never through an
/// uplink, over IPv4 and IPv6 alike: the ARP reply and the advertisement
/// (whose option keeps naming the own stack, here under the identity the
/// guest's IPv6 is bound to as well), ping, ping6 and `GET /metrics`.
#[test]
fn own_stack_answers_a_guest_locally_over_both_families() {
    let own6: Ipv6Addr = "fd00::2".parse().unwrap();
    let layout = Layout::new(2, 1)
        .with_ipv6()
        .with("ip=10.0.0.2/24,fd00::2/64 bind=10.0.0.11:1 bind=fd00::11:0");
    let m = layout.boot().unwrap();
    let port = layout.port(0);
    let to_guest = |x: &Received| x.nic == port && Eth::parse(&x.data).is_some();

    // IPv4: the guest resolves the own IP; the reply names the own stack's
    // identity and reaches the guest at its own MAC.
    m.send_frame(port, &frame::arp_request(guest_mac(0), guest_ip(0), OWN_IP))
        .unwrap();
    let got = m
        .recv_where(T, |x| {
            to_guest(x)
                && Eth::parse(&x.data)
                    .and_then(|e| e.arp())
                    .is_some_and(|a| a.op == ARP_REPLY && a.sender_ip == OWN_IP)
        })
        .expect("the own stack's ARP reply did not reach the guest");
    let arp = Eth::parse(&got.data).unwrap().arp().unwrap();
    assert_eq!(arp.sender_mac, uplink_mac(0), "the own stack is identity 0");
    assert_eq!(
        (macs(&got.data).1, arp.target_mac),
        (guest_mac(0), guest_mac(0))
    );
    let v4 = Ipv4Ends {
        src_mac: guest_mac(0),
        dst_mac: arp.sender_mac,
        src_ip: guest_ip(0),
        dst_ip: OWN_IP,
    };
    let reply = ping_until_answered(&m, port, v4);
    assert_eq!(macs(&reply).1, guest_mac(0));

    // IPv6: the same with a solicitation, its source option rewritten to
    // identity 0, the own stack's own.
    let ns = frame6::neighbour_solicitation(guest_mac(0), guest_ip6(0), own6);
    m.send_frame(port, &ns).unwrap();
    let got = m
        .recv_where(T, |x| {
            to_guest(x) && nd_of(&x.data, ICMPV6_NA, own6).is_some()
        })
        .expect("the own stack's advertisement did not reach the guest");
    let (src, opts) = nd_of(&got.data, ICMPV6_NA, own6).unwrap();
    assert_eq!(macs(&got.data).1, guest_mac(0));
    assert_eq!(
        (src, opts),
        (uplink_mac(0), vec![(2, uplink_mac(0))]),
        "the advertisement names the own stack"
    );
    let v6 = Ipv6Ends {
        src_mac: guest_mac(0),
        dst_mac: uplink_mac(0),
        src_ip: guest_ip6(0),
        dst_ip: own6,
    };
    let reply = ping_until_answered(&m, port, v6);
    assert_eq!(macs(&reply).1, guest_mac(0));

    let text = rig::get_metrics(&m.link(port), v4, 40000).unwrap();
    assert!(text.starts_with("HTTP/1.0 200"), "{text}");

    // None of the own stack's answers went out.
    sleep(QUIET);
    let leaked: Vec<Received> = m
        .drain_all()
        .into_iter()
        .filter(|x| x.nic < layout.uplinks)
        .filter(|x| {
            let Some(e) = Eth::parse(&x.data) else {
                return false;
            };
            e.arp().is_some_and(|a| a.sender_ip == OWN_IP)
                || e.ipv4().is_some_and(|ip| ip.src == OWN_IP)
                || e.ipv6().is_some_and(|ip| ip.dst == guest_ip6(0))
        })
        .collect();
    assert!(
        leaked.is_empty(),
        "own-stack frames to the guest on an uplink: {leaked:?}"
    );
}

/// Pings the server of `ends` from guest port `port` up to five times, a
/// second apart (the own stack may drop an echo request while it resolves
/// the sender); the first reply.
fn ping_until_answered<E: Echo>(m: &Machine, port: usize, ends: E) -> Vec<u8> {
    for seq in 1..=5u16 {
        let wait = if seq == 5 { T } else { Duration::from_secs(1) };
        if let Some(f) = rig::ping(&m.link(port), ends, 0x7777, seq, b"local?", wait).unwrap() {
            return f;
        }
    }
    panic!("no echo reply to 5 pings");
}
