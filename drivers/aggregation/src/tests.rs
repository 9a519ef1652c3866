//! Table tests: the 11 claim steps, the worked example \[0049\]–\[0052\], and
//! the receive, failover and binding paths; property tests over random
//! operation sequences.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::testkit::{self, Harness, Op};
use crate::*;

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

fn nic(k: u8) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0, k])
}
fn vm(k: u8) -> MacAddr {
    MacAddr([0x52, 0x54, 0, 0, 0, k])
}
fn ip(k: u8) -> [u8; 4] {
    [192, 168, 1, k]
}
fn ipa(k: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(ip(k)))
}
const GW: MacAddr = MacAddr([0x02, 0xaa, 0, 0, 0, 1]);
const GW_IP: [u8; 4] = [192, 168, 1, 254];
const OWN_IP: [u8; 4] = [192, 168, 1, 200];

/// The worked example's setup (\[0049\]): NIC1–3 (uplinks 0–2, identities
/// mac1–mac3), VM1–3 (guests 0–2) with ipK bound to macK.
fn example(mode: Mode, caps: [u32; 3]) -> Engine {
    let mut cfg = Config::with_mode(mode);
    cfg.min_dwell_ns = 30 * S;
    let mut e = Engine::new(cfg);
    for k in 0..3 {
        let mut u = UplinkConfig::new(nic(k + 1));
        u.capacity_mbps = caps[k as usize];
        e.add_uplink(u).unwrap();
    }
    for k in 0..3 {
        e.add_guest(vm(k + 1), &[ipa(k + 1)]).unwrap();
        e.bind(ipa(k + 1), &[IdentityId(k)]).unwrap();
    }
    e.set_own_stack(IdentityId(0), &[IpAddr::V4(Ipv4Addr::from(OWN_IP))])
        .unwrap();
    e
}

fn guest_frame(g: u8, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(60)];
    testkit::ipv4(&mut f, GW, vm(g), ip(g), GW_IP);
    f
}

fn send(e: &mut Engine, now: u64, g: u8, len: usize) -> TxDecision {
    let mut f = guest_frame(g, len);
    e.guest_transmit(now, GuestId(g as u16 - 1), &mut f)
}

fn sent_on(d: TxDecision) -> UplinkId {
    match d {
        TxDecision::Send { uplink, .. } => uplink,
        other => panic!("expected Send, got {other:?}"),
    }
}

/// Push `mbps` of traffic from guest `g` for `secs` seconds, ticking every
/// 10 ms; returns all moves the ticks asked for.
fn drive(e: &mut Engine, now: &mut u64, load: &[(u8, u32)], secs: u64) -> Vec<Move> {
    drive_with(e, now, load, secs, 1500)
}

/// [`drive`] with frames of `chunk` bytes: 60 000-byte buffers (TSO-sized)
/// keep multi-gigabit loads quick in a debug build.
fn drive_with(
    e: &mut Engine,
    now: &mut u64,
    load: &[(u8, u32)],
    secs: u64,
    chunk: u64,
) -> Vec<Move> {
    let mut moves = vec![];
    let mut buf = vec![0u8; chunk as usize];
    for _ in 0..secs * 100 {
        for &(g, mbps) in load {
            // bytes per 10 ms = mbps × 10^6 / 8 / 100
            let mut left = mbps as u64 * 1250;
            while left > 0 {
                let n = left.min(chunk) as usize;
                let f = &mut buf[..n.max(60)];
                testkit::ipv4(f, GW, vm(g), ip(g), GW_IP);
                e.guest_transmit(*now, GuestId(g as u16 - 1), f);
                left -= n as u64;
            }
        }
        *now += 10 * MS;
        moves.extend_from_slice(e.tick(*now).as_slice());
        e.check_invariants().unwrap();
    }
    moves
}

// ---------------------------------------------------------------------------
// The claim, step by step ([0006]–[0017]).
// ---------------------------------------------------------------------------

#[test]
fn claim_steps_1_2_own_and_guest_frames_take_different_paths() {
    let mut e = example(Mode::Identity, [1000; 3]);
    // A frame from a guest is steered by its binding (step 7 onwards)...
    assert_eq!(sent_on(send(&mut e, 0, 2, 100)), UplinkId(1));
    // ...a frame from the own stack (source = an identity) by load (step 3).
    let mut f = vec![0u8; 60];
    testkit::ipv4(&mut f, GW, nic(1), OWN_IP, GW_IP);
    assert!(matches!(
        e.own_transmit(0, &mut f),
        OwnTxDecision::Send { .. }
    ));
    // A guest frame handed to the own path has no identity source: refused.
    let mut g = guest_frame(1, 60);
    assert_eq!(
        e.own_transmit(0, &mut g),
        OwnTxDecision::Drop(DropReason::SpoofedMac)
    );
}

/// In identity mode the own stack knows guests at the identities their
/// ARP replies named, yet its frames to them must not leave: one to an
/// identity for a guest's IP is switched to that guest with the guest's
/// MAC put back, as a frame from outside would be, also when the own
/// stack sends under that same identity. One to an identity for an IP
/// that is no guest's still goes out.
#[test]
fn own_frames_to_a_guest_at_its_identity_are_switched_locally() {
    let mut e = example(Mode::Identity, [1000; 3]);
    // The own stack (mac1) answers VM2's ARP request, which named mac2.
    let mut f = vec![0u8; 60];
    testkit::arp(&mut f, 2, nic(2), nic(1), OWN_IP, nic(2), ip(2));
    assert_eq!(
        e.own_transmit(0, &mut f),
        OwnTxDecision::SwitchLocal { guest: GuestId(1) }
    );
    assert_eq!(&f[0..6], &vm(2).0, "destination MAC put back");
    assert_eq!(&f[32..38], &vm(2).0, "ARP target MAC put back");
    assert_eq!(
        (&f[6..12], &f[22..28]),
        (&nic(1).0[..], &nic(1).0[..]),
        "the own stack's MAC stays"
    );
    // A ping reply to VM1 at mac1, the own stack's identity too.
    let mut f = vec![0u8; 60];
    testkit::ipv4(&mut f, nic(1), nic(1), OWN_IP, ip(1));
    assert_eq!(
        e.own_transmit(0, &mut f),
        OwnTxDecision::SwitchLocal { guest: GuestId(0) }
    );
    assert_eq!(&f[0..6], &vm(1).0);
    for g in 0..2 {
        let c = e.guest_counters(GuestId(g)).unwrap();
        assert_eq!((c.rx_frames, c.rx_bytes), (1, 60), "guest {g}");
    }
    let out: u64 = (0..3)
        .map(|u| e.uplink_counters(UplinkId(u)).unwrap().tx_frames)
        .sum();
    assert_eq!(out, 0, "nothing left through an uplink");
    // The control: an identity, but an IP nobody here has.
    let mut f = vec![0u8; 60];
    testkit::ipv4(&mut f, nic(2), nic(1), OWN_IP, GW_IP);
    assert!(matches!(
        e.own_transmit(0, &mut f),
        OwnTxDecision::Send { .. }
    ));
    assert_eq!(&f[0..6], &nic(2).0, "sent unchanged");
}

#[test]
fn claim_steps_3_to_6_own_frame_takes_least_loaded_nic_swapping_macs() {
    let mut e = example(Mode::Identity, [1000; 3]);
    // NIC1 (holding the own stack's mac1) is busy, NIC3 is least busy.
    let mut now = 0;
    drive(&mut e, &mut now, &[(1, 500), (2, 300), (3, 100)], 1);
    let mut f = vec![0u8; 60];
    testkit::ipv4(&mut f, GW, nic(1), OWN_IP, GW_IP);
    let OwnTxDecision::Send { uplink, moves } = e.own_transmit(now, &mut f) else {
        panic!()
    };
    // Step 3: least traffic = NIC3. Step 5: NIC3 and NIC1 swap mac1/mac3.
    assert_eq!(uplink, UplinkId(2));
    let m = moves.as_slice();
    assert_eq!(m.len(), 2);
    assert_eq!(
        (m[0].identity, m[0].from, m[0].to),
        (IdentityId(0), UplinkId(0), UplinkId(2))
    );
    assert_eq!(
        (m[1].identity, m[1].from, m[1].to),
        (IdentityId(2), UplinkId(2), UplinkId(0))
    );
    // Step 6: the assigned NIC now holds the frame's source MAC.
    assert_eq!(e.holder(IdentityId(0)), Some(UplinkId(2)));
    assert_eq!(&f[6..12], &nic(1).0, "own frames are sent unchanged");
    // Step 4: next own frame, NIC3 already holds mac1: no swap needed.
    let OwnTxDecision::Send { uplink, moves } = e.own_transmit(now, &mut f) else {
        panic!()
    };
    assert_eq!(uplink, UplinkId(2));
    assert!(moves.is_empty());
    assert_eq!(e.counters().own_tx_swaps, 1);
}

#[test]
fn claim_step_4_holder_is_least_loaded_sends_directly() {
    let mut e = example(Mode::Identity, [1000; 3]);
    let mut now = 0;
    drive(&mut e, &mut now, &[(2, 300), (3, 300)], 1);
    let mut f = vec![0u8; 60];
    testkit::ipv4(&mut f, GW, nic(1), OWN_IP, GW_IP);
    assert_eq!(
        e.own_transmit(now, &mut f),
        OwnTxDecision::Send {
            uplink: UplinkId(0),
            moves: Moves::NONE
        }
    );
}

#[test]
fn claim_step_5_swap_respects_pinned_and_exclusive() {
    let mut e = example(Mode::Identity, [1000; 3]);
    let mut now = 0;
    drive(&mut e, &mut now, &[(1, 500)], 1);
    e.pin(IdentityId(0)).unwrap();
    let mut f = vec![0u8; 60];
    testkit::ipv4(&mut f, GW, nic(1), OWN_IP, GW_IP);
    // mac1 pinned: the own frame stays on NIC1 however busy it is.
    let OwnTxDecision::Send { uplink, moves } = e.own_transmit(now, &mut f) else {
        panic!()
    };
    assert_eq!((uplink, moves.len()), (UplinkId(0), 0));
    e.unpin(IdentityId(0)).unwrap();
    e.set_exclusive(UplinkId(1), true).unwrap();
    e.set_exclusive(UplinkId(2), true).unwrap();
    let OwnTxDecision::Send { uplink, moves } = e.own_transmit(now, &mut f) else {
        panic!()
    };
    assert_eq!((uplink, moves.len()), (UplinkId(0), 0));
    // The control: with NIC3 no longer exclusive the same frame does move,
    // so it was the pin and the exclusive flags that kept it on NIC1.
    e.set_exclusive(UplinkId(2), false).unwrap();
    let OwnTxDecision::Send { uplink, moves } = e.own_transmit(now, &mut f) else {
        panic!()
    };
    assert_eq!((uplink, moves.len()), (UplinkId(2), 2));
}

#[test]
fn claim_step_7_guest_nic_is_assigned_by_source_ip() {
    let mut e = example(Mode::Identity, [1000; 3]);
    for g in 1..=3 {
        assert_eq!(sent_on(send(&mut e, 0, g, 100)), UplinkId(g - 1));
    }
}

#[test]
fn claim_steps_8_to_10_literal_mode_writes_then_restores() {
    let mut e = example(Mode::Literal, [1000; 3]);
    let mut f = guest_frame(2, 100);
    let d = e.guest_transmit(0, GuestId(1), &mut f);
    // Step 8: NIC2's MAC is set to VM2's; step 9: send; step 10: restore mac2.
    assert_eq!(
        d,
        TxDecision::Send {
            uplink: UplinkId(1),
            steering: Steering::WriteMacThenRestore {
                mac: vm(2),
                restore: nic(2)
            },
            flood_local: false
        }
    );
    assert_eq!(&f[6..12], &vm(2).0, "literal mode leaves the frame alone");
    assert_eq!(e.uplink_counters(UplinkId(1)).unwrap().mac_writes, 2);
}

#[test]
fn claim_steps_8_to_10_identity_mode_rewrites_instead() {
    let mut e = example(Mode::Identity, [1000; 3]);
    let mut f = guest_frame(2, 100);
    let d = e.guest_transmit(0, GuestId(1), &mut f);
    assert_eq!(
        d,
        TxDecision::Send {
            uplink: UplinkId(1),
            steering: Steering::Rewritten {
                identity: IdentityId(1),
                mac: nic(2)
            },
            flood_local: false
        }
    );
    assert_eq!(&f[6..12], &nic(2).0);
    assert_eq!(e.uplink_counters(UplinkId(1)).unwrap().mac_writes, 0);
}

#[test]
fn claim_step_11_decisions_leave_consistent_state() {
    let mut e = example(Mode::Identity, [1000; 3]);
    for g in 1..=3 {
        send(&mut e, 0, g, 1500);
        e.check_invariants().unwrap();
    }
    let c = e.guest_counters(GuestId(0)).unwrap();
    assert_eq!(
        (c.tx_frames, c.tx_bytes, c.tx_frames_per_uplink[0]),
        (1, 1500, 1)
    );
}

/// The claim as one table: each of the 11 steps with the observable fact
/// that shows the engine does it. (The tests above exercise each step in
/// more depth.)
#[test]
fn claim_steps_table() {
    fn own(e: &mut Engine, now: u64) -> OwnTxDecision {
        let mut f = vec![0u8; 60];
        testkit::ipv4(&mut f, GW, nic(1), OWN_IP, GW_IP);
        e.own_transmit(now, &mut f)
    }
    /// NIC1 (holding the own stack's mac1) busy, NIC3 idle.
    fn busy() -> (Engine, u64) {
        let mut e = example(Mode::Literal, [1000; 3]);
        let mut now = 0;
        drive(&mut e, &mut now, &[(1, 500), (2, 300)], 1);
        (e, now)
    }
    type Step = (u8, &'static str, fn() -> bool);
    let steps: [Step; 11] = [
        (
            1,
            "the domain takes a packet: decisions are made for own and guest frames",
            || {
                let mut e = example(Mode::Literal, [1000; 3]);
                matches!(send(&mut e, 0, 1, 100), TxDecision::Send { .. })
            },
        ),
        (
            2,
            "own packets go to step 3, guest packets to step 7",
            || {
                let mut e = example(Mode::Literal, [1000; 3]);
                let mut g = guest_frame(1, 60);
                e.own_transmit(0, &mut g) == OwnTxDecision::Drop(DropReason::SpoofedMac)
            },
        ),
        (
            3,
            "own packet: the NIC with the least traffic is assigned",
            || {
                let (mut e, now) = busy();
                matches!(
                    own(&mut e, now),
                    OwnTxDecision::Send {
                        uplink: UplinkId(2),
                        ..
                    }
                )
            },
        ),
        (
            4,
            "assigned NIC holds the source MAC: sent directly",
            || {
                let mut e = example(Mode::Literal, [1000; 3]);
                own(&mut e, 0)
                    == OwnTxDecision::Send {
                        uplink: UplinkId(0),
                        moves: Moves::NONE,
                    }
            },
        ),
        (
            5,
            "otherwise the holder and the assigned NIC swap MACs",
            || {
                let (mut e, now) = busy();
                let OwnTxDecision::Send { moves, .. } = own(&mut e, now) else {
                    return false;
                };
                let m = moves.as_slice();
                m.len() == 2 && m[0].to == UplinkId(2) && m[1].to == UplinkId(0)
            },
        ),
        (
            6,
            "the packet leaves through the assigned NIC, which now holds its MAC",
            || {
                let (mut e, now) = busy();
                let OwnTxDecision::Send { uplink, .. } = own(&mut e, now) else {
                    return false;
                };
                e.holder(IdentityId(0)) == Some(uplink)
            },
        ),
        (
            7,
            "guest packet: the NIC is assigned by the source IP's binding",
            || {
                let mut e = example(Mode::Literal, [1000; 3]);
                (1..=3).all(|g| matches!(send(&mut e, 0, g, 100), TxDecision::Send { uplink, .. } if uplink == UplinkId(g - 1)))
            },
        ),
        (
            8,
            "the assigned NIC's MAC is set to the packet's source MAC",
            || {
                let mut e = example(Mode::Literal, [1000; 3]);
                matches!(send(&mut e, 0, 2, 100), TxDecision::Send { steering: Steering::WriteMacThenRestore { mac, .. }, .. } if mac == vm(2))
            },
        ),
        (9, "the packet is sent through the assigned NIC", || {
            let mut e = example(Mode::Literal, [1000; 3]);
            send(&mut e, 0, 2, 100);
            e.uplink_counters(UplinkId(1)).unwrap().tx_frames == 1
        }),
        (10, "the assigned NIC's MAC is restored", || {
            let mut e = example(Mode::Literal, [1000; 3]);
            matches!(send(&mut e, 0, 2, 100), TxDecision::Send { steering: Steering::WriteMacThenRestore { restore, .. }, .. } if restore == nic(2))
                && e.uplink_mac(UplinkId(1)) == Some(nic(2))
        }),
        (
            11,
            "end: nothing left pending, the model consistent",
            || {
                let (mut e, now) = busy();
                own(&mut e, now);
                e.check_invariants().is_ok()
            },
        ),
    ];
    for (n, what, check) in steps {
        assert!(check(), "claim step {n}: {what}");
    }
}

// ---------------------------------------------------------------------------
// The worked example ([0048]–[0052]).
// ---------------------------------------------------------------------------

#[test]
fn example_0049_each_vm_uses_its_own_nic() {
    let mut e = example(Mode::Identity, [1000; 3]);
    let mut now = 0;
    let moves = drive(&mut e, &mut now, &[(1, 300), (2, 300), (3, 300)], 3);
    assert!(moves.is_empty());
    for g in 0..3u16 {
        let c = e.guest_counters(GuestId(g)).unwrap();
        assert_eq!(c.tx_frames_per_uplink[g as usize], c.tx_frames);
    }
}

#[test]
fn example_0050_vm1_surge_moves_mac1_to_nic2() {
    // A swap with equal NICs only trades places, so the engine swaps when
    // that lowers the busiest NIC: here NIC2 is a 10 GbE beside 1 GbE NIC1.
    let mut e = example(Mode::Identity, [1000, 10_000, 1000]);
    let mut now = 0;
    let moves = drive(&mut e, &mut now, &[(1, 900), (2, 100), (3, 100)], 3);
    assert_eq!(moves.len(), 2, "{moves:?}");
    // The host sets NIC2's MAC to mac1 and NIC1's to mac2.
    assert_eq!(e.holder(IdentityId(0)), Some(UplinkId(1)));
    assert_eq!(e.holder(IdentityId(1)), Some(UplinkId(0)));
    // Bindings unchanged; VM1's next packets leave through NIC2.
    assert_eq!(e.binding(ipa(1)), Some(IdentitySet::one(IdentityId(0))));
    assert_eq!(sent_on(send(&mut e, now, 1, 100)), UplinkId(1));
    assert_eq!(sent_on(send(&mut e, now, 2, 100)), UplinkId(0));
    // And it stays there: no flapping within the dwell time.
    let later = drive(&mut e, &mut now, &[(1, 900), (2, 100), (3, 100)], 5);
    assert!(later.is_empty(), "{later:?}");
}

#[test]
fn example_0050_when_nic2_overloads_another_nic_takes_mac1() {
    // NIC1 1 GbE, NIC2 10 GbE, NIC3 40 GbE.
    // VM3 keeps NIC3 busy at first, so VM1's surge moves mac1 to NIC2.
    let mut e = example(Mode::Identity, [1000, 10_000, 40_000]);
    let mut now = 0;
    drive_with(
        &mut e,
        &mut now,
        &[(1, 900), (2, 100), (3, 30_000)],
        2,
        60_000,
    );
    assert_eq!(e.holder(IdentityId(0)), Some(UplinkId(1)));
    // Then VM3 quiets and VM1 grows until NIC2 is overloaded: once the
    // dwell time has passed, mac1 moves on to NIC3, where it weighs least.
    let moves = drive_with(
        &mut e,
        &mut now,
        &[(1, 9_500), (2, 100), (3, 100)],
        31,
        60_000,
    );
    assert_eq!(e.holder(IdentityId(0)), Some(UplinkId(2)), "{moves:?}");
    assert_eq!(sent_on(send(&mut e, now, 1, 100)), UplinkId(2));
}

#[test]
fn example_0050_equal_nics_do_not_flap() {
    let mut e = example(Mode::Identity, [1000; 3]);
    let mut now = 0;
    let moves = drive(&mut e, &mut now, &[(1, 950), (2, 50)], 5);
    assert!(
        moves.is_empty(),
        "swapping equal NICs helps nobody: {moves:?}"
    );
}

#[test]
fn example_0051_vm3_limited_to_nic3() {
    // NIC3 is the small one: VM3 overloading it while NIC1 and NIC2 idle
    // would move mac3 to a big NIC (it does, unpinned), but mac3 is pinned.
    let mut e = example(Mode::Identity, [10_000, 10_000, 1000]);
    e.pin(IdentityId(2)).unwrap();
    let mut now = 0;
    // NIC3 heavily loaded; mac3 still never leaves NIC3.
    let moves = drive(&mut e, &mut now, &[(3, 950)], 3);
    assert_eq!(e.holder(IdentityId(2)), Some(UplinkId(2)), "{moves:?}");
    // Not even when NIC3's link dies: VM3 then has no network.
    e.link_changed(now, UplinkId(2), false);
    assert_eq!(e.holder(IdentityId(2)), Some(UplinkId(2)));
    assert_eq!(
        send(&mut e, now, 3, 100),
        TxDecision::Drop(DropReason::NoLiveUplink)
    );
    e.link_changed(now, UplinkId(2), true);
    // Other guests may still compete for NIC3: VM1 bound to mac1 and mac3
    // spills onto NIC3 once NIC1 is busier.
    e.bind(ipa(1), &[IdentityId(0), IdentityId(2)]).unwrap();
    drive(&mut e, &mut now, &[], 1);
    drive(&mut e, &mut now, &[(1, 1500)], 1);
    let c = e.guest_counters(GuestId(0)).unwrap();
    assert!(
        c.tx_frames_per_uplink[0] > 0 && c.tx_frames_per_uplink[2] > 0,
        "{c:?}"
    );
}

#[test]
fn example_0051_nic3_exclusive() {
    let mut e = example(Mode::Identity, [1000; 3]);
    e.set_exclusive(UplinkId(2), true).unwrap();
    let mut now = 0;
    // NIC1 dies: mac1 goes to NIC2, never to the exclusive NIC3.
    let moves = e.link_changed(now, UplinkId(0), false);
    assert_eq!(moves.len(), 1);
    assert_eq!(moves.as_slice()[0].to, UplinkId(1));
    // Heavy load everywhere else: NIC3 still only carries VM3.
    drive(&mut e, &mut now, &[(1, 900), (2, 900), (3, 10)], 5);
    assert_eq!(e.held(UplinkId(2)), IdentitySet::one(IdentityId(2)));
    for g in 0..2u16 {
        assert_eq!(
            e.guest_counters(GuestId(g)).unwrap().tx_frames_per_uplink[2],
            0
        );
    }
    // Auto-spread avoids it too.
    e.add_guest(vm(9), &[ipa(9)]).unwrap();
    assert!(!e.binding(ipa(9)).unwrap().contains(IdentityId(2)));
}

#[test]
fn example_0052_two_nics_for_one_vm_follow_the_lower_load() {
    let mut e = example(Mode::Identity, [1000; 3]);
    e.bind(ipa(1), &[IdentityId(0), IdentityId(1)]).unwrap();
    let mut now = 0;
    // VM2 keeps NIC2 busy: VM1's packets go to NIC1.
    drive(&mut e, &mut now, &[(2, 600)], 1);
    assert_eq!(sent_on(send(&mut e, now, 1, 1500)), UplinkId(0));
    // And the mirror (NIC1 is also the first choice on a tie): VM3, rebound
    // to mac1, keeps NIC1 busy, and VM1's packets go to NIC2.
    let mut e = example(Mode::Identity, [1000; 3]);
    e.bind(ipa(1), &[IdentityId(0), IdentityId(1)]).unwrap();
    e.bind(ipa(3), &[IdentityId(0)]).unwrap();
    let mut now = 0;
    drive(&mut e, &mut now, &[(3, 600)], 1);
    assert_eq!(sent_on(send(&mut e, now, 1, 1500)), UplinkId(1));
    // VM1 alone at a high rate ends up split across both NICs.
    let mut e = example(Mode::Identity, [1000; 3]);
    e.bind(ipa(1), &[IdentityId(0), IdentityId(1)]).unwrap();
    let mut now = 0;
    drive(&mut e, &mut now, &[(1, 1600)], 1);
    let c = e.guest_counters(GuestId(0)).unwrap();
    let (a, b) = (c.tx_frames_per_uplink[0], c.tx_frames_per_uplink[1]);
    assert!(a.abs_diff(b) * 20 < a + b, "split {a}/{b}");
    assert_eq!(c.tx_frames_per_uplink[2], 0);
}

// ---------------------------------------------------------------------------
// Guest transmit checks.
// ---------------------------------------------------------------------------

#[test]
fn a_guests_broadcasts_are_limited_per_second_and_counted() {
    let mut cfg = Config::with_mode(Mode::Identity);
    cfg.bcast_limit_pps = 3;
    let mut e = Engine::new(cfg);
    e.add_uplink(UplinkConfig::new(nic(1))).unwrap();
    e.add_guest(vm(1), &[ipa(1)]).unwrap();
    e.add_guest(vm(2), &[ipa(2)]).unwrap();
    let bcast = |g: u8| {
        let mut f = guest_frame(g, 60);
        f[0..6].copy_from_slice(&[0xff; 6]);
        f
    };
    let sent = |e: &mut Engine, now: u64, g: u8| {
        let mut f = bcast(g);
        e.guest_transmit(now, GuestId(g as u16 - 1), &mut f)
    };
    // Three in the first second, then drops; unicast is not limited.
    for k in 0..3 {
        assert!(matches!(sent(&mut e, k * MS, 1), TxDecision::Send { .. }));
    }
    assert_eq!(
        sent(&mut e, 500 * MS, 1),
        TxDecision::Drop(DropReason::BroadcastLimit)
    );
    assert!(matches!(
        send(&mut e, 600 * MS, 1, 60),
        TxDecision::Send { .. }
    ));
    // The other guest has its own allowance.
    assert!(matches!(sent(&mut e, 700 * MS, 2), TxDecision::Send { .. }));
    // A new second, a new allowance.
    assert!(matches!(
        sent(&mut e, 1_100 * MS, 1),
        TxDecision::Send { .. }
    ));
    let c = e.guest_counters(GuestId(0)).unwrap();
    assert_eq!(c.tx_drops.get(DropReason::BroadcastLimit), 1);
    assert_eq!(c.tx_frames, 5);
}

#[test]
fn guest_transmit_drops_with_reasons() {
    let mut e = example(Mode::Identity, [1000; 3]);
    let cases: Vec<(&str, Vec<u8>, DropReason)> = vec![
        ("runt", guest_frame(1, 60)[..13].to_vec(), DropReason::Runt),
        (
            "truncated ip",
            guest_frame(1, 60)[..30].to_vec(),
            DropReason::Runt,
        ),
        (
            "spoofed mac",
            {
                let mut f = guest_frame(1, 60);
                f[6..12].copy_from_slice(&vm(2).0);
                f
            },
            DropReason::SpoofedMac,
        ),
        (
            "spoofed ip",
            {
                let mut f = guest_frame(1, 60);
                f[26..30].copy_from_slice(&ip(2));
                f
            },
            DropReason::SpoofedIp,
        ),
        (
            "vlan tag",
            {
                let mut f = guest_frame(1, 60);
                f[12..14].copy_from_slice(&[0x81, 0x00]);
                f
            },
            DropReason::BadEthertype,
        ),
        (
            "arp sender spoofed",
            {
                let mut f = vec![0u8; 60];
                testkit::arp(
                    &mut f,
                    1,
                    MacAddr::BROADCAST,
                    vm(1),
                    ip(1),
                    MacAddr::default(),
                    GW_IP,
                );
                f[22..28].copy_from_slice(&vm(2).0);
                f
            },
            DropReason::SpoofedMac,
        ),
        (
            "to itself",
            {
                let mut f = guest_frame(1, 60);
                f[0..6].copy_from_slice(&vm(1).0);
                f
            },
            DropReason::Hairpin,
        ),
    ];
    for (name, mut f, want) in cases {
        assert_eq!(
            e.guest_transmit(0, GuestId(0), &mut f),
            TxDecision::Drop(want),
            "{name}"
        );
    }
    let c = e.guest_counters(GuestId(0)).unwrap();
    assert_eq!(c.tx_drops.total(), 7);
    assert_eq!(c.tx_drops.get(DropReason::Runt), 2);
    assert_eq!(
        e.guest_transmit(0, GuestId(77), &mut guest_frame(1, 60)),
        TxDecision::Drop(DropReason::UnknownPort)
    );
}

#[test]
fn denied_ip_is_dropped_but_may_switch_locally() {
    let mut e = example(Mode::Identity, [1000; 3]);
    e.bind(ipa(1), &[]).unwrap();
    assert_eq!(
        send(&mut e, 0, 1, 100),
        TxDecision::Drop(DropReason::Denied)
    );
    let mut f = vec![0u8; 60];
    testkit::ipv4(&mut f, vm(2), vm(1), ip(1), ip(2));
    assert_eq!(
        e.guest_transmit(0, GuestId(0), &mut f),
        TxDecision::SwitchLocal { guest: GuestId(1) }
    );
    // Nor may the outside reach it.
    let mut r = vec![0u8; 60];
    testkit::ipv4(&mut r, nic(1), GW, GW_IP, ip(1));
    assert_eq!(
        e.uplink_receive(0, UplinkId(0), &mut r),
        RxDecision::Drop(DropReason::Denied)
    );
}

#[test]
fn local_switching_by_guest_mac_or_identity_plus_ip() {
    let mut e = example(Mode::Identity, [1000; 3]);
    let mut f = vec![0u8; 60];
    // VM1 learned VM2 as mac2 (from VM2's rewritten ARP): deliver locally
    // with VM2's real MAC put back.
    testkit::ipv4(&mut f, nic(2), vm(1), ip(1), ip(2));
    assert_eq!(
        e.guest_transmit(0, GuestId(0), &mut f),
        TxDecision::SwitchLocal { guest: GuestId(1) }
    );
    assert_eq!(&f[0..6], &vm(2).0);
    // To the own stack.
    testkit::ipv4(&mut f, nic(1), vm(1), ip(1), OWN_IP);
    assert_eq!(
        e.guest_transmit(0, GuestId(0), &mut f),
        TxDecision::ToOwnStack
    );
    assert_eq!(e.guest_counters(GuestId(0)).unwrap().tx_local, 2);
    assert_eq!(e.guest_counters(GuestId(1)).unwrap().rx_frames, 1);
}

#[test]
fn arp_from_guest_gets_identity_as_sender_and_floods_locally() {
    let mut e = example(Mode::Identity, [1000; 3]);
    let mut f = vec![0u8; 60];
    testkit::arp(
        &mut f,
        1,
        MacAddr::BROADCAST,
        vm(2),
        ip(2),
        MacAddr::default(),
        GW_IP,
    );
    let d = e.guest_transmit(0, GuestId(1), &mut f);
    assert!(
        matches!(
            d,
            TxDecision::Send {
                uplink: UplinkId(1),
                flood_local: true,
                ..
            }
        ),
        "{d:?}"
    );
    assert_eq!(&f[6..12], &nic(2).0);
    assert_eq!(&f[22..28], &nic(2).0);
}

#[test]
fn arp_reply_of_multi_bound_guest_names_least_loaded_identity() {
    let mut e = example(Mode::Identity, [1000; 3]);
    e.bind(ipa(1), &[IdentityId(0), IdentityId(1), IdentityId(2)])
        .unwrap();
    // NIC1 and NIC2 are busy receiving (NIC3 busy sending, which an ARP
    // reply does not care about: it steers what peers send to us).
    let mut now = 0;
    for _ in 0..50 {
        for (k, g) in [(0u8, 1u8), (1, 2)] {
            for _ in 0..40 {
                let mut r = vec![0u8; 1500];
                testkit::ipv4(&mut r, nic(k + 1), GW, GW_IP, ip(g));
                e.uplink_receive(now, UplinkId(k), &mut r);
            }
        }
        for _ in 0..80 {
            send(&mut e, now, 3, 1500);
        }
        now += 10 * MS;
        e.tick(now);
    }
    let mut f = vec![0u8; 60];
    testkit::arp(&mut f, 2, GW, vm(1), ip(1), GW, GW_IP);
    let d = e.guest_transmit(now, GuestId(0), &mut f);
    assert_eq!(sent_on(d), UplinkId(2));
    assert_eq!(&f[22..28], &nic(3).0, "the gateway learns ip1 at mac3");
    // Data frames still follow transmit load: NIC3 is the busiest sender.
    assert_ne!(sent_on(send(&mut e, now, 1, 100)), UplinkId(2));
}

#[test]
fn ipv6_neighbour_advertisement_option_is_rewritten() {
    let mut e = example(Mode::Identity, [1000; 3]);
    let v6 = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    e.add_guest(vm(7), &[IpAddr::V6(Ipv6Addr::from(v6))])
        .unwrap();
    let g = e.guest_of_ip(IpAddr::V6(Ipv6Addr::from(v6))).unwrap();
    let mut f = vec![0u8; 86];
    testkit::ipv6_na(
        &mut f,
        GW,
        vm(7),
        v6,
        [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    );
    let TxDecision::Send {
        steering: Steering::Rewritten { mac, .. },
        ..
    } = e.guest_transmit(0, g, &mut f)
    else {
        panic!()
    };
    assert_eq!(&f[80..86], &mac.0);
    assert_eq!(&f[6..12], &mac.0);
}

#[test]
fn arp_probe_and_dad_use_the_claimed_address() {
    let mut e = example(Mode::Identity, [1000; 3]);
    let mut f = vec![0u8; 60];
    testkit::arp(
        &mut f,
        1,
        MacAddr::BROADCAST,
        vm(3),
        [0; 4],
        MacAddr::default(),
        ip(3),
    );
    assert_eq!(
        sent_on(e.guest_transmit(0, GuestId(2), &mut f)),
        UplinkId(2)
    );
    testkit::arp(
        &mut f,
        1,
        MacAddr::BROADCAST,
        vm(3),
        [0; 4],
        MacAddr::default(),
        ip(1),
    );
    assert_eq!(
        e.guest_transmit(0, GuestId(2), &mut f),
        TxDecision::Drop(DropReason::SpoofedIp)
    );
}

// ---------------------------------------------------------------------------
// Receive.
// ---------------------------------------------------------------------------

#[test]
fn receive_table() {
    let mut e = example(Mode::Identity, [1000; 3]);
    let all = GuestSet(0b111);
    struct Case {
        name: &'static str,
        uplink: u8,
        frame: Vec<u8>,
        want: RxDecision,
        dst_after: Option<MacAddr>,
    }
    let v4 = |dst: MacAddr, dip: [u8; 4]| {
        let mut f = vec![0u8; 60];
        testkit::ipv4(&mut f, dst, GW, GW_IP, dip);
        f
    };
    let arp_req = |tpa: [u8; 4]| {
        let mut f = vec![0u8; 60];
        testkit::arp(
            &mut f,
            1,
            MacAddr::BROADCAST,
            GW,
            GW_IP,
            MacAddr::default(),
            tpa,
        );
        f
    };
    let cases = vec![
        Case {
            name: "identity + ip → guest",
            uplink: 1,
            frame: v4(nic(2), ip(2)),
            want: RxDecision::ToGuest { guest: GuestId(1) },
            dst_after: Some(vm(2)),
        },
        Case {
            name: "any identity the guest is reached at",
            uplink: 0,
            frame: v4(nic(1), ip(2)),
            want: RxDecision::ToGuest { guest: GuestId(1) },
            dst_after: Some(vm(2)),
        },
        Case {
            name: "identity not held here",
            uplink: 0,
            frame: v4(nic(2), ip(2)),
            want: RxDecision::Drop(DropReason::NotHolder),
            dst_after: None,
        },
        Case {
            name: "own stack",
            uplink: 0,
            frame: v4(nic(1), OWN_IP),
            want: RxDecision::ToOwnStack,
            dst_after: None,
        },
        Case {
            name: "unknown ip",
            uplink: 0,
            frame: v4(nic(1), [192, 168, 1, 99]),
            want: RxDecision::Drop(DropReason::UnknownDestination),
            dst_after: None,
        },
        Case {
            name: "guest mac in identity mode",
            uplink: 0,
            frame: v4(vm(1), ip(1)),
            want: RxDecision::Drop(DropReason::UnknownDestination),
            dst_after: None,
        },
        Case {
            name: "arp request for guest",
            uplink: 0,
            frame: arp_req(ip(3)),
            want: RxDecision::ToGuest { guest: GuestId(2) },
            dst_after: Some(MacAddr::BROADCAST),
        },
        Case {
            name: "arp request for own ip",
            uplink: 0,
            frame: arp_req(OWN_IP),
            want: RxDecision::ToOwnStack,
            dst_after: None,
        },
        Case {
            name: "gratuitous arp",
            uplink: 0,
            frame: arp_req(GW_IP),
            want: RxDecision::Flood { guests: all },
            dst_after: None,
        },
        Case {
            name: "broadcast copy on another uplink",
            uplink: 1,
            frame: arp_req(ip(3)),
            want: RxDecision::Drop(DropReason::DuplicateBroadcast),
            dst_after: None,
        },
        Case {
            name: "ipv4 broadcast",
            uplink: 0,
            frame: v4(MacAddr::BROADCAST, [255; 4]),
            want: RxDecision::Flood { guests: all },
            dst_after: None,
        },
        Case {
            name: "runt",
            uplink: 0,
            frame: vec![0; 10],
            want: RxDecision::Drop(DropReason::Runt),
            dst_after: None,
        },
        Case {
            name: "unknown uplink",
            uplink: 9,
            frame: v4(nic(1), ip(1)),
            want: RxDecision::Drop(DropReason::UnknownPort),
            dst_after: None,
        },
    ];
    for mut c in cases {
        let d = e.uplink_receive(0, UplinkId(c.uplink), &mut c.frame);
        assert_eq!(d, c.want, "{}", c.name);
        if let Some(m) = c.dst_after {
            assert_eq!(&c.frame[0..6], &m.0, "{}", c.name);
        }
    }
    assert_eq!(e.guest_counters(GuestId(1)).unwrap().rx_frames, 2);
    assert_eq!(
        e.uplink_counters(UplinkId(0))
            .unwrap()
            .rx_drops
            .get(DropReason::NotHolder),
        1
    );
}

#[test]
fn arp_reply_to_identity_has_target_rewritten() {
    let mut e = example(Mode::Identity, [1000; 3]);
    let mut f = vec![0u8; 60];
    testkit::arp(&mut f, 2, nic(1), GW, GW_IP, nic(1), ip(1));
    assert_eq!(
        e.uplink_receive(0, UplinkId(0), &mut f),
        RxDecision::ToGuest { guest: GuestId(0) }
    );
    assert_eq!(&f[0..6], &vm(1).0);
    assert_eq!(&f[32..38], &vm(1).0);
}

#[test]
fn literal_mode_receives_at_guest_mac() {
    let mut e = example(Mode::Literal, [1000; 3]);
    let mut f = vec![0u8; 60];
    testkit::ipv4(&mut f, vm(2), GW, GW_IP, ip(2));
    assert_eq!(
        e.uplink_receive(0, UplinkId(0), &mut f),
        RxDecision::ToGuest { guest: GuestId(1) }
    );
    assert_eq!(&f[0..6], &vm(2).0);
    e.bind(ipa(2), &[]).unwrap();
    assert_eq!(
        e.uplink_receive(0, UplinkId(0), &mut f),
        RxDecision::Drop(DropReason::Denied)
    );
}

// ---------------------------------------------------------------------------
// Links and bindings.
// ---------------------------------------------------------------------------

#[test]
fn failover_moves_identities_and_they_come_home() {
    let mut e = example(Mode::Identity, [1000; 3]);
    let mut now = 0;
    drive(&mut e, &mut now, &[(1, 100), (2, 500), (3, 100)], 1);
    let down = e.link_changed(now, UplinkId(1), false);
    assert_eq!(down.len(), 1);
    let m = down.as_slice()[0];
    assert_eq!(
        (m.identity, m.from, m.mac),
        (IdentityId(1), UplinkId(1), nic(2))
    );
    assert_ne!(m.to, UplinkId(1));
    assert_eq!(e.held(m.to).len(), 2);
    // VM2 keeps sending, through the new holder, with its identity.
    assert_eq!(sent_on(send(&mut e, now, 2, 100)), m.to);
    // Broadcasts are now taken on the first live uplink (still NIC1).
    let up = e.link_changed(now + MS, UplinkId(1), true);
    assert_eq!(up.len(), 1);
    assert_eq!(up.as_slice()[0].to, UplinkId(1));
    assert_eq!(e.holder(IdentityId(1)), Some(UplinkId(1)));
    assert_eq!(e.counters().failover_moves, 2);
    assert_eq!(e.uplink_counters(UplinkId(1)).unwrap().link_downs, 1);
}

#[test]
fn failover_bounded_by_filter_slots() {
    let mut e = Engine::new(Config::DEFAULT);
    for k in 0..3 {
        let mut u = UplinkConfig::new(nic(k + 1));
        u.filter_slots = 1;
        e.add_uplink(u).unwrap();
    }
    // One slot each: nowhere to go, mac1 is stranded until NIC1 returns.
    assert!(e.link_changed(0, UplinkId(0), false).is_empty());
    assert_eq!(e.counters().stranded, 1);
    assert_eq!(e.holder(IdentityId(0)), Some(UplinkId(0)));
    e.check_invariants().unwrap();
}

#[test]
fn broadcast_uplink_moves_when_first_dies() {
    let mut e = example(Mode::Identity, [1000; 3]);
    e.link_changed(0, UplinkId(0), false);
    let mut f = vec![0u8; 60];
    testkit::arp(
        &mut f,
        1,
        MacAddr::BROADCAST,
        GW,
        GW_IP,
        MacAddr::default(),
        GW_IP,
    );
    assert!(matches!(
        e.uplink_receive(0, UplinkId(1), &mut f),
        RxDecision::Flood { .. }
    ));
}

#[test]
fn auto_spread_keeps_counts_even() {
    let mut e = Engine::new(Config::DEFAULT);
    for k in 0..4 {
        e.add_uplink(UplinkConfig::new(nic(k + 1))).unwrap();
    }
    for g in 0..12 {
        e.add_guest(vm(g + 1), &[ipa(g + 1)]).unwrap();
    }
    let mut count = [0; 4];
    for g in 0..12 {
        let b = e.binding(ipa(g + 1)).unwrap();
        assert_eq!(b.len(), 1);
        count[b.first().unwrap().0 as usize] += 1;
    }
    assert_eq!(count, [3; 4]);
    // Guests added before the uplinks are spread when they arrive.
    let mut e = Engine::new(Config::DEFAULT);
    for g in 0..4 {
        e.add_guest(vm(g + 1), &[ipa(g + 1)]).unwrap();
    }
    assert!(e.binding(ipa(1)).unwrap().is_empty());
    e.add_uplink(UplinkConfig::new(nic(1))).unwrap();
    e.add_uplink(UplinkConfig::new(nic(2))).unwrap();
    let b: Vec<_> = (1..=4)
        .map(|g| e.binding(ipa(g)).unwrap().first().unwrap().0)
        .collect();
    assert_eq!(b, [0, 1, 0, 1]);
}

#[test]
fn control_errors() {
    let mut e = example(Mode::Identity, [1000; 3]);
    assert_eq!(e.add_guest(vm(1), &[ipa(50)]), Err(Error::DuplicateMac));
    assert_eq!(e.add_guest(nic(1), &[ipa(50)]), Err(Error::DuplicateMac));
    assert_eq!(e.add_guest(vm(50), &[ipa(1)]), Err(Error::DuplicateIp));
    assert_eq!(
        e.add_guest(MacAddr([1, 0, 0, 0, 0, 1]), &[]),
        Err(Error::InvalidMac)
    );
    assert_eq!(
        e.add_guest(vm(50), &[IpAddr::V4(Ipv4Addr::UNSPECIFIED)]),
        Err(Error::InvalidIp)
    );
    assert_eq!(e.bind(ipa(99), &[]), Err(Error::UnknownIp));
    assert_eq!(
        e.bind(ipa(1), &[IdentityId(7)]),
        Err(Error::UnknownIdentity)
    );
    assert_eq!(e.pin(IdentityId(9)), Err(Error::UnknownIdentity));
    assert_eq!(
        e.set_exclusive(UplinkId(9), true),
        Err(Error::UnknownUplink)
    );
    let g = e.add_guest(vm(50), &[ipa(50)]).unwrap();
    e.remove_guest(g).unwrap();
    assert_eq!(e.remove_guest(g), Err(Error::UnknownGuest));
    e.check_invariants().unwrap();
}

#[test]
fn guests_fill_to_capacity_and_free_slots_reuse() {
    let mut e = Engine::new(Config::DEFAULT);
    e.add_uplink(UplinkConfig::new(nic(1))).unwrap();
    for g in 0..MAX_GUESTS {
        let mac = MacAddr([0x52, 0, 0, 0, (g >> 8) as u8, g as u8]);
        let ip = IpAddr::V4(Ipv4Addr::new(10, 1, (g >> 8) as u8, g as u8 + 1));
        e.add_guest(mac, &[ip]).unwrap();
    }
    assert_eq!(e.add_guest(vm(1), &[ipa(1)]), Err(Error::TooManyGuests));
    e.remove_guest(GuestId(5)).unwrap();
    assert_eq!(e.add_guest(vm(1), &[ipa(1)]), Ok(GuestId(5)));
    e.check_invariants().unwrap();
}

// ---------------------------------------------------------------------------
// Property tests over random operation sequences, and the fuzz entry.
// ---------------------------------------------------------------------------

mod props {
    use super::*;
    use proptest::prelude::*;

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (any::<u8>(), any::<u8>(), any::<u8>(), prop_oneof![4 => Just(0u8), 1 => any::<u8>()], any::<u8>())
                .prop_map(|(guest, kind, other, spoof, cut)| Op::GuestTx { guest, kind, other, spoof, cut }),
            3 => (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>())
                .prop_map(|(uplink, kind, guest, identity)| Op::UplinkRx { uplink, kind, guest, identity }),
            1 => any::<bool>().prop_map(|to_guest| Op::OwnTx { to_guest }),
            3 => (0u16..3000).prop_map(|ms| Op::Tick { ms }),
            1 => (any::<u8>(), any::<bool>()).prop_map(|(uplink, up)| Op::Link { uplink, up }),
            1 => (any::<u8>(), 0u16..16).prop_map(|(guest, set)| Op::Bind { guest, set }),
            1 => any::<u8>().prop_map(|guest| Op::BindAuto { guest }),
            1 => (any::<u8>(), any::<bool>()).prop_map(|(identity, on)| Op::Pin { identity, on }),
            1 => (any::<u8>(), any::<bool>()).prop_map(|(uplink, on)| Op::Exclusive { uplink, on }),
            1 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::Swap { a, b }),
            1 => Just(Op::RebalanceNow),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// After every step: every identity held by exactly one uplink;
        /// pinned identities never move; exclusive uplinks' MACs never
        /// change; denied IPs never get an uplink; no frame leaves with
        /// another guest's source; literal mode always restores.
        #[test]
        fn invariants_hold_over_random_operations(literal in any::<bool>(), ops in prop::collection::vec(op(), 1..120)) {
            let mode = if literal { Mode::Literal } else { Mode::Identity };
            let mut h = Harness::new(mode);
            for (i, op) in ops.iter().enumerate() {
                if let Err(why) = h.apply(*op) {
                    prop_assert!(false, "step {i} {op:?}: {why}");
                }
            }
        }

        /// The cargo-fuzz entry point, driven with random bytes.
        #[test]
        fn fuzz_entry_on_random_bytes(data in prop::collection::vec(any::<u8>(), 0..600)) {
            if let Err(why) = Harness::run_bytes(&data) {
                prop_assert!(false, "{why}");
            }
        }

        /// Raw frames in both directions: no panic, and any frame sent
        /// carries a source that is not another guest's.
        #[test]
        fn raw_frames_never_panic(literal in any::<bool>(), frames in prop::collection::vec((any::<bool>(), any::<u8>(), prop::collection::vec(any::<u8>(), 0..120)), 1..40)) {
            for (tx, port, bytes) in frames {
                let mut data = vec![literal as u8, if tx { 9 } else { 10 }, port, bytes.len() as u8];
                data.extend_from_slice(&bytes);
                if let Err(why) = Harness::run_bytes(&data) {
                    prop_assert!(false, "{why}");
                }
            }
        }
    }
}

mod operator_moves {
    use crate::*;

    fn engine() -> Engine {
        let mut e = Engine::new(Config::DEFAULT);
        for i in 1..=3u8 {
            e.add_uplink(UplinkConfig::new(MacAddr([2, 0, 0, 0, 0, i])))
                .unwrap();
        }
        e
    }

    #[test]
    fn swap_exchanges_holders_and_reports_both_moves() {
        let mut e = engine();
        let moves = e.swap(5, IdentityId(0), IdentityId(2)).unwrap();
        assert_eq!(moves.len(), 2);
        assert_eq!(e.holder(IdentityId(0)), Some(UplinkId(2)));
        assert_eq!(e.holder(IdentityId(2)), Some(UplinkId(0)));
        e.check_invariants().unwrap();
    }

    #[test]
    fn swap_refuses_pinned_identities_exclusive_uplinks_and_unknown_ids() {
        let mut e = engine();
        e.pin(IdentityId(1)).unwrap();
        assert_eq!(e.swap(5, IdentityId(0), IdentityId(1)), Err(Error::Pinned));
        e.set_exclusive(UplinkId(2), true).unwrap();
        assert_eq!(
            e.swap(5, IdentityId(0), IdentityId(2)),
            Err(Error::Exclusive)
        );
        assert_eq!(
            e.swap(5, IdentityId(0), IdentityId(9)),
            Err(Error::UnknownIdentity)
        );
        assert_eq!(e.holder(IdentityId(0)), Some(UplinkId(0)), "nothing moved");
        e.check_invariants().unwrap();
    }

    #[test]
    fn rebalance_now_on_idle_uplinks_moves_nothing() {
        let mut e = engine();
        assert!(e.rebalance_now(1).is_empty());
        assert_eq!(e.counters().rebalance_runs, 1);
    }
}

/// The harness behind the property tests and the fuzz target reaches every
/// kind of decision (so its checks are not vacuous): a long pseudo-random
/// run, then a look at the counters.
#[test]
fn harness_reaches_every_decision() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for mode in [Mode::Identity, Mode::Literal] {
        let mut h = Harness::new(mode);
        for _ in 0..20_000 {
            let r = next();
            let b = |k: u32| (r >> (8 * k)) as u8;
            let op = match r % 20 {
                0..=7 => Op::GuestTx {
                    guest: b(1),
                    kind: b(2),
                    other: b(3),
                    spoof: if b(4) < 40 { b(5) } else { 0 },
                    cut: b(6),
                },
                8..=12 => Op::UplinkRx {
                    uplink: b(1),
                    kind: b(2),
                    guest: b(3),
                    identity: b(4),
                },
                13 => Op::OwnTx {
                    to_guest: b(1) & 1 == 0,
                },
                14 | 15 => Op::Tick {
                    ms: (b(1) as u16) * 8,
                },
                16 => Op::Link {
                    uplink: b(1),
                    up: b(2) & 1 == 0,
                },
                17 => Op::Bind {
                    guest: b(1),
                    set: (b(2) & 15) as u16,
                },
                18 => Op::Pin {
                    identity: b(1),
                    on: b(2) < 64,
                },
                _ => Op::Exclusive {
                    uplink: b(1),
                    on: b(2) < 64,
                },
            };
            h.apply(op).unwrap_or_else(|why| panic!("{op:?}: {why}"));
        }
        let e = &h.engine;
        let sum = |f: &dyn Fn(&GuestCounters) -> u64| {
            e.guests()
                .map(|g| f(e.guest_counters(g).unwrap()))
                .sum::<u64>()
        };
        assert!(sum(&|c| c.tx_frames) > 1000, "{mode:?}: few sends");
        assert!(sum(&|c| c.tx_local) > 100, "{mode:?}: few local switches");
        assert!(sum(&|c| c.rx_frames) > 500, "{mode:?}: few deliveries");
        for r in [
            DropReason::Runt,
            DropReason::SpoofedMac,
            DropReason::SpoofedIp,
            DropReason::Denied,
            DropReason::NoLiveUplink,
            DropReason::SpoofedIp6,
            DropReason::NdTarget,
            DropReason::NdLladdr,
            DropReason::RaGuard,
            DropReason::Ip6ExtHeader,
            DropReason::Ip6Taken,
            DropReason::Ip6LearnLimit,
        ] {
            assert!(
                sum(&|c| c.tx_drops.get(r)) > 0,
                "{mode:?}: never dropped as {r:?}"
            );
        }
        let c = e.counters();
        assert!(
            c.failover_moves > 0 && c.own_tx_frames > 0 && c.rx_nd_directed > 0 && c.mld_out > 0,
            "{mode:?}: {c:?}"
        );
        assert!(
            e.guests().any(|g| e.learned(g).count() > 0),
            "{mode:?}: nothing learned"
        );
    }
}

/// A switch floods a broadcast that left one uplink back into the others,
/// the broadcast uplink among them: that copy (source an identity, or a
/// guest in literal mode) must not be flooded to the guests again.
#[test]
fn own_broadcasts_flooded_back_are_dropped() {
    for mode in [Mode::Identity, Mode::Literal] {
        let mut e = example(mode, [1000; 3]);
        let mut f = vec![0u8; 60];
        testkit::arp(&mut f, 1, vm(2), vm(2), ip(2), MacAddr([0; 6]), GW_IP);
        f[0..6].copy_from_slice(&MacAddr::BROADCAST.0);
        let d = e.guest_transmit(0, GuestId(1), &mut f);
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
        // The copy the switch sends back into uplink 0 (which takes broadcasts).
        let d = e.uplink_receive(0, UplinkId(0), &mut f);
        assert_eq!(
            d,
            RxDecision::Drop(DropReason::DuplicateBroadcast),
            "{mode:?}"
        );
        // A learning frame flooded back, too.
        let mut lf = [0u8; 60];
        learning_frame(nic(2), &mut lf);
        let d = e.uplink_receive(0, UplinkId(0), &mut lf);
        assert_eq!(
            d,
            RxDecision::Drop(DropReason::DuplicateBroadcast),
            "{mode:?}"
        );
        // Someone else's broadcast is still taken in.
        let mut other = vec![0u8; 60];
        testkit::arp(&mut other, 1, GW, GW, GW_IP, MacAddr([0; 6]), ip(2));
        other[0..6].copy_from_slice(&MacAddr::BROADCAST.0);
        let d = e.uplink_receive(0, UplinkId(0), &mut other);
        assert_eq!(d, RxDecision::ToGuest { guest: GuestId(1) }, "{mode:?}");
    }
}

/// [0034] with NICs of different capacities: the least-loaded NIC (idle
/// 1 GbE NIC2) has no room for VM1's 900 Mbit/s, the idle 10 GbE NIC3 has.
/// The rebalance must find NIC3 rather than give up on NIC2.
#[test]
fn rebalance_takes_the_cooler_nic_that_has_room() {
    let mut e = example(Mode::Identity, [1000, 1000, 10_000]);
    let mut now = 0;
    let moves = drive(&mut e, &mut now, &[(1, 900)], 3);
    assert_eq!(e.holder(IdentityId(0)), Some(UplinkId(2)), "{moves:?}");
    assert_eq!(
        e.holder(IdentityId(2)),
        Some(UplinkId(0)),
        "a swap ([0034])"
    );
    assert_eq!(e.holder(IdentityId(1)), Some(UplinkId(1)));
    assert_eq!(sent_on(send(&mut e, now, 1, 100)), UplinkId(2));
}

// ---------------------------------------------------------------------------
// Load counts only what was delivered (issue 12).
// ---------------------------------------------------------------------------

/// Frames dropped on receive weigh nothing in the load that steers choices
/// and rebalancing: junk to an identity MAC (an IP nobody here has, a
/// denied IP, an identity held elsewhere, a second broadcast copy) leaves
/// the uplink's and the identity's receive rates at zero. A delivered frame
/// of the same size does count, so the zeros are not vacuous.
#[test]
fn dropped_receive_frames_weigh_nothing() {
    let mut base = example(Mode::Identity, [1000; 3]);
    base.bind(ipa(3), &[]).unwrap();
    let junk: [(&str, u8, MacAddr, [u8; 4], DropReason); 4] = [
        (
            "ip for no guest",
            0,
            nic(1),
            [192, 168, 1, 99],
            DropReason::UnknownDestination,
        ),
        ("denied ip", 0, nic(1), ip(3), DropReason::Denied),
        ("held elsewhere", 0, nic(2), ip(2), DropReason::NotHolder),
        (
            "second broadcast copy",
            1,
            MacAddr::BROADCAST,
            [255; 4],
            DropReason::DuplicateBroadcast,
        ),
    ];
    for (name, u, dst, dip, why) in junk {
        let mut e = base.clone();
        let mut now = 0;
        for _ in 0..10 {
            for _ in 0..100 {
                let mut f = vec![0u8; 1500];
                testkit::ipv4(&mut f, dst, GW, GW_IP, dip);
                assert_eq!(
                    e.uplink_receive(now, UplinkId(u), &mut f),
                    RxDecision::Drop(why),
                    "{name}"
                );
            }
            now += 10 * MS;
            e.tick(now);
        }
        for k in 0..3 {
            let load = e.load(UplinkId(k)).unwrap();
            assert_eq!(load.rx_bytes_per_s, 0, "{name}: uplink {k}");
            let id = e.identity_counters(IdentityId(k)).unwrap();
            assert_eq!(id.rx_bytes, 0, "{name}: identity {k}");
        }
        // The NIC's own counters still see every arrival.
        assert_eq!(
            e.uplink_counters(UplinkId(u)).unwrap().rx_frames,
            1000,
            "{name}"
        );
    }
    let mut e = base.clone();
    let mut f = vec![0u8; 1500];
    testkit::ipv4(&mut f, nic(1), GW, GW_IP, ip(1));
    assert_eq!(
        e.uplink_receive(0, UplinkId(0), &mut f),
        RxDecision::ToGuest { guest: GuestId(0) }
    );
    e.tick(10 * MS);
    assert!(e.load(UplinkId(0)).unwrap().rx_bytes_per_s > 0);
    assert_eq!(e.identity_counters(IdentityId(0)).unwrap().rx_bytes, 1500);
}
/// An ARP "promise" (receive load expected because a peer learned an
/// identity) is made once per guest IP and peer: VM1 repeating its ARP
/// request for the gateway weighs on mac1's uplink no more than one
/// request does. Probe: VM2, bound to mac1 and mac2, answers ARP through
/// the identity with the lower receive score; NIC2 carries receive
/// traffic worth about three promises, so a single promise on NIC1 keeps
/// NIC1 the lower and twenty would not; four different peers do tip it.
#[test]
fn repeated_guest_arp_requests_promise_once() {
    let mut base = example(Mode::Identity, [1000; 3]);
    base.bind(ipa(2), &[IdentityId(0), IdentityId(1)]).unwrap();
    // One promise is 1/64 of a 10 ms tick at 1 Gbit/s: 19 531 bytes.
    for _ in 0..40 {
        let mut r = vec![0u8; 1500];
        testkit::ipv4(&mut r, nic(2), GW, GW_IP, ip(2));
        assert_eq!(
            base.uplink_receive(0, UplinkId(1), &mut r),
            RxDecision::ToGuest { guest: GuestId(1) }
        );
    }
    for requests in [1, 20] {
        let mut e = base.clone();
        for _ in 0..requests {
            let mut f = vec![0u8; 60];
            testkit::arp(
                &mut f,
                1,
                MacAddr::BROADCAST,
                vm(1),
                ip(1),
                MacAddr::default(),
                GW_IP,
            );
            assert_eq!(
                sent_on(e.guest_transmit(0, GuestId(0), &mut f)),
                UplinkId(0)
            );
        }
        let mut f = vec![0u8; 60];
        testkit::arp(&mut f, 2, GW, vm(2), ip(2), GW, GW_IP);
        assert_eq!(
            sent_on(e.guest_transmit(0, GuestId(1), &mut f)),
            UplinkId(0),
            "after {requests} ARP requests from VM1"
        );
    }
    // Requests for four different peers are four promises: now NIC1 looks
    // the busier receiver, so peers learning VM2 spread to NIC2.
    let mut e = base.clone();
    for peer in [GW_IP, ip(50), ip(51), ip(52)] {
        let mut f = vec![0u8; 60];
        testkit::arp(
            &mut f,
            1,
            MacAddr::BROADCAST,
            vm(1),
            ip(1),
            MacAddr::default(),
            peer,
        );
        e.guest_transmit(0, GuestId(0), &mut f);
    }
    let mut f = vec![0u8; 60];
    testkit::arp(&mut f, 2, GW, vm(2), ip(2), GW, GW_IP);
    assert_eq!(
        sent_on(e.guest_transmit(0, GuestId(1), &mut f)),
        UplinkId(1)
    );
}
// ---------------------------------------------------------------------------
// Group-addressed frames from the outside and denied guests (issue 12).
// ---------------------------------------------------------------------------

fn v6(k: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = 0xfd;
    a[15] = k;
    a
}

/// A plain IPv6 frame (UDP, no payload) into `f`.
fn ipv6_frame(f: &mut [u8], dst: MacAddr, src: MacAddr, sip: [u8; 16], dip: [u8; 16]) {
    f[0..6].copy_from_slice(&dst.0);
    f[6..12].copy_from_slice(&src.0);
    f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    f[14..54].fill(0);
    f[14] = 0x60;
    f[20] = 17;
    f[21] = 64;
    f[22..38].copy_from_slice(&sip);
    f[38..54].copy_from_slice(&dip);
}

/// Three guests, each with an IPv4 and an IPv6 address: A (guest 0) may use
/// the network, D (guest 1) is denied ([0029]: both IPs bound to nothing),
/// M (guest 2) has its IPv4 bound and its IPv6 denied.
fn deny_setup(mode: Mode) -> Engine {
    let mut e = Engine::new(Config::with_mode(mode));
    for k in 0..2 {
        e.add_uplink(UplinkConfig::new(nic(k + 1))).unwrap();
    }
    for k in 1..=3 {
        let ips = [ipa(k), IpAddr::V6(Ipv6Addr::from(v6(k)))];
        e.add_guest(vm(k), &ips).unwrap();
    }
    e.bind(ipa(2), &[]).unwrap();
    e.bind(IpAddr::V6(Ipv6Addr::from(v6(2))), &[]).unwrap();
    e.bind(IpAddr::V6(Ipv6Addr::from(v6(3))), &[]).unwrap();
    e.set_own_stack(IdentityId(0), &[IpAddr::V4(Ipv4Addr::from(OWN_IP))])
        .unwrap();
    e
}

/// A group-addressed frame from the outside reaches a guest only if the
/// guest may use the network in that frame's family: one of its IPv4
/// addresses is bound for IPv4 and ARP, one of its IPv6 addresses for
/// IPv6, any for other ethertypes. ARP for a local IP goes to its owner
/// alone, and not at all if that IP is denied. A denied guest hears
/// nothing from the outside; local switching is unchanged.
#[test]
fn group_addressed_frames_skip_denied_guests() {
    const A: GuestId = GuestId(0);
    const D: GuestId = GuestId(1);
    const M: GuestId = GuestId(2);
    let set = |gs: &[GuestId]| {
        let mut s = GuestSet::EMPTY;
        for &g in gs {
            s.insert(g);
        }
        s
    };
    let v4 = |dst: MacAddr, dip: [u8; 4]| {
        let mut f = vec![0u8; 60];
        testkit::ipv4(&mut f, dst, GW, GW_IP, dip);
        f
    };
    let v6f = |dst: MacAddr, dip: [u8; 16]| {
        let mut f = vec![0u8; 60];
        ipv6_frame(&mut f, dst, GW, v6(254), dip);
        f
    };
    let arp_req = |tpa: [u8; 4]| {
        let mut f = vec![0u8; 60];
        testkit::arp(
            &mut f,
            1,
            MacAddr::BROADCAST,
            GW,
            GW_IP,
            MacAddr::default(),
            tpa,
        );
        f
    };
    let lldp = || {
        let mut f = vec![0u8; 60];
        f[0..6].copy_from_slice(&[0x01, 0x80, 0xc2, 0, 0, 0x0e]);
        f[6..12].copy_from_slice(&GW.0);
        f[12..14].copy_from_slice(&0x88ccu16.to_be_bytes());
        f
    };
    let v4_mcast = MacAddr([0x01, 0, 0x5e, 0, 0, 0xfb]);
    let v6_all_nodes = MacAddr([0x33, 0x33, 0, 0, 0, 1]);
    let mut ff02_1 = [0u8; 16];
    ff02_1[0] = 0xff;
    ff02_1[1] = 0x02;
    ff02_1[15] = 1;
    let cases: Vec<(&str, Vec<u8>, RxDecision)> = vec![
        (
            "ipv4 broadcast",
            v4(MacAddr::BROADCAST, [255; 4]),
            RxDecision::Flood {
                guests: set(&[A, M]),
            },
        ),
        (
            "ipv4 subnet broadcast",
            v4(MacAddr::BROADCAST, ip(255)),
            RxDecision::Flood {
                guests: set(&[A, M]),
            },
        ),
        (
            "ipv4 multicast",
            v4(v4_mcast, [224, 0, 0, 251]),
            RxDecision::Flood {
                guests: set(&[A, M]),
            },
        ),
        (
            "ipv6 multicast",
            v6f(v6_all_nodes, ff02_1),
            RxDecision::Flood { guests: set(&[A]) },
        ),
        (
            "other ethertype",
            lldp(),
            RxDecision::Flood {
                guests: set(&[A, M]),
            },
        ),
        (
            "arp for the allowed guest",
            arp_req(ip(1)),
            RxDecision::ToGuest { guest: A },
        ),
        (
            "arp for the denied guest",
            arp_req(ip(2)),
            RxDecision::Drop(DropReason::Denied),
        ),
        (
            "arp for the mixed guest's ipv4",
            arp_req(ip(3)),
            RxDecision::ToGuest { guest: M },
        ),
        (
            "arp for nobody here",
            arp_req([192, 168, 1, 99]),
            RxDecision::Flood {
                guests: set(&[A, M]),
            },
        ),
    ];
    for mode in [Mode::Identity, Mode::Literal] {
        let mut e = deny_setup(mode);
        for (name, frame, want) in &cases {
            let mut f = frame.clone();
            let d = e.uplink_receive(0, UplinkId(0), &mut f);
            assert_eq!(d, *want, "{mode:?}: {name}");
            e.check_invariants().unwrap();
        }
        // Bound again, D hears IPv4 broadcasts again; denied again, not.
        e.bind(ipa(2), &[IdentityId(1)]).unwrap();
        let mut f = v4(MacAddr::BROADCAST, [255; 4]);
        assert_eq!(
            e.uplink_receive(0, UplinkId(0), &mut f),
            RxDecision::Flood {
                guests: set(&[A, D, M])
            },
            "{mode:?}"
        );
        e.bind(ipa(2), &[]).unwrap();
        assert_eq!(
            e.uplink_receive(0, UplinkId(0), &mut f),
            RxDecision::Flood {
                guests: set(&[A, M])
            },
            "{mode:?}"
        );
        // Local switching still reaches D: a guest's broadcast is the
        // bridge's to flood, and unicast between guests is allowed.
        let mut f = vec![0u8; 60];
        testkit::ipv4(&mut f, vm(2), vm(1), ip(1), ip(2));
        assert_eq!(
            e.guest_transmit(0, A, &mut f),
            TxDecision::SwitchLocal { guest: D },
            "{mode:?}"
        );
    }
}

/// Literal mode reaches guests at their own MAC: a denied guest gets
/// nothing there either, whatever IP the frame names.
#[test]
fn literal_mode_denied_guest_gets_nothing_at_its_mac() {
    let mut e = deny_setup(Mode::Literal);
    for dip in [ip(2), [192, 168, 1, 99], ip(1)] {
        let mut f = vec![0u8; 60];
        testkit::ipv4(&mut f, vm(2), GW, GW_IP, dip);
        assert_eq!(
            e.uplink_receive(0, UplinkId(0), &mut f),
            RxDecision::Drop(DropReason::Denied),
            "to {dip:?}"
        );
    }
    // The allowed guest still receives at its MAC.
    let mut f = vec![0u8; 60];
    testkit::ipv4(&mut f, vm(1), GW, GW_IP, ip(1));
    assert_eq!(
        e.uplink_receive(0, UplinkId(0), &mut f),
        RxDecision::ToGuest { guest: GuestId(0) }
    );
}
