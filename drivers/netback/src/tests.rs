//! Netback against the fake Xen: the xenbus state machine, TX and RX round
//! trips, the malicious-frontend table, and property tests.
use alloc::vec;
use alloc::vec::Vec;

use hypervisor::{DomId, FakeHypervisor, GrantRef, XenError, XenbusState};
use proptest::prelude::*;

use crate::testkit::{self, create_vif, settle, vif_id as id, FakeFrontend};
use crate::wire::*;
use crate::*;

const BE: DomId = 1;
const A: DomId = 5;
const B: DomId = 6;

fn start(config: Config) -> (FakeHypervisor, Netback<FakeHypervisor>) {
    testkit::start_netback(BE, config)
}

fn guest(hv: &mut FakeHypervisor, nb: &mut Netback<FakeHypervisor>, fe: DomId) -> FakeFrontend {
    let mut f = create_vif(
        hv,
        BE,
        fe,
        0,
        &format!("00:16:3e:00:00:{fe:02x}"),
        &format!("10.0.0.{fe} 10.0.1.{fe}"),
    );
    settle(hv, nb);
    assert_eq!(f.backend_state(hv), XenbusState::InitWait);
    f.connect(hv);
    settle(hv, nb);
    assert_eq!(f.backend_state(hv), XenbusState::Connected);
    assert!(nb.vif(id(fe)).unwrap().is_connected());
    f
}

/// An IPv4/UDP frame of `len` bytes whose payload is `fill`.
fn frame(len: usize, fill: u8) -> Vec<u8> {
    let mut f = vec![fill; len];
    f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&[0, 0x16, 0x3e, 0, 0, 5]);
    if len >= 42 {
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[15] = 0;
        f[16..18].copy_from_slice(&((len - 14) as u16).to_be_bytes());
        f[18..22].copy_from_slice(&[0; 4]);
        f[22] = 64;
        f[23] = 17;
        f[24..26].copy_from_slice(&[0, 0]);
        f[26..30].copy_from_slice(&[10, 0, 0, 5]);
        f[30..34].copy_from_slice(&[10, 0, 0, 1]);
        f[34..36].copy_from_slice(&1234u16.to_be_bytes());
        f[36..38].copy_from_slice(&53u16.to_be_bytes());
        f[38..40].copy_from_slice(&((len - 34) as u16).to_be_bytes());
        f[40..42].copy_from_slice(&[0, 0]);
    }
    f
}

fn poll(hv: &mut FakeHypervisor, nb: &mut Netback<FakeHypervisor>, fe: DomId) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    nb.vif_mut(id(fe))
        .unwrap()
        .poll_tx(hv, |f| got.push(f.to_vec()));
    got
}

// ----- the xenbus state machine -----

#[test]
fn probe_advertises_features_and_reads_identity() {
    let (mut hv, mut nb) = start(Config::DEFAULT);
    let f = create_vif(
        &mut hv,
        BE,
        A,
        0,
        "00:16:3e:12:34:56",
        "10.0.0.5 bogus fd00::5 10.0.0.6 fd00:1::/64 fd00::/129 10.0.0.0/33",
    );
    settle(&mut hv, &mut nb);
    let be = |hv: &FakeHypervisor, k: &str| hv.xs_get(&format!("{}/{k}", f.backend_path));
    assert_eq!(be(&hv, "state").as_deref(), Some("2"));
    assert_eq!(be(&hv, "hotplug-status").as_deref(), Some("connected"));
    assert_eq!(be(&hv, "feature-rx-copy").as_deref(), Some("1"));
    assert_eq!(be(&hv, "feature-rx-flip").as_deref(), Some("0"));
    assert_eq!(be(&hv, "feature-sg").as_deref(), Some("1"));
    assert_eq!(be(&hv, "mtu").as_deref(), Some("1500"));
    let vif = nb.vif(id(A)).unwrap();
    assert_eq!(
        vif.mac(),
        Some(nic::MacAddr([0, 0x16, 0x3e, 0x12, 0x34, 0x56]))
    );
    let ip = |s: &str| s.parse::<core::net::IpAddr>().unwrap();
    assert_eq!(
        vif.ips(),
        [
            (ip("10.0.0.5"), 32),
            (ip("fd00::5"), 128),
            (ip("10.0.0.6"), 32),
            (ip("fd00:1::"), 64)
        ]
    );
    assert!(!vif.is_connected());
    assert_eq!(vif.state(), XenbusState::InitWait);
}

#[test]
fn connects_when_frontend_connects_and_on_initialised() {
    let (mut hv, mut nb) = start(Config::DEFAULT);
    let f = guest(&mut hv, &mut nb, A);
    assert!(hv.is_bound(A, f.port.unwrap(), BE));
    assert_eq!(hv.stats().live_maps, 2);
    assert_eq!(nb.vif(id(A)).unwrap().counters().connects, 1);

    // Frontends that stop at Initialised (3) before Connected connect too.
    let mut g = create_vif(&mut hv, BE, B, 0, "00:16:3e:00:00:06", "10.0.0.6");
    settle(&mut hv, &mut nb);
    g.setup(&mut hv);
    g.set_state(&mut hv, XenbusState::Initialised);
    settle(&mut hv, &mut nb);
    assert_eq!(g.backend_state(&hv), XenbusState::Connected);
    assert_eq!(hv.stats().live_maps, 4);
}

#[test]
fn two_vifs_of_one_guest_are_separate() {
    let (mut hv, mut nb) = start(Config::DEFAULT);
    let mut f0 = guest(&mut hv, &mut nb, A);
    let mut f1 = create_vif(&mut hv, BE, A, 1, "00:16:3e:00:01:05", "10.0.2.5");
    settle(&mut hv, &mut nb);
    f1.connect(&mut hv);
    settle(&mut hv, &mut nb);
    let id1 = VifId {
        frontend: A,
        handle: 1,
    };
    assert!(nb.vif(id1).unwrap().is_connected());
    f0.send(&mut hv, &frame(60, 1), 4096, 0);
    f1.send(&mut hv, &frame(61, 2), 4096, 0);
    assert_eq!(poll(&mut hv, &mut nb, A), [frame(60, 1)]);
    let mut got = Vec::new();
    nb.vif_mut(id1)
        .unwrap()
        .poll_tx(&mut hv, |f| got.push(f.to_vec()));
    assert_eq!(got, [frame(61, 2)]);
    f1.set_state(&mut hv, XenbusState::Closing);
    settle(&mut hv, &mut nb);
    assert!(!nb.vif(id1).unwrap().is_connected());
    assert!(nb.vif(id(A)).unwrap().is_connected());
}

#[test]
fn frontend_close_and_restart_reconnect() {
    let (mut hv, mut nb) = start(Config::DEFAULT);
    let mut f = guest(&mut hv, &mut nb, A);
    f.set_state(&mut hv, XenbusState::Closing);
    settle(&mut hv, &mut nb);
    assert_eq!(f.backend_state(&hv), XenbusState::Closing);
    assert!(!nb.vif(id(A)).unwrap().is_connected());
    assert_eq!(hv.stats().live_maps, 0);
    assert_eq!(hv.open_ports(BE), 0);
    f.set_state(&mut hv, XenbusState::Closed);
    settle(&mut hv, &mut nb);
    assert_eq!(f.backend_state(&hv), XenbusState::Closed);
    // The guest loads netfront again.
    f.set_state(&mut hv, XenbusState::Initialising);
    settle(&mut hv, &mut nb);
    assert_eq!(f.backend_state(&hv), XenbusState::InitWait);
    f.connect(&mut hv);
    settle(&mut hv, &mut nb);
    assert_eq!(f.backend_state(&hv), XenbusState::Connected);
    f.send(&mut hv, &frame(60, 1), 4096, 0);
    assert_eq!(poll(&mut hv, &mut nb, A), [frame(60, 1)]);
    let c = nb.vif(id(A)).unwrap().counters();
    assert_eq!((c.connects, c.disconnects), (2, 1));
}

#[test]
fn frontend_restart_without_closing_reconnects() {
    let (mut hv, mut nb) = start(Config::DEFAULT);
    let mut f = guest(&mut hv, &mut nb, A);
    f.send(&mut hv, &frame(100, 1), 4096, 0);
    assert_eq!(poll(&mut hv, &mut nb, A).len(), 1);
    // A kexec'd guest: fresh rings, state straight back to Initialising.
    f.setup(&mut hv);
    f.set_state(&mut hv, XenbusState::Initialising);
    settle(&mut hv, &mut nb);
    assert_eq!(f.backend_state(&hv), XenbusState::InitWait);
    assert_eq!(hv.stats().live_maps, 0);
    f.set_state(&mut hv, XenbusState::Connected);
    settle(&mut hv, &mut nb);
    assert_eq!(f.backend_state(&hv), XenbusState::Connected);
    f.send(&mut hv, &frame(70, 2), 4096, 0);
    assert_eq!(poll(&mut hv, &mut nb, A), [frame(70, 2)]);
}

#[test]
fn restart_seen_only_as_new_ring_keys_reconnects() {
    let (mut hv, mut nb) = start(Config::DEFAULT);
    let mut f = guest(&mut hv, &mut nb, A);
    // Initialising and Connected both happen before netback looks again.
    f.setup(&mut hv);
    f.set_state(&mut hv, XenbusState::Initialising);
    f.set_state(&mut hv, XenbusState::Connected);
    settle(&mut hv, &mut nb);
    assert_eq!(f.backend_state(&hv), XenbusState::Connected);
    assert_eq!(hv.stats().live_maps, 2);
    f.send(&mut hv, &frame(66, 9), 4096, 0);
    assert_eq!(poll(&mut hv, &mut nb, A), [frame(66, 9)]);
    assert_eq!(nb.vif(id(A)).unwrap().counters().connects, 2);
}

#[test]
fn aggdom_restart_reconnects_to_connected_frontends() {
    let (mut hv, mut nb) = start(Config::DEFAULT);
    let mut f = guest(&mut hv, &mut nb, A);
    f.post_rx(&mut hv, 4);
    f.send(&mut hv, &frame(80, 1), 4096, 0);
    assert_eq!(poll(&mut hv, &mut nb, A).len(), 1);
    nb.vif_mut(id(A))
        .unwrap()
        .deliver_rx(&mut hv, &frame(90, 2))
        .unwrap();
    assert_eq!(f.rx_frames(), [Ok(frame(90, 2))]);
    // A request published while aggdom is down.
    f.send(&mut hv, &frame(81, 3), 4096, 0);

    drop(nb);
    hv.restart_self();
    let mut nb = Netback::new(&mut hv, Config::DEFAULT).unwrap();
    settle(&mut hv, &mut nb);
    assert_eq!(f.backend_state(&hv), XenbusState::Connected);
    let vif = nb.vif(id(A)).unwrap();
    assert!(vif.is_connected());
    assert_eq!(hv.stats().live_maps, 2);
    assert_eq!(poll(&mut hv, &mut nb, A), [frame(81, 3)]);
    assert_eq!(f.tx_responses().len(), 2);
    nb.vif_mut(id(A))
        .unwrap()
        .deliver_rx(&mut hv, &frame(91, 4))
        .unwrap();
    assert_eq!(f.rx_frames(), [Ok(frame(91, 4))]);
}

#[test]
fn toolstack_detach_and_removal_release_everything() {
    let (mut hv, mut nb) = start(Config::DEFAULT);
    let f = guest(&mut hv, &mut nb, A);
    unplug(&mut hv, &f);
    settle(&mut hv, &mut nb);
    // Closed and released at once; the directory stays for libxl to see
    // Closed (it fails a wait whose node is gone) ...
    assert_eq!(f.backend_state(&hv), XenbusState::Closed);
    assert_eq!((hv.stats().live_maps, hv.open_ports(BE)), (0, 0));
    hv.advance_clock(UNPLUG_GRACE_NS - 1);
    settle(&mut hv, &mut nb);
    assert!(hv.xs_read_as(0, &f.backend_path).is_ok());
    // ... then goes, as a driver domain must remove it (libxl waits for
    // that too), and the vif with it.
    hv.advance_clock(1);
    settle(&mut hv, &mut nb);
    assert_eq!(
        hv.xs_read_as(0, &f.backend_path),
        Err(XenError::NoEnt),
        "backend directory left behind"
    );
    assert!(nb.vif(id(A)).is_none());
    // The frontend closing late and the toolstack's own clean-up
    // afterwards find nothing to trip on, and bring nothing back.
    f.set_state(&mut hv, XenbusState::Closed);
    f.set_state(&mut hv, XenbusState::Initialising);
    testkit::remove_vif(&mut hv, &f);
    settle(&mut hv, &mut nb);
    assert!(nb.vif(id(A)).is_none());
    assert_eq!((hv.stats().live_maps, hv.open_ports(BE)), (0, 0));
}

/// xl network-detach / xl destroy: `online` 0 and backend state Closing,
/// in one transaction.
fn unplug(hv: &mut FakeHypervisor, f: &FakeFrontend) {
    hv.xs_write_as(0, &format!("{}/online", f.backend_path), "0")
        .unwrap();
    hv.xs_write_as(0, &format!("{}/state", f.backend_path), "5")
        .unwrap();
}

#[test]
fn an_unplug_does_not_wait_for_a_frontend_that_never_closes() {
    for fe_state in [XenbusState::Connected, XenbusState::Initialising] {
        let (mut hv, mut nb) = start(Config::DEFAULT);
        let f = guest(&mut hv, &mut nb, A);
        // A dying or hostile guest: its frontend stays where it is.
        f.set_state(&mut hv, fe_state);
        settle(&mut hv, &mut nb);
        unplug(&mut hv, &f);
        settle(&mut hv, &mut nb);
        assert_eq!(f.backend_state(&hv), XenbusState::Closed);
        hv.advance_clock(UNPLUG_GRACE_NS);
        settle(&mut hv, &mut nb);
        assert_eq!(
            hv.xs_read_as(0, &f.backend_path),
            Err(XenError::NoEnt),
            "frontend {fe_state:?} held the unplug up"
        );
        assert!(nb.vif(id(A)).is_none());
        assert_eq!((hv.stats().live_maps, hv.open_ports(BE)), (0, 0));
    }
}

#[test]
fn online_vif_keeps_its_directory_when_the_frontend_closes() {
    let (mut hv, mut nb) = start(Config::DEFAULT);
    let f = guest(&mut hv, &mut nb, A);
    // A guest that closes its vif (a netfront module unload) is not an
    // unplug: the directory and the vif stay for it to come back.
    f.set_state(&mut hv, XenbusState::Closed);
    settle(&mut hv, &mut nb);
    assert_eq!(f.backend_state(&hv), XenbusState::Closed);
    assert!(hv.xs_read_as(0, &f.backend_path).is_ok());
    assert!(nb.vif(id(A)).is_some());
}

#[test]
fn destroyed_guest_is_released() {
    let (mut hv, mut nb) = start(Config::DEFAULT);
    let f = guest(&mut hv, &mut nb, A);
    hv.destroy_domain(A);
    testkit::remove_vif(&mut hv, &f);
    settle(&mut hv, &mut nb);
    assert!(nb.vif(id(A)).is_none());
    assert_eq!((hv.stats().live_maps, hv.open_ports(BE)), (0, 0));
}

#[test]
fn bad_frontend_keys_refuse_the_connection() {
    type Spoil = fn(&mut FakeHypervisor, &FakeFrontend);
    let cases: &[(&str, Spoil, ConnectError)] = &[
        (
            "no tx ring",
            |hv, f| {
                hv.xs_rm_as(f.domid, &format!("{}/tx-ring-ref", f.path))
                    .unwrap()
            },
            ConnectError::BadKey("tx-ring-ref"),
        ),
        (
            "garbage port",
            |hv, f| f.write_key(hv, "event-channel", "x12"),
            ConnectError::BadKey("event-channel"),
        ),
        (
            "unbound port",
            |hv, f| f.write_key(hv, "event-channel", "999"),
            ConnectError::BindFailed,
        ),
        (
            "flip only",
            |hv, f| f.write_key(hv, "request-rx-copy", "0"),
            ConnectError::Unsupported("rx page flipping"),
        ),
        (
            "bad ring gref",
            |hv, f| f.write_key(hv, "rx-ring-ref", "4000000"),
            ConnectError::MapFailed,
        ),
        (
            "multi-queue",
            |hv, f| f.write_key(hv, "multi-queue-num-queues", "2"),
            ConnectError::Unsupported("multi-queue-num-queues"),
        ),
        (
            "ring overflow",
            |_, f| f.set_tx_req_prod(1000),
            ConnectError::BadRing,
        ),
        (
            "split evtchn",
            |hv, f| {
                hv.xs_rm_as(f.domid, &format!("{}/event-channel", f.path))
                    .unwrap();
                f.write_key(hv, "event-channel-tx", "1");
            },
            ConnectError::Unsupported("feature-split-event-channels"),
        ),
    ];
    for (name, spoil, want) in cases {
        let (mut hv, mut nb) = start(Config::DEFAULT);
        let mut f = create_vif(&mut hv, BE, A, 0, "00:16:3e:00:00:05", "10.0.0.5");
        settle(&mut hv, &mut nb);
        f.setup(&mut hv);
        spoil(&mut hv, &f);
        f.set_state(&mut hv, XenbusState::Connected);
        settle(&mut hv, &mut nb);
        let vif = nb.vif(id(A)).unwrap();
        assert_eq!(vif.last_error(), Some(*want), "{name}");
        assert!(!vif.is_connected(), "{name}");
        assert_eq!(vif.counters().connect_failures, 1, "{name}");
        assert_eq!(f.backend_state(&hv), XenbusState::Closing, "{name}");
        let error = hv.xs_get(&vif.error_path()).unwrap_or_default();
        assert_eq!(
            error,
            format!("{} {want}", want.errno()),
            "{name}: the error node says why"
        );
        assert_eq!(
            (hv.stats().live_maps, hv.open_ports(BE)),
            (0, 0),
            "{name}: nothing left mapped or bound"
        );
        // The guest can still recover by starting over, without the bad key.
        for k in ["multi-queue-num-queues", "event-channel-tx"] {
            let _ = hv.xs_rm_as(f.domid, &format!("{}/{k}", f.path));
        }
        f.set_state(&mut hv, XenbusState::Closed);
        settle(&mut hv, &mut nb);
        f.set_state(&mut hv, XenbusState::Initialising);
        settle(&mut hv, &mut nb);
        f.connect(&mut hv);
        settle(&mut hv, &mut nb);
        assert_eq!(
            f.backend_state(&hv),
            XenbusState::Connected,
            "{name}: recovers"
        );
        let vif = nb.vif(id(A)).unwrap();
        assert_eq!(hv.xs_get(&vif.error_path()), None, "{name}: error cleared");
    }
}

// ----- a slow, mute or hostile dom0, and hostile guests -----

/// A vif the toolstack wrote without `mac`, its frontend connecting.
fn macless_vif() -> (FakeHypervisor, Netback<FakeHypervisor>, FakeFrontend) {
    let (mut hv, mut nb) = start(Config::DEFAULT);
    let mut f = create_vif(&mut hv, BE, A, 0, "00:16:3e:00:00:05", "10.0.0.5");
    hv.xs_rm_as(0, &format!("{}/mac", f.backend_path)).unwrap();
    settle(&mut hv, &mut nb);
    f.connect(&mut hv);
    settle(&mut hv, &mut nb);
    (hv, nb, f)
}

#[test]
fn a_vif_without_mac_is_closed_with_an_error_not_served() {
    let (hv, nb, f) = macless_vif();
    let vif = nb.vif(id(A)).unwrap();
    assert!(!vif.is_connected());
    assert_eq!(vif.last_error(), Some(ConnectError::BadKey("mac")));
    assert_eq!(f.backend_state(&hv), XenbusState::Closing);
    assert_eq!(
        hv.xs_get(&format!("/local/domain/{BE}/error/backend/vif/{A}/0/error"))
            .as_deref(),
        Some("22 reading mac: missing or malformed")
    );
    assert_eq!((hv.stats().live_maps, hv.open_ports(BE)), (0, 0));
}

/// test-xen run r2-2: dom0 removed a refused vif's backend directory, then
/// its frontend directory, while a read round was in flight. The round saw
/// the backend keys (read before the removal) and no frontend (read
/// after): "frontend gone", so the vif wrote `state` Closed, and that
/// write re-created the removed directory (xenstore creates missing
/// parents). The vif then never looked gone, and its error node stayed.
#[test]
fn a_vif_removed_while_its_keys_are_read_does_not_come_back() {
    let (mut hv, mut nb, f) = macless_vif();
    let error_node = format!("/local/domain/{BE}/error/backend/vif/{A}/0/error");
    assert!(hv.xs_get(&error_node).is_some());
    assert_eq!(f.backend_state(&hv), XenbusState::Closing);

    // A frontend write starts a round; xenstored answers its backend
    // keys, then dom0 removes both directories, then the rest is read.
    hv.hold_xenstore(true);
    f.write_key(&mut hv, "state", "4");
    nb.poll_control(&mut hv);
    hv.run_xenstored(9);
    hv.xs_rm_as(0, &f.backend_path).unwrap();
    hv.xs_rm_as(0, &format!("/local/domain/{BE}/backend/vif/{A}"))
        .unwrap();
    hv.xs_rm_as(0, &f.path).unwrap();
    hv.hold_xenstore(false);
    for _ in 0..6 {
        settle(&mut hv, &mut nb);
    }

    assert_eq!(hv.xs_get(&format!("{}/state", f.backend_path)), None);
    assert_eq!(hv.xs_get(&f.backend_path), None, "backend dir back");
    assert_eq!(hv.xs_get(&error_node), None, "error node left");
    assert!(nb.vif(id(A)).is_none());
}

#[test]
fn a_refused_vif_closes_with_an_error_and_is_offered_again_after_a_restart() {
    let (mut hv, mut nb) = start(Config::DEFAULT);
    let mut f = guest(&mut hv, &mut nb, A);
    nb.refuse(&mut hv, id(A), "mac 00:16:3e:00:00:05 is guest 0's");
    settle(&mut hv, &mut nb);
    let vif = nb.vif(id(A)).unwrap();
    assert!(!vif.is_connected());
    assert_eq!(vif.refused(), Some("mac 00:16:3e:00:00:05 is guest 0's"));
    assert_eq!(vif.counters().refusals, 1);
    assert_eq!(f.backend_state(&hv), XenbusState::Closing);
    assert_eq!(
        hv.xs_get(&vif.error_path()).as_deref(),
        Some("22 mac 00:16:3e:00:00:05 is guest 0's")
    );
    assert_eq!((hv.stats().live_maps, hv.open_ports(BE)), (0, 0));
    // Still Connected on its side, it is not connected again behind the
    // refusal's back.
    f.write_key(&mut hv, "state", "4");
    settle(&mut hv, &mut nb);
    assert!(!nb.vif(id(A)).unwrap().is_connected());
    // Netfront answers Closing with Closed, then restarts.
    f.set_state(&mut hv, XenbusState::Closed);
    settle(&mut hv, &mut nb);
    f.set_state(&mut hv, XenbusState::Initialising);
    settle(&mut hv, &mut nb);
    assert_eq!(nb.vif(id(A)).unwrap().refused(), None);
    f.connect(&mut hv);
    settle(&mut hv, &mut nb);
    assert!(nb.vif(id(A)).unwrap().is_connected());
}

/// Polls `nb` while xenstored answers `per_poll` held requests between
/// polls, until `done` or `limit` polls. Returns the polls it took.
fn run_with_slow_xenstored(
    hv: &mut FakeHypervisor,
    nb: &mut Netback<FakeHypervisor>,
    per_poll: usize,
    limit: usize,
    mut done: impl FnMut(&FakeHypervisor, &Netback<FakeHypervisor>) -> bool,
) -> usize {
    for polls in 1..=limit {
        nb.poll_control(hv);
        if done(hv, nb) {
            return polls;
        }
        hv.run_xenstored(per_poll);
    }
    panic!("not done after {limit} polls");
}

#[test]
fn a_mute_xenstored_blocks_nothing_and_the_vif_connects_when_it_answers() {
    let (mut hv, mut nb) = start(Config::DEFAULT);
    let mut a = guest(&mut hv, &mut nb, A);
    hv.hold_xenstore(true);
    let mut b = create_vif(&mut hv, BE, B, 0, "00:16:3e:00:00:06", "10.0.0.6");
    // dom0 answers nothing: every poll returns at once, and guest A's
    // frames keep moving meanwhile.
    for round in 0..50u8 {
        nb.poll_control(&mut hv);
        a.send(&mut hv, &frame(60, round), 4096, 0);
        assert_eq!(poll(&mut hv, &mut nb, A), [frame(60, round)]);
    }
    assert_eq!(b.backend_state(&hv), XenbusState::Initialising);
    let in_flight = hv.xs_unanswered();
    assert!(
        (1..=40).contains(&in_flight),
        "one read round for the new vif, not a request per poll: {in_flight}"
    );
    // Then dom0 answers, one request per poll.
    let polls = run_with_slow_xenstored(&mut hv, &mut nb, 1, 500, |hv, _| {
        b.backend_state(hv) == XenbusState::InitWait
    });
    assert!(polls > 1);
    b.connect(&mut hv);
    run_with_slow_xenstored(&mut hv, &mut nb, 1, 500, |_, nb| {
        nb.vif(id(B)).is_some_and(|v| v.is_connected())
    });
    hv.run_xenstored(usize::MAX);
    assert_eq!(b.backend_state(&hv), XenbusState::Connected);
    assert_eq!(nb.vif(id(B)).unwrap().counters().xenstore_errors, 0);
}

#[test]
fn xenstore_failures_do_not_disconnect_a_working_vif() {
    let (mut hv, mut nb) = start(Config::DEFAULT);
    let mut a = guest(&mut hv, &mut nb, A);
    // dom0 stalls with the request queue nearly full: of the event's read
    // round only the backend's keys can be queued, the frontend's not.
    hv.hold_xenstore(true);
    for _ in 0..hypervisor::FAKE_XS_MAX_IN_FLIGHT - 7 {
        let id = hypervisor::XenStore::submit(&mut hv, hypervisor::XsOp::Read("/local/domain/1"))
            .unwrap();
        hypervisor::XenStore::forget(&mut hv, id);
    }
    a.write_key(&mut hv, "state", "4");
    nb.poll_control(&mut hv);
    hv.run_xenstored(usize::MAX); // the backend's keys are answered
    for _ in 0..5 {
        nb.poll_control(&mut hv);
    }
    let vif = nb.vif(id(A)).unwrap();
    assert!(vif.is_connected(), "holes in a snapshot decide nothing");
    assert!(vif.counters().xenstore_errors > 0, "but they are counted");
    a.send(&mut hv, &frame(60, 7), 4096, 0);
    assert_eq!(poll(&mut hv, &mut nb, A), [frame(60, 7)]);
    hv.hold_xenstore(false);
    settle(&mut hv, &mut nb);
    assert!(nb.vif(id(A)).unwrap().is_connected());
    assert_eq!(a.backend_state(&hv), XenbusState::Connected);
}

#[test]
fn a_guest_flapping_its_vif_cannot_stall_another() {
    let (mut hv, mut nb) = start(Config::DEFAULT);
    let mut a = guest(&mut hv, &mut nb, A);
    let mut b = guest(&mut hv, &mut nb, B);
    // dom0 is slow: a few requests answered per poll.
    hv.hold_xenstore(true);
    let mut sent = 0u32;
    let mut got = 0u32;
    let mut most_in_flight = 0;
    for round in 0..400u32 {
        // Guest B rewrites its nodes, restarts and reconnects, over and over.
        match round % 4 {
            0 => b.write_key(&mut hv, "tx-ring-ref", "junk"),
            1 => b.set_state(&mut hv, XenbusState::Initialising),
            2 => b.connect(&mut hv),
            _ => b.set_state(&mut hv, XenbusState::Closing),
        }
        a.send(&mut hv, &frame(60, round as u8), 4096, 0);
        sent += 1;
        nb.poll_control(&mut hv);
        got += poll(&mut hv, &mut nb, A).len() as u32;
        most_in_flight = most_in_flight.max(hv.xs_unanswered());
        hv.run_xenstored(8);
    }
    assert_eq!(got, sent, "guest A lost nothing");
    assert!(
        most_in_flight <= 3 * 17 + 32,
        "guest B's churn is one read round at a time: {most_in_flight} requests queued"
    );
    assert!(nb.vif(id(A)).unwrap().is_connected());
    assert_eq!(nb.vif(id(A)).unwrap().counters().disconnects, 0);
    // B still recovers once it behaves.
    hv.hold_xenstore(false);
    b.set_state(&mut hv, XenbusState::Closed);
    settle(&mut hv, &mut nb);
    b.set_state(&mut hv, XenbusState::Initialising);
    settle(&mut hv, &mut nb);
    b.connect(&mut hv);
    settle(&mut hv, &mut nb);
    assert_eq!(b.backend_state(&hv), XenbusState::Connected);
}

// ----- TX and RX -----

#[test]
fn tx_single_and_multi_slot_round_trip() {
    let (mut hv, mut nb) = start(Config::DEFAULT);
    let mut f = guest(&mut hv, &mut nb, A);
    let frames = [
        frame(60, 0x11),
        frame(1514, 0x22),
        frame(1514, 0x33),
        frame(200, 0x44),
    ];
    let ids1 = f.send(&mut hv, &frames[0], 4096, 0);
    let ids2 = f.send(&mut hv, &frames[1], 600, 100); // 3 slots at offset 100
    let ids3 = f.send(&mut hv, &frames[2], 100, 3996); // 16 slots ending at the page end
    let ids4 = f.send(&mut hv, &frames[3], 1, 0); // 200 one-byte slots: too many
    assert_eq!((ids2.len(), ids3.len(), ids4.len()), (3, 16, 200));
    let got = poll(&mut hv, &mut nb, A);
    assert_eq!(got, frames[..3]);
    let rsp = f.tx_responses();
    let want_ids: Vec<u16> = [ids1, ids2, ids3].concat();
    // Slots after the flood was seen get no answer: the vif is gone.
    assert_eq!(rsp.len(), want_ids.len());
    assert!(rsp[..want_ids.len()]
        .iter()
        .zip(&want_ids)
        .all(|(r, id)| r.id == *id && r.status == NETIF_RSP_OKAY));
    let c = nb.vif(id(A)).unwrap().counters().clone();
    assert_eq!((c.tx_frames, c.tx_bytes), (3, 60 + 1514 * 2));
    // 200 slots is a flood: the vif is disconnected for it.
    assert_eq!(c.fatal(Fatal::SlotFlood), 1);
}

#[test]
fn tx_completes_offloaded_checksums() {
    let (mut hv, mut nb) = start(Config::DEFAULT);
    let mut f = guest(&mut hv, &mut nb, A);
    f.tx_flags = NETTXF_CSUM_BLANK | NETTXF_DATA_VALIDATED;
    let sent = frame(300, 7);
    f.send(&mut hv, &sent, 128, 0);
    let got = poll(&mut hv, &mut nb, A);
    assert_eq!(got.len(), 1);
    assert!(checksum::verifies(&got[0]));
    assert_ne!(got[0][40..42], [0, 0]);
    assert_eq!(got[0][..40], sent[..40]);
    // An ARP frame cannot carry an offloaded checksum.
    let mut arp = frame(60, 0);
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    f.send(&mut hv, &arp, 4096, 0);
    assert!(poll(&mut hv, &mut nb, A).is_empty());
    assert_eq!(
        nb.vif(id(A)).unwrap().counters().tx_drops(TxDrop::Checksum),
        1
    );
}

#[test]
fn tx_notifies_only_when_asked() {
    let (mut hv, mut nb) = start(Config::DEFAULT);
    let mut f = guest(&mut hv, &mut nb, A);
    let _ = f.take_notification(&mut hv);
    f.send(&mut hv, &frame(60, 1), 4096, 0);
    poll(&mut hv, &mut nb, A);
    assert!(f.take_notification(&mut hv), "rsp_event 1 was waiting");
    // The frontend has not consumed responses: rsp_event stays behind.
    f.send(&mut hv, &frame(60, 1), 4096, 0);
    poll(&mut hv, &mut nb, A);
    assert!(!f.take_notification(&mut hv));
    f.tx_responses(); // sets rsp_event = rsp_cons + 1
    f.send(&mut hv, &frame(60, 1), 4096, 0);
    poll(&mut hv, &mut nb, A);
    assert!(f.take_notification(&mut hv));
}

#[test]
fn rx_round_trip_single_and_multi_slot() {
    let config = Config {
        max_frame_len: 9018,
        ..Config::DEFAULT
    };
    let (mut hv, mut nb) = start(config);
    let mut f = guest(&mut hv, &mut nb, A);
    assert_eq!(
        hv.xs_get(&format!("{}/mtu", f.backend_path)).as_deref(),
        Some("9000")
    );
    f.post_rx(&mut hv, 4);
    let vif = nb.vif_mut(id(A)).unwrap();
    vif.deliver_rx(&mut hv, &frame(64, 1)).unwrap();
    vif.deliver_rx(&mut hv, &frame(9018, 2)).unwrap(); // 3 slots
    assert_eq!(vif.deliver_rx(&mut hv, &frame(100, 3)), Err(RxError::Full));
    assert_eq!(f.rx_frames(), [Ok(frame(64, 1)), Ok(frame(9018, 2))]);
    assert!(f.take_notification(&mut hv));
    f.post_rx(&mut hv, 1);
    let vif = nb.vif_mut(id(A)).unwrap();
    vif.deliver_rx(&mut hv, &frame(100, 3)).unwrap();
    assert_eq!(
        vif.deliver_rx(&mut hv, &frame(9019, 3)),
        Err(RxError::BadLength)
    );
    assert_eq!(
        vif.deliver_rx(&mut hv, &frame(13, 3)),
        Err(RxError::BadLength)
    );
    assert_eq!(f.rx_frames(), [Ok(frame(100, 3))]);
    let c = vif.counters();
    assert_eq!((c.rx_frames, c.rx_bytes), (3, 64 + 9018 + 100));
    assert_eq!(
        (c.rx_drops(RxDrop::RingFull), c.rx_drops(RxDrop::BadLength)),
        (1, 2)
    );
}

#[test]
fn rx_without_frontend_sg_takes_one_slot_frames_only() {
    let config = Config {
        max_frame_len: 9018,
        ..Config::DEFAULT
    };
    let (mut hv, mut nb) = start(config);
    let mut f = create_vif(&mut hv, BE, A, 0, "00:16:3e:00:00:05", "10.0.0.5");
    settle(&mut hv, &mut nb);
    f.setup(&mut hv);
    f.write_key(&mut hv, "feature-sg", "0");
    f.set_state(&mut hv, XenbusState::Connected);
    settle(&mut hv, &mut nb);
    f.post_rx(&mut hv, 4);
    let vif = nb.vif_mut(id(A)).unwrap();
    assert_eq!(
        vif.deliver_rx(&mut hv, &frame(5000, 1)),
        Err(RxError::BadLength)
    );
    vif.deliver_rx(&mut hv, &frame(4096, 1)).unwrap();
    assert_eq!(f.rx_frames(), [Ok(frame(4096, 1))]);
}

#[test]
fn rx_when_not_connected_is_counted() {
    let (mut hv, mut nb) = start(Config::DEFAULT);
    create_vif(&mut hv, BE, A, 0, "00:16:3e:00:00:05", "10.0.0.5");
    settle(&mut hv, &mut nb);
    let vif = nb.vif_mut(id(A)).unwrap();
    assert_eq!(
        vif.deliver_rx(&mut hv, &frame(60, 1)),
        Err(RxError::NotConnected)
    );
    assert_eq!(vif.poll_tx(&mut hv, |_| panic!("no frames")), 0);
    assert_eq!(vif.counters().rx_drops(RxDrop::NotConnected), 1);
}

// ----- the malicious frontend -----

#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    Drop(TxDrop),
    Fatal(Fatal),
    Control,
}

fn req(gref: GrantRef, offset: u16, flags: u16, id: u16, size: u16) -> [u8; TX_SLOT] {
    TxRequest {
        gref,
        offset,
        flags,
        id,
        size,
    }
    .encode()
}

fn extra(kind: u8, flags: u8) -> [u8; TX_SLOT] {
    ExtraInfo {
        kind,
        flags,
        data: [0; 6],
    }
    .encode()
}

/// One attack per row: raw TX slots from frontend B (which also has a
/// granted page `p` full of its own bytes, and knows A's grant refs), then a
/// poll. A, an honest guest beside it, must be untouched.
#[test]
fn malicious_tx_table() {
    type Attack = fn(&mut FakeFrontend, GrantRef, GrantRef);
    const M: u16 = NETTXF_MORE_DATA;
    const X: u16 = NETTXF_EXTRA_INFO;
    let cases: &[(&str, Attack, Expect)] = &[
        (
            "req_prod beyond the ring",
            |f, _, _| f.set_tx_req_prod(f.tx_req_prod() + 257),
            Expect::Fatal(Fatal::RingOverflow),
        ),
        (
            "req_prod backwards",
            |f, _, _| f.set_tx_req_prod(u32::MAX - 3),
            Expect::Fatal(Fatal::RingOverflow),
        ),
        (
            "grant ref never granted",
            |f, _, _| f.push_tx_slot(&req(77_777, 0, 0, 1, 60)),
            Expect::Drop(TxDrop::BadGrant),
        ),
        (
            "another guest's grant ref",
            |f, _, a| f.push_tx_slot(&req(a + 1000, 0, 0, 1, 60)),
            Expect::Drop(TxDrop::BadGrant),
        ),
        (
            "offset+size beyond the page",
            |f, p, _| f.push_tx_slot(&req(p, 4000, 0, 1, 200)),
            Expect::Fatal(Fatal::CrossPage),
        ),
        (
            "later slot beyond the page",
            |f, p, _| {
                f.push_tx_slot(&req(p, 0, M, 1, 200));
                f.push_tx_slot(&req(p, 4095, 0, 2, 100));
            },
            Expect::Fatal(Fatal::CrossPage),
        ),
        (
            "19 slots",
            |f, p, _| {
                for i in 0..19u16 {
                    f.push_tx_slot(&req(
                        p,
                        0,
                        if i < 18 { M } else { 0 },
                        i,
                        if i == 0 { 19 * 10 } else { 10 },
                    ));
                }
            },
            Expect::Drop(TxDrop::TooManySlots),
        ),
        (
            "30 slots",
            |f, p, _| {
                for i in 0..30u16 {
                    f.push_tx_slot(&req(p, 0, if i < 29 { M } else { 0 }, i, 10));
                }
            },
            Expect::Fatal(Fatal::SlotFlood),
        ),
        (
            "slots claim more than the total",
            |f, p, _| {
                f.push_tx_slot(&req(p, 0, M, 1, 100));
                f.push_tx_slot(&req(p, 0, 0, 2, 200));
            },
            Expect::Drop(TxDrop::SizeMismatch),
        ),
        (
            "oversized frame",
            |f, p, _| {
                f.push_tx_slot(&req(p, 0, M, 1, 3000));
                f.push_tx_slot(&req(p, 0, 0, 2, 2000));
            },
            Expect::Drop(TxDrop::Oversize),
        ),
        (
            "65535-byte frame",
            |f, p, _| f.push_tx_slot(&req(p, 0, 0, 1, 65535)),
            Expect::Fatal(Fatal::CrossPage),
        ),
        (
            "zero size",
            |f, p, _| f.push_tx_slot(&req(p, 0, 0, 1, 0)),
            Expect::Drop(TxDrop::Runt),
        ),
        (
            "runt",
            |f, p, _| f.push_tx_slot(&req(p, 0, 0, 1, 13)),
            Expect::Drop(TxDrop::Runt),
        ),
        (
            "frame continues past req_prod",
            |f, p, _| f.push_tx_slot(&req(p, 0, M, 1, 100)),
            Expect::Fatal(Fatal::MissingSlots),
        ),
        (
            "extra info past req_prod",
            |f, p, _| f.push_tx_slot(&req(p, 0, X, 1, 100)),
            Expect::Fatal(Fatal::MissingSlots),
        ),
        (
            "extra of type 0",
            |f, p, _| {
                f.push_tx_slot(&req(p, 0, X, 1, 100));
                f.push_tx_slot(&extra(0, 0));
            },
            Expect::Fatal(Fatal::BadExtra),
        ),
        (
            "extra of unknown type",
            |f, p, _| {
                f.push_tx_slot(&req(p, 0, X, 1, 100));
                f.push_tx_slot(&extra(9, 0));
            },
            Expect::Fatal(Fatal::BadExtra),
        ),
        (
            "endless extras",
            |f, p, _| {
                f.push_tx_slot(&req(p, 0, X, 1, 100));
                for _ in 0..6 {
                    f.push_tx_slot(&extra(4, XEN_NETIF_EXTRA_FLAG_MORE));
                }
                f.push_tx_slot(&extra(4, 0));
            },
            Expect::Fatal(Fatal::BadExtra),
        ),
        (
            "GSO without the feature",
            |f, p, _| {
                f.push_tx_slot(&req(p, 0, X | M, 1, 200));
                f.push_tx_slot(&extra(1, 0));
                f.push_tx_slot(&req(p, 0, 0, 2, 100));
            },
            Expect::Drop(TxDrop::Gso),
        ),
        (
            "multicast control",
            |f, p, _| {
                f.push_tx_slot(&req(p, 0, X, 1, 0));
                f.push_tx_slot(&extra(2, 0));
            },
            Expect::Control,
        ),
        (
            "checksum offload on garbage",
            |f, p, _| f.push_tx_slot(&req(p, 0, NETTXF_CSUM_BLANK, 1, 100)),
            Expect::Drop(TxDrop::Checksum),
        ),
    ];
    for (name, attack, expect) in cases {
        let (mut hv, mut nb) = start(Config::DEFAULT);
        let mut a = guest(&mut hv, &mut nb, A);
        a.tx_fill = 0xee;
        let a_secret = a.send(&mut hv, &frame(1000, 0xee), 4096, 0);
        let mut b = guest(&mut hv, &mut nb, B);
        let p = hv.grant_page(B, BE, true).unwrap();
        hv.granted_page(B, p).unwrap().fill(0x22);
        let a_gref = a.ring_refs().unwrap().0;
        let before = b.tx_req_prod();
        attack(&mut b, p, a_gref);
        if b.tx_req_prod() != before {
            b.publish_tx();
        }
        let got = poll(&mut hv, &mut nb, B);
        assert!(
            got.iter().all(|f| !f.contains(&0xee)),
            "{name}: A's bytes reached B"
        );
        let vif = nb.vif(id(B)).unwrap();
        let c = vif.counters();
        match expect {
            Expect::Drop(why) => {
                let slots = b.tx_req_prod().wrapping_sub(before) as usize;
                assert_tx_dropped(name, vif, &mut b, slots, &got, *why);
            }
            Expect::Fatal(why) => assert_tx_fatal(name, vif, &b, &hv, *why),
            Expect::Control => {
                assert_eq!(c.tx_control, 1, "{name}");
                let rsp = b.tx_responses();
                assert_eq!(
                    rsp.iter().map(|r| r.status).collect::<Vec<_>>(),
                    [NETIF_RSP_OKAY, NETIF_RSP_NULL],
                    "{name}"
                );
            }
        }
        // A is untouched: its frame arrives intact, its vif is clean.
        assert_eq!(poll(&mut hv, &mut nb, A), [frame(1000, 0xee)], "{name}");
        assert_eq!(a.tx_responses()[0].id, a_secret[0], "{name}");
        let ca = nb.vif(id(A)).unwrap().counters();
        assert_eq!((ca.tx_drops_total(), ca.fatal_total()), (0, 0), "{name}");
    }
}

/// What a hostile TX request answered as a drop must leave: `why`
/// counted once and nothing else, the vif still connected, each of the
/// `slots` it used answered with an error (NULL for extras), and no frame
/// passed on (`got`).
pub(crate) fn assert_tx_dropped(
    name: &str,
    vif: &Vif<FakeHypervisor>,
    b: &mut FakeFrontend,
    slots: usize,
    got: &[Vec<u8>],
    why: TxDrop,
) {
    let c = vif.counters();
    assert_eq!(c.tx_drops(why), 1, "{name}: {c:?}");
    assert_eq!(c.tx_drops_total(), 1, "{name}");
    assert!(vif.is_connected(), "{name}: a drop keeps the vif");
    let rsp = b.tx_responses();
    assert_eq!(rsp.len(), slots, "{name}: one response per slot");
    assert!(
        rsp.iter()
            .all(|r| r.status == NETIF_RSP_ERROR || r.status == NETIF_RSP_NULL),
        "{name}"
    );
    assert!(got.is_empty(), "{name}");
}

/// What a hostile TX request that breaks the ring must leave: `why`
/// counted, the vif disconnected and its backend Closing.
pub(crate) fn assert_tx_fatal(
    name: &str,
    vif: &Vif<FakeHypervisor>,
    b: &FakeFrontend,
    hv: &FakeHypervisor,
    why: Fatal,
) {
    let c = vif.counters();
    assert_eq!(c.fatal(why), 1, "{name}: {c:?}");
    assert!(!vif.is_connected(), "{name}: disconnected");
    assert_eq!(b.backend_state(hv), XenbusState::Closing, "{name}");
}

#[test]
fn malicious_rx_cases() {
    let (mut hv, mut nb) = start(Config::DEFAULT);
    let mut a = guest(&mut hv, &mut nb, A);
    let a_bufs = a.post_rx(&mut hv, 2);
    let mut b = guest(&mut hv, &mut nb, B);

    // A buffer ref B never granted (A's number), and a read-only grant.
    b.push_rx_slot(
        &RxRequest {
            id: 1,
            gref: a_bufs[0] + 500,
        }
        .encode(),
    );
    let ro = hv.grant_page(B, BE, true).unwrap();
    b.push_rx_slot(&RxRequest { id: 2, gref: ro }.encode());
    b.publish_rx();
    let vb = nb.vif_mut(id(B)).unwrap();
    assert_eq!(
        vb.deliver_rx(&mut hv, &frame(60, 0x33)),
        Err(RxError::GuestFault)
    );
    assert_eq!(
        vb.deliver_rx(&mut hv, &frame(60, 0x33)),
        Err(RxError::GuestFault)
    );
    assert_eq!(b.rx_frames(), [Err(NETIF_RSP_ERROR), Err(NETIF_RSP_ERROR)]);
    assert_eq!(vb.counters().rx_drops(RxDrop::BadGrant), 2);
    assert!(vb.is_connected());

    // req_prod beyond the ring disconnects.
    b.set_rx_req_prod(5000);
    let vb = nb.vif_mut(id(B)).unwrap();
    assert_eq!(
        vb.deliver_rx(&mut hv, &frame(60, 0x33)),
        Err(RxError::NotConnected)
    );
    assert_eq!(vb.counters().fatal(Fatal::RingOverflow), 1);
    assert_eq!(b.backend_state(&hv), XenbusState::Closing);

    // None of B's traffic touched A's buffers; A still receives.
    for p in a.rx_pages() {
        assert!(p.snapshot().iter().all(|b| *b == 0));
    }
    nb.vif_mut(id(A))
        .unwrap()
        .deliver_rx(&mut hv, &frame(60, 0x44))
        .unwrap();
    assert_eq!(a.rx_frames(), [Ok(frame(60, 0x44))]);
}

#[test]
fn the_fuzz_entry_accepts_edge_inputs() {
    for data in [
        &[][..],
        &[3],
        &[0; 64],
        &[0xff; 64],
        &[7, 3, 7, 3, 3, 7, 5, 3],
        &[1, 0xff, 0xff, 0xff, 0xff, 3],
    ] {
        testkit::fuzz::run(data).unwrap();
    }
}

// ----- properties -----

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever the slot size and offset, a valid frame arrives byte for
    /// byte, with one OK response per slot.
    #[test]
    fn tx_round_trip(len in 14usize..=1518, slot in 1usize..=4096, offset in 0u16..4096) {
        let (mut hv, mut nb) = start(Config::DEFAULT);
        let mut f = guest(&mut hv, &mut nb, A);
        let sent: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let ids = f.send(&mut hv, &sent, slot, offset);
        let got = poll(&mut hv, &mut nb, A);
        let rsp = f.tx_responses();
        let c = nb.vif(id(A)).unwrap().counters();
        if ids.len() <= 18 {
            prop_assert_eq!(got, vec![sent]);
            prop_assert_eq!(rsp.len(), ids.len());
            prop_assert!(rsp.iter().all(|r| r.status == NETIF_RSP_OKAY));
        } else if ids.len() <= FATAL_TX_SLOTS {
            prop_assert!(got.is_empty());
            prop_assert_eq!(c.tx_drops(TxDrop::TooManySlots), 1);
            prop_assert_eq!(rsp.len(), ids.len());
        } else if ids.len() <= 256 {
            prop_assert!(got.is_empty());
            prop_assert_eq!(c.fatal(Fatal::SlotFlood), 1);
        } else {
            // The frontend overran its own ring.
            prop_assert!(got.is_empty());
            prop_assert_eq!(c.fatal(Fatal::RingOverflow), 1);
        }
    }

    /// Random bytes as a malicious frontend's moves: netback never panics,
    /// the attacker never sees the victim's bytes, the victim is unharmed.
    #[test]
    fn random_frontend_moves_are_harmless(data in proptest::collection::vec(any::<u8>(), 0..1500)) {
        prop_assert_eq!(testkit::fuzz::run(&data), Ok(()));
    }

    /// Random raw ring contents and producer index on a fresh vif.
    #[test]
    fn random_ring_contents(slots in proptest::collection::vec(any::<[u8; 12]>(), 0..300), prod in any::<u32>(), sane in any::<bool>()) {
        let (mut hv, mut nb) = start(Config::DEFAULT);
        let mut a = guest(&mut hv, &mut nb, A);
        a.send(&mut hv, &frame(100, 0xee), 4096, 0);
        let mut b = guest(&mut hv, &mut nb, B);
        for s in &slots {
            b.push_tx_slot(s);
        }
        b.set_tx_req_prod(if sane { b.tx_req_prod() } else { prod });
        for _ in 0..8 {
            let got = poll(&mut hv, &mut nb, B);
            prop_assert!(got.iter().all(|f| !f.contains(&0xee) || slots.iter().any(|s| s.contains(&0xee))));
        }
        prop_assert_eq!(poll(&mut hv, &mut nb, A), vec![frame(100, 0xee)]);
    }
}

/// What a frontend (or aggdom itself) may do to the control plane.
#[derive(Clone, Debug)]
enum Move {
    /// Write this raw number (or garbage) as the frontend state.
    State(u32),
    Garbage,
    /// New rings and keys, state untouched.
    Setup,
    /// New rings and keys, then Connected.
    Connect,
    /// A bad event channel key.
    BadPort,
    /// aggdom restarts in place.
    Restart,
    /// The frontend sends a frame (if it has rings).
    Send,
}

fn a_move() -> impl Strategy<Value = Move> {
    prop_oneof![
        4 => (0u32..10).prop_map(Move::State),
        1 => Just(Move::Garbage),
        2 => Just(Move::Setup),
        3 => Just(Move::Connect),
        1 => Just(Move::BadPort),
        1 => Just(Move::Restart),
        2 => Just(Move::Send),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever the frontend does to xenstore and however aggdom restarts:
    /// a vif is connected exactly when its backend state says Connected,
    /// nothing stays mapped or bound that is not in use, and a frontend
    /// that finally restarts properly is served again.
    #[test]
    fn state_machine_converges(moves in proptest::collection::vec(a_move(), 0..24)) {
        let (mut hv, mut nb) = start(Config::DEFAULT);
        let mut f = guest(&mut hv, &mut nb, A);
        for m in moves {
            match m {
                Move::State(n) => f.set_state(&mut hv, XenbusState::from_raw(n)),
                Move::Garbage => f.write_key(&mut hv, "state", "connected!"),
                Move::Setup => f.setup(&mut hv),
                Move::Connect => f.connect(&mut hv),
                Move::BadPort => f.write_key(&mut hv, "event-channel", "4294967295"),
                Move::Restart => {
                    hv.restart_self();
                    nb = Netback::new(&mut hv, Config::DEFAULT).unwrap();
                }
                Move::Send => {
                    if f.ring_refs().is_some() {
                        f.send(&mut hv, &frame(60, 3), 4096, 0);
                    }
                }
            }
            settle(&mut hv, &mut nb);
            let vif = nb.vif_mut(id(A)).unwrap();
            vif.poll_tx(&mut hv, |_| {});
            let connected = vif.is_connected();
            prop_assert_eq!(connected, f.backend_state(&hv) == XenbusState::Connected);
            prop_assert_eq!(hv.stats().live_maps, if connected { 2 } else { 0 });
            prop_assert_eq!(hv.open_ports(BE), usize::from(connected));
        }
        // A proper restart of the frontend always works.
        f.set_state(&mut hv, XenbusState::Closed);
        settle(&mut hv, &mut nb);
        f.set_state(&mut hv, XenbusState::Initialising);
        settle(&mut hv, &mut nb);
        prop_assert_eq!(f.backend_state(&hv), XenbusState::InitWait);
        f.connect(&mut hv);
        settle(&mut hv, &mut nb);
        prop_assert_eq!(f.backend_state(&hv), XenbusState::Connected);
        f.send(&mut hv, &frame(70, 4), 4096, 0);
        prop_assert_eq!(poll(&mut hv, &mut nb, A), vec![frame(70, 4)]);
    }
}
