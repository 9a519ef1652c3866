//! aggdom end to end (issue 5, item 5): the real kernel in QEMU, the harness
//! playing the guests (one guest port NIC each) and the outside network (a
//! learning switch joining the uplinks to remote hosts, `rig::Net`), so MAC
//! moves show where a real switch would send replies.
//!
//! Layout (`rig`): uplink *i* is NIC *i* with identity *i* = its factory MAC;
//! guest *j* sits behind the next NICs with MAC `02:00:00:00:01:<j+1>` and IP
//! `10.0.0.<11+j>`; remote host *k* is `10.0.0.<100+k>` behind switch port
//! `uplinks + k`. Guest traffic is UDP with a tag in the payload, so every
//! frame can be followed to where it leaves.
//!
//! QEMU under TCG on shared cores: waits are generous and nothing asserts on
//! time; senders are paced.

use std::net::Ipv4Addr;
use std::thread::sleep;
use std::time::Duration;

use aggdom_harness::frame::{self, Eth, Ipv4Ends, ARP_REPLY};
use aggdom_harness::rig::{
    self, eventually, guest_ip, guest_mac, guest_udp, is_learning_frame, macs, parse_prometheus,
    remote, udp_frame, udp_tag, uplink_mac, Echo, Layout, Net, NicInfo, Stats, OWN_IP,
};
use aggdom_harness::{MacAddr, Machine, NicKind, Received};

/// How long a frame may take through QEMU and aggdom.
const T: Duration = Duration::from_secs(10);
/// How long to wait before concluding that a frame will not come.
const QUIET: Duration = Duration::from_millis(1500);

fn stats(m: &mut Machine) -> Stats {
    Stats::parse(&m.command("stats").unwrap())
}

fn nic(m: &mut Machine, n: usize) -> NicInfo {
    NicInfo::parse(&m.command(&format!("nic {n}")).unwrap())
}

/// Runs a console command that must succeed; returns its reply.
fn ok(m: &mut Machine, cmd: &str) -> String {
    let reply = m.command(cmd).unwrap();
    assert!(!reply.contains("error"), "{cmd:?} failed: {reply}");
    reply
}

/// Sends guest `j`'s frame tagged `tag` into its port and returns the
/// (uplink, frame) it left through.
fn guest_out(m: &Machine, layout: &Layout, j: usize, tag: u64, len: usize) -> (usize, Vec<u8>) {
    m.send_frame(layout.port(j), &guest_udp(j, remote(0), tag, len))
        .unwrap();
    let r = m
        .recv_where(T, |r| {
            r.nic < layout.uplinks && udp_tag(&r.data) == Some(tag)
        })
        .unwrap_or_else(|| panic!("guest {j}'s frame {tag:#x} left through no uplink"));
    (r.nic, r.data)
}

/// Tagged frames still queued from the uplinks (should be none).
fn leaked(m: &Machine, uplinks: usize, tags: std::ops::Range<u64>) -> Vec<Received> {
    m.drain_all()
        .into_iter()
        .filter(|r| r.nic < uplinks && udp_tag(&r.data).is_some_and(|t| tags.contains(&t)))
        .collect()
}

/// Guest `j` sends a surge of 1500-byte frames (about 3 Mbit/s) until
/// `done` says what it waited for happened (checked every 100 ms of load),
/// or `limit` frames were sent.
fn surge<R>(
    m: &mut Machine,
    layout: &Layout,
    j: usize,
    limit: u64,
    mut done: impl FnMut(&mut Machine) -> Option<R>,
) -> Option<R> {
    let mut sent = 0;
    while sent < limit {
        for _ in 0..25 {
            m.send_frame(
                layout.port(j),
                &guest_udp(j, remote(0), 0xf000_0000 + sent, 1500),
            )
            .unwrap();
            sent += 1;
            sleep(Duration::from_millis(4));
        }
        if let Some(v) = done(m) {
            return Some(v);
        }
    }
    None
}

/// Forgets the surge frames the uplinks sent.
fn drop_surge(m: &Machine) {
    for r in m.drain_all() {
        if udp_tag(&r.data).is_some_and(|t| t < 0xf000_0000) {
            panic!("a test frame was queued among the surge: {r:?}");
        }
    }
}

#[test]
fn worked_example_0049_to_0052_step_by_step() {
    // NIC1 is slow (1 Mbit/s) and NIC2 fast, so moving VM1 off NIC1 helps;
    // NIC3 slow too, so VM3 can overload it. Rebalance every 200 ms; an
    // identity that moved stays a minute (exactly one move per surge).
    let layout = Layout::new(3, 3).with("capacity=1,10,1 rebalance_ms=200 dwell_s=60");
    let mut m = layout.boot().unwrap();

    // [0049] ip_k <-> mac_k on NIC_k: each guest's traffic leaves through
    // its own NIC, under its own MAC.
    for j in 0..3 {
        let (u, f) = guest_out(&m, &layout, j, 0x100 + j as u64, 100);
        assert_eq!(u, j, "VM{} left through NIC{}", j + 1, u + 1);
        assert_eq!(macs(&f).0, uplink_mac(j), "VM{} under another MAC", j + 1);
    }

    // Nothing is overloaded yet: a rebalance check moves nothing.
    assert_eq!(m.command("rebalance").unwrap(), "balanced: no move needed");

    // [0050] VM1 surges and overloads NIC1: the rebalance sets NIC2's MAC
    // to mac1 and NIC1's to mac2.
    let moved = surge(&mut m, &layout, 0, 2000, |m| {
        let s = stats(m);
        (s.holder(0) != Some(0)).then_some(s)
    });
    drop_surge(&m);
    let s = moved.expect("VM1's surge on NIC1 moved no identity");
    assert_eq!(
        s.holder(0),
        Some(1),
        "mac1 went to NIC{:?}, not NIC2",
        s.holder(0).map(|h| h + 1)
    );
    assert_eq!(s.holder(1), Some(0), "mac2 did not take NIC1's place");
    assert_eq!(s.holder(2), Some(2), "mac3 moved");
    assert!(s.total("rebalance_moves") >= 1, "{s:?}");
    assert_eq!(
        nic(&mut m, 1).mac,
        uplink_mac(0).to_string(),
        "NIC2's MAC register"
    );
    assert_eq!(
        nic(&mut m, 0).mac,
        uplink_mac(1).to_string(),
        "NIC1's MAC register"
    );
    // VM1's next frames go through NIC2, VM2's through NIC1; the bindings
    // (ip <-> mac) are unchanged.
    let (u, f) = guest_out(&m, &layout, 0, 0x200, 100);
    assert_eq!((u, macs(&f).0), (1, uplink_mac(0)), "VM1 after the move");
    let (u, f) = guest_out(&m, &layout, 1, 0x201, 100);
    assert_eq!((u, macs(&f).0), (0, uplink_mac(1)), "VM2 after the move");
    let b = m.command("bindings").unwrap();
    for (j, id) in [(0, 0), (1, 1), (2, 2)] {
        assert!(
            b.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
                == [guest_ip(j).to_string(), j.to_string(), id.to_string()]),
            "binding of VM{} changed:\n{b}",
            j + 1
        );
    }

    // [0051] VM3 limited to NIC3: pin mac3. It stays on NIC3 even when
    // VM3 overloads NIC3 while VM2 leaves room elsewhere, and no operator
    // swap can take it away.
    ok(&mut m, "pin 2");
    let err = m.command("swap 2 0").unwrap();
    assert!(
        err.starts_with("error:"),
        "swap of a pinned identity: {err}"
    );
    let runs_before = stats(&mut m).total("rebalance_runs");
    let hot = surge(&mut m, &layout, 2, 1000, |m| {
        let s = stats(m);
        (s.uplinks[2].tx_rate * 8 > 1_000_000 && s.total("rebalance_runs") > runs_before + 3)
            .then_some(s)
    });
    drop_surge(&m);
    let s = hot.expect("VM3's surge did not overload NIC3 through several rebalance runs");
    assert_eq!(s.holder(2), Some(2), "pinned mac3 left NIC3");
    let (u, f) = guest_out(&m, &layout, 2, 0x300, 100);
    assert_eq!((u, macs(&f).0), (2, uplink_mac(2)), "VM3 after its surge");

    // NIC3 exclusive: it never changes its MAC. With the pin off, an
    // operator swap is still refused, and when NIC1's link fails its
    // identity (mac2) goes to NIC2, not NIC3.
    ok(&mut m, "exclusive 2 on");
    ok(&mut m, "unpin 2");
    let err = m.command("swap 0 2").unwrap();
    assert!(
        err.starts_with("error:") && err.contains("xclusive"),
        "swap onto an exclusive NIC: {err}"
    );
    m.set_link(0, false).unwrap();
    let s = eventually(T, || {
        let s = stats(&mut m);
        (s.holder(1) != Some(0)).then_some(s)
    })
    .expect("mac2 stayed on NIC1 after its link went down");
    assert_eq!(
        s.holder(1),
        Some(1),
        "mac2 failed over to NIC{:?}",
        s.holder(1).map(|h| h + 1)
    );
    assert_eq!(
        s.uplinks[2].ids,
        vec![2],
        "exclusive NIC3 took another identity"
    );
    let n3 = nic(&mut m, 2);
    assert_eq!(
        (n3.mac.as_str(), n3.filter.len()),
        (uplink_mac(2).to_string().as_str(), 0)
    );
    let (u, f) = guest_out(&m, &layout, 1, 0x301, 100);
    assert_eq!(
        (u, macs(&f).0),
        (1, uplink_mac(1)),
        "VM2 while NIC1 is down"
    );
    m.set_link(0, true).unwrap();
    let s = eventually(T, || {
        let s = stats(&mut m);
        (s.uplinks[0].ids.len() == 1 && s.uplinks[1].ids.len() == 1).then_some(s)
    })
    .expect("NIC1 took no identity back after its link returned");
    assert_eq!(s.uplinks[2].ids, vec![2]);
    ok(&mut m, "exclusive 2 off");

    // [0052] ip1 bound to mac1 and mac2: each VM1 frame takes whichever of
    // the two NICs holding them has less traffic.
    ok(&mut m, "bind 10.0.0.11 0,1");
    let s = stats(&mut m);
    let (h0, h1) = (s.holder(0).unwrap(), s.holder(1).unwrap());
    assert_ne!(h0, h1);
    let mut per = [0u64; 3];
    for t in 0..40u64 {
        let (u, f) = guest_out(&m, &layout, 0, 0x400 + t, 100);
        let want = if u == h0 {
            uplink_mac(0)
        } else {
            uplink_mac(1)
        };
        assert!(
            u == h0 || u == h1,
            "VM1 left through NIC{} holding neither mac1 nor mac2",
            u + 1
        );
        assert_eq!(
            macs(&f).0,
            want,
            "VM1 on NIC{} under the wrong identity",
            u + 1
        );
        per[u] += 1;
        sleep(Duration::from_millis(20));
    }
    // "Less traffic" is relative to capacity: the 10 Mbit/s NIC2 takes
    // more of VM1's frames than the 1 Mbit/s NIC1, and both take some.
    let (slow, fast) = if h0 == 0 { (h0, h1) } else { (h1, h0) };
    assert_eq!((slow, fast), (0, 1), "holders after the link returned");
    assert!(
        per[slow] >= 1 && per[fast] > per[slow],
        "VM1 bound to mac1+mac2 did not spread by load: {per:?} frames per NIC"
    );
    assert!(leaked(&m, 3, 0x100..0x500).is_empty(), "frames left twice");
}

#[test]
fn guest_bound_to_two_identities_uses_both_uplinks() {
    let layout = Layout::new(2, 1).with("bind=10.0.0.11:0+1");
    let mut m = layout.boot().unwrap();
    let mut per = [0u64; 2];
    for t in 0..40u64 {
        let (u, f) = guest_out(&m, &layout, 0, 0x10 + t, 200);
        assert_eq!(
            macs(&f).0,
            uplink_mac(u),
            "uplink {u} sent under another identity"
        );
        per[u] += 1;
        sleep(Duration::from_millis(20));
    }
    assert!(per[0] >= 8 && per[1] >= 8, "frames per uplink: {per:?}");
    let s = stats(&mut m);
    assert_eq!(s.guests[0].per_uplink, per.to_vec(), "stats per-uplink tx");
    assert_eq!(s.guests[0].tx_frames, 40);
}

#[test]
fn denied_guest_gets_nothing_out_and_the_drop_is_counted() {
    // Guest 1's IP is bound to no identity ([0029]); guest 0 is the control.
    let layout = Layout::new(2, 2).with("bind=10.0.0.12:none");
    let mut m = layout.boot().unwrap();
    let b = m.command("bindings").unwrap();
    assert!(b.contains("none (denied)"), "{b}");
    for t in 0..5 {
        m.send_frame(layout.port(1), &guest_udp(1, remote(0), 0x50 + t, 100))
            .unwrap();
        sleep(Duration::from_millis(20));
    }
    // Even its ARP for the outside is not let out.
    let r = remote(0);
    m.send_frame(
        layout.port(1),
        &frame::arp_request(guest_mac(1), guest_ip(1), r.ip),
    )
    .unwrap();
    let s = eventually(T, || {
        let s = stats(&mut m);
        (s.guests[1].drops("denied") >= 6).then_some(s)
    })
    .unwrap_or_else(|| panic!("denied drops not counted:\n{}", m.command("stats").unwrap()));
    assert_eq!(s.guests[1].drops("denied"), 6);
    assert_eq!(s.guests[1].tx_frames, 0);
    let (u, _) = guest_out(&m, &layout, 0, 0x60, 100);
    assert_eq!(u, 0, "control guest");
    // Nothing gets in either: a frame for its IP at an identity's MAC, on
    // the uplink holding that identity, is dropped and counted.
    let inbound = udp_frame(
        Ipv4Ends {
            src_mac: r.mac,
            dst_mac: uplink_mac(0),
            src_ip: r.ip,
            dst_ip: guest_ip(1),
        },
        0x61,
        100,
    );
    m.send_frame(0, &inbound).unwrap();
    let s = eventually(T, || {
        let s = stats(&mut m);
        (s.guests[1].drops("rx_denied") >= 1).then_some(s)
    })
    .unwrap_or_else(|| {
        panic!(
            "denied receive not counted:\n{}",
            m.command("stats").unwrap()
        )
    });
    assert_eq!(s.uplinks[0].rx_drops.get("denied"), Some(&1));
    assert!(
        m.recv_where(QUIET, |x| udp_tag(&x.data) == Some(0x61))
            .is_none(),
        "a frame for the denied IP was delivered"
    );
    sleep(QUIET);
    let out: Vec<Received> = m
        .drain_all()
        .into_iter()
        .filter(|r| r.nic < 2 && macs(&r.data).0 != MacAddr::default())
        .filter(|r| {
            let e = Eth::parse(&r.data).unwrap();
            e.arp().is_some_and(|a| a.sender_ip == guest_ip(1))
                || e.ipv4().is_some_and(|ip| ip.src == guest_ip(1))
        })
        .collect();
    assert!(out.is_empty(), "the denied guest got frames out: {out:?}");
}

#[test]
fn spoofed_frames_are_dropped_and_counted() {
    let layout = Layout::new(2, 2);
    let mut m = layout.boot().unwrap();
    let r = remote(0);
    let ends = |src_mac, src_ip| Ipv4Ends {
        src_mac,
        dst_mac: r.mac,
        src_ip,
        dst_ip: r.ip,
    };
    let spoofs = [
        // Another guest's MAC, own IP.
        udp_frame(ends(guest_mac(1), guest_ip(0)), 0x70, 100),
        // A made-up MAC.
        udp_frame(ends(MacAddr::local(0x777), guest_ip(0)), 0x71, 100),
        // Own MAC, another guest's IP.
        udp_frame(ends(guest_mac(0), guest_ip(1)), 0x72, 100),
        // Own MAC, a made-up IP.
        udp_frame(ends(guest_mac(0), Ipv4Addr::new(10, 0, 0, 99)), 0x73, 100),
        // ARP claiming another guest's IP.
        frame::arp_request(guest_mac(0), guest_ip(1), r.ip),
    ];
    for f in &spoofs {
        m.send_frame(layout.port(0), f).unwrap();
        sleep(Duration::from_millis(20));
    }
    let s = eventually(T, || {
        let s = stats(&mut m);
        (s.guests[0].drops("spoofed_mac") + s.guests[0].drops("spoofed_ip") >= 5).then_some(s)
    })
    .unwrap_or_else(|| panic!("spoof drops not counted:\n{}", m.command("stats").unwrap()));
    assert_eq!(s.guests[0].drops("spoofed_mac"), 2, "{:?}", s.guests[0]);
    assert_eq!(s.guests[0].drops("spoofed_ip"), 3, "{:?}", s.guests[0]);
    assert_eq!(s.guests[0].tx_frames, 0);
    // The guest's honest frame still leaves.
    guest_out(&m, &layout, 0, 0x74, 100);
    sleep(QUIET);
    let out: Vec<Received> = m
        .drain_all()
        .into_iter()
        .filter(|r| r.nic < 2)
        .filter(|r| {
            let e = Eth::parse(&r.data).unwrap();
            udp_tag(&r.data).is_some_and(|t| (0x70..0x74).contains(&t))
                || e.arp().is_some_and(|a| a.sender_ip == guest_ip(1))
        })
        .collect();
    assert!(out.is_empty(), "spoofed frames got out: {out:?}");
    let table = m.command("stats").unwrap();
    assert!(table.contains("spoofed_mac=2 spoofed_ip=3"), "{table}");
}

/// Guest 0 and remote host 0 talk through the switch: a tagged frame out,
/// a tagged reply back to the identity MAC it came from, delivered to the
/// guest. Returns the uplink each direction used.
fn round_trip(m: &Machine, layout: &Layout, net: &Net, tag: u64) -> (usize, usize, MacAddr) {
    m.send_frame(layout.port(0), &guest_udp(0, remote(0), tag, 100))
        .unwrap();
    let out = net
        .remote_recv(m, 0, T, |f| udp_tag(f) == Some(tag))
        .unwrap()
        .unwrap_or_else(|| panic!("frame {tag:#x} never reached the remote host"));
    let identity = macs(&out).0;
    let sent_by = net.port_of(identity).expect("switch learnt the identity");
    let r = remote(0);
    let reply = udp_frame(
        Ipv4Ends {
            src_mac: r.mac,
            dst_mac: identity,
            src_ip: r.ip,
            dst_ip: guest_ip(0),
        },
        tag | 0x8000,
        100,
    );
    net.remote_send(m, 0, &reply).unwrap();
    let back = m
        .recv_where(T, |x| x.nic == layout.port(0) && udp_tag(&x.data) == Some(tag | 0x8000))
        .unwrap_or_else(|| {
            panic!("the reply to {identity} never reached the guest (switch sends it to port {sent_by})")
        });
    assert_eq!(
        macs(&back.data),
        (r.mac, guest_mac(0)),
        "reply as the guest sees it"
    );
    (sent_by, net.port_of(identity).unwrap(), identity)
}

/// Passes what the uplinks send through the switch until it has learnt
/// `id` on `port` (from whatever the machine sends: nothing but a learning
/// frame, when guests are quiet).
fn relearnt(m: &Machine, net: &Net, id: MacAddr, port: usize) {
    eventually(T, || {
        net.pump(m, Duration::from_millis(50)).unwrap();
        (net.port_of(id) == Some(port)).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the switch never learnt {id} on port {port} (still {:?})",
            net.port_of(id)
        )
    });
}

/// Remote host 0 speaks first: a frame to guest 0 at identity MAC `id`,
/// which must reach guest 0. Returns the switch port it was sent to.
fn remote_first(m: &Machine, layout: &Layout, net: &Net, id: MacAddr, tag: u64) -> usize {
    let r = remote(0);
    let f = udp_frame(
        Ipv4Ends {
            src_mac: r.mac,
            dst_mac: id,
            src_ip: r.ip,
            dst_ip: guest_ip(0),
        },
        tag,
        100,
    );
    net.remote_send(m, 0, &f).unwrap();
    let port = net.port_of(id).expect("the switch knows the identity");
    m.recv_where(T, |x| {
        x.nic == layout.port(0) && udp_tag(&x.data) == Some(tag)
    })
    .unwrap_or_else(|| panic!("remote's frame to {id} (switch port {port}) did not reach guest 0"));
    port
}

#[test]
fn swap_moves_an_identity_and_the_switch_relearns_it() {
    swap_relearnt(Layout::new(2, 1));
}

#[test]
fn swap_relearnt_on_e1000_uplinks_too() {
    let mut layout = Layout::new(2, 1);
    layout.kind = NicKind::E1000;
    swap_relearnt(layout);
}

fn swap_relearnt(layout: Layout) {
    let mut m = layout.boot().unwrap();
    let net = Net::new(2, 1);
    net.announce(&m, 0).unwrap();
    let (out, back, id) = round_trip(&m, &layout, &net, 0x10);
    assert_eq!((out, back, id), (0, 0, uplink_mac(0)));
    net.pump(&m, Duration::from_millis(300)).unwrap();
    net.take_log();

    let reply = ok(&mut m, "swap 0 1");
    assert!(
        reply.contains("identity 0") && reply.contains("0 -> 1"),
        "{reply}"
    );
    // The new holder sends the learning frame; the switch moves mac0 to port 1.
    let learnt = eventually(T, || {
        net.pump(&m, Duration::from_millis(100)).unwrap();
        net.take_log()
            .into_iter()
            .find(|(_, f)| is_learning_frame(f, uplink_mac(0)))
    })
    .expect("no learning frame for identity 0 after the swap");
    assert_eq!(
        learnt.0, 1,
        "the learning frame left uplink {}, not the new holder",
        learnt.0
    );
    assert_eq!(net.port_of(uplink_mac(0)), Some(1));
    assert_eq!(net.moves_of(uplink_mac(0)), vec![(0, 1)]);
    // The outside reaches the guest through uplink 1 before it says anything.
    assert_eq!(remote_first(&m, &layout, &net, uplink_mac(0), 0x18), 1);
    // Replies to the guest's identity arrive on uplink 1 and reach the
    // guest; its frames leave there too.
    let (out, back, id) = round_trip(&m, &layout, &net, 0x20);
    assert_eq!((out, back, id), (1, 1, uplink_mac(0)));
    let s = stats(&mut m);
    assert!(s.total("learning_frames") >= 2, "{:?}", s.totals);
}

#[test]
fn link_failure_moves_identities_and_traffic_resumes_then_they_return() {
    failover(Layout::new(2, 1));
}

#[test]
fn link_failure_on_e1000_uplinks_moves_identities_and_back() {
    let mut layout = Layout::new(2, 1);
    layout.kind = NicKind::E1000;
    failover(layout);
}

fn failover(layout: Layout) {
    let mut m = layout.boot().unwrap();
    let net = Net::new(2, 1);
    net.announce(&m, 0).unwrap();
    assert_eq!(round_trip(&m, &layout, &net, 0x10).0, 0);

    m.set_link(0, false).unwrap();
    let s = eventually(T, || {
        let s = stats(&mut m);
        (s.holder(0) == Some(1)).then_some(s)
    })
    .unwrap_or_else(|| {
        panic!(
            "identity 0 did not fail over:\n{}",
            m.command("stats").unwrap()
        )
    });
    assert!(!s.uplinks[0].link_up);
    assert!(s.total("failover_moves") >= 1);
    // The outside reaches the guest through uplink 1 before the guest says
    // anything: the switch relearnt identity 0 from the learning frame.
    relearnt(&m, &net, uplink_mac(0), 1);
    assert_eq!(remote_first(&m, &layout, &net, uplink_mac(0), 0x18), 1);
    assert_eq!(net.moves_of(uplink_mac(0)), vec![(0, 1)]);
    // Traffic resumes through uplink 1 both ways.
    let (out, back, id) = round_trip(&m, &layout, &net, 0x20);
    assert_eq!(
        (out, back, id),
        (1, 1, uplink_mac(0)),
        "while uplink 0 is down"
    );
    assert!(net.moves_of(uplink_mac(0)).contains(&(0, 1)));

    m.set_link(0, true).unwrap();
    eventually(T, || (stats(&mut m).holder(0) == Some(0)).then_some(())).unwrap_or_else(|| {
        panic!(
            "identity 0 did not return:\n{}",
            m.command("stats").unwrap()
        )
    });
    relearnt(&m, &net, uplink_mac(0), 0);
    assert_eq!(remote_first(&m, &layout, &net, uplink_mac(0), 0x28), 0);
    let (out, back, id) = round_trip(&m, &layout, &net, 0x30);
    assert_eq!(
        (out, back, id),
        (0, 0, uplink_mac(0)),
        "after uplink 0 came back"
    );
    assert!(net.moves_of(uplink_mac(0)).contains(&(1, 0)));
}

#[test]
fn literal_mode_writes_and_restores_the_mac_register_around_each_frame() {
    literal(Layout::new(2, 1).with("mode=literal"));
}

#[test]
fn literal_mode_on_e1000_writes_and_restores_the_mac_register_too() {
    let mut layout = Layout::new(2, 1).with("mode=literal");
    layout.kind = NicKind::E1000;
    literal(layout);
}

fn literal(layout: Layout) {
    let mut m = layout.boot().unwrap();
    assert_eq!(m.command("mode").unwrap(), "mode literal");
    let before = nic(&mut m, 0);
    assert_eq!(before.mac, uplink_mac(0).to_string());
    // (At boot literal mode writes each uplink's MAC once, to find out
    // whether its driver can.)
    let other_before = nic(&mut m, 1);
    const N: u64 = 5;
    for t in 0..N {
        let (u, f) = guest_out(&m, &layout, 0, 0x10 + t, 100);
        assert_eq!(u, 0);
        // On the wire the frame keeps the guest's own MAC (claim step 8).
        assert_eq!(macs(&f).0, guest_mac(0), "literal mode rewrote the source");
    }
    let after = nic(&mut m, 0);
    assert_eq!(
        after.counter("mac_writes"),
        before.counter("mac_writes") + 2 * N,
        "MAC register writes for {N} frames: before {before:?}, after {after:?}"
    );
    // Step 10: the register reads the uplink's own MAC again.
    assert_eq!(after.mac, uplink_mac(0).to_string());
    let other = nic(&mut m, 1);
    assert_eq!(
        other.counter("mac_writes"),
        other_before.counter("mac_writes"),
        "uplink 1 sent nothing: {other:?}"
    );
    // Receive: the uplink accepts the guest's MAC and delivers to it.
    let r = remote(0);
    let reply = udp_frame(
        Ipv4Ends {
            src_mac: r.mac,
            dst_mac: guest_mac(0),
            src_ip: r.ip,
            dst_ip: guest_ip(0),
        },
        0x99,
        100,
    );
    m.send_frame(0, &reply).unwrap();
    let got = m
        .recv_where(T, |x| {
            x.nic == layout.port(0) && udp_tag(&x.data) == Some(0x99)
        })
        .expect("a frame to the guest's MAC did not reach it in literal mode");
    assert_eq!(macs(&got.data).1, guest_mac(0));
}

#[test]
fn own_ip_answers_arp_and_ping() {
    let layout = Layout::new(2, 1).with("ip=10.0.0.2/24");
    let m = layout.boot().unwrap();
    let net = Net::new(2, 1);
    let r = remote(0);
    net.remote_send(&m, 0, &frame::arp_request(r.mac, r.ip, OWN_IP))
        .unwrap();
    let f = net
        .remote_recv(&m, 0, T, |f| {
            Eth::parse(f)
                .and_then(|e| e.arp())
                .is_some_and(|a| a.op == ARP_REPLY && a.sender_ip == OWN_IP)
        })
        .unwrap()
        .expect("no ARP reply for the own IP");
    let arp = Eth::parse(&f).unwrap().arp().unwrap();
    assert_eq!((arp.target_mac, arp.target_ip), (r.mac, r.ip));
    let own_mac = arp.sender_mac;
    assert_eq!(own_mac, uplink_mac(0), "the own stack starts on identity 0");

    let ends = Ipv4Ends {
        src_mac: r.mac,
        dst_mac: own_mac,
        src_ip: r.ip,
        dst_ip: OWN_IP,
    };
    for seq in 1..=3u16 {
        let f = rig::ping(&net.link(&m, 0), ends, 0x4242, seq, b"aggdom ping", T)
            .unwrap()
            .unwrap_or_else(|| panic!("no echo reply {seq}"));
        assert_eq!(
            ends.echo_reply(&f),
            Some((0x4242, seq, &b"aggdom ping"[..]))
        );
        assert_eq!(
            macs(&f).0,
            own_mac,
            "the own stack's frames carry its identity"
        );
    }
}

#[test]
fn metrics_over_tcp_agree_with_stats() {
    let layout = Layout::new(2, 2).with("ip=10.0.0.2/24 bind=10.0.0.12:none");
    let mut m = layout.boot().unwrap();
    let net = Net::new(2, 1);
    net.announce(&m, 0).unwrap();
    // Some traffic of every kind: sent, denied, spoofed, received.
    for t in 0..6 {
        round_trip(&m, &layout, &net, 0x10 + t);
    }
    for t in 0..3 {
        m.send_frame(layout.port(1), &guest_udp(1, remote(0), 0x30 + t, 100))
            .unwrap();
    }
    m.send_frame(layout.port(0), &guest_udp(1, remote(0), 0x40, 100))
        .unwrap();
    net.pump(&m, Duration::from_millis(500)).unwrap();
    let before = stats(&mut m);
    assert_eq!(
        before.guests[1].drops("denied"),
        3,
        "{:?}",
        before.guests[1]
    );

    let r = remote(0);
    let ends = Ipv4Ends {
        src_mac: r.mac,
        dst_mac: uplink_mac(0),
        src_ip: r.ip,
        dst_ip: OWN_IP,
    };
    let text = rig::get_metrics(&net.link(&m, 0), ends, 40000).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    net.pump(&m, Duration::from_millis(500)).unwrap();
    let after = stats(&mut m);
    let p = parse_prometheus(body);
    let get = |k: &str| -> u64 {
        *p.get(k)
            .unwrap_or_else(|| panic!("no sample {k} in:\n{body}"))
    };

    // Guest and identity counters: the scrape does not touch them, so they
    // must be equal to the console's.
    for (g, gs) in before.guests.iter().enumerate() {
        assert_eq!(
            &after.guests[g], gs,
            "guest {g} counters changed while quiescent"
        );
        let l = format!("{{guest=\"{g}\",mac=\"{}\"}}", guest_mac(g));
        assert_eq!(
            get(&format!("aggdom_guest_tx_frames_total{l}")),
            gs.tx_frames,
            "guest {g}"
        );
        assert_eq!(
            get(&format!("aggdom_guest_tx_bytes_total{l}")),
            gs.tx_bytes,
            "guest {g}"
        );
        assert_eq!(
            get(&format!("aggdom_guest_rx_frames_total{l}")),
            gs.rx_frames,
            "guest {g}"
        );
        assert_eq!(
            get(&format!("aggdom_guest_rx_bytes_total{l}")),
            gs.rx_bytes,
            "guest {g}"
        );
        assert_eq!(
            get(&format!(
                "aggdom_guest_rx_drops_total{{guest=\"{g}\",reason=\"denied\"}}"
            )),
            gs.drops("rx_denied"),
            "guest {g} rx denied"
        );
        for reason in ["denied", "spoofed_mac", "spoofed_ip"] {
            assert_eq!(
                get(&format!(
                    "aggdom_guest_tx_drops_total{{guest=\"{g}\",reason=\"{reason}\"}}"
                )),
                gs.drops(reason),
                "guest {g} {reason}"
            );
        }
        for (u, n) in gs.per_uplink.iter().enumerate() {
            assert_eq!(
                get(&format!(
                    "aggdom_guest_uplink_tx_frames_total{{guest=\"{g}\",uplink=\"{u}\"}}"
                )),
                *n
            );
        }
    }
    assert_eq!(before.guests[0].tx_frames, 6);
    assert_eq!(before.guests[0].rx_frames, 6);
    // The scrape's first frame may swap the own stack's identity onto the
    // least-loaded uplink (claim steps 3-5), before the metrics are taken:
    // holders and moves are compared with the console after the scrape.
    for (i, id) in after.identities.iter().enumerate() {
        let l = format!("{{identity=\"{i}\",mac=\"{}\"}}", id.mac);
        assert_eq!(
            get(&format!("aggdom_identity_holder{l}")),
            id.holder.unwrap() as u64,
            "identity {i} holder"
        );
        assert_eq!(get(&format!("aggdom_identity_moves_total{l}")), id.moves);
    }
    // Uplink and own-stack counters grow with the scrape itself: the
    // scrape's values lie between the console's before and after.
    let between = |what: &str, k: String, b: u64, a: u64| {
        let v = get(&k);
        assert!(
            b <= v && v <= a,
            "{what}: metrics {v}, stats before {b} after {a}"
        );
    };
    for (u, (b, a)) in before.uplinks.iter().zip(&after.uplinks).enumerate() {
        let l = format!("{{uplink=\"{u}\"}}");
        between(
            "uplink tx frames",
            format!("aggdom_uplink_tx_frames_total{l}"),
            b.tx_frames,
            a.tx_frames,
        );
        between(
            "uplink tx bytes",
            format!("aggdom_uplink_tx_bytes_total{l}"),
            b.tx_bytes,
            a.tx_bytes,
        );
        between(
            "uplink rx frames",
            format!("aggdom_uplink_rx_frames_total{l}"),
            b.rx_frames,
            a.rx_frames,
        );
        between(
            "uplink rx bytes",
            format!("aggdom_uplink_rx_bytes_total{l}"),
            b.rx_bytes,
            a.rx_bytes,
        );
        between(
            "mac writes",
            format!("aggdom_uplink_mac_writes_total{l}"),
            b.mac_writes,
            a.mac_writes,
        );
        assert_eq!(
            get(&format!("aggdom_uplink_identities{l}")),
            a.ids.len() as u64
        );
        for reason in [
            "not_holder",
            "duplicate_broadcast",
            "unknown_destination",
            "denied",
        ] {
            let n = |x: &rig::UplinkStats| x.rx_drops.get(reason).copied().unwrap_or(0);
            between(
                "uplink rx drops",
                format!("aggdom_uplink_rx_drops_total{{uplink=\"{u}\",reason=\"{reason}\"}}"),
                n(b),
                n(a),
            );
        }
    }
    between(
        "own rx",
        "aggdom_own_rx_frames_total".into(),
        before.total("own_rx"),
        after.total("own_rx"),
    );
    between(
        "own tx",
        "aggdom_own_tx_frames_total".into(),
        before.total("own_tx"),
        after.total("own_tx"),
    );
    for (name, key) in [
        ("aggdom_rebalance_moves_total", "rebalance_moves"),
        ("aggdom_failover_moves_total", "failover_moves"),
    ] {
        assert_eq!(get(name), before.total(key), "{name}");
        assert_eq!(get(name), after.total(key), "{name}");
    }
    between(
        "learning frames",
        "aggdom_datapath_learning_frames_total".into(),
        before.total("learning_frames"),
        after.total("learning_frames"),
    );
    // Every family has HELP and TYPE.
    for l in body.lines().filter(|l| !l.starts_with('#')) {
        let name = l.split(['{', ' ']).next().unwrap();
        assert!(
            body.contains(&format!("# TYPE {name} ")),
            "no TYPE for {name}"
        );
        assert!(
            body.contains(&format!("# HELP {name} ")),
            "no HELP for {name}"
        );
    }
}

/// Remote host `k`'s TCP ends towards the own IP (reached at identity 0).
fn to_own_ip(k: usize) -> Ipv4Ends {
    let r = remote(k);
    Ipv4Ends {
        src_mac: r.mac,
        dst_mac: uplink_mac(0),
        src_ip: r.ip,
        dst_ip: OWN_IP,
    }
}

/// `GET /metrics` from remote host `k`: the response, or why there is none.
fn scrape(m: &Machine, net: &Net, k: usize, src_port: u16) -> Result<String, String> {
    rig::get_metrics(&net.link(m, k), to_own_ip(k), src_port).map_err(|e| e.to_string())
}

/// The `domain:` line of `stats` as (name, value) pairs.
fn domain_counters(m: &mut Machine) -> std::collections::BTreeMap<String, u64> {
    let text = m.command("stats").unwrap();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("domain: "))
        .unwrap_or_else(|| panic!("no domain line in stats:\n{text}"));
    line.split(", ")
        .filter_map(|w| w.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

#[test]
fn silent_clients_holding_connections_do_not_block_a_scrape() {
    let layout = Layout::new(2, 1).with("ip=10.0.0.2/24");
    let mut m = layout.boot().unwrap();
    let net = Net::new(2, 1);
    net.announce(&m, 0).unwrap();
    // More silent connections than the server has sockets: each completes
    // the handshake (or is refused) and never sends a byte.
    let mut held = 0;
    for port in 41000..41006 {
        let open = aggdom_harness::tcp::open_silent(
            &net.link(&m, 0),
            to_own_ip(0),
            port,
            80,
            Duration::from_secs(20),
        )
        .unwrap();
        held += usize::from(open);
    }
    assert!(held >= 2, "only {held} silent connections were accepted");
    let text = scrape(&m, &net, 0, 41100)
        .unwrap_or_else(|why| panic!("a scrape behind {held} silent connections failed: {why}"));
    assert!(text.starts_with("HTTP/1.0 200"), "{text}");
    let body = text.split_once("\r\n\r\n").unwrap().1;
    let p = parse_prometheus(body);
    assert!(
        p["aggdom_http_evicted_total"] >= 2,
        "silent connections made room: {body}"
    );
    let c = domain_counters(&mut m);
    assert_eq!(c["http_requests"], 1, "{c:?}");
    assert_eq!(c["http_refused"], 0, "{c:?}");
    assert!(c["http_evicted"] >= 2, "{c:?}");
}

#[test]
fn metrics_allow_resets_other_clients_and_counts_them() {
    let layout = Layout::new(2, 1).with("ip=10.0.0.2/24 metrics_allow=10.0.0.100/32");
    let mut m = layout.boot().unwrap();
    assert!(
        m.transcript()
            .contains("HTTP /metrics on port 80 for 10.0.0.100/32"),
        "{}",
        m.transcript()
    );
    let net = Net::new(2, 2);
    net.announce(&m, 0).unwrap();
    net.announce(&m, 1).unwrap();
    // Remote 1 (10.0.0.101) is outside the list: reset, and counted (once
    // per SYN that reached the server: a slow host may retransmit one).
    let refused = scrape(&m, &net, 1, 42000).expect_err("10.0.0.101 was served");
    assert!(refused.contains("reset"), "{refused}");
    let c = domain_counters(&mut m);
    assert!(c["http_refused"] >= 1, "{c:?}");
    assert_eq!(c["http_requests"], 0, "{c:?}");
    // Remote 0 (10.0.0.100) is in it.
    let text = scrape(&m, &net, 0, 42001).unwrap();
    assert!(text.starts_with("HTTP/1.0 200"), "{text}");
    let p = parse_prometheus(text.split_once("\r\n\r\n").unwrap().1);
    assert!(p["aggdom_http_refused_total"] >= c["http_refused"]);
    assert_eq!(p["aggdom_http_requests_total"], 1);
}

#[test]
fn bad_config_item_is_named_at_boot_and_nothing_is_applied() {
    // One bad word among good ones (parse time), and one that only fails
    // when the plan is tried (identity 5 does not exist with 2 uplinks).
    for (bad, item) in [("mode=fast", "'mode=fast'"), ("pin=5", "'pin'")] {
        let layout = Layout::new(2, 1).with(&format!("ip=10.0.0.2/24 {bad} bind=10.0.0.11:0+1"));
        let mut m = layout.builder().start().unwrap();
        let log = m.wait_prompt().unwrap();
        let line = log
            .lines()
            .find(|l| l.starts_with("config:"))
            .unwrap_or_else(|| panic!("no config line for {bad}:\n{log}"));
        assert!(
            line.contains(item),
            "{bad}: the line does not name {item}: {line}"
        );
        assert!(line.contains("not started"), "{line}");
        assert!(
            !log.contains("datapath: mode"),
            "a datapath started:\n{log}"
        );
        // Nothing applied: every NIC spare, untouched; no datapath.
        let nics = m.command("nics").unwrap();
        for row in nics.lines().skip(1) {
            assert!(row.contains("spare"), "{bad}: {row}");
        }
        for n in 0..3 {
            let info = nic(&mut m, n);
            assert!(!info.promiscuous, "{bad}: NIC {n} promiscuous");
            assert_eq!(
                (info.counter("mac_writes"), info.counter("filter_writes")),
                (0, 0),
                "{bad}: NIC {n} programmed"
            );
        }
        let s = m.command("stats").unwrap();
        assert!(s.starts_with("error:"), "{s}");
        assert!(m.command("bindings").unwrap().starts_with("error:"));
        // Nobody answers on the own IP.
        let r = remote(0);
        m.send_frame(0, &frame::arp_request(r.mac, r.ip, OWN_IP))
            .unwrap();
        assert!(m.recv_any(QUIET).is_none(), "{bad}: something answered");
    }
}

#[test]
fn broadcasts_the_switch_floods_back_are_not_delivered_to_guests() {
    // Guest 1's identity lives on uplink 1, but broadcasts are taken in on
    // uplink 0; a switch floods guest 1's own ARP request back into uplink
    // 0. Guests must not get it back: a guest that sees its own address
    // claimed by another MAC (ARP, IPv6 DAD) thinks it is duplicated.
    let layout = Layout::new(2, 2);
    let m = layout.boot().unwrap();
    let net = Net::new(2, 1);
    let r = remote(0);
    m.send_frame(
        layout.port(1),
        &frame::arp_request(guest_mac(1), guest_ip(1), r.ip),
    )
    .unwrap();
    let req = net
        .remote_recv(&m, 0, T, |f| {
            Eth::parse(f)
                .and_then(|e| e.arp())
                .is_some_and(|a| a.sender_ip == guest_ip(1))
        })
        .unwrap()
        .expect("guest 1's ARP request never reached the remote host");
    assert_eq!(macs(&req).0, uplink_mac(1), "left under identity 1");
    net.pump(&m, Duration::from_millis(300)).unwrap();
    let back: Vec<Received> = std::iter::from_fn(|| {
        m.recv_where(QUIET, |x| {
            x.nic >= 2
                && Eth::parse(&x.data)
                    .and_then(|e| e.arp())
                    .is_some_and(|a| a.sender_ip == guest_ip(1))
        })
    })
    .collect();
    // Guest 0 gets the one copy the broadcast owes it (switched locally
    // when guest 1 sent it); guest 1 gets nothing.
    let ports: Vec<usize> = back.iter().map(|x| x.nic).collect();
    assert_eq!(
        ports,
        vec![layout.port(0)],
        "guest ports that got guest 1's ARP request (NIC indices)"
    );
}

#[test]
fn without_an_own_ip_broadcasts_reach_the_guests_and_nothing_is_counted_lost() {
    // No `ip=`: no own stack, so broadcasts flooded to the guests must not
    // also pile up in a queue nobody reads and count as lost.
    let layout = Layout::new(2, 1);
    let mut m = layout.boot().unwrap();
    let net = Net::new(2, 1);
    const N: usize = 80; // more than the own stack's queue holds
    for _ in 0..N {
        net.announce(&m, 0).unwrap();
        sleep(Duration::from_millis(5));
    }
    let mut got = 0;
    while got < N {
        let r = m.recv_where(T, |x| {
            x.nic == layout.port(0)
                && Eth::parse(&x.data)
                    .and_then(|e| e.arp())
                    .is_some_and(|a| a.sender_ip == remote(0).ip)
        });
        if r.is_none() {
            break;
        }
        got += 1;
    }
    assert_eq!(got, N, "the guest got {got} of {N} broadcasts");
    let s = stats(&mut m);
    assert_eq!(
        (s.total("own_queue_full"), s.total("guest_full")),
        (0, 0),
        "frames counted lost: {:?}",
        s.totals
    );
}

#[test]
fn guest_to_guest_frames_are_switched_locally_and_never_reach_an_uplink() {
    // Guest 0 sends to guest 1 by its own MAC and by the identity MAC the
    // outside knows it by (identity 1, what an ARP reply through the
    // uplinks would have told): both are delivered locally, to guest 1's
    // own MAC.
    let layout = Layout::new(2, 2);
    let mut m = layout.boot().unwrap();
    for (tag, dst_mac) in [(0x10, guest_mac(1)), (0x11, uplink_mac(1))] {
        let ends = Ipv4Ends {
            src_mac: guest_mac(0),
            dst_mac,
            src_ip: guest_ip(0),
            dst_ip: guest_ip(1),
        };
        m.send_frame(layout.port(0), &udp_frame(ends, tag, 100))
            .unwrap();
        let got = m
            .recv_where(T, |x| udp_tag(&x.data) == Some(tag))
            .unwrap_or_else(|| panic!("frame {tag:#x} to {dst_mac} went nowhere"));
        assert_eq!(got.nic, layout.port(1), "frame {tag:#x} to {dst_mac}");
        assert_eq!(macs(&got.data), (guest_mac(0), guest_mac(1)));
    }
    sleep(QUIET);
    assert!(
        leaked(&m, 2, 0x10..0x12).is_empty(),
        "a local frame left through an uplink"
    );
    let s = stats(&mut m);
    assert_eq!((s.guests[0].local, s.guests[0].tx_frames), (2, 0));
    assert_eq!(s.guests[1].rx_frames, 2);
}

#[test]
fn watch_prints_stats_every_second_until_a_key_is_pressed() {
    let layout = Layout::new(2, 1);
    let mut m = layout.boot().unwrap();
    m.send_line("watch").unwrap();
    // Two rounds of the stats tables, the counters live: a frame sent
    // between them shows in the second.
    let first = m
        .wait_for("(press any key to stop)", T)
        .expect("no first watch round");
    assert!(first.contains("uplink kind"), "{first}");
    guest_out(&m, &layout, 0, 0x10, 100);
    let second = m
        .wait_for("(press any key to stop)", T)
        .expect("no second watch round");
    let s = Stats::parse(&second);
    assert_eq!(s.guests[0].tx_frames, 1, "{second}");
    m.send_bytes(b"q").unwrap();
    m.wait_for("(watch stopped)", T)
        .expect("watch did not stop");
    m.wait_prompt().unwrap();
    // Stopped: no more rounds, the shell answers.
    assert_eq!(m.command("mode").unwrap(), "mode identity");
    sleep(Duration::from_millis(1500));
    assert!(!m.unread().contains("press any key"), "watch kept printing");
}

#[test]
fn run_time_changes_lose_no_frames_in_flight() {
    // A paced stream from guest 0 while bindings change and identities
    // move under it: every frame leaves exactly once, under the identity
    // of the uplink it leaves through.
    let layout = Layout::new(3, 1);
    let mut m = layout.boot().unwrap();
    let changes = [
        "bind 10.0.0.11 0,1",
        "swap 0 1",
        "bind 10.0.0.11 1,2",
        "exclusive 2 on",
        "swap 0 2",
        "bind 10.0.0.11 auto",
    ];
    const PER: u64 = 20;
    for (k, cmd) in changes.iter().enumerate() {
        for t in 0..PER {
            m.send_frame(
                layout.port(0),
                &guest_udp(0, remote(0), 0x1000 + k as u64 * PER + t, 200),
            )
            .unwrap();
            sleep(Duration::from_millis(5));
        }
        // `swap 0 2` is refused (exclusive); the stream goes on regardless.
        m.command(cmd).unwrap();
    }
    let total = changes.len() as u64 * PER;
    let mut seen = std::collections::BTreeMap::new();
    while (seen.len() as u64) < total {
        let Some(r) = m.recv_where(T, |x| {
            x.nic < 3 && udp_tag(&x.data).is_some_and(|t| (0x1000..0x1000 + total).contains(&t))
        }) else {
            break;
        };
        let src = macs(&r.data).0;
        assert!(
            (0..3).any(|i| src == uplink_mac(i)),
            "a frame left uplink {} under {src}",
            r.nic
        );
        *seen.entry(udp_tag(&r.data).unwrap()).or_insert(0) += 1;
    }
    let missing: Vec<u64> = (0x1000..0x1000 + total)
        .filter(|t| !seen.contains_key(t))
        .collect();
    assert!(missing.is_empty(), "frames lost: {missing:x?}");
    let twice: Vec<(u64, u32)> = seen.into_iter().filter(|&(_, n)| n != 1).collect();
    assert!(
        twice.is_empty(),
        "frames left more than once (tag, times): {twice:x?}"
    );
    sleep(Duration::from_millis(500));
    assert!(
        leaked(&m, 3, 0x1000..0x1000 + total).is_empty(),
        "frames left twice"
    );
    let s = stats(&mut m);
    assert_eq!(s.guests[0].tx_frames, total);
}

#[test]
fn arp_both_ways_names_identities_and_the_guests_see_their_own_macs() {
    // The outside learns guests by ARP: it must be told identity MACs, and
    // the guests must see their own MACs in what comes back.
    let layout = Layout::new(2, 2);
    let m = layout.boot().unwrap();
    let net = Net::new(2, 1);
    let r = remote(0);
    // The remote host resolves guest 1 (bound to identity 1, on uplink 1).
    net.remote_send(&m, 0, &frame::arp_request(r.mac, r.ip, guest_ip(1)))
        .unwrap();
    let req = m
        .recv_where(T, |x| {
            Eth::parse(&x.data)
                .and_then(|e| e.arp())
                .is_some_and(|a| a.target_ip == guest_ip(1) && a.sender_ip == r.ip)
        })
        .expect("the ARP request for guest 1 reached no guest");
    assert_eq!(req.nic, layout.port(1), "delivered to the wrong guest");
    // Guest 1 answers with its own MAC; the outside hears identity 1.
    m.send_frame(
        layout.port(1),
        &frame::arp_reply(guest_mac(1), guest_ip(1), r.mac, r.ip),
    )
    .unwrap();
    let reply = net
        .remote_recv(&m, 0, T, |f| {
            Eth::parse(f)
                .and_then(|e| e.arp())
                .is_some_and(|a| a.op == ARP_REPLY && a.sender_ip == guest_ip(1))
        })
        .unwrap()
        .expect("guest 1's ARP reply never reached the remote host");
    let arp = Eth::parse(&reply).unwrap().arp().unwrap();
    assert_eq!(
        arp.sender_mac,
        uplink_mac(1),
        "ARP reply names {}",
        arp.sender_mac
    );
    assert_eq!(macs(&reply).0, uplink_mac(1));
    assert_eq!(net.port_of(uplink_mac(1)), Some(1));
    // The remote host then reaches guest 1 at that MAC.
    let data = udp_frame(
        Ipv4Ends {
            src_mac: r.mac,
            dst_mac: arp.sender_mac,
            src_ip: r.ip,
            dst_ip: guest_ip(1),
        },
        0x21,
        100,
    );
    net.remote_send(&m, 0, &data).unwrap();
    let got = m
        .recv_where(T, |x| udp_tag(&x.data) == Some(0x21))
        .expect("the remote host's frame to guest 1 arrived nowhere");
    assert_eq!((got.nic, macs(&got.data).1), (layout.port(1), guest_mac(1)));

    // Guest 0 resolves the remote host: the request leaves under identity
    // 0, the reply comes back to it and reaches guest 0 with its own MAC
    // as destination and ARP target.
    m.send_frame(
        layout.port(0),
        &frame::arp_request(guest_mac(0), guest_ip(0), r.ip),
    )
    .unwrap();
    let req = net
        .remote_recv(&m, 0, T, |f| {
            Eth::parse(f)
                .and_then(|e| e.arp())
                .is_some_and(|a| a.sender_ip == guest_ip(0))
        })
        .unwrap()
        .expect("guest 0's ARP request never reached the remote host");
    let q = Eth::parse(&req).unwrap().arp().unwrap();
    assert_eq!((macs(&req).0, q.sender_mac), (uplink_mac(0), uplink_mac(0)));
    net.remote_send(
        &m,
        0,
        &frame::arp_reply(r.mac, r.ip, q.sender_mac, guest_ip(0)),
    )
    .unwrap();
    let got = m
        .recv_where(T, |x| {
            x.nic == layout.port(0)
                && Eth::parse(&x.data)
                    .and_then(|e| e.arp())
                    .is_some_and(|a| a.op == ARP_REPLY && a.sender_ip == r.ip)
        })
        .expect("the remote host's ARP reply did not reach guest 0");
    let a = Eth::parse(&got.data).unwrap().arp().unwrap();
    assert_eq!(
        (macs(&got.data).1, a.target_mac),
        (guest_mac(0), guest_mac(0))
    );
}

/// Remote host 0 pings the own IP at `own_mac` through the switch, once a
/// second up to five times as ping does (the own stack drops an echo
/// request while it resolves the sender); returns the uplink the reply
/// left through.
fn ping_own(m: &Machine, net: &Net, own_mac: MacAddr, seq: u16) -> usize {
    let r = remote(0);
    let ends = Ipv4Ends {
        src_mac: r.mac,
        dst_mac: own_mac,
        src_ip: r.ip,
        dst_ip: OWN_IP,
    };
    // A reply to any request sent so far counts: under TCG a reply may
    // take longer than the second between requests (the last wait is T).
    let first = seq * 10;
    for attempt in 0..5 {
        net.remote_send(
            m,
            0,
            &frame::icmp_echo_request(ends, 7, first + attempt, b"up?"),
        )
        .unwrap();
        let wait = if attempt == 4 {
            T
        } else {
            Duration::from_secs(1)
        };
        let reply = net
            .remote_recv(m, 0, wait, |f| {
                Eth::parse(f)
                    .and_then(|e| e.ipv4())
                    .and_then(|ip| ip.icmp())
                    .is_some_and(|i| i.ty == 0 && (first..=first + attempt).contains(&i.seq))
            })
            .unwrap();
        if let Some(reply) = reply {
            assert_eq!(macs(&reply).0, own_mac);
            return net.port_of(own_mac).unwrap();
        }
    }
    panic!("no echo reply to 5 pings ({seq}x)");
}

#[test]
fn own_ip_stays_reachable_when_its_uplink_fails() {
    let layout = Layout::new(2, 1).with("ip=10.0.0.2/24");
    let mut m = layout.boot().unwrap();
    let net = Net::new(2, 1);
    net.announce(&m, 0).unwrap();
    let own = uplink_mac(0);
    assert_eq!(ping_own(&m, &net, own, 1), 0);
    m.set_link(0, false).unwrap();
    eventually(T, || (stats(&mut m).holder(0) == Some(1)).then_some(()))
        .expect("the own identity did not fail over");
    assert_eq!(
        ping_own(&m, &net, own, 2),
        1,
        "reply while uplink 0 is down"
    );
    // ARP for the own IP is answered too (broadcasts now come in on uplink 1).
    let r = remote(0);
    net.remote_send(&m, 0, &frame::arp_request(r.mac, r.ip, OWN_IP))
        .unwrap();
    let f = net
        .remote_recv(&m, 0, T, |f| {
            Eth::parse(f)
                .and_then(|e| e.arp())
                .is_some_and(|a| a.op == ARP_REPLY && a.sender_ip == OWN_IP)
        })
        .unwrap()
        .expect("no ARP reply while uplink 0 is down");
    assert_eq!(Eth::parse(&f).unwrap().arp().unwrap().sender_mac, own);
}

#[test]
fn make_run_default_configuration_forwards_and_serves_metrics() {
    // What `make run` boots (its NICs and RUN_APPEND, read from the
    // Makefile so the two cannot drift): both guests get out, on the
    // identity the uplinks hold, and /metrics answers on the own IP.
    let makefile = std::fs::read_to_string(aggdom_harness::workspace_root().join("Makefile"))
        .expect("the Makefile");
    let cmdline = makefile
        .lines()
        .find_map(|l| l.strip_prefix("RUN_APPEND ?= "))
        .expect("RUN_APPEND in the Makefile")
        .trim()
        .to_string();
    let mut m = Machine::builder()
        .default_nics()
        .cmdline(cmdline.as_str())
        .boot()
        .unwrap();
    let log = m.transcript();
    assert!(log.contains("datapath: mode identity"), "{log}");
    let net = Net::new(4, 1);
    net.announce(&m, 0).unwrap();
    let guests = [
        (
            4,
            MacAddr([0x52, 0x54, 0, 0, 1, 1]),
            Ipv4Addr::new(10, 0, 0, 11),
        ),
        (
            5,
            MacAddr([0x52, 0x54, 0, 0, 1, 2]),
            Ipv4Addr::new(10, 0, 0, 12),
        ),
    ];
    let r = remote(0);
    for (k, &(port, mac, ip)) in guests.iter().enumerate() {
        let tag = 0x40 + k as u64;
        let ends = Ipv4Ends {
            src_mac: mac,
            dst_mac: r.mac,
            src_ip: ip,
            dst_ip: r.ip,
        };
        m.send_frame(port, &udp_frame(ends, tag, 100)).unwrap();
        let out = net
            .remote_recv(&m, 0, T, |f| udp_tag(f) == Some(tag))
            .unwrap()
            .unwrap_or_else(|| panic!("guest on NIC {port} got nothing out"));
        let src = macs(&out).0;
        let uplink = net.port_of(src).unwrap();
        assert!(uplink < 4, "{src}");
        assert_eq!(
            src,
            MacAddr::qemu(uplink as u8 + 1),
            "identity of uplink {uplink}"
        );
    }
    let ends = Ipv4Ends {
        src_mac: r.mac,
        dst_mac: MacAddr::qemu(1), // identity 0, the own stack's
        src_ip: r.ip,
        dst_ip: OWN_IP,
    };
    let text = rig::get_metrics(&net.link(&m, 0), ends, 40001).unwrap();
    assert!(text.starts_with("HTTP/1.0 200"), "{text}");
    let p = parse_prometheus(text.split_once("\r\n\r\n").unwrap().1);
    let sent: u64 = (0..2)
        .map(|g| {
            p[&format!(
                "aggdom_guest_tx_frames_total{{guest=\"{g}\",mac=\"{}\"}}",
                guests[g].1
            )]
        })
        .sum();
    assert_eq!(sent, 2, "guest frames in /metrics");
    let s = stats(&mut m);
    assert_eq!(s.uplinks.len(), 4);
    assert_eq!(s.guests.len(), 2);
}
