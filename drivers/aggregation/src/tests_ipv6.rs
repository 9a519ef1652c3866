//! Table tests for IPv6 guests (issue 11): addresses and prefixes, NDP
//! through the engine (link-layer option rewrite both ways with the ICMPv6
//! checksum verified, NA target check, RA guard, extension headers),
//! learning, MLD, solicited-node delivery and deny.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::testkit::{
    icmp6_checksum_ok, ipv6_packet, link_local, mld2_report_body, nd_body, solicited_node,
    EXT_DEST_OPTS, EXT_FRAGMENT, EXT_HOP_BY_HOP,
};
use crate::*;

const S: u64 = 1_000_000_000;

fn nic(k: u8) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0, k])
}
fn vm(k: u8) -> MacAddr {
    MacAddr([0x52, 0x54, 0, 0, 0, k])
}
fn v4(k: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 168, 1, k))
}
/// fd00::k: configured addresses.
fn fd(k: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = 0xfd;
    a[15] = k;
    a
}
/// fd00:0:0:1::k: inside the prefix A and B share.
fn pre(k: u8) -> [u8; 16] {
    let mut a = fd(k);
    a[7] = 1;
    a
}
fn a6(a: [u8; 16]) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(a))
}
fn prefix() -> IpNet {
    "fd00:0:0:1::/64".parse().unwrap()
}
const GW: MacAddr = MacAddr([0x02, 0xaa, 0, 0, 0, 1]);
/// The router / peer outside, fd00::fe.
fn gw6() -> [u8; 16] {
    fd(0xfe)
}
/// The own stack's IPv6 address.
fn own6() -> [u8; 16] {
    fd(0xc8)
}
const A: GuestId = GuestId(0);
const B: GuestId = GuestId(1);
const C: GuestId = GuestId(2);

/// Two uplinks; guest A (vm1): 192.168.1.1, fd00::1 and the prefix
/// fd00:0:0:1::/64; guest B (vm2): 192.168.1.2 and the same prefix; guest
/// C (vm3): IPv4 only. A's entries are bound to identity 0, B's to 1. The
/// own stack has fd00::c8. Three learned addresses per guest.
fn setup(mode: Mode) -> Engine {
    let mut cfg = Config::with_mode(mode);
    cfg.learn_max = 3;
    cfg.learn_idle_ns = 60 * S;
    let mut e = Engine::new(cfg);
    for k in 0..2 {
        e.add_uplink(UplinkConfig::new(nic(k + 1))).unwrap();
    }
    let host = |ip| IpNet::host(ip);
    e.add_guest_nets(vm(1), &[host(v4(1)), host(a6(fd(1))), prefix()])
        .unwrap();
    e.add_guest_nets(vm(2), &[host(v4(2)), prefix()]).unwrap();
    e.add_guest(vm(3), &[v4(3)]).unwrap();
    e.bind(a6(fd(1)), &[IdentityId(0)]).unwrap();
    e.bind(v4(1), &[IdentityId(0)]).unwrap();
    e.bind(v4(2), &[IdentityId(1)]).unwrap();
    e.bind(prefix(), &[IdentityId(0)]).unwrap();
    e.set_own_stack(IdentityId(0), &[v4(200), a6(own6())])
        .unwrap();
    e
}

/// A frame carrying an NDP message of type `ty` with target `t` and the
/// given link-layer options, behind `exts`; checksum filled in.
#[allow(clippy::too_many_arguments)]
fn nd(
    dst: MacAddr,
    src: MacAddr,
    sip: [u8; 16],
    dip: [u8; 16],
    exts: &[(u8, [u8; 8])],
    ty: u8,
    t: [u8; 16],
    opts: &[(u8, MacAddr)],
) -> Vec<u8> {
    let mut body = [0u8; 80];
    let k = nd_body(&mut body, ty, t, opts);
    let mut f = vec![0u8; 200];
    let n = ipv6_packet(&mut f, dst, src, sip, dip, exts, 58, &body[..k]);
    f.truncate(n);
    f
}

/// A solicitation for `t`, to its solicited-node group.
fn ns(src: MacAddr, sip: [u8; 16], t: [u8; 16], opts: &[(u8, MacAddr)]) -> Vec<u8> {
    let (grp, mac) = solicited_node(t);
    nd(mac, src, sip, grp, &[], 135, t, opts)
}

fn udp6(dst: MacAddr, src: MacAddr, sip: [u8; 16], dip: [u8; 16]) -> Vec<u8> {
    let mut f = vec![0u8; 100];
    let n = ipv6_packet(&mut f, dst, src, sip, dip, &[], 17, &[0; 8]);
    f.truncate(n);
    f
}

fn mac_at(f: &[u8], off: usize) -> MacAddr {
    MacAddr(f[off..off + 6].try_into().unwrap())
}

/// The identity a `Send` rewrote to, and its uplink.
fn rewritten(d: TxDecision) -> (MacAddr, UplinkId) {
    match d {
        TxDecision::Send {
            uplink,
            steering: Steering::Rewritten { mac, .. },
            ..
        } => (mac, uplink),
        other => panic!("not sent rewritten: {other:?}"),
    }
}

/// Identity mode: every NDP message a guest may send leaves with its
/// link-layer options rewritten to the identity its source MAC became,
/// and a valid checksum; each thing a guest may not say is dropped under
/// its own reason.
#[test]
fn guest_ndp_table() {
    let ll_a = link_local(1);
    let ns_opt = [(1, vm(1))];
    struct Case {
        name: &'static str,
        guest: GuestId,
        frame: Vec<u8>,
        /// `Ok(offsets of the options that must now be the identity)`.
        want: Result<&'static [usize], DropReason>,
    }
    let cases = vec![
        Case {
            name: "NS from link-local, source option",
            guest: A,
            frame: ns(vm(1), ll_a, gw6(), &ns_opt),
            want: Ok(&[54 + 24 + 2]),
        },
        Case {
            name: "NA for its configured address",
            guest: A,
            frame: nd(GW, vm(1), fd(1), gw6(), &[], 136, fd(1), &[(2, vm(1))]),
            want: Ok(&[54 + 24 + 2]),
        },
        Case {
            name: "NA for its link-local address, from it",
            guest: A,
            frame: nd(GW, vm(1), ll_a, gw6(), &[], 136, ll_a, &[(2, vm(1))]),
            want: Ok(&[54 + 24 + 2]),
        },
        Case {
            name: "NS behind destination options",
            guest: A,
            frame: {
                let (grp, mac) = solicited_node(gw6());
                nd(
                    mac,
                    vm(1),
                    fd(1),
                    grp,
                    &[EXT_DEST_OPTS],
                    135,
                    gw6(),
                    &ns_opt,
                )
            },
            want: Ok(&[62 + 24 + 2]),
        },
        Case {
            name: "NS with source and target options",
            guest: A,
            frame: ns(vm(1), fd(1), gw6(), &[(1, vm(1)), (2, vm(1))]),
            want: Ok(&[54 + 24 + 2, 54 + 24 + 10]),
        },
        Case {
            name: "router solicitation from ::",
            guest: A,
            frame: nd(
                MacAddr([0x33, 0x33, 0, 0, 0, 2]),
                vm(1),
                [0; 16],
                [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                &[],
                133,
                [0; 16],
                &[],
            ),
            want: Ok(&[]),
        },
        Case {
            name: "DAD for an address in its prefix",
            guest: B,
            frame: ns(vm(2), [0; 16], pre(0x22), &[]),
            want: Ok(&[]),
        },
        Case {
            name: "router advertisement (RA guard)",
            guest: A,
            frame: nd(
                MacAddr([0x33, 0x33, 0, 0, 0, 1]),
                vm(1),
                ll_a,
                [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                &[],
                134,
                [0; 16],
                &ns_opt,
            ),
            want: Err(DropReason::RaGuard),
        },
        Case {
            name: "redirect (RA guard)",
            guest: A,
            frame: nd(GW, vm(1), ll_a, gw6(), &[], 137, gw6(), &[(2, vm(1))]),
            want: Err(DropReason::RaGuard),
        },
        Case {
            name: "NA for the router's address",
            guest: A,
            frame: nd(GW, vm(1), fd(1), gw6(), &[], 136, gw6(), &[(2, vm(1))]),
            want: Err(DropReason::NdTarget),
        },
        Case {
            name: "NA for the own stack's address",
            guest: A,
            frame: nd(GW, vm(1), fd(1), gw6(), &[], 136, own6(), &[(2, vm(1))]),
            want: Err(DropReason::NdTarget),
        },
        Case {
            name: "NS naming another guest's MAC",
            guest: A,
            frame: ns(vm(1), fd(1), gw6(), &[(1, vm(2))]),
            want: Err(DropReason::NdLladdr),
        },
        Case {
            name: "NS with a second, foreign option",
            guest: A,
            frame: ns(vm(1), fd(1), gw6(), &[(1, vm(1)), (2, GW)]),
            want: Err(DropReason::NdLladdr),
        },
        Case {
            name: "NS in a fragment",
            guest: A,
            frame: {
                let (grp, mac) = solicited_node(gw6());
                nd(mac, vm(1), fd(1), grp, &[EXT_FRAGMENT], 135, gw6(), &ns_opt)
            },
            want: Err(DropReason::Ip6ExtHeader),
        },
        Case {
            name: "NS with a zero-length option",
            guest: A,
            frame: {
                let mut f = ns(vm(1), fd(1), gw6(), &ns_opt);
                f[54 + 24 + 1] = 0;
                f
            },
            want: Err(DropReason::NdMalformed),
        },
        Case {
            name: "UDP from outside its prefixes",
            guest: A,
            frame: udp6(
                GW,
                vm(1),
                [0xfd, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 5],
                gw6(),
            ),
            want: Err(DropReason::SpoofedIp6),
        },
        Case {
            name: "UDP from ::",
            guest: A,
            frame: udp6(GW, vm(1), [0; 16], gw6()),
            want: Err(DropReason::SpoofedIp6),
        },
        Case {
            name: "UDP from a multicast source in no prefix",
            guest: A,
            frame: udp6(
                GW,
                vm(1),
                [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                gw6(),
            ),
            want: Err(DropReason::SpoofedIp6),
        },
        Case {
            name: "an IPv4-only guest's link-local traffic",
            guest: C,
            frame: ns(vm(3), link_local(3), gw6(), &[(1, vm(3))]),
            want: Err(DropReason::Denied),
        },
        Case {
            name: "UDP from the own stack's address",
            guest: A,
            frame: udp6(GW, vm(1), own6(), gw6()),
            want: Err(DropReason::SpoofedIp6),
        },
    ];
    let mut e = setup(Mode::Identity);
    for c in cases {
        let mut f = c.frame.clone();
        let d = e.guest_transmit(0, c.guest, &mut f);
        match c.want {
            Ok(opts) => {
                let (mac, u) = rewritten(d);
                assert_eq!(mac_at(&f, 6), mac, "{}: source MAC", c.name);
                assert_eq!(e.holder(IdentityId(0)), Some(u), "{}", c.name);
                for &o in opts {
                    assert_eq!(mac_at(&f, o), mac, "{}: option at {o}", c.name);
                }
                assert_eq!(icmp6_checksum_ok(&f), Some(true), "{}: checksum", c.name);
                // Only the MACs changed.
                let mut back = f.clone();
                back[6..12].copy_from_slice(&c.frame[6..12]);
                for &o in opts {
                    back[o..o + 6].copy_from_slice(&c.frame[o..o + 6]);
                }
                let ck = icmp6_at(&c.frame);
                back[ck..ck + 2].copy_from_slice(&c.frame[ck..ck + 2]);
                assert_eq!(back, c.frame, "{}: more than the MACs changed", c.name);
            }
            Err(r) => {
                assert_eq!(d, TxDecision::Drop(r), "{}", c.name);
                assert_eq!(f, c.frame, "{}: a dropped frame was edited", c.name);
            }
        }
        e.check_invariants().unwrap();
    }
    let ca = e.guest_counters(A).unwrap();
    for (r, n) in [
        (DropReason::RaGuard, 2),
        (DropReason::NdTarget, 2),
        (DropReason::NdLladdr, 2),
        (DropReason::Ip6ExtHeader, 1),
        (DropReason::NdMalformed, 1),
        (DropReason::SpoofedIp6, 4),
    ] {
        assert_eq!(ca.tx_drops.get(r), n, "{r:?}");
    }
    assert_eq!(
        e.guest_counters(C)
            .unwrap()
            .tx_drops
            .get(DropReason::Denied),
        1
    );
    // What was claimed is learned: A's link-local, B's DAD target.
    let learned: Vec<_> = e.learned(A).collect();
    assert_eq!(learned, [Ipv6Addr::from(ll_a)]);
    assert_eq!(e.guest_of_ip(a6(pre(0x22))), Some(B));
    assert_eq!(e.binding(a6(ll_a)), Some(IdentitySet::one(IdentityId(0))));
}

/// Offset of the ICMPv6 checksum in a frame.
fn icmp6_at(f: &[u8]) -> usize {
    crate::wire::parse(f).unwrap().icmp6().unwrap().at + 2
}

/// Literal mode checks the same things but rewrites nothing: the frame
/// leaves with the guest's own MAC everywhere.
#[test]
fn literal_mode_checks_ndp_and_leaves_it_alone() {
    let mut e = setup(Mode::Literal);
    let mut f = ns(vm(1), link_local(1), gw6(), &[(1, vm(1))]);
    let before = f.clone();
    let d = e.guest_transmit(0, A, &mut f);
    assert!(
        matches!(
            d,
            TxDecision::Send {
                steering: Steering::WriteMacThenRestore { mac, .. },
                ..
            } if mac == vm(1)
        ),
        "{d:?}"
    );
    assert_eq!(f, before);
    let mut f = ns(vm(1), fd(1), gw6(), &[(1, vm(2))]);
    assert_eq!(
        e.guest_transmit(0, A, &mut f),
        TxDecision::Drop(DropReason::NdLladdr)
    );
    let mut f = nd(GW, vm(1), fd(1), gw6(), &[], 134, [0; 16], &[]);
    assert_eq!(
        e.guest_transmit(0, A, &mut f),
        TxDecision::Drop(DropReason::RaGuard)
    );
}

/// Addresses in a shared prefix and link-local ones belong to the guest
/// that claims them first (DAD or first use); another guest claiming one
/// is refused and counted; the learned count is bounded, and an address
/// left idle long enough makes room.
#[test]
fn learning_claims_bounds_and_forgets() {
    let mut e = setup(Mode::Identity);
    let send = |e: &mut Engine, now: u64, g: GuestId, mac: MacAddr, src: [u8; 16]| {
        let mut f = udp6(GW, mac, src, gw6());
        e.guest_transmit(now, g, &mut f)
    };
    // A uses pre(1) first; B may not, neither by use nor by DAD, nor
    // advertise it.
    rewritten(send(&mut e, 0, A, vm(1), pre(1)));
    assert_eq!(
        send(&mut e, 0, B, vm(2), pre(1)),
        TxDecision::Drop(DropReason::Ip6Taken)
    );
    let mut dad = ns(vm(2), [0; 16], pre(1), &[]);
    assert_eq!(
        e.guest_transmit(0, B, &mut dad),
        TxDecision::Drop(DropReason::Ip6Taken)
    );
    let mut na = nd(
        GW,
        vm(2),
        link_local(2),
        gw6(),
        &[],
        136,
        pre(1),
        &[(2, vm(2))],
    );
    assert_eq!(
        e.guest_transmit(0, B, &mut na),
        TxDecision::Drop(DropReason::NdTarget)
    );
    // B's link-local was learned by the NA's source check before the
    // target was refused; link-local addresses follow the union of the
    // guest's IPv6 bindings (B: the prefix, identity 0).
    assert_eq!(e.guest_of_ip(a6(link_local(2))), Some(B));
    // A's configured IPv4 and IPv6 addresses are not claimable by B either.
    assert_eq!(
        send(&mut e, 0, B, vm(2), fd(1)),
        TxDecision::Drop(DropReason::SpoofedIp6)
    );
    // A learns two more (3 in all), then is full.
    rewritten(send(&mut e, S, A, vm(1), pre(2)));
    rewritten(send(&mut e, 2 * S, A, vm(1), link_local(1)));
    assert_eq!(
        send(&mut e, 3 * S, A, vm(1), pre(3)),
        TxDecision::Drop(DropReason::Ip6LearnLimit)
    );
    assert_eq!(e.learned(A).count(), 3);
    // Still in use, pre(1) stays; once pre(2) has been idle 60 s it makes
    // room for pre(3), and is B's to claim then.
    rewritten(send(&mut e, 50 * S, A, vm(1), pre(1)));
    rewritten(send(&mut e, 55 * S, A, vm(1), link_local(1)));
    rewritten(send(&mut e, 62 * S, A, vm(1), pre(3)));
    let mut got: Vec<_> = e.learned(A).collect();
    got.sort();
    let mut want: Vec<_> = [pre(1), pre(3), link_local(1)].map(Ipv6Addr::from).to_vec();
    want.sort();
    assert_eq!(got, want);
    rewritten(send(&mut e, 62 * S, B, vm(2), pre(2)));
    let ca = e.guest_counters(A).unwrap();
    assert_eq!(ca.tx_drops.get(DropReason::Ip6LearnLimit), 1);
    let cb = e.guest_counters(B).unwrap();
    assert_eq!(cb.tx_drops.get(DropReason::Ip6Taken), 2);
    e.check_invariants().unwrap();
    // Removing A frees everything it learned.
    e.remove_guest(A).unwrap();
    e.check_invariants().unwrap();
    rewritten(send(&mut e, 63 * S, B, vm(2), pre(1)));
    e.check_invariants().unwrap();
}

/// From the outside: a solicitation for a guest's address reaches that
/// guest alone (counted), for the own stack's the own stack, for nobody
/// known every IPv6 guest; unicast to an identity reaches the owner of
/// the address, learned or configured, with its MAC put back in the
/// Ethernet header and in a link-layer option naming the identity, and
/// the checksum fixed.
#[test]
fn receive_ndp_table() {
    for mode in [Mode::Identity, Mode::Literal] {
        let mut e = setup(mode);
        // A learns pre(1) and its link-local.
        let mut f = udp6(GW, vm(1), pre(1), gw6());
        e.guest_transmit(0, A, &mut f);
        let mut f = ns(vm(1), link_local(1), gw6(), &[(1, vm(1))]);
        e.guest_transmit(0, A, &mut f);
        let id0 = nic(1);
        let both = {
            let mut s = GuestSet::EMPTY;
            s.insert(A);
            s.insert(B);
            s
        };
        let dst_a = if mode == Mode::Identity { id0 } else { vm(1) };
        let cases: Vec<(&str, Vec<u8>, RxDecision)> = vec![
            (
                "NS for A's learned address",
                ns(GW, gw6(), pre(1), &[(1, GW)]),
                RxDecision::ToGuest { guest: A },
            ),
            (
                "NS for A's configured address",
                ns(GW, gw6(), fd(1), &[(1, GW)]),
                RxDecision::ToGuest { guest: A },
            ),
            (
                "NS for the own stack",
                ns(GW, gw6(), own6(), &[(1, GW)]),
                RxDecision::ToOwnStack,
            ),
            (
                "NS for an address nobody here has claimed",
                ns(GW, gw6(), pre(9), &[(1, GW)]),
                RxDecision::Flood { guests: both },
            ),
            (
                "DAD from outside for A's address",
                ns(GW, [0; 16], pre(1), &[]),
                RxDecision::ToGuest { guest: A },
            ),
            (
                "UDP to A's learned address",
                udp6(dst_a, GW, gw6(), pre(1)),
                RxDecision::ToGuest { guest: A },
            ),
            (
                "UDP to A's link-local address",
                udp6(dst_a, GW, gw6(), link_local(1)),
                RxDecision::ToGuest { guest: A },
            ),
            (
                "NA to A",
                nd(dst_a, GW, gw6(), pre(1), &[], 136, gw6(), &[(2, GW)]),
                RxDecision::ToGuest { guest: A },
            ),
            (
                "NS with a malformed option",
                {
                    let mut f = ns(GW, gw6(), pre(1), &[(1, GW)]);
                    f[54 + 24 + 1] = 9;
                    f
                },
                RxDecision::Drop(DropReason::NdMalformed),
            ),
        ];
        for (name, frame, want) in &cases {
            let mut f = frame.clone();
            let d = e.uplink_receive(0, UplinkId(0), &mut f);
            assert_eq!(d, *want, "{mode:?}: {name}");
            if let RxDecision::ToGuest { .. } = d {
                if f[0] & 1 == 0 {
                    assert_eq!(mac_at(&f, 0), vm(1), "{mode:?}: {name}");
                }
                assert_ne!(icmp6_checksum_ok(&f), Some(false), "{mode:?}: {name}");
            }
            e.check_invariants().unwrap();
        }
        assert_eq!(e.counters().rx_nd_directed, 3, "{mode:?}");
    }
    // Identity mode: an option naming the identity becomes the guest's MAC.
    let mut e = setup(Mode::Identity);
    let mut f = nd(
        nic(1),
        GW,
        gw6(),
        fd(1),
        &[],
        135,
        fd(1),
        &[(1, GW), (2, nic(1))],
    );
    assert_eq!(
        e.uplink_receive(0, UplinkId(0), &mut f),
        RxDecision::ToGuest { guest: A }
    );
    assert_eq!(mac_at(&f, 0), vm(1));
    assert_eq!(mac_at(&f, 54 + 24 + 2), GW);
    assert_eq!(mac_at(&f, 54 + 24 + 10), vm(1));
    assert_eq!(icmp6_checksum_ok(&f), Some(true));
}

/// A guest's NDP to another guest reached at an identity is switched
/// locally with the guest's MAC put back; its solicitations are flooded
/// to the other guests with the identity as the source option, which is
/// how local guests learn each other (as with ARP).
#[test]
fn guest_to_guest_ndp_stays_local() {
    let mut e = setup(Mode::Identity);
    let mut f = udp6(GW, vm(2), pre(2), gw6());
    rewritten(e.guest_transmit(0, B, &mut f));
    let mut f = ns(vm(1), fd(1), pre(2), &[(1, vm(1))]);
    let d = e.guest_transmit(0, A, &mut f);
    assert!(
        matches!(
            d,
            TxDecision::Send {
                flood_local: true,
                ..
            }
        ),
        "{d:?}"
    );
    assert_eq!(mac_at(&f, 54 + 24 + 2), nic(1));
    // B answers to the identity it was told; A gets it with its own MAC.
    let mut na = nd(
        nic(1),
        vm(2),
        pre(2),
        fd(1),
        &[],
        136,
        pre(2),
        &[(2, vm(2))],
    );
    assert_eq!(
        e.guest_transmit(0, B, &mut na),
        TxDecision::SwitchLocal { guest: A }
    );
    assert_eq!(mac_at(&na, 0), vm(1));
    assert_eq!(icmp6_checksum_ok(&na), Some(true));
}

/// MLD reports, from `::` or link-local and behind their hop-by-hop
/// header, leave through the uplink that takes in multicast (uplink 0
/// here), whatever identities the guest is bound to: a snooping switch
/// sends a group only where its reports came from.
#[test]
fn mld_reports_leave_where_multicast_is_taken_in() {
    for mode in [Mode::Identity, Mode::Literal] {
        let mut e = setup(mode);
        e.bind(prefix(), &[IdentityId(1)]).unwrap();
        e.bind(a6(fd(1)), &[IdentityId(1)]).unwrap();
        for src in [[0; 16], link_local(1)] {
            let mut body = [0u8; 28];
            mld2_report_body(&mut body, solicited_node(fd(1)).0);
            let mut f = vec![0u8; 120];
            let mld = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x16];
            let mac = MacAddr([0x33, 0x33, 0, 0, 0, 0x16]);
            let n = ipv6_packet(&mut f, mac, vm(1), src, mld, &[EXT_HOP_BY_HOP], 58, &body);
            let d = e.guest_transmit(0, A, &mut f[..n]);
            match d {
                TxDecision::Send {
                    uplink, steering, ..
                } => {
                    assert_eq!(uplink, UplinkId(0), "{mode:?}");
                    if let Steering::Rewritten { mac, .. } = steering {
                        assert_eq!(mac, nic(1));
                    }
                }
                other => panic!("{mode:?}: {other:?}"),
            }
        }
        // Data from the link-local address follows the binding.
        let mut f = udp6(GW, vm(1), link_local(1), gw6());
        let d = e.guest_transmit(0, A, &mut f);
        assert!(
            matches!(
                d,
                TxDecision::Send {
                    uplink: UplinkId(1),
                    ..
                }
            ),
            "{mode:?}: {d:?}"
        );
        assert_eq!(e.counters().mld_out, 2);
    }
}

/// A guest whose IPv6 entries are all denied gets no IPv6 in or out:
/// not from its configured, learned or link-local addresses, not at them,
/// and no IPv6 multicast from the outside; its IPv4 is unaffected.
#[test]
fn a_denied_guest_gets_no_ipv6() {
    for mode in [Mode::Identity, Mode::Literal] {
        let mut e = setup(mode);
        let mut f = udp6(GW, vm(1), pre(1), gw6());
        rewritten_or_literal(e.guest_transmit(0, A, &mut f));
        e.bind(a6(fd(1)), &[]).unwrap();
        e.bind(prefix(), &[]).unwrap(); // B's too: the prefix is shared
        for src in [fd(1), pre(1), link_local(1)] {
            let mut f = udp6(GW, vm(1), src, gw6());
            assert_eq!(
                e.guest_transmit(0, A, &mut f),
                TxDecision::Drop(DropReason::Denied),
                "{mode:?}"
            );
        }
        let mut f = ns(vm(1), [0; 16], pre(5), &[]);
        assert_eq!(
            e.guest_transmit(0, A, &mut f),
            TxDecision::Drop(DropReason::Denied)
        );
        let dst = if mode == Mode::Identity {
            nic(1)
        } else {
            vm(1)
        };
        for to in [fd(1), pre(1)] {
            let mut f = udp6(dst, GW, gw6(), to);
            assert_eq!(
                e.uplink_receive(0, UplinkId(0), &mut f),
                RxDecision::Drop(DropReason::Denied),
                "{mode:?}"
            );
        }
        let mut f = ns(GW, gw6(), pre(1), &[(1, GW)]);
        assert_eq!(
            e.uplink_receive(0, UplinkId(0), &mut f),
            RxDecision::Drop(DropReason::Denied),
            "{mode:?}"
        );
        let mut f = ns(GW, gw6(), pre(9), &[(1, GW)]);
        assert_eq!(
            e.uplink_receive(0, UplinkId(0), &mut f),
            RxDecision::Flood {
                guests: GuestSet::EMPTY
            },
            "{mode:?}"
        );
        // IPv4 still works.
        let mut f = vec![0u8; 60];
        crate::testkit::ipv4(&mut f, GW, vm(1), [192, 168, 1, 1], [192, 168, 1, 254]);
        assert!(matches!(
            e.guest_transmit(0, A, &mut f),
            TxDecision::Send { .. }
        ));
        e.check_invariants().unwrap();
    }
}

fn rewritten_or_literal(d: TxDecision) {
    assert!(matches!(d, TxDecision::Send { .. }), "{d:?}");
}

/// Prefixes are configured and bound like addresses: `bind` on a prefix
/// binds it for every guest configured with it; IPv4 prefixes and
/// duplicate entries are refused; an address may not be both a guest's
/// and inside nothing else's rules.
#[test]
fn prefixes_as_guest_entries() {
    let mut e = setup(Mode::Identity);
    assert_eq!(
        e.guest_binding(A, prefix()),
        Some(IdentitySet::one(IdentityId(0)))
    );
    e.bind(prefix(), &[IdentityId(1)]).unwrap();
    for g in [A, B] {
        assert_eq!(
            e.guest_binding(g, prefix()),
            Some(IdentitySet::one(IdentityId(1)))
        );
    }
    e.bind_auto(prefix()).unwrap();
    e.check_invariants().unwrap();
    let other: IpNet = "fd00:0:0:2::/64".parse().unwrap();
    assert_eq!(e.bind(other, &[]), Err(Error::UnknownIp));
    let v4net: IpNet = "10.0.0.0/24".parse().unwrap();
    assert_eq!(e.add_guest_nets(vm(9), &[v4net]), Err(Error::InvalidIp));
    assert_eq!(
        e.add_guest_nets(vm(9), &[prefix(), prefix()]),
        Err(Error::DuplicateIp)
    );
    assert_eq!(
        e.add_guest_nets(vm(9), &[IpNet::host(a6(fd(1)))]),
        Err(Error::DuplicateIp)
    );
    // A learned address cannot be configured for a new guest either.
    let mut f = udp6(GW, vm(1), pre(1), gw6());
    e.guest_transmit(0, A, &mut f);
    assert_eq!(
        e.add_guest_nets(vm(9), &[IpNet::host(a6(pre(1)))]),
        Err(Error::DuplicateIp)
    );
    e.check_invariants().unwrap();
}

#[test]
fn ip_nets_parse_and_print() {
    for (text, ok) in [
        ("10.0.0.1", Some("10.0.0.1")),
        ("fd00::1", Some("fd00::1")),
        ("[fd00::1]", Some("fd00::1")),
        ("fd00:0:0:1::/64", Some("fd00:0:0:1::/64")),
        ("fd00::1/128", Some("fd00::1")),
        ("10.0.0.0/24", Some("10.0.0.0/24")),
        ("fd00::1/64", None),
        ("fd00::/129", None),
        ("fd00::/x", None),
        ("nonsense", None),
    ] {
        let got = text.parse::<IpNet>().ok().map(|n| format!("{n}"));
        assert_eq!(got.as_deref(), ok, "{text}");
    }
    assert_eq!("fd00::1/64".parse::<IpNet>(), Err(IpNetError::HostBits));
    let p = prefix();
    assert!(p.contains(a6(pre(77))) && !p.contains(a6(fd(1))) && !p.contains(v4(1)));
}

/// The own stack answers guest A's solicitation at the identity A's NS
/// named (identity 0, which the own stack sends under too): the NA is
/// switched to A with A's MAC as destination, while its target option
/// keeps naming the own stack, checksum valid. Nothing leaves.
#[test]
fn own_stack_na_to_a_guest_at_its_identity_is_switched_locally() {
    let mut e = setup(Mode::Identity);
    let mut na = nd(
        nic(1),
        nic(1),
        own6(),
        fd(1),
        &[],
        136,
        own6(),
        &[(2, nic(1))],
    );
    assert_eq!(
        e.own_transmit(0, &mut na),
        OwnTxDecision::SwitchLocal { guest: A }
    );
    assert_eq!(mac_at(&na, 0), vm(1), "destination MAC put back");
    assert_eq!(mac_at(&na, 80), nic(1), "the option names the own stack");
    assert_eq!(icmp6_checksum_ok(&na), Some(true));
    let out: u64 = (0..2)
        .map(|u| e.uplink_counters(UplinkId(u)).unwrap().tx_frames)
        .sum();
    assert_eq!(out, 0, "nothing left through an uplink");
}
